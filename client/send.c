/* client/send.c - bg_client_send and bg_client_reply: the ASK_AGENT and
 * user RESUME of Python's GatewayClient.send_message, routed (direct worker
 * or WIRE 7 availability), with the execution record written in the same
 * MULTI/EXEC as the stream entries, before them - or, for a send with an
 * idempotency key, in one script that first takes the key. */
#include "client/client_internal.h"

#include <errno.h>
#include <string.h>
#include <stdio.h>

#include <jansson.h>

#include "cluster/slot.h"
#include "wire/idem.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/record.h"
#include "wire/route.h"
#include "wire/send.h"

/* A JSON object given by the caller, with some members taken out as Python
 * dict.pop() does. text views the object to send (the caller's bytes when
 * nothing was popped, else own); vals[i] holds the popped values (owned). */
struct popped {
	struct bg_str text;
	char *own;
	json_t *vals[2];
};

static void popped_free(struct popped *p)
{
	free(p->own);
	for (size_t i = 0; i < 2; i++)
		json_decref(p->vals[i]);
}

static bool has_any(struct bg_str obj, const char *const *keys, size_t n)
{
	struct bg_str v;
	for (size_t i = 0; i < n; i++)
		if (bg_json_obj_get(obj, keys[i], &v) == 0)
			return true;
	return false;
}

/* Fill *p from the object raw (NULL or "" = absent) minus keys[0..n),
 * n <= 2. -EINVAL when raw is not a JSON object, -ENOMEM. */
static int pop_members(const char *raw, const char *const *keys, size_t n,
		       struct popped *p)
{
	memset(p, 0, sizeof *p);
	p->text = bg_str_c(raw);
	if (p->text.len == 0)
		return 0;
	if (!bg_json_valid(p->text.p, p->text.len) ||
	    bg_json_type(p->text) != '{')
		return -EINVAL;
	if (!has_any(p->text, keys, n))
		return 0;
	json_t *obj = json_loadb(p->text.p, p->text.len, JSON_ALLOW_NUL, NULL);
	if (obj == NULL)
		return -EINVAL; /* valid JSON jansson refuses: huge integers */
	for (size_t i = 0; i < n; i++) {
		p->vals[i] = json_incref(json_object_get(obj, keys[i]));
		json_object_del(obj, keys[i]);
	}
	p->own = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (p->own == NULL)
		return -ENOMEM;
	p->text = bg_str_c(p->own);
	return 0;
}

/* A popped value used as a header string: only strings count. */
static struct bg_str str_of(const json_t *v)
{
	if (!json_is_string(v))
		return (struct bg_str){ NULL, 0 };
	return (struct bg_str){ json_string_value(v), json_string_length(v) };
}

/* Everything one send or reply builds before it talks to Redis. */
struct send_plan {
	const struct bg_send_request *req;
	bool resume;  /* a RESUME (bg_client_reply) */
	bool resumed; /* its execution exists: reused, no record written */
	char message_id[BG_CLIENT_ID_MAX];
	char execution_id[BG_CLIENT_ID_MAX];
	char trace_id[BG_CLIENT_ID_MAX];
	char target[BG_CLIENT_ID_MAX]; /* the agent type, after a fallback */
	const char *policy;
	const char *route_status;
	struct bg_client_route_result route;
	struct popped meta, extra;
	char *reply_own; /* a reply_data popped from extra_payload */
	struct bg_buf command, record, registry, stream, exec_field, msg_field;
	struct bg_buf wakeup, wakeup_key, pending, pending_key;
	struct bg_buf idem_key, idem_hash; /* a keyed send: its key, HASH */
};

static void plan_free(struct send_plan *p)
{
	popped_free(&p->meta);
	popped_free(&p->extra);
	free(p->reply_own);
	struct bg_buf *bufs[] = {
		&p->command,	&p->record,	 &p->registry, &p->stream,
		&p->exec_field, &p->msg_field,	 &p->wakeup,   &p->wakeup_key,
		&p->pending,	&p->pending_key, &p->idem_key, &p->idem_hash
	};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		bg_buf_free(bufs[i]);
}

static bool given(const char *s)
{
	return s && s[0];
}

static int copy_given(char *out, size_t cap, const char *s)
{
	return bg_client_copy_id(out, cap, s, strlen(s));
}

