/* supervisor/end.c - see end.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/kill.h"
#include "supervisor/log.h"
#include "wire/json.h"
#include "wire/record.h"

void bg_end(struct bg_daemon *d, struct bg_job *t, enum bg_end_kind kind,
	    const char *error_code, const char *why)
{
	bg_job_release_private(d, t);
	bg_kill_disarm(t);
	t->end.end_kind = kind;
	t->end.error_code = error_code;
	if (why) {
		free(t->end.error_message);
		t->end.error_message = strdup(why);
	}
	bg_finish(d, t);
}

void bg_end_ack(struct bg_daemon *d, struct bg_job *t)
{
	bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
}

void bg_end_deadletter(struct bg_daemon *d, struct bg_job *t, const char *code,
		       const char *why)
{
	bg_end(d, t, BG_END_DEADLETTER, code, why);
}

/* ---- cancellation (WIRE 6.10) ---- */

static void cancelled_now(struct bg_daemon *d, struct bg_job *t)
{
	/* An attempt stopped before it returned (or never run) leaves
	 * nothing behind: its outbox (calls, kv sets, posts, the XACKs of
	 * the RESUMEs it took) is dropped, as a crash's is. */
	bg_cmdlist_reset(&t->run.outbox);
	t->run.outbox_dropped = true;
	struct bg_log_ids ids = bg_job_log_ids(t);
	const char *why = t->run.cancel_reason ? t->run.cancel_reason
					       : "cancelled";
	bg_log_task(BG_LOG_INFO, &ids, "execution CANCELLED (%s)", why);
	free(t->end.status);
	t->end.status = strdup("CANCELLED");
	bg_buf_reset(&t->end.content);
	bg_buf_reset(&t->end.reply_data);
	bg_buf_puts(&t->end.reply_data, "{\"reason\":");
	bg_json_escape(&t->end.reply_data, why, strlen(why));
	bg_buf_puts(&t->end.reply_data, "}");
	bg_end(d, t, BG_END_RESULT, NULL, NULL);
}

static void on_parent_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	if (r && r->type == REDIS_REPLY_STRING) {
		struct bg_record rec = { 0 };
		if (bg_record_read(&rec, (struct bg_str){ r->str, r->len }) ==
		    0)
			t->run.parent_cancelled = rec.cancel_requested;
		bg_record_free(&rec);
	}
	cancelled_now(t->d, t);
}

static void on_parent_map(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_job *t = priv;
	char field[160];
	if (r && r->type == REDIS_REPLY_STRING && r->len < 100) {
		snprintf(field, sizeof(field), "exec:%.*s", (int)r->len,
			 r->str);
		if (bg_rconn_cmdv(t->d->wr, on_parent_record, t, 0,
				  (const char *const[]){ "HGET", t->id.reg_key,
							 field, NULL }) == 0)
			return;
	}
	cancelled_now(t->d, t);
}

void bg_end_cancelled(struct bg_daemon *d, struct bg_job *t)
{
	char field[BG_FIELD_MAX];
	if (t->state == BG_JOB_ENDING)
		return;
	bg_job_move(t, BG_JOB_ENDING); /* nothing else may end it meanwhile */
	/* Its child no longer runs it (and may run others): no signal from a
	 * late timer may reach that child. */
	t->run.slot = -1;
	bg_kill_disarm(t);
	if (!t->id.has_source_agent || t->id.parent_message_id[0] == '\0') {
		cancelled_now(d, t);
		return;
	}
	snprintf(field, sizeof(field), "msg_map:%s", t->id.parent_message_id);
	if (bg_rconn_cmdv(d->wr, on_parent_map, t, 0,
			  (const char *const[]){ "HGET", t->id.reg_key, field,
						 NULL }) != 0)
		cancelled_now(d, t);
}
