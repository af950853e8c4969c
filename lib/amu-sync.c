/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-sync.h"
#include "amulet/amu-error.h"

/* ------------------------------------------------------------------ device */

struct AmuSyncSender {
	AmuDeviceLog *log;
	AmuSyncSendFunc send_func;
	void *send_data;
	gboolean active;
	uint64_t next;		  /* first sequence not sent yet */
	uint64_t end;		  /* this sync stops here */
	uint32_t window;
	uint32_t max_bytes;
	GArray *in_flight;	  /* uint64_t end_seq of each batch sent and not acked */
	int64_t device_now_ms;
};

AmuSyncSender *
amu_sync_sender_new(AmuDeviceLog *log, AmuSyncSendFunc send_func, void *user_data)
{
	AmuSyncSender *sender = g_new0(AmuSyncSender, 1);

	sender->log = log;
	sender->send_func = send_func;
	sender->send_data = user_data;
	sender->in_flight = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	return sender;
}

void
amu_sync_sender_free(AmuSyncSender *sender)
{
	if (sender == NULL)
		return;
	g_array_unref(sender->in_flight);
	g_free(sender);
}

guint
amu_sync_sender_get_in_flight(AmuSyncSender *sender)
{
	return sender->in_flight->len;
}

static gboolean
sender_send_batch(AmuSyncSender *sender, GError **error)
{
	g_autoptr(GPtrArray) groups = NULL;
	g_autofree Amulet__V1__SampleGroup *group_msgs = NULL;
	g_autofree Amulet__V1__SampleGroup **group_ptrs = NULL;
	Amulet__V1__SyncBatch batch = AMULET__V1__SYNC_BATCH__INIT;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	uint64_t next = 0;

	if (!amu_device_log_read(sender->log, sender->next, sender->end, sender->max_bytes, &groups, &next, error))
		return FALSE;
	group_msgs = g_new0(Amulet__V1__SampleGroup, groups->len);
	group_ptrs = g_new0(Amulet__V1__SampleGroup *, groups->len);
	for (guint i = 0; i < groups->len; i++) {
		AmuDeviceLogGroup *group = g_ptr_array_index(groups, i);
		amulet__v1__sample_group__init(&group_msgs[i]);
		group_msgs[i].category = group->category;
		group_msgs[i].count = group->count;
		group_msgs[i].columns.data = group->columns->data;
		group_msgs[i].columns.len = group->columns->len;
		group_ptrs[i] = &group_msgs[i];
	}
	batch.first_seq = sender->next;
	batch.end_seq = next;
	batch.device_time_ms = sender->device_now_ms;
	batch.n_groups = groups->len;
	batch.groups = group_ptrs;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_BATCH;
	message.sync_batch = &batch;
	if (!sender->send_func(&message, sender->send_data, error))
		return FALSE;
	g_array_append_val(sender->in_flight, next);
	sender->next = next;
	return TRUE;
}

static gboolean
sender_pump(AmuSyncSender *sender, GError **error)
{
	while (sender->active && sender->next < sender->end && sender->in_flight->len < sender->window) {
		if (!sender_send_batch(sender, error))
			return FALSE;
	}
	if (sender->next >= sender->end && sender->in_flight->len == 0)
		sender->active = FALSE;
	return TRUE;
}

static gboolean
sender_rx_request(AmuSyncSender *sender, const Amulet__V1__SyncRequest *request, GError **error)
{
	Amulet__V1__SyncStart start = AMULET__V1__SYNC_START__INIT;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	uint64_t end = amu_device_log_get_end_seq(sender->log);

	if (request->window < 1 || request->window > AMU_SYNC_MAX_WINDOW ||
	    request->max_batch_bytes < AMU_SYNC_MIN_BATCH_BYTES || request->max_batch_bytes > AMU_SYNC_MAX_BATCH_BYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "sync request out of range: window %u (1..%u), batch %u bytes (%u..%u)", request->window,
			    AMU_SYNC_MAX_WINDOW, request->max_batch_bytes, AMU_SYNC_MIN_BATCH_BYTES,
			    AMU_SYNC_MAX_BATCH_BYTES);
		return FALSE;
	}
	if (request->since > end) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "the host asks for samples from %" G_GUINT64_FORMAT " but the device log ends at %" G_GUINT64_FORMAT
			    ": the device's log was reset",
			    request->since, end);
		return FALSE;
	}
	/* the host's cursor says everything before it is stored */
	if (!amu_device_log_drop_before(sender->log, request->since, error))
		return FALSE;
	sender->active = TRUE;
	sender->next = MAX(request->since, amu_device_log_get_first_seq(sender->log));
	sender->end = end;
	sender->window = request->window;
	sender->max_bytes = request->max_batch_bytes;
	g_array_set_size(sender->in_flight, 0);
	start.first_seq = amu_device_log_get_first_seq(sender->log);
	start.end_seq = end;
	start.host_time_ms = request->host_time_ms;
	start.device_time_ms = sender->device_now_ms;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_START;
	message.sync_start = &start;
	if (!sender->send_func(&message, sender->send_data, error))
		return FALSE;
	return sender_pump(sender, error);
}

