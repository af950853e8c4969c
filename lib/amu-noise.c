/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-noise.h"

/* Noise_*_25519_ChaChaPoly_BLAKE2b, following the Noise specification
 * (revision 34) sections 5 and 7 directly; names mirror the spec's. */

typedef enum {
	AMU_NOISE_TOKEN_END,
	AMU_NOISE_TOKEN_E,
	AMU_NOISE_TOKEN_S,
	AMU_NOISE_TOKEN_EE,
	AMU_NOISE_TOKEN_ES,
	AMU_NOISE_TOKEN_SE,
	AMU_NOISE_TOKEN_SS,
} AmuNoiseToken;

#define AMU_NOISE_MAX_MESSAGES 3
#define AMU_NOISE_MAX_TOKENS 5 /* four tokens and END */

typedef struct {
	const char *protocol_name;
	gboolean initiator_static_known; /* "-> s" pre-message */
	gboolean responder_static_known; /* "<- s" pre-message */
	guint n_messages;		 /* message i is the initiator's when i is even */
	AmuNoiseToken messages[AMU_NOISE_MAX_MESSAGES][AMU_NOISE_MAX_TOKENS];
} AmuNoisePatternInfo;

#define T(x) AMU_NOISE_TOKEN_##x
static const AmuNoisePatternInfo amu_noise_pattern_xx = {
	"Noise_XX_25519_ChaChaPoly_BLAKE2b",
	FALSE,
	FALSE,
	3,
	{ { T(E), T(END) }, { T(E), T(EE), T(S), T(ES), T(END) }, { T(S), T(SE), T(END) } },
};
static const AmuNoisePatternInfo amu_noise_pattern_kk = {
	"Noise_KK_25519_ChaChaPoly_BLAKE2b",
	TRUE,
	TRUE,
	2,
	{ { T(E), T(ES), T(SS), T(END) }, { T(E), T(EE), T(SE), T(END) } },
};
static const AmuNoisePatternInfo amu_noise_pattern_ik = {
	"Noise_IK_25519_ChaChaPoly_BLAKE2b",
	FALSE,
	TRUE,
	2,
	{ { T(E), T(ES), T(S), T(SS), T(END) }, { T(E), T(EE), T(SE), T(END) } },
};
#undef T

struct AmuNoiseHandshake {
	AmuNoiseRole role;
	const AmuNoisePatternInfo *info; /* the pattern */
	AmuRandomFunc random_func;
	void *random_data;
	AmuNoiseAction action;
	AmuNoiseError error;
	gboolean started;
	gboolean prologue_set;
	gboolean split_done;
	guint message_index;

	/* SymmetricState; the CipherState k is @cipher, empty until has_k.
	 * @spare becomes the second transport key: both are allocated up front
	 * so that _split() cannot fail. */
	uint8_t ck[AMU_NOISE_HASHBYTES];
	uint8_t h[AMU_NOISE_HASHBYTES];
	AmuCipherState *cipher;
	AmuCipherState *spare;
	gboolean has_k;

	uint8_t s_secret[AMU_NOISE_KEYBYTES];
	uint8_t s_public[AMU_NOISE_KEYBYTES];
	uint8_t e_secret[AMU_NOISE_KEYBYTES];
	uint8_t e_public[AMU_NOISE_KEYBYTES];
	uint8_t fixed_e_secret[AMU_NOISE_KEYBYTES];
	uint8_t rs[AMU_NOISE_KEYBYTES];
	uint8_t re[AMU_NOISE_KEYBYTES];
	gboolean has_s;
	gboolean has_e;
	gboolean has_fixed_e;
	gboolean has_rs;
	gboolean has_re;
};

const char *
amu_noise_error_to_str(AmuNoiseError error)
{
	switch (error) {
	case AMU_NOISE_ERROR_NONE:
		return "none";
	case AMU_NOISE_ERROR_INVALID_STATE:
		return "invalid-state";
	case AMU_NOISE_ERROR_MISSING_KEY:
		return "missing-key";
	case AMU_NOISE_ERROR_MALFORMED:
		return "malformed";
	case AMU_NOISE_ERROR_DECRYPT:
		return "decrypt";
	case AMU_NOISE_ERROR_BAD_DH:
		return "bad-dh";
	case AMU_NOISE_ERROR_BUFFER_TOO_SMALL:
		return "buffer-too-small";
	}
	return "unknown";
}

