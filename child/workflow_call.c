/* child/workflow_call.c - bg_ctx_call_workflow, the C SDK's one call to
 * start a workflow (bygate.dag, bygate.group, bygate.fanout; issue 13) as
 * a sub-call: a call_agent that waits for the workflow's result. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bygate/handler.h"

#define AGENT_TYPE_MAX 128

static const char *const kinds[] = { "dag", "group", "fanout" };

static bool is_kind(const char *kind)
{
	for (size_t i = 0; kind && i < sizeof kinds / sizeof *kinds; i++)
		if (!strcmp(kind, kinds[i]))
			return true;
	return false;
}

/* The agent type to call: options' "agent_type" (removed from options),
 * else "bygate.<kind>", into out[AGENT_TYPE_MAX + 1]. 0 or -EINVAL. */
static int target_of(const char *kind, json_t *options, char *out)
{
	json_t *given = json_object_get(options, "agent_type");
	const char *t = json_string_value(given);
	if (given && (t == NULL || !t[0] || strlen(t) > AGENT_TYPE_MAX))
		return -EINVAL;
	if (t)
		strcpy(out, t);
	else
		strcat(strcpy(out, "bygate."), kind);
	return given ? json_object_del(options, "agent_type") : 0;
}

int bg_ctx_call_workflow(struct bg_ctx *ctx, const char *kind,
			 const char *spec_json, const char *options_json,
			 char **reply)
{
	char target[AGENT_TYPE_MAX + 1];
	json_t *spec =
		spec_json ? json_loads(spec_json, JSON_REJECT_DUPLICATES, NULL)
			  : NULL;
	json_t *options = options_json ? json_loads(options_json, 0, NULL)
				       : json_object();
	char *content = NULL, *opts = NULL;
	int rc = -EINVAL;
	if (reply)
		*reply = NULL;
	if (is_kind(kind) && json_is_object(spec) && json_is_object(options) &&
	    target_of(kind, options, target) == 0) {
		content = json_dumps(spec, JSON_COMPACT);
		opts = json_dumps(options, JSON_COMPACT);
		rc = content && opts ? bg_ctx_call_agent(ctx, target, content,
							 1, opts, reply)
				     : -ENOMEM;
	}
	free(content);
	free(opts);
	json_decref(spec);
	json_decref(options);
	return rc;
}
