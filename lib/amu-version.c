/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amulet/amu-version.h"

/**
 * amu_version_string:
 *
 * Returns the version of the library that is running, which may be newer
 * than %AMU_VERSION_STRING the program was compiled against.
 *
 * Returns: (transfer none): a version such as "0.1.0"
 *
 * Since: 0.1
 */
const char *
amu_version_string(void)
{
	return PACKAGE_VERSION;
}
