/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "amulet/amu-export-format.h"
#include "amulet/amu-sample.h"

G_BEGIN_DECLS

/* What an export says about itself, besides the samples. The strings are
 * copied; device_model and device_profile may be NULL (written as null or
 * left out), the others may not. */
typedef struct {
	const char *device_name;
	const char *device_id;
	const char *device_model;
	const char *device_profile; /* band, watch or toy */
	const char *grant_id;	    /* the consent grant this export is made under */
	const char *recipient;	    /* the recipient's name */
	const char *purpose;
	AmuGranularity granularity;
	gint64 from_ms; /* the granted data range; before 1970 or after 9999: open (null) */
	gint64 to_ms;
	gint64 created_ms;
} AmuExportInfo;

/* Writes one export format into a directory as samples come, holding none of
 * them: the pipeline filters and coarsens, then hands each sample over in
 * order (every category's samples together, in time order within it).
 *
 * JSON writes samples.json, CSV one <category>.csv per category present,
 * FHIR bundle.json and GPX track.gpx. Files are created 0600 and never
 * replaced: an existing name fails with AMU_ERROR_EXISTS.
 *
 * A failed write (AMU_ERROR_NO_SPACE, AMU_ERROR_PERMISSION_DENIED,
 * AMU_ERROR_IO) is sticky: every later call returns it again, and the files
 * are incomplete. A sample the writer cannot represent or that comes out of
 * order fails with AMU_ERROR_INVALID_ARGUMENT and writes nothing. */
typedef struct AmuExportWriter AmuExportWriter;

#define AMU_EXPORT_SHA256_HEX_LEN 64

/* One file the writer made, as the manifest describes it: the SHA-256 and
 * size of the bytes written, taken as they were written, so nothing has to
 * read the file back. */
typedef struct {
	char *name;				    /* relative to the export directory */
	char sha256[AMU_EXPORT_SHA256_HEX_LEN + 1]; /* lower-case hex */
	guint64 size;				    /* bytes */
} AmuExportFile;

/* NULL-tolerant */
void amu_export_file_free(AmuExportFile *file);

/* @dir exists and is empty; the format's single file is created at once */
AmuExportWriter *amu_export_writer_new(AmuExportFormat format,
				       const char *dir,
				       const AmuExportInfo *info,
				       GError **error);
gboolean amu_export_writer_add(AmuExportWriter *writer, const AmuSample *sample, GError **error);
/* Ends, flushes and closes the files, each fsynced, or with a sync set
 * (amu_export_writer_set_sync()) handed to it; the caller makes @dir's
 * names durable once it has added what else goes there (the set's
 * amu_export_sync_finish(), or amu_export_sync_dir()). @files:
 * (transfer full) (element-type AmuExportFile) (nullable) the files written,
 * sorted by name with strcmp(), each with its digest and size; the array
 * frees its elements. */
gboolean amu_export_writer_finish(AmuExportWriter *writer, GPtrArray **files, GError **error);
/* NULL-tolerant; closes what is open and removes nothing */
void amu_export_writer_free(AmuExportWriter *writer);

/* amu-export-file.h */
typedef struct AmuExportSync AmuExportSync;
/* From now on a file the writer finishes has its writeback started and is
 * left to @sync to fsync and close, instead of being synced at once. */
void amu_export_writer_set_sync(AmuExportWriter *writer, AmuExportSync *sync);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuExportWriter, amu_export_writer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuExportFile, amu_export_file_free)

G_END_DECLS
