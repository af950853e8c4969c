/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-batch.h"
#include "amu-test.h"

/* Groups are written as hex so a failing test prints bytes a reader can
 * check against the format in lib/amu-batch.h. */

static GByteArray *
hex_to_bytes(const char *hex)
{
	GByteArray *out = g_byte_array_new();
	size_t n = strlen(hex);

	g_assert(n % 2 == 0);
	for (size_t i = 0; i < n; i += 2) {
		uint8_t byte =
		  (uint8_t)((g_ascii_xdigit_value(hex[i]) << 4) | g_ascii_xdigit_value(hex[i + 1]));
		g_byte_array_append(out, &byte, 1);
	}
	return out;
}

static char *
bytes_to_hex(const uint8_t *data, size_t len)
{
	GString *out = g_string_new(NULL);

	for (size_t i = 0; i < len; i++)
		g_string_append_printf(out, "%02x", data[i]);
	return g_string_free(out, FALSE);
}

static GArray *
sample_array_new(void)
{
	return g_array_new(FALSE, FALSE, sizeof(AmuSample));
}

static AmuSample
make_sample(AmuCategory category, gint64 timestamp_ms, gint32 v0, gint32 v1, gint32 v2)
{
	return (AmuSample){ .timestamp_ms = timestamp_ms,
			    .category = category,
			    .values = { v0, v1, v2 } };
}

static gboolean
samples_equal(const AmuSample *a, const AmuSample *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].timestamp_ms != b[i].timestamp_ms || a[i].category != b[i].category ||
		    memcmp(a[i].values, b[i].values, sizeof(a[i].values)) != 0) {
			g_printerr("  sample %zu differs: %" G_GINT64_FORMAT
				   " %d [%d %d %d] vs %" G_GINT64_FORMAT " %d [%d %d %d]\n",
				   i,
				   a[i].timestamp_ms,
				   a[i].category,
				   a[i].values[0],
				   a[i].values[1],
				   a[i].values[2],
				   b[i].timestamp_ms,
				   b[i].category,
				   b[i].values[0],
				   b[i].values[1],
				   b[i].values[2]);
			return FALSE;
		}
	}
	return TRUE;
}

