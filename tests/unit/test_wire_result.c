/* tests/unit/test_wire_result.c - specification of wire/result and
 * wire/send: finalAnswer text, the end-marker rule, the callback RESUME and
 * the client commands against the literal examples of WIRE 2.5, and the
 * dead-letter record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/result.h"
#include "wire/send.h"

static json_t *parse(const struct bg_buf *b)
{
	json_error_t err;
	json_t *j = json_loadb(b->p, b->len, 0, &err);
	if (j == NULL)
		fail_msg("invalid JSON (%s): %s", err.text, b->p);
	return j;
}

static void assert_json_equal(json_t *got, json_t *want)
{
	if (want == NULL)
		fail_msg("bad expected JSON in the test");
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_SORT_KEYS);
		fail_msg("JSON differs:\n got  %s\n want %s", g, w);
	}
	json_decref(got);
	json_decref(want);
}

/* ---- finalAnswer ------------------------------------------------------ */

/* The finalAnswer text for raw content/reply_data, or NULL for none. */
static char *final_message(const char *content, const char *reply_data)
{
	struct bg_buf out = { 0 };
	bool present = true;
	assert_int_equal(bg_result_final_message(bg_str_c(content),
						 bg_str_c(reply_data), &out,
						 &present),
			 0);
	if (!present) {
		assert_int_equal(out.len, 0);
		bg_buf_free(&out);
		return NULL;
	}
	return out.p;
}

static void assert_final(const char *content, const char *reply_data,
			 const char *want)
{
	char *got = final_message(content, reply_data);
	if (want == NULL)
		assert_null(got);
	else
		assert_string_equal(got, want);
	free(got);
}

static void test_final_message_prefers_non_empty_string_content(void **state)
{
	assert_final("\"Itinerary ready\"", "{\"a\": 1}", "Itinerary ready");
	assert_final("\"caf\\u00e9\"", NULL, "caf\xc3\xa9");
}

static void test_final_message_falls_back_to_string_reply_data(void **state)
{
	assert_final("\"\"", "\"plain reply\"", "plain reply");
	assert_final(NULL, "\"plain reply\"", "plain reply");
	assert_final("[{\"role\": \"user\"}]", "\"plain reply\"",
		     "plain reply");
}

static void test_final_message_dumps_other_reply_data_like_python(void **state)
{
	assert_final("\"\"",
		     "{\"hotels\":[\"A\",\"B\"],\"n\":{ \"x\" : 1.50 }}",
		     "{\"hotels\": [\"A\", \"B\"], \"n\": {\"x\": 1.50}}");
	assert_final(
		NULL, "{\"city\": \"\\u4eac\\u90fd\", \"q\": \"a\\\"b\\n\"}",
		"{\"city\": \"\xe4\xba\xac\xe9\x83\xbd\", \"q\": \"a\\\"b\\n\"}");
	assert_final(NULL, "[]", "[]");
	assert_final(NULL, "false", "false");
	assert_final(NULL, "\"\"", "\"\"");
}

static void test_final_message_is_absent_for_null_or_missing_data(void **state)
{
	assert_final("\"\"", "null", NULL);
	assert_final(NULL, NULL, NULL);
	assert_final("null", " null ", NULL);
}

static void test_final_message_rejects_malformed_json(void **state)
{
	struct bg_buf out = { 0 };
	bool present = true;
	assert_int_equal(bg_result_final_message(bg_str_c("\"abc"),
						 BG_STR_LIT(""), &out,
						 &present),
			 -EINVAL);
	assert_false(present);
	assert_int_equal(bg_result_final_message(BG_STR_LIT(""),
						 bg_str_c("{\"a\":}"), &out,
						 &present),
			 -EINVAL);
	assert_int_equal(out.len, 0);
	bg_buf_free(&out);
}

/* ---- end marker ------------------------------------------------------- */

