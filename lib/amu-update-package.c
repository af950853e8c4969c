/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "amu-update-package.h"
#include "amulet/amu-error.h"

/* Signed firmware update packages and the simulator's images; the format and
 * every check are described in docs/update.md. Nothing here trusts a length
 * it read: each one is compared with what is really there before use. */

#define SIGN_CONTEXT_LEN (sizeof(AMU_UPDATE_SIGN_CONTEXT) - 1)
#define HASH_STEP (1024 * 1024)
#define KEY_FILE_MAX 1024
#define SIM_IMAGE_MAGIC "AMUFW1\n"
#define SIM_VENDOR_SEED_TEXT "amulet-sim test vendor key v1"

static void
sha256_of(uint8_t out[crypto_hash_sha256_BYTES], const uint8_t *data, size_t len)
{
	crypto_hash_sha256_state state;

	/* in steps, so a mapped image is read through once without a
	 * length cast to unsigned long long on a 32-bit size_t mattering */
	crypto_hash_sha256_init(&state);
	while (len > 0) {
		size_t step = MIN(len, (size_t)HASH_STEP);

		crypto_hash_sha256_update(&state, data, step);
		data += step;
		len -= step;
	}
	crypto_hash_sha256_final(&state, out);
}

static char *
hex_prefix(const uint8_t *data, size_t len)
{
	GString *hex = g_string_sized_new(len * 2);

	for (size_t i = 0; i < len; i++)
		g_string_append_printf(hex, "%02x", data[i]);
	return g_string_free(hex, FALSE);
}

/* ---------------------------------------------------------------- manifest */

gboolean
amu_update_name_valid(const char *text, size_t max)
{
	size_t len;

	if (text == NULL)
		return FALSE;
	len = strnlen(text, max + 1);
	if (len == 0 || len > max)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < 0x20 || text[i] > 0x7e)
			return FALSE;
	}
	return TRUE;
}

gboolean
amu_update_setting_name_valid(const char *text)
{
	size_t len;

	if (text == NULL)
		return FALSE;
	len = strnlen(text, AMU_UPDATE_SETTING_NAME_MAX + 1);
	if (len == 0 || len > AMU_UPDATE_SETTING_NAME_MAX)
		return FALSE;
	return strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

static gboolean
malformed(GError **error, const char *field, const char *rule)
{
	g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
		    "the signed manifest's %s %s: the vendor's build tool made a package this host does not "
		    "accept; ask the vendor for a corrected package",
		    field, rule);
	return FALSE;
}

static gboolean
manifest_check_structure(const Amulet__V1__UpdateManifest *manifest, GError **error)
{
	const char *changes = manifest->changes != NULL ? manifest->changes : "";
	size_t changes_len = strnlen(changes, AMU_UPDATE_CHANGES_MAX + 1);

	if (manifest->format != AMU_UPDATE_FORMAT) {
		g_autofree char *rule = g_strdup_printf("is %u, and only format %d is known",
							manifest->format, AMU_UPDATE_FORMAT);
		return malformed(error, "format", rule);
	}
	if (!amu_update_name_valid(manifest->vendor_id, AMU_UPDATE_NAME_MAX))
		return malformed(error, "vendor_id", "is not 1..64 printable ASCII characters");
	if (!amu_update_name_valid(manifest->device_class, AMU_UPDATE_NAME_MAX))
		return malformed(error, "device_class", "is not 1..64 printable ASCII characters");
	if (!amu_update_name_valid(manifest->version, AMU_UPDATE_NAME_MAX))
		return malformed(error, "version", "is not 1..64 printable ASCII characters");
	if (manifest->sequence == 0)
		return malformed(error, "sequence", "is 0, and sequences start at 1");
	if (manifest->payload_size == 0 || manifest->payload_size > AMU_UPDATE_PAYLOAD_MAX)
		return malformed(error, "payload_size", "is outside 1..1073741824 bytes");
	if (manifest->payload_sha256.len != crypto_hash_sha256_BYTES || manifest->payload_sha256.data == NULL)
		return malformed(error, "payload_sha256", "is not 32 bytes");
	if (changes_len > AMU_UPDATE_CHANGES_MAX)
		return malformed(error, "changes", "is longer than 4096 bytes");
	if (!g_utf8_validate(changes, (gssize)changes_len, NULL))
		return malformed(error, "changes", "is not valid UTF-8");
	if (manifest->n_changed_settings > AMU_UPDATE_CHANGED_SETTINGS_MAX)
		return malformed(error, "changed_settings", "lists more than 16 settings");
	for (size_t i = 0; i < manifest->n_changed_settings; i++) {
		if (!amu_update_setting_name_valid(manifest->changed_settings[i]))
			return malformed(error, "changed_settings",
					 "holds a name that is not 1..64 of a-z, 0-9 and _");
	}
	return TRUE;
}

