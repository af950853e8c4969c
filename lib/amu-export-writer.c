/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "amu-export-file.h"
#include "amu-export-writer.h"
#include "amulet/amu-error.h"

/* The export formats, written as the samples stream past. Records are
 * formatted by hand into the stream's buffer (amu-export-file.c), which a
 * thread of its own writes and hashes: an export of a year of 1 Hz heart
 * rate is 30 M samples, and printf() or GDateTime per sample would make
 * that take minutes. The manifest needs no second pass over the files. */

#define DAY_MS G_GINT64_CONSTANT(86400000)
/* xsd:dateTime and ISO 8601 without expansion need four-digit years */
#define TIME_MAX_MS G_GINT64_CONSTANT(253402300799999) /* 9999-12-31T23:59:59.999Z */
/* a day below it, so that the end of any record's interval prints too */
#define SAMPLE_TIME_MAX_MS (TIME_MAX_MS - DAY_MS)
#define TIME_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
/* GPX: a pause longer than this between fixes starts a new track segment */
#define GPX_SEGMENT_GAP_MS (5 * 60 * 1000)
/* FHIR ids tell apart this many samples of one category at the same millisecond */
#define FHIR_MAX_SAME_TIME 1024
/* a raw sleep-stage sample stands for a 30 s epoch, a raw steps sample for a minute */
#define SLEEP_EPOCH_MS 30000
#define STEPS_INTERVAL_MS 60000
/* enough for the longest record that holds no caller's text */
#define RECORD_MAX 512

#define PUT_LITERAL(out, text) (memcpy((out), (text), sizeof(text) - 1), (out) + sizeof(text) - 1)

/* ---------------------------------------------------------------- names */

/* indexed by the enums' values; NULL where a number is no value */
static const char *const format_names[] = {
	[AMU_EXPORT_FORMAT_JSON] = "json",
	[AMU_EXPORT_FORMAT_CSV] = "csv",
	[AMU_EXPORT_FORMAT_FHIR] = "fhir",
	[AMU_EXPORT_FORMAT_GPX] = "gpx",
};
/* the single file each format writes; CSV writes one per category */
static const char *const format_files[] = {
	[AMU_EXPORT_FORMAT_JSON] = "samples.json",
	[AMU_EXPORT_FORMAT_FHIR] = "bundle.json",
	[AMU_EXPORT_FORMAT_GPX] = "track.gpx",
};
static const char *const granularity_names[] = {
	[AMU_GRANULARITY_RAW] = "raw",
	[AMU_GRANULARITY_MINUTE] = "minute",
	[AMU_GRANULARITY_HOUR] = "hour",
	[AMU_GRANULARITY_DAY] = "day",
};
static const gint64 granularity_ms[] = {
	[AMU_GRANULARITY_RAW] = 0,
	[AMU_GRANULARITY_MINUTE] = 60 * 1000,
	[AMU_GRANULARITY_HOUR] = 60 * 60 * 1000,
	[AMU_GRANULARITY_DAY] = DAY_MS,
};
static const char *const sleep_stage_names[] = {
	[AMU_SLEEP_STAGE_AWAKE] = "awake",
	[AMU_SLEEP_STAGE_LIGHT] = "light",
	[AMU_SLEEP_STAGE_DEEP] = "deep",
	[AMU_SLEEP_STAGE_REM] = "rem",
};
static const char *const toy_event_kind_names[] = {
	[AMU_TOY_EVENT_BUTTON] = "button",
	[AMU_TOY_EVENT_VOICE_CLIP] = "voice_clip",
	[AMU_TOY_EVENT_PLAY_SESSION] = "play_session",
	[AMU_TOY_EVENT_STORY] = "story",
};

#define NAME_OF(names, value) name_of((names), G_N_ELEMENTS(names), (value))
#define VALUE_OF(names, name, value) value_of((names), G_N_ELEMENTS(names), (name), (value))

static const char *
name_of(const char *const *names, gsize n_names, gint64 value)
{
	return value >= 0 && (guint64)value < n_names ? names[value] : NULL;
}

static gboolean
value_of(const char *const *names, gsize n_names, const char *name, int *value)
{
	for (gsize i = 0; i < n_names; i++) {
		if (names[i] != NULL && strcmp(names[i], name) == 0) {
			*value = (int)i;
			return TRUE;
		}
	}
	return FALSE;
}

const char *
amu_export_format_to_string(AmuExportFormat format)
{
	return NAME_OF(format_names, format);
}

gboolean
amu_export_format_from_string(const char *name, AmuExportFormat *format)
{
	int value;

	g_return_val_if_fail(name != NULL, FALSE);
	if (!VALUE_OF(format_names, name, &value))
		return FALSE;
	if (format != NULL)
		*format = value;
	return TRUE;
}

const char *
amu_granularity_to_string(AmuGranularity granularity)
{
	return NAME_OF(granularity_names, granularity);
}

