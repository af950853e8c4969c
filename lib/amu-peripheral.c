/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "amu-backoff.h"
#include "amu-command.h"
#include "amu-crypto.h"
#include "amu-peripheral-private.h"
#include "amu-sync.h"
#include "amu-update-package.h"
#include "amulet/amu-error.h"

void
plog(AmuPeripheral *peripheral, const char *format, ...)
{
	g_autofree char *line = NULL;
	va_list args;

	va_start(args, format);
	line = g_strdup_vprintf(format, args);
	va_end(args);
	if (peripheral->log_func != NULL) {
		peripheral->log_func(peripheral, line, peripheral->log_data);
		return;
	}
	g_debug("%s", line);
	/* what the boot loader said before anyone listened */
	if (peripheral->early_lines != NULL && peripheral->early_lines->len < 64)
		g_ptr_array_add(peripheral->early_lines, g_steal_pointer(&line));
}

static gboolean
load_identity(AmuPeripheral *peripheral, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) blob = amu_store_get(peripheral->store, KIND_IDENTITY, "device", &error_local);
	gsize len = 0;
	const uint8_t *data;

	if (blob == NULL) {
		uint8_t buf[AMU_CHANNEL_KEYBYTES + AMU_CHANNEL_DEVICE_ID_BYTES];
		gboolean ok;
		if (!g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return FALSE;
		}
		/* first start, or after a factory reset: a fresh identity */
		randombytes_buf(buf, sizeof(buf));
		ok = amu_store_put(peripheral->store, KIND_IDENTITY, "device", buf, sizeof(buf), error);
		memcpy(peripheral->static_secret, buf, AMU_CHANNEL_KEYBYTES);
		memcpy(peripheral->device_id, buf + AMU_CHANNEL_KEYBYTES, AMU_CHANNEL_DEVICE_ID_BYTES);
		sodium_memzero(buf, sizeof(buf));
		return ok;
	}
	data = g_bytes_get_data(blob, &len);
	if (len != AMU_CHANNEL_KEYBYTES + AMU_CHANNEL_DEVICE_ID_BYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "device identity record has %zu bytes", len);
		return FALSE;
	}
	memcpy(peripheral->static_secret, data, AMU_CHANNEL_KEYBYTES);
	memcpy(peripheral->device_id, data + AMU_CHANNEL_KEYBYTES, AMU_CHANNEL_DEVICE_ID_BYTES);
	return TRUE;
}

/* After a factory reset was cut short, finish it: nothing of the old
 * identity may be picked up again. */
static gboolean
finish_reset(const char *state_dir, GError **error)
{
	static const char *const files[] = {"device.db", "device.db-wal", "device.db-shm", AMU_STORE_KEY_FILE};
	g_autofree char *marker = g_build_filename(state_dir, RESET_MARKER, NULL);

	if (!g_file_test(marker, G_FILE_TEST_EXISTS))
		return TRUE;
	for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
		g_autofree char *path = g_build_filename(state_dir, files[i], NULL);
		if (g_unlink(path) != 0 && errno != ENOENT) {
			int errsv = errno;
			g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "finishing the factory reset: cannot remove %s: %s", path,
				    g_strerror(errsv));
			return FALSE;
		}
	}
	if (g_unlink(marker) != 0) {
		int errsv = errno;
		g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "cannot remove %s: %s", marker, g_strerror(errsv));
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_peripheral_open_state(AmuPeripheral *peripheral, GError **error)
{
	g_clear_pointer(&peripheral->log, amu_device_log_free);
	g_clear_pointer(&peripheral->store, amu_store_unref);
	if (!finish_reset(peripheral->state_dir, error))
		return FALSE;
	peripheral->store = amu_store_open(peripheral->state_dir, "device.db", error);
	if (peripheral->store == NULL) {
		g_prefix_error(error, "device state in %s: ", peripheral->state_dir);
		return FALSE;
	}
	if (!load_identity(peripheral, error))
		return FALSE;
	amu_command_device_keypair(peripheral->static_secret, peripheral->sign_public, NULL);
	peripheral->log = amu_device_log_new(peripheral->store, error);
	if (peripheral->log == NULL) {
		g_prefix_error(error, "device state in %s: ", peripheral->state_dir);
		return FALSE;
	}
	g_free(peripheral->device_id_hex);
	peripheral->device_id_hex = g_malloc(AMU_CHANNEL_DEVICE_ID_BYTES * 2 + 1);
	sodium_bin2hex(peripheral->device_id_hex, AMU_CHANNEL_DEVICE_ID_BYTES * 2 + 1, peripheral->device_id,
		       AMU_CHANNEL_DEVICE_ID_BYTES);
	return TRUE;
}

