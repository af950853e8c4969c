/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-simdata.h"
#include "amu-test.h"

/* The simulator's telemetry is what every sync, export and benchmark test
 * sees, so these check what a reader of those results would notice: the
 * same seed gives the same data, counts per day are what the docs promise,
 * every value passes the host's range check, and the day looks like a day
 * (asleep at night, heart rate up only while working out). */

#define START_MS G_GINT64_CONSTANT(1735689600000) /* 2025-01-01T00:00:00Z, a Wednesday */
#define DAY_SECS 86400
#define NO_VALUE (-1)

typedef struct {
	gint64 start_ms;
	guint days;
	GChecksum *checksum;
	guint64 total;
	guint64 (*counts)[AMU_CATEGORY_LAST + 1]; /* [day][category] */
	gint64 last_ts[AMU_CATEGORY_LAST + 1];
	size_t max_chunk;
	/* what a whole run looked like, indexed from start_ms */
	gint16 *heart_rate; /* per second */
	gint16 *steps;	    /* per minute */
	gint16 *stage;	    /* per 30 s epoch */
	GArray *locations;  /* AmuSample */
	GArray *toy_events; /* AmuSample */
	GArray *battery;    /* AmuSample */
	/* broken promises, counted here and asserted once at the end */
	guint64 empty_calls;
	guint64 wrong_category;
	guint64 split_days;
	guint64 out_of_range;
	guint64 unused_not_zero;
	guint64 not_increasing;
	guint64 outside_window;
} Capture;

static void
capture_free(Capture *capture)
{
	g_checksum_free(capture->checksum);
	g_free(capture->counts);
	g_free(capture->heart_rate);
	g_free(capture->steps);
	g_free(capture->stage);
	g_array_unref(capture->locations);
	g_array_unref(capture->toy_events);
	g_array_unref(capture->battery);
	g_free(capture);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Capture, capture_free)

static void
fill_no_value(gint16 *array, size_t n)
{
	for (size_t i = 0; i < n; i++)
		array[i] = NO_VALUE;
}

/* the digest covers every field in a fixed byte order, so it is the same
 * on any machine that generates the same samples */
static void
checksum_sample(GChecksum *checksum, const AmuSample *sample)
{
	guint64 timestamp = GUINT64_TO_LE((guint64)sample->timestamp_ms);
	guint32 words[1 + AMU_SAMPLE_MAX_VALUES];

	words[0] = GUINT32_TO_LE((guint32)sample->category);
	for (guint i = 0; i < AMU_SAMPLE_MAX_VALUES; i++)
		words[1 + i] = GUINT32_TO_LE((guint32)sample->values[i]);
	g_checksum_update(checksum, (const guchar *)&timestamp, sizeof(timestamp));
	g_checksum_update(checksum, (const guchar *)words, sizeof(words));
}

static void
capture_sample(Capture *capture, AmuCategory category, const AmuSample *sample)
{
	gint64 offset_ms = sample->timestamp_ms - capture->start_ms;
	guint n_values = amu_category_get_n_values(category);
	gint64 second = offset_ms / 1000;

	checksum_sample(capture->checksum, sample);
	capture->total++;
	if (sample->category != category)
		capture->wrong_category++;
	for (guint i = 0; i < AMU_SAMPLE_MAX_VALUES; i++) {
		gint32 min;
		gint32 max;

		if (i >= n_values) {
			if (sample->values[i] != 0)
				capture->unused_not_zero++;
			continue;
		}
		g_assert(amu_category_get_value_range(category, i, &min, &max));
		if (sample->values[i] < min || sample->values[i] > max)
			capture->out_of_range++;
	}
	if (sample->timestamp_ms <= capture->last_ts[category])
		capture->not_increasing++;
	capture->last_ts[category] = sample->timestamp_ms;
	if (offset_ms < 0 || offset_ms >= (gint64)capture->days * DAY_SECS * 1000) {
		capture->outside_window++;
		return;
	}
	capture->counts[second / DAY_SECS][category]++;

	switch (category) {
	case AMU_CATEGORY_HEART_RATE:
		capture->heart_rate[second] = (gint16)sample->values[0];
		break;
	case AMU_CATEGORY_STEPS:
		capture->steps[second / 60] = (gint16)sample->values[0];
		break;
	case AMU_CATEGORY_SLEEP_STAGE:
		capture->stage[second / 30] = (gint16)sample->values[0];
		break;
	case AMU_CATEGORY_LOCATION:
		g_array_append_val(capture->locations, *sample);
		break;
	case AMU_CATEGORY_BATTERY:
		g_array_append_val(capture->battery, *sample);
		break;
	case AMU_CATEGORY_TOY_EVENT:
		g_array_append_val(capture->toy_events, *sample);
		break;
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_SKIN_TEMP:
	case AMU_CATEGORY_RESPIRATORY_RATE:
		break;
	}
}

