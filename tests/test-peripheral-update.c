/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "amu-update-package.h"
#include "amulet/amu-error.h"
#include "peripheral-fixture.h"

/* The device side of signed firmware updates and settings (docs/update.md):
 * the messages a careful host never sends (forged, foreign, stale or
 * oversized offers, chunks out of place, installs too early) are sent here by
 * hand on an open session (tests/peripheral-fixture.h); the device must
 * refuse each with the right Error and log line and leave its slots alone.
 * Then the good path: resume, trial boot, confirmation and reverts, each
 * seen in the device's answers, its log and the files in its state dir. */

#define FACTORY_SIZE 65536
#define CHUNK 3072

static uint8_t sim_pk[AMU_VENDOR_PUBLICKEYBYTES];
static uint8_t sim_sk[AMU_VENDOR_SECRETKEYBYTES];

/* ---------------------------------------------------------------- packages */

typedef struct {
	GBytes *image; /* what the host sends: the package's payload unless changed */
	AmuUpdatePackage *package;
	uint8_t image_sha256[32];
} Pkg;

static void
pkg_free(Pkg *p)
{
	g_bytes_unref(p->image);
	amu_update_package_free(p->package);
	g_free(p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Pkg, pkg_free)

static void
manifest_init(Amulet__V1__UpdateManifest *m, const char *version, uint64_t sequence)
{
	amulet__v1__update_manifest__init(m);
	m->format = AMU_UPDATE_FORMAT;
	m->vendor_id = (char *)AMU_SIM_VENDOR_ID;
	m->device_class = (char *)"band";
	m->version = (char *)version;
	m->sequence = sequence;
	m->changes = (char *)"fixes";
}

/* a package of a simulated image of @size bytes, signed with @sk */
static Pkg *
pkg_build(Amulet__V1__UpdateManifest *m, gboolean boots, size_t size, const uint8_t *pk, const uint8_t *sk)
{
	Pkg *p = g_new0(Pkg, 1);
	g_autoptr(GBytes) package = NULL;
	g_autoptr(GError) error = NULL;

	p->image = amu_sim_image_build(m->version, m->sequence, boots, size);
	package = amu_update_package_build(m, g_bytes_get_data(p->image, NULL), g_bytes_get_size(p->image), sk);
	p->package = amu_update_package_parse(package, pk, &error);
	if (error != NULL)
		g_printerr("  package: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p->package);
	crypto_hash_sha256(p->image_sha256, g_bytes_get_data(p->image, NULL), g_bytes_get_size(p->image));
	return p;
}

/* a package for a band from the simulator's vendor */
static Pkg *
pkg_new(const char *version, uint64_t sequence, gboolean boots, size_t size)
{
	Amulet__V1__UpdateManifest m;

	manifest_init(&m, version, sequence);
	return pkg_build(&m, boots, size, sim_pk, sim_sk);
}

/* ---------------------------------------------------------------- messages */

static const Amulet__V1__DeviceStatus *
request_status(PeripheralFixture *f)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__StatusRequest request = AMULET__V1__STATUS_REQUEST__INIT;
	const Amulet__V1__Message *answer;

	message.body_case = AMULET__V1__MESSAGE__BODY_STATUS_REQUEST;
	message.status_request = &request;
	answer = peripheral_fixture_send(f, &message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	return answer->device_status;
}

static const char *
status_setting(const Amulet__V1__DeviceStatus *status, const char *key)
{
	for (size_t i = 0; i < status->n_settings; i++) {
		if (g_strcmp0(status->settings[i]->key, key) == 0)
			return status->settings[i]->value;
	}
	return NULL;
}

/* @status lists exactly the @n key, value @pairs, in that order */
static void
assert_settings(const Amulet__V1__DeviceStatus *status, size_t n, const char *const *pairs)
{
	CU_ASSERT_EQUAL_FATAL(status->n_settings, n);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_STRING_EQUAL(status->settings[i]->key, pairs[2 * i]);
		CU_ASSERT_STRING_EQUAL(status->settings[i]->value, pairs[2 * i + 1]);
	}
}

/* a SettingsChange of @n key, value pairs */
static const Amulet__V1__Message *
change_settings(PeripheralFixture *f, size_t n, const char *const *pairs)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__SettingsChange change = AMULET__V1__SETTINGS_CHANGE__INIT;
	g_autofree Amulet__V1__Setting *settings = g_new0(Amulet__V1__Setting, n);
	g_autofree Amulet__V1__Setting **ptrs = g_new0(Amulet__V1__Setting *, n);

	for (size_t i = 0; i < n; i++) {
		amulet__v1__setting__init(&settings[i]);
		settings[i].key = (char *)pairs[2 * i];
		settings[i].value = (char *)pairs[2 * i + 1];
		ptrs[i] = &settings[i];
	}
	change.n_settings = n;
	change.settings = ptrs;
	message.body_case = AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE;
	message.settings_change = &change;
	return peripheral_fixture_send(f, &message);
}

static const Amulet__V1__Message *
change_setting(PeripheralFixture *f, const char *key, const char *value)
{
	const char *pairs[] = {key, value};
	return change_settings(f, 1, pairs);
}

/* offers @p; with @flip_signature, one bit of its signature flipped */
static const Amulet__V1__Message *
offer_full(PeripheralFixture *f, const Pkg *p, gboolean flip_signature)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateOffer offer = AMULET__V1__UPDATE_OFFER__INIT;
	const AmuUpdateManifest *m = p->package->manifest;
	uint8_t signature[AMU_UPDATE_SIGNATURE_BYTES];
	gsize len = 0;

	memcpy(signature, m->signature, sizeof(signature));
	if (flip_signature)
		signature[3] ^= 0x01;
	offer.manifest.data = (uint8_t *)g_bytes_get_data(m->manifest_bytes, &len);
	offer.manifest.len = len;
	offer.signature.data = signature;
	offer.signature.len = sizeof(signature);
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_OFFER;
	message.update_offer = &offer;
	return peripheral_fixture_send(f, &message);
}

static const Amulet__V1__Message *
offer(PeripheralFixture *f, const Pkg *p)
{
	return offer_full(f, p, FALSE);
}

static const Amulet__V1__Message *
send_chunk(PeripheralFixture *f, uint64_t offset, const uint8_t *data, size_t len)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateChunk chunk = AMULET__V1__UPDATE_CHUNK__INIT;

	chunk.offset = offset;
	chunk.data.data = (uint8_t *)data;
	chunk.data.len = len;
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK;
	message.update_chunk = &chunk;
	return peripheral_fixture_send(f, &message);
}

/* @len bytes of @p's image from @offset */
static const Amulet__V1__Message *
chunk(PeripheralFixture *f, const Pkg *p, uint64_t offset, size_t len)
{
	return send_chunk(f, offset, (const uint8_t *)g_bytes_get_data(p->image, NULL) + offset, len);
}