AmuPeripheral *
amu_peripheral_new(const char *state_dir, AmuPeripheralProfile profile, GError **error)
{
	g_autoptr(AmuPeripheral) peripheral = g_new0(AmuPeripheral, 1);

	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (sodium_init() < 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED, "libsodium failed to initialise");
		return NULL;
	}
	peripheral->profile = profile;
	peripheral->lockout_base_ms = AMU_PERIPHERAL_LOCKOUT_BASE_MS;
	peripheral->policy_version = g_strdup("2026-01");
	peripheral->conns = g_hash_table_new(g_direct_hash, g_direct_equal);
	peripheral->static_secret = sodium_malloc(AMU_CHANNEL_KEYBYTES);
	peripheral->state_dir = g_strdup(state_dir);
	peripheral->early_lines = g_ptr_array_new_with_free_func(g_free);
	peripheral->slot_size = AMU_PERIPHERAL_SLOT_SIZE_DEFAULT;
	peripheral->vendor_id = g_strdup(AMU_SIM_VENDOR_ID);
	{
		uint8_t *vendor_secret = sodium_malloc(64);
		amu_sim_vendor_keypair(peripheral->vendor_public, vendor_secret);
		sodium_free(vendor_secret);
	}
	if (!amu_peripheral_boot(peripheral, error) || !amu_peripheral_open_state(peripheral, error))
		return NULL;
	return g_steal_pointer(&peripheral);
}

static void
conn_free(PeripheralConn *conn)
{
	amu_peripheral_update_conn_closed(conn);
	amu_channel_set_event_func(conn->channel, NULL, NULL);
	amu_connection_unref(conn->connection);
	amu_channel_unref(conn->channel);
	amu_sync_sender_free(conn->sync);
	if (conn->first_record != NULL)
		g_byte_array_unref(conn->first_record);
	g_free(conn);
}

void
amu_peripheral_free(AmuPeripheral *peripheral)
{
	GHashTableIter iter;
	gpointer value;

	if (peripheral == NULL)
		return;
	amu_link_listener_free(peripheral->listener);
	g_hash_table_iter_init(&iter, peripheral->conns);
	while (g_hash_table_iter_next(&iter, NULL, &value))
		conn_free(value);
	g_hash_table_unref(peripheral->conns);
	amu_peripheral_update_free(peripheral);
	amu_device_log_free(peripheral->log);
	amu_store_unref(peripheral->store);
	sodium_free(peripheral->static_secret);
	g_free(peripheral->device_id_hex);
	g_free(peripheral->state_dir);
	g_free(peripheral->policy_version);
	g_free(peripheral->model);
	g_free(peripheral->support_end);
	g_free(peripheral->vendor_id);
	if (peripheral->early_lines != NULL)
		g_ptr_array_unref(peripheral->early_lines);
	g_free(peripheral);
}

void
amu_peripheral_set_confirm_func(AmuPeripheral *peripheral, AmuPeripheralConfirmFunc func, void *user_data)
{
	peripheral->confirm_func = func;
	peripheral->confirm_data = user_data;
}

