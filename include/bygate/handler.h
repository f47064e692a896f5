/* bygate/handler.h - the bygate plugin SDK: everything a native agent
 * handler (a shared object loaded by bygate-child) needs, and its reference
 * manual. A plugin includes only this header and needs no bygate library:
 * the bg_* functions below are provided by the bygate-child process.
 *
 * @section intro Writing a handler
 *
 * A plugin is a shared object (`cc -shared -fPIC -I include -o my.so my.c`)
 * that exports one constant, `bg_handler`:
 *
 *	#include <bygate/handler.h>
 *
 *	static int my_process(void *state, const struct bg_task *task,
 *			      struct bg_ctx *ctx)
 *	{
 *		bg_ctx_chunk(ctx, "thinking...");
 *		return bg_ctx_result(ctx, NULL, "done", NULL, NULL);
 *	}
 *
 *	BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
 *		.abi_version = BG_HANDLER_ABI_VERSION,
 *		.name = "my-handler",
 *		.process = my_process,
 *	};
 *
 * Every bygate-child process loads the plugins of all configured agent
 * types once, calls init() once per agent type, then runs tasks one at a
 * time, calling process() for each, and shutdown() once per agent type
 * when it exits. A child serves many tasks: a plugin may keep warm state
 * (connections, caches) in the state pointer that init() returns.
 *
 * @section rules Rules every handler must follow
 *
 *  - Call the bg_task_* and bg_ctx_* functions only from the thread that
 *    runs process(), and only while process() runs; the task and context
 *    pointers are invalid once it returns. A plugin may start its own
 *    threads, but those must not call into bygate.
 *  - Streamed events (chunk, state, artifact, sub_step) leave the process
 *    as soon as the call returns; the result is sent when process()
 *    returns.
 *  - Every text argument is UTF-8. Every *_json argument must be valid
 *    JSON of the documented type; bygate-child validates it and answers
 *    -EINVAL otherwise (integers beyond 64 bits are rejected too). Nothing
 *    is ever truncated: an event or result larger than the configured
 *    `max_message_bytes` (default 16 MiB) fails with -EMSGSIZE.
 *  - Open files with O_CLOEXEC (or close them), so that programs you start
 *    inherit nothing of bygate's.
 *
 * @section caveats Caveats
 *
 *  - A crash (signal, abort, exit) of the handler kills the child process
 *    that runs it. The task's attempt ends: by default the execution is
 *    finished FAILED; agent types configured with max_attempts > 1 re-run
 *    it in a fresh child, after a state event "RETRY <n>". Chunks already
 *    streamed stay published, so a retried task may repeat them.
 *  - A task that overruns its timeout, or is cancelled and does not return
 *    within the grace period, is stopped with SIGTERM and then SIGKILL.
 *  - Children may be sandboxed by the supervisor and are recycled after a
 *    number of tasks; never rely on a child living long.
 */
#ifndef BYGATE_HANDLER_H
#define BYGATE_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Version of the plugin ABI described here. A plugin whose
 * bg_handler.abi_version differs is refused at load time. */
#define BG_HANDLER_ABI_VERSION 1u

/** Put in front of the bg_handler definition: keeps the symbol visible
 * even when the plugin is built with -fvisibility=hidden. (In C++ the
 * declaration below already carries it; repeating it there warns.) */
#define BG_HANDLER_VISIBLE __attribute__((visibility("default")))
#ifdef __cplusplus
#define BG_HANDLER_EXPORT
#else
#define BG_HANDLER_EXPORT BG_HANDLER_VISIBLE
#endif

struct bg_task; /* the task being run (read-only, opaque) */
struct bg_ctx;	/* the running task's context: events and result */

