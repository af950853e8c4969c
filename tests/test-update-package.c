/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#include "amu-test.h"
#include "amu-update-package.h"
#include "amulet/amu-error.h"

/* Update packages (docs/update.md): what the builder writes parses back with
 * every field and the image intact, from memory and from a file; each way a
 * package can be wrong is refused with its own code: a signature that does
 * not verify (BAD_SIGNATURE) before anything of the manifest is read, a
 * malformed container or manifest (PROTOCOL, naming the field), an image
 * that is cut short, extended or altered (TAMPERED), and a package for
 * another device or an older one (WRONG_TARGET, ROLLBACK, EXPIRED,
 * TOO_LARGE). The simulator's images and vendor keys are checked too. */

#define PAYLOAD_LEN 1000
#define NOW_MS G_GINT64_CONSTANT(1790000000000)

static uint8_t test_pk[AMU_VENDOR_PUBLICKEYBYTES];
static uint8_t test_sk[AMU_VENDOR_SECRETKEYBYTES];

static void
init_keys(void)
{
	g_assert(sodium_init() >= 0);
	amu_sim_vendor_keypair(test_pk, test_sk);
}

static uint8_t *
make_payload(size_t len)
{
	uint8_t *payload = g_malloc(len > 0 ? len : 1);

	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	return payload;
}

static char *changed_settings[] = {(char *)"heart_rate_interval_s", (char *)"share_location"};

/* a manifest that passes every check against an amulet-sim band at sequence 1 */
static void
manifest_init(Amulet__V1__UpdateManifest *manifest)
{
	amulet__v1__update_manifest__init(manifest);
	manifest->format = 1;
	manifest->vendor_id = (char *)AMU_SIM_VENDOR_ID;
	manifest->device_class = (char *)"band";
	manifest->version = (char *)"1.1.0";
	manifest->sequence = 2;
	manifest->min_sequence = 1;
	manifest->expires_ms = NOW_MS + 1000;
	manifest->security = TRUE;
	manifest->changes = (char *)"Fixes the step counter. Grüße.";
	manifest->n_changed_settings = G_N_ELEMENTS(changed_settings);
	manifest->changed_settings = changed_settings;
}

static GBytes *
build(Amulet__V1__UpdateManifest *manifest, size_t payload_len)
{
	g_autofree uint8_t *payload = make_payload(payload_len);

	return amu_update_package_build(manifest, payload, payload_len, test_sk);
}

static GBytes *
build_valid(void)
{
	Amulet__V1__UpdateManifest manifest;

	manifest_init(&manifest);
	return build(&manifest, PAYLOAD_LEN);
}

/* a copy of @bytes with @edit applied: byte @at xor @xor, then cut or extended to @len */
static GBytes *
edited(GBytes *bytes, size_t at, uint8_t xor, size_t len)
{
	size_t size = 0;
	const uint8_t *data = g_bytes_get_data(bytes, &size);
	uint8_t *copy = g_malloc0(MAX(len, 1));

	memcpy(copy, data, MIN(size, len));
	if (at < len)
		copy[at] ^= xor;
	return g_bytes_new_take(copy, len);
}

static size_t
manifest_len_of(GBytes *package)
{
	const uint8_t *data = g_bytes_get_data(package, NULL);

	return (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24;
}

/* parses @bytes with the test key and asserts it fails with @code; returns the message */
static char *
parse_error(GBytes *bytes, AmuError code)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdatePackage) p = amu_update_package_parse(bytes, test_pk, &error);

	CU_ASSERT_PTR_NULL(p);
	AMU_ASSERT_ERROR(error, code);
	return error != NULL ? g_strdup(error->message) : g_strdup("");
}

/* packs and signs @manifest as it is (no payload fields set), for manifest_open */
static GBytes *
sign_manifest(const Amulet__V1__UpdateManifest *manifest, uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES])
{
	size_t len = amulet__v1__update_manifest__get_packed_size(manifest);
	size_t context_len = strlen(AMU_UPDATE_SIGN_CONTEXT);
	g_autofree uint8_t *message = g_malloc(context_len + len + 1);

	memcpy(message, AMU_UPDATE_SIGN_CONTEXT, context_len);
	amulet__v1__update_manifest__pack(manifest, message + context_len);
	crypto_sign_detached(signature, NULL, message, context_len + len, test_sk);
	return g_bytes_new(message + context_len, len);
}

static uint8_t digest_32[32] = {1, 2, 3};

/* a manifest for manifest_open(): valid, with a payload size and digest */
static void
manifest_init_signed(Amulet__V1__UpdateManifest *manifest)
{
	manifest_init(manifest);
	manifest->payload_size = PAYLOAD_LEN;
	manifest->payload_sha256.data = digest_32;
	manifest->payload_sha256.len = sizeof(digest_32);
}

/* @manifest signed with the test key, then opened */
static AmuUpdateManifest *
open_signed(const Amulet__V1__UpdateManifest *manifest, GError **error)
{
	uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES];
	g_autoptr(GBytes) packed = sign_manifest(manifest, signature);

	return amu_update_manifest_open(g_bytes_get_data(packed, NULL), g_bytes_get_size(packed), signature,
					sizeof(signature), test_pk, error);
}

/* opens @manifest signed with the test key: NULL and a PROTOCOL error whose
 * message holds @needle (the field at fault) */
static void
assert_structure_refused(const Amulet__V1__UpdateManifest *manifest, const char *needle)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdateManifest) m = open_signed(manifest, &error);

	CU_ASSERT_PTR_NULL(m);
	AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
	if (strstr(error->message, needle) == NULL)
		g_printerr("  expected '%s' in: %s\n", needle, error->message);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, needle));
}

static void
assert_structure_accepted(const Amulet__V1__UpdateManifest *manifest)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdateManifest) m = open_signed(manifest, &error);

	CU_ASSERT_PTR_NOT_NULL(m);
	CU_ASSERT_PTR_NULL(error);
	if (error != NULL)
		g_printerr("  unexpected error: %s\n", error->message);
}

