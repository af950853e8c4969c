/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: data export, each figure against baselines measured in the
 * same run.
 *   rate  amu_data_export_run() in process, per format, over a band synced
 *         for 1 and for 30 days (GPX: a watch, location only); the export's
 *         figure includes reading the sealed blocks (XChaCha20-Poly1305),
 *         fsyncing the files and the directory, the SHA-256 of every file,
 *         the signed manifest and the access log entry. Three baselines,
 *         interleaved with it run by run:
 *         - a plain SQLite table of the same samples read with one SELECT
 *           and written with fprintf("%lld,%d,%d,%d,%d\n"), 23 bytes a
 *           sample (the target is a ratio to this one);
 *         - the disk alone: as many bytes as the export wrote, from a
 *           buffer of random bytes with write(), fsync of the file and its
 *           directory: about the least time any code needs to make
 *           that many bytes durable here;
 *         - the same output: the same SELECT with one fprintf() a row of
 *           the text the format writes (CSV rows and headers, JSON objects,
 *           FHIR Observations, GPX points), times through gmtime_r() and
 *           strftime(), decimals through printf of a double: what a plain
 *           program writing the same bytes costs. After the first run
 *           each of its lines past the head is checked against the
 *           export's files, and its size against theirs.
 *         A missed target is explained with the last two at the end.
 *   rss   peak RSS of 'amulet export' of 30 days against 'amulet devices'
 * Usage: bench-export [rate] [rss]; no argument runs both. The data is made
 * with amulet-sim and the real 'amulet pair', 'sync' and 'consent grant'
 * first (not timed). Every child is killed and reaped and the temporary
 * directory removed, also when a part fails or the run is interrupted.
 * Times are wall clock: the fsyncs are part of an export. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "amu-export-private.h"
#include "amu-private.h"
#include "amu-store.h"
#include "amulet/amulet.h"
#include "bench-children.h"

#define SEED "42"
#define GRANT_RECIPIENT "bench-export"
#define GRANT_PURPOSE "export benchmark"
#define START "2026-03-02" /* seed 42's watch has a run with GPS that day */
#define RATE_REPS 3
#define CSV_TARGET_RATE 2e6
#define RATIO_TARGET 0.5
#define RSS_TARGET_MIB 32.0
#define BASELINE_BUFFER_SIZE (64 * 1024) /* the export writer's buffer */
#define WRITER_BUFFER_SIZE (64 * 1024)   /* what the writer hashes at a time */
#define HASH_READ_SIZE (1024 * 1024)

static const char *tool_amulet = AMU_BENCH_BUILDDIR "/tools/amulet";
static const char *tool_sim = AMU_BENCH_BUILDDIR "/tools/amulet-sim";
static const char *temp_root; /* bench_children_init()'s scratch directory */

static int
compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
median(const double *values, size_t n)
{
	double sorted[16];

	g_assert(n <= G_N_ELEMENTS(sorted));
	memcpy(sorted, values, n * sizeof(double));
	qsort(sorted, n, sizeof(double), compare_doubles);
	return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static double
mib(long maxrss_kib)
{
	return (double)maxrss_kib / 1024.0;
}

static double
self_cpu_seconds(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return bench_cpu_seconds(&usage);
}

/* Runs @argv to its end (killed after @timeout_s); fails unless it exits 0.
 * @usage: its peak RSS and CPU; @seconds: wall time from start to exit. */
static gboolean
run_tool(const char *const *argv, const char *out_path, const char *err_path, double timeout_s,
	 struct rusage *usage, double *seconds, GError **error)
{
	g_autofree char *command = g_strjoinv(" ", (char **)argv);
	struct rusage ignored;
	int status = 0;
	double t0 = bench_wall_seconds();
	pid_t pid = bench_spawn(argv, out_path, err_path, error);

	if (pid < 0)
		return FALSE;
	if (!bench_child_wait(pid, timeout_s, &status, usage != NULL ? usage : &ignored)) {
		kill(pid, SIGKILL);
		bench_child_wait(pid, -1, NULL, NULL);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "'%s' did not finish within %.0f s", command,
			    timeout_s);
		return FALSE;
	}
	if (seconds != NULL)
		*seconds = bench_wall_seconds() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		g_autofree char *err = NULL;
		g_file_get_contents(err_path, &err, NULL, NULL);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "'%s' failed (status %d): %s", command, status,
			    err != NULL ? g_strstrip(err) : "");
		return FALSE;
	}
	return TRUE;
}

/* the JSON object a tool printed with --json */
static JsonObject *
tool_json(const char *path, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;

	if (!json_parser_load_from_file(parser, path, error))
		return NULL;
	root = json_parser_get_root(parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s holds no JSON object", path);
		return NULL;
	}
	return json_object_ref(json_node_get_object(root));
}

/* bytes in the regular files of @dir */
static guint64
dir_bytes(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;
	guint64 total = 0;

	while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *path = g_build_filename(dir, name, NULL);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			total += (guint64)st.st_size;
	}
	return total;
}

