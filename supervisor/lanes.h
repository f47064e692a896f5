/* supervisor/lanes.h - the lanes of docs/scheduling.md: what lane a task
 * is in and its priority, from its command by sched.lane_key (each
 * lane's settings: conf/lanes.h). */
#ifndef BG_SUPERVISOR_LANES_H
#define BG_SUPERVISOR_LANES_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/lanes.h"

struct bg_config;
struct bg_cmd;

#define BG_LANE_MAX 128 /* longest lane name kept; longer ones are cut */

/* A task's part in a primer/follower group (docs/scheduling.md, "Primers
 * and followers"): the header's metadata.bygate_role. */
enum bg_task_role {
	BG_ROLE_NONE,	  /* absent or any other value: an ordinary task */
	BG_ROLE_PRIMER,	  /* "primer": a group's first step */
	BG_ROLE_FOLLOWER, /* "follower": runs behind its group's primer */
};

/* The lane of a command under cfg->sched_lane_key, written to out (""
 * is the default lane), its priority (metadata.priority, an integer,
 * clamped to -1000..1000; 0 when absent). agent_type: the handler's. */
void bg_lane_of(const struct bg_config *cfg, const struct bg_cmd *c,
		const char *agent_type, char *out, size_t n, int *priority);
/* The role an ASK_AGENT's metadata.bygate_role gives it; none for any
 * other action (a RESUME carries its callee's metadata). */
enum bg_task_role bg_lane_role(const struct bg_cmd *c);

#endif