static int plan_ids(struct bg_client *c, struct send_plan *p)
{
	const struct bg_send_request *req = p->req;
	int rc;
	if (given(req->message_id))
		rc = copy_given(p->message_id, sizeof p->message_id,
				req->message_id);
	else
		rc = bg_id_new(p->message_id, sizeof p->message_id, "msg-");
	if (rc == 0)
		rc = bg_id_new(p->execution_id, sizeof p->execution_id,
			       "exec-");
	if (rc == 0 && given(req->trace_id))
		rc = copy_given(p->trace_id, sizeof p->trace_id, req->trace_id);
	else if (rc == 0)
		rc = bg_uuid_hex(p->trace_id, false);
	if (rc == 0 && given(req->agent_type))
		rc = copy_given(p->target, sizeof p->target, req->agent_type);
	if (rc == -EINVAL)
		return bg_client_fail(c, rc,
				      "an id or agent type is longer "
				      "than %d bytes",
				      BG_CLIENT_ID_MAX - 1);
	if (rc)
		return bg_client_fail(c, rc, "cannot make the ids");
	return 0;
}

/* A reply reuses the execution its message maps to (WIRE 6.8): its id,
 * and its agent type unless one was given. */
static int find_resumed(struct bg_client *c, struct send_plan *p)
{
	char *raw = NULL;
	size_t len = 0;
	int rc = bg_client_get_execution(c, p->req->session_id, p->message_id,
					 &raw, &len);
	if (rc == -ENOENT)
		rc = 0;
	json_t *rec = raw ? json_loadb(raw, len, 0, NULL) : NULL;
	const char *id = bg_client_jstr(rec, "execution_id");
	const char *type = bg_client_jstr(rec, "target_agent_type");
	if (rc == 0 && id[0] && strlen(id) < sizeof p->execution_id) {
		p->resumed = true;
		strcpy(p->execution_id, id);
		if (!p->target[0] && strlen(type) < sizeof p->target)
			strcpy(p->target, type);
	}
	json_decref(rec);
	free(raw);
	if (rc == 0 && !p->target[0])
		return bg_client_fail(c, -EINVAL,
				      "no agent type: message %s "
				      "has no execution in session %s",
				      p->message_id, p->req->session_id);
	return rc;
}

/* The metadata and extra_payload members Python moves (WIRE 2.3). */
static int plan_popped(struct bg_client *c, struct send_plan *p)
{
	static const char *const meta_keys[] = {
		"trace_parent_span_id", "langfuse_parent_observation_id"
	};
	static const char *const ask_keys[] = { "wait_for_reply" };
	static const char *const resume_keys[] = { "status", "reply_data" };
	if (pop_members(p->req->metadata, meta_keys, 2, &p->meta))
		return bg_client_fail(c, -EINVAL,
				      "metadata is not a JSON "
				      "object");
	if (pop_members(p->req->extra_payload,
			p->resume ? resume_keys : ask_keys, p->resume ? 2 : 1,
			&p->extra))
		return bg_client_fail(c, -EINVAL,
				      "extra_payload is not a JSON "
				      "object");
	if (p->resume && !given(p->req->reply_data) && p->extra.vals[1]) {
		p->reply_own = json_dumps(p->extra.vals[1],
					  JSON_COMPACT | JSON_ENCODE_ANY);
		if (p->reply_own == NULL)
			return bg_client_fail(c, -ENOMEM, "out of memory");
	}
	return 0;
}

/* ---- idempotency keys (docs/client.md) -------------------------------- */

/* The metadata to send with member idempotency_key = p->idem_key. */
static int meta_with_key(struct send_plan *p)
{
	json_t *m = p->meta.text.len
			    ? json_loadb(p->meta.text.p, p->meta.text.len,
					 JSON_ALLOW_NUL, NULL)
			    : json_object();
	char *own = NULL;
	if (json_is_object(m) &&
	    json_object_set_new(m, BG_IDEM_META,
				json_stringn(p->idem_key.p, p->idem_key.len)) ==
		    0)
		own = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (own == NULL)
		return -ENOMEM;
	free(p->meta.own);
	p->meta.own = own;
	p->meta.text = bg_str_c(own);
	return 0;
}

/* The key of a send (req->idempotency_key, else a metadata member) into
 * p->idem_key and its HASH, for the agent type as requested. No key: 0
 * with p->idem_key empty. */
