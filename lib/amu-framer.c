/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-framer.h"

#define DATA_FLAGS (AMU_FRAMER_FLAG_BEGIN | AMU_FRAMER_FLAG_CONTINUE | AMU_FRAMER_FLAG_END)
#define KNOWN_DATA_FLAGS (DATA_FLAGS | AMU_FRAMER_FLAG_ACK)
#define KNOWN_HANDSHAKE_FLAGS (AMU_FRAMER_FLAG_HANDSHAKE | AMU_FRAMER_FLAG_REQUEST)
#define HANDSHAKE_VERSIONS_MAX 4
#define HANDSHAKE_RESPONSE_LEN 5
/* Unacked datagrams of ours beyond which an 8-bit cumulative ack is ambiguous. */
#define UNACKED_MAX 128
/* Compact the send queue once this much has been sent and it is half the queue. */
#define TX_COMPACT_BYTES 65536

/* Versions we speak, best first. */
static const uint8_t supported_versions[] = { AMU_FRAMER_VERSION };

struct AmuFramer {
	grefcount ref_count;
	AmuFramerRole role;
	AmuFramerState state;
	AmuFramerError error;
	uint16_t local_mtu;
	uint8_t local_window;
	uint16_t att_mtu; /* negotiated, or local before OPEN */
	uint8_t window;
	size_t segment;
	unsigned int ack_timeout_ms;
	uint64_t now_ms;
	/* The central's request time, then the time the oldest unacked data
	 * datagram was sent or the last ack that made progress came in. */
	uint64_t timer_base_ms;

	AmuFramerTxFunc tx_func;
	void *tx_user_data;
	GDestroyNotify tx_destroy;
	AmuFramerMessageFunc message_func;
	void *message_user_data;
	GDestroyNotify message_destroy;
	unsigned int last_callback_id;

	/* Outgoing messages, concatenated; tx_offset bytes are already sent. */
	GByteArray *tx_queue;
	size_t tx_offset;
	GArray *tx_lengths; /* guint32 per queued message */
	guint tx_lengths_head;
	size_t tx_message_sent; /* bytes of the head message already sent */
	gboolean tx_in_message; /* its BEGIN is out */
	uint8_t tx_next_seq;
	uint8_t tx_acked_seq; /* last seq the peer acked; next - 1 - acked = unacked */
	uint8_t tx_inflight[AMU_FRAMER_WINDOW_MAX]; /* seqs of unacked data datagrams */
	guint tx_inflight_head;
	guint tx_inflight_len;
	gboolean in_flush;
	gboolean flush_again;
	uint8_t tx_buf[AMU_FRAMER_SEGMENT_MAX];

	uint8_t rx_next_seq;
	uint8_t rx_last_seq;
	gboolean rx_ack_pending; /* received something not covered by our last ack */
	gboolean rx_ack_due;	 /* and it must be acked now, standalone if need be */
	guint rx_unacked_data;	 /* data datagrams since our last ack */
	gboolean rx_in_message;
	size_t rx_declared;
	size_t rx_filled;
	GByteArray *rx_message; /* reassembly buffer, reused; NULL while lent to a callback */
};

const char *
amu_framer_state_to_str(AmuFramerState s)
{
	switch (s) {
	case AMU_FRAMER_STATE_IDLE:
		return "idle";
	case AMU_FRAMER_STATE_HANDSHAKE:
		return "handshake";
	case AMU_FRAMER_STATE_OPEN:
		return "open";
	case AMU_FRAMER_STATE_FAILED:
		return "failed";
	}
	return "unknown";
}

