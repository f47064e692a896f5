/* client/queues.c - the backlog of every agent type's control stream as
 * Redis itself counts it (XLEN, XINFO GROUPS, XPENDING, XINFO CONSUMERS of
 * the configured consumer group), read without writing anything: what
 * `bygate queues` and `bygate top` show. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The value of the field `name` of an XINFO reply (a flat array of
 * name/value pairs), or NULL. */
static const redisReply *info_field(const redisReply *e, const char *name)
{
	if (e == NULL || e->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t k = 0; k + 1 < e->elements; k += 2)
		if (bg_client_reply_is_str(e->element[k]) &&
		    strcmp(e->element[k]->str, name) == 0)
			return e->element[k + 1];
	return NULL;
}

static json_t *int_or_null(const redisReply *v)
{
	return v && v->type == REDIS_REPLY_INTEGER ? json_integer(v->integer)
						   : json_null();
}

static json_t *str_or_null(const redisReply *v)
{
	return bg_client_reply_is_str(v) ? json_stringn(v->str, v->len)
					 : json_null();
}

/* The millisecond part of a stream id "<ms>-<seq>"; -1 if malformed. */
static int64_t id_ms(const char *s)
{
	char *end;
	long long ms = strtoll(s, &end, 10);
	return end != s && (*end == '-' || *end == '\0') && ms >= 0 ? ms : -1;
}

/* The agent types to show: those every worker the registry knows declares
 * (as `bygate workers` finds them), then those whose control stream exists
 * (SCAN of the agent-type stream keys, streams only: under v1 the keys
 * bygate keeps beside a stream, such as its idempotency claims, match the
 * pattern too). */
static int known_types(struct bg_client *c, struct bg_client_strs *declared,
		       struct bg_client_strs *all)
{
	struct bg_client_strs found = { 0 };
	struct bg_buf key = { 0 };
	int rc = bg_client_declared_types(c, declared);
	if (rc == 0)
		rc = bg_client_key(c, &key, BG_KEY_AGENT_TYPE_CTRL, "*");
	if (rc == 0)
		rc = bg_client_scan_star_type(c, key.p, "stream", &found);
	for (size_t i = 0; rc == 0 && i < declared->n; i++)
		rc = bg_client_strs_add(all, declared->v[i],
					strlen(declared->v[i]));
	for (size_t i = 0; rc == 0 && i < found.n; i++)
		if (found.v[i][0] && !bg_client_strs_has(all, found.v[i]))
			rc = bg_client_strs_add(all, found.v[i],
						strlen(found.v[i]));
	bg_client_strs_sort(all);
	bg_client_strs_free(&found);
	bg_buf_free(&key);
	return rc;
}

/* consumers: XINFO CONSUMERS of the group, each {name, pending, idle_ms,
 * inactive_ms (Redis 7.2; null before)}. */
static int put_consumers(struct bg_client *c, const char *stream, json_t *o)
{
	redisReply *r = NULL;
	json_t *a = json_array();
	json_object_set_new(o, "consumers", a);
	int rc = bg_client_cmd(c, &r, "XINFO", "CONSUMERS", stream,
			       c->cfg.consumer_group, NULL);
	for (size_t i = 0;
	     rc == 0 && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i];
		json_t *k = json_object();
		json_object_set_new(k, "name",
				    str_or_null(info_field(e, "name")));
		json_object_set_new(k, "pending",
				    int_or_null(info_field(e, "pending")));
		json_object_set_new(k, "idle_ms",
				    int_or_null(info_field(e, "idle")));
		json_object_set_new(k, "inactive_ms",
				    int_or_null(info_field(e, "inactive")));
		json_array_append_new(a, k);
	}
	freeReplyObject(r);
	return rc;
}

/* oldest_pending_id and oldest_pending_age_ms: the smallest pending id of
 * the group (XPENDING summary) and now minus its millisecond part, as
 * bygated's bygate_oldest_pending_age_seconds counts it. */
static int put_oldest(struct bg_client *c, const char *stream, int64_t now,
		      json_t *o)
{
	redisReply *r = NULL;
	int rc = bg_client_cmd(c, &r, "XPENDING", stream, c->cfg.consumer_group,
			       NULL);
	json_t *id = json_null(), *age = json_null();
	if (rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
	    bg_client_reply_is_str(r->element[1])) {
		int64_t ms = id_ms(r->element[1]->str);
		id = json_string(r->element[1]->str);
		if (ms >= 0)
			age = json_integer(now > ms ? now - ms : 0);
	}
	json_object_set_new(o, "oldest_pending_id", id);
	json_object_set_new(o, "oldest_pending_age_ms", age);
	freeReplyObject(r);
	return rc;
}

/* The group's line of XINFO GROUPS: pending, lag (Redis 7; null when Redis
 * cannot tell), last-delivered-id, entries-read; *found false when the
 * stream has no such group. */
