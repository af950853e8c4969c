/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <sodium.h>
#include <string.h>

#include "amulet/amu-error.h"
#include "peripheral-fixture.h"

/* Owner commands end to end (docs/wipe.md): the device role (AmuPeripheral)
 * and a host (AmuContext) in one process, on the default main context, over
 * a real UNIX socket link (tests/peripheral-fixture.h). Commands are sent by hand on an open session,
 * hostile ones among them; the device must refuse each with the right Error
 * and log line and keep its samples, and answer a valid one with a receipt
 * signed by the device key of the session's hello. */

#define N_SAMPLES 300

static int64_t next_ms; /* the next sample's time */

static void
append_samples(PeripheralFixture *f, guint n)
{
	g_autoptr(GArray) samples = g_array_new(FALSE, TRUE, sizeof(AmuSample));
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < n; i++) {
		AmuSample sample = {.timestamp_ms = next_ms, .category = AMU_CATEGORY_HEART_RATE};
		sample.values[0] = 55 + (gint32)(i % 40);
		next_ms += 1000;
		g_array_append_val(samples, sample);
	}
	CU_ASSERT_TRUE(amu_device_log_append(amu_peripheral_get_log(f->peripheral), AMU_CATEGORY_HEART_RATE,
					     (const AmuSample *)samples->data, n, &error));
	if (error != NULL)
		g_printerr("  append: %s\n", error->message);
}

/* samples the device still holds */
static guint64
device_samples(PeripheralFixture *f)
{
	AmuDeviceLog *log = amu_peripheral_get_log(f->peripheral);
	return amu_device_log_get_end_seq(log) - amu_device_log_get_first_seq(log);
}

/* a band paired with the host, holding N_SAMPLES samples */
static PeripheralFixture *
fixture_new(void)
{
	PeripheralFixture *f = peripheral_fixture_new(AMU_PERIPHERAL_PROFILE_BAND);

	next_ms = 1790000000000;
	append_samples(f, N_SAMPLES);
	return f;
}

/* ---------------------------------------------------------------- commands */

typedef struct {
	Amulet__V1__OwnerCommand command;
	uint8_t device_id[AMU_CHANNEL_DEVICE_ID_BYTES];
	uint8_t signature[AMU_COMMAND_SIGNBYTES];
} Command;

/* a command for @device_id; signed with @secret_key unless it is NULL */
static void
command_init(Command *c, const uint8_t *device_id, Amulet__V1__CommandKind kind, uint64_t counter,
	     const uint8_t *secret_key)
{
	amulet__v1__owner_command__init(&c->command);
	memcpy(c->device_id, device_id, sizeof(c->device_id));
	c->command.device_id.data = c->device_id;
	c->command.device_id.len = sizeof(c->device_id);
	c->command.kind = kind;
	c->command.counter = counter;
	if (secret_key == NULL)
		return;
	amu_command_sign(&c->command, secret_key, c->signature);
	c->command.signature.data = c->signature;
	c->command.signature.len = sizeof(c->signature);
}

static gboolean
line_is_about_command(const char *line)
{
	return g_str_has_prefix(line, "refused ") || g_str_has_prefix(line, "wiped") ||
	       g_str_has_prefix(line, "factory reset") || g_str_has_prefix(line, "transfer") ||
	       strstr(line, " failed: ") != NULL;
}

/* the device logged a line about the command after line @arg */
static gboolean
command_logged(PeripheralFixture *f, guint arg)
{
	for (guint i = arg; i < f->lines->len; i++) {
		if (line_is_about_command(g_ptr_array_index(f->lines, i)))
			return TRUE;
	}
	return FALSE;
}

/* Sends @c on the open session and waits for the device's log line and
 * answer. Returns the line (transfer none); the answer is in *answer. */
