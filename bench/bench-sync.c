/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: telemetry sync, each figure against a baseline measured in the
 * same run.
 *   ingest  the host's ingest of a 24 h band day (transport record open,
 *           protobuf unpack, decode and verify, XChaCha20-Poly1305 seal, one
 *           transaction per batch) against raw SQLite row inserts
 *   link    a 24 h watch day from amulet-sim shaped to 1.4 Mbit/s at ATT MTU
 *           247: connect + sync wall time against the line rate
 *   rss     peak RSS of 'amulet sync' over 30 days against 'amulet devices'
 *   many    'amulet sync --all' of 100 simulators against syncing the same
 *           devices one at a time
 * Usage: bench-sync [ingest] [link] [rss] [many]; no argument runs them all.
 * Every child is killed and reaped and the temporary directory removed, also
 * when a part fails or the run is interrupted. Times are wall clock: fsync
 * and the shaped link are the point. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amu-batch.h"
#include "amu-channel.h"
#include "amu-cipher.h"
#include "amu-device-log.h"
#include "amu-link.h"
#include "amu-sample-store.h"
#include "amu-simdata.h"
#include "amu-store.h"
#include "amu-sync.h"
#include "amulet/amulet.h"
#include "bench-children.h"

#define SEED "42"
#define SEED_NUMBER 42
#define START "2026-03-02" /* seed 42's watch has a run with GPS that day */
#define LINK_RATE 1400000
#define LINK_RATE_STR "1400000"
#define LINK_MTU "247"
#define INGEST_REPS 5
#define LINK_REPS 3
#define MANY_DEVICES 100
#define MANY_REPS 2
#define DEVICE_ID "0123456789abcdef0123456789abcdef"
#define HOST_NOW_MS G_GINT64_CONSTANT(1772500000000)

static const char *tool_amulet = AMU_BENCH_BUILDDIR "/tools/amulet";
static const char *tool_sim = AMU_BENCH_BUILDDIR "/tools/amulet-sim";
static const char *temp_root; /* bench_children_init()'s scratch directory */

static int
compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
median(double *values, size_t n)
{
	qsort(values, n, sizeof(double), compare_doubles);
	return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static double
mib(long maxrss_kib)
{
	return (double)maxrss_kib / 1024.0;
}

/* Runs @argv to its end (killed after @timeout_s); exit status, peak RSS and wall time. */
static gboolean
run_child(const char *const *argv, const char *out_path, const char *err_path, double timeout_s, int *status,
	  struct rusage *usage, double *seconds, GError **error)
{
	double t0 = bench_wall_seconds();
	pid_t pid = bench_spawn(argv, out_path, err_path, error);

	if (pid < 0)
		return FALSE;
	if (!bench_child_wait(pid, timeout_s, status, usage)) {
		kill(pid, SIGKILL);
		bench_child_wait(pid, -1, NULL, NULL);
		g_autofree char *command = g_strjoinv(" ", (char **)argv);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "'%s' did not finish within %.0f s", command,
			    timeout_s);
		return FALSE;
	}
	*seconds = bench_wall_seconds() - t0;
	return TRUE;
}

static gboolean
run_tool(const char *const *argv, const char *out_path, const char *err_path, double timeout_s,
	 struct rusage *usage, double *seconds, GError **error)
{
	int status = 0;
	struct rusage ignored;
	double ignored_seconds;

	if (!run_child(argv, out_path, err_path, timeout_s, &status, usage != NULL ? usage : &ignored,
		       seconds != NULL ? seconds : &ignored_seconds, error))
		return FALSE;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		g_autofree char *err = NULL;
		g_autofree char *command = g_strjoinv(" ", (char **)argv);
		g_file_get_contents(err_path, &err, NULL, NULL);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "'%s' failed (status %d): %s", command, status,
			    err != NULL ? g_strstrip(err) : "");
		return FALSE;
	}
	return TRUE;
}

static pid_t
sim_start(const char *dir, const char *name, const char *profile, const char *days, const char *seed,
	  const char *rate, const char *mtu, GError **error)
{
	g_autofree char *sock = g_strdup_printf("%s/%s.sock", dir, name);
	g_autofree char *state = g_strdup_printf("%s/%s-state", dir, name);
	g_autofree char *log = g_strdup_printf("%s/%s.log", dir, name);
	const char *argv[] = {tool_sim, "--listen", sock, "--state", state, "--profile", profile, "--days", days,
			      "--seed", seed, "--start", START, "--link-rate", rate, "--mtu", mtu, NULL};

	return bench_spawn(argv, log, NULL, error);
}

