/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "amulet-cli.h"

/* amulet wipe, transfer and reset: the destructive commands (docs/wipe.md). */

/* The owner types the device's name (or "reset") to confirm. */
static gboolean
confirm_by_typing(const char *what, const char *expected)
{
	char buf[256] = {0};

	fprintf(stderr, "%s\nType '%s' to confirm: ", what, expected);
	fflush(stderr);
	if (fgets(buf, sizeof(buf), stdin) == NULL)
		return FALSE;
	buf[strcspn(buf, "\r\n")] = '\0';
	return strcmp(buf, expected) == 0;
}

int
cli_cmd_wipe(Cli *cli, int argc, char **argv)
{
	gboolean factory = FALSE, keep_local = FALSE, when_seen = FALSE, yes = FALSE;
	GOptionEntry entries[] = {
		{"factory", 0, 0, G_OPTION_ARG_NONE, &factory, "also erase its keys and bonds: it becomes unowned", NULL},
		{"keep-local", 0, 0, G_OPTION_ARG_NONE, &keep_local, "keep this host's copy of its data", NULL},
		{"when-seen", 0, 0, G_OPTION_ARG_NONE, &when_seen, "the device is lost: wipe it at its next connection", NULL},
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "do not ask (scripts)", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autofree char *question = NULL;
	AmuWipeFlags flags = AMU_WIPE_FLAGS_NONE;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("wipe", error->message);
	if (argc != 2)
		return cli_usage_error("wipe", "give a device name");
	if (factory && keep_local)
		return cli_usage_error("wipe", "--factory forgets this host, so --keep-local cannot apply");
	device = cli_find_device(cli, "wipe", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	flags |= factory ? AMU_WIPE_FLAGS_FACTORY : 0;
	flags |= keep_local ? AMU_WIPE_FLAGS_KEEP_LOCAL : 0;
	flags |= when_seen ? AMU_WIPE_FLAGS_WHEN_SEEN : 0;
	question = g_strdup_printf("This erases %s on the device \"%s\"%s%s.", factory ? "every key, bond and sample" : "every recorded sample",
				   amu_device_get_name(device),
				   keep_local ? "" : ", and its data, bond and grants on this host",
				   when_seen ? " (at its next connection)" : "");
	if (!yes && !confirm_by_typing(question, amu_device_get_name(device))) {
		fprintf(stderr, "Not wiped.\n");
		return EXIT_REJECTED;
	}
	if (!amu_device_wipe(device, flags, NULL, &error))
		return cli_report_error(cli, "wipe", error);
	if (cli->json) {
		g_autofree char *name = cli_json_quote(amu_device_get_name(device));
		printf("{\"name\":%s,\"%s\":true}\n", name, when_seen ? "queued" : "wiped");
	}
	return EXIT_OK;
}

int
cli_cmd_transfer(Cli *cli, int argc, char **argv)
{
	gboolean yes = FALSE;
	g_autofree char *grant = NULL, *format_text = NULL, *out = NULL;
	GOptionEntry entries[] = {
		{"export-grant", 0, 0, G_OPTION_ARG_STRING, &grant, "first export the data this grant allows", "ID"},
		{"format", 'f', 0, G_OPTION_ARG_STRING, &format_text, "with --export-grant: json, csv, fhir or gpx", "FORMAT"},
		{"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "with --export-grant: the directory to write", "DIR"},
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "do not ask (scripts)", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autofree char *question = NULL;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("transfer", error->message);
	if (argc != 2)
		return cli_usage_error("transfer", "give a device name");
	if ((grant != NULL) != (out != NULL) || (grant != NULL && format_text == NULL))
		return cli_usage_error("transfer", "--export-grant needs --format and --out");
	device = cli_find_device(cli, "transfer", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	question = g_strdup_printf("This hands \"%s\" over: the device erases every key, bond and sample of yours and "
				   "waits for its new owner, and this host erases its copy.",
				   amu_device_get_name(device));
	if (!yes && !confirm_by_typing(question, amu_device_get_name(device))) {
		fprintf(stderr, "Not transferred.\n");
		return EXIT_REJECTED;
	}
	if (grant != NULL) {
		AmuExportFormat format;
		g_autoptr(AmuDataExport) export = NULL;
		if (!amu_export_format_from_string(format_text, &format))
			return cli_usage_error("transfer", "--format takes json, csv, fhir or gpx");
		export = amu_data_export_new(cli->context, grant, format, out);
		if (!amu_data_export_run(export, NULL, NULL, NULL, &error)) {
			g_prefix_error(&error, "the export before the transfer failed, nothing was transferred: ");
			return cli_report_error(cli, "transfer", error);
		}
		fprintf(stderr, "Exported %" G_GUINT64_FORMAT " records to %s first.\n", amu_data_export_get_n_samples(export),
			out);
	}
	if (!amu_device_transfer(device, NULL, &error))
		return cli_report_error(cli, "transfer", error);
	if (cli->json) {
		g_autofree char *name = cli_json_quote(amu_device_get_name(device));
		printf("{\"name\":%s,\"transferred\":true}\n", name);
	}
	return EXIT_OK;
}

int
cli_cmd_reset(Cli *cli, int argc, char **argv)
{
	gboolean yes = FALSE;
	GOptionEntry entries[] = {
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "do not ask (scripts)", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("reset", error->message);
	if (argc != 1)
		return cli_usage_error("reset", "takes no arguments");
	if (!cli_open_context(cli, "reset", &exit_code))
		return exit_code;
	if (!yes && !confirm_by_typing("This removes every key, bond, sample and grant on this host. Devices keep "
				       "their bond with it until they are reset.",
				       "reset")) {
		fprintf(stderr, "Not reset.\n");
		return EXIT_REJECTED;
	}
	if (!amu_context_reset(cli->context, &error))
		return cli_report_error(cli, "reset", error);
	if (cli->json)
		printf("{\"reset\":true}\n");
	else
		printf("This host was reset: new identity, no devices, no data, no grants.\n");
	return EXIT_OK;
}
