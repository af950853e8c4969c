/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: every figure is a ratio against a libsodium baseline measured
 * in the same run, so it means the same on a slow and a fast machine. Each
 * figure, baselines included, is the best of RUNS (3) runs.
 *
 * - CPU per first pairing (Noise XX + committed code) and per reconnect
 *   (Noise KK) against one raw X25519 scalar multiplication. Both peers run
 *   in this process, back to back in memory; the CPU time of every call into
 *   a peer (creating it, starting it, each packet it receives, freeing it) is
 *   charged to that peer with CLOCK_THREAD_CPUTIME_ID, so the host's cost is
 *   reported apart from the device's. Reading that clock is a system call
 *   here; its cost is calibrated and taken off each timed call. The total is
 *   the whole loop (both sides and the bench's own packet shuffling).
 * - Framing + encryption throughput of 4 KiB messages (pings with padding)
 *   at ATT MTU 517 against raw libsodium ChaChaPoly seal+open of 4 KiB:
 *   in memory (channel -> framer -> framer -> channel, no I/O), and over the
 *   real socket link (lib/amu-link-socket.c on a UNIX SOCK_SEQPACKET
 *   socketpair, one datagram per fragment, both connections driven by one
 *   GMainLoop in this thread). Both count host (sender) and device
 *   (receiver) CPU together, including the acks going back; the socket
 *   figure includes the kernel's share of the system calls, which bound it:
 *   a message is 9 fragments and about 3 acks, moved in about 3 rounds of
 *   poll + recvmmsg + sendmmsg (window 8, acks due at 4 and at each end). */
#include "config.h"

#include <glib-unix.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "amu-channel.h"
#include "amu-connection.h"
#include "amu-framer.h"
#include "amu-link.h"

#define PAYLOAD_BYTES 4096
#define BENCH_MTU 517

static double
clock_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static double
thread_seconds(void)
{
	return clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}

/* ---------------------------------------------------------------- handshakes */

typedef enum {
	SIDE_HOST,
	SIDE_DEVICE,
} Side;

/* CPU charged to each side, and what one empty timed interval costs */
static double side_seconds[2];
static double timer_overhead;

#define CHARGE(side, call)                                                            \
	do {                                                                          \
		double charge_t0_ = thread_seconds();                                 \
		call;                                                                 \
		side_seconds[side] += thread_seconds() - charge_t0_ - timer_overhead; \
	} while (0)

static void
calibrate_timer(void)
{
	const int n = 20000;
	double sum = 0;

	for (int i = 0; i < n; i++) {
		double t = thread_seconds();
		sum += thread_seconds() - t;
	}
	timer_overhead = sum / n;
}

typedef struct {
	Side side;
	AmuChannel *channel;
	AmuFramer *framer;
	GPtrArray *outbox;
	guint64 received;
} Peer;

static void
tx_queue(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
	g_ptr_array_add(((Peer *)user_data)->outbox, g_bytes_new(packet, len));
}

static void
event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	Peer *peer = user_data;
	if (event->type == AMU_CHANNEL_EVENT_CODE)
		amu_channel_confirm(channel, TRUE, TRUE, NULL);
	else if (event->type == AMU_CHANNEL_EVENT_PAIRED && amu_channel_get_state(channel) == AMU_CHANNEL_STATE_STORING_BOND)
		amu_channel_bond_stored(channel, NULL);
	else if (event->type == AMU_CHANNEL_EVENT_MESSAGE)
		peer->received++;
}

static void
peer_init_untimed(Peer *peer, AmuChannelRole role, const uint8_t secret[32])
{
	static uint8_t id[AMU_CHANNEL_DEVICE_ID_BYTES];
	memset(peer, 0, sizeof(*peer));
	peer->side = role == AMU_CHANNEL_ROLE_HOST ? SIDE_HOST : SIDE_DEVICE;
	peer->channel = amu_channel_new(role, NULL, NULL);
	peer->outbox = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	amu_channel_set_local_static(peer->channel, secret);
	amu_channel_set_tx_func(peer->channel, tx_queue, peer);
	amu_channel_set_event_func(peer->channel, event_cb, peer);
	if (role == AMU_CHANNEL_ROLE_HOST) {
		Amulet__V1__HostHello hello = AMULET__V1__HOST_HELLO__INIT;
		hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
		amu_channel_set_host_hello(peer->channel, &hello);
	} else {
		Amulet__V1__DeviceHello hello = AMULET__V1__DEVICE_HELLO__INIT;
		Amulet__V1__Disclosure disclosure = AMULET__V1__DISCLOSURE__INIT;
		hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
		hello.device_id.data = id;
		hello.device_id.len = sizeof(id);
		amu_channel_set_device_hello(peer->channel, &hello, &disclosure);
	}
}