/* sums the integers after every "key": in @json */
static guint64
json_sum(const char *json, const char *key)
{
	g_autofree char *needle = g_strdup_printf("\"%s\":", key);
	guint64 sum = 0;

	for (const char *p = strstr(json, needle); p != NULL; p = strstr(p + 1, needle))
		sum += g_ascii_strtoull(p + strlen(needle), NULL, 10);
	return sum;
}

static guint
json_count(const char *json, const char *needle)
{
	guint n = 0;

	for (const char *p = strstr(json, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ------------------------------------------------------------ ingest */

typedef struct {
	GPtrArray *packets;   /* GBytes: Packet{record} as the framer hands them on; SyncStart first */
	GArray *batch_sizes;  /* guint: samples per batch */
	GArray *samples;      /* AmuSample, in batch order */
	uint8_t transport_key[AMU_CIPHER_KEYBYTES];
	uint64_t end_seq;
	size_t column_bytes;
	size_t packet_bytes;
} IngestData;

typedef struct {
	AmuDeviceLog *log;
	GError *error;
} Append;

static void
append_cb(AmuCategory category, const AmuSample *samples, size_t n, void *user_data)
{
	Append *append = user_data;

	if (append->error == NULL)
		amu_device_log_append(append->log, category, samples, n, &append->error);
}

static gint64
start_ms(void)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_iso8601(START "T00:00:00Z", NULL);
	return g_date_time_to_unix(t) * 1000;
}

/* what amu_channel_send() puts on the framer: Packet{version, record} */
static GBytes *
seal_packet(AmuCipherState *cs, const Amulet__V1__Message *message)
{
	Amulet__V1__Packet packet = AMULET__V1__PACKET__INIT;
	size_t plain_len = protobuf_c_message_get_packed_size(&message->base);
	g_autofree uint8_t *record = g_malloc(plain_len + AMU_RECORD_OVERHEAD);
	size_t record_len = 0, len;
	uint8_t *out;

	protobuf_c_message_pack(&message->base, record + AMU_RECORD_HEADERBYTES);
	if (amu_record_seal(cs, record, plain_len + AMU_RECORD_OVERHEAD, &record_len,
			    record + AMU_RECORD_HEADERBYTES, plain_len) < 0)
		return NULL;
	packet.version = AMU_CHANNEL_PROTOCOL_VERSION;
	packet.body_case = AMULET__V1__PACKET__BODY_RECORD;
	packet.record.data = record;
	packet.record.len = record_len;
	len = amulet__v1__packet__get_packed_size(&packet);
	out = g_malloc(len);
	amulet__v1__packet__pack(&packet, out);
	return g_bytes_new_take(out, len);
}

static void
ingest_data_clear(IngestData *data)
{
	g_clear_pointer(&data->packets, g_ptr_array_unref);
	g_clear_pointer(&data->batch_sizes, g_array_unref);
	g_clear_pointer(&data->samples, g_array_unref);
}

/* A band day in a device log, read back as the device sends it: batches of
 * 4096 bytes of columns, packed, sealed and framed, outside the timing. */
static gboolean
ingest_prepare(IngestData *data, const char *dir, GError **error)
{
	g_autoptr(AmuStore) store = amu_store_open(dir, "device.db", error);
	g_autoptr(AmuDeviceLog) log = NULL;
	g_autoptr(AmuCipherState) cs = NULL;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__SyncStart start = AMULET__V1__SYNC_START__INIT;
	Append append = {0};
	uint64_t seq = 0;

	if (store == NULL || (log = amu_device_log_new(store, error)) == NULL)
		return FALSE;
	append.log = log;
	amu_simdata_generate(AMU_PERIPHERAL_PROFILE_BAND, SEED_NUMBER, start_ms(), 1, append_cb, &append);
	if (append.error != NULL) {
		g_propagate_error(error, append.error);
		return FALSE;
	}
	data->end_seq = amu_device_log_get_end_seq(log);
	data->packets = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	data->batch_sizes = g_array_new(FALSE, FALSE, sizeof(guint));
	data->samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	randombytes_buf(data->transport_key, sizeof(data->transport_key));
	cs = amu_cipher_state_new(data->transport_key);
	start.first_seq = 0;
	start.end_seq = data->end_seq;
	start.host_time_ms = HOST_NOW_MS;
	start.device_time_ms = HOST_NOW_MS;
	message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_START;
	message.sync_start = &start;
	g_ptr_array_add(data->packets, seal_packet(cs, &message));
	while (seq < data->end_seq) {
		g_autoptr(GPtrArray) groups = NULL;
		g_autofree Amulet__V1__SampleGroup *group_msgs = NULL;
		g_autofree Amulet__V1__SampleGroup **group_ptrs = NULL;
		Amulet__V1__SyncBatch batch = AMULET__V1__SYNC_BATCH__INIT;
		uint64_t next = 0;
		guint n;

		if (!amu_device_log_read(log, seq, data->end_seq, AMU_SYNC_DEFAULT_BATCH_BYTES, &groups, &next, error))
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
			data->column_bytes += group->columns->len;
			if (!amu_batch_decode_group(group->category, group->columns->data, group->columns->len,
						    data->samples, error))
				return FALSE;
		}
		batch.first_seq = seq;
		batch.end_seq = next;
		batch.device_time_ms = HOST_NOW_MS;
		batch.n_groups = groups->len;
		batch.groups = group_ptrs;
		message.body_case = AMULET__V1__MESSAGE__BODY_SYNC_BATCH;
		message.sync_batch = &batch;
		g_ptr_array_add(data->packets, seal_packet(cs, &message));
		data->packet_bytes += g_bytes_get_size(g_ptr_array_index(data->packets, data->packets->len - 1));
		n = (guint)(next - seq);
		g_array_append_val(data->batch_sizes, n);
		seq = next;
	}
	return TRUE;
}

static void
packet_free(Amulet__V1__Packet *packet)
{
	amulet__v1__packet__free_unpacked(packet, NULL);
}

static void
message_free(Amulet__V1__Message *message)
{
	amulet__v1__message__free_unpacked(message, NULL);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Amulet__V1__Packet, packet_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Amulet__V1__Message, message_free)

/* the batches held back so far are stored in one transaction and acked,
 * as amu-session-sync.c does with batches that arrive together */
static gboolean
ingest_flush(AmuStore *store, const uint8_t *key, AmuSyncReceiver *receiver, GPtrArray *held, GError **error)
{
	g_autofree int64_t *offsets = g_new0(int64_t, MAX(held->len, 1));
	g_autofree const Amulet__V1__SyncBatch **batches = g_new0(const Amulet__V1__SyncBatch *, MAX(held->len, 1));
	Amulet__V1__SyncAck ack;

	if (held->len == 0)
		return TRUE;
	for (guint i = 0; i < held->len; i++) {
		const Amulet__V1__Message *message = g_ptr_array_index(held, i);
		batches[i] = message->sync_batch;
		offsets[i] = amu_sync_receiver_get_clock_offset(receiver, NULL);
	}
	if (!amu_sample_store_ingest_many(store, DEVICE_ID, key, batches, offsets, held->len, HOST_NOW_MS, error))
		return FALSE;
	amu_sync_receiver_stored(receiver, &ack);
	g_ptr_array_set_size(held, 0);
	return TRUE;
}

/* one packet as the host's channel and session sync take it */
static gboolean
ingest_packet(AmuStore *store, const uint8_t *key, AmuCipherState *cs, AmuSyncReceiver *receiver, GBytes *bytes,
	      GPtrArray *held, GError **error)
{
	g_autoptr(Amulet__V1__Packet) packet = amulet__v1__packet__unpack(NULL, g_bytes_get_size(bytes),
									    g_bytes_get_data(bytes, NULL));
	g_autoptr(Amulet__V1__Message) message = NULL;
	g_autofree uint8_t *plain = NULL;
	size_t plain_len = 0;
	AmuSyncRxEvent event;

	if (packet == NULL || packet->body_case != AMULET__V1__PACKET__BODY_RECORD) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "bad packet");
		return FALSE;
	}
	plain = g_malloc(packet->record.len);
	if (amu_record_open(cs, plain, packet->record.len, &plain_len, packet->record.data, packet->record.len) !=
	    AMU_RECORD_OK) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_TAMPERED, "record does not open");
		return FALSE;
	}
	message = amulet__v1__message__unpack(NULL, plain_len, plain);
	sodium_memzero(plain, plain_len);
	if (message == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_PROTOCOL, "bad message");
		return FALSE;
	}
	if (!amu_sync_receiver_rx(receiver, message, HOST_NOW_MS, &event, error))
		return FALSE;
	if (event != AMU_SYNC_RX_BATCH)
		return TRUE;
	g_ptr_array_add(held, g_steal_pointer(&message));
	if (held->len < AMU_SYNC_DEFAULT_WINDOW)
		return TRUE;
	return ingest_flush(store, key, receiver, held, error);
}

