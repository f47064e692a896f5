/* supervisor/pickup.c - the first stage of a task (DESIGN 4, WIRE 6.4
 * steps 2-6): accept a stream entry (scan and validate its command), read
 * its execution record from the registry, and decide: run it (admit.c:
 * the claim of its execution, then the ready queue), replay a terminal
 * record, acknowledge a duplicate, cancel it unrun, join a dispatch_group
 * (join.c), hand a control command to control.c, or dead-letter it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/admit.h"
#include "supervisor/end.h"
#include "supervisor/entry_read.h"
#include "supervisor/finish_parts.h"
#include "supervisor/join.h"
#include "supervisor/log.h"
#include "supervisor/pickup.h"
#include "supervisor/ready.h"
#include "supervisor/schedule.h"
#include "wire/ids.h"
#include "wire/keys.h"

static uint64_t entry_ms(const char *id)
{
	return strtoull(id, NULL, 10);
}

/* ---- pickup decision (WIRE 6.4 steps 2-6) ---- */

/* `js` is the stored record of execution t->id.execution_id, or NULL when
 * the message id maps to no record. The record is examined (admit.c: a
 * terminal replay, a duplicate, a poison entry or a cancel end here), the
 * command validated, a task group joined, then the execution claimed. */
static void decide(struct bg_daemon *d, struct bg_job *t,
		   const struct bg_str *js)
{
	if (t->id.finish_begun) {
		/* its finish (finish_build.c) sends the rest kept */
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "entry %s: a finish of an earlier delivery was "
			    "applied in part (its session's part); it is "
			    "completed and the entry acknowledged, not run "
			    "again",
			    t->id.entry_id);
		bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
		return;
	}
	if (t->id.stale) {
		bg_end(d, t, BG_END_DEADLETTER, "stale",
		       "entry is older than max_entry_age; not run");
		return;
	}
	if (!bg_admit_examine(d, t, js))
		return;
	int rc = bg_cmd_validate_task(&t->id.cmd);
	if (rc) {
		bg_end(d, t, BG_END_DEADLETTER, bg_cmd_error_code(rc),
		       bg_cmd_error_text(rc));
		return;
	}
	if (t->id.cmd.action == BG_ACTION_RESUME &&
	    t->id.cmd.hdr[BG_HDR_TASK_GROUP_ID].len) {
		bg_join_group(d, t); /* continues in bg_admit() */
		return;
	}
	bg_admit(d, t);
}

/* The pickup read is two pipelined HGETs (msg_map, then the record): a
 * Lua script doing both in one round trip costs Redis five times the CPU
 * (measured: EVALSHA 8-10 us against 2 x 0.6 us), and Redis CPU is what the
 * whole host shares. A NULL reply (connection lost) re-sends the read after
 * the reconnect; a read has no side effect. */
static bool pickup_reply_ok(struct bg_job *t, redisReply *r)
{
	if (r == NULL) {
		bg_job_move(t, BG_JOB_PICKUP_LOST);
		return false;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		bg_job_refused(t, "registry read", r);
		bg_rconn_drop(t->d->wr, "registry read refused");
		return false;
	}
	return true;
}

static void on_pickup_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	if (!pickup_reply_ok(t, r))
		return;
	if (r->type == REDIS_REPLY_STRING) {
		struct bg_str js = { r->str, r->len };
		decide(t->d, t, &js);
	} else {
		t->id.execution_id[0] = '\0'; /* msg_map without its record */
		decide(t->d, t, NULL);
	}
}

static bool id_usable(struct bg_str s);

static void on_pickup_map(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	struct bg_daemon *d = t->d;
	if (!pickup_reply_ok(t, r))
		return;
	if (r->type != REDIS_REPLY_STRING ||
	    r->len >= sizeof(t->id.execution_id) ||
	    !id_usable((struct bg_str){ r->str, r->len })) {
		decide(d, t, NULL);
		return;
	}
	memcpy(t->id.execution_id, r->str, r->len);
	t->id.execution_id[r->len] = '\0';
	char field[64];
	snprintf(field, sizeof(field), "exec:%s", t->id.execution_id);
	if (bg_rconn_cmdv(d->wr, on_pickup_record, t, 0,
			  (const char *const[]){ "HGET", t->id.reg_key, field,
						 NULL }) != 0)
		bg_job_move(t, BG_JOB_PICKUP_LOST);
}

