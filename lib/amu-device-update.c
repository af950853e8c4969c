/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "amu-private.h"
#include "amu-text.h"
#include "amu-update-package.h"
#include "amu-update-private.h"
#include "amulet/amu-update.h"

/* The host side of signed firmware updates (docs/update.md): check a package
 * against the key pinned at pairing, upload it resumably inside the session,
 * wait for the device to reboot into it, and confirm it only when the running
 * image is the expected one. Also the requests over a session that the
 * device answers with its status (amu-device-status.c uses them). */

/* image bytes per UpdateChunk, and how many bytes may wait for the device's
 * progress: enough to keep the link busy over a round trip */
#define CHUNK_BYTES 3072
#define IN_FLIGHT_BYTES (CHUNK_BYTES * 6)
/* how long a device may take to reboot into the new image */
#define REBOOT_TIMEOUT_MS 30000
#define RECONNECT_DELAY_MS 200

/* ---------------------------------------------------------------- AmuFirmwareUpdate */

/**
 * AmuFirmwareUpdate:
 *
 * An update package checked for one device: its signature against the
 * vendor key the device disclosed at pairing, its payload digest, vendor,
 * device class and expiry. See docs/update.md.
 */
struct _AmuFirmwareUpdate {
	GObject parent_instance;
	AmuUpdatePackage *package;
	char *path;
	char *version;
	char *changes;
	char **changed_settings;
};

G_DEFINE_TYPE(AmuFirmwareUpdate, amu_firmware_update, G_TYPE_OBJECT)

static void
amu_firmware_update_finalize(GObject *object)
{
	AmuFirmwareUpdate *self = AMU_FIRMWARE_UPDATE(object);

	g_clear_pointer(&self->package, amu_update_package_free);
	g_free(self->path);
	g_free(self->version);
	g_free(self->changes);
	g_strfreev(self->changed_settings);
	G_OBJECT_CLASS(amu_firmware_update_parent_class)->finalize(object);
}

static void
amu_firmware_update_class_init(AmuFirmwareUpdateClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_firmware_update_finalize;
}

static void
amu_firmware_update_init(AmuFirmwareUpdate *self)
{
}

static const Amulet__V1__UpdateManifest *
update_manifest(AmuFirmwareUpdate *self)
{
	return self->package->manifest->manifest;
}

/* what the owner is shown, from the checked manifest, made printable */
static void
firmware_update_describe(AmuFirmwareUpdate *self)
{
	const Amulet__V1__UpdateManifest *m = update_manifest(self);

	self->version = amu_text_printable(m->version);
	self->changes = amu_text_printable(m->changes != NULL ? m->changes : "");
	self->changed_settings = g_new0(char *, m->n_changed_settings + 1);
	for (size_t i = 0; i < m->n_changed_settings; i++)
		self->changed_settings[i] = amu_text_printable(m->changed_settings[i]);
}

static gboolean
device_vendor(AmuDevice *device, const char **vendor_id, const uint8_t **vendor_key, GError **error)
{
	AmuDisclosure *disclosure = amu_device_get_disclosure(device);

	*vendor_key = disclosure != NULL ? amu_disclosure_get_vendor_public_key(disclosure) : NULL;
	*vendor_id = disclosure != NULL ? amu_disclosure_get_vendor_id(disclosure) : NULL;
	if (*vendor_key == NULL || *vendor_id == NULL || **vendor_id == '\0') {
		g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_SUPPORTED,
			    "%s disclosed no vendor key at pairing, so no update can be checked for it: "
			    "pair it again with a firmware that discloses one",
			    amu_device_get_name(device));
		return FALSE;
	}
	return TRUE;
}

/**
 * amu_device_load_update:
 * @path: an update package file (docs/update.md)
 *
 * Reads and checks a package for @device before anything is sent: the
 * signature against the vendor key pinned at pairing
 * (%AMU_ERROR_BAD_SIGNATURE), the payload's length and digest
 * (%AMU_ERROR_TAMPERED), vendor and device class (%AMU_ERROR_WRONG_TARGET),
 * expiry (%AMU_ERROR_EXPIRED) and, if the host knows what the device runs, the
 * sequence (%AMU_ERROR_ROLLBACK). The device's running sequence and slot size
 * are checked again when it is connected.
 *
 * Returns: (transfer full): the checked update, or %NULL with @error set
 * Since: 0.1
 */