static gboolean
ingest_run(IngestData *data, const char *dir, gboolean durable, double *seconds, GError **error)
{
	g_autoptr(AmuStore) store = amu_store_open(dir, "amulet.db", error);
	g_autoptr(AmuCipherState) cs = amu_cipher_state_new(data->transport_key);
	AmuSyncReceiver *receiver = amu_sync_receiver_new(0, AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	uint8_t *key = sodium_malloc(AMU_STORE_KEYBYTES);
	uint64_t counts[AMU_CATEGORY_LAST + 1], stored = 0, cursor = 0;
	Amulet__V1__SyncRequest request;
	gboolean ok = store != NULL && (durable || amu_store_exec(store, "PRAGMA synchronous = OFF", error)) &&
		      amu_store_create_data_key(store, DEVICE_ID, key, error);
	double t0;
	g_autoptr(GPtrArray) held = g_ptr_array_new_with_free_func((GDestroyNotify)message_free);

	amu_sync_receiver_start(receiver, HOST_NOW_MS, &request);
	t0 = bench_wall_seconds();
	for (guint i = 0; ok && i < data->packets->len; i++)
		ok = ingest_packet(store, key, cs, receiver, g_ptr_array_index(data->packets, i), held, error);
	if (ok)
		ok = ingest_flush(store, key, receiver, held, error);
	*seconds = bench_wall_seconds() - t0;
	if (ok)
		ok = amu_sample_store_count(store, DEVICE_ID, counts, error) &&
		     amu_sample_store_get_cursor(store, DEVICE_ID, &cursor, NULL, error);
	for (int c = AMU_CATEGORY_FIRST; ok && c <= AMU_CATEGORY_LAST; c++)
		stored += counts[c];
	if (ok && (stored != data->end_seq || cursor != data->end_seq || !amu_sync_receiver_is_done(receiver))) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_FAILED,
			    "ingest stored %" G_GUINT64_FORMAT " samples, cursor %" G_GUINT64_FORMAT
			    ", of %" G_GUINT64_FORMAT,
			    stored, cursor, data->end_seq);
		ok = FALSE;
	}
	amu_sync_receiver_free(receiver);
	sodium_free(key);
	return ok;
}

