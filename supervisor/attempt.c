/* supervisor/attempt.c - one run of a job in a child (DESIGN 4-6): its
 * start (workspace, packing, the ring, the deadline), its answers (result,
 * events, handler operations), and every way it stops without a result:
 * retry after back-off, re-run after the loss of a shared child, timeout
 * and child death. The end goes to end.c; stopping a run to kill.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/fault.h"
#include "ipc/record.h"
#include "state/state.h"
#include "supervisor/attempt.h"
#include "supervisor/calls.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/entry_read.h"
#include "supervisor/eventlog.h"
#include "supervisor/events.h"
#include "supervisor/gate.h"
#include "supervisor/kill.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/resume_take.h"
#include "wire/json.h"
#include "wire/record.h"
#include "workspace/workspace.h"

/* The session workspace and this attempt's private directory, prepared by
 * bygated after every id was validated (workspace/workspace.h). A hostile
 * id fails the task, creating nothing. The private directory itself is
 * made lazily, by the task's own process (as the pool user) when its
 * handler asks for its path (child/task.c, bg_child_private_dir_make):
 * here only its parent and the removal of a left-over of the attempt, so
 * that a handler that never asks costs no mkdir, chown and rmdir.
 * The session's state record (its last use, read by the session garbage
 * collection, sessions.c) is written when the session is new to the
 * descriptor cache and then at most once per BG_SESSION_TOUCH_MS, not once
 * per task: a journal write per task saved. */
static int prepare_workspace(struct bg_daemon *d, struct bg_job *t)
{
	char err[512];
	/* Not zeroed (16 KiB): bg_ws_prepare fills every path on success. */
	if (t->run.ws == NULL) {
		if ((t->run.ws = malloc(sizeof(*t->run.ws))) == NULL) {
			bg_end(d, t, BG_END_FAILED, "INTERNAL",
			       "out of memory");
			return -1;
		}
		t->run.ws->private_dir[0] = '\0';
	}
	if (d->ws_cache == NULL) /* on failure: no cache, every task walks */
		(void)bg_ws_cache_new(BG_WS_CACHE_MAX, &d->ws_cache);
	int rc = bg_ws_prepare(
		d->ws_cache, d->cfg->workspace_dir,
		bg_str_c(t->id.handler_type), t->id.cmd.hdr[BG_HDR_USER_CODE],
		bg_str_c(t->id.session_id), bg_str_c(t->id.execution_id),
		(unsigned)t->run.attempt, true, t->run.ws, err, sizeof(err));
	if (rc) {
		free(t->run.ws);
		t->run.ws = NULL;
		/* -EINVAL: a hostile or malformed id; -ELOOP/-ENOTDIR: a link
		 * or file planted in the tree; anything else: the host. */
		t->end.error_type = rc == -EINVAL ? "InvalidId"
						  : "WorkspaceError";
		bg_end(d, t, BG_END_FAILED,
		       rc == -EINVAL ? "INVALID_ID"
		       : rc == -ELOOP || rc == -ENOTDIR
			       ? "WORKSPACE_CONFINEMENT"
			       : "WORKSPACE_ERROR",
		       err);
		return -1;
	}
	int64_t now = bg_now_ms();
	if (d->state && bg_ws_cache_touch(d->ws_cache, d->cfg->workspace_dir,
					  t->run.ws->rel_session, now,
					  BG_SESSION_TOUCH_MS)) {
		struct bg_state_session ss = {
			.agent_type = bg_str_c(t->id.handler_type),
			.user_code = t->id.cmd.hdr[BG_HDR_USER_CODE],
			.session_id = bg_str_c(t->id.session_id),
			.path = bg_str_c(t->run.ws->rel_session),
			.created_ms = now,
			.last_used_ms = now,
			.bytes = -1,
		};
		(void)bg_lmdb_check(d, bg_state_session_put(d->state, &ss),
				    "session put");
	}
	return 0;
}