const char *
amu_noise_action_to_str(AmuNoiseAction action)
{
	switch (action) {
	case AMU_NOISE_ACTION_NONE:
		return "none";
	case AMU_NOISE_ACTION_WRITE_MESSAGE:
		return "write-message";
	case AMU_NOISE_ACTION_READ_MESSAGE:
		return "read-message";
	case AMU_NOISE_ACTION_SPLIT:
		return "split";
	case AMU_NOISE_ACTION_FAILED:
		return "failed";
	}
	return "unknown";
}

static const AmuNoisePatternInfo *
amu_noise_pattern_info(AmuNoisePattern pattern)
{
	switch (pattern) {
	case AMU_NOISE_PATTERN_XX:
		return &amu_noise_pattern_xx;
	case AMU_NOISE_PATTERN_KK:
		return &amu_noise_pattern_kk;
	case AMU_NOISE_PATTERN_IK:
		return &amu_noise_pattern_ik;
	}
	return NULL;
}

const char *
amu_noise_pattern_to_str(AmuNoisePattern pattern)
{
	const AmuNoisePatternInfo *info = amu_noise_pattern_info(pattern);
	return info != NULL ? info->protocol_name : "unknown";
}

/* Makes the handshake FAILED for good and wipes what could still derive keys. */
static int
amu_noise_fail(AmuNoiseHandshake *hs, AmuNoiseError error)
{
	static const uint8_t zero_key[AMU_NOISE_KEYBYTES] = { 0 };

	/* keep the first cause: a call on a FAILED handshake changes nothing */
	if (hs->action != AMU_NOISE_ACTION_FAILED) {
		hs->action = AMU_NOISE_ACTION_FAILED;
		hs->error = error;
	}
	sodium_memzero(hs->ck, sizeof hs->ck);
	sodium_memzero(hs->e_secret, sizeof hs->e_secret);
	sodium_memzero(hs->fixed_e_secret, sizeof hs->fixed_e_secret);
	if (hs->cipher != NULL)
		amu_cipher_state_set_key(hs->cipher, zero_key);
	hs->has_k = FALSE;
	hs->has_e = FALSE;
	hs->has_fixed_e = FALSE;
	return -1;
}

static void
amu_noise_mix_hash(AmuNoiseHandshake *hs, const uint8_t *data, size_t len)
{
	amu_crypto_hash(hs->h, hs->h, sizeof hs->h, data, len);
}

static void
amu_noise_mix_key(AmuNoiseHandshake *hs, const uint8_t ikm[AMU_NOISE_KEYBYTES])
{
	uint8_t temp_k[AMU_NOISE_HASHBYTES];

	amu_crypto_hkdf(hs->ck, temp_k, NULL, hs->ck, ikm, AMU_NOISE_KEYBYTES);
	/* HASHLEN 64 > 32: the cipher key is the first 32 bytes */
	amu_cipher_state_set_key(hs->cipher, temp_k);
	hs->has_k = TRUE;
	sodium_memzero(temp_k, sizeof temp_k);
}

/* EncryptAndHash; @out has room for @len (+ tag once keyed), checked by the caller */
static int
amu_noise_encrypt_and_hash(AmuNoiseHandshake *hs,
			   uint8_t *out,
			   size_t *out_len,
			   const uint8_t *plaintext,
			   size_t len)
{
	if (hs->has_k) {
		if (amu_cipher_state_encrypt(hs->cipher,
					     out,
					     len + AMU_CIPHER_TAGBYTES,
					     out_len,
					     hs->h,
					     sizeof hs->h,
					     plaintext,
					     len) != 0)
			return -1;
	} else {
		if (len > 0)
			memcpy(out, plaintext, len);
		*out_len = len;
	}
	amu_noise_mix_hash(hs, out, *out_len);
	return 0;
}