/* the valid manifest with the string field @field (at @slot in @manifest)
 * set to each of @values in turn: each refused, naming @field */
static void
assert_string_field_refused(Amulet__V1__UpdateManifest *manifest, char **slot, const char *field,
			    const char *const *values, size_t n_values)
{
	for (size_t i = 0; i < n_values; i++) {
		*slot = (char *)values[i];
		assert_structure_refused(manifest, field);
	}
}

/* ---------------------------------------------------------------- valid packages */

static void
test_valid_round_trip(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree uint8_t *payload = make_payload(PAYLOAD_LEN);
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdatePackage) p = NULL;
	const Amulet__V1__UpdateManifest *got;
	const uint8_t *data;
	uint8_t digest[32];
	size_t manifest_len;

	manifest_init(&manifest);
	bytes = amu_update_package_build(&manifest, payload, PAYLOAD_LEN, test_sk);
	/* the builder sets the size, and leaves the caller's digest field as it was */
	CU_ASSERT_EQUAL(manifest.payload_size, PAYLOAD_LEN);
	CU_ASSERT_PTR_NULL(manifest.payload_sha256.data);
	CU_ASSERT_EQUAL(manifest.payload_sha256.len, 0);

	data = g_bytes_get_data(bytes, NULL);
	manifest_len = manifest_len_of(bytes);
	CU_ASSERT_EQUAL(memcmp(data, "AMUPKG01", 8), 0);
	CU_ASSERT_EQUAL(g_bytes_get_size(bytes), 12 + manifest_len + 64 + PAYLOAD_LEN);

	p = amu_update_package_parse(bytes, test_pk, &error);
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NULL(p->mapped);
	CU_ASSERT_EQUAL(p->payload_len, PAYLOAD_LEN);
	CU_ASSERT_EQUAL(memcmp(p->payload, payload, PAYLOAD_LEN), 0);
	CU_ASSERT_PTR_EQUAL(p->payload, data + 12 + manifest_len + 64);

	got = p->manifest->manifest;
	CU_ASSERT_EQUAL(got->format, 1);
	CU_ASSERT_STRING_EQUAL(got->vendor_id, "amulet-sim");
	CU_ASSERT_STRING_EQUAL(got->device_class, "band");
	CU_ASSERT_STRING_EQUAL(got->version, "1.1.0");
	CU_ASSERT_EQUAL(got->sequence, 2);
	CU_ASSERT_EQUAL(got->min_sequence, 1);
	CU_ASSERT_EQUAL(got->expires_ms, NOW_MS + 1000);
	CU_ASSERT_TRUE(got->security);
	CU_ASSERT_STRING_EQUAL(got->changes, "Fixes the step counter. Grüße.");
	CU_ASSERT_EQUAL_FATAL(got->n_changed_settings, 2);
	CU_ASSERT_STRING_EQUAL(got->changed_settings[0], "heart_rate_interval_s");
	CU_ASSERT_STRING_EQUAL(got->changed_settings[1], "share_location");
	CU_ASSERT_EQUAL(got->payload_size, PAYLOAD_LEN);
	crypto_hash_sha256(digest, payload, PAYLOAD_LEN);
	CU_ASSERT_EQUAL_FATAL(got->payload_sha256.len, 32);
	CU_ASSERT_EQUAL(memcmp(got->payload_sha256.data, digest, 32), 0);

	/* the manifest exactly as signed, its digest and the signature */
	CU_ASSERT_EQUAL(g_bytes_get_size(p->manifest->manifest_bytes), manifest_len);
	CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(p->manifest->manifest_bytes, NULL), data + 12, manifest_len),
			0);
	crypto_hash_sha256(digest, data + 12, manifest_len);
	CU_ASSERT_EQUAL(memcmp(p->manifest->manifest_sha256, digest, 32), 0);
	CU_ASSERT_EQUAL(memcmp(p->manifest->signature, data + 12 + manifest_len, 64), 0);

	CU_ASSERT_TRUE(
		amu_update_manifest_check_target(p->manifest, "amulet-sim", "band", 1, 4096, NOW_MS, &error));
	CU_ASSERT_PTR_NULL(error);
}

/* the smallest package: a one-byte image and only the required fields */
static void
test_minimal_package(void)
{
	Amulet__V1__UpdateManifest manifest = AMULET__V1__UPDATE_MANIFEST__INIT;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdatePackage) p = NULL;

	manifest.format = 1;
	manifest.vendor_id = (char *)"v";
	manifest.device_class = (char *)"toy";
	manifest.version = (char *)"1";
	manifest.sequence = 1;
	bytes = build(&manifest, 1);
	p = amu_update_package_parse(bytes, test_pk, &error);
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(p->payload_len, 1);
	CU_ASSERT_EQUAL(p->manifest->manifest->n_changed_settings, 0);
	CU_ASSERT_STRING_EQUAL(p->manifest->manifest->changes, "");
	/* no expiry and no minimum */
	CU_ASSERT_TRUE(amu_update_manifest_check_target(p->manifest, "v", "toy", 0, 0, G_MAXINT64, &error));
}

