/* supervisor/pickup.h - the first stage of a task (pickup.c): every
 * stream entry read, reclaimed or replayed enters bygated here. */
#ifndef BG_SUPERVISOR_PICKUP_H
#define BG_SUPERVISOR_PICKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

struct bg_daemon;
struct bg_entry_body;

/* An entry read with XREADGROUP, its `data` field in b (entry_read.h:
 * b->data is taken over). may_park: a task that cannot start here at
 * once goes to the ready set (ready.h); false for entries picked from
 * it. */
void bg_pickup_accept(struct bg_daemon *d, int stream_idx, const char *id,
		      struct bg_entry_body *b, bool may_park);
/* An entry fetched again by recovery or reclaim: its delivery count and
 * the times bygated died while it ran alone are known; the attempts
 * already counted against it come from LMDB. */
void bg_pickup_accept_recovered(struct bg_daemon *d, int stream_idx,
				const char *id, struct bg_entry_body *b,
				int deliveries, int alone_crashes);
/* A finish read from the journal: sent again as it was. */
void bg_pickup_replay_finish(struct bg_daemon *d, int stream_idx,
			     const char *id, struct bg_str blob);
/* The write connection is back: send the registry reads it lost. */
void bg_pickup_on_wr_up(struct bg_daemon *d);
/* Read t's record again and decide anew (a RESUME that waited for a run of
 * its execution to end: admit.c). */
void bg_pickup_again(struct bg_daemon *d, struct bg_job *t);

#endif
