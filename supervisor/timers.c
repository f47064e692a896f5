/* supervisor/timers.c - sending the due delayed RESUMEs of resume_later
 * to their agent type's control stream (timers.h). Per agent type and
 * poll, on the control connection and never waited for: the due entries
 * (ZRANGEBYSCORE, at most TIMERS_BATCH), then for each its target's
 * record (msg_map, exec); a target that has ended (COMPLETED, FAILED,
 * CANCELLED) has its RESUME dropped (ZREM: a late wake-up must not run a
 * finished execution again), any other is moved by one script (ZREM, and
 * XADD only when the ZREM removed it: whichever bygated moves it first
 * sends it, once). EVALSHA, EVAL after a NOSCRIPT (as admit.c). The next
 * poll of a type waits for its entries to be done. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/timers.h"
#include "wire/keys.h"
#include "wire/record.h"

#define S(s) bg_str_c(s)
/* Due entries handled by one poll of a type at most; more wait for the
 * next poll. */
#define TIMERS_BATCH "100"

/* KEYS[1] the timers ZSET of an agent type, KEYS[2] its control stream;
 * ARGV[1] an entry. Sent only by the one that removed it. */
static const char MOVE_LUA[] =
	"if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then\n"
	"  redis.call('XADD', KEYS[2], '*', 'data', ARGV[1])\n"
	"  return 1\n"
	"end\n"
	"return 0\n";

struct bg_timers;

/* One agent type's polls. */
struct poll {
	struct bg_timers *tm;
	int i;
	int busy; /* the read or entries of a poll in flight */
};

/* One due entry: its target's record is read, then it is moved or
 * dropped. */
struct due {
	struct poll *p;
	char *entry;
	size_t len;
	char *reg_key;
	char *field; /* msg_map:<mid>, then exec:<id> */
	bool have_exec;
	bool eval;
};

struct bg_timers {
	struct bg_daemon *d;
	struct event *ev;
	int n;		    /* configured agent types */
	char **keys;	    /* their timers ZSETs */
	struct poll *polls; /* one per agent type */
	char sha[41];	    /* "" when it could not be computed */
	uint64_t sent, dropped;
};

static void due_done(struct due *u)
{
	u->p->busy--;
	free(u->entry);
	free(u->reg_key);
	free(u->field);
	free(u);
}

static const char *type_name(const struct poll *p)
{
	return p->tm->d->cfg->agent_types[p->i].name;
}

/* ---- moving or dropping one entry ---- */

static void on_moved(struct bg_rconn *c, redisReply *r, void *priv);

static void move(struct due *u)
{
	struct bg_timers *tm = u->p->tm;
	bool eval = u->eval || !tm->sha[0];
	const char *argv[] = {
		eval ? "EVAL" : "EVALSHA", eval ? MOVE_LUA : tm->sha,	"2",
		tm->keys[u->p->i],	   tm->d->streams[u->p->i + 1], u->entry
	};
	size_t lens[6];
	for (int k = 0; k < 5; k++)
		lens[k] = strlen(argv[k]);
	lens[5] = u->len;
	if (bg_rconn_cmd(tm->d->ctl, on_moved, u, 0, 6, argv, lens) != 0)
		due_done(u); /* left for the next poll */
}

static void on_moved(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct due *u = priv;
	if (r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0 && !u->eval) {
		u->eval = true; /* not loaded (a restarted or flushed Redis) */
		move(u);
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("timers of agent type %s: %s", type_name(u->p), r->str);
	else if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		u->p->tm->sent++;
		bg_debug("timers: a delayed RESUME of agent type %s is due: "
			 "sent",
			 type_name(u->p));
	}
	due_done(u);
}

static void drop(struct due *u)
{
	bg_info("timers: a delayed RESUME of agent type %s is dropped: its "
		"execution has ended",
		type_name(u->p));
	u->p->tm->dropped++;
	const char *argv[] = { "ZREM", u->p->tm->keys[u->p->i], u->entry };
	size_t lens[] = { 4, strlen(argv[1]), u->len };
	bg_rconn_cmd(u->p->tm->d->ctl, NULL, NULL, 0, 3, argv, lens);
	due_done(u);
}

