/* wire/send.h - control-stream commands a sender writes (WIRE 2.1-2.5): the
 * ASK_AGENT of GatewayClient.send_message / call_agent, the RESUME of a user
 * reply, and the JSON template writer every wire builder uses (DESIGN 4.6). */
#ifndef BG_WIRE_SEND_H
#define BG_WIRE_SEND_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

/* Append a JSON text built from `tmpl`: literal characters are copied and
 * each directive consumes one argument:
 *   %s  struct bg_str, written as an escaped JSON string
 *   %n  struct bg_str, escaped JSON string, or null when empty
 *   %r  struct bg_str, raw JSON copied verbatim (null when empty); the
 *       caller guarantees it is valid JSON
 *   %d  int64_t     %b  bool (passed as int)     %%  a literal '%'
 * 0, -ENOMEM, or -EINVAL for an unknown directive; out is unchanged on
 * error. */
int bg_wire_fmt(struct bg_buf *out, const char *tmpl, ...);
int bg_wire_vfmt(struct bg_buf *out, const char *tmpl, va_list ap);

/* Successive member edits of one JSON object without a tree: each set is a
 * bg_json_obj_set copy, alternating between two owned buffers; cur views
 * the latest version (initially the caller's bytes, which must outlive
 * the splice); the first error sticks in rc. An empty raw is a no-op. */
struct bg_wire_splice {
	struct bg_str cur;
	int rc;
	struct bg_buf a, b, val;
};
void bg_wire_splice_set(struct bg_wire_splice *s, const char *key,
			struct bg_str raw);
/* Set `key` to the JSON text of a bg_wire_fmt template. */
void bg_wire_splice_fmt(struct bg_wire_splice *s, const char *key,
			const char *tmpl, ...);
void bg_wire_splice_free(struct bg_wire_splice *s);

/* The 12 MessageHeader keys (WIRE 2.2); all are always written. Empty
 * metadata is written as {}. metadata and every raw value handed to the
 * builders below may be untrusted: they are validated, never trusted. */
struct bg_send_header {
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str source_agent_type;
	struct bg_str target_agent_type;
	struct bg_str parent_message_id;
	struct bg_str task_group_id;
	struct bg_str user_code;
	struct bg_str user_name;
	struct bg_str metadata;			      /* raw JSON object */
	struct bg_str trace_parent_span_id;	      /* see bg_send_ask */
	struct bg_str langfuse_parent_observation_id; /* see bg_send_ask */
};

/* Append `{"action_type": <action>, "header": {...}, "body": {` exactly as
 * given (no defaults applied); the caller writes the body members and
 * closes with "}}". -EINVAL when metadata is not a JSON object. */
int bg_send_open(struct bg_buf *out, const char *action,
		 const struct bg_send_header *h);

struct bg_send_body {
	struct bg_str content;	  /* text, or raw JSON if content_is_json */
	bool content_is_json;	  /* content is a JSON array/object */
	bool wait_for_reply;	  /* ASK_AGENT only */
	struct bg_str status;	  /* RESUME only; "" when empty */
	struct bg_str reply_data; /* RESUME only; raw JSON, null when empty */
	struct bg_str extra_payload; /* raw JSON object; omitted when empty/{} */
};

/* ASK_AGENT command JSON (WIRE 2.5 first example). Empty
 * trace_parent_span_id / langfuse_parent_observation_id default to the
 * 16-hex span id of "<message_id>:client.dispatch". Content must be a
 * non-blank string or a non-empty array / an object (AskAgentCommand
 * validation). 0, -EINVAL (bad content or raw JSON), -ENOMEM. */
int bg_send_ask(struct bg_buf *out, const struct bg_send_header *h,
		const struct bg_send_body *b);

/* RESUME command JSON for a user reply (WIRE 2.5 "User reply"); same
 * header defaults. Needs a non-empty status or non-empty content. */
int bg_send_resume(struct bg_buf *out, const struct bg_send_header *h,
		   const struct bg_send_body *b);

/* Append `,"extra_payload":<extra>` unless extra is empty or {} (WIRE 2.3:
 * the key is omitted when empty). -EINVAL when extra is not an object. */
int bg_send_put_extra(struct bg_buf *out, struct bg_str extra);

/* Cut b back to len bytes (an error path's rollback), keeping the NUL. */
void bg_wire_truncate(struct bg_buf *b, size_t len);

/* Validate a raw JSON value of the given type ('{', '[', ... as returned by
 * bg_json_type; 0 = any type). Empty is valid (means "absent"). */
bool bg_send_raw_ok(struct bg_str raw, char type);

#endif
