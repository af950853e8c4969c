/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

AMU_EXPORT AmuDevice *amu_session_get_device(AmuSession *self);
AMU_EXPORT gboolean amu_session_is_open(AmuSession *self);
AMU_EXPORT gboolean amu_session_get_policy_changed(AmuSession *self, const char **old_version,
						   const char **new_version);
AMU_EXPORT void amu_session_ping_async(AmuSession *self, gsize padding, GCancellable *cancellable,
				       GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT gboolean amu_session_ping_finish(AmuSession *self, GAsyncResult *result, GError **error);
AMU_EXPORT gboolean amu_session_ping(AmuSession *self, gsize padding, GCancellable *cancellable,
				     GError **error);
AMU_EXPORT void amu_session_close(AmuSession *self);

/**
 * AmuSyncProgress:
 * @samples_done: samples stored durably so far in this sync
 * @samples_total: samples the device had for us when the sync started
 * @bytes: sample bytes received (packed columns, before decoding)
 * @batches: batches stored
 * @elapsed_ms: wall time since the sync started
 * @clock_offset_ms: the device's clock minus ours as measured, 0 when they
 *   agree within what the exchange can tell; subtracted from timestamps
 * @skipped: samples the device no longer held (another of the owner's hosts
 *   acked them)
 *
 * Since: 0.1
 */
typedef struct {
	guint64 samples_done;
	guint64 samples_total;
	guint64 bytes;
	guint64 batches;
	gint64 elapsed_ms;
	gint64 clock_offset_ms;
	guint64 skipped;
} AmuSyncProgress;

/**
 * AmuSyncProgressFunc:
 *
 * Called after each stored batch, in the session's main context.
 *
 * Since: 0.1
 */
typedef void (*AmuSyncProgressFunc)(AmuSession *session, const AmuSyncProgress *progress, gpointer user_data);

AMU_EXPORT void amu_session_sync_async(AmuSession *self, AmuSyncProgressFunc progress_func,
				       gpointer progress_data, GCancellable *cancellable,
				       GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT gboolean amu_session_sync_finish(AmuSession *self, GAsyncResult *result, AmuSyncProgress *progress,
					    GError **error);
AMU_EXPORT gboolean amu_session_sync(AmuSession *self, AmuSyncProgressFunc progress_func, gpointer progress_data,
				     GCancellable *cancellable, AmuSyncProgress *progress, GError **error);

G_END_DECLS
