/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amu-link.h"
#include "amu-test.h"

/* The socket link on one end of a SOCK_SEQPACKET socketpair; the test plays
 * the peer on the other end with plain send() and recv(), so it sees the
 * datagrams exactly as the kernel carries them. */
typedef struct {
	AmuLink *link;
	int peer_fd;
	GPtrArray *received; /* of GBytes, in arrival order */
	gboolean closed;
	int nest_at;	     /* iterate the main context from inside this rx callback */
	int nest_sends;	     /* datagrams the peer sends from there */
} Fixture;

static void
fixture_rx(AmuLink *link, const uint8_t *buf, size_t len, void *user_data)
{
	Fixture *fixture = user_data;

	g_ptr_array_add(fixture->received, g_bytes_new(buf, len));
	if ((int)fixture->received->len == fixture->nest_at) {
		g_autoptr(GBytes) before = g_bytes_new(buf, len);

		/* what a sync call made from an event callback does */
		for (int i = 0; i < fixture->nest_sends; i++) {
			uint8_t datagram[2] = {0xee, (uint8_t)i};
			CU_ASSERT_EQUAL(send(fixture->peer_fd, datagram, sizeof(datagram), 0), 2);
		}
		for (int i = 0; i < 100; i++)
			g_main_context_iteration(NULL, FALSE);
		/* the datagram we are handling was not overwritten meanwhile */
		CU_ASSERT_EQUAL(memcmp(buf, g_bytes_get_data(before, NULL), len), 0);
	}
}

static void
fixture_closed(AmuLink *link, const GError *error, void *user_data)
{
	Fixture *fixture = user_data;

	CU_ASSERT_PTR_NULL(error);
	fixture->closed = TRUE;
}

static void
fixture_init(Fixture *fixture)
{
	int fds[2];

	memset(fixture, 0, sizeof(*fixture));
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
	fixture->link = amu_link_socket_new_from_fd(fds[0], AMU_LINK_MTU_DEFAULT, "test");
	fixture->peer_fd = fds[1];
	fixture->received = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	amu_link_set_handlers(fixture->link, fixture_rx, fixture_closed, fixture);
}

static void
fixture_clear(Fixture *fixture)
{
	amu_link_unref(fixture->link);
	close(fixture->peer_fd);
	g_ptr_array_unref(fixture->received);
	while (g_main_context_iteration(NULL, FALSE))
		;
}

static void
iterate(int times)
{
	for (int i = 0; i < times; i++)
		g_main_context_iteration(NULL, FALSE);
}

/* the next datagram on the peer's end, -1 if none is waiting, 0 at EOF */
static ssize_t
peer_recv(Fixture *fixture, uint8_t *buf, size_t max)
{
	ssize_t n = recv(fixture->peer_fd, buf, max, MSG_DONTWAIT);
	return n < 0 && errno == EAGAIN ? -1 : n;
}

static void
send_numbered(AmuLink *link, uint8_t first, int count)
{
	for (int i = 0; i < count; i++) {
		uint8_t datagram[100];
		memset(datagram, first + i, sizeof(datagram));
		CU_ASSERT_TRUE(amu_link_send(link, datagram, 10 + (size_t)i, NULL));
	}
}

static void
expect_numbered(Fixture *fixture, uint8_t first, int count)
{
	for (int i = 0; i < count; i++) {
		uint8_t buf[AMU_LINK_MTU_DEFAULT];
		CU_ASSERT_EQUAL(peer_recv(fixture, buf, sizeof(buf)), 10 + i);
		CU_ASSERT_EQUAL(buf[0], (uint8_t)(first + i));
	}
}

static void
test_uncorked_send_is_immediate(void)
{
	Fixture fixture;

	fixture_init(&fixture);
	send_numbered(fixture.link, 1, 3);
	expect_numbered(&fixture, 1, 3);
	fixture_clear(&fixture);
}

static void
test_cork_holds_until_uncork(void)
{
	Fixture fixture;
	uint8_t buf[16];

	fixture_init(&fixture);
	amu_link_cork(fixture.link);
	amu_link_cork(fixture.link);
	send_numbered(fixture.link, 1, 70); /* more than one sendmmsg() batch */
	amu_link_uncork(fixture.link);
	CU_ASSERT_EQUAL(peer_recv(&fixture, buf, sizeof(buf)), -1);
	amu_link_uncork(fixture.link);
	/* each datagram stays its own record, in order */
	expect_numbered(&fixture, 1, 70);
	CU_ASSERT_EQUAL(peer_recv(&fixture, buf, sizeof(buf)), -1);
	fixture_clear(&fixture);
}

