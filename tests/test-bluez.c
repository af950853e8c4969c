/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amu-bluez.h"
#include "amu-framer.h"
#include "amu-test.h"
#include "amulet/amu-error.h"

/* The BlueZ link against tests/bluez/emulator.py: a mock bluetoothd on a
 * private bus whose devices are amulet-sim processes. Each integration test
 * gets a fresh emulator, bus and simulator (set up and torn down around the
 * test, also when it fails), so no state leaks from one to the next. */

#define PYTHON "/usr/bin/python3"
#define MOCK_PATH "/"
#define MOCK_IFACE "org.freedesktop.DBus.Mock"
#define ADAPTER "hci0"
#define DEVICE_ADDRESS "C0:FF:EE:00:00:01"
#define OTHER_ADDRESS "C0:FF:EE:00:00:02"
/* a guard against hanging forever, not a measurement */
#define GUARD_MS 20000

/* ------------------------------------------------------------ helpers */

static gboolean
guard_expired_cb(gpointer user_data)
{
	*(gboolean *)user_data = TRUE;
	return G_SOURCE_REMOVE;
}

/* Runs the main loop until @done says so for @data; FALSE if the guard ran
 * out first. */
static gboolean
wait_until(gboolean (*done)(gconstpointer data), gconstpointer data)
{
	gboolean expired = FALSE;
	guint guard = g_timeout_add(GUARD_MS, guard_expired_cb, &expired);

	while (!done(data) && !expired)
		g_main_context_iteration(NULL, TRUE);
	if (!expired)
		g_source_remove(guard);
	return done(data);
}

static gboolean
flag_is_set(gconstpointer data)
{
	return *(const gboolean *)data;
}

static gboolean
wait_for_flag(const gboolean *flag)
{
	return wait_until(flag_is_set, flag);
}

static void
store_result_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	*(GAsyncResult **)user_data = g_object_ref(result);
}

static gboolean
result_is_stored(gconstpointer data)
{
	return *(GAsyncResult *const *)data != NULL;
}

static GAsyncResult *
wait_for_result(GAsyncResult **slot)
{
	wait_until(result_is_stored, slot);
	return *slot;
}

static GPtrArray *
scan(const char *adapter, guint timeout_ms, AmuBluezFoundFunc found, gpointer found_data,
     GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_bluez_scan_async(adapter, timeout_ms, found, found_data, NULL, store_result_cb, &result);
	if (wait_for_result(&result) == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_TIMED_OUT, "the scan never finished");
		return NULL;
	}
	return amu_bluez_scan_finish(result, error);
}

typedef struct {
	gboolean accept;
	gboolean later; /* answer from an idle callback, not from inside the agent call */
	guint calls;
	guint32 value;
	char address[18];
} PasskeyAnswer;

static gboolean
reply_later_cb(gpointer user_data)
{
	AmuBluezPasskey *passkey = user_data;

	amu_bluez_passkey_reply(passkey, TRUE);
	return G_SOURCE_REMOVE;
}

static void
passkey_cb(AmuBluezPasskey *passkey, gpointer user_data)
{
	PasskeyAnswer *answer = user_data;

	answer->calls++;
	answer->value = amu_bluez_passkey_get_value(passkey);
	g_strlcpy(answer->address, amu_bluez_passkey_get_address(passkey), sizeof(answer->address));
	if (answer->later && answer->accept) {
		g_idle_add_full(G_PRIORITY_DEFAULT, reply_later_cb, amu_bluez_passkey_ref(passkey),
				(GDestroyNotify)amu_bluez_passkey_unref);
		return;
	}
	amu_bluez_passkey_reply(passkey, answer->accept);
	/* a second answer is ignored: the first one stands */
	amu_bluez_passkey_reply(passkey, !answer->accept);
}

/* Connects and waits for the outcome: the link, or NULL with @error set
 * (also when the guard runs out) */
static AmuLink *
connect_full(const char *spec, gboolean pair, AmuBluezPasskeyFunc func, gpointer func_data,
	     GCancellable *cancellable, GError **error)
{
	g_autoptr(GAsyncResult) result = NULL;

	amu_link_bluez_connect_async(spec, pair, func, func_data, cancellable, store_result_cb,
				     &result);
	if (wait_for_result(&result) == NULL) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_TIMED_OUT, "connect never finished");
		return NULL;
	}
	return amu_link_bluez_connect_finish(result, error);
}

static AmuLink *
connect_link(const char *spec, gboolean pair, PasskeyAnswer *answer, GError **error)
{
	return connect_full(spec, pair, answer != NULL ? passkey_cb : NULL, answer, NULL, error);
}

