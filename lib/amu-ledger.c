/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-ledger.h"
#include "amulet/amu-error.h"

#define KIND_HEAD "ledger-head"
/* a second copy of the head outside the database, so rolling the database
 * back to an older copy (dropping a revocation) is detected */
#define HEAD_FILE "consent-ledger.head"
#define HEAD_FILE_AD "consent_ledger_head_file"
#define HASH_CONTEXT "amulet-ledger-v1"

/* what the cache of verified entries keeps per entry */
#define VERIFIED_BYTES (AMU_LEDGER_HASHBYTES + crypto_sign_BYTES)

struct AmuLedger {
	AmuStore *store;
	uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
	uint8_t *secret_key; /* sodium_malloc'd */
	/* Hash and signature of entries 0..n-1 as last verified, so a walk
	 * checks the signature only of entries it has not seen like this
	 * before: a grant check and an append each walk the whole chain. Any
	 * change to an entry's content, hash or signature misses the cache
	 * and is verified in full. */
	GByteArray *verified;
	/* The whole chain as the last full walk verified it, kept while the
	 * database has not changed since: PRAGMA data_version moves when
	 * another connection commits, sqlite3_total_changes64() when this one
	 * writes anything (our own appends update the copy). A walk then only
	 * checks the head file and hands out the entries. */
	struct {
		GPtrArray *entries; /* Amulet__V1__LedgerEntry, unpacked; NULL while none */
		GPtrArray *ids;
		uint8_t last[AMU_LEDGER_HASHBYTES];
		uint8_t before_last[AMU_LEDGER_HASHBYTES];
		sqlite3_int64 data_version;
		sqlite3_int64 changes;
	} chain;
};

AmuLedger *
amu_ledger_new(AmuStore *store, const uint8_t public_key[32], const uint8_t secret_key[64])
{
	AmuLedger *ledger = g_new0(AmuLedger, 1);

	ledger->store = amu_store_ref(store);
	memcpy(ledger->public_key, public_key, sizeof(ledger->public_key));
	ledger->secret_key = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	memcpy(ledger->secret_key, secret_key, crypto_sign_SECRETKEYBYTES);
	ledger->verified = g_byte_array_new();
	return ledger;
}

void
amu_ledger_free(AmuLedger *ledger)
{
	if (ledger == NULL)
		return;
	sodium_free(ledger->secret_key);
	g_byte_array_unref(ledger->verified);
	g_clear_pointer(&ledger->chain.entries, g_ptr_array_unref);
	g_clear_pointer(&ledger->chain.ids, g_ptr_array_unref);
	amu_store_unref(ledger->store);
	g_free(ledger);
}

static size_t
entry_ad(uint8_t ad[32], uint64_t seq)
{
	memcpy(ad, "consent_ledger", 14);
	for (int i = 0; i < 8; i++)
		ad[14 + i] = (uint8_t)(seq >> (8 * i));
	return 22;
}

static void
entry_hash(uint8_t hash[AMU_LEDGER_HASHBYTES], const uint8_t *packed, size_t len)
{
	crypto_generichash_state state;

	crypto_generichash_init(&state, NULL, 0, AMU_LEDGER_HASHBYTES);
	crypto_generichash_update(&state, (const uint8_t *)HASH_CONTEXT, strlen(HASH_CONTEXT));
	crypto_generichash_update(&state, packed, len);
	crypto_generichash_final(&state, hash, AMU_LEDGER_HASHBYTES);
}

static char *
hash_to_id(const uint8_t hash[AMU_LEDGER_HASHBYTES])
{
	char *id = g_malloc(AMU_LEDGER_ID_LEN + 1);
	sodium_bin2hex(id, AMU_LEDGER_ID_LEN + 1, hash, AMU_LEDGER_ID_LEN / 2);
	return id;
}

/* the head record: seq (8 bytes LE) || hash of the last entry */
static gboolean
ledger_read_head(AmuLedger *ledger, gboolean *present, uint64_t *seq, uint8_t hash[AMU_LEDGER_HASHBYTES],
		 GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) head = amu_store_get(ledger->store, KIND_HEAD, "head", &error_local);
	const uint8_t *data;

	*present = FALSE;
	if (head == NULL) {
		if (g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND))
			return TRUE;
		g_propagate_error(error, g_steal_pointer(&error_local));
		return FALSE;
	}
	if (g_bytes_get_size(head) != 8 + AMU_LEDGER_HASHBYTES) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_TAMPERED, "the consent ledger's head record is malformed");
		return FALSE;
	}
	data = g_bytes_get_data(head, NULL);
	*seq = 0;
	for (int i = 0; i < 8; i++)
		*seq |= (uint64_t)data[i] << (8 * i);
	memcpy(hash, data + 8, AMU_LEDGER_HASHBYTES);
	*present = TRUE;
	return TRUE;
}

