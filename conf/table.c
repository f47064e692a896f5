/* conf/table.c - the configuration table: every key of bygate.conf with its
 * type, default, bounds, unit, reload flag, destination and documentation.
 * Parsing, validation, -T, the template and docs all read this one table. */
#include "conf/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(enum bg_key_schema) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bg_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bg_log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bg_handler_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bg_exec_mode) == sizeof(int), "enum size");

/* Offsets whose field type is checked at compile time. */
#define OFF_T(S, f, T)                                                         \
	(offsetof(S, f) + 0 * sizeof(_Generic(((S *)0)->f, T : 1)))
#define INT_SIZED(S, f) (sizeof(((S *)0)->f) == sizeof(int) ? 1 : -1)
#define OFF_E(S, f) (offsetof(S, f) + 0 * sizeof(char[INT_SIZED(S, f)]))

#define C struct bg_config
#define A struct bg_agent_type_conf
#define INT(g, n, S, f, def, lo, hi, unit, fl, doc)                            \
	{                                                                      \
		g, n, BG_CONF_INT, fl, lo, hi, def, NULL, NULL, unit,          \
			OFF_T(S, f, int), doc                                  \
	}
#define I64(g, n, f, def, lo, hi, unit, fl, doc)                               \
	{                                                                      \
		g, n, BG_CONF_INT64, fl, lo, hi, def, NULL, NULL, unit,        \
			OFF_T(C, f, int64_t), doc                              \
	}
#define STR(g, n, S, f, def, minlen, fl, doc)                                  \
	{                                                                      \
		g, n, BG_CONF_STR, fl, minlen, 0, 0, def, NULL, NULL,          \
			OFF_T(S, f, char *), doc                               \
	}
#define PATH(g, n, S, f, def, minlen, fl, doc)                                 \
	{                                                                      \
		g, n, BG_CONF_PATH, fl, minlen, 0, 0, def, NULL, NULL,         \
			OFF_T(S, f, char *), doc                               \
	}
#define ENUM(g, n, S, f, def, names, fl, doc)                                  \
	{                                                                      \
		g, n, BG_CONF_ENUM, fl, 0, 0, def, NULL, names, NULL,          \
			OFF_E(S, f), doc                                       \
	}
#define BOOL(g, n, S, f, def, fl, doc)                                         \
	{                                                                      \
		g, n, BG_CONF_BOOL, fl, 0, 1, def, NULL, NULL, NULL,           \
			OFF_T(S, f, bool), doc                                 \
	}

#define R BG_CONF_RELOAD
#define AG BG_CONF_AGENT_GROUP

static const struct bg_conf_name schema_names[] = { { "v1", BG_SCHEMA_V1 },
						    { "v2", BG_SCHEMA_V2 },
						    { NULL, 0 } };
static const struct bg_conf_name redis_mode_names[] = { { "standalone", 0 },
							{ "cluster", 1 },
							{ NULL, 0 } };
static const struct bg_conf_name history_backend_names[] = {
	{ "redis", BG_HISTORY_REDIS }, { "off", BG_HISTORY_OFF }, { NULL, 0 }
};
static const struct bg_conf_name level_names[] = { { "debug", BG_LOG_DEBUG },
						   { "info", BG_LOG_INFO },
						   { "warn", BG_LOG_WARN },
						   { "error", BG_LOG_ERROR },
						   { NULL, 0 } };
static const struct bg_conf_name format_names[] = { { "text", BG_LOG_TEXT },
						    { "json", BG_LOG_JSON },
						    { NULL, 0 } };
static const struct bg_conf_name profile_names[] = {
	{ "strict", BG_PROFILE_STRICT },
	{ "trusted", BG_PROFILE_TRUSTED },
	{ NULL, 0 }
};
static const struct bg_conf_name network_names[] = { { "none", BG_NET_NONE },
						     { "connect",
						       BG_NET_CONNECT },
						     { "host", BG_NET_HOST },
						     { NULL, 0 } };
static const struct bg_conf_name durability_names[] = {
	{ "process", BG_DURABILITY_PROCESS },
	{ "sync", BG_DURABILITY_SYNC },
	{ "none", BG_DURABILITY_NONE },
	{ NULL, 0 }
};
static const struct bg_conf_name handler_names[] = {
	{ "plugin", BG_HANDLER_PLUGIN },
	{ "exec", BG_HANDLER_EXEC },
	{ NULL, 0 }
};
static const struct bg_conf_name lane_key_names[] = {
	{ "metadata.lane", BG_LANE_KEY_METADATA },
	{ "user_code", BG_LANE_KEY_USER_CODE },
	{ "agent_type", BG_LANE_KEY_AGENT_TYPE },
	{ "session", BG_LANE_KEY_SESSION },
	{ NULL, 0 }
};
static const struct bg_conf_name mode_names[] = {
	{ "persistent", BG_EXEC_PERSISTENT },
	{ "per_task", BG_EXEC_PER_TASK },
	{ NULL, 0 }
};

