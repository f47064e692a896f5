/* wire/dag.c - the task graph of a bygate.dag workflow: spec validation
 * (limits, dependencies, cycles), the run state machine and its saved JSON
 * form. See wire/dag.h and docs/workflows.md "Task graph spec". */
#include "wire/dag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAVE_VERSION 1

static const char *const status_names[] = { "PENDING", "RUNNING", "DONE",
					    "FAILED", "SKIPPED" };

const char *bg_dag_status_name(enum bg_dag_status s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return "?";
	return status_names[s];
}

static int status_of(const char *name, enum bg_dag_status *s)
{
	for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]);
	     i++)
		if (strcmp(name, status_names[i]) == 0) {
			*s = (enum bg_dag_status)i;
			return 0;
		}
	return -EINVAL;
}

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void bg_dag_free(struct bg_dag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->ntasks; i++) {
		free(d->tasks[i].deps);
		json_decref(d->tasks[i].output);
		free(d->tasks[i].error);
	}
	free(d->tasks);
	free(d->run_id);
	json_decref(d->spec);
	free(d);
}

/* ---- validation ---- */

/* A task id or agent type: 1..BG_DAG_MAX_ID bytes, no control character
 * (jansson has already checked UTF-8 and refused NUL). NULL or a reason. */
static const char *name_problem(const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return "is empty";
	if (n > BG_DAG_MAX_ID)
		return "is longer than 128 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return "has a control character";
	return NULL;
}

/* An integer member in [lo, hi], or dflt when absent. */
static int int_member(json_t *obj, const char *key, int64_t lo, int64_t hi,
		      int64_t dflt, int64_t *v)
{
	json_t *j = json_object_get(obj, key);

	if (!j) {
		*v = dflt;
		return 0;
	}
	if (!json_is_integer(j))
		return -EINVAL;
	*v = json_integer_value(j);
	return *v < lo || *v > hi ? -EINVAL : 0;
}

static bool only_keys(json_t *obj, const char *const *known, const char **bad)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		size_t i = 0;

		while (known[i] && strcmp(known[i], k) != 0)
			i++;
		if (!known[i]) {
			*bad = k;
			return false;
		}
	}
	return true;
}

static const char *const spec_keys[] = { "tasks", "max_parallel", "context",
					 NULL };
static const char *const task_keys[] = { "agent",   "content", "depends_on",
					 "context", "retries", "timeout_ms",
					 NULL };

/* Fill task t (the i-th) from its spec object, except the dependencies. */
static int build_task(struct bg_dag_task *t, size_t i, const char *id,
		      json_t *spec, char *err, size_t errlen)
{
	const char *why = name_problem(id), *bad = NULL;
	json_t *agent;
	int64_t v;

	if (why) /* the id itself may be unprintable: say where it is */
		return errf(
			err, errlen, -EINVAL,
			"task #%zu of \"tasks\" (counting from 1): its id %s",
			i + 1, why);
	t->id = id;
	if (!json_is_object(spec))
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": not a JSON object", id);
	if (!only_keys(spec, task_keys, &bad))
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": unknown key \"%s\" (known: agent, "
			    "content, depends_on, context, retries, "
			    "timeout_ms)",
			    id, bad);
	agent = json_object_get(spec, "agent");
	if (!json_is_string(agent))
		return errf(err, errlen, -EINVAL, "task \"%s\": %s", id,
			    agent ? "\"agent\" is not a string"
				  : "no \"agent\"");
	t->agent = json_string_value(agent);
	why = name_problem(t->agent);
	if (why)
		return errf(err, errlen, -EINVAL, "task \"%s\": \"agent\" %s",
			    id, why);
	t->content = json_object_get(spec, "content");
	t->context = json_object_get(spec, "context");
	if (t->context && !json_is_object(t->context))
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": \"context\" is not an object", id);
	if (int_member(spec, "retries", 0, BG_DAG_MAX_RETRIES, 0, &v) < 0)
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": \"retries\" is not an integer in "
			    "0..%d",
			    id, BG_DAG_MAX_RETRIES);
	t->retries = (int)v;
	if (int_member(spec, "timeout_ms", 0, BG_DAG_MAX_TIMEOUT_MS, 0, &v) < 0)
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": \"timeout_ms\" is not an integer in "
			    "0..%d",
			    id, BG_DAG_MAX_TIMEOUT_MS);
	t->timeout_ms = v;
	return 0;
}

