/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <amulet/amulet.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

/* Exit codes, documented in amulet(1). */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_GENERIC = 1,
	EXIT_USAGE = 2,
};

static const char *usage_text =
	"Usage: amulet [--data-dir DIR] [--json] COMMAND [ARGS...]\n"
	"\n"
	"Commands:\n"
	"  version                 print the version\n"
	"\n"
	"Options:\n"
	"  --data-dir DIR          where keys, bonds and data live (default $XDG_DATA_HOME/amulet)\n"
	"  --json                  print machine-readable JSON on stdout\n"
	"  --help                  show this help\n"
	"  --version               print the version\n"
	"\n"
	"See amulet(1) for every command, exit code and file.\n";

int
main(int argc, char **argv)
{
	int i;

	setlocale(LC_ALL, "");
	for (i = 1; i < argc; i++) {
		if (g_strcmp0(argv[i], "--help") == 0 || g_strcmp0(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (g_strcmp0(argv[i], "--version") == 0 || g_strcmp0(argv[i], "version") == 0) {
			printf("amulet %s\n", amu_version_string());
			return EXIT_OK;
		}
	}
	if (argc > 1)
		fprintf(stderr, "amulet: unknown command or option '%s'\nTry 'amulet --help'.\n", argv[1]);
	else
		fputs(usage_text, stderr);
	return EXIT_USAGE;
}
