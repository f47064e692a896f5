/* client/cancel.c - GatewayClient.cancel_task and cancel_session (WIRE
 * 6.10): the task tree of a session's records walked breadth first over
 * parent_message_id, terminal records flagged cancel_requested, the others
 * marked CANCELLING with a CANCEL_TASK to the worker that holds them. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ids.h"
#include "wire/json.h"
#include "wire/post.h"
#include "wire/record.h"
#include "wire/send.h"

/* A session's execution records (HGETALL, exec:* fields that are JSON
 * objects) with the walk's bookkeeping. */
struct tree {
	json_t **recs;
	size_t n;
	size_t *by_parent; /* indexes sorted by parent_message_id */
	bool *seen;
};

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		json_decref(t->recs[i]);
	free(t->recs);
	free(t->by_parent);
	free(t->seen);
	memset(t, 0, sizeof *t);
}

static int add_rec(void *arg, const struct bg_client_record *r)
{
	struct tree *t = arg;
	json_t *v = json_loadb(r->json, r->json_len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v); /* Python skips what does not decode */
		return 0;
	}
	json_t **recs = realloc(t->recs, (t->n + 1) * sizeof *recs);
	if (recs == NULL) {
		json_decref(v);
		return -ENOMEM;
	}
	t->recs = recs;
	t->recs[t->n++] = v;
	return 0;
}

static int by_parent(const void *a, const void *b, void *recs)
{
	json_t *const *r = recs;
	return strcmp(
		bg_client_jstr(r[*(const size_t *)a], "parent_message_id"),
		bg_client_jstr(r[*(const size_t *)b], "parent_message_id"));
}

static int tree_load(struct bg_client *c, const char *session, struct tree *t)
{
	int rc = bg_client_list_executions(c, session, add_rec, t);
	if (rc < 0)
		return rc;
	t->by_parent = calloc(t->n + 1, sizeof *t->by_parent);
	t->seen = calloc(t->n + 1, sizeof *t->seen);
	if (t->by_parent == NULL || t->seen == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		t->by_parent[i] = i;
	qsort_r(t->by_parent, t->n, sizeof *t->by_parent, by_parent, t->recs);
	return 0;
}

/* The first position in by_parent whose parent is `mid`, or t->n. */
static size_t first_child(const struct tree *t, const char *mid)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		const char *p = bg_client_jstr(t->recs[t->by_parent[m]],
					       "parent_message_id");
		if (strcmp(p, mid) < 0)
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

/* Mark the tree's copy of the walk's root as seen. */
static void take_root(struct tree *t, const char *exec_id)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(bg_client_jstr(t->recs[i], "execution_id"),
			    exec_id))
			t->seen[i] = true;
}

/* ---- one record ---------------------------------------------------------- */

struct cancel_ctx {
	struct bg_client *c;
	const struct bg_cancel_request *req;
	struct bg_cancel_response *resp;
	struct bg_buf registry;
	const char *reason;
	const char *fallback_trace; /* cancel_task: the target's trace id */
};

/* The new record bytes: CANCELLING (mark_execution_cancelling) or only the
 * flag (mark_cancel_requested); the edit bygated's cancel_call makes too. */
static int edit_record(struct bg_buf *out, struct bg_str raw, bool cancelling,
		       const char *reason, int64_t now)
{
	return bg_post_cancel_edit(out, raw, cancelling, bg_str_c(reason), now);
}

/* Read-modify-write of exec:<id>, then the worker statistics. A missing or
 * malformed record is left alone, as Python's get_execution -> None. */
static int mark(struct cancel_ctx *x, const char *exec_id, bool cancelling)
{
	struct bg_buf field = { 0 }, next = { 0 };
	redisReply *r = NULL, *exec = NULL;
	int64_t now = bg_client_now_ms();
	int rc = exec_id[0] ? bg_buf_printf(&field, "exec:%s", exec_id) : 0;
	if (rc == 0 && exec_id[0])
		rc = bg_client_cmd(x->c, &r, "HGET", x->registry.p, field.p,
				   NULL);
	if (rc == 0 && bg_client_reply_is_str(r) &&
	    edit_record(&next, (struct bg_str){ r->str, r->len }, cancelling,
			x->reason, now) == 0) {
		const char *hset[] = { "HSET", x->registry.p, field.p, next.p,
				       NULL };
		const char *expire[] = { "EXPIRE", x->registry.p,
					 BG_CLIENT_SESSION_TTL, NULL };
		const char *const *cmds[] = { hset, expire };
		rc = bg_client_transact(x->c, "cancel", 2, cmds, &exec);
		json_t *old = json_loadb(r->str, r->len, 0, NULL);
		json_t *neu = json_loadb(next.p, next.len, 0, NULL);
		if (rc == 0)
			rc = bg_client_worker_stats(
				x->c, old, neu,
				(struct bg_str){ next.p, next.len }, now);
		json_decref(old);
		json_decref(neu);
	}
	freeReplyObject(exec);
	freeReplyObject(r);
	bg_buf_free(&field);
	bg_buf_free(&next);
	return rc;
}

