/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amu-link.h"
#include "bench-linerate.h"

/* The link's line rate, the baseline of bench-link's socket figures: what
 * the stack's socket run just before put on the wire, as its host's link
 * counted it (data datagrams and their bytes out, acks and theirs back),
 * moved over a fresh socketpair with bare sendmmsg/recvmmsg: no crypto, no
 * framing, no GLib. Flow control is the framer's: at most a window (8) of
 * data datagrams unacked; the receiver acks at half the window and at each
 * message end, and sends the acks one read produced in one sendmmsg, as the
 * corked link does. As the stack, in one thread (one poll() over both ends
 * before each round of reads, as one GMainLoop; per CPU second of the
 * process) and with a thread per end blocking in poll() (wall clock).
 *
 * It differs from the stack's wire only in that the data bytes are spread
 * evenly over the datagrams (the same count and total, not full fragments
 * and a short last one), and its acks, as long as the stack's, are made by
 * the rule, not copied; bench-link prints both ack counts. */

/* as the socket link: datagrams per recvmmsg, one byte over the largest */
#define LINE_BATCH 64
#define LINE_SLOT (AMU_LINK_MTU_DEFAULT + 1)
/* a lost datagram would stall a run: give up after this long with nothing */
#define LINE_POLL_TIMEOUT_MS 10000

typedef enum {
	LINE_SENDER,
	LINE_RECEIVER,
} LineSide;

typedef struct {
	int fd;
	gboolean failed;
	struct mmsghdr rx_msgs[LINE_BATCH];
	struct iovec rx_iov[LINE_BATCH];
	uint8_t rx_slots[LINE_BATCH][LINE_SLOT];
	struct mmsghdr tx_msgs[LINE_BATCH];
	struct iovec tx_iov[LINE_BATCH];
	uint8_t tx_acks[LINE_BATCH][LINE_SLOT]; /* the receiver's acks */
	double cpu;
} LineEnd;

typedef struct {
	/* the plan, read-only once a run starts */
	guint64 n_messages;
	guint64 n_data;	    /* data datagrams in all */
	guint64 data_bytes; /* their bytes in all */
	size_t ack_len;
	unsigned int window;
	uint8_t data[LINE_SLOT]; /* what every data datagram carries */
	LineEnd ends[2];	 /* by LineSide */
	/* sender */
	guint64 sent;
	unsigned int inflight;
	double start_wall;
	/* receiver */
	guint64 received;
	guint64 messages;
	unsigned int unacked;
	guint64 acks;
	double end_wall;
	double process_cpu; /* one thread */
} LineRun;

/* where part @i starts when @total is split into @parts nearly equal parts:
 * the data bytes over the datagrams, the datagrams over the messages */
static guint64
line_share(guint64 i, guint64 total, guint64 parts)
{
	return i * total / parts;
}

static size_t
line_data_len(const LineRun *run, guint64 index)
{
	return (size_t)(line_share(index + 1, run->data_bytes, run->n_data) -
			line_share(index, run->data_bytes, run->n_data));
}

static gboolean
line_fail(LineRun *run, LineSide side, const char *what, int errsv)
{
	fprintf(stderr,
		"bench: line rate, %s: %s%s%s\n",
		side == LINE_SENDER ? "sender" : "receiver",
		what,
		errsv != 0 ? ": " : "",
		errsv != 0 ? g_strerror(errsv) : "");
	run->ends[side].failed = TRUE;
	/* the other end, blocked in poll(), sees the hangup and stops too */
	shutdown(run->ends[side].fd, SHUT_RDWR);
	return FALSE;
}

static gboolean
line_send_all(LineRun *run, LineSide side, unsigned int n)
{
	LineEnd *end = &run->ends[side];
	unsigned int done = 0;

	while (done < n) {
		int sent =
		  sendmmsg(end->fd, end->tx_msgs + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0)
			return line_fail(run, side, "sendmmsg", errno);
		done += (unsigned int)sent;
	}
	return TRUE;
}

/* every data datagram the window allows, in one sendmmsg */
static gboolean
line_send_window(LineRun *run)
{
	LineEnd *end = &run->ends[LINE_SENDER];
	unsigned int n = 0;

	while (run->inflight + n < run->window && run->sent + n < run->n_data && n < LINE_BATCH) {
		end->tx_iov[n].iov_base = run->data;
		end->tx_iov[n].iov_len = line_data_len(run, run->sent + n);
		n++;
	}
	if (n == 0)
		return TRUE;
	if (!line_send_all(run, LINE_SENDER, n))
		return FALSE;
	run->sent += n;
	run->inflight += n;
	return TRUE;
}