AmuFirmwareUpdate *
amu_device_load_update(AmuDevice *device, const char *path, GError **error)
{
	g_autoptr(AmuFirmwareUpdate) self = NULL;
	const uint8_t *vendor_key;
	const char *vendor_id;
	guint64 running = 0;

	g_return_val_if_fail(AMU_IS_DEVICE(device), NULL);
	g_return_val_if_fail(path != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (!device_vendor(device, &vendor_id, &vendor_key, error))
		return NULL;
	self = g_object_new(AMU_TYPE_FIRMWARE_UPDATE, NULL);
	self->package = amu_update_package_load(path, vendor_key, error);
	if (self->package == NULL)
		return NULL;
	self->path = g_strdup(path);
	/* a device on trial may still go back: only what it runs for good rules out older packages */
	if (!amu_device_known_firmware_is_trial(device))
		amu_device_get_known_firmware(device, NULL, &running);
	/* the running sequence and slot size are checked again on the device's own word */
	if (!amu_update_manifest_check_target(self->package->manifest, vendor_id, amu_device_get_profile(device),
					      running, 0, g_get_real_time() / 1000, error)) {
		g_prefix_error(error, "%s: ", path);
		return NULL;
	}
	firmware_update_describe(self);
	return g_steal_pointer(&self);
}

const char *
amu_firmware_update_get_path(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), NULL);
	return self->path;
}

const char *
amu_firmware_update_get_version(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), NULL);
	return self->version;
}

guint64
amu_firmware_update_get_sequence(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), 0);
	return update_manifest(self)->sequence;
}

guint64
amu_firmware_update_get_size(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), 0);
	return update_manifest(self)->payload_size;
}

const char *
amu_firmware_update_get_changes(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), NULL);
	return self->changes;
}

gboolean
amu_firmware_update_is_security(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), FALSE);
	return update_manifest(self)->security;
}

/**
 * amu_firmware_update_get_changed_settings:
 * Returns: (transfer none) (array zero-terminated=1): settings whose meaning this update changes
 * Since: 0.1
 */
const char *const *
amu_firmware_update_get_changed_settings(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), NULL);
	return (const char *const *)self->changed_settings;
}

/**
 * amu_firmware_update_get_sha256:
 * Returns: (transfer full): the image's SHA-256, in hex
 * Since: 0.1
 */
char *
amu_firmware_update_get_sha256(AmuFirmwareUpdate *self)
{
	char hex[65];

	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), NULL);
	sodium_bin2hex(hex, sizeof(hex), update_manifest(self)->payload_sha256.data, 32);
	return g_strdup(hex);
}

/**
 * amu_firmware_update_get_expires:
 * Returns: when the package stops being installable (ms since the epoch), 0 for never
 * Since: 0.1
 */
gint64
amu_firmware_update_get_expires(AmuFirmwareUpdate *self)
{
	g_return_val_if_fail(AMU_IS_FIRMWARE_UPDATE(self), 0);
	return update_manifest(self)->expires_ms;
}

/* ---------------------------------------------------------------- one operation over a session */

typedef enum {
	OP_STATUS, /* a StatusRequest, SettingsChange or UpdateConfirm, answered by a DeviceStatus */
	OP_UPLOAD, /* an offer, its chunks and the install */
} OpKind;

typedef struct {
	OpKind kind;
	GTask *task;
	GSource *cancelled; /* the task's cancellable, in the session's main context */
	/* upload */
	AmuFirmwareUpdate *update;
	AmuUpdateProgressFunc progress;
	gpointer progress_data;
	gboolean offered;
	gboolean installing;
	guint64 acked; /* the device's next offset */
	guint64 sent;  /* the next byte to send */
	crypto_hash_sha256_state acked_hash; /* SHA-256 of [0, acked) */
} UpdateOp;

static void
op_free(UpdateOp *op)
{
	if (op->cancelled != NULL) {
		g_source_destroy(op->cancelled);
		g_source_unref(op->cancelled);
	}
	g_clear_object(&op->task);
	g_clear_object(&op->update);
	g_free(op);
}

/* Ends the operation under way: the task gets @status (an AmuDeviceStatus,
 * or NULL for an upload that succeeded) or @error. */
