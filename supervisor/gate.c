/* supervisor/gate.c - the fleet limits of a task's start (gate.h): the
 * acquire script (places and GCRA tokens of an agent type and a lane, all
 * or nothing, in Redis time), the release, the renewal on each heartbeat,
 * and the waits of refused starts. Requests go on the control connection
 * (never blocked, never inside a MULTI). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "supervisor/daemon.h"
#include "supervisor/gate.h"
#include "supervisor/log.h"
#include "wire/keys.h"

/* A full cap gives no hint of when a place frees (places are renewed, not
 * timed): ask again after a random 50-200 ms, so that the workers of the
 * fleet do not ask together. A lost answer or an error waits 200 ms. */
#define CAP_WAIT_MIN_MS 50
#define CAP_WAIT_SPAN_MS 151
#define LOST_WAIT_MS 200

/* KEYS: the running sets (ncap of them), then the rate keys. ARGV: 1 the
 * place's member, 2 its time to live in ms, 3 ncap, then the cap of each
 * running set, then per rate key its emission interval and its burst
 * tolerance in us. Nothing is written unless every set has room (or holds
 * the member already) and every rate key conforms. Returns {1, 0, 0}
 * (taken) or {0, wait ms before a token is due (0 = none missing), 1 when
 * a running set is full}. Times are Redis's (TIME), never a worker's. */
static const char ACQUIRE_LUA[] =
	"if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local nowms = math.floor(now / 1000)\n"
	"local ncap = tonumber(ARGV[3])\n"
	"local wait, full, tats = 0, 0, {}\n"
	"for i = ncap + 1, #KEYS do\n"
	"  local a = 4 + ncap + 2 * (i - ncap - 1)\n"
	"  local iv, tau = tonumber(ARGV[a]), tonumber(ARGV[a + 1])\n"
	"  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
	"  if tat < now then tat = now end\n"
	"  if tat - tau > now then\n"
	"    local w = math.ceil((tat - tau - now) / 1000)\n"
	"    if w > wait then wait = w end\n"
	"  end\n"
	"  tats[i] = tat + iv\n"
	"end\n"
	"for i = 1, ncap do\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', nowms)\n"
	"  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) and\n"
	"     redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + i]) then\n"
	"    full = 1\n"
	"  end\n"
	"end\n"
	"if wait > 0 or full == 1 then return {0, wait, full} end\n"
	"local ttl = tonumber(ARGV[2])\n"
	"for i = 1, ncap do\n"
	"  redis.call('ZADD', KEYS[i], string.format('%.0f', nowms + ttl),\n"
	"             ARGV[1])\n"
	"  redis.call('PEXPIRE', KEYS[i], 2 * ttl)\n"
	"end\n"
	"for i = ncap + 1, #KEYS do\n"
	"  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX',\n"
	"             math.ceil((tats[i] - now) / 1000) + 1)\n"
	"end\n"
	"return {1, 0, 0}\n";

/* KEYS[i] is a running set holding member ARGV[i + 1]; ARGV[1] the time
 * to live in ms. Each place still there expires ttl from now (XX: one
 * already expired and dropped is not taken again). */
static const char RENEW_LUA[] =
	"if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
	"local t = redis.call('TIME')\n"
	"local ttl = tonumber(ARGV[1])\n"
	"local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
	" + ttl\n"
	"for i = 1, #KEYS do\n"
	"  redis.call('ZADD', KEYS[i], 'XX', string.format('%.0f', exp),\n"
	"             ARGV[i + 1])\n"
	"  redis.call('PEXPIRE', KEYS[i], 2 * ttl)\n"
	"end\n"
	"return #KEYS\n";

/* The limits of one start, from the configuration of the moment. */
struct limits {
	const char *type, *lane; /* "" when that side limits nothing */
	int type_cap, lane_cap;	 /* fleet_max_running, 0 = none */
	int type_rate, type_period, lane_rate, lane_period;
};

/* Jobs limited by the same agent type and lane: one request at a time,
 * and one wait after a refusal. */
struct group {
	struct group *next;
	char *type, *lane;
	int64_t retry_at; /* monotonic ms: no request before */
	bool cap_wait;	  /* waiting for a full cap: a release here ends it */
	bool in_flight;
};

