/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "amulet/amu-export-format.h"
#include "amulet/amu-sample.h"

G_BEGIN_DECLS

/* What amu-data-export.c, amu-export-seal.c and amu-export-verify.c share.
 * The layout of an export directory, the manifest and the sealed file are
 * described in docs/export.md. */

#define AMU_EXPORT_MANIFEST "manifest.json"
#define AMU_EXPORT_SIGNATURE "manifest.sig" /* base64 Ed25519 over manifest.json's bytes */
#define AMU_EXPORT_MANIFEST_FORMAT "amulet-export-manifest"
#define AMU_EXPORT_SEAL_MAGIC "AMUSEAL1"

/* Coarsening to a grant's granularity: samples of one category go in in
 * time order, aggregated ones come out (see AmuGranularity). */
typedef struct {
	AmuGranularity granularity;
	guint location_decimals;
	AmuCategory category;
	gboolean have;
	int64_t bucket;
	int64_t sum;
	uint64_t count;
	uint64_t stages[4];
	AmuSample first;
} AmuCoarsener;

void amu_coarsener_init(AmuCoarsener *coarsener, AmuGranularity granularity, guint location_decimals);
/* TRUE with @out filled when a bucket closed (raw: every sample passes) */
gboolean amu_coarsener_add(AmuCoarsener *coarsener, const AmuSample *sample, AmuSample *out);
/* TRUE with @out filled when an open bucket remained */
gboolean amu_coarsener_flush(AmuCoarsener *coarsener, AmuSample *out);

/* Streams the files of @dir named in @files into @sealed_path for the X25519
 * @recipient_public_key (docs/export.md), written to a temporary name first. */
gboolean amu_export_seal_dir(const char *dir, GPtrArray *files, const uint8_t recipient_public_key[32],
			     const char *sealed_path, GError **error);
/* SHA-256 of a file, in hex */
char *amu_export_file_sha256(const char *path, guint64 *size, GError **error);

G_END_DECLS
