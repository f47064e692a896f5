/* supervisor/outbox.c - the operations a handler asks bygated for
 * (BG_REC_CALL, ipc/record.h): kv get/set, call_agent with its route
 * (WIRE 7), dispatch_group, ask_user. Reads are live (kv get, the
 * availability checks of a route); every write is buffered in the
 * attempt's outbox and applied in its finish transaction (DESIGN 4.3), so
 * a retried or crashed attempt never sends a request twice and the
 * callee's record always precedes its ASK. The one exception, the
 * WakeupRequest of WAKE_AND_WAIT, is explained at struct route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "ipc/record.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/route.h"
#include "wire/send.h"

#define S(s) bg_str_c(s)
#define KV_MAX_VALUE (64 * 1024)
#define KV_MAX_KEY 256

/* ---- the outbox: commands in the finish-blob encoding ---- */

static void put_u32(struct bg_buf *b, uint32_t v)
{
	bg_buf_append(b, &v, sizeof(v));
}

static void outbox_cmd(struct bg_task *t, int argc, const struct bg_str *argv)
{
	put_u32(&t->outbox, (uint32_t)argc);
	for (int i = 0; i < argc; i++) {
		put_u32(&t->outbox, (uint32_t)argv[i].len);
		bg_buf_append(&t->outbox, argv[i].p, argv[i].len);
	}
	t->outbox_n++;
}

#define OUT(t, ...)                                                         \
	do {                                                                \
		const struct bg_str a_[] = { __VA_ARGS__ };                 \
		outbox_cmd((t), (int)(sizeof(a_) / sizeof(a_[0])), a_);     \
	} while (0)

static struct bg_str bs(const struct bg_buf *b)
{
	return (struct bg_str){ b->p ? b->p : "", b->len };
}

/* ---- replies ---- */

static void reply_text(struct bg_daemon *d, struct bg_task *t, const char *id,
		       const char *json)
{
	struct bg_buf payload = { 0 };
	struct bg_str v[BG_YF__COUNT] = { S(id), S(json) };
	if (t->state == BG_TASK_RUNNING && t->slot >= 0 &&
	    bg_rec_pack(&payload, v, BG_YF__COUNT) == 0)
		bg_pool_reply(d->pool, t->slot, t->tag, payload.p, payload.len);
	bg_buf_free(&payload);
}

static void reply(struct bg_daemon *d, struct bg_task *t, const char *id,
		  json_t *result)
{
	char *txt = json_dumps(result, JSON_COMPACT);
	reply_text(d, t, id, txt ? txt : "{\"error\":\"out of memory\"}");
	free(txt);
	json_decref(result);
}

static void reply_error(struct bg_daemon *d, struct bg_task *t, const char *id,
			const char *code, const char *msg)
{
	reply(d, t, id,
	      json_pack("{s:s,s:s,s:s,s:s}", "status", "FAILED", "message_id",
			"", "error", msg, "error_code", code));
}

/* ---- kv (DESIGN 6: session kv in Redis, written through the outbox) ---- */

struct pending {
	struct bg_daemon *d;
	uint64_t tag;
	char id[32];
	char *key;
};

static struct bg_task *task_of(struct bg_daemon *d, uint64_t tag)
{
	for (struct bg_task *t = d->all.next; t != &d->all; t = t->next)
		if (t->tag == tag)
			return t;
	return NULL;
}

static void on_kv_get(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pending *p = priv;
	struct bg_task *t = task_of(p->d, p->tag);
	if (t) {
		json_t *v = NULL;
		if (r && r->type == REDIS_REPLY_STRING)
			v = json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL);
		if (r == NULL)
			reply(p->d, t, p->id,
			      json_pack("{s:s,s:s}", "error",
					"Redis unavailable", "error_code",
					"UNAVAILABLE"));
		else
			reply(p->d, t, p->id,
			      json_pack("{s:b,s:o}", "found", v != NULL,
					"value", v ? v : json_null()));
	}
	free(p->key);
	free(p);
}

