/* wire/span.c - a trace span's JSON (WIRE 9.2, TraceSpan.to_payload) and
 * the fleet-wide sampling rule. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ids.h"
#include "wire/json.h"
#include "wire/span.h"

struct out {
	struct bg_buf *b;
	int rc;
	bool first;
};

static void key(struct out *o, const char *k)
{
	/* appended, not printf'd: ~35 members per span */
	if (o->rc == 0 && !o->first)
		o->rc = bg_buf_append(o->b, ",\"", 2);
	else if (o->rc == 0)
		o->rc = bg_buf_append(o->b, "\"", 1);
	if (o->rc == 0)
		o->rc = bg_buf_append(o->b, k, strlen(k));
	if (o->rc == 0)
		o->rc = bg_buf_append(o->b, "\":", 2);
	o->first = false;
}

/* A string member, left out when empty. */
static void str(struct out *o, const char *k, struct bg_str v)
{
	if (v.len == 0)
		return;
	key(o, k);
	if (o->rc == 0)
		o->rc = bg_json_escape(o->b, v.p, v.len);
}

static void num(struct out *o, const char *k, int64_t v)
{
	key(o, k);
	if (o->rc == 0)
		o->rc = bg_buf_printf(o->b, "%lld", (long long)v);
}

/* A raw JSON member: left out when empty unless `dflt` is given. */
static void raw(struct out *o, const char *k, struct bg_str v, const char *dflt)
{
	if (v.len == 0 && dflt == NULL)
		return;
	key(o, k);
	if (o->rc)
		return;
	if (v.len)
		o->rc = bg_buf_append(o->b, v.p, v.len);
	else
		o->rc = bg_buf_puts(o->b, dflt);
}

static bool raw_ok(struct bg_str v)
{
	return v.len == 0 || bg_json_valid(v.p, v.len);
}

int bg_span_build(struct bg_buf *out, const struct bg_span *s)
{
	if (s->trace_id.len == 0 || s->span_id.len == 0 ||
	    s->operation.len == 0 || !raw_ok(s->input) || !raw_ok(s->output) ||
	    !raw_ok(s->metadata) ||
	    (s->metadata.len && bg_json_type(s->metadata) != '{'))
		return -EINVAL;
	size_t mark = out->len;
	struct out o = { out, 0, true };
	int64_t start = s->start_ts > 0 ? s->start_ts : 0;
	int64_t end = s->end_ts > start ? s->end_ts : start;
	o.rc = bg_buf_append(out, "{", 1);
	str(&o, "trace_id", s->trace_id);
	str(&o, "span_id", s->span_id);
	str(&o, "parent_span_id", s->parent_span_id);
	str(&o, "operation", s->operation);
	str(&o, "component", s->component);
	num(&o, "start_ts", start);
	num(&o, "end_ts", end);
	num(&o, "duration_ms", end - start);
	str(&o, "status", s->status);
	str(&o, "name", s->name.len ? s->name : s->operation);
	str(&o, "kind", s->kind);
	str(&o, "source", bg_str_c("redis"));
	/* a JSON null input/output is dropped like Python's None */
	if (!bg_str_eq(s->input, "null"))
		raw(&o, "input", s->input, NULL);
	if (!bg_str_eq(s->output, "null"))
		raw(&o, "output", s->output, NULL);
	raw(&o, "tokens", bg_str_c(""), "{}");
	raw(&o, "cost", bg_str_c(""), "{}");
	str(&o, "session_id", s->session_id);
	str(&o, "execution_id", s->execution_id);
	str(&o, "message_id", s->message_id);
	str(&o, "parent_message_id", s->parent_message_id);
	str(&o, "worker_id", s->worker_id);
	str(&o, "source_agent_type", s->source_agent_type);
	str(&o, "target_agent_type", s->target_agent_type);
	str(&o, "error_type", s->error_type);
	str(&o, "error_message", s->error_message);
	str(&o, "error_code", s->error_code);
	str(&o, "failed_stage", s->failed_stage);
	raw(&o, "retryable", bg_str_c(s->retryable ? "true" : "false"), NULL);
	str(&o, "route_policy", s->route_policy);
	str(&o, "route_status", s->route_status);
	num(&o, "queue_wait_ms", s->queue_wait_ms);
	num(&o, "chunk_count", s->chunk_count);
	str(&o, "event_type", s->event_type);
	raw(&o, "metadata", s->metadata, "{}");
	if (o.rc == 0)
		o.rc = bg_buf_append(out, "}", 1);
	if (o.rc) {
		out->len = mark;
		if (out->p)
			out->p[mark] = '\0';
		return o.rc;
	}
	return 0;
}

bool bg_span_sampled(struct bg_str trace_id, double rate)
{
	if (rate >= 1.0)
		return true;
	if (rate <= 0.0)
		return false;
	char h[17];
	if (bg_span_id16(h, trace_id.p ? trace_id.p : "", trace_id.len) != 0)
		return true; /* no digest: keep it rather than lose it */
	h[8] = '\0';
	unsigned long bucket = strtoul(h, NULL, 16);
	return (double)bucket / (double)0xFFFFFFFFul < rate;
}
