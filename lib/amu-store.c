/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amulet/amu-error.h"

#define NONCEBYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAGBYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

G_STATIC_ASSERT(AMU_STORE_KEYBYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
G_STATIC_ASSERT(AMU_STORE_KEYBYTES == crypto_kdf_KEYBYTES);
G_STATIC_ASSERT(AMU_STORE_SEAL_OVERHEAD == NONCEBYTES + TAGBYTES);

/* Subkeys of the master key (crypto_kdf contexts are exactly 8 bytes): one
 * for records and callers' sealed columns, one for wrapping data keys and the
 * key check, so neither use can open the other's values. */
#define RECORD_KDF_CONTEXT "amurecrd"
#define WRAP_KDF_CONTEXT "amuwrapk"

#define KEY_CHECK_NAME "key-check"
static const char key_check_plaintext[] = "amulet master key check v1";

/* Schema migrations, applied in order, each in its own transaction; the
 * schema version is the number applied. Append new entries; never edit or
 * reorder a shipped one. */
static const char *const store_migrations[] = {
	/* 1: key check, sealed records, per-device data keys */
	"CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB);"
	"CREATE TABLE records(kind TEXT NOT NULL, id TEXT NOT NULL, sealed BLOB NOT NULL,"
	" updated INTEGER, PRIMARY KEY(kind, id));"
	"CREATE TABLE data_keys(device_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL);",
	/* 2: telemetry. Host: sealed sample blocks (amu-sample-store.c) and one
	 * sync cursor per device. Device: its append-only log (amu-device-log.c).
	 * Both roles share one schema, so each database has the other's tables empty. */
	"CREATE TABLE sample_blocks(block_id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,"
	" category INTEGER NOT NULL, t_start INTEGER NOT NULL, t_end INTEGER NOT NULL,"
	" count INTEGER NOT NULL, clock_offset_ms INTEGER NOT NULL, received INTEGER NOT NULL,"
	" sealed BLOB NOT NULL);"
	"CREATE INDEX sample_blocks_range ON sample_blocks(device_id, category, t_start);"
	"CREATE TABLE sync_cursors(device_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL,"
	" last_sync INTEGER NOT NULL);"
	"CREATE TABLE device_log(first_seq INTEGER PRIMARY KEY, category INTEGER NOT NULL,"
	" count INTEGER NOT NULL, sealed BLOB NOT NULL);"
	"CREATE TABLE device_log_state(id INTEGER PRIMARY KEY CHECK(id = 1),"
	" next_seq INTEGER NOT NULL, acked_seq INTEGER NOT NULL);"
	"INSERT INTO device_log_state(id, next_seq, acked_seq) VALUES(1, 0, 0);",
	/* 3: the consent ledger (amu-ledger.c): sealed entries, their chain
	 * hash and the owner's signature over it */
	"CREATE TABLE consent_ledger(seq INTEGER PRIMARY KEY, sealed BLOB NOT NULL,"
	" hash BLOB NOT NULL, signature BLOB NOT NULL);",
};
#define LATEST_SCHEMA ((int)G_N_ELEMENTS(store_migrations))

/* All key material in one sodium_malloc'd block: guard pages, mlocked,
 * read-only once derived, wiped by sodium_free(). */
typedef struct {
	uint8_t master[AMU_STORE_KEYBYTES];
	uint8_t record[AMU_STORE_KEYBYTES];
	uint8_t wrap[AMU_STORE_KEYBYTES];
} AmuStoreKeys;

struct AmuStore {
	gatomicrefcount ref_count;
	char *dir;
	char *db_path;
	sqlite3 *db;
	AmuStoreKeys *keys;
	int schema_version;
};

/* "cannot <verb> <path>: <strerror>: <fix>" for a failed system call. */
static void
store_set_errno_error(GError **error, int errsv, const char *verb, const char *path)
{
	int code = AMU_ERROR_IO;
	const char *fix = "check the disk and the path";

	if (errsv == EACCES || errsv == EPERM || errsv == EROFS) {
		code = AMU_ERROR_PERMISSION_DENIED;
		fix = "check that this user owns it and that the file system is writable";
	} else if (errsv == ENOSPC || errsv == EDQUOT) {
		code = AMU_ERROR_NO_SPACE;
		fix = "free space and retry";
	}
	g_set_error(error, AMU_ERROR, code, "cannot %s %s: %s: %s", verb, path, g_strerror(errsv),
		    fix);
}

static void
store_set_secure_memory_error(GError **error)
{
	g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED,
			    "out of locked memory for keys: raise the memlock limit (ulimit -l) "
			    "or close other programs");
}

