/* workflows/dag_run.c - bygate.dag: a task graph run across the fleet
 * (issue 13 item 2, docs/workflows.md). The graph and its run state are
 * wire/dag.c's; this file runs them with the plugin SDK: each task is a
 * call_agent waiting for its reply, each callback one step.
 *
 * Kept in session kv (wf.h), written in the finish of the run that
 * changed them:
 *   bygate.wf/<exec>/spec       the validated spec (once)
 *   bygate.wf/<exec>/state      the run state without outputs, plus the
 *                               call in flight of each RUNNING task
 *   bygate.wf/<exec>/out/<id>   the output of task <id> (once, when DONE)
 * so a step costs the state's size, not the outputs'. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/dag.h"
#include "workflows/wf.h"

#define KIND "dag"

struct run {
	struct bg_ctx *ctx;
	const char *exec_id;
	struct bg_dag *dag;
	json_t *calls; /* task id -> its last call {"tag", "m"} */
	json_int_t seq;
	/* before this step, to tell what changed */
	enum bg_dag_status *was;
	int *was_retries;
	bool *have_output; /* the output of DONE task i is in memory */
	char *caller;	   /* the tag of the call that started it, or NULL */
	int started;	   /* calls this run started (WF_MAX_CALLS_PER_RUN) */
	bool more;	   /* ready tasks left for the next run */
};

static void run_free(struct run *r)
{
	bg_dag_free(r->dag);
	json_decref(r->calls);
	free(r->was);
	free(r->was_retries);
	free(r->have_output);
	free(r->caller);
}

static void remember(struct run *r)
{
	for (size_t i = 0; i < r->dag->ntasks; i++) {
		r->was[i] = r->dag->tasks[i].status;
		r->was_retries[i] = r->dag->tasks[i].retry_count;
	}
}

static int alloc_was(struct run *r)
{
	r->was = calloc(r->dag->ntasks, sizeof(*r->was));
	r->was_retries = calloc(r->dag->ntasks, sizeof(*r->was_retries));
	r->have_output = calloc(r->dag->ntasks, sizeof(*r->have_output));
	if (r->was == NULL || r->was_retries == NULL || r->have_output == NULL)
		return -ENOMEM;
	remember(r);
	return 0;
}

/* ---- state in kv ---- */

static int save(struct run *r)
{
	char key[320];
	json_t *saved = NULL;
	int rc = bg_dag_save(r->dag, &saved);
	if (rc < 0)
		return rc;
	json_object_del(saved, "spec");
	json_t *st = json_object_get(saved, "state"), *o;
	const char *id;
	json_object_foreach(st, id, o)
		json_object_set_new(o, "output", json_null());
	json_t *w = json_pack("{s:i,s:o,s:O,s:I,s:s?}", "version", 1, "run",
			      saved, "calls", r->calls, "seq", r->seq, "caller",
			      r->caller);
	wf_key(key, sizeof(key), r->exec_id, "state");
	rc = w ? wf_save(r->ctx, key, w) : -ENOMEM;
	json_decref(w);
	return rc;
}

static int load(struct run *r, char *err, size_t errlen)
{
	char key[320];
	json_t *spec = NULL, *w = NULL;
	wf_key(key, sizeof(key), r->exec_id, "state");
	int rc = wf_load(r->ctx, key, &w);
	if (rc < 0) {
		snprintf(err, errlen, "workflow state unreadable (%s)",
			 strerror(-rc));
		return rc;
	}
	wf_key(key, sizeof(key), r->exec_id, "spec");
	rc = wf_load(r->ctx, key, &spec);
	json_t *saved = json_object_get(w, "run");
	if (rc == 0 && !json_is_object(saved))
		rc = -EIO;
	if (rc < 0) {
		snprintf(err, errlen, "workflow spec unreadable (%s)",
			 strerror(-rc));
		json_decref(w);
		json_decref(spec);
		return rc;
	}
	json_object_set_new(saved, "spec", spec);
	rc = bg_dag_load(saved, &r->dag, err, errlen);
	r->calls = json_incref(json_object_get(w, "calls"));
	r->seq = json_integer_value(json_object_get(w, "seq"));
	const char *caller = json_string_value(json_object_get(w, "caller"));
	r->caller = caller ? strdup(caller) : NULL;
	json_decref(w);
	if (rc == 0 && !json_is_object(r->calls)) {
		snprintf(err, errlen, "workflow state has no calls");
		rc = -EIO;
	}
	return rc < 0 ? rc : alloc_was(r);
}

static void out_key(char *key, size_t len, const struct run *r, size_t i)
{
	char part[200];
	snprintf(part, sizeof(part), "out/%s", r->dag->tasks[i].id);
	wf_key(key, len, r->exec_id, part);
}