static int plan_idem(struct bg_client *c, struct send_plan *p)
{
	const char *given_key = p->req->idempotency_key;
	struct bg_str v;
	int rc = 0;
	if (given(given_key) && p->resume)
		return bg_client_fail(c, -EINVAL,
				      "idempotency keys are for sends");
	if (p->resume)
		return 0;
	if (given(given_key))
		rc = bg_buf_puts(&p->idem_key, given_key);
	else if (bg_json_obj_get(p->meta.text, BG_IDEM_META, &v) == 0)
		rc = bg_json_type(v) == '"' ? bg_json_unescape(&p->idem_key, v)
					    : -EINVAL;
	else
		return 0;
	if (rc == 0 &&
	    !bg_idem_key_ok((struct bg_str){ p->idem_key.p, p->idem_key.len }))
		rc = -EINVAL;
	if (rc == -EINVAL)
		return bg_client_fail(c, rc,
				      "idempotency key: 1-%d printable ASCII "
				      "characters, no space",
				      BG_IDEM_KEY_MAX);
	if (rc == 0 && given(given_key))
		rc = meta_with_key(p);
	if (rc == 0)
		rc = bg_key_build(&p->idem_hash, c->cfg.key_schema,
				  BG_KEY_IDEMPOTENCY, bg_str_c(p->target),
				  (struct bg_str){ p->idem_key.p,
						   p->idem_key.len },
				  bg_str_c(""));
	return rc ? bg_client_fail(c, rc, "cannot build the idempotency key")
		  : 0;
}

/* The first send of a key: its ids into resp (duplicate). */
static void fill_duplicate(const struct send_plan *p, const char *const v[3],
			   const size_t len[3], struct bg_send_response *resp)
{
	char *out[3] = { resp->message_id, resp->session_id,
			 resp->execution_id };
	for (int i = 0; i < 3; i++)
		snprintf(out[i], BG_CLIENT_ID_MAX, "%.*s",
			 len[i] < BG_CLIENT_ID_MAX ? (int)len[i] : 0, v[i]);
	strcpy(resp->target_agent_type, p->target);
	resp->duplicate = true;
}

/* The cheap look before routing: 1 when the key is in use (resp filled),
 * 0 when it is not (the script decides), or an error. */
static int idem_first(struct bg_client *c, const struct send_plan *p,
		      struct bg_send_response *resp)
{
	static const char *const names[3] = { "message_id", "session_id",
					      "execution_id" };
	const char *v[3] = { "", "", "" };
	size_t len[3] = { 0 };
	redisReply *r;
	int rc = bg_client_cmd(c, &r, "HGETALL", p->idem_hash.p, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
	     i += 2)
		for (int k = 0; k < 3; k++)
			if (bg_client_reply_is_str(r->element[i]) &&
			    bg_client_reply_is_str(r->element[i + 1]) &&
			    !strcmp(r->element[i]->str, names[k])) {
				v[k] = r->element[i + 1]->str;
				len[k] = r->element[i + 1]->len;
			}
	if (len[0])
		fill_duplicate(p, v, len, resp);
	freeReplyObject(r);
	return resp->duplicate ? 1 : 0;
}

/* The command JSON (WIRE 2.5) for the current target into p->command. */
static int plan_command(struct bg_client *c, struct send_plan *p)
{
	const struct bg_send_request *req = p->req;
	struct bg_str span = str_of(p->meta.vals[0]);
	struct bg_str langfuse = str_of(p->meta.vals[1]);
	struct bg_send_header h = {
		.message_id = bg_str_c(p->message_id),
		.session_id = bg_str_c(req->session_id),
		.trace_id = bg_str_c(p->trace_id),
		.target_agent_type = bg_str_c(p->target),
		.parent_message_id = bg_str_c(req->parent_message_id),
		.user_code = bg_str_c(req->user_code),
		.user_name = bg_str_c(req->user_name),
		.metadata = p->meta.text,
		.trace_parent_span_id = span,
		/* Python: no Langfuse observation -> the dispatch span id */
		.langfuse_parent_observation_id = langfuse.len ? langfuse
							       : span,
	};
	struct bg_send_body b = {
		.content = bg_str_c(req->content),
		.content_is_json = req->content_is_json,
		.extra_payload = p->extra.text,
	};
	int rc;
	bg_buf_reset(&p->command);
	if (p->resume) {
		b.status = given(req->status) ? bg_str_c(req->status)
					      : str_of(p->extra.vals[0]);
		b.reply_data = bg_str_c(given(req->reply_data) ? req->reply_data
							       : p->reply_own);
		rc = bg_send_resume(&p->command, &h, &b);
	} else {
		b.wait_for_reply = req->wait_for_reply ||
				   bg_client_jtruthy(p->extra.vals[0]);
		rc = bg_send_ask(&p->command, &h, &b);
	}
	if (rc == -EINVAL && p->resume)
		return bg_client_fail(c, rc,
				      "a reply needs a status or a "
				      "content, and reply_data must be JSON");
	if (rc == -EINVAL)
		return bg_client_fail(
			c, rc,
			req->content_is_json
				? "content is not a non-empty JSON array or object"
				: "content is blank");
	if (rc)
		return bg_client_fail(c, rc, "cannot build the command");
	return 0;
}