static void kv_get(struct bg_daemon *d, struct bg_task *t, const char *id,
		   json_t *args)
{
	const char *k = json_string_value(json_object_get(args, "key"));
	if (k == NULL || !*k || strlen(k) > KV_MAX_KEY) {
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "kv_get needs a non-empty key of at most 256 bytes");
		return;
	}
	json_t *own = t->kv ? json_object_get(t->kv, k) : NULL;
	if (own) { /* this attempt's own buffered set */
		reply(d, t, id,
		      json_pack("{s:b,s:O}", "found", 1, "value", own));
		return;
	}
	char *key = bg_dkey_s(d, BG_KEY_SESSION_KV, S(t->session_id));
	struct pending *p = calloc(1, sizeof(*p));
	if (key == NULL || p == NULL) {
		free(key);
		free(p);
		reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	*p = (struct pending){ d, t->tag, "", key };
	snprintf(p->id, sizeof(p->id), "%s", id);
	if (bg_rconn_cmdv(d->wr, on_kv_get, p, 0,
			  (const char *const[]){ "HGET", key, k, NULL }) != 0) {
		free(p->key);
		free(p);
		reply_error(d, t, id, "UNAVAILABLE", "Redis unavailable");
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
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "kv_set needs a non-empty key of at most 256 bytes "
			    "and a JSON value");
		return;
	}
	if (strlen(txt) > KV_MAX_VALUE) {
		free(txt);
		reply_error(d, t, id, "VALUE_TOO_LARGE",
			    "kv_set: the value is larger than 64 KiB");
		return;
	}
	if (t->kv == NULL)
		t->kv = json_object();
	json_object_set(t->kv, k, v);
	char *key = bg_dkey_s(d, BG_KEY_SESSION_KV, S(t->session_id));
	if (key) {
		OUT(t, S("HSET"), S(key), S(k), S(txt));
		OUT(t, S("EXPIRE"), S(key), S("604800"));
	}
	free(key);
	free(txt);
	reply(d, t, id, json_pack("{s:b}", "ok", 1));
}

/* ---- requests to other agents (WIRE 6.6, 6.7) ---- */

struct request {
	const char *target;
	json_t *content;
	bool wait;
	json_t *extra, *metadata;
	const char *group;	  /* task group id or "" */
	const char *policy;	  /* route_policy for the record, NULL = none */
	const char *route_status;
	const char *selected;	  /* selected_agent_type, NULL = "" */
	char message_id[32];	  /* minted when empty */
	char execution_id[32];	  /* minted when empty */
};

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

/* The callee's ASK_AGENT (WIRE 6.6 steps 1-3) into ask, minting rq's ids
 * when empty. 0, or -1 (content neither a string, an array nor an object;
 * no memory). */
static int build_ask(struct bg_task *t, struct request *rq, struct bg_buf *ask)
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

/* An execution record and its msg_map into the outbox (WIRE 6.1). */
static void out_record(struct bg_task *t, const char *execution_id,
		       const char *message_id, const struct bg_buf *rec)
{
	char f1[64], f2[160];
	snprintf(f1, sizeof(f1), "exec:%s", execution_id);
	snprintf(f2, sizeof(f2), "msg_map:%s", message_id);
	OUT(t, S("HSET"), S(t->reg_key), S(f1), bs(rec), S(f2),
	    S(execution_id));
	OUT(t, S("EXPIRE"), S(t->reg_key), S("604800"));
}

