/* wire/keys.c - the WIRE 1.2 key table and its single builder. Templates
 * are the key text after "byai_gateway:" (v1) or "byai_gateway:v2:" (v2);
 * the bytes \1 \2 \3 stand for id, id2, id3. A template that starts with
 * \5 is the whole key, with no "byai_gateway:" prefix (WIRE 1.2: the
 * reference's v1 trace keys and its obs keys). */
#include "wire/keys.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

struct key_form {
	const char *v1;
	const char *v2;
};

static const struct key_form forms[BG_KEY__COUNT] = {
	[BG_KEY_AGENT_TYPE_CTRL] = { "ctrl:agent_type:\1",
				     "ctrl:agent_type:\1" },
	[BG_KEY_WORKER_CTRL] = { "ctrl:worker:\1", "ctrl:worker:{\1}" },
	[BG_KEY_SESSION_DATA] = { "session:\1:data_stream",
				  "session:{\1}:data_stream" },
	[BG_KEY_SESSION_CHECKPOINT] = { "session:\1:consumer:\2:checkpoint",
					"session:{\1}:consumer:\2:checkpoint" },
	[BG_KEY_SESSION_REGISTRY] = { "session:\1:registry",
				      "session:{\1}:registry" },
	[BG_KEY_SESSION_KV] = { "session:\1:bygate_kv",
				"session:{\1}:bygate_kv" },
	[BG_KEY_SESSION_HISTORY] = { "session:\1:bygate_history",
				     "session:{\1}:bygate_history" },
	[BG_KEY_TASK_GROUP] = { "task_group:\1", "task_group:{\1}" },
	[BG_KEY_TASK_GROUP_RESULTS] = { "task_group:\1:results",
					"task_group:{\1}:results" },
	[BG_KEY_KNOWN_WORKERS] = { "registry:workers", "registry:workers" },
	[BG_KEY_WORKER_AGENT_TYPES] = { "registry:worker:agent_types:\1",
					"registry:worker:{\1}:agent_types" },
	[BG_KEY_AGENT_TYPE_MEMBERS] = { "registry:agent_type:workers:\1",
					"registry:agent_type:{\1}:workers" },
	[BG_KEY_AGENT_TYPE_DENIED] = { "registry:agent_type:denied:\1",
				       "registry:agent_type:{\1}:denied" },
	[BG_KEY_WORKER_ONLINE] = { "registry:worker:online:\1",
				   "registry:worker:{\1}:online" },
	[BG_KEY_WORKER_ADMIN] = { "registry:worker:admin:\1",
				  "registry:worker:{\1}:admin" },
	[BG_KEY_ADMIN_WORKERS] = { "registry:worker:admin_workers",
				   "registry:worker:admin_workers" },
	[BG_KEY_WORKER_STATUS] = { "registry:worker:status:\1",
				   "registry:worker:{\1}:status" },
	[BG_KEY_WORKER_EXECUTIONS] = { "registry:worker:executions:\1",
				       "registry:worker:{\1}:executions" },
	[BG_KEY_WORKER_ACTIVE_INDEX] = { "registry:worker:active_execution_index:\1",
					 "registry:worker:{\1}:active_execution_index" },
	[BG_KEY_WORKER_ACTIVE_SNAPSHOTS] = { "registry:worker:active_snapshots:\1",
					     "registry:worker:{\1}:active_snapshots" },
	[BG_KEY_WORKER_HISTORY_SNAPSHOTS] = { "registry:worker:history_snapshots:\1",
					      "registry:worker:{\1}:history_snapshots" },
	[BG_KEY_AGENT_CONFIG_SNAPSHOT] = { "agent_configs_snapshot:\1",
					   "agent_configs_snapshot:\1" },
	[BG_KEY_PLUGIN_RELOAD_ACK] = { "plugin_reload:\1:ack",
				       "plugin_reload:\1:ack" },
	[BG_KEY_WAKEUP] = { "control_plane:mgmt:wakeup",
			    "control_plane:mgmt:wakeup" },
	[BG_KEY_WAKEUP_RESULT] = { "control_plane:mgmt:wakeup:result:\1",
				   "control_plane:mgmt:wakeup:result:\1" },
	[BG_KEY_PENDING_DELIVERIES] = { "control_plane:mgmt:delivery:pending",
					"control_plane:mgmt:delivery:pending" },
	[BG_KEY_DEADLETTER] = { "control_plane:mgmt:deadletter",
				"control_plane:mgmt:deadletter" },
	[BG_KEY_CIRCUIT] = { "control_plane:circuit:agent_type:\1",
			     "control_plane:circuit:agent_type:\1" },
	[BG_KEY_FALLBACK] = { "control_plane:fallback:agent_type:\1",
			      "control_plane:fallback:agent_type:\1" },
	[BG_KEY_QUOTA] = { "control_plane:quota:user:\1",
			   "control_plane:quota:user:\1" },
	[BG_KEY_READY] = { "ctrl:agent_type:\1:bygate_ready:\2",
			   "{byai_gateway:v2:ctrl:agent_type:\1}:bygate_ready:"
			   "\2" },
	[BG_KEY_WAKEUP_DEDUPE] = { "control_plane:wakeup:dedupe:\1:\2:\3",
				   "control_plane:wakeup:dedupe:\1:\2:\3" },
	[BG_KEY_FLEET_TYPE_RUNNING] = { "fleet:agent_type:\1:running",
					"fleet:{limits}:agent_type:\1:running" },
	[BG_KEY_FLEET_LANE_RUNNING] = { "fleet:lane:\1:running",
					"fleet:{limits}:lane:\1:running" },
	[BG_KEY_FLEET_TYPE_RATE] = { "fleet:agent_type:\1:rate",
				     "fleet:{limits}:agent_type:\1:rate" },
	[BG_KEY_FLEET_LANE_RATE] = { "fleet:lane:\1:rate",
				     "fleet:{limits}:lane:\1:rate" },
	[BG_KEY_TIMERS] = { "ctrl:agent_type:\1:bygate_timers",
			    "{byai_gateway:v2:ctrl:agent_type:\1}:"
			    "bygate_timers" },
	[BG_KEY_IDEMPOTENCY] = { "ctrl:agent_type:\1:bygate_idem:\2",
				 "{byai_gateway:v2:ctrl:agent_type:\1}:"
				 "bygate_idem:\2" },
	[BG_KEY_TRIGGERS] = { "bygate_triggers", "{bygate_triggers}:names" },
	[BG_KEY_TRIGGER] = { "bygate_trigger:\1",
			     "{bygate_triggers}:trigger:\1" },
	[BG_KEY_TRIGGER_ACTIVE] = { "bygate_trigger:\1:active",
				    "{bygate_triggers}:trigger:\1:active" },
	[BG_KEY_TRACE_META] = { "\5by_framework:trace:\1", "trace:{\1}" },
	[BG_KEY_TRACE_SPANS] = { "\5by_framework:trace:spans:\1",
				 "trace:spans:{\1}" },
	[BG_KEY_TRACE_IDX_SESSION] = { "\5by_framework:trace:idx:session:\1",
				       "trace:idx:session:\1" },
	[BG_KEY_TRACE_IDX_WORKER] = { "\5by_framework:trace:idx:worker:\1",
				      "trace:idx:worker:\1" },
	[BG_KEY_TRACE_IDX_AGENT] = { "\5by_framework:trace:idx:agent:\1",
				     "trace:idx:agent:\1" },
	[BG_KEY_OBS_COLLECTOR_LOCK] = { "\5by_framework:obs:collector_lock",
					"\5by_framework:obs:collector_lock" },
	[BG_KEY_OBS_HISTORY] = { "\5by_framework:obs:history",
				 "\5by_framework:obs:history" },
	[BG_KEY_FINISH_GUARD] = { "bygate_finish_guard:\1",
				  "bygate_finish_guard:{\1}" },
	[BG_KEY_TRIGGER_SENT] = { "ctrl:agent_type:\1:bygate_fired:\2",
				  "{byai_gateway:v2:ctrl:agent_type:\1}:"
				  "bygate_fired:\2" },
};