static void send_map_read(struct bg_daemon *d, struct bg_job *t)
{
	char field[BG_FIELD_MAX];
	snprintf(field, sizeof(field), "msg_map:%s", t->id.message_id);
	if (bg_rconn_cmdv(d->wr, on_pickup_map, t, 0,
			  (const char *const[]){ "HGET", t->id.reg_key, field,
						 NULL }) != 0)
		bg_job_move(t, BG_JOB_PICKUP_LOST); /* again when wr is back */
}

static void on_pickup_guard(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	if (!pickup_reply_ok(t, r))
		return;
	bg_buf_reset(&t->id.finish_rest);
	t->id.finish_begun = r->type == REDIS_REPLY_STRING;
	if (t->id.finish_begun && !(r->len == 1 && r->str[0] == '1') &&
	    bg_buf_append(&t->id.finish_rest, r->str, r->len) != 0) {
		bg_job_move(t, BG_JOB_PICKUP_LOST); /* read again */
		return;
	}
	send_map_read(t->d, t);
}

/* Under Cluster an entry taken over (recovery, reclaim) may have a finish
 * applied in part by its previous holder: the session's finish guard is
 * read first (finish_parts.h), with the rest of that finish, then the
 * record. */
static void send_pickup(struct bg_daemon *d, struct bg_job *t)
{
	bg_job_move(t, BG_JOB_PICKUP);
	t->id.execution_id[0] = '\0';
	t->id.finish_begun = false;
	char *guard = (t->id.recovered || t->id.released) &&
				      bg_rconn_clustered(d->wr)
			      ? bg_finish_parts_session_guard(d, t)
			      : NULL;
	if (guard == NULL) {
		send_map_read(d, t);
		return;
	}
	if (bg_rconn_cmdv(d->wr, on_pickup_guard, t, 0,
			  (const char *const[]){ "GET", guard, NULL }) != 0)
		bg_job_move(t, BG_JOB_PICKUP_LOST);
	free(guard);
}

void bg_pickup_again(struct bg_daemon *d, struct bg_job *t)
{
	send_pickup(d, t);
}

void bg_pickup_on_wr_up(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->state == BG_JOB_PICKUP_LOST)
			send_pickup(d, t);
}

/* ---- accept ---- */
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

/* A header id holding a control character (bg_cmd_scan's
 * BG_CMD_EINVALID_ID): dead-lettered before any of its ids is used, since
 * as a C string "victim\0evil" would be session "victim". The reason
 * names the field and quotes the id with its control bytes as \xNN (its
 * first 128 bytes), so it neither ends at a NUL nor forges a log line. */
static void refuse_id(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_buf why = { 0 };
	struct bg_str v = { "", 0 };
	int f = bg_cmd_bad_id(&t->id.cmd, &v);
	bg_buf_printf(&why, "%s \"", bg_hdr_name((enum bg_hdr_field)f));
	bg_log_escape(&why, v.p, v.len > 128 ? 128 : v.len, true);
	bg_buf_puts(&why, v.len > 128 ? "...\"" : "\"");
	bg_buf_puts(&why, " contains U+0000 or another control character "
			  "(0x00-0x1f, 0x7f): not an id; nothing run");
	bg_end(d, t, BG_END_DEADLETTER, "invalid_id",
	       why.p ? why.p : bg_cmd_error_text(BG_CMD_EINVALID_ID));
	bg_buf_free(&why);
}

void bg_pickup_replay_finish(struct bg_daemon *d, int stream_idx,
			     const char *id, struct bg_str blob)
{
	struct bg_job *t = bg_job_new(d, stream_idx, id);
	if (t == NULL)
		return;
	t->id.recovered = true;
	bg_finish_replay(d, t, blob);
}

static void accept_entry(struct bg_daemon *d, struct bg_job *t, int stream_idx,
			 const char *id, struct bg_entry_body *b);

void bg_pickup_accept(struct bg_daemon *d, int stream_idx, const char *id,
		      struct bg_entry_body *b, bool may_park)
{
	struct bg_job *t = bg_job_new(d, stream_idx, id);
	if (t) {
		t->id.may_park = may_park;
		accept_entry(d, t, stream_idx, id, b);
	}
	free(b->data); /* NULL when taken */
	b->data = NULL;
}

/* An entry fetched again by recovery or reclaim: its delivery count is
 * known; the attempts already counted against it come from LMDB. */