gboolean
amu_granularity_from_string(const char *name, AmuGranularity *granularity)
{
	int value;

	g_return_val_if_fail(name != NULL, FALSE);
	if (!VALUE_OF(granularity_names, name, &value))
		return FALSE;
	if (granularity != NULL)
		*granularity = value;
	return TRUE;
}

gint64
amu_granularity_get_ms(AmuGranularity granularity)
{
	return amu_granularity_to_string(granularity) != NULL ? granularity_ms[granularity] : 0;
}

/* ---------------------------------------------------------------- fields */

/* How a stored integer becomes a value in real units. */
typedef enum {
	FIELD_INTEGER,
	FIELD_TENTHS,
	FIELD_HUNDREDTHS,
	FIELD_DEGREES_E7,
	FIELD_SLEEP_STAGE,
	FIELD_TOY_EVENT_KIND,
} FieldKind;

typedef struct {
	const char *json_name;
	const char *csv_name;
	FieldKind kind;
} Field;

/* values[i] is fields[i]; the names carry the unit (docs/export-schema.json) */
static const struct {
	guint n_fields;
	Field fields[AMU_SAMPLE_MAX_VALUES];
} category_fields[] = {
	[AMU_CATEGORY_HEART_RATE] = { 1, { { "bpm", "bpm", FIELD_INTEGER } } },
	[AMU_CATEGORY_STEPS] = { 1, { { "steps", "steps", FIELD_INTEGER } } },
	[AMU_CATEGORY_SPO2] = { 1, { { "spo2_percent", "spo2_percent", FIELD_TENTHS } } },
	[AMU_CATEGORY_SLEEP_STAGE] = { 1, { { "stage", "stage", FIELD_SLEEP_STAGE } } },
	[AMU_CATEGORY_SKIN_TEMP] = { 1, { { "celsius", "skin_temp_celsius", FIELD_HUNDREDTHS } } },
	[AMU_CATEGORY_RESPIRATORY_RATE] = { 1,
					    { { "breaths_per_min",
						"breaths_per_min",
						FIELD_TENTHS } } },
	[AMU_CATEGORY_LOCATION] = { 3,
				    { { "latitude", "latitude_deg", FIELD_DEGREES_E7 },
				      { "longitude", "longitude_deg", FIELD_DEGREES_E7 },
				      { "elevation_m", "elevation_m", FIELD_HUNDREDTHS } } },
	[AMU_CATEGORY_BATTERY] = { 1, { { "percent", "battery_percent", FIELD_INTEGER } } },
	[AMU_CATEGORY_TOY_EVENT] = { 3,
				     { { "kind", "kind", FIELD_TOY_EVENT_KIND },
				       { "duration_ms", "duration_ms", FIELD_INTEGER },
				       { "item", "item", FIELD_INTEGER } } },
};

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

static char *
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

static char *
put_int(char *out, gint64 value)
{
	if (value >= 0)
		return put_uint(out, (guint64)value);
	*out++ = '-';
	return put_uint(out, -(guint64)value);
}

/* @value / 10^@decimals with exactly @decimals digits after the point:
 * decimal, so the text is the stored value and never a binary float's */
static char *
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

static char *
put_string(char *out, const char *text)
{
	gsize len = strlen(text);

	memcpy(out, text, len);
	return out + len;
}

/* Howard Hinnant's days_from_civil inverse: the proleptic Gregorian date of
 * a day number, in integer arithmetic (no tables, no time zone database). */
static void
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
static char *
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

static gboolean
time_is_printable(gint64 ms)
{
	return ms >= 0 && ms <= TIME_MAX_MS;
}

/* the value of one field; keywords are quoted for JSON and bare for CSV */
static char *
put_field(char *out, FieldKind kind, gint32 value, gboolean quote_keywords)
{
	const char *keyword = NULL;

	switch (kind) {
	case FIELD_INTEGER:
		return put_int(out, value);
	case FIELD_TENTHS:
		return put_fixed(out, value, 1);
	case FIELD_HUNDREDTHS:
		return put_fixed(out, value, 2);
	case FIELD_DEGREES_E7:
		return put_fixed(out, value, 7);
	case FIELD_SLEEP_STAGE:
		keyword = NAME_OF(sleep_stage_names, value);
		break;
	case FIELD_TOY_EVENT_KIND:
		keyword = NAME_OF(toy_event_kind_names, value);
		break;
	}
	if (quote_keywords)
		*out++ = '"';
	out = put_string(out, keyword);
	if (quote_keywords)
		*out++ = '"';
	return out;
}

static void
json_append_string(GString *out, const char *text)
{
	if (text == NULL) {
		g_string_append(out, "null");
		return;
	}
	g_string_append_c(out, '"');
	for (const char *p = text; *p != '\0'; p++) {
		guchar c = (guchar)*p;
		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			g_string_append_printf(out, "\\u%04x", c);
		else
			g_string_append_c(out, (char)c);
	}
	g_string_append_c(out, '"');
}

