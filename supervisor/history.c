/* supervisor/history.c - the fleet metrics collector (history.h, WIRE
 * 9.3): a lock, and one point per interval from its holder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

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

static void tick(struct bg_daemon *d)
{
	if (!bg_rconn_ready(d->wr))
		return;
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
	if (d->cfg->redis_cluster) {
		/* one point is one script over every worker's lease, every
		 * stream and the dead letters: many slots */
		bg_info("metrics history (WIRE 9.3) is not collected under "
			"Redis Cluster yet (docs/cluster.md)");
		return 0;
	}
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
