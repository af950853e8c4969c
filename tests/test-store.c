/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amu-store.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

#define DB_NAME "amulet.db"

/* AMU_ASSERT_ERROR's parameter `code` also replaces the member name in
 * `(err)->code`, so it only compiles when its argument is spelled `code`. */
#define ASSERT_ERROR(err, expected)                                                                \
	do {                                                                                       \
		const int code = (expected);                                                       \
		AMU_ASSERT_ERROR(err, code);                                                       \
	} while (0)

/* A scratch directory; the store lives in a subdirectory the store itself
 * must create, so its mode is the store's doing. */
typedef struct {
	char *root;
	char *dir;
	char *db_path;
	char *key_path;
} Scratch;

static void
scratch_free(Scratch *scratch)
{
	amu_test_remove_tree(scratch->root);
	g_free(scratch->root);
	g_free(scratch->dir);
	g_free(scratch->db_path);
	g_free(scratch->key_path);
	g_free(scratch);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Scratch, scratch_free)

static Scratch *
scratch_new(void)
{
	Scratch *scratch = g_new0(Scratch, 1);

	scratch->root = g_dir_make_tmp("amu-store-XXXXXX", NULL);
	g_assert(scratch->root != NULL);
	scratch->dir = g_build_filename(scratch->root, "data", NULL);
	scratch->db_path = g_build_filename(scratch->dir, DB_NAME, NULL);
	scratch->key_path = g_build_filename(scratch->dir, AMU_STORE_KEY_FILE, NULL);
	return scratch;
}

static AmuStore *
open_ok(Scratch *scratch)
{
	g_autoptr(GError) error = NULL;
	AmuStore *store = amu_store_open(scratch->dir, DB_NAME, &error);

	if (error != NULL)
		g_printerr("  open: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(store);
	return store;
}

static AmuStore *
open_with_key_ok(Scratch *scratch, const uint8_t key[AMU_STORE_KEYBYTES])
{
	g_autoptr(GError) error = NULL;
	AmuStore *store = amu_store_open_with_key(scratch->dir, DB_NAME, key, &error);

	if (error != NULL)
		g_printerr("  open: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(store);
	return store;
}

static void
put_ok(AmuStore *store, const char *kind, const char *id, const char *value)
{
	g_autoptr(GError) error = NULL;

	CU_ASSERT_TRUE(amu_store_put(store, kind, id, value, strlen(value), &error));
	CU_ASSERT_PTR_NULL(error);
}

static gboolean
get_equals(AmuStore *store, const char *kind, const char *id, const char *value)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) got = amu_store_get(store, kind, id, &error);

	if (got == NULL) {
		g_printerr("  get %s/%s: %s\n", kind, id, error->message);
		return FALSE;
	}
	return g_bytes_get_size(got) == strlen(value) &&
	       memcmp(g_bytes_get_data(got, NULL), value, strlen(value)) == 0;
}

static gboolean
bytes_contain(const char *haystack, size_t size, const void *needle, size_t len)
{
	for (size_t i = 0; len <= size && i <= size - len; i++) {
		if (memcmp(haystack + i, needle, len) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Whether the database file or its write-ahead log holds @needle. */
static gboolean
files_contain(const char *db_path, const void *needle, size_t len)
{
	const char *suffixes[] = { "", "-wal" };

	for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
		g_autofree char *path = g_strconcat(db_path, suffixes[i], NULL);
		g_autofree char *contents = NULL;
		gsize size = 0;

		if (g_file_get_contents(path, &contents, &size, NULL) &&
		    bytes_contain(contents, size, needle, len))
			return TRUE;
	}
	return FALSE;
}

/* Replaces the sealed column of one row with @sealed. */
static void
set_sealed(AmuStore *store, const char *id, const void *sealed, size_t len)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store),
						 "UPDATE records SET sealed = ?1 WHERE id = ?2", -1,
						 &stmt, NULL),
			      SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, sealed, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_text(stmt, 2, id, -1, SQLITE_STATIC);
	CU_ASSERT_EQUAL(sqlite3_step(stmt), SQLITE_DONE);
}

