/* supervisor/eventlog.h - the task event log (eventlog.c): one JSON
 * object per line (docs/operations.md, "The event log") for each task's
 * queued, started, retry and ended, written to log.events_file and rotated
 * by size (log.events_max_mb, log.events_keep: file.1, file.2, ...).
 *
 * Lines are buffered and written at the end of each loop turn
 * (bg_eventlog_flush), so the task path never waits on the file. A write
 * error is logged once, counted, and the lines it concerned dropped: the
 * log never stops bygated. With log.events_file = "" every call is a
 * no-op. */
#ifndef BG_SUPERVISOR_EVENTLOG_H
#define BG_SUPERVISOR_EVENTLOG_H

#include <stdint.h>

struct bg_daemon;
struct bg_job;

/* Open (or, after a SIGHUP or SIGUSR1, reopen) the log as d->cfg says;
 * "" closes it. Lines still buffered are written first. 0, or a negative errno
 * (logged; the log is then off until the next reload). */
int bg_eventlog_configure(struct bg_daemon *d);
/* Write the buffered lines; rotate when the file passed its size. */
void bg_eventlog_flush(struct bg_daemon *d);
/* Flush and close: at exit. */
void bg_eventlog_close(struct bg_daemon *d);
/* Lines lost to write errors since start. */
uint64_t bg_eventlog_errors(const struct bg_daemon *d);

/* The events of t's life. queued: its claim won, it joins the ready
 * queue; started: an attempt was handed to a child; retry: a failed
 * attempt will run again (why: the failure); ended: its finish is in
 * Redis, status as in the history ("COMPLETED", "FAILED", "ACKED", ...). */
void bg_eventlog_queued(struct bg_daemon *d, const struct bg_job *t);
void bg_eventlog_started(struct bg_daemon *d, const struct bg_job *t);
void bg_eventlog_retry(struct bg_daemon *d, const struct bg_job *t,
		       const char *why);
void bg_eventlog_ended(struct bg_daemon *d, const struct bg_job *t,
		       const char *status);

#endif
