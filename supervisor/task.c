/* supervisor/task.c - the task path of DESIGN 4: scan an entry, decide
 * (run, terminal replay, ignored command, dead letter), read and update the
 * execution record, dispatch to an idle child, publish its streamed events
 * live and hand its end to the finish builder. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>

#include <event2/event.h>

#include "common/fault.h"
#include "ipc/record.h"
#include "state/state.h"
#include "workspace/workspace.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "wire/event.h"
#include <jansson.h>
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"
#include "wire/record.h"

int64_t bg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bg_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bg_redis_now_ms(const struct bg_daemon *d)
{
	return bg_now_ms() + d->redis_offset_ms;
}

struct bg_log_ids bg_task_log_ids(const struct bg_task *t)
{
	struct bg_log_ids ids = { t->session_id,
				  t->execution_id[0] ? t->execution_id : NULL,
				  t->message_id[0] ? t->message_id : NULL,
				  t->slot, t->pid };
	return ids;
}

static char *dup_str(struct bg_str s)
{
	char *p = malloc(s.len + 1);
	if (p) {
		memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}

void bg_expire_once(struct bg_daemon *d, const char *key)
{
	if (!bg_keyset_add(d->expired, key))
		return;
	bg_rconn_cmdv(d->wr, NULL, NULL, 0,
		      (const char *const[]){ "EXPIRE", key, "604800", NULL });
}

void bg_turn_end(struct bg_daemon *d)
{
	bg_keyset_clear(d->expired);
	bg_pool_end_of_turn(d->pool);
}

static void task_release(struct bg_daemon *d, struct bg_task *t)
{
	t->prev->next = t->next;
	t->next->prev = t->prev;
	d->n_tasks--;
	if (t->state == BG_TASK_FINISHING)
		d->n_finishing--;
	if (t->retry_ev)
		event_free(t->retry_ev);
	if (t->timeout_ev)
		event_free(t->timeout_ev);
	if (t->cancel_ev)
		event_free(t->cancel_ev);
	free(t->cancel_reason);
	bg_cmd_free(&t->cmd);
	free(t->stream);
	free(t->entry_id);
	free(t->data);
	free(t->session_id);
	free(t->trace_id);
	free(t->agent_type);
	free(t->source_agent_type);
	free(t->parent_message_id);
	free(t->reg_key);
	free(t->data_key);
	free(t->status);
	free(t->error_message);
	bg_buf_free(&t->record);
	bg_buf_free(&t->content);
	bg_buf_free(&t->reply_data);
	bg_buf_free(&t->result_metadata);
	bg_buf_free(&t->extra_payload);
	bg_buf_free(&t->finish_blob);
	bg_outbox_reset(t);
	bg_buf_free(&t->outbox);
	free(t->group_results);
	bg_task_release_private(d, t);
	free(t->ws);
	free(t);
}

void bg_task_free(struct bg_daemon *d, struct bg_task *t)
{
	bg_suspects_task_done(d, t);
	task_release(d, t);
	bg_consume_kick(d);
}

/* At exit: the tasks and the suspect list in memory (the one in LMDB is
 * kept for the next start). */
void bg_task_free_all(struct bg_daemon *d)
{
	while (d->all.next != &d->all && d->all.next != NULL)
		task_release(d, d->all.next);
	d->q_head = d->q_tail = NULL;
	d->n_queued = 0;
	bg_suspects_free(d);
}

static struct bg_task *find_task(struct bg_daemon *d, uint64_t tag)
{
	for (struct bg_task *t = d->all.next; t != &d->all; t = t->next)
		if (t->tag == tag)
			return t;
	return NULL;
}

/* End the attempt now through the finish builder. */
static void end_task(struct bg_daemon *d, struct bg_task *t,
		     enum bg_outcome outcome, const char *error_code,
		     const char *why)
{
	bg_task_release_private(d, t);
	t->outcome = outcome;
	t->error_code = error_code;
	if (why) {
		free(t->error_message);
		t->error_message = strdup(why);
	}
	bg_finish(d, t);
}

void bg_task_end_ack(struct bg_daemon *d, struct bg_task *t)
{
	end_task(d, t, BG_OUT_ACK_ONLY, NULL, NULL);
}

void bg_task_end_deadletter(struct bg_daemon *d, struct bg_task *t,
			    const char *code, const char *why)
{
	end_task(d, t, BG_OUT_DEADLETTER, code, why);
}

/* ---- cancellation (WIRE 6.10) ---- */

static void finish_cancelled_now(struct bg_daemon *d, struct bg_task *t)
{
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids, "execution CANCELLED (%s)",
		    t->cancel_reason ? t->cancel_reason : "cancelled");
	free(t->status);
	t->status = strdup("CANCELLED");
	bg_buf_reset(&t->content);
	bg_buf_reset(&t->reply_data);
	bg_buf_puts(&t->reply_data, "{\"reason\":");
	const char *why = t->cancel_reason ? t->cancel_reason : "cancelled";
	bg_json_escape(&t->reply_data, why, strlen(why));
	bg_buf_puts(&t->reply_data, "}");
	end_task(d, t, BG_OUT_RESULT, NULL, NULL);
}

static void on_parent_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	if (r && r->type == REDIS_REPLY_STRING) {
		struct bg_record rec = { 0 };
		if (bg_record_read(&rec, (struct bg_str){ r->str, r->len }) == 0)
			t->parent_cancelled = rec.cancel_requested;
		bg_record_free(&rec);
	}
	finish_cancelled_now(t->d, t);
}

static void on_parent_map(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	char field[160];
	if (r && r->type == REDIS_REPLY_STRING && r->len < 100) {
		snprintf(field, sizeof(field), "exec:%.*s", (int)r->len, r->str);
		if (bg_rconn_cmdv(t->d->wr, on_parent_record, t, 0,
				  (const char *const[]){ "HGET", t->reg_key,
							 field, NULL }) == 0)
			return;
	}
	finish_cancelled_now(t->d, t);
}

/* End a cancelled execution: CANCELLED, reply_data {"reason"}, an end
 * marker for a root task, and a callback to a waiting caller unless the
 * caller itself asked for the cancel (its record has cancel_requested). */
static void finish_cancelled(struct bg_daemon *d, struct bg_task *t)
{
	char field[BG_FIELD_MAX];
	if (t->ending)
		return;
	t->ending = true; /* nothing else may end it meanwhile */
	/* Its child no longer runs it (and may run others): no signal from a
	 * late timer may reach that child. */
	t->slot = -1;
	if (t->cancel_ev)
		evtimer_del(t->cancel_ev);
	if (t->timeout_ev)
		evtimer_del(t->timeout_ev);
	if (!t->has_source_agent || t->parent_message_id[0] == '\0') {
		finish_cancelled_now(d, t);
		return;
	}
	snprintf(field, sizeof(field), "msg_map:%s", t->parent_message_id);
	if (bg_rconn_cmdv(d->wr, on_parent_map, t, 0,
			  (const char *const[]){ "HGET", t->reg_key, field,
						 NULL }) != 0)
		finish_cancelled_now(d, t);
}

static uint64_t entry_ms(const char *id)
{
	return strtoull(id, NULL, 10);
}

static void queue_push(struct bg_daemon *d, struct bg_task *t)
{
	t->state = BG_TASK_QUEUED;
	t->qnext = NULL;
	if (d->q_tail)
		d->q_tail->qnext = t;
	else
		d->q_head = t;
	d->q_tail = t;
	d->n_queued++;
}

