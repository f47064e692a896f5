/* supervisor/attempt.h - one run of a job in a child (attempt.c). */
#ifndef BG_SUPERVISOR_ATTEMPT_H
#define BG_SUPERVISOR_ATTEMPT_H

#include <stddef.h>
#include <stdint.h>

struct bg_buf;
struct bg_daemon;
struct bg_job;

/* Hand queued job t (already out of the queue) to slot, alone (limit 1)
 * or next to others of its agent type (limit = max_inflight, group = the
 * agent type's index); payload is scratch space for the packed task. A
 * failure ends the job FAILED. */
void bg_attempt_start(struct bg_daemon *d, struct bg_job *t, int slot,
		      int limit, int group, struct bg_buf *payload);

/* The pool's reports (struct bg_pool_ops, wired in main.c; arg is the
 * daemon): a record from a child about one of its jobs, and the death of
 * a child with the tags of the jobs it ran. */
void bg_attempt_on_message(void *arg, int slot, uint16_t kind, uint64_t tag,
			   const uint8_t *payload, size_t len);
void bg_attempt_on_child_lost(void *arg, int slot, const uint64_t *tags, int n,
			      const char *why);

#endif