/* DecryptAndHash; @len covers the tag once keyed, checked by the caller */
static int
amu_noise_decrypt_and_hash(AmuNoiseHandshake *hs,
			   uint8_t *out,
			   const uint8_t *ciphertext,
			   size_t len)
{
	uint8_t next_h[AMU_NOISE_HASHBYTES];
	size_t out_len = 0;

	/* h || ciphertext is hashed before @out is written */
	amu_crypto_hash(next_h, hs->h, sizeof hs->h, ciphertext, len);
	if (hs->has_k) {
		if (amu_cipher_state_decrypt(hs->cipher,
					     out,
					     len - AMU_CIPHER_TAGBYTES,
					     &out_len,
					     hs->h,
					     sizeof hs->h,
					     ciphertext,
					     len) != 0)
			return -1;
	} else if (len > 0) {
		memcpy(out, ciphertext, len);
	}
	memcpy(hs->h, next_h, sizeof hs->h);
	return 0;
}

/* ee, es, se, ss: which keys meet depends on the role (spec 7.3) */
static AmuNoiseError
amu_noise_mix_dh(AmuNoiseHandshake *hs, AmuNoiseToken token)
{
	gboolean initiator = hs->role == AMU_NOISE_ROLE_INITIATOR;
	gboolean local_is_e = FALSE, remote_is_e = FALSE;
	uint8_t shared[AMU_NOISE_KEYBYTES];

	switch (token) {
	case AMU_NOISE_TOKEN_EE:
		local_is_e = TRUE;
		remote_is_e = TRUE;
		break;
	case AMU_NOISE_TOKEN_ES:
		local_is_e = initiator;
		remote_is_e = !initiator;
		break;
	case AMU_NOISE_TOKEN_SE:
		local_is_e = !initiator;
		remote_is_e = initiator;
		break;
	case AMU_NOISE_TOKEN_SS:
		break;
	case AMU_NOISE_TOKEN_END:
	case AMU_NOISE_TOKEN_E:
	case AMU_NOISE_TOKEN_S:
		return AMU_NOISE_ERROR_INVALID_STATE;
	}
	if (!(local_is_e ? hs->has_e : hs->has_s) || !(remote_is_e ? hs->has_re : hs->has_rs))
		return AMU_NOISE_ERROR_MISSING_KEY;
	if (amu_crypto_x25519_dh(
	      shared, local_is_e ? hs->e_secret : hs->s_secret, remote_is_e ? hs->re : hs->rs) != 0)
		return AMU_NOISE_ERROR_BAD_DH;
	amu_noise_mix_key(hs, shared);
	sodium_memzero(shared, sizeof shared);
	return AMU_NOISE_ERROR_NONE;
}

AmuNoiseHandshake *
amu_noise_handshake_new(AmuNoisePattern pattern,
			AmuNoiseRole role,
			AmuRandomFunc random_func,
			void *random_data)
{
	const AmuNoisePatternInfo *info = amu_noise_pattern_info(pattern);
	static const uint8_t zero_key[AMU_NOISE_KEYBYTES] = { 0 };
	AmuNoiseHandshake *hs;
	size_t name_len;

	g_return_val_if_fail(info != NULL, NULL);
	g_return_val_if_fail(role == AMU_NOISE_ROLE_INITIATOR || role == AMU_NOISE_ROLE_RESPONDER,
			     NULL);

	if (amu_crypto_init() != 0)
		return NULL;
	/* not sodium_malloc: it costs several syscalls; short-lived state is wiped on free */
	hs = g_new0(AmuNoiseHandshake, 1);
	hs->role = role;
	hs->info = info;
	hs->random_func = random_func;
	hs->random_data = random_data;
	hs->action = AMU_NOISE_ACTION_NONE;
	hs->error = AMU_NOISE_ERROR_NONE;
	hs->cipher = amu_cipher_state_new(zero_key);
	hs->spare = amu_cipher_state_new(zero_key);
	if (hs->cipher == NULL || hs->spare == NULL) {
		amu_noise_handshake_free(hs);
		return NULL;
	}

	/* InitializeSymmetric(protocol_name) */
	name_len = strlen(info->protocol_name);
	if (name_len <= sizeof hs->h)
		memcpy(hs->h, info->protocol_name, name_len);
	else
		amu_crypto_hash(hs->h, (const uint8_t *)info->protocol_name, name_len, NULL, 0);
	memcpy(hs->ck, hs->h, sizeof hs->ck);
	return hs;
}

