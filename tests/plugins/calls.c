/* tests/plugins/calls.c - test plugin for the SDK operations answered by
 * bygated (tests/unit/test_child.c plays bygated): the task content names
 * the operation; what came back is streamed as chunks. "route <options>"
 * (tests/integration/test_agent_routes.py) calls options.target with the
 * options object as call_agent's (route_policy, timeout_ms...): a QUEUED
 * reply suspends the task, any other ends it COMPLETED "unrouted: <reply>";
 * the RESUME then completes it with "resumed: <callee's content>". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bygate/handler.h>

/* Chunk the reply text (or the error code) and release it. */
static void show(struct bg_ctx *ctx, int rc, char **reply_p)
{
	char *reply = *reply_p;
	*reply_p = NULL;
	char buf[64];
	if (rc) {
		snprintf(buf, sizeof(buf), "rc %d", rc);
		bg_ctx_chunk(ctx, buf);
	} else {
		bg_ctx_chunk(ctx, reply);
	}
	free(reply);
}

static int route(struct bg_ctx *ctx, const char *options)
{
	char *target = NULL, *reply = NULL, text[4096];
	if (bg_options_get_string(options, "target", &target) != 0)
		return -EINVAL;
	int rc = bg_ctx_call_agent(ctx, target, "routed work", 1, options,
				   &reply);
	free(target);
	if (rc == 0 && strstr(reply, "\"status\":\"QUEUED\"")) {
		show(ctx, rc, &reply);
		return 0; /* WAITING_AGENT */
	}
	snprintf(text, sizeof(text), "unrouted: %s", rc ? "rc" : reply);
	free(reply);
	return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
}

static int process(void *state, const struct bg_task *task, struct bg_ctx *ctx)
{
	const char *what = bg_task_content(task);
	char *reply = NULL, text[4096];
	if (!strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME")) {
		snprintf(text, sizeof(text), "resumed: %s", what);
		return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
	}
	if (!strncmp(what, "route ", 6))
		return route(ctx, what + 6);
	if (!strcmp(what, "ask")) {
		show(ctx, bg_ctx_ask_user(ctx, "Which city?", &reply), &reply);
		return 0; /* no result: WAITING_USER */
	}
	if (!strcmp(what, "call")) {
		show(ctx,
		     bg_ctx_call_agent(ctx, "researcher", "Find hotels", 1,
				       "{\"metadata\": {\"k\": 1}}", &reply),
		     &reply);
		return 0; /* WAITING_AGENT */
	}
	if (!strcmp(what, "handoff")) {
		show(ctx,
		     bg_ctx_call_agent(ctx, "writer", "Write", 0, NULL, &reply),
		     &reply);
		return 0; /* COMPLETED: nothing to wait for */
	}
	if (!strcmp(what, "group")) {
		show(ctx,
		     bg_ctx_dispatch_group(
			     ctx,
			     "[{\"target_agent_type\": \"writer\", "
			     "\"content\": \"a\"}]",
			     1, &reply),
		     &reply);
		return bg_ctx_result(ctx, NULL, "dispatched", NULL, NULL);
	}
	if (!strcmp(what, "kv")) {
		reply = strdup("set");
		show(ctx, bg_ctx_kv_set(ctx, "k", "{\"n\": 1}"), &reply);
		show(ctx, bg_ctx_kv_get(ctx, "k", &reply), &reply);
		show(ctx, bg_ctx_kv_get(ctx, "missing", &reply), &reply);
		return 0;
	}
	if (!strcmp(what, "history")) { /* the conversation so far */
		show(ctx, bg_ctx_history(ctx, 10, &reply), &reply);
		show(ctx, bg_ctx_history(ctx, 0, &reply), &reply);
		return 0;
	}
	if (!strcmp(what, "invalid")) {
		show(ctx, bg_ctx_call_agent(ctx, "", "x", 1, NULL, &reply),
		     &reply);
		show(ctx, bg_ctx_kv_set(ctx, "k", "{not json"), &reply);
		show(ctx, bg_ctx_dispatch_group(ctx, "{}", 1, &reply), &reply);
		return 0;
	}
	if (!strcmp(what, "cancel")) {
		show(ctx, bg_ctx_kv_get(ctx, "k", &reply), &reply);
		return bg_ctx_cancelled(ctx) ? bg_ctx_result(ctx, "CANCELLED",
							     NULL, NULL, NULL)
					     : 0;
	}
	if (!strcmp(what, "dirs")) {
		bg_ctx_chunk(ctx, bg_ctx_private_dir(ctx));
		bg_ctx_chunk(ctx, bg_task_group_results(task));
		return 0;
	}
	return -EINVAL;
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "calls",
	.process = process,
};