static void
op_complete(AmuSession *session, GError *error, gpointer result)
{
	UpdateOp *op = *amu_session_get_update_slot(session);
	GTask *task;

	if (op == NULL) {
		g_clear_error(&error);
		g_clear_object(&result);
		return;
	}
	*amu_session_get_update_slot(session) = NULL;
	task = g_steal_pointer(&op->task);
	op_free(op);
	if (error != NULL)
		g_task_return_error(task, error);
	else if (result != NULL)
		g_task_return_pointer(task, result, g_object_unref);
	else
		g_task_return_boolean(task, TRUE);
	g_object_unref(task);
}

void
amu_session_update_fail(AmuSession *self, const GError *error)
{
	op_complete(self, g_error_copy(error), NULL);
}

/* The caller cancelled: the operation ends now; an upload cut here resumes
 * from the device's offset next time. */
static gboolean
op_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	AmuSession *session = user_data;

	op_complete(session, g_error_new_literal(AMU_ERROR, AMU_ERROR_CANCELLED, "the update was cancelled"), NULL);
	return G_SOURCE_REMOVE;
}

static gboolean
op_begin(AmuSession *session, GTask *task, OpKind kind)
{
	UpdateOp *op;

	if (*amu_session_get_update_slot(session) != NULL) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
					"another status or update request is under way on this session");
		return FALSE;
	}
	if (amu_session_get_error(session) != NULL) {
		g_task_return_error(task, g_error_copy(amu_session_get_error(session)));
		return FALSE;
	}
	g_task_set_check_cancellable(task, FALSE);
	op = g_new0(UpdateOp, 1);
	op->kind = kind;
	op->task = g_object_ref(task);
	*amu_session_get_update_slot(session) = op;
	if (g_task_get_cancellable(task) != NULL) {
		op->cancelled = g_cancellable_source_new(g_task_get_cancellable(task));
		g_source_set_callback(op->cancelled, G_SOURCE_FUNC(op_cancelled_cb), session, NULL);
		g_source_attach(op->cancelled, g_main_context_get_thread_default());
	}
	return TRUE;
}

static gboolean
send_message(AmuSession *session, Amulet__V1__Message *message)
{
	GError *error = NULL;

	if (amu_channel_send(amu_session_get_channel(session), message, &error))
		return TRUE;
	op_complete(session, error, NULL);
	return FALSE;
}

static const uint8_t *
update_payload(AmuFirmwareUpdate *update)
{
	return update->package->payload;
}

/* Sends chunks while fewer than IN_FLIGHT_BYTES wait for the device. */
static void
upload_pump(AmuSession *session, UpdateOp *op)
{
	guint64 size = amu_firmware_update_get_size(op->update);

	while (op->sent < size && op->sent - op->acked < IN_FLIGHT_BYTES) {
		Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__UpdateChunk chunk = AMULET__V1__UPDATE_CHUNK__INIT;
		guint64 len = MIN((guint64)CHUNK_BYTES, size - op->sent);

		chunk.offset = op->sent;
		chunk.data.data = (uint8_t *)update_payload(op->update) + op->sent;
		chunk.data.len = len;
		message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK;
		message.update_chunk = &chunk;
		op->sent += len;
		if (!send_message(session, &message))
			return;
	}
}

