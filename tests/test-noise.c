/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-cipher.h"
#include "amu-noise.h"
#include "amu-test.h"
#include "noise-vectors.h"

/* Compares byte strings and prints both in hex when they differ. */
#define ASSERT_BYTES(got, got_len, want, want_len)                                                 \
	do {                                                                                       \
		gboolean same_ = (size_t)(got_len) == (size_t)(want_len) &&                        \
				 ((want_len) == 0 || memcmp((got), (want), (want_len)) == 0);      \
		if (!same_)                                                                        \
			print_mismatch((got), (got_len), (want), (want_len));                      \
		CU_ASSERT_TRUE(same_);                                                             \
	} while (0)

/* Asserts a read/write failed and left the handshake FAILED with @code. */
#define ASSERT_FAILED_WITH(hs, rc, code)                                                           \
	do {                                                                                       \
		CU_ASSERT_EQUAL((rc), -1);                                                         \
		CU_ASSERT_EQUAL(amu_noise_handshake_get_action(hs), AMU_NOISE_ACTION_FAILED);      \
		if (amu_noise_handshake_get_error(hs) != (code))                                   \
			g_printerr("  expected %s, got %s\n",                                      \
				   amu_noise_error_to_str(code),                                   \
				   amu_noise_error_to_str(amu_noise_handshake_get_error(hs)));     \
		CU_ASSERT_EQUAL(amu_noise_handshake_get_error(hs), (code));                        \
	} while (0)

static void
print_mismatch(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	g_autofree char *got_hex = g_malloc(got_len * 2 + 1);
	g_autofree char *want_hex = g_malloc(want_len * 2 + 1);

	sodium_bin2hex(got_hex, got_len * 2 + 1, got, got_len);
	sodium_bin2hex(want_hex, want_len * 2 + 1, want, want_len);
	g_printerr("\n  got  %s\n  want %s\n", got_hex, want_hex);
}

/* write/read with buffers of AMU_NOISE_MAX_MESSAGE bytes */
static int
hs_write(AmuNoiseHandshake *hs,
	 uint8_t *msg,
	 size_t *len,
	 const uint8_t *payload,
	 size_t payload_len)
{
	return amu_noise_handshake_write_message(
	  hs, msg, AMU_NOISE_MAX_MESSAGE, len, payload, payload_len);
}

static int
hs_read(AmuNoiseHandshake *hs, uint8_t *payload, size_t *len, const uint8_t *msg, size_t msg_len)
{
	return amu_noise_handshake_read_message(
	  hs, payload, AMU_NOISE_MAX_MESSAGE, len, msg, msg_len);
}

static const AmuNoiseVector *
find_vector(const char *pattern)
{
	for (size_t i = 0; i < AMU_NOISE_N_VECTORS; i++) {
		if (g_strcmp0(amu_noise_vectors[i].pattern, pattern) == 0)
			return &amu_noise_vectors[i];
	}
	CU_FAIL_FATAL("vector missing");
	return NULL;
}

static AmuNoisePattern
vector_pattern(const AmuNoiseVector *v)
{
	if (g_strcmp0(v->pattern, "KK") == 0)
		return AMU_NOISE_PATTERN_KK;
	if (g_strcmp0(v->pattern, "IK") == 0)
		return AMU_NOISE_PATTERN_IK;
	return AMU_NOISE_PATTERN_XX;
}

/* Number of handshake messages; the rest of v->messages are transport. */
static size_t
vector_handshake_length(const AmuNoiseVector *v)
{
	return vector_pattern(v) == AMU_NOISE_PATTERN_XX ? 3 : 2;
}

/* Configured but not started: callers may still copy it and add keys. */
static AmuNoiseHandshake *
vector_handshake_new(const AmuNoiseVector *v, AmuNoiseRole role)
{
	gboolean initiator = role == AMU_NOISE_ROLE_INITIATOR;
	AmuNoiseHandshake *hs = amu_noise_handshake_new(vector_pattern(v), role, NULL, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(hs);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_action(hs), AMU_NOISE_ACTION_NONE);
	CU_ASSERT_EQUAL(
	  amu_noise_handshake_set_prologue(hs,
					   initiator ? v->init_prologue : v->resp_prologue,
					   initiator ? v->init_prologue_len : v->resp_prologue_len),
	  0);
	CU_ASSERT_EQUAL(
	  amu_noise_handshake_set_local_static(hs, initiator ? v->init_static : v->resp_static), 0);
	CU_ASSERT_EQUAL(amu_noise_handshake_set_fixed_ephemeral(
			  hs, initiator ? v->init_ephemeral : v->resp_ephemeral),
			0);
	return hs;
}