const char *
amu_framer_error_to_str(AmuFramerError e)
{
	switch (e) {
	case AMU_FRAMER_ERROR_NONE:
		return "none";
	case AMU_FRAMER_ERROR_UNKNOWN_FLAGS:
		return "unknown-flags";
	case AMU_FRAMER_ERROR_INVALID_FLAGS:
		return "invalid-flags";
	case AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT:
		return "datagram-too-short";
	case AMU_FRAMER_ERROR_DATAGRAM_TOO_LONG:
		return "datagram-too-long";
	case AMU_FRAMER_ERROR_NOT_OPEN:
		return "not-open";
	case AMU_FRAMER_ERROR_UNEXPECTED_SEQ:
		return "unexpected-seq";
	case AMU_FRAMER_ERROR_INVALID_ACK:
		return "invalid-ack";
	case AMU_FRAMER_ERROR_WINDOW_EXCEEDED:
		return "window-exceeded";
	case AMU_FRAMER_ERROR_NO_BEGIN:
		return "no-begin";
	case AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS:
		return "begin-in-progress";
	case AMU_FRAMER_ERROR_MESSAGE_OVERRUN:
		return "message-overrun";
	case AMU_FRAMER_ERROR_MESSAGE_TRUNCATED:
		return "message-truncated";
	case AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED:
		return "handshake-malformed";
	case AMU_FRAMER_ERROR_BAD_MTU:
		return "bad-mtu";
	case AMU_FRAMER_ERROR_BAD_WINDOW:
		return "bad-window";
	case AMU_FRAMER_ERROR_NO_COMMON_VERSION:
		return "no-common-version";
	case AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED:
		return "handshake-unexpected";
	case AMU_FRAMER_ERROR_HANDSHAKE_REPEATED:
		return "handshake-repeated";
	case AMU_FRAMER_ERROR_ACK_MISSING:
		return "ack-missing";
	case AMU_FRAMER_ERROR_ACK_TIMEOUT:
		return "ack-timeout";
	}
	return "unknown";
}

static gboolean
mtu_in_range(unsigned int mtu)
{
	return mtu >= AMU_FRAMER_MTU_MIN && mtu <= AMU_FRAMER_MTU_MAX;
}

static gboolean
window_in_range(unsigned int window)
{
	return window >= 1 && window <= AMU_FRAMER_WINDOW_MAX;
}

static uint16_t
read_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static void
write_le16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

AmuFramer *
amu_framer_new(AmuFramerRole role, uint16_t att_mtu, uint8_t window)
{
	AmuFramer *f;

	if (!mtu_in_range(att_mtu) || !window_in_range(window))
		return NULL;
	f = g_new0(AmuFramer, 1);
	g_ref_count_init(&f->ref_count);
	f->role = role;
	f->state = AMU_FRAMER_STATE_IDLE;
	f->error = AMU_FRAMER_ERROR_NONE;
	f->local_mtu = f->att_mtu = att_mtu;
	f->local_window = f->window = window;
	f->segment = att_mtu - AMU_FRAMER_ATT_OVERHEAD;
	f->ack_timeout_ms = AMU_FRAMER_ACK_TIMEOUT_DEFAULT_MS;
	f->tx_queue = g_byte_array_new();
	f->tx_lengths = g_array_new(FALSE, FALSE, sizeof(guint32));
	f->tx_acked_seq = 0xff; /* "seq -1": nothing sent, nothing acked */
	f->rx_last_seq = 0xff;
	return f;
}

AmuFramer *
amu_framer_ref(AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, NULL);
	g_ref_count_inc(&f->ref_count);
	return f;
}

void
amu_framer_unref(AmuFramer *f)
{
	if (f == NULL)
		return;
	if (!g_ref_count_dec(&f->ref_count))
		return;
	if (f->tx_destroy != NULL)
		f->tx_destroy(f->tx_user_data);
	if (f->message_destroy != NULL)
		f->message_destroy(f->message_user_data);
	g_byte_array_unref(f->tx_queue);
	g_array_unref(f->tx_lengths);
	if (f->rx_message != NULL)
		g_byte_array_unref(f->rx_message);
	g_free(f);
}

/* Installs the new callback before destroying the old user data, so a
 * destroy notify that looks at the framer sees a consistent one. */
static unsigned int
amu_framer_replace_callback(AmuFramer *f,
			    void **user_data_slot,
			    GDestroyNotify *destroy_slot,
			    void *user_data,
			    GDestroyNotify destroy)
{
	GDestroyNotify old_destroy = *destroy_slot;
	void *old_user_data = *user_data_slot;

	*user_data_slot = user_data;
	*destroy_slot = destroy;
	if (old_destroy != NULL)
		old_destroy(old_user_data);
	return ++f->last_callback_id;
}

unsigned int
amu_framer_set_tx_func(AmuFramer *f, AmuFramerTxFunc func, void *user_data, GDestroyNotify destroy)
{
	g_return_val_if_fail(f != NULL, 0);
	f->tx_func = func;
	return amu_framer_replace_callback(f, &f->tx_user_data, &f->tx_destroy, user_data, destroy);
}

