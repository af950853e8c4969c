/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "amu-store.h"

G_BEGIN_DECLS

/* Failure counters with exponential back-off (OTA 15), kept as sealed
 * records so they survive restarts. Used by the device for its pairing
 * lockout and by the host for its per-address rate limit: after
 * AMU_BACKOFF_THRESHOLD failures, wait base_ms, doubling with every further
 * failure, at most AMU_BACKOFF_MAX_MS, counted from the last failure on the
 * wall clock. */
#define AMU_BACKOFF_THRESHOLD 3
#define AMU_BACKOFF_MAX_MS (24 * 3600 * 1000ULL)

/* milliseconds until the next attempt is allowed, 0 if it is now */
uint64_t amu_backoff_remaining(AmuStore *store, const char *kind, const char *id, uint64_t base_ms,
			       uint32_t *failures);
gboolean amu_backoff_record_failure(AmuStore *store, const char *kind, const char *id, GError **error);
gboolean amu_backoff_clear(AmuStore *store, const char *kind, const char *id, GError **error);

G_END_DECLS
