/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "peripheral-fixture.h"

static void
message_free(gpointer message)
{
	amulet__v1__message__free_unpacked(message, NULL);
}

static void
device_log_cb(AmuPeripheral *peripheral, const char *line, void *user_data)
{
	PeripheralFixture *f = user_data;
	g_ptr_array_add(f->lines, g_strdup(line));
}

static void
device_confirm_cb(AmuPeripheral *peripheral, unsigned int request, int code, gboolean has_display, void *user_data)
{
	amu_peripheral_confirm(peripheral, request, TRUE);
}

static void
host_confirm_cb(AmuPairingRequest *request, gpointer user_data)
{
	amu_pairing_request_reply(request, TRUE, TRUE);
}

static void
notification_cb(AmuContext *context, int kind, const char *device_name, const char *message, gpointer user_data)
{
	PeripheralFixture *f = user_data;
	g_ptr_array_add(f->notices, g_strdup(message));
}

static void
ready_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	GAsyncResult **out = user_data;
	*out = g_object_ref(result);
}

static gboolean
timeout_cb(gpointer user_data)
{
	PeripheralFixture *f = user_data;
	f->timed_out = TRUE;
	return G_SOURCE_REMOVE;
}

typedef gboolean (*Check)(PeripheralFixture *f, gconstpointer data, guint arg);

static gboolean
iterate_until_full(PeripheralFixture *f, Check check, gconstpointer data, guint arg)
{
	guint id;

	f->timed_out = FALSE;
	id = g_timeout_add(PERIPHERAL_FIXTURE_WAIT_MS, timeout_cb, f);
	while (!check(f, data, arg) && !f->timed_out)
		g_main_context_iteration(NULL, TRUE);
	if (!f->timed_out)
		g_source_remove(id);
	return check(f, data, arg);
}

static gboolean
check_condition(PeripheralFixture *f, gconstpointer data, guint arg)
{
	const PeripheralFixtureCondition *cond = data;
	return (*cond)(f, arg);
}

gboolean
peripheral_fixture_iterate_until(PeripheralFixture *f, PeripheralFixtureCondition cond, guint arg)
{
	return iterate_until_full(f, check_condition, &cond, arg);
}

gboolean
peripheral_fixture_no_connections(PeripheralFixture *f, guint arg)
{
	return f->peripheral == NULL || g_hash_table_size(f->peripheral->conns) == 0;
}

gboolean
peripheral_fixture_answered(PeripheralFixture *f, guint arg)
{
	return f->received->len > arg;
}

