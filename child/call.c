/* child/call.c - the handler operations bygated answers (ipc/record.h
 * BG_REC_CALL / BG_REC_REPLY): call_agent, dispatch_group, ask_user,
 * kv_get, kv_set, resume_later, cancel_call, agent_types_served. One validation and one CALL sender serve the C SDK
 * (bg_ctx_* below, which block for the REPLY) and the exec protocol
 * (protocol.c, which hands the REPLY to the program later). */
#include "child/child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX_BYTES 256
#define KV_VALUE_MAX_BYTES (64 * 1024)
#define NAME_MAX_BYTES 128
#define ID_MAX_BYTES 512	    /* a message id (supervisor BG_ID_MAX) */
#define POST_MAX_DELAY_MS 604800000 /* resume_later: 7 days */
#define SERVED_MAX_TYPES 1000

/* A JSON string of 1..max bytes without U+0000. */
static bool is_text(json_t *j, size_t max)
{
	size_t n = json_string_length(j);
	return json_is_string(j) && n >= 1 && n <= max &&
	       strlen(json_string_value(j)) == n;
}

/* Member `key` of o absent, or of JSON type `type`. */
static bool opt_type(json_t *o, const char *key, json_type type)
{
	json_t *v = json_object_get(o, key);
	return v == NULL || json_typeof(v) == type ||
	       (type == JSON_TRUE && json_is_boolean(v));
}

static bool is_wire_content(json_t *j)
{
	return json_is_string(j) || json_is_array(j);
}

/* One agent request: call_agent's args or a dispatch_group task. */
static const char *check_request(json_t *o)
{
	if (!json_is_object(o))
		return "a task must be a JSON object";
	if (!is_text(json_object_get(o, "target_agent_type"), NAME_MAX_BYTES))
		return "target_agent_type must be a string of 1-128 bytes";
	if (!is_wire_content(json_object_get(o, "content")))
		return "content must be a string or an array";
	if (!opt_type(o, "extra_payload", JSON_OBJECT) ||
	    !opt_type(o, "metadata", JSON_OBJECT))
		return "extra_payload and metadata must be objects";
	if (!opt_type(o, "route_policy", JSON_STRING))
		return "route_policy must be a string";
	return NULL;
}

static const char *check_key(json_t *args)
{
	return is_text(json_object_get(args, "key"), KEY_MAX_BYTES)
		       ? NULL
		       : "key must be a string of 1-256 bytes";
}

/* history: limit absent (20) or 1..BG_HISTORY_READ_MAX. */
static const char *check_history(json_t *args)
{
	json_t *l = json_object_get(args, "limit");
	return l == NULL || (json_is_integer(l) && json_integer_value(l) >= 1 &&
			     json_integer_value(l) <= BG_HISTORY_READ_MAX)
		       ? NULL
		       : "limit must be an integer of 1-1000";
}

static const char *check_call_agent(json_t *args)
{
	const char *why = check_request(args);
	if (why == NULL && !opt_type(args, "wait_for_reply", JSON_TRUE))
		why = "wait_for_reply must be a boolean";
	return why;
}

static const char *check_dispatch_group(json_t *args)
{
	json_t *tasks = json_object_get(args, "tasks");
	if (!json_is_array(tasks))
		return "tasks must be an array";
	for (size_t i = 0; i < json_array_size(tasks); i++) {
		const char *why = check_request(json_array_get(tasks, i));
		if (why)
			return why;
	}
	return opt_type(args, "wait_for_reply", JSON_TRUE)
		       ? NULL
		       : "wait_for_reply must be a boolean";
}

static const char *check_ask_user(json_t *args)
{
	json_t *p = json_object_get(args, "prompt");
	return json_is_string(p) || json_is_object(p)
		       ? NULL
		       : "prompt must be a string or an object";
}

static const char *check_kv_set(json_t *args)
{
	const char *why = check_key(args);
	if (why == NULL && json_object_get(args, "value") == NULL)
		why = "value is missing";
	return why;
}

/* message_id absent, null, or a string of 0..512 bytes without U+0000. */
static bool opt_message_id(json_t *args)
{
	json_t *m = json_object_get(args, "message_id");
	return m == NULL || json_is_null(m) ||
	       (json_is_string(m) && json_string_length(m) <= ID_MAX_BYTES &&
		strlen(json_string_value(m)) == json_string_length(m));
}

static const char *check_resume_later(json_t *args)
{
	json_t *c = json_object_get(args, "content");
	json_t *d = json_object_get(args, "delay_ms");
	if (c == NULL || json_is_null(c))
		return "content is missing";
	if (!opt_message_id(args))
		return "message_id must be a string of at most 512 bytes";
	if (d && (!json_is_integer(d) || json_integer_value(d) < 0 ||
		  json_integer_value(d) > POST_MAX_DELAY_MS))
		return "delay_ms must be an integer from 0 to 604800000 "
		       "(7 days)";
	return NULL;
}

