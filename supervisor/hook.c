/* supervisor/hook.c - POST /hooks/<name> (hook.h). The checks run cheapest
 * first and the caller learns nothing about the content before its
 * signature holds: size (413), signature and timestamp (401), idempotency
 * header and content (400). Refusals are counted per webhook and logged,
 * at most HOOK_LOG_PER_WINDOW lines per HOOK_LOG_WINDOW_MS. */
#include "supervisor/hook.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "common/clock.h"
#include "conf/triggers.h"
#include "supervisor/daemon.h"
#include "supervisor/hook_sign.h"
#include "supervisor/http.h"
#include "supervisor/log.h"
#include "supervisor/triggers.h"
#include "wire/idem.h"
#include "wire/json.h"
#include "wire/send.h"

/* Retry-After of a fire not made: runs still active, paused, Redis. */
#define HOOK_RETRY_BUSY "5"
#define HOOK_RETRY_PAUSED "60"
#define HOOK_RETRY_ERROR "5"
#define HOOK_LOG_WINDOW_MS 10000
#define HOOK_LOG_PER_WINDOW 10

/* A request waiting for its fire. req is NULL once evhttp has freed it
 * (the connection closed): the callback then only frees the call. */
struct hook_call {
	struct evhttp_request *req;
	char name[BG_TRIGGER_NAME_MAX + 1];
	struct bg_buf body, key, extra; /* what the fire request views */
};

/* The refusal log's window: one daemon per process, one loop. */
static struct {
	int64_t start_ms;
	unsigned logged;
	uint64_t dropped;
} reject_log;

static void reply_json(struct evhttp_request *req, int code, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL) {
		static const char oom[] = "{\"error\":\"out_of_memory\"}";
		bg_http_reply(req, 500, "application/json", oom,
			      sizeof(oom) - 1);
		return;
	}
	bg_http_reply(req, code, "application/json", s, strlen(s));
	free(s);
}

/* {"error": error, "reason": reason, "trigger": name}; retry_after when
 * not NULL. */
static void reply_error(struct evhttp_request *req, int code, const char *error,
			const char *reason, const char *name,
			const char *retry_after)
{
	if (retry_after)
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Retry-After", retry_after);
	reply_json(req, code,
		   json_pack("{s:s, s:s, s:s?}", "error", error, "reason",
			     reason, "trigger", name));
}

static void log_reject(const char *name, struct evhttp_request *req, int code,
		       const char *reason)
{
	int64_t now = bg_mono_ms();
	if (now - reject_log.start_ms >= HOOK_LOG_WINDOW_MS) {
		if (reject_log.dropped)
			bg_warn("webhooks: %llu more refused requests not "
				"logged within %d s",
				(unsigned long long)reject_log.dropped,
				HOOK_LOG_WINDOW_MS / 1000);
		reject_log.start_ms = now;
		reject_log.logged = 0;
		reject_log.dropped = 0;
	}
	if (reject_log.logged >= HOOK_LOG_PER_WINDOW) {
		reject_log.dropped++;
		return;
	}
	reject_log.logged++;
	char *host = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &host,
				   &port);
	bg_warn("webhook %s: refused with %d (from %s:%u): %s", name, code,
		host ? host : "?", (unsigned)port, reason);
}

/* A refusal the webhook's counters and log record (400, 401, 413). */
static void refuse(struct bg_daemon *d, const char *name,
		   struct evhttp_request *req, int code, const char *error,
		   const char *reason)
{
	bg_trigger_counts(d, name)->rejected++;
	log_reject(name, req, code, reason);
	reply_error(req, code, error, reason, name, NULL);
}

static void call_free(struct hook_call *c)
{
	bg_buf_free(&c->body);
	bg_buf_free(&c->key);
	bg_buf_free(&c->extra);
	free(c);
}