static int build_deps(struct bg_dag *d, size_t i, json_t *spec, char *err,
		      size_t errlen)
{
	struct bg_dag_task *t = &d->tasks[i];
	json_t *deps = json_object_get(spec, "depends_on"), *dep;
	size_t k;

	if (!deps)
		return 0;
	if (!json_is_array(deps))
		return errf(err, errlen, -EINVAL,
			    "task \"%s\": \"depends_on\" is not an array",
			    t->id);
	if (json_array_size(deps) == 0)
		return 0;
	t->deps = calloc(json_array_size(deps), sizeof(*t->deps));
	if (!t->deps)
		return -ENOMEM;
	json_array_foreach(deps, k, dep) {
		const char *name = json_string_value(dep);
		size_t j;

		if (!name)
			return errf(err, errlen, -EINVAL,
				    "task \"%s\": \"depends_on\" has a "
				    "non-string entry",
				    t->id);
		if (bg_dag_find(d, name, &j) < 0)
			return errf(err, errlen, -EINVAL,
				    "task \"%s\": depends on \"%.*s\", which "
				    "is not a task",
				    t->id, BG_DAG_MAX_ID, name);
		if (j == i)
			return errf(err, errlen, -EINVAL,
				    "task \"%s\": depends on itself", t->id);
		for (size_t m = 0; m < t->ndeps; m++)
			if (t->deps[m] == j)
				return errf(err, errlen, -EINVAL,
					    "task \"%s\": depends on \"%s\" "
					    "twice",
					    t->id, name);
		t->deps[t->ndeps++] = j;
	}
	return 0;
}

/* Depth-first search for a cycle; color 0 unseen, 1 on the path, 2 done.
 * On finding one, writes it into err (path is scratch of ntasks entries)
 * and returns -EINVAL. Recursion depth is bounded by BG_DAG_MAX_TASKS. */
static int find_cycle(const struct bg_dag *d, size_t u, unsigned char *color,
		      size_t *parent, size_t *path, char *err, size_t errlen)
{
	color[u] = 1;
	for (size_t k = 0; k < d->tasks[u].ndeps; k++) {
		size_t v = d->tasks[u].deps[k], n = 0, off;
		int rc;

		if (color[v] == 1) { /* v -> ... -> u -> v */
			if (!err || !errlen)
				return -EINVAL;
			for (size_t w = u; w != v; w = parent[w])
				path[n++] = w;
			off = (size_t)snprintf(err, errlen,
					       "dependency cycle (each depends "
					       "on the next): \"%s\"",
					       d->tasks[v].id);
			while (n-- > 0 && off < errlen)
				off += (size_t)snprintf(err + off, errlen - off,
							" -> \"%s\"",
							d->tasks[path[n]].id);
			if (off < errlen)
				snprintf(err + off, errlen - off, " -> \"%s\"",
					 d->tasks[v].id);
			return -EINVAL;
		}
		if (color[v] == 0) {
			parent[v] = u;
			rc = find_cycle(d, v, color, parent, path, err, errlen);
			if (rc < 0)
				return rc;
		}
	}
	color[u] = 2;
	return 0;
}

static int check_acyclic(const struct bg_dag *d, char *err, size_t errlen)
{
	unsigned char *color = calloc(d->ntasks, 1);
	size_t *parent = calloc(d->ntasks, sizeof(*parent));
	size_t *path = calloc(d->ntasks, sizeof(*path));
	int rc = color && parent && path ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < d->ntasks; i++)
		if (color[i] == 0)
			rc = find_cycle(d, i, color, parent, path, err, errlen);
	free(color);
	free(parent);
	free(path);
	return rc;
}

