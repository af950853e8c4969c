/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the export formats share: the writer's state, the limits records are
 * sized by, and the helpers that format a record by hand. The helpers run
 * per sample, so they are static inline here: every format's file gets
 * them inlined. amu-export-writer.c holds JSON, CSV and the public calls,
 * amu-export-fhir.c and amu-export-gpx.c one format each. */

#include <glib.h>
#include <string.h>

#include "amu-export-file.h"
#include "amu-export-writer.h"

G_BEGIN_DECLS

#define DAY_MS G_GINT64_CONSTANT(86400000)
/* xsd:dateTime and ISO 8601 without expansion need four-digit years */
#define TIME_MAX_MS G_GINT64_CONSTANT(253402300799999) /* 9999-12-31T23:59:59.999Z */
/* a day below it, so that the end of any record's interval prints too */
#define SAMPLE_TIME_MAX_MS (TIME_MAX_MS - DAY_MS)
#define TIME_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
/* FHIR ids tell apart this many samples of one category at the same millisecond */
#define FHIR_MAX_SAME_TIME 1024
/* enough for the longest record that holds no caller's text */
#define RECORD_MAX 512

#define PUT_LITERAL(out, text) (memcpy((out), (text), sizeof(text) - 1), (out) + sizeof(text) - 1)

/* ---------------------------------------------------------------- formatting */

static const char two_digits[201] = "00010203040506070809101112131415161718192021222324"
				    "25262728293031323334353637383940414243444546474849"
				    "50515253545556575859606162636465666768697071727374"
				    "75767778798081828384858687888990919293949596979899";

static inline char *
put_two_digits(char *out, guint value)
{
	memcpy(out, two_digits + 2 * value, 2);
	return out + 2;
}

static inline char *
put_uint(char *out, guint64 value)
{
	char digits[20];
	guint n = 0;

	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	while (n > 0)
		*out++ = digits[--n];
	return out;
}

static inline char *
put_int(char *out, gint64 value)
{
	if (value >= 0)
		return put_uint(out, (guint64)value);
	*out++ = '-';
	return put_uint(out, -(guint64)value);
}

/* @value / 10^@decimals with exactly @decimals digits after the point:
 * decimal, so the text is the stored value and never a binary float's */
static inline char *
put_fixed(char *out, gint64 value, guint decimals)
{
	static const guint64 scales[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000 };
	guint64 magnitude = value >= 0 ? (guint64)value : -(guint64)value;
	guint64 fraction = magnitude % scales[decimals];

	if (value < 0)
		*out++ = '-';
	out = put_uint(out, magnitude / scales[decimals]);
	*out++ = '.';
	for (guint i = decimals; i > 0; i--) {
		out[i - 1] = (char)('0' + fraction % 10);
		fraction /= 10;
	}
	return out + decimals;
}

static inline char *
put_string(char *out, const char *text)
{
	gsize len = strlen(text);

	memcpy(out, text, len);
	return out + len;
}

/* Howard Hinnant's days_from_civil inverse: the proleptic Gregorian date of
 * a day number, in integer arithmetic (no tables, no time zone database). */