static void
store_set_tampered_error(GError **error)
{
	g_set_error_literal(error, AMU_ERROR, AMU_ERROR_TAMPERED,
			    "the sealed value does not authenticate: it was altered, truncated or "
			    "copied from another row; restore the store from a backup");
}

void
amu_store_set_sqlite_error(AmuStore *self, GError **error, int rc, const char *what)
{
	sqlite3 *db = self != NULL ? self->db : NULL;
	int sys_errno = db != NULL ? sqlite3_system_errno(db) : 0;
	const char *detail = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	const char *subject = self != NULL ? self->db_path : "";
	const char *lead = "database ";
	const char *tail = " failed";
	const char *fix = "see the SQLite message";
	int code = AMU_ERROR_STORE;

	if ((rc & 0xff) == SQLITE_IOERR && (sys_errno == ENOSPC || sys_errno == EDQUOT))
		rc = SQLITE_FULL;
	switch (rc & 0xff) {
	case SQLITE_FULL:
		code = AMU_ERROR_NO_SPACE;
		lead = "the disk holding ";
		subject = self != NULL ? self->dir : "the store";
		tail = " is full";
		fix = "free space and retry; nothing stored was lost";
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		code = AMU_ERROR_PERMISSION_DENIED;
		tail = " is read-only";
		fix = "make it and its directory writable by this user";
		break;
	case SQLITE_CANTOPEN:
		if (sys_errno == EACCES || sys_errno == EPERM || sys_errno == EROFS)
			code = AMU_ERROR_PERMISSION_DENIED;
		tail = " cannot be opened";
		fix = "check that this user can read and write it and its directory";
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		tail = " is corrupt or not an Amulet database";
		fix = "restore it from a backup";
		break;
	case SQLITE_IOERR:
		code = AMU_ERROR_IO;
		tail = " could not be read or written";
		fix = "check the disk";
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		tail = " is locked by another program";
		fix = "close other Amulet programs using it and retry";
		break;
	default:
		break;
	}
	g_set_error(error, AMU_ERROR, code, "%s%s%s%s%s (%s%s%s): %s", what != NULL ? what : "",
		    what != NULL ? ": " : "", lead, subject, tail, detail,
		    sys_errno != 0 ? ": " : "", sys_errno != 0 ? g_strerror(sys_errno) : "", fix);
}

/* Prepares @sql binding ?1 = @a, ?2 = @b and ?3 = @blob; a NULL argument is
 * left unbound. */
static sqlite3_stmt *
store_prepare(AmuStore *self, const char *sql, const char *a, const char *b, GBytes *blob,
	      GError **error)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL);

	if (rc == SQLITE_OK && a != NULL)
		rc = sqlite3_bind_text(stmt, 1, a, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && b != NULL)
		rc = sqlite3_bind_text(stmt, 2, b, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && blob != NULL)
		rc = sqlite3_bind_blob64(stmt, 3, g_bytes_get_data(blob, NULL),
					 g_bytes_get_size(blob), SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(self, error, rc, NULL);
		sqlite3_finalize(stmt);
		return NULL;
	}
	return stmt;
}

/* Steps once; returns SQLITE_ROW or SQLITE_DONE, or sets @error and returns
 * the failing code. */
static int
store_step(AmuStore *self, sqlite3_stmt *stmt, GError **error)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		amu_store_set_sqlite_error(self, error, rc, NULL);
	return rc;
}

/* Runs a statement that returns no rows, with arguments as store_prepare(). */
static gboolean
store_run(AmuStore *self, const char *sql, const char *a, const char *b, GBytes *blob,
	  GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = store_prepare(self, sql, a, b, blob, error);

	return stmt != NULL && store_step(self, stmt, error) == SQLITE_DONE;
}

/* --- sealing --- */

