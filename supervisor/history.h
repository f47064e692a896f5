/* supervisor/history.h - the fleet's metrics history (WIRE 9.3): one
 * process of the fleet, a bygated or a Python worker, holds
 * by_framework:obs:collector_lock (SET NX EX max(3 x interval, 15) s,
 * refreshed by its holder) and adds a point to the ZSET
 * by_framework:obs:history every metrics.history_interval_s, trimming
 * points older than 2 h. Here one script per interval takes or refreshes
 * the lock and, when this bygated holds it, builds the point from what
 * Redis shows (worker leases and counters of WIRE 5.9, the consumer
 * group of each agent type this bygated serves, the dead letters) and
 * adds it; no reply is waited for by any task. */
#ifndef BG_SUPERVISOR_HISTORY_H
#define BG_SUPERVISOR_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

struct bg_daemon;

/* Start the interval timer when metrics.history is on (d->history).
 * 0 or -ENOMEM. */
int bg_history_start(struct bg_daemon *d);
/* Stop it and release the lock if this bygated holds it (DEL by a
 * script that checks the holder first); the caller lets the write
 * connection drain. */
void bg_history_stop(struct bg_daemon *d);
/* Does this bygated hold the lock (as of its last interval)? */
bool bg_history_holder(const struct bg_daemon *d);
/* Points this bygated added. */
uint64_t bg_history_points(const struct bg_daemon *d);

#endif
