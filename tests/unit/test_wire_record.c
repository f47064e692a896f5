/* tests/unit/test_wire_record.c - specification of wire/record: reading
 * untrusted records, the records senders and workers create (WIRE 6.2,
 * 6.4), status updates spliced into the stored bytes, status strings. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/record.h"

/* WIRE 6.2 example, without the [py] agent-config members bygate does not
 * share (8.2); its updated_at 1718000003050 is the snapshot cleanup's. */
static const char example_6_2[] =
	"{\"execution_id\": \"exec-0a1b2c3d\", \"message_id\": \"msg-1a2b3c4d\", "
	"\"session_id\": \"sess-42\", \"trace_id\": "
	"\"9f1c2e3d4b5a69788796a5b4c3d2e1f0\", \"parent_message_id\": \"\", "
	"\"source_agent_type\": \"client\", \"target_agent_type\": \"planner\", "
	"\"stream_name\": \"byai_gateway:ctrl:agent_type:planner\", \"status\": "
	"\"COMPLETED\", \"route_policy\": \"FAIL_FAST\", \"route_status\": "
	"\"DELIVER_NOW\", \"selected_agent_type\": \"\", "
	"\"availability_error_code\": \"\", \"availability_error\": \"\", "
	"\"created_at\": 1718000000100, \"updated_at\": 1718000003000, "
	"\"started_at\": 1718000000200, \"finished_at\": 1718000003000, "
	"\"timeline\": [{\"status\": \"QUEUED\", \"timestamp\": 1718000000100}, "
	"{\"status\": \"RUNNING\", \"timestamp\": 1718000000200}, {\"status\": "
	"\"COMPLETED\", \"timestamp\": 1718000003000}], \"worker_id\": "
	"\"worker-01\"}";

static const struct bg_record_queued client_send = {
	.execution_id = BG_STR_LIT("exec-0a1b2c3d"),
	.message_id = BG_STR_LIT("msg-1a2b3c4d"),
	.session_id = BG_STR_LIT("sess-42"),
	.trace_id = BG_STR_LIT("9f1c2e3d4b5a69788796a5b4c3d2e1f0"),
	.source_agent_type = BG_STR_LIT("client"),
	.target_agent_type = BG_STR_LIT("planner"),
	.stream_name = BG_STR_LIT("byai_gateway:ctrl:agent_type:planner"),
	.route = true,
	.now_ms = 1718000000100,
};

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
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_SORT_KEYS);
		fail_msg("JSON differs:\n got  %s\n want %s", g, w);
	}
	json_decref(got);
	json_decref(want);
}

/* Apply one status update to *rec in place. */
static void update(struct bg_buf *rec, const struct bg_record_update *u)
{
	struct bg_buf out = { 0 };
	assert_int_equal(
		bg_record_update(&out, (struct bg_str){ rec->p, rec->len }, u),
		0);
	bg_buf_free(rec);
	*rec = out;
}

static void set_status(struct bg_buf *rec, const char *status, int64_t now)
{
	struct bg_record_update u = { .status = bg_str_c(status),
				      .now_ms = now };
	update(rec, &u);
}

static json_int_t int_member(const struct bg_buf *rec, const char *key)
{
	json_t *j = parse(rec);
	json_int_t v = json_integer_value(json_object_get(j, key));
	json_decref(j);
	return v;
}

/* ---- creation --------------------------------------------------------- */

static void
test_client_record_through_its_lifecycle_matches_wire_6_2(void **state)
{
	struct bg_buf rec = { 0 };
	assert_int_equal(bg_record_build_queued(&rec, &client_send), 0);
	struct bg_record_update run = { .status = BG_STR_LIT("RUNNING"),
					.worker_id = BG_STR_LIT("worker-01"),
					.now_ms = 1718000000200 };
	update(&rec, &run);
	set_status(&rec, "COMPLETED", 1718000003000);

	json_t *want = json_loads(example_6_2, 0, NULL);
	assert_json_equal(parse(&rec), want);
	bg_buf_free(&rec);
}