static void
test_file_round_trip(void)
{
	g_autofree char *dir = g_dir_make_tmp("amu-test-update-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "fw.amupkg", NULL);
	g_autofree char *missing = g_build_filename(dir, "missing.amupkg", NULL);
	g_autoptr(GBytes) bytes = build_valid();
	g_autoptr(GBytes) cut = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdatePackage) p = NULL;
	AmuUpdatePackage *q;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, g_bytes_get_data(bytes, NULL),
						 (gssize)g_bytes_get_size(bytes), NULL));
	p = amu_update_package_load(path, test_pk, &error);
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NOT_NULL(p->mapped);
	CU_ASSERT_TRUE(g_bytes_equal(p->bytes, bytes));
	CU_ASSERT_EQUAL(p->payload_len, PAYLOAD_LEN);
	CU_ASSERT_STRING_EQUAL(p->manifest->manifest->version, "1.1.0");
	{
		g_autofree uint8_t *payload = make_payload(PAYLOAD_LEN);
		CU_ASSERT_EQUAL(memcmp(p->payload, payload, PAYLOAD_LEN), 0);
	}

	/* a missing file, named */
	q = amu_update_package_load(missing, test_pk, &error);
	CU_ASSERT_PTR_NULL(q);
	AMU_ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, missing));
	g_clear_error(&error);

	/* a bad file: the parse error, prefixed with the path */
	cut = edited(bytes, 0, 0, g_bytes_get_size(bytes) - 1);
	CU_ASSERT_TRUE_FATAL(
		g_file_set_contents(path, g_bytes_get_data(cut, NULL), (gssize)g_bytes_get_size(cut), NULL));
	q = amu_update_package_load(path, test_pk, &error);
	CU_ASSERT_PTR_NULL(q);
	AMU_ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	CU_ASSERT_TRUE(g_str_has_prefix(error->message, path));
	g_clear_error(&error);

	/* an empty file */
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, "", 0, NULL));
	q = amu_update_package_load(path, test_pk, &error);
	CU_ASSERT_PTR_NULL(q);
	AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
	CU_ASSERT_TRUE(g_str_has_prefix(error->message, path));
	g_clear_error(&error);

	/* a directory */
	q = amu_update_package_load(dir, test_pk, &error);
	CU_ASSERT_PTR_NULL(q);
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);

	amu_test_remove_tree(dir);
}

/* ---------------------------------------------------------------- signature */

static void
test_signature_bit_flipped(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	size_t m = manifest_len_of(bytes);

	/* first, middle and last byte of the signature */
	for (size_t i = 0; i < 64; i += 31) {
		g_autoptr(GBytes) bad = edited(bytes, 12 + m + i, 0x01, g_bytes_get_size(bytes));
		g_autofree char *message = parse_error(bad, AMU_ERROR_BAD_SIGNATURE);
	}
}

/* a flipped bit in the manifest is a bad signature, never a parse error */
static void
test_manifest_bit_flipped(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	size_t m = manifest_len_of(bytes);

	for (size_t i = 0; i < m; i++) {
		g_autoptr(GBytes) bad = edited(bytes, 12 + i, 0x80, g_bytes_get_size(bytes));
		g_autofree char *message = parse_error(bad, AMU_ERROR_BAD_SIGNATURE);
	}
}

static void
test_other_key(void)
{
	Amulet__V1__UpdateManifest manifest;
	uint8_t other_pk[32], other_sk[64];
	g_autofree uint8_t *payload = make_payload(PAYLOAD_LEN);
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdatePackage) p = NULL;
	g_autofree char *message = NULL;

	crypto_sign_keypair(other_pk, other_sk);
	manifest_init(&manifest);
	bytes = amu_update_package_build(&manifest, payload, PAYLOAD_LEN, other_sk);
	message = parse_error(bytes, AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_PTR_NOT_NULL(strstr(message, "vendor key"));
	/* it is a good package for its own key */
	p = amu_update_package_parse(bytes, other_pk, &error);
	CU_ASSERT_PTR_NOT_NULL(p);
	CU_ASSERT_PTR_NULL(error);
	sodium_memzero(other_sk, sizeof(other_sk));
}

static void
test_signature_wrong_length(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	const uint8_t *data = g_bytes_get_data(bytes, NULL);
	size_t m = manifest_len_of(bytes);
	uint8_t signature[65];
	const size_t lengths[] = {0, 63, 65};

	memcpy(signature, data + 12 + m, 64);
	signature[64] = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(AmuUpdateManifest) opened =
			amu_update_manifest_open(data + 12, m, signature, lengths[i], test_pk, &error);
		CU_ASSERT_PTR_NULL(opened);
		AMU_ASSERT_ERROR(error, AMU_ERROR_BAD_SIGNATURE);
	}
	/* and with 64 it opens */
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(AmuUpdateManifest) opened =
			amu_update_manifest_open(data + 12, m, signature, 64, test_pk, &error);
		CU_ASSERT_PTR_NOT_NULL(opened);
		CU_ASSERT_PTR_NULL(error);
	}
}

/* ---------------------------------------------------------------- container */

static void
test_bad_magic(void)
{
	g_autoptr(GBytes) bytes = build_valid();

	for (size_t i = 0; i < 8; i++) {
		g_autoptr(GBytes) bad = edited(bytes, i, 0x20, g_bytes_get_size(bytes));
		g_autofree char *message = parse_error(bad, AMU_ERROR_PROTOCOL);
		CU_ASSERT_PTR_NOT_NULL(strstr(message, "AMUPKG01"));
	}
}

static void
test_shorter_than_header(void)
{
	g_autoptr(GBytes) bytes = build_valid();

	for (size_t len = 0; len < 12; len++) {
		g_autoptr(GBytes) cut = edited(bytes, 0, 0, len);
		g_autofree char *message = parse_error(cut, AMU_ERROR_PROTOCOL);
		CU_ASSERT_PTR_NOT_NULL(strstr(message, "12-byte header"));
	}
}

static GBytes *
with_manifest_length(GBytes *bytes, uint32_t length)
{
	g_autoptr(GBytes) copy = edited(bytes, 0, 0, g_bytes_get_size(bytes));
	uint8_t *data = (uint8_t *)g_bytes_get_data(copy, NULL);

	data[8] = (uint8_t)length;
	data[9] = (uint8_t)(length >> 8);
	data[10] = (uint8_t)(length >> 16);
	data[11] = (uint8_t)(length >> 24);
	return g_steal_pointer(&copy);
}

