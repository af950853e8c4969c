/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <string.h>

#include "amu-peripheral-private.h"
#include "amulet/amu-error.h"

/* The device's status and user settings (docs/update.md "Settings survive
 * updates"): the settings each profile has, their ranges, their defaults, and
 * the DeviceStatus the host reads. Settings live in the device's store, apart
 * from the firmware slots, so updates never touch them and a factory reset
 * sets them back to their defaults. */

typedef enum {
	SETTING_NAME,
	SETTING_PERIOD,
	SETTING_SECONDS,
	SETTING_ON_OFF,
} SettingType;

static const struct {
	const char *key;
	unsigned int profiles; /* bit per AmuPeripheralProfile */
	SettingType type;
	const char *fallback; /* NULL: the model name */
} settings_known[] = {
	/* sorted by key: DeviceStatus lists them in this order */
	{"display_name", 0x7, SETTING_NAME, NULL},
	{"do_not_disturb", 0x7, SETTING_PERIOD, "off"},
	{"heart_rate_interval_s", 0x3, SETTING_SECONDS, "1"},
	{"share_location", 0x2, SETTING_ON_OFF, "off"},
	{"voice_chat", 0x4, SETTING_ON_OFF, "off"},
};

static gboolean
setting_applies(AmuPeripheral *peripheral, size_t i)
{
	return (settings_known[i].profiles & (1u << peripheral->profile)) != 0;
}

static char *
setting_keys(AmuPeripheral *peripheral)
{
	g_autoptr(GString) keys = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(settings_known); i++) {
		if (!setting_applies(peripheral, i))
			continue;
		if (keys->len > 0)
			g_string_append(keys, ", ");
		g_string_append(keys, settings_known[i].key);
	}
	return g_string_free(g_steal_pointer(&keys), FALSE);
}

static gboolean
parse_clock(const char *text, int *minutes)
{
	int hours, mins;

	if (!g_ascii_isdigit(text[0]) || !g_ascii_isdigit(text[1]) || text[2] != ':' || !g_ascii_isdigit(text[3]) ||
	    !g_ascii_isdigit(text[4]))
		return FALSE;
	hours = (text[0] - '0') * 10 + (text[1] - '0');
	mins = (text[3] - '0') * 10 + (text[4] - '0');
	if (hours > 23 || mins > 59)
		return FALSE;
	*minutes = hours * 60 + mins;
	return TRUE;
}

/* (transfer full) the value as stored, or NULL with INVALID_ARGUMENT */
static char *
setting_check(AmuPeripheral *peripheral, const char *key, const char *value, GError **error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(settings_known); i++) {
		if (!setting_applies(peripheral, i) || g_strcmp0(settings_known[i].key, key) != 0)
			continue;
		switch (settings_known[i].type) {
		case SETTING_NAME: {
			glong n = g_utf8_validate(value, -1, NULL) ? g_utf8_strlen(value, -1) : 0;
			gboolean printable = n > 0;
			for (const char *p = value; printable && *p != '\0'; p = g_utf8_next_char(p))
				printable = g_unichar_isprint(g_utf8_get_char(p));
			if (n < 1 || n > 32 || !printable) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					    "display_name takes 1 to 32 printable characters, not '%s'", value);
				return NULL;
			}
			return g_strdup(value);
		}
		case SETTING_PERIOD: {
			int from = 0, to = 0;
			if (g_strcmp0(value, "off") == 0)
				return g_strdup(value);
			if (strlen(value) != 11 || value[5] != '-' || !parse_clock(value, &from) ||
			    !parse_clock(value + 6, &to) || from == to) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					    "do_not_disturb takes off or a period HH:MM-HH:MM such as 22:00-07:00 "
					    "(start and end differ), not '%s'",
					    value);
				return NULL;
			}
			return g_strdup(value);
		}
		case SETTING_SECONDS: {
			guint64 seconds = 0;
			if (!g_ascii_string_to_unsigned(value, 10, 1, 3600, &seconds, NULL)) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					    "heart_rate_interval_s takes a number of seconds from 1 to 3600, not '%s'",
					    value);
				return NULL;
			}
			return g_strdup_printf("%" G_GUINT64_FORMAT, seconds);
		}
		case SETTING_ON_OFF:
			if (g_strcmp0(value, "on") != 0 && g_strcmp0(value, "off") != 0) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "%s takes on or off, not '%s'",
					    key, value);
				return NULL;
			}
			return g_strdup(value);
		}
	}
	{
		g_autofree char *keys = setting_keys(peripheral);
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "a %s has no setting '%s': its settings are %s",
			    amu_peripheral_profile_to_string(peripheral->profile), key, keys);
	}
	return NULL;
}

