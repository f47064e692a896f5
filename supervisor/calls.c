/* supervisor/calls.c - the operations a handler asks bygated for
 * (BG_REC_CALL, ipc/record.h), each answered by exactly one REPLY: kv
 * get/set (session kv in Redis; reads live, writes through the outbox),
 * call_agent (its route is route.c), dispatch_group, ask_user,
 * resume_later (post.c), cancel_call and agent_types_served
 * (cancel_call.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bygate/handler.h"
#include "ipc/record.h"
#include "supervisor/calls.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/cancel_call.h"
#include "supervisor/outbox.h"
#include "supervisor/resume_take.h"
#include "supervisor/post.h"
#include "supervisor/route.h"
#include "supervisor/trace.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/keys.h"

#define S(s) bg_str_c(s)
#define KV_MAX_VALUE (64 * 1024)
#define KV_MAX_KEY 256

/* ---- kv (DESIGN 6: session kv in Redis, written through the outbox) ---- */

struct kv_read {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id;
	char id[32];
	char *key;
};

/* A read of one of the session's keys (kind) for operation `id`, its
 * answer looked up again by tag and run: NULL (answered: no memory). */
static struct kv_read *session_read(struct bg_daemon *d, struct bg_job *t,
				    const char *id, enum bg_key_kind kind)
{
	char *key = bg_dkey_s(d, kind, S(t->id.session_id));
	struct kv_read *p = calloc(1, sizeof(*p));
	if (key == NULL || p == NULL) {
		free(key);
		free(p);
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return NULL;
	}
	*p = (struct kv_read){ d, t->tag, t->run.run_id, "", key };
	snprintf(p->id, sizeof(p->id), "%s", id);
	return p;
}

static void session_read_send(struct bg_daemon *d, struct bg_job *t,
			      struct kv_read *p, bg_rconn_reply_fn fn,
			      const char *const *argv)
{
	if (bg_rconn_cmdv(d->wr, fn, p, 0, argv) != 0) {
		bg_outbox_reply_error(d, t, p->id, "UNAVAILABLE",
				      "Redis unavailable");
		free(p->key);
		free(p);
	}
}

static void on_kv_get(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct kv_read *p = priv;
	struct bg_job *t = bg_outbox_task_of(p->d, p->tag, p->run_id);
	if (t) {
		json_t *v = NULL;
		if (r && r->type == REDIS_REPLY_STRING)
			v = json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL);
		if (r == NULL)
			bg_outbox_reply(p->d, t, p->id,
					json_pack("{s:s,s:s}", "error",
						  "Redis unavailable",
						  "error_code", "UNAVAILABLE"));
		else
			bg_outbox_reply(p->d, t, p->id,
					json_pack("{s:b,s:o}", "found",
						  v != NULL, "value",
						  v ? v : json_null()));
	}
	free(p->key);
	free(p);
}

static void kv_get(struct bg_daemon *d, struct bg_job *t, const char *id,
		   json_t *args)
{
	const char *k = bg_arg_name(json_object_get(args, "key"));
	if (k == NULL || !*k || strlen(k) > KV_MAX_KEY) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "kv_get needs a non-empty key of at "
				      "most 256 bytes");
		return;
	}
	json_t *own = t->run.kv ? json_object_get(t->run.kv, k) : NULL;
	if (own) { /* this attempt's own buffered set */
		bg_outbox_reply(d, t, id,
				json_pack("{s:b,s:O}", "found", 1, "value",
					  own));
		return;
	}
	struct kv_read *p = session_read(d, t, id, BG_KEY_SESSION_KV);
	if (p)
		session_read_send(d, t, p, on_kv_get,
				  (const char *const[]){ "HGET", p->key, k,
							 NULL });
}

/* ---- the session's conversation (docs/history.md) ---- */

static void on_history(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct kv_read *p = priv;
	struct bg_job *t = bg_outbox_task_of(p->d, p->tag, p->run_id);
	if (t && (r == NULL || r->type != REDIS_REPLY_ARRAY)) {
		bg_outbox_reply(p->d, t, p->id,
				json_pack("{s:s,s:s}", "error",
					  "Redis unavailable", "error_code",
					  "UNAVAILABLE"));
	} else if (t) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < r->elements; i++) {
			const redisReply *e = r->element[i];
			json_t *m = e->type == REDIS_REPLY_STRING
					    ? json_loadb(e->str, e->len,
							 JSON_ALLOW_NUL, NULL)
					    : NULL;
			if (json_is_object(m))
				json_array_append_new(a, m);
			else /* not written by bygate: skipped */
				json_decref(m);
		}
		bg_outbox_reply(p->d, t, p->id,
				json_pack("{s:o}", "messages",
					  a ? a : json_array()));
	}
	free(p->key);
	free(p);
}

