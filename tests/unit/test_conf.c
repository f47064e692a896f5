/* tests/unit/test_conf.c - the configuration loader as an operator meets it:
 * defaults, a full file, environment overrides, file:line errors, paths,
 * options as JSON, -T round trip, the template and etc/bygate.conf.
 * `test_conf --template` / `--markdown` print what etc/ and docs/ are made of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "conf/table.h"

static char tmpdir[64];

static const char *const env_vars[] = {
	"REDIS_HOST",
	"REDIS_PORT",
	"REDIS_DATABASE",
	"REDIS_DB",
	"REDIS_USERNAME",
	"REDIS_PASSWORD",
	"REDIS_KEY_SCHEMA_VERSION",
	"REDIS_CLUSTER_HOST",
	"REDIS_MODE",
	"REDIS_CLUSTER_NODES",
	"BYAI_WORKER_CONCURRENCY",
	"BYAI_WORKER_FETCH_COUNT",
	"BYAI_WORKER_HEALTH_PORT",
	"BYGATE_CONFIG",
};

#define AGENTS "agent_types = ( { name = \"echo\"; plugin = \"echo.so\"; } );\n"

static int clear_env(void **state)
{
	for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
		unsetenv(env_vars[i]);
	return 0;
}

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/bygate-test-conf-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write text to <tmpdir>/<name>; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
	static char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void load_ok(const char *text, struct bg_config *cfg)
{
	char err[512] = "";
	int rc = bg_config_load(write_file("t.conf", text), cfg, err,
				sizeof err);
	if (rc)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
}

/* Loading text fails with a message containing want (and "file:line:" when
 * line > 0). */
static void load_fails(const char *text, int line, const char *want)
{
	struct bg_config cfg;
	char err[512] = "", prefix[PATH_MAX + 32];
	const char *path = write_file("t.conf", text);
	assert_int_equal(bg_config_load(path, &cfg, err, sizeof err), -1);
	if (strstr(err, want) == NULL)
		print_error("error \"%s\" lacks \"%s\"\n", err, want);
	assert_non_null(strstr(err, want));
	if (line > 0) {
		snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
		if (strncmp(err, prefix, strlen(prefix)))
			print_error("error \"%s\" lacks \"%s\"\n", err, prefix);
		assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
	}
	assert_null(cfg.agent_types);
	assert_null(cfg.redis_host);
}

static void test_defaults_fill_every_key_the_file_omits(void **state)
{
	struct bg_config cfg;
	load_ok(AGENTS, &cfg);
	assert_string_equal(cfg.redis_host, "127.0.0.1");
	assert_int_equal(cfg.redis_port, 6379);
	assert_int_equal(cfg.redis_db, 0);
	assert_string_equal(cfg.redis_password, "");
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V1);
	assert_false(cfg.redis_cluster);
	assert_string_equal(cfg.consumer_group, "agent_engines");
	assert_int_equal(cfg.fetch_count, 10);
	assert_int_equal(cfg.block_ms, 2000);
	assert_int_equal(cfg.lease_ttl_s, 30);
	assert_int_equal(cfg.heartbeat_interval_ms, 5000);
	assert_int_equal(cfg.reclaim_min_idle_ms, 60000);
	assert_int_equal(cfg.max_entry_age_s, 604800);
	assert_int_equal(cfg.max_deliveries, 10);
	assert_int_equal(cfg.drain_timeout_ms, 30000);
	assert_int_equal(cfg.slow_task_ms, 10000);
	assert_int_equal(cfg.pool_size, 4);
	assert_int_equal(cfg.max_tasks_per_child, 10000);
	assert_int_equal(cfg.ring_bytes, 1048576);
	assert_int_equal(cfg.max_message_bytes, 16777216);
	assert_int_equal(cfg.max_events_per_task, 100000);
	assert_int_equal(cfg.max_event_bytes_per_task, 67108864);
	assert_int_equal(cfg.respawn_backoff_max_ms, 30000);
	assert_string_equal(cfg.child_path, "");
	assert_true(cfg.sandbox);
	assert_string_equal(cfg.state_dir, "/var/lib/bygate");
	assert_string_equal(cfg.workspace_dir, "/var/lib/bygate/workspaces");
	assert_int_equal(cfg.log_level, BG_LOG_INFO);
	assert_int_equal(cfg.log_format, BG_LOG_TEXT);
	assert_string_equal(cfg.log_file, "");
	assert_int_equal(cfg.http_port, 0);
	assert_string_equal(cfg.http_bind, "127.0.0.1");
	assert_int_equal(cfg.n_agent_types, 1);
	assert_int_equal(cfg.agent_types[0].handler, BG_HANDLER_PLUGIN);
	assert_int_equal(cfg.agent_types[0].max_attempts, 1);
	assert_int_equal(cfg.agent_types[0].timeout_ms, 600000);
	assert_string_equal(cfg.agent_types[0].options_json, "{}");
	bg_config_free(&cfg);
}

static void test_default_worker_id_is_bygate_dash_hostname(void **state)
{
	struct bg_config cfg;
	char host[256], want[300];
	assert_int_equal(gethostname(host, sizeof host), 0);
	snprintf(want, sizeof want, "bygate-%s", host);
	load_ok(AGENTS, &cfg);
	assert_string_equal(cfg.worker_id, want);
	bg_config_free(&cfg);
}

