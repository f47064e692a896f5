/* supervisor/triggers.c - the poller of triggers.h. Every triggers.poll_ms
 * and for each configured trigger whose last poll is done: one HMGET of
 * its state (paused, claimed fire time, manual requests); then a manual
 * request not yet handled is fired, and a timer's fire time that has come
 * is fired (trigger_fire.c claims it: of all the bygated polling, the
 * first one's script sends it, the others' find it claimed). Fire times
 * are the same on every bygated: multiples of `every` since the epoch, or
 * the minutes a cron expression names, on Redis's clock.
 *
 * Apart from that, each second, the trigger's active runs are pruned:
 * a run whose record has ended (or expired) leaves the set max_running
 * counts. And every PUBLISH_MS, and after a SIGHUP, the definitions are
 * written for `bygate triggers`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/cron.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/promtext.h"
#include "supervisor/trigger_outbox.h"
#include "supervisor/triggers.h"
#include "supervisor/triggers_int.h"
#include "wire/keys.h"
#include "wire/record.h"

#define PUBLISH_MS 30000  /* definitions re-written (a flushed Redis) */
#define PRUNE_MS 1000	  /* active runs looked at */
#define PRUNE_BATCH 200	  /* active runs looked at per prune */
#define CRON_STEPS 100000 /* fire times counted per poll at most */

/* A request of the poller in flight: it names its trigger, looked up
 * again on the answer (a SIGHUP may have removed it meanwhile). */
struct op {
	struct bg_triggers *tr;
	char name[BG_TRIGGER_NAME_MAX + 1];
	char *key;    /* prune: the active set */
	char *member; /* prune: the run looked at */
	size_t member_len;
};

static struct op *op_new(struct bg_triggers *tr, const char *name)
{
	struct op *o = calloc(1, sizeof *o);
	if (o) {
		o->tr = tr;
		snprintf(o->name, sizeof o->name, "%s", name);
	}
	return o;
}

static void op_free(struct op *o)
{
	free(o->key);
	free(o->member);
	free(o);
}

/* ---- the configured set: states and their publication ---- */

/* A state for each configured trigger. One configured again after a
 * reload that had removed it starts afresh (it fires from now on), its
 * counters kept. */
static int sync_states(struct bg_triggers *tr)
{
	size_t n;
	const struct bg_trigger_conf *v = bg_triggers(tr->d->cfg, &n);
	uint64_t gen = ++tr->sync_gen;
	for (size_t i = 0; i < n; i++) {
		struct tstate *st = bg_trigger_state(tr, v[i].name);
		bool fresh = st == NULL || st->sync_gen != gen - 1;
		if (st == NULL) {
			struct tstate *grown =
				realloc(tr->v, (tr->n + 1) * sizeof *grown);
			if (grown == NULL)
				return -ENOMEM;
			tr->v = grown;
			st = &tr->v[tr->n++];
			memset(st, 0, sizeof *st);
			snprintf(st->name, sizeof st->name, "%s", v[i].name);
		}
		if (fresh) {
			st->seen_ms = 0; /* set at its first poll */
			st->next_ms = 0;
		}
		st->sync_gen = gen;
	}
	return 0;
}

static char *definition(const struct bg_trigger_conf *t)
{
	bool timer = t->kind == BG_TRIGGER_TIMER;
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "name", t->name,
			      "kind", timer ? "timer" : "webhook", "agent_type",
			      t->agent_type, "max_running", t->max_running,
			      "session", t->session);
	if (o && timer && t->every_ms)
		json_object_set_new(o, "every_ms", json_integer(t->every_ms));
	if (o && timer && t->cron[0])
		json_object_set_new(o, "cron", json_string(t->cron));
	if (o && timer)
		json_object_set_new(o, "missed",
				    json_string(t->missed == BG_MISSED_SKIP
							? "skip"
							: "run_once"));
	if (o && !timer) {
		char path[BG_TRIGGER_NAME_MAX + 8];
		snprintf(path, sizeof path, "/hooks/%s", t->name);
		json_object_set_new(o, "path", json_string(path));
	}
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static void publish(struct bg_triggers *tr, const struct bg_trigger_conf *t)
{
	struct bg_daemon *d = tr->d;
	char *names = bg_dkey(d, BG_KEY_TRIGGERS, "");
	char *key = bg_dkey(d, BG_KEY_TRIGGER, t->name);
	char *def = definition(t);
	char now[24];
	snprintf(now, sizeof now, "%lld", (long long)bg_redis_now_ms(d));
	if (names && key && def) {
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "SADD", names, t->name,
						     NULL });
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "HSET", key, "def", def,
						     "def_by", d->worker_id,
						     "def_at_ms", now, NULL });
	}
	free(names);
	free(key);
	free(def);
}

