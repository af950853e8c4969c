/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-cipher.h"
#include "amu-test.h"

#define RECORD_PLAIN 100

static const uint8_t test_key[AMU_CIPHER_KEYBYTES] = {
	0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a,
	0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
	0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
};

/* A sender and a receiver sharing one direction's key. */
typedef struct {
	AmuCipherState *send;
	AmuCipherState *recv;
	uint8_t plain[3][RECORD_PLAIN];
	uint8_t record[3][RECORD_PLAIN + AMU_RECORD_OVERHEAD];
	size_t record_len[3];
} Link;

/* Seals three records 0, 1, 2 with distinct contents; none opened yet. */
static void
link_init(Link *link)
{
	link->send = amu_cipher_state_new(test_key);
	link->recv = amu_cipher_state_new(test_key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(link->send);
	CU_ASSERT_PTR_NOT_NULL_FATAL(link->recv);
	for (size_t i = 0; i < 3; i++) {
		memset(link->plain[i], 'a' + (int)i, RECORD_PLAIN);
		CU_ASSERT_EQUAL_FATAL(amu_record_seal(link->send,
						      link->record[i],
						      sizeof link->record[i],
						      &link->record_len[i],
						      link->plain[i],
						      RECORD_PLAIN),
				      0);
		CU_ASSERT_EQUAL(link->record_len[i], RECORD_PLAIN + AMU_RECORD_OVERHEAD);
	}
}

static void
link_clear(Link *link)
{
	amu_cipher_state_free(link->send);
	amu_cipher_state_free(link->recv);
}

/* Opens @record on @link->recv and expects @want; on OK, also @plain. */
static void
expect_open(Link *link,
	    const uint8_t *record,
	    size_t len,
	    AmuRecordResult want,
	    const uint8_t *plain)
{
	uint8_t out[RECORD_PLAIN + AMU_RECORD_OVERHEAD];
	uint64_t nonce_before = amu_cipher_state_get_nonce(link->recv);
	size_t out_len = 12345;
	AmuRecordResult got = amu_record_open(link->recv, out, sizeof out, &out_len, record, len);

	if (got != want)
		g_printerr("\n  expected %s, got %s\n",
			   amu_record_result_to_str(want),
			   amu_record_result_to_str(got));
	CU_ASSERT_EQUAL(got, want);
	if (want == AMU_RECORD_OK) {
		CU_ASSERT_EQUAL(out_len, RECORD_PLAIN);
		CU_ASSERT_EQUAL(memcmp(out, plain, RECORD_PLAIN), 0);
		CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(link->recv), nonce_before + 1);
	} else {
		/* a failed open never advances the counter or returns plaintext */
		CU_ASSERT_EQUAL(out_len, 0);
		CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(link->recv), nonce_before);
	}
}

/* EncryptWithAd is ChaCha20-Poly1305 IETF with nonce 0^32 || n little-endian. */
static void
test_nonce_layout(void)
{
	g_autoptr(AmuCipherState) cs = amu_cipher_state_new(test_key);
	const uint8_t npub[12] = { 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
	const uint8_t ad[] = "header", plain[] = "ChaChaPoly with a Noise nonce";
	uint8_t got[sizeof plain + AMU_CIPHER_TAGBYTES], want[sizeof got];
	unsigned long long want_len = 0;
	size_t got_len = 0;

	amu_cipher_state_set_nonce(cs, 0x0102030405060708ULL);
	CU_ASSERT_EQUAL(amu_cipher_state_encrypt(
			  cs, got, sizeof got, &got_len, ad, sizeof ad, plain, sizeof plain),
			0);
	crypto_aead_chacha20poly1305_ietf_encrypt(
	  want, &want_len, plain, sizeof plain, ad, sizeof ad, NULL, npub, test_key);
	CU_ASSERT_EQUAL(got_len, want_len);
	CU_ASSERT_EQUAL(memcmp(got, want, sizeof want), 0);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(cs), 0x0102030405060709ULL);
}

