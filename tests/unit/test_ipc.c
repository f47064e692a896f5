/* tests/unit/test_ipc.c - specification of ipc/: the SPSC ring (records,
 * wraparound, validation of hostile indices and headers, fragmentation),
 * the doorbell handshake, the memfd segment and record payload packing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipc/record.h"
#include "ipc/ring.h"
#include "ipc/segment.h"

#define CAP 4096u
#define KIND 7
#define BIG (10 * CAP)

/* One ring in private memory, seen through two views as the two processes
 * would see it. */
struct rings {
	void *mem;
	struct bg_ring prod;
	struct bg_ring cons;
};

static void attach_views(struct rings *t)
{
	assert_int_equal(bg_ring_attach(&t->prod, t->mem, CAP), 0);
	assert_int_equal(bg_ring_attach(&t->cons, t->mem, CAP), 0);
}

static int rings_setup(void **state)
{
	struct rings *t = calloc(1, sizeof(*t));
	t->mem = aligned_alloc(BG_CACHE_LINE, bg_ring_footprint(CAP));
	memset(t->mem, 0, bg_ring_footprint(CAP));
	assert_int_equal(bg_ring_format(t->mem, CAP), 0);
	attach_views(t);
	*state = t;
	return 0;
}

static int rings_teardown(void **state)
{
	struct rings *t = *state;
	free(t->mem);
	free(t);
	return 0;
}

/* Re-attach both views with head = tail = `at`, as if the ring had already
 * carried `at` bytes. */
static void start_at(struct rings *t, uint64_t at)
{
	t->prod.ctl->head = at;
	t->prod.ctl->tail = at;
	attach_views(t);
}

static void fill(uint8_t *p, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 8));
}

static int push_pattern(struct bg_ring *r, uint64_t tag, uint32_t len)
{
	uint8_t buf[CAP];
	fill(buf, len, (uint32_t)tag);
	return bg_ring_push(r, KIND, BG_REC_WHOLE, tag, buf, len);
}

static void expect_pattern(struct bg_ring *r, uint64_t tag, uint32_t len)
{
	uint8_t buf[CAP];
	struct bg_ring_rec rec;
	assert_int_equal(bg_ring_peek(r, &rec), 0);
	assert_int_equal(rec.tag, tag);
	assert_int_equal(rec.len, len);
	assert_int_equal(rec.kind, KIND);
	fill(buf, len, (uint32_t)tag);
	assert_memory_equal(rec.payload, buf, len);
	bg_ring_pop(r);
}

/* Write a raw record header at ring position `at` (hostile producer). */
static void forge_hdr(struct rings *t, uint64_t at, uint32_t len, uint16_t kind,
		      uint16_t flags, uint64_t tag)
{
	struct bg_rec_hdr h = {
		.len = len, .kind = kind, .flags = flags, .tag = tag
	};
	memcpy(t->prod.data + (at & (CAP - 1)), &h, sizeof(h));
}

static void expect_peek(struct bg_ring *r, int want)
{
	struct bg_ring_rec rec;
	assert_int_equal(bg_ring_peek(r, &rec), want);
}

/* ---- records ---- */

static void test_peek_on_empty_ring_returns_eagain(void **state)
{
	struct rings *t = *state;
	expect_peek(&t->cons, -EAGAIN);
	assert_int_equal(bg_ring_used(&t->cons), 0);
}

static void test_records_come_out_in_push_order(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 5), 0);
	assert_int_equal(push_pattern(&t->prod, 2, 0), 0);
	assert_int_equal(push_pattern(&t->prod, 3, 300), 0);
	expect_pattern(&t->cons, 1, 5);
	expect_pattern(&t->cons, 2, 0);
	expect_pattern(&t->cons, 3, 300);
	expect_peek(&t->cons, -EAGAIN);
}

static void test_peek_without_pop_returns_the_same_record(void **state)
{
	struct rings *t = *state;
	struct bg_ring_rec a, b;
	assert_int_equal(push_pattern(&t->prod, 1, 10), 0);
	assert_int_equal(push_pattern(&t->prod, 2, 10), 0);
	assert_int_equal(bg_ring_peek(&t->cons, &a), 0);
	assert_int_equal(bg_ring_peek(&t->cons, &b), 0);
	assert_int_equal(a.tag, 1);
	assert_int_equal(b.tag, 1);
	assert_ptr_equal(a.payload, b.payload);
}

