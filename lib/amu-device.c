/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "amu-private.h"

/**
 * AmuDevice:
 *
 * A bonded device: its name, address, static key and the disclosure it gave
 * at pairing. Connect to it with amu_device_connect_async().
 */
struct _AmuDevice {
	GObject parent_instance;
	AmuContext *context;
	char *name;
	char *id;
	char *address;
	char *profile;
	gboolean has_display;
	uint8_t public_key[AMU_CHANNEL_KEYBYTES];
	AmuDisclosure *disclosure;
	gint64 paired_time;
};

G_DEFINE_TYPE(AmuDevice, amu_device, G_TYPE_OBJECT)

#define RECORD_TYPE "(sssssbayayx)"

static void
amu_device_finalize(GObject *object)
{
	AmuDevice *self = AMU_DEVICE(object);

	g_clear_object(&self->context);
	g_clear_object(&self->disclosure);
	g_free(self->name);
	g_free(self->id);
	g_free(self->address);
	g_free(self->profile);
	G_OBJECT_CLASS(amu_device_parent_class)->finalize(object);
}

static void
amu_device_class_init(AmuDeviceClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_device_finalize;
}

static void
amu_device_init(AmuDevice *self)
{
}

const char *
amu_profile_to_string(Amulet__V1__Profile profile)
{
	switch (profile) {
	case AMULET__V1__PROFILE__BAND:
		return "band";
	case AMULET__V1__PROFILE__WATCH:
		return "watch";
	case AMULET__V1__PROFILE__TOY:
		return "toy";
	case AMULET__V1__PROFILE__PROFILE_UNSPECIFIED:
	case _AMULET__V1__PROFILE_IS_INT_SIZE:
		break;
	}
	return "unknown";
}

AmuDevice *
amu_device_new(AmuContext *context, const char *name, const char *address, AmuChannel *channel)
{
	AmuDevice *self = g_object_new(AMU_TYPE_DEVICE, NULL);
	const Amulet__V1__DeviceHello *hello = amu_channel_get_device_hello(channel);
	const Amulet__V1__Disclosure *disclosure = amu_channel_get_disclosure(channel);

	self->context = g_object_ref(context);
	self->name = g_strdup(name);
	self->address = g_strdup(address);
	self->id = g_malloc(hello->device_id.len * 2 + 1);
	sodium_bin2hex(self->id, hello->device_id.len * 2 + 1, hello->device_id.data, hello->device_id.len);
	self->profile = g_strdup(amu_profile_to_string(hello->profile));
	self->has_display = hello->has_display;
	amu_channel_get_remote_static(channel, self->public_key);
	self->paired_time = g_get_real_time() / G_USEC_PER_SEC;
	if (disclosure != NULL)
		self->disclosure = amu_disclosure_new_from_message(disclosure);
	return self;
}

AmuDevice *
amu_device_new_from_record(AmuContext *context, GBytes *record, GError **error)
{
	g_autoptr(GVariant) variant = g_variant_ref_sink(
		g_variant_new_from_bytes(G_VARIANT_TYPE(RECORD_TYPE), record, FALSE));
	g_autoptr(AmuDevice) self = g_object_new(AMU_TYPE_DEVICE, NULL);
	g_autoptr(GVariant) key = NULL;
	g_autoptr(GVariant) disclosure = NULL;
	gsize key_len = 0;
	const void *key_data;

	if (!g_variant_is_normal_form(variant)) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_STORE, "a bond record is malformed");
		return NULL;
	}
	self->context = g_object_ref(context);
	g_variant_get(variant, RECORD_TYPE, &self->name, &self->id, &self->address, &self->profile, NULL,
		      &self->has_display, NULL, NULL, &self->paired_time);
	/* the unused slot above is reserved for a link-specific address extra */
	key = g_variant_get_child_value(variant, 6);
	disclosure = g_variant_get_child_value(variant, 7);
	key_data = g_variant_get_fixed_array(key, &key_len, 1);
	if (key_len != AMU_CHANNEL_KEYBYTES) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_STORE, "a bond record has a malformed key");
		return NULL;
	}
	memcpy(self->public_key, key_data, AMU_CHANNEL_KEYBYTES);
	if (g_variant_get_size(disclosure) > 0) {
		g_autoptr(GBytes) packed = g_variant_get_data_as_bytes(disclosure);
		self->disclosure = amu_disclosure_new_from_bytes(packed);
	}
	return g_steal_pointer(&self);
}