AmuUpdateManifest *
amu_update_manifest_open(const uint8_t *manifest, size_t manifest_len, const uint8_t *signature,
			 size_t signature_len, const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES],
			 GError **error)
{
	uint8_t signed_bytes[SIGN_CONTEXT_LEN + AMU_UPDATE_MANIFEST_MAX];
	const uint8_t *copy = signed_bytes + SIGN_CONTEXT_LEN;
	uint8_t signature_copy[AMU_UPDATE_SIGNATURE_BYTES];
	g_autoptr(AmuUpdateManifest) m = NULL;

	g_return_val_if_fail(manifest != NULL || manifest_len == 0, NULL);
	g_return_val_if_fail(signature != NULL || signature_len == 0, NULL);
	g_return_val_if_fail(vendor_key != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	if (signature_len != AMU_UPDATE_SIGNATURE_BYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
			    "the manifest's signature is %zu bytes, not %d: the package is damaged or not "
			    "signed; get it again from the vendor",
			    signature_len, AMU_UPDATE_SIGNATURE_BYTES);
		return NULL;
	}
	/* a bound on what is copied for verification; the bytes are not read yet */
	if (manifest_len == 0 || manifest_len > AMU_UPDATE_MANIFEST_MAX) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "the manifest is %zu bytes, outside 1..%d: the package is malformed; get it "
			    "again from the vendor",
			    manifest_len, AMU_UPDATE_MANIFEST_MAX);
		return NULL;
	}
	/* everything after this reads the copies: the caller's bytes may be a
	 * mapped file that someone rewrites between the check and the use */
	memcpy(signed_bytes, AMU_UPDATE_SIGN_CONTEXT, SIGN_CONTEXT_LEN);
	memcpy(signed_bytes + SIGN_CONTEXT_LEN, manifest, manifest_len);
	memcpy(signature_copy, signature, sizeof(signature_copy));
	if (crypto_sign_verify_detached(signature_copy, signed_bytes, SIGN_CONTEXT_LEN + manifest_len,
					vendor_key) != 0) {
		g_autofree char *key_hex = hex_prefix(vendor_key, 8);
		g_set_error(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
			    "the manifest's signature does not verify with the vendor key %s…: the "
			    "package was altered or signed by someone else; use a package from this "
			    "device's vendor",
			    key_hex);
		return NULL;
	}

	m = g_new0(AmuUpdateManifest, 1);
	m->manifest_bytes = g_bytes_new(copy, manifest_len);
	memcpy(m->signature, signature_copy, AMU_UPDATE_SIGNATURE_BYTES);
	crypto_hash_sha256(m->manifest_sha256, copy, manifest_len);
	m->manifest = amulet__v1__update_manifest__unpack(NULL, manifest_len, copy);
	if (m->manifest == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "the signed manifest is not a valid UpdateManifest message: the vendor's build "
			    "tool made a package this host does not accept; ask the vendor for a corrected "
			    "package");
		return NULL;
	}
	if (!manifest_check_structure(m->manifest, error))
		return NULL;
	return g_steal_pointer(&m);
}

