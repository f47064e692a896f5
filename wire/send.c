/* wire/send.c - control-stream commands a sender writes (ASK_AGENT, user
 * RESUME) and the template writer shared by every wire builder. */
#include "wire/send.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wire/ids.h"
#include "wire/json.h"

static int put_raw(struct bg_buf *out, struct bg_str raw)
{
	if (raw.len == 0)
		return bg_buf_puts(out, "null");
	return bg_buf_append(out, raw.p, raw.len);
}

static int put_directive(struct bg_buf *out, char d, va_list *ap)
{
	struct bg_str s;

	switch (d) {
	case 's':
		s = va_arg(*ap, struct bg_str);
		return bg_json_escape(out, s.p, s.len);
	case 'n':
		s = va_arg(*ap, struct bg_str);
		if (s.len == 0)
			return bg_buf_puts(out, "null");
		return bg_json_escape(out, s.p, s.len);
	case 'r':
		return put_raw(out, va_arg(*ap, struct bg_str));
	case 'd':
		return bg_buf_put_i64(out, va_arg(*ap, int64_t));
	case 'b':
		return bg_buf_puts(out, va_arg(*ap, int) ? "true" : "false");
	case '%':
		return bg_buf_append(out, "%", 1);
	default:
		return -EINVAL;
	}
}

int bg_wire_vfmt(struct bg_buf *out, const char *tmpl, va_list ap)
{
	va_list cp;
	size_t mark = out->len;
	int rc = 0;

	va_copy(cp, ap);
	while (rc == 0 && *tmpl) {
		const char *pct = tmpl;
		while (*pct && *pct != '%')
			pct++;
		rc = bg_buf_append(out, tmpl, (size_t)(pct - tmpl));
		if (rc || *pct == '\0')
			break;
		rc = put_directive(out, pct[1], &cp);
		tmpl = pct[1] ? pct + 2 : pct + 1;
	}
	va_end(cp);
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}

int bg_wire_fmt(struct bg_buf *out, const char *tmpl, ...)
{
	va_list ap;
	va_start(ap, tmpl);
	int rc = bg_wire_vfmt(out, tmpl, ap);
	va_end(ap);
	return rc;
}

void bg_wire_splice_set(struct bg_wire_splice *s, const char *key,
			struct bg_str raw)
{
	if (s->rc || raw.len == 0)
		return;
	struct bg_buf *dst = s->cur.p == s->a.p ? &s->b : &s->a;
	bg_buf_reset(dst);
	s->rc = bg_json_obj_set(dst, s->cur, key, raw);
	if (s->rc == 0)
		s->cur = (struct bg_str){ dst->p, dst->len };
}

void bg_wire_splice_fmt(struct bg_wire_splice *s, const char *key,
			const char *tmpl, ...)
{
	va_list ap;

	if (s->rc)
		return;
	bg_buf_reset(&s->val);
	va_start(ap, tmpl);
	s->rc = bg_wire_vfmt(&s->val, tmpl, ap);
	va_end(ap);
	bg_wire_splice_set(s, key, (struct bg_str){ s->val.p, s->val.len });
}

void bg_wire_splice_free(struct bg_wire_splice *s)
{
	bg_buf_free(&s->a);
	bg_buf_free(&s->b);
	bg_buf_free(&s->val);
	s->cur = (struct bg_str){ NULL, 0 };
}

void bg_wire_truncate(struct bg_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->p[len] = '\0';
	}
}

bool bg_send_raw_ok(struct bg_str raw, char type)
{
	if (raw.len == 0)
		return true;
	if (!bg_json_valid(raw.p, raw.len))
		return false;
	return type == 0 || bg_json_type(raw) == type;
}

int bg_send_open(struct bg_buf *out, const char *action,
		 const struct bg_send_header *h)
{
	if (!bg_send_raw_ok(h->metadata, '{'))
		return -EINVAL;
	struct bg_str meta = h->metadata.len ? h->metadata : BG_STR_LIT("{}");
	return bg_wire_fmt(
		out,
		"{\"action_type\":%s,\"header\":{\"message_id\":%s,"
		"\"session_id\":%s,\"trace_id\":%s,\"source_agent_type\":%s,"
		"\"target_agent_type\":%s,\"parent_message_id\":%s,"
		"\"task_group_id\":%s,\"user_code\":%s,\"user_name\":%s,"
		"\"metadata\":%r,\"trace_parent_span_id\":%s,"
		"\"langfuse_parent_observation_id\":%s},\"body\":{",
		bg_str_c(action), h->message_id, h->session_id, h->trace_id,
		h->source_agent_type, h->target_agent_type,
		h->parent_message_id, h->task_group_id, h->user_code,
		h->user_name, meta, h->trace_parent_span_id,
		h->langfuse_parent_observation_id);
}

