/* tests/unit/test_wire_command.c - the control-command scanner, task rules
 * and cold-path parse (wire/command.h) against the literal examples of
 * WIRE 2.5, malformed input, truncations and random mutations. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/command.h"
#include "wire/json.h"

/* WIRE 2.5 literal examples. The XRANGE ones are pasted verbatim: redis-cli
 * shows the data value as a quoted string with \" escapes, which is also C's
 * string-literal syntax, so the compiler unescapes them into the plain JSON
 * that is stored in Redis. The admin examples abbreviate their header
 * ("...all other header fields empty...", "{...same admin header...}");
 * ADMIN_HEADER spells it out. */
#define FX_ROOT_ASK                                                            \
	"{\"action_type\": \"ASK_AGENT\", \"header\": {\"message_id\": \"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": \"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"\", \"target_agent_type\": \"planner\", \"parent_message_id\": \"\", \"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": {\"channel\": \"web\"}, \"trace_parent_span_id\": \"70cb4086a837a8bb\", \"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": {\"content\": \"Plan a trip to Kyoto\", \"wait_for_reply\": false}}"

#define FX_CHILD_ASK                                                           \
	"{\"action_type\": \"ASK_AGENT\", \"header\": {\"message_id\": \"msg-5e6f7a8b\", \"session_id\": \"sess-42\", \"trace_id\": \"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"planner\", \"target_agent_type\": \"researcher\", \"parent_message_id\": \"msg-1a2b3c4d\", \"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": {\"trace_parent_span_id\": \"5e7a123062f66633\", \"framework_parent_span_id\": \"msg-5e6f7a8b:client.dispatch\"}, \"trace_parent_span_id\": \"5e7a123062f66633\", \"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": {\"content\": \"Find hotels in Kyoto\", \"wait_for_reply\": true}}"

#define FX_CALLBACK_RESUME                                                     \
	"{\"action_type\": \"RESUME\", \"header\": {\"message_id\": \"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": \"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"researcher\", \"target_agent_type\": \"planner\", \"parent_message_id\": \"msg-5e6f7a8b\", \"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": {\"trace_parent_span_id\": \"8ee2816ff0444932\", \"framework_parent_span_id\": \"exec-9c8d7e6f:agent.return\", \"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"trace_parent_span_id\": \"8ee2816ff0444932\", \"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": {\"content\": \"Found 3 hotels\", \"status\": \"COMPLETED\", \"reply_data\": {\"hotels\": [\"A\", \"B\", \"C\"]}}}"

#define FX_CANCEL                                                              \
	"{\"action_type\": \"CANCEL_TASK\", \"header\": {\"message_id\": \"msg-cancel-0f1e2d3c\", \"session_id\": \"sess-42\", \"trace_id\": \"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"\", \"target_agent_type\": \"planner\", \"parent_message_id\": \"msg-1a2b3c4d\", \"task_group_id\": \"\", \"user_code\": \"\", \"user_name\": \"\", \"metadata\": {}, \"trace_parent_span_id\": \"\", \"langfuse_parent_observation_id\": \"\"}, \"body\": {\"target_message_id\": \"msg-1a2b3c4d\", \"target_execution_id\": \"exec-0a1b2c3d\", \"target_worker_id\": \"worker-01\", \"reason\": \"user aborted\", \"requested_by\": \"client\", \"cancel_mode\": \"graceful\"}}"

#define FX_USER_RESUME                                                         \
	"{\"action_type\": \"RESUME\", \"header\": {\"message_id\": \"msg-1a2b3c4d\", \"session_id\": \"sess-42\", \"trace_id\": \"0b1c2d3e4f5a69788796a5b4c3d2e1f0\", \"source_agent_type\": \"\", \"target_agent_type\": \"planner\", \"parent_message_id\": \"\", \"task_group_id\": \"\", \"user_code\": \"u-001\", \"user_name\": \"alice\", \"metadata\": {}, \"trace_parent_span_id\": \"70cb4086a837a8bb\", \"langfuse_parent_observation_id\": \"70cb4086a837a8bb\"}, \"body\": {\"content\": \"Kyoto, 3 nights\", \"status\": \"\", \"reply_data\": null}}"

#define FX_RELOAD                                                              \
	"{\"action_type\": \"RELOAD_PLUGINS\", \"header\": {\"message_id\": \"msg-77aa88bb\", \"session_id\": \"reload:planner\", \"trace_id\": \"0123456789abcdef0123456789abcdef\", \"source_agent_type\": \"\", \"target_agent_type\": \"planner\", \"parent_message_id\": \"\", \"task_group_id\": \"\", \"user_code\": \"\", \"user_name\": \"\", \"metadata\": {}, \"trace_parent_span_id\": \"\", \"langfuse_parent_observation_id\": \"\"}, \"body\": {\"reload_id\": \"reload-1a2b3c4d\", \"reason\": \"new prompts\"}}"

#define ADMIN_HEADER                                                           \
	"{\"message_id\": \"5b0c0d8e6f7a4b9c8d7e6f5a4b3c2d1e\", \"session_id\": \"admin\", \"trace_id\": \"e1d2c3b4a5968778695a4b3c2d1e0f9a\", \"source_agent_type\": \"\", \"target_agent_type\": \"\", \"parent_message_id\": \"\", \"task_group_id\": \"\", \"user_code\": \"\", \"user_name\": \"\", \"metadata\": {}, \"trace_parent_span_id\": \"\", \"langfuse_parent_observation_id\": \"\"}"

#define FX_SUSPEND                                                             \
	"{\"action_type\": \"SUSPEND_WORKER\", \"header\": " ADMIN_HEADER      \
	", \"body\": {\"reason\": \"maintenance\"}}"

#define FX_EVICT                                                               \
	"{\"action_type\": \"EVICT_WORKER\", \"header\": " ADMIN_HEADER        \
	", \"body\": {\"reason\": \"decommission\", \"force\": false}}"

#define FX_RESUME_WORKER                                                       \
	"{\"action_type\": \"RESUME_WORKER\", \"header\": " ADMIN_HEADER       \
	", \"body\": {}}"

static const char *const fixtures[] = {
	FX_ROOT_ASK, FX_CHILD_ASK,   FX_CALLBACK_RESUME,
	FX_CANCEL,   FX_USER_RESUME, FX_RELOAD,
	FX_SUSPEND,  FX_EVICT,	     FX_RESUME_WORKER,
};
#define NFIXTURES (sizeof fixtures / sizeof fixtures[0])

/* Scan a C string; the cmd is freed by the test. */
static int scan(const char *data, struct bg_cmd *cmd)
{
	return bg_cmd_scan(data, strlen(data), cmd);
}

static void assert_view(struct bg_str v, const char *expect)
{
	assert_int_equal(v.len, strlen(expect));
	assert_memory_equal(v.p, expect, v.len);
}

static void assert_hdr(const struct bg_cmd *c, enum bg_hdr_field f,
		       const char *expect)
{
	assert_true(c->hdr_present[f]);
	assert_view(c->hdr[f], expect);
}

static int full_parse(const char *data, json_t **root, const char **code)
{
	return bg_cmd_parse_full(data, strlen(data), root, code);
}

/* ---- the WIRE 2.5 examples ---- */

static void test_root_ask_scans_every_header_field(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(FX_ROOT_ASK, &c), 0);
	assert_int_equal(c.action, BG_ACTION_ASK_AGENT);
	assert_view(c.action_name, "ASK_AGENT");
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "msg-1a2b3c4d");
	assert_hdr(&c, BG_HDR_SESSION_ID, "sess-42");
	assert_hdr(&c, BG_HDR_TRACE_ID, "9f1c2e3d4b5a69788796a5b4c3d2e1f0");
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "");
	assert_hdr(&c, BG_HDR_TARGET_AGENT_TYPE, "planner");
	assert_hdr(&c, BG_HDR_PARENT_MESSAGE_ID, "");
	assert_hdr(&c, BG_HDR_TASK_GROUP_ID, "");
	assert_hdr(&c, BG_HDR_USER_CODE, "u-001");
	assert_hdr(&c, BG_HDR_USER_NAME, "alice");
	assert_hdr(&c, BG_HDR_METADATA, "{\"channel\": \"web\"}");
	assert_hdr(&c, BG_HDR_TRACE_PARENT_SPAN_ID, "70cb4086a837a8bb");
	assert_hdr(&c, BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID,
		   "70cb4086a837a8bb");
	assert_false(c.need_message_id);
	assert_view(c.content, "\"Plan a trip to Kyoto\"");
	assert_false(c.wait_for_reply);
	assert_view(c.extra_payload, "{}");
	assert_view(
		c.body,
		"{\"content\": \"Plan a trip to Kyoto\", \"wait_for_reply\": false}");
	assert_int_equal(bg_cmd_validate_task(&c), 0);
	bg_cmd_free(&c);
}

static void test_child_ask_carries_caller_and_parent(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(FX_CHILD_ASK, &c), 0);
	assert_int_equal(c.action, BG_ACTION_ASK_AGENT);
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "msg-5e6f7a8b");
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "planner");
	assert_hdr(&c, BG_HDR_TARGET_AGENT_TYPE, "researcher");
	assert_hdr(&c, BG_HDR_PARENT_MESSAGE_ID, "msg-1a2b3c4d");
	assert_hdr(
		&c, BG_HDR_METADATA,
		"{\"trace_parent_span_id\": \"5e7a123062f66633\", "
		"\"framework_parent_span_id\": \"msg-5e6f7a8b:client.dispatch\"}");
	assert_hdr(&c, BG_HDR_TRACE_PARENT_SPAN_ID, "5e7a123062f66633");
	assert_view(c.content, "\"Find hotels in Kyoto\"");
	assert_true(c.wait_for_reply);
	assert_int_equal(bg_cmd_validate_task(&c), 0);
	bg_cmd_free(&c);
}

