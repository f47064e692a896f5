/* supervisor/admit.h - a picked-up job admitted to run (WIRE 6.4 steps
 * 3-6): what its stored execution record allows, the claim of the
 * execution (a conditional RUNNING write: a message id runs at most once
 * at a time across the fleet, whatever duplicates of its entry exist),
 * then the ready queue. docs/architecture.md, step 5, says how. */
#ifndef BG_SUPERVISOR_ADMIT_H
#define BG_SUPERVISOR_ADMIT_H

#include <stdbool.h>

#include "common/buf.h"

struct bg_daemon;
struct bg_job;

/* Examine the execution record read at pickup (js: its bytes; NULL when
 * the message id maps to none) and end the job when the entry must not
 * run: a terminal replay, a duplicate of a run in progress, a poison
 * entry, a cancel (after claiming a running execution from a dead
 * holder). Sets what a run needs (execution id, is_resumed, the parent,
 * the caller to call back). true: it may run; the caller validates the
 * command, joins a task group, then calls bg_admit. */
bool bg_admit_examine(struct bg_daemon *d, struct bg_job *t,
		      const struct bg_str *js);

/* Claim the execution examined: the RUNNING record is written only if the
 * stored record is still the one examined (and, when it names another
 * worker as running it, that worker's lease is gone). The job stays in
 * PICKUP until the reply: won, it joins the ready queue (QUEUED); lost,
 * the record as it is now is examined again. */
void bg_admit(struct bg_daemon *d, struct bg_job *t);

/* Draining: the RESUMEs waiting for a run (busy) are not in flight; they
 * are freed, their entries left pending for the next start's reconcile
 * (or a peer's reclaim), so the drain does not wait for runs elsewhere. */
void bg_admit_drop_waiters(struct bg_daemon *d);

#endif
