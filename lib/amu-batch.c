/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-batch.h"

/* The longest LEB128 form of a 64-bit number. */
#define VARINT_MAX_BYTES 10

/* The ranges of one category's value columns, looked up once per group
 * rather than once per value. */
typedef struct {
	guint n_values;
	gint32 min[AMU_SAMPLE_MAX_VALUES];
	gint32 max[AMU_SAMPLE_MAX_VALUES];
} Columns;

typedef struct {
	const uint8_t *data;
	size_t len;
	size_t pos;
} Reader;

static void
columns_init(Columns *columns, AmuCategory category)
{
	columns->n_values = amu_category_get_n_values(category);
	for (guint c = 0; c < columns->n_values; c++)
		amu_category_get_value_range(category, c, &columns->min[c], &columns->max[c]);
}

static inline guint64
zigzag_encode(gint64 value)
{
	return ((guint64)value << 1) ^ (0 - ((guint64)value >> 63));
}

static inline gint64
zigzag_decode(guint64 zigzag)
{
	return (gint64)((zigzag >> 1) ^ (0 - (zigzag & 1)));
}

static inline size_t
varint_size(guint64 value)
{
	/* 7 bits a byte; value | 1 keeps clz defined for 0 */
	return (size_t)(70 - __builtin_clzll(value | 1)) / 7;
}

static inline size_t
pair_size(gint64 delta, guint64 run)
{
	return varint_size(zigzag_encode(delta)) + varint_size(run);
}

static inline uint8_t *
write_varint(uint8_t *p, guint64 value)
{
	while (value >= 0x80) {
		*p++ = (uint8_t)(value | 0x80);
		value >>= 7;
	}
	*p++ = (uint8_t)value;
	return p;
}

static gboolean
read_varint_slow(Reader *reader, guint64 *value, GError **error)
{
	size_t start = reader->pos;
	guint64 result = 0;

	for (guint i = 0;; i++) {
		uint8_t byte;

		if (reader->pos >= reader->len) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    "truncated varint at offset %zu",
				    start);
			return FALSE;
		}
		byte = reader->data[reader->pos++];
		if (i == VARINT_MAX_BYTES - 1 && byte > 1) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    (byte & 0x80) ? "varint at offset %zu is longer than 10 bytes"
						  : "varint at offset %zu overflows 64 bits",
				    start);
			return FALSE;
		}
		result |= (guint64)(byte & 0x7f) << (7 * i);
		if ((byte & 0x80) == 0) {
			/* The encoder writes only the shortest form; accepting
			 * padded ones would leave a device room to smuggle bytes. */
			if (byte == 0 && i > 0) {
				g_set_error(error,
					    AMU_ERROR,
					    AMU_ERROR_PROTOCOL,
					    "varint at offset %zu is not in its shortest form",
					    start);
				return FALSE;
			}
			*value = result;
			return TRUE;
		}
	}
}

/* Most varints in a group are small deltas of one or two bytes, so those
 * are kept inline and the rest goes out of line. */
static inline gboolean
read_varint(Reader *reader, guint64 *value, GError **error)
{
	size_t left = reader->len - reader->pos;

	if (G_LIKELY(left >= 1 && reader->data[reader->pos] < 0x80)) {
		*value = reader->data[reader->pos++];
		return TRUE;
	}
	if (left >= 2 && reader->data[reader->pos + 1] < 0x80 &&
	    reader->data[reader->pos + 1] != 0) {
		*value = (guint64)(reader->data[reader->pos] & 0x7f) |
			 (guint64)reader->data[reader->pos + 1] << 7;
		reader->pos += 2;
		return TRUE;
	}
	return read_varint_slow(reader, value, error);
}

static inline gboolean
read_signed(Reader *reader, gint64 *value, GError **error)
{
	guint64 zigzag;

	if (!read_varint(reader, &zigzag, error))
		return FALSE;
	*value = zigzag_decode(zigzag);
	return TRUE;
}

static inline gboolean
sample_fits_columns(const Columns *columns, AmuCategory category, const AmuSample *sample)
{
	if (sample->category != category)
		return FALSE;
	for (guint c = 0; c < columns->n_values; c++) {
		if (sample->values[c] < columns->min[c] || sample->values[c] > columns->max[c])
			return FALSE;
	}
	return TRUE;
}

gboolean
amu_batch_check_sample(AmuCategory category, const AmuSample *sample, GError **error)
{
	Columns columns;

	g_return_val_if_fail(sample != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (!amu_category_is_valid(category)) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "unknown category %d",
			    (int)category);
		return FALSE;
	}
	if (sample->category != category) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "a %s sample in a %s group",
			    amu_category_is_valid(sample->category)
			      ? amu_category_to_string(sample->category)
			      : "unknown",
			    amu_category_to_string(category));
		return FALSE;
	}
	columns_init(&columns, category);
	for (guint c = 0; c < columns.n_values; c++) {
		if (sample->values[c] < columns.min[c] || sample->values[c] > columns.max[c]) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_INVALID_ARGUMENT,
				    "%s value %u is %" G_GINT32_FORMAT ", outside %" G_GINT32_FORMAT
				    "..%" G_GINT32_FORMAT,
				    amu_category_to_string(category),
				    c,
				    sample->values[c],
				    columns.min[c],
				    columns.max[c]);
			return FALSE;
		}
	}
	return TRUE;
}

