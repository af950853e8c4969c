/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amu-bluez-private.h"
#include "amulet/amu-error.h"

/* The GATT link on the Amulet service, which amu_link_bluez_connect_async()
 * (amu-bluez-connect.c) opens. The link prefers the sockets
 * AcquireWrite/AcquireNotify hand out (one datagram per ATT write or
 * notification, no D-Bus round trip per datagram) and falls back to
 * WriteValue and Value notifications where bluetoothd or the device does
 * not allow acquiring. Every bus call is asynchronous with a timeout. */

/* WriteValue calls in flight at once in the fallback path */
#define WRITES_IN_FLIGHT 4
/* notifications read per wakeup, so one busy device cannot starve the loop */
#define RX_BATCH 64

/* ------------------------------------------------------------ link */

typedef struct {
	AmuLink parent;
	GDBusConnection *bus;
	char *address;
	char *device_path;
	char *rx_path;
	char *tx_path;
	gboolean acquired; /* AcquireWrite/AcquireNotify sockets, else WriteValue */
	int write_fd;
	int notify_fd;
	GSource *in_source;    /* notify_fd readable or hung up */
	GSource *write_source; /* write_fd hung up */
	GSource *out_source;   /* write_fd writable again */
	GQueue queue;	       /* of GBytes: waiting for the socket, or for a WriteValue slot */
	guint writes_in_flight;
	gboolean notifying; /* StartNotify succeeded: StopNotify at close */
	GCancellable *cancellable; /* pending WriteValue calls */
	guint device_changed_id;
	guint removed_id;
	guint value_changed_id;
	gulong bus_closed_id;
} AmuLinkBluez;

static void
link_lost(AmuLinkBluez *self, const char *reason)
{
	g_autoptr(GError) error = g_error_new(AMU_ERROR, AMU_ERROR_DISCONNECTED, "link to %s lost (%s)",
					      self->address, reason);

	amu_link_emit_closed(&self->parent, error);
}

static void link_pump_writes(AmuLinkBluez *self);

static gboolean
link_in_cb(int fd, GIOCondition condition, gpointer user_data)
{
	AmuLinkBluez *self = user_data;
	AmuLink *link = &self->parent;
	gboolean more = TRUE;

	amu_link_ref(link);
	/* one datagram at a time on the stack: a callback that iterates the
	 * main loop reads the next ones itself, after this one was handed on */
	for (int i = 0; i < RX_BATCH && !link->closed; i++) {
		uint8_t buf[ATT_MTU_MAX + 1];
		ssize_t len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (len > 0) {
			amu_link_emit_rx(link, buf, (size_t)len);
			continue;
		}
		if (len == 0) {
			link_lost(self, "bluetoothd closed the notification socket");
		} else if (errno == EAGAIN || errno == EINTR) {
			more = FALSE;
		} else {
			g_autofree char *reason =
				g_strdup_printf("reading notifications: %s", g_strerror(errno));
			link_lost(self, reason);
		}
		break;
	}
	/* data queued ahead of a hang-up was read above; the end comes as a
	 * zero-length read, but an error state may not */
	if (!link->closed && !more && (condition & (G_IO_ERR | G_IO_HUP)) != 0)
		link_lost(self, "bluetoothd closed the notification socket");
	amu_link_unref(link);
	return G_SOURCE_CONTINUE;
}

static gboolean
link_write_hup_cb(int fd, GIOCondition condition, gpointer user_data)
{
	AmuLinkBluez *self = user_data;

	amu_link_ref(&self->parent);
	link_lost(self, "bluetoothd closed the write socket");
	amu_link_unref(&self->parent);
	return G_SOURCE_CONTINUE;
}

static void
link_flush_socket(AmuLinkBluez *self);

static gboolean
link_out_cb(int fd, GIOCondition condition, gpointer user_data)
{
	AmuLinkBluez *self = user_data;

	g_source_destroy(self->out_source);
	g_clear_pointer(&self->out_source, g_source_unref);
	amu_link_ref(&self->parent);
	link_flush_socket(self);
	amu_link_unref(&self->parent);
	return G_SOURCE_REMOVE;
}

