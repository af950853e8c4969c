/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-bluez-private.h"
#include "amulet/amu-error.h"

/* Scanning through bluetoothd: address parsing, AmuBluezDevice, discovery
 * with amu_bluez_scan_async(), and the helpers for bluetoothd's calls,
 * errors, ObjectManager listings and adapters that the agent, the link and
 * the operations share (declared in amu-bluez-private.h). */

#define BLUEZ_MISSING                                                                              \
	"bluetoothd is not running (no org.bluez on the system bus): start it, e.g. systemctl "   \
	"start bluetooth"

/* ------------------------------------------------------------ helpers */

static gboolean
is_address(const char *text)
{
	if (strlen(text) != 17)
		return FALSE;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? text[i] != ':' : !g_ascii_isxdigit(text[i]))
			return FALSE;
	}
	return TRUE;
}

static gboolean
is_adapter_name(const char *text, size_t len)
{
	if (len < 4 || len > 6 || strncmp(text, "hci", 3) != 0)
		return FALSE;
	for (size_t i = 3; i < len; i++) {
		if (!g_ascii_isdigit(text[i]))
			return FALSE;
	}
	return TRUE;
}

gboolean
amu_bluez_parse_address(const char *spec, char **adapter, char **address, GError **error)
{
	const char *slash;
	const char *addr = spec;
	size_t adapter_len = 0;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (spec == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "no Bluetooth address given: use AA:BB:CC:DD:EE:FF or "
				    "hciN/AA:BB:CC:DD:EE:FF");
		return FALSE;
	}
	slash = strchr(spec, '/');
	if (slash != NULL) {
		adapter_len = (size_t)(slash - spec);
		addr = slash + 1;
	}
	if ((slash != NULL && !is_adapter_name(spec, adapter_len)) || !is_address(addr)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "'%s' is not a Bluetooth device address: use AA:BB:CC:DD:EE:FF or "
			    "hciN/AA:BB:CC:DD:EE:FF",
			    spec);
		return FALSE;
	}
	if (adapter != NULL)
		*adapter = slash != NULL ? g_strndup(spec, adapter_len) : NULL;
	if (address != NULL)
		*address = g_ascii_strup(addr, -1);
	return TRUE;
}

/* "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF" -> "hci0" */
char *
amu_bluez_adapter_name_from_path(const char *path)
{
	const char *start;
	const char *end;

	if (!g_str_has_prefix(path, BLUEZ_ROOT "/"))
		return NULL;
	start = path + strlen(BLUEZ_ROOT "/");
	end = strchr(start, '/');
	return end != NULL ? g_strndup(start, (gsize)(end - start)) : g_strdup(start);
}

gboolean
amu_bluez_path_is_below(const char *path, const char *parent)
{
	size_t len = strlen(parent);

	return strncmp(path, parent, len) == 0 && path[len] == '/';
}

GVariant *
amu_bluez_added_device(GVariant *parameters, const char *adapter_path, const char **path)
{
	g_autoptr(GVariant) interfaces = NULL;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(oa{sa{sv}})")))
		return NULL;
	g_variant_get(parameters, "(&o@a{sa{sv}})", path, &interfaces);
	if (!amu_bluez_path_is_below(*path, adapter_path))
		return NULL;
	return g_variant_lookup_value(interfaces, IFACE_DEVICE, G_VARIANT_TYPE_VARDICT);
}

GVariant *
amu_bluez_changed_properties(GVariant *parameters, const char *interface)
{
	g_autoptr(GVariant) changed = NULL;
	const char *changed_interface;

	if (!g_variant_is_of_type(parameters, G_VARIANT_TYPE("(sa{sv}as)")))
		return NULL;
	g_variant_get(parameters, "(&s@a{sv}as)", &changed_interface, &changed, NULL);
	return strcmp(changed_interface, interface) == 0 ? g_steal_pointer(&changed) : NULL;
}

/* Turns an error of a call to bluetoothd into an AMU_ERROR: cancellation, a
 * missing bluetoothd and time-outs get codes of their own, anything else
 * @code, with @what in front and BlueZ's error name kept in the message. */