static AmuNoiseHandshake *
vector_handshake_start(const AmuNoiseVector *v, AmuNoiseRole role)
{
	AmuNoiseHandshake *hs = vector_handshake_new(v, role);
	const uint8_t *remote =
	  role == AMU_NOISE_ROLE_INITIATOR ? v->init_remote_static : v->resp_remote_static;

	if (remote != NULL)
		CU_ASSERT_EQUAL(amu_noise_handshake_set_remote_static(hs, remote), 0);
	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(hs), 0);
	return hs;
}

/* Called before the receiver reads handshake message @index: @sender has
 * just written @msg, @receiver has not read it. Checks work on copies. */
typedef void (*MessageCheck)(const AmuNoiseVector *v,
			     size_t index,
			     AmuNoiseHandshake *sender,
			     AmuNoiseHandshake *receiver,
			     const uint8_t *msg,
			     size_t msg_len);

/* Plays vector @v: handshake messages byte for byte, then the transport
 * messages. Cacophony alternates senders over the whole list, initiator
 * first, so message i is the initiator's when i is even. */
static void
play_vector(const AmuNoiseVector *v, MessageCheck check)
{
	g_autoptr(AmuNoiseHandshake) init = vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
	g_autoptr(AmuNoiseHandshake) resp = vector_handshake_start(v, AMU_NOISE_ROLE_RESPONDER);
	g_autoptr(AmuCipherState) init_send = NULL, init_recv = NULL;
	g_autoptr(AmuCipherState) resp_send = NULL, resp_recv = NULL;
	size_t n_handshake = vector_handshake_length(v);
	uint8_t msg[AMU_NOISE_MAX_MESSAGE], payload[AMU_NOISE_MAX_MESSAGE];
	uint8_t hash[AMU_NOISE_HASHBYTES], key[AMU_NOISE_KEYBYTES],
	  expected_key[AMU_NOISE_KEYBYTES];

	CU_ASSERT_FATAL(v->n_messages > n_handshake);
	for (size_t i = 0; i < v->n_messages; i++) {
		const AmuNoiseVectorMessage *m = &v->messages[i];
		gboolean from_init = i % 2 == 0;
		AmuNoiseHandshake *sender = from_init ? init : resp;
		AmuNoiseHandshake *receiver = from_init ? resp : init;
		size_t msg_len = 0, payload_len = 0;

		if (i < n_handshake) {
			CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_get_action(sender),
					      AMU_NOISE_ACTION_WRITE_MESSAGE);
			CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_get_action(receiver),
					      AMU_NOISE_ACTION_READ_MESSAGE);
			CU_ASSERT_EQUAL_FATAL(
			  hs_write(sender, msg, &msg_len, m->payload, m->payload_len), 0);
			ASSERT_BYTES(msg, msg_len, m->ciphertext, m->ciphertext_len);
			if (check != NULL)
				check(v, i, sender, receiver, m->ciphertext, m->ciphertext_len);
			CU_ASSERT_EQUAL_FATAL(
			  hs_read(
			    receiver, payload, &payload_len, m->ciphertext, m->ciphertext_len),
			  0);
			ASSERT_BYTES(payload, payload_len, m->payload, m->payload_len);
			continue;
		}
		if (i == n_handshake) {
			/* the handshake is over exactly here, not before */
			CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_get_action(init),
					      AMU_NOISE_ACTION_SPLIT);
			CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_get_action(resp),
					      AMU_NOISE_ACTION_SPLIT);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(init, hash), 0);
			ASSERT_BYTES(hash, sizeof hash, v->handshake_hash, AMU_NOISE_HASHBYTES);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(resp, hash), 0);
			ASSERT_BYTES(hash, sizeof hash, v->handshake_hash, AMU_NOISE_HASHBYTES);

			/* each side learnt (or was given) the other's static */
			CU_ASSERT_EQUAL(amu_noise_handshake_get_remote_static(init, key), 0);
			CU_ASSERT_EQUAL(crypto_scalarmult_base(expected_key, v->resp_static), 0);
			ASSERT_BYTES(key, sizeof key, expected_key, sizeof expected_key);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_remote_static(resp, key), 0);
			CU_ASSERT_EQUAL(crypto_scalarmult_base(expected_key, v->init_static), 0);
			ASSERT_BYTES(key, sizeof key, expected_key, sizeof expected_key);

			CU_ASSERT_EQUAL_FATAL(
			  amu_noise_handshake_split(init, &init_send, &init_recv), 0);
			CU_ASSERT_EQUAL_FATAL(
			  amu_noise_handshake_split(resp, &resp_send, &resp_recv), 0);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_action(init),
					AMU_NOISE_ACTION_NONE);
			/* h stays readable after the split, for channel binding */
			CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(resp, hash), 0);
			ASSERT_BYTES(hash, sizeof hash, v->handshake_hash, AMU_NOISE_HASHBYTES);
		}
		CU_ASSERT_EQUAL(amu_cipher_state_encrypt(from_init ? init_send : resp_send,
							 msg,
							 sizeof msg,
							 &msg_len,
							 NULL,
							 0,
							 m->payload,
							 m->payload_len),
				0);
		ASSERT_BYTES(msg, msg_len, m->ciphertext, m->ciphertext_len);
		CU_ASSERT_EQUAL(amu_cipher_state_decrypt(from_init ? resp_recv : init_recv,
							 payload,
							 sizeof payload,
							 &payload_len,
							 NULL,
							 0,
							 m->ciphertext,
							 m->ciphertext_len),
				0);
		ASSERT_BYTES(payload, payload_len, m->payload, m->payload_len);
	}
	/* three transport messages in the vectors: 2 one way, 1 the other (or 1 and 2) */
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(init_send) +
			  amu_cipher_state_get_nonce(resp_send),
			v->n_messages - n_handshake);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(init_send),
			amu_cipher_state_get_nonce(resp_recv));
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(resp_send),
			amu_cipher_state_get_nonce(init_recv));
}