/* The members of rq's callee record (WIRE 6.2) sent to stream_name. */
static struct bg_record_queued callee_fields(const struct bg_task *t,
					     const struct request *rq,
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

/* The callee's QUEUED record (initialize_execution, WIRE 6.6 step 5),
 * created with stream_name, into the outbox. */
static int out_callee_record(struct bg_task *t, const struct request *rq,
			     const char *stream_name)
{
	struct bg_buf rec = { 0 };
	struct bg_record_queued q = callee_fields(t, rq, stream_name);
	int rc = bg_record_build_queued(&rec, &q);
	if (rc == 0)
		out_record(t, rq->execution_id, rq->message_id, &rec);
	bg_buf_free(&rec);
	return rc;
}

/* The callee's record and ASK into the outbox (record first). */
static int outbox_request(struct bg_daemon *d, struct bg_task *t,
			  struct request *rq)
{
	struct bg_buf ask = { 0 };
	char *stream = bg_dkey_s(d, BG_KEY_AGENT_TYPE_CTRL, S(rq->target));
	int rc = stream && build_ask(t, rq, &ask) == 0 &&
				 out_callee_record(t, rq, stream) == 0
			 ? 0
			 : -1;
	if (rc == 0)
		OUT(t, S("XADD"), S(stream), S("*"), S("data"), bs(&ask));
	bg_buf_free(&ask);
	free(stream);
	return rc;
}

/* call_agent's route (WIRE 7, sender side), asynchronous on the loop as
 * prepare_delivery is in Python: circuit, quota, SEND_ANYWAY, online
 * members, configured fallback, then the policy. Reads are live on the
 * control connection; every write (the callee's record and ASK, the
 * PendingDelivery and WakeupRequest of the queueing policies, the FAILED
 * record of a refused route) goes to the outbox. The one exception is the
 * WakeupRequest of WAKE_AND_WAIT: the wakeup controller must see it while
 * the handler waits for its decision, so it is sent at once (a retried
 * attempt may repeat it; the controller's dedupe answers the repeat).
 * Each step is a continuation run when its reply arrives; a route whose
 * attempt has ended meanwhile is dropped. */
#define ROUTE_POLL_MS 100		/* WAKE_AND_WAIT: decisions and online */
#define ROUTE_MAX_WAIT_MS 86400000	/* timeout_ms above this is capped */
#define ROUTE_FALLBACK "FALLBACK_TO_OTHER_AGENT_TYPE"

struct route;
typedef void (*route_fn)(struct route *r, struct bg_task *t,
			 redisReply *rep);
typedef void (*online_fn)(struct route *r, struct bg_task *t, bool online);

struct route {
	struct bg_daemon *d;
	uint64_t tag;
	int attempt;	    /* the attempt that asked (a retry of the */
	int64_t started_ms; /* task must not receive this reply) */
	char id[32];
	json_t *args;
	char target[160];
	char policy[32];
	char region[160];
	int64_t priority;
	int64_t timeout_ms;   /* as given (0 = default), capped */
	int64_t deadline_ms;  /* WAKE_AND_WAIT, monotonic */
	char selected[160];   /* a fallback agent type */
	char message_id[32];  /* minted at the call (the WakeupRequest */
	char execution_id[32]; /* and the records carry them) */
	char last[48];	      /* the last decision entry read */
	route_fn next;	      /* continuation of the command in flight */
	online_fn then;	      /* continuation of the online check */
	struct event *timer;
};

static void route_free(struct route *r)
{
	if (r->timer)
		event_free(r->timer);
	json_decref(r->args);
	free(r);
}

/* The running attempt that asked, or NULL. */
static struct bg_task *route_task(const struct route *r)
{
	struct bg_task *t = task_of(r->d, r->tag);
	if (t == NULL || t->state != BG_TASK_RUNNING || t->ending ||
	    t->attempt != r->attempt || t->started_ms != r->started_ms)
		return NULL;
	return t;
}

static void route_note(const struct route *r, const struct bg_task *t,
		       const char *what, const char *detail)
{
	struct bg_log_ids ids = bg_task_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids, "call_agent %s (%s, callee %s): %s%s%s",
		    r->target, r->policy, r->message_id, what,
		    detail[0] ? ": " : "", detail);
}

/* The route cannot be decided (Redis unavailable, no memory): an error
 * reply, nothing written. */
static void route_fail(struct route *r, struct bg_task *t, const char *code,
		       const char *msg)
{
	route_note(r, t, "failed", msg);
	reply_error(r->d, t, r->id, code, msg);
	route_free(r);
}

/* The route's request, to agent type `type`. */
static void request_of(const struct route *r, const char *type,
		       struct request *rq)
{
	*rq = (struct request){
		.target = type,
		.content = json_object_get(r->args, "content"),
		.wait = !json_is_false(json_object_get(r->args,
						       "wait_for_reply")),
		.extra = json_object_get(r->args, "extra_payload"),
		.metadata = json_object_get(r->args, "metadata"),
		.group = "",
		.policy = r->policy,
	};
	snprintf(rq->message_id, sizeof(rq->message_id), "%s", r->message_id);
	snprintf(rq->execution_id, sizeof(rq->execution_id), "%s",
		 r->execution_id);
}

/* REJECT (record_failed_route_decision): the callee's FAILED record into
 * the outbox and the error to the handler. */