static void
test_manifest_length_zero(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	g_autoptr(GBytes) bad = with_manifest_length(bytes, 0);
	g_autofree char *message = parse_error(bad, AMU_ERROR_PROTOCOL);

	CU_ASSERT_PTR_NOT_NULL(strstr(message, "manifest length is 0 bytes"));
}

static void
test_manifest_length_over_max(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	const uint32_t lengths[] = {4097, 65536, G_MAXUINT32};

	/* the package is big enough to hold 4097 bytes: only the bound refuses it */
	for (size_t i = 0; i < G_N_ELEMENTS(lengths); i++) {
		g_autoptr(GBytes) bad = with_manifest_length(bytes, lengths[i]);
		g_autofree char *message = parse_error(bad, AMU_ERROR_PROTOCOL);
		CU_ASSERT_PTR_NOT_NULL(strstr(message, "outside 1..4096"));
	}
}

static void
test_manifest_length_past_end(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	size_t m = manifest_len_of(bytes);
	/* manifest and signature need 12 + m + 64 bytes: one fewer */
	g_autoptr(GBytes) cut = edited(bytes, 0, 0, 12 + m + 63);
	g_autofree char *message = parse_error(cut, AMU_ERROR_PROTOCOL);
	/* a length pointing past the end of the whole file */
	g_autoptr(GBytes) small = edited(bytes, 0, 0, 300);
	g_autoptr(GBytes) bad = with_manifest_length(small, 4096);
	g_autofree char *message2 = parse_error(bad, AMU_ERROR_PROTOCOL);

	CU_ASSERT_PTR_NOT_NULL(strstr(message, "past the end"));
	CU_ASSERT_PTR_NOT_NULL(strstr(message2, "past the end"));
}

/* ---------------------------------------------------------------- manifest structure */

static void
test_structure_format(void)
{
	Amulet__V1__UpdateManifest manifest;

	manifest_init_signed(&manifest);
	manifest.format = 0;
	assert_structure_refused(&manifest, "format");
	manifest.format = 2;
	assert_structure_refused(&manifest, "format");
}

static void
test_structure_vendor_id(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree char *long_name = g_strnfill(65, 'v');
	const char *bad[] = {"", long_name, "amulet\tsim", "amulet-s\xc3\xadm"};

	manifest_init_signed(&manifest);
	assert_string_field_refused(&manifest, &manifest.vendor_id, "vendor_id", bad, G_N_ELEMENTS(bad));
	long_name[64] = '\0'; /* 64 is the most */
	manifest.vendor_id = long_name;
	assert_structure_accepted(&manifest);
}

static void
test_structure_device_class(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree char *long_name = g_strnfill(65, 'c');
	const char *bad[] = {"", long_name, "band\x7f"};

	manifest_init_signed(&manifest);
	assert_string_field_refused(&manifest, &manifest.device_class, "device_class", bad, G_N_ELEMENTS(bad));
}

static void
test_structure_version(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree char *long_name = g_strnfill(65, '1');
	const char *bad[] = {"", long_name, "1.1.0\nboot=ok"};

	manifest_init_signed(&manifest);
	assert_string_field_refused(&manifest, &manifest.version, "version", bad, G_N_ELEMENTS(bad));
}

static void
test_structure_sequence(void)
{
	Amulet__V1__UpdateManifest manifest;

	manifest_init_signed(&manifest);
	manifest.sequence = 0;
	assert_structure_refused(&manifest, "sequence");
}

static void
test_structure_payload_size(void)
{
	Amulet__V1__UpdateManifest manifest;

	manifest_init_signed(&manifest);
	manifest.payload_size = 0;
	assert_structure_refused(&manifest, "payload_size");
	manifest.payload_size = AMU_UPDATE_PAYLOAD_MAX + 1;
	assert_structure_refused(&manifest, "payload_size");
	manifest.payload_size = G_MAXUINT64;
	assert_structure_refused(&manifest, "payload_size");
	manifest.payload_size = AMU_UPDATE_PAYLOAD_MAX;
	assert_structure_accepted(&manifest);
}

/* an empty image, built and signed: refused for its size, not its digest */
static void
test_structure_empty_payload_package(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autoptr(GBytes) bytes = NULL;
	g_autofree char *message = NULL;

	manifest_init(&manifest);
	bytes = build(&manifest, 0);
	message = parse_error(bytes, AMU_ERROR_PROTOCOL);
	CU_ASSERT_PTR_NOT_NULL(strstr(message, "payload_size"));
}

static void
test_structure_payload_sha256(void)
{
	Amulet__V1__UpdateManifest manifest;
	uint8_t digest[33] = {0};

	manifest_init_signed(&manifest);
	manifest.payload_sha256.data = digest;
	manifest.payload_sha256.len = 31;
	assert_structure_refused(&manifest, "payload_sha256");
	manifest.payload_sha256.len = 33;
	assert_structure_refused(&manifest, "payload_sha256");
	manifest.payload_sha256.len = 0;
	manifest.payload_sha256.data = NULL;
	assert_structure_refused(&manifest, "payload_sha256");
}

static void
test_structure_changes_utf8(void)
{
	Amulet__V1__UpdateManifest manifest;
	const char *bad[] = {"caf\xc3 au lait", "\xed\xa0\x80 a surrogate"};

	manifest_init_signed(&manifest);
	assert_string_field_refused(&manifest, &manifest.changes, "changes", bad, G_N_ELEMENTS(bad));
}

/* 4096 bytes of changes fill a manifest past its own 4096-byte limit, so
 * that limit is what refuses them; the most that fits is accepted */
static void
test_structure_changes_length(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree char *changes = g_strnfill(4097, 'x');

	manifest_init_signed(&manifest);
	manifest.changes = changes;
	assert_structure_refused(&manifest, "outside 1..4096");

	changes[3800] = '\0';
	assert_structure_accepted(&manifest);
}