size_t
amu_batch_measure_group(AmuCategory category,
			const AmuSample *samples,
			size_t n,
			size_t max_bytes,
			size_t *n_samples)
{
	Columns columns;
	size_t firsts;		/* first timestamp and first values */
	size_t closed_runs = 0; /* run pairs already ended */
	size_t deltas = 0;	/* value deltas so far */
	gint64 run_delta = 0;	/* the open run pair, if run_length > 0 */
	guint64 run_length = 0;
	size_t size;
	size_t i;

	g_return_val_if_fail(n_samples != NULL, 0);
	*n_samples = 0;
	g_return_val_if_fail(amu_category_is_valid(category), 0);
	g_return_val_if_fail(samples != NULL || n == 0, 0);

	n = MIN(n, AMU_BATCH_MAX_GROUP_SAMPLES);
	columns_init(&columns, category);
	if (n == 0 || !sample_fits_columns(&columns, category, &samples[0]))
		return 0;
	firsts = varint_size(zigzag_encode(samples[0].timestamp_ms));
	for (guint c = 0; c < columns.n_values; c++)
		firsts += varint_size(zigzag_encode(samples[0].values[c]));
	size = varint_size(1) + firsts;
	if (size > max_bytes)
		return 0;

	/* Every sample adds at least a byte per column, so the size only grows
	 * and the first sample that does not fit ends the prefix. Each step
	 * prices the open run pair exactly, so nothing is encoded twice. */
	for (i = 1; i < n; i++) {
		const AmuSample *sample = &samples[i];
		const AmuSample *prev = &samples[i - 1];
		size_t closed = closed_runs;
		size_t value_bytes = 0;
		size_t next_size;
		gint64 delta;
		guint64 length;

		if (!sample_fits_columns(&columns, category, sample))
			break;
		if (__builtin_sub_overflow(sample->timestamp_ms, prev->timestamp_ms, &delta))
			break;
		for (guint c = 0; c < columns.n_values; c++)
			value_bytes +=
			  varint_size(zigzag_encode((gint64)sample->values[c] - prev->values[c]));
		if (run_length > 0 && delta == run_delta) {
			length = run_length + 1;
		} else {
			if (run_length > 0)
				closed += pair_size(run_delta, run_length);
			length = 1;
		}
		next_size = varint_size(i + 1) + firsts + closed + pair_size(delta, length) +
			    deltas + value_bytes;
		if (next_size > max_bytes)
			break;
		closed_runs = closed;
		run_delta = delta;
		run_length = length;
		deltas += value_bytes;
		size = next_size;
	}
	*n_samples = i;
	return size;
}

size_t
amu_batch_encode_group(GByteArray *out,
		       AmuCategory category,
		       const AmuSample *samples,
		       size_t n,
		       size_t max_bytes)
{
	Columns columns;
	size_t count;
	size_t size;
	guint old_len;
	uint8_t *start;
	uint8_t *p;

	g_return_val_if_fail(out != NULL, 0);

	size = amu_batch_measure_group(category, samples, n, max_bytes, &count);
	if (count == 0)
		return 0;
	g_return_val_if_fail(size <= G_MAXUINT - out->len, 0);
	old_len = out->len;
	g_byte_array_set_size(out, old_len + (guint)size);
	start = p = out->data + old_len;

	p = write_varint(p, count);
	p = write_varint(p, zigzag_encode(samples[0].timestamp_ms));
	for (size_t i = 1; i < count;) {
		gint64 delta = samples[i].timestamp_ms - samples[i - 1].timestamp_ms;
		size_t run = 1;

		while (i + run < count &&
		       samples[i + run].timestamp_ms - samples[i + run - 1].timestamp_ms == delta)
			run++;
		p = write_varint(p, zigzag_encode(delta));
		p = write_varint(p, run);
		i += run;
	}
	columns_init(&columns, category);
	for (guint c = 0; c < columns.n_values; c++) {
		p = write_varint(p, zigzag_encode(samples[0].values[c]));
		for (size_t i = 1; i < count; i++)
			p = write_varint(
			  p,
			  zigzag_encode((gint64)samples[i].values[c] - samples[i - 1].values[c]));
	}
	/* measure and write must agree, or we wrote past what we reserved */
	g_assert((size_t)(p - start) == size);
	return count;
}