static void test_queued_record_has_the_sender_fields(void **state)
{
	struct bg_buf rec = { 0 };
	assert_int_equal(bg_record_build_queued(&rec, &client_send), 0);
	json_t *want = json_pack(
		"{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
		"s:I,s:I,s:i,s:i,s:[{s:s,s:I}],s:s}",
		"execution_id", "exec-0a1b2c3d", "message_id", "msg-1a2b3c4d",
		"session_id", "sess-42", "trace_id",
		"9f1c2e3d4b5a69788796a5b4c3d2e1f0", "parent_message_id", "",
		"source_agent_type", "client", "target_agent_type", "planner",
		"stream_name", "byai_gateway:ctrl:agent_type:planner", "status",
		"QUEUED", "route_policy", "FAIL_FAST", "route_status",
		"DELIVER_NOW", "selected_agent_type", "",
		"availability_error_code", "", "availability_error", "",
		"created_at", (json_int_t)1718000000100, "updated_at",
		(json_int_t)1718000000100, "started_at", 0, "finished_at", 0,
		"timeline", "status", "QUEUED", "timestamp",
		(json_int_t)1718000000100, "worker_id", "");
	assert_json_equal(parse(&rec), want);
	bg_buf_free(&rec);
}

static void test_group_child_record_has_no_route_members(void **state)
{
	struct bg_record_queued q = client_send;
	q.route = false;
	struct bg_buf rec = { 0 };
	assert_int_equal(bg_record_build_queued(&rec, &q), 0);
	json_t *j = parse(&rec);
	assert_null(json_object_get(j, "route_policy"));
	assert_null(json_object_get(j, "availability_error"));
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "QUEUED");
	json_decref(j);
	bg_buf_free(&rec);
}

static void
test_worker_created_record_is_running_without_source_agent(void **state)
{
	struct bg_record_new n = {
		.execution_id = BG_STR_LIT("exec-11112222"),
		.message_id = BG_STR_LIT("msg-1a2b3c4d"),
		.session_id = BG_STR_LIT("sess-42"),
		.trace_id = BG_STR_LIT("t"),
		.worker_id = BG_STR_LIT("worker-01"),
		.target_agent_type = BG_STR_LIT("planner"),
		.stream_name =
			BG_STR_LIT("byai_gateway:ctrl:agent_type:planner"),
		.redis_message_id = BG_STR_LIT("1718000000123-0"),
		.now_ms = 1718000000200,
	};
	struct bg_buf rec = { 0 };
	assert_int_equal(bg_record_build_running(&rec, &n), 0);
	json_t *j = parse(&rec);
	assert_null(json_object_get(j, "source_agent_type"));
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "RUNNING");
	assert_string_equal(
		json_string_value(json_object_get(j, "redis_message_id")),
		"1718000000123-0");
	assert_string_equal(
		json_string_value(json_object_get(j, "parent_message_id")), "");
	assert_true(json_is_false(json_object_get(j, "cancel_requested")));
	assert_int_equal(json_integer_value(json_object_get(j, "finished_at")),
			 0);
	assert_int_equal(json_array_size(json_object_get(j, "timeline")), 1);
	json_decref(j);
	assert_int_equal(int_member(&rec, "started_at"), 1718000000200);
	bg_buf_free(&rec);
}

/* ---- reading ---------------------------------------------------------- */

static void test_read_extracts_the_worker_fields(void **state)
{
	struct bg_record r = { 0 };
	const char *json =
		"{\"execution_id\": \"exec-0a1b2c3d\", \"message_id\": \"msg-1\", "
		"\"status\": \"WAITING_USER\", \"parent_message_id\": \"msg-0\", "
		"\"worker_id\": \"worker-01\", \"source_agent_type\": \"planner\", "
		"\"target_agent_type\": \"researcher\", \"cancel_requested\": true, "
		"\"cancel_reason\": \"user aborted\", \"started_at\": 1718000000200, "
		"\"timeline\": [{\"status\": \"QUEUED\"}], \"extra\": {\"x\": [1]}}";
	assert_int_equal(bg_record_read(&r, bg_str_c(json)), 0);
	assert_true(bg_str_eq(r.execution_id, "exec-0a1b2c3d"));
	assert_true(bg_str_eq(r.message_id, "msg-1"));
	assert_true(bg_str_eq(r.status, "WAITING_USER"));
	assert_true(bg_str_eq(r.parent_message_id, "msg-0"));
	assert_true(bg_str_eq(r.worker_id, "worker-01"));
	assert_true(bg_str_eq(r.source_agent_type, "planner"));
	assert_true(bg_str_eq(r.target_agent_type, "researcher"));
	assert_true(bg_str_eq(r.cancel_reason, "user aborted"));
	assert_true(r.cancel_requested);
	assert_int_equal(r.started_at, 1718000000200);
	bg_record_free(&r);
}