static void
test_vector_xx(void)
{
	play_vector(find_vector("XX"), NULL);
}

static void
test_vector_kk(void)
{
	play_vector(find_vector("KK"), NULL);
}

static void
test_vector_ik(void)
{
	play_vector(find_vector("IK"), NULL);
}

/* Reads @msg into a copy of @receiver and expects failure with @code; a
 * second read of the genuine message must also fail with the same code. */
static void
expect_read_fails(AmuNoiseHandshake *receiver,
		  const uint8_t *msg,
		  size_t msg_len,
		  const uint8_t *genuine,
		  size_t genuine_len,
		  AmuNoiseError code)
{
	g_autoptr(AmuNoiseHandshake) copy = amu_noise_handshake_copy(receiver);
	uint8_t payload[AMU_NOISE_MAX_MESSAGE];
	size_t payload_len = 99;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	rc = hs_read(copy, payload, &payload_len, msg, msg_len);
	ASSERT_FAILED_WITH(copy, rc, code);
	CU_ASSERT_EQUAL(payload_len, 0);
	/* sticky: the genuine message is refused too, and the first cause kept */
	rc = hs_read(copy, payload, &payload_len, genuine, genuine_len);
	ASSERT_FAILED_WITH(copy, rc, code);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(copy, payload), -1);
}

/* XX's first message carries no key yet: the responder cannot detect the
 * change; the initiator must refuse the responder's answer. */
static void
expect_xx_first_message_detected_late(AmuNoiseHandshake *init,
				      AmuNoiseHandshake *resp,
				      const uint8_t *msg,
				      size_t msg_len)
{
	g_autoptr(AmuNoiseHandshake) init_copy = amu_noise_handshake_copy(init);
	g_autoptr(AmuNoiseHandshake) resp_copy = amu_noise_handshake_copy(resp);
	uint8_t payload[AMU_NOISE_MAX_MESSAGE], answer[AMU_NOISE_MAX_MESSAGE];
	size_t payload_len = 0, answer_len = 0;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(init_copy);
	CU_ASSERT_PTR_NOT_NULL_FATAL(resp_copy);
	CU_ASSERT_EQUAL(hs_read(resp_copy, payload, &payload_len, msg, msg_len), 0);
	CU_ASSERT_EQUAL(payload_len, msg_len - AMU_NOISE_KEYBYTES);
	CU_ASSERT_EQUAL_FATAL(hs_write(resp_copy, answer, &answer_len, NULL, 0), 0);
	rc = hs_read(init_copy, payload, &payload_len, answer, answer_len);
	ASSERT_FAILED_WITH(init_copy, rc, AMU_NOISE_ERROR_DECRYPT);
}

/* Flips one bit in every byte (bit i % 8 of byte i): e, s and payload alike. */
static void
check_bit_flips(const AmuNoiseVector *v,
		size_t index,
		AmuNoiseHandshake *sender,
		AmuNoiseHandshake *receiver,
		const uint8_t *msg,
		size_t msg_len)
{
	g_autofree uint8_t *bad = g_memdup2(msg, msg_len);

	for (size_t i = 0; i < msg_len; i++) {
		bad[i] ^= (uint8_t)(1u << (i % 8));
		if (vector_pattern(v) == AMU_NOISE_PATTERN_XX && index == 0)
			expect_xx_first_message_detected_late(sender, receiver, bad, msg_len);
		else
			expect_read_fails(
			  receiver, bad, msg_len, msg, msg_len, AMU_NOISE_ERROR_DECRYPT);
		bad[i] = msg[i];
	}
}

static void
test_tampered_handshake_messages(void)
{
	play_vector(find_vector("XX"), check_bit_flips);
	play_vector(find_vector("KK"), check_bit_flips);
	play_vector(find_vector("IK"), check_bit_flips);
}