/* the device's progress after bytes [0, @offset) of @p */
static void
assert_progress(const Amulet__V1__Message *answer, const Pkg *p, uint64_t offset)
{
	uint8_t want[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
	if (answer->body_case == AMULET__V1__MESSAGE__BODY_ERROR)
		g_printerr("  device: %s\n", answer->error->message);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS);
	CU_ASSERT_EQUAL(answer->update_progress->next_offset, offset);
	CU_ASSERT_FALSE(answer->update_progress->installed);
	CU_ASSERT_EQUAL_FATAL(answer->update_progress->manifest_sha256.len, 32);
	CU_ASSERT_EQUAL(memcmp(answer->update_progress->manifest_sha256.data, p->package->manifest->manifest_sha256,
			       32),
			0);
	crypto_hash_sha256(want, g_bytes_get_data(p->image, NULL), offset);
	CU_ASSERT_EQUAL_FATAL(answer->update_progress->sha256_so_far.len, 32);
	CU_ASSERT_EQUAL(memcmp(answer->update_progress->sha256_so_far.data, want, 32), 0);
}

/* sends bytes [@from, @to) of @p's image in CHUNK pieces, each acknowledged */
static void
upload(PeripheralFixture *f, const Pkg *p, uint64_t from, uint64_t to)
{
	while (from < to) {
		size_t n = (size_t)MIN((uint64_t)CHUNK, to - from);
		const Amulet__V1__Message *answer = chunk(f, p, from, n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
		if (answer->body_case != AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS)
			g_printerr("  chunk at %" G_GUINT64_FORMAT ": %s\n", from,
				   answer->body_case == AMULET__V1__MESSAGE__BODY_ERROR ? answer->error->message : "?");
		CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS);
		from += n;
		CU_ASSERT_EQUAL_FATAL(answer->update_progress->next_offset, from);
	}
}

static const Amulet__V1__Message *
install(PeripheralFixture *f, const Pkg *p)
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateInstall request = AMULET__V1__UPDATE_INSTALL__INIT;

	request.manifest_sha256.data = p->package->manifest->manifest_sha256;
	request.manifest_sha256.len = 32;
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL;
	message.update_install = &request;
	return peripheral_fixture_send(f, &message);
}

static const Amulet__V1__Message *
confirm(PeripheralFixture *f, const uint8_t sha256[32])
{
	Amulet__V1__Message message = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateConfirm request = AMULET__V1__UPDATE_CONFIRM__INIT;

	request.firmware_sha256.data = (uint8_t *)sha256;
	request.firmware_sha256.len = 32;
	message.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM;
	message.update_confirm = &request;
	return peripheral_fixture_send(f, &message);
}

/* The device refused with an Error of @code whose message holds @needle,
 * logged "<what> refused: <that message>" since line @from, and kept the
 * session open. */
static void
assert_refused(PeripheralFixture *f, guint from, const Amulet__V1__Message *answer, const char *what, AmuError code,
	       const char *needle)
{
	g_autofree char *line = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_ERROR);
	if (answer->error->code != (uint32_t)code || strstr(answer->error->message, needle) == NULL)
		g_printerr("  expected error %d with '%s', got %u: %s\n", (int)code, needle, answer->error->code,
			   answer->error->message);
	CU_ASSERT_EQUAL(answer->error->code, (uint32_t)code);
	CU_ASSERT_PTR_NOT_NULL(strstr(answer->error->message, needle));
	line = g_strdup_printf("%s refused: %s", what, answer->error->message);
	CU_ASSERT_STRING_EQUAL(peripheral_fixture_find_line(f, from, line), line);
	CU_ASSERT_EQUAL(amu_channel_get_state(f->channel), AMU_CHANNEL_STATE_OPEN);
}

/* the same for the answer to @call, with the lines it logged */
#define ASSERT_REFUSED(f, call, what, code, needle)                                                        \
	do {                                                                                               \
		guint from_ = (f)->lines->len;                                                             \
		const Amulet__V1__Message *answer_ = (call);                                               \
		assert_refused((f), from_, answer_, (what), (code), (needle));                             \
	} while (0)

/* ---------------------------------------------------------------- state files */

static char *
state_path(PeripheralFixture *f, const char *name)
{
	return g_build_filename(f->state_dir, name, NULL);
}

static gboolean
state_file_exists(PeripheralFixture *f, const char *name)
{
	g_autofree char *path = state_path(f, name);
	return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* the size of a file in the state dir, -1 when it is missing */
static gint64
state_file_size(PeripheralFixture *f, const char *name)
{
	g_autofree char *path = state_path(f, name);
	GStatBuf st;

	if (g_stat(path, &st) != 0)
		return -1;
	return (gint64)st.st_size;
}

/* (transfer full) a value from boot.state, NULL when absent */
static char *
boot_state_get(PeripheralFixture *f, const char *group, const char *key)
{
	g_autofree char *path = state_path(f, "boot.state");
	g_autoptr(GKeyFile) file = g_key_file_new();

	if (!g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, NULL))
		return NULL;
	return g_key_file_get_value(file, group, key, NULL);
}

static void
assert_boot_state(PeripheralFixture *f, const char *group, const char *key, const char *expected)
{
	g_autofree char *value = boot_state_get(f, group, key);

	if (g_strcmp0(value, expected) != 0)
		g_printerr("  boot.state [%s] %s is '%s', expected '%s'\n", group, key, value, expected);
	CU_ASSERT_STRING_EQUAL(value, expected);
}

/* overwrites a byte of a file in the state dir */
static void
corrupt_state_file(PeripheralFixture *f, const char *name, off_t offset)
{
	g_autofree char *path = state_path(f, name);
	int fd = open(path, O_RDWR);
	uint8_t byte = 0;

	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pread(fd, &byte, 1, offset), 1);
	byte ^= 0x5a;
	CU_ASSERT_EQUAL(pwrite(fd, &byte, 1, offset), 1);
	close(fd);
}

/* ---------------------------------------------------------------- flows */

/* a device of @profile, paired, with an open session */
static PeripheralFixture *
device_new(AmuPeripheralProfile profile)
{
	PeripheralFixture *f = peripheral_fixture_new(profile);

	amu_sim_vendor_keypair(sim_pk, sim_sk);
	peripheral_fixture_connect(f);
	return f;
}

static PeripheralFixture *
band_new(void)
{
	return device_new(AMU_PERIPHERAL_PROFILE_BAND);
}

/* offers @p and sends all of it */
static void
offer_and_upload(PeripheralFixture *f, const Pkg *p)
{
	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, g_bytes_get_size(p->image));
}

static gboolean
session_ended(PeripheralFixture *f, guint arg)
{
	return amu_channel_get_state(f->channel) != AMU_CHANNEL_STATE_OPEN;
}

/* installs what was uploaded; the device reboots and logs @boot_line;
 * then a new session */