/* Ahead of the queue: an interrupted task keeps its place in line. */
static void queue_push_front(struct bg_daemon *d, struct bg_task *t)
{
	t->state = BG_TASK_QUEUED;
	t->qnext = d->q_head;
	d->q_head = t;
	if (d->q_tail == NULL)
		d->q_tail = t;
	d->n_queued++;
}

static void send_pickup(struct bg_daemon *d, struct bg_task *t);

/* ---- the RUNNING write (WIRE 6.4 step 6) ---- */

static void on_running_written(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	(void)priv;
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("execution record update refused: %s", r->str);
}

static void emit_wr(void *ctx, int argc, const struct bg_str *argv)
{
	struct bg_daemon *d = ctx;
	const char *a[8];
	size_t l[8];
	for (int i = 0; i < argc && i < 8; i++) {
		a[i] = argv[i].p;
		l[i] = argv[i].len;
	}
	bg_rconn_cmd(d->wr, NULL, NULL, 0, argc, a, l);
}

static int write_running(struct bg_daemon *d, struct bg_task *t,
			 bool existing)
{
	int64_t now = bg_now_ms();
	int rc;
	struct bg_buf out = { 0 };
	if (existing) {
		struct bg_record_update u = { .status = bg_str_c("RUNNING"),
					      .worker_id = bg_str_c(d->worker_id),
					      .now_ms = now };
		rc = bg_record_update(&out, bg_str_c(t->record.p), &u);
	} else {
		struct bg_record_new n = {
			.execution_id = bg_str_c(t->execution_id),
			.message_id = bg_str_c(t->message_id),
			.session_id = bg_str_c(t->session_id),
			.trace_id = bg_str_c(t->trace_id),
			.parent_message_id = bg_str_c(t->parent_message_id),
			.worker_id = bg_str_c(d->worker_id),
			.target_agent_type = bg_str_c(t->agent_type),
			.stream_name = bg_str_c(t->stream),
			.redis_message_id = bg_str_c(t->entry_id),
			.cancel_reason = bg_str_c(""),
			.now_ms = now,
		};
		rc = bg_record_build_running(&out, &n);
	}
	if (rc) {
		bg_buf_free(&out);
		return rc;
	}
	bg_buf_free(&t->record);
	t->record = out;
	char field[64], mapf[BG_FIELD_MAX];
	snprintf(field, sizeof(field), "exec:%s", t->execution_id);
	snprintf(mapf, sizeof(mapf), "msg_map:%s", t->message_id);
	const char *argv[6] = { "HSET", t->reg_key, field, t->record.p, mapf,
				t->execution_id };
	size_t lens[6] = { 4, strlen(t->reg_key), strlen(field), t->record.len,
			   strlen(mapf), strlen(t->execution_id) };
	bg_rconn_cmd(d->wr, on_running_written, NULL, 0, existing ? 4 : 6, argv,
		     lens);
	bg_expire_once(d, t->reg_key);
	t->record_exists = true;
	bg_stats_update(d, (struct bg_str){ t->record.p, t->record.len },
			t->execution_id,
			t->prev_status[0] ? t->prev_status : NULL, "RUNNING",
			false, emit_wr, d);
	snprintf(t->prev_status, sizeof(t->prev_status), "RUNNING");
	return 0;
}

static void start_running(struct bg_daemon *d, struct bg_task *t);
static void join_group(struct bg_daemon *d, struct bg_task *t);

/* ---- pickup decision (WIRE 6.4 steps 2-6) ---- */

/* `js` is the stored record of execution t->execution_id, or NULL when
 * the message id maps to no record. */
static void decide(struct bg_daemon *d, struct bg_task *t,
		   const struct bg_str *js)
{
	struct bg_record rec = { 0 };
	bool have = false;
	if (js) {
		if (bg_record_read(&rec, *js) == 0) {
			have = true;
			bg_buf_append(&t->record, js->p, js->len);
		} else {
			struct bg_log_ids ids = bg_task_log_ids(t);
			bg_log_task(BG_LOG_WARN, &ids,
				    "stored execution record is not valid JSON; "
				    "starting a new execution");
		}
	}
	bool is_resume = t->cmd.action == BG_ACTION_RESUME;
	if (have && rec.worker_id.len && bg_str_eq(rec.worker_id, d->worker_id))
		snprintf(t->prev_status, sizeof(t->prev_status), "%.*s",
			 (int)rec.status.len, rec.status.p);
	if (have && bg_status_is_terminal(rec.status) && !is_resume) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_INFO, &ids,
			    "terminal replay: execution already %.*s, entry %s "
			    "acknowledged without running",
			    (int)rec.status.len, rec.status.p, t->entry_id);
		bg_record_free(&rec);
		end_task(d, t, BG_OUT_ACK_ONLY, NULL, NULL);
		return;
	}
	if (t->deliveries > d->cfg->max_deliveries) {
		char why[320];
		int alone = bg_suspects_alone_crashes(d, t);
		if (alone > 0)
			snprintf(why, sizeof(why),
				 "entry delivered %d times (max_deliveries "
				 "%d): bygated died %d time%s while it ran "
				 "alone (re-run as a suspect after an unclean "
				 "exit); dead-lettered as poison without "
				 "running again",
				 t->deliveries, d->cfg->max_deliveries, alone,
				 alone == 1 ? "" : "s");
		else
			snprintf(why, sizeof(why),
				 "entry delivered %d times (max_deliveries "
				 "%d): dead-lettered as poison without running "
				 "again",
				 t->deliveries, d->cfg->max_deliveries);
		if (!have)
			bg_id_new(t->execution_id, sizeof(t->execution_id),
				  "exec-");
		bg_record_free(&rec);
		t->record_exists = have;
		t->deadletter = true;
		t->error_type = "PoisonEntry";
		end_task(d, t, BG_OUT_FAILED, "max_deliveries", why);
		return;
	}
	if (have && rec.cancel_requested) {
		/* Lazy cancel (WIRE 6.10): finished CANCELLED, never run. */
		t->cancel_requested = true;
		if (t->cancel_reason == NULL)
			t->cancel_reason = dup_str(rec.cancel_reason);
	}
	if (t->cancel_requested) {
		bg_record_free(&rec);
		t->record_exists = have;
		if (!have)
			bg_id_new(t->execution_id, sizeof(t->execution_id),
				  "exec-");
		finish_cancelled(d, t);
		return;
	}
	/* WIRE 6.4 step 5: resumed = a RESUME, or a record past QUEUED. */
	t->is_resumed = is_resume || (have && !bg_str_eq(rec.status, "QUEUED"));
	if (!have)
		bg_id_new(t->execution_id, sizeof(t->execution_id), "exec-");
	else if (rec.parent_message_id.len) {
		free(t->parent_message_id);
		t->parent_message_id = dup_str(rec.parent_message_id);
	}
	/* "bygate decisions" 16: a resumed sub-agent still calls its caller
	 * back when it finishes; the record remembers who that is (the
	 * caller's type, set by call_agent with wait_for_reply). */
	if (have && is_resume && rec.source_agent_type.len &&
	    !bg_str_eq(rec.source_agent_type, "client")) {
		snprintf(t->callback_to, sizeof(t->callback_to), "%.*s",
			 (int)rec.source_agent_type.len,
			 rec.source_agent_type.p);
		free(t->source_agent_type);
		t->source_agent_type = strdup(t->callback_to);
		t->has_source_agent = true;
	}
	int rc = bg_cmd_validate_task(&t->cmd);
	if (rc) {
		bg_record_free(&rec);
		t->record_exists = have;
		end_task(d, t, BG_OUT_DEADLETTER, bg_cmd_error_code(rc),
			 bg_cmd_error_text(rc));
		return;
	}
	bg_record_free(&rec);
	t->record_exists = have;
	if (t->cmd.action == BG_ACTION_RESUME &&
	    t->cmd.hdr[BG_HDR_TASK_GROUP_ID].len) {
		join_group(d, t); /* continues in start_running() */
		return;
	}
	start_running(d, t);
}

