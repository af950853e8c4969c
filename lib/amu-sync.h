/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-device-log.h"
#include "amulet.pb-c.h"

G_BEGIN_DECLS

/* The telemetry sync state machines (docs/sync.md), sans-I/O: messages and
 * the time come in, messages go out through a callback or a caller-filled
 * struct. The device side reads from its log; the host side never touches
 * the store itself, the caller stores each batch and then calls
 * amu_sync_receiver_stored(). Both return FALSE with an AMU_ERROR set when
 * the peer broke the protocol; the session should then end. */

#define AMU_SYNC_MAX_WINDOW 8
#define AMU_SYNC_MIN_BATCH_BYTES 512
#define AMU_SYNC_MAX_BATCH_BYTES 16384
#define AMU_SYNC_DEFAULT_WINDOW 4
#define AMU_SYNC_DEFAULT_BATCH_BYTES 4096

/* ---- device role */
typedef struct AmuSyncSender AmuSyncSender;
typedef gboolean (*AmuSyncSendFunc)(const Amulet__V1__Message *message, void *user_data, GError **error);

AmuSyncSender *amu_sync_sender_new(AmuDeviceLog *log, AmuSyncSendFunc send_func, void *user_data);
void amu_sync_sender_free(AmuSyncSender *sender);
/* SyncRequest or SyncAck; @device_now_ms is the device's own clock */
gboolean amu_sync_sender_rx(AmuSyncSender *sender, const Amulet__V1__Message *message, int64_t device_now_ms,
			    GError **error);
/* batches sent and not yet acked */
guint amu_sync_sender_get_in_flight(AmuSyncSender *sender);

/* ---- host role */
typedef struct AmuSyncReceiver AmuSyncReceiver;

typedef enum {
	AMU_SYNC_RX_STARTED, /* SyncStart arrived: totals are known */
	AMU_SYNC_RX_BATCH,   /* a verified batch: store it with its clock offset, then _stored() */
} AmuSyncRxEvent;

AmuSyncReceiver *amu_sync_receiver_new(uint64_t cursor, uint32_t window, uint32_t max_batch_bytes);
void amu_sync_receiver_free(AmuSyncReceiver *receiver);
/* fills @request (its fields only; no allocation) and starts the exchange */
void amu_sync_receiver_start(AmuSyncReceiver *receiver, int64_t host_now_ms, Amulet__V1__SyncRequest *request);
gboolean amu_sync_receiver_rx(AmuSyncReceiver *receiver, const Amulet__V1__Message *message, int64_t host_now_ms,
			      AmuSyncRxEvent *event, GError **error);
/* the batch last reported is stored durably: fills @ack to send */
void amu_sync_receiver_stored(AmuSyncReceiver *receiver, Amulet__V1__SyncAck *ack);
gboolean amu_sync_receiver_is_done(AmuSyncReceiver *receiver);
/* every batch of this sync has arrived (some may not be stored yet) */
gboolean amu_sync_receiver_is_done_receiving(AmuSyncReceiver *receiver);
uint64_t amu_sync_receiver_get_cursor(AmuSyncReceiver *receiver);
uint64_t amu_sync_receiver_get_end(AmuSyncReceiver *receiver);
/* samples the device no longer had (another of the owner's hosts acked them) */
uint64_t amu_sync_receiver_get_skipped(AmuSyncReceiver *receiver);
/* device clock minus host clock as best known now, 0 when the clocks agree
 * within what the exchange can measure; and the measurement's half-width */
int64_t amu_sync_receiver_get_clock_offset(AmuSyncReceiver *receiver, int64_t *uncertainty_ms);

G_END_DECLS
