/* supervisor/finish_build.c - what a finish transaction holds, built once
 * into the job's blob and journaled in LMDB before it is sent (finish.c):
 * in order, the attempt's outbox, the callback RESUME to a waiting caller
 * (WIRE 6.6), finalAnswer and appStreamResponse (WIRE 3.6), EXPIRE of the
 * data stream, the dead letter, the final record with its error fields and
 * the dashboard counters, EXPIRE of the registry, and XACK last (the
 * dashboard keys' EXPIREs are added when it is sent: finish.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cmdlist.h"
#include "common/fault.h"
#include "state/state.h"
#include "supervisor/conversation.h"
#include "supervisor/daemon.h"
#include "supervisor/finish_build.h"
#include "supervisor/log.h"
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
		TXN(x, S("XADD"), S(t->id.data_key), S("*"), S("data"),
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
	struct bg_buf scratch;	     /* owns reply_data when built here */
};

static void view_outcome(const struct bg_job *t, struct outcome_view *v)
{
	memset(v, 0, sizeof(*v));
	if (t->end.end_kind == BG_END_RESULT) {
		v->status = S(t->end.status);
		v->content =
			(struct bg_str){ t->end.content.p, t->end.content.len };
		v->reply_data = (struct bg_str){ t->end.reply_data.p,
						 t->end.reply_data.len };
		v->metadata = (struct bg_str){ t->end.result_metadata.p,
					       t->end.result_metadata.len };
		v->extra_payload = (struct bg_str){ t->end.extra_payload.p,
						    t->end.extra_payload.len };
		return;
	}
	v->status = S("FAILED");
	v->content = S("");
	bg_buf_puts(&v->scratch, "{\"error\":");
	const char *why = t->end.error_message ? t->end.error_message
					       : "failed";
	bg_json_escape(&v->scratch, why, strlen(why));
	bg_buf_puts(&v->scratch, "}");
	v->reply_data = (struct bg_str){ v->scratch.p, v->scratch.len };
	v->metadata = (struct bg_str){ t->end.result_metadata.p,
				       t->end.result_metadata.len };
}

static void add_callback(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, const struct outcome_view *v)
{
	struct bg_cmd *c = &t->id.cmd;
	char new_id[32];
	bg_id_new(new_id, sizeof(new_id), "msg-");
	struct bg_callback cb = {
		.message_id = S(t->id.message_id),
		.session_id = S(t->id.session_id),
		.trace_id = S(t->id.trace_id),
		.source_agent_type = S(t->id.source_agent_type),
		.target_agent_type = S(t->id.agent_type),
		.parent_message_id = S(t->id.parent_message_id),
		.task_group_id = c->hdr[BG_HDR_TASK_GROUP_ID],
		.user_code = c->hdr[BG_HDR_USER_CODE],
		.user_name = c->hdr[BG_HDR_USER_NAME],
		.metadata = c->hdr[BG_HDR_METADATA],
		.langfuse_parent_observation_id =
			c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID],
		.execution_id = S(t->id.execution_id),
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
			 S(t->id.source_agent_type), S(""), S("")) == 0)
		TXN(x, S("XADD"), ((struct bg_str){ key.p, key.len }), S("*"),
		    S("data"), ((struct bg_str){ cmd.p, cmd.len }));
	else
		bg_warn("cannot build the callback of %s", t->id.execution_id);
	bg_buf_free(&cmd);
	bg_buf_free(&key);
}

static void json_str(struct bg_buf *b, const char *s)
{
	bg_json_escape(b, s, strlen(s));
}

/* Does the stored record already carry a cancel request (a client's
 * cancel_task, or the lazy cancel read at pickup)? */
static bool says_cancel(struct bg_str record)
{
	struct bg_record r = { 0 };
	bool yes = bg_record_read(&r, record) == 0 && r.cancel_requested;
	bg_record_free(&r);
	return yes;
}

/* The record's final state: status, timeline, finished_at, error fields,
 * spliced into the record as Redis had it at the finish (finish.c reads
 * it): what a client wrote meanwhile (a cancel) is kept. A cancel this
 * worker received with no request on the record (a CANCEL_TASK written by
 * hand) is written there, cancel_requested and its reason, as the
 * reference's worker marks the execution when the command arrives. */