static int pack_task(struct bg_daemon *d, struct bg_job *t, struct bg_buf *out)
{
	struct bg_str v[BG_TF__COUNT];
	struct bg_cmd *c = &t->id.cmd;
	v[BG_TF_AGENT_TYPE] = bg_str_c(t->id.handler_type);
	v[BG_TF_ACTION] = bg_str_c(bg_action_name(c->action));
	v[BG_TF_EXECUTION_ID] = bg_str_c(t->id.execution_id);
	v[BG_TF_MESSAGE_ID] = bg_str_c(t->id.message_id);
	v[BG_TF_SESSION_ID] = bg_str_c(t->id.session_id);
	v[BG_TF_TRACE_ID] = bg_str_c(t->id.trace_id);
	v[BG_TF_SOURCE_AGENT_TYPE] = bg_str_c(t->id.source_agent_type);
	v[BG_TF_PARENT_MESSAGE_ID] = bg_str_c(t->id.parent_message_id);
	v[BG_TF_TASK_GROUP_ID] = c->hdr[BG_HDR_TASK_GROUP_ID];
	v[BG_TF_USER_CODE] = c->hdr[BG_HDR_USER_CODE];
	v[BG_TF_USER_NAME] = c->hdr[BG_HDR_USER_NAME];
	v[BG_TF_METADATA] = c->hdr[BG_HDR_METADATA];
	v[BG_TF_BODY] = c->body;
	v[BG_TF_RESUMED] = bg_str_c(t->id.is_resumed ? "1" : "0");
	v[BG_TF_WORKSPACE] = bg_str_c(t->run.ws ? t->run.ws->session : "");
	v[BG_TF_PRIVATE_DIR] =
		bg_str_c(t->run.ws ? t->run.ws->private_dir : "");
	v[BG_TF_GROUP_RESULTS] = bg_str_c(t->id.group_results);
	v[BG_TF_TRACE_PARENT_SPAN_ID] = c->hdr[BG_HDR_TRACE_PARENT_SPAN_ID];
	v[BG_TF_LANGFUSE_PARENT_OBSERVATION_ID] =
		c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID];
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%d", t->run.attempt);
	v[BG_TF_ATTEMPT] = bg_str_c(attempt);
	(void)d;
	return bg_rec_pack(out, v, BG_TF__COUNT);
}

/* The in-flight mirror of DESIGN 6 (from dispatch until the finish is
 * applied), with the attempts counted against this entry. */
static void mirror_exec(struct bg_daemon *d, struct bg_job *t)
{
	if (d->state == NULL)
		return;
	struct bg_state_exec e = {
		.execution_id = bg_str_c(t->id.execution_id),
		.message_id = bg_str_c(t->id.message_id),
		.session_id = bg_str_c(t->id.session_id),
		.agent_type = bg_str_c(t->id.agent_type),
		.slot = t->run.slot,
		.pid = t->run.pid,
		.attempt = (uint32_t)t->run.attempt,
		.interrupted = (uint32_t)t->run.failed_attempts,
		.started_ms = bg_now_ms(),
		.first_seen_ms =
			bg_now_ms() - (bg_mono_ms() - t->run.picked_ms),
	};
	(void)bg_lmdb_check(d,
			    bg_state_exec_put(d->state, bg_str_c(t->id.stream),
					      bg_str_c(t->id.entry_id), &e),
			    "exec put");
}

static void on_retry_due(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_job *t = arg;
	bg_job_enqueue(t->d, t); /* placed at the end of the loop turn */
}

/* The attempt is over without a finish: its directory, child and timer
 * are released before it runs again. */
static void attempt_stopped(struct bg_daemon *d, struct bg_job *t)
{
	bg_job_release_private(d, t);
	bg_kill_disarm(t);
	bg_gate_release(d, t); /* the next attempt asks again */
	t->run.slot = -1;
	t->run.timed_out = false;
	t->run.signalled = false;
	t->run.events = t->run.event_bytes = 0; /* the caps are per attempt */
	t->run.events_capped = false;
}

/* Shared re-runs of one attempt before it must run alone: a task next to
 * others that keep getting killed is not re-run forever. */
#define BG_SHARED_RERUNS_MAX 3

/* The attempt was interrupted by the death of a child (or program) it
 * shared with other tasks and did not cause: run it again at once, without
 * counting an attempt, alone in a child when the culprit is unknown
 * (DESIGN 5: re-run one at a time before the crash counts). */