/* RUNNING write and into the dispatch queue. */
static void start_running(struct bg_daemon *d, struct bg_task *t)
{
	if (write_running(d, t, t->record_exists) != 0) {
		end_task(d, t, BG_OUT_FAILED, "INTERNAL",
			 "cannot build the execution record");
		return;
	}
	queue_push(d, t);
	bg_task_dispatch(d);
}

/* ---- dispatch_group joins (WIRE 6.7, "bygate decisions" 6 and 14) ----
 * One script on the group's slot: the child's result is stored under its
 * own message id (HSETNX) and the counter advances only when it is new,
 * so a duplicate callback never counts twice. The callback that completes
 * the join claims it (bygate_joined_by = its entry id) and resumes the
 * caller; a re-delivery of that same entry (crash before its finish)
 * resumes it again, any other callback is acknowledged and writes
 * nothing else (the caller's record is left as it is). Returns nil when
 * the group is unknown (a plain resume), else {run, completed, total}. */
static const char JOIN_LUA[] =
	"local total = redis.call('HGET', KEYS[1], 'total')\n"
	"if not total then return false end\n"
	"local completed\n"
	"if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then\n"
	"  completed = redis.call('HINCRBY', KEYS[1], 'completed', 1)\n"
	"  redis.call('EXPIRE', KEYS[2], 86400)\n"
	"else\n"
	"  completed = tonumber(redis.call('HGET', KEYS[1], 'completed'))\n"
	"end\n"
	"if completed >= tonumber(total) then\n"
	"  redis.call('HSETNX', KEYS[1], 'bygate_joined_by', ARGV[3])\n"
	"  if redis.call('HGET', KEYS[1], 'bygate_joined_by') == ARGV[3] then\n"
	"    return {1, completed, tonumber(total)} end\n"
	"end\n"
	"return {0, completed, tonumber(total)}\n";

static void on_group_results(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		t->finish_unknown = true; /* retried after reconnect */
		end_task(t->d, t, BG_OUT_FAILED, "JOIN",
			 "cannot read the group results");
		return;
	}
	struct bg_buf j = { 0 };
	bg_buf_puts(&j, "{");
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		struct bg_str v = { r->element[i + 1]->str,
				    r->element[i + 1]->len };
		if (!bg_json_valid(v.p, v.len))
			v = bg_str_c("null");
		if (i)
			bg_buf_puts(&j, ",");
		bg_json_escape(&j, r->element[i]->str, r->element[i]->len);
		bg_buf_puts(&j, ":");
		bg_buf_append(&j, v.p, v.len);
	}
	bg_buf_puts(&j, "}");
	free(t->group_results);
	t->group_results = bg_buf_steal(&j);
	start_running(t->d, t);
}

static void on_join(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	struct bg_daemon *d = t->d;
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		end_task(d, t, BG_OUT_FAILED, "JOIN",
			 r ? r->str : "Redis unavailable during the join");
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		start_running(d, t); /* unknown group: a plain resume */
		return;
	}
	struct bg_log_ids ids = bg_task_log_ids(t);
	if (r->element[0]->integer != 1) {
		bg_log_task(BG_LOG_DEBUG, &ids,
			    "group %.*s: %lld of %lld results; waiting for the "
			    "rest",
			    (int)t->cmd.hdr[BG_HDR_TASK_GROUP_ID].len,
			    t->cmd.hdr[BG_HDR_TASK_GROUP_ID].p,
			    r->element[1]->integer, r->element[2]->integer);
		end_task(d, t, BG_OUT_ACK_ONLY, NULL, NULL);
		return;
	}
	bg_log_task(BG_LOG_DEBUG, &ids, "group joined (%lld results): resuming",
		    r->element[2]->integer);
	char *rk = bg_dkey_s(d, BG_KEY_TASK_GROUP_RESULTS,
				  t->cmd.hdr[BG_HDR_TASK_GROUP_ID]);
	if (rk == NULL ||
	    bg_rconn_cmdv(d->wr, on_group_results, t, 0,
			  (const char *const[]){ "HGETALL", rk, NULL }) != 0)
		end_task(d, t, BG_OUT_FAILED, "JOIN",
			 "cannot read the group results");
	free(rk);
}

static void join_group(struct bg_daemon *d, struct bg_task *t)
{
	struct bg_cmd *c = &t->cmd;
	struct bg_str g = c->hdr[BG_HDR_TASK_GROUP_ID];
	char *gk = bg_dkey_s(d, BG_KEY_TASK_GROUP, g);
	char *rk = bg_dkey_s(d, BG_KEY_TASK_GROUP_RESULTS, g);
	/* The result of this child: its RESUME body's parts. */
	struct bg_buf res = { 0 };
	bg_buf_puts(&res, "{\"status\":");
	bg_json_escape(&res, c->status.p, c->status.len);
	bg_buf_puts(&res, ",\"reply_data\":");
	bg_buf_append(&res, c->reply_data.len ? c->reply_data.p : "null",
		      c->reply_data.len ? c->reply_data.len : 4);
	bg_buf_puts(&res, ",\"content\":");
	bg_buf_append(&res, c->content.len ? c->content.p : "\"\"",
		      c->content.len ? c->content.len : 2);
	bg_buf_puts(&res, ",\"metadata\":");
	bg_buf_append(&res, c->hdr[BG_HDR_METADATA].p,
		      c->hdr[BG_HDR_METADATA].len);
	bg_buf_puts(&res, ",\"extra_payload\":");
	bg_buf_append(&res, c->extra_payload.p, c->extra_payload.len);
	bg_buf_puts(&res, "}");
	/* keyed by the child's message id: the callback's parent_message_id */
	char child[BG_ID_MAX + 1];
	snprintf(child, sizeof(child), "%.*s",
		 (int)c->hdr[BG_HDR_PARENT_MESSAGE_ID].len,
		 c->hdr[BG_HDR_PARENT_MESSAGE_ID].p);
	if (gk == NULL || rk == NULL ||
	    bg_rconn_cmdv(d->wr, on_join, t, 0,
			  (const char *const[]){ "EVAL", JOIN_LUA, "2", gk, rk,
						 child, res.p, t->entry_id,
						 NULL }) != 0)
		end_task(d, t, BG_OUT_FAILED, "JOIN", "cannot run the join");
	free(gk);
	free(rk);
	bg_buf_free(&res);
}

/* The pickup read is two pipelined HGETs (msg_map, then the record): a
 * Lua script doing both in one round trip costs Redis five times the CPU
 * (measured: EVALSHA 8-10 us against 2 x 0.6 us), and Redis CPU is what the
 * whole host shares. A NULL reply (connection lost) re-sends the read after
 * the reconnect; a read has no side effect. */
