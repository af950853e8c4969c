/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amulet.pb-c.h"

G_BEGIN_DECLS

/* Signatures on destructive commands and their receipts (docs/wipe.md),
 * shared by the host and the device role. */

#define AMU_COMMAND_SIGNBYTES 64
#define AMU_COMMAND_PUBLICKEYBYTES 32
#define AMU_COMMAND_SECRETKEYBYTES 64

/* The device's Ed25519 key pair, derived from its X25519 static secret so
 * that one secret (and one erase) covers both. */
void amu_command_device_keypair(const uint8_t static_secret[32], uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES],
				uint8_t *secret_key);

/* fills @signature (64 bytes) for @command's device_id, kind and counter */
void amu_command_sign(const Amulet__V1__OwnerCommand *command, const uint8_t *secret_key,
		      uint8_t signature[AMU_COMMAND_SIGNBYTES]);
gboolean amu_command_verify(const Amulet__V1__OwnerCommand *command,
			    const uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES]) G_GNUC_WARN_UNUSED_RESULT;

void amu_receipt_sign(const Amulet__V1__CommandReceipt *receipt, const uint8_t *secret_key,
		      uint8_t signature[AMU_COMMAND_SIGNBYTES]);
gboolean amu_receipt_verify(const Amulet__V1__CommandReceipt *receipt,
			    const uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES]) G_GNUC_WARN_UNUSED_RESULT;

const char *amu_command_kind_to_string(Amulet__V1__CommandKind kind);

G_END_DECLS
