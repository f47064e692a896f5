/* child/protocol.c - bygate-handler-protocol 1 (docs/handler-protocol.md):
 * the lines this child writes to an exec program (task, cancel, reply) and
 * the decoding of the lines it reads back into the same events, results
 * and calls a plugin makes through the SDK, with the same validation.
 * Anything the program gets wrong is a protocol violation: the program is
 * killed and its tasks fail with a message saying what it wrote. */
#include "child/child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_MAX 80 /* bytes of a bad line quoted in the error message */

/* ---- bygate -> program --------------------------------------------------- */

/* JSON text of a task field, or NULL when empty or invalid. Strings in
 * it may hold U+0000 ("\u0000"). */
static json_t *field_json(const struct bg_ctx *ctx, int f)
{
	const struct bg_task *t = ctx->task;
	return t->n[f] ? json_loadb(t->f[f], t->n[f],
				    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
		       : NULL;
}

/* The header's strings, each whole (user_name may hold U+0000). */
static json_t *header(const struct bg_ctx *ctx)
{
	static const struct {
		const char *key;
		int f;
	} keys[] = {
		{ "message_id", BG_TF_MESSAGE_ID },
		{ "session_id", BG_TF_SESSION_ID },
		{ "trace_id", BG_TF_TRACE_ID },
		{ "source_agent_type", BG_TF_SOURCE_AGENT_TYPE },
		{ "target_agent_type", BG_TF_AGENT_TYPE },
		{ "parent_message_id", BG_TF_PARENT_MESSAGE_ID },
		{ "task_group_id", BG_TF_TASK_GROUP_ID },
		{ "user_code", BG_TF_USER_CODE },
		{ "user_name", BG_TF_USER_NAME },
		{ "metadata", BG_TF_METADATA },
		{ "trace_parent_span_id", BG_TF_TRACE_PARENT_SPAN_ID },
		{ "langfuse_parent_observation_id",
		  BG_TF_LANGFUSE_PARENT_OBSERVATION_ID },
	};
	const struct bg_task *t = ctx->task;
	json_t *h = json_object();
	for (size_t i = 0; h && i < sizeof(keys) / sizeof(*keys); i++) {
		int f = keys[i].f;
		json_t *v = f == BG_TF_METADATA
				    ? field_json(ctx, f)
				    : json_stringn(t->f[f], t->n[f]);
		if (f == BG_TF_METADATA && !json_is_object(v)) {
			json_decref(v);
			v = json_object();
		}
		if (json_object_set_new(h, keys[i].key, v)) {
			json_decref(h);
			h = NULL;
		}
	}
	return h;
}

/* Dump j (consumed) as one line into out. */
static int put_line(json_t *j, struct bg_buf *out)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	int rc = s ? bg_buf_puts(out, s) : -ENOMEM;
	free(s);
	return rc;
}

int bg_proto_task_line(const struct bg_ctx *ctx, struct bg_buf *out)
{
	const char *const *f = ctx->task->f;
	json_t *groups = field_json(ctx, BG_TF_GROUP_RESULTS);
	json_t *line = json_pack(
		"{s:s,s:i,s:I,s:s,s:o,s:O,s:s,s:s,s:s,s:b,s:i,s:o}", "type",
		"task", "protocol", BG_PROTOCOL_VERSION, "task",
		(json_int_t)ctx->tag, "action_type", f[BG_TF_ACTION], "header",
		header(ctx), "body", ctx->task->body, "execution_id",
		f[BG_TF_EXECUTION_ID], "workspace", f[BG_TF_WORKSPACE],
		"private_dir", bg_task_get(ctx->task, BG_TASK_PRIVATE_DIR),
		"resumed", bg_task_is_resumed(ctx->task), "attempt",
		bg_task_attempt(ctx->task), "group_results",
		json_is_object(groups) ? groups : json_null());
	if (!json_is_object(groups))
		json_decref(groups);
	return put_line(line, out);
}

int bg_proto_cancel_line(const struct bg_ctx *ctx, struct bg_str reason,
			 struct bg_buf *out)
{
	json_t *r = json_stringn(reason.p, reason.len);
	return put_line(json_pack("{s:s,s:I,s:o}", "type", "cancel", "task",
				  (json_int_t)ctx->tag, "reason",
				  r ? r : json_string("")),
			out);
}

int bg_proto_reply_line(const struct bg_ctx *ctx, json_t *id, json_t *result,
			struct bg_buf *out)
{
	return put_line(json_pack("{s:s,s:I,s:O,s:O}", "type", "reply", "task",
				  (json_int_t)ctx->tag, "id", id, "result",
				  result),
			out);
}

/* ---- program -> bygate --------------------------------------------------- */

