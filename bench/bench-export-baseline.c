/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amu-store.h"
#include "bench-children.h"
#include "bench-export-baseline.h"

/* The baselines bench-export measures each export against, in the same
 * run and interleaved with it run by run:
 * - the plain table: a plain SQLite table of the same samples read with
 *   one SELECT and written with fprintf("%lld,%d,%d,%d,%d\n"), 23 bytes a
 *   sample (the export's target is a ratio to this one);
 * - the disk alone: as many bytes as the export wrote, from a buffer of
 *   random bytes with write(), fsync of the file and its directory: about
 *   the least time any code needs to make that many bytes durable here;
 * - the same output: the same SELECT with one fprintf() a row of the text
 *   the format writes (CSV rows and headers, JSON objects, FHIR
 *   Observations, GPX points), times through gmtime_r() and strftime(),
 *   decimals through printf of a double: what a plain program writing the
 *   same bytes costs. After the first run each of its lines past the head
 *   is checked against the export's files, and its size against theirs.
 * A missed target is explained with the last two. Each writes through a
 * buffer as large as the export writer's and ends with an fsync, as the
 * export does. */

/* ------------------------------------------------------------ plain table */

static gboolean
sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **stmt, GError **error)
{
	if (sqlite3_prepare_v2(db, sql, -1, stmt, NULL) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "%s: %s", sql, sqlite3_errmsg(db));
		return FALSE;
	}
	return TRUE;
}

/* The baseline's table: every stored sample as one plain row, read back
 * through the library (not timed), with an index in the export's order. */
gboolean
bench_baseline_fill(BenchDataSet *set, GError **error)
{
	g_autoptr(AmuContext) context = amu_context_new(set->host, error);
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuSampleIter) iter = NULL;
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) insert = NULL;
	GError *error_local = NULL;
	AmuSample sample;

	if (context == NULL || (device = amu_context_find_device(context, set->name, error)) == NULL ||
	    (iter = amu_device_query_samples(device, 0, 0, G_MAXINT64, error)) == NULL)
		return FALSE;
	if (sqlite3_open_v2(set->baseline_db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "cannot open %s", set->baseline_db);
		return FALSE;
	}
	if (!bench_sqlite_exec(db,
			 "PRAGMA journal_mode = WAL;"
			 "CREATE TABLE samples(timestamp_ms INTEGER NOT NULL, category INTEGER NOT NULL,"
			 " v1 INTEGER NOT NULL, v2 INTEGER NOT NULL, v3 INTEGER NOT NULL);"
			 "BEGIN",
			 error) ||
	    !sqlite_prepare(db, "INSERT INTO samples VALUES(?1, ?2, ?3, ?4, ?5)", &insert, error))
		return FALSE;
	set->n_samples = set->n_location = 0;
	while (amu_sample_iter_next(iter, &sample, &error_local)) {
		sqlite3_bind_int64(insert, 1, sample.timestamp_ms);
		sqlite3_bind_int(insert, 2, sample.category);
		for (int v = 0; v < AMU_SAMPLE_MAX_VALUES; v++)
			sqlite3_bind_int(insert, 3 + v, sample.values[v]);
		if (sqlite3_step(insert) != SQLITE_DONE) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "insert: %s", sqlite3_errmsg(db));
			return FALSE;
		}
		sqlite3_reset(insert);
		set->n_samples++;
		if (sample.category == AMU_CATEGORY_LOCATION)
			set->n_location++;
	}
	if (error_local != NULL) {
		g_propagate_error(error, error_local);
		return FALSE;
	}
	return bench_sqlite_exec(db,
			   "COMMIT;"
			   "CREATE INDEX samples_order ON samples(category, timestamp_ms);"
			   "PRAGMA wal_checkpoint(TRUNCATE)",
			   error);
}

/* what each format carries (amu-data-export.c's format_carries()), as SQL */
static const char *
format_filter(AmuExportFormat format)
{
	switch (format) {
	case AMU_EXPORT_FORMAT_GPX:
		return " WHERE category = 7";
	case AMU_EXPORT_FORMAT_FHIR:
		/* no location, battery or toy events */
		return " WHERE category IN (1, 2, 3, 4, 5, 6)";
	case AMU_EXPORT_FORMAT_JSON:
	case AMU_EXPORT_FORMAT_CSV:
		break;
	}
	return "";
}

/* Both fprintf baselines start alike: the plain table, its SELECT in the
 * export's order, and a new file buffered with @buffer
 * (BENCH_BASELINE_BUFFER_SIZE bytes). @t0: when the timed part began,
 * after opening the database. */
