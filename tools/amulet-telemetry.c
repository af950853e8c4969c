/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amulet-cli.h"

/* ---------------------------------------------------------------- sync */

typedef struct {
	Cli *cli;
	GMainLoop *loop;
	guint pending;
	gboolean tty;
	GPtrArray *jobs;
	gint64 last_draw_us;
	int exit_code;
} SyncRun;

typedef struct {
	SyncRun *run;
	AmuDevice *device;
	AmuSession *session;
	AmuSyncProgress progress;
	GError *error;
	gboolean done;
} SyncJob;

static void
sync_job_free(SyncJob *job)
{
	g_clear_object(&job->session);
	g_clear_object(&job->device);
	g_clear_error(&job->error);
	g_free(job);
}

static char *
format_eta(double seconds)
{
	if (seconds < 0 || seconds > 359999)
		return g_strdup("--:--");
	return g_strdup_printf("%d:%02d", (int)seconds / 60, (int)seconds % 60);
}

/* one line, redrawn in place: samples, bytes, rate and ETA over all devices */
static void
sync_draw(SyncRun *run, gboolean force)
{
	guint64 done = 0, total = 0, bytes = 0;
	gint64 elapsed_ms = 0;
	double rate;
	g_autofree char *eta = NULL;
	gint64 now = g_get_monotonic_time();

	if (!run->tty || (!force && now - run->last_draw_us < 100000))
		return;
	run->last_draw_us = now;
	for (guint i = 0; i < run->jobs->len; i++) {
		SyncJob *job = g_ptr_array_index(run->jobs, i);
		done += job->progress.samples_done;
		total += job->progress.samples_total;
		bytes += job->progress.bytes;
		elapsed_ms = MAX(elapsed_ms, job->progress.elapsed_ms);
	}
	rate = elapsed_ms > 0 ? (double)done * 1000.0 / (double)elapsed_ms : 0;
	eta = format_eta(rate > 0 ? (double)(total - MIN(done, total)) / rate : -1);
	fprintf(stderr, "\r\033[Ksync %s: %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " samples, %.1f KiB, %.0f samples/s, ETA %s",
		run->jobs->len == 1 ? amu_device_get_name(((SyncJob *)g_ptr_array_index(run->jobs, 0))->device)
				    : "all devices",
		done, total, (double)bytes / 1024.0, rate, eta);
	fflush(stderr);
}

static void
sync_progress_cb(AmuSession *session, const AmuSyncProgress *progress, gpointer user_data)
{
	SyncJob *job = user_data;

	job->progress = *progress;
	sync_draw(job->run, FALSE);
}

static void
sync_job_done(SyncJob *job)
{
	job->done = TRUE;
	if (job->session != NULL)
		amu_session_close(job->session);
	if (job->error != NULL) {
		int code = cli_exit_code_for(job->error);
		if (job->run->exit_code == EXIT_OK)
			job->run->exit_code = code;
	}
	if (--job->run->pending == 0)
		g_main_loop_quit(job->run->loop);
}

static void
sync_finished_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SyncJob *job = user_data;

	amu_session_sync_finish(AMU_SESSION(source), result, &job->progress, &job->error);
	sync_job_done(job);
}

static void
sync_connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	SyncJob *job = user_data;

	job->session = amu_device_connect_finish(AMU_DEVICE(source), result, &job->error);
	if (job->session == NULL) {
		sync_job_done(job);
		return;
	}
	amu_session_sync_async(job->session, sync_progress_cb, job, NULL, sync_finished_cb, job);
}

