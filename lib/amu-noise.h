/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "amu-cipher.h"
#include "amu-crypto.h"

/* Sans-I/O Noise handshake for Noise_{XX,KK,IK}_25519_ChaChaPoly_BLAKE2b
 * (Noise revision 34, no PSK, no fallback). The caller moves the bytes.
 *
 * Usage: _new(), _set_prologue() (optional, once), _set_local_static(),
 * _set_remote_static() where the pattern pre-shares it (KK both sides, IK
 * initiator), _start(); then loop on _get_action(): WRITE_MESSAGE ->
 * _write_message(), READ_MESSAGE -> _read_message(), SPLIT -> _split().
 *
 * Return convention: int functions return 0 on success and -1 on failure.
 * Every -1 from a function that changes the handshake (setters, _start(),
 * _write_message(), _read_message(), _split()) leaves it FAILED for good:
 * _get_action() returns AMU_NOISE_ACTION_FAILED and _get_error() says why.
 * Accessors (_get_*) never change the state. To try several candidate keys
 * on one message, _copy() the handshake and read into each copy. */

#define AMU_NOISE_KEYBYTES AMU_CRYPTO_X25519_BYTES /* 32: DHLEN and cipher key */
#define AMU_NOISE_HASHBYTES AMU_CRYPTO_HASHBYTES   /* 64: HASHLEN */
#define AMU_NOISE_MAX_MESSAGE 65535

G_STATIC_ASSERT(AMU_NOISE_KEYBYTES == AMU_CIPHER_KEYBYTES);

typedef enum {
	AMU_NOISE_PATTERN_XX,
	AMU_NOISE_PATTERN_KK,
	AMU_NOISE_PATTERN_IK,
} AmuNoisePattern;

typedef enum {
	AMU_NOISE_ROLE_INITIATOR,
	AMU_NOISE_ROLE_RESPONDER,
} AmuNoiseRole;

typedef enum {
	AMU_NOISE_ACTION_NONE, /* not started yet, or already split */
	AMU_NOISE_ACTION_WRITE_MESSAGE,
	AMU_NOISE_ACTION_READ_MESSAGE,
	AMU_NOISE_ACTION_SPLIT,
	AMU_NOISE_ACTION_FAILED, /* sticky */
} AmuNoiseAction;

typedef enum {
	AMU_NOISE_ERROR_NONE,
	AMU_NOISE_ERROR_INVALID_STATE, /* call out of order, or a key the pattern cannot use */
	AMU_NOISE_ERROR_MISSING_KEY,   /* _start() without a key the pattern needs */
	AMU_NOISE_ERROR_MALFORMED,     /* message too short or too long */
	AMU_NOISE_ERROR_DECRYPT,       /* MAC failed: wrong key or tampering */
	AMU_NOISE_ERROR_BAD_DH,	       /* low-order point from the peer */
	AMU_NOISE_ERROR_BUFFER_TOO_SMALL,
} AmuNoiseError;

typedef struct AmuNoiseHandshake AmuNoiseHandshake; /* opaque; wiped when freed */

const char *amu_noise_error_to_str(AmuNoiseError error);
const char *amu_noise_action_to_str(AmuNoiseAction action);
const char *amu_noise_pattern_to_str(AmuNoisePattern pattern);

/* @random_func supplies ephemeral keys; NULL means randombytes_buf(). NULL
 * only if libsodium cannot be initialised. */
AmuNoiseHandshake *amu_noise_handshake_new(AmuNoisePattern pattern,
					   AmuNoiseRole role,
					   AmuRandomFunc random_func,
					   void *random_data);
void amu_noise_handshake_free(AmuNoiseHandshake *hs);
/* A deep copy, including a FAILED state. */
AmuNoiseHandshake *amu_noise_handshake_copy(const AmuNoiseHandshake *hs);

/* Setters: only before _start(). The prologue may be set once; an unset
 * prologue is the empty one, as in the spec. */
int amu_noise_handshake_set_prologue(AmuNoiseHandshake *hs, const uint8_t *prologue, size_t len);
int amu_noise_handshake_set_local_static(AmuNoiseHandshake *hs,
					 const uint8_t secret_key[AMU_NOISE_KEYBYTES]);
/* Refused (INVALID_STATE) where the pattern does not pre-share the remote
 * static (XX, IK responder): it would be silently ignored otherwise. */
int amu_noise_handshake_set_remote_static(AmuNoiseHandshake *hs,
					  const uint8_t public_key[AMU_NOISE_KEYBYTES]);
/* Tests and published vectors only: use this ephemeral instead of a random one. */
int amu_noise_handshake_set_fixed_ephemeral(AmuNoiseHandshake *hs,
					    const uint8_t secret_key[AMU_NOISE_KEYBYTES]);
/* Checks the keys the pattern and role need (MISSING_KEY) and mixes the
 * prologue and pre-messages. */
int amu_noise_handshake_start(AmuNoiseHandshake *hs);

AmuNoiseAction amu_noise_handshake_get_action(const AmuNoiseHandshake *hs);
AmuNoiseError amu_noise_handshake_get_error(const AmuNoiseHandshake *hs);

/* Writes the next handshake message (at most AMU_NOISE_MAX_MESSAGE bytes)
 * carrying @payload. MALFORMED if it would exceed that, BUFFER_TOO_SMALL if
 * @out_max is short; both are fatal, so a 65535-byte buffer is simplest.
 * @out must not overlap @payload. */
int amu_noise_handshake_write_message(AmuNoiseHandshake *hs,
				      uint8_t *out,
				      size_t out_max,
				      size_t *out_len,
				      const uint8_t *payload,
				      size_t payload_len);
/* Reads the next handshake message and writes its payload. Note that XX's
 * first message is not authenticated: tampering with it is detected when
 * the initiator reads the second one. @payload_out must not overlap
 * @message. */
int amu_noise_handshake_read_message(AmuNoiseHandshake *hs,
				     uint8_t *payload_out,
				     size_t payload_max,
				     size_t *payload_len,
				     const uint8_t *message,
				     size_t message_len) G_GNUC_WARN_UNUSED_RESULT;

/* -1 if not known yet (XX before the peer's "s" token, IK responder before
 * the first message) */
int amu_noise_handshake_get_remote_static(const AmuNoiseHandshake *hs,
					  uint8_t public_key[AMU_NOISE_KEYBYTES]);
/* -1 if no local static was set */
int amu_noise_handshake_get_local_static_public(const AmuNoiseHandshake *hs,
						uint8_t public_key[AMU_NOISE_KEYBYTES]);
/* The channel binding h; -1 until the handshake is complete (action SPLIT,
 * or NONE after the split). */
int amu_noise_handshake_get_handshake_hash(const AmuNoiseHandshake *hs,
					   uint8_t hash[AMU_NOISE_HASHBYTES]);

/* When the action is SPLIT: the transport cipher states, (transfer full)
 * each; *@send and *@recv must be NULL on entry. The initiator sends with the first key, the
 * responder with the second. Afterwards the action is NONE, ephemeral and chaining keys are wiped,
 * and only the accessors above remain useful. */
int amu_noise_handshake_split(AmuNoiseHandshake *hs, AmuCipherState **send, AmuCipherState **recv);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuNoiseHandshake, amu_noise_handshake_free)
