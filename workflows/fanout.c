/* workflows/fanout.c - bygate.fanout: one sub-task per input, reports in
 * input order, a deadline after which the stragglers are cancelled
 * (force) and reported "timeout" (issue 13 item 4, hive's spawn and
 * wait_for_worker_reports; docs/workflows.md).
 *
 * Kept in session kv (wf.h):
 *   bygate.wf/<exec>/state    spec summary and each item's status
 *   bygate.wf/<exec>/out/<i>  item i's report body (summary, data)
 * One timer (a posted resume) fires at the deadline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/wf.h"

#define KIND "fanout"
#define MAX_ITEMS 1000
#define MAX_TIMEOUT_S 86400

/* ---- the spec ---- */

static int refuse(struct bg_ctx *ctx, const char *fmt, const char *arg)
{
	char why[512];
	snprintf(why, sizeof(why), fmt, arg);
	return wf_refuse(ctx, why);
}

static bool only_keys(json_t *o, const char **bad)
{
	static const char *const known[] = {
		"agent", "inputs", "count", "content", "timeout_s", "context"
	};
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		size_t i = 0;
		while (i < sizeof(known) / sizeof(*known) &&
		       strcmp(k, known[i]) != 0)
			i++;
		if (i == sizeof(known) / sizeof(*known)) {
			*bad = k;
			return false;
		}
	}
	return true;
}

/* ---- state ---- */

struct fan {
	struct bg_ctx *ctx;
	const char *exec_id;
	json_t *st;    /* {"agent","total","timeout_ms","started_at",
			  "caller","ended","items":[{"s","tag","m","sa",
			  "fa","error"}]} */
	json_t *items; /* borrowed from st */
};

static int save(struct fan *f)
{
	char key[320];
	wf_key(key, sizeof(key), f->exec_id, "state");
	return wf_save(f->ctx, key, f->st);
}

static void out_key(char *key, size_t len, const struct fan *f, size_t i)
{
	char part[64];
	snprintf(part, sizeof(part), "out/%zu", i);
	wf_key(key, len, f->exec_id, part);
}

static const char *item_status(json_t *it)
{
	const char *s = json_string_value(json_object_get(it, "s"));
	return s ? s : "";
}

static void step_item(struct fan *f, size_t i)
{
	json_t *it = json_array_get(f->items, i);
	json_t *ev = json_pack("{s:I,s:s,s:s?,s:s?}", "index", (json_int_t)i,
			       "status", item_status(it), "error",
			       json_string_value(json_object_get(it, "error")),
			       "message_id",
			       json_string_value(json_object_get(it, "m")));
	wf_step(f->ctx, KIND, f->exec_id, ev);
}

static void end_item(struct fan *f, size_t i, const char *status,
		     const char *error)
{
	json_t *it = json_array_get(f->items, i);
	json_object_set_new(it, "s", json_string(status));
	json_object_set_new(it, "fa", json_integer(wf_now_ms()));
	if (error)
		json_object_set_new(it, "error", json_string(error));
	step_item(f, i);
}

static size_t count(const struct fan *f, const char *status)
{
	size_t n = 0, i;
	json_t *it;
	json_array_foreach(f->items, i, it)
		n += strcmp(item_status(it), status) == 0;
	return n;
}

/* ---- the end ---- */