/* ------------------------------------------------------------ data sets */

typedef struct {
	const char *name;	/* the device's name on the host, and of its files */
	const char *label;
	const char *profile;
	const char *days;
	const char *categories; /* every category the profile records */
	char *host;		/* the host's data dir */
	char *grant_id;		/* raw, all categories, all time */
	char *baseline_db;	/* the plain table */
	guint64 n_samples;
	guint64 n_location;
} DataSet;

enum { BAND_1, BAND_30, WATCH_1, WATCH_30, N_DATA_SETS };

#define BAND_CATEGORIES "heart_rate,steps,spo2,sleep_stage,skin_temp,respiratory_rate,battery"
static DataSet data_sets[N_DATA_SETS] = {
	[BAND_1] = {"band1", "band, 1 day", "band", "1", BAND_CATEGORIES},
	[BAND_30] = {"band30", "band, 30 days", "band", "30", BAND_CATEGORIES},
	[WATCH_1] = {"watch1", "watch, 1 day", "watch", "1", BAND_CATEGORIES ",location"},
	[WATCH_30] = {"watch30", "watch, 30 days", "watch", "30", BAND_CATEGORIES ",location"},
};
/* a second grant on BAND_1 over a range without samples: what every export costs */
static char *empty_grant_id;

static gboolean
sqlite_exec(sqlite3 *db, const char *sql, GError **error)
{
	char *message = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "%s: %s", sql, message);
		sqlite3_free(message);
		return FALSE;
	}
	return TRUE;
}

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
static gboolean
baseline_fill(DataSet *set, GError **error)
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
	if (!sqlite_exec(db,
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
	return sqlite_exec(db,
			   "COMMIT;"
			   "CREATE INDEX samples_order ON samples(category, timestamp_ms);"
			   "PRAGMA wal_checkpoint(TRUNCATE)",
			   error);
}

/* a grant of every category @set records, raw; over all time, or only
 * [@from, @to) when given; its id */
static char *
grant(const char *dir, DataSet *set, const char *from, const char *to, GError **error)
{
	g_autofree char *out = g_build_filename(dir, "grant.json", NULL);
	g_autofree char *err = g_build_filename(dir, "grant.err", NULL);
	g_autoptr(JsonObject) json = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	const char *const fixed[] = {tool_amulet, "--data-dir", set->host, "--json", "consent", "grant", set->name,
				     "--categories", set->categories, "--purpose", GRANT_PURPOSE,
				     "--recipient-name", GRANT_RECIPIENT, "--yes"};

	for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++)
		g_ptr_array_add(argv, (gpointer)fixed[i]);
	if (from != NULL) {
		g_ptr_array_add(argv, (gpointer) "--from");
		g_ptr_array_add(argv, (gpointer)from);
		g_ptr_array_add(argv, (gpointer) "--to");
		g_ptr_array_add(argv, (gpointer)to);
	}
	g_ptr_array_add(argv, NULL);
	if (!run_tool((const char *const *)argv->pdata, out, err, 30, NULL, NULL, error) ||
	    (json = tool_json(out, error)) == NULL)
		return NULL;
	if (!json_object_has_member(json, "id")) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "amulet consent grant --json printed no id");
		return NULL;
	}
	return g_strdup(json_object_get_string_member(json, "id"));
}

/* A device from amulet-sim, paired and synced by the real tool, granted
 * everything it records, raw, over all time. */
static gboolean
data_set_prepare(const char *dir, DataSet *set, GError **error)
{
	g_autofree char *sock = g_strdup_printf("%s/%s.sock", dir, set->name);
	g_autofree char *state = g_strdup_printf("%s/%s-state", dir, set->name);
	g_autofree char *log = g_strdup_printf("%s/%s.log", dir, set->name);
	g_autofree char *address = g_strdup_printf("sim:%s", sock);
	g_autofree char *out = g_build_filename(dir, "out", NULL);
	g_autofree char *err = g_build_filename(dir, "err", NULL);
	g_autoptr(JsonObject) json = NULL;
	const char *sim[] = {tool_sim, "--listen", sock, "--state", state, "--profile", set->profile,
			     "--days", set->days, "--seed", SEED, "--start", START, NULL};
	const char *pair[] = {tool_amulet, "--data-dir", set->host, "pair", address, "--name", set->name, "--yes", NULL};
	const char *sync[] = {tool_amulet, "--data-dir", set->host, "--json", "sync", set->name, NULL};
	pid_t pid = bench_spawn(sim, log, NULL, error);

	if (pid < 0 || !bench_sim_wait_ready(pid, log, bench_wall_seconds() + 120, error) ||
	    !run_tool(pair, out, err, 30, NULL, NULL, error) || !run_tool(sync, out, err, 600, NULL, NULL, error) ||
	    (json = tool_json(out, error)) == NULL)
		return FALSE;
	if (!json_object_get_boolean_member_with_default(json, "ok", FALSE) ||
	    json_object_get_int_member_with_default(json, "samples", 0) == 0 ||
	    json_object_get_int_member_with_default(json, "samples", 0) !=
		json_object_get_int_member_with_default(json, "expected", -1)) {
		g_autofree char *text = NULL;
		g_file_get_contents(out, &text, NULL, NULL);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "amulet sync %s: %s", set->name, text);
		return FALSE;
	}
	/* the simulator is done: the host holds the data */
	bench_children_stop_all();
	bench_remove_tree(state);
	set->grant_id = grant(dir, set, NULL, NULL, error);
	if (set->grant_id == NULL || !baseline_fill(set, error))
		return FALSE;
	if ((guint64)json_object_get_int_member(json, "samples") != set->n_samples) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: synced %" G_GINT64_FORMAT " samples, read back %"
			    G_GUINT64_FORMAT, set->name, json_object_get_int_member(json, "samples"), set->n_samples);
		return FALSE;
	}
	return TRUE;
}