/* ---- fire times ----
 *
 * A fire time at most `grace` old is on time: it fires. Older ones were
 * missed (no bygated polled while they came): counted, and the latest of
 * them claimed without a send (missed = skip) or fired (run_once), unless
 * an on-time one fires anyway. */

#define ON_TIME_MAX 64 /* on-time fire times fired per poll at most */

struct due {
	int64_t late_n;	   /* missed fire times (at least: a count stops) */
	int64_t late_last; /* the latest of them, or 0 */
	int64_t on[ON_TIME_MAX];
	int n_on;
};

/* The first fire time strictly after `after`, or -1. */
static int64_t fire_after(const struct bg_trigger_conf *t,
			  const struct bg_cron *c, int64_t after)
{
	if (t->every_ms > 0)
		return (after / t->every_ms + 1) * t->every_ms;
	return bg_cron_next(c, after);
}

/* The latest cron fire time in (base, cut), or 0: looked for in growing
 * windows back from cut, so that it costs a few steps however long ago
 * base is. */
static int64_t cron_latest_before(const struct bg_cron *c, int64_t base,
				  int64_t cut)
{
	static const int64_t windows_s[] = { 60,      3600,	86400,
					     2678400, 31622400, 8 * 31622400 };
	for (size_t i = 0; i < sizeof windows_s / sizeof windows_s[0]; i++) {
		int64_t from = cut - windows_s[i] * 1000;
		if (from < base)
			from = base;
		int64_t f = bg_cron_next(c, from);
		if (f > 0 && f < cut) {
			for (int64_t g;
			     (g = bg_cron_next(c, f)) > 0 && g < cut;)
				f = g;
			return f;
		}
		if (from == base)
			return 0;
	}
	return 0;
}

static struct due due_since(const struct bg_trigger_conf *t,
			    const struct bg_cron *c, int64_t base, int64_t now,
			    int64_t grace)
{
	struct due u = { 0 };
	int64_t cut = now - grace; /* before it: late */
	if (t->every_ms > 0) {
		int64_t e = t->every_ms;
		int64_t last = (cut - 1) - (cut - 1) % e;
		if (cut > 0 && last > base) {
			u.late_last = last;
			u.late_n = last / e - base / e;
		}
	} else if (bg_cron_next(c, base) > 0 && bg_cron_next(c, base) < cut) {
		u.late_last = cron_latest_before(c, base, cut);
		for (int64_t f = base; (f = bg_cron_next(c, f)) > 0 &&
				       f < cut && u.late_n < CRON_STEPS;)
			u.late_n++;
	}
	int64_t from = base > cut - 1 ? base : cut - 1;
	for (int64_t f = fire_after(t, c, from);
	     f > 0 && f <= now && u.n_on < ON_TIME_MAX; f = fire_after(t, c, f))
		u.on[u.n_on++] = f;
	return u;
}

static void on_fired(struct bg_daemon *d, const struct bg_fire_result *r,
		     void *priv)
{
	struct op *o = priv;
	struct tstate *st = bg_trigger_state(d->triggers, o->name);
	if (st)
		st->busy--;
	(void)r; /* counted and logged by trigger_fire.c */
	op_free(o);
}

static void fire(struct bg_triggers *tr, struct tstate *st,
		 const struct bg_fire_request *rq)
{
	struct op *o = op_new(tr, st->name);
	if (o == NULL)
		return;
	st->busy++;
	int rc = bg_trigger_fire(tr->d, rq, on_fired, o);
	if (rc) {
		st->busy--;
		op_free(o);
		if (rc != -ENOTCONN)
			bg_warn("trigger %s: cannot fire: %s", st->name,
				strerror(-rc));
	}
}

