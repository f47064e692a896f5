/* supervisor/outbox.c - the operations a handler asks bygated for
 * (BG_REC_CALL, ipc/record.h): kv get/set, call_agent (its route is
 * route.c), dispatch_group, ask_user. Reads are live (kv get); every write
 * is buffered in the attempt's outbox and applied in its finish
 * transaction (DESIGN 4.3), so a retried or crashed attempt never sends a
 * request twice and the callee's record always precedes its ASK. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ipc/record.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/send.h"

#define S(s) bg_str_c(s)
#define KV_MAX_VALUE (64 * 1024)
#define KV_MAX_KEY 256

/* ---- the outbox: commands in the finish-blob encoding ---- */

/* struct bg_task keeps the outbox as the list's buffer and count; a list
 * that failed is kept as the count OUTBOX_FAILED (the codec's error is
 * logged when it happens), until the next attempt resets it. */
#define OUTBOX_FAILED UINT32_MAX

static struct bg_cmdlist outbox_load(const struct bg_task *t)
{
	bool failed = t->outbox_n == OUTBOX_FAILED;
	return (struct bg_cmdlist){ .buf = t->outbox,
				    .n = failed ? 0 : t->outbox_n,
				    .err = failed ? -ENOMEM : 0 };
}

static void outbox_store(struct bg_task *t, const struct bg_cmdlist *l)
{
	t->outbox = l->buf;
	t->outbox_n = l->err ? OUTBOX_FAILED : l->n;
}

void bg_outbox_cmd(struct bg_task *t, int argc, const struct bg_str *argv)
{
	struct bg_cmdlist l = outbox_load(t);
	bool failed = l.err != 0;
	int rc = bg_cmdlist_add(&l, argc, argv);
	outbox_store(t, &l);
	if (rc && !failed) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "handler write %.*s could not be kept in the outbox "
			    "(%s): the finish of entry %s will not be sent",
			    argc > 0 ? (int)argv[0].len : 0,
			    argc > 0 ? argv[0].p : "", strerror(-rc),
			    t->entry_id);
	}
}

int bg_outbox_splice(const struct bg_task *t, struct bg_cmdlist *x)
{
	struct bg_cmdlist l = outbox_load(t);
	return bg_cmdlist_append(x, &l);
}

struct bg_str bg_outbox_bytes(const struct bg_buf *b)
{
	return (struct bg_str){ b->p ? b->p : "", b->len };
}

/* ---- replies ---- */

/* The answer when the real one cannot be sent: every request gets one. */
static const char REPLY_TOO_LARGE[] =
	"{\"status\":\"FAILED\",\"message_id\":\"\",\"error\":\"the reply "
	"is larger than max_message_bytes\",\"error_code\":\"REPLY_TOO_LARGE\"}";
static const char REPLY_UNENCODABLE[] =
	"{\"status\":\"FAILED\",\"message_id\":\"\",\"error\":\"the reply "
	"could not be encoded (invalid UTF-8 or out of memory)\","
	"\"error_code\":\"INTERNAL\"}";

static int reply_text(struct bg_daemon *d, struct bg_task *t, const char *id,
		      const char *json)
{
	struct bg_buf payload = { 0 };
	struct bg_str v[BG_YF__COUNT] = { S(id), S(json) };
	int rc = -ESRCH;
	if (t->state == BG_TASK_RUNNING && t->slot >= 0 &&
	    (rc = bg_rec_pack(&payload, v, BG_YF__COUNT)) == 0)
		rc = bg_pool_reply(d->pool, t->slot, t->tag, payload.p,
				   payload.len);
	bg_buf_free(&payload);
	return rc;
}

void bg_outbox_reply(struct bg_daemon *d, struct bg_task *t, const char *id,
		     json_t *result)
{
	char *txt = result ? json_dumps(result, JSON_COMPACT) : NULL;
	int rc = reply_text(d, t, id, txt ? txt : REPLY_UNENCODABLE);
	if (rc == -EMSGSIZE)
		reply_text(d, t, id, REPLY_TOO_LARGE);
	free(txt);
	json_decref(result);
}

void bg_outbox_reply_error(struct bg_daemon *d, struct bg_task *t,
			   const char *id, const char *code, const char *msg)
{
	bg_outbox_reply(d, t, id,
			json_pack("{s:s,s:s,s:s,s:s}", "status", "FAILED",
				  "message_id", "", "error", msg, "error_code",
				  code));
}

