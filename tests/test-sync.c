/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "amu-batch.h"
#include "amu-device-log.h"
#include "amu-sample-store.h"
#include "amu-store.h"
#include "amu-sync.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The telemetry sync: the device's log (amu-device-log.c), the two state
 * machines (amu-sync.c) and, end to end, the host's sample store. Messages
 * between the machines are packed with protobuf-c and unpacked on the other
 * side, as on the wire, and the host stores every batch in a real store
 * before it acks. */

#define DB_NAME "amulet.db"
#define DEVICE_ID "9f86d081884c7d659a2feaa0c55ad015"

static const uint8_t device_master_key[AMU_STORE_KEYBYTES] = { 0xd1, 0xd2, 0xd3, 0xd4 };
static const uint8_t host_master_key[AMU_STORE_KEYBYTES] = { 0x41, 0x42, 0x43, 0x44 };
static const uint8_t host_data_key[AMU_STORE_KEYBYTES] = { 0x0d, 0xa7, 0xa0, 0x0d };

/* ---------------------------------------------------------------- scratch stores */

/* A store in a fresh temporary directory, removed with it. */
typedef struct {
	char *root;
	char *dir;
	const uint8_t *key;
	AmuStore *store;
} Scratch;

static AmuStore *
scratch_open(Scratch *scratch)
{
	g_autoptr(GError) error = NULL;

	scratch->store = amu_store_open_with_key(scratch->dir, DB_NAME, scratch->key, &error);
	if (error != NULL)
		g_printerr("  open %s: %s\n", scratch->dir, error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(scratch->store);
	return scratch->store;
}

static Scratch *
scratch_new(const uint8_t key[AMU_STORE_KEYBYTES])
{
	Scratch *scratch = g_new0(Scratch, 1);

	scratch->root = g_dir_make_tmp("amu-sync-XXXXXX", NULL);
	g_assert(scratch->root != NULL);
	scratch->dir = g_build_filename(scratch->root, "data", NULL);
	scratch->key = key;
	scratch_open(scratch);
	return scratch;
}

static void
scratch_free(Scratch *scratch)
{
	amu_store_unref(scratch->store);
	amu_test_remove_tree(scratch->root);
	g_free(scratch->root);
	g_free(scratch->dir);
	g_free(scratch);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Scratch, scratch_free)

static int
query_int(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return sqlite3_column_int(stmt, 0);
}

/* ---------------------------------------------------------------- samples */

/* Plausible telemetry: per category a steady period with now and then a
 * late sample (so timestamps need more than one run), values on a random
 * walk inside the category's range. Deterministic for a seed. */
typedef struct {
	GRand *rand;
	int64_t next_ms[AMU_CATEGORY_LAST + 1];
	gint32 last[AMU_CATEGORY_LAST + 1][AMU_SAMPLE_MAX_VALUES];
	gboolean started[AMU_CATEGORY_LAST + 1];
} Generator;

static const int64_t period_ms[AMU_CATEGORY_LAST + 1] = {
	[AMU_CATEGORY_HEART_RATE] = 1000, [AMU_CATEGORY_STEPS] = 60000,
	[AMU_CATEGORY_SPO2] = 60000,	  [AMU_CATEGORY_SLEEP_STAGE] = 30000,
	[AMU_CATEGORY_SKIN_TEMP] = 60000, [AMU_CATEGORY_RESPIRATORY_RATE] = 60000,
	[AMU_CATEGORY_LOCATION] = 1000,	  [AMU_CATEGORY_BATTERY] = 600000,
	[AMU_CATEGORY_TOY_EVENT] = 45000,
};

static Generator *
generator_new(guint32 seed)
{
	Generator *generator = g_new0(Generator, 1);

	generator->rand = g_rand_new_with_seed(seed);
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		generator->next_ms[c] = 1700000000000 + c * 7;
	return generator;
}

static void
generator_free(Generator *generator)
{
	g_rand_free(generator->rand);
	g_free(generator);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Generator, generator_free)

static void
generate(Generator *generator, AmuCategory category, guint n, GArray *out)
{
	guint n_values = amu_category_get_n_values(category);

	for (guint i = 0; i < n; i++) {
		AmuSample sample = { .timestamp_ms = generator->next_ms[category],
				     .category = category };

		for (guint c = 0; c < n_values; c++) {
			gint32 min, max;
			gint64 value, step;

			amu_category_get_value_range(category, c, &min, &max);
			step = ((gint64)max - min) / 50 + 1;
			if (!generator->started[category])
				value = min + ((gint64)max - min) / 2;
			else
				value = generator->last[category][c] +
					g_rand_int_range(generator->rand,
							 -(gint32)MIN(step, G_MAXINT32 / 2),
							 (gint32)MIN(step, G_MAXINT32 / 2) + 1);
			sample.values[c] = (gint32)CLAMP(value, min, max);
			generator->last[category][c] = sample.values[c];
		}
		generator->started[category] = TRUE;
		generator->next_ms[category] += period_ms[category];
		if (g_rand_int_range(generator->rand, 0, 40) == 0)
			generator->next_ms[category] += g_rand_int_range(generator->rand, 1, 5000);
		g_array_append_val(out, sample);
	}
}

static int
sample_compare(gconstpointer a, gconstpointer b)
{
	const AmuSample *x = a, *y = b;

	if (x->category != y->category)
		return x->category < y->category ? -1 : 1;
	if (x->timestamp_ms != y->timestamp_ms)
		return x->timestamp_ms < y->timestamp_ms ? -1 : 1;
	for (guint c = 0; c < AMU_SAMPLE_MAX_VALUES; c++) {
		if (x->values[c] != y->values[c])
			return x->values[c] < y->values[c] ? -1 : 1;
	}
	return 0;
}

/* SHA-256 over (category, timestamp, values) of @samples sorted by them. */
static char *
samples_digest(const GArray *samples)
{
	g_autoptr(GArray) sorted = g_array_sized_new(FALSE, FALSE, sizeof(AmuSample), samples->len);
	g_autoptr(GChecksum) checksum = g_checksum_new(G_CHECKSUM_SHA256);

	g_array_append_vals(sorted, samples->data, samples->len);
	g_array_sort(sorted, sample_compare);
	for (guint i = 0; i < sorted->len; i++) {
		const AmuSample *sample = &g_array_index(sorted, AmuSample, i);
		guint8 record[4 + 8 + 4 * AMU_SAMPLE_MAX_VALUES];
		guint64 ts = (guint64)sample->timestamp_ms;

		for (int b = 0; b < 4; b++)
			record[b] = (guint8)((guint32)sample->category >> (8 * b));
		for (int b = 0; b < 8; b++)
			record[4 + b] = (guint8)(ts >> (8 * b));
		for (guint c = 0; c < AMU_SAMPLE_MAX_VALUES; c++)
			for (int b = 0; b < 4; b++)
				record[12 + 4 * c + b] =
				  (guint8)((guint32)sample->values[c] >> (8 * b));
		g_checksum_update(checksum, record, sizeof(record));
	}
	return g_strdup(g_checksum_get_string(checksum));
}

/* ---------------------------------------------------------------- device */

typedef struct {
	Scratch *scratch;
	AmuDeviceLog *log;
	GArray *appended;	/* of AmuSample, in sequence order */
	int64_t clock_ahead_ms; /* device clock minus host clock */
} Device;

static Device *
device_new(void)
{
	Device *device = g_new0(Device, 1);
	g_autoptr(GError) error = NULL;

	device->scratch = scratch_new(device_master_key);
	device->log = amu_device_log_new(device->scratch->store, &error);
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(device->log);
	device->appended = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	return device;
}

static void
device_free(Device *device)
{
	amu_device_log_free(device->log);
	scratch_free(device->scratch);
	g_array_unref(device->appended);
	g_free(device);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Device, device_free)

static void
device_append(Device *device, Generator *generator, AmuCategory category, guint n)
{
	g_autoptr(GArray) samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GError) error = NULL;
	uint64_t end = amu_device_log_get_end_seq(device->log);

	generate(generator, category, n, samples);
	CU_ASSERT_TRUE(amu_device_log_append(
	  device->log, category, (const AmuSample *)samples->data, n, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), end + n);
	g_array_append_vals(device->appended, samples->data, n);
}

