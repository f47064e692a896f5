/* supervisor/status.c - the /status document (status.h): the daemon's
 * pool, the jobs in its children and its per-agent-type counters, read
 * on the loop, nothing written. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/eventlog.h"
#include "supervisor/metrics_int.h"
#include "supervisor/status.h"

static void set_i(json_t *o, const char *key, int64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

static void set_s(json_t *o, const char *key, const char *v)
{
	json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static json_t *children(const struct bg_daemon *d)
{
	json_t *a = json_array();
	int64_t now = bg_mono_ms();
	for (const struct bg_job *t = d->all.next; a && t != &d->all;
	     t = t->next) {
		if (!bg_job_in_child(t))
			continue;
		json_t *o = json_object();
		set_i(o, "slot", t->run.slot);
		set_i(o, "pid", t->run.pid);
		set_s(o, "state", bg_job_state_name(t->state));
		set_s(o, "agent_type",
		      t->id.handler_type ? t->id.handler_type
					 : t->id.agent_type);
		set_s(o, "message_id", t->id.message_id);
		set_s(o, "session_id", t->id.session_id);
		set_s(o, "execution_id", t->id.execution_id);
		set_i(o, "attempt", t->run.attempt);
		set_s(o, "lane", t->run.lane);
		set_i(o, "elapsed_ms", now - t->run.started_ms);
		json_array_append_new(a, o);
	}
	return a;
}

/* The upper bound (ms) of the bucket holding quantile q of h; -1 when h
 * is empty, -2 beyond the last bucket. */
static int64_t quantile_ms(const struct bg_prom_hist *h, double q)
{
	if (h->count == 0)
		return -1;
	uint64_t want = (uint64_t)((double)h->count * q + 0.999999);
	uint64_t seen = 0;
	for (int i = 0; i < BG_PROM_NBUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want)
			return (int64_t)(bg_prom_buckets[i] * 1000.0 + 0.5);
	}
	return -2;
}

static void set_q(json_t *o, const char *key, int64_t ms)
{
	json_object_set_new(o, key, ms >= 0 ? json_integer(ms) : json_null());
}

static json_t *agent_types(const struct bg_daemon *d)
{
	json_t *a = json_array();
	const struct bg_metrics *m = d->metrics;
	int64_t now = bg_mono_ms();
	for (int i = 0; a && m && i < m->n_types; i++) {
		const struct type_stats *ts = &m->types[i];
		json_t *o = json_object(), *done = json_object();
		set_s(o, "agent_type", ts->name);
		for (int k = 0; k < N_OUTCOMES; k++)
			set_i(done, bg_metrics_outcomes[k],
			      (int64_t)ts->tasks[k]);
		json_object_set_new(o, "done", done);
		int running = 0, queued = 0;
		int64_t oldest = 0;
		for (const struct bg_job *t = d->all.next; t != &d->all;
		     t = t->next) {
			const char *ty = t->id.handler_type ? t->id.handler_type
							    : t->id.agent_type;
			if (ty == NULL || strcmp(ty, ts->name) != 0)
				continue;
			if (bg_job_in_child(t)) {
				running++;
				if (now - t->run.started_ms > oldest)
					oldest = now - t->run.started_ms;
			} else if (t->state == BG_JOB_QUEUED ||
				   t->state == BG_JOB_BACKOFF) {
				queued++;
			}
		}
		set_i(o, "running", running);
		set_i(o, "queued_here", queued);
		set_i(o, "longest_running_ms", oldest);
		set_q(o, "run_ms_p50", quantile_ms(&ts->run, 0.50));
		set_q(o, "run_ms_p99", quantile_ms(&ts->run, 0.99));
		json_array_append_new(a, o);
	}
	return a;
}

int bg_status_render(const struct bg_daemon *d, struct bg_buf *out)
{
	json_t *o = json_object(), *pool = json_object();
	if (o == NULL || pool == NULL) {
		json_decref(o);
		json_decref(pool);
		return -ENOMEM;
	}
	set_s(o, "worker_id", d->worker_id);
	set_s(o, "lifecycle", d->lifecycle[0] ? d->lifecycle : "active");
	json_object_set_new(o, "draining", json_boolean(d->draining));
	set_i(o, "uptime_ms", bg_mono_ms() - d->started_mono_ms);
	set_i(o, "now_ms", bg_now_ms());
	if (d->pool) {
		set_i(pool, "size", bg_pool_size(d->pool));
		set_i(pool, "alive", bg_pool_alive_count(d->pool));
		set_i(pool, "idle", bg_pool_idle_count(d->pool));
		set_i(pool, "busy", bg_pool_busy_count(d->pool));
		set_i(pool, "generation", bg_pool_generation(d->pool));
	}
	json_object_set_new(o, "pool", pool);
	set_i(o, "tasks", d->n_tasks);
	set_i(o, "queued", d->n_queued);
	set_i(o, "completed", (int64_t)d->n_completed);
	set_i(o, "failed", (int64_t)d->n_failed);
	set_i(o, "retries", (int64_t)d->n_retries);
	set_i(o, "deadlettered", (int64_t)d->n_deadlettered);
	set_i(o, "eventlog_errors", (int64_t)bg_eventlog_errors(d));
	json_object_set_new(o, "children", children(d));
	json_object_set_new(o, "agent_types", agent_types(d));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int rc = s ? bg_buf_puts(out, s) : -ENOMEM;
	if (rc == 0)
		rc = bg_buf_append(out, "\n", 1);
	free(s);
	return rc;
}
