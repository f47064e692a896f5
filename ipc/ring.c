/* ipc/ring.c - the SPSC byte ring of ipc/ring.h: record push/peek/pop with
 * validation of every index and header the peer writes, the doorbell
 * handshake, the eventfd helpers, and message fragmentation/reassembly. */
#include "ipc/ring.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HDR_SIZE ((uint64_t)sizeof(struct bg_rec_hdr))
#define ALIGN_MASK ((uint64_t)BG_REC_ALIGN - 1)

/* Shared fields are only ever touched through these, so the compiler never
 * re-reads or tears a value the peer may change concurrently. */
static inline uint64_t ld_acq(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void st_rel(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline uint32_t ld_flag(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void st_flag(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Ring bytes one record of `len` payload bytes occupies. */
static inline uint64_t rec_size(uint32_t len)
{
	return HDR_SIZE + (((uint64_t)len + ALIGN_MASK) & ~ALIGN_MASK);
}

static inline uint64_t to_end(const struct bg_ring *r, uint64_t idx)
{
	return r->capacity - (idx & (r->capacity - 1));
}

/* Ring bytes the next push of `len` needs at the current head, including the
 * pad record filling the end of the ring when the record does not fit. */
static inline uint64_t push_bytes(const struct bg_ring *r, uint32_t len)
{
	uint64_t size = rec_size(len);
	uint64_t end = to_end(r, r->head);
	return size <= end ? size : end + size;
}

static inline bool fits(const struct bg_ring *r, uint64_t bytes)
{
	return r->capacity - (r->head - r->tail) >= bytes;
}

size_t bg_ring_footprint(uint64_t capacity)
{
	if (capacity < BG_RING_MIN_CAPACITY ||
	    capacity > BG_RING_MAX_CAPACITY || (capacity & (capacity - 1)))
		return 0;
	return sizeof(struct bg_ring_ctl) + (size_t)capacity;
}

int bg_ring_format(void *mem, uint64_t capacity)
{
	if (!bg_ring_footprint(capacity) ||
	    ((uintptr_t)mem & (BG_CACHE_LINE - 1)))
		return -EINVAL;
	struct bg_ring_ctl *ctl = mem;
	memset(ctl, 0, sizeof(*ctl));
	ctl->capacity = capacity;
	ctl->magic = BG_RING_MAGIC;
	return 0;
}

int bg_ring_attach(struct bg_ring *r, void *mem, uint64_t capacity)
{
	if (!bg_ring_footprint(capacity) ||
	    ((uintptr_t)mem & (BG_CACHE_LINE - 1)))
		return -EINVAL;
	struct bg_ring_ctl *ctl = mem;
	uint64_t head = ld_acq(&ctl->head);
	uint64_t tail = ld_acq(&ctl->tail);
	if (ld_flag(&ctl->magic) != BG_RING_MAGIC ||
	    __atomic_load_n(&ctl->capacity, __ATOMIC_RELAXED) != capacity ||
	    ((head | tail) & ALIGN_MASK) || head - tail > capacity)
		return -EPROTO;
	*r = (struct bg_ring){
		.ctl = ctl,
		.data = (uint8_t *)mem + sizeof(*ctl),
		.capacity = capacity,
		.max_record = (uint32_t)(capacity / 4 - HDR_SIZE),
		.head = head,
		.tail = tail,
	};
	return 0;
}

uint64_t bg_ring_used(const struct bg_ring *r)
{
	return r->head - r->tail;
}

/* ---- producer ---- */

/* Re-read the consumer's tail: it must lie in [last tail seen, head]. */
static int refresh_tail(struct bg_ring *r)
{
	uint64_t t = ld_acq(&r->ctl->tail);
	if ((t & ALIGN_MASK) || t - r->tail > r->head - r->tail)
		return -EPROTO;
	r->tail = t;
	return 0;
}

static void put_hdr(uint8_t *at, uint32_t len, uint16_t kind, uint16_t flags,
		    uint64_t tag)
{
	struct bg_rec_hdr h = {
		.len = len, .kind = kind, .flags = flags, .tag = tag
	};
	memcpy(at, &h, sizeof(h));
}

int bg_ring_push(struct bg_ring *r, uint16_t kind, uint16_t flags, uint64_t tag,
		 const void *payload, uint32_t len)
{
	if (kind == 0 || (flags & ~BG_REC_WHOLE))
		return -EINVAL;
	if (len > r->max_record)
		return -EMSGSIZE;
	uint64_t total = push_bytes(r, len);
	if (!fits(r, total)) {
		int rc = refresh_tail(r);
		if (rc)
			return rc;
		if (!fits(r, total))
			return -EAGAIN;
	}
	uint64_t pos = r->head & (r->capacity - 1);
	if (total != rec_size(len)) {
		put_hdr(r->data + pos,
			(uint32_t)(to_end(r, r->head) - HDR_SIZE), 0, 0, 0);
		pos = 0;
	}
	put_hdr(r->data + pos, len, kind, flags, tag);
	if (len)
		memcpy(r->data + pos + HDR_SIZE, payload, len);
	r->head += total;
	st_rel(&r->ctl->head, r->head);
	return 0;
}

/* ---- consumer ---- */

/* Re-read the producer's head once everything seen is consumed: aligned
 * and in [tail, tail + capacity]. */
static int refresh_head(struct bg_ring *r)
{
	uint64_t h = ld_acq(&r->ctl->head);
	if ((h & ALIGN_MASK) || h - r->tail > r->capacity)
		return -EPROTO;
	r->head = h;
	return 0;
}

/* Consume a pad record at tail: it must fill the ring's end exactly. */
static int skip_pad(struct bg_ring *r, const struct bg_rec_hdr *h)
{
	uint64_t end = to_end(r, r->tail);
	if (h->flags || h->tag || h->len != end - HDR_SIZE ||
	    r->head - r->tail < end)
		return -EPROTO;
	r->tail += end;
	st_rel(&r->ctl->tail, r->tail);
	return 0;
}

int bg_ring_peek(struct bg_ring *r, struct bg_ring_rec *out)
{
	for (;;) {
		if (r->head == r->tail) {
			int rc = refresh_head(r);
			if (rc)
				return rc;
			if (r->head == r->tail)
				return -EAGAIN;
		}
		struct bg_rec_hdr h;
		const uint8_t *at = r->data + (r->tail & (r->capacity - 1));
		memcpy(&h, at, sizeof(h));
		if (h.kind == 0) {
			int rc = skip_pad(r, &h);
			if (rc)
				return rc;
			continue;
		}
		if (h.len > r->max_record || (h.flags & ~BG_REC_WHOLE))
			return -EPROTO;
		uint64_t size = rec_size(h.len);
		if (size > to_end(r, r->tail) || size > r->head - r->tail)
			return -EPROTO;
		*out = (struct bg_ring_rec){ .kind = h.kind,
					     .flags = h.flags,
					     .tag = h.tag,
					     .payload = at + HDR_SIZE,
					     .len = h.len };
		r->peeked = (uint32_t)size;
		return 0;
	}
}

void bg_ring_pop(struct bg_ring *r)
{
	if (!r->peeked)
		return;
	if (r->wipe) /* before the producer may reuse the bytes */
		memset(r->data + (r->tail & (r->capacity - 1)), 0, r->peeked);
	r->tail += r->peeked;
	r->peeked = 0;
	st_rel(&r->ctl->tail, r->tail);
}

int bg_ring_resync(struct bg_ring *r)
{
	uint64_t h = ld_acq(&r->ctl->head), t = ld_acq(&r->ctl->tail);
	if ((h & ALIGN_MASK) || (t & ALIGN_MASK) || h - t > r->capacity)
		return -EPROTO;
	r->head = h;
	r->tail = t;
	r->peeked = 0;
	return 0;
}

/* ---- doorbell handshake ----
 * Dekker pattern: each side stores (index or flag), issues a seq_cst fence,
 * then loads the other's. At least one of the two sees the other's store,
 * so a sleeper is either woken or notices the new data itself. */

bool bg_ring_consumer_sleep_prepare(struct bg_ring *r)
{
	if (r->head != r->tail)
		return false;
	st_flag(&r->ctl->consumer_waiting, 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->ctl->head, __ATOMIC_RELAXED) != r->tail) {
		st_flag(&r->ctl->consumer_waiting, 0);
		return false;
	}
	return true;
}

void bg_ring_consumer_sleep_done(struct bg_ring *r)
{
	st_flag(&r->ctl->consumer_waiting, 0);
}

bool bg_ring_need_wake_consumer(struct bg_ring *r)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ld_flag(&r->ctl->consumer_waiting) != 0;
}

/* The flag holds the ring bytes the producer waits for (never 0). */
bool bg_ring_producer_sleep_prepare(struct bg_ring *r, uint32_t need)
{
	if (need > r->max_record)
		need = r->max_record;
	uint64_t bytes = push_bytes(r, need);
	if (fits(r, bytes))
		return false;
	st_flag(&r->ctl->producer_waiting, (uint32_t)bytes);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint64_t used =
		r->head - __atomic_load_n(&r->ctl->tail, __ATOMIC_RELAXED);
	if (used > r->capacity || r->capacity - used >= bytes) {
		st_flag(&r->ctl->producer_waiting, 0);
		return false;
	}
	return true;
}

void bg_ring_producer_sleep_done(struct bg_ring *r)
{
	st_flag(&r->ctl->producer_waiting, 0);
}

bool bg_ring_need_wake_producer(struct bg_ring *r)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint64_t want = ld_flag(&r->ctl->producer_waiting);
	if (!want)
		return false;
	uint64_t used =
		__atomic_load_n(&r->ctl->head, __ATOMIC_RELAXED) - r->tail;
	if (used > r->capacity)
		return true;
	if (want > r->capacity)
		want = r->capacity;
	return r->capacity - used >= want;
}

/* ---- eventfd doorbells ---- */

int bg_doorbell_create(int *fd)
{
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e == -1)
		return -errno;
	*fd = e;
	return 0;
}

