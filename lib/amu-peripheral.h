/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-connection.h"
#include "amu-device-log.h"
#include "amu-link.h"
#include "amu-store.h"

G_BEGIN_DECLS

/* The device role of the protocol: identity, bonds, lockout, disclosure and
 * the answers to session messages. amulet-sim is a thin program around it;
 * the host side never depends on it. */
typedef struct AmuPeripheral AmuPeripheral;

typedef enum {
	AMU_PERIPHERAL_PROFILE_BAND,
	AMU_PERIPHERAL_PROFILE_WATCH,
	AMU_PERIPHERAL_PROFILE_TOY,
} AmuPeripheralProfile;

typedef enum {
	AMU_PERIPHERAL_FAULT_NONE = 0,
	AMU_PERIPHERAL_FAULT_REPLAY = 1 << 0, /* resend an earlier session record */
	AMU_PERIPHERAL_FAULT_TAMPER = 1 << 1, /* flip a bit in a session record */
	AMU_PERIPHERAL_FAULT_DROP_BEFORE_COMMAND = 1 << 2, /* drop the link when an owner command arrives */
	AMU_PERIPHERAL_FAULT_DROP_AFTER_COMMAND = 1 << 3,  /* carry it out, then drop the link before the receipt */
} AmuPeripheralFaults;

/* first lockout period; threshold and ceiling are in amu-backoff.h */
#define AMU_PERIPHERAL_LOCKOUT_BASE_MS 30000

/* the device's user is asked to confirm `code`; answer with amu_peripheral_confirm(request) */
typedef void (*AmuPeripheralConfirmFunc)(AmuPeripheral *peripheral, unsigned int request, int code,
					 gboolean has_display, void *user_data);
/* something happened worth a line in the simulator's output */
typedef void (*AmuPeripheralLogFunc)(AmuPeripheral *peripheral, const char *line, void *user_data);
/* what the device advertises changed: amu_peripheral_get_pairable() or the device id */
typedef void (*AmuPeripheralAdvertFunc)(AmuPeripheral *peripheral, void *user_data);

/* the largest firmware image the second slot takes, by default */
#define AMU_PERIPHERAL_SLOT_SIZE_DEFAULT 4194304

AmuPeripheral *amu_peripheral_new(const char *state_dir, AmuPeripheralProfile profile, GError **error);
void amu_peripheral_free(AmuPeripheral *peripheral);
void amu_peripheral_set_confirm_func(AmuPeripheral *peripheral, AmuPeripheralConfirmFunc func, void *user_data);
void amu_peripheral_set_log_func(AmuPeripheral *peripheral, AmuPeripheralLogFunc func, void *user_data);
void amu_peripheral_confirm(AmuPeripheral *peripheral, unsigned int request, gboolean accepted);
/* the owner opened pairing (a long press on a real device) */
void amu_peripheral_set_pairing_mode(AmuPeripheral *peripheral, gboolean open);
/* the model name disclosed, instead of the profile's */
/* the support end date disclosed (ISO 8601 date) */
void amu_peripheral_set_support_end(AmuPeripheral *peripheral, const char *date);
void amu_peripheral_set_model(AmuPeripheral *peripheral, const char *model);
void amu_peripheral_set_policy_version(AmuPeripheral *peripheral, const char *version);
void amu_peripheral_set_faults(AmuPeripheral *peripheral, AmuPeripheralFaults faults);
/* fault: close the link when the @ack-th sync ack arrives, before acting on it */
void amu_peripheral_set_drop_at_ack(AmuPeripheral *peripheral, unsigned int ack);
void amu_peripheral_set_drop_after(AmuPeripheral *peripheral, uint64_t datagrams);
void amu_peripheral_set_shaping(AmuPeripheral *peripheral, uint64_t rate_bps, unsigned int latency_ms);
void amu_peripheral_set_lockout_base(AmuPeripheral *peripheral, uint64_t base_ms);
/* serve one link (transfer full) */
void amu_peripheral_add_link(AmuPeripheral *peripheral, AmuLink *link);
gboolean amu_peripheral_listen(AmuPeripheral *peripheral, const char *path, uint16_t att_mtu, GError **error);
const char *amu_peripheral_get_device_id(AmuPeripheral *peripheral);
guint amu_peripheral_get_n_bonds(AmuPeripheral *peripheral);
/* milliseconds until pairing is allowed again, 0 if it is */
uint64_t amu_peripheral_get_lockout_remaining(AmuPeripheral *peripheral);
AmuStore *amu_peripheral_get_store(AmuPeripheral *peripheral);
/* the telemetry log the device syncs from (transfer none) */
AmuDeviceLog *amu_peripheral_get_log(AmuPeripheral *peripheral);
/* the device's clock runs @offset_ms ahead of the system clock (negative: behind) */
void amu_peripheral_set_clock_offset(AmuPeripheral *peripheral, int64_t offset_ms);
void amu_peripheral_set_advert_func(AmuPeripheral *peripheral, AmuPeripheralAdvertFunc func, void *user_data);
/* "band", "watch" or "toy": also the device class in update manifests */
const char *amu_peripheral_profile_to_string(AmuPeripheralProfile profile);
/* the model name disclosed */
const char *amu_peripheral_get_model(AmuPeripheral *peripheral);
/* a new host may pair: pairing mode is open, or the device has no owner */
gboolean amu_peripheral_get_pairable(AmuPeripheral *peripheral);

/* Firmware updates (docs/update.md). The vendor whose key signs update
 * manifests; by default the simulator's published test vendor. */
void amu_peripheral_set_vendor(AmuPeripheral *peripheral, const char *vendor_id, const uint8_t public_key[32]);
/* the largest image the device takes (default AMU_PERIPHERAL_SLOT_SIZE_DEFAULT) */
void amu_peripheral_set_slot_size(AmuPeripheral *peripheral, uint64_t bytes);
/* the running image's version (transfer none) and @sequence */
const char *amu_peripheral_get_firmware(AmuPeripheral *peripheral, uint64_t *sequence);
/* The user changes a setting on the device itself; checked as a
 * SettingsChange is. INVALID_ARGUMENT names the allowed keys or values. */
gboolean amu_peripheral_set_setting(AmuPeripheral *peripheral, const char *key, const char *value, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuPeripheral, amu_peripheral_free)

G_END_DECLS