/** The handler a plugin exports as `const struct bg_handler bg_handler`. */
struct bg_handler {
	/** Must be BG_HANDLER_ABI_VERSION. */
	uint32_t abi_version;
	/** Human-readable name, for logs. May be NULL. */
	const char *name;
	/** Optional (may be NULL). Called once per agent type served by this
	 * plugin, in every child, before any task. @p agent_type is the
	 * configured agent type name, @p options_json the agent type's
	 * `options` group as a JSON object text ("{}" when none); both are
	 * valid only during the call. Store any per-agent-type state in
	 * *state (initially NULL); it is passed to process() and shutdown().
	 * Return 0, or nonzero to refuse: the child then reports the agent
	 * type, the plugin path and the code to bygated (which logs it) and
	 * exits without serving any task. */
	int (*init)(const char *agent_type, const char *options_json,
		    void **state);
	/** Required. Run one task. @p state is what init() stored. Stream
	 * events with bg_ctx_chunk() and friends, set the outcome with
	 * bg_ctx_result(), bg_ctx_result_json() or bg_ctx_fail(), and return
	 * 0. Returning nonzero without having set a result finishes the task
	 * FAILED with the error "handler returned <rc>"; returning 0 without
	 * a result finishes it COMPLETED with no content. */
	int (*process)(void *state, const struct bg_task *task,
		       struct bg_ctx *ctx);
	/** Optional (may be NULL). Called once per agent type whose init()
	 * succeeded, when the child exits normally (not after a crash). */
	void (*shutdown)(void *state);
};

/* The plugin's definition must match this declaration (in C++ it also
 * gives the const object the external, C linkage bygate-child looks up). */
BG_HANDLER_VISIBLE extern const struct bg_handler bg_handler;

/* ---- the task --------------------------------------------------------- */

/** Text attributes of a task (by-framework message header and execution). */
enum bg_task_attr {
	BG_TASK_AGENT_TYPE,   /* agent type this task is for */
	BG_TASK_ACTION,	      /* "ASK_AGENT" or "RESUME" */
	BG_TASK_EXECUTION_ID, /* "exec-..." */
	BG_TASK_MESSAGE_ID,   /* the request's message id */
	BG_TASK_SESSION_ID,
	BG_TASK_TRACE_ID,
	BG_TASK_SOURCE_AGENT_TYPE, /* caller agent type; "" for a root task */
	BG_TASK_PARENT_MESSAGE_ID, /* "" for a root task */
	BG_TASK_TASK_GROUP_ID,	   /* scatter-gather group, usually "" */
	BG_TASK_USER_CODE,
	BG_TASK_USER_NAME,
	BG_TASK_WORKSPACE,	      /* the session's workspace directory: kept
				      across the session's tasks on this
				      host, "" if none */
	BG_TASK_PRIVATE_DIR,	      /* this task's private directory, removed
				      after the task; "" if none */
	BG_TASK_TRACE_PARENT_SPAN_ID, /* the command header's, often "" */
	BG_TASK_LANGFUSE_PARENT_OBSERVATION_ID, /* the command header's */
};

/** Value of attribute @p attr: a NUL-terminated string, "" when the
 * attribute is empty, NULL only for an unknown @p attr. The ids never hold
 * U+0000 (bygated refuses such a command: dead letter `invalid_id`);
 * BG_TASK_USER_NAME may: its whole length is bg_task_get_len(). */
const char *bg_task_get(const struct bg_task *task, enum bg_task_attr attr);

/** Length in bytes of bg_task_get(@p task, @p attr), every byte counted,
 * U+0000 included; 0 for an unknown @p attr. */
size_t bg_task_get_len(const struct bg_task *task, enum bg_task_attr attr);

/** The request content (body.content): its text when it is a JSON string,
 * otherwise its compact JSON text (a list of messages, an object); "" when
 * absent or null. Never NULL, always NUL-terminated. Text may contain
 * U+0000 (JSON "\u0000"), which C string functions take for its end:
 * bg_task_content_len() is its whole length. */
const char *bg_task_content(const struct bg_task *task);

/** Length in bytes of bg_task_content(), every byte counted, U+0000
 * included: the content is the bytes [0, len) of bg_task_content(). */
size_t bg_task_content_len(const struct bg_task *task);

