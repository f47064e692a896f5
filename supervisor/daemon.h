/* supervisor/daemon.h - bygated's state shared by its files: struct
 * bg_daemon (connections, pool, the jobs it holds (job.h), the ready
 * queue, lease, counters), the hooks that report upward (wired once in
 * main.c), and the entry points of the files that have no header of their
 * own. The stages of a task have theirs (pickup.h, schedule.h, attempt.h,
 * kill.h, end.h, ...). Internal to supervisor/: nothing outside includes
 * it. */
#ifndef BG_SUPERVISOR_DAEMON_H
#define BG_SUPERVISOR_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "conf/config.h"
#include "supervisor/pool.h"
#include "supervisor/redis.h"
#include "common/clock.h"
#include "supervisor/job.h"
#include "supervisor/lease.h"
#include "wire/command.h"

struct event;
struct bg_ws_paths;
struct bg_entry_deferred;
struct bg_sched;
struct bg_ready;
struct bg_daemon;
struct bg_timers;
struct bg_eventlog;

/* Reports that run upward, wired once by main.c: a lower file never calls
 * a higher one (docs/architecture.md, "Who may call whom"). */
struct bg_hooks {
	/* job.c: a job is about to be freed (the suspect list's head) */
	void (*job_freed)(struct bg_daemon *d, const struct bg_job *t);
	/* lease.c: the lease is held (claimed or taken over) */
	void (*lease_held)(struct bg_daemon *d);
	/* lease.c: a heartbeat renewed it; lapsed = it had expired and was
	 * re-created, so work in flight may have been claimed meanwhile */
	void (*lease_renewed)(struct bg_daemon *d, bool lapsed);
	/* admit.c: read a waiting RESUME's record again and decide anew
	 * (pickup.c, above it) */
	void (*reread)(struct bg_daemon *d, struct bg_job *t);
};

struct reload;
struct bg_keyset; /* per-turn "EXPIRE already sent" set */

struct bg_daemon {
	struct bg_config *cfg;
	struct event_base *base;
	struct bg_rconn *rd, *wr, *ctl;
	struct bg_pool *pool;
	char *worker_id;
	char *group;
	int n_streams;	/* 1 + agent types */
	char **streams; /* [0] worker stream, [1..] agent-type streams */
	char *deadletter_key;

	struct bg_hooks hooks;
	struct bg_job all; /* circular list head */
	int n_tasks;
	int n_finishing;		/* jobs finishing (bg_job_finishing) */
	struct bg_job *q_head, *q_tail; /* the ready queue */
	int n_queued;
	uint64_t next_tag;

	bool groups_ready;
	int groups_pending;
	bool groups_failed;
	bool read_in_flight;
	size_t read_bytes_held; /* entries read, not yet in a child */
	struct bg_entry_deferred *deferred_head, *deferred_tail;
	int n_deferred; /* entry_read.h */
	uint64_t n_deferred_total;
	uint64_t read_mask; /* streams the read in flight covers */
	bool unblock_sent;
	/* Redis Cluster (consume.c): one XREADGROUP per stream, all without
	 * BLOCK, then, when none brought an entry, one blocking read of a
	 * stream taken in turn */
	int read_parts;	      /* reads of the round still unanswered */
	bool read_got;	      /* an entry came in this round */
	bool read_block_next; /* the next read is the blocking one */
	int read_block_idx;   /* stream of the blocking read, or -1 */
	int read_rr;	      /* the stream the next blocking read takes */
	bool ready_logged;
	int64_t redis_offset_ms; /* redis TIME - local realtime */
	bool redis_time_known;	 /* redis_offset_ms set by a TIME reply */

	/* lease (lease.c) */
	enum bg_lease_state lease_state;
	char lease_token[33];
	char *lease_key;
	int64_t lease_last_ok_ms; /* monotonic: claim or last heartbeat OK */
	int64_t lease_wait_until_ms;
	int lease_attempts;
	bool lease_first_beat_done;
	uint64_t lease_lapses;
	bool reader_ready;
	struct event *lease_timer;
	struct bg_state *state; /* LMDB (state/state.h); NULL = none */
	int lock_fd;

	bool draining, stopping;
	int exit_code;
	struct event *drain_timer;
	struct event *time_timer;

	struct bg_keyset *expired;
	struct bg_stats_batch *stats; /* stats.c: the turn's batch */
	struct bg_metrics *metrics;   /* metrics.h */
	struct bg_triggers *triggers; /* triggers.h */
	struct bg_http *http;	      /* http.c; NULL when http.port = 0 */