static gboolean
baseline_open(const BenchDataSet *set, AmuExportFormat format, const char *out_path, char *buffer, sqlite3 **db,
	      sqlite3_stmt **select, FILE **out, double *t0, GError **error)
{
	g_autofree char *sql = g_strdup_printf("SELECT timestamp_ms, category, v1, v2, v3 FROM samples%s"
					       " ORDER BY category, timestamp_ms",
					       format_filter(format));

	if (sqlite3_open_v2(set->baseline_db, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "cannot open %s", set->baseline_db);
		return FALSE;
	}
	*t0 = bench_wall_seconds();
	if (!sqlite_prepare(*db, sql, select, error))
		return FALSE;
	*out = fopen(out_path, "wx");
	if (*out == NULL) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", out_path, g_strerror(errno));
		return FALSE;
	}
	setvbuf(*out, buffer, _IOFBF, BENCH_BASELINE_BUFFER_SIZE);
	return TRUE;
}

/* The baseline: one SELECT in the export's order, one fprintf() a row into
 * a file with the writer's buffer size, fsync at the end. */
gboolean
bench_baseline_run(const BenchDataSet *set, AmuExportFormat format, const char *out_path, double *seconds,
		   guint64 *rows, GError **error)
{
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) select = NULL;
	g_autofree char *buffer = g_malloc(BENCH_BASELINE_BUFFER_SIZE);
	FILE *out;
	int rc;
	double t0;

	if (!baseline_open(set, format, out_path, buffer, &db, &select, &out, &t0, error))
		return FALSE;
	*rows = 0;
	while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
		fprintf(out, "%lld,%d,%d,%d,%d\n", (long long)sqlite3_column_int64(select, 0),
			sqlite3_column_int(select, 1), sqlite3_column_int(select, 2), sqlite3_column_int(select, 3),
			sqlite3_column_int(select, 4));
		(*rows)++;
	}
	if (rc != SQLITE_DONE || fflush(out) != 0 || ferror(out) || fsync(fileno(out)) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "baseline %s: %s", out_path,
			    rc != SQLITE_DONE ? sqlite3_errmsg(db) : g_strerror(errno));
		fclose(out);
		return FALSE;
	}
	fclose(out);
	*seconds = bench_wall_seconds() - t0;
	return TRUE;
}

/* the baseline's query plan, to show it walks the index and sorts nothing */
static char *
baseline_plan(const BenchDataSet *set, AmuExportFormat format)
{
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) explain = NULL;
	g_autofree char *sql = g_strdup_printf("EXPLAIN QUERY PLAN SELECT timestamp_ms, category, v1, v2, v3"
					       " FROM samples%s ORDER BY category, timestamp_ms",
					       format_filter(format));
	GString *plan = g_string_new(NULL);

	if (sqlite3_open_v2(set->baseline_db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &explain, NULL) == SQLITE_OK) {
		while (sqlite3_step(explain) == SQLITE_ROW)
			g_string_append_printf(plan, "%s%s", plan->len > 0 ? "; " : "",
					       (const char *)sqlite3_column_text(explain, 3));
	}
	return g_string_free(plan, FALSE);
}

/* ------------------------------------------------------------ same output */

/* The export's record text, written the way a program without the
 * writer's tricks would: one fprintf() a row, gmtime_r() and strftime()
 * for every time, printf's %.Nf of a double for every decimal. The text is
 * the writer's (amu-export-writer.c), copied here and checked against the
 * export's files after the first run. */

#define FIELD_KEYWORD (-1) /* a name, not a number */
#define GPX_SEGMENT_GAP_MS (5 * 60 * 1000)
#define SAME_OUTPUT_TOLERANCE 0.03 /* of the export's bytes */
#define FHIR_ID_LEN 36
#define TEXT_SIZE 48 /* a time, a value or an id as text */

typedef struct {
	const char *json_name;
	const char *csv_name;
	int decimals; /* digits after the point, or FIELD_KEYWORD */
} TextField;

