/* tests/unit/test_ring_stress.c - two processes on one real segment: a
 * forked producer sends millions of messages of random sizes (pads and
 * fragmented messages included) up the ring, the parent consumes and checks
 * order, size and checksum, both sleeping on eventfd doorbells with the
 * documented handshake and timed waits, never spinning. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc/ring.h"
#include "ipc/segment.h"

#define RING_BYTES (32u * 1024)
#define MAX_MESSAGE (4u * RING_BYTES)
#define MESSAGES 4000000u
#define KIND 17
#define BATCH 32      /* producer checks the consumer's flag this often */
#define WAIT_MS 250   /* every sleep is bounded */
#define DEADLINE_S 60 /* a hung run fails instead of hanging CI */

struct msg_hdr {
	uint64_t seq;
	uint32_t len; /* payload bytes after this header */
	uint32_t sum;
};

struct stress {
	struct bg_segment seg;
	int data_fd;  /* producer rings it: data available */
	int space_fd; /* consumer rings it: space available */
	pid_t pid;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Payload size of message `seq`: mostly small, some near max_record (pads
 * at the ring's end), a few larger than a record (fragmented). */
static uint32_t payload_len(uint64_t seq, uint32_t max_record)
{
	uint64_t r = mix(seq ^ 0x5eed);
	uint32_t pick = (uint32_t)(r % 1000), x = (uint32_t)(r >> 32);
	if (pick < 750)
		return x % 64;
	if (pick < 960)
		return 64 + x % 960;
	if (pick < 999)
		return 1024 + x % (max_record - 1024 - sizeof(struct msg_hdr));
	return max_record +
	       x % (MAX_MESSAGE - max_record - sizeof(struct msg_hdr));
}

static uint32_t checksum(const uint8_t *p, uint32_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ (h >> 32));
}

static uint32_t build_message(uint8_t *buf, uint64_t seq, uint32_t max_record)
{
	uint32_t len = payload_len(seq, max_record);
	uint8_t *p = buf + sizeof(struct msg_hdr);
	uint64_t s = seq;
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t w = mix(s++);
		memcpy(p + i, &w, len - i < 8 ? len - i : 8);
	}
	struct msg_hdr h = { .seq = seq, .len = len, .sum = checksum(p, len) };
	memcpy(buf, &h, sizeof(h));
	return (uint32_t)sizeof(h) + len;
}

static int wake(struct bg_ring *r, int fd)
{
	return bg_ring_need_wake_consumer(r) ? bg_doorbell_ring(fd) : 0;
}

/* Producer side: sleep until the next fragment of m fits. */
static int wait_for_space(struct stress *s, const struct bg_msg_out *m)
{
	struct bg_ring *r = &s->seg.up;
	uint32_t left = m->len - m->off;
	int rc = wake(r, s->data_fd); /* never sleep on unannounced data */
	if (rc == 0)
		rc = bg_ring_wait_space(
			r, s->space_fd,
			left < r->max_record ? left : r->max_record, WAIT_MS);
	return rc < 0 ? rc : 0;
}

/* Child body: send messages [0, count) and exit. Returns an exit status. */
static int produce(struct stress *s, uint64_t count)
{
	struct bg_ring *r = &s->seg.up;
	uint8_t *buf = malloc(MAX_MESSAGE);
	if (buf == NULL)
		return 10;
	for (uint64_t seq = 0; seq < count; seq++) {
		struct bg_msg_out m = { .kind = KIND,
					.tag = seq + 1,
					.p = buf };
		m.len = build_message(buf, seq, r->max_record);
		int rc;
		while ((rc = bg_ring_send(r, &m)) == -EAGAIN)
			if (wait_for_space(s, &m))
				return 11;
		if (rc)
			return 12;
		if (seq % BATCH == BATCH - 1 && wake(r, s->data_fd))
			return 13;
	}
	free(buf);
	return wake(r, s->data_fd) ? 13 : 0;
}

static void spawn_producer(struct stress *s, uint64_t count)
{
	pid_t parent = getpid();
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(14);
		_exit(produce(s, count));
	}
}

/* Bytes the records of a message of `len` bytes occupy, pads excluded. */
static uint64_t record_bytes(uint32_t len, uint32_t max_record)
{
	uint64_t total = 0;
	do {
		uint32_t n = len < max_record ? len : max_record;
		total += 16 + ((n + 15u) & ~15u);
		len -= n;
	} while (len);
	return total;
}

