/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "amu-ledger.h"
#include "amu-store.h"
#include "amulet/amu-error.h"
#include "fuzz-common.h"

/*
 * Appends fuzzed entries to the consent ledger, tampers with what it
 * stored the way someone with the database file (but not the keys) could,
 * and reads it back.
 *
 * Input: operations.
 *   op < 0x80: the next op bytes are a packed Amulet.V1.LedgerEntry (cut
 *     short at the end), appended; one that does not unpack, or carries
 *     unknown fields (which no caller of amu_ledger_append() can), is
 *     skipped.
 *   op >= 0x80: a change to the stored ledger, (op & 0x7f) % 12 picks it; rows are
 *     picked by a byte modulo their number, positions by 2 bytes LE modulo
 *     the length, arguments past the end are 0:
 *     0 row pos xor   flip a byte of an entry's sealed content
 *     1 row pos xor   flip a byte of an entry's hash
 *     2 row pos xor   flip a byte of an entry's signature
 *     3 row           delete an entry
 *     4 row row       swap two entries' sequence numbers
 *     5 pos xor       flip a byte of the sealed head record
 *     6 n             put back the head record as it was n appends ago
 *     7 row col len   cut or zero-extend a column (sealed, hash, signature)
 *     8               delete the head record
 *     9 row delta     move an entry to seq + delta
 *     10 row row col  copy a column from one entry to another
 *     11              delete the head file kept outside the database
 *
 * One store (fixed master key) and ledger (fixed Ed25519 key pair) live in
 * a temporary directory, on tmpfs when /dev/shm is there, for the whole run;
 * the ledger's rows, head record and head file are removed before each
 * input.
 *
 * Invariants checked (abort on violation): the harness compares what is
 * stored (every row, the head record, the head file) with what the last
 * successful append left. While they are the same, appends succeed and
 * foreach returns every entry appended, in order, with 16-hex-digit ids.
 * Once they differ, appends and foreach fail with AMU_ERROR_TAMPERED or
 * AMU_ERROR_BAD_SIGNATURE, and a failed append changes nothing.
 *
 * The seeds in corpus/ledger/ were written by a throwaway program: packed
 * grants, accesses and revocations like the ones amu-consent.c appends,
 * some followed by one of each change. grant-access-revoke, for one, is
 * three appends; flip-signature is one append and 82 00 00 00 01.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 16
#define MAX_HEADS (MAX_ENTRIES + 1)
#define HEAD_FILE "consent-ledger.head"

static const uint8_t master_key[AMU_STORE_KEYBYTES] = { 'f', 'u', 'z', 'z', '-', 'l', 'e', 'd', 'g', 'e', 'r' };
static AmuStore *store;
static AmuLedger *ledger;
static char *store_dir;
static char *head_path;

typedef struct {
	GByteArray *rows; /* seq, then each column as length + bytes */
	GBytes *head;     /* the sealed head record, or NULL */
	GBytes *head_file;
} State;

/* No rows, no head record, no head file: a ledger wiped whole looks like a
 * new one (documented in docs/threat-model.md: with the grants gone nothing
 * can be exported, but the access log is lost). */
static gboolean
state_empty(const State *state)
{
	return state->rows->len == 0 && state->head == NULL && state->head_file == NULL;
}

static void
cleanup(void)
{
	g_clear_pointer(&ledger, amu_ledger_free);
	g_clear_pointer(&store, amu_store_unref);
	if (store_dir != NULL)
		fuzz_remove_tree(store_dir);
	g_clear_pointer(&store_dir, g_free);
	g_clear_pointer(&head_path, g_free);
}

static void
setup(void)
{
	uint8_t seed[crypto_sign_SEEDBYTES] = { 'l', 'e', 'd', 'g', 'e', 'r' };
	uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
	uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
	g_autofree char *template = NULL;
	GError *error = NULL;

	if (store != NULL)
		return;
	check(sodium_init() >= 0);
	template = g_build_filename(g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir(),
				    "amu-fuzz-ledger-XXXXXX", NULL);
	store_dir = g_mkdtemp(g_steal_pointer(&template));
	check(store_dir != NULL);
	store = amu_store_open_with_key(store_dir, "amulet.db", master_key, &error);
	if (store == NULL)
		g_error("cannot open the store: %s", error->message);
	crypto_sign_seed_keypair(public_key, secret_key, seed);
	ledger = amu_ledger_new(store, public_key, secret_key);
	sodium_memzero(secret_key, sizeof(secret_key));
	head_path = g_build_filename(store_dir, HEAD_FILE, NULL);
	atexit(cleanup);
}

