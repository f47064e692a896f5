/* supervisor/suspects.c - the collateral of a crash (docs/recovery.md,
 * "Suspects"): after an unclean exit of bygated, the entries that were
 * pending here are re-run one at a time, each alone from its XCLAIM to its
 * applied finish, before anything is read; only an entry that was alone in
 * flight when bygated died is charged that delivery. The list lives in
 * LMDB (meta "suspects") so a death during the re-runs blames the one
 * running then. Redis keeps the counts: every re-run is claimed with
 * XCLAIM ... RETRYCOUNT <n>, n = the count found at start (+1 if charged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/entry_read.h"
#include "supervisor/lease.h"
#include "supervisor/pickup.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"

struct suspect {
	int stream; /* index into d->streams */
	char *id;
	int pending; /* delivery count found by the start-up XPENDING */
	uint32_t alone_crashes;
	bool charged;	  /* its last delivery ended alone in a crash */
	bool listed;	  /* in the list kept from the previous run */
	int listed_order; /* its place there */
	bool was_running; /* the previous run was re-running it */
};

enum cur_state {
	CUR_NONE,     /* nothing under way: the next may start */
	CUR_CHECKING, /* XPENDING of the head in flight */
	CUR_CLAIMING, /* XCLAIM of the head in flight */
	CUR_RUNNING,  /* the head's task is held here */
	CUR_LOST,     /* a reply was lost with the connection: ask again */
};

struct kept {
	char *stream, *id;
	uint32_t alone_crashes;
	bool running;
};

struct bg_suspects {
	bool collecting;   /* the start-up scan collects instead of claiming */
	bool clean;	   /* the previous bygated closed LMDB cleanly */
	bool clean_start;  /* ... and left no suspects: nothing to re-run */
	bool scan_failed;  /* a start-up XPENDING reply was lost */
	struct kept *kept; /* the list found in LMDB */
	int n_kept;
	struct suspect *v; /* candidates; then the list, head = current */
	int n, cap;
	bool active;
	enum cur_state cur;
	int total, done, deadlettered;
	int64_t began_ms;
};

static struct bg_suspects *get(struct bg_daemon *d)
{
	return d->suspects;
}

/* ---- deciding at start ---- */

static int keep_one(void *arg, const struct bg_state_suspect *s)
{
	struct bg_suspects *x = arg;
	struct kept *k = realloc(x->kept, (size_t)(x->n_kept + 1) * sizeof(*k));
	if (k == NULL)
		return -1;
	x->kept = k;
	k[x->n_kept] = (struct kept){ strndup(s->stream.p, s->stream.len),
				      strndup(s->entry_id.p, s->entry_id.len),
				      s->alone_crashes, s->running };
	if (k[x->n_kept].stream == NULL || k[x->n_kept].id == NULL) {
		free(k[x->n_kept].stream);
		free(k[x->n_kept].id);
		return -1;
	}
	x->n_kept++;
	return 0;
}

/* Decided once, on the first start-up scan: suspects are collected when
 * the previous bygated did not close LMDB cleanly (it died: killed, a
 * crash, the OOM killer) or left a suspect list unfinished. Without LMDB
 * (durability "none") there is no memory of who ran alone, so the old
 * rule stays: every re-delivery counts. */
bool bg_suspects_collecting(struct bg_daemon *d)
{
	if (d->suspects)
		return d->suspects->collecting;
	struct bg_suspects *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return false;
	d->suspects = x;
	if (d->state == NULL)
		return false;
	x->clean = bg_state_was_closed_cleanly(d->state);
	int rc = bg_state_suspects_each(d->state, keep_one, x);
	if (rc)
		bg_warn("LMDB suspect list unreadable (%s): treating the "
			"entries pending here as suspects of an unclean exit",
			bg_state_errmsg(d->state));
	x->collecting = !x->clean || x->n_kept > 0 || rc != 0;
	if (rc)
		x->clean = false;
	x->clean_start = !x->collecting;
	return x->collecting;
}

/* After a clean stop that left entries pending (drain timeout, SIGINT):
 * they are claimed at once, without counting a delivery (no death). */