static GBytes *
store_seal_with(const uint8_t *key, const void *ad, size_t ad_len, const void *data, size_t len)
{
	size_t sealed_len = AMU_STORE_SEAL_OVERHEAD + len;
	uint8_t *sealed = g_malloc(sealed_len);

	randombytes_buf(sealed, NONCEBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCEBYTES, NULL, data, len, ad, ad_len,
						   NULL, sealed, key);
	return g_bytes_new_take(sealed, sealed_len);
}

/* Unsealed values live in plain heap memory that is wiped when the GBytes
 * goes: sodium_malloc costs several system calls a value (guard pages,
 * mprotect, mlock), which dominated reading the consent ledger and the
 * device log. Long-lived keys stay in sodium_malloc'd memory. */
typedef struct {
	size_t len;
	uint8_t data[];
} WipedBuffer;

static void
wiped_buffer_free(WipedBuffer *buffer)
{
	sodium_memzero(buffer->data, buffer->len);
	g_free(buffer);
}

static GBytes *
store_unseal_with(const uint8_t *key, const void *ad, size_t ad_len, const uint8_t *sealed,
		  size_t len, GError **error)
{
	size_t plain_len;
	uint8_t *plain;
	WipedBuffer *buffer;

	if (len < AMU_STORE_SEAL_OVERHEAD) {
		store_set_tampered_error(error);
		return NULL;
	}
	plain_len = len - AMU_STORE_SEAL_OVERHEAD;
	buffer = g_malloc(sizeof(WipedBuffer) + MAX(plain_len, 1));
	buffer->len = plain_len;
	plain = buffer->data;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, sealed + NONCEBYTES,
						       len - NONCEBYTES, ad, ad_len, sealed,
						       key) != 0) {
		wiped_buffer_free(buffer);
		store_set_tampered_error(error);
		return NULL;
	}
	return g_bytes_new_with_free_func(plain, plain_len, (GDestroyNotify)wiped_buffer_free, buffer);
}

/* kind 0x00 id: a C string holds no NUL, so the split is unambiguous. */
static guint8 *
store_record_ad(const char *kind, const char *id, size_t *ad_len)
{
	size_t kind_len = strlen(kind);
	size_t id_len = strlen(id);
	guint8 *ad = g_malloc(kind_len + 1 + id_len);

	memcpy(ad, kind, kind_len);
	ad[kind_len] = 0x00;
	memcpy(ad + kind_len + 1, id, id_len);
	*ad_len = kind_len + 1 + id_len;
	return ad;
}

/* Runs @sql (one blob column; ?1 = @a, ?2 = @b) and unseals the value under
 * @key; NOT_FOUND when there is no row. */
static GBytes *
store_fetch(AmuStore *self, const char *sql, const char *a, const char *b, const uint8_t *key,
	    const void *ad, size_t ad_len, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = store_prepare(self, sql, a, b, NULL, error);
	int rc = stmt != NULL ? store_step(self, stmt, error) : SQLITE_ERROR;

	if (rc == SQLITE_DONE)
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_NOT_FOUND, "it is not stored");
	if (rc != SQLITE_ROW)
		return NULL;
	return store_unseal_with(key, ad, ad_len, sqlite3_column_blob(stmt, 0),
				 (size_t)sqlite3_column_bytes(stmt, 0), error);
}

GBytes *
amu_store_seal(AmuStore *self, const void *ad, size_t ad_len, const void *data, size_t len)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_return_val_if_fail(ad != NULL || ad_len == 0, NULL);
	g_return_val_if_fail(data != NULL || len == 0, NULL);
	g_return_val_if_fail(len <= crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX, NULL);
	return store_seal_with(self->keys->record, ad, ad_len, data, len);
}

GBytes *
amu_store_unseal(AmuStore *self, const void *ad, size_t ad_len, const void *sealed, size_t len,
		 GError **error)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_return_val_if_fail(ad != NULL || ad_len == 0, NULL);
	g_return_val_if_fail(sealed != NULL || len == 0, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return store_unseal_with(self->keys->record, ad, ad_len, sealed, len, error);
}

/* --- the master key --- */