static GBytes *
query_blob(const char *sql)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	check(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL) == SQLITE_OK);
	if (sqlite3_step(stmt) != SQLITE_ROW)
		return NULL;
	return g_bytes_new(sqlite3_column_blob(stmt, 0), (gsize)sqlite3_column_bytes(stmt, 0));
}

static GBytes *
head_record(void)
{
	return query_blob("SELECT sealed FROM records WHERE kind = 'ledger-head' AND id = 'head'");
}

static void
state_clear(State *state)
{
	g_clear_pointer(&state->rows, g_byte_array_unref);
	g_clear_pointer(&state->head, g_bytes_unref);
	g_clear_pointer(&state->head_file, g_bytes_unref);
}

static void
state_read(State *state)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autofree char *contents = NULL;
	gsize len = 0;

	state_clear(state);
	state->rows = g_byte_array_new();
	check(sqlite3_prepare_v2(amu_store_get_db(store),
				 "SELECT seq, sealed, hash, signature FROM consent_ledger ORDER BY seq", -1, &stmt,
				 NULL) == SQLITE_OK);
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		gint64 seq = sqlite3_column_int64(stmt, 0);

		g_byte_array_append(state->rows, (const uint8_t *)&seq, sizeof(seq));
		for (int c = 1; c <= 3; c++) {
			guint32 n = (guint32)sqlite3_column_bytes(stmt, c);

			g_byte_array_append(state->rows, (const uint8_t *)&n, sizeof(n));
			if (n > 0)
				g_byte_array_append(state->rows, sqlite3_column_blob(stmt, c), n);
		}
	}
	state->head = head_record();
	if (g_file_get_contents(head_path, &contents, &len, NULL))
		state->head_file = g_bytes_new(contents, len);
}

static gboolean
bytes_same(GBytes *a, GBytes *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && g_bytes_equal(a, b));
}

static gboolean
state_same(const State *a, const State *b)
{
	return a->rows->len == b->rows->len &&
	       (a->rows->len == 0 || memcmp(a->rows->data, b->rows->data, a->rows->len) == 0) &&
	       bytes_same(a->head, b->head) && bytes_same(a->head_file, b->head_file);
}

static void
check_tampered(GError *error)
{
	check(g_error_matches(error, AMU_ERROR, AMU_ERROR_TAMPERED) ||
	      g_error_matches(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE));
	g_error_free(error);
}

static uint8_t
arg(const uint8_t *data, size_t size, size_t *pos)
{
	return *pos < size ? data[(*pos)++] : 0;
}

static guint
arg16(const uint8_t *data, size_t size, size_t *pos)
{
	guint lo = arg(data, size, pos);

	return lo | (guint)arg(data, size, pos) << 8;
}

static int
count_rows(void)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	check(sqlite3_prepare_v2(amu_store_get_db(store), "SELECT count(*) FROM consent_ledger", -1, &stmt, NULL) ==
	      SQLITE_OK);
	check(sqlite3_step(stmt) == SQLITE_ROW);
	return sqlite3_column_int(stmt, 0);
}

/* the seq of the row @pick picks, or -1 without rows */
static gint64
pick_row(uint8_t pick)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;
	int n = count_rows();

	if (n == 0)
		return -1;
	check(sqlite3_prepare_v2(amu_store_get_db(store), "SELECT seq FROM consent_ledger ORDER BY seq LIMIT 1 OFFSET ?1",
				 -1, &stmt, NULL) == SQLITE_OK);
	sqlite3_bind_int(stmt, 1, pick % n);
	check(sqlite3_step(stmt) == SQLITE_ROW);
	return sqlite3_column_int64(stmt, 0);
}

static const char *const columns[] = { "sealed", "hash", "signature" };

static GBytes *
read_column(gint64 seq, const char *column)
{
	g_autofree char *sql = g_strdup_printf("SELECT %s FROM consent_ledger WHERE seq = %" G_GINT64_FORMAT, column, seq);

	return query_blob(sql);
}

/* an UPDATE or DELETE with ?1 bound to @blob (nullable); a failure (a
 * constraint, say) changes nothing, which the state comparison sees */
static void
run(const char *sql, GBytes *blob)
{
	g_autoptr(sqlite3_stmt) stmt = NULL;

	check(sqlite3_prepare_v2(amu_store_get_db(store), sql, -1, &stmt, NULL) == SQLITE_OK);
	if (blob != NULL)
		sqlite3_bind_blob(stmt, 1, g_bytes_get_data(blob, NULL), (int)g_bytes_get_size(blob), SQLITE_TRANSIENT);
	sqlite3_step(stmt);
}

