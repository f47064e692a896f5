/* supervisor/job.h - one struct bg_job per stream entry this host holds,
 * from its pickup until its finish is applied, and the one place its
 * state changes (bg_job_move). docs/architecture.md draws the states.
 *
 * Ownership: every `char *` and struct bg_buf of a job is its own (freed
 * by bg_job_free); `const char *` members point at the configuration or
 * at string literals and are never freed. */
#ifndef BG_SUPERVISOR_JOB_H
#define BG_SUPERVISOR_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/cmdlist.h"
#include "supervisor/log.h"
#include "supervisor/lanes.h"
#include "wire/command.h"

struct event;
struct json_t;
struct bg_daemon;
struct bg_ws_paths;
struct bg_event_ctx;

/* Longest id (session, message, agent type) a command may carry, and room
 * for a registry field naming one ("msg_map:<message id>"). */
#define BG_ID_MAX 512
#define BG_FIELD_MAX (BG_ID_MAX + 16)

/* The life of a job. Every change goes through bg_job_move, which refuses
 * a move the table in job.c does not list. */
enum bg_job_state {
	BG_JOB_PICKUP,	       /* registry read, group join or the claim of
				  the record (admit.c) in flight */
	BG_JOB_PICKUP_LOST,    /* its read was lost with the write
				  connection: sent again when it is back */
	BG_JOB_QUEUED,	       /* in the ready queue, waiting for a child */
	BG_JOB_BACKOFF,	       /* a failed attempt waits for its retry */
	BG_JOB_RUNNING,	       /* an attempt runs in a child */
	BG_JOB_KILLING,	       /* timed out or cancelled: the kill ladder
				  (kill.c) is stopping its attempt */
	BG_JOB_ENDING,	       /* out of any child; its end is read from
				  Redis first (a cancel's caller) */
	BG_JOB_FINISH_HELD,    /* finish built; the lease's fencing window
				  holds it back */
	BG_JOB_FINISH_SENT,    /* finish transaction in flight, or what
				  comes before it: the read of the current
				  record, the ownership check */
	BG_JOB_FINISH_BACKOFF, /* EXEC refused: sent again after back-off */
	BG_JOB_FINISH_UNKNOWN, /* EXEC outcome unknown (connection lost):
				  resolved by XPENDING after the reconnect */
	BG_JOB_ABANDONED,      /* the finish could not be built: the entry
				  stays pending for recovery */
	BG_JOB__COUNT
};

/* How an attempt ends; every kind goes through the one finish builder. */
enum bg_end_kind {
	BG_END_RESULT,	   /* the handler returned (any status) */
	BG_END_FAILED,	   /* crash, protocol error, caps: FAILED + error */
	BG_END_DEADLETTER, /* malformed/stale entry: dead letter (+FAILED) */
	BG_END_ACK_ONLY,   /* terminal replay or ignored command: XACK only */
	BG_END_REPLAY,	   /* a journaled finish re-sent by recovery */
	BG_END_DUPLICATE,  /* a copy of another entry's send (its idempotency
			      key, supervisor/idem.c): its own record, if
			      any, FAILED with duplicate_of, then XACK */
};

/* Why the kill ladder runs (kill.c). */
enum bg_kill_reason { BG_KILL_TIMEOUT, BG_KILL_CANCEL, BG_KILL_FORCE };

