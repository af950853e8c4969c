/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amu-command.h"
#include "amu-private.h"
#include "amu-sample-store.h"

/* Wipe, factory reset and transfer from the host (docs/wipe.md): an
 * owner-signed command with a fresh counter over an open session, the
 * device's signed receipt checked and kept, then this host's own copy
 * erased. A queued command (--when-seen, or one cut short) waits in the
 * store and runs at the device's next connection. */

#define KIND_PENDING "pending-command" /* id: device id; value: kind, flags */
#define KIND_REVOKED "revoked-bond"    /* id: device id; its data is no longer accepted */
#define KIND_COUNTER "command-counter" /* id: device id; the last counter used */
#define KIND_RECEIPT "command-receipt" /* id: random; value: the packed receipt */

/* ------------------------------------------------------------------ the queue */

static gboolean
pending_get(AmuContext *context, const char *device_id, Amulet__V1__CommandKind *kind, AmuWipeFlags *flags)
{
	g_autoptr(GBytes) blob = amu_store_get(amu_context_get_store(context), KIND_PENDING, device_id, NULL);
	const uint8_t *data;

	if (blob == NULL || g_bytes_get_size(blob) != 2)
		return FALSE;
	data = g_bytes_get_data(blob, NULL);
	if (kind != NULL)
		*kind = data[0];
	if (flags != NULL)
		*flags = data[1];
	return TRUE;
}

static gboolean
pending_set(AmuContext *context, const char *device_id, Amulet__V1__CommandKind kind, AmuWipeFlags flags,
	    GError **error)
{
	uint8_t value[2] = {(uint8_t)kind, (uint8_t)flags};
	return amu_store_put(amu_context_get_store(context), KIND_PENDING, device_id, value, sizeof(value), error);
}

gboolean
amu_device_is_revoked(AmuDevice *self)
{
	g_autoptr(GBytes) blob =
		amu_store_get(amu_context_get_store(amu_device_get_context(self)), KIND_REVOKED, amu_device_get_id(self), NULL);
	return blob != NULL;
}

/**
 * amu_device_get_pending_command:
 * @what: (out) (optional) (transfer none): "wipe", "factory reset" or "transfer"
 *
 * Returns: %TRUE if a command waits for the device's next connection
 * Since: 0.1
 */
gboolean
amu_device_get_pending_command(AmuDevice *self, const char **what)
{
	Amulet__V1__CommandKind kind = 0;

	g_return_val_if_fail(AMU_IS_DEVICE(self), FALSE);
	if (!pending_get(amu_device_get_context(self), amu_device_get_id(self), &kind, NULL))
		return FALSE;
	if (what != NULL)
		*what = amu_command_kind_to_string(kind);
	return TRUE;
}

/* ------------------------------------------------------------------ host-side erase */

static gboolean
revoke_grants(AmuContext *self, const char *device_id, GError **error)
{
	g_autoptr(GPtrArray) consents = amu_context_get_consents(self, error);

	if (consents == NULL)
		return FALSE;
	for (guint i = 0; i < consents->len; i++) {
		AmuConsent *consent = g_ptr_array_index(consents, i);
		if (g_strcmp0(amu_consent_get_device_id(consent), device_id) != 0 || amu_consent_get_revoked(consent) > 0)
			continue;
		if (!amu_context_revoke_consent(self, amu_consent_get_id(consent), error))
			return FALSE;
	}
	return TRUE;
}

/* Every store that names the device is cleaned; the ledger keeps its audit
 * entries (sealed), with the grants closed. */
gboolean
amu_context_erase_device(AmuContext *self, const char *device_id, GError **error)
{
	AmuStore *store = amu_context_get_store(self);
	static const char *const kinds[] = {"bond",	    KIND_PENDING, KIND_REVOKED,	    KIND_COUNTER,
					    "update-policy", "firmware",   "settings-review"};

	if (!revoke_grants(self, device_id, error))
		return FALSE;
	/* crypto-shredding first: without the key no block can be read again */
	if (!amu_store_destroy_data_key(store, device_id, error))
		return FALSE;
	if (!amu_store_begin(store, error))
		return FALSE;
	for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
		if (!amu_store_delete(store, kinds[i], device_id, error)) {
			amu_store_rollback(store);
			return FALSE;
		}
	}
	if (!amu_sample_store_delete_device(store, device_id, error) || !amu_store_commit(store, error)) {
		amu_store_rollback(store);
		return FALSE;
	}
	/* secure_delete zeroed the rows; the checkpoint and vacuum drop older copies */
	return amu_store_checkpoint(store, error) && amu_store_exec(store, "VACUUM", error);
}