/* ---- routing ------------------------------------------------------------ */

static int rejected(struct bg_client *c, struct send_plan *p, const char *code,
		    const char *msg)
{
	p->route.status = BG_ROUTE_REJECT;
	snprintf(p->route.error_code, sizeof p->route.error_code, "%s", code);
	snprintf(p->route.error, sizeof p->route.error, "%s", msg);
	return bg_client_fail(c, BG_CLIENT_EREJECTED, "%s: %s", code, msg);
}

/* WIRE 6.9: the worker's lease must be online unless SEND_ANYWAY. */
static int route_direct(struct bg_client *c, struct send_plan *p)
{
	const char *w = p->req->worker_id;
	bool online = true;
	char msg[BG_CLIENT_ID_MAX + 64];
	int rc = 0;
	if (strcmp(p->policy, "SEND_ANYWAY"))
		rc = bg_client_worker_online(c, w, &online);
	if (rc)
		return rc;
	if (!online) {
		snprintf(msg, sizeof msg,
			 "Target worker '%s' is not online or "
			 "not registered",
			 w);
		return rejected(c, p, "WORKER_NOT_ONLINE", msg);
	}
	p->route_status = "DIRECT_WORKER";
	return bg_client_key(c, &p->stream, BG_KEY_WORKER_CTRL, w);
}

static int route_availability(struct bg_client *c, struct send_plan *p)
{
	const struct bg_send_request *req = p->req;
	struct bg_client_intent in = {
		.execution_id = p->execution_id,
		.message_id = p->message_id,
		.session_id = req->session_id,
		.trace_id = p->trace_id,
		.source = "client",
		.target_agent_type = p->target,
		.user_code = req->user_code,
		.region = req->region,
		.priority = req->priority,
		.policy = p->policy,
		.timeout_ms = req->timeout_ms,
		.command = { p->command.p, p->command.len },
		.metadata = bg_str_c(req->metadata),
	};
	int rc = bg_client_prepare_delivery(c, &in, &p->route);
	p->route_status = bg_client_route_name(p->route.status);
	if (rc || p->route.status == BG_ROUTE_REJECT)
		return rc;
	if (p->route.status == BG_ROUTE_QUEUE_PENDING) {
		rc = bg_client_key0(c, &p->pending_key,
				    BG_KEY_PENDING_DELIVERIES);
		if (rc == 0)
			rc = bg_client_pending_json(c, &p->pending, &in);
		if (rc == 0 && p->route.wakeup)
			rc = bg_client_key0(c, &p->wakeup_key, BG_KEY_WAKEUP);
		if (rc == 0 && p->route.wakeup)
			rc = bg_client_wakeup_json(c, &p->wakeup, &in);
		if (rc == 0) /* the record's stream_name */
			rc = bg_buf_puts(&p->stream, p->pending_key.p);
		return rc;
	}
	if (p->route.status == BG_ROUTE_FALLBACK) {
		strcpy(p->target, p->route.selected);
		rc = plan_command(c,
				  p); /* header.target_agent_type rewritten */
	}
	if (rc == 0)
		rc = bg_client_key(c, &p->stream, BG_KEY_AGENT_TYPE_CTRL,
				   p->target);
	return rc;
}

/* ---- records and the transaction --------------------------------------- */

static int plan_fields(struct bg_client *c, struct send_plan *p)
{
	int rc = bg_client_key(c, &p->registry, BG_KEY_SESSION_REGISTRY,
			       p->req->session_id);
	if (!rc)
		rc = bg_buf_printf(&p->exec_field, "exec:%s", p->execution_id);
	if (!rc)
		rc = bg_buf_printf(&p->msg_field, "msg_map:%s", p->message_id);
	return rc;
}

