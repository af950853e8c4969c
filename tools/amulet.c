/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <amulet/amulet.h>
#include <glib-unix.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amulet-cli.h"
#ifdef HAVE_L2CAP
#include "amu-link-l2cap.h"
#endif

static const char *usage_text =
	"Usage: amulet [--data-dir DIR] [--json] COMMAND [ARGS...]\n"
	"\n"
	"Commands:\n"
	"  pair sim:PATH|bluez:[hciN/]ADDRESS [--name NAME] [--yes]\n"
	"                                        pair with a device in pairing mode\n"
	"  scan [--adapter hciN] [--timeout S]   list Amulet devices in radio range (BlueZ)\n"
	"  devices                               list paired devices\n"
	"  info NAME                             show a device's fingerprint and disclosure\n"
	"  ping NAME [--count N] [--size BYTES]  reconnect and exchange encrypted pings\n"
	"  unpair NAME                           forget a device on this host\n"
	"  sync NAME|--all                       fetch new telemetry from devices\n"
	"  data NAME [--category C] [--from T] [--to T] [--summary] [--csv]\n"
	"                                        show stored telemetry\n"
	"  data prune [--dry-run]                delete data past its retention period\n"
	"  consent grant NAME --categories C1,C2 --purpose P --recipient-name N [--recipient-key FILE]\n"
	"          [--from T] [--to T] [--granularity raw|minute|hour|day] [--expires T] [--guardian G] [--yes]\n"
	"  consent list | revoke ID | access | log --verify\n"
	"  export NAME --grant ID --format json|csv|fhir|gpx --out PATH [--seal-to PUBKEY_FILE]\n"
	"  export verify DIR|FILE [--owner-key FILE] [--key SECRET_FILE]\n"
	"  export open FILE --key SECRET_FILE --out DIR\n"
	"  export keygen --out FILE               a recipient's key pair for sealed exports\n"
	"  wipe NAME [--factory] [--keep-local] [--when-seen] [--yes]\n"
	"                                        erase the device (owner-signed, with a signed receipt)\n"
	"  transfer NAME [--export-grant ID --format F --out DIR] [--yes]\n"
	"                                        hand the device over to a new owner\n"
	"  reset [--yes]                         remove every key, bond, sample and grant on this host\n"
	"  update NAME PACKAGE [--yes]           install a signed firmware update, with your approval\n"
	"  update --check NAME [PACKAGE...]      does the device run the newest package known?\n"
	"  update --auto NAME [PACKAGE]          install the newest package if the update policy allows\n"
	"  update --policy off|security|all NAME set the device's auto-update policy\n"
	"  settings NAME [KEY=VALUE...]          show or change the device's settings\n"
	"  version                               print the version\n"
	"\n"
	"Options:\n"
	"  --data-dir DIR   where keys, bonds and data live (default $XDG_DATA_HOME/amulet)\n"
	"  --json           print machine-readable JSON on stdout\n"
	"  --help           show this help\n"
	"  --version        print the version\n"
	"\n"
	"See amulet(1) for every command, exit code and file.\n";

/* ---------------------------------------------------------------- output */

void
cli_json_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(out, "\\%c", *p);
		else if (*p < 0x20)
			g_string_append_printf(out, "\\u%04x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	g_string_append_c(out, '"');
}

char *
cli_json_quote(const char *s)
{
	GString *out = g_string_new(NULL);

	cli_json_string(out, s);
	return g_string_free(out, FALSE);
}

