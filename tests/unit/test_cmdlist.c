/* tests/unit/test_cmdlist.c - specification of common/cmdlist.h, the
 * command-list codec of the outbox, the finish transaction and its LMDB
 * journal, and of the ring record payloads: the byte format (pinned: a
 * journal written by an earlier version must replay), building with a
 * sticky error, splicing, and refusing every blob that does not parse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cmdlist.h"
#include "ipc/record.h"

#define S(s) bg_str_c(s)

/* PING; SET k "" as a list: the format every journaled finish has had. */
static const unsigned char GOLDEN[] = {
	2, 0, 0, 0,			/* count */
	1, 0, 0, 0,			/* argc */
	4, 0, 0, 0, 'P', 'I', 'N', 'G', /* length, bytes */
	3, 0, 0, 0,			/* argc */
	3, 0, 0, 0, 'S', 'E', 'T',	/* */
	1, 0, 0, 0, 'k',		/* */
	0, 0, 0, 0,			/* "" */
};

static struct bg_str golden(void)
{
	return (struct bg_str){ (const char *)GOLDEN, sizeof(GOLDEN) };
}

static struct bg_str blob_of(const struct bg_cmdlist *l)
{
	return bg_cmdlist_blob(l);
}

/* Each command of blob, its arguments joined with ' ', one per line. */
static char *listing(struct bg_str blob)
{
	struct bg_cmdlist_iter it;
	struct bg_buf out = { 0 };
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc, rc;
	assert_int_equal(bg_cmdlist_iter_init(&it, blob), 0);
	while ((rc = bg_cmdlist_next(&it, &argc, argv, lens,
				     BG_CMDLIST_MAX_ARGS)) > 0) {
		for (int i = 0; i < argc; i++) {
			assert_int_equal(bg_buf_append(&out, argv[i], lens[i]),
					 0);
			bg_buf_puts(&out, i + 1 < argc ? " " : "\n");
		}
	}
	assert_int_equal(rc, 0);
	return bg_buf_steal(&out);
}

static void assert_listing(struct bg_str blob, const char *want)
{
	char *got = listing(blob);
	assert_string_equal(got, want);
	free(got);
}

/* The result of walking blob to its end with the iterator. */
static int walk(struct bg_str blob, int max)
{
	struct bg_cmdlist_iter it;
	const char *argv[16];
	size_t lens[16];
	int argc;
	int rc = bg_cmdlist_iter_init(&it, blob);
	while (rc == 0 &&
	       (rc = bg_cmdlist_next(&it, &argc, argv, lens, max)) > 0)
		rc = 0;
	return rc;
}

static int check(struct bg_str blob)
{
	uint32_t n;
	return bg_cmdlist_check(blob, &n);
}

/* ---- the format ---- */

static void test_a_built_list_is_the_golden_bytes(void **state)
{
	struct bg_cmdlist l = { 0 };
	assert_int_equal(BG_CMDLIST_ADD(&l, S("PING")), 0);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("SET"), S("k"), S("")), 0);
	struct bg_str b = blob_of(&l);
	assert_int_equal(b.len, sizeof(GOLDEN));
	assert_memory_equal(b.p, GOLDEN, sizeof(GOLDEN));
	bg_cmdlist_free(&l);
}

static void test_a_blob_journaled_by_an_earlier_version_replays(void **state)
{
	uint32_t n = 0;
	assert_int_equal(bg_cmdlist_check(golden(), &n), 0);
	assert_int_equal(n, 2);
	assert_listing(golden(), "PING\nSET k \n");
}

static void test_a_packed_command_is_a_ring_record_payload(void **state)
{
	struct bg_str v[3] = { S("SET"), S("k"), S("") };
	struct bg_buf cmd = { 0 }, rec = { 0 };
	assert_int_equal(bg_cmdlist_pack(&cmd, v, 3), 0);
	assert_int_equal(cmd.len, sizeof(GOLDEN) - 16);
	assert_memory_equal(cmd.p, GOLDEN + 16, cmd.len);
	assert_int_equal(bg_rec_pack(&rec, v, 3), 0);
	assert_int_equal(rec.len, cmd.len);
	assert_memory_equal(rec.p, cmd.p, cmd.len);
	bg_buf_free(&cmd);
	bg_buf_free(&rec);
}

