/* tests/plugins/emitall.c - emits one event of each streamed kind (chunk,
 * state, artifact, sub_step) in that order, then answers COMPLETED with
 * "Itinerary ready" (the literal values of WIRE 3.7). */
#include <bygate/handler.h>

static int emitall_process(void *state, const struct bg_task *task,
			   struct bg_ctx *ctx)
{
	int rc;
	if ((rc = bg_ctx_chunk(ctx, "Hello")) ||
	    (rc = bg_ctx_state(ctx, "A_CALLING_B")) ||
	    (rc = bg_ctx_artifact(ctx, "https://files.example/report.pdf")) ||
	    (rc = bg_ctx_sub_step(ctx, "step one")))
		return rc;
	return bg_ctx_result(ctx, NULL, "Itinerary ready", NULL, NULL);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "emitall",
	.process = emitall_process,
};
