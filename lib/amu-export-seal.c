/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <nettle/sha2.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "amu-export-private.h"
#include "amu-private.h"

/* A sealed export (docs/export.md):
 *
 *   "AMUSEAL1"
 *   crypto_box_seal(recipient, stream key)                 80 bytes
 *   secretstream header                                    24 bytes
 *   chunks: length (4 bytes LE) || secretstream ciphertext
 *
 * The plaintext is, for each file, a chunk holding
 * name length (2 bytes LE) || name || size (8 bytes LE), then its content in
 * chunks of at most 64 KiB; a last empty chunk tagged FINAL ends it, so a
 * cut-off file is detected. Only the recipient's secret key opens the key. */

#define CHUNK (64 * 1024)
#define SEALED_KEY_BYTES (crypto_box_SEALBYTES + crypto_secretstream_xchacha20poly1305_KEYBYTES)

static int
io_code(int errsv)
{
	if (errsv == ENOSPC || errsv == EDQUOT)
		return AMU_ERROR_NO_SPACE;
	if (errsv == EACCES || errsv == EPERM || errsv == EROFS)
		return AMU_ERROR_PERMISSION_DENIED;
	if (errsv == ENOENT)
		return AMU_ERROR_NOT_FOUND;
	return AMU_ERROR_IO;
}

static gboolean
io_error(GError **error, const char *verb, const char *path)
{
	int errsv = errno;
	g_set_error(error, AMU_ERROR, io_code(errsv), "cannot %s %s: %s", verb, path, g_strerror(errsv));
	return FALSE;
}

/* nettle's, as the export writer's: it uses the CPU's SHA instructions */
char *
amu_export_file_sha256(const char *path, guint64 *size, GError **error)
{
	FILE *f = fopen(path, "rb");
	struct sha256_ctx state;
	uint8_t digest[SHA256_DIGEST_SIZE];
	g_autofree uint8_t *buf = g_malloc(CHUNK);
	char *hex;
	size_t n;

	if (f == NULL) {
		io_error(error, "read", path);
		return NULL;
	}
	sha256_init(&state);
	*size = 0;
	while ((n = fread(buf, 1, CHUNK, f)) > 0) {
		sha256_update(&state, n, buf);
		*size += n;
	}
	if (ferror(f)) {
		io_error(error, "read", path);
		fclose(f);
		return NULL;
	}
	fclose(f);
	sha256_digest(&state, sizeof(digest), digest);
	hex = g_malloc(sizeof(digest) * 2 + 1);
	sodium_bin2hex(hex, sizeof(digest) * 2 + 1, digest, sizeof(digest));
	return hex;
}

static gboolean
push(FILE *out, crypto_secretstream_xchacha20poly1305_state *state, const uint8_t *data, size_t len, uint8_t tag,
     uint8_t *cipher, const char *path, GError **error)
{
	unsigned long long clen = 0;
	uint8_t prefix[4];

	crypto_secretstream_xchacha20poly1305_push(state, cipher, &clen, data, len, NULL, 0, tag);
	for (int i = 0; i < 4; i++)
		prefix[i] = (uint8_t)(clen >> (8 * i));
	if (fwrite(prefix, 1, 4, out) != 4 || fwrite(cipher, 1, (size_t)clen, out) != clen)
		return io_error(error, "write", path);
	return TRUE;
}

