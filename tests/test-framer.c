/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-framer.h"
#include "amu-test.h"

/* Byte scripts: datagrams are written as hex strings, one per word, so a
 * failing test prints bytes a reader can compare with docs/framing.md. */

typedef struct {
	GPtrArray *sent;     /* GBytes per datagram the framer sent */
	GPtrArray *messages; /* GBytes per message the framer delivered */
	AmuFramer *framer;   /* for callbacks that act on the framer */
	const char *reply;   /* sent from the message callback, if set */
	int destroyed;
} Capture;

static GBytes *
hex_to_bytes(const char *hex)
{
	GByteArray *out = g_byte_array_new();
	size_t n = strlen(hex);

	g_assert(n % 2 == 0);
	for (size_t i = 0; i < n; i += 2) {
		uint8_t byte =
		  (uint8_t)((g_ascii_xdigit_value(hex[i]) << 4) | g_ascii_xdigit_value(hex[i + 1]));
		g_byte_array_append(out, &byte, 1);
	}
	return g_byte_array_free_to_bytes(out);
}

static char *
bytes_to_hex(GBytes *bytes)
{
	gsize len;
	const uint8_t *data = g_bytes_get_data(bytes, &len);
	GString *out = g_string_new(NULL);

	for (gsize i = 0; i < len; i++)
		g_string_append_printf(out, "%02x", data[i]);
	return g_string_free(out, FALSE);
}

static void
capture_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	Capture *cap = user_data;

	g_ptr_array_add(cap->sent, g_bytes_new(datagram, len));
}

static void
capture_message(const uint8_t *message, size_t len, void *user_data)
{
	Capture *cap = user_data;

	CU_ASSERT_PTR_NOT_NULL(message);
	g_ptr_array_add(cap->messages, g_bytes_new(message, len));
	if (cap->reply != NULL)
		CU_ASSERT_EQUAL(
		  amu_framer_send(cap->framer, (const uint8_t *)cap->reply, strlen(cap->reply), 0),
		  0);
}

static void
capture_destroy(void *user_data)
{
	Capture *cap = user_data;

	cap->destroyed++;
}

static void
capture_init(Capture *cap, AmuFramer *f)
{
	memset(cap, 0, sizeof(*cap));
	cap->sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	cap->messages = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	cap->framer = f;
	CU_ASSERT_NOT_EQUAL(amu_framer_set_tx_func(f, capture_tx, cap, NULL), 0);
	CU_ASSERT_NOT_EQUAL(amu_framer_set_message_func(f, capture_message, cap, NULL), 0);
}

static void
capture_clear(Capture *cap)
{
	g_ptr_array_unref(cap->sent);
	g_ptr_array_unref(cap->messages);
}

/* Feeds one hex datagram; returns amu_framer_rx()'s result. */
static int
rx_hex(AmuFramer *f, const char *hex)
{
	g_autoptr(GBytes) bytes = hex_to_bytes(hex);
	gsize len;
	const uint8_t *data = g_bytes_get_data(bytes, &len);

	return amu_framer_rx(f, len > 0 ? data : (const uint8_t *)"", len, 0);
}

/* Asserts that the framer sent exactly these datagrams since the last call. */
static void
assert_sent(Capture *cap, const char *const *expected)
{
	guint n = expected != NULL ? g_strv_length((char **)expected) : 0;

	if (cap->sent->len != n)
		g_printerr("  sent %u datagrams, expected %u\n", cap->sent->len, n);
	CU_ASSERT_EQUAL(cap->sent->len, n);
	for (guint i = 0; i < MIN(n, cap->sent->len); i++) {
		g_autofree char *got = bytes_to_hex(g_ptr_array_index(cap->sent, i));

		if (g_strcmp0(got, expected[i]) != 0)
			g_printerr("  datagram %u: got %s, expected %s\n", i, got, expected[i]);
		CU_ASSERT_STRING_EQUAL(got, expected[i]);
	}
	g_ptr_array_set_size(cap->sent, 0);
}

#define ASSERT_SENT(cap, ...) assert_sent((cap), (const char *const[]){ __VA_ARGS__, NULL })
#define ASSERT_NOTHING_SENT(cap) assert_sent((cap), NULL)

static void
assert_failed(AmuFramer *f, int rc, AmuFramerError error)
{
	if (amu_framer_get_error(f) != error)
		g_printerr("  expected %s, got %s\n",
			   amu_framer_error_to_str(error),
			   amu_framer_error_to_str(amu_framer_get_error(f)));
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_EQUAL(amu_framer_get_state(f), AMU_FRAMER_STATE_FAILED);
	CU_ASSERT_EQUAL(amu_framer_get_error(f), error);
	/* Sticky: nothing revives it, and the first reason stays. */
	CU_ASSERT_EQUAL(rx_hex(f, "05000000"), -1);
	CU_ASSERT_EQUAL(amu_framer_send(f, (const uint8_t *)"x", 1, 0), -1);
	CU_ASSERT_EQUAL(amu_framer_tick(f, UINT64_MAX), -1);
	CU_ASSERT_EQUAL(amu_framer_start(f, 0), -1);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(f), UINT64_MAX);
	CU_ASSERT_EQUAL(amu_framer_get_state(f), AMU_FRAMER_STATE_FAILED);
	CU_ASSERT_EQUAL(amu_framer_get_error(f), error);
}

static AmuFramer *
new_open_peripheral(Capture *cap, const char *request)
{
	AmuFramer *f = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, AMU_FRAMER_MTU_MAX, 8);

	capture_init(cap, f);
	CU_ASSERT_EQUAL(amu_framer_start(f, 0), 0);
	CU_ASSERT_EQUAL(rx_hex(f, request), 0);
	CU_ASSERT_EQUAL(amu_framer_get_state(f), AMU_FRAMER_STATE_OPEN);
	g_ptr_array_set_size(cap->sent, 0);
	return f;
}

/* A central at MTU 23 (segment 20) with @window, after the handshake. */
static AmuFramer *
new_open_central(Capture *cap, uint8_t window)
{
	AmuFramer *f = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 23, window);
	g_autofree char *response = g_strdup_printf("20011700%02x", window);

	capture_init(cap, f);
	CU_ASSERT_EQUAL(amu_framer_start(f, 0), 0);
	CU_ASSERT_EQUAL(rx_hex(f, response), 0);
	CU_ASSERT_EQUAL(amu_framer_get_state(f), AMU_FRAMER_STATE_OPEN);
	g_ptr_array_set_size(cap->sent, 0);
	return f;
}

