/* supervisor/finish.c - the last stage of a task (DESIGN 4): whatever ends
 * an attempt (result, handler error, child death, dead letter, terminal
 * replay) is written as a single MULTI/EXEC whose last command is the XACK,
 * so an entry is pending exactly when its finish was not applied. What the
 * transaction holds is built by finish_build.c; this file reads the
 * execution record it is built on, sends it and sees it applied.
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
#include "supervisor/eventlog.h"
#include "supervisor/finish_build.h"
#include "supervisor/finish_parts.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/outbox.h"
#include "supervisor/trace.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/result.h"

#define S(s) bg_str_c(s)

bool bg_finish_blob_valid(struct bg_str blob)
{
	uint32_t n;
	return bg_cmdlist_check(blob, &n) == 0 && n > 0;
}

static void on_exec(struct bg_rconn *c, redisReply *r, void *priv);
static void send_parts(struct bg_daemon *d, struct bg_job *t);
static void schedule_retry(struct bg_daemon *d, struct bg_job *t,
			   const char *why);

/* MULTI, the blob's commands, EXEC. The blob was checked by bg_finish.
 *
 * The dashboard's five worker keys (WIRE 5.9) get their EXPIRE here, not
 * in the journaled blob: inside the transaction, just before its last
 * command (the XACK), unless an EXPIRE of that key was sent earlier on
 * this connection in this loop turn, after a write that made the key
 * exist (stats.c: bg_stats_flush, or an earlier transaction). Redis runs
 * one connection's commands in order, so the key already has its TTL when
 * this transaction writes it. A blob sent again (a retry, a fenced or
 * unknown finish, a journal replay after a crash) passes here again and
 * gets them again when its turn has not sent them. A key can only be
 * left without a TTL if it did not exist before its turn and the earlier
 * transaction that carried its EXPIRE was refused (EXECABORT) while a
 * later one was applied; that earlier one is retried and carries them
 * then. The registry, data stream and outbox keys keep their EXPIREs in
 * the blob, which stays whole on its own. */
static void send_blob(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_str blob = { t->fin.finish_blob.p, t->fin.finish_blob.len };
	struct bg_cmdlist_iter it;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc;
	bg_stats_flush(d); /* the batched RUNNING stats come first */
	if (bg_rconn_clustered(d->wr)) {
		send_parts(d, t);
		return;
	}
	if (bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			  (const char *const[]){ "MULTI", NULL }) != 0) {
		/* not sent: checked and sent again after the reconnect */
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	int rc = bg_cmdlist_iter_init(&it, blob);
	while (rc == 0 && (rc = bg_cmdlist_next(&it, &argc, argv, lens,
						BG_CMDLIST_MAX_ARGS)) > 0) {
		if (it.left == 0) /* before the last command: the XACK */
			bg_stats_expire(d, bg_stats_emit_wr, d);
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
			    t->id.entry_id);
		bg_job_move(t, BG_JOB_ABANDONED);
		return;
	}
	bg_job_move(t, BG_JOB_FINISH_SENT);
	bg_rconn_cmdv(d->wr, on_exec, t, 0,
		      (const char *const[]){ "EXEC", NULL });
}

/* Under Redis Cluster: the blob's parts, slot by slot, the XACK last
 * (finish_parts.h); on_exec sees the XACK's reply. */
static void send_parts(struct bg_daemon *d, struct bg_job *t)
{
	int rc = bg_finish_parts_send(d, t, on_exec);
	if (rc == 0) {
		bg_job_move(t, BG_JOB_FINISH_SENT);
	} else if (rc != -EBADMSG && rc != -ENOTCONN) {
		bg_job_move(t, BG_JOB_FINISH_SENT);
		schedule_retry(d, t, strerror(-rc));
	} else if (rc == -EBADMSG) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "finish of entry %s cannot be split by slot (not "
			    "a finish, or a command without a key): not "
			    "sent, entry left pending",
			    t->id.entry_id);
		bg_job_move(t, BG_JOB_ABANDONED);
	} else {
		/* not sent: checked and sent again after the reconnect */
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
	}
}

static void on_owner_check(struct bg_rconn *c, redisReply *r, void *priv);