/* Bytes before the payload plus the payload tag, per pattern and message:
 * e is 32, s is 32 + 16 once keyed; XX's first payload has no tag. */
static size_t
minimum_length(const AmuNoiseVector *v, size_t index)
{
	static const size_t xx[] = { 32, 32 + 48 + 16, 48 + 16 };
	static const size_t kk[] = { 32 + 16, 32 + 16 };
	static const size_t ik[] = { 32 + 48 + 16, 32 + 16 };
	AmuNoisePattern pattern = vector_pattern(v);

	return pattern == AMU_NOISE_PATTERN_XX	 ? xx[index]
	       : pattern == AMU_NOISE_PATTERN_KK ? kk[index]
						 : ik[index];
}

/* Shorter than e, s and the tag: MALFORMED. Long enough but cut: the tag
 * cannot verify, DECRYPT (except XX's unkeyed first message). Longer than
 * the Noise maximum: MALFORMED. */
static void
check_truncations(const AmuNoiseVector *v,
		  size_t index,
		  AmuNoiseHandshake *sender,
		  AmuNoiseHandshake *receiver,
		  const uint8_t *msg,
		  size_t msg_len)
{
	size_t minimum = minimum_length(v, index);
	g_autofree uint8_t *huge = g_malloc0(AMU_NOISE_MAX_MESSAGE + 1);

	CU_ASSERT_EQUAL(msg_len, minimum + v->messages[index].payload_len);
	for (size_t len = 0; len < minimum; len++)
		expect_read_fails(receiver, msg, len, msg, msg_len, AMU_NOISE_ERROR_MALFORMED);
	for (size_t len = minimum; len < msg_len; len++) {
		if (vector_pattern(v) == AMU_NOISE_PATTERN_XX && index == 0)
			expect_xx_first_message_detected_late(sender, receiver, msg, len);
		else
			expect_read_fails(
			  receiver, msg, len, msg, msg_len, AMU_NOISE_ERROR_DECRYPT);
	}
	memcpy(huge, msg, msg_len);
	expect_read_fails(
	  receiver, huge, AMU_NOISE_MAX_MESSAGE + 1, msg, msg_len, AMU_NOISE_ERROR_MALFORMED);
}

static void
test_truncated_handshake_messages(void)
{
	play_vector(find_vector("XX"), check_truncations);
	play_vector(find_vector("KK"), check_truncations);
	play_vector(find_vector("IK"), check_truncations);
}

/* Reconnect with a key that is not the bonded one fails closed on the first
 * message, whichever side holds the wrong key. */
static void
test_kk_wrong_remote_static(void)
{
	const AmuNoiseVector *v = find_vector("KK");
	const AmuNoiseVectorMessage *m0 = &v->messages[0];
	uint8_t stranger[AMU_NOISE_KEYBYTES], msg[AMU_NOISE_MAX_MESSAGE],
	  payload[AMU_NOISE_MAX_MESSAGE];
	size_t msg_len = 0, payload_len = 0;
	int rc;

	randombytes_buf(stranger, sizeof stranger);
	CU_ASSERT_EQUAL(crypto_scalarmult_base(stranger, stranger), 0);

	/* the responder expects someone else */
	{
		g_autoptr(AmuNoiseHandshake) resp =
		  vector_handshake_new(v, AMU_NOISE_ROLE_RESPONDER);
		CU_ASSERT_EQUAL(amu_noise_handshake_set_remote_static(resp, stranger), 0);
		CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(resp), 0);
		rc = hs_read(resp, payload, &payload_len, m0->ciphertext, m0->ciphertext_len);
		ASSERT_FAILED_WITH(resp, rc, AMU_NOISE_ERROR_DECRYPT);
	}
	/* the initiator addresses someone else */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_new(v, AMU_NOISE_ROLE_INITIATOR);
		g_autoptr(AmuNoiseHandshake) resp =
		  vector_handshake_start(v, AMU_NOISE_ROLE_RESPONDER);
		CU_ASSERT_EQUAL(amu_noise_handshake_set_remote_static(init, stranger), 0);
		CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(init), 0);
		CU_ASSERT_EQUAL_FATAL(hs_write(init, msg, &msg_len, m0->payload, m0->payload_len),
				      0);
		/* same ephemeral, so the same first 32 bytes, but not the same message */
		CU_ASSERT_EQUAL(msg_len, m0->ciphertext_len);
		CU_ASSERT_EQUAL(memcmp(msg, m0->ciphertext, AMU_NOISE_KEYBYTES), 0);
		CU_ASSERT_NOT_EQUAL(memcmp(msg, m0->ciphertext, msg_len), 0);
		rc = hs_read(resp, payload, &payload_len, msg, msg_len);
		ASSERT_FAILED_WITH(resp, rc, AMU_NOISE_ERROR_DECRYPT);
	}
}

/* A responder with several bonded hosts copies its configured state and
 * tries each candidate static on the first KK message. */
