/* wire/record.h - execution records in the session registry hash (WIRE
 * 6.1-6.4): reading the fields a worker decides on, creating records, and
 * status updates spliced into the stored bytes (no tree, DESIGN 4.6). */
#ifndef BG_WIRE_RECORD_H
#define BG_WIRE_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "wire/json.h"

/* The fields a worker needs from a stored record. The views point into
 * `store` (decoded strings) and live until bg_record_free. A missing or
 * null member reads as "" / false / 0. */
struct bg_record {
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str status;
	struct bg_str parent_message_id;
	struct bg_str worker_id;
	struct bg_str source_agent_type;
	struct bg_str target_agent_type;
	struct bg_str cancel_reason;
	/* Only for a CANCELLING record: the last status of its timeline
	 * other than CANCELLING ("" when none). */
	struct bg_str prior_status;
	/* The sender's route (WIRE 6.2): the decoded string of the last
	 * route_policy / route_status member, "" when absent or not a
	 * string (never an error: a worker does not decide on them). */
	struct bg_str route_policy;
	struct bg_str route_status;
	bool cancel_requested;
	int64_t started_at;
	struct bg_buf store;
};

/* Parse a record read from Redis (untrusted). -EINVAL when it is not a JSON
 * object, or a member above has the wrong type (strings: string or null;
 * cancel_requested: bool or null; started_at: number or null). -ENOMEM.
 * r must be zeroed or freed before; on error it is left freed. */
int bg_record_read(struct bg_record *r, struct bg_str json);
void bg_record_free(struct bg_record *r);

/* Record created by the worker when the message has none (6.4 step 6):
 * no source_agent_type key. bygate stamps started_at, updated_at and a
 * one-entry RUNNING timeline at creation (Python writes started_at 0 and
 * no timeline); every other member is as in Python. */
struct bg_record_new {
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str parent_message_id;
	struct bg_str worker_id;
	struct bg_str target_agent_type;
	struct bg_str stream_name;
	struct bg_str redis_message_id;
	struct bg_str cancel_reason;
	bool cancel_requested;
	int64_t now_ms;
};
int bg_record_build_running(struct bg_buf *out, const struct bg_record_new *n);

/* Record created by a sender before its XADD (GatewayClient.send_message,
 * call_agent, dispatch_group; 6.2 example): status QUEUED, timeline
 * [QUEUED], started_at/finished_at 0, worker_id "", cancel_requested false.
 * With `route` the five route members are written (route_policy defaults to
 * FAIL_FAST, route_status to DELIVER_NOW); dispatch_group children have
 * none. source_agent_type is "client" for client sends, the caller type for
 * call_agent(wait_for_reply=True), "" otherwise. */
struct bg_record_queued {
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str parent_message_id;
	struct bg_str source_agent_type;
	struct bg_str target_agent_type;
	struct bg_str stream_name;
	bool route;
	struct bg_str route_policy;
	struct bg_str route_status;
	struct bg_str selected_agent_type;
	struct bg_str availability_error_code;
	struct bg_str availability_error;
	int64_t now_ms;
};
int bg_record_build_queued(struct bg_buf *out,
			   const struct bg_record_queued *q);

/* Completion fields of a finish (6.2, 6.5): raw JSON values, empty = not
 * written. */
struct bg_record_errors {
	struct bg_str error_type;
	struct bg_str error_message;
	struct bg_str error_code;
	struct bg_str failed_stage;
	struct bg_str retryable;
};

/* Derive the completion fields from a result's raw metadata and reply_data
 * (either may be empty): each from the metadata member of the same name,
 * error_message falling back to reply_data.error. Null members and
 * non-object inputs count as absent. The views borrow from the inputs.
 * 0 or -EINVAL for malformed JSON. */
int bg_record_errors_from(struct bg_record_errors *e, struct bg_str metadata,
			  struct bg_str reply_data);

/* A status change applied to the stored record bytes. */
struct bg_record_update {
	struct bg_str status;	 /* already normalised (bg_status_normalize) */
	struct bg_str worker_id; /* empty = unchanged */
	int64_t now_ms;
	bool cancel; /* set cancel_requested true + cancel_reason */
	struct bg_str cancel_reason;
	const struct bg_record_errors *errors; /* NULL = none */
	struct bg_str duplicate_of; /* a string member duplicate_of: the
				       message this one is a copy of (its
				       idempotency key), "" = none */
	/* more member edits in the same pass (at most 4; each raw a valid
	 * JSON value, the caller's duty), e.g. the agent-config audit */
	const struct bg_json_edit *extra;
	size_t n_extra;
};

/* Append to out a copy of `record` with: status, worker_id (if given),
 * updated_at, a {"status","timestamp"} entry appended to timeline (created
 * if absent or not an array), started_at when the new status is RUNNING and
 * the stored one is 0/null/absent, finished_at for terminal statuses, the
 * cancel and completion members, duplicate_of, the extra edits. Unknown
 * members are kept byte for byte.
 * 0, -EINVAL (record is not a JSON object, bad raw error value), -ENOMEM. */
int bg_record_update(struct bg_buf *out, struct bg_str record,
		     const struct bg_record_update *u);
/* bg_record_update that also appends to snap what bg_record_snapshot of
 * the updated record appends, from the same pass (no second scan). snap
 * is left unchanged when the update fails or only the snapshot cannot be
 * built (no memory): the caller then takes it from the record. */
int bg_record_update_snap(struct bg_buf *out, struct bg_str record,
			  const struct bg_record_update *u,
			  struct bg_buf *snap);

/* Does a worker run the execution now? Its status is RUNNING, or
 * CANCELLING while a run of it is being stopped (prior_status RUNNING).
 * A queued or suspended execution cancelled lazily (WIRE 6.10) does not
 * run. */
bool bg_record_runs(const struct bg_record *r);

/* "bygate decisions" 7: a status equal, ignoring case, to a known agent
 * state (WIRE 3.8) becomes its canonical upper-case spelling (a view of
 * static storage); others are returned unchanged; empty becomes COMPLETED. */
struct bg_str bg_status_normalize(struct bg_str status);

/* Exactly COMPLETED, FAILED or CANCELLED (case-sensitive, WIRE 3.8). */
bool bg_status_is_terminal(struct bg_str status);

/* The per-worker execution snapshot of WIRE 5.9 (dashboard data): the 30
 * keys of by-framework's _build_worker_execution_snapshot taken from the
 * record bytes, absent members written as "", 0, false or null. Appends
 * to out; 0 or -EINVAL for a malformed record (out unchanged). */
int bg_record_snapshot(struct bg_buf *out, struct bg_str record);

#endif
