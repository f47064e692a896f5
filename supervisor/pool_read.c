/* supervisor/pool_read.c - the supervisor end of a child's up ring: read
 * its records, validate each (a violation kills the child), keep its task
 * set as results come, and report to the task layer through bg_pool_ops. */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <stdio.h>

#include "supervisor/log.h"

static void child_protocol_error(struct bg_slot *sl, const char *what)
{
	bg_error(
		"slot %d: child pid %d broke the IPC protocol (%s); killing it",
		sl->slot, (int)sl->pid, what);
	sl->pool->stats.protocol_kills++;
	sl->broken = true;
	bg_slot_kill(sl, "the child broke the IPC protocol");
}

static void handle_log(struct bg_slot *sl, uint64_t tag, const uint8_t *p,
		       size_t len)
{
	struct bg_str f[2];
	if (bg_rec_unpack(p, len, f, 2)) {
		child_protocol_error(sl, "malformed LOG record");
		return;
	}
	enum bg_log_level lvl = BG_LOG_INFO;
	if (bg_str_eq(f[0], "debug"))
		lvl = BG_LOG_DEBUG;
	else if (bg_str_eq(f[0], "warn"))
		lvl = BG_LOG_WARN;
	else if (bg_str_eq(f[0], "error"))
		lvl = BG_LOG_ERROR;
	bg_log(lvl, "slot %d pid %d task %llu: %.*s", sl->slot, (int)sl->pid,
	       (unsigned long long)tag,
	       (int)(f[1].len > 4000 ? 4000 : f[1].len), f[1].p);
}

/* Task tags[i] ended with its RESULT: the child has room again (idle once
 * its last task is done; recycled then when it is due). */
static void task_done(struct bg_slot *sl, int i)
{
	sl->tags[i] = sl->tags[--sl->n_tags];
	sl->tasks_done++;
	/* Due: no new task (a shared child under load would never empty). */
	if (sl->recycle_after && sl->tasks_done >= sl->recycle_after)
		sl->recycling = true;
	if (sl->n_tags > 0 || sl->state != SLOT_BUSY)
		return; /* a killed child stays SLOT_STOPPING */
	sl->group = -1;
	if (sl->kill_reason) {
		/* Signalled (SIGTERM of a timeout or cancel) but it answered:
		 * it must not linger idle and unusable. */
		bg_slot_kill(sl, sl->kill_reason);
		return;
	}
	sl->state = SLOT_IDLE;
}

/* The spare child's answer (pool_int.h): HELLO, it loaded the type it
 * was given, which is served again, and it is stopped; FATAL, the text is
 * kept for the report of its end (pool_lifecycle.c logs it, once per
 * change), and it is killed. An answer under an older configuration (a
 * reload since its start) counts for nothing. */
static void retry_answer(struct bg_slot *sl)
{
	struct bg_pool *p = sl->pool;
	struct bg_msg_in *in = &sl->in;
	bool current = sl->generation == p->generation;
	struct bg_str f[2];
	if (in->kind == BG_REC_HELLO) {
		sl->state = SLOT_STOPPING;
		p->retry_loaded = current;
		if (current && bg_rec_unpack(in->buf, in->len, f, 2) == 0 &&
		    bg_pool_config_hello(p, f[1].p, f[1].len, true) &&
		    p->ops.on_types_changed)
			p->ops.on_types_changed(p->arg);
		bg_slot_queue(sl, BG_REC_STOP, 0, "", 0);
		return;
	}
	if (bg_rec_unpack(in->buf, in->len, f, 1) == 0)
		snprintf(p->retry_why, sizeof(p->retry_why), "%.*s",
			 (int)f[0].len, f[0].p);
	bg_slot_kill(sl, "the child reported a fatal error");
}

static void handle_message(struct bg_slot *sl)
{
	struct bg_pool *p = sl->pool;
	struct bg_msg_in *in = &sl->in;
	switch (in->kind) {
	case BG_REC_HELLO:
		if (sl->state != SLOT_STARTING) {
			child_protocol_error(sl, "unexpected HELLO");
			return;
		}
		if (bg_slot_is_retry(sl)) {
			retry_answer(sl);
			return;
		}
		sl->state = SLOT_IDLE;
		sl->quick_deaths = 0;
		bg_debug("slot %d: child pid %d ready", sl->slot, (int)sl->pid);
		struct bg_str h[2];
		if (bg_rec_unpack(in->buf, in->len, h, 2) == 0 &&
		    bg_pool_config_hello(p, h[1].p, h[1].len, false) &&
		    p->ops.on_types_changed)
			p->ops.on_types_changed(p->arg);
		p->ops.on_idle(p->arg, sl->slot);
		return;
	case BG_REC_FATAL: {
		struct bg_str f[1];
		if (bg_slot_is_retry(sl)) {
			retry_answer(sl);
			return;
		}
		if (bg_rec_unpack(in->buf, in->len, f, 1) == 0) {
			bg_error("slot %d: child pid %d cannot serve: %.*s",
				 sl->slot, (int)sl->pid, (int)f[0].len, f[0].p);
			snprintf(p->gen_failure, sizeof(p->gen_failure), "%.*s",
				 (int)f[0].len, f[0].p);
			p->gen_failed = sl->generation;
			if (bg_pool_config_fatal(p, f[0].p, f[0].len) &&
			    p->ops.on_types_changed)
				p->ops.on_types_changed(p->arg);
		}
		sl->quick_deaths++;
		bg_slot_kill(sl, "the child reported a fatal error");
		return;
	}
	case BG_REC_LOG:
		handle_log(sl, in->tag, in->buf, in->len);
		return;
	case BG_REC_EVENT:
	case BG_REC_CALL:
	case BG_REC_RESULT: {
		int i = bg_slot_tag_index(sl, in->tag);
		if (i < 0) {
			child_protocol_error(sl, "record for a task it does "
						 "not run");
			return;
		}
		if (in->kind == BG_REC_RESULT)
			task_done(sl, i);
		p->ops.on_message(p->arg, sl->slot, in->kind, in->tag, in->buf,
				  in->len);
		if (in->kind == BG_REC_RESULT && sl->pid > 0 &&
		    sl->kill_reason == NULL && !sl->exited && !sl->recycling &&
		    !p->shutting_down)
			p->ops.on_idle(p->arg, sl->slot);
		return;
	}
	default:
		child_protocol_error(sl, "unknown record kind");
	}
}

/* Read what the child sent. Also after we killed it (for one task's
 * timeout or cancel): the results its other tasks already sent count.
 * Not after it broke the protocol, and not once the pool is stopping. */
void bg_slot_read(struct bg_slot *sl)
{
	if (sl->pid <= 0 || sl->seg.base == NULL || sl->broken ||
	    sl->pool->shutting_down)
		return;
	bg_ring_consumer_sleep_done(&sl->seg.up);
	for (;;) {
		int rc = bg_ring_recv(&sl->seg.up, &sl->in);
		if (bg_ring_need_wake_producer(&sl->seg.up))
			sl->ring_pending = true;
		if (rc == 1) {
			handle_message(sl);
			if (sl->broken || sl->seg.base == NULL)
				return;
			continue;
		}
		if (rc < 0) {
			child_protocol_error(
				sl, rc == -EMSGSIZE ? "message larger than "
						      "max_message_bytes"
						    : "corrupt ring");
			return;
		}
		if (bg_ring_consumer_sleep_prepare(&sl->seg.up))
			break;
	}
	bg_slot_flush(sl);
}
