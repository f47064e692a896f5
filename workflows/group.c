/* workflows/group.c - bygate.group: a primer, then followers behind it
 * (issue 13 item 3, acty's groups; docs/workflows.md). The primer runs
 * first; each follower gets the primer's output and the handle the primer
 * returned in its extra_payload, and the followers run in parallel. A
 * failed primer fails the followers with its reason. An open group takes
 * followers until it is closed: a RESUME of the group's message id with
 * {"bygate_group": "add", "followers": [...]} or {"bygate_group":
 * "close"} (`bygate group add|close`), or an ASK_AGENT to bygate.group
 * naming the group, {"group": <id>, "followers": [...]} / {"group": <id>,
 * "close": true}, which posts that RESUME.
 *
 * The calls carry metadata bygate_role "primer" / "follower" and
 * bygate_group, which the scheduler uses to keep a share of the pool for
 * primers (docs/scheduling.md).
 *
 * Kept in session kv (wf.h): bygate.wf/<exec>/state (the members and
 * their statuses), bygate.wf/<exec>/out/primer and out/<i> (outputs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/wf.h"

#define KIND "group"
#define MAX_FOLLOWERS 1000

struct grp {
	struct bg_ctx *ctx;
	const char *exec_id;
	const char *group_id; /* the group's message id */
	json_t *st;
	json_t *primer, *followers; /* borrowed from st */
};

static const char *status_of(json_t *m)
{
	const char *s = json_string_value(json_object_get(m, "s"));
	return s ? s : "";
}

static bool is(json_t *m, const char *s)
{
	return strcmp(status_of(m), s) == 0;
}

static int save(struct grp *g)
{
	char key[320];
	wf_key(key, sizeof(key), g->exec_id, "state");
	return wf_save(g->ctx, key, g->st);
}

static void out_key(char *key, size_t len, const struct grp *g,
		    const char *part)
{
	char p[64];
	snprintf(p, sizeof(p), "out/%s", part);
	wf_key(key, len, g->exec_id, p);
}

static json_t *load_out(struct grp *g, const char *part)
{
	char key[320];
	json_t *v = NULL;
	out_key(key, sizeof(key), g, part);
	return wf_load(g->ctx, key, &v) < 0 ? json_null() : v;
}

/* One step event for member m ("primer" or follower index i). */
static void step(struct grp *g, json_t *m, const char *role, json_int_t i)
{
	json_t *ev = json_pack("{s:s,s:s,s:s,s:s?,s:s?}", "role", role, "agent",
			       json_string_value(json_object_get(m, "agent")),
			       "status", status_of(m), "error",
			       json_string_value(json_object_get(m, "error")),
			       "message_id",
			       json_string_value(json_object_get(m, "m")));
	if (i >= 0)
		json_object_set_new(ev, "index", json_integer(i));
	wf_step(g->ctx, KIND, g->exec_id, ev);
}

/* ---- member specs ---- */

static bool member_ok(json_t *m, char *err, size_t errlen, const char *what)
{
	const char *k;
	json_t *v;
	json_t *a = json_object_get(m, "agent");
	if (!json_is_object(m)) {
		snprintf(err, errlen, "%s is not an object", what);
		return false;
	}
	json_object_foreach(m, k, v) {
		if (strcmp(k, "agent") && strcmp(k, "content") &&
		    strcmp(k, "context")) {
			snprintf(err, errlen, "%s: unknown key \"%.128s\"",
				 what, k);
			return false;
		}
	}
	if (!json_is_string(a) || json_string_length(a) == 0 ||
	    json_string_length(a) > 128) {
		snprintf(err, errlen, "%s: \"agent\" must be an agent type",
			 what);
		return false;
	}
	json_t *c = json_object_get(m, "context");
	if (c && !json_is_object(c)) {
		snprintf(err, errlen, "%s: \"context\" must be an object",
			 what);
		return false;
	}
	return true;
}

