/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amu-update-package.h"
#include "amulet-sim-update.h"
#include "amulet/amulet.h"

/* amulet-sim make-update: a signed update package holding a simulated
 * firmware image (docs/update.md), signed with the published test vendor
 * key unless --sign-key names another. What it writes is parsed back with
 * the library's own checks before it is saved, so the tool never leaves a
 * package behind that a host would refuse for its structure. */

#define DEFAULT_IMAGE_SIZE 262144
#define DEFAULT_CHANGES "Maintenance release."

static int usage_error(const char *format, ...) G_GNUC_PRINTF(1, 2);

static int
usage_error(const char *format, ...)
{
	g_autofree char *message = NULL;
	va_list args;

	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);
	fprintf(stderr, "amulet-sim make-update: %s\nTry 'amulet-sim make-update --help'.\n", message);
	return 2;
}

static int
failed(const char *message)
{
	fprintf(stderr, "amulet-sim make-update: %s\n", message);
	return 1;
}

static gboolean
parse_uint64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	guint64 value = 0;

	if (text == NULL || !g_ascii_string_to_unsigned(text, 10, min, max, &value, NULL))
		return FALSE;
	*out = value;
	return TRUE;
}

/* YYYY-MM-DD, UTC midnight, in ms */
static gboolean
parse_date(const char *text, int64_t *ms)
{
	g_autoptr(GDateTime) date = NULL;
	int year, month, day;

	if (strlen(text) != 10 || text[4] != '-' || text[7] != '-')
		return FALSE;
	for (int i = 0; i < 10; i++) {
		if (i != 4 && i != 7 && !g_ascii_isdigit(text[i]))
			return FALSE;
	}
	year = atoi(text);
	month = atoi(text + 5);
	day = atoi(text + 8);
	if (year < 1970 || !g_date_valid_dmy((GDateDay)day, (GDateMonth)month, (GDateYear)year))
		return FALSE;
	date = g_date_time_new_utc(year, month, day, 0, 0, 0);
	if (date == NULL)
		return FALSE;
	*ms = g_date_time_to_unix(date) * 1000;
	return TRUE;
}

static int
keygen(const char *path)
{
	g_autoptr(GError) error = NULL;
	uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES];
	char hex[2 * AMU_VENDOR_PUBLICKEYBYTES + 1];

	if (!amu_vendor_key_write_new(path, pk, &error))
		return failed(error->message);
	sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
	printf("public key: %s\n", hex);
	return 0;
}

