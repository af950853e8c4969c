/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

/* Small internal helpers over libsodium for the Noise handshake and the
 * record layer. Return convention for every int function here: 0 on
 * success, -1 on failure; outputs come first. Nothing here allocates. */

#define AMU_CRYPTO_HASHBYTES 64	       /* BLAKE2b-512, Noise HASHLEN */
#define AMU_CRYPTO_HASH_BLOCKBYTES 128 /* BLAKE2b block, Noise BLOCKLEN */
#define AMU_CRYPTO_X25519_BYTES 32     /* secret, public and shared-secret length */
#define AMU_CRYPTO_AEAD_KEYBYTES 32
#define AMU_CRYPTO_AEAD_TAGBYTES 16

G_STATIC_ASSERT(AMU_CRYPTO_X25519_BYTES == crypto_scalarmult_BYTES);
G_STATIC_ASSERT(AMU_CRYPTO_X25519_BYTES == crypto_scalarmult_SCALARBYTES);
G_STATIC_ASSERT(AMU_CRYPTO_AEAD_KEYBYTES == crypto_aead_chacha20poly1305_ietf_KEYBYTES);
G_STATIC_ASSERT(AMU_CRYPTO_AEAD_TAGBYTES == crypto_aead_chacha20poly1305_ietf_ABYTES);

/* Fills @buf with @len random bytes. Protocol code takes one of these so tests
 * can make it deterministic; NULL means libsodium's randombytes_buf(). */
typedef void (*AmuRandomFunc)(void *buf, size_t len, void *user_data);

/* Calls sodium_init() once per process; safe from any thread. Must succeed
 * before sodium_malloc() is usable, so every _new() here calls it. */
int amu_crypto_init(void) G_GNUC_WARN_UNUSED_RESULT;

/* Fills @buf from @func, or from randombytes_buf() when @func is NULL. */
void amu_crypto_random(void *buf, size_t len, AmuRandomFunc func, void *user_data);

/* out = BLAKE2b-512(a || b); @b may be NULL when @b_len is 0. */
void amu_crypto_hash(uint8_t out[AMU_CRYPTO_HASHBYTES],
		     const uint8_t *a,
		     size_t a_len,
		     const uint8_t *b,
		     size_t b_len);

/* HMAC-BLAKE2b as Noise defines HMAC-HASH (RFC 2104 with BLOCKLEN 128,
 * HASHLEN 64) over data1 || data2. Not BLAKE2b's keyed mode. @key_len must be
 * at most AMU_CRYPTO_HASH_BLOCKBYTES (Noise keys are always HASHLEN). */
int amu_crypto_hmac(uint8_t out[AMU_CRYPTO_HASHBYTES],
		    const uint8_t *key,
		    size_t key_len,
		    const uint8_t *data1,
		    size_t data1_len,
		    const uint8_t *data2,
		    size_t data2_len);

/* Noise HKDF(chaining_key, input_key_material, num_outputs): two outputs when
 * @out3 is NULL, three otherwise. The outputs may alias @chaining_key. */
void amu_crypto_hkdf(uint8_t out1[AMU_CRYPTO_HASHBYTES],
		     uint8_t out2[AMU_CRYPTO_HASHBYTES],
		     uint8_t out3[AMU_CRYPTO_HASHBYTES],
		     const uint8_t chaining_key[AMU_CRYPTO_HASHBYTES],
		     const uint8_t *ikm,
		     size_t ikm_len);

/* X25519 public key of a secret key (clamping is done by libsodium). */
int amu_crypto_x25519_public(uint8_t public_key[AMU_CRYPTO_X25519_BYTES],
			     const uint8_t secret_key[AMU_CRYPTO_X25519_BYTES]);

/* X25519 shared secret; -1 (and @shared wiped) for a low-order @public_key,
 * i.e. an all-zero result, which would make the "secret" public. */
int amu_crypto_x25519_dh(uint8_t shared[AMU_CRYPTO_X25519_BYTES],
			 const uint8_t secret_key[AMU_CRYPTO_X25519_BYTES],
			 const uint8_t public_key[AMU_CRYPTO_X25519_BYTES])
  G_GNUC_WARN_UNUSED_RESULT;

/* ChaCha20-Poly1305 (IETF) with the Noise nonce layout: 4 zero bytes then the
 * 64-bit @nonce little-endian. Writes @len + 16 bytes to @out. @out may equal
 * @plaintext (in place) but must not otherwise overlap it. */
void amu_crypto_aead_encrypt(uint8_t *out,
			     const uint8_t key[AMU_CRYPTO_AEAD_KEYBYTES],
			     uint64_t nonce,
			     const uint8_t *ad,
			     size_t ad_len,
			     const uint8_t *plaintext,
			     size_t len);

/* Inverse of amu_crypto_aead_encrypt(): @len includes the tag and must be at
 * least 16; writes @len - 16 bytes. -1 if the tag does not verify, and then
 * @out is zeroed. @out may equal @ciphertext. */
int amu_crypto_aead_decrypt(uint8_t *out,
			    const uint8_t key[AMU_CRYPTO_AEAD_KEYBYTES],
			    uint64_t nonce,
			    const uint8_t *ad,
			    size_t ad_len,
			    const uint8_t *ciphertext,
			    size_t len) G_GNUC_WARN_UNUSED_RESULT;

/* Constant-time comparison: TRUE when the @len bytes of @a and @b are equal. */
gboolean amu_crypto_equal(const void *a, const void *b, size_t len) G_GNUC_WARN_UNUSED_RESULT;

/* The fingerprint people compare: 16 bytes of BLAKE2b of a 32-byte key,
 * in groups of four hex digits. */
char *amu_fingerprint_from_key(const uint8_t public_key[32]);
