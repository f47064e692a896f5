/* client/lanes.c - the operator's view of scheduling (docs/scheduling.md
 * "Seeing the lanes"): per agent type, the fleet's ready set (lanes, the
 * entries waiting in each and the age of the oldest, the stride passes)
 * and the fleet-limit places running, in Redis time. Reads only. */
#include "client/client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define PASS_PREFIX "p:" /* the passes hash: p:<lane> -> pass, vtime */

/* The oldest entry of a lane: the smallest stream id among its members. */
struct oldest {
	uint64_t ms, seq;
	bool found;
};

/* Keep the older of o and (ms, seq) in o. */
static void keep_older(struct oldest *o, uint64_t ms, uint64_t seq)
{
	if (!o->found || ms < o->ms || (ms == o->ms && seq < o->seq))
		*o = (struct oldest){ ms, seq, true };
}

/* Redis TIME in unix ms: the clock of the entry ids and of the places'
 * expiry, so the client's own clock never matters. */
static int redis_now_ms(struct bg_client *c, int64_t *now)
{
	redisReply *r;
	int rc = bg_client_cmd(c, &r, "TIME", NULL);
	if (rc)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    !bg_client_reply_is_str(r->element[0]) ||
	    !bg_client_reply_is_str(r->element[1]))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "TIME: unexpected reply");
	else
		*now = strtoll(r->element[0]->str, NULL, 10) * 1000 +
		       strtoll(r->element[1]->str, NULL, 10) / 1000;
	freeReplyObject(r);
	return rc;
}

/* The ready-set key `part` of agent type T (wire/keys.h BG_KEY_READY). */
static int ready_key(struct bg_client *c, struct bg_buf *out, const char *t,
		     const char *part)
{
	struct bg_str none = { NULL, 0 };
	bg_buf_reset(out);
	return bg_key_build(out, c->cfg.key_schema, BG_KEY_READY, bg_str_c(t),
			    bg_str_c(part), none);
}

static int add_unique(struct bg_client_strs *out, const char *s)
{
	if (s[0] == '\0' || bg_client_strs_has(out, s))
		return 0;
	return bg_client_strs_add(out, s, strlen(s));
}

/* The agent types to show: those declared by every worker the registry
 * knows (as `bygate workers` finds them) and those with entries waiting
 * in a ready set (SCAN MATCH on the "lanes" keys): a type whose workers
 * all stopped is gone from the registry while its backlog still waits. */
static int known_types(struct bg_client *c, struct bg_client_strs *out)
{
	struct bg_client_strs found = { 0 };
	struct bg_buf key = { 0 };
	int rc = bg_client_declared_types(c, &found);
	if (rc == 0)
		rc = ready_key(c, &key, "*", "lanes");
	if (rc == 0)
		rc = bg_client_scan_star(c, key.p, &found);
	for (size_t i = 0; rc == 0 && i < found.n; i++)
		rc = add_unique(out, found.v[i]);
	bg_client_strs_sort(out);
	bg_client_strs_free(&found);
	bg_buf_free(&key);
	return rc;
}

/* The places of a fleet running set (BG_KEY_FLEET_*_RUNNING) that expire
 * after now: null for an id with no set (the default lane ""). */
static int fleet_running(struct bg_client *c, enum bg_key_kind kind,
			 const char *id, int64_t now, json_t **out)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	char min[32];
	*out = NULL;
	if (id[0] == '\0') {
		*out = json_null();
		return 0;
	}
	snprintf(min, sizeof min, "(%" PRId64, now);
	int rc = bg_client_key(c, &key, kind, id);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "ZCOUNT", key.p, min, "+inf", NULL);
	if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "ZCOUNT %s: unexpected reply", key.p);
	if (rc == 0)
		*out = json_integer(r->integer);
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

/* A lane member "<ms>-<zero-padded seq>" (supervisor/ready.c); false for
 * anything else. */
static bool parse_member(const redisReply *m, uint64_t *ms, uint64_t *seq)
{
	if (!bg_client_reply_is_str(m) || m->len == 0 || m->len > 64)
		return false;
	char buf[65], *dash, *end;
	memcpy(buf, m->str, m->len);
	buf[m->len] = '\0';
	dash = strchr(buf, '-');
	if (dash == NULL || dash == buf || dash[1] == '\0' ||
	    strspn(buf, "0123456789") != (size_t)(dash - buf) ||
	    strspn(dash + 1, "0123456789") != strlen(dash + 1))
		return false;
	errno = 0;
	*ms = strtoull(buf, &end, 10);
	*seq = strtoull(dash + 1, &end, 10);
	return errno == 0;
}

