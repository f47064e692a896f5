/* tests/unit/test_span.c - specification of wire/span: a span's JSON is
 * by-framework's TraceSpan.to_payload() (WIRE 9.2): empty strings left
 * out, empty objects and false kept, duration from the two times; and the
 * sampling rule is the reference's md5 bucket of the trace id. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/span.h"

static struct bg_span execute_span(void)
{
	return (struct bg_span){
		.trace_id = BG_STR_LIT("0123456789abcdef0123456789abcdef"),
		.span_id = BG_STR_LIT("exec-1:worker.execute"),
		.parent_span_id = BG_STR_LIT("msg-1:client.dispatch"),
		.operation = BG_STR_LIT("worker.execute"),
		.component = BG_STR_LIT("worker"),
		.status = BG_STR_LIT("COMPLETED"),
		.start_ts = 1000,
		.end_ts = 1250,
		.session_id = BG_STR_LIT("s-1"),
		.execution_id = BG_STR_LIT("exec-1"),
		.message_id = BG_STR_LIT("msg-1"),
		.worker_id = BG_STR_LIT("w-1"),
		.target_agent_type = BG_STR_LIT("echo"),
		.queue_wait_ms = 7,
		.chunk_count = 2,
	};
}

static json_t *built(const struct bg_span *s)
{
	struct bg_buf b = { 0 };
	assert_int_equal(bg_span_build(&b, s), 0);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	bg_buf_free(&b);
	return j;
}

static void test_a_span_carries_the_payload_fields(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	json_t *j = built(&s);
	assert_string_equal(json_string_value(json_object_get(j, "span_id")),
			    "exec-1:worker.execute");
	assert_string_equal(
		json_string_value(json_object_get(j, "parent_span_id")),
		"msg-1:client.dispatch");
	assert_int_equal(json_integer_value(json_object_get(j, "start_ts")),
			 1000);
	assert_int_equal(json_integer_value(json_object_get(j, "end_ts")),
			 1250);
	assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")),
			 250);
	assert_string_equal(json_string_value(json_object_get(j, "source")),
			    "redis");
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "COMPLETED");
	assert_int_equal(
		json_integer_value(json_object_get(j, "queue_wait_ms")), 7);
	assert_int_equal(json_integer_value(json_object_get(j, "chunk_count")),
			 2);
	json_decref(j);
}

static void test_name_defaults_to_the_operation(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	json_t *j = built(&s);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
			    "worker.execute");
	json_decref(j);
}

static void test_empty_strings_and_null_io_are_left_out(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	s.output = bg_str_c("null");
	json_t *j = built(&s);
	const char *gone[] = {
		"kind",		"error_type",	     "error_message",
		"error_code",	"failed_stage",	     "route_policy",
		"route_status", "event_type",	     "input",
		"output",	"parent_message_id", "source_agent_type"
	};
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		assert_null(json_object_get(j, gone[i]));
	json_decref(j);
}

static void test_false_and_empty_objects_are_kept(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	json_t *j = built(&s);
	assert_true(json_is_false(json_object_get(j, "retryable")));
	assert_true(json_is_object(json_object_get(j, "tokens")));
	assert_true(json_is_object(json_object_get(j, "cost")));
	assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
	json_decref(j);
}

static void test_errors_and_raw_output_are_written(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	s.status = bg_str_c("FAILED");
	s.error_type = bg_str_c("ValueError");
	s.error_message = bg_str_c("bad \"input\"");
	s.retryable = true;
	s.output = bg_str_c("{\"error\":\"x\"}");
	s.metadata = bg_str_c("{\"attempt\":2}");
	json_t *j = built(&s);
	assert_string_equal(json_string_value(json_object_get(j, "error_type")),
			    "ValueError");
	assert_string_equal(
		json_string_value(json_object_get(j, "error_message")),
		"bad \"input\"");
	assert_true(json_is_true(json_object_get(j, "retryable")));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "output"), "error")),
			    "x");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(j, "metadata"), "attempt")),
			 2);
	json_decref(j);
}

static void test_an_end_before_the_start_gives_zero_duration(void **state)
{
	(void)state;
	struct bg_span s = execute_span();
	s.end_ts = 900;
	json_t *j = built(&s);
	assert_int_equal(json_integer_value(json_object_get(j, "end_ts")),
			 1000);
	assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")),
			 0);
	json_decref(j);
}

static void test_missing_ids_or_bad_raw_values_are_refused(void **state)
{
	(void)state;
	struct bg_buf b = { 0 };
	struct bg_span s = execute_span();
	s.trace_id = bg_str_c("");
	assert_int_equal(bg_span_build(&b, &s), -EINVAL);
	s = execute_span();
	s.metadata = bg_str_c("[1]");
	assert_int_equal(bg_span_build(&b, &s), -EINVAL);
	s = execute_span();
	s.output = bg_str_c("{nope");
	assert_int_equal(bg_span_build(&b, &s), -EINVAL);
	assert_int_equal(b.len, 0);
	bg_buf_free(&b);
}

/* md5("abc") = 90015098...: bucket 0x90015098 / 0xFFFFFFFF = 0.5625 */
/* The exact bytes, not only the parsed members: key order, separators
 * and no spaces, as to_payload() and json.dumps(separators=(",", ":"))
 * give them (what Redis stores must not change with the builder). */
static void test_a_minimal_span_is_these_exact_bytes(void **state)
{
	(void)state;
	struct bg_span s = { .trace_id = BG_STR_LIT("t"),
			     .span_id = BG_STR_LIT("s"),
			     .operation = BG_STR_LIT("op"),
			     .start_ts = 1,
			     .end_ts = 3 };
	struct bg_buf b = { 0 };
	assert_int_equal(bg_span_build(&b, &s), 0);
	assert_string_equal(
		b.p,
		"{\"trace_id\":\"t\",\"span_id\":\"s\",\"operation\":\"op\","
		"\"start_ts\":1,\"end_ts\":3,\"duration_ms\":2,\"name\":\"op\","
		"\"source\":\"redis\",\"tokens\":{},\"cost\":{},"
		"\"retryable\":false,\"queue_wait_ms\":0,\"chunk_count\":0,"
		"\"metadata\":{}}");
	bg_buf_free(&b);
}

static void test_sampling_is_the_md5_bucket_of_the_trace_id(void **state)
{
	(void)state;
	assert_true(bg_span_sampled(bg_str_c("abc"), 0.57));
	assert_false(bg_span_sampled(bg_str_c("abc"), 0.56));
	assert_true(bg_span_sampled(bg_str_c("abc"), 1.0));
	assert_false(bg_span_sampled(bg_str_c("abc"), 0.0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_span_carries_the_payload_fields),
		cmocka_unit_test(test_a_minimal_span_is_these_exact_bytes),
		cmocka_unit_test(test_name_defaults_to_the_operation),
		cmocka_unit_test(test_empty_strings_and_null_io_are_left_out),
		cmocka_unit_test(test_false_and_empty_objects_are_kept),
		cmocka_unit_test(test_errors_and_raw_output_are_written),
		cmocka_unit_test(
			test_an_end_before_the_start_gives_zero_duration),
		cmocka_unit_test(
			test_missing_ids_or_bad_raw_values_are_refused),
		cmocka_unit_test(
			test_sampling_is_the_md5_bucket_of_the_trace_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
