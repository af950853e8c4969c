/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-private.h"
#include "amu-sample-store.h"
#include "amu-sync.h"

/* One telemetry sync over an open session: amu-sync.c's host state machine
 * driven by the session's messages, with each verified batch stored (and
 * its cursor advanced) in one transaction before it is acked. See docs/sync.md. */
struct AmuSessionSync {
	AmuSession *session; /* unowned: the task holds the ref */
	GTask *task;
	AmuSyncReceiver *receiver;
	AmuStore *store;
	char *device_id;
	uint8_t *key; /* sodium_malloc'd data key of the device */
	AmuSyncProgressFunc progress_func;
	gpointer progress_data;
	AmuSyncProgress progress;
	gint64 start_us;
	GCancellable *cancellable;
	gulong cancel_id;
	guint cancel_idle;
	/* batches received and not stored yet: stored together, one commit */
	GPtrArray *queued; /* Amulet__V1__SyncBatch, unpacked copies */
	GArray *offsets;   /* int64_t clock offset of each */
	guint flush_idle;
};

static void
batch_free(Amulet__V1__SyncBatch *batch)
{
	amulet__v1__sync_batch__free_unpacked(batch, NULL);
}

static void
sync_free(AmuSessionSync *sync)
{
	if (sync->cancel_id != 0)
		g_cancellable_disconnect(sync->cancellable, sync->cancel_id);
	if (sync->cancel_idle != 0)
		g_source_remove(sync->cancel_idle);
	if (sync->flush_idle != 0)
		g_source_remove(sync->flush_idle);
	g_ptr_array_unref(sync->queued);
	g_array_unref(sync->offsets);
	g_clear_object(&sync->cancellable);
	amu_sync_receiver_free(sync->receiver);
	amu_store_unref(sync->store);
	sodium_free(sync->key);
	g_free(sync->device_id);
	g_free(sync);
}

/* ends the sync: the task returns and the session forgets it */
static void
sync_complete(AmuSessionSync *sync, GError *error)
{
	g_autoptr(GTask) task = g_steal_pointer(&sync->task);
	AmuSessionSync **slot = amu_session_get_sync_slot(sync->session);

	if (*slot == sync)
		*slot = NULL;
	sync->progress.elapsed_ms = (g_get_monotonic_time() - sync->start_us) / 1000;
	if (error != NULL)
		g_task_return_error(task, error);
	else
		g_task_return_boolean(task, TRUE);
}

void
amu_session_sync_fail(AmuSession *self, const GError *error)
{
	AmuSessionSync *sync = *amu_session_get_sync_slot(self);

	if (sync == NULL)
		return;
	sync_complete(sync, g_error_copy(error));
}

/* a failure on our side ends the session too, so the device stops sending */
static void
sync_abort(AmuSessionSync *sync, const GError *error)
{
	/* completing the task may free @sync and drop the session's last ref */
	g_autoptr(AmuSession) session = g_object_ref(sync->session);

	amu_channel_abort(amu_session_get_channel(session), error);
	amu_session_sync_fail(session, error);
}

static gboolean
sync_cancel_idle_cb(gpointer user_data)
{
	AmuSessionSync *sync = user_data;
	g_autoptr(GError) error =
		g_error_new_literal(AMU_ERROR, AMU_ERROR_CANCELLED, "sync cancelled; what was stored is kept");

	sync->cancel_idle = 0;
	sync_abort(sync, error);
	return G_SOURCE_REMOVE;
}

static void
sync_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	AmuSessionSync *sync = user_data;

	/* may run in another thread: finish in the session's context */
	if (sync->cancel_idle == 0) {
		GSource *source = g_idle_source_new();
		g_source_set_callback(source, sync_cancel_idle_cb, sync, NULL);
		sync->cancel_idle = g_source_attach(source, g_task_get_context(sync->task));
		g_source_unref(source);
	}
}

static gboolean
sync_send(AmuSessionSync *sync, Amulet__V1__Message *message)
{
	g_autoptr(GError) error = NULL;

	if (!amu_channel_send(amu_session_get_channel(sync->session), message, &error)) {
		sync_abort(sync, error);
		return FALSE;
	}
	return TRUE;
}