/* Fills in timestamps (and category, zeroing the values) of @count samples. */
static gboolean
decode_timestamps(Reader *reader,
		  AmuCategory category,
		  AmuSample *samples,
		  guint count,
		  GError **error)
{
	gint64 timestamp;
	guint filled = 1;

	if (!read_signed(reader, &timestamp, error))
		return FALSE;
	samples[0] = (AmuSample){ .timestamp_ms = timestamp, .category = category };
	while (filled < count) {
		size_t at = reader->pos;
		gint64 delta;
		gint64 span;
		gint64 last;
		guint64 run;

		if (!read_signed(reader, &delta, error) || !read_varint(reader, &run, error))
			return FALSE;
		if (run == 0) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    "timestamp run of 0 at offset %zu",
				    at);
			return FALSE;
		}
		if (run > count - filled) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    "timestamp run of %" G_GUINT64_FORMAT
				    " at offset %zu is longer "
				    "than the %u timestamps left",
				    run,
				    at,
				    count - filled);
			return FALSE;
		}
		/* A run moves in one direction, so if its last timestamp fits
		 * in an int64 then every one before it does too. */
		if (__builtin_mul_overflow(delta, (gint64)run, &span) ||
		    __builtin_add_overflow(timestamp, span, &last)) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    "timestamp run at offset %zu overflows 64 bits",
				    at);
			return FALSE;
		}
		for (guint64 i = 0; i < run; i++) {
			timestamp += delta;
			samples[filled++] =
			  (AmuSample){ .timestamp_ms = timestamp, .category = category };
		}
	}
	return TRUE;
}

static gboolean
decode_values(Reader *reader,
	      const Columns *columns,
	      AmuSample *samples,
	      guint count,
	      GError **error)
{
	for (guint c = 0; c < columns->n_values; c++) {
		gint64 min = columns->min[c];
		gint64 max = columns->max[c];
		size_t at = reader->pos;
		gint64 value;

		if (!read_signed(reader, &value, error))
			return FALSE;
		if (value < min || value > max) {
			g_set_error(error,
				    AMU_ERROR,
				    AMU_ERROR_PROTOCOL,
				    "value %" G_GINT64_FORMAT " of column %u at offset %zu is "
				    "outside %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT,
				    value,
				    c,
				    at,
				    min,
				    max);
			return FALSE;
		}
		samples[0].values[c] = (gint32)value;
		for (guint i = 1; i < count; i++) {
			gint64 delta;

			at = reader->pos;
			if (!read_signed(reader, &delta, error))
				return FALSE;
			/* value and the bounds are int32, so neither
			 * difference overflows, whatever delta is */
			if (delta < min - value || delta > max - value) {
				g_set_error(error,
					    AMU_ERROR,
					    AMU_ERROR_PROTOCOL,
					    "delta %" G_GINT64_FORMAT " of column %u at offset %zu "
					    "from %" G_GINT64_FORMAT
					    " lands outside %" G_GINT64_FORMAT
					    "..%" G_GINT64_FORMAT,
					    delta,
					    c,
					    at,
					    value,
					    min,
					    max);
				return FALSE;
			}
			value += delta;
			samples[i].values[c] = (gint32)value;
		}
	}
	return TRUE;
}

gboolean
amu_batch_decode_group(AmuCategory category,
		       const uint8_t *data,
		       size_t len,
		       GArray *out,
		       GError **error)
{
	Reader reader = { data, len, 0 };
	Columns columns;
	guint64 count;
	guint old_len;
	AmuSample *samples;

	g_return_val_if_fail(data != NULL || len == 0, FALSE);
	g_return_val_if_fail(out != NULL, FALSE);
	g_return_val_if_fail(g_array_get_element_size(out) == sizeof(AmuSample), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (!amu_category_is_valid(category)) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "unknown category %d",
			    (int)category);
		return FALSE;
	}
	columns_init(&columns, category);
	if (!read_varint(&reader, &count, error))
		return FALSE;
	if (count < 1 || count > AMU_BATCH_MAX_GROUP_SAMPLES) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_PROTOCOL,
			    "count %" G_GUINT64_FORMAT " at offset 0 is outside 1..%d",
			    count,
			    AMU_BATCH_MAX_GROUP_SAMPLES);
		return FALSE;
	}
	/* Each value takes a byte at least: checking that before allocating
	 * keeps a few hostile bytes from costing 1.5 MiB. */
	if (len - reader.pos < count * columns.n_values + 1) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_PROTOCOL,
			    "truncated: %" G_GUINT64_FORMAT " samples need more than the %zu "
			    "bytes after offset %zu",
			    count,
			    len - reader.pos,
			    reader.pos);
		return FALSE;
	}
	if (count > G_MAXUINT - out->len) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_INVALID_ARGUMENT,
			    "%" G_GUINT64_FORMAT " more samples do not fit the array",
			    count);
		return FALSE;
	}

	old_len = out->len;
	g_array_set_size(out, old_len + (guint)count);
	samples = &g_array_index(out, AmuSample, old_len);
	if (!decode_timestamps(&reader, category, samples, (guint)count, error) ||
	    !decode_values(&reader, &columns, samples, (guint)count, error)) {
		g_array_set_size(out, old_len);
		return FALSE;
	}
	if (reader.pos != len) {
		g_set_error(error,
			    AMU_ERROR,
			    AMU_ERROR_PROTOCOL,
			    "%zu trailing bytes at offset %zu",
			    len - reader.pos,
			    reader.pos);
		g_array_set_size(out, old_len);
		return FALSE;
	}
	return TRUE;
}