static void
capture_cb(AmuCategory category, const AmuSample *samples, size_t n, void *user_data)
{
	Capture *capture = user_data;

	if (n == 0) {
		capture->empty_calls++;
		return;
	}
	capture->max_chunk = MAX(capture->max_chunk, n);
	/* "per day": one call never spans midnight */
	if ((samples[0].timestamp_ms - capture->start_ms) / (DAY_SECS * 1000) !=
	    (samples[n - 1].timestamp_ms - capture->start_ms) / (DAY_SECS * 1000))
		capture->split_days++;
	for (size_t i = 0; i < n; i++)
		capture_sample(capture, category, &samples[i]);
}

static Capture *
capture_run_from(AmuPeripheralProfile profile, guint64 seed, gint64 start_ms, guint days)
{
	Capture *capture = g_new0(Capture, 1);

	capture->start_ms = start_ms;
	capture->days = days;
	capture->checksum = g_checksum_new(G_CHECKSUM_SHA256);
	capture->counts = g_malloc0_n(days, sizeof(capture->counts[0]));
	capture->heart_rate = g_new(gint16, (gsize)days * DAY_SECS);
	capture->steps = g_new(gint16, (gsize)days * 1440);
	capture->stage = g_new(gint16, (gsize)days * 2880);
	fill_no_value(capture->heart_rate, (gsize)days * DAY_SECS);
	fill_no_value(capture->steps, (gsize)days * 1440);
	fill_no_value(capture->stage, (gsize)days * 2880);
	capture->locations = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	capture->toy_events = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	capture->battery = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	for (guint c = 0; c <= AMU_CATEGORY_LAST; c++)
		capture->last_ts[c] = G_MININT64;
	amu_simdata_generate(profile, seed, start_ms, days, capture_cb, capture);
	return capture;
}

static Capture *
capture_run(AmuPeripheralProfile profile, guint64 seed, guint days)
{
	return capture_run_from(profile, seed, START_MS, days);
}

static void
assert_promises_kept(const Capture *capture)
{
	CU_ASSERT_TRUE(capture->total > 0);
	CU_ASSERT_EQUAL(capture->empty_calls, 0);
	CU_ASSERT_TRUE(capture->max_chunk <= AMU_SIMDATA_CHUNK);
	CU_ASSERT_EQUAL(capture->wrong_category, 0);
	CU_ASSERT_EQUAL(capture->split_days, 0);
	CU_ASSERT_EQUAL(capture->out_of_range, 0);
	CU_ASSERT_EQUAL(capture->unused_not_zero, 0);
	CU_ASSERT_EQUAL(capture->not_increasing, 0);
	CU_ASSERT_EQUAL(capture->outside_window, 0);
}

static char *
digest_of(AmuPeripheralProfile profile, guint64 seed, gint64 start_ms, guint days)
{
	g_autoptr(Capture) capture = capture_run_from(profile, seed, start_ms, days);

	assert_promises_kept(capture);
	return g_strdup(g_checksum_get_string(capture->checksum));
}

static const AmuPeripheralProfile all_profiles[] = {
	AMU_PERIPHERAL_PROFILE_BAND,
	AMU_PERIPHERAL_PROFILE_WATCH,
	AMU_PERIPHERAL_PROFILE_TOY,
};

static void
test_same_seed_same_samples(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(all_profiles); i++) {
		g_autofree char *first = digest_of(all_profiles[i], 7, START_MS, 3);
		g_autofree char *second = digest_of(all_profiles[i], 7, START_MS, 3);
		g_autoptr(Capture) capture = capture_run(all_profiles[i], 7, 3);

		CU_ASSERT_STRING_EQUAL(first, second);
		CU_ASSERT_EQUAL(amu_simdata_count(all_profiles[i], 7, START_MS, 3), capture->total);
	}
}

static void
test_different_seed_differs(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(all_profiles); i++) {
		g_autofree char *seven = digest_of(all_profiles[i], 7, START_MS, 2);
		g_autofree char *eight = digest_of(all_profiles[i], 8, START_MS, 2);
		g_autofree char *later = digest_of(all_profiles[i], 7, START_MS + 86400000, 2);

		CU_ASSERT_STRING_NOT_EQUAL(seven, eight);
		CU_ASSERT_STRING_NOT_EQUAL(seven, later);
	}
}

