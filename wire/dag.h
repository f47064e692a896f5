/* wire/dag.h - the task graph of a bygate.dag workflow (issue 13 item 2,
 * docs/workflows.md "Task graph spec"): the spec parser and validator, the
 * run state (which task may start now, what a success, a failure or a retry
 * does to the rest) and its JSON form, kept across crashes. Pure data: no
 * I/O, no clock (the caller passes now_ms), no logging.
 *
 * Memory: a struct bg_dag owns everything it points to (jansson values
 * included); strings and values read from it are valid until bg_dag_free. */
#ifndef BG_WIRE_DAG_H
#define BG_WIRE_DAG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of a spec (the validator refuses what exceeds them). */
#define BG_DAG_MAX_SPEC_BYTES (4 * 1024 * 1024) /* spec JSON text */
#define BG_DAG_MAX_TASKS 1000			/* tasks in one graph */
#define BG_DAG_MAX_ID 128	       /* bytes of a task id or agent type */
#define BG_DAG_MAX_RETRIES 10	       /* "retries": 0..10, default 0 */
#define BG_DAG_MAX_TIMEOUT_MS 86400000 /* "timeout_ms": 0 (none)..24 h */
#define BG_DAG_MAX_PARALLEL 1000 /* "max_parallel": 1..1000, default: all */

enum bg_dag_status {
	BG_DAG_PENDING, /* waiting for its dependencies or a free slot */
	BG_DAG_RUNNING,
	BG_DAG_DONE,
	BG_DAG_FAILED,	/* failed with no retry left */
	BG_DAG_SKIPPED, /* a (transitive) dependency FAILED */
};

/* One task. Read-only to callers; changed only by the bg_dag_* calls. */
struct bg_dag_task {
	const char *id;
	const char *agent;
	json_t *content; /* as in the spec; NULL when absent */
	json_t *context; /* object or NULL */
	size_t *deps;	 /* indexes of depends_on, in spec order */
	size_t ndeps;
	int retries;	    /* retries allowed after the first attempt */
	int64_t timeout_ms; /* 0 = none */
	/* run state */
	enum bg_dag_status status;
	json_t *output;	     /* DONE: the task's output; else NULL */
	char *error;	     /* last failure, or the skip reason; or NULL */
	int64_t started_at;  /* ms since the epoch of the last start; 0 = not */
	int64_t finished_at; /* 0 while PENDING or RUNNING */
	int retry_count;     /* failures that were retried */
};

/* A graph and its run. tasks[] is in the spec's order, which is the order
 * of bg_dag_ready and of the result. */
struct bg_dag {
	struct bg_dag_task *tasks;
	size_t ntasks;
	int max_parallel; /* BG_DAG_MAX_PARALLEL when the spec has none */
	json_t *context;  /* the spec's top-level context (object) or NULL */
	char *run_id;
	int64_t started_at;  /* bg_dag_begin's now_ms */
	int64_t finished_at; /* when the last task ended; 0 until then */
	json_t *spec;	     /* the validated spec (private) */
};

const char *bg_dag_status_name(enum bg_dag_status s); /* "PENDING", ... */

/* Parse and validate spec[0..len). On success *out is a new graph with every
 * task PENDING and run_id copied (NULL = ""). On refusal, -EINVAL (or -E2BIG
 * for a size limit) and a one-line reason in err naming the task; -ENOMEM. */
int bg_dag_parse(const char *spec, size_t len, const char *run_id,
		 struct bg_dag **out, char *err, size_t errlen);

void bg_dag_free(struct bg_dag *d);

/* Index of task `id` in *idx. 0 or -ENOENT. */
int bg_dag_find(const struct bg_dag *d, const char *id, size_t *idx);

/* Record the run's start (the origin of duration_ms). */
void bg_dag_begin(struct bg_dag *d, int64_t now_ms);

/* Store in idx[] (at most cap) the tasks that may start now: PENDING with
 * every dependency DONE, in spec order, no more than max_parallel minus the
 * RUNNING ones. Returns how many were stored. */
size_t bg_dag_ready(const struct bg_dag *d, size_t *idx, size_t cap);

/* Task i starts (PENDING -> RUNNING). -EINVAL when it is not ready, -EBUSY
 * when max_parallel tasks already run. */
int bg_dag_start(struct bg_dag *d, size_t i, int64_t now_ms);

/* Task i succeeded (RUNNING -> DONE) with output (any JSON value, NULL =
 * null; a new reference is taken). 0, -EINVAL (not RUNNING), -ENOMEM. */
int bg_dag_done(struct bg_dag *d, size_t i, json_t *output, int64_t now_ms);

/* Set the output of DONE task i (a new reference is taken; NULL = null):
 * a run state loaded without its outputs gets them back. 0, -EINVAL (not
 * DONE). */
int bg_dag_set_output(struct bg_dag *d, size_t i, json_t *output);

/* Task i failed with the reason `error` (RUNNING -> ...). With a retry left
 * it goes back to PENDING and retry_count grows by one; otherwise it is
 * FAILED and every PENDING task depending on it, directly or not, becomes
 * SKIPPED with error 'dependency "<i's id>" failed'. Independent tasks are
 * untouched. 0, -EINVAL (not RUNNING), -ENOMEM. */
int bg_dag_fail(struct bg_dag *d, size_t i, const char *error, int64_t now_ms);

/* True when no task is PENDING or RUNNING. */
bool bg_dag_finished(const struct bg_dag *d);

/* The result (issue 13 item 2): {run_id, total, done, failed, skipped,
 * duration_ms, tasks: [{task_id, status, agent, output, error, started_at,
 * finished_at, retry_count}]}, statuses as bg_dag_status_name, times in ms
 * since the epoch or null, duration_ms from bg_dag_begin to the last task's
 * end (0 while unfinished). *out is a new reference. 0 or -ENOMEM. */
int bg_dag_result(const struct bg_dag *d, json_t **out);

/* The extra_payload of task i: {"_dep_<id>": output} for each dependency,
 * in depends_on order (agentos's merge of dependency outputs). */
int bg_dag_extra_payload(const struct bg_dag *d, size_t i, json_t **out);

/* The whole graph and run state as one JSON value (a new reference), and
 * back: bg_dag_load(bg_dag_save(d)) behaves as d and saves to the same JSON
 * text. bg_dag_load validates like bg_dag_parse plus the consistency of the
 * statuses (-EINVAL with a reason in err). */
int bg_dag_save(const struct bg_dag *d, json_t **out);
int bg_dag_load(const json_t *saved, struct bg_dag **out, char *err,
		size_t errlen);

#endif