void
amu_peripheral_set_log_func(AmuPeripheral *peripheral, AmuPeripheralLogFunc func, void *user_data)
{
	peripheral->log_func = func;
	peripheral->log_data = user_data;
	if (func != NULL && peripheral->early_lines != NULL) {
		g_autoptr(GPtrArray) lines = g_steal_pointer(&peripheral->early_lines);
		for (guint i = 0; i < lines->len; i++)
			func(peripheral, g_ptr_array_index(lines, i), user_data);
	}
}

void
amu_peripheral_set_advert_func(AmuPeripheral *peripheral, AmuPeripheralAdvertFunc func, void *user_data)
{
	peripheral->advert_func = func;
	peripheral->advert_data = user_data;
}

void
amu_peripheral_advert_changed(AmuPeripheral *peripheral)
{
	if (peripheral->advert_func != NULL)
		peripheral->advert_func(peripheral, peripheral->advert_data);
}

gboolean
amu_peripheral_get_pairable(AmuPeripheral *peripheral)
{
	return peripheral->pairing_mode || amu_peripheral_get_n_bonds(peripheral) == 0;
}

void
amu_peripheral_set_pairing_mode(AmuPeripheral *peripheral, gboolean open)
{
	gboolean changed = peripheral->pairing_mode != open;

	peripheral->pairing_mode = open;
	if (changed)
		amu_peripheral_advert_changed(peripheral);
}

const char *
amu_peripheral_profile_to_string(AmuPeripheralProfile profile)
{
	switch (profile) {
	case AMU_PERIPHERAL_PROFILE_BAND:
		return "band";
	case AMU_PERIPHERAL_PROFILE_WATCH:
		return "watch";
	case AMU_PERIPHERAL_PROFILE_TOY:
		return "toy";
	}
	return "band";
}

const char *
amu_peripheral_get_model(AmuPeripheral *peripheral)
{
	if (peripheral->model != NULL)
		return peripheral->model;
	switch (peripheral->profile) {
	case AMU_PERIPHERAL_PROFILE_TOY:
		return "Sim Toy T1";
	case AMU_PERIPHERAL_PROFILE_WATCH:
		return "Sim Watch W1";
	case AMU_PERIPHERAL_PROFILE_BAND:
		break;
	}
	return "Sim Band B1";
}

void
amu_peripheral_set_policy_version(AmuPeripheral *peripheral, const char *version)
{
	g_free(peripheral->policy_version);
	peripheral->policy_version = g_strdup(version);
}

void
amu_peripheral_set_faults(AmuPeripheral *peripheral, AmuPeripheralFaults faults)
{
	peripheral->faults = faults;
}

void
amu_peripheral_set_support_end(AmuPeripheral *peripheral, const char *date)
{
	g_free(peripheral->support_end);
	peripheral->support_end = g_strdup(date);
}

void
amu_peripheral_set_model(AmuPeripheral *peripheral, const char *model)
{
	g_free(peripheral->model);
	peripheral->model = g_strdup(model);
}

void
amu_peripheral_set_drop_at_ack(AmuPeripheral *peripheral, unsigned int ack)
{
	peripheral->drop_at_ack = ack;
}

void
amu_peripheral_set_drop_after(AmuPeripheral *peripheral, uint64_t datagrams)
{
	peripheral->drop_after = datagrams;
}

void
amu_peripheral_set_shaping(AmuPeripheral *peripheral, uint64_t rate_bps, unsigned int latency_ms)
{
	peripheral->rate_bps = rate_bps;
	peripheral->latency_ms = latency_ms;
}

void
amu_peripheral_set_lockout_base(AmuPeripheral *peripheral, uint64_t base_ms)
{
	peripheral->lockout_base_ms = base_ms;
}

const char *
amu_peripheral_get_device_id(AmuPeripheral *peripheral)
{
	return peripheral->device_id_hex;
}

AmuDeviceLog *
amu_peripheral_get_log(AmuPeripheral *peripheral)
{
	return peripheral->log;
}