static void test_read_missing_and_null_members_are_empty(void **state)
{
	struct bg_record r = { 0 };
	assert_int_equal(
		bg_record_read(
			&r,
			bg_str_c(
				"{\"status\": null, "
				"\"started_at\": null, \"cancel_requested\": null}")),
		0);
	assert_int_equal(r.execution_id.len, 0);
	assert_int_equal(r.status.len, 0);
	assert_false(r.cancel_requested);
	assert_int_equal(r.started_at, 0);
	bg_record_free(&r);
	assert_int_equal(bg_record_read(&r, bg_str_c(" {} ")), 0);
	assert_int_equal(r.worker_id.len, 0);
	bg_record_free(&r);
}

static void test_read_decodes_escaped_strings(void **state)
{
	struct bg_record r = { 0 };
	assert_int_equal(
		bg_record_read(
			&r,
			bg_str_c(
				"{\"cancel_reason\": \"caf\\u00e9 \\\"now\\\"\", \"status\": \"A\\/B\"}")),
		0);
	assert_true(bg_str_eq(r.cancel_reason, "caf\xc3\xa9 \"now\""));
	assert_true(bg_str_eq(r.status, "A/B"));
	bg_record_free(&r);
}

static void test_read_takes_the_last_route_members_decoded(void **state)
{
	struct bg_record r = { 0 };
	assert_int_equal(
		bg_record_read(
			&r,
			bg_str_c(
				"{\"route_policy\": \"X\", \"status\": \"RUNNING\", \"route_policy\": \"FAIL\\u005fFAST\", \"route_status\": \"DELIVER_NOW\"}")),
		0);
	assert_true(bg_str_eq(r.route_policy, "FAIL_FAST"));
	assert_true(bg_str_eq(r.route_status, "DELIVER_NOW"));
	assert_true(bg_str_eq(r.status, "RUNNING"));
	bg_record_free(&r);
}

static void test_read_route_members_not_strings_read_empty(void **state)
{
	struct bg_record r = { 0 };
	assert_int_equal(
		bg_record_read(
			&r,
			bg_str_c(
				"{\"route_policy\": \"FAIL_FAST\", \"route_policy\": 3, \"route_status\": {\"a\": 1}, \"worker_id\": \"w\"}")),
		0);
	assert_int_equal(r.route_policy.len, 0);
	assert_int_equal(r.route_status.len, 0);
	assert_true(bg_str_eq(r.worker_id, "w"));
	bg_record_free(&r);
	assert_int_equal(bg_record_read(&r, bg_str_c("{}")), 0);
	assert_int_equal(r.route_policy.len, 0);
	assert_int_equal(r.route_status.len, 0);
	bg_record_free(&r);
}

/* The snapshot an update takes in its own pass is byte for byte the one
 * bg_record_snapshot reads from the updated record: kept, edited and
 * appended members, escaped and duplicated keys, the extra edits, with
 * bytes already in out before the record. */
