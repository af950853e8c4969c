/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "amu-link.h"

/* A UNIX SOCK_SEQPACKET link: record boundaries are kept, so one send() is one
 * datagram, as one ATT write or notification is on a radio. Sends are queued
 * and flushed when the socket is writable, optionally at a shaped rate.
 *
 * System calls are most of the cost of a datagram, so they are batched: each
 * wakeup reads up to RX_BATCH datagrams with one recvmmsg(), and what is sent
 * while the link is corked (the acks and data one received batch releases,
 * the fragments one message puts in the window) goes out with one sendmmsg(). */

/* datagrams read per wakeup, bounded so one busy peer cannot starve the loop */
#define RX_BATCH 64
#define TX_BATCH 64
/* one byte over the largest datagram, so an oversized one shows as too long */
#define RX_SLOT (AMU_LINK_MTU_DEFAULT + 1)

typedef struct {
	AmuLink parent;
	int fd;
	GSource *in_source; /* a SocketSource */
	GSource *out_source;
	GSource *timer_source;
	GQueue queue; /* of QueuedDatagram */
	gboolean flush_pending; /* queued while corked: goes at uncork or the next iteration */
	gboolean peer_gone;      /* a send found the peer closed: only reading is left */
	gint64 next_free_us; /* shaping: when the simulated radio is free again */
	/* the last batch read: rx_next..rx_count are not handed on yet. A nested
	 * main loop (a callback iterating the context) hands those on first and
	 * reads no batch of its own, as the outer call still uses the buffers. */
	uint8_t (*rx_slots)[RX_SLOT];
	struct mmsghdr rx_msgs[RX_BATCH];
	struct iovec rx_iov[RX_BATCH];
	unsigned int rx_next;
	unsigned int rx_count;
	unsigned int rx_depth; /* socket_read() calls on the stack */
} AmuLinkSocket;

typedef struct {
	GSource source;
	AmuLinkSocket *link;
	gpointer fd_tag;
} SocketSource;

typedef struct {
	gint64 release_us;
	size_t len;
	uint8_t data[];
} QueuedDatagram;

static void socket_flush(AmuLinkSocket *self);

static void
socket_fail(AmuLinkSocket *self, int errsv, const char *what)
{
	g_autoptr(GError) error = NULL;

	if (errsv == 0 || errsv == ECONNRESET || errsv == EPIPE) {
		amu_link_emit_closed(&self->parent, NULL);
		return;
	}
	error = g_error_new(G_IO_ERROR, g_io_error_from_errno(errsv), "%s %s: %s", what,
			    self->parent.description, g_strerror(errsv));
	amu_link_emit_closed(&self->parent, error);
}

/* Hands on the next datagram of the last batch; FALSE when there is none. */
static gboolean
socket_emit_next(AmuLinkSocket *self)
{
	unsigned int i;

	if (self->parent.closed || self->rx_next >= self->rx_count)
		return FALSE;
	i = self->rx_next++;
	if (self->rx_msgs[i].msg_len == 0) {
		/* SOCK_SEQPACKET: a zero-length read is the peer's close */
		self->rx_next = self->rx_count = 0;
		socket_fail(self, 0, "reading from");
		return FALSE;
	}
	amu_link_emit_rx(&self->parent, self->rx_slots[i], self->rx_msgs[i].msg_len);
	return TRUE;
}