void
amu_noise_handshake_free(AmuNoiseHandshake *hs)
{
	if (hs == NULL)
		return;
	amu_cipher_state_free(hs->cipher);
	amu_cipher_state_free(hs->spare);
	sodium_memzero(hs, sizeof *hs);
	g_free(hs);
}

AmuNoiseHandshake *
amu_noise_handshake_copy(const AmuNoiseHandshake *hs)
{
	AmuNoiseHandshake *copy;

	g_return_val_if_fail(hs != NULL, NULL);

	copy = g_new(AmuNoiseHandshake, 1);
	memcpy(copy, hs, sizeof *copy);
	copy->cipher = hs->cipher != NULL ? amu_cipher_state_copy(hs->cipher) : NULL;
	copy->spare = hs->spare != NULL ? amu_cipher_state_copy(hs->spare) : NULL;
	if ((hs->cipher != NULL && copy->cipher == NULL) ||
	    (hs->spare != NULL && copy->spare == NULL)) {
		amu_noise_handshake_free(copy);
		return NULL;
	}
	return copy;
}

/* Setters are configuration: refused once started, or after a failure. */
static int
amu_noise_check_not_started(AmuNoiseHandshake *hs)
{
	if (hs->action == AMU_NOISE_ACTION_FAILED)
		return -1;
	if (hs->started)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
	return 0;
}

int
amu_noise_handshake_set_prologue(AmuNoiseHandshake *hs, const uint8_t *prologue, size_t len)
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(prologue != NULL || len == 0, -1);

	if (amu_noise_check_not_started(hs) != 0)
		return -1;
	/* MixHash(a) then MixHash(b) is not the prologue a || b: refuse a second one */
	if (hs->prologue_set)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
	amu_noise_mix_hash(hs, prologue, len);
	hs->prologue_set = TRUE;
	return 0;
}

int
amu_noise_handshake_set_local_static(AmuNoiseHandshake *hs,
				     const uint8_t secret_key[AMU_NOISE_KEYBYTES])
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(secret_key != NULL, -1);

	if (amu_noise_check_not_started(hs) != 0)
		return -1;
	memcpy(hs->s_secret, secret_key, sizeof hs->s_secret);
	if (amu_crypto_x25519_public(hs->s_public, hs->s_secret) != 0) {
		sodium_memzero(hs->s_secret, sizeof hs->s_secret);
		hs->has_s = FALSE;
		return amu_noise_fail(hs, AMU_NOISE_ERROR_BAD_DH);
	}
	hs->has_s = TRUE;
	return 0;
}

int
amu_noise_handshake_set_remote_static(AmuNoiseHandshake *hs,
				      const uint8_t public_key[AMU_NOISE_KEYBYTES])
{
	gboolean known;

	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(public_key != NULL, -1);

	if (amu_noise_check_not_started(hs) != 0)
		return -1;
	known = hs->role == AMU_NOISE_ROLE_INITIATOR ? hs->info->responder_static_known
						     : hs->info->initiator_static_known;
	if (!known)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
	memcpy(hs->rs, public_key, sizeof hs->rs);
	hs->has_rs = TRUE;
	return 0;
}

int
amu_noise_handshake_set_fixed_ephemeral(AmuNoiseHandshake *hs,
					const uint8_t secret_key[AMU_NOISE_KEYBYTES])
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(secret_key != NULL, -1);

	if (amu_noise_check_not_started(hs) != 0)
		return -1;
	memcpy(hs->fixed_e_secret, secret_key, sizeof hs->fixed_e_secret);
	hs->has_fixed_e = TRUE;
	return 0;
}

