/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-channel.h"
#include "amu-framer.h"
#include "amu-link.h"

G_BEGIN_DECLS

/* Glue for one connection, used by both roles: link datagrams <-> framer
 * <-> channel packets, with the framer's timers on the thread-default main
 * context. Every ending (link closed, framing error, channel failure) ends
 * up as the channel's FAILED event, so owners watch the channel only. */
typedef struct AmuConnection AmuConnection;

AmuConnection *amu_connection_new(AmuLink *link, AmuChannel *channel, AmuFramerRole role);
AmuConnection *amu_connection_ref(AmuConnection *connection);
void amu_connection_unref(AmuConnection *connection);
/* central: send the framing handshake */
gboolean amu_connection_start(AmuConnection *connection, GError **error);
/* hand a packet to the framer: used as the channel's tx function */
void amu_connection_close(AmuConnection *connection);
AmuChannel *amu_connection_get_channel(AmuConnection *connection);
AmuLink *amu_connection_get_link(AmuConnection *connection);
AmuFramer *amu_connection_get_framer(AmuConnection *connection);
/* optional hook on every outgoing packet (simulator fault injection); it may
 * rewrite the packet in place or return FALSE to send nothing */
typedef gboolean (*AmuConnectionFilterFunc)(AmuConnection *connection, GByteArray *packet, void *user_data);
void amu_connection_set_tx_filter(AmuConnection *connection, AmuConnectionFilterFunc func, void *user_data);
/* bytes waiting in the framer and not yet on the link (back-pressure) */
size_t amu_connection_get_queued_bytes(AmuConnection *connection);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuConnection, amu_connection_unref)

G_END_DECLS
