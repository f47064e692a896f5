/* child/ctx.c - running one task: the struct bg_ctx handed to process(),
 * the bg_ctx_* functions of include/bygate/handler.h (events are sent up at
 * once, the result is validated, packed and kept until the task ends) and
 * the single RESULT record that ends every task, plugin or exec. */
#include "child/child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	"answerDelta",	   "reasoningLogDelta", "reasoningLogStart",
	"reasoningLogEnd", "finalAnswer",	"appStreamResponse",
	"taskCreate",	   "stepComplete",	"taskStop",
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

int bg_child_emit(struct bg_ctx *ctx, const char *kind, struct bg_str text,
		  const char *event_type, const char *content_type,
		  const char *metadata_json)
{
	if (ctx == NULL || text.p == NULL || check_event_type(event_type) ||
	    check_content_type(content_type) ||
	    check_json(metadata_json, WANT_OBJECT))
		return -EINVAL;
	struct bg_str v[BG_EF__COUNT] = {
		[BG_EF_KIND] = bg_str_c(kind),
		[BG_EF_CONTENT] = text,
		[BG_EF_EVENT_TYPE] = opt(event_type),
		[BG_EF_CONTENT_TYPE] = opt(content_type),
		[BG_EF_METADATA] = opt(metadata_json),
	};
	return bg_child_send(ctx->c, BG_REC_EVENT, ctx->tag, v, BG_EF__COUNT);
}

/* A C string's view; NULL stays NULL (refused by bg_child_emit). */
static struct bg_str text_of(const char *s)
{
	return s ? bg_str_c(s) : (struct bg_str){ NULL, 0 };
}

int bg_ctx_chunk(struct bg_ctx *ctx, const char *text)
{
	return bg_child_emit(ctx, "chunk", text_of(text), NULL, NULL, NULL);
}

int bg_ctx_chunk_ex(struct bg_ctx *ctx, const char *text,
		    const char *event_type, const char *content_type,
		    const char *metadata_json)
{
	return bg_child_emit(ctx, "chunk", text_of(text), event_type,
			     content_type, metadata_json);
}

int bg_ctx_state(struct bg_ctx *ctx, const char *text)
{
	return bg_child_emit(ctx, "state", text_of(text), NULL, NULL, NULL);
}

int bg_ctx_artifact(struct bg_ctx *ctx, const char *url)
{
	return bg_child_emit(ctx, "artifact", text_of(url), NULL, NULL, NULL);
}

int bg_ctx_sub_step(struct bg_ctx *ctx, const char *title)
{
	return bg_child_emit(ctx, "sub_step", text_of(title), NULL, NULL, NULL);
}

/* Validate and pack the result; `content` is raw JSON already checked,
 * `error` text (NULL = none). */
static int set_result(struct bg_ctx *ctx, const char *status,
		      const char *content, const char *reply_data_json,
		      const char *metadata_json, const struct bg_str *error)
{
	if (check_status(status) || check_json(reply_data_json, WANT_ANY) ||
	    check_json(metadata_json, WANT_OBJECT))
		return -EINVAL;
	struct bg_str v[BG_RF__COUNT] = {
		[BG_RF_STATUS] = opt(status ? status : ctx->suspend),
		[BG_RF_CONTENT] = opt(content),
		[BG_RF_REPLY_DATA] = opt(reply_data_json),
		[BG_RF_METADATA] = opt(metadata_json),
		[BG_RF_ERROR] = error ? *error : opt(NULL),
		[BG_RF_EXTRA_PAYLOAD] = opt(ctx->extra_payload),
		[BG_RF_INTERRUPTED] = opt(ctx->interrupted ? "1" : NULL),
	};
	bg_buf_reset(&ctx->result);
	ctx->failed = status && !strcmp(status, "FAILED");
	int rc = bg_rec_pack(&ctx->result, v, BG_RF__COUNT);
	if (rc == 0 && ctx->result.len > bg_child_max_message(ctx->c))
		rc = -EMSGSIZE;
	if (rc == -EMSGSIZE && ctx->failed && ctx->extra_payload) {
		/* A failure must always fit: it goes without the payload the
		 * handler set (which may be what did not fit). */
		free(ctx->extra_payload);
		ctx->extra_payload = NULL;
		return set_result(ctx, status, content, reply_data_json,
				  metadata_json, error);
	}
	ctx->has_result = rc == 0;
	return rc;
}

