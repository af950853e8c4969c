/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * make bench: every figure is a ratio against a libsodium baseline measured
 * in the same run, so it means the same on a slow and a fast machine. Each
 * figure, baselines included, is the best of RUNS (3) runs.
 *
 * - Host CPU per manifest verification (amu_update_manifest_open() and
 *   amu_update_manifest_check_target() of a package with a 256 KiB image)
 *   against one raw crypto_sign_verify_detached() of the same bytes: what
 *   the package format adds to the Ed25519 verify it cannot avoid.
 * - Throughput of amu_update_package_parse() on the whole package (magic,
 *   manifest, signature, length and the image's SHA-256) against raw
 *   crypto_hash_sha256() over the same image.
 * - Upload goodput of a 1 MiB image through the real host library to the
 *   real simulator, over a socket link shaped to 1.4 Mbit/s, against that
 *   line rate (target 0.9).
 */
#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>


#include "amu-update-package.h"
#include "bench-children.h"
#include "amulet/amulet.h"

#define RUNS 3
#define IMAGE_BYTES (256 * 1024)
#define TARGET_SECONDS 0.3

/* ---------------------------------------------------------------- manifest */

typedef struct {
	const uint8_t *manifest;
	size_t manifest_len;
	const uint8_t *signature;
	uint8_t *signed_bytes; /* context || manifest, for the raw baseline */
	size_t signed_len;
	GBytes *package;
	const uint8_t *image;
	uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES];
} ManifestBench;

typedef gboolean (*BenchFunc)(ManifestBench *bench);

static gboolean
raw_verify(ManifestBench *bench)
{
	return crypto_sign_verify_detached(bench->signature, bench->signed_bytes, bench->signed_len,
					   bench->pk) == 0;
}

static gboolean
open_and_check(ManifestBench *bench)
{
	g_autoptr(AmuUpdateManifest) m =
		amu_update_manifest_open(bench->manifest, bench->manifest_len, bench->signature,
					 AMU_UPDATE_SIGNATURE_BYTES, bench->pk, NULL);

	return m != NULL && amu_update_manifest_check_target(m, AMU_SIM_VENDOR_ID, "band", 1, 1024 * 1024,
							     g_get_real_time() / 1000, NULL);
}

static gboolean
raw_sha256(ManifestBench *bench)
{
	uint8_t digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(digest, bench->image, IMAGE_BYTES);
	return TRUE;
}

static gboolean
parse_package(ManifestBench *bench)
{
	g_autoptr(AmuUpdatePackage) p = amu_update_package_parse(bench->package, bench->pk, NULL);

	return p != NULL;
}

/* best of RUNS, in seconds per call; FALSE if a call failed */
static gboolean
time_per_call(BenchFunc func, ManifestBench *bench, double *seconds)
{
	gint64 t0 = g_get_monotonic_time();
	guint n = 0;

	/* size the runs from a short first try */
	while (g_get_monotonic_time() - t0 < 20000 || n < 3) {
		if (!func(bench))
			return FALSE;
		n++;
	}
	n = (guint)MAX(3.0, n * TARGET_SECONDS / ((double)(g_get_monotonic_time() - t0) / 1e6));
	*seconds = G_MAXDOUBLE;
	for (int run = 0; run < RUNS; run++) {
		gint64 start = g_get_monotonic_time();

		for (guint i = 0; i < n; i++) {
			if (!func(bench))
				return FALSE;
		}
		*seconds = MIN(*seconds, (double)(g_get_monotonic_time() - start) / 1e6 / n);
	}
	return TRUE;
}