/* a quoted time, or null for an open end of a range */
static void
json_append_time(GString *out, TimeCache *cache, gint64 ms)
{
	char text[TIME_LEN];

	if (!time_is_printable(ms)) {
		g_string_append(out, "null");
		return;
	}
	put_time(cache, ms, text);
	g_string_append_c(out, '"');
	g_string_append_len(out, text, TIME_LEN);
	g_string_append_c(out, '"');
}

/* ---------------------------------------------------------------- files */

void
amu_export_file_free(AmuExportFile *file)
{
	if (file == NULL)
		return;
	g_free(file->name);
	g_free(file);
}

/* ---------------------------------------------------------------- FHIR codes */

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

/* Aggregated epochs keep only the most frequent stage; saying so stops a
 * reader from adding them up into measured stage durations. */
#define SLEEP_NOTE(stage)                                                                          \
	stage " sleep was the most frequent stage in the period; the value is the period's "       \
	      "length, not the time measured in that stage."
#define LOINC(code, display)                                                                       \
	"{\"system\":\"http://loinc.org\",\"code\":\"" code "\",\"display\":\"" display "\"}"

static const struct {
	const char *category; /* http://terminology.hl7.org/CodeSystem/observation-category */
	const char *category_display;
	const char *codings;
	const char *text;
	const char *unit;      /* valueQuantity.unit, for people */
	const char *ucum;      /* valueQuantity.code */
	const char *aggregate; /* what an aggregated value is, for Observation.note */
} fhir_codes[] = {
	[FHIR_HEART_RATE] = { "vital-signs",
			      "Vital Signs",
			      LOINC("8867-4", "Heart rate"),
			      "Heart rate",
			      "beats/minute",
			      "/min",
			      "Mean heart rate over the period." },
	[FHIR_SPO2] = { "vital-signs",
			"Vital Signs",
			LOINC("2708-6", "Oxygen saturation in Arterial blood") "," LOINC(
			  "59408-5",
			  "Oxygen saturation in Arterial blood by Pulse oximetry"),
			"Oxygen saturation by pulse oximetry",
			"%",
			"%",
			"Mean saturation over the period." },
	[FHIR_STEPS] = { "activity",
			 "Activity",
			 LOINC("55423-8", "Number of steps in unspecified time Pedometer"),
			 "Steps",
			 "steps",
			 "{steps}",
			 "Steps counted in the period." },
	[FHIR_RESPIRATORY_RATE] = { "vital-signs",
				    "Vital Signs",
				    LOINC("9279-1", "Respiratory rate"),
				    "Respiratory rate",
				    "breaths/minute",
				    "/min",
				    "Mean respiratory rate over the period." },
	/* The vital-signs profile knows body temperature only; the text
	 * keeps a reader from taking 33 degrees on the wrist for hypothermia. */
	[FHIR_SKIN_TEMP] = { "vital-signs",
			     "Vital Signs",
			     LOINC("8310-5", "Body temperature"),
			     "Skin temperature measured by a wearable on the skin, not core body "
			     "temperature",
			     "C",
			     "Cel",
			     "Mean skin temperature over the period." },
	[FHIR_SLEEP_LIGHT] = { "activity",
			       "Activity",
			       LOINC("93830-8", "Light sleep duration"),
			       "Light sleep duration",
			       "min",
			       "min",
			       SLEEP_NOTE("Light") },
	[FHIR_SLEEP_DEEP] = { "activity",
			      "Activity",
			      LOINC("93831-6", "Deep sleep duration"),
			      "Deep sleep duration",
			      "min",
			      "min",
			      SLEEP_NOTE("Deep") },
	[FHIR_SLEEP_REM] = { "activity",
			     "Activity",
			     LOINC("93829-0", "REM sleep duration"),
			     "REM sleep duration",
			     "min",
			     "min",
			     SLEEP_NOTE("REM") },
};

/* ---------------------------------------------------------------- writer */

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

static char *
copy_text(const char *text)
{
	return text != NULL ? g_utf8_make_valid(text, -1) : NULL;
}

/* 128 stable bits from text: ids that come out the same on every export of
 * the same data, and differ between devices, granularities and grants */
static void
hash_key(const char *text, guint64 key[2])
{
	g_autoptr(GChecksum) checksum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize len = sizeof(digest);

	g_checksum_update(checksum, (const guchar *)text, -1);
	g_checksum_get_digest(checksum, digest, &len);
	key[0] = key[1] = 0;
	for (guint i = 0; i < 8; i++) {
		key[0] = key[0] << 8 | digest[i];
		key[1] = key[1] << 8 | digest[8 + i];
	}
}

/* an RFC 9562 version 8 (custom) UUID: FHIR ids and urn:uuid: full URLs */
static char *
put_uuid(char *out, guint64 high, guint64 low)
{
	static const char hex[] = "0123456789abcdef";

	high = (high & ~G_GUINT64_CONSTANT(0xf000)) | G_GUINT64_CONSTANT(0x8000);
	low = (low & ~(G_GUINT64_CONSTANT(3) << 62)) | G_GUINT64_CONSTANT(2) << 62;
	for (guint i = 0; i < 16; i++) {
		guint64 half = i < 8 ? high : low;
		guint byte = (guint)(half >> (56 - 8 * (i % 8))) & 0xff;
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*out++ = '-';
		*out++ = hex[byte >> 4];
		*out++ = hex[byte & 0xf];
	}
	return out;
}