/** The whole command body as JSON object text (`content`,
 * `wait_for_reply`, `extra_payload` for ASK_AGENT; `content`, `status`,
 * `reply_data` for RESUME). Never NULL. */
const char *bg_task_body_json(const struct bg_task *task);

/** The message header's `metadata` as JSON object text ("{}" when none). */
const char *bg_task_metadata_json(const struct bg_task *task);

/** 1 when the task resumes an earlier execution (a RESUME: a user's reply
 * or a sub-agent's callback), 0 for a fresh request. */
int bg_task_is_resumed(const struct bg_task *task);

/** Attempt number, 1 for the first run; greater after a crash retry. */
int bg_task_attempt(const struct bg_task *task);

/* ---- the context: streamed events ---------------------------------------
 * Every emit function returns 0, or a negative errno: -EINVAL for a NULL
 * text or invalid argument, -EMSGSIZE when the event would exceed
 * max_message_bytes, -ENOMEM. The event is published on the session's data
 * stream right away, in call order. */

/** Stream a piece of the answer: an `answerDelta` event (for a sub-agent,
 * i.e. a task called by another agent, bygate turns it into
 * `reasoningLogDelta`), contentType "1002", role "assistant". */
int bg_ctx_chunk(struct bg_ctx *ctx, const char *text);

/** bg_ctx_chunk() with overrides; NULL keeps the default.
 * @p event_type: one of answerDelta, reasoningLogDelta, reasoningLogStart,
 *   reasoningLogEnd, finalAnswer, appStreamResponse, taskCreate,
 *   stepComplete, taskStop (else -EINVAL). Emitting appStreamResponse ends
 *   the client's turn; bygate then does not emit its own.
 * @p content_type: a contentType code of 1 to 8 digits, e.g. "2001".
 * @p metadata_json: a JSON object, the event's `metadata`. */
int bg_ctx_chunk_ex(struct bg_ctx *ctx, const char *text,
		    const char *event_type, const char *content_type,
		    const char *metadata_json);

/** A state change (`reasoningLogDelta`, contentType "3003"), e.g.
 * "A_CALLING_B". */
int bg_ctx_state(struct bg_ctx *ctx, const char *text);

/** A produced file (`reasoningLogDelta`, contentType "3010", content
 * `[{"fileUrl": url}]`). */
int bg_ctx_artifact(struct bg_ctx *ctx, const char *url);

/** A sub-step title (`reasoningLogDelta`, contentType "1002"), published
 * under a fresh message id whose parent is the task's message id. */
int bg_ctx_sub_step(struct bg_ctx *ctx, const char *title);

/* ---- the context: the result ---------------------------------------------
 * A task has one result; the first successful call of bg_ctx_result,
 * bg_ctx_result_json or bg_ctx_fail sets it and later calls return
 * -EALREADY. The result is validated and size-checked when set and sent
 * when process() returns. */

/** Set the result.
 * @p status: NULL = "COMPLETED". Known states (COMPLETED, FAILED,
 *   CANCELLED, WAITING_USER, ...) are matched case-insensitively; any other
 *   string is stored as is and leaves the execution open (not terminal).
 *   At most 128 bytes, no control characters (else -EINVAL).
 * @p content_text: the answer text, NULL = no content.
 * @p reply_data_json: any JSON value for the caller, NULL = null.
 * @p metadata_json: a JSON object, NULL = {}; the keys error_type,
 *   error_message, error_code, failed_stage and retryable are copied to
 *   the execution record.
 * 0, -EINVAL, -EMSGSIZE, -EALREADY, -ENOMEM. */
int bg_ctx_result(struct bg_ctx *ctx, const char *status,
		  const char *content_text, const char *reply_data_json,
		  const char *metadata_json);

/** bg_ctx_result() with the content as raw JSON: a JSON string or an array
 * of objects (e.g. BaiYing messages `[{"role": ..., "content": ...}]`);
 * NULL = no content. */
