/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-private.h"

/**
 * AmuConsent:
 *
 * One grant in the consent ledger: which of a device's data (categories,
 * time range, granularity, location precision) may go to whom, for what
 * purpose, until when. Nothing leaves the store without one (OTA 25):
 * exports check it, and a revoked or expired grant allows nothing. See
 * docs/consent.md.
 */
struct _AmuConsent {
	GObject parent_instance;
	char *id; /* NULL until granted */
	char *device_id;
	char *device_name;
	char *device_profile;
	GArray *categories; /* AmuCategory */
	char *purpose;
	char *recipient_name;
	GBytes *recipient_key;
	gint64 from_ms;
	gint64 to_ms;
	AmuGranularity granularity;
	guint location_decimals;
	gint64 expires_ms;
	char *guardian;
	gint64 created_ms;
	gint64 revoked_ms;
};

G_DEFINE_TYPE(AmuConsent, amu_consent, G_TYPE_OBJECT)

#define DAY_MS (86400 * (gint64)1000)

static void
amu_consent_finalize(GObject *object)
{
	AmuConsent *self = AMU_CONSENT(object);

	g_free(self->id);
	g_free(self->device_id);
	g_free(self->device_name);
	g_free(self->device_profile);
	g_array_unref(self->categories);
	g_free(self->purpose);
	g_free(self->recipient_name);
	g_clear_pointer(&self->recipient_key, g_bytes_unref);
	g_free(self->guardian);
	G_OBJECT_CLASS(amu_consent_parent_class)->finalize(object);
}

static void
amu_consent_class_init(AmuConsentClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_consent_finalize;
}

static void
amu_consent_init(AmuConsent *self)
{
	self->categories = g_array_new(FALSE, FALSE, sizeof(AmuCategory));
	self->location_decimals = 7;
	self->to_ms = G_MAXINT64;
}

/**
 * amu_consent_new:
 *
 * Returns: (transfer full): a draft grant of nothing yet for @device; by
 *   default all of its time, raw, full location precision, expiring 90 days
 *   after it is granted
 *
 * Since: 0.1
 */
AmuConsent *
amu_consent_new(AmuDevice *device)
{
	AmuConsent *self;

	g_return_val_if_fail(AMU_IS_DEVICE(device), NULL);
	self = g_object_new(AMU_TYPE_CONSENT, NULL);
	self->device_id = g_strdup(amu_device_get_id(device));
	self->device_name = g_strdup(amu_device_get_name(device));
	self->device_profile = g_strdup(amu_device_get_profile(device));
	return self;
}

void
amu_consent_set_categories(AmuConsent *self, const AmuCategory *categories, guint n_categories)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	g_array_set_size(self->categories, 0);
	for (guint i = 0; i < n_categories; i++) {
		if (!amu_consent_has_category(self, categories[i]))
			g_array_append_val(self->categories, categories[i]);
	}
}

#define SETTER_STRING(field)                                                                       \
	void amu_consent_set_##field(AmuConsent *self, const char *value)                          \
	{                                                                                          \
		g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);                         \
		g_free(self->field);                                                               \
		self->field = g_strdup(value);                                                     \
	}
SETTER_STRING(purpose)
SETTER_STRING(guardian)

void
amu_consent_set_recipient(AmuConsent *self, const char *name, GBytes *public_key)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	g_free(self->recipient_name);
	self->recipient_name = g_strdup(name);
	g_clear_pointer(&self->recipient_key, g_bytes_unref);
	if (public_key != NULL)
		self->recipient_key = g_bytes_ref(public_key);
}

void
amu_consent_set_range(AmuConsent *self, gint64 from_ms, gint64 to_ms)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	self->from_ms = from_ms;
	self->to_ms = to_ms;
}

void
amu_consent_set_granularity(AmuConsent *self, AmuGranularity granularity)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	self->granularity = granularity;
}

void
amu_consent_set_location_decimals(AmuConsent *self, guint decimals)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	self->location_decimals = MIN(decimals, 7);
}

void
amu_consent_set_expires(AmuConsent *self, gint64 expires_ms)
{
	g_return_if_fail(AMU_IS_CONSENT(self) && self->id == NULL);
	self->expires_ms = expires_ms;
}