/* The entry and the command it carries, set at pickup (pickup.c). */
struct bg_job_id {
	int stream_idx; /* 0 = worker stream, 1.. = agent types */
	char *stream;	/* stream key */
	char *entry_id;
	char *data; /* the entry's raw `data` field (NULL when absent) */
	size_t data_len;
	bool may_park;	   /* may go to the ready set (pickup.c) */
	size_t charged;	   /* data_len while it counts against the read
			      budget (entry_read.h), else 0 */
	struct bg_cmd cmd; /* spans into data */
	bool cmd_ok;
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
	/* Invariant (admit.c examine/won, finish.c rebase): while
	 * record_exists, prev_status is what `record` says: its status when
	 * its worker_id is this worker's, else "". The finish skips its
	 * parse when Redis returns exactly these bytes. */
	/* The route members of `record` (bg_record's route_policy and
	 * route_status, decoded; empty when none), kept with it by
	 * bg_job_keep_route wherever `record` takes bytes read from Redis
	 * (examine, rebase); the records we write keep them byte for byte.
	 * The trace reads them here instead of scanning `record`. */
	struct bg_buf route_policy, route_status;
	char callback_to[BG_ID_MAX + 1]; /* caller agent type to call back
					   when terminal ("" = none): WIRE
					   6.6, "bygate decisions" 16 */
	char *group_results;		 /* JSON of a joined dispatch_group */
	int deliveries;			 /* Redis delivery count when known */
	int alone_crashes; /* times bygated died while it ran alone */
	bool recovered;	   /* fetched by PEL reconcile or reclaim */
	bool finish_begun; /* Cluster: a finish of this entry applied its
			      session's part (finish_parts.h) */
	struct bg_buf finish_rest; /* ...and the rest it kept there */
	bool stale;		   /* older than max_entry_age (pickup.c) */
	/* a RESUME waiting for its execution's run to end (admit.c, busy) */
	bool waits_for_run;
	uint64_t taken_by; /* the job whose run took it (resume_take.c) */
	bool released;	   /* ...which ended without its finish: under
			      Cluster that finish may have begun, its guard
			      is read again (pickup.c) */
	int wait_rounds;
	int64_t wait_since_ms;
};

/* Its runs in children (schedule.c, attempt.c, kill.c, calls.c). */
struct bg_job_run {
	struct bg_ws_paths *ws; /* session and private directories */
	int slot;
	int pid;
	int64_t picked_ms, started_ms;
	int attempt;	     /* 1-based, the attempt running */
	int failed_attempts; /* attempts ended by death, timeout, retryable */
	int reruns;	     /* re-runs that did not count as attempts */
	bool rerun_announce; /* say "RERUN <n>" when it starts */
	bool isolate;	     /* run alone: it was interrupted by the death of
				a child or program it shared (DESIGN 5) */
	bool shared;	     /* runs in a child next to other jobs */
	uint32_t run_id;     /* bumped whenever it is handed to a child: an
				answer for an earlier run is stale */
	uint64_t events, event_bytes;
	bool events_capped;
	bool end_marker_emitted;
	struct event *deadline_ev; /* the attempt's timeout_ms */
	/* the kill ladder (kill.c) */
	bool timed_out;
	bool cancel_requested; /* CANCEL_TASK or the record says so */
	char *cancel_reason;
	bool parent_cancelled; /* the caller asked for the cancel */
	enum bg_kill_reason kill_reason;
	int kill_step;	/* 0 none, then the steps of kill.c */
	bool signalled; /* its ladder signalled its child */
	struct event *kill_ev;
	/* handler operations: writes applied in the finish transaction */
	struct bg_cmdlist outbox;
	struct json_t *kv;   /* this attempt's kv sets */
	struct bg_buf asked; /* its ask_user question, for the conversation
				(conversation.h) */
	bool suspended;	     /* call_agent/dispatch_group wait, ask_user */
	bool permission_transferred; /* handed the stream to a callee */
	bool outbox_dropped; /* ended without its outbox (end.c, cancel) */
	/* scheduling (schedule.c, docs/scheduling.md) */
	char lane[BG_LANE_MAX + 1]; /* "" = the default lane */
	int priority;		    /* metadata.priority, higher first */
	bool resumes;		    /* RESUME: work already started, first */
	enum bg_task_role role;	    /* metadata.bygate_role (lanes.h) */
	int64_t queued_ms;	    /* when it (last) entered the window */
	int lane_slot;		    /* schedule.c's lane table; -1 = unknown */
	uint64_t skip_pass;	    /* schedule.c: no place in this pass */
	bool gate_held;		    /* holds fleet places (gate.h) */
};

/* How it ended (attempt.c, end.c). */
struct bg_job_outcome {
	enum bg_end_kind end_kind;
	char *status; /* normalised business status */
	struct bg_buf content, reply_data, result_metadata, extra_payload;
	char *error_message; /* FAILED/DEADLETTER reason */
	const char *error_code;
	const char *error_type;
	const char *failed_stage;
	bool deadletter;    /* FAILED and also dead-lettered (poison) */
	char *duplicate_of; /* BG_END_DUPLICATE: the first message id */
};