static int
bench_manifest(void)
{
	Amulet__V1__UpdateManifest manifest = AMULET__V1__UPDATE_MANIFEST__INIT;
	g_autoptr(GBytes) image = amu_sim_image_build("1.1.0", 2, TRUE, IMAGE_BYTES);
	uint8_t sk[AMU_VENDOR_SECRETKEYBYTES];
	ManifestBench bench = {0};
	const uint8_t *data;
	double raw_s, open_s, sha_s, parse_s, sha_mbs, parse_mbs;
	size_t context_len = strlen(AMU_UPDATE_SIGN_CONTEXT);

	amu_sim_vendor_keypair(bench.pk, sk);
	manifest.format = AMU_UPDATE_FORMAT;
	manifest.vendor_id = (char *)AMU_SIM_VENDOR_ID;
	manifest.device_class = (char *)"band";
	manifest.version = (char *)"1.1.0";
	manifest.sequence = 2;
	manifest.changes = (char *)"Maintenance release.";
	bench.package = amu_update_package_build(&manifest, g_bytes_get_data(image, NULL), IMAGE_BYTES, sk);
	sodium_memzero(sk, sizeof(sk));

	data = g_bytes_get_data(bench.package, NULL);
	bench.manifest_len = (size_t)data[8] | (size_t)data[9] << 8;
	bench.manifest = data + AMU_UPDATE_HEADER_BYTES;
	bench.signature = bench.manifest + bench.manifest_len;
	bench.image = data + AMU_UPDATE_PAYLOAD_OFFSET(bench.manifest_len);
	bench.signed_len = context_len + bench.manifest_len;
	bench.signed_bytes = g_malloc(bench.signed_len);
	memcpy(bench.signed_bytes, AMU_UPDATE_SIGN_CONTEXT, context_len);
	memcpy(bench.signed_bytes + context_len, bench.manifest, bench.manifest_len);

	if (!time_per_call(raw_verify, &bench, &raw_s) || !time_per_call(open_and_check, &bench, &open_s) ||
	    !time_per_call(raw_sha256, &bench, &sha_s) || !time_per_call(parse_package, &bench, &parse_s)) {
		fprintf(stderr, "bench: the package did not verify\n");
		g_free(bench.signed_bytes);
		g_bytes_unref(bench.package);
		return 1;
	}
	sha_mbs = IMAGE_BYTES / sha_s / 1e6;
	parse_mbs = IMAGE_BYTES / parse_s / 1e6;
	printf("update manifest: %.1f us per verification, %.2fx raw Ed25519 verify (%.1f us; %zu-byte "
	       "manifest)\n",
	       open_s * 1e6, open_s / raw_s, raw_s * 1e6, bench.manifest_len);
	printf("update package parse, 256 KiB image: %.1f MB/s, %.2fx raw SHA-256 (%.1f MB/s; %.0f us per "
	       "package)\n",
	       parse_mbs, parse_mbs / sha_mbs, sha_mbs, parse_s * 1e6);
	g_free(bench.signed_bytes);
	g_bytes_unref(bench.package);
	return 0;
}

/* ---------------------------------------------------------------- upload goodput */

/* The real host library uploads a 1 MiB image to the real simulator over a
 * socket link shaped to 1.4 Mbit/s in both directions (AMULET_SIM_LINK_RATE
 * for what the host sends, --link-rate for the device), the simulated
 * radio's line rate. Goodput is image bytes over the time from the offer's
 * answer to the last chunk's: what is left of the line rate after framing,
 * encryption, the chunk headers and waiting for the device. */
#define LINK_RATE 1400000
#define GOODPUT_IMAGE_BYTES (1024 * 1024)

static const char *tool_sim = AMU_BENCH_BUILDDIR "/tools/amulet-sim";

typedef struct {
	gint64 first_us; /* the upload starts: the device answered the offer */
	guint64 first_done;
	gint64 last_us;  /* every byte acknowledged */
	guint64 last_done;
} Goodput;

static void
goodput_progress_cb(AmuUpdateStage stage, guint64 done, guint64 total, gpointer user_data)
{
	Goodput *g = user_data;

	if (stage != AMU_UPDATE_STAGE_UPLOADING)
		return;
	if (g->first_us == 0) {
		g->first_us = g_get_monotonic_time();
		g->first_done = done;
		return;
	}
	g->last_us = g_get_monotonic_time();
	g->last_done = done;
}

static void
accept_cb(AmuPairingRequest *request, gpointer user_data)
{
	amu_pairing_request_reply(request, TRUE, TRUE);
}