static void test_records_are_16_byte_aligned_with_header(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 1), 0);
	assert_int_equal(bg_ring_used(&t->prod), 32);
	assert_int_equal(push_pattern(&t->prod, 2, 16), 0);
	assert_int_equal(bg_ring_used(&t->prod), 64);
}

static void test_wraparound_uses_pad_records_transparently(void **state)
{
	struct rings *t = *state;
	static const uint32_t sizes[] = { 1000, 17, 333, 0, 1008, 64, 700 };
	unsigned pads = 0;
	for (uint64_t i = 0; i < 400; i++) {
		uint32_t len = sizes[i % 7];
		assert_int_equal(push_pattern(&t->prod, i, len), 0);
		uint64_t before = t->cons.tail;
		expect_pattern(&t->cons, i, len);
		uint64_t rec = 16 + ((len + 15) & ~15u);
		if (t->cons.tail - before > rec)
			pads++;
	}
	assert_true(t->cons.tail > 20 * CAP);
	assert_true(pads > 0);
	expect_peek(&t->cons, -EAGAIN);
}

static void test_full_ring_push_returns_eagain_until_pop(void **state)
{
	struct rings *t = *state;
	int n = 0;
	while (push_pattern(&t->prod, (uint64_t)n, 64) == 0)
		n++;
	assert_int_equal(n, CAP / 80);
	assert_int_equal(push_pattern(&t->prod, 99, 64), -EAGAIN);
	expect_pattern(&t->cons, 0, 64);
	assert_int_equal(push_pattern(&t->prod, 99, 64), 0);
}

static void test_push_above_max_record_returns_emsgsize(void **state)
{
	struct rings *t = *state;
	assert_int_equal(t->prod.max_record, CAP / 4 - 16);
	assert_int_equal(push_pattern(&t->prod, 1, t->prod.max_record + 1),
			 -EMSGSIZE);
	assert_int_equal(push_pattern(&t->prod, 1, t->prod.max_record), 0);
	expect_pattern(&t->cons, 1, t->prod.max_record);
}

static void test_push_rejects_pad_kind_and_unknown_flags(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, 0, BG_REC_WHOLE, 1, "x", 1),
			 -EINVAL);
	assert_int_equal(bg_ring_push(&t->prod, KIND, 0x4, 1, "x", 1), -EINVAL);
	expect_peek(&t->cons, -EAGAIN);
}

/* ---- messages ---- */

static void
test_message_ten_times_ring_size_is_fragmented_and_reassembled(void **state)
{
	struct rings *t = *state;
	static uint8_t big[BIG];
	fill(big, BIG, 42);
	struct bg_msg_out out = { .kind = KIND, .tag = 9, .p = big, .len = BIG };
	struct bg_msg_in in = { .max_len = 1 << 20 };
	int sent = -EAGAIN, got = 0, rounds = 0;
	while (got == 0) {
		if (sent == -EAGAIN)
			sent = bg_ring_send(&t->prod, &out);
		assert_true(sent == 0 || sent == -EAGAIN);
		got = bg_ring_recv(&t->cons, &in);
		assert_true(got == 0 || got == 1);
		assert_true(++rounds < 1000);
	}
	assert_true(rounds >= 10);
	assert_int_equal(sent, 0);
	assert_int_equal(in.kind, KIND);
	assert_int_equal(in.tag, 9);
	assert_int_equal(in.len, BIG);
	assert_memory_equal(in.buf, big, BIG);
	assert_int_equal(bg_ring_recv(&t->cons, &in), 0);
	assert_int_equal(in.len, 0);
	bg_msg_in_free(&in);
}

static void test_small_message_travels_as_one_whole_record(void **state)
{
	struct rings *t = *state;
	struct bg_msg_out out = {
		.kind = KIND, .tag = 3, .p = (const uint8_t *)"hello", .len = 5
	};
	struct bg_ring_rec rec;
	assert_int_equal(bg_ring_send(&t->prod, &out), 0);
	assert_int_equal(bg_ring_send(&t->prod, &out), 0); /* already done */
	assert_int_equal(bg_ring_peek(&t->cons, &rec), 0);
	assert_int_equal(rec.flags, BG_REC_WHOLE);
	bg_ring_pop(&t->cons);
	expect_peek(&t->cons, -EAGAIN);
}