/* The link to @spec, which must come up */
static AmuLink *
expect_link(const char *spec, gboolean pair, PasskeyAnswer *answer)
{
	g_autoptr(GError) error = NULL;
	AmuLink *link = connect_link(spec, pair, answer, &error);

	if (error != NULL)
		g_printerr("  %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(link);
	return link;
}

/* Connecting to @spec fails with @code: the error, for more checks */
static GError *
expect_connect_error(const char *spec, gboolean pair, AmuBluezPasskeyFunc func, gpointer func_data,
		     GCancellable *cancellable, AmuError code)
{
	GError *error = NULL;
	g_autoptr(AmuLink) link = connect_full(spec, pair, func, func_data, cancellable, &error);

	CU_ASSERT_PTR_NULL(link);
	AMU_ASSERT_ERROR(error, code);
	return error;
}

/* Scanning on @adapter fails with @code: the error, for more checks */
static GError *
expect_scan_error(const char *adapter, AmuError code)
{
	GError *error = NULL;
	g_autoptr(GPtrArray) devices = scan(adapter, 100, NULL, NULL, &error);

	CU_ASSERT_PTR_NULL(devices);
	AMU_ASSERT_ERROR(error, code);
	return error;
}

/* ------------------------------------------------------------ framing peer */

/* A central framer on the link: the handshake is the first exchange a
 * session makes, so reaching OPEN proves datagrams flow both ways. */
typedef struct {
	AmuLink *link;
	AmuFramer *framer;
	gboolean done; /* OPEN, FAILED or closed */
	gboolean closed;
	GError *close_error;
} FramingPeer;

static uint64_t
now_ms(void)
{
	return (uint64_t)(g_get_monotonic_time() / 1000);
}

static void
peer_check(FramingPeer *peer)
{
	AmuFramerState state = amu_framer_get_state(peer->framer);

	if (state == AMU_FRAMER_STATE_OPEN || state == AMU_FRAMER_STATE_FAILED)
		peer->done = TRUE;
}

static void
peer_tx(const uint8_t *datagram, size_t len, void *user_data)
{
	FramingPeer *peer = user_data;
	g_autoptr(GError) error = NULL;

	if (!amu_link_send(peer->link, datagram, len, &error))
		g_printerr("  send failed: %s\n", error->message);
}

static void
peer_rx(AmuLink *link, const uint8_t *buf, size_t len, void *user_data)
{
	FramingPeer *peer = user_data;

	amu_framer_rx(peer->framer, buf, len, now_ms());
	peer_check(peer);
}

static void
peer_closed(AmuLink *link, const GError *error, void *user_data)
{
	FramingPeer *peer = user_data;

	peer->closed = TRUE;
	peer->done = TRUE;
	if (error != NULL && peer->close_error == NULL)
		peer->close_error = g_error_copy(error);
}

static void
peer_init(FramingPeer *peer, AmuLink *link)
{
	memset(peer, 0, sizeof(*peer));
	peer->link = link;
	peer->framer = amu_framer_new(AMU_FRAMER_ROLE_CENTRAL, amu_link_get_att_mtu(link),
				      AMU_FRAMER_WINDOW_MAX);
	amu_framer_set_tx_func(peer->framer, peer_tx, peer, NULL);
	amu_link_set_handlers(link, peer_rx, peer_closed, peer);
}

static void
peer_clear(FramingPeer *peer)
{
	amu_link_set_handlers(peer->link, NULL, NULL, NULL);
	amu_framer_unref(peer->framer);
	g_clear_error(&peer->close_error);
}

/* TRUE if the framing handshake completes over @link */
static gboolean
handshake(AmuLink *link)
{
	FramingPeer peer;
	gboolean open;

	peer_init(&peer, link);
	CU_ASSERT_EQUAL(amu_framer_start(peer.framer, now_ms()), 0);
	wait_for_flag(&peer.done);
	open = amu_framer_get_state(peer.framer) == AMU_FRAMER_STATE_OPEN;
	if (!open)
		g_printerr("  handshake: framer %s, link %s\n",
			   amu_framer_state_to_str(amu_framer_get_state(peer.framer)),
			   peer.closed ? "closed" : "open");
	peer_clear(&peer);
	return open;
}

/* ------------------------------------------------------------ emulator */

typedef struct {
	char *dir;
	char *sim_socket;
	GPid sim_pid;
	GPid other_sim_pid;
	gboolean emulator_started;
	GDBusConnection *bus;
} Emulator;

static Emulator emu;

static gboolean
run_emulator(const char *command, GError **error)
{
	g_autofree char *script = g_build_filename(AMU_TEST_SRCDIR, "tests", "bluez", "emulator.py", NULL);
	g_autofree char *pid = g_strdup_printf("%d", (int)getpid());
	/* --exit-with: a test run killed midway leaves no emulator behind */
	const char *start_argv[] = {PYTHON, script, command, emu.dir, "--exit-with", pid, NULL};
	const char *stop_argv[] = {PYTHON, script, command, emu.dir, NULL};
	const char **argv = strcmp(command, "start") == 0 ? start_argv : stop_argv;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	int status = 0;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
			  error))
		return FALSE;
	if (!g_spawn_check_wait_status(status, error)) {
		g_prefix_error(error, "emulator.py %s: %s%s: ", command, out, err);
		return FALSE;
	}
	return TRUE;
}

/* KEY=VALUE lines of DIR/env into the environment */
static gboolean
load_env(GError **error)
{
	g_autofree char *path = g_build_filename(emu.dir, "env", NULL);
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents(path, &contents, NULL, error))
		return FALSE;
	lines = g_strsplit(contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		char *eq = strchr(lines[i], '=');
		const char *value;
		g_autofree char *unquoted = NULL;

		if (eq == NULL || lines[i][0] == '#')
			continue;
		*eq = '\0';
		value = eq + 1;
		if (value[0] == '\'' || value[0] == '"') {
			unquoted = g_shell_unquote(value, NULL);
			if (unquoted != NULL)
				value = unquoted;
		}
		g_setenv(g_strstrip(lines[i]), value, TRUE);
	}
	return g_getenv("DBUS_SYSTEM_BUS_ADDRESS") != NULL;
}

/* A call to the emulator's mock interface on @path: the reply, or NULL
 * with the error printed */
static GVariant *
mock_call(const char *path, const char *method, GVariant *parameters)
{
	g_autoptr(GError) error = NULL;
	GVariant *reply = g_dbus_connection_call_sync(emu.bus, "org.bluez", path, MOCK_IFACE, method,
						      parameters, NULL, G_DBUS_CALL_FLAGS_NONE, 10000,
						      NULL, &error);

	if (reply == NULL)
		g_printerr("  %s: %s\n", method, error->message);
	return reply;
}

