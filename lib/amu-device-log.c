/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-batch.h"
#include "amu-device-log.h"
#include "amulet/amu-error.h"

struct AmuDeviceLog {
	AmuStore *store;
	uint64_t end_seq;
	uint64_t first_seq;
	/* the last chunk read, decoded: batches usually start inside it */
	uint64_t cached_first_seq;
	GArray *cached; /* of AmuSample, NULL if none */
};

/* the associated data binds a sealed chunk to its table, first sequence
 * number, category and count */
static size_t
chunk_ad(uint8_t ad[32], uint64_t first_seq, AmuCategory category, uint64_t count)
{
	memcpy(ad, "device_log", 10);
	for (int i = 0; i < 8; i++) {
		ad[10 + i] = (uint8_t)(first_seq >> (8 * i));
		ad[19 + i] = (uint8_t)(count >> (8 * i));
	}
	ad[18] = (uint8_t)category;
	return 27;
}

static gboolean
log_load_state(AmuDeviceLog *log, GError **error)
{
	sqlite3 *db = amu_store_get_db(log->store);
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT next_seq, acked_seq FROM device_log_state WHERE id = 1", -1,
				    &stmt, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		amu_store_set_sqlite_error(log->store, error, rc, "reading the telemetry log state");
		return FALSE;
	}
	log->end_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
	log->first_seq = (uint64_t)sqlite3_column_int64(stmt, 1);
	return TRUE;
}

AmuDeviceLog *
amu_device_log_new(AmuStore *store, GError **error)
{
	g_autoptr(AmuDeviceLog) log = g_new0(AmuDeviceLog, 1);

	g_return_val_if_fail(store != NULL, NULL);
	log->store = amu_store_ref(store);
	if (!log_load_state(log, error))
		return NULL;
	return g_steal_pointer(&log);
}

void
amu_device_log_free(AmuDeviceLog *log)
{
	if (log == NULL)
		return;
	if (log->cached != NULL)
		g_array_unref(log->cached);
	amu_store_unref(log->store);
	g_free(log);
}

uint64_t
amu_device_log_get_end_seq(AmuDeviceLog *log)
{
	return log->end_seq;
}

uint64_t
amu_device_log_get_first_seq(AmuDeviceLog *log)
{
	return log->first_seq;
}

static gboolean
log_step(AmuDeviceLog *log, sqlite3_stmt *stmt, const char *what, GError **error)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(log->store, error, rc, what);
		return FALSE;
	}
	sqlite3_reset(stmt);
	return TRUE;
}

static gboolean
log_append_locked(AmuDeviceLog *log, AmuCategory category, const AmuSample *samples, size_t n,
		  uint64_t *end_seq, GError **error)
{
	sqlite3 *db = amu_store_get_db(log->store);
	g_autoptr(sqlite3_stmt) insert = NULL;
	g_autoptr(sqlite3_stmt) state = NULL;
	g_autoptr(GByteArray) columns = g_byte_array_new();
	int rc;

	rc = sqlite3_prepare_v2(db, "INSERT INTO device_log(first_seq, category, count, sealed) VALUES(?1, ?2, ?3, ?4)",
				-1, &insert, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "UPDATE device_log_state SET next_seq = ?1 WHERE id = 1", -1, &state, NULL);
	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(log->store, error, rc, "appending to the telemetry log");
		return FALSE;
	}
	while (n > 0) {
		uint8_t ad[32];
		size_t ad_len;
		size_t taken;
		g_autoptr(GBytes) sealed = NULL;

		g_byte_array_set_size(columns, 0);
		taken = amu_batch_encode_group(columns, category, samples, MIN(n, AMU_DEVICE_LOG_CHUNK), G_MAXSIZE);
		if (taken == 0) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "a %s sample is out of range or of another category: nothing appended",
				    amu_category_to_string(category));
			return FALSE;
		}
		ad_len = chunk_ad(ad, *end_seq, category, taken);
		sealed = amu_store_seal(log->store, ad, ad_len, columns->data, columns->len);
		sqlite3_bind_int64(insert, 1, (sqlite3_int64)*end_seq);
		sqlite3_bind_int(insert, 2, category);
		sqlite3_bind_int64(insert, 3, (sqlite3_int64)taken);
		sqlite3_bind_blob(insert, 4, g_bytes_get_data(sealed, NULL), (int)g_bytes_get_size(sealed),
				  SQLITE_STATIC);
		if (!log_step(log, insert, "appending to the telemetry log", error))
			return FALSE;
		*end_seq += taken;
		samples += taken;
		n -= taken;
	}
	sqlite3_bind_int64(state, 1, (sqlite3_int64)*end_seq);
	return log_step(log, state, "appending to the telemetry log", error);
}

