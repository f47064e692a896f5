/* supervisor/finish.c - the one finish builder (DESIGN 4): whatever ends an
 * attempt (result, handler error, child death, dead letter, terminal
 * replay) is written as a single MULTI/EXEC whose last command is the XACK,
 * so an entry is pending exactly when its finish was not applied.
 *
 * The transaction is built once into a blob (a command list of
 * common/cmdlist.h: u32 count; per command u32 argc; per argument u32
 * length + bytes; little endian): the blob is what
 * the LMDB journal keeps (written before the MULTI/EXEC leaves the process:
 * the journal commits at the end of the loop turn, hiredis flushes in the
 * next one) and what every retry and every recovery sends, byte for byte.
 * A refused EXEC is retried with back-off; an unknown outcome (no reply) is
 * resolved after reconnect by asking Redis whether the entry is still
 * pending; a finish outside the lease's fencing window is held until the
 * next successful heartbeat, and after a lease lapse each entry is checked
 * to be still ours before its finish is sent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/cmdlist.h"
#include "common/fault.h"
#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/outbox.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/result.h"

/* Commands of one finish transaction, the outbox included. */
#define TXN_MAX_CMDS 4096

/* The transaction is a command list (common/cmdlist.h) whose error is
 * checked once, when it is built. */
#define TXN(x, ...) BG_CMDLIST_ADD((x), __VA_ARGS__)
#define S(s) bg_str_c(s)

bool bg_finish_blob_valid(struct bg_str blob)
{
	uint32_t n;
	return bg_cmdlist_check(blob, &n) == 0 && n > 0;
}

static void on_exec(struct bg_rconn *c, redisReply *r, void *priv);

/* MULTI, the blob's commands, EXEC. The blob was checked by bg_finish. */
static void send_blob(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_str blob = { t->finish_blob.p, t->finish_blob.len };
	struct bg_cmdlist_iter it;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc;
	if (bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			  (const char *const[]){ "MULTI", NULL }) != 0) {
		/* not sent: checked and sent again after the reconnect */
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	int rc = bg_cmdlist_iter_init(&it, blob);
	while (rc == 0 && (rc = bg_cmdlist_next(&it, &argc, argv, lens,
						BG_CMDLIST_MAX_ARGS)) > 0) {
		bg_rconn_cmd(d->wr, NULL, NULL, 0, argc, argv, lens);
		rc = 0;
	}
	if (rc != 0) { /* never a part of a transaction */
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "DISCARD", NULL });
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "finish transaction of entry %s is corrupt in "
			    "memory: not sent, entry left pending",
			    t->entry_id);
		bg_job_move(t, BG_JOB_ABANDONED);
		return;
	}
	bg_job_move(t, BG_JOB_FINISH_SENT);
	bg_rconn_cmdv(d->wr, on_exec, t, 0,
		      (const char *const[]){ "EXEC", NULL });
}

static void emit_txn(void *ctx, int argc, const struct bg_str *argv)
{
	bg_cmdlist_add(ctx, argc, argv);
}

