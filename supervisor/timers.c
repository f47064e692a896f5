/* supervisor/timers.c - moving due delayed RESUMEs to their agent type's
 * control stream (timers.h). One EVALSHA per agent type and poll on the
 * control connection (EVAL after a NOSCRIPT, as admit.c), never more than
 * one poll of a type in flight; the loop never waits for it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/timers.h"
#include "wire/keys.h"

/* Timers moved by one script call at most; more wait for the next poll. */
#define TIMERS_BATCH "100"

/* KEYS[1] the timers ZSET of an agent type, KEYS[2] its control stream;
 * ARGV[1] now (ms, Redis clock), ARGV[2] at most this many. A member is
 * the RESUME entry itself. Returns how many were moved. */
static const char MOVE_LUA[] =
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],"
	" 'LIMIT', 0, tonumber(ARGV[2]))\n"
	"for _, m in ipairs(due) do\n"
	"  redis.call('XADD', KEYS[2], '*', 'data', m)\n"
	"  redis.call('ZREM', KEYS[1], m)\n"
	"end\n"
	"return #due\n";

struct poll {
	struct bg_timers *tm;
	int i;
	bool in_flight;
};

struct bg_timers {
	struct bg_daemon *d;
	struct event *ev;
	int n;		    /* configured agent types */
	char **keys;	    /* their timers ZSETs */
	struct poll *polls; /* one per agent type */
	bool eval;	    /* a NOSCRIPT was seen: send the text */
	char sha[41];	    /* "" when it could not be computed */
	uint64_t moved;	    /* timers fired by this process */
};

static void on_move(struct bg_rconn *c, redisReply *r, void *priv);

static int send_move(struct poll *p)
{
	struct bg_timers *tm = p->tm;
	struct bg_daemon *d = tm->d;
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)bg_redis_now_ms(d));
	bool eval = tm->eval || !tm->sha[0];
	const char *argv[] = { eval ? "EVAL" : "EVALSHA",
			       eval ? MOVE_LUA : tm->sha,
			       "2",
			       tm->keys[p->i],
			       d->streams[p->i + 1],
			       now,
			       TIMERS_BATCH,
			       NULL };
	p->in_flight = bg_rconn_cmdv(d->ctl, on_move, p, 0, argv) == 0;
	return p->in_flight ? 0 : -ENOTCONN;
}

static void on_move(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct poll *p = priv;
	struct bg_timers *tm = p->tm;
	p->in_flight = false;
	if (r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0 && !tm->eval) {
		tm->eval = true; /* not loaded (a restarted or flushed Redis) */
		send_move(p);
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("timers of agent type %s: %s",
			tm->d->cfg->agent_types[p->i].name, r->str);
	else if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
		tm->moved += (uint64_t)r->integer;
		bg_debug("timers: %lld delayed RESUME(s) of agent type %s "
			 "are due: sent",
			 r->integer, tm->d->cfg->agent_types[p->i].name);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bg_timers *tm = arg;
	if (!bg_rconn_ready(tm->d->ctl))
		return;
	for (int i = 0; i < tm->n; i++)
		if (!tm->polls[i].in_flight)
			send_move(&tm->polls[i]);
}

static void script_sha(char hex[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	hex[0] = '\0';
	if (EVP_Digest(MOVE_LUA, strlen(MOVE_LUA), md, &n, EVP_sha1(), NULL) !=
		    1 ||
	    n != 20)
		return;
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

void bg_timers_free(struct bg_daemon *d)
{
	struct bg_timers *tm = d->timers;
	if (tm == NULL)
		return;
	if (tm->ev)
		event_free(tm->ev);
	for (int i = 0; tm->keys && i < tm->n; i++)
		free(tm->keys[i]);
	free(tm->keys);
	free(tm->polls);
	free(tm);
	d->timers = NULL;
}

int bg_timers_start(struct bg_daemon *d)
{
	struct bg_timers *tm = calloc(1, sizeof(*tm));
	if (tm == NULL)
		return -ENOMEM;
	d->timers = tm;
	tm->d = d;
	tm->n = d->cfg->n_agent_types;
	tm->keys = calloc((size_t)tm->n + 1, sizeof(*tm->keys));
	tm->polls = calloc((size_t)tm->n + 1, sizeof(*tm->polls));
	tm->ev = event_new(d->base, -1, EV_PERSIST, on_tick, tm);
	if (tm->keys == NULL || tm->polls == NULL || tm->ev == NULL)
		return -ENOMEM;
	for (int i = 0; i < tm->n; i++) {
		tm->keys[i] =
			bg_dkey(d, BG_KEY_TIMERS, d->cfg->agent_types[i].name);
		tm->polls[i] = (struct poll){ tm, i, false };
		if (tm->keys[i] == NULL)
			return -ENOMEM;
	}
	script_sha(tm->sha);
	int ms = d->cfg->timer_poll_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return event_add(tm->ev, &tv) == 0 ? 0 : -ENOMEM;
}