static void test_an_empty_list_is_a_count_of_zero(void **state)
{
	struct bg_cmdlist l = { 0 };
	uint32_t n = 99;
	struct bg_str b = blob_of(&l);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.p, "\0\0\0\0", 4);
	assert_int_equal(bg_cmdlist_check(b, &n), 0);
	assert_int_equal(n, 0);
}

/* ---- building ---- */

static void test_commands_round_trip_in_order_byte_for_byte(void **state)
{
	struct bg_cmdlist l = { 0 };
	struct bg_str bin = { "a\0b\n", 4 };
	assert_int_equal(BG_CMDLIST_ADD(&l, S("HSET"), S("h"), S("f"), bin), 0);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("1"), S("2"), S("3"), S("4"),
					S("5"), S("6"), S("7"), S("8")),
			 0);
	assert_int_equal(
		BG_CMDLIST_ADD(&l, S("XACK"), S("s"), S("g"), S("1-0")), 0);
	assert_int_equal(l.n, 3);
	uint32_t n = 0;
	assert_int_equal(bg_cmdlist_check(blob_of(&l), &n), 0);
	assert_int_equal(n, 3);

	struct bg_cmdlist_iter it;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc = 0;
	assert_int_equal(bg_cmdlist_iter_init(&it, blob_of(&l)), 0);
	assert_int_equal(bg_cmdlist_next(&it, &argc, argv, lens, 8), 1);
	assert_int_equal(argc, 4);
	assert_int_equal(lens[3], 4);
	assert_memory_equal(argv[3], "a\0b\n", 4);
	assert_int_equal(bg_cmdlist_next(&it, &argc, argv, lens, 8), 1);
	assert_int_equal(argc, 8);
	assert_int_equal(bg_cmdlist_next(&it, &argc, argv, lens, 8), 1);
	assert_int_equal(argc, 4);
	assert_int_equal(bg_cmdlist_next(&it, &argc, argv, lens, 8), 0);
	bg_cmdlist_free(&l);
}

static void test_append_splices_a_list_after_the_commands_so_far(void **state)
{
	struct bg_cmdlist outbox = { 0 }, txn = { 0 }, none = { 0 };
	BG_CMDLIST_ADD(&outbox, S("HSET"), S("reg"), S("exec:1"), S("{}"));
	BG_CMDLIST_ADD(&outbox, S("XADD"), S("ctrl"), S("*"), S("data"),
		       S("ask"));
	BG_CMDLIST_ADD(&txn, S("MULTI"));
	assert_int_equal(bg_cmdlist_append(&txn, &outbox), 0);
	assert_int_equal(bg_cmdlist_append(&txn, &none), 0);
	BG_CMDLIST_ADD(&txn, S("XACK"), S("s"), S("g"), S("1-0"));
	assert_int_equal(txn.n, 4);
	assert_listing(blob_of(&txn), "MULTI\nHSET reg exec:1 {}\n"
				      "XADD ctrl * data ask\nXACK s g 1-0\n");
	assert_listing(blob_of(&outbox), "HSET reg exec:1 {}\n"
					 "XADD ctrl * data ask\n");
	bg_cmdlist_free(&outbox);
	bg_cmdlist_free(&txn);
}

static void test_append_into_an_empty_list_copies_the_list(void **state)
{
	struct bg_cmdlist src = { 0 }, dst = { 0 };
	BG_CMDLIST_ADD(&src, S("PING"));
	BG_CMDLIST_ADD(&src, S("SET"), S("k"), S(""));
	assert_int_equal(bg_cmdlist_append(&dst, &src), 0);
	assert_int_equal(blob_of(&dst).len, sizeof(GOLDEN));
	assert_memory_equal(blob_of(&dst).p, GOLDEN, sizeof(GOLDEN));
	bg_cmdlist_free(&src);
	bg_cmdlist_free(&dst);
}

static void test_rewind_drops_the_commands_after_the_mark(void **state)
{
	struct bg_cmdlist l = { 0 };
	struct bg_cmdlist_mark empty = bg_cmdlist_tell(&l);
	BG_CMDLIST_ADD(&l, S("A"));
	struct bg_cmdlist_mark m = bg_cmdlist_tell(&l);
	BG_CMDLIST_ADD(&l, S("B"), S("b"));
	BG_CMDLIST_ADD(&l, S("C"));
	bg_cmdlist_rewind(&l, m);
	BG_CMDLIST_ADD(&l, S("D"));
	assert_int_equal(check(blob_of(&l)), 0);
	assert_listing(blob_of(&l), "A\nD\n");
	bg_cmdlist_rewind(&l, empty);
	assert_int_equal(l.n, 0);
	assert_memory_equal(blob_of(&l).p, "\0\0\0\0", 4);
	BG_CMDLIST_ADD(&l, S("E"));
	assert_listing(blob_of(&l), "E\n");
	bg_cmdlist_free(&l);
}

