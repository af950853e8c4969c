/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-sample.h>

G_BEGIN_DECLS

/**
 * AmuExportFormat:
 * @AMU_EXPORT_FORMAT_JSON: one `samples.json` (schema in docs/export-schema.json)
 * @AMU_EXPORT_FORMAT_CSV: one RFC 4180 file per category, `<category>.csv`
 * @AMU_EXPORT_FORMAT_FHIR: one FHIR R4 `Bundle` of `Observation`s, `bundle.json`
 * @AMU_EXPORT_FORMAT_GPX: GPX 1.1 tracks of the location samples, `track.gpx`
 *
 * Since: 0.1
 */
typedef enum {
	AMU_EXPORT_FORMAT_JSON = 1,
	AMU_EXPORT_FORMAT_CSV = 2,
	AMU_EXPORT_FORMAT_FHIR = 3,
	AMU_EXPORT_FORMAT_GPX = 4,
} AmuExportFormat;

/**
 * AmuGranularity:
 * @AMU_GRANULARITY_RAW: every sample as recorded
 * @AMU_GRANULARITY_MINUTE: one value per category and minute
 * @AMU_GRANULARITY_HOUR: one value per category and hour
 * @AMU_GRANULARITY_DAY: one value per category and UTC day
 *
 * How finely a grant lets data leave: aggregated values stand for the
 * interval starting at their timestamp (heart rate, SpO2, temperature,
 * breathing rate and battery: the mean; steps: the sum; sleep stage: the
 * most frequent; location: the first fix; toy events: the first event and
 * the count). See docs/export.md.
 *
 * Since: 0.1
 */
typedef enum {
	AMU_GRANULARITY_RAW = 0,
	AMU_GRANULARITY_MINUTE = 1,
	AMU_GRANULARITY_HOUR = 2,
	AMU_GRANULARITY_DAY = 3,
} AmuGranularity;

AMU_EXPORT const char *amu_export_format_to_string(AmuExportFormat format);
AMU_EXPORT gboolean amu_export_format_from_string(const char *name, AmuExportFormat *format);
AMU_EXPORT const char *amu_granularity_to_string(AmuGranularity granularity);
AMU_EXPORT gboolean amu_granularity_from_string(const char *name, AmuGranularity *granularity);
/* the interval's length in ms, 0 for raw */
AMU_EXPORT gint64 amu_granularity_get_ms(AmuGranularity granularity);

G_END_DECLS