GError *
amu_bluez_error(const GError *error, AmuError code, const char *what)
{
	g_autofree char *name = g_dbus_error_get_remote_error(error);
	g_autoptr(GError) stripped = NULL;

	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return g_error_new(AMU_ERROR, AMU_ERROR_CANCELLED, "%s: cancelled", what);
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	    (name != NULL && g_str_has_prefix(name, "org.freedesktop.DBus.Error.Spawn.")))
		return g_error_new_literal(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED, BLUEZ_MISSING);
	if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_TIMEOUT))
		code = AMU_ERROR_TIMED_OUT;
	stripped = g_error_copy(error);
	g_dbus_error_strip_remote_error(stripped);
	return g_error_new(AMU_ERROR, code, "%s: %s%s%s", what, name != NULL ? name : "",
			   name != NULL ? ": " : "", stripped->message);
}

gboolean
amu_bluez_error_is(const GError *error, const char *name)
{
	g_autofree char *remote = g_dbus_error_get_remote_error(error);

	return remote != NULL && strcmp(remote, name) == 0;
}

static void
call_ignore_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autofree char *what = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &error);

	if (reply == NULL)
		g_debug("%s: %s", what, error->message);
}

/* A call whose outcome changes nothing (cleanup); the pending call keeps the
 * bus connection alive until it is answered. */
void
amu_bluez_call_ignore(GDBusConnection *bus, const char *path, const char *interface,
		      const char *method, GVariant *parameters)
{
	g_dbus_connection_call(bus, BLUEZ_NAME, path, interface, method, parameters, NULL,
			       G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, call_ignore_cb,
			       g_strdup_printf("%s.%s on %s", interface, method, path));
}

/* The a{sv} of @interface on @path in @objects (a{oa{sa{sv}}}), or NULL. */
GVariant *
amu_bluez_objects_lookup(GVariant *objects, const char *path, const char *interface)
{
	g_autoptr(GVariant) interfaces =
		g_variant_lookup_value(objects, path, G_VARIANT_TYPE("a{sa{sv}}"));

	if (interfaces == NULL)
		return NULL;
	return g_variant_lookup_value(interfaces, interface, G_VARIANT_TYPE_VARDICT);
}

gboolean
amu_bluez_props_get_bool(GVariant *properties, const char *name)
{
	gboolean value = FALSE;

	return properties != NULL && g_variant_lookup(properties, name, "b", &value) && value;
}

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static GError *
powered_off_error(const char *adapter_name)
{
	return g_error_new(AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
			   "%s is powered off: bluetoothctl power on", adapter_name);
}

/* The object path of @adapter, or of the first powered adapter when @adapter
 * is NULL, from a GetManagedObjects reply. */
GPtrArray *
amu_bluez_objects_find(GVariant *objects, const char *interface, const char *parent)
{
	GPtrArray *paths = g_ptr_array_new();
	GVariantIter iter;
	const char *path;
	GVariant *interfaces;

	g_variant_iter_init(&iter, objects);
	while (g_variant_iter_loop(&iter, "{&o@a{sa{sv}}}", &path, &interfaces)) {
		g_autoptr(GVariant) properties =
			g_variant_lookup_value(interfaces, interface, G_VARIANT_TYPE_VARDICT);
		if (properties != NULL && (parent == NULL || amu_bluez_path_is_below(path, parent)))
			g_ptr_array_add(paths, (gpointer)path);
	}
	g_ptr_array_sort(paths, compare_strings);
	return paths;
}

static char *
select_adapter(GVariant *objects, const char *adapter, GError **error)
{
	g_autoptr(GPtrArray) paths = amu_bluez_objects_find(objects, IFACE_ADAPTER, NULL);

	if (adapter != NULL) {
		g_autofree char *wanted = g_strdup_printf(BLUEZ_ROOT "/%s", adapter);
		g_autoptr(GVariant) properties =
			amu_bluez_objects_lookup(objects, wanted, IFACE_ADAPTER);

		if (properties == NULL) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_FOUND,
				    "Bluetooth adapter %s not found: list the adapters with "
				    "bluetoothctl list",
				    adapter);
			return NULL;
		}
		if (!amu_bluez_props_get_bool(properties, "Powered")) {
			g_propagate_error(error, powered_off_error(adapter));
			return NULL;
		}
		return g_steal_pointer(&wanted);
	}
	if (paths->len == 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_NOT_FOUND,
				    "no Bluetooth adapter found: plug one in, or check that it is "
				    "not blocked (rfkill list)");
		return NULL;
	}
	for (guint i = 0; i < paths->len; i++) {
		g_autoptr(GVariant) properties = amu_bluez_objects_lookup(
			objects, g_ptr_array_index(paths, i), IFACE_ADAPTER);
		if (amu_bluez_props_get_bool(properties, "Powered"))
			return g_strdup(g_ptr_array_index(paths, i));
	}
	{
		g_autofree char *name =
			amu_bluez_adapter_name_from_path(g_ptr_array_index(paths, 0));
		g_propagate_error(error, powered_off_error(name));
	}
	return NULL;
}