static void test_callback_resume_has_status_and_reply_data(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(FX_CALLBACK_RESUME, &c), 0);
	assert_int_equal(c.action, BG_ACTION_RESUME);
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "msg-1a2b3c4d");
	assert_hdr(&c, BG_HDR_PARENT_MESSAGE_ID, "msg-5e6f7a8b");
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "researcher");
	assert_view(c.content, "\"Found 3 hotels\"");
	assert_true(c.has_status);
	assert_view(c.status, "COMPLETED");
	assert_view(c.reply_data, "{\"hotels\": [\"A\", \"B\", \"C\"]}");
	assert_view(c.extra_payload, "{}");
	assert_int_equal(bg_cmd_validate_task(&c), 0);
	bg_cmd_free(&c);
}

static void test_user_resume_with_empty_status_and_null_reply(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(FX_USER_RESUME, &c), 0);
	assert_int_equal(c.action, BG_ACTION_RESUME);
	assert_hdr(&c, BG_HDR_TRACE_ID, "0b1c2d3e4f5a69788796a5b4c3d2e1f0");
	assert_hdr(&c, BG_HDR_METADATA, "{}");
	assert_true(c.has_status);
	assert_view(c.status, "");
	assert_view(c.reply_data, "null");
	assert_view(c.content, "\"Kyoto, 3 nights\"");
	assert_int_equal(bg_cmd_validate_task(&c), 0);
	bg_cmd_free(&c);
}