static void
test_handshake_bytes(void)
{
	g_autoptr(AmuFramer) central = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 247, 8);
	g_autoptr(AmuFramer) peripheral = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 517, 4);
	Capture cc, pc;

	capture_init(&cc, central);
	capture_init(&pc, peripheral);
	CU_ASSERT_EQUAL(amu_framer_get_state(central), AMU_FRAMER_STATE_IDLE);
	CU_ASSERT_EQUAL(amu_framer_start(central, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_get_state(central), AMU_FRAMER_STATE_HANDSHAKE);
	ASSERT_SENT(&cc, "600101f70008");
	CU_ASSERT_EQUAL(amu_framer_start(peripheral, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_get_state(peripheral), AMU_FRAMER_STATE_HANDSHAKE);
	ASSERT_NOTHING_SENT(&pc);

	CU_ASSERT_EQUAL(rx_hex(peripheral, "600101f70008"), 0);
	ASSERT_SENT(&pc, "2001f70004");
	CU_ASSERT_EQUAL(amu_framer_get_state(peripheral), AMU_FRAMER_STATE_OPEN);
	CU_ASSERT_EQUAL(rx_hex(central, "2001f70004"), 0);
	ASSERT_NOTHING_SENT(&cc);
	CU_ASSERT_EQUAL(amu_framer_get_state(central), AMU_FRAMER_STATE_OPEN);
	CU_ASSERT_EQUAL(amu_framer_get_att_mtu(central), 247);
	CU_ASSERT_EQUAL(amu_framer_get_window(central), 4);
	CU_ASSERT_EQUAL(amu_framer_get_att_mtu(peripheral), 247);
	CU_ASSERT_EQUAL(amu_framer_get_window(peripheral), 4);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(central), UINT64_MAX);

	/* A central listing several versions in any order gets the one we speak. */
	{
		g_autoptr(AmuFramer) p2 = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 23, 8);
		Capture c2;

		capture_init(&c2, p2);
		CU_ASSERT_EQUAL(rx_hex(p2, "6003030102000208"), 0);
		ASSERT_SENT(&c2, "2001170008");
		capture_clear(&c2);
	}
	capture_clear(&cc);
	capture_clear(&pc);
}

/* Each side gets min(central, peripheral) for MTU and window, both ways round. */
static void
test_handshake_negotiates_min(void)
{
	static const struct {
		uint16_t central_mtu, peripheral_mtu;
		uint8_t central_window, peripheral_window;
		const char *request, *response;
	} cases[] = {
		{ 517, 185, 8, 3, "600101050208", "2001b90003" },
		{ 185, 517, 2, 8, "600101b90002", "2001b90002" },
		{ 23, 23, 1, 1, "600101170001", "2001170001" },
		{ 517, 517, 8, 8, "600101050208", "2001050208" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(AmuFramer) c = amu_framer_new(
		  AMU_FRAMER_ROLE_CENTRAL, cases[i].central_mtu, cases[i].central_window);
		g_autoptr(AmuFramer) p = amu_framer_new(
		  AMU_FRAMER_ROLE_PERIPHERAL, cases[i].peripheral_mtu, cases[i].peripheral_window);
		uint16_t mtu = MIN(cases[i].central_mtu, cases[i].peripheral_mtu);
		uint8_t window = MIN(cases[i].central_window, cases[i].peripheral_window);
		Capture cc, pc;

		capture_init(&cc, c);
		capture_init(&pc, p);
		CU_ASSERT_EQUAL(amu_framer_start(c, 0), 0);
		ASSERT_SENT(&cc, cases[i].request);
		CU_ASSERT_EQUAL(rx_hex(p, cases[i].request), 0);
		ASSERT_SENT(&pc, cases[i].response);
		CU_ASSERT_EQUAL(rx_hex(c, cases[i].response), 0);
		CU_ASSERT_EQUAL(amu_framer_get_att_mtu(c), mtu);
		CU_ASSERT_EQUAL(amu_framer_get_att_mtu(p), mtu);
		CU_ASSERT_EQUAL(amu_framer_get_window(c), window);
		CU_ASSERT_EQUAL(amu_framer_get_window(p), window);
		capture_clear(&cc);
		capture_clear(&pc);
	}
}

/* Out-of-range local limits are refused, never clamped: segment size 1 (MTU 4)
 * and anything below the BLE minimum MTU 23 included. */
static void
test_new_refuses_out_of_range(void)
{
	AmuFramer *f;

	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 22, 8));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 518, 8));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 4, 8));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 0, 8));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 65535, 8));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 247, 0));
	CU_ASSERT_PTR_NULL(amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 247, 9));
	f = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 23, 1);
	CU_ASSERT_PTR_NOT_NULL(f);
	CU_ASSERT_EQUAL(amu_framer_get_att_mtu(f), 23);
	amu_framer_unref(f);
	amu_framer_unref(NULL);
}

/* The peripheral refuses a bad request with a specific error and sends nothing. */
static void
test_handshake_request_refused(void)
{
	static const struct {
		const char *request;
		AmuFramerError error;
	} cases[] = {
		{ "600101160008", AMU_FRAMER_ERROR_BAD_MTU }, /* MTU 22 */
		{ "600101060208", AMU_FRAMER_ERROR_BAD_MTU }, /* MTU 518 */
		{ "600101040008", AMU_FRAMER_ERROR_BAD_MTU }, /* MTU 4: segment 1 */
		{ "600101000008", AMU_FRAMER_ERROR_BAD_MTU }, /* MTU 0 */
		{ "600101ffff08", AMU_FRAMER_ERROR_BAD_MTU }, /* MTU 65535, not clamped */
		{ "600101f70000", AMU_FRAMER_ERROR_BAD_WINDOW },
		{ "600101f70009", AMU_FRAMER_ERROR_BAD_WINDOW },
		{ "600101f700ff", AMU_FRAMER_ERROR_BAD_WINDOW },
		{ "600102f70008", AMU_FRAMER_ERROR_NO_COMMON_VERSION },
		{ "60040002ff03f70008", AMU_FRAMER_ERROR_NO_COMMON_VERSION },
		{ "6000f70008", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },		  /* 0 versions */
		{ "60050102030405f70008", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED }, /* 5 */
		{ "600101f700", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },		  /* short */
		{ "600101f7000800", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },	  /* long */
		{ "600201f70008", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },	  /* count lies */
		{ "60", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },
		{ "2001f70008", AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED }, /* a response */
		{ "700101f70008", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ "e00101f70008", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ "05000000", AMU_FRAMER_ERROR_NOT_OPEN },
		{ "080000", AMU_FRAMER_ERROR_NOT_OPEN },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(AmuFramer) p = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 517, 8);
		Capture pc;

		capture_init(&pc, p);
		CU_ASSERT_EQUAL(amu_framer_start(p, 0), 0);
		assert_failed(p, rx_hex(p, cases[i].request), cases[i].error);
		ASSERT_NOTHING_SENT(&pc);
		capture_clear(&pc);
	}
}

