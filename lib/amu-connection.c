/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-connection.h"
#include "amulet/amu-error.h"

struct AmuConnection {
	int ref_count;
	AmuLink *link;
	AmuFramer *framer;
	AmuChannel *channel;
	AmuFramerRole role;
	GSource *timer;    /* the framer's deadline; NULL until first armed */
	gint64 timer_ready; /* its ready time, -1 while none */
	AmuConnectionFilterFunc filter_func;
	void *filter_data;
	GByteArray *filter_buf;
	gboolean closed;
};

static uint64_t
now_ms(void)
{
	return (uint64_t)(g_get_monotonic_time() / 1000);
}

static void connection_check_framer(AmuConnection *connection);

static gboolean
timer_cb(gpointer user_data)
{
	AmuConnection *connection = user_data;

	connection->timer_ready = -1; /* timer_dispatch() disarmed it */
	amu_connection_ref(connection);
	amu_framer_tick(connection->framer, now_ms());
	connection_check_framer(connection);
	amu_connection_unref(connection);
	return G_SOURCE_CONTINUE;
}

/* One source for the connection's life, moved with g_source_set_ready_time():
 * the deadline changes with nearly every datagram, and a new timeout source
 * each time (allocated, attached, destroyed) cost more than the datagram. */
static gboolean
timer_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	g_source_set_ready_time(source, -1);
	return callback(user_data);
}

static GSourceFuncs timer_funcs = {
	.dispatch = timer_dispatch,
};

/* After any framer call: surface a framing failure, re-arm its timer. */
static void
connection_check_framer(AmuConnection *connection)
{
	uint64_t next;
	gint64 ready;

	if (connection->closed)
		return;
	if (amu_framer_get_state(connection->framer) == AMU_FRAMER_STATE_FAILED) {
		AmuFramerError framer_error = amu_framer_get_error(connection->framer);
		g_autoptr(GError) error = g_error_new(
			AMU_ERROR,
			framer_error == AMU_FRAMER_ERROR_ACK_TIMEOUT ? AMU_ERROR_TIMED_OUT : AMU_ERROR_PROTOCOL,
			"link framing failed: %s", amu_framer_error_to_str(framer_error));
		amu_channel_abort(connection->channel, error);
		amu_connection_close(connection);
		return;
	}
	next = amu_framer_next_timeout(connection->framer);
	/* framer time is g_get_monotonic_time() in ms, as is the ready time in us */
	ready = next == UINT64_MAX ? -1 : (gint64)MIN(next, (uint64_t)(G_MAXINT64 / 1000)) * 1000;
	if (connection->timer == NULL) {
		if (ready < 0)
			return;
		connection->timer = g_source_new(&timer_funcs, sizeof(GSource));
		g_source_set_callback(connection->timer, timer_cb, connection, NULL);
		g_source_set_ready_time(connection->timer, ready);
		g_source_attach(connection->timer, g_main_context_get_thread_default());
	} else if (ready != connection->timer_ready) {
		g_source_set_ready_time(connection->timer, ready);
	}
	connection->timer_ready = ready;
}

static void
framer_tx_cb(const uint8_t *datagram, size_t len, void *user_data)
{
	AmuConnection *connection = user_data;
	g_autoptr(GError) error = NULL;

	if (connection->closed)
		return;
	if (!amu_link_send(connection->link, datagram, len, &error))
		g_debug("send on %s failed: %s", amu_link_get_description(connection->link), error->message);
}

static void
framer_message_cb(const uint8_t *message, size_t len, void *user_data)
{
	AmuConnection *connection = user_data;

	if (connection->closed)
		return;
	/* a channel failure is reported through its FAILED event */
	amu_channel_rx(connection->channel, message, len, NULL);
}

static void
channel_tx_cb(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
	AmuConnection *connection = user_data;

	if (connection->closed)
		return;
	if (connection->filter_func != NULL) {
		g_byte_array_set_size(connection->filter_buf, 0);
		g_byte_array_append(connection->filter_buf, packet, len);
		if (!connection->filter_func(connection, connection->filter_buf, connection->filter_data))
			return;
		packet = connection->filter_buf->data;
		len = connection->filter_buf->len;
	}
	/* the fragments the window lets out now leave in one batch; a link
	 * failing on the way may make our owner drop us */
	amu_connection_ref(connection);
	amu_link_cork(connection->link);
	amu_framer_send(connection->framer, packet, len, now_ms());
	amu_link_uncork(connection->link);
	connection_check_framer(connection);
	amu_connection_unref(connection);
}