static gboolean
sender_rx_ack(AmuSyncSender *sender, const Amulet__V1__SyncAck *ack, GError **error)
{
	guint acked = 0;

	while (acked < sender->in_flight->len && g_array_index(sender->in_flight, uint64_t, acked) <= ack->next_seq)
		acked++;
	if (acked == 0 || g_array_index(sender->in_flight, uint64_t, acked - 1) != ack->next_seq) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "ack for sequence %" G_GUINT64_FORMAT " matches no batch in flight", ack->next_seq);
		return FALSE;
	}
	if (!amu_device_log_drop_before(sender->log, ack->next_seq, error))
		return FALSE;
	g_array_remove_range(sender->in_flight, 0, acked);
	return sender_pump(sender, error);
}

gboolean
amu_sync_sender_rx(AmuSyncSender *sender, const Amulet__V1__Message *message, int64_t device_now_ms, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	sender->device_now_ms = device_now_ms;
	if (message->body_case == AMULET__V1__MESSAGE__BODY_SYNC_REQUEST)
		return sender_rx_request(sender, message->sync_request, error);
	if (message->body_case == AMULET__V1__MESSAGE__BODY_SYNC_ACK) {
		if (!sender->active) {
			g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync ack without a sync");
			return FALSE;
		}
		return sender_rx_ack(sender, message->sync_ack, error);
	}
	g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "message %d is not part of a sync", message->body_case);
	return FALSE;
}

/* ------------------------------------------------------------------ host */

typedef enum {
	RECEIVER_IDLE,
	RECEIVER_REQUESTED,
	RECEIVER_STREAMING,
} ReceiverState;

struct AmuSyncReceiver {
	ReceiverState state;
	uint64_t cursor;   /* stored durably up to here */
	uint64_t received; /* reported up to here */
	uint64_t end;
	uint64_t skipped;
	uint32_t window;
	uint32_t max_batch_bytes;
	int64_t request_ms;
	/* device clock - host clock lies in [offset_low, offset_high] */
	int64_t offset_low;
	int64_t offset_high;
};

AmuSyncReceiver *
amu_sync_receiver_new(uint64_t cursor, uint32_t window, uint32_t max_batch_bytes)
{
	AmuSyncReceiver *receiver = g_new0(AmuSyncReceiver, 1);

	receiver->cursor = cursor;
	receiver->received = cursor;
	receiver->end = cursor;
	receiver->window = CLAMP(window, 1, AMU_SYNC_MAX_WINDOW);
	receiver->max_batch_bytes = CLAMP(max_batch_bytes, AMU_SYNC_MIN_BATCH_BYTES, AMU_SYNC_MAX_BATCH_BYTES);
	return receiver;
}

void
amu_sync_receiver_free(AmuSyncReceiver *receiver)
{
	g_free(receiver);
}

void
amu_sync_receiver_start(AmuSyncReceiver *receiver, int64_t host_now_ms, Amulet__V1__SyncRequest *request)
{
	amulet__v1__sync_request__init(request);
	request->since = receiver->cursor;
	request->window = receiver->window;
	request->max_batch_bytes = receiver->max_batch_bytes;
	request->host_time_ms = host_now_ms;
	receiver->request_ms = host_now_ms;
	receiver->state = RECEIVER_REQUESTED;
}

int64_t
amu_sync_receiver_get_clock_offset(AmuSyncReceiver *receiver, int64_t *uncertainty_ms)
{
	int64_t low = receiver->offset_low;
	int64_t high = MAX(receiver->offset_high, low);

	if (uncertainty_ms != NULL)
		*uncertainty_ms = (high - low + 1) / 2;
	/* an interval holding zero cannot tell the clocks apart: correct nothing */
	if (low <= 0 && high >= 0)
		return 0;
	return low + (high - low) / 2;
}

