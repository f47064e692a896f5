/* supervisor/route.c - call_agent's route (WIRE 7, sender side), run
 * asynchronously on the loop as prepare_delivery is in Python: circuit,
 * quota, SEND_ANYWAY, online members, configured fallback, then the policy.
 * Reads are live on the control connection; every write (the callee's
 * record and ASK, the PendingDelivery and WakeupRequest of the queueing
 * policies, the FAILED record of a refused route) goes to the outbox
 * (outbox.h). The one exception is the WakeupRequest of WAKE_AND_WAIT: the
 * wakeup controller must see it while the handler waits for its decision,
 * so it is sent at once (a retried attempt may repeat it; the controller's
 * dedupe answers the repeat). Each step is a continuation run when its
 * reply arrives; a route whose attempt has ended meanwhile is dropped. */
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
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/route.h"

#define S(s) bg_str_c(s)
#define ROUTE_POLL_MS 100		/* WAKE_AND_WAIT: decisions and online */
#define ROUTE_MAX_WAIT_MS 86400000	/* timeout_ms above this is capped */
#define ROUTE_FALLBACK "FALLBACK_TO_OTHER_AGENT_TYPE"

struct route;
typedef void (*route_fn)(struct route *r, struct bg_job *t,
			 redisReply *rep);
typedef void (*online_fn)(struct route *r, struct bg_job *t, bool online);

struct route {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id; /* the run that asked (a re-run or retry of the task
			    must not receive this reply) */
	char id[32];
	json_t *args;
	char target[160];
	char policy[32];
	char region[160];
	int64_t priority;
	int64_t timeout_ms;   /* as given (0 = default), capped */
	int64_t deadline_ms;  /* WAKE_AND_WAIT, monotonic */
	char selected[160];   /* a fallback agent type */
	char message_id[32];  /* minted at the call (the WakeupRequest */
	char execution_id[32]; /* and the records carry them) */
	char last[48];	      /* the last decision entry read */
	route_fn next;	      /* continuation of the command in flight */
	online_fn then;	      /* continuation of the online check */
	bool in_flight;	      /* a reply is due to on_route */
	struct event *timer;
	struct route *live_prev, *live_next; /* in `live` */
};

/* Every route not yet freed, for bg_route_free_all at exit. */
static struct route *live;

static void route_link(struct route *r)
{
	r->live_next = live;
	if (live)
		live->live_prev = r;
	live = r;
}

static void route_free(struct route *r)
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
			route_free(r);
	}
}

/* The running attempt that asked, or NULL. */
static struct bg_job *route_task(const struct route *r)
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
static void route_fail(struct route *r, struct bg_job *t, const char *code,
		       const char *msg)
{
	route_note(r, t, "failed", msg);
	bg_outbox_reply_error(r->d, t, r->id, code, msg);
	route_free(r);
}

/* The route's request, to agent type `type`. */
static void request_of(const struct route *r, const char *type,
		       struct bg_outbox_req *rq)
{
	*rq = (struct bg_outbox_req){
		.target = type,
		.content = json_object_get(r->args, "content"),
		.wait = !json_is_false(json_object_get(r->args,
						       "wait_for_reply")),
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
static void route_reject(struct route *r, struct bg_job *t, const char *code,
			 const char *msg)
{
	struct bg_outbox_req rq;
	struct bg_buf rec = { 0 };
	request_of(r, r->target, &rq);
	struct bg_record_queued q = bg_outbox_callee_fields(t, &rq, "");
	q.availability_error_code = S(code);
	q.availability_error = S(msg);
	if (bg_route_failed_record(&rec, &q) == 0)
		bg_outbox_record(t, r->execution_id, r->message_id, &rec);
	bg_buf_free(&rec);
	route_note(r, t, "REJECT", msg);
	bg_outbox_reply_error(r->d, t, r->id, code, msg);
	route_free(r);
}

static void route_unavailable(struct route *r, struct bg_job *t,
			      const char *fmt)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, r->target);
	route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
}

static void on_route(struct bg_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct route *r = priv;
	r->in_flight = false;
	struct bg_job *t = route_task(r);
	if (t == NULL)
		route_free(r);
	else if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
		route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
	else
		r->next(r, t, rep);
}

/* Send a read on the control connection; next runs with its reply. */
static void route_send(struct route *r, struct bg_job *t, route_fn next,
		       int argc, const char **argv)
{
	r->next = next;
	r->in_flight = bg_rconn_cmd(r->d->ctl, on_route, r, 0, argc, argv,
				    NULL) == 0;
	if (!r->in_flight)
		route_fail(r, t, "UNAVAILABLE", "Redis unavailable");
}