int bg_ctx_result_json(struct bg_ctx *ctx, const char *status,
		       const char *content_json, const char *reply_data_json,
		       const char *metadata_json);

/** The extra_payload of the result (WIRE 6.5): a JSON object the caller
 * receives as body.extra_payload of its callback (call_agent with
 * wait_for_reply) and in the group results of a dispatch_group. Call it
 * before the result is set. 0, -EINVAL (not a JSON object), -EALREADY,
 * -ENOMEM. */
int bg_ctx_extra_payload(struct bg_ctx *ctx, const char *object_json);

/** Fail the task: status FAILED, reply_data {"error": message}, metadata
 * {"error_type": "HandlerError", "error_message": message,
 * "failed_stage": "process_command", "retryable": false}. NULL message = "handler failed".
 * 0, -EALREADY, -EINVAL, -EMSGSIZE, -ENOMEM. */
int bg_ctx_fail(struct bg_ctx *ctx, const char *message);

/* ---- the context: other --------------------------------------------------*/

/** 1 once the task has been cancelled (by-framework cancel_task): stop
 * soon, e.g. with bg_ctx_result(ctx, "CANCELLED", ...), else 0. Cheap
 * enough to call in a loop. A handler that ignores it is terminated after
 * the cancel grace period (at once for a force cancel). */
int bg_ctx_cancelled(struct bg_ctx *ctx);

/** The task's workspace directory (created by bygate, per session and
 * agent type), "" when no workspace is configured. Never NULL. */
const char *bg_ctx_workspace(struct bg_ctx *ctx);

/** This task's private directory (removed after the attempt), "" if none.
 * Made, empty, on the first ask for its path (here or bg_task_get). */
const char *bg_ctx_private_dir(struct bg_ctx *ctx);

/* ---- the context: agents calling agents, the user, session state ---------
 * These operations go through bygated. Their writes (the callee's request
 * and execution record, the group hash, the ask_user form event, kv sets)
 * are applied when the attempt finishes, in the same transaction as its
 * result (the outbox); a retried attempt never sends them twice. Each
 * returns 0 and a JSON object the caller releases with free() in *reply,
 * or a negative errno (-EINVAL bad arguments, -EMSGSIZE too large,
 * -EPIPE bygated went away). Error results come back as a reply object
 * with "error" and "error_code" (e.g. a FAIL_FAST route with no online
 * worker: {"status":"FAILED","error_code":"AGENT_TYPE_UNAVAILABLE",...}). */

/** Call another agent type (WIRE 6.6). wait_for_reply != 0 suspends this
 * execution after the handler returns (status WAITING_AGENT unless the
 * handler sets another): the callee's completion resumes it with a RESUME
 * whose content/status/reply_data are the callee's result. 0 hands this
 * session's stream over to the callee. @p options_json may be NULL or an
 * object with "extra_payload" and "metadata" (objects) and the route
 * (WIRE 7): "route_policy" (a string: FAIL_FAST, the default, SEND_ANYWAY,
 * WAKE_AND_WAIT, WAKE_AND_QUEUE or QUEUE_ONLY), "timeout_ms" (an integer:
 * how long WAKE_AND_WAIT waits for a worker, blocking this call; absent or
 * 0 = 30000, negative = one check, at most a day), "region" (a string of
 * at most 159 bytes) and "priority" (an integer), both passed on in the
 * WakeupRequest and PendingDelivery, and "idempotency_key" (a string, put
 * in the metadata: of the calls carrying one key to one agent type within
 * worker.idempotency_ttl_s, only the first runs, docs/client.md
 * "Idempotency keys"; a copy gets no callback). *reply: WIRE 6.6's
 * {"status":"QUEUED","message_id",...}, with "route_status":"QUEUE_PENDING"
 * when WAKE_AND_QUEUE or QUEUE_ONLY queued it; a refused route replies
 * "status":"FAILED" with error_code AGENT_TYPE_UNAVAILABLE,
 * AGENT_CIRCUIT_OPEN or TENANT_QUOTA_EXCEEDED. */