const struct bg_conf_key bg_conf_keys[] = {
	STR("redis", "host", C, redis_host, "127.0.0.1", 1, 0,
	    "Redis server host name or IP address."),
	INT("redis", "port", C, redis_port, 6379, 1, 65535, NULL, 0,
	    "Redis server TCP port."),
	INT("redis", "db", C, redis_db, 0, 0, 65535, NULL, 0,
	    "Redis database number (SELECT). Clients and workers must agree."),
	STR("redis", "username", C, redis_username, "", 0, 0,
	    "Redis ACL user name; \"\" = the default user."),
	STR("redis", "password", C, redis_password, "", 0, BG_CONF_SECRET,
	    "Redis password; \"\" = no AUTH. Printed as \"***\" by bygated -T."),
	INT("redis", "connect_timeout_ms", C, redis_connect_timeout_ms, 2000, 1,
	    600000, "ms", R, "Deadline of one connection attempt."),
	INT("redis", "command_timeout_ms", C, redis_command_timeout_ms, 5000, 1,
	    600000, "ms", R,
	    "Deadline of one request (beyond BLOCK for the blocking read); "
	    "on expiry the connection is dropped and re-established."),
	INT("redis", "reconnect_max_ms", C, redis_reconnect_max_ms, 5000, 100,
	    600000, "ms", R, "Ceiling of the reconnect back-off."),
	ENUM("redis", "key_schema", C, key_schema, BG_SCHEMA_V1, schema_names,
	     0,
	     "Redis key layout, \"v1\" or \"v2\" (WIRE 1.1). The environment "
	     "wins: REDIS_KEY_SCHEMA_VERSION if set, else v2 when "
	     "REDIS_CLUSTER_HOST is non-empty, else this key, else v1. "
	     "Clients and workers must use the same schema."),
	ENUM("redis", "mode", C, redis_cluster, 0, redis_mode_names, 0,
	     "\"standalone\" or \"cluster\" (Redis Cluster, v2 keys only). "
	     "The environment wins: REDIS_MODE if set, else cluster when "
	     "REDIS_CLUSTER_HOST is non-empty, else this key."),
	STR("redis", "cluster_nodes", C, redis_cluster_nodes, "", 0, 0,
	    "Cluster seed nodes, \"host:port,host:port\"; \"\" = "
	    "REDIS_CLUSTER_HOST (with redis.port) when set, else "
	    "redis.host:redis.port. Any node of the cluster will do: the "
	    "others are learnt from CLUSTER SLOTS."),

	STR("worker", "id", C, worker_id, "", 0, 0,
	    "Worker id: consumer name, lease and worker stream name. "
	    "\"\" = \"bygate-<hostname>\". At most 128 bytes, no '/', "
	    "whitespace, braces or control characters."),
	STR("worker", "consumer_group", C, consumer_group, "agent_engines", 1,
	    0, "Consumer group of the control streams (by-framework default)."),
	INT("worker", "fetch_count", C, fetch_count, 10, 0, 1000, NULL, R,
	    "Entries read beyond the free pool capacity (prefetch)."),
	I64("worker", "read_budget_bytes", read_budget_bytes, 33554432, 1048576,
	    4294967296LL, "bytes", R,
	    "Entries read but not yet handed to a child are held within this "
	    "many bytes (plus at most one entry): reads pause while it is "
	    "full, and entries beyond it in a reply are fetched again later. "
	    "Entries over pool.max_message_bytes are never held whole: "
	    "dead-lettered PAYLOAD_TOO_LARGE."),
	INT("worker", "block_ms", C, block_ms, 2000, 100, 60000, "ms", R,
	    "XREADGROUP BLOCK time of the read connection."),
	INT("worker", "lease_ttl_s", C, lease_ttl_s, 30, 2, 3600, "s", 0,
	    "TTL of the worker's online lease (by-framework: 30 s)."),
	INT("worker", "heartbeat_interval_ms", C, heartbeat_interval_ms, 5000,
	    100, 600000, "ms", 0,
	    "Lease heartbeat period; must be below lease_ttl_s."),
	INT("worker", "reclaim_min_idle_ms", C, reclaim_min_idle_ms, 60000,
	    1000, 86400000, "ms", R,
	    "A dead peer's pending entries are reclaimed after this idle time; "
	    "at least 2 x lease_ttl_s."),
	I64("worker", "max_entry_age_s", max_entry_age_s, 604800, 60, 31536000,
	    "s", R,
	    "Older control-stream entries are dead-lettered as stale, not run."),
	INT("worker", "max_deliveries", C, max_deliveries, 10, 1, 1000, NULL, R,
	    "An entry delivered more often (crash loop) is dead-lettered. A "
	    "death of bygated counts only for an entry that was alone in "
	    "flight: after an unclean exit the entries in flight re-run one "
	    "at a time first (docs/recovery.md, \"Suspects\")."),
	INT("worker", "drain_timeout_ms", C, drain_timeout_ms, 30000, 0,
	    3600000, "ms", R,
	    "On SIGTERM, running tasks get this long before children are "
	    "killed."),
	INT("worker", "slow_task_ms", C, slow_task_ms, 10000, 0, 86400000, "ms",
	    R, "Tasks slower than this are logged at INFO; 0 = all."),
	INT("worker", "lease_wait_s", C, lease_wait_s, 90, 0, 86400, "s", R,
	    "At start, how long to wait for this worker id's lease held by "
	    "another process (a crashed owner's lease expiring) before "
	    "exiting."),
	INT("worker", "cancel_grace_ms", C, cancel_grace_ms, 5000, 0, 600000,
	    "ms", R,
	    "A graceful CANCEL_TASK: the handler's cancel flag is set, SIGTERM "
	    "follows after this long, SIGKILL after as long again."),
	INT("worker", "reconcile_interval_ms", C, reconcile_interval_ms, 30000,
	    1000, 3600000, "ms", 0,
	    "Period of the own pending-list reconcile and of the reclaim of "
	    "dead peers' entries."),
	INT("worker", "timer_poll_ms", C, timer_poll_ms, 100, 10, 60000, "ms",
	    0,
	    "How often the delayed RESUMEs of resume_later due for this "
	    "bygated's agent types are sent (a due one is late by at most "
	    "this much; every bygated of the fleet polls, each fires once)."),

	INT("worker", "idempotency_ttl_s", C, idempotency_ttl_s, 300, 1,
	    2592000, "s", R,
	    "How long an idempotency key (bygate send --idempotency-key, "
	    "metadata.idempotency_key, a webhook's idempotency header) "
	    "keeps a later send with the same key from creating a task "
	    "(docs/triggers.md)."),

	INT("pool", "size", C, pool_size, 4, 1, 1024, NULL, 0,
	    "Number of child processes (tasks run concurrently)."),
	INT("pool", "max_tasks_per_child", C, max_tasks_per_child, 10000, 0,
	    1000000000, NULL, R,
	    "A child is recycled after about this many tasks; 0 = never."),
	I64("pool", "ring_bytes", ring_bytes, 1048576, 65536, 67108864, "bytes",
	    R | BG_CONF_POW2,
	    "Size of each shared-memory ring; a power of two."),
	I64("pool", "max_message_bytes", max_message_bytes, 16777216, 65536,
	    536870912, "bytes", R,
	    "Largest task or event; larger ones fail the task."),
	I64("pool", "max_events_per_task", max_events_per_task, 100000, 1,
	    1000000000, NULL, R,
	    "Events one task may publish; more fail the task."),
	I64("pool", "max_event_bytes_per_task", max_event_bytes_per_task,
	    67108864, 65536, 1073741824, "bytes", R,
	    "Event bytes one task may publish; more fail the task."),
	INT("pool", "respawn_backoff_max_ms", C, respawn_backoff_max_ms, 30000,
	    100, 600000, "ms", R,
	    "Ceiling of the back-off between respawns of a crashing child."),
	PATH("pool", "child_path", C, child_path, "", 0, 0,
	     "The bygate-child binary; \"\" = the one next to bygated."),
	STR("pool", "user", C, pool_user, "bygate", 1, 0,
	    "When bygated runs as root, its children run as this user (never "
	    "root): no supplementary group, no capability, each child PID 1 "
	    "of its own PID namespace. It must exist (`make user` creates "
	    "\"bygate\"); bygated refuses to start otherwise. The child "
	    "binary, the plugins and workspace_dir must be reachable by it. "
	    "Ignored when bygated is not root (children keep its uid)."),
	STR("pool", "group", C, pool_group, "", 0, 0,
	    "Group of the children when bygated runs as root; \"\" = the "
	    "primary group of pool.user."),
	INT("pool", "crash_storm_deaths", C, crash_storm_deaths, 10, 1, 100000,
	    NULL, R,
	    "This many child deaths within crash_storm_window_ms open the "
	    "crash-storm breaker."),
	INT("pool", "crash_storm_window_ms", C, crash_storm_window_ms, 10000,
	    100, 3600000, "ms", R, "Window of the crash-storm breaker."),
	INT("pool", "crash_storm_pause_ms", C, crash_storm_pause_ms, 30000, 100,
	    3600000, "ms", R,
	    "While the breaker is open no child is respawned and nothing is "
	    "read for the agent types."),
	BOOL("pool", "sandbox", C, sandbox, 1, R,
	     "Each child applies a sandbox before it loads a handler, and "
	     "everything it starts inherits it: no new privileges, no core "
	     "dumps, and a seccomp filter that refuses privileged, "
	     "host-altering and cross-process system calls (mount, ptrace, "
	     "namespaces, modules, clocks...) with EPERM; see "
	     "docs/architecture.md, \"Sandbox\". A child that cannot apply "
	     "it (kernel without seccomp) refuses to serve. false runs "
	     "children without it. A change applies to the children started "
	     "after the SIGHUP (a new generation)."),

	BOOL("sandbox", "require", C, sandbox_require, 1, 0,
	     "Refuse to start when a protection the configuration asks for "
	     "is not available from the kernel (Landlock, seccomp, PID "
	     "namespaces, the pool user); false starts with a warning naming "
	     "what is missing. docs/security.md."),
	ENUM("sandbox", "profile", C, sandbox_defaults.profile,
	     BG_PROFILE_STRICT, profile_names, R,
	     "Default profile of an agent type: \"strict\" (a fresh process "
	     "per task confined to its session's workspace, the network "
	     "policy, the limits below, process tree killed at task end) or "
	     "\"trusted\" (the task runs in the child itself with the pool "
	     "user's rights and the base seccomp filter only; a warning at "
	     "start). An agent type's own sandbox = { profile = ...; } "
	     "overrides every key of this group."),
	ENUM("sandbox", "network", C, sandbox_defaults.network, BG_NET_NONE,
	     network_names, R,
	     "\"none\" (no sockets but Unix socketpairs), \"connect\" "
	     "(outgoing TCP to the agent type's connect_ports only, UDP for "
	     "DNS; no raw or packet sockets, no listening) or \"host\" (no "
	     "restriction; a warning at start)."),
	INT("sandbox", "memory_mb", C, sandbox_defaults.memory_mb, 1024, 0,
	    1048576, "MiB", R,
	    "Address space of each process of a task (RLIMIT_AS); a refused "
	    "allocation that ends the task fails it with RESOURCE_LIMIT. "
	    "0 = no limit."),
	INT("sandbox", "processes", C, sandbox_defaults.processes, 256, 0,
	    1000000, NULL, R,
	    "Processes a task may run at once (RLIMIT_NPROC, counted per "
	    "pool user: see docs/security.md); 0 = no limit."),
	INT("sandbox", "open_files", C, sandbox_defaults.open_files, 1024, 0,
	    1048576, NULL, R,
	    "Open descriptors per process of a task (RLIMIT_NOFILE); 0 = the "
	    "child's own limit."),
	INT("sandbox", "cpu_seconds", C, sandbox_defaults.cpu_seconds, 3600, 0,
	    31536000, "s", R,
	    "CPU time per process of a task (RLIMIT_CPU); over it the task "
	    "fails with RESOURCE_LIMIT. 0 = no limit."),
	INT("sandbox", "file_size_mb", C, sandbox_defaults.file_size_mb, 1024,
	    0, 1048576, "MiB", R,
	    "Largest file a task may write (RLIMIT_FSIZE); over it the task "
	    "fails with RESOURCE_LIMIT. 0 = no limit."),

	INT("sched", "window", C, sched_window, 32, 0, 10000, NULL, R,
	    "Most entries of an agent type one read takes beyond its free "
	    "places; those that cannot start at once go to the fleet's ready "
	    "set, where every worker picks the next by lane weight and "
	    "priority (docs/scheduling.md). 0 = no ready set: read only what "
	    "can start plus worker.fetch_count's prefetch."),
	INT("sched", "primer_share", C, sched_primer_share, 25, 0, 100, NULL, R,
	    "Percent of pool.size kept for primers (tasks whose header "
	    "metadata has \"bygate_role\": \"primer\"), at least 1 place and "
	    "at most pool.size - 1: primers go first, a primer read here "
	    "waits here for the next free child, and while one waits (here "
	    "or in the ready set), followers (\"bygate_role\": "
	    "\"follower\") leave these places free; with none waiting they "
	    "use every child (docs/scheduling.md, \"Primers and "
	    "followers\"). 0 = off: primers and followers are ordinary "
	    "tasks."),
	ENUM("sched", "lane_key", C, sched_lane_key, BG_LANE_KEY_METADATA,
	     lane_key_names, R,
	     "What puts a task in a lane: \"metadata.lane\" (the header's "
	     "metadata.lane, else the default lane \"\"), \"user_code\", "
	     "\"agent_type\" or \"session\"."),
	INT("sched", "priority_aging_ms", C, sched_priority_aging_ms, 1000, 1,
	    3600000, "ms", R,
	    "A waiting task's priority (metadata.priority, higher first) "
	    "rises by one for each this long it has waited, so low "
	    "priorities are never starved."),
	{ "sched", "lanes", BG_CONF_JSON, R, 0, 0, 0, "{}", NULL, NULL,
	  OFF_T(C, sched_lanes_json, char *),
	  "Per lane: { tenant_a = { weight = 2; max_running = 4; "
	  "fleet_max_running = 10; rate_limit = 50; rate_period_ms = 1000; "
	  "}; }. weight (default 1) is the lane's share of the pool while "
	  "lanes compete; a lane not listed has weight 1 and no limits." },

	INT("triggers", "poll_ms", C, triggers_poll_ms, 250, 10, 60000, "ms", R,
	    "How often this bygated looks for timer fires due, pause "
	    "changes and manual fires (a fire is late by at most this "
	    "much; every bygated polls, each fire time is sent once)."),
	{ "triggers", "timers", BG_CONF_JSON, R, 0, 0, 0, "{}", NULL, NULL,
	  OFF_T(C, triggers_timers_json, char *),
	  "Timer triggers by name: { nightly = { agent_type = \"reports\"; "
	  "content = \"run the nightly report\"; every = \"30s\" (or cron "
	  "= \"*/5 * * * *\"); max_running = 1; missed = \"skip\"; }; } "
	  "(docs/triggers.md)." },
	{ "triggers", "webhooks", BG_CONF_JSON, R | BG_CONF_SECRET, 0, 0, 0,
	  "{}", NULL, NULL, OFF_T(C, triggers_webhooks_json, char *),
	  "Webhook triggers by name, served as POST /hooks/<name> on the "
	  "HTTP port: { github = { agent_type = \"triage\"; secret_env = "
	  "\"GITHUB_HOOK_SECRET\"; max_running = 4; }; } "
	  "(docs/triggers.md)." },

	BOOL("trace", "enabled", C, trace_enabled, 1, R,
	     "Write trace spans (worker.execute, client.dispatch, "
	     "agent.dispatch_group, agent.return, agent.cancel), the trace "
	     "meta hash and the trace indexes of WIRE 9.2, as the "
	     "reference worker does unless BY_FRAMEWORK_TRACE_REDIS_ENABLED "
	     "is false (docs/operations.md, \"Traces\")."),
	INT("trace", "sample_percent", C, trace_sample_percent, 100, 0, 100,
	    NULL, R,
	    "Share of traces written, in percent: the reference's "
	    "BY_FRAMEWORK_TRACE_SAMPLE_RATE times 100 (default 1.0). The "
	    "choice is a hash of the trace id, so every worker of the fleet "
	    "keeps or drops a trace alike."),
	INT("trace", "ttl_s", C, trace_ttl_s, 900, 1, 604800, "s", R,
	    "TTL of trace keys (BY_FRAMEWORK_TRACE_TTL_SECONDS)."),
	INT("trace", "max_spans_per_trace", C, trace_max_spans, 1000, 1,
	    1000000, NULL, R,
	    "Spans this bygated writes for one trace at most; later ones are "
	    "dropped and counted."),
	INT("trace", "flush_ms", C, trace_flush_ms, 200, 10, 10000, "ms", R,
	    "Spans wait in memory at most this long and are written in one "
	    "pipeline per flush, off the task path."),
	INT("trace", "max_kept_spans", C, trace_max_kept, 20000, 1, 10000000,
	    NULL, R,
	    "Spans kept in memory between two flushes at most (about 1 KiB "
	    "each: 20,000 is ten flushes' worth at 5,000 tasks/s); more are "
	    "dropped and counted (bygate_trace_spans_dropped_total), so "
	    "that a slow or absent Redis cannot grow bygated's memory."),
	ENUM("history", "backend", C, history_backend, BG_HISTORY_REDIS,
	     history_backend_names, R,
	     "Where each session's conversation is kept (docs/history.md): "
	     "\"redis\", a bounded list per session written in the same "
	     "finish as the task's other writes, shared by the fleet; or "
	     "\"off\"."),
	INT("history", "max_messages", C, history_max_messages, 200, 1, 100000,
	    NULL, R,
	    "Messages kept per session (the oldest go first); the list "
	    "lives as long as the session's registry (7 days)."),
	BOOL("metrics", "history", C, history_enabled, 1, 0,
	     "Take part in the fleet's metrics history (WIRE 9.3): the one "
	     "process holding by_framework:obs:collector_lock (a bygated or "
	     "a Python worker) adds a point to by_framework:obs:history "
	     "every history_interval_s."),
	INT("metrics", "history_interval_s", C, history_interval_s, 5, 1, 3600,
	    "s", 0,
	    "Interval of the metrics history points "
	    "(BY_FRAMEWORK_METRICS_HISTORY_INTERVAL_SECONDS); the lock lives "
	    "max(3 x interval, 15) s."),

	PATH("paths", "state_dir", C, state_dir, "/var/lib/bygate", 1, 0,
	     "LMDB journal and lock file."),
	PATH("paths", "workspace_dir", C, workspace_dir,
	     "/var/lib/bygate/workspaces", 1, 0,
	     "Root of the per-session workspaces."),
	ENUM("paths", "durability", C, durability, BG_DURABILITY_PROCESS,
	     durability_names, 0,
	     "LMDB journal durability: \"process\" (MDB_NOSYNC: survives any "
	     "process crash; after an unclean OS restart the journal is moved "
	     "aside and Redis recovery takes over), \"sync\" (fsync per "
	     "loop turn) or \"none\" (no journal at all: finishes are not "
	     "journaled and a restart waits out the lease TTL; for "
	     "benchmarks only)."),
	I64("paths", "history_max", history_max, 100000, 0, 100000000, NULL, R,
	    "Recent finishes kept in the LMDB history (bygate-state)."),
	I64("paths", "session_idle_ttl_s", session_idle_ttl_s, 604800, 60,
	    31536000, "s", R,
	    "Session workspaces unused this long are removed."),

	ENUM("log", "level", C, log_level, BG_LOG_INFO, level_names, R,
	     "\"debug\", \"info\", \"warn\" or \"error\"."),
	ENUM("log", "format", C, log_format, BG_LOG_TEXT, format_names, R,
	     "\"text\" or \"json\" (one object per line)."),
	PATH("log", "file", C, log_file, "", 0, R,
	     "Log file, reopened on SIGUSR1; \"\" = stderr."),
	PATH("log", "events_file", C, log_events_file, "", 0, R,
	     "Task event log: one JSON object per line for each task queued, "
	     "started, retried and ended (docs/operations.md, \"The event "
	     "log\"); read by `bygate events` and `bygate top --replay`. "
	     "Reopened on SIGUSR1. \"\" = none."),
	INT("log", "events_max_mb", C, log_events_max_mb, 64, 1, 65536, "MiB",
	    R,
	    "The event log is rotated once it reaches this size (file -> "
	    "file.1 -> file.2 ...)."),
	INT("log", "events_keep", C, log_events_keep, 3, 0, 1000, NULL, R,
	    "Rotated event log files kept (file.1 .. file.N); 0 = the full "
	    "file is removed."),

	INT("http", "port", C, http_port, 0, 0, 65535, NULL, 0,
	    "Port of /readyz, /metrics and /status; 0 = no HTTP listener."),
	STR("http", "bind", C, http_bind, "127.0.0.1", 1, 0,
	    "Address the HTTP listener binds."),
};
const size_t bg_conf_nkeys = sizeof(bg_conf_keys) / sizeof(bg_conf_keys[0]);

