/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "amulet-cli.h"

/* amulet update and amulet settings (docs/update.md). */

/* a nominal LE 1M PHY goodput for the time estimate shown before asking */
#define ESTIMATE_BPS 1000000.0

typedef struct {
	gboolean tty;
	gint64 start_us;
	gboolean line_open;
} UpdateProgress;

static void
update_progress_cb(AmuUpdateStage stage, guint64 done, guint64 total, gpointer user_data)
{
	UpdateProgress *progress = user_data;
	double seconds;

	if (!progress->tty)
		return;
	switch (stage) {
	case AMU_UPDATE_STAGE_CONNECTING:
		fprintf(stderr, "\r\033[Kupdate: connecting");
		break;
	case AMU_UPDATE_STAGE_UPLOADING:
		if (progress->start_us == 0)
			progress->start_us = g_get_monotonic_time();
		seconds = (double)(g_get_monotonic_time() - progress->start_us) / G_USEC_PER_SEC;
		fprintf(stderr, "\r\033[Kupdate: %3.0f%%  %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " bytes  %.1f KiB/s",
			total > 0 ? 100.0 * (double)done / (double)total : 0.0, done, total,
			seconds > 0 ? (double)done / 1024.0 / seconds : 0.0);
		break;
	case AMU_UPDATE_STAGE_INSTALLING:
		fprintf(stderr, "\r\033[Kupdate: the device checks the image and reboots into it");
		break;
	case AMU_UPDATE_STAGE_CONFIRMING:
		fprintf(stderr, "\r\033[Kupdate: %s", done == 0 ? "waiting for the device to come back"
							    : "checking what the device runs");
		break;
	}
	progress->line_open = TRUE;
	fflush(stderr);
}

static void
progress_end(UpdateProgress *progress)
{
	if (progress->line_open)
		fprintf(stderr, "\r\033[K");
	progress->line_open = FALSE;
}

static void
print_update(AmuDevice *device, AmuFirmwareUpdate *update)
{
	const char *const *changed = amu_firmware_update_get_changed_settings(update);
	guint64 size = amu_firmware_update_get_size(update);
	g_autofree char *known = NULL;
	g_autofree char *size_text = g_format_size(size);
	guint64 running = 0;

	fprintf(stderr, "Firmware update for \"%s\":\n", amu_device_get_name(device));
	if (amu_device_get_known_firmware(device, &known, &running))
		fprintf(stderr, "  Now:       %s (sequence %" G_GUINT64_FORMAT ")\n", known, running);
	else if (amu_device_get_disclosure(device) != NULL)
		fprintf(stderr, "  Now:       %s, as disclosed at pairing\n",
			amu_disclosure_get_firmware_version(amu_device_get_disclosure(device)));
	fprintf(stderr, "  New:       %s (sequence %" G_GUINT64_FORMAT ")%s\n", amu_firmware_update_get_version(update),
		amu_firmware_update_get_sequence(update),
		amu_firmware_update_is_security(update) ? ", fixes a security problem" : "");
	fprintf(stderr, "  Changes:   %s\n", amu_firmware_update_get_changes(update));
	fprintf(stderr, "  Size:      %s, about %.0f s to send at 1 Mbit/s; the device restarts once\n", size_text,
		(double)size * 8.0 / ESTIMATE_BPS + 1.0);
	fprintf(stderr, "  Signed by: the vendor key %s disclosed at pairing\n", amu_device_get_name(device));
	if (changed != NULL && changed[0] != NULL) {
		g_autofree char *list = g_strjoinv(", ", (char **)changed);
		fprintf(stderr, "  Settings:  this version changes what %s mean%s; you will be asked to review %s\n", list,
			changed[1] == NULL ? "s" : "", changed[1] == NULL ? "it" : "them");
	}
	fprintf(stderr, "  Your settings and consents on the device are kept.\n");
}

static void
status_json(GString *out, AmuDevice *device, AmuDeviceStatus *status)
{
	const char *const *keys = amu_device_status_get_setting_keys(status);
	g_autofree char *sha = amu_device_status_get_firmware_sha256(status);

	g_string_append(out, "{\"name\":");
	cli_json_string(out, amu_device_get_name(device));
	g_string_append(out, ",\"firmware_version\":");
	cli_json_string(out, amu_device_status_get_firmware_version(status));
	g_string_append_printf(out, ",\"firmware_sequence\":%" G_GUINT64_FORMAT ",\"firmware_sha256\":\"%s\"",
			       amu_device_status_get_firmware_sequence(status), sha);
	g_string_append_printf(out, ",\"trial\":%s", amu_device_status_is_trial(status) ? "true" : "false");
	g_string_append(out, ",\"reverted_from\":");
	if (amu_device_status_get_reverted_from(status) != NULL)
		cli_json_string(out, amu_device_status_get_reverted_from(status));
	else
		g_string_append(out, "null");
	g_string_append(out, ",\"update_policy\":");
	cli_json_string(out, amu_update_policy_to_string(amu_device_get_update_policy(device)));
	g_string_append(out, ",\"settings\":{");
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
		if (i > 0)
			g_string_append_c(out, ',');
		cli_json_string(out, keys[i]);
		g_string_append_c(out, ':');
		cli_json_string(out, amu_device_status_get_setting(status, keys[i]));
	}
	g_string_append(out, "}}");
}