static int finish(struct fan *f)
{
	json_t *reports = json_array();
	size_t i;
	json_t *it;
	json_array_foreach(f->items, i, it) {
		json_t *body = NULL;
		char key[320];
		out_key(key, sizeof(key), f, i);
		if (strcmp(item_status(it), "success") != 0 &&
		    strcmp(item_status(it), "failed") != 0)
			body = NULL;
		else if (wf_load(f->ctx, key, &body) < 0)
			body = NULL;
		json_int_t sa = json_integer_value(json_object_get(it, "sa"));
		json_int_t fa = json_integer_value(json_object_get(it, "fa"));
		json_t *err = json_object_get(it, "error");
		json_array_append_new(
			reports,
			json_pack("{s:I,s:s,s:O?,s:O?,s:O,s:f,s:s?}", "index",
				  (json_int_t)i, "status", item_status(it),
				  "summary",
				  body ? json_object_get(body, "summary")
				       : json_null(),
				  "data",
				  body ? json_object_get(body, "data")
				       : json_null(),
				  "error", err ? err : json_null(),
				  "duration_seconds",
				  fa > sa ? (double)(fa - sa) / 1000.0 : 0.0,
				  "message_id",
				  json_string_value(json_object_get(it, "m"))));
		json_decref(body);
	}
	json_int_t t0 =
		json_integer_value(json_object_get(f->st, "started_at"));
	json_t *result = json_pack(
		"{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "run_id", f->exec_id,
		"total", (json_int_t)json_array_size(f->items), "success",
		(json_int_t)count(f, "success"), "failed",
		(json_int_t)count(f, "failed"), "timeout",
		(json_int_t)count(f, "timeout"), "stopped",
		(json_int_t)count(f, "stopped"), "duration_ms",
		(json_int_t)(wf_now_ms() - t0), "reports", reports);
	if (result == NULL)
		return -ENOMEM;
	json_object_set_new(f->st, "ended", json_true());
	wf_step(f->ctx, KIND, f->exec_id,
		json_pack("{s:s,s:O,s:O,s:O,s:O,s:O,s:O}", "status", "END",
			  "total", json_object_get(result, "total"), "success",
			  json_object_get(result, "success"), "failed",
			  json_object_get(result, "failed"), "timeout",
			  json_object_get(result, "timeout"), "stopped",
			  json_object_get(result, "stopped"), "duration_ms",
			  json_object_get(result, "duration_ms")));
	int rc = save(f);
	if (rc < 0) {
		json_decref(result);
		return rc;
	}
	return wf_end(f->ctx, result, true, NULL,
		      json_string_value(json_object_get(f->st, "caller")));
}

/* Start the queued items, as many as one run's finish holds. */
static int start_queued(struct fan *f)
{
	const char *agent = json_string_value(json_object_get(f->st, "agent"));
	size_t n = json_array_size(f->items), i;
	int started = 0;
	json_t *it;
	json_array_foreach(f->items, i, it) {
		if (strcmp(item_status(it), "queued") != 0)
			continue;
		if (started++ >= WF_MAX_CALLS_PER_RUN)
			return 1; /* more for the next run */
		char tag[96], mid[160], err[512];
		snprintf(tag, sizeof(tag), "%s:%zu", f->exec_id, i);
		json_t *extra = json_pack("{s:I,s:I}", "fanout_index",
					  (json_int_t)i, "fanout_count",
					  (json_int_t)n);
		json_t *context = json_object_get(f->st, "context");
		if (context)
			json_object_set(extra, "context", context);
		json_object_set_new(it, "s", json_string("running"));
		json_object_set_new(it, "tag", json_string(tag));
		json_object_set_new(it, "sa", json_integer(wf_now_ms()));
		int rc = wf_call(f->ctx, agent, json_object_get(it, "c"), extra,
				 NULL, tag, mid, sizeof(mid), err, sizeof(err));
		json_decref(extra);
		json_object_del(it, "c"); /* sent: no longer kept */
		if (rc < 0) {
			end_item(f, i, "failed", err);
			continue;
		}
		json_object_set_new(it, "m", json_string(mid));
		step_item(f, i);
	}
	return 0;
}

static int advance(struct fan *f)
{
	int more = 0;
	if (!json_is_true(json_object_get(f->st, "ended")))
		more = start_queued(f);
	if (count(f, "running") == 0 && count(f, "queued") == 0)
		return finish(f);
	int rc = save(f);
	if (rc == 0 && more)
		rc = wf_continue(f->ctx);
	return rc < 0 ? rc : wf_wait(f->ctx);
}

/* ---- the steps ---- */

