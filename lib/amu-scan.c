/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-bluez.h"
#include "amu-private.h"
#include "amulet/amu-scan.h"

/**
 * AmuScanResult:
 *
 * An Amulet device seen in radio range by amu_context_scan_async(): the
 * address to pair with, what it advertises, and its signal strength.
 */
struct _AmuScanResult {
	GObject parent_instance;
	char *address; /* "bluez:hciN/AA:BB:CC:DD:EE:FF" */
	char *name;
	gboolean has_rssi;
	gint16 rssi;
	const char *profile; /* static */
	gboolean pairing_mode;
	gboolean paired;
};

G_DEFINE_TYPE(AmuScanResult, amu_scan_result, G_TYPE_OBJECT)

static void
amu_scan_result_finalize(GObject *object)
{
	AmuScanResult *self = AMU_SCAN_RESULT(object);

	g_free(self->address);
	g_free(self->name);
	G_OBJECT_CLASS(amu_scan_result_parent_class)->finalize(object);
}

static void
amu_scan_result_class_init(AmuScanResultClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_scan_result_finalize;
}

static void
amu_scan_result_init(AmuScanResult *self)
{
}

static AmuScanResult *
scan_result_new(const AmuBluezDevice *device)
{
	AmuScanResult *self = g_object_new(AMU_TYPE_SCAN_RESULT, NULL);

	self->address = g_strdup_printf("bluez:%s/%s", device->adapter, device->address);
	self->name = device->name != NULL ? g_strdup(device->name) : NULL;
	self->has_rssi = device->has_rssi;
	self->rssi = device->rssi;
	self->profile = device->profile;
	self->pairing_mode = device->pairing_mode;
	self->paired = device->paired;
	return self;
}

/**
 * amu_scan_result_get_address:
 * Returns: (transfer none): the address to give amu_context_pair_async(),
 *   e.g. "bluez:hci0/C4:2A:11:07:9B:30"
 * Since: 0.1
 */
const char *
amu_scan_result_get_address(AmuScanResult *self)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), NULL);
	return self->address;
}

/**
 * amu_scan_result_get_name:
 * Returns: (transfer none) (nullable): the name the device advertises
 * Since: 0.1
 */
const char *
amu_scan_result_get_name(AmuScanResult *self)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), NULL);
	return self->name;
}

/**
 * amu_scan_result_get_rssi:
 * @rssi: (out) (optional): the last signal strength, in dBm
 * Returns: %FALSE if no signal strength is known
 * Since: 0.1
 */
gboolean
amu_scan_result_get_rssi(AmuScanResult *self, gint16 *rssi)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), FALSE);
	if (self->has_rssi && rssi != NULL)
		*rssi = self->rssi;
	return self->has_rssi;
}

/**
 * amu_scan_result_get_profile:
 * Returns: (transfer none) (nullable): "band", "watch" or "toy", as advertised
 * Since: 0.1
 */
const char *
amu_scan_result_get_profile(AmuScanResult *self)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), NULL);
	return self->profile;
}

/**
 * amu_scan_result_is_pairing_mode:
 * Returns: whether the device advertises that it is open for pairing
 * Since: 0.1
 */
gboolean
amu_scan_result_is_pairing_mode(AmuScanResult *self)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), FALSE);
	return self->pairing_mode;
}

/**
 * amu_scan_result_is_paired:
 * Returns: whether this computer's Bluetooth stack holds a bond with the device
 * Since: 0.1
 */
gboolean
amu_scan_result_is_paired(AmuScanResult *self)
{
	g_return_val_if_fail(AMU_IS_SCAN_RESULT(self), FALSE);
	return self->paired;
}

typedef struct {
	AmuScanFunc found_func;
	gpointer found_data;
} ScanData;

static void
scan_found_cb(const AmuBluezDevice *device, gpointer user_data)
{
	ScanData *data = user_data;
	g_autoptr(AmuScanResult) result = scan_result_new(device);

	data->found_func(result, data->found_data);
}

static void
scan_done_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	g_autoptr(GPtrArray) devices = NULL;
	GPtrArray *results;
	GError *error = NULL;

	devices = amu_bluez_scan_finish(result, &error);
	if (devices == NULL) {
		g_task_return_error(task, error);
		return;
	}
	results = g_ptr_array_new_with_free_func(g_object_unref);
	for (guint i = 0; i < devices->len; i++)
		g_ptr_array_add(results, scan_result_new(g_ptr_array_index(devices, i)));
	g_task_return_pointer(task, results, (GDestroyNotify)g_ptr_array_unref);
}

/**
 * amu_context_scan_async:
 * @adapter: (nullable): a Bluetooth adapter such as "hci0"; %NULL for the first powered one
 * @timeout_ms: how long to listen
 * @found_func: (nullable) (scope notified): called as devices are seen
 * @cancellable: (nullable): a #GCancellable
 *
 * Lists the Amulet devices in radio range, through bluetoothd's D-Bus API:
 * LE discovery filtered on the Amulet service for @timeout_ms. Devices
 * that go away during the scan are left out. Fails with
 * %AMU_ERROR_NOT_SUPPORTED when bluetoothd is not running or the adapter is
 * off, and %AMU_ERROR_NOT_FOUND when there is no such adapter. See
 * docs/bluez.md.
 *
 * Since: 0.1
 */
void
amu_context_scan_async(AmuContext *self, const char *adapter, guint timeout_ms, AmuScanFunc found_func,
		       gpointer found_data, GCancellable *cancellable, GAsyncReadyCallback callback,
		       gpointer user_data)
{
	GTask *task;
	ScanData *data;

	g_return_if_fail(AMU_IS_CONTEXT(self));
	task = g_task_new(self, cancellable, callback, user_data);
	data = g_new0(ScanData, 1);
	data->found_func = found_func;
	data->found_data = found_data;
	g_task_set_task_data(task, data, g_free);
	amu_bluez_scan_async(adapter, timeout_ms, found_func != NULL ? scan_found_cb : NULL, data, cancellable,
			     scan_done_cb, task);
}

/**
 * amu_context_scan_finish:
 * Returns: (transfer container) (element-type AmuScanResult): the devices
 *   seen, in address order, or %NULL with @error set
 * Since: 0.1
 */
GPtrArray *
amu_context_scan_finish(AmuContext *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}