bool bg_suspects_clean_start(struct bg_daemon *d)
{
	bg_suspects_collecting(d); /* decides on first use */
	return d->suspects && d->suspects->clean_start;
}

void bg_suspects_add(struct bg_daemon *d, int stream_idx, const char *id,
		     int delivery_count)
{
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->collecting || x->active)
		return;
	if (x->n == x->cap) {
		int cap = x->cap ? 2 * x->cap : 16;
		struct suspect *v = realloc(x->v, (size_t)cap * sizeof(*v));
		if (v == NULL)
			return; /* left pending: the periodic reconcile runs it */
		x->v = v;
		x->cap = cap;
	}
	char *copy = strdup(id);
	if (copy == NULL)
		return;
	x->v[x->n++] = (struct suspect){ .stream = stream_idx,
					 .id = copy,
					 .pending = delivery_count };
}

void bg_suspects_scan_failed(struct bg_daemon *d)
{
	if (get(d) && get(d)->collecting)
		get(d)->scan_failed = true;
}

static void drop_head(struct bg_suspects *x)
{
	if (x->n == 0)
		return;
	free(x->v[0].id);
	memmove(x->v, x->v + 1, (size_t)(x->n - 1) * sizeof(*x->v));
	x->n--;
}

static void clear_list(struct bg_suspects *x)
{
	while (x->n)
		drop_head(x);
}

bool bg_suspects_retry_scan(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->scan_failed)
		return false;
	x->scan_failed = false;
	clear_list(x);
	return true;
}

/* Run order: the kept list's order, then new entries in pending-list
 * order, and the one charged for the last death last (most likely the
 * culprit: the others go first). */
static int order_cmp(const void *a, const void *b)
{
	const struct suspect *p = a, *q = b;
	int rp = p->charged ? 2 : p->listed ? 0 : 1;
	int rq = q->charged ? 2 : q->listed ? 0 : 1;
	if (rp != rq)
		return rp - rq;
	return p->listed_order - q->listed_order;
}

/* Write the list to LMDB (committed at the end of this loop turn, before
 * any command of this turn reaches Redis); the head is marked running
 * while it is re-run. */
static void persist(struct bg_daemon *d, bool head_running)
{
	struct bg_suspects *x = get(d);
	if (d->state == NULL)
		return;
	struct bg_state_suspect *v =
		calloc((size_t)(x->n ? x->n : 1), sizeof(*v));
	if (v == NULL)
		return;
	for (int i = 0; i < x->n; i++)
		v[i] = (struct bg_state_suspect){
			.stream = bg_str_c(d->streams[x->v[i].stream]),
			.entry_id = bg_str_c(x->v[i].id),
			.alone_crashes = x->v[i].alone_crashes,
			.running = i == 0 && head_running,
		};
	if (bg_state_suspects_put(d->state, v, (size_t)x->n) != 0)
		bg_warn("cannot record the suspect list in LMDB: %s",
			bg_state_errmsg(d->state));
	free(v);
}

static void free_kept(struct bg_suspects *x)
{
	for (int i = 0; i < x->n_kept; i++) {
		free(x->kept[i].stream);
		free(x->kept[i].id);
	}
	free(x->kept);
	x->kept = NULL;
	x->n_kept = 0;
}

/* Mark each candidate from the kept list and decide who is charged:
 * after a clean stop nobody; when a list was kept, the one it was
 * re-running; else the only entry pending, if there is exactly one. */
static void classify(struct bg_daemon *d, struct bg_suspects *x)
{
	for (int i = 0; i < x->n; i++) {
		struct suspect *s = &x->v[i];
		s->listed_order = x->n_kept + i;
		for (int k = 0; k < x->n_kept; k++)
			if (strcmp(x->kept[k].id, s->id) == 0 &&
			    strcmp(x->kept[k].stream, d->streams[s->stream]) ==
				    0) {
				s->listed = true;
				s->listed_order = k;
				s->alone_crashes = x->kept[k].alone_crashes;
				s->was_running = x->kept[k].running;
			}
		if (x->clean)
			s->charged = false;
		else if (x->n_kept > 0)
			s->charged = s->was_running;
		else
			s->charged = x->n == 1;
		if (s->charged)
			s->alone_crashes++;
	}
	if (x->n > 1)
		qsort(x->v, (size_t)x->n, sizeof(*x->v), order_cmp);
}

