/* tests/unit/test_wire_keys.c - every key kind under v1 and v2 against the
 * literal strings of WIRE 1.2, the WIRE 1.1 schema rule, and the ids of
 * wire/ids.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire/idem.h"
#include "wire/ids.h"
#include "wire/keys.h"

struct key_case {
	enum bg_key_kind kind;
	const char *id, *id2, *id3;
	const char *v1, *v2;
};

static const struct key_case cases[] = {
	{ BG_KEY_AGENT_TYPE_CTRL, "planner", "", "",
	  "byai_gateway:ctrl:agent_type:planner",
	  "byai_gateway:v2:ctrl:agent_type:planner" },
	{ BG_KEY_WORKER_CTRL, "worker-01", "", "",
	  "byai_gateway:ctrl:worker:worker-01",
	  "byai_gateway:v2:ctrl:worker:{worker-01}" },
	{ BG_KEY_SESSION_DATA, "sess-42", "", "",
	  "byai_gateway:session:sess-42:data_stream",
	  "byai_gateway:v2:session:{sess-42}:data_stream" },
	{ BG_KEY_SESSION_CHECKPOINT, "sess-42", "ui", "",
	  "byai_gateway:session:sess-42:consumer:ui:checkpoint",
	  "byai_gateway:v2:session:{sess-42}:consumer:ui:checkpoint" },
	{ BG_KEY_SESSION_REGISTRY, "sess-42", "", "",
	  "byai_gateway:session:sess-42:registry",
	  "byai_gateway:v2:session:{sess-42}:registry" },
	{ BG_KEY_SESSION_KV, "sess-42", "", "",
	  "byai_gateway:session:sess-42:bygate_kv",
	  "byai_gateway:v2:session:{sess-42}:bygate_kv" },
	{ BG_KEY_SESSION_HISTORY, "sess-42", "", "",
	  "byai_gateway:session:sess-42:bygate_history",
	  "byai_gateway:v2:session:{sess-42}:bygate_history" },
	{ BG_KEY_TASK_GROUP, "tg-1a2b3c4d", "", "",
	  "byai_gateway:task_group:tg-1a2b3c4d",
	  "byai_gateway:v2:task_group:{tg-1a2b3c4d}" },
	{ BG_KEY_TASK_GROUP_RESULTS, "tg-1a2b3c4d", "", "",
	  "byai_gateway:task_group:tg-1a2b3c4d:results",
	  "byai_gateway:v2:task_group:{tg-1a2b3c4d}:results" },
	{ BG_KEY_KNOWN_WORKERS, "", "", "", "byai_gateway:registry:workers",
	  "byai_gateway:v2:registry:workers" },
	{ BG_KEY_WORKER_AGENT_TYPES, "worker-01", "", "",
	  "byai_gateway:registry:worker:agent_types:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:agent_types" },
	{ BG_KEY_AGENT_TYPE_MEMBERS, "planner", "", "",
	  "byai_gateway:registry:agent_type:workers:planner",
	  "byai_gateway:v2:registry:agent_type:{planner}:workers" },
	{ BG_KEY_AGENT_TYPE_DENIED, "planner", "", "",
	  "byai_gateway:registry:agent_type:denied:planner",
	  "byai_gateway:v2:registry:agent_type:{planner}:denied" },
	{ BG_KEY_WORKER_ONLINE, "worker-01", "", "",
	  "byai_gateway:registry:worker:online:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:online" },
	{ BG_KEY_WORKER_ADMIN, "worker-01", "", "",
	  "byai_gateway:registry:worker:admin:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:admin" },
	{ BG_KEY_ADMIN_WORKERS, "", "", "",
	  "byai_gateway:registry:worker:admin_workers",
	  "byai_gateway:v2:registry:worker:admin_workers" },
	{ BG_KEY_WORKER_STATUS, "worker-01", "", "",
	  "byai_gateway:registry:worker:status:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:status" },
	{ BG_KEY_WORKER_EXECUTIONS, "worker-01", "", "",
	  "byai_gateway:registry:worker:executions:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:executions" },
	{ BG_KEY_WORKER_ACTIVE_INDEX, "worker-01", "", "",
	  "byai_gateway:registry:worker:active_execution_index:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:active_execution_index" },
	{ BG_KEY_WORKER_ACTIVE_SNAPSHOTS, "worker-01", "", "",
	  "byai_gateway:registry:worker:active_snapshots:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:active_snapshots" },
	{ BG_KEY_WORKER_HISTORY_SNAPSHOTS, "worker-01", "", "",
	  "byai_gateway:registry:worker:history_snapshots:worker-01",
	  "byai_gateway:v2:registry:worker:{worker-01}:history_snapshots" },
	{ BG_KEY_AGENT_CONFIG_SNAPSHOT, "exec-0a1b2c3d", "", "",
	  "byai_gateway:agent_configs_snapshot:exec-0a1b2c3d",
	  "byai_gateway:v2:agent_configs_snapshot:exec-0a1b2c3d" },
	{ BG_KEY_PLUGIN_RELOAD_ACK, "reload-1a2b3c4d", "", "",
	  "byai_gateway:plugin_reload:reload-1a2b3c4d:ack",
	  "byai_gateway:v2:plugin_reload:reload-1a2b3c4d:ack" },
	{ BG_KEY_WAKEUP, "", "", "", "byai_gateway:control_plane:mgmt:wakeup",
	  "byai_gateway:v2:control_plane:mgmt:wakeup" },
	{ BG_KEY_WAKEUP_RESULT, "exec-0a1b2c3d", "", "",
	  "byai_gateway:control_plane:mgmt:wakeup:result:exec-0a1b2c3d",
	  "byai_gateway:v2:control_plane:mgmt:wakeup:result:exec-0a1b2c3d" },
	{ BG_KEY_PENDING_DELIVERIES, "", "", "",
	  "byai_gateway:control_plane:mgmt:delivery:pending",
	  "byai_gateway:v2:control_plane:mgmt:delivery:pending" },
	{ BG_KEY_DEADLETTER, "", "", "",
	  "byai_gateway:control_plane:mgmt:deadletter",
	  "byai_gateway:v2:control_plane:mgmt:deadletter" },
	{ BG_KEY_CIRCUIT, "planner", "", "",
	  "byai_gateway:control_plane:circuit:agent_type:planner",
	  "byai_gateway:v2:control_plane:circuit:agent_type:planner" },
	{ BG_KEY_FALLBACK, "planner", "", "",
	  "byai_gateway:control_plane:fallback:agent_type:planner",
	  "byai_gateway:v2:control_plane:fallback:agent_type:planner" },
	{ BG_KEY_QUOTA, "u-001", "", "",
	  "byai_gateway:control_plane:quota:user:u-001",
	  "byai_gateway:v2:control_plane:quota:user:u-001" },
	{ BG_KEY_WAKEUP_DEDUPE, "planner", "u-001", "cn",
	  "byai_gateway:control_plane:wakeup:dedupe:planner:u-001:cn",
	  "byai_gateway:v2:control_plane:wakeup:dedupe:planner:u-001:cn" },
	/* bygate's own; under v2 hash-tagged with the whole stream key, so
	 * it lives in the stream's slot */
	{ BG_KEY_READY, "planner", "lanes", "",
	  "byai_gateway:ctrl:agent_type:planner:bygate_ready:lanes",
	  "byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:planner}:"
	  "bygate_ready:lanes" },
	{ BG_KEY_FLEET_TYPE_RUNNING, "planner", "", "",
	  "byai_gateway:fleet:agent_type:planner:running",
	  "byai_gateway:v2:fleet:{limits}:agent_type:planner:running" },
	{ BG_KEY_FLEET_LANE_RUNNING, "tenant-a", "", "",
	  "byai_gateway:fleet:lane:tenant-a:running",
	  "byai_gateway:v2:fleet:{limits}:lane:tenant-a:running" },
	{ BG_KEY_FLEET_TYPE_RATE, "planner", "", "",
	  "byai_gateway:fleet:agent_type:planner:rate",
	  "byai_gateway:v2:fleet:{limits}:agent_type:planner:rate" },
	{ BG_KEY_FLEET_LANE_RATE, "tenant-a", "", "",
	  "byai_gateway:fleet:lane:tenant-a:rate",
	  "byai_gateway:v2:fleet:{limits}:lane:tenant-a:rate" },
	{ BG_KEY_TIMERS, "planner", "", "",
	  "byai_gateway:ctrl:agent_type:planner:bygate_timers",
	  "byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:planner}:"
	  "bygate_timers" },
	{ BG_KEY_IDEMPOTENCY, "planner", "order-42", "",
	  "byai_gateway:ctrl:agent_type:planner:bygate_idem:order-42",
	  "byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:planner}:"
	  "bygate_idem:order-42" },
	{ BG_KEY_TRIGGERS, "", "", "", "byai_gateway:bygate_triggers",
	  "byai_gateway:v2:{bygate_triggers}:names" },
	{ BG_KEY_TRIGGER, "nightly", "", "",
	  "byai_gateway:bygate_trigger:nightly",
	  "byai_gateway:v2:{bygate_triggers}:trigger:nightly" },
	{ BG_KEY_TRIGGER_ACTIVE, "nightly", "", "",
	  "byai_gateway:bygate_trigger:nightly:active",
	  "byai_gateway:v2:{bygate_triggers}:trigger:nightly:active" },
	{ BG_KEY_TRACE_META, "t1", "", "", "by_framework:trace:t1",
	  "byai_gateway:v2:trace:{t1}" },
	{ BG_KEY_TRACE_SPANS, "t1", "", "", "by_framework:trace:spans:t1",
	  "byai_gateway:v2:trace:spans:{t1}" },
	{ BG_KEY_TRACE_IDX_SESSION, "s1", "", "",
	  "by_framework:trace:idx:session:s1",
	  "byai_gateway:v2:trace:idx:session:s1" },
	{ BG_KEY_TRACE_IDX_WORKER, "w1", "", "",
	  "by_framework:trace:idx:worker:w1",
	  "byai_gateway:v2:trace:idx:worker:w1" },
	{ BG_KEY_TRACE_IDX_AGENT, "echo", "", "",
	  "by_framework:trace:idx:agent:echo",
	  "byai_gateway:v2:trace:idx:agent:echo" },
	{ BG_KEY_OBS_COLLECTOR_LOCK, "", "", "",
	  "by_framework:obs:collector_lock",
	  "by_framework:obs:collector_lock" },
	{ BG_KEY_OBS_HISTORY, "", "", "", "by_framework:obs:history",
	  "by_framework:obs:history" },
	{ BG_KEY_FINISH_GUARD, "77", "", "",
	  "byai_gateway:bygate_finish_guard:77",
	  "byai_gateway:v2:bygate_finish_guard:{77}" },
	{ BG_KEY_TRIGGER_SENT, "echo", "msg-1", "",
	  "byai_gateway:ctrl:agent_type:echo:bygate_fired:msg-1",
	  "byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:echo}:"
	  "bygate_fired:msg-1" },
};

