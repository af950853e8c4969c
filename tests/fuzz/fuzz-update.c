/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "amu-update-package.h"
#include "amulet/amu-error.h"
#include "fuzz-common.h"

/*
 * Update packages, manifests and simulated firmware images
 * (lib/amu-update-package.c, docs/update.md).
 *
 * Input: a mode byte, then the body. (mode & 0x7f) % 3 picks:
 *   0  the body is a whole package, parsed with the published test key.
 *      With bit 7 of the mode set, the harness first signs the manifest the
 *      container's length field points at (when the body is long enough
 *      to hold it and its signature) and writes the signature in place, so
 *      the manifest, image length and digest checks behind the signature
 *      are reached.
 *   1  the body is a manifest, which the harness signs with the test key;
 *      it is opened, and when it opens, checked against an amulet-sim band
 *      running sequence 5 with a 64 KiB slot.
 *   2  the body is a simulated firmware image, read by amu_sim_image_boots.
 *
 * Invariants checked (abort on violation):
 *   0: a failure is PROTOCOL, BAD_SIGNATURE or TAMPERED (never
 *      BAD_SIGNATURE after the harness signed); a success has an image of
 *      exactly payload_size bytes right after the signature, whose SHA-256
 *      (computed here) is payload_sha256, and a manifest that passes the
 *      structure checks below.
 *   1: the signature always verifies, so a failure is PROTOCOL; a success
 *      means the manifest, unpacked again here, passes every structure rule
 *      (checked here independently), and manifest_sha256 is the body's
 *      SHA-256; check_target fails exactly when the rule list says so, with
 *      that rule's code.
 *   2: the outputs are set only for a well-formed header, and rebuilding a
 *      header-only image from them gives back the body's first bytes.
 *
 * The seeds in corpus/update/ were written with amu_update_package_build()
 * and amu_sim_image_build() by a throwaway program: packages (mode 00 and
 * 80) with 300..700-byte images, some with changed settings, expiry and a
 * minimum sequence, their manifests alone (mode 01) and images (mode 02).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define CONTEXT_LEN (sizeof(AMU_UPDATE_SIGN_CONTEXT) - 1)
#define RUNNING_SEQUENCE 5
#define SLOT_SIZE 65536
#define NOW_MS G_GINT64_CONSTANT(1790000000000)

static uint8_t test_pk[AMU_VENDOR_PUBLICKEYBYTES];
static uint8_t test_sk[AMU_VENDOR_SECRETKEYBYTES];

static void
setup(void)
{
	static gboolean done;

	if (done)
		return;
	check(sodium_init() >= 0);
	amu_sim_vendor_keypair(test_pk, test_sk);
	done = TRUE;
}

/* a heap copy of exactly @size bytes, so reading past the end is caught */
static uint8_t *
copy_exact(const uint8_t *data, size_t size)
{
	uint8_t *copy = g_malloc(size);

	if (size > 0)
		memcpy(copy, data, size);
	return copy;
}

static void
sign(uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES], const uint8_t *manifest, size_t len)
{
	g_autofree uint8_t *message = g_malloc(CONTEXT_LEN + len);

	memcpy(message, AMU_UPDATE_SIGN_CONTEXT, CONTEXT_LEN);
	memcpy(message + CONTEXT_LEN, manifest, len);
	crypto_sign_detached(signature, NULL, message, CONTEXT_LEN + len, test_sk);
}

static gboolean
name_ok(const char *text)
{
	size_t len = strlen(text);

	if (len < 1 || len > 64)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			return FALSE;
	}
	return TRUE;
}

/* every structure rule, written out again apart from the library's */
static void
check_structure(const Amulet__V1__UpdateManifest *manifest)
{
	check(manifest->format == 1);
	check(name_ok(manifest->vendor_id) && name_ok(manifest->device_class) && name_ok(manifest->version));
	check(manifest->sequence > 0);
	check(manifest->payload_size > 0 && manifest->payload_size <= (G_GUINT64_CONSTANT(1) << 30));
	check(manifest->payload_sha256.len == 32);
	check(strlen(manifest->changes) <= 4096 && g_utf8_validate(manifest->changes, -1, NULL));
	check(manifest->n_changed_settings <= 16);
	for (size_t i = 0; i < manifest->n_changed_settings; i++) {
		const char *name = manifest->changed_settings[i];
		size_t len = strlen(name);

		check(len >= 1 && len <= 64 && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == len);
	}
}

static void
check_opened(const AmuUpdateManifest *m, const uint8_t *manifest, size_t len)
{
	uint8_t digest[32];
	Amulet__V1__UpdateManifest *again;

	check(g_bytes_get_size(m->manifest_bytes) == len);
	check(memcmp(g_bytes_get_data(m->manifest_bytes, NULL), manifest, len) == 0);
	crypto_hash_sha256(digest, manifest, len);
	check(memcmp(digest, m->manifest_sha256, 32) == 0);
	check_structure(m->manifest);
	again = amulet__v1__update_manifest__unpack(NULL, len, manifest);
	check(again != NULL);
	check(again->sequence == m->manifest->sequence && again->payload_size == m->manifest->payload_size);
	amulet__v1__update_manifest__free_unpacked(again, NULL);
}

