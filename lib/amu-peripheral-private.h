/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-peripheral.h"
#include "amu-sync.h"

G_BEGIN_DECLS

/* What the files of the device role share: amu-peripheral.c (connections,
 * pairing, sync) and amu-peripheral-command.c (owner commands). */

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
};

#define KIND_IDENTITY "identity"
#define KIND_BOND "bond"
#define KIND_LOCKOUT "lockout"
#define KIND_COUNTER "command-counter" /* per bonded host: the last command counter accepted */
#define RESET_MARKER "reset-pending"    /* in the state dir while a factory reset is under way */

void plog(AmuPeripheral *peripheral, const char *format, ...) G_GNUC_PRINTF(2, 3);
void amu_peripheral_send_error(PeripheralConn *conn, const GError *error);
/* an OwnerCommand arrived on an open session */
void amu_peripheral_handle_command(PeripheralConn *conn, const Amulet__V1__OwnerCommand *command);
/* opens (or reopens, after a factory reset) the store, identity and log in state_dir */
gboolean amu_peripheral_open_state(AmuPeripheral *peripheral, GError **error);

G_END_DECLS