static void
install_and_reboot(PeripheralFixture *f, const Pkg *p, const char *boot_line)
{
	guint from = f->lines->len;
	const Amulet__V1__Message *answer = install(f, p);

	CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
	if (answer->body_case == AMULET__V1__MESSAGE__BODY_ERROR)
		g_printerr("  install: %s\n", answer->error->message);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS);
	CU_ASSERT_TRUE(answer->update_progress->installed);
	CU_ASSERT_EQUAL(answer->update_progress->next_offset, g_bytes_get_size(p->image));
	CU_ASSERT_EQUAL(memcmp(answer->update_progress->sha256_so_far.data, p->image_sha256, 32), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(peripheral_fixture_wait_line(f, from, boot_line));
	CU_ASSERT_PTR_NOT_NULL_FATAL(peripheral_fixture_wait_line(f, from, "running "));
	/* the reboot ended the session */
	CU_ASSERT_TRUE(peripheral_fixture_iterate_until(f, session_ended, 0));
	peripheral_fixture_drop_session(f);
	peripheral_fixture_connect(f);
}

/* 1.1.0 (sequence 2) installed and running on trial, a new session open */
static Pkg *
install_trial(PeripheralFixture *f)
{
	Pkg *p = pkg_new("1.1.0", 2, TRUE, 20000);

	offer_and_upload(f, p);
	install_and_reboot(f, p, "boot: trying 1.1.0 (sequence 2) from slot b");
	return p;
}

/* ---------------------------------------------------------------- tests: a fresh device */

static void
test_factory_files(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autofree char *path = state_path(f, "slot-a.img");
	g_autofree char *image = NULL;
	g_autofree char *version = NULL;
	g_autofree char *hex = NULL;
	char want_hex[65];
	uint8_t digest[32];
	uint64_t sequence = 0;
	gsize len = 0;

	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, 0, "boot: factory image 1.0.0 (sequence 1) in slot a"));
	CU_ASSERT_TRUE_FATAL(g_file_get_contents(path, &image, &len, NULL));
	CU_ASSERT_EQUAL(len, FACTORY_SIZE);
	CU_ASSERT_TRUE(amu_sim_image_boots((const uint8_t *)image, len, &version, &sequence));
	CU_ASSERT_STRING_EQUAL(version, "1.0.0");
	CU_ASSERT_EQUAL(sequence, 1);
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.img"));
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.offer"));
	/* the boot loader's record names it */
	crypto_hash_sha256(digest, (const uint8_t *)image, len);
	sodium_bin2hex(want_hex, sizeof(want_hex), digest, sizeof(digest));
	assert_boot_state(f, "boot", "active", "a");
	assert_boot_state(f, "boot", "trial", "false");
	assert_boot_state(f, "boot", "pending_trial", "false");
	assert_boot_state(f, "slot a", "version", "1.0.0");
	assert_boot_state(f, "slot a", "sequence", "1");
	assert_boot_state(f, "slot a", "sha256", want_hex);
	hex = boot_state_get(f, "slot b", "version");
	CU_ASSERT_PTR_NULL(hex);
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_firmware(f->peripheral, &sequence), "1.0.0");
	CU_ASSERT_EQUAL(sequence, 1);
}

static void
test_disclosure(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	AmuDisclosure *disclosure = amu_device_get_disclosure(f->device);

	CU_ASSERT_STRING_EQUAL(amu_disclosure_get_firmware_version(disclosure), "1.0.0");
	CU_ASSERT_STRING_EQUAL(amu_disclosure_get_vendor_id(disclosure), AMU_SIM_VENDOR_ID);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amu_disclosure_get_vendor_public_key(disclosure));
	CU_ASSERT_EQUAL(memcmp(amu_disclosure_get_vendor_public_key(disclosure), sim_pk, sizeof(sim_pk)), 0);
}

static void
test_status_band(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autofree char *path = state_path(f, "slot-a.img");
	g_autofree char *image = NULL;
	const Amulet__V1__DeviceStatus *status = request_status(f);
	const char *defaults[] = {"display_name", "Sim Band B1", "do_not_disturb", "off", "heart_rate_interval_s",
				  "1"};
	uint8_t digest[32];
	gsize len = 0;

	CU_ASSERT_TRUE_FATAL(g_file_get_contents(path, &image, &len, NULL));
	crypto_hash_sha256(digest, (const uint8_t *)image, len);
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.0.0");
	CU_ASSERT_EQUAL(status->firmware_sequence, 1);
	CU_ASSERT_EQUAL_FATAL(status->firmware_sha256.len, 32);
	CU_ASSERT_EQUAL(memcmp(status->firmware_sha256.data, digest, 32), 0);
	CU_ASSERT_FALSE(status->trial);
	CU_ASSERT_STRING_EQUAL(status->reverted_from, "");
	CU_ASSERT_EQUAL(status->slot_size, AMU_PERIPHERAL_SLOT_SIZE_DEFAULT);
	/* a band's settings, sorted, at their defaults */
	assert_settings(status, 3, defaults);
	/* the slot size is the device's */
	amu_peripheral_set_slot_size(f->peripheral, 123456);
	CU_ASSERT_EQUAL(request_status(f)->slot_size, 123456);
}

/* a device of @profile runs the factory firmware with these @n default settings */
static void
assert_fresh_status(AmuPeripheralProfile profile, size_t n, const char *const *defaults)
{
	g_autoptr(PeripheralFixture) f = device_new(profile);
	const Amulet__V1__DeviceStatus *status = request_status(f);

	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.0.0");
	assert_settings(status, n, defaults);
}

static void
test_status_watch(void)
{
	const char *defaults[] = {"display_name",	   "Sim Watch W1", "do_not_disturb", "off",
				  "heart_rate_interval_s", "1",		   "share_location", "off"};

	assert_fresh_status(AMU_PERIPHERAL_PROFILE_WATCH, 4, defaults);
}

static void
test_status_toy(void)
{
	const char *defaults[] = {"display_name", "Sim Toy T1", "do_not_disturb", "off", "voice_chat", "off"};

	assert_fresh_status(AMU_PERIPHERAL_PROFILE_TOY, 3, defaults);
}

/* ---------------------------------------------------------------- tests: settings */

static void
test_settings_change(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *pairs[] = {"heart_rate_interval_s", "30", "do_not_disturb", "22:00-07:00", "display_name",
			       "Ännchen's band"};
	const Amulet__V1__Message *answer = change_settings(f, 3, pairs);

	CU_ASSERT_PTR_NOT_NULL_FATAL(answer);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_STRING_EQUAL(status_setting(answer->device_status, "heart_rate_interval_s"), "30");
	CU_ASSERT_STRING_EQUAL(status_setting(answer->device_status, "do_not_disturb"), "22:00-07:00");
	CU_ASSERT_STRING_EQUAL(status_setting(answer->device_status, "display_name"), "Ännchen's band");
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(
		f, 0, "settings: heart_rate_interval_s=30 do_not_disturb=22:00-07:00 display_name=Ännchen's band"));
	/* the number is stored as a number */
	answer = change_setting(f, "heart_rate_interval_s", "0045");
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_STRING_EQUAL(status_setting(answer->device_status, "heart_rate_interval_s"), "45");
	/* and back to off */
	answer = change_setting(f, "do_not_disturb", "off");
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_STRING_EQUAL(status_setting(answer->device_status, "do_not_disturb"), "off");
	/* kept in the device's store: a restart keeps them */
	peripheral_fixture_close_session(f);
	peripheral_fixture_restart_device(f);
	peripheral_fixture_connect(f);
	CU_ASSERT_STRING_EQUAL(status_setting(request_status(f), "heart_rate_interval_s"), "45");
	CU_ASSERT_STRING_EQUAL(status_setting(request_status(f), "display_name"), "Ännchen's band");
}

