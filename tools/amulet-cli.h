/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <amulet/amulet.h>
#include <glib.h>

/* What the commands of amulet(1) share; each group of commands has a file. */

/* Exit codes, documented in amulet(1). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_REJECTED = 3,
	EXIT_SECURITY = 4,
	EXIT_REFUSED = 5,
	EXIT_NOT_FOUND = 6,
	EXIT_LINK = 7,
	EXIT_DENIED = 8,
	EXIT_INTERRUPTED = 130, /* 128 + SIGINT, as a shell reports it */
};

typedef struct {
	char *data_dir;
	gboolean json;
	AmuContext *context;
} Cli;

void cli_json_string(GString *out, const char *s);
/* @s as a JSON string literal, quotes included (free with g_free) */
char *cli_json_quote(const char *s);
int cli_exit_code_for(const GError *error);
/* prints the error (as JSON on stdout with --json, always on stderr) and returns the exit code */
int cli_report_error(Cli *cli, const char *command, const GError *error);
int cli_usage_error(const char *command, const char *message);
/* asks QUESTION [y/N] on stderr; TRUE only for an answer starting with y or Y */
gboolean cli_ask_yes_no(const char *question);
gboolean cli_open_context(Cli *cli, const char *command, int *exit_code);
AmuDevice *cli_find_device(Cli *cli, const char *command, const char *name, int *exit_code);

/* amulet-telemetry.c */
int cli_cmd_sync(Cli *cli, int argc, char **argv);
int cli_cmd_data(Cli *cli, int argc, char **argv);

/* amulet-consent.c */
int cli_cmd_consent(Cli *cli, int argc, char **argv);
int cli_cmd_export(Cli *cli, int argc, char **argv);

/* amulet-wipe.c */
int cli_cmd_wipe(Cli *cli, int argc, char **argv);
int cli_cmd_transfer(Cli *cli, int argc, char **argv);
int cli_cmd_reset(Cli *cli, int argc, char **argv);

/* amulet-update.c */
int cli_cmd_update(Cli *cli, int argc, char **argv);
int cli_cmd_settings(Cli *cli, int argc, char **argv);

/* amulet-bluez.c */
int cli_cmd_scan(Cli *cli, int argc, char **argv);