/* The central checks the response too: it must be min(ours, theirs). */
static void
test_handshake_response_refused(void)
{
	static const struct {
		const char *response;
		AmuFramerError error;
	} cases[] = {
		{ "2001160008", AMU_FRAMER_ERROR_BAD_MTU },    /* 22 */
		{ "2001040008", AMU_FRAMER_ERROR_BAD_MTU },    /* 4: segment 1 */
		{ "2001f80008", AMU_FRAMER_ERROR_BAD_MTU },    /* 248 > our 247 */
		{ "2001060208", AMU_FRAMER_ERROR_BAD_MTU },    /* 518 */
		{ "2001f70000", AMU_FRAMER_ERROR_BAD_WINDOW }, /* 0 */
		{ "2001f70007", AMU_FRAMER_ERROR_BAD_WINDOW }, /* 7 > our 6 */
		{ "2001f70009", AMU_FRAMER_ERROR_BAD_WINDOW }, /* 9 */
		{ "2002f70006", AMU_FRAMER_ERROR_NO_COMMON_VERSION },
		{ "2000f70006", AMU_FRAMER_ERROR_NO_COMMON_VERSION },
		{ "2001f700", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },
		{ "2001f7000600", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },
		{ "20", AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED },
		{ "600101f70006", AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED }, /* a request */
		{ "05000000", AMU_FRAMER_ERROR_NOT_OPEN },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(AmuFramer) c = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 247, 6);
		Capture cc;

		capture_init(&cc, c);
		CU_ASSERT_EQUAL(amu_framer_start(c, 0), 0);
		ASSERT_SENT(&cc, "600101f70006");
		assert_failed(c, rx_hex(c, cases[i].response), cases[i].error);
		ASSERT_NOTHING_SENT(&cc);
		capture_clear(&cc);
	}
}

/* Neither side accepts a second handshake; a central that never asked
 * accepts no response. */
static void
test_handshake_repeated(void)
{
	Capture pc, cc;
	AmuFramer *p = new_open_peripheral(&pc, "600101f70008");
	AmuFramer *c = new_open_central(&cc, 8);
	g_autoptr(AmuFramer) idle = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 247, 8);

	assert_failed(p, rx_hex(p, "600101f70008"), AMU_FRAMER_ERROR_HANDSHAKE_REPEATED);
	assert_failed(c, rx_hex(c, "2001170008"), AMU_FRAMER_ERROR_HANDSHAKE_REPEATED);
	ASSERT_NOTHING_SENT(&pc);
	ASSERT_NOTHING_SENT(&cc);
	assert_failed(idle, rx_hex(idle, "2001f70008"), AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED);
	amu_framer_unref(p);
	amu_framer_unref(c);
	capture_clear(&pc);
	capture_clear(&cc);
}

/* Exact fragment bytes: 40 bytes at MTU 23 go as 16 + 18 + 6. */
static void
test_fragment_bytes(void)
{
	Capture cc;
	AmuFramer *c = new_open_central(&cc, 8);
	const char *msg = "0123456789abcdefghijklmnopqrstuvwxyzABCD";

	CU_ASSERT_EQUAL(amu_framer_send(c, (const uint8_t *)msg, 40, 0), 0);
	ASSERT_SENT(&cc,
		    "0100280030313233343536373839616263646566",
		    "02016768696a6b6c6d6e6f707172737475767778",
		    "0402797a41424344");
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c), 0);
	CU_ASSERT_FALSE(amu_framer_is_idle(c));
	amu_framer_unref(c);
	capture_clear(&cc);
}

/* Two framers over an in-memory link; datagrams queue and are delivered in
 * rounds (all of one side's, then the other's), so the order is fixed. */
typedef struct {
	AmuFramer *framer;
	GQueue outbox;
	GPtrArray *messages;
	guint n_data, n_acks, n_with_ack;
	int last_seq;
	gboolean seq_wrapped;
	gboolean echo;
	size_t segment;
	gboolean short_only_last; /* every data datagram but a message's last is full */
} Peer;

static void
peer_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	Peer *peer = user_data;
	uint8_t flags = datagram[0];

	g_queue_push_tail(&peer->outbox, g_bytes_new(datagram, len));
	if (flags & AMU_FRAMER_FLAG_HANDSHAKE)
		return;
	if (flags & AMU_FRAMER_FLAG_ACK)
		peer->n_with_ack++;
	if ((flags & 0x07) == 0) {
		peer->n_acks++;
	} else {
		int seq = datagram[(flags & AMU_FRAMER_FLAG_ACK) ? 2 : 1];

		peer->n_data++;
		if ((flags & AMU_FRAMER_FLAG_END) == 0 && len != peer->segment)
			peer->short_only_last = FALSE;
		if (peer->last_seq == 255 && seq == 0)
			peer->seq_wrapped = TRUE;
		peer->last_seq = seq;
	}
	CU_ASSERT(len <= peer->segment || (flags & AMU_FRAMER_FLAG_HANDSHAKE));
}

static void
peer_message(const uint8_t *message, size_t len, void *user_data)
{
	Peer *peer = user_data;

	g_ptr_array_add(peer->messages, g_bytes_new(message, len));
	if (peer->echo)
		CU_ASSERT_EQUAL(amu_framer_send(peer->framer, message, len, 0), 0);
}

static void
peer_init(Peer *peer, AmuFramerRole role, uint16_t mtu, uint8_t window)
{
	memset(peer, 0, sizeof(*peer));
	peer->framer = amu_framer_new(role, mtu, window);
	g_queue_init(&peer->outbox);
	peer->messages = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	peer->last_seq = -1;
	peer->short_only_last = TRUE;
	amu_framer_set_tx_func(peer->framer, peer_tx, peer, NULL);
	amu_framer_set_message_func(peer->framer, peer_message, peer, NULL);
}

static void
peer_clear(Peer *peer)
{
	amu_framer_unref(peer->framer);
	g_queue_clear_full(&peer->outbox, (GDestroyNotify)g_bytes_unref);
	g_ptr_array_unref(peer->messages);
}

static void
pump(Peer *a, Peer *b)
{
	while (!g_queue_is_empty(&a->outbox) || !g_queue_is_empty(&b->outbox)) {
		Peer *from[2] = { a, b }, *to[2] = { b, a };

		for (int i = 0; i < 2; i++) {
			guint n = g_queue_get_length(&from[i]->outbox);

			for (guint k = 0; k < n; k++) {
				g_autoptr(GBytes) d = g_queue_pop_head(&from[i]->outbox);
				gsize len;
				const uint8_t *data = g_bytes_get_data(d, &len);

				CU_ASSERT_EQUAL_FATAL(amu_framer_rx(to[i]->framer, data, len, 0),
						      0);
			}
		}
	}
}

static void
pair_open(Peer *c, Peer *p, uint16_t mtu, uint8_t window)
{
	peer_init(c, AMU_FRAMER_ROLE_CENTRAL, mtu, window);
	peer_init(p, AMU_FRAMER_ROLE_PERIPHERAL, AMU_FRAMER_MTU_MAX, AMU_FRAMER_WINDOW_MAX);
	CU_ASSERT_EQUAL(amu_framer_start(p->framer, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_start(c->framer, 0), 0);
	pump(c, p);
	CU_ASSERT_EQUAL(amu_framer_get_state(c->framer), AMU_FRAMER_STATE_OPEN);
	CU_ASSERT_EQUAL(amu_framer_get_state(p->framer), AMU_FRAMER_STATE_OPEN);
	c->segment = p->segment = mtu - 3;
}

static GBytes *
make_message(size_t len, uint32_t seed)
{
	uint8_t *data = g_malloc(len > 0 ? len : 1);

	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (uint8_t)(seed >> 16);
	}
	return g_bytes_new_take(data, len);
}

