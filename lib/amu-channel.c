/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-channel.h"
#include "amu-cipher.h"
#include "amu-noise.h"
#include "amulet/amu-error.h"

#define PROLOGUE "Amulet v1"
#define COMMITMENT_BYTES 32

struct AmuChannel {
	int ref_count;
	AmuChannelRole role;
	AmuChannelMode mode;
	AmuChannelState state;
	GError *error;
	AmuRandomFunc random_func;
	void *random_data;

	AmuChannelTxFunc tx_func;
	void *tx_data;
	AmuChannelEventFunc event_func;
	void *event_data;

	/* copies until the handshake takes them, then wiped: the long-lived
	 * identity key stays with its owner, in sodium_malloc'd memory */
	uint8_t local_static[AMU_CHANNEL_KEYBYTES];
	uint8_t fixed_ephemeral[AMU_CHANNEL_KEYBYTES]; /* tests only */
	gboolean have_fixed_ephemeral;
	uint8_t remote_static[AMU_CHANNEL_KEYBYTES];
	gboolean have_remote_static;
	uint8_t bonded[AMU_CHANNEL_MAX_BONDS][AMU_CHANNEL_KEYBYTES];
	size_t n_bonded;

	Amulet__V1__Alert__Code refusal;
	uint64_t retry_after_ms;
	char *refusal_message;

	/* what we say, packed; what the peer said, unpacked */
	GBytes *hello_packed;
	GBytes *disclosure_packed;
	Amulet__V1__DeviceHello *device_hello;
	Amulet__V1__HostHello *host_hello;
	Amulet__V1__Disclosure *disclosure;

	AmuNoiseHandshake *handshake;
	unsigned int step;
	uint8_t handshake_hash[AMU_CHANNEL_HASHBYTES];
	AmuCipherState *send_cs;
	AmuCipherState *recv_cs;

	/* pairing code exchange */
	uint8_t nonce_device[AMU_CHANNEL_NONCEBYTES];
	uint8_t nonce_host[AMU_CHANNEL_NONCEBYTES];
	uint8_t commitment[COMMITMENT_BYTES];
	gboolean have_commitment;
	gboolean have_nonce_host;
	int code;
	gboolean local_answered;
	gboolean local_accepted;
	gboolean peer_answered;
	gboolean peer_accepted;

	GByteArray *scratch; /* packing buffer, reused */
};

const char *
amu_channel_state_to_str(AmuChannelState state)
{
	switch (state) {
	case AMU_CHANNEL_STATE_IDLE:
		return "idle";
	case AMU_CHANNEL_STATE_HANDSHAKE:
		return "handshake";
	case AMU_CHANNEL_STATE_CODE_EXCHANGE:
		return "code-exchange";
	case AMU_CHANNEL_STATE_CONFIRMING:
		return "confirming";
	case AMU_CHANNEL_STATE_STORING_BOND:
		return "storing-bond";
	case AMU_CHANNEL_STATE_OPEN:
		return "open";
	case AMU_CHANNEL_STATE_FAILED:
		return "failed";
	}
	return "unknown";
}

/* once every handshake this channel will run has its keys */
static void
wipe_local_keys(AmuChannel *channel)
{
	sodium_memzero(channel->local_static, sizeof(channel->local_static));
	sodium_memzero(channel->fixed_ephemeral, sizeof(channel->fixed_ephemeral));
}

AmuChannel *
amu_channel_new(AmuChannelRole role, AmuRandomFunc random_func, void *random_data)
{
	AmuChannel *channel;

	if (sodium_init() < 0)
		return NULL;
	channel = g_new0(AmuChannel, 1);
	channel->ref_count = 1;
	channel->role = role;
	channel->state = AMU_CHANNEL_STATE_IDLE;
	channel->random_func = random_func;
	channel->random_data = random_data;
	channel->code = -1;
	channel->scratch = g_byte_array_sized_new(4096 + 64);
	return channel;
}

AmuChannel *
amu_channel_ref(AmuChannel *channel)
{
	channel->ref_count++;
	return channel;
}

void
amu_channel_unref(AmuChannel *channel)
{
	if (channel == NULL || --channel->ref_count > 0)
		return;
	wipe_local_keys(channel);
	sodium_memzero(channel->nonce_device, sizeof(channel->nonce_device));
	sodium_memzero(channel->nonce_host, sizeof(channel->nonce_host));
	amu_noise_handshake_free(channel->handshake);
	amu_cipher_state_free(channel->send_cs);
	amu_cipher_state_free(channel->recv_cs);
	g_clear_pointer(&channel->hello_packed, g_bytes_unref);
	g_clear_pointer(&channel->disclosure_packed, g_bytes_unref);
	if (channel->device_hello != NULL)
		amulet__v1__device_hello__free_unpacked(channel->device_hello, NULL);
	if (channel->host_hello != NULL)
		amulet__v1__host_hello__free_unpacked(channel->host_hello, NULL);
	if (channel->disclosure != NULL)
		amulet__v1__disclosure__free_unpacked(channel->disclosure, NULL);
	g_byte_array_unref(channel->scratch);
	g_free(channel->refusal_message);
	g_clear_error(&channel->error);
	g_free(channel);
}

void
amu_channel_set_tx_func(AmuChannel *channel, AmuChannelTxFunc func, void *user_data)
{
	channel->tx_func = func;
	channel->tx_data = user_data;
}

void
amu_channel_set_event_func(AmuChannel *channel, AmuChannelEventFunc func, void *user_data)
{
	channel->event_func = func;
	channel->event_data = user_data;
}

void
amu_channel_set_local_static(AmuChannel *channel, const uint8_t secret_key[AMU_CHANNEL_KEYBYTES])
{
	memcpy(channel->local_static, secret_key, AMU_CHANNEL_KEYBYTES);
}

