/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amu-peripheral-private.h"
#include "amu-update-package.h"
#include "amulet/amu-error.h"

/* The device side of docs/update.md: a simulated boot loader with two slots
 * (slot-a.img, slot-b.img and boot.state in the state dir, outside the
 * store, so a factory reset keeps the firmware), the upload of a signed image
 * into the slot that is not running, and the trial boot and its
 * confirmation. The status and settings are in amu-peripheral-settings.c. */

#define BOOT_STATE_FILE "boot.state"
#define FACTORY_VERSION "1.0.0"
#define FACTORY_SEQUENCE 1
#define FACTORY_SIZE 65536
#define SYNC_EVERY (64 * 1024) /* fdatasync the slot at least this often */
#define READ_BLOCK (64 * 1024)
#define REBOOT_DELAY_MS 100 /* lets the reply to UpdateInstall go out first */

struct PeripheralUpload {
	PeripheralConn *conn; /* the connection that offered it */
	AmuUpdateManifest *manifest;
	unsigned int slot;
	int fd;
	uint64_t next_offset;
	uint64_t unsynced;
	crypto_hash_sha256_state hash; /* of bytes [0, next_offset) */
};

static char
slot_letter(unsigned int slot)
{
	return slot == 0 ? 'a' : 'b';
}

static char *
slot_path(AmuPeripheral *peripheral, unsigned int slot, const char *suffix)
{
	g_autofree char *name = g_strdup_printf("slot-%c.%s", slot_letter(slot), suffix);
	return g_build_filename(peripheral->state_dir, name, NULL);
}

/* "cannot <action> <path>: <reason>" */
static void
set_errno_error(GError **error, int errsv, const char *action, const char *path)
{
	g_set_error(error, AMU_ERROR, errsv == ENOSPC ? AMU_ERROR_NO_SPACE : AMU_ERROR_IO, "cannot %s %s: %s", action,
		    path, g_strerror(errsv));
}

/* writes a whole small file durably (write, fsync, rename) */
static gboolean
write_file(const char *path, const void *data, size_t len, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (g_file_set_contents_full(path, data, (gssize)len,
				     G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0600, &error_local))
		return TRUE;
	g_set_error(error, AMU_ERROR,
		    g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOSPC) ? AMU_ERROR_NO_SPACE : AMU_ERROR_IO,
		    "%s", error_local->message);
	return FALSE;
}

static gboolean
remove_file(const char *path, GError **error)
{
	if (g_unlink(path) != 0 && errno != ENOENT) {
		set_errno_error(error, errno, "remove", path);
		return FALSE;
	}
	return TRUE;
}

/* ---------------------------------------------------------------- boot.state */

static void
slot_clear(PeripheralSlot *slot)
{
	g_clear_pointer(&slot->version, g_free);
	slot->sequence = 0;
	slot->present = FALSE;
	memset(slot->sha256, 0, sizeof(slot->sha256));
}

static void
boot_clear(PeripheralBoot *boot)
{
	slot_clear(&boot->slots[0]);
	slot_clear(&boot->slots[1]);
	g_clear_pointer(&boot->reverted_from, g_free);
	boot->active = 0;
	boot->trial = FALSE;
	boot->pending_trial = FALSE;
}

static gboolean
save_boot(AmuPeripheral *peripheral, GError **error)
{
	const PeripheralBoot *boot = &peripheral->boot;
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_autofree char *path = g_build_filename(peripheral->state_dir, BOOT_STATE_FILE, NULL);
	g_autofree char *data = NULL;
	char active[2] = {slot_letter(boot->active), '\0'};
	gsize len = 0;

	g_key_file_set_string(file, "boot", "active", active);
	g_key_file_set_boolean(file, "boot", "trial", boot->trial);
	g_key_file_set_boolean(file, "boot", "pending_trial", boot->pending_trial);
	g_key_file_set_string(file, "boot", "reverted_from", boot->reverted_from != NULL ? boot->reverted_from : "");
	for (unsigned int i = 0; i < 2; i++) {
		char group[8] = "slot x";
		char hex[65];
		if (!boot->slots[i].present)
			continue;
		group[5] = slot_letter(i);
		sodium_bin2hex(hex, sizeof(hex), boot->slots[i].sha256, 32);
		g_key_file_set_string(file, group, "version", boot->slots[i].version);
		g_key_file_set_uint64(file, group, "sequence", boot->slots[i].sequence);
		g_key_file_set_string(file, group, "sha256", hex);
	}
	data = g_key_file_to_data(file, &len, NULL);
	if (!write_file(path, data, len, error)) {
		g_prefix_error(error, "recording the firmware state: ");
		return FALSE;
	}
	return TRUE;
}