static bool pickup_reply_ok(struct bg_task *t, redisReply *r)
{
	if (r == NULL) {
		t->state = BG_TASK_PICKUP;
		t->finish_unknown = true;
		return false;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "registry read refused (%s); retrying", r->str);
		t->finish_unknown = true;
		bg_rconn_drop(t->d->wr, "registry read refused");
		return false;
	}
	return true;
}

static void on_pickup_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	if (!pickup_reply_ok(t, r))
		return;
	if (r->type == REDIS_REPLY_STRING) {
		struct bg_str js = { r->str, r->len };
		decide(t->d, t, &js);
	} else {
		t->execution_id[0] = '\0'; /* msg_map without its record */
		decide(t->d, t, NULL);
	}
}

static bool id_usable(struct bg_str s);

static void on_pickup_map(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_task *t = priv;
	struct bg_daemon *d = t->d;
	if (!pickup_reply_ok(t, r))
		return;
	if (r->type != REDIS_REPLY_STRING || r->len >= sizeof(t->execution_id) ||
	    !id_usable((struct bg_str){ r->str, r->len })) {
		decide(d, t, NULL);
		return;
	}
	memcpy(t->execution_id, r->str, r->len);
	t->execution_id[r->len] = '\0';
	char field[64];
	snprintf(field, sizeof(field), "exec:%s", t->execution_id);
	if (bg_rconn_cmdv(d->wr, on_pickup_record, t, 0,
			  (const char *const[]){ "HGET", t->reg_key, field,
						 NULL }) != 0)
		t->finish_unknown = true;
}

static void send_pickup(struct bg_daemon *d, struct bg_task *t)
{
	char field[BG_FIELD_MAX];
	t->state = BG_TASK_PICKUP;
	t->finish_unknown = false;
	t->execution_id[0] = '\0';
	snprintf(field, sizeof(field), "msg_map:%s", t->message_id);
	if (bg_rconn_cmdv(d->wr, on_pickup_map, t, 0,
			  (const char *const[]){ "HGET", t->reg_key, field,
						 NULL }) != 0)
		t->finish_unknown = true; /* sent again when wr is back */
}

void bg_task_on_wr_up(struct bg_daemon *d)
{
	for (struct bg_task *t = d->all.next; t != &d->all; t = t->next)
		if (t->state == BG_TASK_PICKUP && t->finish_unknown)
			send_pickup(d, t);
	bg_finish_resend_unknown(d);
}

/* ---- accept ---- */

static bool id_usable(struct bg_str s)
{
	if (s.len == 0 || s.len > BG_ID_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7f)
			return false;
	return true;
}

static bool task_exists(const struct bg_daemon *d, const char *stream,
			const char *id)
{
	for (const struct bg_task *t = d->all.next; t != &d->all; t = t->next)
		if (strcmp(t->entry_id, id) == 0 && strcmp(t->stream, stream) == 0)
			return true;
	return false;
}

/* A task for entry `id` of stream `stream_idx`, linked into d->all; NULL
 * when out of memory or when this entry is already held here (a read reply
 * and a reconcile can both deliver it). */
static struct bg_task *new_task(struct bg_daemon *d, int stream_idx,
				const char *id)
{
	if (task_exists(d, d->streams[stream_idx], id))
		return NULL;
	struct bg_task *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL; /* stays pending in Redis; recovered from the PEL */
	t->d = d;
	t->tag = ++d->next_tag;
	t->slot = -1;
	t->stream_idx = stream_idx;
	t->stream = strdup(d->streams[stream_idx]);
	t->entry_id = strdup(id);
	t->picked_ms = bg_mono_ms();
	t->deliveries = 1;
	t->next = &d->all;
	t->prev = d->all.prev;
	d->all.prev->next = t;
	d->all.prev = t;
	d->n_tasks++;
	return t;
}

void bg_task_replay_finish(struct bg_daemon *d, int stream_idx,
			   const char *id, struct bg_str blob)
{
	struct bg_task *t = new_task(d, stream_idx, id);
	if (t == NULL)
		return;
	t->recovered = true;
	bg_finish_replay(d, t, blob);
}

static void accept_entry(struct bg_daemon *d, struct bg_task *t,
			 int stream_idx, const char *id, const char *data,
			 size_t data_len, bool has_data);

void bg_task_accept(struct bg_daemon *d, int stream_idx, const char *id,
		    const char *data, size_t data_len, bool has_data)
{
	struct bg_task *t = new_task(d, stream_idx, id);
	if (t)
		accept_entry(d, t, stream_idx, id, data, data_len, has_data);
}

/* An entry fetched again by recovery or reclaim: its delivery count is
 * known; the attempts already counted against it come from LMDB. */
void bg_task_accept_recovered(struct bg_daemon *d, int stream_idx,
			      const char *id, const char *data,
			      size_t data_len, bool has_data, int deliveries)
{
	struct bg_task *t = new_task(d, stream_idx, id);
	if (t == NULL)
		return;
	t->recovered = true;
	t->deliveries = deliveries;
	if (d->state) {
		struct bg_state_exec e;
		struct bg_buf store = { 0 };
		if (bg_state_exec_get(d->state, bg_str_c(d->streams[stream_idx]),
				      bg_str_c(id), &e, &store) == 0)
			t->failed_attempts = (int)e.interrupted;
		bg_buf_free(&store);
	}
	accept_entry(d, t, stream_idx, id, data, data_len, has_data);
}

