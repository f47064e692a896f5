/* ipc/record.h - the record kinds that cross the rings and the packing of
 * their payloads: a counted list of length-prefixed byte strings
 * (u32 count, then per field u32 length + bytes, little-endian host order),
 * i.e. one command of common/cmdlist.h.
 * Every payload has a fixed field count per kind; unpacking validates the
 * count and every length against the payload size. */
#ifndef BG_IPC_RECORD_H
#define BG_IPC_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum bg_rec_kind {
	BG_REC_PAD = 0,
	/* down: supervisor -> child */
	BG_REC_CONFIG = 1, /* tag 0; [count, then enum bg_conf_type_field
			      per agent type] */
	BG_REC_TASK = 2,   /* tag = task tag; enum bg_task_field */
	BG_REC_CANCEL = 3, /* tag = task tag; [reason, mode] */
	BG_REC_STOP = 4,   /* tag 0; finish the current task, then exit */
	/* up: child -> supervisor */
	BG_REC_HELLO = 16, /* tag 0; [pid, handler names] after CONFIG loaded */
	BG_REC_EVENT = 17, /* tag; enum bg_event_field */
	BG_REC_RESULT = 18, /* tag; enum bg_result_field; ends the task */
	BG_REC_LOG = 19,    /* tag (0 = child itself); [level, text] */
	BG_REC_FATAL = 20,  /* tag 0; [text]: child cannot serve, will exit */
	BG_REC_CALL = 21,   /* tag; enum bg_call_field: an operation that needs
			       bygated (kv, call_agent, dispatch_group,
			       ask_user); answered by exactly one REPLY */
	/* down */
	BG_REC_REPLY = 5, /* tag; enum bg_reply_field */
};

/* BG_REC_CALL: op is "kv_get", "kv_set", "call_agent", "dispatch_group"
 * or "ask_user"; args is a JSON object:
 *   kv_get          {"key": str}
 *   history         {"limit": int 1..1000 (absent: 20)}
 *   kv_set          {"key": str, "value": any JSON}
 *   call_agent      {"target_agent_type": str, "content": str | array,
 *                    "wait_for_reply": bool (default true),
 *                    "extra_payload": obj, "metadata": obj,
 *                    "route_policy": str (default FAIL_FAST; SEND_ANYWAY,
 *                    WAKE_AND_WAIT, WAKE_AND_QUEUE, QUEUE_ONLY: WIRE 7),
 *                    "timeout_ms": int (WAKE_AND_WAIT's wait, default
 *                    30000), "region": str, "priority": int}
 *   dispatch_group  {"tasks": [{"target_agent_type", "content",
 *                    "extra_payload"?, "metadata"?}], "wait_for_reply": bool}
 *   ask_user        {"prompt": str | obj}
 * BG_REC_REPLY result (JSON object):
 *   kv_get          {"found": bool, "value": any}
 *   kv_set          {"ok": true}
 *   call_agent      WIRE 6.6: {"status":"QUEUED","message_id",
 *                    "parent_message_id","target_agent_type"} (the type
 *                    after a fallback; WAKE_AND_QUEUE / QUEUE_ONLY add
 *                    "route_status":"QUEUE_PENDING") or
 *                   {"status":"FAILED","message_id":"","error","error_code"};
 *                    WAKE_AND_WAIT replies when decided (<= timeout_ms)
 *   dispatch_group  {"status":"GROUP_QUEUED","task_group_id",
 *                    "dispatched_tasks":[{"message_id","target_agent_type"}]}
 *   ask_user        {"status":"WAITING_USER"}
 *   any, on error   {"error": str, "error_code": str}
 * Writes are applied in the attempt's finish transaction (the outbox,
 * DESIGN 4); kv_get sees this attempt's own buffered sets. */
enum bg_call_field { BG_CF_OP, BG_CF_ID, BG_CF_ARGS, BG_CF__COUNT };
enum bg_reply_field { BG_YF_ID, BG_YF_RESULT, BG_YF__COUNT };

/* BG_REC_CONFIG: field 0 = number of agent types (decimal); then per agent
 * type the BG_CONF_FIELDS_PER_TYPE fields of enum bg_conf_type_field. */
