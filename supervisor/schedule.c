/* supervisor/schedule.c - which job runs where and how much to read:
 * the dispatch pass over the ready queue (placement onto children,
 * alone or sharing one, DESIGN 5) and the capacity the read asks for
 * (consume.c). main.c runs the pass at the end of every loop turn and
 * when a child becomes idle. Lanes, priorities and local caps:
 * docs/scheduling.md. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/attempt.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/gate.h"
#include "supervisor/ready.h"
#include "supervisor/schedule.h"

bool bg_schedule_stream_shares(const struct bg_daemon *d, int i)
{
	if (i < 1 || i > d->cfg->n_agent_types)
		return false;
	const struct bg_agent_type_conf *t = &d->cfg->agent_types[i - 1];
	return t->handler == BG_HANDLER_EXEC && t->mode != BG_EXEC_PER_TASK &&
	       t->max_inflight > 1;
}

/* Places left for each kind with `prefetch` more, not clamped at 0;
 * none at all (INT_MIN / 2) while nothing may start. */
static struct bg_capacity room_with(const struct bg_daemon *d, int prefetch)
{
	struct bg_capacity c = { INT_MIN / 2, INT_MIN / 2 };
	int size = bg_pool_size(d->pool);
	int share = bg_config_max_share(d->cfg);
	if (d->n_finishing >= 4 * size || bg_pool_breaker_open(d->pool) ||
	    bg_pool_alive_count(d->pool) == 0 || d->suspects_active)
		return c; /* suspects run alone: no room for anything else */
	int need = d->n_tasks - d->n_finishing + d->pick_reserved;
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
	if (share == 1)
		c.shared = c.alone;
	return c;
}

struct bg_capacity bg_schedule_room(const struct bg_daemon *d)
{
	int size = bg_pool_size(d->pool);
	struct bg_capacity c = room_with(
		d, d->cfg->fetch_count < size ? d->cfg->fetch_count : size);
	if (c.alone < 0)
		c.alone = 0;
	if (c.shared < 0)
		c.shared = 0;
	return c;
}

int bg_schedule_free_places(const struct bg_daemon *d, int stream_idx)
{
	struct bg_capacity c = room_with(d, 0);
	return bg_schedule_stream_shares(d, stream_idx) ? c.shared : c.alone;
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

/* ---- lanes: stride scheduling (docs/scheduling.md) ----
 * Each lane has a pass; the lane with the smallest pass among those with
 * a job that can start goes next and its pass grows by 1 / weight, so
 * while lanes compete each gets starts in proportion to its weight. A
 * lane that had nothing queued starts again from the current virtual
 * time (the pass of the last lane served), so an idle lane's share is
 * used by the others and not banked. */

#define LANES_MAX 4096 /* beyond: idle lanes are forgotten */

struct lane {
	char name[BG_LANE_MAX + 1];
	double pass;
	bool active;   /* has a queued job (this pass) */
	int running;   /* jobs of the lane in children here */
	int queued;    /* jobs of the lane queued here */
	double wait_s; /* summed: send (entry id) to start, Redis time */
	uint64_t started;
};

struct bg_sched {
	struct lane *v;
	int n, cap;
	double vtime;
	uint64_t pass_id;
	int *type_running; /* per agent type, this pass */
	int n_types;
	int primers_running; /* primers in children here, this pass */
	int primers_waiting; /* primers picked up or queued, not started */
	bool primers_parked; /* primers may wait in a ready set (ready.h) */
};

static struct bg_sched *sched_get(struct bg_daemon *d)
{
	if (d->sched == NULL)
		d->sched = calloc(1, sizeof(*d->sched));
	return d->sched;
}

void bg_schedule_free(struct bg_daemon *d)
{
	if (d->sched) {
		free(d->sched->v);
		free(d->sched->type_running);
	}
	free(d->sched);
	d->sched = NULL;
}

/* Forget every lane (the table is full): jobs look theirs up again and
 * local passes and counters restart; the fleet's passes are in Redis. */
static void lanes_compact(struct bg_daemon *d, struct bg_sched *s)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		t->run.lane_slot = -1;
	s->n = 0;
}