/* Build a graph from a parsed spec; takes the reference to spec. */
static int build(json_t *spec, const char *run_id, struct bg_dag **out,
		 char *err, size_t errlen)
{
	struct bg_dag *d = NULL;
	json_t *tasks, *v;
	const char *id, *bad = NULL;
	int64_t mp;
	size_t i;
	int rc;

	if (!json_is_object(spec)) {
		rc = errf(err, errlen, -EINVAL,
			  "the spec is not a JSON object");
		goto fail;
	}
	if (!only_keys(spec, spec_keys, &bad)) {
		rc = errf(err, errlen, -EINVAL,
			  "unknown key \"%.*s\" in the spec (known: tasks, "
			  "max_parallel, context)",
			  BG_DAG_MAX_ID, bad);
		goto fail;
	}
	tasks = json_object_get(spec, "tasks");
	if (!json_is_object(tasks) || json_object_size(tasks) == 0) {
		rc = errf(err, errlen, -EINVAL, "%s",
			  !tasks ? "the spec has no \"tasks\""
			  : !json_is_object(tasks)
				  ? "\"tasks\" is not an object"
				  : "\"tasks\" is empty");
		goto fail;
	}
	if (json_object_size(tasks) > BG_DAG_MAX_TASKS) {
		rc = errf(err, errlen, -E2BIG,
			  "the spec has %zu tasks (limit %d)",
			  json_object_size(tasks), BG_DAG_MAX_TASKS);
		goto fail;
	}
	if (int_member(spec, "max_parallel", 1, BG_DAG_MAX_PARALLEL,
		       BG_DAG_MAX_PARALLEL, &mp) < 0) {
		rc = errf(err, errlen, -EINVAL,
			  "\"max_parallel\" is not an integer in 1..%d",
			  BG_DAG_MAX_PARALLEL);
		goto fail;
	}
	v = json_object_get(spec, "context");
	if (v && !json_is_object(v)) {
		rc = errf(err, errlen, -EINVAL,
			  "the spec's \"context\" is not an object");
		goto fail;
	}
	rc = -ENOMEM;
	d = calloc(1, sizeof(*d));
	if (!d)
		goto fail;
	d->spec = spec;
	spec = NULL;
	d->context = v;
	d->max_parallel = (int)mp;
	d->run_id = strdup(run_id ? run_id : "");
	d->tasks = calloc(json_object_size(tasks), sizeof(*d->tasks));
	if (!d->run_id || !d->tasks)
		goto fail;
	json_object_foreach(tasks, id, v) {
		rc = build_task(&d->tasks[d->ntasks], d->ntasks, id, v, err,
				errlen);
		if (rc < 0)
			goto fail;
		d->ntasks++;
	}
	i = 0;
	json_object_foreach(tasks, id, v) {
		rc = build_deps(d, i++, v, err, errlen);
		if (rc < 0)
			goto fail;
	}
	rc = check_acyclic(d, err, errlen);
	if (rc < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	json_decref(spec);
	bg_dag_free(d);
	return rc;
}

int bg_dag_parse(const char *spec, size_t len, const char *run_id,
		 struct bg_dag **out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (len > BG_DAG_MAX_SPEC_BYTES)
		return errf(err, errlen, -E2BIG,
			    "the spec is %zu bytes (limit %d)", len,
			    BG_DAG_MAX_SPEC_BYTES);
	j = json_loadb(spec, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return errf(err, errlen, -EINVAL,
			    "the spec is not valid JSON: %s (line %d, column "
			    "%d)",
			    je.text, je.line, je.column);
	return build(j, run_id, out, err, errlen);
}

int bg_dag_find(const struct bg_dag *d, const char *id, size_t *idx)
{
	for (size_t i = 0; i < d->ntasks; i++)
		if (d->tasks[i].id && strcmp(d->tasks[i].id, id) == 0) {
			*idx = i;
			return 0;
		}
	return -ENOENT;
}

/* ---- run state ---- */

void bg_dag_begin(struct bg_dag *d, int64_t now_ms)
{
	d->started_at = now_ms;
}

static size_t count(const struct bg_dag *d, enum bg_dag_status s)
{
	size_t n = 0;

	for (size_t i = 0; i < d->ntasks; i++)
		n += d->tasks[i].status == s;
	return n;
}

static bool deps_done(const struct bg_dag *d, size_t i)
{
	for (size_t k = 0; k < d->tasks[i].ndeps; k++)
		if (d->tasks[d->tasks[i].deps[k]].status != BG_DAG_DONE)
			return false;
	return true;
}

size_t bg_dag_ready(const struct bg_dag *d, size_t *idx, size_t cap)
{
	size_t running = count(d, BG_DAG_RUNNING), n = 0;
	size_t slots = running < (size_t)d->max_parallel
			       ? (size_t)d->max_parallel - running
			       : 0;

	for (size_t i = 0; i < d->ntasks && n < slots && n < cap; i++)
		if (d->tasks[i].status == BG_DAG_PENDING && deps_done(d, i))
			idx[n++] = i;
	return n;
}

int bg_dag_start(struct bg_dag *d, size_t i, int64_t now_ms)
{
	if (i >= d->ntasks || d->tasks[i].status != BG_DAG_PENDING ||
	    !deps_done(d, i))
		return -EINVAL;
	if (count(d, BG_DAG_RUNNING) >= (size_t)d->max_parallel)
		return -EBUSY;
	d->tasks[i].status = BG_DAG_RUNNING;
	d->tasks[i].started_at = now_ms;
	d->tasks[i].finished_at = 0;
	return 0;
}

static void note_end(struct bg_dag *d, int64_t now_ms)
{
	if (bg_dag_finished(d))
		d->finished_at = now_ms;
}

int bg_dag_done(struct bg_dag *d, size_t i, json_t *output, int64_t now_ms)
{
	struct bg_dag_task *t;

	if (i >= d->ntasks || d->tasks[i].status != BG_DAG_RUNNING)
		return -EINVAL;
	t = &d->tasks[i];
	t->output = output ? json_incref(output) : json_null();
	free(t->error);
	t->error = NULL;
	t->status = BG_DAG_DONE;
	t->finished_at = now_ms;
	note_end(d, now_ms);
	return 0;
}

int bg_dag_set_output(struct bg_dag *d, size_t i, json_t *output)
{
	if (i >= d->ntasks || d->tasks[i].status != BG_DAG_DONE)
		return -EINVAL;
	json_decref(d->tasks[i].output);
	d->tasks[i].output = output ? json_incref(output) : json_null();
	return 0;
}

static int set_error(struct bg_dag_task *t, const char *fmt, const char *s)
{
	char *e = NULL;

	if (asprintf(&e, fmt, s) == -1)
		return -ENOMEM;
	free(t->error);
	t->error = e;
	return 0;
}

/* Skip every PENDING task that depends on `failed` directly or not, naming
 * it. (A task depending on an already SKIPPED one is SKIPPED too, so only
 * the tasks lost now need marking.) Sweeps until nothing changes: at most
 * one sweep per task of O(edges) each, since the graph is acyclic. */
static int skip_dependents(struct bg_dag *d, size_t failed, int64_t now_ms)
{
	bool *lost = calloc(d->ntasks, sizeof(*lost)), changed = true;

	if (!lost)
		return -ENOMEM;
	lost[failed] = true;
	while (changed) {
		changed = false;
		for (size_t i = 0; i < d->ntasks; i++) {
			struct bg_dag_task *t = &d->tasks[i];
			size_t k = 0;

			if (t->status != BG_DAG_PENDING)
				continue;
			while (k < t->ndeps && !lost[t->deps[k]])
				k++;
			if (k == t->ndeps)
				continue;
			if (set_error(t, "dependency \"%s\" failed",
				      d->tasks[failed].id) < 0) {
				free(lost);
				return -ENOMEM;
			}
			t->status = BG_DAG_SKIPPED;
			t->finished_at = now_ms;
			lost[i] = changed = true;
		}
	}
	free(lost);
	return 0;
}

int bg_dag_fail(struct bg_dag *d, size_t i, const char *error, int64_t now_ms)
{
	struct bg_dag_task *t;

	if (i >= d->ntasks || d->tasks[i].status != BG_DAG_RUNNING)
		return -EINVAL;
	t = &d->tasks[i];
	if (set_error(t, "%s", error ? error : "failed") < 0)
		return -ENOMEM;
	if (t->retry_count < t->retries) {
		t->retry_count++;
		t->status = BG_DAG_PENDING;
		return 0;
	}
	t->status = BG_DAG_FAILED;
	t->finished_at = now_ms;
	if (skip_dependents(d, i, now_ms) < 0)
		return -ENOMEM;
	note_end(d, now_ms);
	return 0;
}

bool bg_dag_finished(const struct bg_dag *d)
{
	return count(d, BG_DAG_PENDING) == 0 && count(d, BG_DAG_RUNNING) == 0;
}

/* ---- JSON out ---- */

static json_t *time_or_null(int64_t ms)
{
	return ms ? json_integer(ms) : json_null();
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

int bg_dag_result(const struct bg_dag *d, json_t **out)
{
	json_t *r, *tasks = json_array();
	int64_t dur = d->finished_at && d->started_at
			      ? d->finished_at - d->started_at
			      : 0;

	r = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "run_id", d->run_id,
		      "total", (json_int_t)d->ntasks, "done",
		      (json_int_t)count(d, BG_DAG_DONE), "failed",
		      (json_int_t)count(d, BG_DAG_FAILED), "skipped",
		      (json_int_t)count(d, BG_DAG_SKIPPED), "duration_ms",
		      (json_int_t)(dur > 0 ? dur : 0), "tasks", tasks);
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < d->ntasks; i++) {
		const struct bg_dag_task *t = &d->tasks[i];
		json_t *o = json_pack(
			"{s:s,s:s,s:s,s:O,s:o,s:o,s:o,s:i}", "task_id", t->id,
			"status", bg_dag_status_name(t->status), "agent",
			t->agent, "output", t->output ? t->output : json_null(),
			"error", str_or_null(t->error), "started_at",
			time_or_null(t->started_at), "finished_at",
			time_or_null(t->finished_at), "retry_count",
			t->retry_count);

		if (!o || json_array_append_new(tasks, o) < 0) {
			json_decref(r);
			return -ENOMEM;
		}
	}
	*out = r;
	return 0;
}

int bg_dag_extra_payload(const struct bg_dag *d, size_t i, json_t **out)
{
	json_t *p = json_object();

	if (!p)
		return -ENOMEM;
	for (size_t k = 0; i < d->ntasks && k < d->tasks[i].ndeps; k++) {
		const struct bg_dag_task *dep = &d->tasks[d->tasks[i].deps[k]];
		char key[sizeof("_dep_") + BG_DAG_MAX_ID];

		snprintf(key, sizeof(key), "_dep_%s", dep->id);
		if (json_object_set(p, key,
				    dep->output ? dep->output : json_null()) <
		    0) {
			json_decref(p);
			return -ENOMEM;
		}
	}
	*out = p;
	return 0;
}

/* ---- saved state ----
 * {"version": 1, "run_id", "started_at", "finished_at", "spec": {...},
 *  "state": {id: {"status", "output", "error", "started_at",
 *                 "finished_at", "retry_count"}}} */

int bg_dag_save(const struct bg_dag *d, json_t **out)
{
	json_t *state = json_object(), *s;

	s = json_pack("{s:i,s:s,s:I,s:I,s:O,s:o}", "version", SAVE_VERSION,
		      "run_id", d->run_id, "started_at",
		      (json_int_t)d->started_at, "finished_at",
		      (json_int_t)d->finished_at, "spec", d->spec, "state",
		      state);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < d->ntasks; i++) {
		const struct bg_dag_task *t = &d->tasks[i];
		json_t *o = json_pack("{s:s,s:O,s:o,s:I,s:I,s:i}", "status",
				      bg_dag_status_name(t->status), "output",
				      t->output ? t->output : json_null(),
				      "error", str_or_null(t->error),
				      "started_at", (json_int_t)t->started_at,
				      "finished_at", (json_int_t)t->finished_at,
				      "retry_count", t->retry_count);

		if (!o || json_object_set_new(state, t->id, o) < 0) {
			json_decref(s);
			return -ENOMEM;
		}
	}
	*out = s;
	return 0;
}