/* A 4 KiB message through a back-to-back pair at window 8. The central's
 * first 8 datagrams carry no ack (it has received nothing); from seq 8 on, the
 * first datagram after each of the peripheral's standalone acks (every 4th
 * datagram) piggybacks an ack, one byte less payload. Hence:
 *   MTU 517: 510 + 7x512, then 2 bytes                  = 9 datagrams
 *   MTU 247: 240 + 7x242 = 1934, 2x(241+3x242) = 1934,
 *            then 228 <= 241                            = 17 datagrams
 *   MTU 23:  16 + 7x18 = 142, 55x(17+3x18) = 3905, 17+18+14  = 231 datagrams */
static void
test_transfer_4k(void)
{
	static const struct {
		uint16_t mtu;
		guint datagrams;
	} cases[] = { { 23, 231 }, { 247, 17 }, { 517, 9 } };

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GBytes) msg = make_message(4096, (uint32_t)i);
		Peer c, p;

		pair_open(&c, &p, cases[i].mtu, 8);
		CU_ASSERT_EQUAL(amu_framer_send(c.framer, g_bytes_get_data(msg, NULL), 4096, 0), 0);
		pump(&c, &p);
		if (c.n_data != cases[i].datagrams)
			g_printerr("  MTU %u: %u datagrams\n", cases[i].mtu, c.n_data);
		CU_ASSERT_EQUAL(c.n_data, cases[i].datagrams);
		CU_ASSERT_TRUE(c.short_only_last);
		CU_ASSERT_EQUAL_FATAL(p.messages->len, 1);
		CU_ASSERT_TRUE(g_bytes_equal(g_ptr_array_index(p.messages, 0), msg));
		CU_ASSERT_TRUE(amu_framer_is_idle(c.framer));
		CU_ASSERT_EQUAL(amu_framer_next_timeout(c.framer), UINT64_MAX);
		peer_clear(&c);
		peer_clear(&p);
	}
}

/* With the peer silent, the sender stops after `window` datagrams; each ack
 * releases exactly as many as it covers. */
static void
test_window_respected(void)
{
	Capture cc;
	AmuFramer *c = new_open_central(&cc, 3);
	g_autoptr(GBytes) msg = make_message(200, 7);
	const uint8_t *data = g_bytes_get_data(msg, NULL);

	CU_ASSERT_EQUAL(amu_framer_send(c, data, 200, 0), 0);
	CU_ASSERT_EQUAL(cc.sent->len, 3);
	for (guint i = 0; i < cc.sent->len; i++) {
		const uint8_t *d = g_bytes_get_data(g_ptr_array_index(cc.sent, i), NULL);

		CU_ASSERT_EQUAL(d[0], i == 0 ? 0x01 : 0x02);
		CU_ASSERT_EQUAL(d[1], i);
	}
	g_ptr_array_set_size(cc.sent, 0);
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c), 200 - 16 - 18 - 18);
	/* More to send changes nothing while the window is full. */
	CU_ASSERT_EQUAL(amu_framer_send(c, (const uint8_t *)"zz", 2, 0), 0);
	ASSERT_NOTHING_SENT(&cc);

	/* Ack of seq 0 (the peer's seq 0): one slot; the datagram piggybacks an
	 * ack of that standalone ack and so carries 17 bytes. */
	CU_ASSERT_EQUAL(rx_hex(c, "080000"), 0);
	CU_ASSERT_EQUAL_FATAL(cc.sent->len, 1);
	{
		gsize len;
		const uint8_t *d = g_bytes_get_data(g_ptr_array_index(cc.sent, 0), &len);

		CU_ASSERT_EQUAL(len, 20);
		CU_ASSERT_EQUAL(d[0], 0x0a);
		CU_ASSERT_EQUAL(d[1], 0x00);
		CU_ASSERT_EQUAL(d[2], 0x03);
		CU_ASSERT_EQUAL(memcmp(d + 3, data + 52, 17), 0);
	}
	g_ptr_array_set_size(cc.sent, 0);
	/* Ack of seq 3: three slots. */
	CU_ASSERT_EQUAL(rx_hex(c, "080301"), 0);
	CU_ASSERT_EQUAL(cc.sent->len, 3);
	{
		const uint8_t *d0 = g_bytes_get_data(g_ptr_array_index(cc.sent, 0), NULL);
		const uint8_t *d2 = g_bytes_get_data(g_ptr_array_index(cc.sent, 2), NULL);

		CU_ASSERT_EQUAL(d0[0], 0x0a);
		CU_ASSERT_EQUAL(d0[1], 0x01);
		CU_ASSERT_EQUAL(d0[2], 0x04);
		CU_ASSERT_EQUAL(d2[0], 0x02);
		CU_ASSERT_EQUAL(d2[1], 0x06);
	}
	g_ptr_array_set_size(cc.sent, 0);
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c), 200 - 52 - 17 - 17 - 18 - 18 + 2);
	amu_framer_unref(c);
	capture_clear(&cc);
}

/* The receiver acks on its own once window/2 data datagrams are unacked, and
 * at the end of a message; the ack takes a seq of its own. */
static void
test_standalone_acks(void)
{
	Capture pc, pc1;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");
	AmuFramer *p1 = new_open_peripheral(&pc1, "600101170001");
	const char *fill18 = "414141414141414141414141414141414141";
	g_autofree char *begin = g_strdup_printf("01006400%s", "42424242424242424242424242424242");
	g_autofree char *c1 = g_strdup_printf("0201%s", fill18);
	g_autofree char *c2 = g_strdup_printf("0202%s", fill18);
	g_autofree char *c3 = g_strdup_printf("0203%s", fill18);
	g_autofree char *c4 = g_strdup_printf("0204%s", fill18);

	CU_ASSERT_EQUAL(rx_hex(p, begin), 0);
	CU_ASSERT_EQUAL(rx_hex(p, c1), 0);
	CU_ASSERT_EQUAL(rx_hex(p, c2), 0);
	ASSERT_NOTHING_SENT(&pc);
	CU_ASSERT_EQUAL(rx_hex(p, c3), 0);
	ASSERT_SENT(&pc, "080300");
	CU_ASSERT_EQUAL(rx_hex(p, c4), 0);
	ASSERT_NOTHING_SENT(&pc);
	/* 16 + 4x18 = 88; END brings the last 12, and an ack. */
	CU_ASSERT_EQUAL(rx_hex(p, "0405434343434343434343434343"), 0);
	ASSERT_SENT(&pc, "080501");
	CU_ASSERT_EQUAL_FATAL(pc.messages->len, 1);
	CU_ASSERT_EQUAL(g_bytes_get_size(g_ptr_array_index(pc.messages, 0)), 100);
	/* A bare ack from the peer is not acked, nor is data that acks. */
	CU_ASSERT_EQUAL(rx_hex(p, "080006"), 0);
	CU_ASSERT_EQUAL(rx_hex(p, "09010705006162"), 0);
	ASSERT_NOTHING_SENT(&pc);
	/* Everything we sent is acked now: a second ack of seq 1 is invalid. */
	assert_failed(p, rx_hex(p, "080108"), AMU_FRAMER_ERROR_INVALID_ACK);

	/* Window 1: every data datagram is acked at once. */
	CU_ASSERT_EQUAL(rx_hex(p1, "0100060061626364"), 0);
	ASSERT_SENT(&pc1, "080000");
	CU_ASSERT_EQUAL(rx_hex(p1, "02016566"), 0);
	ASSERT_SENT(&pc1, "080101");
	CU_ASSERT_EQUAL(rx_hex(p1, "0402"), 0);
	ASSERT_SENT(&pc1, "080202");
	CU_ASSERT_EQUAL_FATAL(pc1.messages->len, 1);
	CU_ASSERT_EQUAL(
	  memcmp(g_bytes_get_data(g_ptr_array_index(pc1.messages, 0), NULL), "abcdef", 6), 0);

	amu_framer_unref(p);
	amu_framer_unref(p1);
	capture_clear(&pc);
	capture_clear(&pc1);
}

