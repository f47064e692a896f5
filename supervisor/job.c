/* supervisor/job.c - the jobs this host holds: their states and the one
 * function that changes them, the list of all jobs, the ready queue, and
 * what a job owns (job.h). Calls nothing above it: the suspect list learns
 * of a freed job through the daemon's job_freed hook. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/entry_read.h"
#include "supervisor/gate.h"
#include "wire/event.h"
#include "wire/record.h"
#include "workspace/workspace.h"

static const char *const state_names[BG_JOB__COUNT] = {
	[BG_JOB_PICKUP] = "PICKUP",
	[BG_JOB_PICKUP_LOST] = "PICKUP_LOST",
	[BG_JOB_QUEUED] = "QUEUED",
	[BG_JOB_BACKOFF] = "BACKOFF",
	[BG_JOB_RUNNING] = "RUNNING",
	[BG_JOB_KILLING] = "KILLING",
	[BG_JOB_ENDING] = "ENDING",
	[BG_JOB_FINISH_HELD] = "FINISH_HELD",
	[BG_JOB_FINISH_SENT] = "FINISH_SENT",
	[BG_JOB_FINISH_BACKOFF] = "FINISH_BACKOFF",
	[BG_JOB_FINISH_UNKNOWN] = "FINISH_UNKNOWN",
	[BG_JOB_ABANDONED] = "ABANDONED",
};

const char *bg_job_state_name(enum bg_job_state s)
{
	return (unsigned)s < BG_JOB__COUNT ? state_names[s] : "?";
}

#define B(s) (1u << (s))
/* Where an end can go: the finish builder's first states. */
#define TO_FINISH                                                              \
	(B(BG_JOB_FINISH_HELD) | B(BG_JOB_FINISH_SENT) |                       \
	 B(BG_JOB_FINISH_UNKNOWN) | B(BG_JOB_ABANDONED))

/* allowed[from] = the states a job may move to (docs/architecture.md). */
static const unsigned allowed[BG_JOB__COUNT] = {
	[BG_JOB_PICKUP] = B(BG_JOB_PICKUP_LOST) | B(BG_JOB_QUEUED) |
			  B(BG_JOB_ENDING) | TO_FINISH,
	[BG_JOB_PICKUP_LOST] = B(BG_JOB_PICKUP),
	[BG_JOB_QUEUED] = B(BG_JOB_RUNNING) | B(BG_JOB_ENDING) | TO_FINISH,
	[BG_JOB_BACKOFF] = B(BG_JOB_QUEUED),
	[BG_JOB_RUNNING] = B(BG_JOB_KILLING) | B(BG_JOB_QUEUED) |
			   B(BG_JOB_BACKOFF) | B(BG_JOB_ENDING) | TO_FINISH,
	[BG_JOB_KILLING] = B(BG_JOB_BACKOFF) | B(BG_JOB_ENDING) | TO_FINISH,
	[BG_JOB_ENDING] = TO_FINISH,
	/* ABANDONED from a finish state: its blob found corrupt when sent */
	[BG_JOB_FINISH_HELD] = B(BG_JOB_FINISH_SENT) |
			       B(BG_JOB_FINISH_UNKNOWN) | B(BG_JOB_ABANDONED),
	[BG_JOB_FINISH_SENT] = B(BG_JOB_FINISH_HELD) |
			       B(BG_JOB_FINISH_BACKOFF) |
			       B(BG_JOB_FINISH_UNKNOWN) | B(BG_JOB_ABANDONED),
	[BG_JOB_FINISH_BACKOFF] =
		B(BG_JOB_FINISH_HELD) | B(BG_JOB_FINISH_SENT) |
		B(BG_JOB_FINISH_UNKNOWN) | B(BG_JOB_ABANDONED),
	[BG_JOB_FINISH_UNKNOWN] = B(BG_JOB_FINISH_SENT),
	[BG_JOB_ABANDONED] = 0,
};

bool bg_job_may_move(enum bg_job_state from, enum bg_job_state to)
{
	if ((unsigned)from >= BG_JOB__COUNT || (unsigned)to >= BG_JOB__COUNT)
		return false;
	return from == to || (allowed[from] & B(to)) != 0;
}