static void accept_entry(struct bg_daemon *d, struct bg_task *t,
			 int stream_idx, const char *id, const char *data,
			 size_t data_len, bool has_data)
{
	const char *agent = stream_idx > 0
				    ? d->cfg->agent_types[stream_idx - 1].name
				    : "";
	t->agent_type = strdup(agent);
	if (!has_data) {
		end_task(d, t, BG_OUT_DEADLETTER, "no_data",
			 "stream entry has no `data` field");
		return;
	}
	t->data = malloc(data_len + 1);
	if (t->data == NULL) {
		end_task(d, t, BG_OUT_DEADLETTER, "too_large",
			 "entry too large for memory");
		return;
	}
	memcpy(t->data, data, data_len);
	t->data[data_len] = '\0';
	t->data_len = data_len;
	int rc = bg_cmd_scan(t->data, t->data_len, &t->cmd);
	if (rc) {
		end_task(d, t, BG_OUT_DEADLETTER, bg_cmd_error_code(rc),
			 bg_cmd_error_text(rc));
		return;
	}
	t->cmd_ok = true;
	struct bg_cmd *c = &t->cmd;
	if (c->need_message_id)
		bg_id_new(t->message_id, sizeof(t->message_id), "msg-");
	else
		snprintf(t->message_id, sizeof(t->message_id), "%.*s",
			 (int)c->hdr[BG_HDR_MESSAGE_ID].len,
			 c->hdr[BG_HDR_MESSAGE_ID].p);
	t->session_id = dup_str(c->hdr[BG_HDR_SESSION_ID]);
	t->trace_id = dup_str(c->hdr[BG_HDR_TRACE_ID]);
	t->source_agent_type = dup_str(c->hdr[BG_HDR_SOURCE_AGENT_TYPE]);
	t->parent_message_id = dup_str(c->hdr[BG_HDR_PARENT_MESSAGE_ID]);
	if (c->hdr[BG_HDR_TARGET_AGENT_TYPE].len) {
		free(t->agent_type);
		t->agent_type = dup_str(c->hdr[BG_HDR_TARGET_AGENT_TYPE]);
	}
	uint64_t age_limit = (uint64_t)d->cfg->max_entry_age_s * 1000;
	uint64_t now = (uint64_t)bg_redis_now_ms(d);
	if (entry_ms(id) + age_limit < now) {
		end_task(d, t, BG_OUT_DEADLETTER, "stale",
			 "entry is older than max_entry_age; not run");
		return;
	}
	if (c->action != BG_ACTION_ASK_AGENT && c->action != BG_ACTION_RESUME) {
		bg_control_handle(d, t);
		return;
	}
	if (!id_usable(bg_str_c(t->session_id)) ||
	    !id_usable(bg_str_c(t->message_id)) ||
	    c->hdr[BG_HDR_MESSAGE_ID].len > BG_ID_MAX ||
	    c->hdr[BG_HDR_SOURCE_AGENT_TYPE].len > BG_ID_MAX ||
	    c->hdr[BG_HDR_PARENT_MESSAGE_ID].len > BG_ID_MAX ||
	    !id_usable(bg_str_c(t->agent_type))) {
		end_task(d, t, BG_OUT_DEADLETTER, "invalid_id",
			 "session_id, message_id or target_agent_type is "
			 "empty, longer than 512 bytes or has control "
			 "characters (or source_agent_type or "
			 "parent_message_id is longer than 512 bytes)");
		return;
	}
	/* The handler is the one of the stream's agent type; events carry
	 * the header's target_agent_type, as in by-framework. A task routed
	 * to this worker directly names its type in the header. */
	t->handler_type = stream_idx > 0 ? agent : t->agent_type;
	t->has_source_agent = t->source_agent_type[0] != '\0' &&
			      c->action != BG_ACTION_RESUME;
	if (t->has_source_agent)
		snprintf(t->callback_to, sizeof(t->callback_to), "%s",
			 t->source_agent_type);
	t->reg_key = bg_dkey(d, BG_KEY_SESSION_REGISTRY, t->session_id);
	t->data_key = bg_dkey(d, BG_KEY_SESSION_DATA, t->session_id);
	if (t->reg_key == NULL || t->data_key == NULL) {
		end_task(d, t, BG_OUT_DEADLETTER, "invalid_id",
			 "cannot build the session keys");
		return;
	}
	send_pickup(d, t);
}

/* ---- dispatch ---- */

static const struct bg_agent_type_conf *find_type(const struct bg_daemon *d,
						  const char *name)
{
	return bg_config_agent_type(d->cfg, name);
}

/* The session workspace and this attempt's private directory, created by
 * bygated (never by the sandboxed child) after every id was validated
 * (workspace/workspace.h). A hostile id fails the task, creating nothing. */
static int prepare_workspace(struct bg_daemon *d, struct bg_task *t)
{
	char err[512];
	if (t->ws == NULL && (t->ws = calloc(1, sizeof(*t->ws))) == NULL) {
		end_task(d, t, BG_OUT_FAILED, "INTERNAL", "out of memory");
		return -1;
	}
	if (d->ws_cache == NULL) /* on failure: no cache, every task walks */
		(void)bg_ws_cache_new(BG_WS_CACHE_MAX, &d->ws_cache);
	int rc = bg_ws_prepare(d->ws_cache, d->cfg->workspace_dir,
			       bg_str_c(t->handler_type),
			       t->cmd.hdr[BG_HDR_USER_CODE],
			       bg_str_c(t->session_id),
			       bg_str_c(t->execution_id), (unsigned)t->attempt,
			       t->ws, err, sizeof(err));
	if (rc) {
		free(t->ws);
		t->ws = NULL;
		/* -EINVAL: a hostile or malformed id; -ELOOP/-ENOTDIR: a link
		 * or file planted in the tree; anything else: the host. */
		t->error_type = rc == -EINVAL ? "InvalidId" : "WorkspaceError";
		end_task(d, t, BG_OUT_FAILED,
			 rc == -EINVAL			   ? "INVALID_ID"
			 : rc == -ELOOP || rc == -ENOTDIR ? "WORKSPACE_CONFINEMENT"
							  : "WORKSPACE_ERROR",
			 err);
		return -1;
	}
	if (d->state) {
		int64_t now = bg_now_ms();
		struct bg_state_session ss = {
			.agent_type = bg_str_c(t->handler_type),
			.user_code = t->cmd.hdr[BG_HDR_USER_CODE],
			.session_id = bg_str_c(t->session_id),
			.path = bg_str_c(t->ws->rel_session),
			.created_ms = now,
			.last_used_ms = now,
			.bytes = -1,
		};
		bg_state_session_put(d->state, &ss);
	}
	return 0;
}

/* Remove the attempt's private directory (after the attempt). */
void bg_task_release_private(struct bg_daemon *d, struct bg_task *t)
{
	char err[512];
	if (t->ws == NULL || t->ws->private_dir[0] == '\0')
		return;
	if (bg_ws_remove_private(d->ws_cache, d->cfg->workspace_dir, t->ws,
				 err, sizeof(err)) != 0) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "cannot remove the task's private directory: %s",
			    err);
	}
	t->ws->private_dir[0] = '\0';
}

static int pack_task(struct bg_daemon *d, struct bg_task *t,
		     struct bg_buf *out)
{
	struct bg_str v[BG_TF__COUNT];
	struct bg_cmd *c = &t->cmd;
	v[BG_TF_AGENT_TYPE] = bg_str_c(t->handler_type);
	v[BG_TF_ACTION] = bg_str_c(bg_action_name(c->action));
	v[BG_TF_EXECUTION_ID] = bg_str_c(t->execution_id);
	v[BG_TF_MESSAGE_ID] = bg_str_c(t->message_id);
	v[BG_TF_SESSION_ID] = bg_str_c(t->session_id);
	v[BG_TF_TRACE_ID] = bg_str_c(t->trace_id);
	v[BG_TF_SOURCE_AGENT_TYPE] = bg_str_c(t->source_agent_type);
	v[BG_TF_PARENT_MESSAGE_ID] = bg_str_c(t->parent_message_id);
	v[BG_TF_TASK_GROUP_ID] = c->hdr[BG_HDR_TASK_GROUP_ID];
	v[BG_TF_USER_CODE] = c->hdr[BG_HDR_USER_CODE];
	v[BG_TF_USER_NAME] = c->hdr[BG_HDR_USER_NAME];
	v[BG_TF_METADATA] = c->hdr[BG_HDR_METADATA];
	v[BG_TF_BODY] = c->body;
	v[BG_TF_RESUMED] = bg_str_c(t->is_resumed ? "1" : "0");
	v[BG_TF_WORKSPACE] = bg_str_c(t->ws ? t->ws->session : "");
	v[BG_TF_PRIVATE_DIR] = bg_str_c(t->ws ? t->ws->private_dir : "");
	v[BG_TF_GROUP_RESULTS] = bg_str_c(t->group_results);
	v[BG_TF_TRACE_PARENT_SPAN_ID] = c->hdr[BG_HDR_TRACE_PARENT_SPAN_ID];
	v[BG_TF_LANGFUSE_PARENT_OBSERVATION_ID] =
		c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID];
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%d", t->attempt);
	v[BG_TF_ATTEMPT] = bg_str_c(attempt);
	(void)d;
	return bg_rec_pack(out, v, BG_TF__COUNT);
}

/* The in-flight mirror of DESIGN 6 (from dispatch until the finish is
 * applied), with the attempts counted against this entry. */