/* A wearable's day: long heart-rate runs that span log chunks, and
 * every other category in between, each append in its own chunks. */
static void
device_append_day(Device *device, Generator *generator)
{
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, AMU_DEVICE_LOG_CHUNK + 700);
	device_append(device, generator, AMU_CATEGORY_STEPS, 240);
	device_append(device, generator, AMU_CATEGORY_LOCATION, 900);
	device_append(device, generator, AMU_CATEGORY_TOY_EVENT, 35);
	device_append(device, generator, AMU_CATEGORY_SPO2, 60);
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 2 * AMU_DEVICE_LOG_CHUNK + 3);
	device_append(device, generator, AMU_CATEGORY_SLEEP_STAGE, 700);
	device_append(device, generator, AMU_CATEGORY_SKIN_TEMP, 300);
	device_append(device, generator, AMU_CATEGORY_RESPIRATORY_RATE, 120);
	device_append(device, generator, AMU_CATEGORY_BATTERY, 7);
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 1);
}

/* A smaller log for the tests that sync it many times over. */
static void
device_append_hour(Device *device, Generator *generator)
{
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 1500);
	device_append(device, generator, AMU_CATEGORY_LOCATION, 160);
	device_append(device, generator, AMU_CATEGORY_STEPS, 60);
	device_append(device, generator, AMU_CATEGORY_TOY_EVENT, 12);
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 900);
	device_append(device, generator, AMU_CATEGORY_SLEEP_STAGE, 120);
}

/* Decodes @groups into @out, checking each group's count. */
static void
groups_decode(GPtrArray *groups, GArray *out)
{
	for (guint i = 0; i < groups->len; i++) {
		AmuDeviceLogGroup *group = g_ptr_array_index(groups, i);
		g_autoptr(GError) error = NULL;
		guint before = out->len;

		CU_ASSERT_TRUE(amu_batch_decode_group(
		  group->category, group->columns->data, group->columns->len, out, &error));
		CU_ASSERT_PTR_NULL(error);
		CU_ASSERT_EQUAL(out->len - before, group->count);
	}
}

/* Reads [since, end) in as many reads as it takes, asserting each read
 * moves on and stays within @max_bytes unless it carries a single sample. */
static GArray *
log_read_all(AmuDeviceLog *log, uint64_t since, uint64_t end, size_t max_bytes)
{
	GArray *samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	uint64_t seq = since;

	while (seq < end) {
		g_autoptr(GPtrArray) groups = NULL;
		g_autoptr(GError) error = NULL;
		uint64_t next = 0;
		size_t bytes = 0;

		CU_ASSERT_TRUE_FATAL(
		  amu_device_log_read(log, seq, end, max_bytes, &groups, &next, &error));
		CU_ASSERT_TRUE_FATAL(next > seq && next <= end);
		groups_decode(groups, samples);
		for (guint i = 0; i < groups->len; i++)
			bytes += ((AmuDeviceLogGroup *)g_ptr_array_index(groups, i))->columns->len;
		CU_ASSERT_TRUE(bytes <= max_bytes || next - seq == 1);
		seq = next;
	}
	return samples;
}

static gboolean
samples_equal_range(const GArray *got, const GArray *expected, uint64_t from)
{
	for (guint i = 0; i < got->len; i++) {
		if (sample_compare(&g_array_index(got, AmuSample, i),
				   &g_array_index(expected, AmuSample, from + i)) != 0) {
			g_printerr("  sample %" G_GUINT64_FORMAT " differs\n", from + i);
			return FALSE;
		}
	}
	return TRUE;
}

/* ---------------------------------------------------------------- device log */

static void
test_log_read_ranges(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(1);
	const size_t budgets[] = {
		1, 64, AMU_SYNC_MIN_BATCH_BYTES, AMU_SYNC_MAX_BATCH_BYTES, G_MAXSIZE
	};
	uint64_t total;

	device_append_day(device, generator);
	total = device->appended->len;
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), 0);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), total);
	/* More chunks than appends: long runs were split. */
	CU_ASSERT_TRUE(query_int(device->scratch->store, "SELECT count(*) FROM device_log") > 11);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT max(count) FROM device_log"),
			AMU_DEVICE_LOG_CHUNK);

	for (size_t b = 0; b < G_N_ELEMENTS(budgets); b++) {
		/* from the start, from inside the first chunk, from a chunk's last
		 * sample, from inside a later chunk, to an end inside a chunk */
		const uint64_t ranges[][2] = {
			{ 0, total },
			{ 1234, total },
			{ AMU_DEVICE_LOG_CHUNK - 1, AMU_DEVICE_LOG_CHUNK + 2 },
			{ AMU_DEVICE_LOG_CHUNK + 650, total - 5 },
			{ total - 1, total },
		};

		for (size_t r = 0; r < G_N_ELEMENTS(ranges); r++) {
			uint64_t since = ranges[r][0], end = ranges[r][1];
			g_autoptr(GArray) got = NULL;

			if (budgets[b] < 64 && end - since > 3000)
				continue; /* one sample per read: keep it quick */
			got = log_read_all(device->log, since, end, budgets[b]);
			CU_ASSERT_EQUAL(got->len, end - since);
			CU_ASSERT_TRUE(samples_equal_range(got, device->appended, since));
		}
	}

	/* An end past the log is clamped to the log's end. */
	{
		g_autoptr(GPtrArray) groups = NULL;
		g_autoptr(GError) error = NULL;
		g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(AmuSample));
		uint64_t next = 0;

		CU_ASSERT_TRUE(amu_device_log_read(
		  device->log, total - 3, total + 100, G_MAXSIZE, &groups, &next, &error));
		CU_ASSERT_EQUAL(next, total);
		groups_decode(groups, got);
		CU_ASSERT_EQUAL(got->len, 3);
		CU_ASSERT_TRUE(samples_equal_range(got, device->appended, total - 3));
	}
}

static void
test_log_drop_persists(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(2);
	g_autoptr(GError) error = NULL;
	g_autoptr(GArray) got = NULL;
	g_autoptr(GPtrArray) groups = NULL;
	uint64_t total, next = 0;
	const uint64_t drop = AMU_DEVICE_LOG_CHUNK + 100; /* inside the second chunk */

	device_append_day(device, generator);
	total = device->appended->len;
	CU_ASSERT_TRUE(amu_device_log_drop_before(device->log, drop, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), drop);
	/* An older ack changes nothing. */
	CU_ASSERT_TRUE(amu_device_log_drop_before(device->log, 10, &error));
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), drop);

	/* Closed and opened again: the same log. */
	g_clear_pointer(&device->log, amu_device_log_free);
	g_clear_pointer(&device->scratch->store, amu_store_unref);
	scratch_open(device->scratch);
	device->log = amu_device_log_new(device->scratch->store, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(device->log);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), drop);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), total);
	/* The first chunk is gone from the file, the partly acked one is kept. */
	CU_ASSERT_EQUAL(
	  query_int(device->scratch->store, "SELECT count(*) FROM device_log WHERE first_seq = 0"),
	  0);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT min(first_seq) FROM device_log"),
			AMU_DEVICE_LOG_CHUNK);
	got = log_read_all(device->log, drop, total, AMU_SYNC_DEFAULT_BATCH_BYTES);
	CU_ASSERT_EQUAL(got->len, total - drop);
	CU_ASSERT_TRUE(samples_equal_range(got, device->appended, drop));
	/* What was dropped cannot be read. */
	CU_ASSERT_FALSE(
	  amu_device_log_read(device->log, drop - 1, total, G_MAXSIZE, &groups, &next, &error));
	CU_ASSERT_PTR_NOT_NULL(error);
	g_clear_error(&error);

	/* Appending goes on after the reopen, and dropping everything empties it. */
	device_append(device, generator, AMU_CATEGORY_BATTERY, 3);
	CU_ASSERT_TRUE(amu_device_log_drop_before(device->log, total + 3, &error));
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), total + 3);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT count(*) FROM device_log"), 0);
}