static gboolean
store_read_master_key(AmuStore *self, const char *path, int fd, GError **error)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		store_set_errno_error(error, errno, "read master key file", path);
		return FALSE;
	}
	if (!S_ISREG(st.st_mode)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "master key file %s is not a regular file: move it away and restore "
			    "the key from a backup",
			    path);
		return FALSE;
	}
	if ((st.st_mode & 077) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PERMISSION_DENIED,
			    "master key file %s is accessible to other users (mode %04o): run "
			    "chmod 600 %s",
			    path, (unsigned int)(st.st_mode & 07777), path);
		return FALSE;
	}
	if (st.st_size != AMU_STORE_KEYBYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "master key file %s is %lld bytes, not %d: it is damaged or not an "
			    "Amulet key; restore it from a backup",
			    path, (long long)st.st_size, AMU_STORE_KEYBYTES);
		return FALSE;
	}
	/* A 32-byte read of a regular file is never short unless it shrank. */
	errno = 0;
	if (read(fd, self->keys->master, AMU_STORE_KEYBYTES) != AMU_STORE_KEYBYTES) {
		store_set_errno_error(error, errno != 0 ? errno : EIO, "read master key file",
				      path);
		return FALSE;
	}
	return TRUE;
}

/* Writes a new key to a temporary file (O_CREAT|O_EXCL, 0600, fsync) and
 * link()s it into place: the key file appears complete or not at all, and of
 * two processes racing to create it one gets EEXIST and loads the other's. */
static gboolean
store_create_master_key(AmuStore *self, const char *path, gboolean *created, GError **error)
{
	g_autofree char *tmp_path = g_strdup_printf("%s.XXXXXX", path);
	int fd = g_mkstemp_full(tmp_path, O_WRONLY | O_CLOEXEC, 0600);
	int errsv;

	if (fd < 0) {
		store_set_errno_error(error, errno, "create master key file", path);
		return FALSE;
	}
	randombytes_buf(self->keys->master, AMU_STORE_KEYBYTES);
	errno = EIO;
	if (fchmod(fd, 0600) != 0 ||
	    write(fd, self->keys->master, AMU_STORE_KEYBYTES) != AMU_STORE_KEYBYTES ||
	    fsync(fd) != 0) {
		errsv = errno;
		close(fd);
		g_unlink(tmp_path);
		store_set_errno_error(error, errsv, "write master key file", path);
		return FALSE;
	}
	close(fd);
	errsv = link(tmp_path, path) == 0 ? 0 : errno;
	g_unlink(tmp_path);
	if (errsv == EEXIST)
		return TRUE;
	if (errsv != 0) {
		store_set_errno_error(error, errsv, "create master key file", path);
		return FALSE;
	}
	/* Make the new name durable before anything is sealed under the key. */
	fd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		errsv = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
		close(fd);
		if (errsv != 0) {
			store_set_errno_error(error, errsv, "sync directory", self->dir);
			return FALSE;
		}
	}
	*created = TRUE;
	return TRUE;
}

static gboolean
store_load_master_key(AmuStore *self, GError **error)
{
	g_autofree char *path = g_build_filename(self->dir, AMU_STORE_KEY_FILE, NULL);
	gboolean created = FALSE;
	gboolean ok;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		/* A fresh key would never open the existing data. */
		if (g_file_test(self->db_path, G_FILE_TEST_EXISTS)) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_WRONG_MASTER_KEY,
				    "master key file %s is missing but database %s exists: "
				    "restore %s from your backup",
				    path, self->db_path, AMU_STORE_KEY_FILE);
			return FALSE;
		}
		if (!store_create_master_key(self, path, &created, error))
			return FALSE;
		if (created)
			return TRUE;
		fd = open(path, O_RDONLY | O_CLOEXEC); /* lost a race: use the winner's */
	}
	if (fd < 0) {
		store_set_errno_error(error, errno, "read master key file", path);
		return FALSE;
	}
	ok = store_read_master_key(self, path, fd, error);
	close(fd);
	return ok;
}

/* --- opening and migrating --- */

static gboolean
store_open_db(AmuStore *self, GError **error)
{
	int rc = sqlite3_open_v2(self->db_path, &self->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(self, error, rc, NULL);
		return FALSE;
	}
	sqlite3_extended_result_codes(self->db, 1);
	sqlite3_busy_timeout(self->db, 5000);
	/* SQLite silently falls back to read-only; say so now, not at a write. */
	if (sqlite3_db_readonly(self->db, "main") == 1) {
		amu_store_set_sqlite_error(self, error, SQLITE_READONLY, NULL);
		return FALSE;
	}
	/* Acks go out once a batch is stored, so a commit must reach the disk. */
	return amu_store_exec(self,
			      "PRAGMA foreign_keys = ON;"
			      "PRAGMA secure_delete = ON;"
			      "PRAGMA synchronous = FULL;",
			      error);
}

