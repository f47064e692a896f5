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

#include "wire/send.h"

#define DEFAULT_TIMEOUT_MS 30000

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

/* str(obj.get(key) or default) for the string members WIRE 7 reads. */
static const char *reason_or(const json_t *obj, const char *key,
			     const char *def)
{
	const char *s = bg_client_jstr(obj, key);
	return s[0] ? s : def;
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
	*done = false;
	int rc = read_object(c, BG_KEY_CIRCUIT, in->target_agent_type, &v);
	if (rc == 0 && v && !strcasecmp(bg_client_jstr(v, "state"), "OPEN")) {
		*done = true;
		reject(out, "AGENT_CIRCUIT_OPEN", "%s",
		       reason_or(v, "reason", "agent circuit is open"));
	}
	json_decref(v);
	if (rc || *done || !in->user_code || !in->user_code[0])
		return rc;
	rc = read_object(c, BG_KEY_QUOTA, in->user_code, &v);
	if (rc == 0 && json_is_false(json_object_get(v, "available"))) {
		*done = true;
		reject(out, "TENANT_QUOTA_EXCEEDED", "%s",
		       reason_or(v, "reason", "tenant quota exceeded"));
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
	const char *sel = reason_or(v, "selected_agent_type",
			  reason_or(v, "agent_type",
			  reason_or(v, "target_agent_type", "")));
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

static struct bg_str obj_or_empty(struct bg_str raw)
{
	return raw.len ? raw : BG_STR_LIT("{}");
}

int bg_client_wakeup_json(struct bg_client *c, struct bg_buf *out,
			  const struct bg_client_intent *in)
{
	int timeout = in->timeout_ms == 0 ? DEFAULT_TIMEOUT_MS : in->timeout_ms;
	return bg_wire_fmt(out,
		"{\"execution_id\":%s,\"target_agent_type\":%s,"
		"\"session_id\":%s,\"trace_id\":%s,\"message_id\":%s,"
		"\"source\":%s,\"policy\":%s,\"timeout_ms\":%d,"
		"\"user_code\":%s,\"region\":%s,\"priority\":%d,"
		"\"metadata\":%r,\"command_payload\":%r}",
		bg_str_c(in->execution_id), bg_str_c(in->target_agent_type),
		bg_str_c(in->session_id), bg_str_c(in->trace_id),
		bg_str_c(in->message_id), bg_str_c(in->source),
		bg_str_c(in->policy), (int64_t)(timeout < 0 ? 0 : timeout),
		bg_str_c(in->user_code), bg_str_c(in->region),
		(int64_t)in->priority, obj_or_empty(in->metadata), in->command);
}

int bg_client_pending_json(struct bg_client *c, struct bg_buf *out,
			   const struct bg_client_intent *in)
{
	struct bg_buf stream = { 0 };
	int rc = bg_client_key(c, &stream, BG_KEY_AGENT_TYPE_CTRL,
			       in->target_agent_type);
	if (rc == 0)
		rc = bg_wire_fmt(out,
			"{\"execution_id\":%s,\"message_id\":%s,"
			"\"session_id\":%s,\"trace_id\":%s,"
			"\"target_agent_type\":%s,\"delivery_stream\":%s,"
			"\"command_payload\":%r,\"user_code\":%s,"
			"\"region\":%s,\"priority\":%d,\"metadata\":%r}",
			bg_str_c(in->execution_id), bg_str_c(in->message_id),
			bg_str_c(in->session_id), bg_str_c(in->trace_id),
			bg_str_c(in->target_agent_type),
			(struct bg_str){ stream.p, stream.len }, in->command,
			bg_str_c(in->user_code), bg_str_c(in->region),
			(int64_t)in->priority, obj_or_empty(in->metadata));
	bg_buf_free(&stream);
	return rc;
}

/* ---- WAKE_AND_WAIT ------------------------------------------------------ */

/* The decision an entry carries for this execution, or NULL to skip it
 * (no data, not a JSON object, another execution's). */
static json_t *decode_decision(const redisReply *data, const char *exec_id)
{
	if (data == NULL)
		return NULL;
	json_t *d = json_loadb(data->str, data->len, 0, NULL);
	const char *id = bg_client_jstr(d, "execution_id");
	if (!json_is_object(d) || (id[0] && strcmp(id, exec_id))) {
		json_decref(d);
		return NULL;
	}
	return d;
}

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
		rc = bg_client_fail(c, BG_CLIENT_EPROTO, "XREAD: unexpected "
							 "reply");
	else if (entries->elements == 0)
		*timed_out = true;
	else if (bg_client_entry(entries->element[0], &id, &data))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO, "XREAD: malformed "
							 "entry");
	else {
		strcpy(last, id);
		*d = decode_decision(data, exec_id);
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
	int timeout = in->timeout_ms == 0 ? DEFAULT_TIMEOUT_MS : in->timeout_ms;
	int64_t deadline = bg_client_mono_ms() + (timeout > 0 ? timeout : 0);
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
		const char *st = json_object_get(*d, "status")
				 ? bg_client_jstr(*d, "status") : "FAILED";
		if (*d && strcmp(st, "STARTING") && strcmp(st, "QUEUED"))
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
	const char *st = json_object_get(d, "status")
			 ? bg_client_jstr(d, "status") : "FAILED";
	const char *sel = bg_client_jstr(d, "selected_agent_type");
	bool online = false;
	if (rc || d == NULL) {
		if (rc == 0)
			reject(out, "AGENT_TYPE_UNAVAILABLE", "Timed out waiting "
			       "for worker wakeup for agent_type '%s'", type);
	} else if (!strcmp(st, "READY")) {
		rc = type_online(c, type, &online);
		if (rc == 0 && online)
			out->status = BG_ROUTE_WAIT_AND_DELIVER;
		else if (rc == 0)
			unavailable(out, type);
	} else if (!strcmp(st, "FALLBACK") && sel[0] &&
		   strlen(sel) < sizeof out->selected) {
		out->status = BG_ROUTE_FALLBACK;
		strcpy(out->selected, sel);
	} else {
		/* a FALLBACK naming no type is refused, not sent to "" */
		const char *why = bg_client_jstr(d, "reason");
		if (why[0])
			reject(out, "AGENT_TYPE_UNAVAILABLE", "%s", why);
		else
			reject(out, "AGENT_TYPE_UNAVAILABLE", "Wakeup rejected "
			       "for agent_type '%s'", type);
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
	if (!strcmp(policy, "WAKE_AND_QUEUE") || !strcmp(policy, "QUEUE_ONLY")) {
		out->status = BG_ROUTE_QUEUE_PENDING;
		out->wakeup = !strcmp(policy, "WAKE_AND_QUEUE");
		return 0;
	}
	return reject(out, "AGENT_TYPE_UNAVAILABLE",
		      "Unsupported offline route policy '%s'", policy);
}
