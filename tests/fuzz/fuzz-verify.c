/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "amulet/amu-data-export.h"
#include "amulet/amu-error.h"
#include "fuzz-common.h"

/*
 * Verifies an export directory (amu_export_verify) whose manifest the owner
 * signed, so the JSON and the content checks behind the signature are
 * reached.
 *
 * Input: one flags byte, then manifest.json, then files, each introduced by
 * a line "@@FILE <name>" (the first one after a newline); the content runs
 * to the next such line. Before signing, the harness replaces in the
 * manifest "@PK@" by the owner's public key in hex, and "@SHAn@" and
 * "@LENn@" (n a digit) by the SHA-256 in hex and the size of file n, so the
 * digests can match. Files whose names are not plain (empty, starting with
 * a dot, holding '/' or NUL, longer than 100 bytes, manifest.json or
 * manifest.sig) are not written.
 *   flags bit 0: flip a byte of the signature
 *   flags bit 1: pass the owner's key (else NULL: trust the manifest's)
 *   flags bit 2: pass another key (wins over bit 1)
 *   flags bit 3: ask for the summary
 *   flags bit 4: append a space to manifest.json after signing it
 *
 * The export lives in a fresh temporary directory per input (on tmpfs when
 * /dev/shm is there).
 *
 * Invariants checked (abort on violation): a failure sets an AMU_ERROR; a
 * success comes with the right signature, key and untouched manifest, a
 * summary when asked, and then, checked independently with json-glib and
 * libsodium, the manifest lists files whose SHA-256 and size match what is
 * in the directory, and nothing else is there.
 *
 * The seeds in corpus/verify/ are manifests in the shape amu-data-export.c
 * writes (csv, json, fhir, gpx), with their files, written by hand; csv, for
 * one, grants heart_rate by the minute and lists heart_rate.csv with two
 * records.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILE_MARK "@@FILE "
#define MAX_FILES 10

static uint8_t owner_pk[crypto_sign_PUBLICKEYBYTES];
static uint8_t owner_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t other_pk[crypto_sign_PUBLICKEYBYTES];
static char owner_hex[crypto_sign_PUBLICKEYBYTES * 2 + 1];
static const char *tmp_base;

static void
setup(void)
{
	uint8_t seed[crypto_sign_SEEDBYTES] = { 'o', 'w', 'n', 'e', 'r' };
	uint8_t other_sk[crypto_sign_SECRETKEYBYTES];

	if (tmp_base != NULL)
		return;
	check(sodium_init() >= 0);
	crypto_sign_seed_keypair(owner_pk, owner_sk, seed);
	seed[0] = 'O';
	crypto_sign_seed_keypair(other_pk, other_sk, seed);
	sodium_bin2hex(owner_hex, sizeof(owner_hex), owner_pk, sizeof(owner_pk));
	tmp_base = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
}

static char *
sha256_hex(const uint8_t *data, size_t len)
{
	uint8_t digest[crypto_hash_sha256_BYTES];
	char *hex = g_malloc(sizeof(digest) * 2 + 1);

	crypto_hash_sha256(digest, data, len);
	sodium_bin2hex(hex, sizeof(digest) * 2 + 1, digest, sizeof(digest));
	return hex;
}

static gboolean
plain_name(const char *name, size_t len)
{
	return len > 0 && len <= 100 && name[0] != '.' && memchr(name, '/', len) == NULL &&
	       memchr(name, '\0', len) == NULL && !(len == 13 && memcmp(name, "manifest.json", 13) == 0) &&
	       !(len == 12 && memcmp(name, "manifest.sig", 12) == 0);
}

/* the manifest with its placeholders filled in */
static GString *
fill_manifest(const uint8_t *text, size_t len, GPtrArray *digests, GArray *sizes)
{
	GString *out = g_string_sized_new(len + 64);
	size_t i = 0;

	while (i < len) {
		const uint8_t *rest = text + i;
		size_t left = len - i;
		guint n;

		if (left >= 4 && memcmp(rest, "@PK@", 4) == 0) {
			g_string_append(out, owner_hex);
			i += 4;
			continue;
		}
		if (left >= 6 && memcmp(rest, "@SHA", 4) == 0 && g_ascii_isdigit(rest[4]) && rest[5] == '@') {
			n = rest[4] - '0';
			g_string_append(out, n < digests->len ? (const char *)g_ptr_array_index(digests, n) : "");
			i += 6;
			continue;
		}
		if (left >= 6 && memcmp(rest, "@LEN", 4) == 0 && g_ascii_isdigit(rest[4]) && rest[5] == '@') {
			n = rest[4] - '0';
			g_string_append_printf(out, "%" G_GUINT64_FORMAT,
					       n < sizes->len ? g_array_index(sizes, guint64, n) : 0);
			i += 6;
			continue;
		}
		g_string_append_c(out, (char)text[i++]);
	}
	return out;
}

/* Writes the files after the manifest; returns the manifest's length. */
static size_t
write_files(const char *dir, const uint8_t *body, size_t size, GPtrArray *digests, GArray *sizes)
{
	const uint8_t *mark = memmem(body, size, "\n" FILE_MARK, strlen(FILE_MARK) + 1);
	size_t manifest_len = mark != NULL ? (size_t)(mark - body) : size;
	size_t pos = manifest_len;

	while (pos < size && digests->len < MAX_FILES) {
		const uint8_t *name = body + pos + 1 + strlen(FILE_MARK);
		const uint8_t *name_end;
		const uint8_t *content;
		const uint8_t *next;
		size_t content_len;
		guint64 file_size;

		if (name > body + size)
			break;
		name_end = memchr(name, '\n', size - (size_t)(name - body));
		if (name_end == NULL)
			break;
		content = name_end + 1;
		next = memmem(content, size - (size_t)(content - body), "\n" FILE_MARK, strlen(FILE_MARK) + 1);
		content_len = (next != NULL ? next : body + size) - content;
		if (plain_name((const char *)name, (size_t)(name_end - name))) {
			g_autofree char *file_name = g_strndup((const char *)name, (size_t)(name_end - name));
			g_autofree char *path = g_build_filename(dir, file_name, NULL);

			check(g_file_set_contents(path, (const char *)content, (gssize)content_len, NULL));
		}
		g_ptr_array_add(digests, sha256_hex(content, content_len));
		file_size = content_len;
		g_array_append_val(sizes, file_size);
		pos = next != NULL ? (size_t)(next - body) : size;
	}
	return manifest_len;
}

