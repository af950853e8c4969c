/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-batch.h"
#include "amu-sample-store.h"
#include "amulet/amu-error.h"

#define BLOCK_NONCEBYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define BLOCK_ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define BLOCK_AD_MAX 128

typedef struct {
	int64_t block_id;
	AmuCategory category;
	int64_t t_start;
	int64_t t_end;
	int64_t count;
	int64_t clock_offset_ms;
} BlockIndex;

static size_t
put_le64(uint8_t *out, int64_t value)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)((uint64_t)value >> (8 * i));
	return 8;
}

/* "sample_blocks" || device id || category || block id || the index columns
 * in the clear (first and last time, count, clock offset), each 8 bytes LE:
 * a block moved to another row, device or category, or whose index was
 * edited to hide it from a query or shift its times, fails to open */
static size_t
block_ad(uint8_t ad[BLOCK_AD_MAX], const char *device_id, const BlockIndex *index)
{
	size_t id_len = MIN(strlen(device_id), (size_t)64);
	size_t len = 0;

	memcpy(ad, "sample_blocks", 13);
	len += 13;
	memcpy(ad + len, device_id, id_len);
	len += id_len;
	ad[len++] = (uint8_t)index->category;
	len += put_le64(ad + len, index->block_id);
	len += put_le64(ad + len, index->t_start);
	len += put_le64(ad + len, index->t_end);
	len += put_le64(ad + len, index->count);
	len += put_le64(ad + len, index->clock_offset_ms);
	return len;
}

static gboolean
prepare(AmuStore *store, sqlite3_stmt **stmt, const char *sql, const char *what, GError **error)
{
	int rc = sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, stmt, NULL);

	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(store, error, rc, what);
		return FALSE;
	}
	return TRUE;
}

static gboolean
step_done(AmuStore *store, sqlite3_stmt *stmt, const char *what, GError **error)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(store, error, rc, what);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_sample_store_get_cursor(AmuStore *store, const char *device_id, uint64_t *next_seq, int64_t *last_sync_ms,
			    GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc;

	if (!prepare(store, &stmt, "SELECT next_seq, last_sync FROM sync_cursors WHERE device_id = ?1",
		     "reading the sync cursor", error))
		return FALSE;
	sqlite3_bind_text(stmt, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*next_seq = (uint64_t)sqlite3_column_int64(stmt, 0);
		if (last_sync_ms != NULL)
			*last_sync_ms = sqlite3_column_int64(stmt, 1);
		return TRUE;
	}
	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(store, error, rc, "reading the sync cursor");
		return FALSE;
	}
	*next_seq = 0;
	if (last_sync_ms != NULL)
		*last_sync_ms = 0;
	return TRUE;
}

typedef struct {
	AmuCategory category;
	uint32_t count;
	int64_t t_start;
	int64_t t_end;
	const uint8_t *columns;
	size_t len;
} VerifiedGroup;

/* decode every group before anything is written: a bad batch stores nothing */
static gboolean
verify_batch(const Amulet__V1__SyncBatch *batch, int64_t clock_offset_ms, VerifiedGroup *groups, GError **error)
{
	g_autoptr(GArray) samples = g_array_sized_new(FALSE, FALSE, sizeof(AmuSample), 4096);

	for (size_t i = 0; i < batch->n_groups; i++) {
		const Amulet__V1__SampleGroup *group = batch->groups[i];
		int64_t low = G_MAXINT64, high = G_MININT64;

		g_array_set_size(samples, 0);
		if (!amu_category_is_valid((int)group->category)) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "group %zu: unknown category %u", i,
				    group->category);
			return FALSE;
		}
		if (!amu_batch_decode_group(group->category, group->columns.data, group->columns.len, samples, error)) {
			g_prefix_error(error, "group %zu (%s): ", i, amu_category_to_string(group->category));
			return FALSE;
		}
		if (samples->len != group->count) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "group %zu announces %u samples and holds %u",
				    i, group->count, samples->len);
			return FALSE;
		}
		for (guint j = 0; j < samples->len; j++) {
			int64_t ts = g_array_index(samples, AmuSample, j).timestamp_ms;
			low = MIN(low, ts);
			high = MAX(high, ts);
		}
		if ((clock_offset_ms > 0 && low < G_MININT64 + clock_offset_ms) ||
		    (clock_offset_ms < 0 && high > G_MAXINT64 + clock_offset_ms)) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "group %zu: timestamps out of range", i);
			return FALSE;
		}
		groups[i].category = group->category;
		groups[i].count = group->count;
		groups[i].t_start = low - clock_offset_ms;
		groups[i].t_end = high - clock_offset_ms;
		groups[i].columns = group->columns.data;
		groups[i].len = group->columns.len;
	}
	return TRUE;
}