static gboolean
parse_boot(GKeyFile *file, PeripheralBoot *boot, GError **error)
{
	g_autofree char *active = g_key_file_get_string(file, "boot", "active", error);

	if (active == NULL)
		return FALSE;
	if (g_strcmp0(active, "a") != 0 && g_strcmp0(active, "b") != 0) {
		g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "active slot '%s' is not a or b",
			    active);
		return FALSE;
	}
	boot->active = active[0] == 'a' ? 0 : 1;
	boot->trial = g_key_file_get_boolean(file, "boot", "trial", error);
	if (error != NULL && *error != NULL)
		return FALSE;
	boot->pending_trial = g_key_file_get_boolean(file, "boot", "pending_trial", error);
	if (error != NULL && *error != NULL)
		return FALSE;
	boot->reverted_from = g_key_file_get_string(file, "boot", "reverted_from", error);
	if (boot->reverted_from == NULL)
		return FALSE;
	if (boot->reverted_from[0] == '\0')
		g_clear_pointer(&boot->reverted_from, g_free);
	for (unsigned int i = 0; i < 2; i++) {
		char group[8] = "slot x";
		g_autofree char *hex = NULL;
		size_t bin_len = 0;
		group[5] = slot_letter(i);
		if (!g_key_file_has_group(file, group))
			continue;
		boot->slots[i].version = g_key_file_get_string(file, group, "version", error);
		if (boot->slots[i].version == NULL)
			return FALSE;
		boot->slots[i].sequence = g_key_file_get_uint64(file, group, "sequence", error);
		if (error != NULL && *error != NULL)
			return FALSE;
		hex = g_key_file_get_string(file, group, "sha256", error);
		if (hex == NULL)
			return FALSE;
		if (strlen(hex) != 64 ||
		    sodium_hex2bin(boot->slots[i].sha256, 32, hex, 64, NULL, &bin_len, NULL) != 0 || bin_len != 32) {
			g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
				    "slot %c's sha256 is not 64 hex digits", slot_letter(i));
			return FALSE;
		}
		boot->slots[i].present = TRUE;
	}
	if (!boot->slots[boot->active].present) {
		g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "the active slot %c holds no image",
			    slot_letter(boot->active));
		return FALSE;
	}
	return TRUE;
}

/* FALSE with no error: there is no boot.state yet */
static gboolean
load_boot(AmuPeripheral *peripheral, GError **error)
{
	g_autofree char *path = g_build_filename(peripheral->state_dir, BOOT_STATE_FILE, NULL);
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_autoptr(GError) error_local = NULL;

	boot_clear(&peripheral->boot);
	if (!g_key_file_load_from_file(file, path, G_KEY_FILE_NONE, &error_local)) {
		if (g_error_matches(error_local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return FALSE;
		g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "cannot read %s: %s", path, error_local->message);
		return FALSE;
	}
	if (!parse_boot(file, &peripheral->boot, &error_local)) {
		boot_clear(&peripheral->boot);
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "%s is damaged (%s): remove it and slot-a.img, slot-b.img to go back to the factory image",
			    path, error_local->message);
		return FALSE;
	}
	return TRUE;
}

/* a fresh device: the factory image in slot a */
static gboolean
install_factory_image(AmuPeripheral *peripheral, GError **error)
{
	g_autoptr(GBytes) image = amu_sim_image_build(FACTORY_VERSION, FACTORY_SEQUENCE, TRUE, FACTORY_SIZE);
	g_autofree char *path = slot_path(peripheral, 0, "img");
	g_autofree char *offer = slot_path(peripheral, 1, "offer");
	PeripheralBoot *boot = &peripheral->boot;
	gsize len = 0;
	const uint8_t *data = g_bytes_get_data(image, &len);

	if (!write_file(path, data, len, error) || !remove_file(offer, error)) {
		g_prefix_error(error, "writing the factory image: ");
		return FALSE;
	}
	boot_clear(boot);
	boot->slots[0].present = TRUE;
	boot->slots[0].version = g_strdup(FACTORY_VERSION);
	boot->slots[0].sequence = FACTORY_SEQUENCE;
	crypto_hash_sha256(boot->slots[0].sha256, data, len);
	if (!save_boot(peripheral, error))
		return FALSE;
	plog(peripheral, "boot: factory image %s (sequence %d) in slot a", FACTORY_VERSION, FACTORY_SEQUENCE);
	return TRUE;
}