static GBytes *
query_blob(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return g_bytes_new(sqlite3_column_blob(stmt, 0), (gsize)sqlite3_column_bytes(stmt, 0));
}

static char *
query_text(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return g_strdup((const char *)sqlite3_column_text(stmt, 0));
}

static int
query_int(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return sqlite3_column_int(stmt, 0);
}

static void
test_create_and_reopen(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) ids = NULL;
	AmuStore *extra;

	CU_ASSERT_TRUE(amu_store_get_schema_version(store) >= 1);
	CU_ASSERT_STRING_EQUAL(amu_store_get_dir(store), scratch->dir);
	put_ok(store, "bond", "aa:bb", "bond one");
	put_ok(store, "bond", "cc:dd", "bond two");
	put_ok(store, "bond", "aa:bb", "bond one, replaced");
	extra = amu_store_ref(store);
	amu_store_unref(extra);
	g_clear_pointer(&store, amu_store_unref);

	store = open_ok(scratch);
	CU_ASSERT_TRUE(get_equals(store, "bond", "aa:bb", "bond one, replaced"));
	CU_ASSERT_TRUE(get_equals(store, "bond", "cc:dd", "bond two"));
	ids = amu_store_list_ids(store, "bond", &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
	CU_ASSERT_EQUAL_FATAL(ids->len, 2);
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 0), "aa:bb");
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 1), "cc:dd");
	amu_store_unref(NULL);
}

static void
test_file_modes(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autofree char *key = NULL;
	gsize key_len = 0;
	struct stat st;

	CU_ASSERT_STRING_EQUAL(amu_store_get_db_path(store), scratch->db_path);
	CU_ASSERT_EQUAL_FATAL(g_stat(scratch->key_path, &st), 0);
	CU_ASSERT_TRUE(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	CU_ASSERT_EQUAL_FATAL(g_stat(scratch->dir, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
	CU_ASSERT_TRUE(g_file_get_contents(scratch->key_path, &key, &key_len, NULL));
	CU_ASSERT_EQUAL(key_len, AMU_STORE_KEYBYTES);
	/* Only the key and the database (and its WAL companions): no leftover
	 * temporary key file. */
	{
		g_autoptr(GDir) dir = g_dir_open(scratch->dir, 0, NULL);
		const char *name;

		CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
		while ((name = g_dir_read_name(dir)) != NULL)
			CU_ASSERT_TRUE(g_strcmp0(name, AMU_STORE_KEY_FILE) == 0 ||
				       g_str_has_prefix(name, DB_NAME));
	}
}

static void
test_key_readable_by_others(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(AmuStore) again = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *hint = g_strdup_printf("chmod 600 %s", scratch->key_path);

	g_clear_pointer(&store, amu_store_unref);
	CU_ASSERT_EQUAL_FATAL(g_chmod(scratch->key_path, 0644), 0);
	again = amu_store_open(scratch->dir, DB_NAME, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, hint));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "0644"));

	/* Following the hint fixes it. */
	CU_ASSERT_EQUAL_FATAL(g_chmod(scratch->key_path, 0600), 0);
	store = open_ok(scratch);
}

static void
test_key_damaged_or_missing(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(AmuStore) again = NULL;
	g_autoptr(GError) error = NULL;

	g_clear_pointer(&store, amu_store_unref);
	CU_ASSERT_EQUAL_FATAL(truncate(scratch->key_path, 16), 0);
	again = amu_store_open(scratch->dir, DB_NAME, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "16 bytes"));
	g_clear_error(&error);

	/* A missing key with an existing database is not replaced by a new one. */
	CU_ASSERT_EQUAL_FATAL(g_unlink(scratch->key_path), 0);
	again = amu_store_open(scratch->dir, DB_NAME, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_WRONG_MASTER_KEY);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "missing"));
	CU_ASSERT_FALSE(g_file_test(scratch->key_path, G_FILE_TEST_EXISTS));
}

