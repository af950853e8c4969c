/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <amulet/amulet.h>
#include <string.h>

#include "amu-test.h"

static void
test_error_quark_stable(void)
{
	g_autoptr(GError) error = NULL;

	CU_ASSERT_STRING_EQUAL(g_quark_to_string(AMU_ERROR), "amu-error-quark");
	g_set_error_literal(&error, AMU_ERROR, AMU_ERROR_LOCKED_OUT, "locked");
	CU_ASSERT_TRUE(g_error_matches(error, AMU_ERROR, AMU_ERROR_LOCKED_OUT));
}

/* The numeric codes and their names are part of the ABI and of --json output. */
static void
test_error_codes_are_stable(void)
{
	CU_ASSERT_EQUAL(AMU_ERROR_FAILED, 0);
	CU_ASSERT_EQUAL(AMU_ERROR_AUTH_FAILED, 10);
	CU_ASSERT_EQUAL(AMU_ERROR_ROLLBACK, 24);
	CU_ASSERT_EQUAL(AMU_ERROR_REVERTED, 28);
	CU_ASSERT_STRING_EQUAL(amu_error_to_string(AMU_ERROR_REPLAYED), "replayed");
	CU_ASSERT_STRING_EQUAL(amu_error_to_string(AMU_ERROR_NO_SPACE), "no-space");
	CU_ASSERT_STRING_EQUAL(amu_error_to_string((AmuError)999), "unknown");
}

/* Every code has its own name: two codes printing the same word would make
 * --json output ambiguous. */
static void
test_error_names_unique(void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int code = AMU_ERROR_FAILED; code < AMU_ERROR_LAST; code++) {
		const char *name = amu_error_to_string((AmuError)code);
		CU_ASSERT_STRING_NOT_EQUAL(name, "unknown");
		CU_ASSERT_FALSE(g_hash_table_contains(seen, name));
		g_hash_table_add(seen, (gpointer)name);
	}
	CU_ASSERT_EQUAL(g_hash_table_size(seen), AMU_ERROR_LAST);
}

static void
test_version(void)
{
	CU_ASSERT_STRING_EQUAL(amu_version_string(), AMU_VERSION_STRING);
	CU_ASSERT_EQUAL(AMU_API_VERSION, 1);
}

AMU_TEST_MAIN("error", {"quark", test_error_quark_stable}, {"codes stable", test_error_codes_are_stable},
	      {"names unique", test_error_names_unique}, {"version", test_version})
