/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <gio/gunixfdlist.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amu-bluez-private.h"
#include "amulet/amu-error.h"

/* The GATT link on the Amulet service, and amu_link_bluez_connect_async(),
 * which finds the device, bonds through the agent of amu-bluez-agent.c when
 * asked, connects and opens the link. The link prefers the sockets
 * AcquireWrite/AcquireNotify hand out (one datagram per ATT write or
 * notification, no D-Bus round trip per datagram) and falls back to
 * WriteValue and Value notifications where bluetoothd or the device does
 * not allow acquiring. Every bus call is asynchronous with a timeout. */

/* Connect and Pair wait on the radio and the user, longer than an ordinary
 * call (CALL_TIMEOUT_MS) */
#define CONNECT_TIMEOUT_MS 30000
#define PAIR_TIMEOUT_MS 90000
/* waits for bluetoothd's events */
#define RESOLVE_TIMEOUT_MS 10000
#define FIND_TIMEOUT_MS 10000

#define ATT_MTU_MIN 23
#define ATT_MTU_MAX 517
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
	const char *changed_interface;
	gboolean connected = TRUE;

	if (self->parent.closed || !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
		return;
	g_variant_get(parameters, "(&s@a{sv}as)", &changed_interface, &changed, NULL);
	if (strcmp(changed_interface, IFACE_DEVICE) == 0 &&
	    g_variant_lookup(changed, "Connected", "b", &connected) && !connected) {
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
	const char *changed_interface;
	const uint8_t *data;
	gsize len = 0;

	if (self->parent.closed || !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
		return;
	g_variant_get(parameters, "(&s@a{sv}as)", &changed_interface, &changed, NULL);
	if (strcmp(changed_interface, IFACE_CHARACTERISTIC) != 0)
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

/* A link on the device's characteristics, watching the device; I/O starts
 * with link_start_acquired() or once StartNotify succeeded. */
static AmuLinkBluez *
link_new(GDBusConnection *bus, const char *adapter, const char *address, const char *device_path,
	 const char *rx_path, const char *tx_path)
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
	return self;
}

static void
link_start_acquired(AmuLinkBluez *self, int write_fd, int notify_fd, uint16_t att_mtu)
{
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

static void
link_watch_value(AmuLinkBluez *self, uint16_t att_mtu)
{
	self->parent.att_mtu = att_mtu;
	self->value_changed_id = g_dbus_connection_signal_subscribe(
		self->bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", self->tx_path,
		IFACE_CHARACTERISTIC, G_DBUS_SIGNAL_FLAGS_NONE, link_value_changed_cb, self, NULL);
}

/* ------------------------------------------------------------ connect */

typedef struct {
	char *adapter; /* as asked, nullable */
	char *address;
	gboolean pair;
	AmuBluezPasskeyFunc passkey_func;
	gpointer passkey_data;
	GDBusConnection *bus;
	char *adapter_path;
	char *device_path;
	char *rx_path;
	char *tx_path;
	gboolean connected;	    /* Device1.Connected as last heard */
	gboolean services_resolved; /* Device1.ServicesResolved as last heard */
	guint added_id;
	guint changed_id;
	GSource *timer;
	GSource *cancel_source;
	gboolean discovering;	 /* looking for the device: stop discovery when done */
	gboolean waiting_device; /* for InterfacesAdded of the device */
	gboolean waiting_resolve; /* for ServicesResolved */
	AmuBluezAgent *agent;
	char *agent_path;
	guint agent_registration;
	gboolean agent_registered; /* with AgentManager1 */
	gboolean pairing;	   /* Pair sent and not answered */
	gboolean connect_sent;	   /* Disconnect again if we fail afterwards */
	int write_fd;
	int notify_fd;
	uint16_t write_mtu;
	AmuLinkBluez *link; /* fallback: waiting for StartNotify */
	gboolean done;
} ConnectData;

static void
connect_stop_waiting(ConnectData *data)
{
	if (data->timer != NULL) {
		g_source_destroy(data->timer);
		g_clear_pointer(&data->timer, g_source_unref);
	}
	if (data->cancel_source != NULL) {
		g_source_destroy(data->cancel_source);
		g_clear_pointer(&data->cancel_source, g_source_unref);
	}
	data->waiting_device = FALSE;
	data->waiting_resolve = FALSE;
}

static void
connect_remove_agent(ConnectData *data)
{
	if (data->agent_registered && !g_dbus_connection_is_closed(data->bus))
		amu_bluez_agent_unregister(data->bus, data->agent_path);
	data->agent_registered = FALSE;
	if (data->agent_registration != 0)
		g_dbus_connection_unregister_object(data->bus, data->agent_registration);
	data->agent_registration = 0;
	if (data->agent != NULL) {
		amu_bluez_agent_stop(data->agent);
		g_clear_pointer(&data->agent, amu_bluez_agent_unref);
	}
}

/* Undoes what a failed connect left behind: runs once the task is done. */
static void
connect_data_cleanup(ConnectData *data)
{
	connect_stop_waiting(data);
	if (data->bus != NULL) {
		gboolean bus_open = !g_dbus_connection_is_closed(data->bus);

		if (data->added_id != 0)
			g_dbus_connection_signal_unsubscribe(data->bus, data->added_id);
		if (data->changed_id != 0)
			g_dbus_connection_signal_unsubscribe(data->bus, data->changed_id);
		data->added_id = data->changed_id = 0;
		if (data->pairing && bus_open)
			amu_bluez_call_ignore(data->bus, data->device_path, IFACE_DEVICE,
					      "CancelPairing", NULL);
		data->pairing = FALSE;
		connect_remove_agent(data);
		if (data->discovering && bus_open)
			amu_bluez_call_ignore(data->bus, data->adapter_path, IFACE_ADAPTER,
					      "StopDiscovery", NULL);
		data->discovering = FALSE;
		if (data->connect_sent && bus_open)
			amu_bluez_call_ignore(data->bus, data->device_path, IFACE_DEVICE, "Disconnect",
					      NULL);
		data->connect_sent = FALSE;
		/* the caller may exit right after a failure: see link_close() */
		if (bus_open)
			g_dbus_connection_flush_sync(data->bus, NULL, NULL);
	}
	if (data->link != NULL) {
		/* the link does its own Disconnect */
		amu_link_unref(&data->link->parent);
		data->link = NULL;
	}
	if (data->write_fd >= 0)
		close(data->write_fd);
	if (data->notify_fd >= 0)
		close(data->notify_fd);
	data->write_fd = data->notify_fd = -1;
}

static void
connect_data_free(ConnectData *data)
{
	connect_data_cleanup(data);
	g_clear_object(&data->bus);
	g_free(data->adapter);
	g_free(data->address);
	g_free(data->adapter_path);
	g_free(data->device_path);
	g_free(data->rx_path);
	g_free(data->tx_path);
	g_free(data->agent_path);
	g_free(data);
}

static void
connect_fail(GTask *task, GError *error)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->done) {
		g_error_free(error);
		return;
	}
	data->done = TRUE;
	/* the cleanup drops the refs the timer and cancel source hold */
	g_object_ref(task);
	connect_data_cleanup(data);
	g_task_return_error(task, error);
	g_object_unref(task);
}

static void
connect_succeed(GTask *task, AmuLinkBluez *link)
{
	ConnectData *data = g_task_get_task_data(task);

	data->done = TRUE;
	/* the link owns the connection now */
	data->connect_sent = FALSE;
	g_object_ref(task);
	connect_data_cleanup(data);
	g_task_return_pointer(task, link, (GDestroyNotify)amu_link_unref);
	g_object_unref(task);
}

static gboolean
connect_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	GTask *task = user_data;
	ConnectData *data = g_task_get_task_data(task);

	g_clear_pointer(&data->cancel_source, g_source_unref);
	connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_CANCELLED,
				       "connecting to %s was cancelled", data->address));
	return G_SOURCE_REMOVE;
}

