/* client/cli/top.h - `bygate top`'s parts (top.c: the command, the live
 * sample, the screen; top_replay.c: the same frame rebuilt from an event
 * log). A frame is one JSON document, printed by --once --json:
 *   {"source": "live"|"replay", "now_ms",
 *    "workers": [{"worker_id", "online", "lifecycle", "generation",
 *                 "pool": {"size", "busy", ...}, "tasks", "http"}],
 *    "agent_types": [{"agent_type", "length", "lag", "pending",
 *                     "backlog", "oldest_pending_age_ms", "consumers",
 *                     "running", "rate", "run_ms_p50", "run_ms_p99",
 *                     "done", "failed"}],
 *    "lanes": [{"agent_type", "lane", "waiting", "oldest_age_ms",
 *               "fleet_running"}] (live only: the fleet's ready set),
 *    "children": [{"worker_id", "slot", "pid", "state", "agent_type",
 *                  "message_id", "session_id", "elapsed_ms"}],
 *    "failures": [{"ts_ms", "agent_type", "message_id", "status",
 *                  "error"}]}
 * A value nobody knows is null (the queue counts in a replay, the
 * children of a worker without a reachable HTTP endpoint). */
#ifndef BG_CLIENT_CLI_TOP_H
#define BG_CLIENT_CLI_TOP_H

#include <stdint.h>

#include <jansson.h>

struct top_replay;

/* An empty model of a run; NULL when out of memory. */
struct top_replay *top_replay_new(void);
void top_replay_free(struct top_replay *r);
/* Apply one event of the log (a JSON object of docs/operations.md). */
void top_replay_take(struct top_replay *r, const json_t *ev);
/* The frame at log time now_ms: backlog (queued or retrying, not
 * started), running, rates over the last second, p50/p99 of the last
 * 1,000 run times, the last failures. A new reference. */
json_t *top_replay_frame(const struct top_replay *r, int64_t now_ms);

#endif
