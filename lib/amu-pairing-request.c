/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "amu-bluez.h"
#include "amu-private.h"
#include "amu-text.h"

/**
 * AmuPairingRequest:
 *
 * A pairing waiting for its user: the six-digit code both sides show, the
 * device's disclosure, and whether the confirmation is weaker because the
 * device has no display (a toy confirms with a button only).
 */
struct _AmuPairingRequest {
	GObject parent_instance;
	AmuChannel *channel; /* NULL once answered or the pairing ended */
	AmuBluezPasskey *passkey; /* the link-layer stage: NULL once answered */
	AmuPairingStage stage;
	guint code;
	gboolean weak;
	char *model;
	char *profile;
	char *fingerprint;
	AmuDisclosure *disclosure;
};

G_DEFINE_TYPE(AmuPairingRequest, amu_pairing_request, G_TYPE_OBJECT)

static void
amu_pairing_request_finalize(GObject *object)
{
	AmuPairingRequest *self = AMU_PAIRING_REQUEST(object);

	g_clear_pointer(&self->channel, amu_channel_unref);
	g_clear_pointer(&self->passkey, amu_bluez_passkey_unref);
	g_clear_object(&self->disclosure);
	g_free(self->model);
	g_free(self->profile);
	g_free(self->fingerprint);
	G_OBJECT_CLASS(amu_pairing_request_parent_class)->finalize(object);
}

static void
amu_pairing_request_class_init(AmuPairingRequestClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_pairing_request_finalize;
}

static void
amu_pairing_request_init(AmuPairingRequest *self)
{
}

AmuPairingRequest *
amu_pairing_request_new(AmuChannel *channel)
{
	AmuPairingRequest *self = g_object_new(AMU_TYPE_PAIRING_REQUEST, NULL);
	const Amulet__V1__DeviceHello *hello = amu_channel_get_device_hello(channel);
	const Amulet__V1__Disclosure *disclosure = amu_channel_get_disclosure(channel);
	uint8_t key[AMU_CHANNEL_KEYBYTES];

	self->channel = amu_channel_ref(channel);
	self->code = (guint)amu_channel_get_code(channel);
	self->weak = !hello->has_display;
	self->model = amu_text_printable(hello->model);
	self->profile = g_strdup(amu_profile_to_string(hello->profile));
	if (amu_channel_get_remote_static(channel, key))
		self->fingerprint = amu_fingerprint_from_key(key);
	if (disclosure != NULL)
		self->disclosure = amu_disclosure_new_from_message(disclosure);
	return self;
}

/* The radio's own pairing (LE Secure Connections numeric comparison) asks
 * to compare a passkey before Amulet's handshake starts: the same question
 * to the same user, through the same callback. */
AmuPairingRequest *
amu_pairing_request_new_link(AmuBluezPasskey *passkey)
{
	AmuPairingRequest *self = g_object_new(AMU_TYPE_PAIRING_REQUEST, NULL);

	self->passkey = amu_bluez_passkey_ref(passkey);
	self->stage = AMU_PAIRING_STAGE_LINK;
	self->code = amu_bluez_passkey_get_value(passkey);
	return self;
}

void
amu_pairing_request_invalidate(AmuPairingRequest *self)
{
	g_clear_pointer(&self->channel, amu_channel_unref);
	g_clear_pointer(&self->passkey, amu_bluez_passkey_unref);
}

/**
 * amu_pairing_request_get_stage:
 *
 * Which confirmation this is: %AMU_PAIRING_STAGE_LINK for the radio's
 * passkey (a Bluetooth device, before Amulet's handshake; no disclosure
 * yet), %AMU_PAIRING_STAGE_AMULET for Amulet's own code and the disclosure.
 *
 * Since: 0.1
 */
AmuPairingStage
amu_pairing_request_get_stage(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), AMU_PAIRING_STAGE_AMULET);
	return self->stage;
}

/**
 * amu_pairing_request_get_code:
 * Returns: the code, 0 to 999999; show it with six digits
 * Since: 0.1
 */
guint
amu_pairing_request_get_code(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), 0);
	return self->code;
}

/**
 * amu_pairing_request_get_code_string:
 * Returns: (transfer full): the code as six digits, e.g. "042917"
 * Since: 0.1
 */
char *
amu_pairing_request_get_code_string(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), NULL);
	return g_strdup_printf("%06u", self->code);
}

/**
 * amu_pairing_request_is_weak:
 *
 * A device without a display cannot show the code: its user confirms with a
 * button, which does not detect a man in the middle. Tell the user so.
 *
 * Returns: %TRUE if the device has no display
 * Since: 0.1
 */
gboolean
amu_pairing_request_is_weak(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), TRUE);
	return self->weak;
}

const char *
amu_pairing_request_get_model(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), NULL);
	return self->model;
}

const char *
amu_pairing_request_get_profile(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), NULL);
	return self->profile;
}

/**
 * amu_pairing_request_get_fingerprint:
 * Returns: (transfer full) (nullable): the device key's fingerprint
 * Since: 0.1
 */
char *
amu_pairing_request_get_fingerprint(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), NULL);
	return g_strdup(self->fingerprint);
}

/**
 * amu_pairing_request_get_disclosure:
 * Returns: (transfer none) (nullable): what the device discloses
 * Since: 0.1
 */
AmuDisclosure *
amu_pairing_request_get_disclosure(AmuPairingRequest *self)
{
	g_return_val_if_fail(AMU_IS_PAIRING_REQUEST(self), NULL);
	return self->disclosure;
}

/**
 * amu_pairing_request_reply:
 * @codes_match: the user saw the same code on the device
 * @disclosure_accepted: the user accepts the disclosure
 *
 * Answers the request; pairing completes only if both are %TRUE and the
 * device's user accepted too. A second reply is ignored.
 *
 * Since: 0.1
 */
void
amu_pairing_request_reply(AmuPairingRequest *self, gboolean codes_match, gboolean disclosure_accepted)
{
	g_autoptr(AmuChannel) channel = NULL;

	g_return_if_fail(AMU_IS_PAIRING_REQUEST(self));
	if (self->passkey != NULL) {
		g_autoptr(AmuBluezPasskey) passkey = g_steal_pointer(&self->passkey);
		amu_bluez_passkey_reply(passkey, codes_match);
		return;
	}
	if (self->channel == NULL)
		return;
	channel = g_steal_pointer(&self->channel);
	if (amu_channel_get_state(channel) == AMU_CHANNEL_STATE_CONFIRMING)
		amu_channel_confirm(channel, codes_match, disclosure_accepted, NULL);
}
