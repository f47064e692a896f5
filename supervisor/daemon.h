/* supervisor/daemon.h - bygated's internal state shared by its subsystems:
 * the daemon (connections, pool, queues) and one struct bg_task per stream
 * entry this host holds, from pickup until its finish is applied.
 * Internal to supervisor/: nothing outside includes it. */
#ifndef BG_SUPERVISOR_DAEMON_H
#define BG_SUPERVISOR_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "conf/config.h"
#include "supervisor/pool.h"
#include "supervisor/redis.h"
#include "wire/command.h"

struct event;
struct bg_ws_paths;
struct json_t;

/* Longest id (session, message, agent type) a command may carry, and room
 * for a registry field naming one ("msg_map:<message id>"). */
#define BG_ID_MAX 512
#define BG_FIELD_MAX (BG_ID_MAX + 16)

enum bg_task_state {
	BG_TASK_PICKUP,	   /* registry read in flight */
	BG_TASK_QUEUED,	   /* waiting for an idle child */
	BG_TASK_RUNNING,   /* in a child */
	BG_TASK_FINISHING, /* finish transaction built, EXEC not confirmed */
};

/* How an attempt ends; every kind goes through the one finish builder. */
enum bg_outcome {
	BG_OUT_RESULT,	   /* the handler returned (any status) */
	BG_OUT_FAILED,	   /* crash, protocol error, caps: FAILED + error */
	BG_OUT_DEADLETTER, /* malformed/stale entry: dead letter (+FAILED) */
	BG_OUT_ACK_ONLY,   /* terminal replay or ignored command: XACK only */
	BG_OUT_REPLAY,	   /* a journaled finish re-sent by recovery */
};

struct bg_task {
	struct bg_task *next, *prev; /* in the daemon's all-tasks list */
	struct bg_task *qnext;	     /* in the dispatch queue */
	struct bg_daemon *d;
	uint64_t tag;
	enum bg_task_state state;
	int stream_idx; /* 0 = worker stream, 1.. = agent types */
	char *stream;	/* stream key */
	char *entry_id;
	char *data; /* the entry's raw `data` field (NULL when absent) */
	size_t data_len;
	struct bg_cmd cmd;
	bool cmd_ok;

	/* identity, owned copies */
	char message_id[BG_ID_MAX + 1];
	char *session_id, *trace_id, *agent_type, *source_agent_type;
	char *parent_message_id;
	const char *handler_type; /* configured agent type that runs it */
	char execution_id[32];
	char *reg_key, *data_key;
	bool has_source_agent;
	bool is_resumed;
	bool record_exists;
	char prev_status[64]; /* the record's status at pickup when it was
				 already this worker's, "" otherwise */
	struct bg_buf record; /* the record as last written by us */

	/* run */
	struct bg_ws_paths *ws; /* session and private directories */
	int slot;
	int pid;
	int64_t picked_ms, started_ms;
	uint64_t events, event_bytes;
	bool events_capped;
	bool timed_out;
	struct event *timeout_ev; /* attempt deadline, then the kill grace */
	bool cancel_requested;	  /* CANCEL_TASK or the record says so */
	bool cancel_termed;	  /* SIGTERM sent after the cancel grace */
	char *cancel_reason;
	struct event *cancel_ev;
	bool parent_cancelled;	  /* the caller asked for the cancel */
	bool ending;		  /* an asynchronous end is under way */
	bool end_marker_emitted;

	/* outcome */
	enum bg_outcome outcome;
	char *status;	    /* normalised business status */
	struct bg_buf content, reply_data, result_metadata, extra_payload;
	char *error_message; /* FAILED/DEADLETTER reason */
	const char *error_code;
	const char *error_type;
	const char *failed_stage;

	/* attempts (DESIGN 6) */
	int attempt;	     /* 1-based, the attempt running */
	int failed_attempts; /* attempts ended by death, timeout, retryable */
	int deliveries;	     /* Redis delivery count when known */
	bool deadletter;     /* FAILED and also dead-lettered (poison) */
	bool retry_pending;
	bool recovered;	     /* fetched by PEL reconcile or reclaim */
	bool isolate;	     /* run alone: it was interrupted by the death of
				a child or program it shared (DESIGN 5) */
	int reruns;	     /* re-runs that did not count as attempts */
	bool rerun_announce; /* say "RERUN <n>" when it starts */
	bool shared;	     /* runs in a child next to other tasks */
	bool signalled;	     /* its timeout or cancel signalled its child */
	uint32_t run_id;     /* bumped whenever it is handed to a child: an
				answer for an earlier run is stale */