void
amu_channel_set_fixed_ephemeral(AmuChannel *channel, const uint8_t secret_key[AMU_CHANNEL_KEYBYTES])
{
	memcpy(channel->fixed_ephemeral, secret_key, AMU_CHANNEL_KEYBYTES);
	channel->have_fixed_ephemeral = TRUE;
}

static GBytes *
pack_message(const ProtobufCMessage *message)
{
	size_t len = protobuf_c_message_get_packed_size(message);
	uint8_t *buf = g_malloc(len + 1);

	protobuf_c_message_pack(message, buf);
	return g_bytes_new_take(buf, len);
}

void
amu_channel_set_host_hello(AmuChannel *channel, const Amulet__V1__HostHello *hello)
{
	g_clear_pointer(&channel->hello_packed, g_bytes_unref);
	channel->hello_packed = pack_message(&hello->base);
}

void
amu_channel_set_device_hello(AmuChannel *channel, const Amulet__V1__DeviceHello *hello,
			     const Amulet__V1__Disclosure *disclosure)
{
	g_clear_pointer(&channel->hello_packed, g_bytes_unref);
	g_clear_pointer(&channel->disclosure_packed, g_bytes_unref);
	channel->hello_packed = pack_message(&hello->base);
	if (disclosure != NULL)
		channel->disclosure_packed = pack_message(&disclosure->base);
}

void
amu_channel_set_pairing_policy(AmuChannel *channel, Amulet__V1__Alert__Code refusal,
			       uint64_t retry_after_ms, const char *message)
{
	channel->refusal = refusal;
	channel->retry_after_ms = retry_after_ms;
	g_free(channel->refusal_message);
	channel->refusal_message = g_strdup(message);
}

void
amu_channel_add_bonded_peer(AmuChannel *channel, const uint8_t public_key[AMU_CHANNEL_KEYBYTES])
{
	g_return_if_fail(channel->n_bonded < AMU_CHANNEL_MAX_BONDS);
	memcpy(channel->bonded[channel->n_bonded++], public_key, AMU_CHANNEL_KEYBYTES);
}

static void
emit(AmuChannel *channel, AmuChannelEventType type, const Amulet__V1__Message *message)
{
	AmuChannelEvent event = {.type = type, .message = message, .error = channel->error};

	if (channel->event_func != NULL)
		channel->event_func(channel, &event, channel->event_data);
}

/* Fails the channel once; returns FALSE so callers can `return fail(...)`. */
static gboolean G_GNUC_PRINTF(4, 5)
fail(AmuChannel *channel, GError **error, AmuError code, const char *format, ...)
{
	va_list args;

	if (channel->state != AMU_CHANNEL_STATE_FAILED) {
		va_start(args, format);
		channel->error = g_error_new_valist(AMU_ERROR, code, format, args);
		va_end(args);
		channel->state = AMU_CHANNEL_STATE_FAILED;
		amu_noise_handshake_free(channel->handshake);
		channel->handshake = NULL;
		amu_channel_ref(channel);
		emit(channel, AMU_CHANNEL_EVENT_FAILED, NULL);
		amu_channel_unref(channel);
	}
	if (error != NULL && channel->error != NULL)
		*error = g_error_copy(channel->error);
	return FALSE;
}

void
amu_channel_abort(AmuChannel *channel, const GError *error)
{
	if (channel->state == AMU_CHANNEL_STATE_FAILED)
		return;
	fail(channel, NULL, error->domain == AMU_ERROR ? error->code : AMU_ERROR_FAILED, "%s",
	     error->message);
}

static void
tx_packet(AmuChannel *channel, const Amulet__V1__Packet *packet)
{
	size_t len = protobuf_c_message_get_packed_size(&packet->base);

	g_byte_array_set_size(channel->scratch, len);
	protobuf_c_message_pack(&packet->base, channel->scratch->data);
	if (channel->tx_func != NULL)
		channel->tx_func(channel, channel->scratch->data, len, channel->tx_data);
}

static void
tx_alert(AmuChannel *channel, Amulet__V1__Alert__Code code, uint64_t retry_after_ms, const char *message)
{
	Amulet__V1__Packet packet = AMULET__V1__PACKET__INIT;
	Amulet__V1__Alert alert = AMULET__V1__ALERT__INIT;

	alert.code = code;
	alert.retry_after_ms = retry_after_ms;
	alert.message = (char *)(message != NULL ? message : "");
	packet.version = AMU_CHANNEL_PROTOCOL_VERSION;
	packet.body_case = AMULET__V1__PACKET__BODY_ALERT;
	packet.alert = &alert;
	tx_packet(channel, &packet);
}

static void
tx_handshake(AmuChannel *channel, Amulet__V1__Handshake__Pattern pattern, const uint8_t *noise, size_t len)
{
	Amulet__V1__Packet packet = AMULET__V1__PACKET__INIT;
	Amulet__V1__Handshake handshake = AMULET__V1__HANDSHAKE__INIT;

	handshake.pattern = pattern;
	handshake.step = channel->step++;
	handshake.noise.data = (uint8_t *)noise;
	handshake.noise.len = len;
	packet.version = AMU_CHANNEL_PROTOCOL_VERSION;
	packet.body_case = AMULET__V1__PACKET__BODY_HANDSHAKE;
	packet.handshake = &handshake;
	tx_packet(channel, &packet);
}