static gboolean tampered(GError **error, uint64_t seq, const char *what);

static char *
head_file_path(AmuLedger *ledger)
{
	return g_build_filename(amu_store_get_dir(ledger->store), HEAD_FILE, NULL);
}

/* The file holds seq (8 bytes LE) || hash of the last entry, sealed under
 * the master key. It is written after each commit, so after a crash it
 * may lag one entry behind, never run ahead. */
static gboolean
ledger_check_head_file(AmuLedger *ledger, uint64_t count, const uint8_t last[AMU_LEDGER_HASHBYTES],
		       const uint8_t before_last[AMU_LEDGER_HASHBYTES], GError **error)
{
	g_autofree char *path = head_file_path(ledger);
	g_autofree char *sealed = NULL;
	g_autoptr(GBytes) plain = NULL;
	const uint8_t *data;
	gsize len = 0;
	uint64_t seq = 0;

	if (!g_file_get_contents(path, &sealed, &len, NULL)) {
		if (count == 0)
			return TRUE;
		return tampered(error, count - 1, "the copy of its head kept outside the database is missing");
	}
	plain = amu_store_unseal(ledger->store, HEAD_FILE_AD, strlen(HEAD_FILE_AD), sealed, len, NULL);
	if (plain == NULL || g_bytes_get_size(plain) != 8 + AMU_LEDGER_HASHBYTES)
		return tampered(error, count, "the copy of its head kept outside the database is damaged");
	data = g_bytes_get_data(plain, NULL);
	for (int i = 0; i < 8; i++)
		seq |= (uint64_t)data[i] << (8 * i);
	if (count > 0 && seq == count - 1 && sodium_memcmp(data + 8, last, AMU_LEDGER_HASHBYTES) == 0)
		return TRUE;
	if (count > 1 && seq == count - 2 && sodium_memcmp(data + 8, before_last, AMU_LEDGER_HASHBYTES) == 0)
		return TRUE; /* a crash between the commit and the file */
	return tampered(error, count,
			"the database is older than the ledger's head: entries were dropped (a database restored from "
			"an older copy?)");
}

static gboolean
ledger_write_head_file(AmuLedger *ledger, const uint8_t head[8 + AMU_LEDGER_HASHBYTES], GError **error)
{
	g_autofree char *path = head_file_path(ledger);
	g_autoptr(GBytes) sealed = amu_store_seal(ledger->store, HEAD_FILE_AD, strlen(HEAD_FILE_AD), head,
						  8 + AMU_LEDGER_HASHBYTES);

	return g_file_set_contents_full(path, g_bytes_get_data(sealed, NULL), (gssize)g_bytes_get_size(sealed),
					G_FILE_SET_CONTENTS_DURABLE, 0600, error);
}

/* TRUE if entry @seq has this hash and signature, and both were verified */
static gboolean
ledger_was_verified(AmuLedger *ledger, uint64_t seq, const uint8_t *hash, const uint8_t *signature)
{
	const uint8_t *cached;

	if (seq >= ledger->verified->len / VERIFIED_BYTES)
		return FALSE;
	cached = ledger->verified->data + seq * VERIFIED_BYTES;
	return memcmp(cached, hash, AMU_LEDGER_HASHBYTES) == 0 &&
	       memcmp(cached + AMU_LEDGER_HASHBYTES, signature, crypto_sign_BYTES) == 0;
}

/* entry @seq verified: the cache ends with it */
static void
ledger_set_verified(AmuLedger *ledger, uint64_t seq, const uint8_t *hash, const uint8_t *signature)
{
	g_byte_array_set_size(ledger->verified, (guint)(seq * VERIFIED_BYTES));
	g_byte_array_append(ledger->verified, hash, AMU_LEDGER_HASHBYTES);
	g_byte_array_append(ledger->verified, signature, crypto_sign_BYTES);
}

static gboolean
tampered(GError **error, uint64_t seq, const char *what)
{
	g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED,
		    "the consent ledger was altered at entry %" G_GUINT64_FORMAT ": %s; no export is allowed until it is "
		    "restored from a backup",
		    seq, what);
	return FALSE;
}