const struct bg_conf_key bg_conf_agent_keys[] = {
	STR(AG, "name", A, name, "", 1, R | BG_CONF_REQUIRED,
	    "Agent type served (stream ctrl:agent_type:<name>). Unique, at "
	    "most 128 bytes, no '/', whitespace, braces or control "
	    "characters."),
	ENUM(AG, "handler", A, handler, BG_HANDLER_PLUGIN, handler_names, R,
	     "\"plugin\" (a shared object run inside the child) or \"exec\" "
	     "(a program in any language speaking docs/handler-protocol.md "
	     "on its stdin and stdout)."),
	PATH(AG, "plugin", A, plugin, "", 0, R,
	     "The plugin .so; required with handler = \"plugin\"."),
	STR(AG, "command", A, command, "", 0, R,
	    "handler = \"exec\": the program and its arguments, e.g. "
	    "\"python3 agents/planner.py --fast\". Split into words at blanks "
	    "with '...' and \"...\" quoting; no shell (write \"sh -c '...'\" "
	    "for one). Run in the directory of this file, so relative paths in "
	    "it are relative to the file; a program name without '/' is "
	    "looked up in PATH."),
	ENUM(AG, "mode", A, mode, BG_EXEC_PERSISTENT, mode_names, R,
	     "handler = \"exec\": \"persistent\" (one long-lived program per "
	     "child, started on the first task) or \"per_task\" (a fresh "
	     "program for every task)."),
	INT(AG, "max_inflight", A, max_inflight, 1, 1, 64, NULL, R,
	    "handler = \"exec\", mode \"persistent\": tasks one program may "
	    "run at once (every protocol line names its task)."),
	INT(AG, "max_line_bytes", A, max_line_bytes, 1048576, 1024, 268435456,
	    "bytes", R,
	    "handler = \"exec\": longest protocol line in either direction; "
	    "a longer line from the program fails its tasks."),
	INT(AG, "max_attempts", A, max_attempts, 1, 1, 100, NULL, R,
	    "Attempts per execution (1 = no retry after a crash, timeout or "
	    "handler error)."),
	INT(AG, "timeout_ms", A, timeout_ms, 600000, 0, 604800000, "ms", R,
	    "Wall-clock limit of one attempt (SIGTERM to the child's process "
	    "group, SIGKILL 2 s later, FAILED with TIMEOUT; with max_inflight "
	    "> 1 a cancel line to the program first, the kill only if it has "
	    "not answered 2 s later); 0 = none, which lets a hung handler "
	    "hold its child for ever (the default is 10 minutes)."),
	INT(AG, "retry_backoff_ms", A, retry_backoff_ms, 1000, 0, 3600000, "ms",
	    R,
	    "Delay before the second attempt, doubled for each further one, "
	    "with +/-20 % jitter, at most retry_backoff_max_ms."),
	INT(AG, "retry_backoff_max_ms", A, retry_backoff_max_ms, 60000, 0,
	    3600000, "ms", R, "Ceiling of the retry delay."),
	INT(AG, "max_running", A, max_running, 0, 0, 100000, NULL, R,
	    "Tasks of this agent type running at once on this worker; 0 = "
	    "as many as the pool holds."),
	INT(AG, "fleet_max_running", A, fleet_max_running, 0, 0, 1000000, NULL,
	    R,
	    "Tasks of this agent type running at once across every bygated "
	    "of the group (a Redis-held count whose places expire with a "
	    "dead worker's lease); 0 = no limit."),
	INT(AG, "rate_limit", A, rate_limit, 0, 0, 1000000, NULL, R,
	    "Task starts of this agent type allowed per rate_period_ms across "
	    "every bygated (a Redis-side GCRA); a task over the limit waits, "
	    "it is not failed. 0 = no limit."),
	INT(AG, "rate_period_ms", A, rate_period_ms, 1000, 1, 86400000, "ms", R,
	    "The period of rate_limit."),
	{ AG, "sandbox", BG_CONF_JSON, R, 0, 0, 0, "{}", NULL, NULL,
	  OFF_T(A, sandbox_json, char *),
	  "This agent type's sandbox: any key of the sandbox group (profile, "
	  "network, memory_mb, processes, open_files, cpu_seconds, "
	  "file_size_mb) overriding its default, plus connect_ports = [443, "
	  "...] (network = \"connect\") and read_paths = [\"/opt/models\", "
	  "...] (read-only for its tasks; relative paths are resolved against "
	  "this file's directory). `bygated -T` prints the effective "
	  "sandbox." },
	{ AG, "env", BG_CONF_JSON, R | BG_CONF_SECRET, 0, 0, 0, "{}", NULL,
	  NULL, OFF_T(A, env_json, char *),
	  "Environment variables of this agent type's handler programs and "
	  "plugin tasks, e.g. { OPENAI_API_KEY = \"...\"; }; nothing of "
	  "bygated's own environment reaches them." },
	{ AG, "options", BG_CONF_JSON, R, 0, 0, 0, "{}", NULL, NULL,
	  OFF_T(A, options_json, char *),
	  "Any group; handed to the handler as a JSON object. Integers "
	  "beyond 32 bits need an L suffix (libconfig 1.5)." },
};
const size_t bg_conf_nagent_keys =
	sizeof(bg_conf_agent_keys) / sizeof(bg_conf_agent_keys[0]);