/* A timer's fire times come since `claimed` (0: none claimed, as for a
 * new trigger or a flushed Redis: only on-time ones fire). The on-time
 * ones are fired in order, each claimed by its own script: every bygated
 * sends them in the same order, so none is passed over. */
static void timer_due(struct bg_triggers *tr, const struct bg_trigger_conf *t,
		      struct tstate *st, int64_t claimed)
{
	struct bg_daemon *d = tr->d;
	struct bg_cron c = { 0 };
	char why[160];
	if (t->cron[0] && bg_cron_parse(t->cron, &c, why, sizeof why))
		return; /* checked at load */
	int64_t now = bg_redis_now_ms(d);
	int64_t grace = 3 * (int64_t)d->cfg->triggers_poll_ms;
	if (grace < 2000)
		grace = 2000;
	if (st->seen_ms == 0)
		st->seen_ms = now;
	int64_t base = claimed;
	if (base <= 0)
		base = st->seen_ms > now - grace ? st->seen_ms : now - grace;
	struct due u = due_since(t, &c, base, now, grace);
	if (u.late_last && u.n_on == 0) {
		bool skip = t->missed == BG_MISSED_SKIP;
		struct bg_fire_request rq = {
			.t = t,
			.mode = BG_FIRE_TIMER,
			.n = u.late_last,
			.missed = skip ? u.late_n : u.late_n - 1,
			.claim_only = skip,
		};
		bg_info("trigger %s: %lld%s fire times missed, the latest "
			"%lld ms ago: %s",
			t->name, (long long)u.late_n,
			u.late_n >= CRON_STEPS ? " or more" : "",
			(long long)(now - u.late_last),
			skip ? "skipped (missed = skip)"
			     : "the latest fired (missed = run_once)");
		fire(tr, st, &rq);
	}
	for (int i = 0; i < u.n_on; i++) {
		struct bg_fire_request rq = {
			.t = t,
			.mode = BG_FIRE_TIMER,
			.n = u.on[i],
			.missed = i == 0 ? u.late_n : 0,
		};
		fire(tr, st, &rq);
	}
	int64_t next = fire_after(t, &c, now);
	if (next != st->next_ms) {
		char *key = bg_dkey(d, BG_KEY_TRIGGER, t->name);
		char v[24];
		snprintf(v, sizeof v, "%lld", (long long)next);
		if (key)
			bg_rconn_cmdv(d->wr, NULL, NULL, 0,
				      (const char *const[]){ "HSET", key,
							     "next_ms", v,
							     NULL });
		free(key);
		st->next_ms = next;
	}
}

/* A counter of the state HASH: absent is 0; anything but a decimal
 * integer in 0..2^53 (someone wrote the HASH by hand) is corrupt. */
static bool field_count(const redisReply *r, size_t i, int64_t *out)
{
	*out = 0;
	if (i >= r->elements || r->element[i]->type == REDIS_REPLY_NIL)
		return true;
	const redisReply *e = r->element[i];
	if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 16)
		return false;
	for (size_t k = 0; k < e->len; k++)
		if (e->str[k] < '0' || e->str[k] > '9')
			return false;
	*out = strtoll(e->str, NULL, 10);
	return *out <= (1LL << 53);
}

/* Manual requests waiting at most; more say something is wrong. */
#define MANUAL_BACKLOG_MAX 1000

