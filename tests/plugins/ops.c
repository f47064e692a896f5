/* tests/plugins/ops.c - test plugin for the handler operations on other
 * executions (tests/integration/test_handler_ops.py). The ASK's content
 * names what to do:
 *   "timer <ms>"       resume_later(itself, {"n": 1}, ms); no result
 *                      (WAITING_AGENT)
 *   "timer-done <ms>"  the same timer, then ends COMPLETED
 *   "wait"             ends with the non-terminal status WAITING
 *   "post <options>"   resume_later(options.to, {"from": "post"},
 *                      options.delay); COMPLETED with the reply
 *   "call <T> <text>"  call_agent(T, text, wait); no result (WAITING_AGENT)
 *   "cancel <options>" cancel_call(options.message_id, options.force,
 *                      "deadline"); COMPLETED with the reply
 *   "served <array>"   agent_types_served(array); COMPLETED with the reply
 * Every reply is also streamed as a chunk. A RESUME completes with
 * "resumed: <content>" and reply_data = the RESUME's body. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bygate/handler.h>

static int answer(struct bg_ctx *ctx, int rc, char *reply)
{
	char buf[32];
	if (rc) {
		snprintf(buf, sizeof(buf), "rc %d", rc);
		bg_ctx_chunk(ctx, buf);
		return bg_ctx_fail(ctx, buf);
	}
	bg_ctx_chunk(ctx, reply);
	rc = bg_ctx_result(ctx, "COMPLETED", reply, NULL, NULL);
	free(reply);
	return rc;
}

/* A string member of an options object, or NULL (free()). */
static char *opt(const char *options, const char *key)
{
	char *s = NULL;
	return bg_options_get_string(options, key, &s) == 0 ? s : NULL;
}

static long long opt_int(const char *options, const char *key)
{
	long long v = 0;
	return bg_options_get_int(options, key, &v) == 0 ? v : 0;
}

static int resumed(const struct bg_task *task, struct bg_ctx *ctx)
{
	const char *content = bg_task_content(task);
	size_t n = strlen(content) + 16;
	char *text = malloc(n);
	if (text == NULL)
		return -ENOMEM;
	snprintf(text, n, "resumed: %s", content);
	int rc = bg_ctx_result(ctx, "COMPLETED", text, bg_task_body_json(task),
			       NULL);
	free(text);
	return rc;
}

static int process(void *state, const struct bg_task *task, struct bg_ctx *ctx)
{
	(void)state;
	const char *what = bg_task_content(task);
	char *reply = NULL;
	if (!strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME"))
		return resumed(task, ctx);
	if (!strncmp(what, "timer ", 6)) {
		int rc = bg_ctx_resume_later(ctx, NULL, "{\"n\": 1}",
					     atoll(what + 6), &reply);
		bg_ctx_chunk(ctx, rc ? "error" : reply);
		free(reply);
		return rc;
	}
	if (!strncmp(what, "timer-done ", 11)) { /* a timer, then the end */
		int rc = bg_ctx_resume_later(ctx, "", "\"late\"",
					     atoll(what + 11), &reply);
		free(reply);
		return rc ? rc
			  : bg_ctx_result(ctx, "COMPLETED", "done", NULL, NULL);
	}
	if (!strcmp(what, "wait"))
		return bg_ctx_result(ctx, "WAITING", "waiting", NULL, NULL);
	if (!strncmp(what, "post ", 5)) {
		char *to = opt(what + 5, "to");
		int rc = bg_ctx_resume_later(ctx, to, "{\"from\": \"post\"}",
					     opt_int(what + 5, "delay"),
					     &reply);
		free(to);
		return answer(ctx, rc, reply);
	}
	if (!strncmp(what, "call ", 5)) {
		char target[129];
		const char *sp = strchr(what + 5, ' ');
		if (sp == NULL || sp - (what + 5) > 128)
			return -EINVAL;
		snprintf(target, sizeof(target), "%.*s", (int)(sp - (what + 5)),
			 what + 5);
		int rc =
			bg_ctx_call_agent(ctx, target, sp + 1, 1, NULL, &reply);
		bg_ctx_chunk(ctx, rc ? "error" : reply);
		free(reply);
		return rc;
	}
	if (!strncmp(what, "cancel ", 7)) {
		char *mid = opt(what + 7, "message_id");
		int rc = bg_ctx_cancel_call(ctx, mid,
					    (int)opt_int(what + 7, "force"),
					    "deadline", &reply);
		free(mid);
		return answer(ctx, rc, reply);
	}
	if (!strncmp(what, "served ", 7)) {
		int rc = bg_ctx_agent_types_served(ctx, what + 7, &reply);
		return answer(ctx, rc, reply);
	}
	return -EINVAL;
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "ops",
	.process = process,
};