static void test_empty_message_round_trips(void **state)
{
	struct rings *t = *state;
	struct bg_msg_out out = { .kind = KIND, .tag = 4 };
	struct bg_msg_in in = { .max_len = 16 };
	assert_int_equal(bg_ring_send(&t->prod, &out), 0);
	assert_int_equal(bg_ring_recv(&t->cons, &in), 1);
	assert_int_equal(in.len, 0);
	assert_non_null(in.buf);
	assert_int_equal(in.tag, 4);
	bg_msg_in_free(&in);
}

static void test_message_above_max_len_returns_emsgsize(void **state)
{
	struct rings *t = *state;
	static uint8_t big[3000];
	struct bg_msg_out ok = { .kind = KIND, .p = big, .len = 2000 };
	struct bg_msg_out over = { .kind = KIND, .p = big, .len = 2001 };
	struct bg_msg_in in = { .max_len = 2000 };
	assert_int_equal(bg_ring_send(&t->prod, &ok), 0);
	assert_int_equal(bg_ring_recv(&t->cons, &in), 1);
	assert_int_equal(in.len, 2000);
	assert_int_equal(bg_ring_send(&t->prod, &over), 0);
	assert_int_equal(bg_ring_recv(&t->cons, &in), -EMSGSIZE);
	bg_msg_in_free(&in);
}

static void expect_recv_eproto(struct rings *t)
{
	struct bg_msg_in in = { .max_len = 1 << 16 };
	int rc;
	do
		rc = bg_ring_recv(&t->cons, &in);
	while (rc == 1);
	assert_int_equal(rc, -EPROTO);
	bg_msg_in_free(&in);
}

/* The orphan fragment follows a whole message of the same kind and tag, so
 * only the missing FIRST is wrong. */
static void test_fragment_without_first_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_WHOLE, 1, "a", 1),
			 0);
	assert_int_equal(bg_ring_push(&t->prod, KIND, 0, 1, "ab", 2), 0);
	expect_recv_eproto(t);
}

static void test_last_without_first_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_WHOLE, 1, "a", 1),
			 0);
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_LAST, 1, "ab", 2),
			 0);
	expect_recv_eproto(t);
}

static void test_first_while_partial_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_FIRST, 1, "a", 1),
			 0);
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_WHOLE, 2, "b", 1),
			 0);
	expect_recv_eproto(t);
}

static void test_kind_change_mid_message_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_FIRST, 1, "a", 1),
			 0);
	assert_int_equal(
		bg_ring_push(&t->prod, KIND + 1, BG_REC_LAST, 1, "b", 1), 0);
	expect_recv_eproto(t);
}

static void test_tag_change_mid_message_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_FIRST, 1, "a", 1),
			 0);
	assert_int_equal(bg_ring_push(&t->prod, KIND, 0, 1, "b", 1), 0);
	assert_int_equal(bg_ring_push(&t->prod, KIND, BG_REC_LAST, 2, "c", 1),
			 0);
	expect_recv_eproto(t);
}

/* ---- hostile indices ---- */

/* Hostile-index tests keep a valid record at tail, so that only the index
 * check can reject them. */
static void test_head_beyond_tail_plus_capacity_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 64), 0);
	t->prod.ctl->head = CAP + 16;
	expect_peek(&t->cons, -EPROTO);
}

static void test_head_behind_tail_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 64), 0);
	expect_pattern(&t->cons, 1, 64);
	assert_int_equal(push_pattern(&t->prod, 2, 64), 0);
	t->prod.ctl->head = 64;
	expect_peek(&t->cons, -EPROTO);
}

static void test_misaligned_head_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 8), 0);
	t->prod.ctl->head += 8;
	expect_peek(&t->cons, -EPROTO);
}

static void fill_ring(struct rings *t)
{
	uint64_t n = 0;
	while (push_pattern(&t->prod, n, 64) == 0)
		n++;
}

static void test_tail_ahead_of_head_is_eproto_for_producer(void **state)
{
	struct rings *t = *state;
	fill_ring(t);
	t->cons.ctl->tail = t->prod.head + 16;
	assert_int_equal(push_pattern(&t->prod, 1, 64), -EPROTO);
}