static void add_record(struct bg_daemon *d, struct bg_job *t,
		       struct bg_cmdlist *x, const struct outcome_view *v,
		       struct bg_buf *rec)
{
	(void)d;
	struct bg_record_errors errs = { 0 };
	struct bg_buf e[4] = { { 0 } };
	if (t->end.end_kind == BG_END_RESULT) {
		if (bg_record_errors_from(&errs, v->metadata, v->reply_data))
			memset(&errs, 0, sizeof(errs));
	} else {
		/* the handler's own type when it reported one (its metadata:
		 * C SDK, exec protocol, Python helper), unless bygated
		 * classified the failure itself (timeout, crash, limit) */
		struct bg_record_errors h = { 0 };
		const char *own = t->end.error_type;
		if (own == NULL &&
		    bg_record_errors_from(&h, v->metadata, S("")) == 0 &&
		    bg_json_type(h.error_type) == '"' &&
		    !bg_json_str_blank(h.error_type))
			bg_buf_append(&e[3], h.error_type.p, h.error_type.len);
		if (bg_record_errors_from(&h, v->metadata, S("")) == 0)
			errs.retryable = h.retryable;
		json_str(&e[0], t->end.error_message ? t->end.error_message
						     : "failed");
		json_str(&e[1],
			 t->end.error_code ? t->end.error_code : "FAILED");
		json_str(&e[2], t->end.failed_stage ? t->end.failed_stage
				: t->end.end_kind == BG_END_DEADLETTER
					? "pickup"
					: "process_command");
		if (e[3].len == 0)
			json_str(&e[3], own ? own
					: t->end.end_kind == BG_END_DEADLETTER
						? "DeadLettered"
						: "TaskFailed");
		errs.error_message = (struct bg_str){ e[0].p, e[0].len };
		errs.error_code = (struct bg_str){ e[1].p, e[1].len };
		errs.failed_stage = (struct bg_str){ e[2].p, e[2].len };
		errs.error_type = (struct bg_str){ e[3].p, e[3].len };
	}
	/* WIRE 6.2: retryable is a boolean, false unless the handler said
	 * true (the reference writes false, never null) */
	if (!bg_str_eq(errs.retryable, "true"))
		errs.retryable = S("false");
	struct bg_str base = { t->id.record.p, t->id.record.len };
	struct bg_record_update u = {
		.status = v->status,
		.worker_id = S(""),
		.now_ms = bg_now_ms(),
		.cancel = t->run.cancel_requested && !says_cancel(base),
		.cancel_reason = S(t->run.cancel_reason ? t->run.cancel_reason
							: "cancelled"),
		.errors = &errs,
		.duplicate_of =
			S(t->end.duplicate_of ? t->end.duplicate_of : ""),
	};
	struct bg_buf snap = { 0 };
	if (bg_record_update_snap(rec, base, &u, &snap) == 0) {
		char field[64];
		snprintf(field, sizeof(field), "exec:%s", t->id.execution_id);
		TXN(x, S("HSET"), S(t->id.reg_key), S(field),
		    ((struct bg_str){ rec->p, rec->len }));
		TXN(x, S("EXPIRE"), S(t->id.reg_key), S("604800"));
		/* WIRE 5.9: the dashboard's view of this worker. */
		char st[64];
		snprintf(st, sizeof(st), "%.*s", (int)v->status.len,
			 v->status.p);
		bg_stats_update_snap(d, (struct bg_str){ rec->p, rec->len },
				     &snap, t->id.execution_id,
				     t->id.prev_status[0] ? t->id.prev_status
							  : NULL,
				     st, emit_txn, x);
	} else {
		bg_warn("cannot update the record of %s", t->id.execution_id);
	}
	bg_buf_free(&snap);
	for (int i = 0; i < 4; i++)
		bg_buf_free(&e[i]);
}

static void add_deadletter(struct bg_daemon *d, struct bg_job *t,
			   struct bg_cmdlist *x)
{
	struct bg_deadletter dl = {
		.execution_id =
			S(t->id.record_exists ? t->id.execution_id : ""),
		.target_agent_type =
			S(t->id.agent_type ? t->id.agent_type : ""),
		.reason = S(t->end.error_message ? t->end.error_message : ""),
		.stream = S(t->id.stream),
		.entry_id = S(t->id.entry_id),
		.delivery_count = t->id.deliveries > 0 ? t->id.deliveries : 1,
		.error_code =
			S(t->end.error_code ? t->end.error_code : "malformed"),
		.has_data = t->id.data != NULL,
		.data = { t->id.data ? t->id.data : "", t->id.data_len },
	};
	struct bg_buf out = { 0 };
	if (bg_result_deadletter(&out, &dl) == 0)
		TXN(x, S("XADD"), S(d->deadletter_key), S("*"), S("data"),
		    ((struct bg_str){ out.p, out.len }));
	bg_buf_free(&out);
}

/* Under Redis Cluster, an entry whose earlier delivery's finish applied
 * its session's part (finish_parts.h, pickup.c): this finish sends the
 * rest that part kept (each part skipped where already applied), after a
 * command of the session's slot, an EXPIRE of the registry, that names
 * the slot for a replay of this blob from the journal (finish_parts.c
 * finds the session's part by it; being there, it is skipped). */
