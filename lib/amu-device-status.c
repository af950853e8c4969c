/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-private.h"
#include "amu-text.h"
#include "amu-update-private.h"
#include "amulet/amu-update.h"

/* What a device runs and how it is set up (AmuDeviceStatus), asked for and
 * changed over a session; and what the host remembers of it: the firmware
 * it last saw, the update policy, the settings an update asks the owner to
 * review (docs/update.md). */

#define KIND_UPDATE_POLICY "update-policy"
#define KIND_FIRMWARE "firmware"              /* what the device last said it runs */
#define KIND_SETTINGS_REVIEW "settings-review" /* settings an update changed the meaning of */

/* ---------------------------------------------------------------- AmuDeviceStatus */

/**
 * AmuDeviceStatus:
 *
 * What a device said it runs and how it is set up, at one moment.
 */
struct _AmuDeviceStatus {
	GObject parent_instance;
	char *version;
	guint64 sequence;
	uint8_t sha256[32];
	gboolean trial;
	char *reverted_from;
	guint64 slot_size;
	char **keys;
	GHashTable *settings;
};

G_DEFINE_TYPE(AmuDeviceStatus, amu_device_status, G_TYPE_OBJECT)

static void
amu_device_status_finalize(GObject *object)
{
	AmuDeviceStatus *self = AMU_DEVICE_STATUS(object);

	g_free(self->version);
	g_free(self->reverted_from);
	g_strfreev(self->keys);
	g_hash_table_unref(self->settings);
	G_OBJECT_CLASS(amu_device_status_parent_class)->finalize(object);
}

static void
amu_device_status_class_init(AmuDeviceStatusClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_device_status_finalize;
}

static void
amu_device_status_init(AmuDeviceStatus *self)
{
	self->settings = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

static gint
compare_keys(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

AmuDeviceStatus *
amu_device_status_new_from_message(const Amulet__V1__DeviceStatus *m, GError **error)
{
	g_autoptr(AmuDeviceStatus) self = g_object_new(AMU_TYPE_DEVICE_STATUS, NULL);
	g_autoptr(GPtrArray) keys = g_ptr_array_new();

	if (m->firmware_sha256.len != 32 || m->firmware_version == NULL || *m->firmware_version == '\0') {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "the device's status names no firmware version or digest");
		return NULL;
	}
	self->version = amu_text_printable(m->firmware_version);
	self->sequence = m->firmware_sequence;
	memcpy(self->sha256, m->firmware_sha256.data, 32);
	self->trial = m->trial;
	if (m->reverted_from != NULL && *m->reverted_from != '\0')
		self->reverted_from = amu_text_printable(m->reverted_from);
	self->slot_size = m->slot_size;
	for (size_t i = 0; i < m->n_settings; i++) {
		const Amulet__V1__Setting *setting = m->settings[i];
		char *key;
		if (setting->key == NULL || *setting->key == '\0' || setting->value == NULL)
			continue;
		key = amu_text_printable(setting->key);
		if (g_hash_table_contains(self->settings, key)) {
			g_free(key);
			continue;
		}
		g_hash_table_insert(self->settings, key, amu_text_printable(setting->value));
		g_ptr_array_add(keys, key);
	}
	g_ptr_array_sort(keys, compare_keys);
	self->keys = g_new0(char *, keys->len + 1);
	for (guint i = 0; i < keys->len; i++)
		self->keys[i] = g_strdup(*(const char **)&keys->pdata[i]);
	return g_steal_pointer(&self);
}

const char *
amu_device_status_get_firmware_version(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), NULL);
	return self->version;
}

guint64
amu_device_status_get_firmware_sequence(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), 0);
	return self->sequence;
}

/**
 * amu_device_status_get_firmware_sha256:
 * Returns: (transfer full): the running image's SHA-256, in hex
 * Since: 0.1
 */
char *
amu_device_status_get_firmware_sha256(AmuDeviceStatus *self)
{
	char hex[65];

	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), NULL);
	sodium_bin2hex(hex, sizeof(hex), self->sha256, sizeof(self->sha256));
	return g_strdup(hex);
}