enum place_state {
	P_ASKED,   /* the acquire is in flight */
	P_GRANTED, /* taken in Redis, the job not told yet */
	P_HELD,	   /* the job started with it */
};

#define MAX_ARGS 16

/* A job's places (or the request for them). */
struct place {
	struct place *next;
	struct bg_gate *g;
	uint64_t tag;
	bool orphan; /* released while asked: given back when answered */
	enum place_state state;
	struct group *grp;
	const char *type; /* the counters' name (struct waits) */
	char *member;
	char *keys[2]; /* its running sets */
	int n_keys;
	bool eval;	      /* sent as EVAL after a NOSCRIPT */
	char *args[MAX_ARGS]; /* the acquire after EVALSHA <sha> */
	int n_args;
};

struct waits {
	struct waits *next;
	char *type;
	uint64_t rate, cap;
};

struct bg_gate {
	struct bg_daemon *d;
	struct place *places;
	struct group *groups;
	struct waits *waits;
	struct event *timer;
	int64_t timer_at; /* monotonic ms, 0 = not armed */
	char nonce[24];	  /* this process: a restart's places are others */
	bool renew_eval;
};

/* SHA-1 of a script for EVALSHA, computed once into hex; NULL: send EVAL. */
static const char *script_sha(const char *text, char hex[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (hex[0])
		return hex;
	if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 ||
	    n != 20)
		return NULL;
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

static const char *acquire_sha(void)
{
	static char hex[41];
	return script_sha(ACQUIRE_LUA, hex);
}

static const char *renew_sha(void)
{
	static char hex[41];
	return script_sha(RENEW_LUA, hex);
}

/* What limits t's start; false when nothing does (the common path: two
 * look-ups in the configuration, nothing else). */
static bool limits_of(const struct bg_daemon *d, const struct bg_job *t,
		      struct limits *l)
{
	const struct bg_agent_type_conf *tc =
		t->id.handler_type
			? bg_config_agent_type(d->cfg, t->id.handler_type)
			: NULL;
	const struct bg_lane_conf *lc =
		t->run.lane[0] ? bg_lane_conf(d->cfg, t->run.lane) : NULL;
	*l = (struct limits){ "", "", 0, 0, 0, 0, 0, 0 };
	if (tc && (tc->fleet_max_running > 0 || tc->rate_limit > 0)) {
		l->type = tc->name;
		l->type_cap = tc->fleet_max_running;
		l->type_rate = tc->rate_limit;
		l->type_period = tc->rate_period_ms;
	}
	if (lc && (lc->fleet_max_running > 0 || lc->rate_limit > 0)) {
		l->lane = t->run.lane;
		l->lane_cap = lc->fleet_max_running;
		l->lane_rate = lc->rate_limit;
		l->lane_period = lc->rate_period_ms;
	}
	return l->type[0] || l->lane[0];
}

static void on_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_gate *g = arg;
	g->timer_at = 0; /* waking the loop is the point: the pass follows */
}

static struct bg_gate *gate_get(struct bg_daemon *d)
{
	if (d->gate)
		return d->gate;
	struct bg_gate *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->d = d;
	g->timer = evtimer_new(d->base, on_timer, g);
	if (g->timer == NULL) {
		free(g);
		return NULL;
	}
	snprintf(g->nonce, sizeof(g->nonce), "%x%llx", (unsigned)getpid(),
		 (unsigned long long)bg_now_ms());
	d->gate = g;
	return g;
}

/* Wake the loop at `at` (monotonic ms) unless it wakes earlier already. */
static void arm(struct bg_gate *g, int64_t at)
{
	int64_t now = bg_mono_ms();
	if (g->timer_at && g->timer_at <= at && g->timer_at > now)
		return;
	int64_t ms = at > now ? at - now : 0;
	struct timeval tv = { (time_t)(ms / 1000),
			      (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(g->timer, &tv);
	g->timer_at = at;
}

static struct group *group_get(struct bg_gate *g, const struct limits *l)
{
	for (struct group *p = g->groups; p; p = p->next)
		if (strcmp(p->type, l->type) == 0 &&
		    strcmp(p->lane, l->lane) == 0)
			return p;
	struct group *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->type = strdup(l->type);
	p->lane = strdup(l->lane);
	if (p->type == NULL || p->lane == NULL) {
		free(p->type);
		free(p->lane);
		free(p);
		return NULL;
	}
	p->next = g->groups;
	g->groups = p;
	return p;
}

static struct waits *waits_get(struct bg_gate *g, const char *type)
{
	for (struct waits *w = g->waits; w; w = w->next)
		if (strcmp(w->type, type) == 0)
			return w;
	struct waits *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->type = strdup(type)) == NULL) {
		free(w);
		return NULL;
	}
	w->next = g->waits;
	g->waits = w;
	return w;
}