static gboolean connect_timeout_cb(gpointer user_data);

/* Waits for a signal of bluetoothd for at most @timeout_ms. */
static void
connect_wait(GTask *task, guint timeout_ms)
{
	ConnectData *data = g_task_get_task_data(task);

	connect_stop_waiting(data);
	data->timer = g_timeout_source_new(timeout_ms);
	g_source_set_callback(data->timer, connect_timeout_cb, g_object_ref(task), g_object_unref);
	g_source_attach(data->timer, g_main_context_get_thread_default());
	if (g_task_get_cancellable(task) != NULL) {
		data->cancel_source = g_cancellable_source_new(g_task_get_cancellable(task));
		g_source_set_callback(data->cancel_source, G_SOURCE_FUNC(connect_cancelled_cb),
				      g_object_ref(task), g_object_unref);
		g_source_attach(data->cancel_source, g_main_context_get_thread_default());
	}
}

static void
connect_call(GTask *task, const char *path, const char *interface, const char *method,
	     GVariant *parameters, const char *reply_type, int timeout_ms, GAsyncReadyCallback callback)
{
	ConnectData *data = g_task_get_task_data(task);

	g_dbus_connection_call(data->bus, BLUEZ_NAME, path, interface, method, parameters,
			       reply_type != NULL ? G_VARIANT_TYPE(reply_type) : NULL,
			       G_DBUS_CALL_FLAGS_NONE, timeout_ms, g_task_get_cancellable(task),
			       callback, g_object_ref(task));
}