/* The record members of the plan (WIRE 6.2). */
static struct bg_record_queued record_fields(const struct send_plan *p)
{
	return (struct bg_record_queued){
		.execution_id = bg_str_c(p->execution_id),
		.message_id = bg_str_c(p->message_id),
		.session_id = bg_str_c(p->req->session_id),
		.trace_id = bg_str_c(p->trace_id),
		.parent_message_id = bg_str_c(p->req->parent_message_id),
		.source_agent_type = BG_STR_LIT("client"),
		.target_agent_type = bg_str_c(p->target),
		.stream_name = { p->stream.p, p->stream.len },
		.route = true,
		.route_policy = bg_str_c(p->policy),
		.route_status = bg_str_c(p->route_status),
		.selected_agent_type = bg_str_c(p->route.selected),
		.now_ms = bg_client_now_ms(),
	};
}

/* The QUEUED record of initialize_execution (WIRE 6.2). */
static int build_queued(struct send_plan *p)
{
	struct bg_record_queued q = record_fields(p);
	return bg_record_build_queued(&p->record, &q);
}

/* The FAILED record of record_failed_route_decision: no stream, no
 * selected agent type. */
static int build_failed(struct send_plan *p)
{
	struct bg_record_queued q = record_fields(p);
	q.stream_name = BG_STR_LIT("");
	q.selected_agent_type = BG_STR_LIT("");
	q.availability_error_code = bg_str_c(p->route.error_code);
	q.availability_error = bg_str_c(p->route.error);
	return bg_route_failed_record(&p->record, &q);
}

/* The start of both keyed-send scripts: KEYS[1] the key's HASH, ARGV 1-5
 * its message_id, session_id, execution_id, at_ms and TTL (ms). The key in
 * use: {0, message_id, session_id, execution_id} and nothing written;
 * else the key is taken and the script goes on. */
#define TAKE_KEY_LUA                                                           \
	"local m = redis.call('HGET', KEYS[1], 'message_id')\n"                \
	"if m then\n"                                                          \
	"  return {0, m, redis.call('HGET', KEYS[1], 'session_id') or '',\n"   \
	"          redis.call('HGET', KEYS[1], 'execution_id') or ''}\n"       \
	"end\n"                                                                \
	"redis.call('HSET', KEYS[1], 'message_id', ARGV[1], 'session_id',\n"   \
	"           ARGV[2], 'execution_id', ARGV[3], 'at_ms', ARGV[4])\n"     \
	"redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"

/* KEYS[1] the key's HASH, KEYS[2] the session registry, KEYS[3..] the
 * streams of the entries. ARGV: 1-4 the HASH's message_id, session_id,
 * execution_id and at_ms, 5 its TTL (ms), 6-9 the registry's exec: and
 * msg_map: fields and values, 10 its TTL (s), 11.. the entries' data.
 * The key in use: {0, message_id, session_id, execution_id}, nothing
 * written. Else the key is taken and the MULTI/EXEC of transact() done:
 * {1, entry ids...}. Only HGET, HSET, PEXPIRE, EXPIRE and XADD. */
static const char SEND_LUA[] = TAKE_KEY_LUA
	"redis.call('HSET', KEYS[2], ARGV[6], ARGV[7], ARGV[8], ARGV[9])\n"
	"redis.call('EXPIRE', KEYS[2], ARGV[10])\n"
	"local ids = {1}\n"
	"for i = 3, #KEYS do\n"
	"  ids[i - 1] = redis.call('XADD', KEYS[i], '*', 'data', ARGV[i + 8])\n"
	"end\n"
	"return ids\n";

static int64_t idem_ttl_ms(const struct bg_client *c,
			   const struct bg_send_request *req)
{
	int s = req->idempotency_ttl_s > 0     ? req->idempotency_ttl_s
		: c->cfg.idempotency_ttl_s > 0 ? c->cfg.idempotency_ttl_s
					       : 300;
	return (int64_t)s * 1000;
}

/* A keyed send script's reply: {0, message_id, session_id, execution_id}
 * (the key in use: resp gets the first's ids; 1) or {1, n entry ids}
 * (into ids[], each NULL or BG_CLIENT_ENTRY_ID_MAX bytes; 0); -1 for
 * anything else. */
