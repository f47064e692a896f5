/* wire/post.h - what a handler's operations on other executions of its
 * session write (docs/handler-sdk.md): the RESUME of resume_later, a
 * client's RESUME (WIRE 2.5 "User reply") whose
 * body.extra_payload.bygate_post tells it from a callback; and the record
 * edits and CANCEL_TASK of cancel_call (WIRE 6.10, as a client's
 * cancel_task). Pure encoding; supervisor/post.c and cancel_call.c decide
 * the fields. */
#ifndef BG_WIRE_POST_H
#define BG_WIRE_POST_H

#include <stdint.h>

#include "common/buf.h"
#include "wire/send.h"

/* The longest delay of a posted RESUME: 7 days, the registry's TTL. */
#define BG_POST_MAX_DELAY_MS (7LL * 24 * 3600 * 1000)

struct bg_post {
	/* header: message_id = the target's, session_id, trace_id,
	 * target_agent_type = the target's type, source_agent_type "",
	 * parent_message_id = the poster's message id, ... (WIRE 2.2) */
	struct bg_send_header h;
	struct bg_str content; /* text, or raw JSON if content_is_json */
	bool content_is_json;
	struct bg_str from_message_id; /* the poster's message id */
	struct bg_str post_id;	       /* unique per post: "post-xxxxxxxx" */
	int64_t due_ms;		       /* epoch ms (Redis clock) */
};

/* Append the RESUME JSON: body {"content", "status": "", "reply_data":
 * null, "extra_payload": {"bygate_post": {"from_message_id", "due_ms",
 * "post_id"}}}. Content as bg_send_resume takes it (non-empty). 0,
 * -EINVAL (empty content, invalid raw JSON or metadata), -ENOMEM; out is
 * unchanged on error. */
int bg_post_resume(struct bg_buf *out, const struct bg_post *p);

/* A delay resume_later accepts: 0 .. BG_POST_MAX_DELAY_MS. */
static inline bool bg_post_delay_ok(int64_t delay_ms)
{
	return delay_ms >= 0 && delay_ms <= BG_POST_MAX_DELAY_MS;
}

/* The record edit of a cancel (WIRE 6.10) into out: cancelling = the
 * record becomes CANCELLING with cancel_requested and reason
 * (mark_execution_cancelling: status, timeline, updated_at); else only
 * cancel_requested, updated_at and cancel_reason (when non-empty) are set
 * (mark_cancel_requested, for a terminal record). Unknown members are
 * kept byte for byte. 0, -EINVAL (record not a JSON object), -ENOMEM. */
int bg_post_cancel_edit(struct bg_buf *out, struct bg_str record,
			bool cancelling, struct bg_str reason, int64_t now_ms);

/* A CANCEL_TASK of WIRE 2.5 for one execution, sent to its worker's
 * stream. */
struct bg_post_cancel {
	struct bg_str command_id; /* "msg-cancel-xxxxxxxx" */
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str target_agent_type;
	struct bg_str target_message_id; /* also the header's parent */
	struct bg_str target_execution_id;
	struct bg_str target_worker_id;
	struct bg_str reason;
	struct bg_str requested_by;
	bool force; /* cancel_mode "force", else "graceful" */
};
int bg_post_cancel_task(struct bg_buf *out, const struct bg_post_cancel *c);

#endif