static void mirror_exec(struct bg_daemon *d, struct bg_task *t)
{
	if (d->state == NULL)
		return;
	struct bg_state_exec e = {
		.execution_id = bg_str_c(t->execution_id),
		.message_id = bg_str_c(t->message_id),
		.session_id = bg_str_c(t->session_id),
		.agent_type = bg_str_c(t->agent_type),
		.slot = t->slot,
		.pid = t->pid,
		.attempt = (uint32_t)t->attempt,
		.interrupted = (uint32_t)t->failed_attempts,
		.started_ms = bg_now_ms(),
		.first_seen_ms = bg_now_ms() - (bg_mono_ms() - t->picked_ms),
	};
	bg_state_exec_put(d->state, bg_str_c(t->stream), bg_str_c(t->entry_id),
			  &e);
}

static void publish_event(struct bg_daemon *d, struct bg_task *t,
			  const struct bg_event *ev);

/* A retried attempt first says so on the session stream (DESIGN 4.3):
 * "RETRY <n>" for the n-th retry, "RERUN <n>" for the n-th re-run of an
 * attempt interrupted by the death of a shared child (not counted). */
static void publish_retry_event(struct bg_daemon *d, struct bg_task *t,
				bool rerun)
{
	char text[32], uuid[33];
	snprintf(text, sizeof(text), rerun ? "RERUN %d" : "RETRY %d",
		 rerun ? t->reruns : t->attempt - 1);
	bg_uuid_hex(uuid, true);
	struct bg_event ev = { .kind = BG_EVENT_STATE,
			       .content = bg_str_c(text),
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	publish_event(d, t, &ev);
}

static void on_retry_due(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_task *t = arg;
	t->retry_pending = false;
	queue_push(t->d, t);
	bg_task_dispatch(t->d);
}

/* The attempt is over without a finish: its directory, child and timer
 * are released before it runs again. */
static void attempt_stopped(struct bg_daemon *d, struct bg_task *t)
{
	bg_task_release_private(d, t);
	t->slot = -1;
	if (t->timeout_ev) {
		evtimer_del(t->timeout_ev);
		event_free(t->timeout_ev);
		t->timeout_ev = NULL;
	}
	t->timed_out = false;
	t->signalled = false;
	t->events = t->event_bytes = 0; /* the caps are per attempt */
	t->events_capped = false;
}

/* Shared re-runs of one attempt before it must run alone: a task next to
 * others that keep getting killed is not re-run forever. */
#define BG_SHARED_RERUNS_MAX 3

/* The attempt was interrupted by the death of a child (or program) it
 * shared with other tasks and did not cause: run it again at once, without
 * counting an attempt, alone in a child when the culprit is unknown
 * (DESIGN 5: re-run one at a time before the crash counts). */
static void rerun_interrupted(struct bg_daemon *d, struct bg_task *t,
			      bool alone, const char *why)
{
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "attempt %d interrupted by the loss of a shared %s (%s); "
		    "re-run%s without counting it",
		    t->attempt, alone ? "child or program" : "child", why,
		    alone ? " alone" : "");
	attempt_stopped(d, t);
	t->reruns++;
	t->isolate = t->isolate || alone || t->reruns >= BG_SHARED_RERUNS_MAX;
	t->rerun_announce = true;
	if (d->stopping)
		return;
	queue_push_front(d, t);
}

/* The attempt failed (child death, timeout, retryable handler error): run
 * it again after the agent type's back-off while attempts remain. Returns
 * false when they are exhausted (the caller fails the task). */
static bool retry_attempt(struct bg_daemon *d, struct bg_task *t,
			  const char *why)
{
	const struct bg_agent_type_conf *tc = find_type(d, t->handler_type);
	int max = tc ? tc->max_attempts : 1;
	t->failed_attempts++;
	if (d->state)
		mirror_exec(d, t);
	if (t->failed_attempts >= max || d->draining || d->stopping)
		return false;
	int64_t ms = tc ? (int64_t)tc->retry_backoff_ms
			      << (t->failed_attempts - 1 > 10
					  ? 10
					  : t->failed_attempts - 1)
			: 0;
	if (ms > 600000)
		ms = 600000;
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "attempt %d of %d failed (%s); retrying in %lld ms",
		    t->failed_attempts, max, why, (long long)ms);
	d->n_retries++;
	bg_metrics_retry(d->metrics);
	attempt_stopped(d, t);
	t->state = BG_TASK_QUEUED;
	t->retry_pending = true;
	if (t->retry_ev == NULL)
		t->retry_ev = evtimer_new(d->base, on_retry_due, t);
	struct timeval tv = { (long)(ms / 1000), (long)(ms % 1000) * 1000 };
	evtimer_add(t->retry_ev, &tv);
	return true;
}

/* Grace after SIGTERM before the child's process group gets SIGKILL. */
#define BG_TIMEOUT_GRACE_MS 2000

static void read_wchan(int pid, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	FILE *f = fopen(path, "re");
	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)n, f) == NULL)
			out[0] = '\0';
		fclose(f);
	}
	if (out[0] == '\0' || strcmp(out, "0") == 0)
		snprintf(out, n, "running");
}

static void on_task_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_task *t = arg;
	struct bg_daemon *d = t->d;
	if (t->state != BG_TASK_RUNNING || t->slot < 0)
		return;
	struct bg_log_ids ids = bg_task_log_ids(t);
	if (t->timed_out) {
		bg_log_task(BG_LOG_INFO, &ids,
			    "task still running %d ms after %s; SIGKILL to the "
			    "child's process group",
			    BG_TIMEOUT_GRACE_MS,
			    t->shared ? "its cancel line" : "SIGTERM");
		t->signalled = true;
		bg_pool_signal(d->pool, t->slot, SIGKILL, "timed out");
		return;
	}
	t->timed_out = true;
	char wchan[64];
	read_wchan(t->pid, wchan, sizeof(wchan));
	/* A shared child runs other tasks: the program is told through the
	 * protocol first; only the kill after the grace ends them all. */
	bg_log_task(BG_LOG_INFO, &ids,
		    "task timed out after %lld ms (child wchan %s); %s",
		    (long long)(bg_mono_ms() - t->started_ms), wchan,
		    t->shared ? "cancel line to its program"
			      : "SIGTERM to the child's process group");
	if (t->shared) {
		bg_pool_cancel(d->pool, t->slot, t->tag, "timeout", "timeout");
	} else {
		t->signalled = true;
		bg_pool_signal(d->pool, t->slot, SIGTERM, "timed out");
	}
	struct timeval tv = { BG_TIMEOUT_GRACE_MS / 1000,
			      (BG_TIMEOUT_GRACE_MS % 1000) * 1000 };
	evtimer_add(t->timeout_ev, &tv);
}