static void rerun_interrupted(struct bg_daemon *d, struct bg_job *t, bool alone,
			      const char *why)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "attempt %d interrupted by the loss of a shared %s (%s); "
		    "re-run%s without counting it",
		    t->run.attempt, alone ? "child or program" : "child", why,
		    alone ? " alone" : "");
	attempt_stopped(d, t);
	t->run.reruns++;
	t->run.isolate = t->run.isolate || alone ||
			 t->run.reruns >= BG_SHARED_RERUNS_MAX;
	t->run.rerun_announce = true;
	if (d->stopping)
		return;
	bg_job_enqueue_front(d, t);
}

/* The delay before attempt n + 1: retry_backoff_ms doubled for each
 * failed attempt after the first, at most retry_backoff_max_ms, then
 * +/-20 % jitter so that tasks failed together do not retry together. */
static int64_t retry_delay_ms(const struct bg_agent_type_conf *tc, int n)
{
	if (tc == NULL || tc->retry_backoff_ms == 0)
		return 0;
	int shift = n - 1 > 20 ? 20 : n - 1;
	int64_t ms = (int64_t)tc->retry_backoff_ms << shift;
	if (ms > tc->retry_backoff_max_ms)
		ms = tc->retry_backoff_max_ms;
	int64_t span = ms / 5;
	if (span > 0)
		ms += (int64_t)(random() % (2 * span + 1)) - span;
	return ms > 0 ? ms : 0;
}

/* The attempt failed (child death, timeout, retryable handler error): run
 * it again after the agent type's back-off while attempts remain. Returns
 * false when they are exhausted (the caller fails the task). */
static bool retry_attempt(struct bg_daemon *d, struct bg_job *t,
			  const char *why)
{
	const struct bg_agent_type_conf *tc =
		bg_config_agent_type(d->cfg, t->id.handler_type);
	int max = tc ? tc->max_attempts : 1;
	t->run.failed_attempts++;
	if (d->state)
		mirror_exec(d, t);
	if (t->run.failed_attempts >= max || d->draining || d->stopping)
		return false;
	int64_t ms = retry_delay_ms(tc, t->run.failed_attempts);
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "attempt %d of %d failed (%s); retrying in %lld ms",
		    t->run.failed_attempts, max, why, (long long)ms);
	d->n_retries++;
	bg_eventlog_retry(d, t, why);
	bg_metrics_retry(d->metrics);
	attempt_stopped(d, t);
	bg_job_move(t, BG_JOB_BACKOFF);
	if (t->retry_ev == NULL)
		t->retry_ev = evtimer_new(d->base, on_retry_due, t);
	struct timeval tv = { (long)(ms / 1000), (long)(ms % 1000) * 1000 };
	evtimer_add(t->retry_ev, &tv);
	return true;
}

static void on_fault_crash(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	_exit(BG_FAULT_EXIT);
}

/* Fault point task.crash_on_content (docs/testing.md): bygated dies (exit
 * 86) BYGATE_FAULT_DELAY_MS (default 0) after handing a child a task whose
 * entry holds the text of BYGATE_FAULT_MARKER: the stand-in for a bug of
 * bygated that one input triggers (a task cannot signal bygated). */
static void fault_crash_on_content(struct bg_daemon *d, const struct bg_job *t)
{
	static const char *marker;
	static bool looked;
	if (!looked) {
		marker = getenv("BYGATE_FAULT_MARKER");
		looked = true;
	}
	if (marker == NULL || marker[0] == '\0' || t->id.data == NULL ||
	    memmem(t->id.data, t->id.data_len, marker, strlen(marker)) ==
		    NULL ||
	    !bg_fault_hit("task.crash_on_content"))
		return;
	const char *delay = getenv("BYGATE_FAULT_DELAY_MS");
	long ms = delay ? strtol(delay, NULL, 10) : 0;
	struct event *ev = ms > 0 ? evtimer_new(d->base, on_fault_crash, NULL)
				  : NULL;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (ev == NULL || evtimer_add(ev, &tv) != 0)
		_exit(BG_FAULT_EXIT);
}