/* the baseline: one plain row per sample, the same transactions and pragmas */
static gboolean
raw_run(IngestData *data, const char *dir, gboolean durable, double *seconds, GError **error)
{
	g_autofree char *path = g_build_filename(dir, "raw.db", NULL);
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) insert = NULL;
	guint offset = 0;
	double t0;

	g_mkdir_with_parents(dir, 0700);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
	    !bench_sqlite_exec(db, durable ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL"
				     : "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF",
			 error) ||
	    !bench_sqlite_exec(db,
			 "CREATE TABLE samples(device TEXT NOT NULL, category INTEGER NOT NULL,"
			 " timestamp INTEGER NOT NULL, value0 INTEGER, value1 INTEGER, value2 INTEGER)",
			 error))
		return FALSE;
	if (sqlite3_prepare_v2(db, "INSERT INTO samples VALUES(?1, ?2, ?3, ?4, ?5, ?6)", -1, &insert, NULL) !=
	    SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "prepare: %s", sqlite3_errmsg(db));
		return FALSE;
	}
	t0 = bench_wall_seconds();
	for (guint b = 0; b < data->batch_sizes->len; b += AMU_SYNC_DEFAULT_WINDOW) {
		guint n = 0;
		/* the same commits as the ingest: one per group of batches */
		for (guint g = b; g < MIN(b + AMU_SYNC_DEFAULT_WINDOW, data->batch_sizes->len); g++)
			n += g_array_index(data->batch_sizes, guint, g);
		if (!bench_sqlite_exec(db, "BEGIN IMMEDIATE", error))
			return FALSE;
		for (guint i = offset; i < offset + n; i++) {
			const AmuSample *sample = &g_array_index(data->samples, AmuSample, i);
			guint n_values = amu_category_get_n_values(sample->category);
			sqlite3_bind_text(insert, 1, DEVICE_ID, -1, SQLITE_STATIC);
			sqlite3_bind_int(insert, 2, sample->category);
			sqlite3_bind_int64(insert, 3, sample->timestamp_ms);
			for (guint v = 0; v < AMU_SAMPLE_MAX_VALUES; v++) {
				if (v < n_values)
					sqlite3_bind_int(insert, 4 + (int)v, sample->values[v]);
				else
					sqlite3_bind_null(insert, 4 + (int)v);
			}
			if (sqlite3_step(insert) != SQLITE_DONE) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "insert: %s", sqlite3_errmsg(db));
				return FALSE;
			}
			sqlite3_reset(insert);
		}
		if (!bench_sqlite_exec(db, "COMMIT", error))
			return FALSE;
		offset += n;
	}
	*seconds = bench_wall_seconds() - t0;
	return TRUE;
}