unsigned int
amu_framer_set_message_func(AmuFramer *f,
			    AmuFramerMessageFunc func,
			    void *user_data,
			    GDestroyNotify destroy)
{
	g_return_val_if_fail(f != NULL, 0);
	f->message_func = func;
	return amu_framer_replace_callback(
	  f, &f->message_user_data, &f->message_destroy, user_data, destroy);
}

static int
amu_framer_fail(AmuFramer *f, AmuFramerError error)
{
	if (f->state == AMU_FRAMER_STATE_FAILED)
		return -1;
	g_debug("framer failed: %s", amu_framer_error_to_str(error));
	f->state = AMU_FRAMER_STATE_FAILED;
	f->error = error;
	/* Nothing will be sent any more: report no back-pressure, keep no data. */
	g_byte_array_set_size(f->tx_queue, 0);
	g_array_set_size(f->tx_lengths, 0);
	f->tx_offset = 0;
	f->tx_lengths_head = 0;
	return -1;
}

static void
amu_framer_emit(AmuFramer *f, const uint8_t *datagram, size_t len)
{
	if (f->tx_func != NULL)
		f->tx_func(datagram, len, f->tx_user_data);
}

/* Takes the next seq; fails when the peer has not acked half the seq space of
 * ours, after which a cumulative 8-bit ack could not be told from an old one. */
static gboolean
amu_framer_take_seq(AmuFramer *f, uint8_t *seq)
{
	uint8_t unacked = (uint8_t)(f->tx_next_seq - f->tx_acked_seq - 1);

	if (unacked >= UNACKED_MAX) {
		amu_framer_fail(f, AMU_FRAMER_ERROR_ACK_MISSING);
		return FALSE;
	}
	*seq = f->tx_next_seq++;
	return TRUE;
}

/* Called with the ack byte written: everything received so far is now acked. */
static void
amu_framer_ack_sent(AmuFramer *f)
{
	f->rx_ack_pending = FALSE;
	f->rx_ack_due = FALSE;
	f->rx_unacked_data = 0;
}

static gboolean
amu_framer_has_tx_data(const AmuFramer *f)
{
	return f->tx_lengths_head < f->tx_lengths->len;
}

static void
amu_framer_compact_tx(AmuFramer *f)
{
	if (f->tx_lengths_head == f->tx_lengths->len) {
		g_byte_array_set_size(f->tx_queue, 0);
		g_array_set_size(f->tx_lengths, 0);
		f->tx_offset = 0;
		f->tx_lengths_head = 0;
		return;
	}
	/* A sender that never lets the queue drain must not grow it forever. */
	if (f->tx_offset >= TX_COMPACT_BYTES && f->tx_offset * 2 >= f->tx_queue->len) {
		g_byte_array_remove_range(f->tx_queue, 0, f->tx_offset);
		f->tx_offset = 0;
	}
	if (f->tx_lengths_head >= 1024 && f->tx_lengths_head * 2 >= f->tx_lengths->len) {
		g_array_remove_range(f->tx_lengths, 0, f->tx_lengths_head);
		f->tx_lengths_head = 0;
	}
}

/* Builds and sends the next fragment of the head message. All state is
 * updated before the tx callback runs, as it may re-enter the framer. */
static void
amu_framer_send_fragment(AmuFramer *f)
{
	uint8_t *out = f->tx_buf;
	size_t msg_len = g_array_index(f->tx_lengths, guint32, f->tx_lengths_head);
	size_t remaining = msg_len - f->tx_message_sent;
	size_t pos = 1;
	size_t chunk;
	uint8_t flags = 0;
	uint8_t seq;

	if (!amu_framer_take_seq(f, &seq))
		return;
	if (f->rx_ack_pending) {
		flags |= AMU_FRAMER_FLAG_ACK;
		out[pos++] = f->rx_last_seq;
		amu_framer_ack_sent(f);
	}
	out[pos++] = seq;
	if (!f->tx_in_message) {
		flags |= AMU_FRAMER_FLAG_BEGIN;
		write_le16(out + pos, (uint16_t)msg_len);
		pos += 2;
	}
	chunk = MIN(remaining, f->segment - pos);
	if (chunk == remaining)
		flags |= AMU_FRAMER_FLAG_END;
	else if (f->tx_in_message)
		flags |= AMU_FRAMER_FLAG_CONTINUE;
	out[0] = flags;
	if (chunk > 0)
		memcpy(out + pos, f->tx_queue->data + f->tx_offset, chunk);
	pos += chunk;

	f->tx_offset += chunk;
	if (flags & AMU_FRAMER_FLAG_END) {
		f->tx_lengths_head++;
		f->tx_message_sent = 0;
		f->tx_in_message = FALSE;
		amu_framer_compact_tx(f);
	} else {
		f->tx_message_sent += chunk;
		f->tx_in_message = TRUE;
	}
	if (f->tx_inflight_len == 0)
		f->timer_base_ms = f->now_ms;
	f->tx_inflight[(f->tx_inflight_head + f->tx_inflight_len) % AMU_FRAMER_WINDOW_MAX] = seq;
	f->tx_inflight_len++;

	amu_framer_emit(f, out, pos);
}

