/* supervisor/trace.c - trace spans kept in memory and written to Redis in
 * one pipeline per flush (trace.h, WIRE 9.2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/job.h"
#include "supervisor/log.h"
#include "supervisor/redis.h"
#include "supervisor/trace.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/span.h"

#define S(s) bg_str_c(s)
#define OUTPUT_MAX 4096	    /* the reference's io_value_max_length */
#define COUNT_SLOTS 8192    /* spans per trace: open addressing */
#define COUNT_MAX_USED 4096 /* then forgotten at once, as the reference */
/* A flush finding more than this unanswered on the write connection
 * drops what it holds (counted): Redis is behind, and spans must not
 * pile up in bygated's output buffer. */
#define BACKLOG_MAX_BYTES (32u << 20)

/* One thing to write: a span and/or a root's end, of one trace. */
struct item {
	uint64_t seq;
	char *trace_id, *session_id, *status, *agent;
	int64_t start_ts, end_ts;
	char *span;	       /* span JSON, NULL = an end only */
	bool is_end;	       /* a root's end */
	char *end_output;      /* root end: output JSON, NULL = none */
	char *end_metadata;    /* root end: metadata JSON */
	char *root_agent_type; /* client.dispatch: meta fields if unset */
	char *root_message_id;
	char *name;
};

struct count_slot {
	uint64_t h;
	uint32_t n;
};

/* One trace's place in an index ZSET, gathered over a flush so that each
 * index key gets one ZADD (all its traces) and one EXPIRE per flush. */
struct idx {
	enum bg_key_kind kind;
	const char *id, *trace_id; /* into the flush's items */
	int64_t score;
};

struct bg_trace {
	struct item *items;
	size_t n, cap;
	struct idx *idx;
	size_t n_idx, cap_idx;
	uint64_t seq;
	struct event *timer;
	struct count_slot *counts;
	size_t counts_used;
	struct bg_trace_stats st;
	bool warned;
};

/* ---- keeping ---------------------------------------------------------- */

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

/* Count one more span of trace id; false when over the cap. */
static bool count_span(struct bg_trace *tr, const char *id, int cap)
{
	if (tr->counts_used >= COUNT_MAX_USED) {
		memset(tr->counts, 0, COUNT_SLOTS * sizeof(*tr->counts));
		tr->counts_used = 0;
	}
	uint64_t h = fnv(id);
	size_t i = h % COUNT_SLOTS;
	while (tr->counts[i].h && tr->counts[i].h != h)
		i = (i + 1) % COUNT_SLOTS;
	if (tr->counts[i].h == 0) {
		tr->counts[i].h = h;
		tr->counts_used++;
	}
	if (tr->counts[i].n >= (uint32_t)cap)
		return false;
	tr->counts[i].n++;
	return true;
}

static bool tracing(const struct bg_daemon *d, const char *trace_id)
{
	return d->trace && d->cfg->trace_enabled && trace_id && *trace_id;
}

static bool sampled(const struct bg_daemon *d, const char *trace_id)
{
	return bg_span_sampled(S(trace_id),
			       d->cfg->trace_sample_percent / 100.0);
}

static void item_free(struct item *it)
{
	free(it->trace_id);
	free(it->session_id);
	free(it->status);
	free(it->agent);
	free(it->span);
	free(it->end_output);
	free(it->end_metadata);
	free(it->root_agent_type);
	free(it->root_message_id);
	free(it->name);
}

static char *dup0(const char *s)
{
	return strdup(s ? s : "");
}

/* A new item of trace_id, NULL without memory. */
static struct item *item_new(struct bg_trace *tr, const char *trace_id,
			     const char *session_id, const char *status,
			     const char *agent, int64_t start, int64_t end)
{
	if (tr->n == tr->cap) {
		size_t cap = tr->cap ? tr->cap * 2 : 64;
		struct item *p = realloc(tr->items, cap * sizeof(*p));
		if (p == NULL)
			return NULL;
		tr->items = p;
		tr->cap = cap;
	}
	struct item *it = &tr->items[tr->n];
	*it = (struct item){ .seq = tr->seq++,
			     .trace_id = dup0(trace_id),
			     .session_id = dup0(session_id),
			     .status = dup0(status),
			     .agent = dup0(agent),
			     .start_ts = start,
			     .end_ts = end };
	if (!it->trace_id || !it->session_id || !it->status || !it->agent) {
		item_free(it);
		return NULL;
	}
	tr->n++;
	return it;
}