GBytes *
amu_device_to_record(AmuDevice *self)
{
	GBytes *disclosure = self->disclosure != NULL ? amu_disclosure_get_packed(self->disclosure) : NULL;
	gsize disclosure_len = 0;
	const void *disclosure_data = disclosure != NULL ? g_bytes_get_data(disclosure, &disclosure_len) : NULL;
	g_autoptr(GVariant) variant = g_variant_ref_sink(g_variant_new(
		"(sssssb@ay@ayx)", self->name, self->id, self->address, self->profile, "", self->has_display,
		g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, self->public_key, AMU_CHANNEL_KEYBYTES, 1),
		g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, disclosure_data != NULL ? disclosure_data : "",
					  disclosure_len, 1),
		self->paired_time));
	return g_variant_get_data_as_bytes(variant);
}

const uint8_t *
amu_device_get_public_key(AmuDevice *self)
{
	return self->public_key;
}

AmuContext *
amu_device_get_context(AmuDevice *self)
{
	return self->context;
}

/**
 * amu_device_get_name:
 * Returns: (transfer none): the owner's name for the device
 * Since: 0.1
 */
const char *
amu_device_get_name(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return self->name;
}

/**
 * amu_device_get_id:
 * Returns: (transfer none): the device's id (32 hex digits), stable until a factory reset
 * Since: 0.1
 */
const char *
amu_device_get_id(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return self->id;
}

/**
 * amu_device_get_address:
 * Returns: (transfer none): how to reach it, e.g. "sim:/run/band.sock"
 * Since: 0.1
 */
const char *
amu_device_get_address(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return self->address;
}

/**
 * amu_device_get_profile:
 * Returns: (transfer none): "band", "watch" or "toy"
 * Since: 0.1
 */
const char *
amu_device_get_profile(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return self->profile;
}

gboolean
amu_device_has_display(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), FALSE);
	return self->has_display;
}

/**
 * amu_device_get_fingerprint:
 * Returns: (transfer full): the fingerprint of the device's bonded static key
 * Since: 0.1
 */
char *
amu_device_get_fingerprint(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return amu_fingerprint_from_key(self->public_key);
}

gint64
amu_device_get_paired_time(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), 0);
	return self->paired_time;
}

/**
 * amu_device_get_disclosure:
 * Returns: (transfer none) (nullable): the disclosure accepted at pairing
 * Since: 0.1
 */
AmuDisclosure *
amu_device_get_disclosure(AmuDevice *self)
{
	g_return_val_if_fail(AMU_IS_DEVICE(self), NULL);
	return self->disclosure;
}

/* ---------------------------------------------------------------- connect */

/**
 * amu_device_get_support_warning:
 * @warning: (out) (optional): what to tell the owner
 *
 * Whether the end of support the device disclosed (OTA 19) is less than 90
 * days away, or past: after it the device gets no security updates.
 *
 * Returns: %TRUE if the owner should be warned
 * Since: 0.1
 */
gboolean
amu_device_get_support_warning(AmuDevice *self, char **warning)
{
	const char *end = self->disclosure != NULL ? amu_disclosure_get_support_end_date(self->disclosure) : NULL;
	g_autoptr(GDateTime) end_time = NULL;
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();
	GTimeSpan left;
	int y, m, d;

	g_return_val_if_fail(AMU_IS_DEVICE(self), FALSE);
	if (end == NULL || sscanf(end, "%4d-%2d-%2d", &y, &m, &d) != 3)
		return FALSE;
	end_time = g_date_time_new_utc(y, m, d, 0, 0, 0);
	if (end_time == NULL)
		return FALSE;
	left = g_date_time_difference(end_time, now);
	if (left >= (GTimeSpan)90 * G_TIME_SPAN_DAY)
		return FALSE;
	if (warning != NULL)
		*warning = left <= 0 ? g_strdup_printf("%s's support ended on %s: it gets no more security updates",
						       self->name, end)
				     : g_strdup_printf("%s's support ends on %s, in %" G_GINT64_FORMAT
						       " days: after that it gets no security updates",
						       self->name, end, (gint64)(left / G_TIME_SPAN_DAY) + 1);
	return TRUE;
}