static void route_reject(struct route *r, struct bg_task *t, const char *code,
			 const char *msg)
{
	struct request rq;
	struct bg_buf rec = { 0 };
	request_of(r, r->target, &rq);
	struct bg_record_queued q = callee_fields(t, &rq, "");
	q.availability_error_code = S(code);
	q.availability_error = S(msg);
	if (bg_route_failed_record(&rec, &q) == 0)
		out_record(t, r->execution_id, r->message_id, &rec);
	bg_buf_free(&rec);
	route_note(r, t, "REJECT", msg);
	reply_error(r->d, t, r->id, code, msg);
	route_free(r);
}

static void route_unavailable(struct route *r, struct bg_task *t,
			      const char *fmt)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, r->target);
	route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
}

static void on_route(struct bg_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct route *r = priv;
	struct bg_task *t = route_task(r);
	if (t == NULL)
		route_free(r);
	else if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
		route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
	else
		r->next(r, t, rep);
}

/* Send a read on the control connection; next runs with its reply. */
static void route_send(struct route *r, struct bg_task *t, route_fn next,
		       int argc, const char **argv)
{
	r->next = next;
	if (bg_rconn_cmd(r->d->ctl, on_route, r, 0, argc, argv, NULL) != 0)
		route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
}

/* `cmd <the key of (kind, id)>`, e.g. GET of an operator's value. */
static void route_read(struct route *r, struct bg_task *t, route_fn next,
		       const char *cmd, enum bg_key_kind kind, struct bg_str id)
{
	char *key = bg_dkey_s(r->d, kind, id);
	if (key == NULL) {
		route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	route_send(r, t, next, 2, (const char *[]){ cmd, key });
	free(key);
}

/* A GET reply as the WIRE 7 readers take it (objects only). */
static json_t *reply_object(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_STRING
		       ? bg_route_object(rep->str, rep->len)
		       : NULL;
}

static bool lease_online(const redisReply *v)
{
	if (v == NULL || v->type != REDIS_REPLY_STRING)
		return false;
	if (v->str[0] != '{')
		return true; /* legacy value: online */
	const char *p = strstr(v->str, "\"last_seen\"");
	if (p == NULL)
		return false;
	p = strchr(p, ':');
	return p && strtoll(p + 1, NULL, 10) > 0;
}

/* ---- check_agent_type_online (WIRE 5.2): members, then their leases ---- */

static void on_leases(struct route *r, struct bg_task *t, redisReply *rep)
{
	bool online = false;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
	     i++)
		online = online || lease_online(rep->element[i]);
	r->then(r, t, online);
}

static void on_members(struct route *r, struct bg_task *t, redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
		r->then(r, t, false);
		return;
	}
	size_t n = rep->elements;
	const char **argv = calloc(n + 1, sizeof(*argv));
	char **keys = calloc(n, sizeof(*keys));
	if (argv && keys) {
		argv[0] = "MGET";
		for (size_t i = 0; i < n; i++) {
			const redisReply *e = rep->element[i];
			if (e->type == REDIS_REPLY_STRING)
				keys[i] = bg_dkey_s(r->d, BG_KEY_WORKER_ONLINE,
						    (struct bg_str){ e->str,
								     e->len });
			argv[i + 1] = keys[i] ? keys[i] : "";
		}
		route_send(r, t, on_leases, (int)n + 1, argv);
	} else {
		route_fail(r, t, "INTERNAL", "out of memory");
	}
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(argv);
}

static void check_online(struct route *r, struct bg_task *t, const char *type,
			 online_fn then)
{
	r->then = then;
	route_read(r, t, on_members, "SMEMBERS", BG_KEY_AGENT_TYPE_MEMBERS,
		   S(type));
}

/* ---- outcomes ---- */

/* WIRE 6.6's reply; a queued request adds its route_status. */
static void reply_queued(struct route *r, struct bg_task *t,
			 const struct request *rq, const char *queued)
{
	if (rq->wait)
		t->suspended = true;
	else
		t->permission_transferred = true;
	json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "status", "QUEUED",
				"message_id", rq->message_id,
				"parent_message_id", t->message_id,
				"target_agent_type", rq->target);
	if (queued)
		json_object_set_new(res, "route_status", json_string(queued));
	route_note(r, t, rq->route_status, rq->target);
	reply(r->d, t, r->id, res);
}

/* DELIVER_NOW, WAIT_AND_DELIVER, FALLBACK_TO_OTHER_AGENT_TYPE: the
 * callee's record and ASK to `type`'s control stream. */