static gboolean
mock(const char *method, GVariant *parameters)
{
	g_autoptr(GVariant) reply = mock_call(MOCK_PATH, method, parameters);

	return reply != NULL;
}

/* in the child: a test killed midway takes its simulators with it */
static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static GPid
start_sim(const char *socket_path, const char *state)
{
	g_autofree char *sim = g_build_filename(AMU_TEST_BUILDDIR, "tools", "amulet-sim", NULL);
	g_autofree char *state_dir = g_build_filename(emu.dir, state, NULL);
	const char *argv[] = {sim, "--listen", socket_path, "--state", state_dir, "--profile", "band",
			      NULL};
	g_autoptr(GError) error = NULL;
	GPid pid = 0;

	if (!g_spawn_async(NULL, (char **)argv, NULL,
			   G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
			   die_with_parent, NULL, &pid, &error)) {
		g_printerr("  cannot start amulet-sim: %s\n", error->message);
		return 0;
	}
	/* it listens once the socket exists */
	for (int i = 0; i < 200 && !g_file_test(socket_path, G_FILE_TEST_EXISTS); i++)
		g_usleep(25000);
	return pid;
}

static void
stop_sim(GPid *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	g_spawn_close_pid(*pid);
	*pid = 0;
}

static void
emulator_setup(void)
{
	g_autoptr(GError) error = NULL;

	memset(&emu, 0, sizeof(emu));
	emu.dir = g_dir_make_tmp("amu-bluez-XXXXXX", &error);
	if (emu.dir == NULL) {
		g_printerr("  %s\n", error->message);
		return;
	}
	emu.emulator_started = run_emulator("start", &error);
	if (!emu.emulator_started || !load_env(&error)) {
		g_printerr("  cannot start the BlueZ emulator: %s\n",
			   error != NULL ? error->message : "no DBUS_SYSTEM_BUS_ADDRESS in env");
		return;
	}
	emu.bus = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, &error);
	if (emu.bus == NULL) {
		g_printerr("  cannot reach the emulator's bus: %s\n", error->message);
		return;
	}
	/* the emulator's bus goes away at teardown: that must not end us */
	g_dbus_connection_set_exit_on_close(emu.bus, FALSE);
	emu.sim_socket = g_build_filename(emu.dir, "sim.sock", NULL);
	emu.sim_pid = start_sim(emu.sim_socket, "sim.state");
}

/* Waits until the last reference to the bus connection is gone, so the
 * next test's g_bus_get() connects to its own emulator. */
static gboolean
weak_ref_is_gone(gconstpointer data)
{
	GObject *alive = g_weak_ref_get((GWeakRef *)data);

	if (alive == NULL)
		return TRUE;
	g_object_unref(alive);
	return FALSE;
}

static void
drop_bus(GDBusConnection **bus)
{
	GWeakRef ref;

	if (*bus == NULL)
		return;
	g_weak_ref_init(&ref, *bus);
	g_clear_object(bus);
	if (!wait_until(weak_ref_is_gone, &ref))
		g_printerr("  the system bus connection is still referenced\n");
	g_weak_ref_clear(&ref);
}

static void
emulator_teardown(void)
{
	stop_sim(&emu.sim_pid);
	stop_sim(&emu.other_sim_pid);
	if (emu.emulator_started) {
		g_autoptr(GError) error = NULL;
		if (!run_emulator("stop", &error))
			g_printerr("  %s\n", error->message);
	}
	drop_bus(&emu.bus);
	while (g_main_context_iteration(NULL, FALSE))
		;
	if (emu.dir != NULL)
		amu_test_remove_tree(emu.dir);
	g_free(emu.dir);
	g_free(emu.sim_socket);
	g_unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
	memset(&emu, 0, sizeof(emu));
}

/* hci0 with the simulator behind DEVICE_ADDRESS, advertising */
static gboolean
add_device(const char *address, const char *alias, const char *sim_socket, gboolean pairing)
{
	/* no advertise file: the device advertises what SetAdvertisement says */
	return mock("AddAmuletDevice", g_variant_new("(sssss)", ADAPTER, address, alias, sim_socket, "")) &&
	       mock("SetAdvertisement", g_variant_new("(sbs)", address, pairing, "band"));
}

static gboolean
standard_setup(gboolean pairing)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(emu.bus);
	CU_ASSERT_TRUE_FATAL(emu.sim_pid > 0);
	CU_ASSERT_TRUE_FATAL(mock("AddAdapter", g_variant_new("(ss)", ADAPTER, "amulet-host")));
	CU_ASSERT_TRUE_FATAL(add_device(DEVICE_ADDRESS, "Amulet Band", emu.sim_socket, pairing));
	return TRUE;
}

/* The standard setup, then a link to the device, paired through @answer */
static AmuLink *
paired_link(PasskeyAnswer *answer)
{
	standard_setup(TRUE);
	return expect_link(DEVICE_ADDRESS, TRUE, answer);
}

static guint32
last_passkey(const char *address)
{
	g_autoptr(GVariant) reply =
		mock_call(MOCK_PATH, "GetLastPasskey", g_variant_new("(s)", address));
	guint32 value = G_MAXUINT32;

	if (reply == NULL)
		return value;
	if (g_variant_is_of_type(reply, G_VARIANT_TYPE("(u)")))
		g_variant_get(reply, "(u)", &value);
	else if (g_variant_is_of_type(reply, G_VARIANT_TYPE("(i)")))
		g_variant_get(reply, "(i)", (gint32 *)&value);
	return value;
}