static void test_tail_moved_back_is_eproto_for_producer(void **state)
{
	struct rings *t = *state;
	fill_ring(t);
	expect_pattern(&t->cons, 0, 64);
	assert_int_equal(push_pattern(&t->prod, 1, 64), 0); /* sees tail 80 */
	t->cons.ctl->tail = 0;
	assert_int_equal(push_pattern(&t->prod, 2, 64), -EPROTO);
}

static void test_misaligned_tail_is_eproto_for_producer(void **state)
{
	struct rings *t = *state;
	fill_ring(t);
	t->cons.ctl->tail = 8;
	assert_int_equal(push_pattern(&t->prod, 1, 64), -EPROTO);
}

/* ---- hostile record headers ---- */

static void test_record_len_overrunning_head_is_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 64), 0);
	forge_hdr(t, 0, 500, KIND, BG_REC_WHOLE, 1);
	expect_peek(&t->cons, -EPROTO);
}

static void test_record_len_above_max_record_is_eproto(void **state)
{
	struct rings *t = *state;
	forge_hdr(t, 0, t->cons.max_record + 1, KIND, BG_REC_WHOLE, 1);
	t->prod.ctl->head = CAP;
	expect_peek(&t->cons, -EPROTO);
}

static void test_record_crossing_ring_end_is_eproto(void **state)
{
	struct rings *t = *state;
	start_at(t, CAP - 32);
	forge_hdr(t, CAP - 32, 64, KIND, BG_REC_WHOLE, 1);
	t->prod.ctl->head = CAP - 32 + 80;
	expect_peek(&t->cons, -EPROTO);
}

static void test_pad_not_filling_ring_end_is_eproto(void **state)
{
	struct rings *t = *state;
	start_at(t, CAP - 64);
	forge_hdr(t, CAP - 64, 0, 0, 0, 0);
	forge_hdr(t, CAP, 16, KIND, BG_REC_WHOLE, 1);
	t->prod.ctl->head = CAP + 32;
	expect_peek(&t->cons, -EPROTO);
}

static void test_unknown_record_flags_are_eproto(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 64), 0);
	forge_hdr(t, 0, 64, KIND, 0x8 | BG_REC_WHOLE, 1);
	expect_peek(&t->cons, -EPROTO);
}

static void test_ring_attach_rejects_bad_magic_capacity_or_indices(void **state)
{
	struct rings *t = *state;
	struct bg_ring r;
	assert_int_equal(bg_ring_attach(&r, t->mem, 2 * CAP), -EPROTO);
	assert_int_equal(bg_ring_attach(&r, t->mem, CAP + 16), -EINVAL);
	t->prod.ctl->head = CAP + 16;
	assert_int_equal(bg_ring_attach(&r, t->mem, CAP), -EPROTO);
	t->prod.ctl->head = 0;
	t->prod.ctl->magic ^= 1;
	assert_int_equal(bg_ring_attach(&r, t->mem, CAP), -EPROTO);
}

/* ---- doorbell handshake ---- */

static void test_consumer_sleep_prepare_is_false_when_data_present(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 8), 0);
	assert_false(bg_ring_consumer_sleep_prepare(&t->cons));
	assert_int_equal(t->cons.ctl->consumer_waiting, 0);
	assert_false(bg_ring_need_wake_consumer(&t->prod));
}

static void test_consumer_sleep_prepare_is_true_when_empty(void **state)
{
	struct rings *t = *state;
	assert_true(bg_ring_consumer_sleep_prepare(&t->cons));
	assert_int_equal(push_pattern(&t->prod, 1, 8), 0);
	assert_true(bg_ring_need_wake_consumer(&t->prod));
	bg_ring_consumer_sleep_done(&t->cons);
	assert_false(bg_ring_need_wake_consumer(&t->prod));
	expect_pattern(&t->cons, 1, 8);
}

static void test_need_wake_consumer_is_false_without_sleeper(void **state)
{
	struct rings *t = *state;
	assert_int_equal(push_pattern(&t->prod, 1, 8), 0);
	assert_false(bg_ring_need_wake_consumer(&t->prod));
}