/* Reads a single integer from @sql (no arguments). */
static gboolean
store_query_int(AmuStore *self, const char *sql, int *value, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = store_prepare(self, sql, NULL, NULL, NULL, error);

	if (stmt == NULL || store_step(self, stmt, error) != SQLITE_ROW)
		return FALSE;
	*value = sqlite3_column_int(stmt, 0);
	return TRUE;
}

static gboolean
store_read_version(AmuStore *self, int *version, GError **error)
{
	int exists = 0;

	*version = 0;
	if (!store_query_int(self,
			     "SELECT count(*) FROM sqlite_master "
			     "WHERE type = 'table' AND name = 'schema_version'",
			     &exists, error))
		return FALSE;
	if (exists != 0 &&
	    !store_query_int(self, "SELECT coalesce(max(version), 0) FROM schema_version", version,
			     error))
		return FALSE;
	if (*version > LATEST_SCHEMA) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "database %s was created by a newer Amulet (schema %d, this build "
			    "knows %d): upgrade Amulet",
			    self->db_path, *version, LATEST_SCHEMA);
		return FALSE;
	}
	return TRUE;
}

static gboolean
store_verify_key_check(AmuStore *self, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) plain = NULL;

	plain = store_fetch(self, "SELECT value FROM meta WHERE name = ?1", KEY_CHECK_NAME, NULL,
			    self->keys->wrap, KEY_CHECK_NAME, strlen(KEY_CHECK_NAME), &error_local);
	if (g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "database %s has no master key check: it is damaged; restore it "
			    "from a backup",
			    self->db_path);
		return FALSE;
	}
	if (plain == NULL && !g_error_matches(error_local, AMU_ERROR, AMU_ERROR_TAMPERED)) {
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	/* Only the right key authenticates the check value. */
	if (plain == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_WRONG_MASTER_KEY,
			    "the master key does not open database %s: it was created with "
			    "another key; use the %s (or passphrase) it was created with",
			    self->db_path, AMU_STORE_KEY_FILE);
		return FALSE;
	}
	return TRUE;
}

/* One migration inside an open transaction. The version is read again here
 * because another process may have migrated since we last looked. */
static gboolean
store_migrate_step(AmuStore *self, int *version, gboolean *checked, GError **error)
{
	g_autoptr(GBytes) key_check = NULL;
	g_autofree char *next = NULL;

	if (!store_read_version(self, version, error))
		return FALSE;
	if (*version > 0 && !*checked) {
		if (!store_verify_key_check(self, error))
			return FALSE;
		*checked = TRUE;
	}
	if (*version >= LATEST_SCHEMA)
		return TRUE;
	if (!amu_store_exec(self, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER)",
			    error) ||
	    !amu_store_exec(self, store_migrations[*version], error))
		return FALSE;
	/* The key check is born with the meta table, so a database at schema 1
	 * or later without one is damaged, never merely new. */
	if (*version == 0) {
		key_check =
			store_seal_with(self->keys->wrap, KEY_CHECK_NAME, strlen(KEY_CHECK_NAME),
					key_check_plaintext, sizeof(key_check_plaintext));
		if (!store_run(self, "INSERT INTO meta(name, value) VALUES(?1, ?3)", KEY_CHECK_NAME,
			       NULL, key_check, error))
			return FALSE;
	}
	next = g_strdup_printf("DELETE FROM schema_version;"
			       "INSERT INTO schema_version(version) VALUES(%d);",
			       *version + 1);
	if (!amu_store_exec(self, next, error))
		return FALSE;
	*version += 1;
	return TRUE;
}

/* Persistent, and a no-op once set. Some file systems cannot share memory
 * for WAL and keep the rollback journal, which is just as durable. */
static gboolean
store_set_wal(AmuStore *self, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	stmt = store_prepare(self, "PRAGMA journal_mode = WAL", NULL, NULL, NULL, error);
	if (stmt == NULL || store_step(self, stmt, error) != SQLITE_ROW)
		return FALSE;
	if (g_strcmp0((const char *)sqlite3_column_text(stmt, 0), "wal") != 0)
		g_debug("database %s stays in journal mode %s", self->db_path,
			(const char *)sqlite3_column_text(stmt, 0));
	return TRUE;
}