static void test_cancel_scans_and_full_parses_its_body(void **st)
{
	struct bg_cmd c;
	json_t *root;
	const char *code = "unset";
	json_t *body;

	(void)st;
	assert_int_equal(scan(FX_CANCEL, &c), 0);
	assert_int_equal(c.action, BG_ACTION_CANCEL_TASK);
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "msg-cancel-0f1e2d3c");
	assert_hdr(&c, BG_HDR_USER_CODE, "");
	bg_cmd_free(&c);
	assert_int_equal(full_parse(FX_CANCEL, &root, &code), 0);
	assert_null(code);
	body = json_object_get(root, "body");
	assert_string_equal(
		json_string_value(json_object_get(body, "target_message_id")),
		"msg-1a2b3c4d");
	assert_string_equal(
		json_string_value(json_object_get(body, "cancel_mode")),
		"graceful");
	json_decref(root);
}

static void test_reload_and_admin_commands_scan_with_their_action(void **st)
{
	static const struct {
		const char *data;
		enum bg_action action;
		const char *body;
	} cases[] = {
		{ FX_RELOAD, BG_ACTION_RELOAD_PLUGINS,
		  "{\"reload_id\": \"reload-1a2b3c4d\", \"reason\": \"new prompts\"}" },
		{ FX_SUSPEND, BG_ACTION_SUSPEND_WORKER,
		  "{\"reason\": \"maintenance\"}" },
		{ FX_EVICT, BG_ACTION_EVICT_WORKER,
		  "{\"reason\": \"decommission\", \"force\": false}" },
		{ FX_RESUME_WORKER, BG_ACTION_RESUME_WORKER, "{}" },
	};
	struct bg_cmd c;

	(void)st;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(scan(cases[i].data, &c), 0);
		assert_int_equal(c.action, cases[i].action);
		assert_view(c.body, cases[i].body);
		assert_int_equal(bg_cmd_validate_task(&c), 0);
		bg_cmd_free(&c);
	}
	assert_int_equal(scan(FX_RELOAD, &c), 0);
	assert_hdr(&c, BG_HDR_SESSION_ID, "reload:planner");
	bg_cmd_free(&c);
	assert_int_equal(scan(FX_SUSPEND, &c), 0);
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "5b0c0d8e6f7a4b9c8d7e6f5a4b3c2d1e");
	assert_hdr(&c, BG_HDR_SESSION_ID, "admin");
	bg_cmd_free(&c);
}

/* The scanner and jansson must read the same header from every example. */
static void test_every_example_full_parses_to_the_scanned_header(void **st)
{
	(void)st;
	for (size_t i = 0; i < NFIXTURES; i++) {
		struct bg_cmd c;
		json_t *root, *hdr;
		const char *code;

		assert_int_equal(scan(fixtures[i], &c), 0);
		assert_int_equal(full_parse(fixtures[i], &root, &code), 0);
		hdr = json_object_get(root, "header");
		for (int f = 0; f < BG_HDR__COUNT; f++) {
			if (f == BG_HDR_METADATA) {
				assert_true(json_is_object(
					json_object_get(hdr, "metadata")));
				continue;
			}
			assert_view(
				c.hdr[f],
				json_string_value(json_object_get(
					hdr,
					bg_hdr_name((enum bg_hdr_field)f))));
		}
		assert_string_equal(
			json_string_value(json_object_get(root, "action_type")),
			bg_action_name(c.action));
		json_decref(root);
		bg_cmd_free(&c);
	}
}

/* ---- decoding ---- */

#define HDR_TAIL "\"session_id\": \"s\", \"trace_id\": \"t\""

static void test_header_strings_with_escapes_are_decoded(void **st)
{
	const char *data =
		"{\"action_type\": \"ASK_AGENT\", \"header\": {\"message_id\": "
		"\"m-1\", \"user_name\": \"Jos\\u00e9 \\\"J\\\" \\\\ x\", "
		"\"target_agent_type\": \"\\ud83d\\ude00\", " HDR_TAIL "}, "
		"\"body\": {\"content\": \"hi\", \"status\": \"A\\tB\"}}";
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(data, &c), 0);
	assert_hdr(&c, BG_HDR_USER_NAME, "Jos\xc3\xa9 \"J\" \\ x");
	assert_hdr(&c, BG_HDR_TARGET_AGENT_TYPE, "\xf0\x9f\x98\x80");
	assert_view(c.status, "A\tB");
	/* an unescaped field is a view into the input */
	assert_true(c.hdr[BG_HDR_MESSAGE_ID].p > data &&
		    c.hdr[BG_HDR_MESSAGE_ID].p < data + strlen(data));
	bg_cmd_free(&c);
}

static void test_escaped_keys_and_action_are_recognised(void **st)
{
	const char *data =
		"{\"\\u0061ction_type\": \"ASK_\\u0041GENT\", \"header\": {"
		"\"session\\u005fid\": \"s\", \"trace_id\": \"t\"}, "
		"\"body\": {\"content\": \"x\"}}";
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(data, &c), 0);
	assert_int_equal(c.action, BG_ACTION_ASK_AGENT);
	assert_hdr(&c, BG_HDR_SESSION_ID, "s");
	bg_cmd_free(&c);
}

static void test_legacy_source_agent_id_is_an_alias(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan("{\"action_type\": \"RESUME\", \"header\": {"
			      "\"source_agent_id\": \"old\", " HDR_TAIL "}, "
			      "\"body\": {\"status\": \"COMPLETED\"}}",
			      &c),
			 0);
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "old");
	bg_cmd_free(&c);
	assert_int_equal(scan("{\"action_type\": \"RESUME\", \"header\": {"
			      "\"source_agent_type\": \"new\", "
			      "\"source_agent_id\": \"old\", " HDR_TAIL "}, "
			      "\"body\": {\"status\": \"COMPLETED\"}}",
			      &c),
			 0);
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "new");
	bg_cmd_free(&c);
}