const char *
amu_consent_get_id(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->id;
}

const char *
amu_consent_get_device_id(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->device_id;
}

gboolean
amu_consent_has_category(AmuConsent *self, AmuCategory category)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), FALSE);
	for (guint i = 0; i < self->categories->len; i++) {
		if (g_array_index(self->categories, AmuCategory, i) == category)
			return TRUE;
	}
	return FALSE;
}

/**
 * amu_consent_get_categories:
 * Returns: (transfer full) (element-type AmuCategory): the granted categories
 * Since: 0.1
 */
GArray *
amu_consent_get_categories(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return g_array_copy(self->categories);
}

const char *
amu_consent_get_purpose(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->purpose;
}

const char *
amu_consent_get_recipient_name(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->recipient_name;
}

/**
 * amu_consent_get_recipient_key:
 * Returns: (transfer none) (nullable): the recipient's X25519 public key
 * Since: 0.1
 */
GBytes *
amu_consent_get_recipient_key(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->recipient_key;
}

void
amu_consent_get_range(AmuConsent *self, gint64 *from_ms, gint64 *to_ms)
{
	g_return_if_fail(AMU_IS_CONSENT(self));
	if (from_ms != NULL)
		*from_ms = self->from_ms;
	if (to_ms != NULL)
		*to_ms = self->to_ms;
}

AmuGranularity
amu_consent_get_granularity(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), AMU_GRANULARITY_DAY);
	return self->granularity;
}

guint
amu_consent_get_location_decimals(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), 0);
	return self->location_decimals;
}

gint64
amu_consent_get_expires(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), 0);
	return self->expires_ms;
}

const char *
amu_consent_get_guardian(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	return self->guardian;
}

gint64
amu_consent_get_created(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), 0);
	return self->created_ms;
}

/* 0 while in force */
gint64
amu_consent_get_revoked(AmuConsent *self)
{
	g_return_val_if_fail(AMU_IS_CONSENT(self), 0);
	return self->revoked_ms;
}

static char *
format_day(gint64 ms)
{
	g_autoptr(GDateTime) t = NULL;

	if (ms <= 0)
		return g_strdup("the beginning");
	if (ms == G_MAXINT64)
		return g_strdup("now and later");
	t = g_date_time_new_from_unix_utc(ms / 1000);
	return g_date_time_format(t, "%Y-%m-%d %H:%M UTC");
}

static const char *
granularity_words(AmuGranularity granularity)
{
	switch (granularity) {
	case AMU_GRANULARITY_RAW:
		return "every sample as recorded (heart rate each second, GPS each second)";
	case AMU_GRANULARITY_MINUTE:
		return "one value a minute (averages, sums)";
	case AMU_GRANULARITY_HOUR:
		return "one value an hour (averages, sums)";
	case AMU_GRANULARITY_DAY:
		return "one value a day (averages, sums)";
	}
	return "?";
}

static gint64
effective_expiry(AmuConsent *self, gint64 now_ms)
{
	return self->expires_ms > 0 ? self->expires_ms : now_ms + 90 * DAY_MS;
}

/**
 * amu_consent_get_impact_text:
 *
 * Returns: (transfer full): in plain words, what granting shares, with whom,
 *   until when, and what declining costs (OTA 29); show it before asking
 *
 * Since: 0.1
 */
