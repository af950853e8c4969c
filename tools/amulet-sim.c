/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <amulet/amulet.h>
#include <locale.h>
#include <stdio.h>

static const char *usage_text =
	"Usage: amulet-sim --listen PATH --profile band|watch|toy --state DIR [OPTIONS]\n"
	"\n"
	"Runs a simulated Amulet peripheral on a UNIX socket.\n"
	"\n"
	"  --help                  show this help\n"
	"  --version               print the version\n"
	"\n"
	"See amulet-sim(1).\n";

int
main(int argc, char **argv)
{
	setlocale(LC_ALL, "");
	for (int i = 1; i < argc; i++) {
		if (g_strcmp0(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (g_strcmp0(argv[i], "--version") == 0) {
			printf("amulet-sim %s\n", amu_version_string());
			return 0;
		}
	}
	fputs(usage_text, stderr);
	return 2;
}