const struct bg_conf_env bg_conf_envs[] = {
	{ "REDIS_HOST", NULL, "redis", "host" },
	{ "REDIS_PORT", NULL, "redis", "port" },
	{ "REDIS_DATABASE", "REDIS_DB", "redis", "db" },
	{ "REDIS_USERNAME", NULL, "redis", "username" },
	{ "REDIS_PASSWORD", NULL, "redis", "password" },
	{ "REDIS_CLUSTER_NODES", NULL, "redis", "cluster_nodes" },
	{ "BYAI_WORKER_CONCURRENCY", NULL, "pool", "size" },
	{ "BYAI_WORKER_FETCH_COUNT", NULL, "worker", "fetch_count" },
	{ "BYAI_WORKER_HEALTH_PORT", NULL, "http", "port" },
	{ "BY_FRAMEWORK_TRACE_TTL_SECONDS", NULL, "trace", "ttl_s" },
	{ "BY_FRAMEWORK_TRACE_MAX_SPANS_PER_TRACE", NULL, "trace",
	  "max_spans_per_trace" },
	{ "BY_FRAMEWORK_METRICS_HISTORY_INTERVAL_SECONDS", NULL, "metrics",
	  "history_interval_s" },
};
const size_t bg_conf_nenvs = sizeof(bg_conf_envs) / sizeof(bg_conf_envs[0]);

