/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

/* Only symbols marked AMU_EXPORT leave libamulet.so; the library is built
 * with -fvisibility=hidden and a versioned symbol map (lib/libamulet.map). */
#if defined(AMU_COMPILATION)
#define AMU_EXPORT __attribute__((visibility("default")))
#else
#define AMU_EXPORT
#endif