/* ---- the target's record ---- */

static void on_record(struct bg_rconn *c, redisReply *r, void *priv);

static void read_field(struct due *u)
{
	if (bg_rconn_cmdv(u->p->tm->d->ctl, on_record, u, 0,
			  (const char *const[]){ "HGET", u->reg_key, u->field,
						 NULL }) != 0)
		due_done(u);
}

static void on_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct due *u = priv;
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		due_done(u); /* left for the next poll */
		return;
	}
	if (r->type != REDIS_REPLY_STRING) { /* no record: sent as it is */
		move(u);
		return;
	}
	if (!u->have_exec) {
		free(u->field);
		u->field = malloc(r->len + 6);
		if (u->field == NULL) {
			due_done(u);
			return;
		}
		memcpy(u->field, "exec:", 5);
		memcpy(u->field + 5, r->str, r->len);
		u->field[r->len + 5] = '\0';
		u->have_exec = true;
		read_field(u);
		return;
	}
	struct bg_record rec = { 0 };
	bool ended = bg_record_read(&rec, (struct bg_str){ r->str, r->len }) ==
			     0 &&
		     bg_status_is_terminal(rec.status);
	bg_record_free(&rec);
	if (ended)
		drop(u);
	else
		move(u);
}

/* An entry of the ZRANGEBYSCORE reply: its target is looked up. */
static void take(struct poll *p, const redisReply *e)
{
	json_t *j = json_loadb(e->str, e->len, 0, NULL);
	json_t *h = json_object_get(j, "header");
	const char *sid = json_string_value(json_object_get(h, "session_id"));
	const char *mid = json_string_value(json_object_get(h, "message_id"));
	struct due *u = calloc(1, sizeof(*u));
	if (u) {
		u->p = p;
		p->busy++;
		u->entry = malloc(e->len + 1);
		if (u->entry) {
			memcpy(u->entry, e->str, e->len);
			u->entry[e->len] = '\0';
			u->len = e->len;
		}
	}
	if (u && u->entry && sid && mid && *sid && *mid) {
		u->reg_key = bg_dkey(p->tm->d, BG_KEY_SESSION_REGISTRY, sid);
		size_t n = strlen(mid) + 9;
		u->field = malloc(n);
		if (u->field)
			snprintf(u->field, n, "msg_map:%s", mid);
		if (u->reg_key && u->field)
			read_field(u);
		else
			due_done(u);
	} else if (u && u->entry) {
		move(u); /* not ours to judge: sent as it is */
	} else if (u) {
		due_done(u);
	}
	json_decref(j);
}

static void on_due(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct poll *p = priv;
	for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements;
	     k++)
		if (r->element[k]->type == REDIS_REPLY_STRING)
			take(p, r->element[k]);
	p->busy--;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bg_timers *tm = arg;
	if (!bg_rconn_ready(tm->d->ctl))
		return;
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)bg_redis_now_ms(tm->d));
	for (int i = 0; i < tm->n; i++) {
		struct poll *p = &tm->polls[i];
		if (p->busy)
			continue;
		p->busy = 1;
		if (bg_rconn_cmdv(
			    tm->d->ctl, on_due, p, 0,
			    (const char *const[]){ "ZRANGEBYSCORE", tm->keys[i],
						   "-inf", now, "LIMIT", "0",
						   TIMERS_BATCH, NULL }) != 0)
			p->busy = 0;
	}
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
		tm->polls[i] = (struct poll){ tm, i, 0 };
		if (tm->keys[i] == NULL)
			return -ENOMEM;
	}
	script_sha(tm->sha);
	int ms = d->cfg->timer_poll_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return event_add(tm->ev, &tv) == 0 ? 0 : -ENOMEM;
}
