/* bygate/client.h - libbygate: the client side of the by-framework wire
 * protocol (send a task or a reply with availability routing, follow a
 * session's events, read and cancel executions, administer workers, reload
 * plugins, run the wakeup gate), and its reference manual. What it writes
 * is what the Python GatewayClient, WorkerManager, WakeupController and
 * DeliveryGate write, so workers cannot tell them apart.
 *
 * @section intro Using the library
 *
 *	struct bg_client *c;
 *	char err[256];
 *	if (bg_client_open(NULL, &c, err, sizeof err))
 *		errx(3, "%s", err);
 *	struct bg_send_request req = { .agent_type = "echo",
 *				       .session_id = "s-1",
 *				       .content = "hello" };
 *	struct bg_send_response resp;
 *	int rc = bg_client_send(c, &req, &resp);
 *	if (rc)
 *		errx(1, "%s: %s", bg_client_strerror(rc), bg_client_errmsg(c));
 *	bg_client_close(c);
 *
 * Build with `cc app.c $(pkg-config --cflags --libs bygate)`: the installed
 * libbygate.a is static and whole (bygate's wire, configuration and common
 * code included), and bygate.pc requires the four libraries it calls:
 * hiredis, jansson, libconfig and libcrypto.
 *
 * A client holds one synchronous Redis connection, opened by
 * bg_client_open and never re-established: after any error whose code is
 * BG_CLIENT_EIO or BG_CLIENT_EINTR the client is unusable and must be
 * closed. Every call blocks for at most the configured command timeout
 * (redis.command_timeout_ms) plus its own block time (bg_client_read_events,
 * a WAKE_AND_WAIT send, bg_client_reload_acks), except bg_client_gate,
 * which runs until stopped. A client is not thread-safe; use one per
 * thread.
 *
 * Every string handed to the library is UTF-8 and NUL-terminated; every
 * string it hands back lives until the callback returns (events, records)
 * or is copied into the caller's arrays (responses). Data read from Redis
 * is never trusted: malformed entries and records are reported, never
 * crash the caller.
 *
 * @section caveats Caveats
 *
 *  - Redis Cluster is not supported (bg_client_open refuses it, as bygated
 *    does); the v2 key schema on a standalone server is.
 *  - The default route policy is FAIL_FAST, as in Python: a send to an
 *    agent type with no online worker is rejected (BG_CLIENT_EREJECTED)
 *    and leaves a FAILED record. SEND_ANYWAY writes the entry regardless.
 *  - Python writes a send's registry record and its stream entries as
 *    separate commands; bygate writes them in one MULTI/EXEC, record first.
 *    The keys, entries and JSON are the same.
 *  - Trace-root and span writes of the Python client (WIRE 9.2) are not
 *    written.
 *  - A turn that suspends (ask_user, or waiting on sub-agents) writes no
 *    appStreamResponse end marker, so a reader waiting for one waits until
 *    its own timeout; bg_client_send_wait ends an ask_user turn on its
 *    question instead.
 */
#ifndef BYGATE_CLIENT_H
#define BYGATE_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Errors of this library: negative, disjoint from -errno values. Functions
 * also return -EINVAL (a bad argument), -ENOMEM and -ENOENT where said. */
enum bg_client_error {
	BG_CLIENT_ECONFIG = -5001, /* configuration not loaded or unsupported */
	BG_CLIENT_ECONNECT = -5002, /* cannot connect, authenticate or select */
	BG_CLIENT_EREDIS = -5003,   /* Redis answered a command with an error */
	BG_CLIENT_EIO = -5004,	    /* connection lost or timed out */
	BG_CLIENT_EPROTO = -5005,   /* a reply not of the documented shape */
	BG_CLIENT_EINTR = -5006,    /* bg_client_interrupt() was called */
	BG_CLIENT_EREJECTED = -5007, /* availability routing refused a send */
};

/* A short description of any code returned by this library (static). */
const char *bg_client_strerror(int rc);

/* Room for an id returned in a struct (NUL included); longer ids given in
 * a request are refused with -EINVAL. */
#define BG_CLIENT_ID_MAX 256
/* Room for a stream entry id ("<ms>-<seq>", NUL included). */
#define BG_CLIENT_ENTRY_ID_MAX 48

struct bg_client;

/* Load the configuration exactly as bygated does (conf/config.h
 * bg_config_load: defaults, the file at config_path unless it is NULL, then
 * the by-framework environment variables REDIS_HOST, REDIS_PORT,
 * REDIS_DATABASE / REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD,
 * REDIS_KEY_SCHEMA_VERSION, REDIS_CLUSTER_HOST, REDIS_MODE), then connect,
 * AUTH and SELECT. On success *out is a new client. On failure *out is NULL,
 * err (if errlen > 0) holds a message, and the result is
 * BG_CLIENT_ECONFIG, BG_CLIENT_ECONNECT or -ENOMEM. */
int bg_client_open(const char *config_path, struct bg_client **out, char *err,
		   size_t errlen);

/* Close the connection and free the client; NULL is a no-op. */
void bg_client_close(struct bg_client *c);

/* Details of the last failure of a call on c (the Redis error text, the
 * field that was malformed, ...); "" when none. Valid until the next call. */
const char *bg_client_errmsg(const struct bg_client *c);

/* Async-signal-safe: make the call blocked on c, or the next one, fail
 * with BG_CLIENT_EINTR. The connection is shut down; close the client. */
void bg_client_interrupt(struct bg_client *c);

