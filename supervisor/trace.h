/* supervisor/trace.h - the trace spans bygated writes for the executions
 * it runs (WIRE 9.2): worker.execute per execution that ran,
 * client.dispatch per call_agent, agent.dispatch_group per group,
 * agent.return per callback, agent.cancel per cancelled execution, the
 * trace's meta hash (and its end when a root execution ends), and the
 * session, worker and agent-type indexes.
 *
 * Off the task path: a span is built and kept in memory when its event
 * happens; every trace.flush_ms all kept spans go to Redis in one
 * pipeline on the write connection (one script call per trace, two
 * commands per index key), with no reply waited for by any task. Best
 * effort like the reference: a flush lost with the connection is
 * counted, never retried. Sampled per trace id (wire/span.h), capped at
 * trace.max_spans_per_trace per trace and at trace.max_kept_spans kept
 * between two flushes; a flush that finds the write connection 32 MiB
 * behind drops what it holds. Every span not written is counted in
 * spans_dropped. */
#ifndef BG_SUPERVISOR_TRACE_H
#define BG_SUPERVISOR_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bg_daemon;
struct bg_job;

struct bg_trace_stats {
	uint64_t spans_written; /* sent in a flush */
	uint64_t spans_dropped; /* not sampled, over the cap, or lost */
	uint64_t flushes;
};

/* Start the flush timer (d->trace). 0 or -ENOMEM. */
int bg_trace_start(struct bg_daemon *d);
/* Send what is kept (best effort) and free d->trace. */
void bg_trace_stop(struct bg_daemon *d);
/* Send what is kept now. */
void bg_trace_flush(struct bg_daemon *d);

/* t's finish was applied: its worker.execute span, with agent.return when
 * it called its caller back and agent.cancel when it was cancelled; a
 * root execution (no parent message) that ended terminal also ends the
 * trace (status, end_ts, output, metadata). Jobs that never ran a
 * handler (acks, dead letters, replays) write nothing. */
void bg_trace_job_finished(struct bg_daemon *d, const struct bg_job *t);

/* The client.dispatch span of a call_agent of t to `target`, whose
 * request has message id msg_id (route fields may be NULL). */
void bg_trace_dispatch(struct bg_daemon *d, const struct bg_job *t,
		       const char *msg_id, const char *target,
		       const char *route_policy, const char *route_status);

/* The agent.dispatch_group span of group `group_id` of n tasks (wait:
 * the caller waits for their replies). */
void bg_trace_group(struct bg_daemon *d, const struct bg_job *t,
		    const char *group_id, size_t n, bool wait);

struct bg_trace_stats bg_trace_stats(const struct bg_daemon *d);

#endif