/* Encodes @samples as one group, checks the hex and that it decodes back. */
static void
assert_encodes_to(AmuCategory category, const AmuSample *samples, size_t n, const char *hex)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GArray) decoded = sample_array_new();
	g_autoptr(GError) error = NULL;
	g_autofree char *got = NULL;
	size_t n_samples = 0;

	CU_ASSERT_EQUAL(amu_batch_encode_group(out, category, samples, n, SIZE_MAX), n);
	got = bytes_to_hex(out->data, out->len);
	if (g_strcmp0(got, hex) != 0)
		g_printerr("  got %s, expected %s\n", got, hex);
	CU_ASSERT_STRING_EQUAL(got, hex);
	CU_ASSERT_EQUAL(amu_batch_measure_group(category, samples, n, SIZE_MAX, &n_samples),
			out->len);
	CU_ASSERT_EQUAL(n_samples, n);
	CU_ASSERT_TRUE(amu_batch_decode_group(category, out->data, out->len, decoded, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL_FATAL(decoded->len, n);
	CU_ASSERT_TRUE(samples_equal((AmuSample *)decoded->data, samples, n));
}

/* The expected bytes are worked out by hand from the format. */
static void
test_known_bytes(void)
{
	/* 03 | ts 1000 = d00f, run (+1000 = d00f, 2) | 60 = 78, +1 = 02, -2 = 03 */
	const AmuSample heart[] = {
		make_sample(AMU_CATEGORY_HEART_RATE, 1000, 60, 0, 0),
		make_sample(AMU_CATEGORY_HEART_RATE, 2000, 61, 0, 0),
		make_sample(AMU_CATEGORY_HEART_RATE, 3000, 59, 0, 0),
	};
	/* 02 | ts 10 = 14, run (-5 = 09, 1) | lat -1 = 01, +2 = 04 |
	 * lon 64 = 8001, -64 = 7f | elevation -100000 = bf9a0c, +64 = 8001 */
	const AmuSample location[] = {
		make_sample(AMU_CATEGORY_LOCATION, 10, -1, 64, -100000),
		make_sample(AMU_CATEGORY_LOCATION, 5, 1, 0, -99936),
	};
	/* 05 | ts 0 = 00, runs (+1000 = d00f, 2) (+500 = e807, 2) | steps 0, 0, +5, 0, -5 */
	const AmuSample steps[] = {
		make_sample(AMU_CATEGORY_STEPS, 0, 0, 0, 0),
		make_sample(AMU_CATEGORY_STEPS, 1000, 0, 0, 0),
		make_sample(AMU_CATEGORY_STEPS, 2000, 5, 0, 0),
		make_sample(AMU_CATEGORY_STEPS, 2500, 5, 0, 0),
		make_sample(AMU_CATEGORY_STEPS, 3000, 0, 0, 0),
	};
	/* one sample: no run pairs at all; 01 | ts -1 = 01 | 100 = c801 */
	const AmuSample battery[] = {
		make_sample(AMU_CATEGORY_BATTERY, -1, 100, 0, 0),
	};

	assert_encodes_to(
	  AMU_CATEGORY_HEART_RATE, heart, G_N_ELEMENTS(heart), "03d00fd00f02780203");
	assert_encodes_to(
	  AMU_CATEGORY_LOCATION, location, G_N_ELEMENTS(location), "02140901010480017fbf9a0c8001");
	assert_encodes_to(AMU_CATEGORY_STEPS,
			  steps,
			  G_N_ELEMENTS(steps),
			  "0500d00f02e80702"
			  "00000a0009");
	assert_encodes_to(AMU_CATEGORY_BATTERY, battery, G_N_ELEMENTS(battery), "0101c801");
}

/* A value anywhere in [min, max], uniformly. */
static gint32
random_value(GRand *rand, gint32 min, gint32 max)
{
	guint64 range = (guint64)((gint64)max - min) + 1;

	return (gint32)(min +
			(gint64)(((guint64)g_rand_int(rand) << 32 | g_rand_int(rand)) % range));
}

/* A series of @n samples mixing the shapes a device sends: a steady clock
 * with jitter and gaps, values that wander, jump, and touch both bounds. */
static void
make_series(GRand *rand, AmuCategory category, AmuSample *samples, size_t n)
{
	guint n_values = amu_category_get_n_values(category);
	gint64 timestamp = 1700000000000 + g_rand_int_range(rand, -1000000, 1000000);
	gint64 step = g_rand_boolean(rand) ? 1000 : 60000;

	for (size_t i = 0; i < n; i++) {
		guint shape = g_rand_int_range(rand, 0, 100);

		samples[i] = (AmuSample){ .timestamp_ms = timestamp, .category = category };
		for (guint c = 0; c < n_values; c++) {
			gint32 min = 0, max = 0;
			gint64 walk;

			amu_category_get_value_range(category, c, &min, &max);
			if (i == 0 || shape < 10) {
				samples[i].values[c] = random_value(rand, min, max);
			} else if (shape < 12) {
				samples[i].values[c] = g_rand_boolean(rand) ? min : max;
			} else {
				/* not inside CLAMP(), which would draw it up to three times */
				walk =
				  (gint64)samples[i - 1].values[c] + g_rand_int_range(rand, -3, 4);
				samples[i].values[c] = (gint32)CLAMP(walk, min, max);
			}
		}
		if (shape < 80)
			timestamp += step;
		else if (shape < 95)
			timestamp += step + g_rand_int_range(rand, -50, 51);
		else
			timestamp += g_rand_int_range(rand, -100000, 10000000);
	}
}

static void
test_round_trip_every_category(void)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(20240611);

	for (int category = AMU_CATEGORY_FIRST; category <= AMU_CATEGORY_LAST; category++) {
		for (guint round = 0; round < 20; round++) {
			size_t n = round == 0 ? 1 : (size_t)g_rand_int_range(rand, 1, 3000);
			g_autofree AmuSample *samples = g_new(AmuSample, n);
			g_autoptr(GByteArray) out = g_byte_array_new();
			g_autoptr(GArray) decoded = sample_array_new();
			g_autoptr(GError) error = NULL;
			const AmuSample sentinel = make_sample(AMU_CATEGORY_BATTERY, 7, 7, 0, 0);
			const uint8_t prefix[] = { 0xaa, 0xbb };
			size_t n_samples = 0;

			make_series(rand, category, samples, n);
			/* both calls append, after whatever is already there */
			g_byte_array_append(out, prefix, sizeof(prefix));
			g_array_append_val(decoded, sentinel);
			CU_ASSERT_EQUAL(amu_batch_encode_group(out, category, samples, n, SIZE_MAX),
					n);
			CU_ASSERT_EQUAL(
			  amu_batch_measure_group(category, samples, n, SIZE_MAX, &n_samples),
			  out->len - sizeof(prefix));
			CU_ASSERT_EQUAL(n_samples, n);
			CU_ASSERT_EQUAL(memcmp(out->data, prefix, sizeof(prefix)), 0);
			CU_ASSERT_TRUE(amu_batch_decode_group(category,
							      out->data + sizeof(prefix),
							      out->len - sizeof(prefix),
							      decoded,
							      &error));
			CU_ASSERT_PTR_NULL(error);
			CU_ASSERT_EQUAL_FATAL(decoded->len, n + 1);
			CU_ASSERT_TRUE(samples_equal((AmuSample *)decoded->data, &sentinel, 1));
			CU_ASSERT_TRUE(
			  samples_equal(&g_array_index(decoded, AmuSample, 1), samples, n));
		}
	}
}

