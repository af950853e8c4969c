/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-store.h"
#include "amulet/amu-sample.h"

G_BEGIN_DECLS

/* The device's append-only telemetry log (device role), kept in its store.
 * Every sample gets the next sequence number when appended. Samples are
 * kept as sealed chunks of one category (the same packed columns as on the
 * wire, see amu-batch.h) with consecutive sequence numbers. A sample is only
 * dropped once a host has acked it: amu_device_log_drop_before().
 *
 * Errors are AMU_ERROR codes from the store (NO_SPACE, STORE, ...). */

typedef struct AmuDeviceLog AmuDeviceLog;

/* samples per stored chunk */
#define AMU_DEVICE_LOG_CHUNK 4096

AmuDeviceLog *amu_device_log_new(AmuStore *store, GError **error);
void amu_device_log_free(AmuDeviceLog *log);

/* Appends @n samples of @category, in one transaction: all or none. */
gboolean amu_device_log_append(AmuDeviceLog *log, AmuCategory category, const AmuSample *samples, size_t n,
			       GError **error);
/* The sequence number the next sample will get. */
uint64_t amu_device_log_get_end_seq(AmuDeviceLog *log);
/* The oldest sequence number still held (everything before was acked). */
uint64_t amu_device_log_get_first_seq(AmuDeviceLog *log);

/* One category's slice of a batch: packed columns (amu-batch.h). */
typedef struct {
	AmuCategory category;
	uint32_t count;
	GByteArray *columns;
} AmuDeviceLogGroup;

/* Reads samples [since, ...) up to at most @end and about @max_bytes of
 * packed columns into @groups (GPtrArray of AmuDeviceLogGroup, freed with
 * the array) and returns the sequence number after the last one read in
 * @next. Reads at least one sample when since < end. since must be at least
 * amu_device_log_get_first_seq(). */
gboolean amu_device_log_read(AmuDeviceLog *log, uint64_t since, uint64_t end, size_t max_bytes,
			     GPtrArray **groups, uint64_t *next, GError **error);
GPtrArray *amu_device_log_groups_new(void);

/* A host acked everything before @seq: forget it (durably). Acks below what
 * was already dropped are fine; acks beyond the end are refused (PROTOCOL). */
gboolean amu_device_log_drop_before(AmuDeviceLog *log, uint64_t seq, GError **error);

/* The owner wiped the device: every sample goes, acked or not, and the
 * write-ahead log is emptied so no copy stays on disk. Sequence numbers go on. */
gboolean amu_device_log_wipe(AmuDeviceLog *log, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuDeviceLog, amu_device_log_free)

G_END_DECLS