static void
test_structure_changed_settings_count(void)
{
	Amulet__V1__UpdateManifest manifest;
	char *names[17];

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		names[i] = g_strdup_printf("setting_%zu", i);
	manifest_init_signed(&manifest);
	manifest.changed_settings = names;
	manifest.n_changed_settings = 17;
	assert_structure_refused(&manifest, "changed_settings");
	manifest.n_changed_settings = 16;
	assert_structure_accepted(&manifest);
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		g_free(names[i]);
}

static void
test_structure_changed_settings_name(void)
{
	Amulet__V1__UpdateManifest manifest;
	g_autofree char *long_name = g_strnfill(65, 'a');
	char *bad_names[] = {(char *)"", (char *)"Share_location", (char *)"share-location",
			     (char *)"share location", long_name};
	char *names[2] = {(char *)"share_location", NULL};

	manifest_init_signed(&manifest);
	manifest.changed_settings = names;
	manifest.n_changed_settings = 2;
	for (size_t i = 0; i < G_N_ELEMENTS(bad_names); i++) {
		names[1] = bad_names[i];
		assert_structure_refused(&manifest, "changed_settings");
	}
	long_name[64] = '\0';
	names[1] = long_name;
	assert_structure_accepted(&manifest);
}

/* signed bytes that are no UpdateManifest at all */
static void
test_structure_not_protobuf(void)
{
	const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	size_t context_len = strlen(AMU_UPDATE_SIGN_CONTEXT);
	uint8_t message[64];
	uint8_t signature[64];
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdateManifest) m = NULL;

	memcpy(message, AMU_UPDATE_SIGN_CONTEXT, context_len);
	memcpy(message + context_len, garbage, sizeof(garbage));
	crypto_sign_detached(signature, NULL, message, context_len + sizeof(garbage), test_sk);
	m = amu_update_manifest_open(garbage, sizeof(garbage), signature, 64, test_pk, &error);
	CU_ASSERT_PTR_NULL(m);
	AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "UpdateManifest"));
}

/* a signature over the manifest without the context string does not count */
static void
test_signature_without_context(void)
{
	Amulet__V1__UpdateManifest manifest;
	uint8_t signature[64];
	uint8_t packed[AMU_UPDATE_MANIFEST_MAX];
	size_t len;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdateManifest) m = NULL;

	manifest_init_signed(&manifest);
	len = amulet__v1__update_manifest__pack(&manifest, packed);
	crypto_sign_detached(signature, NULL, packed, len, test_sk);
	m = amu_update_manifest_open(packed, len, signature, 64, test_pk, &error);
	CU_ASSERT_PTR_NULL(m);
	AMU_ASSERT_ERROR(error, AMU_ERROR_BAD_SIGNATURE);
}

/* ---------------------------------------------------------------- image */

static void
test_payload_truncated(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	g_autoptr(GBytes) cut = edited(bytes, 0, 0, g_bytes_get_size(bytes) - 10);
	g_autofree char *message = parse_error(cut, AMU_ERROR_TAMPERED);
	g_autoptr(GBytes) none = edited(bytes, 0, 0, 12 + manifest_len_of(bytes) + 64);
	g_autofree char *message2 = parse_error(none, AMU_ERROR_TAMPERED);

	CU_ASSERT_PTR_NOT_NULL(strstr(message, "truncated: 990 of 1000 bytes"));
	CU_ASSERT_PTR_NOT_NULL(strstr(message2, "truncated: 0 of 1000 bytes"));
}

static void
test_payload_trailing(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	g_autoptr(GBytes) longer = edited(bytes, 0, 0, g_bytes_get_size(bytes) + 7);
	g_autofree char *message = parse_error(longer, AMU_ERROR_TAMPERED);

	CU_ASSERT_PTR_NOT_NULL(strstr(message, "7 bytes after the image"));
}

static void
test_payload_byte_flipped(void)
{
	g_autoptr(GBytes) bytes = build_valid();
	size_t start = 12 + manifest_len_of(bytes) + 64;
	const size_t offsets[] = {0, 1, PAYLOAD_LEN / 2, PAYLOAD_LEN - 1};

	for (size_t i = 0; i < G_N_ELEMENTS(offsets); i++) {
		g_autoptr(GBytes) bad = edited(bytes, start + offsets[i], 0x04, g_bytes_get_size(bytes));
		g_autofree char *message = parse_error(bad, AMU_ERROR_TAMPERED);
		CU_ASSERT_PTR_NOT_NULL(strstr(message, "SHA-256"));
	}
}

/* ---------------------------------------------------------------- target */

typedef struct {
	const char *vendor_id;
	const char *device_class;
	uint64_t running_sequence;
	uint64_t slot_size;
	int64_t now_ms;
} Target;

static const Target good_target = {"amulet-sim", "band", 1, 4096, NOW_MS};

/* the valid manifest (sequence 2, min 1, expires NOW_MS + 1000, 1000 bytes)
 * with @edit applied, checked against @target */
static GError *
target_error(void (*edit)(Amulet__V1__UpdateManifest *), const Target *target)
{
	Amulet__V1__UpdateManifest manifest;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(AmuUpdatePackage) p = NULL;
	GError *error = NULL;

	manifest_init(&manifest);
	if (edit != NULL)
		edit(&manifest);
	bytes = build(&manifest, PAYLOAD_LEN);
	p = amu_update_package_parse(bytes, test_pk, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	if (amu_update_manifest_check_target(p->manifest, target->vendor_id, target->device_class,
					     target->running_sequence, target->slot_size, target->now_ms,
					     &error)) {
		CU_ASSERT_PTR_NULL(error);
	} else {
		CU_ASSERT_PTR_NOT_NULL(error);
	}
	return error;
}

static void
assert_target(const Target *target, AmuError code, const char *in_message)
{
	g_autoptr(GError) error = target_error(NULL, target);

	AMU_ASSERT_ERROR(error, code);
	if (strstr(error->message, in_message) == NULL)
		g_printerr("  expected '%s' in: %s\n", in_message, error->message);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, in_message));
}

