/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "amu-ledger.h"
#include "amu-store.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The consent ledger (docs/consent.md): what append writes comes back from
 * foreach, in order and with the same ids, and every way of editing the
 * table behind its back (a flipped byte in a seal, hash or signature, a
 * deleted, reordered or replayed row, a missing or stale head) is reported
 * as TAMPERED or BAD_SIGNATURE naming the entry, after which nothing more
 * can be appended. */

#define DB_NAME "amulet.db"
#define N_ENTRIES 4

typedef struct {
	char *root;
	char *dir;
	AmuStore *store;
	AmuLedger *ledger;
	uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
	uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
	char *ids[N_ENTRIES];
} Fixture;

static const uint8_t master_key[AMU_STORE_KEYBYTES] = {
	0x6c, 0x65, 0x64, 0x67, 0x65, 0x72, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x2d, 0x6d, 0x61, 0x73, 0x74,
	0x65, 0x72, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
};

static void
fixture_free(Fixture *fixture)
{
	amu_ledger_free(fixture->ledger);
	amu_store_unref(fixture->store);
	amu_test_remove_tree(fixture->root);
	g_free(fixture->root);
	g_free(fixture->dir);
	for (guint i = 0; i < N_ENTRIES; i++)
		g_free(fixture->ids[i]);
	sodium_memzero(fixture->secret_key, sizeof(fixture->secret_key));
	g_free(fixture);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Fixture, fixture_free)

/* a grant, an export under it, its revocation and an export refused after it */
static gboolean
append_grant(AmuLedger *ledger, gint64 now_ms, char **id, GError **error)
{
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentGrant grant = AMULET__V1__CONSENT_GRANT__INIT;
	char *categories[] = {(char *)"heart_rate", (char *)"steps"};

	grant.device_id = (char *)"5985960f0edfa07be342b0bd4226d4c7";
	grant.n_categories = G_N_ELEMENTS(categories);
	grant.categories = categories;
	grant.purpose = (char *)"cardiology review";
	grant.recipient_name = (char *)"Dr. Lee";
	grant.from_ms = 1793491200000;
	grant.to_ms = 1793577600000;
	grant.expires_ms = now_ms + 86400000;
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_GRANT;
	entry.grant = &grant;
	return amu_ledger_append(ledger, &entry, now_ms, id, error);
}

static gboolean
append_access(AmuLedger *ledger, const char *grant_id, const char *refusal, gint64 now_ms, char **id,
	      GError **error)
{
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentAccess access = AMULET__V1__CONSENT_ACCESS__INIT;

	access.grant_id = (char *)grant_id;
	access.format = (char *)"csv";
	access.samples = refusal != NULL ? 0 : 43920;
	access.manifest_sha256 = (char *)(refusal != NULL ? "" : "20f9d6d075d31411");
	access.refused = refusal != NULL;
	access.detail = (char *)(refusal != NULL ? refusal : "");
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_ACCESS;
	entry.access = &access;
	return amu_ledger_append(ledger, &entry, now_ms, id, error);
}

static gboolean
append_revoke(AmuLedger *ledger, const char *grant_id, gint64 now_ms, char **id, GError **error)
{
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentRevoke revoke = AMULET__V1__CONSENT_REVOKE__INIT;

	revoke.grant_id = (char *)grant_id;
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_REVOKE;
	entry.revoke = &revoke;
	return amu_ledger_append(ledger, &entry, now_ms, id, error);
}