static gboolean
writer_fail(AmuExportWriter *self, GError **error)
{
	if (self->error != NULL)
		g_propagate_error(error, g_error_copy(self->error));
	return FALSE;
}

/* Records a failed write for good and reports it. */
static gboolean
writer_check(AmuExportWriter *self, GError **error)
{
	if (G_LIKELY(amu_export_stream_check(&self->out, &self->error)))
		return TRUE;
	return writer_fail(self, error);
}

static gboolean
writer_open(AmuExportWriter *self, const char *name, GError **error)
{
	g_autoptr(AmuExportFile) record = g_new0(AmuExportFile, 1);

	record->name = g_strdup(name);
	if (!amu_export_stream_open(&self->out, self->dir, record, error))
		return FALSE;
	g_ptr_array_add(self->files, g_steal_pointer(&record));
	self->n_records = 0;
	return TRUE;
}

static void
writer_put_gstring(AmuExportWriter *self, const GString *text)
{
	amu_export_stream_put(&self->out, text->str, text->len);
}

/* ---------------------------------------------------------------- JSON */

static void
json_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(512);

	g_string_append(head,
			"{\"format\":\"amulet-export\",\"version\":1,\n\"device\":{\"name\":");
	json_append_string(head, self->device_name);
	g_string_append(head, ",\"id\":");
	json_append_string(head, self->device_id);
	g_string_append(head, ",\"model\":");
	json_append_string(head, self->device_model);
	g_string_append(head, ",\"profile\":");
	json_append_string(head, self->device_profile);
	g_string_append(head, "},\n\"grant_id\":");
	json_append_string(head, self->grant_id);
	g_string_append(head, ",\"recipient\":");
	json_append_string(head, self->recipient);
	g_string_append(head, ",\"purpose\":");
	json_append_string(head, self->purpose);
	g_string_append(head, ",\n\"granularity\":");
	json_append_string(head, amu_granularity_to_string(self->granularity));
	g_string_append(head, ",\"from\":");
	json_append_time(head, &self->time_cache, self->from_ms);
	g_string_append(head, ",\"to\":");
	json_append_time(head, &self->time_cache, self->to_ms);
	g_string_append(head, ",\"created\":");
	json_append_time(head, &self->time_cache, self->created_ms);
	g_string_append(head, ",\n\"samples\":[");
	writer_put_gstring(self, head);
}

static void
json_add(AmuExportWriter *self, const AmuSample *sample)
{
	char record[RECORD_MAX];
	char *p = record;

	p = self->n_records++ == 0 ? PUT_LITERAL(p, "\n{\"time\":\"")
				   : PUT_LITERAL(p, ",\n{\"time\":\"");
	p = put_time(&self->time_cache, sample->timestamp_ms, p);
	p = PUT_LITERAL(p, "\",\"category\":\"");
	p = put_string(p, amu_category_to_string(sample->category));
	*p++ = '"';
	for (guint i = 0; i < category_fields[sample->category].n_fields; i++) {
		const Field *field = &category_fields[sample->category].fields[i];
		*p++ = ',';
		*p++ = '"';
		p = put_string(p, field->json_name);
		*p++ = '"';
		*p++ = ':';
		p = put_field(p, field->kind, sample->values[i], TRUE);
	}
	*p++ = '}';
	amu_export_stream_put(&self->out, record, p - record);
}

/* ---------------------------------------------------------------- CSV */

/* Every field is a number, a time or one of our keywords: none holds a
 * comma, quote or line break, so RFC 4180 needs no quoting anywhere. */
static gboolean
csv_begin_category(AmuExportWriter *self, AmuCategory category, GError **error)
{
	g_autofree char *name = g_strdup_printf("%s.csv", amu_category_to_string(category));
	g_autoptr(GString) header = g_string_new("time_utc");

	if (self->out.fd >= 0 && !amu_export_stream_close(&self->out, &self->error))
		return writer_fail(self, error);
	if (!writer_open(self, name, &self->error))
		return writer_fail(self, error);
	/* an aggregated record stands for [time_utc, end_utc) */
	if (self->interval_ms != 0)
		g_string_append(header, ",end_utc");
	for (guint i = 0; i < category_fields[category].n_fields; i++)
		g_string_append_printf(header, ",%s", category_fields[category].fields[i].csv_name);
	g_string_append(header, "\r\n");
	writer_put_gstring(self, header);
	return TRUE;
}