static void test_missing_message_id_is_flagged_not_an_error(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(
		scan("{\"action_type\": \"ASK_AGENT\", \"header\": {" HDR_TAIL
		     "}, \"body\": {\"content\": \"x\"}}",
		     &c),
		0);
	assert_true(c.need_message_id);
	assert_false(c.hdr_present[BG_HDR_MESSAGE_ID]);
	assert_false(c.hdr_present[BG_HDR_METADATA]);
	assert_view(c.hdr[BG_HDR_METADATA], "{}");
	bg_cmd_free(&c);
	assert_int_equal(scan("{\"action_type\": \"ASK_AGENT\", \"header\": {"
			      "\"message_id\": \"\", " HDR_TAIL "}, "
			      "\"body\": {\"content\": \"x\"}}",
			      &c),
			 0);
	assert_true(c.need_message_id);
	bg_cmd_free(&c);
}

static void test_duplicate_keys_take_the_last_value(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(
		scan("{\"action_type\": \"SUSPEND_WORKER\", "
		     "\"header\": {\"user_code\": \"gone\", " HDR_TAIL
		     "}, \"header\": {\"session_id\": \"s2\", "
		     "\"trace_id\": \"t\", \"user_code\": \"u\\u0031\", "
		     "\"user_code\": \"u2\"}, \"body\": {}, "
		     "\"action_type\": \"RESUME_WORKER\"}",
		     &c),
		0);
	assert_int_equal(c.action, BG_ACTION_RESUME_WORKER);
	assert_hdr(&c, BG_HDR_SESSION_ID, "s2");
	assert_hdr(&c, BG_HDR_USER_CODE, "u2");
	bg_cmd_free(&c);
}

static void test_absent_or_null_body_reads_as_empty_object(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan("{\"action_type\": \"RESUME_WORKER\", "
			      "\"header\": {" HDR_TAIL "}}",
			      &c),
			 0);
	assert_view(c.body, "{}");
	assert_view(c.reply_data, "null");
	assert_int_equal(c.content.len, 0);
	bg_cmd_free(&c);
	assert_int_equal(scan("{\"action_type\": \"RESUME_WORKER\", "
			      "\"header\": {" HDR_TAIL "}, \"body\": null}",
			      &c),
			 0);
	assert_view(c.body, "{}");
	bg_cmd_free(&c);
}

/* ---- error classification ---- */

struct err_case {
	const char *data;
	int rc;
};

static void check_errors(const struct err_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct bg_cmd c;
		int rc = scan(cases[i].data, &c);
		if (rc != cases[i].rc)
			fail_msg("case %zu: %s -> %d (%s), want %d", i,
				 cases[i].data, rc, bg_cmd_error_code(rc),
				 cases[i].rc);
		bg_cmd_free(&c);
	}
}

#define ACT(a) "{\"action_type\": \"" a "\", "
#define GOOD_HDR "\"header\": {" HDR_TAIL "}"

static void test_non_json_and_wrong_shapes_are_invalid_json(void **st)
{
	static const struct err_case cases[] = {
		{ "", BG_CMD_EINVALID_JSON },
		{ "not json", BG_CMD_EINVALID_JSON },
		{ "[]", BG_CMD_EINVALID_JSON },
		{ "\"ASK_AGENT\"", BG_CMD_EINVALID_JSON },
		{ "{\"action_type\": \"ASK_AGENT\"", BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") GOOD_HDR "} x", BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") "\"header\": \"h\"}", BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") "\"header\": []}", BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") GOOD_HDR ", \"body\": []}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") GOOD_HDR ", \"body\": \"x\"}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") "\"header\": {\"session_id\": 7, "
				   "\"trace_id\": \"t\"}}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") "\"header\": {" HDR_TAIL
				   ", \"metadata\": \"m\"}}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("ASK_AGENT") "\"header\": {" HDR_TAIL
				   ", \"user_code\": \"\\ud800\"}}",
		  BG_CMD_EINVALID_JSON },
		/* invalid JSON outranks an unknown action */
		{ ACT("NOPE") "\"x\": 01}", BG_CMD_EINVALID_JSON },
	};
	(void)st;
	check_errors(cases, sizeof cases / sizeof cases[0]);
}

static void test_unknown_or_missing_action_is_unknown_action(void **st)
{
	static const struct err_case cases[] = {
		{ "{" GOOD_HDR "}", BG_CMD_EUNKNOWN_ACTION },
		{ ACT("ask_agent") GOOD_HDR "}", BG_CMD_EUNKNOWN_ACTION },
		{ ACT("DANCE") GOOD_HDR "}", BG_CMD_EUNKNOWN_ACTION },
		{ ACT("") GOOD_HDR "}", BG_CMD_EUNKNOWN_ACTION },
		{ "{\"action_type\": 3, " GOOD_HDR "}",
		  BG_CMD_EUNKNOWN_ACTION },
		{ "{\"action_type\": null, " GOOD_HDR "}",
		  BG_CMD_EUNKNOWN_ACTION },
		/* unknown action outranks a missing header */
		{ ACT("DANCE") "\"body\": {}}", BG_CMD_EUNKNOWN_ACTION },
	};
	(void)st;
	check_errors(cases, sizeof cases / sizeof cases[0]);
}

static void test_ask_user_is_known_but_never_accepted(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan(ACT("ASK_USER") GOOD_HDR "}", &c),
			 BG_CMD_EUNKNOWN_ACTION);
	assert_int_equal(c.action, BG_ACTION_ASK_USER);
	bg_cmd_free(&c);
}

