/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "amu-batch.h"
#include "amu-sample-store.h"
#include "amu-store.h"
#include "amu-sync.h"
#include "fuzz-common.h"

/*
 * The host's side of a telemetry sync, as amu-session-sync.c drives it: a
 * fresh receiver per input, started at HOST_START_MS, fed the device's
 * messages; each SyncStart that skips samples moves the store's cursor
 * (amu_sample_store_skip) and each BATCH event is stored with
 * amu_sample_store_ingest() and then acked with amu_sync_receiver_stored().
 * The first message refused, or batch not stored, ends the sync.
 *
 * Input: records of ctl | len (2 bytes LE) | len bytes of a packed
 * Amulet.V1.Message (cut short at the end); a record that does not unpack is
 * skipped. ctl * 7 ms pass on the host's clock before the message arrives.
 *
 * One store (fixed master key) lives in a temporary directory, on tmpfs when
 * /dev/shm is there, for the whole run; its sample blocks and cursors are
 * deleted before each input.
 *
 * Invariants checked (abort on violation): every failure sets an AMU_ERROR;
 * skipping succeeds and leaves the store's cursor at the receiver's; a
 * stored batch leaves the store's cursor at its end_seq and the ack saying
 * so; a refused batch changes neither the cursor nor the samples stored
 * (all or nothing). Afterwards, iterating the device's samples succeeds and
 * returns exactly the samples of the stored batches (those the half-open
 * query can reach), sorted by category, each within its category's value
 * ranges with unused values 0.
 *
 * The seeds in corpus/sync/ were written by a throwaway program with
 * amu_batch_encode_group(): a SyncStart echoing HOST_START_MS, then batches of
 * one or more groups (heart rate, steps, location, toy events ...), some with
 * a skipped prefix or a device clock far from the host's. two-batches, for
 * one, is 00 1200 | 5a10 105a 1880d095ffbc31 2085d095ffbc31 (a SyncStart
 * for [0, 90) echoing HOST_START_MS, the device 5 ms ahead), then two
 * SyncBatch records of 60 heart-rate and 30 steps samples.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOST_START_MS G_GINT64_CONSTANT(1700000000000)
#define DEVICE_ID "fuzz-device"

static const uint8_t master_key[AMU_STORE_KEYBYTES] = { 'f', 'u', 'z', 'z', '-', 's', 'y', 'n', 'c' };
static const uint8_t data_key[AMU_STORE_KEYBYTES] = { 'd', 'a', 't', 'a', '-', 'k', 'e', 'y' };
static AmuStore *store;
static char *store_dir;

static void
cleanup(void)
{
	g_clear_pointer(&store, amu_store_unref);
	if (store_dir != NULL)
		fuzz_remove_tree(store_dir);
	g_clear_pointer(&store_dir, g_free);
}

static void
setup(void)
{
	g_autofree char *template = NULL;
	GError *error = NULL;

	if (store != NULL)
		return;
	check(sodium_init() >= 0);
	template = g_build_filename(g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir(),
				    "amu-fuzz-sync-XXXXXX", NULL);
	store_dir = g_mkdtemp(g_steal_pointer(&template));
	check(store_dir != NULL);
	store = amu_store_open_with_key(store_dir, "amulet.db", master_key, &error);
	if (store == NULL)
		g_error("cannot open the store: %s", error->message);
	atexit(cleanup);
}

static uint64_t
store_cursor(void)
{
	uint64_t next_seq = G_MAXUINT64;

	check(amu_sample_store_get_cursor(store, DEVICE_ID, &next_seq, NULL, NULL));
	return next_seq;
}

static uint64_t
store_count(void)
{
	uint64_t samples[AMU_CATEGORY_LAST + 1];
	uint64_t total = 0;

	check(amu_sample_store_count(store, DEVICE_ID, samples, NULL));
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		total += samples[c];
	return total;
}

static void
check_error(GError *error)
{
	check(error != NULL && error->domain == AMU_ERROR && error->message != NULL);
	g_error_free(error);
}

/* the samples of a stored batch the iterator can return: its query is
 * half-open, so one stamped G_MAXINT64 on the host's clock stays out */
static uint64_t
reachable_samples(const Amulet__V1__SyncBatch *batch, int64_t offset_ms)
{
	g_autoptr(GArray) samples = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	uint64_t n = 0;

	for (size_t i = 0; i < batch->n_groups; i++) {
		g_array_set_size(samples, 0);
		check(amu_batch_decode_group(batch->groups[i]->category, batch->groups[i]->columns.data,
					     batch->groups[i]->columns.len, samples, NULL));
		for (guint j = 0; j < samples->len; j++)
			n += g_array_index(samples, AmuSample, j).timestamp_ms - offset_ms < G_MAXINT64;
	}
	return n;
}