static void
test_round_trip(void)
{
	g_autoptr(AmuCipherState) send = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) recv = amu_cipher_state_new(test_key);
	const uint8_t ad[] = "ad", plain[] = "hello amulet";
	uint8_t ct[sizeof plain + AMU_CIPHER_TAGBYTES], scratch[sizeof ct], out[sizeof plain];
	size_t ct_len = 0, out_len = 0;

	for (uint64_t n = 0; n < 3; n++) {
		CU_ASSERT_EQUAL(amu_cipher_state_encrypt(
				  send, ct, sizeof ct, &ct_len, ad, sizeof ad, plain, sizeof plain),
				0);
		CU_ASSERT_EQUAL(ct_len, sizeof plain + AMU_CIPHER_TAGBYTES);
		CU_ASSERT_EQUAL(amu_cipher_state_decrypt(
				  recv, out, sizeof out, &out_len, ad, sizeof ad, ct, ct_len),
				0);
		CU_ASSERT_EQUAL(out_len, sizeof plain);
		CU_ASSERT_EQUAL(memcmp(out, plain, sizeof plain), 0);
		CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(send), n + 1);
		CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(recv), n + 1);
	}
	/* wrong AD: refused, n unchanged, output wiped */
	CU_ASSERT_EQUAL(amu_cipher_state_encrypt(
			  send, ct, sizeof ct, &ct_len, ad, sizeof ad, plain, sizeof plain),
			0);
	memset(out, 0xee, sizeof out);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_decrypt(recv, out, sizeof out, &out_len, ad, 1, ct, ct_len), -1);
	CU_ASSERT_EQUAL(out_len, 0);
	CU_ASSERT_TRUE(sodium_is_zero(out, sizeof out));
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(recv), 3);
	/* shorter than a tag, or an output one byte short */
	CU_ASSERT_EQUAL(
	  amu_cipher_state_decrypt(
	    recv, out, sizeof out, &out_len, ad, sizeof ad, ct, AMU_CIPHER_TAGBYTES - 1),
	  -1);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_decrypt(recv, out, sizeof out - 1, &out_len, ad, sizeof ad, ct, ct_len),
	  -1);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_encrypt(
	    send, scratch, sizeof scratch - 1, &out_len, ad, sizeof ad, plain, sizeof plain),
	  -1);
	CU_ASSERT_EQUAL(out_len, 0);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(send), 4);
	/* the genuine ciphertext still opens */
	CU_ASSERT_EQUAL(
	  amu_cipher_state_decrypt(recv, out, sizeof out, &out_len, ad, sizeof ad, ct, ct_len), 0);
	CU_ASSERT_EQUAL(memcmp(out, plain, sizeof plain), 0);
}

/* The record is counter || ChaChaPoly(plaintext) with the counter as AD and nonce. */
static void
test_record_format(void)
{
	Link link;
	uint8_t want[RECORD_PLAIN + AMU_CIPHER_TAGBYTES];
	uint8_t npub[12] = { 0 };
	unsigned long long want_len = 0;

	link_init(&link);
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *record = link.record[i];

		CU_ASSERT_EQUAL(record[0], i);
		CU_ASSERT_TRUE(sodium_is_zero(record + 1, 7));
		npub[4] = (uint8_t)i;
		crypto_aead_chacha20poly1305_ietf_encrypt(want,
							  &want_len,
							  link.plain[i],
							  RECORD_PLAIN,
							  record,
							  AMU_RECORD_HEADERBYTES,
							  NULL,
							  npub,
							  test_key);
		CU_ASSERT_EQUAL(want_len + AMU_RECORD_HEADERBYTES, link.record_len[i]);
		CU_ASSERT_EQUAL(memcmp(record + AMU_RECORD_HEADERBYTES, want, want_len), 0);
	}
	for (size_t i = 0; i < 3; i++)
		expect_open(
		  &link, link.record[i], link.record_len[i], AMU_RECORD_OK, link.plain[i]);
	link_clear(&link);
}

static void
test_record_replayed(void)
{
	Link link;

	link_init(&link);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_OK, link.plain[0]);
	expect_open(&link, link.record[1], link.record_len[1], AMU_RECORD_OK, link.plain[1]);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_REPLAYED, NULL);
	expect_open(&link, link.record[1], link.record_len[1], AMU_RECORD_REPLAYED, NULL);
	expect_open(&link, link.record[2], link.record_len[2], AMU_RECORD_OK, link.plain[2]);
	link_clear(&link);
}

static void
test_record_gap(void)
{
	Link link;

	link_init(&link);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_OK, link.plain[0]);
	expect_open(&link, link.record[2], link.record_len[2], AMU_RECORD_GAP, NULL);
	/* the counter did not move: the missing record still fits */
	expect_open(&link, link.record[1], link.record_len[1], AMU_RECORD_OK, link.plain[1]);
	expect_open(&link, link.record[2], link.record_len[2], AMU_RECORD_OK, link.plain[2]);
	link_clear(&link);
}

/* Every single-bit change is TAMPERED, counter bits included: a record is
 * checked under the counter it carries, so a changed counter cannot pass
 * for a replay or a gap. Nothing advances, and the genuine record then
 * opens. */
