/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "amulet-cli.h"

/* amulet consent ... and amulet export ...: the owner's grants, their log,
 * and exports made under them. */

static char *
format_time(gint64 ms)
{
	g_autoptr(GDateTime) t = NULL;

	if (ms <= 0)
		return g_strdup("-");
	if (ms == G_MAXINT64)
		return g_strdup("open");
	t = g_date_time_new_from_unix_utc(ms / 1000);
	return g_date_time_format(t, "%Y-%m-%dT%H:%M:%SZ");
}

/* ISO 8601 date (UTC midnight) or date and time */
static gboolean
parse_time(const char *text, gint64 *ms, GError **error)
{
	g_autoptr(GTimeZone) utc = g_time_zone_new_utc();
	g_autoptr(GDateTime) t = NULL;
	int y, m, d;
	char tail;

	if (sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3)
		t = g_date_time_new(utc, y, m, d, 0, 0, 0);
	else
		t = g_date_time_new_from_iso8601(text, utc);
	if (t == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "'%s' is not a date (2026-11-27, UTC) or ISO 8601 date and time (2026-11-27T08:00:00Z)", text);
		return FALSE;
	}
	*ms = g_date_time_to_unix(t) * 1000;
	return TRUE;
}

/* 32-byte keys are files of 64 hex digits (amulet export keygen writes them) or raw bytes */
static GBytes *
read_key(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	uint8_t key[32];
	gsize got = 0;

	if (!g_file_get_contents(path, &text, &len, error))
		return NULL;
	if (len == 32)
		return g_bytes_new(text, len);
	g_strstrip(text);
	if (strlen(text) == 64) {
		for (int i = 0; i < 32; i++) {
			int hi = g_ascii_xdigit_value(text[2 * i]), lo = g_ascii_xdigit_value(text[2 * i + 1]);
			if (hi < 0 || lo < 0)
				break;
			key[i] = (uint8_t)(hi << 4 | lo);
			got++;
		}
	}
	if (got != 32) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "%s holds no 32-byte key (64 hex digits, as 'amulet export keygen' writes)", path);
		return NULL;
	}
	return g_bytes_new(key, sizeof(key));
}

static gboolean
write_key(const char *path, GBytes *key, int mode, GError **error)
{
	g_autoptr(GString) hex = g_string_new(NULL);
	const uint8_t *data = g_bytes_get_data(key, NULL);

	for (gsize i = 0; i < g_bytes_get_size(key); i++)
		g_string_append_printf(hex, "%02x", data[i]);
	g_string_append_c(hex, '\n');
	return g_file_set_contents_full(path, hex->str, (gssize)hex->len, G_FILE_SET_CONTENTS_CONSISTENT, mode, error);
}

static void
consent_json(GString *out, AmuConsent *consent)
{
	g_autoptr(GArray) categories = amu_consent_get_categories(consent);
	gint64 from_ms, to_ms;

	amu_consent_get_range(consent, &from_ms, &to_ms);
	g_string_append(out, "{\"id\":");
	cli_json_string(out, amu_consent_get_id(consent));
	g_string_append(out, ",\"device_id\":");
	cli_json_string(out, amu_consent_get_device_id(consent));
	g_string_append(out, ",\"categories\":[");
	for (guint i = 0; i < categories->len; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		cli_json_string(out, amu_category_to_string(g_array_index(categories, AmuCategory, i)));
	}
	g_string_append(out, "],\"purpose\":");
	cli_json_string(out, amu_consent_get_purpose(consent));
	g_string_append(out, ",\"recipient\":");
	cli_json_string(out, amu_consent_get_recipient_name(consent));
	g_string_append_printf(out, ",\"has_recipient_key\":%s,\"from_ms\":%" G_GINT64_FORMAT ",\"to_ms\":%" G_GINT64_FORMAT
				    ",\"granularity\":\"%s\",\"location_decimals\":%u,\"created_ms\":%" G_GINT64_FORMAT
				    ",\"expires_ms\":%" G_GINT64_FORMAT ",\"revoked_ms\":%" G_GINT64_FORMAT ",\"guardian\":",
			       amu_consent_get_recipient_key(consent) != NULL ? "true" : "false", from_ms, to_ms,
			       amu_granularity_to_string(amu_consent_get_granularity(consent)),
			       amu_consent_get_location_decimals(consent), amu_consent_get_created(consent),
			       amu_consent_get_expires(consent), amu_consent_get_revoked(consent));
	if (amu_consent_get_guardian(consent) != NULL)
		cli_json_string(out, amu_consent_get_guardian(consent));
	else
		g_string_append(out, "null");
	g_string_append_c(out, '}');
}

