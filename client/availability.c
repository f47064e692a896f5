/* client/availability.c - the sender side of the availability control
 * plane (WIRE 7, Python core/availability.py AvailabilityRouter): circuit,
 * quota, online members, fallback, then the route policy; the WakeupRequest
 * and PendingDelivery records; the WAKE_AND_WAIT decision wait. */
#include "client/client_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "wire/route.h"

const char *bg_client_route_name(enum bg_client_route s)
{
	switch (s) {
	case BG_ROUTE_DELIVER_NOW:
		return "DELIVER_NOW";
	case BG_ROUTE_WAIT_AND_DELIVER:
		return "WAIT_AND_DELIVER";
	case BG_ROUTE_QUEUE_PENDING:
		return "QUEUE_PENDING";
	case BG_ROUTE_FALLBACK:
		return "FALLBACK_TO_OTHER_AGENT_TYPE";
	default:
		return "REJECT";
	}
}

static int reject(struct bg_client_route_result *out, const char *code,
		  const char *fmt, const char *arg)
{
	out->status = BG_ROUTE_REJECT;
	snprintf(out->error_code, sizeof out->error_code, "%s", code);
	snprintf(out->error, sizeof out->error, fmt, arg);
	return 0;
}

static int unavailable(struct bg_client_route_result *out, const char *type)
{
	return reject(out, "AGENT_TYPE_UNAVAILABLE",
		      "No online worker found for agent_type '%s'", type);
}

/* The JSON object stored under the key of (kind, id), or NULL. */
static int read_object(struct bg_client *c, enum bg_key_kind kind,
		       const char *id, json_t **out)
{
	struct bg_buf key = { 0 };
	*out = NULL;
	int rc = bg_client_key(c, &key, kind, id);
	if (rc == 0)
		rc = bg_client_get_object(c, key.p, out);
	bg_buf_free(&key);
	return rc;
}

/* Circuit and quota (_check_control_plane_policy): *done when rejected. */
static int check_policy(struct bg_client *c, const struct bg_client_intent *in,
			struct bg_client_route_result *out, bool *done)
{
	json_t *v;
	const char *why;
	*done = false;
	int rc = read_object(c, BG_KEY_CIRCUIT, in->target_agent_type, &v);
	if (rc == 0 && bg_route_circuit_open(v, &why)) {
		*done = true;
		reject(out, "AGENT_CIRCUIT_OPEN", "%s", why);
	}
	json_decref(v);
	if (rc || *done || !in->user_code || !in->user_code[0])
		return rc;
	rc = read_object(c, BG_KEY_QUOTA, in->user_code, &v);
	if (rc == 0 && bg_route_quota_exceeded(v, &why)) {
		*done = true;
		reject(out, "TENANT_QUOTA_EXCEEDED", "%s", why);
	}
	json_decref(v);
	return rc;
}

static int type_online(struct bg_client *c, const char *type, bool *online)
{
	struct bg_client_strs w = { 0 };
	int rc = bg_client_online_workers(c, type, &w);
	*online = w.n > 0;
	bg_client_strs_free(&w);
	return rc;
}

/* _resolve_configured_fallback: *done when an online fallback exists. */
static int check_fallback(struct bg_client *c, const char *type,
			  struct bg_client_route_result *out, bool *done)
{
	json_t *v;
	*done = false;
	int rc = read_object(c, BG_KEY_FALLBACK, type, &v);
	const char *sel = bg_route_fallback_type(v);
	if (rc == 0 && sel[0] && strlen(sel) < sizeof out->selected)
		rc = type_online(c, sel, done);
	if (rc == 0 && *done) {
		out->status = BG_ROUTE_FALLBACK;
		strcpy(out->selected, sel);
	}
	json_decref(v);
	return rc;
}

/* ---- records ---------------------------------------------------------- */

/* The wire view of an intent (wire/route.h builds the records). */
static struct bg_route_intent wire_intent(const struct bg_client_intent *in)
{
	return (struct bg_route_intent){
		.execution_id = bg_str_c(in->execution_id),
		.message_id = bg_str_c(in->message_id),
		.session_id = bg_str_c(in->session_id),
		.trace_id = bg_str_c(in->trace_id),
		.source = bg_str_c(in->source),
		.target_agent_type = bg_str_c(in->target_agent_type),
		.user_code = bg_str_c(in->user_code),
		.region = bg_str_c(in->region),
		.priority = in->priority,
		.policy = bg_str_c(in->policy),
		.timeout_ms = in->timeout_ms,
		.command = in->command,
		.metadata = in->metadata,
	};
}

int bg_client_wakeup_json(struct bg_client *c, struct bg_buf *out,
			  const struct bg_client_intent *in)
{
	struct bg_route_intent wi = wire_intent(in);
	return bg_route_wakeup_json(out, &wi);
}

int bg_client_pending_json(struct bg_client *c, struct bg_buf *out,
			   const struct bg_client_intent *in)
{
	struct bg_buf stream = { 0 };
	struct bg_route_intent wi = wire_intent(in);
	int rc = bg_client_key(c, &stream, BG_KEY_AGENT_TYPE_CTRL,
			       in->target_agent_type);
	if (rc == 0)
		rc = bg_route_pending_json(
			out, &wi, (struct bg_str){ stream.p, stream.len });
	bg_buf_free(&stream);
	return rc;
}

