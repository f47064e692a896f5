/* supervisor/trigger_outbox.c - a trigger's fire under Redis Cluster, sent
 * from its outbox field (trigger_outbox.h). */
#include "supervisor/trigger_outbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "wire/keys.h"

/* KEYS[1] the registry; ARGV 1 the exec field, 2 the record, 3 the msg_map
 * field, 4 the execution id. The record exists: 0 (it may have run
 * already); else written with its msg_map: 1. */
static const char RECORD_LUA[] =
	"if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
	"redis.call('EXPIRE', KEYS[1], 604800)\n"
	"return 1\n";

/* KEYS[1] the stream, KEYS[2] the sent mark, KEYS[3] (optional) the
 * idempotency hash; ARGV 1 the command, 2 message id, 3 session id, 4
 * execution id, 5 now ms, 6 the key's TTL ms, 7 the mark's TTL s. Sent
 * before: {0, entry id} (or {0, ""} when only the key, taken with the
 * entry, says so: the mark expired); the key another message's: {1, its
 * message, session, execution}; else the key taken (as FIRE_LUA takes
 * it), the entry added, the mark written: {0, entry id}. */
static const char SEND_LUA[] =
	"local sent = redis.call('GET', KEYS[2])\n"
	"if sent then return {0, sent} end\n"
	"if KEYS[3] then\n"
	"  local f = redis.call('HMGET', KEYS[3], 'message_id', 'session_id',\n"
	"                       'execution_id')\n"
	"  if f[1] == ARGV[2] then return {0, ''} end\n"
	"  if f[1] then\n"
	"    return {1, f[1], f[2] or '', f[3] or ''}\n"
	"  end\n"
	"end\n"
	"local id = redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])\n"
	"if KEYS[3] then\n"
	"  redis.call('HSET', KEYS[3], 'message_id', ARGV[2], 'session_id',\n"
	"             ARGV[3], 'execution_id', ARGV[4], 'at_ms', ARGV[5])\n"
	"  redis.call('PEXPIRE', KEYS[3], ARGV[6])\n"
	"end\n"
	"redis.call('SET', KEYS[2], id, 'EX', ARGV[7])\n"
	"return {0, id}\n";

/* KEYS[1] the state, KEYS[2] the active runs; ARGV 1 message id, 2 "sent"
 * or "duplicate", 3 now ms, 4 execution id, 5 session id, 6 the active
 * member. Done before (no field): 0; else counted: 1. */
static const char DONE_LUA[] =
	"if redis.call('HDEL', KEYS[1], 'outbox:' .. ARGV[1]) == 0 then\n"
	"  return 0\n"
	"end\n"
	"if ARGV[2] == 'duplicate' then\n"
	"  redis.call('HINCRBY', KEYS[1], 'duplicates', 1)\n"
	"  return 1\n"
	"end\n"
	"redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])\n"
	"redis.call('HINCRBY', KEYS[1], 'fires', 1)\n"
	"redis.call('HSET', KEYS[1], 'last_fire_ms', ARGV[3],\n"
	"           'last_message_id', ARGV[1], 'last_execution_id', ARGV[4],\n"
	"           'last_session_id', ARGV[5], 'last_outcome', 'fired')\n"
	"return 1\n";

/* KEYS[1] the registry; ARGV 1 the exec field, 2 the msg_map field, 3
 * the execution id: a duplicate's record taken back. */
static const char UNDO_LUA[] =
	"if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[3] then\n"
	"  redis.call('HDEL', KEYS[1], ARGV[2])\n"
	"end\n"
	"redis.call('HDEL', KEYS[1], ARGV[1])\n"
	"return 1\n";

/* The sent mark lives this long: far longer than a fire stays unsent. */
#define SENT_MARK_TTL "86400"

enum field {
	F_TRIGGER,
	F_AGENT_TYPE,
	F_REGISTRY,
	F_EXEC_FIELD,
	F_RECORD,
	F_MSG_FIELD,
	F_EXECUTION_ID,
	F_STREAM,
	F_COMMAND,
	F_MESSAGE_ID,
	F_SESSION_ID,
	F_NOW,
	F_TTL,
	F_MEMBER,
	F_IDEM,
	F__COUNT
};

