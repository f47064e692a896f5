/* client/admin.c - WorkerManager (WIRE 5.5, 5.6) and plugin reload (8.1):
 * the durable admin state, routing-set changes and push commands on a
 * worker's stream, the agent-type denylist, RELOAD_PLUGINS fan-out and the
 * collection of its ACKs. */
#include "client/client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ids.h"
#include "wire/send.h"

static const struct {
	const char *name, *lifecycle, *action;
} ops[] = {
	[BG_ADMIN_SUSPEND] = { "suspend", "suspended", "SUSPEND_WORKER" },
	[BG_ADMIN_RESUME] = { "resume", "active", "RESUME_WORKER" },
	[BG_ADMIN_EVICT] = { "evict", "evicted", "EVICT_WORKER" },
	[BG_ADMIN_ALLOW_REJOIN] = { "allow-rejoin", "", NULL },
};

/* The admin command of worker_manager.py on the worker's stream. */
static int push(struct bg_client *c, enum bg_admin_op op, const char *w,
		const char *reason, bool force, char *entry_id)
{
	char mid[33], trace[33];
	struct bg_send_header h;
	struct bg_buf cmd = { 0 }, key = { 0 };
	int rc = bg_client_admin_header(&h, mid, trace);
	if (rc == 0)
		rc = bg_send_open(&cmd, ops[op].action, &h);
	if (rc == 0 && op == BG_ADMIN_SUSPEND)
		rc = bg_wire_fmt(&cmd, "\"reason\":%s}}", bg_str_c(reason));
	else if (rc == 0 && op == BG_ADMIN_EVICT)
		rc = bg_wire_fmt(&cmd, "\"reason\":%s,\"force\":%b}}",
				 bg_str_c(reason), (int)force);
	else if (rc == 0)
		rc = bg_buf_puts(&cmd, "}}");
	if (rc == 0)
		rc = bg_client_key(c, &key, BG_KEY_WORKER_CTRL, w);
	if (rc == 0)
		rc = bg_client_xadd(c, key.p, cmd.p, entry_id);
	bg_buf_free(&cmd);
	bg_buf_free(&key);
	return rc;
}

/* set_worker_admin_state / clear_worker_admin_state, in one MULTI. */
static int admin_state(struct bg_client *c, enum bg_admin_op op, const char *w,
		       const char *reason)
{
	struct bg_buf key = { 0 }, set = { 0 };
	char now[24];
	redisReply *exec = NULL;
	snprintf(now, sizeof now, "%" PRId64, bg_client_now_ms());
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ADMIN, w);
	if (rc == 0)
		rc = bg_client_key0(c, &set, BG_KEY_ADMIN_WORKERS);
	const char *hset[] = { "HSET",	     key.p,
			       "lifecycle",  ops[op].lifecycle,
			       "reason",     reason,
			       "updated_at", now,
			       NULL };
	const char *sadd[] = { "SADD", set.p, w, NULL };
	const char *del[] = { "DEL", key.p, NULL };
	const char *srem[] = { "SREM", set.p, w, NULL };
	const char *const *put[] = { hset, sadd }, *const * clear[] = { del,
									srem };
	if (rc == 0)
		rc = bg_client_transact(
			c, ops[op].name, 2,
			op == BG_ADMIN_ALLOW_REJOIN ? clear : put, &exec);
	freeReplyObject(exec);
	bg_buf_free(&key);
	bg_buf_free(&set);
	return rc;
}

static int member_op(struct bg_client *c, const char *verb,
		     enum bg_key_kind kind, const char *type, const char *w)
{
	struct bg_buf key = { 0 };
	int rc = bg_client_key(c, &key, kind, type);
	if (rc == 0)
		rc = bg_client_cmd(c, NULL, verb, key.p, w, NULL);
	bg_buf_free(&key);
	return rc;
}

static int is_member(struct bg_client *c, enum bg_key_kind kind, const char *id,
		     const char *member, bool *yes)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	int rc = bg_client_key(c, &key, kind, id);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "SISMEMBER", key.p, member, NULL);
	*yes = rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

/* remove_worker_from_type_members / restore_worker_to_type_members: the
 * declared types whose routing set changed go to `changed`. */
