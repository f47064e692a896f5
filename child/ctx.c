/* child/ctx.c - running one task: the struct bg_ctx handed to process(),
 * the bg_ctx_* functions of include/bygate/handler.h (events are sent up at
 * once, the result is validated, packed and kept until process() returns)
 * and the single RESULT record that ends every task. */
#include "child/child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bg_ctx {
	struct bg_child *c;
	const struct bg_task *task;
	uint64_t tag;
	struct bg_buf result; /* packed RESULT payload once has_result */
	bool has_result;
};

enum json_want { WANT_ANY, WANT_OBJECT, WANT_CONTENT };

/* A result content: a JSON string or an array of objects (WIRE 6.5). */
static bool is_content(json_t *j)
{
	if (json_is_string(j))
		return true;
	if (!json_is_array(j))
		return false;
	for (size_t i = 0; i < json_array_size(j); i++)
		if (!json_is_object(json_array_get(j, i)))
			return false;
	return true;
}

/* NULL (the default) or valid JSON of the wanted shape; 0 or -EINVAL. */
static int check_json(const char *s, enum json_want want)
{
	if (s == NULL)
		return 0;
	json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	bool ok = j && (want == WANT_ANY ||
			(want == WANT_OBJECT && json_is_object(j)) ||
			(want == WANT_CONTENT && is_content(j)));
	json_decref(j);
	return ok ? 0 : -EINVAL;
}

static const char *const event_types[] = {
	"answerDelta",	     "reasoningLogDelta", "reasoningLogStart",
	"reasoningLogEnd",   "finalAnswer",	  "appStreamResponse",
	"taskCreate",	     "stepComplete",	  "taskStop",
};

static int check_event_type(const char *s)
{
	if (s == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(event_types) / sizeof(*event_types); i++)
		if (strcmp(s, event_types[i]) == 0)
			return 0;
	return -EINVAL;
}

static int check_content_type(const char *s)
{
	if (s == NULL)
		return 0;
	size_t n = strspn(s, "0123456789");
	return n >= 1 && n <= 8 && s[n] == '\0' ? 0 : -EINVAL;
}

static int check_status(const char *s)
{
	if (s == NULL)
		return 0;
	size_t n = strlen(s);
	if (n == 0 || n > BG_CHILD_MAX_STATUS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -EINVAL;
	return 0;
}

static struct bg_str opt(const char *s)
{
	return bg_str_c(s); /* NULL -> "" = the default on the wire */
}

static int emit(struct bg_ctx *ctx, const char *kind, const char *text,
		const char *event_type, const char *content_type,
		const char *metadata_json)
{
	if (ctx == NULL || text == NULL || check_event_type(event_type) ||
	    check_content_type(content_type) ||
	    check_json(metadata_json, WANT_OBJECT))
		return -EINVAL;
	struct bg_str v[BG_EF__COUNT] = {
		[BG_EF_KIND] = bg_str_c(kind),
		[BG_EF_CONTENT] = bg_str_c(text),
		[BG_EF_EVENT_TYPE] = opt(event_type),
		[BG_EF_CONTENT_TYPE] = opt(content_type),
		[BG_EF_METADATA] = opt(metadata_json),
	};
	return bg_child_send(ctx->c, BG_REC_EVENT, ctx->tag, v, BG_EF__COUNT);
}

int bg_ctx_chunk(struct bg_ctx *ctx, const char *text)
{
	return emit(ctx, "chunk", text, NULL, NULL, NULL);
}

int bg_ctx_chunk_ex(struct bg_ctx *ctx, const char *text,
		    const char *event_type, const char *content_type,
		    const char *metadata_json)
{
	return emit(ctx, "chunk", text, event_type, content_type,
		    metadata_json);
}

int bg_ctx_state(struct bg_ctx *ctx, const char *text)
{
	return emit(ctx, "state", text, NULL, NULL, NULL);
}

int bg_ctx_artifact(struct bg_ctx *ctx, const char *url)
{
	return emit(ctx, "artifact", url, NULL, NULL, NULL);
}

int bg_ctx_sub_step(struct bg_ctx *ctx, const char *title)
{
	return emit(ctx, "sub_step", title, NULL, NULL, NULL);
}

/* Validate and pack the result; `content` is raw JSON already checked. */
static int set_result(struct bg_ctx *ctx, const char *status,
		      const char *content, const char *reply_data_json,
		      const char *metadata_json, const char *error)
{
	if (check_status(status) || check_json(reply_data_json, WANT_ANY) ||
	    check_json(metadata_json, WANT_OBJECT))
		return -EINVAL;
	struct bg_str v[BG_RF__COUNT] = {
		[BG_RF_STATUS] = opt(status),
		[BG_RF_CONTENT] = opt(content),
		[BG_RF_REPLY_DATA] = opt(reply_data_json),
		[BG_RF_METADATA] = opt(metadata_json),
		[BG_RF_ERROR] = opt(error),
	};
	bg_buf_reset(&ctx->result);
	int rc = bg_rec_pack(&ctx->result, v, BG_RF__COUNT);
	if (rc == 0 && ctx->result.len > bg_child_max_message(ctx->c))
		rc = -EMSGSIZE;
	ctx->has_result = rc == 0;
	return rc;
}

int bg_ctx_result_json(struct bg_ctx *ctx, const char *status,
		       const char *content_json, const char *reply_data_json,
		       const char *metadata_json)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	if (check_json(content_json, WANT_CONTENT))
		return -EINVAL;
	return set_result(ctx, status, content_json, reply_data_json,
			  metadata_json, NULL);
}

