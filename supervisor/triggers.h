/* supervisor/triggers.h - timer and webhook triggers (docs/triggers.md):
 * bygated turns each fire into one ASK_AGENT across the fleet. One script
 * claims the fire and writes the QUEUED record and the stream entry, so a
 * fire is never lost or doubled by a crash between the two (there is no
 * between). Each trigger's state (pause, last fire, counters, manual fire
 * requests) lives in Redis (wire/keys.h BG_KEY_TRIGGER), for the fleet. */
#ifndef BG_SUPERVISOR_TRIGGERS_H
#define BG_SUPERVISOR_TRIGGERS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "conf/triggers.h"

struct bg_daemon;

enum bg_fire_outcome {
	BG_FIRE_SENT,	   /* the ASK_AGENT is in the agent type's stream */
	BG_FIRE_DUPLICATE, /* already fired: this fire time or this
			      idempotency key (message_id names the first) */
	BG_FIRE_BUSY,	   /* max_running runs still active: skipped */
	BG_FIRE_PAUSED,	   /* the trigger is paused for the fleet */
	BG_FIRE_MISSED,	   /* a timer's late fire time claimed, not sent
			      (missed = "skip") */
	BG_FIRE_ERROR,	   /* Redis unreachable or refused: why says */
};

struct bg_fire_result {
	enum bg_fire_outcome outcome;
	char message_id[128];
	char execution_id[128];
	char session_id[256];
	char why[256];
};

/* One fire of a trigger. content empty: the trigger's configured content.
 * idempotency_key non-empty: the fire is claimed under that key
 * (BG_KEY_IDEMPOTENCY of the agent type, worker.idempotency_ttl_s), as a
 * client send with that key would be; fire_ms > 0 (timers): claimed as
 * that fire time, once per trigger. extra is a JSON object for the
 * body's extra_payload (e.g. the webhook's headers), or empty. */
struct bg_fire_request {
	const struct bg_trigger_conf *t;
	struct bg_str content;
	bool content_is_json;
	struct bg_str idempotency_key;
	int64_t fire_ms;
	struct bg_str extra;
	/* the poller's (triggers.c) only: */
	int64_t manual;	 /* > 0: manual fire request number (triggers fire) */
	int64_t missed;	 /* fire times missed before fire_ms (counted) */
	bool claim_only; /* claim fire_ms as missed, send nothing */
};

typedef void (*bg_fire_done_fn)(struct bg_daemon *d,
				const struct bg_fire_result *r, void *priv);

/* Fire once; fn (may be NULL) gets the outcome later, on the loop,
 * exactly once (BG_FIRE_ERROR when the connection is lost, at exit too).
 * 0, or -ENOTCONN / -ENOMEM / -EINVAL (a bad idempotency key) with nothing
 * sent and fn not called. */
int bg_trigger_fire(struct bg_daemon *d, const struct bg_fire_request *rq,
		    bg_fire_done_fn fn, void *priv);

/* Start polling (timers due, manual fires) and publish the configured
 * triggers; after SIGHUP, bg_triggers_reload picks up the new set. */
int bg_triggers_start(struct bg_daemon *d);
void bg_triggers_reload(struct bg_daemon *d);
void bg_triggers_stop(struct bg_daemon *d);

/* Per-trigger counters of this bygated for /metrics. */
struct bg_trigger_counts {
	uint64_t fired, duplicate, busy, paused, missed, errors;
	uint64_t rejected; /* webhooks: 401 / 413 / 400 answers */
};
/* The counts of trigger `name` (zeroes when unknown; never NULL). */
struct bg_trigger_counts *bg_trigger_counts(struct bg_daemon *d,
					    const char *name);

/* The trigger families of /metrics (metrics_page.c). 0 or -ENOMEM. */
int bg_triggers_metrics(struct bg_buf *out, const struct bg_daemon *d);

#endif
