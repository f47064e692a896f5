/* examples/plugins/sleep.c - a handler with configuration and cooperative
 * cancel: sleeps for the number of milliseconds given as the content (a
 * decimal integer), else for its `default_ms` option (default 20), then
 * answers the content. A cancelled sleep ends early with CANCELLED. */
#include <bygate/handler.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define SLEEP_DEFAULT_MS 20
#define SLEEP_MAX_MS (24LL * 3600 * 1000)
#define SLEEP_SLICE_MS 10 /* how often the cancel flag is checked */

struct sleep_state {
	long long default_ms;
};

static int sleep_init(const char *agent_type, const char *options_json,
		      void **state)
{
	long long ms = SLEEP_DEFAULT_MS;
	int rc = bg_options_get_int(options_json, "default_ms", &ms);
	if ((rc && rc != -ENOENT) || ms < 0 || ms > SLEEP_MAX_MS)
		return -EINVAL;
	struct sleep_state *st = malloc(sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->default_ms = ms;
	*state = st;
	return 0;
}

/* The content as a millisecond count, or -1 when it is not one. */
static long long parse_ms(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > SLEEP_MAX_MS)
		return -1;
	return v;
}

static void sleep_ms(long long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int sleep_process(void *state, const struct bg_task *task,
			 struct bg_ctx *ctx)
{
	const struct sleep_state *st = state;
	const char *content = bg_task_content(task);
	long long ms = parse_ms(content);
	if (ms < 0)
		ms = st->default_ms;
	for (; ms > 0; ms -= SLEEP_SLICE_MS) {
		if (bg_ctx_cancelled(ctx))
			return bg_ctx_result(ctx, "CANCELLED", NULL, NULL,
					     NULL);
		sleep_ms(ms < SLEEP_SLICE_MS ? ms : SLEEP_SLICE_MS);
	}
	return bg_ctx_result(ctx, NULL, content, NULL, NULL);
}

static void sleep_shutdown(void *state)
{
	free(state);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "sleep",
	.init = sleep_init,
	.process = sleep_process,
	.shutdown = sleep_shutdown,
};