static struct lane *lane_of(struct bg_daemon *d, struct bg_sched *s,
			    struct bg_job *t)
{
	if (t->run.lane_slot >= 0 && t->run.lane_slot < s->n &&
	    strcmp(s->v[t->run.lane_slot].name, t->run.lane) == 0)
		return &s->v[t->run.lane_slot];
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, t->run.lane) == 0) {
			t->run.lane_slot = i;
			return &s->v[i];
		}
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 16;
		struct lane *v =
			cap <= LANES_MAX
				? realloc(s->v, (size_t)cap * sizeof(*v))
				: NULL;
		if (v == NULL)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	struct lane *l = &s->v[s->n];
	*l = (struct lane){ .pass = s->vtime };
	snprintf(l->name, sizeof(l->name), "%s", t->run.lane);
	t->run.lane_slot = s->n++;
	return l;
}

/* ---- primers and followers (docs/scheduling.md) ---- */

int bg_schedule_primer_places(const struct bg_daemon *d)
{
	int size = bg_pool_size(d->pool);
	int share = d->cfg->sched_primer_share;
	if (share <= 0 || size < 2)
		return 0;
	int r = (size * share + 50) / 100; /* rounded */
	return r < 1 ? 1 : r > size - 1 ? size - 1 : r;
}

/* A primer on its way to a child: picked up (its record being claimed)
 * or queued. A retry waiting for its back-off does not hold places. */
static bool primer_waiting(const struct bg_job *t)
{
	return t->run.role == BG_ROLE_PRIMER &&
	       (t->state == BG_JOB_PICKUP || t->state == BG_JOB_PICKUP_LOST ||
		t->state == BG_JOB_QUEUED);
}

bool bg_schedule_keeps_primer(const struct bg_daemon *d, const struct bg_job *t)
{
	if (t->run.role != BG_ROLE_PRIMER || d->cfg->sched_primer_share <= 0)
		return false;
	int keep = bg_schedule_primer_places(d);
	int waiting = 0; /* t among them */
	for (const struct bg_job *j = d->all.next; j != &d->all; j = j->next)
		waiting += primer_waiting(j);
	return waiting <= (keep > 1 ? keep : 1);
}

/* Must t leave the idle children alone? A follower must while a primer
 * waits here or in a ready set (as this worker knows), unless after it
 * starts as many children as the primers' places are still idle or
 * running primers. */
static bool follower_held(const struct bg_daemon *d, const struct bg_sched *s,
			  const struct bg_job *t)
{
	if (t->run.role != BG_ROLE_FOLLOWER ||
	    (s->primers_waiting == 0 && !s->primers_parked))
		return false;
	int keep = bg_schedule_primer_places(d);
	if (keep == 0)
		return false;
	int by_primers = s->primers_running < keep ? s->primers_running : keep;
	return bg_pool_idle_count(d->pool) - 1 + by_primers < keep;
}

/* Running jobs per agent type and per lane, and the lanes with queued
 * jobs (a lane becoming active starts from the virtual time). */