static const char *check_cancel_call(json_t *args)
{
	if (!is_text(json_object_get(args, "message_id"), ID_MAX_BYTES))
		return "message_id must be a string of 1-512 bytes";
	if (!opt_type(args, "force", JSON_TRUE))
		return "force must be a boolean";
	json_t *r = json_object_get(args, "reason");
	if (r && !json_is_null(r) && !json_is_string(r))
		return "reason must be a string";
	return NULL;
}

static const char *check_agent_types_served(json_t *args)
{
	json_t *types = json_object_get(args, "agent_types");
	if (!json_is_array(types) || json_array_size(types) > SERVED_MAX_TYPES)
		return "agent_types must be an array of at most 1000 names";
	for (size_t i = 0; i < json_array_size(types); i++)
		if (!is_text(json_array_get(types, i), NAME_MAX_BYTES))
			return "every agent type must be a string of 1-128 "
			       "bytes";
	return NULL;
}

/* wait_for_reply defaults to true. */
static bool waits(const struct bg_ctx *ctx, json_t *args)
{
	(void)ctx;
	json_t *w = json_object_get(args, "wait_for_reply");
	return w == NULL || json_is_true(w);
}

/* resume_later suspends the execution that posts to itself. */
static bool posts_to_itself(const struct bg_ctx *ctx, json_t *args)
{
	const char *m = json_string_value(json_object_get(args, "message_id"));
	const char *own = ctx->task ? bg_task_get(ctx->task, BG_TASK_MESSAGE_ID)
				    : NULL;
	return m == NULL || *m == '\0' || (own && strcmp(m, own) == 0);
}

/* The operations: validation, and the status a successful reply implies
 * for a result that sets none (only when the call suspends). */
static const char *check_none(json_t *args)
{
	(void)args;
	return NULL;
}

static const struct op {
	const char *name;
	const char *(*check)(json_t *args);
	const char *suspend; /* the reply's status when it suspends */
	const char *implies;
	bool (*suspends)(const struct bg_ctx *ctx, json_t *args);
} ops[] = {
	{ "call_agent", check_call_agent, "QUEUED", "WAITING_AGENT", waits },
	{ "dispatch_group", check_dispatch_group, "GROUP_QUEUED",
	  "WAITING_AGENT", waits },
	{ "ask_user", check_ask_user, "WAITING_USER", "WAITING_USER", waits },
	{ "kv_get", check_key, NULL, NULL, NULL },
	{ "kv_set", check_kv_set, NULL, NULL, NULL },
	{ "history", check_history, NULL, NULL, NULL },
	{ "resume_later", check_resume_later, "POSTED", "WAITING_AGENT",
	  posts_to_itself },
	{ "cancel_call", check_cancel_call, NULL, NULL, NULL },
	{ "agent_types_served", check_agent_types_served, NULL, NULL, NULL },
	{ "next_resume", check_none, NULL, NULL, NULL },
};

static const struct op *find_op(const char *name)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(*ops); i++)
		if (strcmp(ops[i].name, name) == 0)
			return &ops[i];
	return NULL;
}

void bg_child_call_id(const struct bg_ctx *ctx, char *out, size_t n)
{
	snprintf(out, n, "%llu", (unsigned long long)ctx->n_calls);
}

static int too_big(json_t *j, size_t max)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = s ? strlen(s) : 0;
	free(s);
	return s == NULL ? -ENOMEM : n > max ? -EMSGSIZE : 0;
}

int bg_child_call_send(struct bg_ctx *ctx, const char *op, json_t *args,
		       const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	const struct op *o = find_op(op);
	*why = o == NULL	       ? "unknown operation"
	       : !json_is_object(args) ? "arguments must be a "
					 "JSON object"
				       : o->check(args);
	if (*why)
		return -EINVAL;
	int rc = strcmp(op, "kv_set") == 0
			 ? too_big(json_object_get(args, "value"),
				   KV_VALUE_MAX_BYTES)
			 : 0;
	if (rc == -EMSGSIZE)
		*why = "value larger than 64 KiB";
	char *text = rc ? NULL : json_dumps(args, JSON_COMPACT);
	if (rc == 0 && text == NULL)
		rc = -ENOMEM;
	if (rc)
		return rc;
	ctx->n_calls++;
	char id[24];
	bg_child_call_id(ctx, id, sizeof(id));
	struct bg_str v[BG_CF__COUNT] = {
		[BG_CF_OP] = bg_str_c(o->name),
		[BG_CF_ID] = bg_str_c(id),
		[BG_CF_ARGS] = bg_str_c(text),
	};
	rc = bg_child_send(ctx->c, BG_REC_CALL, ctx->tag, v, BG_CF__COUNT);
	free(text);
	if (rc == -EMSGSIZE)
		*why = "request larger than max_message_bytes";
	if (rc == 0) {
		ctx->call_op = o->name;
		ctx->call_suspend = o->suspend && o->suspends(ctx, args)
					    ? o->implies
					    : NULL;
	}
	return rc;
}