/* Stores every queued batch and the cursor after the last in one
 * transaction, then acks them with one ack: the durable commit, which
 * dominates the cost of a batch, is paid once for all the batches that
 * arrived together. Exactly once still holds: the cursor moves in the same
 * transaction as the samples. */
static void
sync_flush(AmuSessionSync *sync)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__SyncAck ack;
	g_autoptr(GError) error = NULL;
	const Amulet__V1__SyncBatch *first, *last;
	guint n = sync->queued->len;

	if (n == 0 || sync->task == NULL)
		return;
	first = g_ptr_array_index(sync->queued, 0);
	last = g_ptr_array_index(sync->queued, n - 1);
	if (!amu_sample_store_ingest_many(sync->store, sync->device_id, sync->key,
					  (const Amulet__V1__SyncBatch *const *)sync->queued->pdata,
					  (const int64_t *)(void *)sync->offsets->data, n, g_get_real_time() / 1000, &error)) {
		g_prefix_error(&error, "storing samples %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT ": ", first->first_seq,
			       last->end_seq);
		sync_abort(sync, error);
		return;
	}
	amu_sync_receiver_stored(sync->receiver, &ack);
	for (guint b = 0; b < n; b++) {
		const Amulet__V1__SyncBatch *batch = g_ptr_array_index(sync->queued, b);
		sync->progress.samples_done += batch->end_seq - batch->first_seq;
		sync->progress.batches++;
		for (size_t i = 0; i < batch->n_groups; i++)
			sync->progress.bytes += batch->groups[i]->columns.len;
	}
	sync->progress.clock_offset_ms = g_array_index(sync->offsets, int64_t, n - 1);
	g_ptr_array_set_size(sync->queued, 0);
	g_array_set_size(sync->offsets, 0);
	sync->progress.elapsed_ms = (g_get_monotonic_time() - sync->start_us) / 1000;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_ACK;
	message.sync_ack = &ack;
	if (!sync_send(sync, &message))
		return;
	if (sync->progress_func != NULL)
		sync->progress_func(sync->session, &sync->progress, sync->progress_data);
	if (sync->task != NULL && amu_sync_receiver_is_done(sync->receiver))
		sync_complete(sync, NULL);
}

static gboolean
sync_flush_idle_cb(gpointer user_data)
{
	AmuSessionSync *sync = user_data;
	/* flushing may complete the task and free @sync: hold the session */
	g_autoptr(AmuSession) session = g_object_ref(sync->session);
	g_autoptr(GTask) task = sync->task != NULL ? g_object_ref(sync->task) : NULL;

	sync->flush_idle = 0;
	sync_flush(sync);
	return G_SOURCE_REMOVE;
}

static void
sync_batch(AmuSessionSync *sync, const Amulet__V1__SyncBatch *batch)
{
	size_t len = amulet__v1__sync_batch__get_packed_size(batch);
	g_autofree uint8_t *packed = g_malloc(len + 1);
	int64_t offset = amu_sync_receiver_get_clock_offset(sync->receiver, NULL);

	/* the message is freed after dispatch: keep a copy until it is stored */
	amulet__v1__sync_batch__pack(batch, packed);
	g_ptr_array_add(sync->queued, amulet__v1__sync_batch__unpack(NULL, len, packed));
	g_array_append_val(sync->offsets, offset);
	if (sync->queued->len >= AMU_SYNC_DEFAULT_WINDOW || amu_sync_receiver_is_done_receiving(sync->receiver)) {
		sync_flush(sync);
		return;
	}
	/* store what arrived together once nothing else is ready to run */
	if (sync->flush_idle == 0) {
		GSource *source = g_idle_source_new();
		g_source_set_priority(source, G_PRIORITY_DEFAULT_IDLE);
		g_source_set_callback(source, sync_flush_idle_cb, sync, NULL);
		sync->flush_idle = g_source_attach(source, g_task_get_context(sync->task));
		g_source_unref(source);
	}
}

