/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-channel.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* Two channels wired back to back in memory, sans I/O: what one sends is
 * queued and delivered to the other, packet by packet, so a test can look
 * at, drop, repeat or alter any packet on the way. */
typedef struct {
	AmuChannel *channel;
	GPtrArray *outbox; /* of GBytes: packets sent, not yet delivered */
	GPtrArray *events; /* of GINT_TO_POINTER(type) */
	gboolean auto_confirm;
	gboolean accept;
	gboolean auto_bond;
} Peer;

static void
peer_tx(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
	Peer *peer = user_data;
	g_ptr_array_add(peer->outbox, g_bytes_new(packet, len));
}

static void
peer_event(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	Peer *peer = user_data;

	g_ptr_array_add(peer->events, GINT_TO_POINTER(event->type));
	if (event->type == AMU_CHANNEL_EVENT_CODE && peer->auto_confirm)
		amu_channel_confirm(channel, peer->accept, TRUE, NULL);
	if (event->type == AMU_CHANNEL_EVENT_PAIRED && peer->auto_bond &&
	    amu_channel_get_state(channel) == AMU_CHANNEL_STATE_STORING_BOND)
		amu_channel_bond_stored(channel, NULL);
}

static gboolean
peer_saw(Peer *peer, AmuChannelEventType type)
{
	for (guint i = 0; i < peer->events->len; i++)
		if (GPOINTER_TO_INT(g_ptr_array_index(peer->events, i)) == (int)type)
			return TRUE;
	return FALSE;
}

/* what the peer says about itself, claiming @protocol_version */
static void
peer_set_hello(Peer *peer, AmuChannelRole role, uint32_t protocol_version)
{
	if (role == AMU_CHANNEL_ROLE_HOST) {
		Amulet__V1__HostHello hello = AMULET__V1__HOST_HELLO__INIT;
		hello.protocol_version = protocol_version;
		hello.host_name = (char *)"test-host";
		amu_channel_set_host_hello(peer->channel, &hello);
	} else {
		static uint8_t device_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
		Amulet__V1__DeviceHello hello = AMULET__V1__DEVICE_HELLO__INIT;
		Amulet__V1__Disclosure disclosure = AMULET__V1__DISCLOSURE__INIT;
		hello.protocol_version = protocol_version;
		hello.device_id.data = device_id;
		hello.device_id.len = sizeof(device_id);
		hello.profile = AMULET__V1__PROFILE__BAND;
		hello.has_display = TRUE;
		hello.model = (char *)"Test Band";
		disclosure.maker = (char *)"Test";
		disclosure.privacy_policy_version = (char *)"1";
		amu_channel_set_device_hello(peer->channel, &hello, &disclosure);
	}
}

static void
peer_init(Peer *peer, AmuChannelRole role, const uint8_t secret[32])
{
	memset(peer, 0, sizeof(*peer));
	peer->channel = amu_channel_new(role, NULL, NULL);
	peer->outbox = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	peer->events = g_ptr_array_new();
	peer->auto_confirm = TRUE;
	peer->accept = TRUE;
	peer->auto_bond = TRUE;
	amu_channel_set_local_static(peer->channel, secret);
	amu_channel_set_tx_func(peer->channel, peer_tx, peer);
	amu_channel_set_event_func(peer->channel, peer_event, peer);
	peer_set_hello(peer, role, AMU_CHANNEL_PROTOCOL_VERSION);
}

static void
peer_clear(Peer *peer)
{
	amu_channel_unref(peer->channel);
	g_ptr_array_unref(peer->outbox);
	g_ptr_array_unref(peer->events);
}