#define FULL_GLOBALS                                                                    \
	"redis = { host = \"redis.example\"; port = 6380; db = 3;\n"                    \
	"  username = \"u\"; password = \"p\"; connect_timeout_ms = 100;\n"             \
	"  command_timeout_ms = 200; reconnect_max_ms = 300; key_schema = \"v2\"; };\n" \
	"worker = { id = \"w-1\"; consumer_group = \"g\"; fetch_count = 0;\n"           \
	"  block_ms = 500; lease_ttl_s = 10; heartbeat_interval_ms = 1000;\n"           \
	"  reclaim_min_idle_ms = 20000; max_entry_age_s = 3600L;\n"                     \
	"  max_deliveries = 3; drain_timeout_ms = 0; slow_task_ms = 0; };\n"            \
	"pool = { size = 2; max_tasks_per_child = 0; ring_bytes = 65536;\n"             \
	"  max_message_bytes = 65536; max_events_per_task = 5;\n"                       \
	"  max_event_bytes_per_task = 131072; respawn_backoff_max_ms = 100;\n"          \
	"  child_path = \"/opt/bygate-child\"; sandbox = false; };\n"                   \
	"paths = { state_dir = \"/srv/state\"; workspace_dir = \"/srv/ws\"; };\n"       \
	"log = { level = \"debug\"; format = \"json\"; file = \"/var/log/b.log\"; };\n" \
	"http = { port = 9100; bind = \"0.0.0.0\"; };\n"

static const char full_file[] = FULL_GLOBALS
	"agent_types = (\n"
	"  { name = \"echo\"; handler = \"plugin\"; plugin = \"/p/echo.so\";\n"
	"    max_attempts = 3; timeout_ms = 1500; },\n"
	"  { name = \"sleep\"; plugin = \"/p/sleep.so\";\n"
	"    options = { default_ms = 20; }; }\n"
	");\n";

static void test_full_file_sets_every_key(void **state)
{
	struct bg_config cfg;
	load_ok(full_file, &cfg);
	assert_string_equal(cfg.redis_host, "redis.example");
	assert_int_equal(cfg.redis_port, 6380);
	assert_int_equal(cfg.redis_db, 3);
	assert_string_equal(cfg.redis_username, "u");
	assert_string_equal(cfg.redis_password, "p");
	assert_int_equal(cfg.redis_connect_timeout_ms, 100);
	assert_int_equal(cfg.redis_command_timeout_ms, 200);
	assert_int_equal(cfg.redis_reconnect_max_ms, 300);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V2);
	assert_string_equal(cfg.worker_id, "w-1");
	assert_string_equal(cfg.consumer_group, "g");
	assert_int_equal(cfg.fetch_count, 0);
	assert_int_equal(cfg.block_ms, 500);
	assert_int_equal(cfg.lease_ttl_s, 10);
	assert_int_equal(cfg.heartbeat_interval_ms, 1000);
	assert_int_equal(cfg.reclaim_min_idle_ms, 20000);
	assert_int_equal(cfg.max_entry_age_s, 3600);
	assert_int_equal(cfg.max_deliveries, 3);
	assert_int_equal(cfg.drain_timeout_ms, 0);
	assert_int_equal(cfg.slow_task_ms, 0);
	assert_int_equal(cfg.pool_size, 2);
	assert_int_equal(cfg.max_tasks_per_child, 0);
	assert_int_equal(cfg.ring_bytes, 65536);
	assert_int_equal(cfg.max_message_bytes, 65536);
	assert_int_equal(cfg.max_events_per_task, 5);
	assert_int_equal(cfg.max_event_bytes_per_task, 131072);
	assert_int_equal(cfg.respawn_backoff_max_ms, 100);
	assert_string_equal(cfg.child_path, "/opt/bygate-child");
	assert_false(cfg.sandbox);
	assert_string_equal(cfg.state_dir, "/srv/state");
	assert_string_equal(cfg.workspace_dir, "/srv/ws");
	assert_int_equal(cfg.log_level, BG_LOG_DEBUG);
	assert_int_equal(cfg.log_format, BG_LOG_JSON);
	assert_string_equal(cfg.log_file, "/var/log/b.log");
	assert_int_equal(cfg.http_port, 9100);
	assert_string_equal(cfg.http_bind, "0.0.0.0");
	assert_int_equal(cfg.n_agent_types, 2);
	assert_int_equal(cfg.agent_types[0].max_attempts, 3);
	assert_int_equal(cfg.agent_types[0].timeout_ms, 1500);
	assert_string_equal(cfg.agent_types[1].plugin, "/p/sleep.so");
	const struct bg_agent_type_conf *at =
		bg_config_agent_type(&cfg, "sleep");
	assert_ptr_equal(at, &cfg.agent_types[1]);
	assert_null(bg_config_agent_type(&cfg, "nope"));
	bg_config_free(&cfg);
}

/* ---- environment overrides (WIRE 1.1) --------------------------------- */