/* The CANCEL_TASK of WIRE 2.5 for one node, on its worker's stream. */
static int send_cancel(struct cancel_ctx *x, const json_t *node,
		       const char *worker, char *entry_id)
{
	const struct bg_cancel_request *req = x->req;
	const char *mid = bg_client_jstr(node, "message_id");
	const char *trace = bg_client_jstr(node, "trace_id");
	char msg_id[BG_ID_CAP("msg-cancel-")], rnd[33];
	struct bg_buf cmd = { 0 }, key = { 0 };
	if (!mid[0])
		return 0; /* CancelTaskCommand needs a target message id */
	int rc = bg_id_new(msg_id, sizeof msg_id, "msg-cancel-");
	if (rc == 0 && !trace[0]) {
		trace = x->fallback_trace;
		if (!trace[0] && (rc = bg_uuid_hex(rnd, false)) == 0)
			trace = rnd;
	}
	struct bg_send_header h = {
		.message_id = bg_str_c(msg_id),
		.session_id = bg_str_c(req->session_id),
		.trace_id = bg_str_c(trace),
		.target_agent_type =
			bg_str_c(bg_client_jstr(node, "target_agent_type")),
		.parent_message_id = bg_str_c(mid),
	};
	if (rc == 0)
		rc = bg_send_open(&cmd, "CANCEL_TASK", &h);
	if (rc == 0)
		rc = bg_wire_fmt(
			&cmd,
			"\"target_message_id\":%s,\"target_execution_id\":%s,"
			"\"target_worker_id\":%s,\"reason\":%s,"
			"\"requested_by\":%s,\"cancel_mode\":%s}}",
			bg_str_c(mid),
			bg_str_c(bg_client_jstr(node, "execution_id")),
			bg_str_c(worker), bg_str_c(x->reason),
			bg_str_c(req->requested_by && req->requested_by[0]
					 ? req->requested_by
					 : "client"),
			bg_str_c(req->cancel_mode && req->cancel_mode[0]
					 ? req->cancel_mode
					 : "graceful"));
	if (rc == 0)
		rc = bg_client_key(x->c, &key, BG_KEY_WORKER_CTRL, worker);
	if (rc == 0)
		rc = bg_client_xadd(x->c, key.p, cmd.p, entry_id);
	bg_buf_free(&cmd);
	bg_buf_free(&key);
	return rc;
}

/* mark_execution_cancelling and, with a worker, the CANCEL_TASK. */
static int cancel_node(struct cancel_ctx *x, const json_t *node)
{
	const char *exec_id = bg_client_jstr(node, "execution_id");
	const char *worker = bg_client_jstr(node, "worker_id");
	char entry_id[BG_CLIENT_ENTRY_ID_MAX] = "";
	int rc = mark(x, exec_id, true);
	if (rc == 0 && worker[0])
		rc = send_cancel(x, node, worker, entry_id);
	if (rc == 0 && x->req->cb) {
		struct bg_client_cancelled n = {
			exec_id, bg_client_jstr(node, "message_id"), worker,
			entry_id
		};
		rc = x->req->cb(x->req->arg, &n);
		rc = rc > 0 ? 0 : rc;
	}
	return rc;
}

static bool is_terminal(const json_t *rec)
{
	return bg_status_is_terminal(bg_str_c(bg_client_jstr(rec, "status")));
}

/* Flag every terminal node, cancel every other one (in that order, as
 * Python does); the status says which happened. */
static int apply(struct cancel_ctx *x, json_t **nodes, size_t n)
{
	int rc = 0, finished = 0, cancelled = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (is_terminal(nodes[i])) {
			finished++;
			rc = mark(x, bg_client_jstr(nodes[i], "execution_id"),
				  false);
		}
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (!is_terminal(nodes[i])) {
			cancelled++;
			rc = cancel_node(x, nodes[i]);
		}
	x->resp->cancelled_count = cancelled;
	x->resp->already_finished_count = finished;
	snprintf(x->resp->status, sizeof x->resp->status, "%s",
		 cancelled ? "CANCEL_REQUESTED" : "ALREADY_FINISHED");
	return rc;
}

