/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <string.h>

#include "amu-export-writer.h"

G_BEGIN_DECLS

/* One file of an export, written as a stream. Records are copied into a
 * buffer; a full buffer is handed to a thread of the stream's own that
 * write()s it, hashes it with SHA-256 and starts its writeback, so the
 * caller goes on formatting while the disk and the hash catch up. The
 * first 2 MiB of a file are written and hashed in the caller's thread, so
 * a small file never starts one.
 *
 * Writes are checked by amu_export_stream_check(), once per record or so:
 * the first failure (its errno) is kept, and every later write is dropped.
 * Only the caller's thread calls these functions. */

#define AMU_EXPORT_STREAM_BUFFER_SIZE (256 * 1024)
#define AMU_EXPORT_STREAM_THREAD_AFTER (2 * 1024 * 1024)

typedef struct AmuExportStreamWorker AmuExportStreamWorker;

/* The files of one export, synced together once all are written: each
 * has its writeback started as it is closed, so the disk takes them at
 * once, and amu_export_sync_finish() then waits for each of them and for
 * the directory. A small export is mostly these waits. */
AmuExportSync *amu_export_sync_new(void);
/* Syncs every file added and closes it, then syncs @dir and the directory
 * holding it, so the files, their names and @dir's own name are durable. */
gboolean amu_export_sync_finish(AmuExportSync *sync, const char *dir, GError **error);
/* NULL-tolerant; closes whatever was not synced yet */
void amu_export_sync_free(AmuExportSync *sync);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuExportSync, amu_export_sync_free)

typedef struct {
	int fd; /* -1 while no file is open */
	char *path;
	AmuExportFile *record; /* gets the digest and size once closed */
	char *buffer;	       /* AMU_EXPORT_STREAM_BUFFER_SIZE bytes, being filled */
	gsize used;
	AmuExportStreamWorker *worker; /* while a file is open */
	AmuExportSync *sync;	       /* (nullable): close hands the file to it */
} AmuExportStream;

/* "cannot <verb> <path>: <strerror>: <fix>", worded as the store words it */
void amu_export_set_errno_error(GError **error, int errsv, const char *verb, const char *path);

/* Creates @record->name in @dir: O_EXCL, O_NOFOLLOW, mode 0600. */
gboolean amu_export_stream_open(AmuExportStream *stream,
				const char *dir,
				AmuExportFile *record,
				GError **error);
void amu_export_stream_put_slow(AmuExportStream *stream, const char *data, gsize len);
gboolean amu_export_stream_check(AmuExportStream *stream, GError **error);
/* Writes what is buffered, waits for the thread, and gives the record its
 * digest and size; then fsyncs and closes, or with stream->sync set, starts
 * the file's writeback and leaves the fsync to that set. With @error NULL,
 * only writes out what is buffered and releases the file, as fclose()
 * would. */
gboolean amu_export_stream_close(AmuExportStream *stream, GError **error);

static inline void
amu_export_stream_put(AmuExportStream *stream, const char *data, gsize len)
{
	if (G_LIKELY(len <= AMU_EXPORT_STREAM_BUFFER_SIZE - stream->used)) {
		memcpy(stream->buffer + stream->used, data, len);
		stream->used += len;
		return;
	}
	amu_export_stream_put_slow(stream, data, len);
}

/* A small file written whole into a directory that holds only this export:
 * O_EXCL, 0600, then synced by @sync; no temporary name, as nothing else
 * writes there and the export is complete only once @sync has finished. */
gboolean amu_export_write_small_file(const char *dir,
				     const char *name,
				     const void *data,
				     gsize len,
				     AmuExportSync *sync,
				     GError **error);
/* Makes the names of the files created in @dir durable. */
gboolean amu_export_sync_dir(const char *dir, GError **error);

G_END_DECLS
