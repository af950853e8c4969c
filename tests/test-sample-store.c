/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amu-batch.h"
#include "amu-device-log.h"
#include "amu-sample-store.h"
#include "amu-store.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The host's sample store: what a sync leaves on disk, what reading it
 * back returns, and what happens when the disk, the file or the data in it
 * misbehave. */

#define DB_NAME "amulet.db"
#define DEVICE_A "5d41402abc4b2a76b9719d911017c592"
#define DEVICE_B "7d793037a0760186574b0282f2f435e7"
#define T0 ((int64_t)1700000000000)
#define DAY_MS ((int64_t)86400000)
#define MAX_GROUPS 8

static const uint8_t master_key[AMU_STORE_KEYBYTES] = { 0x6d, 0x61, 0x73, 0x74 };

/* ---------------------------------------------------------------- scratch store */

typedef struct {
	char *root;
	char *dir;
	char *db_path;
	AmuStore *store;
	uint8_t key[AMU_STORE_KEYBYTES]; /* DEVICE_A's data key */
} Scratch;

static void
scratch_open(Scratch *scratch)
{
	g_autoptr(GError) error = NULL;

	scratch->store = amu_store_open_with_key(scratch->dir, DB_NAME, master_key, &error);
	if (error != NULL)
		g_printerr("  open: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(scratch->store);
}

static void
scratch_close(Scratch *scratch)
{
	g_clear_pointer(&scratch->store, amu_store_unref);
}

static Scratch *
scratch_new(void)
{
	Scratch *scratch = g_new0(Scratch, 1);
	g_autoptr(GError) error = NULL;

	scratch->root = g_dir_make_tmp("amu-samples-XXXXXX", NULL);
	g_assert(scratch->root != NULL);
	scratch->dir = g_build_filename(scratch->root, "data", NULL);
	scratch->db_path = g_build_filename(scratch->dir, DB_NAME, NULL);
	scratch_open(scratch);
	CU_ASSERT_TRUE(amu_store_create_data_key(scratch->store, DEVICE_A, scratch->key, &error));
	return scratch;
}

static void
scratch_free(Scratch *scratch)
{
	amu_store_unref(scratch->store);
	amu_test_remove_tree(scratch->root);
	g_free(scratch->root);
	g_free(scratch->dir);
	g_free(scratch->db_path);
	g_free(scratch);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Scratch, scratch_free)

static int64_t
query_int64(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return sqlite3_column_int64(stmt, 0);
}

static void
exec_ok(AmuStore *store, const char *sql)
{
	g_autoptr(GError) error = NULL;

	if (!amu_store_exec(store, sql, &error))
		g_printerr("  %s: %s\n", sql, error->message);
	CU_ASSERT_PTR_NULL(error);
}

static void G_GNUC_PRINTF(2, 3) exec_printf(AmuStore *store, const char *format, ...)
{
	g_autofree char *sql = NULL;
	va_list args;

	va_start(args, format);
	sql = g_strdup_vprintf(format, args);
	va_end(args);
	exec_ok(store, sql);
}

/* ---------------------------------------------------------------- batches */

/* A SyncBatch as the receiver hands it over: groups of packed columns. */
typedef struct {
	Amulet__V1__SyncBatch batch;
	Amulet__V1__SampleGroup groups[MAX_GROUPS];
	Amulet__V1__SampleGroup *group_ptrs[MAX_GROUPS];
	GByteArray *columns[MAX_GROUPS];
} Batch;

static Batch *
batch_new(uint64_t first_seq)
{
	Batch *batch = g_new0(Batch, 1);

	amulet__v1__sync_batch__init(&batch->batch);
	batch->batch.first_seq = first_seq;
	batch->batch.end_seq = first_seq;
	batch->batch.groups = batch->group_ptrs;
	return batch;
}

static void
batch_free(Batch *batch)
{
	for (size_t i = 0; i < batch->batch.n_groups; i++)
		g_byte_array_unref(batch->columns[i]);
	g_free(batch);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Batch, batch_free)

/* Adds a group as the device sent it, whatever its bytes say. */
static void
batch_add_raw(Batch *batch, uint32_t category, uint32_t count, const void *columns, size_t len)
{
	size_t i = batch->batch.n_groups++;

	g_assert(i < MAX_GROUPS);
	batch->columns[i] = g_byte_array_new();
	g_byte_array_append(batch->columns[i], columns, (guint)len);
	amulet__v1__sample_group__init(&batch->groups[i]);
	batch->groups[i].category = category;
	batch->groups[i].count = count;
	batch->groups[i].columns.data = batch->columns[i]->data;
	batch->groups[i].columns.len = batch->columns[i]->len;
	batch->group_ptrs[i] = &batch->groups[i];
	batch->batch.end_seq += count;
}

/* Encodes @samples (one category) into their packed columns. */
static GByteArray *
encode(const GArray *samples)
{
	GByteArray *columns = g_byte_array_new();
	const AmuSample *first = &g_array_index(samples, AmuSample, 0);

	CU_ASSERT_EQUAL_FATAL(
	  amu_batch_encode_group(columns, first->category, first, samples->len, G_MAXSIZE),
	  samples->len);
	return columns;
}

static void
batch_add(Batch *batch, const GArray *samples)
{
	g_autoptr(GByteArray) columns = encode(samples);

	batch_add_raw(batch,
		      g_array_index(samples, AmuSample, 0).category,
		      samples->len,
		      columns->data,
		      columns->len);
}

/* @n samples of @category every @period_ms from @start_ms, values inside
 * the category's range. */
static GArray *
series(AmuCategory category, int64_t start_ms, int64_t period_ms, guint n)
{
	GArray *samples = g_array_sized_new(FALSE, TRUE, sizeof(AmuSample), n);

	for (guint i = 0; i < n; i++) {
		AmuSample sample = { .timestamp_ms = start_ms + (int64_t)i * period_ms,
				     .category = category };

		for (guint c = 0; c < amu_category_get_n_values(category); c++) {
			gint32 min, max;

			amu_category_get_value_range(category, c, &min, &max);
			sample.values[c] =
			  (gint32)MIN(min + ((gint64)max - min) / 2 + (i * 7 + c) % 13, max);
		}
		g_array_append_val(samples, sample);
	}
	return samples;
}

static GArray *
slice(const GArray *samples, guint from, guint n)
{
	GArray *part = g_array_sized_new(FALSE, FALSE, sizeof(AmuSample), n);

	g_array_append_vals(part, &g_array_index(samples, AmuSample, from), n);
	return part;
}

/* ---------------------------------------------------------------- the store's side */

static gboolean
ingest(Scratch *scratch,
       const char *device_id,
       const uint8_t *key,
       const Batch *batch,
       int64_t offset_ms,
       GError **error)
{
	return amu_sample_store_ingest(
	  scratch->store, device_id, key, &batch->batch, offset_ms, T0 + 1000 * DAY_MS, error);
}

static void
ingest_ok(Scratch *scratch,
	  const char *device_id,
	  const uint8_t *key,
	  const Batch *batch,
	  int64_t offset_ms)
{
	g_autoptr(GError) error = NULL;

	if (!ingest(scratch, device_id, key, batch, offset_ms, &error))
		g_printerr("  ingest: %s\n", error->message);
	CU_ASSERT_PTR_NULL(error);
}

/* The samples of [from, to) as a reader gets them, and the error that ended
 * the walk, if any. */
static GArray *
read_range(Scratch *scratch,
	   const char *device_id,
	   const uint8_t *key,
	   AmuCategory category,
	   int64_t from_ms,
	   int64_t to_ms,
	   GError **error)
{
	GArray *samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(AmuSampleStoreIter) iter = amu_sample_store_iter_new(
	  scratch->store, device_id, key, category, from_ms, to_ms, error);
	AmuSample sample;

	if (iter == NULL)
		return samples;
	while (amu_sample_store_iter_next(iter, &sample, error))
		g_array_append_val(samples, sample);
	return samples;
}

static GArray *
read_all(Scratch *scratch, const char *device_id, const uint8_t *key)
{
	g_autoptr(GError) error = NULL;
	GArray *samples = read_range(scratch, device_id, key, 0, G_MININT64, G_MAXINT64, &error);

	if (error != NULL)
		g_printerr("  reading: %s\n", error->message);
	CU_ASSERT_PTR_NULL(error);
	return samples;
}

/* @got holds exactly @want[from, from + n), moved back by @offset_ms. */
static gboolean
samples_match(const GArray *got, const GArray *want, guint from, guint n, int64_t offset_ms)
{
	if (got->len != n) {
		g_printerr("  %u samples, expected %u\n", got->len, n);
		return FALSE;
	}
	for (guint i = 0; i < n; i++) {
		AmuSample expected = g_array_index(want, AmuSample, from + i);

		expected.timestamp_ms -= offset_ms;
		if (memcmp(&g_array_index(got, AmuSample, i), &expected, sizeof(AmuSample)) != 0) {
			g_printerr("  sample %u differs\n", i);
			return FALSE;
		}
	}
	return TRUE;
}

static uint64_t
cursor_of(Scratch *scratch, const char *device_id)
{
	g_autoptr(GError) error = NULL;
	uint64_t cursor = G_MAXUINT64;

	CU_ASSERT_TRUE(
	  amu_sample_store_get_cursor(scratch->store, device_id, &cursor, NULL, &error));
	return cursor;
}

static uint64_t
count_of(Scratch *scratch, const char *device_id, AmuCategory category)
{
	g_autoptr(GError) error = NULL;
	uint64_t counts[AMU_CATEGORY_LAST + 1];
	uint64_t total = 0;

	CU_ASSERT_TRUE_FATAL(amu_sample_store_count(scratch->store, device_id, counts, &error));
	if (category != 0)
		return counts[category];
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		total += counts[c];
	return total;
}

/* ---------------------------------------------------------------- ingest and read */

static void
test_ingest_and_read(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) batch = batch_new(0);
	/* heart rate in two blocks, [0, 10) and [10, 20) seconds, and steps */
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 20);
	g_autoptr(GArray) first = slice(heart, 0, 10);
	g_autoptr(GArray) second = slice(heart, 10, 10);
	g_autoptr(GArray) steps = series(AMU_CATEGORY_STEPS, T0, 60000, 5);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GError) error = NULL;
	const int64_t offset = 5000; /* the device's clock is 5 s fast */
	uint64_t next_seq = 0;
	int64_t last_sync = 0;

	batch_add(batch, first);
	batch_add(batch, steps);
	batch_add(batch, second);
	CU_ASSERT_TRUE(
	  amu_sample_store_get_cursor(scratch->store, DEVICE_A, &next_seq, &last_sync, &error));
	CU_ASSERT_EQUAL(next_seq, 0);
	CU_ASSERT_EQUAL(last_sync, 0);
	ingest_ok(scratch, DEVICE_A, scratch->key, batch, offset);
	CU_ASSERT_TRUE(
	  amu_sample_store_get_cursor(scratch->store, DEVICE_A, &next_seq, &last_sync, &error));
	CU_ASSERT_EQUAL(next_seq, 25);
	CU_ASSERT_EQUAL(last_sync, T0 + 1000 * DAY_MS);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, AMU_CATEGORY_HEART_RATE), 20);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, AMU_CATEGORY_STEPS), 5);
	CU_ASSERT_EQUAL(query_int64(scratch->store, "SELECT count(*) FROM sample_blocks"), 3);

	/* Everything: by category, then time, on the host's clock. */
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_EQUAL_FATAL(got->len, 25);
	{
		g_autoptr(GArray) head = slice(got, 0, 20);
		g_autoptr(GArray) tail = slice(got, 20, 5);

		CU_ASSERT_TRUE(samples_match(head, heart, 0, 20, offset));
		CU_ASSERT_TRUE(samples_match(tail, steps, 0, 5, offset));
	}
	g_clear_pointer(&got, g_array_unref);

