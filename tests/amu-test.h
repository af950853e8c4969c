/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <CUnit/Basic.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>

/* Each test program is one CUnit suite (or a few): AMU_TEST_MAIN registers
 * them, runs in verbose mode so make check's log shows each test, and exits
 * non-zero on any failure, so automake's harness counts it. */
typedef struct {
	const char *name;
	CU_TestFunc func;
} AmuTestCase;

static inline int
amu_test_run(const char *suite_name, const AmuTestCase *cases, size_t n_cases)
{
	CU_pSuite suite;
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (suite == NULL)
		return 99;
	for (size_t i = 0; i < n_cases; i++) {
		if (CU_add_test(suite, cases[i].name, cases[i].func) == NULL)
			return 99;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	if (CU_get_number_of_tests_run() != n_cases)
		failures++;
	CU_cleanup_registry();
	return failures == 0 ? 0 : 1;
}

#define AMU_TEST_MAIN(suite_name, ...)                                                             \
	int main(void)                                                                             \
	{                                                                                          \
		static const AmuTestCase cases[] = {__VA_ARGS__};                                   \
		return amu_test_run(suite_name, cases, G_N_ELEMENTS(cases));                        \
	}

/* Assert a GError is set, in the AMU_ERROR domain, with this code. */
#define AMU_ASSERT_ERROR(err, expected)                                                            \
	do {                                                                                       \
		CU_ASSERT_PTR_NOT_NULL_FATAL(err);                                                 \
		CU_ASSERT_EQUAL((err)->domain, AMU_ERROR);                                         \
		if ((err)->code != (int)(expected))                                                \
			g_printerr("  expected error %d, got %d: %s\n", (int)(expected), (err)->code, \
				   (err)->message);                                                \
		CU_ASSERT_EQUAL((err)->code, (int)(expected));                                     \
	} while (0)

/* Removes a scratch directory and everything below it (symlinks are not followed). */
static inline void
amu_test_remove_tree(const char *path)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *child = g_build_filename(path, name, NULL);
		if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
			amu_test_remove_tree(child);
		else
			g_unlink(child);
	}
	g_rmdir(path);
}