/* Compact JSON text of j (consumed); NULL when j is NULL (invalid UTF-8)
 * or on ENOMEM. */
static char *dump(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	return s;
}

int bg_ctx_result(struct bg_ctx *ctx, const char *status,
		  const char *content_text, const char *reply_data_json,
		  const char *metadata_json)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	char *content = NULL;
	if (content_text && (content = dump(json_string(content_text))) == NULL)
		return -EINVAL;
	int rc = set_result(ctx, status, content, reply_data_json,
			    metadata_json, NULL);
	free(content);
	return rc;
}

int bg_ctx_fail(struct bg_ctx *ctx, const char *message)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	const char *msg = message ? message : "handler failed";
	char *reply = dump(json_pack("{s:s}", "error", msg));
	char *meta = dump(json_pack("{s:s,s:s,s:s}", "error_type",
				    "HandlerError", "error_message", msg,
				    "failed_stage", "process_command"));
	int rc = reply && meta ? set_result(ctx, "FAILED", NULL, reply, meta,
					    msg)
			       : -EINVAL;
	free(reply);
	free(meta);
	return rc;
}

int bg_ctx_cancelled(struct bg_ctx *ctx)
{
	if (ctx == NULL)
		return 0;
	bg_child_poll(ctx->c);
	return ctx->c->cancel_flag;
}

const char *bg_ctx_workspace(struct bg_ctx *ctx)
{
	return ctx ? bg_task_get(ctx->task, BG_TASK_WORKSPACE) : "";
}

/* FAILED with `msg`, or a generic message when msg cannot be sent. */
static void fail_task(struct bg_ctx *ctx, const char *msg)
{
	ctx->has_result = false;
	if (bg_ctx_fail(ctx, msg))
		bg_ctx_fail(ctx, "handler failed (error message not UTF-8 or "
				 "too large)");
}

static void call_handler(struct bg_child *c, struct bg_ctx *ctx,
			 struct bg_agent *a, bool cancelled)
{
	c->in_task = true;
	c->task_tag = ctx->tag;
	c->cancel_flag = cancelled;
	int rc = a->plugin->h->process(a->state, ctx->task, ctx);
	c->in_task = false;
	c->cancel_flag = false;
	if (!ctx->has_result && rc != 0) {
		char msg[48];
		snprintf(msg, sizeof(msg), "handler returned %d", rc);
		fail_task(ctx, msg);
	} else if (!ctx->has_result) {
		set_result(ctx, NULL, NULL, NULL, NULL, NULL);
	}
}

/* Parse, find the handler and run; any failure becomes the result. */
static void run(struct bg_child *c, struct bg_ctx *ctx, struct bg_task *t,
		const struct bg_child_msg *m)
{
	int rc = bg_child_task_parse(t, m->p, m->len);
	if (rc == -EBADMSG)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "malformed TASK record (tag %llu)",
			     (unsigned long long)m->tag);
	if (rc) {
		fail_task(ctx, rc == -EINVAL ? "task body is not a JSON object"
					     : strerror(-rc));
		return;
	}
	struct bg_agent *a = bg_child_find_agent(c, t->f[BG_TF_AGENT_TYPE]);
	if (a == NULL) {
		char msg[320];
		snprintf(msg, sizeof(msg), "no handler for agent type '%.255s'",
			 t->f[BG_TF_AGENT_TYPE]);
		fail_task(ctx, msg);
		return;
	}
	call_handler(c, ctx, a, m->cancelled);
}

void bg_child_run(struct bg_child *c, const struct bg_child_msg *m)
{
	struct bg_task t;
	struct bg_ctx ctx = { .c = c, .task = &t, .tag = m->tag };
	bg_child_score(c, BG_SCORE_BUSY, m->tag);
	run(c, &ctx, &t, m);
	int rc = ctx.has_result
			 ? bg_child_send_packed(c, BG_REC_RESULT, m->tag,
						ctx.result.p, ctx.result.len)
			 : -ENOMEM;
	bg_child_task_free(&t);
	bg_buf_free(&ctx.result);
	if (rc)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "cannot send the RESULT of tag %llu: %s",
			     (unsigned long long)m->tag, strerror(-rc));
	__atomic_add_fetch(&c->seg.hdr->score.tasks_done, 1, __ATOMIC_RELAXED);
	bg_child_score(c, BG_SCORE_IDLE, 0);
}