static void test_reset_empties_the_list_and_clears_its_error(void **state)
{
	struct bg_cmdlist l = { 0 };
	BG_CMDLIST_ADD(&l, S("A"));
	assert_int_equal(bg_cmdlist_add(&l, 0, NULL), -EINVAL);
	bg_cmdlist_reset(&l);
	assert_int_equal(l.err, 0);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("B")), 0);
	assert_listing(blob_of(&l), "B\n");
	bg_cmdlist_free(&l);
}

/* ---- the sticky error ---- */

/* The list as it was before the failure: whole, ready to parse. */
static void assert_still(const struct bg_cmdlist *l, const char *want)
{
	assert_int_equal(check(blob_of(l)), 0);
	assert_listing(blob_of(l), want);
}

static void test_a_command_of_more_than_8_arguments_fails_the_list(void **state)
{
	struct bg_cmdlist l = { 0 };
	struct bg_str nine[9] = { S("HSET"), S("h"), S("1"), S("2"), S("3"),
				  S("4"),    S("5"), S("6"), S("7") };
	BG_CMDLIST_ADD(&l, S("A"));
	assert_int_equal(bg_cmdlist_add(&l, 9, nine), -E2BIG);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("B")), -E2BIG);
	assert_int_equal(l.err, -E2BIG);
	assert_int_equal(l.n, 1);
	assert_still(&l, "A\n");
	bg_cmdlist_free(&l);
}

static void test_a_command_of_no_argument_fails_the_list(void **state)
{
	struct bg_cmdlist l = { 0 };
	assert_int_equal(bg_cmdlist_add(&l, 0, NULL), -EINVAL);
	assert_int_equal(bg_cmdlist_add(&l, -1, NULL), -EINVAL);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("A")), -EINVAL);
	assert_int_equal(l.n, 0);
	bg_cmdlist_free(&l);
}

static void test_an_argument_above_4_gib_fails_the_list(void **state)
{
	struct bg_cmdlist l = { 0 };
	struct bg_str huge = { "x", (size_t)UINT32_MAX + 1 };
	struct bg_str halves[3] = { S("SET"),
				    { "x", UINT32_MAX / 2 },
				    { "x", UINT32_MAX / 2 } };
	BG_CMDLIST_ADD(&l, S("A"));
	assert_int_equal(BG_CMDLIST_ADD(&l, S("SET"), S("k"), huge), -EMSGSIZE);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("B")), -EMSGSIZE);
	assert_still(&l, "A\n");
	bg_cmdlist_free(&l);

	struct bg_cmdlist m = { 0 };
	assert_int_equal(bg_cmdlist_add(&m, 3, halves), -EMSGSIZE);
	bg_cmdlist_free(&m);

	struct bg_buf out = { 0 };
	assert_int_equal(bg_cmdlist_pack(&out, &huge, 1), -EMSGSIZE);
	assert_int_equal(bg_cmdlist_pack(&out, halves + 1, 2), -EMSGSIZE);
	assert_int_equal(out.len, 0);
	bg_buf_free(&out);
}

static void test_a_list_built_from_a_failed_one_fails(void **state)
{
	struct bg_cmdlist outbox = { 0 }, txn = { 0 };
	BG_CMDLIST_ADD(&outbox, S("HSET"), S("h"), S("f"), S("v"));
	bg_cmdlist_add(&outbox, 0, NULL);
	BG_CMDLIST_ADD(&txn, S("MULTI"));
	assert_int_equal(bg_cmdlist_append(&txn, &outbox), -EINVAL);
	assert_int_equal(BG_CMDLIST_ADD(&txn, S("XACK"), S("s"), S("g"),
					S("1")),
			 -EINVAL);
	assert_int_equal(txn.err, -EINVAL);
	assert_still(&txn, "MULTI\n");
	bg_cmdlist_free(&outbox);
	bg_cmdlist_free(&txn);
}

