/* wire/record.c - execution records (WIRE 6.1-6.4): a one-pass reader of
 * the fields a worker decides on, creation templates, and status updates
 * spliced into the stored bytes with bg_json_obj_set. */
#include "wire/record.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire/json.h"
#include "wire/send.h"

/* ---- reading ---------------------------------------------------------- */

#define K(s)                                                                   \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}

static const struct {
	struct bg_str key;
	size_t off;
} str_fields[] = {
	{ K("execution_id"), offsetof(struct bg_record, execution_id) },
	{ K("message_id"), offsetof(struct bg_record, message_id) },
	{ K("status"), offsetof(struct bg_record, status) },
	{ K("parent_message_id"),
	  offsetof(struct bg_record, parent_message_id) },
	{ K("worker_id"), offsetof(struct bg_record, worker_id) },
	{ K("source_agent_type"),
	  offsetof(struct bg_record, source_agent_type) },
	{ K("target_agent_type"),
	  offsetof(struct bg_record, target_agent_type) },
	{ K("cancel_reason"), offsetof(struct bg_record, cancel_reason) },
};
#define N_STR_FIELDS (sizeof(str_fields) / sizeof(str_fields[0]))

static struct bg_str *field_at(struct bg_record *r, size_t i)
{
	return (struct bg_str *)((char *)r + str_fields[i].off);
}

/* Parse a JSON number span as int64 (ms timestamps; fractions truncated). */
static int parse_int64(struct bg_str raw, int64_t *v)
{
	char num[64];
	if (raw.len == 0 || raw.len >= sizeof(num))
		return -EINVAL;
	memcpy(num, raw.p, raw.len);
	num[raw.len] = '\0';
	double d = strtod(num, NULL);
	if (!isfinite(d) || d >= 9.2e18 || d <= -9.2e18)
		return -EINVAL;
	*v = (int64_t)d;
	return 0;
}

/* Decode a string-or-null member into r->store; its offset goes to *off. */
static int read_str(struct bg_record *r, struct bg_str val, size_t *off,
		    size_t *len)
{
	char t = bg_json_type(val);
	if (t == 'n') {
		*len = 0;
		return 0;
	}
	if (t != '"')
		return -EINVAL;
	*off = r->store.len;
	int rc = bg_json_unescape(&r->store, val);
	*len = r->store.len - *off;
	return rc;
}

/* Every member read_members looks at: the string fields (in str_fields'
 * order), then timeline, cancel_requested, started_at, then the lenient
 * route members (in route_fields' order). */
static const struct bg_str read_keys[] = {
	K("execution_id"),	K("message_id"),    K("status"),
	K("parent_message_id"), K("worker_id"),	    K("source_agent_type"),
	K("target_agent_type"), K("cancel_reason"), K("timeline"),
	K("cancel_requested"),	K("started_at"),    K("route_policy"),
	K("route_status"),
};
#define N_READ_KEYS (sizeof(read_keys) / sizeof(read_keys[0]))
#define N_ROUTE 2
#define ROUTE_KEY0 (N_STR_FIELDS + 3)
_Static_assert(N_READ_KEYS == N_STR_FIELDS + 3 + N_ROUTE, "read_keys");
static const size_t route_fields[N_ROUTE] = {
	offsetof(struct bg_record, route_policy),
	offsetof(struct bg_record, route_status),
};

/* cancel_requested (is_cancel) or started_at */
static int read_scalar(struct bg_record *r, bool is_cancel, struct bg_str val)
{
	char t = bg_json_type(val);
	if (is_cancel) {
		if (t != 't' && t != 'f' && t != 'n')
			return -EINVAL;
		r->cancel_requested = t == 't';
	} else {
		r->started_at = 0;
		if (t == '0')
			return parse_int64(val, &r->started_at);
		if (t != 'n')
			return -EINVAL;
	}
	return 0;
}

static int read_members(struct bg_record *r, struct bg_str json, size_t off[],
			size_t len[], struct bg_str *timeline,
			struct bg_str route[N_ROUTE])
{
	struct bg_json_iter it;
	struct bg_str key, val;
	int rc = bg_json_iter_open(&it, json.p, json.len, 0, 0);