static void test_missing_header_pieces_are_missing_header(void **st)
{
	static const struct err_case cases[] = {
		{ ACT("ASK_AGENT") "\"body\": {\"content\": \"x\"}}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("ASK_AGENT") "\"header\": null}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("CANCEL_TASK") "\"header\": {\"trace_id\": \"t\"}}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("CANCEL_TASK") "\"header\": {\"session_id\": \"\", "
				     "\"trace_id\": \"t\"}}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("RESUME") "\"header\": {\"session_id\": null, "
				"\"trace_id\": \"t\"}}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("RESUME") "\"header\": {\"session_id\": \"s\"}}",
		  BG_CMD_EMISSING_HEADER },
		{ ACT("RESUME") "\"header\": {\"session_id\": \"s\", "
				"\"trace_id\": null}}",
		  BG_CMD_EMISSING_HEADER },
	};
	(void)st;
	check_errors(cases, sizeof cases / sizeof cases[0]);
}

static void test_missing_header_keeps_the_ids_it_saw(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(
		scan(ACT("ASK_AGENT") "\"header\": {\"message_id\": "
				      "\"m-\\u0031\", \"trace_id\": \"t\"}}",
		     &c),
		BG_CMD_EMISSING_HEADER);
	assert_hdr(&c, BG_HDR_MESSAGE_ID, "m-1");
	bg_cmd_free(&c);
}

static void test_task_body_types_are_checked_for_tasks_only(void **st)
{
	static const struct err_case cases[] = {
		{ ACT("ASK_AGENT") GOOD_HDR
		  ", \"body\": {\"content\": \"x\", \"wait_for_reply\": \"yes\"}}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("RESUME") GOOD_HDR ", \"body\": {\"status\": 1}}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("RESUME") GOOD_HDR
		  ", \"body\": {\"status\": \"S\", \"extra_payload\": []}}",
		  BG_CMD_EINVALID_JSON },
		{ ACT("SUSPEND_WORKER") GOOD_HDR
		  ", \"body\": {\"status\": 1, \"wait_for_reply\": 2}}",
		  0 },
		{ ACT("ASK_AGENT") GOOD_HDR
		  ", \"body\": {\"content\": \"x\", \"wait_for_reply\": null, "
		  "\"extra_payload\": null, \"status\": null}}",
		  0 },
	};
	(void)st;
	check_errors(cases, sizeof cases / sizeof cases[0]);
}

/* ---- task content rules (WIRE 2.3) ---- */

static int validate(const char *action, const char *body)
{
	struct bg_buf b = { 0 };
	struct bg_cmd c;
	int rc;

	bg_buf_printf(&b,
		      "{\"action_type\": \"%s\", " GOOD_HDR ", \"body\": %s}",
		      action, body);
	rc = bg_cmd_scan(b.p, b.len, &c);
	if (rc == 0)
		rc = bg_cmd_validate_task(&c);
	bg_cmd_free(&c);
	bg_buf_free(&b);
	return rc;
}

static void test_ask_content_must_be_non_blank(void **st)
{
	(void)st;
	assert_int_equal(validate("ASK_AGENT", "{\"content\": \"hi\"}"), 0);
	assert_int_equal(validate("ASK_AGENT",
				  "{\"content\": [{\"role\": "
				  "\"user\", \"content\": \"hi\"}]}"),
			 0);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": {}}"), 0);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": \"\"}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": \"  \\n\\t\"}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": \"\\u3000\"}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": [ ]}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": null}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{\"content\": 5}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("ASK_AGENT", "{}"), BG_CMD_EINVALID_CONTENT);
}

static void test_resume_needs_status_or_content(void **st)
{
	(void)st;
	assert_int_equal(validate("RESUME", "{\"content\": \"\", \"status\": "
					    "\"COMPLETED\"}"),
			 0);
	assert_int_equal(validate("RESUME", "{\"content\": \"ok\", \"status\": "
					    "\"\"}"),
			 0);
	assert_int_equal(validate("RESUME", "{\"content\": [1], \"status\": "
					    "\"\"}"),
			 0);
	assert_int_equal(validate("RESUME",
				  "{\"content\": \"\", \"status\": "
				  "\"\", \"reply_data\": {\"a\": 1}}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("RESUME", "{\"content\": []}"),
			 BG_CMD_EINVALID_CONTENT);
	assert_int_equal(validate("RESUME", "{}"), BG_CMD_EINVALID_CONTENT);
	/* control commands have no content rule */
	assert_int_equal(validate("RESUME_WORKER", "{}"), 0);
}

/* ---- cold path ---- */

static const char *full_code(const char *action, const char *body)
{
	struct bg_buf b = { 0 };
	json_t *root = (json_t *)1;
	const char *code = "unset";
	int rc;

	bg_buf_printf(&b,
		      "{\"action_type\": \"%s\", " GOOD_HDR ", \"body\": %s}",
		      action, body);
	rc = bg_cmd_parse_full(b.p, b.len, &root, &code);
	bg_buf_free(&b);
	if (rc == 0) {
		assert_non_null(root);
		assert_null(code);
		json_decref(root);
		return "ok";
	}
	assert_null(root);
	return code;
}

static void test_full_parse_checks_control_bodies(void **st)
{
	(void)st;
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"m\"}"),
			    "ok");
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": "
				      "\"m\", \"cancel_mode\": \"force\"}"),
			    "ok");
	assert_string_equal(full_code("CANCEL_TASK", "{\"reason\": \"r\"}"),
			    "invalid_body");
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"\"}"),
			    "invalid_body");
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": "
				      "\"m\", \"cancel_mode\": \"soft\"}"),
			    "invalid_body");
	assert_string_equal(full_code("CANCEL_TASK", "{\"target_message_id\": "
						     "\"m\", \"reason\": 3}"),
			    "invalid_body");
	assert_string_equal(full_code("RELOAD_PLUGINS", "{\"reason\": \"r\"}"),
			    "invalid_body");
	assert_string_equal(full_code("RELOAD_PLUGINS",
				      "{\"reload_id\": \"reload-1\"}"),
			    "ok");
	assert_string_equal(full_code("EVICT_WORKER", "{\"force\": \"yes\"}"),
			    "invalid_body");
	assert_string_equal(full_code("EVICT_WORKER", "{\"force\": true}"),
			    "ok");
	assert_string_equal(full_code("SUSPEND_WORKER", "{\"reason\": []}"),
			    "invalid_body");
	assert_string_equal(full_code("RESUME_WORKER", "{}"), "ok");
}

