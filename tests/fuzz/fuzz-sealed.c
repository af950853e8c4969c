/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "amu-export-private.h"
#include "amulet/amu-error.h"
#include "amulet/amu-data-export.h"
#include "fuzz-common.h"

/*
 * Opens a sealed export (amu_export_open_sealed) for a fixed recipient key.
 *
 * Input: one flags byte, then the body.
 *   flags bit 0 clear: the body is the sealed file as it is.
 *   flags bit 0 set: the body is a script the harness turns into a sealed
 *     file under the real key, so the chunk parser sees authenticated but
 *     hostile structure. Bit 1 adds an empty FINAL chunk at the end; bit 2
 *     flips one byte of the result (the next 3 body bytes: offset LE, xor).
 *     Each script step is one control byte c, then its arguments:
 *       c & 3 == 0  file header: n, n name bytes, size code s (s < 0xf0 is
 *                   the size, above that one of sizes[]); c & 0x20 declares
 *                   a name one byte longer than the one given
 *       c & 3 == 1  file data: n, n bytes; c & 0x10 pads it with zeros to
 *                   64 KiB, one more with c & 0x20 (over the chunk limit)
 *       c & 3 == 2  any plaintext: n, n bytes, as they are
 *       c & 3 == 3  n, n bytes written to the file unencrypted
 *     and for the first three, (c >> 2) & 3 picks the secretstream tag
 *     (MESSAGE, PUSH, REKEY, FINAL).
 *
 * The sealed file and the output directory live in a fresh temporary
 * directory per input (on tmpfs when /dev/shm is there):
 * root/in.sealed, root/box/out.
 *
 * Invariants checked (abort on violation): nothing is ever created outside
 * root/box/out and nothing but plain files in it; a failure sets an
 * AMU_ERROR and leaves out empty; a file with a flipped byte or unencrypted
 * bytes never opens. For scripts the harness also parses the plaintext
 * chunks itself (docs/export.md): the library succeeds exactly when that
 * parse does, and then out holds exactly the files it names, byte for byte.
 *
 * The seeds in corpus/sealed/ were written by a throwaway program: real
 * sealed files from amu_export_seal_dir() for this key (flags 00), and
 * scripts (flags 03) of well-formed exports and of the hostile shapes above.
 * two-files, for one, is 03 | 00 05 "a.csv" 05 | 01 05 "hello" | 00 01 "b" 00:
 * a.csv holding "hello", then an empty b.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNK (64 * 1024)

static const guint64 sizes[] = {
	CHUNK, CHUNK + 1, 2 * CHUNK, G_GUINT64_CONSTANT(1) << 32, G_GUINT64_CONSTANT(1) << 63, G_MAXUINT64,
};
static const uint8_t tags[] = {
	crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
	crypto_secretstream_xchacha20poly1305_TAG_PUSH,
	crypto_secretstream_xchacha20poly1305_TAG_REKEY,
	crypto_secretstream_xchacha20poly1305_TAG_FINAL,
};

static uint8_t public_key[crypto_box_PUBLICKEYBYTES];
static GBytes *secret_key;
static const char *tmp_base;

typedef struct {
	GByteArray *plain;
	uint8_t tag;
} Chunk;

static void
chunk_free(gpointer data)
{
	Chunk *chunk = data;

	g_byte_array_unref(chunk->plain);
	g_free(chunk);
}

static void
setup(void)
{
	uint8_t seed[crypto_box_SEEDBYTES] = { 's', 'e', 'a', 'l', 'e', 'd' };
	uint8_t sk[crypto_box_SECRETKEYBYTES];

	if (secret_key != NULL)
		return;
	check(sodium_init() >= 0);
	crypto_box_seed_keypair(public_key, sk, seed);
	secret_key = g_bytes_new(sk, sizeof(sk));
	tmp_base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
}

static int
compare_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the entries of @path, sorted (aborts if it cannot be read) */
static GPtrArray *
list_dir(const char *path)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	check(dir != NULL);
	while ((name = g_dir_read_name(dir)) != NULL)
		g_ptr_array_add(names, g_strdup(name));
	g_dir_close(dir);
	g_ptr_array_sort(names, compare_names);
	return names;
}

static void
check_only(const char *path, const char *name)
{
	g_autoptr(GPtrArray) names = list_dir(path);

	check(names->len == 1 && strcmp(g_ptr_array_index(names, 0), name) == 0);
}

