/* tests/plugins/crash.c - misbehaves on request, for crash tests. Content
 * "kill": one chunk, then SIGKILL; "abort": abort(); "hang": ignore SIGTERM
 * and sleep forever; "ok": COMPLETED. Anything else fails the task. */
#include <bygate/handler.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int crash_process(void *state, const struct bg_task *task,
			 struct bg_ctx *ctx)
{
	const char *what = bg_task_content(task);
	if (strcmp(what, "kill") == 0) {
		bg_ctx_chunk(ctx, "about to die");
		raise(SIGKILL);
	} else if (strcmp(what, "abort") == 0) {
		abort();
	} else if (strcmp(what, "hang") == 0) {
		signal(SIGTERM, SIG_IGN);
		for (;;)
			pause();
	} else if (strcmp(what, "ok") == 0) {
		return bg_ctx_result(ctx, NULL, "ok", NULL, NULL);
	}
	return bg_ctx_fail(ctx, "crash: unknown request");
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "crash",
	.process = crash_process,
};