static void
test_wrong_master_key(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = NULL;
	g_autoptr(AmuStore) again = NULL;
	g_autoptr(GError) error = NULL;
	uint8_t key1[AMU_STORE_KEYBYTES];
	uint8_t key2[AMU_STORE_KEYBYTES];
	g_autofree char *file_key = NULL;
	gsize file_key_len = 0;
	struct stat before, after;

	memset(key1, 0x11, sizeof(key1));
	memset(key2, 0x22, sizeof(key2));
	store = open_with_key_ok(scratch, key1);
	put_ok(store, "profile", "me", "Ada, born 1815");
	g_clear_pointer(&store, amu_store_unref);
	CU_ASSERT_FALSE(g_file_test(scratch->key_path, G_FILE_TEST_EXISTS));
	CU_ASSERT_EQUAL_FATAL(g_stat(scratch->db_path, &before), 0);

	again = amu_store_open_with_key(scratch->dir, DB_NAME, key2, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_WRONG_MASTER_KEY);
	/* Nothing was touched: the right key still opens it, data intact. */
	CU_ASSERT_EQUAL_FATAL(g_stat(scratch->db_path, &after), 0);
	CU_ASSERT_EQUAL(before.st_size, after.st_size);
	CU_ASSERT_EQUAL(before.st_mtime, after.st_mtime);
	store = open_with_key_ok(scratch, key1);
	CU_ASSERT_TRUE(get_equals(store, "profile", "me", "Ada, born 1815"));
	g_clear_pointer(&store, amu_store_unref);
	g_clear_error(&error);

	/* A store made with master.key opens with that key given explicitly. */
	g_free(scratch->dir);
	scratch->dir = g_build_filename(scratch->root, "other", NULL);
	store = amu_store_open(scratch->dir, DB_NAME, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(store);
	put_ok(store, "profile", "me", "Grace");
	g_clear_pointer(&store, amu_store_unref);
	g_free(scratch->key_path);
	scratch->key_path = g_build_filename(scratch->dir, AMU_STORE_KEY_FILE, NULL);
	CU_ASSERT_TRUE_FATAL(
		g_file_get_contents(scratch->key_path, &file_key, &file_key_len, NULL));
	CU_ASSERT_EQUAL_FATAL(file_key_len, AMU_STORE_KEYBYTES);
	store = open_with_key_ok(scratch, (const uint8_t *)file_key);
	CU_ASSERT_TRUE(get_equals(store, "profile", "me", "Grace"));
	g_clear_pointer(&store, amu_store_unref);
	again = amu_store_open_with_key(scratch->dir, DB_NAME, key1, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_WRONG_MASTER_KEY);
}

static void
test_swapped_record(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) got = NULL;

	put_ok(store, "bond", "alice", "alice's key");
	put_ok(store, "bond", "mallory", "mallory's key");
	CU_ASSERT_TRUE(amu_store_exec(store,
				      "UPDATE records SET sealed = (SELECT sealed FROM records "
				      "WHERE id = 'mallory') WHERE id = 'alice'",
				      &error));
	got = amu_store_get(store, "bond", "alice", &error);
	CU_ASSERT_PTR_NULL(got);
	ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "bond record alice"));
	CU_ASSERT_TRUE(get_equals(store, "bond", "mallory", "mallory's key"));
	g_clear_error(&error);

	/* The same value moved to another kind fails too. */
	CU_ASSERT_TRUE(amu_store_exec(
		store, "UPDATE records SET kind = 'profile' WHERE id = 'mallory'", &error));
	got = amu_store_get(store, "profile", "mallory", &error);
	CU_ASSERT_PTR_NULL(got);
	ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
}

