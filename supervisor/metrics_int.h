/* supervisor/metrics_int.h - the counters' storage, shared by the files
 * that count (metrics.c) and render (metrics_page.c, and status.c's
 * per-agent-type part of /status); nothing else includes it. */
#ifndef BG_SUPERVISOR_METRICS_INT_H
#define BG_SUPERVISOR_METRICS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "supervisor/promtext.h"

struct event;

/* Distinct agent_type label values; the agent type of a task routed to the
 * worker stream comes from the entry (untrusted), so the label set is
 * bounded: further names, and names over 128 bytes, count as "_other". */
#define MAX_TYPES 32
#define TYPE_NAME_MAX 128

#define N_OUTCOMES 7
#define N_REASONS 8
/* Label values; the last of each is "other". */
extern const char *const bg_metrics_outcomes[N_OUTCOMES];
extern const char *const bg_metrics_exit_reasons[N_REASONS];

struct type_stats {
	char name[TYPE_NAME_MAX + 1];
	uint64_t tasks[N_OUTCOMES];
	uint64_t idem_duplicates; /* copies of a send stopped by their
				     idempotency key (also tasks "acked") */
	struct bg_prom_hist run;
};

/* One stream's pending entries list: the group's (XPENDING summary) and
 * this worker's (count from the summary, oldest from XPENDING - + 1 W). */
struct pel_stat {
	struct bg_metrics *m;
	bool known; /* a summary reply was understood */
	uint64_t count, own;
	int64_t min_ms, own_min_ms; /* ms part of the oldest id, 0 = none */
	bool lag_known; /* XINFO GROUPS gave the group's lag (Redis 7) */
	int64_t lag;	/* entries of the stream not yet read by the group */
};

struct bg_metrics {
	struct type_stats types[MAX_TYPES + 1]; /* [MAX_TYPES] = "_other" */
	int n_types;
	struct bg_prom_hist queue_wait;
	uint64_t child_exits[N_REASONS];
	uint64_t ring_stalls, retries, reclaimed_own, reclaimed_peer;
	uint64_t lease_lapses, unknown_outcomes;

	struct bg_daemon *d; /* set by bg_metrics_start */
	struct event *pel_timer;
	struct pel_stat *pel; /* [d->n_streams] */
	int pel_n;
	int pel_calls; /* XPENDING replies outstanding */
};

#endif
