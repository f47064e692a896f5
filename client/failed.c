/* client/failed.c - failed executions across sessions, found through the
 * index every worker keeps of its executions (WIRE 5.9: a ZSET scored by
 * the last update and a hash of record snapshots), and the retry of one as
 * a new attempt of the same message: its record back to QUEUED and its
 * original ASK_AGENT entry written again, in one script. */
#include "client/client_internal.h"
#include "client/requeue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/idem.h"

#define BATCH 500	    /* ids per ZREVRANGEBYSCORE + HMGET */
#define WORKER_CAP 10000    /* newest executions examined per worker */
#define SEARCH_WINDOW 60000 /* ms around created_at searched for the entry */
#define SEARCH_CAP 20000    /* entries examined in that search */

/* ---- the workers' history index ---------------------------------------- */

typedef int (*snap_cb)(void *arg, json_t *snap);

/* HMGET the snapshots of ids (a ZREVRANGEBYSCORE reply) and hand each
 * decodable one to cb. */
static int snapshots_of(struct bg_client *c, const char *hkey,
			const redisReply *ids, snap_cb cb, void *arg)
{
	const char *argv[BATCH + 2];
	size_t n = 0;
	argv[n++] = "HMGET";
	argv[n++] = hkey;
	for (size_t i = 0; i < ids->elements && n < BATCH + 2; i++)
		if (bg_client_reply_is_str(ids->element[i]))
			argv[n++] = ids->element[i]->str;
	if (n == 2)
		return 0;
	redisReply *m = NULL;
	int rc = bg_client_command(c, &m, (int)n, argv, NULL);
	for (size_t i = 0;
	     rc == 0 && m->type == REDIS_REPLY_ARRAY && i < m->elements; i++) {
		const redisReply *e = m->element[i];
		json_t *s = bg_client_reply_is_str(e)
				    ? json_loadb(e->str, e->len, 0, NULL)
				    : NULL;
		if (json_is_object(s))
			rc = cb(arg, s);
		json_decref(s);
	}
	freeReplyObject(m);
	return rc;
}

/* The workers with a history: those the registry knows, and those whose
 * execution index is still there (7 d) after they left the registry (a
 * bygated that stopped cleanly removes itself from known_workers). */
static int history_workers(struct bg_client *c, struct bg_client_strs *out)
{
	struct bg_client_strs found = { 0 };
	struct bg_buf pat = { 0 };
	int rc = bg_client_worker_ids(c, out);
	if (rc == 0)
		rc = bg_client_key(c, &pat, BG_KEY_WORKER_EXECUTIONS, "*");
	if (rc == 0)
		rc = bg_client_scan_star_type(c, pat.p, "zset", &found);
	for (size_t i = 0; rc == 0 && i < found.n; i++)
		if (found.v[i][0] && !bg_client_strs_has(out, found.v[i]))
			rc = bg_client_strs_add(out, found.v[i],
						strlen(found.v[i]));
	bg_client_strs_free(&found);
	bg_buf_free(&pat);
	return rc;
}

/* Every snapshot of every worker's history updated at or after since_ms,
 * newest first per worker, at most WORKER_CAP per worker; *truncated set
 * when a worker had more. */
static int each_snapshot(struct bg_client *c, long long since_ms, snap_cb cb,
			 void *arg, bool *truncated)
{
	struct bg_client_strs workers = { 0 };
	struct bg_buf zkey = { 0 }, hkey = { 0 };
	char min[32], off[32], count[32];
	snprintf(min, sizeof min, "%lld", since_ms > 0 ? since_ms : 0);
	snprintf(count, sizeof count, "%d", BATCH);
	int rc = history_workers(c, &workers);
	for (size_t w = 0; rc == 0 && w < workers.n; w++) {
		rc = bg_client_key(c, &zkey, BG_KEY_WORKER_EXECUTIONS,
				   workers.v[w]);
		if (rc == 0)
			rc = bg_client_key(c, &hkey,
					   BG_KEY_WORKER_HISTORY_SNAPSHOTS,
					   workers.v[w]);
		for (int done = 0; rc == 0; done += BATCH) {
			if (done >= WORKER_CAP) {
				*truncated = true;
				break;
			}
			redisReply *r = NULL;
			snprintf(off, sizeof off, "%d", done);
			rc = bg_client_cmd(c, &r, "ZREVRANGEBYSCORE", zkey.p,
					   "+inf", min, "LIMIT", off, count,
					   NULL);
			size_t got = rc == 0 && r->type == REDIS_REPLY_ARRAY
					     ? r->elements
					     : 0;
			if (got)
				rc = snapshots_of(c, hkey.p, r, cb, arg);
			freeReplyObject(r);
			if (got < BATCH)
				break;
		}
	}
	bg_client_strs_free(&workers);
	bg_buf_free(&zkey);
	bg_buf_free(&hkey);
	return rc;
}