/* A task for an agent type (WIRE 2.5, first example), or with
 * bg_client_reply a user reply (WIRE 2.5 "User reply", 6.8). NULL and ""
 * are the same for every optional member. */
struct bg_send_request {
	const char *agent_type; /* header.target_agent_type: required by
				      send; reply defaults to the record's */
	const char *session_id; /* required */
	const char *content;	/* send: non-blank text, or JSON; reply:
				      may be empty when status is given */
	bool content_is_json;	/* content is a JSON array or object */
	const char *user_code;
	const char *user_name;
	const char *metadata;	   /* JSON object: header.metadata */
	const char *extra_payload; /* JSON object: body.extra_payload */
	bool wait_for_reply;	   /* body.wait_for_reply (send only) */
	const char *message_id;	   /* send: default a new msg-xxxxxxxx;
				      reply: required, the message resumed */
	const char *trace_id;	   /* default: a new uuid4 hex */
	const char *parent_message_id;

	/* Routing (WIRE 7 and 6.9). */
	const char *route_policy; /* FAIL_FAST (default), SEND_ANYWAY,
				      WAKE_AND_WAIT, WAKE_AND_QUEUE, QUEUE_ONLY */
	int timeout_ms;		  /* WAKE_AND_WAIT bound: 0 = 30000, < 0 =
				      do not wait (an immediate timeout) */
	const char *region;
	long long priority;
	const char *worker_id; /* direct routing to this worker's stream */

	/* bg_client_reply only (RESUME body, WIRE 2.3). */
	const char *status;
	const char *reply_data; /* raw JSON; default null */

	/* bg_client_send only (docs/client.md, "Idempotency keys"): at most
	 * one task per key and agent type within the TTL. Also written into
	 * header.metadata.idempotency_key; a string member idempotency_key of
	 * metadata counts the same when this is NULL. 1-200 printable ASCII
	 * characters, no space. */
	const char *idempotency_key;
	int idempotency_ttl_s; /* 0 = the configuration's
				  worker.idempotency_ttl_s (300) */
};

/* Longest route status / error code, NUL included. */
#define BG_CLIENT_CODE_MAX 40

struct bg_send_response {
	char message_id[BG_CLIENT_ID_MAX];
	char execution_id[BG_CLIENT_ID_MAX];
	char trace_id[BG_CLIENT_ID_MAX];
	char entry_id[BG_CLIENT_ENTRY_ID_MAX];	 /* of the control-stream entry;
						  "" when none was written */
	char pending_id[BG_CLIENT_ENTRY_ID_MAX]; /* of the PendingDelivery */
	/* DELIVER_NOW, WAIT_AND_DELIVER, QUEUE_PENDING,
	 * FALLBACK_TO_OTHER_AGENT_TYPE, DIRECT_WORKER or REJECT */
	char route_status[BG_CLIENT_CODE_MAX];
	char target_agent_type[BG_CLIENT_ID_MAX]; /* after a fallback */
	char stream[2 * BG_CLIENT_ID_MAX];	  /* the record's stream_name */
	bool resumed; /* reply: the execution of the message was found */
	/* send with an idempotency key already used: nothing was written and
	 * message_id, execution_id and session_id are the first send's */
	bool duplicate;
	char session_id[BG_CLIENT_ID_MAX];
	/* With BG_CLIENT_EREJECTED: AGENT_CIRCUIT_OPEN, TENANT_QUOTA_EXCEEDED,
	 * AGENT_TYPE_UNAVAILABLE or WORKER_NOT_ONLINE, and the message. */
	char error_code[BG_CLIENT_CODE_MAX];
	char error[512];
};

/* Send an ASK_AGENT as GatewayClient.send_message does (WIRE 2.5, 6.1,
 * 6.2, 6.9, 7). Routing first:
 *  - worker_id set (direct routing): the worker's lease must be online
 *    unless route_policy is SEND_ANYWAY (else BG_CLIENT_EREJECTED with
 *    WORKER_NOT_ONLINE and nothing written); the command goes to its worker
 *    stream and the record says route_status DIRECT_WORKER;
 *  - else prepare_delivery of WIRE 7, in its order: circuit, quota (with a
 *    user_code), SEND_ANYWAY, online members, fallback, then the policy.
 *    WAKE_AND_WAIT writes its WakeupRequest and blocks on the execution's
 *    decision stream for up to timeout_ms.
 * Then, in one MULTI/EXEC: the QUEUED execution record (route_policy,
 * route_status, selected_agent_type...) and its msg_map field, the
 * registry's 7-day EXPIRE, and the XADD of the command to the chosen
 * stream - or, for QUEUE_PENDING, the WakeupRequest (WAKE_AND_QUEUE) and
 * the PendingDelivery, the record's stream_name being the pending stream.
 * The record exists before any worker or gate can read the entry. A
 * FALLBACK_TO_OTHER_AGENT_TYPE rewrites header.target_agent_type and the
 * record's to the selected type.
 * A rejected route writes the FAILED record of record_failed_route_decision
 * (failed_stage "availability", route_status REJECT, error code and text)
 * and returns BG_CLIENT_EREJECTED with resp->error_code / resp->error.
 * As in Python, metadata members trace_parent_span_id and
 * langfuse_parent_observation_id move to the header, and an extra_payload
 * member wait_for_reply moves to the body.
 * With an idempotency key, the key's HASH is read first: a key in use
 * returns 0 at once with resp->duplicate and the first send's ids, before
 * any routing. Else the MULTI/EXEC above is one script instead that
 * writes nothing but returns the first send's ids when the key was taken
 * meanwhile, and else takes the key (its HASH: message_id, session_id,
 * execution_id, at_ms, with the TTL) along with the record and entries:
 * two senders of one key cannot both write an entry. A rejected route
 * does not take the key.
 * 0 with *resp filled; BG_CLIENT_EREJECTED; -EINVAL (a required member
 * missing, blank content, metadata / extra_payload / JSON content
 * malformed, an id too long, an unusable idempotency key), then nothing
 * was written; or another BG_CLIENT_E* code. */