static void
test_target_accepted(void)
{
	g_autoptr(GError) error = target_error(NULL, &good_target);

	CU_ASSERT_PTR_NULL(error);
}

static void
test_target_vendor(void)
{
	Target target = good_target;

	target.vendor_id = "acme";
	assert_target(&target, AMU_ERROR_WRONG_TARGET, "'amulet-sim'");
	assert_target(&target, AMU_ERROR_WRONG_TARGET, "'acme'");
	/* the vendor is checked first */
	target.device_class = "watch";
	assert_target(&target, AMU_ERROR_WRONG_TARGET, "vendor");
}

static void
test_target_class(void)
{
	Target target = good_target;

	target.device_class = "watch";
	assert_target(&target, AMU_ERROR_WRONG_TARGET, "'band'");
	assert_target(&target, AMU_ERROR_WRONG_TARGET, "'watch'");
}

static void
test_target_same_sequence(void)
{
	Target target = good_target;

	target.running_sequence = 2;
	assert_target(&target, AMU_ERROR_ROLLBACK, "already installed");
}

static void
test_target_older_sequence(void)
{
	Target target = good_target;

	target.running_sequence = 3;
	assert_target(&target, AMU_ERROR_ROLLBACK, "older");
	assert_target(&target, AMU_ERROR_ROLLBACK, "above 3");
}

static void
min_sequence_5(Amulet__V1__UpdateManifest *manifest)
{
	manifest->sequence = 9;
	manifest->min_sequence = 5;
}

static void
test_target_min_sequence(void)
{
	Target target = good_target;
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) at_min = NULL;

	target.running_sequence = 4;
	error = target_error(min_sequence_5, &target);
	AMU_ASSERT_ERROR(error, AMU_ERROR_ROLLBACK);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "install version with sequence >= 5 first"));
	target.running_sequence = 5;
	at_min = target_error(min_sequence_5, &target);
	CU_ASSERT_PTR_NULL(at_min);
}

static void
test_target_expired(void)
{
	Target target = good_target;
	g_autoptr(GError) before = NULL;

	target.now_ms = NOW_MS + 1000;
	assert_target(&target, AMU_ERROR_EXPIRED, "expired");
	target.now_ms = G_MAXINT64;
	assert_target(&target, AMU_ERROR_EXPIRED, "expired");
	target.now_ms = NOW_MS + 999;
	before = target_error(NULL, &target);
	CU_ASSERT_PTR_NULL(before);
}

static void
never_expires(Amulet__V1__UpdateManifest *manifest)
{
	manifest->expires_ms = 0;
}

static void
test_target_no_expiry(void)
{
	Target target = good_target;
	g_autoptr(GError) error = NULL;

	target.now_ms = G_MAXINT64;
	error = target_error(never_expires, &target);
	CU_ASSERT_PTR_NULL(error);
}

static void
test_target_too_large(void)
{
	Target target = good_target;
	g_autoptr(GError) fits = NULL;

	target.slot_size = PAYLOAD_LEN - 1;
	assert_target(&target, AMU_ERROR_TOO_LARGE, "1000 bytes");
	assert_target(&target, AMU_ERROR_TOO_LARGE, "999");
	target.slot_size = PAYLOAD_LEN;
	fits = target_error(NULL, &target);
	CU_ASSERT_PTR_NULL(fits);
}

static void
test_target_slot_unknown(void)
{
	Target target = good_target;
	g_autoptr(GError) error = NULL;

	target.slot_size = 0;
	error = target_error(NULL, &target);
	CU_ASSERT_PTR_NULL(error);
}

/* ---------------------------------------------------------------- keys */

static void
test_sim_key_deterministic(void)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], seed[32], expected_pk[32], expected_sk[64];
	const char *text = "amulet-sim test vendor key v1";

	amu_sim_vendor_keypair(pk, sk);
	amu_sim_vendor_keypair(pk2, sk2);
	CU_ASSERT_EQUAL(memcmp(pk, pk2, 32), 0);
	CU_ASSERT_EQUAL(memcmp(sk, sk2, 64), 0);
	crypto_hash_sha256(seed, (const uint8_t *)text, strlen(text));
	crypto_sign_seed_keypair(expected_pk, expected_sk, seed);
	CU_ASSERT_EQUAL(memcmp(pk, expected_pk, 32), 0);
	CU_ASSERT_EQUAL(memcmp(sk, expected_sk, 64), 0);
}