void
amu_update_manifest_free(AmuUpdateManifest *m)
{
	if (m == NULL)
		return;
	if (m->manifest != NULL)
		amulet__v1__update_manifest__free_unpacked(m->manifest, NULL);
	g_clear_pointer(&m->manifest_bytes, g_bytes_unref);
	g_free(m);
}

static char *
format_time_ms(int64_t ms)
{
	g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc(ms / 1000);

	if (time == NULL)
		return g_strdup_printf("%" G_GINT64_FORMAT " ms", ms);
	return g_date_time_format(time, "%Y-%m-%d %H:%M:%S UTC");
}

gboolean
amu_update_manifest_check_target(const AmuUpdateManifest *m, const char *vendor_id, const char *device_class,
				 uint64_t running_sequence, uint64_t slot_size, int64_t now_ms,
				 GError **error)
{
	const Amulet__V1__UpdateManifest *manifest;

	g_return_val_if_fail(m != NULL && m->manifest != NULL, FALSE);
	g_return_val_if_fail(vendor_id != NULL && device_class != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	manifest = m->manifest;

	if (g_strcmp0(manifest->vendor_id, vendor_id) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_WRONG_TARGET,
			    "the package is from vendor '%s', the device from vendor '%s': use a package "
			    "from '%s'",
			    manifest->vendor_id, vendor_id, vendor_id);
		return FALSE;
	}
	if (g_strcmp0(manifest->device_class, device_class) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_WRONG_TARGET,
			    "the package is for device class '%s', the device is a '%s': use a package "
			    "built for '%s'",
			    manifest->device_class, device_class, device_class);
		return FALSE;
	}
	if (manifest->sequence == running_sequence) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "version %s (sequence %" G_GUINT64_FORMAT ") is already installed: the device "
			    "runs sequence %" G_GUINT64_FORMAT "; only a newer package can be installed",
			    manifest->version, manifest->sequence, running_sequence);
		return FALSE;
	}
	if (manifest->sequence < running_sequence) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "version %s (sequence %" G_GUINT64_FORMAT ") is older than the running "
			    "firmware (sequence %" G_GUINT64_FORMAT "), and going back is refused: use a "
			    "package with a sequence above %" G_GUINT64_FORMAT,
			    manifest->version, manifest->sequence, running_sequence, running_sequence);
		return FALSE;
	}
	if (running_sequence < manifest->min_sequence) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "version %s needs the device to run sequence %" G_GUINT64_FORMAT
			    " or later, and it runs %" G_GUINT64_FORMAT ": install version with sequence >= "
			    "%" G_GUINT64_FORMAT " first",
			    manifest->version, manifest->min_sequence, running_sequence,
			    manifest->min_sequence);
		return FALSE;
	}
	if (manifest->expires_ms != 0 && now_ms >= manifest->expires_ms) {
		g_autofree char *expires = format_time_ms(manifest->expires_ms);
		g_autofree char *now = format_time_ms(now_ms);
		g_set_error(error, AMU_ERROR, AMU_ERROR_EXPIRED,
			    "version %s expired at %s, and it is now %s: get a current package from the "
			    "vendor (or check this computer's clock)",
			    manifest->version, expires, now);
		return FALSE;
	}
	if (slot_size != 0 && manifest->payload_size > slot_size) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TOO_LARGE,
			    "the image is %" G_GUINT64_FORMAT " bytes, and the device's update slot holds "
			    "%" G_GUINT64_FORMAT ": use a package built for this device",
			    manifest->payload_size, slot_size);
		return FALSE;
	}
	return TRUE;
}

/* ---------------------------------------------------------------- package */

