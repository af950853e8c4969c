/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <gio/gunixfdlist.h>
#include <string.h>
#include <unistd.h>

#include "amu-bluez-private.h"
#include "amulet/amu-error.h"

/* amu_link_bluez_connect_async(): finds the device, bonds through the agent
 * of amu-bluez-agent.c when asked, connects, finds the Amulet service and
 * opens the link of amu-link-bluez.c on it, through the acquired sockets
 * where bluetoothd and the device allow, else through WriteValue and
 * StartNotify. Every bus call is asynchronous with a timeout. */

/* Connect and Pair wait on the radio and the user, longer than an ordinary
 * call (CALL_TIMEOUT_MS) */
#define CONNECT_TIMEOUT_MS 30000
#define PAIR_TIMEOUT_MS 90000
/* waits for bluetoothd's events */
#define RESOLVE_TIMEOUT_MS 10000
#define FIND_TIMEOUT_MS 10000

typedef struct {
	AmuBluezOp op;
	char *address;
	gboolean pair;
	AmuBluezPasskeyFunc passkey_func;
	gpointer passkey_data;
	char *device_path;
	char *rx_path;
	char *tx_path;
	gboolean connected;	    /* Device1.Connected as last heard */
	gboolean services_resolved; /* Device1.ServicesResolved as last heard */
	guint added_id;
	guint changed_id;
	gboolean waiting_device;  /* for InterfacesAdded of the device */
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
	AmuLink *link; /* fallback: waiting for StartNotify */
} ConnectData;

static void
connect_stop_waiting(ConnectData *data)
{
	amu_bluez_op_stop_waiting(&data->op);
	data->waiting_device = FALSE;
	data->waiting_resolve = FALSE;
}

static void
connect_remove_agent(ConnectData *data)
{
	GDBusConnection *bus = data->op.bus;

	if (data->agent_registered && !g_dbus_connection_is_closed(bus))
		amu_bluez_agent_unregister(bus, data->agent_path);
	data->agent_registered = FALSE;
	if (data->agent_registration != 0)
		g_dbus_connection_unregister_object(bus, data->agent_registration);
	data->agent_registration = 0;
	if (data->agent != NULL) {
		amu_bluez_agent_stop(data->agent);
		g_clear_pointer(&data->agent, amu_bluez_agent_unref);
	}
}

/* Undoes what a failed connect left behind: runs once the task is done. */
static void
connect_data_cleanup(gpointer user_data)
{
	ConnectData *data = user_data;
	GDBusConnection *bus = data->op.bus;

	connect_stop_waiting(data);
	if (bus != NULL) {
		gboolean bus_open = !g_dbus_connection_is_closed(bus);

		if (data->added_id != 0)
			g_dbus_connection_signal_unsubscribe(bus, data->added_id);
		if (data->changed_id != 0)
			g_dbus_connection_signal_unsubscribe(bus, data->changed_id);
		data->added_id = data->changed_id = 0;
		if (data->pairing && bus_open)
			amu_bluez_call_ignore(bus, data->device_path, IFACE_DEVICE, "CancelPairing",
					      NULL);
		data->pairing = FALSE;
		connect_remove_agent(data);
		amu_bluez_op_stop_discovery(&data->op);
		if (data->connect_sent && bus_open)
			amu_bluez_call_ignore(bus, data->device_path, IFACE_DEVICE, "Disconnect",
					      NULL);
		data->connect_sent = FALSE;
		/* the caller may exit right after a failure: see link_close() */
		if (bus_open)
			g_dbus_connection_flush_sync(bus, NULL, NULL);
	}
	/* the link does its own Disconnect */
	g_clear_pointer(&data->link, amu_link_unref);
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
	amu_bluez_op_clear(&data->op);
	g_free(data->address);
	g_free(data->device_path);
	g_free(data->rx_path);
	g_free(data->tx_path);
	g_free(data->agent_path);
	g_free(data);
}

