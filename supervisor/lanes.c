/* supervisor/lanes.c - lanes and priorities of tasks (see lanes.h). */
#include "supervisor/lanes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "wire/command.h"
#include "wire/json.h"

#define PRIORITY_MAX 1000

/* Copy a decoded string value (a JSON literal) into out, cut at n - 1. */
static void copy_literal(struct bg_str lit, char *out, size_t n)
{
	struct bg_buf b = { 0 };
	out[0] = '\0';
	if (bg_json_type(lit) == '"' && bg_json_unescape(&b, lit) == 0 && b.p)
		snprintf(out, n, "%.*s", (int)b.len, b.p);
	bg_buf_free(&b);
	for (char *p = out; *p; p++) /* a lane is a name: no control bytes */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
}

static void copy_str(struct bg_str s, char *out, size_t n)
{
	snprintf(out, n, "%.*s", (int)s.len, s.p ? s.p : "");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
}

void bg_lane_of(const struct bg_config *cfg, const struct bg_cmd *c,
		const char *agent_type, char *out, size_t n, int *priority)
{
	struct bg_str md = c->hdr[BG_HDR_METADATA], v;
	*priority = 0;
	if (md.len && bg_json_obj_get(md, "priority", &v) == 0 &&
	    bg_json_type(v) == '0') {
		double p = strtod(v.p, NULL); /* an integer, or a float cut */
		*priority = p > PRIORITY_MAX	? PRIORITY_MAX
			    : p < -PRIORITY_MAX ? -PRIORITY_MAX
						: (int)p;
	}
	switch (cfg->sched_lane_key) {
	case BG_LANE_KEY_USER_CODE:
		copy_str(c->hdr[BG_HDR_USER_CODE], out, n);
		return;
	case BG_LANE_KEY_AGENT_TYPE:
		snprintf(out, n, "%s", agent_type ? agent_type : "");
		return;
	case BG_LANE_KEY_SESSION:
		copy_str(c->hdr[BG_HDR_SESSION_ID], out, n);
		return;
	case BG_LANE_KEY_METADATA:
		break;
	}
	out[0] = '\0';
	if (md.len && bg_json_obj_get(md, "lane", &v) == 0)
		copy_literal(v, out, n);
}

enum bg_task_role bg_lane_role(const struct bg_cmd *c)
{
	struct bg_str md = c->hdr[BG_HDR_METADATA], v;
	char role[16];
	/* a RESUME carries its callee's metadata (the callback copies it):
	 * it is the caller's work already started, not a new primer */
	if (c->action != BG_ACTION_ASK_AGENT || md.len == 0 ||
	    bg_json_obj_get(md, "bygate_role", &v) != 0)
		return BG_ROLE_NONE;
	copy_literal(v, role, sizeof(role));
	return strcmp(role, "primer") == 0     ? BG_ROLE_PRIMER
	       : strcmp(role, "follower") == 0 ? BG_ROLE_FOLLOWER
					       : BG_ROLE_NONE;
}