static const char *const names[F__COUNT] = {
	"trigger",    "agent_type",   "registry", "exec_field", "record",
	"msg_field",  "execution_id", "stream",	  "command",	"message_id",
	"session_id", "now",	      "ttl",	  "member",	"idem",
};

struct send {
	struct bg_daemon *d;
	bg_fire_done_fn fn;
	void *priv;
	json_t *o;
	const char *v[F__COUNT]; /* into o */
	char *state, *active, *mark;
	struct bg_fire_result res;
};

static void send_free(struct send *s)
{
	json_decref(s->o);
	free(s->state);
	free(s->active);
	free(s->mark);
	free(s);
}

/* The fire's outcome to its caller; the send is over. */
static void finish(struct send *s)
{
	if (s->res.outcome == BG_FIRE_ERROR)
		bg_warn("trigger %s: the fire of message %s is not sent yet "
			"(%s); it stays in the outbox and the next poll sends "
			"it",
			s->v[F_TRIGGER], s->v[F_MESSAGE_ID], s->res.why);
	if (s->fn)
		s->fn(s->d, &s->res, s->priv);
	send_free(s);
}

static bool failed(struct send *s, const redisReply *r, const char *step)
{
	if (r && r->type != REDIS_REPLY_ERROR)
		return false;
	s->res.outcome = BG_FIRE_ERROR;
	snprintf(s->res.why, sizeof s->res.why, "%s: %s", step,
		 r ? r->str : "the Redis connection was lost");
	finish(s);
	return true;
}

static int eval(struct send *s, const char *script, bg_rconn_reply_fn fn,
		int nkeys, const char *const *args, int nargs)
{
	const char *argv[16];
	char nk[4];
	snprintf(nk, sizeof nk, "%d", nkeys);
	int a = 0;
	argv[a++] = "EVAL";
	argv[a++] = script;
	argv[a++] = nk;
	for (int i = 0; i < nargs && a < 16; i++)
		argv[a++] = args[i];
	size_t lens[16];
	for (int i = 0; i < a; i++)
		lens[i] = strlen(argv[i]);
	return bg_rconn_cmd(s->d->wr, fn, s, 0, a, argv, lens);
}

static void on_done(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct send *s = priv;
	if (failed(s, r, "counting the fire"))
		return;
	finish(s);
}

static void send_done(struct send *s)
{
	bool dup = s->res.outcome == BG_FIRE_DUPLICATE;
	const char *args[] = { s->state,	   s->active,
			       s->v[F_MESSAGE_ID], dup ? "duplicate" : "sent",
			       s->v[F_NOW],	   s->v[F_EXECUTION_ID],
			       s->v[F_SESSION_ID], s->v[F_MEMBER] };
	if (eval(s, DONE_LUA, on_done, 2, args, 8) != 0) {
		s->res.outcome = BG_FIRE_ERROR;
		snprintf(s->res.why, sizeof s->res.why,
			 "counting the fire: no connection");
		finish(s);
	}
}

/* A duplicate's record taken back, then the count: an undo lost leaves
 * the field, and the next poll undoes it again. */
static void on_undone(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct send *s = priv;
	if (failed(s, r, "taking the duplicate's record back"))
		return;
	send_done(s);
}

static void send_undo(struct send *s)
{
	const char *undo[] = { s->v[F_REGISTRY], s->v[F_EXEC_FIELD],
			       s->v[F_MSG_FIELD], s->v[F_EXECUTION_ID] };
	if (eval(s, UNDO_LUA, on_undone, 1, undo, 4) != 0)
		failed(s, NULL, "taking the duplicate's record back");
}

static void copy_elem(char *out, size_t cap, const redisReply *r, size_t i)
{
	out[0] = '\0';
	if (i < r->elements && r->element[i]->type == REDIS_REPLY_STRING)
		snprintf(out, cap, "%.*s", (int)r->element[i]->len,
			 r->element[i]->str);
}

