/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "amu-backoff.h"
#include "amu-bluez.h"
#include "amu-private.h"

/**
 * AmuContext:
 *
 * The host's side of Amulet: its data directory (encrypted store, master key
 * file), its identity keys and its bonded devices.
 */
struct _AmuContext {
	GObject parent_instance;
	char *data_dir;
	char *host_name;
	AmuStore *store;
	uint8_t *identity; /* sodium_malloc'd: X25519 secret, Ed25519 seed */
	guint confirm_timeout_s;
	AmuLedger *ledger; /* made on first use */
};

G_DEFINE_TYPE(AmuContext, amu_context, G_TYPE_OBJECT)

#define KIND_IDENTITY "identity"
#define KIND_BOND "bond"
#define KIND_PAIR_FAILURES "pair-failures"
#define IDENTITY_BYTES 64
#define HOST_LOCKOUT_BASE_MS 30000

static void
amu_context_finalize(GObject *object)
{
	AmuContext *self = AMU_CONTEXT(object);

	amu_ledger_free(self->ledger);
	sodium_free(self->identity);
	amu_store_unref(self->store);
	g_free(self->data_dir);
	g_free(self->host_name);
	G_OBJECT_CLASS(amu_context_parent_class)->finalize(object);
}

enum {
	SIGNAL_NOTIFICATION,
	N_SIGNALS,
};
static guint signals[N_SIGNALS];

static void
amu_context_class_init(AmuContextClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = amu_context_finalize;
	/**
	 * AmuContext::notification:
	 * @kind: an #AmuNotification
	 * @device_name: the device it is about
	 * @message: the event in plain words, for the owner
	 *
	 * Something the owner should hear about happened: a pairing, a changed
	 * key or policy, a wipe, a transfer, support ending (OTA 16, 23, 39).
	 *
	 * Since: 0.1
	 */
	signals[SIGNAL_NOTIFICATION] = g_signal_new("notification", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0,
						    NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_STRING,
						    G_TYPE_STRING);
}

void
amu_context_notify(AmuContext *self, AmuNotification kind, const char *device_name, const char *message)
{
	g_signal_emit(self, signals[SIGNAL_NOTIFICATION], 0, (int)kind, device_name, message);
}

static void
amu_context_init(AmuContext *self)
{
	self->confirm_timeout_s = 120;
}

static gboolean
load_identity(AmuContext *self, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GBytes) blob = amu_store_get(self->store, KIND_IDENTITY, "host", &error_local);

	if (blob == NULL) {
		if (!g_error_matches(error_local, AMU_ERROR, AMU_ERROR_NOT_FOUND)) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return FALSE;
		}
		randombytes_buf(self->identity, IDENTITY_BYTES);
		return amu_store_put(self->store, KIND_IDENTITY, "host", self->identity, IDENTITY_BYTES, error);
	}
	if (g_bytes_get_size(blob) != IDENTITY_BYTES) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE, "the host identity record is malformed");
		return FALSE;
	}
	memcpy(self->identity, g_bytes_get_data(blob, NULL), IDENTITY_BYTES);
	return TRUE;
}

/**
 * amu_context_new:
 * @data_dir: (nullable): where keys, bonds and data live; %NULL for
 *   `$XDG_DATA_HOME/amulet`
 *
 * Opens (creating on first use) the host's encrypted store. The master key
 * is the file `master.key` (mode 0600) in @data_dir.
 *
 * Returns: (transfer full): a new #AmuContext, or %NULL with @error set
 * Since: 0.1
 */
AmuContext *
amu_context_new(const char *data_dir, GError **error)
{
	g_autoptr(AmuContext) self = NULL;

	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (sodium_init() < 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED, "libsodium failed to initialise");
		return NULL;
	}
	self = g_object_new(AMU_TYPE_CONTEXT, NULL);
	self->data_dir = data_dir != NULL ? g_strdup(data_dir) : g_build_filename(g_get_user_data_dir(), "amulet", NULL);
	self->host_name = g_strdup(g_get_host_name());
	self->identity = sodium_malloc(IDENTITY_BYTES);
	self->store = amu_store_open(self->data_dir, "amulet.db", error);
	if (self->store == NULL)
		return NULL;
	if (!load_identity(self, error))
		return NULL;
	return g_steal_pointer(&self);
}

