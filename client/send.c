/* client/send.c - bg_client_send: the ASK_AGENT of Python's
 * GatewayClient.send_message with its QUEUED execution record, written in
 * one MULTI/EXEC so no worker can see the entry before the record. */
#include "client/client_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wire/ids.h"
#include "wire/json.h"
#include "wire/record.h"
#include "wire/send.h"

#define SESSION_TTL "604800" /* WIRE 1.2: 7 days, on every registry write */

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

/* Python's bool() of a JSON value. */
static bool truthy(const json_t *v)
{
	if (v == NULL)
		return false;
	switch (json_typeof(v)) {
	case JSON_TRUE:
		return true;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0.0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	default:
		return false;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything one send builds before it talks to Redis. */
struct send_plan {
	char message_id[BG_CLIENT_ID_MAX];
	char execution_id[BG_ID_CAP("exec-")];
	char trace_id[BG_CLIENT_ID_MAX];
	struct popped meta, extra;
	struct bg_buf command, record, registry, stream, exec_field, msg_field;
};

static void plan_free(struct send_plan *p)
{
	popped_free(&p->meta);
	popped_free(&p->extra);
	bg_buf_free(&p->command);
	bg_buf_free(&p->record);
	bg_buf_free(&p->registry);
	bg_buf_free(&p->stream);
	bg_buf_free(&p->exec_field);
	bg_buf_free(&p->msg_field);
}

static int plan_ids(struct bg_client *c, const struct bg_send_request *req,
		    struct send_plan *p)
{
	int rc;
	if (req->message_id && req->message_id[0])
		rc = bg_client_copy_id(p->message_id, sizeof p->message_id,
				       req->message_id, strlen(req->message_id));
	else
		rc = bg_id_new(p->message_id, sizeof p->message_id, "msg-");
	if (rc == 0)
		rc = bg_id_new(p->execution_id, sizeof p->execution_id, "exec-");
	if (rc == 0 && req->trace_id && req->trace_id[0])
		rc = bg_client_copy_id(p->trace_id, sizeof p->trace_id,
				       req->trace_id, strlen(req->trace_id));
	else if (rc == 0)
		rc = bg_uuid_hex(p->trace_id, false);
	if (rc == -EINVAL)
		return bg_client_fail(c, rc, "message id or trace id longer "
					     "than %d bytes",
				      BG_CLIENT_ID_MAX - 1);
	if (rc)
		return bg_client_fail(c, rc, "cannot make ids: %s",
				      strerror(-rc));
	return 0;
}

/* The ASK_AGENT JSON (WIRE 2.5) into p->command. */
static int plan_command(struct bg_client *c, const struct bg_send_request *req,
			struct send_plan *p)
{
	static const char *const meta_keys[] = {
		"trace_parent_span_id", "langfuse_parent_observation_id"
	};
	static const char *const extra_keys[] = { "wait_for_reply" };
	if (pop_members(req->metadata, meta_keys, 2, &p->meta))
		return bg_client_fail(c, -EINVAL, "metadata is not a JSON "
						  "object");
	if (pop_members(req->extra_payload, extra_keys, 1, &p->extra))
		return bg_client_fail(c, -EINVAL, "extra_payload is not a JSON "
						  "object");
	struct bg_str span = str_of(p->meta.vals[0]);
	struct bg_str langfuse = str_of(p->meta.vals[1]);
	struct bg_send_header h = {
		.message_id = bg_str_c(p->message_id),
		.session_id = bg_str_c(req->session_id),
		.trace_id = bg_str_c(p->trace_id),
		.target_agent_type = bg_str_c(req->agent_type),
		.user_code = bg_str_c(req->user_code),
		.user_name = bg_str_c(req->user_name),
		.metadata = p->meta.text,
		.trace_parent_span_id = span,
		/* Python: no Langfuse observation -> the dispatch span id */
		.langfuse_parent_observation_id = langfuse.len ? langfuse : span,
	};
	struct bg_send_body b = {
		.content = bg_str_c(req->content),
		.content_is_json = req->content_is_json,
		.wait_for_reply = req->wait_for_reply ||
				  truthy(p->extra.vals[0]),
		.extra_payload = p->extra.text,
	};
	int rc = bg_send_ask(&p->command, &h, &b);
	if (rc == -EINVAL)
		return bg_client_fail(c, rc, req->content_is_json
			? "content is not a non-empty JSON array or object"
			: "content is blank");
	if (rc)
		return bg_client_fail(c, rc, "cannot build the command: %s",
				      strerror(-rc));
	return 0;
}

/* The keys, hash fields and QUEUED record (WIRE 6.1, 6.2). */
static int plan_record(struct bg_client *c, const struct bg_send_request *req,
		       struct send_plan *p)
{
	int rc = bg_client_key(c, &p->registry, BG_KEY_SESSION_REGISTRY,
			       req->session_id);
	if (!rc)
		rc = bg_client_key(c, &p->stream, BG_KEY_AGENT_TYPE_CTRL,
				   req->agent_type);
	if (!rc)
		rc = bg_buf_printf(&p->exec_field, "exec:%s", p->execution_id);
	if (!rc)
		rc = bg_buf_printf(&p->msg_field, "msg_map:%s", p->message_id);
	struct bg_record_queued q = {
		.execution_id = bg_str_c(p->execution_id),
		.message_id = bg_str_c(p->message_id),
		.session_id = bg_str_c(req->session_id),
		.trace_id = bg_str_c(p->trace_id),
		.source_agent_type = BG_STR_LIT("client"),
		.target_agent_type = bg_str_c(req->agent_type),
		.stream_name = { p->stream.p, p->stream.len },
		.route = true, /* FAIL_FAST / DELIVER_NOW by default */
		.now_ms = now_ms(),
	};
	if (!rc)
		rc = bg_record_build_queued(&p->record, &q);
	if (rc)
		return bg_client_fail(c, rc, "cannot build the record: %s",
				      strerror(-rc));
	return 0;
}

/* The first error reply among replies[0..n), or NULL. */
static const redisReply *first_error(redisReply *const *replies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const redisReply *r = replies[i];
		if (r && r->type == REDIS_REPLY_ERROR)
			return r;
		if (r && r->type == REDIS_REPLY_ARRAY) {
			const redisReply *e = first_error(r->element,
							  r->elements);
			if (e)
				return e;
		}
	}
	return NULL;
}

/* EXEC's reply: [HSET count, EXPIRE 1, XADD entry id]. */
static int check_exec(struct bg_client *c, redisReply **r,
		      struct bg_send_response *resp)
{
	const redisReply *err = first_error(r, 5);
	if (err)
		return bg_client_fail(c, BG_CLIENT_EREDIS, "send: %.400s",
				      err->str ? err->str : "error");
	const redisReply *exec = r[4];
	if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 3 ||
	    !bg_client_reply_is_str(exec->element[2]))
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "send: unexpected EXEC reply");
	const redisReply *id = exec->element[2];
	if (bg_client_copy_id(resp->entry_id, sizeof resp->entry_id, id->str,
			      id->len))
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "send: entry id too long");
	return 0;
}