#define HOST(i) (T0 + (i)*1000 - offset) /* host time of heart-rate sample i */
	const struct {
		AmuCategory category;
		int64_t from, to;
		guint first, n; /* heart-rate samples expected */
	} ranges[] = {
		{ AMU_CATEGORY_HEART_RATE, G_MININT64, G_MAXINT64, 0, 20 },
		{ AMU_CATEGORY_HEART_RATE, HOST(9), HOST(10), 9, 1 }, /* last of a block */
		{ AMU_CATEGORY_HEART_RATE,
		  HOST(10),
		  G_MAXINT64,
		  10,
		  10 },							  /* from a block's first */
		{ AMU_CATEGORY_HEART_RATE, G_MININT64, HOST(10), 0, 10 }, /* to a block's first */
		{ AMU_CATEGORY_HEART_RATE, HOST(3), HOST(15), 3, 12 },	  /* across the edge */
		{ AMU_CATEGORY_HEART_RATE, HOST(0), HOST(0), 0, 0 },	  /* empty */
		{ AMU_CATEGORY_HEART_RATE, HOST(0), HOST(0) + 1, 0, 1 },
		{ AMU_CATEGORY_HEART_RATE, HOST(19), G_MAXINT64, 19, 1 },
		{ AMU_CATEGORY_HEART_RATE, HOST(19) + 1, G_MAXINT64, 0, 0 },
		{ AMU_CATEGORY_HEART_RATE, HOST(9) + 1, HOST(10), 0, 0 }, /* between samples */
		{ AMU_CATEGORY_SPO2, G_MININT64, G_MAXINT64, 0, 0 },
	};
	for (size_t r = 0; r < G_N_ELEMENTS(ranges); r++) {
		got = read_range(scratch,
				 DEVICE_A,
				 scratch->key,
				 ranges[r].category,
				 ranges[r].from,
				 ranges[r].to,
				 &error);
		CU_ASSERT_PTR_NULL(error);
		if (!samples_match(got, heart, ranges[r].first, ranges[r].n, offset))
			g_printerr("  range %zu\n", r);
		CU_ASSERT_TRUE(samples_match(got, heart, ranges[r].first, ranges[r].n, offset));
		g_clear_pointer(&got, g_array_unref);
	}