static int
consent_grant(Cli *cli, int argc, char **argv)
{
	g_autofree char *categories_text = NULL, *purpose = NULL, *recipient = NULL, *recipient_key_path = NULL;
	g_autofree char *from_text = NULL, *to_text = NULL, *granularity_text = NULL, *expires_text = NULL;
	g_autofree char *guardian = NULL;
	gint location_decimals = 7;
	gboolean yes = FALSE;
	GOptionEntry entries[] = {
		{"categories", 'c', 0, G_OPTION_ARG_STRING, &categories_text, "what may leave, e.g. heart_rate,steps", "C1,C2"},
		{"purpose", 'p', 0, G_OPTION_ARG_STRING, &purpose, "why the recipient gets it", "TEXT"},
		{"recipient-name", 'r', 0, G_OPTION_ARG_STRING, &recipient, "who gets it", "NAME"},
		{"recipient-key", 0, 0, G_OPTION_ARG_FILENAME, &recipient_key_path, "the recipient's public key (exports must be sealed to it)", "FILE"},
		{"from", 0, 0, G_OPTION_ARG_STRING, &from_text, "data recorded from (UTC date or time)", "T"},
		{"to", 0, 0, G_OPTION_ARG_STRING, &to_text, "data recorded until, excluded", "T"},
		{"granularity", 'g', 0, G_OPTION_ARG_STRING, &granularity_text, "raw, minute, hour or day (default raw)", "G"},
		{"location-decimals", 0, 0, G_OPTION_ARG_INT, &location_decimals, "decimal places of latitude and longitude kept, 0..7 (default 7)", "D"},
		{"expires", 0, 0, G_OPTION_ARG_STRING, &expires_text, "the grant ends (default: in 90 days)", "T"},
		{"guardian", 0, 0, G_OPTION_ARG_STRING, &guardian, "the parent or guardian approving (required for a toy)", "NAME"},
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "grant without asking (scripts)", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuConsent) consent = NULL;
	g_autoptr(GArray) categories = g_array_new(FALSE, FALSE, sizeof(AmuCategory));
	g_autoptr(GBytes) recipient_key = NULL;
	g_autofree char *impact = NULL;
	AmuGranularity granularity = AMU_GRANULARITY_RAW;
	gint64 from = 0, to = G_MAXINT64, expires = 0;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("consent grant", error->message);
	if (argc != 2)
		return cli_usage_error("consent grant", "give a device name");
	if (categories_text == NULL || purpose == NULL || recipient == NULL)
		return cli_usage_error("consent grant", "--categories, --purpose and --recipient-name are required");
	{
		g_auto(GStrv) names = g_strsplit(categories_text, ",", -1);
		for (guint i = 0; names[i] != NULL; i++) {
			AmuCategory c;
			if (!amu_category_from_string(g_strstrip(names[i]), &c)) {
				g_autofree char *message = g_strdup_printf("unknown category '%s'", names[i]);
				return cli_usage_error("consent grant", message);
			}
			g_array_append_val(categories, c);
		}
	}
	if (granularity_text != NULL && !amu_granularity_from_string(granularity_text, &granularity))
		return cli_usage_error("consent grant", "--granularity takes raw, minute, hour or day");
	if (location_decimals < 0 || location_decimals > 7)
		return cli_usage_error("consent grant", "--location-decimals takes 0..7");
	if ((from_text != NULL && !parse_time(from_text, &from, &error)) ||
	    (to_text != NULL && !parse_time(to_text, &to, &error)) ||
	    (expires_text != NULL && !parse_time(expires_text, &expires, &error)))
		return cli_usage_error("consent grant", error->message);
	if (recipient_key_path != NULL) {
		recipient_key = read_key(recipient_key_path, &error);
		if (recipient_key == NULL)
			return cli_report_error(cli, "consent grant", error);
	}
	device = cli_find_device(cli, "consent grant", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	consent = amu_consent_new(device);
	amu_consent_set_categories(consent, (AmuCategory *)categories->data, categories->len);
	amu_consent_set_purpose(consent, purpose);
	amu_consent_set_recipient(consent, recipient, recipient_key);
	amu_consent_set_range(consent, from, to);
	amu_consent_set_granularity(consent, granularity);
	amu_consent_set_location_decimals(consent, (guint)location_decimals);
	amu_consent_set_expires(consent, expires);
	amu_consent_set_guardian(consent, guardian);
	impact = amu_consent_get_impact_text(consent);
	fputs(impact, stderr);
	if (yes) {
		fprintf(stderr, "amulet consent grant: --yes: granting without asking\n");
	} else if (!cli_ask_yes_no("Grant this?")) {
		fprintf(stderr, "Not granted: nothing will leave this host for %s.\n", recipient);
		return EXIT_REJECTED;
	}
	if (!amu_context_grant_consent(cli->context, consent, &error))
		return cli_report_error(cli, "consent grant", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new(NULL);
		consent_json(out, consent);
		printf("%s\n", out->str);
	} else {
		printf("Granted: %s\n", amu_consent_get_id(consent));
	}
	return EXIT_OK;
}

static int
consent_list(Cli *cli)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) consents = NULL;
	int exit_code = EXIT_OK;
	gint64 now = g_get_real_time() / 1000;

	if (!cli_open_context(cli, "consent list", &exit_code))
		return exit_code;
	consents = amu_context_get_consents(cli->context, &error);
	if (consents == NULL)
		return cli_report_error(cli, "consent list", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("[");
		for (guint i = 0; i < consents->len; i++) {
			if (i > 0)
				g_string_append_c(out, ',');
			consent_json(out, g_ptr_array_index(consents, i));
		}
		printf("%s]\n", out->str);
		return EXIT_OK;
	}
	if (consents->len == 0)
		printf("No grants: nothing may leave this host.\n");
	for (guint i = 0; i < consents->len; i++) {
		AmuConsent *consent = g_ptr_array_index(consents, i);
		g_autoptr(GArray) categories = amu_consent_get_categories(consent);
		g_autoptr(GString) names = g_string_new(NULL);
		g_autofree char *expires = format_time(amu_consent_get_expires(consent));
		const char *state = amu_consent_get_revoked(consent) > 0 ? "revoked"
				    : amu_consent_check_valid(consent, now, NULL) ? "active"
										 : "expired";
		for (guint c = 0; c < categories->len; c++)
			g_string_append_printf(names, "%s%s", c > 0 ? "," : "",
					       amu_category_to_string(g_array_index(categories, AmuCategory, c)));
		printf("%s  %-7s  to %-20s %-30s %s, until %s\n", amu_consent_get_id(consent), state,
		       amu_consent_get_recipient_name(consent), names->str,
		       amu_granularity_to_string(amu_consent_get_granularity(consent)), expires);
	}
	return EXIT_OK;
}