static void
push(GByteArray *file, crypto_secretstream_xchacha20poly1305_state *state, GPtrArray *chunks, const uint8_t *plain,
     size_t len, uint8_t tag)
{
	g_autofree uint8_t *cipher = g_malloc(len + crypto_secretstream_xchacha20poly1305_ABYTES);
	unsigned long long clen = 0;
	Chunk *chunk = g_new0(Chunk, 1);
	uint8_t prefix[4];

	crypto_secretstream_xchacha20poly1305_push(state, cipher, &clen, plain, len, NULL, 0, tag);
	for (int i = 0; i < 4; i++)
		prefix[i] = (uint8_t)(clen >> (8 * i));
	g_byte_array_append(file, prefix, 4);
	g_byte_array_append(file, cipher, (guint)clen);
	chunk->plain = g_byte_array_sized_new((guint)len);
	g_byte_array_append(chunk->plain, plain, (guint)len);
	chunk->tag = tag;
	g_ptr_array_add(chunks, chunk);
}

/* the next byte of the script, 0 past its end */
static uint8_t
next_byte(const uint8_t *data, size_t size, size_t *pos)
{
	return *pos < size ? data[(*pos)++] : 0;
}

static const uint8_t *
next_bytes(const uint8_t *data, size_t size, size_t *pos, size_t *n)
{
	const uint8_t *start = data + *pos;

	*n = MIN(*n, size - *pos);
	*pos += *n;
	return start;
}

/* Builds a sealed file from the script; FALSE if it has unencrypted bytes. */
static gboolean
build(const uint8_t *data, size_t size, gboolean final, GByteArray *file, GPtrArray *chunks)
{
	uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t sealed_key[crypto_box_SEALBYTES + sizeof(key)];
	uint8_t header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	crypto_secretstream_xchacha20poly1305_state state;
	g_autoptr(GByteArray) plain = g_byte_array_new();
	gboolean clean = TRUE;
	size_t pos = 0;

	crypto_secretstream_xchacha20poly1305_keygen(key);
	crypto_box_seal(sealed_key, key, sizeof(key), public_key);
	crypto_secretstream_xchacha20poly1305_init_push(&state, header, key);
	g_byte_array_append(file, (const uint8_t *)AMU_EXPORT_SEAL_MAGIC, 8);
	g_byte_array_append(file, sealed_key, sizeof(sealed_key));
	g_byte_array_append(file, header, sizeof(header));
	while (pos < size) {
		uint8_t c = data[pos++];
		uint8_t tag = tags[(c >> 2) & 3];
		size_t n = next_byte(data, size, &pos);
		const uint8_t *bytes = next_bytes(data, size, &pos, &n);

		g_byte_array_set_size(plain, 0);
		switch (c & 3) {
		case 0: {
			uint8_t s = next_byte(data, size, &pos);
			guint64 file_size = s < 0xf0 ? s : sizes[(s - 0xf0) % G_N_ELEMENTS(sizes)];
			size_t declared = n + ((c & 0x20) ? 1 : 0);
			uint8_t field[8];

			g_byte_array_append(plain, (const uint8_t[]){ declared & 0xff, declared >> 8 }, 2);
			g_byte_array_append(plain, bytes, (guint)n);
			for (int b = 0; b < 8; b++)
				field[b] = (uint8_t)(file_size >> (8 * b));
			g_byte_array_append(plain, field, 8);
			break;
		}
		case 1:
			g_byte_array_append(plain, bytes, (guint)n);
			if (c & 0x10) {
				g_byte_array_set_size(plain, CHUNK + ((c & 0x20) ? 1 : 0));
				memset(plain->data + n, 0, plain->len - n);
			}
			break;
		case 2:
			g_byte_array_append(plain, bytes, (guint)n);
			break;
		case 3:
			g_byte_array_append(file, bytes, (guint)n);
			clean = clean && n == 0;
			continue;
		}
		push(file, &state, chunks, plain->data, plain->len, tag);
	}
	if (final)
		push(file, &state, chunks, NULL, 0, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
	sodium_memzero(key, sizeof(key));
	return clean;
}

/* docs/export.md, independently: the files the chunks describe, name to
 * content, or NULL if they describe no complete export */
static GHashTable *
parse_chunks(GPtrArray *chunks)
{
	g_autoptr(GHashTable) files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
							    (GDestroyNotify)g_byte_array_unref);
	GByteArray *current = NULL;
	guint64 left = 0;

	for (guint i = 0; i < chunks->len; i++) {
		Chunk *chunk = g_ptr_array_index(chunks, i);
		const uint8_t *p = chunk->plain->data;
		size_t len = chunk->plain->len;
		size_t name_len;
		char *name;

		if (len > CHUNK)
			return NULL;
		if (chunk->tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
			if (current != NULL || len != 0 || i + 1 != chunks->len)
				return NULL;
			return g_steal_pointer(&files);
		}
		if (current != NULL) {
			if (len > left)
				return NULL;
			g_byte_array_append(current, p, (guint)len);
			left -= len;
			if (left == 0)
				current = NULL;
			continue;
		}
		if (len < 10)
			return NULL;
		name_len = p[0] | (size_t)p[1] << 8;
		if (name_len + 10 != len || memchr(p + 2, '\0', name_len) != NULL || name_len == 0 || p[2] == '.' ||
		    memchr(p + 2, '/', name_len) != NULL || memchr(p + 2, '\\', name_len) != NULL)
			return NULL;
		name = g_strndup((const char *)p + 2, name_len);
		if (g_hash_table_contains(files, name)) {
			g_free(name);
			return NULL; /* the second one cannot be created */
		}
		left = 0;
		for (int b = 0; b < 8; b++)
			left |= (guint64)p[2 + name_len + b] << (8 * b);
		current = g_byte_array_new();
		g_hash_table_insert(files, name, current);
		if (left == 0)
			current = NULL;
	}
	return NULL; /* no FINAL */
}