/* what a success promises, checked without amu-export-verify.c */
static void
check_export(const char *dir, const char *manifest, size_t len)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GHashTable) listed = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GDir) d = NULL;
	JsonNode *files_node;
	JsonArray *files;
	const char *name;

	check(json_parser_load_from_data(parser, manifest, (gssize)len, NULL));
	check(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)));
	files_node = json_object_get_member(json_node_get_object(json_parser_get_root(parser)), "files");
	check(files_node != NULL && JSON_NODE_HOLDS_ARRAY(files_node));
	files = json_node_get_array(files_node);
	for (guint i = 0; i < json_array_get_length(files); i++) {
		JsonNode *file_node = json_array_get_element(files, i);
		JsonObject *file;
		JsonNode *member;
		const char *file_name, *sha;
		g_autofree char *path = NULL;
		g_autofree char *contents = NULL;
		g_autofree char *actual = NULL;
		gsize file_len = 0;

		check(JSON_NODE_HOLDS_OBJECT(file_node));
		file = json_node_get_object(file_node);
		member = json_object_get_member(file, "name");
		check(member != NULL && JSON_NODE_HOLDS_VALUE(member) && json_node_get_value_type(member) == G_TYPE_STRING);
		file_name = json_node_get_string(member);
		member = json_object_get_member(file, "sha256");
		check(member != NULL && JSON_NODE_HOLDS_VALUE(member) && json_node_get_value_type(member) == G_TYPE_STRING);
		sha = json_node_get_string(member);
		member = json_object_get_member(file, "bytes");
		/* read as json_object_get_int_member_with_default() would */
		check(member != NULL && JSON_NODE_HOLDS_VALUE(member));
		path = g_build_filename(dir, file_name, NULL);
		check(g_file_test(path, G_FILE_TEST_IS_REGULAR));
		check(g_file_get_contents(path, &contents, &file_len, NULL));
		actual = sha256_hex((const uint8_t *)contents, file_len);
		check(strcmp(actual, sha) == 0);
		check(json_node_get_int(member) == (gint64)file_len);
		g_hash_table_add(listed, (gpointer)file_name);
	}
	d = g_dir_open(dir, 0, NULL);
	check(d != NULL);
	while ((name = g_dir_read_name(d)) != NULL)
		check(strcmp(name, "manifest.json") == 0 || strcmp(name, "manifest.sig") == 0 ||
		      g_hash_table_contains(listed, name));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GPtrArray) digests = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) sizes = g_array_new(FALSE, FALSE, sizeof(guint64));
	g_autoptr(GString) manifest = NULL;
	g_autoptr(GBytes) key = NULL;
	g_autofree char *dir = NULL;
	g_autofree char *path = NULL;
	g_autofree char *signature_b64 = NULL;
	g_autofree char *summary = NULL;
	uint8_t signature[crypto_sign_BYTES];
	GError *error = NULL;
	size_t manifest_len;
	uint8_t flags;
	gboolean ok;

	if (size < 1)
		return 0;
	setup();
	flags = data[0];
	dir = g_build_filename(tmp_base, "amu-fuzz-verify-XXXXXX", NULL);
	check(g_mkdtemp(dir) != NULL);

	manifest_len = write_files(dir, data + 1, size - 1, digests, sizes);
	manifest = fill_manifest(data + 1, manifest_len, digests, sizes);
	crypto_sign_detached(signature, NULL, (const uint8_t *)manifest->str, manifest->len, owner_sk);
	if (flags & 1)
		signature[(manifest->len + flags) % sizeof(signature)] ^= 0x20;
	signature_b64 = g_base64_encode(signature, sizeof(signature));
	path = g_build_filename(dir, "manifest.sig", NULL);
	check(g_file_set_contents(path, signature_b64, -1, NULL));
	g_free(path);
	path = g_build_filename(dir, "manifest.json", NULL);
	check(g_file_set_contents(path, manifest->str, (gssize)manifest->len, NULL));
	if (flags & 16) {
		g_autoptr(GString) longer = g_string_new_len(manifest->str, (gssize)manifest->len);

		g_string_append_c(longer, ' ');
		check(g_file_set_contents(path, longer->str, (gssize)longer->len, NULL));
	}
	if (flags & 4)
		key = g_bytes_new(other_pk, sizeof(other_pk));
	else if (flags & 2)
		key = g_bytes_new(owner_pk, sizeof(owner_pk));

	ok = amu_export_verify(dir, key, (flags & 8) ? &summary : NULL, &error);
	if (!ok) {
		check(error != NULL && error->domain == AMU_ERROR && summary == NULL);
		g_error_free(error);
	} else {
		check(error == NULL);
		check((flags & (1 | 4 | 16)) == 0);
		check(((flags & 8) != 0) == (summary != NULL));
		check_export(dir, manifest->str, manifest->len);
	}
	fuzz_remove_tree(dir);
	return 0;
}