static void
entry_free(gpointer entry)
{
	amulet__v1__ledger_entry__free_unpacked(entry, NULL);
}

/* the database's state, as the kept chain remembers it */
static gboolean
ledger_db_state(AmuLedger *ledger, sqlite3_int64 *data_version, sqlite3_int64 *changes)
{
	sqlite3 *db = amu_store_get_db(ledger->store);
	g_autoptr(sqlite3_stmt) stmt = NULL;

	if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW)
		return FALSE;
	*data_version = sqlite3_column_int64(stmt, 0);
	*changes = sqlite3_total_changes64(db);
	return TRUE;
}

static void
ledger_forget_chain(AmuLedger *ledger)
{
	g_clear_pointer(&ledger->chain.entries, g_ptr_array_unref);
	g_clear_pointer(&ledger->chain.ids, g_ptr_array_unref);
}

/* The kept chain, if the database is as it was then: its head file is
 * checked again (it lives outside the database), then @func sees each
 * entry. Returns FALSE with @handled FALSE when a full walk is needed. */
static gboolean
ledger_walk_kept(AmuLedger *ledger, AmuLedgerFunc func, void *user_data, uint8_t last_hash[AMU_LEDGER_HASHBYTES],
		 uint64_t *count, gboolean *handled, GError **error)
{
	g_autoptr(GPtrArray) entries = NULL;
	g_autoptr(GPtrArray) ids = NULL;
	sqlite3_int64 data_version, changes;

	*handled = FALSE;
	if (ledger->chain.entries == NULL || !ledger_db_state(ledger, &data_version, &changes) ||
	    data_version != ledger->chain.data_version || changes != ledger->chain.changes)
		return FALSE;
	*handled = TRUE;
	/* held, so a callback that appends cannot free them under us */
	entries = g_ptr_array_ref(ledger->chain.entries);
	ids = g_ptr_array_ref(ledger->chain.ids);
	if (!ledger_check_head_file(ledger, entries->len, ledger->chain.last, ledger->chain.before_last, error)) {
		ledger_forget_chain(ledger);
		return FALSE;
	}
	memcpy(last_hash, ledger->chain.last, AMU_LEDGER_HASHBYTES);
	for (guint i = 0; i < entries->len; i++) {
		if (func != NULL && !func(g_ptr_array_index(entries, i), g_ptr_array_index(ids, i), user_data, error))
			return FALSE;
	}
	*count = entries->len;
	return TRUE;
}