static void
test_log_drop_beyond_end(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(3);
	g_autoptr(GError) error = NULL;

	device_append(device, generator, AMU_CATEGORY_STEPS, 100);
	CU_ASSERT_FALSE(amu_device_log_drop_before(device->log, 101, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), 0);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT sum(count) FROM device_log"),
			100);
	g_clear_error(&error);
	CU_ASSERT_TRUE(amu_device_log_drop_before(device->log, 100, &error));
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), 100);
}

static void
test_log_append_out_of_range(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(4);
	g_autoptr(GArray) samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GPtrArray) groups = NULL;
	g_autoptr(GError) error = NULL;
	uint64_t end, next = 0;
	int rows;

	device_append(device, generator, AMU_CATEGORY_SPO2, 10);
	end = amu_device_log_get_end_seq(device->log);
	rows = query_int(device->scratch->store, "SELECT count(*) FROM device_log");

	/* 400 bpm in the second chunk's worth: the first chunk was fine. */
	generate(generator, AMU_CATEGORY_HEART_RATE, AMU_DEVICE_LOG_CHUNK + 500, samples);
	g_array_index(samples, AmuSample, AMU_DEVICE_LOG_CHUNK + 250).values[0] = 400;
	CU_ASSERT_FALSE(amu_device_log_append(
	  device->log, AMU_CATEGORY_HEART_RATE, (AmuSample *)samples->data, samples->len, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), end);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT count(*) FROM device_log"), rows);
	CU_ASSERT_TRUE(
	  amu_device_log_read(device->log, end, G_MAXUINT64, G_MAXSIZE, &groups, &next, &error));
	CU_ASSERT_EQUAL(groups->len, 0);
	CU_ASSERT_EQUAL(next, end);
	g_clear_pointer(&groups, g_ptr_array_unref);

	/* A sample of another category in the run is refused the same way. */
	g_array_set_size(samples, 0);
	generate(generator, AMU_CATEGORY_STEPS, 20, samples);
	g_array_index(samples, AmuSample, 19).category = AMU_CATEGORY_BATTERY;
	CU_ASSERT_FALSE(amu_device_log_append(
	  device->log, AMU_CATEGORY_STEPS, (AmuSample *)samples->data, samples->len, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), end);

	/* Still so after a reopen, and the next append gets the next number. */
	g_clear_pointer(&device->log, amu_device_log_free);
	g_clear_pointer(&device->scratch->store, amu_store_unref);
	scratch_open(device->scratch);
	device->log = amu_device_log_new(device->scratch->store, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(device->log);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), end);
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT count(*) FROM device_log"), rows);
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 5);
	{
		g_autoptr(GArray) got = log_read_all(device->log, 0, end + 5, G_MAXSIZE);
		CU_ASSERT_EQUAL(got->len, end + 5);
		CU_ASSERT_TRUE(samples_equal_range(got, device->appended, 0));
	}
}

/* ---------------------------------------------------------------- the wire */

typedef enum {
	TO_DEVICE,
	TO_HOST,
} Direction;

typedef struct {
	Direction direction;
	GBytes *packed;
} Packet;

/* How a connection behaves: it carries the first @cut messages, both
 * directions counted together, and loses everything sent after them. Each
 * direction is in order; with @shuffle the next delivery goes either way at
 * random, else strictly in the order sent. Each delivery takes @step_ms. */
typedef struct {
	guint cut;
	uint32_t batch_bytes;
	int64_t step_ms;
	GRand *shuffle;
} Link;

static const Link link_whole = { G_MAXUINT, AMU_SYNC_DEFAULT_BATCH_BYTES, 1, NULL };

typedef struct {
	GQueue packets;
	guint sent;
	const Link *link;
} Wire;

static void
wire_send(Wire *wire, Direction direction, const Amulet__V1__Message *message)
{
	size_t len = amulet__v1__message__get_packed_size(message);
	uint8_t *buf = g_malloc(MAX(len, 1));
	Packet *packet;

	CU_ASSERT_EQUAL(amulet__v1__message__pack(message, buf), len);
	wire->sent++;
	if (wire->sent > wire->link->cut) {
		g_free(buf);
		return;
	}
	packet = g_new0(Packet, 1);
	packet->direction = direction;
	packet->packed = g_bytes_new_take(buf, len);
	g_queue_push_tail(&wire->packets, packet);
}

static void
packet_free(Packet *packet)
{
	g_bytes_unref(packet->packed);
	g_free(packet);
}

/* The next packet to deliver: the oldest, or with a shuffling link the
 * oldest of a direction picked at random. */
static Packet *
wire_next(Wire *wire)
{
	GList *first[2] = { NULL, NULL };

	if (wire->link->shuffle == NULL)
		return g_queue_pop_head(&wire->packets);
	for (GList *l = wire->packets.head; l != NULL; l = l->next) {
		Packet *packet = l->data;
		if (first[packet->direction] == NULL)
			first[packet->direction] = l;
	}
	if (first[TO_DEVICE] != NULL && first[TO_HOST] != NULL) {
		GList *pick = first[g_rand_boolean(wire->link->shuffle) ? TO_DEVICE : TO_HOST];
		Packet *packet = pick->data;

		g_queue_delete_link(&wire->packets, pick);
		return packet;
	}
	return g_queue_pop_head(&wire->packets);
}

static gboolean
device_send_cb(const Amulet__V1__Message *message, void *user_data, GError **error)
{
	wire_send(user_data, TO_HOST, message);
	return TRUE;
}

/* ---------------------------------------------------------------- host */

typedef struct {
	Scratch *scratch;
	AmuStore *store;
} Host;

static Host *
host_new(void)
{
	Host *host = g_new0(Host, 1);

	host->scratch = scratch_new(host_master_key);
	host->store = host->scratch->store;
	return host;
}

static void
host_free(Host *host)
{
	scratch_free(host->scratch);
	g_free(host);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Host, host_free)

static uint64_t
host_cursor(Host *host)
{
	g_autoptr(GError) error = NULL;
	uint64_t cursor = G_MAXUINT64;

	CU_ASSERT_TRUE(amu_sample_store_get_cursor(host->store, DEVICE_ID, &cursor, NULL, &error));
	CU_ASSERT_PTR_NULL(error);
	return cursor;
}

/* Every sample stored for the device, host clock. */
static GArray *
host_samples(Host *host)
{
	GArray *samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuSampleStoreIter) iter = amu_sample_store_iter_new(
	  host->store, DEVICE_ID, host_data_key, 0, G_MININT64, G_MAXINT64, &error);
	AmuSample sample;

	CU_ASSERT_PTR_NOT_NULL_FATAL(iter);
	while (amu_sample_store_iter_next(iter, &sample, &error))
		g_array_append_val(samples, sample);
	CU_ASSERT_PTR_NULL(error);
	return samples;
}