static int
update_check(Cli *cli, AmuDevice *device, char **packages)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuFirmwareUpdate) newest = amu_device_find_newest_update(device, &error);
	g_autoptr(AmuDeviceStatus) status = NULL;
	g_autofree char *running_version = NULL;
	guint64 running = 0;
	gboolean live = FALSE;

	if (error != NULL)
		return cli_report_error(cli, "update", error);
	for (guint i = 0; packages != NULL && packages[i] != NULL; i++) {
		g_autoptr(AmuFirmwareUpdate) update = amu_device_load_update(device, packages[i], &error);
		/* an older package is still a package: only a bad one is an error */
		if (update == NULL && !g_error_matches(error, AMU_ERROR, AMU_ERROR_ROLLBACK))
			return cli_report_error(cli, "update", error);
		g_clear_error(&error);
		if (update != NULL && (newest == NULL || amu_firmware_update_get_sequence(update) >
								 amu_firmware_update_get_sequence(newest)))
			g_set_object(&newest, update);
	}
	/* ask the device itself; if it is out of reach, say what it last ran */
	status = amu_device_get_status(device, NULL, &error);
	if (status != NULL) {
		running = amu_device_status_get_firmware_sequence(status);
		running_version = g_strdup(amu_device_status_get_firmware_version(status));
		live = TRUE;
	} else if (!amu_device_get_known_firmware(device, &running_version, &running)) {
		return cli_report_error(cli, "update", error);
	}
	if (cli->json) {
		g_autoptr(GString) out = g_string_new("{\"name\":");
		cli_json_string(out, amu_device_get_name(device));
		g_string_append(out, ",\"running\":");
		cli_json_string(out, running_version);
		g_string_append_printf(out, ",\"running_sequence\":%" G_GUINT64_FORMAT ",\"live\":%s,\"newest\":",
				       running, live ? "true" : "false");
		if (newest != NULL) {
			cli_json_string(out, amu_firmware_update_get_version(newest));
			g_string_append_printf(out, ",\"newest_sequence\":%" G_GUINT64_FORMAT ",\"newest_path\":",
					       amu_firmware_update_get_sequence(newest));
			cli_json_string(out, amu_firmware_update_get_path(newest));
		} else {
			g_string_append(out, "null");
		}
		g_string_append_printf(out, ",\"up_to_date\":%s}\n",
				       newest == NULL || amu_firmware_update_get_sequence(newest) <= running ? "true"
													      : "false");
		fputs(out->str, stdout);
		return EXIT_OK;
	}
	printf("%s runs firmware %s (sequence %" G_GUINT64_FORMAT ")%s.\n", amu_device_get_name(device),
	       running_version, running, live ? "" : ", when last seen; it is out of reach now");
	if (newest == NULL)
		printf("No update package for it is known here.\n");
	else if (amu_firmware_update_get_sequence(newest) <= running)
		printf("It runs the newest package known here (%s).\n", amu_firmware_update_get_version(newest));
	else
		printf("Newer: %s (sequence %" G_GUINT64_FORMAT ")%s. Install it with: amulet update %s %s\n",
		       amu_firmware_update_get_version(newest), amu_firmware_update_get_sequence(newest),
		       amu_firmware_update_is_security(newest) ? ", a security fix" : "", amu_device_get_name(device),
		       amu_firmware_update_get_path(newest));
	return EXIT_OK;
}