static void history(struct bg_daemon *d, struct bg_job *t, const char *id,
		    json_t *args)
{
	json_t *l = json_object_get(args, "limit");
	json_int_t limit = l ? json_integer_value(l) : 20;
	if ((l && !json_is_integer(l)) || limit < 1 ||
	    limit > BG_HISTORY_READ_MAX) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "history's limit must be an integer of "
				      "1-1000");
		return;
	}
	if (d->cfg->history_backend != BG_HISTORY_REDIS) {
		bg_outbox_reply(d, t, id, json_pack("{s:[]}", "messages"));
		return;
	}
	char from[24];
	snprintf(from, sizeof(from), "-%lld", (long long)limit);
	struct kv_read *p = session_read(d, t, id, BG_KEY_SESSION_HISTORY);
	if (p)
		session_read_send(d, t, p, on_history,
				  (const char *const[]){ "LRANGE", p->key, from,
							 "-1", NULL });
}

static void kv_set(struct bg_daemon *d, struct bg_job *t, const char *id,
		   json_t *args)
{
	const char *k = bg_arg_name(json_object_get(args, "key"));
	json_t *v = json_object_get(args, "value");
	char *txt = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (k == NULL || !*k || strlen(k) > KV_MAX_KEY || txt == NULL) {
		free(txt);
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "kv_set needs a non-empty key of at "
				      "most 256 bytes and a JSON value");
		return;
	}
	if (strlen(txt) > KV_MAX_VALUE) {
		free(txt);
		bg_outbox_reply_error(
			d, t, id, "VALUE_TOO_LARGE",
			"kv_set: the value is larger than 64 KiB");
		return;
	}
	if (t->run.kv == NULL)
		t->run.kv = json_object();
	json_object_set(t->run.kv, k, v);
	char *key = bg_dkey_s(d, BG_KEY_SESSION_KV, S(t->id.session_id));
	if (key) {
		BG_OUT(t, S("HSET"), S(key), S(k), S(txt));
		BG_OUT(t, S("EXPIRE"), S(key), S("604800"));
	}
	free(key);
	free(txt);
	bg_outbox_reply(d, t, id, json_pack("{s:b}", "ok", 1));
}

/* ---- dispatch_group, ask_user ---- */

static void dispatch_group(struct bg_daemon *d, struct bg_job *t,
			   const char *id, json_t *args)
{
	json_t *tasks = json_object_get(args, "tasks");
	bool wait = !json_is_false(json_object_get(args, "wait_for_reply"));
	if (!json_is_array(tasks)) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "dispatch_group needs a tasks array");
		return;
	}
	if (json_array_size(tasks) == 0) {
		bg_outbox_reply(d, t, id,
				json_pack("{s:s,s:s}", "status", "EMPTY",
					  "task_group_id", ""));
		return;
	}
	char g[32], n[16];
	bg_id_new(g, sizeof(g), "tg-");
	struct bg_cmdlist_mark mark = bg_cmdlist_tell(&t->run.outbox);
	if (wait) {
		char *gk = bg_dkey_s(d, BG_KEY_TASK_GROUP, S(g));
		snprintf(n, sizeof(n), "%zu", json_array_size(tasks));
		if (gk) {
			BG_OUT(t, S("HSET"), S(gk), S("total"), S(n),
			       S("completed"), S("0"), S("source_agent_type"),
			       S(t->id.agent_type));
			BG_OUT(t, S("EXPIRE"), S(gk), S("86400"));
		}
		free(gk);
	}
	json_t *done = json_array();
	size_t i;
	json_t *task;
	json_array_foreach(tasks, i, task) {
		const char *target =
			bg_arg_name(json_object_get(task, "target_agent_type"));
		struct bg_outbox_req rq = {
			.target = target ? target : "",
			.content = json_object_get(task, "content"),
			.wait = wait,
			.extra = json_object_get(task, "extra_payload"),
			.metadata = json_object_get(task, "metadata"),
			.group = g,
		};
		if (target == NULL || !*target ||
		    bg_outbox_request(d, t, &rq) != 0) {
			bg_cmdlist_rewind(&t->run.outbox,
					  mark); /* all or nothing */
			json_decref(done);
			bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
					      "dispatch_group: every task "
					      "needs target_agent_type and a "
					      "content");
			return;
		}
		json_array_append_new(done,
				      json_pack("{s:s,s:s}", "message_id",
						rq.message_id,
						"target_agent_type", target));
	}
	if (wait)
		t->run.suspended = true;
	else
		t->run.permission_transferred = true;
	bg_trace_group(d, t, g, json_array_size(tasks), wait);
	bg_outbox_reply(d, t, id,
			json_pack("{s:s,s:s,s:o}", "status", "GROUP_QUEUED",
				  "task_group_id", g, "dispatched_tasks",
				  done));
}

