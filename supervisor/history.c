/* supervisor/history.c - the fleet metrics collector (history.h, WIRE
 * 9.3): a lock, and one point per interval from its holder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/history.h"
#include "supervisor/log.h"
#include "supervisor/redis.h"
#include "wire/keys.h"

#define HISTORY_KEEP_MS 7200000 /* the reference keeps 2 h of points */

struct bg_history {
	struct event *timer;
	bool holder;
	bool warned;
	uint64_t points;
};

/* KEYS lock, history, known workers, dead letters, then the agent-type
 * streams. ARGV worker id, lock TTL s, now ms, consumer group, the online
 * lease key and the status key of a worker split around its id (prefix,
 * suffix, prefix, suffix), oldest point kept (ms). 1 when a point was
 * added (this process holds the lock), else 0. */
static const char tick_lua[] =
	"local me = ARGV[1]\n"
	"if not redis.call('SET', KEYS[1], me, 'NX', 'EX', ARGV[2]) then\n"
	"  if redis.call('GET', KEYS[1]) ~= me then return 0 end\n"
	"  redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
	"local function n(x) return tonumber(x or '') or 0 end\n"
	"local online, act, que, com, fai, can = 0, 0, 0, 0, 0, 0\n"
	"for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
	"  if redis.call('EXISTS', ARGV[5] .. w .. ARGV[6]) == 1 then\n"
	"    online = online + 1 end\n"
	"  local v = redis.call('HMGET', ARGV[7] .. w .. ARGV[8],\n"
	"    'active_count', 'queued_count', 'completed_count',\n"
	"    'failed_count', 'cancelled_count')\n"
	"  act = act + math.max(n(v[1]), 0); que = que + math.max(n(v[2]), 0)\n"
	"  com = com + n(v[3]); fai = fai + n(v[4]); can = can + n(v[5])\n"
	"end\n"
	"local depth, pend = 0, 0\n"
	"for i = 5, #KEYS do\n"
	"  if redis.call('EXISTS', KEYS[i]) == 1 then\n"
	"    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do\n"
	"      local f = {}\n"
	"      for j = 1, #g, 2 do f[g[j]] = g[j + 1] end\n"
	"      if f['name'] == ARGV[4] then\n"
	"        pend = pend + n(f['pending']); depth = depth + n(f['lag'])\n"
	"      end end end end\n"
	"local dl = 0\n"
	"if redis.call('EXISTS', KEYS[4]) == 1 then\n"
	"  dl = redis.call('XLEN', KEYS[4]) end\n"
	"local ratio = 1000000\n"
	"if com + fai > 0 then ratio = math.floor(com * 1000000 / (com + fai))"
	" end\n"
	"local p = cjson.encode({generated_at = n(ARGV[3]),\n"
	"  workers_online = online, active_executions = act,\n"
	"  queued_executions = que, completed_executions = com,\n"
	"  failed_executions = fai, cancelled_executions = can,\n"
	"  terminal_executions = com + fai + can, queue_depth_total = depth,\n"
	"  consumer_pending_total = pend, max_delivery_count = 0,\n"
	"  alert_count = 0, latency_p95_ms = 0, queue_latency_p95_ms = 0,\n"
	"  total_latency_p95_ms = 0, success_ratio_ppm = ratio,\n"
	"  deadletter_count = dl, freshness_age_ms = 0})\n"
	"redis.call('ZADD', KEYS[2], ARGV[3], p)\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[9])\n"
	"return 1\n";

/* Under Redis Cluster: the lock alone (KEYS[1]; ARGV worker id, TTL s):
 * 1 held by this process, else 0. The point is then gathered by one
 * command per key (each in its slot) and added by this process
 * (gather_*), as the reference's collector does under Cluster. */
static const char lock_lua[] =
	"if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then\n"
	"  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
	"  redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
	"return 1\n";

static const char release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  return redis.call('DEL', KEYS[1]) end\n"
	"return 0\n";

static int lock_ttl(const struct bg_daemon *d)
{
	int t = 3 * d->cfg->history_interval_s;
	return t > 15 ? t : 15;
}