static void test_producer_sleep_prepare_is_false_when_space(void **state)
{
	struct rings *t = *state;
	assert_false(bg_ring_producer_sleep_prepare(&t->prod, 64));
	assert_int_equal(t->prod.ctl->producer_waiting, 0);
}

static void test_producer_is_woken_only_once_its_record_fits(void **state)
{
	struct rings *t = *state;
	fill_ring(t);
	assert_true(bg_ring_producer_sleep_prepare(&t->prod, 1008));
	assert_false(bg_ring_need_wake_producer(&t->cons));
	uint64_t n = 0;
	while (!bg_ring_need_wake_producer(&t->cons))
		expect_pattern(&t->cons, n++, 64);
	assert_true(n >= 1024 / 80);
	bg_ring_producer_sleep_done(&t->prod);
	assert_false(bg_ring_need_wake_producer(&t->cons));
	assert_int_equal(push_pattern(&t->prod, 1, 1008), 0);
}

static void test_doorbell_wakes_a_waiter_once_until_drained(void **state)
{
	int fd;
	assert_int_equal(bg_doorbell_create(&fd), 0);
	assert_int_equal(bg_doorbell_wait(fd, 0), 0);
	assert_int_equal(bg_doorbell_ring(fd), 0);
	assert_int_equal(bg_doorbell_ring(fd), 0);
	assert_int_equal(bg_doorbell_wait(fd, 1000), 1);
	assert_int_equal(bg_doorbell_drain(fd), 0);
	assert_int_equal(bg_doorbell_wait(fd, 0), 0);
	assert_int_equal(bg_doorbell_drain(fd), 0); /* empty: no block */
	close(fd);
}

static void test_wait_data_returns_at_once_when_data_present(void **state)
{
	struct rings *t = *state;
	int fd;
	assert_int_equal(bg_doorbell_create(&fd), 0);
	assert_int_equal(push_pattern(&t->prod, 1, 8), 0);
	assert_int_equal(bg_ring_wait_data(&t->cons, fd, 10000), 1);
	assert_int_equal(t->cons.ctl->consumer_waiting, 0);
	close(fd);
}

static void test_wait_data_times_out_on_empty_ring_and_clears_flag(void **state)
{
	struct rings *t = *state;
	int fd;
	assert_int_equal(bg_doorbell_create(&fd), 0);
	assert_int_equal(bg_ring_wait_data(&t->cons, fd, 1), 0);
	assert_int_equal(t->cons.ctl->consumer_waiting, 0);
	assert_int_equal(bg_doorbell_ring(fd), 0);
	assert_int_equal(bg_ring_wait_data(&t->cons, fd, 10000), 1);
	assert_int_equal(bg_doorbell_wait(fd, 0), 0); /* drained */
	close(fd);
}

static void test_wait_space_returns_at_once_when_record_fits(void **state)
{
	struct rings *t = *state;
	int fd;
	assert_int_equal(bg_doorbell_create(&fd), 0);
	assert_int_equal(bg_ring_wait_space(&t->prod, fd, 1008, 10000), 1);
	fill_ring(t);
	assert_int_equal(bg_ring_wait_space(&t->prod, fd, 64, 1), 0);
	assert_int_equal(t->prod.ctl->producer_waiting, 0);
	close(fd);
}

/* ---- segment ---- */

static void test_segment_create_then_attach_shares_both_rings(void **state)
{
	struct bg_segment a, b;
	struct bg_ring_rec rec;
	assert_int_equal(bg_segment_create(3, 7, 8192, 1 << 20, &a), 0);
	int fd = dup(a.fd);
	assert_int_equal(bg_segment_attach(fd, &b), 0);
	assert_int_equal(b.hdr->slot, 3);
	assert_int_equal(b.hdr->generation, 7);
	assert_int_equal(b.hdr->max_message, 1 << 20);
	assert_int_equal(b.down.capacity, 8192);
	assert_int_equal(b.up.capacity, 8192);
	assert_int_equal((uintptr_t)b.down.ctl % BG_CACHE_LINE, 0);
	assert_int_equal((uintptr_t)b.up.ctl % BG_CACHE_LINE, 0);

	assert_int_equal(
		bg_ring_push(&a.down, KIND, BG_REC_WHOLE, 1, "task", 4), 0);
	assert_int_equal(bg_ring_peek(&b.down, &rec), 0);
	assert_memory_equal(rec.payload, "task", 4);
	assert_int_equal(bg_ring_push(&b.up, KIND, BG_REC_WHOLE, 1, "done", 4),
			 0);
	assert_int_equal(bg_ring_peek(&a.up, &rec), 0);
	assert_memory_equal(rec.payload, "done", 4);
	b.hdr->score.tasks_done = 5;
	assert_int_equal(a.hdr->score.tasks_done, 5);

	bg_segment_close(&b);
	bg_segment_close(&a);
	assert_null(a.base);
	assert_int_equal(a.fd, -1);
}