static void
test_copy_trial_decryption(void)
{
	const AmuNoiseVector *v = find_vector("KK");
	g_autoptr(AmuNoiseHandshake) base = vector_handshake_new(v, AMU_NOISE_ROLE_RESPONDER);
	g_autoptr(AmuNoiseHandshake) init = vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
	uint8_t candidates[2][AMU_NOISE_KEYBYTES], payload[AMU_NOISE_MAX_MESSAGE],
	  msg[AMU_NOISE_MAX_MESSAGE];
	uint8_t hash[AMU_NOISE_HASHBYTES];
	size_t payload_len = 0, msg_len = 0;
	guint n_accepted = 0;

	randombytes_buf(candidates[0], AMU_NOISE_KEYBYTES);
	CU_ASSERT_EQUAL(crypto_scalarmult_base(candidates[0], candidates[0]), 0);
	memcpy(candidates[1], v->resp_remote_static, AMU_NOISE_KEYBYTES);

	CU_ASSERT_EQUAL_FATAL(
	  hs_write(init, msg, &msg_len, v->messages[0].payload, v->messages[0].payload_len), 0);
	for (size_t c = 0; c < G_N_ELEMENTS(candidates); c++) {
		g_autoptr(AmuNoiseHandshake) trial = amu_noise_handshake_copy(base);
		int rc;

		CU_ASSERT_PTR_NOT_NULL_FATAL(trial);
		CU_ASSERT_EQUAL(amu_noise_handshake_set_remote_static(trial, candidates[c]), 0);
		CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(trial), 0);
		rc = hs_read(trial, payload, &payload_len, msg, msg_len);
		if (c == 0) {
			ASSERT_FAILED_WITH(trial, rc, AMU_NOISE_ERROR_DECRYPT);
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		n_accepted++;
		ASSERT_BYTES(
		  payload, payload_len, v->messages[0].payload, v->messages[0].payload_len);
		/* the accepted copy finishes the handshake like the original would */
		CU_ASSERT_EQUAL_FATAL(
		  hs_write(
		    trial, msg, &msg_len, v->messages[1].payload, v->messages[1].payload_len),
		  0);
		ASSERT_BYTES(
		  msg, msg_len, v->messages[1].ciphertext, v->messages[1].ciphertext_len);
		CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(trial, hash), 0);
		ASSERT_BYTES(hash, sizeof hash, v->handshake_hash, AMU_NOISE_HASHBYTES);
	}
	CU_ASSERT_EQUAL(n_accepted, 1);
	/* the trials left the original untouched */
	CU_ASSERT_EQUAL(amu_noise_handshake_get_action(base), AMU_NOISE_ACTION_NONE);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_error(base), AMU_NOISE_ERROR_NONE);
}