char *
amu_consent_get_impact_text(AmuConsent *self)
{
	GString *text = g_string_new(NULL);
	g_autofree char *from = NULL, *to = NULL, *until = NULL;
	gboolean location = FALSE;

	g_return_val_if_fail(AMU_IS_CONSENT(self), NULL);
	from = format_day(self->from_ms);
	to = format_day(self->to_ms);
	until = format_day(effective_expiry(self, g_get_real_time() / 1000));
	g_string_append_printf(text, "You are about to let \"%s\" receive data from your device \"%s\":\n",
			       self->recipient_name != NULL ? self->recipient_name : "(nobody yet)", self->device_name);
	for (guint i = 0; i < self->categories->len; i++) {
		AmuCategory c = g_array_index(self->categories, AmuCategory, i);
		g_string_append_printf(text, "  - %s\n", amu_category_to_string(c));
		location |= c == AMU_CATEGORY_LOCATION;
	}
	g_string_append_printf(text, "recorded from %s to %s, as %s,\n", from, to, granularity_words(self->granularity));
	if (location)
		g_string_append_printf(text, "with locations to %u decimal places (%s),\n", self->location_decimals,
				       self->location_decimals >= 5	? "about a metre: where you were, exactly"
				       : self->location_decimals >= 3 ? "about 100 m: your streets"
								      : "about 10 km: your town");
	g_string_append_printf(text, "for this purpose: %s.\n", self->purpose != NULL ? self->purpose : "(none given)");
	g_string_append_printf(text, "Each export under this grant is logged. The grant ends on %s; you can revoke it\n"
				     "any time with 'amulet consent revoke', which stops future exports but cannot\n"
				     "recall copies already sent.\n",
			       until);
	if (self->guardian != NULL)
		g_string_append_printf(text, "Approved for a child's device by the guardian %s.\n", self->guardian);
	g_string_append_printf(text, "If you decline, %s gets nothing from this device; syncing, your own data and\n"
				     "summaries on this host keep working.\n",
			       self->recipient_name != NULL ? self->recipient_name : "the recipient");
	return g_string_free(text, FALSE);
}

/**
 * amu_consent_check_valid:
 * Returns: %TRUE if the grant is in force at @now_ms, else %FALSE with
 *   %AMU_ERROR_CONSENT_DENIED saying why (revoked, expired, not granted)
 * Since: 0.1
 */
gboolean
amu_consent_check_valid(AmuConsent *self, gint64 now_ms, GError **error)
{
	g_autofree char *when = NULL;

	g_return_val_if_fail(AMU_IS_CONSENT(self), FALSE);
	if (self->id == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED, "this consent was never granted");
		return FALSE;
	}
	if (self->revoked_ms > 0) {
		when = format_day(self->revoked_ms);
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "grant %s was revoked on %s: nothing more may be exported under it", self->id, when);
		return FALSE;
	}
	if (now_ms >= self->expires_ms) {
		when = format_day(self->expires_ms);
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "grant %s expired on %s: ask the owner for a new one", self->id, when);
		return FALSE;
	}
	if (g_strcmp0(self->device_profile, "toy") == 0 && (self->guardian == NULL || self->guardian[0] == '\0')) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "grant %s is for a child's toy and has no guardian's approval", self->id);
		return FALSE;
	}
	return TRUE;
}

/* ------------------------------------------------------------------ the ledger */

static gboolean
validate_draft(AmuConsent *self, gint64 now_ms, GError **error)
{
	if (self->categories->len == 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "a grant needs at least one category");
		return FALSE;
	}
	for (guint i = 0; i < self->categories->len; i++) {
		if (!amu_category_is_valid(g_array_index(self->categories, AmuCategory, i))) {
			g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "unknown category in grant");
			return FALSE;
		}
	}
	if (self->purpose == NULL || self->purpose[0] == '\0' || self->recipient_name == NULL ||
	    self->recipient_name[0] == '\0') {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "a grant needs a purpose and a recipient name");
		return FALSE;
	}
	if (self->recipient_key != NULL && g_bytes_get_size(self->recipient_key) != crypto_box_PUBLICKEYBYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
			    "the recipient's public key must be %u bytes (X25519), not %zu", crypto_box_PUBLICKEYBYTES,
			    g_bytes_get_size(self->recipient_key));
		return FALSE;
	}
	if (self->from_ms >= self->to_ms) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "the granted range is empty");
		return FALSE;
	}
	if (self->expires_ms != 0 && self->expires_ms <= now_ms) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "the grant would expire before it starts");
		return FALSE;
	}
	if ((int)self->granularity < AMU_GRANULARITY_RAW || self->granularity > AMU_GRANULARITY_DAY) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "unknown granularity");
		return FALSE;
	}
	if (g_strcmp0(self->device_profile, "toy") == 0 && (self->guardian == NULL || self->guardian[0] == '\0')) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_CONSENT_DENIED,
			    "\"%s\" is a child's toy: a parent or guardian must approve any export "
			    "(give the guardian's name; COPPA, GDPR Art. 8)",
			    self->device_name);
		return FALSE;
	}
	return TRUE;
}