gboolean
amu_device_log_append(AmuDeviceLog *log, AmuCategory category, const AmuSample *samples, size_t n, GError **error)
{
	uint64_t end_seq = log->end_seq;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (n == 0)
		return TRUE;
	if (!amu_store_begin(log->store, error))
		return FALSE;
	if (!log_append_locked(log, category, samples, n, &end_seq, error) || !amu_store_commit(log->store, error)) {
		amu_store_rollback(log->store);
		return FALSE;
	}
	log->end_seq = end_seq;
	return TRUE;
}

static void
group_free(AmuDeviceLogGroup *group)
{
	g_byte_array_unref(group->columns);
	g_free(group);
}

GPtrArray *
amu_device_log_groups_new(void)
{
	return g_ptr_array_new_with_free_func((GDestroyNotify)group_free);
}

/* The decoded chunk starting at @first_seq, from the cache or the store. */
static GArray *
log_load_chunk(AmuDeviceLog *log, uint64_t first_seq, AmuCategory category, uint64_t count, const void *sealed,
	       size_t sealed_len, GError **error)
{
	uint8_t ad[32];
	size_t ad_len = chunk_ad(ad, first_seq, category, count);
	g_autoptr(GBytes) plain = NULL;
	g_autoptr(GArray) samples = NULL;

	if (log->cached != NULL && log->cached_first_seq == first_seq)
		return log->cached;
	plain = amu_store_unseal(log->store, ad, ad_len, sealed, sealed_len, error);
	if (plain == NULL) {
		g_prefix_error(error, "telemetry log chunk %" G_GUINT64_FORMAT ": ", first_seq);
		return NULL;
	}
	samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	if (!amu_batch_decode_group(category, g_bytes_get_data(plain, NULL), g_bytes_get_size(plain), samples, error)) {
		g_prefix_error(error, "telemetry log chunk %" G_GUINT64_FORMAT ": ", first_seq);
		return NULL;
	}
	if (log->cached != NULL)
		g_array_unref(log->cached);
	log->cached = g_steal_pointer(&samples);
	log->cached_first_seq = first_seq;
	return log->cached;
}