static int
consent_revoke(Cli *cli, const char *id)
{
	g_autoptr(GError) error = NULL;
	int exit_code = EXIT_OK;

	if (!cli_open_context(cli, "consent revoke", &exit_code))
		return exit_code;
	if (!amu_context_revoke_consent(cli->context, id, &error))
		return cli_report_error(cli, "consent revoke", error);
	if (cli->json) {
		g_autofree char *id_json = cli_json_quote(id);
		printf("{\"revoked\":%s}\n", id_json);
	} else
		printf("Revoked %s: no further export under it. Copies already sent cannot be recalled;\n"
		       "ask the recipient to delete them.\n",
		       id);
	return EXIT_OK;
}

static int
consent_access(Cli *cli)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) records = NULL;
	int exit_code = EXIT_OK;

	if (!cli_open_context(cli, "consent access", &exit_code))
		return exit_code;
	records = amu_context_get_access_log(cli->context, &error);
	if (records == NULL)
		return cli_report_error(cli, "consent access", error);
	if (cli->json)
		fputs("[", stdout);
	else if (records->len == 0)
		printf("Nothing was exported or refused yet.\n");
	for (guint i = 0; i < records->len; i++) {
		AmuAccessRecord *record = g_ptr_array_index(records, i);
		g_autofree char *when = format_time(record->time_ms);
		if (cli->json) {
			g_autoptr(GString) out = g_string_new(i > 0 ? "," : "");
			g_string_append_printf(out, "{\"time_ms\":%" G_GINT64_FORMAT ",\"grant_id\":", record->time_ms);
			cli_json_string(out, record->grant_id);
			g_string_append(out, ",\"kind\":");
			cli_json_string(out, record->kind);
			g_string_append(out, ",\"format\":");
			if (record->format != NULL)
				cli_json_string(out, record->format);
			else
				g_string_append(out, "null");
			g_string_append_printf(out, ",\"samples\":%" G_GUINT64_FORMAT ",\"detail\":", record->samples);
			cli_json_string(out, record->detail);
			g_string_append(out, "}\n");
			fputs(out->str, stdout);
		} else {
			printf("%s  %-8s grant %s", when, record->kind, record->grant_id);
			if (g_strcmp0(record->kind, "export") == 0)
				printf(": %" G_GUINT64_FORMAT " samples as %s, manifest %.16s", record->samples, record->format,
				       record->detail != NULL ? record->detail : "");
			else if (g_strcmp0(record->kind, "refused") == 0)
				printf(": %s", record->detail);
			printf("\n");
		}
	}
	if (cli->json)
		fputs("]\n", stdout);
	return EXIT_OK;
}

