/* examples/plugins/noop.c - the handler that does nothing: answers
 * COMPLETED with the content "ok" and streams no chunk. It is what
 * `make bench` runs, so the figures measure bygate itself, not a handler. */
#include <bygate/handler.h>

static int noop_process(void *state, const struct bg_task *task,
			struct bg_ctx *ctx)
{
	(void)state;
	(void)task;
	return bg_ctx_result(ctx, NULL, "ok", NULL, NULL);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "noop",
	.process = noop_process,
};
