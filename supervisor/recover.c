/* supervisor/recover.c - recovery and reclaim (DESIGN 6), all decided from
 * Redis, the authority:
 *  - own pending list: at start (no idle filter: the state-directory lock
 *    proves the previous owner is dead), after reconnects and every
 *    reconcile_interval_ms (IDLE 10 s, so entries just read are left to
 *    their read): an entry with a journaled finish gets that finish re-sent
 *    (pending means not applied); any other entry not in flight here is
 *    fetched with XCLAIM <me> 0 and re-run, or dead-lettered past
 *    max_deliveries;
 *  - peers: a consumer's entries are reclaimed only when its online lease
 *    is absent and they are idle past reclaim_min_idle (XPENDING summary,
 *    GET lease, XPENDING IDLE per consumer, XCLAIM with the same min idle:
 *    one winner). Never JUSTID keep-alives, never DELCONSUMER;
 *  - an entry XCLAIM does not return that is gone from the stream (XDEL,
 *    XTRIM, MAXLEN while it was pending: Redis 7 then drops it from the
 *    pending list, Redis 6 keeps it and returns a nil) has no command left
 *    to run: it is dead-lettered (entry_deleted) and acknowledged, with a
 *    warning, instead of vanishing or being claimed again forever;
 *  - at start, journal and in-flight records whose entries are no longer
 *    pending are dropped (their finish was applied before the crash);
 *  - after an unclean exit the start-up scan collects the entries to re-run
 *    as suspects instead of claiming them (suspects.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/entry_read.h"
#include "supervisor/lease.h"
#include "supervisor/pickup.h"
#include "supervisor/ready.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "wire/keys.h"

#define PAGE "500"

struct pel_scan {
	struct bg_daemon *d;
	int stream;
	int idle_ms;
	char *consumer; /* NULL = me */
};

/* The start-up reconcile ends here: reading starts, unless suspects of an
 * unclean exit are to be re-run first (suspects.c), or a reply was lost
 * with the connection while they were being collected (collected again
 * after the reconnect). */
static void scan_done(struct bg_daemon *d)
{
	if (--d->recover_calls != 0 || d->start_reconciled ||
	    d->suspects_active)
		return;
	if (bg_suspects_retry_scan(d)) {
		bg_warn("start-up reconcile incomplete (Redis connection "
			"lost); done again after the reconnect");
		return;
	}
	bg_info("start-up reconcile done: %llu finishes re-sent, %llu "
		"entries re-run or dead-lettered",
		(unsigned long long)d->n_recovered_finishes_started,
		(unsigned long long)d->n_reclaimed);
	if (bg_suspects_begin(d))
		return;
	d->start_reconciled = true; /* the read starts at the turn's end */
}

struct claim_ctx {
	struct bg_daemon *d;
	int stream;
	int deliveries;
	bool peer;
	int n;
	char **ids; /* the ids claimed, to see which XCLAIM left out */
};

static void free_claim(struct claim_ctx *cc)
{
	for (int i = 0; cc->ids && i < cc->n; i++)
		free(cc->ids[i]);
	free(cc->ids);
	free(cc);
}

/* ---- entries deleted from the stream while pending ---- */

struct gone_ctx {
	struct bg_daemon *d;
	int stream;
	int deliveries;
	char *id;
};

/* XRANGE <id> <id> of an entry XCLAIM did not return: empty when it was
 * deleted. Otherwise it is someone else's now (a peer claimed it first,
 * or it was acknowledged meanwhile): nothing to do. */
static void on_gone_check(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gone_ctx *g = priv;
	struct bg_daemon *d = g->d;
	const char *stream = d->streams[g->stream];
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 0 &&
	    !bg_job_holds(d, stream, g->id)) {
		/* the dead letter's log line says why */
		struct bg_job *t = bg_job_new(d, g->stream, g->id);
		const char *agent =
			g->stream > 0 ? d->cfg->agent_types[g->stream - 1].name
				      : "";
		if (t != NULL) {
			t->id.recovered = true;
			t->id.deliveries = g->deliveries;
			t->id.agent_type = strdup(agent);
			d->n_reclaimed++;
			bg_end_deadletter(d, t, "entry_deleted",
					  "the stream entry was deleted (XDEL, "
					  "XTRIM or MAXLEN) while it was "
					  "pending: its command is gone, "
					  "nothing can run it");
		} else { /* Redis 6 keeps it pending: seen again later */
			bg_warn("entry %s on %s was deleted from the stream "
				"while it was pending: not dead-lettered (out "
				"of memory)",
				g->id, stream);
		}
	}
	free(g->id);
	free(g);
	scan_done(d);
}