/* Send the finish unless fencing holds it or ownership must be checked. */
static void send_finish(struct bg_daemon *d, struct bg_job *t)
{
	if (!bg_lease_may_finish(d)) {
		bg_job_move(t, BG_JOB_FINISH_HELD);
		return;
	}
	if (t->fin.verify_owner) {
		bg_job_move(t, BG_JOB_FINISH_SENT);
		if (bg_rconn_cmdv(d->wr, on_owner_check, t, 0,
				  (const char *const[]){
					  "XPENDING", t->id.stream, d->group,
					  "IDLE", "0", t->id.entry_id,
					  t->id.entry_id, "1", d->worker_id,
					  NULL }) != 0)
			bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	send_blob(d, t);
}

static void count_outcome(struct bg_daemon *d, const struct bg_job *t)
{
	switch (t->end.end_kind) {
	case BG_END_RESULT:
		if (strcmp(t->end.status, "FAILED") == 0)
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
	case BG_END_DUPLICATE:
		d->n_acked_only++;
		break;
	case BG_END_REPLAY:
		d->n_recovered_finishes++;
		break;
	}
}

static const char *hist_status(const struct bg_job *t, char *buf, size_t n)
{
	switch (t->end.end_kind) {
	case BG_END_RESULT:
		return t->end.status ? t->end.status : "COMPLETED";
	case BG_END_FAILED:
		return t->end.deadletter ? "FAILED+DEADLETTER" : "FAILED";
	case BG_END_DEADLETTER:
		snprintf(buf, n, "DEADLETTER:%s",
			 t->end.error_code ? t->end.error_code : "");
		return buf;
	case BG_END_ACK_ONLY:
		return "ACKED";
	case BG_END_DUPLICATE:
		return "DUPLICATE";
	case BG_END_REPLAY:
		return "RECOVERED";
	}
	return "?";
}

/* Drop the entry's journal line and in-flight mirror (LMDB). */
static void forget_entry(struct bg_daemon *d, const struct bg_job *t)
{
	(void)bg_lmdb_check(d,
			    bg_state_journal_del(d->state, S(t->id.stream),
						 S(t->id.entry_id)),
			    "journal del");
	(void)bg_lmdb_check(d,
			    bg_state_exec_del(d->state, S(t->id.stream),
					      S(t->id.entry_id)),
			    "exec del");
}

/* The finish is in Redis: forget it here (journal, in-flight mirror) and
 * keep a line of history. */
static void forget(struct bg_daemon *d, struct bg_job *t)
{
	if (d->state == NULL)
		return;
	char buf[96];
	forget_entry(d, t);
	struct bg_state_hist h = {
		.stream = S(t->id.stream),
		.entry_id = S(t->id.entry_id),
		.execution_id = S(t->id.execution_id),
		.message_id = S(t->id.message_id),
		.session_id = S(t->id.session_id ? t->id.session_id : ""),
		.agent_type = S(t->id.agent_type ? t->id.agent_type : ""),
		.status = S(hist_status(t, buf, sizeof(buf))),
		.finished_ms = bg_now_ms(),
		.duration_ms = t->run.started_ms
				       ? bg_mono_ms() - t->run.started_ms
				       : 0,
		.attempt = (uint32_t)t->run.attempt,
	};
	(void)bg_lmdb_check(d, bg_state_hist_add(d->state, &h), "hist add");
}

static const char *metric_outcome(const struct bg_job *t)
{
	switch (t->end.end_kind) {
	case BG_END_RESULT:
		if (strcmp(t->end.status, "COMPLETED") == 0)
			return "completed";
		if (strcmp(t->end.status, "FAILED") == 0)
			return "failed";
		if (strcmp(t->end.status, "CANCELLED") == 0)
			return "cancelled";
		return "suspended";
	case BG_END_FAILED:
		return t->end.deadletter ? "deadlettered" : "failed";
	case BG_END_DEADLETTER:
		return "deadlettered";
	case BG_END_ACK_ONLY:
	case BG_END_DUPLICATE:
		return "acked";
	case BG_END_REPLAY:
		break;
	}
	return NULL;
}

static void finish_applied(struct bg_daemon *d, struct bg_job *t)
{
	t->fin.applied = true;
	if (bg_rconn_clustered(d->wr))
		bg_finish_parts_forget(d, t);
	forget(d, t);
	count_outcome(d, t);
	const char *label = metric_outcome(t);
	const char *type = t->id.handler_type
				   ? t->id.handler_type
				   : (t->id.agent_type ? t->id.agent_type : "");
	if (label) {
		int64_t now = bg_mono_ms();
		bg_metrics_task_done(
			d->metrics, type, label,
			t->run.started_ms ? now - t->run.started_ms : 0,
			t->run.started_ms ? t->run.started_ms - t->run.picked_ms
					  : 0);
	}
	if (t->end.end_kind == BG_END_DUPLICATE)
		bg_metrics_idem_duplicate(d->metrics, type);
	if (t->end.end_kind != BG_END_REPLAY) {
		char buf[96];
		bg_eventlog_ended(d, t, hist_status(t, buf, sizeof(buf)));
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	int64_t ms = t->run.started_ms ? bg_mono_ms() - t->run.started_ms : 0;
	if (t->end.end_kind == BG_END_DEADLETTER)
		bg_log_task(BG_LOG_WARN, &ids,
			    "entry %s on %s dead-lettered (%s): %s",
			    t->id.entry_id, t->id.stream,
			    t->end.error_code ? t->end.error_code : "",
			    t->end.error_message ? t->end.error_message : "");
	else if (t->end.end_kind == BG_END_FAILED)
		bg_log_task(BG_LOG_INFO, &ids, "task FAILED after %lld ms: %s",
			    (long long)ms,
			    t->end.error_message ? t->end.error_message : "");
	else if (ms > d->cfg->slow_task_ms)
		bg_log_task(BG_LOG_INFO, &ids, "slow task: %s after %lld ms",
			    t->end.status ? t->end.status : "", (long long)ms);
	else
		bg_log_task(BG_LOG_DEBUG, &ids, "task finished: %s in %lld ms",
			    t->end.status ? t->end.status : "acked",
			    (long long)ms);
	bg_trace_job_finished(d, t);
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
	int ms = 100 << (t->fin.finish_tries > 6 ? 6 : t->fin.finish_tries);
	if (ms > 5000)
		ms = 5000;
	t->fin.finish_tries++;
	if (t->fin.finish_tries == 1 || t->fin.finish_tries % 20 == 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "finish transaction refused (%s); entry %s stays "
			    "pending, retry %d in %d ms",
			    why, t->id.entry_id, t->fin.finish_tries, ms);
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
		schedule_retry(d, t,
			       r->type == REDIS_REPLY_NIL ? "EXEC aborted"
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
	if (t->fin.finish_blob.len == 0)
		return -ENOMEM; /* the copy failed */
	return bg_finish_blob_valid((struct bg_str){ t->fin.finish_blob.p,
						     t->fin.finish_blob.len })
		       ? 0
		       : -EBADMSG;
}

/* Build (or take the replayed) blob and send it. */
static void build_and_send(struct bg_daemon *d, struct bg_job *t)
{
	int rc = t->end.end_kind == BG_END_REPLAY ? replay_blob(t)
						  : bg_finish_build(d, t);
	if (rc != 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "finish transaction could not be built (%s); entry "
			    "%s left pending for recovery",
			    strerror(-rc), t->id.entry_id);
		bg_job_move(t, BG_JOB_ABANDONED);
		return;
	}
	send_finish(d, t);
}

/* ---- the record read (WIRE 5.9, 6.10) ---- */

/* A finish that writes the execution record is built on the record as
 * Redis has it, not on the copy taken at pickup: a client may have written
 * it since (cancel_task: CANCELLING, cancel_requested, cancel_reason and
 * a timeline step), and the reference's mark_execution_finished re-reads
 * it too. One HGET on the write connection, so it comes after our own
 * RUNNING write; the job is FINISH_SENT meanwhile, so it holds no child
 * and no CANCEL_TASK can change its outcome. A read lost with the
 * connection leaves it FINISH_UNKNOWN with no blob: read again when the
 * connection is back (bg_finish_resend_unknown). */
struct record_read {
	struct bg_daemon *d;
	uint64_t tag; /* the job, looked up again: it may be freed at exit */
};

static bool wants_record(const struct bg_job *t)
{
	return t->end.end_kind != BG_END_REPLAY &&
	       t->end.end_kind != BG_END_ACK_ONLY && t->id.record_exists &&
	       t->id.reg_key != NULL;
}

/* The stored record becomes the finish's base, and its status the
 * counters' old status when the record is this worker's (WIRE 5.9: "if
 * old status belonged to this worker"), as at pickup. A missing or
 * malformed record leaves our copy as the base. */
static void rebase(struct bg_daemon *d, struct bg_job *t, const redisReply *r)
{
	struct bg_record rec = { 0 };
	struct bg_buf b = { 0 };
	/* Unchanged since we read or wrote it (the usual case): our copy is
	 * those bytes already and prev_status derives from them (job.h), so
	 * there is nothing to parse. */
	if (r->type == REDIS_REPLY_STRING && t->id.record.p &&
	    r->len == t->id.record.len &&
	    memcmp(r->str, t->id.record.p, r->len) == 0)
		return;
	/* bg_record_read validates every byte of the record (it accepts
	 * only what bg_json_valid accepts): no separate validation pass */
	if (r->type != REDIS_REPLY_STRING ||
	    bg_record_read(&rec, (struct bg_str){ r->str, r->len }) != 0)
		return;
	if (bg_buf_append(&b, r->str, r->len) == 0) {
		char was[sizeof(t->id.prev_status)];
		bool mine = bg_str_eq(rec.worker_id, d->worker_id);
		snprintf(was, sizeof(was), "%s", t->id.prev_status);
		snprintf(t->id.prev_status, sizeof(t->id.prev_status), "%.*s",
			 mine ? (int)rec.status.len : 0, rec.status.p);
		if (strcmp(was, t->id.prev_status) != 0) {
			struct bg_log_ids ids = bg_job_log_ids(t);
			bg_log_task(BG_LOG_INFO, &ids,
				    "execution record changed to %.*s (worker "
				    "%.*s) since it was read or written here: "
				    "finished from it",
				    (int)rec.status.len, rec.status.p,
				    (int)rec.worker_id.len, rec.worker_id.p);
		}
		bg_buf_free(&t->id.record);
		t->id.record = b;
		if (bg_job_keep_route(t, &rec) != 0) {
			struct bg_log_ids ids = bg_job_log_ids(t);
			bg_log_task(BG_LOG_WARN, &ids,
				    "out of memory keeping the record's route: "
				    "its trace span goes without it");
		}
	}
	bg_record_free(&rec);
}

static void on_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct record_read *rr = priv;
	struct bg_daemon *d = rr->d;
	if (r != NULL && bg_fault_hit("finish.record_read_lost")) {
		/* The reply is dropped with the connection. */
		bg_rconn_drop(d->wr, "fault injection: record read reply lost");
		r = NULL;
	}
	struct bg_job *t = bg_job_find(d, rr->tag);
	free(rr);
	if (t == NULL)
		return;
	if (r == NULL) {
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
		return;
	}
	rebase(d, t, r);
	build_and_send(d, t);
}

static void read_record(struct bg_daemon *d, struct bg_job *t)
{
	char field[64];
	struct record_read *rr = malloc(sizeof(*rr));
	if (rr == NULL) {
		build_and_send(d, t); /* on our copy */
		return;
	}
	*rr = (struct record_read){ d, t->tag };
	snprintf(field, sizeof(field), "exec:%s", t->id.execution_id);
	bg_job_move(t, BG_JOB_FINISH_SENT);
	if (bg_rconn_cmdv(d->wr, on_record, rr, 0,
			  (const char *const[]){ "HGET", t->id.reg_key, field,
						 NULL }) != 0) {
		free(rr);
		bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
	}
}

void bg_finish(struct bg_daemon *d, struct bg_job *t)
{
	t->fin.finish_tries = 0;
	if (wants_record(t))
		read_record(d, t);
	else
		build_and_send(d, t);
}

/* Replay a finish read from the journal (recovery): the entry is still
 * pending, so the transaction was not applied and is sent as it was. */
void bg_finish_replay(struct bg_daemon *d, struct bg_job *t, struct bg_str blob)
{
	bg_buf_reset(&t->fin.finish_blob);
	if (bg_buf_append(&t->fin.finish_blob, blob.p, blob.len) != 0)
		bg_buf_reset(&t->fin.finish_blob); /* refused by bg_finish */
	t->end.end_kind = BG_END_REPLAY;
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
		t->fin.verify_owner = false;
		send_finish(d, t);
		return;
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_WARN, &ids,
		    "entry %s on %s is no longer in this worker's pending list "
		    "(claimed by another worker while our lease lapsed, or "
		    "lost with Redis's data): not finishing it here",
		    t->id.entry_id, t->id.stream);
	d->n_lost_to_peer++;
	if (d->state) {
		forget_entry(d, t);
	}
	bg_job_free(d, t);
}

void bg_finish_mark_verify(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		t->fin.verify_owner = true;
}

void bg_finish_release_held(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->state == BG_JOB_FINISH_HELD)
			send_finish(d, t);
}

/* After the write connection is back: a finish whose EXEC outcome is
 * unknown is re-sent only if Redis still lists the entry as pending (the
 * transaction is all or nothing, XACK included); one whose record read
 * was lost reads it again. */
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
		/* no blob yet: its record read was lost */
		if (t->fin.finish_blob.len == 0) {
			read_record(d, t);
			continue;
		}
		bg_job_move(t, BG_JOB_FINISH_SENT);
		if (bg_rconn_cmdv(d->wr, on_pending_check, t, 0,
				  (const char *const[]){
					  "XPENDING", t->id.stream, d->group,
					  t->id.entry_id, t->id.entry_id, "1",
					  NULL }) != 0)
			bg_job_move(t, BG_JOB_FINISH_UNKNOWN);
	}
}