static int build(struct bg_buf *b, enum bg_key_schema schema,
		 enum bg_key_kind kind, const char *id, const char *id2,
		 const char *id3)
{
	bg_buf_reset(b);
	return bg_key_build(b, schema, kind, bg_str_c(id), bg_str_c(id2),
			    bg_str_c(id3));
}

static void test_every_key_kind_matches_the_wire_table(void **st)
{
	struct bg_buf b = { 0 };
	bool covered[BG_KEY__COUNT] = { false };

	(void)st;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct key_case *c = &cases[i];
		assert_int_equal(build(&b, BG_SCHEMA_V1, c->kind, c->id, c->id2,
				       c->id3),
				 0);
		assert_string_equal(b.p, c->v1);
		assert_int_equal(build(&b, BG_SCHEMA_V2, c->kind, c->id, c->id2,
				       c->id3),
				 0);
		assert_string_equal(b.p, c->v2);
		covered[c->kind] = true;
	}
	for (int k = 0; k < BG_KEY__COUNT; k++)
		assert_true(covered[k]);
	bg_buf_free(&b);
}

static void test_wakeup_dedupe_writes_underscore_for_empty_parts(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	assert_int_equal(build(&b, BG_SCHEMA_V1, BG_KEY_WAKEUP_DEDUPE,
			       "planner", "", ""),
			 0);
	assert_string_equal(
		b.p, "byai_gateway:control_plane:wakeup:dedupe:planner:_:_");
	bg_buf_free(&b);
}

