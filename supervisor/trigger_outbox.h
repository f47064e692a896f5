/* supervisor/trigger_outbox.h - a trigger's fire under Redis Cluster
 * (docs/cluster.md, "Triggers").
 *
 * On a standalone server one script claims a fire and writes its record
 * and its entry (trigger_fire.c). Under Cluster those are three slots: the
 * trigger's state, the session's registry, the agent type's stream (with
 * the idempotency hash, tagged with it). So the claim script keeps the
 * fire in the trigger's state (field outbox:<message id>, a JSON object
 * trigger_fire.c builds), and this sends it, each step applied at most
 * once whoever sends it and however often:
 *
 *   1. the QUEUED record and msg_map, unless the record exists (the
 *      session's slot);
 *   2. the entry, unless this fire's sent mark exists (BG_KEY_TRIGGER_SENT,
 *      the stream's slot, written by the same script with the entry's
 *      id); with an idempotency key, the key taken in the same script, or
 *      found another message's: a duplicate, nothing added;
 *   3. the outbox field deleted with the fire counted in the state
 *      (fires, last_*, the run in the active set), or for a duplicate the
 *      duplicates counted and the record of step 1 taken back.
 *
 * A bygated killed between two steps leaves the field; every bygated's
 * poller (triggers.c) finds fields older than BG_OUTBOX_AGE_MS and sends
 * them again from the start: a fire claimed is sent once, never lost,
 * never doubled. */
#ifndef BG_SUPERVISOR_TRIGGER_OUTBOX_H
#define BG_SUPERVISOR_TRIGGER_OUTBOX_H

#include <stddef.h>

#include "supervisor/triggers.h"

/* A field this old (Redis ms, from its "now") is a fire left by a crash. */
#define BG_OUTBOX_AGE_MS 5000

/* Send the fire of `json` (len bytes); fn (may be NULL) gets its outcome
 * (SENT with the ids, DUPLICATE with the first's, or ERROR: the field
 * stays and the next poll sends it). 0, or -EINVAL (not a fire),
 * -ENOTCONN, -ENOMEM with fn not called. */
int bg_trigger_outbox_send(struct bg_daemon *d, const char *json, size_t len,
			   bg_fire_done_fn fn, void *priv);

#endif