static void test_segment_memfd_cannot_be_shrunk(void **state)
{
	struct bg_segment a;
	assert_int_equal(bg_segment_create(0, 1, CAP, 1 << 20, &a), 0);
	assert_int_equal(ftruncate(a.fd, 0), -1);
	assert_int_equal(errno, EPERM);
	bg_segment_close(&a);
}

static void test_segment_close_of_zeroed_segment_is_harmless(void **state)
{
	struct bg_segment z = { 0 };
	int before = fcntl(0, F_GETFD);
	bg_segment_close(&z);
	assert_int_equal(fcntl(0, F_GETFD), before);
	assert_int_equal(z.fd, -1);
}

/* A memfd holding `len` bytes copied from a valid segment, with `mutate`
 * applied to its header copy. */
static int forged_segment(size_t len, void (*mutate)(struct bg_seg_hdr *))
{
	struct bg_segment a;
	assert_int_equal(bg_segment_create(0, 1, CAP, 1 << 20, &a), 0);
	int fd = memfd_create("forged", MFD_CLOEXEC);
	assert_true(fd >= 0);
	struct bg_seg_hdr h;
	memcpy(&h, a.base, sizeof(h));
	if (mutate)
		mutate(&h);
	assert_int_equal(write(fd, a.base, len), (ssize_t)len);
	if (len >= sizeof(h))
		assert_int_equal(pwrite(fd, &h, sizeof(h), 0), sizeof(h));
	bg_segment_close(&a);
	return fd;
}

static void expect_attach_eproto(int fd)
{
	struct bg_segment s;
	assert_int_equal(bg_segment_attach(fd, &s), -EPROTO);
	assert_int_equal(close(fd), 0); /* still ours after a failure */
}

#define SEG_SIZE (128 + 2 * (192 + CAP))

static void test_segment_attach_of_truncated_memfd_is_eproto(void **state)
{
	struct bg_segment s;
	int fd = forged_segment(SEG_SIZE, NULL);
	assert_int_equal(bg_segment_attach(fd, &s), 0);
	bg_segment_close(&s);
	expect_attach_eproto(forged_segment(SEG_SIZE - 64, NULL));
	expect_attach_eproto(forged_segment(100, NULL));
	expect_attach_eproto(forged_segment(0, NULL));
}

static void test_segment_attach_of_garbage_memfd_is_eproto(void **state)
{
	int fd = memfd_create("garbage", MFD_CLOEXEC);
	uint8_t junk[SEG_SIZE];
	fill(junk, (uint32_t)sizeof(junk), 5);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	expect_attach_eproto(fd);
}

static void bad_version(struct bg_seg_hdr *h)
{
	h->version++;
}
static void bad_size(struct bg_seg_hdr *h)
{
	h->seg_size += 64;
}
static void overlapping(struct bg_seg_hdr *h)
{
	h->up_off = h->down_off;
}
static void misaligned(struct bg_seg_hdr *h)
{
	h->up_off += 16;
}
static void into_header(struct bg_seg_hdr *h)
{
	h->down_off = 64;
}
static void beyond_end(struct bg_seg_hdr *h)
{
	h->up_cap *= 2;
}
static void not_pow2(struct bg_seg_hdr *h)
{
	h->down_cap = 3 * 2048;
}
static void huge_off(struct bg_seg_hdr *h)
{
	h->up_off = UINT64_MAX - 63;
}