static struct place *place_find(struct bg_gate *g, uint64_t tag)
{
	for (struct place *p = g->places; p; p = p->next)
		if (!p->orphan && p->tag == tag)
			return p;
	return NULL;
}

static void free_args(struct place *p)
{
	for (int i = 0; i < p->n_args; i++)
		free(p->args[i]);
	p->n_args = 0;
}

static void place_drop(struct bg_gate *g, struct place *p)
{
	for (struct place **pp = &g->places; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free_args(p);
	for (int i = 0; i < p->n_keys; i++)
		free(p->keys[i]);
	free(p->member);
	free(p);
}

/* ZREM the member from its running sets. Not sent (the connection is
 * down): it is no longer renewed and expires within the lease TTL. */
static void give_back(struct bg_daemon *d, const struct place *p)
{
	for (int i = 0; i < p->n_keys; i++)
		(void)bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
				    (const char *const[]){ "ZREM", p->keys[i],
							   p->member, NULL });
}

/* No request of group grp before ms from now. */
static void group_wait(struct bg_gate *g, struct group *grp, int64_t ms,
		       bool cap)
{
	grp->retry_at = bg_mono_ms() + ms;
	grp->cap_wait = cap;
	arm(g, grp->retry_at);
}

static int add_arg(struct place *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int add_arg(struct place *p, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0 || p->n_args >= MAX_ARGS) {
		if (n >= 0)
			free(s);
		return -ENOMEM;
	}
	p->args[p->n_args++] = s;
	return 0;
}

/* A rate of `limit` starts per `period_ms`: the GCRA's emission interval
 * and its burst tolerance (a burst of limit / 20, at least 1: the jitter
 * of the fleet's requests is absorbed, and no period sees more than
 * limit + limit / 20 + 1 starts). */
static int add_rate(struct place *p, int limit, int period_ms)
{
	long long iv = llround((double)period_ms * 1000.0 / limit);
	if (iv < 1)
		iv = 1;
	long long burst = limit / 20 > 1 ? limit / 20 : 1;
	return add_arg(p, "%lld", iv) || add_arg(p, "%lld", (burst - 1) * iv)
		       ? -ENOMEM
		       : 0;
}

/* The acquire's keys and arguments (after EVALSHA <sha>) into p. */
static int build_acquire(struct bg_daemon *d, struct place *p,
			 const struct limits *l)
{
	struct {
		enum bg_key_kind kind;
		const char *id;
		bool on;
	} k[4] = {
		{ BG_KEY_FLEET_TYPE_RUNNING, l->type, l->type_cap > 0 },
		{ BG_KEY_FLEET_LANE_RUNNING, l->lane, l->lane_cap > 0 },
		{ BG_KEY_FLEET_TYPE_RATE, l->type, l->type_rate > 0 },
		{ BG_KEY_FLEET_LANE_RATE, l->lane, l->lane_rate > 0 },
	};
	char *keys[4];
	int n = 0, ncap = 0;
	for (int i = 0; i < 4; i++) {
		if (!k[i].on)
			continue;
		if ((keys[n] = bg_dkey(d, k[i].kind, k[i].id)) == NULL) {
			while (n > 0)
				free(keys[--n]);
			return -EINVAL;
		}
		ncap += i < 2;
		n++;
	}
	int rc = add_arg(p, "%d", n);
	for (int i = 0; i < n; i++)
		if (rc == 0 && (rc = add_arg(p, "%s", keys[i])) == 0 &&
		    i < ncap &&
		    (p->keys[p->n_keys++] = strdup(keys[i])) == NULL)
			rc = -ENOMEM;
	for (int i = 0; i < n; i++)
		free(keys[i]);
	if (rc || add_arg(p, "%s", p->member) ||
	    add_arg(p, "%lld", (long long)d->cfg->lease_ttl_s * 1000) ||
	    add_arg(p, "%d", ncap) ||
	    (l->type_cap > 0 && add_arg(p, "%d", l->type_cap)) ||
	    (l->lane_cap > 0 && add_arg(p, "%d", l->lane_cap)) ||
	    (l->type_rate > 0 && add_rate(p, l->type_rate, l->type_period)) ||
	    (l->lane_rate > 0 && add_rate(p, l->lane_rate, l->lane_period)))
		return -ENOMEM;
	return 0;
}