static const char *
send_command(PeripheralFixture *f, const Command *c, const Amulet__V1__Message **answer)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	g_autoptr(GError) error = NULL;
	guint lines_before = f->lines->len, received_before = f->received->len;

	message.body_case = AMULET__V1__MESSAGE__BODY_OWNER_COMMAND;
	message.owner_command = (Amulet__V1__OwnerCommand *)&c->command;
	CU_ASSERT_TRUE_FATAL(amu_channel_send(f->channel, &message, &error));
	CU_ASSERT_TRUE_FATAL(peripheral_fixture_iterate_until(f, command_logged, lines_before));
	CU_ASSERT_TRUE_FATAL(peripheral_fixture_iterate_until(f, peripheral_fixture_answered, received_before));
	CU_ASSERT_EQUAL(f->received->len, received_before + 1);
	*answer = g_ptr_array_index(f->received, received_before);
	for (guint i = lines_before; i < f->lines->len; i++) {
		const char *line = g_ptr_array_index(f->lines, i);
		if (line_is_about_command(line))
			return line;
	}
	return NULL;
}

/* the device refused @c: this log line, an Error with this code, samples kept */
static void
assert_refused(PeripheralFixture *f, const Command *c, const char *expected_line, AmuError expected_code)
{
	const Amulet__V1__Message *answer = NULL;
	guint64 held = device_samples(f);
	const char *line = send_command(f, c, &answer);

	CU_ASSERT_STRING_EQUAL(line, expected_line);
	if (g_strcmp0(line, expected_line) != 0)
		g_printerr("  device logged '%s'\n  expected     '%s'\n", line, expected_line);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_ERROR);
	CU_ASSERT_EQUAL(answer->error->code, (uint32_t)expected_code);
	CU_ASSERT_TRUE(held > 0);
	CU_ASSERT_EQUAL(device_samples(f), held);
	/* a refusal does not end the session */
	CU_ASSERT_EQUAL(amu_channel_get_state(f->channel), AMU_CHANNEL_STATE_OPEN);
}

/* the device carried out @c and answered with a receipt signed by the
 * session's device key; returns the receipt (transfer none) */
static const Amulet__V1__CommandReceipt *
assert_accepted(PeripheralFixture *f, const Command *c, const char *line_prefix)
{
	const Amulet__V1__Message *answer = NULL;
	const char *line = send_command(f, c, &answer);
	const Amulet__V1__CommandReceipt *receipt;
	Amulet__V1__CommandReceipt altered;

	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	CU_ASSERT_TRUE(g_str_has_prefix(line, line_prefix));
	if (!g_str_has_prefix(line, line_prefix))
		g_printerr("  device logged '%s'\n", line);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT);
	receipt = answer->command_receipt;
	CU_ASSERT_EQUAL_FATAL(receipt->device_id.len, sizeof(f->device_id));
	CU_ASSERT_EQUAL(memcmp(receipt->device_id.data, f->device_id, sizeof(f->device_id)), 0);
	CU_ASSERT_EQUAL(receipt->kind, c->command.kind);
	CU_ASSERT_EQUAL(receipt->counter, c->command.counter);
	CU_ASSERT_TRUE(receipt->time_ms > 1700000000000);
	CU_ASSERT_TRUE(amu_receipt_verify(receipt, f->sign_key));
	/* the check can fail: the same receipt claiming another counter does not verify */
	altered = *receipt;
	altered.counter++;
	CU_ASSERT_FALSE(amu_receipt_verify(&altered, f->sign_key));
	return receipt;
}

static const char *const wipe_line = "wiped: every logged sample erased";

/* ---------------------------------------------------------------- tests */

static void
test_refuses_unsigned(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	Command c;

	peripheral_fixture_connect(f);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, NULL);
	assert_refused(f, &c, "refused wipe command: the command is not signed", AMU_ERROR_BAD_SIGNATURE);
	/* a signature of the wrong length is no signature either */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	c.command.signature.len = AMU_COMMAND_SIGNBYTES - 1;
	assert_refused(f, &c, "refused wipe command: the command is not signed", AMU_ERROR_BAD_SIGNATURE);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__FACTORY_RESET, 1000, NULL);
	assert_refused(f, &c, "refused factory reset command: the command is not signed", AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_device_id(f->peripheral), amu_device_get_id(f->device));
}