/* Walks the chain; on success @last_hash and @count describe its end. */
static gboolean
ledger_walk(AmuLedger *ledger, AmuLedgerFunc func, void *user_data, uint8_t last_hash[AMU_LEDGER_HASHBYTES],
	    uint64_t *count, GError **error)
{
	sqlite3 *db = amu_store_get_db(ledger->store);
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(entry_free);
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
	uint8_t prev[AMU_LEDGER_HASHBYTES] = {0};
	uint8_t prev_prev[AMU_LEDGER_HASHBYTES] = {0};
	uint8_t head_hash[AMU_LEDGER_HASHBYTES];
	uint64_t expected = 0, head_seq = 0;
	gboolean head_present = FALSE, handled = FALSE, ok_kept;
	sqlite3_int64 data_version = 0, changes = 0;
	gboolean have_state;
	int rc;

	ok_kept = ledger_walk_kept(ledger, func, user_data, last_hash, count, &handled, error);
	if (handled)
		return ok_kept;
	ledger_forget_chain(ledger);
	/* the state before reading: a commit by anyone during the walk makes
	 * the next walk a full one */
	have_state = ledger_db_state(ledger, &data_version, &changes);
	if (!ledger_read_head(ledger, &head_present, &head_seq, head_hash, error))
		return FALSE;
	rc = sqlite3_prepare_v2(db, "SELECT seq, sealed, hash, signature FROM consent_ledger ORDER BY seq", -1, &stmt,
				NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(stmt, 0);
		const void *sealed = sqlite3_column_blob(stmt, 1);
		size_t sealed_len = (size_t)sqlite3_column_bytes(stmt, 1);
		const uint8_t *stored_hash = sqlite3_column_blob(stmt, 2);
		const uint8_t *signature = sqlite3_column_blob(stmt, 3);
		uint8_t ad[32], hash[AMU_LEDGER_HASHBYTES];
		g_autoptr(GBytes) plain = NULL;
		char *id;
		Amulet__V1__LedgerEntry *entry;
		gboolean ok = TRUE;

		rc = SQLITE_OK;
		if (seq != expected)
			return tampered(error, expected, seq > expected ? "an entry is missing" : "entries are out of order");
		if (sqlite3_column_bytes(stmt, 2) != AMU_LEDGER_HASHBYTES ||
		    sqlite3_column_bytes(stmt, 3) != crypto_sign_BYTES)
			return tampered(error, seq, "its hash or signature is malformed");
		plain = amu_store_unseal(ledger->store, ad, entry_ad(ad, seq), sealed, sealed_len, NULL);
		if (plain == NULL)
			return tampered(error, seq, "its sealed content was edited or moved");
		entry_hash(hash, g_bytes_get_data(plain, NULL), g_bytes_get_size(plain));
		if (sodium_memcmp(hash, stored_hash, AMU_LEDGER_HASHBYTES) != 0)
			return tampered(error, seq, "its hash does not match its content");
		if (!ledger_was_verified(ledger, seq, hash, signature)) {
			if (crypto_sign_verify_detached(signature, hash, AMU_LEDGER_HASHBYTES, ledger->public_key) != 0) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
					    "consent ledger entry %" G_GUINT64_FORMAT
					    " is not signed by this host's owner key",
					    seq);
				return FALSE;
			}
			ledger_set_verified(ledger, seq, hash, signature);
		}
		entry = amulet__v1__ledger_entry__unpack(NULL, g_bytes_get_size(plain), g_bytes_get_data(plain, NULL));
		if (entry == NULL)
			return tampered(error, seq, "it does not parse");
		if (entry->seq != seq || entry->prev_hash.len != AMU_LEDGER_HASHBYTES ||
		    sodium_memcmp(entry->prev_hash.data, prev, AMU_LEDGER_HASHBYTES) != 0) {
			amulet__v1__ledger_entry__free_unpacked(entry, NULL);
			return tampered(error, seq, "it does not follow the entry before it");
		}
		id = hash_to_id(hash);
		g_ptr_array_add(entries, entry);
		g_ptr_array_add(ids, id);
		if (func != NULL)
			ok = func(entry, id, user_data, error);
		if (!ok)
			return FALSE;
		memcpy(prev_prev, prev, sizeof(prev));
		memcpy(prev, hash, sizeof(prev));
		expected++;
	}
	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(ledger->store, error, rc, "reading the consent ledger");
		return FALSE;
	}
	if (expected == 0 && head_present)
		return tampered(error, 0, "every entry was deleted");
	if (expected > 0) {
		if (!head_present)
			return tampered(error, expected - 1, "the record of its last entry is missing");
		if (head_seq != expected - 1 || sodium_memcmp(head_hash, prev, AMU_LEDGER_HASHBYTES) != 0)
			return tampered(error, expected, "entries at its end were deleted");
	}
	if (!ledger_check_head_file(ledger, expected, prev, prev_prev, error))
		return FALSE;
	memcpy(last_hash, prev, AMU_LEDGER_HASHBYTES);
	*count = expected;
	if (have_state) {
		ledger->chain.entries = g_steal_pointer(&entries);
		ledger->chain.ids = g_steal_pointer(&ids);
		memcpy(ledger->chain.last, prev, AMU_LEDGER_HASHBYTES);
		memcpy(ledger->chain.before_last, prev_prev, AMU_LEDGER_HASHBYTES);
		ledger->chain.data_version = data_version;
		ledger->chain.changes = changes;
	}
	return TRUE;
}

gboolean
amu_ledger_foreach(AmuLedger *ledger, AmuLedgerFunc func, void *user_data, guint64 *n_entries, GError **error)
{
	uint8_t last[AMU_LEDGER_HASHBYTES];
	uint64_t count = 0;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!ledger_walk(ledger, func, user_data, last, &count, error))
		return FALSE;
	if (n_entries != NULL)
		*n_entries = count;
	return TRUE;
}