static AmuUpdatePackage *
package_parse(GBytes *bytes, const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES], GError **error)
{
	g_autoptr(AmuUpdatePackage) p = g_new0(AmuUpdatePackage, 1);
	size_t size = 0;
	const uint8_t *data = g_bytes_get_data(bytes, &size);
	uint8_t digest[crypto_hash_sha256_BYTES];
	size_t manifest_len;
	size_t payload_offset;
	uint64_t payload_size;

	p->bytes = g_bytes_ref(bytes);
	if (size < AMU_UPDATE_HEADER_BYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "not an update package (%zu bytes, less than the %d-byte header): check that "
			    "this is the file the vendor published",
			    size, AMU_UPDATE_HEADER_BYTES);
		return NULL;
	}
	if (memcmp(data, AMU_UPDATE_MAGIC, AMU_UPDATE_MAGIC_LEN) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "not an update package (it does not start with %s): check that this is the "
			    "file the vendor published",
			    AMU_UPDATE_MAGIC);
		return NULL;
	}
	manifest_len =
		(size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24;
	if (manifest_len == 0 || manifest_len > AMU_UPDATE_MANIFEST_MAX) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "the manifest length is %zu bytes, outside 1..%d: the package is malformed; "
			    "get it again from the vendor",
			    manifest_len, AMU_UPDATE_MANIFEST_MAX);
		return NULL;
	}
	payload_offset = AMU_UPDATE_PAYLOAD_OFFSET(manifest_len);
	if (size < payload_offset) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "the %zu-byte manifest and its signature run past the end of the %zu-byte "
			    "package: the file is cut short; get it again from the vendor",
			    manifest_len, size);
		return NULL;
	}
	p->manifest = amu_update_manifest_open(data + AMU_UPDATE_HEADER_BYTES, manifest_len,
					       data + AMU_UPDATE_HEADER_BYTES + manifest_len,
					       AMU_UPDATE_SIGNATURE_BYTES, vendor_key, error);
	if (p->manifest == NULL)
		return NULL;

	payload_size = p->manifest->manifest->payload_size;
	p->payload = data + payload_offset;
	p->payload_len = size - payload_offset;
	if ((uint64_t)p->payload_len < payload_size) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED,
			    "the image is truncated: %zu of %" G_GUINT64_FORMAT " bytes; get the package "
			    "again from the vendor",
			    p->payload_len, payload_size);
		return NULL;
	}
	if ((uint64_t)p->payload_len > payload_size) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED,
			    "the package has %" G_GUINT64_FORMAT " bytes after the image, which the "
			    "signed manifest does not cover: get the package again from the vendor",
			    (uint64_t)p->payload_len - payload_size);
		return NULL;
	}
	sha256_of(digest, p->payload, p->payload_len);
	if (sodium_memcmp(digest, p->manifest->manifest->payload_sha256.data, sizeof(digest)) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED,
			    "the image's SHA-256 differs from the one in the signed manifest: the file "
			    "is corrupted or was altered; get the package again from the vendor");
		return NULL;
	}
	return g_steal_pointer(&p);
}

AmuUpdatePackage *
amu_update_package_parse(GBytes *bytes, const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES], GError **error)
{
	g_return_val_if_fail(bytes != NULL, NULL);
	g_return_val_if_fail(vendor_key != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	return package_parse(bytes, vendor_key, error);
}

AmuUpdatePackage *
amu_update_package_load(const char *path, const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES], GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GMappedFile) mapped = NULL;
	g_autoptr(GBytes) bytes = NULL;
	AmuUpdatePackage *p;

	g_return_val_if_fail(path != NULL, NULL);
	g_return_val_if_fail(vendor_key != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "%s: is a directory: give the path of a package file", path);
		return NULL;
	}
	mapped = g_mapped_file_new(path, FALSE, &error_local);
	if (mapped == NULL) {
		int code = AMU_ERROR_IO;

		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			code = AMU_ERROR_NOT_FOUND;
		else if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_ACCES) ||
			 g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_PERM))
			code = AMU_ERROR_PERMISSION_DENIED;
		g_set_error(error, AMU_ERROR, code, "%s: cannot read the package: %s", path,
			    error_local->message);
		return NULL;
	}
	bytes = g_mapped_file_get_bytes(mapped);
	p = package_parse(bytes, vendor_key, error);
	if (p == NULL) {
		g_prefix_error(error, "%s: ", path);
		return NULL;
	}
	p->mapped = g_steal_pointer(&mapped);
	return p;
}

