/* supervisor/kill.h - how a running attempt is stopped: its deadline
 * (timeout_ms of the agent type) and the one kill ladder that serves a
 * timeout and a cancel alike: the cancel line to the handler, SIGTERM to
 * the child's process group, SIGKILL, each after a grace. */
#ifndef BG_SUPERVISOR_KILL_H
#define BG_SUPERVISOR_KILL_H

#include "supervisor/job.h"

struct bg_daemon;

/* Grace after a timeout's first step before the SIGKILL. */
#define BG_TIMEOUT_GRACE_MS 2000

/* Arm the attempt's deadline (none when timeout_ms is 0). */
void bg_kill_arm_deadline(struct bg_daemon *d, struct bg_job *t);
/* Start the ladder for a job in a child (RUNNING -> KILLING):
 *   timeout  shared: cancel line, 2 s, SIGKILL; alone: SIGTERM, 2 s, SIGKILL
 *   cancel   shared: cancel line, cancel_grace_ms, SIGKILL; alone: cancel
 *            line, grace, SIGTERM, grace, SIGKILL
 *   force    SIGKILL at once (also during a ladder).
 * A ladder already running is not restarted. */
void bg_kill_start(struct bg_daemon *d, struct bg_job *t,
		   enum bg_kill_reason why);
/* The attempt is over: no deadline or ladder step may fire for it. */
void bg_kill_disarm(struct bg_job *t);

#endif
