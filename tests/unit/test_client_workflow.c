/* tests/unit/test_client_workflow.c - specification of client/workflow.c,
 * the pure parts of `bygate dag`, `fanout` and `group`: which data-stream
 * entries are a workflow's steps, the progress line of a step, the result
 * tables and their exit verdict, and the documents the commands send.
 * Everything read is untrusted and must never crash the client. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "client/client_internal.h"

#define MID "msg-1a2b3c4d"
#define EXEC "exec-0a1b2c3d"
/* 2024-06-10 06:13:20.123 UTC */
#define TS 1717999999000LL + 1123

/* A DataMessage (WIRE 3.2, 3.3) of event_type / contentType carrying
 * content, from message mid, as the `data` field of an entry. */
static char *event(const char *event_type, const char *content_type,
		   const char *mid, const char *content)
{
	json_t *m = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:I,s:{s:s,s:[{s:{s:s?}}]}}", "trace_id",
		"t", "session_id", "s", "event_type", event_type,
		"source_agent_type", "bygate.dag", "message_id", mid,
		"timestamp", (json_int_t)(TS), "data", "contentType",
		content_type, "choices", "delta", "content", content);
	char *s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return s;
}

static json_t *step_of(const char *raw, int64_t *ts)
{
	return bg_client_wf_step(raw, strlen(raw), MID, EXEC, ts);
}

static const char dag_running[] =
	"{\"bygate_workflow\":\"dag\",\"run_id\":\"" EXEC "\","
	"\"task_id\":\"research\",\"agent\":\"researcher\","
	"\"status\":\"RUNNING\",\"retry_count\":0,\"error\":null,"
	"\"message_id\":\"msg-99\"}";

static void test_state_event_with_bygate_workflow_is_a_step(void **st)
{
	(void)st;
	char *raw = event("reasoningLogDelta", "3003", MID, dag_running);
	int64_t ts;
	json_t *step = step_of(raw, &ts);
	assert_non_null(step);
	assert_int_equal(ts, TS);
	assert_string_equal(bg_client_jstr(step, "task_id"), "research");
	json_decref(step);
	free(raw);
}

static void
test_step_of_another_message_counts_when_its_run_id_matches(void **st)
{
	(void)st;
	char *raw =
		event("reasoningLogDelta", "3003", "msg-other", dag_running);
	int64_t ts;
	json_t *step = step_of(raw, &ts);
	assert_non_null(step);
	json_decref(step);
	free(raw);
	raw = event("reasoningLogDelta", "3003", "msg-other", dag_running);
	json_t *s =
		bg_client_wf_step(raw, strlen(raw), MID, "exec-nested", &ts);
	assert_null(s); /* a nested workflow's step: not ours */
	assert_int_equal(ts, 0);
	free(raw);
}

static void test_other_entries_are_not_steps(void **st)
{
	(void)st;
	const char *cases[][2] = {
		{ "answerDelta", dag_running },		/* not a state event */
		{ "reasoningLogDelta", "A_CALLING_B" }, /* not JSON */
		{ "reasoningLogDelta", "{\"task_id\":\"x\"}" }, /* no marker */
		{ "reasoningLogDelta", "{\"bygate_workflow\":1}" },
		{ "reasoningLogDelta", "[1,2]" },
	};
	int64_t ts;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *raw = event(cases[i][0], "3003", MID, cases[i][1]);
		assert_null(step_of(raw, &ts));
		free(raw);
	}
	char *raw = event("reasoningLogDelta", "1002", MID, dag_running);
	assert_null(step_of(raw, &ts)); /* a chunk, not a state */
	free(raw);
	assert_null(step_of("not json at all", &ts));
	assert_null(step_of("{\"event_type\":\"reasoningLogDelta\"}", &ts));
	assert_null(bg_client_wf_step(NULL, 0, MID, EXEC, &ts));
}

/* The progress line of the step JSON text at TS. */
static char *line_of(const char *step_json, int64_t ts)
{
	json_t *s = json_loads(step_json, 0, NULL);
	struct bg_buf b = { 0 };
	assert_int_equal(bg_client_wf_step_line(&b, s, ts), 0);
	json_decref(s);
	return bg_buf_steal(&b);
}

static void test_step_line_shows_time_task_status_and_agent(void **st)
{
	(void)st;
	char *l = line_of(dag_running, TS);
	assert_string_equal(l, "06:13:20.123  research          RUNNING    "
			       "researcher");
	free(l);
}

