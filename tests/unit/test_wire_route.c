/* tests/unit/test_wire_route.c - specification of wire/route: the
 * WakeupRequest, PendingDelivery and rejected-route records of WIRE 7, and
 * the readers of circuit, quota, fallback values and WakeupDecisions, which
 * take untrusted bytes and must never crash on them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/route.h"

#define COMMAND "{\"header\":{\"action\":\"ASK_AGENT\"},\"body\":{}}"
#define EXEC "exec-5e6f7a8b"
#define MSG "msg-9c8d7e6f"
#define TRACE "0123456789abcdef0123456789abcdef"

static const struct bg_route_intent intent = {
	.execution_id = BG_STR_LIT(EXEC),
	.message_id = BG_STR_LIT(MSG),
	.session_id = BG_STR_LIT("s-route"),
	.trace_id = BG_STR_LIT(TRACE),
	.source = BG_STR_LIT("alpha"),
	.target_agent_type = BG_STR_LIT("beta"),
	.user_code = BG_STR_LIT("u-7"),
	.region = BG_STR_LIT("eu"),
	.priority = 5,
	.policy = BG_STR_LIT("WAKE_AND_WAIT"),
	.timeout_ms = 1500,
	.command = BG_STR_LIT(COMMAND),
	.metadata = BG_STR_LIT("{\"k\":1}"),
};

static const struct bg_record_queued rejected = {
	.execution_id = BG_STR_LIT(EXEC),
	.message_id = BG_STR_LIT(MSG),
	.session_id = BG_STR_LIT("s-route"),
	.trace_id = BG_STR_LIT(TRACE),
	.parent_message_id = BG_STR_LIT("msg-parent"),
	.source_agent_type = BG_STR_LIT("alpha"),
	.target_agent_type = BG_STR_LIT("beta"),
	.route = true,
	.route_policy = BG_STR_LIT("FAIL_FAST"),
	.route_status = BG_STR_LIT("DELIVER_NOW"),
	.availability_error_code = BG_STR_LIT("AGENT_TYPE_UNAVAILABLE"),
	.availability_error = BG_STR_LIT("No online worker"),
	.now_ms = 1718000000100,
};

static json_t *load(const char *text)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	assert_non_null(j);
	return j;
}

/* out's JSON (keys in document order); out is freed. */
static json_t *take(struct bg_buf *out)
{
	json_t *j = json_loadb(out->p, out->len, JSON_PRESERVE_ORDER, NULL);
	if (j == NULL)
		fail_msg("invalid JSON: %s", out->p);
	bg_buf_free(out);
	return j;
}

static json_t *wakeup_of(const struct bg_route_intent *in)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_route_wakeup_json(&out, in), 0);
	return take(&out);
}

static json_t *pending_of(const struct bg_route_intent *in,
			  struct bg_str stream)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_route_pending_json(&out, in, stream), 0);
	return take(&out);
}

static json_t *failed_of(const struct bg_record_queued *q)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_route_failed_record(&out, q), 0);
	return take(&out);
}

/* got and want are the same JSON; both are released. */
static void assert_same_json(json_t *got, json_t *want)
{
	char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
	char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(g, w);
	free(g);
	free(w);
	json_decref(got);
	json_decref(want);
}

/* obj's keys in document order, comma-separated, are want; obj is
 * released. */
static void assert_keys(json_t *obj, const char *want)
{
	char got[512] = "";
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		if (got[0])
			strcat(got, ",");
		strcat(got, key);
	}
	assert_string_equal(got, want);
	json_decref(obj);
}

/* obj[key] is the integer want; obj is released. */
static void assert_int_member(json_t *obj, const char *key, json_int_t want)
{
	json_t *v = json_object_get(obj, key);
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), want);
	json_decref(obj);
}

/* obj[key] is the string want; obj is released. */
static void assert_str_member(json_t *obj, const char *key, const char *want)
{
	assert_non_null(obj);
	assert_string_equal(json_string_value(json_object_get(obj, key)), want);
	json_decref(obj);
}

/* obj's metadata is {}; obj is released. */
static void assert_empty_metadata(json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");
	assert_true(json_is_object(md));
	assert_int_equal(json_object_size(md), 0);
	json_decref(obj);
}

/* ---- bg_route_timeout_ms ------------------------------------------------ */