static void test_update_snapshot_is_the_snapshot_of_the_update(void **state)
{
	static const char *const records[] = {
		example_6_2,
		"{}",
		" { \"status\" : \"QUEUED\" , \"st\\u0061rted_at\": 0, "
		"\"error_type\": \"x\", \"error_type\": null, \"agent_config_audit\": "
		"{\"a\": [1, 2]}, \"worker_id\": \"w\", \"retryable\": true } ",
		"{\"timeline\": 3, \"route_policy\": \"A\", \"route_policy\": "
		"\"B\", \"finished_at\": 5}",
	};
	struct bg_record_errors errs = {
		.error_type = BG_STR_LIT("\"E\""),
		.error_message = BG_STR_LIT("\"m\""),
		.retryable = BG_STR_LIT("false"),
	};
	struct bg_json_edit extra[2] = {
		{ "agent_configs_version", BG_STR_LIT("7"), BG_JSON_SET },
		{ "agent_config_audit", BG_STR_LIT("{\"k\": \"v\"}"),
		  BG_JSON_SET },
	};
	struct bg_record_update ups[] = {
		{ .status = BG_STR_LIT("RUNNING"),
		  .worker_id = BG_STR_LIT("worker-02"),
		  .now_ms = 500,
		  .extra = extra,
		  .n_extra = 2 },
		{ .status = BG_STR_LIT("FAILED"),
		  .now_ms = 600,
		  .cancel = true,
		  .cancel_reason = BG_STR_LIT("stop"),
		  .errors = &errs,
		  .duplicate_of = BG_STR_LIT("m-1") },
	};
	for (size_t r = 0; r < sizeof(records) / sizeof(records[0]); r++)
		for (size_t u = 0; u < sizeof(ups) / sizeof(ups[0]); u++) {
			struct bg_buf out = { 0 }, snap = { 0 }, want = { 0 };
			bg_buf_puts(&out, "prefix");
			bg_buf_puts(&snap, "[");
			assert_int_equal(bg_record_update_snap(
						 &out, bg_str_c(records[r]),
						 &ups[u], &snap),
					 0);
			bg_buf_puts(&want, "[");
			assert_int_equal(
				bg_record_snapshot(
					&want, (struct bg_str){ out.p + 6,
								out.len - 6 }),
				0);
			assert_string_equal(snap.p, want.p);
			bg_buf_reset(&want);
			assert_int_equal(bg_record_update(&want,
							  bg_str_c(records[r]),
							  &ups[u]),
					 0);
			assert_string_equal(out.p + 6, want.p);
			bg_buf_free(&out);
			bg_buf_free(&snap);
			bg_buf_free(&want);
		}
}

static void
test_update_snapshot_of_a_malformed_record_is_untouched(void **state)
{
	struct bg_buf out = { 0 }, snap = { 0 };
	struct bg_record_update u = { .status = BG_STR_LIT("RUNNING"),
				      .now_ms = 1 };
	bg_buf_puts(&snap, "s");
	assert_int_equal(bg_record_update_snap(&out, bg_str_c("{\"a\": }"), &u,
					       &snap),
			 -EINVAL);
	assert_int_equal(out.len, 0);
	assert_string_equal(snap.p, "s");
	bg_buf_free(&out);
	bg_buf_free(&snap);
}

static void test_read_rejects_malformed_records(void **state)
{
	const char *bad[] = {
		"",
		"null",
		"[]",
		"\"exec\"",
		"{",
		"{\"status\": \"RUNNING\"",
		"{\"status\": \"RUNNING\",}",
		"{\"status\" \"x\"}",
		"{} x",
		"{\"status\": \"\\ud800\"}",
		"{\"status\": 'x'}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bg_record r = { 0 };
		assert_int_equal(bg_record_read(&r, bg_str_c(bad[i])), -EINVAL);
		assert_null(r.store.p);
	}
}

static void test_read_rejects_members_of_the_wrong_type(void **state)
{
	const char *bad[] = {
		"{\"status\": 3}",
		"{\"execution_id\": {}}",
		"{\"cancel_requested\": \"yes\"}",
		"{\"started_at\": \"1\"}",
		"{\"started_at\": 1e400}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bg_record r = { 0 };
		assert_int_equal(bg_record_read(&r, bg_str_c(bad[i])), -EINVAL);
	}
}

static void test_read_rejects_nesting_beyond_the_limit(void **state)
{
	struct bg_buf json = { 0 };
	struct bg_record r = { 0 };
	bg_buf_puts(&json, "{\"a\": ");
	for (int i = 0; i < 100; i++)
		bg_buf_puts(&json, "[");
	for (int i = 0; i < 100; i++)
		bg_buf_puts(&json, "]");
	bg_buf_puts(&json, "}");
	assert_int_equal(bg_record_read(&r,
					(struct bg_str){ json.p, json.len }),
			 -EINVAL);
	bg_buf_free(&json);
}

static void test_read_handles_embedded_nul_without_overrun(void **state)
{
	static const char json[] = "{\"status\": \"RUN\0NING\"}";
	struct bg_record r = { 0 };
	assert_int_equal(
		bg_record_read(&r, (struct bg_str){ json, sizeof(json) - 1 }),
		-EINVAL);
}

/* ---- update ----------------------------------------------------------- */

static const char legacy[] =
	"{\"execution_id\": \"exec-1\", \"status\": \"QUEUED\", \"weird\": "
	"{\"n\": [1, 2.50, \"\\u00e9\"]},  \"started_at\": 0, \"timeline\": "
	"[{\"status\": \"QUEUED\", \"timestamp\": 1}]}";