static void
sync_print(SyncRun *run)
{
	g_autoptr(GString) json = g_string_new(NULL);

	if (run->tty) {
		sync_draw(run, TRUE);
		fputc('\n', stderr);
	}
	if (run->cli->json && run->jobs->len != 1)
		g_string_append_c(json, '[');
	for (guint i = 0; i < run->jobs->len; i++) {
		SyncJob *job = g_ptr_array_index(run->jobs, i);
		const char *name = amu_device_get_name(job->device);
		AmuSyncProgress *p = &job->progress;

		if (job->error != NULL)
			fprintf(stderr, "amulet sync: %s: %s\n", name, job->error->message);
		if (run->cli->json) {
			if (i > 0)
				g_string_append_c(json, ',');
			g_string_append(json, "{\"name\":");
			cli_json_string(json, name);
			g_string_append_printf(json,
					       ",\"ok\":%s,\"samples\":%" G_GUINT64_FORMAT ",\"expected\":%" G_GUINT64_FORMAT
					       ",\"bytes\":%" G_GUINT64_FORMAT ",\"batches\":%" G_GUINT64_FORMAT
					       ",\"elapsed_ms\":%" G_GINT64_FORMAT ",\"clock_offset_ms\":%" G_GINT64_FORMAT
					       ",\"skipped\":%" G_GUINT64_FORMAT,
					       job->error == NULL ? "true" : "false", p->samples_done, p->samples_total,
					       p->bytes, p->batches, p->elapsed_ms, p->clock_offset_ms, p->skipped);
			if (job->error != NULL) {
				g_string_append(json, ",\"error\":{\"code\":");
				cli_json_string(json, job->error->domain == AMU_ERROR
							      ? amu_error_to_string(job->error->code)
							      : "failed");
				g_string_append(json, ",\"message\":");
				cli_json_string(json, job->error->message);
				g_string_append_c(json, '}');
			}
			g_string_append_c(json, '}');
			continue;
		}
		if (job->error != NULL) {
			printf("%s: failed after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			       " samples (kept; the next sync resumes)\n",
			       name, p->samples_done, p->samples_total);
			continue;
		}
		printf("%s: %" G_GUINT64_FORMAT " samples (%.1f KiB) in %.2f s", name, p->samples_done,
		       (double)p->bytes / 1024.0, (double)p->elapsed_ms / 1000.0);
		if (p->clock_offset_ms != 0)
			printf(", device clock %+" G_GINT64_FORMAT " ms (corrected)", p->clock_offset_ms);
		if (p->skipped > 0)
			printf(", %" G_GUINT64_FORMAT " samples no longer on the device (wiped, or taken by another of your hosts)",
			       p->skipped);
		printf("\n");
	}
	if (run->cli->json) {
		if (run->jobs->len != 1)
			g_string_append_c(json, ']');
		printf("%s\n", json->str);
	}
}