int bg_ctx_call_agent(struct bg_ctx *ctx, const char *target_agent_type,
		      const char *content, int wait_for_reply,
		      const char *options_json, char **reply);

/** Fan out (WIRE 6.7): @p tasks_json is an array of {"target_agent_type",
 * "content", "extra_payload"?, "metadata"?}. With wait_for_reply this
 * execution is resumed once, after the last child finished, and
 * bg_task_group_results() then holds every child's result. */
int bg_ctx_dispatch_group(struct bg_ctx *ctx, const char *tasks_json,
			  int wait_for_reply, char **reply);

/** Ask the user (WIRE 6.8): publishes the form event and suspends this
 * execution (WAITING_USER); the user's reply arrives as a RESUME whose
 * content is the answer. @p prompt is text, or a JSON object with a
 * "questions" key (sent verbatim, contentType 3014). */
int bg_ctx_ask_user(struct bg_ctx *ctx, const char *prompt, char **reply);

/** Session state kept in Redis (seen by every worker and every resume of
 * the session, 7 days): get returns 0 with *value_json = the stored JSON
 * value (free()) or -ENOENT; set stores a JSON value (at most 64 KiB per
 * value) when the attempt finishes; a get sees this attempt's own sets. */
int bg_ctx_kv_get(struct bg_ctx *ctx, const char *key, char **value_json);

/** The session's conversation (docs/history.md): the last @p limit
 * (1..BG_HISTORY_READ_MAX) messages, oldest first, as a JSON array
 * (free()) of {"role" ("user" or "assistant"), "content", "metadata",
 * "session_id", "created_at"}: the turns finished before this task (this
 * task's own turn is written when it finishes). An empty array when the
 * session has none or history.backend is "off". 0, -EINVAL, -EIO (Redis
 * unavailable), -ENOMEM. */
#define BG_HISTORY_READ_MAX 1000
int bg_ctx_history(struct bg_ctx *ctx, int limit, char **messages_json);
int bg_ctx_kv_set(struct bg_ctx *ctx, const char *key, const char *value_json);

/** Take the next RESUME of this task's execution waiting at this worker
 * for this run to end (several sub-calls ended at once: each callback
 * would otherwise resume the execution in a run of its own, one after the
 * other). 0 and *resume_json (free()) = {"body": the RESUME's body,
 * "metadata": its header metadata, "source_agent_type",
 * "parent_message_id", "entry_id"}; -ENOENT when none waits. A RESUME
 * taken is this run's to handle: its entry is acknowledged in this
 * attempt's finish, with its result; if the attempt does not finish (a
 * crash, a retry) it waits again and is run on its own later. Group joins
 * (dispatch_group) are never taken. Plugin SDK only. */
int bg_ctx_next_resume(struct bg_ctx *ctx, char **resume_json);

/** When this RESUME joined a dispatch_group: the JSON object {child
 * message id: {"status","content","reply_data","metadata",
 * "extra_payload"}} of every child; "" otherwise. Never NULL. */
const char *bg_task_group_results(const struct bg_task *task);

/** Post a RESUME to an execution of this task's session, @p delay_ms
 * (0 .. 604800000, 7 days) from now: @p message_id NULL or "" = this
 * execution itself (a timer or wake-up: it then suspends, status
 * WAITING_AGENT unless the handler sets another), else the message id of
 * another execution of the session (refused, error_code NOT_FOUND, when
 * the session has no record of it). @p content_json is the RESUME's
 * content: JSON text of a non-blank string, a non-empty array or an
 * object. Written through the outbox: the RESUME is sent (delay 0) or
 * stored until due when this attempt finishes, so a retried attempt never
 * posts twice; a due one is sent by whichever bygated serving the
 * target's agent type polls first (worker.timer_poll_ms), exactly once,
 * even when the one that stored it died. The receiving handler sees a
 * RESUME (source_agent_type "", parent_message_id = the poster's message
 * id) whose body.extra_payload.bygate_post is {"from_message_id",
 * "due_ms", "post_id"}: that tells it from a callback. A post to
 * another execution that has ended is refused (ALREADY_FINISHED); a
 * delayed post whose target has ended by the time it is due is dropped.
 * *reply: {"status":"POSTED","due_ms":<epoch ms>,"message_id","post_id"}
 * or an error object (INVALID_ARGUMENT, NOT_FOUND, ALREADY_FINISHED). */
