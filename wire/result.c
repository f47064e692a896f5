/* wire/result.c - end-of-task wire rules (WIRE 3.6, 6.5, 6.6): finalAnswer
 * text, the appStreamResponse rule, the callback RESUME in the Python
 * layout, and the dead-letter record ("bygate decisions" 5). */
#include "wire/result.h"

#include <errno.h>
#include <string.h>

#include "wire/ids.h"
#include "wire/json.h"
#include "wire/record.h"
#include "wire/send.h"

/* ---- finalAnswer ------------------------------------------------------ */

/* Re-escape one string literal the way json.dumps(ensure_ascii=False)
 * writes it: decoded, then escaped again. */
static int redump_string(struct bg_buf *out, struct bg_str lit)
{
	struct bg_buf tmp = { 0 };
	int rc = bg_json_unescape(&tmp, lit);
	if (rc == 0)
		rc = bg_json_escape(out, tmp.p ? tmp.p : "", tmp.len);
	bg_buf_free(&tmp);
	return rc;
}

/* Append a valid JSON text with Python's default separators (", ", ": ")
 * and no other whitespace; numbers and literals verbatim. */
static int python_dumps(struct bg_buf *out, struct bg_str raw)
{
	size_t i = 0;
	int rc = 0;

	while (rc == 0 && i < raw.len) {
		char c = raw.p[i];
		size_t end;
		if (c == '"') {
			rc = bg_json_skip(raw.p + i, raw.len - i, &end);
			if (rc == 0)
				rc = redump_string(
					out, (struct bg_str){ raw.p + i, end });
			i += rc == 0 ? end : 0;
			continue;
		}
		if (c == ',')
			rc = bg_buf_puts(out, ", ");
		else if (c == ':')
			rc = bg_buf_puts(out, ": ");
		else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			rc = bg_buf_append(out, &c, 1);
		i++;
	}
	return rc;
}

/* Append the decoded string literal; *nonempty tells whether it had text. */
static int decode_nonempty(struct bg_buf *out, struct bg_str lit,
			   bool *nonempty)
{
	size_t mark = out->len;
	int rc = bg_json_unescape(out, lit);
	*nonempty = rc == 0 && out->len > mark;
	return rc;
}

int bg_result_final_message(struct bg_str content, struct bg_str reply_data,
			    struct bg_buf *out, bool *present)
{
	size_t mark = out->len;
	int rc = 0;

	*present = false;
	if (!bg_send_raw_ok(content, 0) || !bg_send_raw_ok(reply_data, 0))
		return -EINVAL;
	if (bg_json_type(content) == '"') {
		rc = decode_nonempty(out, content, present);
		if (rc || *present)
			return rc;
	}
	char t = bg_json_type(reply_data);
	if (t == '"') {
		rc = decode_nonempty(out, reply_data, present);
		if (rc || *present)
			return rc;
	}
	if (t == 0 || t == 'n')
		return 0;
	bg_wire_truncate(out, mark);
	rc = python_dumps(out, reply_data);
	*present = rc == 0;
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}

bool bg_result_wants_end_marker(bool has_source_agent, struct bg_str status,
				bool permission_transferred, bool suspended,
				bool already_emitted)
{
	return !has_source_agent &&
	       bg_status_is_terminal(bg_status_normalize(status)) &&
	       !permission_transferred && !suspended && !already_emitted;
}

/* ---- callback --------------------------------------------------------- */

/* Merge every member of the object `from` into the splice (later wins).
 * Keys holding a NUL byte cannot be spliced by name: -EINVAL. */
static void merge_object(struct bg_wire_splice *s, struct bg_str from)
{
	struct bg_json_iter it;
	struct bg_str key, val;
	struct bg_buf name = { 0 };
	int rc;

	if (s->rc || from.len == 0)
		return;
	rc = bg_json_iter_open(&it, from.p, from.len, 0, 0);
	while (rc == 0 && (rc = bg_json_iter_key(&it, &key)) == 1) {
		rc = bg_json_iter_value(&it, &val);
		bg_buf_reset(&name);
		if (rc == 0)
			rc = bg_json_unescape(&name, key);
		const char *k = name.p ? name.p : "";
		if (rc == 0 && strlen(k) != name.len)
			rc = -EINVAL;
		if (rc == 0)
			bg_wire_splice_set(s, k, val);
		if (rc == 0)
			rc = s->rc;
	}
	bg_buf_free(&name);
	s->rc = rc;
}

/* The callback's header metadata (6.6) appended to out. */
static int callback_metadata(struct bg_buf *out, const struct bg_callback *cb,
			     struct bg_str return_id, struct bg_str span,
			     struct bg_str langfuse)
{
	struct bg_wire_splice s = { .cur = BG_STR_LIT("{}") };