static void test_step_line_adds_the_retry_and_the_error(void **st)
{
	(void)st;
	char *l = line_of("{\"bygate_workflow\":\"dag\",\"task_id\":\"draft\","
			  "\"agent\":\"writer\",\"status\":\"FAILED\","
			  "\"retry_count\":2,\"error\":\"boom\"}",
			  TS);
	assert_string_equal(l, "06:13:20.123  draft             FAILED     "
			       "writer  (retry 2)  boom");
	free(l);
}

static void test_step_line_names_fanout_and_group_members(void **st)
{
	(void)st;
	char *l = line_of("{\"bygate_workflow\":\"fanout\",\"index\":3,"
			  "\"agent\":\"w\",\"status\":\"TIMEOUT\"}",
			  TS);
	assert_string_equal(l, "06:13:20.123  #3                TIMEOUT    w");
	free(l);
	l = line_of("{\"bygate_workflow\":\"group\",\"role\":\"follower\","
		    "\"index\":2,\"agent\":\"r\",\"status\":\"DONE\"}",
		    TS);
	assert_string_equal(l, "06:13:20.123  follower 2        DONE       r");
	free(l);
	l = line_of("{\"bygate_workflow\":\"group\",\"role\":\"primer\","
		    "\"status\":\"RUNNING\"}",
		    0);
	assert_string_equal(l, "--:--:--.---  primer            RUNNING    -");
	free(l);
}

static void test_step_line_cannot_drive_the_terminal(void **st)
{
	(void)st;
	char *l = line_of("{\"bygate_workflow\":\"dag\",\"task_id\":\"a\\u001b"
			  "[2J\",\"agent\":\"x\",\"status\":\"FAILED\","
			  "\"error\":{\"why\":\"line\\nbreak\"}}",
			  TS);
	assert_null(strchr(l, '\033'));
	assert_null(strchr(l, '\n'));
	assert_non_null(strstr(l, "a?[2J"));
	assert_non_null(strstr(l, "{\"why\":\"line\\nbreak\"}"));
	free(l);
}

static const char dag_result[] =
	"{\"run_id\":\"" EXEC "\",\"total\":3,\"done\":1,\"failed\":1,"
	"\"skipped\":1,\"duration_ms\":5230,\"tasks\":["
	"{\"task_id\":\"research\",\"status\":\"DONE\",\"agent\":"
	"\"researcher\",\"output\":\"x\",\"error\":null,\"started_at\":"
	"1700000000001,\"finished_at\":1700000001201,\"retry_count\":0},"
	"{\"task_id\":\"draft\",\"status\":\"FAILED\",\"agent\":\"writer\","
	"\"output\":null,\"error\":\"boom\",\"started_at\":1700000001300,"
	"\"finished_at\":1700000001400,\"retry_count\":1},"
	"{\"task_id\":\"review\",\"status\":\"SKIPPED\",\"agent\":"
	"\"reviewer\",\"output\":null,\"error\":\"dependency \\\"draft\\\" "
	"failed\",\"started_at\":null,\"finished_at\":null,"
	"\"retry_count\":0}]}";

static char *table_of(enum bg_wf_kind k, const char *result)
{
	json_t *r = json_loads(result, 0, NULL);
	struct bg_buf b = { 0 };
	assert_non_null(r);
	assert_int_equal(bg_client_wf_table(&b, k, r), 0);
	json_decref(r);
	return bg_buf_steal(&b);
}

static void test_dag_table_has_a_row_per_task_and_a_summary(void **st)
{
	(void)st;
	char *t = table_of(BG_WF_DAG, dag_result);
	assert_string_equal(
		t,
		"TASK      STATUS     AGENT       RETRIES    DURATION  ERROR\n"
		"research  DONE       researcher        0     1.200 s\n"
		"draft     FAILED     writer            1     0.100 s  boom\n"
		"review    SKIPPED    reviewer          0           -  "
		"dependency \"draft\" failed\n"
		"dag " EXEC ": 3 task(s): 1 done, 1 failed, 1 skipped in "
		"5.230 s\n");
	free(t);
}