/**
 * amu_context_grant_consent:
 *
 * Records @consent in the signed ledger; afterwards amu_consent_get_id() is set.
 *
 * Since: 0.1
 */
gboolean
amu_context_grant_consent(AmuContext *self, AmuConsent *consent, GError **error)
{
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentGrant grant = AMULET__V1__CONSENT_GRANT__INIT;
	g_autofree char **names = NULL;
	g_autofree char *impact = NULL;
	char impact_hex[crypto_hash_sha256_BYTES * 2 + 1];
	uint8_t digest[crypto_hash_sha256_BYTES];
	gint64 now = g_get_real_time() / 1000;

	g_return_val_if_fail(AMU_IS_CONTEXT(self) && AMU_IS_CONSENT(consent), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (consent->id != NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_EXISTS, "grant %s is already recorded", consent->id);
		return FALSE;
	}
	if (!validate_draft(consent, now, error))
		return FALSE;
	impact = amu_consent_get_impact_text(consent);
	crypto_hash_sha256(digest, (const uint8_t *)impact, strlen(impact));
	sodium_bin2hex(impact_hex, sizeof(impact_hex), digest, sizeof(digest));
	names = g_new0(char *, consent->categories->len + 1);
	for (guint i = 0; i < consent->categories->len; i++)
		names[i] = (char *)amu_category_to_string(g_array_index(consent->categories, AmuCategory, i));
	grant.device_id = consent->device_id;
	grant.n_categories = consent->categories->len;
	grant.categories = names;
	grant.purpose = consent->purpose;
	grant.recipient_name = consent->recipient_name;
	if (consent->recipient_key != NULL) {
		grant.recipient_key.data = (uint8_t *)g_bytes_get_data(consent->recipient_key, &grant.recipient_key.len);
	}
	grant.from_ms = consent->from_ms;
	grant.to_ms = consent->to_ms;
	grant.granularity = consent->granularity;
	grant.location_decimals = consent->location_decimals;
	grant.expires_ms = effective_expiry(consent, now);
	grant.guardian = consent->guardian != NULL ? consent->guardian : (char *)"";
	grant.impact_sha256 = impact_hex;
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_GRANT;
	entry.grant = &grant;
	if (!amu_ledger_append(amu_context_get_ledger(self), &entry, now, &consent->id, error)) {
		g_prefix_error(error, "recording the grant: ");
		return FALSE;
	}
	consent->created_ms = now;
	consent->expires_ms = grant.expires_ms;
	return TRUE;
}

typedef struct {
	AmuContext *context;
	GPtrArray *consents;   /* AmuConsent */
	GPtrArray *access;     /* AmuAccessRecord, or NULL */
} LedgerScan;

static AmuConsent *
scan_find(LedgerScan *scan, const char *id)
{
	for (guint i = 0; i < scan->consents->len; i++) {
		AmuConsent *consent = g_ptr_array_index(scan->consents, i);
		if (g_strcmp0(consent->id, id) == 0)
			return consent;
	}
	return NULL;
}