static void
check_files(const char *out_dir, GHashTable *expected)
{
	g_autoptr(GPtrArray) names = list_dir(out_dir);

	check(names->len == g_hash_table_size(expected));
	for (guint i = 0; i < names->len; i++) {
		const char *name = g_ptr_array_index(names, i);
		g_autofree char *path = g_build_filename(out_dir, name, NULL);
		g_autofree char *contents = NULL;
		GByteArray *want = g_hash_table_lookup(expected, name);
		gsize len = 0;

		check(want != NULL);
		check(g_file_test(path, G_FILE_TEST_IS_REGULAR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK));
		check(g_file_get_contents(path, &contents, &len, NULL));
		check(len == want->len && (len == 0 || memcmp(contents, want->data, len) == 0));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GByteArray) file = g_byte_array_new();
	g_autoptr(GPtrArray) chunks = g_ptr_array_new_full(0, (GDestroyNotify)chunk_free);
	g_autoptr(GHashTable) expected = NULL;
	g_autofree char *root = NULL;
	g_autofree char *box = NULL;
	g_autofree char *out_dir = NULL;
	g_autofree char *sealed_path = NULL;
	g_autoptr(GPtrArray) names = NULL;
	gboolean scripted, corrupt, clean = FALSE;
	GError *error = NULL;
	size_t pos = 1;
	gboolean ok;

	if (size < 1)
		return 0;
	setup();
	scripted = data[0] & 1;
	corrupt = scripted && (data[0] & 4) != 0;
	if (scripted) {
		size_t offset = 0;
		uint8_t flip = 0;

		if (corrupt) {
			offset = next_byte(data, size, &pos);
			offset |= (size_t)next_byte(data, size, &pos) << 8;
			flip = next_byte(data, size, &pos) | 1;
		}
		clean = build(data + pos, size - pos, (data[0] & 2) != 0, file, chunks);
		if (corrupt)
			file->data[offset % file->len] ^= flip;
	} else {
		g_byte_array_append(file, data + 1, (guint)(size - 1));
	}

	root = g_build_filename(tmp_base, "amu-fuzz-sealed-XXXXXX", NULL);
	check(g_mkdtemp(root) != NULL);
	box = g_build_filename(root, "box", NULL);
	check(g_mkdir(box, 0700) == 0);
	out_dir = g_build_filename(box, "out", NULL);
	sealed_path = g_build_filename(root, "in.sealed", NULL);
	check(g_file_set_contents(sealed_path, (const char *)file->data, file->len, NULL));

	ok = amu_export_open_sealed(sealed_path, secret_key, out_dir, &error);

	/* nothing outside out, and only plain files in it */
	names = list_dir(root);
	check(names->len == 2 && strcmp(g_ptr_array_index(names, 0), "box") == 0 &&
	      strcmp(g_ptr_array_index(names, 1), "in.sealed") == 0);
	if (g_file_test(out_dir, G_FILE_TEST_IS_DIR)) {
		check_only(box, "out");
	} else {
		g_autoptr(GPtrArray) in_box = list_dir(box);
		check(!ok && in_box->len == 0);
	}
	if (!ok) {
		check(error != NULL && error->domain == AMU_ERROR);
		g_clear_error(&error);
		if (g_file_test(out_dir, G_FILE_TEST_IS_DIR)) {
			g_autoptr(GPtrArray) left = list_dir(out_dir);
			check(left->len == 0);
		}
	} else {
		check(error == NULL);
	}
	if (scripted) {
		if (corrupt || !clean)
			check(!ok);
		else {
			expected = parse_chunks(chunks);
			check(ok == (expected != NULL));
		}
		if (ok)
			check_files(out_dir, expected);
	}
	fuzz_remove_tree(root);
	return 0;
}