static gboolean
bench_ingest(const char *dir, GError **error)
{
	IngestData data = {0};
	g_autofree char *device_dir = g_build_filename(dir, "device", NULL);
	double ingest[2][INGEST_REPS], raw[2][INGEST_REPS], ingest_s[2], raw_s[2];
	double n;

	if (!ingest_prepare(&data, device_dir, error)) {
		ingest_data_clear(&data);
		return FALSE;
	}
	n = (double)data.end_seq;
	/* interleaved, so drift in the disk or the machine hits both alike */
	for (int durable = 1; durable >= 0; durable--) {
		for (int rep = 0; rep < INGEST_REPS; rep++) {
			g_autofree char *host_dir = g_strdup_printf("%s/host-%d-%d", dir, durable, rep);
			g_autofree char *raw_dir = g_strdup_printf("%s/raw-%d-%d", dir, durable, rep);
			gboolean ok = ingest_run(&data, host_dir, durable, &ingest[durable][rep], error) &&
				      raw_run(&data, raw_dir, durable, &raw[durable][rep], error);
			bench_remove_tree(host_dir);
			bench_remove_tree(raw_dir);
			if (!ok) {
				ingest_data_clear(&data);
				return FALSE;
			}
		}
		ingest_s[durable] = median(ingest[durable], INGEST_REPS);
		raw_s[durable] = median(raw[durable], INGEST_REPS);
	}

	printf("host ingest, 24 h band: %" G_GUINT64_FORMAT " samples, %u batches of <= %d column bytes"
	       " (%zu column bytes, %zu packet bytes); one durable commit per %d batches that arrive together"
	       " (the sync window), for both; median of %d runs, wall time\n",
	       data.end_seq, data.batch_sizes->len, AMU_SYNC_DEFAULT_BATCH_BYTES, data.column_bytes,
	       data.packet_bytes, AMU_SYNC_DEFAULT_WINDOW, INGEST_REPS);
	printf("raw SQLite row inserts (WAL, FULL):       %8.3f M samples/s  (%.1f ms)\n", n / raw_s[1] / 1e6,
	       raw_s[1] * 1e3);
	printf("ingest: open+unpack+verify+seal+store:    %8.3f M samples/s  (%.1f ms; ratio %.2f to raw; "
	       "target >= 5 M samples/s, >= 2)\n",
	       n / ingest_s[1] / 1e6, ingest_s[1] * 1e3, raw_s[1] / ingest_s[1]);
	printf("  same with synchronous=OFF for both (not durable, for the commit share only):\n");
	printf("  raw SQLite row inserts (WAL, OFF):      %8.3f M samples/s  (%.1f ms)\n", n / raw_s[0] / 1e6,
	       raw_s[0] * 1e3);
	printf("  ingest (WAL, OFF):                      %8.3f M samples/s  (%.1f ms; ratio %.2f to raw)\n",
	       n / ingest_s[0] / 1e6, ingest_s[0] * 1e3, raw_s[0] / ingest_s[0]);
	printf("  share of wall time in durable commits (1 - OFF/FULL): ingest %.0f%%, raw rows %.0f%%;"
	       " %.2f ms a commit\n",
	       100 * (1 - ingest_s[0] / ingest_s[1]), 100 * (1 - raw_s[0] / raw_s[1]),
	       (ingest_s[1] - ingest_s[0]) * 1e3 / ((data.batch_sizes->len + AMU_SYNC_DEFAULT_WINDOW - 1) / AMU_SYNC_DEFAULT_WINDOW));
	ingest_data_clear(&data);
	return TRUE;
}

/* ------------------------------------------------------------ link */

static void
accept_cb(AmuPairingRequest *request, gpointer user_data)
{
	amu_pairing_request_reply(request, TRUE, TRUE);
}

typedef struct {
	double wall;	   /* connect + sync */
	double sync;	   /* sync alone */
	AmuSyncProgress progress;
	uint64_t datagrams; /* received by the host during the sync */
	uint64_t bytes;
} LinkRun;