int bg_child_call_done(struct bg_ctx *ctx, struct bg_str text, json_t **result)
{
	const struct op *o = find_op(ctx->call_op);
	ctx->call_op = NULL;
	*result = json_loadb(text.p, text.len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(*result)) {
		json_decref(*result);
		*result = NULL;
		return -EBADMSG;
	}
	const char *st = json_string_value(json_object_get(*result, "status"));
	if (ctx->call_suspend && st && o && strcmp(st, o->suspend) == 0 &&
	    json_object_get(*result, "error") == NULL)
		ctx->suspend = ctx->call_suspend;
	return 0;
}

/* ---- the C SDK: blocking calls ---------------------------------------- */

/* Send op(args) (args consumed), wait for the REPLY; *result is the reply
 * object. Only from the thread running process(). */
static int sdk_call(struct bg_ctx *ctx, const char *op, json_t *args,
		    json_t **result)
{
	*result = NULL;
	if (ctx == NULL || args == NULL || ctx->c->running != ctx) {
		json_decref(args);
		return -EINVAL;
	}
	int rc = bg_child_call_send(ctx, op, args, NULL);
	json_decref(args);
	if (rc)
		return rc;
	char id[24];
	struct bg_str text;
	bg_child_call_id(ctx, id, sizeof(id));
	bg_child_await_reply(ctx->c, ctx->tag, id, &text);
	if (bg_child_call_done(ctx, text, result))
		bg_child_die(ctx->c, BG_CHILD_EXIT_PROTOCOL,
			     "REPLY %s of tag %llu is not a JSON object", id,
			     (unsigned long long)ctx->tag);
	return 0;
}

/* sdk_call, the reply object as JSON text in *reply (free()). */
static int sdk_call_text(struct bg_ctx *ctx, const char *op, json_t *args,
			 char **reply)
{
	json_t *res;
	if (reply == NULL) {
		json_decref(args);
		return -EINVAL;
	}
	*reply = NULL;
	int rc = sdk_call(ctx, op, args, &res);
	if (rc == 0 && (*reply = json_dumps(res, JSON_COMPACT)) == NULL)
		rc = -ENOMEM;
	json_decref(res);
	return rc;
}

/* JSON text s parsed (any value), or NULL. */
static json_t *parse(const char *s)
{
	return s ? json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
}

/* The option idempotency_key (a string) moved into the call's metadata,
 * where bygated reads it (docs/client.md, "Idempotency keys"). */
static bool key_into_metadata(json_t *args)
{
	json_t *key = json_object_get(args, "idempotency_key");
	if (key == NULL)
		return true;
	json_t *meta = json_object_get(args, "metadata");
	if (meta == NULL) {
		meta = json_object();
		if (json_object_set_new(args, "metadata", meta))
			return false;
	}
	if (!json_is_string(key) || !json_is_object(meta) ||
	    json_object_set(meta, "idempotency_key", key))
		return false;
	return json_object_del(args, "idempotency_key") == 0;
}

int bg_ctx_call_agent(struct bg_ctx *ctx, const char *target_agent_type,
		      const char *content, int wait_for_reply,
		      const char *options_json, char **reply)
{
	json_t *args = options_json ? parse(options_json) : json_object();
	if (!json_is_object(args) || !key_into_metadata(args) ||
	    target_agent_type == NULL || content == NULL ||
	    json_object_set_new(args, "target_agent_type",
				json_string(target_agent_type)) ||
	    json_object_set_new(args, "content", json_string(content)) ||
	    json_object_set_new(args, "wait_for_reply",
				json_boolean(wait_for_reply))) {
		json_decref(args);
		return -EINVAL;
	}
	return sdk_call_text(ctx, "call_agent", args, reply);
}

int bg_ctx_dispatch_group(struct bg_ctx *ctx, const char *tasks_json,
			  int wait_for_reply, char **reply)
{
	json_t *tasks = parse(tasks_json);
	json_t *args = tasks ? json_pack("{s:o,s:b}", "tasks", tasks,
					 "wait_for_reply", wait_for_reply)
			     : NULL;
	return sdk_call_text(ctx, "dispatch_group", args, reply);
}