	while (rc == 0 && (rc = bg_json_iter_key(&it, &key)) == 1) {
		rc = bg_json_iter_value(&it, &val);
		size_t i =
			rc == 0 ? bg_json_key_find(key, read_keys, N_READ_KEYS)
				: N_READ_KEYS;
		if (i < N_STR_FIELDS)
			rc = read_str(r, val, &off[i], &len[i]);
		else if (i == N_STR_FIELDS) /* timeline */
			*timeline = val;
		else if (i >= ROUTE_KEY0 && i < N_READ_KEYS)
			route[i - ROUTE_KEY0] = val; /* the last one wins */
		else if (i < N_READ_KEYS)
			rc = read_scalar(r, i == N_STR_FIELDS + 1, val);
	}
	for (size_t p = it.pos; rc == 0 && p < json.len; p++)
		if (!strchr(" \t\r\n", json.p[p]) || json.p[p] == '\0')
			rc = -EINVAL;
	return rc;
}

static size_t skip_space(struct bg_str s, size_t pos)
{
	while (pos < s.len && strchr(" \t\r\n", s.p[pos]) && s.p[pos] != '\0')
		pos++;
	return pos;
}

/* The last `status` of the (already validated) timeline array that is not
 * CANCELLING, decoded into r->store at *off, *len; nothing when there is
 * none or the timeline is not an array of objects. */
static int read_prior_status(struct bg_record *r, struct bg_str timeline,
			     size_t *off, size_t *len)
{
	struct bg_str last = { 0 };
	size_t pos = skip_space(timeline, 0);
	if (pos >= timeline.len || timeline.p[pos] != '[')
		return 0;
	for (pos = skip_space(timeline, pos + 1);
	     pos < timeline.len && timeline.p[pos] != ']';
	     pos = skip_space(timeline, pos)) {
		size_t end;
		if (bg_json_skip(timeline.p + pos, timeline.len - pos, &end))
			return -EINVAL;
		struct bg_str el = { timeline.p + pos, end }, st;
		if (bg_json_type(el) == '{' &&
		    bg_json_obj_get(el, "status", &st) == 0 &&
		    bg_json_type(st) == '"' &&
		    !bg_json_str_eq(st, "CANCELLING"))
			last = st;
		pos = skip_space(timeline, pos + end);
		if (pos < timeline.len && timeline.p[pos] == ',')
			pos++;
	}
	if (last.len == 0)
		return 0;
	return read_str(r, last, off, len);
}

/* The route members that are strings, decoded into r->store (after the
 * string fields: off[N_STR_FIELDS + k], len[...]); others stay "". */
static int read_route(struct bg_record *r, const struct bg_str route[N_ROUTE],
		      size_t off[], size_t len[])
{
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < N_ROUTE; k++)
		if (route[k].len && bg_json_type(route[k]) == '"')
			rc = read_str(r, route[k], &off[N_STR_FIELDS + k],
				      &len[N_STR_FIELDS + k]);
	return rc;
}

static void set_views(struct bg_record *r, const size_t off[],
		      const size_t len[], size_t prior_off, size_t prior_len)
{
	for (size_t i = 0; i < N_STR_FIELDS; i++)
		*field_at(r, i) =
			(struct bg_str){ r->store.p + off[i], len[i] };
	for (size_t k = 0; k < N_ROUTE; k++)
		*(struct bg_str *)((char *)r + route_fields[k]) =
			(struct bg_str){ r->store.p + off[N_STR_FIELDS + k],
					 len[N_STR_FIELDS + k] };
	r->prior_status = (struct bg_str){ r->store.p + prior_off, prior_len };
}