static void test_root_task_ending_terminally_closes_the_stream(void **state)
{
	assert_true(bg_result_wants_end_marker(false, bg_str_c("COMPLETED"),
					       false, false, false));
	assert_true(bg_result_wants_end_marker(false, bg_str_c("FAILED"), false,
					       false, false));
	assert_true(bg_result_wants_end_marker(false, bg_str_c("cancelled"),
					       false, false, false));
}

static void
test_end_marker_is_withheld_when_the_stream_is_not_ours(void **state)
{
	struct bg_str done = bg_str_c("COMPLETED");
	assert_false(
		bg_result_wants_end_marker(true, done, false, false, false));
	assert_false(
		bg_result_wants_end_marker(false, done, true, false, false));
	assert_false(
		bg_result_wants_end_marker(false, done, false, true, false));
	assert_false(
		bg_result_wants_end_marker(false, done, false, false, true));
	assert_false(bg_result_wants_end_marker(false, bg_str_c("WAITING_USER"),
						false, false, false));
	assert_false(bg_result_wants_end_marker(
		false, bg_str_c("QUEUED: waiting_for_group"), false, false,
		false));
}

/* ---- callback --------------------------------------------------------- */

/* WIRE 2.5: the researcher's callback to the planner, decoded. */
static const char callback_literal[] =
	"{\"action_type\": \"RESUME\", \"header\": {\"message_id\": "
	"\"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": "
	"\"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": "
	"\"researcher\", \"target_agent_type\": \"planner\", "
	"\"parent_message_id\": \"msg-5e6f7a8b\", \"task_group_id\": \"\", "
	"\"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": "
	"{\"trace_parent_span_id\": \"8ee2816ff0444932\", "
	"\"framework_parent_span_id\": \"exec-9c8d7e6f:agent.return\", "
	"\"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, "
	"\"trace_parent_span_id\": \"8ee2816ff0444932\", "
	"\"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": "
	"{\"content\": \"Found 3 hotels\", \"status\": \"COMPLETED\", "
	"\"reply_data\": {\"hotels\": [\"A\", \"B\", \"C\"]}}}";

/* The child task of WIRE 2.5 (the planner's call_agent) and its result. */
static const struct bg_callback researcher = {
	.message_id = BG_STR_LIT("msg-5e6f7a8b"),
	.session_id = BG_STR_LIT("sess-42"),
	.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
	.source_agent_type = BG_STR_LIT("planner"),
	.target_agent_type = BG_STR_LIT("researcher"),
	.parent_message_id = BG_STR_LIT("msg-1a2b3c4d"),
	.user_code = BG_STR_LIT("u-001"),
	.user_name = BG_STR_LIT("alice"),
	.metadata =
		BG_STR_LIT("{\"trace_parent_span_id\": \"5e7a123062f66633\", "
			   "\"framework_parent_span_id\": "
			   "\"msg-5e6f7a8b:client.dispatch\"}"),
	.langfuse_parent_observation_id = BG_STR_LIT("70cb4086a837a8bb"),
	.execution_id = BG_STR_LIT("exec-9c8d7e6f"),
	.worker_id = BG_STR_LIT("worker-02"),
	.new_message_id = BG_STR_LIT("msg-00000000"),
	.status = BG_STR_LIT("COMPLETED"),
	.content = BG_STR_LIT("\"Found 3 hotels\""),
	.reply_data = BG_STR_LIT("{\"hotels\": [\"A\", \"B\", \"C\"]}"),
};

static json_t *callback(const struct bg_callback *cb)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_result_callback(&out, cb), 0);
	json_t *j = parse(&out);
	bg_buf_free(&out);
	return j;
}

static json_t *header_of(json_t *cmd)
{
	return json_object_get(cmd, "header");
}

static void test_callback_matches_wire_example(void **state)
{
	assert_json_equal(callback(&researcher),
			  json_loads(callback_literal, 0, NULL));
}

static void test_callback_metadata_keeps_python_key_order(void **state)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_result_callback(&out, &researcher), 0);
	const char *meta = strstr(out.p, "\"metadata\":");
	assert_non_null(meta);
	const char *tp =
		strstr(meta, "\"trace_parent_span_id\": \"8ee2816ff0444932\"");
	const char *fw = strstr(meta, "\"framework_parent_span_id\"");
	const char *lf = strstr(meta, "\"langfuse_parent_observation_id\"");
	assert_true(tp && fw && lf && tp < fw && fw < lf);
	bg_buf_free(&out);
}

