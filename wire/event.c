/* wire/event.c - DataMessage + default SSE layout writer (WIRE 3.2-3.7),
 * written from one template; per-kind defaults follow the Python worker. */
#include "wire/event.h"

#include <errno.h>

#include "wire/json.h"
#include "wire/send.h"

#define ANSWER_DELTA "answerDelta"
#define REASONING_DELTA "reasoningLogDelta"

struct kind_rule {
	const char *event_type;
	const char *content_type;
	const char *role;    /* NULL = null */
	bool via_emit_chunk; /* subject to the sub-agent forcing rule */
};

static const struct kind_rule rules[] = {
	[BG_EVENT_CHUNK] = { ANSWER_DELTA, "1002", "assistant", true },
	[BG_EVENT_STATE] = { REASONING_DELTA, "3003", NULL, false },
	[BG_EVENT_ARTIFACT] = { REASONING_DELTA, "3010", NULL, false },
	[BG_EVENT_SUB_STEP] = { REASONING_DELTA, "1002", "assistant", true },
	[BG_EVENT_FINAL_ANSWER] = { "finalAnswer", "1002", "assistant", true },
	[BG_EVENT_END_OF_STREAM] = { "appStreamResponse", "1002", "assistant",
				     true },
	[BG_EVENT_ASK_USER] = { REASONING_DELTA, "3013", "assistant", false },
};

static bool kind_ok(const struct bg_event *ev)
{
	return (unsigned)ev->kind < sizeof(rules) / sizeof(rules[0]);
}

static struct bg_str or_default(struct bg_str v, const char *def)
{
	return v.len ? v : bg_str_c(def);
}

struct bg_str bg_event_type_of(const struct bg_event_ctx *ctx,
			       const struct bg_event *ev)
{
	if (!kind_ok(ev))
		return bg_str_c("");
	const struct kind_rule *k = &rules[ev->kind];
	if (k->via_emit_chunk && ctx->is_sub_agent)
		return bg_str_c(REASONING_DELTA);
	if (ev->kind == BG_EVENT_ASK_USER)
		return bg_str_c(k->event_type);
	return or_default(ev->event_type, k->event_type);
}

/* An ask_user prompt that is a JSON object with a "questions" member is
 * sent verbatim as an ask_user_question form (3014). */
static bool is_question_form(struct bg_str prompt)
{
	struct bg_str v;
	return bg_json_type(prompt) == '{' &&
	       bg_json_valid(prompt.p, prompt.len) &&
	       bg_json_obj_get(prompt, "questions", &v) == 0;
}

/* The delta content text (before escaping) for kinds whose content is a
 * JSON document written with Python's json.dumps separators. */
static int build_inner(struct bg_buf *tmp, const struct bg_event *ev)
{
	if (ev->kind == BG_EVENT_ARTIFACT)
		return bg_wire_fmt(tmp, "[{\"fileUrl\": %s}]", ev->content);
	return bg_wire_fmt(
		tmp,
		"{\"formStatus\": 0, \"pluginMachineFields\": [{\"formType\": "
		"\"textarea\", \"fieldName\": \"user_input\", \"fieldCode\": "
		"\"user_input\", \"description\": %s, \"required\": true}]}",
		ev->content);
}

static bool raw_members_ok(const struct bg_event *ev)
{
	return bg_send_raw_ok(ev->metadata, '{') &&
	       bg_send_raw_ok(ev->function_call, '{') &&
	       bg_send_raw_ok(ev->tool_calls, '[');
}

/* Resolved per-event values of the template. */
struct event_vals {
	struct bg_str content_type;
	struct bg_str role; /* empty = null */
	struct bg_str content;
	struct bg_str message_id;
	struct bg_str parent_message_id;
};

static struct bg_str first(struct bg_str a, struct bg_str b)
{
	return a.len ? a : b;
}

static int resolve(struct event_vals *v, struct bg_buf *tmp,
		   const struct bg_event_ctx *ctx, const struct bg_event *ev)
{
	const struct kind_rule *k = &rules[ev->kind];
	bool form = ev->kind == BG_EVENT_ASK_USER;

	v->content_type = or_default(ev->content_type, k->content_type);
	v->role = bg_str_c(k->role);
	if (ev->kind == BG_EVENT_CHUNK)
		v->role = or_default(ev->role, k->role);
	v->content = ev->content;
	if (ev->kind == BG_EVENT_END_OF_STREAM)
		v->content = bg_str_c("");
	if (form) {
		v->content_type = bg_str_c(k->content_type);
		if (is_question_form(ev->content)) {
			v->content_type = bg_str_c("3014");
			form = false;
		}
	}
	v->message_id = first(ev->message_id, ctx->message_id);
	v->parent_message_id =
		first(ev->parent_message_id, ev->kind == BG_EVENT_SUB_STEP
						     ? ctx->message_id
						     : ctx->parent_message_id);
	if (!form && ev->kind != BG_EVENT_ARTIFACT)
		return 0;
	int rc = build_inner(tmp, ev);
	v->content = (struct bg_str){ tmp->p, tmp->len };
	return rc;
}

int bg_event_build(struct bg_buf *out, const struct bg_event_ctx *ctx,
		   const struct bg_event *ev)
{
	if (!kind_ok(ev) || !raw_members_ok(ev))
		return -EINVAL;
	if (ev->kind == BG_EVENT_SUB_STEP && ev->message_id.len == 0)
		return -EINVAL;

	struct bg_buf tmp = { 0 };
	struct event_vals v;
	size_t mark = out->len;
	int rc = resolve(&v, &tmp, ctx, ev);
	if (rc == 0)
		rc = bg_wire_fmt(
			out,
			"{\"trace_id\":%s,\"session_id\":%s,\"event_type\":%s,"
			"\"source_agent_type\":%s,\"message_id\":%s,"
			"\"parent_message_id\":%s,\"timestamp\":%d,"
			"\"data\":{\"id\":%s,\"created\":%d,\"model\":\"\","
			"\"object\":\"\",\"contentType\":%s,\"agentId\":%n,"
			"\"orderId\":%s,\"parentOrderId\":%s,\"objectType\":%n,"
			"\"status\":%n,\"choices\":[{\"index\":0,"
			"\"finish_reason\":\"\",\"delta\":{\"role\":%n,"
			"\"content\":%s,\"function_call\":%r,"
			"\"function_response\":null,\"tool_calls\":%r,"
			"\"tool_responses\":null}}]},\"state_msg\":\"\","
			"\"artifact_url\":\"\",\"metadata\":%r}",
			ctx->trace_id, ctx->session_id,
			bg_event_type_of(ctx, ev), ctx->agent_type,
			v.message_id, v.parent_message_id, (int64_t)ev->now_ms,
			ev->uuid, (int64_t)(ev->now_ms / 1000), v.content_type,
			ctx->agent_type, v.message_id, v.parent_message_id,
			ev->object_type, ev->status, v.role, v.content,
			ev->function_call, ev->tool_calls,
			or_default(ev->metadata, "{}"));
	if (rc)
		bg_wire_truncate(out, mark);
	bg_buf_free(&tmp);
	return rc;
}