/* ------------------------------------------------------------------ one command over a session */

typedef struct {
	Amulet__V1__CommandKind kind;
	uint64_t counter;
	uint8_t device_id[AMU_CHANNEL_DEVICE_ID_BYTES];
} CommandData;

static void
command_complete(AmuSession *session, GError *error, GBytes *receipt)
{
	GTask **slot = amu_session_get_command_slot(session);
	g_autoptr(GTask) task = g_steal_pointer(slot);

	if (task == NULL) {
		/* nobody waits: the session just ended with no command in flight */
		g_clear_error(&error);
		g_clear_pointer(&receipt, g_bytes_unref);
		return;
	}
	if (error != NULL)
		g_task_return_error(task, error);
	else
		g_task_return_pointer(task, receipt, (GDestroyNotify)g_bytes_unref);
}

void
amu_session_command_fail(AmuSession *self, const GError *error)
{
	command_complete(self, g_error_copy(error), NULL);
}

static GError *
check_receipt(AmuSession *self, CommandData *data, const Amulet__V1__CommandReceipt *receipt)
{
	const Amulet__V1__DeviceHello *hello = amu_channel_get_device_hello(amu_session_get_channel(self));

	if (receipt->device_id.len != sizeof(data->device_id) ||
	    memcmp(receipt->device_id.data, data->device_id, sizeof(data->device_id)) != 0 || receipt->kind != data->kind ||
	    receipt->counter != data->counter)
		return g_error_new_literal(AMU_ERROR, AMU_ERROR_PROTOCOL, "the device's receipt answers another command");
	/* the key came in this session's hello, authenticated by the bonded static key */
	if (hello == NULL || hello->sign_key.len != AMU_COMMAND_PUBLICKEYBYTES ||
	    !amu_receipt_verify(receipt, hello->sign_key.data))
		return g_error_new_literal(AMU_ERROR, AMU_ERROR_BAD_SIGNATURE,
					   "the device's receipt is not signed by the device: it proves nothing");
	return NULL;
}

gboolean
amu_session_command_rx(AmuSession *self, const Amulet__V1__Message *message)
{
	GTask *task = *amu_session_get_command_slot(self);
	CommandData *data;

	if (message->body_case == AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT) {
		GError *error;
		if (task == NULL)
			return TRUE; /* unasked: ignored */
		data = g_task_get_task_data(task);
		error = check_receipt(self, data, message->command_receipt);
		if (error != NULL) {
			command_complete(self, error, NULL);
		} else {
			size_t len = amulet__v1__command_receipt__get_packed_size(message->command_receipt);
			uint8_t *packed = g_malloc(len + 1);
			amulet__v1__command_receipt__pack(message->command_receipt, packed);
			command_complete(self, NULL, g_bytes_new_take(packed, len));
		}
		return TRUE;
	}
	if (message->body_case == AMULET__V1__MESSAGE__BODY_ERROR && task != NULL) {
		command_complete(self,
				 g_error_new(AMU_ERROR,
					     message->error->code < AMU_ERROR_LAST ? (int)message->error->code : AMU_ERROR_PROTOCOL,
					     "the device refused: %s", message->error->message),
				 NULL);
		return TRUE;
	}
	return FALSE;
}

static gboolean
next_counter(AmuContext *context, const char *device_id, uint64_t *counter, GError **error)
{
	AmuStore *store = amu_context_get_store(context);
	g_autoptr(GBytes) blob = amu_store_get(store, KIND_COUNTER, device_id, NULL);
	uint8_t value[8];
	uint64_t last = 0;

	if (blob != NULL && g_bytes_get_size(blob) == 8) {
		const uint8_t *data = g_bytes_get_data(blob, NULL);
		for (int i = 0; i < 8; i++)
			last |= (uint64_t)data[i] << (8 * i);
	}
	/* time in ms keeps counters rising across a host reset, one more than the last otherwise */
	*counter = MAX(last + 1, (uint64_t)(g_get_real_time() / 1000));
	for (int i = 0; i < 8; i++)
		value[i] = (uint8_t)(*counter >> (8 * i));
	/* stored before it is sent: never used twice */
	return amu_store_put(store, KIND_COUNTER, device_id, value, sizeof(value), error);
}