bool bg_job_finishing(const struct bg_job *t)
{
	return t->state >= BG_JOB_FINISH_HELD;
}

bool bg_job_in_child(const struct bg_job *t)
{
	return t->state == BG_JOB_RUNNING || t->state == BG_JOB_KILLING;
}

void bg_job_move(struct bg_job *t, enum bg_job_state to)
{
	if (!bg_job_may_move(t->state, to)) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "bug: job of entry %s moved from %s to %s; "
			    "aborting (the entry stays pending for recovery)",
			    t->id.entry_id, bg_job_state_name(t->state),
			    bg_job_state_name(to));
		abort();
	}
	bool was = bg_job_finishing(t);
	if (to == BG_JOB_ABANDONED) /* stays until a restart: runs no more */
		bg_gate_release(t->d, t);
	t->state = to;
	t->d->n_finishing += (int)bg_job_finishing(t) - (int)was;
}

struct bg_log_ids bg_job_log_ids(const struct bg_job *t)
{
	struct bg_log_ids ids = { t->id.session_id,
				  t->id.execution_id[0] ? t->id.execution_id
							: NULL,
				  t->id.message_id[0] ? t->id.message_id : NULL,
				  t->run.slot, t->run.pid };
	return ids;
}

void bg_job_event_ctx(const struct bg_job *t, struct bg_event_ctx *ctx)
{
	ctx->trace_id = bg_str_c(t->id.trace_id);
	ctx->session_id = bg_str_c(t->id.session_id);
	ctx->agent_type = bg_str_c(t->id.agent_type);
	ctx->message_id = bg_str_c(t->id.message_id);
	ctx->parent_message_id = bg_str_c(t->id.parent_message_id);
	ctx->is_sub_agent = t->id.has_source_agent;
}

/* ---- the list of all jobs ---- */

bool bg_job_holds(const struct bg_daemon *d, const char *stream, const char *id)
{
	for (const struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (strcmp(t->id.entry_id, id) == 0 &&
		    strcmp(t->id.stream, stream) == 0)
			return true;
	return false;
}

struct bg_job *bg_job_new(struct bg_daemon *d, int stream_idx, const char *id)
{
	if (bg_job_holds(d, d->streams[stream_idx], id))
		return NULL;
	struct bg_job *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL; /* stays pending in Redis; recovered from the PEL */
	t->d = d;
	t->tag = ++d->next_tag;
	t->state = BG_JOB_PICKUP;
	t->run.slot = -1;
	t->run.lane_slot = -1;
	t->id.stream_idx = stream_idx;
	t->id.stream = strdup(d->streams[stream_idx]);
	t->id.entry_id = strdup(id);
	t->run.picked_ms = bg_mono_ms();
	t->id.deliveries = 1;
	t->next = &d->all;
	t->prev = d->all.prev;
	d->all.prev->next = t;
	d->all.prev = t;
	d->n_tasks++;
	return t;
}

struct bg_job *bg_job_find(struct bg_daemon *d, uint64_t tag)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->tag == tag)
			return t;
	return NULL;
}

void bg_job_release_private(struct bg_daemon *d, struct bg_job *t)
{
	char err[512];
	if (t->run.ws == NULL || t->run.ws->private_dir[0] == '\0')
		return;
	if (bg_ws_remove_private(d->ws_cache, d->cfg->workspace_dir, t->run.ws,
				 err, sizeof(err)) != 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "cannot remove the task's private directory: %s",
			    err);
	}
	t->run.ws->private_dir[0] = '\0';
}

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

