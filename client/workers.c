/* client/workers.c - what the dashboard shows of workers (WIRE 5.1-5.9,
 * 9.1): the online lease, declared agent types, admin lifecycle and
 * execution counters of every worker, and a worker's active and recent
 * executions from its snapshot hashes. Output is JSON for the caller. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACTIVE_LIMIT "99"  /* ZREVRANGE 0..99: 100, as Python */
#define HISTORY_LIMIT "19" /* 20 */

static const char *const count_names[] = {
	"total",      "active",	   "queued", "running",
	"cancelling", "completed", "failed", "cancelled",
};

/* Every worker id found under the online-lease SCAN pattern (WIRE 1.2
 * note: "{*}" under v2), appended to out. */
static int scan_leases(struct bg_client *c, struct bg_client_strs *out)
{
	struct bg_buf pat = { 0 };
	int rc = bg_client_key(c, &pat, BG_KEY_WORKER_ONLINE, "*");
	if (rc == 0)
		rc = bg_client_scan_star(c, pat.p, out);
	bg_buf_free(&pat);
	return rc;
}

static int add_set(struct bg_client *c, enum bg_key_kind kind,
		   struct bg_client_strs *out)
{
	struct bg_buf key = { 0 };
	int rc = bg_client_key0(c, &key, kind);
	if (rc == 0)
		rc = bg_client_smembers(c, key.p, out);
	bg_buf_free(&key);
	return rc;
}

int bg_client_worker_ids(struct bg_client *c, struct bg_client_strs *out)
{
	struct bg_client_strs found = { 0 };
	int rc = scan_leases(c, &found);
	if (rc == 0)
		rc = add_set(c, BG_KEY_KNOWN_WORKERS, &found);
	if (rc == 0)
		rc = add_set(c, BG_KEY_ADMIN_WORKERS, &found);
	for (size_t i = 0; rc == 0 && i < found.n; i++)
		if (found.v[i][0] && !bg_client_strs_has(out, found.v[i]))
			rc = bg_client_strs_add(out, found.v[i],
						strlen(found.v[i]));
	bg_client_strs_free(&found);
	bg_client_strs_sort(out);
	return rc;
}

int bg_client_declared_types(struct bg_client *c, struct bg_client_strs *out)
{
	struct bg_client_strs workers = { 0 }, found = { 0 };
	struct bg_buf key = { 0 };
	int rc = bg_client_worker_ids(c, &workers);
	for (size_t i = 0; rc == 0 && i < workers.n; i++) {
		rc = bg_client_key(c, &key, BG_KEY_WORKER_AGENT_TYPES,
				   workers.v[i]);
		if (rc == 0)
			rc = bg_client_smembers(c, key.p, &found);
	}
	for (size_t i = 0; rc == 0 && i < found.n; i++)
		if (found.v[i][0] && !bg_client_strs_has(out, found.v[i]))
			rc = bg_client_strs_add(out, found.v[i],
						strlen(found.v[i]));
	bg_client_strs_free(&workers);
	bg_client_strs_free(&found);
	bg_buf_free(&key);
	return rc;
}

/* HGETALL key as a JSON object of strings (*out NULL on error). */
static int hgetall(struct bg_client *c, const char *key, json_t **out)
{
	redisReply *r;
	*out = NULL;
	int rc = bg_client_cmd(c, &r, "HGETALL", key, NULL);
	if (rc)
		return rc;
	json_t *o = json_object();
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
	     i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		if (bg_client_reply_is_str(k) && bg_client_reply_is_str(v) &&
		    !memchr(k->str, 0, k->len))
			json_object_set_new(o, k->str,
					    json_stringn(v->str, v->len));
	}
	freeReplyObject(r);
	*out = o;
	return 0;
}

/* lease, online, last_seen, ip_address (get_all_workers). */
static int put_lease(struct bg_client *c, const char *w, json_t *o, bool *any)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ONLINE, w);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "GET", key.p, NULL);
	bool present = rc == 0 && bg_client_reply_is_str(r);
	json_t *lease =
		present ? json_loadb(r->str, r->len, JSON_DECODE_ANY, NULL)
			: NULL;
	bool online = present && bg_client_lease_online(r->str, r->len);
	int64_t seen = json_is_object(lease)
			       ? bg_client_jint(lease, "last_seen")
			       : (online ? bg_client_now_ms() : 0);
	json_object_set_new(o, "online", json_boolean(online));
	json_object_set_new(o, "last_seen", json_integer(seen));
	json_object_set_new(o, "ip_address",
			    json_string(bg_client_jstr(lease, "ip_address")));
	if (present && lease == NULL)
		lease = json_stringn(r->str, r->len); /* legacy, not JSON */
	json_object_set_new(o, "lease", lease ? lease : json_null());
	*any |= present;
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

