/* workflows/plugin.c - the plugin that hosts the workflow agent types
 * (docs/workflows.md): one shared object, configured once per agent type
 * with options = { workflow = "dag"; } (or "group", "fanout"); without the
 * option the agent type's name decides ("bygate.dag" runs a task graph). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/wf.h"

enum wf_kind { WF_DAG, WF_FANOUT, WF_GROUP };

struct wf_state {
	enum wf_kind kind;
};

static int kind_of(const char *name, enum wf_kind *k)
{
	if (strcmp(name, "dag") == 0)
		*k = WF_DAG;
	else if (strcmp(name, "fanout") == 0)
		*k = WF_FANOUT;
	else if (strcmp(name, "group") == 0)
		*k = WF_GROUP;
	else
		return -EINVAL;
	return 0;
}

static int wf_init(const char *agent_type, const char *options_json,
		   void **state)
{
	char *name = NULL;
	enum wf_kind k;
	int rc = bg_options_get_string(options_json, "workflow", &name);
	if (rc == -ENOENT) {
		const char *dot = strrchr(agent_type, '.');
		rc = kind_of(dot ? dot + 1 : agent_type, &k);
	} else if (rc == 0) {
		rc = kind_of(name, &k);
	}
	free(name);
	if (rc < 0)
		return rc;
	struct wf_state *st = malloc(sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->kind = k;
	*state = st;
	return 0;
}

static int wf_process(void *state, const struct bg_task *task,
		      struct bg_ctx *ctx)
{
	const struct wf_state *st = state;
	switch (st->kind) {
	case WF_DAG:
		return wf_dag_process(task, ctx);
	case WF_FANOUT:
		return wf_fanout_process(task, ctx);
	case WF_GROUP:
		return wf_group_process(task, ctx);
	}
	return bg_ctx_fail(ctx, "unknown workflow kind");
}

static void wf_shutdown(void *state)
{
	free(state);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "bygate-workflows",
	.init = wf_init,
	.process = wf_process,
	.shutdown = wf_shutdown,
};
