/* tests/unit/test_audit.c - specification of wire/audit: the
 * agent_config_audit projection of WIRE 8.2 built from what bygate knows
 * of a handler, and its splice into an execution record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wire/audit.h"

static const struct bg_audit_handler plugin = {
	.agent_type = BG_STR_LIT("planner"),
	.kind = BG_STR_LIT("plugin"),
	.plugin = BG_STR_LIT("/usr/lib/bygate/planner.so"),
	.generation = 3,
};

static json_t *built(const struct bg_audit_handler *h)
{
	struct bg_buf b = { 0 };
	assert_int_equal(bg_audit_build(&b, h), 0);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	bg_buf_free(&b);
	return j;
}

static void test_the_audit_has_the_reference_keys(void **state)
{
	(void)state;
	json_t *j = built(&plugin);
	const char *keys[] = {
		"version",	"target_agent_type", "target_agent_registered",
		"config_count", "agent_ids",	     "target_agent_config",
		"configs",	"snapshot_hash"
	};
	assert_int_equal(json_object_size(j), 8);
	for (size_t i = 0; i < 8; i++)
		assert_non_null(json_object_get(j, keys[i]));
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(j, "agent_ids"), 0)),
			    "planner");
	assert_true(
		json_equal(json_object_get(j, "target_agent_config"),
			   json_array_get(json_object_get(j, "configs"), 0)));
	json_decref(j);
}

static void
test_the_config_names_the_plugin_and_the_hash_follows_it(void **state)
{
	(void)state;
	json_t *a = built(&plugin);
	json_t *c = json_object_get(a, "target_agent_config");
	assert_string_equal(json_string_value(json_object_get(c, "plugin")),
			    "/usr/lib/bygate/planner.so");
	assert_null(json_object_get(c, "command"));
	const char *h1 = json_string_value(json_object_get(a, "snapshot_hash"));
	assert_int_equal(strncmp(h1, "sha256:", 7), 0);
	assert_int_equal(strlen(h1), 7 + 64);
	struct bg_audit_handler other = plugin;
	other.generation = 4;
	json_t *b = built(&other);
	assert_string_not_equal(
		h1, json_string_value(json_object_get(b, "snapshot_hash")));
	json_decref(a);
	json_decref(b);
}

static void test_an_exec_handler_names_its_command_and_mode(void **state)
{
	(void)state;
	struct bg_audit_handler e = {
		.agent_type = BG_STR_LIT("py"),
		.kind = BG_STR_LIT("exec"),
		.command = BG_STR_LIT("python3 agent.py"),
		.mode = BG_STR_LIT("persistent"),
	};
	json_t *j = built(&e);
	json_t *c = json_object_get(j, "target_agent_config");
	assert_string_equal(json_string_value(json_object_get(c, "command")),
			    "python3 agent.py");
	assert_string_equal(json_string_value(json_object_get(c, "mode")),
			    "persistent");
	assert_string_equal(json_string_value(json_object_get(c, "handler")),
			    "exec");
	json_decref(j);
}

static void
test_the_splice_sets_version_and_audit_keeping_the_rest(void **state)
{
	(void)state;
	struct bg_buf b = { 0 };
	const char *rec = "{\"execution_id\":\"exec-1\",\"status\":\"RUNNING\","
			  "\"agent_configs_version\":0}";
	struct bg_buf a = { 0 };
	assert_int_equal(bg_audit_build(&a, &plugin), 0);
	assert_int_equal(bg_audit_splice(&b, bg_str_c(rec),
					 (struct bg_str){ a.p, a.len }, 3),
			 0);
	bg_buf_free(&a);
	json_t *j = json_loadb(b.p, b.len, 0, NULL);
	assert_non_null(j);
	assert_int_equal(
		json_integer_value(json_object_get(j, "agent_configs_version")),
		3);
	assert_true(json_is_object(json_object_get(j, "agent_config_audit")));
	assert_string_equal(
		json_string_value(json_object_get(j, "execution_id")),
		"exec-1");
	json_decref(j);
	bg_buf_free(&b);
}

static void test_no_agent_type_is_refused(void **state)
{
	(void)state;
	struct bg_buf b = { 0 };
	struct bg_audit_handler h = { .kind = BG_STR_LIT("plugin") };
	assert_int_equal(bg_audit_build(&b, &h), -EINVAL);
	assert_int_equal(b.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_audit_has_the_reference_keys),
		cmocka_unit_test(
			test_the_config_names_the_plugin_and_the_hash_follows_it),
		cmocka_unit_test(
			test_an_exec_handler_names_its_command_and_mode),
		cmocka_unit_test(
			test_the_splice_sets_version_and_audit_keeping_the_rest),
		cmocka_unit_test(test_no_agent_type_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
