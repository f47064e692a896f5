/* supervisor/schedule.c - which job runs where and how much to read:
 * the dispatch pass over the ready queue (placement onto children,
 * alone or sharing one, DESIGN 5) and the capacity the read asks for
 * (consume.c). main.c runs the pass at the end of every loop turn and
 * when a child becomes idle. The home of lanes and priorities. */
#include <stdlib.h>

#include "supervisor/attempt.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/gate.h"
#include "supervisor/schedule.h"

bool bg_schedule_stream_shares(const struct bg_daemon *d, int i)
{
	if (i < 1 || i > d->cfg->n_agent_types)
		return false;
	const struct bg_agent_type_conf *t = &d->cfg->agent_types[i - 1];
	return t->handler == BG_HANDLER_EXEC && t->mode != BG_EXEC_PER_TASK &&
	       t->max_inflight > 1;
}

struct bg_capacity bg_schedule_room(const struct bg_daemon *d)
{
	struct bg_capacity c = { 0, 0 };
	int size = bg_pool_size(d->pool);
	int share = bg_config_max_share(d->cfg);
	int prefetch = d->cfg->fetch_count < size ? d->cfg->fetch_count : size;
	if (d->n_finishing >= 4 * size || bg_pool_breaker_open(d->pool) ||
	    bg_pool_alive_count(d->pool) == 0 || d->suspects_active)
		return c; /* suspects run alone: no room for anything else */
	int need = d->n_tasks - d->n_finishing;
	int need_shared = 0;
	if (share > 1) /* only then does the kind matter */
		for (const struct bg_job *t = d->all.next; t != &d->all;
		     t = t->next)
			need_shared +=
				!bg_job_finishing(t) &&
				bg_schedule_stream_shares(d, t->id.stream_idx);
	int need_alone = need - need_shared;
	/* shared tasks spread over children before they fill them */
	c.alone =
		size + prefetch - need_alone - bg_pool_shared_children(d->pool);
	c.shared = size * share + prefetch - need_shared - need_alone * share;
	if (c.alone < 0)
		c.alone = 0;
	if (c.shared < 0 || share == 1)
		c.shared = share == 1 ? c.alone : 0;
	return c;
}

int bg_schedule_capacity(const struct bg_daemon *d)
{
	struct bg_capacity c = bg_schedule_room(d);
	return c.alone > c.shared ? c.alone : c.shared;
}

/* How task t may share a child (bg_pool_pick): tasks of a persistent exec
 * agent type with max_inflight > 1 share up to that many, unless t must
 * run alone; everything else needs a child to itself. */
static void placement(const struct bg_daemon *d, const struct bg_job *t,
		      const struct bg_agent_type_conf *tc, int *group,
		      int *limit)
{
	*group = -1;
	*limit = 1;
	if (tc->handler == BG_HANDLER_EXEC && tc->mode != BG_EXEC_PER_TASK &&
	    tc->max_inflight > 1 && !t->run.isolate) {
		*group = (int)(tc - d->cfg->agent_types);
		*limit = tc->max_inflight;
	}
}

static bool unloadable(const struct bg_daemon *d, int type)
{
	return bg_pool_type_down(d->pool, type, NULL) &&
	       !bg_pool_breaker_open(d->pool);
}

/* Place queued tasks in order. Tasks that need a child to themselves keep
 * their order among themselves; once one of them waits for an idle child,
 * tasks that can share are placed only next to tasks already running, so
 * the next child to empty is kept for it (no starvation either way). */
void bg_schedule_dispatch(struct bg_daemon *d)
{
	struct bg_buf payload = { 0 };
	bool waiting_alone = false;
	struct bg_job *prev = NULL, *next;
	for (struct bg_job *t = d->q_head; t; t = next) {
		next = t->qnext;
		const struct bg_agent_type_conf *tc =
			bg_config_agent_type(d->cfg, t->id.handler_type);
		int slot = -1, group = -1, limit = 1;
		/* A type no child can load (read before that was known, or
		 * sent to the worker stream) waits for one that can. */
		if (tc && !t->run.cancel_requested &&
		    unloadable(d, (int)(tc - d->cfg->agent_types))) {
			prev = t;
			continue;
		}
		if (tc && !t->run.cancel_requested) {
			placement(d, t, tc, &group, &limit);
			bool alone = limit <= 1;
			if (!(alone && waiting_alone))
				slot = bg_pool_pick(d->pool, group, limit,
						    waiting_alone);
			if (slot < 0) {
				waiting_alone = waiting_alone || alone;
				prev = t;
				continue;
			}
		}
		if (tc && !t->run.cancel_requested &&
		    !bg_gate_try_start(d, t)) {
			prev = t; /* a fleet limit: it waits, in its place */
			continue;
		}
		bg_job_dequeue(d, prev, t);
		if (t->run.cancel_requested)
			bg_end_cancelled(d, t);
		else if (tc == NULL)
			bg_end(d, t, BG_END_FAILED, "UNKNOWN_AGENT_TYPE",
			       "no handler is configured for this agent "
			       "type on this worker");
		else
			bg_attempt_start(d, t, slot, limit, group, &payload);
	}
	bg_buf_free(&payload);
}
