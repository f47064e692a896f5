/* tests/unit/test_wire_event.c - specification of wire/event: every event
 * kind of WIRE 3.7 matches the Python worker's data-stream entry key for key,
 * plus the per-kind defaults, overrides and the sub-agent forcing rule. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/event.h"

/* WIRE 3.7, first entry, decoded (the value of the `data` field). */
static const char chunk_literal[] =
	"{\"trace_id\": \"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"session_id\": "
	"\"sess-42\", \"event_type\": \"answerDelta\", \"source_agent_type\": "
	"\"planner\", \"message_id\": \"msg-1a2b3c4d\", \"parent_message_id\": "
	"\"\", \"timestamp\": 1718000000123, \"data\": {\"id\": "
	"\"3F2A9C0D6E1B4A7C8D5E2F1A0B9C8D7E\", \"created\": 1718000000, "
	"\"model\": \"\", \"object\": \"\", \"contentType\": \"1002\", "
	"\"agentId\": \"planner\", \"orderId\": \"msg-1a2b3c4d\", "
	"\"parentOrderId\": \"\", \"objectType\": null, \"status\": null, "
	"\"choices\": [{\"index\": 0, \"finish_reason\": \"\", \"delta\": "
	"{\"role\": \"assistant\", \"content\": \"Hello\", \"function_call\": "
	"null, \"function_response\": null, \"tool_calls\": null, "
	"\"tool_responses\": null}}]}, \"state_msg\": \"\", \"artifact_url\": "
	"\"\", \"metadata\": {}}";

static const struct bg_event_ctx root_ctx = {
	.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
	.session_id = BG_STR_LIT("sess-42"),
	.agent_type = BG_STR_LIT("planner"),
	.message_id = BG_STR_LIT("msg-1a2b3c4d"),
	.parent_message_id = BG_STR_LIT(""),
};

static const struct bg_event_ctx sub_ctx = {
	.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
	.session_id = BG_STR_LIT("sess-42"),
	.agent_type = BG_STR_LIT("researcher"),
	.message_id = BG_STR_LIT("msg-5e6f7a8b"),
	.parent_message_id = BG_STR_LIT("msg-1a2b3c4d"),
	.is_sub_agent = true,
};

static struct bg_event event_of(enum bg_event_kind kind, const char *content)
{
	struct bg_event ev = {
		.kind = kind,
		.content = bg_str_c(content),
		.now_ms = 1718000000123,
		.uuid = BG_STR_LIT("3F2A9C0D6E1B4A7C8D5E2F1A0B9C8D7E"),
	};
	return ev;
}

/* Build the event and parse the result; fails the test on any error. */
static json_t *build(const struct bg_event_ctx *ctx, const struct bg_event *ev)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_event_build(&out, ctx, ev), 0);
	json_error_t err;
	json_t *j = json_loadb(out.p, out.len, 0, &err);
	if (j == NULL)
		fail_msg("invalid JSON (%s): %s", err.text, out.p);
	bg_buf_free(&out);
	return j;
}

static json_t *delta_of(json_t *msg)
{
	json_t *choices =
		json_object_get(json_object_get(msg, "data"), "choices");
	return json_object_get(json_array_get(choices, 0), "delta");
}

/* The 3.7 literal with the parts that differ for another event kind. */
static json_t *expected(const char *event_type, const char *content_type,
			const char *role, const char *content)
{
	json_t *j = json_loads(chunk_literal, 0, NULL);
	assert_non_null(j);
	json_object_set_new(j, "event_type", json_string(event_type));
	json_object_set_new(json_object_get(j, "data"), "contentType",
			    json_string(content_type));
	json_t *d = delta_of(j);
	json_object_set_new(d, "role", role ? json_string(role) : json_null());
	json_object_set_new(d, "content", json_string(content));
	return j;
}