static void
peer_init(Peer *peer, AmuChannelRole role, const uint8_t secret[32])
{
	CHARGE(role == AMU_CHANNEL_ROLE_HOST ? SIDE_HOST : SIDE_DEVICE, peer_init_untimed(peer, role, secret));
}

static void
peer_clear(Peer *peer)
{
	CHARGE(peer->side, amu_channel_unref(peer->channel));
	amu_framer_unref(peer->framer);
	g_ptr_array_unref(peer->outbox);
}

/* deliver queued packets both ways, each charged to the side receiving it */
static void
pump(Peer *a, Peer *b)
{
	while (a->outbox->len > 0 || b->outbox->len > 0) {
		Peer *from = a->outbox->len > 0 ? a : b;
		Peer *to = from == a ? b : a;
		g_autoptr(GBytes) packet = g_bytes_ref(g_ptr_array_index(from->outbox, 0));
		g_ptr_array_remove_index(from->outbox, 0);
		CHARGE(to->side, amu_channel_rx(to->channel, g_bytes_get_data(packet, NULL),
						g_bytes_get_size(packet), NULL));
	}
}

typedef struct {
	double host_us;
	double device_us;
	double total_us;
} HandshakeCost;

/* one pairing (remote_static NULL) or one reconnect, both sides charged */
static gboolean
run_handshake(AmuChannelMode mode, const uint8_t host_secret[32], const uint8_t device_secret[32],
	      const uint8_t host_public[32], const uint8_t device_public[32])
{
	Peer host, device;
	gboolean ok;

	peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	if (mode == AMU_CHANNEL_MODE_RECONNECT)
		CHARGE(SIDE_DEVICE, amu_channel_add_bonded_peer(device.channel, host_public));
	CHARGE(SIDE_HOST, amu_channel_start(host.channel, mode,
					    mode == AMU_CHANNEL_MODE_RECONNECT ? device_public : NULL, NULL));
	pump(&host, &device);
	ok = amu_channel_get_state(host.channel) == AMU_CHANNEL_STATE_OPEN &&
	     amu_channel_get_state(device.channel) == AMU_CHANNEL_STATE_OPEN;
	peer_clear(&host);
	peer_clear(&device);
	return ok;
}

static gboolean
measure_handshakes(AmuChannelMode mode, int n, const uint8_t host_secret[32], const uint8_t device_secret[32],
		   const uint8_t host_public[32], const uint8_t device_public[32], HandshakeCost *cost)
{
	double t0;

	/* warm up allocator and caches */
	for (int i = 0; i < 10; i++)
		if (!run_handshake(mode, host_secret, device_secret, host_public, device_public))
			return FALSE;
	side_seconds[SIDE_HOST] = side_seconds[SIDE_DEVICE] = 0;
	t0 = cpu_seconds();
	for (int i = 0; i < n; i++)
		if (!run_handshake(mode, host_secret, device_secret, host_public, device_public))
			return FALSE;
	cost->total_us = (cpu_seconds() - t0) * 1e6 / n;
	cost->host_us = side_seconds[SIDE_HOST] * 1e6 / n;
	cost->device_us = side_seconds[SIDE_DEVICE] * 1e6 / n;
	return TRUE;
}

/* ---------------------------------------------------------------- throughput in memory */

/* framing path: channel tx -> framer -> datagrams -> peer framer -> peer channel */
static void
channel_to_framer(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
	amu_framer_send(((Peer *)user_data)->framer, packet, len, 0);
}