gboolean
amu_session_sync_rx(AmuSession *self, const Amulet__V1__Message *message)
{
	AmuSessionSync *sync = *amu_session_get_sync_slot(self);
	g_autoptr(GError) error = NULL;
	AmuSyncRxEvent event;

	switch (message->body_case) {
	case AMULET__V1__MESSAGE__BODY_SYNC_START:
	case AMULET__V1__MESSAGE__BODY_SYNC_BATCH:
		break;
	case AMULET__V1__MESSAGE__BODY_ERROR:
		if (sync == NULL)
			return FALSE;
		error = g_error_new(AMU_ERROR,
				    message->error->code < AMU_ERROR_LAST ? (int)message->error->code : AMU_ERROR_PROTOCOL,
				    "the device refused the sync: %s", message->error->message);
		sync_abort(sync, error);
		return TRUE;
	case AMULET__V1__MESSAGE__BODY_DISCLOSURE:
	case AMULET__V1__MESSAGE__BODY_COMMIT:
	case AMULET__V1__MESSAGE__BODY_NONCE:
	case AMULET__V1__MESSAGE__BODY_REVEAL:
	case AMULET__V1__MESSAGE__BODY_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_DONE:
	case AMULET__V1__MESSAGE__BODY_PING:
	case AMULET__V1__MESSAGE__BODY_PONG:
	case AMULET__V1__MESSAGE__BODY_SYNC_REQUEST:
	case AMULET__V1__MESSAGE__BODY_SYNC_ACK:
	case AMULET__V1__MESSAGE__BODY_OWNER_COMMAND:
	case AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT:
	case AMULET__V1__MESSAGE__BODY_STATUS_REQUEST:
	case AMULET__V1__MESSAGE__BODY_DEVICE_STATUS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_OFFER:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK:
	case AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE:
	case AMULET__V1__MESSAGE__BODY__NOT_SET:
	case _AMULET__V1__MESSAGE__BODY__CASE_IS_INT_SIZE:
		return FALSE;
	}
	if (sync == NULL) {
		error = g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL, "the device sent sync data unasked");
		amu_channel_abort(amu_session_get_channel(self), error);
		return TRUE;
	}
	if (!amu_sync_receiver_rx(sync->receiver, message, g_get_real_time() / 1000, &event, &error)) {
		sync_abort(sync, error);
		return TRUE;
	}
	switch (event) {
	case AMU_SYNC_RX_STARTED:
		if (amu_sync_receiver_get_skipped(sync->receiver) > 0) {
			uint64_t first = amu_sync_receiver_get_cursor(sync->receiver);
			if (!amu_sample_store_skip(sync->store, sync->device_id,
						   first - amu_sync_receiver_get_skipped(sync->receiver), first,
						   g_get_real_time() / 1000, &error)) {
				sync_abort(sync, error);
				return TRUE;
			}
		}
		sync->progress.samples_total =
			amu_sync_receiver_get_end(sync->receiver) - amu_sync_receiver_get_cursor(sync->receiver);
		sync->progress.skipped = amu_sync_receiver_get_skipped(sync->receiver);
		sync->progress.clock_offset_ms = amu_sync_receiver_get_clock_offset(sync->receiver, NULL);
		if (sync->progress_func != NULL)
			sync->progress_func(self, &sync->progress, sync->progress_data);
		if (sync->task != NULL && amu_sync_receiver_is_done(sync->receiver))
			sync_complete(sync, NULL);
		break;
	case AMU_SYNC_RX_BATCH:
		sync_batch(sync, message->sync_batch);
		break;
	}
	return TRUE;
}