/* all or nothing: every entry is checked before any is stored */
static gboolean
settings_apply(AmuPeripheral *peripheral, const char *const *keys, const char *const *values, size_t n,
	       GError **error)
{
	g_autoptr(GPtrArray) checked = g_ptr_array_new_with_free_func(g_free);

	for (size_t i = 0; i < n; i++) {
		char *value = setting_check(peripheral, keys[i], values[i], error);
		if (value == NULL)
			return FALSE;
		g_ptr_array_add(checked, value);
	}
	if (n == 0)
		return TRUE;
	if (!amu_store_begin(peripheral->store, error))
		return FALSE;
	for (size_t i = 0; i < n; i++) {
		const char *value = g_ptr_array_index(checked, i);
		if (!amu_store_put(peripheral->store, KIND_SETTINGS, keys[i], value, strlen(value), error)) {
			amu_store_rollback(peripheral->store);
			return FALSE;
		}
	}
	if (!amu_store_commit(peripheral->store, error)) {
		amu_store_rollback(peripheral->store);
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_peripheral_set_setting(AmuPeripheral *peripheral, const char *key, const char *value, GError **error)
{
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (!settings_apply(peripheral, &key, &value, 1, error))
		return FALSE;
	plog(peripheral, "settings: %s=%s, set on the device", key, value);
	return TRUE;
}

/* (transfer full) the setting's value: the one stored, else the default */
static char *
setting_value(AmuPeripheral *peripheral, size_t i, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) blob = amu_store_get(peripheral->store, KIND_SETTINGS, settings_known[i].key, &error_local);
	gsize len = 0;
	const char *data;

	if (blob == NULL) {
		if (!g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return NULL;
		}
		return g_strdup(settings_known[i].fallback != NULL ? settings_known[i].fallback
								   : amu_peripheral_get_model(peripheral));
	}
	data = g_bytes_get_data(blob, &len);
	return g_strndup(data, len);
}

void
amu_peripheral_handle_settings(PeripheralConn *conn, const Amulet__V1__SettingsChange *change)
{
	AmuPeripheral *peripheral = conn->peripheral;
	g_autofree const char **keys = g_new0(const char *, change->n_settings + 1);
	g_autofree const char **values = g_new0(const char *, change->n_settings + 1);
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) line = g_string_new("settings:");

	for (size_t i = 0; i < change->n_settings; i++) {
		keys[i] = change->settings[i]->key;
		values[i] = change->settings[i]->value;
		g_string_append_printf(line, " %s=%s", keys[i], values[i]);
	}
	if (!settings_apply(peripheral, keys, values, change->n_settings, &error)) {
		amu_peripheral_refuse(conn, "settings change", error);
		return;
	}
	if (change->n_settings > 0)
		plog(peripheral, "%s", line->str);
	amu_peripheral_send_status(conn);
}

void
amu_peripheral_send_status(PeripheralConn *conn)
{
	AmuPeripheral *peripheral = conn->peripheral;
	const PeripheralSlot *running = &peripheral->boot.slots[peripheral->boot.active];
	Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__DeviceStatus status = AMULET__V1__DEVICE_STATUS__INIT;
	Amulet__V1__Setting settings[G_N_ELEMENTS(settings_known)];
	Amulet__V1__Setting *setting_ptrs[G_N_ELEMENTS(settings_known)];
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GError) error = NULL;
	uint8_t sha256[32];
	size_t n = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(settings_known); i++) {
		char *value;
		if (!setting_applies(peripheral, i))
			continue;
		value = setting_value(peripheral, i, &error);
		if (value == NULL) {
			g_prefix_error(&error, "reading the settings: ");
			amu_peripheral_refuse(conn, "status", error);
			return;
		}
		g_ptr_array_add(values, value);
		amulet__v1__setting__init(&settings[n]);
		settings[n].key = (char *)settings_known[i].key;
		settings[n].value = value;
		setting_ptrs[n] = &settings[n];
		n++;
	}
	memcpy(sha256, running->sha256, sizeof(sha256));
	status.firmware_version = running->version;
	status.firmware_sequence = running->sequence;
	status.firmware_sha256.data = sha256;
	status.firmware_sha256.len = sizeof(sha256);
	status.trial = peripheral->boot.trial;
	status.reverted_from = peripheral->boot.reverted_from != NULL ? peripheral->boot.reverted_from : (char *)"";
	status.n_settings = n;
	status.settings = setting_ptrs;
	status.slot_size = peripheral->slot_size;
	reply.body_case = AMULET__V1__MESSAGE__BODY_DEVICE_STATUS;
	reply.device_status = &status;
	if (!amu_channel_send(conn->channel, &reply, &error))
		plog(peripheral, "sending the status failed: %s", error->message);
}