static AmuNoiseHandshake *
handshake_new(AmuChannel *channel, AmuNoisePattern pattern, AmuNoiseRole role, const uint8_t *remote_static)
{
	AmuNoiseHandshake *hs = amu_noise_handshake_new(pattern, role, channel->random_func, channel->random_data);

	if (hs == NULL)
		return NULL;
	if (amu_noise_handshake_set_prologue(hs, (const uint8_t *)PROLOGUE, strlen(PROLOGUE)) < 0 ||
	    amu_noise_handshake_set_local_static(hs, channel->local_static) < 0 ||
	    (remote_static != NULL && amu_noise_handshake_set_remote_static(hs, remote_static) < 0) ||
	    (channel->have_fixed_ephemeral &&
	     amu_noise_handshake_set_fixed_ephemeral(hs, channel->fixed_ephemeral) < 0) ||
	    amu_noise_handshake_start(hs) < 0) {
		amu_noise_handshake_free(hs);
		return NULL;
	}
	return hs;
}

static gboolean
write_handshake(AmuChannel *channel, Amulet__V1__Handshake__Pattern pattern, GBytes *payload, GError **error)
{
	uint8_t out[AMU_NOISE_MAX_MESSAGE];
	size_t out_len = 0;
	gsize payload_len = 0;
	const uint8_t *payload_data = payload != NULL ? g_bytes_get_data(payload, &payload_len) : NULL;

	if (amu_noise_handshake_write_message(channel->handshake, out, sizeof(out), &out_len, payload_data,
					      payload_len) < 0)
		return fail(channel, error, AMU_ERROR_FAILED, "writing handshake message %u: %s",
			    channel->step, amu_noise_error_to_str(amu_noise_handshake_get_error(channel->handshake)));
	tx_handshake(channel, pattern, out, out_len);
	return TRUE;
}

static gboolean
split(AmuChannel *channel, GError **error)
{
	if (amu_noise_handshake_get_handshake_hash(channel->handshake, channel->handshake_hash) < 0 ||
	    amu_noise_handshake_get_remote_static(channel->handshake, channel->remote_static) < 0 ||
	    amu_noise_handshake_split(channel->handshake, &channel->send_cs, &channel->recv_cs) < 0)
		return fail(channel, error, AMU_ERROR_FAILED, "completing the handshake failed");
	/* the initiator (host) sends with the first key; the responder swapped by split() */
	channel->have_remote_static = TRUE;
	amu_noise_handshake_free(channel->handshake);
	channel->handshake = NULL;
	return TRUE;
}

gboolean
amu_channel_send(AmuChannel *channel, const Amulet__V1__Message *message, GError **error)
{
	Amulet__V1__Packet packet = AMULET__V1__PACKET__INIT;
	size_t plain_len = protobuf_c_message_get_packed_size(&message->base);
	g_autofree uint8_t *record = NULL;
	size_t record_len = 0;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (channel->state == AMU_CHANNEL_STATE_FAILED)
		return fail(channel, error, AMU_ERROR_FAILED, "channel failed");
	if (channel->send_cs == NULL)
		return fail(channel, error, AMU_ERROR_FAILED, "no session to send on (state %s)",
			    amu_channel_state_to_str(channel->state));
	record = g_malloc(plain_len + AMU_RECORD_OVERHEAD);
	/* pack straight into the record buffer after the counter, seal in place */
	protobuf_c_message_pack(&message->base, record + 8);
	if (amu_record_seal(channel->send_cs, record, plain_len + AMU_RECORD_OVERHEAD, &record_len,
			    record + 8, plain_len) < 0)
		return fail(channel, error, AMU_ERROR_FAILED, "sealing a record failed (counter exhausted)");
	packet.version = AMU_CHANNEL_PROTOCOL_VERSION;
	packet.body_case = AMULET__V1__PACKET__BODY_RECORD;
	packet.record.data = record;
	packet.record.len = record_len;
	tx_packet(channel, &packet);
	return TRUE;
}

static gboolean
send_pair_message(AmuChannel *channel, Amulet__V1__Message__BodyCase body_case, void *body, GError **error)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;

	message.body_case = body_case;
	/* every body member of the oneof is a pointer at the same offset */
	message.disclosure = body;
	return amu_channel_send(channel, &message, error);
}

gboolean
amu_channel_start(AmuChannel *channel, AmuChannelMode mode, const uint8_t *remote_static, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	g_return_val_if_fail(channel->role == AMU_CHANNEL_ROLE_HOST, FALSE);
	if (channel->state != AMU_CHANNEL_STATE_IDLE)
		return fail(channel, error, AMU_ERROR_FAILED, "channel already started");
	channel->mode = mode;
	if (mode == AMU_CHANNEL_MODE_RECONNECT) {
		if (remote_static == NULL)
			return fail(channel, error, AMU_ERROR_INVALID_ARGUMENT, "reconnect needs the bonded key");
		channel->handshake = handshake_new(channel, AMU_NOISE_PATTERN_KK, AMU_NOISE_ROLE_INITIATOR,
						   remote_static);
	} else {
		channel->handshake = handshake_new(channel, AMU_NOISE_PATTERN_XX, AMU_NOISE_ROLE_INITIATOR, NULL);
	}
	wipe_local_keys(channel);
	if (channel->handshake == NULL)
		return fail(channel, error, AMU_ERROR_FAILED, "cannot set up the handshake");
	channel->state = AMU_CHANNEL_STATE_HANDSHAKE;
	/* XX message 0 carries nothing: it is sent in the clear. KK message 0 is
	 * encrypted to the device's key, so our hello rides in it. */
	return write_handshake(channel,
			       mode == AMU_CHANNEL_MODE_RECONNECT ? AMULET__V1__HANDSHAKE__PATTERN__KK
								  : AMULET__V1__HANDSHAKE__PATTERN__XX,
			       mode == AMU_CHANNEL_MODE_RECONNECT ? channel->hello_packed : NULL, error);
}