/* The host holds exactly what the device appended: as many samples, the
 * same ones (digest), each category's count in the store's bookkeeping. */
static gboolean
host_holds_exactly(Host *host, const GArray *appended)
{
	g_autoptr(GArray) stored = host_samples(host);
	g_autofree char *want = samples_digest(appended);
	g_autofree char *got = samples_digest(stored);
	g_autoptr(GError) error = NULL;
	uint64_t counts[AMU_CATEGORY_LAST + 1];
	uint64_t counted = 0;

	CU_ASSERT_TRUE(amu_sample_store_count(host->store, DEVICE_ID, counts, &error));
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		counted += counts[c];
	if (stored->len != appended->len || counted != appended->len || g_strcmp0(want, got) != 0) {
		g_printerr("  host holds %u samples (counted %" G_GUINT64_FORMAT
			   "), device appended %u\n",
			   stored->len,
			   counted,
			   appended->len);
		return FALSE;
	}
	return TRUE;
}

/* ---------------------------------------------------------------- a connection */

typedef struct {
	gboolean failed;   /* a side refused a message: a bug here */
	gboolean done;	   /* the receiver saw the sync through */
	guint sent;	   /* messages put on the wire */
	guint batches;	   /* batches the host stored */
	int64_t offset_ms; /* the receiver's clock offset at the end */
} Connection;

/* One connection over @link: a fresh receiver from the host's stored cursor
 * and a fresh sender over the device's log. */
static Connection
run_connection(Device *device, Host *host, const Link *link, int64_t *clock_ms)
{
	Connection result = { 0 };
	Wire wire = { G_QUEUE_INIT, 0, link };
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__SyncRequest request;
	AmuSyncReceiver *receiver =
	  amu_sync_receiver_new(host_cursor(host), AMU_SYNC_DEFAULT_WINDOW, link->batch_bytes);
	AmuSyncSender *sender = amu_sync_sender_new(device->log, device_send_cb, &wire);
	Packet *packet;

	amu_sync_receiver_start(receiver, *clock_ms, &request);
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_REQUEST;
	message.sync_request = &request;
	wire_send(&wire, TO_DEVICE, &message);

	while (!result.failed && (packet = wire_next(&wire)) != NULL) {
		g_autoptr(GError) error = NULL;
		gsize len = 0;
		const uint8_t *data = g_bytes_get_data(packet->packed, &len);
		Amulet__V1__Message *rx = amulet__v1__message__unpack(NULL, len, data);
		gboolean ok;

		*clock_ms += link->step_ms;
		CU_ASSERT_PTR_NOT_NULL(rx);
		if (rx == NULL) {
			ok = FALSE;
		} else if (packet->direction == TO_DEVICE) {
			ok = amu_sync_sender_rx(
			  sender, rx, *clock_ms + device->clock_ahead_ms, &error);
		} else {
			AmuSyncRxEvent event;

			ok = amu_sync_receiver_rx(receiver, rx, *clock_ms, &event, &error);
			if (ok && event == AMU_SYNC_RX_BATCH) {
				Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
				Amulet__V1__SyncAck ack;

				ok = amu_sample_store_ingest(
				  host->store,
				  DEVICE_ID,
				  host_data_key,
				  rx->sync_batch,
				  amu_sync_receiver_get_clock_offset(receiver, NULL),
				  *clock_ms,
				  &error);
				if (ok) {
					result.batches++;
					amu_sync_receiver_stored(receiver, &ack);
					reply.body_case = AMULET__V1__MESSAGE__BODY_SYNC_ACK;
					reply.sync_ack = &ack;
					wire_send(&wire, TO_DEVICE, &reply);
				}
			}
		}
		if (!ok) {
			g_printerr("  message to the %s: %s\n",
				   packet->direction == TO_DEVICE ? "device" : "host",
				   error != NULL ? error->message : "does not unpack");
			result.failed = TRUE;
		}
		if (rx != NULL)
			amulet__v1__message__free_unpacked(rx, NULL);
		packet_free(packet);
	}
	g_queue_clear_full(&wire.packets, (GDestroyNotify)packet_free);
	result.done = amu_sync_receiver_is_done(receiver);
	result.sent = wire.sent;
	result.offset_ms = amu_sync_receiver_get_clock_offset(receiver, NULL);
	amu_sync_sender_free(sender);
	amu_sync_receiver_free(receiver);
	return result;
}

static gboolean
device_log_empty(Device *device)
{
	return amu_device_log_get_first_seq(device->log) == amu_device_log_get_end_seq(device->log);
}

/* ---------------------------------------------------------------- end to end */

static void
test_end_to_end(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Host) host = host_new();
	g_autoptr(Generator) generator = generator_new(5);
	int64_t clock_ms = 1700000000000;
	Link link = link_whole;
	Connection connection;
	uint64_t end;

	device_append_day(device, generator);
	end = amu_device_log_get_end_seq(device->log);
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_TRUE(connection.done);
	CU_ASSERT_EQUAL(connection.offset_ms, 0);
	/* request, start, then a batch and its ack each */
	CU_ASSERT_TRUE(connection.batches > 1);
	CU_ASSERT_EQUAL(connection.sent, 2 + 2 * connection.batches);
	CU_ASSERT_EQUAL(host_cursor(host), end);
	CU_ASSERT_TRUE(host_holds_exactly(host, device->appended));
	CU_ASSERT_TRUE(device_log_empty(device));
	CU_ASSERT_EQUAL(query_int(device->scratch->store, "SELECT count(*) FROM device_log"), 0);

	/* Later samples come with the next sync, and only they. */
	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 300);
	device_append(device, generator, AMU_CATEGORY_BATTERY, 2);
	link.batch_bytes = AMU_SYNC_MAX_BATCH_BYTES;
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_TRUE(connection.done);
	CU_ASSERT_EQUAL(connection.batches, 1);
	CU_ASSERT_EQUAL(host_cursor(host), end + 302);
	CU_ASSERT_TRUE(host_holds_exactly(host, device->appended));
	CU_ASSERT_TRUE(device_log_empty(device));

	/* Nothing new: a sync with nothing to send is done at once. */
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_TRUE(connection.done);
	CU_ASSERT_EQUAL(connection.sent, 2);
	CU_ASSERT_TRUE(host_holds_exactly(host, device->appended));
}

/* Connections over @link until the device's log is synced and empty; one
 * that changes nothing on either side (cut right after the request, say)
 * is followed by one without loss. Returns the connections it took, or 0
 * on a failure. Counts in @ack_lost connections that ended with the host
 * holding samples the device still keeps. */
static guint
sync_until_done(Device *device, Host *host, const Link *link, int64_t *clock_ms, guint *ack_lost)
{
	Link whole = *link;
	gboolean stalled = FALSE;
	guint connections = 0;

	whole.cut = G_MAXUINT;
	while (!(device_log_empty(device) &&
		 host_cursor(host) == amu_device_log_get_end_seq(device->log))) {
		uint64_t cursor = host_cursor(host);
		uint64_t first = amu_device_log_get_first_seq(device->log);
		Connection connection;

		if (++connections > 500) {
			g_printerr("  cut %u: no end after 500 connections\n", link->cut);
			return 0;
		}
		connection = run_connection(device, host, stalled ? &whole : link, clock_ms);
		if (connection.failed) {
			g_printerr("  cut %u: connection %u failed\n", link->cut, connections);
			return 0;
		}
		/* The device only forgets what the host holds. */
		CU_ASSERT_TRUE(amu_device_log_get_first_seq(device->log) <= host_cursor(host));
		if (host_cursor(host) > amu_device_log_get_first_seq(device->log))
			(*ack_lost)++;
		stalled =
		  host_cursor(host) == cursor && amu_device_log_get_first_seq(device->log) == first;
	}
	return connections;
}