void bg_pickup_accept_recovered(struct bg_daemon *d, int stream_idx,
				const char *id, struct bg_entry_body *b,
				int deliveries, int alone_crashes)
{
	struct bg_job *t = bg_job_new(d, stream_idx, id);
	if (t == NULL) {
		free(b->data);
		b->data = NULL;
		return;
	}
	t->id.recovered = true;
	t->id.deliveries = deliveries;
	t->id.alone_crashes = alone_crashes;
	if (d->state) {
		struct bg_state_exec e;
		struct bg_buf store = { 0 };
		if (bg_state_exec_get(d->state,
				      bg_str_c(d->streams[stream_idx]),
				      bg_str_c(id), &e, &store) == 0)
			t->run.failed_attempts = (int)e.interrupted;
		bg_buf_free(&store);
	}
	accept_entry(d, t, stream_idx, id, b);
	free(b->data); /* NULL when taken */
	b->data = NULL;
}

/* An entry whose payload never reached bygated (entry_read.h). */
static void refuse_body(struct bg_daemon *d, struct bg_job *t,
			const struct bg_entry_body *b)
{
	char why[256];
	switch (b->kind) {
	case BG_ENTRY_NO_DATA:
		bg_end(d, t, BG_END_DEADLETTER, "no_data",
		       "stream entry has no `data` field");
		return;
	case BG_ENTRY_OVERSIZED:
		snprintf(why, sizeof(why),
			 "entry of %zu bytes is larger than "
			 "pool.max_message_bytes (%lld): not read, not run",
			 b->len, (long long)d->cfg->max_message_bytes);
		bg_end(d, t, BG_END_DEADLETTER, "PAYLOAD_TOO_LARGE", why);
		return;
	case BG_ENTRY_GONE:
		bg_end(d, t, BG_END_DEADLETTER, "entry_deleted",
		       "entry was deleted from the stream before it could "
		       "be read: its command is gone, nothing can run it");
		return;
	case BG_ENTRY_DEFERRED: /* consume.c fetches these first: a bug */
	case BG_ENTRY_WHOLE:
		break;
	}
	bg_warn("entry %s on %s came without its body: left pending for "
		"the reconcile",
		t->id.entry_id, t->id.stream);
	bg_job_free(d, t);
}

/* A fresh task of an agent-type stream joins the fleet's ready set
 * (ready.h) rather than wait here: when tasks of its stream already wait
 * there (it queues behind them, fairly), or when it cannot start at once
 * (t itself is counted in the places). */
/* A RESUME of an execution whose run is here: it waits here rather than
 * in the ready set, where that run can take it (resume_take.c) and where
 * the run's end wakes it (admit.c). */
static bool resumes_a_run_here(const struct bg_daemon *d,
			       const struct bg_job *t)
{
	if (t->id.cmd.action != BG_ACTION_RESUME || t->id.session_id == NULL)
		return false;
	for (const struct bg_job *u = d->all.next; u != &d->all; u = u->next)
		if (u != t && u->id.cmd_ok && u->state != BG_JOB_PICKUP &&
		    u->state != BG_JOB_PICKUP_LOST && !bg_job_finishing(u) &&
		    u->id.session_id &&
		    strcmp(u->id.message_id, t->id.message_id) == 0 &&
		    strcmp(u->id.session_id, t->id.session_id) == 0)
			return true;
	return false;
}

static bool should_park(struct bg_daemon *d, const struct bg_job *t)
{
	if (!t->id.may_park || !bg_ready_enabled(d) || t->id.stream_idx < 1 ||
	    t->id.recovered || resumes_a_run_here(d, t) ||
	    bg_schedule_keeps_primer(d, t))
		return false;
	return bg_ready_maybe_waiting(d, t->id.stream_idx) ||
	       bg_schedule_free_places(d, t->id.stream_idx) < 0;
}

