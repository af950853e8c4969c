/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The smallest companion program: link libamulet through pkg-config and
 * report the library version and how an error from it reads.
 *
 *   cc amu-example-info.c $(pkg-config --cflags --libs amulet-1)
 */
#include <amulet/amulet.h>
#include <stdio.h>

int
main(void)
{
	g_autoptr(GError) error = NULL;

	printf("libamulet %s\n", amu_version_string());
	g_set_error_literal(&error, AMU_ERROR, AMU_ERROR_LOCKED_OUT, "example");
	printf("error domain %s, code %s\n", g_quark_to_string(error->domain),
	       amu_error_to_string(error->code));
	return 0;
}