gboolean
amu_bluez_op_pick_adapter(GTask *task, GVariant *objects)
{
	AmuBluezOp *op = g_task_get_task_data(task);
	GError *error = NULL;

	op->adapter_path = select_adapter(objects, op->adapter, &error);
	if (op->adapter_path == NULL) {
		amu_bluez_op_fail(task, error);
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------ devices */

AmuBluezDevice *
amu_bluez_device_copy(const AmuBluezDevice *device)
{
	AmuBluezDevice *copy = g_new(AmuBluezDevice, 1);

	*copy = *device;
	copy->adapter = g_strdup(device->adapter);
	copy->address = g_strdup(device->address);
	copy->name = g_strdup(device->name);
	return copy;
}

void
amu_bluez_device_free(AmuBluezDevice *device)
{
	if (device == NULL)
		return;
	g_free(device->adapter);
	g_free(device->address);
	g_free(device->name);
	g_free(device);
}

/* One Device1 object as the scan sees it. The device advertises the Amulet
 * service if it lists it in UUIDs or sends service data for it. */
typedef struct {
	AmuBluezDevice device;
	gboolean in_uuids;
	gboolean in_service_data;
	gboolean seen; /* advertised while we scanned */
} DeviceEntry;

static void
device_entry_free(DeviceEntry *entry)
{
	g_free(entry->device.adapter);
	g_free(entry->device.address);
	g_free(entry->device.name);
	g_free(entry);
}

static const char *
profile_from_byte(guint8 profile)
{
	switch (profile) {
	case 1:
		return "band";
	case 2:
		return "watch";
	case 3:
		return "toy";
	default:
		return NULL;
	}
}

static void
device_entry_set_service_data(DeviceEntry *entry, GVariant *service_data)
{
	GVariantIter iter;
	const char *uuid;
	GVariant *value;

	entry->in_service_data = FALSE;
	entry->device.pairing_mode = FALSE;
	entry->device.profile = NULL;
	if (service_data == NULL)
		return;
	g_variant_iter_init(&iter, service_data);
	while (g_variant_iter_loop(&iter, "{&sv}", &uuid, &value)) {
		const guint8 *bytes;
		gsize len = 0;

		if (g_ascii_strcasecmp(uuid, AMU_GATT_SERVICE_UUID) != 0 ||
		    !g_variant_is_of_type(value, G_VARIANT_TYPE_BYTESTRING))
			continue;
		bytes = g_variant_get_fixed_array(value, &len, 1);
		entry->in_service_data = TRUE;
		if (len >= 1)
			entry->device.pairing_mode = (bytes[0] & AMU_BLUEZ_ADV_FLAG_PAIRING) != 0;
		if (len >= 2)
			entry->device.profile = profile_from_byte(bytes[1]);
	}
}

/* Applies one Device1 property (NULL @value: invalidated). Returns TRUE if
 * it is news from an advertisement: RSSI, service data or UUIDs. */
static gboolean
device_entry_apply(DeviceEntry *entry, const char *name, GVariant *value)
{
	AmuBluezDevice *device = &entry->device;

	if (strcmp(name, "Address") == 0 && value != NULL &&
	    g_variant_is_of_type(value, G_VARIANT_TYPE_STRING)) {
		g_free(device->address);
		device->address = g_ascii_strup(g_variant_get_string(value, NULL), -1);
	} else if (strcmp(name, "Alias") == 0) {
		g_free(device->name);
		device->name = value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_STRING)
				       ? g_variant_dup_string(value, NULL)
				       : NULL;
	} else if (strcmp(name, "RSSI") == 0) {
		device->has_rssi = value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_INT16);
		device->rssi = device->has_rssi ? g_variant_get_int16(value) : 0;
		return TRUE;
	} else if (strcmp(name, "ServiceData") == 0) {
		device_entry_set_service_data(
			entry, value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT) ? value : NULL);
		return TRUE;
	} else if (strcmp(name, "UUIDs") == 0) {
		entry->in_uuids = FALSE;
		if (value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_STRING_ARRAY)) {
			g_autofree const char **uuids = g_variant_get_strv(value, NULL);
			for (guint i = 0; uuids[i] != NULL; i++) {
				if (g_ascii_strcasecmp(uuids[i], AMU_GATT_SERVICE_UUID) == 0)
					entry->in_uuids = TRUE;
			}
		}
		return TRUE;
	} else if (strcmp(name, "Paired") == 0) {
		device->paired = value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN) &&
				 g_variant_get_boolean(value);
	} else if (strcmp(name, "Connected") == 0) {
		device->connected = value != NULL && g_variant_is_of_type(value, G_VARIANT_TYPE_BOOLEAN) &&
				    g_variant_get_boolean(value);
	}
	return FALSE;
}