/* ---- kv (DESIGN 6: session kv in Redis, written through the outbox) ---- */

struct pending {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id;
	char id[32];
	char *key;
};

struct bg_task *bg_outbox_task_of(struct bg_daemon *d, uint64_t tag,
				  uint32_t run_id)
{
	for (struct bg_task *t = d->all.next; t != &d->all; t = t->next)
		if (t->tag == tag)
			return t->state == BG_TASK_RUNNING && !t->ending &&
					       t->run_id == run_id
				       ? t
				       : NULL;
	return NULL;
}

static void on_kv_get(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pending *p = priv;
	struct bg_task *t = bg_outbox_task_of(p->d, p->tag, p->run_id);
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

static void kv_get(struct bg_daemon *d, struct bg_task *t, const char *id,
		   json_t *args)
{
	const char *k = json_string_value(json_object_get(args, "key"));
	if (k == NULL || !*k || strlen(k) > KV_MAX_KEY) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "kv_get needs a non-empty key of at "
				      "most 256 bytes");
		return;
	}
	json_t *own = t->kv ? json_object_get(t->kv, k) : NULL;
	if (own) { /* this attempt's own buffered set */
		bg_outbox_reply(d, t, id,
				json_pack("{s:b,s:O}", "found", 1, "value",
					  own));
		return;
	}
	char *key = bg_dkey_s(d, BG_KEY_SESSION_KV, S(t->session_id));
	struct pending *p = calloc(1, sizeof(*p));
	if (key == NULL || p == NULL) {
		free(key);
		free(p);
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	*p = (struct pending){ d, t->tag, t->run_id, "", key };
	snprintf(p->id, sizeof(p->id), "%s", id);
	if (bg_rconn_cmdv(d->wr, on_kv_get, p, 0,
			  (const char *const[]){ "HGET", key, k, NULL }) != 0) {
		free(p->key);
		free(p);
		bg_outbox_reply_error(d, t, id, "UNAVAILABLE",
				      "Redis unavailable");
	}
}

static void kv_set(struct bg_daemon *d, struct bg_task *t, const char *id,
		   json_t *args)
{
	const char *k = json_string_value(json_object_get(args, "key"));
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
		bg_outbox_reply_error(d, t, id, "VALUE_TOO_LARGE",
				      "kv_set: the value is larger than 64 KiB");
		return;
	}
	if (t->kv == NULL)
		t->kv = json_object();
	json_object_set(t->kv, k, v);
	char *key = bg_dkey_s(d, BG_KEY_SESSION_KV, S(t->session_id));
	if (key) {
		BG_OUT(t, S("HSET"), S(key), S(k), S(txt));
		BG_OUT(t, S("EXPIRE"), S(key), S("604800"));
	}
	free(key);
	free(txt);
	bg_outbox_reply(d, t, id, json_pack("{s:b}", "ok", 1));
}

/* ---- requests to other agents (WIRE 6.6, 6.7) ---- */

static int content_text(json_t *content, struct bg_send_body *b,
			char **owned)
{
	*owned = NULL;
	if (json_is_string(content)) {
		b->content = (struct bg_str){ json_string_value(content),
					      json_string_length(content) };
		b->content_is_json = false;
		return 0;
	}
	if (json_is_array(content) || json_is_object(content)) {
		*owned = json_dumps(content, JSON_COMPACT);
		if (*owned == NULL)
			return -1;
		b->content = S(*owned);
		b->content_is_json = true;
		return 0;
	}
	return -1;
}