static int
consent_log(Cli *cli, int argc, char **argv)
{
	gboolean verify = FALSE;
	GOptionEntry entries[] = {
		{"verify", 0, 0, G_OPTION_ARG_NONE, &verify, "check every entry's seal, chain and signature", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	guint64 n = 0;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("consent log", error->message);
	if (!cli_open_context(cli, "consent log", &exit_code))
		return exit_code;
	/* every read verifies; --verify says so out loud */
	if (!amu_context_verify_consent_ledger(cli->context, &n, &error))
		return cli_report_error(cli, "consent log", error);
	if (cli->json)
		printf("{\"verified\":true,\"entries\":%" G_GUINT64_FORMAT "}\n", n);
	else
		printf("Consent ledger: %" G_GUINT64_FORMAT " entries, hash chain and owner signatures verified.\n", n);
	return consent_access(cli);
}

int
cli_cmd_consent(Cli *cli, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("consent", "give grant, list, revoke ID, access or log --verify");
	if (g_strcmp0(argv[1], "grant") == 0)
		return consent_grant(cli, argc - 1, argv + 1);
	if (g_strcmp0(argv[1], "list") == 0 && argc == 2)
		return consent_list(cli);
	if (g_strcmp0(argv[1], "revoke") == 0 && argc == 3)
		return consent_revoke(cli, argv[2]);
	if (g_strcmp0(argv[1], "access") == 0 && argc == 2)
		return consent_access(cli);
	if (g_strcmp0(argv[1], "log") == 0)
		return consent_log(cli, argc - 1, argv + 1);
	return cli_usage_error("consent", "give grant, list, revoke ID, access or log --verify");
}

/* ---------------------------------------------------------------- export */

typedef struct {
	gboolean tty;
	gint64 last_us;
	GCancellable *cancellable;
} ExportProgress;

/* Ctrl-C or SIGTERM during an export: the export is cancelled at its next
 * progress report and removes what it wrote; a second one kills at once. */
static volatile sig_atomic_t export_interrupted;

static void
export_interrupt_handler(int signo)
{
	(void)signo;
	export_interrupted = 1;
}

static void
export_progress_cb(AmuDataExport *export, guint64 done, guint64 total, gpointer user_data)
{
	ExportProgress *progress = user_data;
	gint64 now = g_get_monotonic_time();

	if (export_interrupted)
		g_cancellable_cancel(progress->cancellable);

	if (!progress->tty || now - progress->last_us < 100000)
		return;
	progress->last_us = now;
	fprintf(stderr, "\r\033[Kexport: %" G_GUINT64_FORMAT " records written (of at most %" G_GUINT64_FORMAT ")", done,
		total);
	fflush(stderr);
}

static int
export_run(Cli *cli, int argc, char **argv)
{
	g_autofree char *grant_id = NULL, *format_text = NULL, *out = NULL, *seal_to_path = NULL;
	GOptionEntry entries[] = {
		{"grant", 0, 0, G_OPTION_ARG_STRING, &grant_id, "the consent grant to export under", "ID"},
		{"format", 'f', 0, G_OPTION_ARG_STRING, &format_text, "json, csv, fhir or gpx", "FORMAT"},
		{"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "the directory to write (or with --seal-to, the file)", "PATH"},
		{"seal-to", 0, 0, G_OPTION_ARG_FILENAME, &seal_to_path, "seal for the holder of this public key", "FILE"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuConsent) consent = NULL;
	g_autoptr(AmuDataExport) export = NULL;
	g_autoptr(GBytes) seal_to = NULL;
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	ExportProgress progress = {isatty(STDERR_FILENO) && !cli->json, 0, cancellable};
	struct sigaction action = {0}, old_int, old_term;
	AmuExportFormat format;
	int exit_code = EXIT_OK;
	gboolean ok;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("export", error->message);
	if (argc != 2 || grant_id == NULL || format_text == NULL || out == NULL)
		return cli_usage_error("export", "give NAME --grant ID --format FORMAT --out PATH");
	if (!amu_export_format_from_string(format_text, &format))
		return cli_usage_error("export", "--format takes json, csv, fhir or gpx");
	if (seal_to_path != NULL) {
		seal_to = read_key(seal_to_path, &error);
		if (seal_to == NULL)
			return cli_report_error(cli, "export", error);
	}
	device = cli_find_device(cli, "export", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	consent = amu_context_find_consent(cli->context, grant_id, NULL);
	if (consent != NULL && g_strcmp0(amu_consent_get_device_id(consent), amu_device_get_id(device)) != 0) {
		g_set_error(&error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED, "grant %s is for another device than '%s'",
			    grant_id, amu_device_get_name(device));
		return cli_report_error(cli, "export", error);
	}
	if (consent != NULL && amu_consent_get_recipient_key(consent) != NULL && seal_to == NULL)
		fprintf(stderr, "Note: grant %s names the recipient's key; consider --seal-to with it.\n", grant_id);
	export = amu_data_export_new(cli->context, grant_id, format, out);
	amu_data_export_set_seal_to(export, seal_to);
	action.sa_handler = export_interrupt_handler;
	action.sa_flags = SA_RESETHAND;
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, &old_int);
	sigaction(SIGTERM, &action, &old_term);
	ok = amu_data_export_run(export, export_progress_cb, &progress, cancellable, &error);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (!ok) {
		if (progress.tty)
			fputc('\n', stderr);
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			g_autoptr(GError) interrupted = g_error_new(
			  AMU_ERROR, AMU_ERROR_CANCELLED,
			  "interrupted: nothing was exported, what was written to %s is removed, and the access log has "
			  "no entry for it; run the same command again to export",
			  out);
			cli_report_error(cli, "export", interrupted);
			return EXIT_INTERRUPTED;
		}
		return cli_report_error(cli, "export", error);
	}
	if (progress.tty)
		fprintf(stderr, "\r\033[K");
	if (cli->json) {
		g_autoptr(GString) text = g_string_new("{\"path\":");
		cli_json_string(text, out);
		g_string_append_printf(text, ",\"sealed\":%s,\"samples\":%" G_GUINT64_FORMAT ",\"manifest_sha256\":\"%s\",\"files\":[",
				       seal_to != NULL ? "true" : "false", amu_data_export_get_n_samples(export),
				       amu_data_export_get_manifest_sha256(export));
		for (guint i = 0; i < amu_data_export_get_files(export)->len; i++) {
			if (i > 0)
				g_string_append_c(text, ',');
			cli_json_string(text, g_ptr_array_index(amu_data_export_get_files(export), i));
		}
		g_string_append(text, "]}");
		printf("%s\n", text->str);
	} else {
		printf("Exported %" G_GUINT64_FORMAT " records under grant %s to %s%s.\n",
		       amu_data_export_get_n_samples(export), grant_id, out, seal_to != NULL ? " (sealed)" : "");
	}
	return EXIT_OK;
}

static int
export_verify(Cli *cli, int argc, char **argv)
{
	g_autofree char *owner_key_path = NULL, *secret_key_path = NULL;
	GOptionEntry entries[] = {
		{"owner-key", 0, 0, G_OPTION_ARG_FILENAME, &owner_key_path, "the owner's public signing key to require", "FILE"},
		{"key", 'k', 0, G_OPTION_ARG_FILENAME, &secret_key_path, "for a sealed file: the recipient's secret key", "FILE"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("DIR|FILE");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) owner_key = NULL;
	g_autofree char *summary = NULL, *tmp = NULL, *dir = NULL;
	g_autoptr(GBytes) secret = NULL;
	gboolean ok;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("export verify", error->message);
	if (argc != 2)
		return cli_usage_error("export verify", "give the export directory or sealed file");
	if (owner_key_path != NULL && (owner_key = read_key(owner_key_path, &error)) == NULL)
		return cli_report_error(cli, "export verify", error);
	dir = g_strdup(argv[1]);
	if (!g_file_test(argv[1], G_FILE_TEST_IS_DIR)) {
		if (secret_key_path == NULL)
			return cli_usage_error("export verify", "a sealed file needs --key with the recipient's secret key");
		if ((secret = read_key(secret_key_path, &error)) == NULL)
			return cli_report_error(cli, "export verify", error);
		tmp = g_dir_make_tmp("amulet-verify-XXXXXX", &error);
		if (tmp == NULL)
			return cli_report_error(cli, "export verify", error);
		g_free(dir);
		dir = g_build_filename(tmp, "export", NULL);
	}
	/* what was decrypted into the scratch directory goes, whatever happens */
	ok = (tmp == NULL || amu_export_open_sealed(argv[1], secret, dir, &error)) &&
	     amu_export_verify(dir, owner_key, &summary, &error);
	if (tmp != NULL) {
		g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
		const char *name;
		while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
			g_autofree char *path = g_build_filename(dir, name, NULL);
			g_unlink(path);
		}
		g_rmdir(dir);
		g_rmdir(tmp);
	}
	if (!ok)
		return cli_report_error(cli, "export verify", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("{\"verified\":true,\"summary\":");
		cli_json_string(out, summary);
		printf("%s}\n", out->str);
	} else {
		printf("%s\n", summary);
	}
	return EXIT_OK;
}

static int
export_open(Cli *cli, int argc, char **argv)
{
	g_autofree char *secret_key_path = NULL, *out = NULL;
	GOptionEntry entries[] = {
		{"key", 'k', 0, G_OPTION_ARG_FILENAME, &secret_key_path, "the recipient's secret key", "FILE"},
		{"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "the directory to write", "DIR"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("FILE");
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) secret = NULL;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("export open", error->message);
	if (argc != 2 || secret_key_path == NULL || out == NULL)
		return cli_usage_error("export open", "give FILE --key SECRET_KEY_FILE --out DIR");
	if ((secret = read_key(secret_key_path, &error)) == NULL || !amu_export_open_sealed(argv[1], secret, out, &error))
		return cli_report_error(cli, "export open", error);
	if (cli->json)
		printf("{\"opened\":true}\n");
	else
		printf("Opened into %s. Check it with 'amulet export verify %s'.\n", out, out);
	return EXIT_OK;
}

static int
export_keygen(Cli *cli, int argc, char **argv)
{
	g_autofree char *out = NULL;
	GOptionEntry entries[] = {
		{"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "secret key file (the public key goes to FILE.pub)", "FILE"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) public_key = NULL, secret_key = NULL;
	g_autofree char *pub_path = NULL;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("export keygen", error->message);
	if (out == NULL || argc != 1)
		return cli_usage_error("export keygen", "give --out FILE");
	if (g_file_test(out, G_FILE_TEST_EXISTS))
		return cli_usage_error("export keygen", "the key file exists; choose another name");
	amu_export_keypair_new(&public_key, &secret_key);
	pub_path = g_strdup_printf("%s.pub", out);
	if (!write_key(out, secret_key, 0600, &error) || !write_key(pub_path, public_key, 0644, &error))
		return cli_report_error(cli, "export keygen", error);
	if (cli->json) {
		g_autofree char *secret_json = cli_json_quote(out);
		g_autofree char *public_json = cli_json_quote(pub_path);
		printf("{\"secret_key\":%s,\"public_key\":%s}\n", secret_json, public_json);
	} else
		printf("Secret key in %s (keep it), public key in %s (give it to the owner).\n", out, pub_path);
	return EXIT_OK;
}

int
cli_cmd_export(Cli *cli, int argc, char **argv)
{
	if (argc >= 2 && g_strcmp0(argv[1], "verify") == 0)
		return export_verify(cli, argc - 1, argv + 1);
	if (argc >= 2 && g_strcmp0(argv[1], "open") == 0)
		return export_open(cli, argc - 1, argv + 1);
	if (argc >= 2 && g_strcmp0(argv[1], "keygen") == 0)
		return export_keygen(cli, argc - 1, argv + 1);
	return export_run(cli, argc, argv);
}