static AmuStore *
open_store(Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	AmuStore *store = amu_store_open_with_key(fixture->dir, DB_NAME, master_key, &error);

	if (error != NULL)
		g_printerr("  open: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(store);
	return store;
}

/* An empty ledger in a new store. */
static Fixture *
fixture_new_empty(void)
{
	Fixture *fixture = g_new0(Fixture, 1);

	CU_ASSERT_FATAL(sodium_init() >= 0);
	fixture->root = g_dir_make_tmp("amu-ledger-XXXXXX", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fixture->root);
	fixture->dir = g_build_filename(fixture->root, "data", NULL);
	fixture->store = open_store(fixture);
	crypto_sign_keypair(fixture->public_key, fixture->secret_key);
	fixture->ledger = amu_ledger_new(fixture->store, fixture->public_key, fixture->secret_key);
	return fixture;
}

/* Appends entry @i of: a grant, an export under it, its revocation, and an
 * export refused after that. */
static void
fixture_append(Fixture *fixture, guint i)
{
	g_autoptr(GError) error = NULL;
	gint64 now_ms = (gint64)(i + 1) * 1000;
	gboolean ok = FALSE;

	switch (i) {
	case 0:
		ok = append_grant(fixture->ledger, now_ms, &fixture->ids[0], &error);
		break;
	case 1:
		ok = append_access(fixture->ledger, fixture->ids[0], NULL, now_ms, &fixture->ids[1], &error);
		break;
	case 2:
		ok = append_revoke(fixture->ledger, fixture->ids[0], now_ms, &fixture->ids[2], &error);
		break;
	case 3:
		ok = append_access(fixture->ledger, fixture->ids[0], "grant was revoked", now_ms, &fixture->ids[3],
				   &error);
		break;
	}
	if (error != NULL)
		g_printerr("  append %u: %s\n", i, error->message);
	CU_ASSERT_TRUE_FATAL(ok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fixture->ids[i]);
}

/* A store with a ledger of N_ENTRIES entries, their ids in fixture->ids. */
static Fixture *
fixture_new(void)
{
	Fixture *fixture = fixture_new_empty();

	for (guint i = 0; i < N_ENTRIES; i++)
		fixture_append(fixture, i);
	return fixture;
}

static void
exec_ok(AmuStore *store, const char *sql)
{
	g_autoptr(GError) error = NULL;

	if (!amu_store_exec(store, sql, &error))
		g_printerr("  %s: %s\n", sql, error->message);
	CU_ASSERT_PTR_NULL(error);
}

static int
query_int(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return sqlite3_column_int(stmt, 0);
}

static GBytes *
query_blob(AmuStore *store, const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
	return g_bytes_new(sqlite3_column_blob(stmt, 0), (gsize)sqlite3_column_bytes(stmt, 0));
}

/* Flips one bit of byte @offset (from the end if negative) of @column in row @seq. */
static void
flip_byte(AmuStore *store, const char *column, int seq, int offset)
{
	g_autofree char *select = g_strdup_printf("SELECT %s FROM consent_ledger WHERE seq = %d", column, seq);
	g_autofree char *update = g_strdup_printf("UPDATE consent_ledger SET %s = ?1 WHERE seq = %d", column, seq);
	g_autoptr(GBytes) value = query_blob(store, select);
	g_autoptr(sqlite3_stmt) stmt = NULL;
	gsize len = g_bytes_get_size(value);
	g_autofree uint8_t *data = g_memdup2(g_bytes_get_data(value, NULL), len);
	gsize at = offset >= 0 ? (gsize)offset : len - (gsize)-offset;

	CU_ASSERT_FATAL(at < len);
	data[at] ^= 0x01;
	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(store), update, -1, &stmt, NULL), SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, data, (int)len, SQLITE_STATIC);
	CU_ASSERT_EQUAL(sqlite3_step(stmt), SQLITE_DONE);
}

/* TRUE if @message says "entry @seq", not "entry @seq" followed by more digits */
static gboolean
names_entry(const char *message, guint seq)
{
	g_autofree char *needle = g_strdup_printf("entry %u", seq);
	const char *at = message;

	while ((at = strstr(at, needle)) != NULL) {
		at += strlen(needle);
		if (!g_ascii_isdigit(*at))
			return TRUE;
	}
	return FALSE;
}

typedef struct {
	guint n;
	guint64 seq[N_ENTRIES + 1];
	gint64 time_ms[N_ENTRIES + 1];
	Amulet__V1__LedgerEntry__BodyCase body[N_ENTRIES + 1];
	char *ids[N_ENTRIES + 1];
	char *detail[N_ENTRIES + 1]; /* purpose, grant id or refusal */
} Collected;

static void
collected_clear(Collected *collected)
{
	for (guint i = 0; i < collected->n; i++) {
		g_free(collected->ids[i]);
		g_free(collected->detail[i]);
	}
	collected->n = 0;
}

static gboolean
collect_cb(const Amulet__V1__LedgerEntry *entry, const char *id, void *user_data, GError **error)
{
	Collected *collected = user_data;
	guint i = collected->n;

	if (i > N_ENTRIES) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED, "more entries than were appended");
		return FALSE;
	}
	collected->seq[i] = entry->seq;
	collected->time_ms[i] = entry->time_ms;
	collected->body[i] = entry->body_case;
	collected->ids[i] = g_strdup(id);
	switch (entry->body_case) {
	case AMULET__V1__LEDGER_ENTRY__BODY_GRANT:
		collected->detail[i] = g_strdup(entry->grant->purpose);
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY_REVOKE:
		collected->detail[i] = g_strdup(entry->revoke->grant_id);
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY_ACCESS:
		collected->detail[i] = g_strdup(entry->access->refused ? entry->access->detail : entry->access->grant_id);
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY__NOT_SET:
	case _AMULET__V1__LEDGER_ENTRY__BODY__CASE_IS_INT_SIZE:
		break;
	}
	collected->n++;
	return TRUE;
}