static void
test_settings_refuse_unknown_key(void)
{
	g_autoptr(PeripheralFixture) f = band_new();

	/* a watch's setting, not a band's */
	ASSERT_REFUSED(f, change_setting(f, "share_location", "on"), "settings change",
		       AMU_ERROR_INVALID_ARGUMENT,
		       "a band has no setting 'share_location': its settings are display_name, do_not_disturb, "
		       "heart_rate_interval_s");
	ASSERT_REFUSED(f, change_setting(f, "volume", "3"), "settings change", AMU_ERROR_INVALID_ARGUMENT,
		       "has no setting 'volume'");
	CU_ASSERT_PTR_NULL(status_setting(request_status(f), "share_location"));
}

/* each of @bad as the value of @key is refused, the message holding @needle */
static void
assert_values_refused(PeripheralFixture *f, const char *key, const char *const *bad, size_t n_bad,
		      const char *needle)
{
	for (size_t i = 0; i < n_bad; i++)
		ASSERT_REFUSED(f, change_setting(f, key, bad[i]), "settings change", AMU_ERROR_INVALID_ARGUMENT,
			       needle);
}

static void
test_settings_refuse_bad_name(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *bad[] = {"", "a\nb", "tab\there", "123456789012345678901234567890123"};

	assert_values_refused(f, "display_name", bad, G_N_ELEMENTS(bad),
			      "display_name takes 1 to 32 printable characters");
	/* 32 characters, not bytes: this one is 64 bytes and fits */
	CU_ASSERT_EQUAL(change_setting(f, "display_name", "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ")->body_case,
			AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
}

static void
test_settings_refuse_bad_period(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *bad[] = {"25:00-07:00", "22:60-07:00", "22:00-22:00", "22:00", "on", "2200-0700", "22:00-07:00x"};

	assert_values_refused(f, "do_not_disturb", bad, G_N_ELEMENTS(bad),
			      "do_not_disturb takes off or a period HH:MM-HH:MM");
	CU_ASSERT_STRING_EQUAL(status_setting(request_status(f), "do_not_disturb"), "off");
}

static void
test_settings_refuse_bad_seconds(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *bad[] = {"0", "3601", "-5", "ten", "", "1.5"};

	assert_values_refused(f, "heart_rate_interval_s", bad, G_N_ELEMENTS(bad),
			      "heart_rate_interval_s takes a number of seconds from 1 to 3600");
	/* both ends of the range are allowed */
	CU_ASSERT_EQUAL(change_setting(f, "heart_rate_interval_s", "3600")->body_case,
			AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_EQUAL(change_setting(f, "heart_rate_interval_s", "1")->body_case,
			AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
}

static void
test_settings_refuse_bad_on_off(void)
{
	g_autoptr(PeripheralFixture) f = device_new(AMU_PERIPHERAL_PROFILE_TOY);

	ASSERT_REFUSED(f, change_setting(f, "voice_chat", "yes"), "settings change", AMU_ERROR_INVALID_ARGUMENT,
		       "voice_chat takes on or off, not 'yes'");
	CU_ASSERT_STRING_EQUAL(status_setting(request_status(f), "voice_chat"), "off");
	CU_ASSERT_EQUAL(change_setting(f, "voice_chat", "on")->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_STRING_EQUAL(status_setting(request_status(f), "voice_chat"), "on");
}

static void
test_settings_all_or_nothing(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *good_then_bad[] = {"display_name", "Mine", "heart_rate_interval_s", "0"};
	const char *bad_then_good[] = {"do_not_disturb", "nope", "heart_rate_interval_s", "60"};
	const Amulet__V1__DeviceStatus *status;

	ASSERT_REFUSED(f, change_settings(f, 2, good_then_bad), "settings change", AMU_ERROR_INVALID_ARGUMENT,
		       "1 to 3600");
	ASSERT_REFUSED(f, change_settings(f, 2, bad_then_good), "settings change", AMU_ERROR_INVALID_ARGUMENT,
		       "HH:MM-HH:MM");
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status_setting(status, "display_name"), "Sim Band B1");
	CU_ASSERT_STRING_EQUAL(status_setting(status, "heart_rate_interval_s"), "1");
	CU_ASSERT_STRING_EQUAL(status_setting(status, "do_not_disturb"), "off");
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, 0, "settings: "));
}

/* ---------------------------------------------------------------- tests: refused offers */

/* @p's offer is refused with @code and @needle, and the second slot is untouched */
static void
assert_offer_refused(PeripheralFixture *f, const Pkg *p, gboolean flip_signature, AmuError code, const char *needle)
{
	guint from = f->lines->len;

	assert_refused(f, from, offer_full(f, p, flip_signature), "update offer", code, needle);
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.img"));
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.offer"));
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, from, "update offer: "));
}

/* a 2000-byte package of @m, signed with the simulator's key, is refused */
static void
assert_manifest_refused(PeripheralFixture *f, Amulet__V1__UpdateManifest *m, AmuError code, const char *needle)
{
	g_autoptr(Pkg) p = pkg_build(m, TRUE, 2000, sim_pk, sim_sk);

	assert_offer_refused(f, p, FALSE, code, needle);
}

static void
test_offer_bad_signature(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 2000);
	uint8_t other_pk[AMU_VENDOR_PUBLICKEYBYTES], other_sk[AMU_VENDOR_SECRETKEYBYTES];
	Amulet__V1__UpdateManifest m;
	g_autoptr(Pkg) foreign = NULL;

	assert_offer_refused(f, p, TRUE, AMU_ERROR_BAD_SIGNATURE, "signature does not verify");
	/* a well-formed package signed with another key */
	crypto_sign_keypair(other_pk, other_sk);
	manifest_init(&m, "1.1.0", 2);
	foreign = pkg_build(&m, TRUE, 2000, other_pk, other_sk);
	assert_offer_refused(f, foreign, FALSE, AMU_ERROR_BAD_SIGNATURE, "signature does not verify");
	/* the same package, properly signed, is taken */
	assert_progress(offer(f, p), p, 0);
}