static void
store_batch(AmuSyncReceiver *receiver, const Amulet__V1__SyncBatch *batch, int64_t now_ms, uint64_t *expected,
	    gboolean *ended)
{
	int64_t offset_ms = amu_sync_receiver_get_clock_offset(receiver, NULL);
	uint64_t cursor_before = store_cursor();
	uint64_t count_before = store_count();
	Amulet__V1__SyncAck ack;
	GError *error = NULL;

	check(cursor_before == amu_sync_receiver_get_cursor(receiver));
	if (!amu_sample_store_ingest(store, DEVICE_ID, data_key, batch, offset_ms, now_ms, &error)) {
		check_error(error);
		check(store_cursor() == cursor_before);
		check(store_count() == count_before);
		*ended = TRUE;
		return;
	}
	check(error == NULL);
	check(store_cursor() == batch->end_seq);
	check(store_count() == count_before + (batch->end_seq - batch->first_seq));
	amu_sync_receiver_stored(receiver, &ack);
	check(ack.next_seq == batch->end_seq);
	check(amu_sync_receiver_get_cursor(receiver) == batch->end_seq);
	*expected += reachable_samples(batch, offset_ms);
}

static void
check_stored(uint64_t expected)
{
	g_autoptr(AmuSampleStoreIter) iter = NULL;
	AmuCategory last_category = AMU_CATEGORY_FIRST;
	AmuSample sample;
	GError *error = NULL;
	uint64_t n = 0;

	iter = amu_sample_store_iter_new(store, DEVICE_ID, data_key, 0, G_MININT64, G_MAXINT64, &error);
	check(iter != NULL && error == NULL);
	while (amu_sample_store_iter_next(iter, &sample, &error)) {
		guint n_values = amu_category_get_n_values(sample.category);

		check(amu_category_is_valid(sample.category) && sample.category >= last_category);
		last_category = sample.category;
		for (guint c = 0; c < AMU_SAMPLE_MAX_VALUES; c++) {
			gint32 min = 0, max = 0;

			if (c >= n_values) {
				check(sample.values[c] == 0);
				continue;
			}
			check(amu_category_get_value_range(sample.category, c, &min, &max));
			check(sample.values[c] >= min && sample.values[c] <= max);
		}
		n++;
	}
	check(error == NULL);
	check(n == expected);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	AmuSyncReceiver *receiver;
	Amulet__V1__SyncRequest request;
	int64_t now_ms = HOST_START_MS;
	uint64_t expected = 0;
	gboolean ended = FALSE;
	size_t pos = 0;

	setup();
	check(amu_store_exec(store,
			     "DELETE FROM sample_blocks; DELETE FROM sync_cursors;"
			     "DELETE FROM sqlite_sequence WHERE name = 'sample_blocks';",
			     NULL));
	receiver = amu_sync_receiver_new(store_cursor(), AMU_SYNC_DEFAULT_WINDOW, AMU_SYNC_DEFAULT_BATCH_BYTES);
	amu_sync_receiver_start(receiver, now_ms, &request);
	check(request.since == 0 && request.host_time_ms == now_ms);

	while (!ended && size - pos >= 3) {
		Amulet__V1__Message *message;
		AmuSyncRxEvent event;
		GError *error = NULL;
		size_t len = data[pos + 1] | (size_t)data[pos + 2] << 8;

		now_ms += data[pos] * 7;
		pos += 3;
		len = MIN(len, size - pos);
		message = amulet__v1__message__unpack(NULL, len, data + pos);
		pos += len;
		if (message == NULL)
			continue;
		if (!amu_sync_receiver_rx(receiver, message, now_ms, &event, &error)) {
			check_error(error);
			ended = TRUE;
		} else if (event == AMU_SYNC_RX_STARTED) {
			uint64_t skipped = amu_sync_receiver_get_skipped(receiver);
			uint64_t first = amu_sync_receiver_get_cursor(receiver);

			check(error == NULL);
			if (skipped > 0)
				check(amu_sample_store_skip(store, DEVICE_ID, first - skipped, first, now_ms, NULL));
			check(store_cursor() == first);
			check(amu_sync_receiver_get_end(receiver) >= first);
		} else {
			check(error == NULL && event == AMU_SYNC_RX_BATCH);
			store_batch(receiver, message->sync_batch, now_ms, &expected, &ended);
		}
		amulet__v1__message__free_unpacked(message, NULL);
	}
	check_stored(expected);
	amu_sync_receiver_free(receiver);
	return 0;
}