static void
datagram_to_framer(const uint8_t *datagram, size_t len, void *user_data)
{
	amu_framer_rx(((Peer *)user_data)->framer, datagram, len, 0);
}

static void
framer_to_channel(const uint8_t *message, size_t len, void *user_data)
{
	amu_channel_rx(((Peer *)user_data)->channel, message, len, NULL);
}

static void
ping_message(Amulet__V1__Message *message, Amulet__V1__Ping *ping, uint8_t *payload)
{
	amulet__v1__message__init(message);
	amulet__v1__ping__init(ping);
	ping->padding.data = payload;
	ping->padding.len = PAYLOAD_BYTES;
	message->body_case = AMULET__V1__MESSAGE__BODY_PING;
	message->ping = ping;
}

/* protobuf + seal + fragment + reassemble + open + parse, no I/O: MB/s */
static double
measure_in_memory(int n_messages, uint8_t *payload, const uint8_t host_secret[32], const uint8_t device_secret[32],
		  const uint8_t host_public[32], const uint8_t device_public[32])
{
	Peer host, device;
	Amulet__V1__Message message;
	Amulet__V1__Ping ping;
	double t0, mbs;

	peer_init_untimed(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init_untimed(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	amu_channel_add_bonded_peer(device.channel, host_public);
	host.framer = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, BENCH_MTU, AMU_FRAMER_WINDOW_MAX);
	device.framer = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, BENCH_MTU, AMU_FRAMER_WINDOW_MAX);
	amu_framer_set_tx_func(host.framer, datagram_to_framer, &device, NULL);
	amu_framer_set_tx_func(device.framer, datagram_to_framer, &host, NULL);
	amu_framer_set_message_func(host.framer, framer_to_channel, &host, NULL);
	amu_framer_set_message_func(device.framer, framer_to_channel, &device, NULL);
	amu_channel_set_tx_func(host.channel, channel_to_framer, &host);
	amu_channel_set_tx_func(device.channel, channel_to_framer, &device);
	amu_framer_start(host.framer, 0);
	amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL);
	if (amu_channel_get_state(host.channel) != AMU_CHANNEL_STATE_OPEN)
		return -1;
	ping_message(&message, &ping, payload);
	t0 = cpu_seconds();
	for (int i = 0; i < n_messages; i++)
		amu_channel_send(host.channel, &message, NULL);
	mbs = (double)device.received * PAYLOAD_BYTES / (cpu_seconds() - t0) / 1e6;
	if (device.received != (guint64)n_messages) {
		fprintf(stderr, "bench: only %" G_GUINT64_FORMAT " of %d messages arrived in memory\n",
			device.received, n_messages);
		mbs = -1;
	}
	peer_clear(&host);
	peer_clear(&device);
	return mbs;
}

/* ---------------------------------------------------------------- throughput over the socket link */

static void
socket_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	Peer *peer = user_data;
	if (event->type == AMU_CHANNEL_EVENT_MESSAGE)
		peer->received++;
	else if (event->type == AMU_CHANNEL_EVENT_FAILED)
		fprintf(stderr, "bench: socket link failed: %s\n", event->error->message);
}

/* keep this much queued in the host's framer: enough that the link never
 * waits for the sender, bounded so memory stays flat */
#define SOCKET_QUEUE_BYTES (64 * 1024)