/* the named counter of GetCounters (a dict of counts), -1 if missing */
static gint64
counter(const char *address, const char *name)
{
	g_autoptr(GVariant) reply = mock_call(MOCK_PATH, "GetCounters", g_variant_new("(s)", address));
	g_autoptr(GVariant) dict = NULL;
	g_autoptr(GVariant) value = NULL;

	if (reply == NULL)
		return -1;
	dict = g_variant_get_child_value(reply, 0);
	value = g_variant_lookup_value(dict, name, NULL);
	if (value == NULL)
		return -1;
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARIANT)) {
		GVariant *inner = g_variant_get_variant(value);
		g_variant_unref(value);
		value = inner;
	}
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_UINT32))
		return g_variant_get_uint32(value);
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_INT32))
		return g_variant_get_int32(value);
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_UINT64))
		return (gint64)g_variant_get_uint64(value);
	if (g_variant_is_of_type(value, G_VARIANT_TYPE_INT64))
		return g_variant_get_int64(value);
	return -1;
}

/* ------------------------------------------------------------ address parsing */

static void
expect_parse(const char *spec, const char *adapter, const char *address)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *got_adapter = NULL;
	g_autofree char *got_address = NULL;

	CU_ASSERT_TRUE_FATAL(amu_bluez_parse_address(spec, &got_adapter, &got_address, &error));
	CU_ASSERT_PTR_NULL(error);
	CU_ASSERT_STRING_EQUAL(got_address, address);
	if (adapter == NULL) {
		CU_ASSERT_PTR_NULL(got_adapter);
	} else {
		CU_ASSERT_STRING_EQUAL(got_adapter, adapter);
	}
}

static void
expect_parse_error(const char *spec)
{
	g_autoptr(GError) error = NULL;
	char *adapter = (char *)"untouched";
	char *address = (char *)"untouched";

	CU_ASSERT_FALSE(amu_bluez_parse_address(spec, &adapter, &address, &error));
	AMU_ASSERT_ERROR(error, AMU_ERROR_INVALID_ARGUMENT);
	/* the message names both accepted forms */
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "AA:BB:CC:DD:EE:FF"));
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "hciN/AA:BB:CC:DD:EE:FF"));
	CU_ASSERT_STRING_EQUAL(adapter, "untouched");
	CU_ASSERT_STRING_EQUAL(address, "untouched");
}

static void
test_parse_plain(void)
{
	expect_parse("C0:FF:EE:00:00:01", NULL, "C0:FF:EE:00:00:01");
}

static void
test_parse_lower_case(void)
{
	expect_parse("c0:ff:ee:0a:bc:de", NULL, "C0:FF:EE:0A:BC:DE");
}

static void
test_parse_with_adapter(void)
{
	expect_parse("hci0/C0:FF:EE:00:00:01", "hci0", "C0:FF:EE:00:00:01");
	expect_parse("hci12/aa:bb:cc:dd:ee:ff", "hci12", "AA:BB:CC:DD:EE:FF");
}

static void
test_parse_empty(void)
{
	expect_parse_error("");
}

static void
test_parse_too_short(void)
{
	expect_parse_error("C0:FF:EE:00:00");
	expect_parse_error("C0:FF:EE:00:00:1");
}

static void
test_parse_too_long(void)
{
	expect_parse_error("C0:FF:EE:00:00:01:02");
	expect_parse_error("C0:FF:EE:00:00:011");
}

static void
test_parse_wrong_separator(void)
{
	expect_parse_error("C0-FF-EE-00-00-01");
	expect_parse_error("C0FFEE000001");
}

static void
test_parse_not_hex(void)
{
	expect_parse_error("G0:FF:EE:00:00:01");
}

static void
test_parse_bad_adapter(void)
{
	expect_parse_error("/C0:FF:EE:00:00:01");
	expect_parse_error("hci/C0:FF:EE:00:00:01");
	expect_parse_error("hciX/C0:FF:EE:00:00:01");
	expect_parse_error("usb0/C0:FF:EE:00:00:01");
}

static void
test_parse_adapter_without_address(void)
{
	expect_parse_error("hci0/");
	expect_parse_error("hci0");
}

static void
test_parse_extra_path(void)
{
	expect_parse_error("hci0/hci1/C0:FF:EE:00:00:01");
}

/* bad arguments are reported through the async call, before any bus use */
static void
test_connect_bad_spec(void)
{
	g_autoptr(GError) error = expect_connect_error("not-an-address", FALSE, NULL, NULL, NULL,
						       AMU_ERROR_INVALID_ARGUMENT);
}