/* ---- bygate failed ------------------------------------------------------ */

struct failed_scan {
	const struct bg_failed_query *q;
	json_t *by_exec; /* execution id -> the newest snapshot */
};

static int64_t stamp(const json_t *s)
{
	int64_t t = bg_client_jint(s, "finished_at");
	return t > 0 ? t : bg_client_jint(s, "updated_at");
}

static int keep_failed(void *arg, json_t *s)
{
	struct failed_scan *f = arg;
	const char *t = f->q->agent_type;
	if (strcmp(bg_client_jstr(s, "status"), "FAILED") ||
	    (t && t[0] && strcmp(bg_client_jstr(s, "target_agent_type"), t)))
		return 0;
	const char *id = bg_client_jstr(s, "execution_id");
	json_t *had = json_object_get(f->by_exec, id);
	if (id[0] && (had == NULL || bg_client_jint(had, "updated_at") <
					     bg_client_jint(s, "updated_at")))
		json_object_set(f->by_exec, id, s);
	return 0;
}

static int newest_first(const void *a, const void *b)
{
	int64_t x = stamp(*(json_t *const *)a), y = stamp(*(json_t *const *)b);
	return x < y ? 1 : x > y ? -1 : 0;
}

static json_t *failed_row(const json_t *s)
{
	static const char *const keys[] = {
		"message_id", "session_id", "execution_id", "worker_id",
		"status",     "error_code", "error_type",   "error_message",
	};
	json_t *o = json_object();
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		json_object_set_new(o, keys[i],
				    json_string(bg_client_jstr(s, keys[i])));
	json_object_set_new(
		o, "agent_type",
		json_string(bg_client_jstr(s, "target_agent_type")));
	json_object_set_new(o, "finished_at", json_integer(stamp(s)));
	json_object_set_new(o, "updated_at",
			    json_integer(bg_client_jint(s, "updated_at")));
	return o;
}