static void test_online_key_with_star_is_the_scan_pattern(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	assert_int_equal(
		build(&b, BG_SCHEMA_V2, BG_KEY_WORKER_ONLINE, "*", "", ""), 0);
	assert_string_equal(b.p, "byai_gateway:v2:registry:worker:{*}:online");
	assert_int_equal(
		build(&b, BG_SCHEMA_V1, BG_KEY_WORKER_ONLINE, "*", "", ""), 0);
	assert_string_equal(b.p, "byai_gateway:registry:worker:online:*");
	bg_buf_free(&b);
}

static void test_key_build_appends_to_the_buffer(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	bg_buf_puts(&b, "KEY ");
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V1, BG_KEY_DEADLETTER,
				      bg_str_c(""), bg_str_c(""), bg_str_c("")),
			 0);
	assert_string_equal(b.p,
			    "KEY byai_gateway:control_plane:mgmt:deadletter");
	bg_buf_free(&b);
}

static void test_key_build_rejects_wrong_ids_and_leaves_buffer(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	bg_buf_puts(&b, "x");
	/* required id missing */
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V1, BG_KEY_SESSION_DATA,
				      bg_str_c(""), bg_str_c(""), bg_str_c("")),
			 -EINVAL);
	/* unused id given */
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V2, BG_KEY_SESSION_DATA,
				      bg_str_c("s"), bg_str_c("extra"),
				      bg_str_c("")),
			 -EINVAL);
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V1, BG_KEY_KNOWN_WORKERS,
				      bg_str_c("w"), bg_str_c(""),
				      bg_str_c("")),
			 -EINVAL);
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V1,
				      BG_KEY_SESSION_CHECKPOINT, bg_str_c("s"),
				      bg_str_c(""), bg_str_c("")),
			 -EINVAL);
	/* bad schema or kind */
	assert_int_equal(bg_key_build(&b, (enum bg_key_schema)3,
				      BG_KEY_KNOWN_WORKERS, bg_str_c(""),
				      bg_str_c(""), bg_str_c("")),
			 -EINVAL);
	assert_int_equal(bg_key_build(&b, BG_SCHEMA_V1, BG_KEY__COUNT,
				      bg_str_c(""), bg_str_c(""), bg_str_c("")),
			 -EINVAL);
	assert_string_equal(b.p, "x");
	bg_buf_free(&b);
}