static void
test_scan_bad_adapter(void)
{
	g_autoptr(GError) error = expect_scan_error("bluetooth0", AMU_ERROR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------ no bluetoothd */

/* A private bus with no org.bluez on it: what a host without bluetoothd
 * looks like. */
static void
test_no_bluetoothd(void)
{
	const char *argv[] = {"dbus-daemon", "--session", "--nofork", "--print-address=1", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) scan_error = NULL;
	g_autoptr(GError) connect_error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	g_autoptr(AmuLink) link = NULL;
	g_autoptr(GDBusConnection) bus = NULL;
	g_autofree char *address = NULL;
	GPid pid = 0;
	int out = -1;
	char buf[512];
	ssize_t n;

	if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
				      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL,
				      die_with_parent, NULL, &pid,
				      NULL, &out, NULL, &error)) {
		CU_FAIL("cannot start dbus-daemon");
		g_printerr("  %s\n", error->message);
		return;
	}
	n = read(out, buf, sizeof(buf) - 1);
	close(out);
	if (n > 0) {
		buf[n] = '\0';
		address = g_strdup(g_strstrip(buf));
		g_setenv("DBUS_SYSTEM_BUS_ADDRESS", address, TRUE);
		bus = g_bus_get_sync(G_BUS_TYPE_SYSTEM, NULL, NULL);
		if (bus != NULL)
			g_dbus_connection_set_exit_on_close(bus, FALSE);
		devices = scan(NULL, 100, NULL, NULL, &scan_error);
		link = connect_link(DEVICE_ADDRESS, FALSE, NULL, &connect_error);
	}
	CU_ASSERT_PTR_NOT_NULL(address);
	CU_ASSERT_PTR_NOT_NULL(bus);
	CU_ASSERT_PTR_NULL(devices);
	CU_ASSERT_PTR_NULL(link);
	if (scan_error != NULL) {
		AMU_ASSERT_ERROR(scan_error, AMU_ERROR_NOT_SUPPORTED);
		CU_ASSERT_PTR_NOT_NULL(strstr(scan_error->message, "bluetoothd is not running"));
		CU_ASSERT_PTR_NOT_NULL(strstr(scan_error->message, "systemctl start bluetooth"));
	} else {
		CU_FAIL("the scan did not fail");
	}
	if (connect_error != NULL) {
		AMU_ASSERT_ERROR(connect_error, AMU_ERROR_NOT_SUPPORTED);
		CU_ASSERT_PTR_NOT_NULL(strstr(connect_error->message, "bluetoothd is not running"));
	} else {
		CU_FAIL("connect did not fail");
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	g_spawn_close_pid(pid);
	drop_bus(&bus);
	g_unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

/* ------------------------------------------------------------ scanning */

typedef struct {
	guint calls;
	guint other_calls;
	gboolean removed_other;
} FoundLog;

static void
found_cb(const AmuBluezDevice *device, gpointer user_data)
{
	FoundLog *log = user_data;

	if (g_strcmp0(device->address, DEVICE_ADDRESS) == 0)
		log->calls++;
	if (g_strcmp0(device->address, OTHER_ADDRESS) == 0)
		log->other_calls++;
}

static const AmuBluezDevice *
find_device(GPtrArray *devices, const char *address)
{
	for (guint i = 0; devices != NULL && i < devices->len; i++) {
		const AmuBluezDevice *device = g_ptr_array_index(devices, i);
		if (g_strcmp0(device->address, address) == 0)
			return device;
	}
	return NULL;
}

static void
test_scan_finds_device(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	const AmuBluezDevice *device;
	FoundLog log = {0};

	standard_setup(TRUE);
	devices = scan(NULL, 1500, found_cb, &log, &error);
	CU_ASSERT_PTR_NULL(error);
	if (error != NULL)
		g_printerr("  %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(devices);
	device = find_device(devices, DEVICE_ADDRESS);
	CU_ASSERT_PTR_NOT_NULL_FATAL(device);
	CU_ASSERT_STRING_EQUAL(device->adapter, ADAPTER);
	CU_ASSERT_TRUE(device->amulet);
	CU_ASSERT_TRUE(device->has_rssi);
	CU_ASSERT_TRUE(device->rssi < 0);
	CU_ASSERT_TRUE(device->pairing_mode);
	CU_ASSERT_STRING_EQUAL(device->profile, "band");
	CU_ASSERT_STRING_EQUAL(device->name, "Amulet Band");
	CU_ASSERT_FALSE(device->paired);
	CU_ASSERT_TRUE(log.calls >= 1);
}

static void
test_scan_pairing_flag_clear(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	const AmuBluezDevice *device;

	standard_setup(FALSE);
	devices = scan(ADAPTER, 1000, NULL, NULL, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(devices);
	device = find_device(devices, DEVICE_ADDRESS);
	CU_ASSERT_PTR_NOT_NULL_FATAL(device);
	CU_ASSERT_FALSE(device->pairing_mode);
}

static gboolean
remove_other_cb(gpointer user_data)
{
	FoundLog *log = user_data;

	log->removed_other = mock("RemoveAmuletDevice", g_variant_new("(s)", OTHER_ADDRESS));
	return G_SOURCE_REMOVE;
}

static void
found_then_remove_cb(const AmuBluezDevice *device, gpointer user_data)
{
	FoundLog *log = user_data;

	found_cb(device, user_data);
	if (g_strcmp0(device->address, OTHER_ADDRESS) == 0 && log->other_calls == 1)
		g_idle_add(remove_other_cb, log);
}

static void
test_scan_leaves_out_removed(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devices = NULL;
	g_autofree char *other_socket = g_build_filename(emu.dir, "other.sock", NULL);
	FoundLog log = {0};

	standard_setup(TRUE);
	emu.other_sim_pid = start_sim(other_socket, "other.state");
	CU_ASSERT_TRUE_FATAL(add_device(OTHER_ADDRESS, "Other Band", other_socket, TRUE));
	devices = scan(NULL, 1500, found_then_remove_cb, &log, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(devices);
	/* it was seen, then went away while the scan ran */
	CU_ASSERT_TRUE(log.other_calls >= 1);
	CU_ASSERT_TRUE(log.removed_other);
	CU_ASSERT_PTR_NULL(find_device(devices, OTHER_ADDRESS));
	CU_ASSERT_PTR_NOT_NULL(find_device(devices, DEVICE_ADDRESS));
}

static void
test_scan_missing_adapter(void)
{
	g_autoptr(GError) error = NULL;

	standard_setup(TRUE);
	error = expect_scan_error("hci7", AMU_ERROR_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "hci7"));
}

static void
test_scan_no_adapter(void)
{
	g_autoptr(GError) error = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(emu.bus);
	error = expect_scan_error(NULL, AMU_ERROR_NOT_FOUND);
}

static void
cancel_on_found_cb(const AmuBluezDevice *device, gpointer user_data)
{
	g_cancellable_cancel(user_data);
}

/* cancelled right away, and cancelled while discovery runs */
static void
test_scan_cancelled(void)
{
	for (int i = 0; i < 2; i++) {
		g_autoptr(GCancellable) cancellable = g_cancellable_new();
		g_autoptr(GAsyncResult) result = NULL;
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) devices = NULL;

		if (i == 0)
			standard_setup(TRUE);
		/* a scan far longer than the guard: only the cancel can end it */
		amu_bluez_scan_async(NULL, 10 * GUARD_MS, i == 0 ? NULL : cancel_on_found_cb,
				     cancellable, cancellable, store_result_cb, &result);
		if (i == 0)
			g_cancellable_cancel(cancellable);
		CU_ASSERT_PTR_NOT_NULL_FATAL(wait_for_result(&result));
		devices = amu_bluez_scan_finish(result, &error);
		CU_ASSERT_PTR_NULL(devices);
		AMU_ASSERT_ERROR(error, AMU_ERROR_CANCELLED);
	}
}

/* ------------------------------------------------------------ connecting */

static void
test_pair_and_handshake(void)
{
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	link = paired_link(&answer);
	CU_ASSERT_EQUAL(answer.calls, 1);
	CU_ASSERT_STRING_EQUAL(answer.address, DEVICE_ADDRESS);
	CU_ASSERT_TRUE(answer.value <= 999999);
	CU_ASSERT_EQUAL(answer.value, last_passkey(DEVICE_ADDRESS));
	CU_ASSERT_STRING_EQUAL(amu_link_get_description(link), "bluez:" ADAPTER "/" DEVICE_ADDRESS);
	CU_ASSERT_EQUAL(amu_link_get_att_mtu(link), 517);
	CU_ASSERT_TRUE(handshake(link));
	/* the datagrams went through the acquired sockets */
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "acquire_write"), 1);
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "acquire_notify"), 1);
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "write_value"), 0);
}