static void
csv_add(AmuExportWriter *self, const AmuSample *sample)
{
	char record[RECORD_MAX];
	char *p = put_time(&self->time_cache, sample->timestamp_ms, record);

	if (self->interval_ms != 0) {
		*p++ = ',';
		p = put_time(&self->time_cache, sample->timestamp_ms + self->interval_ms, p);
	}
	for (guint i = 0; i < category_fields[sample->category].n_fields; i++) {
		*p++ = ',';
		p = put_field(
		  p, category_fields[sample->category].fields[i].kind, sample->values[i], FALSE);
	}
	*p++ = '\r';
	*p++ = '\n';
	amu_export_stream_put(&self->out, record, p - record);
}

/* ---------------------------------------------------------------- FHIR */

static void
fhir_build_templates(AmuExportWriter *self)
{
	g_autoptr(GString) device = g_string_new(self->device_name);
	gsize longest = 0;

	if (self->device_model != NULL)
		g_string_append_printf(device, " (%s)", self->device_model);
	for (guint kind = FHIR_HEART_RATE; kind < FHIR_N_KINDS; kind++) {
		GString *head = g_string_new(NULL);
		GString *tail = g_string_new(NULL);

		g_string_append_printf(
		  head,
		  "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
		  "\"http://terminology.hl7.org/CodeSystem/observation-category\","
		  "\"code\":\"%s\",\"display\":\"%s\"}]}],\"code\":{\"coding\":[%s],"
		  "\"text\":\"%s\"},\"subject\":{\"display\":",
		  fhir_codes[kind].category,
		  fhir_codes[kind].category_display,
		  fhir_codes[kind].codings,
		  fhir_codes[kind].text);
		json_append_string(head, self->device_name);
		g_string_append(head, "},\"device\":{\"display\":");
		json_append_string(head, device->str);
		g_string_append(head, "},");
		g_string_append_printf(
		  tail,
		  ",\"unit\":\"%s\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}",
		  fhir_codes[kind].unit,
		  fhir_codes[kind].ucum);
		if (self->interval_ms != 0)
			g_string_append_printf(
			  tail, ",\"note\":[{\"text\":\"%s\"}]", fhir_codes[kind].aggregate);
		g_string_append(tail, "}}");
		self->fhir_head[kind] = head;
		self->fhir_tail[kind] = tail;
		longest = MAX(longest, head->len + tail->len);
	}
	self->fhir_record = g_malloc(RECORD_MAX + longest);
}

static void
fhir_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(256);
	g_autofree char *seed = g_strdup_printf("amulet-fhir-bundle\n%s\n%s\n%s\n%" G_GINT64_FORMAT,
						self->device_id,
						self->grant_id,
						amu_granularity_to_string(self->granularity),
						self->created_ms);
	g_autofree char *key_seed = g_strdup_printf("amulet-fhir-observation\n%s\n%s",
						    self->device_id,
						    amu_granularity_to_string(self->granularity));
	guint64 bundle_key[2];
	char uuid[36];

	hash_key(seed, bundle_key);
	hash_key(key_seed, self->fhir_id_key);
	put_uuid(uuid, bundle_key[0], bundle_key[1]);
	fhir_build_templates(self);
	g_string_append(head, "{\"resourceType\":\"Bundle\",\"id\":\"");
	g_string_append_len(head, uuid, sizeof(uuid));
	g_string_append(head, "\",\"meta\":{\"lastUpdated\":");
	json_append_time(head, &self->time_cache, self->created_ms);
	g_string_append(head, "},\"type\":\"collection\",\"timestamp\":");
	json_append_time(head, &self->time_cache, self->created_ms);
	/* "entry":[ comes with the first entry: FHIR JSON has no empty arrays */
	writer_put_gstring(self, head);
}

/* Battery, toy events and location are not clinical observations (GPX
 * carries location), and an awake epoch has no sleep-duration code: these
 * stay FHIR_NONE and are left out of the bundle. */
static const FhirKind fhir_kinds[] = {
	[AMU_CATEGORY_HEART_RATE] = FHIR_HEART_RATE,
	[AMU_CATEGORY_STEPS] = FHIR_STEPS,
	[AMU_CATEGORY_SPO2] = FHIR_SPO2,
	[AMU_CATEGORY_SKIN_TEMP] = FHIR_SKIN_TEMP,
	[AMU_CATEGORY_RESPIRATORY_RATE] = FHIR_RESPIRATORY_RATE,
	[AMU_CATEGORY_LOCATION] = FHIR_NONE,
	[AMU_CATEGORY_BATTERY] = FHIR_NONE,
	[AMU_CATEGORY_TOY_EVENT] = FHIR_NONE,
};
static const FhirKind fhir_sleep_kinds[] = {
	[AMU_SLEEP_STAGE_AWAKE] = FHIR_NONE,
	[AMU_SLEEP_STAGE_LIGHT] = FHIR_SLEEP_LIGHT,
	[AMU_SLEEP_STAGE_DEEP] = FHIR_SLEEP_DEEP,
	[AMU_SLEEP_STAGE_REM] = FHIR_SLEEP_REM,
};

