/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-peripheral.h"
#include "amu-sync.h"

G_BEGIN_DECLS

/* What the files of the device role share: amu-peripheral.c (connections,
 * pairing, sync), amu-peripheral-command.c (owner commands),
 * amu-peripheral-update.c (firmware slots and updates) and
 * amu-peripheral-settings.c (status and settings). */

/* an upload into the second slot, accepted on one connection */
typedef struct PeripheralUpload PeripheralUpload;

/* one firmware slot as the boot loader recorded it */
typedef struct {
	gboolean present; /* holds a complete, checked image */
	char *version;
	uint64_t sequence;
	uint8_t sha256[32];
} PeripheralSlot;

/* the boot loader's record, boot.state in the state dir: not user data, so a
 * factory reset keeps it */
typedef struct {
	unsigned int active; /* 0: slot a, 1: slot b */
	PeripheralSlot slots[2];
	gboolean trial;		/* running an image nobody confirmed yet: the next boot reverts */
	gboolean pending_trial; /* the next boot tries the other slot */
	char *reverted_from;	/* the version the device left, or NULL */
} PeripheralBoot;

typedef struct {
	AmuPeripheral *peripheral;
	unsigned int id;
	AmuConnection *connection;
	AmuChannel *channel;
	unsigned int records_open; /* records sent while open: for fault injection */
	GByteArray *first_record;
	AmuSyncSender *sync; /* created by the first sync request */
} PeripheralConn;

struct AmuPeripheral {
	AmuStore *store;
	AmuDeviceLog *log;
	int64_t clock_offset_ms;
	AmuPeripheralProfile profile;
	char *state_dir;
	uint8_t *static_secret; /* sodium_malloc'd */
	uint8_t sign_public[32]; /* Ed25519, derived from the static secret: signs receipts */
	uint8_t device_id[AMU_CHANNEL_DEVICE_ID_BYTES];
	char *device_id_hex;
	char *policy_version;
	char *model; /* NULL: the profile's */
	char *support_end; /* NULL: 2031-12-31 */
	gboolean pairing_mode;
	AmuPeripheralFaults faults;
	uint64_t drop_after;
	unsigned int drop_at_ack; /* fault: the nth sync ack closes the link unheeded */
	unsigned int acks_seen;
	uint64_t rate_bps;
	unsigned int latency_ms;
	uint64_t lockout_base_ms;
	GHashTable *conns; /* id -> PeripheralConn */
	unsigned int next_id;
	AmuLinkListener *listener;
	AmuPeripheralConfirmFunc confirm_func;
	void *confirm_data;
	AmuPeripheralLogFunc log_func;
	void *log_data;
	GPtrArray *early_lines; /* logged before log_func was set: it gets them first */
	AmuPeripheralAdvertFunc advert_func;
	void *advert_data;
	/* firmware */
	char *vendor_id;
	uint8_t vendor_public[32];
	uint64_t slot_size;
	PeripheralBoot boot;
	PeripheralUpload *upload; /* NULL: no offer accepted */
	guint reboot_source;
};

#define KIND_IDENTITY "identity"
#define KIND_BOND "bond"
#define KIND_LOCKOUT "lockout"
#define KIND_COUNTER "command-counter" /* per bonded host: the last command counter accepted */
#define KIND_SETTINGS "settings"       /* per key: the value the user set; absent: the default */
#define RESET_MARKER "reset-pending"    /* in the state dir while a factory reset is under way */

void plog(AmuPeripheral *peripheral, const char *format, ...) G_GNUC_PRINTF(2, 3);
void amu_peripheral_send_error(PeripheralConn *conn, const GError *error);
/* an OwnerCommand arrived on an open session */
void amu_peripheral_handle_command(PeripheralConn *conn, const Amulet__V1__OwnerCommand *command);
/* opens (or reopens, after a factory reset) the store, identity and log in state_dir */
gboolean amu_peripheral_open_state(AmuPeripheral *peripheral, GError **error);
/* the advertised state (pairing mode, device id) changed */
void amu_peripheral_advert_changed(AmuPeripheral *peripheral);

/* amu-peripheral-update.c */
/* the boot loader: reads boot.state (writing the factory image on first
 * start), then tries a newly installed image or reverts an unconfirmed one */
gboolean amu_peripheral_boot(AmuPeripheral *peripheral, GError **error);
/* StatusRequest, UpdateOffer, UpdateChunk, UpdateInstall, UpdateConfirm or
 * SettingsChange arrived on an open session */
void amu_peripheral_handle_update(PeripheralConn *conn, const Amulet__V1__Message *message);
/* the connection goes away: an upload it was doing stops (the bytes stay) */
void amu_peripheral_update_conn_closed(PeripheralConn *conn);
void amu_peripheral_update_free(AmuPeripheral *peripheral);
/* logs "<what> refused: <message>" and answers with an Error */
void amu_peripheral_refuse(PeripheralConn *conn, const char *what, const GError *error);

/* amu-peripheral-settings.c */
/* answers with a DeviceStatus: the running firmware and every setting of
 * the profile (the stored value, else the default) */
void amu_peripheral_send_status(PeripheralConn *conn);
/* a SettingsChange: all or nothing; a DeviceStatus on success, else an Error */
void amu_peripheral_handle_settings(PeripheralConn *conn, const Amulet__V1__SettingsChange *change);

G_END_DECLS