static gboolean
setup(const char *dir, GError **error)
{
	for (int i = 0; i < N_DATA_SETS; i++) {
		DataSet *set = &data_sets[i];
		set->host = g_strdup_printf("%s/host-%s", dir, set->name);
		set->baseline_db = g_strdup_printf("%s/baseline-%s.db", dir, set->name);
		if (!data_set_prepare(dir, set, error)) {
			g_prefix_error(error, "setting up %s: ", set->label);
			return FALSE;
		}
	}
	empty_grant_id = grant(dir, &data_sets[BAND_1], "2000-01-02", "2000-01-03", error);
	if (empty_grant_id == NULL)
		return FALSE;
	printf("data: amulet-sim (seed " SEED ", from " START ") paired and synced with 'amulet pair', 'amulet sync';\n"
	       "'amulet consent grant --yes' of every recorded category, raw, over all time\n");
	for (int i = 0; i < N_DATA_SETS; i++)
		printf("  %-15s %8" G_GUINT64_FORMAT " samples, %6" G_GUINT64_FORMAT " of them location\n",
		       data_sets[i].label, data_sets[i].n_samples, data_sets[i].n_location);
	return TRUE;
}

static void
data_sets_clear(void)
{
	for (int i = 0; i < N_DATA_SETS; i++) {
		g_clear_pointer(&data_sets[i].host, g_free);
		g_clear_pointer(&data_sets[i].grant_id, g_free);
		g_clear_pointer(&data_sets[i].baseline_db, g_free);
	}
	g_clear_pointer(&empty_grant_id, g_free);
}

/* ------------------------------------------------------------ rate */

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

/* The baseline: one SELECT in the export's order, one fprintf() a row into
 * a file with the writer's buffer size, fsync at the end. */
static gboolean
baseline_run(const DataSet *set, AmuExportFormat format, const char *out_path, double *seconds, guint64 *rows,
	     GError **error)
{
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) select = NULL;
	g_autofree char *sql = g_strdup_printf("SELECT timestamp_ms, category, v1, v2, v3 FROM samples%s"
					       " ORDER BY category, timestamp_ms",
					       format_filter(format));
	g_autofree char *buffer = g_malloc(BASELINE_BUFFER_SIZE);
	FILE *out;
	int rc;
	double t0;

	if (sqlite3_open_v2(set->baseline_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "cannot open %s", set->baseline_db);
		return FALSE;
	}
	t0 = bench_wall_seconds();
	if (!sqlite_prepare(db, sql, &select, error))
		return FALSE;
	out = fopen(out_path, "wx");
	if (out == NULL) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", out_path, g_strerror(errno));
		return FALSE;
	}
	setvbuf(out, buffer, _IOFBF, BASELINE_BUFFER_SIZE);
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
baseline_plan(const DataSet *set, AmuExportFormat format)
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

/* what the export writes about the device and the grant, read from the
 * host as the export reads it */
typedef struct {
	char *name;
	char *id;
	char *model; /* "" without a disclosure, as the export has it */
	char *profile;
	const char *grant_id;
	gint64 created_ms;
} ExportHead;

static void
export_head_clear(ExportHead *head)
{
	g_clear_pointer(&head->name, g_free);
	g_clear_pointer(&head->id, g_free);
	g_clear_pointer(&head->model, g_free);
	g_clear_pointer(&head->profile, g_free);
}

static gboolean
export_head_init(ExportHead *head, AmuContext *context, const DataSet *set, GError **error)
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

/* the categories of the rows in the order they came: the export's CSV
 * files that the same-output baseline's one file stands for */
typedef struct {
	int ids[AMU_CATEGORY_LAST + 1];
	guint n;
} CategoryList;