static void assert_json_equal(json_t *got, json_t *want)
{
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_SORT_KEYS);
		fail_msg("JSON differs:\n got  %s\n want %s", g, w);
	}
	json_decref(got);
	json_decref(want);
}

static void test_chunk_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	assert_json_equal(build(&root_ctx, &ev),
			  json_loads(chunk_literal, 0, NULL));
}

static void test_state_event_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_STATE, "A_CALLING_B");
	assert_json_equal(build(&root_ctx, &ev),
			  expected("reasoningLogDelta", "3003", NULL,
				   "A_CALLING_B"));
}

static void test_artifact_event_matches_wire_literal(void **state)
{
	struct bg_event ev =
		event_of(BG_EVENT_ARTIFACT, "https://files.example/report.pdf");
	assert_json_equal(
		build(&root_ctx, &ev),
		expected(
			"reasoningLogDelta", "3010", NULL,
			"[{\"fileUrl\": \"https://files.example/report.pdf\"}]"));
}

static void test_ask_user_form_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_ASK_USER, "Which city?");
	assert_json_equal(
		build(&root_ctx, &ev),
		expected(
			"reasoningLogDelta", "3013", "assistant",
			"{\"formStatus\": 0, \"pluginMachineFields\": "
			"[{\"formType\": \"textarea\", \"fieldName\": "
			"\"user_input\", \"fieldCode\": \"user_input\", "
			"\"description\": \"Which city?\", \"required\": true}]}"));
}

static void
test_ask_user_prompt_with_questions_is_sent_verbatim_as_3014(void **state)
{
	const char *prompt = "{\"questions\": [{\"q\": \"Which city?\"}]}";
	struct bg_event ev = event_of(BG_EVENT_ASK_USER, prompt);
	assert_json_equal(build(&root_ctx, &ev),
			  expected("reasoningLogDelta", "3014", "assistant",
				   prompt));
}

static void test_ask_user_json_prompt_without_questions_is_a_form(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_ASK_USER, "{\"q\": 1}");
	json_t *got = build(&root_ctx, &ev);
	json_t *ct =
		json_object_get(json_object_get(got, "data"), "contentType");
	assert_string_equal(json_string_value(ct), "3013");
	json_decref(got);
}

static void test_final_answer_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_FINAL_ANSWER, "Itinerary ready");
	assert_json_equal(build(&root_ctx, &ev),
			  expected("finalAnswer", "1002", "assistant",
				   "Itinerary ready"));
}

static void test_end_of_stream_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_END_OF_STREAM, "ignored");
	assert_json_equal(build(&root_ctx, &ev),
			  expected("appStreamResponse", "1002", "assistant",
				   ""));
}

/* The sub-agent chunk of 3.7: researcher, child of planner. */
static json_t *expected_sub(const char *event_type, const char *content)
{
	json_t *j = expected(event_type, "1002", "assistant", content);
	json_t *data = json_object_get(j, "data");
	json_object_set_new(j, "source_agent_type", json_string("researcher"));
	json_object_set_new(j, "message_id", json_string("msg-5e6f7a8b"));
	json_object_set_new(j, "parent_message_id",
			    json_string("msg-1a2b3c4d"));
	json_object_set_new(data, "agentId", json_string("researcher"));
	json_object_set_new(data, "orderId", json_string("msg-5e6f7a8b"));
	json_object_set_new(data, "parentOrderId", json_string("msg-1a2b3c4d"));
	return j;
}

static void test_sub_agent_chunk_matches_wire_literal(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	assert_json_equal(build(&sub_ctx, &ev),
			  expected_sub("reasoningLogDelta", "Hello"));
}

static void test_sub_agent_overrides_cannot_escape_forcing(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	ev.event_type = BG_STR_LIT("answerDelta");
	assert_json_equal(build(&sub_ctx, &ev),
			  expected_sub("reasoningLogDelta", "Hello"));
}