/* Writes queued datagrams until the socket is full (then waits for it to
 * drain); a hard error loses the link. */
static void
link_flush_socket(AmuLinkBluez *self)
{
	while (!g_queue_is_empty(&self->queue) && !self->parent.closed) {
		GBytes *datagram = g_queue_peek_head(&self->queue);
		gsize len = 0;
		const uint8_t *data = g_bytes_get_data(datagram, &len);
		ssize_t n = send(self->write_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0) {
			g_bytes_unref(g_queue_pop_head(&self->queue));
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == ENOBUFS) {
			if (self->out_source == NULL) {
				self->out_source = g_unix_fd_source_new(self->write_fd, G_IO_OUT);
				g_source_set_callback(self->out_source, G_SOURCE_FUNC(link_out_cb), self,
						      NULL);
				g_source_attach(self->out_source, g_main_context_get_thread_default());
			}
			return;
		}
		{
			g_autofree char *reason = g_strdup_printf("writing: %s", g_strerror(errno));
			link_lost(self, reason);
		}
		return;
	}
}

static void
link_write_value_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	AmuLinkBluez *self = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	self->writes_in_flight--;
	if (self->parent.closed) {
		amu_link_unref(&self->parent);
		return;
	}
	if (reply == NULL) {
		g_autoptr(GError) link_error = NULL;
		g_dbus_error_strip_remote_error(error);
		link_error = g_error_new(AMU_ERROR, AMU_ERROR_IO, "writing to %s failed: %s",
					 self->address, error->message);
		amu_link_emit_closed(&self->parent, link_error);
		amu_link_unref(&self->parent);
		return;
	}
	link_pump_writes(self);
	amu_link_unref(&self->parent);
}

/* Fallback path: WriteValue calls leave in order, a few at a time. */
static void
link_pump_writes(AmuLinkBluez *self)
{
	while (self->writes_in_flight < WRITES_IN_FLIGHT && !g_queue_is_empty(&self->queue) &&
	       !self->parent.closed) {
		g_autoptr(GBytes) datagram = g_queue_pop_head(&self->queue);
		GVariantBuilder options;
		GVariant *value;

		g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
		g_variant_builder_add(&options, "{sv}", "type", g_variant_new_string("command"));
		value = g_variant_new_from_bytes(G_VARIANT_TYPE_BYTESTRING, datagram, TRUE);
		self->writes_in_flight++;
		g_dbus_connection_call(self->bus, BLUEZ_NAME, self->rx_path, IFACE_CHARACTERISTIC,
				       "WriteValue", g_variant_new("(@aya{sv})", value, &options), NULL,
				       G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, self->cancellable,
				       link_write_value_cb, amu_link_ref(&self->parent));
	}
}

static gboolean
link_send(AmuLink *link, const uint8_t *buf, size_t len, GError **error)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	if (len > (size_t)link->att_mtu - 3) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "datagram of %zu bytes exceeds the link's %u-byte segment", len,
			    link->att_mtu - 3u);
		return FALSE;
	}
	if (self->acquired && g_queue_is_empty(&self->queue)) {
		ssize_t n = send(self->write_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0)
			return TRUE;
		if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
			/* the hang-up source reports the loss */
			g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "writing to %s: %s",
				    link->description, g_strerror(errno));
			return FALSE;
		}
	}
	g_queue_push_tail(&self->queue, g_bytes_new(buf, len));
	if (self->acquired)
		link_flush_socket(self);
	else
		link_pump_writes(self);
	return TRUE;
}

static void
link_destroy_source(GSource **source)
{
	if (*source == NULL)
		return;
	g_source_destroy(*source);
	g_clear_pointer(source, g_source_unref);
}