/* the simulated boot loader's check of a slot: the image is the one recorded
 * (its SHA-256) and its header says it boots */
static gboolean
slot_boots(AmuPeripheral *peripheral, unsigned int slot, char **why)
{
	const PeripheralSlot *record = &peripheral->boot.slots[slot];
	g_autofree char *path = slot_path(peripheral, slot, "img");
	g_autoptr(GError) error = NULL;
	g_autoptr(GMappedFile) mapped = NULL;
	const uint8_t *data;
	size_t len;
	uint8_t digest[32];

	if (!record->present) {
		*why = g_strdup_printf("slot %c holds no image", slot_letter(slot));
		return FALSE;
	}
	mapped = g_mapped_file_new(path, FALSE, &error);
	if (mapped == NULL) {
		*why = g_strdup(error->message);
		return FALSE;
	}
	data = (const uint8_t *)g_mapped_file_get_contents(mapped);
	len = g_mapped_file_get_length(mapped);
	crypto_hash_sha256(digest, data != NULL ? data : (const uint8_t *)"", len);
	if (sodium_memcmp(digest, record->sha256, 32) != 0) {
		*why = g_strdup_printf("%s does not match its recorded SHA-256", path);
		return FALSE;
	}
	if (data == NULL || !amu_sim_image_boots(data, len, NULL, NULL)) {
		*why = g_strdup_printf("the image in slot %c does not boot", slot_letter(slot));
		return FALSE;
	}
	return TRUE;
}

gboolean
amu_peripheral_boot(AmuPeripheral *peripheral, GError **error)
{
	PeripheralBoot *boot = &peripheral->boot;
	g_autoptr(GError) error_local = NULL;
	g_autofree char *why = NULL;
	unsigned int other;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	if (g_mkdir_with_parents(peripheral->state_dir, 0700) != 0) {
		set_errno_error(error, errno, "create", peripheral->state_dir);
		return FALSE;
	}
	if (!load_boot(peripheral, &error_local)) {
		if (error_local != NULL) {
			g_propagate_error(error, g_steal_pointer(&error_local));
			return FALSE;
		}
		return install_factory_image(peripheral, error);
	}
	other = 1 - boot->active;
	if (boot->pending_trial) {
		const PeripheralSlot *next = &boot->slots[other];
		boot->pending_trial = FALSE;
		if (slot_boots(peripheral, other, &why)) {
			boot->active = other;
			boot->trial = TRUE;
			g_clear_pointer(&boot->reverted_from, g_free);
			plog(peripheral, "boot: trying %s (sequence %" G_GUINT64_FORMAT ") from slot %c", next->version,
			     next->sequence, slot_letter(other));
		} else {
			g_free(boot->reverted_from);
			boot->reverted_from = g_strdup(next->version != NULL ? next->version : "");
			plog(peripheral, "boot: %s did not boot (%s); back on %s", boot->reverted_from, why,
			     boot->slots[boot->active].version);
		}
		if (!save_boot(peripheral, error))
			return FALSE;
	} else if (boot->trial) {
		const char *trial_version = boot->slots[boot->active].version;
		boot->trial = FALSE;
		if (slot_boots(peripheral, other, &why)) {
			g_free(boot->reverted_from);
			boot->reverted_from = g_strdup(trial_version);
			boot->active = other;
			plog(peripheral, "boot: %s was never confirmed; back on %s", boot->reverted_from,
			     boot->slots[other].version);
		} else {
			/* nothing to go back to: keeping what runs beats not running */
			plog(peripheral, "boot: %s was never confirmed, but there is no image to go back to (%s); keeping it",
			     trial_version, why);
		}
		if (!save_boot(peripheral, error))
			return FALSE;
	}
	g_clear_pointer(&why, g_free);
	if (!slot_boots(peripheral, boot->active, &why)) {
		g_autofree char *state = g_build_filename(peripheral->state_dir, BOOT_STATE_FILE, NULL);
		g_set_error(error, AMU_ERROR, AMU_ERROR_STORE,
			    "the running firmware is damaged: %s; remove %s and the slot files to go back to the factory image",
			    why, state);
		return FALSE;
	}
	return TRUE;
}

const char *
amu_peripheral_get_firmware(AmuPeripheral *peripheral, uint64_t *sequence)
{
	const PeripheralSlot *running = &peripheral->boot.slots[peripheral->boot.active];

	if (sequence != NULL)
		*sequence = running->sequence;
	return running->version;
}