static void test_callback_merges_result_metadata_and_extra_payload(void **state)
{
	struct bg_callback cb = researcher;
	cb.metadata = BG_STR_LIT("{\"channel\": \"web\", \"k\": 1}");
	cb.result_metadata =
		BG_STR_LIT("{\"k\": 2, \"error_type\": \"X\", \"\": 0, "
			   "\"trace_parent_span_id\": \"nope\"}");
	cb.extra_payload = BG_STR_LIT("{\"attachments\": []}");
	json_t *got = callback(&cb);
	json_t *want = json_pack("{s:s,s:i,s:s,s:i,s:s,s:s,s:s}", "channel",
				 "web", "k", 2, "error_type", "X", "", 0,
				 "trace_parent_span_id", "8ee2816ff0444932",
				 "framework_parent_span_id",
				 "exec-9c8d7e6f:agent.return",
				 "langfuse_parent_observation_id",
				 "70cb4086a837a8bb");
	assert_json_equal(
		json_incref(json_object_get(header_of(got), "metadata")), want);
	assert_json_equal(
		json_incref(json_object_get(json_object_get(got, "body"),
					    "extra_payload")),
		json_pack("{s:[]}", "attachments"));
	json_decref(got);
}

static void
test_callback_omits_empty_extra_payload_and_unknown_langfuse(void **state)
{
	struct bg_callback cb = researcher;
	cb.extra_payload = BG_STR_LIT("{ }");
	cb.langfuse_parent_observation_id = BG_STR_LIT("");
	json_t *got = callback(&cb);
	assert_null(
		json_object_get(json_object_get(got, "body"), "extra_payload"));
	assert_null(json_object_get(json_object_get(header_of(got), "metadata"),
				    "langfuse_parent_observation_id"));
	assert_string_equal(
		json_string_value(json_object_get(
			header_of(got), "langfuse_parent_observation_id")),
		"");
	json_decref(got);
}

static void test_callback_prefers_the_plugin_langfuse_id(void **state)
{
	struct bg_callback cb = researcher;
	cb.langfuse_override = BG_STR_LIT("obs-77");
	json_t *got = callback(&cb);
	assert_string_equal(
		json_string_value(json_object_get(
			header_of(got), "langfuse_parent_observation_id")),
		"obs-77");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(header_of(got), "metadata"),
				    "langfuse_parent_observation_id")),
			    "obs-77");
	json_decref(got);
}

static void test_callback_falls_back_for_missing_ids(void **state)
{
	struct bg_callback cb = researcher;
	cb.parent_message_id = BG_STR_LIT("");
	cb.target_agent_type = BG_STR_LIT("");
	cb.metadata = BG_STR_LIT("");
	cb.content = BG_STR_LIT("null");
	cb.reply_data = BG_STR_LIT("");
	cb.status = BG_STR_LIT("FAILED");
	json_t *got = callback(&cb);
	json_t *h = header_of(got), *body = json_object_get(got, "body");
	assert_string_equal(json_string_value(json_object_get(h, "message_id")),
			    "msg-00000000");
	assert_string_equal(
		json_string_value(json_object_get(h, "source_agent_type")),
		"worker-02");
	assert_string_equal(json_string_value(json_object_get(body, "content")),
			    "");
	assert_true(json_is_null(json_object_get(body, "reply_data")));
	assert_string_equal(json_string_value(json_object_get(body, "status")),
			    "FAILED");
	json_decref(got);
}