/* Pinned digests: the same arguments must give the same bytes on every
 * machine and compiler (gcc and clang once disagreed on the order of two
 * draws in one call). A deliberate change to the generator updates these. */
static void
test_known_answer(void)
{
	g_autofree char *band = digest_of(AMU_PERIPHERAL_PROFILE_BAND, 1, START_MS, 1);
	g_autofree char *watch = digest_of(AMU_PERIPHERAL_PROFILE_WATCH, 1, START_MS, 1);
	g_autofree char *toy = digest_of(AMU_PERIPHERAL_PROFILE_TOY, 1, START_MS, 1);

	CU_ASSERT_STRING_EQUAL(band,
			       "89be27abd25bb590e43c8a311d430f2c9fd0033c79fa668fde10f738464ee8a3");
	CU_ASSERT_STRING_EQUAL(watch,
			       "b473c6fcd7f3ff9681730842946f57c56697af2ec9014302360a244dd3b8c603");
	CU_ASSERT_STRING_EQUAL(toy,
			       "7a80431bd278e64a99f420333fa179ac17681b0e7f4378b0ab17b9280783829d");
}

static void
test_counts_per_day(void)
{
	g_autoptr(Capture) band = capture_run(AMU_PERIPHERAL_PROFILE_BAND, 3, 7);
	g_autoptr(Capture) watch = capture_run(AMU_PERIPHERAL_PROFILE_WATCH, 3, 7);
	g_autoptr(Capture) toy = capture_run(AMU_PERIPHERAL_PROFILE_TOY, 3, 7);
	guint64 watch_locations = 0;

	for (guint d = 0; d < 7; d++) {
		for (guint i = 0; i < 2; i++) {
			guint64 *counts = (i == 0 ? band : watch)->counts[d];

			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_HEART_RATE], 86400);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_STEPS], 1440);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_SPO2], 288);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_SKIN_TEMP], 1440);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_RESPIRATORY_RATE], 288);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_BATTERY], 96);
			CU_ASSERT_EQUAL(counts[AMU_CATEGORY_TOY_EVENT], 0);
			/* the morning's end of one night and the evening's start of the next */
			CU_ASSERT_TRUE(counts[AMU_CATEGORY_SLEEP_STAGE] >= 600);
			CU_ASSERT_TRUE(counts[AMU_CATEGORY_SLEEP_STAGE] <= 1300);
		}
		CU_ASSERT_EQUAL(band->counts[d][AMU_CATEGORY_LOCATION], 0);
		CU_ASSERT_TRUE(watch->counts[d][AMU_CATEGORY_LOCATION] <= 75 * 60);
		watch_locations += watch->counts[d][AMU_CATEGORY_LOCATION];

		CU_ASSERT_EQUAL(toy->counts[d][AMU_CATEGORY_BATTERY], 96);
		CU_ASSERT_TRUE(toy->counts[d][AMU_CATEGORY_TOY_EVENT] >= 5);
		CU_ASSERT_TRUE(toy->counts[d][AMU_CATEGORY_TOY_EVENT] <= 40);
	}
	/* the sizes the benchmarks are built around */
	CU_ASSERT_TRUE(band->total / 7 >= 89000 && band->total / 7 <= 93000);
	CU_ASSERT_TRUE(watch->total / 7 >= 90000 && watch->total / 7 <= 96000);
	CU_ASSERT_TRUE(watch_locations > 0);
}

static void
test_values_in_range_and_ordered(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(all_profiles); i++) {
		for (guint64 seed = 0; seed < 3; seed++) {
			g_autoptr(Capture) capture = NULL;

			capture = capture_run(all_profiles[i], seed * 1000003, 10);
			assert_promises_kept(capture);
		}
	}
}

/* Asleep means between 20:00 and 11:00, on 30 s epochs, not stepping, and
 * a night's sleep of 5-11 h with all four stages in it. */