static inline void
civil_from_days(gint64 days, guint *year, guint *month, guint *day)
{
	gint64 shifted = days + 719468;
	gint64 era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
	guint day_of_era = (guint)(shifted - era * 146097);
	guint year_of_era =
	  (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
	guint day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
	guint month_index = (5 * day_of_year + 2) / 153;

	*day = day_of_year - (153 * month_index + 2) / 5 + 1;
	*month = month_index < 10 ? month_index + 3 : month_index - 9;
	*year = (guint)(year_of_era + era * 400 + (*month <= 2));
}

/* The date changes once a day in a time-ordered export; the rest of the
 * time is a few divisions. */
typedef struct {
	gint64 day;    /* days since the epoch of @date; -1 before the first */
	char date[11]; /* "YYYY-MM-DDT" */
} TimeCache;

/* writes TIME_LEN characters; 0 <= @ms <= TIME_MAX_MS */
static inline char *
put_time(TimeCache *cache, gint64 ms, char *out)
{
	gint64 day = ms / DAY_MS;
	guint ms_of_day = (guint)(ms % DAY_MS);
	guint seconds = ms_of_day / 1000;
	guint millis = ms_of_day % 1000;

	if (day != cache->day) {
		guint year, month, mday;
		char *date = cache->date;

		civil_from_days(day, &year, &month, &mday);
		date = put_two_digits(date, year / 100);
		date = put_two_digits(date, year % 100);
		*date++ = '-';
		date = put_two_digits(date, month);
		*date++ = '-';
		date = put_two_digits(date, mday);
		*date = 'T';
		cache->day = day;
	}
	memcpy(out, cache->date, sizeof(cache->date));
	out += sizeof(cache->date);
	out = put_two_digits(out, seconds / 3600);
	*out++ = ':';
	out = put_two_digits(out, seconds / 60 % 60);
	*out++ = ':';
	out = put_two_digits(out, seconds % 60);
	*out++ = '.';
	*out++ = (char)('0' + millis / 100);
	out = put_two_digits(out, millis % 100);
	*out++ = 'Z';
	return out;
}

static inline gboolean
time_is_printable(gint64 ms)
{
	return ms >= 0 && ms <= TIME_MAX_MS;
}

/* ---------------------------------------------------------------- writer */

/* the kinds of FHIR Observation (amu-export-fhir.c) */
typedef enum {
	FHIR_NONE,
	FHIR_HEART_RATE,
	FHIR_SPO2,
	FHIR_STEPS,
	FHIR_RESPIRATORY_RATE,
	FHIR_SKIN_TEMP,
	FHIR_SLEEP_LIGHT,
	FHIR_SLEEP_DEEP,
	FHIR_SLEEP_REM,
	FHIR_N_KINDS,
} FhirKind;

struct AmuExportWriter {
	AmuExportFormat format;
	char *dir;
	char *device_name;
	char *device_id;
	char *device_model;
	char *device_profile;
	char *grant_id;
	char *recipient;
	char *purpose;
	AmuGranularity granularity;
	gint64 interval_ms; /* 0 for raw */
	gint64 from_ms;
	gint64 to_ms;
	gint64 created_ms;

	AmuExportStream out;
	GPtrArray *files; /* of AmuExportFile, in the order created */
	TimeCache time_cache;
	guint64 n_records; /* in the open file */
	GError *error;	   /* the first failed write, returned ever after */
	gboolean finished;

	/* the order samples came in */
	AmuCategory category; /* of the previous sample, 0 before the first */
	gint64 last_ms;
	guint32 done_categories; /* bit per category whose run has ended */
	guint n_same_time;	 /* earlier samples of this category and time */

	/* FHIR: per-kind text before effective[x] and after the value */
	GString *fhir_head[FHIR_N_KINDS];
	GString *fhir_tail[FHIR_N_KINDS];
	char *fhir_record; /* one entry is assembled here and written at once */
	guint64 fhir_id_key[2];

	AmuCategory csv_category; /* of the open CSV file, 0 before the first */

	/* GPX */
	char *gpx_track_head;
	gboolean gpx_in_track;
	gint64 gpx_last_fix_ms;
	gint64 gpx_gap_ms;
};

static inline void
writer_put_gstring(AmuExportWriter *self, const GString *text)
{
	amu_export_stream_put(&self->out, text->str, text->len);
}

/* ---------------------------------------------------------------- formats */

/* a JSON string, or null for NULL */
void amu_export_json_append_string(GString *out, const char *text);
/* a quoted time, or null for an open end of a range */
void amu_export_json_append_time(GString *out, TimeCache *cache, gint64 ms);

/* Each format writes what comes before the first sample once its file is
 * open, then a record per sample that amu_export_writer_add() accepted. */
void amu_export_fhir_begin(AmuExportWriter *self);
void amu_export_fhir_add(AmuExportWriter *self, const AmuSample *sample);
void amu_export_gpx_begin(AmuExportWriter *self);
void amu_export_gpx_add(AmuExportWriter *self, const AmuSample *sample);

G_END_DECLS