static gboolean
ledger_append_locked(AmuLedger *ledger, Amulet__V1__LedgerEntry *entry, int64_t now_ms, char **id,
		     uint8_t head[8 + AMU_LEDGER_HASHBYTES], Amulet__V1__LedgerEntry **appended, GError **error)
{
	sqlite3 *db = amu_store_get_db(ledger->store);
	g_autoptr(sqlite3_stmt) stmt = NULL;
	uint8_t prev[AMU_LEDGER_HASHBYTES], hash[AMU_LEDGER_HASHBYTES];
	uint8_t signature[crypto_sign_BYTES], ad[32];
	uint64_t count = 0;
	g_autofree uint8_t *packed = NULL;
	g_autoptr(GBytes) sealed = NULL;
	size_t len;
	int rc;

	if (!ledger_walk(ledger, NULL, NULL, prev, &count, error))
		return FALSE;
	entry->seq = count;
	entry->time_ms = now_ms;
	entry->prev_hash.data = prev;
	entry->prev_hash.len = sizeof(prev);
	len = amulet__v1__ledger_entry__get_packed_size(entry);
	packed = g_malloc(len + 1);
	amulet__v1__ledger_entry__pack(entry, packed);
	entry->prev_hash.data = NULL;
	entry->prev_hash.len = 0;
	entry_hash(hash, packed, len);
	crypto_sign_detached(signature, NULL, hash, sizeof(hash), ledger->secret_key);
	/* as a walk would hand it out, for the kept chain */
	*appended = amulet__v1__ledger_entry__unpack(NULL, len, packed);
	sealed = amu_store_seal(ledger->store, ad, entry_ad(ad, count), packed, len);
	sodium_memzero(packed, len);
	rc = sqlite3_prepare_v2(db, "INSERT INTO consent_ledger(seq, sealed, hash, signature) VALUES(?1, ?2, ?3, ?4)", -1,
				&stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(stmt, 1, (sqlite3_int64)count);
		sqlite3_bind_blob(stmt, 2, g_bytes_get_data(sealed, NULL), (int)g_bytes_get_size(sealed), SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 3, hash, sizeof(hash), SQLITE_STATIC);
		sqlite3_bind_blob(stmt, 4, signature, sizeof(signature), SQLITE_STATIC);
		rc = sqlite3_step(stmt);
	}
	if (rc != SQLITE_DONE) {
		amu_store_set_sqlite_error(ledger->store, error, rc, "appending to the consent ledger");
		return FALSE;
	}
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(count >> (8 * i));
	memcpy(head + 8, hash, sizeof(hash));
	if (!amu_store_put(ledger->store, KIND_HEAD, "head", head, 8 + AMU_LEDGER_HASHBYTES, error))
		return FALSE;
	if (id != NULL)
		*id = hash_to_id(hash);
	return TRUE;
}

/* The entry @head ends the chain now: the kept chain, if it was current
 * before the append, takes it (and this connection's own writes). */
static void
ledger_keep_appended(AmuLedger *ledger, Amulet__V1__LedgerEntry *appended, const uint8_t head[8 + AMU_LEDGER_HASHBYTES])
{
	if (ledger->chain.entries == NULL || appended == NULL || appended->seq != ledger->chain.entries->len) {
		ledger_forget_chain(ledger);
		if (appended != NULL)
			entry_free(appended);
		return;
	}
	g_ptr_array_add(ledger->chain.entries, appended);
	g_ptr_array_add(ledger->chain.ids, hash_to_id(head + 8));
	memcpy(ledger->chain.before_last, ledger->chain.last, AMU_LEDGER_HASHBYTES);
	memcpy(ledger->chain.last, head + 8, AMU_LEDGER_HASHBYTES);
	/* data_version stays as read before: a commit by another connection
	 * since then still forces a full walk */
	ledger->chain.changes = sqlite3_total_changes64(amu_store_get_db(ledger->store));
}

gboolean
amu_ledger_append(AmuLedger *ledger, Amulet__V1__LedgerEntry *entry, int64_t now_ms, char **id, GError **error)
{
	uint8_t head[8 + AMU_LEDGER_HASHBYTES];
	Amulet__V1__LedgerEntry *appended = NULL;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!amu_store_begin(ledger->store, error))
		return FALSE;
	if (!ledger_append_locked(ledger, entry, now_ms, id, head, &appended, error) ||
	    !amu_store_commit(ledger->store, error)) {
		amu_store_rollback(ledger->store);
		ledger_forget_chain(ledger);
		if (appended != NULL)
			entry_free(appended);
		if (id != NULL)
			g_clear_pointer(id, g_free);
		return FALSE;
	}
	ledger_keep_appended(ledger, appended, head);
	if (!ledger_write_head_file(ledger, head, error)) {
		g_prefix_error(error, "the entry is recorded, but its head file could not be written: ");
		return FALSE;
	}
	return TRUE;
}