static void test_full_parse_reports_scan_errors_by_code(void **st)
{
	json_t *root;
	const char *code;

	(void)st;
	assert_string_equal(full_code("ASK_AGENT", "{\"content\": \" \"}"),
			    "invalid_content");
	assert_string_equal(full_code("ASK_USER", "{}"), "unknown_action");
	assert_int_equal(full_parse("{", &root, &code), BG_CMD_EINVALID_JSON);
	assert_null(root);
	assert_string_equal(code, "invalid_json");
	assert_int_equal(full_parse(ACT("RESUME") "\"body\": {}}", &root,
				    &code),
			 BG_CMD_EMISSING_HEADER);
	assert_string_equal(code, "missing_header");
}

/* ---- strings with U+0000 (issue 11) ---- */

/* An ASK_AGENT whose header sets `key` (last, so it wins) to the JSON
 * string literal `lit`. */
static int scan_with_header(const char *action, const char *key,
			    const char *lit, struct bg_cmd *c)
{
	struct bg_buf b = { 0 };
	int rc;

	bg_buf_printf(&b,
		      "{\"action_type\": \"%s\", \"header\": {" HDR_TAIL
		      ", \"%s\": %s}, \"body\": {\"content\": \"x\"}}",
		      action, key, lit);
	rc = bg_cmd_scan(b.p, b.len, c);
	bg_buf_free(&b);
	return rc;
}

static const char *const id_keys[] = {
	"message_id",
	"session_id",
	"trace_id",
	"source_agent_type",
	"source_agent_id",
	"target_agent_type",
	"parent_message_id",
	"task_group_id",
	"user_code",
	"trace_parent_span_id",
	"langfuse_parent_observation_id",
};

static void test_nul_in_any_header_id_is_invalid_id(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof id_keys / sizeof id_keys[0]; i++) {
		struct bg_cmd c;
		int rc = scan_with_header("ASK_AGENT", id_keys[i],
					  "\"victim\\u0000evil\"", &c);
		if (rc != BG_CMD_EINVALID_ID)
			fail_msg("%s with U+0000 -> %d (%s)", id_keys[i], rc,
				 bg_cmd_error_code(rc));
		bg_cmd_free(&c);
	}
	assert_string_equal(bg_cmd_error_code(BG_CMD_EINVALID_ID),
			    "invalid_id");
}

static void test_control_characters_in_header_ids_are_invalid_id(void **st)
{
	static const char *const lits[] = {
		"\"\\u0000\"",
		"\"msg-v1\\u0000x\"",
		"\"a\\nb\"",
		"\"a\\u001fb\"",
		"\"a\\u007fb\"",
		"\"a\x7f"
		"b\"",
		"\"\\t\"",
	};
	(void)st;
	for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
		struct bg_cmd c;
		int rc = scan_with_header("ASK_AGENT", "message_id", lits[k],
					  &c);
		if (rc != BG_CMD_EINVALID_ID)
			fail_msg("message_id %s -> %d", lits[k], rc);
		bg_cmd_free(&c);
	}
}

static void test_header_ids_of_control_commands_are_checked_too(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan_with_header("CANCEL_TASK", "session_id",
					  "\"victim\\u0000evil\"", &c),
			 BG_CMD_EINVALID_ID);
	bg_cmd_free(&c);
	assert_int_equal(scan_with_header("RESUME_WORKER", "trace_id",
					  "\"t\\u0000\"", &c),
			 BG_CMD_EINVALID_ID);
	bg_cmd_free(&c);
}

/* The scan still ends with every id it read: the dead letter names it. */
static void test_invalid_id_keeps_the_decoded_id_whole(void **st)
{
	struct bg_cmd c;
	struct bg_str v;

	(void)st;
	assert_int_equal(scan_with_header("ASK_AGENT", "message_id",
					  "\"msg-v1\\u0000x\"", &c),
			 BG_CMD_EINVALID_ID);
	assert_int_equal(c.hdr[BG_HDR_MESSAGE_ID].len, 8);
	assert_memory_equal(c.hdr[BG_HDR_MESSAGE_ID].p, "msg-v1\0x", 8);
	assert_int_equal(bg_cmd_bad_id(&c, &v), BG_HDR_MESSAGE_ID);
	assert_int_equal(v.len, 8);
	assert_memory_equal(v.p, "msg-v1\0x", 8);
	bg_cmd_free(&c);
	assert_int_equal(scan(FX_ROOT_ASK, &c), 0);
	assert_int_equal(bg_cmd_bad_id(&c, &v), -1);
	bg_cmd_free(&c);
}