void
amu_peripheral_set_vendor(AmuPeripheral *peripheral, const char *vendor_id, const uint8_t public_key[32])
{
	g_free(peripheral->vendor_id);
	peripheral->vendor_id = g_strdup(vendor_id);
	memcpy(peripheral->vendor_public, public_key, sizeof(peripheral->vendor_public));
}

void
amu_peripheral_set_slot_size(AmuPeripheral *peripheral, uint64_t bytes)
{
	peripheral->slot_size = bytes;
}

/* ---------------------------------------------------------------- replies */

void
amu_peripheral_refuse(PeripheralConn *conn, const char *what, const GError *error)
{
	plog(conn->peripheral, "%s refused: %s", what, error->message);
	amu_peripheral_send_error(conn, error);
}

static void
send_progress(PeripheralConn *conn, const uint8_t manifest_sha256[32], uint64_t next_offset,
	      const uint8_t sha256_so_far[32], gboolean installed)
{
	Amulet__V1__Message reply = AMULET__V1__MESSAGE__INIT;
	Amulet__V1__UpdateProgress progress = AMULET__V1__UPDATE_PROGRESS__INIT;
	g_autoptr(GError) error = NULL;

	progress.manifest_sha256.data = (uint8_t *)manifest_sha256;
	progress.manifest_sha256.len = 32;
	progress.next_offset = next_offset;
	progress.sha256_so_far.data = (uint8_t *)sha256_so_far;
	progress.sha256_so_far.len = 32;
	progress.installed = installed;
	reply.body_case = AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS;
	reply.update_progress = &progress;
	if (!amu_channel_send(conn->channel, &reply, &error))
		plog(conn->peripheral, "sending the update progress failed: %s", error->message);
}

static void
send_upload_progress(PeripheralConn *conn, const PeripheralUpload *upload)
{
	crypto_hash_sha256_state copy = upload->hash;
	uint8_t so_far[32];

	crypto_hash_sha256_final(&copy, so_far);
	send_progress(conn, upload->manifest->manifest_sha256, upload->next_offset, so_far, FALSE);
}

/* ---------------------------------------------------------------- upload */

static void
upload_free(PeripheralUpload *upload)
{
	if (upload == NULL)
		return;
	if (upload->fd >= 0) {
		(void)fdatasync(upload->fd);
		close(upload->fd);
	}
	amu_update_manifest_free(upload->manifest);
	g_free(upload);
}

static void
upload_stop(AmuPeripheral *peripheral)
{
	g_clear_pointer(&peripheral->upload, upload_free);
}

/* hashes the first @len bytes of @fd into @hash, a block at a time */
static gboolean
hash_fd(int fd, uint64_t len, crypto_hash_sha256_state *hash, const char *path, GError **error)
{
	g_autofree uint8_t *block = g_malloc(READ_BLOCK);
	uint64_t done = 0;

	while (done < len) {
		size_t want = (size_t)MIN((uint64_t)READ_BLOCK, len - done);
		ssize_t got = pread(fd, block, want, (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			set_errno_error(error, errno, "read", path);
			return FALSE;
		}
		if (got == 0) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_IO, "%s ends at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
				    path, done, len);
			return FALSE;
		}
		crypto_hash_sha256_update(hash, block, (unsigned long long)got);
		done += (uint64_t)got;
	}
	return TRUE;
}

/* TRUE if slot-X.offer records the offer named @manifest_sha256 */
static gboolean
offer_matches(const char *path, const uint8_t manifest_sha256[32])
{
	g_autofree char *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &data, &len, NULL))
		return FALSE;
	return len >= 32 && memcmp(data, manifest_sha256, 32) == 0;
}

/* slot-X.offer: the manifest's SHA-256, the signature, the manifest */
static gboolean
offer_save(const char *path, const AmuUpdateManifest *m, GError **error)
{
	g_autoptr(GByteArray) record = g_byte_array_new();
	gsize len = 0;
	const uint8_t *manifest = g_bytes_get_data(m->manifest_bytes, &len);

	g_byte_array_append(record, m->manifest_sha256, 32);
	g_byte_array_append(record, m->signature, sizeof(m->signature));
	g_byte_array_append(record, manifest, (guint)len);
	return write_file(path, record->data, record->len, error);
}