/* The chain no longer verifies: @code, naming entry @seq and saying
 * @reason; and an append on it fails and writes nothing. */
static void
assert_broken(Fixture *fixture, int code, guint seq, const char *reason)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) append_error = NULL;
	g_autofree char *id = NULL;
	g_autoptr(GBytes) head_before = NULL;
	g_autoptr(GBytes) head_after = NULL;
	guint64 n = 999;
	int rows = query_int(fixture->store, "SELECT count(*) FROM consent_ledger");
	int head_rows = query_int(fixture->store, "SELECT count(*) FROM records WHERE kind = 'ledger-head'");

	CU_ASSERT_FALSE(amu_ledger_foreach(fixture->ledger, NULL, NULL, &n, &error));
	CU_ASSERT_PTR_NOT_NULL_FATAL(error);
	CU_ASSERT_EQUAL(error->domain, AMU_ERROR);
	if (error->code != code || !names_entry(error->message, seq) || strstr(error->message, reason) == NULL)
		g_printerr("  expected error %d naming entry %u (%s), got %d: %s\n", code, seq, reason, error->code,
			   error->message);
	CU_ASSERT_EQUAL(error->code, code);
	CU_ASSERT_TRUE(names_entry(error->message, seq));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, reason));
	CU_ASSERT_EQUAL(n, 999); /* not touched on failure */

	/* no writes on a broken chain */
	if (head_rows > 0)
		head_before = query_blob(fixture->store, "SELECT sealed FROM records WHERE kind = 'ledger-head'");
	CU_ASSERT_FALSE(append_access(fixture->ledger, fixture->ids[0], "after tampering", 5000, &id, &append_error));
	CU_ASSERT_PTR_NULL(id);
	CU_ASSERT_PTR_NOT_NULL_FATAL(append_error);
	CU_ASSERT_EQUAL(append_error->code, code);
	CU_ASSERT_EQUAL(query_int(fixture->store, "SELECT count(*) FROM consent_ledger"), rows);
	CU_ASSERT_EQUAL(query_int(fixture->store, "SELECT count(*) FROM records WHERE kind = 'ledger-head'"), head_rows);
	if (head_rows > 0) {
		head_after = query_blob(fixture->store, "SELECT sealed FROM records WHERE kind = 'ledger-head'");
		CU_ASSERT_TRUE(g_bytes_equal(head_before, head_after));
	}
}