void
amu_update_package_free(AmuUpdatePackage *p)
{
	if (p == NULL)
		return;
	amu_update_manifest_free(p->manifest);
	g_clear_pointer(&p->bytes, g_bytes_unref);
	g_clear_pointer(&p->mapped, g_mapped_file_unref);
	g_free(p);
}

GBytes *
amu_update_package_build(Amulet__V1__UpdateManifest *manifest, const uint8_t *payload, size_t payload_len,
			 const uint8_t vendor_sk[AMU_VENDOR_SECRETKEYBYTES])
{
	uint8_t digest[crypto_hash_sha256_BYTES];
	ProtobufCBinaryData caller_digest;
	g_autofree uint8_t *signed_bytes = NULL;
	uint8_t *package;
	size_t manifest_len;
	size_t total;

	g_return_val_if_fail(manifest != NULL, NULL);
	g_return_val_if_fail(payload != NULL || payload_len == 0, NULL);
	g_return_val_if_fail(vendor_sk != NULL, NULL);

	sha256_of(digest, payload, payload_len);
	caller_digest = manifest->payload_sha256;
	manifest->payload_size = payload_len;
	manifest->payload_sha256.data = digest;
	manifest->payload_sha256.len = sizeof(digest);

	manifest_len = amulet__v1__update_manifest__get_packed_size(manifest);
	if (manifest_len > G_MAXUINT32) {
		manifest->payload_sha256 = caller_digest;
		g_return_val_if_reached(NULL);
	}
	total = AMU_UPDATE_PAYLOAD_OFFSET(manifest_len) + payload_len;
	package = g_malloc(total);
	memcpy(package, AMU_UPDATE_MAGIC, AMU_UPDATE_MAGIC_LEN);
	package[8] = (uint8_t)manifest_len;
	package[9] = (uint8_t)(manifest_len >> 8);
	package[10] = (uint8_t)(manifest_len >> 16);
	package[11] = (uint8_t)(manifest_len >> 24);
	amulet__v1__update_manifest__pack(manifest, package + AMU_UPDATE_HEADER_BYTES);
	manifest->payload_sha256 = caller_digest;

	signed_bytes = g_malloc(SIGN_CONTEXT_LEN + manifest_len);
	memcpy(signed_bytes, AMU_UPDATE_SIGN_CONTEXT, SIGN_CONTEXT_LEN);
	memcpy(signed_bytes + SIGN_CONTEXT_LEN, package + AMU_UPDATE_HEADER_BYTES, manifest_len);
	crypto_sign_detached(package + AMU_UPDATE_HEADER_BYTES + manifest_len, NULL, signed_bytes,
			     SIGN_CONTEXT_LEN + manifest_len, vendor_sk);
	if (payload_len > 0)
		memcpy(package + AMU_UPDATE_PAYLOAD_OFFSET(manifest_len), payload, payload_len);
	return g_bytes_new_take(package, total);
}

/* ---------------------------------------------------------------- vendor keys */

void
amu_sim_vendor_keypair(uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES], uint8_t sk[AMU_VENDOR_SECRETKEYBYTES])
{
	uint8_t seed[crypto_sign_SEEDBYTES];

	crypto_hash_sha256(seed, (const uint8_t *)SIM_VENDOR_SEED_TEXT, strlen(SIM_VENDOR_SEED_TEXT));
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));
}