static void test_timeout_zero_is_the_python_default(void **state)
{
	assert_int_equal(bg_route_timeout_ms(0), BG_ROUTE_DEFAULT_TIMEOUT_MS);
	assert_int_equal(BG_ROUTE_DEFAULT_TIMEOUT_MS, 30000);
}

static void test_timeout_negative_is_no_wait(void **state)
{
	assert_int_equal(bg_route_timeout_ms(-1), 0);
	assert_int_equal(bg_route_timeout_ms(INT64_MIN), 0);
}

static void test_timeout_positive_is_kept(void **state)
{
	assert_int_equal(bg_route_timeout_ms(1), 1);
	assert_int_equal(bg_route_timeout_ms(86400000), 86400000);
}

/* ---- WakeupRequest ------------------------------------------------------ */

static void test_wakeup_json_has_the_wire_7_members(void **state)
{
	assert_same_json(
		wakeup_of(&intent),
		json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:i,s:{s:i},"
			  "s:o}",
			  "execution_id", EXEC, "target_agent_type", "beta",
			  "session_id", "s-route", "trace_id", TRACE,
			  "message_id", MSG, "source", "alpha", "policy",
			  "WAKE_AND_WAIT", "timeout_ms", 1500, "user_code",
			  "u-7", "region", "eu", "priority", 5, "metadata", "k",
			  1, "command_payload", load(COMMAND)));
}

static void test_wakeup_json_keeps_python_key_order(void **state)
{
	assert_keys(wakeup_of(&intent),
		    "execution_id,target_agent_type,session_id,trace_id,"
		    "message_id,source,policy,timeout_ms,user_code,region,"
		    "priority,metadata,command_payload");
}

static void test_wakeup_json_writes_the_default_timeout_for_zero(void **state)
{
	struct bg_route_intent in = intent;
	in.timeout_ms = 0;
	assert_int_member(wakeup_of(&in), "timeout_ms", 30000);
}

static void test_wakeup_json_writes_zero_for_a_negative_timeout(void **state)
{
	struct bg_route_intent in = intent;
	in.timeout_ms = -5;
	assert_int_member(wakeup_of(&in), "timeout_ms", 0);
}

static void test_wakeup_json_empty_metadata_is_an_empty_object(void **state)
{
	struct bg_route_intent in = intent;
	in.metadata = BG_STR_LIT("");
	assert_empty_metadata(wakeup_of(&in));
}

static void test_wakeup_json_escapes_strings(void **state)
{
	struct bg_route_intent in = intent;
	in.region = BG_STR_LIT("e\"u\\\n");
	assert_str_member(wakeup_of(&in), "region", "e\"u\\\n");
}

static void test_wakeup_json_appends_to_the_buffer(void **state)
{
	struct bg_buf out = { 0 };
	bg_buf_puts(&out, "x");
	assert_int_equal(bg_route_wakeup_json(&out, &intent), 0);
	assert_int_equal(out.p[0], 'x');
	assert_int_equal(out.p[1], '{');
	bg_buf_free(&out);
}

static void test_wakeup_json_of_a_zeroed_intent_is_valid_json(void **state)
{
	struct bg_route_intent in = { 0 };
	json_t *got = wakeup_of(&in);
	assert_true(json_is_null(json_object_get(got, "command_payload")));
	json_decref(got);
}

/* ---- PendingDelivery ---------------------------------------------------- */

static void test_pending_json_has_the_wire_7_members(void **state)
{
	assert_same_json(
		pending_of(&intent, BG_STR_LIT("ctrl:beta")),
		json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:i,s:{s:i}}",
			  "execution_id", EXEC, "message_id", MSG, "session_id",
			  "s-route", "trace_id", TRACE, "target_agent_type",
			  "beta", "delivery_stream", "ctrl:beta",
			  "command_payload", load(COMMAND), "user_code", "u-7",
			  "region", "eu", "priority", 5, "metadata", "k", 1));
}

static void test_pending_json_keeps_python_key_order(void **state)
{
	assert_keys(pending_of(&intent, BG_STR_LIT("s")),
		    "execution_id,message_id,session_id,trace_id,"
		    "target_agent_type,delivery_stream,command_payload,"
		    "user_code,region,priority,metadata");
}

