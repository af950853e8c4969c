/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <json-glib/json-glib.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "amu-crypto.h"
#include "amu-export-private.h"
#include "amu-private.h"

/* amu_export_verify(): the manifest's signature, every file's digest, and
 * that what the files hold is what the grant in the manifest allows:
 * granted categories only, inside the granted range, on the granted
 * granularity, as many records as the manifest declares. */

typedef struct {
	guint64 counts[AMU_CATEGORY_LAST + 1];
	gboolean granted[AMU_CATEGORY_LAST + 1];
	gint64 from_ms;
	gint64 to_ms;
	gint64 granularity_ms;
	const char *file;
	guint64 line;
} ContentCheck;

static gboolean
bad(GError **error, int code, const char *format, ...) G_GNUC_PRINTF(3, 4);

static gboolean
bad(GError **error, int code, const char *format, ...)
{
	va_list args;
	g_autofree char *message = NULL;

	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);
	g_set_error_literal(error, AMU_ERROR, code, message);
	return FALSE;
}

/* "YYYY-MM-DDTHH:MM:SS(.mmm)Z" to ms since the epoch, without the libc's time zone */
static gboolean
parse_utc(const char *s, gint64 *ms)
{
	int y, mo, d, h, mi, sec, milli = 0, n = 0;
	gint64 days;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return FALSE;
	if (s[n] == '.') {
		/* exactly three digits, as the writers put them: never read past the end */
		if (!g_ascii_isdigit(s[n + 1]) || !g_ascii_isdigit(s[n + 2]) || !g_ascii_isdigit(s[n + 3]))
			return FALSE;
		milli = (s[n + 1] - '0') * 100 + (s[n + 2] - '0') * 10 + (s[n + 3] - '0');
		n += 4;
	}
	if (s[n] != 'Z' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return FALSE;
	/* days from civil (H. Hinnant) */
	y -= mo <= 2;
	{
		gint64 era = (y >= 0 ? y : y - 399) / 400;
		gint64 yoe = y - era * 400;
		gint64 doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		gint64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = era * 146097 + doe - 719468;
	}
	*ms = ((days * 24 + h) * 60 + mi) * 60000 + (gint64)sec * 1000 + milli;
	return TRUE;
}

static gboolean
check_record(ContentCheck *check, AmuCategory category, const char *time_text, GError **error)
{
	gint64 t;

	if (!amu_category_is_valid(category) || !check->granted[category])
		return bad(error, AMU_ERROR_CONSENT_DENIED, "%s line %" G_GUINT64_FORMAT ": %s was not granted", check->file,
			   check->line, amu_category_is_valid(category) ? amu_category_to_string(category) : "unknown data");
	if (!parse_utc(time_text, &t))
		return bad(error, AMU_ERROR_TAMPERED, "%s line %" G_GUINT64_FORMAT ": unreadable time", check->file, check->line);
	if (t < check->from_ms || t >= check->to_ms)
		return bad(error, AMU_ERROR_CONSENT_DENIED, "%s line %" G_GUINT64_FORMAT ": %s is outside the granted range",
			   check->file, check->line, time_text);
	if (check->granularity_ms > 0 && t % check->granularity_ms != 0)
		return bad(error, AMU_ERROR_CONSENT_DENIED,
			   "%s line %" G_GUINT64_FORMAT ": %s is finer than the granted granularity", check->file, check->line,
			   time_text);
	check->counts[category]++;
	return TRUE;
}

/* the value of "key":"..." in @line, or NULL */
static char *
json_field(const char *line, const char *key)
{
	g_autofree char *pattern = g_strdup_printf("\"%s\":\"", key);
	const char *start = strstr(line, pattern);
	const char *end;

	if (start == NULL)
		return NULL;
	start += strlen(pattern);
	end = strchr(start, '"');
	return end != NULL ? g_strndup(start, (gsize)(end - start)) : NULL;
}

static AmuCategory
category_of_loinc(const char *code)
{
	static const struct {
		const char *code;
		AmuCategory category;
	} map[] = {
		{"8867-4", AMU_CATEGORY_HEART_RATE},	{"2708-6", AMU_CATEGORY_SPO2},
		{"55423-8", AMU_CATEGORY_STEPS},	{"9279-1", AMU_CATEGORY_RESPIRATORY_RATE},
		{"8310-5", AMU_CATEGORY_SKIN_TEMP},	{"93830-8", AMU_CATEGORY_SLEEP_STAGE},
		{"93831-6", AMU_CATEGORY_SLEEP_STAGE}, {"93829-0", AMU_CATEGORY_SLEEP_STAGE},
		{"93832-4", AMU_CATEGORY_SLEEP_STAGE},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++) {
		if (strcmp(map[i].code, code) == 0)
			return map[i].category;
	}
	return 0;
}

static gboolean
check_file(ContentCheck *check, const char *dir, const char *name, GError **error)
{
	g_autofree char *path = g_build_filename(dir, name, NULL);
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	gboolean ok = TRUE, csv = g_str_has_suffix(name, ".csv");
	AmuCategory csv_category = 0;

	if (f == NULL)
		return bad(error, AMU_ERROR_TAMPERED, "%s is missing", name);
	check->file = name;
	check->line = 0;
	if (csv) {
		g_autofree char *base = g_strndup(name, strlen(name) - 4);
		if (!amu_category_from_string(base, &csv_category))
			csv_category = 0;
	}
	while (ok && getline(&line, &cap, f) > 0) {
		check->line++;
		if (csv) {
			if (check->line == 1)
				continue; /* the header */
			ok = check_record(check, csv_category, line, error);
		} else if (g_str_has_suffix(name, ".gpx")) {
			const char *time = strstr(line, "<time>");
			if (strstr(line, "<trkpt") != NULL && time != NULL)
				ok = check_record(check, AMU_CATEGORY_LOCATION, time + 6, error);
		} else if (g_str_has_prefix(line, "{\"time\":\"")) {
			g_autofree char *time = json_field(line, "time");
			g_autofree char *category_name = json_field(line, "category");
			AmuCategory category = 0;
			if (category_name != NULL && !amu_category_from_string(category_name, &category))
				category = 0;
			ok = check_record(check, category, time != NULL ? time : "", error);
		} else if (strstr(line, "\"resourceType\":\"Observation\"") != NULL) {
			g_autofree char *time = json_field(line, "effectiveDateTime");
			const char *code = strstr(line, "\"system\":\"http://loinc.org\",\"code\":\"");
			g_autofree char *loinc = NULL;
			if (time == NULL)
				time = json_field(line, "start");
			if (code != NULL)
				loinc = json_field(code, "code");
			ok = check_record(check, loinc != NULL ? category_of_loinc(loinc) : 0, time != NULL ? time : "", error);
		}
	}
	free(line);
	fclose(f);
	return ok;
}

static gboolean
hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
	size_t got = 0;

	return hex != NULL && sodium_hex2bin(out, len, hex, strlen(hex), NULL, &got, NULL) == 0 && got == len;
}