static void test_sub_agent_final_answer_becomes_reasoning_log(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_FINAL_ANSWER, "Found 3 hotels");
	assert_json_equal(build(&sub_ctx, &ev),
			  expected_sub("reasoningLogDelta", "Found 3 hotels"));
}

static void
test_sub_agent_end_of_stream_becomes_empty_reasoning_log(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_END_OF_STREAM, "");
	assert_json_equal(build(&sub_ctx, &ev),
			  expected_sub("reasoningLogDelta", ""));
	assert_true(bg_str_eq(bg_event_type_of(&sub_ctx, &ev),
			      "reasoningLogDelta"));
}

static void
test_sub_agent_chunk_marked_end_of_stream_is_not_an_end_marker(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "");
	ev.event_type = BG_STR_LIT("appStreamResponse");
	assert_true(bg_str_eq(bg_event_type_of(&sub_ctx, &ev),
			      "reasoningLogDelta"));
	assert_true(bg_str_eq(bg_event_type_of(&root_ctx, &ev),
			      "appStreamResponse"));
}

static void test_sub_agent_state_keeps_its_event_type_override(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_STATE, "step");
	ev.event_type = BG_STR_LIT("taskCreate");
	assert_true(bg_str_eq(bg_event_type_of(&sub_ctx, &ev), "taskCreate"));
}

static void test_sub_step_gets_fresh_id_and_current_parent(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_SUB_STEP, "Searching");
	ev.message_id = BG_STR_LIT("msg-99999999");
	json_t *want =
		expected("reasoningLogDelta", "1002", "assistant", "Searching");
	json_t *data = json_object_get(want, "data");
	json_object_set_new(want, "message_id", json_string("msg-99999999"));
	json_object_set_new(want, "parent_message_id",
			    json_string("msg-1a2b3c4d"));
	json_object_set_new(data, "orderId", json_string("msg-99999999"));
	json_object_set_new(data, "parentOrderId", json_string("msg-1a2b3c4d"));
	assert_json_equal(build(&root_ctx, &ev), want);
}

static void test_sub_step_without_message_id_is_rejected(void **state)
{
	struct bg_buf out = { 0 };
	struct bg_event ev = event_of(BG_EVENT_SUB_STEP, "Searching");
	assert_int_equal(bg_event_build(&out, &root_ctx, &ev), -EINVAL);
	bg_buf_free(&out);
}

static void test_chunk_overrides_event_type_content_type_and_role(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "thinking");
	ev.event_type = BG_STR_LIT("reasoningLogStart");
	ev.content_type = BG_STR_LIT("3005");
	ev.role = BG_STR_LIT("tool-call");
	assert_json_equal(build(&root_ctx, &ev),
			  expected("reasoningLogStart", "3005", "tool-call",
				   "thinking"));
}

static void test_optional_members_are_written_when_given(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	ev.object_type = BG_STR_LIT("card");
	ev.status = BG_STR_LIT("done");
	ev.metadata = BG_STR_LIT("{\"k\": [1, 2]}");
	ev.function_call = BG_STR_LIT("{\"name\": \"f\"}");
	ev.tool_calls = BG_STR_LIT("[{\"id\": \"t1\"}]");
	json_t *want = json_loads(chunk_literal, 0, NULL);
	json_t *data = json_object_get(want, "data");
	json_object_set_new(data, "objectType", json_string("card"));
	json_object_set_new(data, "status", json_string("done"));
	json_object_set_new(want, "metadata",
			    json_pack("{s:[i,i]}", "k", 1, 2));
	json_object_set_new(delta_of(want), "function_call",
			    json_pack("{s:s}", "name", "f"));
	json_object_set_new(delta_of(want), "tool_calls",
			    json_pack("[{s:s}]", "id", "t1"));
	assert_json_equal(build(&root_ctx, &ev), want);
}

