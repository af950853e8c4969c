/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <glib.h>
#include <amulet/amu-export.h>
#include <amulet/amu-types.h>

G_BEGIN_DECLS

/**
 * AmuCategory:
 * @AMU_CATEGORY_HEART_RATE: beats per minute (values[0]), 1 Hz
 * @AMU_CATEGORY_STEPS: steps in the minute starting at the timestamp (values[0])
 * @AMU_CATEGORY_SPO2: blood oxygen saturation in tenths of a percent (values[0])
 * @AMU_CATEGORY_SLEEP_STAGE: #AmuSleepStage of the 30 s epoch starting at the timestamp
 * @AMU_CATEGORY_SKIN_TEMP: skin temperature in hundredths of a degree Celsius
 * @AMU_CATEGORY_RESPIRATORY_RATE: breaths per minute in tenths
 * @AMU_CATEGORY_LOCATION: latitude and longitude in 1e-7 degrees, elevation in
 *   centimetres (values[0..2]), 1 Hz during workouts
 * @AMU_CATEGORY_BATTERY: battery charge in percent
 * @AMU_CATEGORY_TOY_EVENT: #AmuToyEventKind (values[0]), duration in
 *   milliseconds (values[1]) and clip or item number (values[2]); metadata
 *   only, never audio
 *
 * The kinds of telemetry. Each is also a consent scope. The numbers are part
 * of the wire format and the store, and never change.
 *
 * Since: 0.1
 */
typedef enum {
	AMU_CATEGORY_HEART_RATE = 1,
	AMU_CATEGORY_STEPS = 2,
	AMU_CATEGORY_SPO2 = 3,
	AMU_CATEGORY_SLEEP_STAGE = 4,
	AMU_CATEGORY_SKIN_TEMP = 5,
	AMU_CATEGORY_RESPIRATORY_RATE = 6,
	AMU_CATEGORY_LOCATION = 7,
	AMU_CATEGORY_BATTERY = 8,
	AMU_CATEGORY_TOY_EVENT = 9,
} AmuCategory;

#define AMU_CATEGORY_FIRST AMU_CATEGORY_HEART_RATE
#define AMU_CATEGORY_LAST AMU_CATEGORY_TOY_EVENT

/**
 * AmuSleepStage:
 *
 * Values of %AMU_CATEGORY_SLEEP_STAGE samples.
 *
 * Since: 0.1
 */
typedef enum {
	AMU_SLEEP_STAGE_AWAKE = 0,
	AMU_SLEEP_STAGE_LIGHT = 1,
	AMU_SLEEP_STAGE_DEEP = 2,
	AMU_SLEEP_STAGE_REM = 3,
} AmuSleepStage;

/**
 * AmuToyEventKind:
 *
 * values[0] of %AMU_CATEGORY_TOY_EVENT samples.
 *
 * Since: 0.1
 */
typedef enum {
	AMU_TOY_EVENT_BUTTON = 1,
	AMU_TOY_EVENT_VOICE_CLIP = 2, /* a clip was recorded on the toy; only its length travels */
	AMU_TOY_EVENT_PLAY_SESSION = 3,
	AMU_TOY_EVENT_STORY = 4,
} AmuToyEventKind;

#define AMU_SAMPLE_MAX_VALUES 3

/**
 * AmuSample:
 * @timestamp_ms: milliseconds since the Unix epoch (UTC), on the host's clock
 *   once stored (the device clock offset measured at sync is applied)
 * @category: what the values mean
 * @values: the first amu_category_get_n_values() entries are used, the rest are 0
 *
 * One telemetry sample.
 *
 * Since: 0.1
 */
typedef struct {
	gint64 timestamp_ms;
	AmuCategory category;
	gint32 values[AMU_SAMPLE_MAX_VALUES];
} AmuSample;

AMU_EXPORT const char *amu_category_to_string(AmuCategory category);
AMU_EXPORT gboolean amu_category_from_string(const char *name, AmuCategory *category);
AMU_EXPORT guint amu_category_get_n_values(AmuCategory category);
AMU_EXPORT gboolean amu_category_is_valid(int category);
/* the valid range of values[index], for verifying what a device sends */
AMU_EXPORT gboolean amu_category_get_value_range(AmuCategory category, guint index, gint32 *min,
						 gint32 *max);
AMU_EXPORT const char *amu_category_get_unit(AmuCategory category, guint index);
AMU_EXPORT guint amu_category_get_default_retention_days(AmuCategory category);

/**
 * AmuSampleIter:
 *
 * Walks stored samples in order of category, then time. Free with
 * amu_sample_iter_free().
 *
 * Since: 0.1
 */
typedef struct _AmuSampleIter AmuSampleIter;

AMU_EXPORT AmuSampleIter *amu_device_query_samples(AmuDevice *device, AmuCategory category, gint64 from_ms,
						   gint64 to_ms, GError **error);
AMU_EXPORT gboolean amu_sample_iter_next(AmuSampleIter *iter, AmuSample *sample, GError **error);
AMU_EXPORT void amu_sample_iter_free(AmuSampleIter *iter);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuSampleIter, amu_sample_iter_free)

/**
 * AmuDaySummary:
 * @day_start_ms: midnight that starts the day, in the time zone asked for
 * @resting_heart_rate: the 5th percentile of the day's heart rate in bpm, or
 *   -1 without heart-rate samples
 * @steps: steps counted during the day
 * @sleep_minutes: time asleep (any stage but awake) in the night that ends
 *   this day: epochs from noon the day before to noon
 * @n_samples: samples of any category during the day
 *
 * Since: 0.1
 */
typedef struct {
	gint64 day_start_ms;
	gint resting_heart_rate;
	gint64 steps;
	gint sleep_minutes;
	guint64 n_samples;
} AmuDaySummary;

AMU_EXPORT GArray *amu_device_get_day_summaries(AmuDevice *device, gint64 from_ms, gint64 to_ms,
						GTimeZone *time_zone, GError **error);

/**
 * AmuSyncState:
 * @next_seq: the device log's next sequence number this host needs
 * @last_sync_ms: when a batch was last stored, 0 if never
 * @n_samples: samples stored for the device, per category (index by #AmuCategory)
 *
 * Since: 0.1
 */
typedef struct {
	guint64 next_seq;
	gint64 last_sync_ms;
	guint64 n_samples[AMU_CATEGORY_LAST + 1];
} AmuSyncState;

AMU_EXPORT gboolean amu_device_get_sync_state(AmuDevice *device, AmuSyncState *state, GError **error);
AMU_EXPORT gboolean amu_context_prune(AmuContext *self, gint64 now_ms, gboolean dry_run, guint64 *removed,
				      GError **error);

G_END_DECLS