static void connect_device_found(GTask *task, const char *path, GVariant *properties);
static void connect_start_connect(GTask *task);
static void connect_find_gatt(GTask *task);

static gboolean
connect_timeout_cb(gpointer user_data)
{
	GTask *task = user_data;
	ConnectData *data = g_task_get_task_data(task);

	g_clear_pointer(&data->timer, g_source_unref);
	if (data->waiting_device) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_FOUND,
					       "%s not found: is it on and advertising? try amulet scan",
					       data->address));
	} else {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_TIMED_OUT,
					       "%s connected but did not list its GATT services "
					       "within %d s: move it closer and try again",
					       data->address, RESOLVE_TIMEOUT_MS / 1000));
	}
	return G_SOURCE_REMOVE;
}

static void
connect_interfaces_added_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			    const char *interface, const char *signal, GVariant *parameters,
			    gpointer user_data)
{
	GTask *task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) interfaces = NULL;
	g_autoptr(GVariant) properties = NULL;
	const char *path;
	const char *address = NULL;

	if (data->done || !data->waiting_device ||
	    !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oa{sa{sv}})")))
		return;
	g_variant_get(parameters, "(&o@a{sa{sv}})", &path, &interfaces);
	if (!amu_bluez_path_is_below(path, data->adapter_path))
		return;
	properties = g_variant_lookup_value(interfaces, IFACE_DEVICE, G_VARIANT_TYPE_VARDICT);
	if (properties == NULL || !g_variant_lookup(properties, "Address", "&s", &address) ||
	    g_ascii_strcasecmp(address, data->address) != 0)
		return;
	/* the timer may hold the last ref on the task */
	g_object_ref(task);
	connect_stop_waiting(data);
	connect_device_found(task, path, properties);
	g_object_unref(task);
}

static void
connect_device_changed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			  const char *interface, const char *signal, GVariant *parameters,
			  gpointer user_data)
{
	GTask *task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) changed = NULL;
	const char *changed_interface;
	gboolean value;

	if (data->done || !g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
		return;
	g_variant_get(parameters, "(&s@a{sv}as)", &changed_interface, &changed, NULL);
	if (strcmp(changed_interface, IFACE_DEVICE) != 0)
		return;
	if (g_variant_lookup(changed, "Connected", "b", &value))
		data->connected = value;
	if (g_variant_lookup(changed, "ServicesResolved", "b", &value))
		data->services_resolved = value;
	if (data->waiting_resolve && data->services_resolved) {
		g_object_ref(task);
		connect_stop_waiting(data);
		connect_find_gatt(task);
		g_object_unref(task);
	}
}