/* Check each id against the template: used ids non-empty (except the
 * dedupe parts, which default to "_"), unused ids empty. */
static int check_ids(enum bg_key_kind kind, const char *tpl,
		     struct bg_str ids[3])
{
	static const struct bg_str underscore = { "_", 1 };

	for (int k = 0; k < 3; k++) {
		bool used = strchr(tpl, k + 1) != NULL;
		if (used && ids[k].len == 0 && kind == BG_KEY_WAKEUP_DEDUPE &&
		    k > 0)
			ids[k] = underscore;
		if (used != (ids[k].len > 0))
			return -EINVAL;
	}
	return 0;
}

int bg_key_build(struct bg_buf *out, enum bg_key_schema schema,
		 enum bg_key_kind kind, struct bg_str id, struct bg_str id2,
		 struct bg_str id3)
{
	struct bg_str ids[3] = { id, id2, id3 };
	size_t start = out->len;
	const char *tpl;
	int rc;

	if ((unsigned)kind >= BG_KEY__COUNT ||
	    (schema != BG_SCHEMA_V1 && schema != BG_SCHEMA_V2))
		return -EINVAL;
	tpl = schema == BG_SCHEMA_V1 ? forms[kind].v1 : forms[kind].v2;
	rc = check_ids(kind, tpl, ids);
	if (rc)
		return rc;
	rc = 0;
	if (*tpl == '\5')
		tpl++;
	else
		rc = bg_buf_puts(out, schema == BG_SCHEMA_V1
					      ? "byai_gateway:"
					      : "byai_gateway:v2:");
	while (rc == 0 && *tpl) {
		size_t lit = strcspn(tpl, "\1\2\3");
		rc = bg_buf_append(out, tpl, lit);
		tpl += lit;
		if (rc == 0 && *tpl) {
			struct bg_str s = ids[*tpl - 1];
			rc = bg_buf_append(out, s.p, s.len);
			tpl++;
		}
	}
	if (rc) {
		out->len = start;
		if (out->p)
			out->p[start] = '\0';
	}
	return rc;
}

static int parse_schema(const char *s, enum bg_key_schema *out)
{
	if (strcmp(s, "v1") == 0)
		*out = BG_SCHEMA_V1;
	else if (strcmp(s, "v2") == 0)
		*out = BG_SCHEMA_V2;
	else
		return -EINVAL;
	return 0;
}

int bg_key_schema_select(const char *env_version, const char *env_cluster_host,
			 const char *configured, enum bg_key_schema *out)
{
	if (env_version)
		return parse_schema(env_version, out);
	if (env_cluster_host && env_cluster_host[0]) {
		*out = BG_SCHEMA_V2;
		return 0;
	}
	if (configured)
		return parse_schema(configured, out);
	*out = BG_SCHEMA_V1;
	return 0;
}