enum bg_conf_type_field {
	BG_KF_NAME,	    /* agent type name */
	BG_KF_KIND,	    /* handler kind: "plugin" | "exec" */
	BG_KF_PLUGIN,	    /* plugin: absolute .so path; exec: "" */
	BG_KF_OPTIONS,	    /* the options group as a JSON object, "" = {} */
	BG_KF_ARGV,	    /* exec: the command's words as a JSON array of
			       strings (bg_config_command_argv); plugin: "" */
	BG_KF_WORKDIR,	    /* exec: working directory of the program (the
			       configuration file's directory); plugin: "" */
	BG_KF_MODE,	    /* exec: "persistent" | "per_task"; plugin: "" */
	BG_KF_MAX_INFLIGHT, /* exec: decimal 1..64; plugin: "" */
	BG_KF_MAX_LINE,	    /* exec: max_line_bytes, decimal; plugin: "" */
	BG_KF_SANDBOX,	    /* the effective sandbox and env, a JSON object
			       (bg_config_sandbox_json with env) */
	BG_KF__COUNT
};
#define BG_CONF_FIELDS_PER_TYPE BG_KF__COUNT

enum bg_task_field {
	BG_TF_AGENT_TYPE,
	BG_TF_ACTION, /* "ASK_AGENT" | "RESUME" */
	BG_TF_EXECUTION_ID,
	BG_TF_MESSAGE_ID,
	BG_TF_SESSION_ID,
	BG_TF_TRACE_ID,
	BG_TF_SOURCE_AGENT_TYPE,
	BG_TF_PARENT_MESSAGE_ID,
	BG_TF_TASK_GROUP_ID,
	BG_TF_USER_CODE,
	BG_TF_USER_NAME,
	BG_TF_METADATA,	     /* raw JSON object */
	BG_TF_BODY,	     /* raw JSON object: the command body */
	BG_TF_RESUMED,	     /* "0" | "1" */
	BG_TF_WORKSPACE,     /* the session workspace directory */
	BG_TF_ATTEMPT,	     /* decimal, 1-based */
	BG_TF_PRIVATE_DIR,   /* per-task directory, removed after the task */
	BG_TF_GROUP_RESULTS, /* JSON object {child message id: result} when a
				dispatch_group joined, "" otherwise */
	BG_TF_TRACE_PARENT_SPAN_ID,	      /* the command header's */
	BG_TF_LANGFUSE_PARENT_OBSERVATION_ID, /* the command header's */
	BG_TF__COUNT
};

enum bg_event_field {
	BG_EF_KIND,	    /* "chunk" | "state" | "artifact" | "sub_step" */
	BG_EF_CONTENT,	    /* text */
	BG_EF_EVENT_TYPE,   /* override of the event_type, "" = default */
	BG_EF_CONTENT_TYPE, /* override of the contentType code, "" = default */
	BG_EF_METADATA,	    /* raw JSON object, "" = {} */
	BG_EF__COUNT
};

enum bg_result_field {
	BG_RF_STATUS,	     /* business status string, "" = COMPLETED */
	BG_RF_CONTENT,	     /* raw JSON value (string or array), "" = none */
	BG_RF_REPLY_DATA,    /* raw JSON value, "" = null */
	BG_RF_METADATA,	     /* raw JSON object, "" = {} */
	BG_RF_ERROR,	     /* "" or why the handler failed (status FAILED) */
	BG_RF_EXTRA_PAYLOAD, /* raw JSON object for the callback's
				body.extra_payload (WIRE 6.6), "" = none */
	BG_RF_INTERRUPTED,   /* "1": the task failed only because the program it
			      shared with other tasks died; bygated re-runs
			      it alone without counting the attempt */
	BG_RF__COUNT
};

/* Append the packed form of v[0..n) to out. 0 or -ENOMEM / -EMSGSIZE. */
int bg_rec_pack(struct bg_buf *out, const struct bg_str *v, uint32_t n);

/* Parse a packed payload into exactly n views pointing into payload.
 * 0, or -EBADMSG when the count differs or a length overruns. */
int bg_rec_unpack(const void *payload, size_t len, struct bg_str *v,
		  uint32_t n);

/* Like bg_rec_unpack, for a variable count: *n_out receives the count (at
 * most max). */
int bg_rec_unpack_var(const void *payload, size_t len, struct bg_str *v,
		      uint32_t max, uint32_t *n_out);

#endif
