/* supervisor/pool_slot.c - one slot's plumbing: kill its child, release
 * its segment and doorbells, and the down ring (messages queued for the
 * child, pushed as they fit, doorbells rung once per loop turn). */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "supervisor/log.h"

void bg_slot_kill(struct bg_slot *sl, const char *reason)
{
	if (sl->pid <= 0)
		return;
	if (sl->kill_reason == NULL)
		sl->kill_reason = reason;
	sl->state = SLOT_STOPPING;
	/* The child leads its own process group: its helpers die too. */
	if (kill(-sl->pid, SIGKILL) == -1)
		kill(sl->pid, SIGKILL);
}

void bg_slot_release(struct bg_slot *sl)
{
	if (sl->ev_wake) {
		event_free(sl->ev_wake);
		sl->ev_wake = NULL;
	}
	if (sl->wake_child_fd >= 0)
		close(sl->wake_child_fd);
	if (sl->wake_sup_fd >= 0)
		close(sl->wake_sup_fd);
	sl->wake_child_fd = sl->wake_sup_fd = -1;
	bg_segment_close(&sl->seg);
	memset(&sl->seg, 0, sizeof(sl->seg));
	sl->seg.fd = -1;
	while (sl->out_head) {
		struct out_msg *m = sl->out_head;
		sl->out_head = m->next;
		free(m);
	}
	sl->out_tail = NULL;
	bg_msg_in_free(&sl->in);
	memset(&sl->in, 0, sizeof(sl->in));
}

/* Push queued outgoing messages into the down ring as far as they fit. */
void bg_slot_flush(struct bg_slot *sl)
{
	if (sl->seg.base == NULL)
		return;
	bg_ring_producer_sleep_done(&sl->seg.down);
	while (sl->out_head) {
		struct out_msg *m = sl->out_head;
		int rc = bg_ring_send(&sl->seg.down, &m->m);
		if (bg_ring_need_wake_consumer(&sl->seg.down))
			sl->ring_pending = true;
		if (rc == -EAGAIN) {
			if (sl->pool->ops.on_ring_stall)
				sl->pool->ops.on_ring_stall(sl->pool->arg);
			/* The child rings us when it frees space. */
			uint32_t left = m->m.len - m->m.off;
			uint32_t need = left < sl->seg.down.max_record
						? left
						: sl->seg.down.max_record;
			if (!bg_ring_producer_sleep_prepare(&sl->seg.down,
							    need))
				continue;
			return;
		}
		if (rc != 0) {
			bg_error("slot %d: cannot send record kind %u to child "
				 "pid %d: %s",
				 sl->slot, m->m.kind, (int)sl->pid,
				 strerror(-rc));
			bg_slot_kill(sl, "message could not be sent");
			return;
		}
		sl->out_head = m->next;
		if (sl->out_head == NULL)
			sl->out_tail = NULL;
		free(m);
	}
}

int bg_slot_queue(struct bg_slot *sl, uint16_t kind, uint64_t tag,
		  const void *p, size_t len)
{
	if (len > (size_t)sl->pool->cfg->max_message_bytes)
		return -EMSGSIZE;
	struct out_msg *m = malloc(sizeof(*m) + len);
	if (m == NULL)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	memcpy(m->data, p, len);
	m->m.kind = kind;
	m->m.tag = tag;
	m->m.p = m->data;
	m->m.len = (uint32_t)len;
	if (sl->out_tail)
		sl->out_tail->next = m;
	else
		sl->out_head = m;
	sl->out_tail = m;
	bg_slot_flush(sl);
	return 0;
}

int bg_slot_tag_index(const struct bg_slot *sl, uint64_t tag)
{
	for (int i = 0; i < sl->n_tags; i++)
		if (sl->tags[i] == tag)
			return i;
	return -1;
}

static void ring(struct bg_slot *sl)
{
	if (sl->ring_pending && sl->wake_child_fd >= 0)
		bg_doorbell_ring(sl->wake_child_fd);
	sl->ring_pending = false;
}

void bg_pool_end_of_turn(struct bg_pool *p)
{
	for (int i = 0; i < p->n; i++)
		ring(&p->c[i]);
	ring(&p->retry);
}