static void release(struct bg_daemon *d, struct bg_job *t)
{
	t->prev->next = t->next;
	t->next->prev = t->prev;
	d->n_tasks--;
	bg_entry_release(d, t);
	bg_gate_release(d, t); /* its fleet places, if any */
	if (bg_job_finishing(t))
		d->n_finishing--;
	free_event(&t->retry_ev);
	free_event(&t->wait_ev);
	free_event(&t->run.deadline_ev);
	free_event(&t->run.kill_ev);
	free(t->run.cancel_reason);
	bg_cmd_free(&t->id.cmd);
	free(t->id.stream);
	free(t->id.entry_id);
	free(t->id.data);
	free(t->id.session_id);
	free(t->id.trace_id);
	free(t->id.agent_type);
	free(t->id.source_agent_type);
	free(t->id.parent_message_id);
	free(t->id.reg_key);
	free(t->id.data_key);
	free(t->end.status);
	free(t->end.error_message);
	free(t->end.duplicate_of);
	bg_buf_free(&t->id.record);
	bg_buf_free(&t->id.finish_rest);
	bg_buf_free(&t->id.route_policy);
	bg_buf_free(&t->id.route_status);
	bg_buf_free(&t->end.content);
	bg_buf_free(&t->end.reply_data);
	bg_buf_free(&t->end.result_metadata);
	bg_buf_free(&t->end.extra_payload);
	bg_buf_free(&t->fin.finish_blob);
	bg_cmdlist_free(&t->run.outbox);
	json_decref(t->run.kv);
	bg_buf_free(&t->run.asked);
	free(t->id.group_results);
	bg_job_release_private(d, t);
	free(t->run.ws);
	free(t);
}

/* The oldest RESUME here waiting for a run of t's execution (admit.c) is
 * examined again now; the others wait for the run it starts to end. */
static void wake_waiter(struct bg_daemon *d, const struct bg_job *t)
{
	if (!t->id.cmd_ok || t->id.session_id == NULL)
		return;
	for (struct bg_job *u = d->all.next; u != &d->all; u = u->next)
		if (u != t && u->id.waits_for_run && u->wait_ev &&
		    u->state == BG_JOB_PICKUP && u->id.session_id &&
		    strcmp(u->id.message_id, t->id.message_id) == 0 &&
		    strcmp(u->id.session_id, t->id.session_id) == 0) {
			evtimer_del(u->wait_ev);
			event_active(u->wait_ev, EV_TIMEOUT, 1);
			return;
		}
}

void bg_job_free(struct bg_daemon *d, struct bg_job *t)
{
	if (d->hooks.job_freed)
		d->hooks.job_freed(d, t);
	wake_waiter(d, t);
	release(d, t);
}

void bg_job_free_all(struct bg_daemon *d)
{
	while (d->all.next != &d->all && d->all.next != NULL)
		release(d, d->all.next);
	d->q_head = d->q_tail = NULL;
	d->n_queued = 0;
}

/* ---- the ready queue ---- */

void bg_job_enqueue(struct bg_daemon *d, struct bg_job *t)
{
	bg_job_move(t, BG_JOB_QUEUED);
	t->run.queued_ms = bg_mono_ms();
	t->qnext = NULL;
	if (d->q_tail)
		d->q_tail->qnext = t;
	else
		d->q_head = t;
	d->q_tail = t;
	d->n_queued++;
}

void bg_job_enqueue_front(struct bg_daemon *d, struct bg_job *t)
{
	bg_job_move(t, BG_JOB_QUEUED);
	t->run.queued_ms = bg_mono_ms();
	t->run.resumes = true; /* interrupted: its work had started */
	t->qnext = d->q_head;
	d->q_head = t;
	if (d->q_tail == NULL)
		d->q_tail = t;
	d->n_queued++;
}

void bg_job_dequeue(struct bg_daemon *d, struct bg_job *prev, struct bg_job *t)
{
	if (prev)
		prev->qnext = t->qnext;
	else
		d->q_head = t->qnext;
	if (d->q_tail == t)
		d->q_tail = prev;
	t->qnext = NULL;
	d->n_queued--;
}

void bg_job_refused(struct bg_job *t, const char *what, const redisReply *r)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_WARN, &ids, "%s refused (%s); retrying", what,
		    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	bg_job_move(t, BG_JOB_PICKUP_LOST);
}

int bg_job_keep_route(struct bg_job *t, const struct bg_record *rec)
{
	bg_buf_reset(&t->id.route_policy);
	bg_buf_reset(&t->id.route_status);
	if (rec == NULL)
		return 0;
	if (bg_buf_append(&t->id.route_policy, rec->route_policy.p,
			  rec->route_policy.len) != 0 ||
	    bg_buf_append(&t->id.route_status, rec->route_status.p,
			  rec->route_status.len) != 0) {
		bg_buf_reset(&t->id.route_policy);
		bg_buf_reset(&t->id.route_status);
		return -ENOMEM;
	}
	return 0;
}