static void load_with_env(const char *var, const char *value,
			  struct bg_config *cfg)
{
	setenv(var, value, 1);
	load_ok("redis = { host = \"file-host\"; port = 7000; db = 1;"
		" username = \"fu\"; password = \"fp\"; };\n"
		"pool = { size = 8; };\n" AGENTS,
		cfg);
}

static void test_env_redis_host_overrides_the_file(void **state)
{
	struct bg_config cfg;
	load_with_env("REDIS_HOST", "env-host", &cfg);
	assert_string_equal(cfg.redis_host, "env-host");
	assert_int_equal(cfg.redis_port, 7000);
	bg_config_free(&cfg);
}

static void test_env_redis_port_overrides_the_file(void **state)
{
	struct bg_config cfg;
	load_with_env("REDIS_PORT", "7001", &cfg);
	assert_int_equal(cfg.redis_port, 7001);
	bg_config_free(&cfg);
}

static void test_env_redis_database_overrides_the_file(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_DB", "9", 1);
	load_with_env("REDIS_DATABASE", "5", &cfg);
	assert_int_equal(cfg.redis_db, 5);
	bg_config_free(&cfg);
}

static void test_env_redis_db_is_the_fallback_of_redis_database(void **state)
{
	struct bg_config cfg;
	load_with_env("REDIS_DB", "9", &cfg);
	assert_int_equal(cfg.redis_db, 9);
	bg_config_free(&cfg);
}

static void test_env_redis_username_and_password_override(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_USERNAME", "eu", 1);
	load_with_env("REDIS_PASSWORD", "ep", &cfg);
	assert_string_equal(cfg.redis_username, "eu");
	assert_string_equal(cfg.redis_password, "ep");
	bg_config_free(&cfg);
}

static void test_env_worker_concurrency_sets_pool_size(void **state)
{
	struct bg_config cfg;
	load_with_env("BYAI_WORKER_CONCURRENCY", "16", &cfg);
	assert_int_equal(cfg.pool_size, 16);
	bg_config_free(&cfg);
}

static void test_env_worker_fetch_count_sets_fetch_count(void **state)
{
	struct bg_config cfg;
	load_with_env("BYAI_WORKER_FETCH_COUNT", "25", &cfg);
	assert_int_equal(cfg.fetch_count, 25);
	bg_config_free(&cfg);
}

static void test_env_worker_health_port_sets_http_port(void **state)
{
	struct bg_config cfg;
	load_with_env("BYAI_WORKER_HEALTH_PORT", "9200", &cfg);
	assert_int_equal(cfg.http_port, 9200);
	bg_config_free(&cfg);
}

static void test_env_schema_version_beats_the_file(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_KEY_SCHEMA_VERSION", "v1", 1);
	setenv("REDIS_CLUSTER_HOST", "10.0.0.1:6379", 1);
	load_ok("redis = { key_schema = \"v2\"; };\n" AGENTS, &cfg);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V1);
	bg_config_free(&cfg);
}

static void test_file_schema_applies_when_the_env_is_silent(void **state)
{
	struct bg_config cfg;
	load_ok("redis = { key_schema = \"v2\"; };\n" AGENTS, &cfg);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V2);
	assert_false(cfg.redis_cluster);
	bg_config_free(&cfg);
}

static void test_env_cluster_host_selects_v2_and_cluster(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_CLUSTER_HOST", "10.0.0.1:6379", 1);
	load_ok("redis = { key_schema = \"v1\"; };\n" AGENTS, &cfg);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V2);
	assert_true(cfg.redis_cluster);
	bg_config_free(&cfg);
}

static void test_env_empty_cluster_host_changes_nothing(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_CLUSTER_HOST", "", 1);
	load_ok(AGENTS, &cfg);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V1);
	assert_false(cfg.redis_cluster);
	bg_config_free(&cfg);
}

static void test_env_redis_mode_cluster_sets_cluster_only(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_MODE", "cluster", 1);
	load_ok(AGENTS, &cfg);
	assert_true(cfg.redis_cluster);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V1);
	bg_config_free(&cfg);
}

static void test_env_redis_mode_standalone_keeps_v2_standalone(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_MODE", "standalone", 1);
	setenv("REDIS_CLUSTER_HOST", "10.0.0.1:6379", 1);
	load_ok(AGENTS, &cfg);
	assert_false(cfg.redis_cluster);
	assert_int_equal(cfg.key_schema, BG_SCHEMA_V2);
	bg_config_free(&cfg);
}

static void test_file_redis_mode_and_seeds(void **state)
{
	struct bg_config cfg;
	load_ok("redis = { mode = \"cluster\"; key_schema = \"v2\"; "
		"cluster_nodes = \"10.0.0.1:7000,10.0.0.2:7000\"; };\n" AGENTS,
		&cfg);
	assert_true(cfg.redis_cluster);
	assert_string_equal(cfg.redis_cluster_nodes,
			    "10.0.0.1:7000,10.0.0.2:7000");
	bg_config_free(&cfg);
	load_ok(AGENTS, &cfg);
	assert_false(cfg.redis_cluster);
	assert_string_equal(cfg.redis_cluster_nodes, "");
	bg_config_free(&cfg);
	load_fails("redis = { mode = \"sentinel\"; };\n" AGENTS, 0,
		   "redis.mode");
}