int bg_client_send(struct bg_client *c, const struct bg_send_request *req,
		   struct bg_send_response *resp);

/* A user reply (WIRE 6.8): a RESUME with req->message_id, routed exactly
 * as bg_client_send routes. The execution of the message (msg_map, then the
 * record) is reused: its execution id, and its target_agent_type unless
 * req->agent_type is given; its record is not re-initialised (resp->resumed
 * is then true). With no such execution a new QUEUED record is created as
 * for a send, and req->agent_type is required. status and reply_data
 * members of extra_payload move to the body, as in Python; req->status and
 * req->reply_data take precedence over them. The body needs a non-empty
 * status or content (-EINVAL otherwise). An idempotency key is refused
 * (-EINVAL): keys are for sends. Same results as bg_client_send. */
int bg_client_reply(struct bg_client *c, const struct bg_send_request *req,
		    struct bg_send_response *resp);

/* One execution a cancel marked CANCELLING (bg_cancel_cb). */
struct bg_client_cancelled {
	const char *execution_id;
	const char *message_id;
	const char *worker_id; /* "" when the record had none */
	const char *entry_id;  /* of the CANCEL_TASK entry; "" when none */
};
typedef int (*bg_cancel_cb)(void *arg, const struct bg_client_cancelled *n);

struct bg_cancel_request {
	const char *session_id; /* required */
	const char *message_id; /* NULL: every execution of the session */
	const char *reason;
	const char *cancel_mode;  /* "graceful" (default) or "force" */
	const char *requested_by; /* default "client" */
	bg_cancel_cb cb;	  /* may be NULL; called per cancelled node */
	void *arg;
};

struct bg_cancel_response {
	char status[BG_CLIENT_CODE_MAX]; /* CANCEL_REQUESTED, ALREADY_FINISHED,
					    NOT_FOUND */
	char execution_id[BG_CLIENT_ID_MAX]; /* of the message's execution */
	char worker_id[BG_CLIENT_ID_MAX];
	int cancelled_count;
	int already_finished_count; /* terminal records flagged */
	char error[512];	    /* NOT_FOUND / ALREADY_FINISHED */
};

/* GatewayClient.cancel_task (message_id set) or cancel_session (WIRE
 * 6.10): the execution of the message and, breadth first over the
 * parent_message_id edges of the session's records, its descendants.
 * Terminal records get cancel_requested (and the reason) with their status
 * unchanged; the others become CANCELLING (cancel_requested, cancel_reason,
 * a timeline entry), and those with a worker_id get a CANCEL_TASK on that
 * worker's stream. Each record is a read-modify-write of its JSON, and the
 * worker statistics keys (WIRE 5.9) follow, as in Python. 0 with *resp
 * filled (its status says what happened), or a negative error. */
int bg_client_cancel(struct bg_client *c, const struct bg_cancel_request *req,
		     struct bg_cancel_response *resp);

/* Workers (WIRE 5.1-5.9), as JSON for the caller to free(): an array of
 * worker objects, sorted by id, for every worker with an online-lease key
 * (SCAN), in the known_workers set or in admin_workers:
 *   {"worker_id", "online", "last_seen", "ip_address", "lease" (the stored
 *    value decoded, or null), "agent_types" [sorted], "lifecycle"
 *    ("active" when no admin state), "lifecycle_reason",
 *    "lifecycle_updated_at", "counts" {"total", "active", "queued",
 *    "running", "cancelling", "completed", "failed", "cancelled"},
 *    "last_updated_at", "last_started_at", "last_finished_at"}
 * 0 or a negative error. */
int bg_client_workers(struct bg_client *c, char **json_out);

/* One worker's object as above plus "active_executions" (ZREVRANGE of the
 * active index, at most 100, with their snapshots) and
 * "recent_executions" (the history index, at most 20). -ENOENT when
 * nothing at all is stored about the worker. */
int bg_client_worker_info(struct bg_client *c, const char *worker_id,
			  char **json_out);

/* The fleet's scheduling state (docs/scheduling.md "Seeing the lanes"),
 * read without writing anything, as JSON for the caller to free():
 *   {"now_ms" (Redis TIME), "agent_types": [{"agent_type", "waiting",
 *    "oldest_entry_id", "oldest_age_ms", "vtime", "fleet_running",
 *    "lanes": [{"lane", "waiting", "oldest_entry_id", "oldest_age_ms",
 *               "pass", "fleet_running"}]}]}
 * for agent_type alone, or (NULL or "") for every agent type declared by
 * a worker the registry knows or with entries in a ready set (SCAN), sorted
 * by name. Lanes are those of the ready set's "lanes" set and of its
 * passes hash, sorted. "waiting" is the lane's ZCARD (a type's: the sum);
 * the oldest entry is the smallest entry id waiting (null when none), its
 * age now_ms minus the id's ms; "pass" and "vtime" are the stride numbers
 * (null when unset); "fleet_running" counts the unexpired places of the
 * type's or the lane's fleet running set (a lane's set is shared by every
 * agent type; null for the default lane ""; places exist only under a
 * fleet_max_running). 0 or a negative error. */