int
cli_exit_code_for(const GError *error)
{
	if (error->domain != AMU_ERROR)
		return EXIT_FAILED;
	switch ((AmuError)error->code) {
	case AMU_ERROR_REJECTED:
		return EXIT_REJECTED;
	case AMU_ERROR_AUTH_FAILED:
	case AMU_ERROR_KEY_CHANGED:
	case AMU_ERROR_REPLAYED:
	case AMU_ERROR_TAMPERED:
	case AMU_ERROR_BAD_SIGNATURE:
	case AMU_ERROR_UNKNOWN_PEER:
		return EXIT_SECURITY;
	case AMU_ERROR_LOCKED_OUT:
	case AMU_ERROR_NOT_PAIRING_MODE:
	case AMU_ERROR_ROLLBACK:
	case AMU_ERROR_WRONG_TARGET:
	case AMU_ERROR_TOO_LARGE:
	case AMU_ERROR_EXPIRED:
	case AMU_ERROR_REVERTED:
		return EXIT_REFUSED;
	case AMU_ERROR_NOT_FOUND:
		return EXIT_NOT_FOUND;
	case AMU_ERROR_DISCONNECTED:
	case AMU_ERROR_TIMED_OUT:
	case AMU_ERROR_IO:
		return EXIT_LINK;
	case AMU_ERROR_INVALID_ARGUMENT:
		return EXIT_USAGE;
	case AMU_ERROR_CONSENT_DENIED:
		return EXIT_DENIED;
	case AMU_ERROR_FAILED:
	case AMU_ERROR_EXISTS:
	case AMU_ERROR_PERMISSION_DENIED:
	case AMU_ERROR_PROTOCOL:
	case AMU_ERROR_CANCELLED:
	case AMU_ERROR_STORE:
	case AMU_ERROR_NO_SPACE:
	case AMU_ERROR_WRONG_MASTER_KEY:
	case AMU_ERROR_NOT_SUPPORTED:
	case AMU_ERROR_LAST:
		break;
	}
	return EXIT_FAILED;
}

/* Prints the error (as JSON on stdout with --json, always on stderr) and
 * returns the exit code. */
int
cli_report_error(Cli *cli, const char *command, const GError *error)
{
	fprintf(stderr, "amulet %s: %s\n", command, error->message);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("{\"error\":{\"code\":");
		cli_json_string(out, error->domain == AMU_ERROR ? amu_error_to_string(error->code) : "failed");
		g_string_append(out, ",\"message\":");
		cli_json_string(out, error->message);
		g_string_append(out, "}}\n");
		fputs(out->str, stdout);
	}
	return cli_exit_code_for(error);
}

static void
device_json(GString *out, AmuDevice *device)
{
	g_autofree char *fingerprint = amu_device_get_fingerprint(device);
	AmuDisclosure *disclosure = amu_device_get_disclosure(device);

	g_string_append(out, "{\"name\":");
	cli_json_string(out, amu_device_get_name(device));
	g_string_append(out, ",\"id\":");
	cli_json_string(out, amu_device_get_id(device));
	g_string_append(out, ",\"address\":");
	cli_json_string(out, amu_device_get_address(device));
	g_string_append(out, ",\"profile\":");
	cli_json_string(out, amu_device_get_profile(device));
	g_string_append(out, ",\"update_policy\":");
	cli_json_string(out, amu_update_policy_to_string(amu_device_get_update_policy(device)));
	{
		g_autofree char *warning = NULL;
		g_string_append(out, ",\"support_warning\":");
		if (amu_device_get_support_warning(device, &warning))
			cli_json_string(out, warning);
		else
			g_string_append(out, "null");
	}
	{
		g_autofree char *version = NULL;
		guint64 sequence = 0;
		g_string_append(out, ",\"firmware_known\":");
		if (amu_device_get_known_firmware(device, &version, &sequence)) {
			cli_json_string(out, version);
			g_string_append_printf(out, ",\"firmware_sequence\":%" G_GUINT64_FORMAT, sequence);
		} else {
			g_string_append(out, "null");
		}
	}
	{
		const char *pending = NULL;
		amu_device_get_pending_command(device, &pending);
		g_string_append(out, ",\"pending\":");
		if (pending != NULL)
			cli_json_string(out, pending);
		else
			g_string_append(out, "null");
	}
	g_string_append_printf(out, ",\"has_display\":%s,\"paired_time\":%" G_GINT64_FORMAT ",\"fingerprint\":",
			       amu_device_has_display(device) ? "true" : "false", amu_device_get_paired_time(device));
	cli_json_string(out, fingerprint);
	if (disclosure != NULL) {
		g_autofree char *digest = amu_disclosure_get_privacy_policy_digest(disclosure);
		g_string_append(out, ",\"disclosure\":{\"maker\":");
		cli_json_string(out, amu_disclosure_get_maker(disclosure));
		g_string_append(out, ",\"model\":");
		cli_json_string(out, amu_disclosure_get_model(disclosure));
		g_string_append(out, ",\"firmware_version\":");
		cli_json_string(out, amu_disclosure_get_firmware_version(disclosure));
		g_string_append(out, ",\"categories\":[");
		for (guint i = 0; i < amu_disclosure_get_n_categories(disclosure); i++) {
			const char *purpose = NULL;
			const char *name = amu_disclosure_get_category(disclosure, i, &purpose);
			g_string_append(out, i > 0 ? ",{\"name\":" : "{\"name\":");
			cli_json_string(out, name);
			g_string_append(out, ",\"purpose\":");
			cli_json_string(out, purpose);
			g_string_append_c(out, '}');
		}
		g_string_append(out, "],\"retention\":");
		cli_json_string(out, amu_disclosure_get_retention(disclosure));
		g_string_append(out, ",\"support_end_date\":");
		cli_json_string(out, amu_disclosure_get_support_end_date(disclosure));
		g_string_append(out, ",\"update_policy\":");
		cli_json_string(out, amu_disclosure_get_update_policy(disclosure));
		g_string_append(out, ",\"offline_behaviour\":");
		cli_json_string(out, amu_disclosure_get_offline_behaviour(disclosure));
		g_string_append(out, ",\"privacy_policy_version\":");
		cli_json_string(out, amu_disclosure_get_privacy_policy_version(disclosure));
		g_string_append(out, ",\"privacy_policy_sha256\":");
		cli_json_string(out, digest);
		g_string_append_c(out, '}');
	}
	{
		AmuSyncState state;
		if (amu_device_get_sync_state(device, &state, NULL)) {
			g_string_append_printf(out,
					       ",\"stored\":{\"next_seq\":%" G_GUINT64_FORMAT ",\"last_sync_ms\":%" G_GINT64_FORMAT
					       ",\"samples\":{",
					       state.next_seq, state.last_sync_ms);
			for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
				g_string_append_printf(out, "%s\"%s\":%" G_GUINT64_FORMAT, c > AMU_CATEGORY_FIRST ? "," : "",
						       amu_category_to_string(c), state.n_samples[c]);
			g_string_append(out, "}}");
		}
	}
	g_string_append_c(out, '}');
}