typedef struct {
	AmuExportFormat format;
	const ExportHead *head;
	FILE *out;
	guint64 n_records;  /* written so far; a FHIR awake epoch writes none */
	int category;		  /* of the previous row, 0 before the first */
	CategoryList *categories; /* every category met, in order */
	gboolean gpx_in_track;
	gint64 gpx_last_ms;
} SameOutput;

static void
same_output_begin(SameOutput *s)
{
	const ExportHead *head = s->head;
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
			head->name, head->id, head->model, head->profile, head->grant_id, GRANT_RECIPIENT, GRANT_PURPOSE,
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
			head->name, head->id, GRANT_RECIPIENT, GRANT_PURPOSE, head->grant_id, created);
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
static gboolean
same_output_run(const DataSet *set, AmuExportFormat format, const ExportHead *head, const char *out_path,
		double *seconds, guint64 *rows, CategoryList *categories, GError **error)
{
	g_autoptr(sqlite3) db = NULL;
	g_autoptr(sqlite3_stmt) select = NULL;
	g_autofree char *sql = g_strdup_printf("SELECT timestamp_ms, category, v1, v2, v3 FROM samples%s"
					       " ORDER BY category, timestamp_ms",
					       format_filter(format));
	g_autofree char *buffer = g_malloc(BASELINE_BUFFER_SIZE);
	SameOutput s = {.format = format, .head = head, .categories = categories};
	int rc;
	double t0;

	if (sqlite3_open_v2(set->baseline_db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "cannot open %s", set->baseline_db);
		return FALSE;
	}
	t0 = bench_wall_seconds();
	if (!sqlite_prepare(db, sql, &select, error))
		return FALSE;
	s.out = fopen(out_path, "wx");
	if (s.out == NULL) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", out_path, g_strerror(errno));
		return FALSE;
	}
	setvbuf(s.out, buffer, _IOFBF, BASELINE_BUFFER_SIZE);
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
static gboolean
same_output_check(AmuExportFormat format, const char *export_dir, const CategoryList *categories,
		  guint64 export_bytes, const char *same_path, guint64 same_bytes, GError **error)
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
static gboolean
disk_run(const char *dir, const char *path, guint8 *data, guint64 bytes, double *seconds, GError **error)
{
	guint64 done = 0, n_block = 0;
	double t0 = bench_wall_seconds();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), dir_fd;

	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	while (done < bytes) {
		size_t len = (size_t)MIN(bytes - done, BASELINE_BUFFER_SIZE);
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

typedef struct {
	double seconds;
	double cpu;
	double hash_seconds; /* the writer's hashing of the data files, done again after the run */
	guint64 samples;
	guint64 bytes;	    /* every file in the directory: the data files and the manifest */
	guint64 data_bytes; /* the data files alone */
} ExportRun;

/* Hashes @path as the export writer does, one buffer at a time with
 * nettle, timing only the hashing: the file is read back a MiB at a time
 * (not timed), so the page cache and the disk stay out of the figure. */
static gboolean
hash_like_writer(const char *path, double *seconds, GError **error)
{
	g_autofree uint8_t *data = g_malloc(HASH_READ_SIZE);
	struct sha256_ctx ctx;
	uint8_t digest[SHA256_DIGEST_SIZE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		return FALSE;
	}
	sha256_init(&ctx);
	*seconds = 0;
	while ((n = read(fd, data, HASH_READ_SIZE)) > 0 || (n < 0 && errno == EINTR)) {
		double t0 = bench_wall_seconds();

		for (ssize_t done = 0; done < n; done += WRITER_BUFFER_SIZE)
			sha256_update(&ctx, (size_t)MIN(n - done, WRITER_BUFFER_SIZE), data + done);
		*seconds += bench_wall_seconds() - t0;
	}
	if (n < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "%s: %s", path, g_strerror(errno));
		close(fd);
		return FALSE;
	}
	close(fd);
	sha256_digest(&ctx, sizeof(digest), digest);
	return TRUE;
}

static gboolean
export_run(AmuContext *context, const char *grant_id, AmuExportFormat format, const char *out_dir, ExportRun *run,
	   GError **error)
{
	g_autoptr(AmuDataExport) export = NULL;
	GPtrArray *files;
	double t0 = bench_wall_seconds(), cpu0 = self_cpu_seconds();

	export = amu_data_export_new(context, grant_id, format, out_dir);
	if (!amu_data_export_run(export, NULL, NULL, NULL, error))
		return FALSE;
	run->seconds = bench_wall_seconds() - t0;
	run->cpu = self_cpu_seconds() - cpu0;
	run->samples = amu_data_export_get_n_samples(export);
	run->bytes = dir_bytes(out_dir);
	/* the SHA-256 the writer computed as it wrote: the same bytes through
	 * the same nettle calls, buffer by buffer */
	files = amu_data_export_get_files(export);
	run->hash_seconds = 0;
	run->data_bytes = 0;
	for (guint i = 0; i < files->len; i++) {
		g_autofree char *path = g_build_filename(out_dir, g_ptr_array_index(files, i), NULL);
		double seconds = 0;
		struct stat st;

		if (!hash_like_writer(path, &seconds, error))
			return FALSE;
		run->hash_seconds += seconds;
		if (stat(path, &st) == 0)
			run->data_bytes += (guint64)st.st_size;
	}
	return TRUE;
}