static const struct {
	const char *name;
	int n_fields;
	TextField fields[AMU_SAMPLE_MAX_VALUES];
} text_categories[] = {
	[AMU_CATEGORY_HEART_RATE] = {"heart_rate", 1, {{"bpm", "bpm", 0}}},
	[AMU_CATEGORY_STEPS] = {"steps", 1, {{"steps", "steps", 0}}},
	[AMU_CATEGORY_SPO2] = {"spo2", 1, {{"spo2_percent", "spo2_percent", 1}}},
	[AMU_CATEGORY_SLEEP_STAGE] = {"sleep_stage", 1, {{"stage", "stage", FIELD_KEYWORD}}},
	[AMU_CATEGORY_SKIN_TEMP] = {"skin_temp", 1, {{"celsius", "skin_temp_celsius", 2}}},
	[AMU_CATEGORY_RESPIRATORY_RATE] = {"respiratory_rate", 1, {{"breaths_per_min", "breaths_per_min", 1}}},
	[AMU_CATEGORY_LOCATION] = {"location", 3,
				   {{"latitude", "latitude_deg", 7},
				    {"longitude", "longitude_deg", 7},
				    {"elevation_m", "elevation_m", 2}}},
	[AMU_CATEGORY_BATTERY] = {"battery", 1, {{"percent", "battery_percent", 0}}},
	[AMU_CATEGORY_TOY_EVENT] = {"toy_event", 3,
				    {{"kind", "kind", FIELD_KEYWORD},
				     {"duration_ms", "duration_ms", 0},
				     {"item", "item", 0}}},
};
static const char *const text_sleep_stages[] = {"awake", "light", "deep", "rem"};
static const char *const text_toy_events[] = {NULL, "button", "voice_clip", "play_session", "story"};

#define LOINC(code, display) "{\"system\":\"http://loinc.org\",\"code\":\"" code "\",\"display\":\"" display "\"}"
#define VITAL "vital-signs", "Vital Signs"
#define ACTIVITY "activity", "Activity"

typedef struct {
	const char *category;
	const char *category_display;
	const char *codings;
	const char *text;
	const char *unit;
	const char *ucum;
} FhirText;

