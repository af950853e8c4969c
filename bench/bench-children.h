/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Shared by the benchmarks that run the real tools as children
 * (bench-sync.c, bench-export.c): wall and CPU clocks, children that die
 * with the benchmark, and a scratch directory. */

double bench_wall_seconds(void);
/* user + system time of @usage */
double bench_cpu_seconds(const struct rusage *usage);
/* removes @path and everything under it (NULL: nothing); links are not followed */
void bench_remove_tree(const char *path);
/* sqlite3_exec() of @sql, its message in @error (G_IO_ERROR_FAILED) */
gboolean bench_sqlite_exec(sqlite3 *db, const char *sql, GError **error);

/* Makes the scratch directory (/tmp/PREFIX-XXXXXX), and on exit or on
 * SIGINT/SIGTERM/SIGHUP stops every child and removes it; SIGPIPE is
 * ignored. Returns the directory, or NULL with @error set. */
const char *bench_children_init(const char *prefix, GError **error);

/* Starts @argv with stdin from /dev/null and stdout and stderr into files
 * (@err_path NULL: with stdout); the child dies with us even if we are
 * killed outright. */
pid_t bench_spawn(const char *const *argv, const char *out_path, const char *err_path, GError **error);
/* Reaps @pid within @timeout_s (< 0: no limit); TRUE if it exited. Sleeps in
 * poll() on a pidfd, so waiting takes no CPU from what is measured. */
gboolean bench_child_wait(pid_t pid, double timeout_s, int *status, struct rusage *usage);
/* SIGTERM to every child, SIGKILL to whoever is left after 5 s, all reaped;
 * returns the CPU time (user + sys) they used */
double bench_children_stop_all(void);
/* Waits until amulet-sim @pid logs its "listening on" line into @log_path;
 * fails if it exits first or @deadline (bench_wall_seconds()) passes */
gboolean bench_sim_wait_ready(pid_t pid, const char *log_path, double deadline, GError **error);

/* One part of a benchmark, run in a directory of its own */
typedef struct {
	const char *name;
	gboolean (*func)(const char *dir, GError **error);
} BenchPart;

/* The start of a benchmark's main(): sets @wanted to the @parts the
 * command line names (all of them with no argument), checks that @tools
 * (NULL-terminated paths) are built, makes the scratch directory
 * (bench_children_init() with @prog) and prints a line with the CPUs, the
 * load and that directory. Returns the directory, or NULL with @status set
 * (2 for a usage error) and the reason on stderr. */
const char *bench_main_begin(const char *prog, int argc, char **argv, const BenchPart *parts, guint n_parts,
			     gboolean *wanted, const char *const *tools, int *status);
/* Runs each wanted part in a new directory under @temp_root, stops its
 * children and removes the directory after it; returns 0, or 1 if any part
 * failed (its error on stderr). */
int bench_run_parts(const char *prog, const char *temp_root, const BenchPart *parts, guint n_parts,
		    const gboolean *wanted);

G_END_DECLS