static void
test_append_and_foreach(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	Collected collected = {0};
	static const Amulet__V1__LedgerEntry__BodyCase bodies[N_ENTRIES] = {
		AMULET__V1__LEDGER_ENTRY__BODY_GRANT,
		AMULET__V1__LEDGER_ENTRY__BODY_ACCESS,
		AMULET__V1__LEDGER_ENTRY__BODY_REVOKE,
		AMULET__V1__LEDGER_ENTRY__BODY_ACCESS,
	};
	guint64 n = 0;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, collect_cb, &collected, &n, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(n, N_ENTRIES);
	CU_ASSERT_EQUAL_FATAL(collected.n, N_ENTRIES);
	for (guint i = 0; i < N_ENTRIES; i++) {
		g_autofree char *sql = g_strdup_printf("SELECT lower(hex(substr(hash, 1, 8))) FROM consent_ledger "
						       "WHERE seq = %u", i);
		g_autoptr(sqlite3_stmt) stmt = NULL;

		CU_ASSERT_EQUAL(collected.seq[i], i);
		CU_ASSERT_EQUAL(collected.time_ms[i], (gint64)(i + 1) * 1000);
		CU_ASSERT_EQUAL(collected.body[i], bodies[i]);
		CU_ASSERT_EQUAL(strlen(fixture->ids[i]), AMU_LEDGER_ID_LEN);
		CU_ASSERT_STRING_EQUAL(collected.ids[i], fixture->ids[i]);
		/* the id is the start of the hash stored in the row */
		CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(fixture->store), sql, -1, &stmt, NULL),
				      SQLITE_OK);
		CU_ASSERT_EQUAL_FATAL(sqlite3_step(stmt), SQLITE_ROW);
		CU_ASSERT_STRING_EQUAL((const char *)sqlite3_column_text(stmt, 0), fixture->ids[i]);
	}
	/* ids differ, and each entry's content came back */
	CU_ASSERT_STRING_NOT_EQUAL(fixture->ids[0], fixture->ids[1]);
	CU_ASSERT_STRING_NOT_EQUAL(fixture->ids[1], fixture->ids[3]);
	CU_ASSERT_STRING_EQUAL(collected.detail[0], "cardiology review");
	CU_ASSERT_STRING_EQUAL(collected.detail[1], fixture->ids[0]);
	CU_ASSERT_STRING_EQUAL(collected.detail[2], fixture->ids[0]);
	CU_ASSERT_STRING_EQUAL(collected.detail[3], "grant was revoked");
	collected_clear(&collected);

	/* durable: a new store connection and ledger object read the same */
	amu_ledger_free(g_steal_pointer(&fixture->ledger));
	amu_store_unref(g_steal_pointer(&fixture->store));
	fixture->store = open_store(fixture);
	fixture->ledger = amu_ledger_new(fixture->store, fixture->public_key, fixture->secret_key);
	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, collect_cb, &collected, &n, &error));
	CU_ASSERT_EQUAL(n, N_ENTRIES);
	CU_ASSERT_EQUAL(collected.n, N_ENTRIES);
	for (guint i = 0; i < collected.n; i++)
		CU_ASSERT_STRING_EQUAL(collected.ids[i], fixture->ids[i]);
	collected_clear(&collected);
}

static void
test_empty_ledger(void)
{
	g_autoptr(Fixture) fixture = fixture_new_empty();
	g_autoptr(GError) error = NULL;
	Collected collected = {0};
	guint64 n = 999;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, collect_cb, &collected, &n, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(collected.n, 0);
}

/* the owner's decisions are private at rest: no field in the clear */
static void
test_sealed_at_rest(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	CU_ASSERT_EQUAL(query_int(fixture->store, "SELECT count(*) FROM consent_ledger WHERE instr(sealed, "
						  "CAST('cardiology' AS BLOB)) > 0 OR instr(sealed, CAST('Dr. Lee' AS BLOB)) > 0"),
			0);
	CU_ASSERT_EQUAL(query_int(fixture->store, "SELECT count(*) FROM consent_ledger"), N_ENTRIES);
}

static void
test_flip_sealed_byte(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	flip_byte(fixture->store, "sealed", 1, 40);
	assert_broken(fixture, AMU_ERROR_TAMPERED, 1, "sealed content was edited");
}

static void
test_flip_hash_byte(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	flip_byte(fixture->store, "hash", 2, 31);
	assert_broken(fixture, AMU_ERROR_TAMPERED, 2, "hash does not match");
}

static void
test_flip_signature_byte(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	flip_byte(fixture->store, "signature", 1, 5);
	assert_broken(fixture, AMU_ERROR_BAD_SIGNATURE, 1, "not signed by");
}

/* A walk remembers the entries it verified; an entry changed after that
 * is verified again, not taken from memory. */
static void
test_tamper_after_verified_walk(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	guint64 n = 0;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, &n, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(n, N_ENTRIES);
	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, &n, &error));
	CU_ASSERT_EQUAL(n, N_ENTRIES);
	flip_byte(fixture->store, "signature", N_ENTRIES - 1, -1);
	assert_broken(fixture, AMU_ERROR_BAD_SIGNATURE, N_ENTRIES - 1, "not signed by");
}

/* Entry 1's valid hash and signature copied onto entry 2, both verified
 * before: the pair is known, but not for that content. */
static void
test_verified_pair_moved(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, NULL, &error));
	CU_ASSERT_PTR_NULL(error);
	exec_ok(fixture->store, "UPDATE consent_ledger SET hash = (SELECT hash FROM consent_ledger WHERE seq = 1), "
				"signature = (SELECT signature FROM consent_ledger WHERE seq = 1) WHERE seq = 2");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 2, "hash does not match");
}

/* Another connection (another process, in real use) changes the table
 * after a walk kept the chain: PRAGMA data_version moves, and the next walk
 * verifies everything again. */
