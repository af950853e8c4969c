/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amu-link.h"

G_BEGIN_DECLS

/* The optional L2CAP connection-oriented channel link (LE credit-based flow
 * control) through the kernel's Bluetooth sockets and libbluetooth, which is
 * GPL: it lives in the tool, never in libamulet, and plugs in with
 * amu_link_register_scheme("l2cap", ...). Address:
 * "[hciN/]AA:BB:CC:DD:EE:FF[/PSM]"; PSM is the LE protocol/service
 * multiplexer the device advertises, 0x80..0xff (default 0x81). */

#define AMU_L2CAP_PSM_DEFAULT 0x81

typedef struct {
	int dev_id;        /* -1: any adapter */
	char address[18];  /* "AA:BB:CC:DD:EE:FF", upper case */
	uint16_t psm;
} AmuL2capAddress;

gboolean amu_l2cap_parse_address(const char *spec, AmuL2capAddress *out, GError **error);
AmuLink *amu_link_l2cap_open(const char *spec, GError **error);

G_END_DECLS