/* The connection of a waiting request closed: evhttp frees the request
 * right after this returns. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct hook_call *c = arg;
	(void)evcon;
	c->req = NULL;
}

static json_t *id_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static void on_fired(struct bg_daemon *d, const struct bg_fire_result *r,
		     void *priv)
{
	struct hook_call *c = priv;
	(void)d;
	if (c->req == NULL) {
		bg_info("webhook %s: the caller left before the answer "
			"(outcome %d, msg=%s)",
			c->name, (int)r->outcome, r->message_id);
		call_free(c);
		return;
	}
	struct evhttp_request *req = c->req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL,
				      NULL);
	switch (r->outcome) {
	case BG_FIRE_SENT:
	case BG_FIRE_DUPLICATE: {
		bool dup = r->outcome == BG_FIRE_DUPLICATE;
		json_t *o = json_pack("{s:o, s:o, s:o, s:s}", "message_id",
				      id_or_null(r->message_id), "execution_id",
				      id_or_null(r->execution_id), "session_id",
				      id_or_null(r->session_id), "trigger",
				      c->name);
		if (o && dup)
			json_object_set_new(o, "duplicate", json_true());
		reply_json(req, dup ? 200 : 202, o);
		break;
	}
	case BG_FIRE_BUSY:
		reply_error(req, 429, "busy",
			    "max_running runs of this trigger are active",
			    c->name, HOOK_RETRY_BUSY);
		break;
	case BG_FIRE_PAUSED:
		reply_error(req, 503, "paused", "the trigger is paused",
			    c->name, HOOK_RETRY_PAUSED);
		break;
	case BG_FIRE_ERROR:
	default: /* logged by trigger_fire.c, at most once a minute */
		reply_error(req, 503, "unavailable",
			    "the trigger could not be fired (Redis)", c->name,
			    HOOK_RETRY_ERROR);
		break;
	}
	call_free(c);
}

/* What an ASK_AGENT refuses as content (wire/send.h bg_send_ask): blank
 * text (Python's str.isspace() set) or an empty array. */
static bool empty_content(struct bg_str body, bool is_json)
{
	if (is_json) {
		/* valid JSON: the first character that is not JSON whitespace
		 * after the first '[' closes an empty array */
		const char *p = memchr(body.p, '[', body.len);
		if (p == NULL || bg_json_type(body) != '[')
			return false;
		do
			p++;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n');
		return *p == ']';
	}
	struct bg_buf lit = { 0 };
	bool blank = bg_wire_fmt(&lit, "%s", body) == 0 &&
		     bg_json_str_blank((struct bg_str){ lit.p, lit.len });
	bg_buf_free(&lit);
	return blank;
}

/* Check the idempotency header and the body; build the fire's key (the
 * header's value under "hook:<name>:", apart from clients' keys), its
 * extra and its content kind. NULL, or why the request is refused. */
static const char *prepare(const struct bg_trigger_conf *t, struct evkeyvalq *h,
			   struct hook_call *c, bool *is_json)
{
	const char *key = t->idempotency_header[0]
				  ? evhttp_find_header(h, t->idempotency_header)
				  : NULL;
	if (key && !bg_idem_key_ok(bg_str_c(key)))
		return "the idempotency header must be 1 to 200 printable "
		       "ASCII characters without spaces";
	if (key && (bg_buf_printf(&c->key, "hook:%s:%s", t->name, key) != 0 ||
		    !bg_idem_key_ok((struct bg_str){ c->key.p, c->key.len })))
		return "the idempotency header is too long for this webhook";
	struct bg_str body = { c->body.p, c->body.len };
	if (body.len == 0)
		return "the body is empty";
	char type = bg_json_type(body);
	*is_json = (type == '{' || type == '[') &&
		   bg_json_valid(body.p, body.len);
	if (!*is_json && !bg_json_utf8_valid(body.p, body.len))
		return "the body is neither a JSON object or array nor UTF-8 "
		       "text";
	if (empty_content(body, *is_json))
		return "the body is blank text or an empty JSON array";
	const char *ct = evhttp_find_header(h, "Content-Type");
	if (bg_wire_fmt(&c->extra,
			"{\"bygate_trigger\":%s,\"webhook\":{\"content_type\":"
			"%n,\"delivery\":%n}}",
			bg_str_c(t->name), bg_str_c(ct), bg_str_c(key)) != 0)
		return "out of memory";
	return NULL;
}