#undef HOST
	/* steps only, from their second minute */
	got = read_range(scratch,
			 DEVICE_A,
			 scratch->key,
			 AMU_CATEGORY_STEPS,
			 T0 + 60000 - offset,
			 G_MAXINT64,
			 &error);
	CU_ASSERT_TRUE(samples_match(got, steps, 1, 4, offset));
	g_clear_pointer(&got, g_array_unref);
	/* another device has nothing */
	got = read_all(scratch, DEVICE_B, scratch->key);
	CU_ASSERT_EQUAL(got->len, 0);
}

static void
test_batch_not_at_cursor(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) samples = series(AMU_CATEGORY_SPO2, T0, 60000, 10);
	g_autoptr(GArray) got = NULL;
	const uint64_t starts[] = { 11, 9, 0, 5 }; /* a gap, an overlap, a replay, inside */

	{
		g_autoptr(Batch) batch = batch_new(0);
		batch_add(batch, samples);
		ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(starts); i++) {
		g_autoptr(Batch) batch = batch_new(starts[i]);
		g_autoptr(GError) error = NULL;

		batch_add(batch, samples);
		CU_ASSERT_FALSE(ingest(scratch, DEVICE_A, scratch->key, batch, 0, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_ROLLBACK);
		CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 10);
		CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0), 10);
	}
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, samples, 0, 10, 0));

	/* A device never synced starts at 0. */
	{
		g_autoptr(Batch) batch = batch_new(5);
		g_autoptr(GError) error = NULL;

		batch_add(batch, samples);
		CU_ASSERT_FALSE(ingest(scratch, DEVICE_B, scratch->key, batch, 0, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_ROLLBACK);
		CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_B), 0);
		CU_ASSERT_EQUAL(
		  query_int64(scratch->store,
			      "SELECT count(*) FROM sync_cursors WHERE device_id = '" DEVICE_B "'"),
		  0);
		CU_ASSERT_EQUAL(count_of(scratch, DEVICE_B, 0), 0);
	}
}