static void
test_ack_lost(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Host) host = host_new();
	g_autoptr(Generator) generator = generator_new(6);
	int64_t clock_ms = 1700000000000;
	Link link = { 3, AMU_SYNC_MIN_BATCH_BYTES, 1, NULL };
	Connection connection;
	uint64_t stored;
	guint ack_lost = 0;

	device_append_hour(device, generator);
	/* request, start, batch: the host stores the batch, its ack is lost */
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_FALSE(connection.done);
	CU_ASSERT_EQUAL(connection.batches, 1);
	stored = host_cursor(host);
	CU_ASSERT_TRUE(stored > 0);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), 0);

	/* The next sync asks from the stored cursor: the device forgets what
	 * was stored and sends the rest, nothing twice. */
	link.cut = 5;
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_TRUE(amu_device_log_get_first_seq(device->log) >= stored);
	CU_ASSERT_TRUE(host_cursor(host) > stored);
	link.cut = G_MAXUINT;
	CU_ASSERT_TRUE(sync_until_done(device, host, &link, &clock_ms, &ack_lost) > 0);
	CU_ASSERT_TRUE(host_holds_exactly(host, device->appended));
	CU_ASSERT_TRUE(device_log_empty(device));
}

/* Every connection loses all after its k-th message, for every k from 1 to
 * the messages of a whole sync, until the device's log is synced: first
 * with the messages delivered in the order sent, then with the two
 * directions interleaved at random (acks overtaking batches still queued). */
static void
test_interruptions(void)
{
	g_autoptr(Generator) generator = generator_new(7);
	g_autoptr(GArray) reference = NULL;
	g_autoptr(GRand) shuffle = g_rand_new_with_seed(77);
	Link link = { G_MAXUINT, AMU_SYNC_MIN_BATCH_BYTES, 1, NULL };
	Connection whole;
	guint total, ack_lost = 0, repeated = 0;

	/* The whole sync uninterrupted, to count its messages. */
	{
		g_autoptr(Device) device = device_new();
		g_autoptr(Host) host = host_new();
		int64_t clock_ms = 1700000000000;

		device_append_hour(device, generator);
		whole = run_connection(device, host, &link, &clock_ms);
		CU_ASSERT_FALSE(whole.failed);
		CU_ASSERT_TRUE(whole.done);
		CU_ASSERT_TRUE(host_holds_exactly(host, device->appended));
		reference = g_array_ref(device->appended);
		total = whole.sent;
		CU_ASSERT_TRUE_FATAL(whole.batches >= 8);
	}

	for (guint round = 0; round < 3; round++) {
		link.shuffle = round == 0 ? NULL : shuffle;
		for (link.cut = 1; link.cut <= total; link.cut++) {
			g_autoptr(Device) device = device_new();
			g_autoptr(Host) host = host_new();
			g_autoptr(GError) error = NULL;
			int64_t clock_ms = 1700000000000;
			guint connections;

			/* the same log every time, appended run by run */
			for (guint i = 0; i < reference->len;) {
				const AmuSample *run = &g_array_index(reference, AmuSample, i);
				guint n = 1;

				while (i + n < reference->len &&
				       g_array_index(reference, AmuSample, i + n).category ==
					 run->category)
					n++;
				CU_ASSERT_TRUE(amu_device_log_append(
				  device->log, run->category, run, n, &error));
				g_array_append_vals(device->appended, run, n);
				i += n;
			}
			connections = sync_until_done(device, host, &link, &clock_ms, &ack_lost);
			CU_ASSERT_TRUE(connections > 0);
			if (connections > 2)
				repeated++;
			if (!host_holds_exactly(host, device->appended) ||
			    !device_log_empty(device)) {
				g_printerr("  cut after message %u of %u, round %u\n",
					   link.cut,
					   total,
					   round);
				CU_FAIL("samples lost or stored twice");
			}
		}
	}
	/* Some cuts fell after a stored batch and before its ack, and some
	 * syncs were cut more than once. */
	CU_ASSERT_TRUE(ack_lost > 0);
	CU_ASSERT_TRUE(repeated > 0);
}

/* ---------------------------------------------------------------- the receiver refuses */

typedef struct {
	Amulet__V1__Message message;
	Amulet__V1__SyncBatch batch;
	Amulet__V1__SampleGroup groups[4];
	Amulet__V1__SampleGroup *group_ptrs[4];
} BatchMessage;

/* One heart-rate sample at 0 ms, 60 bpm: count 1, timestamp 0, value 60. */
static const uint8_t one_sample[] = { 0x01, 0x00, 0x78 };

/* A batch [first, end) whose groups have these categories and counts. */
static void
batch_message_init(BatchMessage *m,
		   uint64_t first,
		   uint64_t end,
		   const uint32_t *categories,
		   const uint32_t *counts,
		   size_t n_groups)
{
	amulet__v1__message__init(&m->message);
	amulet__v1__sync_batch__init(&m->batch);
	for (size_t i = 0; i < n_groups; i++) {
		amulet__v1__sample_group__init(&m->groups[i]);
		m->groups[i].category = categories[i];
		m->groups[i].count = counts[i];
		m->groups[i].columns.data = (uint8_t *)one_sample;
		m->groups[i].columns.len = sizeof(one_sample);
		m->group_ptrs[i] = &m->groups[i];
	}
	m->batch.first_seq = first;
	m->batch.end_seq = end;
	m->batch.device_time_ms = 1010;
	m->batch.n_groups = n_groups;
	m->batch.groups = m->group_ptrs;
	m->message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_BATCH;
	m->message.sync_batch = &m->batch;
}

static void
batch_message_one(BatchMessage *m, uint64_t first, uint64_t end)
{
	const uint32_t categories[] = { AMU_CATEGORY_HEART_RATE };
	const uint32_t counts[] = { (uint32_t)(end - first) };

	batch_message_init(m, first, end, categories, counts, 1);
}

#define REQUEST_MS 1000

/* A receiver at @cursor that asked at REQUEST_MS; with @end, also answered
 * by a SyncStart [cursor, end). */
static AmuSyncReceiver *
receiver_new(uint64_t cursor, gboolean started, uint64_t end)
{
	AmuSyncReceiver *receiver =
	  amu_sync_receiver_new(cursor, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	Amulet__V1__SyncRequest request;
	Amulet__V1__SyncStart start = AMULET__V1__SYNC_START__INIT;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	g_autoptr(GError) error = NULL;
	AmuSyncRxEvent event;

	amu_sync_receiver_start(receiver, REQUEST_MS, &request);
	CU_ASSERT_EQUAL(request.since, cursor);
	CU_ASSERT_EQUAL(request.host_time_ms, REQUEST_MS);
	if (!started)
		return receiver;
	start.first_seq = cursor;
	start.end_seq = end;
	start.host_time_ms = REQUEST_MS;
	start.device_time_ms = REQUEST_MS + 10;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_START;
	message.sync_start = &start;
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &message, REQUEST_MS + 20, &event, &error));
	CU_ASSERT_EQUAL(event, AMU_SYNC_RX_STARTED);
	CU_ASSERT_EQUAL(amu_sync_receiver_get_end(receiver), end);
	return receiver;
}