static bool followers_ok(json_t *fs, size_t have, char *err, size_t errlen)
{
	if (!json_is_array(fs)) {
		snprintf(err, errlen, "\"followers\" must be an array");
		return false;
	}
	if (have + json_array_size(fs) > MAX_FOLLOWERS) {
		snprintf(err, errlen, "a group has at most %d followers",
			 MAX_FOLLOWERS);
		return false;
	}
	size_t i;
	json_t *m;
	json_array_foreach(fs, i, m) {
		char what[48];
		snprintf(what, sizeof(what), "follower %zu", have + i);
		if (!member_ok(m, err, errlen, what))
			return false;
	}
	return true;
}

/* The first agent type of `members` no online worker serves, or NULL. */
static char *unserved(struct bg_ctx *ctx, json_t *members)
{
	json_t *types = json_array();
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m)
		json_array_append(types, json_object_get(m, "agent"));
	char *txt = json_dumps(types, JSON_COMPACT);
	json_decref(types);
	char *reply = NULL;
	int rc = txt ? bg_ctx_agent_types_served(ctx, txt, &reply) : -ENOMEM;
	free(txt);
	json_t *rep = rc == 0 ? json_loads(reply, 0, NULL) : NULL;
	free(reply);
	const char *a = json_string_value(
		json_array_get(json_object_get(rep, "unserved"), 0));
	char *out = a ? strdup(a) : NULL;
	json_decref(rep);
	return out;
}

/* ---- calls ---- */

static json_t *context_of(struct grp *g, json_t *m)
{
	json_t *top = json_object_get(g->st, "context");
	json_t *own = json_object_get(m, "context");
	if (!top && !own)
		return NULL;
	json_t *c = top ? json_deep_copy(top) : json_object();
	if (own)
		json_object_update(c, own);
	return c;
}

static int call_member(struct grp *g, json_t *m, const char *role,
		       json_t *extra)
{
	char tag[96], mid[160], err[512];
	snprintf(tag, sizeof(tag), "%s:%lld", g->exec_id,
		 (long long)json_integer_value(json_object_get(g->st, "seq")));
	json_object_set_new(
		g->st, "seq",
		json_integer(json_integer_value(json_object_get(g->st, "seq")) +
			     1));
	json_t *ctx = context_of(g, m);
	if (ctx)
		json_object_set_new(extra, "context", ctx);
	json_object_set_new(extra, "group_id", json_string(g->group_id));
	json_t *meta = json_pack("{s:s,s:s}", "bygate_role", role,
				 "bygate_group", g->group_id);
	int rc = wf_call(g->ctx, json_string_value(json_object_get(m, "agent")),
			 json_object_get(m, "content"), extra, meta, tag, mid,
			 sizeof(mid), err, sizeof(err));
	json_decref(meta);
	json_object_set_new(m, "sa", json_integer(wf_now_ms()));
	json_object_set_new(m, "tag", json_string(tag));
	if (rc < 0) {
		json_object_set_new(m, "s", json_string("failed"));
		json_object_set_new(m, "fa", json_integer(wf_now_ms()));
		json_object_set_new(m, "error", json_string(err));
		return 0;
	}
	json_object_set_new(m, "m", json_string(mid));
	json_object_set_new(m, "s", json_string("running"));
	return 0;
}

/* Start follower i behind a DONE primer, or fail it behind a failed one. */
static int start_follower(struct grp *g, size_t i)
{
	json_t *m = json_array_get(g->followers, i);
	if (is(g->primer, "failed")) {
		char why[1200];
		snprintf(why, sizeof(why), "primer failed: %s",
			 json_string_value(json_object_get(g->primer, "error"))
				 ?: "?");
		json_object_set_new(m, "s", json_string("failed"));
		json_object_set_new(m, "fa", json_integer(wf_now_ms()));
		json_object_set_new(m, "error", json_string(why));
	} else {
		json_t *extra = json_pack("{s:o,s:O,s:I}", "_primer",
					  load_out(g, "primer"), "_handle",
					  json_object_get(g->primer, "handle")
						  ?: json_null(),
					  "follower_index", (json_int_t)i);
		int rc = call_member(g, m, "follower", extra);
		json_decref(extra);
		if (rc < 0)
			return rc;
	}
	step(g, m, "follower", (json_int_t)i);
	return 0;
}