static void
amu_framer_send_standalone_ack(AmuFramer *f)
{
	uint8_t out[3];
	uint8_t seq;

	if (!amu_framer_take_seq(f, &seq))
		return;
	out[0] = AMU_FRAMER_FLAG_ACK;
	out[1] = f->rx_last_seq;
	out[2] = seq;
	amu_framer_ack_sent(f);
	amu_framer_emit(f, out, sizeof(out));
}

/* Sends what the window allows, then a standalone ack if one is due and no
 * data carried it. A call from inside our own tx callback only asks the
 * running flush to go round again, so tx_buf is never overwritten in use. */
static void
amu_framer_flush(AmuFramer *f)
{
	if (f->in_flush) {
		f->flush_again = TRUE;
		return;
	}
	f->in_flush = TRUE;
	do {
		f->flush_again = FALSE;
		while (f->state == AMU_FRAMER_STATE_OPEN && amu_framer_has_tx_data(f) &&
		       f->tx_inflight_len < f->window)
			amu_framer_send_fragment(f);
		if (f->state == AMU_FRAMER_STATE_OPEN && f->rx_ack_due && f->rx_ack_pending)
			amu_framer_send_standalone_ack(f);
	} while (f->flush_again && f->state == AMU_FRAMER_STATE_OPEN);
	f->in_flush = FALSE;
}

static void
amu_framer_open(AmuFramer *f, uint16_t att_mtu, uint8_t window)
{
	f->att_mtu = att_mtu;
	f->window = window;
	f->segment = att_mtu - AMU_FRAMER_ATT_OVERHEAD;
	f->state = AMU_FRAMER_STATE_OPEN;
	g_debug("framer open: ATT MTU %u, window %u", att_mtu, window);
}

int
amu_framer_start(AmuFramer *f, uint64_t now_ms)
{
	uint8_t request[1 + 1 + G_N_ELEMENTS(supported_versions) + 2 + 1];
	size_t pos = 0;

	g_return_val_if_fail(f != NULL, -1);
	if (f->state == AMU_FRAMER_STATE_FAILED)
		return -1;
	f->now_ms = now_ms;
	if (f->role == AMU_FRAMER_ROLE_PERIPHERAL) {
		if (f->state == AMU_FRAMER_STATE_IDLE)
			f->state = AMU_FRAMER_STATE_HANDSHAKE;
		return 0;
	}
	if (f->state != AMU_FRAMER_STATE_IDLE)
		return -1;
	request[pos++] = AMU_FRAMER_FLAG_HANDSHAKE | AMU_FRAMER_FLAG_REQUEST;
	request[pos++] = G_N_ELEMENTS(supported_versions);
	for (size_t i = 0; i < G_N_ELEMENTS(supported_versions); i++)
		request[pos++] = supported_versions[i];
	write_le16(request + pos, f->local_mtu);
	pos += 2;
	request[pos++] = f->local_window;
	f->state = AMU_FRAMER_STATE_HANDSHAKE;
	f->timer_base_ms = now_ms;
	amu_framer_ref(f);
	amu_framer_emit(f, request, pos);
	amu_framer_unref(f);
	return 0;
}

static gboolean
version_supported(uint8_t version)
{
	for (size_t i = 0; i < G_N_ELEMENTS(supported_versions); i++) {
		if (supported_versions[i] == version)
			return TRUE;
	}
	return FALSE;
}