static void test_pending_json_empty_metadata_is_an_empty_object(void **state)
{
	struct bg_route_intent in = intent;
	in.metadata = BG_STR_LIT("");
	assert_empty_metadata(pending_of(&in, BG_STR_LIT("s")));
}

static void test_pending_json_of_a_zeroed_intent_is_valid_json(void **state)
{
	struct bg_route_intent in = { 0 };
	assert_str_member(pending_of(&in, (struct bg_str){ 0 }),
			  "delivery_stream", "");
}

/* ---- the FAILED record of a rejected route ------------------------------ */

static void test_failed_record_is_record_failed_route_decision(void **state)
{
	json_int_t now = 1718000000100;
	assert_same_json(
		failed_of(&rejected),
		json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
			  "s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:i,s:i,s:[{s:s,s:I}]}",
			  "execution_id", EXEC, "message_id", MSG, "session_id",
			  "s-route", "trace_id", TRACE, "parent_message_id",
			  "msg-parent", "source_agent_type", "alpha",
			  "target_agent_type", "beta", "stream_name", "",
			  "status", "FAILED", "route_policy", "FAIL_FAST",
			  "route_status", "REJECT", "selected_agent_type", "",
			  "availability_error_code", "AGENT_TYPE_UNAVAILABLE",
			  "availability_error", "No online worker",
			  "error_code", "AGENT_TYPE_UNAVAILABLE",
			  "error_message", "No online worker", "failed_stage",
			  "availability", "created_at", now, "updated_at", now,
			  "started_at", 0, "finished_at", 0, "timeline",
			  "status", "FAILED", "timestamp", now));
}

static void test_failed_record_has_no_worker_id(void **state)
{
	json_t *got = failed_of(&rejected);
	assert_null(json_object_get(got, "worker_id"));
	json_decref(got);
}

static void test_failed_record_keeps_the_stream_as_given(void **state)
{
	struct bg_record_queued q = rejected;
	q.stream_name = BG_STR_LIT("mgmt:delivery:pending");
	assert_str_member(failed_of(&q), "stream_name",
			  "mgmt:delivery:pending");
}

static void test_failed_record_keeps_the_selected_type_as_given(void **state)
{
	struct bg_record_queued q = rejected;
	q.selected_agent_type = BG_STR_LIT("backup");
	assert_str_member(failed_of(&q), "selected_agent_type", "backup");
}

static void test_failed_record_of_a_zeroed_record_is_valid_json(void **state)
{
	struct bg_record_queued q = { 0 };
	assert_str_member(failed_of(&q), "status", "FAILED");
}

/* ---- circuit, quota, fallback ------------------------------------------- */

/* The circuit value `text` (NULL = none) reads as open, with why. */
static void assert_circuit(const char *text, bool open, const char *why)
{
	json_t *v = text ? load(text) : NULL;
	const char *got = NULL;
	assert_int_equal(bg_route_circuit_open(v, &got), open);
	assert_string_equal(got, why);
	json_decref(v);
}

/* The quota value `text` (NULL = none) reads as exceeded, with why. */
static void assert_quota(const char *text, bool exceeded, const char *why)
{
	json_t *v = text ? load(text) : NULL;
	const char *got = NULL;
	assert_int_equal(bg_route_quota_exceeded(v, &got), exceeded);
	assert_string_equal(got, why);
	json_decref(v);
}

/* The fallback value `text` (NULL = none) names want. */
static void assert_fallback(const char *text, const char *want)
{
	json_t *v = text ? load(text) : NULL;
	assert_string_equal(bg_route_fallback_type(v), want);
	json_decref(v);
}

static void test_circuit_open_in_any_case_is_open(void **state)
{
	assert_circuit("{\"state\":\"open\",\"reason\":\"startup failures\"}",
		       true, "startup failures");
}

static void test_circuit_without_reason_has_the_default_reason(void **state)
{
	assert_circuit("{\"state\":\"OPEN\"}", true, "agent circuit is open");
}

static void test_circuit_closed_or_half_open_is_not_open(void **state)
{
	assert_circuit("{\"state\":\"CLOSED\"}", false,
		       "agent circuit is open");
	assert_circuit("{\"state\":\"HALF_OPEN\"}", false,
		       "agent circuit is open");
}