static void
test_malformed_group(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) good = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 10);
	g_autoptr(GByteArray) columns = encode(good);
	g_autoptr(GArray) got = NULL;
	/* byte scripts: count 1, timestamp 0 (zigzag 0), then the value zigzagged */
	static const uint8_t bpm_60[] = { 0x01, 0x00, 0x78 };
	static const uint8_t bpm_400[] = { 0x01, 0x00, 0xa0, 0x06 };
	static const uint8_t bpm_60_trailing[] = { 0x01, 0x00, 0x78, 0x00 };
	static const uint8_t bpm_60_padded[] = {
		0x01, 0x80, 0x00, 0x78
	}; /* timestamp 0 in two bytes */

	/* The script is what it says: one sample, 60 bpm at the epoch. */
	{
		g_autoptr(Batch) batch = batch_new(0);
		batch_add_raw(batch, AMU_CATEGORY_HEART_RATE, 1, bpm_60, sizeof(bpm_60));
		ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);
		got = read_all(scratch, DEVICE_A, scratch->key);
		CU_ASSERT_EQUAL_FATAL(got->len, 1);
		CU_ASSERT_EQUAL(g_array_index(got, AmuSample, 0).timestamp_ms, 0);
		CU_ASSERT_EQUAL(g_array_index(got, AmuSample, 0).category, AMU_CATEGORY_HEART_RATE);
		CU_ASSERT_EQUAL(g_array_index(got, AmuSample, 0).values[0], 60);
		g_clear_pointer(&got, g_array_unref);
	}

	/* A good group followed by a bad one: nothing of the batch is kept. */
	for (int bad = 0; bad < 7; bad++) {
		g_autoptr(Batch) batch = batch_new(1);
		g_autoptr(GError) error = NULL;

		batch_add(batch, good);
		switch (bad) {
		case 0: /* truncated */
			batch_add_raw(
			  batch, AMU_CATEGORY_HEART_RATE, 10, columns->data, columns->len - 1);
			break;
		case 1: /* announces more than it holds */
			batch_add_raw(
			  batch, AMU_CATEGORY_HEART_RATE, 11, columns->data, columns->len);
			break;
		case 2: /* 400 bpm */
			batch_add_raw(batch, AMU_CATEGORY_HEART_RATE, 1, bpm_400, sizeof(bpm_400));
			break;
		case 3:
			batch_add_raw(batch,
				      AMU_CATEGORY_HEART_RATE,
				      1,
				      bpm_60_trailing,
				      sizeof(bpm_60_trailing));
			break;
		case 4:
			batch_add_raw(
			  batch, AMU_CATEGORY_HEART_RATE, 1, bpm_60_padded, sizeof(bpm_60_padded));
			break;
		case 5: /* no such category */
			batch_add_raw(batch, AMU_CATEGORY_LAST + 1, 1, bpm_60, sizeof(bpm_60));
			break;
		default: /* empty */
			batch_add_raw(batch, AMU_CATEGORY_HEART_RATE, 1, NULL, 0);
			break;
		}
		CU_ASSERT_FALSE(ingest(scratch, DEVICE_A, scratch->key, batch, 0, &error));
		AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
		CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 1);
		CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0), 1);
		CU_ASSERT_EQUAL(query_int64(scratch->store, "SELECT count(*) FROM sample_blocks"),
				1);
	}

	/* The good group alone is fine. */
	{
		g_autoptr(Batch) batch = batch_new(1);
		batch_add(batch, good);
		ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);
		CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 11);
		got = read_range(scratch, DEVICE_A, scratch->key, 0, 1, G_MAXINT64, NULL);
		CU_ASSERT_TRUE(samples_match(got, good, 0, 10, 0));
	}
}

/* ---------------------------------------------------------------- tampering */

static GBytes *
sealed_of(Scratch *scratch, int64_t block_id)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(
	  sqlite3_prepare_v2(amu_store_get_db(scratch->store),
			     "SELECT sealed FROM sample_blocks WHERE block_id = ?1",
			     -1,
			     &stmt,
			     NULL),
	  SQLITE_OK);
	sqlite3_bind_int64(stmt, 1, block_id);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return g_bytes_new(sqlite3_column_blob(stmt, 0), (gsize)sqlite3_column_bytes(stmt, 0));
}

static void
set_sealed(Scratch *scratch, int64_t block_id, const void *sealed, size_t len)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(
	  sqlite3_prepare_v2(amu_store_get_db(scratch->store),
			     "UPDATE sample_blocks SET sealed = ?1 WHERE block_id = ?2",
			     -1,
			     &stmt,
			     NULL),
	  SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, sealed, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(stmt, 2, block_id);
	CU_ASSERT_EQUAL(sqlite3_step(stmt), SQLITE_DONE);
	CU_ASSERT_EQUAL(sqlite3_changes(amu_store_get_db(scratch->store)), 1);
}

/* Reading the device's samples fails with TAMPERED. */
static void
assert_tampered(Scratch *scratch, const char *device_id, const uint8_t *key)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GArray) got =
	  read_range(scratch, device_id, key, 0, G_MININT64, G_MAXINT64, &error);

	AMU_ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
}

static void
test_flipped_byte(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) batch = batch_new(0);
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 50);
	g_autoptr(GArray) spo2 = series(AMU_CATEGORY_SPO2, T0, 60000, 50);
	g_autoptr(GBytes) sealed = NULL;
	g_autoptr(GArray) got = NULL;
	int64_t block_id;
	size_t len;

	batch_add(batch, heart);
	batch_add(batch, spo2);
	ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);
	/* the second block: readers get the first block's samples, then the error */
	block_id =
	  query_int64(scratch->store, "SELECT block_id FROM sample_blocks WHERE category = 3");
	sealed = sealed_of(scratch, block_id);
	len = g_bytes_get_size(sealed);
	for (size_t offset = 0; offset < len; offset += len / 5) {
		g_autofree uint8_t *copy = g_memdup2(g_bytes_get_data(sealed, NULL), len);
		const size_t at = MIN(offset, len - 1); /* nonce, ciphertext, ..., tag */

		copy[at] ^= 0x01;
		set_sealed(scratch, block_id, copy, len);
		assert_tampered(scratch, DEVICE_A, scratch->key);
	}
	/* and with the last byte of the tag */
	{
		g_autofree uint8_t *copy = g_memdup2(g_bytes_get_data(sealed, NULL), len);
		copy[len - 1] ^= 0x80;
		set_sealed(scratch, block_id, copy, len);
		assert_tampered(scratch, DEVICE_A, scratch->key);
	}
	set_sealed(scratch, block_id, g_bytes_get_data(sealed, NULL), len);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_EQUAL(got->len, 100);
}

