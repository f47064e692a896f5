/* tests/plugins/taker.c - a handler that takes the RESUMEs waiting for its
 * run (bg_ctx_next_resume; tests/integration/test_workflows.py). On the
 * ASK, content N: N sub-calls to agent type "sleep" (content "200"),
 * waiting for their replies. On each RESUME: the callback, plus every one
 * it takes, is counted into kv "seen"; at N it ends COMPLETED with
 * "seen N". With option crash = 1, an attempt 1 that took any crashes
 * after taking them (its finish, their acknowledgement with it, never
 * applied). */
#include <bygate/handler.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct taker {
	long long crash;
};

static int taker_init(const char *agent_type, const char *options_json,
		      void **state)
{
	(void)agent_type;
	struct taker *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	bg_options_get_int(options_json, "crash", &t->crash);
	*state = t;
	return 0;
}

static int taker_process(void *state, const struct bg_task *task,
			 struct bg_ctx *ctx)
{
	const struct taker *tk = state;
	char *reply = NULL, buf[64];
	if (!bg_task_is_resumed(task)) {
		int n = atoi(bg_task_content(task));
		for (int i = 0; i < n; i++) {
			if (bg_ctx_call_agent(ctx, "sleep", "200", 1, NULL,
					      &reply) < 0)
				return bg_ctx_fail(ctx, "call_agent failed");
			free(reply);
		}
		snprintf(buf, sizeof(buf), "%d", n);
		return bg_ctx_kv_set(ctx, "want", buf) < 0
			       ? bg_ctx_fail(ctx, "kv_set failed")
			       : 0;
	}
	int taken = 0;
	char *r = NULL;
	while (bg_ctx_next_resume(ctx, &r) == 0) {
		free(r);
		taken++;
	}
	if (tk->crash && taken > 0 && bg_task_attempt(task) == 1)
		_exit(70); /* the child dies mid-run: nothing of it applied */
	long long seen = 0, want = 0;
	if (bg_ctx_kv_get(ctx, "seen", &reply) == 0)
		seen = atoll(reply);
	free(reply);
	reply = NULL;
	if (bg_ctx_kv_get(ctx, "want", &reply) == 0)
		want = atoll(reply);
	free(reply);
	seen += 1 + taken;
	snprintf(buf, sizeof(buf), "%lld", seen);
	if (bg_ctx_kv_set(ctx, "seen", buf) < 0)
		return bg_ctx_fail(ctx, "kv_set failed");
	if (seen == want) {
		snprintf(buf, sizeof(buf), "seen %lld", seen);
		return bg_ctx_result(ctx, "COMPLETED", buf, NULL, NULL);
	}
	return bg_ctx_result(ctx, "WAITING_AGENT", NULL, NULL, NULL);
}

static void taker_shutdown(void *state)
{
	free(state);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "taker",
	.init = taker_init,
	.process = taker_process,
	.shutdown = taker_shutdown,
};
