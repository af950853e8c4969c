/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>

G_BEGIN_DECLS

AMU_EXPORT const char *amu_disclosure_get_maker(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_model(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_firmware_version(AmuDisclosure *self);
AMU_EXPORT guint amu_disclosure_get_n_categories(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_category(AmuDisclosure *self, guint index, const char **purpose);
AMU_EXPORT const char *amu_disclosure_get_retention(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_support_end_date(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_update_policy(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_offline_behaviour(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_privacy_policy_version(AmuDisclosure *self);
AMU_EXPORT char *amu_disclosure_get_privacy_policy_digest(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_privacy_policy_url(AmuDisclosure *self);
AMU_EXPORT const char *amu_disclosure_get_vendor_id(AmuDisclosure *self);
AMU_EXPORT const guint8 *amu_disclosure_get_vendor_public_key(AmuDisclosure *self);
AMU_EXPORT char *amu_disclosure_to_text(AmuDisclosure *self);

G_END_DECLS
