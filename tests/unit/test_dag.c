/* tests/unit/test_dag.c - the task graph of a bygate.dag workflow
 * (wire/dag.h): spec validation, when tasks become ready, failures,
 * retries, max_parallel, the result and the saved state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/dag.h"

/* agentos's docstring graph: research -> draft -> {review, translate} */
static const char four_tasks[] =
	"{\"tasks\": {"
	"\"research\": {\"agent\": \"researcher\", \"content\": \"find\"},"
	"\"draft\": {\"agent\": \"writer\", \"content\": \"write\","
	" \"depends_on\": [\"research\"]},"
	"\"review\": {\"agent\": \"reviewer\", \"depends_on\": [\"draft\"]},"
	"\"translate\": {\"agent\": \"translator\", \"depends_on\": [\"draft\"]}"
	"}}";

static struct bg_dag *parsed(const char *spec)
{
	struct bg_dag *d = NULL;
	char err[512] = "";
	int rc =
		bg_dag_parse(spec, strlen(spec), "run-1", &d, err, sizeof(err));

	if (rc != 0)
		fail_msg("refused: %s", err);
	return d;
}

/* The spec is refused and the reason contains `needle`. */
static void refused(const char *spec, const char *needle)
{
	struct bg_dag *d = NULL;
	char err[512] = "";
	int rc = bg_dag_parse(spec, strlen(spec), "r", &d, err, sizeof(err));

	if (rc >= 0)
		fail_msg("accepted: %s", spec);
	assert_null(d);
	if (!strstr(err, needle))
		fail_msg("reason \"%s\" lacks \"%s\" (spec %s)", err, needle,
			 spec);
}

static size_t at(const struct bg_dag *d, const char *id)
{
	size_t i = 0;

	assert_int_equal(bg_dag_find(d, id, &i), 0);
	return i;
}

/* The ready tasks as "a,b,c". */
static const char *ready(const struct bg_dag *d)
{
	static char s[4096];
	size_t idx[BG_DAG_MAX_TASKS], n = bg_dag_ready(d, idx, 1000);

	s[0] = 0;
	for (size_t k = 0; k < n; k++) {
		if (k)
			strcat(s, ",");
		strcat(s, d->tasks[idx[k]].id);
	}
	return s;
}

static void start(struct bg_dag *d, const char *id, int64_t now)
{
	assert_int_equal(bg_dag_start(d, at(d, id), now), 0);
}

static void done(struct bg_dag *d, const char *id, const char *out, int64_t now)
{
	json_t *o = json_string(out);

	assert_int_equal(bg_dag_done(d, at(d, id), o, now), 0);
	json_decref(o);
}

static char *dumped(json_t *j)
{
	static char s[8192];
	char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	assert_non_null(t);
	snprintf(s, sizeof(s), "%s", t);
	free(t);
	json_decref(j);
	return s;
}

static char *result(const struct bg_dag *d)
{
	json_t *r = NULL;

	assert_int_equal(bg_dag_result(d, &r), 0);
	return dumped(r);
}

static char *extra(const struct bg_dag *d, const char *id)
{
	json_t *p = NULL;

	assert_int_equal(bg_dag_extra_payload(d, at(d, id), &p), 0);
	return dumped(p);
}

static char *saved(const struct bg_dag *d)
{
	json_t *s = NULL;

	assert_int_equal(bg_dag_save(d, &s), 0);
	return strdup(dumped(s));
}

/* ---- the four-task graph ---- */

static void test_draft_starts_only_after_research(void **st)
{
	struct bg_dag *d = parsed(four_tasks);

	(void)st;
	bg_dag_begin(d, 1000);
	assert_string_equal(ready(d), "research");
	start(d, "research", 1001);
	assert_string_equal(ready(d), "");
	assert_int_equal(bg_dag_start(d, at(d, "draft"), 1002), -EINVAL);
	done(d, "research", "facts", 1010);
	assert_string_equal(ready(d), "draft");
	assert_string_equal(extra(d, "draft"), "{\"_dep_research\":\"facts\"}");
	bg_dag_free(d);
}

