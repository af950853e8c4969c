/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>
#include <amulet/amu-export-format.h>

G_BEGIN_DECLS

#define AMU_TYPE_DATA_EXPORT (amu_data_export_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuDataExport, amu_data_export, AMU, DATA_EXPORT, GObject)

/**
 * AmuExportProgressFunc:
 * @done: samples written so far
 * @total: samples stored in the granted categories and range (an upper bound
 *   once coarsened)
 *
 * Since: 0.1
 */
typedef void (*AmuExportProgressFunc)(AmuDataExport *export, guint64 done, guint64 total, gpointer user_data);

AMU_EXPORT AmuDataExport *amu_data_export_new(AmuContext *context, const char *grant_id, AmuExportFormat format,
				     const char *path);
AMU_EXPORT void amu_data_export_set_seal_to(AmuDataExport *self, GBytes *recipient_public_key);
AMU_EXPORT gboolean amu_data_export_run(AmuDataExport *self, AmuExportProgressFunc progress_func, gpointer progress_data,
				   GCancellable *cancellable, GError **error);
AMU_EXPORT guint64 amu_data_export_get_n_samples(AmuDataExport *self);
AMU_EXPORT GPtrArray *amu_data_export_get_files(AmuDataExport *self);
AMU_EXPORT const char *amu_data_export_get_manifest_sha256(AmuDataExport *self);
AMU_EXPORT const char *amu_data_export_get_path(AmuDataExport *self);

/* a recipient's X25519 key pair for sealed exports */
AMU_EXPORT void amu_export_keypair_new(GBytes **public_key, GBytes **secret_key);
AMU_EXPORT gboolean amu_export_open_sealed(const char *sealed_path, GBytes *recipient_secret_key,
					   const char *out_dir, GError **error);
AMU_EXPORT gboolean amu_export_verify(const char *dir, GBytes *owner_public_key, char **summary, GError **error);

G_END_DECLS