static void test_update_keeps_unknown_members_byte_for_byte(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, legacy);
	set_status(&rec, "RUNNING", 5);
	assert_non_null(
		strstr(rec.p, "\"weird\": {\"n\": [1, 2.50, \"\\u00e9\"]},  "));
	assert_non_null(strstr(rec.p, "\"execution_id\": \"exec-1\""));
	bg_buf_free(&rec);
}

static void test_update_appends_the_timeline(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, legacy);
	set_status(&rec, "RUNNING", 5);
	set_status(&rec, "WAITING_USER", 9);
	json_t *j = parse(&rec);
	json_t *want = json_pack("[{s:s,s:i},{s:s,s:i},{s:s,s:i}]", "status",
				 "QUEUED", "timestamp", 1, "status", "RUNNING",
				 "timestamp", 5, "status", "WAITING_USER",
				 "timestamp", 9);
	assert_json_equal(json_incref(json_object_get(j, "timeline")), want);
	assert_int_equal(json_integer_value(json_object_get(j, "updated_at")),
			 9);
	json_decref(j);
	bg_buf_free(&rec);
}

static void test_update_creates_a_missing_timeline(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec,
		    "{\"status\": \"QUEUED\", \"timeline\": \"corrupt\"}");
	set_status(&rec, "RUNNING", 5);
	json_t *j = parse(&rec);
	json_t *want =
		json_pack("[{s:s,s:i}]", "status", "RUNNING", "timestamp", 5);
	assert_json_equal(json_incref(json_object_get(j, "timeline")), want);
	json_decref(j);
	bg_buf_free(&rec);

	bg_buf_puts(&rec, "{}");
	set_status(&rec, "RUNNING", 6);
	assert_int_equal(int_member(&rec, "started_at"), 6);
	bg_buf_free(&rec);
}

static void test_update_sets_started_at_once(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, legacy);
	set_status(&rec, "WAITING_USER", 3);
	assert_int_equal(int_member(&rec, "started_at"), 0);
	set_status(&rec, "RUNNING", 5);
	assert_int_equal(int_member(&rec, "started_at"), 5);
	set_status(&rec, "WAITING_USER", 7);
	set_status(&rec, "RUNNING", 9);
	assert_int_equal(int_member(&rec, "started_at"), 5);
	bg_buf_free(&rec);
}

static void
test_update_sets_finished_at_only_for_terminal_statuses(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, legacy);
	set_status(&rec, "completed", 4);
	set_status(&rec, "QUEUED: waiting_for_group", 5);
	json_t *j = parse(&rec);
	assert_null(json_object_get(j, "finished_at"));
	json_decref(j);
	set_status(&rec, "CANCELLED", 6);
	assert_int_equal(int_member(&rec, "finished_at"), 6);
	bg_buf_free(&rec);
}

static void test_update_sets_worker_only_when_given(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, "{\"worker_id\": \"worker-01\"}");
	set_status(&rec, "COMPLETED", 4);
	assert_non_null(strstr(rec.p, "\"worker_id\": \"worker-01\""));
	struct bg_record_update u = { .status = BG_STR_LIT("RUNNING"),
				      .worker_id = BG_STR_LIT("worker-02"),
				      .now_ms = 5 };
	update(&rec, &u);
	json_t *j = parse(&rec);
	assert_string_equal(json_string_value(json_object_get(j, "worker_id")),
			    "worker-02");
	json_decref(j);
	bg_buf_free(&rec);
}

static void test_update_marks_cancel_requested(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec,
		    "{\"status\": \"RUNNING\", \"cancel_requested\": false}");
	struct bg_record_update u = { .status = BG_STR_LIT("CANCELLING"),
				      .now_ms = 5,
				      .cancel = true,
				      .cancel_reason =
					      BG_STR_LIT("user aborted") };
	update(&rec, &u);
	json_t *j = parse(&rec);
	assert_true(json_is_true(json_object_get(j, "cancel_requested")));
	assert_string_equal(
		json_string_value(json_object_get(j, "cancel_reason")),
		"user aborted");
	json_decref(j);
	bg_buf_free(&rec);
}

/* WIRE 6.10, issue 11 item 4: the finish is spliced into the record as
 * the client left it (mark_execution_cancelling), so the cancel request,
 * its reason and the CANCELLING step survive, and reading that record
 * gives the status and owner the counters move from (WIRE 5.9). */