const uint8_t *
amu_device_status_get_sha256_raw(AmuDeviceStatus *self)
{
	return self->sha256;
}

gboolean
amu_device_status_is_trial(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), FALSE);
	return self->trial;
}

/**
 * amu_device_status_get_reverted_from:
 * Returns: (nullable): the version the device could not run and left, if any
 * Since: 0.1
 */
const char *
amu_device_status_get_reverted_from(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), NULL);
	return self->reverted_from;
}

guint64
amu_device_status_get_slot_size(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), 0);
	return self->slot_size;
}

/**
 * amu_device_status_get_setting_keys:
 * Returns: (transfer none) (array zero-terminated=1): the setting names, sorted
 * Since: 0.1
 */
const char *const *
amu_device_status_get_setting_keys(AmuDeviceStatus *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), NULL);
	return (const char *const *)self->keys;
}

const char *
amu_device_status_get_setting(AmuDeviceStatus *self, const char *key)
{
	g_return_val_if_fail(AMU_IS_DEVICE_STATUS(self), NULL);
	return g_hash_table_lookup(self->settings, key);
}

/* ---------------------------------------------------------------- what the host remembers */

gboolean
amu_device_get_known_firmware(AmuDevice *device, char **version, guint64 *sequence)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	g_autoptr(GBytes) blob = amu_store_get(store, KIND_FIRMWARE, amu_device_get_id(device), NULL);
	g_autoptr(GVariant) record = NULL;
	const char *v = NULL;
	guint64 seq = 0;

	if (blob == NULL)
		return FALSE;
	record = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE("(stb)"), blob, FALSE));
	g_variant_get(record, "(&stb)", &v, &seq, NULL);
	if (version != NULL)
		*version = g_strdup(v);
	if (sequence != NULL)
		*sequence = seq;
	return TRUE;
}

gboolean
amu_device_known_firmware_is_trial(AmuDevice *device)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	g_autoptr(GBytes) blob = amu_store_get(store, KIND_FIRMWARE, amu_device_get_id(device), NULL);
	g_autoptr(GVariant) record = NULL;
	gboolean trial = FALSE;

	if (blob == NULL)
		return FALSE;
	record = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE("(stb)"), blob, FALSE));
	g_variant_get(record, "(&stb)", NULL, NULL, &trial);
	return trial;
}

gboolean
amu_device_remember_firmware(AmuDevice *device, AmuDeviceStatus *status, GError **error)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	g_autoptr(GVariant) record =
		g_variant_ref_sink(g_variant_new("(stb)", status->version, status->sequence, status->trial));

	return amu_store_put(store, KIND_FIRMWARE, amu_device_get_id(device), g_variant_get_data(record),
			     g_variant_get_size(record), error);
}

AmuUpdatePolicy
amu_device_get_update_policy(AmuDevice *device)
{
	AmuStore *store;
	g_autoptr(GBytes) blob = NULL;
	const uint8_t *data;

	g_return_val_if_fail(AMU_IS_DEVICE(device), AMU_UPDATE_POLICY_OFF);
	store = amu_context_get_store(amu_device_get_context(device));
	blob = amu_store_get(store, KIND_UPDATE_POLICY, amu_device_get_id(device), NULL);
	if (blob == NULL || g_bytes_get_size(blob) != 1)
		return AMU_UPDATE_POLICY_OFF;
	data = g_bytes_get_data(blob, NULL);
	return data[0] <= AMU_UPDATE_POLICY_ALL ? (AmuUpdatePolicy)data[0] : AMU_UPDATE_POLICY_OFF;
}

/**
 * amu_device_set_update_policy:
 *
 * Stores whether updates may install without asking (see #AmuUpdatePolicy).
 * The owner can refuse any update whatever the policy.
 *
 * Since: 0.1
 */
gboolean
amu_device_set_update_policy(AmuDevice *device, AmuUpdatePolicy policy, GError **error)
{
	uint8_t value = (uint8_t)policy;

	g_return_val_if_fail(AMU_IS_DEVICE(device), FALSE);
	if (policy > AMU_UPDATE_POLICY_ALL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "unknown update policy %d", (int)policy);
		return FALSE;
	}
	return amu_store_put(amu_context_get_store(amu_device_get_context(device)), KIND_UPDATE_POLICY,
			     amu_device_get_id(device), &value, 1, error);
}