static int begin(struct fan *f, const struct bg_task *task)
{
	json_error_t jerr;
	json_t *spec = json_loadb(bg_task_content(task),
				  bg_task_content_len(task),
				  JSON_REJECT_DUPLICATES, &jerr);
	const char *bad = NULL;
	int rc;
	if (!json_is_object(spec)) {
		json_decref(spec);
		return refuse(f->ctx, "fan-out spec is not a JSON object: %s",
			      jerr.text);
	}
	json_t *agent = json_object_get(spec, "agent");
	json_t *inputs = json_object_get(spec, "inputs");
	json_t *cnt = json_object_get(spec, "count");
	json_t *tmo = json_object_get(spec, "timeout_s");
	json_t *context = json_object_get(spec, "context");
	size_t n = 0;
	if (!only_keys(spec, &bad))
		rc = refuse(f->ctx, "fan-out spec: unknown key \"%.128s\"",
			    bad);
	else if (!json_is_string(agent) || json_string_length(agent) == 0 ||
		 json_string_length(agent) > 128)
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "\"agent\" must be an agent type name");
	else if ((inputs != NULL) == (cnt != NULL))
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "give either \"inputs\" (an array) or \"count\"");
	else if (inputs &&
		 (!json_is_array(inputs) || json_array_size(inputs) == 0 ||
		  json_array_size(inputs) > MAX_ITEMS))
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "\"inputs\" must be an array of 1 to 1000 values");
	else if (cnt && (!json_is_integer(cnt) || json_integer_value(cnt) < 1 ||
			 json_integer_value(cnt) > MAX_ITEMS))
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "\"count\" must be an integer from 1 to 1000");
	else if (tmo && (!json_is_number(tmo) || json_number_value(tmo) <= 0 ||
			 json_number_value(tmo) > MAX_TIMEOUT_S))
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "\"timeout_s\" must be a number in (0, 86400]");
	else if (context && !json_is_object(context))
		rc = refuse(f->ctx, "fan-out spec: %s",
			    "\"context\" must be an object");
	else
		rc = 1;
	if (rc != 1) {
		json_decref(spec);
		return rc;
	}
	n = inputs ? json_array_size(inputs) : (size_t)json_integer_value(cnt);
	const char *agent_name = json_string_value(agent);
	/* served somewhere? */
	char *reply = NULL;
	json_t *types = json_pack("[s]", agent_name);
	char *txt = json_dumps(types, JSON_COMPACT);
	json_decref(types);
	rc = txt ? bg_ctx_agent_types_served(f->ctx, txt, &reply) : -ENOMEM;
	free(txt);
	json_t *rep = rc == 0 ? json_loads(reply, 0, NULL) : NULL;
	free(reply);
	bool unserved = json_array_size(json_object_get(rep, "unserved")) > 0;
	json_decref(rep);
	if (unserved) {
		json_decref(spec);
		return refuse(f->ctx,
			      "fan-out: agent type \"%.128s\" is not served by "
			      "any online worker",
			      agent_name);
	}
	int64_t now = wf_now_ms();
	int64_t timeout_ms =
		tmo ? (int64_t)(json_number_value(tmo) * 1000.0 + 0.5) : 0;
	f->st = json_pack("{s:s,s:I,s:I,s:I,s:[]}", "agent", agent_name,
			  "total", (json_int_t)n, "timeout_ms",
			  (json_int_t)timeout_ms, "started_at", (json_int_t)now,
			  "items");
	f->items = json_object_get(f->st, "items");
	char *caller = wf_caller_tag(task);
	if (caller)
		json_object_set_new(f->st, "caller", json_string(caller));
	free(caller);
	wf_step(f->ctx, KIND, f->exec_id,
		json_pack("{s:s,s:I,s:s,s:I}", "status", "START", "total",
			  (json_int_t)n, "agent", agent_name, "timeout_ms",
			  (json_int_t)timeout_ms));
	if (timeout_ms > 0) {
		json_t *c = json_pack("{s:b}", "bygate_wf_deadline", 1);
		char *ctext = json_dumps(c, JSON_COMPACT);
		json_decref(c);
		rc = ctext ? bg_ctx_resume_later(f->ctx, NULL, ctext,
						 timeout_ms, &reply)
			   : -ENOMEM;
		free(ctext);
		free(reply);
		reply = NULL;
		if (rc < 0) {
			json_decref(spec);
			char why[160];
			snprintf(why, sizeof(why),
				 "fan-out: cannot post its deadline (%s)",
				 strerror(-rc));
			return wf_refuse(f->ctx, why);
		}
	}
	if (context)
		json_object_set(f->st, "context", context);
	for (size_t i = 0; i < n; i++) {
		json_t *content = inputs ? json_array_get(inputs, i)
					 : json_object_get(spec, "content");
		json_array_append_new(f->items,
				      json_pack("{s:s,s:O?}", "s", "queued",
						"c", content));
	}
	json_decref(spec);
	return advance(f);
}