static void
test_other_connection_after_kept_walk(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	g_autofree char *path = g_build_filename(fixture->dir, DB_NAME, NULL);
	sqlite3 *other = NULL;
	guint64 n = 0;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, &n, &error));
	CU_ASSERT_EQUAL(n, N_ENTRIES);
	CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(other,
				     "UPDATE consent_ledger SET signature = "
				     "(SELECT signature FROM consent_ledger WHERE seq = 0) WHERE seq = 2",
				     NULL, NULL, NULL),
			SQLITE_OK);
	sqlite3_close(other);
	assert_broken(fixture, AMU_ERROR_BAD_SIGNATURE, 2, "not signed by");
}

/* The head file lives outside the database: a walk from the kept chain
 * still checks it. */
static void
test_head_file_after_kept_walk(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	g_autofree char *head_file = g_build_filename(fixture->dir, "consent-ledger.head", NULL);

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, NULL, &error));
	CU_ASSERT_EQUAL(g_unlink(head_file), 0);
	CU_ASSERT_FALSE(amu_ledger_foreach(fixture->ledger, NULL, NULL, NULL, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	CU_ASSERT_PTR_NOT_NULL(error != NULL ? strstr(error->message, "outside the database is missing") : NULL);
}

/* Appends go onto the kept chain; what a walk then hands out is what a
 * new ledger object, verifying all of it, reads from the database. */
static void
test_appends_keep_the_chain(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	Collected kept = {0}, fresh = {0};
	AmuLedger *other;
	g_autofree char *id = NULL;
	guint64 n = 0;

	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, &n, &error));
	CU_ASSERT_TRUE_FATAL(append_access(fixture->ledger, fixture->ids[0], "after a kept walk", 9000, &id, &error));
	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, collect_cb, &kept, &n, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_EQUAL(n, N_ENTRIES + 1);
	other = amu_ledger_new(fixture->store, fixture->public_key, fixture->secret_key);
	CU_ASSERT_TRUE(amu_ledger_foreach(other, collect_cb, &fresh, &n, &error));
	CU_ASSERT_EQUAL(n, N_ENTRIES + 1);
	CU_ASSERT_EQUAL_FATAL(kept.n, fresh.n);
	for (guint i = 0; i < kept.n; i++) {
		CU_ASSERT_EQUAL(kept.seq[i], fresh.seq[i]);
		CU_ASSERT_EQUAL(kept.time_ms[i], fresh.time_ms[i]);
		CU_ASSERT_EQUAL(kept.body[i], fresh.body[i]);
		CU_ASSERT_STRING_EQUAL(kept.ids[i], fresh.ids[i]);
		CU_ASSERT_STRING_EQUAL(kept.detail[i], fresh.detail[i]);
	}
	CU_ASSERT_STRING_EQUAL(kept.ids[N_ENTRIES], id);
	CU_ASSERT_STRING_EQUAL(kept.detail[N_ENTRIES], "after a kept walk");
	collected_clear(&kept);
	collected_clear(&fresh);
	amu_ledger_free(other);
	/* and tampering with the appended entry is still seen */
	flip_byte(fixture->store, "signature", N_ENTRIES, 7);
	assert_broken(fixture, AMU_ERROR_BAD_SIGNATURE, N_ENTRIES, "not signed by");
}

static void
test_delete_last(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	exec_ok(fixture->store, "DELETE FROM consent_ledger WHERE seq = 3");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 3, "deleted");
}

static void
test_delete_middle(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	exec_ok(fixture->store, "DELETE FROM consent_ledger WHERE seq = 1");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 1, "missing");
}

static void
test_swap_seq(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	exec_ok(fixture->store, "UPDATE consent_ledger SET seq = -1 WHERE seq = 1;"
				"UPDATE consent_ledger SET seq = 1 WHERE seq = 2;"
				"UPDATE consent_ledger SET seq = 2 WHERE seq = -1");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 1, "edited or moved");
}

static void
test_delete_all_keep_head(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	exec_ok(fixture->store, "DELETE FROM consent_ledger");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 0, "every entry was deleted");
}

static void
test_delete_head(void)
{
	g_autoptr(Fixture) fixture = fixture_new();

	exec_ok(fixture->store, "DELETE FROM records WHERE kind = 'ledger-head'");
	assert_broken(fixture, AMU_ERROR_TAMPERED, 3, "missing");
}

/* Whoever can write amulet.db can keep an old copy of the sealed head
 * record; putting it back and deleting the rows after it (here: the
 * revocation and the refusal after it) must not pass as a shorter ledger. */