static void
start_device(PeripheralFixture *f)
{
	g_autoptr(GError) error = NULL;

	f->peripheral = amu_peripheral_new(f->state_dir, f->profile, &error);
	if (error != NULL)
		g_printerr("  device: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->peripheral);
	amu_peripheral_set_confirm_func(f->peripheral, device_confirm_cb, f);
	amu_peripheral_set_log_func(f->peripheral, device_log_cb, f);
	g_unlink(f->sock);
	CU_ASSERT_TRUE_FATAL(amu_peripheral_listen(f->peripheral, f->sock, 517, &error));
}

void
peripheral_fixture_restart_device(PeripheralFixture *f)
{
	g_clear_pointer(&f->peripheral, amu_peripheral_free);
	start_device(f);
}

static void
pair(PeripheralFixture *f)
{
	g_autoptr(GAsyncResult) result = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *address = g_strdup_printf("sim:%s", f->sock);

	amu_context_pair_async(f->context, address, amu_peripheral_profile_to_string(f->profile), host_confirm_cb,
			       NULL, NULL, ready_cb, &result);
	while (result == NULL)
		g_main_context_iteration(NULL, TRUE);
	f->device = amu_context_pair_finish(f->context, result, &error);
	if (error != NULL)
		g_printerr("  pair: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->device);
}

PeripheralFixture *
peripheral_fixture_new(AmuPeripheralProfile profile)
{
	PeripheralFixture *f = g_new0(PeripheralFixture, 1);
	g_autoptr(GError) error = NULL;
	g_autofree char *data_dir = NULL;

	f->root = g_dir_make_tmp("amu-peripheral-XXXXXX", NULL);
	g_assert(f->root != NULL);
	f->sock = g_build_filename(f->root, "device.sock", NULL);
	f->state_dir = g_build_filename(f->root, "device", NULL);
	data_dir = g_build_filename(f->root, "host", NULL);
	f->profile = profile;
	f->lines = g_ptr_array_new_with_free_func(g_free);
	f->notices = g_ptr_array_new_with_free_func(g_free);
	f->received = g_ptr_array_new_with_free_func(message_free);
	start_device(f);
	f->context = amu_context_new(data_dir, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->context);
	g_signal_connect(f->context, "notification", G_CALLBACK(notification_cb), f);
	f->owner_sk = sodium_malloc(AMU_COMMAND_SECRETKEYBYTES);
	amu_context_get_signing_keys(f->context, NULL, f->owner_sk);
	pair(f);
	return f;
}

/* the device's messages to the host, copied: they are freed after the event */
static void
host_event_cb(AmuChannel *channel, const AmuChannelEvent *event, void *user_data)
{
	PeripheralFixture *f = user_data;
	size_t len;
	g_autofree uint8_t *packed = NULL;

	if (event->type != AMU_CHANNEL_EVENT_MESSAGE)
		return;
	len = amulet__v1__message__get_packed_size(event->message);
	packed = g_malloc(len + 1);
	amulet__v1__message__pack(event->message, packed);
	g_ptr_array_add(f->received, amulet__v1__message__unpack(NULL, len, packed));
}

void
peripheral_fixture_connect(PeripheralFixture *f)
{
	g_autoptr(GError) error = NULL;
	const Amulet__V1__DeviceHello *hello;

	f->session = amu_device_connect(f->device, NULL, &error);
	if (error != NULL)
		g_printerr("  connect: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->session);
	f->channel = amu_session_get_channel(f->session);
	amu_channel_set_event_func(f->channel, host_event_cb, f);
	hello = amu_channel_get_device_hello(f->channel);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hello);
	CU_ASSERT_EQUAL_FATAL(hello->device_id.len, AMU_CHANNEL_DEVICE_ID_BYTES);
	CU_ASSERT_EQUAL_FATAL(hello->sign_key.len, AMU_COMMAND_PUBLICKEYBYTES);
	memcpy(f->device_id, hello->device_id.data, sizeof(f->device_id));
	memcpy(f->sign_key, hello->sign_key.data, sizeof(f->sign_key));
}

void
peripheral_fixture_close_session(PeripheralFixture *f)
{
	if (f->session == NULL)
		return;
	amu_session_close(f->session);
	peripheral_fixture_drop_session(f);
}

void
peripheral_fixture_drop_session(PeripheralFixture *f)
{
	g_clear_object(&f->session);
	f->channel = NULL;
	/* the device drops its side of the link a moment later */
	CU_ASSERT_TRUE(peripheral_fixture_iterate_until(f, peripheral_fixture_no_connections, 0));
}

const Amulet__V1__Message *
peripheral_fixture_send(PeripheralFixture *f, const Amulet__V1__Message *message)
{
	g_autoptr(GError) error = NULL;
	guint before = f->received->len;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f->channel);
	CU_ASSERT_TRUE_FATAL(amu_channel_send(f->channel, message, &error));
	if (!peripheral_fixture_iterate_until(f, peripheral_fixture_answered, before)) {
		CU_FAIL("the device did not answer in time");
		return NULL;
	}
	return g_ptr_array_index(f->received, before);
}

const char *
peripheral_fixture_find_line(PeripheralFixture *f, guint from, const char *needle)
{
	for (guint i = from; i < f->lines->len; i++) {
		const char *line = g_ptr_array_index(f->lines, i);
		if (strstr(line, needle) != NULL)
			return line;
	}
	return NULL;
}

static gboolean
check_line(PeripheralFixture *f, gconstpointer data, guint arg)
{
	return peripheral_fixture_find_line(f, arg, data) != NULL;
}

const char *
peripheral_fixture_wait_line(PeripheralFixture *f, guint from, const char *needle)
{
	iterate_until_full(f, check_line, needle, from);
	return peripheral_fixture_find_line(f, from, needle);
}

void
peripheral_fixture_free(PeripheralFixture *f)
{
	peripheral_fixture_close_session(f);
	g_clear_object(&f->device);
	CU_ASSERT_TRUE(peripheral_fixture_iterate_until(f, peripheral_fixture_no_connections, 0));
	while (g_main_context_pending(NULL))
		g_main_context_iteration(NULL, FALSE);
	g_clear_object(&f->context);
	g_clear_pointer(&f->peripheral, amu_peripheral_free);
	sodium_free(f->owner_sk);
	g_ptr_array_unref(f->lines);
	g_ptr_array_unref(f->notices);
	g_ptr_array_unref(f->received);
	amu_test_remove_tree(f->root);
	g_free(f->root);
	g_free(f->sock);
	g_free(f->state_dir);
	g_free(f);
}