int
cli_cmd_update(Cli *cli, int argc, char **argv)
{
	gboolean yes = FALSE, check = FALSE, automatic = FALSE;
	g_autofree char *policy_text = NULL;
	GOptionEntry entries[] = {
		{"yes", 'y', 0, G_OPTION_ARG_NONE, &yes, "install without asking (scripts)", NULL},
		{"check", 0, 0, G_OPTION_ARG_NONE, &check, "tell whether the device runs the newest package known", NULL},
		{"auto", 0, 0, G_OPTION_ARG_NONE, &automatic,
		 "install the newest package known if the device's update policy allows it without asking", NULL},
		{"policy", 0, 0, G_OPTION_ARG_STRING, &policy_text, "set the device's auto-update policy", "off|security|all"},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME [PACKAGE]");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuFirmwareUpdate) update = NULL;
	g_autoptr(AmuDeviceStatus) status = NULL;
	UpdateProgress progress = {isatty(STDERR_FILENO) && !cli->json, 0, FALSE};
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("update", error->message);
	if (argc < 2)
		return cli_usage_error("update", "give a device name");
	if (check + automatic + (policy_text != NULL) > 1)
		return cli_usage_error("update", "--check, --auto and --policy go one at a time");
	if (!check && !automatic && policy_text == NULL && argc != 3)
		return cli_usage_error("update", "give a device name and an update package");
	if ((automatic || policy_text != NULL) && argc > 3)
		return cli_usage_error("update", "too many arguments");
	device = cli_find_device(cli, "update", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	if (policy_text != NULL) {
		AmuUpdatePolicy policy;
		if (!amu_update_policy_from_string(policy_text, &policy))
			return cli_usage_error("update", "--policy takes off, security or all");
		if (!amu_device_set_update_policy(device, policy, &error))
			return cli_report_error(cli, "update", error);
		if (cli->json) {
			g_autofree char *name = cli_json_quote(amu_device_get_name(device));
			printf("{\"name\":%s,\"update_policy\":\"%s\"}\n", name, amu_update_policy_to_string(policy));
		} else
			printf("Update policy of %s: %s%s\n", amu_device_get_name(device), amu_update_policy_to_string(policy),
			       policy == AMU_UPDATE_POLICY_OFF ? " (every update waits for you)"
			       : policy == AMU_UPDATE_POLICY_SECURITY
				       ? " (security fixes install with amulet update --auto; others wait for you)"
				       : " (updates install with amulet update --auto without asking)");
		return EXIT_OK;
	}
	if (check)
		return update_check(cli, device, argv + 2);
	if (automatic) {
		update = argc == 3 ? amu_device_load_update(device, argv[2], &error)
				   : amu_device_find_newest_update(device, &error);
		if (update == NULL && error != NULL)
			return cli_report_error(cli, "update", error);
		if (update == NULL) {
			if (cli->json) {
				g_autofree char *name = cli_json_quote(amu_device_get_name(device));
				printf("{\"name\":%s,\"installed\":false,\"reason\":\"no package known\"}\n", name);
			} else
				printf("No update package for %s is known here.\n", amu_device_get_name(device));
			return EXIT_OK;
		}
	} else {
		update = amu_device_load_update(device, argv[2], &error);
		if (update == NULL)
			return cli_report_error(cli, "update", error);
		print_update(device, update);
		if (yes) {
			fprintf(stderr, "amulet update: --yes: installing without asking\n");
		} else if (!cli_ask_yes_no("Install it now?")) {
			fprintf(stderr, "Not installed.\n");
			return EXIT_REJECTED;
		}
	}
	status = amu_device_update(device, update, automatic ? AMU_UPDATE_FLAGS_AUTO : AMU_UPDATE_FLAGS_NONE,
				   update_progress_cb, &progress, NULL, &error);
	progress_end(&progress);
	if (status == NULL)
		return cli_report_error(cli, "update", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new(NULL);
		status_json(out, device, status);
		g_string_insert(out, 1, "\"installed\":true,");
		printf("%s\n", out->str);
	} else {
		printf("%s now runs firmware %s (sequence %" G_GUINT64_FORMAT "), confirmed.\n", amu_device_get_name(device),
		       amu_device_status_get_firmware_version(status), amu_device_status_get_firmware_sequence(status));
	}
	return EXIT_OK;
}

int
cli_cmd_settings(Cli *cli, int argc, char **argv)
{
	g_autoptr(GOptionContext) options = g_option_context_new("NAME [KEY=VALUE...]");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuDeviceStatus) status = NULL;
	g_auto(GStrv) review = NULL;
	g_autofree char *review_version = NULL;
	int exit_code = EXIT_OK;

	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("settings", error->message);
	if (argc < 2)
		return cli_usage_error("settings", "give a device name");
	device = cli_find_device(cli, "settings", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	review = amu_device_get_settings_to_review(device, &review_version);
	if (argc > 2) {
		g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func(g_free);
		g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
		for (int i = 2; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			if (eq == NULL || eq == argv[i])
				return cli_usage_error("settings", "give each setting as KEY=VALUE");
			g_ptr_array_add(keys, g_strndup(argv[i], (gsize)(eq - argv[i])));
			g_ptr_array_add(values, g_strdup(eq + 1));
		}
		g_ptr_array_add(keys, NULL);
		g_ptr_array_add(values, NULL);
		status = amu_device_change_settings(device, (const char *const *)keys->pdata,
						    (const char *const *)values->pdata, NULL, &error);
	} else {
		status = amu_device_get_status(device, NULL, &error);
	}
	if (status == NULL)
		return cli_report_error(cli, "settings", error);
	/* the owner has now seen every setting */
	if (review != NULL && !amu_device_clear_settings_review(device, &error))
		return cli_report_error(cli, "settings", error);
	if (cli->json) {
		g_autoptr(GString) out = g_string_new(NULL);
		status_json(out, device, status);
		printf("%s\n", out->str);
		return EXIT_OK;
	}
	{
		const char *const *keys = amu_device_status_get_setting_keys(status);
		printf("Settings of %s (firmware %s):\n", amu_device_get_name(device),
		       amu_device_status_get_firmware_version(status));
		for (guint i = 0; keys[i] != NULL; i++) {
			gboolean flagged = review != NULL && g_strv_contains((const char *const *)review, keys[i]);
			printf("  %-22s %s", keys[i], amu_device_status_get_setting(status, keys[i]));
			if (flagged)
				printf("   (firmware %s changed what this means: check it is still what you want)",
				       review_version);
			printf("\n");
		}
	}
	return EXIT_OK;
}
