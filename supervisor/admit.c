/* supervisor/admit.c - the last step of a pickup that runs (WIRE 6.4
 * step 6): the execution record is written RUNNING (spliced into the
 * stored bytes, or built new with its msg_map), pipelined and not waited
 * for, and the job joins the ready queue (schedule.c places it). */
#include <stdio.h>
#include <string.h>

#include "supervisor/admit.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/log.h"
#include "wire/record.h"

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

static int write_running(struct bg_daemon *d, struct bg_job *t, bool existing)
{
	int64_t now = bg_now_ms();
	int rc;
	struct bg_buf out = { 0 };
	if (existing) {
		struct bg_record_update u = { .status = bg_str_c("RUNNING"),
					      .worker_id =
						      bg_str_c(d->worker_id),
					      .now_ms = now };
		rc = bg_record_update(&out, bg_str_c(t->id.record.p), &u);
	} else {
		struct bg_record_new n = {
			.execution_id = bg_str_c(t->id.execution_id),
			.message_id = bg_str_c(t->id.message_id),
			.session_id = bg_str_c(t->id.session_id),
			.trace_id = bg_str_c(t->id.trace_id),
			.parent_message_id = bg_str_c(t->id.parent_message_id),
			.worker_id = bg_str_c(d->worker_id),
			.target_agent_type = bg_str_c(t->id.agent_type),
			.stream_name = bg_str_c(t->id.stream),
			.redis_message_id = bg_str_c(t->id.entry_id),
			.cancel_reason = bg_str_c(""),
			.now_ms = now,
		};
		rc = bg_record_build_running(&out, &n);
	}
	if (rc) {
		bg_buf_free(&out);
		return rc;
	}
	bg_buf_free(&t->id.record);
	t->id.record = out;
	char field[64], mapf[BG_FIELD_MAX];
	snprintf(field, sizeof(field), "exec:%s", t->id.execution_id);
	snprintf(mapf, sizeof(mapf), "msg_map:%s", t->id.message_id);
	const char *argv[6] = { "HSET", t->id.reg_key,
				field,	t->id.record.p,
				mapf,	t->id.execution_id };
	size_t lens[6] = { 4,
			   strlen(t->id.reg_key),
			   strlen(field),
			   t->id.record.len,
			   strlen(mapf),
			   strlen(t->id.execution_id) };
	bg_rconn_cmd(d->wr, on_running_written, NULL, 0, existing ? 4 : 6, argv,
		     lens);
	bg_expire_once(d, t->id.reg_key);
	t->id.record_exists = true;
	bg_stats_update(d, (struct bg_str){ t->id.record.p, t->id.record.len },
			t->id.execution_id,
			t->id.prev_status[0] ? t->id.prev_status : NULL,
			"RUNNING", false, emit_wr, d);
	snprintf(t->id.prev_status, sizeof(t->id.prev_status), "RUNNING");
	return 0;
}

void bg_admit(struct bg_daemon *d, struct bg_job *t)
{
	if (write_running(d, t, t->id.record_exists) != 0) {
		bg_end(d, t, BG_END_FAILED, "INTERNAL",
		       "cannot build the execution record");
		return;
	}
	bg_job_enqueue(d, t); /* placed at the end of the loop turn */
}