/* ---- WAKE_AND_WAIT ------------------------------------------------------ */

/* Read one entry of the result stream after *last, blocking up to ms.
 * *d is the decision (NULL on timeout or a skipped entry); *timed_out. */
static int read_decision(struct bg_client *c, const char *key, char *last,
			 int ms, const char *exec_id, json_t **d,
			 bool *timed_out)
{
	char block[16];
	redisReply *r;
	*d = NULL;
	*timed_out = false;
	snprintf(block, sizeof block, "%d", ms);
	bg_client_set_timeout(c, ms);
	int rc = bg_client_cmd(c, &r, "XREAD", "COUNT", "1", "BLOCK", block,
			       "STREAMS", key, last, NULL);
	bg_client_set_timeout(c, -1);
	if (rc)
		return rc;
	const redisReply *entries = bg_client_xread_entries(r);
	const char *id;
	const redisReply *data;
	if (entries == NULL)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "XREAD: unexpected "
				    "reply");
	else if (entries->elements == 0)
		*timed_out = true;
	else if (bg_client_entry(entries->element[0], &id, &data))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "XREAD: malformed "
				    "entry");
	else {
		strcpy(last, id);
		*d = data ? bg_route_decision(data->str, data->len, exec_id)
			  : NULL;
	}
	freeReplyObject(r);
	return rc;
}

/* _wait_for_wakeup_decision: the first decision that is not STARTING or
 * QUEUED, or *d NULL on timeout. */
static int wait_decision(struct bg_client *c, const struct bg_client_intent *in,
			 json_t **d)
{
	struct bg_buf key = { 0 };
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	int64_t deadline =
		bg_client_mono_ms() + bg_route_timeout_ms(in->timeout_ms);
	int rc = bg_client_key(c, &key, BG_KEY_WAKEUP_RESULT, in->execution_id);
	*d = NULL;
	while (rc == 0) {
		int64_t left = deadline - bg_client_mono_ms();
		bool timed_out;
		if (left <= 0)
			break;
		rc = read_decision(c, key.p, last, (int)left, in->execution_id,
				   d, &timed_out);
		if (rc || timed_out)
			break;
		if (*d && bg_route_decision_final(*d))
			break;
		json_decref(*d);
		*d = NULL;
	}
	bg_buf_free(&key);
	return rc;
}

static int wake_and_wait(struct bg_client *c, const struct bg_client_intent *in,
			 struct bg_client_route_result *out)
{
	struct bg_buf req = { 0 }, key = { 0 };
	json_t *d = NULL;
	int rc = bg_client_wakeup_json(c, &req, in);
	if (rc == 0)
		rc = bg_client_key0(c, &key, BG_KEY_WAKEUP);
	if (rc == 0)
		rc = bg_client_xadd(c, key.p, req.p, NULL);
	if (rc == 0)
		rc = wait_decision(c, in, &d);
	const char *type = in->target_agent_type;
	bool online = false;
	if (rc || d == NULL) {
		if (rc == 0)
			reject(out, "AGENT_TYPE_UNAVAILABLE",
			       "Timed out waiting "
			       "for worker wakeup for agent_type '%s'",
			       type);
	} else {
		switch (bg_route_decision_verdict(
			d, type, out->selected, sizeof out->selected,
			out->error, sizeof out->error)) {
		case BG_VERDICT_READY:
			rc = type_online(c, type, &online);
			if (rc == 0 && online)
				out->status = BG_ROUTE_WAIT_AND_DELIVER;
			else if (rc == 0)
				unavailable(out, type);
			break;
		case BG_VERDICT_FALLBACK:
			out->status = BG_ROUTE_FALLBACK;
			break;
		case BG_VERDICT_REJECT:
			out->status = BG_ROUTE_REJECT;
			snprintf(out->error_code, sizeof out->error_code, "%s",
				 "AGENT_TYPE_UNAVAILABLE");
			break;
		}
	}
	json_decref(d);
	bg_buf_free(&req);
	bg_buf_free(&key);
	return rc;
}

int bg_client_prepare_delivery(struct bg_client *c,
			       const struct bg_client_intent *in,
			       struct bg_client_route_result *out)
{
	const char *policy = in->policy && in->policy[0] ? in->policy
							 : "FAIL_FAST";
	bool done, online;
	memset(out, 0, sizeof *out);
	int rc = check_policy(c, in, out, &done);
	if (rc || done)
		return rc;
	if (!strcmp(policy, "SEND_ANYWAY"))
		return 0; /* DELIVER_NOW */
	rc = type_online(c, in->target_agent_type, &online);
	if (rc || online)
		return rc;
	rc = check_fallback(c, in->target_agent_type, out, &done);
	if (rc || done)
		return rc;
	if (!strcmp(policy, "FAIL_FAST"))
		return unavailable(out, in->target_agent_type);
	if (!strcmp(policy, "WAKE_AND_WAIT"))
		return wake_and_wait(c, in, out);
	if (!strcmp(policy, "WAKE_AND_QUEUE") ||
	    !strcmp(policy, "QUEUE_ONLY")) {
		out->status = BG_ROUTE_QUEUE_PENDING;
		out->wakeup = !strcmp(policy, "WAKE_AND_QUEUE");
		return 0;
	}
	return reject(out, "AGENT_TYPE_UNAVAILABLE",
		      "Unsupported offline route policy '%s'", policy);
}