/* At the end of the start-up scan. True when suspects are to be re-run:
 * reads wait until they are done (d->start_reconciled stays false). */
bool bg_suspects_begin(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->collecting || x->active)
		return false;
	x->collecting = false;
	classify(d, x);
	bool had_list = x->n_kept > 0;
	free_kept(x);
	if (x->n == 0) {
		if (had_list)
			persist(d, false); /* removes the list */
		return false;
	}
	x->active = true;
	d->suspects_active = true;
	x->cur = CUR_NONE;
	x->total = x->n;
	x->began_ms = bg_mono_ms();
	persist(d, false);
	const struct suspect *last = &x->v[x->n - 1];
	char charged[256] = "";
	if (last->charged)
		snprintf(charged, sizeof(charged),
			 "; entry %s on %s was alone in flight when it died "
			 "(%u time%s): that delivery counts against "
			 "max_deliveries",
			 last->id, d->streams[last->stream],
			 last->alone_crashes,
			 last->alone_crashes == 1 ? "" : "s");
	bg_info("%s: %d entr%s pending here; re-running them one at a time "
		"before reading anything (suspects)%s",
		x->clean ? "previous bygated stopped while re-running suspects"
			 : "unclean exit of the previous bygated",
		x->n, x->n == 1 ? "y was" : "ies were", charged);
	/* The worker is up: online lease and heartbeats (a long re-run must
	 * not let the lease lapse), and systemd's start is over. */
	bg_notify_status(d, "READY=1\n");
	bg_lease_reader_ready(d);
	bg_suspects_kick(d);
	return true;
}

/* ---- one at a time ---- */

static void finish_phase(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	x->active = false;
	d->suspects_active = false;
	persist(d, false); /* the list is empty: removed */
	bg_info("suspects done: %d entr%s re-run one at a time in %lld ms "
		"(%d dead-lettered); reading resumes",
		x->total, x->total == 1 ? "y" : "ies",
		(long long)(bg_mono_ms() - x->began_ms), x->deadlettered);
	d->start_reconciled = true; /* the read starts at the turn's end */
}

/* The head is finished with (done, gone or not ours): the next may go. */
static void head_done(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	drop_head(x);
	x->done++;
	x->cur = CUR_NONE;
	persist(d, false);
}

static int target_count(const struct suspect *s)
{
	return s->pending + (s->charged ? 1 : 0);
}

static void on_claimed(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->active || x->cur != CUR_CLAIMING || x->n == 0)
		return;
	if (r == NULL) {
		x->cur = CUR_LOST; /* sent again when ctl is back */
		return;
	}
	struct suspect *s = &x->v[0];
	redisReply *en = r->type == REDIS_REPLY_ARRAY && r->elements == 1
				 ? r->element[0]
				 : NULL;
	if (en == NULL || en->type != REDIS_REPLY_ARRAY || en->elements < 2) {
		bg_info("suspect entry %s on %s is no longer pending%s%s: "
			"skipped",
			s->id, d->streams[s->stream],
			r->type == REDIS_REPLY_ERROR ? ": " : "",
			r->type == REDIS_REPLY_ERROR ? r->str : "");
		head_done(d);
		bg_suspects_kick(d);
		return;
	}
	char *id = strdup(s->id);
	int alone_crashes = (int)s->alone_crashes;
	int stream = s->stream;
	if (id == NULL) {
		x->cur = CUR_LOST; /* out of memory: asked again later */
		return;
	}
	x->cur = CUR_RUNNING;
	struct bg_entry_body b;
	bg_entry_body_take(en->element[1], &b);
	d->n_reclaimed++;
	bg_metrics_reclaimed(d->metrics, false);
	/* May end (and free) the job at once: bg_suspects_job_freed. */
	bg_pickup_accept_recovered(d, stream, id, &b, target_count(s),
				   alone_crashes);
	if (x->cur == CUR_RUNNING && x->n > 0 && strcmp(x->v[0].id, id) == 0 &&
	    !bg_job_holds(d, d->streams[x->v[0].stream], x->v[0].id)) {
		head_done(d); /* no task could be made: left to the reconcile */
		bg_suspects_kick(d);
	}
	free(id);
}