/* -- GATT */

static GUnixFDList *
connect_take_fd_list(GObject *source, GAsyncResult *result, GVariant **reply, GError **error)
{
	GUnixFDList *fd_list = NULL;

	*reply = g_dbus_connection_call_with_unix_fd_list_finish(G_DBUS_CONNECTION(source), &fd_list,
								 result, error);
	return fd_list;
}

/* NotSupported/NotPermitted/UnknownMethod: bluetoothd or the device does
 * not hand out the sockets; WriteValue and notifications still work */
static gboolean
acquire_unsupported(const GError *error)
{
	return amu_bluez_error_is(error, "org.bluez.Error.NotSupported") ||
	       amu_bluez_error_is(error, "org.bluez.Error.NotPermitted") ||
	       g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
}

/* The socket of an AcquireWrite/AcquireNotify reply ((hq)), or -1. */
static int
acquired_fd(GVariant *reply, GUnixFDList *fd_list, uint16_t *mtu, GError **error)
{
	gint32 handle = -1;
	int fd;

	g_variant_get(reply, "(hq)", &handle, mtu);
	if (fd_list == NULL || handle < 0 || handle >= g_unix_fd_list_get_length(fd_list)) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "bluetoothd's reply carried no socket");
		return -1;
	}
	fd = g_unix_fd_list_get(fd_list, handle, error);
	return fd;
}

static void
connect_start_notify_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
	AmuLinkBluez *link;

	if (data->done)
		return;
	if (reply == NULL) {
		g_autofree char *what =
			g_strdup_printf("cannot turn on notifications from %s", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	data->link->notifying = TRUE;
	if (data->link->parent.closed) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_DISCONNECTED,
					       "%s disconnected while the link was set up: try again",
					       data->address));
		return;
	}
	link = g_steal_pointer(&data->link);
	connect_succeed(task, link);
}

static void
connect_fallback(GTask *task, GVariant *objects)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) rx =
		amu_bluez_objects_lookup(objects, data->rx_path, IFACE_CHARACTERISTIC);
	g_autoptr(GVariant) tx =
		amu_bluez_objects_lookup(objects, data->tx_path, IFACE_CHARACTERISTIC);
	g_autofree char *adapter = amu_bluez_adapter_name_from_path(data->device_path);
	guint16 rx_mtu = ATT_MTU_MIN;
	guint16 tx_mtu = ATT_MTU_MIN;
	guint16 mtu;

	g_debug("%s: AcquireWrite/AcquireNotify not available, using WriteValue and StartNotify",
		data->address);
	if (rx == NULL || !g_variant_lookup(rx, "MTU", "q", &rx_mtu))
		rx_mtu = ATT_MTU_MIN;
	if (tx == NULL || !g_variant_lookup(tx, "MTU", "q", &tx_mtu))
		tx_mtu = ATT_MTU_MIN;
	mtu = CLAMP(MIN(rx_mtu, tx_mtu), ATT_MTU_MIN, ATT_MTU_MAX);
	data->link = link_new(data->bus, adapter, data->address, data->device_path, data->rx_path,
			      data->tx_path);
	/* watch Value before turning notifications on, so none is missed */
	link_watch_value(data->link, mtu);
	connect_call(task, data->tx_path, IFACE_CHARACTERISTIC, "StartNotify", NULL, NULL,
		     CALL_TIMEOUT_MS, connect_start_notify_cb);
}

static void
connect_fallback_objects_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
	g_autoptr(GVariant) objects = NULL;

	if (data->done)
		return;
	if (reply == NULL) {
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, "cannot list bluetoothd's objects"));
		return;
	}
	objects = g_variant_get_child_value(reply, 0);
	connect_fallback(task, objects);
}

