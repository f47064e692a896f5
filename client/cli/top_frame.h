/* client/cli/top_frame.h - `bygate top`'s parts: top.c (the command and the
 * replay driver), top_http.c (GET /status), top_live.c (a frame from the
 * fleet), top_screen.c (the terminal), top_replay.c (a frame rebuilt from
 * an event log). A frame is one JSON document, printed by --once --json:
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
#ifndef BG_CLIENT_CLI_TOP_FRAME_H
#define BG_CLIENT_CLI_TOP_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define TOP_MAX_HTTP 16
/* Sorts of the agent types, the key `s` cycles through (top_screen.c). */
#define TOP_N_SORTS 6
extern const char *const top_sort_keys[TOP_N_SORTS];

struct cli;

/* The command's state (top.c). */
struct top {
	struct cli *cli;
	bool once;
	int interval_ms;
	int sort; /* index of top_sort_keys */
	char filter[128];
	const char *replay;
	double speed;
	char *http[TOP_MAX_HTTP]; /* "host:port" */
	int n_http;
	json_t *prev; /* live: agent type -> [done total, mono ms] */
};

/* A string member, "" when absent; a number member (0 when absent), and
 * whether it is one. */
static inline const char *top_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static inline bool top_known(const json_t *o, const char *key)
{
	return json_is_number(json_object_get(o, key));
}

static inline double top_num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* top_http.c: the JSON body of GET /status on HOST:PORT; NULL when
 * unreachable within a second or not a 200 with a JSON object. */
json_t *top_get_status(const char *hostport);

/* top_live.c: one frame from Redis (tp->cli's client, connected) and
 * each endpoint of tp->http; rates against tp->prev, which it updates. */
json_t *top_sample_live(struct top *tp);

/* top_screen.c: the frame drawn over the terminal (escape codes, cut to
 * its size); printed for scripts (text, or JSON with --json); the
 * terminal put in (and out of) raw mode with SIGINT/SIGTERM caught; keys
 * read for up to ms: false when the view should end (q, a signal). */
void top_draw(struct top *tp, json_t *frame);
void top_emit(struct top *tp, json_t *frame);
void top_raw_terminal(void);
void top_restore_terminal(void);
bool top_keys(struct top *tp, int ms);

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
