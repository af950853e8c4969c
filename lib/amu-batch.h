/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "amulet/amu-error.h"
#include "amulet/amu-sample.h"

G_BEGIN_DECLS

/*
 * Packed columns for one group of samples of one category (the `columns` of a
 * SampleGroup in a SyncBatch). Sans-I/O: bytes in, samples out, and back.
 *
 * All integers are LEB128 varints of at most 10 bytes, in their shortest
 * form; signed ones are zigzag-coded (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...).
 *
 *   count                 1 .. AMU_BATCH_MAX_GROUP_SAMPLES
 *   timestamps            first timestamp (signed, absolute ms), then
 *                         run-length pairs (signed delta, run >= 1) whose
 *                         runs sum to count - 1
 *   value column c        for c in 0 .. n_values - 1: first value (signed),
 *                         then count - 1 signed deltas from the previous value
 *
 * A 1 Hz series with a steady clock costs one run pair for all timestamps,
 * so heart rate is about one byte a sample.
 */

#define AMU_BATCH_MAX_GROUP_SAMPLES 65536

/*
 * Whether @sample can go in a group of @category: the category matches and
 * each used value lies within amu_category_get_value_range(). Values past
 * amu_category_get_n_values() are not encoded and not checked. The encoder
 * stops before a sample that fails this, so a caller that gets 0 back for a
 * non-empty input asks here whether the sample is bad or merely too big.
 */
gboolean amu_batch_check_sample(AmuCategory category, const AmuSample *sample, GError **error);

/*
 * Measures the encoding of the longest prefix of @samples that is encodable
 * and fits in @max_bytes, without building it. Returns its size in bytes and
 * stores its length in samples in @n_samples (both 0 when not even one fits).
 * The prefix ends early, before the first sample that fails
 * amu_batch_check_sample(), before one whose timestamp differs from the
 * previous one by more than an int64 can hold (it can start the next group),
 * and after AMU_BATCH_MAX_GROUP_SAMPLES samples. O(n).
 */
size_t amu_batch_measure_group(AmuCategory category,
			       const AmuSample *samples,
			       size_t n,
			       size_t max_bytes,
			       size_t *n_samples);

/*
 * Appends to @out the encoding of the prefix amu_batch_measure_group()
 * describes and returns its length in samples; 0, with nothing appended, if
 * @n is 0, the first sample is invalid, or not even one sample fits in
 * @max_bytes (SIZE_MAX for no limit). O(n), one allocation at most.
 */
size_t amu_batch_encode_group(GByteArray *out,
			      AmuCategory category,
			      const AmuSample *samples,
			      size_t n,
			      size_t max_bytes);

/*
 * Decodes one group of @category and appends its samples to @out, a GArray of
 * AmuSample: category set, unused values 0. Everything is verified: varints,
 * count, runs summing exactly to count - 1, timestamps that stay within int64,
 * every value within amu_category_get_value_range(), and no trailing bytes.
 * On error (AMU_ERROR_PROTOCOL, naming the byte offset) nothing is appended.
 * An invalid @category is AMU_ERROR_INVALID_ARGUMENT.
 */
gboolean amu_batch_decode_group(AmuCategory category,
				const uint8_t *data,
				size_t len,
				GArray *out,
				GError **error);

G_END_DECLS