static int item_by_tag(const struct fan *f, const char *tag, size_t *idx)
{
	size_t i;
	json_t *it;
	json_array_foreach(f->items, i, it) {
		const char *t = json_string_value(json_object_get(it, "tag"));
		if (t && strcmp(t, tag) == 0) {
			*idx = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int on_callback(struct fan *f, const struct wf_resume *res)
{
	size_t i;
	if (item_by_tag(f, res->tag, &i) < 0 ||
	    strcmp(item_status(json_array_get(f->items, i)), "running") != 0)
		return 0;
	if (!wf_status_terminal(res->status) && res->status[0])
		return 0; /* a callee that suspended: wait for its end */
	json_t *summary = wf_output(res);
	if (!json_is_string(summary) && !json_is_null(summary)) {
		char *t = json_dumps(summary, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(summary);
		summary = t ? json_string(t) : json_null();
		free(t);
	}
	json_t *body = json_pack("{s:o,s:O}", "summary", summary, "data",
				 res->reply_data);
	char key[320];
	out_key(key, sizeof(key), f, i);
	int rc = body ? wf_save(f->ctx, key, body) : -ENOMEM;
	json_decref(body);
	if (rc < 0)
		return rc;
	if (wf_succeeded(res)) {
		end_item(f, i, "success", NULL);
	} else {
		char *e = wf_error(res);
		end_item(f, i,
			 strcasecmp(res->status, "CANCELLED") == 0 ? "stopped"
								   : "failed",
			 e);
		free(e);
	}
	return 0;
}

/* The deadline: every item still running is cancelled (force) and
 * reported "timeout". */
static int on_deadline(struct fan *f)
{
	size_t i;
	json_t *it;
	char why[96];
	snprintf(why, sizeof(why), "no report within %.3f s",
		 (double)json_integer_value(
			 json_object_get(f->st, "timeout_ms")) /
			 1000.0);
	json_array_foreach(f->items, i, it) {
		if (strcmp(item_status(it), "queued") == 0) {
			json_object_del(it, "c");
			end_item(f, i, "timeout", why);
			continue;
		}
		if (strcmp(item_status(it), "running") != 0)
			continue;
		const char *mid = json_string_value(json_object_get(it, "m"));
		char *reply = NULL;
		if (mid)
			bg_ctx_cancel_call(f->ctx, mid, 1, "fan-out deadline",
					   &reply);
		free(reply);
		end_item(f, i, "timeout", why);
	}
	return 0;
}

static int fan_step(void *arg, const struct wf_resume *res)
{
	struct fan *f = arg;
	if (json_is_true(json_object_get(f->st, "ended")))
		return 0; /* a client's RESUME of the ended run: its result
			     again */
	if (res->kind == WF_CALLBACK)
		return on_callback(f, res);
	if (res->kind == WF_POSTED &&
	    json_object_get(res->posted, "bygate_wf_deadline"))
		return on_deadline(f);
	return 0;
}

int wf_fanout_process(const struct bg_task *task, struct bg_ctx *ctx)
{
	struct fan f = { .ctx = ctx,
			 .exec_id = bg_task_get(task, BG_TASK_EXECUTION_ID) };
	char key[320];
	wf_key(key, sizeof(key), f.exec_id, "state");
	int rc = wf_load(ctx, key, &f.st);
	bool ask = strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME") != 0;
	if (ask && rc == 0) { /* a duplicate ASK of the suspended run */
		json_decref(f.st);
		return wf_wait(ctx);
	}
	if (ask) {
		rc = begin(&f, task);
	} else if (rc < 0) {
		return bg_ctx_fail(ctx, "fan-out state unreadable");
	} else {
		f.items = json_object_get(f.st, "items");
		rc = wf_each_resume(task, ctx, fan_step, &f);
		if (rc == 0)
			rc = advance(&f);
	}
	json_decref(f.st);
	return wf_step_failed(ctx, "fan-out", rc);
}