static void add_event(struct bg_daemon *d, struct bg_job *t,
		      struct bg_cmdlist *x, enum bg_event_kind kind,
		      struct bg_str content)
{
	(void)d;
	char uuid[33];
	bg_uuid_hex(uuid, true);
	struct bg_event_ctx ctx;
	bg_job_event_ctx(t, &ctx);
	struct bg_event ev = { .kind = kind,
			       .content = content,
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	struct bg_buf out = { 0 };
	if (bg_event_build(&out, &ctx, &ev) == 0)
		TXN(x, S("XADD"), S(t->data_key), S("*"), S("data"),
		    ((struct bg_str){ out.p, out.len }));
	bg_buf_free(&out);
}

/* Status, content and reply_data as the caller and the record see them. */
struct outcome_view {
	struct bg_str status;
	struct bg_str content;
	struct bg_str reply_data;
	struct bg_str metadata;
	struct bg_str extra_payload; /* raw object, "" = none */
	struct bg_buf scratch; /* owns reply_data when built here */
};

static void view_outcome(const struct bg_job *t, struct outcome_view *v)
{
	memset(v, 0, sizeof(*v));
	if (t->end_kind == BG_END_RESULT) {
		v->status = S(t->status);
		v->content = (struct bg_str){ t->content.p, t->content.len };
		v->reply_data = (struct bg_str){ t->reply_data.p,
						 t->reply_data.len };
		v->metadata = (struct bg_str){ t->result_metadata.p,
					       t->result_metadata.len };
		v->extra_payload = (struct bg_str){ t->extra_payload.p,
						    t->extra_payload.len };
		return;
	}
	v->status = S("FAILED");
	v->content = S("");
	bg_buf_puts(&v->scratch, "{\"error\":");
	const char *why = t->error_message ? t->error_message : "failed";
	bg_json_escape(&v->scratch, why, strlen(why));
	bg_buf_puts(&v->scratch, "}");
	v->reply_data = (struct bg_str){ v->scratch.p, v->scratch.len };
	v->metadata = (struct bg_str){ t->result_metadata.p,
				       t->result_metadata.len };
}

static void add_callback(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, const struct outcome_view *v)
{
	struct bg_cmd *c = &t->cmd;
	char new_id[32];
	bg_id_new(new_id, sizeof(new_id), "msg-");
	struct bg_callback cb = {
		.message_id = S(t->message_id),
		.session_id = S(t->session_id),
		.trace_id = S(t->trace_id),
		.source_agent_type = S(t->source_agent_type),
		.target_agent_type = S(t->agent_type),
		.parent_message_id = S(t->parent_message_id),
		.task_group_id = c->hdr[BG_HDR_TASK_GROUP_ID],
		.user_code = c->hdr[BG_HDR_USER_CODE],
		.user_name = c->hdr[BG_HDR_USER_NAME],
		.metadata = c->hdr[BG_HDR_METADATA],
		.langfuse_parent_observation_id =
			c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID],
		.execution_id = S(t->execution_id),
		.worker_id = S(d->worker_id),
		.new_message_id = S(new_id),
		.status = v->status,
		.content = v->content,
		.reply_data = v->reply_data,
		.result_metadata = v->metadata,
		.extra_payload = v->extra_payload,
	};
	struct bg_buf cmd = { 0 }, key = { 0 };
	if (bg_result_callback(&cmd, &cb) == 0 &&
	    bg_key_build(&key, d->cfg->key_schema, BG_KEY_AGENT_TYPE_CTRL,
			 S(t->source_agent_type), S(""), S("")) == 0)
		TXN(x, S("XADD"), ((struct bg_str){ key.p, key.len }), S("*"),
		    S("data"), ((struct bg_str){ cmd.p, cmd.len }));
	else
		bg_warn("cannot build the callback of %s", t->execution_id);
	bg_buf_free(&cmd);
	bg_buf_free(&key);
}

static void json_str(struct bg_buf *b, const char *s)
{
	bg_json_escape(b, s, strlen(s));
}