static void
test_flipped_byte(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) sealed = NULL;
	g_autoptr(GBytes) got = NULL;
	g_autofree uint8_t *copy = NULL;
	size_t len = 0;

	put_ok(store, "bond", "alice", "alice's long term key");
	sealed = query_blob(store, "SELECT sealed FROM records WHERE id = 'alice'");
	len = g_bytes_get_size(sealed);
	CU_ASSERT_EQUAL(len, AMU_STORE_SEAL_OVERHEAD + strlen("alice's long term key"));

	/* One flipped bit anywhere: nonce, ciphertext, tag. */
	for (size_t offset = 0; offset < len; offset += 7) {
		copy = g_memdup2(g_bytes_get_data(sealed, NULL), len);
		copy[offset] ^= 0x01;
		set_sealed(store, "alice", copy, len);
		g_clear_pointer(&copy, g_free);
		got = amu_store_get(store, "bond", "alice", &error);
		CU_ASSERT_PTR_NULL(got);
		ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
		g_clear_error(&error);
		g_clear_pointer(&got, g_bytes_unref);
	}
	/* Truncated below the nonce and tag. */
	set_sealed(store, "alice", g_bytes_get_data(sealed, NULL), 10);
	got = amu_store_get(store, "bond", "alice", &error);
	CU_ASSERT_PTR_NULL(got);
	ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	g_clear_error(&error);
	/* Restored, it opens again. */
	set_sealed(store, "alice", g_bytes_get_data(sealed, NULL), len);
	CU_ASSERT_TRUE(get_equals(store, "bond", "alice", "alice's long term key"));
}

static void
test_no_plaintext_on_disk(void)
{
	static const char secret[] = "heart rate 61 bpm at 03:12, Rue des Martyrs";
#define CONTROL "CONTROL-MARKER-stored-in-the-clear"
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autofree char *key = NULL;
	g_autofree char *wal_path = g_strconcat(scratch->db_path, "-wal", NULL);
	gsize key_len = 0;
	struct stat st;

	put_ok(store, "profile", "me", secret);
	/* The scan itself works: a value stored in the clear is found. */
	CU_ASSERT_TRUE(amu_store_exec(store,
				      "CREATE TABLE clear(x TEXT);"
				      "INSERT INTO clear VALUES('" CONTROL "')",
				      &error));
	CU_ASSERT_TRUE(files_contain(scratch->db_path, CONTROL, strlen(CONTROL)));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, secret, strlen(secret)));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, "Rue des Martyrs", 15));
	/* So far the new rows live in the write-ahead log... */
	CU_ASSERT_TRUE(g_stat(wal_path, &st) == 0 && st.st_size > 0);

	/* ...and after a checkpoint in the database file. */
	CU_ASSERT_TRUE(amu_store_checkpoint(store, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_TRUE(g_stat(wal_path, &st) != 0 || st.st_size == 0);
	CU_ASSERT_TRUE(files_contain(scratch->db_path, CONTROL, strlen(CONTROL)));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, secret, strlen(secret)));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, "Rue des Martyrs", 15));

	/* Nor is the master key. */
	CU_ASSERT_TRUE(g_file_get_contents(scratch->key_path, &key, &key_len, NULL));
	CU_ASSERT_FALSE(files_contain(scratch->db_path, key, key_len));
	CU_ASSERT_TRUE(get_equals(store, "profile", "me", secret));
#undef CONTROL
}

