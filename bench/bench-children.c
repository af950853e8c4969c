/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-children.h"

/* What the benchmarks that drive the real tools share: children that die
 * with the benchmark, reaped without spending CPU, and a scratch directory
 * removed at exit or on a signal. */

double
bench_wall_seconds(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

double
bench_cpu_seconds(const struct rusage *usage)
{
	return (double)usage->ru_utime.tv_sec + (double)usage->ru_utime.tv_usec / 1e6 +
	       (double)usage->ru_stime.tv_sec + (double)usage->ru_stime.tv_usec / 1e6;
}


#define MAX_CHILDREN 256
static volatile pid_t children[MAX_CHILDREN];
static volatile sig_atomic_t n_children;
static char *bench_temp_root;

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void
bench_remove_tree(const char *path)
{
	if (path != NULL)
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
child_forget(pid_t pid)
{
	for (int i = 0; i < n_children; i++) {
		if (children[i] == pid) {
			children[i] = children[n_children - 1];
			n_children--;
			return;
		}
	}
}

/* Starts @argv with stdin from /dev/null and stdout and stderr into files;
 * the child dies with us even if we are killed outright. */
pid_t
bench_spawn(const char *const *argv, const char *out_path, const char *err_path, GError **error)
{
	int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int err_fd = err_path != NULL ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : out_fd;
	sigset_t block, old;
	pid_t pid = -1;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	/* no signal between fork and registering: the child must not escape */
	sigprocmask(SIG_BLOCK, &block, &old);
	if (in_fd >= 0 && out_fd >= 0 && err_fd >= 0 && n_children < MAX_CHILDREN)
		pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		dup2(in_fd, STDIN_FILENO);
		dup2(out_fd, STDOUT_FILENO);
		dup2(err_fd, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid > 0)
		children[n_children++] = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (in_fd >= 0)
		close(in_fd);
	if (err_fd >= 0 && err_fd != out_fd)
		close(err_fd);
	if (out_fd >= 0)
		close(out_fd);
	if (pid < 0)
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot start %s", argv[0]);
	return pid;
}

/* Reaps @pid within @timeout_s (< 0: no limit); TRUE if it exited. Sleeps
 * in poll() on a pidfd rather than polling wait4(), so waiting takes no CPU
 * from what is measured (a 1 ms poll if the kernel has no pidfd). */
gboolean
bench_child_wait(pid_t pid, double timeout_s, int *status, struct rusage *usage)
{
	double deadline = bench_wall_seconds() + timeout_s;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct rusage ignored;
	int ignored_status;
	gboolean exited = FALSE;

	for (;;) {
		pid_t done = wait4(pid, status != NULL ? status : &ignored_status, WNOHANG,
				   usage != NULL ? usage : &ignored);
		double left = deadline - bench_wall_seconds();
		if (done == pid || (done < 0 && errno != EINTR)) {
			exited = TRUE;
			break;
		}
		if (timeout_s >= 0 && left <= 0)
			break;
		if (pidfd >= 0) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
			poll(&pfd, 1, timeout_s < 0 ? -1 : (int)(left * 1000) + 1);
		} else {
			g_usleep(1000);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	if (exited)
		child_forget(pid);
	return exited;
}

/* SIGTERM to all, SIGKILL to whoever is left after 5 s, all reaped; returns
 * the CPU time (user + sys) they used */
double
bench_children_stop_all(void)
{
	double deadline = bench_wall_seconds() + 5, cpu = 0;

	for (int i = 0; i < n_children; i++)
		kill(children[i], SIGTERM);
	while (n_children > 0) {
		pid_t pid = children[0];
		struct rusage usage = {0};
		if (!bench_child_wait(pid, MAX(deadline - bench_wall_seconds(), 0), NULL, &usage)) {
			kill(pid, SIGKILL);
			bench_child_wait(pid, -1, NULL, &usage);
		}
		cpu += bench_cpu_seconds(&usage);
	}
	return cpu;
}

static void
on_signal(int signum)
{
	for (int i = 0; i < n_children; i++)
		kill(children[i], SIGKILL);
	for (int i = 0; i < n_children; i++)
		waitpid(children[i], NULL, 0);
	n_children = 0;
	/* best effort: we are going down anyway */
	bench_remove_tree(bench_temp_root);
	signal(signum, SIG_DFL);
	raise(signum);
}

static void
cleanup_at_exit(void)
{
	bench_children_stop_all();
	bench_remove_tree(bench_temp_root);
}

gboolean
bench_sim_wait_ready(pid_t pid, const char *log_path, double deadline, GError **error)
{
	for (;;) {
		g_autofree char *log = NULL;
		if (g_file_get_contents(log_path, &log, NULL, NULL) && strstr(log, " listening on ") != NULL)
			return TRUE;
		if (bench_child_wait(pid, 0, NULL, NULL)) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "amulet-sim exited: %s",
				    log != NULL ? g_strstrip(log) : "");
			return FALSE;
		}
		if (bench_wall_seconds() > deadline) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "amulet-sim (%s) not listening in time",
				    log_path);
			return FALSE;
		}
		g_usleep(2000);
	}
}