/* Keep span s (built now); false when dropped. */
static bool keep_span(struct bg_daemon *d, const struct bg_span *s,
		      const char *status, struct item **out)
{
	struct bg_trace *tr = d->trace;
	if (tr->n >= (size_t)d->cfg->trace_max_kept) {
		/* Redis slow or the flush behind: memory stays bounded */
		tr->st.spans_dropped++;
		return false;
	}
	char *tid = bg_str_dup(s->trace_id);
	if (tid == NULL || !sampled(d, tid) ||
	    !count_span(tr, tid, d->cfg->trace_max_spans)) {
		free(tid);
		tr->st.spans_dropped++;
		return false;
	}
	struct bg_buf b = { 0 };
	char *sess = bg_str_dup(s->session_id);
	char *agent = bg_str_dup(s->target_agent_type);
	struct item *it = NULL;
	if (sess && agent && bg_span_build(&b, s) == 0)
		it = item_new(tr, tid, sess, status, agent, s->start_ts,
			      s->end_ts);
	free(tid);
	free(sess);
	free(agent);
	if (it == NULL) {
		bg_buf_free(&b);
		tr->st.spans_dropped++;
		return false;
	}
	it->span = bg_buf_steal(&b);
	if (out)
		*out = it;
	return true;
}

/* ---- the spans of a job ------------------------------------------------ */

/* The plain string of member key of a raw object into out ("" when
 * absent or not a string). */
static void member_text(struct bg_str obj, const char *key, struct bg_buf *out)
{
	struct bg_str v;
	bg_buf_reset(out);
	if (obj.len && bg_json_type(obj) == '{' &&
	    bg_json_obj_get(obj, key, &v) == 0 && bg_json_type(v) == '"')
		(void)bg_json_unescape(out, v);
}