static gboolean
link_run(const char *dir, LinkRun *run, GError **error)
{
	g_autofree char *sock = g_strdup_printf("%s/watch.sock", dir);
	g_autofree char *log = g_strdup_printf("%s/watch.log", dir);
	g_autofree char *host = g_strdup_printf("%s/host", dir);
	g_autofree char *address = g_strdup_printf("sim:%s", sock);
	g_autoptr(AmuContext) context = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuSession) session = NULL;
	uint64_t d0, b0, d1, b1;
	double t0, t1;
	pid_t pid = sim_start(dir, "watch", "watch", "1", SEED, LINK_RATE_STR, LINK_MTU, error);

	if (pid < 0 || !bench_sim_wait_ready(pid, log, bench_wall_seconds() + 30, error))
		return FALSE;
	context = amu_context_new(host, error);
	if (context == NULL)
		return FALSE;
	device = amu_context_pair(context, address, "watch", accept_cb, NULL, NULL, error);
	if (device == NULL)
		return FALSE;
	t0 = bench_wall_seconds();
	session = amu_device_connect(device, NULL, error);
	if (session == NULL)
		return FALSE;
	t1 = bench_wall_seconds();
	amu_link_get_rx_totals(&d0, &b0);
	if (!amu_session_sync(session, NULL, NULL, NULL, &run->progress, error))
		return FALSE;
	run->wall = bench_wall_seconds() - t0;
	run->sync = bench_wall_seconds() - t1;
	amu_link_get_rx_totals(&d1, &b1);
	run->datagrams = d1 - d0;
	run->bytes = b1 - b0;
	amu_session_close(session);
	return TRUE;
}

static int
compare_runs(const void *a, const void *b)
{
	return compare_doubles(&((const LinkRun *)a)->wall, &((const LinkRun *)b)->wall);
}

static gboolean
bench_link(const char *dir, GError **error)
{
	LinkRun runs[LINK_REPS] = {0};
	LinkRun *m = &runs[LINK_REPS / 2];
	double line_s, airtime_s;

	for (int i = 0; i < LINK_REPS; i++) {
		g_autofree char *run_dir = g_strdup_printf("%s/run-%d", dir, i);
		gboolean ok;
		g_mkdir_with_parents(run_dir, 0700);
		ok = link_run(run_dir, &runs[i], error);
		bench_children_stop_all();
		bench_remove_tree(run_dir);
		if (!ok)
			return FALSE;
	}
	qsort(runs, LINK_REPS, sizeof(LinkRun), compare_runs);
	line_s = (double)m->progress.bytes * 8 / LINK_RATE;
	/* what the simulator's shaper charges: each datagram plus 17 bytes of ATT, L2CAP and LL headers */
	airtime_s = (double)(m->bytes + 17 * m->datagrams) * 8 / LINK_RATE;
	printf("watch day over amulet-sim at %.1f Mbit/s, ATT MTU %s: %" G_GUINT64_FORMAT " samples, %" G_GUINT64_FORMAT
	       " column bytes in %" G_GUINT64_FORMAT " batches; median of %d runs (fresh simulator each)\n",
	       LINK_RATE / 1e6, LINK_MTU, m->progress.samples_done, m->progress.bytes, m->progress.batches,
	       LINK_REPS);
	printf("line rate, sample column bytes alone:     %8.3f s  (bytes x 8 / %.1e)\n", line_s, (double)LINK_RATE);
	printf("connect + sync wall time:                 %8.3f s  (runs %.3f..%.3f; sync alone %.3f; "
	       "target <= 1.5 s)\n",
	       m->wall, runs[0].wall, runs[LINK_REPS - 1].wall, m->sync);
	printf("link carrying sample data:                %8.3f    (line-rate time / wall; target >= 0.9)\n",
	       line_s / m->wall);
	printf("bytes on the wire per sample:             %8.3f    (%" G_GUINT64_FORMAT " bytes in %" G_GUINT64_FORMAT
	       " datagrams received by the host during the sync; target <= 2.5)\n",
	       (double)m->bytes / (double)m->progress.samples_done, m->bytes, m->datagrams);
	printf("  shaper's airtime for those datagrams (+17 B radio headers each): %.3f s, busy %.3f of the sync's "
	       "%.3f s;\n  best ratio on this link at 100%% busy: %.3f (column bytes / (wire bytes + 17 B a datagram))\n",
	       airtime_s, airtime_s / m->sync, m->sync, line_s / airtime_s);
	return TRUE;
}

/* ------------------------------------------------------------ rss */