/* The record's final state: status, timeline, finished_at, error fields. */
static void add_record(struct bg_daemon *d, struct bg_job *t,
		       struct bg_cmdlist *x, const struct outcome_view *v,
		       struct bg_buf *rec)
{
	(void)d;
	struct bg_record_errors errs = { 0 };
	struct bg_buf e[4] = { { 0 } };
	if (t->end_kind == BG_END_RESULT) {
		if (bg_record_errors_from(&errs, v->metadata, v->reply_data))
			memset(&errs, 0, sizeof(errs));
	} else {
		json_str(&e[0], t->error_message ? t->error_message : "failed");
		json_str(&e[1], t->error_code ? t->error_code : "FAILED");
		json_str(&e[2], t->failed_stage ? t->failed_stage
						: t->end_kind == BG_END_DEADLETTER
							  ? "pickup"
							  : "process_command");
		json_str(&e[3], t->error_type ? t->error_type
					      : t->end_kind == BG_END_DEADLETTER
						? "DeadLettered"
						: "TaskFailed");
		errs.error_message = (struct bg_str){ e[0].p, e[0].len };
		errs.error_code = (struct bg_str){ e[1].p, e[1].len };
		errs.failed_stage = (struct bg_str){ e[2].p, e[2].len };
		errs.error_type = (struct bg_str){ e[3].p, e[3].len };
	}
	struct bg_record_update u = { .status = v->status,
				      .worker_id = S(""),
				      .now_ms = bg_now_ms(),
				      .errors = &errs };
	if (bg_record_update(rec, (struct bg_str){ t->record.p, t->record.len },
			     &u) == 0) {
		char field[64];
		snprintf(field, sizeof(field), "exec:%s", t->execution_id);
		TXN(x, S("HSET"), S(t->reg_key), S(field),
		    ((struct bg_str){ rec->p, rec->len }));
		TXN(x, S("EXPIRE"), S(t->reg_key), S("604800"));
		/* WIRE 5.9: the dashboard's view of this worker. */
		char st[64];
		snprintf(st, sizeof(st), "%.*s", (int)v->status.len,
			 v->status.p);
		bg_stats_update(d, (struct bg_str){ rec->p, rec->len },
				t->execution_id,
				t->prev_status[0] ? t->prev_status : NULL, st,
				true, emit_txn, x);
	} else {
		bg_warn("cannot update the record of %s", t->execution_id);
	}
	for (int i = 0; i < 4; i++)
		bg_buf_free(&e[i]);
}

static void add_deadletter(struct bg_daemon *d, struct bg_job *t,
			   struct bg_cmdlist *x)
{
	struct bg_deadletter dl = {
		.execution_id = S(t->record_exists ? t->execution_id : ""),
		.target_agent_type = S(t->agent_type ? t->agent_type : ""),
		.reason = S(t->error_message ? t->error_message : ""),
		.stream = S(t->stream),
		.entry_id = S(t->entry_id),
		.delivery_count = t->deliveries > 0 ? t->deliveries : 1,
		.error_code = S(t->error_code ? t->error_code : "malformed"),
		.has_data = t->data != NULL,
		.data = { t->data ? t->data : "", t->data_len },
	};
	struct bg_buf out = { 0 };
	if (bg_result_deadletter(&out, &dl) == 0)
		TXN(x, S("XADD"), S(d->deadletter_key), S("*"), S("data"),
		    ((struct bg_str){ out.p, out.len }));
	bg_buf_free(&out);
}

static void build_finish(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, struct bg_buf *rec)
{
	struct outcome_view v;
	view_outcome(t, &v);
	bool runs = t->end_kind == BG_END_RESULT || t->end_kind == BG_END_FAILED;
	/* The handler's writes (callee records and requests, group hash,
	 * form event, kv sets), only for an attempt that returned. */
	if (t->end_kind == BG_END_RESULT)
		bg_outbox_splice(t, x);
	/* "bygate decisions" 16: the caller is called back when this
	 * execution is terminal, not when it suspends on its own callees. */
	if (runs && t->callback_to[0] && !t->parent_cancelled &&
	    bg_status_is_terminal(v.status))
		add_callback(d, t, x, &v);
	bool wrote_data = false;
	/* A cancelled task has no final answer (WIRE 3.6: callback, then
	 * the end marker only). */
	if (t->end_kind == BG_END_RESULT && !t->cancel_requested) {
		struct bg_buf fm = { 0 };
		bool present = false;
		if (bg_result_final_message(v.content, v.reply_data, &fm,
					    &present) == 0 &&
		    present) {
			add_event(d, t, x, BG_EVENT_FINAL_ANSWER,
				  (struct bg_str){ fm.p, fm.len });
			wrote_data = true;
		}
		bg_buf_free(&fm);
	}
	if (runs && bg_result_wants_end_marker(t->has_source_agent, v.status,
					       t->permission_transferred,
					       t->suspended,
					       t->end_marker_emitted)) {
		add_event(d, t, x, BG_EVENT_END_OF_STREAM, S(""));
		wrote_data = true;
	}
	if (wrote_data)
		TXN(x, S("EXPIRE"), S(t->data_key), S("604800"));
	if (t->end_kind == BG_END_DEADLETTER || t->deadletter)
		add_deadletter(d, t, x);
	if (t->record_exists && t->end_kind != BG_END_ACK_ONLY)
		add_record(d, t, x, &v, rec);
	TXN(x, S("XACK"), S(t->stream), S(d->group), S(t->entry_id));
	bg_buf_free(&v.scratch);
}

