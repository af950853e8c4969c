/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>

#include "amu-private.h"
#include "amu-text.h"

/**
 * AmuDisclosure:
 *
 * What a device says about itself before activation (OTA IoT Trust
 * Framework 1, 18-22): maker, data categories and why, retention, end of
 * support, update policy, offline behaviour and the privacy policy version.
 */
struct _AmuDisclosure {
	GObject parent_instance;
	GBytes *packed;
	Amulet__V1__Disclosure *message;
};

G_DEFINE_TYPE(AmuDisclosure, amu_disclosure, G_TYPE_OBJECT)

static void
amu_disclosure_finalize(GObject *object)
{
	AmuDisclosure *self = AMU_DISCLOSURE(object);

	if (self->message != NULL)
		amulet__v1__disclosure__free_unpacked(self->message, NULL);
	g_bytes_unref(self->packed);
	G_OBJECT_CLASS(amu_disclosure_parent_class)->finalize(object);
}

static void
amu_disclosure_class_init(AmuDisclosureClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_disclosure_finalize;
}

static void
amu_disclosure_init(AmuDisclosure *self)
{
}

AmuDisclosure *
amu_disclosure_new_from_bytes(GBytes *packed)
{
	AmuDisclosure *self;
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(packed, &len);
	Amulet__V1__Disclosure *message = amulet__v1__disclosure__unpack(NULL, len, data);

	if (message == NULL)
		return NULL;
	/* what the device wrote reaches terminals: make it printable */
	amu_text_sanitize_message(&message->base);
	self = g_object_new(AMU_TYPE_DISCLOSURE, NULL);
	self->packed = g_bytes_ref(packed);
	self->message = message;
	return self;
}

AmuDisclosure *
amu_disclosure_new_from_message(const Amulet__V1__Disclosure *message)
{
	size_t len = protobuf_c_message_get_packed_size(&message->base);
	uint8_t *buf = g_malloc(len + 1);
	g_autoptr(GBytes) packed = NULL;

	protobuf_c_message_pack(&message->base, buf);
	packed = g_bytes_new_take(buf, len);
	return amu_disclosure_new_from_bytes(packed);
}

GBytes *
amu_disclosure_get_packed(AmuDisclosure *self)
{
	return self->packed;
}

#define GETTER(field)                                                                              \
	const char *amu_disclosure_get_##field(AmuDisclosure *self)                                 \
	{                                                                                          \
		g_return_val_if_fail(AMU_IS_DISCLOSURE(self), NULL);                                \
		return self->message->field;                                                       \
	}

/**
 * amu_disclosure_get_maker:
 * Returns: (transfer none): who makes the device
 * Since: 0.1
 */
GETTER(maker)
GETTER(model)
GETTER(firmware_version)
GETTER(retention)
GETTER(support_end_date)
GETTER(update_policy)
GETTER(offline_behaviour)
GETTER(privacy_policy_version)
GETTER(privacy_policy_url)
GETTER(vendor_id)

/**
 * amu_disclosure_get_vendor_public_key:
 * Returns: (transfer none) (nullable): the vendor's Ed25519 key (32 bytes),
 *   pinned at pairing to check firmware updates, or %NULL if the device gave none
 * Since: 0.1
 */
const guint8 *
amu_disclosure_get_vendor_public_key(AmuDisclosure *self)
{
	g_return_val_if_fail(AMU_IS_DISCLOSURE(self), NULL);
	if (self->message->vendor_public_key.len != 32)
		return NULL;
	return self->message->vendor_public_key.data;
}

/**
 * amu_disclosure_get_n_categories:
 * Returns: how many data categories the device collects
 * Since: 0.1
 */
guint
amu_disclosure_get_n_categories(AmuDisclosure *self)
{
	g_return_val_if_fail(AMU_IS_DISCLOSURE(self), 0);
	return (guint)self->message->n_categories;
}

/**
 * amu_disclosure_get_category:
 * @index: below amu_disclosure_get_n_categories()
 * @purpose: (out) (optional) (transfer none): why it is collected
 * Returns: (transfer none) (nullable): the category name, e.g. "heart_rate"
 * Since: 0.1
 */
const char *
amu_disclosure_get_category(AmuDisclosure *self, guint index, const char **purpose)
{
	g_return_val_if_fail(AMU_IS_DISCLOSURE(self), NULL);
	if (index >= self->message->n_categories)
		return NULL;
	if (purpose != NULL)
		*purpose = self->message->categories[index]->purpose;
	return self->message->categories[index]->name;
}

/**
 * amu_disclosure_get_privacy_policy_digest:
 * Returns: (transfer full): the SHA-256 of the privacy policy, in hex
 * Since: 0.1
 */
char *
amu_disclosure_get_privacy_policy_digest(AmuDisclosure *self)
{
	char *hex;

	g_return_val_if_fail(AMU_IS_DISCLOSURE(self), NULL);
	hex = g_malloc(self->message->privacy_policy_digest.len * 2 + 1);
	sodium_bin2hex(hex, self->message->privacy_policy_digest.len * 2 + 1,
		       self->message->privacy_policy_digest.data, self->message->privacy_policy_digest.len);
	return hex;
}

/**
 * amu_disclosure_to_text:
 * Returns: (transfer full): the disclosure in plain words, several lines
 * Since: 0.1
 */
char *
amu_disclosure_to_text(AmuDisclosure *self)
{
	GString *text = g_string_new(NULL);
	g_autofree char *digest = amu_disclosure_get_privacy_policy_digest(self);

	g_string_append_printf(text, "  Device:          %s %s, firmware %s\n", self->message->maker,
			       self->message->model, self->message->firmware_version);
	g_string_append(text, "  Collects:\n");
	for (size_t i = 0; i < self->message->n_categories; i++)
		g_string_append_printf(text, "    - %-17s %s\n", self->message->categories[i]->name,
				       self->message->categories[i]->purpose);
	g_string_append_printf(text, "  Retention:       %s\n", self->message->retention);
	g_string_append_printf(text, "  Supported until: %s\n", self->message->support_end_date);
	g_string_append_printf(text, "  Updates:         %s\n", self->message->update_policy);
	g_string_append_printf(text, "  Offline:         %s\n", self->message->offline_behaviour);
	g_string_append_printf(text, "  Privacy policy:  version %s, %s\n                   sha256 %s\n",
			       self->message->privacy_policy_version, self->message->privacy_policy_url, digest);
	return g_string_free(text, FALSE);
}