static void route_deliver(struct route *r, struct bg_task *t,
			  const char *status, const char *type)
{
	struct request rq;
	request_of(r, type, &rq);
	rq.route_status = status;
	rq.selected = strcmp(status, ROUTE_FALLBACK) ? "" : type;
	if (outbox_request(r->d, t, &rq) != 0) {
		route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	reply_queued(r, t, &rq, NULL);
	route_free(r);
}

/* The DeliveryIntent of the route, for its WakeupRequest and
 * PendingDelivery; command is the ASK, mdtxt the metadata's JSON. */
static struct bg_route_intent route_intent(const struct route *r,
					   const struct bg_task *t,
					   const struct bg_buf *ask,
					   const char *mdtxt)
{
	return (struct bg_route_intent){
		.execution_id = S(r->execution_id),
		.message_id = S(r->message_id),
		.session_id = S(t->session_id),
		.trace_id = S(t->trace_id),
		.source = S(t->agent_type),
		.target_agent_type = S(r->target),
		.user_code = t->cmd.hdr[BG_HDR_USER_CODE],
		.region = S(r->region),
		.priority = r->priority,
		.policy = S(r->policy),
		.timeout_ms = r->timeout_ms,
		.command = bs(ask),
		.metadata = S(mdtxt ? mdtxt : ""),
	};
}

/* The ASK and the WakeupRequest (wake) and/or PendingDelivery (pending)
 * JSON of the route. 0 or -1. */
static int route_records(struct route *r, struct bg_task *t,
			 struct request *rq, struct bg_buf *ask,
			 struct bg_buf *wake, struct bg_buf *pending)
{
	json_t *md = json_object_get(r->args, "metadata");
	char *mdtxt = json_is_object(md) ? json_dumps(md, JSON_COMPACT) : NULL;
	char *ctrl = bg_dkey_s(r->d, BG_KEY_AGENT_TYPE_CTRL, S(r->target));
	int rc = ctrl && (mdtxt || !json_is_object(md)) &&
				 build_ask(t, rq, ask) == 0
			 ? 0
			 : -1;
	struct bg_route_intent in = route_intent(r, t, ask, mdtxt);
	if (rc == 0 && wake)
		rc = bg_route_wakeup_json(wake, &in) ? -1 : 0;
	if (rc == 0 && pending)
		rc = bg_route_pending_json(pending, &in, S(ctrl)) ? -1 : 0;
	free(ctrl);
	free(mdtxt);
	return rc;
}

/* WAKE_AND_QUEUE / QUEUE_ONLY (QUEUE_PENDING): instead of the ASK, the
 * callee's record (stream_name = the pending stream), the WakeupRequest
 * (wake) and the PendingDelivery the delivery gate later turns into the
 * ASK (`bygate gate`, `bygate dispatch`). */
static void route_queue(struct route *r, struct bg_task *t, bool wake)
{
	struct request rq;
	request_of(r, r->target, &rq);
	rq.route_status = "QUEUE_PENDING";
	struct bg_buf ask = { 0 }, wreq = { 0 }, pend = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	char *pkey = bg_dkey(r->d, BG_KEY_PENDING_DELIVERIES, "");
	bool ok = wkey && pkey &&
		  route_records(r, t, &rq, &ask, wake ? &wreq : NULL,
				&pend) == 0 &&
		  out_callee_record(t, &rq, pkey) == 0;
	if (ok && wake)
		OUT(t, S("XADD"), S(wkey), S("*"), S("data"), bs(&wreq));
	if (ok)
		OUT(t, S("XADD"), S(pkey), S("*"), S("data"), bs(&pend));
	bg_buf_free(&ask);
	bg_buf_free(&wreq);
	bg_buf_free(&pend);
	free(wkey);
	free(pkey);
	if (!ok) {
		route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	reply_queued(r, t, &rq, "QUEUE_PENDING");
	route_free(r);
}

/* ---- WAKE_AND_WAIT: the decision, or an online worker, by polling ---- */

static void wait_poll(struct route *r, struct bg_task *t);

static void on_wait_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct route *r = arg;
	struct bg_task *t = route_task(r);
	if (t == NULL)
		route_free(r);
	else
		wait_poll(r, t);
}

static void on_ready_online(struct route *r, struct bg_task *t, bool online)
{
	if (online)
		route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
	else
		route_unavailable(r, t,
				  "No online worker found for agent_type '%s'");
}

/* No decision yet: an online worker is as good as READY ([ts] polls only
 * this); else wait for the next poll, or time out. */
static void on_wait_online(struct route *r, struct bg_task *t, bool online)
{
	int64_t left = r->deadline_ms - bg_mono_ms();
	if (online) {
		route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
		return;
	}
	if (left <= 0) {
		route_unavailable(r, t, "Timed out waiting for worker wakeup "
					"for agent_type '%s'");
		return;
	}
	if (left > ROUTE_POLL_MS)
		left = ROUTE_POLL_MS;
	struct timeval tv = { 0, (suseconds_t)left * 1000 };
	evtimer_add(r->timer, &tv);
}

static void decided(struct route *r, struct bg_task *t, const json_t *dec)
{
	char err[512];
	switch (bg_route_decision_verdict(dec, r->target, r->selected,
					  sizeof(r->selected), err,
					  sizeof(err))) {
	case BG_VERDICT_READY:
		check_online(r, t, r->target, on_ready_online);
		break;
	case BG_VERDICT_FALLBACK:
		route_deliver(r, t, ROUTE_FALLBACK, r->selected);
		break;
	case BG_VERDICT_REJECT:
		route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", err);
		break;
	}
}

/* The `data` field of an XRANGE entry [id, [field, value, ...]] after
 * r->last, which it becomes. NULL when the entry has none or was read. */
static const redisReply *entry_data(struct route *r, const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[1]->type != REDIS_REPLY_ARRAY ||
	    e->element[0]->len >= sizeof(r->last) ||
	    strcmp(e->element[0]->str, r->last) == 0)
		return NULL;
	snprintf(r->last, sizeof(r->last), "%s", e->element[0]->str);
	const redisReply *f = e->element[1];
	for (size_t i = 0; i + 1 < f->elements; i += 2)
		if (f->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(f->element[i]->str, "data") == 0 &&
		    f->element[i + 1]->type == REDIS_REPLY_STRING)
			return f->element[i + 1];
	return NULL;
}