/* Timestamps at both ends of int64 and values at both ends of their range. */
static void
test_round_trip_extremes(void)
{
	const AmuSample low[] = {
		make_sample(AMU_CATEGORY_TOY_EVENT, G_MININT64, 1, 0, G_MAXINT32),
		make_sample(AMU_CATEGORY_TOY_EVENT, G_MININT64 + 1, 4, 3600000, 0),
		make_sample(AMU_CATEGORY_TOY_EVENT, G_MININT64, 1, 0, G_MAXINT32),
	};
	const AmuSample high[] = {
		make_sample(
		  AMU_CATEGORY_LOCATION, G_MAXINT64 - 3, -900000000, -1800000000, -100000),
		make_sample(AMU_CATEGORY_LOCATION, G_MAXINT64 - 2, 900000000, 1800000000, 1000000),
		make_sample(
		  AMU_CATEGORY_LOCATION, G_MAXINT64 - 1, -900000000, -1800000000, -100000),
		make_sample(AMU_CATEGORY_LOCATION, G_MAXINT64, 900000000, 1800000000, 1000000),
	};
	/* G_MININT64 then G_MAXINT64: the step does not fit an int64 delta, so
	 * the group ends there and the next one starts at the second sample */
	const AmuSample jump[] = {
		make_sample(AMU_CATEGORY_BATTERY, G_MININT64, 50, 0, 0),
		make_sample(AMU_CATEGORY_BATTERY, G_MAXINT64, 51, 0, 0),
	};
	g_autoptr(GByteArray) out = g_byte_array_new();

	/* checked against an independent encoder in a few lines of Python */
	assert_encodes_to(AMU_CATEGORY_TOY_EVENT,
			  low,
			  G_N_ELEMENTS(low),
			  "03ffffffffffffffffff01020101010206050080bab703ffb9b703"
			  "feffffff0ffdffffff0ffeffffff0f");
	assert_encodes_to(AMU_CATEGORY_LOCATION,
			  high,
			  G_N_ELEMENTS(high),
			  "04f8ffffffffffffffff010203"
			  "ffa3a7da0680c8ceb40dffc7ceb40d80c8ceb40d"
			  "ffc7ceb40d80909de91aff8f9de91a80909de91a"
			  "bf9a0cc0a38601bfa38601c0a38601");
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_BATTERY, jump, 2, SIZE_MAX), 1);
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_BATTERY, jump + 1, 1, SIZE_MAX),
			1);
}

/* A day of 1 Hz heart rate, as a watch records it: a slow walk in 50..180
 * on a steady clock, with one gap while it charged. */