static void
upload_progress(AmuSession *session, UpdateOp *op, const Amulet__V1__UpdateProgress *progress)
{
	AmuUpdatePackage *package = op->update->package;
	guint64 size = amu_firmware_update_get_size(op->update);
	uint8_t digest[32];
	crypto_hash_sha256_state copy;

	if (progress->manifest_sha256.len != 32 ||
	    memcmp(progress->manifest_sha256.data, package->manifest->manifest_sha256, 32) != 0) {
		op_complete(session,
			    g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL,
						"the device reported progress on another update"),
			    NULL);
		return;
	}
	if (op->installing) {
		if (!progress->installed) {
			op_complete(session,
				    g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL,
							"the device answered the install without installing"),
				    NULL);
			return;
		}
		op_complete(session, NULL, NULL);
		return;
	}
	if (!op->offered) {
		/* the answer to the offer: where the device's second slot stands */
		op->offered = TRUE;
		crypto_hash_sha256_init(&op->acked_hash);
		if (progress->next_offset > size) {
			op_complete(session,
				    g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
						"the device claims %" G_GUINT64_FORMAT " bytes of a %" G_GUINT64_FORMAT
						"-byte image",
						progress->next_offset, size),
				    NULL);
			return;
		}
		if (progress->next_offset > 0) {
			crypto_hash_sha256_update(&op->acked_hash, update_payload(op->update), progress->next_offset);
			copy = op->acked_hash;
			crypto_hash_sha256_final(&copy, digest);
			if (progress->sha256_so_far.len == 32 && memcmp(progress->sha256_so_far.data, digest, 32) == 0) {
				op->acked = op->sent = progress->next_offset;
				g_debug("update: resuming at byte %" G_GUINT64_FORMAT, op->acked);
			} else {
				g_debug("update: the device's %" G_GUINT64_FORMAT
					" bytes differ from the image: starting over",
					progress->next_offset);
				crypto_hash_sha256_init(&op->acked_hash);
				op->acked = op->sent = 0;
			}
		}
	} else {
		/* the answer to a chunk: the device's offset only moves forward, within what was sent */
		if (progress->next_offset < op->acked || progress->next_offset > op->sent) {
			op_complete(session,
				    g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
						"the device reported offset %" G_GUINT64_FORMAT
						" outside %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT,
						progress->next_offset, op->acked, op->sent),
				    NULL);
			return;
		}
		crypto_hash_sha256_update(&op->acked_hash, update_payload(op->update) + op->acked,
					  progress->next_offset - op->acked);
		op->acked = progress->next_offset;
		copy = op->acked_hash;
		crypto_hash_sha256_final(&copy, digest);
		if (progress->sha256_so_far.len != 32 || memcmp(progress->sha256_so_far.data, digest, 32) != 0) {
			op_complete(session,
				    g_error_new(AMU_ERROR, AMU_ERROR_TAMPERED,
						"the device's copy of the image differs from the package at byte %" G_GUINT64_FORMAT
						": run the update again to start over",
						op->acked),
				    NULL);
			return;
		}
	}
	if (op->progress != NULL)
		op->progress(AMU_UPDATE_STAGE_UPLOADING, op->acked, size, op->progress_data);
	if (op->acked == size) {
		Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
		Amulet__V1__UpdateInstall install = AMULET__V1__UPDATE_INSTALL__INIT;

		install.manifest_sha256.data = package->manifest->manifest_sha256;
		install.manifest_sha256.len = 32;
		message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL;
		message.update_install = &install;
		op->installing = TRUE;
		if (op->progress != NULL)
			op->progress(AMU_UPDATE_STAGE_INSTALLING, size, size, op->progress_data);
		send_message(session, &message);
		return;
	}
	upload_pump(session, op);
}

gboolean
amu_session_update_rx(AmuSession *self, const Amulet__V1__Message *message)
{
	UpdateOp *op = *amu_session_get_update_slot(self);

	if (message->body_case == AMULET__V1__MESSAGE__BODY_DEVICE_STATUS) {
		GError *error = NULL;
		AmuDeviceStatus *status;
		if (op == NULL)
			return TRUE; /* unasked: ignored */
		if (op->kind != OP_STATUS) {
			op_complete(self,
				    g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL,
							"the device sent its status in the middle of an upload"),
				    NULL);
			return TRUE;
		}
		status = amu_device_status_new_from_message(message->device_status, &error);
		op_complete(self, error, status);
		return TRUE;
	}
	if (message->body_case == AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS) {
		if (op == NULL)
			return TRUE;
		if (op->kind != OP_UPLOAD) {
			op_complete(self,
				    g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL,
							"the device sent update progress when asked for its status"),
				    NULL);
			return TRUE;
		}
		upload_progress(self, op, message->update_progress);
		return TRUE;
	}
	if (message->body_case == AMULET__V1__MESSAGE__BODY_ERROR && op != NULL) {
		op_complete(self,
			    g_error_new(AMU_ERROR,
					message->error->code < AMU_ERROR_LAST ? (int)message->error->code
									      : AMU_ERROR_PROTOCOL,
					"the device refused: %s", message->error->message),
			    NULL);
		return TRUE;
	}
	return FALSE;
}

/* Sends @message, which the device answers with its DeviceStatus. */
void
amu_session_status_async(AmuSession *session, Amulet__V1__Message *message, GCancellable *cancellable,
		     GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(session, cancellable, callback, user_data);

	if (!op_begin(session, task, OP_STATUS))
		return;
	send_message(session, message);
}

AmuDeviceStatus *
amu_session_status_finish(AmuSession *session, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, session), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