static void test_fanout_table_lists_reports_in_input_order(void **st)
{
	(void)st;
	char *t = table_of(
		BG_WF_FANOUT,
		"{\"run_id\":\"r\",\"total\":3,\"success\":1,\"failed\":1,"
		"\"timeout\":1,\"stopped\":0,\"duration_ms\":2003,\"reports\":["
		"{\"index\":2,\"status\":\"timeout\",\"summary\":null,"
		"\"error\":\"deadline\",\"duration_seconds\":2.0},"
		"{\"index\":0,\"status\":\"success\",\"summary\":\"ok 0\","
		"\"error\":null,\"duration_seconds\":0.5},"
		"{\"index\":1,\"status\":\"failed\",\"summary\":\"half\","
		"\"error\":\"bad\",\"duration_seconds\":1}]}");
	assert_string_equal(
		t, "INDEX  STATUS       DURATION  SUMMARY / ERROR\n"
		   "    0  success       0.500 s  ok 0\n"
		   "    1  failed        1.000 s  bad\n"
		   "    2  timeout       2.000 s  deadline\n"
		   "fanout r: 3 sub-task(s): 1 success, 1 failed, 1 timeout, "
		   "0 stopped in 2.003 s\n");
	free(t);
}

static void test_group_table_shows_primer_then_followers(void **st)
{
	(void)st;
	char *t = table_of(
		BG_WF_GROUP,
		"{\"run_id\":\"g\",\"primer\":{\"status\":\"DONE\",\"output\":"
		"{\"cache\":\"c-1\"},\"error\":null,\"handle\":\"c-1\"},"
		"\"followers\":[{\"index\":1,\"status\":\"FAILED\",\"output\":"
		"null,\"error\":\"primer gone\"},{\"index\":0,\"status\":"
		"\"DONE\",\"output\":\"fine\",\"error\":null}]}");
	assert_string_equal(t, "ROLE          STATUS     ERROR / OUTPUT\n"
			       "primer        DONE       {\"cache\":\"c-1\"}\n"
			       "follower 0    DONE       fine\n"
			       "follower 1    FAILED     primer gone\n"
			       "group g: primer DONE, 2 follower(s): 1 done, 1 "
			       "not\n");
	free(t);
}

static void test_tables_of_malformed_results_do_not_crash(void **st)
{
	(void)st;
	const char *odd[] = { "{}", "{\"tasks\":7,\"reports\":\"x\"}",
			      "{\"tasks\":[1,null,{\"task_id\":5}],"
			      "\"reports\":[[]],\"followers\":[3],"
			      "\"primer\":[]}" };
	for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
		for (int k = BG_WF_DAG; k <= BG_WF_GROUP; k++) {
			char *t = table_of((enum bg_wf_kind)k, odd[i]);
			assert_true(strlen(t) > 0);
			free(t);
		}
}

static bool ok_of(enum bg_wf_kind k, const char *result)
{
	json_t *r = json_loads(result, 0, NULL);
	bool ok = bg_client_wf_ok(k, r);
	json_decref(r);
	return ok;
}

static void test_a_result_is_ok_only_when_everything_succeeded(void **st)
{
	(void)st;
	assert_false(ok_of(BG_WF_DAG, dag_result));
	assert_true(ok_of(BG_WF_DAG,
			  "{\"total\":1,\"done\":1,\"failed\":0,\"skipped\":0,"
			  "\"tasks\":[{\"status\":\"DONE\"}]}"));
	assert_false(ok_of(BG_WF_DAG, "{\"error\":\"dependency cycle\"}"));
	assert_false(ok_of(BG_WF_DAG, "{\"done\":0}"));
	assert_true(ok_of(BG_WF_FANOUT,
			  "{\"total\":2,\"success\":2,\"reports\":[]}"));
	assert_false(ok_of(BG_WF_FANOUT,
			   "{\"total\":2,\"success\":1,\"timeout\":1}"));
	assert_true(ok_of(BG_WF_GROUP,
			  "{\"primer\":{\"status\":\"DONE\"},\"followers\":"
			  "[{\"status\":\"done\"}]}"));
	assert_false(ok_of(BG_WF_GROUP, "{\"primer\":{\"status\":\"FAILED\"},"
					"\"followers\":[]}"));
	assert_false(ok_of(BG_WF_GROUP,
			   "{\"primer\":{\"status\":\"DONE\"},\"followers\":"
			   "[{\"status\":\"FAILED\"}]}"));
	assert_false(bg_client_wf_ok(BG_WF_DAG, NULL));
}

static char *dump(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	return s;
}

