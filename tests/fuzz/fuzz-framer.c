/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>

#include "amu-framer.h"

/*
 * Feeds arbitrary datagram sequences to a framer of either role.
 *
 * Input: one config byte, then operations.
 *   config: bit 0 role (0 central, 1 peripheral), bits 1-2 local ATT MTU
 *           (23, 24, 247, 517), bits 3-5 local window - 1, bit 6 echo
 *           every received message back from the message callback.
 *   op < 0xfc: a datagram of that many bytes follows (cut short at the end)
 *   0xfc hi lo: a datagram of (hi << 8 | lo) bytes follows, for long ones
 *   0xfd n:     send a message of n * 257 bytes
 *   0xfe:       advance the clock by 1 s and tick
 *   0xff:       advance the clock by 10 s and tick
 * A central sends its handshake request before the first operation.
 *
 * Invariants checked (abort on violation): rx/send/tick return -1 exactly
 * when the framer is FAILED, FAILED always has an error and never leaves,
 * and every datagram sent fits the segment size and has known flags.
 *
 * The seeds in corpus/framer/ are written in this format by hand (a few lines
 * of Python): a valid handshake for the role, then fragments, acks, sends and
 * ticks. peripheral-hello, for one, is 3d | 06 600101f70008 | 09 05000500
 * "hello": peripheral, MTU 247, window 8, request, one message.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t mtus[] = { 23, 24, 247, 517 };
static uint8_t message_buf[255 * 257];

typedef struct {
	AmuFramer *framer;
	gboolean echo;
	unsigned int depth;
} Fuzz;

static void
check(gboolean ok)
{
	if (!ok)
		abort();
}

static void
fuzz_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	Fuzz *fuzz = user_data;
	size_t segment = amu_framer_get_att_mtu(fuzz->framer) - AMU_FRAMER_ATT_OVERHEAD;

	check(len >= 1 && len <= segment);
	if (datagram[0] & AMU_FRAMER_FLAG_HANDSHAKE)
		check((datagram[0] & ~0x60) == 0);
	else
		check((datagram[0] & ~0x0f) == 0 && len >= 3);
}

static void
fuzz_message(const uint8_t *message, size_t len, void *user_data)
{
	Fuzz *fuzz = user_data;

	check(message != NULL && len <= AMU_FRAMER_MESSAGE_MAX);
	check(amu_framer_get_state(fuzz->framer) == AMU_FRAMER_STATE_OPEN);
	/* Echo re-entrantly, but not forever through nested deliveries. */
	if (fuzz->echo && fuzz->depth < 4) {
		fuzz->depth++;
		amu_framer_send(fuzz->framer, message, len, 0);
		fuzz->depth--;
	}
}

static void
check_result(AmuFramer *f, int rc, gboolean was_failed)
{
	gboolean failed = amu_framer_get_state(f) == AMU_FRAMER_STATE_FAILED;

	check((rc == -1) == failed);
	check(failed == (amu_framer_get_error(f) != AMU_FRAMER_ERROR_NONE));
	check(!was_failed || failed);
	if (failed)
		check(amu_framer_next_timeout(f) == UINT64_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Fuzz fuzz = { 0 };
	AmuFramer *f;
	uint64_t now = 1000;
	size_t pos = 1;

	if (size < 1)
		return 0;
	f = amu_framer_new((data[0] & 1) ? AMU_FRAMER_ROLE_PERIPHERAL : AMU_FRAMER_ROLE_CENTRAL,
			   mtus[(data[0] >> 1) & 3],
			   (uint8_t)(((data[0] >> 3) & 7) + 1));
	check(f != NULL);
	fuzz.framer = f;
	fuzz.echo = (data[0] & 0x40) != 0;
	amu_framer_set_tx_func(f, fuzz_tx, &fuzz, NULL);
	amu_framer_set_message_func(f, fuzz_message, &fuzz, NULL);
	check(amu_framer_start(f, now) == 0);

	while (pos < size) {
		uint8_t op = data[pos++];
		gboolean was_failed = amu_framer_get_state(f) == AMU_FRAMER_STATE_FAILED;
		size_t len;
		int rc;

		if (op == 0xfe || op == 0xff) {
			now += op == 0xfe ? 1000 : 10000;
			check_result(f, amu_framer_tick(f, now), was_failed);
			continue;
		}
		if (op == 0xfd) {
			len = pos < size ? data[pos++] * 257u : 0;
			rc = amu_framer_send(f, message_buf, len, now);
			check_result(f, rc, was_failed);
			continue;
		}
		if (op == 0xfc) {
			len = 0;
			for (int i = 0; i < 2 && pos < size; i++)
				len = (len << 8) | data[pos++];
		} else {
			len = op;
		}
		len = MIN(len, size - pos);
		rc = amu_framer_rx(f, data + pos, len, now);
		check_result(f, rc, was_failed);
		check(amu_framer_get_att_mtu(f) >= AMU_FRAMER_MTU_MIN &&
		      amu_framer_get_att_mtu(f) <= AMU_FRAMER_MTU_MAX);
		check(amu_framer_get_window(f) >= 1 &&
		      amu_framer_get_window(f) <= AMU_FRAMER_WINDOW_MAX);
		pos += len;
	}
	amu_framer_unref(f);
	return 0;
}
