/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: sync throughput through the BlueZ link against the socket link
 * in the same run. The real tools sync the same simulated band day (same
 * seed) once over sim: (the UNIX socket) and once over bluez: through the
 * BlueZ emulator (tests/bluez: org.bluez on a private dbus-daemon, the
 * characteristic descriptors bridged to the simulator), with
 * AcquireWrite/AcquireNotify and with the WriteValue + notification fallback.
 * The figure is samples/s over BlueZ divided by samples/s over the socket:
 * what the D-Bus path costs, with the same device, data and host code
 * behind both. Best of REPS runs each; links unshaped, so the host is the
 * limit and any cost of the D-Bus path shows.
 */
#include "config.h"

#include <gio/gio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench-children.h"

#define REPS 3
#define DAYS "7"
#define SEED "7"
#define START "2026-11-01"

static const char *tool_amulet = AMU_BENCH_BUILDDIR "/tools/amulet";
static const char *tool_sim = AMU_BENCH_BUILDDIR "/tools/amulet-sim";
static const char *emulator = AMU_BENCH_SRCDIR "/tests/bluez/emulator.py";
static char *bus_dir;

static gboolean
run(GError **error, const char *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocess) child = NULL;
	const char *arg;
	va_list ap;

	va_start(ap, first);
	for (arg = first; arg != NULL; arg = va_arg(ap, const char *))
		g_ptr_array_add(argv, (gpointer)arg);
	va_end(ap);
	g_ptr_array_add(argv, NULL);
	child = g_subprocess_newv((const char *const *)argv->pdata,
				  G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE, error);
	if (child == NULL)
		return FALSE;
	if (!g_subprocess_wait(child, NULL, error))
		return FALSE;
	if (!g_subprocess_get_successful(child)) {
		g_autoptr(GBytes) err = NULL;
		g_autoptr(GInputStream) stream = NULL;
		stream = g_object_ref(g_subprocess_get_stderr_pipe(child));
		err = g_input_stream_read_bytes(stream, 4096, NULL, NULL);
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s failed: %.*s", first,
			    argv->len > 1 ? (const char *)argv->pdata[1] : "", err != NULL ? (int)g_bytes_get_size(err) : 0,
			    err != NULL ? (const char *)g_bytes_get_data(err, NULL) : "");
		return FALSE;
	}
	return TRUE;
}

static GSubprocess *
start_sim(const char *dir, const char *name, GError **error)
{
	g_autofree char *sock = g_strdup_printf("%s/%s.sock", dir, name);
	g_autofree char *state = g_strdup_printf("%s/%s.state", dir, name);
	GSubprocess *sim = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
					    error, tool_sim, "--listen", sock, "--state", state, "--profile", "band",
					    "--days", DAYS, "--seed", SEED, "--start", START, NULL);

	for (int i = 0; sim != NULL && i < 200 && !g_file_test(sock, G_FILE_TEST_EXISTS); i++)
		g_usleep(20000);
	return sim;
}

static void
stop_sim(GSubprocess *sim)
{
	if (sim == NULL)
		return;
	g_subprocess_force_exit(sim);
	g_subprocess_wait(sim, NULL, NULL);
	g_object_unref(sim);
}

typedef enum {
	PATH_SOCKET,
	PATH_BLUEZ,
	PATH_BLUEZ_FALLBACK,
} LinkPath;

