/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <glib.h>
#include <amulet/amu-export.h>

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

G_END_DECLS
