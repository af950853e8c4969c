/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-command.h"
#include "amu-peripheral-private.h"
#include "amulet/amu-error.h"

/* The device side of destructive owner commands (docs/wipe.md): check the
 * owner's signature and counter, act, and answer with a signed receipt.
 * Every refusal is logged and answered with an Error. */

static void
drop_link(PeripheralConn *conn, const char *line)
{
	g_autoptr(GError) error = g_error_new_literal(AMU_ERROR, AMU_ERROR_DISCONNECTED, line);

	plog(conn->peripheral, "%s", line);
	amu_connection_close(conn->connection);
	amu_channel_abort(conn->channel, error);
}

static gboolean
load_owner_key(AmuPeripheral *peripheral, const char *host_id, uint8_t owner_key[32], GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) blob = amu_store_get(peripheral->store, KIND_BOND, host_id, &error_local);
	g_autoptr(GVariant) record = NULL;
	g_autoptr(GVariant) key = NULL;
	gsize len = 0;
	const void *data;

	if (blob == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_UNKNOWN_PEER, "the host is not bonded");
		return FALSE;
	}
	/* an older "(sx)" record reads as this type with an empty key */
	record = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE("(sxay)"), blob, FALSE));
	key = g_variant_get_child_value(record, 2);
	data = g_variant_get_fixed_array(key, &len, 1);
	if (len != 32) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
				    "this host's bond holds no owner key (it paired before owner keys were exchanged): "
				    "commands cannot be checked, so they are refused; pair again");
		return FALSE;
	}
	memcpy(owner_key, data, 32);
	return TRUE;
}

static uint64_t
load_counter(AmuPeripheral *peripheral, const char *host_id)
{
	g_autoptr(GBytes) blob = amu_store_get(peripheral->store, KIND_COUNTER, host_id, NULL);
	const uint8_t *data;
	uint64_t value = 0;

	if (blob == NULL || g_bytes_get_size(blob) != 8)
		return 0;
	data = g_bytes_get_data(blob, NULL);
	for (int i = 0; i < 8; i++)
		value |= (uint64_t)data[i] << (8 * i);
	return value;
}

static gboolean
check_command(AmuPeripheral *peripheral, const char *host_id, const Amulet__V1__OwnerCommand *command,
	      GError **error)
{
	uint8_t owner_key[32];
	uint64_t last;

	if (command->device_id.len != AMU_CHANNEL_DEVICE_ID_BYTES ||
	    memcmp(command->device_id.data, peripheral->device_id, AMU_CHANNEL_DEVICE_ID_BYTES) != 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "the command names another device");
		return FALSE;
	}
	if (command->kind < AMULET__V1__COMMAND_KIND__WIPE_DATA || command->kind > AMULET__V1__COMMAND_KIND__TRANSFER) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_SUPPORTED, "unknown command %d", command->kind);
		return FALSE;
	}
	if (command->signature.len != AMU_COMMAND_SIGNBYTES) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE, "the command is not signed");
		return FALSE;
	}
	if (!load_owner_key(peripheral, host_id, owner_key, error))
		return FALSE;
	if (!amu_command_verify(command, owner_key)) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
				    "the command is not signed by this device's owner");
		return FALSE;
	}
	last = load_counter(peripheral, host_id);
	if (command->counter <= last) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_REPLAYED,
			    "command counter %" G_GUINT64_FORMAT " is not above the last accepted (%" G_GUINT64_FORMAT
			    "): replayed or stale",
			    command->counter, last);
		return FALSE;
	}
	return TRUE;
}

/* Forgets everything: the state directory is emptied and a new identity
 * made. A marker file makes a reset cut short finish at the next start. */
static gboolean
factory_reset(AmuPeripheral *peripheral, PeripheralConn *keep, GError **error)
{
	g_autofree char *marker = g_build_filename(peripheral->state_dir, RESET_MARKER, NULL);
	GHashTableIter iter;
	gpointer value;

	if (!g_file_set_contents_full(marker, "reset\n", -1, G_FILE_SET_CONTENTS_DURABLE, 0600, error))
		return FALSE;
	/* the log goes with the store: no sender may keep it */
	g_hash_table_iter_init(&iter, peripheral->conns);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		PeripheralConn *conn = value;
		g_clear_pointer(&conn->sync, amu_sync_sender_free);
		if (conn != keep) {
			g_autoptr(GError) gone = g_error_new_literal(AMU_ERROR, AMU_ERROR_UNKNOWN_PEER,
								     "the device was reset");
			amu_channel_abort(conn->channel, gone);
		}
	}
	return amu_peripheral_open_state(peripheral, error);
}

