/* supervisor/metrics.c - bygated's counters (metrics.h hooks) and the
 * pending-entries gauges refreshed every 5 s on the control connection.
 * The /metrics page is rendered by metrics_page.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/metrics.h"
#include "supervisor/promtext.h"

#include "supervisor/metrics_int.h"

#define PEL_REFRESH_S 5

const char *const bg_metrics_outcomes[N_OUTCOMES] = {
	"completed", "failed",	  "cancelled", "deadlettered",
	"acked",     "suspended", "other"
};
const char *const bg_metrics_exit_reasons[N_REASONS] = { "crash",    "timeout",
							 "cancel",   "recycle",
							 "protocol", "shutdown",
							 "fatal",    "other" };

struct bg_metrics *bg_metrics_new(void)
{
	struct bg_metrics *m = calloc(1, sizeof(*m));
	if (m)
		strcpy(m->types[MAX_TYPES].name, "_other");
	return m;
}

void bg_metrics_stop(struct bg_metrics *m)
{
	if (m && m->pel_timer) {
		event_free(m->pel_timer);
		m->pel_timer = NULL;
	}
}

void bg_metrics_free(struct bg_metrics *m)
{
	if (m == NULL)
		return;
	bg_metrics_stop(m);
	free(m->pel);
	free(m);
}

/* ---- hooks ---- */

static size_t label_index(const char *const *set, size_t n, const char *v)
{
	for (size_t i = 0; i < n - 1; i++)
		if (v && strcmp(set[i], v) == 0)
			return i;
	return n - 1; /* "other" */
}

static struct type_stats *type_of(struct bg_metrics *m, const char *name)
{
	if (name == NULL || name[0] == '\0')
		name = "_unknown";
	for (int i = 0; i < m->n_types; i++)
		if (strcmp(m->types[i].name, name) == 0)
			return &m->types[i];
	if (m->n_types == MAX_TYPES || strlen(name) > TYPE_NAME_MAX)
		return &m->types[MAX_TYPES];
	struct type_stats *t = &m->types[m->n_types++];
	strcpy(t->name, name);
	return t;
}

/* Run time and queue wait are observed for outcomes that ran (not for
 * "acked" and "deadlettered": those never reached a child). */
void bg_metrics_task_done(struct bg_metrics *m, const char *agent_type,
			  const char *outcome, int64_t run_ms,
			  int64_t queue_wait_ms)
{
	if (m == NULL)
		return;
	struct type_stats *t = type_of(m, agent_type);
	size_t o = label_index(bg_metrics_outcomes, N_OUTCOMES, outcome);
	t->tasks[o]++;
	if (strcmp(bg_metrics_outcomes[o], "acked") == 0 ||
	    strcmp(bg_metrics_outcomes[o], "deadlettered") == 0)
		return;
	bg_prom_hist_observe(&t->run, (double)run_ms / 1000.0);
	bg_prom_hist_observe(&m->queue_wait, (double)queue_wait_ms / 1000.0);
}

void bg_metrics_idem_duplicate(struct bg_metrics *m, const char *agent_type)
{
	if (m)
		type_of(m, agent_type)->idem_duplicates++;
}

void bg_metrics_child_exit(struct bg_metrics *m, const char *reason)
{
	if (m)
		m->child_exits[label_index(bg_metrics_exit_reasons, N_REASONS,
					   reason)]++;
}

void bg_metrics_ring_stall(struct bg_metrics *m)
{
	if (m)
		m->ring_stalls++;
}

void bg_metrics_retry(struct bg_metrics *m)
{
	if (m)
		m->retries++;
}

void bg_metrics_reclaimed(struct bg_metrics *m, bool from_peer)
{
	if (m == NULL)
		return;
	if (from_peer)
		m->reclaimed_peer++;
	else
		m->reclaimed_own++;
}

void bg_metrics_lease_lapse(struct bg_metrics *m)
{
	if (m)
		m->lease_lapses++;
}

void bg_metrics_unknown_outcome(struct bg_metrics *m)
{
	if (m)
		m->unknown_outcomes++;
}

/* ---- pending entries (XPENDING on the control connection) ---- */

/* The millisecond part of a stream id "<ms>-<seq>", or 0 if malformed. */
static int64_t id_ms(const redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0)
		return 0;
	int64_t ms = 0;
	for (size_t i = 0; i < r->len && r->str[i] != '-'; i++) {
		if (r->str[i] < '0' || r->str[i] > '9' || ms > INT64_MAX / 10)
			return 0;
		ms = ms * 10 + (r->str[i] - '0');
	}
	return ms;
}

