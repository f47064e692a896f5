/* supervisor/pool.h - the prefork pool of bygate-child processes: one
 * shared-memory segment and two eventfd doorbells per slot, start under the
 * pool's identity (spawn.h: segment and doorbells as fds 3-5, stdout and
 * stderr a pipe whose lines are logged escaped and bounded), reap, respawn with
 * back-off, recycle by task count with jitter one child at a time, and the
 * supervisor side of the rings (everything a child writes is validated: a
 * violation kills it). The task layer sees only slots, tags and messages.
 * The code is pool.c and its parts pool_*.c (listed in pool_int.h). */
#ifndef BG_SUPERVISOR_POOL_H
#define BG_SUPERVISOR_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/config.h"
#include "supervisor/spawn.h"

struct event_base;
struct bg_pool;

struct bg_pool_ops {
	/* A child has room for a task (after start-up or a result). */
	void (*on_idle)(void *arg, int slot);
	/* A complete BG_REC_EVENT, BG_REC_CALL or BG_REC_RESULT for the task `tag`
	 * running in `slot`. The payload is valid during the call only. */
	void (*on_message)(void *arg, int slot, uint16_t kind, uint64_t tag,
			   const uint8_t *payload, size_t len);
	/* The child of `slot` is gone while running the n > 0 tasks
	 * tags[0..n) (several only for a shared child, see bg_pool_run);
	 * `why` explains it for an operator (exit status, signal, kill
	 * reason). */
	void (*on_child_lost)(void *arg, int slot, const uint64_t *tags, int n,
			      const char *why);
	/* Metrics: a child ended (reason: crash, timeout, cancel, recycle,
	 * protocol, shutdown, fatal); a down ring was full. May be NULL. */
	void (*on_child_exit)(void *arg, const char *reason);
	void (*on_ring_stall)(void *arg);
	/* Whether some agent type can be served changed (bg_pool_type_down:
	 * a FATAL naming it, a HELLO loading it, the spare child's included,
	 * the breaker opening or closing). May be NULL. */
	void (*on_types_changed)(void *arg);
};

struct bg_pool *bg_pool_new(struct event_base *base,
			    const struct bg_config *cfg, const char *child_path,
			    const struct bg_spawn_identity *who,
			    const struct bg_pool_ops *ops, void *arg);
int bg_pool_start(struct bg_pool *p);
void bg_pool_free(struct bg_pool *p);

int bg_pool_size(const struct bg_pool *p);
int bg_pool_idle_count(const struct bg_pool *p);
int bg_pool_busy_count(const struct bg_pool *p);
int bg_pool_alive_count(const struct bg_pool *p);
/* Tasks in flight over all children. */
int bg_pool_task_count(const struct bg_pool *p);
/* Children running tasks that share them (bg_pool_run's group >= 0). */
int bg_pool_shared_children(const struct bg_pool *p);
/* Tasks in flight at once in one child, at most (exec max_inflight). */
#define BG_POOL_MAX_INFLIGHT 64

/* The slot with the most free room for a task of `group`, or -1. A task
 * with group < 0 or limit <= 1 needs an idle child to itself; tasks of one
 * group >= 0 (an agent type index) with limit > 1 may share a child, up to
 * `limit` of them and never with tasks of another group. An idle child has
 * `limit` free; children being recycled, killed or reaped have none.
 * busy_only (a task waits for a child to itself): only children already
 * running tasks, and not the one with the fewest, which is left to drain
 * for the waiting task. */
int bg_pool_pick(const struct bg_pool *p, int group, int limit, bool busy_only);
pid_t bg_pool_pid(const struct bg_pool *p, int slot);

/* Hand a packed BG_REC_TASK payload (copied) to `slot` for task `tag`
 * under the sharing rule of bg_pool_pick. 0, -EBUSY (no room there),
 * -ENOMEM, -EMSGSIZE. */