	/* outbox (outbox.c): writes of handler operations, applied in the
	 * finish transaction; commands in the finish-blob encoding */
	struct bg_buf outbox;
	uint32_t outbox_n;
	struct json_t *kv;	     /* this attempt's kv sets */
	bool suspended;		     /* call_agent/dispatch_group wait, ask_user */
	bool permission_transferred; /* handed the stream to a callee */
	char callback_to[BG_ID_MAX + 1]; /* caller agent type to call back when
					terminal ("" = none): WIRE 6.6 and
					"bygate decisions" 16 */
	char *group_results;	     /* JSON of a joined dispatch_group */

	/* finish transaction */
	struct bg_buf finish_blob; /* the commands, as journaled */
	bool finish_held;    /* outside the fencing window */
	bool verify_owner;   /* after a lease lapse: check XPENDING first */
	bool exec_sent;
	int finish_tries;
	bool finish_unknown; /* EXEC outcome unknown: check PEL on reconnect */
	struct event *retry_ev;
};

struct bg_event_ctx;
void bg_event_ctx_of(const struct bg_task *t, struct bg_event_ctx *ctx);

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

	struct bg_task all; /* circular list head */
	int n_tasks;
	int n_finishing; /* tasks in BG_TASK_FINISHING */
	struct bg_task *q_head, *q_tail; /* dispatch queue */
	int n_queued;
	uint64_t next_tag;

	bool groups_ready;
	int groups_pending;
	bool groups_failed;
	bool read_in_flight;
	uint64_t read_mask; /* streams the read in flight covers */
	bool unblock_sent;
	bool ready_logged;
	int64_t redis_offset_ms; /* redis TIME - local realtime */

	/* lease (lease.c) */
	int lease_state;	  /* enum in lease.c */
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
	struct bg_metrics *metrics; /* metrics.h */
	struct bg_http *http;	    /* http.c; NULL when http.port = 0 */

	/* admin lifecycle (control.c): "active", "suspended", "evicted" */
	char lifecycle[16];
	bool *denied; /* per agent type, from the denylist */
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
	uint64_t state_errors;
	int recover_calls;	/* reconcile requests in flight */
	bool start_reconciled;	/* reads wait for the start-up reconcile */
	uint64_t n_recovered_finishes_started;
	struct event *reconcile_timer;
	int64_t last_gc_ms;
	struct bg_ws_cache *ws_cache; /* session dir descriptors; NULL = none */
	struct bg_suspects *suspects; /* suspects.c; NULL until start-up */
};

void bg_notify_status(struct bg_daemon *d, const char *state);
/* keys.c: a key of this daemon's schema (wire/keys.h), malloc'd. */
enum bg_key_kind;
char *bg_dkey(const struct bg_daemon *d, enum bg_key_kind kind,
	      const char *id);
char *bg_dkey_s(const struct bg_daemon *d, enum bg_key_kind kind,
		struct bg_str id);

int64_t bg_now_ms(void);	 /* realtime, ms */
int64_t bg_mono_ms(void);	 /* monotonic, ms */
int64_t bg_redis_now_ms(const struct bg_daemon *d);
struct bg_log_ids bg_task_log_ids(const struct bg_task *t);

/* lease.c */
void bg_lease_start(struct bg_daemon *d);
void bg_lease_on_ctl_up(struct bg_daemon *d);
void bg_lease_reader_ready(struct bg_daemon *d);
bool bg_lease_held(const struct bg_daemon *d);
bool bg_lease_may_finish(const struct bg_daemon *d);
void bg_lease_release(struct bg_daemon *d);
void bg_lease_free(struct bg_daemon *d);
bool bg_lease_released(const struct bg_daemon *d);
void bg_lease_register_membership(struct bg_daemon *d);

/* Exit codes of bygated. */
enum {
	BG_EXIT_OK = 0,
	BG_EXIT_CONFIG = 1,
	BG_EXIT_USAGE = 2,
	BG_EXIT_RUNTIME = 3,
	BG_EXIT_LEASE_BUSY = 4, /* worker id held elsewhere past lease_wait_s */
	BG_EXIT_LEASE_LOST = 5, /* heartbeat found another owner */
	BG_EXIT_LOCKED = 6,     /* state directory locked by another bygated */
};

/* consume.c */
void bg_consume_on_lease_held(struct bg_daemon *d);
void bg_consume_on_ctl_up(struct bg_daemon *d);
void bg_consume_kick(struct bg_daemon *d);
void bg_consume_sync_time(struct bg_daemon *d);
int bg_consume_capacity(const struct bg_daemon *d);

/* task.c */
void bg_task_accept(struct bg_daemon *d, int stream_idx, const char *id,
		    const char *data, size_t data_len, bool has_data);