static void
test_review_and_translate_start_together_with_drafts_output(void **st)
{
	struct bg_dag *d = parsed(four_tasks);

	(void)st;
	bg_dag_begin(d, 1000);
	start(d, "research", 1001);
	done(d, "research", "facts", 1010);
	start(d, "draft", 1011);
	assert_string_equal(ready(d), "");
	done(d, "draft", "text", 1020);
	assert_string_equal(ready(d), "review,translate");
	assert_string_equal(extra(d, "review"), "{\"_dep_draft\":\"text\"}");
	assert_string_equal(extra(d, "translate"), "{\"_dep_draft\":\"text\"}");
	assert_string_equal(extra(d, "research"), "{}");
	start(d, "review", 1021);
	start(d, "translate", 1021);
	assert_false(bg_dag_finished(d));
	done(d, "translate", "texte", 1030);
	done(d, "review", "ok", 1040);
	assert_true(bg_dag_finished(d));
	assert_string_equal(
		result(d),
		"{\"run_id\":\"run-1\",\"total\":4,\"done\":4,\"failed\":0,"
		"\"skipped\":0,\"duration_ms\":40,\"tasks\":["
		"{\"task_id\":\"research\",\"status\":\"DONE\",\"agent\":"
		"\"researcher\",\"output\":\"facts\",\"error\":null,"
		"\"started_at\":1001,\"finished_at\":1010,\"retry_count\":0},"
		"{\"task_id\":\"draft\",\"status\":\"DONE\",\"agent\":"
		"\"writer\",\"output\":\"text\",\"error\":null,"
		"\"started_at\":1011,\"finished_at\":1020,\"retry_count\":0},"
		"{\"task_id\":\"review\",\"status\":\"DONE\",\"agent\":"
		"\"reviewer\",\"output\":\"ok\",\"error\":null,"
		"\"started_at\":1021,\"finished_at\":1040,\"retry_count\":0},"
		"{\"task_id\":\"translate\",\"status\":\"DONE\",\"agent\":"
		"\"translator\",\"output\":\"texte\",\"error\":null,"
		"\"started_at\":1021,\"finished_at\":1030,\"retry_count\":0}]}");
	bg_dag_free(d);
}

static void test_extra_payload_carries_every_dependency_in_order(void **st)
{
	struct bg_dag *d = parsed(
		"{\"tasks\": {\"a\": {\"agent\": \"x\"}, \"b\": {\"agent\": "
		"\"x\"}, \"c\": {\"agent\": \"x\", \"depends_on\": [\"b\", "
		"\"a\"]}}}");
	json_t *obj = json_pack("{s:i}", "n", 1);

	(void)st;
	start(d, "a", 1);
	start(d, "b", 1);
	assert_int_equal(bg_dag_done(d, at(d, "a"), obj, 2), 0);
	assert_int_equal(bg_dag_done(d, at(d, "b"), NULL, 2), 0);
	json_decref(obj);
	assert_string_equal(extra(d, "c"),
			    "{\"_dep_b\":null,\"_dep_a\":{\"n\":1}}");
	bg_dag_free(d);
}

/* ---- failures and retries ---- */

static void test_failed_task_skips_dependents_naming_it(void **st)
{
	struct bg_dag *d = parsed(
		"{\"tasks\": {"
		"\"a\": {\"agent\": \"x\"},"
		"\"b\": {\"agent\": \"x\", \"depends_on\": [\"a\"]},"
		"\"c\": {\"agent\": \"x\", \"depends_on\": [\"b\"]},"
		"\"side\": {\"agent\": \"x\"},"
		"\"side2\": {\"agent\": \"x\", \"depends_on\": [\"side\"]}}}");

	(void)st;
	bg_dag_begin(d, 100);
	assert_string_equal(ready(d), "a,side");
	start(d, "a", 101);
	start(d, "side", 101);
	assert_int_equal(bg_dag_fail(d, at(d, "a"), "boom", 110), 0);
	assert_int_equal(d->tasks[at(d, "a")].status, BG_DAG_FAILED);
	assert_string_equal(d->tasks[at(d, "a")].error, "boom");
	assert_int_equal(d->tasks[at(d, "b")].status, BG_DAG_SKIPPED);
	assert_int_equal(d->tasks[at(d, "c")].status, BG_DAG_SKIPPED);
	assert_string_equal(d->tasks[at(d, "b")].error,
			    "dependency \"a\" failed");
	assert_string_equal(d->tasks[at(d, "c")].error,
			    "dependency \"a\" failed");
	assert_false(bg_dag_finished(d));
	done(d, "side", "s", 120);
	assert_string_equal(ready(d), "side2");
	start(d, "side2", 121);
	done(d, "side2", "s2", 130);
	assert_true(bg_dag_finished(d));
	assert_non_null(strstr(result(d), "\"total\":5,\"done\":2,\"failed\":1,"
					  "\"skipped\":2,\"duration_ms\":30"));
	assert_non_null(strstr(result(d),
			       "{\"task_id\":\"c\",\"status\":\"SKIPPED\","
			       "\"agent\":\"x\",\"output\":null,\"error\":"
			       "\"dependency \\\"a\\\" failed\",\"started_at\":"
			       "null,\"finished_at\":110,\"retry_count\":0}"));
	bg_dag_free(d);
}