static void check_gone(struct bg_daemon *d, int stream, const char *id,
		       int deliveries)
{
	struct gone_ctx *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return;
	*g = (struct gone_ctx){ d, stream, deliveries, strdup(id) };
	if (g->id != NULL &&
	    bg_rconn_cmdv(d->ctl, on_gone_check, g, 0,
			  (const char *const[]){ "XRANGE", d->streams[stream],
						 id, id, NULL }) == 0) {
		d->recover_calls++;
		return;
	}
	free(g->id);
	free(g);
}

/* Was ids[i] returned as an entry by the XCLAIM reply r? */
static bool returned(const redisReply *r, const char *id)
{
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *en = r->element[i];
		if (en->type == REDIS_REPLY_ARRAY && en->elements >= 2 &&
		    en->element[0]->type == REDIS_REPLY_STRING &&
		    strcmp(en->element[0]->str, id) == 0)
			return true;
	}
	return false;
}

static void on_claimed(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct claim_ctx *cc = priv;
	struct bg_daemon *d = cc->d;
	if (r && r->type == REDIS_REPLY_ARRAY) {
		for (int i = 0; i < cc->n; i++)
			if (!returned(r, cc->ids[i]))
				check_gone(d, cc->stream, cc->ids[i],
					   cc->deliveries);
		for (size_t i = 0; i < r->elements; i++) {
			redisReply *en = r->element[i];
			if (en->type != REDIS_REPLY_ARRAY || en->elements < 2 ||
			    en->element[0]->type != REDIS_REPLY_STRING)
				continue;
			const char *id = en->element[0]->str;
			if (bg_job_holds(d, d->streams[cc->stream], id))
				continue;
			struct bg_entry_body b;
			bg_entry_body_take(en->element[1], &b);
			d->n_reclaimed++;
			bg_metrics_reclaimed(d->metrics, cc->peer);
			bg_info("%s entry %s on %s (delivery %d)",
				cc->peer ? "reclaimed dead peer's"
					 : "re-running own",
				id, d->streams[cc->stream], cc->deliveries);
			bg_pickup_accept_recovered(d, cc->stream, id, &b,
						   cc->deliveries, 0);
		}
	}
	free_claim(cc);
	scan_done(d);
}

/* retry_count >= 0: XCLAIM ... RETRYCOUNT <retry_count> (the delivery is
 * not counted), else the claim counts one more delivery. */
static void claim_ids(struct bg_daemon *d, int stream, const char *min_idle,
		      const char **ids, int n, int deliveries, bool peer,
		      int retry_count)
{
	if (n == 0)
		return;
	const char **argv = calloc((size_t)(7 + n), sizeof(char *));
	struct claim_ctx *cc = calloc(1, sizeof(*cc));
	char **copy = calloc((size_t)n, sizeof(char *));
	bool ok = argv && cc && copy;
	for (int i = 0; ok && i < n; i++)
		ok = (copy[i] = strdup(ids[i])) != NULL;
	if (!ok) {
		for (int i = 0; copy && i < n; i++)
			free(copy[i]);
		free(copy);
		free(argv);
		free(cc);
		return;
	}
	int a = 0;
	argv[a++] = "XCLAIM";
	argv[a++] = d->streams[stream];
	argv[a++] = d->group;
	argv[a++] = d->worker_id;
	argv[a++] = min_idle;
	for (int i = 0; i < n; i++)
		argv[a++] = ids[i];
	char count[16];
	if (retry_count >= 0) {
		snprintf(count, sizeof(count), "%d", retry_count);
		argv[a++] = "RETRYCOUNT";
		argv[a++] = count;
	}
	*cc = (struct claim_ctx){ d, stream, deliveries, peer, n, copy };
	if (bg_rconn_cmd(d->ctl, on_claimed, cc, 0, a, argv, NULL) == 0)
		d->recover_calls++;
	else
		free_claim(cc);
	free(argv);
}

static void send_scan(struct bg_daemon *d, int stream, int idle_ms,
		      const char *start, const char *consumer);

