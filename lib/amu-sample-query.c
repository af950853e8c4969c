/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-private.h"
#include "amu-sample-store.h"

/* Reading stored telemetry through the public API: the device's data key is
 * unwrapped for the life of the iterator only. */

struct _AmuSampleIter {
	AmuSampleStoreIter *inner;
};

static gboolean
load_key(AmuStore *store, const char *device_id, uint8_t *key, gboolean *none, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	*none = FALSE;
	if (amu_store_get_data_key(store, device_id, key, &error_local))
		return TRUE;
	if (g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
		/* never synced (or shredded): nothing to read */
		*none = TRUE;
		return TRUE;
	}
	g_propagate_error(error, g_steal_pointer(&error_local));
	return FALSE;
}

/**
 * amu_device_query_samples:
 * @category: one category, or 0 for all
 * @from_ms: first timestamp included (ms since the epoch)
 * @to_ms: first timestamp excluded
 *
 * Returns: (transfer full): an iterator over the stored samples, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
AmuSampleIter *
amu_device_query_samples(AmuDevice *device, AmuCategory category, gint64 from_ms, gint64 to_ms, GError **error)
{
	AmuStore *store;
	uint8_t *key;
	gboolean none = FALSE;
	AmuSampleIter *iter;

	g_return_val_if_fail(AMU_IS_DEVICE(device), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (category != 0 && !amu_category_is_valid(category)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "unknown category %d", category);
		return NULL;
	}
	store = amu_context_get_store(amu_device_get_context(device));
	key = sodium_malloc(AMU_STORE_KEYBYTES);
	if (!load_key(store, amu_device_get_id(device), key, &none, error)) {
		sodium_free(key);
		return NULL;
	}
	if (none) {
		/* no key: no blocks can be read, so iterate over none */
		sodium_memzero(key, AMU_STORE_KEYBYTES);
		from_ms = to_ms = 0;
	}
	iter = g_new0(AmuSampleIter, 1);
	iter->inner = amu_sample_store_iter_new(store, amu_device_get_id(device), key, category, from_ms, to_ms, error);
	sodium_free(key);
	if (iter->inner == NULL) {
		g_free(iter);
		return NULL;
	}
	return iter;
}

/**
 * amu_sample_iter_next:
 * @sample: (out caller-allocates): the next sample
 *
 * Returns: %TRUE with @sample filled; %FALSE at the end, or with @error set
 *   if a block cannot be read (%AMU_ERROR_TAMPERED, %AMU_ERROR_STORE)
 *
 * Since: 0.1
 */
gboolean
amu_sample_iter_next(AmuSampleIter *iter, AmuSample *sample, GError **error)
{
	g_return_val_if_fail(iter != NULL, FALSE);
	return amu_sample_store_iter_next(iter->inner, sample, error);
}

void
amu_sample_iter_free(AmuSampleIter *iter)
{
	if (iter == NULL)
		return;
	amu_sample_store_iter_free(iter->inner);
	g_free(iter);
}

/* ------------------------------------------------------------------ summaries */

#define HR_MIN 20
#define HR_MAX 300

typedef struct {
	AmuDaySummary summary;
	guint64 hr_histogram[HR_MAX - HR_MIN + 1];
	guint64 hr_count;
} DayBucket;

typedef struct {
	GTimeZone *tz;
	int64_t from_ms;
	GArray *days; /* DayBucket */
	/* the day last looked up: most samples fall in the same one */
	int64_t cached_start;
	int64_t cached_end;
	guint cached_index;
} DayIndex;

static int64_t
local_midnight(GTimeZone *tz, int64_t ms, int64_t *next_midnight)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(ms / 1000);
	g_autoptr(GDateTime) local = g_date_time_to_timezone(t, tz);
	g_autoptr(GDateTime) midnight = g_date_time_new(tz, g_date_time_get_year(local), g_date_time_get_month(local),
							g_date_time_get_day_of_month(local), 0, 0, 0);
	g_autoptr(GDateTime) next = g_date_time_add_days(midnight, 1);

	*next_midnight = g_date_time_to_unix(next) * 1000;
	return g_date_time_to_unix(midnight) * 1000;
}

static DayBucket *
day_for(DayIndex *index, int64_t ms)
{
	int64_t start, end;

	if (index->days->len > 0 && ms >= index->cached_start && ms < index->cached_end)
		return &g_array_index(index->days, DayBucket, index->cached_index);
	start = local_midnight(index->tz, ms, &end);
	for (guint i = 0; i < index->days->len; i++) {
		DayBucket *bucket = &g_array_index(index->days, DayBucket, i);
		if (bucket->summary.day_start_ms == start) {
			index->cached_start = start;
			index->cached_end = end;
			index->cached_index = i;
			return bucket;
		}
	}
	return NULL;
}

/**
 * amu_device_get_day_summaries:
 * @from_ms: a time in the first day
 * @to_ms: a time after the last day
 * @time_zone: (nullable): where days begin; %NULL for the local time zone
 *
 * Returns: (transfer full) (element-type AmuDaySummary): one entry per day
 *   from the day holding @from_ms up to the day holding @to_ms - 1
 *
 * Since: 0.1
 */
