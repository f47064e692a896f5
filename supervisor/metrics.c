/* supervisor/metrics.c - bygated's counters (metrics.h hooks), the
 * pending-entries gauges refreshed every 5 s on the control connection, and
 * the /metrics page: counters from here, gauges read from the daemon at
 * render time (pool, LMDB, Redis connections, lease), Prometheus text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/metrics.h"
#include "supervisor/promtext.h"

#define PEL_REFRESH_S 5
/* Distinct agent_type label values; the agent type of a task routed to the
 * worker stream comes from the entry (untrusted), so the label set is
 * bounded: further names, and names over 128 bytes, count as "_other". */
#define MAX_TYPES 32
#define TYPE_NAME_MAX 128

static const char *const outcomes[] = { "completed",	"failed",
					"cancelled",	"deadlettered",
					"acked",	"suspended",
					"other" };
#define N_OUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))

static const char *const exit_reasons[] = { "crash",	"timeout", "cancel",
					    "recycle",	"protocol", "shutdown",
					    "fatal",	"other" };
#define N_REASONS (sizeof(exit_reasons) / sizeof(exit_reasons[0]))

struct type_stats {
	char name[TYPE_NAME_MAX + 1];
	uint64_t tasks[N_OUTCOMES];
	struct bg_prom_hist run;
};

/* One stream's pending entries list: the group's (XPENDING summary) and
 * this worker's (count from the summary, oldest from XPENDING - + 1 W). */
struct pel_stat {
	struct bg_metrics *m;
	bool known; /* a summary reply was understood */
	uint64_t count, own;
	int64_t min_ms, own_min_ms; /* ms part of the oldest id, 0 = none */
};

struct bg_metrics {
	struct type_stats types[MAX_TYPES + 1]; /* [MAX_TYPES] = "_other" */
	int n_types;
	struct bg_prom_hist queue_wait;
	uint64_t child_exits[N_REASONS];
	uint64_t ring_stalls, retries, reclaimed_own, reclaimed_peer;
	uint64_t lease_lapses, unknown_outcomes;

	struct bg_daemon *d; /* set by bg_metrics_start */
	struct event *pel_timer;
	struct pel_stat *pel; /* [d->n_streams] */
	int pel_n;
	int pel_calls; /* XPENDING replies outstanding */
};

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
	size_t o = label_index(outcomes, N_OUTCOMES, outcome);
	t->tasks[o]++;
	if (strcmp(outcomes[o], "acked") == 0 ||
	    strcmp(outcomes[o], "deadlettered") == 0)
		return;
	bg_prom_hist_observe(&t->run, (double)run_ms / 1000.0);
	bg_prom_hist_observe(&m->queue_wait, (double)queue_wait_ms / 1000.0);
}

void bg_metrics_child_exit(struct bg_metrics *m, const char *reason)
{
	if (m)
		m->child_exits[label_index(exit_reasons, N_REASONS, reason)]++;
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
				 (const char *const[]){ "XPENDING", s,
							d->group, NULL },
				 on_pel_summary);
			pel_send(m, i,
				 (const char *const[]){ "XPENDING", s,
							d->group, "-", "+",
							"1", d->worker_id,
							NULL },
				 on_pel_own);
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

/* ---- rendering ---- */

struct scalar {
	const char *name, *type, *help;
	double v;
};

static int put_scalars(struct bg_buf *out, const struct scalar *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bg_prom_family(out, s[i].name, s[i].type, s[i].help) ||
		    bg_prom_sample(out, s[i].name, NULL, 0, s[i].v))
			return -ENOMEM;
	return 0;
}


/* One family with one label: values[i] is the label value of v[i]. */
static int put_labeled(struct bg_buf *out, const struct scalar *f,
		       const char *label, const char *const *values,
		       const double *v, size_t n)
{
	if (bg_prom_family(out, f->name, f->type, f->help))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct bg_prom_label l = { label, values[i] };
		if (bg_prom_sample(out, f->name, &l, 1, v[i]))
			return -ENOMEM;
	}
	return 0;
}

