/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A companion app's daily job, on the public API only: reconnect to a paired
 * device, sync its telemetry with progress, and print one line a day.
 *
 *   cc amu-example-sync.c $(pkg-config --cflags --libs amulet-1)
 *   ./a.out DATA_DIR DEVICE_NAME
 *
 * Pair the device first (with 'amulet --data-dir DATA_DIR pair ...').
 */
#include <amulet/amulet.h>
#include <stdio.h>

typedef struct {
	GMainLoop *loop;
	AmuDevice *device;
	AmuSession *session;
	GError *error;
	AmuSyncProgress progress;
} App;

static void
notification_cb(G_GNUC_UNUSED AmuContext *context, G_GNUC_UNUSED int kind, G_GNUC_UNUSED const char *device_name,
		const char *message, G_GNUC_UNUSED gpointer user_data)
{
	printf("notice: %s\n", message);
}

static void
progress_cb(G_GNUC_UNUSED AmuSession *session, const AmuSyncProgress *progress, G_GNUC_UNUSED gpointer user_data)
{
	printf("progress: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " samples\n", progress->samples_done,
	       progress->samples_total);
}

static void
synced_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	App *app = user_data;

	amu_session_sync_finish(AMU_SESSION(source), result, &app->progress, &app->error);
	amu_session_close(AMU_SESSION(source));
	g_main_loop_quit(app->loop);
}

static void
connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	App *app = user_data;

	app->session = amu_device_connect_finish(AMU_DEVICE(source), result, &app->error);
	if (app->session == NULL) {
		g_main_loop_quit(app->loop);
		return;
	}
	amu_session_sync_async(app->session, progress_cb, app, NULL, synced_cb, app);
}

int
main(int argc, char **argv)
{
	g_autoptr(AmuContext) context = NULL;
	g_autoptr(GArray) days = NULL;
	g_autoptr(GError) error = NULL;
	App app = {0};
	gint64 now = g_get_real_time() / 1000;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DATA_DIR DEVICE_NAME\n", argv[0]);
		return 2;
	}
	context = amu_context_new(argv[1], &error);
	if (context == NULL || (app.device = amu_context_find_device(context, argv[2], &error)) == NULL) {
		fprintf(stderr, "%s\n", error->message);
		return 1;
	}
	g_signal_connect(context, "notification", G_CALLBACK(notification_cb), NULL);
	app.loop = g_main_loop_new(NULL, FALSE);
	amu_device_connect_async(app.device, NULL, connected_cb, &app);
	g_main_loop_run(app.loop);
	if (app.error != NULL) {
		fprintf(stderr, "sync failed: %s\n", app.error->message);
		return 1;
	}
	printf("synced %" G_GUINT64_FORMAT " samples in %" G_GINT64_FORMAT " ms\n", app.progress.samples_done,
	       app.progress.elapsed_ms);
	/* the last ten years, one line for each day with data */
	days = amu_device_get_day_summaries(app.device, now - (gint64)3650 * 86400000, now, NULL, &error);
	if (days == NULL) {
		fprintf(stderr, "%s\n", error->message);
		return 1;
	}
	for (guint i = 0; i < days->len; i++) {
		AmuDaySummary *day = &g_array_index(days, AmuDaySummary, i);
		g_autoptr(GDateTime) t = NULL;
		g_autofree char *date = NULL;
		if (day->n_samples == 0)
			continue;
		t = g_date_time_new_from_unix_utc(day->day_start_ms / 1000);
		date = g_date_time_format(t, "%Y-%m-%d");
		printf("day %s: resting heart rate %d, %" G_GINT64_FORMAT " steps, %d min asleep, %" G_GUINT64_FORMAT
		       " samples\n",
		       date, day->resting_heart_rate, day->steps, day->sleep_minutes, day->n_samples);
	}
	g_clear_object(&app.session);
	g_clear_object(&app.device);
	g_main_loop_unref(app.loop);
	return 0;
}
