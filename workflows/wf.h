/* workflows/wf.h - what the workflow agent types (bygate.dag, bygate.group,
 * bygate.fanout; docs/workflows.md) share: their state in session kv (any
 * size, in pieces under the 64 KiB kv value limit), their step events, the
 * sub-calls they make and the callbacks and posted resumes that advance
 * them. Built on the plugin SDK only (include/bygate/handler.h): a
 * workflow is an ordinary plugin run in the pool under the sandbox.
 *
 * How a workflow survives a crash: every run (the ASK, then each RESUME)
 * reads its state, applies one step, and leaves the new state, the
 * sub-calls it starts and the timers it posts in the attempt's outbox, so
 * bygated applies all of them in the attempt's finish transaction or none
 * (a run killed midway is run again from the same state). Runs of one
 * execution never overlap (a RESUME waits for a run in progress:
 * docs/architecture.md, step 5), so a state read is always the last one
 * written. */
#ifndef BG_WORKFLOWS_WF_H
#define BG_WORKFLOWS_WF_H

#include <bygate/handler.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The kv key of part `part` of execution `exec_id`'s workflow state:
 * "bygate.wf/<exec_id>/<part>" into buf. */
void wf_key(char *buf, size_t len, const char *exec_id, const char *part);

/* A JSON value of any size kept under kv key `key`: one kv value when its
 * text fits the kv limit, else pieces under "<key>#<i>". get: 0 with a new
 * reference, -ENOENT, -EIO (unreadable), -errno of the kv call. */
int wf_load(struct bg_ctx *ctx, const char *key, json_t **value);
int wf_save(struct bg_ctx *ctx, const char *key, const json_t *value);

/* One step event on the session's data stream: a state event (contentType
 * 3003) whose text is `step` as compact JSON, with "bygate_workflow": kind
 * and "run_id" added. Steals the reference. */
int wf_step(struct bg_ctx *ctx, const char *kind, const char *run_id,
	    json_t *step);

/* What advanced a resumed workflow (bg_task_body_json, metadata). */
enum wf_resume_kind {
	WF_CALLBACK, /* a sub-call ended: tag names it */
	WF_POSTED,   /* a posted resume (a timer, a group's input) */
	WF_OTHER,    /* anything else: a stray RESUME */
};

struct wf_resume {
	enum wf_resume_kind kind;
	const char *tag;     /* WF_CALLBACK: the call's tag, from metadata */
	const char *status;  /* "COMPLETED", "FAILED", ... ("" when none) */
	json_t *content;     /* body values, borrowed from body */
	json_t *reply_data;  /* null when absent */
	json_t *extra;	     /* extra_payload object or NULL */
	json_t *posted;	     /* WF_POSTED: the posted content */
	json_t *body, *meta; /* owned */
};

/* The metadata key that tags a workflow's sub-call; a callback carries its
 * caller's metadata back (WIRE 6.6), tag included. */
#define WF_TAG_KEY "bygate_workflow_call"

int wf_resume_read(const struct bg_task *task, struct wf_resume *r);
/* The next RESUME of this execution waiting at this worker, taken by this
 * run (bg_ctx_next_resume): 0; -EBADMSG when its body is not an object
 * (taken all the same: nothing to apply; free r with wf_resume_free);
 * -ENOENT when none waits, another -errno when the call failed. */
int wf_resume_take(struct bg_ctx *ctx, struct wf_resume *r);
/* Apply step(arg, r) to this task's RESUME, then to each RESUME waiting
 * behind it that this run takes (wf_resume_take), WF_MAX_STEPS_PER_RUN in
 * all: one run, one save. A RESUME whose body is not an object is
 * skipped. Returns the first negative step result, else 0. */
int wf_each_resume(const struct bg_task *task, struct bg_ctx *ctx,
		   int (*step)(void *arg, const struct wf_resume *r),
		   void *arg);

/* A run's writes ride in its finish transaction, which holds at most
 * 4,096 commands (supervisor/finish_build.c): one run takes at most
 * WF_MAX_STEPS_PER_RUN steps (its own RESUME and those it takes: about 3
 * commands each) and starts at most WF_MAX_CALLS_PER_RUN calls (4 or 5
 * commands each, its timer included). Work left over is done by the next
 * run, which a resume the run posts to itself starts (wf_continue). */
#define WF_MAX_STEPS_PER_RUN 250
#define WF_MAX_CALLS_PER_RUN 250

/* Post this execution a resume (delay 0) that runs it again to go on
 * with work one run could not hold; the run that gets it ignores its
 * content ({"bygate_wf_continue": true}). */
int wf_continue(struct bg_ctx *ctx);
void wf_resume_free(struct wf_resume *r);

/* A finished sub-call's output (its reply_data when that is an object or
 * an array, else its content when not empty, else its reply_data; a new
 * reference) and, when it did not succeed, its error
 * (reply_data.error, else metadata error_message, else the status; NULL
 * when it succeeded; free()). */
json_t *wf_output(const struct wf_resume *r);
char *wf_error(const struct wf_resume *r);
bool wf_succeeded(const struct wf_resume *r);
bool wf_status_terminal(const char *status);

/* Start a sub-call of agent type `agent` waiting for its reply, tagged
 * `tag` (metadata), with `content` (a JSON value; a string is sent as
 * text), extra_payload `extra` (object or NULL) and more metadata (object
 * or NULL). Its message id goes to msg_id (at least 160 bytes). 0, or a
 * negative errno with a one-line reason in err (a refused route: the
 * error reply's text). */
int wf_call(struct bg_ctx *ctx, const char *agent, json_t *content,
	    json_t *extra, json_t *metadata, const char *tag, char *msg_id,
	    size_t msg_id_len, char *err, size_t errlen);

/* The end: status COMPLETED when ok, else FAILED with error_message
 * `error`; reply_data the result object, content its JSON text. Steals
 * the reference. caller_tag (or NULL): the tag of the call that started
 * this workflow (wf_caller_tag of its ASK), put back in the result's
 * metadata: a workflow that ends in a resumed run calls back with that
 * run's header metadata (a callee's), which does not hold it. */
int wf_end(struct bg_ctx *ctx, json_t *result, bool ok, const char *error,
	   const char *caller_tag);

/* The tag of the workflow call that sent this task (its header metadata's
 * WF_TAG_KEY; free()), or NULL: saved at the ASK for wf_end. */
char *wf_caller_tag(const struct bg_task *task);

/* The end of a spec refused before anything ran: FAILED, reply_data
 * {"error": reason}, error_type "WorkflowSpecError". */
int wf_refuse(struct bg_ctx *ctx, const char *reason);

/* The end of a run whose step failed with rc < 0 (out of memory, kv
 * unreadable): FAILED "<what> step failed: <strerror>"; 0 when rc >= 0. */
int wf_step_failed(struct bg_ctx *ctx, const char *what, int rc);

/* Keep the execution open (WAITING_AGENT) after this run. */
int wf_wait(struct bg_ctx *ctx);

/* Milliseconds since the epoch. */
int64_t wf_now_ms(void);

/* The workflow agent types' runs (dag_run.c, group.c, fanout.c). */
int wf_dag_process(const struct bg_task *task, struct bg_ctx *ctx);
int wf_fanout_process(const struct bg_task *task, struct bg_ctx *ctx);
int wf_group_process(const struct bg_task *task, struct bg_ctx *ctx);

#endif