static void test_segment_attach_rejects_inconsistent_headers(void **state)
{
	void (*m[])(struct bg_seg_hdr *) = { bad_version, bad_size,
					     overlapping, misaligned,
					     into_header, beyond_end,
					     not_pow2,	  huge_off };
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		expect_attach_eproto(forged_segment(SEG_SIZE, m[i]));
}

static void test_segment_attach_with_corrupted_ring_is_eproto(void **state)
{
	struct bg_segment a;
	assert_int_equal(bg_segment_create(0, 1, CAP, 1 << 20, &a), 0);
	a.up.ctl->capacity = 2 * CAP;
	expect_attach_eproto(dup(a.fd));
	a.up.ctl->capacity = CAP;
	a.down.ctl->tail = 16;
	expect_attach_eproto(dup(a.fd));
	bg_segment_close(&a);
}

/* ---- record payloads ---- */

static void test_record_pack_unpack_round_trips(void **state)
{
	struct bg_str in[3] = { BG_STR_LIT("agent"),
				BG_STR_LIT(""),
				{ "a\0b", 3 } };
	struct bg_str out[3];
	struct bg_buf b = { 0 };
	assert_int_equal(bg_rec_pack(&b, in, 3), 0);
	assert_int_equal(b.len, 4 + 3 * 4 + 5 + 0 + 3);
	assert_int_equal(bg_rec_unpack(b.p, b.len, out, 3), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(out[i].len, in[i].len);
		assert_memory_equal(out[i].p, in[i].p, in[i].len);
	}
	bg_buf_free(&b);
}

static void packed(struct bg_buf *b, uint32_t n)
{
	struct bg_str v[2] = { BG_STR_LIT("one"), BG_STR_LIT("three") };
	bg_buf_reset(b);
	assert_int_equal(bg_rec_pack(b, v, n), 0);
}

static void test_record_pack_above_4_gib_is_emsgsize(void **state)
{
	struct bg_str one = { "x", (size_t)UINT32_MAX + 1 };
	struct bg_str two[2] = { { "x", UINT32_MAX / 2 },
				 { "x", UINT32_MAX / 2 } };
	struct bg_buf b = { 0 };
	assert_int_equal(bg_rec_pack(&b, &one, 1), -EMSGSIZE);
	assert_int_equal(bg_rec_pack(&b, two, 2), -EMSGSIZE);
	assert_int_equal(b.len, 0);
	bg_buf_free(&b);
}

static void test_record_unpack_of_wrong_count_is_ebadmsg(void **state)
{
	struct bg_buf b = { 0 };
	struct bg_str v[3];
	packed(&b, 2);
	assert_int_equal(bg_rec_unpack(b.p, b.len, v, 3), -EBADMSG);
	assert_int_equal(bg_rec_unpack(b.p, b.len, v, 1), -EBADMSG);
	bg_buf_free(&b);
}

static void test_record_unpack_of_overrunning_length_is_ebadmsg(void **state)
{
	struct bg_buf b = { 0 };
	struct bg_str v[2];
	packed(&b, 2);
	uint32_t huge = UINT32_MAX, over = 100;
	memcpy(b.p + 4 + 4 + 3, &huge, 4);
	assert_int_equal(bg_rec_unpack(b.p, b.len, v, 2), -EBADMSG);
	packed(&b, 2);
	memcpy(b.p + 4, &over, 4);
	assert_int_equal(bg_rec_unpack(b.p, b.len, v, 2), -EBADMSG);
	packed(&b, 2);
	assert_int_equal(bg_rec_unpack(b.p, b.len - 1, v, 2), -EBADMSG);
	assert_int_equal(bg_rec_unpack(b.p, 9, v, 2), -EBADMSG);
	assert_int_equal(bg_rec_unpack(b.p, 3, v, 2), -EBADMSG);
	assert_int_equal(bg_rec_unpack(NULL, 0, v, 0), -EBADMSG);
	bg_buf_free(&b);
}

static void test_record_unpack_of_trailing_bytes_is_ebadmsg(void **state)
{
	struct bg_buf b = { 0 };
	struct bg_str v[2];
	packed(&b, 2);
	assert_int_equal(bg_buf_append(&b, "x", 1), 0);
	assert_int_equal(bg_rec_unpack(b.p, b.len, v, 2), -EBADMSG);
	bg_buf_free(&b);
}