gboolean
amu_export_seal_dir(const char *dir, GPtrArray *files, const uint8_t recipient_public_key[32],
		    const char *sealed_path, GError **error)
{
	g_autofree char *tmp_path = g_strdup_printf("%s.tmp", sealed_path);
	g_autofree uint8_t *buf = g_malloc(CHUNK);
	g_autofree uint8_t *cipher = g_malloc(CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES);
	uint8_t *key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	uint8_t sealed_key[SEALED_KEY_BYTES];
	uint8_t header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	crypto_secretstream_xchacha20poly1305_state state;
	gboolean ok = TRUE;
	FILE *out;
	int fd;

	fd = g_open(tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	out = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (out == NULL) {
		sodium_free(key);
		return io_error(error, "create", tmp_path);
	}
	crypto_secretstream_xchacha20poly1305_keygen(key);
	crypto_box_seal(sealed_key, key, crypto_secretstream_xchacha20poly1305_KEYBYTES, recipient_public_key);
	crypto_secretstream_xchacha20poly1305_init_push(&state, header, key);
	sodium_free(key);
	if (fwrite(AMU_EXPORT_SEAL_MAGIC, 1, 8, out) != 8 || fwrite(sealed_key, 1, sizeof(sealed_key), out) != sizeof(sealed_key) ||
	    fwrite(header, 1, sizeof(header), out) != sizeof(header))
		ok = io_error(error, "write", tmp_path);
	for (guint i = 0; ok && i < files->len; i++) {
		const char *name = g_ptr_array_index(files, i);
		g_autofree char *path = g_build_filename(dir, name, NULL);
		size_t name_len = strlen(name);
		GStatBuf st;
		FILE *in;
		size_t n;

		if (g_stat(path, &st) != 0) {
			ok = io_error(error, "read", path);
			break;
		}
		buf[0] = (uint8_t)name_len;
		buf[1] = (uint8_t)(name_len >> 8);
		memcpy(buf + 2, name, name_len);
		for (int b = 0; b < 8; b++)
			buf[2 + name_len + b] = (uint8_t)((guint64)st.st_size >> (8 * b));
		ok = push(out, &state, buf, 2 + name_len + 8, 0, cipher, tmp_path, error);
		in = ok ? fopen(path, "rb") : NULL;
		if (ok && in == NULL)
			ok = io_error(error, "read", path);
		while (ok && (n = fread(buf, 1, CHUNK, in)) > 0)
			ok = push(out, &state, buf, n, 0, cipher, tmp_path, error);
		if (in != NULL) {
			if (ok && ferror(in))
				ok = io_error(error, "read", path);
			fclose(in);
		}
	}
	if (ok)
		ok = push(out, &state, buf, 0, crypto_secretstream_xchacha20poly1305_TAG_FINAL, cipher, tmp_path, error);
	if (ok && (fflush(out) != 0 || fsync(fileno(out)) != 0))
		ok = io_error(error, "write", tmp_path);
	if (fclose(out) != 0 && ok)
		ok = io_error(error, "write", tmp_path);
	if (ok && g_rename(tmp_path, sealed_path) != 0)
		ok = io_error(error, "rename into", sealed_path);
	if (!ok)
		g_unlink(tmp_path);
	return ok;
}

/**
 * amu_export_keypair_new:
 * @public_key: (out) (transfer full): 32 bytes to give the owner
 * @secret_key: (out) (transfer full): 32 bytes the recipient keeps
 *
 * Makes an X25519 key pair for receiving sealed exports.
 *
 * Since: 0.1
 */
void
amu_export_keypair_new(GBytes **public_key, GBytes **secret_key)
{
	uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];

	g_return_if_fail(public_key != NULL && secret_key != NULL);
	if (sodium_init() < 0)
		g_error("libsodium failed to initialise");
	crypto_box_keypair(pk, sk);
	*public_key = g_bytes_new(pk, sizeof(pk));
	*secret_key = g_bytes_new(sk, sizeof(sk));
	sodium_memzero(sk, sizeof(sk));
}

static gboolean
read_exact(FILE *in, void *buf, size_t len)
{
	return fread(buf, 1, len, in) == len;
}

static gboolean
pull(FILE *in, crypto_secretstream_xchacha20poly1305_state *state, uint8_t *plain, size_t *plain_len,
     uint8_t *tag, uint8_t *cipher, const char *path, GError **error)
{
	uint8_t prefix[4];
	uint32_t clen = 0;
	unsigned long long mlen = 0;

	if (!read_exact(in, prefix, 4)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s ends early: it was cut off", path);
		return FALSE;
	}
	for (int i = 0; i < 4; i++)
		clen |= (uint32_t)prefix[i] << (8 * i);
	if (clen < crypto_secretstream_xchacha20poly1305_ABYTES || clen > CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES ||
	    !read_exact(in, cipher, clen)) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s is damaged or cut off", path);
		return FALSE;
	}
	if (crypto_secretstream_xchacha20poly1305_pull(state, plain, &mlen, tag, cipher, clen, NULL, 0) != 0) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s fails to authenticate: it was altered", path);
		return FALSE;
	}
	*plain_len = (size_t)mlen;
	return TRUE;
}

static gboolean
safe_name(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL && strchr(name, '\\') == NULL;
}

/**
 * amu_export_open_sealed:
 * @recipient_secret_key: the recipient's X25519 secret key (32 bytes)
 * @out_dir: a directory to create (or an empty one)
 *
 * Decrypts a sealed export; check it afterwards with amu_export_verify().
 *
 * Returns: %FALSE with %AMU_ERROR_AUTH_FAILED for another recipient's key,
 *   %AMU_ERROR_TAMPERED for an altered or cut-off file
 * Since: 0.1
 */