GArray *
amu_device_get_day_summaries(AmuDevice *device, gint64 from_ms, gint64 to_ms, GTimeZone *time_zone, GError **error)
{
	g_autoptr(GTimeZone) tz = time_zone != NULL ? g_time_zone_ref(time_zone) : g_time_zone_new_local();
	g_autoptr(GArray) days = g_array_new(FALSE, TRUE, sizeof(DayBucket));
	g_autoptr(GArray) result = g_array_new(FALSE, TRUE, sizeof(AmuDaySummary));
	DayIndex index = {0};
	int64_t day, next;
	static const AmuCategory wanted[] = {0, AMU_CATEGORY_SLEEP_STAGE};

	g_return_val_if_fail(AMU_IS_DEVICE(device), NULL);
	if (to_ms <= from_ms || to_ms - from_ms > (int64_t)3660 * 86400000) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "the range must be non-empty and at most ten years");
		return NULL;
	}
	for (day = local_midnight(tz, from_ms, &next); day < to_ms; day = local_midnight(tz, next, &next)) {
		DayBucket bucket;
		memset(&bucket, 0, sizeof(bucket));
		bucket.summary.day_start_ms = day;
		bucket.summary.resting_heart_rate = -1;
		g_array_append_val(days, bucket);
	}
	/* day is now the first midnight after the last day */
	next = day;
	index.tz = tz;
	index.days = days;
	for (size_t pass = 0; pass < G_N_ELEMENTS(wanted); pass++) {
		/* pass 0: everything inside the days; pass 1: sleep from the noon before */
		int64_t first = g_array_index(days, DayBucket, 0).summary.day_start_ms;
		g_autoptr(AmuSampleIter) iter = NULL;
		AmuSample sample;
		GError *error_local = NULL;

		iter = amu_device_query_samples(device, wanted[pass], pass == 0 ? first : first - 12 * 3600000,
						pass == 0 ? next : next - 12 * 3600000, error);
		if (iter == NULL)
			return NULL;
		while (amu_sample_iter_next(iter, &sample, &error_local)) {
			DayBucket *bucket;
			if (pass == 1) {
				if (sample.values[0] == AMU_SLEEP_STAGE_AWAKE)
					continue;
				bucket = day_for(&index, sample.timestamp_ms + 12 * 3600000);
				if (bucket != NULL)
					bucket->summary.sleep_minutes++; /* counted in epochs, halved below */
				continue;
			}
			bucket = day_for(&index, sample.timestamp_ms);
			if (bucket == NULL)
				continue;
			bucket->summary.n_samples++;
			if (sample.category == AMU_CATEGORY_HEART_RATE && sample.values[0] >= HR_MIN &&
			    sample.values[0] <= HR_MAX) {
				bucket->hr_histogram[sample.values[0] - HR_MIN]++;
				bucket->hr_count++;
			} else if (sample.category == AMU_CATEGORY_STEPS) {
				bucket->summary.steps += sample.values[0];
			}
		}
		if (error_local != NULL) {
			g_propagate_error(error, error_local);
			return NULL;
		}
	}
	for (guint i = 0; i < days->len; i++) {
		DayBucket *bucket = &g_array_index(days, DayBucket, i);
		/* 30 s epochs */
		bucket->summary.sleep_minutes /= 2;
		if (bucket->hr_count > 0) {
			guint64 rank = (bucket->hr_count * 5 + 99) / 100, seen = 0;
			for (int bpm = 0; bpm <= HR_MAX - HR_MIN; bpm++) {
				seen += bucket->hr_histogram[bpm];
				if (seen >= MAX(rank, 1)) {
					bucket->summary.resting_heart_rate = bpm + HR_MIN;
					break;
				}
			}
		}
		g_array_append_val(result, bucket->summary);
	}
	return g_steal_pointer(&result);
}

/**
 * amu_device_get_sync_state:
 * @state: (out caller-allocates): where the host stands with the device
 *
 * Since: 0.1
 */
gboolean
amu_device_get_sync_state(AmuDevice *device, AmuSyncState *state, GError **error)
{
	AmuStore *store;

	g_return_val_if_fail(AMU_IS_DEVICE(device), FALSE);
	memset(state, 0, sizeof(*state));
	store = amu_context_get_store(amu_device_get_context(device));
	return amu_sample_store_get_cursor(store, amu_device_get_id(device), &state->next_seq, &state->last_sync_ms,
					   error) &&
	       amu_sample_store_count(store, amu_device_get_id(device), state->n_samples, error);
}

/**
 * amu_context_prune:
 * @now_ms: the present, in ms since the epoch
 * @dry_run: only count what would go
 * @removed: (out) (optional): samples removed (or that would be)
 *
 * Deletes samples older than their category's retention period
 * (amu_category_get_default_retention_days(); docs/retention.md). Samples are
 * kept in blocks of one sync batch; a block goes once its newest sample is
 * past the period.
 *
 * Since: 0.1
 */
gboolean
amu_context_prune(AmuContext *self, gint64 now_ms, gboolean dry_run, guint64 *removed, GError **error)
{
	guint retention[AMU_CATEGORY_LAST + 1] = {0};
	guint64 count = 0;

	g_return_val_if_fail(AMU_IS_CONTEXT(self), FALSE);
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		retention[c] = amu_category_get_default_retention_days(c);
	if (!amu_sample_store_prune(amu_context_get_store(self), retention, now_ms, dry_run, &count, error))
		return FALSE;
	if (removed != NULL)
		*removed = count;
	return TRUE;
}