	if (cb->metadata.len)
		s.cur = cb->metadata;
	merge_object(&s, cb->result_metadata);
	bg_wire_splice_fmt(&s, "framework_parent_span_id", "%s", return_id);
	bg_wire_splice_fmt(&s, "trace_parent_span_id", "%s", span);
	if (langfuse.len)
		bg_wire_splice_fmt(&s, "langfuse_parent_observation_id", "%s",
				   langfuse);
	if (s.rc == 0)
		s.rc = bg_buf_append(out, s.cur.p, s.cur.len);
	bg_wire_splice_free(&s);
	return s.rc;
}

static bool callback_raw_ok(const struct bg_callback *cb)
{
	return bg_send_raw_ok(cb->metadata, '{') &&
	       bg_send_raw_ok(cb->result_metadata, '{') &&
	       bg_send_raw_ok(cb->content, 0) &&
	       bg_send_raw_ok(cb->reply_data, 0) &&
	       bg_send_raw_ok(cb->extra_payload, '{');
}

static struct bg_str first(struct bg_str a, struct bg_str b)
{
	return a.len ? a : b;
}

/* The callback command with its metadata already built. */
static int callback_write(struct bg_buf *out, const struct bg_callback *cb,
			  struct bg_str meta, struct bg_str span)
{
	struct bg_send_header h = {
		.message_id = first(cb->parent_message_id, cb->new_message_id),
		.session_id = cb->session_id,
		.trace_id = cb->trace_id,
		.source_agent_type =
			first(cb->target_agent_type, cb->worker_id),
		.target_agent_type = cb->source_agent_type,
		.parent_message_id = cb->message_id,
		.task_group_id = cb->task_group_id,
		.user_code = cb->user_code,
		.user_name = cb->user_name,
		.metadata = meta,
		.trace_parent_span_id = span,
		.langfuse_parent_observation_id =
			first(cb->langfuse_override,
			      cb->langfuse_parent_observation_id),
	};
	struct bg_str content = cb->content;
	if (bg_json_type(content) == 0 || bg_json_type(content) == 'n')
		content = BG_STR_LIT("\"\"");
	int rc = bg_send_open(out, "RESUME", &h);
	if (rc == 0)
		rc = bg_wire_fmt(out,
				 "\"status\":%s,\"content\":%r,"
				 "\"reply_data\":%r",
				 cb->status, content, cb->reply_data);
	if (rc == 0)
		rc = bg_send_put_extra(out, cb->extra_payload);
	if (rc == 0)
		rc = bg_buf_puts(out, "}}");
	return rc;
}

int bg_result_callback(struct bg_buf *out, const struct bg_callback *cb)
{
	struct bg_buf return_id = { 0 }, meta = { 0 };
	char span[17];
	size_t mark = out->len;

	if (!callback_raw_ok(cb))
		return -EINVAL;
	int rc = bg_buf_append(&return_id, cb->execution_id.p,
			       cb->execution_id.len);
	if (rc == 0)
		rc = bg_buf_puts(&return_id, ":agent.return");
	if (rc == 0)
		rc = bg_span_id16(span, return_id.p, return_id.len);
	struct bg_str sp = { span, 16 };
	if (rc == 0)
		rc = callback_metadata(
			&meta, cb,
			(struct bg_str){ return_id.p, return_id.len }, sp,
			first(cb->langfuse_override,
			      cb->langfuse_parent_observation_id));
	if (rc == 0)
		rc = callback_write(out, cb,
				    (struct bg_str){ meta.p, meta.len }, sp);
	if (rc)
		bg_wire_truncate(out, mark);
	bg_buf_free(&return_id);
	bg_buf_free(&meta);
	return rc;
}

/* ---- dead letters ----------------------------------------------------- */

int bg_result_deadletter(struct bg_buf *out, const struct bg_deadletter *d)
{
	size_t mark = out->len;
	int rc = 0;

	if (d->execution_id.len)
		rc = bg_wire_fmt(out, "{\"execution_id\":%s,", d->execution_id);
	else
		rc = bg_buf_puts(out, "{");
	if (rc == 0)
		rc = bg_wire_fmt(
			out,
			"\"target_agent_type\":%s,\"status\":\"FAILED\","
			"\"selected_agent_type\":\"\",\"worker_ids\":[],"
			"\"region\":\"\",\"retry_after_ms\":null,\"reason\":%s,"
			"\"stream\":%s,\"entry_id\":%s,\"delivery_count\":%d,"
			"\"error_code\":%s,\"entry\":",
			d->target_agent_type, d->reason, d->stream, d->entry_id,
			(int64_t)d->delivery_count, d->error_code);
	if (rc == 0)
		rc = d->has_data ? bg_wire_fmt(out, "%s}", d->data)
				 : bg_buf_puts(out, "null}");
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}
