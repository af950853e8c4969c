/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <stdint.h>

#include "amu-link.h"

G_BEGIN_DECLS

/* Real devices through bluetoothd's D-Bus API (org.bluez on the system bus):
 * scanning, link-layer pairing with an org.bluez.Agent1, and a GATT link over
 * the Amulet service. Everything is asynchronous on the thread-default main
 * context; no call blocks on the bus. */

#define AMU_GATT_SERVICE_UUID "6a4e0001-8c4d-4f6e-9d1a-616d756c6574"
#define AMU_GATT_RX_UUID "6a4e0002-8c4d-4f6e-9d1a-616d756c6574"
#define AMU_GATT_TX_UUID "6a4e0003-8c4d-4f6e-9d1a-616d756c6574"

/* Service data byte 0: flags */
#define AMU_BLUEZ_ADV_FLAG_PAIRING 0x01

/* "AA:BB:CC:DD:EE:FF" or "hciN/AA:BB:CC:DD:EE:FF" (hex case-insensitive);
 * @adapter is set to NULL when not given; @address comes back upper-cased.
 * INVALID_ARGUMENT otherwise, naming the accepted forms. */
gboolean amu_bluez_parse_address(const char *spec, char **adapter, char **address, GError **error);

typedef struct {
	char *adapter;	       /* "hci0" */
	char *address;	       /* "AA:BB:CC:DD:EE:FF" */
	char *name;	       /* Alias, or NULL */
	gboolean has_rssi;
	int16_t rssi;
	gboolean amulet;       /* advertises the Amulet service */
	gboolean pairing_mode; /* from the service data */
	const char *profile;   /* "band", "watch", "toy" or NULL (static strings) */
	gboolean paired;
	gboolean connected;
} AmuBluezDevice;

AmuBluezDevice *amu_bluez_device_copy(const AmuBluezDevice *device);
void amu_bluez_device_free(AmuBluezDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuBluezDevice, amu_bluez_device_free)

/* Discovery on @adapter (NULL: the first powered one) for @timeout_ms, with an
 * LE filter on the Amulet service. @found (nullable) is called from the main
 * loop as each device appears or its RSSI or service data changes; the device
 * is valid only during the call. The result is every Amulet device seen, in
 * address order, less those that disappeared during the scan.
 * Errors: NOT_SUPPORTED (no bluetoothd, adapter powered off), NOT_FOUND (no
 * adapter, or the named one missing), CANCELLED. */
typedef void (*AmuBluezFoundFunc)(const AmuBluezDevice *device, gpointer user_data);
void amu_bluez_scan_async(const char *adapter, guint timeout_ms, AmuBluezFoundFunc found,
			  gpointer found_data, GCancellable *cancellable, GAsyncReadyCallback callback,
			  gpointer user_data);
/* (transfer container): a GPtrArray of AmuBluezDevice */
GPtrArray *amu_bluez_scan_finish(GAsyncResult *result, GError **error);

/* A link-layer passkey to confirm (LE Secure Connections numeric
 * comparison), from the agent. */
typedef struct AmuBluezPasskey AmuBluezPasskey;
AmuBluezPasskey *amu_bluez_passkey_ref(AmuBluezPasskey *passkey);
void amu_bluez_passkey_unref(AmuBluezPasskey *passkey);
/* 0..999999, shown as six digits */
guint32 amu_bluez_passkey_get_value(AmuBluezPasskey *passkey);
const char *amu_bluez_passkey_get_address(AmuBluezPasskey *passkey);
/* TRUE once bluetoothd withdrew the request (Agent1.Cancel or Release) */
gboolean amu_bluez_passkey_is_cancelled(AmuBluezPasskey *passkey);
/* Answers once: later calls, and calls after bluetoothd cancelled, are
 * ignored. May be called later from the main loop. */
void amu_bluez_passkey_reply(AmuBluezPasskey *passkey, gboolean accept);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuBluezPasskey, amu_bluez_passkey_unref)
/* @passkey is borrowed: take a ref to answer after returning */
typedef void (*AmuBluezPasskeyFunc)(AmuBluezPasskey *passkey, gpointer user_data);

/* Connects to the device at @spec (see amu_bluez_parse_address()) and opens
 * a link on the Amulet GATT service. With @pair, bonds first through
 * Device1.Pair with an agent of capability "DisplayYesNo" whose confirmation
 * requests go to @passkey_func (NULL: every request is refused); without, the
 * device must already be bonded. The link's description is "bluez:hciN/ADDR".
 * Errors: INVALID_ARGUMENT, NOT_SUPPORTED, NOT_FOUND, REJECTED, AUTH_FAILED,
 * IO, TIMED_OUT, PROTOCOL, CANCELLED. */
void amu_link_bluez_connect_async(const char *spec, gboolean pair, AmuBluezPasskeyFunc passkey_func,
				  gpointer passkey_data, GCancellable *cancellable,
				  GAsyncReadyCallback callback, gpointer user_data);
AmuLink *amu_link_bluez_connect_finish(GAsyncResult *result, GError **error);

G_END_DECLS