/* Applies an a{sv} of changed properties and an optional list of
 * invalidated ones; returns TRUE if any was advertisement news. */
static gboolean
device_entry_update(DeviceEntry *entry, GVariant *changed, const char *const *invalidated)
{
	gboolean news = FALSE;
	GVariantIter iter;
	const char *name;
	GVariant *value;

	g_variant_iter_init(&iter, changed);
	while (g_variant_iter_loop(&iter, "{&sv}", &name, &value))
		news |= device_entry_apply(entry, name, value);
	for (guint i = 0; invalidated != NULL && invalidated[i] != NULL; i++)
		news |= device_entry_apply(entry, invalidated[i], NULL);
	entry->device.amulet = entry->in_uuids || entry->in_service_data;
	return news;
}

static DeviceEntry *
device_entry_new(const char *path, GVariant *properties)
{
	DeviceEntry *entry = g_new0(DeviceEntry, 1);

	entry->device.adapter = amu_bluez_adapter_name_from_path(path);
	device_entry_update(entry, properties, NULL);
	return entry;
}

/* ------------------------------------------------------------ scan */

typedef struct {
	AmuBluezOp op;
	guint timeout_ms;
	AmuBluezFoundFunc found;
	gpointer found_data;
	GHashTable *devices; /* object path -> DeviceEntry */
	guint added_id;
	guint removed_id;
	guint changed_id;
	gboolean stopping; /* StopDiscovery sent: the result stands */
} ScanData;

static void
scan_data_free(ScanData *data)
{
	if (data->op.bus != NULL) {
		if (data->added_id != 0)
			g_dbus_connection_signal_unsubscribe(data->op.bus, data->added_id);
		if (data->removed_id != 0)
			g_dbus_connection_signal_unsubscribe(data->op.bus, data->removed_id);
		if (data->changed_id != 0)
			g_dbus_connection_signal_unsubscribe(data->op.bus, data->changed_id);
	}
	amu_bluez_op_clear(&data->op);
	g_hash_table_unref(data->devices);
	g_free(data);
}

static void
scan_report(ScanData *data, DeviceEntry *entry)
{
	if (data->op.done || !entry->seen || !entry->device.amulet || entry->device.address == NULL)
		return;
	if (data->found != NULL)
		data->found(&entry->device, data->found_data);
}

/* Signals that come before the adapter is picked, after the scan ended or
 * once StopDiscovery was sent change nothing. */
static gboolean
scan_listening(ScanData *data, GVariant *parameters, const char *type)
{
	return !data->op.done && !data->stopping && data->op.adapter_path != NULL &&
	       g_variant_is_of_type(parameters, G_VARIANT_TYPE(type));
}

