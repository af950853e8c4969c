/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

/**
 * AmuPairingStage:
 * @AMU_PAIRING_STAGE_AMULET: Amulet's six-digit code and the device's disclosure
 * @AMU_PAIRING_STAGE_LINK: the Bluetooth link's own passkey, before Amulet's handshake
 *
 * Since: 0.1
 */
typedef enum {
	AMU_PAIRING_STAGE_AMULET = 0,
	AMU_PAIRING_STAGE_LINK = 1,
} AmuPairingStage;

AMU_EXPORT AmuPairingStage amu_pairing_request_get_stage(AmuPairingRequest *self);

AMU_EXPORT guint amu_pairing_request_get_code(AmuPairingRequest *self);
AMU_EXPORT char *amu_pairing_request_get_code_string(AmuPairingRequest *self);
AMU_EXPORT gboolean amu_pairing_request_is_weak(AmuPairingRequest *self);
AMU_EXPORT const char *amu_pairing_request_get_model(AmuPairingRequest *self);
AMU_EXPORT const char *amu_pairing_request_get_profile(AmuPairingRequest *self);
AMU_EXPORT char *amu_pairing_request_get_fingerprint(AmuPairingRequest *self);
AMU_EXPORT AmuDisclosure *amu_pairing_request_get_disclosure(AmuPairingRequest *self);
AMU_EXPORT void amu_pairing_request_reply(AmuPairingRequest *self, gboolean codes_match,
					  gboolean disclosure_accepted);

G_END_DECLS
