/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "amu-batch.h"

/*
 * Decodes arbitrary bytes as one packed sample group.
 *
 * Input: one byte choosing the category (byte % 9 + 1), then the group.
 *
 * Invariants checked (abort on violation): a failed decode appends nothing
 * and sets an AMU_ERROR_PROTOCOL error; a successful one appends count
 * samples of the category, each within its value ranges, with unused values
 * 0. Those samples then re-encode whole, to no more bytes than the input
 * (the encoder writes maximal runs and shortest varints, the decoder accepts
 * nothing shorter), measure_group agrees with the encoder, and the
 * re-encoding decodes to the same samples. A limit of one byte less than
 * that takes a strict prefix, which also decodes to the same samples.
 *
 * The seeds in corpus/batch/ are valid groups of every category written by
 * the encoder (a throwaway program), with the category byte in front.
 * heart-rate-minute, for one, is 00 | 3c | 80a0abfef962 | d00f 3b | 8601 02
 * 02 ...: 60 samples a second apart from 1700000000000 ms, starting at 67
 * bpm. split-runs is written by hand: two run pairs of the same delta, which
 * the encoder would have merged, so its re-encoding is shorter.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(gboolean ok)
{
	if (!ok)
		abort();
}

static void
check_same(const AmuSample *a, const AmuSample *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		check(a[i].timestamp_ms == b[i].timestamp_ms);
		check(a[i].category == b[i].category);
		check(memcmp(a[i].values, b[i].values, sizeof(a[i].values)) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const AmuSample sentinel = { .timestamp_ms = 1, .category = AMU_CATEGORY_BATTERY };
	AmuCategory category;
	GArray *decoded;
	GArray *again;
	GByteArray *encoded;
	GError *error = NULL;
	AmuSample *samples;
	size_t n;
	size_t n_samples = 0;

	if (size < 1)
		return 0;
	category = (AmuCategory)(data[0] % 9 + 1);
	decoded = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	g_array_append_val(decoded, sentinel);
	if (!amu_batch_decode_group(category, data + 1, size - 1, decoded, &error)) {
		check(error != NULL && g_error_matches(error, AMU_ERROR, AMU_ERROR_PROTOCOL));
		check(decoded->len == 1);
		check_same((AmuSample *)decoded->data, &sentinel, 1);
		g_error_free(error);
		g_array_unref(decoded);
		return 0;
	}
	check(error == NULL);
	check(decoded->len >= 2 && decoded->len - 1 <= AMU_BATCH_MAX_GROUP_SAMPLES);
	check_same((AmuSample *)decoded->data, &sentinel, 1);
	samples = &g_array_index(decoded, AmuSample, 1);
	n = decoded->len - 1;
	for (size_t i = 0; i < n; i++) {
		check(amu_batch_check_sample(category, &samples[i], NULL));
		for (guint c = amu_category_get_n_values(category); c < AMU_SAMPLE_MAX_VALUES; c++)
			check(samples[i].values[c] == 0);
	}

	encoded = g_byte_array_new();
	check(amu_batch_encode_group(encoded, category, samples, n, SIZE_MAX) == n);
	check(encoded->len <= size - 1);
	check(amu_batch_measure_group(category, samples, n, SIZE_MAX, &n_samples) == encoded->len);
	check(n_samples == n);
	again = g_array_new(FALSE, FALSE, sizeof(AmuSample));
	check(amu_batch_decode_group(category, encoded->data, encoded->len, again, NULL));
	check(again->len == n);
	check_same((AmuSample *)again->data, samples, n);

	/* one byte short of the whole group: a strict prefix, or nothing */
	{
		size_t limit = encoded->len - 1;
		size_t count;

		g_byte_array_set_size(encoded, 0);
		g_array_set_size(again, 0);
		count = amu_batch_encode_group(encoded, category, samples, n, limit);
		check(count < n && encoded->len <= limit);
		check((count == 0) == (encoded->len == 0));
		if (count > 0) {
			check(amu_batch_decode_group(
			  category, encoded->data, encoded->len, again, NULL));
			check(again->len == count);
			check_same((AmuSample *)again->data, samples, count);
		}
	}

	g_array_unref(again);
	g_byte_array_unref(encoded);
	g_array_unref(decoded);
	return 0;
}
