/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-link.h"

/* all links of the process: links live on any thread's main context */
static uint64_t rx_total_datagrams;
static uint64_t rx_total_bytes;

void
amu_link_init(AmuLink *link, const AmuLinkOps *ops, uint16_t att_mtu, const char *description)
{
	link->ops = ops;
	link->ref_count = 1;
	link->att_mtu = att_mtu;
	link->description = g_strdup(description);
}

AmuLink *
amu_link_ref(AmuLink *link)
{
	g_return_val_if_fail(link != NULL, NULL);
	link->ref_count++;
	return link;
}

void
amu_link_unref(AmuLink *link)
{
	if (link == NULL)
		return;
	if (--link->ref_count > 0)
		return;
	if (!link->closed)
		amu_link_close(link);
	g_free(link->description);
	link->ops->finalize(link);
}

void
amu_link_set_handlers(AmuLink *link, AmuLinkRxFunc rx_func, AmuLinkClosedFunc closed_func,
		      void *user_data)
{
	link->rx_func = rx_func;
	link->closed_func = closed_func;
	link->user_data = user_data;
}

gboolean
amu_link_send(AmuLink *link, const uint8_t *buf, size_t len, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (link->closed) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "the link to %s is closed",
			    link->description);
		return FALSE;
	}
	if (len > (size_t)link->att_mtu - 3) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "datagram of %zu bytes exceeds the link's %u-byte segment", len,
			    link->att_mtu - 3u);
		return FALSE;
	}
	if (!link->ops->send(link, buf, len, error))
		return FALSE;
	link->n_sent++;
	link->n_bytes_sent += len;
	if (link->drop_after > 0 && link->n_sent >= link->drop_after) {
		g_autoptr(GError) drop = g_error_new(G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
						     "fault injection: link dropped after %" G_GUINT64_FORMAT " datagrams",
						     link->n_sent);
		g_debug("%s", drop->message);
		amu_link_emit_closed(link, drop);
	}
	return TRUE;
}

void
amu_link_cork(AmuLink *link)
{
	link->cork_depth++;
}

void
amu_link_uncork(AmuLink *link)
{
	g_return_if_fail(link->cork_depth > 0);
	if (--link->cork_depth == 0 && !link->closed && link->ops->flush != NULL)
		link->ops->flush(link);
}

void
amu_link_close(AmuLink *link)
{
	if (link->closed)
		return;
	link->closed = TRUE;
	link->ops->close(link);
}

uint16_t
amu_link_get_att_mtu(const AmuLink *link)
{
	return link->att_mtu;
}

const char *
amu_link_get_description(const AmuLink *link)
{
	return link->description;
}

void
amu_link_emit_rx(AmuLink *link, const uint8_t *buf, size_t len)
{
	if (link->closed || link->rx_func == NULL)
		return;
	link->n_received++;
	link->n_bytes_received += len;
	__atomic_fetch_add(&rx_total_datagrams, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&rx_total_bytes, (uint64_t)len, __ATOMIC_RELAXED);
	link->rx_func(link, buf, len, link->user_data);
}

void
amu_link_get_rx_totals(uint64_t *n_received, uint64_t *n_bytes_received)
{
	*n_received = __atomic_load_n(&rx_total_datagrams, __ATOMIC_RELAXED);
	*n_bytes_received = __atomic_load_n(&rx_total_bytes, __ATOMIC_RELAXED);
}

/* Closes the link and tells the owner once; the owner may drop its ref. */
void
amu_link_emit_closed(AmuLink *link, const GError *error)
{
	AmuLinkClosedFunc func = link->closed_func;
	void *user_data = link->user_data;

	if (link->closed)
		return;
	amu_link_ref(link);
	amu_link_close(link);
	if (func != NULL)
		func(link, error, user_data);
	amu_link_unref(link);
}

/* ---------------------------------------------------------------- schemes */

static GHashTable *link_schemes; /* scheme -> AmuLinkOpenFunc */
G_LOCK_DEFINE_STATIC(link_schemes);

void
amu_link_register_scheme(const char *scheme, AmuLinkOpenFunc func)
{
	G_LOCK(link_schemes);
	if (link_schemes == NULL)
		link_schemes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_hash_table_replace(link_schemes, g_strdup(scheme), (gpointer)func);
	G_UNLOCK(link_schemes);
}

AmuLinkOpenFunc
amu_link_lookup_scheme(const char *address, const char **rest)
{
	const char *colon = strchr(address, ':');
	g_autofree char *scheme = NULL;
	AmuLinkOpenFunc func = NULL;

	if (colon == NULL || colon == address)
		return NULL;
	scheme = g_strndup(address, (gsize)(colon - address));
	G_LOCK(link_schemes);
	if (link_schemes != NULL)
		func = (AmuLinkOpenFunc)g_hash_table_lookup(link_schemes, scheme);
	G_UNLOCK(link_schemes);
	if (func != NULL && rest != NULL)
		*rest = colon + 1;
	return func;
}