void
amu_peripheral_set_clock_offset(AmuPeripheral *peripheral, int64_t offset_ms)
{
	peripheral->clock_offset_ms = offset_ms;
}

AmuStore *
amu_peripheral_get_store(AmuPeripheral *peripheral)
{
	return peripheral->store;
}

guint
amu_peripheral_get_n_bonds(AmuPeripheral *peripheral)
{
	g_autoptr(GPtrArray) ids = amu_store_list_ids(peripheral->store, KIND_BOND, NULL);
	return ids != NULL ? ids->len : 0;
}

/* ---------------------------------------------------------------- lockout */

uint64_t
amu_peripheral_get_lockout_remaining(AmuPeripheral *peripheral)
{
	return amu_backoff_remaining(peripheral->store, KIND_LOCKOUT, "pairing", peripheral->lockout_base_ms, NULL);
}

/* ---------------------------------------------------------------- disclosure */

static void
fill_disclosure(AmuPeripheral *peripheral, Amulet__V1__Disclosure *disclosure,
		Amulet__V1__Disclosure__Category *categories, Amulet__V1__Disclosure__Category **category_ptrs,
		uint8_t policy_digest[32])
{
	static const struct {
		const char *name;
		const char *purpose;
		unsigned int profiles; /* bit per profile */
	} all[] = {
		{"heart_rate", "heart rate trends, resting heart rate and workout zones", 0x3},
		{"steps", "daily activity and step goals", 0x3},
		{"spo2", "blood oxygen during sleep", 0x3},
		{"sleep_stage", "sleep duration and quality", 0x3},
		{"skin_temp", "temperature trends for sleep and cycle insights", 0x3},
		{"respiratory_rate", "breathing rate during sleep", 0x3},
		{"location", "routes of recorded workouts (only during workouts)", 0x2},
		{"battery", "battery health and charge reminders", 0x7},
		{"toy_event", "play events and voice-clip metadata (never audio) for the parent app", 0x4},
	};
	g_autofree char *policy = NULL;
	size_t n = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
		if (!(all[i].profiles & (1u << peripheral->profile)))
			continue;
		amulet__v1__disclosure__category__init(&categories[n]);
		categories[n].name = (char *)all[i].name;
		categories[n].purpose = (char *)all[i].purpose;
		category_ptrs[n] = &categories[n];
		n++;
	}
	disclosure->maker = (char *)"Amulet Simulated Devices";
	disclosure->model = (char *)amu_peripheral_get_model(peripheral);
	disclosure->firmware_version = (char *)amu_peripheral_get_firmware(peripheral, NULL);
	disclosure->vendor_id = peripheral->vendor_id;
	disclosure->vendor_public_key.data = peripheral->vendor_public;
	disclosure->vendor_public_key.len = sizeof(peripheral->vendor_public);
	disclosure->n_categories = n;
	disclosure->categories = category_ptrs;
	disclosure->retention = (char *)"on the device until synced to an owner's host, at most 30 days";
	disclosure->support_end_date = peripheral->support_end != NULL ? peripheral->support_end : (char *)"2031-12-31";
	disclosure->update_policy = (char *)"signed updates, installed only with the owner's approval";
	disclosure->offline_behaviour =
		(char *)"everything works offline; data waits on the device until the next sync";
	disclosure->privacy_policy_version = peripheral->policy_version;
	policy = g_strdup_printf("Amulet simulated device privacy policy, version %s", peripheral->policy_version);
	crypto_hash_sha256(policy_digest, (const uint8_t *)policy, strlen(policy));
	disclosure->privacy_policy_digest.data = policy_digest;
	disclosure->privacy_policy_digest.len = 32;
	disclosure->privacy_policy_url = (char *)"https://amulet.invalid/privacy";
}

/* ---------------------------------------------------------------- connections */