int bg_outbox_build_ask(struct bg_task *t, struct bg_outbox_req *rq,
			struct bg_buf *ask)
{
	struct bg_cmd *c = &t->cmd;
	char span[17], fw[64];
	if (!rq->message_id[0])
		bg_id_new(rq->message_id, sizeof(rq->message_id), "msg-");
	if (!rq->execution_id[0])
		bg_id_new(rq->execution_id, sizeof(rq->execution_id), "exec-");
	snprintf(fw, sizeof(fw), "%s:client.dispatch", rq->message_id);
	bg_span_id16(span, fw, strlen(fw));
	json_t *md = json_is_object(rq->metadata) ? json_deep_copy(rq->metadata)
						  : json_object();
	json_object_set_new(md, "trace_parent_span_id", json_string(span));
	json_object_set_new(md, "framework_parent_span_id", json_string(fw));
	char *mdtxt = json_dumps(md, JSON_COMPACT);
	json_decref(md);
	char *ctxt = NULL, *extxt = NULL;
	struct bg_send_body body = { .wait_for_reply = rq->wait };
	if (content_text(rq->content, &body, &ctxt) != 0 || mdtxt == NULL) {
		free(mdtxt);
		free(ctxt);
		return -1;
	}
	if (json_is_object(rq->extra) && json_object_size(rq->extra)) {
		extxt = json_dumps(rq->extra, JSON_COMPACT);
		body.extra_payload = S(extxt);
	}
	struct bg_send_header h = {
		.message_id = S(rq->message_id),
		.session_id = S(t->session_id),
		.trace_id = S(t->trace_id),
		.source_agent_type = S(rq->wait ? t->agent_type : ""),
		.target_agent_type = S(rq->target),
		.parent_message_id = S(t->message_id),
		.task_group_id = S(rq->group),
		.user_code = c->hdr[BG_HDR_USER_CODE],
		.user_name = c->hdr[BG_HDR_USER_NAME],
		.metadata = S(mdtxt),
		.trace_parent_span_id = S(span),
		.langfuse_parent_observation_id =
			c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID],
	};
	int rc = bg_send_ask(ask, &h, &body) == 0 ? 0 : -1;
	free(mdtxt);
	free(ctxt);
	free(extxt);
	return rc;
}

void bg_outbox_record(struct bg_task *t, const char *execution_id,
		      const char *message_id, const struct bg_buf *rec)
{
	char f1[64], f2[BG_FIELD_MAX];
	snprintf(f1, sizeof(f1), "exec:%s", execution_id);
	snprintf(f2, sizeof(f2), "msg_map:%s", message_id);
	BG_OUT(t, S("HSET"), S(t->reg_key), S(f1), bg_outbox_bytes(rec),
	       S(f2), S(execution_id));
	BG_OUT(t, S("EXPIRE"), S(t->reg_key), S("604800"));
}

struct bg_record_queued bg_outbox_callee_fields(const struct bg_task *t,
						const struct bg_outbox_req *rq,
						const char *stream_name)
{
	return (struct bg_record_queued){
		.execution_id = S(rq->execution_id),
		.message_id = S(rq->message_id),
		.session_id = S(t->session_id),
		.trace_id = S(t->trace_id),
		.parent_message_id = S(t->message_id),
		.source_agent_type = S(rq->wait ? t->agent_type : ""),
		.target_agent_type = S(rq->target),
		.stream_name = S(stream_name),
		.route = rq->policy != NULL,
		.route_policy = S(rq->policy ? rq->policy : ""),
		.route_status = S(rq->route_status ? rq->route_status : ""),
		.selected_agent_type = S(rq->selected ? rq->selected : ""),
		.availability_error_code = S(""),
		.availability_error = S(""),
		.now_ms = bg_now_ms(),
	};
}

int bg_outbox_callee_record(struct bg_task *t, const struct bg_outbox_req *rq,
			    const char *stream_name)
{
	struct bg_buf rec = { 0 };
	struct bg_record_queued q = bg_outbox_callee_fields(t, rq, stream_name);
	int rc = bg_record_build_queued(&rec, &q);
	if (rc == 0)
		bg_outbox_record(t, rq->execution_id, rq->message_id, &rec);
	bg_buf_free(&rec);
	return rc;
}

int bg_outbox_request(struct bg_daemon *d, struct bg_task *t,
		      struct bg_outbox_req *rq)
{
	struct bg_buf ask = { 0 };
	char *stream = bg_dkey_s(d, BG_KEY_AGENT_TYPE_CTRL, S(rq->target));
	int rc = stream && bg_outbox_build_ask(t, rq, &ask) == 0 &&
				 bg_outbox_callee_record(t, rq, stream) == 0
			 ? 0
			 : -1;
	if (rc == 0)
		BG_OUT(t, S("XADD"), S(stream), S("*"), S("data"),
		       bg_outbox_bytes(&ask));
	bg_buf_free(&ask);
	free(stream);
	return rc;
}