static void
session_upload_async(AmuSession *session, AmuFirmwareUpdate *update, AmuUpdateProgressFunc progress,
		     gpointer progress_data, GCancellable *cancellable, GAsyncReadyCallback callback,
		     gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(session, cancellable, callback, user_data);
	const AmuUpdateManifest *manifest = update->package->manifest;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateOffer offer = AMULET__V1__UPDATE_OFFER__INIT;
	UpdateOp *op;

	if (!op_begin(session, task, OP_UPLOAD))
		return;
	op = *amu_session_get_update_slot(session);
	op->update = g_object_ref(update);
	op->progress = progress;
	op->progress_data = progress_data;
	offer.manifest.data = (uint8_t *)g_bytes_get_data(manifest->manifest_bytes, &offer.manifest.len);
	offer.signature.data = (uint8_t *)manifest->signature;
	offer.signature.len = sizeof(manifest->signature);
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_OFFER;
	message.update_offer = &offer;
	send_message(session, &message);
}

static gboolean
session_upload_finish(AmuSession *session, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, session), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

/* ---------------------------------------------------------------- the update */

typedef struct {
	AmuFirmwareUpdate *update;
	AmuUpdateFlags flags;
	AmuUpdateProgressFunc progress;
	gpointer progress_data;
	AmuSession *session;
	gint64 reboot_deadline; /* monotonic us: give up waiting for the device to come back */
	guint retry_source;
	GError *last_error;
} UpdateData;

static void
update_data_free(UpdateData *data)
{
	if (data->retry_source != 0)
		g_source_remove(data->retry_source);
	g_clear_object(&data->update);
	g_clear_object(&data->session);
	g_clear_error(&data->last_error);
	g_free(data);
}

static void
update_stage(UpdateData *data, AmuUpdateStage stage, guint64 done, guint64 total)
{
	if (data->progress != NULL)
		data->progress(stage, done, total, data->progress_data);
}

static gboolean
sha_equals(AmuDeviceStatus *status, AmuFirmwareUpdate *update)
{
	return memcmp(amu_device_status_get_sha256_raw(status), update_manifest(update)->payload_sha256.data, 32) == 0;
}

/* Keeps a copy of a package the host checked and sent, for amulet update --check. */
static void
keep_package(AmuDevice *device, AmuFirmwareUpdate *update)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	const Amulet__V1__UpdateManifest *m = update_manifest(update);
	g_autofree char *dir = g_build_filename(amu_store_get_dir(store), "updates", NULL);
	g_autofree char *name = g_strdup_printf("%s-%s-%" G_GUINT64_FORMAT ".amupkg", m->vendor_id, m->device_class,
						m->sequence);
	g_autofree char *path = NULL;
	g_autoptr(GError) error = NULL;

	for (char *c = name; *c != '\0'; c++) {
		if (!g_ascii_isalnum(*c) && *c != '-' && *c != '.' && *c != '_')
			*c = '_';
	}
	path = g_build_filename(dir, name, NULL);
	if (g_file_test(path, G_FILE_TEST_EXISTS))
		return;
	if (g_mkdir_with_parents(dir, 0700) != 0 ||
	    !g_file_set_contents_full(path, g_bytes_get_data(update->package->bytes, NULL),
				      (gssize)g_bytes_get_size(update->package->bytes), G_FILE_SET_CONTENTS_CONSISTENT,
				      0600, &error))
		g_debug("cannot keep a copy of %s in %s: %s", update->path, dir,
			error != NULL ? error->message : g_strerror(errno));
}

static void update_confirmed_cb(GObject *source, GAsyncResult *result, gpointer user_data);
static void update_reconnect(GTask *task);

static void
update_finished(GTask *task, AmuDeviceStatus *status)
{
	AmuDevice *device = g_task_get_source_object(task);
	UpdateData *data = g_task_get_task_data(task);
	const Amulet__V1__UpdateManifest *m = update_manifest(data->update);
	g_autoptr(GError) error = NULL;
	g_autofree char *message = NULL;

	if (!amu_device_remember_firmware(device, status, &error))
		g_debug("cannot store the device's firmware version: %s", error->message), g_clear_error(&error);
	if (m->n_changed_settings > 0 &&
	    !amu_device_set_settings_review(device, data->update->version,
					    (const char *const *)data->update->changed_settings, &error))
		g_debug("cannot record the settings to review: %s", error->message), g_clear_error(&error);
	message = g_strdup_printf("%s now runs firmware %s (sequence %" G_GUINT64_FORMAT "), confirmed",
				  amu_device_get_name(device), amu_device_status_get_firmware_version(status), amu_device_status_get_firmware_sequence(status));
	amu_context_notify(amu_device_get_context(device), AMU_NOTIFICATION_UPDATED, amu_device_get_name(device),
			   message);
	amu_device_notify_settings_review(device);
	g_task_return_pointer(task, g_object_ref(status), g_object_unref);
}

