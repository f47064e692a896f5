/* wire/route.c - the records and readers of the availability control plane
 * (WIRE 7) that every sender shares: WakeupRequest, PendingDelivery, the
 * FAILED record of a rejected route, circuit / quota / fallback values and
 * WakeupDecisions. No I/O. */
#include "wire/route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wire/send.h"

/* The string member `key` of obj ("" when absent, not a string, or obj
 * NULL). */
static const char *jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

/* str(obj.get(key) or default) for the string members WIRE 7 reads. */
static const char *str_or(const json_t *obj, const char *key, const char *def)
{
	const char *s = jstr(obj, key);
	return s[0] ? s : def;
}

static struct bg_str obj_or_empty(struct bg_str raw)
{
	return raw.len ? raw : BG_STR_LIT("{}");
}

int64_t bg_route_timeout_ms(int64_t given)
{
	if (given == 0)
		return BG_ROUTE_DEFAULT_TIMEOUT_MS;
	return given < 0 ? 0 : given;
}

int bg_route_wakeup_json(struct bg_buf *out, const struct bg_route_intent *in)
{
	return bg_wire_fmt(
		out,
		"{\"execution_id\":%s,\"target_agent_type\":%s,"
		"\"session_id\":%s,\"trace_id\":%s,\"message_id\":%s,"
		"\"source\":%s,\"policy\":%s,\"timeout_ms\":%d,"
		"\"user_code\":%s,\"region\":%s,\"priority\":%d,"
		"\"metadata\":%r,\"command_payload\":%r}",
		in->execution_id, in->target_agent_type, in->session_id,
		in->trace_id, in->message_id, in->source, in->policy,
		bg_route_timeout_ms(in->timeout_ms), in->user_code, in->region,
		in->priority, obj_or_empty(in->metadata), in->command);
}

int bg_route_pending_json(struct bg_buf *out, const struct bg_route_intent *in,
			  struct bg_str delivery_stream)
{
	return bg_wire_fmt(
		out,
		"{\"execution_id\":%s,\"message_id\":%s,\"session_id\":%s,"
		"\"trace_id\":%s,\"target_agent_type\":%s,"
		"\"delivery_stream\":%s,\"command_payload\":%r,"
		"\"user_code\":%s,\"region\":%s,\"priority\":%d,"
		"\"metadata\":%r}",
		in->execution_id, in->message_id, in->session_id, in->trace_id,
		in->target_agent_type, delivery_stream, in->command,
		in->user_code, in->region, in->priority,
		obj_or_empty(in->metadata));
}

int bg_route_failed_record(struct bg_buf *out, const struct bg_record_queued *q)
{
	int64_t now = q->now_ms;
	return bg_wire_fmt(
		out,
		"{\"execution_id\":%s,\"message_id\":%s,\"session_id\":%s,"
		"\"trace_id\":%s,\"parent_message_id\":%s,"
		"\"source_agent_type\":%s,\"target_agent_type\":%s,"
		"\"stream_name\":%s,\"status\":\"FAILED\",\"route_policy\":%s,"
		"\"route_status\":\"REJECT\",\"selected_agent_type\":%s,"
		"\"availability_error_code\":%s,\"availability_error\":%s,"
		"\"error_code\":%s,\"error_message\":%s,"
		"\"failed_stage\":\"availability\",\"created_at\":%d,"
		"\"updated_at\":%d,\"started_at\":0,\"finished_at\":0,"
		"\"timeline\":[{\"status\":\"FAILED\",\"timestamp\":%d}]}",
		q->execution_id, q->message_id, q->session_id, q->trace_id,
		q->parent_message_id, q->source_agent_type,
		q->target_agent_type, q->stream_name, q->route_policy,
		q->selected_agent_type, q->availability_error_code,
		q->availability_error, q->availability_error_code,
		q->availability_error, now, now, now);
}

/* ---- the operator's values and the decisions ---------------------------- */

bool bg_route_circuit_open(const json_t *obj, const char **why)
{
	*why = str_or(obj, "reason", "agent circuit is open");
	return strcasecmp(jstr(obj, "state"), "OPEN") == 0;
}

bool bg_route_quota_exceeded(const json_t *obj, const char **why)
{
	*why = str_or(obj, "reason", "tenant quota exceeded");
	return json_is_false(json_object_get(obj, "available"));
}

const char *bg_route_fallback_type(const json_t *obj)
{
	return str_or(obj, "selected_agent_type",
		      str_or(obj, "agent_type",
			     str_or(obj, "target_agent_type", "")));
}

int64_t bg_route_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	if (json_is_true(v))
		return 1;
	if (json_is_string(v)) {
		char *end;
		const char *s = json_string_value(v);
		long long n = strtoll(s, &end, 10);
		return end != s && *end == '\0' ? n : 0;
	}
	return 0;
}

bool bg_route_lease_online(const char *raw, size_t len)
{
	if (raw == NULL)
		return false;
	json_t *v = json_loadb(raw, len, JSON_DECODE_ANY, NULL);
	bool online = true; /* not JSON, or not an object: a legacy lease */
	if (json_is_object(v))
		online = bg_route_int(v, "last_seen") > 0;
	json_decref(v);
	return online;
}

json_t *bg_route_object(const char *raw, size_t len)
{
	json_t *v = raw ? json_loadb(raw, len, 0, NULL) : NULL;
	if (json_is_object(v))
		return v;
	json_decref(v);
	return NULL;
}

json_t *bg_route_decision(const char *data, size_t len, const char *exec_id)
{
	json_t *d = bg_route_object(data, len);
	const char *id = jstr(d, "execution_id");
	if (id[0] && strcmp(id, exec_id)) {
		json_decref(d);
		return NULL;
	}
	return d;
}

/* A decision without a status is FAILED, as Python's default. */
static const char *decision_status(const json_t *d)
{
	return json_object_get(d, "status") ? jstr(d, "status") : "FAILED";
}

bool bg_route_decision_final(const json_t *d)
{
	const char *st = decision_status(d);
	return strcmp(st, "STARTING") && strcmp(st, "QUEUED");
}

enum bg_route_verdict bg_route_decision_verdict(const json_t *d,
						const char *type,
						char *selected, size_t scap,
						char *error, size_t ecap)
{
	const char *st = decision_status(d);
	const char *sel = jstr(d, "selected_agent_type");
	const char *why = jstr(d, "reason");
	if (!strcmp(st, "READY"))
		return BG_VERDICT_READY;
	if (!strcmp(st, "FALLBACK") && sel[0] && strlen(sel) < scap) {
		snprintf(selected, scap, "%s", sel);
		return BG_VERDICT_FALLBACK;
	}
	if (why[0])
		snprintf(error, ecap, "%s", why);
	else
		snprintf(error, ecap, "Wakeup rejected for agent_type '%s'",
			 type);
	return BG_VERDICT_REJECT;
}
