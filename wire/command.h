/* wire/command.h - the control-stream command (WIRE 2.1-2.5): a single-pass
 * scanner of an entry's `data` JSON for the hot path (no tree, no copies
 * unless a string has escapes), the task-body validation of WIRE 2.3, and a
 * cold-path jansson parse for every action type. Input is untrusted. */
#ifndef BG_WIRE_COMMAND_H
#define BG_WIRE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

struct json_t; /* jansson's json_t */

enum bg_action {
	BG_ACTION_UNKNOWN = 0,
	BG_ACTION_ASK_AGENT,
	BG_ACTION_RESUME,
	BG_ACTION_CANCEL_TASK,
	BG_ACTION_RELOAD_PLUGINS,
	BG_ACTION_SUSPEND_WORKER,
	BG_ACTION_RESUME_WORKER,
	BG_ACTION_EVICT_WORKER,
	BG_ACTION_ASK_USER, /* known name, never valid on the wire */
};

/* The 12 header keys in WIRE 2.2 order. */
enum bg_hdr_field {
	BG_HDR_MESSAGE_ID,
	BG_HDR_SESSION_ID,
	BG_HDR_TRACE_ID,
	BG_HDR_SOURCE_AGENT_TYPE,
	BG_HDR_TARGET_AGENT_TYPE,
	BG_HDR_PARENT_MESSAGE_ID,
	BG_HDR_TASK_GROUP_ID,
	BG_HDR_USER_CODE,
	BG_HDR_USER_NAME,
	BG_HDR_METADATA, /* raw object span, not a string */
	BG_HDR_TRACE_PARENT_SPAN_ID,
	BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID,
	BG_HDR__COUNT
};

/* Errors of this component: negative, disjoint from -errno values. */
enum bg_cmd_error {
	BG_CMD_EINVALID_JSON =
		-4001, /* not JSON/object, bad header/body type */
	BG_CMD_EUNKNOWN_ACTION = -4002, /* action_type missing or unknown */
	BG_CMD_EMISSING_HEADER = -4003, /* no header, session_id or trace_id */
	BG_CMD_EINVALID_CONTENT =
		-4004,		      /* ASK/RESUME content rule (WIRE 2.3) */
	BG_CMD_EINVALID_BODY = -4005, /* control body key missing or wrong */
	BG_CMD_EINVALID_ID = -4006,   /* an id holds U+0000 or a control char */
};

/* A scanned command. Every bg_str points into the scanned data or into the
 * cmd's own arena, so it lives as long as both; nothing is NUL-terminated,
 * and a decoded string keeps every byte (a JSON "\u0000" is a 0 byte
 * inside its length). */
struct bg_cmd {
	enum bg_action action;
	struct bg_str action_name; /* decoded action_type ("" when absent) */

	/* Decoded header strings; hdr[BG_HDR_METADATA] is the raw metadata
	 * object ("{}" when absent or null). Absent or null strings are empty
	 * with hdr_present false. source_agent_type falls back to the legacy
	 * key source_agent_id when absent. */
	struct bg_str hdr[BG_HDR__COUNT];
	bool hdr_present[BG_HDR__COUNT];
	/* message_id absent or "": the caller mints msg-xxxxxxxx (WIRE 6.4). */
	bool need_message_id;

	struct bg_str body;    /* raw body object; "{}" when absent or null */
	struct bg_str content; /* raw value; len 0 when absent */
	bool wait_for_reply;   /* false when absent or null */
	struct bg_str status;  /* decoded RESUME status; "" when absent */
	bool has_status;
	struct bg_str reply_data;    /* raw; "null" when absent */
	struct bg_str extra_payload; /* raw object; "{}" when absent or null */

	struct bg_buf arena; /* private: decoded strings that had escapes */
	int body_type_error; /* private: a task body key of the wrong type */
};

