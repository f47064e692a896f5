/* tests/unit/test_wire_post.c - specification of wire/post: the RESUME a
 * handler posts with resume_later is a client's RESUME (WIRE 2.5) whose
 * body.extra_payload.bygate_post names the poster and the due time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/post.h"

static struct bg_post post(void)
{
	return (struct bg_post){
		.h = {
			.message_id = BG_STR_LIT("msg-target"),
			.session_id = BG_STR_LIT("s-post"),
			.trace_id = BG_STR_LIT("0123456789abcdef0123456789abcdef"),
			.source_agent_type = BG_STR_LIT(""),
			.target_agent_type = BG_STR_LIT("planner"),
			.parent_message_id = BG_STR_LIT("msg-poster"),
			.user_code = BG_STR_LIT("u-1"),
		},
		.content = BG_STR_LIT("{\"n\":1}"),
		.content_is_json = true,
		.from_message_id = BG_STR_LIT("msg-poster"),
		.post_id = BG_STR_LIT("post-1a2b3c4d"),
		.due_ms = 1718000000300,
	};
}

static json_t *build(const struct bg_post *p)
{
	struct bg_buf b = { 0 };
	assert_int_equal(bg_post_resume(&b, p), 0);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	bg_buf_free(&b);
	return j;
}

static void
test_a_post_is_a_resume_of_the_target_with_the_posters_link(void **state)
{
	(void)state;
	struct bg_post p = post();
	json_t *j = build(&p);
	assert_string_equal(
		json_string_value(json_object_get(j, "action_type")), "RESUME");
	json_t *h = json_object_get(j, "header");
	assert_int_equal(json_object_size(h), 12);
	assert_string_equal(json_string_value(json_object_get(h, "message_id")),
			    "msg-target");
	assert_string_equal(
		json_string_value(json_object_get(h, "target_agent_type")),
		"planner");
	assert_string_equal(
		json_string_value(json_object_get(h, "source_agent_type")), "");
	assert_string_equal(
		json_string_value(json_object_get(h, "parent_message_id")),
		"msg-poster");
	json_decref(j);
}

static void test_the_body_carries_the_content_and_bygate_post(void **state)
{
	(void)state;
	struct bg_post p = post();
	json_t *j = build(&p);
	json_t *body = json_object_get(j, "body");
	json_t *want = json_pack("{s:{s:i},s:s,s:n,s:{s:{s:s,s:I,s:s}}}",
				 "content", "n", 1, "status", "", "reply_data",
				 "extra_payload", "bygate_post",
				 "from_message_id", "msg-poster", "due_ms",
				 (json_int_t)1718000000300, "post_id",
				 "post-1a2b3c4d");
	assert_true(json_equal(body, want));
	json_decref(want);
	json_decref(j);
}

static void test_text_content_is_a_json_string(void **state)
{
	(void)state;
	struct bg_post p = post();
	p.content = BG_STR_LIT("wake up");
	p.content_is_json = false;
	json_t *j = build(&p);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "body"), "content")),
			    "wake up");
	json_decref(j);
}

static void test_empty_or_invalid_content_is_refused(void **state)
{
	(void)state;
	struct bg_buf b = { 0 };
	struct bg_post p = post();
	p.content = BG_STR_LIT("");
	assert_int_equal(bg_post_resume(&b, &p), -EINVAL);
	p = post();
	p.content = BG_STR_LIT("{not json");
	assert_int_equal(bg_post_resume(&b, &p), -EINVAL);
	assert_int_equal(b.len, 0);
	bg_buf_free(&b);
}

static void test_delays_are_bounded_by_seven_days(void **state)
{
	(void)state;
	assert_true(bg_post_delay_ok(0));
	assert_true(bg_post_delay_ok(604800000));
	assert_false(bg_post_delay_ok(604800001));
	assert_false(bg_post_delay_ok(-1));
}

#define RUNNING_REC                                                            \
	"{\"execution_id\":\"exec-1\",\"message_id\":\"msg-1\","               \
	"\"status\":\"RUNNING\",\"worker_id\":\"w-1\",\"custom\":[1,2],"       \
	"\"timeline\":[{\"status\":\"RUNNING\",\"timestamp\":1}]}"

static json_t *edit(const char *rec, bool cancelling, const char *reason)
{
	struct bg_buf b = { 0 };
	assert_int_equal(bg_post_cancel_edit(&b, bg_str_c(rec), cancelling,
					     bg_str_c(reason), 42),
			 0);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	bg_buf_free(&b);
	return j;
}

static void
test_a_running_record_becomes_cancelling_with_the_reason(void **state)
{
	(void)state;
	json_t *j = edit(RUNNING_REC, true, "deadline");
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "CANCELLING");
	assert_true(json_is_true(json_object_get(j, "cancel_requested")));
	assert_string_equal(
		json_string_value(json_object_get(j, "cancel_reason")),
		"deadline");
	json_t *tl = json_object_get(j, "timeline");
	assert_int_equal(json_array_size(tl), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(tl, 1), "status")),
			    "CANCELLING");
	/* what it does not know is kept */
	assert_int_equal(json_array_size(json_object_get(j, "custom")), 2);
	json_decref(j);
}