static gboolean
bench_rss(const char *dir, GError **error)
{
	g_autofree char *sock = g_strdup_printf("%s/band.sock", dir);
	g_autofree char *log = g_strdup_printf("%s/band.log", dir);
	g_autofree char *host = g_strdup_printf("%s/host", dir);
	g_autofree char *address = g_strdup_printf("sim:%s", sock);
	g_autofree char *out = g_strdup_printf("%s/out", dir);
	g_autofree char *err = g_strdup_printf("%s/err", dir);
	g_autofree char *json = NULL;
	const char *pair[] = {tool_amulet, "--data-dir", host, "pair", address, "--name", "band", "--yes", NULL};
	const char *devices[] = {tool_amulet, "--data-dir", host, "devices", NULL};
	const char *sync[] = {tool_amulet, "--data-dir", host, "--json", "sync", "band", NULL};
	struct rusage devices_usage, sync_usage;
	double seconds, devices_seconds;
	guint64 samples;
	pid_t pid = sim_start(dir, "band", "band", "30", SEED, "0", "517", error);

	if (pid < 0 || !bench_sim_wait_ready(pid, log, bench_wall_seconds() + 120, error) ||
	    !run_tool(pair, out, err, 30, NULL, NULL, error) ||
	    !run_tool(devices, out, err, 30, &devices_usage, &devices_seconds, error) ||
	    !run_tool(sync, out, err, 600, &sync_usage, &seconds, error) ||
	    !g_file_get_contents(out, &json, NULL, error))
		return FALSE;
	samples = json_sum(json, "samples");
	if (json_count(json, "\"ok\":true") != 1 || samples != json_sum(json, "expected") || samples == 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "amulet sync: %s", json);
		return FALSE;
	}
	printf("30 days, band, amulet-sim unshaped at MTU 517: %" G_GUINT64_FORMAT " samples, %" G_GUINT64_FORMAT
	       " batches\n",
	       samples, json_sum(json, "batches"));
	printf("amulet devices (opens the store), peak RSS: %6.1f MiB\n", mib(devices_usage.ru_maxrss));
	printf("amulet sync band, peak RSS:                 %6.1f MiB  (ratio %.2f to devices; target <= 32 MiB)\n",
	       mib(sync_usage.ru_maxrss), (double)sync_usage.ru_maxrss / (double)devices_usage.ru_maxrss);
	printf("  sync wall time %.2f s (process start to exit), %.0f k samples/s, CPU %.2f s (user + sys)\n", seconds,
	       (double)samples / seconds / 1e3, bench_cpu_seconds(&sync_usage));
	return TRUE;
}

/* ------------------------------------------------------------ many */

static gboolean
many_start(const char *dir, GError **error)
{
	double deadline = bench_wall_seconds() + 300;
	pid_t pids[MANY_DEVICES];

	for (int i = 0; i < MANY_DEVICES; i++) {
		g_autofree char *name = g_strdup_printf("d%03d", i);
		g_autofree char *seed = g_strdup_printf("%d", 1000 + i);
		pids[i] = sim_start(dir, name, "band", "1", seed, "0", "517", error);
		if (pids[i] < 0)
			return FALSE;
	}
	for (int i = 0; i < MANY_DEVICES; i++) {
		g_autofree char *log = g_strdup_printf("%s/d%03d.log", dir, i);
		if (!bench_sim_wait_ready(pids[i], log, deadline, error))
			return FALSE;
	}
	return TRUE;
}

typedef struct {
	double wall;
	double host_cpu; /* amulet, user + sys, summed over its runs */
	double sims_cpu; /* the simulators over their life in that round */
	long maxrss_kib;
	guint64 samples;
	guint64 expected;
	guint n_ok;
} ManyRun;

static gboolean
run_shell(const char *dir, const char *script, GError **error)
{
	g_autofree char *out = g_strdup_printf("%s/shell.out", dir);
	g_autofree char *full = g_strdup_printf("set -e; cd '%s'; %s", dir, script);
	const char *sh[] = {"/bin/sh", "-c", full, NULL};

	return run_tool(sh, out, out, 120, NULL, NULL, error);
}

/* one round: the devices and the host as they were after pairing, then
 * either one 'amulet sync --all' or one 'amulet sync NAME' per device */