void
amu_peripheral_handle_command(PeripheralConn *conn, const Amulet__V1__OwnerCommand *command)
{
	AmuPeripheral *peripheral = conn->peripheral;
	Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__CommandReceipt receipt = AMULET__V1__COMMAND_RECEIPT__INIT;
	g_autoptr(GError) error = NULL;
	uint8_t host_key[AMU_CHANNEL_KEYBYTES], old_id[AMU_CHANNEL_DEVICE_ID_BYTES], counter[8];
	uint8_t signature[AMU_COMMAND_SIGNBYTES], sign_public[32];
	uint8_t *sign_secret = sodium_malloc(AMU_COMMAND_SECRETKEYBYTES);
	char host_id[AMU_CHANNEL_KEYBYTES * 2 + 1];
	const char *what = amu_command_kind_to_string(command->kind);

	amu_channel_get_remote_static(conn->channel, host_key);
	sodium_bin2hex(host_id, sizeof(host_id), host_key, sizeof(host_key));
	if (peripheral->faults & AMU_PERIPHERAL_FAULT_DROP_BEFORE_COMMAND) {
		drop_link(conn, "fault: dropped the link as the owner command arrived, before acting on it");
		sodium_free(sign_secret);
		return;
	}
	if (!check_command(peripheral, host_id, command, &error)) {
		plog(peripheral, "refused %s command: %s", what, error->message);
		amu_peripheral_send_error(conn, error);
		sodium_free(sign_secret);
		return;
	}
	/* the receipt is signed with the identity that received the command */
	amu_command_device_keypair(peripheral->static_secret, sign_public, sign_secret);
	memcpy(old_id, peripheral->device_id, sizeof(old_id));
	/* counter first: a crash after this cannot let the command run twice */
	for (int i = 0; i < 8; i++)
		counter[i] = (uint8_t)(command->counter >> (8 * i));
	if (!amu_store_put(peripheral->store, KIND_COUNTER, host_id, counter, sizeof(counter), &error)) {
		plog(peripheral, "%s failed: %s", what, error->message);
		amu_peripheral_send_error(conn, error);
		sodium_free(sign_secret);
		return;
	}
	switch (command->kind) {
	case AMULET__V1__COMMAND_KIND__WIPE_DATA:
		if (!amu_device_log_wipe(peripheral->log, &error))
			break;
		plog(peripheral, "wiped: every logged sample erased");
		break;
	case AMULET__V1__COMMAND_KIND__FACTORY_RESET:
	case AMULET__V1__COMMAND_KIND__TRANSFER:
		if (!factory_reset(peripheral, conn, &error))
			break;
		/* the settings went with the store: defaults again; the firmware
		 * (boot.state and the slots) stays */
		peripheral->pairing_mode = command->kind == AMULET__V1__COMMAND_KIND__TRANSFER;
		amu_peripheral_advert_changed(peripheral);
		plog(peripheral, "%s: keys, bonds and data erased; new device id %s%s", what, peripheral->device_id_hex,
		     peripheral->pairing_mode ? "; open for a new owner to pair" : "");
		break;
	case AMULET__V1__COMMAND_KIND__COMMAND_UNSPECIFIED:
	case _AMULET__V1__COMMAND_KIND_IS_INT_SIZE:
		break;
	}
	if (error != NULL) {
		plog(peripheral, "%s failed: %s", what, error->message);
		amu_peripheral_send_error(conn, error);
		sodium_free(sign_secret);
		return;
	}
	receipt.device_id.data = old_id;
	receipt.device_id.len = sizeof(old_id);
	receipt.kind = command->kind;
	receipt.counter = command->counter;
	receipt.time_ms = g_get_real_time() / 1000;
	if (memcmp(old_id, peripheral->device_id, sizeof(old_id)) != 0) {
		receipt.new_device_id.data = peripheral->device_id;
		receipt.new_device_id.len = AMU_CHANNEL_DEVICE_ID_BYTES;
	}
	amu_receipt_sign(&receipt, sign_secret, signature);
	sodium_free(sign_secret);
	if (peripheral->faults & AMU_PERIPHERAL_FAULT_DROP_AFTER_COMMAND) {
		drop_link(conn, "fault: carried out the command, then dropped the link before the receipt");
		return;
	}
	receipt.signature.data = signature;
	receipt.signature.len = sizeof(signature);
	reply.body_case = AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT;
	reply.command_receipt = &receipt;
	if (!amu_channel_send(conn->channel, &reply, &error))
		plog(peripheral, "sending the %s receipt failed: %s", what, error->message);
}
