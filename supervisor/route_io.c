/* supervisor/route_io.c - the plumbing of a call_agent route (route.c
 * runs its steps): the route object and the list of live ones, one Redis
 * command at a time on the control connection with its continuation, the
 * online check of an agent type (WIRE 5.2), and the outcomes: the
 * handler's answer, the callee's records and ASK into the outbox, the
 * queueing policies' PendingDelivery and WakeupRequest. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "supervisor/route.h"
#include "supervisor/route_int.h"
#include "supervisor/trace.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/route.h"

#define S(s) bg_str_c(s)

/* Every route not yet freed, for bg_route_free_all at exit. */
static struct route *live;

void bg_route_link(struct route *r)
{
	r->live_next = live;
	if (live)
		live->live_prev = r;
	live = r;
}

void bg_route_free(struct route *r)
{
	if (r->live_prev)
		r->live_prev->live_next = r->live_next;
	else if (live == r)
		live = r->live_next;
	if (r->live_next)
		r->live_next->live_prev = r->live_prev;
	if (r->timer)
		event_free(r->timer);
	json_decref(r->args);
	free(r);
}

/* At exit: frees d's routes between two polls of WAKE_AND_WAIT (only their
 * timer would). A route with a read in flight is its reply's to free; the
 * connection's free delivers that reply (NULL). */
void bg_route_free_all(struct bg_daemon *d)
{
	struct route *next;
	for (struct route *r = live; r; r = next) {
		next = r->live_next;
		if (r->d == d && !r->in_flight)
			bg_route_free(r);
	}
}

/* The running attempt that asked, or NULL. */
struct bg_job *bg_route_job(const struct route *r)
{
	return bg_outbox_task_of(r->d, r->tag, r->run_id);
}

static void route_note(const struct route *r, const struct bg_job *t,
		       const char *what, const char *detail)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids, "call_agent %s (%s, callee %s): %s%s%s",
		    r->target, r->policy, r->message_id, what,
		    detail[0] ? ": " : "", detail);
}

/* The route cannot be decided (Redis unavailable, no memory): an error
 * reply, nothing written. */
void bg_route_fail(struct route *r, struct bg_job *t, const char *code,
		   const char *msg)
{
	route_note(r, t, "failed", msg);
	bg_outbox_reply_error(r->d, t, r->id, code, msg);
	bg_route_free(r);
}

/* The route's request, to agent type `type`. */
void bg_route_request_of(const struct route *r, const char *type,
			 struct bg_outbox_req *rq)
{
	*rq = (struct bg_outbox_req){
		.target = type,
		.content = json_object_get(r->args, "content"),
		.wait = !json_is_false(
			json_object_get(r->args, "wait_for_reply")),
		.extra = json_object_get(r->args, "extra_payload"),
		.metadata = json_object_get(r->args, "metadata"),
		.group = "",
		.policy = r->policy,
	};
	snprintf(rq->message_id, sizeof(rq->message_id), "%s", r->message_id);
	snprintf(rq->execution_id, sizeof(rq->execution_id), "%s",
		 r->execution_id);
}

/* REJECT (record_failed_route_decision): the callee's FAILED record into
 * the outbox and the error to the handler. */
void bg_route_reject(struct route *r, struct bg_job *t, const char *code,
		     const char *msg)
{
	struct bg_outbox_req rq;
	struct bg_buf rec = { 0 };
	bg_route_request_of(r, r->target, &rq);
	struct bg_record_queued q = bg_outbox_callee_fields(t, &rq, "");
	q.availability_error_code = S(code);
	q.availability_error = S(msg);
	if (bg_route_failed_record(&rec, &q) == 0)
		bg_outbox_record(t, r->execution_id, r->message_id, &rec);
	bg_buf_free(&rec);
	route_note(r, t, "REJECT", msg);
	bg_outbox_reply_error(r->d, t, r->id, code, msg);
	bg_route_free(r);
}

void bg_route_unavailable(struct route *r, struct bg_job *t, const char *fmt)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, r->target);
	bg_route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
}