/* ---- dispatch_group, ask_user ---- */

static void dispatch_group(struct bg_daemon *d, struct bg_task *t,
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
	struct bg_cmdlist ob = outbox_load(t);
	struct bg_cmdlist_mark mark = bg_cmdlist_tell(&ob);
	if (wait) {
		char *gk = bg_dkey_s(d, BG_KEY_TASK_GROUP, S(g));
		snprintf(n, sizeof(n), "%zu", json_array_size(tasks));
		if (gk) {
			BG_OUT(t, S("HSET"), S(gk), S("total"), S(n),
			       S("completed"), S("0"), S("source_agent_type"),
			       S(t->agent_type));
			BG_OUT(t, S("EXPIRE"), S(gk), S("86400"));
		}
		free(gk);
	}
	json_t *done = json_array();
	size_t i;
	json_t *task;
	json_array_foreach(tasks, i, task)
	{
		const char *target = json_string_value(
			json_object_get(task, "target_agent_type"));
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
			ob = outbox_load(t); /* all or nothing */
			bg_cmdlist_rewind(&ob, mark);
			outbox_store(t, &ob);
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
		t->suspended = true;
	else
		t->permission_transferred = true;
	bg_outbox_reply(d, t, id,
			json_pack("{s:s,s:s,s:o}", "status", "GROUP_QUEUED",
				  "task_group_id", g, "dispatched_tasks",
				  done));
}

static void ask_user(struct bg_daemon *d, struct bg_task *t, const char *id,
		     json_t *args)
{
	json_t *prompt = json_object_get(args, "prompt");
	char *txt = json_is_string(prompt) ? strdup(json_string_value(prompt))
		    : prompt		   ? json_dumps(prompt, JSON_COMPACT)
					   : NULL;
	if (txt == NULL) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "ask_user needs a prompt");
		return;
	}
	char uuid[33];
	bg_uuid_hex(uuid, true);
	struct bg_event_ctx ctx;
	bg_event_ctx_of(t, &ctx);
	struct bg_event ev = { .kind = BG_EVENT_ASK_USER,
			       .content = S(txt),
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	struct bg_buf out = { 0 };
	if (bg_event_build(&out, &ctx, &ev) == 0) {
		BG_OUT(t, S("XADD"), S(t->data_key), S("*"), S("data"),
		       bg_outbox_bytes(&out));
		BG_OUT(t, S("EXPIRE"), S(t->data_key), S("604800"));
	}
	bg_buf_free(&out);
	free(txt);
	t->suspended = true;
	bg_outbox_reply(d, t, id, json_pack("{s:s}", "status", "WAITING_USER"));
}

void bg_outbox_call(struct bg_daemon *d, struct bg_task *t, const uint8_t *p,
		    size_t len)
{
	struct bg_str f[BG_CF__COUNT];
	if (bg_rec_unpack(p, len, f, BG_CF__COUNT) || f[BG_CF_ID].len > 20) {
		struct bg_log_ids ids = bg_task_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids, "malformed handler call dropped");
		return;
	}
	char id[32], op[32];
	snprintf(id, sizeof(id), "%.*s", (int)f[BG_CF_ID].len, f[BG_CF_ID].p);
	snprintf(op, sizeof(op), "%.*s",
		 (int)(f[BG_CF_OP].len < 31 ? f[BG_CF_OP].len : 31),
		 f[BG_CF_OP].p);
	json_t *args = json_loadb(f[BG_CF_ARGS].p, f[BG_CF_ARGS].len, 0, NULL);
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
	else if (strcmp(op, "call_agent") == 0)
		bg_outbox_call_agent(d, t, id, args);
	else if (strcmp(op, "dispatch_group") == 0)
		dispatch_group(d, t, id, args);
	else if (strcmp(op, "ask_user") == 0)
		ask_user(d, t, id, args);
	else
		bg_outbox_reply_error(d, t, id, "UNKNOWN_OPERATION",
				      "unknown handler operation");
	json_decref(args);
}

/* A new attempt starts with an empty outbox (DESIGN 4.3). */
void bg_outbox_reset(struct bg_task *t)
{
	bg_buf_reset(&t->outbox);
	t->outbox_n = 0;
	json_decref(t->kv);
	t->kv = NULL;
	t->suspended = false;
	t->permission_transferred = false;
}