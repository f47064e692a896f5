/* wire/result.h - what happens on the wire when a task ends (WIRE 3.6, 6.5,
 * 6.6): the finalAnswer text, the appStreamResponse rule, the callback
 * RESUME to a waiting caller, and the dead-letter record ("bygate
 * decisions" 5). */
#ifndef BG_WIRE_RESULT_H
#define BG_WIRE_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

/* The finalAnswer text (3.6 step 2) from a result's raw content and
 * reply_data (either may be empty = absent): content if it is a non-empty
 * JSON string (decoded); else reply_data if it is a non-empty string
 * (decoded); else reply_data's JSON text if it is not null, re-serialised
 * as Python's json.dumps(ensure_ascii=False) does for parsed input (", "
 * and ": " separators, strings re-escaped, numbers verbatim); else none.
 * Appends to out and sets *present. 0, -EINVAL (malformed JSON), -ENOMEM. */
int bg_result_final_message(struct bg_str content, struct bg_str reply_data,
			    struct bg_buf *out, bool *present);

/* Whether the framework closes the user stream with appStreamResponse
 * (3.6 step 3): a root task (no source agent), a terminal status (after
 * bg_status_normalize), no hand-off (call_agent/dispatch_group without
 * waiting), not suspended, not already emitted by business code. On the
 * cancel and exception paths Python does not look at `suspended`: pass
 * false there. */
bool bg_result_wants_end_marker(bool has_source_agent, struct bg_str status,
				bool permission_transferred, bool suspended,
				bool already_emitted);

/* Inputs of the callback RESUME (6.6). The header members are the child
 * task's command header; the result members are raw JSON (validated). */
struct bg_callback {
	struct bg_str message_id; /* child header */
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str source_agent_type; /* the caller: callback target */
	struct bg_str target_agent_type; /* the child's own type */
	struct bg_str parent_message_id; /* the caller's message id */
	struct bg_str task_group_id;
	struct bg_str user_code;
	struct bg_str user_name;
	struct bg_str metadata; /* child header.metadata (object) */
	struct bg_str langfuse_parent_observation_id; /* child header's */
	struct bg_str langfuse_override; /* plugin-set id; empty = none */
	struct bg_str execution_id;	 /* the child's execution id */
	struct bg_str worker_id;	 /* source when target type is "" */
	struct bg_str new_message_id;	 /* used when parent_message_id is "" */
	struct bg_str status;		 /* result status (normalised) */
	struct bg_str content;		 /* raw; "" when empty or null */
	struct bg_str reply_data;	 /* raw; null when empty */
	struct bg_str result_metadata;	 /* raw object or empty */
	struct bg_str extra_payload;	 /* raw object; omitted when empty/{} */
};

/* Append the callback RESUME command JSON in the Python layout: header
 * message_id = the caller's message id, source/target swapped,
 * parent_message_id = the child's message id, metadata = {child header
 * metadata, result metadata, framework_parent_span_id
 * "<execution_id>:agent.return", trace_parent_span_id (its 16-hex span id),
 * langfuse_parent_observation_id when non-empty} (later wins, order of
 * first appearance kept), header trace_parent_span_id = the same span id.
 * 0, -EINVAL (malformed raw JSON, metadata not an object), -ENOMEM. */
int bg_result_callback(struct bg_buf *out, const struct bg_callback *cb);

/* A dead-lettered stream entry ("bygate decisions" 5). */
struct bg_deadletter {
	struct bg_str execution_id; /* empty = unknown: key omitted */
	struct bg_str target_agent_type;
	struct bg_str reason;
	struct bg_str stream;
	struct bg_str entry_id;
	int64_t delivery_count;
	struct bg_str error_code; /* e.g. "malformed", "stale" */
	bool has_data;		  /* the entry had a `data` field */
	struct bg_str data;	  /* its raw bytes (any, even non-JSON) */
};

/* Append the dead-letter record: the WakeupDecision members
 * (execution_id when known, target_agent_type, status "FAILED",
 * selected_agent_type "", worker_ids [], region "", retry_after_ms null,
 * reason) plus stream, entry_id, delivery_count, error_code and "entry":
 * the raw `data` field text as a JSON string (invalid UTF-8 becomes
 * U+FFFD), or null when the entry had no `data` field. 0 or -ENOMEM. */
int bg_result_deadletter(struct bg_buf *out, const struct bg_deadletter *d);

#endif