int bg_record_read(struct bg_record *r, struct bg_str json)
{
	size_t off[N_STR_FIELDS + N_ROUTE] = { 0 };
	size_t len[N_STR_FIELDS + N_ROUTE] = { 0 };
	size_t prior_off = 0, prior_len = 0;
	struct bg_str timeline = { 0 }, route[N_ROUTE] = { { 0 } };

	memset(r, 0, sizeof(*r));
	int rc = read_members(r, json, off, len, &timeline, route);
	if (rc == 0)
		rc = read_route(r, route, off, len);
	if (rc == 0)
		rc = bg_buf_reserve(&r->store, 0); /* p non-NULL */
	if (rc == 0)
		set_views(r, off, len, 0, 0);
	if (rc == 0 && timeline.len && bg_str_eq(r->status, "CANCELLING")) {
		rc = read_prior_status(r, timeline, &prior_off, &prior_len);
		if (rc == 0) /* the store may have moved */
			set_views(r, off, len, prior_off, prior_len);
	}
	if (rc) {
		bg_record_free(r);
		return rc;
	}
	return 0;
}

bool bg_record_runs(const struct bg_record *r)
{
	return bg_str_eq(r->status, "RUNNING") ||
	       (bg_str_eq(r->status, "CANCELLING") &&
		bg_str_eq(r->prior_status, "RUNNING"));
}

void bg_record_free(struct bg_record *r)
{
	bg_buf_free(&r->store);
	memset(r, 0, sizeof(*r));
}

/* ---- creation --------------------------------------------------------- */

int bg_record_build_running(struct bg_buf *out, const struct bg_record_new *n)
{
	int64_t now = n->now_ms;
	return bg_wire_fmt(
		out,
		"{\"execution_id\":%s,\"message_id\":%s,\"session_id\":%s,"
		"\"trace_id\":%s,\"parent_message_id\":%s,\"worker_id\":%s,"
		"\"target_agent_type\":%s,\"stream_name\":%s,"
		"\"redis_message_id\":%s,\"status\":\"RUNNING\","
		"\"cancel_requested\":%b,\"cancel_reason\":%s,"
		"\"created_at\":%d,\"updated_at\":%d,\"started_at\":%d,"
		"\"finished_at\":0,\"timeline\":[{\"status\":\"RUNNING\","
		"\"timestamp\":%d}]}",
		n->execution_id, n->message_id, n->session_id, n->trace_id,
		n->parent_message_id, n->worker_id, n->target_agent_type,
		n->stream_name, n->redis_message_id, (int)n->cancel_requested,
		n->cancel_reason, now, now, now, now);
}

static struct bg_str or_default(struct bg_str v, const char *def)
{
	return v.len ? v : bg_str_c(def);
}

int bg_record_build_queued(struct bg_buf *out, const struct bg_record_queued *q)
{
	int64_t now = q->now_ms;
	size_t mark = out->len;
	int rc = bg_wire_fmt(
		out,
		"{\"execution_id\":%s,\"message_id\":%s,\"session_id\":%s,"
		"\"trace_id\":%s,\"parent_message_id\":%s,"
		"\"source_agent_type\":%s,\"target_agent_type\":%s,"
		"\"stream_name\":%s,\"status\":\"QUEUED\",",
		q->execution_id, q->message_id, q->session_id, q->trace_id,
		q->parent_message_id, q->source_agent_type,
		q->target_agent_type, q->stream_name);
	if (rc == 0 && q->route)
		rc = bg_wire_fmt(out,
				 "\"route_policy\":%s,\"route_status\":%s,"
				 "\"selected_agent_type\":%s,"
				 "\"availability_error_code\":%s,"
				 "\"availability_error\":%s,",
				 or_default(q->route_policy, "FAIL_FAST"),
				 or_default(q->route_status, "DELIVER_NOW"),
				 q->selected_agent_type,
				 q->availability_error_code,
				 q->availability_error);
	if (rc == 0)
		rc = bg_wire_fmt(
			out,
			"\"created_at\":%d,\"updated_at\":%d,\"started_at\":0,"
			"\"finished_at\":0,\"timeline\":[{\"status\":\"QUEUED\","
			"\"timestamp\":%d}],\"worker_id\":\"\"}",
			now, now, now);
	if (rc)
		bg_wire_truncate(out, mark);
	return rc;
}

/* ---- completion fields ------------------------------------------------ */

/* Members keys[0..n) of a raw object, each empty when absent or null, all
 * empty when obj is empty or not an object; one pass over obj. -EINVAL
 * when obj is malformed. */