static gboolean
store_upgrade(AmuStore *self, GError **error)
{
	gboolean checked = FALSE;
	int version = 0;

	/* Nothing is written before the key is known to be right. */
	if (!store_read_version(self, &version, error))
		return FALSE;
	if (version > 0) {
		if (!store_verify_key_check(self, error))
			return FALSE;
		checked = TRUE;
	}
	if (!store_set_wal(self, error))
		return FALSE;
	while (version < LATEST_SCHEMA) {
		if (!amu_store_begin(self, error))
			return FALSE;
		if (!store_migrate_step(self, &version, &checked, error) ||
		    !amu_store_commit(self, error)) {
			amu_store_rollback(self);
			g_prefix_error(error, "upgrading to schema %d: ", version + 1);
			return FALSE;
		}
	}
	self->schema_version = version;
	return TRUE;
}

static AmuStore *
store_open_unprefixed(const char *dir, const char *db_name, const uint8_t *key, GError **error)
{
	g_autoptr(AmuStore) self = NULL;

	if (sodium_init() < 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED,
				    "libsodium failed to initialise: check /dev/urandom");
		return NULL;
	}
	if (db_name[0] == '\0' || db_name[0] == '.' || strchr(db_name, '/') != NULL ||
	    g_strcmp0(db_name, AMU_STORE_KEY_FILE) == 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "database name '%s' is not a plain file name", db_name);
		return NULL;
	}

	self = g_new0(AmuStore, 1);
	g_atomic_ref_count_init(&self->ref_count);
	self->dir = g_strdup(dir);
	self->db_path = g_build_filename(dir, db_name, NULL);
	/* chmod as well: the umask may have taken bits the owner needs. */
	if (!g_file_test(dir, G_FILE_TEST_IS_DIR) &&
	    (g_mkdir_with_parents(dir, 0700) != 0 || g_chmod(dir, 0700) != 0)) {
		store_set_errno_error(error, errno, "create directory", dir);
		return NULL;
	}

	self->keys = sodium_malloc(sizeof(*self->keys));
	if (self->keys == NULL) {
		store_set_secure_memory_error(error);
		return NULL;
	}
	if (key != NULL)
		memcpy(self->keys->master, key, AMU_STORE_KEYBYTES);
	else if (!store_load_master_key(self, error))
		return NULL;
	crypto_kdf_derive_from_key(self->keys->record, AMU_STORE_KEYBYTES, 1, RECORD_KDF_CONTEXT,
				   self->keys->master);
	crypto_kdf_derive_from_key(self->keys->wrap, AMU_STORE_KEYBYTES, 1, WRAP_KDF_CONTEXT,
				   self->keys->master);
	sodium_mprotect_readonly(self->keys);

	if (!store_open_db(self, error) || !store_upgrade(self, error))
		return NULL;
	return g_steal_pointer(&self);
}

static AmuStore *
store_open(const char *dir, const char *db_name, const uint8_t *key, GError **error)
{
	AmuStore *self = store_open_unprefixed(dir, db_name, key, error);

	if (self == NULL)
		g_prefix_error(error, "cannot open the store in %s: ", dir);
	return self;
}