/* Outgoing data carries the ack; no standalone ack goes out then. */
static void
test_piggybacked_ack(void)
{
	Capture pc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");

	/* A fragment that does not need an ack yet. */
	CU_ASSERT_EQUAL(rx_hex(p, "0100050068656c"), 0);
	ASSERT_NOTHING_SENT(&pc);
	CU_ASSERT_EQUAL(amu_framer_send(p, (const uint8_t *)"hi", 2, 0), 0);
	ASSERT_SENT(&pc, "0d000002006869");
	/* END with nothing queued to carry it: a standalone ack, our seq 1. */
	CU_ASSERT_EQUAL(rx_hex(p, "04016c6f"), 0);
	ASSERT_SENT(&pc, "080101");
	/* Once nothing is pending, data goes without an ack byte. */
	CU_ASSERT_EQUAL(amu_framer_send(p, (const uint8_t *)"yo", 2, 0), 0);
	ASSERT_SENT(&pc, "05020200796f");
	amu_framer_unref(p);
	capture_clear(&pc);
}

/* Re-entrant send from the message callback: the reply carries the ack. */
static void
test_reentrant_send(void)
{
	Capture pc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");

	pc.reply = "pong";
	CU_ASSERT_EQUAL(rx_hex(p, "0500040070696e67"), 0);
	ASSERT_SENT(&pc, "0d00000400706f6e67");
	CU_ASSERT_EQUAL(pc.messages->len, 1);
	amu_framer_unref(p);
	capture_clear(&pc);
}

/* A message callback that feeds the next (fragmented) message in: the one
 * being read must not be overwritten under it. */
static void
nested_rx_message(const uint8_t *message, size_t len, void *user_data)
{
	Capture *cap = user_data;
	g_autoptr(GBytes) before = g_bytes_new(message, len);

	g_ptr_array_add(cap->messages, g_bytes_new(message, len));
	if (cap->messages->len != 1)
		return;
	CU_ASSERT_EQUAL(rx_hex(cap->framer, "01020600414243"), 0);
	CU_ASSERT_EQUAL(rx_hex(cap->framer, "0403444546"), 0);
	CU_ASSERT_EQUAL(cap->messages->len, 2);
	CU_ASSERT_EQUAL(memcmp(message, g_bytes_get_data(before, NULL), len), 0);
}

static void
test_reentrant_rx(void)
{
	Capture pc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");

	amu_framer_set_message_func(p, nested_rx_message, &pc, capture_destroy);
	CU_ASSERT_EQUAL(rx_hex(p, "010004006162"), 0);
	CU_ASSERT_EQUAL(rx_hex(p, "04016364"), 0);
	CU_ASSERT_EQUAL_FATAL(pc.messages->len, 2);
	CU_ASSERT_EQUAL(
	  memcmp(g_bytes_get_data(g_ptr_array_index(pc.messages, 0), NULL), "abcd", 4), 0);
	CU_ASSERT_EQUAL(
	  memcmp(g_bytes_get_data(g_ptr_array_index(pc.messages, 1), NULL), "ABCDEF", 6), 0);
	/* The nested rx calls run the ack rules themselves: the END of the
	 * first message made an ack due, sent after the nested BEGIN (covering
	 * it), then the nested END's own; the outer rx has nothing left to ack. */
	ASSERT_SENT(&pc, "080200", "080301");
	/* Replacing a callback destroys the old user data. */
	amu_framer_set_message_func(p, capture_message, &pc, NULL);
	CU_ASSERT_EQUAL(pc.destroyed, 1);
	amu_framer_unref(p);
	CU_ASSERT_EQUAL(pc.destroyed, 1);
	capture_clear(&pc);
}

/* Many messages echoed through a pair: seqs wrap past 255 in both directions. */
static void
test_seq_wraps(void)
{
	Peer c, p;
	g_autoptr(GPtrArray) sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);

	pair_open(&c, &p, 23, 4);
	p.echo = TRUE;
	for (guint i = 0; i < 700; i++) {
		GBytes *msg = make_message(i % 40, i);

		g_ptr_array_add(sent, msg);
		CU_ASSERT_EQUAL(amu_framer_send(c.framer, g_bytes_get_data(msg, NULL), i % 40, 0),
				0);
		if (i % 50 == 0)
			pump(&c, &p);
	}
	pump(&c, &p);
	CU_ASSERT_EQUAL_FATAL(p.messages->len, 700);
	CU_ASSERT_EQUAL_FATAL(c.messages->len, 700);
	for (guint i = 0; i < 700; i++) {
		CU_ASSERT_TRUE(
		  g_bytes_equal(g_ptr_array_index(p.messages, i), g_ptr_array_index(sent, i)));
		CU_ASSERT_TRUE(
		  g_bytes_equal(g_ptr_array_index(c.messages, i), g_ptr_array_index(sent, i)));
	}
	CU_ASSERT_TRUE(c.seq_wrapped);
	CU_ASSERT_TRUE(p.seq_wrapped);
	CU_ASSERT_TRUE(p.n_with_ack > 0);
	CU_ASSERT_TRUE(amu_framer_is_idle(c.framer));
	CU_ASSERT_TRUE(amu_framer_is_idle(p.framer));
	peer_clear(&c);
	peer_clear(&p);
}

/* Every malformed datagram fails the framer with its own error. The framer is
 * a peripheral at MTU 23 (segment 20), window 8, that first sends @n_sent
 * one-byte messages; every datagram of @script but the last is accepted. */
