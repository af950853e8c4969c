/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

AMU_EXPORT AmuContext *amu_context_new(const char *data_dir, GError **error);
AMU_EXPORT const char *amu_context_get_data_dir(AmuContext *self);
AMU_EXPORT void amu_context_set_host_name(AmuContext *self, const char *host_name);
AMU_EXPORT char *amu_context_get_fingerprint(AmuContext *self);
AMU_EXPORT GPtrArray *amu_context_get_devices(AmuContext *self, GError **error);
AMU_EXPORT AmuDevice *amu_context_find_device(AmuContext *self, const char *name_or_id, GError **error);
AMU_EXPORT gboolean amu_context_remove_device(AmuContext *self, AmuDevice *device, GError **error);

AMU_EXPORT void amu_context_pair_async(AmuContext *self, const char *address, const char *name,
				       AmuConfirmFunc confirm_func, gpointer confirm_data,
				       GCancellable *cancellable, GAsyncReadyCallback callback,
				       gpointer user_data);
AMU_EXPORT AmuDevice *amu_context_pair_finish(AmuContext *self, GAsyncResult *result, GError **error);
AMU_EXPORT AmuDevice *amu_context_pair(AmuContext *self, const char *address, const char *name,
				       AmuConfirmFunc confirm_func, gpointer confirm_data,
				       GCancellable *cancellable, GError **error);
AMU_EXPORT void amu_context_set_confirm_timeout(AmuContext *self, guint seconds);
AMU_EXPORT gboolean amu_context_reset(AmuContext *self, GError **error);

G_END_DECLS
