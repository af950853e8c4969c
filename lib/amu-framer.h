/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/*
 * AmuFramer: sans-I/O segmentation and reassembly of messages into link
 * datagrams, with a sliding window and cumulative acks (Matter BTP is the
 * model). The wire format and its rules are in docs/framing.md.
 *
 * Datagrams come in through amu_framer_rx() and go out through the tx
 * callback; whole messages come out through the message callback. Time is
 * passed in (milliseconds on any monotonic clock); nothing here reads a clock
 * or touches a socket. Not thread-safe: use one framer from one thread.
 *
 * Return convention: calls returning int return 0 on success and -1 when the
 * framer is (or has just become) FAILED. FAILED is sticky; the reason is
 * amu_framer_get_error(). amu_framer_send() also returns -1, without failing
 * the framer, for a message longer than AMU_FRAMER_MESSAGE_MAX.
 */

#define AMU_FRAMER_MTU_MIN 23
#define AMU_FRAMER_MTU_MAX 517
/* ATT header (opcode + handle) taken off the MTU for each datagram. */
#define AMU_FRAMER_ATT_OVERHEAD 3
#define AMU_FRAMER_SEGMENT_MAX (AMU_FRAMER_MTU_MAX - AMU_FRAMER_ATT_OVERHEAD)
#define AMU_FRAMER_WINDOW_MAX 8
#define AMU_FRAMER_MESSAGE_MAX 65535
#define AMU_FRAMER_VERSION 1
#define AMU_FRAMER_ACK_TIMEOUT_DEFAULT_MS 5000

/* Flag bits, byte 0 of every datagram. */
#define AMU_FRAMER_FLAG_BEGIN 0x01
#define AMU_FRAMER_FLAG_CONTINUE 0x02
#define AMU_FRAMER_FLAG_END 0x04
#define AMU_FRAMER_FLAG_ACK 0x08
#define AMU_FRAMER_FLAG_HANDSHAKE 0x20
/* Only valid together with HANDSHAKE: marks the central's request. */
#define AMU_FRAMER_FLAG_REQUEST 0x40

typedef enum {
	AMU_FRAMER_ROLE_CENTRAL,
	AMU_FRAMER_ROLE_PERIPHERAL,
} AmuFramerRole;

typedef enum {
	AMU_FRAMER_STATE_IDLE,
	AMU_FRAMER_STATE_HANDSHAKE,
	AMU_FRAMER_STATE_OPEN,
	AMU_FRAMER_STATE_FAILED,
} AmuFramerState;

/**
 * AmuFramerError:
 * @AMU_FRAMER_ERROR_NONE: not failed
 * @AMU_FRAMER_ERROR_UNKNOWN_FLAGS: a flag bit outside the defined set (0x40 outside a handshake)
 * @AMU_FRAMER_ERROR_INVALID_FLAGS: defined bits in a contradictory combination
 *   (BEGIN|CONTINUE, CONTINUE|END, or none of BEGIN/CONTINUE/END/ACK)
 * @AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT: shorter than the header its flags announce
 * @AMU_FRAMER_ERROR_DATAGRAM_TOO_LONG: longer than the negotiated segment size
 * @AMU_FRAMER_ERROR_NOT_OPEN: a data or ack datagram before the handshake completed
 * @AMU_FRAMER_ERROR_UNEXPECTED_SEQ: a duplicate or a gap in the peer's sequence numbers
 * @AMU_FRAMER_ERROR_INVALID_ACK: an ack of a seq never sent or outside the in-flight range
 * @AMU_FRAMER_ERROR_WINDOW_EXCEEDED: the peer sent more unacked data datagrams than the window
 * @AMU_FRAMER_ERROR_NO_BEGIN: CONTINUE or END without a message in progress
 * @AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS: BEGIN while a message is in progress
 * @AMU_FRAMER_ERROR_MESSAGE_OVERRUN: payload beyond the declared length (or on a bare ack)
 * @AMU_FRAMER_ERROR_MESSAGE_TRUNCATED: END with fewer bytes than declared
 * @AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED: handshake of the wrong length, or a version
 *   count outside 1..4
 * @AMU_FRAMER_ERROR_BAD_MTU: handshake MTU outside 23..517, or a response above the request
 * @AMU_FRAMER_ERROR_BAD_WINDOW: handshake window outside 1..8, or a response above the request
 * @AMU_FRAMER_ERROR_NO_COMMON_VERSION: no protocol version both sides support
 * @AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED: a request at the central, a response at the
 *   peripheral, or a response the central never asked for
 * @AMU_FRAMER_ERROR_HANDSHAKE_REPEATED: a second handshake on an open framer
 * @AMU_FRAMER_ERROR_ACK_MISSING: the peer keeps sending data but left half the sequence
 *   space of ours unacknowledged, so acks would become ambiguous
 * @AMU_FRAMER_ERROR_ACK_TIMEOUT: no ack (or handshake response) within the ack timeout
 */