static void send_claim(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	struct suspect *s = &x->v[0];
	char count[16];
	snprintf(count, sizeof(count), "%d", target_count(s));
	x->cur = CUR_CLAIMING;
	if (bg_rconn_cmdv(
		    d->ctl, on_claimed, d, 0,
		    (const char *const[]){ "XCLAIM", d->streams[s->stream],
					   d->group, d->worker_id, "0", s->id,
					   "RETRYCOUNT", count, NULL }) != 0)
		x->cur = CUR_LOST;
}

/* The head's pending entry: still ours? (A peer may have reclaimed it
 * while our lease had lapsed; it is then the peer's to run.) */
static void on_checked(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->active || x->cur != CUR_CHECKING || x->n == 0)
		return;
	if (r == NULL) {
		x->cur = CUR_LOST;
		return;
	}
	struct suspect *s = &x->v[0];
	redisReply *e = r->type == REDIS_REPLY_ARRAY && r->elements == 1
				? r->element[0]
				: NULL;
	bool ours = e && e->type == REDIS_REPLY_ARRAY && e->elements >= 4 &&
		    e->element[1]->type == REDIS_REPLY_STRING &&
		    strcmp(e->element[1]->str, d->worker_id) == 0;
	if (!ours) {
		bg_info("suspect entry %s on %s is no longer pending here "
			"(finished, or taken by a peer): skipped",
			s->id, d->streams[s->stream]);
		head_done(d);
		bg_suspects_kick(d);
		return;
	}
	bg_info("suspect %d of %d: re-running entry %s on %s alone (delivery "
		"%d, %s)",
		x->done + 1, x->total, s->id, d->streams[s->stream],
		target_count(s),
		s->charged ? "charged: it was alone in flight when bygated died"
			   : "not charged: it was not alone in flight");
	send_claim(d);
}

static void send_check(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	struct suspect *s = &x->v[0];
	persist(d, true); /* on disk before the claim reaches Redis */
	x->cur = CUR_CHECKING;
	if (bg_rconn_cmdv(d->ctl, on_checked, d, 0,
			  (const char *const[]){
				  "XPENDING", d->streams[s->stream], d->group,
				  s->id, s->id, "1", NULL }) != 0)
		x->cur = CUR_LOST;
}

/* Start the next suspect when nothing at all is held here (journaled
 * finishes re-sent at start included), or end the phase. Called whenever
 * a task is freed or the read would be kicked, and after reconnects. */
void bg_suspects_kick(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->active || d->draining || d->stopping ||
	    !bg_lease_held(d) || !bg_rconn_ready(d->ctl))
		return;
	if (x->cur == CUR_LOST) {
		send_check(
			d); /* the claim count is fixed: asking twice is safe */
		return;
	}
	if (x->cur != CUR_NONE || d->n_tasks > 0)
		return;
	if (x->n == 0) {
		finish_phase(d);
		return;
	}
	send_check(d);
}

/* Task t is being freed (its finish applied, or the entry lost). */
void bg_suspects_job_freed(struct bg_daemon *d, const struct bg_job *t)
{
	struct bg_suspects *x = get(d);
	if (x == NULL || !x->active || x->cur != CUR_RUNNING || x->n == 0 ||
	    strcmp(t->id.entry_id, x->v[0].id) != 0 ||
	    strcmp(t->id.stream, d->streams[x->v[0].stream]) != 0)
		return;
	if (t->end.deadletter)
		x->deadlettered++;
	head_done(d);
}

void bg_suspects_free(struct bg_daemon *d)
{
	struct bg_suspects *x = get(d);
	if (x == NULL)
		return;
	clear_list(x);
	free(x->v);
	free_kept(x);
	free(x);
	d->suspects = NULL;
	d->suspects_active = false;
}