static void
socket_read(AmuLinkSocket *self)
{
	int n;

	/* older datagrams first: an outer call may have left some */
	while (socket_emit_next(self))
		;
	if (self->parent.closed)
		return;
	if (self->rx_depth > 1) {
		uint8_t buf[RX_SLOT];
		ssize_t len = recv(self->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (len < 0 && errno == ECONNRESET)
			len = recv(self->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (len < 0 && errno != EAGAIN && errno != EINTR)
			socket_fail(self, errno, "reading from");
		else if (len == 0)
			socket_fail(self, 0, "reading from");
		else if (len > 0)
			amu_link_emit_rx(&self->parent, buf, (size_t)len);
		return;
	}
	n = recvmmsg(self->fd, self->rx_msgs, RX_BATCH, MSG_DONTWAIT, NULL);
	/* A peer that closes with unread data makes the kernel report
	 * ECONNRESET ahead of what it sent before closing (its last ack, say).
	 * The error is cleared once reported: read again, and the zero-length
	 * read after the data is the close. */
	if (n < 0 && errno == ECONNRESET)
		n = recvmmsg(self->fd, self->rx_msgs, RX_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			socket_fail(self, errno, "reading from");
		return;
	}
	self->rx_next = 0;
	self->rx_count = (unsigned int)n;
	while (socket_emit_next(self))
		;
}

static gboolean
socket_source_prepare(GSource *source, gint *timeout)
{
	*timeout = -1;
	return ((SocketSource *)source)->link->flush_pending;
}

static gboolean
socket_source_check(GSource *source)
{
	SocketSource *socket_source = (SocketSource *)source;

	return socket_source->link->flush_pending ||
	       g_source_query_unix_fd(source, socket_source->fd_tag) != 0;
}

static gboolean
socket_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	SocketSource *socket_source = (SocketSource *)source;
	AmuLinkSocket *self = socket_source->link;
	AmuLink *link = &self->parent;

	amu_link_ref(link);
	if (self->flush_pending)
		socket_flush(self);
	if (!link->closed && g_source_query_unix_fd(source, socket_source->fd_tag) != 0) {
		self->rx_depth++;
		amu_link_cork(link);
		socket_read(self);
		self->rx_depth--;
		amu_link_uncork(link);
	}
	amu_link_unref(link);
	return G_SOURCE_CONTINUE;
}

static GSourceFuncs socket_source_funcs = {
	.prepare = socket_source_prepare,
	.check = socket_source_check,
	.dispatch = socket_source_dispatch,
};

static gboolean
socket_out_cb(int fd, GIOCondition condition, gpointer user_data)
{
	AmuLinkSocket *self = user_data;

	g_source_destroy(self->out_source);
	g_source_unref(self->out_source);
	self->out_source = NULL;
	socket_flush(self);
	return G_SOURCE_REMOVE;
}

static gboolean
socket_timer_cb(gpointer user_data)
{
	AmuLinkSocket *self = user_data;

	g_source_unref(self->timer_source);
	self->timer_source = NULL;
	socket_flush(self);
	return G_SOURCE_REMOVE;
}

static gint64
socket_now(AmuLinkSocket *self)
{
	return self->parent.rate_bps > 0 || self->parent.latency_ms > 0 ? g_get_monotonic_time() : 0;
}

/* Passes the datagrams at the head of the queue that are due by @now to the
 * kernel, up to TX_BATCH in one call. Returns how many went (0 if none was
 * due), or -1 with errno set. */
static int
socket_send_due(AmuLinkSocket *self, gint64 now)
{
	struct mmsghdr msgs[TX_BATCH];
	struct iovec iov[TX_BATCH];
	unsigned int n = 0;
	int sent;

	for (GList *l = self->queue.head; l != NULL && n < TX_BATCH; l = l->next) {
		QueuedDatagram *datagram = l->data;

		if (datagram->release_us > now)
			break;
		iov[n].iov_base = datagram->data;
		iov[n].iov_len = datagram->len;
		memset(&msgs[n], 0, sizeof(msgs[n]));
		msgs[n].msg_hdr.msg_iov = &iov[n];
		msgs[n].msg_hdr.msg_iovlen = 1;
		n++;
	}
	if (n == 0)
		return 0;
	sent = sendmmsg(self->fd, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	for (int i = 0; i < sent; i++)
		g_free(g_queue_pop_head(&self->queue));
	return sent;
}

/* The peer closed while we were writing. What it sent before closing may
 * still wait in our receive queue (its last sync ack, say): drop what we
 * had to send and let the read side deliver the rest, then report the
 * close when it reads the end. */
static void
socket_peer_gone(AmuLinkSocket *self)
{
	self->peer_gone = TRUE;
	g_queue_clear_full(&self->queue, g_free);
	g_queue_init(&self->queue);
}

static void
socket_flush(AmuLinkSocket *self)
{
	gint64 now = socket_now(self);

	self->flush_pending = FALSE;
	while (!g_queue_is_empty(&self->queue) && !self->parent.closed) {
		QueuedDatagram *datagram = g_queue_peek_head(&self->queue);

		if (datagram->release_us > now) {
			if (self->timer_source == NULL) {
				guint ms = (guint)((datagram->release_us - now + 999) / 1000);
				self->timer_source = g_timeout_source_new(ms);
				g_source_set_callback(self->timer_source, socket_timer_cb, self, NULL);
				g_source_attach(self->timer_source, g_main_context_get_thread_default());
			}
			return;
		}
		if (socket_send_due(self, now) < 0) {
			if (errno == EAGAIN || errno == ENOBUFS) {
				if (self->out_source == NULL) {
					self->out_source = g_unix_fd_source_new(self->fd, G_IO_OUT);
					g_source_set_callback(self->out_source, G_SOURCE_FUNC(socket_out_cb), self,
							      NULL);
					g_source_attach(self->out_source, g_main_context_get_thread_default());
				}
				return;
			}
			if (errno == EPIPE || errno == ECONNRESET) {
				socket_peer_gone(self);
				return;
			}
			socket_fail(self, errno, "writing to");
			return;
		}
	}
}

static void
socket_flush_op(AmuLink *link)
{
	socket_flush((AmuLinkSocket *)link);
}

static gboolean
socket_send(AmuLink *link, const uint8_t *buf, size_t len, GError **error)
{
	AmuLinkSocket *self = (AmuLinkSocket *)link;
	QueuedDatagram *datagram;

	if (self->peer_gone)
		return TRUE;

	/* fast path: nothing queued, not corked, no shaping */
	if (g_queue_is_empty(&self->queue) && link->cork_depth == 0 && link->rate_bps == 0 &&
	    link->latency_ms == 0) {
		ssize_t n = send(self->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)len)
			return TRUE;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			socket_peer_gone(self);
			return TRUE;
		}
		if (n < 0 && errno != EAGAIN && errno != ENOBUFS) {
			g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "writing to %s: %s",
				    link->description, g_strerror(errno));
			return FALSE;
		}
	}
	datagram = g_malloc(sizeof(*datagram) + len);
	datagram->len = len;
	memcpy(datagram->data, buf, len);
	datagram->release_us = 0;
	if (link->rate_bps > 0 || link->latency_ms > 0) {
		gint64 now = g_get_monotonic_time();
		/* ATT + L2CAP + LL headers cost about 3 + 4 + 10 bytes a datagram */
		gint64 airtime = link->rate_bps > 0 ? (gint64)((len + 17) * 8 * G_USEC_PER_SEC / link->rate_bps) : 0;
		gint64 start = MAX(now, self->next_free_us);
		self->next_free_us = start + airtime;
		datagram->release_us = self->next_free_us + (gint64)link->latency_ms * 1000;
	}
	g_queue_push_tail(&self->queue, datagram);
	if (link->cork_depth > 0) {
		self->flush_pending = TRUE;
		return TRUE;
	}
	socket_flush(self);
	return TRUE;
}