typedef enum {
	AMU_FRAMER_ERROR_NONE,
	AMU_FRAMER_ERROR_UNKNOWN_FLAGS,
	AMU_FRAMER_ERROR_INVALID_FLAGS,
	AMU_FRAMER_ERROR_DATAGRAM_TOO_SHORT,
	AMU_FRAMER_ERROR_DATAGRAM_TOO_LONG,
	AMU_FRAMER_ERROR_NOT_OPEN,
	AMU_FRAMER_ERROR_UNEXPECTED_SEQ,
	AMU_FRAMER_ERROR_INVALID_ACK,
	AMU_FRAMER_ERROR_WINDOW_EXCEEDED,
	AMU_FRAMER_ERROR_NO_BEGIN,
	AMU_FRAMER_ERROR_BEGIN_IN_PROGRESS,
	AMU_FRAMER_ERROR_MESSAGE_OVERRUN,
	AMU_FRAMER_ERROR_MESSAGE_TRUNCATED,
	AMU_FRAMER_ERROR_HANDSHAKE_MALFORMED,
	AMU_FRAMER_ERROR_BAD_MTU,
	AMU_FRAMER_ERROR_BAD_WINDOW,
	AMU_FRAMER_ERROR_NO_COMMON_VERSION,
	AMU_FRAMER_ERROR_HANDSHAKE_UNEXPECTED,
	AMU_FRAMER_ERROR_HANDSHAKE_REPEATED,
	AMU_FRAMER_ERROR_ACK_MISSING,
	AMU_FRAMER_ERROR_ACK_TIMEOUT,
} AmuFramerError;

typedef struct AmuFramer AmuFramer;

/* @datagram is valid only during the call; copy it to keep it. */
typedef void (*AmuFramerTxFunc)(const uint8_t *datagram, size_t len, void *user_data);
/* @message is valid only during the call; it is never NULL, even when @len is 0. */
typedef void (*AmuFramerMessageFunc)(const uint8_t *message, size_t len, void *user_data);

/* Returns NULL if @att_mtu is outside 23..517 or @window outside 1..8: these are
 * the local limits, offered by the central and capped by the peripheral. */
AmuFramer *amu_framer_new(AmuFramerRole role, uint16_t att_mtu, uint8_t window);
AmuFramer *amu_framer_ref(AmuFramer *f);
void amu_framer_unref(AmuFramer *f);

/* Replace the callback (calling the old @destroy); returns a non-zero id.
 * Set the tx callback before amu_framer_start(). Callbacks may call any
 * amu_framer_ function re-entrantly and may drop the last reference. */
unsigned int amu_framer_set_tx_func(AmuFramer *f,
				    AmuFramerTxFunc func,
				    void *user_data,
				    GDestroyNotify destroy);
unsigned int amu_framer_set_message_func(AmuFramer *f,
					 AmuFramerMessageFunc func,
					 void *user_data,
					 GDestroyNotify destroy);

/* The central sends the handshake request; the peripheral waits for it (a
 * peripheral also accepts a request before start()). A central returns -1,
 * without failing, when started twice. */
int amu_framer_start(AmuFramer *f, uint64_t now_ms);
int amu_framer_rx(AmuFramer *f, const uint8_t *datagram, size_t len, uint64_t now_ms);
/* Copies @message into the outgoing queue; datagrams go out as the window
 * allows. Messages queued before the handshake completes go out after it. */
int amu_framer_send(AmuFramer *f, const uint8_t *message, size_t len, uint64_t now_ms);
/* Fires the ack timeout (and the central's handshake timeout) when due. */
int amu_framer_tick(AmuFramer *f, uint64_t now_ms);
/* Absolute time (ms) at which amu_framer_tick() has work, UINT64_MAX if none. */
uint64_t amu_framer_next_timeout(const AmuFramer *f);

AmuFramerState amu_framer_get_state(const AmuFramer *f);
AmuFramerError amu_framer_get_error(const AmuFramer *f);
const char *amu_framer_state_to_str(AmuFramerState s);
const char *amu_framer_error_to_str(AmuFramerError e);
/* The negotiated values once OPEN, the local limits before. */
uint16_t amu_framer_get_att_mtu(const AmuFramer *f);
uint8_t amu_framer_get_window(const AmuFramer *f);
/* Bytes of queued messages not yet put in a datagram: for back-pressure. */
size_t amu_framer_get_queued_bytes(const AmuFramer *f);
/* Nothing queued and no data datagram waiting for an ack. */
gboolean amu_framer_is_idle(const AmuFramer *f);
/* 0 disables the timer; applies to datagrams already in flight. */
void amu_framer_set_ack_timeout(AmuFramer *f, unsigned int ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuFramer, amu_framer_unref)

G_END_DECLS
