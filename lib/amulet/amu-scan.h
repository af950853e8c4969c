/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

#define AMU_TYPE_SCAN_RESULT (amu_scan_result_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuScanResult, amu_scan_result, AMU, SCAN_RESULT, GObject)

AMU_EXPORT const char *amu_scan_result_get_address(AmuScanResult *self);
AMU_EXPORT const char *amu_scan_result_get_name(AmuScanResult *self);
AMU_EXPORT gboolean amu_scan_result_get_rssi(AmuScanResult *self, gint16 *rssi);
AMU_EXPORT const char *amu_scan_result_get_profile(AmuScanResult *self);
AMU_EXPORT gboolean amu_scan_result_is_pairing_mode(AmuScanResult *self);
AMU_EXPORT gboolean amu_scan_result_is_paired(AmuScanResult *self);

/**
 * AmuScanFunc:
 * @result: a device just seen, or seen again with a new RSSI or advertisement
 * @user_data: the data given with the function
 *
 * Called from the main loop while a scan runs, to show devices as they come.
 *
 * Since: 0.1
 */
typedef void (*AmuScanFunc)(AmuScanResult *result, gpointer user_data);

AMU_EXPORT void amu_context_scan_async(AmuContext *self, const char *adapter, guint timeout_ms,
				       AmuScanFunc found_func, gpointer found_data, GCancellable *cancellable,
				       GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT GPtrArray *amu_context_scan_finish(AmuContext *self, GAsyncResult *result, GError **error);

G_END_DECLS