static void
test_heart_rate_day(void)
{
	const size_t n = 86400;
	g_autoptr(GRand) rand = g_rand_new_with_seed(86400);
	g_autofree AmuSample *samples = g_new(AmuSample, n);
	g_autoptr(GPtrArray) groups =
	  g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
	g_autoptr(GArray) decoded = sample_array_new();
	gint64 timestamp = 1700000000000;
	gint32 bpm = 70;
	size_t total = 0;
	gint64 started;
	gint64 elapsed;
	guint rounds = 0;
	gboolean ok = TRUE;
	double per_sample;

	for (size_t i = 0; i < n; i++) {
		guint r = g_rand_int_range(rand, 0, 100);

		if (r < 15)
			bpm = MIN(bpm + 1, 180);
		else if (r < 30)
			bpm = MAX(bpm - 1, 50);
		samples[i] = make_sample(AMU_CATEGORY_HEART_RATE, timestamp, bpm, 0, 0);
		timestamp += i == 40000 ? 45 * 60 * 1000 : 1000;
	}
	for (size_t done = 0; done < n;) {
		GByteArray *group = g_byte_array_new();
		size_t count = amu_batch_encode_group(
		  group, AMU_CATEGORY_HEART_RATE, samples + done, n - done, SIZE_MAX);

		CU_ASSERT_FATAL(count > 0);
		CU_ASSERT(count <= AMU_BATCH_MAX_GROUP_SAMPLES);
		g_ptr_array_add(groups, group);
		total += group->len;
		done += count;
	}
	CU_ASSERT_EQUAL(groups->len, 2); /* 65536 is the most a group holds */
	per_sample = (double)total / n;
	g_print("\n  1 Hz heart rate day: %zu bytes, %.4f bytes/sample in %u groups\n",
		total,
		per_sample,
		groups->len);
	CU_ASSERT(per_sample <= 1.2);

	/* decode speed, printed only: valgrind and sanitizers slow it down */
	started = g_get_monotonic_time();
	do {
		g_array_set_size(decoded, 0);
		for (guint g = 0; g < groups->len; g++) {
			GByteArray *group = g_ptr_array_index(groups, g);

			ok =
			  ok && amu_batch_decode_group(
				  AMU_CATEGORY_HEART_RATE, group->data, group->len, decoded, NULL);
		}
		rounds++;
		elapsed = g_get_monotonic_time() - started;
	} while (ok && elapsed < 200000);
	CU_ASSERT_TRUE_FATAL(ok);
	g_print("  decoded %.1f M samples/s\n", (double)n * rounds / elapsed);
	CU_ASSERT_EQUAL_FATAL(decoded->len, n);
	CU_ASSERT_TRUE(samples_equal((AmuSample *)decoded->data, samples, n));
}

/* For every limit from 0 to the full size, the encoder takes the longest
 * prefix that fits, and that prefix decodes to the same samples. */
static void
test_max_bytes_cut_off(void)
{
	const size_t n = 120;
	g_autoptr(GRand) rand = g_rand_new_with_seed(7);
	g_autofree AmuSample *samples = g_new(AmuSample, n);
	size_t full;
	size_t one;
	size_t n_samples = 0;

	make_series(rand, AMU_CATEGORY_LOCATION, samples, n);
	full = amu_batch_measure_group(AMU_CATEGORY_LOCATION, samples, n, SIZE_MAX, &n_samples);
	CU_ASSERT_EQUAL(n_samples, n);
	one = amu_batch_measure_group(AMU_CATEGORY_LOCATION, samples, 1, SIZE_MAX, &n_samples);
	CU_ASSERT_EQUAL(n_samples, 1);
	for (size_t max_bytes = 0; max_bytes <= full + 1; max_bytes++) {
		g_autoptr(GByteArray) out = g_byte_array_new();
		g_autoptr(GArray) decoded = sample_array_new();
		g_autoptr(GError) error = NULL;
		size_t count =
		  amu_batch_encode_group(out, AMU_CATEGORY_LOCATION, samples, n, max_bytes);

		CU_ASSERT(out->len <= max_bytes);
		if (max_bytes < one) {
			CU_ASSERT_EQUAL(count, 0);
			CU_ASSERT_EQUAL(out->len, 0);
			continue;
		}
		CU_ASSERT_FATAL(count >= 1);
		CU_ASSERT_TRUE(amu_batch_decode_group(
		  AMU_CATEGORY_LOCATION, out->data, out->len, decoded, &error));
		CU_ASSERT_PTR_NULL(error);
		CU_ASSERT_EQUAL_FATAL(decoded->len, count);
		CU_ASSERT_TRUE(samples_equal((AmuSample *)decoded->data, samples, count));
		/* longest: one more sample would not have fitted */
		if (count < n) {
			CU_ASSERT(
			  amu_batch_measure_group(
			    AMU_CATEGORY_LOCATION, samples, count + 1, SIZE_MAX, &n_samples) >
			  max_bytes);
		} else {
			CU_ASSERT(max_bytes >= full);
		}
	}
}