/* t runs in slot now (shared: next to other tasks of its agent type). */
static void started(struct bg_daemon *d, struct bg_job *t, int slot,
		    bool shared)
{
	bg_job_move(t, BG_JOB_RUNNING);
	t->run.slot = slot;
	t->run.shared = shared;
	t->run.run_id++;
	t->run.pid = (int)bg_pool_pid(d->pool, slot);
	t->run.started_ms = bg_mono_ms();
	mirror_exec(d, t);
	bg_eventlog_started(d, t);
	if (t->run.rerun_announce) {
		t->run.rerun_announce = false;
		bg_events_announce_retry(d, t, true);
	} else if (t->run.attempt > 1) {
		bg_events_announce_retry(d, t, false);
	}
	bg_kill_arm_deadline(d, t);
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids, "task started (%s entry %s%s)",
		    bg_action_name(t->id.cmd.action), t->id.entry_id,
		    shared ? ", shared child" : "");
	fault_crash_on_content(d, t);
}

void bg_attempt_start(struct bg_daemon *d, struct bg_job *t, int slot,
		      int limit, int group, struct bg_buf *payload)
{
	t->run.attempt = t->run.failed_attempts + 1;
	bg_entry_release(d, t); /* handed on: no longer the read's */
	bg_outbox_reset(t);
	bg_resume_take_release(d, t, false); /* a new attempt takes anew */
	if (prepare_workspace(d, t) != 0)
		return;
	bg_buf_reset(payload);
	int rc = pack_task(d, t, payload);
	if (rc == 0)
		rc = bg_pool_run(d->pool, slot, t->tag, group, limit,
				 payload->p, payload->len);
	if (rc) {
		bg_end(d, t, BG_END_FAILED,
		       rc == -EMSGSIZE ? "PAYLOAD_TOO_LARGE"
				       : "DISPATCH_FAILED",
		       rc == -EMSGSIZE ? "task larger than max_message_bytes"
				       : "task could not be handed to a child");
		return;
	}
	started(d, t, slot, limit > 1);
}

static void end_timed_out(struct bg_daemon *d, struct bg_job *t,
			  const char *why);

/* Keep the result's raw JSON members (a retried attempt's are replaced). */
static void take_result(struct bg_job *t, const struct bg_str *f)
{
	struct {
		struct bg_buf *b;
		int f;
	} m[] = { { &t->end.content, BG_RF_CONTENT },
		  { &t->end.reply_data, BG_RF_REPLY_DATA },
		  { &t->end.result_metadata, BG_RF_METADATA },
		  { &t->end.extra_payload, BG_RF_EXTRA_PAYLOAD } };
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		bg_buf_reset(m[i].b);
		bg_buf_append(m[i].b, f[m[i].f].p, f[m[i].f].len);
	}
}

static void handle_result(struct bg_daemon *d, struct bg_job *t,
			  const uint8_t *p, size_t len)
{
	struct bg_str f[BG_RF__COUNT];
	if (bg_rec_unpack(p, len, f, BG_RF__COUNT)) {
		bg_end(d, t, BG_END_FAILED, "PROTOCOL",
		       "the child sent a malformed result");
		return;
	}
	if (t->run.cancel_requested) {
		bg_end_cancelled(d, t); /* the handler saw the cancel flag */
		return;
	}
	if (t->run.timed_out) { /* it answered the timeout's cancel line */
		end_timed_out(d, t,
			      "the handler stopped after its cancel "
			      "line");
		return;
	}
	if (t->run.events_capped) {
		bg_end(d, t, BG_END_FAILED, "EVENT_LIMIT",
		       "the task exceeded max_events_per_task or "
		       "max_event_bytes_per_task");
		return;
	}
	take_result(t, f);
	if (f[BG_RF_ERROR].len) {
		char *why = bg_str_dup(f[BG_RF_ERROR]);
		struct bg_str rv;
		bool retryable = bg_json_obj_get(f[BG_RF_METADATA], "retryable",
						 &rv) == 0 &&
				 bg_str_eq(rv, "true");
		if (bg_str_eq(f[BG_RF_INTERRUPTED], "1") && !t->run.isolate) {
			rerun_interrupted(d, t, true, why ? why : "failed");
		} else if (!(retryable &&
			     retry_attempt(d, t, why ? why : "failed"))) {
			/* The child's own explanation of a sandbox limit
			 * (child/taskproc.c): kept as the record's code. */
			struct bg_str ec;
			bool limit = bg_json_obj_get(f[BG_RF_METADATA],
						     "error_code", &ec) == 0 &&
				     bg_str_eq(ec, "\"RESOURCE_LIMIT\"");
			if (limit)
				t->end.error_type = "ResourceLimitExceeded";
			bg_end(d, t, BG_END_FAILED,
			       limit ? "RESOURCE_LIMIT" : NULL, why);
		}
		free(why);
		return;
	}
	struct bg_str st = bg_status_normalize(f[BG_RF_STATUS]);
	t->end.status = bg_str_dup(st);
	bg_end(d, t, BG_END_RESULT, NULL, NULL);
}