static void test_rewind_keeps_the_error(void **state)
{
	struct bg_cmdlist l = { 0 };
	BG_CMDLIST_ADD(&l, S("A"));
	struct bg_cmdlist_mark m = bg_cmdlist_tell(&l);
	bg_cmdlist_add(&l, 0, NULL);
	bg_cmdlist_rewind(&l, m);
	assert_int_equal(l.err, -EINVAL);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("B")), -EINVAL);
	bg_cmdlist_free(&l);
}

/* Run first: main() arms BYGATE_FAULT=cmdlist.add:3 before anything passes
 * the point, so the third add or append of the process fails. */
static void
test_a_failed_allocation_fails_the_list_and_keeps_it_whole(void **state)
{
	struct bg_cmdlist l = { 0 }, other = { 0 };
	assert_int_equal(BG_CMDLIST_ADD(&l, S("A")), 0);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("B"), S("b")), 0);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("C")), -ENOMEM);
	assert_int_equal(BG_CMDLIST_ADD(&l, S("D")), -ENOMEM);
	assert_int_equal(l.err, -ENOMEM);
	assert_int_equal(l.n, 2);
	assert_still(&l, "A\nB b\n");
	/* a finish splicing this outbox fails too */
	assert_int_equal(BG_CMDLIST_ADD(&other, S("MULTI")), 0);
	assert_int_equal(bg_cmdlist_append(&other, &l), -ENOMEM);
	bg_cmdlist_free(&l);
	bg_cmdlist_free(&other);
}

/* ---- refusing what does not parse ---- */

static void test_every_truncated_blob_is_refused(void **state)
{
	for (size_t cut = 0; cut < sizeof(GOLDEN); cut++) {
		char *copy = malloc(cut ? cut : 1);
		memcpy(copy, GOLDEN, cut);
		struct bg_str b = { copy, cut };
		assert_int_equal(check(b), -EBADMSG);
		assert_int_equal(walk(b, 8), -EBADMSG);
		free(copy);
	}
	assert_int_equal(check((struct bg_str){ NULL, 0 }), -EBADMSG);
}

static void test_bytes_after_the_last_command_are_refused(void **state)
{
	unsigned char b[sizeof(GOLDEN) + 1];
	memcpy(b, GOLDEN, sizeof(GOLDEN));
	b[sizeof(GOLDEN)] = 0;
	struct bg_str s = { (const char *)b, sizeof(b) };
	assert_int_equal(check(s), -EBADMSG);
	assert_int_equal(walk(s, 8), -EBADMSG);
}

/* GOLDEN with the u32 at off replaced by v. */
static int check_patched(size_t off, uint32_t v)
{
	unsigned char b[sizeof(GOLDEN)];
	memcpy(b, GOLDEN, sizeof(b));
	memcpy(b + off, &v, 4);
	struct bg_str s = { (const char *)b, sizeof(b) };
	int rc = check(s);
	assert_int_equal(walk(s, 8), rc);
	return rc;
}

static void test_counts_and_lengths_past_the_end_are_refused(void **state)
{
	assert_int_equal(check_patched(0, 3), -EBADMSG); /* count */
	assert_int_equal(check_patched(0, UINT32_MAX), -EBADMSG);
	assert_int_equal(check_patched(0, 1), -EBADMSG); /* leaves bytes */
	assert_int_equal(check_patched(8, 5), -EBADMSG); /* length */
	assert_int_equal(check_patched(8, UINT32_MAX), -EBADMSG);
	assert_int_equal(check_patched(8, 3), -EBADMSG);
	assert_int_equal(check_patched(16, 4), -EBADMSG); /* argc */
	assert_int_equal(check_patched(16, UINT32_MAX), -EBADMSG);
	assert_int_equal(check_patched(sizeof(GOLDEN) - 4, 1), -EBADMSG);
	assert_int_equal(check_patched(0, 2), 0); /* unchanged: whole */
}

static void test_commands_of_no_or_too_many_arguments_are_refused(void **state)
{
	assert_int_equal(check_patched(4, 0), -EBADMSG);
	/* 9 arguments of one byte each: well formed, but more than 8 */
	unsigned char b[4 + 4 + 9 * 5];
	uint32_t v = 1;
	memcpy(b, &v, 4);
	v = 9;
	memcpy(b + 4, &v, 4);
	for (int i = 0; i < 9; i++) {
		v = 1;
		memcpy(b + 8 + i * 5, &v, 4);
		b[8 + i * 5 + 4] = 'a';
	}
	struct bg_str s = { (const char *)b, sizeof(b) };
	assert_int_equal(check(s), -EBADMSG);
	assert_int_equal(walk(s, 8), -EBADMSG);
	assert_int_equal(walk(s, 9), 0);
	/* and a caller's own bound */
	assert_int_equal(walk(golden(), 2), -EBADMSG);
	assert_int_equal(walk(golden(), 3), 0);
}

