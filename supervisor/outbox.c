/* supervisor/outbox.c - an attempt's outbox and its answers to the
 * handler: every write a handler operation makes (calls.c, route.c) is
 * buffered here, a command list (common/cmdlist.h), and applied in the
 * attempt's finish transaction (DESIGN 4.3), so a retried or crashed
 * attempt never sends a request twice and the callee's record always
 * precedes its ASK; the builders of requests to other agents (WIRE 6.6,
 * 6.7) and the REPLY records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ipc/record.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "supervisor/trace.h"
#include "wire/event.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/send.h"

#define S(s) bg_str_c(s)

/* ---- the outbox: commands in the finish-blob encoding ---- */

void bg_outbox_cmd(struct bg_job *t, int argc, const struct bg_str *argv)
{
	bool failed = t->run.outbox.err != 0;
	int rc = bg_cmdlist_add(&t->run.outbox, argc, argv);
	if (rc && !failed) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(
			BG_LOG_ERROR, &ids,
			"handler write %.*s could not be kept in the outbox "
			"(%s): the finish of entry %s will not be sent",
			argc > 0 ? (int)argv[0].len : 0,
			argc > 0 ? argv[0].p : "", strerror(-rc),
			t->id.entry_id);
	}
}

int bg_outbox_splice(const struct bg_job *t, struct bg_cmdlist *x)
{
	return bg_cmdlist_append(x, &t->run.outbox);
}

struct bg_str bg_outbox_bytes(const struct bg_buf *b)
{
	return (struct bg_str){ b->p ? b->p : "", b->len };
}

/* ---- replies ---- */

/* The answer when the real one cannot be sent: every request gets one. */
static const char REPLY_TOO_LARGE[] =
	"{\"status\":\"FAILED\",\"message_id\":\"\",\"error\":\"the reply "
	"is larger than max_message_bytes\",\"error_code\":\"REPLY_TOO_LARGE\"}";
static const char REPLY_UNENCODABLE[] =
	"{\"status\":\"FAILED\",\"message_id\":\"\",\"error\":\"the reply "
	"could not be encoded (invalid UTF-8 or out of memory)\","
	"\"error_code\":\"INTERNAL\"}";

static int reply_text(struct bg_daemon *d, struct bg_job *t, const char *id,
		      const char *json)
{
	struct bg_buf payload = { 0 };
	struct bg_str v[BG_YF__COUNT] = { S(id), S(json) };
	int rc = -ESRCH;
	if (bg_job_in_child(t) && t->run.slot >= 0 &&
	    (rc = bg_rec_pack(&payload, v, BG_YF__COUNT)) == 0)
		rc = bg_pool_reply(d->pool, t->run.slot, t->tag, payload.p,
				   payload.len);
	bg_buf_free(&payload);
	return rc;
}

int bg_outbox_reply_sent(struct bg_daemon *d, struct bg_job *t, const char *id,
			 json_t *result)
{
	char *txt = result ? json_dumps(result, JSON_COMPACT) : NULL;
	int rc = txt ? reply_text(d, t, id, txt) : -EINVAL;
	if (rc == -EMSGSIZE)
		reply_text(d, t, id, REPLY_TOO_LARGE);
	else if (rc == -EINVAL)
		reply_text(d, t, id, REPLY_UNENCODABLE);
	free(txt);
	json_decref(result);
	return rc;
}

void bg_outbox_reply(struct bg_daemon *d, struct bg_job *t, const char *id,
		     json_t *result)
{
	bg_outbox_reply_sent(d, t, id, result);
}

void bg_outbox_reply_error(struct bg_daemon *d, struct bg_job *t,
			   const char *id, const char *code, const char *msg)
{
	bg_outbox_reply(d, t, id,
			json_pack("{s:s,s:s,s:s,s:s}", "status", "FAILED",
				  "message_id", "", "error", msg, "error_code",
				  code));
}

/* ---- the job a late answer belongs to ---- */

struct bg_job *bg_outbox_task_of(struct bg_daemon *d, uint64_t tag,
				 uint32_t run_id)
{
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->tag == tag)
			return bg_job_in_child(t) && t->run.run_id == run_id
				       ? t
				       : NULL;
	return NULL;
}

/* ---- requests to other agents (WIRE 6.6, 6.7) ---- */

static int content_text(json_t *content, struct bg_send_body *b, char **owned)
{
	*owned = NULL;
	if (json_is_string(content)) {
		b->content = (struct bg_str){ json_string_value(content),
					      json_string_length(content) };
		b->content_is_json = false;
		return 0;
	}
	if (json_is_array(content) || json_is_object(content)) {
		*owned = json_dumps(content, JSON_COMPACT);
		if (*owned == NULL)
			return -1;
		b->content = S(*owned);
		b->content_is_json = true;
		return 0;
	}
	return -1;
}

/* A sub-agent's task stays in its caller's lane and priority
 * (docs/scheduling.md) unless the handler's metadata says otherwise: the
 * caller's metadata.lane and metadata.priority are copied when absent. Its
 * callback carries the sub-agent's metadata back, so the RESUME is in the
 * caller's lane too. */
void bg_outbox_inherit_schedule(json_t *md, const struct bg_job *t)
{
	struct bg_str raw = t->id.cmd.hdr[BG_HDR_METADATA];
	if (raw.len == 0)
		return;
	json_t *caller = json_loadb(raw.p, raw.len, JSON_ALLOW_NUL, NULL);
	static const char *const keys[] = { "lane", "priority" };
	for (size_t i = 0; json_is_object(caller) && i < 2; i++) {
		json_t *v = json_object_get(caller, keys[i]);
		if (v && json_object_get(md, keys[i]) == NULL)
			json_object_set(md, keys[i], v);
	}
	json_decref(caller);
}