int bg_doorbell_ring(int fd)
{
	uint64_t one = 1;
	for (;;) {
		ssize_t n = write(fd, &one, sizeof(one));
		if (n == (ssize_t)sizeof(one))
			return 0;
		if (n != -1)
			return -EIO;
		if (errno == EAGAIN)
			return 0; /* counter saturated: already rung */
		if (errno != EINTR)
			return -errno;
	}
}

int bg_doorbell_drain(int fd)
{
	uint64_t v;
	for (;;) {
		ssize_t n = read(fd, &v, sizeof(v));
		if (n == (ssize_t)sizeof(v))
			return 0;
		if (n != -1)
			return -EIO;
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int bg_doorbell_wait(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);
	if (n == -1)
		return -errno;
	if (n == 0)
		return 0;
	if (p.revents & POLLNVAL)
		return -EBADF;
	if (!(p.revents & POLLIN))
		return -EIO;
	return 1;
}

/* Sleep on fd between a sleep_prepare that returned true and its done. */
static int doorbell_sleep(int fd, int timeout_ms)
{
	int rc = bg_doorbell_wait(fd, timeout_ms);
	if (rc == -EINTR)
		return 1;
	if (rc == 1) {
		int d = bg_doorbell_drain(fd);
		if (d)
			return d;
	}
	return rc;
}

int bg_ring_wait_data(struct bg_ring *r, int fd, int timeout_ms)
{
	if (!bg_ring_consumer_sleep_prepare(r))
		return 1;
	int rc = doorbell_sleep(fd, timeout_ms);
	bg_ring_consumer_sleep_done(r);
	return rc;
}

int bg_ring_wait_space(struct bg_ring *r, int fd, uint32_t need, int timeout_ms)
{
	if (!bg_ring_producer_sleep_prepare(r, need))
		return 1;
	int rc = doorbell_sleep(fd, timeout_ms);
	bg_ring_producer_sleep_done(r);
	return rc;
}

/* ---- messages ---- */

int bg_ring_send(struct bg_ring *r, struct bg_msg_out *m)
{
	if (m->kind == 0 || m->off > m->len || (m->p == NULL && m->len))
		return -EINVAL;
	if (m->started && m->off == m->len)
		return 0;
	do {
		uint32_t left = m->len - m->off;
		uint32_t n = left < r->max_record ? left : r->max_record;
		uint16_t flags = (uint16_t)((m->started ? 0 : BG_REC_FIRST) |
					    (n == left ? BG_REC_LAST : 0));
		int rc = bg_ring_push(r, m->kind, flags, m->tag,
				      n ? m->p + m->off : NULL, n);
		if (rc)
			return rc;
		m->off += n;
		m->started = true;
	} while (m->off < m->len);
	return 0;
}

/* Grow m->buf to hold `need` bytes, never beyond max_len + 1 (the NUL). */
static int msg_reserve(struct bg_msg_in *m, size_t need)
{
	if (need <= m->cap)
		return 0;
	size_t limit = m->max_len < SIZE_MAX ? m->max_len + 1 : SIZE_MAX;
	if (need > limit)
		return -EMSGSIZE;
	size_t cap = m->cap ? m->cap : 256;
	while (cap < need)
		cap = cap > limit / 2 ? limit : cap * 2;
	if (cap > limit)
		cap = limit;
	/* Not realloc: a message must not stay behind in freed memory (a
	 * child's task processes inherit its heap). */
	uint8_t *p = malloc(cap);
	if (p == NULL)
		return -ENOMEM;
	if (m->buf) {
		memcpy(p, m->buf, m->len);
		explicit_bzero(m->buf, m->cap);
		free(m->buf);
	}
	m->buf = p;
	m->cap = cap;
	return 0;
}

/* Check that rec continues m's fragment sequence and append its payload. */
static int msg_append(struct bg_msg_in *m, const struct bg_ring_rec *rec)
{
	bool first = rec->flags & BG_REC_FIRST;
	if (first == m->partial)
		return -EPROTO;
	if (!first && (rec->kind != m->kind || rec->tag != m->tag))
		return -EPROTO;
	if (m->len > m->max_len || rec->len > m->max_len - m->len)
		return -EMSGSIZE;
	int rc = msg_reserve(m, m->len + rec->len + 1);
	if (rc)
		return rc;
	if (rec->len)
		memcpy(m->buf + m->len, rec->payload, rec->len);
	m->len += rec->len;
	m->buf[m->len] = 0;
	m->kind = rec->kind;
	m->tag = rec->tag;
	return 0;
}

int bg_ring_recv(struct bg_ring *r, struct bg_msg_in *m)
{
	if (!m->partial)
		m->len = 0;
	for (;;) {
		struct bg_ring_rec rec;
		int rc = bg_ring_peek(r, &rec);
		if (rc)
			return rc == -EAGAIN ? 0 : rc;
		rc = msg_append(m, &rec);
		if (rc)
			return rc;
		bg_ring_pop(r);
		m->partial = !(rec.flags & BG_REC_LAST);
		if (!m->partial)
			return 1;
	}
}

void bg_msg_in_free(struct bg_msg_in *m)
{
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
	m->kind = 0;
	m->tag = 0;
	m->partial = false;
}