static void
test_block_moved(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 30);
	g_autoptr(GArray) steps = series(AMU_CATEGORY_STEPS, T0, 60000, 30);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GBytes) sealed_b = NULL;
	int64_t a_heart, a_steps, b_heart;

	/* Both devices under the same data key: only the associated data can
	 * tell their blocks apart. */
	{
		g_autoptr(Batch) a = batch_new(0);
		g_autoptr(Batch) b = batch_new(0);

		batch_add(a, heart);
		batch_add(a, steps);
		batch_add(b, heart);
		ingest_ok(scratch, DEVICE_A, scratch->key, a, 0);
		ingest_ok(scratch, DEVICE_B, scratch->key, b, 0);
	}
	a_heart = query_int64(scratch->store,
			      "SELECT block_id FROM sample_blocks WHERE device_id = '" DEVICE_A
			      "' AND category = 1");
	a_steps = query_int64(scratch->store,
			      "SELECT block_id FROM sample_blocks WHERE device_id = '" DEVICE_A
			      "' AND category = 2");
	b_heart = query_int64(
	  scratch->store, "SELECT block_id FROM sample_blocks WHERE device_id = '" DEVICE_B "'");
	sealed_b = sealed_of(scratch, b_heart);

	/* A's heart-rate blob copied into B's heart-rate row. */
	{
		g_autoptr(GBytes) sealed_a = sealed_of(scratch, a_heart);
		set_sealed(
		  scratch, b_heart, g_bytes_get_data(sealed_a, NULL), g_bytes_get_size(sealed_a));
		assert_tampered(scratch, DEVICE_B, scratch->key);
		set_sealed(
		  scratch, b_heart, g_bytes_get_data(sealed_b, NULL), g_bytes_get_size(sealed_b));
		got = read_all(scratch, DEVICE_B, scratch->key);
		CU_ASSERT_TRUE(samples_match(got, heart, 0, 30, 0));
		g_clear_pointer(&got, g_array_unref);
	}
	/* A's row handed to B as it is. */
	exec_printf(scratch->store,
		    "UPDATE sample_blocks SET device_id = '%s' WHERE block_id = %" G_GINT64_FORMAT,
		    DEVICE_B,
		    a_heart);
	assert_tampered(scratch, DEVICE_B, scratch->key);
	exec_printf(scratch->store,
		    "UPDATE sample_blocks SET device_id = '%s' WHERE block_id = %" G_GINT64_FORMAT,
		    DEVICE_A,
		    a_heart);
	/* ...or relabelled as another category of the same device. */
	exec_printf(scratch->store,
		    "UPDATE sample_blocks SET category = %d WHERE block_id = %" G_GINT64_FORMAT,
		    AMU_CATEGORY_STEPS,
		    a_heart);
	assert_tampered(scratch, DEVICE_A, scratch->key);
	exec_printf(scratch->store,
		    "UPDATE sample_blocks SET category = %d WHERE block_id = %" G_GINT64_FORMAT,
		    AMU_CATEGORY_HEART_RATE,
		    a_heart);
	/* ...or two blocks of the device swapping blobs. */
	{
		g_autoptr(GBytes) heart_blob = sealed_of(scratch, a_heart);
		g_autoptr(GBytes) steps_blob = sealed_of(scratch, a_steps);

		set_sealed(scratch,
			   a_heart,
			   g_bytes_get_data(steps_blob, NULL),
			   g_bytes_get_size(steps_blob));
		set_sealed(scratch,
			   a_steps,
			   g_bytes_get_data(heart_blob, NULL),
			   g_bytes_get_size(heart_blob));
		assert_tampered(scratch, DEVICE_A, scratch->key);
		set_sealed(scratch,
			   a_heart,
			   g_bytes_get_data(heart_blob, NULL),
			   g_bytes_get_size(heart_blob));
		set_sealed(scratch,
			   a_steps,
			   g_bytes_get_data(steps_blob, NULL),
			   g_bytes_get_size(steps_blob));
	}
	/* Everything back in place reads again. */
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_EQUAL(got->len, 60);
	g_clear_pointer(&got, g_array_unref);
	got = read_all(scratch, DEVICE_B, scratch->key);
	CU_ASSERT_EQUAL(got->len, 30);
}

/* ---------------------------------------------------------------- on disk */

static gboolean
bytes_contain(const uint8_t *haystack, size_t size, const void *needle, size_t len)
{
	for (size_t i = 0; len <= size && i <= size - len; i++) {
		if (memcmp(haystack + i, needle, len) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Whether the database file or its write-ahead log holds @needle. */
static gboolean
files_contain(const char *db_path, const void *needle, size_t len)
{
	const char *suffixes[] = { "", "-wal" };

	for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		g_autofree char *path = g_strconcat(db_path, suffixes[i], NULL);
		g_autofree char *contents = NULL;
		gsize size = 0;

		if (g_file_get_contents(path, &contents, &size, NULL) &&
		    bytes_contain((const uint8_t *)contents, size, needle, len))
			return TRUE;
	}
	return FALSE;
}

static void
test_no_plaintext_on_disk(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) batch = batch_new(0);
	g_autoptr(GArray) where = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GByteArray) columns = NULL;
	g_autoptr(GArray) got = NULL;
	g_autofree char *control_path = g_build_filename(scratch->root, "control.db", NULL);
	sqlite3 *control = NULL;
	sqlite3_stmt *stmt = NULL;

	/* A walk in Paris: positions and heights nothing else in a database
	 * looks like. */
	for (guint i = 0; i < 12; i++) {
		AmuSample sample = { .timestamp_ms = T0 + i * 1000 + (i % 3) * 17,
				     .category = AMU_CATEGORY_LOCATION,
				     .values = { 488566140 + (gint32)(i * i * 1337),
						 23522219 - (gint32)(i * 7919),
						 3500 + (gint32)(i * 31) } };
		g_array_append_val(where, sample);
	}
	columns = encode(where);
	CU_ASSERT_TRUE_FATAL(columns->len >= 12);
	batch_add(batch, where);
	ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);

	/* The scan finds the columns when they are written in the clear. */
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(control_path, &control), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(control, "CREATE TABLE clear(columns BLOB)", NULL, NULL, NULL),
			SQLITE_OK);
	CU_ASSERT_EQUAL(
	  sqlite3_prepare_v2(control, "INSERT INTO clear VALUES(?1)", -1, &stmt, NULL), SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, columns->data, (int)columns->len, SQLITE_STATIC);
	CU_ASSERT_EQUAL(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_finalize(stmt);
	sqlite3_close(control);
	CU_ASSERT_TRUE(files_contain(control_path, columns->data, columns->len));
	CU_ASSERT_TRUE(files_contain(control_path, columns->data + columns->len - 12, 12));

	/* The store holds them only sealed, while open (in the log) and closed. */
	CU_ASSERT_FALSE(files_contain(scratch->db_path, columns->data, columns->len));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, columns->data + columns->len - 12, 12));
	scratch_close(scratch);
	CU_ASSERT_FALSE(files_contain(scratch->db_path, columns->data, columns->len));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, columns->data + columns->len - 12, 12));

	scratch_open(scratch);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, where, 0, 12, 0));
}