static PeripheralUpload *
upload_start(PeripheralConn *conn, AmuUpdateManifest *m, gboolean *resumed, GError **error)
{
	AmuPeripheral *peripheral = conn->peripheral;
	unsigned int slot = 1 - peripheral->boot.active;
	g_autofree char *path = slot_path(peripheral, slot, "img");
	g_autofree char *offer = slot_path(peripheral, slot, "offer");
	uint64_t payload_size = m->manifest->payload_size;
	PeripheralUpload *upload = g_new0(PeripheralUpload, 1);
	struct stat st;

	upload->conn = conn;
	upload->slot = slot;
	upload->manifest = m;
	crypto_hash_sha256_init(&upload->hash);
	*resumed = offer_matches(offer, m->manifest_sha256);
	if (!*resumed) {
		/* the slot stops being a bootable image before its bytes change */
		slot_clear(&peripheral->boot.slots[slot]);
		if (!save_boot(peripheral, error) || !remove_file(offer, error)) {
			upload->fd = -1;
			upload_free(upload);
			return NULL;
		}
	}
	upload->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (upload->fd < 0) {
		set_errno_error(error, errno, "open", path);
		upload_free(upload);
		return NULL;
	}
	if (*resumed) {
		if (fstat(upload->fd, &st) != 0) {
			set_errno_error(error, errno, "stat", path);
			upload_free(upload);
			return NULL;
		}
		upload->next_offset = MIN((uint64_t)st.st_size, payload_size);
		if ((uint64_t)st.st_size > payload_size && ftruncate(upload->fd, (off_t)payload_size) != 0) {
			set_errno_error(error, errno, "truncate", path);
			upload_free(upload);
			return NULL;
		}
		if (!hash_fd(upload->fd, upload->next_offset, &upload->hash, path, error)) {
			upload_free(upload);
			return NULL;
		}
		return upload;
	}
	if (ftruncate(upload->fd, 0) != 0 || fdatasync(upload->fd) != 0) {
		set_errno_error(error, errno, "empty", path);
		upload_free(upload);
		return NULL;
	}
	if (!offer_save(offer, m, error)) {
		upload_free(upload);
		return NULL;
	}
	return upload;
}

static void
handle_offer(PeripheralConn *conn, const Amulet__V1__UpdateOffer *offer)
{
	AmuPeripheral *peripheral = conn->peripheral;
	const PeripheralBoot *boot = &peripheral->boot;
	const PeripheralSlot *running = &boot->slots[boot->active];
	g_autoptr(GError) error = NULL;
	g_autoptr(AmuUpdateManifest) m = NULL;
	PeripheralUpload *upload;
	gboolean resumed = FALSE;

	if (boot->pending_trial) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "%s is installed and the device is rebooting into it: offer again once it runs",
				    boot->slots[1 - boot->active].version);
		amu_peripheral_refuse(conn, "update offer", error);
		return;
	}
	if (boot->trial) {
		/* the other slot holds the image to go back to: keep it */
		error = g_error_new(AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT,
				    "the device runs %s on trial: confirm it first (amulet update does so once it checks the "
				    "running image), or restart the device to go back to %s",
				    running->version, boot->slots[1 - boot->active].version);
		amu_peripheral_refuse(conn, "update offer", error);
		return;
	}
	m = amu_update_manifest_open(offer->manifest.data, offer->manifest.len, offer->signature.data,
				     offer->signature.len, peripheral->vendor_public, &error);
	if (m == NULL) {
		amu_peripheral_refuse(conn, "update offer", error);
		return;
	}
	if (!amu_update_manifest_check_target(m, peripheral->vendor_id,
					      amu_peripheral_profile_to_string(peripheral->profile), running->sequence,
					      peripheral->slot_size,
					      g_get_real_time() / 1000 + peripheral->clock_offset_ms, &error)) {
		amu_peripheral_refuse(conn, "update offer", error);
		return;
	}
	upload_stop(peripheral);
	upload = upload_start(conn, m, &resumed, &error);
	if (upload == NULL) {
		/* upload_start() freed the manifest */
		g_steal_pointer(&m);
		g_prefix_error(&error, "preparing slot %c: ", slot_letter(1 - boot->active));
		amu_peripheral_refuse(conn, "update offer", error);
		return;
	}
	g_steal_pointer(&m);
	peripheral->upload = upload;
	plog(peripheral,
	     "update offer: %s (sequence %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " bytes) into slot %c, %s at %"
	     G_GUINT64_FORMAT,
	     upload->manifest->manifest->version, upload->manifest->manifest->sequence,
	     upload->manifest->manifest->payload_size, slot_letter(upload->slot),
	     resumed ? "resuming" : "starting", upload->next_offset);
	send_upload_progress(conn, upload);
}

static PeripheralUpload *
upload_of(PeripheralConn *conn, const char *what, GError **error)
{
	PeripheralUpload *upload = conn->peripheral->upload;

	if (upload == NULL || upload->conn != conn) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_PROTOCOL,
			    "%s before an accepted UpdateOffer on this connection: offer the update first", what);
		return NULL;
	}
	return upload;
}