static int members_or_empty(struct bg_str obj, const char *const *keys,
			    struct bg_str *vals, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vals[i] = (struct bg_str){ NULL, 0 };
	if (obj.len == 0)
		return 0;
	if (bg_json_type(obj) != '{')
		return bg_json_valid(obj.p, obj.len) ? 0 : -EINVAL;
	if (bg_json_obj_getv(obj, keys, vals, n) != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (bg_json_type(vals[i]) == 'n')
			vals[i] = (struct bg_str){ NULL, 0 };
	return 0;
}

int bg_record_errors_from(struct bg_record_errors *e, struct bg_str metadata,
			  struct bg_str reply_data)
{
	static const char *const keys[] = { "error_type", "error_message",
					    "error_code", "failed_stage",
					    "retryable" };
	struct bg_str v[5];
	int rc = members_or_empty(metadata, keys, v, 5);
	e->error_type = v[0];
	e->error_message = v[1];
	e->error_code = v[2];
	e->failed_stage = v[3];
	e->retryable = v[4];
	if (!rc && e->error_message.len == 0) {
		static const char *const err[] = { "error" };
		rc = members_or_empty(reply_data, err, &e->error_message, 1);
	}
	return rc;
}

/* ---- status update ---------------------------------------------------- */

/* Scratch values of one update; `edits` point into `vals` once built. */
struct record_edits {
	struct bg_buf vals;
	size_t off[16], len[16];
	struct bg_json_edit e[16 + 4]; /* add_edit's, then the extra */
	size_t n;
	int rc;
};

static void add_edit(struct record_edits *r, const char *key,
		     enum bg_json_edit_op op, const char *tmpl, ...)
{
	if (r->rc || r->n == 16)
		return;
	va_list ap;
	size_t start = r->vals.len;
	va_start(ap, tmpl);
	r->rc = bg_wire_vfmt(&r->vals, tmpl, ap);
	va_end(ap);
	r->off[r->n] = start;
	r->len[r->n] = r->vals.len - start;
	r->e[r->n].key = key;
	r->e[r->n].op = op;
	r->n++;
}

/* Error fields are raw JSON from a result: checked, since they are spliced
 * into the record as they are. */
static void add_raw(struct record_edits *r, const char *key, struct bg_str raw)
{
	if (raw.len == 0)
		return;
	if (!bg_json_valid(raw.p, raw.len))
		r->rc = -EINVAL;
	add_edit(r, key, BG_JSON_SET, "%r", raw);
}

static int snapshot_pick(struct bg_buf *out, struct bg_buf *snap,
			 struct bg_str record, const struct bg_json_edit *e,
			 size_t n);

int bg_record_update(struct bg_buf *out, struct bg_str record,
		     const struct bg_record_update *u)
{
	return bg_record_update_snap(out, record, u, NULL);
}

int bg_record_update_snap(struct bg_buf *out, struct bg_str record,
			  const struct bg_record_update *u, struct bg_buf *snap)
{
	struct record_edits r = { 0 };
	int64_t now = u->now_ms;

	if (bg_json_type(record) != '{')
		return -EINVAL;
	add_edit(&r, "status", BG_JSON_SET, "%s", u->status);
	if (u->worker_id.len)
		add_edit(&r, "worker_id", BG_JSON_SET, "%s", u->worker_id);
	add_edit(&r, "updated_at", BG_JSON_SET, "%d", now);
	add_edit(&r, "timeline", BG_JSON_APPEND,
		 "{\"status\":%s,\"timestamp\":%d}", u->status, now);
	if (bg_str_eq(u->status, "RUNNING"))
		add_edit(&r, "started_at", BG_JSON_SET_IF_ZERO, "%d", now);
	if (bg_status_is_terminal(u->status))
		add_edit(&r, "finished_at", BG_JSON_SET, "%d", now);
	if (u->cancel) {
		add_edit(&r, "cancel_requested", BG_JSON_SET, "true");
		add_edit(&r, "cancel_reason", BG_JSON_SET, "%s",
			 u->cancel_reason);
	}
	if (u->errors) {
		add_raw(&r, "error_type", u->errors->error_type);
		add_raw(&r, "error_message", u->errors->error_message);
		add_raw(&r, "error_code", u->errors->error_code);
		add_raw(&r, "failed_stage", u->errors->failed_stage);
		add_raw(&r, "retryable", u->errors->retryable);
	}
	if (u->duplicate_of.len)
		add_edit(&r, "duplicate_of", BG_JSON_SET, "%s",
			 u->duplicate_of);
	int rc = r.rc;
	if (rc == 0 && u->n_extra > 4)
		rc = -EINVAL;
	if (rc == 0) {
		for (size_t i = 0; i < r.n; i++)
			r.e[i].raw = (struct bg_str){ r.vals.p + r.off[i],
						      r.len[i] };
		for (size_t i = 0; i < u->n_extra; i++)
			r.e[r.n++] = u->extra[i];
		/* the copy and its edits in one allocation, not a doubling
		 * per size class (the edits add some hundred bytes; raw
		 * extras, e.g. the audit, are counted in) */
		size_t more = 256;
		for (size_t i = 0; i < r.n; i++)
			more += strlen(r.e[i].key) + r.e[i].raw.len + 4;
		rc = bg_buf_reserve(out, record.len + more);
	}
	if (rc == 0) {
		rc = snap ? snapshot_pick(out, snap, record, r.e, r.n)
			  : bg_json_obj_edit(out, record, r.e, r.n);
	}
	bg_buf_free(&r.vals);
	return rc;
}

/* ---- status strings --------------------------------------------------- */

static const char *const agent_states[] = {
	"STARTING",  "COMPLETED",     "FAILED",	       "CANCELLING",
	"CANCELLED", "RESUMED",	      "WAITING_AGENT", "WAITING_USER",
	"QUEUED",    "CALLING_AGENT",
};

struct bg_str bg_status_normalize(struct bg_str status)
{
	if (status.len == 0)
		return bg_str_c("COMPLETED");
	for (size_t i = 0; i < sizeof(agent_states) / sizeof(agent_states[0]);
	     i++)
		if (strlen(agent_states[i]) == status.len &&
		    strncasecmp(agent_states[i], status.p, status.len) == 0)
			return bg_str_c(agent_states[i]);
	return status;
}

bool bg_status_is_terminal(struct bg_str status)
{
	return bg_str_eq(status, "COMPLETED") || bg_str_eq(status, "FAILED") ||
	       bg_str_eq(status, "CANCELLED");
}

/* ---- worker execution snapshot (WIRE 5.9) ----------------------------- */

/* The snapshot's keys in by-framework's order (snapshot_names), with the
 * value written when the record lacks the member (snapshot_absent). */
static const struct bg_str snapshot_names[] = {
	K("execution_id"),
	K("message_id"),
	K("session_id"),
	K("trace_id"),
	K("worker_id"),
	K("source_agent_type"),
	K("target_agent_type"),
	K("stream_name"),
	K("redis_message_id"),
	K("status"),
	K("created_at"),
	K("started_at"),
	K("finished_at"),
	K("updated_at"),
	K("parent_message_id"),
	K("cancel_requested"),
	K("cancel_reason"),
	K("route_policy"),
	K("route_status"),
	K("selected_agent_type"),
	K("availability_error_code"),
	K("availability_error"),
	K("error_type"),
	K("error_message"),
	K("error_code"),
	K("failed_stage"),
	K("retryable"),
	K("agent_configs_version"),
	K("agent_configs_snapshot_key"),
	K("agent_config_audit"),
};
static const struct bg_str snapshot_absent[] = {
	K("\"\""),  /* execution_id */
	K("\"\""),  /* message_id */
	K("\"\""),  /* session_id */
	K("\"\""),  /* trace_id */
	K("\"\""),  /* worker_id */
	K("\"\""),  /* source_agent_type */
	K("\"\""),  /* target_agent_type */
	K("\"\""),  /* stream_name */
	K("\"\""),  /* redis_message_id */
	K("\"\""),  /* status */
	K("0"),	    /* created_at */
	K("0"),	    /* started_at */
	K("0"),	    /* finished_at */
	K("0"),	    /* updated_at */
	K("\"\""),  /* parent_message_id */
	K("false"), /* cancel_requested */
	K("\"\""),  /* cancel_reason */
	K("\"\""),  /* route_policy */
	K("\"\""),  /* route_status */
	K("\"\""),  /* selected_agent_type */
	K("\"\""),  /* availability_error_code */
	K("\"\""),  /* availability_error */
	K("\"\""),  /* error_type */
	K("\"\""),  /* error_message */
	K("\"\""),  /* error_code */
	K("\"\""),  /* failed_stage */
	K("null"),  /* retryable */
	K("0"),	    /* agent_configs_version */
	K("\"\""),  /* agent_configs_snapshot_key */
	K("null"),  /* agent_config_audit */
};
#define N_SNAPSHOT_KEYS (sizeof(snapshot_names) / sizeof(snapshot_names[0]))
_Static_assert(N_SNAPSHOT_KEYS ==
		       sizeof(snapshot_absent) / sizeof(snapshot_absent[0]),
	       "snapshot tables");

/* Append the snapshot of the values val[] (a record's members in
 * snapshot_names' order, len 0 = absent): its size summed first, one
 * reserve, then plain copies. 0 or -ENOMEM (out unchanged). */
static int snapshot_put(struct bg_buf *out, const struct bg_str *val)
{
	struct bg_str x[N_SNAPSHOT_KEYS];
	size_t need = 2; /* the braces */
	for (size_t i = 0; i < N_SNAPSHOT_KEYS; i++) {
		x[i] = val[i].len ? val[i] : snapshot_absent[i];
		need += (i ? 4 : 3) + snapshot_names[i].len + x[i].len;
	}
	if (bg_buf_reserve(out, need))
		return -ENOMEM;
	char *w = out->p + out->len;
	*w++ = '{';
	for (size_t i = 0; i < N_SNAPSHOT_KEYS; i++) {
		struct bg_str key = snapshot_names[i];
		if (i)
			*w++ = ',';
		*w++ = '"';
		memcpy(w, key.p, key.len);
		w += key.len;
		*w++ = '"';
		*w++ = ':';
		memcpy(w, x[i].p, x[i].len);
		w += x[i].len;
	}
	*w++ = '}';
	*w = '\0';
	out->len = (size_t)(w - out->p);
	return 0;
}

int bg_record_snapshot(struct bg_buf *out, struct bg_str record)
{
	struct bg_str val[N_SNAPSHOT_KEYS] = { { 0 } };
	struct bg_json_iter it;
	struct bg_str k, v;
	int rc = bg_json_iter_open(&it, record.p, record.len, 0, 0);
	while (rc == 0 && (rc = bg_json_iter_key(&it, &k)) == 1) {
		if ((rc = bg_json_iter_value(&it, &v)) != 0)
			break;
		size_t i = bg_json_key_find(k, snapshot_names, N_SNAPSHOT_KEYS);
		if (i < N_SNAPSHOT_KEYS)
			val[i] = v;
	}
	if (rc)
		return -EINVAL;
	return snapshot_put(out, val);
}

/* bg_json_obj_edit of the update, its snapshot taken from the spans the
 * same pass reports (what bg_record_snapshot of the output reads: the
 * output is a valid object, its input validated and every edit's raw a
 * valid value). The update stands when only the snapshot fails (snap
 * unchanged, the caller takes it again). */
static int snapshot_pick(struct bg_buf *out, struct bg_buf *snap,
			 struct bg_str record, const struct bg_json_edit *e,
			 size_t n)
{
	size_t off[N_SNAPSHOT_KEYS], len[N_SNAPSHOT_KEYS];
	const struct bg_json_pick pick = { snapshot_names, N_SNAPSHOT_KEYS, off,
					   len };
	int rc = bg_json_obj_edit_pick(out, record, e, n, &pick);
	if (rc)
		return rc;
	struct bg_str val[N_SNAPSHOT_KEYS];
	for (size_t i = 0; i < N_SNAPSHOT_KEYS; i++)
		val[i] = (struct bg_str){ out->p + off[i], len[i] };
	(void)snapshot_put(snap, val);
	return 0;
}