static void
test_sleep_only_at_night(void)
{
	g_autoptr(Capture) capture = capture_run(AMU_PERIPHERAL_PROFILE_BAND, 11, 14);
	guint64 by_day = 0;
	guint64 stepping = 0;
	guint stage_counts[4] = {0};

	for (guint e = 0; e < capture->days * 2880; e++) {
		guint second_of_day = (e * 30) % DAY_SECS;

		if (capture->stage[e] == NO_VALUE)
			continue;
		if (second_of_day >= 11 * 3600 && second_of_day < 20 * 3600)
			by_day++;
		if (capture->steps[e / 2] != 0)
			stepping++;
		stage_counts[capture->stage[e]]++;
	}
	CU_ASSERT_EQUAL(by_day, 0);
	CU_ASSERT_EQUAL(stepping, 0);
	/* nights 2..13 lie wholly inside the window; the 14 days' worth of
	 * epochs are between 13 x 5 h and 14 x 11 h */
	CU_ASSERT_TRUE(capture->counts[0][AMU_CATEGORY_SLEEP_STAGE] > 0);
	{
		guint64 total = 0;
		for (guint i = 0; i < 4; i++) {
			CU_ASSERT_TRUE(stage_counts[i] > 0);
			total += stage_counts[i];
		}
		CU_ASSERT_TRUE(total >= 13 * 600 && total <= 14 * 1320);
		/* light sleep dominates, deep and REM each make up a real share */
		CU_ASSERT_TRUE(stage_counts[AMU_SLEEP_STAGE_LIGHT] > total * 35 / 100);
		CU_ASSERT_TRUE(stage_counts[AMU_SLEEP_STAGE_DEEP] > total * 8 / 100);
		CU_ASSERT_TRUE(stage_counts[AMU_SLEEP_STAGE_REM] > total * 12 / 100);
		CU_ASSERT_TRUE(stage_counts[AMU_SLEEP_STAGE_AWAKE] < total * 10 / 100);
	}
}

/* Only a watch has GPS, and it only records while working out: the heart
 * rate at every fix is up, the track starts near the home in Berlin and
 * moves at running or easy cycling speed. */
static void
test_location_only_during_workouts(void)
{
	g_autoptr(Capture) watch = capture_run(AMU_PERIPHERAL_PROFILE_WATCH, 5, 14);
	g_autoptr(Capture) band = capture_run(AMU_PERIPHERAL_PROFILE_BAND, 5, 14);
	g_autoptr(Capture) toy = capture_run(AMU_PERIPHERAL_PROFILE_TOY, 5, 14);
	guint64 calm = 0;
	guint64 far_away = 0;
	guint64 too_fast = 0;

	CU_ASSERT_EQUAL(band->locations->len, 0);
	CU_ASSERT_EQUAL(toy->locations->len, 0);
	CU_ASSERT_TRUE(watch->locations->len > 7 * 1800);
	for (guint i = 0; i < watch->locations->len; i++) {
		const AmuSample *fix = &g_array_index(watch->locations, AmuSample, i);
		gint64 second = (fix->timestamp_ms - watch->start_ms) / 1000;

		if (watch->heart_rate[second] < 100)
			calm++;
		if (ABS(fix->values[0] - 525200000) > 1000000 ||
		    ABS(fix->values[1] - 134050000) > 1500000)
			far_away++;
		if (i > 0) {
			const AmuSample *prev = &g_array_index(watch->locations, AmuSample, i - 1);
			/* metres, flat earth: fine over one second */
			double north = (fix->values[0] - prev->values[0]) * 0.011132;
			double east = (fix->values[1] - prev->values[1]) * 0.011132 * 0.6085;

			if (fix->timestamp_ms - prev->timestamp_ms == 1000 &&
			    north * north + east * east > 4.5 * 4.5)
				too_fast++;
		}
	}
	CU_ASSERT_EQUAL(calm, 0);
	CU_ASSERT_EQUAL(far_away, 0);
	CU_ASSERT_EQUAL(too_fast, 0);
}

static void
test_toy_has_no_health_data(void)
{
	g_autoptr(Capture) toy = capture_run(AMU_PERIPHERAL_PROFILE_TOY, 9, 14);
	gint32 last_clip = 0;
	guint kinds[AMU_TOY_EVENT_STORY + 1] = {0};

	assert_promises_kept(toy);
	for (guint d = 0; d < toy->days; d++) {
		for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++) {
			if (c != AMU_CATEGORY_BATTERY && c != AMU_CATEGORY_TOY_EVENT)
				CU_ASSERT_EQUAL(toy->counts[d][c], 0);
		}
	}
	for (guint i = 0; i < toy->toy_events->len; i++) {
		const AmuSample *event = &g_array_index(toy->toy_events, AmuSample, i);
		gint64 second_of_day = (event->timestamp_ms - toy->start_ms) / 1000 % DAY_SECS;

		/* by day: a toy is not played with at 3 am */
		CU_ASSERT_TRUE(second_of_day >= 7 * 3600 && second_of_day < 21 * 3600);
		kinds[event->values[0]]++;
		switch ((AmuToyEventKind)event->values[0]) {
		case AMU_TOY_EVENT_BUTTON:
			CU_ASSERT_EQUAL(event->values[1], 0);
			break;
		case AMU_TOY_EVENT_VOICE_CLIP:
			/* metadata of a recording: its length and a running number */
			CU_ASSERT_TRUE(event->values[1] >= 500 && event->values[1] <= 30000);
			CU_ASSERT_TRUE(event->values[2] > last_clip);
			last_clip = event->values[2];
			break;
		case AMU_TOY_EVENT_PLAY_SESSION:
		case AMU_TOY_EVENT_STORY:
			CU_ASSERT_TRUE(event->values[1] >= 60000);
			break;
		}
	}
	for (guint k = AMU_TOY_EVENT_BUTTON; k <= AMU_TOY_EVENT_STORY; k++)
		CU_ASSERT_TRUE(kinds[k] > 0);
}