int bg_pool_run(struct bg_pool *p, int slot, uint64_t tag, int group, int limit,
		const void *payload, size_t len);

/* Signal the process group of the child in `slot` (e.g. SIGTERM, then
 * SIGKILL for a timeout); `reason` is kept for the exit report. */
void bg_pool_signal(struct bg_pool *p, int slot, int sig, const char *reason);

/* Answer a BG_REC_CALL of task `tag` in `slot` with a packed BG_REC_REPLY
 * payload. 0, -ESRCH when the slot no longer runs that task. */
int bg_pool_reply(struct bg_pool *p, int slot, uint64_t tag,
		  const void *payload, size_t len);

/* Send a cooperative cancel for task `tag` running in `slot` (the handler
 * sees it through bg_ctx_cancelled). 0, -ESRCH when the slot does not run
 * that task. */
int bg_pool_cancel(struct bg_pool *p, int slot, uint64_t tag,
		   const char *reason, const char *mode);

/* Reload: a new generation. Every child of an older generation is recycled
 * (after its current task), one at a time; new children load their plugins
 * afresh. Returns the new generation. */
uint32_t bg_pool_new_generation(struct bg_pool *p);
uint32_t bg_pool_generation(const struct bg_pool *p);
/* 1 when every slot runs a ready child of the current generation, 0 while
 * the recycle is under way, -1 when a child of the current generation
 * could not load its handlers (*why set, owned by the pool). */
int bg_pool_generation_state(const struct bg_pool *p, const char **why);
/* Replace the configuration the children are given (SIGHUP); takes effect
 * for children spawned from now on (use a new generation to recycle). */
int bg_pool_set_config(struct bg_pool *p, const struct bg_config *cfg);

/* Ring the doorbells marked during this loop turn (at most once each). */
void bg_pool_end_of_turn(struct bg_pool *p);

/* Stop: ask every child to exit after its task (graceful) or SIGKILL the
 * process groups now (!graceful). bg_pool_alive_count() reaches 0 once all
 * are reaped; no child is respawned after this. */
void bg_pool_shutdown(struct bg_pool *p, bool graceful);

/* Counters for logs and metrics. */
struct bg_pool_stats {
	uint64_t spawned;
	uint64_t died_busy;
	uint64_t recycled;
	uint64_t protocol_kills;
	uint64_t breaker_opened;
};
/* The crash-storm breaker is open: nothing is respawned (or should be
 * read for the agent types). */
bool bg_pool_breaker_open(const struct bg_pool *p);
/* Agent type `type` (an index of the configuration's agent_types) cannot
 * be served: a child reported FATAL naming it at CONFIG (its plugin does
 * not load) and no child has loaded it since (HELLO naming it), or the
 * crash-storm breaker is open. *why (owned by the pool, may be NULL) says
 * why. A type named by a FATAL is left out of the CONFIG of the children
 * started next, so the other types are served meanwhile. It comes back by
 * itself: a spare child, outside the pool's size and running no task, is
 * given that type alone, first at once, then after 200 ms doubling up to
 * pool.respawn_backoff_max_ms; its HELLO brings the type back (the
 * children started without it are replaced one at a time). A new
 * generation (reload) offers it again too. */
bool bg_pool_type_down(const struct bg_pool *p, int type, const char **why);
void bg_pool_get_stats(const struct bg_pool *p, struct bg_pool_stats *s);

/* bygated -t (pool_probe.c): start one bygate-child as the pool does and
 * give it the CONFIG of cfg->agent_types[type] alone. 0 when it answered
 * HELLO within timeout_ms; else a negative errno and, in err, why (the
 * child's FATAL text, which names the agent type and the error). Runs its
 * own event loop; not for a running bygated. */
int bg_pool_check_type(const struct bg_config *cfg, const char *child_path,
		       const struct bg_spawn_identity *who, int type,
		       int timeout_ms, char *err, size_t n);

#endif
