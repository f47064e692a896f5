/* supervisor/pickup.h - the first stage of a task (pickup.c): every
 * stream entry read, reclaimed or replayed enters bygated here. */
#ifndef BG_SUPERVISOR_PICKUP_H
#define BG_SUPERVISOR_PICKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

struct bg_daemon;

/* An entry read with XREADGROUP (data = its `data` field). */
void bg_pickup_accept(struct bg_daemon *d, int stream_idx, const char *id,
		      const char *data, size_t data_len, bool has_data);
/* An entry fetched again by recovery or reclaim: its delivery count and
 * the times bygated died while it ran alone are known; the attempts
 * already counted against it come from LMDB. */
void bg_pickup_accept_recovered(struct bg_daemon *d, int stream_idx,
				const char *id, const char *data,
				size_t data_len, bool has_data, int deliveries,
				int alone_crashes);
/* A finish read from the journal: sent again as it was. */
void bg_pickup_replay_finish(struct bg_daemon *d, int stream_idx,
			     const char *id, struct bg_str blob);
/* The write connection is back: send the registry reads it lost. */
void bg_pickup_on_wr_up(struct bg_daemon *d);

#endif