/* reads what is waiting: how many datagrams, or -1 with the reason printed
 * on a close or an error */
static int
line_read(LineRun *run, LineSide side)
{
	LineEnd *end = &run->ends[side];
	int n = recvmmsg(end->fd, end->rx_msgs, LINE_BATCH, MSG_DONTWAIT, NULL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		line_fail(run, side, "recvmmsg", errno);
		return -1;
	}
	/* SOCK_SEQPACKET: a zero-length read is the other end's close */
	for (int i = 0; i < n; i++) {
		if (end->rx_msgs[i].msg_len == 0)
			n = 0;
	}
	if (n == 0) {
		line_fail(run, side, "the other end closed", 0);
		return -1;
	}
	return n;
}

/* the acks that came back release the window; then the window goes out again */
static gboolean
line_sender_step(LineRun *run)
{
	LineEnd *end = &run->ends[LINE_SENDER];
	int n = line_read(run, LINE_SENDER);

	if (n < 0)
		return FALSE;
	for (int i = 0; i < n; i++) {
		if (end->rx_msgs[i].msg_len != run->ack_len || end->rx_slots[i][0] > run->inflight)
			return line_fail(
			  run, LINE_SENDER, "an ack of the wrong length or count", 0);
		run->inflight -= end->rx_slots[i][0];
	}
	return line_send_window(run);
}

/* data in, checked for length; acks by the framer's rule, out in one sendmmsg */
static gboolean
line_receiver_step(LineRun *run)
{
	LineEnd *end = &run->ends[LINE_RECEIVER];
	unsigned int half = MAX(1u, run->window / 2u), n_acks = 0;
	int n = line_read(run, LINE_RECEIVER);

	if (n < 0)
		return FALSE;
	for (int i = 0; i < n; i++) {
		gboolean message_end;

		if (run->received >= run->n_data ||
		    end->rx_msgs[i].msg_len != line_data_len(run, run->received))
			return line_fail(
			  run, LINE_RECEIVER, "a data datagram of the wrong length", 0);
		run->received++;
		run->unacked++;
		message_end =
		  run->received == line_share(run->messages + 1, run->n_data, run->n_messages);
		if (message_end)
			run->messages++;
		if (run->unacked >= half || message_end) {
			end->tx_acks[n_acks][0] = (uint8_t)run->unacked;
			end->tx_iov[n_acks].iov_base = end->tx_acks[n_acks];
			end->tx_iov[n_acks].iov_len = run->ack_len;
			n_acks++;
			run->unacked = 0;
		}
	}
	if (n_acks == 0)
		return TRUE;
	run->acks += n_acks;
	return line_send_all(run, LINE_RECEIVER, n_acks);
}