static void test_failure_with_retries_left_goes_back_to_pending(void **st)
{
	struct bg_dag *d = parsed("{\"tasks\": {\"a\": {\"agent\": \"x\", "
				  "\"retries\": 2}, \"b\": {\"agent\": \"x\", "
				  "\"depends_on\": [\"a\"]}}}");
	size_t a = at(d, "a");

	(void)st;
	start(d, "a", 1);
	assert_int_equal(bg_dag_fail(d, a, "flaky", 2), 0);
	assert_int_equal(d->tasks[a].status, BG_DAG_PENDING);
	assert_int_equal(d->tasks[a].retry_count, 1);
	assert_int_equal(d->tasks[at(d, "b")].status, BG_DAG_PENDING);
	assert_string_equal(ready(d), "a");
	start(d, "a", 3);
	assert_int_equal(bg_dag_fail(d, a, "flaky", 4), 0);
	assert_int_equal(d->tasks[a].retry_count, 2);
	start(d, "a", 5);
	done(d, "a", "at last", 6);
	assert_null(d->tasks[a].error);
	assert_string_equal(ready(d), "b");
	assert_non_null(strstr(result(d), "\"started_at\":5,\"finished_at\":6,"
					  "\"retry_count\":2}"));
	bg_dag_free(d);
}

static void test_failure_after_the_last_retry_is_final(void **st)
{
	struct bg_dag *d = parsed("{\"tasks\": {\"a\": {\"agent\": \"x\", "
				  "\"retries\": 1}, \"b\": {\"agent\": \"x\", "
				  "\"depends_on\": [\"a\"]}}}");
	size_t a = at(d, "a");

	(void)st;
	start(d, "a", 1);
	assert_int_equal(bg_dag_fail(d, a, "one", 2), 0);
	start(d, "a", 3);
	assert_int_equal(bg_dag_fail(d, a, "two", 4), 0);
	assert_int_equal(d->tasks[a].status, BG_DAG_FAILED);
	assert_int_equal(d->tasks[a].retry_count, 1);
	assert_string_equal(d->tasks[a].error, "two");
	assert_int_equal(d->tasks[at(d, "b")].status, BG_DAG_SKIPPED);
	assert_true(bg_dag_finished(d));
	/* nothing but a RUNNING task can end */
	assert_int_equal(bg_dag_fail(d, a, "again", 5), -EINVAL);
	assert_int_equal(bg_dag_done(d, at(d, "b"), NULL, 5), -EINVAL);
	bg_dag_free(d);
}

/* ---- max_parallel ---- */

static void test_max_parallel_counts_running_tasks(void **st)
{
	struct bg_dag *d = parsed(
		"{\"max_parallel\": 2, \"tasks\": {\"a\": {\"agent\": \"x\"}, "
		"\"b\": {\"agent\": \"x\"}, \"c\": {\"agent\": \"x\"}, \"d\": "
		"{\"agent\": \"x\"}}}");

	(void)st;
	assert_string_equal(ready(d), "a,b");
	start(d, "a", 1);
	assert_string_equal(ready(d), "b");
	start(d, "c", 1);
	assert_string_equal(ready(d), "");
	assert_int_equal(bg_dag_start(d, at(d, "b"), 1), -EBUSY);
	done(d, "c", "", 2);
	assert_string_equal(ready(d), "b");
	bg_dag_free(d);
}

static void test_ready_respects_the_callers_capacity(void **st)
{
	struct bg_dag *d = parsed(four_tasks);
	size_t idx[1];

	(void)st;
	assert_int_equal(bg_dag_ready(d, idx, 0), 0);
	assert_int_equal(bg_dag_ready(d, idx, 1), 1);
	bg_dag_free(d);
}

/* ---- validation ---- */