static void on_tick_reply(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	struct bg_history *h = d->history;
	if (h == NULL)
		return;
	if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
		if (!h->warned)
			bg_warn("metrics history: the collector script "
				"failed (%s); tried again every interval",
				r ? bg_reply_error(r) : "connection lost");
		h->warned = true;
		h->holder = false;
		return;
	}
	h->warned = false;
	bool was = h->holder;
	h->holder = r->integer == 1;
	if (h->holder)
		h->points++;
	if (h->holder != was)
		bg_info("metrics history: this worker %s the fleet's "
			"collector lock",
			h->holder ? "holds" : "no longer holds");
}

/* A worker key (kind) split around its id into prefix and suffix. */
static int split_key(const struct bg_daemon *d, enum bg_key_kind kind,
		     char **pre, char **suf)
{
	char *k = bg_dkey(d, kind, "\x01");
	char *at = k ? strchr(k, '\x01') : NULL;
	if (at == NULL) {
		free(k);
		return -ENOMEM;
	}
	*at = '\0';
	*pre = k;
	*suf = strdup(at + 1);
	if (*suf == NULL) {
		free(k);
		return -ENOMEM;
	}
	return 0;
}

/* ---- under Redis Cluster: the point gathered key by key ---- */

struct gather {
	struct bg_daemon *d;
	int64_t ms;
	int waiting; /* replies still to come */
	bool failed; /* a reply lost or refused: no point this time */
	long long online, act, que, com, fai, can, depth, pend, dl;
};

static long long num(const redisReply *r)
{
	if (r == NULL)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
		return strtoll(r->str, NULL, 10);
	return 0;
}

static void gather_add_point(struct gather *g)
{
	struct bg_daemon *d = g->d;
	char *hist = bg_dkey(d, BG_KEY_OBS_HISTORY, "");
	long long ratio = g->com + g->fai > 0
				  ? g->com * 1000000 / (g->com + g->fai)
				  : 1000000;
	json_t *p = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, "
		"s:i, s:i, s:i, s:I, s:I, s:i}",
		"generated_at", (json_int_t)g->ms, "workers_online",
		(json_int_t)g->online, "active_executions", (json_int_t)g->act,
		"queued_executions", (json_int_t)g->que, "completed_executions",
		(json_int_t)g->com, "failed_executions", (json_int_t)g->fai,
		"cancelled_executions", (json_int_t)g->can,
		"terminal_executions", (json_int_t)(g->com + g->fai + g->can),
		"queue_depth_total", (json_int_t)g->depth,
		"consumer_pending_total", (json_int_t)g->pend,
		"max_delivery_count", 0, "alert_count", 0, "latency_p95_ms", 0,
		"queue_latency_p95_ms", 0, "total_latency_p95_ms", 0,
		"success_ratio_ppm", (json_int_t)ratio, "deadletter_count",
		(json_int_t)g->dl, "freshness_age_ms", 0);
	char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (hist && text) {
		char now[24], keep[24];
		snprintf(now, sizeof(now), "%lld", (long long)g->ms);
		snprintf(keep, sizeof(keep), "%lld",
			 (long long)(g->ms - HISTORY_KEEP_MS));
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "ZADD", hist, now, text,
						     NULL });
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "ZREMRANGEBYSCORE", hist,
						     "-inf", keep, NULL });
		if (d->history)
			d->history->points++;
	}
	free(text);
	free(hist);
}

/* One reply of the point's gathering in; the last adds the point. */
static void gather_done(struct gather *g, const redisReply *r, bool may_fail)
{
	if (r == NULL || (r->type == REDIS_REPLY_ERROR && !may_fail))
		g->failed = true;
	if (--g->waiting > 0)
		return;
	if (!g->failed && g->d->history && g->d->history->holder)
		gather_add_point(g);
	free(g);
}

static void on_online(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gather *g = priv;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		g->online++;
	gather_done(g, r, false);
}