static void
write_column(gint64 seq, const char *column, GBytes *blob)
{
	g_autofree char *sql =
		g_strdup_printf("UPDATE consent_ledger SET %s = ?1 WHERE seq = %" G_GINT64_FORMAT, column, seq);

	run(sql, blob);
}

static GBytes *
flip(GBytes *blob, guint pos, uint8_t xor)
{
	gsize len = 0;
	uint8_t *copy = g_bytes_unref_to_data(blob, &len);

	if (len > 0)
		copy[pos % len] ^= xor;
	return g_bytes_new_take(copy, len);
}

static void
tamper(uint8_t op, const uint8_t *data, size_t size, size_t *pos, GPtrArray *heads)
{
	guint kind = (op & 0x7f) % 12;

	switch (kind) {
	case 0:
	case 1:
	case 2: {
		gint64 seq = pick_row(arg(data, size, pos));
		guint at = arg16(data, size, pos);
		uint8_t xor = arg(data, size, pos);

		if (seq >= 0) {
			g_autoptr(GBytes) flipped = flip(read_column(seq, columns[kind]), at, xor);
			write_column(seq, columns[kind], flipped);
		}
		break;
	}
	case 3: {
		gint64 seq = pick_row(arg(data, size, pos));
		g_autofree char *sql = g_strdup_printf("DELETE FROM consent_ledger WHERE seq = %" G_GINT64_FORMAT, seq);

		run(sql, NULL);
		break;
	}
	case 4: {
		gint64 a = pick_row(arg(data, size, pos));
		gint64 b = pick_row(arg(data, size, pos));
		g_autofree char *sql = g_strdup_printf(
			"BEGIN; UPDATE consent_ledger SET seq = -1 WHERE seq = %" G_GINT64_FORMAT ";"
			"UPDATE consent_ledger SET seq = %" G_GINT64_FORMAT " WHERE seq = %" G_GINT64_FORMAT ";"
			"UPDATE consent_ledger SET seq = %" G_GINT64_FORMAT " WHERE seq = -1; COMMIT;",
			a, a, b, b);

		if (a >= 0 && a != b)
			check(amu_store_exec(store, sql, NULL));
		break;
	}
	case 5: {
		GBytes *head = head_record();
		guint at = arg16(data, size, pos);
		uint8_t xor = arg(data, size, pos);

		if (head != NULL) {
			g_autoptr(GBytes) flipped = flip(head, at, xor);
			run("UPDATE records SET sealed = ?1 WHERE kind = 'ledger-head' AND id = 'head'", flipped);
		}
		break;
	}
	case 6: {
		uint8_t back = arg(data, size, pos);

		if (heads->len > 0) {
			GBytes *old = g_ptr_array_index(heads, heads->len - 1 - back % heads->len);
			run("UPDATE records SET sealed = ?1 WHERE kind = 'ledger-head' AND id = 'head'", old);
		}
		break;
	}
	case 7: {
		gint64 seq = pick_row(arg(data, size, pos));
		const char *column = columns[arg(data, size, pos) % 3];
		uint8_t len = arg(data, size, pos);

		if (seq >= 0) {
			g_autoptr(GBytes) blob = read_column(seq, column);
			g_autoptr(GByteArray) resized = g_byte_array_new();
			g_autoptr(GBytes) replacement = NULL;

			g_byte_array_append(resized, g_bytes_get_data(blob, NULL), (guint)MIN(len, g_bytes_get_size(blob)));
			while (resized->len < len)
				g_byte_array_append(resized, (const uint8_t *)"", 1);
			replacement = g_bytes_new(resized->data, resized->len);
			write_column(seq, column, replacement);
		}
		break;
	}
	case 8:
		run("DELETE FROM records WHERE kind = 'ledger-head'", NULL);
		break;
	case 9: {
		gint64 seq = pick_row(arg(data, size, pos));
		int8_t delta = (int8_t)arg(data, size, pos);
		g_autofree char *sql = g_strdup_printf("UPDATE consent_ledger SET seq = seq + %d WHERE seq = %" G_GINT64_FORMAT,
						       delta, seq);

		if (seq >= 0)
			run(sql, NULL);
		break;
	}
	case 10: {
		gint64 from = pick_row(arg(data, size, pos));
		gint64 to = pick_row(arg(data, size, pos));
		const char *column = columns[arg(data, size, pos) % 3];

		if (from >= 0) {
			g_autoptr(GBytes) blob = read_column(from, column);
			write_column(to, column, blob);
		}
		break;
	}
	case 11:
		g_unlink(head_path);
		break;
	default:
		g_assert_not_reached();
	}
}