/**
 * amu_context_reset:
 *
 * The host's factory reset: removes every key (the master key and the
 * identity), bond, sample and grant in the data directory, then starts
 * afresh with a new identity. Devices keep their bond with the old identity
 * until they are reset; wipe or transfer them first.
 *
 * Since: 0.1
 */
gboolean
amu_context_reset(AmuContext *self, GError **error)
{
	static const char *const files[] = {"amulet.db", "amulet.db-wal", "amulet.db-shm", "consent-ledger.head",
					    AMU_STORE_KEY_FILE};

	g_return_val_if_fail(AMU_IS_CONTEXT(self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	g_clear_pointer(&self->ledger, amu_ledger_free);
	g_clear_pointer(&self->store, amu_store_unref);
	for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
		g_autofree char *path = g_build_filename(self->data_dir, files[i], NULL);
		if (g_unlink(path) != 0 && errno != ENOENT) {
			int errsv = errno;
			g_set_error(error, AMU_ERROR, errsv == EACCES || errsv == EPERM ? AMU_ERROR_PERMISSION_DENIED : AMU_ERROR_IO,
				    "cannot remove %s: %s", path, g_strerror(errsv));
			return FALSE;
		}
	}
	self->store = amu_store_open(self->data_dir, "amulet.db", error);
	if (self->store == NULL)
		return FALSE;
	return load_identity(self, error);
}

const char *
amu_context_get_data_dir(AmuContext *self)
{
	g_return_val_if_fail(AMU_IS_CONTEXT(self), NULL);
	return self->data_dir;
}

/**
 * amu_context_set_host_name:
 *
 * Sets the name this host gives devices when pairing (default: the machine's host name).
 *
 * Since: 0.1
 */
void
amu_context_set_host_name(AmuContext *self, const char *host_name)
{
	g_return_if_fail(AMU_IS_CONTEXT(self));
	g_free(self->host_name);
	self->host_name = g_strdup(host_name);
}

/**
 * amu_context_set_confirm_timeout:
 *
 * How long a pairing waits for the user's answer (default 120 s).
 *
 * Since: 0.1
 */
void
amu_context_set_confirm_timeout(AmuContext *self, guint seconds)
{
	g_return_if_fail(AMU_IS_CONTEXT(self));
	self->confirm_timeout_s = seconds;
}

/**
 * amu_context_get_fingerprint:
 * Returns: (transfer full): the fingerprint of this host's static key
 * Since: 0.1
 */
char *
amu_context_get_fingerprint(AmuContext *self)
{
	uint8_t public_key[AMU_CHANNEL_KEYBYTES];

	g_return_val_if_fail(AMU_IS_CONTEXT(self), NULL);
	crypto_scalarmult_base(public_key, self->identity);
	return amu_fingerprint_from_key(public_key);
}

AmuStore *
amu_context_get_store(AmuContext *self)
{
	return self->store;
}

const uint8_t *
amu_context_get_static_secret(AmuContext *self)
{
	return self->identity;
}

/* The owner's Ed25519 key pair, from the seed in the identity record. */
void
amu_context_get_signing_keys(AmuContext *self, uint8_t public_key[32], uint8_t *secret_key)
{
	uint8_t *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];

	crypto_sign_seed_keypair(pk, sk, self->identity + 32);
	if (public_key != NULL)
		memcpy(public_key, pk, sizeof(pk));
	if (secret_key != NULL)
		memcpy(secret_key, sk, crypto_sign_SECRETKEYBYTES);
	sodium_free(sk);
}

AmuLedger *
amu_context_get_ledger(AmuContext *self)
{
	if (self->ledger == NULL) {
		uint8_t pk[crypto_sign_PUBLICKEYBYTES];
		uint8_t *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
		amu_context_get_signing_keys(self, pk, sk);
		self->ledger = amu_ledger_new(self->store, pk, sk);
		sodium_free(sk);
	}
	return self->ledger;
}

const char *
amu_context_get_host_name(AmuContext *self)
{
	return self->host_name;
}