static void test_followers_come_as_one_a_list_or_a_followers_member(void **st)
{
	(void)st;
	json_t *into = json_array();
	const char *why;
	assert_int_equal(
		bg_client_wf_followers("{\"agent\":\"a\"}", into, &why), 0);
	assert_int_equal(bg_client_wf_followers("[{\"agent\":\"b\"},"
						"{\"agent\":\"c\"}]",
						into, &why),
			 0);
	assert_int_equal(bg_client_wf_followers("{\"followers\":[{\"agent\":"
						"\"d\",\"content\":\"x\"}]}",
						into, &why),
			 0);
	json_t *add = bg_client_wf_group_add(into);
	/* add_id: a fresh 32-hex id, so the group applies the add once */
	const char *add_id = json_string_value(json_object_get(add, "add_id"));
	assert_non_null(add_id);
	assert_int_equal(strlen(add_id), 32);
	json_object_del(add, "add_id");
	char *s = dump(add);
	assert_string_equal(
		s, "{\"bygate_group\":\"add\",\"followers\":[{\"agent\":\"a\"},"
		   "{\"agent\":\"b\"},{\"agent\":\"c\"},{\"agent\":\"d\","
		   "\"content\":\"x\"}]}");
	free(s);
	json_decref(into);
	s = dump(bg_client_wf_group_close());
	assert_string_equal(s, "{\"bygate_group\":\"close\"}");
	free(s);
}

static void test_bad_followers_are_refused_with_a_reason(void **st)
{
	(void)st;
	const char *bad[] = { "nope",
			      "[]",
			      "{\"followers\":[]}",
			      "{\"content\":\"x\"}",
			      "{\"agent\":\"\"}",
			      "{\"agent\":7}",
			      "[{\"agent\":\"a\"},3]",
			      "\"a\"",
			      "{\"agent\":\"a\",\"agent\":\"b\"}" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		json_t *into = json_array();
		const char *why = NULL;
		assert_int_equal(bg_client_wf_followers(bad[i], into, &why),
				 -EINVAL);
		assert_non_null(why);
		json_decref(into);
	}
}

static void test_fanout_spec_has_inputs_or_a_count(void **st)
{
	(void)st;
	json_t *in = json_loads("[\"a\",{\"k\":1}]", 0, NULL);
	char *s = dump(bg_client_wf_fanout_spec("w", in, 0, 2.0));
	assert_string_equal(s, "{\"agent\":\"w\",\"inputs\":[\"a\",{\"k\":1}],"
			       "\"timeout_s\":2}");
	free(s);
	json_decref(in);
	s = dump(bg_client_wf_fanout_spec("w", NULL, 10, 1.5));
	assert_string_equal(s,
			    "{\"agent\":\"w\",\"count\":10,\"timeout_s\":1.5}");
	free(s);
}

static void test_kinds_and_their_agent_types(void **st)
{
	(void)st;
	enum bg_wf_kind k;
	assert_int_equal(bg_client_wf_kind("fanout", &k), 0);
	assert_int_equal(k, BG_WF_FANOUT);
	assert_string_equal(bg_client_wf_agent_type(BG_WF_DAG), "bygate.dag");
	assert_string_equal(bg_client_wf_agent_type(BG_WF_GROUP),
			    "bygate.group");
	assert_int_equal(bg_client_wf_kind("graph", &k), -EINVAL);
	assert_int_equal(bg_client_wf_kind(NULL, &k), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_state_event_with_bygate_workflow_is_a_step),
		cmocka_unit_test(
			test_step_of_another_message_counts_when_its_run_id_matches),
		cmocka_unit_test(test_other_entries_are_not_steps),
		cmocka_unit_test(
			test_step_line_shows_time_task_status_and_agent),
		cmocka_unit_test(test_step_line_adds_the_retry_and_the_error),
		cmocka_unit_test(test_step_line_names_fanout_and_group_members),
		cmocka_unit_test(test_step_line_cannot_drive_the_terminal),
		cmocka_unit_test(
			test_dag_table_has_a_row_per_task_and_a_summary),
		cmocka_unit_test(
			test_fanout_table_lists_reports_in_input_order),
		cmocka_unit_test(test_group_table_shows_primer_then_followers),
		cmocka_unit_test(test_tables_of_malformed_results_do_not_crash),
		cmocka_unit_test(
			test_a_result_is_ok_only_when_everything_succeeded),
		cmocka_unit_test(
			test_followers_come_as_one_a_list_or_a_followers_member),
		cmocka_unit_test(test_bad_followers_are_refused_with_a_reason),
		cmocka_unit_test(test_fanout_spec_has_inputs_or_a_count),
		cmocka_unit_test(test_kinds_and_their_agent_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