static void
test_refuses_foreign_owner(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	uint8_t foreign_pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t *foreign_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	Command c;

	peripheral_fixture_connect(f);
	crypto_sign_keypair(foreign_pk, foreign_sk);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, foreign_sk);
	assert_refused(f, &c, "refused wipe command: the command is not signed by this device's owner",
		       AMU_ERROR_BAD_SIGNATURE);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__TRANSFER, 1000, foreign_sk);
	assert_refused(f, &c, "refused transfer command: the command is not signed by this device's owner",
		       AMU_ERROR_BAD_SIGNATURE);
	sodium_free(foreign_sk);
	/* the owner's signature on a wipe, the kind changed to a factory reset */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	c.command.kind = AMULET__V1__COMMAND_KIND__FACTORY_RESET;
	assert_refused(f, &c, "refused factory reset command: the command is not signed by this device's owner",
		       AMU_ERROR_BAD_SIGNATURE);
	/* the owner's signature, the counter raised afterwards */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	c.command.counter = 1001;
	assert_refused(f, &c, "refused wipe command: the command is not signed by this device's owner",
		       AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
}

static void
test_refuses_other_device(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	uint8_t other_id[AMU_CHANNEL_DEVICE_ID_BYTES];
	Command c;

	peripheral_fixture_connect(f);
	memcpy(other_id, f->device_id, sizeof(other_id));
	other_id[0] ^= 0x80;
	command_init(&c, other_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	assert_refused(f, &c, "refused wipe command: the command names another device", AMU_ERROR_INVALID_ARGUMENT);
	/* a truncated id */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, NULL);
	c.command.device_id.len = AMU_CHANNEL_DEVICE_ID_BYTES - 1;
	amu_command_sign(&c.command, f->owner_sk, c.signature);
	c.command.signature.data = c.signature;
	c.command.signature.len = sizeof(c.signature);
	assert_refused(f, &c, "refused wipe command: the command names another device", AMU_ERROR_INVALID_ARGUMENT);
	/* an unknown kind, properly signed */
	command_init(&c, f->device_id, (Amulet__V1__CommandKind)7, 1000, f->owner_sk);
	assert_refused(f, &c, "refused unknown command command: unknown command 7", AMU_ERROR_NOT_SUPPORTED);
}

/* the device's bond with the host, rewritten as @record */
static void
rewrite_bond(PeripheralFixture *f, GVariant *record)
{
	g_autoptr(GPtrArray) ids = amu_store_list_ids(amu_peripheral_get_store(f->peripheral), "bond", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) sunk = g_variant_ref_sink(record);

	CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
	CU_ASSERT_EQUAL_FATAL(ids->len, 1);
	CU_ASSERT_TRUE_FATAL(amu_store_put(amu_peripheral_get_store(f->peripheral), "bond", g_ptr_array_index(ids, 0),
					   g_variant_get_data(sunk), g_variant_get_size(sunk), &error));
}

static void
test_refuses_bond_without_owner_key(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	Command c;

	/* a host that paired before owner keys existed: its bond is "(sx)" */
	rewrite_bond(f, g_variant_new("(sx)", "old host", (gint64)1700000000));
	peripheral_fixture_connect(f);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	assert_refused(f, &c,
		       "refused wipe command: this host's bond holds no owner key (it paired before owner keys were "
		       "exchanged): commands cannot be checked, so they are refused; pair again",
		       AMU_ERROR_BAD_SIGNATURE);
	peripheral_fixture_close_session(f);
	/* a host whose hello carried no owner key */
	rewrite_bond(f, g_variant_new("(sx@ay)", "keyless host", (gint64)1700000000,
				      g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE, NULL, 0, 1)));
	peripheral_fixture_connect(f);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__FACTORY_RESET, 1000, f->owner_sk);
	assert_refused(f, &c,
		       "refused factory reset command: this host's bond holds no owner key (it paired before owner keys were "
		       "exchanged): commands cannot be checked, so they are refused; pair again",
		       AMU_ERROR_BAD_SIGNATURE);
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
}