gboolean
amu_vendor_keypair_from_file(const char *path, uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES],
			     uint8_t sk[AMU_VENDOR_SECRETKEYBYTES], GError **error)
{
	g_autoptr(GError) error_local = NULL;
	uint8_t seed[crypto_sign_SEEDBYTES];
	char *text = NULL;
	const char *digits;
	gsize len = 0;
	GStatBuf st;
	gboolean ok = TRUE;

	g_return_val_if_fail(path != NULL && pk != NULL && sk != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (g_stat(path, &st) != 0) {
		int saved = errno;
		g_set_error(error, AMU_ERROR, saved == ENOENT ? AMU_ERROR_NOT_FOUND : AMU_ERROR_IO,
			    "%s: cannot read the vendor key: %s", path, g_strerror(saved));
		return FALSE;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "%s: not a vendor key file (a 32-byte seed as 64 hex digits, as "
			    "'amulet-sim make-update --keygen' writes)",
			    path);
		return FALSE;
	}
	if (!g_file_get_contents(path, &text, &len, &error_local)) {
		g_set_error(error, AMU_ERROR,
			    g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT)
				    ? AMU_ERROR_NOT_FOUND
				    : AMU_ERROR_IO,
			    "%s: cannot read the vendor key: %s", path, error_local->message);
		return FALSE;
	}
	if (memchr(text, '\0', len) != NULL)
		ok = FALSE;
	digits = g_strstrip(text);
	if (strlen(digits) != 2 * sizeof(seed))
		ok = FALSE;
	for (size_t i = 0; ok && i < sizeof(seed); i++) {
		int hi = g_ascii_xdigit_value(digits[2 * i]);
		int lo = g_ascii_xdigit_value(digits[2 * i + 1]);

		if (hi < 0 || lo < 0)
			ok = FALSE;
		else
			seed[i] = (uint8_t)(hi << 4 | lo);
	}
	sodium_memzero(text, len);
	g_free(text);
	if (!ok) {
		sodium_memzero(seed, sizeof(seed));
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "%s: not a vendor key file (a 32-byte seed as 64 hex digits, as "
			    "'amulet-sim make-update --keygen' writes)",
			    path);
		return FALSE;
	}
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));
	return TRUE;
}

gboolean
amu_vendor_key_write_new(const char *path, uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES], GError **error)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	char hex[2 * crypto_sign_SEEDBYTES + 2];
	size_t done = 0;
	int fd;
	int saved = 0;

	g_return_val_if_fail(path != NULL && pk != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (sodium_init() < 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_FAILED,
			    "libsodium could not start, so no key can be made: check that /dev/urandom "
			    "is readable");
		return FALSE;
	}
	fd = g_open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		saved = errno;
		if (saved == EEXIST)
			g_set_error(error, AMU_ERROR, AMU_ERROR_EXISTS,
				    "%s: already exists: choose another name (replacing a key file would "
				    "lose its key)",
				    path);
		else
			g_set_error(error, AMU_ERROR,
				    saved == EACCES ? AMU_ERROR_PERMISSION_DENIED : AMU_ERROR_IO,
				    "%s: cannot create the key file: %s", path, g_strerror(saved));
		return FALSE;
	}
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(sk, sizeof(sk));
	sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
	sodium_memzero(seed, sizeof(seed));
	hex[2 * crypto_sign_SEEDBYTES] = '\n';
	while (done < sizeof(hex) - 1) {
		ssize_t n = write(fd, hex + done, sizeof(hex) - 1 - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : EIO;
			break;
		}
		done += (size_t)n;
	}
	sodium_memzero(hex, sizeof(hex));
	if (saved == 0 && fsync(fd) != 0)
		saved = errno;
	if (close(fd) != 0 && saved == 0)
		saved = errno;
	if (saved != 0) {
		g_unlink(path);
		sodium_memzero(pk, AMU_VENDOR_PUBLICKEYBYTES);
		g_set_error(error, AMU_ERROR, saved == ENOSPC ? AMU_ERROR_NO_SPACE : AMU_ERROR_IO,
			    "%s: cannot write the key file: %s", path, g_strerror(saved));
		return FALSE;
	}
	return TRUE;
}

