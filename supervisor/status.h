/* supervisor/status.h - GET /status of bygated's HTTP endpoint
 * (status.c): what `bygate top` shows of one worker, as one JSON object
 * (docs/operations.md, "GET /status"). */
#ifndef BG_SUPERVISOR_STATUS_H
#define BG_SUPERVISOR_STATUS_H

#include "common/buf.h"

struct bg_daemon;

/* Append the status document to out: the worker (id, lifecycle, pool and
 * its generation, counters), each job held in a child (slot, pid, state,
 * agent type, message, session, attempt, lane, elapsed ms) and, per agent
 * type, its outcomes and run-time p50/p99 (upper bound of the histogram
 * bucket, ms). 0 or -ENOMEM. */
int bg_status_render(const struct bg_daemon *d, struct bg_buf *out);

#endif