static void
test_offer_wrong_vendor(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	Amulet__V1__UpdateManifest m;

	manifest_init(&m, "1.1.0", 2);
	m.vendor_id = (char *)"other-vendor";
	assert_manifest_refused(f, &m, AMU_ERROR_WRONG_TARGET,
				"the package is from vendor 'other-vendor', the device from vendor 'amulet-sim'");
}

static void
test_offer_wrong_class(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	Amulet__V1__UpdateManifest m;

	manifest_init(&m, "1.1.0", 2);
	m.device_class = (char *)"watch";
	assert_manifest_refused(f, &m, AMU_ERROR_WRONG_TARGET,
				"the package is for device class 'watch', the device is a 'band'");
}

static void
test_offer_rollback_equal(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.0.1", 1, TRUE, 2000);

	assert_offer_refused(f, p, FALSE, AMU_ERROR_ROLLBACK, "version 1.0.1 (sequence 1) is already installed");
}

static void
test_offer_rollback_older(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) installed = install_trial(f);
	g_autoptr(Pkg) older = pkg_new("1.0.5", 1, TRUE, 2000);

	CU_ASSERT_EQUAL_FATAL(confirm(f, installed->image_sha256)->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	ASSERT_REFUSED(f, offer(f, older), "update offer", AMU_ERROR_ROLLBACK,
		       "version 1.0.5 (sequence 1) is older than the running firmware (sequence 2)");
	/* slot a, the image to go back to, is not touched */
	assert_boot_state(f, "slot a", "version", "1.0.0");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-a.img"), FACTORY_SIZE);
	CU_ASSERT_FALSE(state_file_exists(f, "slot-a.offer"));
}

static void
test_offer_min_sequence(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	Amulet__V1__UpdateManifest m;
	g_autoptr(Pkg) reachable = NULL;

	manifest_init(&m, "1.3.0", 4);
	m.min_sequence = 2;
	assert_manifest_refused(f, &m, AMU_ERROR_ROLLBACK,
				"version 1.3.0 needs the device to run sequence 2 or later, and it runs 1");
	/* a minimum the device meets */
	manifest_init(&m, "1.3.0", 4);
	m.min_sequence = 1;
	reachable = pkg_build(&m, TRUE, 2000, sim_pk, sim_sk);
	assert_progress(offer(f, reachable), reachable, 0);
}

static void
test_offer_expired(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	Amulet__V1__UpdateManifest m;
	g_autoptr(Pkg) current = NULL;

	manifest_init(&m, "1.1.0", 2);
	m.expires_ms = 1000;
	assert_manifest_refused(f, &m, AMU_ERROR_EXPIRED, "version 1.1.0 expired at ");
	/* the device's clock decides: an hour left is fine */
	manifest_init(&m, "1.1.0", 2);
	m.expires_ms = g_get_real_time() / 1000 + 3600 * 1000;
	current = pkg_build(&m, TRUE, 2000, sim_pk, sim_sk);
	assert_progress(offer(f, current), current, 0);
	/* and with its clock two hours ahead, the same package has expired */
	amu_peripheral_set_clock_offset(f->peripheral, 2 * 3600 * 1000);
	ASSERT_REFUSED(f, offer(f, current), "update offer", AMU_ERROR_EXPIRED, "expired at ");
}

static void
test_offer_too_large(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) big = pkg_new("1.1.0", 2, TRUE, 10001);
	g_autoptr(Pkg) fits = pkg_new("1.1.0", 2, TRUE, 10000);

	amu_peripheral_set_slot_size(f->peripheral, 10000);
	assert_offer_refused(f, big, FALSE, AMU_ERROR_TOO_LARGE,
			     "the image is 10001 bytes, and the device's update slot holds 10000");
	assert_progress(offer(f, fits), fits, 0);
}

static void
test_offer_accepted(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	g_autofree char *record = NULL;
	g_autofree char *path = state_path(f, "slot-b.offer");
	gsize len = 0;

	assert_progress(offer(f, p), p, 0);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(
		f, 0, "update offer: 1.1.0 (sequence 2, 20000 bytes) into slot b, starting at 0"));
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 0);
	/* slot-b.offer names the offer: its manifest's SHA-256 first */
	CU_ASSERT_TRUE_FATAL(g_file_get_contents(path, &record, &len, NULL));
	CU_ASSERT_TRUE_FATAL(len >= 32);
	CU_ASSERT_EQUAL(memcmp(record, p->package->manifest->manifest_sha256, 32), 0);
}

/* ---------------------------------------------------------------- tests: upload */

static void
test_without_offer(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);

	ASSERT_REFUSED(f, chunk(f, p, 0, 100), "update chunk", AMU_ERROR_PROTOCOL,
		       "UpdateChunk before an accepted UpdateOffer on this connection: offer the update first");
	ASSERT_REFUSED(f, install(f, p), "update install", AMU_ERROR_PROTOCOL,
		       "UpdateInstall before an accepted UpdateOffer on this connection: offer the update first");
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.img"));
	/* an offer belongs to its connection: the next one offers again */
	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 5000);
	peripheral_fixture_close_session(f);
	peripheral_fixture_connect(f);
	ASSERT_REFUSED(f, chunk(f, p, 5000, 100), "update chunk", AMU_ERROR_PROTOCOL,
		       "offer the update first");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 5000);
}

static void
test_chunk_wrong_offset(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 6000);
	ASSERT_REFUSED(f, chunk(f, p, 3000, 100), "update chunk", AMU_ERROR_PROTOCOL,
		       "chunk at 3000, expected 6000: resume from the device's offset");
	ASSERT_REFUSED(f, chunk(f, p, 6001, 100), "update chunk", AMU_ERROR_PROTOCOL,
		       "chunk at 6001, expected 6000");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 6000);
	/* the device's offset still works */
	assert_progress(chunk(f, p, 6000, 100), p, 6100);
}

static void
test_chunk_past_end(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	g_autofree uint8_t *longer = g_malloc0(200);
	uint8_t extra = 0;

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 19900);
	/* 200 bytes where 100 are left */
	memcpy(longer, (const uint8_t *)g_bytes_get_data(p->image, NULL) + 19900, 100);
	ASSERT_REFUSED(f, send_chunk(f, 19900, longer, 200), "update chunk", AMU_ERROR_PROTOCOL,
		       "chunk of 200 bytes at 19900 runs past the image's 20000 bytes");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 19900);
	upload(f, p, 19900, 20000);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, 0, "update: all 20000 bytes of 1.1.0 received"));
	/* one byte after the whole image */
	ASSERT_REFUSED(f, send_chunk(f, 20000, &extra, 1), "update chunk", AMU_ERROR_PROTOCOL,
		       "chunk of 1 bytes at 20000 runs past the image's 20000 bytes");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 20000);
}