static bool type_used(const struct type_stats *t)
{
	for (size_t o = 0; o < N_OUTCOMES; o++)
		if (t->tasks[o])
			return true;
	return false;
}

/* The agent_type label slots: the named types, then "_other" once used. */
static const struct type_stats *slot(const struct bg_metrics *m, int i)
{
	if (i < m->n_types)
		return &m->types[i];
	if (i == m->n_types && type_used(&m->types[MAX_TYPES]))
		return &m->types[MAX_TYPES];
	return NULL;
}

static int put_tasks(struct bg_buf *out, const struct bg_metrics *m)
{
	const struct type_stats *t;
	if (bg_prom_family(out, "bygate_tasks_total", "counter",
			   "Finishes applied in Redis by agent type and outcome "
			   "(deadlettered: written to the dead-letter stream; "
			   "acked: terminal replay or ignored command; "
			   "suspended: waiting for a user or sub-agents)."))
		return -ENOMEM;
	for (int i = 0; (t = slot(m, i)) != NULL; i++)
		for (size_t o = 0; o < N_OUTCOMES; o++) {
			struct bg_prom_label l[2] = {
				{ "agent_type", t->name },
				{ "outcome", outcomes[o] },
			};
			if (bg_prom_sample(out, "bygate_tasks_total", l, 2,
					   (double)t->tasks[o]))
				return -ENOMEM;
		}
	if (bg_prom_family(out, "bygate_task_duration_seconds", "histogram",
			   "Run time of finished attempts, from dispatch to a "
			   "child until the result, by agent type."))
		return -ENOMEM;
	for (int i = 0; (t = slot(m, i)) != NULL; i++) {
		struct bg_prom_label l = { "agent_type", t->name };
		if (bg_prom_hist_write(out, "bygate_task_duration_seconds", &l,
				       1, &t->run))
			return -ENOMEM;
	}
	if (bg_prom_family(out, "bygate_queue_wait_seconds", "histogram",
			   "Time from reading an entry until a child took it.") ||
	    bg_prom_hist_write(out, "bygate_queue_wait_seconds", NULL, 0,
			       &m->queue_wait))
		return -ENOMEM;
	return 0;
}

static int put_events(struct bg_buf *out, const struct bg_metrics *m)
{
	static const struct scalar exits = {
		"bygate_child_exits_total", "counter",
		"Child processes that ended, by reason (crash, timeout, "
		"cancel, recycle, protocol violation, shutdown, fatal).", 0
	};
	static const struct scalar reclaimed = {
		"bygate_reclaimed_total", "counter",
		"Pending entries fetched again by recovery: own (this "
		"worker's pending list) or peer (a dead peer's, after its "
		"lease expired).", 0
	};
	double v[N_REASONS];
	for (size_t i = 0; i < N_REASONS; i++)
		v[i] = (double)m->child_exits[i];
	if (put_labeled(out, &exits, "reason", exit_reasons, v, N_REASONS))
		return -ENOMEM;
	static const char *const from[] = { "own", "peer" };
	double r[2] = { (double)m->reclaimed_own, (double)m->reclaimed_peer };
	return put_labeled(out, &reclaimed, "from", from, r, 2);
}

