/* supervisor/cancel_call.c - cancel_call: a handler cancels an execution
 * of its own session and its sub-tree, as a client's cancel_task does
 * (WIRE 6.10): terminal records get cancel_requested, the others become
 * CANCELLING with a CANCEL_TASK to the worker that holds them (queued or
 * suspended ones are then cancelled lazily, at their next pickup). Live,
 * not through the outbox: a repeated cancel is harmless, and a deadline
 * must stop stragglers now.
 *
 * One HGETALL of the session's registry, the walk in C, then each record
 * written only over the bytes it was read as (one script per round, a
 * compare-and-set per record, as the one-run claim of admit.c writes): a
 * record changed meanwhile (claimed RUNNING, finished) comes back as it
 * is now and is edited again in the next round, so neither the claim nor
 * the finish ever loses the cancel, nor the cancel their write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "supervisor/cancel_call.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/post.h"
#include "wire/record.h"

#define S(s) bg_str_c(s)
#define CANCEL_ROUNDS 8 /* compare-and-set rounds before giving up */

/* KEYS[1] the registry; ARGV: (field, expected bytes, new bytes)...
 * Each record is replaced only when it still holds the expected bytes;
 * the answer per record is 1 (written) or its bytes now (nil: gone). */
static const char CAS_LUA[] =
	"local out, n = {}, 0\n"
	"for i = 1, #ARGV, 3 do\n"
	"  local cur = redis.call('HGET', KEYS[1], ARGV[i])\n"
	"  if cur == ARGV[i + 1] then\n"
	"    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])\n"
	"    out[#out + 1] = 1\n"
	"    n = n + 1\n"
	"  else\n"
	"    out[#out + 1] = cur\n"
	"  end\n"
	"end\n"
	"if n > 0 then redis.call('EXPIRE', KEYS[1], 604800) end\n"
	"return out\n";

/* One execution of the walk. */
struct node {
	char *field;	    /* "exec:<execution id>" */
	struct bg_buf raw;  /* its bytes as last read */
	struct bg_buf next; /* the edit sent this round */
	bool cancelling;    /* the edit makes it CANCELLING */
	bool pending;	    /* still to be written */
};

struct cancel {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id;
	char id[32];
	char target[BG_ID_MAX + 1];
	char *reason;
	bool force;
	char *reg_key;
	char *session_id, *fallback_trace, *requested_by;
	struct node *nodes;
	size_t n;
	int round;
	int cancelled, finished;
};

static void cancel_free(struct cancel *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->nodes[i].field);
		bg_buf_free(&x->nodes[i].raw);
		bg_buf_free(&x->nodes[i].next);
	}
	free(x->nodes);
	free(x->reg_key);
	free(x->session_id);
	free(x->fallback_trace);
	free(x->requested_by);
	free(x->reason);
	free(x);
}

/* The job still running the run that asked, or NULL. */
static struct bg_job *asker(const struct cancel *x)
{
	return bg_outbox_task_of(x->d, x->tag, x->run_id);
}

static void finish(struct cancel *x, struct bg_job *t, const char *code,
		   const char *msg)
{
	if (t && code)
		bg_outbox_reply_error(x->d, t, x->id, code, msg);
	else if (t && x->cancelled)
		bg_outbox_reply(
			x->d, t, x->id,
			json_pack("{s:s,s:i,s:i}", "status", "CANCEL_REQUESTED",
				  "cancelled_count", x->cancelled,
				  "already_finished_count", x->finished));
	else if (t)
		bg_outbox_reply(x->d, t, x->id,
				json_pack("{s:s,s:i,s:i}", "status",
					  "ALREADY_FINISHED", "cancelled_count",
					  0, "already_finished_count",
					  x->finished));
	if (t) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_INFO, &ids,
			    "cancel_call %s (%s): %s, %d cancelled, %d "
			    "already finished",
			    x->target, x->force ? "force" : "graceful",
			    code ? msg : "done", x->cancelled, x->finished);
	}
	cancel_free(x);
}