static gboolean
ingest_locked(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
	      const Amulet__V1__SyncBatch *batch, const VerifiedGroup *groups, int64_t clock_offset_ms, int64_t now_ms,
	      GError **error)
{
	g_autoptr(sqlite3_stmt) max_stmt = NULL;
	g_autoptr(sqlite3_stmt) insert = NULL;
	g_autoptr(sqlite3_stmt) cursor = NULL;
	g_autofree uint8_t *sealed = NULL;
	size_t sealed_cap = 0;
	uint64_t stored_cursor = 0;
	int64_t block_id;
	int rc;

	/* exactly once: the batch must start where this store stopped, even if
	 * another process synced the same device meanwhile */
	if (!amu_sample_store_get_cursor(store, device_id, &stored_cursor, NULL, error))
		return FALSE;
	if (stored_cursor != batch->first_seq) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "the store holds this device's samples up to %" G_GUINT64_FORMAT
			    ", the batch starts at %" G_GUINT64_FORMAT ": another sync of the device ran at the same time; "
			    "sync again",
			    stored_cursor, batch->first_seq);
		return FALSE;
	}
	/* never reuse the id of a deleted block: an old copy of its sealed blob
	 * would otherwise open in the new row */
	if (!prepare(store, &max_stmt,
		     "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'sample_blocks'), 0),"
		     " (SELECT COALESCE(MAX(block_id), 0) FROM sample_blocks))",
		     "storing samples", error) ||
	    !prepare(store, &insert,
		     "INSERT INTO sample_blocks(block_id, device_id, category, t_start, t_end, count, clock_offset_ms,"
		     " received, sealed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
		     "storing samples", error) ||
	    !prepare(store, &cursor,
		     "INSERT INTO sync_cursors(device_id, next_seq, last_sync) VALUES(?1, ?2, ?3)"
		     " ON CONFLICT(device_id) DO UPDATE SET next_seq = excluded.next_seq, last_sync = excluded.last_sync",
		     "storing samples", error))
		return FALSE;
	rc = sqlite3_step(max_stmt);
	if (rc != SQLITE_ROW) {
		amu_store_set_sqlite_error(store, error, rc, "storing samples");
		return FALSE;
	}
	block_id = sqlite3_column_int64(max_stmt, 0);
	for (size_t i = 0; i < batch->n_groups; i++) {
		uint8_t ad[BLOCK_AD_MAX];
		BlockIndex index = {++block_id, groups[i].category, groups[i].t_start, groups[i].t_end, groups[i].count,
				    clock_offset_ms};
		size_t ad_len = block_ad(ad, device_id, &index);
		size_t need = BLOCK_NONCEBYTES + groups[i].len + BLOCK_ABYTES;
		unsigned long long clen = 0;

		if (need > sealed_cap) {
			sealed_cap = need;
			g_free(sealed);
			sealed = g_malloc(sealed_cap);
		}
		randombytes_buf(sealed, BLOCK_NONCEBYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + BLOCK_NONCEBYTES, &clen, groups[i].columns,
							   groups[i].len, ad, ad_len, NULL, sealed, key);
		sqlite3_reset(insert);
		sqlite3_bind_int64(insert, 1, block_id);
		sqlite3_bind_text(insert, 2, device_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(insert, 3, groups[i].category);
		sqlite3_bind_int64(insert, 4, groups[i].t_start);
		sqlite3_bind_int64(insert, 5, groups[i].t_end);
		sqlite3_bind_int64(insert, 6, groups[i].count);
		sqlite3_bind_int64(insert, 7, clock_offset_ms);
		sqlite3_bind_int64(insert, 8, now_ms);
		sqlite3_bind_blob(insert, 9, sealed, (int)(BLOCK_NONCEBYTES + clen), SQLITE_STATIC);
		if (!step_done(store, insert, "storing samples", error))
			return FALSE;
	}
	sqlite3_bind_text(cursor, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(cursor, 2, (sqlite3_int64)batch->end_seq);
	sqlite3_bind_int64(cursor, 3, now_ms);
	return step_done(store, cursor, "storing the sync cursor", error);
}

gboolean
amu_sample_store_ingest(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
			const Amulet__V1__SyncBatch *batch, int64_t clock_offset_ms, int64_t now_ms, GError **error)
{
	return amu_sample_store_ingest_many(store, device_id, key, &batch, &clock_offset_ms, 1, now_ms, error);
}

gboolean
amu_sample_store_ingest_many(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
			     const Amulet__V1__SyncBatch *const *batches, const int64_t *clock_offsets_ms, size_t n,
			     int64_t now_ms, GError **error)
{
	g_autoptr(GPtrArray) verified = g_ptr_array_new_with_free_func(g_free);

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	/* every batch verified before anything is written */
	for (size_t i = 0; i < n; i++) {
		VerifiedGroup *groups = g_new0(VerifiedGroup, MAX(batches[i]->n_groups, 1));
		g_ptr_array_add(verified, groups);
		if (!verify_batch(batches[i], clock_offsets_ms[i], groups, error))
			return FALSE;
	}
	if (!amu_store_begin(store, error))
		return FALSE;
	for (size_t i = 0; i < n; i++) {
		if (!ingest_locked(store, device_id, key, batches[i], g_ptr_array_index(verified, i), clock_offsets_ms[i],
				   now_ms, error)) {
			amu_store_rollback(store);
			return FALSE;
		}
	}
	if (!amu_store_commit(store, error)) {
		amu_store_rollback(store);
		return FALSE;
	}
	return TRUE;
}

static gboolean
skip_locked(AmuStore *store, const char *device_id, uint64_t from, uint64_t to, int64_t now_ms, GError **error)
{
	g_autoptr(sqlite3_stmt) cursor = NULL;
	uint64_t stored = 0;

	if (!amu_sample_store_get_cursor(store, device_id, &stored, NULL, error))
		return FALSE;
	if (stored != from) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_ROLLBACK,
			    "the store holds this device's samples up to %" G_GUINT64_FORMAT ", not %" G_GUINT64_FORMAT
			    ": another sync of the device ran at the same time; sync again",
			    stored, from);
		return FALSE;
	}
	if (!prepare(store, &cursor,
		     "INSERT INTO sync_cursors(device_id, next_seq, last_sync) VALUES(?1, ?2, ?3)"
		     " ON CONFLICT(device_id) DO UPDATE SET next_seq = excluded.next_seq, last_sync = excluded.last_sync",
		     "moving the sync cursor", error))
		return FALSE;
	sqlite3_bind_text(cursor, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(cursor, 2, (sqlite3_int64)to);
	sqlite3_bind_int64(cursor, 3, now_ms);
	return step_done(store, cursor, "moving the sync cursor", error);
}