static gboolean
scan_entry(const Amulet__V1__LedgerEntry *entry, const char *id, void *user_data, GError **error)
{
	LedgerScan *scan = user_data;

	switch (entry->body_case) {
	case AMULET__V1__LEDGER_ENTRY__BODY_GRANT: {
		const Amulet__V1__ConsentGrant *grant = entry->grant;
		g_autoptr(AmuDevice) device = amu_context_find_device(scan->context, grant->device_id, NULL);
		AmuConsent *consent = g_object_new(AMU_TYPE_CONSENT, NULL);
		consent->id = g_strdup(id);
		consent->device_id = g_strdup(grant->device_id);
		consent->device_name = g_strdup(device != NULL ? amu_device_get_name(device) : grant->device_id);
		consent->device_profile = g_strdup(device != NULL ? amu_device_get_profile(device) : "");
		for (size_t i = 0; i < grant->n_categories; i++) {
			AmuCategory c;
			if (amu_category_from_string(grant->categories[i], &c))
				g_array_append_val(consent->categories, c);
		}
		consent->purpose = g_strdup(grant->purpose);
		consent->recipient_name = g_strdup(grant->recipient_name);
		if (grant->recipient_key.len > 0)
			consent->recipient_key = g_bytes_new(grant->recipient_key.data, grant->recipient_key.len);
		consent->from_ms = grant->from_ms;
		consent->to_ms = grant->to_ms;
		consent->granularity = grant->granularity <= AMU_GRANULARITY_DAY ? grant->granularity : AMU_GRANULARITY_DAY;
		consent->location_decimals = MIN(grant->location_decimals, 7);
		consent->expires_ms = grant->expires_ms;
		consent->guardian = grant->guardian != NULL && grant->guardian[0] != '\0' ? g_strdup(grant->guardian) : NULL;
		consent->created_ms = entry->time_ms;
		g_ptr_array_add(scan->consents, consent);
		return TRUE;
	}
	case AMULET__V1__LEDGER_ENTRY__BODY_REVOKE: {
		AmuConsent *consent = scan_find(scan, entry->revoke->grant_id);
		if (consent != NULL && consent->revoked_ms == 0)
			consent->revoked_ms = entry->time_ms;
		if (scan->access != NULL) {
			AmuAccessRecord *record = g_new0(AmuAccessRecord, 1);
			record->time_ms = entry->time_ms;
			record->grant_id = g_strdup(entry->revoke->grant_id);
			record->kind = g_strdup("revoke");
			g_ptr_array_add(scan->access, record);
		}
		return TRUE;
	}
	case AMULET__V1__LEDGER_ENTRY__BODY_ACCESS:
		if (scan->access != NULL) {
			AmuAccessRecord *record = g_new0(AmuAccessRecord, 1);
			record->time_ms = entry->time_ms;
			record->grant_id = g_strdup(entry->access->grant_id);
			record->kind = g_strdup(entry->access->refused ? "refused" : "export");
			record->format = entry->access->format[0] != '\0' ? g_strdup(entry->access->format) : NULL;
			record->samples = entry->access->samples;
			record->detail = g_strdup(entry->access->refused ? entry->access->detail
									  : entry->access->manifest_sha256);
			g_ptr_array_add(scan->access, record);
		}
		return TRUE;
	case AMULET__V1__LEDGER_ENTRY__BODY__NOT_SET:
	case _AMULET__V1__LEDGER_ENTRY__BODY__CASE_IS_INT_SIZE:
		break;
	}
	g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
		    "consent ledger entry %" G_GUINT64_FORMAT " is of a kind this version does not know", entry->seq);
	return FALSE;
}

static gboolean
scan_ledger(AmuContext *self, LedgerScan *scan, guint64 *n_entries, GError **error)
{
	scan->context = self;
	scan->consents = g_ptr_array_new_with_free_func(g_object_unref);
	if (!amu_ledger_foreach(amu_context_get_ledger(self), scan_entry, scan, n_entries, error)) {
		g_clear_pointer(&scan->consents, g_ptr_array_unref);
		if (scan->access != NULL)
			g_clear_pointer(&scan->access, g_ptr_array_unref);
		return FALSE;
	}
	return TRUE;
}

/**
 * amu_context_get_consents:
 * Returns: (transfer full) (element-type AmuConsent): every grant ever made,
 *   revoked ones included, oldest first; the ledger is verified first
 * Since: 0.1
 */
GPtrArray *
amu_context_get_consents(AmuContext *self, GError **error)
{
	LedgerScan scan = {0};

	g_return_val_if_fail(AMU_IS_CONTEXT(self), NULL);
	if (!scan_ledger(self, &scan, NULL, error))
		return NULL;
	return scan.consents;
}

/**
 * amu_context_find_consent:
 * Returns: (transfer full): the grant with @id, or %NULL with %AMU_ERROR_NOT_FOUND
 * Since: 0.1
 */