static void
test_data_keys(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) wrapped = NULL;
	uint8_t *key = sodium_malloc(AMU_STORE_KEYBYTES);
	uint8_t *again = sodium_malloc(AMU_STORE_KEYBYTES);
	uint8_t *other = sodium_malloc(AMU_STORE_KEYBYTES);

	CU_ASSERT_TRUE(amu_store_create_data_key(store, "device-1", key, &error));
	CU_ASSERT_TRUE(amu_store_create_data_key(store, "device-2", other, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_NOT_EQUAL(memcmp(key, other, AMU_STORE_KEYBYTES), 0);
	CU_ASSERT_TRUE(amu_store_get_data_key(store, "device-1", again, &error));
	CU_ASSERT_EQUAL(memcmp(key, again, AMU_STORE_KEYBYTES), 0);

	/* A second key would silently shred the first one's data. */
	CU_ASSERT_FALSE(amu_store_create_data_key(store, "device-1", again, &error));
	ASSERT_ERROR(error, AMU_ERROR_EXISTS);
	g_clear_error(&error);
	CU_ASSERT_TRUE(amu_store_get_data_key(store, "device-1", again, &error));
	CU_ASSERT_EQUAL(memcmp(key, again, AMU_STORE_KEYBYTES), 0);

	/* Survives a reopen; the raw key is never on disk, the wrapped one is. */
	g_clear_pointer(&store, amu_store_unref);
	store = open_ok(scratch);
	CU_ASSERT_TRUE(amu_store_get_data_key(store, "device-1", again, &error));
	CU_ASSERT_EQUAL(memcmp(key, again, AMU_STORE_KEYBYTES), 0);
	CU_ASSERT_FALSE(files_contain(scratch->db_path, key, AMU_STORE_KEYBYTES));
	wrapped = query_blob(store, "SELECT wrapped FROM data_keys WHERE device_id = 'device-1'");
	CU_ASSERT_EQUAL(g_bytes_get_size(wrapped), AMU_STORE_SEAL_OVERHEAD + AMU_STORE_KEYBYTES);
	CU_ASSERT_TRUE(files_contain(scratch->db_path, g_bytes_get_data(wrapped, NULL),
				     g_bytes_get_size(wrapped)));

	/* Destroy inside a transaction is refused: the log could not be purged. */
	CU_ASSERT_TRUE(amu_store_begin(store, &error));
	CU_ASSERT_FALSE(amu_store_destroy_data_key(store, "device-1", &error));
	ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	g_clear_error(&error);
	amu_store_rollback(store);

	CU_ASSERT_TRUE(amu_store_destroy_data_key(store, "device-1", &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_FALSE(amu_store_get_data_key(store, "device-1", again, &error));
	ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	g_clear_error(&error);
	CU_ASSERT_FALSE(files_contain(scratch->db_path, g_bytes_get_data(wrapped, NULL),
				      g_bytes_get_size(wrapped)));
	/* Also not after the store is closed and the log folded back in. */
	g_clear_pointer(&store, amu_store_unref);
	CU_ASSERT_FALSE(files_contain(scratch->db_path, g_bytes_get_data(wrapped, NULL),
				      g_bytes_get_size(wrapped)));
	store = open_ok(scratch);
	CU_ASSERT_FALSE(amu_store_get_data_key(store, "device-1", again, &error));
	ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	g_clear_error(&error);
	/* Destroying again is fine (a failed checkpoint can be retried); the
	 * other device keeps its key. */
	CU_ASSERT_TRUE(amu_store_destroy_data_key(store, "device-1", &error));
	CU_ASSERT_TRUE(amu_store_get_data_key(store, "device-2", again, &error));
	CU_ASSERT_EQUAL(memcmp(other, again, AMU_STORE_KEYBYTES), 0);

	/* A wrapped key moved to another device does not unwrap. */
	CU_ASSERT_TRUE(
		amu_store_exec(store, "UPDATE data_keys SET device_id = 'device-3'", &error));
	CU_ASSERT_FALSE(amu_store_get_data_key(store, "device-3", again, &error));
	ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	sodium_free(key);
	sodium_free(again);
	sodium_free(other);
}

static void
test_newer_schema(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(AmuStore) again = NULL;
	g_autoptr(GError) error = NULL;
	int known = amu_store_get_schema_version(store);
	g_autofree char *sql = g_strdup_printf("UPDATE schema_version SET version = %d", known + 3);
	g_autofree char *newer = g_strdup_printf("schema %d", known + 3);
	g_autofree char *knows = g_strdup_printf("knows %d", known);

	put_ok(store, "bond", "x", "value");
	CU_ASSERT_TRUE(amu_store_exec(store, sql, &error));
	g_clear_pointer(&store, amu_store_unref);

	again = amu_store_open(scratch->dir, DB_NAME, &error);
	CU_ASSERT_PTR_NULL(again);
	ASSERT_ERROR(error, AMU_ERROR_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, newer));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, knows));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "upgrade Amulet"));
}