/* The first final decision after r->last (STARTING and QUEUED skipped,
 * as the client does), else the online check. */
static void on_decisions(struct route *r, struct bg_task *t, redisReply *rep)
{
	json_t *dec = NULL;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY &&
			   i < rep->elements && !dec;
	     i++) {
		const redisReply *data = entry_data(r, rep->element[i]);
		dec = data ? bg_route_decision(data->str, data->len,
					       r->execution_id)
			   : NULL;
		if (dec && !bg_route_decision_final(dec)) {
			json_decref(dec);
			dec = NULL;
		}
	}
	if (dec)
		decided(r, t, dec);
	else
		check_online(r, t, r->target, on_wait_online);
	json_decref(dec);
}

static void wait_poll(struct route *r, struct bg_task *t)
{
	char *key = bg_dkey(r->d, BG_KEY_WAKEUP_RESULT, r->execution_id);
	if (key == NULL) {
		route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	/* from the last entry read, inclusive (no "(" before Redis 6.2) */
	route_send(r, t, on_decisions, 6,
		   (const char *[]){ "XRANGE", key, r->last, "+", "COUNT",
				     "17" });
	free(key);
}

/* Send the WakeupRequest now (see above), then poll until timeout_ms. */
static void wait_start(struct route *r, struct bg_task *t)
{
	struct request rq;
	request_of(r, r->target, &rq);
	struct bg_buf ask = { 0 }, wreq = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	int rc = wkey ? route_records(r, t, &rq, &ask, &wreq, NULL) : -1;
	if (rc == 0)
		rc = bg_rconn_cmdv(r->d->wr, NULL, NULL, 0,
				   (const char *const[]){ "XADD", wkey, "*",
							  "data", wreq.p,
							  NULL });
	bg_buf_free(&ask);
	bg_buf_free(&wreq);
	free(wkey);
	r->timer = rc == 0 ? evtimer_new(r->d->base, on_wait_tick, r) : NULL;
	if (rc != 0 || r->timer == NULL) {
		route_fail(r, t, "UNAVAILABLE", "cannot send the wakeup request");
		return;
	}
	r->deadline_ms = bg_mono_ms() + bg_route_timeout_ms(r->timeout_ms);
	snprintf(r->last, sizeof(r->last), "-");
	wait_poll(r, t);
}

/* ---- the steps of prepare_delivery ---- */

static void apply_policy(struct route *r, struct bg_task *t)
{
	if (strcmp(r->policy, "FAIL_FAST") == 0)
		route_unavailable(r, t,
				  "No online worker found for agent_type '%s'");
	else if (strcmp(r->policy, "WAKE_AND_WAIT") == 0)
		wait_start(r, t);
	else if (strcmp(r->policy, "WAKE_AND_QUEUE") == 0)
		route_queue(r, t, true);
	else if (strcmp(r->policy, "QUEUE_ONLY") == 0)
		route_queue(r, t, false);
	else {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "Unsupported offline route policy '%s'", r->policy);
		route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
	}
}