static void test_callback_rejects_malformed_inputs(void **state)
{
	struct bg_str bad[] = { BG_STR_LIT("{\"a\":"), BG_STR_LIT("[1]"),
				BG_STR_LIT("{\"a\\u0000b\": 1}") };
	struct bg_buf out = { 0 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bg_callback cb = researcher;
		cb.result_metadata = bad[i];
		assert_int_equal(bg_result_callback(&out, &cb), -EINVAL);
		assert_int_equal(out.len, 0);
	}
	struct bg_callback cb = researcher;
	cb.reply_data = BG_STR_LIT("{\"x\": tru}");
	assert_int_equal(bg_result_callback(&out, &cb), -EINVAL);
	cb = researcher;
	cb.metadata = BG_STR_LIT("\"meta\"");
	assert_int_equal(bg_result_callback(&out, &cb), -EINVAL);
	assert_int_equal(out.len, 0);
	bg_buf_free(&out);
}

/* ---- client commands (wire/send) -------------------------------------- */

static const char ask_literal[] =
	"{\"action_type\": \"ASK_AGENT\", \"header\": {\"message_id\": "
	"\"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": "
	"\"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"\", "
	"\"target_agent_type\": \"planner\", \"parent_message_id\": \"\", "
	"\"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": "
	"\"alice\", \"metadata\": {\"channel\": \"web\"}, "
	"\"trace_parent_span_id\": \"70cb4086a837a8bb\", "
	"\"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": "
	"{\"content\": \"Plan a trip to Kyoto\", \"wait_for_reply\": false}}";

static const struct bg_send_header root_header = {
	.message_id = BG_STR_LIT("msg-1a2b3c4d"),
	.session_id = BG_STR_LIT("sess-42"),
	.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
	.target_agent_type = BG_STR_LIT("planner"),
	.user_code = BG_STR_LIT("u-001"),
	.user_name = BG_STR_LIT("alice"),
	.metadata = BG_STR_LIT("{\"channel\": \"web\"}"),
};

static json_t *ask(const struct bg_send_header *h, const struct bg_send_body *b)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_send_ask(&out, h, b), 0);
	json_t *j = parse(&out);
	bg_buf_free(&out);
	return j;
}

static void test_client_ask_matches_wire_example(void **state)
{
	struct bg_send_body b = { .content =
					  BG_STR_LIT("Plan a trip to Kyoto") };
	assert_json_equal(ask(&root_header, &b),
			  json_loads(ask_literal, 0, NULL));
}

static void test_call_agent_ask_matches_wire_example(void **state)
{
	struct bg_send_header h = {
		.message_id = BG_STR_LIT("msg-5e6f7a8b"),
		.session_id = BG_STR_LIT("sess-42"),
		.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
		.source_agent_type = BG_STR_LIT("planner"),
		.target_agent_type = BG_STR_LIT("researcher"),
		.parent_message_id = BG_STR_LIT("msg-1a2b3c4d"),
		.user_code = BG_STR_LIT("u-001"),
		.user_name = BG_STR_LIT("alice"),
		.metadata = BG_STR_LIT(
			"{\"trace_parent_span_id\": \"5e7a123062f66633\", "
			"\"framework_parent_span_id\": "
			"\"msg-5e6f7a8b:client.dispatch\"}"),
		.langfuse_parent_observation_id =
			BG_STR_LIT("70cb4086a837a8bb"),
	};
	struct bg_send_body b = { .content = BG_STR_LIT("Find hotels in Kyoto"),
				  .wait_for_reply = true };
	assert_json_equal(
		ask(&h, &b),
		json_loads(
			"{\"action_type\": \"ASK_AGENT\", \"header\": {\"message_id\": "
			"\"msg-5e6f7a8b\", \"session_id\": \"sess-42\", \"trace_id\": "
			"\"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": "
			"\"planner\", \"target_agent_type\": \"researcher\", "
			"\"parent_message_id\": \"msg-1a2b3c4d\", \"task_group_id\": \"\", "
			"\"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": "
			"{\"trace_parent_span_id\": \"5e7a123062f66633\", "
			"\"framework_parent_span_id\": \"msg-5e6f7a8b:client.dispatch\"}, "
			"\"trace_parent_span_id\": \"5e7a123062f66633\", "
			"\"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, "
			"\"body\": {\"content\": \"Find hotels in Kyoto\", "
			"\"wait_for_reply\": true}}",
			0, NULL));
}