gboolean
amu_sample_store_skip(AmuStore *store, const char *device_id, uint64_t from, uint64_t to, int64_t now_ms,
		      GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!amu_store_begin(store, error))
		return FALSE;
	if (!skip_locked(store, device_id, from, to, now_ms, error) || !amu_store_commit(store, error)) {
		amu_store_rollback(store);
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------------ reading */

struct AmuSampleStoreIter {
	AmuStore *store;
	sqlite3_stmt *stmt;
	char *device_id;
	uint8_t *key; /* sodium_malloc'd */
	int64_t from_ms;
	int64_t to_ms;
	GArray *samples; /* the current block, decoded */
	guint index;
	int64_t offset_ms;
	uint8_t *plain;
	size_t plain_cap;
};

AmuSampleStoreIter *
amu_sample_store_iter_new(AmuStore *store, const char *device_id, const uint8_t key[AMU_STORE_KEYBYTES],
			  AmuCategory category, int64_t from_ms, int64_t to_ms, GError **error)
{
	g_autoptr(AmuSampleStoreIter) iter = g_new0(AmuSampleStoreIter, 1);

	iter->store = amu_store_ref(store);
	iter->device_id = g_strdup(device_id);
	iter->key = sodium_malloc(AMU_STORE_KEYBYTES);
	memcpy(iter->key, key, AMU_STORE_KEYBYTES);
	iter->from_ms = from_ms;
	iter->to_ms = to_ms;
	iter->samples = g_array_sized_new(FALSE, FALSE, sizeof(AmuSample), 4096);
	if (!prepare(store, &iter->stmt,
		     "SELECT block_id, category, clock_offset_ms, sealed, t_start, t_end, count FROM sample_blocks"
		     " WHERE device_id = ?1 AND (?2 = 0 OR category = ?2) AND t_start < ?4 AND t_end >= ?3"
		     " ORDER BY category, t_start, block_id",
		     "reading samples", error))
		return NULL;
	sqlite3_bind_text(iter->stmt, 1, iter->device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(iter->stmt, 2, category);
	sqlite3_bind_int64(iter->stmt, 3, from_ms);
	sqlite3_bind_int64(iter->stmt, 4, to_ms);
	return g_steal_pointer(&iter);
}

static gboolean
iter_load_block(AmuSampleStoreIter *iter, GError **error)
{
	int64_t block_id = sqlite3_column_int64(iter->stmt, 0);
	AmuCategory category = sqlite3_column_int(iter->stmt, 1);
	BlockIndex index = {block_id, category, sqlite3_column_int64(iter->stmt, 4), sqlite3_column_int64(iter->stmt, 5),
			    sqlite3_column_int64(iter->stmt, 6), sqlite3_column_int64(iter->stmt, 2)};
	const uint8_t *sealed = sqlite3_column_blob(iter->stmt, 3);
	size_t sealed_len = (size_t)sqlite3_column_bytes(iter->stmt, 3);
	uint8_t ad[BLOCK_AD_MAX];
	size_t ad_len;
	unsigned long long plain_len = 0;

	iter->offset_ms = sqlite3_column_int64(iter->stmt, 2);
	if (!amu_category_is_valid(category) || sealed_len < BLOCK_NONCEBYTES + BLOCK_ABYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "sample block %" G_GINT64_FORMAT " is damaged", block_id);
		return FALSE;
	}
	ad_len = block_ad(ad, iter->device_id, &index);
	if (sealed_len > iter->plain_cap) {
		if (iter->plain != NULL)
			sodium_memzero(iter->plain, iter->plain_cap);
		g_free(iter->plain);
		iter->plain_cap = sealed_len;
		iter->plain = g_malloc(iter->plain_cap);
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(iter->plain, &plain_len, NULL, sealed + BLOCK_NONCEBYTES,
						       sealed_len - BLOCK_NONCEBYTES, ad, ad_len, sealed,
						       iter->key) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED,
			    "sample block %" G_GINT64_FORMAT " fails to authenticate: it was altered or moved, "
			    "or the device's data key was replaced",
			    block_id);
		return FALSE;
	}
	g_array_set_size(iter->samples, 0);
	iter->index = 0;
	if (!amu_batch_decode_group(category, iter->plain, (size_t)plain_len, iter->samples, error)) {
		g_prefix_error(error, "sample block %" G_GINT64_FORMAT ": ", block_id);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_sample_store_iter_next(AmuSampleStoreIter *iter, AmuSample *sample, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	for (;;) {
		while (iter->index < iter->samples->len) {
			AmuSample *s = &g_array_index(iter->samples, AmuSample, iter->index++);
			int64_t ts = s->timestamp_ms - iter->offset_ms;
			if (ts < iter->from_ms || ts >= iter->to_ms)
				continue;
			*sample = *s;
			sample->timestamp_ms = ts;
			return TRUE;
		}
		if (iter->stmt == NULL)
			return FALSE;
		int rc = sqlite3_step(iter->stmt);
		if (rc == SQLITE_DONE) {
			sqlite3_finalize(iter->stmt);
			iter->stmt = NULL;
			return FALSE;
		}
		if (rc != SQLITE_ROW) {
			amu_store_set_sqlite_error(iter->store, error, rc, "reading samples");
			return FALSE;
		}
		if (!iter_load_block(iter, error))
			return FALSE;
	}
}

void
amu_sample_store_iter_free(AmuSampleStoreIter *iter)
{
	if (iter == NULL)
		return;
	if (iter->stmt != NULL)
		sqlite3_finalize(iter->stmt);
	if (iter->plain != NULL) {
		sodium_memzero(iter->plain, iter->plain_cap);
		g_free(iter->plain);
	}
	if (iter->samples != NULL) {
		sodium_memzero(iter->samples->data, iter->samples->len * sizeof(AmuSample));
		g_array_unref(iter->samples);
	}
	sodium_free(iter->key);
	g_free(iter->device_id);
	amu_store_unref(iter->store);
	g_free(iter);
}

/* ------------------------------------------------------------------ housekeeping */

gboolean
amu_sample_store_prune(AmuStore *store, const guint retention_days[AMU_CATEGORY_LAST + 1], int64_t now_ms,
		       gboolean dry_run, uint64_t *removed, GError **error)
{
	g_autoptr(sqlite3_stmt) count = NULL;
	g_autoptr(sqlite3_stmt) del = NULL;
	uint64_t total = 0;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!prepare(store, &count,
		     "SELECT COALESCE(SUM(count), 0) FROM sample_blocks WHERE category = ?1 AND t_end < ?2",
		     "pruning samples", error) ||
	    !prepare(store, &del, "DELETE FROM sample_blocks WHERE category = ?1 AND t_end < ?2", "pruning samples",
		     error))
		return FALSE;
	if (!dry_run && !amu_store_begin(store, error))
		return FALSE;
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++) {
		int64_t cutoff;
		int rc;

		if (retention_days[c] == 0)
			continue;
		cutoff = now_ms - (int64_t)retention_days[c] * 86400000;
		sqlite3_reset(count);
		sqlite3_bind_int(count, 1, c);
		sqlite3_bind_int64(count, 2, cutoff);
		rc = sqlite3_step(count);
		if (rc != SQLITE_ROW) {
			amu_store_set_sqlite_error(store, error, rc, "pruning samples");
			amu_store_rollback(store);
			return FALSE;
		}
		total += (uint64_t)sqlite3_column_int64(count, 0);
		if (dry_run)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int(del, 1, c);
		sqlite3_bind_int64(del, 2, cutoff);
		if (!step_done(store, del, "pruning samples", error)) {
			amu_store_rollback(store);
			return FALSE;
		}
	}
	if (!dry_run && !amu_store_commit(store, error)) {
		amu_store_rollback(store);
		return FALSE;
	}
	*removed = total;
	return TRUE;
}