static int routing(struct bg_client *c, const char *w, bool restore,
		   json_t *changed)
{
	struct bg_client_strs types = { 0 };
	struct bg_buf key = { 0 };
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_AGENT_TYPES, w);
	if (rc == 0)
		rc = bg_client_smembers(c, key.p, &types);
	bg_client_strs_sort(&types);
	for (size_t i = 0; rc == 0 && i < types.n; i++) {
		bool denied = false;
		if (!types.v[i][0])
			continue;
		if (restore)
			rc = is_member(c, BG_KEY_AGENT_TYPE_DENIED, types.v[i],
				       w, &denied);
		if (rc == 0 && !denied)
			rc = member_op(c, restore ? "SADD" : "SREM",
				       BG_KEY_AGENT_TYPE_MEMBERS, types.v[i],
				       w);
		if (rc == 0 && !denied)
			json_array_append_new(changed, json_string(types.v[i]));
	}
	bg_client_strs_free(&types);
	bg_buf_free(&key);
	return rc;
}

int bg_client_admin(struct bg_client *c, enum bg_admin_op op,
		    const char *worker_id, const char *reason, bool force,
		    char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	if ((unsigned)op > BG_ADMIN_ALLOW_REJOIN || !worker_id || !worker_id[0])
		return bg_client_fail(c, -EINVAL, "a worker id is required");
	const char *why = op == BG_ADMIN_RESUME || !reason ? "" : reason;
	char entry_id[BG_CLIENT_ENTRY_ID_MAX] = "";
	json_t *changed = json_array();
	int rc = admin_state(c, op, worker_id, why);
	if (rc == 0 && op != BG_ADMIN_ALLOW_REJOIN)
		rc = routing(c, worker_id, op == BG_ADMIN_RESUME, changed);
	if (rc == 0 && op != BG_ADMIN_ALLOW_REJOIN)
		rc = push(c, op, worker_id, why, force, entry_id);
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:o}", "worker_id", worker_id,
		"operation", ops[op].name, "lifecycle",
		ops[op].lifecycle[0] ? ops[op].lifecycle : "active", "reason",
		why, "entry_id", entry_id, "agent_types", changed);
	if (rc == 0 && o)
		*json_out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (rc == 0 && *json_out == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	return rc;
}

int bg_client_deny(struct bg_client *c, const char *agent_type,
		   const char *worker_id)
{
	struct bg_buf denied = { 0 }, members = { 0 };
	redisReply *exec = NULL;
	c->errmsg[0] = '\0';
	int rc =
		bg_client_key(c, &denied, BG_KEY_AGENT_TYPE_DENIED, agent_type);
	if (rc == 0)
		rc = bg_client_key(c, &members, BG_KEY_AGENT_TYPE_MEMBERS,
				   agent_type);
	if (rc == 0 && (!worker_id || !worker_id[0]))
		rc = -EINVAL;
	const char *sadd[] = { "SADD", denied.p, worker_id, NULL };
	const char *srem[] = { "SREM", members.p, worker_id, NULL };
	const char *const *cmds[] = { sadd, srem };
	if (rc == 0)
		rc = bg_client_transact(c, "deny", 2, cmds, &exec);
	else if (rc == -EINVAL)
		bg_client_fail(c, rc,
			       "an agent type and a worker id are "
			       "required");
	freeReplyObject(exec);
	bg_buf_free(&denied);
	bg_buf_free(&members);
	return rc;
}

/* Whether the worker's admin lifecycle is active (no state = active). */
static int lifecycle_active(struct bg_client *c, const char *w, bool *active)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ADMIN, w);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "HGET", key.p, "lifecycle", NULL);
	*active = rc == 0 && (!bg_client_reply_is_str(r) || r->len == 0 ||
			      !strcmp(r->str, "active"));
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

int bg_client_allow(struct bg_client *c, const char *agent_type,
		    const char *worker_id, bool *added)
{
	bool declared = false, active = false;
	c->errmsg[0] = '\0';
	if (added)
		*added = false;
	if (!agent_type || !agent_type[0] || !worker_id || !worker_id[0])
		return bg_client_fail(c, -EINVAL,
				      "an agent type and a worker "
				      "id are required");
	int rc = member_op(c, "SREM", BG_KEY_AGENT_TYPE_DENIED, agent_type,
			   worker_id);
	if (rc == 0)
		rc = is_member(c, BG_KEY_WORKER_AGENT_TYPES, worker_id,
			       agent_type, &declared);
	if (rc == 0 && declared)
		rc = lifecycle_active(c, worker_id, &active);
	if (rc == 0 && declared && active) {
		rc = member_op(c, "SADD", BG_KEY_AGENT_TYPE_MEMBERS, agent_type,
			       worker_id);
		if (added)
			*added = rc == 0;
	}
	return rc;
}