static void ask_user(struct bg_daemon *d, struct bg_job *t, const char *id,
		     json_t *args)
{
	json_t *prompt = json_object_get(args, "prompt");
	char *txt = NULL;
	size_t txt_len = 0;
	if (json_is_string(prompt)) { /* whole, NULs included */
		txt_len = json_string_length(prompt);
		txt = malloc(txt_len + 1);
		if (txt)
			memcpy(txt, json_string_value(prompt), txt_len + 1);
	} else if (prompt) {
		txt = json_dumps(prompt, JSON_COMPACT);
		txt_len = txt ? strlen(txt) : 0;
	}
	if (txt == NULL) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "ask_user needs a prompt");
		return;
	}
	char uuid[33];
	bg_uuid_hex(uuid, true);
	struct bg_event_ctx ctx;
	bg_job_event_ctx(t, &ctx);
	struct bg_event ev = { .kind = BG_EVENT_ASK_USER,
			       .content = { txt, txt_len },
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	struct bg_buf out = { 0 };
	if (bg_event_build(&out, &ctx, &ev) == 0) {
		BG_OUT(t, S("XADD"), S(t->id.data_key), S("*"), S("data"),
		       bg_outbox_bytes(&out));
		BG_OUT(t, S("EXPIRE"), S(t->id.data_key), S("604800"));
	}
	bg_buf_free(&out);
	bg_buf_reset(&t->run.asked); /* the conversation's (docs/history.md) */
	(void)bg_buf_append(&t->run.asked, txt, txt_len);
	free(txt);
	t->run.suspended = true;
	bg_outbox_reply(d, t, id, json_pack("{s:s}", "status", "WAITING_USER"));
}

void bg_calls_take(struct bg_daemon *d, struct bg_job *t, const uint8_t *p,
		   size_t len)
{
	struct bg_str f[BG_CF__COUNT];
	if (bg_rec_unpack(p, len, f, BG_CF__COUNT) || f[BG_CF_ID].len > 20) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "malformed handler call dropped");
		return;
	}
	char id[32], op[32];
	snprintf(id, sizeof(id), "%.*s", (int)f[BG_CF_ID].len, f[BG_CF_ID].p);
	snprintf(op, sizeof(op), "%.*s",
		 (int)(f[BG_CF_OP].len < 31 ? f[BG_CF_OP].len : 31),
		 f[BG_CF_OP].p);
	/* strings may hold NULs: content reaches its callee whole, names
	 * holding one are refused (bg_arg_name) */
	json_t *args = json_loadb(f[BG_CF_ARGS].p, f[BG_CF_ARGS].len,
				  JSON_ALLOW_NUL, NULL);
	if (!json_is_object(args)) {
		json_decref(args);
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "operation arguments must be a JSON "
				      "object");
		return;
	}
	if (strcmp(op, "kv_get") == 0)
		kv_get(d, t, id, args);
	else if (strcmp(op, "kv_set") == 0)
		kv_set(d, t, id, args);
	else if (strcmp(op, "history") == 0)
		history(d, t, id, args);
	else if (strcmp(op, "call_agent") == 0)
		bg_route_call_agent(d, t, id, args);
	else if (strcmp(op, "dispatch_group") == 0)
		dispatch_group(d, t, id, args);
	else if (strcmp(op, "ask_user") == 0)
		ask_user(d, t, id, args);
	else if (strcmp(op, "next_resume") == 0)
		bg_resume_take(d, t, id, args);
	else if (strcmp(op, "resume_later") == 0)
		bg_post_resume_later(d, t, id, args);
	else if (strcmp(op, "cancel_call") == 0)
		bg_cancel_call(d, t, id, args);
	else if (strcmp(op, "agent_types_served") == 0)
		bg_served_check(d, t, id, args);
	else
		bg_outbox_reply_error(d, t, id, "UNKNOWN_OPERATION",
				      "unknown handler operation");
	json_decref(args);
}