static int transact(struct bg_client *c, struct send_plan *p,
		    struct bg_send_response *resp)
{
	const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
	const char *hset[] = { "HSET", p->registry.p, p->exec_field.p,
			       p->record.p, p->msg_field.p, p->execution_id };
	size_t hset_len[] = { 4, p->registry.len, p->exec_field.len,
			      p->record.len, p->msg_field.len,
			      strlen(p->execution_id) };
	const char *expire[] = { "EXPIRE", p->registry.p, SESSION_TTL };
	const char *xadd[] = { "XADD", p->stream.p, "*", "data", p->command.p };
	size_t xadd_len[] = { 4, p->stream.len, 1, 4, p->command.len };
	const int argc[] = { 1, 6, 3, 5, 1 };
	const char **argv[] = { multi, hset, expire, xadd, exec };
	const size_t *lens[] = { NULL, hset_len, NULL, xadd_len, NULL };
	redisReply *r[5];
	int rc = bg_client_pipeline(c, r, 5, argc, argv, lens);
	if (rc == 0)
		rc = check_exec(c, r, resp);
	for (int i = 0; i < 5; i++)
		freeReplyObject(r[i]);
	return rc;
}

int bg_client_send(struct bg_client *c, const struct bg_send_request *req,
		   struct bg_send_response *resp)
{
	c->errmsg[0] = '\0';
	memset(resp, 0, sizeof *resp);
	if (!req->agent_type || !req->agent_type[0] || !req->session_id ||
	    !req->session_id[0] || !req->content)
		return bg_client_fail(c, -EINVAL, "agent type, session and "
						  "content are required");
	struct send_plan p = { 0 };
	int rc = plan_ids(c, req, &p);
	if (!rc)
		rc = plan_command(c, req, &p);
	if (!rc)
		rc = plan_record(c, req, &p);
	if (!rc)
		rc = transact(c, &p, resp);
	if (!rc) {
		strcpy(resp->message_id, p.message_id);
		strcpy(resp->execution_id, p.execution_id);
		strcpy(resp->trace_id, p.trace_id);
	}
	plan_free(&p);
	return rc;
}