static void
link_rx_cb(AmuLink *link, const uint8_t *buf, size_t len, void *user_data)
{
	AmuConnection *connection = user_data;

	amu_connection_ref(connection);
	amu_framer_rx(connection->framer, buf, len, now_ms());
	connection_check_framer(connection);
	amu_connection_unref(connection);
}

static void
link_closed_cb(AmuLink *link, const GError *link_error, void *user_data)
{
	AmuConnection *connection = user_data;
	g_autoptr(GError) error = NULL;

	amu_connection_ref(connection);
	error = g_error_new(AMU_ERROR, AMU_ERROR_DISCONNECTED, "the link to %s closed%s%s",
			    amu_link_get_description(link), link_error != NULL ? ": " : "",
			    link_error != NULL ? link_error->message : "");
	amu_connection_close(connection);
	amu_channel_abort(connection->channel, error);
	amu_connection_unref(connection);
}

AmuConnection *
amu_connection_new(AmuLink *link, AmuChannel *channel, AmuFramerRole role)
{
	AmuConnection *connection = g_new0(AmuConnection, 1);

	connection->ref_count = 1;
	connection->role = role;
	connection->link = amu_link_ref(link);
	connection->channel = amu_channel_ref(channel);
	connection->framer = amu_framer_new(role, amu_link_get_att_mtu(link), AMU_FRAMER_WINDOW_MAX);
	connection->filter_buf = g_byte_array_new();
	amu_framer_set_tx_func(connection->framer, framer_tx_cb, connection, NULL);
	amu_framer_set_message_func(connection->framer, framer_message_cb, connection, NULL);
	amu_link_set_handlers(link, link_rx_cb, link_closed_cb, connection);
	amu_channel_set_tx_func(channel, channel_tx_cb, connection);
	return connection;
}

AmuConnection *
amu_connection_ref(AmuConnection *connection)
{
	connection->ref_count++;
	return connection;
}

void
amu_connection_close(AmuConnection *connection)
{
	if (connection->closed)
		return;
	connection->closed = TRUE;
	if (connection->timer != NULL) {
		g_source_destroy(connection->timer);
		g_clear_pointer(&connection->timer, g_source_unref);
	}
	amu_link_set_handlers(connection->link, NULL, NULL, NULL);
	amu_link_close(connection->link);
}

void
amu_connection_unref(AmuConnection *connection)
{
	if (connection == NULL || --connection->ref_count > 0)
		return;
	amu_connection_close(connection);
	amu_channel_set_tx_func(connection->channel, NULL, NULL);
	amu_channel_unref(connection->channel);
	amu_framer_unref(connection->framer);
	amu_link_unref(connection->link);
	g_byte_array_unref(connection->filter_buf);
	g_free(connection);
}

gboolean
amu_connection_start(AmuConnection *connection, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (connection->role == AMU_FRAMER_ROLE_CENTRAL && amu_framer_start(connection->framer, now_ms()) < 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "cannot start link framing: %s",
			    amu_framer_error_to_str(amu_framer_get_error(connection->framer)));
		return FALSE;
	}
	connection_check_framer(connection);
	return TRUE;
}

AmuChannel *
amu_connection_get_channel(AmuConnection *connection)
{
	return connection->channel;
}

AmuLink *
amu_connection_get_link(AmuConnection *connection)
{
	return connection->link;
}

AmuFramer *
amu_connection_get_framer(AmuConnection *connection)
{
	return connection->framer;
}

void
amu_connection_set_tx_filter(AmuConnection *connection, AmuConnectionFilterFunc func, void *user_data)
{
	connection->filter_func = func;
	connection->filter_data = user_data;
}

size_t
amu_connection_get_queued_bytes(AmuConnection *connection)
{
	return amu_framer_get_queued_bytes(connection->framer);
}