typedef struct {
	guint64 n;
} Walk;

static gboolean
walk_cb(const Amulet__V1__LedgerEntry *entry, const char *id, void *user_data, GError **error)
{
	Walk *walk = user_data;

	check(entry->seq == walk->n);
	check(entry->prev_hash.len == AMU_LEDGER_HASHBYTES);
	check(strlen(id) == AMU_LEDGER_ID_LEN && strspn(id, "0123456789abcdef") == AMU_LEDGER_ID_LEN);
	walk->n++;
	return TRUE;
}

/* The library's callers build entries field by field, so they never carry
 * unknown fields; protobuf-c keeps one numbered 0 from an overlong tag
 * (80 00) but packs it as 00, which it refuses to unpack. */
static gboolean
has_unknown_fields(const Amulet__V1__LedgerEntry *entry)
{
	const ProtobufCMessage *body = NULL;

	switch (entry->body_case) {
	case AMULET__V1__LEDGER_ENTRY__BODY_GRANT:
		body = &entry->grant->base;
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY_REVOKE:
		body = &entry->revoke->base;
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY_ACCESS:
		body = &entry->access->base;
		break;
	case AMULET__V1__LEDGER_ENTRY__BODY__NOT_SET:
	case _AMULET__V1__LEDGER_ENTRY__BODY__CASE_IS_INT_SIZE:
		break;
	}
	return entry->base.n_unknown_fields > 0 || (body != NULL && body->n_unknown_fields > 0);
}

static void
append(const uint8_t *packed, size_t len, State *saved, GPtrArray *heads, guint *appended)
{
	Amulet__V1__LedgerEntry *entry = amulet__v1__ledger_entry__unpack(NULL, len, packed);
	ProtobufCBinaryData prev_hash;
	State now = { 0 };
	GError *error = NULL;
	char *id = NULL;
	gboolean changed;
	gboolean ok;

	if (entry == NULL)
		return;
	if (has_unknown_fields(entry)) {
		amulet__v1__ledger_entry__free_unpacked(entry, NULL);
		return;
	}
	state_read(&now);
	changed = !state_same(&now, saved);
	if (changed && state_empty(&now)) {
		/* wiped whole: it starts again from entry 0 */
		changed = FALSE;
		*appended = 0;
	}
	/* append overwrites prev_hash: keep what unpack allocated to free it */
	prev_hash = entry->prev_hash;
	ok = amu_ledger_append(ledger, entry, 1700000000000 + *appended, &id, &error);
	entry->prev_hash = prev_hash;
	amulet__v1__ledger_entry__free_unpacked(entry, NULL);
	if (changed) {
		State after = { 0 };

		check(!ok && id == NULL);
		check_tampered(error);
		state_read(&after);
		check(state_same(&after, &now));
		state_clear(&after);
	} else {
		check(ok && error == NULL);
		check(id != NULL && strlen(id) == AMU_LEDGER_ID_LEN);
		g_free(id);
		(*appended)++;
		state_read(saved);
		check(saved->head != NULL);
		g_ptr_array_add(heads, g_bytes_ref(saved->head));
	}
	state_clear(&now);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GPtrArray) heads = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	State saved = { 0 };
	State now = { 0 };
	Walk walk = { 0 };
	GError *error = NULL;
	guint appended = 0;
	guint64 n = G_MAXUINT64;
	size_t pos = 0;

	setup();
	check(amu_store_exec(store, "DELETE FROM consent_ledger; DELETE FROM records WHERE kind = 'ledger-head';", NULL));
	g_unlink(head_path);
	state_read(&saved);

	while (pos < size) {
		uint8_t op = data[pos++];

		if (op < 0x80) {
			size_t len = MIN((size_t)op, size - pos);

			if (appended < MAX_ENTRIES)
				append(data + pos, len, &saved, heads, &appended);
			pos += len;
		} else {
			tamper(op, data, size, &pos, heads);
		}
	}

	state_read(&now);
	if (state_empty(&now)) {
		check(amu_ledger_foreach(ledger, walk_cb, &walk, &n, &error));
		check(error == NULL && n == 0);
	} else if (!state_same(&now, &saved)) {
		check(!amu_ledger_foreach(ledger, walk_cb, &walk, &n, &error));
		check_tampered(error);
		check(n == G_MAXUINT64);
	} else {
		check(amu_ledger_foreach(ledger, walk_cb, &walk, &n, &error));
		check(error == NULL && n == appended && walk.n == appended);
	}
	state_clear(&now);
	state_clear(&saved);
	return 0;
}
