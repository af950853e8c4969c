/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "amulet-cli.h"

/* amulet scan: Amulet devices in radio range, through bluetoothd. */

typedef struct {
	gboolean tty;
	guint seen;
} ScanProgress;

static void
scan_found_cb(AmuScanResult *result, gpointer user_data)
{
	ScanProgress *progress = user_data;
	const char *name = amu_scan_result_get_name(result);

	progress->seen++;
	if (progress->tty) {
		fprintf(stderr, "\r\033[Kscan: %s %s", amu_scan_result_get_address(result), name != NULL ? name : "");
		fflush(stderr);
	}
}

static void
scan_ready_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GAsyncResult **out = user_data;
	*out = g_object_ref(result);
}

int
cli_cmd_scan(Cli *cli, int argc, char **argv)
{
	g_autofree char *adapter = NULL;
	gint timeout_s = 5;
	GOptionEntry entries[] = {
		{"adapter", 0, 0, G_OPTION_ARG_STRING, &adapter, "the Bluetooth adapter (default: the first powered one)",
		 "hciN"},
		{"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "how long to listen (default 5)", "SECONDS"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GAsyncResult) result = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	ScanProgress progress = {isatty(STDERR_FILENO) && !cli->json, 0};
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("scan", error->message);
	if (argc != 1)
		return cli_usage_error("scan", "scan takes no arguments");
	if (timeout_s < 1 || timeout_s > 600)
		return cli_usage_error("scan", "--timeout takes 1..600 seconds");
	if (!cli_open_context(cli, "scan", &exit_code))
		return exit_code;
	amu_context_scan_async(cli->context, adapter, (guint)timeout_s * 1000, scan_found_cb, &progress, NULL,
			       scan_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(NULL, TRUE);
	if (progress.tty)
		fprintf(stderr, "\r\033[K");
	devices = amu_context_scan_finish(cli->context, result, &error);
	if (devices == NULL)
		return cli_report_error(cli, "scan", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("[");
		for (guint i = 0; i < devices->len; i++) {
			AmuScanResult *d = g_ptr_array_index(devices, i);
			gint16 rssi = 0;
			if (i > 0)
				g_string_append_c(out, ',');
			g_string_append(out, "{\"address\":");
			cli_json_string(out, amu_scan_result_get_address(d));
			g_string_append(out, ",\"name\":");
			if (amu_scan_result_get_name(d) != NULL)
				cli_json_string(out, amu_scan_result_get_name(d));
			else
				g_string_append(out, "null");
			g_string_append(out, ",\"rssi\":");
			if (amu_scan_result_get_rssi(d, &rssi))
				g_string_append_printf(out, "%d", rssi);
			else
				g_string_append(out, "null");
			g_string_append(out, ",\"profile\":");
			if (amu_scan_result_get_profile(d) != NULL)
				cli_json_string(out, amu_scan_result_get_profile(d));
			else
				g_string_append(out, "null");
			g_string_append_printf(out, ",\"pairing_mode\":%s,\"paired\":%s}",
					       amu_scan_result_is_pairing_mode(d) ? "true" : "false",
					       amu_scan_result_is_paired(d) ? "true" : "false");
		}
		g_string_append(out, "]\n");
		fputs(out->str, stdout);
		return EXIT_OK;
	}
	if (devices->len == 0) {
		printf("No Amulet device in range (listened %d s). Is it on and advertising?\n", timeout_s);
		return EXIT_OK;
	}
	printf("%-26s %-20s %6s  %-6s %s\n", "ADDRESS", "NAME", "RSSI", "TYPE", "STATE");
	for (guint i = 0; i < devices->len; i++) {
		AmuScanResult *d = g_ptr_array_index(devices, i);
		gint16 rssi = 0;
		g_autofree char *rssi_text =
			amu_scan_result_get_rssi(d, &rssi) ? g_strdup_printf("%d", rssi) : g_strdup("-");
		const char *name = amu_scan_result_get_name(d);
		const char *profile = amu_scan_result_get_profile(d);
		printf("%-26s %-20s %6s  %-6s %s\n", amu_scan_result_get_address(d), name != NULL ? name : "-", rssi_text,
		       profile != NULL ? profile : "-",
		       amu_scan_result_is_pairing_mode(d) ? "pairing mode: amulet pair ADDRESS"
		       : amu_scan_result_is_paired(d)	   ? "bonded"
							   : "owned");
	}
	return EXIT_OK;
}