static void test_cycle_is_refused_naming_its_tasks(void **st)
{
	(void)st;
	refused("{\"tasks\": {\"start\": {\"agent\": \"x\"}, \"a\": {\"agent\": "
		"\"x\", \"depends_on\": [\"start\", \"c\"]}, \"b\": {\"agent\": "
		"\"x\", \"depends_on\": [\"a\"]}, \"c\": {\"agent\": \"x\", "
		"\"depends_on\": [\"b\"]}}}",
		"dependency cycle (each depends on the next): \"a\" -> \"c\" "
		"-> \"b\" -> \"a\"");
	refused("{\"tasks\": {\"p\": {\"agent\": \"x\", \"depends_on\": "
		"[\"q\"]}, \"q\": {\"agent\": \"x\", \"depends_on\": "
		"[\"p\"]}}}",
		"\"p\" -> \"q\" -> \"p\"");
}

static void test_each_malformed_spec_is_refused_with_its_reason(void **st)
{
	static const char *const cases[][2] = {
		{ "", "not valid JSON" },
		{ "{\"tasks\": {}", "not valid JSON" },
		{ "[]", "not a JSON object" },
		{ "{}", "has no \"tasks\"" },
		{ "{\"tasks\": []}", "\"tasks\" is not an object" },
		{ "{\"tasks\": {}}", "\"tasks\" is empty" },
		{ "{\"tasks\": {\"a\": 1}}", "task \"a\": not a JSON object" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\"}, \"a\": {\"agent\": "
		  "\"y\"}}}",
		  "duplicate" },
		{ "{\"tasks\": {\"\": {\"agent\": \"x\"}}}",
		  "task #1 of \"tasks\" (counting from 1): its id is empty" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\"}, \"b\\n\": {\"agent\": "
		  "\"x\"}}}",
		  "task #2 of \"tasks\" (counting from 1): its id has a control "
		  "character" },
		{ "{\"tasks\": {\"a\": {}}}", "task \"a\": no \"agent\"" },
		{ "{\"tasks\": {\"a\": {\"agent\": 7}}}",
		  "task \"a\": \"agent\" is not a string" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"\"}}}",
		  "task \"a\": \"agent\" is empty" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"depends_on\": "
		  "\"b\"}}}",
		  "task \"a\": \"depends_on\" is not an array" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"depends_on\": "
		  "[1]}}}",
		  "task \"a\": \"depends_on\" has a non-string entry" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"depends_on\": "
		  "[\"ghost\"]}}}",
		  "task \"a\": depends on \"ghost\", which is not a task" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"depends_on\": "
		  "[\"a\"]}}}",
		  "task \"a\": depends on itself" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\"}, \"b\": {\"agent\": "
		  "\"x\", \"depends_on\": [\"a\", \"a\"]}}}",
		  "task \"b\": depends on \"a\" twice" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"context\": 1}}}",
		  "task \"a\": \"context\" is not an object" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"retries\": -1}}}",
		  "task \"a\": \"retries\" is not an integer in 0..10" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"retries\": 11}}}",
		  "task \"a\": \"retries\"" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"retries\": 1.0}}}",
		  "task \"a\": \"retries\"" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"timeout_ms\": "
		  "86400001}}}",
		  "task \"a\": \"timeout_ms\" is not an integer in 0..86400000" },
		{ "{\"tasks\": {\"a\": {\"agent\": \"x\", \"timeout_ms\": "
		  "\"5\"}}}",
		  "task \"a\": \"timeout_ms\"" },
		{ "{\"max_parallel\": 0, \"tasks\": {\"a\": {\"agent\": \"x\"}}}",
		  "\"max_parallel\" is not an integer in 1..1000" },
		{ "{\"max_parallel\": 1001, \"tasks\": {\"a\": {\"agent\": "
		  "\"x\"}}}",
		  "\"max_parallel\"" },
		{ "{\"context\": [], \"tasks\": {\"a\": {\"agent\": \"x\"}}}",
		  "the spec's \"context\" is not an object" },
	};

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		refused(cases[i][0], cases[i][1]);
}

static void test_unknown_keys_are_refused(void **st)
{
	(void)st;
	/* a misspelt "depends_on" must not silently drop a dependency */
	refused("{\"tasks\": {\"a\": {\"agent\": \"x\", \"depends\": []}}}",
		"task \"a\": unknown key \"depends\"");
	refused("{\"task\": {}, \"tasks\": {\"a\": {\"agent\": \"x\"}}}",
		"unknown key \"task\" in the spec");
}