int bg_client_failed(struct bg_client *c, const struct bg_failed_query *q,
		     char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	int limit = q->limit > 0 ? q->limit : BG_FAILED_DEFAULT_LIMIT;
	if (limit > BG_FAILED_MAX_LIMIT)
		return bg_client_fail(c, -EINVAL, "limit above %d",
				      BG_FAILED_MAX_LIMIT);
	struct failed_scan f = { q, json_object() };
	bool truncated = false;
	int rc = each_snapshot(c, q->since_ms, keep_failed, &f, &truncated);
	size_t n = json_object_size(f.by_exec), k = 0;
	json_t **v = calloc(n ? n : 1, sizeof *v);
	if (rc == 0 && v == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	const char *key;
	json_t *s;
	json_object_foreach(f.by_exec, key, s)
		if (v)
			v[k++] = s;
	json_t *doc = json_object(), *a = json_array();
	if (rc == 0) {
		qsort(v, n, sizeof *v, newest_first);
		for (size_t i = 0; i < n && i < (size_t)limit; i++)
			json_array_append_new(a, failed_row(v[i]));
	}
	json_object_set_new(doc, "executions", a);
	json_object_set_new(doc, "total", json_integer((json_int_t)n));
	json_object_set_new(doc, "truncated", json_boolean(truncated));
	free(v);
	json_decref(f.by_exec);
	if (rc == 0 && (*json_out = json_dumps(doc, JSON_COMPACT)) == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	json_decref(doc);
	return rc;
}

/* ---- bygate retry ------------------------------------------------------- */

struct find_session {
	const char *message_id;
	struct bg_client_strs sessions;
};

static int match_message(void *arg, json_t *s)
{
	struct find_session *f = arg;
	const char *sess = bg_client_jstr(s, "session_id");
	if (strcmp(bg_client_jstr(s, "message_id"), f->message_id) ||
	    !sess[0] || bg_client_strs_has(&f->sessions, sess))
		return 0;
	return bg_client_strs_add(&f->sessions, sess, strlen(sess));
}

/* The session of message_id from the workers' history: -ENOENT when none
 * has it, -EINVAL when several sessions have such a message. */
static int session_of(struct bg_client *c, const char *message_id, char *out,
		      size_t cap)
{
	struct find_session f = { message_id, { 0 } };
	bool truncated = false;
	int rc = each_snapshot(c, 0, match_message, &f, &truncated);
	if (rc == 0 && f.sessions.n == 0)
		rc = bg_client_fail(c, -ENOENT,
				    "no worker's history has message %s%s; "
				    "give its --session",
				    message_id,
				    truncated ? " (history searched in part)"
					      : "");
	else if (rc == 0 && f.sessions.n > 1)
		rc = bg_client_fail(c, -EINVAL,
				    "message %s is in several sessions (%s, "
				    "%s...); give --session",
				    message_id, f.sessions.v[0],
				    f.sessions.v[1]);
	else if (rc == 0)
		rc = bg_client_copy_id(out, cap, f.sessions.v[0],
				       strlen(f.sessions.v[0]));
	bg_client_strs_free(&f.sessions);
	return rc;
}

/* Whether the `data` of a stream entry is the ASK_AGENT of the message. */
static bool is_original(const redisReply *data, const char *session,
			const char *message_id)
{
	json_t *d = json_loadb(data->str, data->len, 0, NULL);
	json_t *h = json_object_get(d, "header");
	bool yes = !strcmp(bg_client_jstr(d, "action_type"), "ASK_AGENT") &&
		   !strcmp(bg_client_jstr(h, "message_id"), message_id) &&
		   !strcmp(bg_client_jstr(h, "session_id"), session);
	json_decref(d);
	return yes;
}

/* The data of the first ASK_AGENT entry of the message on stream between
 * ids from and to (at most SEARCH_CAP entries looked at), copied into
 * *data (malloc) with its entry id; -ENOENT when not found. */
static int find_entry(struct bg_client *c, const char *stream,
		      const char *session, const char *message_id,
		      const char *from, const char *to, char **data,
		      char *entry_id)
{
	char start[BG_CLIENT_ENTRY_ID_MAX + 1];
	snprintf(start, sizeof start, "%s", from);
	for (int seen = 0; seen < SEARCH_CAP;) {
		redisReply *r = NULL;
		int rc = bg_client_cmd(c, &r, "XRANGE", stream, start, to,
				       "COUNT", "500", NULL);
		if (rc)
			return rc == BG_CLIENT_EREDIS ? -ENOENT : rc;
		size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
		for (size_t i = 0; i < n; i++) {
			const char *id;
			const redisReply *d;
			if (bg_client_entry(r->element[i], &id, &d) ||
			    d == NULL || !is_original(d, session, message_id))
				continue;
			*data = strndup(d->str, d->len);
			snprintf(entry_id, BG_CLIENT_ENTRY_ID_MAX, "%s", id);
			freeReplyObject(r);
			return *data ? 0 : -ENOMEM;
		}
		const char *last = NULL;
		const redisReply *d;
		if (n)
			bg_client_entry(r->element[n - 1], &last, &d);
		if (n && last)
			snprintf(start, sizeof start, "(%s", last);
		freeReplyObject(r);
		if (n < 500 || last == NULL)
			break;
		seen += (int)n;
	}
	return -ENOENT;
}

/* The original ASK_AGENT entry of a record: at its redis_message_id when
 * it has one, else searched on its stream (or its agent type's) within
 * SEARCH_WINDOW ms of created_at. *stream_out receives the stream. */
static int original_entry(struct bg_client *c, const json_t *rec,
			  struct bg_buf *stream, char **data, char *entry_id)
{
	const char *sess = bg_client_jstr(rec, "session_id");
	const char *mid = bg_client_jstr(rec, "message_id");
	const char *rid = bg_client_jstr(rec, "redis_message_id");
	const char *sname = bg_client_jstr(rec, "stream_name");
	const char *type = bg_client_jstr(rec, "target_agent_type");
	struct bg_buf typed = { 0 };
	int rc =
		type[0] ? bg_client_key(c, &typed, BG_KEY_AGENT_TYPE_CTRL, type)
			: 0;
	const char *streams[2] = { sname[0] ? sname : NULL,
				   typed.len ? typed.p : NULL };
	if (streams[0] && streams[1] && !strcmp(streams[0], streams[1]))
		streams[1] = NULL;
	int64_t at = bg_client_jint(rec, "created_at");
	char from[32] = "-", to[32] = "+";
	if (at > SEARCH_WINDOW) {
		snprintf(from, sizeof from, "%lld",
			 (long long)(at - SEARCH_WINDOW));
		snprintf(to, sizeof to, "%lld",
			 (long long)(at + SEARCH_WINDOW));
	}
	int found = -ENOENT;
	for (int i = 0; rc == 0 && found == -ENOENT && i < 2; i++) {
		if (streams[i] == NULL)
			continue;
		if (rid[0])
			found = find_entry(c, streams[i], sess, mid, rid, rid,
					   data, entry_id);
		if (found == -ENOENT)
			found = find_entry(c, streams[i], sess, mid, from, to,
					   data, entry_id);
		if (found == 0) {
			bg_buf_reset(stream);
			rc = bg_buf_puts(stream, streams[i]);
		}
	}
	if (rc == 0 && found == -ENOENT)
		rc = bg_client_fail(c, -ENOENT,
				    "the ASK_AGENT entry of message %s is "
				    "no longer on %s",
				    mid,
				    sname[0] ? sname
				    : typed.len
					    ? typed.p
					    : "its stream (the record names "
					      "none)");
	bg_buf_free(&typed);
	return rc ? rc : found;
}

json_t *bg_client_requeued_record(const json_t *old, int64_t now)
{
	static const char *const errs[] = { "error_type", "error_message",
					    "error_code", "failed_stage" };
	json_t *r = json_deep_copy(old);
	json_t *last = json_object();
	for (size_t i = 0; i < 4; i++) {
		json_object_set_new(last, errs[i],
				    json_string(bg_client_jstr(old, errs[i])));
		json_object_set_new(r, errs[i], json_string(""));
	}
	json_object_set_new(last, "finished_at",
			    json_integer(bg_client_jint(old, "finished_at")));
	json_object_set_new(r, "last_error", last);
	json_object_set_new(r, "retryable", json_null());
	json_object_set_new(r, "status", json_string("QUEUED"));
	json_object_set_new(r, "updated_at", json_integer(now));
	json_object_set_new(r, "started_at", json_integer(0));
	json_object_set_new(r, "finished_at", json_integer(0));
	json_object_set_new(r, "cancel_requested", json_false());
	json_object_set_new(r, "cancel_reason", json_string(""));
	json_object_set_new(
		r, "retry_count",
		json_integer(bg_client_jint(old, "retry_count") + 1));
	json_t *tl = json_object_get(r, "timeline");
	if (!json_is_array(tl)) {
		tl = json_array();
		json_object_set_new(r, "timeline", tl);
	}
	json_t *step = json_object();
	json_object_set_new(step, "status", json_string("QUEUED"));
	json_object_set_new(step, "timestamp", json_integer(now));
	json_array_append_new(tl, step);
	return r;
}

int bg_client_idem_hash_of(struct bg_client *c, const json_t *cmd,
			   struct bg_buf *out)
{
	bg_buf_reset(out);
	const json_t *h = json_object_get(cmd, "header");
	const char *type = bg_client_jstr(h, "target_agent_type");
	const json_t *k =
		json_object_get(json_object_get(h, "metadata"), BG_IDEM_META);
	if (!type[0] || !json_is_string(k) ||
	    !bg_idem_key_ok((struct bg_str){ json_string_value(k),
					     json_string_length(k) }))
		return 0;
	int rc = bg_key_build(
		out, c->cfg.key_schema, BG_KEY_IDEMPOTENCY, bg_str_c(type),
		(struct bg_str){ json_string_value(k), json_string_length(k) },
		bg_str_c(""));
	return rc ? bg_client_fail(c, rc, "cannot build the idempotency key")
		  : 0;
}

/* Compare and set: the record is replaced and the entry added only when
 * the record is still exactly the one judged failed, so that of two
 * concurrent retries one runs the task and the other finds it QUEUED.
 * KEYS[3], when given, is the entry's idempotency HASH: still the
 * message's (ARGV[6]), it names the new entry as the one that runs. */
static const char retry_script[] =
	"if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then\n"
	"  return false\n"
	"end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
	"local id = redis.call('XADD', KEYS[2], '*', 'data', ARGV[4])\n"
	"if KEYS[3] and redis.call('HGET', KEYS[3], 'message_id') == ARGV[6] "
	"then\n"
	"  redis.call('HSET', KEYS[3], 'entry', id)\n"
	"end\n"
	"return id\n";

struct retry_try {
	char *raw; /* the record read */
	size_t len;
	json_t *rec;
	json_t *next;
	char *next_raw;
	char *data;
	struct bg_buf stream;
	char entry_id[BG_CLIENT_ENTRY_ID_MAX];
};

static void try_free(struct retry_try *t)
{
	free(t->raw);
	json_decref(t->rec);
	json_decref(t->next);
	free(t->next_raw);
	free(t->data);
	bg_buf_free(&t->stream);
	memset(t, 0, sizeof *t);
}

/* One read, judge and compare-and-set; 1 when the record changed in
 * between (try again). */
static int retry_once(struct bg_client *c, const char *session,
		      const char *message_id, struct retry_try *t, char *new_id)
{
	int rc = bg_client_get_execution(c, session, message_id, &t->raw,
					 &t->len);
	if (rc == -ENOENT)
		return bg_client_fail(c, -ENOENT,
				      "no execution of message %s in "
				      "session %s",
				      message_id, session);
	if (rc)
		return rc;
	t->rec = json_loadb(t->raw, t->len, 0, NULL);
	const char *st = bg_client_jstr(t->rec, "status");
	if (!json_is_object(t->rec))
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "the record of message %s is not a JSON "
				      "object",
				      message_id);
	if (strcmp(st, "FAILED"))
		return bg_client_fail(c, -EPERM,
				      "execution %s of message %s is %s, not "
				      "FAILED: only a failed execution can be "
				      "retried",
				      bg_client_jstr(t->rec, "execution_id"),
				      message_id,
				      st[0] ? st : "without status");
	const char *first = bg_client_jstr(t->rec, "duplicate_of");
	if (first[0])
		return bg_client_fail(c, -EPERM,
				      "message %s is a copy of message %s (the "
				      "same idempotency key): written again it "
				      "would be a copy again; retry %s if it "
				      "failed",
				      message_id, first, first);
	rc = original_entry(c, t->rec, &t->stream, &t->data, t->entry_id);
	if (rc)
		return rc;
	t->next = bg_client_requeued_record(t->rec, bg_client_now_ms());
	t->next_raw = json_dumps(t->next, JSON_COMPACT);
	if (t->next_raw == NULL)
		return bg_client_fail(c, -ENOMEM, "out of memory");
	struct bg_buf key = { 0 }, field = { 0 }, idem = { 0 };
	redisReply *r = NULL;
	rc = bg_client_key(c, &key, BG_KEY_SESSION_REGISTRY, session);
	if (rc == 0)
		rc = bg_buf_printf(&field, "exec:%s",
				   bg_client_jstr(t->rec, "execution_id"));
	json_t *cmd = json_loads(t->data, 0, NULL);
	if (rc == 0)
		rc = bg_client_idem_hash_of(c, cmd, &idem);
	json_decref(cmd);
	const char *argv[] = { idem.len ? "3" : "2",
			       key.p,
			       t->stream.p,
			       idem.len ? idem.p : "",
			       field.p,
			       t->raw,
			       t->next_raw,
			       t->data,
			       BG_CLIENT_SESSION_TTL,
			       message_id };
	size_t lens[] = { 1,
			  key.len,
			  t->stream.len,
			  idem.len,
			  field.len,
			  t->len,
			  strlen(t->next_raw),
			  strlen(t->data),
			  strlen(BG_CLIENT_SESSION_TTL),
			  strlen(message_id) };
	if (rc == 0 && c->cluster) {
		struct bg_client_requeue q = {
			.registry = key.p,
			.field = field.p,
			.old = t->raw,
			.old_len = t->len,
			.next = t->next_raw,
			.stream = t->stream.p,
			.data = t->data,
			.data_len = strlen(t->data),
			.idem = idem.len ? idem.p : NULL,
			.message_id = message_id,
		};
		rc = bg_client_requeue_split(c, &q, new_id,
					     BG_CLIENT_ENTRY_ID_MAX);
		bg_buf_free(&key);
		bg_buf_free(&field);
		bg_buf_free(&idem);
		return rc;
	}
	if (rc == 0 && idem.len) {
		rc = bg_client_eval(c, retry_script, 10, argv, lens, &r);
	} else if (rc == 0) { /* no third key: drop it from the list */
		const char *a2[] = { argv[0], argv[1], argv[2], argv[4],
				     argv[5], argv[6], argv[7], argv[8] };
		size_t l2[] = { lens[0], lens[1], lens[2], lens[4],
				lens[5], lens[6], lens[7], lens[8] };
		rc = bg_client_eval(c, retry_script, 8, a2, l2, &r);
	}
	if (rc == 0 && r->type == REDIS_REPLY_NIL)
		rc = 1;
	else if (rc == 0 && bg_client_reply_is_str(r))
		rc = bg_client_copy_id(new_id, BG_CLIENT_ENTRY_ID_MAX, r->str,
				       r->len);
	else if (rc == 0)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "retry: unexpected reply");
	freeReplyObject(r);
	bg_buf_free(&key);
	bg_buf_free(&field);
	bg_buf_free(&idem);
	return rc;
}