/* ---- is it known? ---------------------------------------------------- */

/* Whether any of the keys `kinds` of id exists (an empty set does not
 * exist in Redis). One EXISTS each: the keys may live in other slots. */
static int any_exists(struct bg_client *c, const enum bg_key_kind *kinds,
		      size_t n, const char *id, bool *found)
{
	int rc = 0;
	*found = false;
	for (size_t i = 0; rc == 0 && !*found && i < n; i++) {
		struct bg_buf key = { 0 };
		redisReply *r = NULL;
		rc = bg_client_key(c, &key, kinds[i], id);
		if (rc == 0)
			rc = bg_client_cmd(c, &r, "EXISTS", key.p, NULL);
		*found = rc == 0 && r->type == REDIS_REPLY_INTEGER &&
			 r->integer > 0;
		freeReplyObject(r);
		bg_buf_free(&key);
	}
	return rc;
}

int bg_client_worker_known(struct bg_client *c, const char *worker_id,
			   bool *known)
{
	static const enum bg_key_kind kinds[] = {
		BG_KEY_WORKER_ONLINE,
		BG_KEY_WORKER_ADMIN,
		BG_KEY_WORKER_AGENT_TYPES,
		BG_KEY_WORKER_STATUS,
	};
	bool found = false;
	struct bg_buf set = { 0 };
	c->errmsg[0] = '\0';
	*known = false;
	if (!worker_id || !worker_id[0])
		return bg_client_fail(c, -EINVAL, "a worker id is required");
	int rc = any_exists(c, kinds, 4, worker_id, &found);
	if (rc == 0 && !found)
		rc = bg_client_key0(c, &set, BG_KEY_KNOWN_WORKERS);
	if (rc == 0 && !found) {
		redisReply *r = NULL;
		rc = bg_client_cmd(c, &r, "SISMEMBER", set.p, worker_id, NULL);
		found = rc == 0 && r->type == REDIS_REPLY_INTEGER &&
			r->integer == 1;
		freeReplyObject(r);
	}
	bg_buf_free(&set);
	*known = rc == 0 && found;
	return rc;
}

/* Whether a known worker declares the type (a suspended worker's types have
 * empty routing sets, which Redis deletes). One SISMEMBER per worker. */
static int declared_by_a_worker(struct bg_client *c, const char *type,
				bool *found)
{
	struct bg_client_strs workers = { 0 };
	struct bg_buf set = { 0 };
	int rc = bg_client_key0(c, &set, BG_KEY_KNOWN_WORKERS);
	if (rc == 0)
		rc = bg_client_smembers(c, set.p, &workers);
	for (size_t i = 0; rc == 0 && !*found && i < workers.n; i++)
		if (workers.v[i][0])
			rc = is_member(c, BG_KEY_WORKER_AGENT_TYPES,
				       workers.v[i], type, found);
	bg_client_strs_free(&workers);
	bg_buf_free(&set);
	return rc;
}

int bg_client_agent_type_known(struct bg_client *c, const char *agent_type,
			       bool *known)
{
	static const enum bg_key_kind kinds[] = {
		BG_KEY_AGENT_TYPE_CTRL,
		BG_KEY_AGENT_TYPE_MEMBERS,
		BG_KEY_AGENT_TYPE_DENIED,
	};
	bool found = false;
	c->errmsg[0] = '\0';
	*known = false;
	if (!agent_type || !agent_type[0])
		return bg_client_fail(c, -EINVAL, "an agent type is required");
	int rc = any_exists(c, kinds, 3, agent_type, &found);
	if (rc == 0 && !found)
		rc = declared_by_a_worker(c, agent_type, &found);
	*known = rc == 0 && found;
	return rc;
}

/* ---- plugin reload (WIRE 8.1) ------------------------------------------- */