/* the same path, over lib/amu-link-socket.c on a socketpair: MB/s */
static double
measure_socket(int n_messages, uint8_t *payload, const uint8_t host_secret[32], const uint8_t device_secret[32],
	       const uint8_t host_public[32], const uint8_t device_public[32], double *wall_mbs)
{
	Peer host, device;
	Amulet__V1__Message message;
	Amulet__V1__Ping ping;
	AmuConnection *host_conn, *device_conn;
	AmuLink *host_link, *device_link;
	int fds[2];
	double t0, w0, mbs = -1;
	int sent = 0;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
		perror("bench: socketpair");
		return -1;
	}
	host_link = amu_link_socket_new_from_fd(fds[0], BENCH_MTU, "bench host end");
	device_link = amu_link_socket_new_from_fd(fds[1], BENCH_MTU, "bench device end");
	peer_init_untimed(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init_untimed(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	amu_channel_add_bonded_peer(device.channel, host_public);
	amu_channel_set_event_func(host.channel, socket_event_cb, &host);
	amu_channel_set_event_func(device.channel, socket_event_cb, &device);
	host_conn = amu_connection_new(host_link, host.channel, AMU_FRAMER_ROLE_CENTRAL);
	device_conn = amu_connection_new(device_link, device.channel, AMU_FRAMER_ROLE_PERIPHERAL);
	amu_connection_start(device_conn, NULL);
	amu_connection_start(host_conn, NULL);
	amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL);
	while (amu_channel_get_state(host.channel) == AMU_CHANNEL_STATE_HANDSHAKE)
		g_main_context_iteration(NULL, TRUE);
	if (amu_channel_get_state(host.channel) == AMU_CHANNEL_STATE_OPEN) {
		ping_message(&message, &ping, payload);
		t0 = cpu_seconds();
		w0 = clock_seconds(CLOCK_MONOTONIC);
		while (device.received < (guint64)n_messages &&
		       amu_channel_get_state(host.channel) == AMU_CHANNEL_STATE_OPEN &&
		       amu_channel_get_state(device.channel) == AMU_CHANNEL_STATE_OPEN) {
			while (sent < n_messages && amu_connection_get_queued_bytes(host_conn) < SOCKET_QUEUE_BYTES) {
				amu_channel_send(host.channel, &message, NULL);
				sent++;
			}
			g_main_context_iteration(NULL, TRUE);
		}
		mbs = (double)device.received * PAYLOAD_BYTES / (cpu_seconds() - t0) / 1e6;
		*wall_mbs = (double)device.received * PAYLOAD_BYTES / (clock_seconds(CLOCK_MONOTONIC) - w0) / 1e6;
	}
	if (device.received != (guint64)n_messages) {
		fprintf(stderr, "bench: only %" G_GUINT64_FORMAT " of %d messages arrived over the socket\n",
			device.received, n_messages);
		mbs = -1;
	}
	amu_connection_close(host_conn);
	amu_connection_close(device_conn);
	amu_connection_unref(host_conn);
	amu_connection_unref(device_conn);
	amu_link_unref(host_link);
	amu_link_unref(device_link);
	peer_clear(&host);
	peer_clear(&device);
	while (g_main_context_iteration(NULL, FALSE))
		;
	return mbs;
}

static double
measure_x25519(int n, const uint8_t secret[32], const uint8_t peer_public[32])
{
	uint8_t shared[32];
	double t0 = cpu_seconds();

	for (int i = 0; i < n; i++)
		if (crypto_scalarmult(shared, secret, peer_public) != 0)
			return -1;
	return (cpu_seconds() - t0) * 1e6 / n;
}

/* raw libsodium: encrypt + decrypt 4 KiB, MB/s */
static double
measure_raw(int n_messages, uint8_t *payload)
{
	static uint8_t sealed[PAYLOAD_BYTES + 16];
	uint8_t key[32], nonce[12] = {0};
	unsigned long long sealed_len;
	double t0;

	randombytes_buf(key, sizeof(key));
	t0 = cpu_seconds();
	for (int i = 0; i < n_messages; i++) {
		nonce[0] = (uint8_t)i;
		crypto_aead_chacha20poly1305_ietf_encrypt(sealed, &sealed_len, payload, PAYLOAD_BYTES, NULL, 0, NULL,
							  nonce, key);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(payload, NULL, NULL, sealed, sealed_len, NULL, 0, nonce,
							      key) != 0)
			return -1;
	}
	return (double)n_messages * PAYLOAD_BYTES / (cpu_seconds() - t0) / 1e6;
}

/* Every figure is the best of this many runs: another process on the machine
 * only ever makes a run slower, and baseline and stack are treated alike. */
#define RUNS 3