static void on_sent(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct send *s = priv;
	if (failed(s, r, "adding the entry"))
		return;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		s->res.outcome = BG_FIRE_ERROR;
		snprintf(s->res.why, sizeof s->res.why,
			 "adding the entry: unexpected answer");
		finish(s);
		return;
	}
	if (r->element[0]->integer == 1) {
		s->res.outcome = BG_FIRE_DUPLICATE;
		copy_elem(s->res.message_id, sizeof s->res.message_id, r, 1);
		copy_elem(s->res.session_id, sizeof s->res.session_id, r, 2);
		copy_elem(s->res.execution_id, sizeof s->res.execution_id, r,
			  3);
	} else {
		s->res.outcome = BG_FIRE_SENT;
		snprintf(s->res.message_id, sizeof s->res.message_id, "%s",
			 s->v[F_MESSAGE_ID]);
		snprintf(s->res.session_id, sizeof s->res.session_id, "%s",
			 s->v[F_SESSION_ID]);
		snprintf(s->res.execution_id, sizeof s->res.execution_id, "%s",
			 s->v[F_EXECUTION_ID]);
	}
	if (bg_fault_hit("trigger.outbox_sent"))
		_exit(BG_FAULT_EXIT);
	if (s->res.outcome == BG_FIRE_DUPLICATE)
		send_undo(s);
	else
		send_done(s);
}

static void on_record(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct send *s = priv;
	if (failed(s, r, "writing the record"))
		return;
	bool idem = s->v[F_IDEM][0] != '\0';
	const char *args[] = { s->v[F_STREAM],	     s->mark,
			       s->v[F_IDEM],	     s->v[F_COMMAND],
			       s->v[F_MESSAGE_ID],   s->v[F_SESSION_ID],
			       s->v[F_EXECUTION_ID], s->v[F_NOW],
			       s->v[F_TTL],	     SENT_MARK_TTL };
	int rc;
	if (idem) {
		rc = eval(s, SEND_LUA, on_sent, 3, args, 10);
	} else {
		const char *a2[] = { args[0], args[1], args[3],
				     args[4], args[5], args[6],
				     args[7], args[8], args[9] };
		rc = eval(s, SEND_LUA, on_sent, 2, a2, 9);
	}
	if (rc != 0)
		failed(s, NULL, "adding the entry");
}

int bg_trigger_outbox_send(struct bg_daemon *d, const char *json, size_t len,
			   bg_fire_done_fn fn, void *priv)
{
	struct send *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	*s = (struct send){ .d = d, .fn = fn, .priv = priv };
	s->o = json_loadb(json, len, 0, NULL);
	int rc = json_is_object(s->o) ? 0 : -EINVAL;
	for (int i = 0; rc == 0 && i < F__COUNT; i++) {
		s->v[i] = json_string_value(json_object_get(s->o, names[i]));
		if (s->v[i] == NULL || (s->v[i][0] == '\0' && i != F_IDEM))
			rc = -EINVAL;
	}
	if (rc == 0) {
		struct bg_buf mark = { 0 };
		s->state = bg_dkey(d, BG_KEY_TRIGGER, s->v[F_TRIGGER]);
		s->active = bg_dkey(d, BG_KEY_TRIGGER_ACTIVE, s->v[F_TRIGGER]);
		if (bg_key_build(&mark, d->cfg->key_schema, BG_KEY_TRIGGER_SENT,
				 bg_str_c(s->v[F_AGENT_TYPE]),
				 bg_str_c(s->v[F_MESSAGE_ID]),
				 bg_str_c("")) == 0)
			s->mark = mark.p;
		else
			bg_buf_free(&mark);
		if (!s->state || !s->active || !s->mark)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		const char *args[] = { s->v[F_REGISTRY], s->v[F_EXEC_FIELD],
				       s->v[F_RECORD], s->v[F_MSG_FIELD],
				       s->v[F_EXECUTION_ID] };
		rc = eval(s, RECORD_LUA, on_record, 1, args, 5);
	}
	if (rc)
		send_free(s);
	return rc;
}