static void
test_install_truncated(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	guint from;

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 12000);
	from = f->lines->len;
	ASSERT_REFUSED(f, install(f, p), "update install", AMU_ERROR_PROTOCOL,
		       "install asked with 12000 of 20000 bytes: send the rest first");
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, from, "rebooting"));
	assert_boot_state(f, "boot", "pending_trial", "false");
	/* the upload goes on */
	upload(f, p, 12000, 20000);
	install_and_reboot(f, p, "boot: trying 1.1.0 (sequence 2) from slot b");
}

/* the device refused the install as TAMPERED and discarded the slot */
static void
assert_install_tampered(PeripheralFixture *f, const Pkg *p, const char *needle)
{
	guint from = f->lines->len;

	ASSERT_REFUSED(f, install(f, p), "update install", AMU_ERROR_TAMPERED, needle);
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 0);
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.offer"));
	assert_boot_state(f, "boot", "pending_trial", "false");
	assert_boot_state(f, "boot", "active", "a");
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, from, "rebooting"));
	/* the upload is over: nothing more goes into the slot */
	ASSERT_REFUSED(f, chunk(f, p, 0, 10), "update chunk", AMU_ERROR_PROTOCOL,
		       "offer the update first");
	/* and an offer starts from the beginning */
	assert_progress(offer(f, p), p, 0);
}

static void
test_install_altered_on_disk(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);

	offer_and_upload(f, p);
	corrupt_state_file(f, "slot-b.img", 12345);
	assert_install_tampered(f, p, "does not match the SHA-256 its signed manifest names");
}

static void
test_install_cut_on_disk(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	g_autofree char *path = NULL;

	offer_and_upload(f, p);
	path = state_path(f, "slot-b.img");
	CU_ASSERT_EQUAL_FATAL(truncate(path, 15000), 0);
	assert_install_tampered(f, p, "holds 15000 bytes, not the manifest's 20000");
}

static void
test_install_altered_on_the_way(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	g_autoptr(GBytes) other = amu_sim_image_build("1.1.0", 2, TRUE, 20001);

	/* the right length, other bytes */
	g_bytes_unref(p->image);
	p->image = g_bytes_new_from_bytes(other, 1, 20000);
	offer_and_upload(f, p);
	assert_install_tampered(f, p, "does not match the SHA-256 its signed manifest names");
}

/* ---------------------------------------------------------------- tests: resume */

/* 9000 bytes uploaded, the session closed (and with @restart the device
 * restarted): a new offer resumes at 9000 and the update completes; returns
 * the band for more checks */
static PeripheralFixture *
upload_resumed(gboolean restart)
{
	PeripheralFixture *f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 9000);
	peripheral_fixture_close_session(f);
	if (restart)
		peripheral_fixture_restart_device(f);
	peripheral_fixture_connect(f);
	assert_progress(offer(f, p), p, 9000);
	upload(f, p, 9000, 20000);
	install_and_reboot(f, p, "boot: trying 1.1.0 (sequence 2) from slot b");
	CU_ASSERT_STRING_EQUAL(request_status(f)->firmware_version, "1.1.0");
	return f;
}

static void
test_resume_after_drop(void)
{
	g_autoptr(PeripheralFixture) f = upload_resumed(FALSE);

	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(
		f, 0, "update offer: 1.1.0 (sequence 2, 20000 bytes) into slot b, resuming at 9000"));
}

static void
test_resume_after_restart(void)
{
	g_autoptr(PeripheralFixture) f = upload_resumed(TRUE);
}

static void
test_other_offer_starts_over(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	g_autoptr(Pkg) q = pkg_new("1.2.0", 3, TRUE, 20000);

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 9000);
	peripheral_fixture_close_session(f);
	peripheral_fixture_connect(f);
	/* another package: none of the bytes count */
	assert_progress(offer(f, q), q, 0);
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 0);
}

static void
test_start_over(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	guint from;

	assert_progress(offer(f, p), p, 0);
	upload(f, p, 0, 9000);
	from = f->lines->len;
	/* a chunk at 0 starts over */
	assert_progress(chunk(f, p, 0, CHUNK), p, CHUNK);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, from, "update: the host starts 1.1.0 over from byte 0"));
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), CHUNK);
	upload(f, p, CHUNK, 20000);
	install_and_reboot(f, p, "boot: trying 1.1.0 (sequence 2) from slot b");
}

/* ---------------------------------------------------------------- tests: trial and confirmation */

static void
test_trial_boot(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 20000);
	const Amulet__V1__DeviceStatus *status;
	char hex[65];

	offer_and_upload(f, p);
	install_and_reboot(f, p, "boot: trying 1.1.0 (sequence 2) from slot b");
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(
		f, 0, "update: installed 1.1.0 (sequence 2) in slot b; rebooting into it for a trial"));
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, 0, "rebooting into 1.1.0 (sequence 2) from slot b"));
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, 0, "running 1.1.0 (sequence 2) on trial"));
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.1.0");
	CU_ASSERT_EQUAL(status->firmware_sequence, 2);
	CU_ASSERT_TRUE(status->trial);
	CU_ASSERT_STRING_EQUAL(status->reverted_from, "");
	CU_ASSERT_EQUAL_FATAL(status->firmware_sha256.len, 32);
	CU_ASSERT_EQUAL(memcmp(status->firmware_sha256.data, p->image_sha256, 32), 0);
	/* the boot loader's record; the offer is done */
	sodium_bin2hex(hex, sizeof(hex), p->image_sha256, 32);
	assert_boot_state(f, "boot", "active", "b");
	assert_boot_state(f, "boot", "trial", "true");
	assert_boot_state(f, "boot", "pending_trial", "false");
	assert_boot_state(f, "slot b", "version", "1.1.0");
	assert_boot_state(f, "slot b", "sha256", hex);
	assert_boot_state(f, "slot a", "version", "1.0.0");
	CU_ASSERT_FALSE(state_file_exists(f, "slot-b.offer"));
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_firmware(f->peripheral, NULL), "1.1.0");
}