/* One page of XPENDING ... IDLE <ms> <start> + 500 <consumer>. */
static void on_pending_page(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pel_scan *sc = priv;
	struct bg_daemon *d = sc->d;
	const char *stream = d->streams[sc->stream];
	bool peer = sc->consumer != NULL;
	/* at start after an unclean exit: suspects, claimed one at a time */
	bool at_start = !peer && !d->start_reconciled;
	bool collect = at_start && bg_suspects_collecting(d);
	if (collect && r == NULL)
		bg_suspects_scan_failed(d);
	if (r && r->type == REDIS_REPLY_ARRAY) {
		char min_idle[32];
		snprintf(min_idle, sizeof(min_idle), "%d",
			 peer ? sc->idle_ms : 0);
		for (size_t i = 0; i < r->elements; i++) {
			redisReply *e = r->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
				continue;
			const char *id = e->element[0]->str;
			int count = (int)e->element[3]->integer;
			int deliveries = count + 1;
			if (bg_job_holds(d, stream, id) ||
			    (!peer && bg_entry_is_deferred(d, sc->stream, id)))
				continue; /* deferred: consume.c fetches it */
			struct bg_buf blob = { 0 };
			if (!peer && d->state &&
			    bg_state_journal_get(d->state, bg_str_c(stream),
						 bg_str_c(id), &blob) == 0 &&
			    bg_finish_blob_valid(
				    (struct bg_str){ blob.p, blob.len })) {
				d->n_recovered_finishes_started++;
				bg_info("re-sending the journaled finish of entry "
					"%s on %s (still pending: not applied)",
					id, stream);
				bg_pickup_replay_finish(
					d, sc->stream, id,
					(struct bg_str){ blob.p, blob.len });
			} else if (collect) {
				bg_suspects_add(d, sc->stream, id, count);
			} else if (at_start && bg_suspects_clean_start(d)) {
				/* left pending by a clean stop: no death to
				 * charge anyone for */
				claim_ids(d, sc->stream, min_idle, &id, 1,
					  count, peer, count);
			} else {
				claim_ids(d, sc->stream, min_idle, &id, 1,
					  deliveries, peer, -1);
			}
			bg_buf_free(&blob);
		}
		if (r->elements == (size_t)atoi(PAGE)) {
			char next[64];
			snprintf(next, sizeof(next), "(%s",
				 r->element[r->elements - 1]->element[0]->str);
			send_scan(d, sc->stream, sc->idle_ms, next,
				  sc->consumer);
		}
	}
	free(sc->consumer);
	free(sc);
	scan_done(d);
}

static void send_scan(struct bg_daemon *d, int stream, int idle_ms,
		      const char *start, const char *consumer)
{
	struct pel_scan *sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return;
	*sc = (struct pel_scan){ d, stream, idle_ms,
				 consumer ? strdup(consumer) : NULL };
	char idle[32];
	snprintf(idle, sizeof(idle), "%d", idle_ms);
	if (bg_rconn_cmdv(d->ctl, on_pending_page, sc, 0,
			  (const char *const[]){
				  "XPENDING", d->streams[stream], d->group,
				  "IDLE", idle, start, "+", PAGE,
				  consumer ? consumer : d->worker_id, NULL }) ==
	    0) {
		d->recover_calls++;
	} else {
		free(sc->consumer);
		free(sc);
	}
}

/* Reconcile this consumer's pending list on every stream. */
void bg_recover_own(struct bg_daemon *d, bool at_start)
{
	if (!bg_lease_held(d) || !d->groups_ready || !bg_rconn_ready(d->ctl))
		return;
	if (d->suspects_active) {
		/* the entries pending here are the suspects: nothing else is
		 * claimed; a claim whose reply was lost is sent again */
		bg_suspects_kick(d);
		return;
	}
	if (!d->start_reconciled) {
		if (d->recover_calls > 0)
			return;	 /* the start-up scan is still under way */
		at_start = true; /* its replies were lost: scan again */
	}
	d->recover_calls++; /* guard until every scan is sent */
	for (int i = 0; i < d->n_streams; i++)
		send_scan(d, i, at_start ? 0 : 10000, "-", NULL);
	scan_done(d);
}

/* ---- peers ---- */

struct peer_ctx {
	struct bg_daemon *d;
	int stream;
	char *consumer;
};

static void on_peer_lease(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct peer_ctx *pc = priv;
	struct bg_daemon *d = pc->d;
	if (r && r->type == REDIS_REPLY_NIL)
		send_scan(d, pc->stream, d->cfg->reclaim_min_idle_ms, "-",
			  pc->consumer);
	free(pc->consumer);
	free(pc);
}