/* The smallest id among the members of a lane's sorted set. Not the
 * lowest score: the score is the send time minus the priority offset (a
 * RESUME's minus 10^15), so every member is read, with ZSCAN (an entry
 * present throughout is seen even while workers pop others). */
static int oldest_member(struct bg_client *c, const char *key, struct oldest *o)
{
	char cursor[32] = "0";
	int rc;
	do {
		redisReply *r = NULL;
		rc = bg_client_cmd(c, &r, "ZSCAN", key, cursor, "COUNT", "1000",
				   NULL);
		if (rc == 0 &&
		    (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		     !bg_client_reply_is_str(r->element[0]) ||
		     r->element[0]->len >= sizeof cursor ||
		     r->element[1]->type != REDIS_REPLY_ARRAY))
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "ZSCAN %s: unexpected reply", key);
		if (rc == 0) {
			memcpy(cursor, r->element[0]->str, r->element[0]->len);
			cursor[r->element[0]->len] = '\0';
			const redisReply *a = r->element[1];
			for (size_t i = 0; i + 1 < a->elements; i += 2) {
				uint64_t ms, seq;
				if (parse_member(a->element[i], &ms, &seq))
					keep_older(o, ms, seq);
			}
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0"));
	return rc;
}

/* "oldest_entry_id" and "oldest_age_ms" of o into obj (nulls when none). */
static void put_oldest(json_t *obj, const struct oldest *o, int64_t now)
{
	char id[48];
	json_t *eid = json_null(), *age = json_null();
	if (o->found) {
		snprintf(id, sizeof id, "%" PRIu64 "-%" PRIu64, o->ms, o->seq);
		eid = json_string(id);
		int64_t a = now - (int64_t)o->ms;
		age = json_integer(a > 0 ? a : 0);
	}
	json_object_set_new(obj, "oldest_entry_id", eid);
	json_object_set_new(obj, "oldest_age_ms", age);
}

/* A pass as the scripts store it (a Lua number), or null. */
static json_t *pass_value(const json_t *passes, const char *field)
{
	const char *s = json_string_value(json_object_get(passes, field));
	char *end;
	double v = s ? strtod(s, &end) : 0;
	return s && end != s && *end == '\0' ? json_real(v) : json_null();
}

/* The lanes of T: those with entries (the "lanes" set) and every lane
 * with a pass (the passes hash, which keeps lanes that emptied). */
static int lane_names(struct bg_client *c, const char *lanes_key,
		      json_t *passes, struct bg_client_strs *out)
{
	int rc = bg_client_smembers(c, lanes_key, out);
	for (void *it = json_object_iter(passes); rc == 0 && it;
	     it = json_object_iter_next(passes, it)) {
		const char *f = json_object_iter_key(it);
		size_t n = strlen(PASS_PREFIX);
		if (!strncmp(f, PASS_PREFIX, n) &&
		    !bg_client_strs_has(out, f + n))
			rc = bg_client_strs_add(out, f + n, strlen(f + n));
	}
	bg_client_strs_sort(out);
	return rc;
}

/* One lane of T: {"lane", "waiting", "oldest_entry_id", "oldest_age_ms",
 * "pass", "fleet_running"}; o receives its oldest entry. */
static int lane_json(struct bg_client *c, const char *t, const char *lane,
		     const json_t *passes, int64_t now, struct oldest *o,
		     json_t **out)
{
	struct bg_buf key = { 0 }, name = { 0 };
	redisReply *r = NULL;
	json_t *running = NULL, *pass = NULL;
	*o = (struct oldest){ 0 };
	*out = NULL;
	int rc = bg_buf_printf(&name, PASS_PREFIX "%s", lane);
	if (rc == 0) {
		pass = pass_value(passes, name.p);
		bg_buf_reset(&name);
		rc = bg_buf_printf(&name, "lane:%s", lane);
	}
	if (rc == 0)
		rc = ready_key(c, &key, t, name.p);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "ZCARD", key.p, NULL);
	if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "ZCARD %s: unexpected reply", key.p);
	long long waiting = rc == 0 ? r->integer : 0;
	if (rc == 0 && waiting > 0)
		rc = oldest_member(c, key.p, o);
	if (rc == 0)
		rc = fleet_running(c, BG_KEY_FLEET_LANE_RUNNING, lane, now,
				   &running);
	if (rc == 0) {
		json_t *l = json_object();
		json_object_set_new(l, "lane", json_string(lane));
		json_object_set_new(l, "waiting", json_integer(waiting));
		put_oldest(l, o, now);
		json_object_set_new(l, "pass", pass);
		json_object_set_new(l, "fleet_running", running);
		*out = l;
	} else {
		json_decref(pass);
	}
	freeReplyObject(r);
	bg_buf_free(&key);
	bg_buf_free(&name);
	return rc;
}