/* Task i's output (DONE): in memory when it ended in this run or was read
 * already, else read from kv (the saved state holds none). A new
 * reference; null when unreadable. */
static json_t *output_of(struct run *r, size_t i)
{
	if (!r->have_output[i]) {
		char key[320];
		json_t *v = NULL;
		out_key(key, sizeof(key), r, i);
		if (wf_load(r->ctx, key, &v) < 0)
			v = json_null();
		bg_dag_set_output(r->dag, i, v);
		json_decref(v);
		r->have_output[i] = true;
	}
	return json_incref(r->dag->tasks[i].output);
}

/* ---- step events ---- */

static void step_task(struct run *r, size_t i, const char *status,
		      const char *error)
{
	const struct bg_dag_task *t = &r->dag->tasks[i];
	json_t *call = json_object_get(r->calls, t->id);
	json_t *ev = json_pack("{s:s,s:s,s:s,s:i,s:s?,s:s?}", "task_id", t->id,
			       "agent", t->agent, "status", status,
			       "retry_count", t->retry_count, "error", error,
			       "message_id",
			       json_string_value(json_object_get(call, "m")));
	wf_step(r->ctx, KIND, r->exec_id, ev);
}

/* One event per task whose status changed in this step; a failed attempt
 * that is retried is a RETRY (with its error) before its new start. */
static void step_events(struct run *r)
{
	for (size_t i = 0; i < r->dag->ntasks; i++) {
		const struct bg_dag_task *t = &r->dag->tasks[i];
		bool retried = t->retry_count != r->was_retries[i];
		if (retried)
			step_task(r, i, "RETRY", t->error);
		if (t->status != r->was[i] ||
		    (retried && t->status != BG_DAG_PENDING))
			step_task(r, i, bg_dag_status_name(t->status),
				  t->status == BG_DAG_DONE ||
						  t->status == BG_DAG_RUNNING
					  ? NULL
					  : t->error);
	}
	remember(r);
}

/* ---- starting tasks ---- */

/* The extra_payload of task i: its dependencies' outputs as "_dep_<id>"
 * (agentos's merge) and "context": the spec's context with the task's own
 * on top. */
static json_t *extra_of(struct run *r, size_t i)
{
	const struct bg_dag_task *t = &r->dag->tasks[i];
	json_t *x = json_object();
	char name[160];
	for (size_t k = 0; k < t->ndeps; k++) {
		size_t dep = t->deps[k];
		snprintf(name, sizeof(name), "_dep_%s", r->dag->tasks[dep].id);
		json_object_set_new(x, name, output_of(r, dep));
	}
	if (r->dag->context || t->context) {
		json_t *c = r->dag->context ? json_deep_copy(r->dag->context)
					    : json_object();
		if (t->context)
			json_object_update(c, t->context);
		json_object_set_new(x, "context", c);
	}
	return x;
}

static int fail_task(struct run *r, size_t i, const char *why)
{
	return bg_dag_fail(r->dag, i, why, wf_now_ms());
}

/* Post the timer of task i's call (its timeout_ms). */
static int arm_timeout(struct run *r, size_t i, const char *tag)
{
	const struct bg_dag_task *t = &r->dag->tasks[i];
	if (t->timeout_ms <= 0)
		return 0;
	json_t *c = json_pack("{s:{s:s,s:s}}", "bygate_wf_timer", "task", t->id,
			      "tag", tag);
	char *txt = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	char *reply = NULL;
	int rc = txt ? bg_ctx_resume_later(r->ctx, NULL, txt, t->timeout_ms,
					   &reply)
		     : -ENOMEM;
	free(txt);
	free(reply);
	return rc;
}

/* Start task i: a call waiting for its reply. A refused call (no worker
 * serves the agent type...) is a failed attempt. */
static int start_task(struct run *r, size_t i)
{
	struct bg_dag_task *t = &r->dag->tasks[i];
	char tag[96], mid[160], err[512];
	snprintf(tag, sizeof(tag), "%s:%lld", r->exec_id, (long long)++r->seq);
	json_t *extra = extra_of(r, i);
	int rc = bg_dag_start(r->dag, i, wf_now_ms());
	if (rc < 0) {
		json_decref(extra);
		return rc;
	}
	/* the timer first: a call refused after it leaves a timer that
	 * finds no attempt of its tag running when it fires */
	rc = arm_timeout(r, i, tag);
	if (rc < 0) {
		json_decref(extra);
		snprintf(err, sizeof(err), "cannot post its timeout (%s)",
			 strerror(-rc));
		return fail_task(r, i, err);
	}
	rc = wf_call(r->ctx, t->agent, t->content, extra, NULL, tag, mid,
		     sizeof(mid), err, sizeof(err));
	json_decref(extra);
	if (rc < 0)
		return fail_task(r, i, err);
	json_object_set_new(r->calls, t->id,
			    json_pack("{s:s,s:s}", "tag", tag, "m", mid));
	return 0;
}