static void test_env_redis_mode_beats_the_file(void **state)
{
	struct bg_config cfg;
	setenv("REDIS_MODE", "standalone", 1);
	load_ok("redis = { mode = \"cluster\"; };\n" AGENTS, &cfg);
	assert_false(cfg.redis_cluster);
	bg_config_free(&cfg);
}

static void test_env_cluster_seeds(void **state)
{
	struct bg_config cfg;
	/* REDIS_CLUSTER_HOST is the seed when no node list is given */
	setenv("REDIS_CLUSTER_HOST", "10.0.0.9", 1);
	load_ok(AGENTS, &cfg);
	assert_string_equal(cfg.redis_cluster_nodes, "10.0.0.9");
	bg_config_free(&cfg);
	/* REDIS_CLUSTER_NODES wins over the file and the host */
	setenv("REDIS_CLUSTER_NODES", "h1:7001,h2:7002", 1);
	load_ok("redis = { cluster_nodes = \"f:1\"; };\n" AGENTS, &cfg);
	assert_string_equal(cfg.redis_cluster_nodes, "h1:7001,h2:7002");
	bg_config_free(&cfg);
}

static void test_env_bad_schema_version_is_an_error(void **state)
{
	setenv("REDIS_KEY_SCHEMA_VERSION", "v3", 1);
	load_fails(AGENTS, 0, "REDIS_KEY_SCHEMA_VERSION");
}

static void test_env_bad_redis_mode_is_an_error(void **state)
{
	setenv("REDIS_MODE", "sentinel", 1);
	load_fails(AGENTS, 0, "REDIS_MODE");
}

static void test_env_malformed_integer_names_the_variable(void **state)
{
	setenv("REDIS_PORT", "63x79", 1);
	load_fails(AGENTS, 0,
		   "environment variable REDIS_PORT: \"63x79\" is "
		   "not an integer");
}

static void test_env_out_of_range_names_the_variable(void **state)
{
	setenv("BYAI_WORKER_CONCURRENCY", "0", 1);
	load_fails(AGENTS, 0,
		   "BYAI_WORKER_CONCURRENCY: 0 is out of range "
		   "(allowed 1..1024)");
}

static void test_env_empty_redis_host_is_an_error(void **state)
{
	setenv("REDIS_HOST", "", 1);
	load_fails(AGENTS, 0, "REDIS_HOST: must not be empty");
}

static void test_load_without_a_file_uses_defaults_and_env(void **state)
{
	struct bg_config cfg;
	char err[256];
	setenv("REDIS_PORT", "7002", 1);
	assert_int_equal(bg_config_load(NULL, &cfg, err, sizeof err), 0);
	assert_int_equal(cfg.redis_port, 7002);
	assert_int_equal(cfg.n_agent_types, 0);
	assert_string_equal(cfg.path, "");
	bg_config_free(&cfg);
}

/* ---- errors: file:line ------------------------------------------------ */

static void test_wrong_type_reports_file_and_line(void **state)
{
	load_fails(
		"redis = {\n  host = \"h\";\n  port = \"6379\";\n};\n" AGENTS,
		3, "redis.port: expected an integer");
}

static void test_float_for_an_integer_key_is_rejected(void **state)
{
	load_fails("worker = { block_ms = 1.5; };\n" AGENTS, 1,
		   "worker.block_ms: expected an integer");
}

static void test_number_for_a_string_key_is_rejected(void **state)
{
	load_fails("\n\nredis = { host = 1; };\n" AGENTS, 3,
		   "redis.host: expected a string");
}

static void test_string_for_a_bool_key_is_rejected(void **state)
{
	load_fails("pool = { sandbox = \"no\"; };\n" AGENTS, 1,
		   "pool.sandbox: expected true or false");
}

static void test_out_of_range_names_key_and_allowed_range(void **state)
{
	load_fails("redis = { port = 70000; };\n" AGENTS, 1,
		   "redis.port: 70000 is out of range (allowed 1..65535)");
}

static void test_ring_bytes_must_be_a_power_of_two(void **state)
{
	load_fails("pool = { ring_bytes = 100000; };\n" AGENTS, 1,
		   "pool.ring_bytes: 100000 is not a power of two");
}

static void test_bad_enum_value_lists_the_choices(void **state)
{
	load_fails("log = { level = \"verbose\"; };\n" AGENTS, 1,
		   "log.level: \"verbose\" is not one of \"debug\", \"info\", "
		   "\"warn\", \"error\"");
}

static void test_bad_key_schema_is_rejected(void **state)
{
	load_fails("redis = { key_schema = \"v3\"; };\n" AGENTS, 1,
		   "redis.key_schema: \"v3\" is not one of");
}

static void test_syntax_error_reports_file_and_line(void **state)
{
	load_fails("redis = {\n  port = ;\n};\n", 2, "syntax error");
}

static void test_unknown_key_is_rejected_with_its_line(void **state)
{
	load_fails("redis = {\n  hots = \"x\";\n};\n" AGENTS, 2,
		   "redis.hots: unknown key (valid: host, port,");
}

static void test_unknown_group_is_rejected(void **state)
{
	load_fails(AGENTS "rediss = { host = \"x\"; };\n", 2,
		   "rediss: unknown key");
}