/* The body into c->body, whole; false when memory ran out. */
static bool take_body(struct evhttp_request *req, struct hook_call *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (bg_buf_reserve(&c->body, n + 1) != 0)
		return false;
	if (n > 0 && evbuffer_remove(in, c->body.p, n) != (int)n)
		return false;
	c->body.len = n;
	c->body.p[n] = '\0';
	return true;
}

/* Hand the checked request to bg_trigger_fire; c is the callback's from
 * here on, or freed here when the fire is refused at once. */
static void fire(struct bg_daemon *d, const struct bg_trigger_conf *t,
		 struct evhttp_request *req, struct hook_call *c, bool is_json)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bg_fire_request rq = {
		.t = t,
		.content = { c->body.p, c->body.len },
		.content_is_json = is_json,
		.idempotency_key = { c->key.p, c->key.len },
		.extra = { c->extra.p, c->extra.len },
	};
	c->req = req;
	evhttp_connection_set_closecb(evcon, on_close, c);
	int rc = bg_trigger_fire(d, &rq, on_fired, c);
	if (rc == 0)
		return;
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	bg_warn("webhook %s: bg_trigger_fire() failed: %s", t->name,
		strerror(-rc));
	if (rc == -EINVAL)
		refuse(d, t->name, req, 400, "bad_request",
		       "the body cannot be an ASK_AGENT's content");
	else
		reply_error(req, 503, "unavailable",
			    rc == -ENOTCONN ? "Redis is not connected"
					    : "out of memory",
			    t->name, HOOK_RETRY_ERROR);
	call_free(c);
}

void bg_hook_serve(struct bg_daemon *d, struct evhttp_request *req,
		   const char *name)
{
	const struct bg_trigger_conf *t =
		strlen(name) <= BG_TRIGGER_NAME_MAX
			? bg_trigger_find(d->cfg, name)
			: NULL;
	if (t == NULL || t->kind != BG_TRIGGER_WEBHOOK) {
		reply_error(req, 404, "not_found", "no such webhook", NULL,
			    NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Allow", "POST");
		reply_error(req, 405, "method_not_allowed",
			    "a webhook takes POST only", t->name, NULL);
		return;
	}
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if ((int64_t)len > t->max_body_bytes) {
		refuse(d, t->name, req, 413, "too_large",
		       "the body is larger than max_body_bytes");
		return;
	}
	struct hook_call *c = calloc(1, sizeof(*c));
	if (c == NULL || !take_body(req, c)) {
		reply_error(req, 503, "unavailable", "out of memory", t->name,
			    HOOK_RETRY_ERROR);
		if (c)
			call_free(c);
		return;
	}
	snprintf(c->name, sizeof(c->name), "%s", t->name);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct bg_hook_signed s = {
		.timestamp = evhttp_find_header(h, t->timestamp_header),
		.signature = evhttp_find_header(h, t->signature_header),
		.body = { c->body.p, c->body.len },
	};
	enum bg_hook_sign_verdict v = bg_hook_sign_check(
		bg_str_c(t->secret), &s, bg_now_ms() / 1000, t->tolerance_s);
	const char *why = NULL;
	bool is_json = false;
	if (v == BG_HOOK_SIGN_NO_SECRET || v == BG_HOOK_SIGN_FAILED) {
		bg_error("webhook %s: %s", t->name, bg_hook_sign_reason(v));
		reply_error(req, 503, "unavailable", bg_hook_sign_reason(v),
			    t->name, NULL);
	} else if (v != BG_HOOK_SIGN_OK) {
		refuse(d, t->name, req, 401, "unauthorized",
		       bg_hook_sign_reason(v));
	} else if ((why = prepare(t, h, c, &is_json)) != NULL) {
		refuse(d, t->name, req, 400, "bad_request", why);
	} else {
		fire(d, t, req, c, is_json);
		return;
	}
	call_free(c);
}

int64_t bg_hook_body_cap(const struct bg_daemon *d, int64_t floor)
{
	size_t n = 0;
	const struct bg_trigger_conf *t = bg_triggers(d->cfg, &n);
	int64_t cap = floor;
	for (size_t i = 0; i < n; i++)
		if (t[i].kind == BG_TRIGGER_WEBHOOK &&
		    t[i].max_body_bytes > cap)
			cap = t[i].max_body_bytes;
	return cap;
}