/* Start every ready task; a refused start fails the task (which may make
 * it ready again for a retry, or skip its dependents): repeat until no
 * task is ready, or this run has started as many calls as its finish
 * holds (r->more: the next run goes on). */
static int start_ready(struct run *r)
{
	size_t n = r->dag->ntasks;
	size_t *idx = calloc(n ? n : 1, sizeof(*idx));
	if (idx == NULL)
		return -ENOMEM;
	int rc = 0;
	for (;;) {
		size_t k = bg_dag_ready(r->dag, idx, n);
		if (k == 0)
			break;
		if (r->started >= WF_MAX_CALLS_PER_RUN) {
			r->more = true;
			break;
		}
		for (size_t j = 0;
		     j < k && rc == 0 && r->started < WF_MAX_CALLS_PER_RUN;
		     j++, r->started++)
			rc = start_task(r, idx[j]);
		if (rc < 0)
			break;
	}
	free(idx);
	return rc;
}

/* ---- the end ---- */

static int finish(struct run *r)
{
	for (size_t i = 0; i < r->dag->ntasks; i++)
		if (r->dag->tasks[i].status == BG_DAG_DONE)
			json_decref(output_of(r, i));
	json_t *result = NULL;
	int rc = bg_dag_result(r->dag, &result);
	if (rc < 0)
		return rc;
	json_int_t failed =
		json_integer_value(json_object_get(result, "failed"));
	json_int_t skipped =
		json_integer_value(json_object_get(result, "skipped"));
	json_t *ev = json_pack("{s:s,s:O,s:O,s:O,s:O,s:O}", "status", "END",
			       "total", json_object_get(result, "total"),
			       "done", json_object_get(result, "done"),
			       "failed", json_object_get(result, "failed"),
			       "skipped", json_object_get(result, "skipped"),
			       "duration_ms",
			       json_object_get(result, "duration_ms"));
	wf_step(r->ctx, KIND, r->exec_id, ev);
	char why[160];
	snprintf(why, sizeof(why), "%lld of %zu tasks failed, %lld skipped",
		 (long long)failed, r->dag->ntasks, (long long)skipped);
	rc = save(r); /* a user's RESUME of the ended run sees it ended */
	if (rc < 0)
		return rc;
	return wf_end(r->ctx, result, failed == 0 && skipped == 0, why,
		      r->caller);
}

/* After a step: start what became ready, keep the state, and wait or end. */
static int advance(struct run *r)
{
	int rc = start_ready(r);
	if (rc < 0)
		return rc;
	step_events(r);
	if (bg_dag_finished(r->dag))
		return finish(r);
	rc = save(r);
	if (rc == 0 && r->more)
		rc = wf_continue(r->ctx);
	return rc < 0 ? rc : wf_wait(r->ctx);
}

/* ---- the steps ---- */

static int begin(struct run *r, const struct bg_task *task)
{
	char err[512], key[320];
	int rc = bg_dag_parse(bg_task_content(task), bg_task_content_len(task),
			      r->exec_id, &r->dag, err, sizeof(err));
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return wf_refuse(r->ctx, err);
	rc = alloc_was(r);
	if (rc < 0)
		return rc;
	/* every agent type must be served somewhere before anything runs */
	json_t *types = json_array();
	for (size_t i = 0; i < r->dag->ntasks; i++) {
		json_t *a = json_string(r->dag->tasks[i].agent);
		size_t k;
		json_t *v;
		bool seen = false;
		json_array_foreach(types, k, v)
			seen |= json_equal(v, a) != 0;
		if (seen)
			json_decref(a);
		else
			json_array_append_new(types, a);
	}
	char *txt = json_dumps(types, JSON_COMPACT);
	json_decref(types);
	char *reply = NULL;
	rc = txt ? bg_ctx_agent_types_served(r->ctx, txt, &reply) : -ENOMEM;
	free(txt);
	json_t *rep = rc == 0 ? json_loads(reply, 0, NULL) : NULL;
	free(reply);
	json_t *unserved = json_object_get(rep, "unserved");
	if (json_array_size(unserved) > 0) {
		const char *a = json_string_value(json_array_get(unserved, 0));
		size_t i = 0;
		while (i < r->dag->ntasks &&
		       strcmp(r->dag->tasks[i].agent, a ? a : "") != 0)
			i++;
		snprintf(err, sizeof(err),
			 "task \"%s\": agent type \"%s\" is not served by any "
			 "online worker",
			 i < r->dag->ntasks ? r->dag->tasks[i].id : "?",
			 a ? a : "?");
		json_decref(rep);
		return wf_refuse(r->ctx, err);
	}
	json_decref(rep);
	if (rc < 0)
		return rc;
	r->calls = json_object();
	r->caller = wf_caller_tag(task);
	bg_dag_begin(r->dag, wf_now_ms());
	json_t *spec = json_loadb(bg_task_content(task),
				  bg_task_content_len(task), 0, NULL);
	wf_key(key, sizeof(key), r->exec_id, "spec");
	rc = spec ? wf_save(r->ctx, key, spec) : -ENOMEM;
	json_decref(spec);
	if (rc < 0)
		return rc;
	wf_step(r->ctx, KIND, r->exec_id,
		json_pack("{s:s,s:I,s:i}", "status", "START", "total",
			  (json_int_t)r->dag->ntasks, "max_parallel",
			  r->dag->max_parallel));
	return advance(r);
}

