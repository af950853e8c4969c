/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-command.h"

void
amu_command_device_keypair(const uint8_t static_secret[32], uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES],
			   uint8_t *secret_key)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t *sk = secret_key != NULL ? secret_key : sodium_malloc(crypto_sign_SECRETKEYBYTES);

	crypto_generichash(seed, sizeof(seed), static_secret, 32, (const uint8_t *)"amulet-device-sign-v1", 21);
	crypto_sign_seed_keypair(public_key, sk, seed);
	sodium_memzero(seed, sizeof(seed));
	if (secret_key == NULL)
		sodium_free(sk);
}

static size_t
put_u64(uint8_t *out, uint64_t value)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(value >> (8 * i));
	return 8;
}

/* "amulet-command-v1" || device_id || kind || counter */
static GByteArray *
command_message(const Amulet__V1__OwnerCommand *command)
{
	GByteArray *m = g_byte_array_new();
	uint8_t buf[9];

	g_byte_array_append(m, (const uint8_t *)"amulet-command-v1", 17);
	g_byte_array_append(m, command->device_id.data, (guint)command->device_id.len);
	buf[0] = (uint8_t)command->kind;
	put_u64(buf + 1, command->counter);
	g_byte_array_append(m, buf, sizeof(buf));
	return m;
}

void
amu_command_sign(const Amulet__V1__OwnerCommand *command, const uint8_t *secret_key,
		 uint8_t signature[AMU_COMMAND_SIGNBYTES])
{
	g_autoptr(GByteArray) m = command_message(command);
	crypto_sign_detached(signature, NULL, m->data, m->len, secret_key);
}

gboolean
amu_command_verify(const Amulet__V1__OwnerCommand *command, const uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES])
{
	g_autoptr(GByteArray) m = NULL;

	if (command->signature.len != AMU_COMMAND_SIGNBYTES)
		return FALSE;
	m = command_message(command);
	return crypto_sign_verify_detached(command->signature.data, m->data, m->len, public_key) == 0;
}

/* "amulet-receipt-v1" || device_id || kind || counter || time_ms || new_device_id */
static GByteArray *
receipt_message(const Amulet__V1__CommandReceipt *receipt)
{
	GByteArray *m = g_byte_array_new();
	uint8_t buf[17];

	g_byte_array_append(m, (const uint8_t *)"amulet-receipt-v1", 17);
	g_byte_array_append(m, receipt->device_id.data, (guint)receipt->device_id.len);
	buf[0] = (uint8_t)receipt->kind;
	put_u64(buf + 1, receipt->counter);
	put_u64(buf + 9, (uint64_t)receipt->time_ms);
	g_byte_array_append(m, buf, sizeof(buf));
	g_byte_array_append(m, receipt->new_device_id.data, (guint)receipt->new_device_id.len);
	return m;
}

void
amu_receipt_sign(const Amulet__V1__CommandReceipt *receipt, const uint8_t *secret_key,
		 uint8_t signature[AMU_COMMAND_SIGNBYTES])
{
	g_autoptr(GByteArray) m = receipt_message(receipt);
	crypto_sign_detached(signature, NULL, m->data, m->len, secret_key);
}

gboolean
amu_receipt_verify(const Amulet__V1__CommandReceipt *receipt, const uint8_t public_key[AMU_COMMAND_PUBLICKEYBYTES])
{
	g_autoptr(GByteArray) m = NULL;

	if (receipt->signature.len != AMU_COMMAND_SIGNBYTES)
		return FALSE;
	m = receipt_message(receipt);
	return crypto_sign_verify_detached(receipt->signature.data, m->data, m->len, public_key) == 0;
}

const char *
amu_command_kind_to_string(Amulet__V1__CommandKind kind)
{
	switch (kind) {
	case AMULET__V1__COMMAND_KIND__WIPE_DATA:
		return "wipe";
	case AMULET__V1__COMMAND_KIND__FACTORY_RESET:
		return "factory reset";
	case AMULET__V1__COMMAND_KIND__TRANSFER:
		return "transfer";
	case AMULET__V1__COMMAND_KIND__COMMAND_UNSPECIFIED:
	case _AMULET__V1__COMMAND_KIND_IS_INT_SIZE:
		break;
	}
	return "unknown command";
}