static void
fhir_add(AmuExportWriter *self, const AmuSample *sample)
{
	char *record = self->fhir_record;
	char *p = record;
	char *uuid;
	gint64 period_ms = self->interval_ms;
	guint64 injective;
	/* writer_accept() checked the category and the stage */
	FhirKind kind = sample->category == AMU_CATEGORY_SLEEP_STAGE
			  ? fhir_sleep_kinds[sample->values[0]]
			  : fhir_kinds[sample->category];

	if (kind == FHIR_NONE)
		return;
	/* category, time and repeat count fit in 62 bits and are kept whole,
	 * so no two entries of one device's export share an id */
	injective = (guint64)self->n_same_time << 52 | (guint64)sample->category << 48 |
		    (guint64)sample->timestamp_ms;
	p = self->n_records++ == 0 ? PUT_LITERAL(p, ",\"entry\":[\n{\"fullUrl\":\"urn:uuid:")
				   : PUT_LITERAL(p, ",\n{\"fullUrl\":\"urn:uuid:");
	uuid = p;
	p = put_uuid(p, self->fhir_id_key[0], self->fhir_id_key[1] ^ injective);
	p = PUT_LITERAL(p, "\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"");
	memmove(p, uuid, 36);
	p += 36;
	p = PUT_LITERAL(p, "\",");
	memcpy(p, self->fhir_head[kind]->str, self->fhir_head[kind]->len);
	p += self->fhir_head[kind]->len;

	/* raw steps and sleep stages stand for an interval too */
	if (period_ms == 0 && sample->category == AMU_CATEGORY_STEPS)
		period_ms = STEPS_INTERVAL_MS;
	else if (period_ms == 0 && sample->category == AMU_CATEGORY_SLEEP_STAGE)
		period_ms = SLEEP_EPOCH_MS;
	if (period_ms == 0) {
		p = PUT_LITERAL(p, "\"effectiveDateTime\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms, p);
		p = PUT_LITERAL(p, "\"");
	} else {
		p = PUT_LITERAL(p, "\"effectivePeriod\":{\"start\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms, p);
		p = PUT_LITERAL(p, "\",\"end\":\"");
		p = put_time(&self->time_cache, sample->timestamp_ms + period_ms, p);
		p = PUT_LITERAL(p, "\"}");
	}
	p = PUT_LITERAL(p, ",\"valueQuantity\":{\"value\":");
	switch (sample->category) {
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_RESPIRATORY_RATE:
		p = put_fixed(p, sample->values[0], 1);
		break;
	case AMU_CATEGORY_SKIN_TEMP:
		p = put_fixed(p, sample->values[0], 2);
		break;
	case AMU_CATEGORY_SLEEP_STAGE:
		/* the minutes the epoch or the period stands for */
		p = period_ms % 60000 == 0 ? put_int(p, period_ms / 60000)
					   : put_fixed(p, period_ms / 6000, 1);
		break;
	case AMU_CATEGORY_HEART_RATE:
	case AMU_CATEGORY_STEPS:
	case AMU_CATEGORY_LOCATION:
	case AMU_CATEGORY_BATTERY:
	case AMU_CATEGORY_TOY_EVENT:
		p = put_int(p, sample->values[0]);
		break;
	}
	memcpy(p, self->fhir_tail[kind]->str, self->fhir_tail[kind]->len);
	p += self->fhir_tail[kind]->len;
	amu_export_stream_put(&self->out, record, p - record);
}

/* ---------------------------------------------------------------- GPX */

static void
gpx_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(1024);
	g_autofree char *name = g_markup_escape_text(self->device_name, -1);
	g_autofree char *id = g_markup_escape_text(self->device_id, -1);
	g_autofree char *recipient = g_markup_escape_text(self->recipient, -1);
	g_autofree char *purpose = g_markup_escape_text(self->purpose, -1);
	g_autofree char *grant = g_markup_escape_text(self->grant_id, -1);
	char created[TIME_LEN];

	put_time(&self->time_cache, self->created_ms, created);
	g_string_append(head,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<gpx version=\"1.1\" creator=\"Amulet " PACKAGE_VERSION "\" "
			"xmlns=\"http://www.topografix.com/GPX/1/1\" "
			"xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
			"xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 "
			"http://www.topografix.com/GPX/1/1/gpx.xsd\">\n"
			" <metadata>\n");
	g_string_append_printf(head, "  <name>Location of %s</name>\n", name);
	g_string_append_printf(
	  head,
	  "  <desc>Device %s, exported for %s (%s) under consent grant %s; granularity %s",
	  id,
	  recipient,
	  purpose,
	  grant,
	  amu_granularity_to_string(self->granularity));
	if (self->interval_ms != 0)
		g_string_append(
		  head, ": each point is the first fix of the interval starting at its time");
	g_string_append_printf(
	  head, ".</desc>\n  <time>%.*s</time>\n </metadata>\n", TIME_LEN, created);
	writer_put_gstring(self, head);
	self->gpx_track_head = g_strdup_printf(" <trk>\n  <name>%s</name>\n  <trkseg>\n", name);
}

static void
gpx_add(AmuExportWriter *self, const AmuSample *sample)
{
	char record[RECORD_MAX];
	char *p = record;
	gint32 longitude = sample->values[1];

	if (sample->category != AMU_CATEGORY_LOCATION)
		return;
	if (!self->gpx_in_track) {
		amu_export_stream_put(&self->out, self->gpx_track_head, strlen(self->gpx_track_head));
		self->gpx_in_track = TRUE;
	} else if (sample->timestamp_ms - self->gpx_last_fix_ms > self->gpx_gap_ms) {
		p = PUT_LITERAL(p, "  </trkseg>\n  <trkseg>\n");
	}
	self->gpx_last_fix_ms = sample->timestamp_ms;
	/* GPX's longitudeType stops short of 180; -180 is the same meridian */
	if (longitude == 1800000000)
		longitude = -1800000000;
	p = PUT_LITERAL(p, "   <trkpt lat=\"");
	p = put_fixed(p, sample->values[0], 7);
	p = PUT_LITERAL(p, "\" lon=\"");
	p = put_fixed(p, longitude, 7);
	p = PUT_LITERAL(p, "\"><ele>");
	p = put_fixed(p, sample->values[2], 2);
	p = PUT_LITERAL(p, "</ele><time>");
	p = put_time(&self->time_cache, sample->timestamp_ms, p);
	p = PUT_LITERAL(p, "</time></trkpt>\n");
	amu_export_stream_put(&self->out, record, p - record);
}

/* ---------------------------------------------------------------- public */

AmuExportWriter *
amu_export_writer_new(AmuExportFormat format,
		      const char *dir,
		      const AmuExportInfo *info,
		      GError **error)
{
	g_autoptr(AmuExportWriter) self = NULL;

	g_return_val_if_fail(dir != NULL, NULL);
	g_return_val_if_fail(info != NULL, NULL);
	g_return_val_if_fail(info->device_name != NULL && info->device_id != NULL, NULL);
	g_return_val_if_fail(
	  info->grant_id != NULL && info->recipient != NULL && info->purpose != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	if (amu_export_format_to_string(format) == NULL ||
	    amu_granularity_to_string(info->granularity) == NULL) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "unknown export format %d or granularity %d",
			    (int)format,
			    (int)info->granularity);
		return NULL;
	}
	if (!time_is_printable(info->created_ms)) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "export creation time %" G_GINT64_FORMAT
			    " ms is outside the years 1970 to 9999: "
			    "check the clock",
			    info->created_ms);
		return NULL;
	}

	self = g_new0(AmuExportWriter, 1);
	self->format = format;
	self->dir = g_strdup(dir);
	self->device_name = copy_text(info->device_name);
	self->device_id = copy_text(info->device_id);
	self->device_model = copy_text(info->device_model);
	self->device_profile = copy_text(info->device_profile);
	self->grant_id = copy_text(info->grant_id);
	self->recipient = copy_text(info->recipient);
	self->purpose = copy_text(info->purpose);
	self->granularity = info->granularity;
	self->interval_ms = amu_granularity_get_ms(info->granularity);
	self->from_ms = info->from_ms;
	self->to_ms = info->to_ms;
	self->created_ms = info->created_ms;
	self->out.fd = -1;
	self->files = g_ptr_array_new_with_free_func((GDestroyNotify)amu_export_file_free);
	self->time_cache.day = -1;
	/* at hour or day granularity consecutive points are an interval apart */
	self->gpx_gap_ms = MAX(GPX_SEGMENT_GAP_MS, self->interval_ms);

	/* CSV opens a file per category as they come */
	if (format == AMU_EXPORT_FORMAT_CSV)
		return g_steal_pointer(&self);
	if (!writer_open(self, format_files[format], error))
		return NULL;
	switch (format) {
	case AMU_EXPORT_FORMAT_JSON:
		json_begin(self);
		break;
	case AMU_EXPORT_FORMAT_FHIR:
		fhir_begin(self);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		gpx_begin(self);
		break;
	case AMU_EXPORT_FORMAT_CSV:
		break;
	}
	if (!writer_check(self, error))
		return NULL;
	return g_steal_pointer(&self);
}

