/* supervisor/metrics_page.c - the /metrics page (Prometheus text format
 * 0.0.4): the counters of metrics.c, and gauges read from the daemon at
 * render time (pool, LMDB, Redis connections, pending lists, lease,
 * read capacity). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/gate.h"
#include "supervisor/history.h"
#include "supervisor/metrics.h"
#include "supervisor/metrics_int.h"
#include "supervisor/promtext.h"
#include "supervisor/schedule.h"
#include "supervisor/trace.h"
#include "supervisor/triggers.h"

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
				{ "outcome", bg_metrics_outcomes[o] },
			};
			if (bg_prom_sample(out, "bygate_tasks_total", l, 2,
					   (double)t->tasks[o]))
				return -ENOMEM;
		}
	if (bg_prom_family(out, "bygate_idempotent_duplicates_total", "counter",
			   "Entries acknowledged without running because "
			   "their idempotency key was first used by another "
			   "message or entry, by agent type."))
		return -ENOMEM;
	for (int i = 0; (t = slot(m, i)) != NULL; i++) {
		struct bg_prom_label l = { "agent_type", t->name };
		if (bg_prom_sample(out, "bygate_idempotent_duplicates_total",
				   &l, 1, (double)t->idem_duplicates))
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
	if (bg_prom_family(
		    out, "bygate_queue_wait_seconds", "histogram",
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
		"cancel, recycle, protocol violation, shutdown, fatal).",
		0
	};
	static const struct scalar reclaimed = {
		"bygate_reclaimed_total", "counter",
		"Pending entries fetched again by recovery: own (this "
		"worker's pending list) or peer (a dead peer's, after its "
		"lease expired).",
		0
	};
	double v[N_REASONS];
	for (size_t i = 0; i < N_REASONS; i++)
		v[i] = (double)m->child_exits[i];
	if (put_labeled(out, &exits, "reason", bg_metrics_exit_reasons, v,
			N_REASONS))
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
		  d->lease_state == BG_LEASE_HELD ? 1 : 0 },
		{ "bygate_draining", "gauge",
		  "1 once a drain (SIGTERM) or stop began.",
		  d->draining || d->stopping ? 1 : 0 },
		{ "bygate_trace_spans_written_total", "counter",
		  "Trace spans sent to Redis (WIRE 9.2).",
		  (double)bg_trace_stats(d).spans_written },
		{ "bygate_trace_spans_dropped_total", "counter",
		  "Trace spans not written: not sampled, over "
		  "trace.max_spans_per_trace, or lost with the connection.",
		  (double)bg_trace_stats(d).spans_dropped },
		{ "bygate_metrics_history_collector", "gauge",
		  "1 while this worker holds the fleet's metrics-history "
		  "lock (WIRE 9.3).",
		  bg_history_holder(d) ? 1 : 0 },
	};
	return put_scalars(out, s, sizeof(s) / sizeof(s[0]));
}

/* Seconds the longest-running task has run in its child (0 = none). */
static double oldest_running_s(const struct bg_daemon *d)
{
	int64_t now = bg_mono_ms(), oldest = 0;
	for (const struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (bg_job_in_child(t) && t->run.started_ms > 0 &&
		    now - t->run.started_ms > oldest)
			oldest = now - t->run.started_ms;
	return (double)oldest / 1000.0;
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
		{ "bygate_oldest_running_task_age_seconds", "gauge",
		  "How long the longest-running task has been running in its "
		  "child (this attempt); 0 when none runs. A value near an "
		  "agent type's timeout_ms means hung handlers.",
		  oldest_running_s(d) },
		{ "bygate_read_capacity", "gauge",
		  "Entries the next read may fetch: free task places plus the "
		  "prefetch.",
		  (double)bg_schedule_capacity(d) },
		{ "bygate_read_bytes_held", "gauge",
		  "Bytes of entries read and not yet handed to a child "
		  "(bounded by worker.read_budget_bytes plus one entry).",
		  (double)d->read_bytes_held },
		{ "bygate_read_budget_bytes", "gauge",
		  "worker.read_budget_bytes.",
		  (double)d->cfg->read_budget_bytes },
		{ "bygate_entries_deferred", "gauge",
		  "Entries read past the budget, pending here and waiting to be "
		  "fetched again.",
		  (double)d->n_deferred },
		{ "bygate_entries_deferred_total", "counter",
		  "Entries read past the budget and fetched again later.",
		  (double)d->n_deferred_total },
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

/* ---- lanes (schedule.c, docs/scheduling.md) ---- */

struct lane_page {
	struct bg_buf *out;
	int which; /* 0 running, 1 queued, 2 started, 3 wait */
	int rc;
};

static void put_lane(void *ctx, const char *lane, int running, int queued,
		     uint64_t started, double wait_s)
{
	struct lane_page *p = ctx;
	static const char *const names[] = { "bygate_lane_running",
					     "bygate_lane_queued",
					     "bygate_lane_started_total",
					     "bygate_lane_wait_seconds_total" };
	double v = p->which == 0   ? running
		   : p->which == 1 ? queued
		   : p->which == 2 ? (double)started
				   : wait_s;
	struct bg_prom_label l = { "lane", lane };
	if (p->rc == 0)
		p->rc = bg_prom_sample(p->out, names[p->which], &l, 1, v);
}

static int put_lanes(struct bg_buf *out, const struct bg_daemon *d)
{
	static const struct scalar fams[] = {
		{ "bygate_lane_running", "gauge",
		  "Tasks of the lane running in children here (lane \"\" is "
		  "the default lane).",
		  0 },
		{ "bygate_lane_queued", "gauge",
		  "Tasks of the lane taken by this worker and waiting for a "
		  "child (the fleet's backlog waits in the ready set).",
		  0 },
		{ "bygate_lane_started_total", "counter",
		  "Tasks of the lane started here.", 0 },
		{ "bygate_lane_wait_seconds_total", "counter",
		  "Seconds the lane's tasks started here waited, from their "
		  "send to their start (divided by started_total: the mean "
		  "wait).",
		  0 },
	};
	for (int i = 0; i < 4; i++) {
		struct lane_page p = { out, i, 0 };
		if (bg_prom_family(out, fams[i].name, fams[i].type,
				   fams[i].help))
			return -ENOMEM;
		bg_schedule_lanes(d, put_lane, &p);
		if (p.rc)
			return -ENOMEM;
	}
	return 0;
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
	static const struct scalar lag = {
		"bygate_consumer_group_lag", "gauge",
		"Entries of an agent type's stream the consumer group has not "
		"read yet (XINFO GROUPS lag, Redis 7; absent when Redis cannot "
		"tell); refreshed every 5 s.",
		0
	};
	static const struct scalar unserved = {
		"bygate_agent_type_unserved", "gauge",
		"1 while an agent type's handler cannot start here (it is out "
		"of routing and not read; /readyz names it).",
		0
	};
	if (bg_prom_family(out, unserved.name, unserved.type, unserved.help))
		return -ENOMEM;
	for (int i = 0; i < d->cfg->n_agent_types; i++) {
		struct bg_prom_label l = { "agent_type",
					   d->cfg->agent_types[i].name };
		if (bg_prom_sample(out, unserved.name, &l, 1,
				   bg_control_unserved(d, i) ? 1 : 0))
			return -ENOMEM;
	}
	if (m->pel == NULL)
		return 0;
	if (put_pel_family(out, m, d, &count, false) ||
	    put_pel_family(out, m, d, &age, true) ||
	    bg_prom_family(out, lag.name, lag.type, lag.help))
		return -ENOMEM;
	for (int i = 1; i < m->pel_n && i < d->n_streams; i++) {
		if (!m->pel[i].lag_known || i > d->cfg->n_agent_types)
			continue;
		struct bg_prom_label l = { "agent_type",
					   d->cfg->agent_types[i - 1].name };
		if (bg_prom_sample(out, lag.name, &l, 1, (double)m->pel[i].lag))
			return -ENOMEM;
	}
	return 0;
}

/* Starts held back by the fleet limits (gate.h), by agent type. */
static int put_gate(struct bg_buf *out, const struct bg_daemon *d)
{
	static const struct scalar f[2] = {
		{ "bygate_rate_limit_waits_total", "counter",
		  "Start requests refused by an agent type's or lane's "
		  "fleet rate_limit (the task waits and asks again).",
		  0 },
		{ "bygate_fleet_cap_waits_total", "counter",
		  "Start requests refused by a full fleet_max_running of "
		  "an agent type or lane (the task waits and asks again).",
		  0 },
	};
	struct bg_gate_waits w;
	for (int k = 0; k < 2; k++) {
		if (bg_prom_family(out, f[k].name, f[k].type, f[k].help))
			return -ENOMEM;
		for (int i = 0; bg_gate_waits(d, i, &w); i++) {
			struct bg_prom_label l = { "agent_type", w.agent_type };
			if (bg_prom_sample(out, f[k].name, &l, 1,
					   (double)(k ? w.cap_waits
						      : w.rate_waits)))
				return -ENOMEM;
		}
	}
	const struct scalar places = {
		"bygate_fleet_places", "gauge",
		"Fleet places (fleet_max_running) held or asked for by this "
		"worker.",
		(double)bg_gate_places(d)
	};
	return put_scalars(out, &places, 1);
}

int bg_metrics_render(const struct bg_daemon *d, struct bg_buf *out)
{
	static const struct bg_metrics none;
	const struct bg_metrics *m = d->metrics ? d->metrics : &none;
	if (put_daemon(out, m, d) || put_tasks(out, m) || put_events(out, m) ||
	    put_pool(out, d) || put_lanes(out, d) || put_state(out, d) ||
	    put_redis(out, d) || put_pel(out, m, d) || put_gate(out, d) ||
	    bg_triggers_metrics(out, d))
		return -ENOMEM;
	return 0;
}