/* @receiver refuses @message with @code and its cursor stays. */
static void
assert_receiver_refuses(AmuSyncReceiver *receiver, const Amulet__V1__Message *message, int code)
{
	g_autoptr(GError) error = NULL;
	uint64_t cursor = amu_sync_receiver_get_cursor(receiver);
	AmuSyncRxEvent event;

	CU_ASSERT_FALSE(amu_sync_receiver_rx(receiver, message, REQUEST_MS + 30, &event, &error));
	AMU_ASSERT_ERROR(error, code);
	CU_ASSERT_EQUAL(amu_sync_receiver_get_cursor(receiver), cursor);
}

static void
test_receiver_batch_before_start(void)
{
	AmuSyncReceiver *receiver =
	  amu_sync_receiver_new(100, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	BatchMessage m;

	batch_message_one(&m, 100, 110);
	/* not even asked */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	amu_sync_receiver_free(receiver);
	/* asked, not answered */
	receiver = receiver_new(100, FALSE, 0);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	CU_ASSERT_FALSE(amu_sync_receiver_is_done(receiver));
	amu_sync_receiver_free(receiver);
}

static void
test_receiver_batch_out_of_sequence(void)
{
	AmuSyncReceiver *receiver = receiver_new(100, TRUE, 200);
	g_autoptr(GError) error = NULL;
	Amulet__V1__SyncAck ack;
	AmuSyncRxEvent event;
	BatchMessage m;

	batch_message_one(&m, 101, 110); /* a gap */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_one(&m, 99, 110); /* overlapping what is stored */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_one(&m, 100, 100); /* empty */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);

	batch_message_one(&m, 100, 110);
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &m.message, REQUEST_MS + 30, &event, &error));
	CU_ASSERT_EQUAL(event, AMU_SYNC_RX_BATCH);
	amu_sync_receiver_stored(receiver, &ack);
	CU_ASSERT_EQUAL(ack.next_seq, 110);
	batch_message_one(&m, 105, 120); /* overlapping the last batch */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_one(&m, 100, 110); /* the last batch again */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_one(&m, 111, 120);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	CU_ASSERT_EQUAL(amu_sync_receiver_get_cursor(receiver), 110);
	amu_sync_receiver_free(receiver);
}

static void
test_receiver_batch_beyond_end(void)
{
	AmuSyncReceiver *receiver = receiver_new(100, TRUE, 200);
	g_autoptr(GError) error = NULL;
	AmuSyncRxEvent event;
	BatchMessage m;

	batch_message_one(&m, 100, 201);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_one(&m, 100, 200);
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &m.message, REQUEST_MS + 30, &event, &error));
	amu_sync_receiver_free(receiver);
}

static void
test_receiver_group_counts(void)
{
	AmuSyncReceiver *receiver = receiver_new(0, TRUE, 100);
	const uint32_t categories[] = { AMU_CATEGORY_HEART_RATE,
					AMU_CATEGORY_STEPS,
					AMU_CATEGORY_BATTERY };
	const uint32_t too_few[] = { 4, 3, 2 };
	const uint32_t too_many[] = { 4, 3, 4 };
	const uint32_t with_empty[] = { 7, 0, 3 };
	const uint32_t right[] = { 4, 3, 3 };
	g_autoptr(GError) error = NULL;
	AmuSyncRxEvent event;
	BatchMessage m;

	batch_message_init(&m, 0, 10, categories, too_few, 3);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, categories, too_many, 3);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, categories, with_empty, 3);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, categories, right, 0); /* no groups at all */
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, categories, right, 3);
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &m.message, REQUEST_MS + 30, &event, &error));
	amu_sync_receiver_free(receiver);
}

static void
test_receiver_unknown_category(void)
{
	AmuSyncReceiver *receiver = receiver_new(0, TRUE, 100);
	const uint32_t zero[] = { AMU_CATEGORY_HEART_RATE, 0 };
	const uint32_t past_last[] = { AMU_CATEGORY_HEART_RATE, AMU_CATEGORY_LAST + 1 };
	const uint32_t huge[] = { 0x80000001u, AMU_CATEGORY_HEART_RATE };
	const uint32_t counts[] = { 5, 5 };
	BatchMessage m;

	batch_message_init(&m, 0, 10, zero, counts, 2);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, past_last, counts, 2);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	batch_message_init(&m, 0, 10, huge, counts, 2);
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	amu_sync_receiver_free(receiver);
}

static void
start_message_init(Amulet__V1__Message *message,
		   Amulet__V1__SyncStart *start,
		   uint64_t first,
		   uint64_t end,
		   int64_t host_time_ms)
{
	amulet__v1__message__init(message);
	amulet__v1__sync_start__init(start);
	start->first_seq = first;
	start->end_seq = end;
	start->host_time_ms = host_time_ms;
	start->device_time_ms = host_time_ms + 10;
	message->body_case = AMULET__V1__MESSAGE__BODY_SYNC_START;
	message->sync_start = start;
}

static void
test_receiver_start_below_cursor(void)
{
	AmuSyncReceiver *receiver = receiver_new(500, FALSE, 0);
	Amulet__V1__Message message;
	Amulet__V1__SyncStart start;

	/* The device's log restarted: its end is below what the host stored. */
	start_message_init(&message, &start, 0, 499, REQUEST_MS);
	assert_receiver_refuses(receiver, &message, AMU_ERROR_ROLLBACK);
	CU_ASSERT_FALSE(amu_sync_receiver_is_done(receiver));
	amu_sync_receiver_free(receiver);

	/* A start with its first after its end is nonsense. */
	receiver = receiver_new(500, FALSE, 0);
	start_message_init(&message, &start, 900, 800, REQUEST_MS);
	assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	amu_sync_receiver_free(receiver);
}

static void
test_receiver_start_other_request(void)
{
	AmuSyncReceiver *receiver = receiver_new(0, FALSE, 0);
	g_autoptr(GError) error = NULL;
	Amulet__V1__Message message;
	Amulet__V1__SyncStart start;
	AmuSyncRxEvent event;

	start_message_init(&message, &start, 0, 100, REQUEST_MS - 1);
	assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	start_message_init(&message, &start, 0, 100, 0);
	assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	CU_ASSERT_EQUAL(amu_sync_receiver_get_end(receiver), 0);
	/* the answer to this request is taken, once */
	start_message_init(&message, &start, 0, 100, REQUEST_MS);
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &message, REQUEST_MS + 20, &event, &error));
	CU_ASSERT_EQUAL(amu_sync_receiver_get_end(receiver), 100);
	assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	amu_sync_receiver_free(receiver);
}

/* A device clock so far off that its distance to the host's does not fit
 * an int64 cannot be corrected for: refused, never wrapped around. */
static void
test_receiver_device_clock_out_of_range(void)
{
	AmuSyncReceiver *receiver = receiver_new(0, FALSE, 0);
	g_autoptr(GError) error = NULL;
	Amulet__V1__Message message;
	Amulet__V1__SyncStart start;
	AmuSyncRxEvent event;
	BatchMessage m;

	start_message_init(&message, &start, 0, 100, REQUEST_MS);
	start.device_time_ms = G_MININT64;
	assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	amu_sync_receiver_free(receiver);

	receiver = amu_sync_receiver_new(0, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	{
		Amulet__V1__SyncRequest request;

		amu_sync_receiver_start(receiver, G_MININT64 + 5, &request);
		start_message_init(&message, &start, 0, 100, G_MININT64 + 5);
		start.device_time_ms = G_MAXINT64;
		assert_receiver_refuses(receiver, &message, AMU_ERROR_PROTOCOL);
	}
	amu_sync_receiver_free(receiver);

	/* a batch's clock, too */
	receiver = receiver_new(0, TRUE, 100);
	batch_message_one(&m, 0, 10);
	m.batch.device_time_ms = G_MININT64;
	assert_receiver_refuses(receiver, &m.message, AMU_ERROR_PROTOCOL);
	/* far off but representable is a clock to correct, not an error */
	m.batch.device_time_ms = G_MAXINT64;
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &m.message, REQUEST_MS + 30, &event, &error));
	CU_ASSERT_PTR_NULL(error);
	amu_sync_receiver_free(receiver);
}