static void on_state(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct op *o = priv;
	struct bg_triggers *tr = o->tr;
	struct tstate *st = bg_trigger_state(tr, o->name);
	const struct bg_trigger_conf *t = bg_trigger_find(tr->d->cfg, o->name);
	if (st)
		st->busy--;
	int64_t claimed, requests, handled;
	if (st == NULL || t == NULL || r == NULL ||
	    r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    tr->d->draining || tr->d->stopping) {
		op_free(o);
		return;
	}
	if (!field_count(r, 0, &claimed) || !field_count(r, 1, &requests) ||
	    !field_count(r, 2, &handled)) {
		bg_trigger_warn(st, "claimed_ms, fire_requests or fire_done of "
				    "its state is not a count: it does not "
				    "fire until they are (docs/triggers.md)");
		op_free(o);
		return;
	}
	if (requests - handled > MANUAL_BACKLOG_MAX) {
		bg_trigger_warn(st,
				"%lld manual fires requested and not handled: "
				"more than %d, none fired",
				(long long)(requests - handled),
				MANUAL_BACKLOG_MAX);
	} else if (requests > handled) {
		struct bg_fire_request rq = { .t = t,
					      .mode = BG_FIRE_MANUAL,
					      .n = handled + 1 };
		fire(tr, st, &rq);
	}
	if (t->kind == BG_TRIGGER_TIMER)
		timer_due(tr, t, st, claimed);
	op_free(o);
}

/* Under Redis Cluster: fires claimed and left unsent by a crash (the
 * outbox fields older than BG_OUTBOX_AGE_MS) are sent again, page after
 * page of HSCAN. */
static int scan_outbox(struct op *o, const char *cursor);

static void on_outbox(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct op *o = priv;
	struct bg_daemon *d = o->tr->d;
	struct tstate *st = bg_trigger_state(o->tr, o->name);
	bool page = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_ARRAY;
	const redisReply *kv = page ? r->element[1] : NULL;
	bool live = st && !d->draining && !d->stopping;
	for (size_t i = 0; kv && live && i + 1 < kv->elements; i += 2) {
		const redisReply *v = kv->element[i + 1];
		if (v->type != REDIS_REPLY_STRING)
			continue;
		json_t *fire = json_loadb(v->str, v->len, 0, NULL);
		const char *at =
			json_string_value(json_object_get(fire, "now"));
		int64_t age = at ? bg_redis_now_ms(d) - strtoll(at, NULL, 10)
				 : -1;
		json_decref(fire);
		if (age >= 0 && age < BG_OUTBOX_AGE_MS)
			continue; /* in flight */
		int rc = bg_trigger_outbox_send(d, v->str, v->len, NULL, NULL);
		if (rc == 0)
			bg_warn("trigger %s: %.*s claimed %lld ms ago and not "
				"sent (a bygated stopped between its steps): "
				"sent now",
				o->name, (int)kv->element[i]->len,
				kv->element[i]->str, (long long)age);
		else
			bg_trigger_warn(st,
					"%.*s of its state is not a fire "
					"(%s): left as it is",
					(int)kv->element[i]->len,
					kv->element[i]->str, strerror(-rc));
	}
	if (page && live && strcmp(r->element[0]->str, "0") != 0 &&
	    scan_outbox(o, r->element[0]->str) == 0)
		return; /* the next page */
	op_free(o);
}

static int scan_outbox(struct op *o, const char *cursor)
{
	char *key = bg_dkey(o->tr->d, BG_KEY_TRIGGER, o->name);
	int rc = key ? bg_rconn_cmdv(o->tr->d->wr, on_outbox, o, 0,
				     (const char *const[]){ "HSCAN", key,
							    cursor, "MATCH",
							    "outbox:*", "COUNT",
							    "1000", NULL })
		     : -ENOMEM;
	free(key);
	return rc;
}

static void look_at_outbox(struct bg_triggers *tr, struct tstate *st)
{
	int64_t now = bg_mono_ms();
	if (!bg_rconn_clustered(tr->d->wr) ||
	    now - st->outbox_at < BG_OUTBOX_AGE_MS)
		return;
	st->outbox_at = now;
	struct op *o = op_new(tr, st->name);
	if (o && scan_outbox(o, "0") != 0)
		op_free(o);
}

static void poll_state(struct bg_triggers *tr, struct tstate *st)
{
	look_at_outbox(tr, st);
	struct op *o = op_new(tr, st->name);
	char *key = bg_dkey(tr->d, BG_KEY_TRIGGER, st->name);
	if (o && key) {
		st->busy++;
		if (bg_rconn_cmdv(
			    tr->d->wr, on_state, o, 0,
			    (const char *const[]){ "HMGET", key, "claimed_ms",
						   "fire_requests", "fire_done",
						   NULL }) == 0)
			o = NULL;
		else
			st->busy--;
	}
	if (o)
		op_free(o);
	free(key);
}