static uint64_t own_count(const redisReply *consumers, const char *me)
{
	if (consumers == NULL || consumers->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i < consumers->elements; i++) {
		const redisReply *c = consumers->element[i];
		if (c->type == REDIS_REPLY_ARRAY && c->elements == 2 &&
		    c->element[0]->type == REDIS_REPLY_STRING &&
		    c->element[1]->type == REDIS_REPLY_STRING &&
		    strcmp(c->element[0]->str, me) == 0)
			return strtoull(c->element[1]->str, NULL, 10);
	}
	return 0;
}

/* Replies may arrive NULL (connection lost) until the connection is freed:
 * the metrics must outlive the control connection (metrics.h). */
static void on_pel_summary(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pel_stat *p = priv;
	p->m->pel_calls--;
	if (r == NULL)
		return;
	p->known = r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		   r->element[0]->type == REDIS_REPLY_INTEGER &&
		   r->element[0]->integer >= 0;
	if (!p->known)
		return; /* e.g. NOGROUP before the group exists */
	p->count = (uint64_t)r->element[0]->integer;
	p->min_ms = p->count ? id_ms(r->element[1]) : 0;
	p->own = own_count(r->element[3], p->m->d->worker_id);
}

static void on_pel_own(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pel_stat *p = priv;
	p->m->pel_calls--;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return;
	const redisReply *e = r->elements ? r->element[0] : NULL;
	p->own_min_ms = e && e->type == REDIS_REPLY_ARRAY && e->elements >= 1
				? id_ms(e->element[0])
				: 0;
}

/* XINFO GROUPS <stream>: our group's `lag` (Redis 7; nil when Redis
 * cannot tell, e.g. after XDEL or XTRIM past the group). */
static void on_groups(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pel_stat *p = priv;
	p->m->pel_calls--;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return;
	p->lag_known = false;
	for (size_t g = 0; g < r->elements; g++) {
		const redisReply *e = r->element[g];
		if (e->type != REDIS_REPLY_ARRAY && e->type != 10 /* map */)
			continue;
		bool ours = false;
		const redisReply *lag = NULL;
		for (size_t k = 0; k + 1 < e->elements; k += 2) {
			const redisReply *key = e->element[k];
			const redisReply *v = e->element[k + 1];
			if (key->type != REDIS_REPLY_STRING)
				continue;
			if (strcmp(key->str, "name") == 0 &&
			    v->type == REDIS_REPLY_STRING &&
			    strcmp(v->str, p->m->d->group) == 0)
				ours = true;
			else if (strcmp(key->str, "lag") == 0)
				lag = v;
		}
		if (ours && lag && lag->type == REDIS_REPLY_INTEGER) {
			p->lag_known = true;
			p->lag = lag->integer;
		}
	}
}

static void pel_send(struct bg_metrics *m, int i, const char *const *args,
		     bg_rconn_reply_fn fn)
{
	if (bg_rconn_cmdv(m->d->ctl, fn, &m->pel[i], 0, args) == 0)
		m->pel_calls++;
}

/* A one-shot timer, re-armed: 5 s after a refresh was sent, 1 s while the
 * control connection is down or the last refresh is unanswered. */
static void pel_refresh(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_metrics *m = arg;
	struct bg_daemon *d = m->d;
	struct timeval tv = { 1, 0 };
	if (m->pel_calls == 0 && d->ctl != NULL && bg_rconn_ready(d->ctl)) {
		for (int i = 0; i < m->pel_n && i < d->n_streams; i++) {
			const char *s = d->streams[i];
			pel_send(m, i,
				 (const char *const[]){ "XPENDING", s, d->group,
							NULL },
				 on_pel_summary);
			pel_send(m, i,
				 (const char *const[]){ "XPENDING", s, d->group,
							"-", "+", "1",
							d->worker_id, NULL },
				 on_pel_own);
			if (i > 0) /* agent-type streams: the group's lag */
				pel_send(m, i,
					 (const char *const[]){
						 "XINFO", "GROUPS", s, NULL },
					 on_groups);
		}
		tv.tv_sec = PEL_REFRESH_S;
	}
	evtimer_add(m->pel_timer, &tv);
}

int bg_metrics_start(struct bg_daemon *d)
{
	struct bg_metrics *m = d->metrics;
	if (m == NULL || m->pel_timer)
		return 0;
	m->d = d;
	for (int i = 0; i < d->cfg->n_agent_types; i++)
		type_of(m, d->cfg->agent_types[i].name);
	m->pel = calloc((size_t)d->n_streams, sizeof(*m->pel));
	m->pel_timer = evtimer_new(d->base, pel_refresh, m);
	if (m->pel == NULL || m->pel_timer == NULL) {
		bg_metrics_stop(m);
		return -ENOMEM;
	}
	m->pel_n = d->n_streams;
	for (int i = 0; i < m->pel_n; i++)
		m->pel[i].m = m;
	struct timeval tv = { 1, 0 };
	evtimer_add(m->pel_timer, &tv);
	return 0;
}