static void
test_record_bit_flips(void)
{
	Link link;
	uint8_t bad[RECORD_PLAIN + AMU_RECORD_OVERHEAD];

	link_init(&link);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_OK, link.plain[0]);
	/* record 1 is next; its counter bit 0 flipped would claim 0 (replay range),
	 * bit 1 would claim 3 (gap range): both are still TAMPERED */
	for (size_t bit = 0; bit < 8 * link.record_len[1]; bit++) {
		memcpy(bad, link.record[1], link.record_len[1]);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		expect_open(&link, bad, link.record_len[1], AMU_RECORD_TAMPERED, NULL);
	}
	/* an old record relabelled with the expected counter */
	memcpy(bad, link.record[0], link.record_len[0]);
	bad[0] = 1;
	expect_open(&link, bad, link.record_len[0], AMU_RECORD_TAMPERED, NULL);
	expect_open(&link, link.record[1], link.record_len[1], AMU_RECORD_OK, link.plain[1]);
	link_clear(&link);
}

static void
test_record_truncated(void)
{
	Link link;
	g_autoptr(AmuCipherState) send = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) recv = amu_cipher_state_new(test_key);
	uint8_t empty[AMU_RECORD_OVERHEAD], out[1];
	size_t len = 0, out_len = 0;

	link_init(&link);
	for (size_t n = 0; n < AMU_RECORD_OVERHEAD; n++)
		expect_open(&link, link.record[0], n, AMU_RECORD_TRUNCATED, NULL);
	/* long enough to parse, but cut: the tag no longer matches */
	for (size_t n = AMU_RECORD_OVERHEAD; n < link.record_len[0]; n++)
		expect_open(&link, link.record[0], n, AMU_RECORD_TAMPERED, NULL);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_OK, link.plain[0]);
	link_clear(&link);

	/* an empty record is exactly the overhead and is valid */
	CU_ASSERT_EQUAL(amu_record_seal(send, empty, sizeof empty, &len, NULL, 0), 0);
	CU_ASSERT_EQUAL(len, AMU_RECORD_OVERHEAD);
	CU_ASSERT_EQUAL(amu_record_open(recv, out, 0, &out_len, empty, len), AMU_RECORD_OK);
	CU_ASSERT_EQUAL(out_len, 0);
}

static void
test_record_buffers(void)
{
	Link link;
	uint8_t out[RECORD_PLAIN + AMU_RECORD_OVERHEAD];
	size_t out_len = 0;

	link_init(&link);
	CU_ASSERT_EQUAL(
	  amu_record_open(
	    link.recv, out, RECORD_PLAIN - 1, &out_len, link.record[0], link.record_len[0]),
	  AMU_RECORD_BUFFER_TOO_SMALL);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(link.recv), 0);
	CU_ASSERT_EQUAL(amu_record_seal(link.send,
					out,
					RECORD_PLAIN + AMU_RECORD_OVERHEAD - 1,
					&out_len,
					link.plain[0],
					RECORD_PLAIN),
			-1);
	CU_ASSERT_EQUAL(out_len, 0);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(link.send), 3);
	expect_open(&link, link.record[0], link.record_len[0], AMU_RECORD_OK, link.plain[0]);
	link_clear(&link);
}

/* n = 2^64-1 is reserved by Noise: the last usable counter is 2^64-2. */
static void
test_nonce_exhaustion(void)
{
	g_autoptr(AmuCipherState) send = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) recv = amu_cipher_state_new(test_key);
	uint8_t plain[8] = "lastone", record[sizeof plain + AMU_RECORD_OVERHEAD], out[sizeof plain];
	size_t len = 0, out_len = 0;

	amu_cipher_state_set_nonce(send, UINT64_MAX - 1);
	amu_cipher_state_set_nonce(recv, UINT64_MAX - 1);
	CU_ASSERT_EQUAL(amu_record_seal(send, record, sizeof record, &len, plain, sizeof plain), 0);
	CU_ASSERT_TRUE(record[0] == 0xfe && record[7] == 0xff);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(send), UINT64_MAX);
	CU_ASSERT_EQUAL(amu_record_open(recv, out, sizeof out, &out_len, record, len),
			AMU_RECORD_OK);
	CU_ASSERT_EQUAL(memcmp(out, plain, sizeof plain), 0);

	/* both ends are now spent */
	CU_ASSERT_EQUAL(amu_record_seal(send, record, sizeof record, &len, plain, sizeof plain),
			-1);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_encrypt(send, record, sizeof record, &len, NULL, 0, plain, sizeof plain),
	  -1);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(send), UINT64_MAX);
	record[0] = 0xff; /* even a record claiming 2^64-1 */
	CU_ASSERT_EQUAL(amu_record_open(recv, out, sizeof out, &out_len, record, sizeof record),
			AMU_RECORD_EXHAUSTED);
	CU_ASSERT_EQUAL(amu_cipher_state_decrypt(recv,
						 out,
						 sizeof out,
						 &out_len,
						 NULL,
						 0,
						 record + AMU_RECORD_HEADERBYTES,
						 sizeof record - AMU_RECORD_HEADERBYTES),
			-1);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(recv), UINT64_MAX);
}