static void test_unknown_agent_type_key_is_rejected(void **state)
{
	load_fails("agent_types = ( { name = \"a\"; plugin = \"a.so\";\n"
		   "  timeout = 5; } );\n",
		   2, "agent_types.timeout: unknown key");
}

static void test_group_given_as_scalar_is_rejected(void **state)
{
	load_fails("redis = 5;\n" AGENTS, 1, "redis: expected a group");
}

static void test_missing_file_is_an_error(void **state)
{
	struct bg_config cfg;
	char err[512] = "";
	assert_int_equal(bg_config_load("/nonexistent/bygate.conf", &cfg, err,
					sizeof err),
			 -1);
	assert_non_null(strstr(err, "/nonexistent/bygate.conf"));
}

/* ---- cross-key and agent type rules ----------------------------------- */

static void test_heartbeat_must_be_below_lease_ttl(void **state)
{
	load_fails("worker = { lease_ttl_s = 5; heartbeat_interval_ms = 5000;"
		   " reclaim_min_idle_ms = 10000; };\n" AGENTS,
		   0,
		   "worker.heartbeat_interval_ms (5000) must be below "
		   "worker.lease_ttl_s");
}

static void test_reclaim_idle_must_be_twice_the_lease_ttl(void **state)
{
	load_fails("worker = { lease_ttl_s = 40; };\n" AGENTS, 0,
		   "worker.reclaim_min_idle_ms (60000) must be at least 2 x "
		   "worker.lease_ttl_s (80000 ms)");
}

static void test_at_least_one_agent_type_is_required(void **state)
{
	load_fails("redis = { port = 6379; };\n", 0, "at least one agent type");
	load_fails("agent_types = ( );\n", 0, "at least one agent type");
}

static void test_agent_type_names_must_be_unique(void **state)
{
	load_fails("agent_types = ( { name = \"a\"; plugin = \"a.so\"; },\n"
		   "  { name = \"a\"; plugin = \"b.so\"; } );\n",
		   2, "duplicate agent type name");
}

static void test_agent_type_name_is_required(void **state)
{
	load_fails("agent_types = ( { plugin = \"a.so\"; } );\n", 1,
		   "agent_types[0]: missing name");
}

static void test_unsafe_agent_type_names_are_rejected(void **state)
{
	static const char *const bad[][2] = {
		{ "a/b", "contains '/'" },     { "a b", "contains '/'" },
		{ "a\\tb", "contains '/'" },   { "{a}", "contains '/'" },
		{ "..", "not a usable name" }, { "", "must not be empty" },
	};
	char text[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(
			text, sizeof text,
			"agent_types = ( { name = \"%s\"; plugin = \"a.so\"; } );\n",
			bad[i][0]);
		load_fails(text, 1, bad[i][1]);
	}
	char longname[200];
	memset(longname, 'x', 129);
	longname[129] = '\0';
	snprintf(text, sizeof text,
		 "agent_types = ( { name = \"%s\"; plugin = \"a.so\"; } );\n",
		 longname);
	load_fails(text, 1, "must be 1..128 bytes long");
}

static void test_unsafe_worker_id_is_rejected(void **state)
{
	load_fails("worker = { id = \"a b\"; };\n" AGENTS, 0, "worker.id");
}

static void test_exec_handler_loads_with_its_defaults(void **state)
{
	struct bg_config cfg;
	load_ok("agent_types = ( { name = \"py\"; handler = \"exec\";\n"
		"  command = \"python3 agents/py.py\"; } );\n",
		&cfg);
	const struct bg_agent_type_conf *a = &cfg.agent_types[0];
	assert_int_equal(a->handler, BG_HANDLER_EXEC);
	assert_string_equal(a->command, "python3 agents/py.py");
	assert_int_equal(a->mode, BG_EXEC_PERSISTENT);
	assert_int_equal(a->max_inflight, 1);
	assert_int_equal(a->max_line_bytes, 1048576);
	bg_config_free(&cfg);
}

static void test_exec_handler_requires_a_command(void **state)
{
	load_fails(
		"agent_types = ( { name = \"py\"; handler = \"exec\"; } );\n",
		1, "handler \"exec\" requires command");
}

static void test_exec_max_inflight_needs_persistent_mode(void **state)
{
	load_fails("agent_types = ( { name = \"py\"; handler = \"exec\";\n"
		   "  command = \"p\"; mode = \"per_task\"; max_inflight = 2; "
		   "} );\n",
		   1, "max_inflight > 1 needs mode = \"persistent\"");
}

static void test_exec_command_with_shell_syntax_is_refused(void **state)
{
	load_fails("agent_types = ( { name = \"py\"; handler = \"exec\";\n"
		   "  command = \"python3 a.py 2>/dev/null\"; } );\n",
		   1, "not run by a shell");
}

static void test_command_splits_words_and_honours_quotes(void **state)
{
	char *argv = NULL, err[200];
	assert_int_equal(
		bg_config_command_argv(
			" python3  'a b.py' \"say \\\"hi\\\"\" c\\ d '|'",
			&argv, err, sizeof err),
		0);
	assert_string_equal(argv, "[\"python3\",\"a b.py\",\"say \\\"hi\\\"\","
				  "\"c d\",\"|\"]");
	free(argv);
	assert_int_equal(
		bg_config_command_argv("p 'open", &argv, err, sizeof err), -1);
	assert_non_null(strstr(err, "unterminated"));
	assert_null(argv);
}