static void
test_wrong_master_key(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) batch = batch_new(0);
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 100);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuStore) wrong = NULL;
	uint8_t other_master[AMU_STORE_KEYBYTES] = { 0x6d, 0x61, 0x73, 0x75 };
	uint8_t key[AMU_STORE_KEYBYTES] = { 0 };

	batch_add(batch, heart);
	ingest_ok(scratch, DEVICE_A, scratch->key, batch, 0);
	scratch_close(scratch);

	wrong = amu_store_open_with_key(scratch->dir, DB_NAME, other_master, &error);
	CU_ASSERT_PTR_NULL(wrong);
	AMU_ASSERT_ERROR(error, AMU_ERROR_WRONG_MASTER_KEY);
	g_clear_error(&error);

	/* The right key: the data key unwraps, the samples read as stored. */
	scratch_open(scratch);
	CU_ASSERT_TRUE(amu_store_get_data_key(scratch->store, DEVICE_A, key, &error));
	CU_ASSERT_EQUAL(memcmp(key, scratch->key, sizeof(key)), 0);
	got = read_all(scratch, DEVICE_A, key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 100, 0));
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 100);
}

/* ---------------------------------------------------------------- when writing fails */

/* A day of walking at 1 Hz, positions wandering: well over a hundred
 * kilobytes of columns. */
static Batch *
big_batch(uint64_t first_seq, GArray **samples_out)
{
	Batch *batch = batch_new(first_seq);
	g_autoptr(GRand) rand = g_rand_new_with_seed(42);
	GArray *samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));

	for (guint g = 0; g < 4; g++) {
		g_autoptr(GArray) group = g_array_new(FALSE, FALSE, sizeof(AmuSample));

		for (guint i = 0; i < 5000; i++) {
			AmuSample sample = { .timestamp_ms = T0 + DAY_MS + (g * 5000 + i) * 1000,
					     .category = AMU_CATEGORY_LOCATION,
					     .values = {
					       g_rand_int_range(rand, -900000000, 900000000),
					       g_rand_int_range(rand, -1800000000, 1800000000),
					       g_rand_int_range(rand, -100000, 1000000) } };
			g_array_append_val(group, sample);
		}
		batch_add(batch, group);
		g_array_append_vals(samples, group->data, group->len);
	}
	*samples_out = samples;
	return batch;
}

static void
test_disk_full(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) small = batch_new(0);
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 500);
	g_autoptr(GArray) where = NULL;
	g_autoptr(Batch) big = NULL;
	g_autoptr(GArray) got = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *limit = NULL;

	batch_add(small, heart);
	ingest_ok(scratch, DEVICE_A, scratch->key, small, 0);
	big = big_batch(500, &where);

	limit = g_strdup_printf("PRAGMA max_page_count = %" G_GINT64_FORMAT,
				query_int64(scratch->store, "PRAGMA page_count") + 2);
	exec_ok(scratch->store, limit);
	CU_ASSERT_FALSE(ingest(scratch, DEVICE_A, scratch->key, big, 0, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_NO_SPACE);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, scratch->dir));
	g_clear_error(&error);

	/* What was stored before is all there; the cursor did not move. */
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 500);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0), 500);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 500, 0));
	g_clear_pointer(&got, g_array_unref);

	/* Space again: the same batch goes in. */
	exec_ok(scratch->store, "PRAGMA max_page_count = 1073741823");
	ingest_ok(scratch, DEVICE_A, scratch->key, big, 0);
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 500 + where->len);
	got = read_range(
	  scratch, DEVICE_A, scratch->key, AMU_CATEGORY_LOCATION, G_MININT64, G_MAXINT64, &error);
	CU_ASSERT_TRUE(samples_match(got, where, 0, where->len, 0));
}

static void
test_read_only(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(Batch) first = batch_new(0);
	g_autoptr(Batch) second = batch_new(100);
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 100);
	g_autoptr(GArray) later = series(AMU_CATEGORY_HEART_RATE, T0 + 100000, 1000, 100);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GError) error = NULL;

	batch_add(first, heart);
	batch_add(second, later);
	ingest_ok(scratch, DEVICE_A, scratch->key, first, 0);

	/* A connection that may not write (root ignores file modes, so this
	 * stands in for a read-only file everywhere). */
	exec_ok(scratch->store, "PRAGMA query_only = ON");
	CU_ASSERT_FALSE(ingest(scratch, DEVICE_A, scratch->key, second, 0, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, scratch->db_path));
	g_clear_error(&error);
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 100);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 100, 0));
	g_clear_pointer(&got, g_array_unref);
	exec_ok(scratch->store, "PRAGMA query_only = OFF");

	/* The file itself read-only: the store says so when it opens. */
	if (geteuid() != 0) {
		g_autoptr(AmuStore) store = NULL;

		scratch_close(scratch);
		CU_ASSERT_EQUAL_FATAL(g_chmod(scratch->db_path, 0400), 0);
		store = amu_store_open_with_key(scratch->dir, DB_NAME, master_key, &error);
		CU_ASSERT_PTR_NULL(store);
		AMU_ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
		CU_ASSERT_PTR_NOT_NULL(strstr(error->message, scratch->db_path));
		g_clear_error(&error);
		CU_ASSERT_EQUAL_FATAL(g_chmod(scratch->db_path, 0600), 0);
		scratch_open(scratch);
	}
	ingest_ok(scratch, DEVICE_A, scratch->key, second, 0);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_EQUAL(got->len, 200);
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 200);
}