/* deliver everything queued both ways until both outboxes stay empty */
static void
pump(Peer *a, Peer *b)
{
	for (int rounds = 0; rounds < 100 && (a->outbox->len > 0 || b->outbox->len > 0); rounds++) {
		Peer *from = a->outbox->len > 0 ? a : b;
		Peer *to = from == a ? b : a;
		g_autoptr(GBytes) packet = g_bytes_ref(g_ptr_array_index(from->outbox, 0));
		g_ptr_array_remove_index(from->outbox, 0);
		amu_channel_rx(to->channel, g_bytes_get_data(packet, NULL), g_bytes_get_size(packet), NULL);
	}
}

static uint8_t host_secret[32], device_secret[32], other_secret[32];

static void
public_of(const uint8_t secret[32], uint8_t out[32])
{
	crypto_scalarmult_base(out, secret);
}

static void
test_pair_same_code_and_open(void)
{
	Peer host, device;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__Ping ping = AMULET__V1__PING__INIT;
	uint8_t key[32], expected[32];

	peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL));
	pump(&host, &device);
	CU_ASSERT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_OPEN);
	CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_OPEN);
	CU_ASSERT_TRUE(amu_channel_get_code(host.channel) >= 0 && amu_channel_get_code(host.channel) < 1000000);
	CU_ASSERT_EQUAL(amu_channel_get_code(host.channel), amu_channel_get_code(device.channel));
	CU_ASSERT_TRUE(peer_saw(&device, AMU_CHANNEL_EVENT_PAIRING_ATTEMPT));
	CU_ASSERT_TRUE(peer_saw(&host, AMU_CHANNEL_EVENT_PAIRED));
	CU_ASSERT_TRUE(peer_saw(&device, AMU_CHANNEL_EVENT_PAIRED));
	/* each side learned the other's static key */
	CU_ASSERT_TRUE(amu_channel_get_remote_static(host.channel, key));
	public_of(device_secret, expected);
	CU_ASSERT_EQUAL(memcmp(key, expected, 32), 0);
	CU_ASSERT_TRUE(amu_channel_get_remote_static(device.channel, key));
	public_of(host_secret, expected);
	CU_ASSERT_EQUAL(memcmp(key, expected, 32), 0);
	CU_ASSERT_PTR_NOT_NULL(amu_channel_get_disclosure(host.channel));
	CU_ASSERT_STRING_EQUAL(amu_channel_get_host_hello(device.channel)->host_name, "test-host");
	/* a session message crosses */
	ping.token = 42;
	message.body_case = AMULET__V1__MESSAGE__BODY_PING;
	message.ping = &ping;
	CU_ASSERT_TRUE(amu_channel_send(host.channel, &message, NULL));
	g_ptr_array_set_size(device.events, 0);
	pump(&host, &device);
	CU_ASSERT_TRUE(peer_saw(&device, AMU_CHANNEL_EVENT_MESSAGE));
	peer_clear(&host);
	peer_clear(&device);
}

static void
test_pair_declined(void)
{
	for (int side = 0; side < 2; side++) {
		Peer host, device;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		(side == 0 ? &host : &device)->accept = FALSE;
		CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL));
		pump(&host, &device);
		CU_ASSERT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_FAILED);
		CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_FAILED);
		AMU_ASSERT_ERROR(amu_channel_get_error(host.channel), AMU_ERROR_REJECTED);
		AMU_ASSERT_ERROR(amu_channel_get_error(device.channel), AMU_ERROR_REJECTED);
		CU_ASSERT_FALSE(peer_saw(&device, AMU_CHANNEL_EVENT_PAIRED));
		peer_clear(&host);
		peer_clear(&device);
	}
}

static void
test_pair_refused_by_policy(void)
{
	Peer host, device;

	peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	amu_channel_set_pairing_policy(device.channel, AMULET__V1__ALERT__CODE__LOCKED_OUT, 61000, "locked");
	CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL));
	pump(&host, &device);
	AMU_ASSERT_ERROR(amu_channel_get_error(host.channel), AMU_ERROR_LOCKED_OUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(amu_channel_get_error(host.channel)->message, "61 s"));
	/* refused before any key material was exchanged */
	CU_ASSERT_FALSE(peer_saw(&device, AMU_CHANNEL_EVENT_PAIRING_ATTEMPT));
	peer_clear(&host);
	peer_clear(&device);
}