static void
test_settings_survive_update(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	const char *pairs[] = {"heart_rate_interval_s", "30", "display_name", "Mine"};
	g_autoptr(Pkg) p = NULL;
	const Amulet__V1__DeviceStatus *status;

	CU_ASSERT_EQUAL_FATAL(change_settings(f, 2, pairs)->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	p = install_trial(f);
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.1.0");
	CU_ASSERT_STRING_EQUAL(status_setting(status, "heart_rate_interval_s"), "30");
	CU_ASSERT_STRING_EQUAL(status_setting(status, "display_name"), "Mine");
}

static void
test_confirm(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = install_trial(f);
	g_autoptr(Pkg) wrong = pkg_new("1.1.0", 2, FALSE, 20000);
	const Amulet__V1__Message *answer;
	guint from = f->lines->len;

	/* another image's digest: not kept */
	answer = confirm(f, wrong->image_sha256);
	assert_refused(f, from, answer, "update confirmation", AMU_ERROR_TAMPERED,
		       "the confirmation names another image than the running 1.1.0");
	CU_ASSERT_PTR_NOT_NULL(strstr(answer->error->message, "a restart goes back to the previous image"));
	CU_ASSERT_TRUE(request_status(f)->trial);
	assert_boot_state(f, "boot", "trial", "true");
	/* the right one */
	from = f->lines->len;
	answer = confirm(f, p->image_sha256);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_FALSE(answer->device_status->trial);
	CU_ASSERT_STRING_EQUAL(answer->device_status->firmware_version, "1.1.0");
	CU_ASSERT_PTR_NOT_NULL(
		peripheral_fixture_find_line(f, from, "update: 1.1.0 (sequence 2) confirmed; slot b kept"));
	assert_boot_state(f, "boot", "trial", "false");
	/* again: the same answer, nothing more logged */
	from = f->lines->len;
	answer = confirm(f, p->image_sha256);
	CU_ASSERT_EQUAL_FATAL(answer->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_FALSE(answer->device_status->trial);
	CU_ASSERT_STRING_EQUAL(answer->device_status->firmware_version, "1.1.0");
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, from, "confirmed"));
	/* kept across a restart */
	peripheral_fixture_close_session(f);
	peripheral_fixture_restart_device(f);
	peripheral_fixture_connect(f);
	CU_ASSERT_STRING_EQUAL(request_status(f)->firmware_version, "1.1.0");
	CU_ASSERT_FALSE(request_status(f)->trial);
	/* a wrong digest after that changes nothing either */
	ASSERT_REFUSED(f, confirm(f, wrong->image_sha256), "update confirmation", AMU_ERROR_TAMPERED,
		       "the confirmation names another image");
	CU_ASSERT_STRING_EQUAL(request_status(f)->firmware_version, "1.1.0");
}

static void
test_image_that_does_not_boot(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.2.0", 3, FALSE, 20000);
	const Amulet__V1__DeviceStatus *status;

	offer_and_upload(f, p);
	install_and_reboot(f, p, "boot: 1.2.0 did not boot (the image in slot b does not boot); back on 1.0.0");
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.0.0");
	CU_ASSERT_EQUAL(status->firmware_sequence, 1);
	CU_ASSERT_FALSE(status->trial);
	CU_ASSERT_STRING_EQUAL(status->reverted_from, "1.2.0");
	assert_boot_state(f, "boot", "active", "a");
	assert_boot_state(f, "boot", "reverted_from", "1.2.0");
}

static void
test_unconfirmed_trial_reverts(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = install_trial(f);
	const Amulet__V1__DeviceStatus *status;
	guint from;

	peripheral_fixture_close_session(f);
	from = f->lines->len;
	peripheral_fixture_restart_device(f);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, from, "boot: 1.1.0 was never confirmed; back on 1.0.0"));
	peripheral_fixture_connect(f);
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.0.0");
	CU_ASSERT_FALSE(status->trial);
	CU_ASSERT_STRING_EQUAL(status->reverted_from, "1.1.0");
	assert_boot_state(f, "boot", "active", "a");
	/* too late to confirm the image it left */
	ASSERT_REFUSED(f, confirm(f, p->image_sha256), "update confirmation", AMU_ERROR_TAMPERED,
		       "the confirmation names another image than the running 1.0.0");
}