static AmuLink *
open_sim_link(const char *address, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	const char *rate = g_getenv("AMULET_SIM_LINK_RATE");
	AmuLink *link = amu_link_socket_connect(address + 4, AMU_LINK_MTU_DEFAULT, &error_local);

	if (link == NULL) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "%s", error_local->message);
		return NULL;
	}
	/* the simulated radio's rate for what the host sends (amulet(1), ENVIRONMENT) */
	if (rate != NULL && g_ascii_strtoull(rate, NULL, 10) > 0)
		amu_link_socket_set_shaping(link, g_ascii_strtoull(rate, NULL, 10), 0);
	return link;
}

typedef struct {
	AmuConfirmFunc confirm_func;
	gpointer confirm_data;
	AmuPairingRequest *request; /* the passkey being confirmed */
} OpenLinkData;

static void
open_link_data_free(OpenLinkData *data)
{
	if (data->request != NULL) {
		amu_pairing_request_invalidate(data->request);
		g_object_unref(data->request);
	}
	g_free(data);
}

static void
open_link_passkey_cb(AmuBluezPasskey *passkey, gpointer user_data)
{
	GTask *task = user_data;
	OpenLinkData *data = g_task_get_task_data(task);

	if (data->request != NULL) {
		amu_pairing_request_invalidate(data->request);
		g_clear_object(&data->request);
	}
	data->request = amu_pairing_request_new_link(passkey);
	if (data->confirm_func != NULL)
		data->confirm_func(data->request, data->confirm_data);
	else
		amu_pairing_request_reply(data->request, FALSE, FALSE);
}

static void
open_link_bluez_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;
	GError *error = NULL;
	AmuLink *link = amu_link_bluez_connect_finish(result, &error);

	if (link == NULL) {
		g_task_return_error(task, error);
		return;
	}
	g_task_return_pointer(task, link, (GDestroyNotify)amu_link_unref);
}

void
amu_context_open_link_async(AmuContext *self, const char *address, gboolean pair, AmuConfirmFunc confirm_func,
			    gpointer confirm_data, GCancellable *cancellable, GAsyncReadyCallback callback,
			    gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new(self, cancellable, callback, user_data);
	OpenLinkData *data = g_new0(OpenLinkData, 1);
	GError *error = NULL;

	data->confirm_func = confirm_func;
	data->confirm_data = confirm_data;
	g_task_set_task_data(task, data, (GDestroyNotify)open_link_data_free);
	if (g_str_has_prefix(address, "sim:")) {
		AmuLink *link = open_sim_link(address, &error);
		if (link == NULL)
			g_task_return_error(task, error);
		else
			g_task_return_pointer(task, link, (GDestroyNotify)amu_link_unref);
		return;
	}
	if (g_str_has_prefix(address, "bluez:")) {
		amu_link_bluez_connect_async(address + strlen("bluez:"), pair, open_link_passkey_cb, task, cancellable,
					     open_link_bluez_cb, g_object_ref(task));
		return;
	}
	{
		const char *rest = NULL;
		AmuLinkOpenFunc open_func = amu_link_lookup_scheme(address, &rest);
		if (open_func != NULL) {
			AmuLink *link = open_func(rest, &error);
			if (link == NULL)
				g_task_return_error(task, error);
			else
				g_task_return_pointer(task, link, (GDestroyNotify)amu_link_unref);
			return;
		}
	}
	g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				"unknown address '%s': use sim:PATH for a simulated device, or bluez:ADDRESS "
				"(bluez:hciN/ADDRESS) for one in radio range",
				address);
}