static int
compare_runs(const void *a, const void *b)
{
	return compare_doubles(&((const ExportRun *)a)->seconds, &((const ExportRun *)b)->seconds);
}

typedef struct {
	AmuExportFormat format;
	int data_set;
} RateCase;

/* a case's medians, for the summary at the end */
typedef struct {
	gboolean missed;
	double export_s;
	double target_s; /* the longest the export may take to meet its targets */
	double disk_s;
	double same_s;
	guint64 bytes; /* the export's, which the disk baseline wrote too */
} RateResult;

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ExportHead, export_head_clear)

/* @block: the disk baseline's buffer of random bytes */
static gboolean
rate_case(const char *dir, const RateCase *c, guint8 *block, RateResult *result, GError **error)
{
	const DataSet *set = &data_sets[c->data_set];
	const char *format_name = amu_export_format_to_string(c->format);
	g_autoptr(AmuContext) context = amu_context_new(set->host, error);
	g_auto(ExportHead) head = {0};
	ExportRun runs[RATE_REPS];
	double baseline_s[RATE_REPS], disk_s[RATE_REPS], same_s[RATE_REPS];
	double base_s, disk_med, same_med, export_rate, base_rate, same_rate, ratio;
	guint64 rows = 0, same_rows = 0, baseline_bytes = 0, same_bytes = 0;
	const ExportRun *m;
	gboolean rate_ok, ratio_ok;

	if (context == NULL || !export_head_init(&head, context, set, error))
		return FALSE;
	/* interleaved, so drift in the disk or the machine hits all alike */
	for (int rep = 0; rep < RATE_REPS; rep++) {
		g_autofree char *out_dir = g_strdup_printf("%s/export-%d", dir, rep);
		g_autofree char *baseline_path = g_strdup_printf("%s/baseline-%d.txt", dir, rep);
		g_autofree char *disk_path = g_strdup_printf("%s/disk-%d.bin", dir, rep);
		g_autofree char *same_path = g_strdup_printf("%s/same-output-%d.txt", dir, rep);
		CategoryList categories = {{0}, 0};
		struct stat st;
		gboolean ok;

		/* each run starts with nothing dirty: the writeback of the one
		 * before (1.7 GB after a 30-day FHIR export) must not land on it */
		sync();
		ok = baseline_run(set, c->format, baseline_path, &baseline_s[rep], &rows, error);
		if (ok) {
			sync();
			ok = export_run(context, set->grant_id, c->format, out_dir, &runs[rep], error);
		}
		if (ok) {
			sync();
			ok = disk_run(dir, disk_path, block, runs[rep].bytes, &disk_s[rep], error);
		}
		if (ok) {
			sync();
			ok = same_output_run(set, c->format, &head, same_path, &same_s[rep], &same_rows, &categories,
					     error);
		}

		if (ok && stat(baseline_path, &st) == 0)
			baseline_bytes = (guint64)st.st_size;
		if (ok && stat(same_path, &st) == 0)
			same_bytes = (guint64)st.st_size;
		/* the export's own files are read once (not timed), to hold the
		 * baseline to them */
		if (ok && rep == 0)
			ok = same_output_check(c->format, out_dir, &categories, runs[0].data_bytes, same_path,
					       same_bytes, error);
		bench_remove_tree(out_dir);
		remove(baseline_path);
		remove(disk_path);
		remove(same_path);
		if (!ok)
			return FALSE;
		if (runs[rep].samples != rows || same_rows != rows) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "%s %s: the export wrote %" G_GUINT64_FORMAT " samples, the baseline %" G_GUINT64_FORMAT
				    ", the same-output baseline %" G_GUINT64_FORMAT,
				    format_name, set->label, runs[rep].samples, rows, same_rows);
			return FALSE;
		}
	}
	qsort(runs, RATE_REPS, sizeof(ExportRun), compare_runs);
	m = &runs[RATE_REPS / 2];
	base_s = median(baseline_s, RATE_REPS);
	disk_med = median(disk_s, RATE_REPS);
	same_med = median(same_s, RATE_REPS);
	export_rate = (double)m->samples / m->seconds;
	base_rate = (double)rows / base_s;
	same_rate = (double)rows / same_med;
	ratio = export_rate / base_rate;
	rate_ok = c->format != AMU_EXPORT_FORMAT_CSV || export_rate >= CSV_TARGET_RATE;
	ratio_ok = ratio >= RATIO_TARGET;
	result->missed = !rate_ok || !ratio_ok;
	result->export_s = m->seconds;
	result->target_s = base_s / RATIO_TARGET;
	if (c->format == AMU_EXPORT_FORMAT_CSV)
		result->target_s = MIN(result->target_s, (double)rows / CSV_TARGET_RATE);
	result->disk_s = disk_med;
	result->same_s = same_med;
	result->bytes = m->bytes;
	printf("%-4s %-15s %8" G_GUINT64_FORMAT "  export %7.3f M/s %8.1f ms  baseline %7.3f M/s %7.1f ms  "
	       "ratio %5.2f  (target %s>= %.1f)%s\n",
	       format_name, set->label, rows, export_rate / 1e6, m->seconds * 1e3, base_rate / 1e6, base_s * 1e3, ratio,
	       c->format == AMU_EXPORT_FORMAT_CSV ? ">= 2 M/s, " : "", RATIO_TARGET,
	       rate_ok && ratio_ok ? "" : "  MISSED");
	printf("     runs %.1f..%.1f ms, export CPU %.1f ms (%.0f%% of wall); bytes written: export %.1f MB "
	       "(%.0f a sample), baseline %.1f MB (%.0f a sample)\n",
	       runs[0].seconds * 1e3, runs[RATE_REPS - 1].seconds * 1e3, m->cpu * 1e3, 100 * m->cpu / m->seconds,
	       (double)m->bytes / 1e6, (double)m->bytes / (double)MAX(rows, 1), (double)baseline_bytes / 1e6,
	       (double)baseline_bytes / (double)MAX(rows, 1));
	printf("     of which SHA-256 of the data files (nettle, as the writer hashes each buffer it writes; "
	       "the same bytes hashed again after the run): "
	       "%.1f ms (%.0f%%)\n",
	       m->hash_seconds * 1e3, 100 * m->hash_seconds / m->seconds);
	printf("     disk alone: %.1f MB (the export's) in %.1f ms, %.0f MB/s; export at %.2f of the disk's rate "
	       "for its bytes\n",
	       (double)m->bytes / 1e6, disk_med * 1e3, (double)m->bytes / disk_med / 1e6, disk_med / m->seconds);
	printf("     same output via fprintf: %.3f M/s, %.1f ms, %.1f MB (%.0f a sample; the export's data files "
	       "%.1f MB, %.0f a sample); export ratio %.2f\n",
	       same_rate / 1e6, same_med * 1e3, (double)same_bytes / 1e6, (double)same_bytes / (double)MAX(rows, 1),
	       (double)m->data_bytes / 1e6, (double)m->data_bytes / (double)MAX(rows, 1), export_rate / same_rate);
	fflush(stdout);
	return TRUE;
}