static void on_route(struct bg_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct route *r = priv;
	r->in_flight = false;
	struct bg_job *t = bg_route_job(r);
	if (t == NULL)
		bg_route_free(r);
	else if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
		bg_route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
	else
		r->next(r, t, rep);
}

/* Send a read on the control connection; next runs with its reply. */
void bg_route_send(struct route *r, struct bg_job *t, route_fn next, int argc,
		   const char **argv)
{
	r->next = next;
	r->in_flight =
		bg_rconn_cmd(r->d->ctl, on_route, r, 0, argc, argv, NULL) == 0;
	if (!r->in_flight)
		bg_route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
}

/* `cmd <the key of (kind, id)>`, e.g. GET of an operator's value. */
void bg_route_read(struct route *r, struct bg_job *t, route_fn next,
		   const char *cmd, enum bg_key_kind kind, struct bg_str id)
{
	char *key = bg_dkey_s(r->d, kind, id);
	if (key == NULL) {
		bg_route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	bg_route_send(r, t, next, 2, (const char *[]){ cmd, key });
	free(key);
}

/* A GET reply as the WIRE 7 readers take it (objects only). */
json_t *bg_route_reply_object(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_STRING
		       ? bg_route_object(rep->str, rep->len)
		       : NULL;
}

static bool lease_online(const redisReply *v)
{
	return v && v->type == REDIS_REPLY_STRING &&
	       bg_route_lease_online(v->str, v->len);
}

/* ---- check_agent_type_online (WIRE 5.2): members, then their leases ---- */

static void on_leases(struct route *r, struct bg_job *t, redisReply *rep)
{
	bool online = false;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
	     i++)
		online = online || lease_online(rep->element[i]);
	r->then(r, t, online);
}

static void on_members(struct route *r, struct bg_job *t, redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
		r->then(r, t, false);
		return;
	}
	size_t n = rep->elements;
	const char **argv = calloc(n + 1, sizeof(*argv));
	char **keys = calloc(n, sizeof(*keys));
	if (argv && keys) {
		argv[0] = "MGET";
		for (size_t i = 0; i < n; i++) {
			const redisReply *e = rep->element[i];
			if (e->type == REDIS_REPLY_STRING)
				keys[i] = bg_dkey_s(r->d, BG_KEY_WORKER_ONLINE,
						    (struct bg_str){ e->str,
								     e->len });
			argv[i + 1] = keys[i] ? keys[i] : "";
		}
		bg_route_send(r, t, on_leases, (int)n + 1, argv);
	} else {
		bg_route_fail(r, t, "INTERNAL", "out of memory");
	}
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(argv);
}

void bg_route_check_online(struct route *r, struct bg_job *t, const char *type,
			   online_fn then)
{
	r->then = then;
	bg_route_read(r, t, on_members, "SMEMBERS", BG_KEY_AGENT_TYPE_MEMBERS,
		      S(type));
}

/* ---- outcomes ---- */

/* WIRE 6.6's reply; a queued request adds its route_status. */
static void reply_queued(struct route *r, struct bg_job *t,
			 const struct bg_outbox_req *rq, const char *queued)
{
	if (rq->wait)
		t->run.suspended = true;
	else
		t->run.permission_transferred = true;
	json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "status", "QUEUED",
				"message_id", rq->message_id,
				"parent_message_id", t->id.message_id,
				"target_agent_type", rq->target);
	if (queued)
		json_object_set_new(res, "route_status", json_string(queued));
	route_note(r, t, rq->route_status, rq->target);
	bg_outbox_reply(r->d, t, r->id, res);
}

/* DELIVER_NOW, WAIT_AND_DELIVER, FALLBACK_TO_OTHER_AGENT_TYPE: the
 * callee's record and ASK to `type`'s control stream. */
