/* child/channel.c - bygate-child's side of the two rings: sending messages
 * up (waiting for space with the producer handshake), receiving messages
 * down (sleeping with the consumer handshake), the non-blocking poll that
 * lets a running handler see CANCEL and STOP, and the wait for a REPLY.
 * Never spins: every wait blocks on fd 4 with a timeout, after which the
 * parent is checked. Below exec.c: the programs' pipes are served, and a
 * CANCEL reaches an exec task, through c->ops (struct bg_child_ops). */
#include "child/child.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t bg_child_max_message(const struct bg_child_proc *c)
{
	return c->in.max_len;
}

/* Block on our doorbell (fd 4) for at most BG_CHILD_WAIT_MS, then drain it;
 * with `programs`, the exec programs' pipes are served meanwhile. The
 * caller has set its waiting flag; on a timeout the supervisor may be
 * gone, which we detect by our parent changing. */
static void wait_doorbell(struct bg_child_proc *c, bool programs)
{
	int rc = programs && c->progs ? c->ops->wait(c, BG_CHILD_WAIT_MS)
				      : bg_doorbell_wait(BG_CHILD_FD_WAKE_CHILD,
							 BG_CHILD_WAIT_MS);
	if (rc < 0 && rc != -EINTR)
		bg_child_die(c, BG_CHILD_EXIT_SEGMENT,
			     "waiting on fd %d failed: %s",
			     BG_CHILD_FD_WAKE_CHILD, strerror(-rc));
	if (rc == 1)
		bg_doorbell_drain(BG_CHILD_FD_WAKE_CHILD);
	if (getppid() != c->ppid)
		bg_child_die(c, BG_CHILD_EXIT_ORPHAN,
			     "supervisor (pid %ld) is gone", (long)c->ppid);
}

static void wake_supervisor(void)
{
	bg_doorbell_ring(BG_CHILD_FD_WAKE_SUPERVISOR);
}

int bg_child_send_packed(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
			 const void *p, size_t len)
{
	if (len > bg_child_max_message(c) || len > UINT32_MAX)
		return -EMSGSIZE;
	struct bg_ring *up = &c->seg.up;
	struct bg_msg_out m = {
		.kind = kind, .tag = tag, .p = p, .len = (uint32_t)len
	};
	for (;;) {
		int rc = bg_ring_send(up, &m);
		if (rc != -EAGAIN && rc != 0)
			bg_child_die(c, BG_CHILD_EXIT_PROTOCOL, "up ring: %s",
				     strerror(-rc));
		if (bg_ring_need_wake_consumer(up))
			wake_supervisor();
		if (rc == 0)
			return 0;
		uint32_t left = m.len - m.off;
		uint32_t need = left < up->max_record ? left : up->max_record;
		if (bg_ring_producer_sleep_prepare(up, need))
			wait_doorbell(c, false); /* no program I/O: it sends */
		bg_ring_producer_sleep_done(up);
	}
}

int bg_child_send(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
		  const struct bg_str *v, uint32_t n)
{
	bg_buf_reset(&c->out);
	int rc = bg_rec_pack(&c->out, v, n);
	if (rc)
		return rc;
	return bg_child_send_packed(c, kind, tag, c->out.p, c->out.len);
}

/* One whole message from the down ring into c->in, without blocking.
 * 1 when one is there, 0 when not. */
static int recv_ring(struct bg_child_proc *c)
{
	struct bg_ring *down = &c->seg.down;
	int rc = bg_ring_recv(down, &c->in);
	if (bg_ring_need_wake_producer(down))
		wake_supervisor();
	if (rc < 0)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL, "down ring: %s",
			     strerror(-rc));
	return rc;
}

static void msg_from_ring(const struct bg_child_proc *c,
			  struct bg_child_msg *out)
{
	*out = (struct bg_child_msg){ .kind = c->in.kind,
				      .tag = c->in.tag,
				      .p = c->in.buf,
				      .len = c->in.len };
}

void bg_child_sleep(struct bg_child_proc *c)
{
	struct bg_ring *down = &c->seg.down;
	if (bg_ring_consumer_sleep_prepare(down))
		wait_doorbell(c, true);
	else if (c->progs)
		c->ops->wait(c, 0);
	bg_ring_consumer_sleep_done(down);
}

int bg_child_try_recv(struct bg_child_proc *c, struct bg_child_msg *out)
{
	if (recv_ring(c) == 0)
		return 0;
	msg_from_ring(c, out);
	return 1;
}