static void
link_close(AmuLink *link)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	link_destroy_source(&self->in_source);
	link_destroy_source(&self->write_source);
	link_destroy_source(&self->out_source);
	if (self->write_fd >= 0) {
		close(self->write_fd);
		self->write_fd = -1;
	}
	if (self->notify_fd >= 0) {
		close(self->notify_fd);
		self->notify_fd = -1;
	}
	g_queue_clear_full(&self->queue, (GDestroyNotify)g_bytes_unref);
	g_cancellable_cancel(self->cancellable);
	if (self->bus == NULL)
		return;
	if (self->device_changed_id != 0)
		g_dbus_connection_signal_unsubscribe(self->bus, self->device_changed_id);
	if (self->removed_id != 0)
		g_dbus_connection_signal_unsubscribe(self->bus, self->removed_id);
	if (self->value_changed_id != 0)
		g_dbus_connection_signal_unsubscribe(self->bus, self->value_changed_id);
	self->device_changed_id = self->removed_id = self->value_changed_id = 0;
	if (self->bus_closed_id != 0)
		g_signal_handler_disconnect(self->bus, self->bus_closed_id);
	self->bus_closed_id = 0;
	if (g_dbus_connection_is_closed(self->bus))
		return;
	if (self->notifying)
		amu_bluez_call_ignore(self->bus, self->tx_path, IFACE_CHARACTERISTIC, "StopNotify",
				      NULL);
	self->notifying = FALSE;
	amu_bluez_call_ignore(self->bus, self->device_path, IFACE_DEVICE, "Disconnect", NULL);
	/* A program often exits right after closing its link, and GDBus
	 * writes from a thread of its own: hand the calls to the socket now,
	 * or bluetoothd keeps the radio link up for nobody. This waits for a
	 * local write only, not for bluetoothd. */
	g_dbus_connection_flush_sync(self->bus, NULL, NULL);
}

static void
link_finalize(AmuLink *link)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	g_clear_object(&self->cancellable);
	g_clear_object(&self->bus);
	g_free(self->address);
	g_free(self->device_path);
	g_free(self->rx_path);
	g_free(self->tx_path);
	g_free(self);
}

static const AmuLinkOps bluez_link_ops = {
	.name = "bluez",
	.send = link_send,
	.close = link_close,
	.finalize = link_finalize,
};

static void
link_device_changed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
		       const char *interface, const char *signal, GVariant *parameters,
		       gpointer user_data)
{
	AmuLinkBluez *self = user_data;
	g_autoptr(GVariant) changed = NULL;
	gboolean connected = TRUE;

	if (self->parent.closed || (changed = amu_bluez_changed_properties(parameters, IFACE_DEVICE)) == NULL)
		return;
	if (g_variant_lookup(changed, "Connected", "b", &connected) && !connected) {
		amu_link_ref(&self->parent);
		link_lost(self, "the device disconnected");
		amu_link_unref(&self->parent);
	}
}

static void
link_value_changed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
		      const char *interface, const char *signal, GVariant *parameters,
		      gpointer user_data)
{
	AmuLinkBluez *self = user_data;
	g_autoptr(GVariant) changed = NULL;
	g_autoptr(GVariant) value = NULL;
	const uint8_t *data;
	gsize len = 0;

	if (self->parent.closed ||
	    (changed = amu_bluez_changed_properties(parameters, IFACE_CHARACTERISTIC)) == NULL)
		return;
	value = g_variant_lookup_value(changed, "Value", G_VARIANT_TYPE_BYTESTRING);
	if (value == NULL)
		return;
	data = g_variant_get_fixed_array(value, &len, 1);
	amu_link_ref(&self->parent);
	amu_link_emit_rx(&self->parent, data, len);
	amu_link_unref(&self->parent);
}