static void accept_entry(struct bg_daemon *d, struct bg_job *t, int stream_idx,
			 const char *id, struct bg_entry_body *b)
{
	const char *agent =
		stream_idx > 0 ? d->cfg->agent_types[stream_idx - 1].name : "";
	t->id.agent_type = strdup(agent);
	if (b->kind != BG_ENTRY_WHOLE) {
		refuse_body(d, t, b);
		return;
	}
	t->id.data = b->data; /* taken over */
	t->id.data_len = b->len;
	b->data = NULL;
	bg_entry_charge(d, t);
	int rc = bg_cmd_scan(t->id.data, t->id.data_len, &t->id.cmd);
	if (rc == BG_CMD_EINVALID_ID) {
		refuse_id(d, t);
		return;
	}
	if (rc) {
		bg_end(d, t, BG_END_DEADLETTER, bg_cmd_error_code(rc),
		       bg_cmd_error_text(rc));
		return;
	}
	t->id.cmd_ok = true;
	struct bg_cmd *c = &t->id.cmd;
	if (c->need_message_id)
		bg_id_new(t->id.message_id, sizeof(t->id.message_id), "msg-");
	else
		snprintf(t->id.message_id, sizeof(t->id.message_id), "%.*s",
			 (int)c->hdr[BG_HDR_MESSAGE_ID].len,
			 c->hdr[BG_HDR_MESSAGE_ID].p);
	t->id.session_id = bg_str_dup(c->hdr[BG_HDR_SESSION_ID]);
	t->id.trace_id = bg_str_dup(c->hdr[BG_HDR_TRACE_ID]);
	t->id.source_agent_type = bg_str_dup(c->hdr[BG_HDR_SOURCE_AGENT_TYPE]);
	t->id.parent_message_id = bg_str_dup(c->hdr[BG_HDR_PARENT_MESSAGE_ID]);
	if (c->hdr[BG_HDR_TARGET_AGENT_TYPE].len) {
		free(t->id.agent_type);
		t->id.agent_type = bg_str_dup(c->hdr[BG_HDR_TARGET_AGENT_TYPE]);
	}
	uint64_t age_limit = (uint64_t)d->cfg->max_entry_age_s * 1000;
	uint64_t now = (uint64_t)bg_redis_now_ms(d);
	/* under Cluster, a recovered task's finish may have begun: its
	 * guard is read first, then a stale entry is dead-lettered */
	t->id.stale = entry_ms(id) + age_limit < now;
	bool task = c->action == BG_ACTION_ASK_AGENT ||
		    c->action == BG_ACTION_RESUME;
	if (t->id.stale &&
	    !(task && t->id.recovered && bg_rconn_clustered(d->wr))) {
		bg_end(d, t, BG_END_DEADLETTER, "stale",
		       "entry is older than max_entry_age; not run");
		return;
	}
	if (c->action != BG_ACTION_ASK_AGENT && c->action != BG_ACTION_RESUME) {
		bg_control_handle(d, t);
		return;
	}
	if (!id_usable(bg_str_c(t->id.session_id)) ||
	    !id_usable(bg_str_c(t->id.message_id)) ||
	    c->hdr[BG_HDR_MESSAGE_ID].len > BG_ID_MAX ||
	    c->hdr[BG_HDR_SOURCE_AGENT_TYPE].len > BG_ID_MAX ||
	    c->hdr[BG_HDR_PARENT_MESSAGE_ID].len > BG_ID_MAX ||
	    !id_usable(bg_str_c(t->id.agent_type))) {
		bg_end(d, t, BG_END_DEADLETTER, "invalid_id",
		       "session_id, message_id or target_agent_type is "
		       "empty, longer than 512 bytes or has control "
		       "characters (or source_agent_type or "
		       "parent_message_id is longer than 512 bytes)");
		return;
	}
	/* The handler is the one of the stream's agent type; events carry
	 * the header's target_agent_type, as in by-framework. A task routed
	 * to this worker directly names its type in the header. */
	t->id.handler_type = stream_idx > 0 ? agent : t->id.agent_type;
	bg_lane_of(d->cfg, c, t->id.handler_type, t->run.lane,
		   sizeof(t->run.lane), &t->run.priority);
	t->run.resumes = c->action == BG_ACTION_RESUME;
	t->run.role = bg_lane_role(c);
	if (!t->id.stale && should_park(d, t)) {
		bg_ready_park(d, t);
		return;
	}
	t->id.has_source_agent = t->id.source_agent_type[0] != '\0' &&
				 c->action != BG_ACTION_RESUME;
	if (t->id.has_source_agent)
		snprintf(t->id.callback_to, sizeof(t->id.callback_to), "%s",
			 t->id.source_agent_type);
	t->id.reg_key = bg_dkey(d, BG_KEY_SESSION_REGISTRY, t->id.session_id);
	t->id.data_key = bg_dkey(d, BG_KEY_SESSION_DATA, t->id.session_id);
	if (t->id.reg_key == NULL || t->id.data_key == NULL) {
		bg_end(d, t, BG_END_DEADLETTER, "invalid_id",
		       "cannot build the session keys");
		return;
	}
	send_pickup(d, t);
}