const char *
amu_update_policy_to_string(AmuUpdatePolicy policy)
{
	switch (policy) {
	case AMU_UPDATE_POLICY_OFF:
		return "off";
	case AMU_UPDATE_POLICY_SECURITY:
		return "security";
	case AMU_UPDATE_POLICY_ALL:
		return "all";
	}
	return "off";
}

gboolean
amu_update_policy_from_string(const char *text, AmuUpdatePolicy *policy)
{
	for (int p = AMU_UPDATE_POLICY_OFF; p <= AMU_UPDATE_POLICY_ALL; p++) {
		if (g_strcmp0(text, amu_update_policy_to_string(p)) == 0) {
			*policy = p;
			return TRUE;
		}
	}
	return FALSE;
}

gboolean
amu_update_policy_allows(AmuUpdatePolicy policy, AmuFirmwareUpdate *update)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(update), FALSE);
	return policy == AMU_UPDATE_POLICY_ALL ||
	       (policy == AMU_UPDATE_POLICY_SECURITY && amu_firmware_update_is_security(update));
}

/**
 * amu_device_get_settings_to_review:
 * @version: (out) (optional): the firmware version that changed them
 * Returns: (transfer full) (nullable): settings an installed update changed the meaning of, not reviewed yet
 * Since: 0.1
 */
char **
amu_device_get_settings_to_review(AmuDevice *device, char **version)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	g_autoptr(GBytes) blob = amu_store_get(store, KIND_SETTINGS_REVIEW, amu_device_get_id(device), NULL);
	g_autoptr(GVariant) record = NULL;
	const char *v = NULL;
	char **keys = NULL;

	if (blob == NULL)
		return NULL;
	record = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE("(sas)"), blob, FALSE));
	g_variant_get(record, "(&s^as)", &v, &keys);
	if (version != NULL)
		*version = g_strdup(v);
	return keys;
}

gboolean
amu_device_set_settings_review(AmuDevice *device, const char *version, const char *const *keys, GError **error)
{
	g_autoptr(GVariant) record = g_variant_ref_sink(g_variant_new("(s^as)", version, keys));

	return amu_store_put(amu_context_get_store(amu_device_get_context(device)), KIND_SETTINGS_REVIEW,
			     amu_device_get_id(device), g_variant_get_data(record), g_variant_get_size(record), error);
}

gboolean
amu_device_clear_settings_review(AmuDevice *device, GError **error)
{
	return amu_store_delete(amu_context_get_store(amu_device_get_context(device)), KIND_SETTINGS_REVIEW,
				amu_device_get_id(device), error);
}

void
amu_device_notify_settings_review(AmuDevice *self)
{
	g_autofree char *version = NULL;
	g_auto(GStrv) keys = amu_device_get_settings_to_review(self, &version);
	g_autofree char *list = NULL;
	g_autofree char *message = NULL;

	if (keys == NULL || keys[0] == NULL)
		return;
	list = g_strjoinv(", ", keys);
	message = g_strdup_printf("firmware %s changed what these settings of %s mean: %s; "
				  "review them with: amulet settings %s",
				  version, amu_device_get_name(self), list, amu_device_get_name(self));
	amu_context_notify(amu_device_get_context(self), AMU_NOTIFICATION_SETTINGS_REVIEW, amu_device_get_name(self),
			   message);
}

/* ---------------------------------------------------------------- status and settings */

typedef struct {
	AmuSession *session;
	char **keys;
	char **values;
	gboolean change;
} StatusData;

static void
status_data_free(StatusData *data)
{
	g_clear_object(&data->session);
	g_strfreev(data->keys);
	g_strfreev(data->values);
	g_free(data);
}

static void
status_reply_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	AmuDevice *device = g_task_get_source_object(task);
	GError *error = NULL;
	AmuDeviceStatus *status = amu_session_status_finish(AMU_SESSION(source), result, &error);

	if (status == NULL) {
		g_task_return_error(task, error);
		return;
	}
	if (!amu_device_remember_firmware(device, status, &error))
		g_debug("cannot store the device's firmware version: %s", error->message), g_clear_error(&error);
	g_task_return_pointer(task, status, g_object_unref);
}