static void
scan_interfaces_added_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			 const char *interface, const char *signal, GVariant *parameters,
			 gpointer user_data)
{
	ScanData *data = user_data;
	g_autoptr(GVariant) properties = NULL;
	const char *path;
	DeviceEntry *entry;

	if (!scan_listening(data, parameters, "(oa{sa{sv}})"))
		return;
	properties = amu_bluez_added_device(parameters, data->op.adapter_path, &path);
	if (properties == NULL)
		return;
	entry = device_entry_new(path, properties);
	entry->seen = TRUE;
	g_hash_table_replace(data->devices, g_strdup(path), entry);
	scan_report(data, entry);
}

static void
scan_interfaces_removed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			   const char *interface, const char *signal, GVariant *parameters,
			   gpointer user_data)
{
	ScanData *data = user_data;
	g_autofree const char **interfaces = NULL;
	const char *path;

	if (!scan_listening(data, parameters, "(oas)"))
		return;
	g_variant_get(parameters, "(&o^a&s)", &path, &interfaces);
	if (g_strv_contains(interfaces, IFACE_DEVICE))
		g_hash_table_remove(data->devices, path);
}

static void
scan_properties_changed_cb(GDBusConnection *bus, const char *sender, const char *object_path,
			   const char *interface, const char *signal, GVariant *parameters,
			   gpointer user_data)
{
	ScanData *data = user_data;
	g_autoptr(GVariant) changed = NULL;
	g_autofree const char **invalidated = NULL;
	const char *changed_interface;
	DeviceEntry *entry;

	if (!scan_listening(data, parameters, "(sa{sv}as)"))
		return;
	entry = g_hash_table_lookup(data->devices, object_path);
	if (entry == NULL)
		return;
	g_variant_get(parameters, "(&s@a{sv}^a&s)", &changed_interface, &changed, &invalidated);
	if (strcmp(changed_interface, IFACE_DEVICE) != 0)
		return;
	if (device_entry_update(entry, changed, invalidated)) {
		entry->seen = TRUE;
		scan_report(data, entry);
	}
}

static void
scan_subscribe(GTask *task)
{
	ScanData *data = g_task_get_task_data(task);
	GDBusConnection *bus = data->op.bus;

	data->added_id = g_dbus_connection_signal_subscribe(
		bus, BLUEZ_NAME, IFACE_OBJECT_MANAGER, "InterfacesAdded", "/", NULL,
		G_DBUS_SIGNAL_FLAGS_NONE, scan_interfaces_added_cb, data, NULL);
	data->removed_id = g_dbus_connection_signal_subscribe(
		bus, BLUEZ_NAME, IFACE_OBJECT_MANAGER, "InterfacesRemoved", "/", NULL,
		G_DBUS_SIGNAL_FLAGS_NONE, scan_interfaces_removed_cb, data, NULL);
	data->changed_id = g_dbus_connection_signal_subscribe(
		bus, BLUEZ_NAME, IFACE_PROPERTIES, "PropertiesChanged", NULL, IFACE_DEVICE,
		G_DBUS_SIGNAL_FLAGS_NONE, scan_properties_changed_cb, data, NULL);
}

static gint
compare_devices(gconstpointer a, gconstpointer b)
{
	const AmuBluezDevice *device_a = *(const AmuBluezDevice *const *)a;
	const AmuBluezDevice *device_b = *(const AmuBluezDevice *const *)b;
	int cmp = g_strcmp0(device_a->address, device_b->address);

	return cmp != 0 ? cmp : g_strcmp0(device_a->adapter, device_b->adapter);
}

static void
scan_stopped(GTask *task, GVariant *reply, const GError *error)
{
	ScanData *data = g_task_get_task_data(task);
	g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func((GDestroyNotify)amu_bluez_device_free);
	GHashTableIter iter;
	DeviceEntry *entry;

	/* a failed stop leaves nothing for us to undo: bluetoothd ends the
	 * discovery session of a client that is gone or asked twice */
	if (reply == NULL)
		g_debug("stopping discovery on %s: %s", data->op.adapter_path, error->message);
	if (data->op.done)
		return;
	g_hash_table_iter_init(&iter, data->devices);
	while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&entry)) {
		if (entry->seen && entry->device.amulet && entry->device.address != NULL)
			g_ptr_array_add(devices, amu_bluez_device_copy(&entry->device));
	}
	g_ptr_array_sort(devices, compare_devices);
	amu_bluez_op_return(task, g_steal_pointer(&devices), (GDestroyNotify)g_ptr_array_unref);
}