static void
notification_cb(AmuContext *context, int kind, const char *device_name, const char *message, gpointer user_data)
{
	/* in plain words, on stderr so --json output stays clean */
	fprintf(stderr, "Notice: %s.\n", message);
}

gboolean
cli_open_context(Cli *cli, const char *command, int *exit_code)
{
	g_autoptr(GError) error = NULL;

	cli->context = amu_context_new(cli->data_dir, &error);
	if (cli->context == NULL) {
		*exit_code = cli_report_error(cli, command, error);
		return FALSE;
	}
	g_signal_connect(cli->context, "notification", G_CALLBACK(notification_cb), NULL);
	return TRUE;
}

gboolean
cli_ask_yes_no(const char *question)
{
	char buf[64] = {0};

	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	if (fgets(buf, sizeof(buf), stdin) == NULL)
		return FALSE;
	return buf[0] == 'y' || buf[0] == 'Y';
}

int
cli_usage_error(const char *command, const char *message)
{
	fprintf(stderr, "amulet %s: %s\nTry 'amulet --help'.\n", command, message);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------------- pair */

typedef struct {
	Cli *cli;
	gboolean yes;
	AmuPairingRequest *request;
	guint stdin_id;
	GSource *stdin_source;
} PairPrompt;

static gboolean
pair_stdin_cb(gint fd, GIOCondition condition, gpointer user_data)
{
	PairPrompt *prompt = user_data;
	char buf[64] = {0};
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	gboolean accepted = n > 0 && (buf[0] == 'y' || buf[0] == 'Y');

	prompt->stdin_id = 0;
	g_clear_pointer(&prompt->stdin_source, g_source_unref);
	amu_pairing_request_reply(prompt->request, accepted, accepted);
	g_clear_object(&prompt->request);
	return G_SOURCE_REMOVE;
}

static void
pair_confirm_cb(AmuPairingRequest *request, gpointer user_data)
{
	PairPrompt *prompt = user_data;
	FILE *out = prompt->cli->json ? stderr : stdout;
	g_autofree char *code = amu_pairing_request_get_code_string(request);
	g_autofree char *fingerprint = amu_pairing_request_get_fingerprint(request);
	AmuDisclosure *disclosure = amu_pairing_request_get_disclosure(request);

	if (amu_pairing_request_get_stage(request) == AMU_PAIRING_STAGE_LINK) {
		/* the radio's own pairing comes first: the same question for its passkey */
		fprintf(out, "Bluetooth pairing: the device shows a passkey.\npasskey: %s\n", code);
		if (prompt->yes) {
			fprintf(stderr, "amulet pair: --yes: accepting the Bluetooth passkey without asking; "
					"compare it on the device yourself\n");
			amu_pairing_request_reply(request, TRUE, TRUE);
			return;
		}
		fprintf(out, "Does the device show the passkey %s? [y/N] ", code);
		fflush(out);
		g_clear_object(&prompt->request);
		if (prompt->stdin_source != NULL) {
			g_source_destroy(prompt->stdin_source);
			g_clear_pointer(&prompt->stdin_source, g_source_unref);
		}
		prompt->request = g_object_ref(request);
		{
			GSource *source = g_unix_fd_source_new(STDIN_FILENO, G_IO_IN | G_IO_HUP);
			g_source_set_callback(source, G_SOURCE_FUNC(pair_stdin_cb), prompt, NULL);
			prompt->stdin_id = g_source_attach(source, g_main_context_get_thread_default());
			prompt->stdin_source = source;
		}
		return;
	}
	fprintf(out, "Device: %s (%s), key fingerprint %s\n", amu_pairing_request_get_model(request),
		amu_pairing_request_get_profile(request), fingerprint);
	if (disclosure != NULL) {
		g_autofree char *text = amu_disclosure_to_text(disclosure);
		fprintf(out, "What the device discloses before activation:\n%s", text);
	}
	if (amu_pairing_request_is_weak(request))
		fprintf(out, "Warning: this device has no display; it confirms with a button only, which cannot\n"
			     "detect a man in the middle. Pair only where no one else is in radio range.\n");
	fprintf(out, "code: %s\n", code);
	if (prompt->yes) {
		fprintf(stderr, "amulet pair: --yes: accepting the code and the disclosure without asking; "
				"compare the code on the device yourself\n");
		amu_pairing_request_reply(request, TRUE, TRUE);
		return;
	}
	fprintf(out, "Does the device show %s, and do you accept the disclosure above? [y/N] ", code);
	fflush(out);
	prompt->request = g_object_ref(request);
	{
		/* the sync pairing runs its own main context: watch stdin there */
		GSource *source = g_unix_fd_source_new(STDIN_FILENO, G_IO_IN | G_IO_HUP);
		g_source_set_callback(source, G_SOURCE_FUNC(pair_stdin_cb), prompt, NULL);
		prompt->stdin_id = g_source_attach(source, g_main_context_get_thread_default());
		prompt->stdin_source = source;
	}
}

static int
cmd_pair(Cli *cli, int argc, char **argv)
{
	g_autofree char *name = NULL;
	gboolean yes = FALSE;
	GOptionEntry entries[] = {
		{"name", 0, 0, G_OPTION_ARG_STRING, &name, "name for the device", "NAME"},
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "accept the code without asking (scripts)", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("sim:PATH|bluez:[hciN/]ADDRESS");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	PairPrompt prompt = {.cli = cli};
	int exit_code;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("pair", error->message);
	if (argc != 2)
		return cli_usage_error("pair", "give the device's address, e.g. sim:/tmp/band.sock or bluez:AA:BB:CC:DD:EE:FF");
	if (!cli_open_context(cli, "pair", &exit_code))
		return exit_code;
	prompt.yes = yes;
	device = amu_context_pair(cli->context, argv[1], name, pair_confirm_cb, &prompt, NULL, &error);
	if (prompt.stdin_source != NULL) {
		g_source_destroy(prompt.stdin_source);
		g_source_unref(prompt.stdin_source);
	}
	g_clear_object(&prompt.request);
	if (device == NULL)
		return cli_report_error(cli, "pair", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new(NULL);
		device_json(out, device);
		printf("%s\n", out->str);
	} else {
		printf("Paired with %s as '%s'.\n", amu_device_get_address(device), amu_device_get_name(device));
	}
	return EXIT_OK;
}

/* ---------------------------------------------------------------- devices, info, unpair, ping */

static int
cmd_devices(Cli *cli, int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	int exit_code;

	if (argc != 1)
		return cli_usage_error("devices", "takes no arguments");
	if (!cli_open_context(cli, "devices", &exit_code))
		return exit_code;
	devices = amu_context_get_devices(cli->context, &error);
	if (devices == NULL)
		return cli_report_error(cli, "devices", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("[");
		for (guint i = 0; i < devices->len; i++) {
			if (i > 0)
				g_string_append_c(out, ',');
			device_json(out, g_ptr_array_index(devices, i));
		}
		printf("%s]\n", out->str);
		return EXIT_OK;
	}
	if (devices->len == 0)
		printf("No paired devices. Pair one with 'amulet pair ADDRESS'.\n");
	for (guint i = 0; i < devices->len; i++) {
		AmuDevice *device = g_ptr_array_index(devices, i);
		const char *pending = NULL;
		amu_device_get_pending_command(device, &pending);
		printf("%-20s %-6s %s%s%s%s\n", amu_device_get_name(device), amu_device_get_profile(device),
		       amu_device_get_address(device), pending != NULL ? "  (" : "", pending != NULL ? pending : "",
		       pending != NULL ? " pending)" : "");
	}
	return EXIT_OK;
}

AmuDevice *
cli_find_device(Cli *cli, const char *command, const char *name, int *exit_code)
{
	g_autoptr(GError) error = NULL;
	AmuDevice *device;

	if (!cli_open_context(cli, command, exit_code))
		return NULL;
	device = amu_context_find_device(cli->context, name, &error);
	if (device == NULL)
		*exit_code = cli_report_error(cli, command, error);
	return device;
}

static int
cmd_info(Cli *cli, int argc, char **argv)
{
	g_autoptr(AmuDevice) device = NULL;
	AmuDisclosure *disclosure;
	int exit_code = EXIT_OK;

	if (argc != 2)
		return cli_usage_error("info", "give a device name");
	device = cli_find_device(cli, "info", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	if (cli->json) {
		g_autoptr(GString) out = g_string_new(NULL);
		device_json(out, device);
		printf("%s\n", out->str);
		return EXIT_OK;
	}
	{
		g_autofree char *fingerprint = amu_device_get_fingerprint(device);
		g_autoptr(GDateTime) paired = g_date_time_new_from_unix_utc(amu_device_get_paired_time(device));
		g_autofree char *paired_text = g_date_time_format_iso8601(paired);
		printf("Name:         %s\nId:           %s\nAddress:      %s\nProfile:      %s%s\n"
		       "Fingerprint:  %s\nPaired:       %s\n",
		       amu_device_get_name(device), amu_device_get_id(device), amu_device_get_address(device),
		       amu_device_get_profile(device),
		       amu_device_has_display(device) ? "" : " (no display: button confirmation only)", fingerprint,
		       paired_text);
	}
	{
		g_autofree char *version = NULL;
		guint64 sequence = 0;
		AmuUpdatePolicy policy = amu_device_get_update_policy(device);
		if (amu_device_get_known_firmware(device, &version, &sequence))
			printf("Firmware:     %s (sequence %" G_GUINT64_FORMAT "), when last asked\n", version, sequence);
		printf("Updates:      policy '%s': %s\n", amu_update_policy_to_string(policy),
		       policy == AMU_UPDATE_POLICY_OFF	     ? "every update waits for your approval"
		       : policy == AMU_UPDATE_POLICY_SECURITY ? "security fixes may install without asking"
							      : "updates may install without asking");
	}
	disclosure = amu_device_get_disclosure(device);
	if (disclosure != NULL) {
		g_autofree char *text = amu_disclosure_to_text(disclosure);
		printf("Disclosure:\n%s", text);
	}
	{
		g_autofree char *warning = NULL;
		if (amu_device_get_support_warning(device, &warning))
			printf("Warning:      %s\n", warning);
	}
	{
		AmuSyncState state;
		g_autoptr(GError) error = NULL;
		if (!amu_device_get_sync_state(device, &state, &error))
			return cli_report_error(cli, "info", error);
		if (state.last_sync_ms == 0) {
			printf("Stored here:  nothing yet ('amulet sync %s')\n", amu_device_get_name(device));
		} else {
			g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(state.last_sync_ms / 1000);
			g_autofree char *when = g_date_time_format_iso8601(t);
			printf("Stored here:  last sync %s; kept on this host per category:\n", when);
			for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++) {
				if (state.n_samples[c] == 0)
					continue;
				printf("    - %-17s %10" G_GUINT64_FORMAT " samples, kept %u days\n", amu_category_to_string(c),
				       state.n_samples[c], amu_category_get_default_retention_days(c));
			}
		}
	}
	return EXIT_OK;
}

static int
cmd_unpair(Cli *cli, int argc, char **argv)
{
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(GError) error = NULL;
	int exit_code = EXIT_OK;

	if (argc != 2)
		return cli_usage_error("unpair", "give a device name");
	device = cli_find_device(cli, "unpair", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	if (!amu_context_remove_device(cli->context, device, &error))
		return cli_report_error(cli, "unpair", error);
	if (cli->json) {
		g_autofree char *name = cli_json_quote(amu_device_get_name(device));
		printf("{\"unpaired\":true,\"name\":%s}\n", name);
	}
	else
		printf("Forgot '%s' on this host. The device keeps its bond until it is reset.\n",
		       amu_device_get_name(device));
	return EXIT_OK;
}

static int
cmd_ping(Cli *cli, int argc, char **argv)
{
	gint count = 1, size = 0;
	GOptionEntry entries[] = {
		{"count", 'c', 0, G_OPTION_ARG_INT, &count, "number of pings (default 1)", "N"},
		{"size", 's', 0, G_OPTION_ARG_INT, &size, "padding bytes per ping (default 0)", "BYTES"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuSession) session = NULL;
	const char *old_policy = NULL, *new_policy = NULL;
	gint64 start;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("ping", error->message);
	if (argc != 2)
		return cli_usage_error("ping", "give a device name");
	if (count < 1 || size < 0 || size > 60000)
		return cli_usage_error("ping", "--count must be at least 1 and --size 0..60000");
	device = cli_find_device(cli, "ping", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	session = amu_device_connect(device, NULL, &error);
	if (session == NULL)
		return cli_report_error(cli, "ping", error);
	amu_session_get_policy_changed(session, &old_policy, &new_policy);
	start = g_get_monotonic_time();
	for (gint i = 0; i < count; i++) {
		if (!amu_session_ping(session, (gsize)size, NULL, &error))
			return cli_report_error(cli, "ping", error);
	}
	if (cli->json) {
		g_autofree char *name = cli_json_quote(amu_device_get_name(device));
		printf("{\"name\":%s,\"pings\":%d,\"size\":%d,\"elapsed_us\":%" G_GINT64_FORMAT
		       ",\"policy_changed\":%s}\n",
		       name, count, size, g_get_monotonic_time() - start, new_policy != NULL ? "true" : "false");
	} else
		printf("%d encrypted ping%s to '%s' answered in %.1f ms\n", count, count == 1 ? "" : "s",
		       amu_device_get_name(device), (double)(g_get_monotonic_time() - start) / 1000.0);
	amu_session_close(session);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*func)(Cli *cli, int argc, char **argv);
	} commands[] = {
		{"pair", cmd_pair}, {"devices", cmd_devices}, {"info", cmd_info},
		{"unpair", cmd_unpair}, {"ping", cmd_ping}, {"sync", cli_cmd_sync},
		{"data", cli_cmd_data}, {"consent", cli_cmd_consent}, {"export", cli_cmd_export},
		{"wipe", cli_cmd_wipe}, {"transfer", cli_cmd_transfer}, {"reset", cli_cmd_reset},
		{"update", cli_cmd_update}, {"settings", cli_cmd_settings}, {"scan", cli_cmd_scan},
	};
	Cli cli = {0};
	int i, exit_code = EXIT_USAGE;

	setlocale(LC_ALL, "");
#ifdef HAVE_L2CAP
	/* l2cap: addresses, through the kernel's Bluetooth sockets (docs/bluez.md) */
	amu_link_register_scheme("l2cap", amu_link_l2cap_open);
#endif
	/* global options come before the command */
	for (i = 1; i < argc; i++) {
		if (g_strcmp0(argv[i], "--help") == 0 || g_strcmp0(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (g_strcmp0(argv[i], "--version") == 0 || g_strcmp0(argv[i], "version") == 0) {
			printf("amulet %s\n", amu_version_string());
			return EXIT_OK;
		}
		if (g_strcmp0(argv[i], "--json") == 0) {
			cli.json = TRUE;
		} else if (g_strcmp0(argv[i], "--data-dir") == 0 && i + 1 < argc) {
			cli.data_dir = argv[++i];
		} else if (g_str_has_prefix(argv[i], "--data-dir=")) {
			cli.data_dir = argv[i] + strlen("--data-dir=");
		} else {
			break;
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	for (size_t c = 0; c < G_N_ELEMENTS(commands); c++) {
		if (g_strcmp0(argv[i], commands[c].name) == 0) {
			exit_code = commands[c].func(&cli, argc - i, argv + i);
			g_clear_object(&cli.context);
			return exit_code;
		}
	}
	fprintf(stderr, "amulet: unknown command or option '%s'\nTry 'amulet --help'.\n", argv[i]);
	return EXIT_USAGE;
}
