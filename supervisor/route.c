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
#include "supervisor/route_int.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/route.h"

#define S(s) bg_str_c(s)
#define ROUTE_POLL_MS 100	   /* WAKE_AND_WAIT: decisions and online */
#define ROUTE_MAX_WAIT_MS 86400000 /* timeout_ms above this is capped */

/* ---- WAKE_AND_WAIT: the decision, or an online worker, by polling ---- */

static void wait_poll(struct route *r, struct bg_job *t);

static void on_wait_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct route *r = arg;
	struct bg_job *t = bg_route_job(r);
	if (t == NULL)
		bg_route_free(r);
	else
		wait_poll(r, t);
}

static void on_ready_online(struct route *r, struct bg_job *t, bool online)
{
	if (online)
		bg_route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
	else
		bg_route_unavailable(
			r, t, "No online worker found for agent_type '%s'");
}

/* No decision yet: an online worker is as good as READY ([ts] polls only
 * this); else wait for the next poll, or time out. */
static void on_wait_online(struct route *r, struct bg_job *t, bool online)
{
	int64_t left = r->deadline_ms - bg_mono_ms();
	if (online) {
		bg_route_deliver(r, t, "WAIT_AND_DELIVER", r->target);
		return;
	}
	if (left <= 0) {
		bg_route_unavailable(r, t,
				     "Timed out waiting for worker wakeup "
				     "for agent_type '%s'");
		return;
	}
	if (left > ROUTE_POLL_MS)
		left = ROUTE_POLL_MS;
	struct timeval tv = { 0, (suseconds_t)left * 1000 };
	if (r->timer == NULL || evtimer_add(r->timer, &tv) != 0)
		bg_route_fail(r, t, "INTERNAL", "cannot arm the wait timer");
}

static void decided(struct route *r, struct bg_job *t, const json_t *dec)
{
	char err[512];
	switch (bg_route_decision_verdict(dec, r->target, r->selected,
					  sizeof(r->selected), err,
					  sizeof(err))) {
	case BG_VERDICT_READY:
		bg_route_check_online(r, t, r->target, on_ready_online);
		break;
	case BG_VERDICT_FALLBACK:
		bg_route_deliver(r, t, ROUTE_FALLBACK, r->selected);
		break;
	case BG_VERDICT_REJECT:
		bg_route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", err);
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
	for (size_t i = 0;
	     rep->type == REDIS_REPLY_ARRAY && i < rep->elements && !dec; i++) {
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
		bg_route_check_online(r, t, r->target, on_wait_online);
	json_decref(dec);
}

static void wait_poll(struct route *r, struct bg_job *t)
{
	char *key = bg_dkey(r->d, BG_KEY_WAKEUP_RESULT, r->execution_id);
	if (key == NULL) {
		bg_route_fail(r, t, "INTERNAL", "cannot build a key");
		return;
	}
	/* from the last entry read, inclusive (no "(" before Redis 6.2) */
	bg_route_send(r, t, on_decisions, 6,
		      (const char *[]){ "XRANGE", key, r->last, "+", "COUNT",
					"17" });
	free(key);
}

/* Send the WakeupRequest now (see above), then poll until timeout_ms. */
static void wait_start(struct route *r, struct bg_job *t)
{
	struct bg_outbox_req rq;
	bg_route_request_of(r, r->target, &rq);
	struct bg_buf ask = { 0 }, wreq = { 0 };
	char *wkey = bg_dkey(r->d, BG_KEY_WAKEUP, "");
	int rc = wkey ? bg_route_records(r, t, &rq, &ask, &wreq, NULL) : -1;
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
		bg_route_fail(r, t, "UNAVAILABLE",
			      "cannot send the wakeup request");
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
		bg_route_unavailable(
			r, t, "No online worker found for agent_type '%s'");
	else if (strcmp(r->policy, "WAKE_AND_WAIT") == 0)
		wait_start(r, t);
	else if (strcmp(r->policy, "WAKE_AND_QUEUE") == 0)
		bg_route_queue(r, t, true);
	else if (strcmp(r->policy, "QUEUE_ONLY") == 0)
		bg_route_queue(r, t, false);
	else {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "Unsupported offline route policy '%s'", r->policy);
		bg_route_reject(r, t, "AGENT_TYPE_UNAVAILABLE", msg);
	}
}

static void on_fallback_online(struct route *r, struct bg_job *t, bool online)
{
	if (online)
		bg_route_deliver(r, t, ROUTE_FALLBACK, r->selected);
	else
		apply_policy(r, t);
}

/* _resolve_configured_fallback: an online fallback type takes it. */
static void on_fallback(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = bg_route_reply_object(rep);
	const char *sel = bg_route_fallback_type(v);
	bool use = sel[0] && strlen(sel) < sizeof(r->selected);
	if (use)
		snprintf(r->selected, sizeof(r->selected), "%s", sel);
	json_decref(v);
	if (use)
		bg_route_check_online(r, t, r->selected, on_fallback_online);
	else
		apply_policy(r, t);
}

static void on_target_online(struct route *r, struct bg_job *t, bool online)
{
	if (online)
		bg_route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		bg_route_read(r, t, on_fallback, "GET", BG_KEY_FALLBACK,
			      S(r->target));
}

static void after_checks(struct route *r, struct bg_job *t)
{
	if (strcmp(r->policy, "SEND_ANYWAY") == 0)
		bg_route_deliver(r, t, "DELIVER_NOW", r->target);
	else
		bg_route_check_online(r, t, r->target, on_target_online);
}

static void on_quota(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = bg_route_reply_object(rep);
	const char *why;
	if (bg_route_quota_exceeded(v, &why))
		bg_route_reject(r, t, "TENANT_QUOTA_EXCEEDED", why);
	else
		after_checks(r, t);
	json_decref(v);
}

/* The quota is checked only for a task with a user code. */
static void on_circuit(struct route *r, struct bg_job *t, redisReply *rep)
{
	json_t *v = bg_route_reply_object(rep);
	const char *why;
	struct bg_str user = t->id.cmd.hdr[BG_HDR_USER_CODE];
	if (bg_route_circuit_open(v, &why))
		bg_route_reject(r, t, "AGENT_CIRCUIT_OPEN", why);
	else if (user.len)
		bg_route_read(r, t, on_quota, "GET", BG_KEY_QUOTA, user);
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
	if (region && (bg_arg_name(region) == NULL ||
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
		const char *s = json_string_value(content);
		for (size_t i = 0; i < json_string_length(content); i++)
			if (!isspace((unsigned char)s[i]))
				return true; /* a NUL is not blank */
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

void bg_route_call_agent(struct bg_daemon *d, struct bg_job *t, const char *id,
			 json_t *args)
{
	const char *target =
		bg_arg_name(json_object_get(args, "target_agent_type"));
	json_t *policy_v = json_object_get(args, "route_policy");
	const char *policy = bg_arg_name(policy_v);
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
	if ((json_is_string(policy_v) && policy == NULL) ||
	    (policy && *policy && !policy_known(policy))) {
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
	r->run_id = t->run.run_id;
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->target, sizeof(r->target), "%s", target);
	snprintf(r->policy, sizeof(r->policy), "%s",
		 policy && *policy ? policy : "FAIL_FAST");
	bg_id_new(r->message_id, sizeof(r->message_id), "msg-");
	bg_id_new(r->execution_id, sizeof(r->execution_id), "exec-");
	r->args = json_incref(args);
	bg_route_link(r);
	bg_route_read(r, t, on_circuit, "GET", BG_KEY_CIRCUIT, S(r->target));
}