/* Falls back to WriteValue/StartNotify; the MTU comes from the objects. */
static void
connect_start_fallback(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->write_fd >= 0)
		close(data->write_fd);
	data->write_fd = -1;
	connect_call(task, "/", IFACE_OBJECT_MANAGER, "GetManagedObjects", NULL,
		     "(a{oa{sa{sv}}})", CALL_TIMEOUT_MS, connect_fallback_objects_cb);
}

static void
connect_acquire_notify_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GUnixFDList) fd_list = connect_take_fd_list(source, result, &reply, &error);
	g_autofree char *adapter = NULL;
	AmuLinkBluez *link;
	uint16_t mtu = 0;
	uint16_t att_mtu;

	if (data->done)
		return;
	if (reply == NULL) {
		g_autofree char *what = NULL;
		if (acquire_unsupported(error)) {
			connect_start_fallback(task);
			return;
		}
		what = g_strdup_printf("cannot receive notifications from %s", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	data->notify_fd = acquired_fd(reply, fd_list, &mtu, &error);
	if (data->notify_fd < 0) {
		connect_fail(task, g_steal_pointer(&error));
		return;
	}
	att_mtu = MIN(mtu, data->write_mtu);
	if (att_mtu < ATT_MTU_MIN || att_mtu > ATT_MTU_MAX) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
					       "bluetoothd reported an ATT MTU of %u for %s, outside "
					       "%d..%d: update bluez",
					       att_mtu, data->address, ATT_MTU_MIN, ATT_MTU_MAX));
		return;
	}
	adapter = amu_bluez_adapter_name_from_path(data->device_path);
	link = link_new(data->bus, adapter, data->address, data->device_path, data->rx_path,
			data->tx_path);
	link_start_acquired(link, data->write_fd, data->notify_fd, att_mtu);
	data->write_fd = data->notify_fd = -1;
	connect_succeed(task, link);
}

static GVariant *
empty_options(void)
{
	return g_variant_new("(@a{sv})", g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0));
}

static void
connect_acquire_write_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GUnixFDList) fd_list = connect_take_fd_list(source, result, &reply, &error);

	if (data->done)
		return;
	if (reply == NULL) {
		g_autofree char *what = NULL;
		if (acquire_unsupported(error)) {
			connect_start_fallback(task);
			return;
		}
		what = g_strdup_printf("cannot write to %s", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	data->write_fd = acquired_fd(reply, fd_list, &data->write_mtu, &error);
	if (data->write_fd < 0) {
		connect_fail(task, g_steal_pointer(&error));
		return;
	}
	g_dbus_connection_call_with_unix_fd_list(
		data->bus, BLUEZ_NAME, data->tx_path, IFACE_CHARACTERISTIC, "AcquireNotify",
		empty_options(), G_VARIANT_TYPE("(hq)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
		g_task_get_cancellable(task), connect_acquire_notify_cb, g_object_ref(task));
}

/* The object under @parent with @interface whose UUID is @uuid, or NULL. */
static char *
find_gatt_object(GVariant *objects, const char *parent, const char *parent_property,
		 const char *interface, const char *uuid)
{
	g_autoptr(GPtrArray) paths = g_ptr_array_new();
	GVariantIter iter;
	const char *path;
	GVariant *interfaces;

	g_variant_iter_init(&iter, objects);
	while (g_variant_iter_loop(&iter, "{&o@a{sa{sv}}}", &path, &interfaces)) {
		g_autoptr(GVariant) properties =
			g_variant_lookup_value(interfaces, interface, G_VARIANT_TYPE_VARDICT);
		const char *object_uuid = NULL;
		const char *object_parent = NULL;

		if (properties == NULL || !amu_bluez_path_is_below(path, parent) ||
		    !g_variant_lookup(properties, "UUID", "&s", &object_uuid) ||
		    g_ascii_strcasecmp(object_uuid, uuid) != 0)
			continue;
		if (g_variant_lookup(properties, parent_property, "&o", &object_parent) &&
		    strcmp(object_parent, parent) != 0)
			continue;
		g_ptr_array_add(paths, (gpointer)path);
	}
	if (paths->len == 0)
		return NULL;
	/* the lowest handle when a device lists a service twice */
	g_ptr_array_sort(paths, amu_bluez_compare_strings);
	return g_strdup(g_ptr_array_index(paths, 0));
}

static void
connect_gatt_objects_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
	g_autoptr(GVariant) objects = NULL;
	g_autofree char *service_path = NULL;

	if (data->done)
		return;
	if (reply == NULL) {
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, "cannot list bluetoothd's objects"));
		return;
	}
	objects = g_variant_get_child_value(reply, 0);
	service_path = find_gatt_object(objects, data->device_path, "Device", IFACE_SERVICE,
					AMU_GATT_SERVICE_UUID);
	if (service_path != NULL) {
		data->rx_path = find_gatt_object(objects, service_path, "Service",
						 IFACE_CHARACTERISTIC, AMU_GATT_RX_UUID);
		data->tx_path = find_gatt_object(objects, service_path, "Service",
						 IFACE_CHARACTERISTIC, AMU_GATT_TX_UUID);
	}
	if (data->rx_path == NULL || data->tx_path == NULL) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
					       "%s does not offer the Amulet service: is it an "
					       "Amulet device?",
					       data->address));
		return;
	}
	g_dbus_connection_call_with_unix_fd_list(
		data->bus, BLUEZ_NAME, data->rx_path, IFACE_CHARACTERISTIC, "AcquireWrite",
		empty_options(), G_VARIANT_TYPE("(hq)"), G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL,
		g_task_get_cancellable(task), connect_acquire_write_cb, g_object_ref(task));
}

