/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>

/* What the fuzz targets share: checking their own invariants (a failed
 * check aborts, so libFuzzer reports it as a crash with the input), and
 * removing the scratch directories some of them write into. */

#define check(ok) ((ok) ? (void)0 : fuzz_check_failed(__FILE__, __LINE__, #ok))

G_GNUC_NORETURN static inline void
fuzz_check_failed(const char *file, int line, const char *what)
{
	g_printerr("%s:%d: check failed: %s\n", file, line, what);
	abort();
}

/* removes @path and everything under it; links are not followed */
static inline void
fuzz_remove_tree(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *child = g_build_filename(path, name, NULL);
		if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
			fuzz_remove_tree(child);
		else
			g_unlink(child);
	}
	if (dir != NULL)
		g_dir_close(dir);
	g_rmdir(path);
}