/* Build the finish blob once and journal it (DESIGN 4: before the
 * MULTI/EXEC is sent). A command that could not be added (no memory, the
 * outbox failed) fails it all: nothing is journaled or sent. */
static int build_blob(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_buf rec = { 0 };
	struct bg_cmdlist x = { .buf = t->finish_blob }; /* reuses its memory */
	bg_cmdlist_reset(&x);
	build_finish(d, t, &x, &rec);
	bg_buf_free(&rec);
	t->finish_blob = x.buf;
	int rc = x.err;
	if (rc == 0 && (x.n == 0 || x.n > TXN_MAX_CMDS))
		rc = -E2BIG;
	if (rc) {
		bg_buf_reset(&t->finish_blob);
		return rc;
	}
	if (bg_fault_hit("finish.before_journal"))
		_exit(BG_FAULT_EXIT);
	if (d->state) {
		(void)bg_lmdb_check(d, bg_state_journal_put(d->state, S(t->stream), S(t->entry_id),
				     (struct bg_str){ t->finish_blob.p,
						      t->finish_blob.len }), "journal put");
		d->journaled_this_turn = true;
	}
	return 0;
}

static void on_owner_check(struct bg_rconn *c, redisReply *r, void *priv);

/* Send the finish unless fencing holds it or ownership must be checked. */
static void send_finish(struct bg_daemon *d, struct bg_job *t)
{
	if (!bg_lease_may_finish(d)) {
		bg_job_move(t, BG_JOB_FINISH_HELD);
		return;
	}
	if (t->verify_owner) {
		bg_job_move(t, BG_JOB_FINISH_SENT);
		if (bg_rconn_cmdv(d->wr, on_owner_check, t, 0,
				  (const char *const[]){
					  "XPENDING", t->stream, d->group,
					  "IDLE", "0", t->entry_id,
					  t->entry_id, "1", d->worker_id,
					  NULL }) != 0)
			bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	send_blob(d, t);
}

static void count_outcome(struct bg_daemon *d, const struct bg_job *t)
{
	switch (t->end_kind) {
	case BG_END_RESULT:
		if (strcmp(t->status, "FAILED") == 0)
			d->n_failed++;
		else
			d->n_completed++;
		break;
	case BG_END_FAILED:
		d->n_failed++;
		break;
	case BG_END_DEADLETTER:
		d->n_deadlettered++;
		break;
	case BG_END_ACK_ONLY:
		d->n_acked_only++;
		break;
	case BG_END_REPLAY:
		d->n_recovered_finishes++;
		break;
	}
}

static const char *hist_status(const struct bg_job *t, char *buf, size_t n)
{
	switch (t->end_kind) {
	case BG_END_RESULT:
		return t->status ? t->status : "COMPLETED";
	case BG_END_FAILED:
		return t->deadletter ? "FAILED+DEADLETTER" : "FAILED";
	case BG_END_DEADLETTER:
		snprintf(buf, n, "DEADLETTER:%s",
			 t->error_code ? t->error_code : "");
		return buf;
	case BG_END_ACK_ONLY:
		return "ACKED";
	case BG_END_REPLAY:
		return "RECOVERED";
	}
	return "?";
}

/* The finish is in Redis: forget it here (journal, in-flight mirror) and
 * keep a line of history. */
static void forget(struct bg_daemon *d, struct bg_job *t)
{
	if (d->state == NULL)
		return;
	char buf[96];
	(void)bg_lmdb_check(d, bg_state_journal_del(d->state, S(t->stream), S(t->entry_id)), "journal del");
	(void)bg_lmdb_check(d, bg_state_exec_del(d->state, S(t->stream), S(t->entry_id)), "exec del");
	struct bg_state_hist h = {
		.stream = S(t->stream),
		.entry_id = S(t->entry_id),
		.execution_id = S(t->execution_id),
		.message_id = S(t->message_id),
		.session_id = S(t->session_id ? t->session_id : ""),
		.agent_type = S(t->agent_type ? t->agent_type : ""),
		.status = S(hist_status(t, buf, sizeof(buf))),
		.finished_ms = bg_now_ms(),
		.duration_ms = t->started_ms ? bg_mono_ms() - t->started_ms : 0,
		.attempt = (uint32_t)t->attempt,
	};
	(void)bg_lmdb_check(d, bg_state_hist_add(d->state, &h), "hist add");
}

static const char *metric_outcome(const struct bg_job *t)
{
	switch (t->end_kind) {
	case BG_END_RESULT:
		if (strcmp(t->status, "COMPLETED") == 0)
			return "completed";
		if (strcmp(t->status, "FAILED") == 0)
			return "failed";
		if (strcmp(t->status, "CANCELLED") == 0)
			return "cancelled";
		return "suspended";
	case BG_END_FAILED:
		return t->deadletter ? "deadlettered" : "failed";
	case BG_END_DEADLETTER:
		return "deadlettered";
	case BG_END_ACK_ONLY:
		return "acked";
	case BG_END_REPLAY:
		break;
	}
	return NULL;
}

static void finish_applied(struct bg_daemon *d, struct bg_job *t)
{
	forget(d, t);
	count_outcome(d, t);
	const char *label = metric_outcome(t);
	if (label) {
		int64_t now = bg_mono_ms();
		bg_metrics_task_done(
			d->metrics,
			t->handler_type ? t->handler_type
					: (t->agent_type ? t->agent_type : ""),
			label, t->started_ms ? now - t->started_ms : 0,
			t->started_ms ? t->started_ms - t->picked_ms : 0);
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	int64_t ms = t->started_ms ? bg_mono_ms() - t->started_ms : 0;
	if (t->end_kind == BG_END_DEADLETTER)
		bg_log_task(BG_LOG_WARN, &ids,
			    "entry %s on %s dead-lettered (%s): %s", t->entry_id,
			    t->stream, t->error_code ? t->error_code : "",
			    t->error_message ? t->error_message : "");
	else if (t->end_kind == BG_END_FAILED)
		bg_log_task(BG_LOG_INFO, &ids, "task FAILED after %lld ms: %s",
			    (long long)ms,
			    t->error_message ? t->error_message : "");
	else if (ms > d->cfg->slow_task_ms)
		bg_log_task(BG_LOG_INFO, &ids, "slow task: %s after %lld ms",
			    t->status ? t->status : "", (long long)ms);
	else
		bg_log_task(BG_LOG_DEBUG, &ids, "task finished: %s in %lld ms",
			    t->status ? t->status : "acked", (long long)ms);
	bg_job_free(d, t);
}

static void on_retry(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_job *t = arg;
	send_finish(t->d, t);
}

static void schedule_retry(struct bg_daemon *d, struct bg_job *t,
			   const char *why)
{
	bg_job_move(t, BG_JOB_FINISH_BACKOFF);
	d->n_finish_retries++;
	int ms = 100 << (t->finish_tries > 6 ? 6 : t->finish_tries);
	if (ms > 5000)
		ms = 5000;
	t->finish_tries++;
	if (t->finish_tries == 1 || t->finish_tries % 20 == 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "finish transaction refused (%s); entry %s stays "
			    "pending, retry %d in %d ms",
			    why, t->entry_id, t->finish_tries, ms);
	}
	if (t->retry_ev == NULL)
		t->retry_ev = evtimer_new(d->base, on_retry, t);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(t->retry_ev, &tv);
}

static void on_exec(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	struct bg_daemon *d = t->d;
	if (r != NULL && bg_fault_hit("finish.exec_reply_lost")) {
		/* The reply is dropped with the connection: outcome unknown. */
		bg_rconn_drop(d->wr, "fault injection: EXEC reply lost");
		r = NULL;
	}
	if (r == NULL) {
		d->n_unknown_outcomes++;
		bg_metrics_unknown_outcome(d->metrics);
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL) {
		schedule_retry(d, t, r->type == REDIS_REPLY_NIL
					     ? "EXEC aborted"
					     : r->str);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_ERROR) {
				struct bg_log_ids ids = bg_job_log_ids(t);
				bg_log_task(BG_LOG_ERROR, &ids,
					    "finish command %zu failed inside "
					    "EXEC: %s",
					    i + 1, r->element[i]->str);
			}
	}
	if (bg_fault_hit("finish.after_exec"))
		_exit(BG_FAULT_EXIT);
	finish_applied(d, t);
}