static void
connect_find_gatt(GTask *task)
{
	connect_call(task, "/", IFACE_OBJECT_MANAGER, "GetManagedObjects", NULL,
		     "(a{oa{sa{sv}}})", CALL_TIMEOUT_MS, connect_gatt_objects_cb);
}

/* -- connecting */

static void
connect_connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	if (data->done)
		return;
	if (reply == NULL) {
		g_autofree char *what = g_strdup_printf(
			"cannot connect to %s (is it on and in range?)", data->address);
		if (!amu_bluez_error_is(error, "org.bluez.Error.AlreadyConnected")) {
			connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
			return;
		}
	}
	data->connected = TRUE;
	if (data->services_resolved) {
		connect_find_gatt(task);
		return;
	}
	connect_wait(task, RESOLVE_TIMEOUT_MS);
	data->waiting_resolve = TRUE;
}

static void
connect_start_connect(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->connected && data->services_resolved) {
		connect_find_gatt(task);
		return;
	}
	data->connect_sent = TRUE;
	connect_call(task, data->device_path, IFACE_DEVICE, "Connect", NULL, NULL,
		     CONNECT_TIMEOUT_MS, connect_connect_cb);
}

/* -- pairing */

static void
connect_pair_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
	gboolean user_rejected;

	/* a cancelled call is still running in bluetoothd: CancelPairing */
	if (reply != NULL || !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		data->pairing = FALSE;
	if (data->done)
		return;
	user_rejected = data->agent != NULL && amu_bluez_agent_user_rejected(data->agent);
	connect_remove_agent(data);
	if (reply == NULL && !amu_bluez_error_is(error, "org.bluez.Error.AlreadyExists")) {
		g_autofree char *what = NULL;
		if (user_rejected || amu_bluez_error_is(error, "org.bluez.Error.AuthenticationRejected")) {
			connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_REJECTED,
						       "pairing with %s was rejected: the passkeys "
						       "must be confirmed on both sides",
						       data->address));
			return;
		}
		what = g_strdup_printf("link-layer pairing with %s failed", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_AUTH_FAILED, what));
		return;
	}
	connect_start_connect(task);
}