/* a caller that iterates the main context while corked still gets its
 * datagrams out, so it cannot wait forever for the answer */
static void
test_cork_flushed_by_main_loop(void)
{
	Fixture fixture;

	fixture_init(&fixture);
	amu_link_cork(fixture.link);
	send_numbered(fixture.link, 1, 2);
	iterate(1);
	expect_numbered(&fixture, 1, 2);
	amu_link_uncork(fixture.link);
	fixture_clear(&fixture);
}

static void
test_close_sends_corked(void)
{
	Fixture fixture;
	uint8_t buf[16];

	fixture_init(&fixture);
	amu_link_cork(fixture.link);
	send_numbered(fixture.link, 1, 2);
	amu_link_close(fixture.link);
	expect_numbered(&fixture, 1, 2);
	CU_ASSERT_EQUAL(peer_recv(&fixture, buf, sizeof(buf)), 0);
	amu_link_uncork(fixture.link);
	fixture_clear(&fixture);
}

static void
test_receive_in_order(void)
{
	Fixture fixture;

	fixture_init(&fixture);
	for (int i = 0; i < 100; i++) {
		uint8_t datagram[AMU_LINK_MTU_DEFAULT - 3];
		memset(datagram, i, sizeof(datagram));
		CU_ASSERT_EQUAL(send(fixture.peer_fd, datagram, 1 + (size_t)i, 0), 1 + i);
	}
	iterate(10);
	CU_ASSERT_EQUAL_FATAL(fixture.received->len, 100);
	for (guint i = 0; i < fixture.received->len; i++) {
		gsize len = 0;
		const uint8_t *data = g_bytes_get_data(g_ptr_array_index(fixture.received, i), &len);
		CU_ASSERT_EQUAL(len, i + 1);
		CU_ASSERT_EQUAL(data[0], (uint8_t)i);
	}
	CU_ASSERT_FALSE(fixture.closed);
	fixture_clear(&fixture);
}

/* A callback that iterates the context while a batch is being handed on:
 * the rest of the batch still comes first, then what arrived since. */
static void
test_nested_main_loop_keeps_order(void)
{
	Fixture fixture;

	fixture_init(&fixture);
	fixture.nest_at = 3;
	fixture.nest_sends = 4; /* enough to reach the outer datagram's slot */
	for (int i = 0; i < 10; i++) {
		uint8_t datagram[1] = {(uint8_t)i};
		CU_ASSERT_EQUAL(send(fixture.peer_fd, datagram, 1, 0), 1);
	}
	iterate(10);
	CU_ASSERT_EQUAL_FATAL(fixture.received->len, 14);
	for (guint i = 0; i < 10; i++) {
		gsize len = 0;
		const uint8_t *data = g_bytes_get_data(g_ptr_array_index(fixture.received, i), &len);
		CU_ASSERT_EQUAL(len, 1);
		CU_ASSERT_EQUAL(data[0], i);
	}
	for (guint i = 10; i < 14; i++) {
		const uint8_t *data = g_bytes_get_data(g_ptr_array_index(fixture.received, i), NULL);
		CU_ASSERT_EQUAL(data[0], 0xee);
		CU_ASSERT_EQUAL(data[1], i - 10);
	}
	fixture_clear(&fixture);
}

static void
test_peer_close(void)
{
	Fixture fixture;
	uint8_t datagram[1] = {7};

	fixture_init(&fixture);
	CU_ASSERT_EQUAL(send(fixture.peer_fd, datagram, 1, 0), 1);
	shutdown(fixture.peer_fd, SHUT_RDWR);
	iterate(5);
	/* what was sent before the close still arrives */
	CU_ASSERT_EQUAL(fixture.received->len, 1);
	CU_ASSERT_TRUE(fixture.closed);
	fixture_clear(&fixture);
}

AMU_TEST_MAIN("link-socket", {"uncorked send is immediate", test_uncorked_send_is_immediate},
	      {"cork holds datagrams until uncork, in order", test_cork_holds_until_uncork},
	      {"corked datagrams go out at the next iteration", test_cork_flushed_by_main_loop},
	      {"close sends corked datagrams", test_close_sends_corked},
	      {"a burst arrives in order", test_receive_in_order},
	      {"nested main loop keeps the order", test_nested_main_loop_keeps_order},
	      {"peer close after data", test_peer_close})