void bg_task_dispatch(struct bg_daemon *d);
void bg_task_on_idle(void *arg, int slot);
void bg_task_on_message(void *arg, int slot, uint16_t kind, uint64_t tag,
			const uint8_t *payload, size_t len);
void bg_task_on_child_lost(void *arg, int slot, const uint64_t *tags, int n,
			   const char *why);
void bg_task_on_wr_up(struct bg_daemon *d);
void bg_task_accept_recovered(struct bg_daemon *d, int stream_idx,
			      const char *id, const char *data,
			      size_t data_len, bool has_data, int deliveries);
void bg_task_replay_finish(struct bg_daemon *d, int stream_idx,
			   const char *id, struct bg_str blob);
void bg_task_free(struct bg_daemon *d, struct bg_task *t);
/* At exit: free every task, with no other effect. */
void bg_task_free_all(struct bg_daemon *d);
void bg_task_release_private(struct bg_daemon *d, struct bg_task *t);
void bg_task_end_ack(struct bg_daemon *d, struct bg_task *t);
void bg_task_end_deadletter(struct bg_daemon *d, struct bg_task *t,
			    const char *code, const char *why);
/* Send one write-connection command with EXPIRE dedupe helpers. */
void bg_expire_once(struct bg_daemon *d, const char *key);
void bg_turn_end(struct bg_daemon *d);

/* outbox.c */
void bg_outbox_call(struct bg_daemon *d, struct bg_task *t, const uint8_t *p,
		    size_t len);
void bg_outbox_reset(struct bg_task *t);
void bg_outbox_routes_free(struct bg_daemon *d); /* route.c, at exit */

/* stats.c */
typedef void (*bg_stats_emit_fn)(void *ctx, int argc, const struct bg_str *argv);
void bg_stats_update(struct bg_daemon *d, struct bg_str record,
		     const char *execution_id, const char *old_status,
		     const char *new_status, bool in_txn, bg_stats_emit_fn emit,
		     void *ctx);

/* control.c */
void bg_control_handle(struct bg_daemon *d, struct bg_task *t);
void bg_control_cancel_task(struct bg_daemon *d, struct bg_task *t,
			    const char *reason, bool force);
void bg_control_set_lifecycle(struct bg_daemon *d, const char *lifecycle,
			      bool force);
bool bg_control_suspended(const struct bg_daemon *d);
void bg_control_refresh_admin(struct bg_daemon *d);
void bg_control_set_denied(struct bg_daemon *d, int type, bool denied);
void bg_control_free(struct bg_daemon *d);

/* sessions.c */
void bg_sessions_gc(struct bg_daemon *d);

/* recover.c */
void bg_recover_own(struct bg_daemon *d, bool at_start);
void bg_recover_peers(struct bg_daemon *d);
void bg_recover_forget_applied(struct bg_daemon *d);
/* Is entry id of stream held by a task here? */
bool bg_recover_in_flight(const struct bg_daemon *d, const char *stream,
			  const char *id);
/* The `data` field of an entry's field array (XCLAIM, XRANGE), or NULL. */
const char *bg_recover_entry_data(redisReply *fields, size_t *len);

/* suspects.c: after an unclean exit the entries pending here are re-run
 * one at a time before anything is read (docs/recovery.md, "Suspects") */
bool bg_suspects_collecting(struct bg_daemon *d);
bool bg_suspects_clean_start(struct bg_daemon *d);
void bg_suspects_add(struct bg_daemon *d, int stream_idx, const char *id,
		     int delivery_count);
void bg_suspects_scan_failed(struct bg_daemon *d);
bool bg_suspects_retry_scan(struct bg_daemon *d);
bool bg_suspects_begin(struct bg_daemon *d);
bool bg_suspects_active(const struct bg_daemon *d);
void bg_suspects_kick(struct bg_daemon *d);
void bg_suspects_task_done(struct bg_daemon *d, const struct bg_task *t);
int bg_suspects_alone_crashes(const struct bg_daemon *d,
			      const struct bg_task *t);
void bg_suspects_free(struct bg_daemon *d);

/* finish.c */
void bg_finish(struct bg_daemon *d, struct bg_task *t);
void bg_finish_mark_verify(struct bg_daemon *d);
void bg_finish_replay(struct bg_daemon *d, struct bg_task *t,
		      struct bg_str blob);
bool bg_finish_blob_valid(struct bg_str blob);
void bg_finish_release_held(struct bg_daemon *d);
void bg_finish_resend_unknown(struct bg_daemon *d);

/* keyset.c */
struct bg_keyset *bg_keyset_new(void);
bool bg_keyset_add(struct bg_keyset *s, const char *key); /* true = new */
void bg_keyset_clear(struct bg_keyset *s);
void bg_keyset_free(struct bg_keyset *s);

#endif