AmuLink *
amu_context_open_link_finish(AmuContext *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

/**
 * amu_context_get_devices:
 * Returns: (transfer container) (element-type AmuDevice): the bonded devices, by name
 * Since: 0.1
 */
GPtrArray *
amu_context_get_devices(AmuContext *self, GError **error)
{
	g_autoptr(GPtrArray) ids = NULL;
	g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func(g_object_unref);

	g_return_val_if_fail(AMU_IS_CONTEXT(self), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	ids = amu_store_list_ids(self->store, KIND_BOND, error);
	if (ids == NULL)
		return NULL;
	for (guint i = 0; i < ids->len; i++) {
		g_autoptr(GBytes) record = amu_store_get(self->store, KIND_BOND, g_ptr_array_index(ids, i), error);
		AmuDevice *device;
		if (record == NULL)
			return NULL;
		device = amu_device_new_from_record(self, record, error);
		if (device == NULL)
			return NULL;
		g_ptr_array_add(devices, device);
	}
	return g_steal_pointer(&devices);
}

/**
 * amu_context_find_device:
 * @name_or_id: a device's name or id
 * Returns: (transfer full): the device, or %NULL with %AMU_ERROR_NOT_FOUND
 * Since: 0.1
 */
AmuDevice *
amu_context_find_device(AmuContext *self, const char *name_or_id, GError **error)
{
	g_autoptr(GPtrArray) devices = amu_context_get_devices(self, error);

	if (devices == NULL)
		return NULL;
	for (guint i = 0; i < devices->len; i++) {
		AmuDevice *device = g_ptr_array_index(devices, i);
		if (g_strcmp0(amu_device_get_name(device), name_or_id) == 0 ||
		    g_strcmp0(amu_device_get_id(device), name_or_id) == 0)
			return g_object_ref(device);
	}
	g_set_error(error, AMU_ERROR, AMU_ERROR_NOT_FOUND,
		    "no paired device is called '%s': 'amulet devices' lists them", name_or_id);
	return NULL;
}

gboolean
amu_context_save_device(AmuContext *self, AmuDevice *device, GError **error)
{
	g_autoptr(GBytes) record = amu_device_to_record(device);

	return amu_store_put(self->store, KIND_BOND, amu_device_get_id(device), g_bytes_get_data(record, NULL),
			     g_bytes_get_size(record), error);
}

/**
 * amu_context_remove_device:
 *
 * Forgets a device's bond on this host. The device keeps its bond with this
 * host until it is reset or wiped.
 *
 * Since: 0.1
 */
gboolean
amu_context_remove_device(AmuContext *self, AmuDevice *device, GError **error)
{
	g_return_val_if_fail(AMU_IS_CONTEXT(self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	return amu_store_delete(self->store, KIND_BOND, amu_device_get_id(device), error);
}

/* ---------------------------------------------------------------- host-side rate limit */

/* ---------------------------------------------------------------- pairing */

typedef struct {
	AmuContext *context;
	char *address;
	char *name;
	AmuConfirmFunc confirm_func;
	gpointer confirm_data;
	AmuConnection *connection;
	AmuChannel *channel;
	AmuPairingRequest *request;
	AmuDevice *device;
	GSource *timeout;
	GCancellable *cancellable;
	gulong cancelled_id;
	gboolean reached_code;
} PairData;

static void
pair_data_free(PairData *data)
{
	if (data->cancelled_id != 0)
		g_cancellable_disconnect(data->cancellable, data->cancelled_id);
	g_clear_object(&data->cancellable);
	if (data->timeout != NULL) {
		g_source_destroy(data->timeout);
		g_source_unref(data->timeout);
	}
	if (data->request != NULL) {
		amu_pairing_request_invalidate(data->request);
		g_object_unref(data->request);
	}
	if (data->channel != NULL)
		amu_channel_set_event_func(data->channel, NULL, NULL);
	if (data->connection != NULL)
		amu_connection_close(data->connection);
	g_clear_pointer(&data->connection, amu_connection_unref);
	g_clear_pointer(&data->channel, amu_channel_unref);
	g_clear_object(&data->device);
	g_clear_object(&data->context);
	g_free(data->address);
	g_free(data->name);
	g_free(data);
}

static gboolean
pair_timeout_cb(gpointer user_data)
{
	PairData *data = user_data;
	g_autoptr(GError) error = g_error_new(AMU_ERROR, AMU_ERROR_TIMED_OUT,
					      "nobody confirmed the code within %u s", data->context->confirm_timeout_s);

	amu_channel_abort(data->channel, error);
	return G_SOURCE_REMOVE;
}

static char *
pair_default_name(AmuContext *self, const Amulet__V1__DeviceHello *hello)
{
	g_autofree char *id = g_malloc(hello->device_id.len * 2 + 1);

	sodium_bin2hex(id, hello->device_id.len * 2 + 1, hello->device_id.data, hello->device_id.len);
	return g_strdup_printf("%s-%.4s", amu_profile_to_string(hello->profile), id);
}

static void
pair_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	GTask *task = user_data;
	PairData *data = g_task_get_task_data(task);
	AmuContext *self = data->context;
	g_autoptr(GError) error = NULL;

	switch (event->type) {
	case AMU_CHANNEL_EVENT_CODE:
		data->reached_code = TRUE;
		data->request = amu_pairing_request_new(channel);
		data->timeout = g_timeout_source_new_seconds(self->confirm_timeout_s);
		g_source_set_callback(data->timeout, pair_timeout_cb, data, NULL);
		g_source_attach(data->timeout, g_main_context_get_thread_default());
		if (data->confirm_func != NULL)
			data->confirm_func(data->request, data->confirm_data);
		else
			amu_pairing_request_reply(data->request, FALSE, FALSE);
		return;
	case AMU_CHANNEL_EVENT_PAIRED: {
		g_autofree char *name = data->name != NULL
						? g_strdup(data->name)
						: pair_default_name(self, amu_channel_get_device_hello(channel));
		data->device = amu_device_new(self, name, data->address, channel);
		if (!amu_context_save_device(self, data->device, &error)) {
			g_prefix_error(&error, "storing the bond: ");
			amu_channel_abort(channel, error);
			return;
		}
		amu_backoff_clear(self->store, KIND_PAIR_FAILURES, data->address, NULL);
		return;
	}
	case AMU_CHANNEL_EVENT_OPEN: {
		g_autofree char *message = g_strdup_printf("%s was paired with this host", amu_device_get_name(data->device));
		amu_channel_set_event_func(channel, NULL, NULL);
		amu_context_notify(self, AMU_NOTIFICATION_PAIRED, amu_device_get_name(data->device), message);
		g_task_return_pointer(task, g_object_ref(data->device), g_object_unref);
		g_object_unref(task);
		return;
	}
	case AMU_CHANNEL_EVENT_FAILED:
		amu_channel_set_event_func(channel, NULL, NULL);
		if (data->reached_code)
			amu_backoff_record_failure(self->store, KIND_PAIR_FAILURES, data->address, NULL);
		g_task_return_error(task, g_error_copy(event->error));
		g_object_unref(task);
		return;
	case AMU_CHANNEL_EVENT_PAIRING_ATTEMPT:
	case AMU_CHANNEL_EVENT_MESSAGE:
		return;
	}
}

static void
pair_cancelled_cb(GCancellable *cancellable, gpointer user_data)
{
	PairData *data = user_data;
	g_autoptr(GError) error = g_error_new_literal(AMU_ERROR, AMU_ERROR_CANCELLED, "pairing was cancelled");

	/* while the link opens, its own cancellable ends it */
	if (data->channel != NULL)
		amu_channel_abort(data->channel, error);
}

static void
pair_link_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GTask *task = user_data;
	PairData *data = g_task_get_task_data(task);
	AmuContext *self = data->context;
	Amulet__V1__HostHello hello = AMULET__V1__HOST_HELLO__INIT;
	uint8_t owner_key[32];
	g_autoptr(AmuLink) link = NULL;
	GError *error = NULL;

	link = amu_context_open_link_finish(self, result, &error);
	if (link == NULL) {
		g_task_return_error(task, error);
		g_object_unref(task);
		return;
	}
	data->channel = amu_channel_new(AMU_CHANNEL_ROLE_HOST, NULL, NULL);
	amu_channel_set_local_static(data->channel, self->identity);
	hello.protocol_version = AMU_CHANNEL_PROTOCOL_VERSION;
	hello.host_name = self->host_name;
	amu_context_get_signing_keys(self, owner_key, NULL);
	hello.owner_sign_key.data = owner_key;
	hello.owner_sign_key.len = sizeof(owner_key);
	amu_channel_set_host_hello(data->channel, &hello);
	data->connection = amu_connection_new(link, data->channel, AMU_FRAMER_ROLE_CENTRAL);
	amu_channel_set_event_func(data->channel, pair_event_cb, task);
	if (!amu_connection_start(data->connection, &error)) {
		amu_channel_abort(data->channel, error);
		g_clear_error(&error);
		return;
	}
	amu_channel_start(data->channel, AMU_CHANNEL_MODE_PAIR, NULL, NULL);
}

/**
 * amu_context_pair_async:
 * @address: where the device is, e.g. "sim:/tmp/band.sock"
 * @name: (nullable): the owner's name for it; %NULL picks "PROFILE-XXXX"
 * @confirm_func: (scope notified): asks the user to compare the codes
 * @cancellable: (nullable): a #GCancellable
 *
 * Pairs with a device in pairing mode: Noise XX, then the committed
 * six-digit code, which both users must confirm, and the device's
 * disclosure, which the owner must accept. Stores the bond.
 *
 * Since: 0.1
 */
void
amu_context_pair_async(AmuContext *self, const char *address, const char *name, AmuConfirmFunc confirm_func,
		       gpointer confirm_data, GCancellable *cancellable, GAsyncReadyCallback callback,
		       gpointer user_data)
{
	GTask *task = g_task_new(self, cancellable, callback, user_data);
	PairData *data = g_new0(PairData, 1);
	g_autoptr(AmuDevice) existing = NULL;
	uint64_t locked_ms;
	uint32_t failures = 0;

	g_task_set_source_tag(task, amu_context_pair_async);
	g_task_set_task_data(task, data, (GDestroyNotify)pair_data_free);
	data->context = g_object_ref(self);
	data->address = g_strdup(address);
	data->name = g_strdup(name);
	data->confirm_func = confirm_func;
	data->confirm_data = confirm_data;
	if (name != NULL && (existing = amu_context_find_device(self, name, NULL)) != NULL) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_EXISTS,
					"a device called '%s' is already paired: choose another --name", name);
		g_object_unref(task);
		return;
	}
	locked_ms = amu_backoff_remaining(self->store, KIND_PAIR_FAILURES, address, HOST_LOCKOUT_BASE_MS, &failures);
	if (locked_ms > 0) {
		g_task_return_new_error(task, AMU_ERROR, AMU_ERROR_LOCKED_OUT,
					"%u pairings with %s failed: this host waits %" G_GUINT64_FORMAT
					" s before trying again",
					failures, address, (locked_ms + 999) / 1000);
		g_object_unref(task);
		return;
	}
	if (cancellable != NULL) {
		data->cancellable = g_object_ref(cancellable);
		data->cancelled_id = g_cancellable_connect(cancellable, G_CALLBACK(pair_cancelled_cb), data, NULL);
	}
	amu_context_open_link_async(self, address, TRUE, confirm_func, confirm_data, cancellable, pair_link_cb, task);
}