/* by category; sleep stages by stage; NULL codings: no Observation */
static const FhirText fhir_texts[] = {
	[AMU_CATEGORY_HEART_RATE] = {VITAL, LOINC("8867-4", "Heart rate"), "Heart rate", "beats/minute", "/min"},
	[AMU_CATEGORY_STEPS] = {ACTIVITY, LOINC("55423-8", "Number of steps in unspecified time Pedometer"), "Steps",
				"steps", "{steps}"},
	[AMU_CATEGORY_SPO2] = {VITAL,
			       LOINC("2708-6", "Oxygen saturation in Arterial blood") "," LOINC(
				   "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
			       "Oxygen saturation by pulse oximetry", "%", "%"},
	[AMU_CATEGORY_SKIN_TEMP] = {VITAL, LOINC("8310-5", "Body temperature"),
				    "Skin temperature measured by a wearable on the skin, not core body temperature",
				    "C", "Cel"},
	[AMU_CATEGORY_RESPIRATORY_RATE] = {VITAL, LOINC("9279-1", "Respiratory rate"), "Respiratory rate",
					   "breaths/minute", "/min"},
};
static const FhirText fhir_sleep_texts[] = {
	[AMU_SLEEP_STAGE_LIGHT] = {ACTIVITY, LOINC("93830-8", "Light sleep duration"), "Light sleep duration", "min",
				   "min"},
	[AMU_SLEEP_STAGE_DEEP] = {ACTIVITY, LOINC("93831-6", "Deep sleep duration"), "Deep sleep duration", "min",
				  "min"},
	[AMU_SLEEP_STAGE_REM] = {ACTIVITY, LOINC("93829-0", "REM sleep duration"), "REM sleep duration", "min", "min"},
};

void
bench_export_head_clear(BenchExportHead *head)
{
	g_clear_pointer(&head->name, g_free);
	g_clear_pointer(&head->id, g_free);
	g_clear_pointer(&head->model, g_free);
	g_clear_pointer(&head->profile, g_free);
}

gboolean
bench_export_head_init(BenchExportHead *head, AmuContext *context, const BenchDataSet *set, GError **error)
{
	g_autoptr(AmuDevice) device = amu_context_find_device(context, set->name, error);
	AmuDisclosure *disclosure;

	if (device == NULL)
		return FALSE;
	disclosure = amu_device_get_disclosure(device);
	head->name = g_strdup(amu_device_get_name(device));
	head->id = g_strdup(amu_device_get_id(device));
	head->model = g_strdup(disclosure != NULL ? amu_disclosure_get_model(disclosure) : "");
	head->profile = g_strdup(amu_device_get_profile(device));
	head->grant_id = set->grant_id;
	head->created_ms = g_get_real_time() / 1000;
	return TRUE;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ", naively: the C library's calendar every row */
static void
naive_time(gint64 ms, char out[TEXT_SIZE])
{
	time_t seconds = (time_t)(ms / 1000);
	struct tm tm;
	char date[32];

	gmtime_r(&seconds, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, TEXT_SIZE, "%s.%03dZ", date, (int)(ms % 1000));
}

/* one value as text: an integer, a decimal from a double, or a keyword
 * (quoted for JSON) */
static const char *
naive_field(const TextField *field, int category, gint32 value, gboolean quote, char out[TEXT_SIZE])
{
	static const double scales[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7};
	const char *keyword;

	if (field->decimals == 0) {
		snprintf(out, TEXT_SIZE, "%d", value);
	} else if (field->decimals > 0) {
		snprintf(out, TEXT_SIZE, "%.*f", field->decimals, value / scales[field->decimals]);
	} else {
		if (category == AMU_CATEGORY_SLEEP_STAGE)
			keyword = value >= 0 && value < (gint32)G_N_ELEMENTS(text_sleep_stages)
				      ? text_sleep_stages[value]
				      : NULL;
		else
			keyword = value >= 0 && value < (gint32)G_N_ELEMENTS(text_toy_events) ? text_toy_events[value]
											       : NULL;
		snprintf(out, TEXT_SIZE, quote ? "\"%s\"" : "%s", keyword != NULL ? keyword : "?");
	}
	return out;
}

/* a fixed-width stand-in for the export's keyed UUID: the same length */
static void
fake_uuid(char out[TEXT_SIZE], gint64 ms, int category)
{
	snprintf(out, TEXT_SIZE, "%08x-%04x-8%03x-a%03x-%012llx", (unsigned)((guint64)ms >> 48) & 0xffff, 0u,
		 (unsigned)category & 0xfff, 0u, (unsigned long long)((guint64)ms & G_GUINT64_CONSTANT(0xffffffffffff)));
}

typedef struct {
	AmuExportFormat format;
	const BenchExportHead *head;
	FILE *out;
	guint64 n_records;	       /* written so far; a FHIR awake epoch writes none */
	int category;		       /* of the previous row, 0 before the first */
	BenchCategoryList *categories; /* every category met, in order */
	gboolean gpx_in_track;
	gint64 gpx_last_ms;
} SameOutput;

static void
same_output_begin(SameOutput *s)
{
	const BenchExportHead *head = s->head;
	char created[TEXT_SIZE], id[TEXT_SIZE];

	naive_time(head->created_ms, created);
	switch (s->format) {
	case AMU_EXPORT_FORMAT_CSV:
		break; /* a header with each category */
	case AMU_EXPORT_FORMAT_JSON:
		fprintf(s->out,
			"{\"format\":\"amulet-export\",\"version\":1,\n\"device\":{\"name\":\"%s\",\"id\":\"%s\","
			"\"model\":\"%s\",\"profile\":\"%s\"},\n\"grant_id\":\"%s\",\"recipient\":\"%s\",\"purpose\":\"%s\","
			"\n\"granularity\":\"raw\",\"from\":\"1970-01-01T00:00:00.000Z\",\"to\":null,\"created\":\"%s\","
			"\n\"samples\":[",
			head->name, head->id, head->model, head->profile, head->grant_id, BENCH_GRANT_RECIPIENT, BENCH_GRANT_PURPOSE,
			created);
		break;
	case AMU_EXPORT_FORMAT_FHIR:
		fake_uuid(id, head->created_ms, 0);
		fprintf(s->out,
			"{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
			"\"type\":\"collection\",\"timestamp\":\"%s\"",
			id, created, created);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		fprintf(s->out,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<gpx version=\"1.1\" creator=\"Amulet " PACKAGE_VERSION "\" "
			"xmlns=\"http://www.topografix.com/GPX/1/1\" "
			"xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
			"xsi:schemaLocation=\"http://www.topografix.com/GPX/1/1 "
			"http://www.topografix.com/GPX/1/1/gpx.xsd\">\n"
			" <metadata>\n  <name>Location of %s</name>\n"
			"  <desc>Device %s, exported for %s (%s) under consent grant %s; granularity raw.</desc>\n"
			"  <time>%s</time>\n </metadata>\n",
			head->name, head->id, BENCH_GRANT_RECIPIENT, BENCH_GRANT_PURPOSE, head->grant_id, created);
		break;
	}
}

static void
same_output_csv(SameOutput *s, gint64 ms, int category, const gint32 *values)
{
	char time[TEXT_SIZE], text[AMU_SAMPLE_MAX_VALUES][TEXT_SIZE];
	int n = text_categories[category].n_fields;

	/* the export starts a file per category with its header; here the
	 * header starts the category's rows in the one file */
	if (category != s->category) {
		fprintf(s->out, "time_utc");
		for (int i = 0; i < n; i++)
			fprintf(s->out, ",%s", text_categories[category].fields[i].csv_name);
		fprintf(s->out, "\r\n");
	}
	naive_time(ms, time);
	for (int i = 0; i < n; i++)
		naive_field(&text_categories[category].fields[i], category, values[i], FALSE, text[i]);
	if (n == 1)
		fprintf(s->out, "%s,%s\r\n", time, text[0]);
	else
		fprintf(s->out, "%s,%s,%s,%s\r\n", time, text[0], text[1], text[2]);
	s->n_records++;
}

static void
same_output_json(SameOutput *s, gint64 ms, int category, const gint32 *values)
{
	const TextField *fields = text_categories[category].fields;
	char time[TEXT_SIZE], text[AMU_SAMPLE_MAX_VALUES][TEXT_SIZE];
	int n = text_categories[category].n_fields;

	naive_time(ms, time);
	for (int i = 0; i < n; i++)
		naive_field(&fields[i], category, values[i], TRUE, text[i]);
	if (n == 1)
		fprintf(s->out, "%s{\"time\":\"%s\",\"category\":\"%s\",\"%s\":%s}", s->n_records == 0 ? "\n" : ",\n",
			time, text_categories[category].name, fields[0].json_name, text[0]);
	else
		fprintf(s->out, "%s{\"time\":\"%s\",\"category\":\"%s\",\"%s\":%s,\"%s\":%s,\"%s\":%s}",
			s->n_records == 0 ? "\n" : ",\n", time, text_categories[category].name, fields[0].json_name,
			text[0], fields[1].json_name, text[1], fields[2].json_name, text[2]);
	s->n_records++;
}

static void
same_output_fhir(SameOutput *s, gint64 ms, int category, const gint32 *values)
{
	const FhirText *text = NULL;
	gint64 period_ms = 0;
	char id[TEXT_SIZE], start[TEXT_SIZE], end[TEXT_SIZE], effective[160], value[TEXT_SIZE];

	if (category == AMU_CATEGORY_SLEEP_STAGE) {
		if (values[0] > 0 && values[0] < (gint32)G_N_ELEMENTS(fhir_sleep_texts))
			text = &fhir_sleep_texts[values[0]];
		period_ms = 30000; /* an epoch */
	} else if (category > 0 && category < (int)G_N_ELEMENTS(fhir_texts)) {
		text = &fhir_texts[category];
		if (category == AMU_CATEGORY_STEPS)
			period_ms = 60000;
	}
	if (text == NULL || text->codings == NULL)
		return; /* awake: no Observation */
	fake_uuid(id, ms, category);
	naive_time(ms, start);
	if (period_ms == 0) {
		snprintf(effective, sizeof(effective), "\"effectiveDateTime\":\"%s\"", start);
	} else {
		naive_time(ms + period_ms, end);
		snprintf(effective, sizeof(effective), "\"effectivePeriod\":{\"start\":\"%s\",\"end\":\"%s\"}", start,
			 end);
	}
	switch (category) {
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_RESPIRATORY_RATE:
		snprintf(value, sizeof(value), "%.1f", values[0] / 10.0);
		break;
	case AMU_CATEGORY_SKIN_TEMP:
		snprintf(value, sizeof(value), "%.2f", values[0] / 100.0);
		break;
	case AMU_CATEGORY_SLEEP_STAGE:
		snprintf(value, sizeof(value), "%.1f", period_ms / 60000.0); /* minutes */
		break;
	default:
		snprintf(value, sizeof(value), "%d", values[0]);
		break;
	}
	fprintf(s->out,
		"%s{\"fullUrl\":\"urn:uuid:%s\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"%s\","
		"\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":"
		"\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"%s\",\"display\":\"%s\"}]}],"
		"\"code\":{\"coding\":[%s],\"text\":\"%s\"},\"subject\":{\"display\":\"%s\"},"
		"\"device\":{\"display\":\"%s (%s)\"},%s,\"valueQuantity\":{\"value\":%s,\"unit\":\"%s\","
		"\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}}}",
		s->n_records == 0 ? ",\"entry\":[\n" : ",\n", id, id, text->category, text->category_display,
		text->codings, text->text, s->head->name, s->head->name, s->head->model, effective, value, text->unit,
		text->ucum);
	s->n_records++;
}

static void
same_output_gpx(SameOutput *s, gint64 ms, int category, const gint32 *values)
{
	char time[TEXT_SIZE];
	const char *before = "";
	gint32 longitude = values[1];

	if (category != AMU_CATEGORY_LOCATION)
		return;
	if (!s->gpx_in_track) {
		fprintf(s->out, " <trk>\n  <name>%s</name>\n  <trkseg>\n", s->head->name);
		s->gpx_in_track = TRUE;
	} else if (ms - s->gpx_last_ms > GPX_SEGMENT_GAP_MS) {
		before = "  </trkseg>\n  <trkseg>\n";
	}
	s->gpx_last_ms = ms;
	if (longitude == 1800000000)
		longitude = -1800000000; /* GPX's longitudeType stops short of 180 */
	naive_time(ms, time);
	fprintf(s->out, "%s   <trkpt lat=\"%.7f\" lon=\"%.7f\"><ele>%.2f</ele><time>%s</time></trkpt>\n", before,
		values[0] / 1e7, longitude / 1e7, values[2] / 100.0, time);
	s->n_records++;
}

static void
same_output_end(SameOutput *s)
{
	switch (s->format) {
	case AMU_EXPORT_FORMAT_CSV:
		break;
	case AMU_EXPORT_FORMAT_JSON:
		fputs("\n]}\n", s->out);
		break;
	case AMU_EXPORT_FORMAT_FHIR:
		fputs(s->n_records > 0 ? "\n]}\n" : "}\n", s->out);
		break;
	case AMU_EXPORT_FORMAT_GPX:
		if (s->gpx_in_track)
			fputs("  </trkseg>\n </trk>\n", s->out);
		fputs("</gpx>\n", s->out);
		break;
	}
}

/* The same-output baseline: the baseline's SELECT, one fprintf() a row of
 * the format's record text into one file with the writer's buffer size,
 * fsync at the end. @categories: of the rows, in order. */
gboolean
bench_baseline_same_output_run(const BenchDataSet *set, AmuExportFormat format, const BenchExportHead *head,
			       const char *out_path, double *seconds, guint64 *rows, BenchCategoryList *categories,
			       GError **error)
{
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) select = NULL;
	g_autofree char *buffer = g_malloc(BENCH_BASELINE_BUFFER_SIZE);
	SameOutput s = {.format = format, .head = head, .categories = categories};
	int rc;
	double t0;

	if (!baseline_open(set, format, out_path, buffer, &db, &select, &s.out, &t0, error))
		return FALSE;
	categories->n = 0;
	same_output_begin(&s);
	*rows = 0;
	while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
		gint64 ms = sqlite3_column_int64(select, 0);
		int category = sqlite3_column_int(select, 1);
		gint32 values[AMU_SAMPLE_MAX_VALUES];

		if (category < AMU_CATEGORY_FIRST || category > AMU_CATEGORY_LAST) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s: a row of category %d",
				    set->baseline_db, category);
			fclose(s.out);
			return FALSE;
		}
		for (int v = 0; v < AMU_SAMPLE_MAX_VALUES; v++)
			values[v] = sqlite3_column_int(select, 2 + v);
		switch (format) {
		case AMU_EXPORT_FORMAT_CSV:
			same_output_csv(&s, ms, category, values);
			break;
		case AMU_EXPORT_FORMAT_JSON:
			same_output_json(&s, ms, category, values);
			break;
		case AMU_EXPORT_FORMAT_FHIR:
			same_output_fhir(&s, ms, category, values);
			break;
		case AMU_EXPORT_FORMAT_GPX:
			same_output_gpx(&s, ms, category, values);
			break;
		}
		if (category != s.category && categories->n < G_N_ELEMENTS(categories->ids))
			categories->ids[categories->n++] = category;
		s.category = category;
		(*rows)++;
	}
	if (rc == SQLITE_DONE)
		same_output_end(&s);
	if (rc != SQLITE_DONE || fflush(s.out) != 0 || ferror(s.out) || fsync(fileno(s.out)) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "same-output baseline %s: %s", out_path,
			    rc != SQLITE_DONE ? sqlite3_errmsg(db) : g_strerror(errno));
		fclose(s.out);
		return FALSE;
	}
	fclose(s.out);
	*seconds = bench_wall_seconds() - t0;
	return TRUE;
}

