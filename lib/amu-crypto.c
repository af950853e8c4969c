/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-crypto.h"

int
amu_crypto_init(void)
{
	/* 1 = initialised, 2 = sodium_init() failed; g_once keeps it to one call */
	static gsize result = 0;

	if (g_once_init_enter(&result)) {
		gsize value = sodium_init() < 0 ? 2 : 1;
		g_once_init_leave(&result, value);
	}
	return result == 1 ? 0 : -1;
}

void
amu_crypto_random(void *buf, size_t len, AmuRandomFunc func, void *user_data)
{
	if (func != NULL)
		func(buf, len, user_data);
	else
		randombytes_buf(buf, len);
}

void
amu_crypto_hash(uint8_t out[AMU_CRYPTO_HASHBYTES],
		const uint8_t *a,
		size_t a_len,
		const uint8_t *b,
		size_t b_len)
{
	crypto_generichash_state state;

	crypto_generichash_init(&state, NULL, 0, AMU_CRYPTO_HASHBYTES);
	crypto_generichash_update(&state, a, a_len);
	if (b_len > 0)
		crypto_generichash_update(&state, b, b_len);
	crypto_generichash_final(&state, out, AMU_CRYPTO_HASHBYTES);
	sodium_memzero(&state, sizeof state);
}

/* @key_len <= AMU_CRYPTO_HASH_BLOCKBYTES, checked by the callers */
static void
amu_crypto_hmac_unchecked(uint8_t out[AMU_CRYPTO_HASHBYTES],
			  const uint8_t *key,
			  size_t key_len,
			  const uint8_t *data1,
			  size_t data1_len,
			  const uint8_t *data2,
			  size_t data2_len)
{
	crypto_generichash_state state;
	uint8_t pad[AMU_CRYPTO_HASH_BLOCKBYTES];
	uint8_t inner[AMU_CRYPTO_HASHBYTES];

	/* inner = H((K ^ ipad) || data1 || data2) */
	memset(pad, 0x36, sizeof pad);
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	crypto_generichash_init(&state, NULL, 0, sizeof inner);
	crypto_generichash_update(&state, pad, sizeof pad);
	if (data1_len > 0)
		crypto_generichash_update(&state, data1, data1_len);
	if (data2_len > 0)
		crypto_generichash_update(&state, data2, data2_len);
	crypto_generichash_final(&state, inner, sizeof inner);

	/* out = H((K ^ opad) || inner); pad is rebuilt from key before out is
	 * written, so out may alias key or data */
	memset(pad, 0x5c, sizeof pad);
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	crypto_generichash_init(&state, NULL, 0, AMU_CRYPTO_HASHBYTES);
	crypto_generichash_update(&state, pad, sizeof pad);
	crypto_generichash_update(&state, inner, sizeof inner);
	crypto_generichash_final(&state, out, AMU_CRYPTO_HASHBYTES);

	sodium_memzero(&state, sizeof state);
	sodium_memzero(pad, sizeof pad);
	sodium_memzero(inner, sizeof inner);
}

int
amu_crypto_hmac(uint8_t out[AMU_CRYPTO_HASHBYTES],
		const uint8_t *key,
		size_t key_len,
		const uint8_t *data1,
		size_t data1_len,
		const uint8_t *data2,
		size_t data2_len)
{
	if (key_len > AMU_CRYPTO_HASH_BLOCKBYTES)
		return -1;
	amu_crypto_hmac_unchecked(out, key, key_len, data1, data1_len, data2, data2_len);
	return 0;
}