static void
socket_close(AmuLink *link)
{
	AmuLinkSocket *self = (AmuLinkSocket *)link;

	if (self->in_source != NULL) {
		g_source_destroy(self->in_source);
		g_clear_pointer(&self->in_source, g_source_unref);
	}
	if (self->out_source != NULL) {
		g_source_destroy(self->out_source);
		g_clear_pointer(&self->out_source, g_source_unref);
	}
	if (self->timer_source != NULL) {
		g_source_destroy(self->timer_source);
		g_clear_pointer(&self->timer_source, g_source_unref);
	}
	if (self->fd >= 0) {
		/* amu_link_send() took what a cork held back: send it as an uncorked
		 * send would have, best effort, before the socket goes */
		if (self->flush_pending)
			while (socket_send_due(self, socket_now(self)) > 0)
				;
		shutdown(self->fd, SHUT_RDWR);
		close(self->fd);
		self->fd = -1;
	}
	self->flush_pending = FALSE;
	self->rx_next = self->rx_count = 0;
	g_queue_clear_full(&self->queue, g_free);
}

static void
socket_finalize(AmuLink *link)
{
	AmuLinkSocket *self = (AmuLinkSocket *)link;

	g_free(self->rx_slots);
	g_free(self);
}

static const AmuLinkOps socket_ops = {
	.name = "socket",
	.send = socket_send,
	.close = socket_close,
	.flush = socket_flush_op,
	.finalize = socket_finalize,
};

