/* supervisor/join.c - the RESUME that completes a dispatch_group (WIRE
 * 6.7, "bygate decisions" 6 and 14): the child's result is counted once,
 * the callback that completes the group resumes the caller with every
 * result (bg_admit), any other is acknowledged. */
#include <stdio.h>
#include <stdlib.h>

#include "supervisor/admit.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/join.h"
#include "supervisor/log.h"
#include "wire/json.h"
#include "wire/keys.h"

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
	struct bg_job *t = priv;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		bg_end(t->d, t, BG_END_FAILED, "JOIN",
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
	free(t->id.group_results);
	t->id.group_results = bg_buf_steal(&j);
	bg_admit(t->d, t);
}

static void on_join(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	struct bg_daemon *d = t->d;
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		bg_end(d, t, BG_END_FAILED, "JOIN",
		       r ? r->str : "Redis unavailable during the join");
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
		bg_admit(d, t); /* unknown group: a plain resume */
		return;
	}
	struct bg_log_ids ids = bg_job_log_ids(t);
	if (r->element[0]->integer != 1) {
		bg_log_task(BG_LOG_DEBUG, &ids,
			    "group %.*s: %lld of %lld results; waiting for the "
			    "rest",
			    (int)t->id.cmd.hdr[BG_HDR_TASK_GROUP_ID].len,
			    t->id.cmd.hdr[BG_HDR_TASK_GROUP_ID].p,
			    r->element[1]->integer, r->element[2]->integer);
		bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
		return;
	}
	bg_log_task(BG_LOG_DEBUG, &ids, "group joined (%lld results): resuming",
		    r->element[2]->integer);
	char *rk = bg_dkey_s(d, BG_KEY_TASK_GROUP_RESULTS,
			     t->id.cmd.hdr[BG_HDR_TASK_GROUP_ID]);
	if (rk == NULL ||
	    bg_rconn_cmdv(d->wr, on_group_results, t, 0,
			  (const char *const[]){ "HGETALL", rk, NULL }) != 0)
		bg_end(d, t, BG_END_FAILED, "JOIN",
		       "cannot read the group results");
	free(rk);
}

void bg_join_group(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_cmd *c = &t->id.cmd;
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
						 child, res.p, t->id.entry_id,
						 NULL }) != 0)
		bg_end(d, t, BG_END_FAILED, "JOIN", "cannot run the join");
	free(gk);
	free(rk);
	bg_buf_free(&res);
}
