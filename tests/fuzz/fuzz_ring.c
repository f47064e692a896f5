/* tests/fuzz/fuzz_ring.c - libFuzzer target for the ring record decoder as
 * bygated runs it on a child's up ring (ipc/ring.c bg_ring_recv, then
 * ipc/record.c bg_rec_unpack of each message): the child is sandboxed and
 * untrusted, and writes both the records and the ring's head index.
 *
 * The input plays a hostile producer on a ring of BG_RING_MIN_CAPACITY
 * bytes (all integers little endian):
 *   u16 start      the consumer's first tail (masked, aligned)
 *   then chunks:   u16 advance, u16 n, n bytes
 * Each chunk writes its bytes at the producer's head (wrapping), moves the
 * head by `advance` (unchecked: any value, aligned or not), and the
 * consumer receives until the ring is empty or broken. Checked besides
 * memory safety: a received message has a kind, is NUL-terminated, is at
 * most max_len bytes, and decodes (if at all) to fields inside it; after
 * -EPROTO or -EMSGSIZE the ring is abandoned, as bygated kills the child.
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_ring
 * (seeds: tests/fuzz/corpus/fuzz_ring/); `make fuzz` with libFuzzer, or by
 * hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_ring.c \
 *     ipc/ring.c ipc/record.c common/cmdlist.c common/buf.c common/fault.c \
 *     -o fuzz_ring
 *   mkdir -p /tmp/fuzz_ring
 *   ./fuzz_ring -max_len=16384 -max_total_time=60 \
 *     /tmp/fuzz_ring tests/fuzz/corpus/fuzz_ring
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/record.h"
#include "ipc/ring.h"

#include "tests/fuzz/check.h"

#define CAPACITY BG_RING_MIN_CAPACITY
#define MAX_MESSAGE (3 * CAPACITY) /* fragments must be reassembled */
#define MAX_FIELDS 64

static _Alignas(64) uint8_t mem[sizeof(struct bg_ring_ctl) + CAPACITY];

static uint16_t take16(const uint8_t **p, size_t *n)
{
	uint16_t v = 0;
	if (*n >= 2) {
		v = (uint16_t)((*p)[0] | (*p)[1] << 8);
		*p += 2;
		*n -= 2;
	} else {
		*p += *n;
		*n = 0;
	}
	return v;
}

/* What bygated does with a message (supervisor/pool_read.c and the
 * stages it hands the records to): unpack with the kind's field count. */
static void consume(const struct bg_msg_in *m)
{
	static const uint32_t counts[] = { BG_EF__COUNT, BG_RF__COUNT,
					   BG_CF__COUNT, 2, 1 };
	struct bg_str v[MAX_FIELDS];
	uint32_t n;

	CHECK(m->kind != BG_REC_PAD);
	CHECK(m->len <= m->max_len && m->buf != NULL && m->buf[m->len] == 0);
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
		if (bg_rec_unpack(m->buf, m->len, v, counts[i]) == 0)
			for (uint32_t k = 0; k < counts[i]; k++)
				CHECK(v[k].len <= m->len &&
				      (const uint8_t *)v[k].p >= m->buf &&
				      (size_t)((const uint8_t *)v[k].p -
					       m->buf) <= m->len - v[k].len);
	if (bg_rec_unpack_var(m->buf, m->len, v, MAX_FIELDS, &n) == 0)
		CHECK(n <= MAX_FIELDS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bg_ring_ctl *ctl = (struct bg_ring_ctl *)mem;
	uint8_t *ring = mem + sizeof *ctl;
	struct bg_ring r;
	struct bg_msg_in m = { .max_len = MAX_MESSAGE };
	uint64_t start, head;

	memset(mem, 0, sizeof mem);
	CHECK(bg_ring_format(mem, CAPACITY) == 0);
	start = take16(&data, &size) & (CAPACITY - 1) & ~(BG_REC_ALIGN - 1);
	ctl->head = ctl->tail = head = start;
	CHECK(bg_ring_attach(&r, mem, CAPACITY) == 0);
	while (size > 0) {
		uint16_t advance = take16(&data, &size);
		size_t n = take16(&data, &size);
		if (n > size)
			n = size;
		for (size_t i = 0; i < n; i++)
			ring[(head + i) & (CAPACITY - 1)] = data[i];
		data += n;
		size -= n;
		head += advance;
		__atomic_store_n(&ctl->head, head, __ATOMIC_RELEASE);
		int rc;
		while ((rc = bg_ring_recv(&r, &m)) == 1)
			consume(&m);
		if (rc != 0) {
			CHECK(rc == -EPROTO || rc == -EMSGSIZE);
			break;
		}
		CHECK(bg_ring_used(&r) <= CAPACITY);
	}
	bg_msg_in_free(&m);
	return 0;
}
