/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "amu-channel.h"
#include "amu-connection.h"
#include "amu-ledger.h"
#include "amu-store.h"
#include "amulet/amulet.h"

G_BEGIN_DECLS

/* constructors and accessors shared inside the library only */
AmuDisclosure *amu_disclosure_new_from_bytes(GBytes *packed);
AmuDisclosure *amu_disclosure_new_from_message(const Amulet__V1__Disclosure *message);
GBytes *amu_disclosure_get_packed(AmuDisclosure *self);

AmuPairingRequest *amu_pairing_request_new(AmuChannel *channel);
typedef struct AmuBluezPasskey AmuBluezPasskey;
AmuPairingRequest *amu_pairing_request_new_link(AmuBluezPasskey *passkey);
void amu_pairing_request_invalidate(AmuPairingRequest *self);

AmuDevice *amu_device_new_from_record(AmuContext *context, GBytes *record, GError **error);
GBytes *amu_device_to_record(AmuDevice *self);
AmuDevice *amu_device_new(AmuContext *context, const char *name, const char *address, AmuChannel *channel);
const uint8_t *amu_device_get_public_key(AmuDevice *self);
AmuContext *amu_device_get_context(AmuDevice *self);

AmuSession *amu_session_new(AmuDevice *device, AmuConnection *connection);
AmuChannel *amu_session_get_channel(AmuSession *self);
const GError *amu_session_get_error(AmuSession *self);
/* amu-session-sync.c: the session hands it sync messages and its end */
typedef struct AmuSessionSync AmuSessionSync;
gboolean amu_session_sync_rx(AmuSession *self, const Amulet__V1__Message *message);
void amu_session_sync_fail(AmuSession *self, const GError *error);
AmuSessionSync **amu_session_get_sync_slot(AmuSession *self);
/* amu-device-command.c: owner commands and their receipts */
GTask **amu_session_get_command_slot(AmuSession *self);
gboolean amu_session_command_rx(AmuSession *self, const Amulet__V1__Message *message);
void amu_session_command_fail(AmuSession *self, const GError *error);
/* amu-device-update.c: status, settings and firmware updates */
gpointer *amu_session_get_update_slot(AmuSession *self);
gboolean amu_session_update_rx(AmuSession *self, const Amulet__V1__Message *message);
void amu_session_update_fail(AmuSession *self, const GError *error);
/* settings an installed update asks the owner to review: notify at connection */
void amu_device_notify_settings_review(AmuDevice *self);
/* the device's queued command, run at its next connection */
gboolean amu_device_run_pending(AmuDevice *self, AmuSession *session, GAsyncReadyCallback callback, gpointer user_data);
gboolean amu_device_finish_pending_after_reset(AmuDevice *self, GError **error);
gboolean amu_device_is_revoked(AmuDevice *self);
/* connect without running a queued command (the command itself uses it) */
void amu_device_connect_raw_async(AmuDevice *self, GCancellable *cancellable, GAsyncReadyCallback callback,
				  gpointer user_data);
AmuSession *amu_device_connect_raw_finish(AmuDevice *self, GAsyncResult *result, GError **error);
/* forget a device on this host: its data key, samples, cursor, bond, queued command; its grants revoked */
gboolean amu_context_erase_device(AmuContext *self, const char *device_id, GError **error);
void amu_context_notify(AmuContext *self, AmuNotification kind, const char *device_name, const char *message);

AmuStore *amu_context_get_store(AmuContext *self);
const uint8_t *amu_context_get_static_secret(AmuContext *self);
const char *amu_context_get_host_name(AmuContext *self);
/* the owner's Ed25519 key pair; @secret_key (64 bytes, nullable) should be sodium_malloc'd */
void amu_context_get_signing_keys(AmuContext *self, uint8_t public_key[32], uint8_t *secret_key);
AmuLedger *amu_context_get_ledger(AmuContext *self);
gboolean amu_context_record_access(AmuContext *self, const char *grant_id, const char *format, guint64 samples,
				  const char *manifest_sha256, const char *refusal, GError **error);
/* opens the link to @address ("sim:PATH", "bluez:[hciN/]ADDR"); with @pair, a
 * BlueZ link is paired first, its passkey confirmed through @confirm_func */
void amu_context_open_link_async(AmuContext *self, const char *address, gboolean pair, AmuConfirmFunc confirm_func,
				 gpointer confirm_data, GCancellable *cancellable, GAsyncReadyCallback callback,
				 gpointer user_data);
AmuLink *amu_context_open_link_finish(AmuContext *self, GAsyncResult *result, GError **error);
gboolean amu_context_save_device(AmuContext *self, AmuDevice *device, GError **error);

const char *amu_profile_to_string(Amulet__V1__Profile profile);
/* GAsyncReadyCallback of the sync wrappers: stores a ref to the result in
 * the GAsyncResult ** given as user_data */
void amu_sync_ready_cb(GObject *source, GAsyncResult *result, gpointer user_data);

G_END_DECLS
