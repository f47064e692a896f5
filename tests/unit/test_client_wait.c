/* tests/unit/test_client_wait.c - specification of how libbygate shows an
 * ask_user question (bg_client_event_question, client/wait.c): the prompt
 * of each field of a 3013 form or each question of a 3014 one, and their
 * choices, in words rather than form JSON; other events are not
 * questions; text read from Redis cannot drive the terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "bygate/client.h"

/* An event as bg_client_read_events decodes it: content type, content. */
static char *question(const char *content_type, const char *content)
{
	json_t *msg = json_pack("{s:s, s:s, s:{s:s, s:[{s:{s:s}}]}}",
				"event_type", "reasoningLogDelta", "message_id",
				"msg-1", "data", "contentType", content_type,
				"choices", "delta", "content", content);
	char *raw = json_dumps(msg, JSON_COMPACT);
	struct bg_client_event ev = { .entry_id = "1-0",
				      .event_type = "reasoningLogDelta",
				      .message_id = "msg-1",
				      .parent_message_id = "",
				      .source_agent_type = "approver",
				      .content = content,
				      .content_len = strlen(content),
				      .raw = raw,
				      .raw_len = strlen(raw),
				      .valid = true };
	char *text = NULL;
	int rc = bg_client_event_question(&ev, &text);
	assert_true(rc == 0 || rc == 1);
	assert_true((rc == 1) == (text != NULL));
	free(raw);
	json_decref(msg);
	return text;
}

static void test_a_3013_form_shows_its_prompt_not_its_json(void **state)
{
	(void)state;
	char *t = question("3013",
			   "{\"formStatus\": 0, \"pluginMachineFields\": "
			   "[{\"formType\": \"textarea\", \"fieldName\": "
			   "\"user_input\", \"fieldCode\": \"user_input\", "
			   "\"description\": \"Approve deploy v2?\", "
			   "\"required\": true}]}");
	assert_string_equal(t, "Approve deploy v2?\n");
	free(t);
}

static void test_a_3014_form_shows_each_question_and_its_choices(void **state)
{
	(void)state;
	char *t = question("3014", "{\"questions\": [{\"question\": \"Which "
				   "city?\", \"options\": [\"Kyoto\", "
				   "{\"label\": \"Osaka\"}]}, \"When?\"]}");
	assert_string_equal(t, "Which city?\n  - Kyoto\n  - Osaka\nWhen?\n");
	free(t);
}

static void test_a_form_field_with_choices_lists_them(void **state)
{
	(void)state;
	char *t = question("3013",
			   "{\"pluginMachineFields\": [{\"description\":"
			   " \"Ship it?\", \"options\": [\"yes\", "
			   "\"no\"]}]}");
	assert_string_equal(t, "Ship it?\n  - yes\n  - no\n");
	free(t);
}

static void test_content_that_is_not_a_form_is_shown_as_its_lines(void **s)
{
	(void)s;
	char *t = question("3013", "plain words\nsecond line");
	assert_string_equal(t, "plain words\nsecond line\n");
	free(t);
}

static void test_an_answer_chunk_is_not_a_question(void **state)
{
	(void)state;
	assert_null(question("1002", "{\"formStatus\": 0}"));
	assert_null(question("3003", "A_CALLING_B"));
}

static void test_control_characters_cannot_drive_the_terminal(void **state)
{
	(void)state;
	char *t = question("3013",
			   "{\"pluginMachineFields\": [{\"description\":"
			   " \"\\u001b[2JOK?\"}]}");
	assert_string_equal(t, "?[2JOK?\n");
	free(t);
}

static void test_status_names_are_the_wire_words(void **state)
{
	(void)state;
	assert_string_equal(bg_wait_status_name(BG_WAIT_COMPLETED),
			    "COMPLETED");
	assert_string_equal(bg_wait_status_name(BG_WAIT_WAITING_USER),
			    "WAITING_USER");
	assert_string_equal(bg_wait_status_name(BG_WAIT_TIMEOUT), "TIMEOUT");
	assert_string_equal(bg_wait_status_name((enum bg_wait_status)99),
			    "OTHER");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_a_3013_form_shows_its_prompt_not_its_json),
		cmocka_unit_test(
			test_a_3014_form_shows_each_question_and_its_choices),
		cmocka_unit_test(test_a_form_field_with_choices_lists_them),
		cmocka_unit_test(
			test_content_that_is_not_a_form_is_shown_as_its_lines),
		cmocka_unit_test(test_an_answer_chunk_is_not_a_question),
		cmocka_unit_test(
			test_control_characters_cannot_drive_the_terminal),
		cmocka_unit_test(test_status_names_are_the_wire_words),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
