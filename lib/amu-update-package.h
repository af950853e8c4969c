/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amulet.pb-c.h"

G_BEGIN_DECLS

/* Signed firmware update packages (docs/update.md "The package file"):
 *
 *   "AMUPKG01" | manifest length m (u32 LE) | manifest | Ed25519 signature | image
 *
 * The signature covers AMU_UPDATE_SIGN_CONTEXT || manifest; the manifest is
 * unpacked only after it verifies, and the image is trusted only through
 * the SHA-256 the signed manifest names. */

#define AMU_UPDATE_MAGIC "AMUPKG01"
#define AMU_UPDATE_MAGIC_LEN 8
#define AMU_UPDATE_MANIFEST_MAX 4096
#define AMU_UPDATE_SIGNATURE_BYTES 64
#define AMU_UPDATE_SIGN_CONTEXT "amulet-update-manifest-v1"
#define AMU_UPDATE_PAYLOAD_MAX (G_GUINT64_CONSTANT(1) << 30)
#define AMU_SIM_VENDOR_ID "amulet-sim"

/* the bytes before the manifest, and before the image after an m-byte manifest */
#define AMU_UPDATE_HEADER_BYTES (AMU_UPDATE_MAGIC_LEN + 4)
#define AMU_UPDATE_PAYLOAD_OFFSET(m) (AMU_UPDATE_HEADER_BYTES + (m) + AMU_UPDATE_SIGNATURE_BYTES)

/* limits of the manifest's fields */
#define AMU_UPDATE_FORMAT 1
#define AMU_UPDATE_NAME_MAX 64
#define AMU_UPDATE_CHANGES_MAX 4096
#define AMU_UPDATE_CHANGED_SETTINGS_MAX 16
#define AMU_UPDATE_SETTING_NAME_MAX 64

/* vendor key sizes (libsodium's Ed25519) */
#define AMU_VENDOR_PUBLICKEYBYTES 32
#define AMU_VENDOR_SECRETKEYBYTES 64
#define AMU_VENDOR_SEEDBYTES 32

typedef struct {
	Amulet__V1__UpdateManifest *manifest; /* unpacked, owned */
	GBytes *manifest_bytes;               /* exactly as signed */
	uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES];
	uint8_t manifest_sha256[32]; /* SHA-256 of manifest_bytes: names the offer */
} AmuUpdateManifest;

/* Checks, in this order: the signature's length (AMU_ERROR_BAD_SIGNATURE);
 * manifest_len 1..AMU_UPDATE_MANIFEST_MAX (AMU_ERROR_PROTOCOL: a bound on
 * what is copied to be verified, nothing of the manifest is read yet); the
 * Ed25519 signature over AMU_UPDATE_SIGN_CONTEXT || manifest with vendor_key
 * (AMU_ERROR_BAD_SIGNATURE). Only then it unpacks and checks the structure
 * (AMU_ERROR_PROTOCOL, naming the field): format == 1; vendor_id,
 * device_class and version 1..64 printable ASCII; sequence > 0;
 * 0 < payload_size <= AMU_UPDATE_PAYLOAD_MAX; payload_sha256 exactly 32
 * bytes; changes <= 4096 bytes of valid UTF-8; at most 16 changed_settings,
 * each 1..64 of [a-z0-9_]. The manifest and signature are copied. */
AmuUpdateManifest *amu_update_manifest_open(const uint8_t *manifest, size_t manifest_len,
					    const uint8_t *signature, size_t signature_len,
					    const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES],
					    GError **error);
void amu_update_manifest_free(AmuUpdateManifest *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuUpdateManifest, amu_update_manifest_free)

/* Target checks, in this order, each with its own code and a message naming
 * both values and the fix: vendor differs (AMU_ERROR_WRONG_TARGET),
 * device_class differs (AMU_ERROR_WRONG_TARGET), sequence <= running_sequence
 * (AMU_ERROR_ROLLBACK; equal: already installed, below: older),
 * running_sequence < min_sequence (AMU_ERROR_ROLLBACK), expires_ms != 0 &&
 * now_ms >= expires_ms (AMU_ERROR_EXPIRED), payload_size > slot_size
 * (AMU_ERROR_TOO_LARGE; slot_size 0 means unknown: that check is skipped). */
