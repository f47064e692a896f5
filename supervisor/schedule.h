/* supervisor/schedule.h - placing queued jobs onto children and the read
 * capacity (schedule.c). */
#ifndef BG_SUPERVISOR_SCHEDULE_H
#define BG_SUPERVISOR_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

struct bg_daemon;
struct bg_job;

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
/* Places free now for stream i's tasks, without the prefetch: what
 * may start at once (negative: that many wait). */
int bg_schedule_free_places(const struct bg_daemon *d, int stream_idx);
/* The larger of the two (metrics, /health). */
int bg_schedule_capacity(const struct bg_daemon *d);
/* Agent-type stream i's tasks may share a child (max_inflight > 1). */
bool bg_schedule_stream_shares(const struct bg_daemon *d, int i);

/* Primers and followers (docs/scheduling.md): the places of this
 * worker's pool kept for primers under sched.primer_share (0: off, or a
 * pool of one child; else at least 1 and at most pool.size - 1). */
int bg_schedule_primer_places(const struct bg_daemon *d);
/* Primer t (picked up, not yet queued) stays here, first in line for
 * the next free child, instead of going to the ready set: the share is
 * on and this worker holds no more waiting primers than its places for
 * them (at least one). */
bool bg_schedule_keeps_primer(const struct bg_daemon *d,
			      const struct bg_job *t);

/* Start queued jobs while children have room: primers first, then
 * lanes by weight, then priority with aging, within the local caps; a
 * follower leaves the primers' places free while a primer waits here
 * or in a ready set (schedule.c). */
void bg_schedule_dispatch(struct bg_daemon *d);
/* Each lane seen here (as of the last dispatch pass): its name, tasks
 * running and queued here, tasks started here and the seconds they
 * waited in all, from their send (the entry id) to their start. */
typedef void (*bg_schedule_lane_fn)(void *ctx, const char *lane, int running,
				    int queued, uint64_t started,
				    double wait_s);
void bg_schedule_lanes(const struct bg_daemon *d, bg_schedule_lane_fn fn,
		       void *ctx);
/* Agent type `type` (index of cfg->agent_types) runs its max_running
 * here (as of the last dispatch pass). */
bool bg_schedule_type_full(const struct bg_daemon *d, int type);
/* The lanes at their max_running here (names, at most n; valid until
 * the next dispatch pass). */
int bg_schedule_capped_lanes(const struct bg_daemon *d, const char **out,
			     int n);
/* At exit. */
void bg_schedule_free(struct bg_daemon *d);

#endif