static AmuError
alert_to_error(Amulet__V1__Alert__Code code)
{
	switch (code) {
	case AMULET__V1__ALERT__CODE__NOT_PAIRING_MODE:
		return AMU_ERROR_NOT_PAIRING_MODE;
	case AMULET__V1__ALERT__CODE__LOCKED_OUT:
		return AMU_ERROR_LOCKED_OUT;
	case AMULET__V1__ALERT__CODE__UNKNOWN_PEER:
		return AMU_ERROR_UNKNOWN_PEER;
	case AMULET__V1__ALERT__CODE__HANDSHAKE_FAILED:
		return AMU_ERROR_AUTH_FAILED;
	case AMULET__V1__ALERT__CODE__UNSUPPORTED_VERSION:
		return AMU_ERROR_NOT_SUPPORTED;
	case AMULET__V1__ALERT__CODE__PROTOCOL_ERROR:
	case AMULET__V1__ALERT__CODE__ALERT_UNSPECIFIED:
	case _AMULET__V1__ALERT__CODE_IS_INT_SIZE:
		break;
	}
	return AMU_ERROR_PROTOCOL;
}

static gboolean
rx_alert(AmuChannel *channel, const Amulet__V1__Alert *alert, GError **error)
{
	AmuError code = alert_to_error(alert->code);

	if (code == AMU_ERROR_LOCKED_OUT)
		return fail(channel, error, code,
			    "the device refuses pairing after repeated failed attempts: try again in %" G_GUINT64_FORMAT " s",
			    (alert->retry_after_ms + 999) / 1000);
	if (code == AMU_ERROR_NOT_PAIRING_MODE)
		return fail(channel, error, code,
			    "the device is owned and not in pairing mode: its owner must open pairing (or factory reset it) first");
	if (code == AMU_ERROR_UNKNOWN_PEER)
		return fail(channel, error, code,
			    "the device does not know this host (it was reset or unpaired): pair it again");
	return fail(channel, error, code, "the device refused: %s", alert->message != NULL ? alert->message : "");
}

/* Unpack a handshake payload of the given type; NULL on a malformed one. */
static void *
unpack_payload(const ProtobufCMessageDescriptor *descriptor, const uint8_t *payload, size_t len)
{
	return protobuf_c_message_unpack(descriptor, NULL, len, payload);
}

/* The peer's hello says which protocol version it speaks (Packet.version only
 * says how to parse the packet). Anything but ours is refused, 0 (a peer that
 * does not say) included, naming the side to update; a device tells the host
 * why in an alert. */
static gboolean
check_peer_version(AmuChannel *channel, uint32_t peer_version, GError **error)
{
	gboolean host = channel->role == AMU_CHANNEL_ROLE_HOST;
	const char *peer = host ? "device" : "host";
	const char *self = host ? "host" : "device";
	g_autofree char *message = NULL;

	if (peer_version == AMU_CHANNEL_PROTOCOL_VERSION)
		return TRUE;
	message = g_strdup_printf("the %s speaks protocol version %u%s, the %s version %u: update the %s", peer,
				  peer_version, peer_version == 0 ? " (unspecified)" : "", self,
				  AMU_CHANNEL_PROTOCOL_VERSION,
				  peer_version < AMU_CHANNEL_PROTOCOL_VERSION ? peer : self);
	if (!host)
		tx_alert(channel, AMULET__V1__ALERT__CODE__UNSUPPORTED_VERSION, 0, message);
	return fail(channel, error, AMU_ERROR_NOT_SUPPORTED, "%s", message);
}

static gboolean
read_handshake(AmuChannel *channel, const Amulet__V1__Handshake *handshake, uint8_t *payload,
	       size_t *payload_len, GError **error)
{
	if (handshake->step != channel->step)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "handshake message %u arrived, expected %u",
			    handshake->step, channel->step);
	if (amu_noise_handshake_read_message(channel->handshake, payload, AMU_NOISE_MAX_MESSAGE, payload_len,
					     handshake->noise.data, handshake->noise.len) < 0) {
		AmuNoiseError noise_error = amu_noise_handshake_get_error(channel->handshake);
		if (channel->mode == AMU_CHANNEL_MODE_RECONNECT && channel->role == AMU_CHANNEL_ROLE_HOST)
			return fail(channel, error, AMU_ERROR_KEY_CHANGED,
				    "the device did not prove the key bonded with it (%s): it was factory reset, "
				    "or something is impersonating it; if you reset it, unpair and pair again",
				    amu_noise_error_to_str(noise_error));
		return fail(channel, error, AMU_ERROR_AUTH_FAILED, "handshake message %u failed: %s",
			    channel->step, amu_noise_error_to_str(noise_error));
	}
	channel->step++;
	return TRUE;
}