static void test_malformed_raw_members_are_rejected(void **state)
{
	const char *bad[] = { "{\"k\": ", "[1]", "\"x\"", "{} {}" };
	struct bg_buf out = { 0 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
		ev.metadata = bg_str_c(bad[i]);
		assert_int_equal(bg_event_build(&out, &root_ctx, &ev), -EINVAL);
	}
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	ev.tool_calls = BG_STR_LIT("{}");
	assert_int_equal(bg_event_build(&out, &root_ctx, &ev), -EINVAL);
	ev = event_of((enum bg_event_kind)42, "Hello");
	assert_int_equal(bg_event_build(&out, &root_ctx, &ev), -EINVAL);
	bg_buf_free(&out);
}

static void test_empty_agent_type_writes_null_agent_id(void **state)
{
	struct bg_event_ctx ctx = root_ctx;
	ctx.agent_type = BG_STR_LIT("");
	struct bg_event ev = event_of(BG_EVENT_CHUNK, "Hello");
	json_t *got = build(&ctx, &ev);
	assert_true(json_is_null(
		json_object_get(json_object_get(got, "data"), "agentId")));
	assert_string_equal(
		json_string_value(json_object_get(got, "source_agent_type")),
		"");
	json_decref(got);
}

static void test_content_is_escaped_and_round_trips(void **state)
{
	const char *text =
		"line \"one\"\n\ttab \\ caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd";
	struct bg_event ev = event_of(BG_EVENT_CHUNK, text);
	json_t *got = build(&root_ctx, &ev);
	assert_string_equal(
		json_string_value(json_object_get(delta_of(got), "content")),
		text);
	json_decref(got);
}

static void test_artifact_url_with_quotes_stays_valid_json(void **state)
{
	struct bg_event ev = event_of(BG_EVENT_ARTIFACT, "https://x/\"a\".pdf");
	json_t *got = build(&root_ctx, &ev);
	const char *content =
		json_string_value(json_object_get(delta_of(got), "content"));
	json_t *files = json_loads(content, 0, NULL);
	assert_non_null(files);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(files, 0), "fileUrl")),
			    "https://x/\"a\".pdf");
	json_decref(files);
	json_decref(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chunk_matches_wire_literal),
		cmocka_unit_test(test_state_event_matches_wire_literal),
		cmocka_unit_test(test_artifact_event_matches_wire_literal),
		cmocka_unit_test(test_ask_user_form_matches_wire_literal),
		cmocka_unit_test(
			test_ask_user_prompt_with_questions_is_sent_verbatim_as_3014),
		cmocka_unit_test(
			test_ask_user_json_prompt_without_questions_is_a_form),
		cmocka_unit_test(test_final_answer_matches_wire_literal),
		cmocka_unit_test(test_end_of_stream_matches_wire_literal),
		cmocka_unit_test(test_sub_agent_chunk_matches_wire_literal),
		cmocka_unit_test(
			test_sub_agent_overrides_cannot_escape_forcing),
		cmocka_unit_test(
			test_sub_agent_final_answer_becomes_reasoning_log),
		cmocka_unit_test(
			test_sub_agent_end_of_stream_becomes_empty_reasoning_log),
		cmocka_unit_test(
			test_sub_agent_chunk_marked_end_of_stream_is_not_an_end_marker),
		cmocka_unit_test(
			test_sub_agent_state_keeps_its_event_type_override),
		cmocka_unit_test(
			test_sub_step_gets_fresh_id_and_current_parent),
		cmocka_unit_test(test_sub_step_without_message_id_is_rejected),
		cmocka_unit_test(
			test_chunk_overrides_event_type_content_type_and_role),
		cmocka_unit_test(test_optional_members_are_written_when_given),
		cmocka_unit_test(test_malformed_raw_members_are_rejected),
		cmocka_unit_test(test_empty_agent_type_writes_null_agent_id),
		cmocka_unit_test(test_content_is_escaped_and_round_trips),
		cmocka_unit_test(
			test_artifact_url_with_quotes_stays_valid_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