/* `cmd <the key of (kind, id)>`, e.g. GET of an operator's value. */
static void route_read(struct route *r, struct bg_job *t, route_fn next,
		       const char *cmd, enum bg_key_kind kind, struct bg_str id)
{
	char *key = bg_dkey_s(r->d, kind, id);
	if (key == NULL) {
		route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	route_send(r, t, next, 2, (const char *[]){ cmd, key });
	free(key);
}

/* A GET reply as the WIRE 7 readers take it (objects only). */
static json_t *reply_object(const redisReply *rep)
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
		route_send(r, t, on_leases, (int)n + 1, argv);
	} else {
		route_fail(r, t, "INTERNAL", "out of memory");
	}
	for (size_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	free(argv);
}

static void check_online(struct route *r, struct bg_job *t, const char *type,
			 online_fn then)
{
	r->then = then;
	route_read(r, t, on_members, "SMEMBERS", BG_KEY_AGENT_TYPE_MEMBERS,
		   S(type));
}

/* ---- outcomes ---- */

/* WIRE 6.6's reply; a queued request adds its route_status. */
static void reply_queued(struct route *r, struct bg_job *t,
			 const struct bg_outbox_req *rq, const char *queued)
{
	if (rq->wait)
		t->suspended = true;
	else
		t->permission_transferred = true;
	json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "status", "QUEUED",
				"message_id", rq->message_id,
				"parent_message_id", t->message_id,
				"target_agent_type", rq->target);
	if (queued)
		json_object_set_new(res, "route_status", json_string(queued));
	route_note(r, t, rq->route_status, rq->target);
	bg_outbox_reply(r->d, t, r->id, res);
}

/* DELIVER_NOW, WAIT_AND_DELIVER, FALLBACK_TO_OTHER_AGENT_TYPE: the
 * callee's record and ASK to `type`'s control stream. */
static void route_deliver(struct route *r, struct bg_job *t,
			  const char *status, const char *type)
{
	struct bg_outbox_req rq;
	request_of(r, type, &rq);
	rq.route_status = status;
	rq.selected = strcmp(status, ROUTE_FALLBACK) ? "" : type;
	if (bg_outbox_request(r->d, t, &rq) != 0) {
		route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	reply_queued(r, t, &rq, NULL);
	route_free(r);
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
		.session_id = S(t->session_id),
		.trace_id = S(t->trace_id),
		.source = S(t->agent_type),
		.target_agent_type = S(r->target),
		.user_code = t->cmd.hdr[BG_HDR_USER_CODE],
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
static int route_records(struct route *r, struct bg_job *t,
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
static void route_queue(struct route *r, struct bg_job *t, bool wake)
{
	struct bg_outbox_req rq;
	request_of(r, r->target, &rq);
	rq.route_status = "QUEUE_PENDING";
	struct bg_buf ask = { 0 }, wreq = { 0 }, pend = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	char *pkey = bg_dkey(r->d, BG_KEY_PENDING_DELIVERIES, "");
	bool ok = wkey && pkey &&
		  route_records(r, t, &rq, &ask, wake ? &wreq : NULL,
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
		route_fail(r, t, "INTERNAL", "out of memory");
		return;
	}
	reply_queued(r, t, &rq, "QUEUE_PENDING");
	route_free(r);
}

/* ---- WAKE_AND_WAIT: the decision, or an online worker, by polling ---- */

static void wait_poll(struct route *r, struct bg_job *t);

static void on_wait_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct route *r = arg;
	struct bg_job *t = route_task(r);
	if (t == NULL)
		route_free(r);
	else
		wait_poll(r, t);
}

static void on_ready_online(struct route *r, struct bg_job *t, bool online)
{
	if (online)
		route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
	else
		route_unavailable(r, t,
				  "No online worker found for agent_type '%s'");
}

/* No decision yet: an online worker is as good as READY ([ts] polls only
 * this); else wait for the next poll, or time out. */
static void on_wait_online(struct route *r, struct bg_job *t, bool online)
{
	int64_t left = r->deadline_ms - bg_mono_ms();
	if (online) {
		route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
		return;
	}
	if (left <= 0) {
		route_unavailable(r, t, "Timed out waiting for worker wakeup "
					"for agent_type '%s'");
		return;
	}
	if (left > ROUTE_POLL_MS)
		left = ROUTE_POLL_MS;
	struct timeval tv = { 0, (suseconds_t)left * 1000 };
	if (r->timer == NULL || evtimer_add(r->timer, &tv) != 0)
		route_fail(r, t, "INTERNAL", "cannot arm the wait timer");
}

static void decided(struct route *r, struct bg_job *t, const json_t *dec)
{
	char err[512];
	switch (bg_route_decision_verdict(dec, r->target, r->selected,
					  sizeof(r->selected), err,
					  sizeof(err))) {
	case BG_VERDICT_READY:
		check_online(r, t, r->target, on_ready_online);
		break;
	case BG_VERDICT_FALLBACK:
		route_deliver(r, t, ROUTE_FALLBACK, r->selected);
		break;
	case BG_VERDICT_REJECT:
		route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", err);
		break;
	}
}

/* The `data` field of an XRANGE entry [id, [field, value, ...]] after
 * r->last, which it becomes. NULL when the entry has none or was read. */
static const redisReply *entry_data(struct route *r, const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[1]->type != REDIS_REPLY_ARRAY ||
	    e->element[0]->len >= sizeof(r->last) ||
	    strcmp(e->element[0]->str, r->last) == 0)
		return NULL;
	snprintf(r->last, sizeof(r->last), "%s", e->element[0]->str);
	return bg_reply_field(e->element[1], "data");
}

/* The first final decision after r->last (STARTING and QUEUED skipped,
 * as the client does), else the online check. */
static void on_decisions(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *dec = NULL;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY &&
			   i < rep->elements && !dec;
	     i++) {
		const redisReply *data = entry_data(r, rep->element[i]);
		dec = data ? bg_route_decision(data->str, data->len,
					       r->execution_id)
			   : NULL;
		if (dec && !bg_route_decision_final(dec)) {
			json_decref(dec);
			dec = NULL;
		}
	}
	if (dec)
		decided(r, t, dec);
	else
		check_online(r, t, r->target, on_wait_online);
	json_decref(dec);
}