static void
test_malformed(void)
{
	static const struct {
		guint n_sent;
		const char *script;
		AmuFramerError error;
	} cases[] = {
		{ 0, "05000000 05000000", AMU_FRAMER_ERROR_UNEXPECTED_SEQ },
		{ 0, "05010000", AMU_FRAMER_ERROR_UNEXPECTED_SEQ },
		{ 0, "05000000 05020000", AMU_FRAMER_ERROR_UNEXPECTED_SEQ },
		{ 0, "05000000 05ff0000", AMU_FRAMER_ERROR_UNEXPECTED_SEQ },
		{ 0, "080000", AMU_FRAMER_ERROR_INVALID_ACK },
		{ 2, "080200", AMU_FRAMER_ERROR_INVALID_ACK },
		{ 2, "08ff00", AMU_FRAMER_ERROR_INVALID_ACK },
		{ 2, "080000 080001", AMU_FRAMER_ERROR_INVALID_ACK },
		{ 2, "0d01000000 0d00010000", AMU_FRAMER_ERROR_INVALID_ACK },
		{ 0, "020061", AMU_FRAMER_ERROR_NO_BEGIN },
		{ 0, "0400", AMU_FRAMER_ERROR_NO_BEGIN },
		{ 0, "01000a0061 01010a0062", AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS },
		{ 0, "01000a0061 05010000", AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS },
		{ 0, "050001006162", AMU_FRAMER_ERROR_MESSAGE_OVERRUN },
		{ 0, "0500000061", AMU_FRAMER_ERROR_MESSAGE_OVERRUN },
		{ 0, "0100020061 02016263", AMU_FRAMER_ERROR_MESSAGE_OVERRUN },
		{ 1, "08000061", AMU_FRAMER_ERROR_MESSAGE_OVERRUN },
		{ 0, "0500030061", AMU_FRAMER_ERROR_MESSAGE_TRUNCATED },
		{ 0, "0100030061 040162", AMU_FRAMER_ERROR_MESSAGE_TRUNCATED },
		{ 0,
		  "050011006161616161616161616161616161616161",
		  AMU_FRAMER_ERROR_DATAGRAM_TOO_LONG },
		{ 0, "", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "05", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "050000", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "0100", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "0800", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "0d000000", AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT },
		{ 0, "15000000", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ 0, "45000000", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ 0, "85000000", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ 0, "ff", AMU_FRAMER_ERROR_UNKNOWN_FLAGS },
		{ 0, "0300010061", AMU_FRAMER_ERROR_INVALID_FLAGS },
		{ 0, "0600", AMU_FRAMER_ERROR_INVALID_FLAGS },
		{ 0, "07000000", AMU_FRAMER_ERROR_INVALID_FLAGS },
		{ 0, "0000", AMU_FRAMER_ERROR_INVALID_FLAGS },
		{ 0, "600101170008", AMU_FRAMER_ERROR_HANDSHAKE_REPEATED },
		{ 0, "2001170008", AMU_FRAMER_ERROR_HANDSHAKE_REPEATED },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_auto(GStrv) datagrams = g_strsplit(cases[i].script, " ", -1);
		guint n = g_strv_length(datagrams);
		Capture pc;
		AmuFramer *p = new_open_peripheral(&pc, "600101170008");

		for (guint k = 0; k < cases[i].n_sent; k++)
			CU_ASSERT_EQUAL(amu_framer_send(p, (const uint8_t *)"x", 1, 0), 0);
		for (guint k = 0; k + 1 < n; k++) {
			int rc = rx_hex(p, datagrams[k]);

			if (rc != 0)
				g_printerr("  case %zu: datagram %u refused: %s\n",
					   i,
					   k,
					   amu_framer_error_to_str(amu_framer_get_error(p)));
			CU_ASSERT_EQUAL(rc, 0);
		}
		assert_failed(p, rx_hex(p, n > 0 ? datagrams[n - 1] : ""), cases[i].error);
		amu_framer_unref(p);
		capture_clear(&pc);
	}
}

/* Our acks go out as soon as they are due, so a peer can only overrun our
 * window while they are held up: here, datagrams arriving re-entrantly from
 * inside our own tx callback. */
static void
overrun_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	AmuFramer *f = user_data;

	CU_ASSERT_EQUAL(rx_hex(f, "01000a0061"), 0);
	CU_ASSERT_EQUAL(rx_hex(f, "020162"), 0);
	CU_ASSERT_EQUAL(rx_hex(f, "020263"), -1);
}

static void
test_window_exceeded(void)
{
	Capture pc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170002");

	amu_framer_set_tx_func(p, overrun_tx, p, NULL);
	assert_failed(
	  p, amu_framer_send(p, (const uint8_t *)"x", 1, 0), AMU_FRAMER_ERROR_WINDOW_EXCEEDED);
	amu_framer_unref(p);
	capture_clear(&pc);
}

/* A peer that streams data but never acks ours fails before seqs get ambiguous. */
static void
test_ack_missing(void)
{
	Capture pc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");

	for (guint seq = 0; seq < 128; seq++) {
		g_autofree char *hex = g_strdup_printf("05%02x0000", seq);

		CU_ASSERT_EQUAL(rx_hex(p, hex), 0);
	}
	CU_ASSERT_EQUAL(pc.sent->len, 128);
	g_ptr_array_set_size(pc.sent, 0);
	assert_failed(p, rx_hex(p, "05800000"), AMU_FRAMER_ERROR_ACK_MISSING);
	ASSERT_NOTHING_SENT(&pc);
	amu_framer_unref(p);
	capture_clear(&pc);
}

static void
test_ack_timeout(void)
{
	Capture cc, cc2;
	AmuFramer *c = new_open_central(&cc, 2);
	AmuFramer *c2 = new_open_central(&cc2, 2);
	g_autoptr(AmuFramer) hs = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 23, 2);
	g_autoptr(AmuFramer) per = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 23, 2);
	uint8_t big[60] = { 0 };

	CU_ASSERT_EQUAL(amu_framer_next_timeout(c), UINT64_MAX);
	CU_ASSERT_EQUAL(amu_framer_tick(c, 1000000), 0);
	CU_ASSERT_EQUAL(amu_framer_send(c, big, sizeof(big), 1000), 0);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(c), 6000);
	/* Progress restarts the timer for what is still in flight. */
	CU_ASSERT_EQUAL(amu_framer_rx(c, (const uint8_t *)"\x08\x00\x00", 3, 3000), 0);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(c), 8000);
	amu_framer_set_ack_timeout(c, 1000);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(c), 4000);
	amu_framer_set_ack_timeout(c, 0);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(c), UINT64_MAX);
	amu_framer_set_ack_timeout(c, 5000);
	CU_ASSERT_EQUAL(amu_framer_tick(c, 7999), 0);
	CU_ASSERT_EQUAL(amu_framer_get_state(c), AMU_FRAMER_STATE_OPEN);
	assert_failed(c, amu_framer_tick(c, 8000), AMU_FRAMER_ERROR_ACK_TIMEOUT);

	/* All acked: no timer, idle. */
	CU_ASSERT_EQUAL(amu_framer_send(c2, big, 10, 100), 0);
	CU_ASSERT_FALSE(amu_framer_is_idle(c2));
	CU_ASSERT_EQUAL(amu_framer_rx(c2, (const uint8_t *)"\x08\x00\x00", 3, 200), 0);
	CU_ASSERT_TRUE(amu_framer_is_idle(c2));
	CU_ASSERT_EQUAL(amu_framer_next_timeout(c2), UINT64_MAX);
	CU_ASSERT_EQUAL(amu_framer_tick(c2, UINT64_MAX), 0);

	/* The central waits for the handshake response as for an ack; the
	 * peripheral waits as long as the link lasts. */
	amu_framer_set_tx_func(hs, NULL, NULL, NULL);
	CU_ASSERT_EQUAL(amu_framer_start(hs, 10), 0);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(hs), 5010);
	CU_ASSERT_EQUAL(amu_framer_tick(hs, 5009), 0);
	assert_failed(hs, amu_framer_tick(hs, 5010), AMU_FRAMER_ERROR_ACK_TIMEOUT);
	CU_ASSERT_EQUAL(amu_framer_start(per, 10), 0);
	CU_ASSERT_EQUAL(amu_framer_next_timeout(per), UINT64_MAX);
	CU_ASSERT_EQUAL(amu_framer_tick(per, UINT64_MAX - 1), 0);

	amu_framer_unref(c);
	amu_framer_unref(c2);
	capture_clear(&cc);
	capture_clear(&cc2);
}