/* ---------------------------------------------------------------- the sender refuses */

/* What a sender sent, copied out of its messages. */
typedef struct {
	Amulet__V1__Message__BodyCase body_case;
	uint64_t first_seq;
	uint64_t end_seq;
} Sent;

static gboolean
record_send_cb(const Amulet__V1__Message *message, void *user_data, GError **error)
{
	GArray *sent = user_data;
	Sent entry = { message->body_case, 0, 0 };

	if (message->body_case == AMULET__V1__MESSAGE__BODY_SYNC_BATCH) {
		entry.first_seq = message->sync_batch->first_seq;
		entry.end_seq = message->sync_batch->end_seq;
	} else if (message->body_case == AMULET__V1__MESSAGE__BODY_SYNC_START) {
		entry.first_seq = message->sync_start->first_seq;
		entry.end_seq = message->sync_start->end_seq;
	}
	g_array_append_val(sent, entry);
	return TRUE;
}

static void
request_message_init(Amulet__V1__Message *message,
		     Amulet__V1__SyncRequest *request,
		     uint64_t since,
		     uint32_t window,
		     uint32_t max_batch_bytes)
{
	amulet__v1__message__init(message);
	amulet__v1__sync_request__init(request);
	request->since = since;
	request->window = window;
	request->max_batch_bytes = max_batch_bytes;
	request->host_time_ms = REQUEST_MS;
	message->body_case = AMULET__V1__MESSAGE__BODY_SYNC_REQUEST;
	message->sync_request = request;
}

/* @sender refuses @message with @code, sends nothing and drops nothing. */
static void
assert_sender_refuses(AmuSyncSender *sender,
		      Device *device,
		      GArray *sent,
		      const Amulet__V1__Message *message,
		      int code)
{
	g_autoptr(GError) error = NULL;
	guint n_sent = sent->len;
	uint64_t first = amu_device_log_get_first_seq(device->log);

	CU_ASSERT_FALSE(amu_sync_sender_rx(sender, message, REQUEST_MS + 10, &error));
	AMU_ASSERT_ERROR(error, code);
	CU_ASSERT_EQUAL(sent->len, n_sent);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), first);
}

static void
test_sender_request_out_of_range(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(8);
	g_autoptr(GArray) sent = g_array_new(FALSE, FALSE, sizeof(Sent));
	AmuSyncSender *sender = amu_sync_sender_new(device->log, record_send_cb, sent);
	const uint32_t bad[][2] = {
		{ 0, AMU_SYNC_DEFAULT_BATCH_BYTES },
		{ AMU_SYNC_MAX_WINDOW + 1, AMU_SYNC_DEFAULT_BATCH_BYTES },
		{ AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_MIN_BATCH_BYTES - 1 },
		{ AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_MAX_BATCH_BYTES + 1 },
		{ AMU_SYNC_DEFAULT_WINDOW, 0 },
		{ G_MAXUINT32, G_MAXUINT32 },
	};
	Amulet__V1__Message message;
	Amulet__V1__SyncRequest request;
	g_autoptr(GError) error = NULL;

	device_append(device, generator, AMU_CATEGORY_HEART_RATE, 6000);
	/* since 50 would also ack 50 samples: a refused request must not */
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		request_message_init(&message, &request, 50, bad[i][0], bad[i][1]);
		assert_sender_refuses(sender, device, sent, &message, AMU_ERROR_PROTOCOL);
	}
	/* the limits themselves are fine */
	request_message_init(&message, &request, 50, AMU_SYNC_MAX_WINDOW, AMU_SYNC_MIN_BATCH_BYTES);
	CU_ASSERT_TRUE(amu_sync_sender_rx(sender, &message, REQUEST_MS + 10, &error));
	CU_ASSERT_PTR_NULL_FATAL(error);
	CU_ASSERT_EQUAL(amu_sync_sender_get_in_flight(sender), AMU_SYNC_MAX_WINDOW);
	CU_ASSERT_EQUAL(sent->len, 1 + AMU_SYNC_MAX_WINDOW);
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), 50);
	amu_sync_sender_free(sender);
	sender = amu_sync_sender_new(device->log, record_send_cb, sent);
	request_message_init(&message, &request, 50, 1, AMU_SYNC_MAX_BATCH_BYTES);
	CU_ASSERT_TRUE(amu_sync_sender_rx(sender, &message, REQUEST_MS + 10, &error));
	CU_ASSERT_EQUAL(amu_sync_sender_get_in_flight(sender), 1);
	amu_sync_sender_free(sender);
}

