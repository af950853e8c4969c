/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-export-writer-private.h"
#include "amulet/amu-error.h"

/* The export formats, written as the samples stream past. Records are
 * formatted by hand into the stream's buffer (amu-export-file.c), which a
 * thread of its own writes and hashes: an export of a year of 1 Hz heart
 * rate is 30 M samples, and printf() or GDateTime per sample would make
 * that take minutes. The manifest needs no second pass over the files.
 *
 * This file holds the names of formats and values, JSON and CSV, and the
 * public calls, which check each sample before any format sees it; FHIR and
 * GPX have a file each (amu-export-fhir.c, amu-export-gpx.c). */

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

/* ---------------------------------------------------------------- JSON text */

void
amu_export_json_append_string(GString *out, const char *text)
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

void
amu_export_json_append_time(GString *out, TimeCache *cache, gint64 ms)
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

/* ---------------------------------------------------------------- writer */

static char *
copy_text(const char *text)
{
	return text != NULL ? g_utf8_make_valid(text, -1) : NULL;
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

/* ---------------------------------------------------------------- JSON */

static void
json_begin(AmuExportWriter *self)
{
	g_autoptr(GString) head = g_string_sized_new(512);

	g_string_append(head,
			"{\"format\":\"amulet-export\",\"version\":1,\n\"device\":{\"name\":");
	amu_export_json_append_string(head, self->device_name);
	g_string_append(head, ",\"id\":");
	amu_export_json_append_string(head, self->device_id);
	g_string_append(head, ",\"model\":");
	amu_export_json_append_string(head, self->device_model);
	g_string_append(head, ",\"profile\":");
	amu_export_json_append_string(head, self->device_profile);
	g_string_append(head, "},\n\"grant_id\":");
	amu_export_json_append_string(head, self->grant_id);
	g_string_append(head, ",\"recipient\":");
	amu_export_json_append_string(head, self->recipient);
	g_string_append(head, ",\"purpose\":");
	amu_export_json_append_string(head, self->purpose);
	g_string_append(head, ",\n\"granularity\":");
	amu_export_json_append_string(head, amu_granularity_to_string(self->granularity));
	g_string_append(head, ",\"from\":");
	amu_export_json_append_time(head, &self->time_cache, self->from_ms);
	g_string_append(head, ",\"to\":");
	amu_export_json_append_time(head, &self->time_cache, self->to_ms);
	g_string_append(head, ",\"created\":");
	amu_export_json_append_time(head, &self->time_cache, self->created_ms);
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
		amu_export_fhir_begin(self);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		amu_export_gpx_begin(self);
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
		amu_export_fhir_add(self, sample);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		amu_export_gpx_add(self, sample);
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
amu_export_writer_set_sync(AmuExportWriter *self, AmuExportSync *sync)
{
	g_return_if_fail(self != NULL);
	self->out.sync = sync;
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