static void on_fallback_online(struct route *r, struct bg_task *t,
			       bool online)
{
	if (online)
		route_deliver(r, t, ROUTE_FALLBACK, r->selected);
	else
		apply_policy(r, t);
}

/* _resolve_configured_fallback: an online fallback type takes it. */
static void on_fallback(struct route *r, struct bg_task *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *sel = bg_route_fallback_type(v);
	bool use = sel[0] && strlen(sel) < sizeof(r->selected);
	if (use)
		snprintf(r->selected, sizeof(r->selected), "%s", sel);
	json_decref(v);
	if (use)
		check_online(r, t, r->selected, on_fallback_online);
	else
		apply_policy(r, t);
}

static void on_target_online(struct route *r, struct bg_task *t, bool online)
{
	if (online)
		route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		route_read(r, t, on_fallback, "GET", BG_KEY_FALLBACK,
			   S(r->target));
}

static void after_checks(struct route *r, struct bg_task *t)
{
	if (strcmp(r->policy, "SEND_ANYWAY") == 0)
		route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		check_online(r, t, r->target, on_target_online);
}

static void on_quota(struct route *r, struct bg_task *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *why;
	if (bg_route_quota_exceeded(v, &why))
		route_reject(r, t, "TENANT_QUOTA_EXCEEDED", why);
	else
		after_checks(r, t);
	json_decref(v);
}

/* The quota is checked only for a task with a user code. */
static void on_circuit(struct route *r, struct bg_task *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *why;
	struct bg_str user = t->cmd.hdr[BG_HDR_USER_CODE];
	if (bg_route_circuit_open(v, &why))
		route_reject(r, t, "AGENT_CIRCUIT_OPEN", why);
	else if (user.len)
		route_read(r, t, on_quota, "GET", BG_KEY_QUOTA, user);
	else
		after_checks(r, t);
	json_decref(v);
}

/* The optional route arguments: timeout_ms (alias availability_timeout_ms,
 * as Python names it), region, priority. NULL or what is wrong. */
static const char *route_options(struct route *r, json_t *args)
{
	json_t *to = json_object_get(args, "timeout_ms");
	json_t *region = json_object_get(args, "region");
	json_t *prio = json_object_get(args, "priority");
	if (to == NULL)
		to = json_object_get(args, "availability_timeout_ms");
	if ((to && !json_is_integer(to)) || (prio && !json_is_integer(prio)))
		return "call_agent: timeout_ms and priority must be integers";
	if (region && (!json_is_string(region) ||
		       json_string_length(region) >= sizeof(r->region)))
		return "call_agent: region must be a string of at most 159 "
		       "bytes";
	r->timeout_ms = to ? json_integer_value(to) : 0;
	if (r->timeout_ms > ROUTE_MAX_WAIT_MS)
		r->timeout_ms = ROUTE_MAX_WAIT_MS;
	r->priority = prio ? json_integer_value(prio) : 0;
	snprintf(r->region, sizeof(r->region), "%s",
		 region ? json_string_value(region) : "");
	return NULL;
}