/* A relay with its own keys pairs with each side separately: the two codes
 * differ, which is what the users compare. */
static void
test_mitm_codes_differ(void)
{
	Peer host, mitm_device, mitm_host, device;

	peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
	peer_init(&mitm_device, AMU_CHANNEL_ROLE_DEVICE, other_secret);
	peer_init(&mitm_host, AMU_CHANNEL_ROLE_HOST, other_secret);
	peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
	host.auto_confirm = device.auto_confirm = FALSE;
	CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL));
	CU_ASSERT_TRUE(amu_channel_start(mitm_host.channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL));
	pump(&host, &mitm_device);
	pump(&mitm_host, &device);
	CU_ASSERT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_CONFIRMING);
	CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_CONFIRMING);
	CU_ASSERT_NOT_EQUAL(amu_channel_get_code(host.channel), amu_channel_get_code(device.channel));
	peer_clear(&host);
	peer_clear(&mitm_device);
	peer_clear(&mitm_host);
	peer_clear(&device);
}

static void
test_reconnect(void)
{
	uint8_t host_public[32], device_public[32], other_public[32];

	public_of(host_secret, host_public);
	public_of(device_secret, device_public);
	public_of(other_secret, other_public);
	/* bonded: open, fresh ephemerals give a new handshake hash each time */
	{
		Peer host, device;
		uint8_t first_hash[64];
		for (int i = 0; i < 2; i++) {
			peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
			peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
			amu_channel_add_bonded_peer(device.channel, other_public);
			amu_channel_add_bonded_peer(device.channel, host_public);
			CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL));
			pump(&host, &device);
			CU_ASSERT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_OPEN);
			CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_OPEN);
			CU_ASSERT_EQUAL(amu_channel_get_mode(device.channel), AMU_CHANNEL_MODE_RECONNECT);
			if (i == 0)
				memcpy(first_hash, amu_channel_get_handshake_hash(host.channel), 64);
			else
				CU_ASSERT_NOT_EQUAL(memcmp(first_hash, amu_channel_get_handshake_hash(host.channel), 64), 0);
			peer_clear(&host);
			peer_clear(&device);
		}
	}
	/* the device does not know this host */
	{
		Peer host, device;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		amu_channel_add_bonded_peer(device.channel, other_public);
		CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL));
		pump(&host, &device);
		AMU_ASSERT_ERROR(amu_channel_get_error(host.channel), AMU_ERROR_UNKNOWN_PEER);
		AMU_ASSERT_ERROR(amu_channel_get_error(device.channel), AMU_ERROR_UNKNOWN_PEER);
		peer_clear(&host);
		peer_clear(&device);
	}
	/* a device with another key answering for the bonded one: the host
	 * encrypted to the bonded key, so nothing opens (fails closed) */
	{
		Peer host, impostor;
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&impostor, AMU_CHANNEL_ROLE_DEVICE, other_secret);
		amu_channel_add_bonded_peer(impostor.channel, host_public);
		CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL));
		pump(&host, &impostor);
		CU_ASSERT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_FAILED);
		CU_ASSERT_NOT_EQUAL(amu_channel_get_state(impostor.channel), AMU_CHANNEL_STATE_OPEN);
		peer_clear(&host);
		peer_clear(&impostor);
	}
}

/* A hello claiming another protocol version (0: the peer does not say) is
 * refused with NOT_SUPPORTED, naming both versions and the side to update,
 * when pairing and when reconnecting, whichever side is out of step. The
 * host hears of it either way: from its own check or from the device's
 * alert. Nothing is counted for the pairing lockout. */