static char *repeat_spec(size_t ntasks, bool chain, bool close)
{
	size_t cap = ntasks * 80 + 64, off = 0;
	char *s = malloc(cap);

	off += (size_t)snprintf(s + off, cap - off, "{\"tasks\": {");
	for (size_t i = 0; i < ntasks; i++) {
		size_t dep = i ? i - 1 : ntasks - 1;

		off += (size_t)snprintf(s + off, cap - off,
					"%s\"t%zu\": {\"agent\": \"x\"",
					i ? "," : "", i);
		if (chain && (i || close))
			off += (size_t)snprintf(s + off, cap - off,
						", \"depends_on\": [\"t%zu\"]",
						dep);
		off += (size_t)snprintf(s + off, cap - off, "}");
	}
	snprintf(s + off, cap - off, "}}");
	return s;
}

static void test_size_limits_are_enforced(void **st)
{
	struct bg_dag *d = NULL;
	char err[512] = "", *s, *big, id[200];
	size_t n = BG_DAG_MAX_SPEC_BYTES + 1;

	(void)st;
	/* 1000 tasks in a chain (the deepest search) are fine */
	s = repeat_spec(BG_DAG_MAX_TASKS, true, false);
	d = parsed(s);
	assert_int_equal(d->ntasks, BG_DAG_MAX_TASKS);
	assert_string_equal(ready(d), "t0");
	bg_dag_free(d);
	free(s);
	s = repeat_spec(BG_DAG_MAX_TASKS, true, true);
	refused(s, "dependency cycle");
	free(s);
	s = repeat_spec(BG_DAG_MAX_TASKS + 1, false, false);
	assert_int_equal(bg_dag_parse(s, strlen(s), "r", &d, err, sizeof(err)),
			 -E2BIG);
	assert_string_equal(err, "the spec has 1001 tasks (limit 1000)");
	free(s);
	big = malloc(n);
	memset(big, ' ', n);
	assert_int_equal(bg_dag_parse(big, n, "r", &d, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "limit 4194304"));
	free(big);
	memset(id, 'i', 129);
	id[129] = 0;
	snprintf(err, sizeof(err), "{\"tasks\": {\"%s\": {\"agent\": \"x\"}}}",
		 id);
	refused(err, "its id is longer than 128 bytes");
	id[128] = 0;
	snprintf(err, sizeof(err),
		 "{\"tasks\": {\"%s\": {\"agent\": \"x\"}, \"b\": {\"agent\": "
		 "\"x\", \"depends_on\": [\"%s\"]}}}",
		 id, id);
	d = parsed(err);
	start(d, id, 1);
	done(d, id, "o", 2);
	assert_non_null(strstr(extra(d, "b"), id));
	bg_dag_free(d);
}

/* ---- saved state ---- */

static struct bg_dag *reloaded(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	struct bg_dag *d = NULL;
	char err[512] = "";

	assert_non_null(j);
	if (bg_dag_load(j, &d, err, sizeof(err)) != 0)
		fail_msg("load refused: %s", err);
	json_decref(j);
	return d;
}