int bg_conf_fail(struct bg_conf_err *e, const char *fmt, ...)
{
	if (e && e->buf && e->len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->buf, e->len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const struct bg_conf_key *bg_conf_key_find(const char *group, const char *name)
{
	bool agent = strcmp(group, BG_CONF_AGENT_GROUP) == 0;
	const struct bg_conf_key *keys = agent ? bg_conf_agent_keys
					       : bg_conf_keys;
	size_t n = agent ? bg_conf_nagent_keys : bg_conf_nkeys;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(keys[i].group, group) &&
		    !strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

const char *bg_conf_enum_name(const struct bg_conf_key *k, int value)
{
	for (const struct bg_conf_name *e = k->names; e->name; e++)
		if (e->value == value)
			return e->name;
	return "?";
}

int bg_conf_enum_value(const struct bg_conf_key *k, const char *name,
		       int *value)
{
	for (const struct bg_conf_name *e = k->names; e->name; e++)
		if (!strcmp(e->name, name)) {
			*value = e->value;
			return 0;
		}
	return -1;
}

int64_t bg_conf_get_int(const struct bg_conf_key *k, const void *base)
{
	const char *p = (const char *)base + k->offset;
	if (k->type == BG_CONF_INT64)
		return *(const int64_t *)p;
	if (k->type == BG_CONF_BOOL)
		return *(const bool *)p;
	return *(const int *)p;
}

void bg_conf_set_int(const struct bg_conf_key *k, void *base, int64_t v)
{
	char *p = (char *)base + k->offset;
	if (k->type == BG_CONF_INT64)
		*(int64_t *)p = v;
	else if (k->type == BG_CONF_BOOL)
		*(bool *)p = v != 0;
	else
		*(int *)p = (int)v;
}

const char *bg_conf_get_str(const struct bg_conf_key *k, const void *base)
{
	const char *s = *(char *const *)((const char *)base + k->offset);
	return s ? s : "";
}

void bg_conf_put_str(const struct bg_conf_key *k, void *base, char *s)
{
	char **p = (char **)((char *)base + k->offset);
	free(*p);
	*p = s;
}

int bg_conf_check_int(const struct bg_conf_key *k, int64_t v, char *msg,
		      size_t n)
{
	if (v < k->min || v > k->max) {
		snprintf(msg, n,
			 "%lld is out of range (allowed %lld..%lld%s%s)",
			 (long long)v, (long long)k->min, (long long)k->max,
			 k->unit ? " " : "", k->unit ? k->unit : "");
		return -1;
	}
	if ((k->flags & BG_CONF_POW2) && (v & (v - 1)) != 0) {
		snprintf(msg, n, "%lld is not a power of two", (long long)v);
		return -1;
	}
	return 0;
}

int bg_conf_check_str(const struct bg_conf_key *k, const char *s, char *msg,
		      size_t n)
{
	if (strlen(s) < (size_t)k->min) {
		snprintf(msg, n, "must not be empty");
		return -1;
	}
	return 0;
}

static bool is_string_type(enum bg_conf_type t)
{
	return t == BG_CONF_STR || t == BG_CONF_PATH || t == BG_CONF_JSON;
}

int bg_conf_set_defaults(const struct bg_conf_key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const struct bg_conf_key *k = &keys[i];
		if (!is_string_type(k->type)) {
			bg_conf_set_int(k, base, k->def_int);
			continue;
		}
		char *s = strdup(k->def_str);
		if (s == NULL)
			return -ENOMEM;
		bg_conf_put_str(k, base, s);
	}
	return 0;
}

void bg_conf_free_strings(const struct bg_conf_key *keys, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++)
		if (is_string_type(keys[i].type))
			bg_conf_put_str(&keys[i], base, NULL);
}