/* HGETALL of T's passes hash as a JSON object of strings. */
static int passes_of(struct bg_client *c, const char *key, json_t **out)
{
	redisReply *r;
	*out = json_object();
	int rc = bg_client_cmd(c, &r, "HGETALL", key, NULL);
	for (size_t i = 0;
	     rc == 0 && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
	     i += 2) {
		const redisReply *k = r->element[i], *v = r->element[i + 1];
		if (bg_client_reply_is_str(k) && bg_client_reply_is_str(v) &&
		    !memchr(k->str, 0, k->len))
			json_object_set_new(*out, k->str,
					    json_stringn(v->str, v->len));
	}
	if (rc == 0)
		freeReplyObject(r);
	return rc;
}

/* One agent type: {"agent_type", "waiting", "oldest_entry_id",
 * "oldest_age_ms", "vtime", "fleet_running", "lanes": [...]}. */
static int type_json(struct bg_client *c, const char *t, int64_t now,
		     json_t **out)
{
	struct bg_buf key = { 0 };
	struct bg_client_strs lanes = { 0 };
	struct oldest all = { 0 };
	json_t *passes = NULL, *running = NULL, *a = json_array();
	long long waiting = 0;
	int rc = ready_key(c, &key, t, "pass");
	if (rc == 0)
		rc = passes_of(c, key.p, &passes);
	if (rc == 0)
		rc = ready_key(c, &key, t, "lanes");
	if (rc == 0)
		rc = lane_names(c, key.p, passes, &lanes);
	for (size_t i = 0; rc == 0 && i < lanes.n; i++) {
		struct oldest o;
		json_t *l;
		rc = lane_json(c, t, lanes.v[i], passes, now, &o, &l);
		if (rc)
			break;
		waiting += json_integer_value(json_object_get(l, "waiting"));
		if (o.found)
			keep_older(&all, o.ms, o.seq);
		json_array_append_new(a, l);
	}
	if (rc == 0)
		rc = fleet_running(c, BG_KEY_FLEET_TYPE_RUNNING, t, now,
				   &running);
	*out = NULL;
	if (rc == 0) {
		json_t *o = json_object();
		json_object_set_new(o, "agent_type", json_string(t));
		json_object_set_new(o, "waiting", json_integer(waiting));
		put_oldest(o, &all, now);
		json_object_set_new(o, "vtime", pass_value(passes, "vtime"));
		json_object_set_new(o, "fleet_running", running);
		json_object_set_new(o, "lanes", a);
		*out = o;
		a = NULL;
	}
	json_decref(a);
	json_decref(passes);
	bg_client_strs_free(&lanes);
	bg_buf_free(&key);
	return rc;
}

int bg_client_lanes(struct bg_client *c, const char *agent_type,
		    char **json_out)
{
	struct bg_client_strs types = { 0 };
	int64_t now = 0;
	c->errmsg[0] = '\0';
	*json_out = NULL;
	int rc = redis_now_ms(c, &now);
	if (rc == 0)
		rc = agent_type && agent_type[0]
			     ? bg_client_strs_add(&types, agent_type,
						  strlen(agent_type))
			     : known_types(c, &types);
	json_t *a = json_array();
	for (size_t i = 0; rc == 0 && i < types.n; i++) {
		json_t *t;
		rc = type_json(c, types.v[i], now, &t);
		if (rc == 0)
			json_array_append_new(a, t);
	}
	bg_client_strs_free(&types);
	if (rc) {
		json_decref(a);
		return rc;
	}
	json_t *doc = json_object();
	json_object_set_new(doc, "now_ms", json_integer(now));
	json_object_set_new(doc, "agent_types", a);
	*json_out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return *json_out ? 0 : bg_client_fail(c, -ENOMEM, "out of memory");
}