/* a file read a line at a time with getline() */
typedef struct {
	FILE *file;
	char *path;
	char *line;
	size_t size;
	ssize_t len; /* of line, -1 at the end */
} LineReader;

static gboolean
line_reader_open(LineReader *reader, const char *path, GError **error)
{
	reader->file = fopen(path, "re");
	if (reader->file == NULL) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	g_free(reader->path);
	reader->path = g_strdup(path);
	return TRUE;
}

/* FALSE at the end of the file (reader->len is then -1) */
static gboolean
line_reader_next(LineReader *reader)
{
	reader->len = reader->file != NULL ? getline(&reader->line, &reader->size, reader->file) : -1;
	return reader->len >= 0;
}

static void
line_reader_close(LineReader *reader)
{
	if (reader->file != NULL)
		fclose(reader->file);
	reader->file = NULL;
}

static void
line_reader_clear(LineReader *reader)
{
	line_reader_close(reader);
	g_clear_pointer(&reader->path, g_free);
	free(reader->line);
	reader->line = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(LineReader, line_reader_clear)

/* equal, but that a FHIR entry's two ids (36 characters each) may differ */
static gboolean
record_lines_equal(AmuExportFormat format, const LineReader *a, const LineReader *b)
{
	static const char first_id[] = "{\"fullUrl\":\"urn:uuid:";
	static const char second_id[] = "\",\"resource\":{\"resourceType\":\"Observation\",\"id\":\"";
	const gsize first = sizeof(first_id) - 1, second = first + FHIR_ID_LEN + sizeof(second_id) - 1;
	const gsize len = (gsize)a->len;

	if (a->len != b->len)
		return FALSE;
	if (format != AMU_EXPORT_FORMAT_FHIR || len < second + FHIR_ID_LEN ||
	    memcmp(a->line, first_id, first) != 0)
		return memcmp(a->line, b->line, len) == 0;
	return memcmp(a->line, b->line, first) == 0 &&
	       memcmp(a->line + first + FHIR_ID_LEN, b->line + first + FHIR_ID_LEN, second - first - FHIR_ID_LEN) ==
		   0 &&
	       memcmp(a->line + second + FHIR_ID_LEN, b->line + second + FHIR_ID_LEN, len - second - FHIR_ID_LEN) == 0;
}

/* Holds the same-output baseline to the export, after the first run: past
 * the head (which holds the time of writing), every line it wrote is the
 * export's, byte for byte (FHIR: but for the ids, of the same length); for
 * CSV its one file is the export's files in category order. Its size must
 * be within SAME_OUTPUT_TOLERANCE of the export's data files. */
gboolean
bench_baseline_same_output_check(AmuExportFormat format, const char *export_dir,
				 const BenchCategoryList *categories, guint64 export_bytes, const char *same_path,
				 guint64 same_bytes, GError **error)
{
	/* the last line of the head; CSV has none */
	static const char *const markers[] = {
		[AMU_EXPORT_FORMAT_CSV] = NULL,
		[AMU_EXPORT_FORMAT_JSON] = "\"samples\":[",
		[AMU_EXPORT_FORMAT_FHIR] = "\"entry\":[",
		[AMU_EXPORT_FORMAT_GPX] = "</metadata>",
	};
	static const char *const files[] = {
		[AMU_EXPORT_FORMAT_CSV] = NULL,
		[AMU_EXPORT_FORMAT_JSON] = "samples.json",
		[AMU_EXPORT_FORMAT_FHIR] = "bundle.json",
		[AMU_EXPORT_FORMAT_GPX] = "track.gpx",
	};
	const char *format_name = amu_export_format_to_string(format);
	g_auto(LineReader) same = {0};
	g_auto(LineReader) export = {0};
	gboolean in_records = markers[format] == NULL;
	guint next_file = 0;
	guint64 line = 0, compared = 0;
	double off = (double)same_bytes / (double)MAX(export_bytes, 1) - 1;

	if (!line_reader_open(&same, same_path, error))
		return FALSE;
	if (files[format] != NULL) {
		g_autofree char *path = g_build_filename(export_dir, files[format], NULL);
		if (!line_reader_open(&export, path, error))
			return FALSE;
	}
	while (line_reader_next(&same)) {
		line++;
		if (format == AMU_EXPORT_FORMAT_CSV && g_str_has_prefix(same.line, "time_utc")) {
			g_autofree char *path = NULL;

			if (export.file != NULL && line_reader_next(&export)) {
				g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
					    "csv: %s goes on where the same-output baseline's category ends (line %"
					    G_GUINT64_FORMAT ")",
					    export.path, line);
				return FALSE;
			}
			line_reader_close(&export);
			if (next_file >= categories->n) {
				g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
					    "csv: more headers in %s than categories", same_path);
				return FALSE;
			}
			path = g_strdup_printf("%s/%s.csv", export_dir, text_categories[categories->ids[next_file++]].name);
			if (!line_reader_open(&export, path, error))
				return FALSE;
		}
		if (!line_reader_next(&export)) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "%s: the export's %s ends before line %" G_GUINT64_FORMAT " of the same-output baseline",
				    format_name, export.path != NULL ? export.path : "file", line);
			return FALSE;
		}
		if (!in_records) {
			gboolean same_ends = strstr(same.line, markers[format]) != NULL;
			gboolean export_ends = strstr(export.line, markers[format]) != NULL;

			if (same_ends == export_ends) {
				in_records = same_ends;
				continue;
			}
		} else if (record_lines_equal(format, &export, &same)) {
			compared++;
			continue;
		}
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "%s: line %" G_GUINT64_FORMAT " of the same-output baseline differs from the export's %s:\n"
			    "  export: %.400s\n  same:   %.400s",
			    format_name, line, export.path, export.line, same.line);
		return FALSE;
	}
	if (line_reader_next(&export)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "%s: %s goes on past the same-output baseline's %" G_GUINT64_FORMAT " lines", format_name,
			    export.path, line);
		return FALSE;
	}
	if (format == AMU_EXPORT_FORMAT_CSV && next_file != categories->n) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "csv: the same-output baseline wrote %u headers for %u categories", next_file,
			    categories->n);
		return FALSE;
	}
	if (compared == 0 || off > SAME_OUTPUT_TOLERANCE || off < -SAME_OUTPUT_TOLERANCE) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "%s: the same-output baseline wrote %" G_GUINT64_FORMAT " bytes (%" G_GUINT64_FORMAT
			    " record lines alike), the export's data files %" G_GUINT64_FORMAT
			    ": they must be within %.0f%% of each other",
			    format_name, same_bytes, compared, export_bytes, 100 * SAME_OUTPUT_TOLERANCE);
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------ disk */