static void survey(struct bg_daemon *d, struct bg_sched *s)
{
	if (s->n_types != d->cfg->n_agent_types) {
		free(s->type_running);
		s->n_types = d->cfg->n_agent_types;
		s->type_running = calloc((size_t)s->n_types + 1, sizeof(int));
	}
	if (s->type_running)
		memset(s->type_running, 0,
		       ((size_t)s->n_types + 1) * sizeof(int));
	if (s->n >= LANES_MAX)
		lanes_compact(d, s);
	bool was_active[LANES_MAX];
	int old_n = s->n;
	for (int i = 0; i < s->n; i++) {
		was_active[i] = s->v[i].active;
		s->v[i].active = false;
		s->v[i].running = 0;
		s->v[i].queued = 0;
	}
	s->primers_running = s->primers_waiting = 0;
	s->primers_parked = bg_ready_primers_waiting(d);
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next) {
		if (t->run.role == BG_ROLE_PRIMER) {
			s->primers_running += bg_job_in_child(t);
			s->primers_waiting += primer_waiting(t);
		}
		if (!bg_job_in_child(t) && t->state != BG_JOB_QUEUED)
			continue;
		struct lane *l = lane_of(d, s, t);
		if (bg_job_in_child(t)) {
			const struct bg_agent_type_conf *tc =
				bg_config_agent_type(d->cfg,
						     t->id.handler_type);
			if (tc && s->type_running)
				s->type_running[tc - d->cfg->agent_types]++;
			if (l)
				l->running++;
			continue;
		}
		if (l)
			l->queued++;
		if (l && !l->active) {
			l->active = true;
			int i = (int)(l - s->v);
			if (i < old_n && !was_active[i] && l->pass < s->vtime)
				l->pass = s->vtime; /* new lanes start there */
		}
	}
}

/* A job's priority now: metadata.priority plus one for every
 * sched.priority_aging_ms it has waited; work already started first. */
static double effective_priority(const struct bg_daemon *d,
				 const struct bg_job *t, int64_t now)
{
	if (t->run.resumes)
		return 1e12;
	return t->run.priority + (double)(now - t->run.queued_ms) /
					 d->cfg->sched_priority_aging_ms;
}

/* May t start under the local caps (agent type and lane max_running)? */
static bool under_caps(const struct bg_daemon *d, const struct bg_sched *s,
		       const struct bg_agent_type_conf *tc,
		       const struct lane *l)
{
	int ti = (int)(tc - d->cfg->agent_types);
	if (tc->max_running > 0 && s->type_running &&
	    s->type_running[ti] >= tc->max_running)
		return false;
	const struct bg_lane_conf *lc = bg_lane_conf(d->cfg, l->name);
	return lc->max_running == 0 || l->running < lc->max_running;
}

struct pick {
	struct bg_job *t, *prev;
	int lane; /* index in the table: lane_of may move it */
	const struct bg_agent_type_conf *tc;
};

/* The next queued job to try: a primer before any other job (under
 * sched.primer_share), then the lane with the smallest pass, in it the
 * highest effective priority, then the queue's order. Jobs to end now
 * (cancelled, unknown agent type) are picked at once. A follower held
 * for the primers' places (follower_held) is left out unless it can
 * share a busy child. */
static bool pick_next(struct bg_daemon *d, struct bg_sched *s, int64_t now,
		      bool alone_blocked, struct pick *out)
{
	struct pick best = { .lane = -1 };
	double best_prio = 0;
	bool best_primer = false;
	bool primers_first = d->cfg->sched_primer_share > 0;
	struct bg_job *prev = NULL;
	for (struct bg_job *t = d->q_head; t; prev = t, t = t->qnext) {
		const struct bg_agent_type_conf *tc =
			bg_config_agent_type(d->cfg, t->id.handler_type);
		if (t->run.cancel_requested || tc == NULL) {
			*out = (struct pick){ t, prev, -1, tc };
			return true;
		}
		if (t->run.skip_pass == s->pass_id ||
		    unloadable(d, (int)(tc - d->cfg->agent_types)))
			continue;
		int group, limit;
		placement(d, t, tc, &group, &limit);
		if ((alone_blocked || follower_held(d, s, t)) && limit <= 1)
			continue;
		struct lane *l = lane_of(d, s, t);
		if (l == NULL || !under_caps(d, s, tc, l))
			continue;
		double prio = effective_priority(d, t, now);
		int li = (int)(l - s->v);
		bool primer = primers_first && t->run.role == BG_ROLE_PRIMER;
		if (best.t == NULL || (primer && !best_primer) ||
		    (primer == best_primer &&
		     (l->pass < s->v[best.lane].pass ||
		      (li == best.lane && prio > best_prio)))) {
			best = (struct pick){ t, prev, li, tc };
			best_prio = prio;
			best_primer = primer;
		}
	}
	*out = best;
	return best.t != NULL;
}