static int
amu_framer_rx_request(AmuFramer *f, const uint8_t *d, size_t len)
{
	uint8_t response[HANDSHAKE_RESPONSE_LEN];
	size_t count;
	uint16_t mtu;
	uint8_t window;
	int version = -1;

	if (f->role != AMU_FRAMER_ROLE_PERIPHERAL)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED);
	if (len < 2)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED);
	count = d[1];
	if (count < 1 || count > HANDSHAKE_VERSIONS_MAX || len != 1 + 1 + count + 2 + 1)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED);
	/* Highest version both speak, whatever order the central listed them in. */
	for (size_t i = 0; i < count; i++) {
		if (version_supported(d[2 + i]) && (int)d[2 + i] > version)
			version = d[2 + i];
	}
	mtu = read_le16(d + 2 + count);
	window = d[2 + count + 2];
	if (version < 0)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_NO_COMMON_VERSION);
	if (!mtu_in_range(mtu))
		return amu_framer_fail(f, AMU_FRAMER_ERROR_BAD_MTU);
	if (!window_in_range(window))
		return amu_framer_fail(f, AMU_FRAMER_ERROR_BAD_WINDOW);
	amu_framer_open(f, MIN(mtu, f->local_mtu), MIN(window, f->local_window));
	response[0] = AMU_FRAMER_FLAG_HANDSHAKE;
	response[1] = (uint8_t)version;
	write_le16(response + 2, f->att_mtu);
	response[4] = f->window;
	amu_framer_emit(f, response, sizeof(response));
	return 0;
}

static int
amu_framer_rx_response(AmuFramer *f, const uint8_t *d, size_t len)
{
	uint16_t mtu;

	if (f->role != AMU_FRAMER_ROLE_CENTRAL || f->state != AMU_FRAMER_STATE_HANDSHAKE)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED);
	if (len != HANDSHAKE_RESPONSE_LEN)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED);
	mtu = read_le16(d + 2);
	if (!version_supported(d[1]))
		return amu_framer_fail(f, AMU_FRAMER_ERROR_NO_COMMON_VERSION);
	/* The answer must be min(ours, theirs): above our offer is a broken peer. */
	if (!mtu_in_range(mtu) || mtu > f->local_mtu)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_BAD_MTU);
	if (!window_in_range(d[4]) || d[4] > f->local_window)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_BAD_WINDOW);
	amu_framer_open(f, mtu, d[4]);
	return 0;
}

static int
amu_framer_rx_handshake(AmuFramer *f, const uint8_t *d, size_t len)
{
	if ((d[0] & ~KNOWN_HANDSHAKE_FLAGS) != 0)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_UNKNOWN_FLAGS);
	if (f->state == AMU_FRAMER_STATE_OPEN)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_HANDSHAKE_REPEATED);
	if (d[0] & AMU_FRAMER_FLAG_REQUEST)
		return amu_framer_rx_request(f, d, len);
	return amu_framer_rx_response(f, d, len);
}

/* Cumulative ack: valid only for a seq in (acked, next - 1]; releases the data
 * datagrams it covers. */
static int
amu_framer_rx_ack(AmuFramer *f, uint8_t ack_seq)
{
	uint8_t acked = (uint8_t)(ack_seq - f->tx_acked_seq);
	uint8_t unacked = (uint8_t)(f->tx_next_seq - f->tx_acked_seq - 1);
	guint released = 0;

	if (acked == 0 || acked > unacked)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_INVALID_ACK);
	while (f->tx_inflight_len > 0) {
		uint8_t seq = f->tx_inflight[f->tx_inflight_head];

		if ((uint8_t)(seq - f->tx_acked_seq) > acked)
			break;
		f->tx_inflight_head = (f->tx_inflight_head + 1) % AMU_FRAMER_WINDOW_MAX;
		f->tx_inflight_len--;
		released++;
	}
	f->tx_acked_seq = ack_seq;
	/* Progress restarts the timer for what is still in flight. */
	if (released > 0)
		f->timer_base_ms = f->now_ms;
	return 0;
}

/* Hands a complete message to the callback. A reassembled message is lent
 * out of rx_message, so a re-entrant rx starting the next message gets a
 * fresh buffer instead of reallocating the one the callback is reading. */