static void test_circuit_with_wrong_types_or_none_is_not_open(void **state)
{
	assert_circuit("{\"state\":1,\"reason\":[]}", false,
		       "agent circuit is open");
	assert_circuit("[\"OPEN\"]", false, "agent circuit is open");
	assert_circuit(NULL, false, "agent circuit is open");
}

static void test_quota_available_false_is_exceeded(void **state)
{
	assert_quota("{\"available\":false,\"reason\":\"monthly cap\"}", true,
		     "monthly cap");
}

static void test_quota_without_reason_has_the_default_reason(void **state)
{
	assert_quota("{\"available\":false}", true, "tenant quota exceeded");
}

static void test_quota_other_than_false_is_not_exceeded(void **state)
{
	const char *cases[] = { "{\"available\":true}",
				"{}",
				"{\"available\":\"false\"}",
				"{\"available\":0}",
				"{\"available\":null}",
				"[false]",
				NULL };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_quota(cases[i], false, "tenant quota exceeded");
}

static void test_fallback_prefers_selected_then_agent_then_target(void **state)
{
	assert_fallback("{\"selected_agent_type\":\"a\",\"agent_type\":\"b\","
			"\"target_agent_type\":\"c\"}",
			"a");
	assert_fallback("{\"agent_type\":\"b\",\"target_agent_type\":\"c\"}",
			"b");
	assert_fallback("{\"target_agent_type\":\"c\"}", "c");
}

static void test_fallback_skips_empty_and_non_string_members(void **state)
{
	assert_fallback("{\"selected_agent_type\":\"\",\"agent_type\":7,"
			"\"target_agent_type\":\"c\"}",
			"c");
}

static void test_fallback_of_nothing_is_empty(void **state)
{
	assert_fallback("{}", "");
	assert_fallback("[\"backup\"]", "");
	assert_fallback(NULL, "");
}

/* ---- bg_route_lease_online ---------------------------------------------- */

static bool online(const char *raw)
{
	return bg_route_lease_online(raw, raw ? strlen(raw) : 0);
}

static void test_lease_with_a_positive_last_seen_is_online(void **state)
{
	(void)state;
	assert_true(online("{\"version\":1,\"last_seen\":1795457298792}"));
	assert_true(online("{\"last_seen\":\"1795457298792\"}"));
	assert_true(online("{\"last_seen\":12.5}"));
	assert_true(online(" {\"last_seen\":true}"));
}

static void test_lease_before_its_first_beat_is_offline(void **state)
{
	(void)state;
	assert_false(online("{\"version\":1,\"last_seen\":0}"));
	assert_false(online("{\"token\":\"t\"}"));
	assert_false(online("{\"nested\":{\"last_seen\":5},\"last_seen\":0}"));
	assert_false(online("{\"last_seen\":\"soon\"}"));
	assert_false(online(NULL));
}

static void test_legacy_lease_values_are_online(void **state)
{
	(void)state;
	assert_true(online("1"));
	assert_true(online("worker-host-1"));
	assert_true(online("[1,2]"));
}

/* ---- bg_route_object ---------------------------------------------------- */

static void test_object_decodes_a_json_object(void **state)
{
	const char raw[] = "{\"state\":\"OPEN\"}";
	assert_str_member(bg_route_object(raw, sizeof(raw) - 1), "state",
			  "OPEN");
}

static void test_object_reads_only_len_bytes(void **state)
{
	const char raw[] = "{\"a\":1}garbage";
	json_t *v = bg_route_object(raw, 7);
	assert_true(json_is_object(v));
	json_decref(v);
}

static void test_object_refuses_anything_but_an_object(void **state)
{
	const char *cases[] = { "[1,2]",    "\"OPEN\"", "42", "null",	 "true",
				"not json", "{\"a\":",	"",   "\xff\xfe" };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_null(bg_route_object(cases[i], strlen(cases[i])));
	assert_null(bg_route_object(NULL, 0));
	assert_null(bg_route_object(NULL, 12));
}

/* ---- WakeupDecisions ---------------------------------------------------- */

static json_t *decision(const char *text, const char *exec_id)
{
	return bg_route_decision(text, strlen(text), exec_id);
}