static void
session_command_async(AmuSession *session, Amulet__V1__CommandKind kind, GCancellable *cancellable,
		      GAsyncReadyCallback callback, gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(session, cancellable, callback, user_data);
	AmuDevice *device = amu_session_get_device(session);
	AmuContext *context = amu_device_get_context(device);
	const Amulet__V1__DeviceHello *hello = amu_channel_get_device_hello(amu_session_get_channel(session));
	CommandData *data = g_new0(CommandData, 1);
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__OwnerCommand command = AMULET__V1__OWNER_COMMAND__INIT;
	uint8_t signature[AMU_COMMAND_SIGNBYTES];
	uint8_t *owner_sk;
	GError *error = NULL;

	g_task_set_task_data(task, data, g_free);
	if (hello == NULL || hello->device_id.len != sizeof(data->device_id)) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_PROTOCOL, "the device did not say who it is");
		return;
	}
	if (*amu_session_get_command_slot(session) != NULL) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "a command is already under way");
		return;
	}
	memcpy(data->device_id, hello->device_id.data, sizeof(data->device_id));
	data->kind = kind;
	if (!next_counter(context, amu_device_get_id(device), &data->counter, &error)) {
		g_task_return_error(task, error);
		return;
	}
	command.device_id.data = data->device_id;
	command.device_id.len = sizeof(data->device_id);
	command.kind = kind;
	command.counter = data->counter;
	owner_sk = sodium_malloc(AMU_COMMAND_SECRETKEYBYTES);
	amu_context_get_signing_keys(context, NULL, owner_sk);
	amu_command_sign(&command, owner_sk, signature);
	sodium_free(owner_sk);
	command.signature.data = signature;
	command.signature.len = sizeof(signature);
	message.body_case = AMULET__V1__MESSAGE__BODY_OWNER_COMMAND;
	message.owner_command = &command;
	*amu_session_get_command_slot(session) = g_object_ref(task);
	if (!amu_channel_send(amu_session_get_channel(session), &message, &error))
		command_complete(session, error, NULL);
}

/* ------------------------------------------------------------------ wipe and transfer */

typedef struct {
	Amulet__V1__CommandKind kind;
	AmuWipeFlags flags;
	AmuSession *session;
	gboolean sent;
} WipeData;

static void
wipe_data_free(WipeData *data)
{
	if (data->session != NULL) {
		amu_session_close(data->session);
		g_object_unref(data->session);
	}
	g_free(data);
}

static void
notify_done(AmuDevice *device, Amulet__V1__CommandKind kind, gboolean erased)
{
	g_autofree char *message = NULL;

	switch (kind) {
	case AMULET__V1__COMMAND_KIND__TRANSFER:
		message = g_strdup_printf("%s was handed over: it has a new identity, waits for its new owner, and "
					  "nothing of yours is left on it%s",
					  amu_device_get_name(device), erased ? " or on this host" : "");
		amu_context_notify(amu_device_get_context(device), AMU_NOTIFICATION_TRANSFERRED,
				   amu_device_get_name(device), message);
		return;
	case AMULET__V1__COMMAND_KIND__FACTORY_RESET:
	case AMULET__V1__COMMAND_KIND__WIPE_DATA:
	case AMULET__V1__COMMAND_KIND__COMMAND_UNSPECIFIED:
	case _AMULET__V1__COMMAND_KIND_IS_INT_SIZE:
		break;
	}
	message = g_strdup_printf("%s was %s%s", amu_device_get_name(device),
				  kind == AMULET__V1__COMMAND_KIND__FACTORY_RESET ? "factory reset: no key, bond or data of "
										      "yours is left on it"
										    : "wiped: its recorded data is erased",
				  erased ? "; this host's copy is erased too" : "; this host keeps its copy");
	amu_context_notify(amu_device_get_context(device), AMU_NOTIFICATION_WIPED, amu_device_get_name(device), message);
}