static void
fuzz_package(uint8_t mode, const uint8_t *body, size_t size)
{
	g_autofree uint8_t *copy = copy_exact(body, size);
	g_autoptr(GBytes) bytes = g_bytes_new_static(copy, size);
	g_autoptr(AmuUpdatePackage) p = NULL;
	g_autoptr(GError) error = NULL;
	gboolean signed_here = FALSE;
	size_t manifest_len = 0;

	if (size >= AMU_UPDATE_HEADER_BYTES)
		manifest_len = (size_t)copy[8] | (size_t)copy[9] << 8 | (size_t)copy[10] << 16 |
			       (size_t)copy[11] << 24;
	if ((mode & 0x80) != 0 && manifest_len >= 1 && manifest_len <= AMU_UPDATE_MANIFEST_MAX &&
	    size >= AMU_UPDATE_PAYLOAD_OFFSET(manifest_len)) {
		sign(copy + AMU_UPDATE_HEADER_BYTES + manifest_len, copy + AMU_UPDATE_HEADER_BYTES,
		     manifest_len);
		signed_here = TRUE;
	}

	p = amu_update_package_parse(bytes, test_pk, &error);
	if (p == NULL) {
		check(error != NULL && error->domain == AMU_ERROR);
		check(error->code == AMU_ERROR_PROTOCOL || error->code == AMU_ERROR_TAMPERED ||
		      (error->code == AMU_ERROR_BAD_SIGNATURE && !signed_here));
		return;
	}
	check(error == NULL);
	{
		uint8_t digest[32];
		size_t offset = AMU_UPDATE_PAYLOAD_OFFSET(manifest_len);

		check(size >= offset && p->payload == copy + offset);
		check(p->payload_len == size - offset &&
		      p->payload_len == p->manifest->manifest->payload_size);
		crypto_hash_sha256(digest, p->payload, p->payload_len);
		check(memcmp(digest, p->manifest->manifest->payload_sha256.data, 32) == 0);
		check(memcmp(p->manifest->signature, copy + AMU_UPDATE_HEADER_BYTES + manifest_len, 64) == 0);
		check_opened(p->manifest, copy + AMU_UPDATE_HEADER_BYTES, manifest_len);
	}
}

/* the code check_target must give for @manifest, or 0 */
static int
expected_target_code(const Amulet__V1__UpdateManifest *manifest)
{
	if (strcmp(manifest->vendor_id, AMU_SIM_VENDOR_ID) != 0 ||
	    strcmp(manifest->device_class, "band") != 0)
		return AMU_ERROR_WRONG_TARGET;
	if (manifest->sequence <= RUNNING_SEQUENCE || RUNNING_SEQUENCE < manifest->min_sequence)
		return AMU_ERROR_ROLLBACK;
	if (manifest->expires_ms != 0 && NOW_MS >= manifest->expires_ms)
		return AMU_ERROR_EXPIRED;
	if (manifest->payload_size > SLOT_SIZE)
		return AMU_ERROR_TOO_LARGE;
	return 0;
}

static void
fuzz_manifest(const uint8_t *body, size_t size)
{
	uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES];
	g_autoptr(AmuUpdateManifest) m = NULL;
	g_autoptr(GError) error = NULL;
	int expected;

	sign(signature, body, size);
	m = amu_update_manifest_open(body, size, signature, sizeof(signature), test_pk, &error);
	if (m == NULL) {
		check(g_error_matches(error, AMU_ERROR, AMU_ERROR_PROTOCOL));
		return;
	}
	check(error == NULL && size >= 1 && size <= AMU_UPDATE_MANIFEST_MAX);
	check(memcmp(m->signature, signature, sizeof(signature)) == 0);
	check_opened(m, body, size);

	expected = expected_target_code(m->manifest);
	if (amu_update_manifest_check_target(m, AMU_SIM_VENDOR_ID, "band", RUNNING_SEQUENCE, SLOT_SIZE,
					     NOW_MS, &error)) {
		check(expected == 0 && error == NULL);
	} else {
		check(expected != 0 && g_error_matches(error, AMU_ERROR, expected));
		check(g_utf8_validate(error->message, -1, NULL));
	}
}

static void
fuzz_image(const uint8_t *body, size_t size)
{
	g_autofree uint8_t *copy = copy_exact(body, size);
	g_autofree char *version = NULL;
	uint64_t sequence = 0;
	gboolean boots = amu_sim_image_boots(copy, size, &version, &sequence);

	if (version == NULL) {
		check(!boots && sequence == 0);
		return;
	}
	check(sequence > 0);
	{
		g_autoptr(GBytes) header = amu_sim_image_build(version, sequence, boots, 0);

		check(header != NULL && g_bytes_get_size(header) <= size);
		check(memcmp(g_bytes_get_data(header, NULL), copy, g_bytes_get_size(header)) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	setup();
	switch ((data[0] & 0x7f) % 3) {
	case 0:
		fuzz_package(data[0], data + 1, size - 1);
		break;
	case 1:
		fuzz_manifest(data + 1, size - 1);
		break;
	default:
		fuzz_image(data + 1, size - 1);
		break;
	}
	return 0;
}