int bg_client_lanes(struct bg_client *c, const char *agent_type,
		    char **json_out);

/* WorkerManager operations (WIRE 5.5, 5.6). */
enum bg_admin_op {
	BG_ADMIN_SUSPEND,      /* lifecycle suspended, out of routing */
	BG_ADMIN_RESUME,       /* lifecycle active, back in routing */
	BG_ADMIN_EVICT,	       /* lifecycle evicted, out of routing */
	BG_ADMIN_ALLOW_REJOIN, /* admin state deleted */
};

/* Apply op to the worker: the durable admin hash (and admin_workers), the
 * routing change and the push command on the worker's stream, exactly as
 * the WIRE 5.6 table says. force is EVICT_WORKER's body.force. *json_out
 * (to free()) describes what was done: {"worker_id", "operation",
 * "lifecycle", "entry_id", "agent_types"} (agent_types: the routing sets
 * changed). 0 or a negative error. */
int bg_client_admin(struct bg_client *c, enum bg_admin_op op,
		    const char *worker_id, const char *reason, bool force,
		    char **json_out);

/* deny_worker_for_type: SADD the denylist, SREM the routing set. */
int bg_client_deny(struct bg_client *c, const char *agent_type,
		   const char *worker_id);

/* allow_worker_for_type: SREM the denylist; then (a bygate addition, the
 * worker's own heartbeat would do it within 5 s) SADD the routing set when
 * the worker declares the type and its admin lifecycle is active. *added
 * (may be NULL) says whether it was re-added. */
int bg_client_allow(struct bg_client *c, const char *agent_type,
		    const char *worker_id, bool *added);

/* Whether Redis knows the worker: its lease, admin state, declared agent
 * types or counters exist, or it is in known_workers. A worker that never
 * ran and was never administered is unknown (bygate's admin commands refuse
 * it unless forced). 0 or a negative error. */
int bg_client_worker_known(struct bg_client *c, const char *worker_id,
			   bool *known);

/* Whether Redis knows the agent type: its control stream, routing set or
 * denylist exists, or a known worker declares it. 0 or a negative error. */
int bg_client_agent_type_known(struct bg_client *c, const char *agent_type,
			       bool *known);

/* reload_plugins_for_agent_type (WIRE 8.1): a RELOAD_PLUGINS on the stream
 * of every online worker of the type. reload_id NULL or "": a new
 * reload-xxxxxxxx. *json_out (to free()): {"reload_id", "agent_type",
 * "worker_ids", "dispatched_count"}. 0 or a negative error. */
int bg_client_reload(struct bg_client *c, const char *agent_type,
		     const char *reason, const char *reload_id,
		     char **json_out);

/* collect_reload_acks: XREAD COUNT 100 [BLOCK block_ms] of the reload's
 * ACK stream after last_id (block_ms < 0: no BLOCK). *json_out (to free())
 * is the array of the ACK objects read (entries that are not JSON objects
 * are skipped); last_id (BG_CLIENT_ENTRY_ID_MAX bytes) is advanced past
 * every entry read. 0 or a negative error. */
int bg_client_reload_acks(struct bg_client *c, const char *reload_id,
			  char *last_id, int block_ms, char **json_out);

/* DeliveryGate.dispatch_ready (WIRE 7): the PendingDelivery entries of
 * execution_id (the whole pending stream read from 0-0), by priority
 * descending, each command_payload XADDed to its delivery_stream - each
 * pending entry at most once, ever: an atomic script adds the entry id to
 * the gate's delivered set and XADDs only if it was not there (docs/
 * client.md). Entries whose delivery_stream is not the control stream of
 * their target_agent_type, or whose command_payload is not an object, are
 * skipped. *delivered (may be NULL) counts the XADDs done. */
int bg_client_dispatch_ready(struct bg_client *c, const char *execution_id,
			     int *delivered);

/* The reference wakeup controller and delivery gate (WIRE 7). */
struct bg_gate_options {
	const char *provider;	 /* required: run with sh -c per wakeup */
	const char *group;	 /* consumer group on mgmt:wakeup; default
				 "bygate_gate" */
	const char *consumer;	 /* default "gate-<hostname>" */
	int max_attempts;	 /* provider runs before FAILED; default 3 */
	int provider_timeout_ms; /* a run is killed after; default 120000 */
	int online_timeout_ms;	 /* READY: wait for an online worker; 30000 */
	bool once; /* handle what is there (own PEL, then new), then return */
};

/* What the gate did with one WakeupRequest. */
struct bg_gate_event {
	const char *entry_id;
	const char *execution_id;
	const char *agent_type;
	const char *status; /* the decision written: READY, QUEUED, REJECTED,
			       FAILED; "INVALID" for an unusable entry */
	const char *reason;
	int attempts;	      /* provider runs */
	int delivered;	      /* pending entries XADDed */
	const char *decision; /* the decision JSON written, or NULL */
};
typedef void (*bg_gate_cb)(void *arg, const struct bg_gate_event *ev);