/* In place: the same bytes as out of place, in both layers. */
static void
test_in_place(void)
{
	g_autoptr(AmuCipherState) a = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) b = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) recv = amu_cipher_state_new(test_key);
	uint8_t plain[300], buf[sizeof plain + AMU_RECORD_OVERHEAD], ref[sizeof buf];
	size_t len = 0, ref_len = 0, out_len = 0;

	for (size_t i = 0; i < sizeof plain; i++)
		plain[i] = (uint8_t)(i * 7);

	memcpy(buf, plain, sizeof plain);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_encrypt(a, buf, sizeof buf, &len, NULL, 0, buf, sizeof plain), 0);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_encrypt(b, ref, sizeof ref, &ref_len, NULL, 0, plain, sizeof plain), 0);
	CU_ASSERT_EQUAL(len, ref_len);
	CU_ASSERT_EQUAL(memcmp(buf, ref, len), 0);
	CU_ASSERT_EQUAL(
	  amu_cipher_state_decrypt(recv, buf, sizeof buf, &out_len, NULL, 0, buf, len), 0);
	CU_ASSERT_EQUAL(memcmp(buf, plain, sizeof plain), 0);

	/* records: the plaintext sits after the header room */
	memcpy(buf + AMU_RECORD_HEADERBYTES, plain, sizeof plain);
	CU_ASSERT_EQUAL(
	  amu_record_seal(a, buf, sizeof buf, &len, buf + AMU_RECORD_HEADERBYTES, sizeof plain), 0);
	CU_ASSERT_EQUAL(amu_record_seal(b, ref, sizeof ref, &ref_len, plain, sizeof plain), 0);
	CU_ASSERT_EQUAL(len, ref_len);
	CU_ASSERT_EQUAL(memcmp(buf, ref, len), 0);
	CU_ASSERT_EQUAL(
	  amu_record_open(recv, buf + AMU_RECORD_HEADERBYTES, sizeof plain, &out_len, buf, len),
	  AMU_RECORD_OK);
	CU_ASSERT_EQUAL(memcmp(buf + AMU_RECORD_HEADERBYTES, plain, sizeof plain), 0);
}

static void
test_copy_and_set_key(void)
{
	g_autoptr(AmuCipherState) cs = amu_cipher_state_new(test_key);
	g_autoptr(AmuCipherState) copy = NULL;
	g_autoptr(AmuCipherState) other = amu_cipher_state_new(test_key);
	uint8_t record[AMU_RECORD_OVERHEAD + 1], out[1];
	const uint8_t one = 1;
	uint8_t zero_key[AMU_CIPHER_KEYBYTES] = { 0 };
	size_t len = 0, out_len = 0;

	amu_cipher_state_set_nonce(cs, 41);
	copy = amu_cipher_state_copy(cs);
	CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
	CU_ASSERT_EQUAL(amu_record_seal(cs, record, sizeof record, &len, &one, 1), 0);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(cs), 42);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(copy), 41);
	CU_ASSERT_EQUAL(amu_record_open(copy, out, sizeof out, &out_len, record, len),
			AMU_RECORD_OK);
	CU_ASSERT_EQUAL(out[0], 1);

	/* InitializeKey: a new key and n back to 0 */
	amu_cipher_state_set_key(other, zero_key);
	CU_ASSERT_EQUAL(amu_cipher_state_get_nonce(other), 0);
	amu_cipher_state_set_nonce(other, 41);
	CU_ASSERT_EQUAL(amu_record_open(other, out, sizeof out, &out_len, record, len),
			AMU_RECORD_TAMPERED);
	amu_cipher_state_free(NULL);
}

static void
test_result_names(void)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (int r = AMU_RECORD_OK; r <= AMU_RECORD_BUFFER_TOO_SMALL; r++)
		g_hash_table_add(seen, (gpointer)amu_record_result_to_str((AmuRecordResult)r));
	CU_ASSERT_EQUAL(g_hash_table_size(seen), 7);
	CU_ASSERT_FALSE(g_hash_table_contains(seen, "unknown"));
	CU_ASSERT_STRING_EQUAL(amu_record_result_to_str(AMU_RECORD_REPLAYED), "replayed");
}

AMU_TEST_MAIN("cipher",
	      { "nonce layout", test_nonce_layout },
	      { "round trip", test_round_trip },
	      { "record format", test_record_format },
	      { "record replayed", test_record_replayed },
	      { "record gap", test_record_gap },
	      { "record bit flips", test_record_bit_flips },
	      { "record truncated", test_record_truncated },
	      { "record buffers", test_record_buffers },
	      { "nonce exhaustion", test_nonce_exhaustion },
	      { "in place", test_in_place },
	      { "copy and set key", test_copy_and_set_key },
	      { "result names", test_result_names })
