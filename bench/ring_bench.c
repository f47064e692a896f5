/* bench/ring_bench.c - figures for the supervisor <-> child hot path on a
 * real segment between two processes: one-way throughput of 64-byte records
 * with batched doorbells, and ping-pong round-trip latency through the down
 * and up rings with eventfd doorbells (both sides sleep, as children do).
 * Usage: ring_bench [records] [round_trips]. Prints figures; asserts nothing. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ring.h"
#include "ipc/segment.h"

#define RING_BYTES (64u * 1024)
#define REC_LEN 64u
#define KIND 2
#define KIND_STOP 4
#define BATCH 64
#define WAIT_MS 1000

/* Process-wide setup: one segment; the parent's doorbell (it sleeps on it
 * for up-ring data and down-ring space) and the child's. */
struct bench {
	struct bg_segment seg;
	int wake_parent;
	int wake_child;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "ring_bench: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static void wake_consumer(struct bg_ring *r, int fd)
{
	if (bg_ring_need_wake_consumer(r))
		bg_doorbell_ring(fd);
}

static void wake_producer(struct bg_ring *r, int fd)
{
	if (bg_ring_need_wake_producer(r))
		bg_doorbell_ring(fd);
}

/* Push one record, sleeping (never spinning) while the ring is full. */
static void push_blocking(struct bg_ring *r, int peer_fd, int my_fd,
			  uint16_t kind, const void *p, uint32_t len)
{
	int rc;
	while ((rc = bg_ring_push(r, kind, BG_REC_WHOLE, 1, p, len)) ==
	       -EAGAIN) {
		wake_consumer(r, peer_fd);
		rc = bg_ring_wait_space(r, my_fd, r->max_record, WAIT_MS);
		if (rc < 0)
			die("wait for space", rc);
	}
	if (rc)
		die("push", rc);
}

/* Peek one record, sleeping while the ring is empty. */
static void peek_blocking(struct bg_ring *r, int peer_fd, int my_fd,
			  struct bg_ring_rec *rec)
{
	int rc;
	while ((rc = bg_ring_peek(r, rec)) == -EAGAIN) {
		wake_producer(r, peer_fd);
		rc = bg_ring_wait_data(r, my_fd, WAIT_MS);
		if (rc < 0)
			die("wait for data", rc);
	}
	if (rc)
		die("peek", rc);
}

static pid_t spawn(struct bench *b, void (*body)(struct bench *, uint64_t),
		   uint64_t n)
{
	pid_t pid = fork();
	if (pid == -1)
		die("fork", -errno);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		body(b, n);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		die("child", -ECHILD);
}

/* ---- one-way throughput: the child produces on the up ring ---- */

static void produce(struct bench *b, uint64_t n)
{
	struct bg_ring *r = &b->seg.up;
	uint8_t rec[REC_LEN] = { 0 };
	for (uint64_t i = 0; i < n; i++) {
		memcpy(rec, &i, sizeof(i));
		push_blocking(r, b->wake_parent, b->wake_child, KIND, rec,
			      REC_LEN);
		if (i % BATCH == BATCH - 1)
			wake_consumer(r, b->wake_parent);
	}
	wake_consumer(r, b->wake_parent);
}

static void bench_throughput(struct bench *b, uint64_t n)
{
	struct bg_ring *r = &b->seg.up;
	double t0 = now_s();
	pid_t pid = spawn(b, produce, n);
	for (uint64_t i = 0; i < n; i++) {
		struct bg_ring_rec rec;
		uint64_t seq;
		peek_blocking(r, b->wake_child, b->wake_parent, &rec);
		memcpy(&seq, rec.payload, sizeof(seq));
		if (seq != i || rec.len != REC_LEN)
			die("record out of order", -EPROTO);
		bg_ring_pop(r);
		if (i % BATCH == BATCH - 1)
			wake_producer(r, b->wake_child);
	}
	double dt = now_s() - t0;
	reap(pid);
	printf("one-way %u-byte records, %u KiB ring, doorbell per %d: "
	       "%.2f M records/s (%" PRIu64 " in %.3f s)\n",
	       REC_LEN, RING_BYTES / 1024, BATCH, (double)n / dt / 1e6, n, dt);
}

/* ---- ping-pong: parent -> down ring -> child -> up ring -> parent ---- */

static void echo(struct bench *b, uint64_t n)
{
	for (;;) {
		struct bg_ring_rec rec;
		uint8_t copy[REC_LEN];
		peek_blocking(&b->seg.down, b->wake_parent, b->wake_child,
			      &rec);
		uint16_t kind = rec.kind;
		uint32_t len = rec.len < REC_LEN ? rec.len : REC_LEN;
		memcpy(copy, rec.payload, len);
		bg_ring_pop(&b->seg.down);
		if (kind == KIND_STOP)
			return;
		push_blocking(&b->seg.up, b->wake_parent, b->wake_child, kind,
			      copy, len);
		wake_consumer(&b->seg.up, b->wake_parent);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void bench_latency(struct bench *b, uint64_t n)
{
	uint64_t warm = n / 10 + 1;
	double *rtt = malloc(sizeof(double) * n);
	uint8_t rec[REC_LEN] = { 0 };
	if (rtt == NULL)
		die("malloc", -ENOMEM);
	pid_t pid = spawn(b, echo, 0);
	for (uint64_t i = 0; i < warm + n; i++) {
		struct bg_ring_rec in;
		double t0 = now_s();
		push_blocking(&b->seg.down, b->wake_child, b->wake_parent, KIND,
			      rec, REC_LEN);
		wake_consumer(&b->seg.down, b->wake_child);
		peek_blocking(&b->seg.up, b->wake_child, b->wake_parent, &in);
		bg_ring_pop(&b->seg.up);
		if (i >= warm)
			rtt[i - warm] = (now_s() - t0) * 1e6;
	}
	push_blocking(&b->seg.down, b->wake_child, b->wake_parent, KIND_STOP,
		      NULL, 0);
	wake_consumer(&b->seg.down, b->wake_child);
	reap(pid);
	qsort(rtt, n, sizeof(double), cmp_double);
	printf("ping-pong round trip, %u-byte records, eventfd doorbells both "
	       "ways: p50 %.1f us, p99 %.1f us (%" PRIu64 " round trips)\n",
	       REC_LEN, rtt[n / 2], rtt[n * 99 / 100], n);
	free(rtt);
}

static void bench_open(struct bench *b)
{
	int rc = bg_segment_create(0, 1, RING_BYTES, 1u << 24, &b->seg);
	if (rc == 0)
		rc = bg_doorbell_create(&b->wake_parent);
	if (rc == 0)
		rc = bg_doorbell_create(&b->wake_child);
	if (rc)
		die("setup", rc);
}

static void bench_close(struct bench *b)
{
	close(b->wake_parent);
	close(b->wake_child);
	bg_segment_close(&b->seg);
}

int main(int argc, char **argv)
{
	uint64_t records = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
	uint64_t trips = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
	if (records == 0 || trips == 0) {
		fprintf(stderr, "usage: ring_bench [records] [round_trips]\n");
		return 2;
	}
	struct bench b;
	bench_open(&b);
	bench_throughput(&b, records);
	bench_close(&b);
	bench_open(&b);
	bench_latency(&b, trips);
	bench_close(&b);
	return 0;
}