	/* admin lifecycle (control.c): "active", "suspended", "evicted" */
	char lifecycle[16];
	bool *denied; /* per agent type, from the denylist */
	/* per agent type: its handler cannot start here (bg_pool_type_down),
	 * so it is out of the members set and not read (control.c) */
	bool *unserved;
	struct reload *reloads;
	struct event *reload_timer;
	int64_t started_mono_ms;
	int64_t last_read_issued_ms; /* consumer_stalled (DESIGN 8) */

	/* counters */
	uint64_t n_completed, n_failed, n_deadlettered, n_acked_only;
	uint64_t n_finish_retries, n_unknown_outcomes;
	uint64_t n_lost_to_peer, n_recovered_finishes, n_reclaimed;
	uint64_t n_retries;
	bool journaled_this_turn;
	bool journaled_taking_this_turn; /* ... by a run that took RESUMEs */
	uint64_t state_errors;
	int recover_calls;     /* reconcile requests in flight */
	bool start_reconciled; /* reads wait for the start-up reconcile */
	uint64_t n_recovered_finishes_started;
	struct event *reconcile_timer;
	int64_t last_gc_ms;
	struct bg_ws_cache *ws_cache; /* session dir descriptors; NULL = none */
	struct bg_suspects *suspects; /* suspects.c; NULL until start-up */
	struct bg_sched *sched;	      /* schedule.c's lanes; NULL until used */
	struct bg_ready *ready;	      /* ready.c; NULL until used */
	bool *pick_in_flight;	      /* consume.c, per stream */
	int pick_reserved;	      /* places asked of the ready set */
	struct event *ready_timer;
	int64_t *pick_last_ms;
	struct bg_gate *gate;	  /* gate.c: fleet limits; NULL until needed */
	bool suspects_active;	  /* suspects run one at a time: read nothing */
	struct bg_timers *timers; /* timers.c: delayed RESUMEs; NULL = none */
	struct bg_eventlog *eventlog; /* eventlog.c; NULL = off */
	struct bg_trace *trace;	      /* trace.h: spans; NULL = not started */
	struct bg_history *history;   /* history.h: metrics history; NULL */
};

/* notify.c: systemd Type=notify status (no-op without NOTIFY_SOCKET) */
void bg_notify_status(struct bg_daemon *d, const char *state);
/* lmdb_check.c: count and log a failed LMDB write (rc != 0) naming
 * `what`; returns rc. */
int bg_lmdb_check(struct bg_daemon *d, int rc, const char *what);
/* keys.c: a key of this daemon's schema (wire/keys.h), malloc'd. */
enum bg_key_kind;
char *bg_dkey(const struct bg_daemon *d, enum bg_key_kind kind, const char *id);
char *bg_dkey_s(const struct bg_daemon *d, enum bg_key_kind kind,
		struct bg_str id);

/* Redis's clock (TIME, refreshed every 30 s by consume.c), in ms. */
static inline int64_t bg_redis_now_ms(const struct bg_daemon *d)
{
	return bg_now_ms() + d->redis_offset_ms;
}

/* Exit codes of bygated. */
enum {
	BG_EXIT_OK = 0,
	BG_EXIT_CONFIG = 1,
	BG_EXIT_USAGE = 2,
	BG_EXIT_RUNTIME = 3,
	BG_EXIT_LEASE_BUSY = 4, /* worker id held elsewhere past lease_wait_s */
	BG_EXIT_LEASE_LOST = 5, /* heartbeat found another owner */
	BG_EXIT_LOCKED = 6,	/* state directory locked by another bygated */
};

/* consume.c */
void bg_consume_on_lease_held(struct bg_daemon *d);
void bg_consume_on_ctl_up(struct bg_daemon *d);
/* Re-arm the read: called once per loop turn by main.c (turn end). */
void bg_consume_kick(struct bg_daemon *d);
void bg_consume_sync_time(struct bg_daemon *d);

/* outbox.c */
void bg_outbox_reset(struct bg_job *t);

/* stats.c: WIRE 5.9's counters and snapshots after a record change.
 * With emit, the commands go through it (a finish transaction), without
 * the EXPIREs of the five keys: bg_stats_expire adds those when the
 * transaction is sent. With emit NULL, on the write pipeline: a
 * non-terminal change joins the loop turn's batch (one command per key
 * and counter per turn, written by bg_stats_flush at the turn's end and
 * before anything written at once), a terminal one is written at once. */