void bg_route_deliver(struct route *r, struct bg_job *t, const char *status,
		      const char *type)
{
	struct bg_outbox_req rq;
	bg_route_request_of(r, type, &rq);
	rq.route_status = status;
	rq.selected = strcmp(status, ROUTE_FALLBACK) ? "" : type;
	if (bg_outbox_request(r->d, t, &rq) != 0) {
		bg_route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	reply_queued(r, t, &rq, NULL);
	bg_route_free(r);
}

/* The DeliveryIntent of the route, for its WakeupRequest and
 * PendingDelivery; command is the ASK, mdtxt the metadata's JSON. */
static struct bg_route_intent route_intent(const struct route *r,
					   const struct bg_job *t,
					   const struct bg_buf *ask,
					   const char *mdtxt)
{
	return (struct bg_route_intent){
		.execution_id = S(r->execution_id),
		.message_id = S(r->message_id),
		.session_id = S(t->id.session_id),
		.trace_id = S(t->id.trace_id),
		.source = S(t->id.agent_type),
		.target_agent_type = S(r->target),
		.user_code = t->id.cmd.hdr[BG_HDR_USER_CODE],
		.region = S(r->region),
		.priority = r->priority,
		.policy = S(r->policy),
		.timeout_ms = r->timeout_ms,
		.command = bg_outbox_bytes(ask),
		.metadata = S(mdtxt ? mdtxt : ""),
	};
}

/* The ASK and the WakeupRequest (wake) and/or PendingDelivery (pending)
 * JSON of the route. 0 or -1. */
int bg_route_records(struct route *r, struct bg_job *t,
		     struct bg_outbox_req *rq, struct bg_buf *ask,
		     struct bg_buf *wake, struct bg_buf *pending)
{
	json_t *md = json_object_get(r->args, "metadata");
	char *mdtxt = json_is_object(md) ? json_dumps(md, JSON_COMPACT) : NULL;
	char *ctrl = bg_dkey_s(r->d, BG_KEY_AGENT_TYPE_CTRL, S(r->target));
	int rc = ctrl && (mdtxt || !json_is_object(md)) &&
				 bg_outbox_build_ask(t, rq, ask) == 0
			 ? 0
			 : -1;
	struct bg_route_intent in = route_intent(r, t, ask, mdtxt);
	if (rc == 0 && wake)
		rc = bg_route_wakeup_json(wake, &in) ? -1 : 0;
	if (rc == 0 && pending)
		rc = bg_route_pending_json(pending, &in, S(ctrl)) ? -1 : 0;
	free(ctrl);
	free(mdtxt);
	return rc;
}

/* WAKE_AND_QUEUE / QUEUE_ONLY (QUEUE_PENDING): instead of the ASK, the
 * callee's record (stream_name = the pending stream), the WakeupRequest
 * (wake) and the PendingDelivery the delivery gate later turns into the
 * ASK (`bygate gate`, `bygate dispatch`). */
void bg_route_queue(struct route *r, struct bg_job *t, bool wake)
{
	struct bg_outbox_req rq;
	bg_route_request_of(r, r->target, &rq);
	rq.route_status = "QUEUE_PENDING";
	struct bg_buf ask = { 0 }, wreq = { 0 }, pend = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	char *pkey = bg_dkey(r->d, BG_KEY_PENDING_DELIVERIES, "");
	bool ok = wkey && pkey &&
		  bg_route_records(r, t, &rq, &ask, wake ? &wreq : NULL,
				   &pend) == 0 &&
		  bg_outbox_callee_record(t, &rq, pkey) == 0;
	if (ok && wake)
		BG_OUT(t, S("XADD"), S(wkey), S("*"), S("data"),
		       bg_outbox_bytes(&wreq));
	if (ok)
		BG_OUT(t, S("XADD"), S(pkey), S("*"), S("data"),
		       bg_outbox_bytes(&pend));
	bg_buf_free(&ask);
	bg_buf_free(&wreq);
	bg_buf_free(&pend);
	free(wkey);
	free(pkey);
	if (!ok) {
		bg_route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	bg_trace_dispatch(r->d, t, rq.message_id, rq.target, rq.policy,
			  rq.route_status);
	reply_queued(r, t, &rq, "QUEUE_PENDING");
	bg_route_free(r);
}