/* One decoded line and where it came from. */
struct line {
	struct bg_child_proc *c;
	struct bg_prog *prog;
	json_t *j;
	struct bg_ctx *ctx; /* its task */
	const char *type;
};

/* Kill the program for what the line did: -1. */
static int violation(struct line *l, const char *what)
{
	char msg[400];
	snprintf(msg, sizeof(msg), "broke bygate-handler-protocol %d: %s",
		 BG_PROTOCOL_VERSION, what);
	bg_child_prog_fail(l->c, l->prog, msg);
	return -1;
}

/* violation() with "<type> line: <what>". */
static int bad_field(struct line *l, const char *what)
{
	char msg[300];
	snprintf(msg, sizeof(msg), "%.32s line: %s", l->type, what);
	return violation(l, msg);
}

/* The task a line names ("task": its number, or its decimal text; may be
 * left out while the program runs exactly one task). */
static struct bg_ctx *find_task(struct line *l)
{
	json_t *t = json_object_get(l->j, "task");
	struct bg_ctx *only = NULL;
	int n = 0;
	for (struct bg_ctx *x = l->c->exec_tasks; x; x = x->next) {
		if (x->prog != l->prog)
			continue;
		n++;
		only = x;
		char tag[24];
		snprintf(tag, sizeof(tag), "%llu", (unsigned long long)x->tag);
		if ((json_is_integer(t) &&
		     json_integer_value(t) == (json_int_t)x->tag) ||
		    (json_is_string(t) &&
		     json_string_length(t) == strlen(tag) &&
		     !strcmp(json_string_value(t), tag)))
			return x;
	}
	return t == NULL && n == 1 ? only : NULL;
}

/* Optional string member; false when present and not a string, or (a
 * code: status, event_type) holding U+0000. */
static bool opt_str(json_t *o, const char *key, const char **out)
{
	json_t *v = json_object_get(o, key);
	*out = json_string_value(v);
	return v == NULL ||
	       (json_is_string(v) && strlen(*out) == json_string_length(v));
}

/* Optional text member, whole (U+0000 kept); p NULL when absent. */
static bool opt_text(json_t *o, const char *key, struct bg_str *out)
{
	json_t *v = json_object_get(o, key);
	*out = (struct bg_str){ json_string_value(v), json_string_length(v) };
	return v == NULL || json_is_string(v);
}

/* Optional member as JSON text (malloc'd, *out NULL when absent). */
static int opt_json(json_t *o, const char *key, char **out)
{
	json_t *v = json_object_get(o, key);
	*out = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	return v && *out == NULL ? -ENOMEM : 0;
}

static int on_event(struct line *l)
{
	const char *et, *ct = NULL;
	struct bg_str text;
	char ct_buf[24], *meta = NULL;
	json_t *ctv = json_object_get(l->j, "content_type");
	if (json_is_integer(ctv)) {
		snprintf(ct_buf, sizeof(ct_buf), "%lld",
			 (long long)json_integer_value(ctv));
		ct = ct_buf;
	} else if (ctv && !opt_str(l->j, "content_type", &ct)) {
		return bad_field(l, "content_type must be a string or a "
				    "number");
	}
	if (!opt_text(l->j, "content", &text) || text.p == NULL)
		return bad_field(l, "content must be a string");
	if (!opt_str(l->j, "event_type", &et))
		return bad_field(l, "event_type must be a string");
	if (opt_json(l->j, "metadata", &meta))
		return bad_field(l, "out of memory");
	int rc = bg_child_emit(l->ctx, l->type, text, et, ct, meta);
	free(meta);
	if (rc == -EMSGSIZE)
		return bad_field(l, "the event exceeds max_message_bytes");
	if (rc)
		return bad_field(
			l, rc == -EINVAL ? "invalid event_type, content_type "
					   "or metadata (an object)"
					 : strerror(-rc));
	return 0;
}

static int on_result(struct line *l)
{
	const char *status, *error_type;
	struct bg_str error;
	char *content = NULL, *reply = NULL, *meta = NULL, *extra = NULL;
	json_t *retry = json_object_get(l->j, "retryable");
	if (!opt_str(l->j, "status", &status) ||
	    !opt_text(l->j, "error", &error) ||
	    !opt_str(l->j, "error_type", &error_type) ||
	    (retry && !json_is_boolean(retry)))
		return bad_field(l, "status, error and error_type must be "
				    "strings (status and error_type without "
				    "U+0000), retryable a boolean");
	if (error_type && (strlen(error_type) > 128 || !*error_type))
		return bad_field(l, "error_type must be 1 to 128 bytes");
	int rc = opt_json(l->j, "extra_payload", &extra);
	if (rc == 0 && extra && strcmp(extra, "null") != 0 &&
	    (rc = bg_ctx_extra_payload(l->ctx, extra)))
		rc = -EINVAL;
	free(extra);
	if (rc == 0 && error.p)
		rc = bg_child_fail_as(l->ctx, error, error_type,
				      json_is_true(retry));
	if (error.p == NULL && !(rc = opt_json(l->j, "content", &content)) &&
	    !(rc = opt_json(l->j, "reply_data", &reply)) &&
	    !(rc = opt_json(l->j, "metadata", &meta)))
		rc = bg_child_result(l->ctx, status, content, reply, meta);
	free(content);
	free(reply);
	free(meta);
	if (rc)
		return bad_field(l, rc == -EMSGSIZE
					    ? "the result exceeds "
					      "max_message_bytes"
					    : "invalid status (1-128 bytes), "
					      "content (a string or an array "
					      "of objects), reply_data, "
					      "metadata or extra_payload (an "
					      "object)");
	bg_child_exec_finish(l->c, l->ctx);
	return 0;
}

