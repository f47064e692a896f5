/* client/cli/top_replay.c - `bygate top --replay`: the run an event log
 * tells, rebuilt event by event into top's frame (top_frame.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/top_frame.h"

#define MAX_TYPES 64
#define RUNS_KEPT 1000	 /* run times kept per agent type (p50/p99) */
#define ENDS_KEPT 4096	 /* end times kept per agent type (rates) */
#define FAILURES_KEPT 10 /* recent failures shown */

enum { WAITING = 1, RUNNING = 2 };

struct ptype {
	char name[129];
	int64_t waiting, running, done, failed;
	int64_t runs[RUNS_KEPT];
	int n_runs;
	int64_t ends[ENDS_KEPT];
	int n_ends;
};

struct top_replay {
	struct ptype types[MAX_TYPES];
	int n_types;
	json_t *execs;	  /* key -> {"state", "type", "started" event} */
	json_t *failures; /* the last FAILURES_KEPT */
	json_t *workers;  /* worker id -> true */
};

struct top_replay *top_replay_new(void)
{
	struct top_replay *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->execs = json_object();
	r->failures = json_array();
	r->workers = json_object();
	if (!r->execs || !r->failures || !r->workers) {
		top_replay_free(r);
		return NULL;
	}
	return r;
}

void top_replay_free(struct top_replay *r)
{
	if (r == NULL)
		return;
	json_decref(r->execs);
	json_decref(r->failures);
	json_decref(r->workers);
	free(r);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static int64_t num(const json_t *o, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(o, key));
}

/* The agent type's counters; the last slot takes every further name. */
static struct ptype *type_of(struct top_replay *r, const char *name)
{
	for (int i = 0; i < r->n_types; i++)
		if (!strcmp(r->types[i].name, name))
			return &r->types[i];
	if (r->n_types == MAX_TYPES)
		return &r->types[MAX_TYPES - 1];
	struct ptype *t = &r->types[r->n_types++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

static bool is_failure(const char *status)
{
	return !strncmp(status, "FAILED", 6) ||
	       !strncmp(status, "DEADLETTER", 10) || !strcmp(status, "TIMEOUT");
}

static void leave(struct ptype *t, int state)
{
	if (state == WAITING && t->waiting > 0)
		t->waiting--;
	if (state == RUNNING && t->running > 0)
		t->running--;
}

static void ended(struct top_replay *r, struct ptype *t, const json_t *ev)
{
	const char *status = str(ev, "status");
	t->done++;
	t->runs[t->n_runs++ % RUNS_KEPT] = num(ev, "run_ms");
	t->ends[t->n_ends++ % ENDS_KEPT] = num(ev, "ts_ms");
	if (!is_failure(status))
		return;
	t->failed++;
	json_t *f = json_pack(
		"{s:I,s:s,s:s,s:s,s:s}", "ts_ms", (json_int_t)num(ev, "ts_ms"),
		"agent_type", t->name, "message_id", str(ev, "message_id"),
		"status", status, "error",
		*str(ev, "error") ? str(ev, "error") : str(ev, "error_code"));
	if (f == NULL)
		return;
	json_array_insert_new(r->failures, 0, f);
	while (json_array_size(r->failures) > FAILURES_KEPT)
		json_array_remove(r->failures, FAILURES_KEPT);
}

void top_replay_take(struct top_replay *r, const json_t *ev)
{
	const char *name = str(ev, "event");
	char key[1100];
	if (*str(ev, "execution_id"))
		snprintf(key, sizeof(key), "%s", str(ev, "execution_id"));
	else
		snprintf(key, sizeof(key), "%s/%s", str(ev, "session_id"),
			 str(ev, "message_id"));
	if (*str(ev, "worker_id"))
		json_object_set_new(r->workers, str(ev, "worker_id"),
				    json_true());
	struct ptype *t = type_of(r, str(ev, "agent_type"));
	json_t *x = json_object_get(r->execs, key);
	int state = x ? (int)num(x, "state") : 0;
	if (!strcmp(name, "queued") || !strcmp(name, "retry")) {
		leave(t, state);
		t->waiting++;
		json_object_set_new(r->execs, key,
				    json_pack("{s:i}", "state", WAITING));
	} else if (!strcmp(name, "started")) {
		leave(t, state);
		t->running++;
		json_t *o =
			json_pack("{s:i,s:O}", "state", RUNNING, "started", ev);
		json_object_set_new(r->execs, key, o);
	} else if (!strcmp(name, "ended")) {
		leave(t, state);
		json_object_del(r->execs, key);
		ended(r, t, ev);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static json_t *quantile(const struct ptype *t, double q)
{
	int n = t->n_runs < RUNS_KEPT ? t->n_runs : RUNS_KEPT;
	if (n == 0)
		return json_null();
	int64_t v[RUNS_KEPT];
	memcpy(v, t->runs, (size_t)n * sizeof(v[0]));
	qsort(v, (size_t)n, sizeof(v[0]), cmp_i64);
	int i = (int)((double)n * q + 0.999999) - 1;
	return json_integer(v[i < 0 ? 0 : (i >= n ? n - 1 : i)]);
}

static double rate(const struct ptype *t, int64_t now_ms)
{
	int n = t->n_ends < ENDS_KEPT ? t->n_ends : ENDS_KEPT, c = 0;
	for (int i = 0; i < n; i++)
		if (t->ends[i] > now_ms - 1000 && t->ends[i] <= now_ms)
			c++;
	return (double)c;
}

json_t *top_replay_frame(const struct top_replay *r, int64_t now_ms)
{
	json_t *types = json_array(), *children = json_array(),
	       *workers = json_array();
	for (int i = 0; i < r->n_types; i++) {
		const struct ptype *t = &r->types[i];
		json_array_append_new(
			types,
			json_pack(
				"{s:s,s:n,s:n,s:n,s:I,s:n,s:n,s:I,s:f,s:o,"
				"s:o,s:I,s:I}",
				"agent_type", t->name, "length", "lag",
				"pending", "backlog", (json_int_t)t->waiting,
				"oldest_pending_age_ms", "consumers", "running",
				(json_int_t)t->running, "rate", rate(t, now_ms),
				"run_ms_p50", quantile(t, 0.50), "run_ms_p99",
				quantile(t, 0.99), "done", (json_int_t)t->done,
				"failed", (json_int_t)t->failed));
	}
	const char *k;
	json_t *x;
	json_object_foreach(r->execs, k, x) {
		const json_t *s = json_object_get(x, "started");
		if (s == NULL)
			continue;
		json_array_append_new(
			children,
			json_pack("{s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:I}",
				  "worker_id", str(s, "worker_id"), "slot",
				  (json_int_t)num(s, "slot"), "pid",
				  (json_int_t)num(s, "pid"), "state", "RUNNING",
				  "agent_type", str(s, "agent_type"),
				  "message_id", str(s, "message_id"),
				  "session_id", str(s, "session_id"),
				  "elapsed_ms",
				  (json_int_t)(now_ms - num(s, "ts_ms"))));
	}
	json_object_foreach(r->workers, k, x) {
		json_array_append_new(
			workers,
			json_pack("{s:s,s:n,s:n,s:n,s:n}", "worker_id", k,
				  "online", "lifecycle", "generation", "pool"));
	}
	return json_pack("{s:s,s:I,s:o,s:o,s:o,s:O}", "source", "replay",
			 "now_ms", (json_int_t)now_ms, "workers", workers,
			 "agent_types", types, "children", children, "failures",
			 r->failures);
}