static void wait_poll(struct route *r, struct bg_job *t)
{
	char *key = bg_dkey(r->d, BG_KEY_WAKEUP_RESULT, r->execution_id);
	if (key == NULL) {
		route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	/* from the last entry read, inclusive (no "(" before Redis 6.2) */
	route_send(r, t, on_decisions, 6,
		   (const char *[]){ "XRANGE", key, r->last, "+", "COUNT",
				     "17" });
	free(key);
}

/* Send the WakeupRequest now (see above), then poll until timeout_ms. */
static void wait_start(struct route *r, struct bg_job *t)
{
	struct bg_outbox_req rq;
	request_of(r, r->target, &rq);
	struct bg_buf ask = { 0 }, wreq = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	int rc = wkey ? route_records(r, t, &rq, &ask, &wreq, NULL) : -1;
	if (rc == 0)
		rc = bg_rconn_cmdv(r->d->wr, NULL, NULL, 0,
				   (const char *const[]){ "XADD", wkey, "*",
							  "data", wreq.p,
							  NULL });
	bg_buf_free(&ask);
	bg_buf_free(&wreq);
	free(wkey);
	r->timer = rc == 0 ? evtimer_new(r->d->base, on_wait_tick, r) : NULL;
	if (rc != 0 || r->timer == NULL) {
		route_fail(r, t, "UNAVAILABLE", "cannot send the wakeup request");
		return;
	}
	r->deadline_ms = bg_mono_ms() + bg_route_timeout_ms(r->timeout_ms);
	snprintf(r->last, sizeof(r->last), "-");
	wait_poll(r, t);
}

/* ---- the steps of prepare_delivery ---- */

static void apply_policy(struct route *r, struct bg_job *t)
{
	if (strcmp(r->policy, "FAIL_FAST") == 0)
		route_unavailable(r, t,
				  "No online worker found for agent_type '%s'");
	else if (strcmp(r->policy, "WAKE_AND_WAIT") == 0)
		wait_start(r, t);
	else if (strcmp(r->policy, "WAKE_AND_QUEUE") == 0)
		route_queue(r, t, true);
	else if (strcmp(r->policy, "QUEUE_ONLY") == 0)
		route_queue(r, t, false);
	else {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "Unsupported offline route policy '%s'", r->policy);
		route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
	}
}

static void on_fallback_online(struct route *r, struct bg_job *t,
			       bool online)
{
	if (online)
		route_deliver(r, t, ROUTE_FALLBACK, r->selected);
	else
		apply_policy(r, t);
}

/* _resolve_configured_fallback: an online fallback type takes it. */
static void on_fallback(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *sel = bg_route_fallback_type(v);
	bool use = sel[0] && strlen(sel) < sizeof(r->selected);
	if (use)
		snprintf(r->selected, sizeof(r->selected), "%s", sel);
	json_decref(v);
	if (use)
		check_online(r, t, r->selected, on_fallback_online);
	else
		apply_policy(r, t);
}

