/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>

#include "amu-private.h"
#include "amu-text.h"

/**
 * AmuSession:
 *
 * An open, encrypted session with a bonded device. Any replayed, reordered,
 * truncated or altered record ends it with a specific error.
 */
struct _AmuSession {
	GObject parent_instance;
	AmuDevice *device;
	AmuConnection *connection;
	AmuChannel *channel;
	GError *error; /* why it ended */
	GHashTable *pings; /* token -> GTask */
	char *old_policy;
	char *new_policy;
	AmuSessionSync *sync; /* the sync in progress, amu-session-sync.c */
	GTask *command; /* the owner command waiting for its receipt, amu-device-command.c */
	gpointer update; /* the status request or upload under way, amu-device-update.c */
};

G_DEFINE_TYPE(AmuSession, amu_session, G_TYPE_OBJECT)

static void
fail_pending(AmuSession *self)
{
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init(&iter, self->pings);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		GTask *task = value;
		g_hash_table_iter_steal(&iter);
		g_task_return_error(task, g_error_copy(self->error));
		g_object_unref(task);
	}
}

static void
session_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	AmuSession *self = user_data;

	switch (event->type) {
	case AMU_CHANNEL_EVENT_MESSAGE:
		if (amu_session_command_rx(self, event->message))
			return;
		if (amu_session_sync_rx(self, event->message))
			return;
		if (amu_session_update_rx(self, event->message))
			return;
		if (event->message->body_case == AMULET__V1__MESSAGE__BODY_PONG) {
			GTask *task = NULL;
			guint64 token = event->message->pong->token;
			if (g_hash_table_steal_extended(self->pings, &token, NULL, (gpointer *)&task)) {
				g_task_return_boolean(task, TRUE);
				g_object_unref(task);
			}
		}
		return;
	case AMU_CHANNEL_EVENT_FAILED:
		if (self->error == NULL)
			self->error = g_error_copy(event->error);
		amu_connection_close(self->connection);
		fail_pending(self);
		amu_session_sync_fail(self, self->error);
		amu_session_command_fail(self, self->error);
		amu_session_update_fail(self, self->error);
		return;
	case AMU_CHANNEL_EVENT_PAIRING_ATTEMPT:
	case AMU_CHANNEL_EVENT_CODE:
	case AMU_CHANNEL_EVENT_PAIRED:
	case AMU_CHANNEL_EVENT_OPEN:
		return;
	}
}

static void
amu_session_dispose(GObject *object)
{
	AmuSession *self = AMU_SESSION(object);

	if (self->channel != NULL) {
		amu_channel_set_event_func(self->channel, NULL, NULL);
		amu_connection_close(self->connection);
	}
	G_OBJECT_CLASS(amu_session_parent_class)->dispose(object);
}

static void
amu_session_finalize(GObject *object)
{
	AmuSession *self = AMU_SESSION(object);

	g_hash_table_unref(self->pings);
	g_clear_pointer(&self->connection, amu_connection_unref);
	g_clear_pointer(&self->channel, amu_channel_unref);
	g_clear_object(&self->device);
	g_clear_error(&self->error);
	g_free(self->old_policy);
	g_free(self->new_policy);
	G_OBJECT_CLASS(amu_session_parent_class)->finalize(object);
}

static void
amu_session_class_init(AmuSessionClass *klass)
{
	G_OBJECT_CLASS(klass)->dispose = amu_session_dispose;
	G_OBJECT_CLASS(klass)->finalize = amu_session_finalize;
}

static void
amu_session_init(AmuSession *self)
{
	self->pings = g_hash_table_new(g_int64_hash, g_int64_equal);
}

AmuSession *
amu_session_new(AmuDevice *device, AmuConnection *connection)
{
	AmuSession *self = g_object_new(AMU_TYPE_SESSION, NULL);
	AmuDisclosure *disclosure = amu_device_get_disclosure(device);
	const Amulet__V1__DeviceHello *hello;

	self->device = g_object_ref(device);
	self->connection = amu_connection_ref(connection);
	self->channel = amu_channel_ref(amu_connection_get_channel(connection));
	amu_channel_set_event_func(self->channel, session_event_cb, self);
	hello = amu_channel_get_device_hello(self->channel);
	if (disclosure != NULL && hello != NULL &&
	    g_strcmp0(hello->privacy_policy_version, amu_disclosure_get_privacy_policy_version(disclosure)) != 0) {
		self->old_policy = g_strdup(amu_disclosure_get_privacy_policy_version(disclosure));
		self->new_policy = amu_text_printable(hello->privacy_policy_version);
	}
	return self;
}

