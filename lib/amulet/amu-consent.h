/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined(__AMULET_H_INSIDE__) && !defined(AMU_COMPILATION)
#error "Only <amulet/amulet.h> can be included directly."
#endif

#include <amulet/amu-types.h>
#include <amulet/amu-export-format.h>

G_BEGIN_DECLS

#define AMU_TYPE_CONSENT (amu_consent_get_type())
AMU_EXPORT G_DECLARE_FINAL_TYPE(AmuConsent, amu_consent, AMU, CONSENT, GObject)

/* a draft grant for @device; fill it in, show amu_consent_get_impact_text(),
 * then amu_context_grant_consent() */
AMU_EXPORT AmuConsent *amu_consent_new(AmuDevice *device);
AMU_EXPORT void amu_consent_set_categories(AmuConsent *self, const AmuCategory *categories, guint n_categories);
AMU_EXPORT void amu_consent_set_purpose(AmuConsent *self, const char *purpose);
AMU_EXPORT void amu_consent_set_recipient(AmuConsent *self, const char *name, GBytes *public_key);
AMU_EXPORT void amu_consent_set_range(AmuConsent *self, gint64 from_ms, gint64 to_ms);
AMU_EXPORT void amu_consent_set_granularity(AmuConsent *self, AmuGranularity granularity);
AMU_EXPORT void amu_consent_set_location_decimals(AmuConsent *self, guint decimals);
AMU_EXPORT void amu_consent_set_expires(AmuConsent *self, gint64 expires_ms);
AMU_EXPORT void amu_consent_set_guardian(AmuConsent *self, const char *guardian);

AMU_EXPORT char *amu_consent_get_impact_text(AmuConsent *self);
AMU_EXPORT const char *amu_consent_get_id(AmuConsent *self);
AMU_EXPORT const char *amu_consent_get_device_id(AmuConsent *self);
AMU_EXPORT gboolean amu_consent_has_category(AmuConsent *self, AmuCategory category);
AMU_EXPORT GArray *amu_consent_get_categories(AmuConsent *self);
AMU_EXPORT const char *amu_consent_get_purpose(AmuConsent *self);
AMU_EXPORT const char *amu_consent_get_recipient_name(AmuConsent *self);
AMU_EXPORT GBytes *amu_consent_get_recipient_key(AmuConsent *self);
AMU_EXPORT void amu_consent_get_range(AmuConsent *self, gint64 *from_ms, gint64 *to_ms);
AMU_EXPORT AmuGranularity amu_consent_get_granularity(AmuConsent *self);
AMU_EXPORT guint amu_consent_get_location_decimals(AmuConsent *self);
AMU_EXPORT gint64 amu_consent_get_expires(AmuConsent *self);
AMU_EXPORT const char *amu_consent_get_guardian(AmuConsent *self);
AMU_EXPORT gint64 amu_consent_get_created(AmuConsent *self);
AMU_EXPORT gint64 amu_consent_get_revoked(AmuConsent *self);
/* FALSE with the reason (CONSENT_DENIED) if it allows nothing at @now_ms */
AMU_EXPORT gboolean amu_consent_check_valid(AmuConsent *self, gint64 now_ms, GError **error);

AMU_EXPORT gboolean amu_context_grant_consent(AmuContext *self, AmuConsent *consent, GError **error);
AMU_EXPORT GPtrArray *amu_context_get_consents(AmuContext *self, GError **error);
AMU_EXPORT AmuConsent *amu_context_find_consent(AmuContext *self, const char *id, GError **error);
AMU_EXPORT gboolean amu_context_revoke_consent(AmuContext *self, const char *id, GError **error);
AMU_EXPORT gboolean amu_context_verify_consent_ledger(AmuContext *self, guint64 *n_entries, GError **error);

/**
 * AmuAccessRecord:
 * @time_ms: when
 * @grant_id: the grant it was made under
 * @kind: "export", "refused" or "revoke"
 * @format: the export format, or %NULL
 * @samples: samples exported
 * @detail: the manifest digest, the refusal's reason, or %NULL
 *
 * One line of the access log (like a phone's "recent access").
 *
 * Since: 0.1
 */
typedef struct {
	gint64 time_ms;
	char *grant_id;
	char *kind;
	char *format;
	guint64 samples;
	char *detail;
} AmuAccessRecord;

AMU_EXPORT void amu_access_record_free(AmuAccessRecord *record);
AMU_EXPORT GPtrArray *amu_context_get_access_log(AmuContext *self, GError **error);

G_END_DECLS
