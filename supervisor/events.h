/* supervisor/events.h - an attempt's streamed events (events.c). */
#ifndef BG_SUPERVISOR_EVENTS_H
#define BG_SUPERVISOR_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bg_daemon;
struct bg_job;
struct bg_event;

/* An event record from t's child: published, or counted against the caps
 * (pool.max_events_per_task, max_event_bytes_per_task; over them the
 * attempt fails with EVENT_LIMIT when it ends). */
void bg_events_take(struct bg_daemon *d, struct bg_job *t, const uint8_t *p,
		    size_t len);
/* XADD one event to t's session data stream (one EXPIRE per turn). */
void bg_events_publish(struct bg_daemon *d, struct bg_job *t,
		       const struct bg_event *ev);
/* "RETRY <n>" for the n-th retry, "RERUN <n>" for the n-th re-run of an
 * attempt interrupted by the death of a shared child (not counted). */
void bg_events_announce_retry(struct bg_daemon *d, struct bg_job *t,
			      bool rerun);

#endif
