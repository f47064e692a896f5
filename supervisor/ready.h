/* supervisor/ready.h - the fleet's ready set (docs/scheduling.md): the
 * backlog of an agent type, ordered by lane and priority in Redis, from
 * which every bygated takes the next tasks fairly.
 *
 * An entry read from an agent-type stream that cannot start here at once
 * is "parked": one script moves it, still pending, to the group's
 * consumer "bygate:ready" (XCLAIM JUSTID, its delivery not counted) and
 * files its id in its lane's sorted set, scored by its send time minus
 * priority x sched.priority_aging_ms (a RESUME first). A worker with free
 * places "picks": one script chooses lanes by stride scheduling over
 * fleet-wide passes (1 / weight per start), pops the best id of the lane
 * and XCLAIMs the entry to itself, in the same step. The entry is in some
 * consumer's pending list at every moment, so nothing is lost with any
 * process; an entry deleted meanwhile is skipped.
 *
 * Enabled by sched.window > 0 (the most entries one read moves). */
#ifndef BG_SUPERVISOR_READY_H
#define BG_SUPERVISOR_READY_H

#include <stdbool.h>
#include <stdint.h>

#include "supervisor/redis.h"

struct bg_daemon;
struct bg_job;

#define BG_READY_CONSUMER "bygate:ready"

bool bg_ready_enabled(const struct bg_daemon *d);
/* Park t (a fresh ASK_AGENT or RESUME of an agent-type stream): its entry
 * goes to the ready set with the next flush and t is freed. */
void bg_ready_park(struct bg_daemon *d, struct bg_job *t);
/* Send the parked entries: one script per stream (turn end). */
void bg_ready_flush(struct bg_daemon *d);
/* Whether stream i's ready set may hold entries (from the last move or
 * pick here; peers' moves are seen by polling). */
bool bg_ready_maybe_waiting(const struct bg_daemon *d, int stream_idx);
/* Whether primers may wait in a ready set of this worker's agent types:
 * parked here, or left by a pick here, within the last second (peers'
 * are seen by picking; a worker with an idle child picks at least every
 * 100 ms, so the answer is fresh whenever it matters). */
bool bg_ready_primers_waiting(const struct bg_daemon *d);
/* Ask stream i's ready set for up to n entries for this worker, none of
 * the `excluded` lanes (at their cap here), primers first: fn gets the
 * reply {entries, lanes left, primers left} (entries as XRANGE gives
 * them). 0, or -errno (nothing sent). */
int bg_ready_pick(struct bg_daemon *d, int stream_idx, int n,
		  const char *const *excluded, int n_excluded,
		  bg_rconn_reply_fn fn, void *priv);
/* The reply of a pick: note whether lanes are left; the entries. */
redisReply *bg_ready_pick_entries(struct bg_daemon *d, int stream_idx,
				  redisReply *r);
void bg_ready_free(struct bg_daemon *d);

#endif