/* the answer may come later from the main loop, as a user's would */
static void
test_pair_answer_later(void)
{
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE, .later = TRUE};

	standard_setup(TRUE);
	link = expect_link("hci0/c0:ff:ee:00:00:01", TRUE, &answer);
	CU_ASSERT_EQUAL(answer.calls, 1);
	CU_ASSERT_TRUE(handshake(link));
}

/* once bonded, a connection without pairing works, and asks nothing */
static void
test_reconnect_after_pairing(void)
{
	g_autoptr(AmuLink) first = NULL;
	g_autoptr(AmuLink) second = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	first = paired_link(&answer);
	g_clear_pointer(&first, amu_link_unref);
	/* the Disconnect of the close goes out first */
	for (int i = 0; i < 50; i++)
		g_main_context_iteration(NULL, FALSE);
	second = expect_link(DEVICE_ADDRESS, FALSE, &answer);
	CU_ASSERT_EQUAL(answer.calls, 1);
	CU_ASSERT_TRUE(handshake(second));
}

static void
test_pair_rejected(void)
{
	g_autoptr(GError) error = NULL;
	PasskeyAnswer answer = {.accept = FALSE};

	standard_setup(TRUE);
	error = expect_connect_error(DEVICE_ADDRESS, TRUE, passkey_cb, &answer, NULL,
				     AMU_ERROR_REJECTED);
	CU_ASSERT_EQUAL(answer.calls, 1);
}

static void
test_connect_unpaired(void)
{
	g_autoptr(GError) error = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	standard_setup(TRUE);
	error = expect_connect_error(DEVICE_ADDRESS, FALSE, passkey_cb, &answer, NULL,
				     AMU_ERROR_AUTH_FAILED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "unpair and pair again"));
	CU_ASSERT_EQUAL(answer.calls, 0);
}

static void
test_connect_unknown_device(void)
{
	g_autoptr(GError) error = NULL;

	standard_setup(TRUE);
	/* not advertising: the short discovery gives up */
	error = expect_connect_error("C0:FF:EE:99:99:99", FALSE, NULL, NULL, NULL,
				     AMU_ERROR_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "amulet scan"));
}

static void
test_fallback_write_value(void)
{
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	standard_setup(TRUE);
	CU_ASSERT_TRUE_FATAL(
		mock("SetAcquireSupported", g_variant_new("(sb)", DEVICE_ADDRESS, FALSE)));
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "write_value"), 0);
	link = expect_link(DEVICE_ADDRESS, TRUE, &answer);
	CU_ASSERT_TRUE(handshake(link));
	CU_ASSERT_TRUE(counter(DEVICE_ADDRESS, "write_value") >= 1);
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "start_notify"), 1);
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "acquire_notify"), 0);
}

/* without the sockets, the MTU comes from the characteristic */
static void
test_fallback_mtu(void)
{
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE};
	uint8_t datagram[200] = {0};

	standard_setup(TRUE);
	CU_ASSERT_TRUE_FATAL(
		mock("SetAcquireSupported", g_variant_new("(sb)", DEVICE_ADDRESS, FALSE)));
	CU_ASSERT_TRUE_FATAL(mock("SetMtu", g_variant_new("(sq)", DEVICE_ADDRESS, 64)));
	link = expect_link(DEVICE_ADDRESS, TRUE, &answer);
	CU_ASSERT_EQUAL(amu_link_get_att_mtu(link), 64);
	CU_ASSERT_FALSE(amu_link_send(link, datagram, 62, NULL));
	CU_ASSERT_TRUE(handshake(link));
}

/* the smaller MTU of the two sockets; a datagram must fit in it */
static void
test_acquired_mtu(void)
{
	g_autoptr(GError) send_error = NULL;
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE};
	uint8_t datagram[200] = {0};

	standard_setup(TRUE);
	CU_ASSERT_TRUE_FATAL(mock("SetMtu", g_variant_new("(sq)", DEVICE_ADDRESS, 185)));
	link = expect_link(DEVICE_ADDRESS, TRUE, &answer);
	CU_ASSERT_EQUAL(amu_link_get_att_mtu(link), 185);
	CU_ASSERT_FALSE(amu_link_send(link, datagram, 183, &send_error));
	CU_ASSERT_PTR_NOT_NULL(send_error);
	CU_ASSERT_TRUE(handshake(link));
}