/* ---------------------------------------------------------------- housekeeping */

static void
test_prune(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(GArray) got = NULL;
	const int64_t now = T0 + 1000 * DAY_MS;
	const int64_t heart_cutoff = now - 365 * DAY_MS;
	const int64_t battery_cutoff = now - 30 * DAY_MS;
	guint retention[AMU_CATEGORY_LAST + 1] = { 0 };
	uint64_t removed = 0;
	/* blocks of 10 samples ending at these times (each one block) */
	const struct {
		const char *device;
		AmuCategory category;
		int64_t t_end;
		gboolean pruned;
	} blocks[] = {
		{ DEVICE_A, AMU_CATEGORY_HEART_RATE, heart_cutoff - 1, TRUE },
		{ DEVICE_A, AMU_CATEGORY_HEART_RATE, heart_cutoff, FALSE }, /* straddles: kept */
		{ DEVICE_A, AMU_CATEGORY_HEART_RATE, now - DAY_MS, FALSE },
		{ DEVICE_A, AMU_CATEGORY_BATTERY, battery_cutoff - 1, TRUE },
		{ DEVICE_A, AMU_CATEGORY_BATTERY, battery_cutoff + 600000, FALSE },
		{ DEVICE_A, AMU_CATEGORY_STEPS, T0 - 3000 * DAY_MS, FALSE }, /* kept forever */
		{ DEVICE_B, AMU_CATEGORY_HEART_RATE, heart_cutoff - 5 * DAY_MS, TRUE },
		{ DEVICE_B, AMU_CATEGORY_HEART_RATE, now, FALSE },
	};
	uint64_t next_a = 0, next_b = 0;
	guint expect_removed = 0, expect_heart_a = 0;

	retention[AMU_CATEGORY_HEART_RATE] = 365;
	retention[AMU_CATEGORY_BATTERY] = 30;
	for (size_t i = 0; i < G_N_ELEMENTS(blocks); i++) {
		uint64_t *next = g_strcmp0(blocks[i].device, DEVICE_A) == 0 ? &next_a : &next_b;
		g_autoptr(Batch) batch = batch_new(*next);
		g_autoptr(GArray) samples =
		  series(blocks[i].category, blocks[i].t_end - 9 * 60000, 60000, 10);

		batch_add(batch, samples);
		ingest_ok(scratch, blocks[i].device, scratch->key, batch, 0);
		*next += 10;
		if (blocks[i].pruned)
			expect_removed += 10;
		else if (next == &next_a && blocks[i].category == AMU_CATEGORY_HEART_RATE)
			expect_heart_a += 10;
	}

	/* A dry run counts and keeps. */
	CU_ASSERT_TRUE(
	  amu_sample_store_prune(scratch->store, retention, now, TRUE, &removed, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(removed, expect_removed);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0) + count_of(scratch, DEVICE_B, 0),
			10 * G_N_ELEMENTS(blocks));

	removed = 0;
	CU_ASSERT_TRUE(
	  amu_sample_store_prune(scratch->store, retention, now, FALSE, &removed, &error));
	CU_ASSERT_EQUAL(removed, expect_removed);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0) + count_of(scratch, DEVICE_B, 0),
			10 * G_N_ELEMENTS(blocks) - expect_removed);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, AMU_CATEGORY_HEART_RATE), expect_heart_a);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, AMU_CATEGORY_BATTERY), 10);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, AMU_CATEGORY_STEPS), 10);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_B, AMU_CATEGORY_HEART_RATE), 10);
	/* what is left reads; the oldest heart rate is the straddling block's */
	got = read_range(
	  scratch, DEVICE_A, scratch->key, AMU_CATEGORY_HEART_RATE, G_MININT64, G_MAXINT64, &error);
	CU_ASSERT_EQUAL_FATAL(got->len, expect_heart_a);
	CU_ASSERT_EQUAL(g_array_index(got, AmuSample, 0).timestamp_ms, heart_cutoff - 9 * 60000);
	/* pruning does not move cursors, and a second run finds nothing */
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), next_a);
	CU_ASSERT_TRUE(
	  amu_sample_store_prune(scratch->store, retention, now, FALSE, &removed, &error));
	CU_ASSERT_EQUAL(removed, 0);
}

static void
test_delete_device(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 40);
	g_autoptr(GArray) toys = series(AMU_CATEGORY_TOY_EVENT, T0, 45000, 8);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GError) error = NULL;

	{
		g_autoptr(Batch) a = batch_new(0);
		g_autoptr(Batch) b = batch_new(0);

		batch_add(a, heart);
		batch_add(a, toys);
		batch_add(b, heart);
		ingest_ok(scratch, DEVICE_A, scratch->key, a, 0);
		ingest_ok(scratch, DEVICE_B, scratch->key, b, 0);
	}
	CU_ASSERT_TRUE(amu_sample_store_delete_device(scratch->store, DEVICE_A, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(count_of(scratch, DEVICE_A, 0), 0);
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 0);
	CU_ASSERT_EQUAL(
	  query_int64(scratch->store,
		      "SELECT count(*) FROM sample_blocks WHERE device_id = '" DEVICE_A "'"),
	  0);
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_EQUAL(got->len, 0);
	g_clear_pointer(&got, g_array_unref);
	/* The other device keeps everything. */
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_B), 40);
	got = read_all(scratch, DEVICE_B, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 40, 0));
	g_clear_pointer(&got, g_array_unref);
	/* Deleting again is fine; the device can sync afresh from 0. */
	CU_ASSERT_TRUE(amu_sample_store_delete_device(scratch->store, DEVICE_A, &error));
	{
		g_autoptr(Batch) a = batch_new(0);

		batch_add(a, toys);
		ingest_ok(scratch, DEVICE_A, scratch->key, a, 0);
	}
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, toys, 0, 8, 0));
}

/* ---------------------------------------------------------------- migration */

