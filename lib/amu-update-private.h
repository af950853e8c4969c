/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-private.h"
#include "amulet/amu-update.h"

G_BEGIN_DECLS

/* What amu-device-update.c (packages, the session requests, the update) and
 * amu-device-status.c (AmuDeviceStatus, what the host remembers, status and
 * settings) share. */

AmuDeviceStatus *amu_device_status_new_from_message(const Amulet__V1__DeviceStatus *m, GError **error);
/* the running image's SHA-256, 32 bytes */
const uint8_t *amu_device_status_get_sha256_raw(AmuDeviceStatus *self);

gboolean amu_device_remember_firmware(AmuDevice *device, AmuDeviceStatus *status, GError **error);
/* the firmware the host last saw ran on trial (it may still go back) */
gboolean amu_device_known_firmware_is_trial(AmuDevice *device);
gboolean amu_device_set_settings_review(AmuDevice *device, const char *version, const char *const *keys,
					GError **error);

/* sends @message, which the device answers with its DeviceStatus */
void amu_session_status_async(AmuSession *session, Amulet__V1__Message *message, GCancellable *cancellable,
			      GAsyncReadyCallback callback, gpointer user_data);
AmuDeviceStatus *amu_session_status_finish(AmuSession *session, GAsyncResult *result, GError **error);

G_END_DECLS