int
amu_sim_make_update_main(int argc, char **argv)
{
	g_autofree char *out = NULL;
	g_autofree char *version = NULL;
	g_autofree char *sequence_text = NULL;
	g_autofree char *device_class = NULL;
	g_autofree char *vendor = NULL;
	g_autofree char *size_text = NULL;
	g_autofree char *changes = NULL;
	g_auto(GStrv) changed_settings = NULL;
	g_autofree char *min_sequence_text = NULL;
	g_autofree char *expires = NULL;
	g_autofree char *sign_key = NULL;
	g_autofree char *keygen_path = NULL;
	gboolean security = FALSE, boot_fail = FALSE;
	GOptionEntry entries[] = {
		{"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "the package file to write", "FILE"},
		{"version", 0, 0, G_OPTION_ARG_STRING, &version, "the version shown to the owner, e.g. 1.1.0",
		 "V"},
		{"sequence", 0, 0, G_OPTION_ARG_STRING, &sequence_text,
		 "the image's sequence number, above 0", "N"},
		{"class", 0, 0, G_OPTION_ARG_STRING, &device_class, "band, watch or toy (default band)",
		 "CLASS"},
		{"vendor", 0, 0, G_OPTION_ARG_STRING, &vendor, "the vendor id (default amulet-sim)", "ID"},
		{"size", 0, 0, G_OPTION_ARG_STRING, &size_text, "the image's size (default 262144)", "BYTES"},
		{"security", 0, 0, G_OPTION_ARG_NONE, &security, "the update fixes a security problem", NULL},
		{"changes", 0, 0, G_OPTION_ARG_STRING, &changes, "what changes, in plain words", "TEXT"},
		{"changed-setting", 0, 0, G_OPTION_ARG_STRING_ARRAY, &changed_settings,
		 "a setting whose meaning changes (repeatable)", "KEY"},
		{"min-sequence", 0, 0, G_OPTION_ARG_STRING, &min_sequence_text,
		 "the device must run at least this sequence", "N"},
		{"expires", 0, 0, G_OPTION_ARG_STRING, &expires,
		 "not installable from this day on (UTC midnight)", "YYYY-MM-DD"},
		{"boot-fail", 0, 0, G_OPTION_ARG_NONE, &boot_fail,
		 "an image that passes every check but does not boot", NULL},
		{"sign-key", 0, 0, G_OPTION_ARG_FILENAME, &sign_key,
		 "vendor key (seed) file to sign with (default: the published test key)", "FILE"},
		{"keygen", 0, 0, G_OPTION_ARG_FILENAME, &keygen_path,
		 "write a new vendor key file (mode 0600, never replacing one) and print its public key",
		 "FILE"},
		{NULL},
	};
	g_autoptr(GOptionContext) context = g_option_context_new("- build a signed firmware update package");
	Amulet__V1__UpdateManifest manifest = AMULET__V1__UPDATE_MANIFEST__INIT;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) image = NULL;
	g_autoptr(GBytes) package = NULL;
	g_autoptr(AmuUpdatePackage) parsed = NULL;
	uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES];
	uint8_t sk[AMU_VENDOR_SECRETKEYBYTES];
	uint8_t digest[crypto_hash_sha256_BYTES];
	char digest_hex[2 * crypto_hash_sha256_BYTES + 1];
	uint64_t sequence = 0, min_sequence = 0, size = DEFAULT_IMAGE_SIZE;
	int64_t expires_ms = 0;
	guint n_settings;

	g_option_context_add_main_entries(context, entries, NULL);
	g_option_context_set_description(
		context,
		"Packages are signed with the published amulet-sim test key unless --sign-key is given;\n"
		"that key is public and must never sign real firmware. See docs/update.md.");
	if (!g_option_context_parse(context, &argc, &argv, &error))
		return usage_error("%s", error->message);
	if (argc > 1)
		return usage_error("unexpected argument '%s'", argv[1]);
	if (sodium_init() < 0)
		return failed("libsodium could not start: check that /dev/urandom is readable");

	if (keygen_path != NULL) {
		if (out != NULL || version != NULL || sequence_text != NULL || sign_key != NULL)
			return usage_error("--keygen FILE takes no other options");
		return keygen(keygen_path);
	}

	if (out == NULL || version == NULL || sequence_text == NULL)
		return usage_error("--out FILE, --version V and --sequence N are required");
	if (!amu_update_name_valid(version, AMU_UPDATE_NAME_MAX))
		return usage_error("--version '%s' must be 1..64 printable ASCII characters", version);
	if (!parse_uint64(sequence_text, 1, G_MAXUINT64, &sequence))
		return usage_error("--sequence '%s' is not a number above 0", sequence_text);
	if (device_class == NULL)
		device_class = g_strdup("band");
	if (g_strcmp0(device_class, "band") != 0 && g_strcmp0(device_class, "watch") != 0 &&
	    g_strcmp0(device_class, "toy") != 0)
		return usage_error("unknown --class '%s': use band, watch or toy", device_class);
	if (vendor == NULL)
		vendor = g_strdup(AMU_SIM_VENDOR_ID);
	if (!amu_update_name_valid(vendor, AMU_UPDATE_NAME_MAX))
		return usage_error("--vendor '%s' must be 1..64 printable ASCII characters", vendor);
	if (size_text != NULL && !parse_uint64(size_text, 1, AMU_UPDATE_PAYLOAD_MAX, &size))
		return usage_error("--size '%s' is not a number of bytes in 1..%" G_GUINT64_FORMAT, size_text,
				   AMU_UPDATE_PAYLOAD_MAX);
	if (changes == NULL)
		changes = g_strdup(DEFAULT_CHANGES);
	if (strlen(changes) > AMU_UPDATE_CHANGES_MAX || !g_utf8_validate(changes, -1, NULL))
		return usage_error("--changes must be at most %d bytes of UTF-8 text",
				   AMU_UPDATE_CHANGES_MAX);
	n_settings = changed_settings != NULL ? g_strv_length(changed_settings) : 0;
	if (n_settings > AMU_UPDATE_CHANGED_SETTINGS_MAX)
		return usage_error("--changed-setting is given %u times; at most %d settings can be named",
				   n_settings, AMU_UPDATE_CHANGED_SETTINGS_MAX);
	for (guint i = 0; i < n_settings; i++) {
		if (!amu_update_setting_name_valid(changed_settings[i]))
			return usage_error("--changed-setting '%s' must be 1..64 of a-z, 0-9 and _",
					   changed_settings[i]);
	}
	if (min_sequence_text != NULL && !parse_uint64(min_sequence_text, 0, G_MAXUINT64, &min_sequence))
		return usage_error("--min-sequence '%s' is not a number", min_sequence_text);
	if (expires != NULL && !parse_date(expires, &expires_ms))
		return usage_error("--expires '%s' is not a date like 2027-06-30", expires);

	manifest.format = AMU_UPDATE_FORMAT;
	manifest.vendor_id = vendor;
	manifest.device_class = device_class;
	manifest.version = version;
	manifest.sequence = sequence;
	manifest.min_sequence = min_sequence;
	manifest.expires_ms = expires_ms;
	manifest.security = security;
	manifest.changes = changes;
	manifest.n_changed_settings = n_settings;
	manifest.changed_settings = changed_settings;
	/* the size the signed manifest will have, its digest included */
	manifest.payload_size = size;
	manifest.payload_sha256.data = digest;
	manifest.payload_sha256.len = sizeof(digest);
	if (amulet__v1__update_manifest__get_packed_size(&manifest) > AMU_UPDATE_MANIFEST_MAX)
		return usage_error(
			"--changes and --changed-setting make the manifest %zu bytes, and at most %d "
			"fit: shorten --changes",
			amulet__v1__update_manifest__get_packed_size(&manifest), AMU_UPDATE_MANIFEST_MAX);
	manifest.payload_sha256.data = NULL;
	manifest.payload_sha256.len = 0;

	if (sign_key != NULL) {
		if (!amu_vendor_keypair_from_file(sign_key, pk, sk, &error))
			return failed(error->message);
	} else {
		amu_sim_vendor_keypair(pk, sk);
	}

	image = amu_sim_image_build(version, sequence, !boot_fail, (size_t)size);
	package = amu_update_package_build(&manifest, g_bytes_get_data(image, NULL), g_bytes_get_size(image),
					   sk);
	sodium_memzero(sk, sizeof(sk));

	/* the host's own checks, so nothing is written that it would refuse */
	parsed = amu_update_package_parse(package, pk, &error);
	if (parsed == NULL) {
		g_prefix_error(&error, "the built package does not parse: ");
		return failed(error->message);
	}
	if (!g_file_set_contents_full(out, g_bytes_get_data(package, NULL), (gssize)g_bytes_get_size(package),
				      G_FILE_SET_CONTENTS_CONSISTENT, 0644, &error)) {
		g_prefix_error(&error, "cannot write the package: ");
		return failed(error->message);
	}

	crypto_hash_sha256(digest, g_bytes_get_data(image, NULL), g_bytes_get_size(image));
	sodium_bin2hex(digest_hex, sizeof(digest_hex), digest, sizeof(digest));
	printf("make-update: %s: %s (sequence %" G_GUINT64_FORMAT ", class %s, %zu bytes, sha256 %s)\n", out,
	       version, sequence, device_class, g_bytes_get_size(image), digest_hex);
	return 0;
}