static void
test_replayed_and_stale(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	const Amulet__V1__CommandReceipt *receipt;
	Command first, c;

	peripheral_fixture_connect(f);
	/* a valid wipe: accepted, the log emptied, a receipt */
	command_init(&first, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1000, f->owner_sk);
	receipt = assert_accepted(f, &first, wipe_line);
	CU_ASSERT_EQUAL(receipt->new_device_id.len, 0);
	CU_ASSERT_EQUAL(device_samples(f), 0);
	/* new samples; the very same command again */
	append_samples(f, 120);
	CU_ASSERT_EQUAL(device_samples(f), 120);
	assert_refused(f, &first,
		       "refused wipe command: command counter 1000 is not above the last accepted (1000): replayed or stale",
		       AMU_ERROR_REPLAYED);
	/* a stale counter, properly signed */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 999, f->owner_sk);
	assert_refused(f, &c,
		       "refused wipe command: command counter 999 is not above the last accepted (1000): replayed or stale",
		       AMU_ERROR_REPLAYED);
	/* the counter is the device's, not the kind's */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__FACTORY_RESET, 1000, f->owner_sk);
	assert_refused(f, &c,
		       "refused factory reset command: command counter 1000 is not above the last accepted (1000): "
		       "replayed or stale",
		       AMU_ERROR_REPLAYED);
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
	/* the next counter is accepted */
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 1001, f->owner_sk);
	assert_accepted(f, &c, wipe_line);
	CU_ASSERT_EQUAL(device_samples(f), 0);
	/* the device keeps its identity and bond through a data wipe */
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_device_id(f->peripheral), amu_device_get_id(f->device));
}

static void
test_counter_survives_restart(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	Command c;

	peripheral_fixture_connect(f);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__WIPE_DATA, 5000, f->owner_sk);
	assert_accepted(f, &c, wipe_line);
	peripheral_fixture_close_session(f);
	/* the device restarts from its state directory */
	peripheral_fixture_restart_device(f);
	append_samples(f, 50);
	peripheral_fixture_connect(f);
	assert_refused(f, &c,
		       "refused wipe command: command counter 5000 is not above the last accepted (5000): replayed or stale",
		       AMU_ERROR_REPLAYED);
}

static void
test_factory_reset_receipt(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuSession) again = NULL;
	const Amulet__V1__CommandReceipt *receipt;
	char new_id[AMU_CHANNEL_DEVICE_ID_BYTES * 2 + 1];
	Command c;

	peripheral_fixture_connect(f);
	command_init(&c, f->device_id, AMULET__V1__COMMAND_KIND__FACTORY_RESET, 1000, f->owner_sk);
	receipt = assert_accepted(f, &c, "factory reset: keys, bonds and data erased; new device id ");
	/* the receipt names the fresh identity, the one the device now has */
	CU_ASSERT_EQUAL_FATAL(receipt->new_device_id.len, AMU_CHANNEL_DEVICE_ID_BYTES);
	sodium_bin2hex(new_id, sizeof(new_id), receipt->new_device_id.data, receipt->new_device_id.len);
	CU_ASSERT_STRING_EQUAL(new_id, amu_peripheral_get_device_id(f->peripheral));
	CU_ASSERT_STRING_NOT_EQUAL(new_id, amu_device_get_id(f->device));
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 0);
	CU_ASSERT_EQUAL(device_samples(f), 0);
	/* a new key pair too: the old device key no longer signs for it */
	CU_ASSERT_NOT_EQUAL(memcmp(f->peripheral->sign_public, f->sign_key, sizeof(f->sign_key)), 0);
	peripheral_fixture_close_session(f);
	/* the device no longer knows this host */
	again = amu_device_connect(f->device, NULL, &error);
	CU_ASSERT_PTR_NULL(again);
	AMU_ASSERT_ERROR(error, AMU_ERROR_UNKNOWN_PEER);
}

