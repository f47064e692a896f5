/* wire/route.h - the sender side of the availability control plane (WIRE 7)
 * without I/O: the WakeupRequest and PendingDelivery records, the FAILED
 * record of a rejected route, and the readers of the operator's values and
 * of WakeupDecisions. Shared by libbygate (client/availability.c, send.c)
 * and bygated (supervisor/outbox.c), so both write the same bytes. */
#ifndef BG_WIRE_ROUTE_H
#define BG_WIRE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"
#include "wire/record.h"

/* An integer member of obj as Python's int() of the stored value takes it:
 * an integer, a real (truncated), true (1) or a decimal string; 0 for
 * anything else or a missing member. */
int64_t bg_route_int(const json_t *obj, const char *key);

/* Whether a worker's online lease value (WIRE 5.2) says it is online: a
 * JSON object with last_seen > 0 (an integer, a real, true or a decimal
 * string, as Python reads it), or any legacy non-object value. raw NULL
 * (no lease) is offline. */
bool bg_route_lease_online(const char *raw, size_t len);

/* prepare_delivery's wait when the sender names none (Python's default). */
#define BG_ROUTE_DEFAULT_TIMEOUT_MS 30000

/* A DeliveryIntent (Python core/availability.py): what the records carry.
 * command is the full command JSON (command_payload) and metadata the
 * sender's metadata object ("" = {}); both must be valid JSON. */
struct bg_route_intent {
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str trace_id;
	struct bg_str source; /* "client", or the calling agent type */
	struct bg_str target_agent_type;
	struct bg_str user_code;
	struct bg_str region;
	int64_t priority;
	struct bg_str policy;
	int64_t timeout_ms; /* 0 = the default; < 0 = no wait, written as 0 */
	struct bg_str command;
	struct bg_str metadata;
};

/* The timeout an intent's sender waits and writes: 0 becomes the default,
 * a negative value 0. */
int64_t bg_route_timeout_ms(int64_t given);

/* Append the WakeupRequest JSON of an intent (WIRE 7, key order of
 * Python's asdict). 0, -ENOMEM, -EINVAL; out is unchanged on error. */
int bg_route_wakeup_json(struct bg_buf *out, const struct bg_route_intent *in);

/* Append the PendingDelivery JSON of an intent; delivery_stream is the
 * control stream of its target agent type. */
int bg_route_pending_json(struct bg_buf *out, const struct bg_route_intent *in,
			  struct bg_str delivery_stream);

/* Append the record of record_failed_route_decision (WIRE 6.3): the
 * members of q (route_status REJECT, stream_name and selected_agent_type
 * as given) with status FAILED, error_code / error_message equal to the
 * availability error, failed_stage "availability", a one-entry FAILED
 * timeline and no worker_id. */
int bg_route_failed_record(struct bg_buf *out,
			   const struct bg_record_queued *q);

/* The operator's values (WIRE 7). obj is the stored value when it is a JSON
 * object, else NULL (readers accept only objects). *why views obj. */
bool bg_route_circuit_open(const json_t *obj, const char **why);
bool bg_route_quota_exceeded(const json_t *obj, const char **why);
/* The configured fallback agent type ("" when none): selected_agent_type,
 * else agent_type, else target_agent_type. */
const char *bg_route_fallback_type(const json_t *obj);

/* GET's bytes decoded as the readers above want them: a new reference to
 * the JSON object, or NULL for anything else. */
json_t *bg_route_object(const char *raw, size_t len);

/* A WakeupDecision entry's `data` for execution exec_id: a new reference,
 * or NULL when the entry is to be skipped (not a JSON object, another
 * execution's). */
json_t *bg_route_decision(const char *data, size_t len, const char *exec_id);

/* STARTING and QUEUED decisions are progress, not answers. */
bool bg_route_decision_final(const json_t *d);

/* What a final decision means for a sender waiting on agent type `type`. */
enum bg_route_verdict {
	BG_VERDICT_READY,    /* re-check that `type` is online */
	BG_VERDICT_FALLBACK, /* route to `selected` */
	BG_VERDICT_REJECT,   /* refuse with `error` (AGENT_TYPE_UNAVAILABLE) */
};
/* selected[scap] receives the fallback type, error[ecap] the refusal; a
 * FALLBACK naming no type (or one that does not fit) is refused. */
enum bg_route_verdict bg_route_decision_verdict(const json_t *d,
						const char *type,
						char *selected, size_t scap,
						char *error, size_t ecap);

#endif