/* Whether status s of task i agrees with its dependencies' statuses. */
static bool consistent(const struct bg_dag *d, size_t i)
{
	const struct bg_dag_task *t = &d->tasks[i];
	bool all_done = deps_done(d, i), any_lost = false;

	for (size_t k = 0; k < t->ndeps; k++) {
		enum bg_dag_status s = d->tasks[t->deps[k]].status;

		any_lost |= s == BG_DAG_FAILED || s == BG_DAG_SKIPPED;
	}
	switch (t->status) {
	case BG_DAG_PENDING:
		return !any_lost;
	case BG_DAG_SKIPPED:
		return any_lost && t->error;
	case BG_DAG_FAILED:
		return all_done && t->error && t->retry_count == t->retries;
	default: /* RUNNING, DONE */
		return all_done;
	}
}

static int load_task(struct bg_dag_task *t, json_t *o, char *err, size_t errlen)
{
	json_t *out = json_object_get(o, "output");
	json_t *e = json_object_get(o, "error");
	const char *st = json_string_value(json_object_get(o, "status"));
	int64_t sa, fa, rc;

	if (!json_is_object(o) || !st || status_of(st, &t->status) < 0 ||
	    !out || !(json_is_null(e) || json_is_string(e)) ||
	    int_member(o, "started_at", 0, INT64_MAX, -1, &sa) < 0 ||
	    int_member(o, "finished_at", 0, INT64_MAX, -1, &fa) < 0 ||
	    int_member(o, "retry_count", 0, t->retries, -1, &rc) < 0 ||
	    sa < 0 || fa < 0 || rc < 0 ||
	    (t->status != BG_DAG_DONE && !json_is_null(out)))
		return errf(err, errlen, -EINVAL,
			    "saved state of task \"%s\" is malformed", t->id);
	t->started_at = sa;
	t->finished_at = fa;
	t->retry_count = (int)rc;
	if (t->status == BG_DAG_DONE)
		t->output = json_incref(out);
	if (json_is_string(e) && !(t->error = strdup(json_string_value(e))))
		return -ENOMEM;
	return 0;
}

