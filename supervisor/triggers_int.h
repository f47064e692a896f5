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
	int64_t seen_ms;  /* Redis time it was first configured here */
	int busy;	  /* the state read or a fire of a poll in flight */
	int64_t next_ms;  /* the next fire time as last written */
	int64_t prune_at; /* monotonic ms */
};

struct bg_triggers {
	struct bg_daemon *d;
	struct event *ev;
	int poll_ms; /* of the timer as armed */
	struct tstate *v;
	size_t n;
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

#endif
