/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: CPU per first pairing and per reconnect against raw libsodium
 * X25519 in the same run, and framing + encryption throughput of 4 KiB
 * messages at ATT MTU 517 against raw libsodium ChaChaPoly in the same run.
 * Both peers run in this process, wired back to back in memory (no socket),
 * so the pairing and reconnect figures are the CPU of both sides together. */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "amu-channel.h"
#include "amu-framer.h"

static double
cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
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
peer_init(Peer *peer, AmuChannelRole role, const uint8_t secret[32])
{
	static uint8_t id[16];
	memset(peer, 0, sizeof(*peer));
	peer->channel = amu_channel_new(role, NULL, NULL);
	peer->outbox = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	amu_channel_set_local_static(peer->channel, secret);
	amu_channel_set_tx_func(peer->channel, tx_queue, peer);
	amu_channel_set_event_func(peer->channel, event_cb, peer);
	if (role == AMU_CHANNEL_ROLE_HOST) {
		Amulet__V1__HostHello hello = AMULET__V1__HOST_HELLO__INIT;
		amu_channel_set_host_hello(peer->channel, &hello);
	} else {
		Amulet__V1__DeviceHello hello = AMULET__V1__DEVICE_HELLO__INIT;
		Amulet__V1__Disclosure disclosure = AMULET__V1__DISCLOSURE__INIT;
		hello.device_id.data = id;
		hello.device_id.len = sizeof(id);
		amu_channel_set_device_hello(peer->channel, &hello, &disclosure);
	}
}

static void
peer_clear(Peer *peer)
{
	amu_channel_unref(peer->channel);
	amu_framer_unref(peer->framer);
	g_ptr_array_unref(peer->outbox);
}

static void
pump(Peer *a, Peer *b)
{
	while (a->outbox->len > 0 || b->outbox->len > 0) {
		Peer *from = a->outbox->len > 0 ? a : b;
		Peer *to = from == a ? b : a;
		g_autoptr(GBytes) packet = g_bytes_ref(g_ptr_array_index(from->outbox, 0));
		g_ptr_array_remove_index(from->outbox, 0);
		amu_channel_rx(to->channel, g_bytes_get_data(packet, NULL), g_bytes_get_size(packet), NULL);
	}
}

/* framing path: channel tx -> framer -> datagrams -> peer framer -> peer channel */
static void
channel_to_framer(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
	amu_framer_send(((Peer *)user_data)->framer, packet, len, 0);
}

static Peer *rx_peer_of_a, *rx_peer_of_b;

static void
datagram_a(const uint8_t *datagram, size_t len, void *user_data)
{
	amu_framer_rx(rx_peer_of_a->framer, datagram, len, 0);
}

static void
datagram_b(const uint8_t *datagram, size_t len, void *user_data)
{
	amu_framer_rx(rx_peer_of_b->framer, datagram, len, 0);
}

static void
framer_to_channel(const uint8_t *message, size_t len, void *user_data)
{
	amu_channel_rx(((Peer *)user_data)->channel, message, len, NULL);
}