static void on_acquire(struct bg_rconn *c, redisReply *r, void *priv);

static int send_acquire(struct bg_daemon *d, struct place *p)
{
	const char *sha = p->eval ? NULL : acquire_sha();
	const char *argv[MAX_ARGS + 2];
	argv[0] = sha ? "EVALSHA" : "EVAL";
	argv[1] = sha ? sha : ACQUIRE_LUA;
	for (int i = 0; i < p->n_args; i++)
		argv[2 + i] = p->args[i];
	argv[2 + p->n_args] = NULL;
	return bg_rconn_cmdv(d->ctl, on_acquire, p, 0, argv);
}

static void on_acquire(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct place *p = priv;
	struct bg_gate *g = p->g;
	struct bg_daemon *d = g->d;
	if (r && r->type == REDIS_REPLY_ERROR && !p->eval &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0) {
		p->eval = true; /* not loaded (a restarted or flushed Redis) */
		if (send_acquire(d, p) == 0)
			return;
		r = NULL;
	}
	p->grp->in_flight = false;
	bool taken = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		     r->element[0]->type == REDIS_REPLY_INTEGER &&
		     r->element[0]->integer == 1;
	bool refused = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		       r->element[0]->type == REDIS_REPLY_INTEGER &&
		       r->element[0]->integer == 0 &&
		       r->element[1]->type == REDIS_REPLY_INTEGER &&
		       r->element[2]->type == REDIS_REPLY_INTEGER;
	if (taken && !p->orphan) {
		p->state = P_GRANTED; /* the pass that follows starts it */
		free_args(p);
		return;
	}
	if (refused) {
		long long wait = r->element[1]->integer;
		bool full = r->element[2]->integer != 0;
		struct waits *w = waits_get(g, p->type);
		if (w && wait > 0)
			w->rate++;
		if (w && full)
			w->cap++;
		if (full && wait < CAP_WAIT_MIN_MS)
			wait = CAP_WAIT_MIN_MS + random() % CAP_WAIT_SPAN_MS;
		group_wait(g, p->grp, wait, full);
	} else if (!taken) {
		/* unknown outcome or an error: what it may have taken is
		 * given back (or expires unrenewed) */
		if (r)
			bg_warn("fleet limits: acquire for agent type \"%s\" "
				"lane \"%s\" failed: %s; asked again in %d ms",
				p->grp->type, p->grp->lane,
				r->type == REDIS_REPLY_ERROR ? r->str
							     : "bad reply",
				LOST_WAIT_MS);
		give_back(d, p);
		group_wait(g, p->grp, LOST_WAIT_MS, false);
	} else {
		give_back(d, p); /* taken for a job released meanwhile */
	}
	place_drop(g, p);
}

