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

G_END_DECLS