const char *
bench_children_init(const char *prefix, GError **error)
{
	g_autofree char *template = g_strdup_printf("%s-XXXXXX", prefix);

	bench_temp_root = g_dir_make_tmp(template, error);
	if (bench_temp_root == NULL)
		return NULL;
	atexit(cleanup_at_exit);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	return bench_temp_root;
}

gboolean
bench_sqlite_exec(sqlite3 *db, const char *sql, GError **error)
{
	char *message = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", sql, message);
		sqlite3_free(message);
		return FALSE;
	}
	return TRUE;
}

const char *
bench_main_begin(const char *prog, int argc, char **argv, const BenchPart *parts, guint n_parts, gboolean *wanted,
		 const char *const *tools, int *status)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *load = NULL;
	g_autofree char *prefix = g_strdup_printf("amu-%s", prog);
	double one = -1, five = -1;
	const char *temp_root;

	for (guint p = 0; p < n_parts; p++)
		wanted[p] = argc == 1;
	for (int i = 1; i < argc; i++) {
		guint p = 0;

		while (p < n_parts && strcmp(argv[i], parts[p].name) != 0)
			p++;
		if (p == n_parts) {
			fprintf(stderr, "usage: %s", prog);
			for (guint q = 0; q < n_parts; q++)
				fprintf(stderr, " [%s]", parts[q].name);
			fprintf(stderr, "\n");
			*status = 2;
			return NULL;
		}
		wanted[p] = TRUE;
	}
	*status = 1;
	if (sodium_init() < 0)
		return NULL;
	for (const char *const *tool = tools; *tool != NULL; tool++) {
		if (access(*tool, X_OK) != 0) {
			fprintf(stderr, "%s: build %s first (make bench does)\n", prog, *tool);
			return NULL;
		}
	}
	temp_root = bench_children_init(prefix, &error);
	if (temp_root == NULL) {
		fprintf(stderr, "%s: %s\n", prog, error->message);
		return NULL;
	}
	if (g_file_get_contents("/proc/loadavg", &load, NULL, NULL))
		sscanf(load, "%lf %lf", &one, &five);
	printf("%s: %ld CPUs, load average %.2f (1 min), %.2f (5 min) before the run; other work on\n"
	       "the machine shows in the wall times; temporary files in %s\n\n",
	       prog, sysconf(_SC_NPROCESSORS_ONLN), one, five, temp_root);
	*status = 0;
	return temp_root;
}

int
bench_run_parts(const char *prog, const char *temp_root, const BenchPart *parts, guint n_parts,
		const gboolean *wanted)
{
	int status = 0;

	for (guint p = 0; p < n_parts; p++) {
		g_autoptr(GError) error = NULL;
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
			fprintf(stderr, "%s: %s: %s\n", prog, parts[p].name, error->message);
			status = 1;
		}
		printf("\n");
		fflush(stdout);
	}
	return status;
}
