/* tests/plugins/wfcall.c - test plugin for bg_ctx_call_workflow
 * (tests/integration/test_workflow_cli.py): the task content is
 * "<kind> <options JSON or -> <spec JSON>"; the call's reply is streamed
 * as a chunk and the task waits (WAITING_AGENT), or, when the call fails,
 * it completes with "rc <code>". The RESUME completes it with
 * "resumed: <the RESUME's body JSON>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bygate/handler.h>

#define WORD_MAX 512

/* Copy the word at *s (up to a space) into out[WORD_MAX], advance *s. */
static void word(const char **s, char *out)
{
	size_t n = strcspn(*s, " ");
	n = n < WORD_MAX - 1 ? n : WORD_MAX - 1;
	memcpy(out, *s, n);
	out[n] = '\0';
	*s += strcspn(*s, " ");
	*s += **s == ' ';
}

static int process(void *state, const struct bg_task *task, struct bg_ctx *ctx)
{
	(void)state;
	char kind[WORD_MAX], options[WORD_MAX], text[8192];
	if (bg_task_is_resumed(task)) {
		snprintf(text, sizeof(text), "resumed: %s",
			 bg_task_body_json(task));
		return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
	}
	const char *rest = bg_task_content(task);
	word(&rest, kind);
	word(&rest, options);
	char *reply = NULL;
	int rc = bg_ctx_call_workflow(
		ctx, kind, rest, strcmp(options, "-") ? options : NULL, &reply);
	if (rc) {
		snprintf(text, sizeof(text), "rc %d", rc);
		return bg_ctx_result(ctx, "COMPLETED", text, NULL, NULL);
	}
	bg_ctx_chunk(ctx, reply);
	free(reply);
	return 0;
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "wfcall",
	.process = process,
};
