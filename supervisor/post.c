/* supervisor/post.c - resume_later: a handler posts a RESUME to an
 * execution of its own session (itself: a timer or wake-up; another: by
 * its message id, whose record is read live: refused when there is none
 * or it has ended). The RESUME (wire/post.h) goes through the outbox:
 * XADDed in the attempt's finish transaction when due at once, else
 * ZADDed there to the target agent type's timers (timers.h), which a
 * bygated of the fleet sends when due (or drops when the target has ended
 * by then). A retried attempt therefore never posts twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "supervisor/post.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/post.h"
#include "wire/record.h"

#define S(s) bg_str_c(s)

/* A post waiting for its target's record. */
struct post {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id;
	char id[32];
	json_t *content;
	int64_t delay_ms;
	char target[BG_ID_MAX + 1]; /* the target's message id */
	char *reg_key;
	bool have_exec; /* msg_map read; the record's read is in flight */
};

static void post_free(struct post *p)
{
	json_decref(p->content);
	free(p->reg_key);
	free(p);
}

/* The header's metadata: the poster's lane and priority, nothing else. */
static char *post_metadata(const struct bg_job *t)
{
	json_t *md = json_object();
	bg_outbox_inherit_schedule(md, t);
	char *txt = json_dumps(md, JSON_COMPACT);
	json_decref(md);
	return txt;
}

/* The RESUME to (mid, type, trace) into t's outbox, due after delay_ms;
 * then the handler's answer. */
static void post_write(struct bg_daemon *d, struct bg_job *t, const char *id,
		       json_t *content, int64_t delay_ms, const char *mid,
		       const char *type, const char *trace)
{
	char post_id[32];
	bg_id_new(post_id, sizeof(post_id), "post-");
	int64_t due = bg_redis_now_ms(d) + delay_ms;
	char *ctxt = json_is_string(content)
			     ? NULL
			     : json_dumps(content, JSON_COMPACT);
	char *md = post_metadata(t);
	struct bg_post p = {
		.h = {
			.message_id = S(mid),
			.session_id = S(t->id.session_id),
			.trace_id = S(trace && *trace ? trace : t->id.trace_id),
			.source_agent_type = S(""),
			.target_agent_type = S(type),
			.parent_message_id = S(t->id.message_id),
			.task_group_id = S(""),
			.user_code = t->id.cmd.hdr[BG_HDR_USER_CODE],
			.user_name = t->id.cmd.hdr[BG_HDR_USER_NAME],
			.metadata = S(md),
		},
		.content = ctxt ? S(ctxt)
				: (struct bg_str){ json_string_value(content),
						   json_string_length(content) },
		.content_is_json = ctxt != NULL,
		.from_message_id = S(t->id.message_id),
		.post_id = S(post_id),
		.due_ms = due,
	};
	struct bg_buf entry = { 0 };
	enum bg_key_kind kind = delay_ms > 0 ? BG_KEY_TIMERS
					     : BG_KEY_AGENT_TYPE_CTRL;
	char *key = bg_dkey(d, kind, type);
	int rc = md && (ctxt || json_is_string(content)) && key
			 ? bg_post_resume(&entry, &p)
			 : -1;
	free(ctxt);
	free(md);
	if (rc != 0) {
		free(key);
		bg_outbox_reply_error(d, t, id, "INTERNAL",
				      "resume_later: the RESUME could not be "
				      "built");
		return;
	}
	char due_s[24];
	snprintf(due_s, sizeof(due_s), "%lld", (long long)due);
	if (delay_ms > 0)
		BG_OUT(t, S("ZADD"), S(key), S(due_s), bg_outbox_bytes(&entry));
	else
		BG_OUT(t, S("XADD"), S(key), S("*"), S("data"),
		       bg_outbox_bytes(&entry));
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids, "resume_later %s (%s) in %lld ms", mid,
		    type, (long long)delay_ms);
	bg_buf_free(&entry);
	free(key);
	bg_outbox_reply(d, t, id,
			json_pack("{s:s,s:I,s:s,s:s}", "status", "POSTED",
				  "due_ms", (json_int_t)due, "message_id", mid,
				  "post_id", post_id));
}

/* ---- another execution: msg_map, then its record ---- */

static void on_read(struct bg_rconn *c, redisReply *r, void *priv);

static int post_read(struct post *p, const char *field)
{
	return bg_rconn_cmdv(p->d->ctl, on_read, p, 0,
			     (const char *const[]){ "HGET", p->reg_key, field,
						    NULL });
}

