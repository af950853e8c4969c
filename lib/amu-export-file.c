/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <unistd.h>

#include "amu-export-file.h"
#include "amulet/amu-error.h"

/* The files of an export. A raw 30-day FHIR export is 1.7 GB: formatting
 * it, hashing it (nettle's SHA-256, on the CPU's SHA instructions) and
 * copying it into the page cache each take a second or more on one core,
 * and the disk needs about as long again to take it. So the formatting
 * thread only fills buffers; a second thread writes and hashes them, and
 * starts the writeback of every WRITEBACK_EVERY bytes as they are written,
 * so the fsync at the end finds little left to do. Memory stays at
 * N_BUFFERS buffers. A small file never starts the thread. */

#define N_BUFFERS 4
#define WRITEBACK_EVERY (8 * 1024 * 1024)
/* Until a file has AMU_EXPORT_STREAM_THREAD_AFTER bytes, its buffers are
 * written and hashed in the caller's thread: starting and joining a thread
 * cost about 1.4 ms on the test machine, more than hashing and writing a
 * megabyte or two. */
#define THREAD_AFTER AMU_EXPORT_STREAM_THREAD_AFTER

typedef struct {
	char *data; /* AMU_EXPORT_STREAM_BUFFER_SIZE bytes */
	gsize len;
} Chunk;

/* the end of the stream, queued after its last chunk */
static Chunk end_of_stream;

typedef struct {
	int fd;
	char *path;
} SyncFile;

struct AmuExportSync {
	GArray *files; /* of SyncFile, in the order written */
};

struct AmuExportStreamWorker {
	int fd;
	GThread *thread;    /* NULL until the file passes THREAD_AFTER, or if none could start */
	gboolean no_thread; /* g_thread_try_new() failed: write in the caller's thread */
	GAsyncQueue *full;  /* chunks to write, then &end_of_stream */
	GAsyncQueue *empty; /* chunks written, to fill again */
	Chunk chunks[N_BUFFERS];
	guint n_chunks;	 /* allocated so far */
	Chunk *current;	 /* being filled by the caller */

	/* the thread's while it runs; the caller's before it starts and
	 * after it is joined */
	guint64 size;		  /* bytes written so far */
	struct sha256_ctx sha256; /* of those bytes */
	guint64 writeback_from;	  /* bytes before this have had their writeback started */
	gboolean no_writeback;	  /* the file system does not do sync_file_range() */
	gint errsv;		  /* atomic: errno of the first failure, 0 while none */
};

void
amu_export_set_errno_error(GError **error, int errsv, const char *verb, const char *path)
{
	int code = AMU_ERROR_IO;
	const char *fix = "check the disk and export again";

	if (errsv == ENOSPC || errsv == EDQUOT) {
		code = AMU_ERROR_NO_SPACE;
		fix = "free space on that disk or export to another directory";
	} else if (errsv == EACCES || errsv == EPERM || errsv == EROFS) {
		code = AMU_ERROR_PERMISSION_DENIED;
		fix = "make the directory writable by this user or export to another one";
	} else if (errsv == EEXIST) {
		code = AMU_ERROR_EXISTS;
		fix = "export into a new, empty directory";
	} else if (errsv == ENOENT || errsv == ENOTDIR) {
		code = AMU_ERROR_NOT_FOUND;
		fix = "create the directory first";
	}
	g_set_error(
	  error, AMU_ERROR, code, "cannot %s %s: %s: %s", verb, path, g_strerror(errsv), fix);
}

/* Every file of an export: 0600, as this is health data; O_EXCL |
 * O_NOFOLLOW: never replace a file, nor write through a link someone left
 * in the directory. Returns the descriptor, or -1 with @error set. */
static int
export_create(const char *path, GError **error)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		amu_export_set_errno_error(error, errno, "create", path);
	return fd;
}

static gboolean
write_all(int fd, const char *data, gsize len, int *errsv)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* write() returning 0 for a regular file: nothing more fits */
			*errsv = n < 0 ? errno : ENOSPC;
			return FALSE;
		}
		done += (gsize)n;
	}
	return TRUE;
}

/* Starts writing back what was written since the last call, once there is
 * enough of it; it only starts the disk, the fsync at close still decides. */
static void
worker_start_writeback(AmuExportStreamWorker *worker)
{
#ifdef SYNC_FILE_RANGE_WRITE
	guint64 pending = worker->size - worker->writeback_from;

	if (worker->no_writeback || pending < WRITEBACK_EVERY)
		return;
	if (sync_file_range(worker->fd, (off64_t)worker->writeback_from, (off64_t)pending,
			    SYNC_FILE_RANGE_WRITE) != 0) {
		if (errno == EIO || errno == ENOSPC || errno == ENOMEM)
			g_atomic_int_set(&worker->errsv, errno);
		else /* EINVAL, ESPIPE, ENOSYS: not on this file system */
			worker->no_writeback = TRUE;
		return;
	}
	worker->writeback_from = worker->size;
#else
	(void)worker;
#endif
}

