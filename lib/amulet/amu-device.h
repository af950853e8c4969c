/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

AMU_EXPORT const char *amu_device_get_name(AmuDevice *self);
AMU_EXPORT const char *amu_device_get_id(AmuDevice *self);
AMU_EXPORT const char *amu_device_get_address(AmuDevice *self);
AMU_EXPORT const char *amu_device_get_profile(AmuDevice *self);
AMU_EXPORT gboolean amu_device_has_display(AmuDevice *self);
AMU_EXPORT char *amu_device_get_fingerprint(AmuDevice *self);
AMU_EXPORT gint64 amu_device_get_paired_time(AmuDevice *self);
AMU_EXPORT AmuDisclosure *amu_device_get_disclosure(AmuDevice *self);
AMU_EXPORT gboolean amu_device_get_support_warning(AmuDevice *self, char **warning);

AMU_EXPORT void amu_device_connect_async(AmuDevice *self, GCancellable *cancellable,
					 GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT AmuSession *amu_device_connect_finish(AmuDevice *self, GAsyncResult *result, GError **error);
AMU_EXPORT AmuSession *amu_device_connect(AmuDevice *self, GCancellable *cancellable, GError **error);

/**
 * AmuWipeFlags:
 * @AMU_WIPE_FLAGS_NONE: erase the device's telemetry; keep its keys and bonds
 * @AMU_WIPE_FLAGS_FACTORY: also its keys and bonds: it becomes unowned, with a fresh identity
 * @AMU_WIPE_FLAGS_KEEP_LOCAL: keep this host's copy of the data and the bond
 * @AMU_WIPE_FLAGS_WHEN_SEEN: the device is out of reach: queue the wipe for its
 *   next connection and revoke its bond now
 *
 * Since: 0.1
 */
typedef enum {
	AMU_WIPE_FLAGS_NONE = 0,
	AMU_WIPE_FLAGS_FACTORY = 1 << 0,
	AMU_WIPE_FLAGS_KEEP_LOCAL = 1 << 1,
	AMU_WIPE_FLAGS_WHEN_SEEN = 1 << 2,
} AmuWipeFlags;

AMU_EXPORT void amu_device_wipe_async(AmuDevice *self, AmuWipeFlags flags, GCancellable *cancellable,
				      GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT gboolean amu_device_wipe_finish(AmuDevice *self, GAsyncResult *result, GError **error);
AMU_EXPORT gboolean amu_device_wipe(AmuDevice *self, AmuWipeFlags flags, GCancellable *cancellable, GError **error);
AMU_EXPORT void amu_device_transfer_async(AmuDevice *self, GCancellable *cancellable, GAsyncReadyCallback callback,
					  gpointer user_data);
AMU_EXPORT gboolean amu_device_transfer_finish(AmuDevice *self, GAsyncResult *result, GError **error);
AMU_EXPORT gboolean amu_device_transfer(AmuDevice *self, GCancellable *cancellable, GError **error);
/* TRUE if a wipe or transfer waits for the device's next connection */
AMU_EXPORT gboolean amu_device_get_pending_command(AmuDevice *self, const char **what);

G_END_DECLS