static void
test_ask_writes_json_content_and_non_empty_extra_payload(void **state)
{
	struct bg_send_body b = {
		.content = BG_STR_LIT(
			"[{\"role\": \"user\", \"content\": \"hi\"}]"),
		.content_is_json = true,
		.extra_payload = BG_STR_LIT("{\"attachments\": []}"),
	};
	json_t *got = ask(&root_header, &b);
	json_t *body = json_object_get(got, "body");
	assert_json_equal(json_incref(json_object_get(body, "content")),
			  json_pack("[{s:s,s:s}]", "role", "user", "content",
				    "hi"));
	assert_json_equal(json_incref(json_object_get(body, "extra_payload")),
			  json_pack("{s:[]}", "attachments"));
	json_decref(got);
}

static void test_ask_rejects_blank_or_empty_content(void **state)
{
	struct bg_send_body bad[] = {
		{ .content = BG_STR_LIT("") },
		{ .content = BG_STR_LIT(" \t\n") },
		{ .content = BG_STR_LIT(
			  "\xe3\x80\x80") }, /* U+3000, str.isspace */
		{ .content = BG_STR_LIT("[ ]"), .content_is_json = true },
		{ .content = BG_STR_LIT("null"), .content_is_json = true },
		{ .content = BG_STR_LIT("\"  \""), .content_is_json = true },
		{ .content = BG_STR_LIT("[1,"), .content_is_json = true },
		{ .content = BG_STR_LIT("x"),
		  .extra_payload = BG_STR_LIT("[]") },
	};
	struct bg_buf out = { 0 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_send_ask(&out, &root_header, &bad[i]),
				 -EINVAL);
		assert_int_equal(out.len, 0);
	}
	bg_buf_free(&out);
}

static void test_user_reply_resume_matches_wire_example(void **state)
{
	struct bg_send_header h = root_header;
	h.trace_id = BG_STR_LIT("0b1c2d3e4f5a69788796a5b4c3d2e1f0");
	h.metadata = BG_STR_LIT("");
	struct bg_send_body b = { .content = BG_STR_LIT("Kyoto, 3 nights") };
	struct bg_buf out = { 0 };
	assert_int_equal(bg_send_resume(&out, &h, &b), 0);
	assert_json_equal(
		parse(&out),
		json_loads(
			"{\"action_type\": \"RESUME\", \"header\": {\"message_id\": "
			"\"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": "
			"\"0b1c2d3e4f5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"\", "
			"\"target_agent_type\": \"planner\", \"parent_message_id\": \"\", "
			"\"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": "
			"\"alice\", \"metadata\": {}, \"trace_parent_span_id\": "
			"\"70cb4086a837a8bb\", \"langfuse_parent_observation_id\": "
			"\"70cb4086a837a8bb\"}, \"body\": {\"content\": \"Kyoto, 3 nights\", "
			"\"status\": \"\", \"reply_data\": null}}",
			0, NULL));
	bg_buf_free(&out);
}

static void test_resume_needs_status_or_content(void **state)
{
	struct bg_buf out = { 0 };
	struct bg_send_body b = { .content = BG_STR_LIT("") };
	assert_int_equal(bg_send_resume(&out, &root_header, &b), -EINVAL);
	b.status = BG_STR_LIT("COMPLETED");
	b.reply_data = BG_STR_LIT("{\"ok\": true}");
	assert_int_equal(bg_send_resume(&out, &root_header, &b), 0);
	json_t *cmd = parse(&out);
	json_t *body = json_object_get(cmd, "body");
	assert_string_equal(json_string_value(json_object_get(body, "content")),
			    "");
	assert_true(json_is_true(
		json_object_get(json_object_get(body, "reply_data"), "ok")));
	json_decref(cmd);
	bg_buf_free(&out);
}

/* ---- dead letters ----------------------------------------------------- */

