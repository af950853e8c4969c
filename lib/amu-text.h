/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <protobuf-c/protobuf-c.h>

G_BEGIN_DECLS

/* Text a device sends ends up on the owner's terminal and in other programs'
 * UIs: a model name holding ESC [ 2 J, or a CSI (0x9b), could rewrite what the
 * user reads while confirming a pairing. Everything a device says is made
 * printable once, as it enters the library: control characters (C0, DEL,
 * C1) and bytes that are not UTF-8 become '?'. */

/* (transfer full) a printable copy; NULL stays NULL */
char *amu_text_printable(const char *text);
/* in place, every string field of @message and of the messages inside it */
void amu_text_sanitize_message(ProtobufCMessage *message);

G_END_DECLS