static void
test_a_cancel_through_its_lifecycle_keeps_the_clients_members(void **state)
{
	struct bg_buf rec = { 0 };
	assert_int_equal(bg_record_build_queued(&rec, &client_send), 0);
	struct bg_record_update run = { .status = BG_STR_LIT("RUNNING"),
					.worker_id = BG_STR_LIT("worker-01"),
					.now_ms = 200 };
	update(&rec, &run);
	struct bg_record_update client = { .status = BG_STR_LIT("CANCELLING"),
					   .now_ms = 300,
					   .cancel = true,
					   .cancel_reason =
						   BG_STR_LIT("user aborted") };
	update(&rec, &client);

	struct bg_record r = { 0 };
	assert_int_equal(bg_record_read(&r, (struct bg_str){ rec.p, rec.len }),
			 0);
	assert_true(bg_str_eq(r.status, "CANCELLING"));
	assert_true(bg_str_eq(r.worker_id, "worker-01"));
	assert_true(r.cancel_requested);
	bg_record_free(&r);

	set_status(&rec, "CANCELLED", 400); /* the worker's finish */
	json_t *j = parse(&rec);
	json_t *want = json_pack("[{s:s,s:I},{s:s,s:i},{s:s,s:i},{s:s,s:i}]",
				 "status", "QUEUED", "timestamp",
				 (json_int_t)1718000000100, "status", "RUNNING",
				 "timestamp", 200, "status", "CANCELLING",
				 "timestamp", 300, "status", "CANCELLED",
				 "timestamp", 400);
	assert_json_equal(json_incref(json_object_get(j, "timeline")), want);
	assert_true(json_is_true(json_object_get(j, "cancel_requested")));
	assert_string_equal(
		json_string_value(json_object_get(j, "cancel_reason")),
		"user aborted");
	assert_int_equal(json_integer_value(json_object_get(j, "finished_at")),
			 400);
	json_decref(j);

	struct bg_buf snap = { 0 };
	assert_int_equal(bg_record_snapshot(&snap,
					    (struct bg_str){ rec.p, rec.len }),
			 0);
	j = parse(&snap);
	assert_string_equal(json_string_value(json_object_get(j, "status")),
			    "CANCELLED");
	assert_true(json_is_true(json_object_get(j, "cancel_requested")));
	assert_string_equal(
		json_string_value(json_object_get(j, "cancel_reason")),
		"user aborted");
	json_decref(j);
	bg_buf_free(&snap);
	bg_buf_free(&rec);
}

/* A cancel nobody wrote on the record is written with the finish: the
 * members are added once, after the others, and the timeline gets only
 * the final step. */
static void test_a_finish_can_write_the_cancel_request_itself(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, "{\"status\": \"RUNNING\", \"timeline\": "
			  "[{\"status\": \"RUNNING\", \"timestamp\": 2}]}");
	struct bg_record_update u = { .status = BG_STR_LIT("CANCELLED"),
				      .now_ms = 5,
				      .cancel = true,
				      .cancel_reason =
					      BG_STR_LIT("user aborted") };
	update(&rec, &u);
	assert_non_null(strstr(rec.p, ",\"cancel_requested\":true,"
				      "\"cancel_reason\":\"user aborted\"}"));
	json_t *j = parse(&rec);
	assert_int_equal(json_array_size(json_object_get(j, "timeline")), 2);
	json_decref(j);
	bg_buf_free(&rec);
}

static void test_update_writes_completion_fields_from_metadata(void **state)
{
	struct bg_record_errors e = { 0 };
	assert_int_equal(
		bg_record_errors_from(
			&e,
			bg_str_c(
				"{\"error_type\": \"ValueError\", \"error_message\": \"bad\", "
				"\"failed_stage\": \"process_command\", \"retryable\": false, "
				"\"error_code\": null}"),
			bg_str_c("{\"error\": \"other\"}")),
		0);
	assert_int_equal(e.error_code.len, 0);
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, "{\"status\": \"RUNNING\"}");
	struct bg_record_update u = { .status = BG_STR_LIT("FAILED"),
				      .now_ms = 5,
				      .errors = &e };
	update(&rec, &u);
	json_t *j = parse(&rec);
	assert_string_equal(json_string_value(json_object_get(j, "error_type")),
			    "ValueError");
	assert_string_equal(
		json_string_value(json_object_get(j, "error_message")), "bad");
	assert_string_equal(
		json_string_value(json_object_get(j, "failed_stage")),
		"process_command");
	assert_true(json_is_false(json_object_get(j, "retryable")));
	assert_null(json_object_get(j, "error_code"));
	json_decref(j);
	bg_buf_free(&rec);
}

