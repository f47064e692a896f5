/* conf/config.h - bygate configuration: one declarative table (conf/table.c)
 * drives parsing of the libconfig file, defaults, bounds, validation, the
 * by-framework environment overrides (WIRE 1.1), `bygated -T` and the
 * generated commented etc/bygate.conf. Shared by bygated and the bygate
 * client, so both always agree on address, database and key schema.
 * This component never logs and never exits: errors come back as text. */
#ifndef BG_CONF_CONFIG_H
#define BG_CONF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum bg_key_schema { BG_SCHEMA_V1 = 1, BG_SCHEMA_V2 = 2 };
enum bg_log_format { BG_LOG_TEXT = 0, BG_LOG_JSON = 1 };
enum bg_log_level { BG_LOG_DEBUG = 0, BG_LOG_INFO, BG_LOG_WARN, BG_LOG_ERROR };
enum bg_handler_kind { BG_HANDLER_PLUGIN = 1, BG_HANDLER_EXEC = 2 };
enum bg_exec_mode { BG_EXEC_PERSISTENT = 0, BG_EXEC_PER_TASK = 1 };
/* What puts a task in a lane (sched.lane_key, docs/scheduling.md). */
enum bg_lane_key {
	BG_LANE_KEY_METADATA = 0, /* header metadata.lane */
	BG_LANE_KEY_USER_CODE = 1,
	BG_LANE_KEY_AGENT_TYPE = 2,
	BG_LANE_KEY_SESSION = 3,
};
/* Per agent type isolation (docs/security.md). */
enum bg_sandbox_profile { BG_PROFILE_STRICT = 0, BG_PROFILE_TRUSTED = 1 };
enum bg_net_policy { BG_NET_NONE = 0, BG_NET_CONNECT = 1, BG_NET_HOST = 2 };
#define BG_SANDBOX_MAX_PORTS 64

/* An agent type's sandbox: the `sandbox` group gives the defaults, an agent
 * type's own `sandbox = { ... }` overrides them (conf/sandbox.c). Limits
 * are 0 for "no limit". */
struct bg_sandbox_conf {
	enum bg_sandbox_profile profile;
	enum bg_net_policy network;
	int memory_mb;	  /* address space of a task's processes, MiB */
	int processes;	  /* processes of the task (RLIMIT_NPROC) */
	int open_files;	  /* descriptors per process (RLIMIT_NOFILE) */
	int cpu_seconds;  /* CPU time per process (RLIMIT_CPU) */
	int file_size_mb; /* largest file a task writes (RLIMIT_FSIZE) */
};

/* history.backend (docs/history.md) */
enum bg_history_backend {
	BG_HISTORY_REDIS = 0,
	BG_HISTORY_OFF = 1,
};

enum bg_durability {
	BG_DURABILITY_PROCESS = 0,
	BG_DURABILITY_SYNC = 1,
	BG_DURABILITY_NONE = 2, /* no LMDB at all: benchmarks only */
};

struct bg_agent_type_conf {
	char *name;
	enum bg_handler_kind handler; /* "plugin" or "exec" */
	char *plugin;		      /* plugin: absolute path of the .so */
	char *options_json;	      /* the `options` group as a JSON object */
	char *command;		      /* exec: program and arguments, split by
					 bg_config_command_argv; run in the
					 configuration file's directory */
	enum bg_exec_mode mode;	      /* exec: default persistent */
	int max_inflight;	      /* exec: tasks at once in one program */
	int max_line_bytes;	      /* exec: longest protocol line */
	int max_attempts;	      /* default 1 */
	int timeout_ms;		      /* 0 = none */
	int retry_backoff_ms;	      /* first retry delay, doubled each time */
	int retry_backoff_max_ms;     /* its ceiling */
	int max_running;	      /* on this worker; 0 = the pool */
	int fleet_max_running;	      /* across the fleet; 0 = none */
	int rate_limit;		      /* starts per rate_period_ms; 0 = none */
	int rate_period_ms;
	char *sandbox_json; /* the agent type's `sandbox` overrides */
	char *env_json;	    /* `env`: variables for its handler */
	/* Resolved by the loader from the defaults and sandbox_json: */
	struct bg_sandbox_conf sandbox;
	int connect_ports[BG_SANDBOX_MAX_PORTS]; /* network = "connect" */
	int n_connect_ports;
	char *read_paths_json; /* JSON array of absolute paths, read-only */
};