/* Answer request l at once (not through bygated). */
static int reply_now(struct line *l, json_t *result)
{
	struct bg_buf out = { 0 };
	int rc = result ? bg_proto_reply_line(l->ctx,
					      json_object_get(l->j, "id"),
					      result, &out)
			: -ENOMEM;
	json_decref(result);
	rc = rc ? violation(l, "no memory for the reply")
		: bg_child_prog_write(l->c, l->prog, out.p, out.len);
	bg_buf_free(&out);
	return rc;
}

static int on_request(struct line *l)
{
	json_t *id = json_object_get(l->j, "id");
	if (!(json_is_integer(id) || json_is_string(id)))
		return bad_field(l, "id must be a number or a string");
	if (l->ctx->req_id)
		return bad_field(l, "sent before the reply to its previous "
				    "request");
	if (!strcmp(l->type, "check_cancelled"))
		return reply_now(l, json_pack("{s:b}", "cancelled",
					      l->ctx->cancelled));
	json_t *args = json_deep_copy(l->j);
	json_object_del(args, "type");
	json_object_del(args, "task");
	json_object_del(args, "id");
	const char *why = NULL;
	int rc = args ? bg_child_call_send(l->ctx, l->type, args, &why)
		      : -ENOMEM;
	json_decref(args);
	if (rc == 0) {
		l->ctx->req_id = json_incref(id);
		return 0;
	}
	return reply_now(l, json_pack("{s:s,s:s}", "error",
				      why ? why : strerror(-rc), "error_code",
				      rc == -EINVAL ? "INVALID_ARGUMENT"
						    : "REQUEST_FAILED"));
}

static const char *const event_kinds[] = { "chunk", "state", "artifact",
					   "sub_step" };
static const char *const requests[] = {
	"ask_user",	  "call_agent",	 "dispatch_group",
	"kv_get",	  "kv_set",	 "history",
	"resume_later",	  "cancel_call", "agent_types_served",
	"check_cancelled"
};

static bool one_of(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

#define ONE_OF(s, set) one_of(s, set, sizeof(set) / sizeof(*(set)))

/* "invalid JSON ... : '<line start>'" */
static int quote_violation(struct line *l, const char *what, const char *p,
			   size_t len)
{
	char msg[200], quote[QUOTE_MAX + 1];
	size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
	for (size_t i = 0; i < n; i++) /* the message must stay UTF-8 */
		quote[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	quote[n] = '\0';
	snprintf(msg, sizeof(msg), "%s: '%s%s'", what, quote,
		 len > QUOTE_MAX ? "..." : "");
	return violation(l, msg);
}

static int dispatch(struct line *l)
{
	if (!opt_str(l->j, "type", &l->type) || l->type == NULL)
		return violation(l, "a line without a \"type\" string");
	bool ev = ONE_OF(l->type, event_kinds);
	bool req = ONE_OF(l->type, requests);
	if (!ev && !req && strcmp(l->type, "result")) {
		char msg[120];
		snprintf(msg, sizeof(msg), "unknown line type '%.64s'",
			 l->type);
		return violation(l, msg);
	}
	if ((l->ctx = find_task(l)) == NULL)
		return bad_field(l, l->prog->n_tasks
					    ? "\"task\" does not name a task "
					      "this program is running"
					    : "written while the program runs "
					      "no task");
	return ev ? on_event(l) : req ? on_request(l) : on_result(l);
}

int bg_proto_handle_line(struct bg_child_proc *c, struct bg_prog *prog,
			 const char *line, size_t len)
{
	struct line l = { .c = c, .prog = prog };
	l.j = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
	int rc = json_is_object(l.j)
			 ? dispatch(&l)
			 : quote_violation(&l,
					   "a line that is not a JSON "
					   "object",
					   line, len);
	json_decref(l.j);
	return rc;
}