/* What a sample must be for every format to write it; checked before any
 * byte of it is written. */
static gboolean
writer_accept(AmuExportWriter *self, const AmuSample *sample, GError **error)
{
	const char *category;

	if (!amu_category_is_valid(sample->category)) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "cannot export a sample of category %d",
			    (int)sample->category);
		return FALSE;
	}
	category = amu_category_to_string(sample->category);
	if (sample->timestamp_ms < 0 || sample->timestamp_ms > SAMPLE_TIME_MAX_MS) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "cannot export a %s sample at %" G_GINT64_FORMAT
			    " ms: outside the years 1970 to 9999",
			    category,
			    sample->timestamp_ms);
		return FALSE;
	}
	if ((sample->category == AMU_CATEGORY_SLEEP_STAGE &&
	     NAME_OF(sleep_stage_names, sample->values[0]) == NULL) ||
	    (sample->category == AMU_CATEGORY_TOY_EVENT &&
	     NAME_OF(toy_event_kind_names, sample->values[0]) == NULL)) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "cannot export a %s sample of unknown kind %d",
			    category,
			    (int)sample->values[0]);
		return FALSE;
	}
	if (sample->category != self->category) {
		if ((self->done_categories & 1u << sample->category) != 0) {
			g_set_error(
			  error,
			  AMU_ERROR,
			  AMU_ERROR_INVALID_ARGUMENT,
			  "%s samples came again after another category's: hand each category's "
			  "samples over together",
			  category);
			return FALSE;
		}
		if (self->category != 0)
			self->done_categories |= 1u << self->category;
		self->category = sample->category;
		self->n_same_time = 0;
	} else if (sample->timestamp_ms < self->last_ms) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "%s sample at %" G_GINT64_FORMAT
			    " ms came after one at %" G_GINT64_FORMAT
			    " ms: hand samples over in time order",
			    category,
			    sample->timestamp_ms,
			    self->last_ms);
		return FALSE;
	} else if (sample->timestamp_ms == self->last_ms) {
		if (++self->n_same_time >= FHIR_MAX_SAME_TIME) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_INVALID_ARGUMENT,
				    "more than %d %s samples at %" G_GINT64_FORMAT " ms",
				    FHIR_MAX_SAME_TIME,
				    category,
				    sample->timestamp_ms);
			return FALSE;
		}
	} else {
		self->n_same_time = 0;
	}
	self->last_ms = sample->timestamp_ms;
	return TRUE;
}