/* The device is back after its reboot: is it running what we sent? */
static void
update_check_rebooted(GTask *task, AmuDeviceStatus *status)
{
	AmuDevice *device = g_task_get_source_object(task);
	UpdateData *data = g_task_get_task_data(task);
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateConfirm confirm = AMULET__V1__UPDATE_CONFIRM__INIT;

	if (!sha_equals(status, data->update)) {
		amu_device_remember_firmware(device, status, NULL);
		if (amu_device_status_get_reverted_from(status) != NULL)
			g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_REVERTED,
						"%s could not run firmware %s and went back to %s: "
						"nothing changed on the device; ask the vendor for a fixed package",
						amu_device_get_name(device), amu_device_status_get_reverted_from(status), amu_device_status_get_firmware_version(status));
		else
			g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_REVERTED,
						"%s runs firmware %s, not the image sent (%s): it was not confirmed, "
						"and the device goes back to its previous image at its next reset",
						amu_device_get_name(device), amu_device_status_get_firmware_version(status), data->update->version);
		return;
	}
	if (!amu_device_status_is_trial(status)) {
		update_finished(task, status);
		return;
	}
	update_stage(data, AMU_UPDATE_STAGE_CONFIRMING, 1, 2);
	confirm.firmware_sha256.data = (uint8_t *)amu_device_status_get_sha256_raw(status);
	confirm.firmware_sha256.len = 32;
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM;
	message.update_confirm = &confirm;
	amu_session_status_async(data->session, &message, g_task_get_cancellable(task), update_confirmed_cb,
			     g_object_ref(task));
}

static void
update_confirmed_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	AmuDevice *device = g_task_get_source_object(task);
	UpdateData *data = g_task_get_task_data(task);
	GError *error = NULL;
	g_autoptr(AmuDeviceStatus) status = amu_session_status_finish(AMU_SESSION(source), result, &error);

	if (status == NULL) {
		g_prefix_error(&error, "confirming firmware %s: ", data->update->version);
		g_task_return_error(task, error);
		return;
	}
	if (amu_device_status_is_trial(status) || !sha_equals(status, data->update)) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_PROTOCOL,
					"%s did not keep firmware %s when confirmed", amu_device_get_name(device),
					data->update->version);
		return;
	}
	update_stage(data, AMU_UPDATE_STAGE_CONFIRMING, 2, 2);
	update_finished(task, status);
}

static void
update_rebooted_status_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	g_autoptr(AmuDeviceStatus) status = amu_session_status_finish(AMU_SESSION(source), result, &error);

	if (status == NULL) {
		g_task_return_error(task, error);
		return;
	}
	update_check_rebooted(task, status);
}

static void
update_reconnected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	UpdateData *data = g_task_get_task_data(task);
	GError *error = NULL;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__StatusRequest request = AMULET__V1__STATUS_REQUEST__INIT;

	g_clear_object(&data->session);
	data->session = amu_device_connect_finish(AMU_DEVICE(source), result, &error);
	if (data->session == NULL) {
		/* still rebooting: the link is refused or drops; anything else is final */
		if ((g_error_matches(error, AMU_ERROR, AMU_ERROR_IO) ||
		     g_error_matches(error, AMU_ERROR, AMU_ERROR_DISCONNECTED) ||
		     g_error_matches(error, AMU_ERROR, AMU_ERROR_TIMED_OUT)) &&
		    g_get_monotonic_time() < data->reboot_deadline) {
			g_clear_error(&data->last_error);
			data->last_error = error;
			update_reconnect(g_steal_pointer(&task));
			return;
		}
		g_prefix_error(&error, "the device did not come back after installing firmware %s: ",
			       data->update->version);
		g_task_return_error(task, error);
		return;
	}
	message.body_case = AMULET__V1__MESSAGE__BODY_STATUS_REQUEST;
	message.status_request = &request;
	amu_session_status_async(data->session, &message, g_task_get_cancellable(task), update_rebooted_status_cb,
			     g_object_ref(task));
}