static void test_saved_state_round_trips_exactly(void **st)
{
	struct bg_dag *d = parsed(
		"{\"max_parallel\": 3, \"context\": {\"lang\": \"fr\"}, "
		"\"tasks\": {"
		"\"a\": {\"agent\": \"x\", \"content\": {\"q\": [1, 2.5]}, "
		"\"retries\": 2, \"timeout_ms\": 500, \"context\": {\"k\": 1}},"
		"\"b\": {\"agent\": \"y\", \"depends_on\": [\"a\"]},"
		"\"c\": {\"agent\": \"z\"}, \"e\": {\"agent\": \"z\", "
		"\"depends_on\": [\"c\"]}}}");
	struct bg_dag *l;
	char *s1, *s2;
	json_t *out = json_pack("{s:[i,f,b,n]}", "r", 1, 0.1, 1);

	(void)st;
	bg_dag_begin(d, 1700000000000);
	start(d, "a", 1700000000001);
	assert_int_equal(bg_dag_fail(d, at(d, "a"), "retry me", 1700000000002),
			 0);
	start(d, "a", 1700000000003);
	start(d, "c", 1700000000003);
	assert_int_equal(bg_dag_fail(d, at(d, "c"), "gone", 1700000000004), 0);
	s1 = saved(d);
	l = reloaded(s1);
	s2 = saved(l);
	assert_string_equal(s1, s2);
	free(s2);
	/* the reloaded run goes on as the original */
	assert_int_equal(bg_dag_done(l, at(l, "a"), out, 1700000000010), 0);
	assert_int_equal(bg_dag_done(d, at(d, "a"), out, 1700000000010), 0);
	json_decref(out);
	assert_string_equal(ready(l), "b");
	assert_int_equal(l->tasks[at(l, "a")].timeout_ms, 500);
	assert_int_equal(l->tasks[at(l, "a")].retries, 2);
	assert_int_equal(l->max_parallel, 3);
	assert_non_null(l->context);
	start(l, "b", 1700000000011);
	start(d, "b", 1700000000011);
	done(l, "b", "B", 1700000000020);
	done(d, "b", "B", 1700000000020);
	free(s1);
	s1 = strdup(result(d));
	assert_string_equal(s1, result(l));
	free(s1);
	s1 = saved(l);
	bg_dag_free(l);
	l = reloaded(s1);
	s2 = saved(l);
	assert_string_equal(s1, s2);
	assert_true(bg_dag_finished(l));
	free(s1);
	free(s2);
	bg_dag_free(l);
	bg_dag_free(d);
}

static void test_load_refuses_inconsistent_state(void **st)
{
	struct bg_dag *d = parsed(four_tasks), *l = NULL;
	char err[512], *s = NULL;
	json_t *j, *copy;

	(void)st;
	assert_int_equal(bg_dag_save(d, &j), 0);
	/* draft DONE while research is PENDING */
	copy = json_deep_copy(j);
	json_object_set_new(json_object_get(json_object_get(copy, "state"),
					    "draft"),
			    "status", json_string("DONE"));
	assert_int_equal(bg_dag_load(copy, &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "task \"draft\": DONE is inconsistent"));
	json_decref(copy);
	/* an unknown status, a missing task, a wrong version */
	copy = json_deep_copy(j);
	json_object_set_new(json_object_get(json_object_get(copy, "state"),
					    "review"),
			    "status", json_string("LOST"));
	assert_int_equal(bg_dag_load(copy, &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "task \"review\" is malformed"));
	json_decref(copy);
	copy = json_deep_copy(j);
	json_object_del(json_object_get(copy, "state"), "review");
	assert_int_equal(bg_dag_load(copy, &l, err, sizeof(err)), -EINVAL);
	json_decref(copy);
	copy = json_deep_copy(j);
	json_object_set_new(copy, "version", json_integer(2));
	assert_int_equal(bg_dag_load(copy, &l, err, sizeof(err)), -EINVAL);
	json_decref(copy);
	assert_null(l);
	free(s);
	json_decref(j);
	bg_dag_free(d);
}

/* ---- robustness ---- */

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 16) % n;
}

static json_t *random_value(int depth);

static json_t *random_spec_like(void)
{
	static const char *const keys[] = {
		"tasks",      "agent",	      "depends_on", "retries",
		"timeout_ms", "max_parallel", "context",    "content",
		"t0",	      "t1",	      "t2",	    "t3"
	};
	json_t *spec = json_object(), *tasks = json_object();
	size_t n = rnd(8);

	for (size_t i = 0; i < n; i++) {
		char id[8];
		json_t *t = json_object(), *deps = json_array();

		snprintf(id, sizeof(id), "t%u",
			 rnd(8) ? (unsigned)i : rnd(5)); /* some collide */
		json_object_set_new(t, "agent", json_string("x"));
		for (unsigned k = i || rnd(8) == 0 ? rnd(3) : 0; k > 0; k--) {
			char dep[8]; /* mostly earlier tasks; some unknown */

			snprintf(dep, sizeof(dep), "t%u",
				 rnd(8) ? rnd((unsigned)i + 1) : rnd(7));
			json_array_append_new(deps, json_string(dep));
		}
		json_object_set_new(t, "depends_on", deps);
		json_object_set_new(t, "retries", json_integer(rnd(3)));
		if (rnd(8) == 0)
			json_object_set_new(t, keys[rnd(12)], random_value(2));
		json_object_set_new(tasks, id, t);
	}
	json_object_set_new(spec, "tasks", tasks);
	if (rnd(2))
		json_object_set_new(spec, "max_parallel",
				    json_integer((int)rnd(5) - 1));
	if (rnd(5) == 0)
		json_object_set_new(spec, keys[rnd(12)], random_value(2));
	return spec;
}