/* what the owner should hear about at each connection (OTA 16, 39) */
static void
connect_notify(AmuDevice *self, AmuSession *session)
{
	const char *old_policy = NULL, *new_policy = NULL;
	g_autofree char *warning = NULL;

	if (amu_session_get_policy_changed(session, &old_policy, &new_policy)) {
		g_autofree char *message = g_strdup_printf(
			"%s's privacy policy changed from version %s to %s since pairing: review it", self->name, old_policy,
			new_policy);
		amu_context_notify(self->context, AMU_NOTIFICATION_CREDENTIAL_CHANGED, self->name, message);
	}
	amu_device_notify_settings_review(self);
	if (amu_device_get_support_warning(self, &warning))
		amu_context_notify(self->context, AMU_NOTIFICATION_SUPPORT_ENDING, self->name, warning);
}

typedef struct {
	AmuConnection *connection;
	AmuChannel *channel;
	GCancellable *cancellable;
	gulong cancelled_id;
	gboolean raw; /* do not run a queued command */
} ConnectData;

static void
connect_data_free(ConnectData *data)
{
	if (data->cancelled_id != 0)
		g_cancellable_disconnect(data->cancellable, data->cancelled_id);
	g_clear_object(&data->cancellable);
	g_clear_pointer(&data->connection, amu_connection_unref);
	g_clear_pointer(&data->channel, amu_channel_unref);
	g_free(data);
}

static void connect_pending_cb(GObject *source, GAsyncResult *result, gpointer user_data);

static void
connect_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	GTask *task = user_data;
	AmuDevice *self = g_task_get_source_object(task);
	ConnectData *data = g_task_get_task_data(task);

	switch (event->type) {
	case AMU_CHANNEL_EVENT_OPEN: {
		/* the session takes over the channel's events */
		g_autoptr(AmuSession) session = amu_session_new(self, data->connection);
		connect_notify(self, session);
		if (!data->raw && amu_device_run_pending(self, session, connect_pending_cb, task))
			return;
		g_task_return_pointer(task, g_steal_pointer(&session), g_object_unref);
		g_object_unref(task);
		return;
	}
	case AMU_CHANNEL_EVENT_FAILED: {
		g_autoptr(GError) error = NULL;
		amu_channel_set_event_func(channel, NULL, NULL);
		if (!data->raw && g_error_matches(event->error, AMU_ERROR, AMU_ERROR_UNKNOWN_PEER) &&
		    amu_device_finish_pending_after_reset(self, &error)) {
			g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_NOT_FOUND,
						"%s had already carried out the queued command; it is now removed from "
						"this host too",
						self->name);
		} else if (g_error_matches(event->error, AMU_ERROR, AMU_ERROR_KEY_CHANGED)) {
			g_autofree char *message = g_strdup_printf(
				"%s answered with another key than the one bonded: refused; if it was reset, unpair "
				"and pair it again",
				self->name);
			amu_context_notify(self->context, AMU_NOTIFICATION_CREDENTIAL_CHANGED, self->name, message);
			g_task_return_error(task, g_error_copy(event->error));
		} else {
			g_task_return_error(task, g_error_copy(event->error));
		}
		g_object_unref(task);
		return;
	}
	case AMU_CHANNEL_EVENT_PAIRING_ATTEMPT:
	case AMU_CHANNEL_EVENT_CODE:
	case AMU_CHANNEL_EVENT_PAIRED:
	case AMU_CHANNEL_EVENT_MESSAGE:
		return;
	}
}

static void
connect_pending_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GTask *task = user_data;
	AmuDevice *self = AMU_DEVICE(source);
	GError *error = NULL;
	const char *what = "the queued command";
	g_autoptr(GBytes) still_bonded = amu_store_get(amu_context_get_store(self->context), "bond", self->id, NULL);

	if (!g_task_propagate_boolean(G_TASK(result), &error)) {
		g_prefix_error(&error, "running %s: ", what);
		g_task_return_error(task, error);
	} else if (still_bonded != NULL) {
		/* a wipe that kept this host's copy: the device is still ours */
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_DISCONNECTED,
					"the wipe queued for %s ran at this connection (this host keeps its data); "
					"connect again",
					self->name);
	} else {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_NOT_FOUND,
					"the command queued for %s ran at this connection; the device is no longer "
					"available to this host",
					self->name);
	}
	g_object_unref(task);
}

static void
connect_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	ConnectData *data = user_data;
	g_autoptr(GError) error = g_error_new_literal(AMU_ERROR, AMU_ERROR_CANCELLED, "connecting was cancelled");

	amu_channel_abort(data->channel, error);
}