/* An XX handshake with @secret as local static, not started. */
static AmuNoiseHandshake *
xx_new(AmuNoiseRole role, const uint8_t secret[AMU_NOISE_KEYBYTES])
{
	AmuNoiseHandshake *hs = amu_noise_handshake_new(AMU_NOISE_PATTERN_XX, role, NULL, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(hs);
	CU_ASSERT_EQUAL(amu_noise_handshake_set_local_static(hs, secret), 0);
	return hs;
}

/* Runs the three XX messages, each carrying @hello; -1 at the first failure. */
static int
run_xx(AmuNoiseHandshake *init, AmuNoiseHandshake *resp, const uint8_t *hello, size_t len)
{
	uint8_t msg[AMU_NOISE_MAX_MESSAGE], payload[AMU_NOISE_MAX_MESSAGE];
	size_t msg_len = 0, payload_len = 0;

	for (guint i = 0; i < 3; i++) {
		AmuNoiseHandshake *sender = i % 2 == 0 ? init : resp;
		AmuNoiseHandshake *receiver = i % 2 == 0 ? resp : init;

		if (hs_write(sender, msg, &msg_len, hello, len) != 0 ||
		    hs_read(receiver, payload, &payload_len, msg, msg_len) != 0)
			return -1;
		ASSERT_BYTES(payload, payload_len, hello, len);
	}
	return 0;
}

/* Random statics and ephemerals, as in a real first pairing. */
static void
test_xx_random_end_to_end(void)
{
	uint8_t init_secret[AMU_NOISE_KEYBYTES], resp_secret[AMU_NOISE_KEYBYTES];

	randombytes_buf(init_secret, sizeof init_secret);
	randombytes_buf(resp_secret, sizeof resp_secret);
	g_autoptr(AmuNoiseHandshake) init = xx_new(AMU_NOISE_ROLE_INITIATOR, init_secret);
	g_autoptr(AmuNoiseHandshake) resp = xx_new(AMU_NOISE_ROLE_RESPONDER, resp_secret);
	g_autoptr(AmuCipherState) init_send = NULL, init_recv = NULL;
	g_autoptr(AmuCipherState) resp_send = NULL, resp_recv = NULL;
	uint8_t init_public[AMU_NOISE_KEYBYTES], resp_public[AMU_NOISE_KEYBYTES];
	uint8_t key[AMU_NOISE_KEYBYTES], h1[AMU_NOISE_HASHBYTES], h2[AMU_NOISE_HASHBYTES];
	uint8_t msg[AMU_NOISE_MAX_MESSAGE], payload[AMU_NOISE_MAX_MESSAGE];
	const uint8_t hello[] = "pairing request";
	size_t msg_len = 0, payload_len = 0;

	CU_ASSERT_EQUAL(amu_noise_handshake_get_local_static_public(init, init_public), 0);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_local_static_public(resp, resp_public), 0);
	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(init), 0);
	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(resp), 0);
	/* nothing to bind to before the handshake completes */
	CU_ASSERT_EQUAL(amu_noise_handshake_get_remote_static(init, key), -1);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(init, h1), -1);

	CU_ASSERT_EQUAL_FATAL(run_xx(init, resp, hello, sizeof hello), 0);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(init, h1), 0);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(resp, h2), 0);
	ASSERT_BYTES(h1, sizeof h1, h2, sizeof h2);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_remote_static(init, key), 0);
	ASSERT_BYTES(key, sizeof key, resp_public, sizeof resp_public);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_remote_static(resp, key), 0);
	ASSERT_BYTES(key, sizeof key, init_public, sizeof init_public);

	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_split(init, &init_send, &init_recv), 0);
	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_split(resp, &resp_send, &resp_recv), 0);
	/* both directions carry a record */
	CU_ASSERT_EQUAL(amu_record_seal(init_send, msg, sizeof msg, &msg_len, hello, sizeof hello),
			0);
	CU_ASSERT_EQUAL(
	  amu_record_open(resp_recv, payload, sizeof payload, &payload_len, msg, msg_len),
	  AMU_RECORD_OK);
	ASSERT_BYTES(payload, payload_len, hello, sizeof hello);
	CU_ASSERT_EQUAL(amu_record_seal(resp_send, msg, sizeof msg, &msg_len, hello, sizeof hello),
			0);
	CU_ASSERT_EQUAL(
	  amu_record_open(init_recv, payload, sizeof payload, &payload_len, msg, msg_len),
	  AMU_RECORD_OK);
	/* after the split the handshake only answers accessors */
	ASSERT_FAILED_WITH(
	  init, hs_write(init, msg, &msg_len, NULL, 0), AMU_NOISE_ERROR_INVALID_STATE);
	CU_ASSERT_EQUAL(amu_noise_handshake_get_handshake_hash(init, h2), 0);
	ASSERT_BYTES(h1, sizeof h1, h2, sizeof h2);
	/* a record sealed for one direction does not open in the other */
	CU_ASSERT_EQUAL(amu_record_seal(init_send, msg, sizeof msg, &msg_len, hello, sizeof hello),
			0);
	CU_ASSERT_EQUAL(
	  amu_record_open(init_recv, payload, sizeof payload, &payload_len, msg, msg_len),
	  AMU_RECORD_TAMPERED);
}

/* An unset prologue is the empty prologue (the spec always mixes it), and
 * both sides must agree on it. */
static void
test_prologue(void)
{
	const uint8_t secret[AMU_NOISE_KEYBYTES] = { 1, 2, 3 };
	const uint8_t other[] = "Amulet v2";

	for (guint round = 0; round < 2; round++) {
		g_autoptr(AmuNoiseHandshake) init = xx_new(AMU_NOISE_ROLE_INITIATOR, secret);
		g_autoptr(AmuNoiseHandshake) resp = xx_new(AMU_NOISE_ROLE_RESPONDER, secret);

		/* round 0: empty against unset, which agree; round 1: a different one */
		CU_ASSERT_EQUAL(amu_noise_handshake_set_prologue(
				  resp, round == 0 ? NULL : other, round == 0 ? 0 : sizeof other),
				0);
		CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(init), 0);
		CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(resp), 0);
		if (round == 0) {
			CU_ASSERT_EQUAL(run_xx(init, resp, NULL, 0), 0);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_action(init),
					AMU_NOISE_ACTION_SPLIT);
		} else {
			/* caught by the initiator on message 2, the first keyed one */
			ASSERT_FAILED_WITH(
			  init, run_xx(init, resp, NULL, 0), AMU_NOISE_ERROR_DECRYPT);
			CU_ASSERT_EQUAL(amu_noise_handshake_get_action(resp),
					AMU_NOISE_ACTION_READ_MESSAGE);
		}
	}
}

typedef struct {
	const uint8_t *bytes;
	guint calls;
} FixedRandom;