static void
connect_register_agent_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	if (reply != NULL)
		data->agent_registered = TRUE;
	if (data->done)
		return;
	if (reply == NULL) {
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO,
						   "cannot register a pairing agent with bluetoothd"));
		return;
	}
	data->pairing = TRUE;
	connect_call(task, data->device_path, IFACE_DEVICE, "Pair", NULL, NULL, PAIR_TIMEOUT_MS,
		     connect_pair_cb);
}

static void
connect_start_pairing(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	AmuBluezAgent *agent = amu_bluez_agent_new(data->device_path, data->address,
						   data->passkey_func, data->passkey_data);

	data->agent = agent;
	data->agent_path = g_strdup(amu_bluez_agent_get_path(agent));
	data->agent_registration = amu_bluez_agent_export(agent, data->bus, &error);
	if (data->agent_registration == 0) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_FAILED,
					       "cannot export the pairing agent: %s", error->message));
		return;
	}
	amu_bluez_agent_register(agent, data->bus, g_task_get_cancellable(task),
				 connect_register_agent_cb, g_object_ref(task));
}

/* -- finding the device */

static void
connect_device_found(GTask *task, const char *path, GVariant *properties)
{
	ConnectData *data = g_task_get_task_data(task);

	g_free(data->device_path);
	data->device_path = g_strdup(path);
	if (data->adapter_path == NULL)
		data->adapter_path = g_strndup(path, (gsize)(strrchr(path, '/') - path));
	if (data->discovering) {
		amu_bluez_call_ignore(data->bus, data->adapter_path, IFACE_ADAPTER, "StopDiscovery",
				      NULL);
		data->discovering = FALSE;
	}
	data->connected = amu_bluez_props_get_bool(properties, "Connected");
	data->services_resolved = amu_bluez_props_get_bool(properties, "ServicesResolved");
	data->changed_id = g_dbus_connection_signal_subscribe(
		data->bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", path, IFACE_DEVICE,
		G_DBUS_SIGNAL_FLAGS_NONE, connect_device_changed_cb, task, NULL);
	if (data->pair) {
		connect_start_pairing(task);
		return;
	}
	if (!amu_bluez_props_get_bool(properties, "Paired")) {
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_AUTH_FAILED,
					       "the link-layer bond with %s is gone: unpair and pair "
					       "again",
					       data->address));
		return;
	}
	connect_start_connect(task);
}

static void
connect_discovery_started_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	if (reply != NULL) {
		if (data->done || !data->waiting_device) {
			/* found, failed or cancelled meanwhile */
			amu_bluez_call_ignore(data->bus, data->adapter_path, IFACE_ADAPTER,
					      "StopDiscovery", NULL);
			return;
		}
		data->discovering = TRUE;
		return;
	}
	if (data->done || amu_bluez_error_is(error, "org.bluez.Error.InProgress"))
		return;
	{
		g_autofree char *what = g_strdup_printf("cannot look for %s", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
	}
}

static void
connect_filter_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	if (data->done)
		return;
	if (reply == NULL) {
		g_autofree char *what = g_strdup_printf("cannot look for %s", data->address);
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	connect_call(task, data->adapter_path, IFACE_ADAPTER, "StartDiscovery", NULL, NULL,
		     CALL_TIMEOUT_MS, connect_discovery_started_cb);
}

