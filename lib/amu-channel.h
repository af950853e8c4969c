/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-crypto.h"
#include "amulet.pb-c.h"

G_BEGIN_DECLS

/* The secure channel, sans-I/O, for both roles: the Noise handshake (XX to
 * pair, KK to reconnect), the committed six-digit code, and sealed transport
 * records. Framed messages go in with amu_channel_rx() and come out through
 * the tx callback; what happens is reported through the event callback.
 * Time and randomness are passed in. FAILED is sticky.
 *
 * Return convention: functions returning gboolean return FALSE with the
 * error set when the channel failed (and then stays FAILED). */

#define AMU_CHANNEL_KEYBYTES 32
#define AMU_CHANNEL_HASHBYTES 64
#define AMU_CHANNEL_NONCEBYTES 32
#define AMU_CHANNEL_DEVICE_ID_BYTES 16
#define AMU_CHANNEL_PROTOCOL_VERSION 1
#define AMU_CHANNEL_MAX_BONDS 16

typedef enum {
	AMU_CHANNEL_ROLE_HOST,
	AMU_CHANNEL_ROLE_DEVICE,
} AmuChannelRole;

typedef enum {
	AMU_CHANNEL_MODE_PAIR,
	AMU_CHANNEL_MODE_RECONNECT,
} AmuChannelMode;

typedef enum {
	AMU_CHANNEL_STATE_IDLE,
	AMU_CHANNEL_STATE_HANDSHAKE,
	AMU_CHANNEL_STATE_CODE_EXCHANGE,
	AMU_CHANNEL_STATE_CONFIRMING,
	AMU_CHANNEL_STATE_STORING_BOND,
	AMU_CHANNEL_STATE_OPEN,
	AMU_CHANNEL_STATE_FAILED,
} AmuChannelState;

typedef enum {
	/* device: a pairing attempt reached the code stage (count it for lockout) */
	AMU_CHANNEL_EVENT_PAIRING_ATTEMPT,
	/* both: the code is known: show it and ask the user, then amu_channel_confirm() */
	AMU_CHANNEL_EVENT_CODE,
	/* both: both users accepted. Device: store the bond, then amu_channel_bond_stored().
	 * Host: the device stored its bond; store ours. */
	AMU_CHANNEL_EVENT_PAIRED,
	/* both: the session is open for messages */
	AMU_CHANNEL_EVENT_OPEN,
	/* both: a session message arrived (event->message) */
	AMU_CHANNEL_EVENT_MESSAGE,
	/* both: the channel failed (event->error) */
	AMU_CHANNEL_EVENT_FAILED,
} AmuChannelEventType;

typedef struct {
	AmuChannelEventType type;
	const Amulet__V1__Message *message;
	const GError *error;
} AmuChannelEvent;

typedef struct AmuChannel AmuChannel;

typedef void (*AmuChannelTxFunc)(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data);
typedef void (*AmuChannelEventFunc)(AmuChannel *channel, const AmuChannelEvent *event, void *user_data);

AmuChannel *amu_channel_new(AmuChannelRole role, AmuRandomFunc random_func, void *random_data);
AmuChannel *amu_channel_ref(AmuChannel *channel);
void amu_channel_unref(AmuChannel *channel);
void amu_channel_set_tx_func(AmuChannel *channel, AmuChannelTxFunc func, void *user_data);
void amu_channel_set_event_func(AmuChannel *channel, AmuChannelEventFunc func, void *user_data);

/* identity: our X25519 static secret key, copied and wiped once the handshake has it */
void amu_channel_set_local_static(AmuChannel *channel, const uint8_t secret_key[AMU_CHANNEL_KEYBYTES]);
/* host: what to say about ourselves; device: our hello and the disclosure it sends when pairing */
void amu_channel_set_host_hello(AmuChannel *channel, const Amulet__V1__HostHello *hello);
void amu_channel_set_device_hello(AmuChannel *channel, const Amulet__V1__DeviceHello *hello,
				  const Amulet__V1__Disclosure *disclosure);
/* device: whether a first pairing is allowed now, or why not */
void amu_channel_set_pairing_policy(AmuChannel *channel, Amulet__V1__Alert__Code refusal,
				    uint64_t retry_after_ms, const char *message);
/* device: the bonded hosts' public keys it may reconnect with (trial decryption) */
void amu_channel_add_bonded_peer(AmuChannel *channel, const uint8_t public_key[AMU_CHANNEL_KEYBYTES]);

/* host: start pairing (XX) or reconnecting (KK with the device's bonded key) */
gboolean amu_channel_start(AmuChannel *channel, AmuChannelMode mode,
			   const uint8_t *remote_static, GError **error);
gboolean amu_channel_rx(AmuChannel *channel, const uint8_t *packet, size_t len, GError **error);
gboolean amu_channel_confirm(AmuChannel *channel, gboolean accepted, gboolean disclosure_accepted,
			     GError **error);
gboolean amu_channel_bond_stored(AmuChannel *channel, GError **error);
gboolean amu_channel_send(AmuChannel *channel, const Amulet__V1__Message *message, GError **error);
/* fail the channel from outside (link lost, user cancelled, timer) */
void amu_channel_abort(AmuChannel *channel, const GError *error);

AmuChannelState amu_channel_get_state(const AmuChannel *channel);
const char *amu_channel_state_to_str(AmuChannelState state);
AmuChannelMode amu_channel_get_mode(const AmuChannel *channel);
const GError *amu_channel_get_error(const AmuChannel *channel);
/* the six-digit code once known, else -1 */
int amu_channel_get_code(const AmuChannel *channel);
gboolean amu_channel_get_remote_static(const AmuChannel *channel, uint8_t public_key[AMU_CHANNEL_KEYBYTES]);
const uint8_t *amu_channel_get_handshake_hash(const AmuChannel *channel);
/* what the peer said about itself (NULL before the handshake) */
const Amulet__V1__DeviceHello *amu_channel_get_device_hello(const AmuChannel *channel);
const Amulet__V1__HostHello *amu_channel_get_host_hello(const AmuChannel *channel);
const Amulet__V1__Disclosure *amu_channel_get_disclosure(const AmuChannel *channel);
/* the peer accepted (known once its confirm arrived) */
gboolean amu_channel_get_peer_accepted(const AmuChannel *channel);

/* code = BLAKE2b-512(h || Nh || Nd), first 8 bytes little-endian, mod 10^6 */
int amu_channel_derive_code(const uint8_t *handshake_hash, const uint8_t nonce_host[AMU_CHANNEL_NONCEBYTES],
			    const uint8_t nonce_device[AMU_CHANNEL_NONCEBYTES]);
/* for tests: the ephemeral keys to use instead of random ones */
void amu_channel_set_fixed_ephemeral(AmuChannel *channel, const uint8_t secret_key[AMU_CHANNEL_KEYBYTES]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuChannel, amu_channel_unref)

G_END_DECLS
