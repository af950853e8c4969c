/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <time.h>

G_BEGIN_DECLS

/* The link benchmark (bench-link.c) and its line-rate baseline
 * (bench-linerate.c): the clocks both read, and what the stack's socket run
 * hands the baseline to move again. */

/* every message is a ping padded with this many bytes */
#define BENCH_PAYLOAD_BYTES 4096

static inline double
bench_clock_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU of the whole process, every thread and the kernel's share */
static inline double
bench_process_cpu_seconds(void)
{
	return bench_clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static inline double
bench_thread_cpu_seconds(void)
{
	return bench_clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}

/* What the stack put on the socket while messages flowed, as the host's link
 * counted it: the line-rate baseline moves the same. */
typedef struct {
	int n_messages;		/* each of BENCH_PAYLOAD_BYTES */
	unsigned int window;	/* negotiated: data datagrams unacked at most */
	guint64 data_datagrams; /* host -> device */
	guint64 data_bytes;
	guint64 ack_datagrams; /* device -> host, read by the host before the end */
	guint64 ack_bytes;
} BenchWireCounts;

typedef struct {
	double mbs; /* one thread: per CPU second of the process; two: wall clock */
	double wall_mbs;
	double sender_us; /* two threads: CPU per message */
	double receiver_us;
	double acks_per_message;
	BenchWireCounts wire; /* the stack's run it copied */
} BenchLineCost;

/* Moves the datagrams of @wire over a fresh socketpair, both ends in this
 * thread (@threads FALSE) or a thread per end, and fills @cost; FALSE, with
 * the reason printed on stderr, if @wire is empty or the run failed. */
gboolean bench_line_rate_measure(const BenchWireCounts *wire,
				 gboolean threads,
				 BenchLineCost *cost);

G_END_DECLS