static void test_deadletter_keeps_decision_fields_and_raw_entry(void **state)
{
	struct bg_deadletter d = {
		.execution_id = BG_STR_LIT("exec-0a1b2c3d"),
		.target_agent_type = BG_STR_LIT("planner"),
		.reason = BG_STR_LIT("malformed command JSON"),
		.stream = BG_STR_LIT("byai_gateway:ctrl:agent_type:planner"),
		.entry_id = BG_STR_LIT("1718000000123-0"),
		.delivery_count = 3,
		.error_code = BG_STR_LIT("malformed"),
		.has_data = true,
		.data = BG_STR_LIT("{\"action_type\": \"ASK"),
	};
	struct bg_buf out = { 0 };
	assert_int_equal(bg_result_deadletter(&out, &d), 0);
	assert_json_equal(
		parse(&out),
		json_pack(
			"{s:s,s:s,s:s,s:s,s:[],s:s,s:n,s:s,s:s,s:s,s:i,s:s,s:s}",
			"execution_id", "exec-0a1b2c3d", "target_agent_type",
			"planner", "status", "FAILED", "selected_agent_type",
			"", "worker_ids", "region", "", "retry_after_ms",
			"reason", "malformed command JSON", "stream",
			"byai_gateway:ctrl:agent_type:planner", "entry_id",
			"1718000000123-0", "delivery_count", 3, "error_code",
			"malformed", "entry", "{\"action_type\": \"ASK"));
	bg_buf_free(&out);
}

static void test_deadletter_without_data_or_execution(void **state)
{
	struct bg_deadletter d = {
		.target_agent_type = BG_STR_LIT("planner"),
		.reason = BG_STR_LIT("entry has no data field"),
		.error_code = BG_STR_LIT("no_data"),
	};
	struct bg_buf out = { 0 };
	assert_int_equal(bg_result_deadletter(&out, &d), 0);
	json_t *j = parse(&out);
	assert_null(json_object_get(j, "execution_id"));
	assert_true(json_is_null(json_object_get(j, "entry")));
	json_decref(j);
	bg_buf_reset(&out);
	d.has_data = true;
	d.data = BG_STR_LIT("\xff\xfe binary");
	assert_int_equal(bg_result_deadletter(&out, &d), 0);
	j = parse(&out);
	assert_string_equal(json_string_value(json_object_get(j, "entry")),
			    "\xef\xbf\xbd\xef\xbf\xbd binary");
	json_decref(j);
	bg_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_final_message_prefers_non_empty_string_content),
		cmocka_unit_test(
			test_final_message_falls_back_to_string_reply_data),
		cmocka_unit_test(
			test_final_message_dumps_other_reply_data_like_python),
		cmocka_unit_test(
			test_final_message_is_absent_for_null_or_missing_data),
		cmocka_unit_test(test_final_message_rejects_malformed_json),
		cmocka_unit_test(
			test_root_task_ending_terminally_closes_the_stream),
		cmocka_unit_test(
			test_end_marker_is_withheld_when_the_stream_is_not_ours),
		cmocka_unit_test(test_callback_matches_wire_example),
		cmocka_unit_test(test_callback_metadata_keeps_python_key_order),
		cmocka_unit_test(
			test_callback_merges_result_metadata_and_extra_payload),
		cmocka_unit_test(
			test_callback_omits_empty_extra_payload_and_unknown_langfuse),
		cmocka_unit_test(test_callback_prefers_the_plugin_langfuse_id),
		cmocka_unit_test(test_callback_falls_back_for_missing_ids),
		cmocka_unit_test(test_callback_rejects_malformed_inputs),
		cmocka_unit_test(test_client_ask_matches_wire_example),
		cmocka_unit_test(test_call_agent_ask_matches_wire_example),
		cmocka_unit_test(
			test_ask_writes_json_content_and_non_empty_extra_payload),
		cmocka_unit_test(test_ask_rejects_blank_or_empty_content),
		cmocka_unit_test(test_user_reply_resume_matches_wire_example),
		cmocka_unit_test(test_resume_needs_status_or_content),
		cmocka_unit_test(
			test_deadletter_keeps_decision_fields_and_raw_entry),
		cmocka_unit_test(test_deadletter_without_data_or_execution),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