static int check_message(const struct bg_msg_in *in, uint64_t seq,
			 uint32_t max_record)
{
	struct msg_hdr h;
	if (in->kind != KIND || in->tag != seq + 1 || in->len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, in->buf, sizeof(h));
	const uint8_t *p = in->buf + sizeof(h);
	if (h.seq != seq || h.len != in->len - sizeof(h) ||
	    h.len != payload_len(seq, max_record) ||
	    h.sum != checksum(p, h.len))
		return -EBADMSG;
	return 0;
}

/* Consumer side: sleep until data arrives; -ECHILD when the producer died
 * first, -ETIMEDOUT past the deadline. */
static int wait_for_data(struct stress *s, time_t deadline)
{
	struct bg_ring *r = &s->seg.up;
	if (bg_ring_need_wake_producer(r) && bg_doorbell_ring(s->space_fd))
		return -EIO;
	int rc = bg_ring_wait_data(r, s->data_fd, WAIT_MS);
	if (rc == 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid) {
		s->pid = 0;
		return -ECHILD;
	}
	if (time(NULL) > deadline)
		return -ETIMEDOUT;
	return rc < 0 ? rc : 0;
}

struct consumed {
	uint64_t messages;
	uint64_t record_bytes; /* sum over records, pads excluded */
};

static int consume(struct stress *s, uint64_t count, struct consumed *c)
{
	struct bg_ring *r = &s->seg.up;
	struct bg_msg_in in = { .max_len = MAX_MESSAGE };
	time_t deadline = time(NULL) + DEADLINE_S;
	int rc = 0;
	while (rc == 0 && c->messages < count) {
		rc = bg_ring_recv(r, &in);
		if (rc == 1) {
			rc = check_message(&in, c->messages, r->max_record);
			c->record_bytes +=
				record_bytes((uint32_t)in.len, r->max_record);
			c->messages++;
			if (bg_ring_need_wake_producer(r))
				bg_doorbell_ring(s->space_fd);
		} else if (rc == 0) {
			rc = wait_for_data(s, deadline);
		}
	}
	bg_msg_in_free(&in);
	return rc;
}

static int stress_setup(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));
	assert_int_equal(
		bg_segment_create(0, 1, RING_BYTES, MAX_MESSAGE, &s->seg), 0);
	assert_int_equal(bg_doorbell_create(&s->data_fd), 0);
	assert_int_equal(bg_doorbell_create(&s->space_fd), 0);
	*state = s;
	return 0;
}

static int stress_teardown(void **state)
{
	struct stress *s = *state;
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	close(s->data_fd);
	close(s->space_fd);
	bg_segment_close(&s->seg);
	free(s);
	return 0;
}

static void expect_exit_status(struct stress *s, int want)
{
	int st;
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	s->pid = 0;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), want);
}

static void
test_millions_of_records_cross_processes_in_order_and_intact(void **state)
{
	struct stress *s = *state;
	struct consumed c = { 0 };
	spawn_producer(s, MESSAGES);
	assert_int_equal(consume(s, MESSAGES, &c), 0);
	expect_exit_status(s, 0);
	assert_int_equal(c.messages, MESSAGES);
	struct bg_ring *r = &s->seg.up;
	assert_true(r->tail / RING_BYTES > 1000); /* wrapped many times */
	assert_true(r->tail > c.record_bytes);	  /* pads were written */
	assert_true(r->tail - c.record_bytes < r->tail / 4);
	struct bg_ring_rec rec;
	assert_int_equal(bg_ring_peek(r, &rec), -EAGAIN);
}

static void test_consumer_notices_a_producer_that_died(void **state)
{
	struct stress *s = *state;
	struct consumed c = { 0 };
	spawn_producer(s, 1000);
	assert_int_equal(consume(s, 2000, &c), -ECHILD);
	assert_int_equal(c.messages, 1000);
	assert_int_equal(s->pid, 0); /* reaped */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_millions_of_records_cross_processes_in_order_and_intact,
			stress_setup, stress_teardown),
		cmocka_unit_test_setup_teardown(
			test_consumer_notices_a_producer_that_died,
			stress_setup, stress_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