/* Scan the `data` JSON of a control entry into *cmd (overwritten). Always
 * call bg_cmd_free afterwards, whatever the result: on error the fields
 * scanned so far (ids for the dead-letter record) stay readable until then.
 * The whole text is validated (RFC 8259, depth <= BG_JSON_MAX_DEPTH);
 * with duplicate keys the last one wins. Returns 0 or the first of:
 * BG_CMD_EINVALID_JSON (syntax, not an object, header or body neither an
 * object nor null, a header string field or metadata of the wrong type);
 * BG_CMD_EUNKNOWN_ACTION (cmd->action and action_name still set: ASK_USER
 * is known but never valid); for ASK_AGENT and RESUME only,
 * BG_CMD_EINVALID_JSON when wait_for_reply is not a bool, status not a
 * string or extra_payload not an object (null = absent for all three);
 * BG_CMD_EMISSING_HEADER (header absent or null, session_id absent, null or
 * "", trace_id absent or null); BG_CMD_EINVALID_ID (a header id - every
 * header string but user_name - holds, once decoded, a control character:
 * U+0000-U+001F or U+007F; as C strings such ids would name another
 * session or message); -ENOMEM. */
int bg_cmd_scan(const char *data, size_t len, struct bg_cmd *cmd);

/* The first header id (in enum bg_hdr_field order; every header string
 * but user_name) holding a control character, the one that made
 * bg_cmd_scan return BG_CMD_EINVALID_ID: its field, its decoded value in
 * *value. -1 (and *value untouched) when every id is clean. */
int bg_cmd_bad_id(const struct bg_cmd *cmd, struct bg_str *value);

/* Release the arena; the cmd may then be scanned again. Safe to call twice
 * and on a zeroed cmd. */
void bg_cmd_free(struct bg_cmd *cmd);

/* A RESUME that only carries a step of a run in progress: a sub-agent's
 * callback (its header names the sub-agent's type and message id, WIRE
 * 6.6: "sub-agent's callback") or a resume a handler posted
 * (body.extra_payload.bygate_post: a timer, a workflow's input: "posted
 * resume"); NULL for a user's or client's RESUME (no source agent type,
 * or "client"). One that arrives after its execution ended is
 * acknowledged unrun (supervisor/admit.c, "late step"); only a user's
 * reply is a turn of the conversation (docs/history.md). */
const char *bg_cmd_resume_step(const struct bg_cmd *c);

/* WIRE 2.3 task rules on a scanned ASK_AGENT or RESUME: ASK content must be
 * a non-blank string, a non-empty array or an object; RESUME needs a
 * non-empty status or non-empty content (a non-empty string, array or
 * object, a number or true). 0 or BG_CMD_EINVALID_CONTENT; 0 for other
 * actions. */
int bg_cmd_validate_task(const struct bg_cmd *cmd);

/* Cold path: bg_cmd_scan + bg_cmd_validate_task, then a jansson parse whose
 * body is checked per action (CANCEL_TASK: target_message_id non-empty
 * string, cancel_mode absent or "graceful"|"force", other keys strings;
 * RELOAD_PLUGINS: reload_id non-empty string; SUSPEND/EVICT_WORKER: reason
 * string, EVICT force bool): BG_CMD_EINVALID_BODY, or BG_CMD_EINVALID_ID
 * when target_message_id, target_execution_id, target_worker_id or
 * reload_id holds a control character (U+0000 included). On success *out
 * holds a new reference (caller json_decref()s) and *error_code is NULL;
 * on failure *out is NULL and *error_code is the bg_cmd_error_code()
 * string. */
int bg_cmd_parse_full(const char *data, size_t len, struct json_t **out,
		      const char **error_code);

/* Stable machine codes for dead-letter records: "invalid_json",
 * "unknown_action", "missing_header", "invalid_content", "invalid_body",
 * "invalid_id", "out_of_memory", "internal" for anything else. */
const char *bg_cmd_error_code(int rc);

/* One human sentence for logs and the dead-letter `reason`. */
const char *bg_cmd_error_text(int rc);

const char *bg_action_name(enum bg_action a); /* "ASK_AGENT", ... "UNKNOWN" */
const char *bg_hdr_name(enum bg_hdr_field f); /* "message_id", ... */

#endif