void bg_child_next(struct bg_child_proc *c, struct bg_child_msg *out)
{
	free(c->held);
	c->held = NULL;
	if (c->queue) {
		c->held = c->queue;
		c->queue = c->held->next;
		if (c->queue == NULL)
			c->queue_tail = NULL;
		*out = c->held->msg;
		return;
	}
	while (bg_child_try_recv(c, out) == 0)
		bg_child_sleep(c);
}

/* A CANCEL for a task still in the queue marks that task. */
static void cancel_queued(struct bg_child_proc *c, uint64_t tag)
{
	for (struct bg_child_queued *q = c->queue; q; q = q->next)
		if (q->msg.kind == BG_REC_TASK && q->msg.tag == tag)
			q->msg.cancelled = true;
}

void bg_child_wipe(struct bg_child_proc *c, const struct bg_child_msg *m)
{
	if (c->held && m->p == c->held->data) {
		explicit_bzero(c->held->data, m->len);
		return;
	}
	/* From the ring: the replies a handler's calls received since may
	 * have moved c->in's buffer (m->p then points at freed memory) or
	 * overwritten it; what is left of any of them is in c->in now. */
	if (c->in.buf && c->in.partial) /* the next message's start */
		explicit_bzero(c->in.buf + c->in.len, c->in.cap - c->in.len);
	else if (c->in.buf)
		explicit_bzero(c->in.buf, c->in.cap);
}

void bg_child_enqueue(struct bg_child_proc *c, const struct bg_child_msg *m)
{
	struct bg_child_queued *q = malloc(sizeof(*q) + m->len);
	if (q == NULL)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "out of memory queueing a message");
	memcpy(q->data, m->p, m->len);
	q->next = NULL;
	q->msg = *m;
	q->msg.p = q->data;
	if (c->queue_tail)
		c->queue_tail->next = q;
	else
		c->queue = q;
	c->queue_tail = q;
}

static void on_cancel(struct bg_child_proc *c, const struct bg_child_msg *m)
{
	struct bg_str f[2];
	if (bg_rec_unpack(m->p, m->len, f, 2))
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "malformed CANCEL record (tag %llu)",
			     (unsigned long long)m->tag);
	if (c->running && c->running->tag == m->tag)
		c->running->cancelled = true;
	else if (!c->ops->cancel(c, m->tag, f[0]))
		cancel_queued(c, m->tag);
}

bool bg_child_absorb(struct bg_child_proc *c, const struct bg_child_msg *m)
{
	if (m->kind == BG_REC_STOP)
		c->stop_requested = true;
	else if (m->kind == BG_REC_CANCEL)
		on_cancel(c, m);
	else
		return false;
	return true;
}

static _Noreturn void unexpected(struct bg_child_proc *c,
				 const struct bg_child_msg *m)
{
	bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
		     "unexpected record kind %u (tag %llu)", m->kind,
		     (unsigned long long)m->tag);
}

void bg_child_poll(struct bg_child_proc *c)
{
	struct bg_child_msg m;
	while (bg_child_try_recv(c, &m)) {
		if (m.kind == BG_REC_REPLY)
			unexpected(c, &m);
		if (!bg_child_absorb(c, &m))
			bg_child_enqueue(c, &m);
	}
}

/* Is m the REPLY to (tag, id)? Dies on a REPLY to anything else. */
static bool is_reply(struct bg_child_proc *c, const struct bg_child_msg *m,
		     uint64_t tag, const char *id, struct bg_str *result)
{
	struct bg_str f[BG_YF__COUNT];
	if (m->kind != BG_REC_REPLY)
		return false;
	if (bg_rec_unpack(m->p, m->len, f, BG_YF__COUNT) || m->tag != tag ||
	    !bg_str_eq(f[BG_YF_ID], id))
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "REPLY for tag %llu does not answer the pending "
			     "call %s of tag %llu",
			     (unsigned long long)m->tag, id,
			     (unsigned long long)tag);
	*result = f[BG_YF_RESULT];
	return true;
}

void bg_child_await_reply(struct bg_child_proc *c, uint64_t tag, const char *id,
			  struct bg_str *result)
{
	struct bg_child_msg m;
	for (;;) {
		while (bg_child_try_recv(c, &m)) {
			if (is_reply(c, &m, tag, id, result))
				return;
			if (bg_child_absorb(c, &m))
				continue;
			if (m.kind != BG_REC_TASK)
				unexpected(c, &m);
			bg_child_enqueue(c, &m);
		}
		bg_child_sleep(c);
	}
}

void bg_child_channel_free(struct bg_child_proc *c)
{
	free(c->held);
	c->held = NULL;
	while (c->queue) {
		struct bg_child_queued *q = c->queue;
		c->queue = q->next;
		free(q);
	}
	c->queue_tail = NULL;
	bg_msg_in_free(&c->in);
	bg_buf_free(&c->out);
}