static void test_plugin_handler_requires_a_plugin(void **state)
{
	load_fails("agent_types = ( { name = \"a\"; } );\n", 1,
		   "agent type \"a\": handler \"plugin\" requires plugin");
}

/* ---- paths, options --------------------------------------------------- */

static void test_relative_paths_resolve_against_the_file_dir(void **state)
{
	struct bg_config cfg;
	char want[PATH_MAX + 64], parent[PATH_MAX];
	load_ok("paths = { state_dir = \"./state\"; workspace_dir = \"ws\"; };\n"
		"log = { file = \"../b.log\"; };\n"
		"agent_types = ( { name = \"a\"; plugin = \"plugins/a.so\"; } );\n",
		&cfg);
	snprintf(want, sizeof want, "%s/state", tmpdir);
	assert_string_equal(cfg.state_dir, want);
	snprintf(want, sizeof want, "%s/ws", tmpdir);
	assert_string_equal(cfg.workspace_dir, want);
	snprintf(want, sizeof want, "%s/plugins/a.so", tmpdir);
	assert_string_equal(cfg.agent_types[0].plugin, want);
	snprintf(parent, sizeof parent, "%s", tmpdir);
	*strrchr(parent, '/') = '\0';
	snprintf(want, sizeof want, "%s/b.log", parent);
	assert_string_equal(cfg.log_file, want);
	assert_string_equal(cfg.child_path, "");
	bg_config_free(&cfg);
}

static void test_absolute_paths_are_kept(void **state)
{
	struct bg_config cfg;
	load_ok("pool = { child_path = \"/opt/x/bygate-child\"; };\n" AGENTS,
		&cfg);
	assert_string_equal(cfg.child_path, "/opt/x/bygate-child");
	bg_config_free(&cfg);
}

static void assert_json_equal(const char *got, const char *want)
{
	json_t *g = json_loads(got, 0, NULL), *w = json_loads(want, 0, NULL);
	assert_non_null(g);
	assert_non_null(w);
	if (!json_equal(g, w))
		print_error("JSON %s != %s\n", got, want);
	assert_true(json_equal(g, w));
	json_decref(g);
	json_decref(w);
}

#define OPTIONS_AGENTS                                                         \
	"agent_types = ( { name = \"a\"; plugin = \"a.so\"; options = {\n"     \
	"  n = 20; big = 5000000000L; neg = -3; ratio = 0.25; whole = 2.0;\n"  \
	"  on = true; off = false; s = \"x\\\"y\\n\u00e9\"; empty = \"\";\n"   \
	"  arr = [ 1, 2, 3 ]; words = [ \"a\", \"b\" ]; none = [ ];\n"         \
	"  mixed = ( 1, \"two\", { three = 3; }, [ 4.5 ] );\n"                 \
	"  nested = { deep = { x = \"y\"; }; };\n"                             \
	"}; }, { name = \"b\"; plugin = \"b.so\"; } );\n"

static void test_options_group_becomes_a_json_object(void **state)
{
	struct bg_config cfg;
	load_ok(OPTIONS_AGENTS, &cfg);
	assert_json_equal(cfg.agent_types[0].options_json,
			  "{\"n\": 20, \"big\": 5000000000, \"neg\": -3,"
			  " \"ratio\": 0.25, \"whole\": 2.0, \"on\": true,"
			  " \"off\": false, \"s\": \"x\\\"y\\n\u00e9\","
			  " \"empty\": \"\", \"arr\": [1, 2, 3],"
			  " \"words\": [\"a\", \"b\"], \"none\": [],"
			  " \"mixed\": [1, \"two\", {\"three\": 3}, [4.5]],"
			  " \"nested\": {\"deep\": {\"x\": \"y\"}}}");
	bg_config_free(&cfg);
}

static void test_options_must_be_a_group(void **state)
{
	load_fails("agent_types = ( { name = \"a\"; plugin = \"a.so\";\n"
		   "  options = [ 1 ]; } );\n",
		   2, "agent_types.options: expected a group");
}

static void test_options_that_are_not_utf8_are_rejected(void **state)
{
	load_fails("agent_types = ( { name = \"a\"; plugin = \"a.so\";\n"
		   "  options = { ok = 1;\n bad = \"\\xff\"; }; } );\n",
		   3, "cannot convert \"bad\" to JSON");
}

/* ---- -T dump, reload check -------------------------------------------- */