typedef void (*bg_stats_emit_fn)(void *ctx, int argc,
				 const struct bg_str *argv);
void bg_stats_update(struct bg_daemon *d, struct bg_str record,
		     const char *execution_id, const char *old_status,
		     const char *new_status, bg_stats_emit_fn emit, void *ctx);
/* bg_stats_update with the record's snapshot already taken (by
 * bg_record_update_snap with its update): it is used and *snap left empty
 * (freed by the caller either way); NULL or empty: read from record. */
void bg_stats_update_snap(struct bg_daemon *d, struct bg_str record,
			  struct bg_buf *snap, const char *execution_id,
			  const char *old_status, const char *new_status,
			  bg_stats_emit_fn emit, void *ctx);
void bg_stats_flush(struct bg_daemon *d);
/* An emit that queues the command (at most 8 arguments) on d->wr, its
 * reply not awaited; ctx is d. */
void bg_stats_emit_wr(void *ctx, int argc, const struct bg_str *argv);
/* EXPIRE 604800 of the five keys through emit, each unless one was sent
 * on the write connection already this loop turn. */
void bg_stats_expire(struct bg_daemon *d, bg_stats_emit_fn emit, void *ctx);
void bg_stats_free(struct bg_daemon *d);

/* control.c */
void bg_control_handle(struct bg_daemon *d, struct bg_job *t);
void bg_control_set_lifecycle(struct bg_daemon *d, const char *lifecycle,
			      bool force);
bool bg_control_suspended(const struct bg_daemon *d);
void bg_control_refresh_admin(struct bg_daemon *d);
/* The pool says an agent type's handler stopped or started being
 * servable (bg_pool_ops.on_types_changed): out of, or back into, its
 * members set (WIRE 5.2) and the read. */
void bg_control_types_changed(struct bg_daemon *d);
/* Agent type i (index of cfg->agent_types) cannot be served here. */
bool bg_control_unserved(const struct bg_daemon *d, int i);
void bg_control_free(struct bg_daemon *d);

/* sessions.c */
void bg_sessions_gc(struct bg_daemon *d);
/* A session's state record (its last use) is written at most this often
 * while its tasks keep coming (attempt.c, bg_ws_cache_touch): the recorded
 * last use lags the truth by less than this, which the garbage collection
 * adds to paths.session_idle_ttl_s (at least 60 s) before it removes one. */
#define BG_SESSION_TOUCH_MS 1000

/* recover.c */
void bg_recover_own(struct bg_daemon *d, bool at_start);
void bg_recover_peers(struct bg_daemon *d);
void bg_recover_forget_applied(struct bg_daemon *d);

/* suspects.c: after an unclean exit the entries pending here are re-run
 * one at a time before anything is read (docs/recovery.md, "Suspects") */
bool bg_suspects_collecting(struct bg_daemon *d);
bool bg_suspects_clean_start(struct bg_daemon *d);
void bg_suspects_add(struct bg_daemon *d, int stream_idx, const char *id,
		     int delivery_count);
void bg_suspects_scan_failed(struct bg_daemon *d);
bool bg_suspects_retry_scan(struct bg_daemon *d);
bool bg_suspects_begin(struct bg_daemon *d);
void bg_suspects_kick(struct bg_daemon *d);
void bg_suspects_job_freed(struct bg_daemon *d, const struct bg_job *t);
void bg_suspects_free(struct bg_daemon *d);

/* finish.c */
void bg_finish(struct bg_daemon *d, struct bg_job *t);
void bg_finish_mark_verify(struct bg_daemon *d);
void bg_finish_replay(struct bg_daemon *d, struct bg_job *t,
		      struct bg_str blob);
bool bg_finish_blob_valid(struct bg_str blob);
void bg_finish_release_held(struct bg_daemon *d);
void bg_finish_resend_unknown(struct bg_daemon *d);

/* keyset.c */
struct bg_keyset *bg_keyset_new(void);
bool bg_keyset_add(struct bg_keyset *s, const char *key); /* true = new */
void bg_keyset_clear(struct bg_keyset *s);
/* Bumped by every bg_keyset_clear: keys added under one generation are
 * in the set while it lasts. */
uint64_t bg_keyset_gen(const struct bg_keyset *s);
void bg_keyset_free(struct bg_keyset *s);
/* EXPIRE key (604800 s) on the write connection, once per loop turn. */
void bg_expire_once(struct bg_daemon *d, const char *key);

#endif