struct bg_config {
	char *path; /* absolute path of the file loaded */

	/* redis */
	char *redis_host;
	int redis_port;
	int redis_db;
	char *redis_username; /* "" = none */
	char *redis_password; /* "" = none */
	int redis_connect_timeout_ms;
	int redis_command_timeout_ms;  /* per-request deadline */
	int redis_reconnect_max_ms;    /* back-off ceiling */
	enum bg_key_schema key_schema; /* resolved by the WIRE 1.1 rule */
	/* 1 under Redis Cluster: REDIS_MODE, else a non-empty
	 * REDIS_CLUSTER_HOST, else redis.mode (conf/env.c) */
	int redis_cluster;
	char *redis_cluster_nodes; /* seeds "host:port,..."; "" = redis.host */

	/* worker */
	char *worker_id;      /* default "bygate-<hostname>" */
	char *consumer_group; /* default "agent_engines" */
	int fetch_count;      /* prefetch beyond free capacity, default 10 */
	int block_ms;	      /* XREADGROUP BLOCK, default 2000 */
	int64_t read_budget_bytes; /* entries read, not yet run: 32 MiB */
	int lease_ttl_s;	   /* 30 */
	int heartbeat_interval_ms; /* 5000 */
	int reclaim_min_idle_ms;   /* 60000 */
	int64_t max_entry_age_s;   /* 604800 */
	int max_deliveries;	   /* 10 */
	int drain_timeout_ms;	   /* SIGTERM drain bound, 30000 */
	int slow_task_ms;	   /* INFO log above this, 10000 */
	/* traces (WIRE 9.2, supervisor/trace.h) */
	bool trace_enabled;
	int trace_sample_percent;
	int trace_ttl_s;
	int trace_max_spans;
	int trace_flush_ms;
	int trace_max_kept; /* spans kept between flushes at most */
	/* each session's conversation (docs/history.md) */
	int history_backend; /* enum bg_history_backend */
	int history_max_messages;
	/* the fleet metrics history (WIRE 9.3, supervisor/history.h) */
	bool history_enabled;
	int history_interval_s;
	int lease_wait_s;	   /* wait for a lease held elsewhere, 90 */
	int reconcile_interval_ms; /* own-PEL reconcile and reclaim, 30000 */
	int cancel_grace_ms;	   /* cancel flag -> SIGTERM -> SIGKILL, 5000 */
	int timer_poll_ms;	   /* due delayed RESUMEs moved, 100 */
	int idempotency_ttl_s;	   /* idempotency keys kept, 300 */

	/* sched (docs/scheduling.md) */
	int sched_window; /* entries per agent type beyond free places */
	enum bg_lane_key sched_lane_key;
	int sched_priority_aging_ms;
	int sched_primer_share; /* percent of the pool kept for primers */
	char *sched_lanes_json; /* { lane = { weight; max_running; ... } } */

	/* pool */
	int pool_size;		   /* children, default 4 */
	int max_tasks_per_child;   /* recycle after (with jitter), 0 = never */
	int64_t ring_bytes;	   /* per ring, power of two, default 1 MiB */
	int64_t max_message_bytes; /* default 16 MiB */
	int64_t max_events_per_task;
	int64_t max_event_bytes_per_task;
	int respawn_backoff_max_ms;
	char *child_path; /* bygate-child binary; default next to bygated */
	char *pool_user;  /* children run as this user (bygated root) */
	char *pool_group; /* and group; "" = the user's primary group */
	int crash_storm_deaths;	   /* child deaths ... */
	int crash_storm_window_ms; /* ... within this window open the breaker */
	int crash_storm_pause_ms;  /* respawning paused this long */
	bool sandbox; /* children apply their sandbox (child/sandbox.c) */
	bool sandbox_require; /* refuse to start without a protection */
	struct bg_sandbox_conf sandbox_defaults; /* the `sandbox` group */