static void
test_pair_failed(void)
{
	g_autoptr(GError) error = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	standard_setup(TRUE);
	CU_ASSERT_TRUE_FATAL(mock("SetPairingResult", g_variant_new("(ss)", DEVICE_ADDRESS,
								    "org.bluez.Error.ConnectionAttemptFailed")));
	error = expect_connect_error(DEVICE_ADDRESS, TRUE, passkey_cb, &answer, NULL,
				     AMU_ERROR_AUTH_FAILED);
	/* BlueZ's reason is kept for the user */
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "org.bluez.Error.ConnectionAttemptFailed"));
}

/* pairing an already bonded device again works, and the first agent was
 * unregistered (bluetoothd allows one agent per client) */
static void
test_pair_twice(void)
{
	g_autoptr(AmuLink) first = NULL;
	g_autoptr(AmuLink) second = NULL;
	PasskeyAnswer answer = {.accept = TRUE};

	first = paired_link(&answer);
	g_clear_pointer(&first, amu_link_unref);
	second = expect_link(DEVICE_ADDRESS, TRUE, &answer);
	CU_ASSERT_EQUAL(counter(DEVICE_ADDRESS, "pairs"), 2);
	CU_ASSERT_TRUE(handshake(second));
}

/* bluetoothd gives up on an unanswered passkey: the request is withdrawn */
typedef struct {
	AmuBluezPasskey *passkey;
	GCancellable *cancel_on_request;
} HeldPasskey;

static void
hold_passkey_cb(AmuBluezPasskey *passkey, gpointer user_data)
{
	HeldPasskey *held = user_data;

	held->passkey = amu_bluez_passkey_ref(passkey);
	if (held->cancel_on_request != NULL)
		g_cancellable_cancel(held->cancel_on_request);
}

static void
test_passkey_withdrawn(void)
{
	g_autoptr(GError) error = NULL;
	HeldPasskey held = {0};

	standard_setup(TRUE);
	CU_ASSERT_TRUE_FATAL(mock("SetPairingTimeout", g_variant_new("(u)", 1)));
	/* (a connect that never finished fails with TIMED_OUT) */
	error = expect_connect_error(DEVICE_ADDRESS, TRUE, hold_passkey_cb, &held, NULL,
				     AMU_ERROR_AUTH_FAILED);
	CU_ASSERT_PTR_NOT_NULL(strstr(error->message, "AuthenticationTimeout"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(held.passkey);
	CU_ASSERT_TRUE(amu_bluez_passkey_is_cancelled(held.passkey));
	/* a late answer is ignored */
	amu_bluez_passkey_reply(held.passkey, TRUE);
	amu_bluez_passkey_unref(held.passkey);
}

/* cancelled while the passkey is shown: bluetoothd's pairing is cancelled
 * too, so pairing again right away works */
static void
test_cancel_during_pairing(void)
{
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuLink) link = NULL;
	PasskeyAnswer answer = {.accept = TRUE};
	HeldPasskey held = {.cancel_on_request = cancellable};

	standard_setup(TRUE);
	/* (a connect that never finished fails with TIMED_OUT) */
	error = expect_connect_error(DEVICE_ADDRESS, TRUE, hold_passkey_cb, &held, cancellable,
				     AMU_ERROR_CANCELLED);
	CU_ASSERT_PTR_NOT_NULL_FATAL(held.passkey);
	CU_ASSERT_TRUE(amu_bluez_passkey_is_cancelled(held.passkey));
	amu_bluez_passkey_unref(held.passkey);
	link = expect_link(DEVICE_ADDRESS, TRUE, &answer);
	CU_ASSERT_EQUAL(answer.calls, 1);
}

static void
test_adapter_powered_off(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GError) connect_error = NULL;
	g_autoptr(GVariant) reply = NULL;
	GVariantBuilder properties;

	standard_setup(TRUE);
	g_variant_builder_init(&properties, G_VARIANT_TYPE_VARDICT);
	g_variant_builder_add(&properties, "{sv}", "Powered", g_variant_new_boolean(FALSE));
	reply = mock_call("/org/bluez/" ADAPTER, "UpdateProperties",
			  g_variant_new("(sa{sv})", "org.bluez.Adapter1", &properties));
	CU_ASSERT_PTR_NOT_NULL_FATAL(reply);
	error = expect_scan_error(NULL, AMU_ERROR_NOT_SUPPORTED);
	CU_ASSERT_STRING_EQUAL(error->message, "hci0 is powered off: bluetoothctl power on");
	connect_error = expect_connect_error("hci0/" DEVICE_ADDRESS, FALSE, NULL, NULL, NULL,
					     AMU_ERROR_NOT_SUPPORTED);
}

/* A paired link with @peer on it, then the emulator's @method on the
 * device: the link must close with DISCONNECTED. */
static AmuLink *
expect_link_lost(FramingPeer *peer, const char *method)
{
	PasskeyAnswer answer = {.accept = TRUE};
	AmuLink *link = paired_link(&answer);

	peer_init(peer, link);
	CU_ASSERT_TRUE(mock(method, g_variant_new("(s)", DEVICE_ADDRESS)));
	wait_for_flag(&peer->closed);
	CU_ASSERT_TRUE(peer->closed);
	CU_ASSERT_PTR_NOT_NULL(peer->close_error);
	if (peer->close_error != NULL)
		AMU_ASSERT_ERROR(peer->close_error, AMU_ERROR_DISCONNECTED);
	return link;
}

