/* supervisor/gate.h - the fleet-wide limits of a task's start (issue 12
 * items 4 and 5, docs/scheduling.md "Fleet limits"): fleet_max_running
 * and rate_limit of its agent type and of its lane, held in Redis and
 * shared by every bygated of the group.
 *
 * A place is a member "<worker id>:<boot nonce>:<job tag>" of a sorted set
 * per agent type and per lane, scored by its expiry in Redis time; the
 * heartbeat moves the expiry of this worker's places forward, so the
 * places of a dead worker are gone within worker.lease_ttl_s. A rate limit
 * is a GCRA: one key per agent type and per lane holding the theoretical
 * arrival time. One script takes the places and spends the tokens of a
 * start, all or nothing, in one round trip (wire/keys.h: every gate key
 * shares one hash slot under v2).
 *
 * Synchronous for the scheduler, asynchronous underneath: the answer of
 * a request arrives on the loop, which then runs the dispatch pass again.
 * The gate needs no call upward: it knows its jobs by tag. */
#ifndef BG_SUPERVISOR_GATE_H
#define BG_SUPERVISOR_GATE_H

#include <stdbool.h>
#include <stdint.h>

struct bg_daemon;
struct bg_job;

/* May t start now? True when it holds its places and spent its tokens
 * (t->run.gate_held is then set) or when neither its agent type nor its
 * lane has a fleet limit (no Redis call, no allocation). False when it
 * must wait: the request is sent (one per job and per limit group at
 * once) or a refusal's wait is running; the loop is woken when either
 * ends, and the next call for t answers. Never fails a task: a Redis
 * error or an unknown outcome is a wait too. */
bool bg_gate_try_start(struct bg_daemon *d, struct bg_job *t);

/* t's attempt stopped or t is freed: give its places back (ZREM) and
 * forget a request in flight (places it takes are given back when its
 * answer comes). Idempotent; nothing to do when t never asked. */
void bg_gate_release(struct bg_daemon *d, struct bg_job *t);

/* The lease heartbeat: move the expiry of every place this worker holds
 * to Redis now + worker.lease_ttl_s (ZADD XX: a place already expired is
 * not taken again). */
void bg_gate_renew(struct bg_daemon *d);

/* Starts held back, by agent type: i from 0 until it returns false. */
struct bg_gate_waits {
	const char *agent_type;
	uint64_t rate_waits; /* refused by a rate limit (job and attempt) */
	uint64_t cap_waits;  /* refused by a full fleet_max_running */
};
bool bg_gate_waits(const struct bg_daemon *d, int i, struct bg_gate_waits *w);

/* Places held or asked for by this worker right now. */
int bg_gate_places(const struct bg_daemon *d);

/* At exit, after the Redis connections are freed. */
void bg_gate_free(struct bg_daemon *d);

#endif
