/* child/run.c - one TASK to its RESULT in this process: decoded into its
 * struct bg_ctx (ctx.c), then the process() of its plugin, or its exec
 * program (exec.c) together with the exec tasks that join it meanwhile.
 * main.c runs a TASK here or, for a strict agent type, in a task process
 * of its own (taskproc.c), which runs it here in turn. */
#include "child/child.h"

#include <stdio.h>

/* The plugin's process() for ctx; a non-zero return without a result fails
 * the task. */
static void call_handler(struct bg_child_proc *c, struct bg_ctx *ctx)
{
	struct bg_agent *a = ctx->agent;
	c->running = ctx;
	int rc = a->plugin->h->process(a->state, ctx->task, ctx);
	c->running = NULL;
	if (!ctx->has_result && rc != 0) {
		char msg[48];
		snprintf(msg, sizeof(msg), "handler returned %d", rc);
		bg_child_fail_task(ctx, msg);
	}
}

void bg_child_run(struct bg_child_proc *c, const struct bg_child_msg *m)
{
	struct bg_ctx *ctx = bg_child_ctx_new(c, m);
	if (ctx == NULL)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "out of memory for the task of tag %llu",
			     (unsigned long long)m->tag);
	if (ctx->has_result) {
		bg_child_finish(c, ctx);
	} else if (ctx->agent->exec) {
		bg_child_exec_start(c, ctx);
		bg_child_exec_drain(c);
	} else {
		call_handler(c, ctx);
		bg_child_finish(c, ctx);
	}
}