static void test_error_message_falls_back_to_reply_data_error(void **state)
{
	struct bg_record_errors e = { 0 };
	assert_int_equal(
		bg_record_errors_from(&e, bg_str_c("{}"),
				      bg_str_c("{\"error\": \"boom\"}")),
		0);
	assert_true(bg_str_eq(e.error_message, "\"boom\""));
	assert_int_equal(e.error_type.len, 0);
	assert_int_equal(bg_record_errors_from(&e, BG_STR_LIT(""),
					       bg_str_c("\"boom\"")),
			 0);
	assert_int_equal(e.error_message.len, 0);
	assert_int_equal(bg_record_errors_from(&e, bg_str_c("{\"a\":"),
					       BG_STR_LIT("")),
			 -EINVAL);
}

static void test_update_writes_duplicate_of_when_given(void **state)
{
	struct bg_buf rec = { 0 };
	bg_buf_puts(&rec, "{\"status\": \"QUEUED\"}");
	struct bg_record_update u = { .status = BG_STR_LIT("FAILED"),
				      .now_ms = 5,
				      .duplicate_of = BG_STR_LIT("msg-1") };
	update(&rec, &u);
	json_t *j = parse(&rec);
	assert_string_equal(
		json_string_value(json_object_get(j, "duplicate_of")), "msg-1");
	json_decref(j);
	u.duplicate_of = BG_STR_LIT("");
	update(&rec, &u);
	j = parse(&rec);
	assert_string_equal(/* kept as it was */
			    json_string_value(
				    json_object_get(j, "duplicate_of")),
			    "msg-1");
	json_decref(j);
	bg_buf_free(&rec);
}

/* Extra edits go in the same pass, exactly as a second edit of the
 * updated record would write them (the RUNNING record and its audit). */
static void test_update_applies_extra_edits_as_a_second_edit_would(void **state)
{
	const char *rec = "{\"status\":\"QUEUED\",\"agent_config_audit\":null,"
			  "\"x\":[1, 2]}";
	struct bg_json_edit extra[2] = {
		{ "agent_configs_version", BG_STR_LIT("3"), BG_JSON_SET },
		{ "agent_config_audit", BG_STR_LIT("{\"version\":3}"),
		  BG_JSON_SET },
	};
	struct bg_record_update u = { .status = BG_STR_LIT("RUNNING"),
				      .worker_id = BG_STR_LIT("w-1"),
				      .now_ms = 7 };
	struct bg_buf one = { 0 }, bare = { 0 }, two = { 0 };
	(void)state;
	assert_int_equal(bg_record_update(&bare, bg_str_c(rec), &u), 0);
	assert_int_equal(bg_json_obj_edit(&two,
					  (struct bg_str){ bare.p, bare.len },
					  extra, 2),
			 0);
	u.extra = extra;
	u.n_extra = 2;
	assert_int_equal(bg_record_update(&one, bg_str_c(rec), &u), 0);
	assert_string_equal(one.p, two.p);
	assert_non_null(
		strstr(one.p, "\"agent_config_audit\":{\"version\":3}"));
	u.n_extra = 5; /* more than 4 */
	bg_buf_reset(&one);
	assert_int_equal(bg_record_update(&one, bg_str_c(rec), &u), -EINVAL);
	bg_buf_free(&one);
	bg_buf_free(&bare);
	bg_buf_free(&two);
}

static void test_update_rejects_malformed_records(void **state)
{
	const char *bad[] = { "", "[]", "{\"a\": }", "{\"a\": 1} {", "nul" };
	struct bg_record_update u = { .status = BG_STR_LIT("RUNNING"),
				      .now_ms = 1 };
	struct bg_buf out = { 0 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_record_update(&out, bg_str_c(bad[i]), &u),
				 -EINVAL);
		assert_int_equal(out.len, 0);
	}
	struct bg_record_errors e = { .error_code = BG_STR_LIT("{oops") };
	u.errors = &e;
	assert_int_equal(bg_record_update(&out, bg_str_c("{}"), &u), -EINVAL);
	assert_int_equal(out.len, 0);
	bg_buf_free(&out);
}

