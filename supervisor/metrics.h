/* supervisor/metrics.h - bygated's counters for /metrics (Prometheus text)
 * and /readyz. The daemon calls the bg_metrics_* hooks where things happen;
 * supervisor/http.c renders them. All on the event loop: no locking. */
#ifndef BG_SUPERVISOR_METRICS_H
#define BG_SUPERVISOR_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

struct bg_daemon;
struct bg_metrics;

/* Task outcomes as labels: completed, failed, cancelled, deadlettered,
 * acked (terminal replay or ignored command), suspended (non-terminal). */
struct bg_metrics *bg_metrics_new(void);
/* Free after the Redis connections: a pending XPENDING reply still
 * reaches the metrics (as NULL) when the control connection is freed. */
void bg_metrics_free(struct bg_metrics *m);

/* Register the configured agent types (their series exist from the start)
 * and refresh the pending-entries gauges every 5 s on the control
 * connection (XPENDING summary and XPENDING - + 1 <worker> per stream).
 * Called by bg_http_start; d->metrics NULL is a no-op. 0 or -ENOMEM. */
int bg_metrics_start(struct bg_daemon *d);
/* Stop the refresh timer (before event_base_free); idempotent. */
void bg_metrics_stop(struct bg_metrics *m);

/* A finish was applied: agent type, outcome label, run time (dispatch to
 * result, 0 if never dispatched) and queue wait (read to dispatch). */
void bg_metrics_task_done(struct bg_metrics *m, const char *agent_type,
			  const char *outcome, int64_t run_ms,
			  int64_t queue_wait_ms);
/* A child process ended: reason label (crash, timeout, cancel, recycle,
 * protocol, shutdown, fatal). */
void bg_metrics_child_exit(struct bg_metrics *m, const char *reason);
/* The down ring of a child was full when a task or record had to go. */
void bg_metrics_ring_stall(struct bg_metrics *m);
void bg_metrics_retry(struct bg_metrics *m);
void bg_metrics_reclaimed(struct bg_metrics *m, bool from_peer);
void bg_metrics_lease_lapse(struct bg_metrics *m);
void bg_metrics_unknown_outcome(struct bg_metrics *m);
/* A copy of a send acknowledged unrun because of its idempotency key
 * (supervisor/idem.c), once its finish was applied. */
void bg_metrics_idem_duplicate(struct bg_metrics *m, const char *agent_type);

/* Render everything (plus the gauges read from the daemon: pool, LMDB,
 * Redis connections, PEL, lease) as Prometheus text format 0.0.4. */
int bg_metrics_render(const struct bg_daemon *d, struct bg_buf *out);

#endif
