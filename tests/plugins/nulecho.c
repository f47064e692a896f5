/* tests/plugins/nulecho.c - for the strings-with-U+0000 tests: answers what
 * it was given, every byte counted. Content "json:<text>" is answered as
 * <text> through bg_ctx_result_json (U+0000 escaped as \u0000); any other
 * content is answered "content=<len>:<hex> user_name=<len>:<hex>", the
 * lengths and bytes bg_task_content_len() and bg_task_get_len() report. */
#include <bygate/handler.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<name>=<len>:<hex of the n bytes of p>" appended at out + *at. */
static void put_hex(char *out, size_t *at, const char *name, const char *p,
		    size_t n)
{
	*at += (size_t)sprintf(out + *at, "%s=%zu:", name, n);
	for (size_t i = 0; i < n; i++)
		*at += (size_t)sprintf(out + *at, "%02x", (unsigned char)p[i]);
}

/* The n bytes of p as a JSON string literal (malloc'd). */
static char *json_text(const char *p, size_t n)
{
	char *out = malloc(6 * n + 3), *w = out;
	if (out == NULL)
		return NULL;
	*w++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == '"' || c == '\\')
			w += sprintf(w, "\\u%04x", c);
		else
			*w++ = (char)c;
	}
	*w++ = '"';
	*w = '\0';
	return out;
}

static int nulecho_process(void *state, const struct bg_task *task,
			   struct bg_ctx *ctx)
{
	const char *content = bg_task_content(task);
	size_t len = bg_task_content_len(task);
	const char *user = bg_task_get(task, BG_TASK_USER_NAME);
	size_t ulen = bg_task_get_len(task, BG_TASK_USER_NAME);
	int rc;

	if (len >= 5 && memcmp(content, "json:", 5) == 0) {
		char *lit = json_text(content + 5, len - 5);
		if (lit == NULL)
			return bg_ctx_fail(ctx, "nulecho: out of memory");
		rc = bg_ctx_result_json(ctx, NULL, lit, NULL, NULL);
		free(lit);
		return rc;
	}
	char *out = malloc(2 * (len + ulen) + 96);
	size_t at = 0;
	if (out == NULL)
		return bg_ctx_fail(ctx, "nulecho: out of memory");
	put_hex(out, &at, "content", content, len);
	out[at++] = ' ';
	put_hex(out, &at, "user_name", user, ulen);
	rc = bg_ctx_result(ctx, NULL, out, NULL, NULL);
	free(out);
	return rc;
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "nulecho",
	.process = nulecho_process,
};