static gboolean
fault_filter(AmuConnection *connection, GByteArray *packet, void *user_data)
{
	PeripheralConn *conn = user_data;
	AmuPeripheral *peripheral = conn->peripheral;
	Amulet__V1__Packet *parsed;
	gboolean is_record;

	if (amu_channel_get_state(conn->channel) != AMU_CHANNEL_STATE_OPEN)
		return TRUE;
	parsed = amulet__v1__packet__unpack(NULL, packet->len, packet->data);
	is_record = parsed != NULL && parsed->body_case == AMULET__V1__PACKET__BODY_RECORD;
	if (parsed != NULL)
		amulet__v1__packet__free_unpacked(parsed, NULL);
	if (!is_record)
		return TRUE;
	conn->records_open++;
	if ((peripheral->faults & AMU_PERIPHERAL_FAULT_TAMPER) && conn->records_open == 1) {
		/* the record's tag is the packet's last byte */
		packet->data[packet->len - 1] ^= 0x01;
		plog(peripheral, "fault: tampered with session record 1");
	}
	if (peripheral->faults & AMU_PERIPHERAL_FAULT_REPLAY) {
		if (conn->records_open == 1) {
			conn->first_record = g_byte_array_new();
			g_byte_array_append(conn->first_record, packet->data, packet->len);
		} else if (conn->records_open == 2 && conn->first_record != NULL) {
			g_byte_array_set_size(packet, 0);
			g_byte_array_append(packet, conn->first_record->data, conn->first_record->len);
			plog(peripheral, "fault: replayed session record 1 in place of record 2");
		}
	}
	return TRUE;
}

static gboolean
conn_remove_idle(gpointer user_data)
{
	PeripheralConn *conn = user_data;

	g_hash_table_remove(conn->peripheral->conns, GUINT_TO_POINTER(conn->id));
	conn_free(conn);
	return G_SOURCE_REMOVE;
}

static void
store_bond(PeripheralConn *conn)
{
	AmuPeripheral *peripheral = conn->peripheral;
	const Amulet__V1__HostHello *hello = amu_channel_get_host_hello(conn->channel);
	uint8_t host_key[AMU_CHANNEL_KEYBYTES];
	char id[AMU_CHANNEL_KEYBYTES * 2 + 1];
	g_autoptr(GVariant) record = NULL;
	g_autoptr(GError) error = NULL;

	amu_channel_get_remote_static(conn->channel, host_key);
	sodium_bin2hex(id, sizeof(id), host_key, sizeof(host_key));
	/* the host's owner key, which must sign destructive commands */
	record = g_variant_ref_sink(g_variant_new(
		"(sx@ay)", hello != NULL && hello->host_name != NULL ? hello->host_name : "",
		g_get_real_time() / G_USEC_PER_SEC,
		g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, hello != NULL ? hello->owner_sign_key.data : NULL,
					  hello != NULL ? hello->owner_sign_key.len : 0, 1)));
	if (!amu_store_put(peripheral->store, KIND_BOND, id, g_variant_get_data(record), g_variant_get_size(record),
			   &error)) {
		amu_channel_abort(conn->channel, error);
		return;
	}
	if (!amu_backoff_clear(peripheral->store, KIND_LOCKOUT, "pairing", &error)) {
		plog(peripheral, "cannot clear the pairing lockout: %s", error->message);
		g_clear_error(&error);
	}
	peripheral->pairing_mode = FALSE;
	amu_peripheral_advert_changed(peripheral);
	plog(peripheral, "paired with host \"%s\"", hello != NULL && hello->host_name != NULL ? hello->host_name : "");
	if (!amu_channel_bond_stored(conn->channel, &error))
		plog(peripheral, "finishing pairing failed: %s", error->message);
}

static gboolean
sync_send_cb(const Amulet__V1__Message *message, void *user_data, GError **error)
{
	PeripheralConn *conn = user_data;
	return amu_channel_send(conn->channel, message, error);
}