/* ---- active runs ---- */

static void zrem(struct bg_triggers *tr, const struct op *o)
{
	const char *argv[] = { "ZREM", o->key, o->member };
	size_t lens[] = { 4, strlen(o->key), o->member_len };
	bg_rconn_cmd(tr->d->wr, NULL, NULL, 0, 3, argv, lens);
}

/* A run's record: gone (expired), ended or unreadable (it could never
 * end), the run leaves the active set. */
static void on_run(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct op *o = priv;
	bool ended = false;
	if (r && r->type == REDIS_REPLY_NIL) {
		ended = true;
	} else if (r && r->type == REDIS_REPLY_STRING) {
		struct bg_record rec = { 0 };
		ended = bg_record_read(&rec, (struct bg_str){ r->str,
							      r->len }) != 0 ||
			bg_status_is_terminal(rec.status);
		bg_record_free(&rec);
	}
	if (ended)
		zrem(o->tr, o);
	op_free(o);
}

/* A member "<session>\t<execution id>" (trigger_fire.c); anything else
 * is not a run of ours and is removed. */
static void look_at_run(struct bg_triggers *tr, const char *name,
			const char *active, const redisReply *m)
{
	struct op *o = op_new(tr, name);
	if (o == NULL)
		return;
	o->key = strdup(active);
	o->member = malloc(m->len + 1);
	if (o->key == NULL || o->member == NULL) {
		op_free(o);
		return;
	}
	memcpy(o->member, m->str, m->len);
	o->member[m->len] = '\0';
	o->member_len = m->len;
	const char *tab = memchr(m->str, '\t', m->len);
	char *reg = NULL, *field = NULL;
	if (tab && tab > m->str && !memchr(m->str, '\0', m->len)) {
		o->member[tab - m->str] = '\0';
		reg = bg_dkey(tr->d, BG_KEY_SESSION_REGISTRY, o->member);
		o->member[tab - m->str] = '\t';
		size_t n = strlen(tab + 1) + 6;
		field = malloc(n);
		if (field)
			snprintf(field, n, "exec:%s", tab + 1);
		if (reg && field &&
		    bg_rconn_cmdv(tr->d->wr, on_run, o, 0,
				  (const char *const[]){ "HGET", reg, field,
							 NULL }) == 0)
			o = NULL;
	} else {
		zrem(tr, o);
	}
	free(reg);
	free(field);
	if (o)
		op_free(o);
}