static void not_found(struct post *p, struct bg_job *t)
{
	char msg[BG_ID_MAX + 96];
	snprintf(msg, sizeof(msg),
		 "resume_later: no execution of message %s in this session",
		 p->target);
	bg_outbox_reply_error(p->d, t, p->id, "NOT_FOUND", msg);
}

static void on_read(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct post *p = priv;
	struct bg_job *t = bg_outbox_task_of(p->d, p->tag, p->run_id);
	if (t == NULL) {
		post_free(p);
		return;
	}
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		bg_outbox_reply_error(p->d, t, p->id, "UNAVAILABLE",
				      "Redis unavailable");
		post_free(p);
		return;
	}
	if (r->type != REDIS_REPLY_STRING) {
		not_found(p, t);
		post_free(p);
		return;
	}
	if (!p->have_exec) { /* msg_map:<mid> -> execution id */
		char field[BG_ID_MAX + 16];
		snprintf(field, sizeof(field), "exec:%.*s",
			 (int)(r->len < BG_ID_MAX ? r->len : BG_ID_MAX),
			 r->str);
		p->have_exec = true;
		if (post_read(p, field) != 0) {
			bg_outbox_reply_error(p->d, t, p->id, "UNAVAILABLE",
					      "Redis unavailable");
			post_free(p);
		}
		return;
	}
	json_t *rec = json_loadb(r->str, r->len, 0, NULL);
	const char *type =
		bg_arg_name(json_object_get(rec, "target_agent_type"));
	const char *trace = bg_arg_name(json_object_get(rec, "trace_id"));
	const char *status = json_string_value(json_object_get(rec, "status"));
	if (type == NULL || !*type)
		bg_outbox_reply_error(p->d, t, p->id, "NOT_FOUND",
				      "resume_later: the execution's record "
				      "names no agent type");
	else if (status && bg_status_is_terminal(S(status)))
		bg_outbox_reply_error(p->d, t, p->id, "ALREADY_FINISHED",
				      "resume_later: the execution has ended");
	else
		post_write(p->d, t, p->id, p->content, p->delay_ms, p->target,
			   type, trace);
	json_decref(rec);
	post_free(p);
}

/* WIRE 2.3: a non-blank string, a non-empty list, or an object. */
static bool content_ok(const json_t *content)
{
	if (json_is_string(content)) {
		const char *s = json_string_value(content);
		for (size_t i = 0; i < json_string_length(content); i++)
			if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
			    s[i] != '\r')
				return true;
		return false;
	}
	return (json_is_array(content) && json_array_size(content) > 0) ||
	       json_is_object(content);
}

void bg_post_resume_later(struct bg_daemon *d, struct bg_job *t, const char *id,
			  json_t *args)
{
	json_t *mv = json_object_get(args, "message_id");
	json_t *dv = json_object_get(args, "delay_ms");
	json_t *content = json_object_get(args, "content");
	const char *mid = json_is_null(mv) ? "" : bg_arg_name(mv);
	int64_t delay = dv ? (int64_t)json_integer_value(dv) : 0;
	if (mv == NULL)
		mid = "";
	if (mid == NULL || strlen(mid) > BG_ID_MAX) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "resume_later: message_id must be a "
				      "string of at most 512 bytes");
		return;
	}
	if ((dv && !json_is_integer(dv)) || !bg_post_delay_ok(delay)) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "resume_later: delay_ms must be an "
				      "integer from 0 to 604800000 (7 days)");
		return;
	}
	if (!content_ok(content)) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "resume_later: content must be a "
				      "non-blank string, a non-empty array or "
				      "an object");
		return;
	}
	if (!*mid || strcmp(mid, t->id.message_id) == 0) {
		post_write(d, t, id, content, delay, t->id.message_id,
			   t->id.agent_type, t->id.trace_id);
		return;
	}
	struct post *p = calloc(1, sizeof(*p));
	char field[BG_ID_MAX + 16];
	snprintf(field, sizeof(field), "msg_map:%s", mid);
	if (p == NULL || (p->reg_key = strdup(t->id.reg_key)) == NULL) {
		free(p);
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	p->d = d;
	p->tag = t->tag;
	p->run_id = t->run.run_id;
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->target, sizeof(p->target), "%s", mid);
	p->content = json_incref(content);
	p->delay_ms = delay;
	if (post_read(p, field) != 0) {
		post_free(p);
		bg_outbox_reply_error(d, t, id, "UNAVAILABLE",
				      "Redis unavailable");
	}
}