static void
test_migrations_run_once(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GBytes) check_before = NULL;
	g_autoptr(GBytes) check_after = NULL;
	g_autofree char *journal_mode = NULL;
	int version = amu_store_get_schema_version(store);

	put_ok(store, "bond", "x", "value");
	check_before = query_blob(store, "SELECT value FROM meta WHERE name = 'key-check'");
	g_clear_pointer(&store, amu_store_unref);

	store = open_ok(scratch);
	g_clear_pointer(&store, amu_store_unref);
	store = open_ok(scratch);
	CU_ASSERT_EQUAL(amu_store_get_schema_version(store), version);
	CU_ASSERT_EQUAL(query_int(store, "SELECT count(*) FROM schema_version"), 1);
	CU_ASSERT_EQUAL(query_int(store, "SELECT version FROM schema_version"), version);
	/* The key check (random nonce) was written once, not again. */
	check_after = query_blob(store, "SELECT value FROM meta WHERE name = 'key-check'");
	CU_ASSERT_TRUE(g_bytes_equal(check_before, check_after));
	CU_ASSERT_TRUE(get_equals(store, "bond", "x", "value"));
	CU_ASSERT_EQUAL(query_int(store, "SELECT count(*) FROM records"), 1);
	CU_ASSERT_EQUAL(query_int(store, "PRAGMA foreign_keys"), 1);
	CU_ASSERT_EQUAL(query_int(store, "PRAGMA secure_delete"), 1);
	CU_ASSERT_EQUAL(query_int(store, "PRAGMA synchronous"), 2); /* FULL */
	CU_ASSERT_EQUAL(query_int(store, "PRAGMA busy_timeout"), 5000);
	journal_mode = query_text(store, "PRAGMA journal_mode");
	CU_ASSERT_STRING_EQUAL(journal_mode, "wal");
}

static void
test_read_only(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	uint8_t key[AMU_STORE_KEYBYTES];

	put_ok(store, "bond", "x", "value");
	/* Root ignores file modes, so make the connection itself read-only. */
	CU_ASSERT_TRUE(amu_store_exec(store, "PRAGMA query_only = 1", &error));
	CU_ASSERT_FALSE(amu_store_put(store, "bond", "y", "v", 1, &error));
	ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, scratch->db_path));
	g_clear_error(&error);
	CU_ASSERT_FALSE(amu_store_create_data_key(store, "device", key, &error));
	ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
	g_clear_error(&error);
	CU_ASSERT_FALSE(amu_store_begin(store, &error) &&
			amu_store_delete(store, "bond", "x", &error));
	ASSERT_ERROR(error, AMU_ERROR_PERMISSION_DENIED);
	amu_store_rollback(store);
	g_clear_error(&error);
	/* Reading still works. */
	CU_ASSERT_TRUE(get_equals(store, "bond", "x", "value"));
}