static gboolean
device_rx_first(AmuChannel *channel, const Amulet__V1__Handshake *handshake, GError **error)
{
	g_autofree uint8_t *payload = g_malloc(AMU_NOISE_MAX_MESSAGE);
	size_t payload_len = 0;

	if (handshake->step != 0)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "handshake must start at message 0");
	if (handshake->pattern == AMULET__V1__HANDSHAKE__PATTERN__XX) {
		channel->mode = AMU_CHANNEL_MODE_PAIR;
		if (channel->refusal != AMULET__V1__ALERT__CODE__ALERT_UNSPECIFIED) {
			tx_alert(channel, channel->refusal, channel->retry_after_ms, channel->refusal_message);
			return fail(channel, error, alert_to_error(channel->refusal), "pairing refused: %s",
				    channel->refusal_message != NULL ? channel->refusal_message : "");
		}
		channel->handshake = handshake_new(channel, AMU_NOISE_PATTERN_XX, AMU_NOISE_ROLE_RESPONDER, NULL);
		wipe_local_keys(channel);
		if (channel->handshake == NULL)
			return fail(channel, error, AMU_ERROR_FAILED, "cannot set up the handshake");
		channel->state = AMU_CHANNEL_STATE_HANDSHAKE;
		if (!read_handshake(channel, handshake, payload, &payload_len, error))
			return FALSE;
		return write_handshake(channel, AMULET__V1__HANDSHAKE__PATTERN__XX, channel->hello_packed, error);
	}
	if (handshake->pattern == AMULET__V1__HANDSHAKE__PATTERN__KK) {
		channel->mode = AMU_CHANNEL_MODE_RECONNECT;
		channel->state = AMU_CHANNEL_STATE_HANDSHAKE;
		/* No key id goes over the air: try each bonded host's key, so a
		 * passive observer cannot link reconnects to one host. */
		for (size_t i = 0; i < channel->n_bonded; i++) {
			AmuNoiseHandshake *hs = handshake_new(channel, AMU_NOISE_PATTERN_KK, AMU_NOISE_ROLE_RESPONDER,
							      channel->bonded[i]);
			if (hs == NULL)
				continue;
			if (amu_noise_handshake_read_message(hs, payload, AMU_NOISE_MAX_MESSAGE, &payload_len,
							     handshake->noise.data, handshake->noise.len) == 0) {
				channel->handshake = hs;
				break;
			}
			amu_noise_handshake_free(hs);
		}
		wipe_local_keys(channel);
		if (channel->handshake == NULL) {
			tx_alert(channel, AMULET__V1__ALERT__CODE__UNKNOWN_PEER, 0, "no bond for this host");
			return fail(channel, error, AMU_ERROR_UNKNOWN_PEER, "reconnect from a host with no bond here");
		}
		channel->step = 1;
		channel->host_hello = unpack_payload(&amulet__v1__host_hello__descriptor, payload, payload_len);
		if (channel->host_hello == NULL)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed host hello");
		if (!check_peer_version(channel, channel->host_hello->protocol_version, error))
			return FALSE;
		if (!write_handshake(channel, AMULET__V1__HANDSHAKE__PATTERN__KK, channel->hello_packed, error))
			return FALSE;
		if (!split(channel, error))
			return FALSE;
		channel->state = AMU_CHANNEL_STATE_OPEN;
		emit(channel, AMU_CHANNEL_EVENT_OPEN, NULL);
		return TRUE;
	}
	tx_alert(channel, AMULET__V1__ALERT__CODE__PROTOCOL_ERROR, 0, "unknown handshake pattern");
	return fail(channel, error, AMU_ERROR_PROTOCOL, "unknown handshake pattern %d", handshake->pattern);
}

static gboolean
device_start_code_exchange(AmuChannel *channel, GError **error)
{
	Amulet__V1__PairCommit commit = AMULET__V1__PAIR_COMMIT__INIT;
	crypto_generichash_state state;

	channel->state = AMU_CHANNEL_STATE_CODE_EXCHANGE;
	emit(channel, AMU_CHANNEL_EVENT_PAIRING_ATTEMPT, NULL);
	if (channel->state == AMU_CHANNEL_STATE_FAILED)
		return fail(channel, error, AMU_ERROR_FAILED, "aborted");
	if (channel->disclosure_packed != NULL) {
		gsize len = 0;
		const uint8_t *data = g_bytes_get_data(channel->disclosure_packed, &len);
		Amulet__V1__Disclosure *disclosure =
			amulet__v1__disclosure__unpack(NULL, len, data);
		gboolean ok = send_pair_message(channel, AMULET__V1__MESSAGE__BODY_DISCLOSURE, disclosure, error);
		amulet__v1__disclosure__free_unpacked(disclosure, NULL);
		if (!ok)
			return FALSE;
	}
	if (channel->random_func != NULL)
		channel->random_func(channel->nonce_device, sizeof(channel->nonce_device), channel->random_data);
	else
		randombytes_buf(channel->nonce_device, sizeof(channel->nonce_device));
	crypto_generichash_init(&state, NULL, 0, COMMITMENT_BYTES);
	crypto_generichash_update(&state, channel->handshake_hash, sizeof(channel->handshake_hash));
	crypto_generichash_update(&state, channel->nonce_device, sizeof(channel->nonce_device));
	crypto_generichash_final(&state, channel->commitment, COMMITMENT_BYTES);
	commit.commitment.data = channel->commitment;
	commit.commitment.len = COMMITMENT_BYTES;
	return send_pair_message(channel, AMULET__V1__MESSAGE__BODY_COMMIT, &commit, error);
}

static gboolean
rx_handshake(AmuChannel *channel, const Amulet__V1__Handshake *handshake, GError **error)
{
	g_autofree uint8_t *payload = NULL;
	size_t payload_len = 0;

	if (channel->role == AMU_CHANNEL_ROLE_DEVICE && channel->state == AMU_CHANNEL_STATE_IDLE)
		return device_rx_first(channel, handshake, error);
	if (channel->state != AMU_CHANNEL_STATE_HANDSHAKE || channel->handshake == NULL)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "handshake message in state %s",
			    amu_channel_state_to_str(channel->state));
	payload = g_malloc(AMU_NOISE_MAX_MESSAGE);
	if (!read_handshake(channel, handshake, payload, &payload_len, error))
		return FALSE;
	if (channel->role == AMU_CHANNEL_ROLE_HOST) {
		/* XX message 1 or KK message 1: the device's hello */
		channel->device_hello = unpack_payload(&amulet__v1__device_hello__descriptor, payload, payload_len);
		if (channel->device_hello == NULL || channel->device_hello->device_id.len != AMU_CHANNEL_DEVICE_ID_BYTES)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed device hello");
		if (!check_peer_version(channel, channel->device_hello->protocol_version, error))
			return FALSE;
		if (channel->mode == AMU_CHANNEL_MODE_RECONNECT) {
			if (!split(channel, error))
				return FALSE;
			channel->state = AMU_CHANNEL_STATE_OPEN;
			emit(channel, AMU_CHANNEL_EVENT_OPEN, NULL);
			return TRUE;
		}
		if (!write_handshake(channel, AMULET__V1__HANDSHAKE__PATTERN__XX, channel->hello_packed, error))
			return FALSE;
		if (!split(channel, error))
			return FALSE;
		channel->state = AMU_CHANNEL_STATE_CODE_EXCHANGE;
		return TRUE;
	}
	/* device: XX message 2, the host's hello */
	channel->host_hello = unpack_payload(&amulet__v1__host_hello__descriptor, payload, payload_len);
	if (channel->host_hello == NULL)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed host hello");
	if (!check_peer_version(channel, channel->host_hello->protocol_version, error))
		return FALSE;
	if (!split(channel, error))
		return FALSE;
	return device_start_code_exchange(channel, error);
}