int
cli_cmd_sync(Cli *cli, int argc, char **argv)
{
	gboolean all = FALSE;
	GOptionEntry entries[] = {
		{"all", 'a', 0, G_OPTION_ARG_NONE, &all, "sync every paired device at once", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME|--all");
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	SyncRun run = {0};
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("sync", error->message);
	if ((all && argc != 1) || (!all && argc != 2))
		return cli_usage_error("sync", "give a device name or --all");
	if (!cli_open_context(cli, "sync", &exit_code))
		return exit_code;
	if (all) {
		devices = amu_context_get_devices(cli->context, &error);
		if (devices == NULL)
			return cli_report_error(cli, "sync", error);
		if (devices->len == 0) {
			if (cli->json)
				printf("[]\n");
			else
				printf("No paired devices. Pair one with 'amulet pair ADDRESS'.\n");
			return EXIT_OK;
		}
	} else {
		AmuDevice *device = cli_find_device(cli, "sync", argv[1], &exit_code);
		if (device == NULL)
			return exit_code;
		devices = g_ptr_array_new_with_free_func(g_object_unref);
		g_ptr_array_add(devices, device);
	}
	run.cli = cli;
	run.loop = loop;
	run.tty = isatty(STDERR_FILENO) && !cli->json;
	run.jobs = g_ptr_array_new_with_free_func((GDestroyNotify)sync_job_free);
	/* every device at once, in this one main loop */
	for (guint i = 0; i < devices->len; i++) {
		SyncJob *job = g_new0(SyncJob, 1);
		job->run = &run;
		job->device = g_object_ref(g_ptr_array_index(devices, i));
		g_ptr_array_add(run.jobs, job);
		run.pending++;
		amu_device_connect_async(job->device, NULL, sync_connected_cb, job);
	}
	g_main_loop_run(loop);
	sync_print(&run);
	exit_code = run.exit_code;
	g_ptr_array_unref(run.jobs);
	return exit_code;
}

/* ---------------------------------------------------------------- data */

/* ISO 8601 date (local midnight) or date and time; NULL for unset */
static gboolean
parse_time(const char *text, gint64 *ms, GError **error)
{
	g_autoptr(GTimeZone) local = g_time_zone_new_local();
	g_autoptr(GDateTime) t = NULL;
	int y, m, d;
	char tail;

	if (sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3)
		t = g_date_time_new(local, y, m, d, 0, 0, 0);
	else
		t = g_date_time_new_from_iso8601(text, local);
	if (t == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "'%s' is not a date (2026-11-27) or ISO 8601 date and time (2026-11-27T08:00:00Z)", text);
		return FALSE;
	}
	*ms = g_date_time_to_unix(t) * 1000 + g_date_time_get_microsecond(t) / 1000;
	return TRUE;
}

static char *
format_time(gint64 ms)
{
	g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(ms / 1000);
	g_autoptr(GDateTime) local = g_date_time_to_local(t);
	return g_date_time_format(local, "%Y-%m-%d %H:%M:%S");
}

static void
print_value(GString *out, const AmuSample *sample)
{
	guint n = amu_category_get_n_values(sample->category);

	switch (sample->category) {
	case AMU_CATEGORY_SPO2:
	case AMU_CATEGORY_RESPIRATORY_RATE:
		g_string_append_printf(out, "%.1f %s", sample->values[0] / 10.0,
				       sample->category == AMU_CATEGORY_SPO2 ? "%" : "/min");
		return;
	case AMU_CATEGORY_SKIN_TEMP:
		g_string_append_printf(out, "%.2f degC", sample->values[0] / 100.0);
		return;
	case AMU_CATEGORY_SLEEP_STAGE: {
		static const char *const stages[] = {"awake", "light", "deep", "rem"};
		g_string_append(out, sample->values[0] >= 0 && sample->values[0] <= 3 ? stages[sample->values[0]] : "?");
		return;
	}
	case AMU_CATEGORY_LOCATION:
		g_string_append_printf(out, "%.7f, %.7f, %.2f m", sample->values[0] / 1e7, sample->values[1] / 1e7,
				       sample->values[2] / 100.0);
		return;
	case AMU_CATEGORY_HEART_RATE:
	case AMU_CATEGORY_STEPS:
	case AMU_CATEGORY_BATTERY:
	case AMU_CATEGORY_TOY_EVENT:
		break;
	}
	for (guint i = 0; i < n; i++)
		g_string_append_printf(out, "%s%d %s", i > 0 ? ", " : "", sample->values[i],
				       amu_category_get_unit(sample->category, i));
}

static int
data_samples(Cli *cli, AmuDevice *device, AmuCategory category, gint64 from, gint64 to, gboolean csv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuSampleIter) iter = amu_device_query_samples(device, category, from, to, &error);
	g_autoptr(GString) line = g_string_new(NULL);
	AmuSample sample;
	guint64 count = 0;

	if (iter == NULL)
		return cli_report_error(cli, "data", error);
	if (cli->json)
		fputs("[", stdout);
	else if (csv)
		fputs("timestamp_ms,category,value1,value2,value3\n", stdout);
	while (amu_sample_iter_next(iter, &sample, &error)) {
		guint n = amu_category_get_n_values(sample.category);
		g_string_truncate(line, 0);
		if (cli->json) {
			g_string_append_printf(line, "%s{\"timestamp_ms\":%" G_GINT64_FORMAT ",\"category\":\"%s\",\"values\":[",
					       count > 0 ? "," : "", sample.timestamp_ms,
					       amu_category_to_string(sample.category));
			for (guint i = 0; i < n; i++)
				g_string_append_printf(line, "%s%d", i > 0 ? "," : "", sample.values[i]);
			g_string_append(line, "]}\n");
		} else if (csv) {
			g_string_append_printf(line, "%" G_GINT64_FORMAT ",%s", sample.timestamp_ms,
					       amu_category_to_string(sample.category));
			for (guint i = 0; i < AMU_SAMPLE_MAX_VALUES; i++) {
				if (i < n)
					g_string_append_printf(line, ",%d", sample.values[i]);
				else
					g_string_append_c(line, ',');
			}
			g_string_append_c(line, '\n');
		} else {
			g_autofree char *when = format_time(sample.timestamp_ms);
			g_string_append_printf(line, "%s  %-16s ", when, amu_category_to_string(sample.category));
			print_value(line, &sample);
			g_string_append_c(line, '\n');
		}
		fputs(line->str, stdout);
		count++;
	}
	if (cli->json)
		fputs("]\n", stdout);
	if (error != NULL)
		return cli_report_error(cli, "data", error);
	if (count == 0 && !cli->json && !csv)
		fprintf(stderr, "No samples stored for '%s' in that range. Fetch new ones with 'amulet sync %s'.\n",
			amu_device_get_name(device), amu_device_get_name(device));
	return EXIT_OK;
}