static void
test_key_file_round_trip(void)
{
	g_autofree char *dir = g_dir_make_tmp("amu-test-update-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "vendor.key", NULL);
	g_autofree char *contents = NULL;
	g_autofree char *spaced = NULL;
	g_autoptr(GError) error = NULL;
	uint8_t pk[32], pk_read[32], sk_read[64], pk_again[32];
	GStatBuf st;
	gsize len = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_TRUE_FATAL(amu_vendor_key_write_new(path, pk, &error));
	CU_ASSERT_EQUAL(g_stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_TRUE_FATAL(g_file_get_contents(path, &contents, &len, NULL));
	CU_ASSERT_EQUAL(len, 65);
	CU_ASSERT_EQUAL(strspn(contents, "0123456789abcdef"), 64);
	CU_ASSERT_EQUAL(contents[64], '\n');

	CU_ASSERT_TRUE(amu_vendor_keypair_from_file(path, pk_read, sk_read, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(memcmp(pk, pk_read, 32), 0);
	CU_ASSERT_EQUAL(memcmp(sk_read + 32, pk, 32), 0);

	/* whitespace around the digits */
	spaced = g_strdup_printf("  \n\t%.64s \n\n", contents);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, spaced, -1, NULL));
	CU_ASSERT_TRUE(amu_vendor_keypair_from_file(path, pk_again, sk_read, &error));
	CU_ASSERT_EQUAL(memcmp(pk, pk_again, 32), 0);

	/* never replaces a key */
	CU_ASSERT_FALSE(amu_vendor_key_write_new(path, pk_again, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_EXISTS);
	g_clear_error(&error);
	{
		g_autofree char *after = NULL;
		CU_ASSERT_TRUE(g_file_get_contents(path, &after, NULL, NULL));
		CU_ASSERT_STRING_EQUAL(after, spaced);
	}

	/* two new keys differ */
	{
		g_autofree char *path2 = g_build_filename(dir, "vendor2.key", NULL);
		uint8_t pk2[32];
		CU_ASSERT_TRUE(amu_vendor_key_write_new(path2, pk2, &error));
		CU_ASSERT_NOT_EQUAL(memcmp(pk, pk2, 32), 0);
	}
	amu_test_remove_tree(dir);
}

static void
test_key_file_malformed(void)
{
	g_autofree char *dir = g_dir_make_tmp("amu-test-update-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "vendor.key", NULL);
	g_autofree char *missing = g_build_filename(dir, "missing.key", NULL);
	g_autofree char *digits_63 = g_strnfill(63, 'a');
	g_autofree char *digits_65 = g_strnfill(65, 'a');
	g_autofree char *not_hex = g_strnfill(64, 'g');
	g_autofree char *split = g_strdup_printf("%.32s %.32s", not_hex, not_hex);
	g_autoptr(GError) error = NULL;
	const char *bad[] = {"", digits_63, digits_65, not_hex, split};
	uint8_t pk[32], sk[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	memset(split, 'a', 32);
	memset(split + 33, 'b', 32);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, bad[i], -1, NULL));
		CU_ASSERT_FALSE(amu_vendor_keypair_from_file(path, pk, sk, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
		CU_ASSERT_PTR_NOT_NULL(strstr(error->message, path));
		g_clear_error(&error);
	}
	/* 64 digits, then a NUL and more: not what a key file holds */
	{
		char with_nul[68];
		memset(with_nul, 'a', 64);
		memcpy(with_nul + 64, "\0xy\n", 4);
		CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, with_nul, sizeof(with_nul), NULL));
		CU_ASSERT_FALSE(amu_vendor_keypair_from_file(path, pk, sk, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
		g_clear_error(&error);
	}
	CU_ASSERT_FALSE(amu_vendor_keypair_from_file(missing, pk, sk, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	amu_test_remove_tree(dir);
}

/* ---------------------------------------------------------------- simulated images */

static void
test_image_boots(void)
{
	g_autoptr(GBytes) image = amu_sim_image_build("1.1.0", 2, TRUE, 4096);
	g_autofree char *version = NULL;
	uint64_t sequence = 0;
	const char *header = "AMUFW1\nversion=1.1.0\nsequence=2\nboot=ok\n\n";

	CU_ASSERT_EQUAL(g_bytes_get_size(image), 4096);
	CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(image, NULL), header, strlen(header)), 0);
	CU_ASSERT_TRUE(amu_sim_image_boots(g_bytes_get_data(image, NULL), 4096, &version, &sequence));
	CU_ASSERT_STRING_EQUAL(version, "1.1.0");
	CU_ASSERT_EQUAL(sequence, 2);
	CU_ASSERT_TRUE(amu_sim_image_boots(g_bytes_get_data(image, NULL), 4096, NULL, NULL));
}

static void
test_image_boot_fail(void)
{
	g_autoptr(GBytes) image = amu_sim_image_build("2.0.0-rc1", G_MAXUINT64, FALSE, 300);
	const char *header = "AMUFW1\nversion=2.0.0-rc1\nsequence=18446744073709551615\nboot=fail\n\n";
	g_autofree char *version = NULL;
	uint64_t sequence = 0;

	CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(image, NULL), header, strlen(header)), 0);
	CU_ASSERT_FALSE(amu_sim_image_boots(g_bytes_get_data(image, NULL), 300, &version, &sequence));
	/* still well-formed: the boot loader can say what failed */
	CU_ASSERT_STRING_EQUAL(version, "2.0.0-rc1");
	CU_ASSERT_EQUAL(sequence, G_MAXUINT64);
}

static void
test_image_header_only(void)
{
	const char *header = "AMUFW1\nversion=1\nsequence=1\nboot=ok\n\n";
	g_autoptr(GBytes) small = amu_sim_image_build("1", 1, TRUE, 3);
	g_autoptr(GBytes) exact = amu_sim_image_build("1", 1, TRUE, strlen(header));
	g_autoptr(GBytes) expected = g_bytes_new(header, strlen(header));

	CU_ASSERT_TRUE(g_bytes_equal(small, expected));
	CU_ASSERT_TRUE(g_bytes_equal(exact, expected));
	CU_ASSERT_TRUE(amu_sim_image_boots(g_bytes_get_data(exact, NULL), strlen(header), NULL, NULL));
}

static void
test_image_deterministic(void)
{
	g_autoptr(GBytes) a = amu_sim_image_build("1.1.0", 2, TRUE, 100000);
	g_autoptr(GBytes) b = amu_sim_image_build("1.1.0", 2, TRUE, 100000);
	g_autoptr(GBytes) shorter = amu_sim_image_build("1.1.0", 2, TRUE, 50000);
	g_autoptr(GBytes) other_version = amu_sim_image_build("1.1.1", 2, TRUE, 100000);
	g_autoptr(GBytes) failing = amu_sim_image_build("1.1.0", 2, FALSE, 100000);
	const uint8_t *data = g_bytes_get_data(a, NULL);
	size_t header_len = strlen("AMUFW1\nversion=1.1.0\nsequence=2\nboot=ok\n\n");
	size_t zeros = 0;

	CU_ASSERT_TRUE(g_bytes_equal(a, b));
	/* a shorter image of the same header is a prefix */
	CU_ASSERT_EQUAL(memcmp(data, g_bytes_get_data(shorter, NULL), 50000), 0);
	/* the filler depends on the header */
	CU_ASSERT_NOT_EQUAL(memcmp(data + header_len,
				   (const uint8_t *)g_bytes_get_data(other_version, NULL) + header_len, 1000),
			    0);
	CU_ASSERT_NOT_EQUAL(memcmp(data + header_len,
				   (const uint8_t *)g_bytes_get_data(failing, NULL) + header_len + 2, 1000),
			    0);
	/* and is not constant */
	for (size_t i = header_len; i < 100000; i++)
		zeros += data[i] == 0;
	CU_ASSERT_TRUE(zeros < 1000);
}

/* every prefix of a header is refused, read from an exact-size copy */
static void
test_image_short_header(void)
{
	const char *header = "AMUFW1\nversion=1.1.0\nsequence=12\nboot=ok\n\n";
	size_t header_len = strlen(header);

	for (size_t len = 0; len < header_len; len++) {
		g_autofree uint8_t *copy = g_memdup2(header, len > 0 ? len : 1);
		char *version = (char *)"not reset";
		uint64_t sequence = 7;

		CU_ASSERT_FALSE(amu_sim_image_boots(copy, len, &version, &sequence));
		CU_ASSERT_PTR_NULL(version);
		CU_ASSERT_EQUAL(sequence, 0);
	}
	CU_ASSERT_TRUE(amu_sim_image_boots((const uint8_t *)header, header_len, NULL, NULL));
}

static void
test_image_garbled_header(void)
{
	g_autofree char *long_version = g_strnfill(65, '1');
	g_autofree char *too_long =
		g_strdup_printf("AMUFW1\nversion=%s\nsequence=1\nboot=ok\n\n", long_version);
	const char *garbled[] = {
		"AMUFW2\nversion=1\nsequence=1\nboot=ok\n\n",
		"amufw1\nversion=1\nsequence=1\nboot=ok\n\n",
		"AMUFW1\nversion=\nsequence=1\nboot=ok\n\n",
		"AMUFW1\nversion=1\x01\nsequence=1\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=0\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=01\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=-1\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=1x\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=18446744073709551616\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=99999999999999999999\nboot=ok\n\n",
		"AMUFW1\nversion=1\nsequence=1\nboot=yes\n\n",
		"AMUFW1\nversion=1\nsequence=1\nboot=okay\n\n",
		"AMUFW1\nversion=1\nsequence=1\nboot=ok\nX",
		"AMUFW1\nsequence=1\nversion=1\nboot=ok\n\n",
		"AMUFW1\r\nversion=1\nsequence=1\nboot=ok\n\n",
		too_long,
	};

	for (size_t i = 0; i < G_N_ELEMENTS(garbled); i++) {
		size_t len = strlen(garbled[i]);
		g_autofree uint8_t *copy = g_memdup2(garbled[i], len);
		g_autofree char *version = NULL;

		if (amu_sim_image_boots(copy, len, &version, NULL))
			g_printerr("  accepted garbled header %zu\n", i);
		CU_ASSERT_FALSE(amu_sim_image_boots(copy, len, &version, NULL));
		CU_ASSERT_PTR_NULL(version);
	}
}

int
main(void)
{
	static const AmuTestCase cases[] = {
		{"valid package round trip", test_valid_round_trip},
		{"minimal package", test_minimal_package},
		{"file round trip", test_file_round_trip},
		{"signature bit flipped", test_signature_bit_flipped},
		{"manifest bit flipped", test_manifest_bit_flipped},
		{"signed with another key", test_other_key},
		{"signature of the wrong length", test_signature_wrong_length},
		{"signature without the context", test_signature_without_context},
		{"bad magic", test_bad_magic},
		{"shorter than the header", test_shorter_than_header},
		{"manifest length 0", test_manifest_length_zero},
		{"manifest length over 4096", test_manifest_length_over_max},
		{"manifest length past the end", test_manifest_length_past_end},
		{"structure: format", test_structure_format},
		{"structure: vendor_id", test_structure_vendor_id},
		{"structure: device_class", test_structure_device_class},
		{"structure: version", test_structure_version},
		{"structure: sequence", test_structure_sequence},
		{"structure: payload_size", test_structure_payload_size},
		{"structure: empty image package", test_structure_empty_payload_package},
		{"structure: payload_sha256", test_structure_payload_sha256},
		{"structure: changes UTF-8", test_structure_changes_utf8},
		{"structure: changes length", test_structure_changes_length},
		{"structure: changed_settings count", test_structure_changed_settings_count},
		{"structure: changed_settings names", test_structure_changed_settings_name},
		{"structure: not a manifest", test_structure_not_protobuf},
		{"image truncated", test_payload_truncated},
		{"bytes after the image", test_payload_trailing},
		{"image byte flipped", test_payload_byte_flipped},
		{"target accepted", test_target_accepted},
		{"target: vendor", test_target_vendor},
		{"target: device class", test_target_class},
		{"target: same sequence", test_target_same_sequence},
		{"target: older sequence", test_target_older_sequence},
		{"target: min_sequence", test_target_min_sequence},
		{"target: expired", test_target_expired},
		{"target: no expiry", test_target_no_expiry},
		{"target: too large", test_target_too_large},
		{"target: slot size unknown", test_target_slot_unknown},
		{"test vendor key is deterministic", test_sim_key_deterministic},
		{"vendor key file round trip", test_key_file_round_trip},
		{"vendor key file malformed", test_key_file_malformed},
		{"sim image boots", test_image_boots},
		{"sim image boot=fail", test_image_boot_fail},
		{"sim image header only", test_image_header_only},
		{"sim image deterministic", test_image_deterministic},
		{"sim image short header", test_image_short_header},
		{"sim image garbled header", test_image_garbled_header},
	};

	init_keys();
	return amu_test_run("update-package", cases, G_N_ELEMENTS(cases));
}