static void
test_offer_refused_on_trial(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = install_trial(f);
	g_autoptr(Pkg) next = pkg_new("1.2.0", 3, TRUE, 5000);

	ASSERT_REFUSED(f, offer(f, next), "update offer", AMU_ERROR_INVALID_ARGUMENT,
		       "the device runs 1.1.0 on trial: confirm it first");
	/* slot a still holds the image to go back to */
	assert_boot_state(f, "slot a", "version", "1.0.0");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-a.img"), FACTORY_SIZE);
	CU_ASSERT_FALSE(state_file_exists(f, "slot-a.offer"));
	/* once confirmed, the offer goes to slot a */
	CU_ASSERT_EQUAL_FATAL(confirm(f, p->image_sha256)->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	assert_progress(offer(f, next), next, 0);
	CU_ASSERT_PTR_NOT_NULL(
		peripheral_fixture_find_line(f, 0, "update offer: 1.2.0 (sequence 3, 5000 bytes) into slot a"));
}

/* ---------------------------------------------------------------- tests: wipes */

static void
test_factory_reset_keeps_firmware(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = install_trial(f);
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) stored = NULL;
	AmuStore *store;
	uint64_t sequence = 0;

	CU_ASSERT_EQUAL_FATAL(confirm(f, p->image_sha256)->body_case, AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	CU_ASSERT_EQUAL_FATAL(change_setting(f, "heart_rate_interval_s", "30")->body_case,
			      AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	peripheral_fixture_close_session(f);
	CU_ASSERT_TRUE(amu_device_wipe(f->device, AMU_WIPE_FLAGS_FACTORY, NULL, &error));
	if (error != NULL)
		g_printerr("  wipe: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_wait_line(f, 0, "factory reset: "));
	/* the firmware is the boot loader's: kept */
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_firmware(f->peripheral, &sequence), "1.1.0");
	CU_ASSERT_EQUAL(sequence, 2);
	assert_boot_state(f, "boot", "active", "b");
	assert_boot_state(f, "slot b", "version", "1.1.0");
	CU_ASSERT_EQUAL(state_file_size(f, "slot-b.img"), 20000);
	CU_ASSERT_EQUAL(state_file_size(f, "slot-a.img"), FACTORY_SIZE);
	/* the settings are the owner's: gone, so the defaults apply */
	store = amu_peripheral_get_store(f->peripheral);
	stored = amu_store_list_ids(store, KIND_SETTINGS, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(stored);
	CU_ASSERT_EQUAL(stored->len, 0);
	/* still a firmware 1.1.0 device after a restart */
	peripheral_fixture_restart_device(f);
	CU_ASSERT_STRING_EQUAL(amu_peripheral_get_firmware(f->peripheral, NULL), "1.1.0");
}

static void
test_wipe_data_keeps_settings(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(GError) error = NULL;
	const Amulet__V1__DeviceStatus *status;

	CU_ASSERT_EQUAL_FATAL(change_setting(f, "do_not_disturb", "23:00-06:30")->body_case,
			      AMULET__V1__MESSAGE__BODY_DEVICE_STATUS);
	peripheral_fixture_close_session(f);
	CU_ASSERT_TRUE(amu_device_wipe(f->device, AMU_WIPE_FLAGS_KEEP_LOCAL, NULL, &error));
	if (error != NULL)
		g_printerr("  wipe: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_wait_line(f, 0, "wiped: "));
	peripheral_fixture_connect(f);
	status = request_status(f);
	CU_ASSERT_STRING_EQUAL(status_setting(status, "do_not_disturb"), "23:00-06:30");
	CU_ASSERT_STRING_EQUAL(status->firmware_version, "1.0.0");
}

/* ---------------------------------------------------------------- tests: through the host library */

static GAsyncResult *pending_result;

static void
pending_ready_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	pending_result = g_object_ref(result);
}

static gboolean
have_result(PeripheralFixture *f, guint arg)
{
	return pending_result != NULL;
}

typedef struct {
	GCancellable *cancellable;
	guint64 cancel_at;
	guint64 cancelled_at;
} CancelAt;

static void
cancel_progress_cb(AmuUpdateStage stage, guint64 done, guint64 total, gpointer user_data)
{
	CancelAt *c = user_data;

	if (stage == AMU_UPDATE_STAGE_UPLOADING && done >= c->cancel_at && c->cancelled_at == 0) {
		c->cancelled_at = done;
		g_cancellable_cancel(c->cancellable);
	}
}

/* amu_device_update_async() cancelled in the middle of the upload fails
 * with CANCELLED; the next one resumes from the device's offset and the
 * device ends up running and keeping the image */
static void
test_host_update_cancelled_then_resumed(void)
{
	g_autoptr(PeripheralFixture) f = band_new();
	g_autoptr(Pkg) p = pkg_new("1.1.0", 2, TRUE, 200000);
	g_autofree char *path = g_build_filename(f->root, "update.amupkg", NULL);
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	CancelAt c = {cancellable, 30000, 0};
	g_autoptr(AmuFirmwareUpdate) update = NULL;
	g_autoptr(AmuDeviceStatus) status = NULL;
	g_autoptr(GError) error = NULL;
	const char *line;
	guint from;

	peripheral_fixture_close_session(f);
	CU_ASSERT_TRUE_FATAL(g_file_set_contents(path, g_bytes_get_data(p->package->bytes, NULL),
						 (gssize)g_bytes_get_size(p->package->bytes), NULL));
	update = amu_device_load_update(f->device, path, &error);
	CU_ASSERT_PTR_NOT_NULL_FATAL(update);

	g_clear_object(&pending_result);
	amu_device_update_async(f->device, update, AMU_UPDATE_FLAGS_NONE, cancel_progress_cb, &c, cancellable,
				pending_ready_cb, NULL);
	CU_ASSERT_TRUE_FATAL(peripheral_fixture_iterate_until(f, have_result, 0));
	status = amu_device_update_finish(f->device, pending_result, &error);
	CU_ASSERT_PTR_NULL(status);
	AMU_ASSERT_ERROR(error, AMU_ERROR_CANCELLED);
	CU_ASSERT_TRUE(c.cancelled_at >= c.cancel_at && c.cancelled_at < 200000);
	g_clear_object(&pending_result);
	g_clear_error(&error);
	g_clear_object(&status);
	CU_ASSERT_TRUE(peripheral_fixture_iterate_until(f, peripheral_fixture_no_connections, 0));
	CU_ASSERT_PTR_NULL(peripheral_fixture_find_line(f, 0, "rebooting"));

	from = f->lines->len;
	amu_device_update_async(f->device, update, AMU_UPDATE_FLAGS_NONE, NULL, NULL, NULL, pending_ready_cb, NULL);
	CU_ASSERT_TRUE_FATAL(peripheral_fixture_iterate_until(f, have_result, 0));
	status = amu_device_update_finish(f->device, pending_result, &error);
	g_clear_object(&pending_result);
	if (error != NULL)
		g_printerr("  update: %s\n", error->message);
	CU_ASSERT_PTR_NOT_NULL_FATAL(status);
	CU_ASSERT_STRING_EQUAL(amu_device_status_get_firmware_version(status), "1.1.0");
	CU_ASSERT_FALSE(amu_device_status_is_trial(status));
	line = peripheral_fixture_find_line(f, from, "resuming at ");
	CU_ASSERT_PTR_NOT_NULL(line);
	if (line != NULL)
		CU_ASSERT_TRUE(g_ascii_strtoull(strstr(line, "resuming at ") + strlen("resuming at "), NULL, 10) >= 30000);
	CU_ASSERT_PTR_NOT_NULL(peripheral_fixture_find_line(f, from, "confirmed"));
}

AMU_TEST_MAIN("peripheral-update",
	      {"a fresh device writes the factory image and its record", test_factory_files},
	      {"the disclosure names the firmware and the vendor key", test_disclosure},
	      {"a band's status and default settings", test_status_band},
	      {"a watch's default settings", test_status_watch},
	      {"a toy's default settings", test_status_toy},
	      {"settings change and persist", test_settings_change},
	      {"a setting the profile lacks is refused", test_settings_refuse_unknown_key},
	      {"a bad display_name is refused", test_settings_refuse_bad_name},
	      {"a bad do_not_disturb period is refused", test_settings_refuse_bad_period},
	      {"a bad heart_rate_interval_s is refused", test_settings_refuse_bad_seconds},
	      {"an on/off setting takes only on or off", test_settings_refuse_bad_on_off},
	      {"a settings change is all or nothing", test_settings_all_or_nothing},
	      {"an offer with a bad signature is refused", test_offer_bad_signature},
	      {"an offer from another vendor is refused", test_offer_wrong_vendor},
	      {"an offer for another device class is refused", test_offer_wrong_class},
	      {"an offer of the running sequence is refused", test_offer_rollback_equal},
	      {"an offer of an older sequence is refused", test_offer_rollback_older},
	      {"an offer whose min_sequence is not met is refused", test_offer_min_sequence},
	      {"an expired offer is refused", test_offer_expired},
	      {"an offer larger than the slot is refused", test_offer_too_large},
	      {"an accepted offer records itself in the second slot", test_offer_accepted},
	      {"chunk and install without an offer are refused", test_without_offer},
	      {"a chunk at a wrong offset is refused", test_chunk_wrong_offset},
	      {"a chunk running past the end is refused", test_chunk_past_end},
	      {"install with bytes missing is refused", test_install_truncated},
	      {"an image altered on the device's disk is discarded", test_install_altered_on_disk},
	      {"an image cut short on the device's disk is discarded", test_install_cut_on_disk},
	      {"an image altered on the way is discarded", test_install_altered_on_the_way},
	      {"an upload resumes after a dropped link", test_resume_after_drop},
	      {"an upload resumes after a device restart", test_resume_after_restart},
	      {"another offer does not resume", test_other_offer_starts_over},
	      {"a chunk at 0 starts over", test_start_over},
	      {"install boots the new image on trial", test_trial_boot},
	      {"settings survive an update", test_settings_survive_update},
	      {"confirm with the wrong digest, then the right one, twice", test_confirm},
	      {"an image that does not boot reverts at once", test_image_that_does_not_boot},
	      {"an unconfirmed trial reverts at restart", test_unconfirmed_trial_reverts},
	      {"offers are refused while on trial", test_offer_refused_on_trial},
	      {"a factory reset keeps the firmware and resets the settings", test_factory_reset_keeps_firmware},
	      {"a data wipe keeps the settings", test_wipe_data_keeps_settings},
	      {"a host update cancelled mid-upload resumes next time", test_host_update_cancelled_then_resumed})