static void on_target_online(struct route *r, struct bg_job *t, bool online)
{
	if (online)
		route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		route_read(r, t, on_fallback, "GET", BG_KEY_FALLBACK,
			   S(r->target));
}

static void after_checks(struct route *r, struct bg_job *t)
{
	if (strcmp(r->policy, "SEND_ANYWAY") == 0)
		route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		check_online(r, t, r->target, on_target_online);
}

static void on_quota(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *why;
	if (bg_route_quota_exceeded(v, &why))
		route_reject(r, t, "TENANT_QUOTA_EXCEEDED", why);
	else
		after_checks(r, t);
	json_decref(v);
}

/* The quota is checked only for a task with a user code. */
static void on_circuit(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = reply_object(rep);
	const char *why;
	struct bg_str user = t->cmd.hdr[BG_HDR_USER_CODE];
	if (bg_route_circuit_open(v, &why))
		route_reject(r, t, "AGENT_CIRCUIT_OPEN", why);
	else if (user.len)
		route_read(r, t, on_quota, "GET", BG_KEY_QUOTA, user);
	else
		after_checks(r, t);
	json_decref(v);
}

/* The optional route arguments: timeout_ms (alias availability_timeout_ms,
 * as Python names it), region, priority. NULL or what is wrong. */
static const char *route_options(struct route *r, json_t *args)
{
	json_t *to = json_object_get(args, "timeout_ms");
	json_t *region = json_object_get(args, "region");
	json_t *prio = json_object_get(args, "priority");
	if (to == NULL)
		to = json_object_get(args, "availability_timeout_ms");
	if ((to && !json_is_integer(to)) || (prio && !json_is_integer(prio)))
		return "call_agent: timeout_ms and priority must be integers";
	if (region && (!json_is_string(region) ||
		       json_string_length(region) >= sizeof(r->region)))
		return "call_agent: region must be a string of at most 159 "
		       "bytes";
	r->timeout_ms = to ? json_integer_value(to) : 0;
	if (r->timeout_ms > ROUTE_MAX_WAIT_MS)
		r->timeout_ms = ROUTE_MAX_WAIT_MS;
	r->priority = prio ? json_integer_value(prio) : 0;
	snprintf(r->region, sizeof(r->region), "%s",
		 region ? json_string_value(region) : "");
	return NULL;
}

/* WIRE 2.3: a non-blank string, a non-empty list, or an object. */
static bool content_ok(const json_t *content)
{
	if (json_is_string(content)) {
		for (const char *s = json_string_value(content); *s; s++)
			if (!isspace((unsigned char)*s))
				return true;
		return false;
	}
	return (json_is_array(content) && json_array_size(content) > 0) ||
	       json_is_object(content);
}

static bool policy_known(const char *p)
{
	static const char *const known[] = { "FAIL_FAST", "SEND_ANYWAY",
					     "WAKE_AND_WAIT", "WAKE_AND_QUEUE",
					     "QUEUE_ONLY" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(p, known[i]) == 0)
			return true;
	return false;
}

void bg_route_call_agent(struct bg_daemon *d, struct bg_job *t,
			  const char *id, json_t *args)
{
	const char *target =
		json_string_value(json_object_get(args, "target_agent_type"));
	const char *policy =
		json_string_value(json_object_get(args, "route_policy"));
	json_t *content = json_object_get(args, "content");
	if (target == NULL || !*target || strlen(target) > 128) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "call_agent needs target_agent_type");
		return;
	}
	if (!content_ok(content)) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "call_agent: content must be a non-blank "
				      "string, a non-empty array or an object");
		return;
	}
	if (policy && *policy && !policy_known(policy)) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "call_agent: route_policy must be "
				      "FAIL_FAST, SEND_ANYWAY, WAKE_AND_WAIT, "
				      "WAKE_AND_QUEUE or QUEUE_ONLY");
		return;
	}
	struct route *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	const char *why = route_options(r, args);
	if (why) {
		free(r);
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT", why);
		return;
	}
	r->d = d;
	r->tag = t->tag;
	r->run_id = t->run_id;
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->target, sizeof(r->target), "%s", target);
	snprintf(r->policy, sizeof(r->policy), "%s",
		 policy && *policy ? policy : "FAIL_FAST");
	bg_id_new(r->message_id, sizeof(r->message_id), "msg-");
	bg_id_new(r->execution_id, sizeof(r->execution_id), "exec-");
	r->args = json_incref(args);
	route_link(r);
	route_read(r, t, on_circuit, "GET", BG_KEY_CIRCUIT, S(r->target));
}