/* ---- schema selection (WIRE 1.1) ---- */

static int select_schema(const char *ver, const char *host, const char *conf,
			 enum bg_key_schema *out)
{
	*out = (enum bg_key_schema)0;
	return bg_key_schema_select(ver, host, conf, out);
}

static void test_schema_env_version_wins_over_everything(void **st)
{
	enum bg_key_schema s;

	(void)st;
	assert_int_equal(select_schema("v1", "redis-cluster", "v2", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V1);
	assert_int_equal(select_schema("v2", NULL, "v1", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V2);
}

static void test_schema_env_version_other_than_v1_v2_is_an_error(void **st)
{
	enum bg_key_schema s;

	(void)st;
	assert_int_equal(select_schema("", NULL, NULL, &s), -EINVAL);
	assert_int_equal(select_schema("V2", NULL, NULL, &s), -EINVAL);
	assert_int_equal(select_schema("v3", "h", "v1", &s), -EINVAL);
}

static void test_schema_cluster_host_implies_v2(void **st)
{
	enum bg_key_schema s;

	(void)st;
	assert_int_equal(select_schema(NULL, "10.0.0.1", "v1", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V2);
}

static void test_schema_empty_cluster_host_is_ignored(void **st)
{
	enum bg_key_schema s;

	(void)st;
	assert_int_equal(select_schema(NULL, "", NULL, &s), 0);
	assert_int_equal(s, BG_SCHEMA_V1);
	assert_int_equal(select_schema(NULL, "", "v2", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V2);
}

static void test_schema_configured_value_then_default_v1(void **st)
{
	enum bg_key_schema s;

	(void)st;
	assert_int_equal(select_schema(NULL, NULL, "v2", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V2);
	assert_int_equal(select_schema(NULL, NULL, "v1", &s), 0);
	assert_int_equal(s, BG_SCHEMA_V1);
	assert_int_equal(select_schema(NULL, NULL, NULL, &s), 0);
	assert_int_equal(s, BG_SCHEMA_V1);
	assert_int_equal(select_schema(NULL, NULL, "v9", &s), -EINVAL);
}

/* ---- ids ---- */

static bool all_hex(const char *s, size_t n, bool upper)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool digit = c >= '0' && c <= '9';
		bool letter = upper ? (c >= 'A' && c <= 'F')
				    : (c >= 'a' && c <= 'f');
		if (!digit && !letter)
			return false;
	}
	return true;
}

static void test_id_new_is_prefix_and_8_lowercase_hex(void **st)
{
	static const char *prefixes[] = { "msg-", "exec-", "tg-", "msg-cancel-",
					  "reload-" };
	char id[32], other[32];

	(void)st;
	for (size_t i = 0; i < 5; i++) {
		size_t pn = strlen(prefixes[i]);
		assert_int_equal(bg_id_new(id, sizeof id, prefixes[i]), 0);
		assert_int_equal(strlen(id), pn + 8);
		assert_memory_equal(id, prefixes[i], pn);
		assert_true(all_hex(id + pn, 8, false));
	}
	assert_int_equal(bg_id_new(id, sizeof id, "msg-"), 0);
	assert_int_equal(bg_id_new(other, sizeof other, "msg-"), 0);
	assert_string_not_equal(id, other);
}

static void test_id_new_checks_capacity(void **st)
{
	char id[BG_ID_CAP("msg-")];

	(void)st;
	assert_int_equal(sizeof id, 13);
	assert_int_equal(bg_id_new(id, sizeof id, "msg-"), 0);
	assert_int_equal(bg_id_new(id, sizeof id - 1, "msg-"), -ENOSPC);
}

/* Ids come from a pool of random bytes: a forked child must not make the
 * ids its parent makes next (the pool is emptied in the child). */
static void test_ids_after_fork_differ_from_the_parents(void **st)
{
	char warm[32], mine[4][32], theirs[4][32];
	int p[2];

	(void)st;
	assert_int_equal(bg_id_new(warm, sizeof warm, "msg-"), 0); /* filled */
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		for (int i = 0; i < 4; i++)
			if (bg_id_new(theirs[i], sizeof theirs[i], "msg-"))
				_exit(1);
		_exit(write(p[1], theirs, sizeof theirs) == sizeof theirs ? 0
									  : 1);
	}
	close(p[1]);
	for (int i = 0; i < 4; i++)
		assert_int_equal(bg_id_new(mine[i], sizeof mine[i], "msg-"), 0);
	assert_int_equal(read(p[0], theirs, sizeof theirs), sizeof theirs);
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			assert_string_not_equal(mine[i], theirs[j]);
}

/* Many ids in a row (several refills of the pool) never repeat. */
static void test_ids_do_not_repeat_across_pool_refills(void **st)
{
	enum { N = 2000 };
	static char ids[N][33];

	(void)st;
	for (int i = 0; i < N; i++)
		assert_int_equal(bg_uuid_hex(ids[i], false), 0);
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			assert_string_not_equal(ids[i], ids[j]);
}

static void test_uuid_hex_is_32_hex_version_4(void **st)
{
	char u[33];

	(void)st;
	assert_int_equal(bg_uuid_hex(u, false), 0);
	assert_int_equal(strlen(u), 32);
	assert_true(all_hex(u, 32, false));
	assert_int_equal(u[12], '4');
	assert_non_null(strchr("89ab", u[16]));
	assert_int_equal(bg_uuid_hex(u, true), 0);
	assert_true(all_hex(u, 32, true));
}

static void test_span_id_is_md5_prefix_of_dispatch_name(void **st)
{
	const char *s = "msg-1a2b3c4d:client.dispatch";
	char span[17];

	(void)st;
	/* python3 -c 'import hashlib; print(hashlib.md5(
	 *   b"msg-1a2b3c4d:client.dispatch").hexdigest()[:16])' */
	assert_int_equal(bg_span_id16(span, s, strlen(s)), 0);
	assert_string_equal(span, "70cb4086a837a8bb");
	assert_int_equal(bg_span_id16_of(span, bg_str_c("msg-5e6f7a8b"),
					 ":client.dispatch"),
			 0);
	assert_string_equal(span, "5e7a123062f66633");
}

static void test_script_sha1_is_the_evalsha_name(void **st)
{
	char sha[41];

	(void)st;
	/* printf hello | sha1sum */
	assert_int_equal(bg_script_sha1(sha, "hello"), 0);
	assert_string_equal(sha, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
}

static void test_idempotency_keys_are_printable_ascii_up_to_200(void **st)
{
	char long_key[BG_IDEM_KEY_MAX + 2];

	(void)st;
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_true(bg_idem_key_ok(bg_str_c("order-42")));
	assert_true(bg_idem_key_ok(bg_str_c("a:b/c{d}~!")));
	assert_false(bg_idem_key_ok(bg_str_c("")));
	assert_false(bg_idem_key_ok(bg_str_c("two words")));
	assert_false(bg_idem_key_ok(bg_str_c("tab\there")));
	assert_false(bg_idem_key_ok(bg_str_c("caf\xc3\xa9")));
	assert_false(bg_idem_key_ok(bg_str_c(long_key)));
	long_key[BG_IDEM_KEY_MAX] = '\0';
	assert_true(bg_idem_key_ok(bg_str_c(long_key)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key_kind_matches_the_wire_table),
		cmocka_unit_test(
			test_wakeup_dedupe_writes_underscore_for_empty_parts),
		cmocka_unit_test(test_online_key_with_star_is_the_scan_pattern),
		cmocka_unit_test(test_key_build_appends_to_the_buffer),
		cmocka_unit_test(
			test_key_build_rejects_wrong_ids_and_leaves_buffer),
		cmocka_unit_test(test_schema_env_version_wins_over_everything),
		cmocka_unit_test(
			test_schema_env_version_other_than_v1_v2_is_an_error),
		cmocka_unit_test(test_schema_cluster_host_implies_v2),
		cmocka_unit_test(test_schema_empty_cluster_host_is_ignored),
		cmocka_unit_test(test_schema_configured_value_then_default_v1),
		cmocka_unit_test(test_id_new_is_prefix_and_8_lowercase_hex),
		cmocka_unit_test(test_id_new_checks_capacity),
		cmocka_unit_test(test_uuid_hex_is_32_hex_version_4),
		cmocka_unit_test(test_ids_after_fork_differ_from_the_parents),
		cmocka_unit_test(test_ids_do_not_repeat_across_pool_refills),
		cmocka_unit_test(test_span_id_is_md5_prefix_of_dispatch_name),
		cmocka_unit_test(test_script_sha1_is_the_evalsha_name),
		cmocka_unit_test(
			test_idempotency_keys_are_printable_ascii_up_to_200),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
