/* tests/unit/test_client_triggers.c - specification of the pure parts of
 * client/triggers.c: how `bygate triggers` shows durations, times relative
 * to now, a trigger's row in the table and its --json object. What is
 * read from Redis is untrusted: control characters never reach the
 * terminal. */
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

#define NOW 1718000000000LL

static const char *duration(long long ms)
{
	static char buf[64];
	bg_client_duration_text(buf, sizeof buf, ms);
	return buf;
}

static const char *relative(long long ms)
{
	static char buf[64];
	bg_client_relative_text(buf, sizeof buf, ms, NOW);
	return buf;
}

/* A trigger whose strings are all "" but those set afterwards. */
static struct bg_client_trigger blank(char *name)
{
	static char empty[] = "";
	return (struct bg_client_trigger){ .name = name,
					   .kind = empty,
					   .agent_type = empty,
					   .cron = empty,
					   .path = empty,
					   .missed = empty,
					   .session = empty,
					   .def_by = empty,
					   .paused_by = empty,
					   .last_message_id = empty,
					   .last_execution_id = empty,
					   .last_session_id = empty,
					   .last_outcome = empty };
}

static char *table(const struct bg_client_trigger *v, size_t n)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_client_triggers_table(&out, v, n, NOW), 0);
	char *s = strndup(out.p, out.len);
	bg_buf_free(&out);
	return s;
}

static void test_durations_show_their_units_largest_first(void **st)
{
	(void)st;
	assert_string_equal(duration(250), "250ms");
	assert_string_equal(duration(30000), "30s");
	assert_string_equal(duration(90000), "1m30s");
	assert_string_equal(duration(3600000), "1h");
	assert_string_equal(duration(86400000 + 1500), "1d1s500ms");
	assert_string_equal(duration(0), "0s");
}

static void test_times_are_relative_to_now_in_two_units(void **st)
{
	(void)st;
	assert_string_equal(relative(NOW + 42000), "in 42s");
	assert_string_equal(relative(NOW + 252000), "in 4m12s");
	assert_string_equal(relative(NOW - 3725000), "1h2m ago");
	assert_string_equal(relative(NOW - 2 * 86400000LL - 5000), "2d ago");
	assert_string_equal(relative(NOW - 86400000LL - 3 * 3600000),
			    "1d3h ago");
	assert_string_equal(relative(NOW + 400), "now");
	assert_string_equal(relative(0), "-");
}

static void test_a_row_per_trigger_under_the_header(void **st)
{
	(void)st;
	struct bg_client_trigger v[2] = { blank("github"), blank("nightly") };
	v[0].kind = "webhook";
	v[0].agent_type = "triage";
	v[0].path = "/hooks/github";
	v[0].max_running = 4;
	v[0].active = 2;
	v[0].paused = true;
	v[1].kind = "timer";
	v[1].agent_type = "reports";
	v[1].every_ms = 30000;
	v[1].next_ms = NOW + 12000;
	v[1].last_fire_ms = NOW - 18000;
	v[1].last_outcome = "fired";
	v[1].fires = 12;
	v[1].skipped_running = 2;
	v[1].skipped_paused = 1;
	v[1].missed_fires = 1;
	char *s = table(v, 2);
	assert_string_equal(
		s,
		"NAME     KIND     AGENT_TYPE  SCHEDULE            NEXT        "
		"LAST_FIRE   LAST_OUTCOME     ACTIVE  PAUSED  FIRES  SKIPPED\n"
		"github   webhook  triage      POST /hooks/github  -           "
		"-           -                2/4     yes         0        0\n"
		"nightly  timer    reports     every 30s           in 12s      "
		"18s ago     fired            0       no         12        4\n");
	free(s);
}

static void test_a_cron_schedule_is_shown_as_written(void **st)
{
	(void)st;
	struct bg_client_trigger t = blank("report");
	t.cron = "0 6 * * mon-fri";
	t.every_ms = 5; /* cron wins */
	json_t *o = bg_client_trigger_json(&t);
	assert_string_equal(bg_client_jstr(o, "schedule"), "0 6 * * mon-fri");
	assert_string_equal(bg_client_jstr(o, "cron"), "0 6 * * mon-fri");
	json_decref(o);
}

static void test_text_from_redis_cannot_drive_the_terminal(void **st)
{
	(void)st;
	struct bg_client_trigger t = blank("x");
	t.last_outcome = "fired\x1b[2J";
	t.agent_type = "a\nb";
	char *s = table(&t, 1);
	assert_null(strchr(s, '\x1b'));
	assert_non_null(strstr(s, "fired?[2J"));
	assert_non_null(strstr(s, "a?b"));
	free(s);
}

static void test_no_trigger_is_said_in_words(void **st)
{
	(void)st;
	char *s = table(NULL, 0);
	assert_non_null(strstr(s, "\n(no trigger published"));
	free(s);
}

static void test_json_has_nulls_for_what_is_unset(void **st)
{
	(void)st;
	struct bg_client_trigger t = blank("nightly");
	t.kind = "timer";
	t.every_ms = 30000;
	t.next_ms = NOW;
	t.duplicates = 3;
	t.active = 1;
	json_t *o = bg_client_trigger_json(&t);
	char *s = json_dumps(o, JSON_COMPACT);
	assert_string_equal(
		s,
		"{\"name\":\"nightly\",\"kind\":\"timer\",\"agent_type\":\"\","
		"\"schedule\":\"every 30s\",\"every_ms\":30000,\"cron\":null,"
		"\"path\":null,\"max_running\":0,\"missed\":\"\","
		"\"session\":\"\",\"def_by\":\"\",\"def_at_ms\":null,"
		"\"paused\":false,\"paused_at_ms\":null,\"paused_by\":\"\","
		"\"next_ms\":1718000000000,\"claimed_ms\":null,"
		"\"last_fire_ms\":null,\"last_message_id\":\"\","
		"\"last_execution_id\":\"\",\"last_session_id\":\"\","
		"\"last_outcome\":\"\",\"counts\":{\"fires\":0,"
		"\"skipped_running\":0,\"skipped_paused\":0,\"missed\":0,"
		"\"duplicates\":3},\"fire_requests\":0,\"fire_done\":0,"
		"\"active\":1}");
	free(s);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_show_their_units_largest_first),
		cmocka_unit_test(test_times_are_relative_to_now_in_two_units),
		cmocka_unit_test(test_a_row_per_trigger_under_the_header),
		cmocka_unit_test(test_a_cron_schedule_is_shown_as_written),
		cmocka_unit_test(
			test_text_from_redis_cannot_drive_the_terminal),
		cmocka_unit_test(test_no_trigger_is_said_in_words),
		cmocka_unit_test(test_json_has_nulls_for_what_is_unset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
