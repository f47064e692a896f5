/* supervisor/end.h - an attempt's end decided: the outcome is recorded on
 * the job and handed to the finish stage (finish.c), the one builder of
 * every ending. A cancelled job first reads whether its caller asked for
 * the cancel (WIRE 6.10). */
#ifndef BG_SUPERVISOR_END_H
#define BG_SUPERVISOR_END_H

#include "supervisor/job.h"

struct bg_daemon;

/* End t now: kind, error code (static string or NULL) and reason. */
void bg_end(struct bg_daemon *d, struct bg_job *t, enum bg_end_kind kind,
	    const char *error_code, const char *why);
/* XACK only: a terminal replay or an ignored command. */
void bg_end_ack(struct bg_daemon *d, struct bg_job *t);
/* Dead letter: a malformed or stale entry. */
void bg_end_deadletter(struct bg_daemon *d, struct bg_job *t, const char *code,
		       const char *why);
/* CANCELLED, reply_data {"reason"}, an end marker for a root task, and a
 * callback to a waiting caller unless the caller itself asked for the
 * cancel (its record has cancel_requested). */
void bg_end_cancelled(struct bg_daemon *d, struct bg_job *t);

#endif