gboolean
amu_device_log_read(AmuDeviceLog *log, uint64_t since, uint64_t end, size_t max_bytes, GPtrArray **groups_out,
		    uint64_t *next, GError **error)
{
	sqlite3 *db = amu_store_get_db(log->store);
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autoptr(GPtrArray) groups = amu_device_log_groups_new();
	uint64_t seq = since;
	size_t used = 0;
	int rc;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (since < log->first_seq || since > log->end_seq) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "sequence %" G_GUINT64_FORMAT " is outside the log [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ")",
			    since, log->first_seq, log->end_seq);
		return FALSE;
	}
	end = MIN(end, log->end_seq);
	rc = sqlite3_prepare_v2(db,
				"SELECT first_seq, category, count, sealed FROM device_log"
				" WHERE first_seq + count > ?1 AND first_seq < ?2 ORDER BY first_seq",
				-1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(stmt, 1, (sqlite3_int64)since);
		sqlite3_bind_int64(stmt, 2, (sqlite3_int64)end);
	}
	while (rc == SQLITE_OK && seq < end && used < max_bytes) {
		uint64_t first_seq, count, skip, want;
		AmuCategory category;
		GArray *samples;
		AmuDeviceLogGroup *group;
		size_t taken;

		rc = sqlite3_step(stmt);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW)
			break;
		rc = SQLITE_OK;
		first_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
		category = sqlite3_column_int(stmt, 1);
		count = (uint64_t)sqlite3_column_int64(stmt, 2);
		if (first_seq != seq && first_seq > seq) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
				    "the telemetry log has a hole at sequence %" G_GUINT64_FORMAT, seq);
			return FALSE;
		}
		samples = log_load_chunk(log, first_seq, category, count, sqlite3_column_blob(stmt, 3),
					 (size_t)sqlite3_column_bytes(stmt, 3), error);
		if (samples == NULL)
			return FALSE;
		if (samples->len != count) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
				    "telemetry log chunk %" G_GUINT64_FORMAT " holds %u samples, not %" G_GUINT64_FORMAT,
				    first_seq, samples->len, count);
			return FALSE;
		}
		skip = seq - first_seq;
		want = MIN(count - skip, end - seq);
		group = g_new0(AmuDeviceLogGroup, 1);
		group->category = category;
		group->columns = g_byte_array_new();
		g_ptr_array_add(groups, group);
		taken = amu_batch_encode_group(group->columns, category, &g_array_index(samples, AmuSample, skip),
					       want, max_bytes - used);
		if (taken == 0 && groups->len == 1)
			/* the budget is below one sample's size: send one anyway */
			taken = amu_batch_encode_group(group->columns, category,
						       &g_array_index(samples, AmuSample, skip), 1, G_MAXSIZE);
		if (taken == 0) {
			g_ptr_array_remove_index(groups, groups->len - 1);
			break;
		}
		group->count = (uint32_t)taken;
		used += group->columns->len;
		seq += taken;
		if (taken < want)
			break;
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(log->store, error, rc, "reading the telemetry log");
		return FALSE;
	}
	if (seq < end && groups->len == 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "the telemetry log has no chunk for sequence %" G_GUINT64_FORMAT, seq);
		return FALSE;
	}
	*groups_out = g_steal_pointer(&groups);
	*next = seq;
	return TRUE;
}

gboolean
amu_device_log_drop_before(AmuDeviceLog *log, uint64_t seq, GError **error)
{
	g_autofree char *sql = NULL;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (seq > log->end_seq) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "ack for sequence %" G_GUINT64_FORMAT " beyond the end of the log (%" G_GUINT64_FORMAT ")",
			    seq, log->end_seq);
		return FALSE;
	}
	if (seq <= log->first_seq)
		return TRUE;
	sql = g_strdup_printf("DELETE FROM device_log WHERE first_seq + count <= %" G_GUINT64_FORMAT ";"
			      "UPDATE device_log_state SET acked_seq = %" G_GUINT64_FORMAT " WHERE id = 1;",
			      seq, seq);
	if (!amu_store_begin(log->store, error))
		return FALSE;
	if (!amu_store_exec(log->store, sql, error) || !amu_store_commit(log->store, error)) {
		amu_store_rollback(log->store);
		return FALSE;
	}
	log->first_seq = seq;
	return TRUE;
}

gboolean
amu_device_log_wipe(AmuDeviceLog *log, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!amu_store_begin(log->store, error))
		return FALSE;
	if (!amu_store_exec(log->store,
			    "DELETE FROM device_log;"
			    "UPDATE device_log_state SET acked_seq = next_seq WHERE id = 1;",
			    error) ||
	    !amu_store_commit(log->store, error)) {
		amu_store_rollback(log->store);
		return FALSE;
	}
	log->first_seq = log->end_seq;
	g_clear_pointer(&log->cached, g_array_unref);
	/* secure_delete zeroed the rows; the checkpoint drops the log's copies */
	return amu_store_checkpoint(log->store, error) && amu_store_exec(log->store, "VACUUM", error);
}
