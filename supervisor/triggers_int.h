/* supervisor/triggers_int.h - private to triggers.c (the poller, which
 * owns this) and trigger_fire.c (which counts each fire's outcome here):
 * what this bygated keeps of each trigger. */
#ifndef BG_SUPERVISOR_TRIGGERS_INT_H
#define BG_SUPERVISOR_TRIGGERS_INT_H

#include <string.h>

#include "supervisor/triggers.h"

/* What this bygated keeps of a trigger, by name: across reloads, so that
 * its counters survive a SIGHUP. */
struct tstate {
	char name[BG_TRIGGER_NAME_MAX + 1];
	struct bg_trigger_counts counts;
	int64_t seen_ms;    /* Redis time it was first configured here */
	int busy;	    /* the state read or a fire of a poll in flight */
	int64_t next_ms;    /* the next fire time as last written */
	int64_t prune_at;   /* monotonic ms */
	int64_t prune_from; /* the active set's next batch starts here */
	int64_t outbox_at;  /* Cluster: monotonic ms of the last look at its
			       outbox (trigger_outbox.h) */
	uint64_t sync_gen;  /* the last sync of the configured set that had
				it: a trigger back after a gap starts afresh */
	int64_t warned_at;  /* monotonic ms of the last warning logged */
	uint64_t unlogged;  /* warnings held back since */
};

struct bg_triggers {
	struct bg_daemon *d;
	struct event *ev;
	int poll_ms; /* of the timer as armed */
	struct tstate *v;
	size_t n;
	uint64_t sync_gen;		   /* syncs of the configured set */
	const struct bg_config *published; /* the configuration published */
	int64_t published_at;		   /* monotonic ms */
};

static inline struct tstate *bg_trigger_state(struct bg_triggers *tr,
					      const char *name)
{
	for (size_t i = 0; tr && i < tr->n; i++)
		if (strcmp(tr->v[i].name, name) == 0)
			return &tr->v[i];
	return NULL;
}

/* Log a warning about trigger st at most once a minute (a Redis error or
 * a corrupt state repeats at every poll); the ones held back are counted
 * in the next. */
void bg_trigger_warn(struct tstate *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
