/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <stdint.h>

G_BEGIN_DECLS

/* A link moves datagrams: one datagram is one ATT write or notification on
 * BLE, one SOCK_SEQPACKET record on the simulator socket. Implementations fill
 * in AmuLinkOps and call amu_link_emit_rx()/amu_link_emit_closed(). */
typedef struct AmuLink AmuLink;

typedef struct {
	const char *name;
	/* queue one datagram; FALSE with an error if the link is gone */
	gboolean (*send)(AmuLink *link, const uint8_t *buf, size_t len, GError **error);
	/* stop I/O; no callback after this returns */
	void (*close)(AmuLink *link);
	/* optional: send what was queued while corked (see amu_link_cork()) */
	void (*flush)(AmuLink *link);
	void (*finalize)(AmuLink *link);
} AmuLinkOps;

typedef void (*AmuLinkRxFunc)(AmuLink *link, const uint8_t *buf, size_t len, void *user_data);
/* error is NULL for an orderly close by the peer */
typedef void (*AmuLinkClosedFunc)(AmuLink *link, const GError *error, void *user_data);

struct AmuLink {
	const AmuLinkOps *ops;
	int ref_count;
	uint16_t att_mtu;
	gboolean closed;
	unsigned int cork_depth;
	char *description;
	AmuLinkRxFunc rx_func;
	AmuLinkClosedFunc closed_func;
	void *user_data;
	/* link shaping (simulator): bits per second, 0 = unshaped; one-way latency */
	uint64_t rate_bps;
	unsigned int latency_ms;
	/* fault injection (simulator): close after this many sent datagrams, 0 = never */
	uint64_t drop_after;
	uint64_t n_sent;
	uint64_t n_bytes_sent;
	/* datagrams handed to rx_func (benchmarks: bytes on the wire) */
	uint64_t n_received;
	uint64_t n_bytes_received;
};

#define AMU_LINK_MTU_DEFAULT 517

void amu_link_init(AmuLink *link, const AmuLinkOps *ops, uint16_t att_mtu, const char *description);
AmuLink *amu_link_ref(AmuLink *link);
void amu_link_unref(AmuLink *link);
void amu_link_set_handlers(AmuLink *link, AmuLinkRxFunc rx_func, AmuLinkClosedFunc closed_func,
			   void *user_data);
gboolean amu_link_send(AmuLink *link, const uint8_t *buf, size_t len, GError **error);
/* A hint that more datagrams follow: a link may hold sends back until the
 * matching amu_link_uncork() and then pass them to the kernel together.
 * Corks nest. Held datagrams also go out at the next main loop iteration,
 * so a callback that iterates the context while corked cannot deadlock. */
void amu_link_cork(AmuLink *link);
void amu_link_uncork(AmuLink *link);
void amu_link_close(AmuLink *link);
uint16_t amu_link_get_att_mtu(const AmuLink *link);
const char *amu_link_get_description(const AmuLink *link);
void amu_link_emit_rx(AmuLink *link, const uint8_t *buf, size_t len);
/* every link of this process together, since it started: the datagrams and
 * bytes received (amu_link_emit_rx), for benchmarks that cannot reach the
 * AmuLink a session opened */
void amu_link_get_rx_totals(uint64_t *n_received, uint64_t *n_bytes_received);
void amu_link_emit_closed(AmuLink *link, const GError *error);

/* Links outside the library core (the L2CAP CoC link, which needs the GPL
 * libbluetooth, lives in the tool): a program registers an opener for an
 * address scheme ("l2cap" for "l2cap:..."); amu_context's connections then
 * use it for addresses of that scheme. The opener gets the address without
 * "scheme:". Registering a scheme again replaces its opener. */
typedef AmuLink *(*AmuLinkOpenFunc)(const char *address, GError **error);
void amu_link_register_scheme(const char *scheme, AmuLinkOpenFunc func);
AmuLinkOpenFunc amu_link_lookup_scheme(const char *address, const char **rest);

/* UNIX SOCK_SEQPACKET link, for the simulator */
AmuLink *amu_link_socket_new_from_fd(int fd, uint16_t att_mtu, const char *description);
AmuLink *amu_link_socket_connect(const char *path, uint16_t att_mtu, GError **error);
void amu_link_socket_set_shaping(AmuLink *link, uint64_t rate_bps, unsigned int latency_ms);

/* listening side: calls func with each accepted link (transfer full) */
typedef struct AmuLinkListener AmuLinkListener;
typedef void (*AmuLinkAcceptFunc)(AmuLinkListener *listener, AmuLink *link, void *user_data);
AmuLinkListener *amu_link_listener_new(const char *path, uint16_t att_mtu, AmuLinkAcceptFunc func,
				       void *user_data, GError **error);
void amu_link_listener_free(AmuLinkListener *listener);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuLink, amu_link_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AmuLinkListener, amu_link_listener_free)

G_END_DECLS