/* ---------------------------------------------------------------- simulated images */

GBytes *
amu_sim_image_build(const char *version, uint64_t sequence, gboolean boots, size_t size)
{
	g_autofree char *header = NULL;
	uint8_t key[crypto_hash_sha256_BYTES];
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
	size_t header_len;
	uint8_t *image;

	g_return_val_if_fail(amu_update_name_valid(version, AMU_UPDATE_NAME_MAX), NULL);
	g_return_val_if_fail(sequence > 0, NULL);

	header = g_strdup_printf("AMUFW1\nversion=%s\nsequence=%" G_GUINT64_FORMAT "\nboot=%s\n\n", version,
				 sequence, boots ? "ok" : "fail");
	header_len = strlen(header);
	size = MAX(size, header_len);
	image = g_malloc(size);
	memcpy(image, header, header_len);
	crypto_hash_sha256(key, (const uint8_t *)header, header_len);
	if (size > header_len)
		crypto_stream_chacha20(image + header_len, size - header_len, nonce, key);
	return g_bytes_new_take(image, size);
}

/* consumes @literal at *at, without reading past @end */
static gboolean
take_literal(const uint8_t **at, const uint8_t *end, const char *literal)
{
	size_t len = strlen(literal);

	if ((size_t)(end - *at) < len || memcmp(*at, literal, len) != 0)
		return FALSE;
	*at += len;
	return TRUE;
}

/* the bytes up to the next newline, at most @max of them, newline consumed */
static gboolean
take_line(const uint8_t **at, const uint8_t *end, size_t max, const uint8_t **line, size_t *line_len)
{
	size_t avail = (size_t)(end - *at);
	const uint8_t *newline = memchr(*at, '\n', MIN(avail, max + 1));

	if (newline == NULL)
		return FALSE;
	*line = *at;
	*line_len = (size_t)(newline - *at);
	*at = newline + 1;
	return TRUE;
}

gboolean
amu_sim_image_boots(const uint8_t *image, size_t len, char **version, uint64_t *sequence)
{
	const uint8_t *at = image;
	const uint8_t *end;
	const uint8_t *version_text, *digits;
	size_t version_len, n_digits;
	uint64_t value = 0;
	gboolean boots;

	if (version != NULL)
		*version = NULL;
	if (sequence != NULL)
		*sequence = 0;
	g_return_val_if_fail(image != NULL || len == 0, FALSE);
	if (image == NULL)
		return FALSE;
	end = image + len;

	if (!take_literal(&at, end, SIM_IMAGE_MAGIC) || !take_literal(&at, end, "version=") ||
	    !take_line(&at, end, AMU_UPDATE_NAME_MAX, &version_text, &version_len) || version_len == 0)
		return FALSE;
	for (size_t i = 0; i < version_len; i++) {
		if (version_text[i] < 0x20 || version_text[i] > 0x7e)
			return FALSE;
	}
	/* sequence: 1..20 decimal digits, no leading zero, no overflow, above 0 */
	if (!take_literal(&at, end, "sequence=") || !take_line(&at, end, 20, &digits, &n_digits) ||
	    n_digits == 0 || digits[0] == '0')
		return FALSE;
	for (size_t i = 0; i < n_digits; i++) {
		unsigned digit = (unsigned)digits[i] - '0';

		if (digit > 9 || value > (G_MAXUINT64 - digit) / 10)
			return FALSE;
		value = value * 10 + digit;
	}
	if (take_literal(&at, end, "boot=ok\n"))
		boots = TRUE;
	else if (take_literal(&at, end, "boot=fail\n"))
		boots = FALSE;
	else
		return FALSE;
	if (!take_literal(&at, end, "\n"))
		return FALSE;
	if (version != NULL)
		*version = g_strndup((const char *)version_text, version_len);
	if (sequence != NULL)
		*sequence = value;
	return boots;
}