static void
test_wipe_keep_local(void)
{
	g_autoptr(PeripheralFixture) f = fixture_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuDevice) found = NULL;
	g_autoptr(GPtrArray) receipts = NULL;
	g_autoptr(GBytes) packed = NULL;
	Amulet__V1__CommandReceipt *receipt;

	CU_ASSERT_EQUAL(device_samples(f), N_SAMPLES);
	CU_ASSERT_TRUE(amu_device_wipe(f->device, AMU_WIPE_FLAGS_KEEP_LOCAL, NULL, &error));
	if (error != NULL)
		g_printerr("  wipe: %s\n", error->message);
	CU_ASSERT_TRUE_FATAL(peripheral_fixture_iterate_until(f, command_logged, 0));
	CU_ASSERT_EQUAL(device_samples(f), 0);
	CU_ASSERT_EQUAL(amu_peripheral_get_n_bonds(f->peripheral), 1);
	/* the host keeps the device, and says what happened */
	found = amu_context_find_device(f->context, "band", &error);
	CU_ASSERT_PTR_NOT_NULL(found);
	CU_ASSERT_FALSE(amu_device_get_pending_command(f->device, NULL));
	CU_ASSERT_EQUAL_FATAL(f->notices->len, 2); /* paired, wiped */
	CU_ASSERT_STRING_EQUAL(g_ptr_array_index(f->notices, 1),
			       "band was wiped: its recorded data is erased; this host keeps its copy");
	/* the receipt is kept, and verifies against the device's own key */
	receipts = amu_store_list_ids(amu_context_get_store(f->context), "command-receipt", &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(receipts);
	CU_ASSERT_EQUAL_FATAL(receipts->len, 1);
	packed = amu_store_get(amu_context_get_store(f->context), "command-receipt", g_ptr_array_index(receipts, 0),
			       &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(packed);
	receipt = amulet__v1__command_receipt__unpack(NULL, g_bytes_get_size(packed), g_bytes_get_data(packed, NULL));
	CU_ASSERT_PTR_NOT_NULL_FATAL(receipt);
	CU_ASSERT_EQUAL(receipt->kind, AMULET__V1__COMMAND_KIND__WIPE_DATA);
	CU_ASSERT_TRUE(amu_receipt_verify(receipt, f->peripheral->sign_public));
	amulet__v1__command_receipt__free_unpacked(receipt, NULL);
	/* the device still syncs with this host: a second wipe works too */
	append_samples(f, 10);
	CU_ASSERT_TRUE(amu_device_wipe(f->device, AMU_WIPE_FLAGS_KEEP_LOCAL, NULL, &error));
	CU_ASSERT_EQUAL(device_samples(f), 0);
}

AMU_TEST_MAIN("wipe",
	      {"refuses an unsigned command", test_refuses_unsigned},
	      {"refuses a command not signed by the owner", test_refuses_foreign_owner},
	      {"refuses a command for another device or of an unknown kind", test_refuses_other_device},
	      {"refuses a command from a bond without an owner key", test_refuses_bond_without_owner_key},
	      {"refuses a replayed or stale counter, accepts the next", test_replayed_and_stale},
	      {"the last counter survives a device restart", test_counter_survives_restart},
	      {"a factory reset's receipt names the new identity", test_factory_reset_receipt},
	      {"amu_device_wipe keeps the local copy and the receipt", test_wipe_keep_local})