static gboolean
receiver_rx_start(AmuSyncReceiver *receiver, const Amulet__V1__SyncStart *start, int64_t now_ms, GError **error)
{
	int64_t offset_low, offset_high;

	if (receiver->state != RECEIVER_REQUESTED) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "unexpected sync start");
		return FALSE;
	}
	if (start->host_time_ms != receiver->request_ms) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync start answers another request");
		return FALSE;
	}
	if (start->end_seq < receiver->cursor) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "the device's log ends at %" G_GUINT64_FORMAT " but %" G_GUINT64_FORMAT
			    " samples are already stored here: the device's log was reset",
			    start->end_seq, receiver->cursor);
		return FALSE;
	}
	if (start->first_seq > start->end_seq) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync start with first after end");
		return FALSE;
	}
	/* NTP's bounds: the device answered after we asked and before we heard */
	if (__builtin_sub_overflow(start->device_time_ms, receiver->request_ms, &offset_high) ||
	    __builtin_sub_overflow(start->device_time_ms, now_ms, &offset_low)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync start with device time %" G_GINT64_FORMAT " ms",
			    start->device_time_ms);
		return FALSE;
	}
	if (start->first_seq > receiver->cursor) {
		receiver->skipped = start->first_seq - receiver->cursor;
		receiver->cursor = start->first_seq;
	}
	receiver->received = receiver->cursor;
	receiver->end = start->end_seq;
	receiver->offset_high = offset_high;
	receiver->offset_low = offset_low;
	receiver->state = RECEIVER_STREAMING;
	return TRUE;
}

static gboolean
receiver_rx_batch(AmuSyncReceiver *receiver, const Amulet__V1__SyncBatch *batch, int64_t now_ms, GError **error)
{
	uint64_t total = 0;
	int64_t offset_low;

	if (receiver->state != RECEIVER_STREAMING) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync batch before sync start");
		return FALSE;
	}
	if (batch->first_seq != receiver->received || batch->end_seq <= batch->first_seq ||
	    batch->end_seq > receiver->end) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "sync batch [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") does not follow %" G_GUINT64_FORMAT
			    " within the sync's end %" G_GUINT64_FORMAT,
			    batch->first_seq, batch->end_seq, receiver->received, receiver->end);
		return FALSE;
	}
	if (batch->n_groups == 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync batch without samples");
		return FALSE;
	}
	for (size_t i = 0; i < batch->n_groups; i++) {
		if (!amu_category_is_valid((int)batch->groups[i]->category) || batch->groups[i]->count == 0) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "sync batch group %zu has category %u and %u samples", i,
				    batch->groups[i]->category, batch->groups[i]->count);
			return FALSE;
		}
		total += batch->groups[i]->count;
	}
	if (total != batch->end_seq - batch->first_seq) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "sync batch [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ") holds %" G_GUINT64_FORMAT " samples",
			    batch->first_seq, batch->end_seq, total);
		return FALSE;
	}
	/* sent before we heard it: another lower bound */
	if (__builtin_sub_overflow(batch->device_time_ms, now_ms, &offset_low)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "sync batch with device time %" G_GINT64_FORMAT " ms",
			    batch->device_time_ms);
		return FALSE;
	}
	receiver->offset_low = MAX(receiver->offset_low, offset_low);
	receiver->received = batch->end_seq;
	return TRUE;
}

gboolean
amu_sync_receiver_rx(AmuSyncReceiver *receiver, const Amulet__V1__Message *message, int64_t host_now_ms,
		     AmuSyncRxEvent *event, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	switch (message->body_case) {
	case AMULET__V1__MESSAGE__BODY_SYNC_START:
		*event = AMU_SYNC_RX_STARTED;
		return receiver_rx_start(receiver, message->sync_start, host_now_ms, error);
	case AMULET__V1__MESSAGE__BODY_SYNC_BATCH:
		*event = AMU_SYNC_RX_BATCH;
		return receiver_rx_batch(receiver, message->sync_batch, host_now_ms, error);
	case AMULET__V1__MESSAGE__BODY_DISCLOSURE:
	case AMULET__V1__MESSAGE__BODY_COMMIT:
	case AMULET__V1__MESSAGE__BODY_NONCE:
	case AMULET__V1__MESSAGE__BODY_REVEAL:
	case AMULET__V1__MESSAGE__BODY_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_DONE:
	case AMULET__V1__MESSAGE__BODY_ERROR:
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
		break;
	}
	g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "message %d is not part of a sync", message->body_case);
	return FALSE;
}

void
amu_sync_receiver_stored(AmuSyncReceiver *receiver, Amulet__V1__SyncAck *ack)
{
	receiver->cursor = receiver->received;
	amulet__v1__sync_ack__init(ack);
	ack->next_seq = receiver->cursor;
}

gboolean
amu_sync_receiver_is_done(AmuSyncReceiver *receiver)
{
	return receiver->state == RECEIVER_STREAMING && receiver->cursor >= receiver->end;
}

gboolean
amu_sync_receiver_is_done_receiving(AmuSyncReceiver *receiver)
{
	return receiver->state == RECEIVER_STREAMING && receiver->received >= receiver->end;
}

uint64_t
amu_sync_receiver_get_cursor(AmuSyncReceiver *receiver)
{
	return receiver->cursor;
}

uint64_t
amu_sync_receiver_get_end(AmuSyncReceiver *receiver)
{
	return receiver->end;
}

uint64_t
amu_sync_receiver_get_skipped(AmuSyncReceiver *receiver)
{
	return receiver->skipped;
}
