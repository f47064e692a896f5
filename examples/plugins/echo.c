/* examples/plugins/echo.c - the smallest useful handler: streams the
 * request content back in about three chunks cut at word boundaries, then
 * answers COMPLETED with the whole text. Build: cc -shared -fPIC -I include
 * -o echo.so examples/plugins/echo.c */
#include <bygate/handler.h>

#include <stdlib.h>
#include <string.h>

#define ECHO_PIECES 3

/* End of the piece that should end near `from`: just past the next space
 * at or after it, or the end of the text. */
static size_t piece_end(const char *s, size_t len, size_t from)
{
	while (from < len && s[from] != ' ')
		from++;
	return from < len ? from + 1 : len;
}

static int echo_process(void *state, const struct bg_task *task,
			struct bg_ctx *ctx)
{
	const char *text = bg_task_content(task);
	size_t len = strlen(text), start = 0;
	for (int i = 1; i <= ECHO_PIECES && start < len; i++) {
		size_t target = len * (size_t)i / ECHO_PIECES;
		size_t end = i == ECHO_PIECES ? len
					      : piece_end(text, len, target);
		if (end <= start)
			continue;
		char *piece = strndup(text + start, end - start);
		if (piece == NULL)
			return bg_ctx_fail(ctx, "out of memory");
		int rc = bg_ctx_chunk(ctx, piece);
		free(piece);
		if (rc)
			return rc;
		start = end;
	}
	return bg_ctx_result(ctx, NULL, text, NULL, NULL);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "echo",
	.process = echo_process,
};