static void
connect_succeed(GTask *task, AmuLink *link)
{
	ConnectData *data = g_task_get_task_data(task);

	/* the link owns the connection now */
	data->connect_sent = FALSE;
	amu_bluez_op_return(task, link, (GDestroyNotify)amu_link_unref);
}

static GError *
connect_cancelled_error(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	return g_error_new(AMU_ERROR, AMU_ERROR_CANCELLED, "connecting to %s was cancelled",
			   data->address);
}

/* Waits for a signal of bluetoothd for at most @timeout_ms. */
static void
connect_wait(GTask *task, guint timeout_ms)
{
	connect_stop_waiting(g_task_get_task_data(task));
	amu_bluez_op_wait(task, timeout_ms);
}

static void connect_device_found(GTask *task, const char *path, GVariant *properties);
static void connect_find_gatt(GTask *task);

static void
connect_timed_out(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->waiting_device) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_FOUND,
						    "%s not found: is it on and advertising? try "
						    "amulet scan",
						    data->address));
	} else {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_TIMED_OUT,
						    "%s connected but did not list its GATT "
						    "services within %d s: move it closer and try "
						    "again",
						    data->address, RESOLVE_TIMEOUT_MS / 1000));
	}
}

static void
connect_interfaces_added_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			    const char *interface, const char *signal, GVariant *parameters,
			    gpointer user_data)
{
	GTask *task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) properties = NULL;
	const char *path;
	const char *address = NULL;

	if (data->op.done || !data->waiting_device)
		return;
	properties = amu_bluez_added_device(parameters, data->op.adapter_path, &path);
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
	gboolean value;

	if (data->op.done || (changed = amu_bluez_changed_properties(parameters, IFACE_DEVICE)) == NULL)
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
connect_notify_started(GTask *task, GVariant *reply, const GError *error)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->op.done)
		return;
	if (reply == NULL) {
		g_autofree char *what =
			g_strdup_printf("cannot turn on notifications from %s", data->address);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	amu_link_bluez_set_notifying(data->link);
	if (data->link->closed) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_DISCONNECTED,
						    "%s disconnected while the link was set up: "
						    "try again",
						    data->address));
		return;
	}
	connect_succeed(task, g_steal_pointer(&data->link));
}

/* A link on the device's characteristics */
static AmuLink *
connect_new_link(ConnectData *data)
{
	g_autofree char *adapter = amu_bluez_adapter_name_from_path(data->device_path);

	return amu_link_bluez_new(data->op.bus, adapter, data->address, data->device_path,
				  data->rx_path, data->tx_path);
}

/* Falls back to WriteValue/StartNotify; the MTU comes from the objects. */
static void
connect_fallback_listed(GTask *task, GVariant *objects)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) rx =
		amu_bluez_objects_lookup(objects, data->rx_path, IFACE_CHARACTERISTIC);
	g_autoptr(GVariant) tx =
		amu_bluez_objects_lookup(objects, data->tx_path, IFACE_CHARACTERISTIC);
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
	data->link = connect_new_link(data);
	/* watch Value before turning notifications on, so none is missed */
	amu_link_bluez_watch_value(data->link, mtu);
	amu_bluez_op_call(task, data->tx_path, IFACE_CHARACTERISTIC, "StartNotify", NULL, NULL,
			  CALL_TIMEOUT_MS, connect_notify_started);
}

static void
connect_start_fallback(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->write_fd >= 0)
		close(data->write_fd);
	data->write_fd = -1;
	amu_bluez_op_list_objects(task, connect_fallback_listed);
}

/* The socket of the AcquireWrite/AcquireNotify reply in @result, or -1:
 * then the connect falls back to WriteValue, or failed with "@what ADDRESS"
 * in front of the error, or had ended. */