/* Run the gate until *stop becomes non-zero (checked at least every
 * second, and while a provider runs) or, with o->once, until nothing is
 * left. WakeupRequests are read through the gate's own consumer group
 * (XGROUP CREATE ... 0 MKSTREAM; its own pending entries first, then >)
 * and acknowledged only once handled, so a restarted gate resumes
 * unfinished requests and never replays handled ones. Per request: the
 * dedupe claim (SET ... NX EX 30; a claim holding this execution id is
 * this gate's own earlier attempt), the provider (exit 0 READY, 3
 * REJECTED, else retried, FAILED after max_attempts) with BYGATE_AGENT_TYPE,
 * BYGATE_USER_CODE, BYGATE_REGION, BYGATE_EXECUTION_ID, BYGATE_SESSION_ID,
 * BYGATE_ATTEMPT and REDIS_HOST / REDIS_PORT / REDIS_KEY_SCHEMA_VERSION
 * in its environment; on READY a bounded wait for an online worker and
 * bg_client_dispatch_ready; then the WakeupDecision on the execution's
 * result stream (and on the dead-letter stream when FAILED). cb (may be
 * NULL) reports each request. 0 when stopped or done, or a negative
 * error (Redis failed; the request in hand stays pending). */
int bg_client_gate(struct bg_client *c, const struct bg_gate_options *o,
		   const volatile sig_atomic_t *stop, bg_gate_cb cb, void *arg);

/* ---- triggers (docs/client.md "Triggers", docs/triggers.md) ------------
 * Timer and webhook triggers are configured in bygated's configuration;
 * their fleet-wide state lives in Redis: the SET of trigger names every
 * bygated publishes (wire/keys.h BG_KEY_TRIGGERS), a HASH per trigger
 * (BG_KEY_TRIGGER) and the ZSET of its runs still active
 * (BG_KEY_TRIGGER_ACTIVE). A name not in the SET is unknown. */

/* One trigger as the fleet's state says: "" and 0 where a field is absent
 * (a trigger no bygated has described yet has only its name). The strings
 * are owned by the array of bg_client_triggers_list. */
struct bg_client_trigger {
	char *name;
	/* the definition (`def`) as the last bygated to load it wrote it */
	char *kind; /* "timer" or "webhook" */
	char *agent_type;
	long long every_ms;    /* timers given `every` */
	char *cron;	       /* timers given `cron` (5 fields, UTC) */
	char *path;	       /* webhooks: "/hooks/<name>" */
	long long max_running; /* 0: no cap */
	char *missed;	       /* "skip" or "run_once" (timers) */
	char *session;
	char *def_by; /* the worker id that wrote def */
	long long def_at_ms;
	/* pause, for the whole fleet */
	bool paused;
	long long paused_at_ms;
	char *paused_by;
	/* fires */
	long long next_ms;    /* next fire time (timers), as last polled */
	long long claimed_ms; /* latest fire time claimed */
	long long last_fire_ms;
	char *last_message_id, *last_execution_id, *last_session_id;
	char *last_outcome; /* fired, skipped_running, skipped_paused,
			       duplicate */
	long long fires, skipped_running, skipped_paused, missed_fires,
		duplicates;
	long long fire_requests, fire_done; /* manual fires asked, handled */
	long long active;		    /* runs still active */
};

/* Every trigger of the SET, sorted by name (HGETALL and ZCARD each):
 * *out a new array of *n (NULL when none) for bg_client_triggers_free.
 * Fields that do not parse (def not a JSON object, a counter not a
 * number) read as absent. 0 or a negative error. */
int bg_client_triggers_list(struct bg_client *c, struct bg_client_trigger **out,
			    size_t *n);
void bg_client_triggers_free(struct bg_client_trigger *v, size_t n);

/* Pause (paused true) or resume a trigger for the whole fleet: paused
 * "1", paused_at_ms and paused_by = who (NULL or "": "client"); resuming
 * writes paused "0" and deletes the other two. Durable: every bygated
 * reads it when it polls, a restarted one too; while paused no fire of
 * the trigger is sent (they count as skipped_paused). -ENOENT (errmsg
 * says so) when no bygated has published the name; -EINVAL for "". */
int bg_client_trigger_pause(struct bg_client *c, const char *name, bool paused,
			    const char *who);

/* The answer to a manual fire (bg_client_trigger_fire). */
struct bg_client_fire_result {
	long long request; /* its number: fire_requests after the HINCRBY */
	/* fired, skipped_running (max_running runs active), skipped_paused,
	 * error; "" while unanswered */
	char outcome[BG_CLIENT_CODE_MAX];
	char message_id[BG_CLIENT_ID_MAX]; /* fired: the ASK_AGENT's */
	char error[512];		   /* error: why (bygated's words) */
};

/* Ask the fleet to fire the trigger once now: HINCRBY fire_requests 1
 * gives the request number n; a bygated with the trigger handles it when
 * it next polls, raising fire_done to n and writing manual:<n>
 * ("fired <message_id>", "skipped_running", "skipped_paused" or "error
 * <why>"). Polled every 50 ms for up to timeout_ms (<= 0: 10000).
 * 0 when answered, whatever the outcome (out says it); -ENOENT for an
 * unknown name (nothing asked); -ETIMEDOUT when no bygated answered in
 * time: the request stays queued, and the first bygated with the trigger
 * to poll will still fire it, once (out->request names it). */
int bg_client_trigger_fire(struct bg_client *c, const char *name,
			   int timeout_ms, struct bg_client_fire_result *out);

/* One entry of a session data stream (WIRE 3.2). String members are ""
 * when the member is absent or not a string. */