AmuLink *
amu_link_socket_new_from_fd(int fd, uint16_t att_mtu, const char *description)
{
	AmuLinkSocket *self = g_new0(AmuLinkSocket, 1);
	SocketSource *source;

	amu_link_init(&self->parent, &socket_ops, att_mtu, description);
	self->fd = fd;
	self->rx_slots = g_malloc(RX_BATCH * RX_SLOT);
	for (unsigned int i = 0; i < RX_BATCH; i++) {
		self->rx_iov[i].iov_base = self->rx_slots[i];
		self->rx_iov[i].iov_len = RX_SLOT;
		self->rx_msgs[i].msg_hdr.msg_iov = &self->rx_iov[i];
		self->rx_msgs[i].msg_hdr.msg_iovlen = 1;
	}
	g_queue_init(&self->queue);
	g_unix_set_fd_nonblocking(fd, TRUE, NULL);
	source = (SocketSource *)g_source_new(&socket_source_funcs, sizeof(SocketSource));
	source->link = self;
	source->fd_tag = g_source_add_unix_fd(&source->source, fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_name(&source->source, "amulet socket link");
	/* GLib would take the fd out of the poll set and put it back around every
	 * dispatch of a source that cannot recurse, waking the context twice a
	 * wakeup; socket_read() is safe to re-enter */
	g_source_set_can_recurse(&source->source, TRUE);
	g_source_attach(&source->source, g_main_context_get_thread_default());
	self->in_source = &source->source;
	return &self->parent;
}

void
amu_link_socket_set_shaping(AmuLink *link, uint64_t rate_bps, unsigned int latency_ms)
{
	link->rate_bps = rate_bps;
	link->latency_ms = latency_ms;
}

static gboolean
socket_address(const char *path, struct sockaddr_un *addr, GError **error)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "socket path %s is longer than %zu bytes: use a shorter path", path,
			    sizeof(addr->sun_path) - 1);
		return FALSE;
	}
	strcpy(addr->sun_path, path);
	return TRUE;
}

AmuLink *
amu_link_socket_connect(const char *path, uint16_t att_mtu, GError **error)
{
	struct sockaddr_un addr;
	int fd;

	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (!socket_address(path, &addr, error))
		return NULL;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket: %s",
			    g_strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int errsv = errno;
		close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
			    "cannot reach the device at %s: %s%s", path, g_strerror(errsv),
			    errsv == ENOENT || errsv == ECONNREFUSED ? " (is amulet-sim running there?)" : "");
		return NULL;
	}
	return amu_link_socket_new_from_fd(fd, att_mtu, path);
}

struct AmuLinkListener {
	int fd;
	char *path;
	uint16_t att_mtu;
	GSource *source;
	AmuLinkAcceptFunc func;
	void *user_data;
};

static gboolean
listener_cb(int fd, GIOCondition condition, gpointer user_data)
{
	AmuLinkListener *listener = user_data;
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (client < 0) {
		if (errno != EAGAIN && errno != EINTR)
			g_warning("accepting on %s: %s", listener->path, g_strerror(errno));
		return G_SOURCE_CONTINUE;
	}
	listener->func(listener, amu_link_socket_new_from_fd(client, listener->att_mtu, listener->path),
		       listener->user_data);
	return G_SOURCE_CONTINUE;
}

AmuLinkListener *
amu_link_listener_new(const char *path, uint16_t att_mtu, AmuLinkAcceptFunc func, void *user_data,
		      GError **error)
{
	struct sockaddr_un addr;
	AmuLinkListener *listener;
	int fd;

	g_return_val_if_fail(error == NULL || *error == NULL, NULL);
	if (!socket_address(path, &addr, error))
		return NULL;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket: %s",
			    g_strerror(errno));
		return NULL;
	}
	/* a stale socket file from a killed simulator would make bind fail */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		int errsv = errno;
		close(fd);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv), "cannot listen on %s: %s",
			    path, g_strerror(errsv));
		return NULL;
	}
	listener = g_new0(AmuLinkListener, 1);
	listener->fd = fd;
	listener->path = g_strdup(path);
	listener->att_mtu = att_mtu;
	listener->func = func;
	listener->user_data = user_data;
	listener->source = g_unix_fd_source_new(fd, G_IO_IN);
	g_source_set_callback(listener->source, G_SOURCE_FUNC(listener_cb), listener, NULL);
	g_source_attach(listener->source, g_main_context_get_thread_default());
	return listener;
}

void
amu_link_listener_free(AmuLinkListener *listener)
{
	if (listener == NULL)
		return;
	g_source_destroy(listener->source);
	g_source_unref(listener->source);
	close(listener->fd);
	unlink(listener->path);
	g_free(listener->path);
	g_free(listener);
}