/* Closes @fd, fsynced first with @sync_first; the first failure goes to
 * @error (nullable). Some file systems (NFS) report a failed write only at
 * close. */
static gboolean
file_close(int fd, const char *path, gboolean sync_first, GError **error)
{
	if (sync_first && fsync(fd) != 0) {
		amu_export_set_errno_error(error, errno, "sync", path);
		close(fd);
		return FALSE;
	}
	if (close(fd) != 0) {
		amu_export_set_errno_error(error, errno, "close", path);
		return FALSE;
	}
	return TRUE;
}

/* Asks the disk for the whole file now; the fsync that follows waits for
 * less. Only a hint: a file system without it is synced all the same. */
static void
start_writeback(int fd)
{
#ifdef SYNC_FILE_RANGE_WRITE
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
	(void)fd;
#endif
}

AmuExportSync *
amu_export_sync_new(void)
{
	AmuExportSync *sync = g_new0(AmuExportSync, 1);

	sync->files = g_array_new(FALSE, FALSE, sizeof(SyncFile));
	return sync;
}

/* takes @fd and @path */
static void
sync_add(AmuExportSync *sync, int fd, char *path)
{
	SyncFile file = { fd, path };

	start_writeback(fd);
	g_array_append_val(sync->files, file);
}

gboolean
amu_export_sync_finish(AmuExportSync *sync, const char *dir, GError **error)
{
	g_autofree char *parent = g_path_get_dirname(dir);
	gboolean ok = TRUE;

	for (guint i = 0; i < sync->files->len; i++) {
		SyncFile *file = &g_array_index(sync->files, SyncFile, i);

		if (!file_close(file->fd, file->path, ok, ok ? error : NULL))
			ok = FALSE;
		g_free(file->path);
	}
	g_array_set_size(sync->files, 0);
	/* the names, then the directory's own name */
	return ok && amu_export_sync_dir(dir, error) && amu_export_sync_dir(parent, error);
}

void
amu_export_sync_free(AmuExportSync *sync)
{
	if (sync == NULL)
		return;
	for (guint i = 0; i < sync->files->len; i++) {
		SyncFile *file = &g_array_index(sync->files, SyncFile, i);

		close(file->fd);
		g_free(file->path);
	}
	g_array_unref(sync->files);
	g_free(sync);
}

/* Writes @data whole and hashes it, so the digest is of exactly the bytes
 * in the file; after a failure it writes nothing more. */
static void
worker_write(AmuExportStreamWorker *worker, const char *data, gsize len)
{
	int errsv = 0;

	if (len == 0 || g_atomic_int_get(&worker->errsv) != 0)
		return;
	if (!write_all(worker->fd, data, len, &errsv)) {
		g_atomic_int_set(&worker->errsv, errsv);
		return;
	}
	sha256_update(&worker->sha256, len, (const uint8_t *)data);
	worker->size += len;
	worker_start_writeback(worker);
}

static gpointer
worker_main(gpointer user_data)
{
	AmuExportStreamWorker *worker = user_data;

	for (;;) {
		Chunk *chunk = g_async_queue_pop(worker->full);

		if (chunk == &end_of_stream)
			break;
		worker_write(worker, chunk->data, chunk->len);
		chunk->len = 0;
		g_async_queue_push(worker->empty, chunk);
	}
	return NULL;
}

static Chunk *
worker_new_chunk(AmuExportStreamWorker *worker)
{
	Chunk *chunk = &worker->chunks[worker->n_chunks++];

	chunk->data = g_malloc(AMU_EXPORT_STREAM_BUFFER_SIZE);
	chunk->len = 0;
	return chunk;
}

static gboolean
worker_start(AmuExportStreamWorker *worker)
{
	g_autoptr(GError) error = NULL;

	worker->full = g_async_queue_new();
	worker->empty = g_async_queue_new();
	worker->thread = g_thread_try_new("amu-export", worker_main, worker, &error);
	if (worker->thread == NULL) {
		g_debug("writing the export in one thread: %s", error->message);
		g_clear_pointer(&worker->full, g_async_queue_unref);
		g_clear_pointer(&worker->empty, g_async_queue_unref);
		worker->no_thread = TRUE;
		return FALSE;
	}
	return TRUE;
}

/* The buffer is full: write it here while the file is small (or no thread
 * could start), else give it to the thread, starting it if need be, and
 * take an empty one. */