static gboolean
many_round(const char *dir, gboolean all, ManyRun *run, GError **error)
{
	g_autofree char *host = g_strdup_printf("%s/host", dir);
	g_autofree char *out = g_strdup_printf("%s/out", dir);
	g_autofree char *err = g_strdup_printf("%s/err", dir);
	double t0;

	memset(run, 0, sizeof(*run));
	if (!run_shell(dir, "rm -rf host d*-state; cp -a snapshot/. .", error) || !many_start(dir, error))
		return FALSE;
	t0 = bench_wall_seconds();
	for (int i = 0; i < (all ? 1 : MANY_DEVICES); i++) {
		g_autofree char *name = g_strdup_printf("d%03d", i);
		g_autofree char *json = NULL;
		const char *sync[] = {tool_amulet, "--data-dir", host, "--json", "sync", all ? "--all" : name, NULL};
		struct rusage usage;
		if (!run_tool(sync, out, err, 900, &usage, NULL, error) || !g_file_get_contents(out, &json, NULL, error))
			return FALSE;
		run->host_cpu += bench_cpu_seconds(&usage);
		run->maxrss_kib = MAX(run->maxrss_kib, usage.ru_maxrss);
		run->samples += json_sum(json, "samples");
		run->expected += json_sum(json, "expected");
		run->n_ok += json_count(json, "\"ok\":true");
	}
	run->wall = bench_wall_seconds() - t0;
	/* from their start, which only opens an existing log: about the sync's share */
	run->sims_cpu = bench_children_stop_all();
	if (run->n_ok != MANY_DEVICES || run->samples != run->expected || run->samples == 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %u of %d devices ok, %" G_GUINT64_FORMAT
			    " of %" G_GUINT64_FORMAT " samples",
			    all ? "amulet sync --all" : "amulet sync NAME", run->n_ok, MANY_DEVICES, run->samples,
			    run->expected);
		return FALSE;
	}
	return TRUE;
}

static void
many_print(const char *what, const ManyRun *runs)
{
	const ManyRun *best = &runs[0];

	for (int i = 1; i < MANY_REPS; i++)
		if (runs[i].wall < best->wall)
			best = &runs[i];
	printf("%s %7.2f s  (rounds", what, best->wall);
	for (int i = 0; i < MANY_REPS; i++)
		printf(" %.2f", runs[i].wall);
	printf("), %.0f k samples/s, host CPU %.2f s, simulators' CPU %.2f s, peak RSS %.1f MiB\n",
	       (double)best->samples / best->wall / 1e3, best->host_cpu, best->sims_cpu, mib(best->maxrss_kib));
}

static gboolean
bench_many(const char *dir, GError **error)
{
	g_autofree char *host = g_strdup_printf("%s/host", dir);
	g_autofree char *out = g_strdup_printf("%s/out", dir);
	g_autofree char *err = g_strdup_printf("%s/err", dir);
	ManyRun sequential[MANY_REPS], all[MANY_REPS];
	double best_sequential = G_MAXDOUBLE, best_all = G_MAXDOUBLE;

	if (!many_start(dir, error))
		return FALSE;
	for (int i = 0; i < MANY_DEVICES; i++) {
		g_autofree char *address = g_strdup_printf("sim:%s/d%03d.sock", dir, i);
		g_autofree char *name = g_strdup_printf("d%03d", i);
		const char *pair[] = {tool_amulet, "--data-dir", host, "pair", address, "--name", name, "--yes", NULL};
		if (!run_tool(pair, out, err, 30, NULL, NULL, error))
			return FALSE;
	}
	/* the simulators exit (closing their stores), then every round starts
	 * from a copy of the paired devices and host */
	bench_children_stop_all();
	if (!run_shell(dir, "mkdir snapshot; cp -a host d*-state snapshot/", error))
		return FALSE;
	/* interleaved, so other load on the machine falls on both alike */
	for (int rep = 0; rep < MANY_REPS; rep++) {
		if (!many_round(dir, FALSE, &sequential[rep], error) || !many_round(dir, TRUE, &all[rep], error))
			return FALSE;
		best_sequential = MIN(best_sequential, sequential[rep].wall);
		best_all = MIN(best_all, all[rep].wall);
	}

	printf("%d simulators, band, 1 day each (seeds 1000..%d), unshaped at MTU 517, one host data dir;\n"
	       "best of %d rounds each, interleaved; %" G_GUINT64_FORMAT " samples, every device ok in every round\n",
	       MANY_DEVICES, 1000 + MANY_DEVICES - 1, MANY_REPS, all[0].samples);
	many_print("one at a time (100 x amulet sync NAME):", sequential);
	many_print("amulet sync --all, one process:        ", all);
	printf("concurrency speed-up:                    %7.2f x  (one at a time / --all)\n",
	       best_sequential / best_all);
	return TRUE;
}

/* ------------------------------------------------------------ main */

int
main(int argc, char **argv)
{
	static const BenchPart parts[] = {
		{"ingest", bench_ingest},
		{"link", bench_link},
		{"rss", bench_rss},
		{"many", bench_many},
	};
	const char *const tools[] = {tool_sim, tool_amulet, NULL};
	gboolean wanted[G_N_ELEMENTS(parts)];
	int status = 0;

	temp_root = bench_main_begin("bench-sync", argc, argv, parts, G_N_ELEMENTS(parts), wanted, tools, &status);
	if (temp_root == NULL)
		return status;
	return bench_run_parts("bench-sync", temp_root, parts, G_N_ELEMENTS(parts), wanted);
}