void
amu_peripheral_send_error(PeripheralConn *conn, const GError *error)
{
	Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__Error err = AMULET__V1__ERROR__INIT;

	err.code = error->domain == AMU_ERROR ? (uint32_t)error->code : AMU_ERROR_FAILED;
	err.message = error->message;
	reply.body_case = AMULET__V1__MESSAGE__BODY_ERROR;
	reply.error = &err;
	amu_channel_send(conn->channel, &reply, NULL);
}

static void
handle_sync(PeripheralConn *conn, const Amulet__V1__Message *message)
{
	AmuPeripheral *peripheral = conn->peripheral;
	g_autoptr(GError) error = NULL;
	gboolean request = message->body_case == AMULET__V1__MESSAGE__BODY_SYNC_REQUEST;

	if (!request && peripheral->drop_at_ack > 0 && ++peripheral->acks_seen == peripheral->drop_at_ack) {
		/* the host stored the batch, but the device never hears so */
		error = g_error_new(AMU_ERROR, AMU_ERROR_DISCONNECTED, "fault: dropped the link on sync ack %u unheeded",
				    peripheral->acks_seen);
		plog(peripheral, "%s", error->message);
		amu_connection_close(conn->connection);
		amu_channel_abort(conn->channel, error);
		return;
	}
	if (conn->sync == NULL)
		conn->sync = amu_sync_sender_new(peripheral->log, sync_send_cb, conn);
	if (request)
		plog(peripheral, "sync from %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT " samples held",
		     message->sync_request->since,
		     amu_device_log_get_end_seq(peripheral->log) - amu_device_log_get_first_seq(peripheral->log));
	if (!amu_sync_sender_rx(conn->sync, message, g_get_real_time() / 1000 + peripheral->clock_offset_ms, &error)) {
		plog(peripheral, "sync refused: %s", error->message);
		amu_peripheral_send_error(conn, error);
		return;
	}
	if (!request && amu_sync_sender_get_in_flight(conn->sync) == 0 &&
	    amu_device_log_get_first_seq(peripheral->log) == amu_device_log_get_end_seq(peripheral->log))
		plog(peripheral, "sync done: every sample acked, log empty at %" G_GUINT64_FORMAT,
		     amu_device_log_get_end_seq(peripheral->log));
}

static void
handle_message(PeripheralConn *conn, const Amulet__V1__Message *message)
{
	g_autoptr(GError) error = NULL;

	switch (message->body_case) {
	case AMULET__V1__MESSAGE__BODY_SYNC_REQUEST:
	case AMULET__V1__MESSAGE__BODY_SYNC_ACK:
		handle_sync(conn, message);
		return;
	case AMULET__V1__MESSAGE__BODY_OWNER_COMMAND:
		amu_peripheral_handle_command(conn, message->owner_command);
		return;
	case AMULET__V1__MESSAGE__BODY_PING: {
		Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__Pong pong = AMULET__V1__PONG__INIT;
		pong.token = message->ping->token;
		pong.padding = message->ping->padding;
		reply.body_case = AMULET__V1__MESSAGE__BODY_PONG;
		reply.pong = &pong;
		if (!amu_channel_send(conn->channel, &reply, &error))
			plog(conn->peripheral, "reply failed: %s", error->message);
		return;
	}
	case AMULET__V1__MESSAGE__BODY_STATUS_REQUEST:
	case AMULET__V1__MESSAGE__BODY_UPDATE_OFFER:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK:
	case AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL:
	case AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE:
		amu_peripheral_handle_update(conn, message);
		return;
	case AMULET__V1__MESSAGE__BODY_DISCLOSURE:
	case AMULET__V1__MESSAGE__BODY_COMMIT:
	case AMULET__V1__MESSAGE__BODY_NONCE:
	case AMULET__V1__MESSAGE__BODY_REVEAL:
	case AMULET__V1__MESSAGE__BODY_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_DONE:
	case AMULET__V1__MESSAGE__BODY_ERROR:
	case AMULET__V1__MESSAGE__BODY_PONG:
	case AMULET__V1__MESSAGE__BODY_SYNC_START:
	case AMULET__V1__MESSAGE__BODY_SYNC_BATCH:
	case AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT:
	case AMULET__V1__MESSAGE__BODY_DEVICE_STATUS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS:
	case AMULET__V1__MESSAGE__BODY__NOT_SET:
	case _AMULET__V1__MESSAGE__BODY__CASE_IS_INT_SIZE:
		break;
	}
	{
		Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__Error err = AMULET__V1__ERROR__INIT;
		err.code = AMU_ERROR_PROTOCOL;
		err.message = (char *)"message not valid in an open session";
		reply.body_case = AMULET__V1__MESSAGE__BODY_ERROR;
		reply.error = &err;
		amu_channel_send(conn->channel, &reply, NULL);
	}
}

