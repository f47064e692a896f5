/* tests/fuzz/fuzz_cmdlist.c - libFuzzer target for the command-list codec
 * (common/cmdlist.c) and the ring record payloads over it (ipc/record.c):
 * a child writes the payloads of its up-ring records, and the finish
 * journal is read back from LMDB after a crash or an upgrade.
 *
 * Each input is read both ways. Checked besides memory safety:
 * - as a list: bg_cmdlist_check accepts it exactly when bg_cmdlist_next
 *   walks it to a clean end, with the same count; each argument lies
 *   inside the input; re-adding the commands gives back the same bytes;
 * - as a payload: bg_rec_unpack_var accepts it exactly when bg_rec_unpack
 *   does with the count it found (for every record kind's field count);
 *   the views lie inside the input; bg_rec_pack of them is the input.
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_cmdlist
 * (seeds: tests/fuzz/corpus/fuzz_cmdlist/); `make fuzz` with libFuzzer, or
 * by hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_cmdlist.c \
 *     common/cmdlist.c common/buf.c common/fault.c ipc/record.c \
 *     -o fuzz_cmdlist
 *   mkdir -p /tmp/fuzz_cmdlist
 *   ./fuzz_cmdlist -max_len=4096 -max_total_time=60 \
 *     /tmp/fuzz_cmdlist tests/fuzz/corpus/fuzz_cmdlist
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmdlist.h"
#include "ipc/record.h"

#include "tests/fuzz/check.h"

#define MAX_FIELDS 64

static bool inside(const char *v, size_t len, const char *p, size_t n)
{
	return v >= p && len <= n && (size_t)(v - p) <= n - len;
}

static void as_list(const char *p, size_t size)
{
	struct bg_str blob = { p, size };
	struct bg_cmdlist_iter it;
	struct bg_cmdlist copy = { 0 };
	uint32_t n = 0, walked = 0;
	int checked = bg_cmdlist_check(blob, &n), rc;

	if (bg_cmdlist_iter_init(&it, blob) != 0) {
		CHECK(checked != 0);
		return;
	}
	for (;;) {
		const char *argv[BG_CMDLIST_MAX_ARGS];
		size_t lens[BG_CMDLIST_MAX_ARGS];
		struct bg_str v[BG_CMDLIST_MAX_ARGS];
		int argc;
		if ((rc = bg_cmdlist_next(&it, &argc, argv, lens,
					  BG_CMDLIST_MAX_ARGS)) != 1)
			break;
		CHECK(argc >= 1 && argc <= BG_CMDLIST_MAX_ARGS);
		for (int i = 0; i < argc; i++) {
			CHECK(inside(argv[i], lens[i], p, size));
			v[i] = (struct bg_str){ argv[i], lens[i] };
		}
		CHECK(bg_cmdlist_add(&copy, argc, v) == 0);
		walked++;
	}
	CHECK((checked == 0) == (rc == 0));
	if (checked == 0) {
		struct bg_str again = bg_cmdlist_blob(&copy);
		CHECK(n == walked && copy.n == n);
		CHECK(again.len == size && memcmp(again.p, p, size) == 0);
	}
	bg_cmdlist_free(&copy);
}

/* The field counts the readers of ring records ask for. */
static const uint32_t counts[] = { BG_TF__COUNT,
				   BG_EF__COUNT,
				   BG_RF__COUNT,
				   BG_CF__COUNT,
				   BG_YF__COUNT,
				   2,
				   1 };

static void as_payload(const char *p, size_t size)
{
	struct bg_str v[MAX_FIELDS];
	struct bg_buf again = { 0 };
	uint32_t n = 0;
	int rc = bg_rec_unpack_var(p, size, v, MAX_FIELDS, &n);

	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
		struct bg_str w[MAX_FIELDS];
		bool exact = rc == 0 && n == counts[i];
		CHECK((bg_rec_unpack(p, size, w, counts[i]) == 0) == exact);
		for (uint32_t k = 0; exact && k < n; k++)
			CHECK(w[k].p == v[k].p && w[k].len == v[k].len);
	}
	if (rc != 0)
		return;
	CHECK(n <= MAX_FIELDS);
	for (uint32_t k = 0; k < n; k++)
		CHECK(v[k].len == 0 || inside(v[k].p, v[k].len, p, size));
	CHECK(bg_rec_pack(&again, v, n) == 0);
	CHECK(again.len == size && memcmp(again.p, p, size) == 0);
	bg_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so any read past the end is caught. */
	char *p = malloc(size ? size : 1);
	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	as_list(p, size);
	as_payload(p, size);
	free(p);
	return 0;
}