static void
fixed_random(void *buf, size_t len, void *user_data)
{
	FixedRandom *fixed = user_data;

	CU_ASSERT_EQUAL(len, AMU_NOISE_KEYBYTES);
	memcpy(buf, fixed->bytes, len);
	fixed->calls++;
}

/* The random function supplies the ephemeral: with the vector's ephemeral it
 * must reproduce the vector's first message. */
static void
test_random_func_used(void)
{
	const AmuNoiseVector *v = find_vector("XX");
	FixedRandom fixed = { v->init_ephemeral, 0 };
	g_autoptr(AmuNoiseHandshake) init = amu_noise_handshake_new(
	  AMU_NOISE_PATTERN_XX, AMU_NOISE_ROLE_INITIATOR, fixed_random, &fixed);
	uint8_t msg[AMU_NOISE_MAX_MESSAGE];
	size_t msg_len = 0;

	CU_ASSERT_EQUAL(
	  amu_noise_handshake_set_prologue(init, v->init_prologue, v->init_prologue_len), 0);
	CU_ASSERT_EQUAL(amu_noise_handshake_set_local_static(init, v->init_static), 0);
	CU_ASSERT_EQUAL_FATAL(amu_noise_handshake_start(init), 0);
	CU_ASSERT_EQUAL_FATAL(
	  hs_write(init, msg, &msg_len, v->messages[0].payload, v->messages[0].payload_len), 0);
	CU_ASSERT_EQUAL(fixed.calls, 1);
	ASSERT_BYTES(msg, msg_len, v->messages[0].ciphertext, v->messages[0].ciphertext_len);
}

/* A peer's ephemeral that is a low-order point makes a public "secret". */
static void
test_low_order_ephemeral(void)
{
	const AmuNoiseVector *v = find_vector("KK");
	uint8_t msg[64] = { 0 }, payload[AMU_NOISE_MAX_MESSAGE];
	size_t payload_len = 0;

	for (guint u = 0; u <= 1; u++) {
		g_autoptr(AmuNoiseHandshake) resp =
		  vector_handshake_start(v, AMU_NOISE_ROLE_RESPONDER);
		int rc;

		msg[0] = (uint8_t)u; /* u = 0 and u = 1, little-endian */
		rc = hs_read(resp, payload, &payload_len, msg, sizeof msg);
		ASSERT_FAILED_WITH(resp, rc, AMU_NOISE_ERROR_BAD_DH);
	}
}