static int put_daemon(struct bg_buf *out, const struct bg_metrics *m,
		      const struct bg_daemon *d)
{
	const struct scalar s[] = {
		{ "bygate_up", "gauge", "1 while bygated answers.", 1 },
		{ "bygate_uptime_seconds", "gauge",
		  "Seconds since bygated started.",
		  (double)(bg_mono_ms() - d->started_mono_ms) / 1000.0 },
		{ "bygate_ring_full_stalls_total", "counter",
		  "Times a child's down ring was full when a task or record "
		  "had to go.",
		  (double)m->ring_stalls },
		{ "bygate_task_retries_total", "counter",
		  "Attempts retried after a child death, a timeout or a "
		  "retryable handler error (agent_types.max_attempts).",
		  (double)m->retries },
		{ "bygate_lease_lapses_total", "counter",
		  "Heartbeats that found this worker's lease key gone (it is "
		  "re-created; entries in flight are verified before their "
		  "finish).",
		  (double)m->lease_lapses },
		{ "bygate_finish_unknown_outcomes_total", "counter",
		  "Finish transactions whose EXEC reply was lost (resolved "
		  "by XPENDING after the reconnect).",
		  (double)m->unknown_outcomes },
		{ "bygate_finish_retries_total", "counter",
		  "Finish transactions refused by Redis (EXECABORT, OOM) and "
		  "retried with back-off.",
		  (double)d->n_finish_retries },
		{ "bygate_entries_lost_to_peer_total", "counter",
		  "Entries found claimed by another worker after a lease "
		  "lapse: dropped here, never finished twice.",
		  (double)d->n_lost_to_peer },
		{ "bygate_journal_replays_total", "counter",
		  "Journaled finishes re-sent by recovery.",
		  (double)d->n_recovered_finishes },
		{ "bygate_lmdb_commit_errors_total", "counter",
		  "Failed LMDB commits (the buffer is kept and applied "
		  "again).",
		  (double)d->state_errors },
		{ "bygate_tasks_in_flight", "gauge",
		  "Entries held by this host, from pickup until their finish "
		  "is applied.",
		  (double)d->n_tasks },
		{ "bygate_tasks_queued", "gauge",
		  "Entries waiting for an idle child.", (double)d->n_queued },
		{ "bygate_tasks_finishing", "gauge",
		  "Entries whose finish transaction is not confirmed yet.",
		  (double)d->n_finishing },
		{ "bygate_lease_held", "gauge",
		  "1 while this worker holds its online lease.",
		  bg_lease_held(d) ? 1 : 0 },
		{ "bygate_draining", "gauge",
		  "1 once a drain (SIGTERM) or stop began.",
		  d->draining || d->stopping ? 1 : 0 },
	};
	return put_scalars(out, s, sizeof(s) / sizeof(s[0]));
}

static int put_pool(struct bg_buf *out, const struct bg_daemon *d)
{
	if (d->pool == NULL)
		return 0;
	struct bg_pool_stats ps;
	bg_pool_get_stats(d->pool, &ps);
	const struct scalar s[] = {
		{ "bygate_pool_size", "gauge", "Configured child processes.",
		  bg_pool_size(d->pool) },
		{ "bygate_crash_storm_breaker_open", "gauge",
		  "1 while the crash-storm breaker stops respawns and reads.",
		  bg_pool_breaker_open(d->pool) ? 1 : 0 },
		{ "bygate_crash_storms_total", "counter",
		  "Times the crash-storm breaker opened.",
		  (double)ps.breaker_opened },
		{ "bygate_children_spawned_total", "counter",
		  "Child processes started.", (double)ps.spawned },
		{ "bygate_tasks_in_children", "gauge",
		  "Tasks running in children (several per child for exec agent "
		  "types with max_inflight > 1).",
		  (double)bg_pool_task_count(d->pool) },
		{ "bygate_read_capacity", "gauge",
		  "Entries the next read may fetch: free task places plus the "
		  "prefetch.",
		  (double)bg_consume_capacity(d) },
	};
	static const struct scalar children = {
		"bygate_pool_children", "gauge",
		"Child processes alive, and of those busy with a task or idle.",
		0
	};
	static const char *const states[] = { "alive", "busy", "idle" };
	double v[3] = { bg_pool_alive_count(d->pool),
			bg_pool_busy_count(d->pool),
			bg_pool_idle_count(d->pool) };
	if (put_scalars(out, s, sizeof(s) / sizeof(s[0])))
		return -ENOMEM;
	return put_labeled(out, &children, "state", states, v, 3);
}

static int put_state(struct bg_buf *out, const struct bg_daemon *d)
{
	struct bg_state_stats st;
	if (d->state == NULL || bg_state_get_stats(d->state, &st) != 0)
		return 0;
	const struct scalar s[] = {
		{ "bygate_journal_depth", "gauge",
		  "Finishes journaled in LMDB and not yet confirmed applied.",
		  (double)st.entries[BG_DB_JOURNAL] },
		{ "bygate_lmdb_map_used_bytes", "gauge",
		  "Bytes of the LMDB map in use (pages up to the last used).",
		  (double)st.map_used },
		{ "bygate_lmdb_map_size_bytes", "gauge",
		  "Current LMDB map size (doubles on MDB_MAP_FULL, up to "
		  "8 GiB).",
		  (double)st.map_size },
		{ "bygate_lmdb_stale_readers", "gauge",
		  "LMDB reader slots held by dead processes (cleared every "
		  "30 s).",
		  st.stale_readers },
	};
	return put_scalars(out, s, sizeof(s) / sizeof(s[0]));
}