int bg_child_result(struct bg_ctx *ctx, const char *status,
		    const char *content_json, const char *reply_data_json,
		    const char *metadata_json)
{
	if (check_json(content_json, WANT_CONTENT))
		return -EINVAL;
	return set_result(ctx, status, content_json, reply_data_json,
			  metadata_json, NULL);
}

int bg_ctx_result_json(struct bg_ctx *ctx, const char *status,
		       const char *content_json, const char *reply_data_json,
		       const char *metadata_json)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	return bg_child_result(ctx, status, content_json, reply_data_json,
			       metadata_json);
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

int bg_ctx_extra_payload(struct bg_ctx *ctx, const char *object_json)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	if (object_json == NULL || check_json(object_json, WANT_OBJECT))
		return -EINVAL;
	if (strlen(object_json) > bg_child_max_message(ctx->c))
		return -EMSGSIZE; /* could never be sent */
	char *copy = strdup(object_json);
	if (copy == NULL)
		return -ENOMEM;
	free(ctx->extra_payload);
	ctx->extra_payload = copy;
	return 0;
}

/* FAILED with reply {"error": msg} and the record's error fields in the
 * metadata; error_code and limit are added when not NULL. msg is kept
 * whole, U+0000 included. */
static int fail_with(struct bg_ctx *ctx, struct bg_str msg,
		     const char *error_type, const char *error_code,
		     const char *limit, bool retryable)
{
	json_t *meta_j = json_pack("{s:s,s:s%,s:s,s:b}", "error_type",
				   error_type, "error_message", msg.p, msg.len,
				   "failed_stage", "process_command",
				   "retryable", retryable);
	if (meta_j && error_code)
		json_object_set_new(meta_j, "error_code",
				    json_string(error_code));
	if (meta_j && limit)
		json_object_set_new(meta_j, "resource_limit",
				    json_string(limit));
	char *reply = dump(json_pack("{s:s%}", "error", msg.p, msg.len));
	char *meta = dump(meta_j);
	int rc = reply && meta
			 ? set_result(ctx, "FAILED", NULL, reply, meta, &msg)
			 : -EINVAL;
	free(reply);
	free(meta);
	return rc;
}

int bg_child_fail(struct bg_ctx *ctx, struct bg_str message)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	return fail_with(ctx, message, "HandlerError", NULL, NULL, false);
}

int bg_child_fail_as(struct bg_ctx *ctx, struct bg_str message,
		     const char *error_type, bool retryable)
{
	if (ctx == NULL)
		return -EINVAL;
	if (ctx->has_result)
		return -EALREADY;
	return fail_with(ctx, message,
			 error_type && *error_type ? error_type
						   : "HandlerError",
			 NULL, NULL, retryable);
}

int bg_ctx_fail(struct bg_ctx *ctx, const char *message)
{
	return bg_child_fail(ctx,
			     bg_str_c(message ? message : "handler failed"));
}

void bg_child_fail_limit(struct bg_ctx *ctx, const char *msg, const char *limit)
{
	ctx->has_result = false;
	if (fail_with(ctx, bg_str_c(msg), "ResourceLimitExceeded",
		      "RESOURCE_LIMIT", limit, false))
		bg_child_fail_task(ctx, "resource limit reached");
}

int bg_ctx_cancelled(struct bg_ctx *ctx)
{
	if (ctx == NULL)
		return 0;
	bg_child_poll(ctx->c);
	return ctx->cancelled;
}