static gboolean
upload_write(PeripheralUpload *upload, const char *path, const uint8_t *data, size_t len, GError **error)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(upload->fd, data + done, len - done, (off_t)(upload->next_offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int errsv = errno;
			/* nothing past next_offset may count on a resume */
			(void)ftruncate(upload->fd, (off_t)upload->next_offset);
			set_errno_error(error, errsv, "write", path);
			return FALSE;
		}
		done += (size_t)n;
	}
	return TRUE;
}

static void
handle_chunk(PeripheralConn *conn, const Amulet__V1__UpdateChunk *chunk)
{
	AmuPeripheral *peripheral = conn->peripheral;
	g_autoptr(GError) error = NULL;
	PeripheralUpload *upload = upload_of(conn, "UpdateChunk", &error);
	g_autofree char *path = NULL;
	uint64_t payload_size;

	if (upload == NULL) {
		amu_peripheral_refuse(conn, "update chunk", error);
		return;
	}
	path = slot_path(peripheral, upload->slot, "img");
	payload_size = upload->manifest->manifest->payload_size;
	if (chunk->offset == 0 && upload->next_offset != 0) {
		/* the host starts over */
		if (ftruncate(upload->fd, 0) != 0) {
			set_errno_error(&error, errno, "empty", path);
			amu_peripheral_refuse(conn, "update chunk", error);
			return;
		}
		upload->next_offset = 0;
		upload->unsynced = 0;
		crypto_hash_sha256_init(&upload->hash);
		plog(peripheral, "update: the host starts %s over from byte 0", upload->manifest->manifest->version);
	}
	if (chunk->offset != upload->next_offset) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "chunk at %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT
				    ": resume from the device's offset",
				    chunk->offset, upload->next_offset);
		amu_peripheral_refuse(conn, "update chunk", error);
		return;
	}
	if (chunk->data.len > payload_size - upload->next_offset) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "chunk of %zu bytes at %" G_GUINT64_FORMAT " runs past the image's %" G_GUINT64_FORMAT
				    " bytes",
				    chunk->data.len, chunk->offset, payload_size);
		amu_peripheral_refuse(conn, "update chunk", error);
		return;
	}
	if (!upload_write(upload, path, chunk->data.data, chunk->data.len, &error)) {
		amu_peripheral_refuse(conn, "update chunk", error);
		return;
	}
	crypto_hash_sha256_update(&upload->hash, chunk->data.data, chunk->data.len);
	upload->next_offset += chunk->data.len;
	upload->unsynced += chunk->data.len;
	if (upload->unsynced >= SYNC_EVERY || upload->next_offset == payload_size) {
		if (fdatasync(upload->fd) != 0) {
			set_errno_error(&error, errno, "sync", path);
			amu_peripheral_refuse(conn, "update chunk", error);
			return;
		}
		upload->unsynced = 0;
	}
	if (upload->next_offset == payload_size && chunk->data.len > 0)
		plog(peripheral, "update: all %" G_GUINT64_FORMAT " bytes of %s received", payload_size,
		     upload->manifest->manifest->version);
	send_upload_progress(conn, upload);
}

static gboolean
reboot_cb(gpointer user_data)
{
	AmuPeripheral *peripheral = user_data;
	const PeripheralSlot *next = &peripheral->boot.slots[1 - peripheral->boot.active];
	g_autofree char *line = g_strdup_printf("rebooting into %s", next->version);
	g_autoptr(GError) error = NULL;
	GHashTableIter iter;
	gpointer value;

	peripheral->reboot_source = 0;
	plog(peripheral, "rebooting into %s (sequence %" G_GUINT64_FORMAT ") from slot %c", next->version,
	     next->sequence, slot_letter(1 - peripheral->boot.active));
	upload_stop(peripheral);
	g_hash_table_iter_init(&iter, peripheral->conns);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		PeripheralConn *conn = value;
		g_autoptr(GError) gone = g_error_new_literal(AMU_ERROR, AMU_ERROR_DISCONNECTED, line);
		/* the log goes with the store: no sender may keep it */
		g_clear_pointer(&conn->sync, amu_sync_sender_free);
		amu_channel_abort(conn->channel, gone);
		amu_connection_close(conn->connection);
	}
	if (!amu_peripheral_boot(peripheral, &error) || !amu_peripheral_open_state(peripheral, &error)) {
		/* a device that cannot start stays dark */
		plog(peripheral, "the device failed to start: %s", error->message);
		g_clear_pointer(&peripheral->listener, amu_link_listener_free);
		return G_SOURCE_REMOVE;
	}
	plog(peripheral, "running %s (sequence %" G_GUINT64_FORMAT ")%s", amu_peripheral_get_firmware(peripheral, NULL),
	     peripheral->boot.slots[peripheral->boot.active].sequence, peripheral->boot.trial ? " on trial" : "");
	amu_peripheral_advert_changed(peripheral);
	return G_SOURCE_REMOVE;
}