static void on_status(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gather *g = priv;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 5) {
		long long a = num(r->element[0]), q = num(r->element[1]);
		g->act += a > 0 ? a : 0;
		g->que += q > 0 ? q : 0;
		g->com += num(r->element[2]);
		g->fai += num(r->element[3]);
		g->can += num(r->element[4]);
	}
	gather_done(g, r, false);
}

/* XINFO GROUPS: the group's pending and lag (a stream not there yet is
 * an error reply: nothing to count). */
static void on_groups(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gather *g = priv;
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		const redisReply *e = r->element[i];
		bool ours = false;
		long long pend = 0, lag = 0;
		for (size_t j = 0;
		     e->type == REDIS_REPLY_ARRAY && j + 1 < e->elements;
		     j += 2) {
			const redisReply *k = e->element[j],
					 *v = e->element[j + 1];
			if (k->type != REDIS_REPLY_STRING &&
			    k->type != REDIS_REPLY_STATUS)
				continue;
			if (strcmp(k->str, "name") == 0)
				ours = v->type == REDIS_REPLY_STRING &&
				       strcmp(v->str, g->d->group) == 0;
			else if (strcmp(k->str, "pending") == 0)
				pend = num(v);
			else if (strcmp(k->str, "lag") == 0)
				lag = num(v);
		}
		if (ours) {
			g->pend += pend;
			g->depth += lag;
		}
	}
	gather_done(g, r, true);
}

static void on_deadletters(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gather *g = priv;
	g->dl = num(r);
	gather_done(g, r, false);
}

static void on_known(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct gather *g = priv;
	struct bg_daemon *d = g->d;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		free(g);
		return;
	}
	g->waiting = 1; /* held until every command is queued */
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *w = r->element[i];
		if (w->type != REDIS_REPLY_STRING)
			continue;
		char *on = bg_dkey(d, BG_KEY_WORKER_ONLINE, w->str);
		char *st = bg_dkey(d, BG_KEY_WORKER_STATUS, w->str);
		if (on && bg_rconn_cmdv(d->wr, on_online, g, 0,
					(const char *const[]){ "EXISTS", on,
							       NULL }) == 0)
			g->waiting++;
		else
			g->failed = true;
		if (st &&
		    bg_rconn_cmdv(d->wr, on_status, g, 0,
				  (const char *const[]){
					  "HMGET", st, "active_count",
					  "queued_count", "completed_count",
					  "failed_count", "cancelled_count",
					  NULL }) == 0)
			g->waiting++;
		else
			g->failed = true;
		free(on);
		free(st);
	}
	for (int i = 1; i < d->n_streams; i++) {
		if (bg_rconn_cmdv(d->wr, on_groups, g, 0,
				  (const char *const[]){ "XINFO", "GROUPS",
							 d->streams[i],
							 NULL }) == 0)
			g->waiting++;
		else
			g->failed = true;
	}
	if (bg_rconn_cmdv(d->wr, on_deadletters, g, 0,
			  (const char *const[]){ "XLEN", d->deadletter_key,
						 NULL }) == 0)
		g->waiting++;
	else
		g->failed = true;
	gather_done(g, r, false);
}

static void on_lock_reply(struct bg_rconn *c, redisReply *r, void *priv)
{
	struct bg_daemon *d = priv;
	on_tick_reply(c, r, priv);
	if (d->history == NULL || !d->history->holder)
		return;
	struct gather *g = calloc(1, sizeof(*g));
	char *known = bg_dkey(d, BG_KEY_KNOWN_WORKERS, "");
	if (g && known) {
		*g = (struct gather){ .d = d, .ms = bg_redis_now_ms(d) };
		if (bg_rconn_cmdv(d->wr, on_known, g, 0,
				  (const char *const[]){ "SMEMBERS", known,
							 NULL }) == 0)
			g = NULL;
	}
	free(g);
	free(known);
}

/* The lock, then (held) the point gathered key by key. */
static void tick_clustered(struct bg_daemon *d)
{
	char *lock = bg_dkey(d, BG_KEY_OBS_COLLECTOR_LOCK, "");
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%d", lock_ttl(d));
	if (lock)
		bg_rconn_cmdv(d->wr, on_lock_reply, d, 0,
			      (const char *const[]){ "EVAL", lock_lua, "1",
						     lock, d->worker_id, ttl,
						     NULL });
	free(lock);
}