static void
status_connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	StatusData *data = g_task_get_task_data(task);
	GError *error = NULL;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__StatusRequest request = AMULET__V1__STATUS_REQUEST__INIT;
	Amulet__V1__SettingsChange change = AMULET__V1__SETTINGS_CHANGE__INIT;
	g_autofree Amulet__V1__Setting *settings = NULL;
	g_autofree Amulet__V1__Setting **setting_ptrs = NULL;

	data->session = amu_device_connect_finish(AMU_DEVICE(source), result, &error);
	if (data->session == NULL) {
		g_task_return_error(task, error);
		return;
	}
	if (data->change) {
		guint n = g_strv_length(data->keys);
		settings = g_new0(Amulet__V1__Setting, n);
		setting_ptrs = g_new0(Amulet__V1__Setting *, n);
		for (guint i = 0; i < n; i++) {
			amulet__v1__setting__init(&settings[i]);
			settings[i].key = data->keys[i];
			settings[i].value = data->values[i];
			setting_ptrs[i] = &settings[i];
		}
		change.n_settings = n;
		change.settings = setting_ptrs;
		message.body_case = AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE;
		message.settings_change = &change;
	} else {
		message.body_case = AMULET__V1__MESSAGE__BODY_STATUS_REQUEST;
		message.status_request = &request;
	}
	amu_session_status_async(data->session, &message, g_task_get_cancellable(task), status_reply_cb,
			     g_object_ref(task));
}

/**
 * amu_device_get_status_async:
 *
 * Connects and asks the device what firmware it runs and how it is set up.
 *
 * Since: 0.1
 */
void
amu_device_get_status_async(AmuDevice *device, GCancellable *cancellable, GAsyncReadyCallback callback,
			    gpointer user_data)
{
	GTask *task;

	g_return_if_fail(AMU_IS_DEVICE(device));
	task = g_task_new(device, cancellable, callback, user_data);
	g_task_set_task_data(task, g_new0(StatusData, 1), (GDestroyNotify)status_data_free);
	amu_device_connect_async(device, cancellable, status_connected_cb, task);
}

AmuDeviceStatus *
amu_device_get_status_finish(AmuDevice *device, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, device), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

AmuDeviceStatus *
amu_device_get_status(AmuDevice *device, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_device_get_status_async(device, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_device_get_status_finish(device, result, error);
}

/**
 * amu_device_change_settings_async:
 * @keys: (array zero-terminated=1): setting names
 * @values: (array zero-terminated=1): their new values, as many as @keys
 *
 * Changes user settings on the device, all or none: the device checks every
 * value first and refuses the lot with %AMU_ERROR_INVALID_ARGUMENT, naming
 * what it accepts, if one is wrong.
 *
 * Since: 0.1
 */
void
amu_device_change_settings_async(AmuDevice *device, const char *const *keys, const char *const *values,
				 GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
	GTask *task;
	StatusData *data;

	g_return_if_fail(AMU_IS_DEVICE(device));
	g_return_if_fail(keys != NULL && values != NULL);
	task = g_task_new(device, cancellable, callback, user_data);
	data = g_new0(StatusData, 1);
	g_task_set_task_data(task, data, (GDestroyNotify)status_data_free);
	if (g_strv_length((char **)keys) != g_strv_length((char **)values) || keys[0] == NULL) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					"give each setting as KEY=VALUE, at least one");
		g_object_unref(task);
		return;
	}
	data->change = TRUE;
	data->keys = g_strdupv((char **)keys);
	data->values = g_strdupv((char **)values);
	amu_device_connect_async(device, cancellable, status_connected_cb, task);
}

AmuDeviceStatus *
amu_device_change_settings_finish(AmuDevice *device, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, device), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

AmuDeviceStatus *
amu_device_change_settings(AmuDevice *device, const char *const *keys, const char *const *values,
			   GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_device_change_settings_async(device, keys, values, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_device_change_settings_finish(device, result, error);
}