static gboolean
update_reconnect_cb(gpointer user_data)
{
	GTask *task = user_data;
	UpdateData *data = g_task_get_task_data(task);

	data->retry_source = 0;
	if (g_task_return_error_if_cancelled(task)) {
		g_object_unref(task);
		return G_SOURCE_REMOVE;
	}
	amu_device_connect_async(g_task_get_source_object(task), g_task_get_cancellable(task), update_reconnected_cb,
				 task);
	return G_SOURCE_REMOVE;
}

/* takes the task's reference */
static void
update_reconnect(GTask *task)
{
	UpdateData *data = g_task_get_task_data(task);

	data->retry_source = g_timeout_add(RECONNECT_DELAY_MS, update_reconnect_cb, task);
}

static void
update_uploaded_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	UpdateData *data = g_task_get_task_data(task);
	GError *error = NULL;

	if (!session_upload_finish(AMU_SESSION(source), result, &error)) {
		g_task_return_error(task, error);
		return;
	}
	/* the device reboots into the new slot: the session ends */
	g_clear_object(&data->session);
	update_stage(data, AMU_UPDATE_STAGE_CONFIRMING, 0, 2);
	data->reboot_deadline = g_get_monotonic_time() + (gint64)REBOOT_TIMEOUT_MS * 1000;
	update_reconnect(g_steal_pointer(&task));
}

static void
update_status_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	AmuDevice *device = g_task_get_source_object(task);
	UpdateData *data = g_task_get_task_data(task);
	const char *vendor_id;
	const uint8_t *vendor_key;
	GError *error = NULL;
	g_autoptr(AmuDeviceStatus) status = amu_session_status_finish(AMU_SESSION(source), result, &error);

	if (status == NULL) {
		g_task_return_error(task, error);
		return;
	}
	amu_device_remember_firmware(device, status, NULL);
	/* an update cut short after the reboot: only the confirmation is missing */
	if (amu_device_status_is_trial(status) && sha_equals(status, data->update)) {
		update_check_rebooted(task, status);
		return;
	}
	if (!device_vendor(device, &vendor_id, &vendor_key, &error) ||
	    !amu_update_manifest_check_target(data->update->package->manifest, vendor_id,
					      amu_device_get_profile(device), amu_device_status_get_firmware_sequence(status), amu_device_status_get_slot_size(status),
					      g_get_real_time() / 1000, &error)) {
		g_task_return_error(task, error);
		return;
	}
	keep_package(device, data->update);
	update_stage(data, AMU_UPDATE_STAGE_UPLOADING, 0, amu_firmware_update_get_size(data->update));
	session_upload_async(data->session, data->update, data->progress, data->progress_data,
			     g_task_get_cancellable(task), update_uploaded_cb, g_object_ref(task));
}

static void
update_connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	UpdateData *data = g_task_get_task_data(task);
	GError *error = NULL;
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__StatusRequest request = AMULET__V1__STATUS_REQUEST__INIT;

	data->session = amu_device_connect_finish(AMU_DEVICE(source), result, &error);
	if (data->session == NULL) {
		g_task_return_error(task, error);
		return;
	}
	message.body_case = AMULET__V1__MESSAGE__BODY_STATUS_REQUEST;
	message.status_request = &request;
	amu_session_status_async(data->session, &message, g_task_get_cancellable(task), update_status_cb,
			     g_object_ref(task));
}

/**
 * amu_device_update_async:
 * @update: a package checked by amu_device_load_update()
 * @flags: %AMU_UPDATE_FLAGS_AUTO when the owner was not asked
 * @progress: (nullable) (scope call): called as the stages and bytes advance
 *
 * Installs @update: checks it against what the device runs, uploads what the
 * device does not hold yet (an upload cut short resumes where it stopped),
 * lets the device reboot into it, and confirms it only when the running
 * image's digest is the package's. A device that could not run the image
 * goes back to its previous one, and this fails with %AMU_ERROR_REVERTED.
 * With %AMU_UPDATE_FLAGS_AUTO the device's #AmuUpdatePolicy must allow the
 * update, or it fails with %AMU_ERROR_REJECTED. Settings on the device are
 * left as they are; settings whose meaning the update changes are flagged
 * for the owner to review (#AmuContext::notification).
 *
 * Since: 0.1
 */