bool bg_gate_try_start(struct bg_daemon *d, struct bg_job *t)
{
	struct limits l;
	if (t->run.gate_held || !limits_of(d, t, &l))
		return true;
	struct bg_gate *g = gate_get(d);
	if (g == NULL)
		return false; /* out of memory: asked again at the next pass */
	struct place *p = place_find(g, t->tag);
	if (p) {
		if (p->state == P_ASKED)
			return false;
		p->state = P_HELD;
		t->run.gate_held = true;
		return true;
	}
	struct group *grp = group_get(g, &l);
	if (grp == NULL || grp->in_flight)
		return false;
	if (grp->retry_at > bg_mono_ms()) {
		arm(g, grp->retry_at);
		return false;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return false;
	p->g = g;
	p->tag = t->tag;
	p->grp = grp;
	p->state = P_ASKED;
	p->type = grp->type[0]	       ? grp->type
		  : t->id.handler_type ? t->id.handler_type
				       : "";
	p->next = g->places;
	g->places = p;
	int rc = asprintf(&p->member, "%s:%s:%llu", d->worker_id, g->nonce,
			  (unsigned long long)t->tag) < 0
			 ? -ENOMEM
			 : 0;
	if (rc == 0)
		rc = build_acquire(d, p, &l);
	if (rc == 0)
		rc = send_acquire(d, p);
	if (rc) {
		if (rc != -ENOTCONN)
			bg_warn("fleet limits: cannot ask for a start of agent "
				"type \"%s\" lane \"%s\": %s",
				grp->type, grp->lane, strerror(-rc));
		place_drop(g, p);
		group_wait(g, grp, LOST_WAIT_MS, false);
		return false;
	}
	grp->in_flight = true;
	return false;
}

void bg_gate_release(struct bg_daemon *d, struct bg_job *t)
{
	t->run.gate_held = false;
	struct bg_gate *g = d->gate;
	struct place *p = g ? place_find(g, t->tag) : NULL;
	if (p == NULL)
		return;
	if (p->state == P_ASKED) {
		p->orphan = true; /* its answer gives back what it took */
		return;
	}
	bool had = p->n_keys > 0;
	give_back(d, p);
	place_drop(g, p);
	if (had) /* a place here freed: who waits for a full cap asks now */
		for (struct group *grp = g->groups; grp; grp = grp->next)
			if (grp->cap_wait) {
				grp->cap_wait = false;
				grp->retry_at = 0;
			}
}

static void on_renew(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_gate *g = priv;
	if (r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0 && !g->renew_eval) {
		g->renew_eval = true;
		bg_gate_renew(g->d);
		g->renew_eval = false;
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		bg_warn("fleet limits: renewal of this worker's places "
			"failed: %s",
			r->str);
	}
}

void bg_gate_renew(struct bg_daemon *d)
{
	struct bg_gate *g = d->gate;
	if (g == NULL)
		return;
	int n = 0;
	for (struct place *p = g->places; p; p = p->next)
		n += p->orphan ? 0 : p->n_keys;
	if (n == 0)
		return;
	const char **argv = calloc((size_t)(2 * n + 5), sizeof(char *));
	if (argv == NULL)
		return; /* the next heartbeat renews them */
	const char *sha = g->renew_eval ? NULL : renew_sha();
	char nkeys[16], ttl[24];
	snprintf(nkeys, sizeof(nkeys), "%d", n);
	snprintf(ttl, sizeof(ttl), "%lld",
		 (long long)d->cfg->lease_ttl_s * 1000);
	int a = 0;
	argv[a++] = sha ? "EVALSHA" : "EVAL";
	argv[a++] = sha ? sha : RENEW_LUA;
	argv[a++] = nkeys;
	for (struct place *p = g->places; p; p = p->next)
		for (int i = 0; !p->orphan && i < p->n_keys; i++)
			argv[a++] = p->keys[i];
	argv[a++] = ttl;
	for (struct place *p = g->places; p; p = p->next)
		for (int i = 0; !p->orphan && i < p->n_keys; i++)
			argv[a++] = p->member;
	argv[a] = NULL;
	(void)bg_rconn_cmdv(d->ctl, on_renew, g, 0, argv);
	free(argv);
}

bool bg_gate_waits(const struct bg_daemon *d, int i, struct bg_gate_waits *w)
{
	const struct waits *p = d->gate ? d->gate->waits : NULL;
	while (p && i-- > 0)
		p = p->next;
	if (p == NULL)
		return false;
	*w = (struct bg_gate_waits){ p->type, p->rate, p->cap };
	return true;
}

int bg_gate_places(const struct bg_daemon *d)
{
	int n = 0;
	if (d->gate)
		for (const struct place *p = d->gate->places; p; p = p->next)
			n += !p->orphan && p->n_keys > 0;
	return n;
}

void bg_gate_free(struct bg_daemon *d)
{
	struct bg_gate *g = d->gate;
	if (g == NULL)
		return;
	while (g->places)
		place_drop(g, g->places);
	while (g->groups) {
		struct group *p = g->groups;
		g->groups = p->next;
		free(p->type);
		free(p->lane);
		free(p);
	}
	while (g->waits) {
		struct waits *w = g->waits;
		g->waits = w->next;
		free(w->type);
		free(w);
	}
	event_free(g->timer);
	free(g);
	d->gate = NULL;
}