/* The disk baseline: @bytes from a buffer of random bytes (each block
 * stamped with its number, so no two are alike) with write() into a new
 * file in @dir, then fsync of the file and of @dir, as the export ends. */
gboolean
bench_baseline_disk_run(const char *dir, const char *path, guint8 *data, guint64 bytes, double *seconds,
			GError **error)
{
	guint64 done = 0, n_block = 0;
	double t0 = bench_wall_seconds();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), dir_fd;

	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	while (done < bytes) {
		size_t len = (size_t)MIN(bytes - done, BENCH_BASELINE_BUFFER_SIZE);
		ssize_t n;

		memcpy(data, &n_block, sizeof(n_block));
		n_block++;
		for (size_t written = 0; written < len; written += (size_t)n) {
			n = write(fd, data + written, len - written);
			if (n < 0 && errno == EINTR) {
				n = 0;
				continue;
			}
			if (n <= 0) {
				g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path,
					    n < 0 ? g_strerror(errno) : "wrote nothing");
				close(fd);
				return FALSE;
			}
		}
		done += len;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0 || fsync(dir_fd) != 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", dir, g_strerror(errno));
		if (dir_fd >= 0)
			close(dir_fd);
		return FALSE;
	}
	close(dir_fd);
	*seconds = bench_wall_seconds() - t0;
	return TRUE;
}