struct bg_client_event {
	const char *entry_id;
	const char *event_type;
	const char *message_id;
	const char *parent_message_id;
	const char *source_agent_type;
	const char *content; /* data.choices[0].delta.content; NULL if none */
	size_t content_len;  /* content may hold NUL bytes */
	const char *raw;     /* the entry's `data` field; NULL if it has none */
	size_t raw_len;
	bool valid; /* raw is a JSON object */
};

/* Return 0 to go on, 1 to stop after this event, or a negative error,
 * which bg_client_read_events returns. */
typedef int (*bg_event_cb)(void *arg, const struct bg_client_event *ev);

/* Read the session's data stream after last_id ("0-0" = from the start)
 * with XREAD COUNT 100 [BLOCK block_ms] (WIRE 3.9): block_ms < 0 does not
 * block, 0 blocks until an entry arrives. cb is called for each entry in
 * order. next_id_out (BG_CLIENT_ENTRY_ID_MAX bytes, may be last_id itself)
 * receives the id of the last entry delivered, or last_id when none was.
 * Returns the number of entries delivered, or a negative error. Avoid "$"
 * as last_id: entries written between two reads would be lost; take
 * bg_client_last_entry_id before the action whose events you follow. */
int bg_client_read_events(struct bg_client *c, const char *session,
			  const char *last_id, int block_ms, bg_event_cb cb,
			  void *arg, char *next_id_out);

/* The id of the newest entry of the session's data stream (XREVRANGE
 * + - COUNT 1), or "0-0" when it is empty or absent, into out
 * (BG_CLIENT_ENTRY_ID_MAX bytes). 0 or a negative error. */
int bg_client_last_entry_id(struct bg_client *c, const char *session,
			    char *out);

/* An execution record of the session registry (WIRE 6.1, 6.2). */
struct bg_client_record {
	const char *execution_id; /* from the field name exec:<id> */
	const char *json;	  /* the stored record, not validated */
	size_t json_len;
};

/* Same contract as bg_event_cb. */
typedef int (*bg_record_cb)(void *arg, const struct bg_client_record *r);

/* Every exec:* record of the session (HGETALL, in Redis's order). Returns
 * their number, or a negative error. */
int bg_client_list_executions(struct bg_client *c, const char *session,
			      bg_record_cb cb, void *arg);

/* The record of message_id (HGET msg_map:<id>, then HGET exec:<id>) as a
 * malloc()ed NUL-terminated copy for the caller to free(). 0, -ENOENT when
 * either field is missing, or a negative error. */
int bg_client_get_execution(struct bg_client *c, const char *session,
			    const char *message_id, char **json_out,
			    size_t *len_out);

/* ---- following a turn to its end (docs/client.md "libbygate: waiting")
 * What `bygate send --wait` does, for every client: follow the session's
 * data stream from just before the send, through any number of streamed
 * chunks, to the appStreamResponse end marker of the message (WIRE 3.6),
 * then read its execution record until it is terminal. A turn that asks
 * the user (WIRE 6.8) writes no end marker: its ask_user form event
 * (contentType 3013 or 3014, WIRE 3.4) followed by the record's
 * WAITING_USER ends the wait instead, with the question. */

/* An iterator over a session's data stream (bg_client_events_open). */
struct bg_client_events;

/* Open an iterator over the session's data stream after from_id ("0-0" =
 * from the start; NULL or "" = after the newest entry now, so only events
 * written from now on). With message_id (may be NULL) the iterator ends
 * after the appStreamResponse of that message has been delivered. Reads
 * nothing but the newest entry id (for a NULL from_id). 0 with *out a new
 * iterator, -EINVAL (no session, a bad from_id), -ENOMEM or another
 * error. */
int bg_client_events_open(struct bg_client *c, const char *session,
			  const char *from_id, const char *message_id,
			  struct bg_client_events **out);

/* The next event, read with bg_client_read_events (XREAD COUNT 100, so
 * one read serves many calls): 1 with *ev valid until the next call on it
 * (or its close); 0 once the end marker of the iterator's message_id was
 * delivered (and on every later call); -ETIMEDOUT when no event arrived
 * within timeout_ms (0: do not block; < 0: block until an event arrives
 * or bg_client_interrupt) - the iterator stays usable; BG_CLIENT_EINTR or
 * another error of bg_client_read_events. */
int bg_client_events_next(struct bg_client_events *it, int timeout_ms,
			  const struct bg_client_event **ev);

/* The entry id of the last event delivered (from_id before the first):
 * where a later iterator may go on. Valid until the next call on it. */
const char *bg_client_events_last_id(const struct bg_client_events *it);

/* Free the iterator (NULL is a no-op); the client stays open. */
void bg_client_events_close(struct bg_client_events *it);

/* When ev is an ask_user form (contentType 3013 or 3014 and a content):
 * 1 with *text a malloc()ed readable rendering of it for the caller to
 * free(): the prompt of each field or question on its own line, and its
 * choices, if any, each on an indented line "  - choice", every line
 * ended by '\n' and cut at 4000 bytes, control characters shown as '?'
 * (the text comes from Redis: it cannot drive a terminal). Content that
 * is not a form is rendered as its lines. 0 when ev is not a question
 * (*text NULL); -ENOMEM. */
int bg_client_event_question(const struct bg_client_event *ev, char **text);