int
amu_noise_handshake_start(AmuNoiseHandshake *hs)
{
	gboolean initiator;

	g_return_val_if_fail(hs != NULL, -1);

	if (amu_noise_check_not_started(hs) != 0)
		return -1;
	initiator = hs->role == AMU_NOISE_ROLE_INITIATOR;
	/* every supported pattern sends or pre-shares both statics */
	if (!hs->has_s)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_MISSING_KEY);
	if (!hs->has_rs &&
	    (initiator ? hs->info->responder_static_known : hs->info->initiator_static_known))
		return amu_noise_fail(hs, AMU_NOISE_ERROR_MISSING_KEY);

	if (!hs->prologue_set)
		amu_noise_mix_hash(hs, NULL, 0);
	/* pre-messages: the initiator's first, then the responder's */
	if (hs->info->initiator_static_known)
		amu_noise_mix_hash(hs, initiator ? hs->s_public : hs->rs, AMU_NOISE_KEYBYTES);
	if (hs->info->responder_static_known)
		amu_noise_mix_hash(hs, initiator ? hs->rs : hs->s_public, AMU_NOISE_KEYBYTES);

	hs->started = TRUE;
	hs->action = initiator ? AMU_NOISE_ACTION_WRITE_MESSAGE : AMU_NOISE_ACTION_READ_MESSAGE;
	return 0;
}

AmuNoiseAction
amu_noise_handshake_get_action(const AmuNoiseHandshake *hs)
{
	g_return_val_if_fail(hs != NULL, AMU_NOISE_ACTION_FAILED);
	return hs->action;
}

AmuNoiseError
amu_noise_handshake_get_error(const AmuNoiseHandshake *hs)
{
	g_return_val_if_fail(hs != NULL, AMU_NOISE_ERROR_INVALID_STATE);
	return hs->error;
}

/* Refuses a read/write out of turn (INVALID_STATE, fatal). */
static int
amu_noise_check_action(AmuNoiseHandshake *hs, AmuNoiseAction wanted)
{
	if (hs->action == AMU_NOISE_ACTION_FAILED)
		return -1;
	if (hs->action != wanted)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
	return 0;
}

static void
amu_noise_next_message(AmuNoiseHandshake *hs)
{
	hs->message_index++;
	if (hs->message_index == hs->info->n_messages)
		hs->action = AMU_NOISE_ACTION_SPLIT;
	else if (hs->action == AMU_NOISE_ACTION_WRITE_MESSAGE)
		hs->action = AMU_NOISE_ACTION_READ_MESSAGE;
	else
		hs->action = AMU_NOISE_ACTION_WRITE_MESSAGE;
}

/* Bytes a message takes before its payload (e and s), and whether its payload
 * is encrypted, so lengths are checked before any state changes. */
static size_t
amu_noise_message_overhead(const AmuNoiseHandshake *hs, gboolean *payload_keyed)
{
	const AmuNoiseToken *tokens = hs->info->messages[hs->message_index];
	gboolean keyed = hs->has_k;
	size_t len = 0;

	for (size_t i = 0; tokens[i] != AMU_NOISE_TOKEN_END; i++) {
		switch (tokens[i]) {
		case AMU_NOISE_TOKEN_E:
			len += AMU_NOISE_KEYBYTES;
			break;
		case AMU_NOISE_TOKEN_S:
			len += AMU_NOISE_KEYBYTES + (keyed ? AMU_CIPHER_TAGBYTES : 0);
			break;
		case AMU_NOISE_TOKEN_EE:
		case AMU_NOISE_TOKEN_ES:
		case AMU_NOISE_TOKEN_SE:
		case AMU_NOISE_TOKEN_SS:
			keyed = TRUE;
			break;
		case AMU_NOISE_TOKEN_END:
			break;
		}
	}
	*payload_keyed = keyed;
	return len;
}

