/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* The encrypted local store: a directory holding master.key (0600) and one
 * SQLite database (WAL, synchronous=FULL). Everything secret or personal is
 * sealed with XChaCha20-Poly1305 under keys derived from the master key; see
 * ARCHITECTURE.md, "Keys at rest" and "Data". The host uses it for its data directory,
 * the simulated device for its state directory.
 *
 * An AmuStore wraps one SQLite connection: use it from one thread at a time.
 * Every fallible call returns FALSE/NULL and sets an AMU_ERROR:
 *   AMU_ERROR_STORE               unreadable, corrupt or newer-schema database
 *   AMU_ERROR_NO_SPACE            disk full; what was committed before is intact
 *   AMU_ERROR_PERMISSION_DENIED   file modes or a read-only file system
 *   AMU_ERROR_WRONG_MASTER_KEY    the key does not open this database
 *   AMU_ERROR_TAMPERED            a sealed value fails to authenticate
 *   AMU_ERROR_NOT_FOUND           no such record or data key
 *   AMU_ERROR_IO                  reading or writing a file failed
 *   AMU_ERROR_EXISTS              a data key already exists for the device
 *   AMU_ERROR_INVALID_ARGUMENT    bad names, or a call not allowed right now
 * Messages name the file and the fix; each layer adds context in front. */

typedef struct AmuStore AmuStore;

#define AMU_STORE_KEYBYTES 32		/* master key and per-device data keys */
#define AMU_STORE_KEY_FILE "master.key" /* inside the store directory */

/* Opens (creating if missing) the store in @dir, directory made 0700, with
 * the database file @db_name (a plain file name, e.g. "amulet.db"). The
 * master key is read from @dir/master.key, which is created with 32 random
 * bytes on first use and refused if group or others may access it. Pending
 * schema migrations are applied. */
AmuStore *amu_store_open(const char *dir, const char *db_name, GError **error);

/* As amu_store_open(), with the master key given by the caller (derived from
 * a passphrase, or fixed in tests); master.key is neither read nor written. */
AmuStore *amu_store_open_with_key(const char *dir, const char *db_name,
				  const uint8_t key[AMU_STORE_KEYBYTES], GError **error);

AmuStore *amu_store_ref(AmuStore *self);
/* NULL-tolerant; the last unref closes the database and wipes the keys. */
void amu_store_unref(AmuStore *self);

/* (transfer none) The connection, for modules that keep their own tables.
 * Their tables come from migrations appended in amu-store.c. */
sqlite3 *amu_store_get_db(AmuStore *self);
const char *amu_store_get_dir(AmuStore *self);
const char *amu_store_get_db_path(AmuStore *self);
/* The number of migrations applied, i.e. the latest this build knows. */
int amu_store_get_schema_version(AmuStore *self);

/* BEGIN IMMEDIATE / COMMIT. After a failed commit call amu_store_rollback(),
 * which is harmless when no transaction is open (SQLite ends some on its own,
 * e.g. when the disk is full). */
gboolean amu_store_begin(AmuStore *self, GError **error);
gboolean amu_store_commit(AmuStore *self, GError **error);
void amu_store_rollback(AmuStore *self);
/* Runs one or more SQL statements, discarding any rows. */
gboolean amu_store_exec(AmuStore *self, const char *sql, GError **error);
/* Empties the write-ahead log into the database file and truncates it, so
 * deleted bytes (zeroed by secure_delete) leave no older copy in the log.
 * Fails with AMU_ERROR_STORE if another connection is still reading. */
gboolean amu_store_checkpoint(AmuStore *self, GError **error);

/* Sealed records, keyed by (@kind, @id). The associated data binds the value
 * to its row: a value copied into another row fails with TAMPERED.
 * amu_store_put() inserts or replaces; amu_store_delete() is fine when the
 * record is absent; amu_store_list_ids() returns the ids of @kind sorted
 * bytewise (GPtrArray of strings, freed with the array). */
gboolean amu_store_put(AmuStore *self, const char *kind, const char *id, const void *data,
		       size_t len, GError **error);
/* (transfer full) The plaintext, in memory wiped when the GBytes is freed.
 * NOT_FOUND if absent, TAMPERED if the seal fails. */
GBytes *amu_store_get(AmuStore *self, const char *kind, const char *id,
		      GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean amu_store_delete(AmuStore *self, const char *kind, const char *id, GError **error);
GPtrArray *amu_store_list_ids(AmuStore *self, const char *kind, GError **error);
gboolean amu_store_delete_kind(AmuStore *self, const char *kind, GError **error);

/* Per-device data keys for crypto-shredding. Create makes a random key, fills
 * @key with it and stores it wrapped (EXISTS if the device already has one:
 * replacing it would silently shred the device's data). Get unwraps into
 * @key (keep it in sodium_malloc'd memory); NOT_FOUND once destroyed.
 * Destroy deletes the row and checkpoints the write-ahead log so no copy of
 * the wrapped key remains on disk; it is fine when the key is absent (so a
 * failed checkpoint can be retried) and must not be called inside a
 * transaction (INVALID_ARGUMENT): commit first. */
gboolean amu_store_create_data_key(AmuStore *self, const char *device_id,
				   uint8_t key[AMU_STORE_KEYBYTES], GError **error);
gboolean amu_store_get_data_key(AmuStore *self, const char *device_id,
				uint8_t key[AMU_STORE_KEYBYTES],
				GError **error) G_GNUC_WARN_UNUSED_RESULT;
gboolean amu_store_destroy_data_key(AmuStore *self, const char *device_id, GError **error);

/* Raw sealing under the record key, for modules with their own tables:
 * output is a random 24-byte nonce || ciphertext || 16-byte tag. Start @ad
 * with something naming your table and row (records use kind 0x00 id, so
 * avoid that shape), so a value cannot be moved between tables or rows.
 * Unseal returns the plaintext in memory wiped on free, or TAMPERED. */
#define AMU_STORE_SEAL_OVERHEAD (24 + 16)
GBytes *amu_store_seal(AmuStore *self, const void *ad, size_t ad_len, const void *data, size_t len);
GBytes *amu_store_unseal(AmuStore *self, const void *ad, size_t ad_len, const void *sealed,
			 size_t len, GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Sets @error from a failed SQLite call's result code @rc (extended codes
 * are fine), naming the store's files and the fix; @what (nullable) is the
 * operation, put in front, e.g. "storing the bond". SQLITE_FULL (or an I/O
 * error with ENOSPC) is NO_SPACE; READONLY, PERM, AUTH and a CANTOPEN caused
 * by access rights are PERMISSION_DENIED; other I/O errors are IO; the rest,
 * CORRUPT and NOTADB included, are STORE. */
void amu_store_set_sqlite_error(AmuStore *self, GError **error, int rc, const char *what);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuStore, amu_store_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3, sqlite3_close_v2)

G_END_DECLS