static int put_types(struct bg_client *c, const char *w, json_t *o, bool *any)
{
	struct bg_buf key = { 0 };
	struct bg_client_strs types = { 0 };
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_AGENT_TYPES, w);
	if (rc == 0)
		rc = bg_client_smembers(c, key.p, &types);
	bg_client_strs_sort(&types);
	json_t *a = json_array();
	for (size_t i = 0; i < types.n; i++)
		json_array_append_new(a, json_string(types.v[i]));
	json_object_set_new(o, "agent_types", a);
	*any |= types.n > 0;
	bg_client_strs_free(&types);
	bg_buf_free(&key);
	return rc;
}

static int put_admin(struct bg_client *c, const char *w, json_t *o, bool *any)
{
	struct bg_buf key = { 0 };
	json_t *h = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ADMIN, w);
	if (rc == 0)
		rc = hgetall(c, key.p, &h);
	const char *life = bg_client_jstr(h, "lifecycle");
	json_object_set_new(o, "lifecycle",
			    json_string(life[0] ? life : "active"));
	json_object_set_new(o, "lifecycle_reason",
			    json_string(bg_client_jstr(h, "reason")));
	json_object_set_new(o, "lifecycle_updated_at",
			    json_integer(bg_client_jint(h, "updated_at")));
	*any |= json_object_size(h) > 0;
	json_decref(h);
	bg_buf_free(&key);
	return rc;
}

static int put_counts(struct bg_client *c, const char *w, json_t *o, bool *any)
{
	static const char *const times[] = { "last_updated_at",
					     "last_started_at",
					     "last_finished_at" };
	struct bg_buf key = { 0 }, f = { 0 };
	json_t *h = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_STATUS, w);
	if (rc == 0)
		rc = hgetall(c, key.p, &h);
	json_t *counts = json_object();
	for (size_t i = 0;
	     rc == 0 && i < sizeof count_names / sizeof count_names[0]; i++) {
		bg_buf_reset(&f);
		rc = bg_buf_printf(&f, "%s_count", count_names[i]);
		json_object_set_new(counts, count_names[i],
				    json_integer(bg_client_jint(h, f.p)));
	}
	json_object_set_new(o, "counts", counts);
	for (size_t i = 0; i < 3; i++)
		json_object_set_new(o, times[i],
				    json_integer(bg_client_jint(h, times[i])));
	*any |= json_object_size(h) > 0;
	json_decref(h);
	bg_buf_free(&key);
	bg_buf_free(&f);
	return rc;
}

/* The age of the worker's oldest active execution (its active index,
 * scored by the time of its last status change: for a RUNNING execution,
 * when it started running) and the consumer-group lag (XINFO GROUPS,
 * Redis 7) of each agent type it declares: what shows a stalled worker. */
static int put_health(struct bg_client *c, const char *w, json_t *o)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ACTIVE_INDEX, w);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "ZRANGE", key.p, "0", "0",
				   "WITHSCORES", NULL);
	json_t *age = json_null();
	if (rc == 0 && r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		int64_t ms = bg_client_now_ms() -
			     strtoll(r->element[1]->str, NULL, 10);
		age = json_integer(ms > 0 ? ms : 0);
	}
	json_object_set_new(o, "oldest_active_age_ms", age);
	freeReplyObject(r);
	json_t *lag = json_object();
	json_t *types = json_object_get(o, "agent_types");
	size_t i;
	json_t *t;
	json_array_foreach(types, i, t) {
		if (rc)
			break;
		bg_buf_reset(&key);
		r = NULL;
		rc = bg_client_key(c, &key, BG_KEY_AGENT_TYPE_CTRL,
				   json_string_value(t));
		if (rc == 0)
			rc = bg_client_cmd(c, &r, "XINFO", "GROUPS", key.p,
					   NULL);
		json_t *v = json_null();
		for (size_t g = 0;
		     rc == 0 && r && r->type == REDIS_REPLY_ARRAY &&
		     g < r->elements;
		     g++) {
			const redisReply *e = r->element[g];
			bool ours = false;
			long long n = -1;
			for (size_t k = 0; e->type == REDIS_REPLY_ARRAY &&
					   k + 1 < e->elements;
			     k += 2) {
				const char *f = e->element[k]->str;
				const redisReply *val = e->element[k + 1];
				if (f && !strcmp(f, "name") && val->str)
					ours = !strcmp(val->str,
						       c->cfg.consumer_group);
				else if (f && !strcmp(f, "lag") &&
					 val->type == REDIS_REPLY_INTEGER)
					n = val->integer;
			}
			if (ours && n >= 0)
				v = json_integer(n);
		}
		json_object_set_new(lag, json_string_value(t), v);
		freeReplyObject(r);
		if (rc == BG_CLIENT_EREDIS)
			rc = 0; /* no such stream or group yet: no lag */
	}
	json_object_set_new(o, "lag", lag);
	bg_buf_free(&key);
	return rc;
}

