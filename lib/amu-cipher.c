/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-cipher.h"

struct AmuCipherState {
	uint8_t key[AMU_CIPHER_KEYBYTES];
	uint64_t n;
};

AmuCipherState *
amu_cipher_state_new(const uint8_t key[AMU_CIPHER_KEYBYTES])
{
	AmuCipherState *cs;

	g_return_val_if_fail(key != NULL, NULL);

	if (amu_crypto_init() != 0)
		return NULL;
	/* not sodium_malloc: it costs several syscalls; short-lived keys are wiped on free */
	cs = g_new(AmuCipherState, 1);
	memcpy(cs->key, key, sizeof cs->key);
	cs->n = 0;
	return cs;
}

void
amu_cipher_state_free(AmuCipherState *cs)
{
	if (cs == NULL)
		return;
	sodium_memzero(cs, sizeof *cs);
	g_free(cs);
}

AmuCipherState *
amu_cipher_state_copy(const AmuCipherState *cs)
{
	AmuCipherState *copy;

	g_return_val_if_fail(cs != NULL, NULL);

	copy = amu_cipher_state_new(cs->key);
	if (copy == NULL)
		return NULL;
	copy->n = cs->n;
	return copy;
}

void
amu_cipher_state_set_key(AmuCipherState *cs, const uint8_t key[AMU_CIPHER_KEYBYTES])
{
	g_return_if_fail(cs != NULL);
	g_return_if_fail(key != NULL);

	memmove(cs->key, key, sizeof cs->key);
	cs->n = 0;
}

uint64_t
amu_cipher_state_get_nonce(const AmuCipherState *cs)
{
	g_return_val_if_fail(cs != NULL, AMU_CIPHER_MAX_NONCE);
	return cs->n;
}

void
amu_cipher_state_set_nonce(AmuCipherState *cs, uint64_t nonce)
{
	g_return_if_fail(cs != NULL);
	cs->n = nonce;
}

int
amu_cipher_state_encrypt(AmuCipherState *cs,
			 uint8_t *out,
			 size_t out_max,
			 size_t *out_len,
			 const uint8_t *ad,
			 size_t ad_len,
			 const uint8_t *plaintext,
			 size_t len)
{
	g_return_val_if_fail(cs != NULL, -1);
	g_return_val_if_fail(out != NULL, -1);
	g_return_val_if_fail(out_len != NULL, -1);
	g_return_val_if_fail(plaintext != NULL || len == 0, -1);

	*out_len = 0;
	if (cs->n == AMU_CIPHER_MAX_NONCE)
		return -1;
	if (len > out_max || out_max - len < AMU_CIPHER_TAGBYTES)
		return -1;
	amu_crypto_aead_encrypt(out, cs->key, cs->n, ad, ad_len, plaintext, len);
	cs->n++;
	*out_len = len + AMU_CIPHER_TAGBYTES;
	return 0;
}

int
amu_cipher_state_decrypt(AmuCipherState *cs,
			 uint8_t *out,
			 size_t out_max,
			 size_t *out_len,
			 const uint8_t *ad,
			 size_t ad_len,
			 const uint8_t *ciphertext,
			 size_t len)
{
	g_return_val_if_fail(cs != NULL, -1);
	g_return_val_if_fail(out != NULL || out_max == 0, -1);
	g_return_val_if_fail(out_len != NULL, -1);
	g_return_val_if_fail(ciphertext != NULL, -1);

	*out_len = 0;
	if (cs->n == AMU_CIPHER_MAX_NONCE)
		return -1;
	if (len < AMU_CIPHER_TAGBYTES || out_max < len - AMU_CIPHER_TAGBYTES)
		return -1;
	if (amu_crypto_aead_decrypt(out, cs->key, cs->n, ad, ad_len, ciphertext, len) != 0)
		return -1;
	cs->n++;
	*out_len = len - AMU_CIPHER_TAGBYTES;
	return 0;
}