/* Open a client command whose empty span ids default to the dispatch span
 * of its message id (WIRE 2.2). */
static int open_client(struct bg_buf *out, const char *action,
		       const struct bg_send_header *h)
{
	struct bg_send_header d = *h;
	char span[17];

	if (d.trace_parent_span_id.len == 0 ||
	    d.langfuse_parent_observation_id.len == 0) {
		int rc =
			bg_span_id16_of(span, d.message_id, ":client.dispatch");
		if (rc)
			return rc;
		struct bg_str s = { span, 16 };
		if (d.trace_parent_span_id.len == 0)
			d.trace_parent_span_id = s;
		if (d.langfuse_parent_observation_id.len == 0)
			d.langfuse_parent_observation_id = s;
	}
	return bg_send_open(out, action, &d);
}

/* `"content":<value>` for a body; -EINVAL when the value is not valid. */
static int put_content(struct bg_buf *out, const struct bg_send_body *b)
{
	if (!b->content_is_json || b->content.len == 0)
		return bg_wire_fmt(out, "\"content\":%s", b->content);
	if (!bg_json_valid(b->content.p, b->content.len))
		return -EINVAL;
	return bg_wire_fmt(out, "\"content\":%r", b->content);
}

int bg_send_put_extra(struct bg_buf *out, struct bg_str extra)
{
	if (!bg_send_raw_ok(extra, '{'))
		return -EINVAL;
	struct bg_json_iter it;
	struct bg_str key;
	if (extra.len == 0 ||
	    bg_json_iter_open(&it, extra.p, extra.len, 0, 0) ||
	    bg_json_iter_key(&it, &key) != 1)
		return 0;
	return bg_wire_fmt(out, ",\"extra_payload\":%r", extra);
}

/* AskAgentCommand validation: a non-blank string, a non-empty array, or
 * any other non-null value. */
static bool ask_content_ok(const struct bg_send_body *b)
{
	if (!b->content_is_json) {
		struct bg_buf lit = { 0 };
		bool ok = bg_json_escape(&lit, b->content.p, b->content.len) ==
				  0 &&
			  !bg_json_str_blank((struct bg_str){ lit.p, lit.len });
		bg_buf_free(&lit);
		return ok;
	}
	switch (bg_json_type(b->content)) {
	case 0:
	case 'n':
		return false;
	case '"':
		return !bg_json_str_blank(b->content);
	case '[': {
		const char *p = memchr(b->content.p, '[', b->content.len);
		const char *end = b->content.p + b->content.len;
		for (p++; p < end &&
			  (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n');
		     p++)
			;
		return p < end && *p != ']';
	}
	default:
		return true;
	}
}

int bg_send_ask(struct bg_buf *out, const struct bg_send_header *h,
		const struct bg_send_body *b)
{
	if (!ask_content_ok(b))
		return -EINVAL;
	size_t mark = out->len;
	int rc = open_client(out, "ASK_AGENT", h);
	if (!rc)
		rc = put_content(out, b);
	if (!rc)
		rc = bg_wire_fmt(out, ",\"wait_for_reply\":%b",
				 b->wait_for_reply);
	if (!rc)
		rc = bg_send_put_extra(out, b->extra_payload);
	if (!rc)
		rc = bg_buf_puts(out, "}}");
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}

int bg_send_resume(struct bg_buf *out, const struct bg_send_header *h,
		   const struct bg_send_body *b)
{
	if (b->status.len == 0 && b->content.len == 0)
		return -EINVAL;
	if (!bg_send_raw_ok(b->reply_data, 0))
		return -EINVAL;
	size_t mark = out->len;
	int rc = open_client(out, "RESUME", h);
	if (!rc)
		rc = put_content(out, b);
	if (!rc)
		rc = bg_wire_fmt(out, ",\"status\":%s,\"reply_data\":%r",
				 b->status, b->reply_data);
	if (!rc)
		rc = bg_send_put_extra(out, b->extra_payload);
	if (!rc)
		rc = bg_buf_puts(out, "}}");
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}