static void
handle_install(PeripheralConn *conn, const Amulet__V1__UpdateInstall *install)
{
	AmuPeripheral *peripheral = conn->peripheral;
	g_autoptr(GError) error = NULL;
	PeripheralUpload *upload = upload_of(conn, "UpdateInstall", &error);
	g_autofree char *path = NULL;
	g_autofree char *offer = NULL;
	const Amulet__V1__UpdateManifest *manifest;
	crypto_hash_sha256_state hash;
	uint8_t digest[32], manifest_sha256[32];
	PeripheralSlot *slot;
	uint64_t payload_size;
	struct stat st;

	if (upload == NULL) {
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	manifest = upload->manifest->manifest;
	if (install->manifest_sha256.len != 32 ||
	    memcmp(install->manifest_sha256.data, upload->manifest->manifest_sha256, 32) != 0) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "install names another update than the one offered (%s): offer it first",
				    manifest->version);
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	if (upload->next_offset != manifest->payload_size) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_PROTOCOL,
				    "install asked with %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
				    " bytes: send the rest first",
				    upload->next_offset, manifest->payload_size);
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	path = slot_path(peripheral, upload->slot, "img");
	offer = slot_path(peripheral, upload->slot, "offer");
	/* the digest of what is on the disk, not of what was received */
	crypto_hash_sha256_init(&hash);
	if (fdatasync(upload->fd) != 0 || fstat(upload->fd, &st) != 0) {
		set_errno_error(&error, errno, "sync", path);
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	if ((uint64_t)st.st_size != manifest->payload_size) {
		error = g_error_new(AMU_ERROR, AMU_ERROR_TAMPERED,
				    "%s holds %" G_GUINT64_FORMAT " bytes, not the manifest's %" G_GUINT64_FORMAT
				    ": discarded; offer the update again",
				    path, (uint64_t)st.st_size, manifest->payload_size);
	} else if (!hash_fd(upload->fd, manifest->payload_size, &hash, path, &error)) {
		amu_peripheral_refuse(conn, "update install", error);
		return;
	} else {
		crypto_hash_sha256_final(&hash, digest);
		if (sodium_memcmp(digest, manifest->payload_sha256.data, 32) != 0)
			error = g_error_new(AMU_ERROR, AMU_ERROR_TAMPERED,
					    "the image received for %s does not match the SHA-256 its signed manifest names: "
					    "it was altered or corrupted on the way; discarded, offer the update again",
					    manifest->version);
	}
	if (error != NULL) {
		if (ftruncate(upload->fd, 0) != 0)
			plog(peripheral, "cannot empty %s: %s", path, g_strerror(errno));
		if (!remove_file(offer, NULL))
			plog(peripheral, "cannot remove %s", offer);
		upload_stop(peripheral);
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	slot = &peripheral->boot.slots[upload->slot];
	slot_clear(slot);
	slot->present = TRUE;
	slot->version = g_strdup(manifest->version);
	slot->sequence = manifest->sequence;
	memcpy(slot->sha256, digest, 32);
	peripheral->boot.pending_trial = TRUE;
	if (!save_boot(peripheral, &error)) {
		peripheral->boot.pending_trial = FALSE;
		slot_clear(slot);
		amu_peripheral_refuse(conn, "update install", error);
		return;
	}
	if (!remove_file(offer, &error)) {
		plog(peripheral, "%s", error->message);
		g_clear_error(&error);
	}
	plog(peripheral, "update: installed %s (sequence %" G_GUINT64_FORMAT ") in slot %c; rebooting into it for a trial",
	     manifest->version, manifest->sequence, slot_letter(upload->slot));
	memcpy(manifest_sha256, upload->manifest->manifest_sha256, 32);
	payload_size = manifest->payload_size;
	upload_stop(peripheral);
	send_progress(conn, manifest_sha256, payload_size, digest, TRUE);
	if (peripheral->reboot_source == 0)
		peripheral->reboot_source = g_timeout_add(REBOOT_DELAY_MS, reboot_cb, peripheral);
}

static void
handle_confirm(PeripheralConn *conn, const Amulet__V1__UpdateConfirm *confirm)
{
	AmuPeripheral *peripheral = conn->peripheral;
	PeripheralBoot *boot = &peripheral->boot;
	const PeripheralSlot *running = &boot->slots[boot->active];
	g_autoptr(GError) error = NULL;

	if (confirm->firmware_sha256.len != 32 || sodium_memcmp(confirm->firmware_sha256.data, running->sha256, 32) != 0) {
		char hex[65];
		sodium_bin2hex(hex, sizeof(hex), running->sha256, 32);
		error = g_error_new(AMU_ERROR, AMU_ERROR_TAMPERED,
				    "the confirmation names another image than the running %s (SHA-256 %.16s…): not "
				    "kept%s",
				    running->version, hex, boot->trial ? "; a restart goes back to the previous image" : "");
		amu_peripheral_refuse(conn, "update confirmation", error);
		return;
	}
	if (boot->trial) {
		boot->trial = FALSE;
		g_clear_pointer(&boot->reverted_from, g_free);
		if (!save_boot(peripheral, &error)) {
			boot->trial = TRUE;
			amu_peripheral_refuse(conn, "update confirmation", error);
			return;
		}
		plog(peripheral, "update: %s (sequence %" G_GUINT64_FORMAT ") confirmed; slot %c kept", running->version,
		     running->sequence, slot_letter(boot->active));
	}
	amu_peripheral_send_status(conn);
}

void
amu_peripheral_handle_update(PeripheralConn *conn, const Amulet__V1__Message *message)
{
	switch (message->body_case) {
	case AMULET__V1__MESSAGE__BODY_STATUS_REQUEST:
		amu_peripheral_send_status(conn);
		return;
	case AMULET__V1__MESSAGE__BODY_UPDATE_OFFER:
		handle_offer(conn, message->update_offer);
		return;
	case AMULET__V1__MESSAGE__BODY_UPDATE_CHUNK:
		handle_chunk(conn, message->update_chunk);
		return;
	case AMULET__V1__MESSAGE__BODY_UPDATE_INSTALL:
		handle_install(conn, message->update_install);
		return;
	case AMULET__V1__MESSAGE__BODY_UPDATE_CONFIRM:
		handle_confirm(conn, message->update_confirm);
		return;
	case AMULET__V1__MESSAGE__BODY_SETTINGS_CHANGE:
		amu_peripheral_handle_settings(conn, message->settings_change);
		return;
	case AMULET__V1__MESSAGE__BODY_PING:
	case AMULET__V1__MESSAGE__BODY_DISCLOSURE:
	case AMULET__V1__MESSAGE__BODY_COMMIT:
	case AMULET__V1__MESSAGE__BODY_NONCE:
	case AMULET__V1__MESSAGE__BODY_REVEAL:
	case AMULET__V1__MESSAGE__BODY_CONFIRM:
	case AMULET__V1__MESSAGE__BODY_DONE:
	case AMULET__V1__MESSAGE__BODY_ERROR:
	case AMULET__V1__MESSAGE__BODY_PONG:
	case AMULET__V1__MESSAGE__BODY_SYNC_REQUEST:
	case AMULET__V1__MESSAGE__BODY_SYNC_START:
	case AMULET__V1__MESSAGE__BODY_SYNC_BATCH:
	case AMULET__V1__MESSAGE__BODY_SYNC_ACK:
	case AMULET__V1__MESSAGE__BODY_OWNER_COMMAND:
	case AMULET__V1__MESSAGE__BODY_COMMAND_RECEIPT:
	case AMULET__V1__MESSAGE__BODY_DEVICE_STATUS:
	case AMULET__V1__MESSAGE__BODY_UPDATE_PROGRESS:
	case AMULET__V1__MESSAGE__BODY__NOT_SET:
	case _AMULET__V1__MESSAGE__BODY__CASE_IS_INT_SIZE:
		break;
	}
	g_return_if_reached();
}

void
amu_peripheral_update_conn_closed(PeripheralConn *conn)
{
	AmuPeripheral *peripheral = conn->peripheral;

	if (peripheral->upload != NULL && peripheral->upload->conn == conn)
		upload_stop(peripheral);
}

void
amu_peripheral_update_free(AmuPeripheral *peripheral)
{
	if (peripheral->reboot_source != 0)
		g_source_remove(peripheral->reboot_source);
	peripheral->reboot_source = 0;
	upload_stop(peripheral);
	boot_clear(&peripheral->boot);
}