static int
connect_acquired(GTask *task, GObject *source, GAsyncResult *result, const char *what,
		 uint16_t *mtu)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GError) error = NULL;
	g_autoptr(GUnixFDList) fd_list = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_with_unix_fd_list_finish(
		G_DBUS_CONNECTION(source), &fd_list, result, &error);
	int fd;

	if (data->op.done)
		return -1;
	if (reply == NULL) {
		g_autofree char *message = NULL;
		if (acquire_unsupported(error)) {
			connect_start_fallback(task);
			return -1;
		}
		message = g_strdup_printf("%s %s", what, data->address);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO, message));
		return -1;
	}
	fd = acquired_fd(reply, fd_list, mtu, &error);
	if (fd < 0)
		amu_bluez_op_fail(task, g_steal_pointer(&error));
	return fd;
}

static void
connect_acquire_notify_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);
	uint16_t mtu = 0;
	uint16_t att_mtu;
	AmuLink *link;

	data->notify_fd =
		connect_acquired(task, source, result, "cannot receive notifications from", &mtu);
	if (data->notify_fd < 0)
		return;
	att_mtu = MIN(mtu, data->write_mtu);
	if (att_mtu < ATT_MTU_MIN || att_mtu > ATT_MTU_MAX) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
						    "bluetoothd reported an ATT MTU of %u for %s, "
						    "outside %d..%d: update bluez",
						    att_mtu, data->address, ATT_MTU_MIN,
						    ATT_MTU_MAX));
		return;
	}
	link = connect_new_link(data);
	amu_link_bluez_start_acquired(link, data->write_fd, data->notify_fd, att_mtu);
	data->write_fd = data->notify_fd = -1;
	connect_succeed(task, link);
}

/* AcquireWrite or AcquireNotify on the characteristic at @path */
static void
connect_acquire(GTask *task, const char *path, const char *method, GAsyncReadyCallback callback)
{
	ConnectData *data = g_task_get_task_data(task);
	GVariant *no_options = g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0);

	g_dbus_connection_call_with_unix_fd_list(
		data->op.bus, BLUEZ_NAME, path, IFACE_CHARACTERISTIC, method,
		g_variant_new("(@a{sv})", no_options), G_VARIANT_TYPE("(hq)"),
		G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, g_task_get_cancellable(task),
		callback, g_object_ref(task));
}

static void
connect_acquire_write_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	ConnectData *data = g_task_get_task_data(task);

	data->write_fd =
		connect_acquired(task, source, result, "cannot write to", &data->write_mtu);
	if (data->write_fd < 0)
		return;
	connect_acquire(task, data->tx_path, "AcquireNotify", connect_acquire_notify_cb);
}

/* The object under @parent with @interface whose UUID is @uuid, or NULL;
 * the first one when a device lists a service twice. */
static char *
find_gatt_object(GVariant *objects, const char *parent, const char *parent_property,
		 const char *interface, const char *uuid)
{
	g_autoptr(GPtrArray) paths = amu_bluez_objects_find(objects, interface, parent);

	for (guint i = 0; i < paths->len; i++) {
		const char *path = g_ptr_array_index(paths, i);
		g_autoptr(GVariant) properties = amu_bluez_objects_lookup(objects, path, interface);
		const char *object_uuid = NULL;
		const char *object_parent = NULL;

		if (!g_variant_lookup(properties, "UUID", "&s", &object_uuid) ||
		    g_ascii_strcasecmp(object_uuid, uuid) != 0)
			continue;
		if (g_variant_lookup(properties, parent_property, "&o", &object_parent) &&
		    strcmp(object_parent, parent) != 0)
			continue;
		return g_strdup(path);
	}
	return NULL;
}