static void
test_disk_full(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autofree char *sql = NULL;
	char value[2000];
	int stored = 0;

	memset(value, 'v', sizeof(value));
	value[sizeof(value) - 1] = '\0';
	sql = g_strdup_printf("PRAGMA max_page_count = %d",
			      query_int(store, "PRAGMA page_count") + 4);
	CU_ASSERT_TRUE(amu_store_exec(store, sql, &error));
	for (int i = 0; i < 200; i++) {
		g_autofree char *id = g_strdup_printf("sample-%03d", i);
		if (!amu_store_put(store, "sample", id, value, sizeof(value), &error))
			break;
		stored++;
	}
	CU_ASSERT_TRUE(stored > 0);
	CU_ASSERT_TRUE(stored < 200);
	ASSERT_ERROR(error, AMU_ERROR_NO_SPACE);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "full"));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, scratch->dir));
	g_clear_error(&error);

	/* The same inside a transaction: it ends, and earlier commits stay. */
	if (amu_store_begin(store, &error)) {
		CU_ASSERT_FALSE(
			amu_store_put(store, "sample", "in-tx", value, sizeof(value), &error));
		ASSERT_ERROR(error, AMU_ERROR_NO_SPACE);
		amu_store_rollback(store);
	}
	g_clear_error(&error);

	for (int i = 0; i < stored; i++) {
		g_autofree char *id = g_strdup_printf("sample-%03d", i);
		g_autoptr(GBytes) got = amu_store_get(store, "sample", id, &error);
		CU_ASSERT_PTR_NOT_NULL(got);
		CU_ASSERT_TRUE(got != NULL && g_bytes_get_size(got) == sizeof(value));
	}
	g_clear_pointer(&store, amu_store_unref);
	store = open_ok(scratch);
	CU_ASSERT_EQUAL(query_int(store, "SELECT count(*) FROM records WHERE kind = 'sample'"),
			stored);
}

static void
test_records(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) ids = NULL;
	g_autoptr(GBytes) got = NULL;

	put_ok(store, "bond", "zz", "3");
	put_ok(store, "bond", "aa", "1");
	put_ok(store, "bond", "mm", "2");
	put_ok(store, "lockout", "pairing", "");
	CU_ASSERT_TRUE(get_equals(store, "lockout", "pairing", ""));
	ids = amu_store_list_ids(store, "bond", &error);
	CU_ASSERT_EQUAL_FATAL(ids->len, 3);
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 0), "aa");
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 1), "mm");
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(ids, 2), "zz");
	g_clear_pointer(&ids, g_ptr_array_unref);

	got = amu_store_get(store, "bond", "nope", &error);
	CU_ASSERT_PTR_NULL(got);
	ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	g_clear_error(&error);
	CU_ASSERT_TRUE(amu_store_delete(store, "bond", "mm", &error));
	CU_ASSERT_TRUE(amu_store_delete(store, "bond", "mm", &error)); /* absent: fine */
	got = amu_store_get(store, "bond", "mm", &error);
	ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	g_clear_error(&error);
	CU_ASSERT_TRUE(amu_store_delete_kind(store, "bond", &error));
	ids = amu_store_list_ids(store, "bond", &error);
	CU_ASSERT_EQUAL(ids->len, 0);
	CU_ASSERT_TRUE(get_equals(store, "lockout", "pairing", ""));
	CU_ASSERT_FALSE(amu_store_put(store, "", "x", "v", 1, &error));
	ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
}

static void
test_transactions(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) got = NULL;

	CU_ASSERT_TRUE(amu_store_begin(store, &error));
	put_ok(store, "bond", "a", "rolled back");
	amu_store_rollback(store);
	amu_store_rollback(store); /* harmless without a transaction */
	got = amu_store_get(store, "bond", "a", &error);
	ASSERT_ERROR(error, AMU_ERROR_NOT_FOUND);
	g_clear_error(&error);

	CU_ASSERT_TRUE(amu_store_begin(store, &error));
	put_ok(store, "bond", "a", "committed");
	put_ok(store, "bond", "b", "committed too");
	CU_ASSERT_TRUE(amu_store_commit(store, &error));
	CU_ASSERT_PTR_NULL(error);
	g_clear_pointer(&store, amu_store_unref);
	store = open_ok(scratch);
	CU_ASSERT_TRUE(get_equals(store, "bond", "a", "committed"));
	CU_ASSERT_TRUE(get_equals(store, "bond", "b", "committed too"));
}

