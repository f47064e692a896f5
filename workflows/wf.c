/* workflows/wf.c - the state, step events, sub-calls and resumes every
 * workflow agent type uses (wf.h). */
#include "workflows/wf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A kv value holds at most 64 KiB of JSON text (handler.h). A piece is a
 * JSON string of at most PIECE_BYTES of text, which escaping at most
 * doubles (every byte a quote or a backslash) plus the quotes. */
#define INLINE_BYTES 60000
#define PIECE_BYTES 30000
#define MAX_PIECES 1024 /* 30 MB: more than any workflow keeps */

int64_t wf_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wf_key(char *buf, size_t len, const char *exec_id, const char *part)
{
	snprintf(buf, len, "bygate.wf/%s/%s", exec_id, part);
}

static int kv_get_json(struct bg_ctx *ctx, const char *key, json_t **v)
{
	char *txt = NULL;
	int rc = bg_ctx_kv_get(ctx, key, &txt);
	if (rc < 0)
		return rc;
	*v = json_loads(txt, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	free(txt);
	return *v ? 0 : -EIO;
}

static int kv_set_json(struct bg_ctx *ctx, const char *key, const json_t *v)
{
	char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (txt == NULL)
		return -ENOMEM;
	int rc = bg_ctx_kv_set(ctx, key, txt);
	free(txt);
	return rc;
}

int wf_load(struct bg_ctx *ctx, const char *key, json_t **value)
{
	json_t *w = NULL;
	int rc = kv_get_json(ctx, key, &w);
	if (rc < 0)
		return rc;
	json_t *v = json_object_get(w, "v");
	json_int_t n = json_integer_value(json_object_get(w, "pieces"));
	if (v) {
		*value = json_incref(v);
		json_decref(w);
		return 0;
	}
	json_decref(w);
	if (n <= 0 || n > MAX_PIECES)
		return -EIO;
	char *text = NULL;
	size_t len = 0;
	char pk[320];
	for (json_int_t i = 0; i < n; i++) {
		json_t *p = NULL;
		snprintf(pk, sizeof(pk), "%s#%lld", key, (long long)i);
		rc = kv_get_json(ctx, pk, &p);
		if (rc == 0 && !json_is_string(p))
			rc = -EIO;
		if (rc < 0) {
			json_decref(p);
			free(text);
			return rc == -ENOENT ? -EIO : rc;
		}
		size_t pl = json_string_length(p);
		char *grown = realloc(text, len + pl + 1);
		if (grown == NULL) {
			json_decref(p);
			free(text);
			return -ENOMEM;
		}
		text = grown;
		memcpy(text + len, json_string_value(p), pl);
		len += pl;
		text[len] = '\0';
		json_decref(p);
	}
	*value = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	free(text);
	return *value ? 0 : -EIO;
}

/* The length of the longest prefix of s[0..len) of at most max bytes that
 * ends on a UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int wf_save(struct bg_ctx *ctx, const char *key, const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		return -ENOMEM;
	size_t len = strlen(text);
	int rc;
	if (len <= INLINE_BYTES) {
		json_t *w = json_pack("{s:O}", "v", value);
		rc = w ? kv_set_json(ctx, key, w) : -ENOMEM;
		json_decref(w);
		free(text);
		return rc;
	}
	size_t off = 0;
	int n = 0;
	char pk[320];
	rc = 0;
	while (off < len && rc == 0) {
		if (n >= MAX_PIECES) {
			rc = -E2BIG;
			break;
		}
		size_t cut = utf8_cut(text + off, len - off, PIECE_BYTES);
		json_t *p = json_stringn_nocheck(text + off, cut);
		snprintf(pk, sizeof(pk), "%s#%d", key, n);
		rc = p ? kv_set_json(ctx, pk, p) : -ENOMEM;
		json_decref(p);
		off += cut;
		n++;
	}
	free(text);
	if (rc == 0) {
		json_t *w = json_pack("{s:i}", "pieces", n);
		rc = w ? kv_set_json(ctx, key, w) : -ENOMEM;
		json_decref(w);
	}
	return rc;
}

int wf_step(struct bg_ctx *ctx, const char *kind, const char *run_id,
	    json_t *step)
{
	if (step == NULL)
		return -ENOMEM;
	json_object_set_new(step, "bygate_workflow", json_string(kind));
	json_object_set_new(step, "run_id", json_string(run_id));
	char *txt = json_dumps(step, JSON_COMPACT);
	json_decref(step);
	if (txt == NULL)
		return -ENOMEM;
	int rc = bg_ctx_state(ctx, txt);
	free(txt);
	return rc;
}

/* ---- resumes ---- */

/* r from its body and metadata (both taken). */
static int resume_parse(json_t *body, json_t *meta, struct wf_resume *r)
{
	memset(r, 0, sizeof(*r));
	r->body = body;
	r->meta = meta;
	if (!json_is_object(r->body))
		return -EINVAL;
	r->status = json_string_value(json_object_get(r->body, "status"));
	if (r->status == NULL)
		r->status = "";
	r->content = json_object_get(r->body, "content");
	r->reply_data = json_object_get(r->body, "reply_data");
	if (r->reply_data == NULL)
		r->reply_data = json_null();
	r->extra = json_object_get(r->body, "extra_payload");
	if (!json_is_object(r->extra))
		r->extra = NULL;
	json_t *post = r->extra ? json_object_get(r->extra, "bygate_post")
				: NULL;
	r->tag = json_string_value(json_object_get(r->meta, WF_TAG_KEY));
	/* the tag first: a posted resume never carries one (its metadata is
	 * the poster's lane and priority only), while a callee's result may
	 * hold any extra_payload, bygate_post included */
	if (r->tag) {
		r->kind = WF_CALLBACK;
	} else if (json_is_object(post)) {
		r->kind = WF_POSTED;
		r->posted = r->content;
	} else {
		r->kind = WF_OTHER;
	}
	return 0;
}

int wf_resume_read(const struct bg_task *task, struct wf_resume *r)
{
	return resume_parse(
		json_loads(bg_task_body_json(task), JSON_ALLOW_NUL, NULL),
		json_loads(bg_task_metadata_json(task), 0, NULL), r);
}

int wf_resume_take(struct bg_ctx *ctx, struct wf_resume *r)
{
	char *txt = NULL;
	memset(r, 0, sizeof(*r));
	int rc = bg_ctx_next_resume(ctx, &txt);
	if (rc < 0)
		return rc;
	json_t *v = json_loads(txt, JSON_ALLOW_NUL, NULL);
	free(txt);
	rc = resume_parse(json_incref(json_object_get(v, "body")),
			  json_incref(json_object_get(v, "metadata")), r);
	json_decref(v);
	return rc == -EINVAL ? -EBADMSG : rc;
}

int wf_each_resume(const struct bg_task *task, struct bg_ctx *ctx,
		   int (*step)(void *arg, const struct wf_resume *r), void *arg)
{
	struct wf_resume res;
	int got = wf_resume_read(task, &res), rc = 0;
	for (int n = 0;; n++) {
		if (got == 0)
			rc = step(arg, &res);
		wf_resume_free(&res);
		if (rc < 0 || n + 1 >= WF_MAX_STEPS_PER_RUN)
			break;
		got = wf_resume_take(ctx, &res);
		if (got < 0 && got != -EBADMSG) /* -EBADMSG: taken, skipped */
			break;
	}
	return rc;
}

void wf_resume_free(struct wf_resume *r)
{
	json_decref(r->body);
	json_decref(r->meta);
	memset(r, 0, sizeof(*r));
}

bool wf_status_terminal(const char *s)
{
	static const char *const terminal[] = { "COMPLETED", "FAILED",
						"CANCELLED", "TIMEOUT",
						"REJECTED" };
	for (size_t i = 0; i < sizeof(terminal) / sizeof(*terminal); i++)
		if (strcasecmp(s, terminal[i]) == 0)
			return true;
	return false;
}

bool wf_succeeded(const struct wf_resume *r)
{
	return strcasecmp(r->status, "COMPLETED") == 0 || r->status[0] == '\0';
}

static bool empty_value(const json_t *v)
{
	return v == NULL || json_is_null(v) ||
	       (json_is_string(v) && json_string_length(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

json_t *wf_output(const struct wf_resume *r)
{
	if (json_is_object(r->reply_data) || json_is_array(r->reply_data))
		return json_incref(r->reply_data); /* structured: a
						      workflow's result */
	if (!empty_value(r->content))
		return json_incref(r->content);
	return json_incref(r->reply_data);
}

char *wf_error(const struct wf_resume *r)
{
	if (wf_succeeded(r))
		return NULL;
	const char *e =
		json_string_value(json_object_get(r->reply_data, "error"));
	if (e == NULL)
		e = json_string_value(json_object_get(r->reply_data, "reason"));
	char buf[1200];
	if (e && *e)
		snprintf(buf, sizeof(buf), "%s: %.1024s", r->status, e);
	else
		snprintf(buf, sizeof(buf), "%s", r->status);
	return strdup(buf);
}

/* ---- sub-calls and the end ---- */

int wf_call(struct bg_ctx *ctx, const char *agent, json_t *content,
	    json_t *extra, json_t *metadata, const char *tag, char *msg_id,
	    size_t msg_id_len, char *err, size_t errlen)
{
	json_t *meta = metadata ? json_deep_copy(metadata) : json_object();
	json_object_set_new(meta, WF_TAG_KEY, json_string(tag));
	json_t *opts = json_pack("{s:o}", "metadata", meta);
	if (extra)
		json_object_set(opts, "extra_payload", extra);
	char *otxt = json_dumps(opts, JSON_COMPACT);
	json_decref(opts);
	char *ctxt = NULL;
	if (content == NULL || json_is_null(content))
		ctxt = strdup("");
	else if (json_is_string(content))
		ctxt = strndup(json_string_value(content),
			       json_string_length(content));
	else
		ctxt = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
	char *reply = NULL;
	int rc = (otxt && ctxt)
			 ? bg_ctx_call_agent(ctx, agent, ctxt, 1, otxt, &reply)
			 : -ENOMEM;
	free(otxt);
	free(ctxt);
	if (rc < 0) {
		snprintf(err, errlen, "call_agent %s: %s", agent,
			 strerror(-rc));
		return rc;
	}
	json_t *rep = json_loads(reply, 0, NULL);
	free(reply);
	const char *st = json_string_value(json_object_get(rep, "status"));
	const char *mid = json_string_value(json_object_get(rep, "message_id"));
	if (st == NULL || strcmp(st, "QUEUED") != 0 || mid == NULL) {
		const char *e =
			json_string_value(json_object_get(rep, "error"));
		const char *code =
			json_string_value(json_object_get(rep, "error_code"));
		snprintf(err, errlen, "%s%s%s", code ? code : "refused",
			 e ? ": " : "", e ? e : "");
		json_decref(rep);
		return -EAGAIN;
	}
	snprintf(msg_id, msg_id_len, "%s", mid);
	json_decref(rep);
	return 0;
}

char *wf_caller_tag(const struct bg_task *task)
{
	json_t *m = json_loads(bg_task_metadata_json(task), 0, NULL);
	const char *tag = json_string_value(json_object_get(m, WF_TAG_KEY));
	char *out = tag ? strdup(tag) : NULL;
	json_decref(m);
	return out;
}

int wf_end(struct bg_ctx *ctx, json_t *result, bool ok, const char *error,
	   const char *caller_tag)
{
	char *txt = json_dumps(result, JSON_COMPACT);
	char *rd = txt;
	json_t *meta = ok ? json_object()
			  : json_pack("{s:s,s:s}", "error_type",
				      "WorkflowFailed", "error_message",
				      error ? error : "workflow failed");
	if (meta && caller_tag)
		json_object_set_new(meta, WF_TAG_KEY, json_string(caller_tag));
	char *mtxt = meta && json_object_size(meta)
			     ? json_dumps(meta, JSON_COMPACT)
			     : NULL;
	int rc = txt ? bg_ctx_result(ctx, ok ? "COMPLETED" : "FAILED", txt, rd,
				     mtxt)
		     : -ENOMEM;
	json_decref(meta);
	json_decref(result);
	free(mtxt);
	free(txt);
	return rc;
}

int wf_refuse(struct bg_ctx *ctx, const char *reason)
{
	json_t *rd = json_pack("{s:s}", "error", reason);
	json_t *meta = json_pack("{s:s,s:s,s:s}", "error_type",
				 "WorkflowSpecError", "error_message", reason,
				 "failed_stage", "validate_spec");
	char *rtxt = json_dumps(rd, JSON_COMPACT);
	char *mtxt = json_dumps(meta, JSON_COMPACT);
	int rc = bg_ctx_result(ctx, "FAILED", reason, rtxt, mtxt);
	json_decref(rd);
	json_decref(meta);
	free(rtxt);
	free(mtxt);
	return rc;
}

int wf_continue(struct bg_ctx *ctx)
{
	char *reply = NULL;
	int rc = bg_ctx_resume_later(ctx, NULL, "{\"bygate_wf_continue\":true}",
				     0, &reply);
	json_t *rep = reply ? json_loads(reply, 0, NULL) : NULL;
	if (rc == 0 && json_object_get(rep, "error"))
		rc = -EIO;
	json_decref(rep);
	free(reply);
	return rc;
}

int wf_step_failed(struct bg_ctx *ctx, const char *what, int rc)
{
	if (rc >= 0)
		return 0;
	char msg[160];
	snprintf(msg, sizeof(msg), "%s step failed: %s", what, strerror(-rc));
	return bg_ctx_fail(ctx, msg);
}

int wf_wait(struct bg_ctx *ctx)
{
	return bg_ctx_result(ctx, "WAITING_AGENT", NULL, NULL, NULL);
}