/* The encoder stops before a sample it cannot encode, and says why on asking. */
static void
test_encode_stops_before_invalid(void)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(3);
	g_autofree AmuSample *samples = g_new(AmuSample, AMU_BATCH_MAX_GROUP_SAMPLES + 10);
	g_autoptr(GByteArray) out = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	AmuSample bad;

	make_series(rand, AMU_CATEGORY_SPO2, samples, 10);
	samples[5].category = AMU_CATEGORY_HEART_RATE;
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_SPO2, samples, 10, SIZE_MAX), 5);
	CU_ASSERT_FALSE(amu_batch_check_sample(AMU_CATEGORY_SPO2, &samples[5], &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);

	samples[5].category = AMU_CATEGORY_SPO2;
	samples[3].values[0] = 1001;
	g_byte_array_set_size(out, 0);
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_SPO2, samples, 10, SIZE_MAX), 3);
	CU_ASSERT_FALSE(amu_batch_check_sample(AMU_CATEGORY_SPO2, &samples[3], &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);

	/* a bad first sample: nothing at all */
	g_byte_array_set_size(out, 0);
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_SPO2, samples + 3, 7, SIZE_MAX),
			0);
	CU_ASSERT_EQUAL(out->len, 0);
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_SPO2, samples, 0, SIZE_MAX), 0);
	CU_ASSERT_EQUAL(out->len, 0);

	/* unused values are neither checked nor sent */
	bad = make_sample(AMU_CATEGORY_HEART_RATE, 0, 60, 12345, -1);
	CU_ASSERT_TRUE(amu_batch_check_sample(AMU_CATEGORY_HEART_RATE, &bad, NULL));
	CU_ASSERT_EQUAL(amu_batch_encode_group(out, AMU_CATEGORY_HEART_RATE, &bad, 1, SIZE_MAX), 1);
	CU_ASSERT_EQUAL(out->len, 3);
	CU_ASSERT_FALSE(amu_batch_check_sample((AmuCategory)0, &bad, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);

	/* n is capped at the most a group holds */
	make_series(rand, AMU_CATEGORY_SPO2, samples, AMU_BATCH_MAX_GROUP_SAMPLES + 10);
	g_byte_array_set_size(out, 0);
	CU_ASSERT_EQUAL(
	  amu_batch_encode_group(
	    out, AMU_CATEGORY_SPO2, samples, AMU_BATCH_MAX_GROUP_SAMPLES + 10, SIZE_MAX),
	  AMU_BATCH_MAX_GROUP_SAMPLES);
}

/* Decodes @data with @out holding one sentinel sample; it must fail with
 * AMU_ERROR_PROTOCOL naming an offset and leave @out as it was. */
static void
assert_malformed(AmuCategory category, const uint8_t *data, size_t len, const char *what)
{
	g_autoptr(GArray) out = sample_array_new();
	g_autoptr(GError) error = NULL;
	const AmuSample sentinel = make_sample(AMU_CATEGORY_BATTERY, 42, 42, 0, 0);

	g_array_append_val(out, sentinel);
	if (amu_batch_decode_group(category, data, len, out, &error)) {
		g_autofree char *hex = bytes_to_hex(data, len);

		g_printerr("  %s: %s decoded\n", what, hex);
	}
	AMU_ASSERT_ERROR(error, AMU_ERROR_PROTOCOL);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "offset"));
	CU_ASSERT_EQUAL(out->len, 1);
	CU_ASSERT_TRUE(samples_equal((AmuSample *)out->data, &sentinel, 1));
}