static void test_decision_of_this_execution_is_returned(void **state)
{
	assert_str_member(decision("{\"execution_id\":\"exec-1\",\"status\":"
				   "\"READY\"}",
				   "exec-1"),
			  "status", "READY");
}

static void test_decision_of_another_execution_is_skipped(void **state)
{
	assert_null(decision("{\"execution_id\":\"exec-2\",\"status\":"
			     "\"READY\"}",
			     "exec-1"));
}

static void test_decision_without_execution_id_is_kept(void **state)
{
	json_t *none = decision("{\"status\":\"READY\"}", "exec-1");
	json_t *wrong =
		decision("{\"execution_id\":5,\"status\":\"READY\"}", "exec-1");
	assert_non_null(none);
	assert_non_null(wrong);
	json_decref(none);
	json_decref(wrong);
}

static void test_decision_that_is_not_an_object_is_skipped(void **state)
{
	assert_null(decision("not json", "exec-1"));
	assert_null(decision("[\"READY\"]", "exec-1"));
	assert_null(decision("", "exec-1"));
	assert_null(bg_route_decision(NULL, 0, "exec-1"));
}

/* bg_route_decision_final of the decision `text` (NULL = none). */
static bool final_of(const char *text)
{
	json_t *d = text ? load(text) : NULL;
	bool final = bg_route_decision_final(d);
	json_decref(d);
	return final;
}

static void test_starting_and_queued_decisions_are_not_final(void **state)
{
	assert_false(final_of("{\"status\":\"STARTING\"}"));
	assert_false(final_of("{\"status\":\"QUEUED\"}"));
}

static void test_other_decisions_are_final(void **state)
{
	const char *cases[] = { "{\"status\":\"READY\"}",
				"{\"status\":\"FALLBACK\"}",
				"{\"status\":\"REJECTED\"}",
				"{\"status\":\"FAILED\"}",
				"{\"status\":\"starting\"}",
				"{\"status\":7}",
				"{}",
				"[]",
				NULL };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_true(final_of(cases[i]));
}

/* The decision `text` (NULL = none) means v to a sender waiting on "beta",
 * with this selected type and error ("" = untouched). */
static void assert_verdict(const char *text, enum bg_route_verdict v,
			   const char *selected, const char *error)
{
	char sel[8] = "", err[64] = "";
	json_t *d = text ? load(text) : NULL;
	assert_int_equal(bg_route_decision_verdict(d, "beta", sel, sizeof(sel),
						   err, sizeof(err)),
			 v);
	assert_string_equal(sel, selected);
	assert_string_equal(err, error);
	json_decref(d);
}

#define NO_WORKER "Wakeup rejected for agent_type 'beta'"

static void test_ready_decision_is_ready(void **state)
{
	assert_verdict("{\"status\":\"READY\"}", BG_VERDICT_READY, "", "");
}

static void test_fallback_decision_selects_its_agent_type(void **state)
{
	assert_verdict("{\"status\":\"FALLBACK\",\"selected_agent_type\":"
		       "\"backup\"}",
		       BG_VERDICT_FALLBACK, "backup", "");
}

static void test_fallback_decision_without_a_type_is_rejected(void **state)
{
	assert_verdict("{\"status\":\"FALLBACK\",\"selected_agent_type\":7}",
		       BG_VERDICT_REJECT, "", NO_WORKER);
}

static void
test_fallback_decision_whose_type_does_not_fit_is_rejected(void **state)
{
	assert_verdict("{\"status\":\"FALLBACK\",\"selected_agent_type\":"
		       "\"backup-2\"}",
		       BG_VERDICT_REJECT, "", NO_WORKER);
}

static void test_rejected_decision_gives_its_reason(void **state)
{
	assert_verdict("{\"status\":\"REJECTED\",\"reason\":\"no capacity\"}",
		       BG_VERDICT_REJECT, "", "no capacity");
}

static void test_decision_without_status_or_reason_is_rejected(void **state)
{
	assert_verdict("{}", BG_VERDICT_REJECT, "", NO_WORKER);
	assert_verdict("\"READY\"", BG_VERDICT_REJECT, "", NO_WORKER);
	assert_verdict(NULL, BG_VERDICT_REJECT, "", NO_WORKER);
}