static void
test_zero_length_message(void)
{
	Capture cc, pc;
	AmuFramer *c = new_open_central(&cc, 8);
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");

	CU_ASSERT_EQUAL(amu_framer_send(c, NULL, 0, 0), 0);
	ASSERT_SENT(&cc, "05000000");
	CU_ASSERT_EQUAL(rx_hex(p, "05000000"), 0);
	CU_ASSERT_EQUAL_FATAL(pc.messages->len, 1);
	CU_ASSERT_EQUAL(g_bytes_get_size(g_ptr_array_index(pc.messages, 0)), 0);
	ASSERT_SENT(&pc, "080000");
	/* Split into an empty BEGIN and an empty END is accepted too. */
	amu_framer_unref(p);
	capture_clear(&pc);
	p = new_open_peripheral(&pc, "600101170008");
	CU_ASSERT_EQUAL(rx_hex(p, "01000000"), 0);
	ASSERT_NOTHING_SENT(&pc);
	CU_ASSERT_EQUAL(rx_hex(p, "0401"), 0);
	ASSERT_SENT(&pc, "080100");
	CU_ASSERT_EQUAL_FATAL(pc.messages->len, 1);
	CU_ASSERT_EQUAL(g_bytes_get_size(g_ptr_array_index(pc.messages, 0)), 0);
	amu_framer_unref(c);
	amu_framer_unref(p);
	capture_clear(&cc);
	capture_clear(&pc);
}

static void
test_max_length_message(void)
{
	static const uint16_t mtus[] = { 23, 517 };

	for (size_t i = 0; i < G_N_ELEMENTS(mtus); i++) {
		g_autoptr(GBytes) msg = make_message(AMU_FRAMER_MESSAGE_MAX, 99);
		g_autoptr(GBytes) too_long = make_message(AMU_FRAMER_MESSAGE_MAX + 1, 98);
		Peer c, p;

		pair_open(&c, &p, mtus[i], 8);
		CU_ASSERT_EQUAL(
		  amu_framer_send(
		    c.framer, g_bytes_get_data(too_long, NULL), AMU_FRAMER_MESSAGE_MAX + 1, 0),
		  -1);
		CU_ASSERT_EQUAL(amu_framer_get_state(c.framer), AMU_FRAMER_STATE_OPEN);
		CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c.framer), 0);
		CU_ASSERT_EQUAL(
		  amu_framer_send(c.framer, g_bytes_get_data(msg, NULL), AMU_FRAMER_MESSAGE_MAX, 0),
		  0);
		{
			/* The first datagram declares 65535 = ff ff. */
			GBytes *first = g_queue_peek_head(&c.outbox);
			const uint8_t *d = g_bytes_get_data(first, NULL);

			CU_ASSERT_EQUAL(d[0], 0x01);
			CU_ASSERT_EQUAL(d[2], 0xff);
			CU_ASSERT_EQUAL(d[3], 0xff);
		}
		pump(&c, &p);
		CU_ASSERT_EQUAL_FATAL(p.messages->len, 1);
		CU_ASSERT_TRUE(g_bytes_equal(g_ptr_array_index(p.messages, 0), msg));
		CU_ASSERT_TRUE(c.short_only_last);
		CU_ASSERT_TRUE(amu_framer_is_idle(c.framer));
		peer_clear(&c);
		peer_clear(&p);
	}
}

/* A queue that never drains is compacted as it goes, without losing order:
 * 3000 small messages, then big ones, all queued before any is sent. */
static void
test_long_queue(void)
{
	g_autoptr(GPtrArray) sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	size_t total = 0;
	Peer c, p;

	pair_open(&c, &p, 247, 8);
	for (guint i = 0; i < 3004; i++) {
		GBytes *msg = make_message(i < 3000 ? 1 + i % 100 : 40000, i);

		g_ptr_array_add(sent, msg);
		total += g_bytes_get_size(msg);
		CU_ASSERT_EQUAL(
		  amu_framer_send(c.framer, g_bytes_get_data(msg, NULL), g_bytes_get_size(msg), 0),
		  0);
	}
	/* The first 8 messages (1..8 bytes) filled the window; the rest wait. */
	CU_ASSERT_EQUAL(g_queue_get_length(&c.outbox), 8);
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c.framer), total - 36);
	pump(&c, &p);
	CU_ASSERT_EQUAL_FATAL(p.messages->len, sent->len);
	for (guint i = 0; i < sent->len; i++)
		CU_ASSERT_TRUE(
		  g_bytes_equal(g_ptr_array_index(p.messages, i), g_ptr_array_index(sent, i)));
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c.framer), 0);
	CU_ASSERT_TRUE(amu_framer_is_idle(c.framer));
	peer_clear(&c);
	peer_clear(&p);
}

/* Messages sent before the handshake wait for it, then go in order. */
static void
test_queued_before_handshake(void)
{
	g_autoptr(AmuFramer) c = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 23, 8);
	Capture cc;

	capture_init(&cc, c);
	CU_ASSERT_TRUE(amu_framer_is_idle(c));
	CU_ASSERT_EQUAL(amu_framer_send(c, (const uint8_t *)"hello", 5, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_send(c, (const uint8_t *)"", 0, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c), 5);
	CU_ASSERT_FALSE(amu_framer_is_idle(c));
	ASSERT_NOTHING_SENT(&cc);
	CU_ASSERT_EQUAL(amu_framer_start(c, 0), 0);
	CU_ASSERT_EQUAL(amu_framer_start(c, 0), -1); /* once only */
	CU_ASSERT_EQUAL(amu_framer_get_state(c), AMU_FRAMER_STATE_HANDSHAKE);
	ASSERT_SENT(&cc, "600101170008");
	CU_ASSERT_EQUAL(rx_hex(c, "2001170008"), 0);
	ASSERT_SENT(&cc, "0500050068656c6c6f", "05010000");
	CU_ASSERT_EQUAL(amu_framer_get_queued_bytes(c), 0);
	capture_clear(&cc);
}