static void
test_protocol_version_mismatch(void)
{
	static const uint32_t versions[] = {0, AMU_CHANNEL_PROTOCOL_VERSION + 1};
	uint8_t host_public[32], device_public[32];

	public_of(host_secret, host_public);
	public_of(device_secret, device_public);
	for (int reconnect = 0; reconnect < 2; reconnect++) {
		for (size_t v = 0; v < G_N_ELEMENTS(versions); v++) {
			for (int host_is_off = 0; host_is_off < 2; host_is_off++) {
				AmuChannelMode mode = reconnect ? AMU_CHANNEL_MODE_RECONNECT : AMU_CHANNEL_MODE_PAIR;
				const char *off = host_is_off ? "host" : "device";
				const char *other = host_is_off ? "device" : "host";
				const char *older = versions[v] < AMU_CHANNEL_PROTOCOL_VERSION ? off : other;
				g_autofree char *says = g_strdup_printf("the %s speaks protocol version %u", off, versions[v]);
				g_autofree char *fix = g_strdup_printf("the %s version %u: update the %s", other,
								       AMU_CHANNEL_PROTOCOL_VERSION, older);
				Peer host, device;
				Peer *checker;

				peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
				peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
				peer_set_hello(host_is_off ? &host : &device,
					       host_is_off ? AMU_CHANNEL_ROLE_HOST : AMU_CHANNEL_ROLE_DEVICE, versions[v]);
				amu_channel_add_bonded_peer(device.channel, host_public);
				CU_ASSERT_TRUE(amu_channel_start(host.channel, mode, reconnect ? device_public : NULL, NULL));
				pump(&host, &device);
				/* the side that read the hello refused it */
				checker = host_is_off ? &device : &host;
				AMU_ASSERT_ERROR(amu_channel_get_error(checker->channel), AMU_ERROR_NOT_SUPPORTED);
				CU_ASSERT_PTR_NOT_NULL(strstr(amu_channel_get_error(checker->channel)->message, says));
				CU_ASSERT_PTR_NOT_NULL(strstr(amu_channel_get_error(checker->channel)->message, fix));
				AMU_ASSERT_ERROR(amu_channel_get_error(host.channel), AMU_ERROR_NOT_SUPPORTED);
				CU_ASSERT_PTR_NOT_NULL(strstr(amu_channel_get_error(host.channel)->message, fix));
				CU_ASSERT_NOT_EQUAL(amu_channel_get_state(host.channel), AMU_CHANNEL_STATE_OPEN);
				CU_ASSERT_FALSE(peer_saw(&device, AMU_CHANNEL_EVENT_PAIRING_ATTEMPT));
				peer_clear(&host);
				peer_clear(&device);
			}
		}
	}
}