static void
connect_gatt_listed(GTask *task, GVariant *objects)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autofree char *service_path = find_gatt_object(objects, data->device_path, "Device",
							 IFACE_SERVICE, AMU_GATT_SERVICE_UUID);

	if (service_path != NULL) {
		data->rx_path = find_gatt_object(objects, service_path, "Service",
						 IFACE_CHARACTERISTIC, AMU_GATT_RX_UUID);
		data->tx_path = find_gatt_object(objects, service_path, "Service",
						 IFACE_CHARACTERISTIC, AMU_GATT_TX_UUID);
	}
	if (data->rx_path == NULL || data->tx_path == NULL) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
						    "%s does not offer the Amulet service: is it "
						    "an Amulet device?",
						    data->address));
		return;
	}
	connect_acquire(task, data->rx_path, "AcquireWrite", connect_acquire_write_cb);
}

static void
connect_find_gatt(GTask *task)
{
	amu_bluez_op_list_objects(task, connect_gatt_listed);
}

/* -- connecting */

static void
connect_connected(GTask *task, GVariant *reply, const GError *error)
{
	ConnectData *data = g_task_get_task_data(task);

	if (data->op.done)
		return;
	if (reply == NULL && !amu_bluez_error_is(error, "org.bluez.Error.AlreadyConnected")) {
		g_autofree char *what = g_strdup_printf(
			"cannot connect to %s (is it on and in range?)", data->address);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
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
	amu_bluez_op_call(task, data->device_path, IFACE_DEVICE, "Connect", NULL, NULL,
			  CONNECT_TIMEOUT_MS, connect_connected);
}

/* -- pairing */

static void
connect_paired(GTask *task, GVariant *reply, const GError *error)
{
	ConnectData *data = g_task_get_task_data(task);
	gboolean user_rejected;

	/* a cancelled call is still running in bluetoothd: CancelPairing */
	if (reply != NULL || !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		data->pairing = FALSE;
	if (data->op.done)
		return;
	user_rejected = data->agent != NULL && amu_bluez_agent_user_rejected(data->agent);
	connect_remove_agent(data);
	if (reply == NULL && !amu_bluez_error_is(error, "org.bluez.Error.AlreadyExists")) {
		g_autofree char *what = NULL;
		if (user_rejected || amu_bluez_error_is(error, "org.bluez.Error.AuthenticationRejected")) {
			amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_REJECTED,
							    "pairing with %s was rejected: the "
							    "passkeys must be confirmed on both sides",
							    data->address));
			return;
		}
		what = g_strdup_printf("link-layer pairing with %s failed", data->address);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_AUTH_FAILED, what));
		return;
	}
	connect_start_connect(task);
}

static void
connect_agent_registered(GTask *task, GVariant *reply, const GError *error)
{
	ConnectData *data = g_task_get_task_data(task);

	if (reply != NULL)
		data->agent_registered = TRUE;
	if (data->op.done)
		return;
	if (reply == NULL) {
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO,
							"cannot register a pairing agent with "
							"bluetoothd"));
		return;
	}
	data->pairing = TRUE;
	amu_bluez_op_call(task, data->device_path, IFACE_DEVICE, "Pair", NULL, NULL, PAIR_TIMEOUT_MS,
			  connect_paired);
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
	data->agent_registration = amu_bluez_agent_export(agent, data->op.bus, &error);
	if (data->agent_registration == 0) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_FAILED,
						    "cannot export the pairing agent: %s",
						    error->message));
		return;
	}
	amu_bluez_agent_register(agent, task, connect_agent_registered);
}

/* -- finding the device */

static void
connect_device_found(GTask *task, const char *path, GVariant *properties)
{
	ConnectData *data = g_task_get_task_data(task);

	g_free(data->device_path);
	data->device_path = g_strdup(path);
	if (data->op.adapter_path == NULL)
		data->op.adapter_path = g_strndup(path, (gsize)(strrchr(path, '/') - path));
	amu_bluez_op_stop_discovery(&data->op);
	data->connected = amu_bluez_props_get_bool(properties, "Connected");
	data->services_resolved = amu_bluez_props_get_bool(properties, "ServicesResolved");
	data->changed_id = g_dbus_connection_signal_subscribe(
		data->op.bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", path, IFACE_DEVICE,
		G_DBUS_SIGNAL_FLAGS_NONE, connect_device_changed_cb, task, NULL);
	if (data->pair) {
		connect_start_pairing(task);
		return;
	}
	if (!amu_bluez_props_get_bool(properties, "Paired")) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_AUTH_FAILED,
						    "the link-layer bond with %s is gone: unpair "
						    "and pair again",
						    data->address));
		return;
	}
	connect_start_connect(task);
}