gpointer *
amu_session_get_update_slot(AmuSession *self)
{
	return &self->update;
}

AmuChannel *
amu_session_get_channel(AmuSession *self)
{
	return self->channel;
}

const GError *
amu_session_get_error(AmuSession *self)
{
	return self->error;
}

AmuSessionSync **
amu_session_get_sync_slot(AmuSession *self)
{
	return &self->sync;
}

GTask **
amu_session_get_command_slot(AmuSession *self)
{
	return &self->command;
}

/**
 * amu_session_get_device:
 * Returns: (transfer none): the device this session is with
 * Since: 0.1
 */
AmuDevice *
amu_session_get_device(AmuSession *self)
{
	g_return_val_if_fail(AMU_IS_SESSION(self), NULL);
	return self->device;
}

gboolean
amu_session_is_open(AmuSession *self)
{
	g_return_val_if_fail(AMU_IS_SESSION(self), FALSE);
	return self->error == NULL && amu_channel_get_state(self->channel) == AMU_CHANNEL_STATE_OPEN;
}

/**
 * amu_session_get_policy_changed:
 * @old_version: (out) (optional) (transfer none): the version accepted at pairing
 * @new_version: (out) (optional) (transfer none): the version the device states now
 *
 * Returns: %TRUE if the device's privacy policy version changed since pairing
 * Since: 0.1
 */
gboolean
amu_session_get_policy_changed(AmuSession *self, const char **old_version, const char **new_version)
{
	g_return_val_if_fail(AMU_IS_SESSION(self), FALSE);
	if (old_version != NULL)
		*old_version = self->old_policy;
	if (new_version != NULL)
		*new_version = self->new_policy;
	return self->new_policy != NULL;
}

/**
 * amu_session_ping_async:
 * @padding: bytes of padding to send and get back (a round trip of that size)
 *
 * Sends a ping through the encrypted session and waits for the answer.
 *
 * Since: 0.1
 */
void
amu_session_ping_async(AmuSession *self, gsize padding, GCancellable *cancellable,
		       GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(self, cancellable, callback, user_data);
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__Ping ping = AMULET__V1__PING__INIT;
	g_autofree uint8_t *pad = g_malloc0(padding + 1);
	guint64 *token = g_new(guint64, 1);
	GError *error = NULL;

	if (self->error != NULL) {
		g_task_return_error(task, g_error_copy(self->error));
		g_free(token);
		return;
	}
	randombytes_buf(token, sizeof(*token));
	g_task_set_task_data(task, token, g_free);
	ping.token = *token;
	ping.padding.data = pad;
	ping.padding.len = padding;
	message.body_case = AMULET__V1__MESSAGE__BODY_PING;
	message.ping = &ping;
	g_hash_table_insert(self->pings, token, g_object_ref(task));
	if (!amu_channel_send(self->channel, &message, &error)) {
		if (g_hash_table_steal(self->pings, token))
			g_object_unref(task);
		g_task_return_error(task, error);
	}
}

gboolean
amu_session_ping_finish(AmuSession *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

/**
 * amu_session_ping:
 *
 * The synchronous form of amu_session_ping_async(); iterates the
 * thread-default main context the session was opened on.
 *
 * Since: 0.1
 */
gboolean
amu_session_ping(AmuSession *self, gsize padding, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_session_ping_async(self, padding, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_session_ping_finish(self, result, error);
}

/**
 * amu_session_close:
 *
 * Ends the session and closes the link. Pending calls fail with
 * %AMU_ERROR_DISCONNECTED.
 *
 * Since: 0.1
 */
void
amu_session_close(AmuSession *self)
{
	g_autoptr(GError) error = g_error_new_literal(AMU_ERROR, AMU_ERROR_DISCONNECTED, "session closed");

	g_return_if_fail(AMU_IS_SESSION(self));
	amu_channel_abort(self->channel, error);
	amu_connection_close(self->connection);
}
