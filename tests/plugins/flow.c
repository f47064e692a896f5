/* tests/plugins/flow.c - multi-agent flows for the integration tests: the
 * agent type's options {"role": ..., "target": ...} choose the behaviour:
 *   caller  ASK: call `target` with the content, wait; RESUME: COMPLETED
 *           "<type> got: <resume content>"
 *   worker  COMPLETED "<type> done: <content>" after one chunk
 *   fanout  ASK: dispatch_group of N (the content) tasks to `target`, wait;
 *           RESUME: COMPLETED with the group results as reply_data
 *   asker   ASK: ask_user; RESUME: COMPLETED "answer: <content>"
 *   counter kv "n" += 1 on every task, content = the new value
 * A caller's or asker's ASK with the content "sleep <ms>" sleeps and is
 * COMPLETED "slept" instead: plain new work of a flow's agent type. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bygate/handler.h>

struct role {
	char *role;
	char *target;
	char *type;
};

static int init(const char *agent_type, const char *options, void **state)
{
	struct role *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -1;
	if (bg_options_get_string(options, "role", &r->role) != 0)
		r->role = strdup("worker");
	if (bg_options_get_string(options, "target", &r->target) != 0)
		r->target = strdup("");
	r->type = strdup(agent_type);
	*state = r;
	return 0;
}

static void fini(void *state)
{
	struct role *r = state;
	free(r->role);
	free(r->target);
	free(r->type);
	free(r);
}

static int said(struct bg_ctx *ctx, const char *fmt, const char *a,
		const char *b)
{
	char text[4096];
	snprintf(text, sizeof(text), fmt, a, b);
	return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
}

static int process(void *state, const struct bg_task *task, struct bg_ctx *ctx)
{
	struct role *r = state;
	const char *content = bg_task_content(task);
	bool resumed = !strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME");
	char *reply = NULL;
	if (!resumed && !strncmp(content, "sleep ", 6) &&
	    (!strcmp(r->role, "caller") || !strcmp(r->role, "asker"))) {
		long ms = strtol(content + 6, NULL, 10);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		return said(ctx, "slept%s%s", "", "");
	}
	if (!strcmp(r->role, "caller")) {
		if (resumed)
			return said(ctx, "%s got: %s", r->type, content);
		bg_ctx_chunk(ctx, "calling");
		int rc = bg_ctx_call_agent(ctx, r->target, content, 1, NULL,
					   &reply);
		free(reply);
		return rc;
	}
	if (!strcmp(r->role, "fanout")) {
		if (resumed)
			return bg_ctx_result(ctx, "COMPLETED", NULL,
					     bg_task_group_results(task), NULL);
		int n = atoi(content);
		char *tasks = malloc((size_t)n * 96 + 8);
		size_t off = 0;
		off += (size_t)sprintf(tasks + off, "[");
		for (int i = 0; i < n; i++)
			off += (size_t)sprintf(
				tasks + off,
				"%s{\"target_agent_type\": \"%s\", "
				"\"content\": \"part %d\"}",
				i ? "," : "", r->target, i);
		sprintf(tasks + off, "]");
		int rc = bg_ctx_dispatch_group(ctx, tasks, 1, &reply);
		free(tasks);
		free(reply);
		return rc;
	}
	if (!strcmp(r->role, "asker")) {
		if (resumed)
			return said(ctx, "answer: %s%s", content, "");
		int rc = bg_ctx_ask_user(ctx, "Which city?", &reply);
		free(reply);
		return rc;
	}
	if (!strcmp(r->role, "counter")) {
		char *v = NULL, text[32];
		long n = 0;
		if (bg_ctx_kv_get(ctx, "n", &v) == 0)
			n = strtol(v, NULL, 10);
		free(v);
		snprintf(text, sizeof(text), "%ld", n + 1);
		bg_ctx_kv_set(ctx, "n", text);
		return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
	}
	bg_ctx_chunk(ctx, "working");
	return said(ctx, "%s done: %s", r->type, content);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "flow",
	.init = init,
	.process = process,
	.shutdown = fini,
};