static json_t *random_value(int depth)
{
	switch (depth > 0 ? rnd(7) : rnd(4)) {
	case 0:
		return json_null();
	case 1:
		return json_integer((json_int_t)rnd(2000) - 1000);
	case 2:
		return json_string(rnd(2) ? "t1" : "");
	case 3:
		return json_true();
	case 4: {
		json_t *a = json_array();

		for (unsigned k = rnd(4); k > 0; k--)
			json_array_append_new(a, random_value(depth - 1));
		return a;
	}
	default: {
		json_t *o = json_object();

		for (unsigned k = rnd(4); k > 0; k--) {
			char key[8];

			snprintf(key, sizeof(key), "t%u", rnd(4));
			json_object_set_new(o, key, random_value(depth - 1));
		}
		return o;
	}
	}
}

/* Drive an accepted graph to its end with random outcomes, checking that it
 * always ends, every task is final and the saved state round-trips. */
static void run_randomly(struct bg_dag *d)
{
	size_t idx[BG_DAG_MAX_TASKS], steps = 0;
	int64_t now = 1;

	bg_dag_begin(d, now);
	while (!bg_dag_finished(d)) {
		size_t n = bg_dag_ready(d, idx, BG_DAG_MAX_TASKS);

		for (size_t k = 0; k < n; k++)
			assert_int_equal(bg_dag_start(d, idx[k], ++now), 0);
		for (size_t i = 0; i < d->ntasks; i++) {
			if (d->tasks[i].status != BG_DAG_RUNNING)
				continue;
			if (rnd(3) == 0)
				assert_int_equal(
					bg_dag_fail(d, i, "random", ++now), 0);
			else
				assert_int_equal(bg_dag_done(d, i, NULL, ++now),
						 0);
		}
		assert_true(++steps < 100);
		if (rnd(3) == 0) {
			char *s1 = saved(d), *s2;
			struct bg_dag *l = reloaded(s1);

			s2 = saved(l);
			assert_string_equal(s1, s2);
			free(s1);
			free(s2);
			bg_dag_free(l);
		}
	}
	for (size_t i = 0; i < d->ntasks; i++)
		assert_true(d->tasks[i].status >= BG_DAG_DONE);
	free(saved(d));
	(void)result(d);
}

static void test_random_specs_never_crash(void **st)
{
	char err[512];

	(void)st;
	for (int round = 0; round < 3000; round++) {
		json_t *spec = rnd(4) ? random_spec_like() : random_value(3);
		char *text = json_dumps(spec, JSON_ENCODE_ANY);
		size_t len = strlen(text);
		struct bg_dag *d = NULL;

		/* sometimes break the text itself */
		for (unsigned k = rnd(3) == 0 ? rnd(4) + 1 : 0; k > 0 && len;
		     k--)
			text[rnd((unsigned)len)] = (char)rnd(256);
		if (bg_dag_parse(text, len, "r", &d, err, sizeof(err)) == 0)
			run_randomly(d);
		else
			assert_true(err[0] != 0);
		bg_dag_free(d);
		free(text);
		json_decref(spec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_draft_starts_only_after_research),
		cmocka_unit_test(
			test_review_and_translate_start_together_with_drafts_output),
		cmocka_unit_test(
			test_extra_payload_carries_every_dependency_in_order),
		cmocka_unit_test(test_failed_task_skips_dependents_naming_it),
		cmocka_unit_test(
			test_failure_with_retries_left_goes_back_to_pending),
		cmocka_unit_test(test_failure_after_the_last_retry_is_final),
		cmocka_unit_test(test_max_parallel_counts_running_tasks),
		cmocka_unit_test(test_ready_respects_the_callers_capacity),
		cmocka_unit_test(test_cycle_is_refused_naming_its_tasks),
		cmocka_unit_test(
			test_each_malformed_spec_is_refused_with_its_reason),
		cmocka_unit_test(test_unknown_keys_are_refused),
		cmocka_unit_test(test_size_limits_are_enforced),
		cmocka_unit_test(test_saved_state_round_trips_exactly),
		cmocka_unit_test(test_load_refuses_inconsistent_state),
		cmocka_unit_test(test_random_specs_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
