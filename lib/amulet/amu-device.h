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

AMU_EXPORT void amu_device_connect_async(AmuDevice *self, GCancellable *cancellable,
					 GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT AmuSession *amu_device_connect_finish(AmuDevice *self, GAsyncResult *result, GError **error);
AMU_EXPORT AmuSession *amu_device_connect(AmuDevice *self, GCancellable *cancellable, GError **error);

G_END_DECLS
