/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <gio/gio.h>
#include <amulet/amu-export.h>

G_BEGIN_DECLS

#define AMU_TYPE_CONTEXT (amu_context_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuContext, amu_context, AMU, CONTEXT, GObject)
#define AMU_TYPE_DEVICE (amu_device_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuDevice, amu_device, AMU, DEVICE, GObject)
#define AMU_TYPE_SESSION (amu_session_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuSession, amu_session, AMU, SESSION, GObject)
#define AMU_TYPE_DISCLOSURE (amu_disclosure_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuDisclosure, amu_disclosure, AMU, DISCLOSURE, GObject)
#define AMU_TYPE_PAIRING_REQUEST (amu_pairing_request_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuPairingRequest, amu_pairing_request, AMU, PAIRING_REQUEST, GObject)

/**
 * AmuConfirmFunc:
 * @request: the pending confirmation; answer with amu_pairing_request_reply()
 * @user_data: the data given with the function
 *
 * Called when the six-digit code is known. Show amu_pairing_request_get_code()
 * and the disclosure, ask the user, and reply, now or later: the call must
 * not block the main loop.
 *
 * Since: 0.1
 */
typedef void (*AmuConfirmFunc)(AmuPairingRequest *request, gpointer user_data);

/**
 * AmuNotification:
 * @AMU_NOTIFICATION_PAIRED: a device was paired with this host
 * @AMU_NOTIFICATION_CREDENTIAL_CHANGED: a device's key or privacy policy changed
 * @AMU_NOTIFICATION_WIPED: a device was wiped (or factory reset)
 * @AMU_NOTIFICATION_TRANSFERRED: a device was handed over: it is no longer ours
 * @AMU_NOTIFICATION_SUPPORT_ENDING: a device's support (security updates) ends within 90 days, or ended
 * @AMU_NOTIFICATION_SETTINGS_REVIEW: a firmware update changed what some of a device's settings mean: review them
 * @AMU_NOTIFICATION_UPDATED: a device now runs new firmware, confirmed
 *
 * Kinds of the #AmuContext::notification signal (OTA 16, 23, 39).
 *
 * Since: 0.1
 */
typedef enum {
	AMU_NOTIFICATION_PAIRED = 1,
	AMU_NOTIFICATION_CREDENTIAL_CHANGED = 2,
	AMU_NOTIFICATION_WIPED = 3,
	AMU_NOTIFICATION_TRANSFERRED = 4,
	AMU_NOTIFICATION_SUPPORT_ENDING = 5,
	AMU_NOTIFICATION_SETTINGS_REVIEW = 6,
	AMU_NOTIFICATION_UPDATED = 7,
} AmuNotification;

G_END_DECLS