/* Start queued jobs while children have room: by lane, then priority
 * (pick_next). Tasks that need a child to themselves wait for an idle
 * one; once one of them waits, tasks that can share are placed only next
 * to tasks already running, so the next child to empty is kept for it
 * (no starvation either way). */
void bg_schedule_dispatch(struct bg_daemon *d)
{
	struct bg_sched *s = sched_get(d);
	if (s == NULL || d->q_head == NULL)
		return;
	struct bg_buf payload = { 0 };
	int64_t now = bg_mono_ms();
	s->pass_id++;
	survey(d, s);
	bool alone_blocked = false;
	struct pick p;
	while (pick_next(d, s, now, alone_blocked, &p)) {
		struct bg_job *t = p.t;
		if (t->run.cancel_requested || p.tc == NULL) {
			bg_job_dequeue(d, p.prev, t);
			if (t->run.cancel_requested)
				bg_end_cancelled(d, t);
			else
				bg_end(d, t, BG_END_FAILED,
				       "UNKNOWN_AGENT_TYPE",
				       "no handler is configured for this "
				       "agent type on this worker");
			continue;
		}
		int group, limit;
		placement(d, t, p.tc, &group, &limit);
		bool held = follower_held(d, s, t);
		int slot = bg_pool_pick(d->pool, group, limit,
					alone_blocked || held);
		if (slot < 0) {
			if (limit <= 1 && !held)
				alone_blocked = true;
			t->run.skip_pass = s->pass_id;
			continue;
		}
		if (!bg_gate_try_start(d, t)) { /* a fleet limit (gate.h) */
			t->run.skip_pass = s->pass_id;
			continue;
		}
		bg_job_dequeue(d, p.prev, t);
		struct lane *l = &s->v[p.lane];
		s->vtime = l->pass;
		l->pass += 1.0 / bg_lane_conf(d->cfg, l->name)->weight;
		l->running++;
		l->started++;
		int64_t sent = (int64_t)strtoull(t->id.entry_id, NULL, 10);
		int64_t waited = bg_redis_now_ms(d) - sent;
		if (waited > 0 && sent > 0)
			l->wait_s += (double)waited / 1000.0;
		if (s->type_running)
			s->type_running[p.tc - d->cfg->agent_types]++;
		if (t->run.role == BG_ROLE_PRIMER) {
			s->primers_running++;
			s->primers_waiting--;
		}
		bg_attempt_start(d, t, slot, limit, group, &payload);
	}
	bg_buf_free(&payload);
}

void bg_schedule_lanes(const struct bg_daemon *d, bg_schedule_lane_fn fn,
		       void *ctx)
{
	const struct bg_sched *s = d->sched;
	for (int i = 0; s && i < s->n; i++)
		fn(ctx, s->v[i].name, s->v[i].running, s->v[i].queued,
		   s->v[i].started, s->v[i].wait_s);
}

bool bg_schedule_type_full(const struct bg_daemon *d, int type)
{
	const struct bg_sched *s = d->sched;
	if (type < 0 || type >= d->cfg->n_agent_types)
		return false;
	int max = d->cfg->agent_types[type].max_running;
	return max > 0 && s && s->type_running && type < s->n_types &&
	       s->type_running[type] >= max;
}

int bg_schedule_capped_lanes(const struct bg_daemon *d, const char **out, int n)
{
	const struct bg_sched *s = d->sched;
	int k = 0;
	for (int i = 0; s && i < s->n && k < n; i++) {
		const struct bg_lane_conf *lc =
			bg_lane_conf(d->cfg, s->v[i].name);
		if (lc->max_running > 0 && s->v[i].running >= lc->max_running)
			out[k++] = s->v[i].name;
	}
	return k;
}