static int worker_json(struct bg_client *c, const char *w, json_t **out,
		       bool *any)
{
	json_t *o = json_object();
	json_object_set_new(o, "worker_id", json_string(w));
	int rc = put_lease(c, w, o, any);
	if (rc == 0)
		rc = put_types(c, w, o, any);
	if (rc == 0)
		rc = put_admin(c, w, o, any);
	if (rc == 0)
		rc = put_counts(c, w, o, any);
	if (rc == 0)
		rc = put_health(c, w, o);
	if (rc) {
		json_decref(o);
		o = NULL;
	}
	*out = o;
	return rc;
}

static int dump(struct bg_client *c, json_t *v, char **json_out)
{
	*json_out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	return *json_out ? 0 : bg_client_fail(c, -ENOMEM, "out of memory");
}

int bg_client_workers(struct bg_client *c, char **json_out)
{
	struct bg_client_strs ids = { 0 };
	c->errmsg[0] = '\0';
	*json_out = NULL;
	int rc = bg_client_worker_ids(c, &ids);
	json_t *a = json_array();
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		json_t *o;
		bool any = false;
		rc = worker_json(c, ids.v[i], &o, &any);
		if (rc == 0)
			json_array_append_new(a, o);
	}
	bg_client_strs_free(&ids);
	if (rc) {
		json_decref(a);
		return rc;
	}
	return dump(c, a, json_out);
}

/* The snapshots of the newest execution ids of an index (ZREVRANGE 0
 * last, then HMGET), decoded; undecodable ones are skipped. */
static int snapshots(struct bg_client *c, const char *w, enum bg_key_kind index,
		     enum bg_key_kind snaps, const char *last, json_t **out)
{
	struct bg_buf ikey = { 0 }, skey = { 0 };
	struct bg_client_strs ids = { 0 };
	redisReply *r = NULL, *m = NULL;
	*out = json_array();
	int rc = bg_client_key(c, &ikey, index, w);
	if (rc == 0)
		rc = bg_client_key(c, &skey, snaps, w);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "ZREVRANGE", ikey.p, "0", last, NULL);
	if (rc == 0)
		rc = bg_client_strs_from_reply(&ids, r);
	if (rc == 0 && ids.n > 0) {
		const char *argv[128];
		size_t n = 0;
		argv[n++] = "HMGET";
		argv[n++] = skey.p;
		for (size_t i = 0; i < ids.n && n < 128; i++)
			argv[n++] = ids.v[i];
		rc = bg_client_command(c, &m, (int)n, argv, NULL);
	}
	for (size_t i = 0;
	     rc == 0 && m && m->type == REDIS_REPLY_ARRAY && i < m->elements;
	     i++) {
		const redisReply *e = m->element[i];
		json_t *s = bg_client_reply_is_str(e)
				    ? json_loadb(e->str, e->len, 0, NULL)
				    : NULL;
		if (json_is_object(s))
			json_array_append_new(*out, s);
		else
			json_decref(s);
	}
	freeReplyObject(r);
	freeReplyObject(m);
	bg_client_strs_free(&ids);
	bg_buf_free(&ikey);
	bg_buf_free(&skey);
	return rc;
}

int bg_client_worker_info(struct bg_client *c, const char *worker_id,
			  char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	if (worker_id == NULL || worker_id[0] == '\0')
		return bg_client_fail(c, -EINVAL, "a worker id is required");
	struct bg_client_strs known = { 0 };
	json_t *o = NULL, *active = NULL, *recent = NULL;
	bool any = false;
	int rc = add_set(c, BG_KEY_KNOWN_WORKERS, &known);
	if (rc == 0)
		rc = worker_json(c, worker_id, &o, &any);
	if (rc == 0)
		rc = snapshots(c, worker_id, BG_KEY_WORKER_ACTIVE_INDEX,
			       BG_KEY_WORKER_ACTIVE_SNAPSHOTS, ACTIVE_LIMIT,
			       &active);
	if (rc == 0)
		rc = snapshots(c, worker_id, BG_KEY_WORKER_EXECUTIONS,
			       BG_KEY_WORKER_HISTORY_SNAPSHOTS, HISTORY_LIMIT,
			       &recent);
	any |= bg_client_strs_has(&known, worker_id) ||
	       json_array_size(recent) > 0;
	bg_client_strs_free(&known);
	if (rc == 0 && !any)
		rc = bg_client_fail(c, -ENOENT,
				    "nothing is known about "
				    "worker %s",
				    worker_id);
	if (rc) {
		json_decref(o);
		json_decref(active);
		json_decref(recent);
		return rc;
	}
	json_object_set_new(o, "active_executions", active);
	json_object_set_new(o, "recent_executions", recent);
	return dump(c, o, json_out);
}