static int
bench_goodput(void)
{
	g_autofree char *dir = g_dir_make_tmp("amu-bench-update.XXXXXX", NULL);
	g_autofree char *sock = g_build_filename(dir, "band.sock", NULL);
	g_autofree char *state = g_build_filename(dir, "band.state", NULL);
	g_autofree char *host = g_build_filename(dir, "host", NULL);
	g_autofree char *pkg_path = g_build_filename(dir, "update.amupkg", NULL);
	g_autofree char *address = g_strdup_printf("sim:%s", sock);
	g_autoptr(GSubprocess) sim = NULL;
	g_autoptr(AmuContext) context = NULL;
	g_autoptr(AmuDevice) device = NULL;
	g_autoptr(AmuFirmwareUpdate) update = NULL;
	g_autoptr(AmuDeviceStatus) status = NULL;
	g_autoptr(GBytes) image = amu_sim_image_build("1.1.0", 2, TRUE, GOODPUT_IMAGE_BYTES);
	g_autoptr(GBytes) package = NULL;
	g_autoptr(GError) error = NULL;
	Amulet__V1__UpdateManifest manifest = AMULET__V1__UPDATE_MANIFEST__INIT;
	uint8_t pk[AMU_VENDOR_PUBLICKEYBYTES], sk[AMU_VENDOR_SECRETKEYBYTES];
	Goodput g = {0};
	double seconds, goodput_bps;
	int rc = 1;

	if (dir == NULL)
		return 1;
	sim = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, tool_sim,
			       "--listen", sock, "--state", state, "--profile", "band", "--link-rate",
			       G_STRINGIFY(LINK_RATE), NULL);
	if (sim == NULL)
		goto out;
	for (int i = 0; i < 100 && !g_file_test(sock, G_FILE_TEST_EXISTS); i++)
		g_usleep(50000);
	amu_sim_vendor_keypair(pk, sk);
	manifest.format = AMU_UPDATE_FORMAT;
	manifest.vendor_id = (char *)AMU_SIM_VENDOR_ID;
	manifest.device_class = (char *)"band";
	manifest.version = (char *)"1.1.0";
	manifest.sequence = 2;
	manifest.changes = (char *)"Benchmark image.";
	package = amu_update_package_build(&manifest, g_bytes_get_data(image, NULL), GOODPUT_IMAGE_BYTES, sk);
	sodium_memzero(sk, sizeof(sk));
	if (!g_file_set_contents(pkg_path, g_bytes_get_data(package, NULL), (gssize)g_bytes_get_size(package), &error))
		goto out;
	context = amu_context_new(host, &error);
	if (context == NULL)
		goto out;
	device = amu_context_pair(context, address, "band", accept_cb, NULL, NULL, &error);
	if (device == NULL)
		goto out;
	update = amu_device_load_update(device, pkg_path, &error);
	if (update == NULL)
		goto out;
	g_setenv("AMULET_SIM_LINK_RATE", G_STRINGIFY(LINK_RATE), TRUE);
	status = amu_device_update(device, update, AMU_UPDATE_FLAGS_NONE, goodput_progress_cb, &g, NULL, &error);
	g_unsetenv("AMULET_SIM_LINK_RATE");
	if (status == NULL)
		goto out;
	if (g.last_done != GOODPUT_IMAGE_BYTES || g.first_done != 0 || g.last_us <= g.first_us) {
		fprintf(stderr, "bench: the upload did not run from byte 0 to the end\n");
		goto out;
	}
	seconds = (double)(g.last_us - g.first_us) / 1e6;
	goodput_bps = GOODPUT_IMAGE_BYTES * 8.0 / seconds;
	printf("update upload, 1 MiB image over a 1.4 Mbit/s link: %.2f s, %.3f Mbit/s goodput, %.3f of the line rate "
	       "(target 0.9)\n",
	       seconds, goodput_bps / 1e6, goodput_bps / LINK_RATE);
	rc = 0;
out:
	if (error != NULL)
		fprintf(stderr, "bench: upload goodput: %s\n", error->message);
	if (sim != NULL) {
		g_subprocess_force_exit(sim);
		g_subprocess_wait(sim, NULL, NULL);
	}
	g_clear_object(&device);
	g_clear_object(&context);
	bench_remove_tree(dir);
	return rc;
}

int
main(void)
{
	int failed = 0;

	if (sodium_init() < 0)
		return 1;
	failed |= bench_manifest();
	failed |= bench_goodput();
	return failed;
}