/* The wearer's heart: lower asleep than awake, never leaping, up to
 * 130-175 in a workout on most days, and the steps agree with it. */
static void
test_heart_rate_shape(void)
{
	g_autoptr(Capture) capture = capture_run(AMU_PERIPHERAL_PROFILE_BAND, 13, 14);
	gint64 night_sum = 0;
	gint64 night_n = 0;
	gint64 day_sum = 0;
	gint64 day_n = 0;
	guint64 leaps = 0;
	guint64 missing = 0;
	guint workout_days = 0;

	for (guint d = 0; d < capture->days; d++) {
		gint32 day_max = 0;
		gint64 day_steps = 0;

		for (guint s = 0; s < DAY_SECS; s++) {
			gsize i = (gsize)d * DAY_SECS + s;
			gint16 bpm = capture->heart_rate[i];

			if (bpm == NO_VALUE)
				missing++;
			if (i > 0 && ABS(bpm - capture->heart_rate[i - 1]) > 5)
				leaps++;
			if (s >= 1 * 3600 && s < 5 * 3600) {
				night_sum += bpm;
				night_n++;
			} else if (s >= 10 * 3600 && s < 20 * 3600) {
				day_sum += bpm;
				day_n++;
			}
			day_max = MAX(day_max, bpm);
		}
		for (guint m = 0; m < 1440; m++)
			day_steps += capture->steps[d * 1440 + m];
		CU_ASSERT_TRUE(day_max <= 180);
		if (day_max >= 125)
			workout_days++;
		CU_ASSERT_TRUE(day_steps >= 2000 && day_steps <= 30000);
	}
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT_EQUAL(leaps, 0);
	CU_ASSERT_TRUE(night_sum * day_n < day_sum * night_n);
	/* asleep 50-65 against 65-85 by day: the means are well apart */
	CU_ASSERT_TRUE(night_sum / night_n >= 45 && night_sum / night_n <= 66);
	CU_ASSERT_TRUE(day_sum / day_n >= 64 && day_sum / day_n <= 90);
	CU_ASSERT_TRUE(workout_days >= capture->days / 2);
}

/* Runs down a few percent a day and goes back to 100 on the charger at least
 * once a week. */
static void
test_battery_cycle(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(all_profiles); i++) {
		g_autoptr(Capture) capture = capture_run(all_profiles[i], 17, 14);
		guint full_charges = 0;
		gint32 lowest = 100;

		CU_ASSERT_EQUAL(capture->battery->len, 14 * 96);
		for (guint k = 1; k < capture->battery->len; k++) {
			gint32 now = g_array_index(capture->battery, AmuSample, k).values[0];
			gint32 before = g_array_index(capture->battery, AmuSample, k - 1).values[0];

			/* 15 min on the charger or off it: never more than a slow drain */
			CU_ASSERT_TRUE(now >= before - 1);
			if (now == 100 && before < 100)
				full_charges++;
			lowest = MIN(lowest, now);
		}
		CU_ASSERT_TRUE(full_charges >= 1);
		CU_ASSERT_TRUE(lowest >= 10);
	}
}

AMU_TEST_MAIN("simdata", {"same seed same samples", test_same_seed_same_samples},
	      {"different seed differs", test_different_seed_differs},
	      {"known answer", test_known_answer}, {"counts per day", test_counts_per_day},
	      {"values in range and ordered", test_values_in_range_and_ordered},
	      {"sleep only at night", test_sleep_only_at_night},
	      {"location only during workouts", test_location_only_during_workouts},
	      {"toy has no health data", test_toy_has_no_health_data},
	      {"heart rate shape", test_heart_rate_shape}, {"battery cycle", test_battery_cycle})