/* ---- the CANCEL_TASK of one node ---- */

static void send_cancel_task(struct cancel *x, const struct node *nd)
{
	struct bg_record r = { 0 };
	if (bg_record_read(&r, (struct bg_str){ nd->next.p, nd->next.len }))
		return;
	json_t *j = json_loadb(nd->next.p, nd->next.len, 0, NULL);
	const char *trace = json_string_value(json_object_get(j, "trace_id"));
	char cmd_id[32];
	bg_id_new(cmd_id, sizeof(cmd_id), "msg-cancel-");
	struct bg_post_cancel c = {
		.command_id = S(cmd_id),
		.session_id = S(x->session_id),
		.trace_id = S(trace && *trace ? trace : x->fallback_trace),
		.target_agent_type = r.target_agent_type,
		.target_message_id = r.message_id,
		.target_execution_id = r.execution_id,
		.target_worker_id = r.worker_id,
		.reason = S(x->reason),
		.requested_by = S(x->requested_by),
		.force = x->force,
	};
	struct bg_buf cmd = { 0 };
	char *key = r.worker_id.len && r.message_id.len
			    ? bg_dkey_s(x->d, BG_KEY_WORKER_CTRL, r.worker_id)
			    : NULL;
	if (key && bg_post_cancel_task(&cmd, &c) == 0)
		bg_rconn_cmdv(x->d->wr, NULL, NULL, 0,
			      (const char *const[]){ "XADD", key, "*", "data",
						     cmd.p, NULL });
	free(key);
	bg_buf_free(&cmd);
	json_decref(j);
	bg_record_free(&r);
}

/* ---- the dashboard's counters (WIRE 5.9) ---- */

/* The record of nd was rewritten: when it is this worker's, its counters
 * move as a client's cancel moves them (the finish later moves them from
 * CANCELLING). Another worker's counters are not kept here. */
static void count(struct cancel *x, const struct node *nd)
{
	struct bg_record old = { 0 }, neu = { 0 };
	if (bg_record_read(&old, (struct bg_str){ nd->raw.p, nd->raw.len }) ==
		    0 &&
	    bg_record_read(&neu, (struct bg_str){ nd->next.p, nd->next.len }) ==
		    0 &&
	    neu.worker_id.len == strlen(x->d->worker_id) &&
	    memcmp(neu.worker_id.p, x->d->worker_id, neu.worker_id.len) == 0) {
		char exec[128], from[64], to[64];
		snprintf(exec, sizeof(exec), "%.*s", (int)neu.execution_id.len,
			 neu.execution_id.p);
		snprintf(from, sizeof(from), "%.*s", (int)old.status.len,
			 old.status.p);
		snprintf(to, sizeof(to), "%.*s", (int)neu.status.len,
			 neu.status.p);
		bg_stats_update(x->d,
				(struct bg_str){ nd->next.p, nd->next.len },
				exec, from, to, NULL, NULL);
	}
	bg_record_free(&old);
	bg_record_free(&neu);
}

/* ---- rounds of compare-and-set ---- */

static void on_cas(struct bg_rconn *c, redisReply *r, void *priv);

/* Edit every pending node from its bytes as last read; send the round.
 * Replies when nothing is pending. */