gboolean
amu_sample_store_delete_device(AmuStore *store, const char *device_id, GError **error)
{
	g_autoptr(sqlite3_stmt) blocks = NULL;
	g_autoptr(sqlite3_stmt) cursor = NULL;
	gboolean own;

	if (!prepare(store, &blocks, "DELETE FROM sample_blocks WHERE device_id = ?1", "deleting samples", error) ||
	    !prepare(store, &cursor, "DELETE FROM sync_cursors WHERE device_id = ?1", "deleting samples", error))
		return FALSE;
	sqlite3_bind_text(blocks, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(cursor, 1, device_id, -1, SQLITE_STATIC);
	/* both or neither, in the caller's transaction if it has one */
	own = sqlite3_get_autocommit(amu_store_get_db(store)) != 0;
	if (own && !amu_store_begin(store, error))
		return FALSE;
	if (!step_done(store, blocks, "deleting samples", error) ||
	    !step_done(store, cursor, "deleting the sync cursor", error) || (own && !amu_store_commit(store, error))) {
		if (own)
			amu_store_rollback(store);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_sample_store_count(AmuStore *store, const char *device_id, uint64_t samples[AMU_CATEGORY_LAST + 1],
		       GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int rc;

	memset(samples, 0, sizeof(uint64_t) * (AMU_CATEGORY_LAST + 1));
	if (!prepare(store, &stmt,
		     "SELECT category, SUM(count) FROM sample_blocks WHERE device_id = ?1 GROUP BY category",
		     "counting samples", error))
		return FALSE;
	sqlite3_bind_text(stmt, 1, device_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int c = sqlite3_column_int(stmt, 0);
		if (amu_category_is_valid(c))
			samples[c] = (uint64_t)sqlite3_column_int64(stmt, 1);
	}
	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(store, error, rc, "counting samples");
		return FALSE;
	}
	return TRUE;
}