/* A journaled blob copied by bg_finish_replay: sent only if whole. */
static int replay_blob(const struct bg_job *t)
{
	if (t->finish_blob.len == 0)
		return -ENOMEM; /* the copy failed */
	return bg_finish_blob_valid((struct bg_str){ t->finish_blob.p,
						     t->finish_blob.len })
		       ? 0
		       : -EBADMSG;
}

void bg_finish(struct bg_daemon *d, struct bg_job *t)
{
	t->finish_tries = 0;
	int rc = t->end_kind == BG_END_REPLAY ? replay_blob(t)
					     : build_blob(d, t);
	if (rc != 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "finish transaction could not be built (%s); entry "
			    "%s left pending for recovery",
			    strerror(-rc), t->entry_id);
		bg_job_move(t, BG_JOB_ABANDONED);
		return;
	}
	send_finish(d, t);
}

/* Replay a finish read from the journal (recovery): the entry is still
 * pending, so the transaction was not applied and is sent as it was. */
void bg_finish_replay(struct bg_daemon *d, struct bg_job *t,
		      struct bg_str blob)
{
	bg_buf_reset(&t->finish_blob);
	if (bg_buf_append(&t->finish_blob, blob.p, blob.len) != 0)
		bg_buf_reset(&t->finish_blob); /* refused by bg_finish */
	t->end_kind = BG_END_REPLAY;
	bg_finish(d, t);
}