int
amu_channel_derive_code(const uint8_t *handshake_hash, const uint8_t nonce_host[AMU_CHANNEL_NONCEBYTES],
			const uint8_t nonce_device[AMU_CHANNEL_NONCEBYTES])
{
	crypto_generichash_state state;
	uint8_t digest[64];
	uint64_t value = 0;

	crypto_generichash_init(&state, NULL, 0, sizeof(digest));
	crypto_generichash_update(&state, handshake_hash, AMU_CHANNEL_HASHBYTES);
	crypto_generichash_update(&state, nonce_host, AMU_CHANNEL_NONCEBYTES);
	crypto_generichash_update(&state, nonce_device, AMU_CHANNEL_NONCEBYTES);
	crypto_generichash_final(&state, digest, sizeof(digest));
	for (int i = 7; i >= 0; i--)
		value = (value << 8) | digest[i];
	/* 2^64 / 10^6 leaves a bias below 10^-13 */
	return (int)(value % 1000000u);
}

static void
enter_confirming(AmuChannel *channel)
{
	channel->code = amu_channel_derive_code(channel->handshake_hash, channel->nonce_host, channel->nonce_device);
	channel->state = AMU_CHANNEL_STATE_CONFIRMING;
	emit(channel, AMU_CHANNEL_EVENT_CODE, NULL);
}

static void
maybe_paired(AmuChannel *channel)
{
	if (channel->role != AMU_CHANNEL_ROLE_DEVICE || channel->state != AMU_CHANNEL_STATE_CONFIRMING)
		return;
	if (!(channel->local_accepted && channel->peer_accepted))
		return;
	channel->state = AMU_CHANNEL_STATE_STORING_BOND;
	emit(channel, AMU_CHANNEL_EVENT_PAIRED, NULL);
}

