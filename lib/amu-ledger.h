/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-store.h"
#include "amulet.pb-c.h"

G_BEGIN_DECLS

/* The consent ledger: append-only entries (grants, revocations, accesses),
 * each sealed in the store, chained by hash to the one before and signed by
 * the owner's Ed25519 key (docs/consent.md):
 *
 *   hash_n = BLAKE2b-256("amulet-ledger-v1" || packed LedgerEntry n)
 *   LedgerEntry n carries seq = n and prev_hash = hash_n-1 (zeros for n = 0)
 *   signature_n = Ed25519(owner, hash_n)
 *
 * A sealed head record names the last seq and hash, so dropping entries
 * from the end is detected as well. Every read verifies the whole chain.
 * Errors: TAMPERED (an entry edited, deleted, reordered or the head
 * missing), BAD_SIGNATURE, STORE. */

#define AMU_LEDGER_HASHBYTES 32
#define AMU_LEDGER_ID_LEN 16 /* hex characters: the first 8 bytes of the hash */

typedef struct AmuLedger AmuLedger;

AmuLedger *amu_ledger_new(AmuStore *store, const uint8_t public_key[32], const uint8_t secret_key[64]);
void amu_ledger_free(AmuLedger *ledger);

/* Fills in entry->seq, time_ms and prev_hash, then appends it durably. @id
 * (optional) receives the entry's id. Verifies the chain first. */
gboolean amu_ledger_append(AmuLedger *ledger, Amulet__V1__LedgerEntry *entry, int64_t now_ms, char **id,
			   GError **error);

typedef gboolean (*AmuLedgerFunc)(const Amulet__V1__LedgerEntry *entry, const char *id, void *user_data,
				  GError **error);
/* Verifies every entry in order, calling @func (nullable) with each. */
gboolean amu_ledger_foreach(AmuLedger *ledger, AmuLedgerFunc func, void *user_data, guint64 *n_entries,
			    GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuLedger, amu_ledger_free)

G_END_DECLS