/* member_text of n keys in one pass over obj. */
static void members_text(struct bg_str obj, const char *const *keys,
			 struct bg_buf *const *outs, size_t n)
{
	struct bg_str v[8];
	for (size_t i = 0; i < n; i++)
		bg_buf_reset(outs[i]);
	if (n > 8 || obj.len == 0 || bg_json_type(obj) != '{' ||
	    bg_json_obj_getv(obj, keys, v, n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (bg_json_type(v[i]) == '"')
			(void)bg_json_unescape(outs[i], v[i]);
}

static bool member_true(struct bg_str obj, const char *key)
{
	struct bg_str v;
	return obj.len && bg_json_type(obj) == '{' &&
	       bg_json_obj_get(obj, key, &v) == 0 && bg_str_eq(v, "true");
}

/* The parent of worker.execute (WIRE 9.2): header metadata
 * framework_parent_span_id, then its trace_parent_span_id, then
 * "<message_id>:client.dispatch". The header's own trace_parent_span_id
 * is the 16-hex md5 form for OpenTelemetry, not a span id of the trace's
 * list, so it is not used. */
static void execute_parent(const struct bg_job *t, struct bg_buf *out)
{
	struct bg_str md = t->id.cmd_ok ? t->id.cmd.hdr[BG_HDR_METADATA]
					: S("");
	member_text(md, "framework_parent_span_id", out);
	if (out->len == 0)
		member_text(md, "trace_parent_span_id", out);
	if (out->len == 0)
		bg_buf_printf(out, "%s:client.dispatch", t->id.message_id);
}

/* A JSON value for a trace's output: reply_data, cut to OUTPUT_MAX
 * bytes as a string ending "...[TRUNCATED]" when longer. */
static void output_of(struct bg_str raw, struct bg_buf *out)
{
	if (raw.len == 0 || bg_str_eq(raw, "null"))
		return; /* no output member (the reference's None) */
	if (raw.len <= OUTPUT_MAX) {
		bg_buf_append(out, raw.p, raw.len);
		return;
	}
	size_t n = OUTPUT_MAX;
	while (n > 0 && ((unsigned char)raw.p[n] & 0xC0) == 0x80)
		n--; /* not inside a UTF-8 sequence */
	struct bg_buf s = { 0 };
	bg_buf_append(&s, raw.p, n);
	bg_buf_puts(&s, "...[TRUNCATED]");
	if (bg_json_escape(out, s.p ? s.p : "", s.len) != 0)
		bg_buf_puts(out, "null");
	bg_buf_free(&s);
}

/* What the finish wrote for t: its status and error fields. */
struct ended {
	const char *status;
	struct bg_buf etype, emsg, ecode, estage;
	bool retryable;
	struct bg_str reply;
	struct bg_buf failure_reply;
};

static void ended_of(const struct bg_job *t, struct ended *e)
{
	memset(e, 0, sizeof(*e));
	struct bg_str md = { t->end.result_metadata.p,
			     t->end.result_metadata.len };
	if (t->end.end_kind == BG_END_RESULT) {
		e->status = t->end.status ? t->end.status : "COMPLETED";
		static const char *const keys[] = { "error_type",
						    "error_message",
						    "error_code",
						    "failed_stage" };
		members_text(md, keys,
			     (struct bg_buf *const[]){ &e->etype, &e->emsg,
						       &e->ecode, &e->estage },
			     4);
		e->reply = (struct bg_str){ t->end.reply_data.p,
					    t->end.reply_data.len };
		if (e->emsg.len == 0) /* as the record's error_message */
			member_text(e->reply, "error", &e->emsg);
	} else {
		e->status = "FAILED";
		member_text(md, "error_type", &e->etype);
		if (t->end.error_type) {
			bg_buf_reset(&e->etype);
			bg_buf_puts(&e->etype, t->end.error_type);
		}
		if (e->etype.len == 0)
			bg_buf_puts(&e->etype, "TaskFailed");
		bg_buf_puts(&e->emsg, t->end.error_message
					      ? t->end.error_message
					      : "failed");
		bg_buf_puts(&e->ecode,
			    t->end.error_code ? t->end.error_code : "FAILED");
		bg_buf_puts(&e->estage, t->end.failed_stage
						? t->end.failed_stage
						: "process_command");
		bg_buf_puts(&e->failure_reply, "{\"error\":");
		bg_json_escape(&e->failure_reply, e->emsg.p, e->emsg.len);
		bg_buf_puts(&e->failure_reply, "}");
		e->reply = (struct bg_str){ e->failure_reply.p,
					    e->failure_reply.len };
	}
	e->retryable = member_true(md, "retryable");
}

static void ended_free(struct ended *e)
{
	bg_buf_free(&e->etype);
	bg_buf_free(&e->emsg);
	bg_buf_free(&e->ecode);
	bg_buf_free(&e->estage);
	bg_buf_free(&e->failure_reply);
}

#define B(b) ((struct bg_str){ (b).p, (b).len })

/* A span of t's own execution: agent.return or agent.cancel. */
static void keep_step(struct bg_daemon *d, const struct bg_job *t,
		      const char *op, const char *exec_span, const char *status,
		      const char *source, const char *target,
		      const char *metadata, int64_t now)
{
	char sid[64];
	snprintf(sid, sizeof(sid), "%s:%s", t->id.execution_id, op);
	struct bg_span s = {
		.trace_id = S(t->id.trace_id),
		.span_id = S(sid),
		.parent_span_id = S(exec_span),
		.operation = S(op),
		.component = S("worker"),
		.status = S(status),
		.start_ts = now,
		.end_ts = now,
		.metadata = S(metadata),
		.session_id = S(t->id.session_id),
		.execution_id = S(t->id.execution_id),
		.message_id = S(t->id.message_id),
		.parent_message_id = S(t->id.parent_message_id),
		.worker_id = S(d->worker_id),
		.source_agent_type = S(source),
		.target_agent_type = S(target),
	};
	keep_span(d, &s, status, NULL);
}

void bg_trace_job_finished(struct bg_daemon *d, const struct bg_job *t)
{
	if (!tracing(d, t->id.trace_id) ||
	    (t->end.end_kind != BG_END_RESULT &&
	     t->end.end_kind != BG_END_FAILED) ||
	    !t->id.cmd_ok)
		return;
	int64_t now = bg_now_ms(), mono = bg_mono_ms();
	int64_t began = t->run.started_ms ? t->run.started_ms
					  : t->run.picked_ms;
	int64_t start = began ? now - (mono - began) : now;
	struct ended e;
	ended_of(t, &e);
	struct bg_buf parent = { 0 };
	execute_parent(t, &parent);
	char exec_span[64];
	snprintf(exec_span, sizeof(exec_span), "%s:worker.execute",
		 t->id.execution_id);
	struct bg_span s = {
		.trace_id = S(t->id.trace_id),
		.span_id = S(exec_span),
		.parent_span_id = B(parent),
		.operation = S("worker.execute"),
		.component = S("worker"),
		.status = S(e.status),
		.start_ts = start,
		.end_ts = now,
		.session_id = S(t->id.session_id),
		.execution_id = S(t->id.execution_id),
		.message_id = S(t->id.message_id),
		.parent_message_id = S(t->id.parent_message_id),
		.worker_id = S(d->worker_id),
		.target_agent_type = S(t->id.agent_type),
		.error_type = B(e.etype),
		.error_message = B(e.emsg),
		.error_code = B(e.ecode),
		.failed_stage = B(e.estage),
		.retryable = e.retryable,
		/* the route the sender recorded (runner.py takes it from
		 * the execution record), read with it (job.h) */
		.route_policy = B(t->id.route_policy),
		.route_status = B(t->id.route_status),
		.chunk_count = (int64_t)t->run.events,
	};
	keep_span(d, &s, e.status, NULL);
	bool terminal = bg_status_is_terminal(S(e.status));
	if (terminal && t->id.callback_to[0] && !t->run.parent_cancelled)
		keep_step(d, t, "agent.return", exec_span, e.status,
			  t->id.agent_type, t->id.callback_to, NULL, now);
	if (t->run.cancel_requested) {
		struct bg_buf cm = { 0 };
		const char *why = t->run.cancel_reason ? t->run.cancel_reason
						       : "cancelled";
		bg_buf_puts(&cm, "{\"cancel_reason\":");
		bg_json_escape(&cm, why, strlen(why));
		bg_buf_puts(&cm, "}");
		keep_step(d, t, "agent.cancel", exec_span, "CANCELLED", "", "",
			  cm.p, now);
		bg_buf_free(&cm);
	}
	/* TraceWriteClient.record_trace of a root's end (WIRE 9.2) */
	if (terminal && t->id.parent_message_id[0] == '\0' &&
	    d->trace->n < (size_t)d->cfg->trace_max_kept &&
	    sampled(d, t->id.trace_id)) {
		struct item *end = item_new(d->trace, t->id.trace_id,
					    t->id.session_id, e.status,
					    t->id.agent_type, start, now);
		struct bg_buf out = { 0 }, em = { 0 };
		output_of(e.reply, &out);
		if (e.emsg.len) {
			bg_buf_puts(&em, "{\"error\":");
			bg_json_escape(&em, e.emsg.p, e.emsg.len);
			bg_buf_puts(&em, "}");
		} else {
			bg_buf_puts(&em, "{}");
		}
		if (end) {
			end->is_end = true;
			end->end_output = out.len ? bg_buf_steal(&out) : NULL;
			end->end_metadata = bg_buf_steal(&em);
		}
		bg_buf_free(&out);
		bg_buf_free(&em);
	}
	bg_buf_free(&parent);
	ended_free(&e);
}

void bg_trace_dispatch(struct bg_daemon *d, const struct bg_job *t,
		       const char *msg_id, const char *target,
		       const char *route_policy, const char *route_status)
{
	if (!tracing(d, t->id.trace_id))
		return;
	int64_t now = bg_now_ms();
	char sid[BG_ID_MAX + 32], parent[64];
	snprintf(sid, sizeof(sid), "%s:client.dispatch", msg_id);
	snprintf(parent, sizeof(parent), "%s:worker.execute",
		 t->id.execution_id);
	struct bg_span s = {
		.trace_id = S(t->id.trace_id),
		.span_id = S(sid),
		.parent_span_id = S(parent),
		.operation = S("client.dispatch"),
		.component = S("agent_context"),
		.status = S("COMPLETED"),
		.start_ts = now,
		.end_ts = now,
		.session_id = S(t->id.session_id),
		.message_id = S(msg_id),
		.parent_message_id = S(t->id.message_id),
		/* no worker_id: the reference's is the worker a direct
		 * route chose; a call_agent here names an agent type */
		.source_agent_type = S(t->id.agent_type),
		.target_agent_type = S(target),
		.route_policy = S(route_policy),
		.route_status = S(route_status),
	};
	struct item *it = NULL;
	if (keep_span(d, &s, "COMPLETED", &it)) {
		/* the reference sets these from a client.dispatch span; only
		 * where the client did not (HSETNX): bygate decision */
		it->name = strdup("client.dispatch");
		it->root_agent_type = dup0(target);
		it->root_message_id = dup0(msg_id);
	}
}

void bg_trace_group(struct bg_daemon *d, const struct bg_job *t,
		    const char *group_id, size_t n, bool wait)
{
	if (!tracing(d, t->id.trace_id))
		return;
	int64_t now = bg_now_ms();
	char sid[64], parent[64], md[128];
	snprintf(sid, sizeof(sid), "%s:agent.dispatch_group", group_id);
	snprintf(parent, sizeof(parent), "%s:worker.execute",
		 t->id.execution_id);
	snprintf(md, sizeof(md),
		 "{\"task_group_id\":\"%s\",\"task_count\":%zu,"
		 "\"wait_for_reply\":%s}",
		 group_id, n, wait ? "true" : "false");
	struct bg_span s = {
		.trace_id = S(t->id.trace_id),
		.span_id = S(sid),
		.parent_span_id = S(parent),
		.operation = S("agent.dispatch_group"),
		.component = S("agent_context"),
		.status = S("COMPLETED"),
		.start_ts = now,
		.end_ts = now,
		.metadata = S(md),
		.session_id = S(t->id.session_id),
		.execution_id = S(t->id.execution_id),
		.message_id = S(t->id.message_id),
		.target_agent_type = S(t->id.agent_type),
	};
	keep_span(d, &s, "COMPLETED", NULL);
}

/* ---- flushing ----------------------------------------------------------- */

/* One call writes the traces of a flush (at most CALL_MAX_TRACES): KEYS
 * meta, spans of each trace in turn. ARGV: ttl, then per trace: trace
 * id, session id, last span status, min start, max end, "1" when a root
 * ended, its status, end_ts, output, metadata, name, root_agent_type,
 * root_message_id ("" = none), the number of spans, the spans. start_ts
 * stays the smallest and updated_at the largest any writer gave; once a
 * root's end is written, spans no longer change the trace's status (a
 * late span of a callee cannot turn CANCELLED back). One script call per
 * flush instead of one per trace: a call's own cost in Redis (~7 us)
 * was paid once per task. The keys of several traces in one call are
 * fine on a standalone Redis; under Redis Cluster a call holds one trace
 * (its two keys share the trace's slot) and sends the script's text
 * (EVAL: each node has its own script cache). */
static const char flush_lua[] =
	"local ttl = ARGV[1]\n"
	"local function n(x) return tonumber(x or '') or 0 end\n"
	"local function i(x) return string.format('%.0f', x) end\n"
	"local a, k = 2, 1\n"
	"while a <= #ARGV do\n"
	"local m, sp = KEYS[k], KEYS[k + 1]\n"
	"local ns = tonumber(ARGV[a + 13])\n"
	"local h = redis.call('HMGET', m, 'start_ts', 'updated_at', "
	"'end_ts')\n"
	"local st, had = n(ARGV[a + 3]), n(h[1])\n"
	"if had > 0 and (st <= 0 or had < st) then st = had end\n"
	"local f = {'trace_id', ARGV[a], 'start_ts', i(st), 'updated_at',\n"
	"  i(math.max(n(ARGV[a + 4]), n(h[2])))}\n"
	"if ARGV[a + 1] ~= '' then\n"
	"  f[#f + 1] = 'session_id'; f[#f + 1] = ARGV[a + 1] end\n"
	"if ARGV[a + 5] == '1' then\n"
	"  for _, x in ipairs({'status', ARGV[a + 6], 'end_ts', ARGV[a + 7],\n"
	"    'metadata', ARGV[a + 9]}) do f[#f + 1] = x end\n"
	"  if ARGV[a + 8] ~= '' then\n"
	"    f[#f + 1] = 'output'; f[#f + 1] = ARGV[a + 8] end\n"
	"elseif ARGV[a + 2] ~= '' and not h[3] then\n"
	"  f[#f + 1] = 'status'; f[#f + 1] = ARGV[a + 2] end\n"
	"redis.call('HSET', m, unpack(f))\n"
	"if ARGV[a + 10] ~= '' then\n"
	"  redis.call('HSETNX', m, 'name', ARGV[a + 10])\n"
	"  redis.call('HSETNX', m, 'root_agent_type', ARGV[a + 11])\n"
	"  redis.call('HSETNX', m, 'root_message_id', ARGV[a + 12]) end\n"
	"if ns > 0 then\n"
	"  redis.call('RPUSH', sp, unpack(ARGV, a + 14, a + 13 + ns))\n"
	"  redis.call('EXPIRE', sp, ttl) end\n"
	"redis.call('EXPIRE', m, ttl)\n"
	"a, k = a + 14 + ns, k + 2\n"
	"end\n"
	"return (k - 1) / 2\n";

static int by_trace(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->trace_id, y->trace_id);
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void on_flush_reply(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (d->trace == NULL || (r && !bg_reply_is_error(r)))
		return;
	if (!d->trace->warned) {
		bg_warn("trace write failed (%s); traces are best effort, "
			"later failures are counted only",
			r ? bg_reply_error(r) : "connection lost");
		d->trace->warned = true;
	}
	d->trace->st.spans_dropped++;
}

/* Note trace_id's place in index (kind, id) for this flush. */
static void add_index(struct bg_trace *tr, enum bg_key_kind kind,
		      const char *id, const char *trace_id, int64_t score)
{
	if (id == NULL || *id == '\0')
		return;
	if (tr->n_idx == tr->cap_idx) {
		size_t cap = tr->cap_idx ? tr->cap_idx * 2 : 64;
		struct idx *p = realloc(tr->idx, cap * sizeof(*p));
		if (p == NULL)
			return; /* best effort: this index entry is lost */
		tr->idx = p;
		tr->cap_idx = cap;
	}
	tr->idx[tr->n_idx++] = (struct idx){ kind, id, trace_id, score };
}

static int by_index(const void *a, const void *b)
{
	const struct idx *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Members of one ZADD at most. */
#define ZADD_MAX 256

/* Per index key: ZADD key LT score trace ... (the earliest start stays)
 * and one EXPIRE (best effort, WIRE 9.2). */
static void send_indexes(struct bg_daemon *d, const char *ttl)
{
	struct bg_trace *tr = d->trace;
	qsort(tr->idx, tr->n_idx, sizeof(*tr->idx), by_index);
	const char *argv[3 + 2 * ZADD_MAX];
	size_t lens[3 + 2 * ZADD_MAX];
	char scores[ZADD_MAX][24];
	size_t a = 0;
	while (a < tr->n_idx) {
		size_t b = a + 1;
		while (b < tr->n_idx && by_index(&tr->idx[a], &tr->idx[b]) == 0)
			b++;
		char *key = bg_dkey(d, tr->idx[a].kind, tr->idx[a].id);
		for (size_t i = a; key && i < b;) {
			int n = 0;
			argv[n++] = "ZADD";
			argv[n++] = key;
			argv[n++] = "LT";
			for (int k = 0; i < b && k < ZADD_MAX; i++, k++) {
				snprintf(scores[k], sizeof(scores[k]), "%lld",
					 (long long)tr->idx[i].score);
				argv[n++] = scores[k];
				argv[n++] = tr->idx[i].trace_id;
			}
			for (int k = 0; k < n; k++)
				lens[k] = strlen(argv[k]);
			bg_rconn_cmd(d->wr, on_flush_reply, d, 0, n, argv,
				     lens);
		}
		if (key)
			bg_rconn_cmdv(d->wr, NULL, NULL, 0,
				      (const char *const[]){ "EXPIRE", key, ttl,
							     NULL });
		free(key);
		a = b;
	}
	tr->n_idx = 0;
}

/* SHA-1 of flush_lua, computed once; NULL: always EVAL. */
static const char *flush_sha(void)
{
	static char hex[41];
	if (hex[0] == '\0' && bg_script_sha1(hex, flush_lua) != 0)
		return NULL;
	return hex;
}

/* Traces of one script call at most. */
#define CALL_MAX_TRACES 128

/* One script call being gathered: its keys, its arguments after the ttl
 * (pointing into the flush's items or into owned), the strings made for
 * it. failed: a part could not be added (no memory): not sent. */
struct call {
	const char **keys, **args, **owned;
	size_t n_keys, cap_keys, n_args, cap_args;
	size_t n_owned, cap_owned;
	size_t traces, spans;
	bool failed;
};

static void push(struct call *c, const char ***v, size_t *n, size_t *cap,
		 const char *s)
{
	if (s == NULL) {
		c->failed = true;
		return;
	}
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		const char **p = realloc(*v, ncap * sizeof(*p));
		if (p == NULL) {
			c->failed = true;
			return;
		}
		*v = p;
		*cap = ncap;
	}
	(*v)[(*n)++] = s;
}

/* s (malloc'd, NULL = no memory) is the call's until it is sent; NULL
 * when it could not be kept (freed, the call failed). */
static const char *own(struct call *c, char *s)
{
	size_t before = c->n_owned;
	push(c, &c->owned, &c->n_owned, &c->cap_owned, s);
	if (c->n_owned == before) {
		free(s);
		return NULL;
	}
	return s;
}

static char *num(long long v)
{
	char b[24];
	snprintf(b, sizeof(b), "%lld", v);
	return strdup(b);
}

static void call_reset(struct call *c)
{
	for (size_t i = 0; i < c->n_owned; i++)
		free((void *)c->owned[i]);
	c->n_keys = c->n_args = c->n_owned = 0;
	c->traces = c->spans = 0;
	c->failed = false;
}

static void call_free(struct call *c)
{
	call_reset(c);
	free(c->keys);
	free(c->args);
	free(c->owned);
}

/* Send the gathered call. The first call of a flush sends the script's
 * text (EVAL caches it), the others its SHA-1: they run after it on this
 * connection, so no NOSCRIPT is expected. */
static void send_call(struct bg_daemon *d, struct call *c, const char *ttl,
		      bool *text_sent)
{
	if (c->traces == 0)
		return;
	size_t n = 4 + c->n_keys + c->n_args;
	const char **argv = c->failed ? NULL : calloc(n, sizeof(*argv));
	size_t *lens = c->failed ? NULL : calloc(n, sizeof(*lens));
	char numkeys[24];
	snprintf(numkeys, sizeof(numkeys), "%zu", c->n_keys);
	if (argv && lens) {
		const char *sha = *text_sent && !bg_rconn_clustered(d->wr)
					  ? flush_sha()
					  : NULL;
		*text_sent = true;
		size_t k = 0;
		argv[k++] = sha ? "EVALSHA" : "EVAL";
		argv[k++] = sha ? sha : flush_lua;
		argv[k++] = numkeys;
		for (size_t i = 0; i < c->n_keys; i++)
			argv[k++] = c->keys[i];
		argv[k++] = ttl;
		for (size_t i = 0; i < c->n_args; i++)
			argv[k++] = c->args[i];
		for (size_t i = 0; i < k; i++)
			lens[i] = strlen(argv[i]);
		if (bg_rconn_cmd(d->wr, on_flush_reply, d, 0, (int)k, argv,
				 lens) == 0)
			d->trace->st.spans_written += c->spans;
		else
			d->trace->st.spans_dropped += c->spans;
	} else {
		d->trace->st.spans_dropped += c->spans;
	}
	free(argv);
	free(lens);
	call_reset(c);
}

#define ARG(c, s) push((c), &(c)->args, &(c)->n_args, &(c)->cap_args, (s))

/* Items [a, b) are one trace's: its part of the flush's script call, and
 * its indexes. */
static void add_trace(struct bg_daemon *d, struct call *c, struct item *a,
		      struct item *b)
{
	size_t nspans = 0;
	int64_t start = 0, end = 0;
	const char *status = "";
	const struct item *root_end = NULL, *dispatch = NULL;
	for (struct item *it = a; it < b; it++) {
		if (it->span) {
			nspans++;
			status = it->status;
		}
		if (it->is_end)
			root_end = it;
		if (it->name && dispatch == NULL)
			dispatch = it;
		if (it->start_ts > 0 && (start == 0 || it->start_ts < start))
			start = it->start_ts;
		if (it->end_ts > end)
			end = it->end_ts;
	}
	push(c, &c->keys, &c->n_keys, &c->cap_keys,
	     own(c, bg_dkey(d, BG_KEY_TRACE_META, a->trace_id)));
	push(c, &c->keys, &c->n_keys, &c->cap_keys,
	     own(c, bg_dkey(d, BG_KEY_TRACE_SPANS, a->trace_id)));
	ARG(c, a->trace_id);
	ARG(c, a->session_id);
	ARG(c, status);
	ARG(c, own(c, num(start)));
	ARG(c, own(c, num(end)));
	ARG(c, root_end ? "1" : "0");
	ARG(c, root_end ? root_end->status : "");
	ARG(c, own(c, num(root_end ? root_end->end_ts : 0)));
	ARG(c, root_end && root_end->end_output ? root_end->end_output : "");
	ARG(c,
	    root_end && root_end->end_metadata ? root_end->end_metadata : "{}");
	ARG(c, dispatch ? dispatch->name : "");
	ARG(c, dispatch ? dispatch->root_agent_type : "");
	ARG(c, dispatch ? dispatch->root_message_id : "");
	ARG(c, own(c, num((long long)nspans)));
	for (struct item *it = a; it < b; it++)
		if (it->span)
			ARG(c, it->span);
	c->traces++;
	c->spans += nspans;
	/* the indexes: the session, this worker, each target agent type
	 * (sent after every trace of the flush, by key) */
	struct bg_trace *tr = d->trace;
	add_index(tr, BG_KEY_TRACE_IDX_SESSION, a->session_id, a->trace_id,
		  start);
	add_index(tr, BG_KEY_TRACE_IDX_WORKER, d->worker_id, a->trace_id,
		  start);
	for (struct item *it = a; it < b; it++) {
		bool seen = false;
		for (struct item *p = a; p < it && !seen; p++)
			seen = strcmp(p->agent, it->agent) == 0;
		if (!seen)
			add_index(tr, BG_KEY_TRACE_IDX_AGENT, it->agent,
				  a->trace_id, start);
	}
}

/* Drop every kept item, counting its span. */
static void drop_kept(struct bg_trace *tr)
{
	for (size_t i = 0; i < tr->n; i++) {
		if (tr->items[i].span)
			tr->st.spans_dropped++;
		item_free(&tr->items[i]);
	}
	tr->n = 0;
}

void bg_trace_flush(struct bg_daemon *d)
{
	struct bg_trace *tr = d->trace;
	if (tr == NULL || tr->n == 0)
		return;
	if (!bg_rconn_ready(d->wr)) {
		drop_kept(tr);
		return;
	}
	if (bg_rconn_pending_bytes(d->wr) > BACKLOG_MAX_BYTES) {
		/* Redis is behind: what it has not answered yet stays the
		 * only trace data in bygated's memory */
		if (!tr->warned) {
			bg_warn("trace write skipped: %zu bytes unanswered on "
				"the write connection; traces are best effort, "
				"later drops are counted only",
				bg_rconn_pending_bytes(d->wr));
			tr->warned = true;
		}
		drop_kept(tr);
		return;
	}
	char ttl[16];
	snprintf(ttl, sizeof(ttl), "%d", d->cfg->trace_ttl_s);
	qsort(tr->items, tr->n, sizeof(*tr->items), by_trace);
	bool text_sent = false;
	struct call c = { 0 };
	size_t a = 0;
	for (size_t i = 1; i <= tr->n; i++)
		if (i == tr->n ||
		    strcmp(tr->items[i].trace_id, tr->items[a].trace_id)) {
			add_trace(d, &c, &tr->items[a], &tr->items[i]);
			if (c.traces == CALL_MAX_TRACES ||
			    bg_rconn_clustered(d->wr))
				send_call(d, &c, ttl, &text_sent);
			a = i;
		}
	send_call(d, &c, ttl, &text_sent);
	call_free(&c);
	send_indexes(d, ttl);
	for (size_t i = 0; i < tr->n; i++)
		item_free(&tr->items[i]);
	tr->n = 0;
	tr->st.flushes++;
}

static void arm(struct bg_daemon *d)
{
	int ms = d->cfg->trace_flush_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(d->trace->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	bg_trace_flush(d);
	arm(d);
}

int bg_trace_start(struct bg_daemon *d)
{
	struct bg_trace *tr = calloc(1, sizeof(*tr));
	if (tr)
		tr->counts = calloc(COUNT_SLOTS, sizeof(*tr->counts));
	if (tr)
		tr->timer = evtimer_new(d->base, on_timer, d);
	if (tr == NULL || tr->counts == NULL || tr->timer == NULL) {
		if (tr) {
			free(tr->counts);
			if (tr->timer)
				event_free(tr->timer);
		}
		free(tr);
		return -ENOMEM;
	}
	d->trace = tr;
	arm(d);
	return 0;
}

void bg_trace_stop(struct bg_daemon *d)
{
	struct bg_trace *tr = d->trace;
	if (tr == NULL)
		return;
	bg_trace_flush(d);
	event_free(tr->timer);
	for (size_t i = 0; i < tr->n; i++)
		item_free(&tr->items[i]);
	free(tr->items);
	free(tr->idx);
	free(tr->counts);
	free(tr);
	d->trace = NULL;
}

struct bg_trace_stats bg_trace_stats(const struct bg_daemon *d)
{
	return d->trace ? d->trace->st : (struct bg_trace_stats){ 0 };
}