/* Callbacks may drop the last reference; the framer lives until it returns. */
static void
unref_in_message(const uint8_t *message, size_t len, void *user_data)
{
	Capture *cap = user_data;

	amu_framer_unref(cap->framer);
	cap->framer = NULL;
}

static void
unref_in_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	Capture *cap = user_data;

	g_ptr_array_add(cap->sent, g_bytes_new(datagram, len));
	if (cap->framer != NULL) {
		amu_framer_unref(cap->framer);
		cap->framer = NULL;
	}
}

static void
test_unref_in_callback(void)
{
	Capture pc, cc;
	AmuFramer *p = new_open_peripheral(&pc, "600101170008");
	AmuFramer *c = new_open_central(&cc, 8);

	amu_framer_set_message_func(p, unref_in_message, &pc, capture_destroy);
	amu_framer_set_tx_func(p, capture_tx, &pc, capture_destroy);
	CU_ASSERT_EQUAL(pc.destroyed, 0);
	CU_ASSERT_EQUAL(rx_hex(p, "050002006869"), 0);
	/* The ack still went out after the callback let go; then the framer
	 * was freed, destroying both user datas. */
	ASSERT_SENT(&pc, "080000");
	CU_ASSERT_PTR_NULL(pc.framer);
	CU_ASSERT_EQUAL(pc.destroyed, 2);

	amu_framer_set_tx_func(c, unref_in_tx, &cc, capture_destroy);
	CU_ASSERT_EQUAL(cc.destroyed, 0); /* capture_init gave no destroy */
	CU_ASSERT_EQUAL(amu_framer_send(c, (const uint8_t *)"abc", 3, 0), 0);
	ASSERT_SENT(&cc, "05000300616263");
	CU_ASSERT_PTR_NULL(cc.framer);
	CU_ASSERT_EQUAL(cc.destroyed, 1);
	capture_clear(&pc);
	capture_clear(&cc);
}

/* Direct wiring: each tx callback calls the other framer's rx at once, so
 * every call nests inside another; the peripheral echoes everything. */
static void
direct_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	AmuFramer *to = user_data;

	CU_ASSERT_EQUAL(amu_framer_rx(to, datagram, len, 0), 0);
}

static void
echo_message(const uint8_t *message, size_t len, void *user_data)
{
	CU_ASSERT_EQUAL(amu_framer_send(user_data, message, len, 0), 0);
}

static void
count_message(const uint8_t *message, size_t len, void *user_data)
{
	GChecksum *sum = user_data;

	g_checksum_update(sum, message, len);
}

static void
test_direct_wiring(void)
{
	g_autoptr(AmuFramer) c = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, 40, 3);
	g_autoptr(AmuFramer) p = amu_framer_new(AMU_FRAMER_ROLE_PERIPHERAL, 517, 8);
	g_autoptr(GChecksum) got = g_checksum_new(G_CHECKSUM_SHA256);
	g_autoptr(GChecksum) want = g_checksum_new(G_CHECKSUM_SHA256);

	amu_framer_set_tx_func(c, direct_tx, p, NULL);
	amu_framer_set_tx_func(p, direct_tx, c, NULL);
	amu_framer_set_message_func(p, echo_message, p, NULL);
	amu_framer_set_message_func(c, count_message, got, NULL);
	CU_ASSERT_EQUAL(amu_framer_start(c, 0), 0);
	for (guint i = 0; i < 300; i++) {
		g_autoptr(GBytes) msg = make_message((i * 37) % 700, i);

		g_checksum_update(want, g_bytes_get_data(msg, NULL), g_bytes_get_size(msg));
		CU_ASSERT_EQUAL(
		  amu_framer_send(c, g_bytes_get_data(msg, NULL), g_bytes_get_size(msg), 0), 0);
	}
	CU_ASSERT_EQUAL(amu_framer_get_state(c), AMU_FRAMER_STATE_OPEN);
	CU_ASSERT_EQUAL(amu_framer_get_state(p), AMU_FRAMER_STATE_OPEN);
	CU_ASSERT_TRUE(amu_framer_is_idle(c));
	CU_ASSERT_TRUE(amu_framer_is_idle(p));
	CU_ASSERT_STRING_EQUAL(g_checksum_get_string(got), g_checksum_get_string(want));
}

static void
test_to_str(void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int e = AMU_FRAMER_ERROR_NONE; e <= AMU_FRAMER_ERROR_ACK_TIMEOUT; e++) {
		const char *name = amu_framer_error_to_str((AmuFramerError)e);

		CU_ASSERT_STRING_NOT_EQUAL(name, "unknown");
		CU_ASSERT_FALSE(g_hash_table_contains(seen, name));
		g_hash_table_add(seen, (gpointer)name);
	}
	CU_ASSERT_STRING_EQUAL(amu_framer_error_to_str(AMU_FRAMER_ERROR_ACK_TIMEOUT),
			       "ack-timeout");
	CU_ASSERT_STRING_EQUAL(amu_framer_error_to_str((AmuFramerError)999), "unknown");
	CU_ASSERT_STRING_EQUAL(amu_framer_state_to_str(AMU_FRAMER_STATE_IDLE), "idle");
	CU_ASSERT_STRING_EQUAL(amu_framer_state_to_str(AMU_FRAMER_STATE_HANDSHAKE), "handshake");
	CU_ASSERT_STRING_EQUAL(amu_framer_state_to_str(AMU_FRAMER_STATE_OPEN), "open");
	CU_ASSERT_STRING_EQUAL(amu_framer_state_to_str(AMU_FRAMER_STATE_FAILED), "failed");
}

AMU_TEST_MAIN("framer",
	      { "handshake bytes", test_handshake_bytes },
	      { "handshake negotiates min", test_handshake_negotiates_min },
	      { "new refuses out of range", test_new_refuses_out_of_range },
	      { "handshake request refused", test_handshake_request_refused },
	      { "handshake response refused", test_handshake_response_refused },
	      { "handshake repeated", test_handshake_repeated },
	      { "fragment bytes", test_fragment_bytes },
	      { "transfer 4 KiB", test_transfer_4k },
	      { "window respected", test_window_respected },
	      { "standalone acks", test_standalone_acks },
	      { "piggybacked ack", test_piggybacked_ack },
	      { "re-entrant send", test_reentrant_send },
	      { "re-entrant rx", test_reentrant_rx },
	      { "seq wraps", test_seq_wraps },
	      { "malformed", test_malformed },
	      { "window exceeded", test_window_exceeded },
	      { "ack missing", test_ack_missing },
	      { "ack timeout", test_ack_timeout },
	      { "zero-length message", test_zero_length_message },
	      { "max-length message", test_max_length_message },
	      { "long queue", test_long_queue },
	      { "queued before handshake", test_queued_before_handshake },
	      { "unref in callback", test_unref_in_callback },
	      { "direct wiring", test_direct_wiring },
	      { "to_str", test_to_str })