static void test_record_unpack_var_bounds_the_count(void **state)
{
	struct bg_buf b = { 0 };
	struct bg_str v[2];
	uint32_t n = 0;
	packed(&b, 2);
	assert_int_equal(bg_rec_unpack_var(b.p, b.len, v, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_true(bg_str_eq(v[1], "three"));
	assert_int_equal(bg_rec_unpack_var(b.p, b.len, v, 1, &n), -EBADMSG);
	packed(&b, 0);
	assert_int_equal(bg_rec_unpack_var(b.p, b.len, v, 2, &n), 0);
	assert_int_equal(n, 0);
	bg_buf_free(&b);
}

#define RT(f) cmocka_unit_test_setup_teardown(f, rings_setup, rings_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		RT(test_peek_on_empty_ring_returns_eagain),
		RT(test_records_come_out_in_push_order),
		RT(test_peek_without_pop_returns_the_same_record),
		RT(test_records_are_16_byte_aligned_with_header),
		RT(test_wraparound_uses_pad_records_transparently),
		RT(test_full_ring_push_returns_eagain_until_pop),
		RT(test_push_above_max_record_returns_emsgsize),
		RT(test_push_rejects_pad_kind_and_unknown_flags),
		RT(test_message_ten_times_ring_size_is_fragmented_and_reassembled),
		RT(test_small_message_travels_as_one_whole_record),
		RT(test_empty_message_round_trips),
		RT(test_message_above_max_len_returns_emsgsize),
		RT(test_fragment_without_first_is_eproto),
		RT(test_last_without_first_is_eproto),
		RT(test_first_while_partial_is_eproto),
		RT(test_kind_change_mid_message_is_eproto),
		RT(test_tag_change_mid_message_is_eproto),
		RT(test_head_beyond_tail_plus_capacity_is_eproto),
		RT(test_head_behind_tail_is_eproto),
		RT(test_misaligned_head_is_eproto),
		RT(test_tail_ahead_of_head_is_eproto_for_producer),
		RT(test_tail_moved_back_is_eproto_for_producer),
		RT(test_misaligned_tail_is_eproto_for_producer),
		RT(test_record_len_overrunning_head_is_eproto),
		RT(test_record_len_above_max_record_is_eproto),
		RT(test_record_crossing_ring_end_is_eproto),
		RT(test_pad_not_filling_ring_end_is_eproto),
		RT(test_unknown_record_flags_are_eproto),
		RT(test_ring_attach_rejects_bad_magic_capacity_or_indices),
		RT(test_consumer_sleep_prepare_is_false_when_data_present),
		RT(test_consumer_sleep_prepare_is_true_when_empty),
		RT(test_need_wake_consumer_is_false_without_sleeper),
		RT(test_producer_sleep_prepare_is_false_when_space),
		RT(test_producer_is_woken_only_once_its_record_fits),
		RT(test_wait_data_returns_at_once_when_data_present),
		RT(test_wait_data_times_out_on_empty_ring_and_clears_flag),
		RT(test_wait_space_returns_at_once_when_record_fits),
		cmocka_unit_test(
			test_doorbell_wakes_a_waiter_once_until_drained),
		cmocka_unit_test(
			test_segment_create_then_attach_shares_both_rings),
		cmocka_unit_test(test_segment_memfd_cannot_be_shrunk),
		cmocka_unit_test(
			test_segment_close_of_zeroed_segment_is_harmless),
		cmocka_unit_test(
			test_segment_attach_of_truncated_memfd_is_eproto),
		cmocka_unit_test(
			test_segment_attach_of_garbage_memfd_is_eproto),
		cmocka_unit_test(
			test_segment_attach_rejects_inconsistent_headers),
		cmocka_unit_test(
			test_segment_attach_with_corrupted_ring_is_eproto),
		cmocka_unit_test(test_record_pack_unpack_round_trips),
		cmocka_unit_test(test_record_pack_above_4_gib_is_emsgsize),
		cmocka_unit_test(test_record_unpack_of_wrong_count_is_ebadmsg),
		cmocka_unit_test(
			test_record_unpack_of_overrunning_length_is_ebadmsg),
		cmocka_unit_test(
			test_record_unpack_of_trailing_bytes_is_ebadmsg),
		cmocka_unit_test(test_record_unpack_var_bounds_the_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