int bg_ctx_resume_later(struct bg_ctx *ctx, const char *message_id,
			const char *content_json, int64_t delay_ms,
			char **reply);

/** Cancel an execution of this task's session (typically one this
 * handler started with bg_ctx_call_agent) and its sub-tree, as a client's
 * cancel_task (WIRE 6.10), at once (not through the outbox): running ones
 * become CANCELLING and get a CANCEL_TASK on their worker's stream,
 * @p force != 0 = cancel_mode "force" (their process is killed at once),
 * else "graceful"; queued or suspended ones are cancelled when next
 * picked up; finished ones only get cancel_requested. A cancelled callee
 * still calls its caller back (status CANCELLED). @p reason may be NULL.
 * *reply: {"status":"CANCEL_REQUESTED","cancelled_count":N,
 * "already_finished_count":M}, {"status":"ALREADY_FINISHED",...} when
 * nothing was left to cancel, or an error object (error_code NOT_FOUND,
 * or INVALID_ARGUMENT for this execution's own message id). */
int bg_ctx_cancel_call(struct bg_ctx *ctx, const char *message_id, int force,
		       const char *reason, char **reply);

/** Which of @p agent_types_json (a JSON array of at most 1000 agent type
 * names) no online worker serves now, by the check a FAIL_FAST
 * bg_ctx_call_agent makes (members set, online leases); the types this
 * bygated serves count as served. A live read. *reply:
 * {"unserved": [names...]} in the order given, or an error object. */
int bg_ctx_agent_types_served(struct bg_ctx *ctx, const char *agent_types_json,
			      char **reply);

/* ---- options helpers, for init() ----------------------------------------*/

/** Read integer member @p key of the JSON object @p options_json.
 * 0 and *out set; -ENOENT when absent; -EINVAL when not an integer or
 * @p options_json is not a JSON object. */
int bg_options_get_int(const char *options_json, const char *key,
		       long long *out);

/** Read string member @p key of @p options_json into *out, a copy the
 * caller releases with free(). 0; -ENOENT; -EINVAL when not a string;
 * -ENOMEM. */
int bg_options_get_string(const char *options_json, const char *key,
			  char **out);

/* ---- workflows (issue 13, docs/workflows.md) --------------------------*/

/** Start a workflow as a sub-call and wait for its result: call_agent
 * (wait_for_reply) to the agent type "bygate.<kind>", @p kind being "dag",
 * "group" or "fanout", with @p spec_json, a JSON object (the spec of
 * docs/workflows.md; duplicated keys refused), as the content - its
 * compact JSON text, since a call's content is text (the workflow agent
 * types read bg_task_content(), the same text either way). @p options_json
 * may be NULL or an object: "agent_type" (a string) names another agent
 * type to call; the other members are call_agent's options
 * ("extra_payload", "metadata", "route_policy", ...). *reply is
 * call_agent's reply (free()); like call_agent, this execution then waits
 * (WAITING_AGENT) and the workflow's end resumes it: the RESUME's
 * body.reply_data is the result object (bg_task_body_json()), its content
 * the same as JSON text; a refused spec resumes it FAILED with reply_data
 * {"error": reason}. 0, -EINVAL (an unknown kind, a spec that is not a
 * JSON object, bad options), or call_agent's errors. */
int bg_ctx_call_workflow(struct bg_ctx *ctx, const char *kind,
			 const char *spec_json, const char *options_json,
			 char **reply);

#ifdef __cplusplus
}
#endif

#endif