static void
channel_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	PeripheralConn *conn = user_data;
	AmuPeripheral *peripheral = conn->peripheral;

	switch (event->type) {
	case AMU_CHANNEL_EVENT_PAIRING_ATTEMPT: {
		g_autoptr(GError) error = NULL;
		/* counted now and cleared on success, so an attempt the attacker
		 * abandons after seeing the code still counts */
		if (!amu_backoff_record_failure(peripheral->store, KIND_LOCKOUT, "pairing", &error))
			plog(peripheral, "cannot record the pairing attempt: %s", error->message);
		return;
	}
	case AMU_CHANNEL_EVENT_CODE: {
		gboolean has_display = peripheral->profile != AMU_PERIPHERAL_PROFILE_TOY;
		if (has_display)
			plog(peripheral, "code: %06d", amu_channel_get_code(channel));
		else
			plog(peripheral, "pairing request: press the button to accept (no display)");
		if (peripheral->confirm_func != NULL)
			peripheral->confirm_func(peripheral, conn->id, amu_channel_get_code(channel), has_display,
						 peripheral->confirm_data);
		return;
	}
	case AMU_CHANNEL_EVENT_PAIRED:
		store_bond(conn);
		return;
	case AMU_CHANNEL_EVENT_OPEN:
		if (amu_channel_get_mode(channel) == AMU_CHANNEL_MODE_RECONNECT)
			plog(peripheral, "reconnected: host \"%s\"",
			     amu_channel_get_host_hello(channel) != NULL ? amu_channel_get_host_hello(channel)->host_name : "");
		return;
	case AMU_CHANNEL_EVENT_MESSAGE:
		handle_message(conn, event->message);
		return;
	case AMU_CHANNEL_EVENT_FAILED:
		plog(peripheral, "session ended: %s", event->error->message);
		if (amu_channel_get_mode(channel) == AMU_CHANNEL_MODE_PAIR &&
		    amu_peripheral_get_lockout_remaining(peripheral) > 0)
			plog(peripheral, "pairing locked for %" G_GUINT64_FORMAT " s",
			     (amu_peripheral_get_lockout_remaining(peripheral) + 999) / 1000);
		/* let the alert drain; the host closes its end */
		g_timeout_add(200, conn_remove_idle, conn);
		return;
	}
}