int
main(void)
{
	uint8_t host_secret[32], device_secret[32], host_public[32], device_public[32];
	const int n_dh = 2000, n_pair = 300, n_reconnect = 500, n_messages = 20000;
	double x25519_us = G_MAXDOUBLE, raw_mbs = 0, memory_mbs = 0, socket_mbs = 0, socket_wall_mbs = 0;
	HandshakeCost pair = {.total_us = G_MAXDOUBLE}, reconnect = {.total_us = G_MAXDOUBLE};
	static uint8_t payload[PAYLOAD_BYTES];

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(host_secret, 32);
	randombytes_buf(device_secret, 32);
	crypto_scalarmult_base(host_public, host_secret);
	crypto_scalarmult_base(device_public, device_secret);
	randombytes_buf(payload, sizeof(payload));
	calibrate_timer();

	for (int run = 0; run < RUNS; run++) {
		HandshakeCost cost;
		double us = measure_x25519(n_dh, host_secret, device_public), mbs, wall_mbs = 0;

		if (us < 0)
			return 1;
		x25519_us = MIN(x25519_us, us);
		if (!measure_handshakes(AMU_CHANNEL_MODE_PAIR, n_pair, host_secret, device_secret, host_public,
					device_public, &cost)) {
			fprintf(stderr, "bench: a pairing did not open\n");
			return 1;
		}
		if (cost.total_us < pair.total_us)
			pair = cost;
		if (!measure_handshakes(AMU_CHANNEL_MODE_RECONNECT, n_reconnect, host_secret, device_secret,
					host_public, device_public, &cost)) {
			fprintf(stderr, "bench: a reconnect did not open\n");
			return 1;
		}
		if (cost.total_us < reconnect.total_us)
			reconnect = cost;
		mbs = measure_raw(n_messages, payload);
		if (mbs < 0)
			return 1;
		raw_mbs = MAX(raw_mbs, mbs);
		mbs = measure_in_memory(n_messages, payload, host_secret, device_secret, host_public, device_public);
		if (mbs < 0)
			return 1;
		memory_mbs = MAX(memory_mbs, mbs);
		mbs = measure_socket(n_messages, payload, host_secret, device_secret, host_public, device_public,
				     &wall_mbs);
		if (mbs < 0)
			return 1;
		if (mbs > socket_mbs) {
			socket_mbs = mbs;
			socket_wall_mbs = wall_mbs;
		}
	}

	printf("x25519 (raw libsodium):            %8.1f us per scalar multiplication\n", x25519_us);
	printf("first pairing (XX + code), host:   %8.1f us CPU  (%5.1f x25519; target < 3000 us)\n", pair.host_us,
	       pair.host_us / x25519_us);
	printf("                           device: %8.1f us CPU  (%5.1f x25519)\n", pair.device_us,
	       pair.device_us / x25519_us);
	printf("                           total:  %8.1f us CPU  (%5.1f x25519; both sides and the bench)\n",
	       pair.total_us, pair.total_us / x25519_us);
	printf("reconnect (KK), host:              %8.1f us CPU  (%5.1f x25519; target < 1000 us)\n",
	       reconnect.host_us, reconnect.host_us / x25519_us);
	printf("                device:            %8.1f us CPU  (%5.1f x25519)\n", reconnect.device_us,
	       reconnect.device_us / x25519_us);
	printf("                total:             %8.1f us CPU  (%5.1f x25519; both sides and the bench)\n",
	       reconnect.total_us, reconnect.total_us / x25519_us);
	printf("  (per-side figures: thread CPU inside each side's calls, minus %.2f us clock overhead per call)\n",
	       timer_overhead * 1e6);
	printf("raw ChaChaPoly seal+open, 4 KiB:   %8.1f MB/s\n", raw_mbs);
	printf("stack in memory, 4 KiB at MTU 517: %8.1f MB/s  (ratio %.2f to raw)\n", memory_mbs,
	       memory_mbs / raw_mbs);
	printf("stack over socket link, same:      %8.1f MB/s  (ratio %.2f to raw; target >= 200 MB/s, >= 0.3)\n",
	       socket_mbs, socket_mbs / raw_mbs);
	printf("  (both: protobuf, record seal, fragmenting, reassembly, open, parse, acks back, per CPU second\n"
	       "   of both peers; socket: SOCK_SEQPACKET socketpair, one GMainLoop, %.1f MB/s wall clock;\n"
	       "   every figure is the best of %d runs)\n",
	       socket_wall_mbs, RUNS);
	return 0;
}