/* the device going away while connected ends the link the same way */
static void
test_device_removed(void)
{
	FramingPeer peer;
	g_autoptr(AmuLink) link = expect_link_lost(&peer, "RemoveAmuletDevice");

	peer_clear(&peer);
}

static void
test_drop_connection(void)
{
	FramingPeer peer;
	g_autoptr(AmuLink) link = expect_link_lost(&peer, "DropConnection");

	if (peer.close_error != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(peer.close_error->message, "link to " DEVICE_ADDRESS " lost"));
	/* closed means closed: nothing more goes out */
	CU_ASSERT_FALSE(amu_link_send(link, (const uint8_t *)"x", 1, NULL));
	peer_clear(&peer);
}

static void
test_connect_cancelled(void)
{
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autoptr(GAsyncResult) result = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuLink) link = NULL;

	standard_setup(TRUE);
	/* an unknown device: connect would wait in discovery */
	amu_link_bluez_connect_async("C0:FF:EE:99:99:98", FALSE, NULL, NULL, cancellable,
				     store_result_cb, &result);
	for (int i = 0; i < 20; i++)
		g_main_context_iteration(NULL, FALSE);
	g_cancellable_cancel(cancellable);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wait_for_result(&result));
	link = amu_link_bluez_connect_finish(result, &error);
	CU_ASSERT_PTR_NULL(link);
	AMU_ASSERT_ERROR(error, AMU_ERROR_CANCELLED);
}

/* ------------------------------------------------------------ main */

static const AmuTestCase unit_cases[] = {
	{"plain address", test_parse_plain},
	{"lower-case address is upper-cased", test_parse_lower_case},
	{"address with adapter", test_parse_with_adapter},
	{"empty spec", test_parse_empty},
	{"address too short", test_parse_too_short},
	{"address too long", test_parse_too_long},
	{"wrong separator", test_parse_wrong_separator},
	{"not hex", test_parse_not_hex},
	{"bad adapter name", test_parse_bad_adapter},
	{"adapter without address", test_parse_adapter_without_address},
	{"more than one slash", test_parse_extra_path},
	{"connect with a bad spec fails before the bus", test_connect_bad_spec},
	{"scan with a bad adapter name fails before the bus", test_scan_bad_adapter},
	{"no bluetoothd on the bus", test_no_bluetoothd},
};

static const AmuTestCase emulator_cases[] = {
	{"scan finds the device with RSSI and pairing flag", test_scan_finds_device},
	{"scan reports a clear pairing flag", test_scan_pairing_flag_clear},
	{"a device removed during the scan is left out", test_scan_leaves_out_removed},
	{"scan on a missing adapter", test_scan_missing_adapter},
	{"scan with no adapter", test_scan_no_adapter},
	{"scan cancelled", test_scan_cancelled},
	{"pair, connect and framing handshake", test_pair_and_handshake},
	{"passkey answered later from the main loop", test_pair_answer_later},
	{"reconnect without pairing once bonded", test_reconnect_after_pairing},
	{"pairing rejected by the user", test_pair_rejected},
	{"connect without pairing to an unbonded device", test_connect_unpaired},
	{"connect to a device that is not there", test_connect_unknown_device},
	{"WriteValue fallback when acquiring is not supported", test_fallback_write_value},
	{"WriteValue fallback takes the characteristic's MTU", test_fallback_mtu},
	{"acquired sockets set the MTU; larger datagrams are refused", test_acquired_mtu},
	{"pairing failing in bluetoothd", test_pair_failed},
	{"pairing a bonded device again", test_pair_twice},
	{"an unanswered passkey is withdrawn", test_passkey_withdrawn},
	{"cancelled while the passkey is shown", test_cancel_during_pairing},
	{"adapter powered off", test_adapter_powered_off},
	{"dropped connection closes the link", test_drop_connection},
	{"device removed while connected closes the link", test_device_removed},
	{"connect cancelled", test_connect_cancelled},
};

static gboolean
have_dbusmock(void)
{
	const char *argv[] = {PYTHON, "-c", "import dbusmock", NULL};
	int status = 0;

	if (!g_file_test(PYTHON, G_FILE_TEST_IS_EXECUTABLE)) {
		g_print("SKIP: the emulator tests need " PYTHON "\n");
		return FALSE;
	}
	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL,
			  NULL, &status, NULL) ||
	    !g_spawn_check_wait_status(status, NULL)) {
		g_print("SKIP: the emulator tests need python3-dbusmock (apt install "
			"python3-dbusmock)\n");
		return FALSE;
	}
	return TRUE;
}

int
main(void)
{
	gboolean emulator = have_dbusmock();
	CU_pSuite suite;
	unsigned int failures;
	unsigned int expected = G_N_ELEMENTS(unit_cases);

	/* our own children's ends are waited for; a dying one must not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite = CU_add_suite("bluez", NULL, NULL);
	for (size_t i = 0; suite != NULL && i < G_N_ELEMENTS(unit_cases); i++) {
		if (CU_add_test(suite, unit_cases[i].name, unit_cases[i].func) == NULL)
			return 99;
	}
	if (emulator) {
		suite = CU_add_suite_with_setup_and_teardown("bluez-emulator", NULL, NULL,
							     emulator_setup, emulator_teardown);
		for (size_t i = 0; suite != NULL && i < G_N_ELEMENTS(emulator_cases); i++) {
			if (CU_add_test(suite, emulator_cases[i].name, emulator_cases[i].func) == NULL)
				return 99;
		}
		expected += G_N_ELEMENTS(emulator_cases);
	}
	if (suite == NULL)
		return 99;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	if (CU_get_number_of_tests_run() != expected)
		failures++;
	CU_cleanup_registry();
	if (failures != 0)
		return 1;
	return emulator ? 0 : 77;
}