int bg_client_retry(struct bg_client *c, const char *session,
		    const char *message_id, char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	char sess[BG_CLIENT_ID_MAX];
	if (message_id == NULL || message_id[0] == '\0')
		return bg_client_fail(c, -EINVAL, "a message id is required");
	int rc = session && session[0]
			 ? bg_client_copy_id(sess, sizeof sess, session,
					     strlen(session))
			 : session_of(c, message_id, sess, sizeof sess);
	if (rc == -EINVAL && c->errmsg[0] == '\0')
		rc = bg_client_fail(c, -EINVAL, "session id too long");
	struct retry_try t = { 0 };
	char new_id[BG_CLIENT_ENTRY_ID_MAX] = "";
	for (int i = 0; rc == 0 || rc == 1; i++) {
		try_free(&t);
		if (i == 3) {
			rc = bg_client_fail(c, -EAGAIN,
					    "the record of message %s keeps "
					    "changing; not retried",
					    message_id);
			break;
		}
		rc = retry_once(c, sess, message_id, &t, new_id);
		if (rc == 0)
			break;
	}
	if (rc == 0) {
		/* WIRE 5.9, as every record write; the task is queued
		 * whether or not the counters follow */
		(void)bg_client_worker_stats(
			c, t.rec, t.next,
			(struct bg_str){ t.next_raw, strlen(t.next_raw) },
			bg_client_now_ms());
		json_t *o = json_object();
		json_object_set_new(o, "message_id", json_string(message_id));
		json_object_set_new(o, "session_id", json_string(sess));
		json_object_set_new(
			o, "execution_id",
			json_string(bg_client_jstr(t.rec, "execution_id")));
		json_object_set_new(o, "agent_type",
				    json_string(bg_client_jstr(
					    t.rec, "target_agent_type")));
		json_object_set_new(o, "stream", json_string(t.stream.p));
		json_object_set_new(o, "original_entry_id",
				    json_string(t.entry_id));
		json_object_set_new(o, "entry_id", json_string(new_id));
		json_object_set_new(
			o, "retry_count",
			json_integer(bg_client_jint(t.next, "retry_count")));
		json_object_set_new(
			o, "previous_error_code",
			json_string(bg_client_jstr(t.rec, "error_code")));
		*json_out = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (*json_out == NULL)
			rc = bg_client_fail(c, -ENOMEM, "out of memory");
	}
	try_free(&t);
	return rc;
}