void
amu_crypto_hkdf(uint8_t out1[AMU_CRYPTO_HASHBYTES],
		uint8_t out2[AMU_CRYPTO_HASHBYTES],
		uint8_t out3[AMU_CRYPTO_HASHBYTES],
		const uint8_t chaining_key[AMU_CRYPTO_HASHBYTES],
		const uint8_t *ikm,
		size_t ikm_len)
{
	uint8_t temp_key[AMU_CRYPTO_HASHBYTES];
	const uint8_t one = 0x01, two = 0x02, three = 0x03;

	/* every key here is HASHLEN, below BLOCKLEN */
	amu_crypto_hmac_unchecked(
	  temp_key, chaining_key, AMU_CRYPTO_HASHBYTES, ikm, ikm_len, NULL, 0);
	amu_crypto_hmac_unchecked(out1, temp_key, sizeof temp_key, &one, 1, NULL, 0);
	amu_crypto_hmac_unchecked(
	  out2, temp_key, sizeof temp_key, out1, AMU_CRYPTO_HASHBYTES, &two, 1);
	if (out3 != NULL) {
		amu_crypto_hmac_unchecked(
		  out3, temp_key, sizeof temp_key, out2, AMU_CRYPTO_HASHBYTES, &three, 1);
	}
	sodium_memzero(temp_key, sizeof temp_key);
}

int
amu_crypto_x25519_public(uint8_t public_key[AMU_CRYPTO_X25519_BYTES],
			 const uint8_t secret_key[AMU_CRYPTO_X25519_BYTES])
{
	return crypto_scalarmult_base(public_key, secret_key) == 0 ? 0 : -1;
}

int
amu_crypto_x25519_dh(uint8_t shared[AMU_CRYPTO_X25519_BYTES],
		     const uint8_t secret_key[AMU_CRYPTO_X25519_BYTES],
		     const uint8_t public_key[AMU_CRYPTO_X25519_BYTES])
{
	/* libsodium already refuses an all-zero result; check again so the
	 * guarantee does not depend on the library version */
	if (crypto_scalarmult(shared, secret_key, public_key) != 0 ||
	    sodium_is_zero(shared, AMU_CRYPTO_X25519_BYTES)) {
		sodium_memzero(shared, AMU_CRYPTO_X25519_BYTES);
		return -1;
	}
	return 0;
}

static void
amu_crypto_aead_nonce(uint8_t npub[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint64_t nonce)
{
	memset(npub, 0, 4);
	for (size_t i = 0; i < 8; i++)
		npub[4 + i] = (uint8_t)(nonce >> (8 * i));
}

void
amu_crypto_aead_encrypt(uint8_t *out,
			const uint8_t key[AMU_CRYPTO_AEAD_KEYBYTES],
			uint64_t nonce,
			const uint8_t *ad,
			size_t ad_len,
			const uint8_t *plaintext,
			size_t len)
{
	uint8_t npub[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

	amu_crypto_aead_nonce(npub, nonce);
	crypto_aead_chacha20poly1305_ietf_encrypt(
	  out, NULL, plaintext, len, ad, ad_len, NULL, npub, key);
}

int
amu_crypto_aead_decrypt(uint8_t *out,
			const uint8_t key[AMU_CRYPTO_AEAD_KEYBYTES],
			uint64_t nonce,
			const uint8_t *ad,
			size_t ad_len,
			const uint8_t *ciphertext,
			size_t len)
{
	uint8_t npub[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

	if (len < AMU_CRYPTO_AEAD_TAGBYTES)
		return -1;
	amu_crypto_aead_nonce(npub, nonce);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(
	      out, NULL, NULL, ciphertext, len, ad, ad_len, npub, key) != 0) {
		/* libsodium zeroes it too; do not rely on that */
		if (len > AMU_CRYPTO_AEAD_TAGBYTES)
			sodium_memzero(out, len - AMU_CRYPTO_AEAD_TAGBYTES);
		return -1;
	}
	return 0;
}

gboolean
amu_crypto_equal(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len) == 0;
}

/* the fingerprint people compare: 16 bytes of BLAKE2b of a 32-byte key, in groups of four hex digits */
char *
amu_fingerprint_from_key(const uint8_t public_key[32])
{
	uint8_t digest[16];
	GString *out = g_string_new(NULL);

	crypto_generichash(digest, sizeof(digest), public_key, 32, NULL, 0);
	for (size_t i = 0; i < sizeof(digest); i += 2)
		g_string_append_printf(out, "%s%02x%02x", i > 0 ? ":" : "", digest[i], digest[i + 1]);
	return g_string_free(out, FALSE);
}