static void
test_malformed(void)
{
	static const struct {
		AmuCategory category;
		const char *hex;
		const char *what;
	} cases[] = {
		{ AMU_CATEGORY_HEART_RATE, "", "empty" },
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f0278020300", "trailing byte" },
		{ AMU_CATEGORY_HEART_RATE, "0000780203", "count 0" },
		{ AMU_CATEGORY_HEART_RATE,
		  "8180040000"
		  "0000",
		  "count 65537" },
		{ AMU_CATEGORY_HEART_RATE, "ffffffffffffffffff01", "count 2^64 - 1" },
		{ AMU_CATEGORY_HEART_RATE, "05d00fd00f04780203", "count beyond the data" },
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f01780203", "runs too short" },
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f0102780203", "runs too short, then end" },
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f03780203", "runs too long" },
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f00780203", "run of 0" },
		{ AMU_CATEGORY_HEART_RATE,
		  "0180808080808080808080"
		  "0178",
		  "11-byte varint" },
		{ AMU_CATEGORY_HEART_RATE, "01ffffffffffffffffff0278", "varint over 64 bits" },
		{ AMU_CATEGORY_HEART_RATE, "01800078", "varint not in shortest form" },
		{ AMU_CATEGORY_HEART_RATE, "0100f800", "varint not shortest, in a value" },
		{ AMU_CATEGORY_HEART_RATE, "010026", "value 19 < 20" },
		{ AMU_CATEGORY_HEART_RATE, "0100da04", "value 301 > 300" },
		{ AMU_CATEGORY_HEART_RATE, "02000001d80402", "delta takes 300 to 301" },
		{ AMU_CATEGORY_HEART_RATE, "0200000128feffffffffffffffff01", "delta +2^63 - 1" },
		{ AMU_CATEGORY_HEART_RATE, "0200000128ffffffffffffffffff01", "delta -2^63" },
		{ AMU_CATEGORY_LOCATION,
		  "0100"
		  "00"
		  "8080808010"
		  "00",
		  "longitude 2^31 overflows int32" },
		{ AMU_CATEGORY_SLEEP_STAGE, "010008", "sleep stage 4" },
		{ AMU_CATEGORY_TOY_EVENT, "0100000000", "toy event kind 0" },
		{ AMU_CATEGORY_HEART_RATE, "02feffffffffffffffff0102017800", "INT64_MAX + 1" },
		{ AMU_CATEGORY_HEART_RATE, "02ffffffffffffffffff0101017800", "INT64_MIN - 1" },
		{ AMU_CATEGORY_HEART_RATE,
		  "04faffffffffffffffff010203"
		  "78000000",
		  "INT64_MAX - 2, then 3 steps of +1" },
		{ AMU_CATEGORY_HEART_RATE,
		  "0300feffffffffffffffff0102"
		  "780000",
		  "run of 2 steps of 2^63 - 1" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GByteArray) bytes = hex_to_bytes(cases[i].hex);

		assert_malformed(cases[i].category, bytes->data, bytes->len, cases[i].what);
	}
}

/* Every proper prefix of a valid group is refused. */
static void
test_truncated_everywhere(void)
{
	static const struct {
		AmuCategory category;
		const char *hex;
	} valid[] = {
		{ AMU_CATEGORY_HEART_RATE, "03d00fd00f02780203" },
		{ AMU_CATEGORY_LOCATION, "02140901010480017fbf9a0c8001" },
		{ AMU_CATEGORY_STEPS, "0500d00f02e8070200000a0009" },
		{ AMU_CATEGORY_HEART_RATE,
		  "02feffffffffffffffff01"
		  "0101"
		  "7800" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(valid); i++) {
		g_autoptr(GByteArray) bytes = hex_to_bytes(valid[i].hex);
		g_autoptr(GArray) out = sample_array_new();

		CU_ASSERT_TRUE(
		  amu_batch_decode_group(valid[i].category, bytes->data, bytes->len, out, NULL));
		for (size_t len = 0; len < bytes->len; len++) {
			/* a copy of exactly len bytes, so valgrind and ASan see overreads */
			g_autofree uint8_t *copy = g_memdup2(bytes->data, len);

			assert_malformed(valid[i].category, copy, len, "truncated");
		}
	}
}

static void
test_decode_invalid_category(void)
{
	g_autoptr(GByteArray) bytes = hex_to_bytes("0101c801");
	g_autoptr(GArray) out = sample_array_new();
	g_autoptr(GError) error = NULL;

	CU_ASSERT_FALSE(
	  amu_batch_decode_group((AmuCategory)10, bytes->data, bytes->len, out, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(out->len, 0);
}

AMU_TEST_MAIN("batch",
	      { "known bytes", test_known_bytes },
	      { "round trip every category", test_round_trip_every_category },
	      { "round trip extremes", test_round_trip_extremes },
	      { "heart rate day", test_heart_rate_day },
	      { "max_bytes cut-off", test_max_bytes_cut_off },
	      { "encode stops before invalid", test_encode_stops_before_invalid },
	      { "malformed", test_malformed },
	      { "truncated everywhere", test_truncated_everywhere },
	      { "decode invalid category", test_decode_invalid_category })