gboolean amu_update_manifest_check_target(const AmuUpdateManifest *m, const char *vendor_id,
					  const char *device_class, uint64_t running_sequence,
					  uint64_t slot_size, int64_t now_ms, GError **error);

typedef struct {
	AmuUpdateManifest *manifest;
	GMappedFile *mapped; /* NULL when parsed from memory */
	GBytes *bytes;       /* the whole package */
	const uint8_t *payload;
	size_t payload_len;
} AmuUpdatePackage;

/* Parses a whole package: magic and manifest length (AMU_ERROR_PROTOCOL),
 * then amu_update_manifest_open(), then payload length == payload_size
 * (AMU_ERROR_TAMPERED, "truncated: N of M bytes" when short, "N bytes after
 * the image" when long), then the payload's SHA-256 (AMU_ERROR_TAMPERED).
 * Holds a reference to @bytes; payload points into it. */
AmuUpdatePackage *amu_update_package_parse(GBytes *bytes,
					   const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES],
					   GError **error);
/* The same on a file, mapped read-only so memory stays bounded for large
 * images; errors are prefixed with the path; a missing file is
 * AMU_ERROR_NOT_FOUND. The file must not change while the package is used. */
AmuUpdatePackage *amu_update_package_load(const char *path,
					  const uint8_t vendor_key[AMU_VENDOR_PUBLICKEYBYTES],
					  GError **error);
void amu_update_package_free(AmuUpdatePackage *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuUpdatePackage, amu_update_package_free)

/* Builds a package: sets manifest->payload_size from the payload, signs the
 * manifest packed with payload_sha256 set to the payload's digest (the field
 * is put back as the caller had it on return, since the digest lives on this
 * function's stack; the caller fills the rest, format included), with the
 * 64-byte libsodium secret key. Nothing is checked, so that tests can build
 * packages that break the rules; the result is never NULL. */
GBytes *amu_update_package_build(Amulet__V1__UpdateManifest *manifest, const uint8_t *payload,
				 size_t payload_len,
				 const uint8_t vendor_sk[AMU_VENDOR_SECRETKEYBYTES]);

/* The simulator's published test vendor key: seed = SHA-256("amulet-sim test vendor key v1"). */
void amu_sim_vendor_keypair(uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES],
			    uint8_t sk[AMU_VENDOR_SECRETKEYBYTES]);
/* A vendor key file holds a 32-byte seed as 64 hex digits (whitespace
 * around allowed): AMU_ERROR_NOT_FOUND when missing, AMU_ERROR_INVALID_ARGUMENT
 * when it holds anything else. */
gboolean amu_vendor_keypair_from_file(const char *path, uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES],
				      uint8_t sk[AMU_VENDOR_SECRETKEYBYTES], GError **error);
/* Writes a new random seed file, mode 0600; refuses to replace an existing
 * file (AMU_ERROR_EXISTS), since that would lose a signing key. */
gboolean amu_vendor_key_write_new(const char *path, uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES],
				  GError **error);

/* The manifest's rules for names, shared with the tool that builds
 * packages: 1..@max printable ASCII (vendor, device class, version; NULL
 * counts as empty), and 1..AMU_UPDATE_SETTING_NAME_MAX of [a-z0-9_] for a
 * setting's name. */
gboolean amu_update_name_valid(const char *text, size_t max);
gboolean amu_update_setting_name_valid(const char *text);

/* Simulated firmware images (docs/update.md "The simulated device"): a text
 * header "AMUFW1\nversion=V\nsequence=N\nboot=ok|fail\n\n" then filler (a
 * ChaCha20 keystream keyed by the header's SHA-256) up to size bytes (when
 * size is below the header's length, the header alone). @version is 1..64
 * printable ASCII, @sequence > 0. */
GBytes *amu_sim_image_build(const char *version, uint64_t sequence, gboolean boots, size_t size);
/* TRUE if the image has a well-formed header with boot=ok. version (nullable,
 * free with g_free) and sequence (nullable) are filled whenever the header
 * is well-formed, boot=fail included, and are NULL and 0 otherwise. Never
 * reads past len. */
gboolean amu_sim_image_boots(const uint8_t *image, size_t len, char **version, uint64_t *sequence);

G_END_DECLS