static void
link_removed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
		const char *interface, const char *signal, GVariant *parameters, gpointer user_data)
{
	AmuLinkBluez *self = user_data;
	const char *path;

	if (self->parent.closed || !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oas)")))
		return;
	g_variant_get(parameters, "(&oas)", &path, NULL);
	if (strcmp(path, self->device_path) != 0 && strcmp(path, self->rx_path) != 0 &&
	    strcmp(path, self->tx_path) != 0)
		return;
	amu_link_ref(&self->parent);
	link_lost(self, "bluetoothd removed the device");
	amu_link_unref(&self->parent);
}

static void
link_bus_closed_cb(GDBusConnection *bus, gboolean remote_peer_vanished, GError *error,
		   gpointer user_data)
{
	AmuLinkBluez *self = user_data;

	amu_link_ref(&self->parent);
	link_lost(self, "the system bus connection closed");
	amu_link_unref(&self->parent);
}

AmuLink *
amu_link_bluez_new(GDBusConnection *bus, const char *adapter, const char *address,
		   const char *device_path, const char *rx_path, const char *tx_path)
{
	AmuLinkBluez *self = g_new0(AmuLinkBluez, 1);
	g_autofree char *description = g_strdup_printf("bluez:%s/%s", adapter, address);

	amu_link_init(&self->parent, &bluez_link_ops, ATT_MTU_MIN, description);
	self->bus = g_object_ref(bus);
	self->address = g_strdup(address);
	self->device_path = g_strdup(device_path);
	self->rx_path = g_strdup(rx_path);
	self->tx_path = g_strdup(tx_path);
	self->write_fd = -1;
	self->notify_fd = -1;
	self->cancellable = g_cancellable_new();
	g_queue_init(&self->queue);
	self->device_changed_id = g_dbus_connection_signal_subscribe(
		bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", device_path, IFACE_DEVICE,
		G_DBUS_SIGNAL_FLAGS_NONE, link_device_changed_cb, self, NULL);
	self->removed_id = g_dbus_connection_signal_subscribe(
		bus, BLUEZ_NAME, IFACE_OBJECT_MANAGER, "InterfacesRemoved", "/", NULL,
		G_DBUS_SIGNAL_FLAGS_NONE, link_removed_cb, self, NULL);
	self->bus_closed_id = g_signal_connect(bus, "closed", G_CALLBACK(link_bus_closed_cb), self);
	return &self->parent;
}

void
amu_link_bluez_start_acquired(AmuLink *link, int write_fd, int notify_fd, uint16_t att_mtu)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	self->acquired = TRUE;
	self->parent.att_mtu = att_mtu;
	self->write_fd = write_fd;
	self->notify_fd = notify_fd;
	g_unix_set_fd_nonblocking(write_fd, TRUE, NULL);
	g_unix_set_fd_nonblocking(notify_fd, TRUE, NULL);
	self->in_source = g_unix_fd_source_new(notify_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_callback(self->in_source, G_SOURCE_FUNC(link_in_cb), self, NULL);
	/* a callback may wait in a nested main loop for the next datagram */
	g_source_set_can_recurse(self->in_source, TRUE);
	g_source_set_name(self->in_source, "amulet bluez link");
	g_source_attach(self->in_source, g_main_context_get_thread_default());
	self->write_source = g_unix_fd_source_new(write_fd, G_IO_HUP | G_IO_ERR);
	g_source_set_callback(self->write_source, G_SOURCE_FUNC(link_write_hup_cb), self, NULL);
	g_source_attach(self->write_source, g_main_context_get_thread_default());
}

void
amu_link_bluez_watch_value(AmuLink *link, uint16_t att_mtu)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	self->parent.att_mtu = att_mtu;
	self->value_changed_id = g_dbus_connection_signal_subscribe(
		self->bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", self->tx_path,
		IFACE_CHARACTERISTIC, G_DBUS_SIGNAL_FLAGS_NONE, link_value_changed_cb, self, NULL);
}

void
amu_link_bluez_set_notifying(AmuLink *link)
{
	AmuLinkBluez *self = (AmuLinkBluez *)link;

	self->notifying = TRUE;
}