static void test_ordinary_ids_with_unicode_and_spaces_are_accepted(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan_with_header("ASK_AGENT", "session_id",
					  "\"Jos\\u00e9 s-1 \\ud83d\\ude00\"",
					  &c),
			 0);
	assert_hdr(&c, BG_HDR_SESSION_ID, "Jos\xc3\xa9 s-1 \xf0\x9f\x98\x80");
	bg_cmd_free(&c);
	/* a legacy alias shadowed by source_agent_type is not an id */
	assert_int_equal(scan("{\"action_type\": \"RESUME\", \"header\": {"
			      "\"source_agent_type\": \"new\", "
			      "\"source_agent_id\": \"o\\u0000ld\", " HDR_TAIL
			      "}, \"body\": {\"status\": \"COMPLETED\"}}",
			      &c),
			 0);
	assert_hdr(&c, BG_HDR_SOURCE_AGENT_TYPE, "new");
	bg_cmd_free(&c);
}

static void test_user_name_keeps_its_nul_and_length(void **st)
{
	struct bg_cmd c;

	(void)st;
	assert_int_equal(scan_with_header("ASK_AGENT", "user_name",
					  "\"ali\\u0000ce\"", &c),
			 0);
	assert_true(c.hdr_present[BG_HDR_USER_NAME]);
	assert_int_equal(c.hdr[BG_HDR_USER_NAME].len, 6);
	assert_memory_equal(c.hdr[BG_HDR_USER_NAME].p, "ali\0ce", 6);
	bg_cmd_free(&c);
}

static void test_nul_in_content_and_status_is_kept_whole(void **st)
{
	const char *data = "{\"action_type\": \"RESUME\", " GOOD_HDR
			   ", \"body\": {\"content\": \"ab\\u0000cd\", "
			   "\"status\": \"A\\u0000B\"}}";
	struct bg_cmd c;
	json_t *root, *content;
	const char *code;

	(void)st;
	assert_int_equal(scan(data, &c), 0);
	/* content is the raw JSON value, escape and all */
	assert_view(c.content, "\"ab\\u0000cd\"");
	assert_int_equal(c.status.len, 3);
	assert_memory_equal(c.status.p, "A\0B", 3);
	assert_int_equal(bg_cmd_validate_task(&c), 0);
	bg_cmd_free(&c);
	/* what the child decodes from the raw body: 5 bytes, NUL inside */
	assert_int_equal(full_parse(data, &root, &code), 0);
	content = json_object_get(json_object_get(root, "body"), "content");
	assert_int_equal(json_string_length(content), 5);
	assert_memory_equal(json_string_value(content), "ab\0cd", 5);
	json_decref(root);
	/* ASK content that is only U+0000 is not blank */
	assert_int_equal(validate("ASK_AGENT", "{\"content\": \"\\u0000\"}"),
			 0);
}

static void test_control_target_ids_with_nul_are_invalid_id(void **st)
{
	(void)st;
	assert_string_equal(full_code("CANCEL_TASK", "{\"target_message_id\": "
						     "\"msg-v1\\u0000x\"}"),
			    "invalid_id");
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"m\", "
				      "\"target_execution_id\": \"e\\u0000\"}"),
			    "invalid_id");
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"m\", "
				      "\"target_worker_id\": \"w\\n\"}"),
			    "invalid_id");
	assert_string_equal(full_code("RELOAD_PLUGINS",
				      "{\"reload_id\": \"r\\u0000\"}"),
			    "invalid_id");
	/* free text is not an id */
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"m\", "
				      "\"reason\": \"a\\u0000b\"}"),
			    "ok");
	/* a wrong shape is still invalid_body */
	assert_string_equal(full_code("CANCEL_TASK",
				      "{\"target_message_id\": \"m\\u0000\", "
				      "\"cancel_mode\": \"soft\"}"),
			    "invalid_body");
}

static void test_error_codes_and_texts_are_stable(void **st)
{
	static const struct {
		int rc;
		const char *code;
	} codes[] = {
		{ BG_CMD_EINVALID_JSON, "invalid_json" },
		{ BG_CMD_EUNKNOWN_ACTION, "unknown_action" },
		{ BG_CMD_EMISSING_HEADER, "missing_header" },
		{ BG_CMD_EINVALID_CONTENT, "invalid_content" },
		{ BG_CMD_EINVALID_BODY, "invalid_body" },
		{ BG_CMD_EINVALID_ID, "invalid_id" },
		{ -ENOMEM, "out_of_memory" },
		{ -12345, "internal" },
	};
	(void)st;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		assert_string_equal(bg_cmd_error_code(codes[i].rc),
				    codes[i].code);
		assert_true(strlen(bg_cmd_error_text(codes[i].rc)) > 10);
	}
	assert_string_equal(bg_action_name(BG_ACTION_EVICT_WORKER),
			    "EVICT_WORKER");
	assert_string_equal(bg_action_name((enum bg_action)99), "UNKNOWN");
	assert_string_equal(bg_hdr_name(BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID),
			    "langfuse_parent_observation_id");
}

/* ---- hostile input ---- */

static void test_deeply_nested_content_is_rejected(void **st)
{
	struct bg_buf b = { 0 };
	struct bg_cmd c;

	(void)st;
	bg_buf_puts(&b, ACT("ASK_AGENT") GOOD_HDR ", \"body\": {\"content\": ");
	for (int i = 0; i < 5000; i++)
		bg_buf_puts(&b, "[");
	for (int i = 0; i < 5000; i++)
		bg_buf_puts(&b, "]");
	bg_buf_puts(&b, "}}");
	assert_int_equal(bg_cmd_scan(b.p, b.len, &c), BG_CMD_EINVALID_JSON);
	bg_cmd_free(&c);
	bg_buf_free(&b);
}