static void on_owner_check(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	struct bg_daemon *d = t->d;
	if (r == NULL) {
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
		t->verify_owner = false;
		send_finish(d, t);
		return;
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_WARN, &ids,
		    "entry %s on %s is no longer in this worker's pending list "
		    "(claimed by another worker while our lease lapsed): not "
		    "finishing it here",
		    t->entry_id, t->stream);
	d->n_lost_to_peer++;
	if (d->state) {
		(void)bg_lmdb_check(d, bg_state_journal_del(d->state, S(t->stream), S(t->entry_id)), "journal del");
		(void)bg_lmdb_check(d, bg_state_exec_del(d->state, S(t->stream), S(t->entry_id)), "exec del");
	}
	bg_job_free(d, t);
}

void bg_finish_mark_verify(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		t->verify_owner = true;
}

void bg_finish_release_held(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->state == BG_JOB_FINISH_HELD)
			send_finish(d, t);
}

/* After the write connection is back: a finish whose EXEC outcome is
 * unknown is re-sent only if Redis still lists the entry as pending (the
 * transaction is all or nothing, XACK included). */
static void on_pending_check(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	if (r == NULL) {
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
		finish_applied(t->d, t);
		return;
	}
	send_finish(t->d, t); /* still pending: not applied, send it again */
}

void bg_finish_resend_unknown(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next) {
		if (t->state != BG_JOB_FINISH_UNKNOWN)
			continue;
		bg_job_move(t, BG_JOB_FINISH_SENT);
		if (bg_rconn_cmdv(d->wr, on_pending_check, t, 0,
				  (const char *const[]){ "XPENDING", t->stream,
							 d->group, t->entry_id,
							 t->entry_id, "1",
							 NULL }) != 0)
			bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
	}
}