/* seconds for one sync of the band day over @path, -1 on failure */
static double
one_sync(const char *dir, LinkPath path, int rep, GError **error)
{
	g_autofree char *name = g_strdup_printf("dev%d-%d", (int)path, rep);
	g_autofree char *host = g_strdup_printf("%s/host-%s", dir, name);
	g_autofree char *sock = g_strdup_printf("%s/%s.sock", dir, name);
	g_autofree char *address = g_strdup_printf("AA:00:00:00:%02X:%02X", (int)path, rep);
	g_autofree char *target = path == PATH_SOCKET ? g_strdup_printf("sim:%s", sock)
						      : g_strdup_printf("bluez:hci0/%s", address);
	GSubprocess *sim = start_sim(dir, name, error);
	gint64 start;
	double seconds = -1;

	if (sim == NULL)
		return -1;
	if (path != PATH_SOCKET &&
	    (!run(error, "/usr/bin/python3", emulator, "ctl", bus_dir, "AddAmuletDevice", "hci0", address, name, sock, "",
		  NULL) ||
	     !run(error, tool_amulet, "--data-dir", host, "scan", "--timeout", "1", NULL)))
		goto out;
	if (!run(error, tool_amulet, "--data-dir", host, "pair", target, "--name", "band", "--yes", NULL))
		goto out;
	if (path == PATH_BLUEZ_FALLBACK &&
	    !run(error, "/usr/bin/python3", emulator, "ctl", bus_dir, "SetAcquireSupported", address, "false", NULL))
		goto out;
	start = g_get_monotonic_time();
	if (!run(error, tool_amulet, "--data-dir", host, "sync", "band", NULL))
		goto out;
	seconds = (double)(g_get_monotonic_time() - start) / 1e6;
out:
	stop_sim(sim);
	return seconds;
}

static gboolean
count_samples(guint64 *n, GError **error)
{
	g_autofree char *out = NULL;
	g_autoptr(GSubprocess) child = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE, error, tool_sim, "--profile",
							"band", "--days", DAYS, "--seed", SEED, "--start", START,
							"--dump-csv", NULL);

	if (child == NULL || !g_subprocess_communicate_utf8(child, NULL, NULL, &out, NULL, error))
		return FALSE;
	*n = 0;
	for (const char *p = out; p != NULL && *p != '\0'; p++)
		*n += *p == '\n';
	return TRUE;
}


int
main(void)
{
	g_autofree char *dir = g_dir_make_tmp("amu-bench-bluez.XXXXXX", NULL);
	g_autofree char *env_path = NULL;
	g_autofree char *env = NULL;
	g_autofree char *pid = g_strdup_printf("%d", (int)getpid());
	g_autoptr(GError) error = NULL;
	static const char *const names[] = {"socket link", "BlueZ, AcquireWrite/AcquireNotify", "BlueZ, WriteValue/notify"};
	double best[3] = {G_MAXDOUBLE, G_MAXDOUBLE, G_MAXDOUBLE};
	guint64 samples = 0;
	int rc = 1;

	if (dir == NULL)
		return 1;
	bus_dir = g_build_filename(dir, "bus", NULL);
	if (!run(&error, "/usr/bin/python3", emulator, "start", bus_dir, "--exit-with", pid, NULL))
		goto out;
	env_path = g_build_filename(bus_dir, "env", NULL);
	if (!g_file_get_contents(env_path, &env, NULL, &error))
		goto out;
	g_strstrip(env);
	if (!g_str_has_prefix(env, "DBUS_SYSTEM_BUS_ADDRESS=")) {
		g_set_error(&error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s holds no bus address", env_path);
		goto out;
	}
	g_setenv("DBUS_SYSTEM_BUS_ADDRESS", env + strlen("DBUS_SYSTEM_BUS_ADDRESS="), TRUE);
	if (!run(&error, "/usr/bin/python3", emulator, "ctl", bus_dir, "AddAdapter", "hci0", "bench", NULL) ||
	    !count_samples(&samples, &error))
		goto out;
	for (int rep = 0; rep < REPS; rep++) {
		for (LinkPath path = PATH_SOCKET; path <= PATH_BLUEZ_FALLBACK; path++) {
			double s = one_sync(dir, path, rep, &error);
			if (s < 0)
				goto out;
			best[path] = MIN(best[path], s);
		}
	}
	for (LinkPath path = PATH_SOCKET; path <= PATH_BLUEZ_FALLBACK; path++) {
		printf("sync of a band week (%" G_GUINT64_FORMAT " samples) over the %s: %.3f s, %.0f samples/s", samples,
		       names[path], best[path], (double)samples / best[path]);
		if (path == PATH_SOCKET)
			printf("\n");
		else
			printf(", %.2f of the socket link\n", best[PATH_SOCKET] / best[path]);
	}
	rc = 0;
out:
	if (error != NULL)
		fprintf(stderr, "bench-bluez: %s\n", error->message);
	run(NULL, "/usr/bin/python3", emulator, "stop", bus_dir, NULL);
	bench_remove_tree(dir);
	g_free(bus_dir);
	return rc;
}
