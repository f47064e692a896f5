/* tests/plugins/contract.c - checks the SDK's argument contracts from
 * inside a handler (invalid JSON, event types, content types, statuses,
 * a second result, the task accessors) and reports them as one state
 * event: "ok", or "FAIL <check>..." naming each broken check. */
#include <bygate/handler.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct report {
	char text[1024];
	size_t len;
};

static void check(struct report *r, int ok, const char *what)
{
	if (!ok && r->len < sizeof(r->text))
		r->len += (size_t)snprintf(r->text + r->len,
					   sizeof(r->text) - r->len, "%s%s",
					   r->len ? " " : "FAIL ", what);
}

static void check_task(struct report *r, const struct bg_task *t)
{
	check(r, strcmp(bg_task_get(t, BG_TASK_SESSION_ID), "sess-42") == 0,
	      "session_id");
	check(r, strcmp(bg_task_get(t, BG_TASK_ACTION), "ASK_AGENT") == 0,
	      "action");
	check(r, strcmp(bg_task_get(t, BG_TASK_USER_NAME), "") == 0,
	      "empty attribute");
	check(r, bg_task_get(t, (enum bg_task_attr)999) == NULL, "bad attr");
	check(r,
	      strcmp(bg_task_metadata_json(t), "{\"channel\": \"web\"}") == 0,
	      "metadata");
	check(r, bg_task_attempt(t) == 1, "attempt");
	check(r, bg_task_is_resumed(t) == 0, "resumed");
}

static void check_emit_args(struct report *r, struct bg_ctx *ctx)
{
	check(r, bg_ctx_chunk(ctx, NULL) == -EINVAL, "NULL text");
	check(r, bg_ctx_chunk_ex(ctx, "x", "bogus", NULL, NULL) == -EINVAL,
	      "event type");
	check(r, bg_ctx_chunk_ex(ctx, "x", NULL, "12a", NULL) == -EINVAL,
	      "content type");
	check(r, bg_ctx_chunk_ex(ctx, "x", NULL, NULL, "[1]") == -EINVAL,
	      "metadata not an object");
	check(r,
	      bg_ctx_chunk_ex(ctx, "x", "reasoningLogDelta", "3003",
			      "{\"k\": 1}") == 0,
	      "valid chunk_ex");
}

static void check_result_args(struct report *r, struct bg_ctx *ctx)
{
	check(r,
	      bg_ctx_result_json(ctx, NULL, "{\"a\": 1}", NULL, NULL) ==
		      -EINVAL,
	      "object content");
	check(r, bg_ctx_result(ctx, "bad\nstatus", NULL, NULL, NULL) == -EINVAL,
	      "status");
	check(r, bg_ctx_result(ctx, NULL, NULL, "{bad", NULL) == -EINVAL,
	      "reply_data");
	check(r,
	      bg_ctx_result_json(ctx, "completed",
				 "[{\"role\": \"assistant\", "
				 "\"content\": \"hi\"}]",
				 "{\"n\": 1}", NULL) == 0,
	      "valid result");
	check(r, bg_ctx_fail(ctx, "late") == -EALREADY, "second result");
}

static int contract_process(void *state, const struct bg_task *task,
			    struct bg_ctx *ctx)
{
	struct report r = { .len = 0 };
	check_task(&r, task);
	check_emit_args(&r, ctx);
	check_result_args(&r, ctx);
	return bg_ctx_state(ctx, r.len ? r.text : "ok");
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "contract",
	.process = contract_process,
};