static void test_unpack_refuses_more_arguments_than_room(void **state)
{
	struct bg_str v[3];
	uint32_t argc = 77;
	size_t off = 16;
	assert_int_equal(bg_cmdlist_unpack(golden(), &off, v, 2, &argc),
			 -EBADMSG);
	assert_int_equal(off, 16);
	assert_int_equal(argc, 77);
	assert_int_equal(bg_cmdlist_unpack(golden(), &off, v, 3, &argc), 0);
	assert_int_equal(off, sizeof(GOLDEN));
	assert_int_equal(argc, 3);
	assert_true(bg_str_eq(v[1], "k"));
	off = sizeof(GOLDEN) + 1;
	assert_int_equal(bg_cmdlist_unpack(golden(), &off, v, 3, &argc),
			 -EBADMSG);
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* GOLDEN with random bytes changed, cut short or run on: the check and
 * the iterator agree, and neither reads outside the bytes (ASan). */
static void test_garbage_never_reads_past_the_blob(void **state)
{
	uint32_t seed = 0x9e3779b9u;
	int parsed = 0;
	for (int round = 0; round < 20000; round++) {
		size_t len = rnd(&seed) % 4 ? sizeof(GOLDEN)
					    : rnd(&seed) % (sizeof(GOLDEN) + 8);
		unsigned char *b = malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++)
			b[i] = i < sizeof(GOLDEN) ? GOLDEN[i]
						  : (unsigned char)rnd(&seed);
		for (uint32_t k = rnd(&seed) % 3; len && k > 0; k--)
			b[rnd(&seed) % len] =
				(unsigned char)(rnd(&seed) % 2 ? rnd(&seed) % 6
							       : rnd(&seed));
		struct bg_str s = { (const char *)b, len };
		int rc = check(s);
		assert_true(rc == 0 || rc == -EBADMSG);
		assert_int_equal(walk(s, 8), rc);
		parsed += rc == 0;
		free(b);
	}
	assert_true(parsed > 1000);
}

int main(void)
{
	setenv("BYGATE_FAULT", "cmdlist.add:3", 1);
	const struct CMUnitTest first[] = {
		cmocka_unit_test(
			test_a_failed_allocation_fails_the_list_and_keeps_it_whole),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_built_list_is_the_golden_bytes),
		cmocka_unit_test(
			test_a_blob_journaled_by_an_earlier_version_replays),
		cmocka_unit_test(
			test_a_packed_command_is_a_ring_record_payload),
		cmocka_unit_test(test_an_empty_list_is_a_count_of_zero),
		cmocka_unit_test(
			test_commands_round_trip_in_order_byte_for_byte),
		cmocka_unit_test(
			test_append_splices_a_list_after_the_commands_so_far),
		cmocka_unit_test(
			test_append_into_an_empty_list_copies_the_list),
		cmocka_unit_test(test_rewind_drops_the_commands_after_the_mark),
		cmocka_unit_test(
			test_reset_empties_the_list_and_clears_its_error),
		cmocka_unit_test(
			test_a_command_of_more_than_8_arguments_fails_the_list),
		cmocka_unit_test(test_a_command_of_no_argument_fails_the_list),
		cmocka_unit_test(test_an_argument_above_4_gib_fails_the_list),
		cmocka_unit_test(test_a_list_built_from_a_failed_one_fails),
		cmocka_unit_test(test_rewind_keeps_the_error),
		cmocka_unit_test(test_every_truncated_blob_is_refused),
		cmocka_unit_test(test_bytes_after_the_last_command_are_refused),
		cmocka_unit_test(
			test_counts_and_lengths_past_the_end_are_refused),
		cmocka_unit_test(
			test_commands_of_no_or_too_many_arguments_are_refused),
		cmocka_unit_test(test_unpack_refuses_more_arguments_than_room),
		cmocka_unit_test(test_garbage_never_reads_past_the_blob),
	};
	int failed =
		cmocka_run_group_tests_name("cmdlist_fault", first, NULL, NULL);
	return failed + cmocka_run_group_tests(tests, NULL, NULL);
}
