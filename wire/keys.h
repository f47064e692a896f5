/* wire/keys.h - every Redis key bygate or its client touches (WIRE 1.2),
 * built by one function under the v1 or v2 schema, and the schema selection
 * rule of WIRE 1.1. A Python client and bygate disagreeing on a key is a
 * silent outage: no other code may format a key by hand. */
#ifndef BG_WIRE_KEYS_H
#define BG_WIRE_KEYS_H

#include "common/buf.h"
#include "conf/config.h" /* enum bg_key_schema */

/* The ids each kind takes are listed as (id, id2, id3); unused ids must be
 * empty. S = session id, W = worker id, T = agent type, G = task group id,
 * L = lane. */
enum bg_key_kind {
	BG_KEY_AGENT_TYPE_CTRL,	   /* (T) stream; no hash tag under v2 */
	BG_KEY_WORKER_CTRL,	   /* (W) stream */
	BG_KEY_SESSION_DATA,	   /* (S) data stream */
	BG_KEY_SESSION_CHECKPOINT, /* (S, consumer name) */
	BG_KEY_SESSION_REGISTRY,   /* (S) execution records hash */
	BG_KEY_SESSION_KV,	   /* (S) bygate's session kv hash */
	BG_KEY_SESSION_HISTORY,	   /* (S) the conversation, a LIST of JSON
				      messages (docs/history.md) */
	BG_KEY_TASK_GROUP,	   /* (G) */
	BG_KEY_TASK_GROUP_RESULTS, /* (G) */
	BG_KEY_KNOWN_WORKERS,	   /* () */
	BG_KEY_WORKER_AGENT_TYPES, /* (W) declared agent types */
	BG_KEY_AGENT_TYPE_MEMBERS, /* (T) routing set */
	BG_KEY_AGENT_TYPE_DENIED,  /* (T) denylist */
	BG_KEY_WORKER_ONLINE, /* (W) lease; W = "*" gives the SCAN pattern */
	BG_KEY_WORKER_ADMIN,  /* (W) */
	BG_KEY_ADMIN_WORKERS, /* () */
	BG_KEY_WORKER_STATUS, /* (W) counters */
	BG_KEY_WORKER_EXECUTIONS,	 /* (W) history index */
	BG_KEY_WORKER_ACTIVE_INDEX,	 /* (W) active execution index */
	BG_KEY_WORKER_ACTIVE_SNAPSHOTS,	 /* (W) */
	BG_KEY_WORKER_HISTORY_SNAPSHOTS, /* (W) */
	BG_KEY_AGENT_CONFIG_SNAPSHOT,	 /* (execution id) */
	BG_KEY_PLUGIN_RELOAD_ACK,	 /* (reload id) */
	BG_KEY_WAKEUP,			 /* () */
	BG_KEY_WAKEUP_RESULT,		 /* (execution id) */
	BG_KEY_PENDING_DELIVERIES,	 /* () */
	BG_KEY_DEADLETTER,		 /* () */
	BG_KEY_CIRCUIT,			 /* (T) */
	BG_KEY_FALLBACK,		 /* (T) */
	BG_KEY_QUOTA,			 /* (user code) */
	BG_KEY_WAKEUP_DEDUPE, /* (T, user code, region); empty id2/id3 -> "_" */
	BG_KEY_READY,	      /* (T, part): bygate's ready set of T (supervisor/
			 ready.h); under v2 in the slot of T's stream */
	/* bygate's fleet limits (supervisor/gate.h); L = lane. Under v2 they
	 * all share the hash tag {limits}: one script takes a task's places
	 * and tokens of its agent type and its lane together. */
	BG_KEY_FLEET_TYPE_RUNNING, /* (T) ZSET place -> expiry ms */
	BG_KEY_FLEET_LANE_RUNNING, /* (L) ZSET place -> expiry ms */
	BG_KEY_FLEET_TYPE_RATE,	   /* (T) STRING GCRA arrival time, us */
	BG_KEY_FLEET_LANE_RATE,	   /* (L) STRING GCRA arrival time, us */
	/* (T) bygate's delayed RESUMEs to executions of agent type T
	 * (supervisor/timers.h): ZSET entry JSON -> due ms; under v2 in the
	 * slot of T's stream, so one script moves a due one to the stream */
	BG_KEY_TIMERS,
	/* (T, idempotency key) bygate's idempotency claim of a send to agent
	 * type T (docs/triggers.md): HASH message_id, session_id,
	 * execution_id, at_ms, and entry (the first stream entry that ran);
	 * under v2 in the slot of T's stream */
	BG_KEY_IDEMPOTENCY,
	/* bygate's triggers (docs/triggers.md), under v2 all in the slot
	 * {bygate_triggers}: the SET of trigger names, each trigger's state
	 * HASH (N), and the ZSET of its runs still active (N) */
	BG_KEY_TRIGGERS,
	BG_KEY_TRIGGER,
	BG_KEY_TRIGGER_ACTIVE,
	/* Traces (WIRE 9.2; supervisor/trace.h): the meta HASH and span LIST
	 * of trace (trace id), under v2 in the trace's slot; the index ZSETs
	 * of a session (S), worker (W) and agent type (T), untagged. Under
	 * v1 they are Python's by_framework:trace:* keys, not byai_gateway:. */
	BG_KEY_TRACE_META,
	BG_KEY_TRACE_SPANS,
	BG_KEY_TRACE_IDX_SESSION,
	BG_KEY_TRACE_IDX_WORKER,
	BG_KEY_TRACE_IDX_AGENT,
	/* () the fleet metrics collector's lock and history (WIRE 9.3,
	 * supervisor/history.h): by_framework:obs:*, the same under v1/v2 */
	BG_KEY_OBS_COLLECTOR_LOCK,
	BG_KEY_OBS_HISTORY,
	/* (slot tag, cluster/slot.h bg_slot_tag) under Redis Cluster, the
	 * HASH of a slot that records which parts of split finishes were
	 * applied there (supervisor/finish_parts.h): field = stream and
	 * entry id */
	BG_KEY_FINISH_GUARD,
	/* (agent type, message id) under Redis Cluster, a trigger's fire
	 * sent to the agent type's stream (in its slot): the entry's id
	 * (supervisor/trigger_outbox.h) */
	BG_KEY_TRIGGER_SENT,
	BG_KEY__COUNT
};

/* Append the key of `kind` under `schema` to out. Required ids must be
 * non-empty and unused ids empty (BG_KEY_WAKEUP_DEDUPE's id2/id3 may be
 * empty and are then written as "_"). Ids are copied verbatim. 0, -EINVAL
 * (bad schema/kind/ids; out unchanged), -ENOMEM. */
int bg_key_build(struct bg_buf *out, enum bg_key_schema schema,
		 enum bg_key_kind kind, struct bg_str id, struct bg_str id2,
		 struct bg_str id3);

/* WIRE 1.1: env REDIS_KEY_SCHEMA_VERSION when set (non-NULL: must be "v1" or
 * "v2", anything else, "" included, is -EINVAL); else v2 when
 * REDIS_CLUSTER_HOST is non-empty; else `configured` when non-NULL ("v1" or
 * "v2", else -EINVAL); else v1. Pass getenv() results; 0 with *out set. */
int bg_key_schema_select(const char *env_version, const char *env_cluster_host,
			 const char *configured, enum bg_key_schema *out);

#endif