static void add_taken_over(struct bg_daemon *d, struct bg_job *t,
			   struct bg_cmdlist *x)
{
	struct bg_str rest = { t->id.finish_rest.p, t->id.finish_rest.len };
	struct bg_cmdlist_iter it;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc, rc = 0;
	uint32_t n;
	TXN(x, S("EXPIRE"), S(t->id.reg_key), S("604800"));
	if (rest.len && (bg_cmdlist_check(rest, &n) != 0 ||
			 bg_cmdlist_iter_init(&it, rest) != 0))
		rc = -EBADMSG;
	while (rest.len && rc == 0 &&
	       (rc = bg_cmdlist_next(&it, &argc, argv, lens,
				     BG_CMDLIST_MAX_ARGS)) == 1) {
		struct bg_str a[BG_CMDLIST_MAX_ARGS];
		for (int i = 0; i < argc; i++)
			a[i] = (struct bg_str){ argv[i], lens[i] };
		bg_cmdlist_add(x, argc, a);
		rc = 0;
	}
	if (rc != 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "entry %s: the rest of an earlier finish kept in "
			    "its session's guard is not a list of commands "
			    "(%zu bytes); the entry is acknowledged without it",
			    t->id.entry_id, rest.len);
	}
	(void)d;
}

static void build_finish(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, struct bg_buf *rec)
{
	struct outcome_view v;
	view_outcome(t, &v);
	bool runs = t->end.end_kind == BG_END_RESULT ||
		    t->end.end_kind == BG_END_FAILED;
	/* The handler's writes (callee records and requests, group hash,
	 * form event, kv sets), only for an attempt that returned. */
	if (t->end.end_kind == BG_END_RESULT)
		bg_outbox_splice(t, x);
	/* "bygate decisions" 16: the caller is called back when this
	 * execution is terminal, not when it suspends on its own callees. */
	if (runs && t->id.callback_to[0] && !t->run.parent_cancelled &&
	    bg_status_is_terminal(v.status))
		add_callback(d, t, x, &v);
	bool wrote_data = false;
	struct bg_buf fm = { 0 };
	bool answered = false;
	/* A cancelled task has no final answer (WIRE 3.6: callback, then
	 * the end marker only). */
	if (t->end.end_kind == BG_END_RESULT && !t->run.cancel_requested) {
		if (bg_result_final_message(v.content, v.reply_data, &fm,
					    &answered) == 0 &&
		    answered) {
			add_event(d, t, x, BG_EVENT_FINAL_ANSWER,
				  (struct bg_str){ fm.p, fm.len });
			wrote_data = true;
		} else {
			answered = false;
		}
	}
	/* the turns of the session's conversation (docs/history.md): the
	 * user's, the answer the data stream gets */
	if (runs)
		bg_conversation_add(d, t, x,
				    answered ? &(struct bg_str){ fm.p, fm.len }
					     : NULL);
	bg_buf_free(&fm);
	if (runs && bg_result_wants_end_marker(t->id.has_source_agent, v.status,
					       t->run.permission_transferred,
					       t->run.suspended,
					       t->run.end_marker_emitted)) {
		add_event(d, t, x, BG_EVENT_END_OF_STREAM, S(""));
		wrote_data = true;
	}
	if (wrote_data)
		TXN(x, S("EXPIRE"), S(t->id.data_key), S("604800"));
	if (t->end.end_kind == BG_END_DEADLETTER || t->end.deadletter)
		add_deadletter(d, t, x);
	if (t->id.record_exists && t->end.end_kind != BG_END_ACK_ONLY)
		add_record(d, t, x, &v, rec);
	if (t->id.finish_begun && t->end.end_kind == BG_END_ACK_ONLY)
		add_taken_over(d, t, x);
	TXN(x, S("XACK"), S(t->id.stream), S(d->group), S(t->id.entry_id));
	bg_buf_free(&v.scratch);
}

/* Build the finish blob once and journal it (DESIGN 4: before the
 * MULTI/EXEC is sent). A command that could not be added (no memory, the
 * outbox failed) fails it all: nothing is journaled or sent. */
int bg_finish_build(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_buf rec = { 0 };
	struct bg_cmdlist x = {
		.buf = t->fin.finish_blob
	}; /* reuses its memory */
	bg_cmdlist_reset(&x);
	build_finish(d, t, &x, &rec);
	bg_buf_free(&rec);
	t->fin.finish_blob = x.buf;
	int rc = x.err;
	if (rc == 0 && (x.n == 0 || x.n > TXN_MAX_CMDS))
		rc = -E2BIG;
	if (rc) {
		bg_buf_reset(&t->fin.finish_blob);
		return rc;
	}
	if (bg_fault_hit("finish.before_journal"))
		_exit(BG_FAULT_EXIT);
	if (d->state) {
		(void)bg_lmdb_check(
			d,
			bg_state_journal_put(
				d->state, S(t->id.stream), S(t->id.entry_id),
				(struct bg_str){ t->fin.finish_blob.p,
						 t->fin.finish_blob.len }),
			"journal put");
		d->journaled_this_turn = true;
		for (const struct bg_job *u = d->all.next; u != &d->all;
		     u = u->next)
			if (u->id.taken_by == t->tag)
				d->journaled_taking_this_turn = true;
	}
	return 0;
}