static gboolean
rx_pairing_message(AmuChannel *channel, const Amulet__V1__Message *message, GError **error)
{
	gboolean host = channel->role == AMU_CHANNEL_ROLE_HOST;

	switch (message->body_case) {
	case AMULET__V1__MESSAGE__BODY_DISCLOSURE:
		if (!host || channel->state != AMU_CHANNEL_STATE_CODE_EXCHANGE || channel->disclosure != NULL)
			break;
		{
			/* keep our own copy: the message is freed after dispatch */
			size_t len = protobuf_c_message_get_packed_size(&message->disclosure->base);
			g_autofree uint8_t *buf = g_malloc(len + 1);
			protobuf_c_message_pack(&message->disclosure->base, buf);
			channel->disclosure = amulet__v1__disclosure__unpack(NULL, len, buf);
		}
		return TRUE;
	case AMULET__V1__MESSAGE__BODY_COMMIT: {
		Amulet__V1__PairNonce nonce = AMULET__V1__PAIR_NONCE__INIT;
		if (!host || channel->state != AMU_CHANNEL_STATE_CODE_EXCHANGE || channel->have_commitment)
			break;
		if (message->commit->commitment.len != COMMITMENT_BYTES)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed commitment");
		memcpy(channel->commitment, message->commit->commitment.data, COMMITMENT_BYTES);
		channel->have_commitment = TRUE;
		if (channel->random_func != NULL)
			channel->random_func(channel->nonce_host, sizeof(channel->nonce_host), channel->random_data);
		else
			randombytes_buf(channel->nonce_host, sizeof(channel->nonce_host));
		nonce.nonce.data = channel->nonce_host;
		nonce.nonce.len = sizeof(channel->nonce_host);
		return send_pair_message(channel, AMULET__V1__MESSAGE__BODY_NONCE, &nonce, error);
	}
	case AMULET__V1__MESSAGE__BODY_NONCE: {
		Amulet__V1__PairReveal reveal = AMULET__V1__PAIR_REVEAL__INIT;
		if (host || channel->state != AMU_CHANNEL_STATE_CODE_EXCHANGE || channel->have_nonce_host)
			break;
		if (message->nonce->nonce.len != AMU_CHANNEL_NONCEBYTES)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed host nonce");
		memcpy(channel->nonce_host, message->nonce->nonce.data, AMU_CHANNEL_NONCEBYTES);
		channel->have_nonce_host = TRUE;
		reveal.nonce.data = channel->nonce_device;
		reveal.nonce.len = AMU_CHANNEL_NONCEBYTES;
		if (!send_pair_message(channel, AMULET__V1__MESSAGE__BODY_REVEAL, &reveal, error))
			return FALSE;
		enter_confirming(channel);
		return TRUE;
	}
	case AMULET__V1__MESSAGE__BODY_REVEAL: {
		uint8_t expected[COMMITMENT_BYTES];
		crypto_generichash_state state;
		if (!host || channel->state != AMU_CHANNEL_STATE_CODE_EXCHANGE || !channel->have_commitment)
			break;
		if (message->reveal->nonce.len != AMU_CHANNEL_NONCEBYTES)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed device nonce");
		if (channel->disclosure == NULL)
			return fail(channel, error, AMU_ERROR_PROTOCOL, "the device sent no disclosure");
		memcpy(channel->nonce_device, message->reveal->nonce.data, AMU_CHANNEL_NONCEBYTES);
		crypto_generichash_init(&state, NULL, 0, COMMITMENT_BYTES);
		crypto_generichash_update(&state, channel->handshake_hash, sizeof(channel->handshake_hash));
		crypto_generichash_update(&state, channel->nonce_device, AMU_CHANNEL_NONCEBYTES);
		crypto_generichash_final(&state, expected, COMMITMENT_BYTES);
		if (sodium_memcmp(expected, channel->commitment, COMMITMENT_BYTES) != 0)
			return fail(channel, error, AMU_ERROR_AUTH_FAILED,
				    "the device's revealed nonce does not match its commitment: "
				    "someone may be interfering with the pairing");
		enter_confirming(channel);
		return TRUE;
	}
	case AMULET__V1__MESSAGE__BODY_CONFIRM:
		if (channel->state != AMU_CHANNEL_STATE_CONFIRMING || channel->peer_answered)
			break;
		channel->peer_answered = TRUE;
		channel->peer_accepted = message->confirm->accepted && message->confirm->disclosure_accepted;
		if (!channel->peer_accepted)
			return fail(channel, error, AMU_ERROR_REJECTED,
				    host ? "pairing was declined on the device"
					 : "pairing was declined on the host");
		maybe_paired(channel);
		return TRUE;
	case AMULET__V1__MESSAGE__BODY_DONE:
		if (!host || channel->state != AMU_CHANNEL_STATE_CONFIRMING || !channel->local_accepted ||
		    !channel->peer_accepted)
			break;
		channel->state = AMU_CHANNEL_STATE_OPEN;
		emit(channel, AMU_CHANNEL_EVENT_PAIRED, NULL);
		if (channel->state == AMU_CHANNEL_STATE_OPEN)
			emit(channel, AMU_CHANNEL_EVENT_OPEN, NULL);
		return TRUE;
	case AMULET__V1__MESSAGE__BODY_ERROR:
		return fail(channel, error,
			    message->error->code < AMU_ERROR_LAST ? (AmuError)message->error->code : AMU_ERROR_PROTOCOL,
			    "the peer reported: %s", message->error->message);
	case AMULET__V1__MESSAGE__BODY_PING:
	case AMULET__V1__MESSAGE__BODY_PONG:
	case AMULET__V1__MESSAGE__BODY_SYNC_REQUEST:
	case AMULET__V1__MESSAGE__BODY_SYNC_START:
	case AMULET__V1__MESSAGE__BODY_SYNC_BATCH:
	case AMULET__V1__MESSAGE__BODY_SYNC_ACK:
	case AMULET__V1__MESSAGE__BODY_OWNER_COMMAND:
	case AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT:
	case AMULET__V1__MESSAGE__BODY_STATUS_REQUEST:
	case AMULET__V1__MESSAGE__BODY_DEVICE_STATUS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_OFFER:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK:
	case AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE:
	case AMULET__V1__MESSAGE__BODY__NOT_SET:
	case _AMULET__V1__MESSAGE__BODY__CASE_IS_INT_SIZE:
		break;
	}
	return fail(channel, error, AMU_ERROR_PROTOCOL, "unexpected message %d during pairing (state %s)",
		    message->body_case, amu_channel_state_to_str(channel->state));
}

static gboolean
rx_record(AmuChannel *channel, const uint8_t *record, size_t len, GError **error)
{
	g_autofree uint8_t *plain = NULL;
	size_t plain_len = 0;
	Amulet__V1__Message *message;
	gboolean ok = TRUE;

	if (channel->recv_cs == NULL)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "record before the handshake completed");
	plain = g_malloc(len > AMU_RECORD_OVERHEAD ? len - AMU_RECORD_OVERHEAD + 1 : 1);
	switch (amu_record_open(channel->recv_cs, plain, len, &plain_len, record, len)) {
	case AMU_RECORD_OK:
		break;
	case AMU_RECORD_REPLAYED:
		return fail(channel, error, AMU_ERROR_REPLAYED,
			    "a record was replayed (its counter was already used): session ended");
	case AMU_RECORD_GAP:
		return fail(channel, error, AMU_ERROR_REPLAYED,
			    "a record arrived out of order (one was dropped or reordered): session ended");
	case AMU_RECORD_TAMPERED:
		return fail(channel, error, AMU_ERROR_TAMPERED,
			    "a record failed authentication (altered on the way): session ended");
	case AMU_RECORD_TRUNCATED:
		return fail(channel, error, AMU_ERROR_TAMPERED,
			    "a record was truncated (%zu bytes): session ended", len);
	case AMU_RECORD_EXHAUSTED:
	case AMU_RECORD_BUFFER_TOO_SMALL:
		return fail(channel, error, AMU_ERROR_FAILED, "cannot open a record");
	}
	message = amulet__v1__message__unpack(NULL, plain_len, plain);
	sodium_memzero(plain, plain_len);
	if (message == NULL)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed session message");
	amu_channel_ref(channel);
	if (message->body_case == AMULET__V1__MESSAGE__BODY__NOT_SET) {
		/* a newer peer's message type: say so, keep the session */
		Amulet__V1__Error reply = AMULET__V1__ERROR__INIT;
		reply.code = AMU_ERROR_NOT_SUPPORTED;
		reply.message = (char *)"unknown message type";
		if (channel->state == AMU_CHANNEL_STATE_OPEN)
			ok = send_pair_message(channel, AMULET__V1__MESSAGE__BODY_ERROR, &reply, error);
	} else if (channel->state == AMU_CHANNEL_STATE_OPEN) {
		emit(channel, AMU_CHANNEL_EVENT_MESSAGE, message);
	} else {
		ok = rx_pairing_message(channel, message, error);
	}
	amulet__v1__message__free_unpacked(message, NULL);
	if (ok && channel->state == AMU_CHANNEL_STATE_FAILED)
		ok = fail(channel, error, AMU_ERROR_FAILED, "failed");
	amu_channel_unref(channel);
	return ok;
}