/* Followers join the group waiting; advance() starts them behind an
 * ended primer. */
static int add_followers(struct grp *g, json_t *fs)
{
	size_t have = json_array_size(g->followers);
	size_t i;
	json_t *m;
	json_array_foreach(fs, i, m) {
		json_t *c = json_deep_copy(m);
		json_object_set_new(c, "s", json_string("waiting"));
		json_array_append_new(g->followers, c);
		if (is(g->primer, "running"))
			step(g, c, "follower", (json_int_t)(have + i));
	}
	return 0;
}

/* Start (or fail, behind a failed primer) the waiting followers once the
 * primer has ended, as many calls as one run's finish holds. 1 when some
 * are left for the next run. */
static int start_waiting(struct grp *g)
{
	if (is(g->primer, "running"))
		return 0;
	size_t k;
	json_t *f;
	int started = 0;
	json_array_foreach(g->followers, k, f) {
		if (!is(f, "waiting"))
			continue;
		if (started++ >= WF_MAX_CALLS_PER_RUN)
			return 1;
		int rc = start_follower(g, k);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the end ---- */

static bool ended(struct grp *g)
{
	if (!json_is_true(json_object_get(g->st, "closed")) ||
	    is(g->primer, "running"))
		return false;
	size_t i;
	json_t *m;
	json_array_foreach(g->followers, i, m)
		if (is(m, "running") || is(m, "waiting"))
			return false;
	return true;
}

static int finish(struct grp *g)
{
	json_t *fl = json_array();
	size_t i, failed = 0;
	json_t *m;
	json_array_foreach(g->followers, i, m) {
		char part[32];
		snprintf(part, sizeof(part), "%zu", i);
		bool done = is(m, "done");
		failed += !done;
		json_t *sa = json_object_get(m, "sa");
		json_t *fa = json_object_get(m, "fa");
		json_array_append_new(
			fl,
			json_pack("{s:I,s:O,s:s,s:o,s:O,s:O,s:O}", "index",
				  (json_int_t)i, "agent",
				  json_object_get(m, "agent"), "status",
				  status_of(m), "output",
				  done ? load_out(g, part) : json_null(),
				  "error",
				  json_object_get(m, "error") ?: json_null(),
				  "started_at", sa ? sa : json_null(),
				  "finished_at", fa ? fa : json_null()));
	}
	bool primer_ok = is(g->primer, "done");
	json_int_t t0 =
		json_integer_value(json_object_get(g->st, "started_at"));
	json_t *result = json_pack(
		"{s:s,s:s,s:{s:O,s:s,s:o,s:O,s:O},s:o,s:I,s:I,s:I,s:I}",
		"run_id", g->exec_id, "group_id", g->group_id, "primer",
		"agent", json_object_get(g->primer, "agent"), "status",
		status_of(g->primer), "output",
		primer_ok ? load_out(g, "primer") : json_null(), "error",
		json_object_get(g->primer, "error") ?: json_null(), "handle",
		json_object_get(g->primer, "handle") ?: json_null(),
		"followers", fl, "total",
		(json_int_t)json_array_size(g->followers), "done",
		(json_int_t)(json_array_size(g->followers) - failed), "failed",
		(json_int_t)failed, "duration_ms",
		(json_int_t)(wf_now_ms() - t0));
	if (result == NULL)
		return -ENOMEM;
	json_object_set_new(g->st, "ended", json_true());
	wf_step(g->ctx, KIND, g->exec_id,
		json_pack("{s:s,s:s,s:O,s:O,s:O}", "status", "END", "primer",
			  status_of(g->primer), "total",
			  json_object_get(result, "total"), "done",
			  json_object_get(result, "done"), "failed",
			  json_object_get(result, "failed")));
	int rc = save(g);
	if (rc < 0) {
		json_decref(result);
		return rc;
	}
	char why[1300];
	if (!primer_ok)
		snprintf(why, sizeof(why), "primer failed: %s",
			 json_string_value(json_object_get(g->primer, "error"))
				 ?: "?");
	else
		snprintf(why, sizeof(why), "%zu of %zu followers failed",
			 failed, json_array_size(g->followers));
	return wf_end(g->ctx, result, primer_ok && failed == 0, why,
		      json_string_value(json_object_get(g->st, "caller")));
}

static int advance(struct grp *g)
{
	int more = json_is_true(json_object_get(g->st, "ended"))
			   ? 0
			   : start_waiting(g);
	if (more < 0)
		return more;
	if (ended(g))
		return finish(g);
	int rc = save(g);
	if (rc == 0 && more)
		rc = wf_continue(g->ctx);
	return rc < 0 ? rc : wf_wait(g->ctx);
}

/* ---- the steps ---- */

/* An ASK naming an existing group: post its input to the group. */
static int forward(struct grp *g, json_t *spec)
{
	const char *target = json_string_value(json_object_get(spec, "group"));
	json_t *fs = json_object_get(spec, "followers");
	json_t *close = json_object_get(spec, "close");
	char err[512];
	if (target == NULL || !*target)
		return wf_refuse(g->ctx, "\"group\" must name a group id");
	if (fs && !followers_ok(fs, 0, err, sizeof(err)))
		return wf_refuse(g->ctx, err);
	if (!fs && !json_is_true(close))
		return wf_refuse(g->ctx,
				 "give \"followers\" or \"close\": true");
	char add_id[200];
	snprintf(add_id, sizeof(add_id), "ask:%s", g->group_id);
	json_t *post = fs ? json_pack("{s:s,s:s,s:O}", "bygate_group", "add",
				      "add_id", add_id, "followers", fs)
			  : json_pack("{s:s}", "bygate_group", "close");
	char *txt = json_dumps(post, JSON_COMPACT);
	json_decref(post);
	char *reply = NULL;
	int rc = txt ? bg_ctx_resume_later(g->ctx, target, txt, 0, &reply)
		     : -ENOMEM;
	free(txt);
	json_t *rep = reply ? json_loads(reply, 0, NULL) : NULL;
	free(reply);
	const char *e = json_string_value(json_object_get(rep, "error"));
	if (rc < 0 || e) {
		snprintf(err, sizeof(err), "cannot reach group \"%.128s\": %s",
			 target, e ? e : strerror(-rc));
		json_decref(rep);
		return wf_refuse(g->ctx, err);
	}
	json_decref(rep);
	json_t *res = json_pack("{s:s,s:s,s:I}", "status", "POSTED", "group",
				target, "followers",
				(json_int_t)json_array_size(fs));
	return wf_end(g->ctx, res, true, NULL, NULL);
}

static int begin(struct grp *g, const struct bg_task *task)
{
	json_error_t jerr;
	char err[512];
	json_t *spec = json_loadb(bg_task_content(task),
				  bg_task_content_len(task),
				  JSON_REJECT_DUPLICATES, &jerr);
	int rc;
	if (!json_is_object(spec)) {
		snprintf(err, sizeof(err),
			 "group spec is not a JSON object: %s", jerr.text);
		json_decref(spec);
		return wf_refuse(g->ctx, err);
	}
	if (json_object_get(spec, "group") &&
	    !json_object_get(spec, "primer")) {
		rc = forward(g, spec);
		json_decref(spec);
		return rc;
	}
	const char *k;
	json_t *v;
	json_object_foreach(spec, k, v) {
		if (strcmp(k, "primer") && strcmp(k, "followers") &&
		    strcmp(k, "open") && strcmp(k, "context")) {
			snprintf(err, sizeof(err),
				 "group spec: unknown key \"%.128s\"", k);
			json_decref(spec);
			return wf_refuse(g->ctx, err);
		}
	}
	json_t *primer = json_object_get(spec, "primer");
	json_t *fs = json_object_get(spec, "followers");
	json_t *open = json_object_get(spec, "open");
	json_t *context = json_object_get(spec, "context");
	if (!fs)
		fs = json_array();
	else
		json_incref(fs);
	const char *problem = NULL;
	if (!member_ok(primer, err, sizeof(err), "primer") ||
	    !followers_ok(fs, 0, err, sizeof(err)))
		problem = err;
	else if (open && !json_is_boolean(open))
		problem = "\"open\" must be true or false";
	else if (context && !json_is_object(context))
		problem = "\"context\" must be an object";
	if (problem) {
		rc = wf_refuse(g->ctx, problem);
		json_decref(fs);
		json_decref(spec);
		return rc;
	}
	json_t *members = json_array();
	json_array_append(members, primer);
	json_array_extend(members, fs);
	char *a = unserved(g->ctx, members);
	json_decref(members);
	if (a) {
		snprintf(err, sizeof(err),
			 "agent type \"%.128s\" is not served by any online "
			 "worker",
			 a);
		free(a);
		json_decref(fs);
		json_decref(spec);
		return wf_refuse(g->ctx, err);
	}
	g->st = json_pack("{s:s,s:b,s:b,s:I,s:i,s:O,s:[]}", "group_id",
			  g->group_id, "open", json_is_true(open), "closed",
			  !json_is_true(open), "started_at",
			  (json_int_t)wf_now_ms(), "seq", 0, "primer", primer,
			  "followers");
	if (context)
		json_object_set(g->st, "context", context);
	char *caller = wf_caller_tag(task);
	if (caller)
		json_object_set_new(g->st, "caller", json_string(caller));
	free(caller);
	g->primer = json_deep_copy(primer);
	json_object_set_new(g->st, "primer", g->primer);
	g->followers = json_object_get(g->st, "followers");
	wf_step(g->ctx, KIND, g->exec_id,
		json_pack("{s:s,s:s,s:b,s:I}", "status", "START", "group_id",
			  g->group_id, "open", json_is_true(open), "followers",
			  (json_int_t)json_array_size(fs)));
	json_t *extra = json_object();
	rc = call_member(g, g->primer, "primer", extra);
	json_decref(extra);
	step(g, g->primer, "primer", -1);
	if (rc == 0)
		rc = add_followers(g, fs);
	json_decref(fs);
	json_decref(spec);
	return rc < 0 ? rc : advance(g);
}

static json_t *member_by_tag(struct grp *g, const char *tag, json_int_t *idx)
{
	const char *t = json_string_value(json_object_get(g->primer, "tag"));
	if (t && strcmp(t, tag) == 0) {
		*idx = -1;
		return g->primer;
	}
	size_t i;
	json_t *m;
	json_array_foreach(g->followers, i, m) {
		t = json_string_value(json_object_get(m, "tag"));
		if (t && strcmp(t, tag) == 0) {
			*idx = (json_int_t)i;
			return m;
		}
	}
	return NULL;
}

static int on_callback(struct grp *g, const struct wf_resume *res)
{
	json_int_t i;
	json_t *m = member_by_tag(g, res->tag, &i);
	if (m == NULL || !is(m, "running") ||
	    (!wf_status_terminal(res->status) && res->status[0]))
		return 0;
	char part[32];
	snprintf(part, sizeof(part), i < 0 ? "primer" : "%lld", (long long)i);
	json_object_set_new(m, "fa", json_integer(wf_now_ms()));
	if (wf_succeeded(res)) {
		json_t *out = wf_output(res);
		char key[320];
		out_key(key, sizeof(key), g, part);
		int rc = wf_save(g->ctx, key, out);
		json_decref(out);
		if (rc < 0)
			return rc;
		json_object_set_new(m, "s", json_string("done"));
		if (i < 0)
			json_object_set(m, "handle",
					res->extra ? res->extra : json_null());
	} else {
		char *e = wf_error(res);
		json_object_set_new(m, "s", json_string("failed"));
		json_object_set_new(m, "error", json_string(e ? e : "failed"));
		free(e);
	}
	step(g, m, i < 0 ? "primer" : "follower", i);
	return 0; /* advance() starts the followers waiting behind it */
}

/* {"bygate_group": "add", "followers": [...]} or {"bygate_group":
 * "close"}: from a client's RESUME or a posted one. */
static int on_input(struct grp *g, json_t *in)
{
	const char *op = json_string_value(json_object_get(in, "bygate_group"));
	char err[512];
	if (op == NULL)
		return 0;
	if (strcmp(op, "close") == 0) {
		json_object_set_new(g->st, "closed", json_true());
		wf_step(g->ctx, KIND, g->exec_id,
			json_pack("{s:s}", "status", "CLOSED"));
		return 0;
	}
	json_t *fs = json_object_get(in, "followers");
	const char *why = NULL;
	/* an add names itself (add_id): applied once even if its RESUME is
	 * handled twice (a crash between a run that took it and its finish,
	 * docs/workflows.md) */
	const char *add_id = json_string_value(json_object_get(in, "add_id"));
	json_t *seen = json_object_get(g->st, "add_ids");
	if (add_id && json_is_object(seen) && json_object_get(seen, add_id)) {
		wf_step(g->ctx, KIND, g->exec_id,
			json_pack("{s:s,s:s}", "status", "DUPLICATE", "add_id",
				  add_id));
		return 0;
	}
	if (strcmp(op, "add") != 0)
		why = "unknown group operation";
	else if (json_is_true(json_object_get(g->st, "closed")))
		why = "the group is closed";
	else if (!followers_ok(fs, json_array_size(g->followers), err,
			       sizeof(err)))
		why = err;
	if (why) {
		wf_step(g->ctx, KIND, g->exec_id,
			json_pack("{s:s,s:s}", "status", "REFUSED", "error",
				  why));
		return 0;
	}
	char *a = unserved(g->ctx, fs);
	if (a) {
		snprintf(err, sizeof(err),
			 "agent type \"%.128s\" is not served by any online "
			 "worker",
			 a);
		free(a);
		wf_step(g->ctx, KIND, g->exec_id,
			json_pack("{s:s,s:s}", "status", "REFUSED", "error",
				  err));
		return 0;
	}
	if (add_id && strlen(add_id) <= 128) {
		if (!json_is_object(seen)) {
			seen = json_object();
			json_object_set_new(g->st, "add_ids", seen);
		}
		json_object_set_new(seen, add_id, json_true());
	}
	return add_followers(g, fs);
}

/* A RESUME's content: the input object, or its JSON text (a client's
 * `bygate reply --content`). Anything else is not for the group. */
static int on_input_value(struct grp *g, json_t *content)
{
	if (json_is_object(content))
		return on_input(g, content);
	if (!json_is_string(content))
		return 0;
	json_t *v = json_loadb(json_string_value(content),
			       json_string_length(content), 0, NULL);
	int rc = json_is_object(v) ? on_input(g, v) : 0;
	json_decref(v);
	return rc;
}

static int grp_step(void *arg, const struct wf_resume *res)
{
	struct grp *g = arg;
	if (json_is_true(json_object_get(g->st, "ended")))
		return 0; /* a client's RESUME of the ended group */
	if (res->kind == WF_CALLBACK)
		return on_callback(g, res);
	return on_input_value(g, res->content);
}

int wf_group_process(const struct bg_task *task, struct bg_ctx *ctx)
{
	struct grp g = { .ctx = ctx,
			 .exec_id = bg_task_get(task, BG_TASK_EXECUTION_ID),
			 .group_id = bg_task_get(task, BG_TASK_MESSAGE_ID) };
	char key[320];
	wf_key(key, sizeof(key), g.exec_id, "state");
	int rc = wf_load(ctx, key, &g.st);
	bool ask = strcmp(bg_task_get(task, BG_TASK_ACTION), "RESUME") != 0;
	if (ask && rc == 0) { /* a duplicate ASK of the suspended run */
		json_decref(g.st);
		return wf_wait(ctx);
	}
	if (ask) {
		rc = begin(&g, task);
	} else if (rc < 0) {
		return bg_ctx_fail(ctx, "group state unreadable");
	} else {
		g.primer = json_object_get(g.st, "primer");
		g.followers = json_object_get(g.st, "followers");
		rc = wf_each_resume(task, ctx, grp_step, &g);
		if (rc == 0)
			rc = advance(&g);
	}
	json_decref(g.st);
	return wf_step_failed(ctx, "group", rc);
}