/* the device did it (receipt in hand), or already had (it forgot us): finish here */
static gboolean
finish_locally(AmuDevice *device, WipeData *data, GBytes *receipt, GError **error)
{
	AmuContext *context = amu_device_get_context(device);
	AmuStore *store = amu_context_get_store(context);
	gboolean erase = !(data->flags & AMU_WIPE_FLAGS_KEEP_LOCAL) || data->kind != AMULET__V1__COMMAND_KIND__WIPE_DATA;

	if (receipt != NULL) {
		uint8_t id[16];
		char id_hex[33];
		randombytes_buf(id, sizeof(id));
		sodium_bin2hex(id_hex, sizeof(id_hex), id, sizeof(id));
		if (!amu_store_put(store, KIND_RECEIPT, id_hex, g_bytes_get_data(receipt, NULL), g_bytes_get_size(receipt),
				   error))
			return FALSE;
	}
	if (erase) {
		if (!amu_context_erase_device(context, amu_device_get_id(device), error))
			return FALSE;
	} else if (!amu_store_delete(store, KIND_PENDING, amu_device_get_id(device), error) ||
		   !amu_store_delete(store, KIND_REVOKED, amu_device_get_id(device), error)) {
		return FALSE;
	}
	notify_done(device, data->kind, erase);
	return TRUE;
}

static void
wipe_command_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	AmuDevice *device = g_task_get_source_object(task);
	WipeData *data = g_task_get_task_data(task);
	GError *error = NULL;
	g_autoptr(GBytes) receipt = g_task_propagate_pointer(G_TASK(result), &error);

	if (receipt == NULL) {
		g_prefix_error(&error, "%s %s: ", amu_command_kind_to_string(data->kind), amu_device_get_name(device));
		g_task_return_error(task, error);
		return;
	}
	if (!finish_locally(device, data, receipt, &error)) {
		g_task_return_error(task, error);
		return;
	}
	g_task_return_boolean(task, TRUE);
}

static void
wipe_run(GTask *task, AmuSession *session)
{
	WipeData *data = g_task_get_task_data(task);

	data->session = g_object_ref(session);
	data->sent = TRUE;
	session_command_async(session, data->kind, g_task_get_cancellable(task), wipe_command_cb, task);
}

static void
wipe_connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GTask *task = user_data;
	AmuDevice *device = AMU_DEVICE(source);
	WipeData *data = g_task_get_task_data(task);
	g_autoptr(AmuSession) session = NULL;
	GError *error = NULL;

	session = amu_device_connect_raw_finish(device, result, &error);
	if (session != NULL) {
		wipe_run(task, session);
		return;
	}
	if (g_error_matches(error, AMU_ERROR, AMU_ERROR_UNKNOWN_PEER) &&
	    data->kind != AMULET__V1__COMMAND_KIND__WIPE_DATA) {
		/* the device forgot us: an earlier reset got through; finish here */
		g_clear_error(&error);
		if (finish_locally(device, data, NULL, &error))
			g_task_return_boolean(task, TRUE);
		else
			g_task_return_error(task, error);
		g_object_unref(task);
		return;
	}
	g_prefix_error(&error, "%s: ", amu_command_kind_to_string(data->kind));
	if (!(data->flags & AMU_WIPE_FLAGS_WHEN_SEEN)) {
		g_autoptr(GError) ignored = NULL;
		/* nothing was sent: no queue unless asked for */
		amu_store_delete(amu_context_get_store(amu_device_get_context(device)), KIND_PENDING,
				 amu_device_get_id(device), &ignored);
		g_prefix_error(&error, "the device was not reached; nothing was wiped (--when-seen queues it): ");
	}
	g_task_return_error(task, error);
	g_object_unref(task);
}

static void
command_start(AmuDevice *self, Amulet__V1__CommandKind kind, AmuWipeFlags flags, GCancellable *cancellable,
	      GAsyncReadyCallback callback, gpointer user_data, gpointer source_tag)
{
	GTask *task = g_task_new(self, cancellable, callback, user_data);
	AmuContext *context = amu_device_get_context(self);
	WipeData *data = g_new0(WipeData, 1);
	GError *error = NULL;

	g_task_set_source_tag(task, source_tag);
	g_task_set_task_data(task, data, (GDestroyNotify)wipe_data_free);
	data->kind = kind;
	data->flags = flags;
	/* the journal first: a command cut short is finished at the next connection */
	if (!pending_set(context, amu_device_get_id(self), kind, flags, &error)) {
		g_task_return_error(task, error);
		g_object_unref(task);
		return;
	}
	if (flags & AMU_WIPE_FLAGS_WHEN_SEEN) {
		/* revoked at once: its data is no longer accepted */
		if (!amu_store_put(amu_context_get_store(context), KIND_REVOKED, amu_device_get_id(self), "1", 1, &error)) {
			g_task_return_error(task, error);
		} else {
			g_autofree char *message = g_strdup_printf(
				"%s: %s queued; it runs at the device's next connection, and its data is no longer accepted",
				amu_device_get_name(self), amu_command_kind_to_string(kind));
			amu_context_notify(context, AMU_NOTIFICATION_WIPED, amu_device_get_name(self), message);
			g_task_return_boolean(task, TRUE);
		}
		g_object_unref(task);
		return;
	}
	amu_device_connect_raw_async(self, cancellable, wipe_connected_cb, task);
}