static int find_by_tag(const struct run *r, const char *tag, size_t *idx)
{
	const char *id;
	json_t *c;
	json_object_foreach(r->calls, id, c) {
		const char *t = json_string_value(json_object_get(c, "tag"));
		if (t && strcmp(t, tag) == 0)
			return bg_dag_find(r->dag, id, idx);
	}
	return -ENOENT;
}

static int on_callback(struct run *r, const struct wf_resume *res)
{
	size_t i;
	if (find_by_tag(r, res->tag, &i) < 0 ||
	    r->dag->tasks[i].status != BG_DAG_RUNNING)
		return 0; /* an answer nobody waits for (timed out) */
	if (!wf_status_terminal(res->status) && res->status[0]) {
		/* a by-framework callee calls back when it suspends too */
		wf_step(r->ctx, KIND, r->exec_id,
			json_pack("{s:s,s:s,s:s}", "task_id",
				  r->dag->tasks[i].id, "status", "RUNNING",
				  "callee_status", res->status));
		return 0;
	}
	if (!wf_succeeded(res)) {
		char *e = wf_error(res);
		int rc = fail_task(r, i, e ? e : res->status);
		free(e);
		return rc;
	}
	json_t *out = wf_output(res);
	char key[320];
	out_key(key, sizeof(key), r, i);
	int rc = wf_save(r->ctx, key, out);
	if (rc == 0) {
		rc = bg_dag_done(r->dag, i, out, wf_now_ms());
		r->have_output[i] = true;
	}
	json_decref(out);
	return rc;
}

static int on_posted(struct run *r, const struct wf_resume *res)
{
	json_t *tm = json_object_get(res->posted, "bygate_wf_timer");
	const char *id = json_string_value(json_object_get(tm, "task"));
	const char *tag = json_string_value(json_object_get(tm, "tag"));
	size_t i;
	if (id == NULL || tag == NULL || bg_dag_find(r->dag, id, &i) < 0 ||
	    r->dag->tasks[i].status != BG_DAG_RUNNING)
		return 0;
	json_t *call = json_object_get(r->calls, id);
	const char *cur = json_string_value(json_object_get(call, "tag"));
	if (cur == NULL || strcmp(cur, tag) != 0)
		return 0; /* an earlier attempt's timer */
	const char *mid = json_string_value(json_object_get(call, "m"));
	char *reply = NULL;
	if (mid)
		bg_ctx_cancel_call(r->ctx, mid, 1, "task graph timeout",
				   &reply);
	free(reply);
	char why[160];
	snprintf(why, sizeof(why), "TIMEOUT: no answer within %lld ms",
		 (long long)r->dag->tasks[i].timeout_ms);
	return fail_task(r, i, why);
}

static int dag_step(void *arg, const struct wf_resume *res)
{
	struct run *r = arg;
	if (res->kind == WF_CALLBACK)
		return on_callback(r, res);
	if (res->kind == WF_POSTED)
		return on_posted(r, res);
	return 0;
}

static int resume(struct run *r, const struct bg_task *task)
{
	char err[512];
	int rc = load(r, err, sizeof(err));
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return bg_ctx_fail(r->ctx, err);
	rc = wf_each_resume(task, r->ctx, dag_step, r);
	return rc < 0 ? rc : advance(r);
}

int wf_dag_process(const struct bg_task *task, struct bg_ctx *ctx)
{
	struct run r = { .ctx = ctx,
			 .exec_id = bg_task_get(task, BG_TASK_EXECUTION_ID) };
	char key[320];
	int rc;
	bool ask = strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME") != 0;
	if (ask) {
		/* the same ASK again while the run is suspended (a client's
		 * duplicate): the run already began; nothing to do */
		json_t *w = NULL;
		wf_key(key, sizeof(key), r.exec_id, "state");
		rc = wf_load(ctx, key, &w);
		json_decref(w);
		if (rc == 0)
			return wf_wait(ctx);
		rc = begin(&r, task);
	} else {
		rc = resume(&r, task);
	}
	run_free(&r);
	return wf_step_failed(ctx, "task graph", rc);
}