gboolean
amu_export_writer_add(AmuExportWriter *self, const AmuSample *sample, GError **error)
{
	g_return_val_if_fail(self != NULL, FALSE);
	g_return_val_if_fail(sample != NULL, FALSE);
	g_return_val_if_fail(!self->finished, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (self->error != NULL)
		return writer_fail(self, error);
	if (!writer_accept(self, sample, error))
		return FALSE;
	switch (self->format) {
	case AMU_EXPORT_FORMAT_JSON:
		json_add(self, sample);
		break;
	case AMU_EXPORT_FORMAT_CSV:
		if (sample->category != self->csv_category) {
			if (!csv_begin_category(self, sample->category, error))
				return FALSE;
			self->csv_category = sample->category;
		}
		csv_add(self, sample);
		break;
	case AMU_EXPORT_FORMAT_FHIR:
		fhir_add(self, sample);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		gpx_add(self, sample);
		break;
	}
	return writer_check(self, error);
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
	const AmuExportFile *const *file_a = a;
	const AmuExportFile *const *file_b = b;

	return strcmp((*file_a)->name, (*file_b)->name);
}

gboolean
amu_export_writer_finish(AmuExportWriter *self, GPtrArray **files, GError **error)
{

	g_return_val_if_fail(self != NULL, FALSE);
	g_return_val_if_fail(!self->finished, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (self->error != NULL)
		return writer_fail(self, error);
	switch (self->format) {
	case AMU_EXPORT_FORMAT_JSON:
		amu_export_stream_put(&self->out, "\n]}\n", 4);
		break;
	case AMU_EXPORT_FORMAT_CSV:
		break;
	case AMU_EXPORT_FORMAT_FHIR:
		if (self->n_records > 0)
			amu_export_stream_put(&self->out, "\n]}\n", 4);
		else
			amu_export_stream_put(&self->out, "}\n", 2);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		if (self->gpx_in_track)
			amu_export_stream_put(&self->out, "  </trkseg>\n </trk>\n", 20);
		amu_export_stream_put(&self->out, "</gpx>\n", 7);
		break;
	}
	if (self->out.fd >= 0 && !amu_export_stream_close(&self->out, &self->error))
		return writer_fail(self, error);

	self->finished = TRUE;
	g_ptr_array_sort(self->files, compare_names);
	if (files != NULL)
		*files = g_steal_pointer(&self->files);
	return TRUE;
}

void
amu_export_writer_free(AmuExportWriter *self)
{
	if (self == NULL)
		return;
	if (self->out.fd >= 0)
		amu_export_stream_close(&self->out, NULL);
	for (guint kind = 0; kind < FHIR_N_KINDS; kind++) {
		if (self->fhir_head[kind] != NULL)
			g_string_free(self->fhir_head[kind], TRUE);
		if (self->fhir_tail[kind] != NULL)
			g_string_free(self->fhir_tail[kind], TRUE);
	}
	g_free(self->fhir_record);
	g_free(self->gpx_track_head);
	g_clear_pointer(&self->files, g_ptr_array_unref);
	g_clear_error(&self->error);
	g_free(self->dir);
	g_free(self->device_name);
	g_free(self->device_id);
	g_free(self->device_model);
	g_free(self->device_profile);
	g_free(self->grant_id);
	g_free(self->recipient);
	g_free(self->purpose);
	g_free(self);
}