static void
test_migration_from_schema_1(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 30);
	g_autoptr(Batch) batch = batch_new(0);
	g_autoptr(GArray) got = NULL;
	g_autoptr(GBytes) bond = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDeviceLog) log = NULL;
	int latest = amu_store_get_schema_version(scratch->store);
	uint8_t key[AMU_STORE_KEYBYTES] = { 0 };

	CU_ASSERT_TRUE_FATAL(latest >= 2);
	CU_ASSERT_TRUE(amu_store_put(scratch->store, "bond", "aa:bb", "bond one", 8, &error));
	/* Back to what a schema 1 database holds: the tables of migration 2
	 * and of any later one go. */
	{
		g_autoptr(sqlite3_stmt) stmt = NULL;
		g_autoptr(GString) drop = g_string_new("UPDATE schema_version SET version = 1;");

		CU_ASSERT_EQUAL_FATAL(
		  sqlite3_prepare_v2(amu_store_get_db(scratch->store),
				     "SELECT name FROM sqlite_master WHERE type = 'table' AND name"
				     " NOT IN ('meta', 'records', 'data_keys', 'schema_version')"
				     " AND name NOT LIKE 'sqlite_%'",
				     -1,
				     &stmt,
				     NULL),
		  SQLITE_OK);
		while (sqlite3_step(stmt) == SQLITE_ROW)
			g_string_append_printf(
			  drop, "DROP TABLE %s;", (const char *)sqlite3_column_text(stmt, 0));
		g_clear_pointer(&stmt, sqlite3_finalize);
		CU_ASSERT_TRUE(strstr(drop->str, "DROP TABLE sample_blocks;") != NULL);
		CU_ASSERT_TRUE(strstr(drop->str, "DROP TABLE sync_cursors;") != NULL);
		exec_ok(scratch->store, drop->str);
	}
	CU_ASSERT_EQUAL(
	  query_int64(scratch->store,
		      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"),
	  4);
	scratch_close(scratch);

	scratch_open(scratch);
	CU_ASSERT_EQUAL(amu_store_get_schema_version(scratch->store), latest);
	CU_ASSERT_EQUAL(query_int64(scratch->store, "SELECT version FROM schema_version"), latest);
	bond = amu_store_get(scratch->store, "bond", "aa:bb", &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bond);
	CU_ASSERT_EQUAL(g_bytes_get_size(bond), 8);
	CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(bond, NULL), "bond one", 8), 0);
	CU_ASSERT_TRUE(amu_store_get_data_key(scratch->store, DEVICE_A, key, &error));
	CU_ASSERT_EQUAL(memcmp(key, scratch->key, sizeof(key)), 0);

	/* and telemetry works, both roles */
	CU_ASSERT_EQUAL(cursor_of(scratch, DEVICE_A), 0);
	batch_add(batch, heart);
	ingest_ok(scratch, DEVICE_A, key, batch, 0);
	got = read_all(scratch, DEVICE_A, key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 30, 0));
	log = amu_device_log_new(scratch->store, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(log), 0);
	CU_ASSERT_TRUE(amu_device_log_append(
	  log, AMU_CATEGORY_HEART_RATE, (AmuSample *)heart->data, heart->len, &error));
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(log), 30);
}

/* The index columns in the clear are bound too: editing one to shift a
 * block's times (or hide it from a range query, and then widening it back
 * by hand) fails to open. A deleted block's id is never used again. */
static void
test_index_edited(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(GArray) heart = series(AMU_CATEGORY_HEART_RATE, T0, 1000, 30);
	g_autoptr(GArray) got = NULL;
	static const char *const columns[] = { "t_start", "t_end", "count", "clock_offset_ms" };
	int64_t block;

	{
		g_autoptr(Batch) a = batch_new(0);
		batch_add(a, heart);
		ingest_ok(scratch, DEVICE_A, scratch->key, a, 0);
	}
	block = query_int64(scratch->store, "SELECT block_id FROM sample_blocks");
	for (guint i = 0; i < G_N_ELEMENTS(columns); i++) {
		exec_printf(scratch->store,
			    "UPDATE sample_blocks SET %s = %s - 1 WHERE block_id = %" G_GINT64_FORMAT,
			    columns[i], columns[i], block);
		assert_tampered(scratch, DEVICE_A, scratch->key);
		exec_printf(scratch->store,
			    "UPDATE sample_blocks SET %s = %s + 1 WHERE block_id = %" G_GINT64_FORMAT,
			    columns[i], columns[i], block);
	}
	got = read_all(scratch, DEVICE_A, scratch->key);
	CU_ASSERT_TRUE(samples_match(got, heart, 0, 30, 0));
	/* delete the newest block; the next one gets a new id */
	exec_printf(scratch->store, "DELETE FROM sample_blocks WHERE block_id = %" G_GINT64_FORMAT, block);
	exec_printf(scratch->store, "UPDATE sync_cursors SET next_seq = 0");
	{
		g_autoptr(Batch) again = batch_new(0);
		batch_add(again, heart);
		ingest_ok(scratch, DEVICE_A, scratch->key, again, 0);
	}
	CU_ASSERT_TRUE(query_int64(scratch->store, "SELECT block_id FROM sample_blocks") > block);
}

AMU_TEST_MAIN("sample-store",
	      { "ingest and read", test_ingest_and_read },
	      { "batch not at the cursor", test_batch_not_at_cursor },
	      { "malformed group stores nothing", test_malformed_group },
	      { "flipped byte", test_flipped_byte },
	      { "moved block", test_block_moved },
	      { "index columns edited", test_index_edited },
	      { "no plaintext on disk", test_no_plaintext_on_disk },
	      { "wrong master key", test_wrong_master_key },
	      { "disk full", test_disk_full },
	      { "read only", test_read_only },
	      { "prune", test_prune },
	      { "delete device", test_delete_device },
	      { "migration from schema 1", test_migration_from_schema_1 })