static int keyed_reply(const struct send_plan *p, const redisReply *r, int n,
		       char **ids, struct bg_send_response *resp)
{
	const redisReply *e = r->element && r->elements ? r->element[0] : NULL;
	if (r->type != REDIS_REPLY_ARRAY || e == NULL ||
	    e->type != REDIS_REPLY_INTEGER)
		return -1;
	if (e->integer == 0 && r->elements == 4) {
		const char *v[3];
		size_t len[3];
		for (int i = 0; i < 3; i++) {
			if (!bg_client_reply_is_str(r->element[i + 1]))
				return -1;
			v[i] = r->element[i + 1]->str;
			len[i] = r->element[i + 1]->len;
		}
		fill_duplicate(p, v, len, resp);
		return 1;
	}
	if (e->integer != 1 || r->elements != (size_t)n + 1)
		return -1;
	for (int i = 0; i < n; i++)
		if (!bg_client_reply_is_str(r->element[i + 1]) ||
		    (ids[i] != NULL &&
		     bg_client_copy_id(ids[i], BG_CLIENT_ENTRY_ID_MAX,
				       r->element[i + 1]->str,
				       r->element[i + 1]->len) != 0))
			return -1;
	return 0;
}

/* transact() for a keyed send: SEND_LUA with the n XADDs of xadd[] (key,
 * data), entry ids into ids[]; on a duplicate resp gets the first's. */
static int transact_keyed(struct bg_client *c, struct send_plan *p, int n,
			  const char *const *const *xadd, char **ids,
			  struct bg_send_response *resp)
{
	char nkeys[4], now[24], ttl[24];
	snprintf(nkeys, sizeof nkeys, "%d", 2 + n);
	snprintf(now, sizeof now, "%lld", (long long)bg_client_now_ms());
	snprintf(ttl, sizeof ttl, "%lld", (long long)idem_ttl_ms(c, p->req));
	/* 3 + n keys, 10 + n arguments; n <= 2 (a wakeup and a pending
	 * delivery) */
	const char *argv[3 + 2 * 2 + 10] = { nkeys, p->idem_hash.p,
					     p->registry.p };
	if (n > 2)
		return bg_client_fail(c, -EINVAL, "send: %d entries", n);
	int k = 3;
	for (int i = 0; i < n; i++)
		argv[k++] = xadd[i][1];
	const char *args[] = { p->message_id,
			       p->req->session_id,
			       p->execution_id,
			       now,
			       ttl,
			       p->exec_field.p,
			       p->record.p,
			       p->msg_field.p,
			       p->execution_id,
			       BG_CLIENT_SESSION_TTL };
	for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
		argv[k++] = args[i];
	for (int i = 0; i < n; i++)
		argv[k++] = xadd[i][4];
	redisReply *r;
	int rc = bg_client_eval(c, SEND_LUA, k, argv, NULL, &r);
	if (rc)
		return rc;
	int got = keyed_reply(p, r, n, ids, resp);
	freeReplyObject(r);
	return got >= 0 ? 0
			: bg_client_fail(c, BG_CLIENT_EPROTO,
					 "send: unexpected script reply");
}

/* Under Redis Cluster: the key's HASH is in the slot of the agent type's
 * stream (its tag is the stream's key), the registry in the session's.
 * KEYS[1] the HASH, KEYS[2] the stream; ARGV 1-5 as SEND_LUA's, 6 the
 * entry's data. The key in use: {0, message_id, session_id,
 * execution_id}, nothing written; else the key taken and the entry added:
 * {1, entry id}. */
static const char SEND_SPLIT_LUA[] = TAKE_KEY_LUA
	"return {1, redis.call('XADD', KEYS[2], '*', 'data', ARGV[6])}\n";

/* A keyed send under Redis Cluster: the record and msg_map first (the
 * session's slot), as every send writes them before the entry; then the
 * key taken and the entry added in one script (the stream's slot). A copy
 * (the key in use) takes its record back: the fields it wrote go, and a
 * msg_map it overwrote (the same message sent again) names the first's
 * execution again. A send cut off between the two leaves a QUEUED record
 * and no entry, as an unkeyed one under Cluster does. */