int
amu_noise_handshake_write_message(AmuNoiseHandshake *hs,
				  uint8_t *out,
				  size_t out_max,
				  size_t *out_len,
				  const uint8_t *payload,
				  size_t payload_len)
{
	const AmuNoiseToken *tokens;
	gboolean payload_keyed;
	size_t needed, pos = 0, written = 0;

	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(out != NULL, -1);
	g_return_val_if_fail(out_len != NULL, -1);
	g_return_val_if_fail(payload != NULL || payload_len == 0, -1);

	*out_len = 0;
	if (amu_noise_check_action(hs, AMU_NOISE_ACTION_WRITE_MESSAGE) != 0)
		return -1;
	needed = amu_noise_message_overhead(hs, &payload_keyed);
	if (payload_len > AMU_NOISE_MAX_MESSAGE ||
	    needed + payload_len + (payload_keyed ? AMU_CIPHER_TAGBYTES : 0) >
	      AMU_NOISE_MAX_MESSAGE)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_MALFORMED);
	needed += payload_len + (payload_keyed ? AMU_CIPHER_TAGBYTES : 0);
	if (out_max < needed)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_BUFFER_TOO_SMALL);

	tokens = hs->info->messages[hs->message_index];
	for (size_t i = 0; tokens[i] != AMU_NOISE_TOKEN_END; i++) {
		AmuNoiseError error = AMU_NOISE_ERROR_NONE;

		switch (tokens[i]) {
		case AMU_NOISE_TOKEN_E:
			if (hs->has_fixed_e)
				memcpy(hs->e_secret, hs->fixed_e_secret, sizeof hs->e_secret);
			else
				amu_crypto_random(hs->e_secret,
						  sizeof hs->e_secret,
						  hs->random_func,
						  hs->random_data);
			if (amu_crypto_x25519_public(hs->e_public, hs->e_secret) != 0)
				return amu_noise_fail(hs, AMU_NOISE_ERROR_BAD_DH);
			hs->has_e = TRUE;
			memcpy(out + pos, hs->e_public, sizeof hs->e_public);
			amu_noise_mix_hash(hs, hs->e_public, sizeof hs->e_public);
			pos += sizeof hs->e_public;
			break;
		case AMU_NOISE_TOKEN_S:
			if (amu_noise_encrypt_and_hash(
			      hs, out + pos, &written, hs->s_public, sizeof hs->s_public) != 0)
				return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
			pos += written;
			break;
		case AMU_NOISE_TOKEN_EE:
		case AMU_NOISE_TOKEN_ES:
		case AMU_NOISE_TOKEN_SE:
		case AMU_NOISE_TOKEN_SS:
			error = amu_noise_mix_dh(hs, tokens[i]);
			break;
		case AMU_NOISE_TOKEN_END:
			break;
		}
		if (error != AMU_NOISE_ERROR_NONE)
			return amu_noise_fail(hs, error);
	}
	if (amu_noise_encrypt_and_hash(hs, out + pos, &written, payload, payload_len) != 0)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_INVALID_STATE);
	pos += written;
	g_assert(pos == needed);

	*out_len = pos;
	amu_noise_next_message(hs);
	return 0;
}

int
amu_noise_handshake_read_message(AmuNoiseHandshake *hs,
				 uint8_t *payload_out,
				 size_t payload_max,
				 size_t *payload_len,
				 const uint8_t *message,
				 size_t message_len)
{
	const AmuNoiseToken *tokens;
	gboolean payload_keyed;
	size_t overhead, body_len, plain_len, pos = 0;

	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(payload_out != NULL || payload_max == 0, -1);
	g_return_val_if_fail(payload_len != NULL, -1);
	g_return_val_if_fail(message != NULL || message_len == 0, -1);

	*payload_len = 0;
	if (amu_noise_check_action(hs, AMU_NOISE_ACTION_READ_MESSAGE) != 0)
		return -1;
	overhead = amu_noise_message_overhead(hs, &payload_keyed);
	if (message_len > AMU_NOISE_MAX_MESSAGE || message_len < overhead)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_MALFORMED);
	body_len = message_len - overhead;
	if (payload_keyed && body_len < AMU_CIPHER_TAGBYTES)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_MALFORMED);
	plain_len = body_len - (payload_keyed ? AMU_CIPHER_TAGBYTES : 0);
	if (payload_max < plain_len)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_BUFFER_TOO_SMALL);

	tokens = hs->info->messages[hs->message_index];
	for (size_t i = 0; tokens[i] != AMU_NOISE_TOKEN_END; i++) {
		AmuNoiseError error = AMU_NOISE_ERROR_NONE;
		size_t len;

		switch (tokens[i]) {
		case AMU_NOISE_TOKEN_E:
			memcpy(hs->re, message + pos, sizeof hs->re);
			hs->has_re = TRUE;
			amu_noise_mix_hash(hs, hs->re, sizeof hs->re);
			pos += sizeof hs->re;
			break;
		case AMU_NOISE_TOKEN_S:
			len = AMU_NOISE_KEYBYTES + (hs->has_k ? AMU_CIPHER_TAGBYTES : 0);
			if (amu_noise_decrypt_and_hash(hs, hs->rs, message + pos, len) != 0)
				return amu_noise_fail(hs, AMU_NOISE_ERROR_DECRYPT);
			hs->has_rs = TRUE;
			pos += len;
			break;
		case AMU_NOISE_TOKEN_EE:
		case AMU_NOISE_TOKEN_ES:
		case AMU_NOISE_TOKEN_SE:
		case AMU_NOISE_TOKEN_SS:
			error = amu_noise_mix_dh(hs, tokens[i]);
			break;
		case AMU_NOISE_TOKEN_END:
			break;
		}
		if (error != AMU_NOISE_ERROR_NONE)
			return amu_noise_fail(hs, error);
	}
	g_assert(pos == overhead);
	if (amu_noise_decrypt_and_hash(hs, payload_out, message + pos, body_len) != 0)
		return amu_noise_fail(hs, AMU_NOISE_ERROR_DECRYPT);

	*payload_len = plain_len;
	amu_noise_next_message(hs);
	return 0;
}

