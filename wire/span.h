/* wire/span.h - the JSON of one trace span (WIRE 9.2), as by-framework's
 * TraceSpan.to_payload() writes it to the trace's span list, and the
 * sampling rule every worker of a fleet applies to a trace id. Pure: no
 * Redis, no clock. */
#ifndef BG_WIRE_SPAN_H
#define BG_WIRE_SPAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

/* A span. Strings are plain (not JSON literals); an empty one is left
 * out of the JSON, as to_payload() drops "" and null. `input`, `output`
 * and `metadata` are raw JSON values (empty = input/output left out,
 * metadata written as {}). Times are epoch ms. */
struct bg_span {
	struct bg_str trace_id, span_id, parent_span_id;
	struct bg_str operation, component, status, name, kind;
	int64_t start_ts, end_ts;
	struct bg_str input, output, metadata;
	struct bg_str session_id, execution_id, message_id, parent_message_id;
	struct bg_str worker_id, source_agent_type, target_agent_type;
	struct bg_str error_type, error_message, error_code, failed_stage;
	bool retryable;
	struct bg_str route_policy, route_status;
	int64_t queue_wait_ms, chunk_count;
	struct bg_str event_type;
};

/* Append the span's JSON object to out: the keys of to_payload() in its
 * order (trace_id, span_id, parent_span_id, operation, component,
 * start_ts, end_ts, duration_ms, status, name, kind, source "redis",
 * input, output, tokens {}, cost {}, session_id, ..., retryable,
 * route_policy, route_status, queue_wait_ms, chunk_count, event_type,
 * metadata), empty strings left out; end_ts is at least start_ts,
 * duration_ms = end_ts - start_ts, name defaults to the operation.
 * 0, -EINVAL (trace_id, span_id or operation empty, or a raw value that
 * is not JSON; out unchanged), -ENOMEM. */
int bg_span_build(struct bg_buf *out, const struct bg_span *s);

/* Is trace `trace_id` sampled at `rate` (0..1)? The reference's rule, so
 * every worker of the fleet, Python or bygate, keeps or drops a trace
 * alike: rate >= 1 keeps all, rate <= 0 none, else it is kept when the
 * first 8 hex digits of md5(trace_id), as a number divided by
 * 0xFFFFFFFF, are below rate. */
bool bg_span_sampled(struct bg_str trace_id, double rate);

#endif