static void arm_timeout(struct bg_daemon *d, struct bg_task *t);

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
static void fault_crash_on_content(struct bg_daemon *d, const struct bg_task *t)
{
	static const char *marker;
	static bool looked;
	if (!looked) {
		marker = getenv("BYGATE_FAULT_MARKER");
		looked = true;
	}
	if (marker == NULL || marker[0] == '\0' || t->data == NULL ||
	    memmem(t->data, t->data_len, marker, strlen(marker)) == NULL ||
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
static void started(struct bg_daemon *d, struct bg_task *t, int slot,
		    bool shared)
{
	t->state = BG_TASK_RUNNING;
	t->slot = slot;
	t->shared = shared;
	t->run_id++;
	t->pid = (int)bg_pool_pid(d->pool, slot);
	t->started_ms = bg_mono_ms();
	mirror_exec(d, t);
	if (t->rerun_announce) {
		t->rerun_announce = false;
		publish_retry_event(d, t, true);
	} else if (t->attempt > 1) {
		publish_retry_event(d, t, false);
	}
	arm_timeout(d, t);
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids, "task started (%s entry %s%s)",
		    bg_action_name(t->cmd.action), t->entry_id,
		    shared ? ", shared child" : "");
	fault_crash_on_content(d, t);
}

static void arm_timeout(struct bg_daemon *d, struct bg_task *t)
{
	const struct bg_agent_type_conf *tc = find_type(d, t->handler_type);
	if (tc == NULL || tc->timeout_ms <= 0)
		return;
	t->timeout_ev = evtimer_new(d->base, on_task_timeout, t);
	if (t->timeout_ev == NULL)
		return;
	struct timeval tv = { tc->timeout_ms / 1000,
			      (tc->timeout_ms % 1000) * 1000 };
	evtimer_add(t->timeout_ev, &tv);
}

/* How task t may share a child (bg_pool_pick): tasks of a persistent exec
 * agent type with max_inflight > 1 share up to that many, unless t must
 * run alone; everything else needs a child to itself. */
static void placement(const struct bg_daemon *d, const struct bg_task *t,
		      const struct bg_agent_type_conf *tc, int *group,
		      int *limit)
{
	*group = -1;
	*limit = 1;
	if (tc->handler == BG_HANDLER_EXEC && tc->mode != BG_EXEC_PER_TASK &&
	    tc->max_inflight > 1 && !t->isolate) {
		*group = (int)(tc - d->cfg->agent_types);
		*limit = tc->max_inflight;
	}
}

/* Take t out of the dispatch queue; prev is the task before it or NULL. */
static void queue_unlink(struct bg_daemon *d, struct bg_task *prev,
			 struct bg_task *t)
{
	if (prev)
		prev->qnext = t->qnext;
	else
		d->q_head = t->qnext;
	if (d->q_tail == t)
		d->q_tail = prev;
	t->qnext = NULL;
	d->n_queued--;
}

/* Hand queued task t (already out of the queue) to slot. */
static void dispatch_one(struct bg_daemon *d, struct bg_task *t, int slot,
			 int group, int limit, struct bg_buf *payload)
{
	t->attempt = t->failed_attempts + 1;
	bg_outbox_reset(t);
	if (prepare_workspace(d, t) != 0)
		return;
	bg_buf_reset(payload);
	int rc = pack_task(d, t, payload);
	if (rc == 0)
		rc = bg_pool_run(d->pool, slot, t->tag, group, limit, payload->p,
				 payload->len);
	if (rc) {
		end_task(d, t, BG_OUT_FAILED,
			 rc == -EMSGSIZE ? "PAYLOAD_TOO_LARGE" : "DISPATCH_FAILED",
			 rc == -EMSGSIZE ? "task larger than max_message_bytes"
					 : "task could not be handed to a child");
		return;
	}
	started(d, t, slot, limit > 1);
}

/* Place queued tasks in order. Tasks that need a child to themselves keep
 * their order among themselves; once one of them waits for an idle child,
 * tasks that can share are placed only next to tasks already running, so
 * the next child to empty is kept for it (no starvation either way). */
void bg_task_dispatch(struct bg_daemon *d)
{
	struct bg_buf payload = { 0 };
	bool waiting_alone = false;
	struct bg_task *prev = NULL, *next;
	for (struct bg_task *t = d->q_head; t; t = next) {
		next = t->qnext;
		const struct bg_agent_type_conf *tc =
			find_type(d, t->handler_type);
		int slot = -1, group = -1, limit = 1;
		if (tc && !t->cancel_requested) {
			placement(d, t, tc, &group, &limit);
			bool alone = limit <= 1;
			if (!(alone && waiting_alone))
				slot = bg_pool_pick(d->pool, group, limit,
						    waiting_alone);
			if (slot < 0) {
				waiting_alone = waiting_alone || alone;
				prev = t;
				continue;
			}
		}
		queue_unlink(d, prev, t);
		if (t->cancel_requested)
			finish_cancelled(d, t);
		else if (tc == NULL)
			end_task(d, t, BG_OUT_FAILED, "UNKNOWN_AGENT_TYPE",
				 "no handler is configured for this agent "
				 "type on this worker");
		else
			dispatch_one(d, t, slot, group, limit, &payload);
	}
	bg_buf_free(&payload);
}

void bg_task_on_idle(void *arg, int slot)
{
	(void)slot;
	struct bg_daemon *d = arg;
	bg_task_dispatch(d);
	bg_consume_kick(d);
}

/* ---- messages from the child ---- */

static void on_event_written(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	(void)priv;
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("event XADD refused: %s", r->str);
}

static bool event_kind(struct bg_str k, enum bg_event_kind *out)
{
	static const struct {
		const char *name;
		enum bg_event_kind kind;
	} kinds[] = { { "chunk", BG_EVENT_CHUNK },
		      { "state", BG_EVENT_STATE },
		      { "artifact", BG_EVENT_ARTIFACT },
		      { "sub_step", BG_EVENT_SUB_STEP } };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (bg_str_eq(k, kinds[i].name)) {
			*out = kinds[i].kind;
			return true;
		}
	return false;
}

void bg_event_ctx_of(const struct bg_task *t, struct bg_event_ctx *ctx)
{
	ctx->trace_id = bg_str_c(t->trace_id);
	ctx->session_id = bg_str_c(t->session_id);
	ctx->agent_type = bg_str_c(t->agent_type);
	ctx->message_id = bg_str_c(t->message_id);
	ctx->parent_message_id = bg_str_c(t->parent_message_id);
	ctx->is_sub_agent = t->has_source_agent;
}

static void handle_event(struct bg_daemon *d, struct bg_task *t,
			 const uint8_t *p, size_t len)
{
	struct bg_str f[BG_EF__COUNT];
	enum bg_event_kind kind;
	if (bg_rec_unpack(p, len, f, BG_EF__COUNT) ||
	    !event_kind(f[BG_EF_KIND], &kind)) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids, "malformed event record dropped");
		return;
	}
	t->events++;
	t->event_bytes += f[BG_EF_CONTENT].len;
	if (t->events > (uint64_t)d->cfg->max_events_per_task ||
	    t->event_bytes > (uint64_t)d->cfg->max_event_bytes_per_task) {
		if (!t->events_capped) {
			struct bg_log_ids ids = bg_task_log_ids(t);
			bg_log_task(BG_LOG_WARN, &ids,
				    "task exceeded max_events_per_task or "
				    "max_event_bytes_per_task; further events "
				    "dropped and the task will fail");
		}
		t->events_capped = true;
		return;
	}
	char uuid[33], sub_id[32];
	bg_uuid_hex(uuid, true);
	struct bg_event_ctx ctx;
	bg_event_ctx_of(t, &ctx);
	struct bg_event ev = { .kind = kind,
			       .content = f[BG_EF_CONTENT],
			       .event_type = f[BG_EF_EVENT_TYPE],
			       .content_type = f[BG_EF_CONTENT_TYPE],
			       .metadata = f[BG_EF_METADATA],
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	if (kind == BG_EVENT_SUB_STEP) {
		bg_id_new(sub_id, sizeof(sub_id), "msg-");
		ev.message_id = bg_str_c(sub_id);
	}
	struct bg_str et = bg_event_type_of(&ctx, &ev);
	if (!t->has_source_agent && bg_str_eq(et, "appStreamResponse"))
		t->end_marker_emitted = true;
	publish_event(d, t, &ev);
}