static void
connect_objects_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);
	g_autoptr(GVariant) objects = NULL;
	g_autoptr(GVariant) found = NULL;
	g_autofree char *found_path = NULL;
	GVariantIter iter;
	const char *path;
	GVariant *interfaces;

	if (data->done)
		return;
	if (reply == NULL) {
		connect_fail(task, amu_bluez_error(error, AMU_ERROR_IO, "cannot list bluetoothd's objects"));
		return;
	}
	objects = g_variant_get_child_value(reply, 0);
	if (data->adapter != NULL) {
		data->adapter_path = amu_bluez_select_adapter(objects, data->adapter, &error);
		if (data->adapter_path == NULL) {
			connect_fail(task, g_steal_pointer(&error));
			return;
		}
	}
	/* known already, on the adapter asked for or on any powered one */
	g_variant_iter_init(&iter, objects);
	while (found_path == NULL && g_variant_iter_next(&iter, "{&o@a{sa{sv}}}", &path, &interfaces)) {
		g_autoptr(GVariant) owned = interfaces;
		g_autoptr(GVariant) properties =
			g_variant_lookup_value(interfaces, IFACE_DEVICE, G_VARIANT_TYPE_VARDICT);
		g_autoptr(GVariant) adapter = NULL;
		g_autofree char *parent = NULL;
		const char *address = NULL;

		if (properties == NULL || !g_variant_lookup(properties, "Address", "&s", &address) ||
		    g_ascii_strcasecmp(address, data->address) != 0)
			continue;
		parent = g_strndup(path, (gsize)(strrchr(path, '/') - path));
		if (data->adapter_path != NULL && strcmp(parent, data->adapter_path) != 0)
			continue;
		adapter = amu_bluez_objects_lookup(objects, parent, IFACE_ADAPTER);
		if (!amu_bluez_props_get_bool(adapter, "Powered"))
			continue;
		found_path = g_strdup(path);
		found = g_steal_pointer(&properties);
	}
	if (found_path != NULL) {
		connect_device_found(task, found_path, found);
		return;
	}
	if (data->adapter_path == NULL) {
		data->adapter_path = amu_bluez_select_adapter(objects, NULL, &error);
		if (data->adapter_path == NULL) {
			connect_fail(task, g_steal_pointer(&error));
			return;
		}
	}
	/* unknown: look for it for a while */
	connect_wait(task, FIND_TIMEOUT_MS);
	data->waiting_device = TRUE;
	connect_call(task, data->adapter_path, IFACE_ADAPTER, "SetDiscoveryFilter",
		     amu_bluez_discovery_filter(FALSE), NULL, CALL_TIMEOUT_MS, connect_filter_cb);
}

static void
connect_bus_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;

	data->bus = g_bus_get_finish(result, &error);
	if (data->bus == NULL) {
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
			connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_CANCELLED,
						       "connecting to %s was cancelled", data->address));
			return;
		}
		connect_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
					       "cannot reach the system bus (%s): is D-Bus running?",
					       error->message));
		return;
	}
	data->added_id = g_dbus_connection_signal_subscribe(
		data->bus, BLUEZ_NAME, IFACE_OBJECT_MANAGER, "InterfacesAdded", "/", NULL,
		G_DBUS_SIGNAL_FLAGS_NONE, connect_interfaces_added_cb, task, NULL);
	connect_call(task, "/", IFACE_OBJECT_MANAGER, "GetManagedObjects", NULL,
		     "(a{oa{sa{sv}}})", CALL_TIMEOUT_MS, connect_objects_cb);
}

void
amu_link_bluez_connect_async(const char *spec, gboolean pair, AmuBluezPasskeyFunc passkey_func,
			     gpointer passkey_data, GCancellable *cancellable,
			     GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(NULL, cancellable, callback, user_data);
	ConnectData *data = g_new0(ConnectData, 1);
	g_autoptr(GError) error = NULL;

	g_task_set_source_tag(task, amu_link_bluez_connect_async);
	g_task_set_check_cancellable(task, FALSE);
	data->pair = pair;
	data->passkey_func = passkey_func;
	data->passkey_data = passkey_data;
	data->write_fd = data->notify_fd = -1;
	g_task_set_task_data(task, data, (GDestroyNotify)connect_data_free);
	if (!amu_bluez_parse_address(spec, &data->adapter, &data->address, &error)) {
		connect_fail(task, g_steal_pointer(&error));
		return;
	}
	g_bus_get(G_BUS_TYPE_SYSTEM, cancellable, connect_bus_cb, g_object_ref(task));
}

AmuLink *
amu_link_bluez_connect_finish(GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}
