/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libFuzzer target for the packet parser and the channel state machine, in
 * both roles: the input is split into packets (a length byte before each)
 * and fed to a device channel waiting for a host and to a host channel that
 * has started pairing. Nothing may crash, leak or read out of bounds. */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-channel.h"

static void
discard_tx(AmuChannel *channel, const uint8_t *packet, size_t len, void *user_data)
{
}

static void
feed(AmuChannel *channel, const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		size_t len = data[off++];
		if (len > size - off)
			len = size - off;
		amu_channel_rx(channel, data + off, len, NULL);
		off += len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t secret[32] = {7};
	static uint8_t peer_public[32];
	static uint8_t device_id[16];
	Amulet__V1__DeviceHello device_hello = AMULET__V1__DEVICE_HELLO__INIT;
	Amulet__V1__HostHello host_hello = AMULET__V1__HOST_HELLO__INIT;
	AmuChannel *device, *host;

	if (sodium_init() < 0)
		return 0;
	crypto_scalarmult_base(peer_public, secret);
	device_hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
	host_hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
	device_hello.device_id.data = device_id;
	device_hello.device_id.len = sizeof(device_id);

	device = amu_channel_new(AMU_CHANNEL_ROLE_DEVICE, NULL, NULL);
	amu_channel_set_local_static(device, secret);
	amu_channel_set_device_hello(device, &device_hello, NULL);
	amu_channel_add_bonded_peer(device, peer_public);
	amu_channel_set_tx_func(device, discard_tx, NULL);
	feed(device, data, size);
	amu_channel_unref(device);

	host = amu_channel_new(AMU_CHANNEL_ROLE_HOST, NULL, NULL);
	amu_channel_set_local_static(host, secret);
	amu_channel_set_host_hello(host, &host_hello);
	amu_channel_set_tx_func(host, discard_tx, NULL);
	amu_channel_start(host, size > 0 && (data[0] & 1) ? AMU_CHANNEL_MODE_RECONNECT : AMU_CHANNEL_MODE_PAIR,
			  peer_public, NULL);
	feed(host, data, size);
	amu_channel_unref(host);
	return 0;
}