static void tick(struct bg_daemon *d)
{
	if (!bg_rconn_ready(d->wr))
		return;
	if (bg_rconn_clustered(d->wr)) {
		tick_clustered(d);
		return;
	}
	char *lock = bg_dkey(d, BG_KEY_OBS_COLLECTOR_LOCK, "");
	char *hist = bg_dkey(d, BG_KEY_OBS_HISTORY, "");
	char *known = bg_dkey(d, BG_KEY_KNOWN_WORKERS, "");
	char *on_pre = NULL, *on_suf = NULL, *st_pre = NULL, *st_suf = NULL;
	int nstreams = d->n_streams - 1; /* the agent-type streams */
	const char **argv = calloc((size_t)(20 + nstreams), sizeof(*argv));
	if (lock && hist && known && argv &&
	    split_key(d, BG_KEY_WORKER_ONLINE, &on_pre, &on_suf) == 0 &&
	    split_key(d, BG_KEY_WORKER_STATUS, &st_pre, &st_suf) == 0) {
		char ttl[16], now[24], keep[24], nkeys[16];
		int64_t ms = bg_redis_now_ms(d);
		snprintf(ttl, sizeof(ttl), "%d", lock_ttl(d));
		snprintf(now, sizeof(now), "%lld", (long long)ms);
		snprintf(keep, sizeof(keep), "%lld",
			 (long long)(ms - HISTORY_KEEP_MS));
		snprintf(nkeys, sizeof(nkeys), "%d", 4 + nstreams);
		int n = 0;
		argv[n++] = "EVAL";
		argv[n++] = tick_lua;
		argv[n++] = nkeys;
		argv[n++] = lock;
		argv[n++] = hist;
		argv[n++] = known;
		argv[n++] = d->deadletter_key;
		for (int i = 1; i <= nstreams; i++)
			argv[n++] = d->streams[i];
		argv[n++] = d->worker_id;
		argv[n++] = ttl;
		argv[n++] = now;
		argv[n++] = d->group;
		argv[n++] = on_pre;
		argv[n++] = on_suf;
		argv[n++] = st_pre;
		argv[n++] = st_suf;
		argv[n++] = keep;
		argv[n] = NULL;
		bg_rconn_cmdv(d->wr, on_tick_reply, d, 0, argv);
	}
	free(argv);
	free(lock);
	free(hist);
	free(known);
	free(on_pre);
	free(on_suf);
	free(st_pre);
	free(st_suf);
}

static void arm(struct bg_daemon *d)
{
	struct timeval tv = { d->cfg->history_interval_s, 0 };
	evtimer_add(d->history->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	tick(d);
	arm(d);
}

int bg_history_start(struct bg_daemon *d)
{
	if (!d->cfg->history_enabled)
		return 0;
	struct bg_history *h = calloc(1, sizeof(*h));
	if (h)
		h->timer = evtimer_new(d->base, on_timer, d);
	if (h == NULL || h->timer == NULL) {
		free(h);
		return -ENOMEM;
	}
	d->history = h;
	arm(d);
	return 0;
}

void bg_history_stop(struct bg_daemon *d)
{
	struct bg_history *h = d->history;
	if (h == NULL)
		return;
	if (h->holder && bg_rconn_ready(d->wr)) {
		char *lock = bg_dkey(d, BG_KEY_OBS_COLLECTOR_LOCK, "");
		if (lock)
			bg_rconn_cmdv(d->wr, NULL, NULL, 0,
				      (const char *const[]){
					      "EVAL", release_lua, "1", lock,
					      d->worker_id, NULL });
		free(lock);
	}
	event_free(h->timer);
	free(h);
	d->history = NULL;
}

bool bg_history_holder(const struct bg_daemon *d)
{
	return d->history && d->history->holder;
}

uint64_t bg_history_points(const struct bg_daemon *d)
{
	return d->history ? d->history->points : 0;
}