const char *
amu_record_result_to_str(AmuRecordResult result)
{
	switch (result) {
	case AMU_RECORD_OK:
		return "ok";
	case AMU_RECORD_TRUNCATED:
		return "truncated";
	case AMU_RECORD_REPLAYED:
		return "replayed";
	case AMU_RECORD_GAP:
		return "gap";
	case AMU_RECORD_TAMPERED:
		return "tampered";
	case AMU_RECORD_EXHAUSTED:
		return "exhausted";
	case AMU_RECORD_BUFFER_TOO_SMALL:
		return "buffer-too-small";
	}
	return "unknown";
}

static void
amu_record_write_counter(uint8_t header[AMU_RECORD_HEADERBYTES], uint64_t counter)
{
	for (size_t i = 0; i < AMU_RECORD_HEADERBYTES; i++)
		header[i] = (uint8_t)(counter >> (8 * i));
}

static uint64_t
amu_record_read_counter(const uint8_t header[AMU_RECORD_HEADERBYTES])
{
	uint64_t counter = 0;

	for (size_t i = 0; i < AMU_RECORD_HEADERBYTES; i++)
		counter |= (uint64_t)header[i] << (8 * i);
	return counter;
}

int
amu_record_seal(AmuCipherState *cs,
		uint8_t *out,
		size_t out_max,
		size_t *out_len,
		const uint8_t *plaintext,
		size_t len)
{
	g_return_val_if_fail(cs != NULL, -1);
	g_return_val_if_fail(out != NULL, -1);
	g_return_val_if_fail(out_len != NULL, -1);
	g_return_val_if_fail(plaintext != NULL || len == 0, -1);

	*out_len = 0;
	if (cs->n == AMU_CIPHER_MAX_NONCE)
		return -1;
	if (len > out_max || out_max - len < AMU_RECORD_OVERHEAD)
		return -1;
	amu_record_write_counter(out, cs->n);
	amu_crypto_aead_encrypt(out + AMU_RECORD_HEADERBYTES,
				cs->key,
				cs->n,
				out,
				AMU_RECORD_HEADERBYTES,
				plaintext,
				len);
	cs->n++;
	*out_len = len + AMU_RECORD_OVERHEAD;
	return 0;
}

AmuRecordResult
amu_record_open(AmuCipherState *cs,
		uint8_t *out,
		size_t out_max,
		size_t *out_len,
		const uint8_t *record,
		size_t len)
{
	const uint8_t *body;
	size_t body_len;
	uint64_t counter;

	g_return_val_if_fail(cs != NULL, AMU_RECORD_TAMPERED);
	g_return_val_if_fail(out != NULL || out_max == 0, AMU_RECORD_TAMPERED);
	g_return_val_if_fail(out_len != NULL, AMU_RECORD_TAMPERED);
	g_return_val_if_fail(record != NULL, AMU_RECORD_TAMPERED);

	*out_len = 0;
	if (len < AMU_RECORD_OVERHEAD)
		return AMU_RECORD_TRUNCATED;
	if (cs->n == AMU_CIPHER_MAX_NONCE)
		return AMU_RECORD_EXHAUSTED;
	if (out_max < len - AMU_RECORD_OVERHEAD)
		return AMU_RECORD_BUFFER_TOO_SMALL;
	body = record + AMU_RECORD_HEADERBYTES;
	body_len = len - AMU_RECORD_HEADERBYTES;
	counter = amu_record_read_counter(record);

	if (counter != cs->n) {
		/* Authenticate it under the counter it claims before calling it a
		 * replay or a gap: an altered counter must read as tampering. The
		 * trial plaintext is discarded. */
		if (amu_crypto_aead_decrypt(
		      out, cs->key, counter, record, AMU_RECORD_HEADERBYTES, body, body_len) != 0)
			return AMU_RECORD_TAMPERED;
		if (body_len > AMU_CIPHER_TAGBYTES)
			sodium_memzero(out, body_len - AMU_CIPHER_TAGBYTES);
		return counter < cs->n ? AMU_RECORD_REPLAYED : AMU_RECORD_GAP;
	}
	if (amu_crypto_aead_decrypt(
	      out, cs->key, counter, record, AMU_RECORD_HEADERBYTES, body, body_len) != 0)
		return AMU_RECORD_TAMPERED;
	cs->n++;
	*out_len = body_len - AMU_CIPHER_TAGBYTES;
	return AMU_RECORD_OK;
}