int
amu_noise_handshake_get_remote_static(const AmuNoiseHandshake *hs,
				      uint8_t public_key[AMU_NOISE_KEYBYTES])
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(public_key != NULL, -1);

	if (!hs->has_rs)
		return -1;
	memcpy(public_key, hs->rs, AMU_NOISE_KEYBYTES);
	return 0;
}

int
amu_noise_handshake_get_local_static_public(const AmuNoiseHandshake *hs,
					    uint8_t public_key[AMU_NOISE_KEYBYTES])
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(public_key != NULL, -1);

	if (!hs->has_s)
		return -1;
	memcpy(public_key, hs->s_public, AMU_NOISE_KEYBYTES);
	return 0;
}

int
amu_noise_handshake_get_handshake_hash(const AmuNoiseHandshake *hs,
				       uint8_t hash[AMU_NOISE_HASHBYTES])
{
	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(hash != NULL, -1);

	if (hs->action != AMU_NOISE_ACTION_SPLIT && !hs->split_done)
		return -1;
	memcpy(hash, hs->h, AMU_NOISE_HASHBYTES);
	return 0;
}

int
amu_noise_handshake_split(AmuNoiseHandshake *hs, AmuCipherState **send, AmuCipherState **recv)
{
	uint8_t temp_k1[AMU_NOISE_HASHBYTES], temp_k2[AMU_NOISE_HASHBYTES];
	AmuCipherState *c1, *c2;

	g_return_val_if_fail(hs != NULL, -1);
	g_return_val_if_fail(send != NULL && *send == NULL, -1);
	g_return_val_if_fail(recv != NULL && *recv == NULL, -1);

	if (amu_noise_check_action(hs, AMU_NOISE_ACTION_SPLIT) != 0)
		return -1;
	amu_crypto_hkdf(temp_k1, temp_k2, NULL, hs->ck, NULL, 0);
	c1 = g_steal_pointer(&hs->cipher);
	c2 = g_steal_pointer(&hs->spare);
	amu_cipher_state_set_key(c1, temp_k1);
	amu_cipher_state_set_key(c2, temp_k2);
	sodium_memzero(temp_k1, sizeof temp_k1);
	sodium_memzero(temp_k2, sizeof temp_k2);
	if (hs->role == AMU_NOISE_ROLE_INITIATOR) {
		*send = c1;
		*recv = c2;
	} else {
		*send = c2;
		*recv = c1;
	}

	/* only h (the channel binding) and the public keys stay useful */
	sodium_memzero(hs->ck, sizeof hs->ck);
	sodium_memzero(hs->e_secret, sizeof hs->e_secret);
	sodium_memzero(hs->fixed_e_secret, sizeof hs->fixed_e_secret);
	hs->has_e = FALSE;
	hs->has_fixed_e = FALSE;
	hs->has_k = FALSE;
	hs->split_done = TRUE;
	hs->action = AMU_NOISE_ACTION_NONE;
	return 0;
}