static void
stream_hand_over(AmuExportStream *stream)
{
	AmuExportStreamWorker *worker = stream->worker;

	if (worker->thread == NULL &&
	    (worker->no_thread || worker->size < THREAD_AFTER || !worker_start(worker))) {
		worker_write(worker, stream->buffer, stream->used);
		stream->used = 0;
		return;
	}
	worker->current->len = stream->used;
	g_async_queue_push(worker->full, worker->current);
	worker->current = worker->n_chunks < N_BUFFERS ? worker_new_chunk(worker)
						       : g_async_queue_pop(worker->empty);
	stream->buffer = worker->current->data;
	stream->used = 0;
}

gboolean
amu_export_stream_open(AmuExportStream *stream, const char *dir, AmuExportFile *record, GError **error)
{
	g_autofree char *path = g_build_filename(dir, record->name, NULL);
	AmuExportStreamWorker *worker;
	int fd;

	fd = export_create(path, error);
	if (fd < 0)
		return FALSE;
	worker = g_new0(AmuExportStreamWorker, 1);
	worker->fd = fd;
	sha256_init(&worker->sha256);
	worker->current = worker_new_chunk(worker);
	stream->fd = fd;
	stream->path = g_steal_pointer(&path);
	stream->record = record;
	stream->buffer = worker->current->data;
	stream->used = 0;
	stream->worker = worker;
	return TRUE;
}

/* What does not fit: fill the buffer, hand it over, and go on. */
void
amu_export_stream_put_slow(AmuExportStream *stream, const char *data, gsize len)
{
	while (len > 0) {
		gsize n = MIN(len, AMU_EXPORT_STREAM_BUFFER_SIZE - stream->used);

		memcpy(stream->buffer + stream->used, data, n);
		stream->used += n;
		data += n;
		len -= n;
		if (stream->used == AMU_EXPORT_STREAM_BUFFER_SIZE)
			stream_hand_over(stream);
	}
}

gboolean
amu_export_stream_check(AmuExportStream *stream, GError **error)
{
	int errsv = g_atomic_int_get(&stream->worker->errsv);

	if (G_LIKELY(errsv == 0))
		return TRUE;
	amu_export_set_errno_error(error, errsv, "write", stream->path);
	return FALSE;
}

static void
hex_encode(char *out, const guint8 *data, gsize len)
{
	static const char hex[] = "0123456789abcdef";

	for (gsize i = 0; i < len; i++) {
		*out++ = hex[data[i] >> 4];
		*out++ = hex[data[i] & 0xf];
	}
	*out = '\0';
}

gboolean
amu_export_stream_close(AmuExportStream *stream, GError **error)
{
	AmuExportStreamWorker *worker = stream->worker;
	gboolean ok;

	if (worker->thread != NULL) {
		if (stream->used > 0) {
			worker->current->len = stream->used;
			g_async_queue_push(worker->full, g_steal_pointer(&worker->current));
		}
		g_async_queue_push(worker->full, &end_of_stream);
		g_thread_join(g_steal_pointer(&worker->thread));
		g_clear_pointer(&worker->full, g_async_queue_unref);
		g_clear_pointer(&worker->empty, g_async_queue_unref);
	} else {
		worker_write(worker, stream->buffer, stream->used);
	}
	stream->used = 0;
	ok = error == NULL || amu_export_stream_check(stream, error);
	if (ok && error != NULL && stream->sync != NULL) {
		sync_add(stream->sync, stream->fd, g_steal_pointer(&stream->path));
	} else if (!file_close(stream->fd, stream->path, ok && error != NULL, ok ? error : NULL) && error != NULL) {
		ok = FALSE;
	}
	if (ok && error != NULL) {
		guint8 digest[SHA256_DIGEST_SIZE];

		sha256_digest(&worker->sha256, sizeof(digest), digest);
		hex_encode(stream->record->sha256, digest, sizeof(digest));
		stream->record->size = worker->size;
	}
	for (guint i = 0; i < worker->n_chunks; i++)
		g_free(worker->chunks[i].data);
	g_free(worker);
	stream->worker = NULL;
	stream->fd = -1;
	stream->record = NULL;
	stream->buffer = NULL;
	g_clear_pointer(&stream->path, g_free);
	return ok;
}

gboolean
amu_export_write_small_file(const char *dir, const char *name, const void *data, gsize len, AmuExportSync *sync,
			    GError **error)
{
	g_autofree char *path = g_build_filename(dir, name, NULL);
	int fd, errsv = 0;

	fd = export_create(path, error);
	if (fd < 0)
		return FALSE;
	if (!write_all(fd, data, len, &errsv)) {
		amu_export_set_errno_error(error, errsv, "write", path);
		close(fd);
		return FALSE;
	}
	sync_add(sync, fd, g_steal_pointer(&path));
	return TRUE;
}

gboolean
amu_export_sync_dir(const char *dir, GError **error)
{
	/* EINVAL: a file system that cannot sync directories */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
		amu_export_set_errno_error(error, errno, "sync", dir);
		if (fd >= 0)
			close(fd);
		return FALSE;
	}
	close(fd);
	return TRUE;
}