static void test_rejection_reason_is_truncated_to_its_buffer(void **state)
{
	char selected[8], error[8];
	json_t *d =
		load("{\"status\":\"FAILED\",\"reason\":\"a long reason\"}");
	assert_int_equal(bg_route_decision_verdict(d, "beta", selected,
						   sizeof(selected), error,
						   sizeof(error)),
			 BG_VERDICT_REJECT);
	assert_string_equal(error, "a long ");
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeout_zero_is_the_python_default),
		cmocka_unit_test(test_timeout_negative_is_no_wait),
		cmocka_unit_test(test_timeout_positive_is_kept),
		cmocka_unit_test(test_wakeup_json_has_the_wire_7_members),
		cmocka_unit_test(test_wakeup_json_keeps_python_key_order),
		cmocka_unit_test(
			test_wakeup_json_writes_the_default_timeout_for_zero),
		cmocka_unit_test(
			test_wakeup_json_writes_zero_for_a_negative_timeout),
		cmocka_unit_test(
			test_wakeup_json_empty_metadata_is_an_empty_object),
		cmocka_unit_test(test_wakeup_json_escapes_strings),
		cmocka_unit_test(test_wakeup_json_appends_to_the_buffer),
		cmocka_unit_test(
			test_wakeup_json_of_a_zeroed_intent_is_valid_json),
		cmocka_unit_test(test_pending_json_has_the_wire_7_members),
		cmocka_unit_test(test_pending_json_keeps_python_key_order),
		cmocka_unit_test(
			test_pending_json_empty_metadata_is_an_empty_object),
		cmocka_unit_test(
			test_pending_json_of_a_zeroed_intent_is_valid_json),
		cmocka_unit_test(
			test_failed_record_is_record_failed_route_decision),
		cmocka_unit_test(test_failed_record_has_no_worker_id),
		cmocka_unit_test(test_failed_record_keeps_the_stream_as_given),
		cmocka_unit_test(
			test_failed_record_keeps_the_selected_type_as_given),
		cmocka_unit_test(
			test_failed_record_of_a_zeroed_record_is_valid_json),
		cmocka_unit_test(test_circuit_open_in_any_case_is_open),
		cmocka_unit_test(
			test_circuit_without_reason_has_the_default_reason),
		cmocka_unit_test(test_circuit_closed_or_half_open_is_not_open),
		cmocka_unit_test(
			test_circuit_with_wrong_types_or_none_is_not_open),
		cmocka_unit_test(test_quota_available_false_is_exceeded),
		cmocka_unit_test(
			test_quota_without_reason_has_the_default_reason),
		cmocka_unit_test(test_quota_other_than_false_is_not_exceeded),
		cmocka_unit_test(
			test_fallback_prefers_selected_then_agent_then_target),
		cmocka_unit_test(
			test_fallback_skips_empty_and_non_string_members),
		cmocka_unit_test(test_fallback_of_nothing_is_empty),
		cmocka_unit_test(test_object_decodes_a_json_object),
		cmocka_unit_test(test_object_reads_only_len_bytes),
		cmocka_unit_test(test_object_refuses_anything_but_an_object),
		cmocka_unit_test(test_decision_of_this_execution_is_returned),
		cmocka_unit_test(test_decision_of_another_execution_is_skipped),
		cmocka_unit_test(test_decision_without_execution_id_is_kept),
		cmocka_unit_test(
			test_decision_that_is_not_an_object_is_skipped),
		cmocka_unit_test(
			test_starting_and_queued_decisions_are_not_final),
		cmocka_unit_test(test_other_decisions_are_final),
		cmocka_unit_test(test_ready_decision_is_ready),
		cmocka_unit_test(test_fallback_decision_selects_its_agent_type),
		cmocka_unit_test(
			test_fallback_decision_without_a_type_is_rejected),
		cmocka_unit_test(
			test_fallback_decision_whose_type_does_not_fit_is_rejected),
		cmocka_unit_test(test_rejected_decision_gives_its_reason),
		cmocka_unit_test(
			test_decision_without_status_or_reason_is_rejected),
		cmocka_unit_test(
			test_rejection_reason_is_truncated_to_its_buffer),
		cmocka_unit_test(
			test_lease_with_a_positive_last_seen_is_online),
		cmocka_unit_test(test_lease_before_its_first_beat_is_offline),
		cmocka_unit_test(test_legacy_lease_values_are_online),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