/* the device's data key, made on its first sync */
static gboolean
sync_load_key(AmuSessionSync *sync, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (amu_store_get_data_key(sync->store, sync->device_id, sync->key, &error_local))
		return TRUE;
	if (!g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	return amu_store_create_data_key(sync->store, sync->device_id, sync->key, error);
}

/**
 * amu_session_sync_async:
 * @progress_func: (nullable) (scope notified): called after each stored batch
 * @progress_data: data for @progress_func
 *
 * Fetches every sample the device logged since the last sync, storing each
 * batch durably (encrypted under the device's data key) before acking it,
 * so the device only forgets what is stored. A disconnect, a crash or a
 * cancellation at any point loses nothing: the next sync resumes at the
 * stored cursor, and no sample is stored twice. Failing or cancelling ends
 * the session.
 *
 * Since: 0.1
 */
void
amu_session_sync_async(AmuSession *self, AmuSyncProgressFunc progress_func, gpointer progress_data,
		       GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(self, cancellable, callback, user_data);
	AmuSessionSync **slot = amu_session_get_sync_slot(self);
	AmuDevice *device = amu_session_get_device(self);
	AmuSessionSync *sync;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__SyncRequest request;
	uint64_t cursor = 0;
	GError *error = NULL;

	g_return_if_fail(AMU_IS_SESSION(self));
	if (amu_session_get_error(self) != NULL) {
		g_task_return_error(task, g_error_copy(amu_session_get_error(self)));
		return;
	}
	if (*slot != NULL) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					"a sync is already running on this session");
		return;
	}
	if (amu_device_is_revoked(device)) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_UNKNOWN_PEER,
					"%s's bond is revoked: a wipe is queued for it, and its data is no longer accepted",
					amu_device_get_name(device));
		return;
	}
	sync = g_new0(AmuSessionSync, 1);
	sync->queued = g_ptr_array_new_with_free_func((GDestroyNotify)batch_free);
	sync->offsets = g_array_new(FALSE, FALSE, sizeof(int64_t));
	g_task_set_task_data(task, sync, (GDestroyNotify)sync_free);
	sync->session = self;
	sync->store = amu_store_ref(amu_context_get_store(amu_device_get_context(device)));
	sync->device_id = g_strdup(amu_device_get_id(device));
	sync->key = sodium_malloc(AMU_STORE_KEYBYTES);
	sync->progress_func = progress_func;
	sync->progress_data = progress_data;
	sync->start_us = g_get_monotonic_time();
	if (!sync_load_key(sync, &error) ||
	    !amu_sample_store_get_cursor(sync->store, sync->device_id, &cursor, NULL, &error)) {
		g_prefix_error(&error, "cannot sync %s: ", amu_device_get_name(device));
		g_task_return_error(task, error);
		return;
	}
	sync->receiver = amu_sync_receiver_new(cursor, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	sync->task = g_object_ref(task);
	*slot = sync;
	if (cancellable != NULL) {
		sync->cancellable = g_object_ref(cancellable);
		sync->cancel_id = g_cancellable_connect(cancellable, G_CALLBACK(sync_cancelled_cb), sync, NULL);
	}
	amu_sync_receiver_start(sync->receiver, g_get_real_time() / 1000, &request);
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_REQUEST;
	message.sync_request = &request;
	sync_send(sync, &message);
}

/**
 * amu_session_sync_finish:
 * @progress: (out) (optional): the totals, also filled when the sync failed
 *   (what was stored before the failure)
 *
 * Since: 0.1
 */
gboolean
amu_session_sync_finish(AmuSession *self, GAsyncResult *result, AmuSyncProgress *progress, GError **error)
{
	AmuSessionSync *sync;

	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	sync = g_task_get_task_data(G_TASK(result));
	if (progress != NULL) {
		if (sync != NULL)
			*progress = sync->progress;
		else
			memset(progress, 0, sizeof(*progress));
	}
	return g_task_propagate_boolean(G_TASK(result), error);
}

/**
 * amu_session_sync:
 *
 * The synchronous form of amu_session_sync_async(); iterates the
 * thread-default main context the session was opened on.
 *
 * Since: 0.1
 */
gboolean
amu_session_sync(AmuSession *self, AmuSyncProgressFunc progress_func, gpointer progress_data,
		 GCancellable *cancellable, AmuSyncProgress *progress, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_session_sync_async(self, progress_func, progress_data, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_session_sync_finish(self, result, progress, error);
}