static void on_members(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct op *o = priv;
	struct tstate *st = bg_trigger_state(o->tr, o->name);
	size_t n = r && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
	if (st) /* the next batch, or the first again after the last */
		st->prune_from = n < PRUNE_BATCH ? 0
						 : st->prune_from + (int64_t)n;
	for (size_t i = 0; i < n; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			look_at_run(o->tr, o->name, o->key, r->element[i]);
	op_free(o);
}

/* One batch of the active set looked at, the next one a second later:
 * each run is looked at every (runs / PRUNE_BATCH) seconds. */
static void prune(struct bg_triggers *tr, struct tstate *st)
{
	struct op *o = op_new(tr, st->name);
	char from[24], to[24];
	snprintf(from, sizeof from, "%lld", (long long)st->prune_from);
	snprintf(to, sizeof to, "%lld",
		 (long long)(st->prune_from + PRUNE_BATCH - 1));
	if (o)
		o->key = bg_dkey(tr->d, BG_KEY_TRIGGER_ACTIVE, st->name);
	if (o && o->key &&
	    bg_rconn_cmdv(tr->d->wr, on_members, o, 0,
			  (const char *const[]){ "ZRANGE", o->key, from, to,
						 NULL }) == 0)
		return;
	if (o)
		op_free(o);
}

/* ---- the poll ---- */

static void arm(struct bg_triggers *tr)
{
	tr->poll_ms = tr->d->cfg->triggers_poll_ms;
	struct timeval tv = { tr->poll_ms / 1000, (tr->poll_ms % 1000) * 1000 };
	event_add(tr->ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bg_triggers *tr = arg;
	struct bg_daemon *d = tr->d;
	if (tr->poll_ms != d->cfg->triggers_poll_ms)
		arm(tr); /* a SIGHUP changed it */
	if (sync_states(tr) || !bg_rconn_ready(d->wr) || d->draining ||
	    d->stopping || !d->redis_time_known) /* Redis's clock */
		return;
	size_t n;
	const struct bg_trigger_conf *v = bg_triggers(d->cfg, &n);
	int64_t mono = bg_mono_ms();
	bool republish = tr->published != d->cfg ||
			 mono - tr->published_at >= PUBLISH_MS;
	for (size_t i = 0; i < n; i++) {
		struct tstate *st = bg_trigger_state(tr, v[i].name);
		if (st == NULL)
			continue;
		if (republish)
			publish(tr, &v[i]);
		if (st->busy == 0)
			poll_state(tr, st);
		if (mono >= st->prune_at) {
			st->prune_at = mono + PRUNE_MS;
			prune(tr, st);
		}
	}
	if (republish) {
		tr->published = d->cfg;
		tr->published_at = mono;
	}
}

int bg_triggers_start(struct bg_daemon *d)
{
	struct bg_triggers *tr = calloc(1, sizeof *tr);
	if (tr == NULL)
		return -ENOMEM;
	d->triggers = tr;
	tr->d = d;
	tr->ev = event_new(d->base, -1, EV_PERSIST, on_tick, tr);
	if (tr->ev == NULL || sync_states(tr)) /* counters from the start */
		return -ENOMEM;
	arm(tr);
	return 0;
}

void bg_triggers_reload(struct bg_daemon *d)
{
	if (d->triggers)
		d->triggers->published = NULL; /* published at the next tick */
}

void bg_triggers_stop(struct bg_daemon *d)
{
	struct bg_triggers *tr = d->triggers;
	if (tr == NULL)
		return;
	if (tr->ev)
		event_free(tr->ev);
	free(tr->v);
	free(tr);
	d->triggers = NULL;
}

/* ---- /metrics ---- */

int bg_triggers_metrics(struct bg_buf *out, const struct bg_daemon *d)
{
	static const char fam[] = "bygate_trigger_fires_total";
	static const char next[] = "bygate_trigger_next_fire_seconds";
	const struct bg_triggers *tr = d->triggers;
	if (tr == NULL || tr->n == 0)
		return 0;
	if (bg_prom_family(out, fam, "counter",
			   "Fires of each trigger handled by this bygated, by "
			   "outcome (fired: the ASK_AGENT was sent; "
			   "duplicate: another bygated or an earlier request "
			   "had it; skipped_running: max_running runs were "
			   "active; skipped_paused; missed; error; rejected: "
			   "a webhook request refused (401/413/400))."))
		return -ENOMEM;
	for (size_t i = 0; i < tr->n; i++) {
		const struct tstate *st = &tr->v[i];
		const struct bg_trigger_counts *k = &st->counts;
		const struct {
			const char *outcome;
			uint64_t v;
		} rows[] = { { "fired", k->fired },
			     { "duplicate", k->duplicate },
			     { "skipped_running", k->busy },
			     { "skipped_paused", k->paused },
			     { "missed", k->missed },
			     { "error", k->errors },
			     { "rejected", k->rejected } };
		for (size_t j = 0; j < sizeof rows / sizeof rows[0]; j++) {
			struct bg_prom_label l[2] = {
				{ "trigger", st->name },
				{ "outcome", rows[j].outcome },
			};
			if (bg_prom_sample(out, fam, l, 2, (double)rows[j].v))
				return -ENOMEM;
		}
	}
	if (bg_prom_family(out, next, "gauge",
			   "The next fire time of each timer trigger (Unix "
			   "seconds), as this bygated computed it."))
		return -ENOMEM;
	for (size_t i = 0; i < tr->n; i++) {
		struct bg_prom_label l = { "trigger", tr->v[i].name };
		if (tr->v[i].next_ms > 0 &&
		    bg_prom_sample(out, next, &l, 1,
				   (double)tr->v[i].next_ms / 1000.0))
			return -ENOMEM;
	}
	return 0;
}
