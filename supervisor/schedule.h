/* supervisor/schedule.h - placing queued jobs onto children and the read
 * capacity (schedule.c). */
#ifndef BG_SUPERVISOR_SCHEDULE_H
#define BG_SUPERVISOR_SCHEDULE_H

#include <stdbool.h>

struct bg_daemon;

/* Free capacity for entries that need a child to themselves (`alone`)
 * and for entries that may share one (`shared`, DESIGN 5): places in
 * children that are or will soon be free plus a small prefetch
 * (min(worker.fetch_count, pool.size)), minus the entries that still need
 * a child (picked up, queued, running). Entries whose finish is in flight
 * hold no child and do not count, up to a bound of 4 x pool.size finishes
 * (e.g. while Redis refuses writes) beyond which reading stops; nothing
 * while suspects run (one at a time) or no child is alive. */
struct bg_capacity {
	int alone, shared;
};
struct bg_capacity bg_schedule_room(const struct bg_daemon *d);
/* The larger of the two (metrics, /health). */
int bg_schedule_capacity(const struct bg_daemon *d);
/* Agent-type stream i's tasks may share a child (max_inflight > 1). */
bool bg_schedule_stream_shares(const struct bg_daemon *d, int i);

/* Place queued jobs in order (schedule.c explains the rule). */
void bg_schedule_dispatch(struct bg_daemon *d);

#endif
