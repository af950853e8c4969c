/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: data export, each figure against baselines measured in the
 * same run.
 *   rate  amu_data_export_run() in process, per format, over a band synced
 *         for 1 and for 30 days (GPX: a watch, location only); the export's
 *         figure includes reading the sealed blocks (XChaCha20-Poly1305),
 *         fsyncing the files and the directory, the SHA-256 of every file,
 *         the signed manifest and the access log entry. Three baselines
 *         (bench-export-baseline.c), interleaved with it run by run: a
 *         plain SQLite table of the same samples written with one
 *         fprintf() a row (the target is a ratio to this one), the disk
 *         alone writing as many bytes, and the same output written by a
 *         plain program. A missed target is explained with the last two at
 *         the end.
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
#include <unistd.h>

#include "amu-private.h"
#include "amulet/amulet.h"
#include "bench-children.h"
#include "bench-export-baseline.h"

#define SEED "42"
#define START "2026-03-02" /* seed 42's watch has a run with GPS that day */
#define RATE_REPS 3
#define CSV_TARGET_RATE 2e6
#define RATIO_TARGET 0.5
#define RSS_TARGET_MIB 32.0
#define WRITER_BUFFER_SIZE (64 * 1024) /* what the writer hashes at a time */
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

enum { BAND_1, BAND_30, WATCH_1, WATCH_30, N_DATA_SETS };

#define BAND_CATEGORIES "heart_rate,steps,spo2,sleep_stage,skin_temp,respiratory_rate,battery"
static BenchDataSet data_sets[N_DATA_SETS] = {
	[BAND_1] = {"band1", "band, 1 day", "band", "1", BAND_CATEGORIES},
	[BAND_30] = {"band30", "band, 30 days", "band", "30", BAND_CATEGORIES},
	[WATCH_1] = {"watch1", "watch, 1 day", "watch", "1", BAND_CATEGORIES ",location"},
	[WATCH_30] = {"watch30", "watch, 30 days", "watch", "30", BAND_CATEGORIES ",location"},
};
/* a second grant on BAND_1 over a range without samples: what every export costs */
static char *empty_grant_id;

/* a grant of every category @set records, raw; over all time, or only
 * [@from, @to) when given; its id */
static char *
grant(const char *dir, BenchDataSet *set, const char *from, const char *to, GError **error)
{
	g_autofree char *out = g_build_filename(dir, "grant.json", NULL);
	g_autofree char *err = g_build_filename(dir, "grant.err", NULL);
	g_autoptr(JsonObject) json = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	const char *const fixed[] = {tool_amulet, "--data-dir", set->host, "--json", "consent", "grant", set->name,
				     "--categories", set->categories, "--purpose", BENCH_GRANT_PURPOSE,
				     "--recipient-name", BENCH_GRANT_RECIPIENT, "--yes"};

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
data_set_prepare(const char *dir, BenchDataSet *set, GError **error)
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
	if (set->grant_id == NULL || !bench_baseline_fill(set, error))
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
		BenchDataSet *set = &data_sets[i];
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
	gboolean missed_same; /* below RATIO_TARGET of the same output via fprintf */
	double export_s;
	double target_s; /* the longest the export may take to meet its targets */
	double disk_s;
	double same_s;
	guint64 bytes; /* the export's, which the disk baseline wrote too */
} RateResult;

