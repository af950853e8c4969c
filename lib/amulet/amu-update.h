/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <gio/gio.h>
#include <amulet/amu-export.h>
#include <amulet/amu-types.h>

G_BEGIN_DECLS

/**
 * AmuUpdatePolicy:
 * @AMU_UPDATE_POLICY_OFF: every update waits for the owner (the default)
 * @AMU_UPDATE_POLICY_SECURITY: security fixes may install without asking
 * @AMU_UPDATE_POLICY_ALL: every update may install without asking
 *
 * Whether amu_device_update_async() with %AMU_UPDATE_FLAGS_AUTO may install
 * an update without the owner's approval. Stored per device and shown by
 * `amulet info`. Since: 0.1
 */
typedef enum {
	AMU_UPDATE_POLICY_OFF = 0,
	AMU_UPDATE_POLICY_SECURITY = 1,
	AMU_UPDATE_POLICY_ALL = 2,
} AmuUpdatePolicy;

/**
 * AmuUpdateStage:
 * @AMU_UPDATE_STAGE_CONNECTING: opening the session, asking the device's status
 * @AMU_UPDATE_STAGE_UPLOADING: sending the image; done and total are bytes
 * @AMU_UPDATE_STAGE_INSTALLING: the device checks the image and reboots into it
 * @AMU_UPDATE_STAGE_CONFIRMING: reconnecting and checking what the device runs
 *
 * Since: 0.1
 */
typedef enum {
	AMU_UPDATE_STAGE_CONNECTING = 0,
	AMU_UPDATE_STAGE_UPLOADING = 1,
	AMU_UPDATE_STAGE_INSTALLING = 2,
	AMU_UPDATE_STAGE_CONFIRMING = 3,
} AmuUpdateStage;

typedef void (*AmuUpdateProgressFunc)(AmuUpdateStage stage, guint64 done, guint64 total, gpointer user_data);

#define AMU_TYPE_FIRMWARE_UPDATE (amu_firmware_update_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuFirmwareUpdate, amu_firmware_update, AMU, FIRMWARE_UPDATE, GObject)

#define AMU_TYPE_DEVICE_STATUS (amu_device_status_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuDeviceStatus, amu_device_status, AMU, DEVICE_STATUS, GObject)

AMU_EXPORT AmuFirmwareUpdate *amu_device_load_update(AmuDevice *device, const char *path, GError **error);
AMU_EXPORT const char *amu_firmware_update_get_path(AmuFirmwareUpdate *self);
AMU_EXPORT const char *amu_firmware_update_get_version(AmuFirmwareUpdate *self);
AMU_EXPORT guint64 amu_firmware_update_get_sequence(AmuFirmwareUpdate *self);
AMU_EXPORT guint64 amu_firmware_update_get_size(AmuFirmwareUpdate *self);
AMU_EXPORT const char *amu_firmware_update_get_changes(AmuFirmwareUpdate *self);
AMU_EXPORT gboolean amu_firmware_update_is_security(AmuFirmwareUpdate *self);
AMU_EXPORT const char *const *amu_firmware_update_get_changed_settings(AmuFirmwareUpdate *self);
AMU_EXPORT char *amu_firmware_update_get_sha256(AmuFirmwareUpdate *self);
AMU_EXPORT gint64 amu_firmware_update_get_expires(AmuFirmwareUpdate *self);
AMU_EXPORT AmuFirmwareUpdate *amu_device_find_newest_update(AmuDevice *device, GError **error);

AMU_EXPORT const char *amu_device_status_get_firmware_version(AmuDeviceStatus *self);
AMU_EXPORT guint64 amu_device_status_get_firmware_sequence(AmuDeviceStatus *self);
AMU_EXPORT char *amu_device_status_get_firmware_sha256(AmuDeviceStatus *self);
AMU_EXPORT gboolean amu_device_status_is_trial(AmuDeviceStatus *self);
AMU_EXPORT const char *amu_device_status_get_reverted_from(AmuDeviceStatus *self);
AMU_EXPORT guint64 amu_device_status_get_slot_size(AmuDeviceStatus *self);
AMU_EXPORT const char *const *amu_device_status_get_setting_keys(AmuDeviceStatus *self);
AMU_EXPORT const char *amu_device_status_get_setting(AmuDeviceStatus *self, const char *key);

/**
 * AmuUpdateFlags:
 * @AMU_UPDATE_FLAGS_NONE: the owner approved this update
 * @AMU_UPDATE_FLAGS_AUTO: nobody was asked: the device's #AmuUpdatePolicy must allow it
 *
 * Since: 0.1
 */
typedef enum {
	AMU_UPDATE_FLAGS_NONE = 0,
	AMU_UPDATE_FLAGS_AUTO = 1 << 0,
} AmuUpdateFlags;

AMU_EXPORT void amu_device_update_async(AmuDevice *device, AmuFirmwareUpdate *update, AmuUpdateFlags flags,
					AmuUpdateProgressFunc progress, gpointer progress_data,
					GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT AmuDeviceStatus *amu_device_update_finish(AmuDevice *device, GAsyncResult *result, GError **error);
AMU_EXPORT AmuDeviceStatus *amu_device_update(AmuDevice *device, AmuFirmwareUpdate *update, AmuUpdateFlags flags,
					      AmuUpdateProgressFunc progress, gpointer progress_data,
					      GCancellable *cancellable, GError **error);

AMU_EXPORT void amu_device_get_status_async(AmuDevice *device, GCancellable *cancellable,
					    GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT AmuDeviceStatus *amu_device_get_status_finish(AmuDevice *device, GAsyncResult *result, GError **error);
AMU_EXPORT AmuDeviceStatus *amu_device_get_status(AmuDevice *device, GCancellable *cancellable, GError **error);

AMU_EXPORT void amu_device_change_settings_async(AmuDevice *device, const char *const *keys,
						 const char *const *values, GCancellable *cancellable,
						 GAsyncReadyCallback callback, gpointer user_data);
AMU_EXPORT AmuDeviceStatus *amu_device_change_settings_finish(AmuDevice *device, GAsyncResult *result,
							      GError **error);
AMU_EXPORT AmuDeviceStatus *amu_device_change_settings(AmuDevice *device, const char *const *keys,
						       const char *const *values, GCancellable *cancellable,
						       GError **error);

AMU_EXPORT AmuUpdatePolicy amu_device_get_update_policy(AmuDevice *device);
AMU_EXPORT gboolean amu_device_set_update_policy(AmuDevice *device, AmuUpdatePolicy policy, GError **error);
AMU_EXPORT const char *amu_update_policy_to_string(AmuUpdatePolicy policy);
AMU_EXPORT gboolean amu_update_policy_from_string(const char *text, AmuUpdatePolicy *policy);
AMU_EXPORT gboolean amu_update_policy_allows(AmuUpdatePolicy policy, AmuFirmwareUpdate *update);

/* what the host last saw the device run; FALSE if it never asked */
AMU_EXPORT gboolean amu_device_get_known_firmware(AmuDevice *device, char **version, guint64 *sequence);
/* settings whose meaning an installed update changed, not reviewed yet (NULL if none) */
AMU_EXPORT char **amu_device_get_settings_to_review(AmuDevice *device, char **version);
AMU_EXPORT gboolean amu_device_clear_settings_review(AmuDevice *device, GError **error);

G_END_DECLS