static void send_round(struct cancel *x, struct bg_job *t)
{
	size_t n = 0;
	int64_t now = bg_now_ms();
	for (size_t i = 0; i < x->n; i++) {
		struct node *nd = &x->nodes[i];
		if (!nd->pending)
			continue;
		struct bg_record r = { 0 };
		nd->cancelling =
			bg_record_read(&r, (struct bg_str){ nd->raw.p,
							    nd->raw.len }) ==
				0 &&
			!bg_status_is_terminal(r.status);
		bg_record_free(&r);
		bg_buf_reset(&nd->next);
		if (bg_post_cancel_edit(&nd->next,
					(struct bg_str){ nd->raw.p,
							 nd->raw.len },
					nd->cancelling, S(x->reason), now)) {
			nd->pending = false; /* not a record: left alone */
			continue;
		}
		n++;
	}
	if (n == 0) {
		finish(x, t, NULL, NULL);
		return;
	}
	if (++x->round > CANCEL_ROUNDS) {
		finish(x, t, "UNAVAILABLE",
		       "cancel_call: the records kept changing; try again");
		return;
	}
	const char **argv = calloc(4 + 3 * n, sizeof(*argv));
	size_t *lens = calloc(4 + 3 * n, sizeof(*lens));
	if (argv == NULL || lens == NULL) {
		free(argv);
		free(lens);
		finish(x, t, "INTERNAL", "out of memory");
		return;
	}
	size_t a = 0;
#define ARG(p, l) (argv[a] = (p), lens[a++] = (l))
	ARG("EVAL", 4);
	ARG(CAS_LUA, strlen(CAS_LUA));
	ARG("1", 1);
	ARG(x->reg_key, strlen(x->reg_key));
	for (size_t i = 0; i < x->n; i++) {
		struct node *nd = &x->nodes[i];
		if (!nd->pending)
			continue;
		ARG(nd->field, strlen(nd->field));
		ARG(nd->raw.p ? nd->raw.p : "", nd->raw.len);
		ARG(nd->next.p, nd->next.len);
	}
#undef ARG
	int rc = bg_rconn_cmd(x->d->ctl, on_cas, x, 0, (int)a, argv, lens);
	free(argv);
	free(lens);
	if (rc)
		finish(x, t, "UNAVAILABLE", "Redis unavailable");
}

static void on_cas(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct cancel *x = priv;
	struct bg_job *t = asker(x);
	size_t k = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		finish(x, t, "UNAVAILABLE", "Redis unavailable");
		return;
	}
	for (size_t i = 0; i < x->n; i++) {
		struct node *nd = &x->nodes[i];
		if (!nd->pending)
			continue;
		const redisReply *e = k < r->elements ? r->element[k] : NULL;
		k++;
		if (e && e->type == REDIS_REPLY_INTEGER) { /* written */
			nd->pending = false;
			count(x, nd);
			if (nd->cancelling) {
				x->cancelled++;
				send_cancel_task(x, nd);
			} else {
				x->finished++;
			}
		} else if (e && e->type == REDIS_REPLY_STRING) { /* changed */
			bg_buf_reset(&nd->raw);
			bg_buf_append(&nd->raw, e->str, e->len);
		} else {
			nd->pending = false; /* gone */
		}
	}
	/* the job may have ended meanwhile: the cancel is still completed */
	send_round(x, t);
}

/* ---- the walk (WIRE 6.10 steps 1-3) ---- */

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* A record of the walk (field and bytes of the HGETALL reply). */
static int add_node(struct cancel *x, const redisReply *field,
		    const redisReply *value)
{
	struct node *nodes = realloc(x->nodes, (x->n + 1) * sizeof(*nodes));
	if (nodes == NULL)
		return -1;
	x->nodes = nodes;
	struct node *nd = &x->nodes[x->n];
	*nd = (struct node){ .pending = true };
	nd->field = strndup(field->str, field->len);
	if (nd->field == NULL ||
	    bg_buf_append(&nd->raw, value->str, value->len) != 0) {
		free(nd->field);
		bg_buf_free(&nd->raw);
		return -1;
	}
	x->n++;
	return 0;
}

