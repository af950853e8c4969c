/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-backoff.h"

/* record: failures (u32) then the last failure in wall-clock ms (i64), host order */
#define RECORD_BYTES 12

static void
backoff_load(AmuStore *store, const char *kind, const char *id, uint32_t *failures, int64_t *last_ms)
{
	g_autoptr(GBytes) blob = amu_store_get(store, kind, id, NULL);
	const uint8_t *data = blob != NULL && g_bytes_get_size(blob) == RECORD_BYTES ? g_bytes_get_data(blob, NULL)
										       : NULL;

	*failures = 0;
	*last_ms = 0;
	if (data != NULL) {
		memcpy(failures, data, 4);
		memcpy(last_ms, data + 4, 8);
	}
}

uint64_t
amu_backoff_remaining(AmuStore *store, const char *kind, const char *id, uint64_t base_ms, uint32_t *failures_out)
{
	uint32_t failures;
	int64_t last_ms, now_ms = g_get_real_time() / 1000;
	uint64_t backoff;

	backoff_load(store, kind, id, &failures, &last_ms);
	if (failures_out != NULL)
		*failures_out = failures;
	if (failures < AMU_BACKOFF_THRESHOLD)
		return 0;
	backoff = MIN(base_ms << MIN(failures - AMU_BACKOFF_THRESHOLD, 20u), AMU_BACKOFF_MAX_MS);
	if (now_ms >= last_ms + (int64_t)backoff)
		return 0;
	return (uint64_t)(last_ms + (int64_t)backoff - now_ms);
}

gboolean
amu_backoff_record_failure(AmuStore *store, const char *kind, const char *id, GError **error)
{
	uint32_t failures;
	int64_t last_ms;
	uint8_t data[RECORD_BYTES];

	backoff_load(store, kind, id, &failures, &last_ms);
	failures++;
	last_ms = g_get_real_time() / 1000;
	memcpy(data, &failures, 4);
	memcpy(data + 4, &last_ms, 8);
	return amu_store_put(store, kind, id, data, sizeof(data), error);
}

gboolean
amu_backoff_clear(AmuStore *store, const char *kind, const char *id, GError **error)
{
	return amu_store_delete(store, kind, id, error);
}