const char *bg_ctx_workspace(struct bg_ctx *ctx)
{
	return ctx ? bg_task_get(ctx->task, BG_TASK_WORKSPACE) : "";
}

const char *bg_ctx_private_dir(struct bg_ctx *ctx)
{
	return ctx ? bg_task_get(ctx->task, BG_TASK_PRIVATE_DIR) : "";
}

void bg_child_fail_task(struct bg_ctx *ctx, const char *msg)
{
	ctx->has_result = false;
	if (bg_ctx_fail(ctx, msg))
		bg_ctx_fail(ctx, "handler failed (error message not UTF-8 or "
				 "too large)");
}

/* Decode m into ctx and find its handler; a failure becomes the result. */
static void decode(struct bg_child_proc *c, struct bg_ctx *ctx,
		   const struct bg_child_msg *m)
{
	int rc = bg_child_task_parse(ctx->task, m->p, m->len);
	if (rc == -EBADMSG)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "malformed TASK record (tag %llu)",
			     (unsigned long long)m->tag);
	if (rc) {
		bg_child_fail_task(
			ctx, rc == -EINVAL ? "task body is not a JSON object"
					   : strerror(-rc));
		return;
	}
	const char *type = ctx->task->f[BG_TF_AGENT_TYPE];
	ctx->agent = bg_child_find_agent(c, type);
	if (ctx->agent == NULL) {
		char msg[320];
		snprintf(msg, sizeof(msg), "no handler for agent type '%.255s'",
			 type);
		bg_child_fail_task(ctx, msg);
	}
}

struct bg_ctx *bg_child_ctx_new(struct bg_child_proc *c,
				const struct bg_child_msg *m)
{
	struct bg_ctx *ctx = calloc(1, sizeof(*ctx));
	struct bg_task *t = calloc(1, sizeof(*t));
	if (ctx == NULL || t == NULL) {
		free(ctx);
		free(t);
		return NULL;
	}
	*ctx = (struct bg_ctx){
		.c = c, .task = t, .tag = m->tag, .cancelled = m->cancelled
	};
	bg_child_score(c, BG_SCORE_BUSY, m->tag);
	decode(c, ctx, m);
	return ctx;
}

/* A FAILED task whose allocation was refused ran out of its memory: say
 * so (RESOURCE_LIMIT) instead of whatever the handler made of it. */
static void explain_memory(struct bg_child_proc *c, struct bg_ctx *ctx)
{
	if (!ctx->has_result || !ctx->failed || ctx->agent == NULL ||
	    ctx->agent->confine.memory_mb <= 0 ||
	    !(ctx->mem_refused || (c->task_process && bg_child_mem_refused())))
		return;
	char msg[200];
	snprintf(msg, sizeof(msg),
		 "resource limit reached: memory_mb: an allocation past the "
		 "task's %ld MiB of address space was refused",
		 ctx->agent->confine.memory_mb);
	bg_child_fail_limit(ctx, msg, "memory_mb");
}

void bg_child_finish(struct bg_child_proc *c, struct bg_ctx *ctx)
{
	if (!ctx->has_result)
		set_result(ctx, NULL, NULL, NULL, NULL, NULL);
	explain_memory(c, ctx);
	int rc = ctx->has_result
			 ? bg_child_send_packed(c, BG_REC_RESULT, ctx->tag,
						ctx->result.p, ctx->result.len)
			 : -ENOMEM;
	if (rc)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "cannot send the RESULT of tag %llu: %s",
			     (unsigned long long)ctx->tag, strerror(-rc));
	bg_child_task_free(ctx->task);
	free(ctx->task);
	bg_buf_free(&ctx->result);
	json_decref(ctx->req_id);
	free(ctx->extra_payload);
	free(ctx);
	__atomic_add_fetch(&c->seg.hdr->score.tasks_done, 1, __ATOMIC_RELAXED);
	if (c->exec_tasks == NULL)
		bg_child_score(c, BG_SCORE_IDLE, 0);
}