static void
test_replayed_head(void)
{
	g_autoptr(Fixture) fixture = fixture_new_empty();
	g_autoptr(GBytes) old_head = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(sqlite3_stmt) stmt = NULL;
	Collected collected = {0};

	fixture_append(fixture, 0);
	fixture_append(fixture, 1);
	old_head = query_blob(fixture->store, "SELECT sealed FROM records WHERE kind = 'ledger-head'");
	fixture_append(fixture, 2);
	fixture_append(fixture, 3);

	CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(amu_store_get_db(fixture->store),
						 "UPDATE records SET sealed = ?1 WHERE kind = 'ledger-head'", -1, &stmt,
						 NULL),
			      SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, g_bytes_get_data(old_head, NULL), (int)g_bytes_get_size(old_head), SQLITE_STATIC);
	CU_ASSERT_EQUAL(sqlite3_step(stmt), SQLITE_DONE);
	exec_ok(fixture->store, "DELETE FROM consent_ledger WHERE seq >= 2");

	if (amu_ledger_foreach(fixture->ledger, collect_cb, &collected, NULL, &error)) {
		g_printerr("  the revocation was dropped unnoticed: %u entries verify, the grant is in force again\n",
			   collected.n);
		CU_FAIL("a replayed older head with the entries after it deleted verifies");
	} else {
		AMU_ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
		CU_ASSERT_TRUE(names_entry(error->message, 2));
	}
	collected_clear(&collected);
}

/* a ledger read with another owner's key pair: the first entry is not ours */
static void
test_other_signing_key(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	uint8_t other_public[crypto_sign_PUBLICKEYBYTES], other_secret[crypto_sign_SECRETKEYBYTES];
	g_autoptr(AmuLedger) other = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) append_error = NULL;
	g_autofree char *id = NULL;
	Collected collected = {0};

	crypto_sign_keypair(other_public, other_secret);
	other = amu_ledger_new(fixture->store, other_public, other_secret);
	sodium_memzero(other_secret, sizeof(other_secret));
	CU_ASSERT_FALSE(amu_ledger_foreach(other, collect_cb, &collected, NULL, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_TRUE(names_entry(error->message, 0));
	CU_ASSERT_EQUAL(collected.n, 0); /* nothing unverified reached the callback */
	CU_ASSERT_FALSE(append_access(other, fixture->ids[0], NULL, 5000, &id, &append_error));
	AMU_ASSERT_ERROR(append_error, AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(query_int(fixture->store, "SELECT count(*) FROM consent_ledger"), N_ENTRIES);
	collected_clear(&collected);

	/* the owner's own ledger object still reads it */
	g_clear_error(&error);
	CU_ASSERT_TRUE(amu_ledger_foreach(fixture->ledger, NULL, NULL, NULL, &error));
}

/* the callback sees only verified entries: with entry 2 altered, 0 and 1 at most */
static void
test_callback_stops_at_tampering(void)
{
	g_autoptr(Fixture) fixture = fixture_new();
	g_autoptr(GError) error = NULL;
	Collected collected = {0};

	flip_byte(fixture->store, "sealed", 2, -3);
	CU_ASSERT_FALSE(amu_ledger_foreach(fixture->ledger, collect_cb, &collected, NULL, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_TAMPERED);
	CU_ASSERT_EQUAL(collected.n, 2);
	collected_clear(&collected);
}

AMU_TEST_MAIN("ledger", { "append and foreach", test_append_and_foreach }, { "empty ledger", test_empty_ledger },
	      { "sealed at rest", test_sealed_at_rest }, { "flip sealed byte", test_flip_sealed_byte },
	      { "flip hash byte", test_flip_hash_byte }, { "flip signature byte", test_flip_signature_byte },
	      { "tamper after a verified walk", test_tamper_after_verified_walk },
	      { "verified hash and signature moved", test_verified_pair_moved },
	      { "another connection after a kept walk", test_other_connection_after_kept_walk },
	      { "head file after a kept walk", test_head_file_after_kept_walk },
	      { "appends keep the chain", test_appends_keep_the_chain },
	      { "delete last", test_delete_last }, { "delete middle", test_delete_middle },
	      { "swap seq", test_swap_seq }, { "delete all rows, keep the head", test_delete_all_keep_head },
	      { "delete the head", test_delete_head },
	      { "replayed older head", test_replayed_head }, { "other signing key", test_other_signing_key },
	      { "callback stops at tampering", test_callback_stops_at_tampering })