void
amu_peripheral_add_link(AmuPeripheral *peripheral, AmuLink *link)
{
	PeripheralConn *conn = g_new0(PeripheralConn, 1);
	Amulet__V1__DeviceHello hello = AMULET__V1__DEVICE_HELLO__INIT;
	Amulet__V1__Disclosure disclosure = AMULET__V1__DISCLOSURE__INIT;
	Amulet__V1__Disclosure__Category categories[16];
	Amulet__V1__Disclosure__Category *category_ptrs[16];
	uint8_t digest[32];
	g_autoptr(GPtrArray) bonds = NULL;
	uint64_t locked_ms;

	conn->peripheral = peripheral;
	conn->id = ++peripheral->next_id;
	conn->channel = amu_channel_new(AMU_CHANNEL_ROLE_DEVICE, NULL, NULL);
	amu_channel_set_local_static(conn->channel, peripheral->static_secret);
	hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
	hello.device_id.data = peripheral->device_id;
	hello.device_id.len = AMU_CHANNEL_DEVICE_ID_BYTES;
	hello.profile = peripheral->profile == AMU_PERIPHERAL_PROFILE_TOY     ? AMULET__V1__PROFILE__TOY
			: peripheral->profile == AMU_PERIPHERAL_PROFILE_WATCH ? AMULET__V1__PROFILE__WATCH
									      : AMULET__V1__PROFILE__BAND;
	hello.has_display = peripheral->profile != AMU_PERIPHERAL_PROFILE_TOY;
	hello.privacy_policy_version = peripheral->policy_version;
	hello.sign_key.data = peripheral->sign_public;
	hello.sign_key.len = sizeof(peripheral->sign_public);
	fill_disclosure(peripheral, &disclosure, categories, category_ptrs, digest);
	hello.model = disclosure.model;
	amu_channel_set_device_hello(conn->channel, &hello, &disclosure);

	bonds = amu_store_list_ids(peripheral->store, KIND_BOND, NULL);
	for (guint i = 0; bonds != NULL && i < bonds->len && i < AMU_CHANNEL_MAX_BONDS; i++) {
		uint8_t key[AMU_CHANNEL_KEYBYTES];
		size_t key_len = 0;
		if (sodium_hex2bin(key, sizeof(key), g_ptr_array_index(bonds, i), AMU_CHANNEL_KEYBYTES * 2, NULL,
				   &key_len, NULL) == 0 &&
		    key_len == sizeof(key))
			amu_channel_add_bonded_peer(conn->channel, key);
	}
	locked_ms = amu_peripheral_get_lockout_remaining(peripheral);
	if (locked_ms > 0)
		amu_channel_set_pairing_policy(conn->channel, AMULET__V1__ALERT__CODE__LOCKED_OUT, locked_ms,
					       "too many failed pairings");
	else if (bonds != NULL && bonds->len > 0 && !peripheral->pairing_mode)
		amu_channel_set_pairing_policy(conn->channel, AMULET__V1__ALERT__CODE__NOT_PAIRING_MODE, 0,
					       "owned; the owner must open pairing");
	amu_channel_set_event_func(conn->channel, channel_event_cb, conn);

	link->drop_after = peripheral->drop_after;
	amu_link_socket_set_shaping(link, peripheral->rate_bps, peripheral->latency_ms);
	conn->connection = amu_connection_new(link, conn->channel, AMU_FRAMER_ROLE_PERIPHERAL);
	if (peripheral->faults != AMU_PERIPHERAL_FAULT_NONE)
		amu_connection_set_tx_filter(conn->connection, fault_filter, conn);
	amu_connection_start(conn->connection, NULL);
	g_hash_table_insert(peripheral->conns, GUINT_TO_POINTER(conn->id), conn);
	amu_link_unref(link);
}

void
amu_peripheral_confirm(AmuPeripheral *peripheral, unsigned int request, gboolean accepted)
{
	PeripheralConn *conn = g_hash_table_lookup(peripheral->conns, GUINT_TO_POINTER(request));
	g_autoptr(GError) error = NULL;

	if (conn == NULL || amu_channel_get_state(conn->channel) != AMU_CHANNEL_STATE_CONFIRMING)
		return;
	plog(peripheral, accepted ? "user accepted the pairing" : "user declined the pairing");
	if (!amu_channel_confirm(conn->channel, accepted, TRUE, &error))
		g_debug("confirm: %s", error->message);
}

static void
listener_accept_cb(AmuLinkListener *listener, AmuLink *link, void *user_data)
{
	amu_peripheral_add_link(user_data, link);
}

gboolean
amu_peripheral_listen(AmuPeripheral *peripheral, const char *path, uint16_t att_mtu, GError **error)
{
	peripheral->listener = amu_link_listener_new(path, att_mtu, listener_accept_cb, peripheral, error);
	return peripheral->listener != NULL;
}