gboolean
amu_channel_rx(AmuChannel *channel, const uint8_t *data, size_t len, GError **error)
{
	Amulet__V1__Packet *packet;
	gboolean ok = FALSE;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (channel->state == AMU_CHANNEL_STATE_FAILED)
		return fail(channel, error, AMU_ERROR_FAILED, "channel failed");
	packet = amulet__v1__packet__unpack(NULL, len, data);
	if (packet == NULL)
		return fail(channel, error, AMU_ERROR_PROTOCOL, "malformed packet (%zu bytes)", len);
	amu_channel_ref(channel);
	if (packet->version != AMU_CHANNEL_PROTOCOL_VERSION) {
		if (channel->role == AMU_CHANNEL_ROLE_DEVICE)
			tx_alert(channel, AMULET__V1__ALERT__CODE__UNSUPPORTED_VERSION, 0, "protocol version 1 only");
		ok = fail(channel, error, AMU_ERROR_NOT_SUPPORTED, "peer speaks protocol version %u, this build 1",
			  packet->version);
	} else {
		switch (packet->body_case) {
		case AMULET__V1__PACKET__BODY_HANDSHAKE:
			ok = rx_handshake(channel, packet->handshake, error);
			break;
		case AMULET__V1__PACKET__BODY_RECORD:
			ok = rx_record(channel, packet->record.data, packet->record.len, error);
			break;
		case AMULET__V1__PACKET__BODY_ALERT:
			ok = channel->role == AMU_CHANNEL_ROLE_HOST
				     ? rx_alert(channel, packet->alert, error)
				     : fail(channel, error, AMU_ERROR_PROTOCOL, "host sent an alert");
			break;
		case AMULET__V1__PACKET__BODY__NOT_SET:
		case _AMULET__V1__PACKET__BODY__CASE_IS_INT_SIZE:
			ok = fail(channel, error, AMU_ERROR_PROTOCOL, "empty or unknown packet type");
			break;
		}
	}
	amulet__v1__packet__free_unpacked(packet, NULL);
	amu_channel_unref(channel);
	return ok;
}

gboolean
amu_channel_confirm(AmuChannel *channel, gboolean accepted, gboolean disclosure_accepted, GError **error)
{
	Amulet__V1__PairConfirm confirm = AMULET__V1__PAIR_CONFIRM__INIT;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (channel->state != AMU_CHANNEL_STATE_CONFIRMING || channel->local_answered)
		return fail(channel, error, AMU_ERROR_FAILED, "no confirmation is pending (state %s)",
			    amu_channel_state_to_str(channel->state));
	channel->local_answered = TRUE;
	channel->local_accepted = accepted && disclosure_accepted;
	confirm.accepted = accepted;
	confirm.disclosure_accepted = disclosure_accepted;
	if (!send_pair_message(channel, AMULET__V1__MESSAGE__BODY_CONFIRM, &confirm, error))
		return FALSE;
	if (!channel->local_accepted)
		return fail(channel, error, AMU_ERROR_REJECTED,
			    !accepted ? "pairing declined: the codes were not confirmed"
				      : "pairing declined: the disclosure was not accepted");
	maybe_paired(channel);
	return TRUE;
}

gboolean
amu_channel_bond_stored(AmuChannel *channel, GError **error)
{
	Amulet__V1__PairDone done = AMULET__V1__PAIR_DONE__INIT;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (channel->role != AMU_CHANNEL_ROLE_DEVICE || channel->state != AMU_CHANNEL_STATE_STORING_BOND)
		return fail(channel, error, AMU_ERROR_FAILED, "no bond is being stored");
	if (!send_pair_message(channel, AMULET__V1__MESSAGE__BODY_DONE, &done, error))
		return FALSE;
	channel->state = AMU_CHANNEL_STATE_OPEN;
	emit(channel, AMU_CHANNEL_EVENT_OPEN, NULL);
	return TRUE;
}

AmuChannelState
amu_channel_get_state(const AmuChannel *channel)
{
	return channel->state;
}

AmuChannelMode
amu_channel_get_mode(const AmuChannel *channel)
{
	return channel->mode;
}

const GError *
amu_channel_get_error(const AmuChannel *channel)
{
	return channel->error;
}

int
amu_channel_get_code(const AmuChannel *channel)
{
	return channel->code;
}

gboolean
amu_channel_get_remote_static(const AmuChannel *channel, uint8_t public_key[AMU_CHANNEL_KEYBYTES])
{
	if (!channel->have_remote_static)
		return FALSE;
	memcpy(public_key, channel->remote_static, AMU_CHANNEL_KEYBYTES);
	return TRUE;
}

const uint8_t *
amu_channel_get_handshake_hash(const AmuChannel *channel)
{
	return channel->have_remote_static ? channel->handshake_hash : NULL;
}

const Amulet__V1__DeviceHello *
amu_channel_get_device_hello(const AmuChannel *channel)
{
	return channel->device_hello;
}

const Amulet__V1__HostHello *
amu_channel_get_host_hello(const AmuChannel *channel)
{
	return channel->host_hello;
}

const Amulet__V1__Disclosure *
amu_channel_get_disclosure(const AmuChannel *channel)
{
	return channel->disclosure;
}

gboolean
amu_channel_get_peer_accepted(const AmuChannel *channel)
{
	return channel->peer_accepted;
}