/* Scan an exact-size heap copy so ASan sees any read past the end. */
static int scan_copy(const char *data, size_t n, struct bg_cmd *c)
{
	char *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, data, n);
	rc = bg_cmd_scan(copy, n, c);
	if (rc == 0) {
		assert_true(bg_json_valid(copy, n));
		bg_cmd_validate_task(c);
	}
	bg_cmd_free(c);
	free(copy);
	return rc;
}

static void test_every_truncation_is_rejected_safely(void **st)
{
	struct bg_cmd c;

	(void)st;
	for (size_t i = 0; i < NFIXTURES; i++) {
		size_t n = strlen(fixtures[i]);
		for (size_t k = 0; k < n; k++)
			assert_int_not_equal(scan_copy(fixtures[i], k, &c), 0);
		assert_int_equal(scan_copy(fixtures[i], n, &c), 0);
	}
}

static uint32_t rng_state = 0x9e3779b9u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Overwrite, insert or delete a few bytes (biased towards JSON syntax). */
static size_t mutate(char *buf, size_t n, size_t cap)
{
	static const char syntax[] =
		"{}[]\":,\\u0123456789eE.-+ \ttrufalsn\xc3\xff";
	int edits = 1 + (int)(rng() % 4);

	for (int e = 0; e < edits && n > 0; e++) {
		size_t at = rng() % n;
		char c = rng() % 2 ? syntax[rng() % (sizeof syntax - 1)]
				   : (char)(rng() & 0xff);
		switch (rng() % 3) {
		case 0:
			buf[at] = c;
			break;
		case 1:
			if (n < cap) {
				memmove(buf + at + 1, buf + at, n - at);
				buf[at] = c;
				n++;
			}
			break;
		default:
			memmove(buf + at, buf + at + 1, n - at - 1);
			n--;
			break;
		}
	}
	return n;
}

static void test_random_mutations_never_crash_and_agree_with_jansson(void **st)
{
	char buf[1024];
	struct bg_cmd c;
	int accepted = 0;

	(void)st;
	for (int round = 0; round < 4000; round++) {
		const char *src = fixtures[round % NFIXTURES];
		size_t n = strlen(src);
		json_t *root;
		const char *code;
		int rc, full;

		memcpy(buf, src, n);
		n = mutate(buf, n, sizeof buf);
		rc = scan_copy(buf, n, &c);
		if (rc == 0) {
			struct bg_cmd v;
			bg_cmd_scan(buf, n, &v);
			rc = bg_cmd_validate_task(&v);
			bg_cmd_free(&v);
		}
		full = bg_cmd_parse_full(buf, n, &root, &code);
		json_decref(root);
		/* same verdict as the hot path unless the body check speaks
		 * (a control body's shape or its target ids) */
		if (full != BG_CMD_EINVALID_BODY &&
		    !(full == BG_CMD_EINVALID_ID && rc == 0))
			assert_int_equal(full, rc);
		accepted += rc == 0;
	}
	assert_true(accepted > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_ask_scans_every_header_field),
		cmocka_unit_test(test_child_ask_carries_caller_and_parent),
		cmocka_unit_test(
			test_callback_resume_has_status_and_reply_data),
		cmocka_unit_test(
			test_user_resume_with_empty_status_and_null_reply),
		cmocka_unit_test(test_cancel_scans_and_full_parses_its_body),
		cmocka_unit_test(
			test_reload_and_admin_commands_scan_with_their_action),
		cmocka_unit_test(
			test_every_example_full_parses_to_the_scanned_header),
		cmocka_unit_test(test_header_strings_with_escapes_are_decoded),
		cmocka_unit_test(test_escaped_keys_and_action_are_recognised),
		cmocka_unit_test(test_legacy_source_agent_id_is_an_alias),
		cmocka_unit_test(
			test_missing_message_id_is_flagged_not_an_error),
		cmocka_unit_test(test_duplicate_keys_take_the_last_value),
		cmocka_unit_test(
			test_absent_or_null_body_reads_as_empty_object),
		cmocka_unit_test(
			test_non_json_and_wrong_shapes_are_invalid_json),
		cmocka_unit_test(
			test_unknown_or_missing_action_is_unknown_action),
		cmocka_unit_test(test_ask_user_is_known_but_never_accepted),
		cmocka_unit_test(test_missing_header_pieces_are_missing_header),
		cmocka_unit_test(test_missing_header_keeps_the_ids_it_saw),
		cmocka_unit_test(
			test_task_body_types_are_checked_for_tasks_only),
		cmocka_unit_test(test_ask_content_must_be_non_blank),
		cmocka_unit_test(test_resume_needs_status_or_content),
		cmocka_unit_test(test_full_parse_checks_control_bodies),
		cmocka_unit_test(test_full_parse_reports_scan_errors_by_code),
		cmocka_unit_test(test_nul_in_any_header_id_is_invalid_id),
		cmocka_unit_test(
			test_control_characters_in_header_ids_are_invalid_id),
		cmocka_unit_test(
			test_header_ids_of_control_commands_are_checked_too),
		cmocka_unit_test(test_invalid_id_keeps_the_decoded_id_whole),
		cmocka_unit_test(
			test_ordinary_ids_with_unicode_and_spaces_are_accepted),
		cmocka_unit_test(test_user_name_keeps_its_nul_and_length),
		cmocka_unit_test(test_nul_in_content_and_status_is_kept_whole),
		cmocka_unit_test(
			test_control_target_ids_with_nul_are_invalid_id),
		cmocka_unit_test(test_error_codes_and_texts_are_stable),
		cmocka_unit_test(test_deeply_nested_content_is_rejected),
		cmocka_unit_test(test_every_truncation_is_rejected_safely),
		cmocka_unit_test(
			test_random_mutations_never_crash_and_agree_with_jansson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