int bg_outbox_build_ask(struct bg_job *t, struct bg_outbox_req *rq,
			struct bg_buf *ask)
{
	struct bg_cmd *c = &t->id.cmd;
	char span[17], fw[64];
	if (!rq->message_id[0])
		bg_id_new(rq->message_id, sizeof(rq->message_id), "msg-");
	if (!rq->execution_id[0])
		bg_id_new(rq->execution_id, sizeof(rq->execution_id), "exec-");
	snprintf(fw, sizeof(fw), "%s:client.dispatch", rq->message_id);
	bg_span_id16(span, fw, strlen(fw));
	json_t *md = json_is_object(rq->metadata) ? json_deep_copy(rq->metadata)
						  : json_object();
	bg_outbox_inherit_schedule(md, t);
	json_object_set_new(md, "trace_parent_span_id", json_string(span));
	json_object_set_new(md, "framework_parent_span_id", json_string(fw));
	char *mdtxt = json_dumps(md, JSON_COMPACT);
	json_decref(md);
	char *ctxt = NULL, *extxt = NULL;
	struct bg_send_body body = { .wait_for_reply = rq->wait };
	if (content_text(rq->content, &body, &ctxt) != 0 || mdtxt == NULL) {
		free(mdtxt);
		free(ctxt);
		return -1;
	}
	if (json_is_object(rq->extra) && json_object_size(rq->extra)) {
		extxt = json_dumps(rq->extra, JSON_COMPACT);
		body.extra_payload = S(extxt);
	}
	struct bg_send_header h = {
		.message_id = S(rq->message_id),
		.session_id = S(t->id.session_id),
		.trace_id = S(t->id.trace_id),
		.source_agent_type = S(rq->wait ? t->id.agent_type : ""),
		.target_agent_type = S(rq->target),
		.parent_message_id = S(t->id.message_id),
		.task_group_id = S(rq->group),
		.user_code = c->hdr[BG_HDR_USER_CODE],
		.user_name = c->hdr[BG_HDR_USER_NAME],
		.metadata = S(mdtxt),
		.trace_parent_span_id = S(span),
		.langfuse_parent_observation_id =
			c->hdr[BG_HDR_LANGFUSE_PARENT_OBSERVATION_ID],
	};
	int rc = bg_send_ask(ask, &h, &body) == 0 ? 0 : -1;
	free(mdtxt);
	free(ctxt);
	free(extxt);
	return rc;
}

void bg_outbox_record(struct bg_job *t, const char *execution_id,
		      const char *message_id, const struct bg_buf *rec)
{
	char f1[64], f2[BG_FIELD_MAX];
	snprintf(f1, sizeof(f1), "exec:%s", execution_id);
	snprintf(f2, sizeof(f2), "msg_map:%s", message_id);
	BG_OUT(t, S("HSET"), S(t->id.reg_key), S(f1), bg_outbox_bytes(rec),
	       S(f2), S(execution_id));
	BG_OUT(t, S("EXPIRE"), S(t->id.reg_key), S("604800"));
}

struct bg_record_queued bg_outbox_callee_fields(const struct bg_job *t,
						const struct bg_outbox_req *rq,
						const char *stream_name)
{
	return (struct bg_record_queued){
		.execution_id = S(rq->execution_id),
		.message_id = S(rq->message_id),
		.session_id = S(t->id.session_id),
		.trace_id = S(t->id.trace_id),
		.parent_message_id = S(t->id.message_id),
		.source_agent_type = S(rq->wait ? t->id.agent_type : ""),
		.target_agent_type = S(rq->target),
		.stream_name = S(stream_name),
		.route = rq->policy != NULL,
		.route_policy = S(rq->policy ? rq->policy : ""),
		.route_status = S(rq->route_status ? rq->route_status : ""),
		.selected_agent_type = S(rq->selected ? rq->selected : ""),
		.availability_error_code = S(""),
		.availability_error = S(""),
		.now_ms = bg_now_ms(),
	};
}

int bg_outbox_callee_record(struct bg_job *t, const struct bg_outbox_req *rq,
			    const char *stream_name)
{
	struct bg_buf rec = { 0 };
	struct bg_record_queued q = bg_outbox_callee_fields(t, rq, stream_name);
	int rc = bg_record_build_queued(&rec, &q);
	if (rc == 0)
		bg_outbox_record(t, rq->execution_id, rq->message_id, &rec);
	bg_buf_free(&rec);
	return rc;
}

int bg_outbox_request(struct bg_daemon *d, struct bg_job *t,
		      struct bg_outbox_req *rq)
{
	struct bg_buf ask = { 0 };
	char *stream = bg_dkey_s(d, BG_KEY_AGENT_TYPE_CTRL, S(rq->target));
	int rc = stream && bg_outbox_build_ask(t, rq, &ask) == 0 &&
				 bg_outbox_callee_record(t, rq, stream) == 0
			 ? 0
			 : -1;
	if (rc == 0)
		BG_OUT(t, S("XADD"), S(stream), S("*"), S("data"),
		       bg_outbox_bytes(&ask));
	if (rc == 0 && (rq->group == NULL || rq->group[0] == '\0'))
		bg_trace_dispatch(d, t, rq->message_id, rq->target, rq->policy,
				  rq->route_status);
	bg_buf_free(&ask);
	free(stream);
	return rc;
}

/* A new attempt starts with an empty outbox (DESIGN 4.3). */
void bg_outbox_reset(struct bg_job *t)
{
	bg_cmdlist_reset(&t->run.outbox);
	json_decref(t->run.kv);
	t->run.kv = NULL;
	bg_buf_reset(&t->run.asked);
	t->run.suspended = false;
	t->run.permission_transferred = false;
	t->run.outbox_dropped = false;
}