/* BFS from the target over the tree; nodes (borrowed) in visit order.
 * Each record is visited once, so a registry with a parent cycle or
 * duplicated message ids cannot make the walk loop. */
static int walk(struct tree *t, json_t *target, json_t ***out, size_t *n)
{
	json_t **q = malloc((t->n + 1) * sizeof *q);
	if (q == NULL)
		return -ENOMEM;
	size_t len = 0;
	q[len++] = target;
	take_root(t, bg_client_jstr(target, "execution_id"));
	for (size_t head = 0; head < len; head++) {
		const char *mid = bg_client_jstr(q[head], "message_id");
		if (!mid[0])
			continue; /* "" is the parent of every root */
		for (size_t i = first_child(t, mid); i < t->n; i++) {
			size_t k = t->by_parent[i];
			if (strcmp(bg_client_jstr(t->recs[k],
						  "parent_message_id"),
				   mid))
				break;
			if (!t->seen[k]) {
				t->seen[k] = true;
				q[len++] = t->recs[k];
			}
		}
	}
	*out = q;
	*n = len;
	return 0;
}

static void not_found(struct bg_cancel_response *resp, const char *fmt,
		      const char *arg)
{
	snprintf(resp->status, sizeof resp->status, "NOT_FOUND");
	snprintf(resp->error, sizeof resp->error, fmt, arg);
}

static int cancel_task(struct cancel_ctx *x, struct tree *t)
{
	const struct bg_cancel_request *req = x->req;
	char *raw = NULL;
	size_t len = 0;
	int rc = bg_client_get_execution(x->c, req->session_id, req->message_id,
					 &raw, &len);
	json_t *target = raw ? json_loadb(raw, len, 0, NULL) : NULL;
	free(raw);
	if (rc == -ENOENT || (rc == 0 && !json_is_object(target))) {
		json_decref(target);
		not_found(x->resp, "execution not found for message_id=%s",
			  req->message_id);
		return 0;
	}
	snprintf(x->resp->execution_id, sizeof x->resp->execution_id, "%s",
		 bg_client_jstr(target, "execution_id"));
	snprintf(x->resp->worker_id, sizeof x->resp->worker_id, "%s",
		 bg_client_jstr(target, "worker_id"));
	if (rc == 0 &&
	    strcmp(bg_client_jstr(target, "session_id"), req->session_id)) {
		json_decref(target);
		not_found(x->resp, "session mismatch for message_id=%s",
			  req->message_id);
		return 0;
	}
	json_t **nodes = NULL;
	size_t n = 0;
	x->fallback_trace = bg_client_jstr(target, "trace_id");
	if (rc == 0)
		rc = tree_load(x->c, req->session_id, t);
	if (rc == 0)
		rc = walk(t, target, &nodes, &n);
	if (rc == 0)
		rc = apply(x, nodes, n);
	if (rc == 0 && x->resp->cancelled_count == 0)
		snprintf(x->resp->error, sizeof x->resp->error,
			 "execution already in terminal state: %s",
			 bg_client_jstr(target, "status"));
	free(nodes);
	json_decref(target);
	return rc;
}

static int cancel_session(struct cancel_ctx *x, struct tree *t)
{
	int rc = tree_load(x->c, x->req->session_id, t);
	x->fallback_trace = "";
	if (rc == 0 && t->n == 0)
		not_found(x->resp, "no execution in session %s",
			  x->req->session_id);
	else if (rc == 0)
		rc = apply(x, t->recs, t->n);
	return rc;
}

int bg_client_cancel(struct bg_client *c, const struct bg_cancel_request *req,
		     struct bg_cancel_response *resp)
{
	c->errmsg[0] = '\0';
	memset(resp, 0, sizeof *resp);
	struct cancel_ctx x = { .c = c,
				.req = req,
				.resp = resp,
				.reason = req->reason ? req->reason : "" };
	struct tree t = { 0 };
	const char *mode = req->cancel_mode ? req->cancel_mode : "";
	if (!req->session_id || !req->session_id[0] ||
	    (mode[0] && strcmp(mode, "graceful") && strcmp(mode, "force")))
		return bg_client_fail(c, -EINVAL,
				      "a session is required and "
				      "the cancel mode is graceful or force");
	int rc = bg_client_key(c, &x.registry, BG_KEY_SESSION_REGISTRY,
			       req->session_id);
	if (rc == 0 && req->message_id && req->message_id[0])
		rc = cancel_task(&x, &t);
	else if (rc == 0)
		rc = cancel_session(&x, &t);
	tree_free(&t);
	bg_buf_free(&x.registry);
	return rc;
}