void bg_attempt_on_message(void *arg, int slot, uint16_t kind, uint64_t tag,
			   const uint8_t *payload, size_t len)
{
	(void)slot;
	struct bg_daemon *d = arg;
	struct bg_job *t = bg_job_find(d, tag);
	if (t == NULL || !bg_job_in_child(t))
		return;
	if (kind == BG_REC_EVENT)
		bg_events_take(d, t, payload, len);
	else if (kind == BG_REC_CALL)
		bg_calls_take(d, t, payload, len);
	else
		handle_result(d, t, payload, len);
}

/* FAILED/TIMEOUT, or a retry while attempts remain. */
static void end_timed_out(struct bg_daemon *d, struct bg_job *t,
			  const char *why)
{
	const struct bg_agent_type_conf *tc =
		bg_config_agent_type(d->cfg, t->id.handler_type);
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "task timed out after %d ms (timeout_ms of agent type %s); %s",
		 tc ? tc->timeout_ms : 0, t->id.handler_type, why);
	if (retry_attempt(d, t, "timeout"))
		return;
	t->end.error_type = "TaskTimeout";
	bg_end(d, t, BG_END_FAILED, "TIMEOUT", msg);
}

/* The child of task t died: cancelled, timed out, retried or failed. */
static void child_lost(struct bg_daemon *d, struct bg_job *t, const char *why)
{
	if (t->run.cancel_requested) {
		bg_end_cancelled(d, t);
		return;
	}
	if (t->run.timed_out) {
		end_timed_out(d, t, why);
		return;
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_WARN, &ids, "attempt %d failed: %s",
		    t->run.failed_attempts + 1, why);
	if (retry_attempt(d, t, "child died"))
		return;
	t->end.error_type = "ChildProcessDied";
	if (t->run.failed_attempts > 1) {
		/* It killed its child on every attempt: a poison task. */
		char msg[600];
		snprintf(msg, sizeof(msg),
			 "the task's child process died in each of its %d "
			 "attempts (last: %s)",
			 t->run.failed_attempts, why);
		t->end.deadletter = true;
		bg_end(d, t, BG_END_FAILED, "CHILD_DIED", msg);
		return;
	}
	bg_end(d, t, BG_END_FAILED, "CHILD_DIED", why);
}

static struct bg_job *running_task(struct bg_daemon *d, uint64_t tag)
{
	struct bg_job *t = bg_job_find(d, tag);
	return t && bg_job_in_child(t) ? t : NULL;
}

/* A task whose own timeout or cancel signalled its child (a cancel line
 * still unanswered does not make it the cause of a crash). */
static bool caused_kill(const struct bg_job *t)
{
	return t->run.signalled;
}

void bg_attempt_on_child_lost(void *arg, int slot, const uint64_t *tags, int n,
			      const char *why)
{
	(void)slot;
	struct bg_daemon *d = arg;
	if (d->stopping)
		return; /* we killed it to stop: the entries stay pending for
			   the next bygated (or a peer) to recover */
	/* Several tasks shared the child: the ones that caused the kill end
	 * as usual; the others did not fail and run again uncounted, each
	 * alone when nobody is known to have caused it (a crash). */
	bool culprit = false;
	for (int i = 0; i < n; i++) {
		struct bg_job *t = running_task(d, tags[i]);
		culprit = culprit || (t && caused_kill(t));
	}
	for (int i = 0; i < n; i++) {
		struct bg_job *t = running_task(d, tags[i]);
		if (t == NULL)
			continue;
		/* A timed-out task ends TIMEOUT whatever happens next. */
		if (n == 1 || caused_kill(t) || t->run.timed_out ||
		    t->run.cancel_requested || (t->run.isolate && !culprit))
			child_lost(d, t, why);
		else
			rerun_interrupted(d, t, !culprit, why);
	}
}