static void on_registry(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct cancel *x = priv;
	struct bg_job *t = asker(x);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		finish(x, t, "UNAVAILABLE", "Redis unavailable");
		return;
	}
	size_t n = r->elements / 2;
	json_t **recs = calloc(n + 1, sizeof(*recs));
	bool *seen = calloc(n + 1, sizeof(*seen));
	size_t *queue = calloc(n + 1, sizeof(*queue));
	char want[BG_ID_MAX + 16];
	snprintf(want, sizeof(want), "msg_map:%s", x->target);
	const redisReply *exec = NULL;
	for (size_t i = 0; recs && i < n; i++) {
		const redisReply *f = r->element[2 * i];
		const redisReply *v = r->element[2 * i + 1];
		if (f->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(f->str, want) == 0)
			exec = v;
		else if (strncmp(f->str, "exec:", 5) == 0)
			recs[i] = json_loadb(v->str, v->len, 0, NULL);
		if (recs[i] && !json_is_object(recs[i])) {
			json_decref(recs[i]);
			recs[i] = NULL; /* Python skips what does not decode */
		}
	}
	/* the target: msg_map, then its record; then its sub-tree, each
	 * record visited once (a parent cycle cannot loop) */
	size_t len = 0, root = n;
	for (size_t i = 0; exec && recs && i < n; i++)
		if (recs[i] && r->element[2 * i]->len == exec->len + 5 &&
		    memcmp(r->element[2 * i]->str + 5, exec->str, exec->len) ==
			    0)
			root = i;
	bool ok = recs && seen && queue;
	if (ok && root < n) {
		queue[len++] = root;
		seen[root] = true;
	}
	for (size_t head = 0; ok && head < len; head++) {
		const char *mid = jstr(recs[queue[head]], "message_id");
		for (size_t i = 0; *mid && i < n; i++)
			if (recs[i] && !seen[i] &&
			    strcmp(jstr(recs[i], "parent_message_id"), mid) ==
				    0) {
				seen[i] = true;
				queue[len++] = i;
			}
	}
	for (size_t q = 0; ok && q < len; q++) {
		size_t i = queue[q];
		ok = add_node(x, r->element[2 * i], r->element[2 * i + 1]) == 0;
	}
	for (size_t i = 0; recs && i < n; i++)
		json_decref(recs[i]);
	free(recs);
	free(seen);
	free(queue);
	if (!ok)
		finish(x, t, "INTERNAL", "out of memory");
	else if (root == n) {
		char msg[BG_ID_MAX + 96];
		snprintf(msg, sizeof(msg),
			 "cancel_call: no execution of message %s in this "
			 "session",
			 x->target);
		finish(x, t, "NOT_FOUND", msg);
	} else
		send_round(x, t);
}

void bg_cancel_call(struct bg_daemon *d, struct bg_job *t, const char *id,
		    json_t *args)
{
	const char *mid = bg_arg_name(json_object_get(args, "message_id"));
	json_t *rv = json_object_get(args, "reason");
	json_t *fv = json_object_get(args, "force");
	if (mid == NULL || !*mid || strlen(mid) > BG_ID_MAX ||
	    (rv && !json_is_null(rv) && !json_is_string(rv)) ||
	    (fv && !json_is_boolean(fv))) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "cancel_call needs a message_id (a "
				      "string of 1-512 bytes), force a "
				      "boolean and reason a string");
		return;
	}
	if (strcmp(mid, t->id.message_id) == 0) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT",
				      "cancel_call cannot cancel the calling "
				      "execution: end it with the status "
				      "CANCELLED");
		return;
	}
	struct cancel *x = calloc(1, sizeof(*x));
	if (x == NULL) {
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	x->d = d;
	x->tag = t->tag;
	x->run_id = t->run.run_id;
	x->force = json_is_true(fv);
	snprintf(x->id, sizeof(x->id), "%s", id);
	snprintf(x->target, sizeof(x->target), "%s", mid);
	x->reason = strdup(json_is_string(rv) ? json_string_value(rv) : "");
	x->reg_key = strdup(t->id.reg_key);
	x->session_id = strdup(t->id.session_id);
	x->fallback_trace = strdup(t->id.trace_id);
	x->requested_by = strdup(t->id.agent_type);
	if (x->reason == NULL || x->reg_key == NULL || x->session_id == NULL ||
	    x->fallback_trace == NULL || x->requested_by == NULL ||
	    bg_rconn_cmdv(d->ctl, on_registry, x, 0,
			  (const char *const[]){ "HGETALL", x->reg_key,
						 NULL }) != 0) {
		cancel_free(x);
		bg_outbox_reply_error(d, t, id, "UNAVAILABLE",
				      "Redis unavailable");
	}
}