static int put_redis(struct bg_buf *out, const struct bg_daemon *d)
{
	static const struct scalar f[] = {
		{ "bygate_redis_up", "gauge",
		  "1 while the connection is set up and usable.", 0 },
		{ "bygate_redis_reconnects_total", "counter",
		  "Connections re-established after a loss or an expired "
		  "request deadline.",
		  0 },
		{ "bygate_redis_pending_requests", "gauge",
		  "Requests sent and not answered yet.", 0 },
	};
	struct bg_rconn *conns[3] = { d->rd, d->wr, d->ctl };
	const char *roles[3];
	double v[3][3];
	size_t n = 0;
	for (size_t i = 0; i < 3; i++) {
		if (conns[i] == NULL)
			continue;
		roles[n] = bg_rconn_role(conns[i]);
		v[0][n] = bg_rconn_ready(conns[i]) ? 1 : 0;
		v[1][n] = (double)bg_rconn_reconnects(conns[i]);
		v[2][n] = (double)bg_rconn_pending(conns[i]);
		n++;
	}
	for (size_t k = 0; k < 3; k++)
		if (put_labeled(out, &f[k], "conn", roles, v[k], n))
			return -ENOMEM;
	return 0;
}

static double pel_value(const struct pel_stat *p, bool worker, bool age,
			int64_t now)
{
	if (!age)
		return (double)(worker ? p->own : p->count);
	int64_t ms = worker ? (p->own ? p->own_min_ms : 0)
			    : (p->count ? p->min_ms : 0);
	return ms > 0 && now > ms ? (double)(now - ms) / 1000.0 : 0;
}

static int put_pel_family(struct bg_buf *out, const struct bg_metrics *m,
			  const struct bg_daemon *d, const struct scalar *f,
			  bool age)
{
	int64_t now = bg_redis_now_ms(d);
	if (bg_prom_family(out, f->name, f->type, f->help))
		return -ENOMEM;
	for (int i = 0; i < m->pel_n && i < d->n_streams; i++) {
		if (!m->pel[i].known)
			continue;
		for (int w = 0; w < 2; w++) {
			struct bg_prom_label l[2] = {
				{ "stream", d->streams[i] },
				{ "scope", w ? "worker" : "group" },
			};
			double v = pel_value(&m->pel[i], w, age, now);
			if (bg_prom_sample(out, f->name, l, 2, v))
				return -ENOMEM;
		}
	}
	return 0;
}

static int put_pel(struct bg_buf *out, const struct bg_metrics *m,
		   const struct bg_daemon *d)
{
	static const struct scalar count = {
		"bygate_pending_entries", "gauge",
		"Pending entries (delivered, not acknowledged) per stream, of "
		"the consumer group (scope group) and of this worker (scope "
		"worker); refreshed every 5 s.",
		0
	};
	static const struct scalar age = {
		"bygate_oldest_pending_age_seconds", "gauge",
		"Age of the oldest pending entry by its id, in Redis time, per "
		"stream and scope; 0 when none.",
		0
	};
	if (m->pel == NULL)
		return 0;
	if (put_pel_family(out, m, d, &count, false))
		return -ENOMEM;
	return put_pel_family(out, m, d, &age, true);
}

int bg_metrics_render(const struct bg_daemon *d, struct bg_buf *out)
{
	static const struct bg_metrics none;
	const struct bg_metrics *m = d->metrics ? d->metrics : &none;
	if (put_daemon(out, m, d) || put_tasks(out, m) || put_events(out, m) ||
	    put_pool(out, d) || put_state(out, d) || put_redis(out, d) ||
	    put_pel(out, m, d))
		return -ENOMEM;
	return 0;
}