/* ------------------------------------------------------------ legend */

void
bench_baseline_print_legend(const BenchDataSet *all, const BenchDataSet *location)
{
	g_autofree char *plan_all = baseline_plan(all, AMU_EXPORT_FORMAT_CSV);
	g_autofree char *plan_fhir = baseline_plan(all, AMU_EXPORT_FORMAT_FHIR);
	g_autofree char *plan_gpx = baseline_plan(location, AMU_EXPORT_FORMAT_GPX);

	printf("baseline: plain SQLite table (timestamp_ms, category, v1, v2, v3), one row a sample, indexed on\n"
	       "          (category, timestamp_ms); SELECT ... ORDER BY category, timestamp_ms + fprintf(\"%%lld,%%d,%%d,%%d,%%d\\n\")\n"
	       "          with a %d KiB buffer, fsync at the end; same samples as the format carries (csv, json: all;\n"
	       "          fhir: no battery, location or toy events; gpx: location only)\n",
	       BENCH_BASELINE_BUFFER_SIZE / 1024);
	printf("          plan: %s | fhir: %s | gpx: %s\n", plan_all, plan_fhir, plan_gpx);
	printf("disk alone: as many bytes as the export wrote (its data files and manifest) with write() from a\n"
	       "          %d KiB buffer of random bytes (each block numbered, so none repeats) into one new file in\n"
	       "          the same file system, fsync of the file and of its directory: what the disk needs for them\n",
	       BENCH_BASELINE_BUFFER_SIZE / 1024);
	printf("same output via fprintf: the baseline's SELECT and one fprintf() a row of the record text the\n"
	       "          format writes, times by gmtime_r() + strftime() a row, decimals by %%.Nf of a double, %d KiB\n"
	       "          buffer, fsync at the end; one file: csv each category's header and rows as the export\n"
	       "          writes them (the export writes a file per category), json the objects, fhir the Observation\n"
	       "          entries with the same literal text but ids made of time and category instead of keyed\n"
	       "          UUIDs (same length), gpx the trkpt elements; heads as the export's; after the first run\n"
	       "          each of its lines past the head is checked against the export's files (byte for byte;\n"
	       "          fhir but for the ids) and its size to within %.0f%% of the export's data files\n",
	       BENCH_BASELINE_BUFFER_SIZE / 1024, 100 * SAME_OUTPUT_TOLERANCE);
}
