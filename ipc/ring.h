/* ipc/ring.h - single-producer single-consumer byte ring in shared memory,
 * carrying binary tagged records, with the eventfd doorbell handshake and
 * fragmentation of messages larger than one record (DESIGN 5).
 *
 * Layout (ABI, shared between bygated and bygate-child):
 *   struct bg_ring_ctl   three cache lines: producer line (head, producer
 *                        waiting flag), consumer line (tail, consumer
 *                        waiting flag), constant line (capacity, magic).
 *   data[capacity]       records, each a struct bg_rec_hdr followed by the
 *                        payload, padded to BG_REC_ALIGN. A record never wraps:
 *                        when it does not fit before the end, the producer
 *                        writes a BG_REC_PAD record filling the rest.
 * head and tail are free-running 64-bit byte counts; used = head - tail.
 *
 * The consumer of a ring must treat everything the other side writes as
 * untrusted: bg_ring_peek() validates 0 <= head - tail <= capacity and every
 * record header, and returns -EPROTO on a violation (the supervisor then kills
 * the child). The local struct bg_ring keeps its own copy of the capacity and
 * never re-reads it from shared memory.
 *
 * Nothing here logs, allocates on the hot path, or exits. */
#ifndef BG_IPC_RING_H
#define BG_IPC_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BG_RING_MAGIC 0x42475247u /* "BGRG" */
#define BG_REC_ALIGN 16u
#define BG_CACHE_LINE 64u

struct bg_ring_ctl {
	/* producer line: written only by the producer */
	_Alignas(64) uint64_t head;
	uint32_t producer_waiting; /* producer sleeps until space frees */
	uint32_t producer_pad_;
	/* consumer line: written only by the consumer */
	_Alignas(64) uint64_t tail;
	uint32_t consumer_waiting; /* consumer sleeps until data arrives */
	uint32_t consumer_pad_;
	/* constant line: written once at creation */
	_Alignas(64) uint64_t capacity;
	uint32_t magic;
	uint32_t const_pad_;
};
_Static_assert(sizeof(struct bg_ring_ctl) == 3 * BG_CACHE_LINE, "ring ctl ABI");
_Static_assert(offsetof(struct bg_ring_ctl, tail) == BG_CACHE_LINE,
	       "ring ctl ABI");
_Static_assert(offsetof(struct bg_ring_ctl, capacity) == 2 * BG_CACHE_LINE,
	       "ring ctl ABI");

/* Record header as stored in the ring. */
struct bg_rec_hdr {
	uint32_t len;	/* payload bytes (excluding header and padding) */
	uint16_t kind;	/* enum bg_rec_kind (ipc/record.h); 0 = pad */
	uint16_t flags; /* BG_REC_FIRST | BG_REC_LAST */
	uint64_t tag;	/* task tag; 0 for records about the child itself */
};
_Static_assert(sizeof(struct bg_rec_hdr) == 16, "record header ABI");

#define BG_REC_FIRST 0x1u
#define BG_REC_LAST 0x2u
#define BG_REC_WHOLE (BG_REC_FIRST | BG_REC_LAST)

/* Process-local view of one ring. Zero-initialise, then bg_ring_attach().
 * One view serves as producer (push/send) or consumer (peek/pop/recv); each
 * side keeps its own index locally and only ever reads the peer's index from
 * shared memory, validating it (it never trusts its own index there). */
struct bg_ring {
	struct bg_ring_ctl *ctl;
	uint8_t *data;
	uint64_t capacity;   /* local copy, validated at attach */
	uint32_t max_record; /* largest payload of one record: capacity/4 - 16,
			      * so a record plus a pad before it always fits
			      * in half the ring */
	uint32_t peeked;     /* bytes of the record last peeked, 0 = none */
	uint64_t head; /* producer: next write; consumer: last valid head */
	uint64_t tail; /* consumer: next read; producer: last valid tail */
	bool wipe;     /* consumer: zero each record as it is popped (what a
			  task process maps must not hold earlier tasks') */
};

#define BG_RING_MIN_CAPACITY 4096u
#define BG_RING_MAX_CAPACITY (1ull << 30)

/* Reload the local copies of head and tail from shared memory, after
 * another process (a forked task process of the child) produced or
 * consumed in this side's place. 0, or -EPROTO when they are invalid. */
int bg_ring_resync(struct bg_ring *r);

/* Bytes of shared memory a ring of `capacity` data bytes needs (the data
 * follows the struct bg_ring_ctl). capacity must be a power of two between
 * BG_RING_MIN_CAPACITY and BG_RING_MAX_CAPACITY; 0 when it is not. */
size_t bg_ring_footprint(uint64_t capacity);

/* Initialise a fresh ring in `mem` (producer and consumer zeroed); mem must
 * be 64-byte aligned. -EINVAL on a bad capacity. */
int bg_ring_format(void *mem, uint64_t capacity);

/* Attach a local view to a ring in `mem`; `capacity` is what the attacher
 * expects (it never trusts the value in shared memory). -EINVAL when
 * `capacity` itself is invalid; -EPROTO when the magic or capacity in mem do
 * not match or head/tail are already inconsistent. */
int bg_ring_attach(struct bg_ring *r, void *mem, uint64_t capacity);

/* ---- record level ---- */

/* Append one record. 0; -EAGAIN when there is no room now; -EMSGSIZE when
 * len > r->max_record (use bg_ring_send for messages); -EINVAL on unknown
 * flags or kind BG_REC_PAD (0); -EPROTO when the consumer's tail is invalid
 * (behind the last one seen, ahead of head, or misaligned). Publishes with a
 * release store; does not ring any doorbell (see bg_ring_need_wake_consumer).*/