/* what an export costs with nothing in it: grant check, files, fsyncs,
 * manifest, signature and access log entry */
static gboolean
rate_fixed_cost(const char *dir, GError **error)
{
	g_autoptr(AmuContext) context = amu_context_new(data_sets[BAND_1].host, error);
	g_autoptr(GPtrArray) access_log = NULL;
	double seconds[RATE_REPS];

	if (context == NULL || (access_log = amu_context_get_access_log(context, error)) == NULL)
		return FALSE;
	for (int rep = 0; rep < RATE_REPS; rep++) {
		g_autofree char *out_dir = g_strdup_printf("%s/empty-%d", dir, rep);
		ExportRun run;
		gboolean ok;

		sync();
		ok = export_run(context, empty_grant_id, AMU_EXPORT_FORMAT_CSV, out_dir, &run, error);
		bench_remove_tree(out_dir);
		if (!ok)
			return FALSE;
		seconds[rep] = run.seconds;
	}
	/* the grant lookup and the access log entry walk the whole consent ledger */
	printf("fixed cost of one export (csv, a grant over a day without samples): %.1f ms, median of %d;\n"
	       "  with %u entries in that host's access log before (one more with every export)\n",
	       median(seconds, RATE_REPS) * 1e3, RATE_REPS, access_log->len);
	return TRUE;
}

