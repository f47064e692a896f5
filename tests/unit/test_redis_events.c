/* tests/unit/test_redis_events.c - supervisor/redis_events.c, hiredis's
 * event hooks on the libevent loop, against a loopback peer that records
 * what reaches it: commands leave only at a flush, replies keep being read
 * with the read event armed once, a full socket waits for room and for the
 * next flush, and a write error is reported as the context freed. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/sds.h>

#include "supervisor/redis_events.c"

struct peer {
	int listen_fd;
	int fd; /* the accepted connection */
	int port;
	struct event_base *base;
	redisAsyncContext *ac;
	int replies;	       /* replies handed to on_reply */
	int disconnects;       /* disconnect callbacks */
	char got[64 * 1024];   /* what the peer received (first bytes) */
	size_t n_got, n_total; /* kept, and received in all */
};

static struct peer *g_peer; /* for the disconnect callback */

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)ac;
	(void)status;
	g_peer->disconnects++;
	g_peer->ac = NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	(void)ac;
	struct peer *p = priv;
	if (r != NULL)
		p->replies++;
}

/* Everything the peer can read now, without waiting. */
static size_t peer_drain(struct peer *p)
{
	size_t n = 0;
	char buf[65536];
	for (;;) {
		ssize_t k = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k <= 0)
			break;
		size_t room = sizeof(p->got) - p->n_got;
		size_t keep = (size_t)k < room ? (size_t)k : room;
		memcpy(p->got + p->n_got, buf, keep);
		p->n_got += keep;
		p->n_total += (size_t)k;
		n += (size_t)k;
	}
	return n;
}

static void turns(struct peer *p, int n)
{
	for (int i = 0; i < n; i++)
		event_base_loop(p->base, EVLOOP_NONBLOCK);
}

/* A connected context on a loopback peer, its connect completed by the
 * write event (the one job the write event keeps). */
static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	struct peer *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	g_peer = p;
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->listen_fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(listen(p->listen_fd, 1), 0);
	assert_int_equal(
		getsockname(p->listen_fd, (struct sockaddr *)&sa, &len), 0);
	p->port = ntohs(sa.sin_port);
	p->base = event_base_new();
	assert_non_null(p->base);
	p->ac = redisAsyncConnect("127.0.0.1", p->port);
	assert_non_null(p->ac);
	assert_int_equal(p->ac->err, 0);
	assert_int_equal(bg_redis_events_attach(p->ac, p->base), 0);
	assert_int_equal(bg_redis_events_attach(p->ac, p->base), -EEXIST);
	redisAsyncSetDisconnectCallback(p->ac, on_disconnect);
	p->fd = accept(p->listen_fd, NULL, NULL);
	assert_true(p->fd >= 0);
	for (int i = 0; i < 100 && !(p->ac->c.flags & REDIS_CONNECTED); i++)
		event_base_loop(p->base, EVLOOP_ONCE);
	assert_true(p->ac->c.flags & REDIS_CONNECTED);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct peer *p = *state;
	if (p->ac)
		redisAsyncFree(p->ac);
	if (p->fd >= 0)
		close(p->fd);
	close(p->listen_fd);
	event_base_free(p->base);
	free(p);
	return 0;
}

static void test_a_queued_command_leaves_only_at_the_flush(void **state)
{
	struct peer *p = *state;
	assert_int_equal(redisAsyncCommand(p->ac, on_reply, p, "PING"),
			 REDIS_OK);
	assert_true(bg_redis_events_pending(p->ac));
	turns(p, 5);
	assert_int_equal(peer_drain(p), 0); /* the loop wrote nothing */
	assert_false(bg_redis_events_flush(p->ac));
	assert_false(bg_redis_events_pending(p->ac));
	const char want[] = "*1\r\n$4\r\nPING\r\n";
	assert_int_equal(peer_drain(p), sizeof(want) - 1);
	assert_memory_equal(p->got, want, sizeof(want) - 1);
}

static void test_the_commands_of_a_turn_leave_together(void **state)
{
	struct peer *p = *state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(redisAsyncCommand(p->ac, on_reply, p, "PING"),
				 REDIS_OK);
	assert_false(bg_redis_events_flush(p->ac));
	assert_int_equal(peer_drain(p), 3 * 14);
	assert_false(bg_redis_events_flush(p->ac)); /* nothing left: no-op */
	assert_int_equal(peer_drain(p), 0);
}

static void test_replies_keep_being_read_turn_after_turn(void **state)
{
	struct peer *p = *state;
	for (int round = 1; round <= 3; round++) {
		assert_int_equal(redisAsyncCommand(p->ac, on_reply, p, "PING"),
				 REDIS_OK);
		assert_false(bg_redis_events_flush(p->ac));
		assert_int_equal(peer_drain(p), 14);
		assert_int_equal(write(p->fd, "+PONG\r\n", 7), 7);
		for (int i = 0; i < 100 && p->replies < round; i++)
			event_base_loop(p->base, EVLOOP_ONCE);
		assert_int_equal(p->replies, round);
	}
}

/* Bytes hiredis holds for the peer, not yet written by us. */
static size_t unwritten(const struct peer *p)
{
	return sdslen(p->ac->c.obuf);
}

static void test_a_full_socket_waits_for_room_and_the_next_flush(void **state)
{
	struct peer *p = *state;
	size_t big = 32u << 20; /* more than the socket buffers hold */
	char *v = malloc(big), *cmd = NULL;
	assert_non_null(v);
	memset(v, 'x', big);
	int want = redisFormatCommand(&cmd, "SET k %b", v, big);
	assert_true(want > 0);
	free(cmd);
	assert_int_equal(redisAsyncCommand(p->ac, on_reply, p, "SET k %b", v,
					   big),
			 REDIS_OK);
	free(v);
	assert_false(bg_redis_events_flush(p->ac));
	assert_true(bg_redis_events_pending(p->ac)); /* one write: partial */
	int flushes = 1;
	while (bg_redis_events_pending(p->ac) && flushes < 100000) {
		size_t left = unwritten(p);
		assert_true(left > 0);
		peer_drain(p);
		usleep(100);
		/* Room again: the write event fires, but writes nothing. */
		turns(p, 2);
		assert_int_equal(unwritten(p), left);
		assert_false(bg_redis_events_flush(p->ac));
		flushes++;
	}
	assert_false(bg_redis_events_pending(p->ac));
	assert_int_equal(unwritten(p), 0);
	for (int i = 0; i < 1000 && p->n_total < (size_t)want; i++) {
		peer_drain(p);
		usleep(1000);
	}
	assert_true(flushes > 1);
	assert_int_equal(p->n_total, (size_t)want);
}

static void test_a_write_error_reports_the_context_freed(void **state)
{
	struct peer *p = *state;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(p->fd); /* a reset: the next write fails */
	p->fd = -1;
	usleep(10000);
	assert_int_equal(redisAsyncCommand(p->ac, on_reply, p, "PING"),
			 REDIS_OK);
	assert_true(bg_redis_events_flush(p->ac));
	assert_null(p->ac); /* freed: its disconnect callback ran */
	assert_int_equal(p->disconnects, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_a_queued_command_leaves_only_at_the_flush, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_the_commands_of_a_turn_leave_together, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_replies_keep_being_read_turn_after_turn, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_full_socket_waits_for_room_and_the_next_flush,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_write_error_reports_the_context_freed, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
