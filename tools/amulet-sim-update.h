/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `amulet-sim make-update`: builds a signed update package for the
 * simulator (docs/update.md), or with --keygen a new vendor key. argv[0] is
 * "make-update". Returns the exit code: 0 done, 1 failed, 2 usage error. */
int amu_sim_make_update_main(int argc, char **argv);