static int put_group(struct bg_client *c, const char *stream, json_t *o,
		     bool *found)
{
	redisReply *r = NULL;
	const redisReply *g = NULL;
	int rc = bg_client_cmd(c, &r, "XINFO", "GROUPS", stream, NULL);
	for (size_t i = 0; rc == 0 && r->type == REDIS_REPLY_ARRAY &&
			   i < r->elements && g == NULL;
	     i++) {
		const redisReply *n = info_field(r->element[i], "name");
		if (bg_client_reply_is_str(n) &&
		    strcmp(n->str, c->cfg.consumer_group) == 0)
			g = r->element[i];
	}
	*found = g != NULL;
	json_object_set_new(o, "group_exists", json_boolean(g != NULL));
	json_object_set_new(o, "lag", int_or_null(info_field(g, "lag")));
	const redisReply *p = info_field(g, "pending");
	json_object_set_new(o, "pending",
			    json_integer(p && p->type == REDIS_REPLY_INTEGER
						 ? p->integer
						 : 0));
	json_object_set_new(o, "last_delivered_id",
			    str_or_null(info_field(g, "last-delivered-id")));
	json_object_set_new(o, "entries_read",
			    int_or_null(info_field(g, "entries-read")));
	freeReplyObject(r);
	return rc;
}

/* One agent type's object; *skip when its key holds something other than
 * a stream and no worker declares it. */
static int type_json(struct bg_client *c, const char *t, bool declared,
		     int64_t now, json_t **out)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	json_t *o = NULL;
	*out = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_AGENT_TYPE_CTRL, t);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "TYPE", key.p, NULL);
	bool stream = rc == 0 && bg_client_reply_is_str(r) &&
		      strcmp(r->str, "stream") == 0;
	freeReplyObject(r);
	r = NULL;
	if (rc || (!stream && !declared))
		goto out;
	o = json_object();
	json_object_set_new(o, "agent_type", json_string(t));
	json_object_set_new(o, "stream", json_string(key.p));
	json_object_set_new(o, "declared", json_boolean(declared));
	json_object_set_new(o, "exists", json_boolean(stream));
	long long len = 0;
	if (stream) {
		rc = bg_client_cmd(c, &r, "XLEN", key.p, NULL);
		if (rc == 0 && r->type == REDIS_REPLY_INTEGER)
			len = r->integer;
		freeReplyObject(r);
	}
	json_object_set_new(o, "length", json_integer(len));
	bool group = false;
	if (rc == 0 && stream)
		rc = put_group(c, key.p, o, &group);
	else {
		json_object_set_new(o, "group_exists", json_false());
		json_object_set_new(o, "lag", json_null());
		json_object_set_new(o, "pending", json_integer(0));
		json_object_set_new(o, "last_delivered_id", json_null());
		json_object_set_new(o, "entries_read", json_null());
	}
	if (rc == 0 && group)
		rc = put_oldest(c, key.p, now, o);
	else {
		json_object_set_new(o, "oldest_pending_id", json_null());
		json_object_set_new(o, "oldest_pending_age_ms", json_null());
	}
	if (rc == 0 && group)
		rc = put_consumers(c, key.p, o);
	else if (json_object_get(o, "consumers") == NULL)
		json_object_set_new(o, "consumers", json_array());
out:
	bg_buf_free(&key);
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* Redis's clock (TIME) in ms: the age of an id is Redis time minus the
 * time Redis wrote in it. */
static int redis_now(struct bg_client *c, int64_t *now)
{
	redisReply *r = NULL;
	int rc = bg_client_cmd(c, &r, "TIME", NULL);
	if (rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    bg_client_reply_is_str(r->element[0]) &&
	    bg_client_reply_is_str(r->element[1]))
		*now = strtoll(r->element[0]->str, NULL, 10) * 1000 +
		       strtoll(r->element[1]->str, NULL, 10) / 1000;
	else if (rc == 0)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "TIME: unexpected reply");
	freeReplyObject(r);
	return rc;
}

int bg_client_queues(struct bg_client *c, const char *agent_type,
		     char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	struct bg_client_strs declared = { 0 }, all = { 0 };
	int64_t now = 0;
	bool one = agent_type && agent_type[0];
	int rc = redis_now(c, &now);
	if (rc == 0)
		rc = known_types(c, &declared, &all);
	json_t *doc = json_object(), *a = json_array();
	json_object_set_new(doc, "group", json_string(c->cfg.consumer_group));
	json_object_set_new(doc, "now_ms", json_integer(now));
	json_object_set_new(doc, "agent_types", a);
	if (rc == 0 && one && !bg_client_strs_has(&all, agent_type))
		rc = bg_client_fail(c, -ENOENT,
				    "no worker declares agent type %s and it "
				    "has no stream",
				    agent_type);
	for (size_t i = 0; rc == 0 && i < all.n; i++) {
		if (one && strcmp(all.v[i], agent_type))
			continue;
		json_t *o = NULL;
		rc = type_json(c, all.v[i],
			       bg_client_strs_has(&declared, all.v[i]), now,
			       &o);
		if (rc == 0 && o)
			json_array_append_new(a, o);
	}
	bg_client_strs_free(&declared);
	bg_client_strs_free(&all);
	if (rc == 0 && (*json_out = json_dumps(doc, JSON_COMPACT)) == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	json_decref(doc);
	return rc;
}