int bg_ctx_ask_user(struct bg_ctx *ctx, const char *prompt, char **reply)
{
	json_t *p = parse(prompt);
	if (!(json_is_object(p) && json_object_get(p, "questions"))) {
		json_decref(p);
		p = prompt ? json_string(prompt) : NULL;
	}
	json_t *args = p ? json_pack("{s:o}", "prompt", p) : NULL;
	return sdk_call_text(ctx, "ask_user", args, reply);
}

int bg_ctx_kv_get(struct bg_ctx *ctx, const char *key, char **value_json)
{
	json_t *res;
	if (value_json == NULL || key == NULL)
		return -EINVAL;
	*value_json = NULL;
	int rc = sdk_call(ctx, "kv_get", json_pack("{s:s}", "key", key), &res);
	json_t *v = rc ? NULL : json_object_get(res, "value");
	if (rc == 0 && json_object_get(res, "error"))
		rc = -EIO;
	else if (rc == 0 &&
		 (!json_is_true(json_object_get(res, "found")) || v == NULL))
		rc = -ENOENT;
	else if (rc == 0 &&
		 (*value_json = json_dumps(v, JSON_COMPACT |
						      JSON_ENCODE_ANY)) == NULL)
		rc = -ENOMEM;
	json_decref(res);
	return rc;
}

int bg_ctx_history(struct bg_ctx *ctx, int limit, char **messages_json)
{
	json_t *res;
	if (messages_json == NULL || limit < 1 || limit > BG_HISTORY_READ_MAX)
		return -EINVAL;
	*messages_json = NULL;
	int rc = sdk_call(ctx, "history", json_pack("{s:i}", "limit", limit),
			  &res);
	json_t *m = rc ? NULL : json_object_get(res, "messages");
	if (rc == 0 && (json_object_get(res, "error") || !json_is_array(m)))
		rc = -EIO;
	else if (rc == 0 &&
		 (*messages_json = json_dumps(m, JSON_COMPACT)) == NULL)
		rc = -ENOMEM;
	json_decref(res);
	return rc;
}

int bg_ctx_next_resume(struct bg_ctx *ctx, char **resume_json)
{
	json_t *res;
	if (resume_json == NULL)
		return -EINVAL;
	*resume_json = NULL;
	int rc = sdk_call(ctx, "next_resume", json_object(), &res);
	if (rc == 0 && json_object_get(res, "error"))
		rc = -EIO;
	else if (rc == 0 && !json_is_true(json_object_get(res, "found")))
		rc = -ENOENT;
	else if (rc == 0) {
		json_object_del(res, "found");
		*resume_json = json_dumps(res, JSON_COMPACT);
		if (*resume_json == NULL)
			rc = -ENOMEM;
	}
	json_decref(res);
	return rc;
}

int bg_ctx_kv_set(struct bg_ctx *ctx, const char *key, const char *value_json)
{
	json_t *res, *v = parse(value_json);
	if (v == NULL || key == NULL) {
		json_decref(v);
		return -EINVAL;
	}
	int rc = sdk_call(ctx, "kv_set",
			  json_pack("{s:s,s:o}", "key", key, "value", v), &res);
	if (rc == 0 && json_object_get(res, "error"))
		rc = -EIO;
	json_decref(res);
	return rc;
}

int bg_ctx_resume_later(struct bg_ctx *ctx, const char *message_id,
			const char *content_json, int64_t delay_ms,
			char **reply)
{
	json_t *content = parse(content_json);
	json_t *args = content ? json_pack("{s:o,s:I}", "content", content,
					   "delay_ms", (json_int_t)delay_ms)
			       : NULL;
	if (args && message_id &&
	    json_object_set_new(args, "message_id", json_string(message_id))) {
		json_decref(args);
		args = NULL;
	}
	return sdk_call_text(ctx, "resume_later", args, reply);
}

int bg_ctx_cancel_call(struct bg_ctx *ctx, const char *message_id, int force,
		       const char *reason, char **reply)
{
	json_t *args = message_id ? json_pack("{s:s,s:b,s:s}", "message_id",
					      message_id, "force", force,
					      "reason", reason ? reason : "")
				  : NULL;
	return sdk_call_text(ctx, "cancel_call", args, reply);
}

int bg_ctx_agent_types_served(struct bg_ctx *ctx, const char *agent_types_json,
			      char **reply)
{
	json_t *types = parse(agent_types_json);
	json_t *args = types ? json_pack("{s:o}", "agent_types", types) : NULL;
	return sdk_call_text(ctx, "agent_types_served", args, reply);
}