static void
test_raw_seal(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = open_ok(scratch);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) sealed = NULL;
	g_autoptr(GBytes) sealed2 = NULL;
	g_autoptr(GBytes) plain = NULL;
	static const char ad[] = "telemetry\0dev-1\0block-7";

	sealed = amu_store_seal(store, ad, sizeof(ad), "samples", 7);
	sealed2 = amu_store_seal(store, ad, sizeof(ad), "samples", 7);
	CU_ASSERT_EQUAL(g_bytes_get_size(sealed), 7 + AMU_STORE_SEAL_OVERHEAD);
	CU_ASSERT_FALSE(g_bytes_equal(sealed, sealed2)); /* random nonces */
	plain = amu_store_unseal(store, ad, sizeof(ad), g_bytes_get_data(sealed, NULL),
				 g_bytes_get_size(sealed), &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
	CU_ASSERT_EQUAL(g_bytes_get_size(plain), 7);
	CU_ASSERT_EQUAL(memcmp(g_bytes_get_data(plain, NULL), "samples", 7), 0);
	g_clear_pointer(&plain, g_bytes_unref);

	/* Other associated data (another block) does not open it. */
	plain = amu_store_unseal(store, ad, sizeof(ad) - 1, g_bytes_get_data(sealed, NULL),
				 g_bytes_get_size(sealed), &error);
	CU_ASSERT_PTR_NULL(plain);
	ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
}

static void
test_not_a_database(void)
{
	g_autoptr(Scratch) scratch = scratch_new();
	g_autoptr(AmuStore) store = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *garbage = g_strnfill(8192, 'x');
	uint8_t key[AMU_STORE_KEYBYTES] = { 0 };

	CU_ASSERT_EQUAL_FATAL(g_mkdir(scratch->dir, 0700), 0);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(scratch->db_path, garbage, 8192, NULL));
	store = amu_store_open_with_key(scratch->dir, DB_NAME, key, &error);
	CU_ASSERT_PTR_NULL(store);
	ASSERT_ERROR(error, AMU_ERROR_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "not an Amulet database"));
	g_clear_error(&error);

	/* A database name that is a directory: a clear error, no crash. */
	CU_ASSERT_EQUAL_FATAL(g_unlink(scratch->db_path), 0);
	CU_ASSERT_EQUAL_FATAL(g_mkdir(scratch->db_path, 0700), 0);
	store = amu_store_open_with_key(scratch->dir, DB_NAME, key, &error);
	CU_ASSERT_PTR_NULL(store);
	CU_ASSERT_PTR_NOT_NULL_FATAL(error);
	CU_ASSERT_EQUAL(error->domain, AMU_ERROR);
	g_clear_error(&error);

	store = amu_store_open_with_key(scratch->dir, "../escape.db", key, &error);
	CU_ASSERT_PTR_NULL(store);
	ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
}

AMU_TEST_MAIN("store", { "create and reopen", test_create_and_reopen },
	      { "file modes", test_file_modes },
	      { "key readable by others", test_key_readable_by_others },
	      { "key damaged or missing", test_key_damaged_or_missing },
	      { "wrong master key", test_wrong_master_key },
	      { "swapped record", test_swapped_record }, { "flipped byte", test_flipped_byte },
	      { "no plaintext on disk", test_no_plaintext_on_disk },
	      { "data keys", test_data_keys }, { "newer schema", test_newer_schema },
	      { "migrations run once", test_migrations_run_once }, { "read only", test_read_only },
	      { "disk full", test_disk_full }, { "records", test_records },
	      { "transactions", test_transactions }, { "raw seal", test_raw_seal },
	      { "not a database", test_not_a_database })