/* ---- status strings --------------------------------------------------- */

static void test_status_matching_an_agent_state_is_canonicalised(void **state)
{
	assert_true(bg_str_eq(bg_status_normalize(bg_str_c("completed")),
			      "COMPLETED"));
	assert_true(bg_str_eq(bg_status_normalize(bg_str_c("Waiting_User")),
			      "WAITING_USER"));
	assert_true(
		bg_str_eq(bg_status_normalize(bg_str_c("FAILED")), "FAILED"));
}

static void test_other_statuses_are_kept_and_empty_means_completed(void **state)
{
	assert_true(
		bg_str_eq(bg_status_normalize(bg_str_c("waiting")), "waiting"));
	assert_true(bg_str_eq(
		bg_status_normalize(bg_str_c("QUEUED: waiting_for_group")),
		"QUEUED: waiting_for_group"));
	assert_true(bg_str_eq(bg_status_normalize(bg_str_c("completedx")),
			      "completedx"));
	assert_true(
		bg_str_eq(bg_status_normalize(BG_STR_LIT("")), "COMPLETED"));
}

static void test_only_exact_terminal_statuses_are_terminal(void **state)
{
	assert_true(bg_status_is_terminal(bg_str_c("COMPLETED")));
	assert_true(bg_status_is_terminal(bg_str_c("FAILED")));
	assert_true(bg_status_is_terminal(bg_str_c("CANCELLED")));
	assert_false(bg_status_is_terminal(bg_str_c("completed")));
	assert_false(bg_status_is_terminal(bg_str_c("CANCELLING")));
	assert_false(bg_status_is_terminal(BG_STR_LIT("")));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_client_record_through_its_lifecycle_matches_wire_6_2),
		cmocka_unit_test(test_queued_record_has_the_sender_fields),
		cmocka_unit_test(test_group_child_record_has_no_route_members),
		cmocka_unit_test(
			test_worker_created_record_is_running_without_source_agent),
		cmocka_unit_test(test_read_extracts_the_worker_fields),
		cmocka_unit_test(test_read_missing_and_null_members_are_empty),
		cmocka_unit_test(test_read_decodes_escaped_strings),
		cmocka_unit_test(
			test_update_snapshot_is_the_snapshot_of_the_update),
		cmocka_unit_test(
			test_update_snapshot_of_a_malformed_record_is_untouched),
		cmocka_unit_test(
			test_read_takes_the_last_route_members_decoded),
		cmocka_unit_test(
			test_read_route_members_not_strings_read_empty),
		cmocka_unit_test(test_read_rejects_malformed_records),
		cmocka_unit_test(test_read_rejects_members_of_the_wrong_type),
		cmocka_unit_test(test_read_rejects_nesting_beyond_the_limit),
		cmocka_unit_test(
			test_read_handles_embedded_nul_without_overrun),
		cmocka_unit_test(
			test_update_keeps_unknown_members_byte_for_byte),
		cmocka_unit_test(test_update_appends_the_timeline),
		cmocka_unit_test(test_update_creates_a_missing_timeline),
		cmocka_unit_test(test_update_sets_started_at_once),
		cmocka_unit_test(
			test_update_sets_finished_at_only_for_terminal_statuses),
		cmocka_unit_test(test_update_sets_worker_only_when_given),
		cmocka_unit_test(test_update_marks_cancel_requested),
		cmocka_unit_test(
			test_a_cancel_through_its_lifecycle_keeps_the_clients_members),
		cmocka_unit_test(
			test_a_finish_can_write_the_cancel_request_itself),
		cmocka_unit_test(
			test_update_writes_completion_fields_from_metadata),
		cmocka_unit_test(
			test_error_message_falls_back_to_reply_data_error),
		cmocka_unit_test(test_update_writes_duplicate_of_when_given),
		cmocka_unit_test(
			test_update_applies_extra_edits_as_a_second_edit_would),
		cmocka_unit_test(test_update_rejects_malformed_records),
		cmocka_unit_test(
			test_status_matching_an_agent_state_is_canonicalised),
		cmocka_unit_test(
			test_other_statuses_are_kept_and_empty_means_completed),
		cmocka_unit_test(
			test_only_exact_terminal_statuses_are_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