void
amu_device_update_async(AmuDevice *device, AmuFirmwareUpdate *update, AmuUpdateFlags flags,
			AmuUpdateProgressFunc progress, gpointer progress_data, GCancellable *cancellable,
			GAsyncReadyCallback callback, gpointer user_data)
{
	GTask *task;
	UpdateData *data;

	g_return_if_fail(AMU_IS_DEVICE(device));
	g_return_if_fail(AMU_IS_FIRMWARE_UPDATE(update));
	task = g_task_new(device, cancellable, callback, user_data);
	/* a cancelled update says so in the AMU_ERROR domain, like every other error */
	g_task_set_check_cancellable(task, FALSE);
	data = g_new0(UpdateData, 1);
	data->update = g_object_ref(update);
	data->flags = flags;
	data->progress = progress;
	data->progress_data = progress_data;
	g_task_set_task_data(task, data, (GDestroyNotify)update_data_free);
	if ((flags & AMU_UPDATE_FLAGS_AUTO) && !amu_update_policy_allows(amu_device_get_update_policy(device), update)) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_REJECTED,
					"%s's update policy is '%s': firmware %s%s is not installed without asking; "
					"run amulet update %s %s to review it",
					amu_device_get_name(device),
					amu_update_policy_to_string(amu_device_get_update_policy(device)), update->version,
					amu_firmware_update_is_security(update) ? " (a security fix)" : "",
					amu_device_get_name(device), update->path);
		g_object_unref(task);
		return;
	}
	update_stage(data, AMU_UPDATE_STAGE_CONNECTING, 0, 1);
	amu_device_connect_async(device, cancellable, update_connected_cb, task);
}

/**
 * amu_device_update_finish:
 * Returns: (transfer full): the device's status once it runs the confirmed update
 * Since: 0.1
 */
AmuDeviceStatus *
amu_device_update_finish(AmuDevice *device, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, device), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

AmuDeviceStatus *
amu_device_update(AmuDevice *device, AmuFirmwareUpdate *update, AmuUpdateFlags flags,
		  AmuUpdateProgressFunc progress, gpointer progress_data, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_device_update_async(device, update, flags, progress, progress_data, cancellable, amu_sync_ready_cb,
				&result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_device_update_finish(device, result, error);
}

/**
 * amu_device_find_newest_update:
 *
 * Looks through the packages this host checked and sent before (kept in the
 * data directory's `updates/`) for the newest one for @device.
 *
 * Returns: (transfer full) (nullable): the newest package for the device, or
 *   %NULL (with @error unset) if the host knows none
 * Since: 0.1
 */
AmuFirmwareUpdate *
amu_device_find_newest_update(AmuDevice *device, GError **error)
{
	AmuStore *store = amu_context_get_store(amu_device_get_context(device));
	g_autofree char *dir_path = g_build_filename(amu_store_get_dir(store), "updates", NULL);
	g_autoptr(GDir) dir = NULL;
	g_autoptr(AmuFirmwareUpdate) newest = NULL;
	const char *vendor_id;
	const uint8_t *vendor_key;
	const char *name;

	g_return_val_if_fail(AMU_IS_DEVICE(device), NULL);
	if (!device_vendor(device, &vendor_id, &vendor_key, error))
		return NULL;
	dir = g_dir_open(dir_path, 0, NULL);
	if (dir == NULL)
		return NULL;
	while ((name = g_dir_read_name(dir)) != NULL) {
		g_autofree char *path = NULL;
		g_autoptr(AmuFirmwareUpdate) update = NULL;
		g_autoptr(GError) error_local = NULL;

		if (!g_str_has_suffix(name, ".amupkg"))
			continue;
		path = g_build_filename(dir_path, name, NULL);
		update = g_object_new(AMU_TYPE_FIRMWARE_UPDATE, NULL);
		update->package = amu_update_package_load(path, vendor_key, &error_local);
		/* another vendor's or class's package, or an expired one, is not for this device */
		if (update->package == NULL ||
		    !amu_update_manifest_check_target(update->package->manifest, vendor_id,
						      amu_device_get_profile(device), 0, 0, g_get_real_time() / 1000,
						      &error_local)) {
			g_debug("%s: %s", path, error_local->message);
			continue;
		}
		if (newest != NULL && update_manifest(newest)->sequence >= update_manifest(update)->sequence)
			continue;
		update->path = g_steal_pointer(&path);
		firmware_update_describe(update);
		g_set_object(&newest, update);
	}
	return g_steal_pointer(&newest);
}