AmuStore *
amu_store_open(const char *dir, const char *db_name, GError **error)
{
	g_return_val_if_fail(dir != NULL && db_name != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return store_open(dir, db_name, NULL, error);
}

AmuStore *
amu_store_open_with_key(const char *dir, const char *db_name, const uint8_t key[AMU_STORE_KEYBYTES],
			GError **error)
{
	g_return_val_if_fail(dir != NULL && db_name != NULL && key != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return store_open(dir, db_name, key, error);
}

AmuStore *
amu_store_ref(AmuStore *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	g_atomic_ref_count_inc(&self->ref_count);
	return self;
}

void
amu_store_unref(AmuStore *self)
{
	if (self == NULL || !g_atomic_ref_count_dec(&self->ref_count))
		return;
	if (self->db != NULL)
		sqlite3_close_v2(self->db);
	if (self->keys != NULL)
		sodium_free(self->keys);
	g_free(self->dir);
	g_free(self->db_path);
	g_free(self);
}

sqlite3 *
amu_store_get_db(AmuStore *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return self->db;
}

const char *
amu_store_get_dir(AmuStore *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return self->dir;
}

const char *
amu_store_get_db_path(AmuStore *self)
{
	g_return_val_if_fail(self != NULL, NULL);
	return self->db_path;
}

int
amu_store_get_schema_version(AmuStore *self)
{
	g_return_val_if_fail(self != NULL, 0);
	return self->schema_version;
}

/* --- transactions --- */

gboolean
amu_store_exec(AmuStore *self, const char *sql, GError **error)
{
	int rc;

	g_return_val_if_fail(self != NULL && sql != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	rc = sqlite3_exec(self->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(self, error, rc, NULL);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_store_begin(AmuStore *self, GError **error)
{
	return amu_store_exec(self, "BEGIN IMMEDIATE", error);
}

gboolean
amu_store_commit(AmuStore *self, GError **error)
{
	return amu_store_exec(self, "COMMIT", error);
}

void
amu_store_rollback(AmuStore *self)
{
	g_return_if_fail(self != NULL);
	if (sqlite3_get_autocommit(self->db) == 0)
		sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
}

gboolean
amu_store_checkpoint(AmuStore *self, GError **error)
{
	int rc;

	g_return_val_if_fail(self != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	rc = sqlite3_wal_checkpoint_v2(self->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if ((rc & 0xff) == SQLITE_BUSY) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "another program is reading %s, so its write-ahead log still holds "
			    "old data: close other Amulet programs using %s and retry",
			    self->db_path, self->dir);
		return FALSE;
	}
	if (rc != SQLITE_OK) {
		amu_store_set_sqlite_error(self, error, rc, "emptying the write-ahead log");
		return FALSE;
	}
	return TRUE;
}

/* --- sealed records --- */

gboolean
amu_store_put(AmuStore *self, const char *kind, const char *id, const void *data, size_t len,
	      GError **error)
{
	g_autoptr(GBytes) sealed = NULL;
	g_autofree guint8 *ad = NULL;
	size_t ad_len = 0;

	g_return_val_if_fail(self != NULL && kind != NULL && id != NULL, FALSE);
	g_return_val_if_fail(data != NULL || len == 0, FALSE);
	g_return_val_if_fail(len <= crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (kind[0] == '\0') {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "the record kind is empty");
		return FALSE;
	}
	ad = store_record_ad(kind, id, &ad_len);
	sealed = store_seal_with(self->keys->record, ad, ad_len, data, len);
	if (!store_run(self,
		       "INSERT INTO records(kind, id, sealed, updated) "
		       "VALUES(?1, ?2, ?3, CAST(strftime('%s', 'now') AS INTEGER)) "
		       "ON CONFLICT(kind, id) DO UPDATE "
		       "SET sealed = excluded.sealed, updated = excluded.updated",
		       kind, id, sealed, error)) {
		g_prefix_error(error, "storing %s record %s: ", kind, id);
		return FALSE;
	}
	return TRUE;
}

GBytes *
amu_store_get(AmuStore *self, const char *kind, const char *id, GError **error)
{
	g_autofree guint8 *ad = NULL;
	size_t ad_len = 0;
	GBytes *plain;

	g_return_val_if_fail(self != NULL && kind != NULL && id != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	ad = store_record_ad(kind, id, &ad_len);
	plain = store_fetch(self, "SELECT sealed FROM records WHERE kind = ?1 AND id = ?2", kind,
			    id, self->keys->record, ad, ad_len, error);
	if (plain == NULL)
		g_prefix_error(error, "reading %s record %s: ", kind, id);
	return plain;
}

gboolean
amu_store_delete(AmuStore *self, const char *kind, const char *id, GError **error)
{
	g_return_val_if_fail(self != NULL && kind != NULL && id != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (!store_run(self, "DELETE FROM records WHERE kind = ?1 AND id = ?2", kind, id, NULL,
		       error)) {
		g_prefix_error(error, "deleting %s record %s: ", kind, id);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_store_delete_kind(AmuStore *self, const char *kind, GError **error)
{
	g_return_val_if_fail(self != NULL && kind != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (!store_run(self, "DELETE FROM records WHERE kind = ?1", kind, NULL, NULL, error)) {
		g_prefix_error(error, "deleting all %s records: ", kind);
		return FALSE;
	}
	return TRUE;
}

GPtrArray *
amu_store_list_ids(AmuStore *self, const char *kind, GError **error)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
	int rc = SQLITE_ERROR;

	g_return_val_if_fail(self != NULL && kind != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	stmt = store_prepare(self, "SELECT id FROM records WHERE kind = ?1 ORDER BY id", kind, NULL,
			     NULL, error);
	while (stmt != NULL && (rc = store_step(self, stmt, error)) == SQLITE_ROW)
		g_ptr_array_add(ids, g_strdup((const char *)sqlite3_column_text(stmt, 0)));
	if (rc != SQLITE_DONE) {
		g_prefix_error(error, "listing %s records: ", kind);
		return NULL;
	}
	return g_steal_pointer(&ids);
}

/* --- per-device data keys --- */

gboolean
amu_store_create_data_key(AmuStore *self, const char *device_id, uint8_t key[AMU_STORE_KEYBYTES],
			  GError **error)
{
	g_autoptr(GBytes) wrapped = NULL;
	g_autofree char *ad = NULL;

	g_return_val_if_fail(self != NULL && device_id != NULL && key != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	if (device_id[0] == '\0') {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "the device id is empty");
		return FALSE;
	}
	randombytes_buf(key, AMU_STORE_KEYBYTES);
	ad = g_strconcat("data-key", device_id, NULL);
	wrapped = store_seal_with(self->keys->wrap, ad, strlen(ad), key, AMU_STORE_KEYBYTES);
	if (!store_run(self,
		       "INSERT INTO data_keys(device_id, wrapped) VALUES(?1, ?3) "
		       "ON CONFLICT(device_id) DO NOTHING",
		       device_id, NULL, wrapped, error)) {
		sodium_memzero(key, AMU_STORE_KEYBYTES);
		g_prefix_error(error, "creating the data key of device %s: ", device_id);
		return FALSE;
	}
	/* Replacing a key would silently shred the device's data. */
	if (sqlite3_changes(self->db) == 0) {
		sodium_memzero(key, AMU_STORE_KEYBYTES);
		g_set_error(error, AMU_ERROR, AMU_ERROR_EXISTS,
			    "device %s already has a data key: destroy it first (which destroys "
			    "the device's stored data)",
			    device_id);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_store_get_data_key(AmuStore *self, const char *device_id, uint8_t key[AMU_STORE_KEYBYTES],
		       GError **error)
{
	g_autofree char *ad = NULL;
	g_autoptr(GBytes) plain = NULL;

	g_return_val_if_fail(self != NULL && device_id != NULL && key != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	ad = g_strconcat("data-key", device_id, NULL);
	plain = store_fetch(self, "SELECT wrapped FROM data_keys WHERE device_id = ?1", device_id,
			    NULL, self->keys->wrap, ad, strlen(ad), error);
	if (plain != NULL && g_bytes_get_size(plain) != AMU_STORE_KEYBYTES) {
		g_clear_pointer(&plain, g_bytes_unref);
		store_set_tampered_error(error);
	}
	if (plain == NULL) {
		g_prefix_error(error, "reading the data key of device %s: ", device_id);
		return FALSE;
	}
	memcpy(key, g_bytes_get_data(plain, NULL), AMU_STORE_KEYBYTES);
	return TRUE;
}

gboolean
amu_store_destroy_data_key(AmuStore *self, const char *device_id, GError **error)
{
	g_return_val_if_fail(self != NULL && device_id != NULL, FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	/* Inside a transaction the delete is not yet in the log to checkpoint. */
	if (sqlite3_get_autocommit(self->db) == 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "cannot destroy the data key of device %s inside a transaction: "
			    "commit first",
			    device_id);
		return FALSE;
	}
	/* secure_delete zeroes the row in its page; the checkpoint then drops
	 * the log frames that still hold older copies of the page. */
	if (!store_run(self, "DELETE FROM data_keys WHERE device_id = ?1", device_id, NULL, NULL,
		       error) ||
	    !amu_store_checkpoint(self, error)) {
		g_prefix_error(error, "destroying the data key of device %s: ", device_id);
		return FALSE;
	}
	return TRUE;
}
