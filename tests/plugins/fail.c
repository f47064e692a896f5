/* tests/plugins/fail.c - always fails its task with bg_ctx_fail("boom"). */
#include <bygate/handler.h>

static int fail_process(void *state, const struct bg_task *task,
			struct bg_ctx *ctx)
{
	return bg_ctx_fail(ctx, "boom");
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "fail",
	.process = fail_process,
};