/* How a waited turn ended. */
enum bg_wait_status {
	BG_WAIT_COMPLETED,    /* the record says COMPLETED (any case) */
	BG_WAIT_FAILED,	      /* FAILED, or the send was rejected */
	BG_WAIT_CANCELLED,    /* CANCELLED */
	BG_WAIT_WAITING_USER, /* ask_user: reply to question_message_id */
	BG_WAIT_TIMEOUT,      /* no end before timeout_ms */
	BG_WAIT_OTHER,	      /* the end marker came but the record stayed
				 non-terminal (record_status says which) */
};

/* The name of a status: "COMPLETED", "FAILED", "CANCELLED",
 * "WAITING_USER", "TIMEOUT", "OTHER" (static). */
const char *bg_wait_status_name(enum bg_wait_status s);

/* What bg_client_send_wait found; free with bg_send_outcome_free. */
struct bg_send_outcome {
	enum bg_wait_status status;
	/* the record's status as stored ("" when there is no record) */
	char record_status[128];
	char message_id[BG_CLIENT_ID_MAX];
	char session_id[BG_CLIENT_ID_MAX];
	char execution_id[BG_CLIENT_ID_MAX];
	struct bg_send_response sent; /* what the send itself answered */
	/* The answer: the content of the message's finalAnswer events, or,
	 * when it had none, of its answerDelta chunks, concatenated whole
	 * (may hold NUL bytes; NUL-terminated); NULL when there was none. */
	char *answer;
	size_t answer_len;
	/* WAITING_USER: the question as bg_client_event_question renders it,
	 * the form's raw content (the event's delta.content), and the message
	 * to reply to (the sent one, or a sub-agent's that asked). NULL / ""
	 * otherwise. */
	char *question;
	char *form;
	char question_message_id[BG_CLIENT_ID_MAX];
	/* the record's error_code and error_message; a rejected send's
	 * routing code and error; a timeout's "timeout" and its words */
	char error_code[BG_CLIENT_CODE_MAX];
	char error[512];
	/* the last execution record read (JSON), or NULL: the message's, or
	 * for WAITING_USER the asking message's */
	char *record;
};

/* Release what bg_client_send_wait allocated in out (not out itself). */
void bg_send_outcome_free(struct bg_send_outcome *out);

/* bg_client_send, then follow the turn (above) for at most timeout_ms
 * (<= 0: 60000) counted from the end of routing: through every event of
 * the session (the many chunks of a streamed answer too) to the end
 * marker of the message, then the record, read again for up to 3 s until
 * its status is terminal (a Python worker writes the end marker first).
 * An ask_user form event of the message or of one of its sub-agents (an
 * event whose parent_message_id is a message of the turn) followed,
 * within 3 s (or by the deadline), by that message's record saying
 * WAITING_USER ends the wait
 * with BG_WAIT_WAITING_USER and the question: reply to it with
 * bg_client_reply_wait (message_id = out->question_message_id). The
 * events are read from the entry that was newest just before the send
 * (from the start for an idempotent duplicate). 0 with *out filled
 * whatever the status (TIMEOUT included); BG_CLIENT_EREJECTED with
 * out->sent and out->error as bg_client_send fills them (status FAILED);
 * or a negative error of bg_client_send or of the reads (out holds what
 * was known). Free out with bg_send_outcome_free in every case. */
int bg_client_send_wait(struct bg_client *c, const struct bg_send_request *req,
			int timeout_ms, struct bg_send_outcome *out);

/* The same for a user reply: bg_client_reply, then the resumed turn. */
int bg_client_reply_wait(struct bg_client *c, const struct bg_send_request *req,
			 int timeout_ms, struct bg_send_outcome *out);

/* Hooks of bg_client_wait_with, for a client that shows progress. */
struct bg_wait_hooks {
	bool reply; /* bg_client_reply instead of bg_client_send */
	/* after the send succeeded, before any event is read (may be NULL) */
	void (*sent)(void *arg, const struct bg_send_response *r);
	/* every event of the session as it is read (may be NULL); a negative
	 * result stops the wait and is returned */
	bg_event_cb event;
	void *arg;
};

/* bg_client_send_wait / bg_client_reply_wait with hooks (h may be NULL). */
int bg_client_wait_with(struct bg_client *c, const struct bg_send_request *req,
			int timeout_ms, const struct bg_wait_hooks *h,
			struct bg_send_outcome *out);

/* ---- queues and failures (docs/client.md "Queues and failures") ------- */

/* The backlog of agent types' control streams as Redis counts it for the
 * configured consumer group, read without writing anything, as JSON for
 * the caller to free():
 *   {"group", "now_ms" (Redis TIME), "agent_types": [{"agent_type",
 *    "stream" (the key), "declared" (a worker the registry knows declares
 *    it), "exists" (the key holds a stream), "length" (XLEN),
 *    "group_exists", "lag" (XINFO GROUPS lag, Redis 7; null when Redis
 *    cannot tell or there is no group), "pending" (delivered, not acked),
 *    "last_delivered_id", "entries_read" (null when unknown),
 *    "oldest_pending_id" and "oldest_pending_age_ms" (now_ms minus the
 *    id's time, as bygated's bygate_oldest_pending_age_seconds; null when
 *    nothing is pending), "consumers": [{"name", "pending", "idle_ms",
 *    "inactive_ms" (Redis 7.2; null before)}]}]}
 * for agent_type alone, or (NULL or "") for every agent type declared by
 * a worker the registry knows or whose stream exists (SCAN), sorted by
 * name. -ENOENT when agent_type is given and neither is true. 0 or a
 * negative error. */