	/* triggers (conf/triggers.h, docs/triggers.md) */
	int triggers_poll_ms;
	char *triggers_timers_json;   /* { name = { ... } } as JSON */
	char *triggers_webhooks_json; /* { name = { ... } } as JSON */

	/* paths */
	char *state_dir;
	char *workspace_dir;
	enum bg_durability durability; /* LMDB: process (NOSYNC) or sync */
	int64_t history_max;	       /* recent finishes kept in LMDB */
	int64_t session_idle_ttl_s;    /* idle session workspaces removed */

	/* logging */
	enum bg_log_level log_level;
	enum bg_log_format log_format;
	char *log_file;	       /* "" = stderr */
	char *log_events_file; /* task event log (eventlog.h); "" = off */
	int log_events_max_mb; /* rotated at this size */
	int log_events_keep;   /* rotated files kept */

	/* http */
	int http_port; /* 0 = off */
	char *http_bind;

	struct bg_agent_type_conf *agent_types;
	int n_agent_types;

	/* bygated's chain of replaced configurations (SIGHUP), freed at exit;
	 * not set by the loader. */
	struct bg_config *next_old;
};

#define BG_CONFIG_DEFAULT_PATH "/etc/bygate/bygate.conf"

/* The file to load when none is given on the command line: $BYGATE_CONFIG
 * if set and non-empty, else BG_CONFIG_DEFAULT_PATH. */
const char *bg_config_default_path(void);

/* Load `path`: defaults, then the file, then environment overrides, then
 * validation. Relative paths in the file are resolved against the file's
 * directory. path NULL loads no file (defaults and environment only, no
 * agent type required: what a client needs); cfg->path is then "".
 * On failure returns -1, leaves *out zeroed and writes "file:line: message"
 * (or a message naming the key or variable) to err. The plugin files are
 * not opened: their existence is for the caller to check. */
int bg_config_load(const char *path, struct bg_config *out, char *err,
		   size_t errlen);
void bg_config_free(struct bg_config *cfg);

/* For SIGHUP: 0 when every key that differs between old and next may be
 * reloaded; else -1 and err names the first key that needs a restart. */
int bg_config_reload_check(const struct bg_config *old,
			   const struct bg_config *next, char *err,
			   size_t errlen);

/* Print the effective configuration in libconfig syntax (bygated -T); it
 * re-loads to the same configuration, except that a non-empty password is
 * printed as "***". */
void bg_config_dump(const struct bg_config *cfg, FILE *f);

/* Print a commented template of every key (what etc/bygate.conf is made
 * of); it loads as the defaults with one example agent type. */
void bg_config_write_template(FILE *f);

/* Print the key reference as a Markdown table (docs/configuration.md). */
void bg_config_write_markdown(FILE *f);

const struct bg_agent_type_conf *bg_config_agent_type(const struct bg_config *c,
						      const char *name);

/* Tasks one child may run at once: the largest max_inflight of a
 * persistent exec agent type, 1 when there is none. */
int bg_config_max_share(const struct bg_config *c);

/* The effective sandbox of agent type t as a JSON object (malloc'd into
 * *out): profile, network, connect_ports, read_paths, the limits, and
 * agent_dir (<workspace_dir>/<name>); with_env adds its `env` object
 * (secrets: for the child, never for printing). 0, or -1 out of memory. */
int bg_config_sandbox_json(const struct bg_config *cfg,
			   const struct bg_agent_type_conf *t, bool with_env,
			   char **out);

/* Split an exec `command` into its words, as a JSON array of strings in
 * *argv_json (malloc'd). Words are separated by blanks; '...' quotes
 * literally; "..." quotes with \" and \\ as escapes; outside quotes a
 * backslash escapes the next character. Nothing is expanded: there is no
 * shell, and an unquoted | & ; < > ( ) $ or ` is refused. 0, or -1 with
 * the reason in err (-1 without a message when out of memory). */
int bg_config_command_argv(const char *command, char **argv_json, char *err,
			   size_t errlen);

#endif
