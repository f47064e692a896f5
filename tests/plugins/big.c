/* tests/plugins/big.c - for fragmentation tests: content = decimal N; emits
 * one chunk of N bytes of 'x' and answers N bytes of 'x'. An emit error
 * (e.g. -EMSGSIZE past max_message_bytes) is returned as the handler's
 * code, so the task fails with "handler returned <rc>". */
#include <bygate/handler.h>

#include <stdlib.h>
#include <string.h>

#define BIG_MAX (64u << 20)

static int big_process(void *state, const struct bg_task *task,
		       struct bg_ctx *ctx)
{
	char *end;
	unsigned long n = strtoul(bg_task_content(task), &end, 10);
	if (*end || n > BIG_MAX)
		return bg_ctx_fail(ctx, "big: content must be a byte count");
	char *text = malloc(n + 1);
	if (text == NULL)
		return bg_ctx_fail(ctx, "big: out of memory");
	memset(text, 'x', n);
	text[n] = '\0';
	int rc = bg_ctx_chunk(ctx, text);
	if (rc == 0)
		rc = bg_ctx_result(ctx, NULL, text, NULL, NULL);
	free(text);
	return rc;
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "big",
	.process = big_process,
};