static void
test_wrong_call_order(void)
{
	const AmuNoiseVector *v = find_vector("KK");
	uint8_t msg[AMU_NOISE_MAX_MESSAGE], key[AMU_NOISE_KEYBYTES];
	g_autoptr(AmuCipherState) send = NULL, recv = NULL;
	size_t len = 0;
	int rc;

	/* the initiator must write first; the failure is sticky */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		rc = hs_read(
		  init, msg, &len, v->messages[1].ciphertext, v->messages[1].ciphertext_len);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
		rc = hs_write(init, msg, &len, NULL, 0);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
		CU_ASSERT_EQUAL(len, 0);
	}
	/* the responder must read first */
	{
		g_autoptr(AmuNoiseHandshake) resp =
		  vector_handshake_start(v, AMU_NOISE_ROLE_RESPONDER);
		rc = hs_write(resp, msg, &len, NULL, 0);
		ASSERT_FAILED_WITH(resp, rc, AMU_NOISE_ERROR_INVALID_STATE);
	}
	/* nothing before start() */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_new(v, AMU_NOISE_ROLE_INITIATOR);
		rc = hs_write(init, msg, &len, NULL, 0);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
	}
	/* no split mid-handshake, no configuration after start() */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_split(init, &send, &recv);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
		CU_ASSERT_PTR_NULL(send);
		CU_ASSERT_PTR_NULL(recv);
	}
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_set_remote_static(init, v->init_remote_static);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
		rc = amu_noise_handshake_start(init);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_INVALID_STATE);
	}
	/* XX pre-shares no static: a key given anyway would be silently unused */
	{
		g_autoptr(AmuNoiseHandshake) hs = amu_noise_handshake_new(
		  AMU_NOISE_PATTERN_XX, AMU_NOISE_ROLE_INITIATOR, NULL, NULL);
		rc = amu_noise_handshake_set_remote_static(hs, v->init_remote_static);
		ASSERT_FAILED_WITH(hs, rc, AMU_NOISE_ERROR_INVALID_STATE);
	}
	/* a second prologue would not mean prologue1 || prologue2 */
	{
		g_autoptr(AmuNoiseHandshake) hs = vector_handshake_new(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_set_prologue(hs, (const uint8_t *)"x", 1);
		ASSERT_FAILED_WITH(hs, rc, AMU_NOISE_ERROR_INVALID_STATE);
	}
	/* missing keys are caught by start() */
	{
		g_autoptr(AmuNoiseHandshake) hs = vector_handshake_new(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_start(hs); /* KK without the responder's static */
		ASSERT_FAILED_WITH(hs, rc, AMU_NOISE_ERROR_MISSING_KEY);
	}
	{
		g_autoptr(AmuNoiseHandshake) hs = amu_noise_handshake_new(
		  AMU_NOISE_PATTERN_IK, AMU_NOISE_ROLE_RESPONDER, NULL, NULL);
		CU_ASSERT_EQUAL(amu_noise_handshake_get_local_static_public(hs, key), -1);
		rc = amu_noise_handshake_start(hs); /* no local static */
		ASSERT_FAILED_WITH(hs, rc, AMU_NOISE_ERROR_MISSING_KEY);
	}
}

static void
test_sizes(void)
{
	const AmuNoiseVector *v = find_vector("KK");
	const AmuNoiseVectorMessage *m0 = &v->messages[0];
	g_autofree uint8_t *big = g_malloc0(AMU_NOISE_MAX_MESSAGE + 1);
	uint8_t msg[AMU_NOISE_MAX_MESSAGE] = { 0 }, small[15];
	size_t len = 0;
	int rc;

	/* KK message 1 with a payload that fills 65535 exactly, then one more */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		CU_ASSERT_EQUAL(
		  amu_noise_handshake_write_message(
		    init, big, AMU_NOISE_MAX_MESSAGE + 1, &len, msg, AMU_NOISE_MAX_MESSAGE - 48),
		  0);
		CU_ASSERT_EQUAL(len, AMU_NOISE_MAX_MESSAGE);
	}
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_write_message(
		  init, big, AMU_NOISE_MAX_MESSAGE + 1, &len, msg, AMU_NOISE_MAX_MESSAGE - 47);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_MALFORMED);
	}
	/* the output buffer is one byte short */
	{
		g_autoptr(AmuNoiseHandshake) init =
		  vector_handshake_start(v, AMU_NOISE_ROLE_INITIATOR);
		rc = amu_noise_handshake_write_message(
		  init, msg, m0->ciphertext_len - 1, &len, m0->payload, m0->payload_len);
		ASSERT_FAILED_WITH(init, rc, AMU_NOISE_ERROR_BUFFER_TOO_SMALL);
	}
	/* the payload buffer is one byte short (the payload is 16 bytes) */
	{
		g_autoptr(AmuNoiseHandshake) resp =
		  vector_handshake_start(v, AMU_NOISE_ROLE_RESPONDER);
		CU_ASSERT_EQUAL(m0->payload_len, sizeof small + 1);
		rc = amu_noise_handshake_read_message(
		  resp, small, sizeof small, &len, m0->ciphertext, m0->ciphertext_len);
		ASSERT_FAILED_WITH(resp, rc, AMU_NOISE_ERROR_BUFFER_TOO_SMALL);
	}
}

static void
test_names(void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int e = AMU_NOISE_ERROR_NONE; e <= AMU_NOISE_ERROR_BUFFER_TOO_SMALL; e++)
		g_hash_table_add(seen, (gpointer)amu_noise_error_to_str((AmuNoiseError)e));
	CU_ASSERT_EQUAL(g_hash_table_size(seen), 7);
	CU_ASSERT_STRING_EQUAL(amu_noise_error_to_str(AMU_NOISE_ERROR_DECRYPT), "decrypt");
	g_hash_table_remove_all(seen);
	for (int a = AMU_NOISE_ACTION_NONE; a <= AMU_NOISE_ACTION_FAILED; a++)
		g_hash_table_add(seen, (gpointer)amu_noise_action_to_str((AmuNoiseAction)a));
	CU_ASSERT_EQUAL(g_hash_table_size(seen), 5);
	CU_ASSERT_STRING_EQUAL(amu_noise_action_to_str(AMU_NOISE_ACTION_SPLIT), "split");
	CU_ASSERT_STRING_EQUAL(amu_noise_pattern_to_str(AMU_NOISE_PATTERN_KK),
			       "Noise_KK_25519_ChaChaPoly_BLAKE2b");
}

AMU_TEST_MAIN("noise",
	      { "vector XX", test_vector_xx },
	      { "vector KK", test_vector_kk },
	      { "vector IK", test_vector_ik },
	      { "tampered handshake messages", test_tampered_handshake_messages },
	      { "truncated handshake messages", test_truncated_handshake_messages },
	      { "KK wrong remote static", test_kk_wrong_remote_static },
	      { "copy for trial decryption", test_copy_trial_decryption },
	      { "XX random end to end", test_xx_random_end_to_end },
	      { "prologue", test_prologue },
	      { "random function used", test_random_func_used },
	      { "low-order ephemeral", test_low_order_ephemeral },
	      { "wrong call order", test_wrong_call_order },
	      { "sizes", test_sizes },
	      { "names", test_names })