/* A streamed event goes out at once, outside the finish transaction. */
static void publish_event(struct bg_daemon *d, struct bg_task *t,
			  const struct bg_event *ev)
{
	struct bg_event_ctx ctx;
	bg_event_ctx_of(t, &ctx);
	struct bg_buf out = { 0 };
	if (bg_event_build(&out, &ctx, ev) == 0) {
		const char *argv[5] = { "XADD", t->data_key, "*", "data",
					out.p };
		size_t lens[5] = { 4, strlen(t->data_key), 1, 4, out.len };
		bg_rconn_cmd(d->wr, on_event_written, NULL, 0, 5, argv, lens);
		bg_expire_once(d, t->data_key);
	}
	bg_buf_free(&out);
}

static void end_timed_out(struct bg_daemon *d, struct bg_task *t,
			  const char *why);

/* Keep the result's raw JSON members (a retried attempt's are replaced). */
static void take_result(struct bg_task *t, const struct bg_str *f)
{
	struct {
		struct bg_buf *b;
		int f;
	} m[] = { { &t->content, BG_RF_CONTENT },
		  { &t->reply_data, BG_RF_REPLY_DATA },
		  { &t->result_metadata, BG_RF_METADATA },
		  { &t->extra_payload, BG_RF_EXTRA_PAYLOAD } };
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		bg_buf_reset(m[i].b);
		bg_buf_append(m[i].b, f[m[i].f].p, f[m[i].f].len);
	}
}

static void handle_result(struct bg_daemon *d, struct bg_task *t,
			  const uint8_t *p, size_t len)
{
	struct bg_str f[BG_RF__COUNT];
	if (bg_rec_unpack(p, len, f, BG_RF__COUNT)) {
		end_task(d, t, BG_OUT_FAILED, "PROTOCOL",
			 "the child sent a malformed result");
		return;
	}
	if (t->cancel_requested) {
		finish_cancelled(d, t); /* the handler saw the cancel flag */
		return;
	}
	if (t->timed_out) { /* it answered the timeout's cancel line */
		end_timed_out(d, t, "the handler stopped after its cancel "
				    "line");
		return;
	}
	if (t->events_capped) {
		end_task(d, t, BG_OUT_FAILED, "EVENT_LIMIT",
			 "the task exceeded max_events_per_task or "
			 "max_event_bytes_per_task");
		return;
	}
	take_result(t, f);
	if (f[BG_RF_ERROR].len) {
		char *why = dup_str(f[BG_RF_ERROR]);
		struct bg_str rv;
		bool retryable =
			bg_json_obj_get(f[BG_RF_METADATA], "retryable", &rv) ==
				0 &&
			bg_str_eq(rv, "true");
		if (bg_str_eq(f[BG_RF_INTERRUPTED], "1") && !t->isolate) {
			rerun_interrupted(d, t, true, why ? why : "failed");
			bg_task_dispatch(d); /* its child may be recycling */
		} else if (!(retryable &&
			   retry_attempt(d, t, why ? why : "failed"))) {
			/* The child's own explanation of a sandbox limit
			 * (child/taskproc.c): kept as the record's code. */
			struct bg_str ec;
			bool limit = bg_json_obj_get(f[BG_RF_METADATA],
						     "error_code", &ec) == 0 &&
				     bg_str_eq(ec, "\"RESOURCE_LIMIT\"");
			if (limit)
				t->error_type = "ResourceLimitExceeded";
			end_task(d, t, BG_OUT_FAILED,
				 limit ? "RESOURCE_LIMIT" : NULL, why);
		}
		free(why);
		return;
	}
	struct bg_str st = bg_status_normalize(f[BG_RF_STATUS]);
	t->status = dup_str(st);
	end_task(d, t, BG_OUT_RESULT, NULL, NULL);
}

void bg_task_on_message(void *arg, int slot, uint16_t kind, uint64_t tag,
			const uint8_t *payload, size_t len)
{
	(void)slot;
	struct bg_daemon *d = arg;
	struct bg_task *t = find_task(d, tag);
	if (t == NULL || t->state != BG_TASK_RUNNING || t->ending)
		return;
	if (kind == BG_REC_EVENT)
		handle_event(d, t, payload, len);
	else if (kind == BG_REC_CALL)
		bg_outbox_call(d, t, payload, len);
	else
		handle_result(d, t, payload, len);
}

/* FAILED/TIMEOUT, or a retry while attempts remain. */
static void end_timed_out(struct bg_daemon *d, struct bg_task *t,
			  const char *why)
{
	const struct bg_agent_type_conf *tc = find_type(d, t->handler_type);
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "task timed out after %d ms (timeout_ms of agent type %s); %s",
		 tc ? tc->timeout_ms : 0, t->handler_type, why);
	if (retry_attempt(d, t, "timeout"))
		return;
	t->error_type = "TaskTimeout";
	end_task(d, t, BG_OUT_FAILED, "TIMEOUT", msg);
}

/* The child of task t died: cancelled, timed out, retried or failed. */
static void child_lost(struct bg_daemon *d, struct bg_task *t,
		       const char *why)
{
	if (t->cancel_requested) {
		finish_cancelled(d, t);
		return;
	}
	if (t->timed_out) {
		end_timed_out(d, t, why);
		return;
	}
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_WARN, &ids, "attempt %d failed: %s",
		    t->failed_attempts + 1, why);
	if (retry_attempt(d, t, "child died"))
		return;
	t->error_type = "ChildProcessDied";
	if (t->failed_attempts > 1) {
		/* It killed its child on every attempt: a poison task. */
		char msg[600];
		snprintf(msg, sizeof(msg),
			 "the task's child process died in each of its %d "
			 "attempts (last: %s)",
			 t->failed_attempts, why);
		t->deadletter = true;
		end_task(d, t, BG_OUT_FAILED, "CHILD_DIED", msg);
		return;
	}
	end_task(d, t, BG_OUT_FAILED, "CHILD_DIED", why);
}

static struct bg_task *running_task(struct bg_daemon *d, uint64_t tag)
{
	struct bg_task *t = find_task(d, tag);
	return t && t->state == BG_TASK_RUNNING && !t->ending ? t : NULL;
}

/* A task whose own timeout or cancel signalled its child (a cancel line
 * still unanswered does not make it the cause of a crash). */
static bool caused_kill(const struct bg_task *t)
{
	return t->signalled;
}

void bg_task_on_child_lost(void *arg, int slot, const uint64_t *tags, int n,
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
		struct bg_task *t = running_task(d, tags[i]);
		culprit = culprit || (t && caused_kill(t));
	}
	for (int i = 0; i < n; i++) {
		struct bg_task *t = running_task(d, tags[i]);
		if (t == NULL)
			continue;
		/* A timed-out task ends TIMEOUT whatever happens next. */
		if (n == 1 || caused_kill(t) || t->timed_out ||
		    t->cancel_requested || (t->isolate && !culprit))
			child_lost(d, t, why);
		else
			rerun_interrupted(d, t, !culprit, why);
	}
	if (n > 1)
		bg_task_dispatch(d);
}