/**
 * amu_export_verify:
 * @dir: an export directory (open a sealed one first with amu_export_open_sealed())
 * @owner_public_key: (nullable): the Ed25519 key the owner's manifest must
 *   be signed with; %NULL accepts the key the manifest names (and reports it)
 * @summary: (out) (optional) (transfer full): one paragraph on what was checked
 *
 * Returns: %TRUE if the signature, every digest and the content match the
 *   grant; else %FALSE with %AMU_ERROR_BAD_SIGNATURE, %AMU_ERROR_TAMPERED or
 *   %AMU_ERROR_CONSENT_DENIED saying what is wrong
 * Since: 0.1
 */
gboolean
amu_export_verify(const char *dir, GBytes *owner_public_key, char **summary, GError **error)
{
	g_autofree char *manifest_path = g_build_filename(dir, AMU_EXPORT_MANIFEST, NULL);
	g_autofree char *signature_path = g_build_filename(dir, AMU_EXPORT_SIGNATURE, NULL);
	g_autofree char *text = NULL, *signature_b64 = NULL;
	g_autofree uint8_t *signature = NULL;
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GDir) d = NULL;
	JsonObject *root, *grant, *export, *samples;
	JsonArray *files, *categories;
	ContentCheck check = {0};
	uint8_t owner[crypto_sign_PUBLICKEYBYTES];
	gsize len = 0, signature_len = 0;
	const char *name;
	guint64 total = 0;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	/* a recipient may call this without any AmuContext */
	if (sodium_init() < 0)
		return bad(error, AMU_ERROR_FAILED, "libsodium failed to initialise");
	if (!g_file_get_contents(manifest_path, &text, &len, NULL))
		return bad(error, AMU_ERROR_NOT_FOUND, "%s has no %s: not an amulet export", dir, AMU_EXPORT_MANIFEST);
	if (!g_file_get_contents(signature_path, &signature_b64, NULL, NULL))
		return bad(error, AMU_ERROR_BAD_SIGNATURE, "%s has no %s: the manifest is unsigned", dir, AMU_EXPORT_SIGNATURE);
	signature = g_base64_decode(g_strstrip(signature_b64), &signature_len);
	if (!json_parser_load_from_data(parser, text, (gssize)len, NULL) || !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
		return bad(error, AMU_ERROR_TAMPERED, "%s is not valid JSON", AMU_EXPORT_MANIFEST);
	root = json_node_get_object(json_parser_get_root(parser));
	if (g_strcmp0(json_object_get_string_member_with_default(root, "format", ""), AMU_EXPORT_MANIFEST_FORMAT) != 0 ||
	    !hex_to_bytes(json_object_get_string_member_with_default(root, "owner_public_key", NULL), owner, sizeof(owner)))
		return bad(error, AMU_ERROR_TAMPERED, "%s is not an amulet export manifest", AMU_EXPORT_MANIFEST);
	if (owner_public_key != NULL &&
	    (g_bytes_get_size(owner_public_key) != sizeof(owner) ||
	     sodium_memcmp(g_bytes_get_data(owner_public_key, NULL), owner, sizeof(owner)) != 0))
		return bad(error, AMU_ERROR_BAD_SIGNATURE, "the manifest names another owner key than the one expected");
	if (signature_len != crypto_sign_BYTES ||
	    crypto_sign_verify_detached(signature, (const uint8_t *)text, len, owner) != 0)
		return bad(error, AMU_ERROR_BAD_SIGNATURE, "the manifest's signature does not verify: it was altered after signing");

	/* every file listed is there, unaltered, and nothing else is */
	files = json_object_get_array_member(root, "files");
	grant = json_object_get_object_member(root, "grant");
	export = json_object_get_object_member(root, "export");
	if (files == NULL || grant == NULL || export == NULL ||
	    (samples = json_object_get_object_member(export, "samples")) == NULL ||
	    (categories = json_object_get_array_member(grant, "categories")) == NULL)
		return bad(error, AMU_ERROR_TAMPERED, "the manifest lacks its files, grant or export");
	for (guint i = 0; i < json_array_get_length(files); i++) {
		JsonObject *file = json_array_get_object_element(files, i);
		const char *file_name = file != NULL ? json_object_get_string_member_with_default(file, "name", NULL) : NULL;
		const char *sha = file != NULL ? json_object_get_string_member_with_default(file, "sha256", NULL) : NULL;
		g_autofree char *path = NULL;
		g_autofree char *actual = NULL;
		guint64 size = 0;

		if (file_name == NULL || sha == NULL || strchr(file_name, '/') != NULL || file_name[0] == '.')
			return bad(error, AMU_ERROR_TAMPERED, "the manifest lists a malformed file entry");
		path = g_build_filename(dir, file_name, NULL);
		actual = amu_export_file_sha256(path, &size, NULL);
		if (actual == NULL)
			return bad(error, AMU_ERROR_TAMPERED, "%s is listed in the manifest but missing", file_name);
		if (strcmp(actual, sha) != 0 || (gint64)size != json_object_get_int_member_with_default(file, "bytes", -1))
			return bad(error, AMU_ERROR_TAMPERED, "%s was altered: its SHA-256 no longer matches the manifest",
				   file_name);
		g_hash_table_add(listed, (gpointer)file_name);
	}
	d = g_dir_open(dir, 0, error);
	if (d == NULL)
		return FALSE;
	while ((name = g_dir_read_name(d)) != NULL) {
		if (g_strcmp0(name, AMU_EXPORT_MANIFEST) != 0 && g_strcmp0(name, AMU_EXPORT_SIGNATURE) != 0 &&
		    !g_hash_table_contains(listed, name))
			return bad(error, AMU_ERROR_TAMPERED, "%s is not listed in the manifest", name);
	}

	/* the content is what the grant allows, and what the manifest declares */
	for (guint i = 0; i < json_array_get_length(categories); i++) {
		AmuCategory c;
		if (amu_category_from_string(json_array_get_string_element(categories, i), &c))
			check.granted[c] = TRUE;
	}
	check.from_ms = json_object_get_int_member_with_default(grant, "from_ms", 0);
	check.to_ms = json_object_get_int_member_with_default(grant, "to_ms", 0);
	{
		AmuGranularity g = AMU_GRANULARITY_RAW;
		if (!amu_granularity_from_string(json_object_get_string_member_with_default(grant, "granularity", ""), &g))
			return bad(error, AMU_ERROR_TAMPERED, "the manifest's granularity is unknown");
		check.granularity_ms = amu_granularity_get_ms(g);
	}
	for (guint i = 0; i < json_array_get_length(files); i++) {
		JsonObject *file = json_array_get_object_element(files, i);
		if (!check_file(&check, dir, json_object_get_string_member(file, "name"), error))
			return FALSE;
	}
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++) {
		gint64 declared = json_object_get_int_member_with_default(samples, amu_category_to_string(c), 0);
		g_autofree char *format = g_strdup(json_object_get_string_member_with_default(export, "format", ""));
		/* FHIR leaves out awake epochs, which have no sleep code: at most, not exactly */
		gboolean exact = g_strcmp0(format, "fhir") != 0 || c != AMU_CATEGORY_SLEEP_STAGE;
		if (declared > 0 && !check.granted[c])
			return bad(error, AMU_ERROR_CONSENT_DENIED, "the manifest declares %s, which the grant does not include",
				   amu_category_to_string(c));
		if ((exact && (gint64)check.counts[c] != declared) || (!exact && (gint64)check.counts[c] > declared))
			return bad(error, AMU_ERROR_TAMPERED, "the files hold %" G_GUINT64_FORMAT " %s records, the manifest declares %" G_GINT64_FORMAT,
				   check.counts[c], amu_category_to_string(c), declared);
		total += check.counts[c];
	}
	if (summary != NULL) {
		g_autofree char *fingerprint = amu_fingerprint_from_key(owner);
		*summary = g_strdup_printf(
			"verified: %" G_GUINT64_FORMAT " records in %u file%s match grant %s for \"%s\" (%s), every digest "
			"matches, signed by owner key %s",
			total, json_array_get_length(files), json_array_get_length(files) == 1 ? "" : "s",
			json_object_get_string_member_with_default(grant, "id", "?"),
			json_object_get_string_member_with_default(grant, "recipient", "?"),
			json_object_get_string_member_with_default(grant, "purpose", "?"), fingerprint);
	}
	return TRUE;
}