static void
connect_discovery_started(GTask *task, GVariant *reply, const GError *error)
{
	ConnectData *data = g_task_get_task_data(task);

	if (reply != NULL) {
		/* stopped at once if found, failed or cancelled meanwhile */
		data->op.discovering = TRUE;
		if (data->op.done || !data->waiting_device)
			amu_bluez_op_stop_discovery(&data->op);
		return;
	}
	if (data->op.done || amu_bluez_error_is(error, "org.bluez.Error.InProgress"))
		return;
	{
		g_autofree char *what = g_strdup_printf("cannot look for %s", data->address);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
	}
}

/* Finds the device among the objects; if it is unknown, looks for it for a
 * while. */
static void
connect_listed(GTask *task, GVariant *objects)
{
	ConnectData *data = g_task_get_task_data(task);
	g_autoptr(GVariant) found = NULL;
	g_autofree char *found_path = NULL;
	g_autofree char *what = NULL;
	GVariantIter iter;
	const char *path;
	GVariant *interfaces;

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
		if (data->op.adapter_path != NULL && strcmp(parent, data->op.adapter_path) != 0)
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
	if (data->op.adapter_path == NULL && !amu_bluez_op_pick_adapter(task, objects))
		return;
	connect_wait(task, FIND_TIMEOUT_MS);
	data->waiting_device = TRUE;
	what = g_strdup_printf("cannot look for %s", data->address);
	amu_bluez_op_start_discovery(task, FALSE, what, connect_discovery_started);
}

static void
connect_subscribe(GTask *task)
{
	ConnectData *data = g_task_get_task_data(task);

	data->added_id = g_dbus_connection_signal_subscribe(
		data->op.bus, BLUEZ_NAME, IFACE_OBJECT_MANAGER, "InterfacesAdded", "/", NULL,
		G_DBUS_SIGNAL_FLAGS_NONE, connect_interfaces_added_cb, task, NULL);
}

static const AmuBluezOpClass connect_class = {
	.cancelled_error = connect_cancelled_error,
	.subscribe = connect_subscribe,
	.listed = connect_listed,
	/* with no adapter asked for, the device may be on any powered one */
	.pick_adapter = FALSE,
	.timed_out = connect_timed_out,
	.cleanup = connect_data_cleanup,
};

void
amu_link_bluez_connect_async(const char *spec, gboolean pair, AmuBluezPasskeyFunc passkey_func,
			     gpointer passkey_data, GCancellable *cancellable,
			     GAsyncReadyCallback callback, gpointer user_data)
{
	ConnectData *data = g_new0(ConnectData, 1);
	g_autoptr(GTask) task = amu_bluez_op_task_new(&data->op, &connect_class,
						      (GDestroyNotify)connect_data_free,
						      amu_link_bluez_connect_async, cancellable,
						      callback, user_data);
	g_autoptr(GError) error = NULL;

	data->pair = pair;
	data->passkey_func = passkey_func;
	data->passkey_data = passkey_data;
	data->write_fd = data->notify_fd = -1;
	if (!amu_bluez_parse_address(spec, &data->op.adapter, &data->address, &error)) {
		amu_bluez_op_fail(task, g_steal_pointer(&error));
		return;
	}
	amu_bluez_op_start(task);
}

AmuLink *
amu_link_bluez_connect_finish(GAsyncResult *result, GError **error)
{
	return amu_bluez_op_finish(result, error);
}
