/* wire/event.h - session data-stream events (WIRE 3.2-3.7): the DataMessage
 * envelope around the default "BaiYingChatCompletion" SSE layout, with the
 * Python worker's per-kind defaults and the sub-agent forcing rule (3.6). */
#ifndef BG_WIRE_EVENT_H
#define BG_WIRE_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

/* Who emits: fixed for the whole task. */
struct bg_event_ctx {
	struct bg_str trace_id;
	struct bg_str session_id;
	struct bg_str agent_type; /* the task's header.target_agent_type */
	struct bg_str message_id;
	struct bg_str parent_message_id; /* "" for a root task */
	bool is_sub_agent;		 /* WIRE 3.6 has_source_agent */
};

enum bg_event_kind {
	BG_EVENT_CHUNK,		/* emit_chunk: answerDelta, 1002, assistant */
	BG_EVENT_STATE,		/* emit_state: reasoningLogDelta, 3003, null */
	BG_EVENT_ARTIFACT,	/* emit_artifact: content is the file URL */
	BG_EVENT_SUB_STEP,	/* sub_step: content is the title */
	BG_EVENT_FINAL_ANSWER,	/* framework finalAnswer (3.6 step 2) */
	BG_EVENT_END_OF_STREAM, /* framework appStreamResponse, content "" */
	BG_EVENT_ASK_USER,	/* ask_user: content is the prompt */
};

/* One event. Empty views mean "default". Raw JSON members are validated. */
struct bg_event {
	enum bg_event_kind kind;
	struct bg_str content;
	struct bg_str event_type;    /* override; ignored for ASK_USER */
	struct bg_str content_type;  /* override; ignored for ASK_USER */
	struct bg_str role;	     /* CHUNK only: override of "assistant" */
	struct bg_str object_type;   /* data.objectType, null when empty */
	struct bg_str status;	     /* data.status, null when empty */
	struct bg_str function_call; /* raw JSON object, null when empty */
	struct bg_str tool_calls;    /* raw JSON array, null when empty */
	struct bg_str metadata;	     /* raw JSON object, {} when empty */
	/* Event ids: empty = the context's. A SUB_STEP must carry its fresh
	 * message id here; its parent defaults to the context's message id. */
	struct bg_str message_id;
	struct bg_str parent_message_id;
	int64_t now_ms;	    /* timestamp; data.created = now_ms/1000 */
	struct bg_str uuid; /* data.id: 32 upper-case hex characters */
};

/* The event_type actually written: the override or the kind's default,
 * rewritten to reasoningLogDelta in a sub-agent for the kinds that go
 * through Python's emit_chunk (CHUNK, SUB_STEP, FINAL_ANSWER,
 * END_OF_STREAM). A view of static storage or of ev->event_type. The
 * caller compares it with "appStreamResponse" to learn that a root task
 * has closed its stream. */
struct bg_str bg_event_type_of(const struct bg_event_ctx *ctx,
			       const struct bg_event *ev);

/* Append the DataMessage JSON (the value of the entry's `data` field).
 * 0, -EINVAL (malformed raw JSON member, unknown kind, SUB_STEP without
 * message id), -ENOMEM; out is unchanged on error. */
int bg_event_build(struct bg_buf *out, const struct bg_event_ctx *ctx,
		   const struct bg_event *ev);

#endif
