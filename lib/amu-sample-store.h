/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-store.h"
#include "amulet.pb-c.h"
#include "amulet/amu-sample.h"

G_BEGIN_DECLS

/* The host's telemetry: sample blocks sealed with XChaCha20-Poly1305 under
 * the device's data key (associated data = "sample_blocks", device id,
 * category, block id), indexed in the clear by device, category and time
 * span only, plus the sync cursor of each device. Destroying the device's
 * data key (amu_store_destroy_data_key) makes its blocks unreadable. */

/* The device's cursor: the next log sequence number the host needs; 0 if it never synced. */
gboolean amu_sample_store_get_cursor(AmuStore *store, const char *device_id, uint64_t *next_seq,
				     int64_t *last_sync_ms, GError **error);

/* Verifies every group of @batch (decodes it; see amu-batch.h), then stores
 * its blocks and the new cursor (batch->end_seq) in one transaction: all or
 * nothing. @clock_offset_ms (device minus host) is recorded with each block
 * and subtracted from its timestamps when read. @key is the device's data key. */
gboolean amu_sample_store_ingest(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
				 const Amulet__V1__SyncBatch *batch, int64_t clock_offset_ms, int64_t now_ms,
				 GError **error);

/* As amu_sample_store_ingest() for @n consecutive batches in one
 * transaction: one durable commit for several batches. All or nothing. */
gboolean amu_sample_store_ingest_many(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
				      const Amulet__V1__SyncBatch *const *batches, const int64_t *clock_offsets_ms,
				      size_t n, int64_t now_ms, GError **error);

/* Another of the owner's hosts took samples [@from, @to): moves the cursor
 * over them, if it still stands at @from (ROLLBACK otherwise). */
gboolean amu_sample_store_skip(AmuStore *store, const char *device_id, uint64_t from, uint64_t to, int64_t now_ms,
			       GError **error);

/* Iterates the samples of one device, ordered by category then time; category 0 means all.
 * Only samples with from_ms <= timestamp < to_ms are returned. */
typedef struct AmuSampleStoreIter AmuSampleStoreIter;
AmuSampleStoreIter *amu_sample_store_iter_new(AmuStore *store, const char *device_id,
					      const uint8_t key[AMU_STORE_KEYBYTES], AmuCategory category,
					      int64_t from_ms, int64_t to_ms, GError **error);
/* TRUE with @sample filled, or FALSE at the end (error unset) or on an error */
gboolean amu_sample_store_iter_next(AmuSampleStoreIter *iter, AmuSample *sample, GError **error);
void amu_sample_store_iter_free(AmuSampleStoreIter *iter);

/* Deletes the blocks of every device whose newest sample is older than the
 * category's retention before @now_ms (@retention_days indexed by category;
 * 0 keeps forever). Returns the samples removed in @removed. */
gboolean amu_sample_store_prune(AmuStore *store, const guint retention_days[AMU_CATEGORY_LAST + 1], int64_t now_ms,
				gboolean dry_run, uint64_t *removed, GError **error);

/* Deletes every block and the cursor of one device (the key is destroyed separately). */
gboolean amu_sample_store_delete_device(AmuStore *store, const char *device_id, GError **error);

/* Sample and block counts of one device, per category (arrays of AMU_CATEGORY_LAST + 1). */
gboolean amu_sample_store_count(AmuStore *store, const char *device_id, uint64_t samples[AMU_CATEGORY_LAST + 1],
				GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuSampleStoreIter, amu_sample_store_iter_free)

G_END_DECLS