static void
amu_framer_deliver(AmuFramer *f, const uint8_t *message, size_t len, gboolean from_buffer)
{
	GByteArray *lent = NULL;

	if (from_buffer) {
		lent = f->rx_message;
		f->rx_message = NULL;
		message = lent->data;
	}
	if (message == NULL)
		message = (const uint8_t *)"";
	if (f->message_func != NULL)
		f->message_func(message, len, f->message_user_data);
	if (lent == NULL)
		return;
	if (f->rx_message == NULL)
		f->rx_message = lent;
	else
		g_byte_array_unref(lent);
}

static int
amu_framer_rx_data(AmuFramer *f, const uint8_t *d, size_t len)
{
	uint8_t flags = d[0];
	uint8_t kind = flags & DATA_FLAGS;
	gboolean has_ack = (flags & AMU_FRAMER_FLAG_ACK) != 0;
	size_t header = 1 + (has_ack ? 1 : 0) + 1 + ((flags & AMU_FRAMER_FLAG_BEGIN) ? 2 : 0);
	const uint8_t *payload;
	size_t payload_len;
	uint8_t seq;

	if ((flags & ~KNOWN_DATA_FLAGS) != 0)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_UNKNOWN_FLAGS);
	if (f->state != AMU_FRAMER_STATE_OPEN)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_NOT_OPEN);
	if (len > f->segment)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_DATAGRAM_TOO_LONG);
	if (kind == (AMU_FRAMER_FLAG_BEGIN | AMU_FRAMER_FLAG_CONTINUE) ||
	    (kind & (AMU_FRAMER_FLAG_CONTINUE | AMU_FRAMER_FLAG_END)) ==
	      (AMU_FRAMER_FLAG_CONTINUE | AMU_FRAMER_FLAG_END) ||
	    (kind == 0 && !has_ack))
		return amu_framer_fail(f, AMU_FRAMER_ERROR_INVALID_FLAGS);
	if (len < header)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT);
	seq = d[has_ack ? 2 : 1];
	if (seq != f->rx_next_seq)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_UNEXPECTED_SEQ);
	if (has_ack && amu_framer_rx_ack(f, d[1]) < 0)
		return -1;
	f->rx_next_seq++;
	f->rx_last_seq = seq;
	f->rx_ack_pending = TRUE;
	payload = d + header;
	payload_len = len - header;

	if (kind == 0) {
		/* A bare ack: no payload, and not itself acked promptly (an ack
		 * of an ack would never end); the next ack we send covers it. */
		if (payload_len > 0)
			return amu_framer_fail(f, AMU_FRAMER_ERROR_MESSAGE_OVERRUN);
		return 0;
	}
	/* Our acks go out as soon as they are due, so the peer can only overrun
	 * the window while they are held up (a re-entrant tx, say). */
	if (++f->rx_unacked_data > f->window)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_WINDOW_EXCEEDED);
	if (f->rx_unacked_data >= MAX(1u, f->window / 2u))
		f->rx_ack_due = TRUE;

	if (kind & AMU_FRAMER_FLAG_BEGIN) {
		size_t declared = read_le16(d + header - 2);

		if (f->rx_in_message)
			return amu_framer_fail(f, AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS);
		if (payload_len > declared)
			return amu_framer_fail(f, AMU_FRAMER_ERROR_MESSAGE_OVERRUN);
		if (kind & AMU_FRAMER_FLAG_END) {
			if (payload_len < declared)
				return amu_framer_fail(f, AMU_FRAMER_ERROR_MESSAGE_TRUNCATED);
			/* The sender is waiting on its last datagram: ack the message. */
			f->rx_ack_due = TRUE;
			amu_framer_deliver(f, payload, payload_len, FALSE);
			return 0;
		}
		if (f->rx_message == NULL)
			f->rx_message = g_byte_array_new();
		/* Sized once to the declared length: no realloc while filling. */
		g_byte_array_set_size(f->rx_message, (guint)declared);
		if (payload_len > 0)
			memcpy(f->rx_message->data, payload, payload_len);
		f->rx_declared = declared;
		f->rx_filled = payload_len;
		f->rx_in_message = TRUE;
		return 0;
	}
	if (!f->rx_in_message)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_NO_BEGIN);
	if (payload_len > f->rx_declared - f->rx_filled)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_MESSAGE_OVERRUN);
	if (payload_len > 0)
		memcpy(f->rx_message->data + f->rx_filled, payload, payload_len);
	f->rx_filled += payload_len;
	if ((kind & AMU_FRAMER_FLAG_END) == 0)
		return 0;
	if (f->rx_filled < f->rx_declared)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_MESSAGE_TRUNCATED);
	f->rx_in_message = FALSE;
	f->rx_ack_due = TRUE;
	amu_framer_deliver(f, NULL, f->rx_filled, TRUE);
	return 0;
}