static int transact_keyed_split(struct bg_client *c, struct send_plan *p,
				const char *const *const *session,
				const char *const *entry, char *id,
				struct bg_send_response *resp)
{
	redisReply *exec = NULL;
	int rc = bg_client_transact(c, "send", 2, session, &exec);
	freeReplyObject(exec);
	if (rc)
		return rc;
	char now[24], ttl[24];
	snprintf(now, sizeof now, "%lld", (long long)bg_client_now_ms());
	snprintf(ttl, sizeof ttl, "%lld", (long long)idem_ttl_ms(c, p->req));
	const char *argv[] = { "2",
			       p->idem_hash.p,
			       entry[1],
			       p->message_id,
			       p->req->session_id,
			       p->execution_id,
			       now,
			       ttl,
			       entry[4] };
	redisReply *r;
	rc = bg_client_eval(c, SEND_SPLIT_LUA, 9, argv, NULL, &r);
	if (rc)
		return rc;
	int got = keyed_reply(p, r, 1, &id, resp);
	freeReplyObject(r);
	if (got < 0)
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "send: unexpected script reply");
	if (got == 0)
		return 0;
	/* a copy: the msg_map it overwrote names the first's execution
	 * again (the same message sent again), else it goes; its record
	 * goes */
	bool same = strcmp(resp->message_id, p->message_id) == 0 &&
		    strcmp(resp->session_id, p->req->session_id) == 0;
	rc = same ? bg_client_cmd(c, NULL, "HSET", p->registry.p,
				  p->msg_field.p, resp->execution_id, NULL)
		  : bg_client_cmd(c, NULL, "HDEL", p->registry.p,
				  p->msg_field.p, NULL);
	if (rc == 0 && strcmp(resp->execution_id, p->execution_id) != 0)
		rc = bg_client_cmd(c, NULL, "HDEL", p->registry.p,
				   p->exec_field.p, NULL);
	return rc;
}

/* Under Redis Cluster no transaction spans the session's registry and an
 * agent type's stream (other slots): the record and msg_map go first, in
 * one MULTI/EXEC of the session's slot, then each entry on its own, as
 * by-framework's clients write them under Cluster. A send cut off between
 * the two leaves a QUEUED record and no command, which the reference
 * leaves too: the send failed, and its caller is told so. */
static int transact_split(struct bg_client *c, int n_session, int n,
			  const char *const *const *cmds, char **ids)
{
	redisReply *exec = NULL;
	int rc = n_session
			 ? bg_client_transact(c, "send", n_session, cmds, &exec)
			 : 0;
	freeReplyObject(exec);
	for (int i = n_session; rc == 0 && i < n; i++) {
		int argc = 0;
		while (cmds[i][argc])
			argc++;
		redisReply *r = NULL;
		rc = bg_client_command(c, &r, argc, (const char **)cmds[i],
				       NULL);
		if (rc == 0 && ids[i] &&
		    (!bg_client_reply_is_str(r) ||
		     bg_client_copy_id(ids[i], BG_CLIENT_ENTRY_ID_MAX, r->str,
				       r->len)))
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "send: unexpected XADD reply");
		freeReplyObject(r);
	}
	return rc;
}

/* One MULTI/EXEC: [record + msg_map, EXPIRE] then the stream entries.
 * Entry ids land in resp. A keyed send with entries: transact_keyed;
 * under Redis Cluster: transact_split. */
static int transact(struct bg_client *c, struct send_plan *p, bool entries,
		    struct bg_send_response *resp)
{
	const char *hset[] = { "HSET",	    p->registry.p,  p->exec_field.p,
			       p->record.p, p->msg_field.p, p->execution_id,
			       NULL };
	const char *expire[] = { "EXPIRE", p->registry.p, BG_CLIENT_SESSION_TTL,
				 NULL };
	const char *wake[] = { "XADD", p->wakeup_key.p, "*",
			       "data", p->wakeup.p,	NULL };
	const char *pend[] = { "XADD", p->pending_key.p, "*",
			       "data", p->pending.p,	 NULL };
	const char *cmd[] = { "XADD", p->stream.p,  "*",
			      "data", p->command.p, NULL };
	const char *const *cmds[4];
	char *ids[4] = { NULL };
	int n = 0, n_session = 0;
	if (!p->resumed || !entries) {
		cmds[n++] = hset;
		cmds[n++] = expire;
		n_session = 2;
	}
	if (entries && p->route.status == BG_ROUTE_QUEUE_PENDING) {
		if (p->route.wakeup)
			cmds[n++] = wake;
		ids[n] = resp->pending_id;
		cmds[n++] = pend;
	} else if (entries) {
		ids[n] = resp->entry_id;
		cmds[n++] = cmd;
	}
	if (c->cluster && entries && p->idem_key.len && n == 3 &&
	    cmds[2] == cmd &&
	    bg_slot_of(p->idem_hash.p, p->idem_hash.len) ==
		    bg_slot_of(p->stream.p, p->stream.len))
		return transact_keyed_split(c, p, cmds, cmd, ids[2], resp);
	if (c->cluster && entries && p->idem_key.len)
		return bg_client_fail(
			c, BG_CLIENT_ECONFIG,
			"send: a keyed send that waits in the pending "
			"deliveries (QUEUE_ONLY, WAKE_AND_QUEUE) or goes to "
			"another stream than its agent type's (a worker, a "
			"fallback) is not available under Redis Cluster yet "
			"(the key's hash, the session and that stream: three "
			"slots); nothing was written");
	if (c->cluster)
		return transact_split(c, n_session, n, cmds, ids);
	if (entries && p->idem_key.len && n >= 3)
		return transact_keyed(c, p, n - 2, cmds + 2, ids + 2, resp);
	redisReply *exec;
	int rc = bg_client_transact(c, "send", n, cmds, &exec);
	for (int i = 0; rc == 0 && i < n; i++) {
		const redisReply *r = exec->element[i];
		if (ids[i] && (!bg_client_reply_is_str(r) ||
			       bg_client_copy_id(ids[i], BG_CLIENT_ENTRY_ID_MAX,
						 r->str, r->len)))
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "send: unexpected XADD reply");
	}
	freeReplyObject(exec);
	return rc;
}