static void dump_to(const struct bg_config *cfg, const char *name, char *path)
{
	snprintf(path, PATH_MAX, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	bg_config_dump(cfg, f);
	fclose(f);
}

/* The dump prints a set password as "***"; everything else re-loads equal. */
static void test_dump_reloads_to_an_equal_config(void **state)
{
	struct bg_config a, b;
	char path[PATH_MAX], err[512] = "";
	load_ok(FULL_GLOBALS OPTIONS_AGENTS, &a);
	dump_to(&a, "dump.conf", path);
	int rc = bg_config_load(path, &b, err, sizeof err);
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(b.redis_password, "***");
	b.redis_password[0] = a.redis_password[0] = '\0';
	const struct bg_conf_key *k = bg_conf_first_change(&a, &b, false);
	if (k)
		print_error("differs: %s.%s\n", k->group, k->name);
	assert_null(k);
	assert_int_equal(a.redis_cluster, b.redis_cluster);
	bg_config_free(&a);
	bg_config_free(&b);
}

static void test_dump_masks_the_password(void **state)
{
	struct bg_config cfg;
	char path[PATH_MAX], buf[8192];
	load_ok("redis = { password = \"s3cret\"; };\n" AGENTS, &cfg);
	dump_to(&cfg, "dump.conf", path);
	FILE *f = fopen(path, "r");
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_null(strstr(buf, "s3cret"));
	assert_non_null(strstr(buf, "password = \"***\";"));
	bg_config_free(&cfg);
}

static void test_reload_check_refuses_a_restart_only_change(void **state)
{
	struct bg_config a, b;
	char err[256] = "";
	load_ok("redis = { port = 7000; };\n" AGENTS, &a);
	load_ok("redis = { port = 7001; };\n" AGENTS, &b);
	assert_int_equal(bg_config_reload_check(&a, &b, err, sizeof err), -1);
	assert_non_null(strstr(err, "redis.port changed"));
	bg_config_free(&a);
	bg_config_free(&b);
}

static void test_reload_check_accepts_reloadable_changes(void **state)
{
	struct bg_config a, b;
	char err[256] = "";
	load_ok("pool = { max_tasks_per_child = 2; };\n" AGENTS, &a);
	load_ok("pool = { max_tasks_per_child = 6; sandbox = false; };\n"
		"log = { level = \"debug\"; };\n"
		"agent_types = ( { name = \"other\"; plugin = \"o.so\"; } );\n",
		&b);
	assert_int_equal(bg_config_reload_check(&a, &b, err, sizeof err), 0);
	bg_config_free(&a);
	bg_config_free(&b);
}

/* ---- template, etc/bygate.conf, docs ---------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int c;
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return buf;
}

static char *template_text(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	bg_config_write_template(m);
	fclose(m);
	return buf;
}

/* Every key appears as "name = " after "group = {" (or in agent_types). */
static void assert_lists_every_key(const char *text)
{
	for (size_t i = 0; i < bg_conf_nkeys + bg_conf_nagent_keys; i++) {
		const struct bg_conf_key *k =
			i < bg_conf_nkeys
				? &bg_conf_keys[i]
				: &bg_conf_agent_keys[i - bg_conf_nkeys];
		char head[64], line[96];
		snprintf(head, sizeof head, "\n%s = %s", k->group,
			 strcmp(k->group, "agent_types") ? "{" : "(");
		snprintf(line, sizeof line, "\t%s = ", k->name);
		const char *g = strstr(text, head);
		if (g == NULL || strstr(g, line) == NULL)
			print_error("missing %s.%s\n", k->group, k->name);
		assert_non_null(g);
		assert_non_null(strstr(g, line));
	}
}

static void test_template_lists_every_key(void **state)
{
	char *t = template_text();
	assert_lists_every_key(t);
	free(t);
}

static void test_template_loads_as_the_defaults(void **state)
{
	struct bg_config cfg;
	char *t = template_text();
	load_ok(t, &cfg);
	free(t);
	for (size_t i = 0; i < bg_conf_nkeys; i++) {
		const struct bg_conf_key *k = &bg_conf_keys[i];
		if (k == bg_conf_key_find("worker", "id"))
			continue;
		if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64 ||
		    k->type == BG_CONF_ENUM || k->type == BG_CONF_BOOL)
			assert_int_equal(bg_conf_get_int(k, &cfg), k->def_int);
		else
			assert_string_equal(bg_conf_get_str(k, &cfg),
					    k->def_str);
	}
	bg_config_free(&cfg);
}

/* A file of the source tree: $BYGATE_SRCDIR, the working directory, or two
 * levels above this binary (build/tests/test_conf). */
static char *source_file(const char *rel)
{
	static char path[PATH_MAX + 64];
	const char *src = getenv("BYGATE_SRCDIR");
	if (src) {
		snprintf(path, sizeof path, "%s/%s", src, rel);
		return path;
	}
	if (access(rel, R_OK) == 0)
		return strcpy(path, rel);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	for (int up = 0; up < 3; up++)
		*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof path, "%s/%s", exe, rel);
	return path;
}