static int
data_summary(Cli *cli, AmuDevice *device, gint64 from, gint64 to, gboolean csv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GArray) days = amu_device_get_day_summaries(device, from, to, NULL, &error);

	if (days == NULL)
		return cli_report_error(cli, "data", error);
	if (cli->json)
		fputs("[", stdout);
	else if (csv)
		fputs("date,resting_heart_rate,steps,sleep_minutes,samples\n", stdout);
	else
		printf("%-10s  %7s  %8s  %6s  %8s\n", "date", "rest HR", "steps", "sleep", "samples");
	for (guint i = 0; i < days->len; i++) {
		AmuDaySummary *day = &g_array_index(days, AmuDaySummary, i);
		g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(day->day_start_ms / 1000);
		g_autoptr(GDateTime) local = g_date_time_to_local(t);
		g_autofree char *date = g_date_time_format(local, "%Y-%m-%d");

		if (cli->json)
			printf("%s{\"date\":\"%s\",\"resting_heart_rate\":%d,\"steps\":%" G_GINT64_FORMAT
			       ",\"sleep_minutes\":%d,\"samples\":%" G_GUINT64_FORMAT "}\n",
			       i > 0 ? "," : "", date, day->resting_heart_rate, day->steps, day->sleep_minutes,
			       day->n_samples);
		else if (csv)
			printf("%s,%d,%" G_GINT64_FORMAT ",%d,%" G_GUINT64_FORMAT "\n", date, day->resting_heart_rate,
			       day->steps, day->sleep_minutes, day->n_samples);
		else {
			g_autofree char *rest = day->resting_heart_rate < 0 ? g_strdup("-")
									   : g_strdup_printf("%d", day->resting_heart_rate);
			g_autofree char *sleep = g_strdup_printf("%d:%02d", day->sleep_minutes / 60, day->sleep_minutes % 60);
			printf("%-10s  %7s  %8" G_GINT64_FORMAT "  %6s  %8" G_GUINT64_FORMAT "\n", date, rest, day->steps,
			       sleep, day->n_samples);
		}
	}
	if (cli->json)
		fputs("]\n", stdout);
	return EXIT_OK;
}

static int
data_prune(Cli *cli, gboolean dry_run)
{
	g_autoptr(GError) error = NULL;
	guint64 removed = 0;
	int exit_code = EXIT_OK;

	if (!cli_open_context(cli, "data prune", &exit_code))
		return exit_code;
	if (!amu_context_prune(cli->context, g_get_real_time() / 1000, dry_run, &removed, &error))
		return cli_report_error(cli, "data prune", error);
	if (cli->json) {
		printf("{\"removed\":%" G_GUINT64_FORMAT ",\"dry_run\":%s}\n", removed, dry_run ? "true" : "false");
		return EXIT_OK;
	}
	printf("%s %" G_GUINT64_FORMAT " samples past their retention period:\n", dry_run ? "Would remove" : "Removed",
	       removed);
	for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
		printf("  %-17s kept %u days\n", amu_category_to_string(c), amu_category_get_default_retention_days(c));
	return EXIT_OK;
}

int
cli_cmd_data(Cli *cli, int argc, char **argv)
{
	g_autofree char *category_name = NULL, *from_text = NULL, *to_text = NULL;
	gboolean summary = FALSE, csv = FALSE, dry_run = FALSE;
	GOptionEntry entries[] = {
		{"category", 'c', 0, G_OPTION_ARG_STRING, &category_name, "only this category", "CATEGORY"},
		{"from", 0, 0, G_OPTION_ARG_STRING, &from_text, "first day or time (default: 7 days ago)", "TIME"},
		{"to", 0, 0, G_OPTION_ARG_STRING, &to_text, "end, excluded (default: now)", "TIME"},
		{"summary", 's', 0, G_OPTION_ARG_NONE, &summary, "one line a day: resting HR, steps, sleep", NULL},
		{"csv", 0, 0, G_OPTION_ARG_NONE, &csv, "comma-separated values", NULL},
		{"dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run, "prune: only count", NULL},
		{NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("NAME | prune");
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) device = NULL;
	AmuCategory category = 0;
	gint64 now = g_get_real_time() / 1000;
	gint64 from = now - 7 * 86400000LL, to = now + 1;
	int exit_code = EXIT_OK;

	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error))
		return cli_usage_error("data", error->message);
	if (argc != 2)
		return cli_usage_error("data", "give a device name, or 'prune'");
	if (g_strcmp0(argv[1], "prune") == 0)
		return data_prune(cli, dry_run);
	if (category_name != NULL && !amu_category_from_string(category_name, &category)) {
		g_autoptr(GString) known = g_string_new(NULL);
		for (int c = AMU_CATEGORY_FIRST; c <= AMU_CATEGORY_LAST; c++)
			g_string_append_printf(known, "%s%s", c > AMU_CATEGORY_FIRST ? ", " : "", amu_category_to_string(c));
		g_autofree char *message = g_strdup_printf("unknown category '%s'; one of %s", category_name, known->str);
		return cli_usage_error("data", message);
	}
	if ((from_text != NULL && !parse_time(from_text, &from, &error)) ||
	    (to_text != NULL && !parse_time(to_text, &to, &error)))
		return cli_usage_error("data", error->message);
	if (to <= from)
		return cli_usage_error("data", "--to must be after --from");
	device = cli_find_device(cli, "data", argv[1], &exit_code);
	if (device == NULL)
		return exit_code;
	if (summary)
		return data_summary(cli, device, from, to, csv);
	return data_samples(cli, device, category, from, to, csv);
}