int bg_ring_push(struct bg_ring *r, uint16_t kind, uint16_t flags, uint64_t tag,
		 const void *payload, uint32_t len);

struct bg_ring_rec {
	uint16_t kind;
	uint16_t flags;
	uint64_t tag;
	const uint8_t *payload; /* points into the ring; valid until pop */
	uint32_t len;
};

/* Look at the oldest record without consuming it, skipping (and freeing)
 * pad records. 0; -EAGAIN when empty; -EPROTO when the producer broke the
 * protocol: head misaligned, moved back, or beyond tail + capacity; a record
 * longer than max_record, crossing head or the end of the ring; unknown
 * flags; a pad record that does not exactly fill the end of the ring.
 * The header is copied before it is validated; the payload may still be
 * changed by a hostile peer, so copy it before trusting its content. */
int bg_ring_peek(struct bg_ring *r, struct bg_ring_rec *out);

/* Consume the record last returned by bg_ring_peek. */
void bg_ring_pop(struct bg_ring *r);

/* Bytes in use as seen by the caller (head - tail of its view): an upper
 * bound for a producer, a lower bound for a consumer. */
uint64_t bg_ring_used(const struct bg_ring *r);

/* ---- doorbell handshake (DESIGN 5) ----
 * Consumer: bg_ring_consumer_sleep_prepare() sets its waiting flag, issues a
 * seq_cst fence and re-checks; it returns true when the ring is still empty
 * (the caller may now block on its eventfd, with a timeout) and false when
 * data arrived meanwhile (flag already cleared). After waking, call
 * bg_ring_consumer_sleep_done().
 * Producer: after pushing, bg_ring_need_wake_consumer() fences and returns
 * whether the consumer's flag is set (then write the eventfd).
 * The same pair exists for a producer waiting for space: `need` is the
 * payload length of the record it wants to push (r->max_record is always
 * safe); the consumer, after popping, wakes it only once that record fits.
 * A flag found set while the peer's index is invalid means "wake/do not
 * sleep": the next push/peek then reports -EPROTO. */
bool bg_ring_consumer_sleep_prepare(struct bg_ring *r);
void bg_ring_consumer_sleep_done(struct bg_ring *r);
bool bg_ring_need_wake_consumer(struct bg_ring *r);
bool bg_ring_producer_sleep_prepare(struct bg_ring *r, uint32_t need);
void bg_ring_producer_sleep_done(struct bg_ring *r);
bool bg_ring_need_wake_producer(struct bg_ring *r);

/* The whole sleeping side of the handshake on doorbell `fd`: prepare, poll up
 * to timeout_ms, done, drain. 1: look at the ring again (data/space may be
 * there, we were woken, or a signal interrupted the wait); 0: timed out;
 * -errno from poll/read. Before sleeping, a consumer must have woken a
 * waiting producer (bg_ring_need_wake_producer after its last pop) and a
 * producer a waiting consumer, or both sleep until the timeout. */
int bg_ring_wait_data(struct bg_ring *r, int fd, int timeout_ms);
int bg_ring_wait_space(struct bg_ring *r, int fd, uint32_t need,
		       int timeout_ms);

/* eventfd helpers. create: eventfd(EFD_CLOEXEC | EFD_NONBLOCK) into *fd.
 * ring: write 1 (EAGAIN on a saturated counter is fine).
 * drain: read and discard (the fd must be non-blocking, as created here).
 * wait: poll for readability up to timeout_ms (-1 = forever);
 * returns 1 readable, 0 timeout, -errno (-EINTR on a signal). */
int bg_doorbell_create(int *fd);
int bg_doorbell_ring(int fd);
int bg_doorbell_drain(int fd);
int bg_doorbell_wait(int fd, int timeout_ms);

/* ---- message level: fragmentation ----
 * A message larger than r->max_record travels as consecutive records
 * FIRST, (none), ..., LAST of the same kind and tag; fragments of one
 * message are never interleaved with other records on the same ring, so a
 * sender must finish one message before starting the next. */
struct bg_msg_out {
	uint16_t kind;
	uint64_t tag;
	const uint8_t *p;
	uint32_t len;
	uint32_t off; /* bytes already pushed; 0 before the first call */
	bool started; /* first fragment pushed */
};

/* Push as many fragments of m as fit. 0 when the whole message is in the
 * ring; -EAGAIN when the ring filled up (call again later, m remembers its
 * position); -EINVAL when kind is 0, off > len or p is NULL with len > 0;
 * -EPROTO as bg_ring_push.
 * A message of at most max_record bytes (including 0) is one record with
 * BG_REC_WHOLE. Never truncates. */
int bg_ring_send(struct bg_ring *r, struct bg_msg_out *m);

struct bg_msg_in {
	uint8_t *buf; /* owned, grows up to max_len */
	size_t len;
	size_t cap;
	size_t max_len; /* messages larger than this are a protocol error */
	uint16_t kind;
	uint64_t tag;
	bool partial; /* inside a fragmented message */
};

/* Consume records into m until one whole message is assembled.
 * 1: a message is in m (kind, tag, buf, len; valid until the next call;
 *    buf is never NULL and is NUL-terminated, the NUL not counted);
 * 0: no complete message yet (ring empty);
 * -EPROTO: bad record, fragment sequence or index; -EMSGSIZE: message larger
 * than max_len; -ENOMEM. After an error the ring must be abandoned. */
int bg_ring_recv(struct bg_ring *r, struct bg_msg_in *m);
/* Free m->buf and reset m to empty; max_len is kept. */
void bg_msg_in_free(struct bg_msg_in *m);

#endif