int bg_client_queues(struct bg_client *c, const char *agent_type,
		     char **json_out);

/* Failed executions across sessions, newest first: what `bygate failed`
 * lists. They are found through the index every worker keeps of its
 * executions (WIRE 5.9: the executions ZSET scored by the last update and
 * the history snapshots hash), of every worker the registry knows or
 * whose index is still there after it left the registry (a SCAN of the
 * index keys), at most the newest 10000 per worker: no SCAN of session
 * registries.
 * Records that never reached a worker (an availability rejection) are not
 * in it. */
#define BG_FAILED_DEFAULT_LIMIT 50
#define BG_FAILED_MAX_LIMIT 10000
struct bg_failed_query {
	const char *agent_type; /* NULL or "": every agent type */
	long long since_ms;	/* updated at or after (epoch ms); 0: any */
	int limit;		/* 0: BG_FAILED_DEFAULT_LIMIT */
};

/* Executions whose status is FAILED (a handler error, a timeout with
 * error_code TIMEOUT, a poison entry...), as JSON for the caller to free():
 *   {"executions": [{"message_id", "session_id", "execution_id",
 *    "agent_type", "worker_id", "status", "error_code", "error_type",
 *    "error_message", "finished_at" (or updated_at when unset),
 *    "updated_at"}], "total" (all that matched, before the limit),
 *    "truncated" (a worker's index held more than was examined)}
 * -EINVAL for a limit above BG_FAILED_MAX_LIMIT; 0 or a negative error. */
int bg_client_failed(struct bg_client *c, const struct bg_failed_query *q,
		     char **json_out);

/* Run a FAILED execution again as a new attempt of the same message: in
 * one script that first checks the record is still the one read, the
 * record goes back to QUEUED (timeline step appended, retry_count + 1,
 * error fields cleared and kept under last_error) and the original
 * ASK_AGENT entry (at the record's redis_message_id, else searched on its
 * stream within 60 s of created_at) is written again to its stream, so a
 * worker runs it as a fresh pickup and of two concurrent retries one
 * queues it. session NULL or "": found from the workers' history
 * (-EINVAL when several sessions have the message). JSON for the caller
 * to free(): {"message_id", "session_id", "execution_id", "agent_type",
 * "stream", "original_entry_id", "entry_id" (the new one), "retry_count",
 * "previous_error_code"}. -ENOENT: no such execution, or its entry is no
 * longer on the stream; -EPERM: its status is not FAILED (COMPLETED,
 * CANCELLED, still running or already retried), or it failed as the copy
 * of another message under its idempotency key (duplicate_of); -EAGAIN:
 * the record kept changing. An entry with an idempotency key still held
 * by the message is named the key's entry in the same script. */
int bg_client_retry(struct bg_client *c, const char *session,
		    const char *message_id, char **json_out);

/* The dead-letter stream (docs/operations.md "Dead letters"), newest
 * first, at most limit (1..BG_FAILED_MAX_LIMIT) records, as JSON for the
 * caller to free(): {"stream" (the key), "length" (XLEN), "entries": [{"id"
 * (the dead letter's entry id), then the record's members: "reason",
 * "error_code", "stream", "entry_id", "delivery_count", "entry" (the raw
 * data of the original entry, or null), "execution_id",
 * "target_agent_type"..., or "raw" when the record is not a JSON
 * object}]}. */
int bg_client_dlq_list(struct bg_client *c, int limit, char **json_out);

/* ---- a session's conversation (docs/history.md) ---- */

#define BG_HISTORY_MAX_LIMIT 100000

/* The last `limit` (1..BG_HISTORY_MAX_LIMIT) messages of the session's
 * conversation, oldest first, as JSON for the caller to free():
 * {"session_id", "key", "length" (LLEN), "messages": [{"role" ("user" or
 * "assistant"), "content", "metadata" {"message_id", "execution_id",
 * "trace_id", "agent_type"}, "session_id", "created_at" (ms)}, or
 * {"raw"} for an element that is not a JSON object]}. */
int bg_client_history(struct bg_client *c, const char *session, int limit,
		      char **json_out);

/* One dead letter as an object of the list above. -EINVAL for an id that
 * is not <ms>-<seq>, -ENOENT when there is none. */
int bg_client_dlq_show(struct bg_client *c, const char *id, char **json_out);

/* Write the original entry of dead letter id back (XADD data <entry>) to
 * the stream it was read from, and delete the dead letter, in one script:
 * a second requeue of the same id is -ENOENT. When the entry is an
 * ASK_AGENT whose execution record is FAILED, the same script puts the
 * record back to QUEUED as bg_client_retry does (-EAGAIN when it changed
 * since read); one COMPLETED or CANCELLED is -EPERM (it would be
 * acknowledged unrun). An idempotency key still held by the message names
 * the new entry. -EPERM also when the record keeps no entry data (the
 * entry had no data field) or no stream. JSON: {"id", "stream",
 * "entry_id" (the new entry), "error_code", "execution_requeued" (the
 * execution id put back to QUEUED, or null)}. */
int bg_client_dlq_requeue(struct bg_client *c, const char *id, char **json_out);

/* Delete the dead letters ids[0..n) (XDEL; ids not there are skipped), or
 * every one when n is 0 (XTRIM MAXLEN 0). *deleted: how many went. */
int bg_client_dlq_purge(struct bg_client *c, const char *const *ids, size_t n,
			long long *deleted);

#ifdef __cplusplus
}
#endif

#endif