static void
test_sender_since_beyond_end(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(9);
	g_autoptr(GArray) sent = g_array_new(FALSE, FALSE, sizeof(Sent));
	AmuSyncSender *sender = amu_sync_sender_new(device->log, record_send_cb, sent);
	Amulet__V1__Message message;
	Amulet__V1__SyncRequest request;
	g_autoptr(GError) error = NULL;

	device_append(device, generator, AMU_CATEGORY_STEPS, 100);
	/* The host stored more than this log ever held: the log was reset. */
	request_message_init(
	  &message, &request, 101, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	assert_sender_refuses(sender, device, sent, &message, AMU_ERROR_ROLLBACK);
	CU_ASSERT_EQUAL(amu_device_log_get_end_seq(device->log), 100);
	/* Exactly at the end: nothing to send, all acked. */
	request_message_init(
	  &message, &request, 100, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	CU_ASSERT_TRUE(amu_sync_sender_rx(sender, &message, REQUEST_MS + 10, &error));
	CU_ASSERT_EQUAL_FATAL(sent->len, 1);
	CU_ASSERT_EQUAL(g_array_index(sent, Sent, 0).body_case,
			AMULET__V1__MESSAGE__BODY_SYNC_START);
	CU_ASSERT_EQUAL(g_array_index(sent, Sent, 0).first_seq, 100);
	CU_ASSERT_EQUAL(g_array_index(sent, Sent, 0).end_seq, 100);
	CU_ASSERT_TRUE(device_log_empty(device));
	amu_sync_sender_free(sender);
}

static void
ack_message_init(Amulet__V1__Message *message, Amulet__V1__SyncAck *ack, uint64_t next_seq)
{
	amulet__v1__message__init(message);
	amulet__v1__sync_ack__init(ack);
	ack->next_seq = next_seq;
	message->body_case = AMULET__V1__MESSAGE__BODY_SYNC_ACK;
	message->sync_ack = ack;
}

static void
test_sender_ack_matches_no_batch(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Generator) generator = generator_new(10);
	g_autoptr(GArray) sent = g_array_new(FALSE, FALSE, sizeof(Sent));
	AmuSyncSender *sender = amu_sync_sender_new(device->log, record_send_cb, sent);
	Amulet__V1__Message message;
	Amulet__V1__SyncRequest request;
	Amulet__V1__SyncAck ack;
	g_autoptr(GError) error = NULL;
	uint64_t first_end, second_end;
	uint64_t wrong[7];

	device_append(device, generator, AMU_CATEGORY_LOCATION, 2000);
	/* an ack before any sync */
	ack_message_init(&message, &ack, 10);
	assert_sender_refuses(sender, device, sent, &message, AMU_ERROR_PROTOCOL);

	request_message_init(&message, &request, 0, 2, AMU_SYNC_MIN_BATCH_BYTES);
	CU_ASSERT_TRUE_FATAL(amu_sync_sender_rx(sender, &message, REQUEST_MS + 10, &error));
	CU_ASSERT_EQUAL_FATAL(sent->len, 3); /* start and two batches */
	first_end = g_array_index(sent, Sent, 1).end_seq;
	second_end = g_array_index(sent, Sent, 2).end_seq;
	CU_ASSERT_EQUAL(g_array_index(sent, Sent, 2).first_seq, first_end);

	/* before, inside and after each batch in flight; the log's end; nonsense */
	wrong[0] = 0;
	wrong[1] = first_end - 1;
	wrong[2] = first_end + 1;
	wrong[3] = second_end - 1;
	wrong[4] = second_end + 1;
	wrong[5] = 2000;
	wrong[6] = G_MAXUINT64;
	for (size_t i = 0; i < G_N_ELEMENTS(wrong); i++) {
		ack_message_init(&message, &ack, wrong[i]);
		assert_sender_refuses(sender, device, sent, &message, AMU_ERROR_PROTOCOL);
		CU_ASSERT_EQUAL(amu_sync_sender_get_in_flight(sender), 2);
	}
	/* Acking the second batch acks both; the window refills. */
	ack_message_init(&message, &ack, second_end);
	CU_ASSERT_TRUE(amu_sync_sender_rx(sender, &message, REQUEST_MS + 20, &error));
	CU_ASSERT_EQUAL(amu_device_log_get_first_seq(device->log), second_end);
	CU_ASSERT_EQUAL(sent->len, 5);
	CU_ASSERT_EQUAL(g_array_index(sent, Sent, 3).first_seq, second_end);
	/* ...and an ack for a batch already acked matches nothing now */
	ack_message_init(&message, &ack, first_end);
	assert_sender_refuses(sender, device, sent, &message, AMU_ERROR_PROTOCOL);
	amu_sync_sender_free(sender);
}

/* ---------------------------------------------------------------- clock offset */

/* The host asks at @request_ms and hears the answer at @request_ms + 20;
 * the device answered half way, on a clock @ahead_ms ahead. */
static AmuSyncReceiver *
receiver_measure(int64_t request_ms, int64_t ahead_ms)
{
	AmuSyncReceiver *receiver =
	  amu_sync_receiver_new(0, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	g_autoptr(GError) error = NULL;
	Amulet__V1__SyncRequest request;
	Amulet__V1__SyncStart start = AMULET__V1__SYNC_START__INIT;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	AmuSyncRxEvent event;

	amu_sync_receiver_start(receiver, request_ms, &request);
	start.first_seq = 0;
	start.end_seq = 100;
	start.host_time_ms = request.host_time_ms;
	start.device_time_ms = request_ms + 10 + ahead_ms;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_START;
	message.sync_start = &start;
	CU_ASSERT_TRUE(amu_sync_receiver_rx(receiver, &message, request_ms + 20, &event, &error));
	CU_ASSERT_PTR_NULL(error);
	return receiver;
}

static void
test_clock_offset(void)
{
	const int64_t t = 1700000000000;
	const int64_t ahead = 3600000;
	AmuSyncReceiver *receiver = receiver_measure(t, ahead);
	int64_t uncertainty = -1;
	int64_t offset = amu_sync_receiver_get_clock_offset(receiver, &uncertainty);

	/* the device answered after t and before t + 20, host time */
	CU_ASSERT_TRUE(offset >= ahead - 10 && offset <= ahead + 10);
	CU_ASSERT_TRUE(uncertainty >= 0 && uncertainty <= 10);
	CU_ASSERT_TRUE(offset - uncertainty <= ahead && ahead <= offset + uncertainty);
	amu_sync_receiver_free(receiver);

	/* behind works the same */
	receiver = receiver_measure(t, -ahead);
	offset = amu_sync_receiver_get_clock_offset(receiver, &uncertainty);
	CU_ASSERT_TRUE(offset >= -ahead - 10 && offset <= -ahead + 10);
	CU_ASSERT_TRUE(uncertainty <= 10);
	amu_sync_receiver_free(receiver);
}

static void
test_clock_offset_equal_clocks(void)
{
	AmuSyncReceiver *receiver = receiver_measure(1700000000000, 0);
	int64_t uncertainty = -1;

	CU_ASSERT_EQUAL(amu_sync_receiver_get_clock_offset(receiver, &uncertainty), 0);
	CU_ASSERT_TRUE(uncertainty >= 0 && uncertainty <= 10);
	amu_sync_receiver_free(receiver);
}

/* What a user sees: samples taken on a device an hour fast are stored at
 * the host's time. */
static void
test_clock_offset_stored(void)
{
	g_autoptr(Device) device = device_new();
	g_autoptr(Host) host = host_new();
	g_autoptr(Generator) generator = generator_new(11);
	g_autoptr(GArray) stored = NULL;
	g_autoptr(GArray) expected = NULL;
	g_autofree char *want = NULL;
	g_autofree char *got = NULL;
	int64_t clock_ms = 1700000000000;
	const Link link = { G_MAXUINT, AMU_SYNC_DEFAULT_BATCH_BYTES, 10, NULL };
	Connection connection;

	device->clock_ahead_ms = 3600000;
	device_append_hour(device, generator);
	/* 10 ms a hop: the offset is measured to within 10 ms, and is exact
	 * here since the device answers half way */
	connection = run_connection(device, host, &link, &clock_ms);
	CU_ASSERT_FALSE(connection.failed);
	CU_ASSERT_TRUE(connection.done);
	CU_ASSERT_TRUE(connection.offset_ms >= 3600000 - 10 &&
		       connection.offset_ms <= 3600000 + 10);
	stored = host_samples(host);
	expected = g_array_copy(device->appended);
	for (guint i = 0; i < expected->len; i++)
		g_array_index(expected, AmuSample, i).timestamp_ms -= connection.offset_ms;
	want = samples_digest(expected);
	got = samples_digest(stored);
	CU_ASSERT_EQUAL(stored->len, expected->len);
	CU_ASSERT_STRING_EQUAL(got, want);
}

AMU_TEST_MAIN("sync",
	      { "device log append and read ranges", test_log_read_ranges },
	      { "device log drop persists", test_log_drop_persists },
	      { "device log drop beyond end", test_log_drop_beyond_end },
	      { "device log append out of range", test_log_append_out_of_range },
	      { "end to end", test_end_to_end },
	      { "stored but ack lost", test_ack_lost },
	      { "exactly once under interruption", test_interruptions },
	      { "receiver: batch before start", test_receiver_batch_before_start },
	      { "receiver: batch out of sequence", test_receiver_batch_out_of_sequence },
	      { "receiver: batch beyond end", test_receiver_batch_beyond_end },
	      { "receiver: group counts", test_receiver_group_counts },
	      { "receiver: unknown category", test_receiver_unknown_category },
	      { "receiver: start below cursor", test_receiver_start_below_cursor },
	      { "receiver: start for another request", test_receiver_start_other_request },
	      { "receiver: device clock out of range", test_receiver_device_clock_out_of_range },
	      { "sender: request out of range", test_sender_request_out_of_range },
	      { "sender: since beyond log end", test_sender_since_beyond_end },
	      { "sender: ack matches no batch", test_sender_ack_matches_no_batch },
	      { "clock offset", test_clock_offset },
	      { "clock offset, equal clocks", test_clock_offset_equal_clocks },
	      { "clock offset applied to stored samples", test_clock_offset_stored })