static void call_agent(struct bg_daemon *d, struct bg_task *t, const char *id,
		       json_t *args)
{
	const char *target =
		json_string_value(json_object_get(args, "target_agent_type"));
	const char *policy =
		json_string_value(json_object_get(args, "route_policy"));
	json_t *content = json_object_get(args, "content");
	if (target == NULL || !*target || strlen(target) > 128) {
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "call_agent needs target_agent_type");
		return;
	}
	if (!json_is_string(content) && !json_is_array(content) &&
	    !json_is_object(content)) {
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "call_agent: content must be a string, an array "
			    "or an object");
		return;
	}
	struct route *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	const char *why = route_options(r, args);
	if (why) {
		free(r);
		reply_error(d, t, id, "INVALID_ARGUMENT", why);
		return;
	}
	r->d = d;
	r->tag = t->tag;
	r->attempt = t->attempt;
	r->started_ms = t->started_ms;
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->target, sizeof(r->target), "%s", target);
	snprintf(r->policy, sizeof(r->policy), "%s",
		 policy && *policy ? policy : "FAIL_FAST");
	bg_id_new(r->message_id, sizeof(r->message_id), "msg-");
	bg_id_new(r->execution_id, sizeof(r->execution_id), "exec-");
	r->args = json_incref(args);
	route_read(r, t, on_circuit, "GET", BG_KEY_CIRCUIT, S(r->target));
}

static void dispatch_group(struct bg_daemon *d, struct bg_task *t,
			   const char *id, json_t *args)
{
	json_t *tasks = json_object_get(args, "tasks");
	bool wait = !json_is_false(json_object_get(args, "wait_for_reply"));
	if (!json_is_array(tasks)) {
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "dispatch_group needs a tasks array");
		return;
	}
	if (json_array_size(tasks) == 0) {
		reply(d, t, id,
		      json_pack("{s:s,s:s}", "status", "EMPTY", "task_group_id",
				""));
		return;
	}
	char g[32], n[16];
	bg_id_new(g, sizeof(g), "tg-");
	size_t mark = t->outbox.len;
	uint32_t mark_n = t->outbox_n;
	if (wait) {
		char *gk = bg_dkey_s(d, BG_KEY_TASK_GROUP, S(g));
		snprintf(n, sizeof(n), "%zu", json_array_size(tasks));
		if (gk) {
			OUT(t, S("HSET"), S(gk), S("total"), S(n),
			    S("completed"), S("0"), S("source_agent_type"),
			    S(t->agent_type));
			OUT(t, S("EXPIRE"), S(gk), S("86400"));
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
		struct request rq = {
			.target = target ? target : "",
			.content = json_object_get(task, "content"),
			.wait = wait,
			.extra = json_object_get(task, "extra_payload"),
			.metadata = json_object_get(task, "metadata"),
			.group = g,
		};
		if (target == NULL || !*target ||
		    outbox_request(d, t, &rq) != 0) {
			t->outbox.len = mark; /* all or nothing */
			t->outbox_n = mark_n;
			json_decref(done);
			reply_error(d, t, id, "INVALID_ARGUMENT",
				    "dispatch_group: every task needs "
				    "target_agent_type and a content");
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
	reply(d, t, id,
	      json_pack("{s:s,s:s,s:o}", "status", "GROUP_QUEUED",
			"task_group_id", g, "dispatched_tasks", done));
}

static void ask_user(struct bg_daemon *d, struct bg_task *t, const char *id,
		     json_t *args)
{
	json_t *prompt = json_object_get(args, "prompt");
	char *txt = json_is_string(prompt) ? strdup(json_string_value(prompt))
		    : prompt		   ? json_dumps(prompt, JSON_COMPACT)
					   : NULL;
	if (txt == NULL) {
		reply_error(d, t, id, "INVALID_ARGUMENT",
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
		OUT(t, S("XADD"), S(t->data_key), S("*"), S("data"), bs(&out));
		OUT(t, S("EXPIRE"), S(t->data_key), S("604800"));
	}
	bg_buf_free(&out);
	free(txt);
	t->suspended = true;
	reply(d, t, id, json_pack("{s:s}", "status", "WAITING_USER"));
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
		reply_error(d, t, id, "INVALID_ARGUMENT",
			    "operation arguments must be a JSON object");
		return;
	}
	if (strcmp(op, "kv_get") == 0)
		kv_get(d, t, id, args);
	else if (strcmp(op, "kv_set") == 0)
		kv_set(d, t, id, args);
	else if (strcmp(op, "call_agent") == 0)
		call_agent(d, t, id, args);
	else if (strcmp(op, "dispatch_group") == 0)
		dispatch_group(d, t, id, args);
	else if (strcmp(op, "ask_user") == 0)
		ask_user(d, t, id, args);
	else
		reply_error(d, t, id, "UNKNOWN_OPERATION",
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