static void
connect_link_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GTask *task = user_data;
	AmuDevice *self = g_task_get_source_object(task);
	ConnectData *data = g_task_get_task_data(task);
	Amulet__V1__HostHello hello = AMULET__V1__HOST_HELLO__INIT;
	uint8_t owner_key[32];
	g_autoptr(AmuLink) link = NULL;
	GError *error = NULL;

	link = amu_context_open_link_finish(self->context, result, &error);
	if (link == NULL) {
		g_prefix_error(&error, "connecting to %s: ", self->name);
		g_task_return_error(task, error);
		g_object_unref(task);
		return;
	}
	data->channel = amu_channel_new(AMU_CHANNEL_ROLE_HOST, NULL, NULL);
	amu_channel_set_local_static(data->channel, amu_context_get_static_secret(self->context));
	hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
	hello.host_name = (char *)amu_context_get_host_name(self->context);
	amu_context_get_signing_keys(self->context, owner_key, NULL);
	hello.owner_sign_key.data = owner_key;
	hello.owner_sign_key.len = sizeof(owner_key);
	amu_channel_set_host_hello(data->channel, &hello);
	data->connection = amu_connection_new(link, data->channel, AMU_FRAMER_ROLE_CENTRAL);
	amu_channel_set_event_func(data->channel, connect_event_cb, task);
	if (data->cancellable != NULL)
		data->cancelled_id =
			g_cancellable_connect(data->cancellable, G_CALLBACK(connect_cancelled_cb), data, NULL);
	if (!amu_connection_start(data->connection, &error)) {
		amu_channel_abort(data->channel, error);
		g_clear_error(&error);
		return;
	}
	amu_channel_start(data->channel, AMU_CHANNEL_MODE_RECONNECT, self->public_key, NULL);
}

static void
connect_start(AmuDevice *self, gboolean raw, GCancellable *cancellable, GAsyncReadyCallback callback,
	      gpointer user_data)
{
	GTask *task = g_task_new(self, cancellable, callback, user_data);
	ConnectData *data = g_new0(ConnectData, 1);

	g_task_set_source_tag(task, amu_device_connect_async);
	g_task_set_task_data(task, data, (GDestroyNotify)connect_data_free);
	data->raw = raw;
	if (cancellable != NULL)
		data->cancellable = g_object_ref(cancellable);
	amu_context_open_link_async(self->context, self->address, FALSE, NULL, NULL, cancellable, connect_link_cb,
				    task);
}

/**
 * amu_device_connect_async:
 * @cancellable: (nullable): a #GCancellable
 *
 * Reconnects with the bonded keys (Noise KK, fresh ephemeral keys each time).
 * A device that no longer holds the bonded key fails with
 * %AMU_ERROR_KEY_CHANGED; one that forgot this host with %AMU_ERROR_UNKNOWN_PEER.
 * A wipe or transfer queued for the device runs first, and the connect then
 * fails with %AMU_ERROR_NOT_FOUND saying so.
 *
 * Since: 0.1
 */
void
amu_device_connect_async(AmuDevice *self, GCancellable *cancellable, GAsyncReadyCallback callback,
			 gpointer user_data)
{
	connect_start(self, FALSE, cancellable, callback, user_data);
}

void
amu_device_connect_raw_async(AmuDevice *self, GCancellable *cancellable, GAsyncReadyCallback callback,
			     gpointer user_data)
{
	connect_start(self, TRUE, cancellable, callback, user_data);
}

AmuSession *
amu_device_connect_raw_finish(AmuDevice *self, GAsyncResult *result, GError **error)
{
	return amu_device_connect_finish(self, result, error);
}

/**
 * amu_device_connect_finish:
 * Returns: (transfer full): an open #AmuSession, or %NULL with @error set
 * Since: 0.1
 */
AmuSession *
amu_device_connect_finish(AmuDevice *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

/**
 * amu_device_connect:
 *
 * The synchronous form of amu_device_connect_async(). The session's I/O runs
 * on the thread-default main context of the caller; the session's own sync
 * calls iterate it.
 *
 * Returns: (transfer full): an open #AmuSession, or %NULL with @error set
 * Since: 0.1
 */
AmuSession *
amu_device_connect(AmuDevice *self, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;
	GMainContext *context = g_main_context_ref_thread_default();
	AmuSession *session;

	amu_device_connect_async(self, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(context, TRUE);
	session = amu_device_connect_finish(self, result, error);
	g_main_context_unref(context);
	return session;
}