int
amu_framer_rx(AmuFramer *f, const uint8_t *datagram, size_t len, uint64_t now_ms)
{
	int ret;

	g_return_val_if_fail(f != NULL, -1);
	g_return_val_if_fail(datagram != NULL || len == 0, -1);
	if (f->state == AMU_FRAMER_STATE_FAILED)
		return -1;
	f->now_ms = now_ms;
	if (len == 0)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT);

	amu_framer_ref(f);
	if (datagram[0] & AMU_FRAMER_FLAG_HANDSHAKE)
		amu_framer_rx_handshake(f, datagram, len);
	else
		amu_framer_rx_data(f, datagram, len);
	if (f->state == AMU_FRAMER_STATE_OPEN)
		amu_framer_flush(f);
	ret = f->state == AMU_FRAMER_STATE_FAILED ? -1 : 0;
	amu_framer_unref(f);
	return ret;
}

int
amu_framer_send(AmuFramer *f, const uint8_t *message, size_t len, uint64_t now_ms)
{
	guint32 len32 = (guint32)len;
	int ret;

	g_return_val_if_fail(f != NULL, -1);
	g_return_val_if_fail(message != NULL || len == 0, -1);
	if (f->state == AMU_FRAMER_STATE_FAILED || len > AMU_FRAMER_MESSAGE_MAX)
		return -1;
	f->now_ms = now_ms;
	if (len > 0)
		g_byte_array_append(f->tx_queue, message, (guint)len);
	g_array_append_val(f->tx_lengths, len32);
	if (f->state != AMU_FRAMER_STATE_OPEN)
		return 0;

	amu_framer_ref(f);
	amu_framer_flush(f);
	ret = f->state == AMU_FRAMER_STATE_FAILED ? -1 : 0;
	amu_framer_unref(f);
	return ret;
}

static uint64_t
add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t
amu_framer_next_timeout(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, UINT64_MAX);
	/* The central waits for the handshake response as for an ack. */
	if (f->ack_timeout_ms != 0 &&
	    ((f->state == AMU_FRAMER_STATE_HANDSHAKE && f->role == AMU_FRAMER_ROLE_CENTRAL) ||
	     (f->state == AMU_FRAMER_STATE_OPEN && f->tx_inflight_len > 0)))
		return add_saturating(f->timer_base_ms, f->ack_timeout_ms);
	return UINT64_MAX;
}

int
amu_framer_tick(AmuFramer *f, uint64_t now_ms)
{
	uint64_t deadline;

	g_return_val_if_fail(f != NULL, -1);
	if (f->state == AMU_FRAMER_STATE_FAILED)
		return -1;
	f->now_ms = now_ms;
	deadline = amu_framer_next_timeout(f);
	if (deadline != UINT64_MAX && now_ms >= deadline)
		return amu_framer_fail(f, AMU_FRAMER_ERROR_ACK_TIMEOUT);
	return 0;
}

AmuFramerState
amu_framer_get_state(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, AMU_FRAMER_STATE_FAILED);
	return f->state;
}

AmuFramerError
amu_framer_get_error(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, AMU_FRAMER_ERROR_NONE);
	return f->error;
}

uint16_t
amu_framer_get_att_mtu(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, 0);
	return f->att_mtu;
}

uint8_t
amu_framer_get_window(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, 0);
	return f->window;
}

size_t
amu_framer_get_queued_bytes(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, 0);
	return f->tx_queue->len - f->tx_offset;
}

gboolean
amu_framer_is_idle(const AmuFramer *f)
{
	g_return_val_if_fail(f != NULL, TRUE);
	return !amu_framer_has_tx_data(f) && f->tx_inflight_len == 0;
}

void
amu_framer_set_ack_timeout(AmuFramer *f, unsigned int ms)
{
	g_return_if_fail(f != NULL);
	f->ack_timeout_ms = ms;
}