static void test_etc_bygate_conf_has_every_key_and_its_doc(void **state)
{
	char *etc = slurp(source_file("etc/bygate.conf"));
	assert_non_null(etc);
	assert_lists_every_key(etc);
	char *t = template_text(), *save = NULL;
	for (char *line = strtok_r(t, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *c = line + strspn(line, "\t");
		if (c[0] == '#' && strstr(etc, line) == NULL)
			print_error("etc/bygate.conf lacks the line \"%s\": "
				    "regenerate it (test_conf --template)\n",
				    line);
		assert_true(c[0] != '#' || strstr(etc, line) != NULL);
	}
	free(t);
	free(etc);
}

static void test_etc_bygate_conf_loads(void **state)
{
	struct bg_config cfg;
	char err[512] = "";
	int rc = bg_config_load(source_file("etc/bygate.conf"), &cfg, err,
				sizeof err);
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.worker_id, "bygate-dev");
	assert_non_null(bg_config_agent_type(&cfg, "echo"));
	const struct bg_agent_type_conf *sl =
		bg_config_agent_type(&cfg, "sleep");
	assert_non_null(sl);
	assert_json_equal(sl->options_json, "{\"default_ms\": 20}");
	assert_non_null(strstr(sl->plugin, "/build/plugins/sleep.so"));
	assert_non_null(strstr(cfg.state_dir, "/run/state"));
	bg_config_free(&cfg);
}

static void test_docs_hold_the_generated_key_table(void **state)
{
	char *doc = slurp(source_file("docs/configuration.md"));
	assert_non_null(doc);
	char *md = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&md, &len);
	bg_config_write_markdown(m);
	fclose(m);
	if (strstr(doc, md) == NULL)
		print_error(
			"docs/configuration.md lacks the current key table: "
			"regenerate it (test_conf --markdown)\n");
	assert_non_null(strstr(doc, md));
	free(md);
	free(doc);
}

#define T(f) cmocka_unit_test_setup(f, clear_env)

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--template")) {
		bg_config_write_template(stdout);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--markdown")) {
		bg_config_write_markdown(stdout);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		T(test_defaults_fill_every_key_the_file_omits),
		T(test_default_worker_id_is_bygate_dash_hostname),
		T(test_full_file_sets_every_key),
		T(test_env_redis_host_overrides_the_file),
		T(test_env_redis_port_overrides_the_file),
		T(test_env_redis_database_overrides_the_file),
		T(test_env_redis_db_is_the_fallback_of_redis_database),
		T(test_env_redis_username_and_password_override),
		T(test_env_worker_concurrency_sets_pool_size),
		T(test_env_worker_fetch_count_sets_fetch_count),
		T(test_env_worker_health_port_sets_http_port),
		T(test_env_schema_version_beats_the_file),
		T(test_file_schema_applies_when_the_env_is_silent),
		T(test_env_cluster_host_selects_v2_and_cluster),
		T(test_env_empty_cluster_host_changes_nothing),
		T(test_env_redis_mode_cluster_sets_cluster_only),
		T(test_env_redis_mode_standalone_keeps_v2_standalone),
		T(test_file_redis_mode_and_seeds),
		T(test_env_redis_mode_beats_the_file),
		T(test_env_cluster_seeds),
		T(test_env_bad_schema_version_is_an_error),
		T(test_env_bad_redis_mode_is_an_error),
		T(test_env_malformed_integer_names_the_variable),
		T(test_env_out_of_range_names_the_variable),
		T(test_env_empty_redis_host_is_an_error),
		T(test_load_without_a_file_uses_defaults_and_env),
		T(test_wrong_type_reports_file_and_line),
		T(test_float_for_an_integer_key_is_rejected),
		T(test_number_for_a_string_key_is_rejected),
		T(test_string_for_a_bool_key_is_rejected),
		T(test_out_of_range_names_key_and_allowed_range),
		T(test_ring_bytes_must_be_a_power_of_two),
		T(test_bad_enum_value_lists_the_choices),
		T(test_bad_key_schema_is_rejected),
		T(test_syntax_error_reports_file_and_line),
		T(test_unknown_key_is_rejected_with_its_line),
		T(test_unknown_group_is_rejected),
		T(test_unknown_agent_type_key_is_rejected),
		T(test_group_given_as_scalar_is_rejected),
		T(test_missing_file_is_an_error),
		T(test_heartbeat_must_be_below_lease_ttl),
		T(test_reclaim_idle_must_be_twice_the_lease_ttl),
		T(test_at_least_one_agent_type_is_required),
		T(test_agent_type_names_must_be_unique),
		T(test_agent_type_name_is_required),
		T(test_unsafe_agent_type_names_are_rejected),
		T(test_unsafe_worker_id_is_rejected),
		T(test_exec_handler_loads_with_its_defaults),
		T(test_exec_handler_requires_a_command),
		T(test_exec_max_inflight_needs_persistent_mode),
		T(test_exec_command_with_shell_syntax_is_refused),
		T(test_command_splits_words_and_honours_quotes),
		T(test_plugin_handler_requires_a_plugin),
		T(test_relative_paths_resolve_against_the_file_dir),
		T(test_absolute_paths_are_kept),
		T(test_options_group_becomes_a_json_object),
		T(test_options_must_be_a_group),
		T(test_options_that_are_not_utf8_are_rejected),
		T(test_dump_reloads_to_an_equal_config),
		T(test_dump_masks_the_password),
		T(test_reload_check_refuses_a_restart_only_change),
		T(test_reload_check_accepts_reloadable_changes),
		T(test_template_lists_every_key),
		T(test_template_loads_as_the_defaults),
		T(test_etc_bygate_conf_has_every_key_and_its_doc),
		T(test_etc_bygate_conf_loads),
		T(test_docs_hold_the_generated_key_table),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