/**
 * amu_context_pair_finish:
 * Returns: (transfer full): the newly bonded #AmuDevice, or %NULL with @error set
 * Since: 0.1
 */
AmuDevice *
amu_context_pair_finish(AmuContext *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(g_task_is_valid(result, self), NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	return g_task_propagate_pointer(G_TASK(result), error);
}

void
amu_sync_ready_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GAsyncResult **out = user_data;
	*out = g_object_ref(result);
}

/**
 * amu_context_pair:
 *
 * The synchronous form of amu_context_pair_async(): runs a private main
 * context until pairing ends. @confirm_func is called from it.
 *
 * Returns: (transfer full): the bonded #AmuDevice, or %NULL with @error set
 * Since: 0.1
 */
AmuDevice *
amu_context_pair(AmuContext *self, const char *address, const char *name, AmuConfirmFunc confirm_func,
		 gpointer confirm_data, GCancellable *cancellable, GError **error)
{
	g_autoptr(GMainContext) context = g_main_context_new();
	g_autoptr(GAsyncResult) result = NULL;
	AmuDevice *device;

	g_main_context_push_thread_default(context);
	amu_context_pair_async(self, address, name, confirm_func, confirm_data, cancellable, amu_sync_ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(context, TRUE);
	device = amu_context_pair_finish(self, result, error);
	g_clear_object(&result);
	/* let the link's sources go before the context does */
	while (g_main_context_pending(context))
		g_main_context_iteration(context, FALSE);
	g_main_context_pop_thread_default(context);
	return device;
}