/* @block: the disk baseline's buffer of random bytes */
static gboolean
rate_case(const char *dir, const RateCase *c, guint8 *block, RateResult *result, GError **error)
{
	const BenchDataSet *set = &data_sets[c->data_set];
	const char *format_name = amu_export_format_to_string(c->format);
	g_autoptr(AmuContext) context = amu_context_new(set->host, error);
	g_auto(BenchExportHead) head = {0};
	ExportRun runs[RATE_REPS];
	double baseline_s[RATE_REPS], disk_s[RATE_REPS], same_s[RATE_REPS];
	double base_s, disk_med, same_med, export_rate, base_rate, same_rate, ratio;
	guint64 rows = 0, same_rows = 0, baseline_bytes = 0, same_bytes = 0;
	const ExportRun *m;
	gboolean rate_ok, ratio_ok;

	if (context == NULL || !bench_export_head_init(&head, context, set, error))
		return FALSE;
	/* interleaved, so drift in the disk or the machine hits all alike */
	for (int rep = 0; rep < RATE_REPS; rep++) {
		g_autofree char *out_dir = g_strdup_printf("%s/export-%d", dir, rep);
		g_autofree char *baseline_path = g_strdup_printf("%s/baseline-%d.txt", dir, rep);
		g_autofree char *disk_path = g_strdup_printf("%s/disk-%d.bin", dir, rep);
		g_autofree char *same_path = g_strdup_printf("%s/same-output-%d.txt", dir, rep);
		BenchCategoryList categories = {{0}, 0};
		struct stat st;
		gboolean ok;

		/* each run starts with nothing dirty: the writeback of the one
		 * before (1.7 GB after a 30-day FHIR export) must not land on it */
		sync();
		ok = bench_baseline_run(set, c->format, baseline_path, &baseline_s[rep], &rows, error);
		if (ok) {
			sync();
			ok = export_run(context, set->grant_id, c->format, out_dir, &runs[rep], error);
		}
		if (ok) {
			sync();
			ok = bench_baseline_disk_run(dir, disk_path, block, runs[rep].bytes, &disk_s[rep], error);
		}
		if (ok) {
			sync();
			ok = bench_baseline_same_output_run(set, c->format, &head, same_path, &same_s[rep],
							    &same_rows, &categories, error);
		}

		if (ok && stat(baseline_path, &st) == 0)
			baseline_bytes = (guint64)st.st_size;
		if (ok && stat(same_path, &st) == 0)
			same_bytes = (guint64)st.st_size;
		/* the export's own files are read once (not timed), to hold the
		 * baseline to them */
		if (ok && rep == 0)
			ok = bench_baseline_same_output_check(c->format, out_dir, &categories, runs[0].data_bytes,
							      same_path, same_bytes, error);
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
	result->missed_same = !rate_ok || export_rate / same_rate < RATIO_TARGET;
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

#define LEDGER_GROWTH 1000 /* access entries added for the second fixed-cost figure */

/* the median of RATE_REPS empty exports with @context */
static gboolean
fixed_cost_once(AmuContext *context, const char *dir, const char *label, double *seconds_out, GError **error)
{
	double seconds[RATE_REPS];

	for (int rep = 0; rep < RATE_REPS; rep++) {
		g_autofree char *out_dir = g_strdup_printf("%s/empty-%s-%d", dir, label, rep);
		ExportRun run;
		gboolean ok;

		sync();
		ok = export_run(context, empty_grant_id, AMU_EXPORT_FORMAT_CSV, out_dir, &run, error);
		bench_remove_tree(out_dir);
		if (!ok)
			return FALSE;
		seconds[rep] = run.seconds;
	}
	*seconds_out = median(seconds, RATE_REPS);
	return TRUE;
}

/* What an export costs with nothing in it: grant check, files, fsyncs,
 * manifest, signature and access log entry; then again once the consent
 * ledger is LEDGER_GROWTH entries longer, as a host that has exported
 * daily for years has it (the grant check and the access entry each walk
 * the ledger). The entries are appended untimed, to a copy of the host's
 * data directory. */
static gboolean
rate_fixed_cost(const char *dir, GError **error)
{
	g_autofree char *copy = g_strdup_printf("%s/host-grown", dir);
	g_autofree char *out = g_strdup_printf("%s/cp.out", dir);
	g_autoptr(AmuContext) context = amu_context_new(data_sets[BAND_1].host, error);
	g_autoptr(AmuContext) grown = NULL;
	g_autoptr(GPtrArray) access_log = NULL;
	const char *cp[] = {"/bin/cp", "-a", data_sets[BAND_1].host, copy, NULL};
	double small_s, grown_s;
	guint n_before;

	if (context == NULL || (access_log = amu_context_get_access_log(context, error)) == NULL)
		return FALSE;
	n_before = access_log->len;
	if (!fixed_cost_once(context, dir, "small", &small_s, error))
		return FALSE;
	g_clear_object(&context);
	if (!run_tool(cp, out, NULL, 60, NULL, NULL, error) || (grown = amu_context_new(copy, error)) == NULL)
		return FALSE;
	for (int i = 0; i < LEDGER_GROWTH; i++) {
		if (!amu_context_record_access(grown, empty_grant_id, "csv", 0, NULL, NULL, error))
			return FALSE;
	}
	/* the first walk of a context verifies every signature; time the ones after */
	g_clear_pointer(&access_log, g_ptr_array_unref);
	if ((access_log = amu_context_get_access_log(grown, error)) == NULL)
		return FALSE;
	if (!fixed_cost_once(grown, dir, "grown", &grown_s, error))
		return FALSE;
	printf("fixed cost of one export (csv, a grant over a day without samples): %.1f ms, median of %d;\n"
	       "  with %u entries in that host's access log before (one more with every export);\n"
	       "  with %u entries: %.1f ms (%.2f of the first)\n",
	       small_s * 1e3, RATE_REPS, n_before, access_log->len, grown_s * 1e3, grown_s / small_s);
	bench_remove_tree(copy);
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
	g_autofree guint8 *block = g_malloc(BENCH_BASELINE_BUFFER_SIZE);
	RateResult results[G_N_ELEMENTS(cases)];
	guint n_missed = 0;

	printf("export:   amu_data_export_run() in process (context open), a new directory each run: read and decrypt\n"
	       "          the blocks, format, fsync files and directory, SHA-256 of every file, signed manifest,\n"
	       "          access log entry\n");
	bench_baseline_print_legend(&data_sets[BAND_30], &data_sets[WATCH_30]);
	printf("samples/s, median of %d runs each, interleaved with the baselines, sync(2) before each (not timed);\n"
	       "wall time; the target is against the first baseline\n",
	       RATE_REPS);
	randombytes_buf(block, BENCH_BASELINE_BUFFER_SIZE);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		if (!rate_case(dir, &cases[i], block, &results[i], error))
			return FALSE;
		if (results[i].missed)
			n_missed++;
	}
	if (!rate_fixed_cost(dir, error))
		return FALSE;
	printf("targets missed: %u of %zu\n", n_missed, G_N_ELEMENTS(cases));
	{
		guint n_missed_same = 0;

		for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
			n_missed_same += results[i].missed_same;
		printf("  against the same output via fprintf (a plain SELECT + fprintf loop writing the format's own\n"
		       "  records, ratio >= %.1f, and >= 2 M/s for csv): %u of %zu missed\n",
		       RATIO_TARGET, n_missed_same, G_N_ELEMENTS(cases));
	}
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
export_child(const char *dir, const BenchDataSet *set, const char *format, struct rusage *usage, double *seconds,
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
	const BenchDataSet *band = &data_sets[BAND_30];
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
		const BenchDataSet *set = g_strcmp0(others[i], "gpx") == 0 ? &data_sets[WATCH_30] : band;
		if (!export_child(dir, set, others[i], &usage, &seconds, error))
			return FALSE;
		printf(" %s%s %.1f MiB (%.2f s)%s", others[i], set == band ? "" : " (watch)", mib(usage.ru_maxrss),
		       seconds, i + 1 < G_N_ELEMENTS(others) ? "," : "\n");
	}
	return TRUE;
}

/* ------------------------------------------------------------ main */

int
main(int argc, char **argv)
{
	static const BenchPart parts[] = {
		{"rate", bench_rate},
		{"rss", bench_rss},
	};
	const char *const tools[] = {tool_sim, tool_amulet, NULL};
	gboolean wanted[G_N_ELEMENTS(parts)];
	g_autoptr(GError) error = NULL;
	g_autofree char *setup_dir = NULL;
	int status = 0;

	temp_root = bench_main_begin("bench-export", argc, argv, parts, G_N_ELEMENTS(parts), wanted, tools, &status);
	if (temp_root == NULL)
		return status;
	setup_dir = g_build_filename(temp_root, "setup", NULL);
	g_mkdir_with_parents(setup_dir, 0700);
	if (!setup(setup_dir, &error)) {
		fprintf(stderr, "bench-export: setup: %s\n", error->message);
		data_sets_clear();
		return 1;
	}
	printf("\n");
	fflush(stdout);
	status = bench_run_parts("bench-export", temp_root, parts, G_N_ELEMENTS(parts), wanted);
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