static void fill_response(const struct send_plan *p,
			  struct bg_send_response *resp)
{
	strcpy(resp->message_id, p->message_id);
	snprintf(resp->session_id, sizeof resp->session_id, "%s",
		 p->req->session_id);
	strcpy(resp->execution_id, p->execution_id);
	strcpy(resp->trace_id, p->trace_id);
	strcpy(resp->target_agent_type, p->target);
	snprintf(resp->route_status, sizeof resp->route_status, "%s",
		 p->route_status ? p->route_status : "REJECT");
	snprintf(resp->stream, sizeof resp->stream, "%s",
		 p->stream.p ? p->stream.p : "");
	resp->resumed = p->resumed;
	strcpy(resp->error_code, p->route.error_code);
	strcpy(resp->error, p->route.error);
}

/* Route, then write: the record and entries, or the rejected record. */
static int route_and_write(struct bg_client *c, struct send_plan *p,
			   struct bg_send_response *resp)
{
	int rc = given(p->req->worker_id) ? route_direct(c, p)
					  : route_availability(c, p);
	if (rc == BG_CLIENT_EREJECTED)
		return rc; /* direct route: nothing written, as in Python */
	if (rc == 0)
		rc = plan_fields(c, p);
	if (rc == 0 && p->route.status == BG_ROUTE_REJECT) {
		rc = build_failed(p);
		if (rc == 0)
			rc = transact(c, p, false, resp);
		return rc ? rc
			  : bg_client_fail(c, BG_CLIENT_EREJECTED, "%s: %s",
					   p->route.error_code, p->route.error);
	}
	if (rc == 0 && !p->resumed)
		rc = build_queued(p);
	if (rc == 0)
		rc = transact(c, p, true, resp);
	return rc;
}

static int send_or_reply(struct bg_client *c, const struct bg_send_request *req,
			 bool resume, struct bg_send_response *resp)
{
	c->errmsg[0] = '\0';
	memset(resp, 0, sizeof *resp);
	if (!given(req->session_id) || (!resume && !given(req->agent_type)) ||
	    (!resume && !req->content) || (resume && !given(req->message_id)))
		return bg_client_fail(
			c, -EINVAL,
			resume ? "message id and session are required"
			       : "agent type, session and content are required");
	struct send_plan p = { .req = req, .resume = resume };
	p.policy = given(req->route_policy) ? req->route_policy : "FAIL_FAST";
	int rc = plan_ids(c, &p);
	if (rc == 0 && resume)
		rc = find_resumed(c, &p);
	if (rc == 0)
		rc = plan_popped(c, &p);
	if (rc == 0)
		rc = plan_idem(c, &p);
	if (rc == 0)
		rc = plan_command(c, &p);
	if (rc == 0 && p.idem_key.len)
		rc = idem_first(c, &p,
				resp); /* 1: a duplicate, before routing */
	if (rc == 0)
		rc = route_and_write(c, &p, resp);
	if (rc == 1)
		rc = 0;
	else if ((rc == 0 && !resp->duplicate) || rc == BG_CLIENT_EREJECTED)
		fill_response(&p, resp);
	plan_free(&p);
	return rc;
}

int bg_client_send(struct bg_client *c, const struct bg_send_request *req,
		   struct bg_send_response *resp)
{
	return send_or_reply(c, req, false, resp);
}

int bg_client_reply(struct bg_client *c, const struct bg_send_request *req,
		    struct bg_send_response *resp)
{
	return send_or_reply(c, req, true, resp);
}