/* Its finish transaction (finish_build.c, finish.c). */
struct bg_job_finish {
	struct bg_buf finish_blob; /* the commands, as journaled */
	bool verify_owner;	   /* after a lease lapse: XPENDING first */
	bool applied;		   /* the finish transaction was applied */
	int finish_tries;
};

struct bg_job {
	struct bg_job *next, *prev; /* in the daemon's list of all jobs */
	struct bg_job *qnext;	    /* in the ready queue (QUEUED) */
	struct bg_daemon *d;
	uint64_t tag; /* names it on the rings */
	enum bg_job_state state;
	struct event *retry_ev; /* BACKOFF, then FINISH_BACKOFF */
	struct event *wait_ev;	/* a RESUME waiting for a run (admit.c) */
	struct bg_job_id id;
	struct bg_job_run run;
	struct bg_job_outcome end;
	struct bg_job_finish fin;
};

/* The name of a state, for logs and tests. */
const char *bg_job_state_name(enum bg_job_state s);
/* May a job move from `from` to `to`? (The table; a move to the same
 * state is always allowed.) */
bool bg_job_may_move(enum bg_job_state from, enum bg_job_state to);
/* Move t to `to`, keeping the daemon's counts; a move the table refuses
 * is a bug of bygated: logged and aborted (the entry stays pending in
 * Redis and is recovered). */
void bg_job_move(struct bg_job *t, enum bg_job_state to);

/* In a child (RUNNING or KILLING): its answers are expected. */
bool bg_job_in_child(const struct bg_job *t);
/* Finishing (FINISH_* or ABANDONED): it holds no child. */
bool bg_job_finishing(const struct bg_job *t);

/* A job for entry `id` of stream `stream_idx`, in PICKUP, linked into the
 * daemon's list; NULL when out of memory or when the entry is already
 * held here (a read reply and a reconcile can both deliver it). */
struct bg_job *bg_job_new(struct bg_daemon *d, int stream_idx, const char *id);
struct bg_job *bg_job_find(struct bg_daemon *d, uint64_t tag);
/* Is entry id of stream held by a job here? */
bool bg_job_holds(const struct bg_daemon *d, const char *stream,
		  const char *id);
/* Unlink and free t; the daemon's job_freed hook runs first. */
void bg_job_free(struct bg_daemon *d, struct bg_job *t);
/* A command of t's pickup (registry read, idempotency check, claim)
 * answered with an error or an unexpected reply: logged WARN ("<what>
 * refused (...); retrying") and t waits in PICKUP_LOST; the caller drops
 * the write connection, whose reconnect sends t's read again. */
struct redisReply;
void bg_job_refused(struct bg_job *t, const char *what,
		    const struct redisReply *r);
/* At exit: free every job, with no other effect. */
void bg_job_free_all(struct bg_daemon *d);
/* Remove the attempt's private directory (after the attempt). */
void bg_job_release_private(struct bg_daemon *d, struct bg_job *t);

struct bg_log_ids bg_job_log_ids(const struct bg_job *t);
/* t->id.route_policy and route_status from rec (a successful
 * bg_record_read of the bytes now in t->id.record), or empty with rec
 * NULL. -ENOMEM (both then empty). */
struct bg_record;
int bg_job_keep_route(struct bg_job *t, const struct bg_record *rec);
void bg_job_event_ctx(const struct bg_job *t, struct bg_event_ctx *ctx);

/* The ready queue: QUEUED jobs in the order they are placed. */
void bg_job_enqueue(struct bg_daemon *d, struct bg_job *t);
/* Ahead of the queue: an interrupted job keeps its place in line. */
void bg_job_enqueue_front(struct bg_daemon *d, struct bg_job *t);
/* Take t out of the queue; prev is the job before it or NULL. */
void bg_job_dequeue(struct bg_daemon *d, struct bg_job *prev, struct bg_job *t);

#endif