static int reload_one(struct bg_client *c, const char *type, const char *w,
		      const char *reload_id, const char *reason)
{
	char mid[BG_ID_CAP("msg-")], trace[33];
	struct bg_buf cmd = { 0 }, session = { 0 }, key = { 0 };
	int rc = bg_id_new(mid, sizeof mid, "msg-");
	if (rc == 0)
		rc = bg_uuid_hex(trace, false);
	if (rc == 0)
		rc = bg_buf_printf(&session, "reload:%s", type);
	struct bg_send_header h = {
		.message_id = bg_str_c(mid),
		.session_id = { session.p, session.len },
		.trace_id = bg_str_c(trace),
		.target_agent_type = bg_str_c(type),
	};
	if (rc == 0)
		rc = bg_send_open(&cmd, "RELOAD_PLUGINS", &h);
	if (rc == 0)
		rc = bg_wire_fmt(&cmd, "\"reload_id\":%s,\"reason\":%s}}",
				 bg_str_c(reload_id), bg_str_c(reason));
	if (rc == 0)
		rc = bg_client_key(c, &key, BG_KEY_WORKER_CTRL, w);
	if (rc == 0)
		rc = bg_client_xadd(c, key.p, cmd.p, NULL);
	bg_buf_free(&cmd);
	bg_buf_free(&session);
	bg_buf_free(&key);
	return rc;
}

int bg_client_reload(struct bg_client *c, const char *agent_type,
		     const char *reason, const char *reload_id, char **json_out)
{
	struct bg_client_strs workers = { 0 };
	char rid[BG_CLIENT_ID_MAX];
	c->errmsg[0] = '\0';
	*json_out = NULL;
	if (!agent_type || !agent_type[0])
		return bg_client_fail(c, -EINVAL, "an agent type is required");
	int rc = reload_id && reload_id[0]
			 ? bg_client_copy_id(rid, sizeof rid, reload_id,
					     strlen(reload_id))
			 : bg_id_new(rid, sizeof rid, "reload-");
	if (rc)
		return bg_client_fail(c, rc, "bad reload id");
	rc = bg_client_online_workers(c, agent_type, &workers);
	json_t *ids = json_array();
	for (size_t i = 0; rc == 0 && i < workers.n; i++) {
		rc = reload_one(c, agent_type, workers.v[i], rid,
				reason ? reason : "");
		json_array_append_new(ids, json_string(workers.v[i]));
	}
	json_t *o = json_pack("{s:s, s:s, s:o, s:i}", "reload_id", rid,
			      "agent_type", agent_type, "worker_ids", ids,
			      "dispatched_count", (int)workers.n);
	if (rc == 0 && o)
		*json_out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	bg_client_strs_free(&workers);
	if (rc == 0 && *json_out == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	return rc;
}

/* The ACK objects of an XREAD reply; last advanced past every entry. */
static int collect(struct bg_client *c, const redisReply *r, char *last,
		   json_t *acks)
{
	const redisReply *entries = bg_client_xread_entries(r);
	if (entries == NULL)
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "XREAD: unexpected "
				      "reply");
	for (size_t i = 0; i < entries->elements; i++) {
		const char *id;
		const redisReply *data;
		if (bg_client_entry(entries->element[i], &id, &data))
			return bg_client_fail(c, BG_CLIENT_EPROTO,
					      "XREAD: malformed entry");
		strcpy(last, id);
		json_t *a = data ? json_loadb(data->str, data->len, 0, NULL)
				 : NULL;
		if (json_is_object(a))
			json_array_append_new(acks, a);
		else
			json_decref(a);
	}
	return 0;
}

int bg_client_reload_acks(struct bg_client *c, const char *reload_id,
			  char *last_id, int block_ms, char **json_out)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	char block[16];
	c->errmsg[0] = '\0';
	*json_out = NULL;
	int rc = bg_client_key(c, &key, BG_KEY_PLUGIN_RELOAD_ACK, reload_id);
	if (rc)
		return bg_client_fail(c, -EINVAL, "a reload id is required");
	snprintf(block, sizeof block, "%d", block_ms);
	bg_client_set_timeout(c, block_ms);
	if (block_ms >= 0)
		rc = bg_client_cmd(c, &r, "XREAD", "COUNT", "100", "BLOCK",
				   block, "STREAMS", key.p, last_id, NULL);
	else
		rc = bg_client_cmd(c, &r, "XREAD", "COUNT", "100", "STREAMS",
				   key.p, last_id, NULL);
	bg_client_set_timeout(c, -1);
	json_t *acks = json_array();
	if (rc == 0)
		rc = collect(c, r, last_id, acks);
	if (rc == 0)
		*json_out = json_dumps(acks, JSON_COMPACT);
	if (rc == 0 && *json_out == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	json_decref(acks);
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}