/**
 * amu_device_wipe_async:
 *
 * Sends the device an owner-signed wipe (or factory reset) inside the
 * encrypted session and checks and keeps its signed receipt; then, unless
 * %AMU_WIPE_FLAGS_KEEP_LOCAL, erases this host's copy: the data key is
 * destroyed, the samples, bond and queued work deleted, the device's consent
 * grants closed. With %AMU_WIPE_FLAGS_WHEN_SEEN the command is queued for
 * the next connection instead. See docs/wipe.md.
 *
 * Since: 0.1
 */
void
amu_device_wipe_async(AmuDevice *self, AmuWipeFlags flags, GCancellable *cancellable, GAsyncReadyCallback callback,
		      gpointer user_data)
{
	g_return_if_fail(AMU_IS_DEVICE(self));
	command_start(self,
		      (flags & AMU_WIPE_FLAGS_FACTORY) ? AMULET__V1__COMMAND_KIND__FACTORY_RESET
						     : AMULET__V1__COMMAND_KIND__WIPE_DATA,
		      flags, cancellable, callback, user_data, amu_device_wipe_async);
}

gboolean
amu_device_wipe_finish(AmuDevice *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

gboolean
amu_device_wipe(AmuDevice *self, AmuWipeFlags flags, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_device_wipe_async(self, flags, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_device_wipe_finish(self, result, error);
}

/**
 * amu_device_transfer_async:
 *
 * Hands the device over: it erases everything of this owner and takes a
 * fresh identity, open for a new owner to pair; this host then erases its
 * copy and bond. A transfer cut short (a crash, a lost link) is completed at
 * the next connection attempt, never left half-owned. Export first what the
 * old owner wants to keep.
 *
 * Since: 0.1
 */
void
amu_device_transfer_async(AmuDevice *self, GCancellable *cancellable, GAsyncReadyCallback callback,
			  gpointer user_data)
{
	g_return_if_fail(AMU_IS_DEVICE(self));
	command_start(self, AMULET__V1__COMMAND_KIND__TRANSFER, AMU_WIPE_FLAGS_NONE, cancellable, callback, user_data,
		      amu_device_transfer_async);
}

gboolean
amu_device_transfer_finish(AmuDevice *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	return g_task_propagate_boolean(G_TASK(result), error);
}

gboolean
amu_device_transfer(AmuDevice *self, GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_device_transfer_async(self, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(g_main_context_get_thread_default(), TRUE);
	return amu_device_transfer_finish(self, result, error);
}

/* ------------------------------------------------------------------ at the next connection */

/* The connection found a queued command: run it on @session; the caller's
 * connect then fails, telling the user what ran. FALSE if nothing is queued. */
gboolean
amu_device_run_pending(AmuDevice *self, AmuSession *session, GAsyncReadyCallback callback, gpointer user_data)
{
	GTask *task;
	WipeData *data;
	Amulet__V1__CommandKind kind = 0;
	AmuWipeFlags flags = 0;

	if (!pending_get(amu_device_get_context(self), amu_device_get_id(self), &kind, &flags))
		return FALSE;
	task = g_task_new(self, NULL, callback, user_data);
	data = g_new0(WipeData, 1);
	data->kind = kind;
	data->flags = flags;
	g_task_set_task_data(task, data, (GDestroyNotify)wipe_data_free);
	wipe_run(task, session);
	return TRUE;
}

/* The device forgot us while a reset or transfer was queued: it happened. */
gboolean
amu_device_finish_pending_after_reset(AmuDevice *self, GError **error)
{
	WipeData data = {0};

	if (!pending_get(amu_device_get_context(self), amu_device_get_id(self), &data.kind, &data.flags) ||
	    data.kind == AMULET__V1__COMMAND_KIND__WIPE_DATA)
		return FALSE;
	return finish_locally(self, &data, NULL, error);
}