gboolean
amu_export_open_sealed(const char *sealed_path, GBytes *recipient_secret_key, const char *out_dir, GError **error)
{
	g_autofree uint8_t *plain = g_malloc(CHUNK);
	g_autofree uint8_t *cipher = g_malloc(CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES);
	uint8_t *key = NULL;
	uint8_t magic[8], sealed_key[SEALED_KEY_BYTES], header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	uint8_t pk[crypto_box_PUBLICKEYBYTES];
	crypto_secretstream_xchacha20poly1305_state state;
	gboolean ok = TRUE, final = FALSE;
	g_autoptr(GPtrArray) created = g_ptr_array_new_with_free_func(g_free);
	FILE *in, *out = NULL;
	guint64 left = 0;
	char *out_path = NULL;

	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
	/* a recipient may call this without any AmuContext */
	if (sodium_init() < 0) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_FAILED, "libsodium failed to initialise");
		return FALSE;
	}
	if (g_bytes_get_size(recipient_secret_key) != crypto_box_SECRETKEYBYTES) {
		g_set_error_literal(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "the secret key must be 32 bytes (X25519)");
		return FALSE;
	}
	in = fopen(sealed_path, "rb");
	if (in == NULL)
		return io_error(error, "read", sealed_path);
	if (!read_exact(in, magic, 8) || memcmp(magic, AMU_EXPORT_SEAL_MAGIC, 8) != 0 ||
	    !read_exact(in, sealed_key, sizeof(sealed_key)) || !read_exact(in, header, sizeof(header))) {
		fclose(in);
		g_set_error(error, AMU_ERROR, AMU_ERROR_INVALID_ARGUMENT, "%s is not a sealed amulet export", sealed_path);
		return FALSE;
	}
	crypto_scalarmult_base(pk, g_bytes_get_data(recipient_secret_key, NULL));
	key = sodium_malloc(crypto_secretstream_xchacha20poly1305_KEYBYTES);
	if (crypto_box_seal_open(key, sealed_key, sizeof(sealed_key), pk, g_bytes_get_data(recipient_secret_key, NULL)) !=
		    0 ||
	    crypto_secretstream_xchacha20poly1305_init_pull(&state, header, key) != 0) {
		sodium_free(key);
		fclose(in);
		g_set_error(error, AMU_ERROR, AMU_ERROR_AUTH_FAILED,
			    "%s was not sealed to this key: only its recipient can open it", sealed_path);
		return FALSE;
	}
	sodium_free(key);
	if (g_mkdir(out_dir, 0700) != 0 && errno != EEXIST) {
		fclose(in);
		return io_error(error, "create", out_dir);
	}
	while (ok && !final) {
		size_t len = 0;
		uint8_t tag = 0;

		ok = pull(in, &state, plain, &len, &tag, cipher, sealed_path, error);
		if (!ok)
			break;
		final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
		if (final) {
			if (out != NULL || len != 0) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s ends inside a file", sealed_path);
				ok = FALSE;
			}
			break;
		}
		if (out == NULL) {
			/* a file header */
			size_t name_len;
			g_autofree char *name = NULL;
			int fd;

			if (len < 10 || (name_len = plain[0] | ((size_t)plain[1] << 8)) + 10 != len) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s has a malformed file header", sealed_path);
				ok = FALSE;
				break;
			}
			name = g_strndup((const char *)plain + 2, name_len);
			if (!safe_name(name) || strlen(name) != name_len) {
				g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s names a file outside its directory",
					    sealed_path);
				ok = FALSE;
				break;
			}
			left = 0;
			for (int b = 0; b < 8; b++)
				left |= (guint64)plain[2 + name_len + b] << (8 * b);
			g_free(out_path);
			out_path = g_build_filename(out_dir, name, NULL);
			fd = g_open(out_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
			out = fd >= 0 ? fdopen(fd, "wb") : NULL;
			if (out == NULL) {
				ok = io_error(error, "create", out_path);
				break;
			}
			g_ptr_array_add(created, g_strdup(out_path));
			if (left == 0) {
				fclose(out);
				out = NULL;
			}
			continue;
		}
		if (len > left) {
			g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s holds more than its header says", out_path);
			ok = FALSE;
			break;
		}
		if (fwrite(plain, 1, len, out) != len) {
			ok = io_error(error, "write", out_path);
			break;
		}
		left -= len;
		if (left == 0) {
			if (fclose(out) != 0)
				ok = io_error(error, "write", out_path);
			out = NULL;
		}
	}
	if (out != NULL)
		fclose(out);
	if (ok && fgetc(in) != EOF) {
		g_set_error(error, AMU_ERROR, AMU_ERROR_TAMPERED, "%s has data after its end", sealed_path);
		ok = FALSE;
	}
	fclose(in);
	g_free(out_path);
	sodium_memzero(plain, CHUNK);
	/* nothing half-decrypted stays behind for someone to pick up */
	for (guint i = 0; !ok && i < created->len; i++)
		g_unlink(g_ptr_array_index(created, i));
	return ok;
}
