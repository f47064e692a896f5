/* wire/post.c - the RESUME of resume_later, the record edits and the
 * CANCEL_TASK of cancel_call (wire/post.h). */
#include "wire/post.h"

#include <errno.h>

#include "wire/json.h"
#include "wire/record.h"

int bg_post_resume(struct bg_buf *out, const struct bg_post *p)
{
	struct bg_buf extra = { 0 };
	int rc = bg_wire_fmt(&extra,
			     "{\"bygate_post\":{\"from_message_id\":%s,"
			     "\"due_ms\":%d,\"post_id\":%s}}",
			     p->from_message_id, p->due_ms, p->post_id);
	struct bg_send_body b = {
		.content = p->content,
		.content_is_json = p->content_is_json,
		.extra_payload = { extra.p, extra.len },
	};
	if (rc == 0)
		rc = p->content.len ? bg_send_resume(out, &p->h, &b) : -EINVAL;
	bg_buf_free(&extra);
	return rc;
}

int bg_post_cancel_edit(struct bg_buf *out, struct bg_str record,
			bool cancelling, struct bg_str reason, int64_t now_ms)
{
	if (!bg_json_valid(record.p, record.len) || bg_json_type(record) != '{')
		return -EINVAL;
	if (cancelling) {
		struct bg_record_update u = {
			.status = BG_STR_LIT("CANCELLING"),
			.now_ms = now_ms,
			.cancel = true,
			.cancel_reason = reason,
		};
		return bg_record_update(out, record, &u);
	}
	struct bg_buf vals = { 0 };
	int rc = bg_wire_fmt(&vals, "%d", now_ms);
	size_t now_len = vals.len;
	if (rc == 0)
		rc = bg_wire_fmt(&vals, "%s", reason);
	if (rc == 0) {
		struct bg_json_edit e[3] = {
			{ "cancel_requested", BG_STR_LIT("true"), BG_JSON_SET },
			{ "updated_at", { vals.p, now_len }, BG_JSON_SET },
			{ "cancel_reason",
			  { vals.p + now_len, vals.len - now_len },
			  BG_JSON_SET },
		};
		rc = bg_json_obj_edit(out, record, e, reason.len ? 3 : 2);
	}
	bg_buf_free(&vals);
	return rc;
}

int bg_post_cancel_task(struct bg_buf *out, const struct bg_post_cancel *c)
{
	struct bg_send_header h = {
		.message_id = c->command_id,
		.session_id = c->session_id,
		.trace_id = c->trace_id,
		.target_agent_type = c->target_agent_type,
		.parent_message_id = c->target_message_id,
	};
	size_t mark = out->len;
	int rc = bg_send_open(out, "CANCEL_TASK", &h);
	if (rc == 0)
		rc = bg_wire_fmt(
			out,
			"\"target_message_id\":%s,\"target_execution_id\":%s,"
			"\"target_worker_id\":%s,\"reason\":%s,"
			"\"requested_by\":%s,\"cancel_mode\":%s}}",
			c->target_message_id, c->target_execution_id,
			c->target_worker_id, c->reason, c->requested_by,
			bg_str_c(c->force ? "force" : "graceful"));
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}