static void on_pending_summary(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct peer_ctx *pc = priv;
	struct bg_daemon *d = pc->d;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
	    r->element[3]->type == REDIS_REPLY_ARRAY) {
		redisReply *cons = r->element[3];
		for (size_t i = 0; i < cons->elements; i++) {
			redisReply *e = cons->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
			    e->element[0]->type != REDIS_REPLY_STRING)
				continue;
			const char *name = e->element[0]->str;
			if (strcmp(name, d->worker_id) == 0 ||
			    strcmp(name, BG_READY_CONSUMER) == 0)
				continue; /* the ready set is nobody's */
			struct bg_buf key = { 0 };
			struct peer_ctx *q = calloc(1, sizeof(*q));
			if (q == NULL ||
			    bg_key_build(&key, d->cfg->key_schema,
					 BG_KEY_WORKER_ONLINE, bg_str_c(name),
					 bg_str_c(""), bg_str_c("")) != 0) {
				free(q);
				bg_buf_free(&key);
				continue;
			}
			*q = (struct peer_ctx){ d, pc->stream, strdup(name) };
			if (bg_rconn_cmdv(d->ctl, on_peer_lease, q, 0,
					  (const char *const[]){ "GET", key.p,
								 NULL }) != 0) {
				free(q->consumer);
				free(q);
			}
			bg_buf_free(&key);
		}
	}
	free(pc);
}

void bg_recover_peers(struct bg_daemon *d)
{
	if (!bg_lease_held(d) || !d->groups_ready || d->draining ||
	    !bg_rconn_ready(d->ctl) || !d->start_reconciled)
		return; /* nothing runs beside the suspects (suspects.c) */
	for (int i = 0; i < d->n_streams; i++) {
		struct peer_ctx *pc = calloc(1, sizeof(*pc));
		if (pc == NULL)
			return;
		*pc = (struct peer_ctx){ d, i, NULL };
		if (bg_rconn_cmdv(d->ctl, on_pending_summary, pc, 0,
				  (const char *const[]){ "XPENDING",
							 d->streams[i],
							 d->group, NULL }) != 0)
			free(pc);
	}
}

/* ---- start-up clean-up of LMDB records whose finish was applied ---- */

struct forget_ctx {
	struct bg_daemon *d;
	char *stream, *id;
};

static void on_forget_check(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct forget_ctx *fc = priv;
	struct bg_daemon *d = fc->d;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 0 &&
	    !bg_job_holds(d, fc->stream, fc->id) && d->state) {
		(void)bg_lmdb_check(d,
				    bg_state_journal_del(d->state,
							 bg_str_c(fc->stream),
							 bg_str_c(fc->id)),
				    "journal del");
		(void)bg_lmdb_check(d,
				    bg_state_exec_del(d->state,
						      bg_str_c(fc->stream),
						      bg_str_c(fc->id)),
				    "exec del");
	}
	free(fc->stream);
	free(fc->id);
	free(fc);
}

static void check_forget(struct bg_daemon *d, struct bg_str stream,
			 struct bg_str id)
{
	struct forget_ctx *fc = calloc(1, sizeof(*fc));
	if (fc == NULL)
		return;
	fc->d = d;
	fc->stream = strndup(stream.p, stream.len);
	fc->id = strndup(id.p, id.len);
	if (fc->stream == NULL || fc->id == NULL ||
	    bg_rconn_cmdv(d->ctl, on_forget_check, fc, 0,
			  (const char *const[]){ "XPENDING", fc->stream,
						 d->group, fc->id, fc->id, "1",
						 NULL }) != 0) {
		free(fc->stream);
		free(fc->id);
		free(fc);
	}
}

static int forget_journal(void *arg, struct bg_str stream, struct bg_str id,
			  struct bg_str finish)
{
	(void)finish;
	check_forget(arg, stream, id);
	return 0;
}

static int forget_exec(void *arg, struct bg_str stream, struct bg_str id,
		       const struct bg_state_exec *e)
{
	(void)e;
	check_forget(arg, stream, id);
	return 0;
}

void bg_recover_forget_applied(struct bg_daemon *d)
{
	if (d->state == NULL)
		return;
	bg_state_journal_each(d->state, forget_journal, d);
	bg_state_exec_each(d->state, forget_exec, d);
}