AmuConsent *
amu_context_find_consent(AmuContext *self, const char *id, GError **error)
{
	g_autoptr(GPtrArray) consents = amu_context_get_consents(self, error);

	if (consents == NULL)
		return NULL;
	for (guint i = 0; i < consents->len; i++) {
		AmuConsent *consent = g_ptr_array_index(consents, i);
		if (g_strcmp0(consent->id, id) == 0)
			return g_object_ref(consent);
	}
	g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_FOUND, "no grant with id '%s' ('amulet consent list' shows them)",
		    id);
	return NULL;
}

/**
 * amu_context_revoke_consent:
 *
 * Ends a grant: later exports under it are refused. Copies already made
 * cannot be recalled.
 *
 * Since: 0.1
 */
gboolean
amu_context_revoke_consent(AmuContext *self, const char *id, GError **error)
{
	g_autoptr(AmuConsent) consent = amu_context_find_consent(self, id, error);
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentRevoke revoke = AMULET__V1__CONSENT_REVOKE__INIT;

	if (consent == NULL)
		return FALSE;
	if (consent->revoked_ms > 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "grant %s is already revoked", id);
		return FALSE;
	}
	revoke.grant_id = consent->id;
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_REVOKE;
	entry.revoke = &revoke;
	return amu_ledger_append(amu_context_get_ledger(self), &entry, g_get_real_time() / 1000, NULL, error);
}

/* Logs an export or a refused one, in the ledger. */
gboolean
amu_context_record_access(AmuContext *self, const char *grant_id, const char *format, guint64 samples,
			  const char *manifest_sha256, const char *refusal, GError **error)
{
	Amulet__V1__LedgerEntry entry = AMULET__V1__LEDGER_ENTRY__INIT;
	Amulet__V1__ConsentAccess access = AMULET__V1__CONSENT_ACCESS__INIT;

	access.grant_id = (char *)(grant_id != NULL ? grant_id : "");
	access.format = (char *)(format != NULL ? format : "");
	access.samples = samples;
	access.manifest_sha256 = (char *)(manifest_sha256 != NULL ? manifest_sha256 : "");
	access.refused = refusal != NULL;
	access.detail = (char *)(refusal != NULL ? refusal : "");
	entry.body_case = AMULET__V1__LEDGER_ENTRY__BODY_ACCESS;
	entry.access = &access;
	return amu_ledger_append(amu_context_get_ledger(self), &entry, g_get_real_time() / 1000, NULL, error);
}

/**
 * amu_context_verify_consent_ledger:
 * @n_entries: (out) (optional): entries checked
 *
 * Checks every entry's seal, hash chain and owner signature, and that none
 * was deleted from the end.
 *
 * Returns: %FALSE with %AMU_ERROR_TAMPERED or %AMU_ERROR_BAD_SIGNATURE naming
 *   the first bad entry
 * Since: 0.1
 */
gboolean
amu_context_verify_consent_ledger(AmuContext *self, guint64 *n_entries, GError **error)
{
	g_return_val_if_fail(AMU_IS_CONTEXT(self), FALSE);
	return amu_ledger_foreach(amu_context_get_ledger(self), NULL, NULL, n_entries, error);
}

void
amu_access_record_free(AmuAccessRecord *record)
{
	if (record == NULL)
		return;
	g_free(record->grant_id);
	g_free(record->kind);
	g_free(record->format);
	g_free(record->detail);
	g_free(record);
}

/**
 * amu_context_get_access_log:
 * Returns: (transfer full) (element-type AmuAccessRecord): every export,
 *   refused export and revocation, oldest first
 * Since: 0.1
 */
GPtrArray *
amu_context_get_access_log(AmuContext *self, GError **error)
{
	LedgerScan scan = {0};
	g_autoptr(GPtrArray) consents = NULL;

	g_return_val_if_fail(AMU_IS_CONTEXT(self), NULL);
	scan.access = g_ptr_array_new_with_free_func((GDestroyNotify)amu_access_record_free);
	if (!scan_ledger(self, &scan, NULL, error))
		return NULL;
	consents = scan.consents;
	return scan.access;
}