static gboolean
bench_rate(const char *dir, GError **error)
{
	static const RateCase cases[] = {
		{AMU_EXPORT_FORMAT_CSV, BAND_1},  {AMU_EXPORT_FORMAT_CSV, BAND_30},
		{AMU_EXPORT_FORMAT_JSON, BAND_1}, {AMU_EXPORT_FORMAT_JSON, BAND_30},
		{AMU_EXPORT_FORMAT_FHIR, BAND_1}, {AMU_EXPORT_FORMAT_FHIR, BAND_30},
		{AMU_EXPORT_FORMAT_GPX, WATCH_1}, {AMU_EXPORT_FORMAT_GPX, WATCH_30},
	};
	g_autofree char *plan_all = baseline_plan(&data_sets[BAND_30], AMU_EXPORT_FORMAT_CSV);
	g_autofree char *plan_fhir = baseline_plan(&data_sets[BAND_30], AMU_EXPORT_FORMAT_FHIR);
	g_autofree char *plan_gpx = baseline_plan(&data_sets[WATCH_30], AMU_EXPORT_FORMAT_GPX);
	g_autofree guint8 *block = g_malloc(BASELINE_BUFFER_SIZE);
	RateResult results[G_N_ELEMENTS(cases)];
	guint n_missed = 0;

	printf("export:   amu_data_export_run() in process (context open), a new directory each run: read and decrypt\n"
	       "          the blocks, format, fsync files and directory, SHA-256 of every file, signed manifest,\n"
	       "          access log entry\n");
	printf("baseline: plain SQLite table (timestamp_ms, category, v1, v2, v3), one row a sample, indexed on\n"
	       "          (category, timestamp_ms); SELECT ... ORDER BY category, timestamp_ms + fprintf(\"%%lld,%%d,%%d,%%d,%%d\\n\")\n"
	       "          with a %d KiB buffer, fsync at the end; same samples as the format carries (csv, json: all;\n"
	       "          fhir: no battery, location or toy events; gpx: location only)\n",
	       BASELINE_BUFFER_SIZE / 1024);
	printf("          plan: %s | fhir: %s | gpx: %s\n", plan_all, plan_fhir, plan_gpx);
	printf("disk alone: as many bytes as the export wrote (its data files and manifest) with write() from a\n"
	       "          %d KiB buffer of random bytes (each block numbered, so none repeats) into one new file in\n"
	       "          the same file system, fsync of the file and of its directory: what the disk needs for them\n",
	       BASELINE_BUFFER_SIZE / 1024);
	printf("same output via fprintf: the baseline's SELECT and one fprintf() a row of the record text the\n"
	       "          format writes, times by gmtime_r() + strftime() a row, decimals by %%.Nf of a double, %d KiB\n"
	       "          buffer, fsync at the end; one file: csv each category's header and rows as the export\n"
	       "          writes them (the export writes a file per category), json the objects, fhir the Observation\n"
	       "          entries with the same literal text but ids made of time and category instead of keyed\n"
	       "          UUIDs (same length), gpx the trkpt elements; heads as the export's; after the first run\n"
	       "          each of its lines past the head is checked against the export's files (byte for byte;\n"
	       "          fhir but for the ids) and its size to within %.0f%% of the export's data files\n",
	       BASELINE_BUFFER_SIZE / 1024, 100 * SAME_OUTPUT_TOLERANCE);
	printf("samples/s, median of %d runs each, interleaved with the baselines, sync(2) before each (not timed);\n"
	       "wall time; the target is against the first baseline\n",
	       RATE_REPS);
	randombytes_buf(block, BASELINE_BUFFER_SIZE);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		if (!rate_case(dir, &cases[i], block, &results[i], error))
			return FALSE;
		if (results[i].missed)
			n_missed++;
	}
	if (!rate_fixed_cost(dir, error))
		return FALSE;
	printf("targets missed: %u of %zu\n", n_missed, G_N_ELEMENTS(cases));
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const RateResult *r = &results[i];

		if (!r->missed)
			continue;
		printf("  %s %s: the target needs the export done in %.1f ms; the disk alone needs %.1f ms for its "
		       "%.1f MB, %.2f of the export's %.1f ms%s; the same text via fprintf() takes %.1f ms, %.2f times "
		       "the export's\n",
		       amu_export_format_to_string(cases[i].format), data_sets[cases[i].data_set].label, r->target_s * 1e3,
		       r->disk_s * 1e3, (double)r->bytes / 1e6, r->disk_s / r->export_s, r->export_s * 1e3,
		       r->disk_s >= r->target_s ? " (more than the target allows: no writer of these bytes can meet it)"
						: "",
		       r->same_s * 1e3, r->same_s / r->export_s);
	}
	return TRUE;
}

/* ------------------------------------------------------------ rss */

static gboolean
export_child(const char *dir, const DataSet *set, const char *format, struct rusage *usage, double *seconds,
	     GError **error)
{
	g_autofree char *out_dir = g_strdup_printf("%s/export-%s", dir, format);
	g_autofree char *out = g_build_filename(dir, "out", NULL);
	g_autofree char *err = g_build_filename(dir, "err", NULL);
	const char *argv[] = {tool_amulet, "--data-dir", set->host, "export", set->name, "--grant", set->grant_id,
			      "--format", format, "--out", out_dir, NULL};
	gboolean ok = run_tool(argv, out, err, 600, usage, seconds, error);

	bench_remove_tree(out_dir);
	return ok;
}