/* one end blocks until it has something to read */
static gboolean
line_wait(LineRun *run, LineSide side)
{
	struct pollfd pfd = { .fd = run->ends[side].fd, .events = POLLIN };
	int n;

	do
		n = poll(&pfd, 1, LINE_POLL_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return line_fail(run, side, "poll", errno);
	if (n == 0)
		return line_fail(run, side, "nothing arrived for 10 s", 0);
	return TRUE;
}

/* both ends in this thread, one poll() over both before each round of reads,
 * as one GMainLoop drives both links */
static gboolean
line_run_one_thread(LineRun *run)
{
	double cpu_start = bench_process_cpu_seconds();

	run->start_wall = bench_clock_seconds(CLOCK_MONOTONIC);
	if (!line_send_window(run))
		return FALSE;
	while (run->received < run->n_data) {
		struct pollfd pfd[2] = {
			{ .fd = run->ends[LINE_SENDER].fd, .events = POLLIN },
			{ .fd = run->ends[LINE_RECEIVER].fd, .events = POLLIN },
		};
		int n = poll(pfd, 2, LINE_POLL_TIMEOUT_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return line_fail(run,
					 LINE_SENDER,
					 n < 0 ? "poll" : "nothing arrived for 10 s",
					 n < 0 ? errno : 0);
		if (pfd[0].revents != 0 && !line_sender_step(run))
			return FALSE;
		if (pfd[1].revents != 0 && !line_receiver_step(run))
			return FALSE;
	}
	run->end_wall = bench_clock_seconds(CLOCK_MONOTONIC);
	run->process_cpu = bench_process_cpu_seconds() - cpu_start;
	return TRUE;
}

static gpointer
line_sender_thread(gpointer user_data)
{
	LineRun *run = user_data;
	double cpu_start = bench_thread_cpu_seconds();

	run->start_wall = bench_clock_seconds(CLOCK_MONOTONIC);
	if (!line_send_window(run))
		return NULL;
	/* to the last ack, so the receiver never writes to a closed socket */
	while (run->sent < run->n_data || run->inflight > 0)
		if (!line_wait(run, LINE_SENDER) || !line_sender_step(run))
			return NULL;
	run->ends[LINE_SENDER].cpu = bench_thread_cpu_seconds() - cpu_start;
	return NULL;
}

static gpointer
line_receiver_thread(gpointer user_data)
{
	LineRun *run = user_data;
	double cpu_start = bench_thread_cpu_seconds();

	while (run->received < run->n_data)
		if (!line_wait(run, LINE_RECEIVER) || !line_receiver_step(run))
			return NULL;
	run->end_wall = bench_clock_seconds(CLOCK_MONOTONIC);
	run->ends[LINE_RECEIVER].cpu = bench_thread_cpu_seconds() - cpu_start;
	return NULL;
}

gboolean
bench_line_rate_measure(const BenchWireCounts *wire, gboolean threads, BenchLineCost *cost)
{
	g_autofree LineRun *run = g_new0(LineRun, 1);
	int fds[2];
	gboolean ok;

	if (wire->n_messages <= 0 || wire->data_datagrams < (guint64)wire->n_messages ||
	    wire->window == 0) {
		fprintf(stderr,
			"bench: line rate: the stack's run sent fewer datagrams than messages\n");
		return FALSE;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
		perror("bench: socketpair");
		return FALSE;
	}
	run->n_messages = (guint64)wire->n_messages;
	run->n_data = wire->data_datagrams;
	run->data_bytes = wire->data_bytes;
	/* the framer's standalone ack is 3 bytes; its length as the host read it */
	run->ack_len =
	  wire->ack_datagrams > 0
	    ? (size_t)((wire->ack_bytes + wire->ack_datagrams / 2) / wire->ack_datagrams)
	    : 3;
	run->ack_len = CLAMP(run->ack_len, 1, LINE_SLOT - 1);
	run->window = MIN(wire->window, LINE_BATCH);
	memset(run->data, 0xa5, sizeof(run->data));
	for (int side = 0; side < 2; side++) {
		LineEnd *end = &run->ends[side];

		end->fd = fds[side];
		for (unsigned int i = 0; i < LINE_BATCH; i++) {
			end->rx_iov[i].iov_base = end->rx_slots[i];
			end->rx_iov[i].iov_len = LINE_SLOT;
			end->rx_msgs[i].msg_hdr.msg_iov = &end->rx_iov[i];
			end->rx_msgs[i].msg_hdr.msg_iovlen = 1;
			end->tx_msgs[i].msg_hdr.msg_iov = &end->tx_iov[i];
			end->tx_msgs[i].msg_hdr.msg_iovlen = 1;
		}
	}
	if (threads) {
		GThread *receiver = g_thread_new("bench-line-rx", line_receiver_thread, run);
		GThread *sender = g_thread_new("bench-line-tx", line_sender_thread, run);

		g_thread_join(sender);
		g_thread_join(receiver);
		ok = !run->ends[LINE_SENDER].failed && !run->ends[LINE_RECEIVER].failed;
	} else {
		ok = line_run_one_thread(run);
	}
	close(fds[0]);
	close(fds[1]);
	if (!ok)
		return FALSE;
	cost->wall_mbs =
	  (double)run->n_messages * BENCH_PAYLOAD_BYTES / (run->end_wall - run->start_wall) / 1e6;
	if (threads) {
		cost->mbs = cost->wall_mbs;
		cost->sender_us = run->ends[LINE_SENDER].cpu * 1e6 / (double)run->n_messages;
		cost->receiver_us = run->ends[LINE_RECEIVER].cpu * 1e6 / (double)run->n_messages;
	} else {
		cost->mbs = (double)run->n_messages * BENCH_PAYLOAD_BYTES / run->process_cpu / 1e6;
		cost->sender_us = cost->receiver_us = 0;
	}
	cost->acks_per_message = (double)run->acks / (double)run->n_messages;
	cost->wire = *wire;
	return TRUE;
}