static void test_a_finished_record_only_gets_the_flag(void **state)
{
	(void)state;
	json_t *j =
		edit("{\"status\":\"COMPLETED\",\"updated_at\":1}", false, "");
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "COMPLETED");
	assert_true(json_is_true(json_object_get(j, "cancel_requested")));
	assert_int_equal(json_integer_value(json_object_get(j, "updated_at")),
			 42);
	assert_null(json_object_get(j, "cancel_reason"));
	json_decref(j);
}

static void test_a_record_that_is_not_an_object_is_left_alone(void **state)
{
	(void)state;
	struct bg_buf b = { 0 };
	assert_int_equal(bg_post_cancel_edit(&b, BG_STR_LIT("[1]"), true,
					     BG_STR_LIT(""), 1),
			 -EINVAL);
	assert_int_equal(bg_post_cancel_edit(&b, BG_STR_LIT("{bad"), false,
					     BG_STR_LIT(""), 1),
			 -EINVAL);
	bg_buf_free(&b);
}

static void test_cancel_task_is_the_clients_command(void **state)
{
	(void)state;
	struct bg_post_cancel c = {
		.command_id = BG_STR_LIT("msg-cancel-1"),
		.session_id = BG_STR_LIT("s-1"),
		.trace_id = BG_STR_LIT("t-1"),
		.target_agent_type = BG_STR_LIT("sleeper"),
		.target_message_id = BG_STR_LIT("msg-1"),
		.target_execution_id = BG_STR_LIT("exec-1"),
		.target_worker_id = BG_STR_LIT("w-1"),
		.reason = BG_STR_LIT("deadline"),
		.requested_by = BG_STR_LIT("bygate.fanout"),
		.force = true,
	};
	struct bg_buf b = { 0 };
	assert_int_equal(bg_post_cancel_task(&b, &c), 0);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	assert_string_equal(
		json_string_value(json_object_get(j, "action_type")),
		"CANCEL_TASK");
	json_t *h = json_object_get(j, "header");
	assert_int_equal(json_object_size(h), 12);
	assert_string_equal(
		json_string_value(json_object_get(h, "parent_message_id")),
		"msg-1");
	json_t *want = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}",
				 "target_message_id", "msg-1",
				 "target_execution_id", "exec-1",
				 "target_worker_id", "w-1", "reason",
				 "deadline", "requested_by", "bygate.fanout",
				 "cancel_mode", "force");
	assert_true(json_equal(json_object_get(j, "body"), want));
	json_decref(want);
	json_decref(j);
	bg_buf_reset(&b);
	c.force = false;
	assert_int_equal(bg_post_cancel_task(&b, &c), 0);
	assert_non_null(strstr(b.p, "\"cancel_mode\":\"graceful\""));
	bg_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_a_post_is_a_resume_of_the_target_with_the_posters_link),
		cmocka_unit_test(
			test_the_body_carries_the_content_and_bygate_post),
		cmocka_unit_test(test_text_content_is_a_json_string),
		cmocka_unit_test(test_empty_or_invalid_content_is_refused),
		cmocka_unit_test(test_delays_are_bounded_by_seven_days),
		cmocka_unit_test(
			test_a_running_record_becomes_cancelling_with_the_reason),
		cmocka_unit_test(test_a_finished_record_only_gets_the_flag),
		cmocka_unit_test(
			test_a_record_that_is_not_an_object_is_left_alone),
		cmocka_unit_test(test_cancel_task_is_the_clients_command),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