static gboolean
bench_rss(const char *dir, GError **error)
{
	const DataSet *band = &data_sets[BAND_30];
	g_autofree char *out = g_build_filename(dir, "out", NULL);
	g_autofree char *err = g_build_filename(dir, "err", NULL);
	const char *devices[] = {tool_amulet, "--data-dir", band->host, "devices", NULL};
	static const char *const others[] = {"json", "fhir", "gpx"};
	struct rusage devices_usage, usage;
	double seconds;

	if (!run_tool(devices, out, err, 30, &devices_usage, NULL, error) ||
	    !export_child(dir, band, "csv", &usage, &seconds, error))
		return FALSE;
	printf("peak RSS, ru_maxrss of the child from wait4(); %s (%" G_GUINT64_FORMAT " samples)\n", band->label,
	       band->n_samples);
	printf("amulet devices (opens the store):      %6.1f MiB\n", mib(devices_usage.ru_maxrss));
	printf("amulet export --format csv, 30 days:   %6.1f MiB  (ratio %.2f to devices; target <= %.0f MiB)%s\n",
	       mib(usage.ru_maxrss), (double)usage.ru_maxrss / (double)devices_usage.ru_maxrss, RSS_TARGET_MIB,
	       mib(usage.ru_maxrss) <= RSS_TARGET_MIB ? "" : "  MISSED");
	printf("  process start to exit %.2f s, %.2f M samples/s, CPU %.2f s (user + sys)\n", seconds,
	       (double)band->n_samples / seconds / 1e6, bench_cpu_seconds(&usage));
	printf("  other formats, 30 days:");
	for (size_t i = 0; i < G_N_ELEMENTS(others); i++) {
		const DataSet *set = g_strcmp0(others[i], "gpx") == 0 ? &data_sets[WATCH_30] : band;
		if (!export_child(dir, set, others[i], &usage, &seconds, error))
			return FALSE;
		printf(" %s%s %.1f MiB (%.2f s)%s", others[i], set == band ? "" : " (watch)", mib(usage.ru_maxrss),
		       seconds, i + 1 < G_N_ELEMENTS(others) ? "," : "\n");
	}
	return TRUE;
}

/* ------------------------------------------------------------ main */

typedef struct {
	const char *name;
	gboolean (*func)(const char *dir, GError **error);
} Part;

int
main(int argc, char **argv)
{
	static const Part parts[] = {
		{"rate", bench_rate},
		{"rss", bench_rss},
	};
	gboolean wanted[G_N_ELEMENTS(parts)];
	g_autoptr(GError) error = NULL;
	g_autofree char *setup_dir = NULL;
	int status = 0;

	for (guint p = 0; p < G_N_ELEMENTS(parts); p++)
		wanted[p] = argc == 1;
	for (int i = 1; i < argc; i++) {
		guint p = 0;
		while (p < G_N_ELEMENTS(parts) && strcmp(argv[i], parts[p].name) != 0)
			p++;
		if (p == G_N_ELEMENTS(parts)) {
			fprintf(stderr, "usage: bench-export [rate] [rss]\n");
			return 2;
		}
		wanted[p] = TRUE;
	}
	if (sodium_init() < 0)
		return 1;
	if (access(tool_sim, X_OK) != 0 || access(tool_amulet, X_OK) != 0) {
		fprintf(stderr, "bench-export: build %s and %s first (make bench does)\n", tool_sim, tool_amulet);
		return 1;
	}
	temp_root = bench_children_init("amu-bench-export", &error);
	if (temp_root == NULL) {
		fprintf(stderr, "bench-export: %s\n", error->message);
		return 1;
	}
	{
		g_autofree char *load = NULL;
		double one = -1, five = -1;
		if (g_file_get_contents("/proc/loadavg", &load, NULL, NULL))
			sscanf(load, "%lf %lf", &one, &five);
		printf("bench-export: %ld CPUs, load average %.2f (1 min), %.2f (5 min) before the run; other work on\n"
		       "the machine shows in the wall times; temporary files in %s\n\n",
		       sysconf(_SC_NPROCESSORS_ONLN), one, five, temp_root);
	}

	setup_dir = g_build_filename(temp_root, "setup", NULL);
	g_mkdir_with_parents(setup_dir, 0700);
	if (!setup(setup_dir, &error)) {
		fprintf(stderr, "bench-export: setup: %s\n", error->message);
		data_sets_clear();
		return 1;
	}
	printf("\n");
	fflush(stdout);
	for (guint p = 0; p < G_N_ELEMENTS(parts); p++) {
		g_autofree char *dir = NULL;
		gboolean ok;

		if (!wanted[p])
			continue;
		dir = g_build_filename(temp_root, parts[p].name, NULL);
		g_mkdir_with_parents(dir, 0700);
		ok = parts[p].func(dir, &error);
		bench_children_stop_all();
		bench_remove_tree(dir);
		if (!ok) {
			fprintf(stderr, "bench-export: %s: %s\n", parts[p].name, error->message);
			g_clear_error(&error);
			status = 1;
		}
		printf("\n");
		fflush(stdout);
	}
	{
		g_autofree char *load = NULL;
		double one = -1;
		if (g_file_get_contents("/proc/loadavg", &load, NULL, NULL))
			sscanf(load, "%lf", &one);
		printf("load average %.2f (1 min) after the run\n", one);
	}
	data_sets_clear();
	return status;
}