/* replayed and altered records end the session with their own errors */
static void
test_records_hostile(void)
{
	for (int mode = 0; mode < 3; mode++) {
		Peer host, device;
		Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__Ping ping = AMULET__V1__PING__INIT;
		g_autoptr(GBytes) first = NULL;
		g_autoptr(GByteArray) altered = g_byte_array_new();
		uint8_t host_public[32], device_public[32];

		public_of(host_secret, host_public);
		public_of(device_secret, device_public);
		peer_init(&host, AMU_CHANNEL_ROLE_HOST, host_secret);
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		amu_channel_add_bonded_peer(device.channel, host_public);
		CU_ASSERT_TRUE(amu_channel_start(host.channel, AMU_CHANNEL_MODE_RECONNECT, device_public, NULL));
		pump(&host, &device);
		message.body_case = AMULET__V1__MESSAGE__BODY_PING;
		message.ping = &ping;
		CU_ASSERT_TRUE(amu_channel_send(host.channel, &message, NULL));
		first = g_bytes_ref(g_ptr_array_index(host.outbox, 0));
		if (mode == 0) {
			/* deliver, then deliver the same packet again */
			pump(&host, &device);
			CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_OPEN);
			amu_channel_rx(device.channel, g_bytes_get_data(first, NULL), g_bytes_get_size(first), NULL);
			AMU_ASSERT_ERROR(amu_channel_get_error(device.channel), AMU_ERROR_REPLAYED);
		} else if (mode == 1) {
			/* flip the last byte (the tag) */
			g_ptr_array_set_size(host.outbox, 0);
			g_byte_array_append(altered, g_bytes_get_data(first, NULL), g_bytes_get_size(first));
			altered->data[altered->len - 1] ^= 0x80;
			amu_channel_rx(device.channel, altered->data, altered->len, NULL);
			AMU_ASSERT_ERROR(amu_channel_get_error(device.channel), AMU_ERROR_TAMPERED);
		} else {
			/* drop the first record: the second arrives out of order */
			g_ptr_array_set_size(host.outbox, 0);
			CU_ASSERT_TRUE(amu_channel_send(host.channel, &message, NULL));
			pump(&host, &device);
			AMU_ASSERT_ERROR(amu_channel_get_error(device.channel), AMU_ERROR_REPLAYED);
			CU_ASSERT_PTR_NOT_NULL(strstr(amu_channel_get_error(device.channel)->message, "out of order"));
		}
		/* FAILED is sticky: the genuine next packet is refused too */
		CU_ASSERT_FALSE(amu_channel_rx(device.channel, g_bytes_get_data(first, NULL), g_bytes_get_size(first), NULL));
		peer_clear(&host);
		peer_clear(&device);
	}
}

static void
test_malformed_packets(void)
{
	static const uint8_t junk[][8] = {{0xff, 0xff, 0xff}, {0x08, 0x02}, {0x12, 0x00}, {0x1a, 0x05, 1, 2}};
	for (size_t i = 0; i < G_N_ELEMENTS(junk); i++) {
		Peer device;
		peer_init(&device, AMU_CHANNEL_ROLE_DEVICE, device_secret);
		CU_ASSERT_FALSE(amu_channel_rx(device.channel, junk[i], 4, NULL));
		CU_ASSERT_EQUAL(amu_channel_get_state(device.channel), AMU_CHANNEL_STATE_FAILED);
		CU_ASSERT_PTR_NOT_NULL(amu_channel_get_error(device.channel));
		peer_clear(&device);
	}
}

static void
test_code_derivation(void)
{
	uint8_t h[64] = {0}, nh[32] = {0}, nd[32] = {0};
	int base = amu_channel_derive_code(h, nh, nd);

	CU_ASSERT_TRUE(base >= 0 && base < 1000000);
	/* every input changes the code */
	h[63] = 1;
	CU_ASSERT_NOT_EQUAL(amu_channel_derive_code(h, nh, nd), base);
	h[63] = 0;
	nh[0] = 1;
	CU_ASSERT_NOT_EQUAL(amu_channel_derive_code(h, nh, nd), base);
	nh[0] = 0;
	nd[31] = 1;
	CU_ASSERT_NOT_EQUAL(amu_channel_derive_code(h, nh, nd), base);
}

static void
setup_keys(void)
{
	CU_ASSERT_EQUAL_FATAL(sodium_init() >= 0, TRUE);
	memset(host_secret, 0x11, 32);
	memset(device_secret, 0x22, 32);
	memset(other_secret, 0x33, 32);
}

AMU_TEST_MAIN("channel", {"keys", setup_keys}, {"pair: same code, open", test_pair_same_code_and_open},
	      {"pair: declined on either side", test_pair_declined},
	      {"pair: refused by lockout policy", test_pair_refused_by_policy},
	      {"pair: relay with own keys gives different codes", test_mitm_codes_differ},
	      {"reconnect: bonded, unknown host, impostor", test_reconnect},
	      {"hello with another protocol version: refused on either side", test_protocol_version_mismatch},
	      {"records: replay, tamper, drop", test_records_hostile},
	      {"malformed packets", test_malformed_packets}, {"code derivation", test_code_derivation})