static void
scan_timed_out(GTask *task)
{
	ScanData *data = g_task_get_task_data(task);

	/* what comes now is the end of discovery (bluetoothd drops the RSSI
	 * values), not news about the devices */
	data->stopping = TRUE;
	amu_bluez_op_end_discovery(task, scan_stopped);
}

static GError *
scan_cancelled_error(GTask *task)
{
	return g_error_new_literal(AMU_ERROR, AMU_ERROR_CANCELLED, "the scan was cancelled");
}

static void
scan_started(GTask *task, GVariant *reply, const GError *error)
{
	ScanData *data = g_task_get_task_data(task);
	g_autofree char *name = amu_bluez_adapter_name_from_path(data->op.adapter_path);

	if (reply != NULL) {
		data->op.discovering = TRUE;
	} else if (amu_bluez_error_is(error, "org.bluez.Error.NotReady")) {
		amu_bluez_op_fail(task, powered_off_error(name));
		return;
	} else if (!amu_bluez_error_is(error, "org.bluez.Error.InProgress")) {
		/* (another discovery of ours in progress serves this scan too) */
		g_autofree char *what = g_strdup_printf("cannot start discovery on %s", name);
		amu_bluez_op_fail(task, amu_bluez_error(error, AMU_ERROR_IO, what));
		return;
	}
	if (data->op.done)
		return;
	amu_bluez_op_wait(task, data->timeout_ms);
}

static void
scan_listed(GTask *task, GVariant *objects)
{
	ScanData *data = g_task_get_task_data(task);
	g_autofree char *name = amu_bluez_adapter_name_from_path(data->op.adapter_path);
	g_autofree char *what = g_strdup_printf("cannot set the discovery filter on %s", name);
	GVariantIter iter;
	const char *path;
	GVariant *interfaces;

	/* devices bluetoothd knows already count if they were heard lately:
	 * bluetoothd keeps an RSSI only for those */
	g_variant_iter_init(&iter, objects);
	while (g_variant_iter_loop(&iter, "{&o@a{sa{sv}}}", &path, &interfaces)) {
		g_autoptr(GVariant) properties = NULL;
		DeviceEntry *entry;

		if (!amu_bluez_path_is_below(path, data->op.adapter_path) ||
		    g_hash_table_contains(data->devices, path))
			continue;
		properties = g_variant_lookup_value(interfaces, IFACE_DEVICE, G_VARIANT_TYPE_VARDICT);
		if (properties == NULL)
			continue;
		entry = device_entry_new(path, properties);
		entry->seen = entry->device.has_rssi;
		g_hash_table_insert(data->devices, g_strdup(path), entry);
		scan_report(data, entry);
	}
	if (data->op.done)
		return;
	amu_bluez_op_start_discovery(task, TRUE, what, scan_started);
}

static const AmuBluezOpClass scan_class = {
	.cancelled_error = scan_cancelled_error,
	.subscribe = scan_subscribe,
	.listed = scan_listed,
	.pick_adapter = TRUE,
	.timed_out = scan_timed_out,
};

void
amu_bluez_scan_async(const char *adapter, guint timeout_ms, AmuBluezFoundFunc found,
		     gpointer found_data, GCancellable *cancellable, GAsyncReadyCallback callback,
		     gpointer user_data)
{
	ScanData *data = g_new0(ScanData, 1);
	g_autoptr(GTask) task = amu_bluez_op_task_new(&data->op, &scan_class,
						      (GDestroyNotify)scan_data_free,
						      amu_bluez_scan_async, cancellable, callback,
						      user_data);

	data->op.adapter = g_strdup(adapter);
	data->timeout_ms = timeout_ms;
	data->found = found;
	data->found_data = found_data;
	data->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					      (GDestroyNotify)device_entry_free);
	if (adapter != NULL && !is_adapter_name(adapter, strlen(adapter))) {
		amu_bluez_op_fail(task, g_error_new(AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
						    "'%s' is not an adapter name: use hciN, e.g. "
						    "hci0",
						    adapter));
		return;
	}
	amu_bluez_op_start(task);
}

GPtrArray *
amu_bluez_scan_finish(GAsyncResult *result, GError **error)
{
	return amu_bluez_op_finish(result, error);
}
