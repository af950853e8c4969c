/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "amu-crypto.h"

/* A Noise CipherState (ChaChaPoly, key k and 64-bit nonce n) and Amulet's
 * transport record layer on top of it.
 *
 * Return convention: int functions return 0 on success and -1 on failure;
 * a failed call changes nothing in the state (n advances only on success).
 * The session layer ends the session on any failure, so there is no
 * recovery path here beyond that guarantee. */

#define AMU_CIPHER_KEYBYTES AMU_CRYPTO_AEAD_KEYBYTES /* 32 */
#define AMU_CIPHER_TAGBYTES AMU_CRYPTO_AEAD_TAGBYTES /* 16 */
#define AMU_CIPHER_MAX_NONCE UINT64_MAX		     /* reserved by Noise, never used */
#define AMU_RECORD_HEADERBYTES 8		     /* explicit little-endian counter */
#define AMU_RECORD_OVERHEAD (AMU_RECORD_HEADERBYTES + AMU_CIPHER_TAGBYTES)

typedef struct AmuCipherState AmuCipherState; /* wiped when freed */

/* NULL if libsodium cannot be initialised. */
AmuCipherState *amu_cipher_state_new(const uint8_t key[AMU_CIPHER_KEYBYTES]);
void amu_cipher_state_free(AmuCipherState *cs);
/* A deep copy. */
AmuCipherState *amu_cipher_state_copy(const AmuCipherState *cs);
/* Noise InitializeKey(): replaces k and resets n to 0. */
void amu_cipher_state_set_key(AmuCipherState *cs, const uint8_t key[AMU_CIPHER_KEYBYTES]);
uint64_t amu_cipher_state_get_nonce(const AmuCipherState *cs);
/* Tests only: jump the counter, e.g. next to 2^64-1 for exhaustion. */
void amu_cipher_state_set_nonce(AmuCipherState *cs, uint64_t nonce);

/* Noise EncryptWithAd(ad, plaintext) with the implicit counter n: writes
 * @len + AMU_CIPHER_TAGBYTES bytes. -1 if @out_max is too small or n has
 * reached 2^64-1. @out may equal @plaintext (in place), no other overlap. */
int amu_cipher_state_encrypt(AmuCipherState *cs,
			     uint8_t *out,
			     size_t out_max,
			     size_t *out_len,
			     const uint8_t *ad,
			     size_t ad_len,
			     const uint8_t *plaintext,
			     size_t len);

/* Noise DecryptWithAd(ad, ciphertext): -1 if @len < AMU_CIPHER_TAGBYTES,
 * @out_max is too small, n is exhausted or the tag fails (then @out is
 * zeroed). @out may equal @ciphertext. */
int amu_cipher_state_decrypt(AmuCipherState *cs,
			     uint8_t *out,
			     size_t out_max,
			     size_t *out_len,
			     const uint8_t *ad,
			     size_t ad_len,
			     const uint8_t *ciphertext,
			     size_t len) G_GNUC_WARN_UNUSED_RESULT;

/* Transport record: counter (8 bytes LE) || ChaChaPoly(plaintext) || tag,
 * with AD = the 8 counter bytes and nonce = that counter, which is always the
 * sender's n. The explicit counter lets the receiver tell a replay from an
 * alteration: a record whose counter differs from the expected n is checked
 * under its own counter, so REPLAYED and GAP are only reported for records
 * this key really sealed; any other bad record is TAMPERED. */
typedef enum {
	AMU_RECORD_OK,
	AMU_RECORD_TRUNCATED, /* shorter than AMU_RECORD_OVERHEAD */
	AMU_RECORD_REPLAYED,  /* genuine record, counter below n: replay or reordering */
	AMU_RECORD_GAP,	      /* genuine record, counter above n: one was dropped or reordered */
	AMU_RECORD_TAMPERED,  /* tag fails under the counter it carries */
	AMU_RECORD_EXHAUSTED, /* n reached 2^64-1: rekey by a new handshake */
	AMU_RECORD_BUFFER_TOO_SMALL, /* out_max < len - AMU_RECORD_OVERHEAD */
} AmuRecordResult;

const char *amu_record_result_to_str(AmuRecordResult result);

/* Seals @len bytes into @len + AMU_RECORD_OVERHEAD bytes at @out. In place:
 * put the plaintext at @out + AMU_RECORD_HEADERBYTES and pass that as
 * @plaintext; no other overlap. -1 if @out_max is too small or n exhausted. */
int amu_record_seal(AmuCipherState *cs,
		    uint8_t *out,
		    size_t out_max,
		    size_t *out_len,
		    const uint8_t *plaintext,
		    size_t len);

/* Opens one record into @len - AMU_RECORD_OVERHEAD bytes at @out; n advances
 * only on AMU_RECORD_OK. On any other result @out holds no plaintext (it may
 * have been zeroed) and @out_len is 0. In place: @out may be
 * @record + AMU_RECORD_HEADERBYTES. */
AmuRecordResult amu_record_open(AmuCipherState *cs,
				uint8_t *out,
				size_t out_max,
				size_t *out_len,
				const uint8_t *record,
				size_t len) G_GNUC_WARN_UNUSED_RESULT;

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuCipherState, amu_cipher_state_free)