int bg_dag_load(const json_t *saved, struct bg_dag **out, char *err,
		size_t errlen)
{
	json_t *spec = json_object_get(saved, "spec");
	json_t *state = json_object_get(saved, "state");
	const char *run_id =
		json_string_value(json_object_get(saved, "run_id"));
	struct bg_dag *d;
	int64_t ver, sa, fa;
	int rc;

	if (!json_is_object(saved) ||
	    int_member((json_t *)saved, "version", SAVE_VERSION, SAVE_VERSION,
		       -1, &ver) < 0 ||
	    ver != SAVE_VERSION || !run_id || !json_is_object(state) ||
	    int_member((json_t *)saved, "started_at", 0, INT64_MAX, -1, &sa) <
		    0 ||
	    int_member((json_t *)saved, "finished_at", 0, INT64_MAX, -1, &fa) <
		    0 ||
	    sa < 0 || fa < 0 || !spec)
		return errf(err, errlen, -EINVAL,
			    "not a saved task graph (version %d)",
			    SAVE_VERSION);
	/* a private copy: the caller's tree must not share our spec */
	rc = build(json_deep_copy(spec), run_id, &d, err, errlen);
	if (rc < 0)
		return rc;
	d->started_at = sa;
	d->finished_at = fa;
	if (json_object_size(state) != d->ntasks) {
		rc = errf(err, errlen, -EINVAL,
			  "saved state has %zu tasks, the spec %zu",
			  json_object_size(state), d->ntasks);
		goto fail;
	}
	for (size_t i = 0; i < d->ntasks; i++) {
		rc = load_task(&d->tasks[i],
			       json_object_get(state, d->tasks[i].id), err,
			       errlen);
		if (rc < 0)
			goto fail;
	}
	for (size_t i = 0; i < d->ntasks; i++)
		if (!consistent(d, i)) {
			rc = errf(err, errlen, -EINVAL,
				  "saved state of task \"%s\": %s is "
				  "inconsistent with its dependencies",
				  d->tasks[i].id,
				  bg_dag_status_name(d->tasks[i].status));
			goto fail;
		}
	if (count(d, BG_DAG_RUNNING) > (size_t)d->max_parallel) {
		rc = errf(err, errlen, -EINVAL,
			  "saved state runs more than max_parallel tasks");
		goto fail;
	}
	*out = d;
	return 0;
fail:
	bg_dag_free(d);
	return rc;
}