int
main(void)
{
	uint8_t host_secret[32], device_secret[32], host_public[32], device_public[32], shared[32];
	const int n_dh = 2000, n_pair = 300, n_reconnect = 500, n_messages = 20000;
	double t0, x25519_us, pair_us, reconnect_us, raw_mbs, link_mbs;
	static uint8_t payload[4096], sealed[4096 + 16];
	uint8_t key[32], nonce[12] = {0};
	unsigned long long sealed_len;

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(host_secret, 32);
	randombytes_buf(device_secret, 32);
	crypto_scalarmult_base(host_public, host_secret);
	crypto_scalarmult_base(device_public, device_secret);

	t0 = cpu_seconds();
	for (int i = 0; i < n_dh; i++)
		if (crypto_scalarmult(shared, host_secret, device_public) != 0)
			return 1;
	x25519_us = (cpu_seconds() - t0) * 1e6 / n_dh;

	t0 = cpu_seconds();
	for (int i = 0; i < n_pair; i++) {
		Peer host, device;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		amu_channel_start(host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL);
		pump(&host, &device);
		if (amu_channel_get_state(host.channel) != AMU_CHANNEL_STATE_OPEN)
			return 1;
		peer_clear(&host);
		peer_clear(&device);
	}
	pair_us = (cpu_seconds() - t0) * 1e6 / n_pair;

	t0 = cpu_seconds();
	for (int i = 0; i < n_reconnect; i++) {
		Peer host, device;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		amu_channel_add_bonded_peer(device.channel, host_public);
		amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL);
		pump(&host, &device);
		if (amu_channel_get_state(host.channel) != AMU_CHANNEL_STATE_OPEN)
			return 1;
		peer_clear(&host);
		peer_clear(&device);
	}
	reconnect_us = (cpu_seconds() - t0) * 1e6 / n_reconnect;

	/* raw libsodium: encrypt + decrypt 4 KiB */
	randombytes_buf(key, sizeof(key));
	randombytes_buf(payload, sizeof(payload));
	t0 = cpu_seconds();
	for (int i = 0; i < n_messages; i++) {
		nonce[0] = (uint8_t)i;
		crypto_aead_chacha20poly1305_ietf_encrypt(sealed, &sealed_len, payload, sizeof(payload), NULL, 0, NULL,
							  nonce, key);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(payload, NULL, NULL, sealed, sealed_len, NULL, 0, nonce,
							      key) != 0)
			return 1;
	}
	raw_mbs = (double)n_messages * sizeof(payload) / (cpu_seconds() - t0) / 1e6;

	/* the stack: protobuf + seal + fragment at MTU 517 + reassemble + open + parse */
	{
		Peer host, device;
		Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__Ping ping = AMULET__V1__PING__INIT;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		amu_channel_add_bonded_peer(device.channel, host_public);
		host.framer = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 517, 8);
		device.framer = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 517, 8);
		rx_peer_of_a = &device;
		rx_peer_of_b = &host;
		amu_framer_set_tx_func(host.framer, datagram_a, NULL, NULL);
		amu_framer_set_tx_func(device.framer, datagram_b, NULL, NULL);
		amu_framer_set_message_func(host.framer, framer_to_channel, &host, NULL);
		amu_framer_set_message_func(device.framer, framer_to_channel, &device, NULL);
		amu_channel_set_tx_func(host.channel, channel_to_framer, &host);
		amu_channel_set_tx_func(device.channel, channel_to_framer, &device);
		amu_framer_start(host.framer, 0);
		amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL);
		if (amu_channel_get_state(host.channel) != AMU_CHANNEL_STATE_OPEN)
			return 1;
		ping.padding.data = payload;
		ping.padding.len = sizeof(payload);
		message.body_case = AMULET__V1__MESSAGE__BODY_PING;
		message.ping = &ping;
		/* the device answers pings; count only what the device received */
		amu_channel_set_event_func(device.channel, event_cb, &device);
		t0 = cpu_seconds();
		for (int i = 0; i < n_messages; i++)
			amu_channel_send(host.channel, &message, NULL);
		link_mbs = (double)device.received * sizeof(payload) / (cpu_seconds() - t0) / 1e6;
		if (device.received != (guint64)n_messages) {
			fprintf(stderr, "bench: only %" G_GUINT64_FORMAT " of %d messages arrived\n", device.received, n_messages);
			return 1;
		}
		peer_clear(&host);
		peer_clear(&device);
	}

	printf("x25519 (raw libsodium):            %8.1f us per scalar multiplication\n", x25519_us);
	printf("first pairing, both sides:         %8.1f us CPU  (%.1f x25519; target host < 3000 us)\n", pair_us,
	       pair_us / x25519_us);
	printf("reconnect (KK), both sides:        %8.1f us CPU  (%.1f x25519; target host < 1000 us)\n",
	       reconnect_us, reconnect_us / x25519_us);
	printf("raw ChaChaPoly seal+open, 4 KiB:   %8.1f MB/s\n", raw_mbs);
	printf("stack, 4 KiB pings at MTU 517:     %8.1f MB/s  (ratio %.2f to raw; target >= 200 MB/s, >= 0.3)\n",
	       link_mbs, link_mbs / raw_mbs);
	printf("  (in memory: protobuf, record seal, fragmenting, reassembly, open, parse; the pong replies\n"
	       "   travel too and are included in the CPU time; no socket)\n");
	return 0;
}
