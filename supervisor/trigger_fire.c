/* supervisor/trigger_fire.c - one fire of a trigger (triggers.h): the
 * ASK_AGENT and its QUEUED record are built here, then FIRE_LUA claims the
 * fire and writes both, or writes nothing. There is no moment at which a
 * fire is claimed and not sent, so a bygated killed at any point neither
 * loses nor doubles one: either the script ran (the claim and the entry
 * are in Redis) or it did not (the next poll of any bygated claims it). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/triggers.h"
#include "supervisor/trigger_outbox.h"
#include "supervisor/triggers_int.h"
#include "wire/ids.h"
#include "wire/idem.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/send.h"

#define S(s) bg_str_c(s)

/* KEYS: 1 the trigger's state, 2 its active runs, 3 the session registry,
 * 4 the agent type's control stream, 5 (optional) the idempotency claim.
 * ARGV: 1 mode ("timer", "manual", "hook"), 2 the fire time (timer) or
 * request number (manual), 3 max_running (0 = none), 4 now ms, 5 exec
 * field, 6 the QUEUED record, 7 msg_map field, 8 execution id, 9 the
 * command, 10 the active member, 11 message id, 12 session id, 13 the
 * idempotency TTL ms, 14 fire times missed before this one, 15 "1" to
 * send, "0" to only claim (a timer's late fire under missed = skip), 16
 * "1" under Redis Cluster: only KEYS 1-2 are given (the trigger's slot)
 * and the fire, claimed, is kept in the state as field outbox:<message
 * id> = ARGV[17] for trigger_outbox.c to send. Returns {0, entry id}
 * sent; {1, first message, session, execution} already fired (the ids
 * only for an idempotency key); {2} max_running reached; {3} paused; {4}
 * claimed, not sent (missed); {5} claimed, in the outbox. */
static const char FIRE_LUA[] =
	"local t, mode, n = KEYS[1], ARGV[1], tonumber(ARGV[2]) or 0\n"
	"if mode ~= 'hook' and n <= 0 then\n"
	"  return redis.error_reply('ERR a fire number must be positive')\n"
	"end\n"
	"if mode == 'timer' then\n"
	"  if (tonumber(redis.call('HGET', t, 'claimed_ms') or '') or 0) >= n\n"
	"  then\n"
	"    return {1}\n"
	"  end\n"
	"  redis.call('HSET', t, 'claimed_ms', ARGV[2])\n"
	"  if tonumber(ARGV[14]) > 0 then\n"
	"    redis.call('HINCRBY', t, 'missed', ARGV[14])\n"
	"  end\n"
	"  if ARGV[15] == '0' then\n"
	"    redis.call('HSET', t, 'last_outcome', 'missed')\n"
	"    return {4}\n"
	"  end\n"
	"elseif mode == 'manual' then\n"
	"  if (tonumber(redis.call('HGET', t, 'fire_done') or '') or 0) >= n\n"
	"  then\n"
	"    return {1}\n"
	"  end\n"
	"  redis.call('HSET', t, 'fire_done', ARGV[2])\n"
	"  redis.call('HDEL', t, 'manual:' .. (n - 100))\n"
	"elseif KEYS[5] then\n"
	"  local f = redis.call('HMGET', KEYS[5], 'message_id', 'session_id',\n"
	"                       'execution_id')\n"
	"  if f[1] then\n"
	"    redis.call('HINCRBY', t, 'duplicates', 1)\n"
	"    return {1, f[1], f[2] or '', f[3] or ''}\n"
	"  end\n"
	"end\n"
	"local skip\n"
	"if mode ~= 'manual' and redis.call('HGET', t, 'paused') == '1' then\n"
	"  skip = 'skipped_paused'\n"
	"elseif tonumber(ARGV[3]) > 0 and\n"
	"       redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then\n"
	"  skip = 'skipped_running'\n"
	"end\n"
	"if skip then\n"
	"  redis.call('HINCRBY', t, skip, 1)\n"
	"  redis.call('HSET', t, 'last_outcome', skip)\n"
	"  if mode == 'manual' then\n"
	"    redis.call('HSET', t, 'manual:' .. ARGV[2], skip)\n"
	"  end\n"
	"  if skip == 'skipped_paused' then return {3} end\n"
	"  return {2}\n"
	"end\n"
	"if ARGV[16] == '1' then\n"
	"  redis.call('HSET', t, 'outbox:' .. ARGV[11], ARGV[17])\n"
	"  if mode == 'manual' then\n"
	"    redis.call('HSET', t, 'manual:' .. ARGV[2], 'fired ' .. ARGV[11])\n"
	"  end\n"
	"  return {5}\n"
	"end\n"
	"redis.call('HSET', KEYS[3], ARGV[5], ARGV[6], ARGV[7], ARGV[8])\n"
	"redis.call('EXPIRE', KEYS[3], 604800)\n"
	"local id = redis.call('XADD', KEYS[4], '*', 'data', ARGV[9])\n"
	"redis.call('ZADD', KEYS[2], ARGV[4], ARGV[10])\n"
	"if KEYS[5] then\n"
	"  redis.call('HSET', KEYS[5], 'message_id', ARGV[11], 'session_id',\n"
	"             ARGV[12], 'execution_id', ARGV[8], 'at_ms', ARGV[4])\n"
	"  redis.call('PEXPIRE', KEYS[5], ARGV[13])\n"
	"end\n"
	"redis.call('HINCRBY', t, 'fires', 1)\n"
	"redis.call('HSET', t, 'last_fire_ms', ARGV[4], 'last_message_id',\n"
	"           ARGV[11], 'last_execution_id', ARGV[8], 'last_session_id',\n"
	"           ARGV[12], 'last_outcome', 'fired')\n"
	"if mode == 'manual' then\n"
	"  redis.call('HSET', t, 'manual:' .. ARGV[2], 'fired ' .. ARGV[11])\n"
	"end\n"
	"return {0, id}\n";

#define N_KEYS_MAX 5
#define N_ARGV 17

/* One fire in flight: everything the script needs, owned (a SIGHUP may
 * replace the configuration the request pointed into meanwhile). */
struct fire {
	struct bg_daemon *d;
	bg_fire_done_fn fn;
	void *priv;
	char name[BG_TRIGGER_NAME_MAX + 1];
	bool eval; /* sent as EVAL after a NOSCRIPT */
	int n_keys;
	char *keys[N_KEYS_MAX];
	char mode[8], n[24], max_running[16], now[24], ttl[24], missed[24];
	char send[2], outbox_flag[2];
	char message_id[BG_ID_CAP("msg-")];
	char execution_id[BG_ID_CAP("exec-")];
	char trace_id[33];
	char session_id[256];
	char manual_text[BG_TRIGGER_NAME_MAX + 32];
	struct bg_buf exec_field, msg_field, record, command, member, meta;
	char *outbox; /* the fire for trigger_outbox.c (Cluster), or NULL */
};

static void fire_free(struct fire *f)
{
	for (int i = 0; i < f->n_keys; i++)
		free(f->keys[i]);
	struct bg_buf *bufs[] = { &f->exec_field, &f->msg_field, &f->record,
				  &f->command,	  &f->member,	 &f->meta };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		bg_buf_free(bufs[i]);
	free(f->outbox);
	free(f);
}

static const char *fire_sha(void)
{
	static char hex[41];
	if (hex[0] == '\0' && bg_script_sha1(hex, FIRE_LUA) != 0)
		return NULL;
	return hex;
}

/* The session of a fire: the configured one, else named after the
 * trigger and the fire (its time, its manual request, or a fresh id). */
static int name_session(struct fire *f, const struct bg_trigger_conf *t,
			const struct bg_fire_request *rq)
{
	char rnd[BG_ID_CAP("")];
	if (t->session[0])
		snprintf(f->session_id, sizeof f->session_id, "%s", t->session);
	else if (rq->mode == BG_FIRE_TIMER)
		snprintf(f->session_id, sizeof f->session_id, "trigger-%s-%lld",
			 t->name, (long long)rq->n);
	else if (rq->mode == BG_FIRE_MANUAL)
		snprintf(f->session_id, sizeof f->session_id,
			 "trigger-%s-manual-%lld", t->name, (long long)rq->n);
	else if (bg_id_new(rnd, sizeof rnd, "") == 0)
		snprintf(f->session_id, sizeof f->session_id, "%s-%s-%s",
			 t->kind == BG_TRIGGER_WEBHOOK ? "hook" : "trigger",
			 t->name, rnd);
	else
		return -EIO;
	return 0;
}

/* The configured metadata with what bygate adds: the trigger, the fire
 * time, the idempotency key. */
static int build_meta(struct fire *f, const struct bg_trigger_conf *t,
		      const struct bg_fire_request *rq)
{
	struct bg_wire_splice s = { .cur = S(t->metadata) };
	bg_wire_splice_fmt(&s, "bygate_trigger", "%s", S(t->name));
	if (rq->mode == BG_FIRE_TIMER)
		bg_wire_splice_fmt(&s, "bygate_fire_ms", "%d", rq->n);
	if (rq->idempotency_key.len)
		bg_wire_splice_fmt(&s, BG_IDEM_META, "%s", rq->idempotency_key);
	int rc = s.rc ? s.rc : bg_buf_append(&f->meta, s.cur.p, s.cur.len);
	bg_wire_splice_free(&s);
	return rc;
}

static int build_entry(struct fire *f, const struct bg_trigger_conf *t,
		       const struct bg_fire_request *rq, const char *stream)
{
	struct bg_send_header h = {
		.message_id = S(f->message_id),
		.session_id = S(f->session_id),
		.trace_id = S(f->trace_id),
		.target_agent_type = S(t->agent_type),
		.user_code = S(t->user_code),
		.metadata = { f->meta.p, f->meta.len },
	};
	struct bg_send_body b = {
		.content = rq->content.len ? rq->content : S(t->content),
		.content_is_json = rq->content.len ? rq->content_is_json
						   : t->content_is_json,
		.extra_payload = rq->extra,
	};
	if (b.content.len == 0) { /* a webhook fired by hand */
		snprintf(f->manual_text, sizeof f->manual_text,
			 "manual fire of trigger %s", t->name);
		b.content = S(f->manual_text);
	}
	int rc = bg_send_ask(&f->command, &h, &b);
	struct bg_record_queued q = {
		.execution_id = S(f->execution_id),
		.message_id = S(f->message_id),
		.session_id = S(f->session_id),
		.trace_id = S(f->trace_id),
		.source_agent_type = BG_STR_LIT("client"),
		.target_agent_type = S(t->agent_type),
		.stream_name = S(stream),
		.now_ms = bg_redis_now_ms(f->d),
	};
	if (rc == 0)
		rc = bg_record_build_queued(&f->record, &q);
	if (rc == 0)
		rc = bg_buf_printf(&f->exec_field, "exec:%s", f->execution_id);
	if (rc == 0)
		rc = bg_buf_printf(&f->msg_field, "msg_map:%s", f->message_id);
	if (rc == 0)
		rc = bg_buf_printf(&f->member, "%s\t%s", f->session_id,
				   f->execution_id);
	return rc;
}

static int build_keys(struct fire *f, const struct bg_trigger_conf *t,
		      const struct bg_fire_request *rq)
{
	struct bg_daemon *d = f->d;
	f->keys[0] = bg_dkey(d, BG_KEY_TRIGGER, t->name);
	f->keys[1] = bg_dkey(d, BG_KEY_TRIGGER_ACTIVE, t->name);
	f->keys[2] = bg_dkey(d, BG_KEY_SESSION_REGISTRY, f->session_id);
	f->keys[3] = bg_dkey(d, BG_KEY_AGENT_TYPE_CTRL, t->agent_type);
	f->n_keys = 4;
	if (rq->idempotency_key.len) {
		struct bg_buf k = { 0 };
		int rc = bg_key_build(&k, d->cfg->key_schema,
				      BG_KEY_IDEMPOTENCY, S(t->agent_type),
				      rq->idempotency_key, S(""));
		f->keys[f->n_keys++] = rc == 0 ? k.p : NULL;
		if (rc)
			bg_buf_free(&k);
	}
	for (int i = 0; i < f->n_keys; i++)
		if (f->keys[i] == NULL)
			return -ENOMEM;
	return 0;
}

/* Under Redis Cluster: what trigger_outbox.c needs to send the fire once
 * claimed (trigger_outbox.h). */
static int build_outbox(struct fire *f, const struct bg_trigger_conf *t)
{
	json_t *o = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
		"s:s, s:s, s:s}",
		"trigger", t->name, "agent_type", t->agent_type, "registry",
		f->keys[2], "exec_field", f->exec_field.p, "record",
		f->record.p, "msg_field", f->msg_field.p, "execution_id",
		f->execution_id, "stream", f->keys[3], "command", f->command.p,
		"message_id", f->message_id, "session_id", f->session_id, "now",
		f->now, "ttl", f->ttl, "member", f->member.p, "idem",
		f->n_keys > 4 ? f->keys[4] : "");
	f->outbox = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return f->outbox ? 0 : -ENOMEM;
}

static void on_fired(struct bg_rconn *c, redisReply *r, void *priv);

static int send_fire(struct fire *f)
{
	const char *sha = f->eval ? NULL : fire_sha();
	/* under Cluster the script sees the trigger's keys alone */
	int n_keys = f->outbox ? 2 : f->n_keys;
	char nk[4];
	snprintf(nk, sizeof nk, "%d", n_keys);
	const char *argv[3 + N_KEYS_MAX + N_ARGV];
	size_t lens[3 + N_KEYS_MAX + N_ARGV];
	int a = 0;
	argv[a++] = sha ? "EVALSHA" : "EVAL";
	argv[a++] = sha ? sha : FIRE_LUA;
	argv[a++] = nk;
	for (int i = 0; i < n_keys; i++)
		argv[a++] = f->keys[i];
	const char *args[N_ARGV] = {
		f->mode,
		f->n,
		f->max_running,
		f->now,
		f->exec_field.p,
		f->record.p,
		f->msg_field.p,
		f->execution_id,
		f->command.p,
		f->member.p,
		f->message_id,
		f->session_id,
		f->ttl,
		f->missed,
		f->send,
		f->outbox_flag,
		f->outbox ? f->outbox : "",
	};
	for (int i = 0; i < N_ARGV; i++)
		argv[a++] = args[i];
	for (int i = 0; i < a; i++)
		lens[i] = strlen(argv[i]);
	return bg_rconn_cmd(f->d->wr, on_fired, f, 0, a, argv, lens);
}

void bg_trigger_warn(struct tstate *st, const char *fmt, ...)
{
	int64_t now = bg_mono_ms();
	if (st->warned_at && now - st->warned_at < 60000) {
		st->unlogged++;
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (st->unlogged)
		bg_warn("trigger %s: %s (%llu more warnings in the last "
			"minute not logged)",
			st->name, msg, (unsigned long long)st->unlogged);
	else
		bg_warn("trigger %s: %s", st->name, msg);
	st->warned_at = now;
	st->unlogged = 0;
}

struct bg_trigger_counts *bg_trigger_counts(struct bg_daemon *d,
					    const char *name)
{
	static struct bg_trigger_counts unknown; /* written, never read */
	struct tstate *st = bg_trigger_state(d->triggers, name);
	return st ? &st->counts : &unknown;
}

static void done(struct fire *f, struct bg_fire_result *res)
{
	struct bg_trigger_counts *k = bg_trigger_counts(f->d, f->name);
	switch (res->outcome) {
	case BG_FIRE_SENT:
		k->fired++;
		bg_info("trigger %s: fired message %s (session %s)", f->name,
			res->message_id, res->session_id);
		break;
	case BG_FIRE_DUPLICATE:
		k->duplicate++;
		break;
	case BG_FIRE_BUSY:
		k->busy++;
		bg_info("trigger %s: skipped: max_running runs still active",
			f->name);
		break;
	case BG_FIRE_PAUSED:
		k->paused++;
		break;
	case BG_FIRE_MISSED:
		k->missed++;
		break;
	case BG_FIRE_ERROR: {
		k->errors++;
		struct tstate *st = bg_trigger_state(f->d->triggers, f->name);
		if (st)
			bg_trigger_warn(st, "%s", res->why);
		else
			bg_warn("trigger %s: %s", f->name, res->why);
		break;
	}
	}
	if (f->fn)
		f->fn(f->d, res, f->priv);
	fire_free(f);
}

static void copy_elem(char *out, size_t cap, const redisReply *r, size_t i)
{
	out[0] = '\0';
	if (i < r->elements && r->element[i]->type == REDIS_REPLY_STRING)
		snprintf(out, cap, "%.*s", (int)r->element[i]->len,
			 r->element[i]->str);
}

/* The outbox's answer (trigger_outbox.h): the fire's outcome. */
/* The outbox's answer (trigger_outbox.h). A fire claimed is a fire sent,
 * if not now then by the next poll: a step that failed (logged there) is
 * answered as sent, with the fire's ids, so that its caller (a webhook's
 * sender) does not send it again as a new fire. */
static void outbox_done(struct bg_daemon *d, const struct bg_fire_result *res,
			void *priv)
{
	(void)d;
	struct fire *f = priv;
	struct bg_fire_result copy = *res;
	if (copy.outcome == BG_FIRE_ERROR) {
		copy.outcome = BG_FIRE_SENT;
		snprintf(copy.message_id, sizeof copy.message_id, "%s",
			 f->message_id);
		snprintf(copy.execution_id, sizeof copy.execution_id, "%s",
			 f->execution_id);
		snprintf(copy.session_id, sizeof copy.session_id, "%s",
			 f->session_id);
	}
	done(f, &copy);
}

static void on_fired(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct fire *f = priv;
	struct bg_fire_result res = { .outcome = BG_FIRE_ERROR };
	if (r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0 && !f->eval) {
		f->eval = true; /* not loaded (a restarted or flushed Redis) */
		if (send_fire(f) == 0)
			return;
		r = NULL;
	}
	if (r != NULL && bg_fault_hit("trigger.after_fire"))
		_exit(BG_FAULT_EXIT); /* the fire is in Redis, unanswered */
	if (r == NULL) {
		snprintf(res.why, sizeof res.why,
			 "the Redis connection was lost before the fire's "
			 "answer: it was sent once or not at all (the state "
			 "shows which)");
	} else if (r->type == REDIS_REPLY_ERROR) {
		snprintf(res.why, sizeof res.why, "Redis refused the fire: %s",
			 r->str);
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		   r->element[0]->type != REDIS_REPLY_INTEGER) {
		snprintf(res.why, sizeof res.why,
			 "unexpected answer to the fire script");
	} else {
		static const enum bg_fire_outcome by_code[] = {
			BG_FIRE_SENT, BG_FIRE_DUPLICATE, BG_FIRE_BUSY,
			BG_FIRE_PAUSED, BG_FIRE_MISSED
		};
		long long code = r->element[0]->integer;
		if (code == 5 && f->outbox) {
			/* claimed: sent by the outbox, which answers */
			if (bg_fault_hit("trigger.outbox_claimed"))
				_exit(BG_FAULT_EXIT);
			if (bg_trigger_outbox_send(f->d, f->outbox,
						   strlen(f->outbox),
						   outbox_done, f) == 0)
				return;
			/* claimed is sent: the next poll sends it */
			bg_warn("trigger %s: the fire of message %s is "
				"claimed and not sent yet (out of memory or "
				"no connection here): the next poll sends it",
				f->name, f->message_id);
			res.outcome = BG_FIRE_SENT;
		} else if (code >= 0 && code <= 4)
			res.outcome = by_code[code];
		else
			snprintf(res.why, sizeof res.why,
				 "unexpected answer %lld to the fire script",
				 code);
	}
	if (res.outcome == BG_FIRE_SENT) {
		strcpy(res.message_id, f->message_id);
		strcpy(res.execution_id, f->execution_id);
		snprintf(res.session_id, sizeof res.session_id, "%s",
			 f->session_id);
	} else if (res.outcome == BG_FIRE_DUPLICATE) {
		copy_elem(res.message_id, sizeof res.message_id, r, 1);
		copy_elem(res.session_id, sizeof res.session_id, r, 2);
		copy_elem(res.execution_id, sizeof res.execution_id, r, 3);
	}
	done(f, &res);
}

/* Under Redis Cluster a webhook's idempotency key is in the stream's
 * slot, out of the claim script's reach: it is read first, so that a
 * request sent again is answered as a duplicate (as on a standalone
 * server) rather than counted against the pause or max_running. Two
 * copies at once both pass here; the outbox's entry step takes the key
 * once (trigger_outbox.h). */
static void on_precheck(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct fire *f = priv;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_STRING) {
		struct bg_fire_result res = { .outcome = BG_FIRE_DUPLICATE };
		copy_elem(res.message_id, sizeof res.message_id, r, 0);
		copy_elem(res.session_id, sizeof res.session_id, r, 1);
		copy_elem(res.execution_id, sizeof res.execution_id, r, 2);
		bg_rconn_cmdv(f->d->wr, NULL, NULL, 0,
			      (const char *const[]){ "HINCRBY", f->keys[0],
						     "duplicates", "1", NULL });
		done(f, &res);
		return;
	}
	if (send_fire(f) != 0) {
		struct bg_fire_result res = { .outcome = BG_FIRE_ERROR };
		snprintf(res.why, sizeof res.why,
			 "the Redis connection was lost before the fire was "
			 "sent: nothing was sent");
		done(f, &res);
	}
}

/* An idempotency key, which a webhook's scope prefix "hook:<name>:" may
 * make longer than a client's. */
static bool key_ok(struct bg_str key)
{
	size_t scope = BG_TRIGGER_NAME_MAX + 6;
	if (key.len <= scope)
		return bg_idem_key_ok(key);
	return key.len <= BG_IDEM_KEY_MAX + scope &&
	       bg_idem_key_ok((struct bg_str){ key.p, scope }) &&
	       bg_idem_key_ok(
		       (struct bg_str){ key.p + scope, key.len - scope });
}

int bg_trigger_fire(struct bg_daemon *d, const struct bg_fire_request *rq,
		    bg_fire_done_fn fn, void *priv)
{
	const struct bg_trigger_conf *t = rq->t;
	if (t == NULL || (unsigned)rq->mode > BG_FIRE_MANUAL ||
	    (rq->mode != BG_FIRE_REQUEST && rq->n <= 0) ||
	    (rq->idempotency_key.len && !key_ok(rq->idempotency_key)))
		return -EINVAL;
	if (!bg_rconn_ready(d->wr))
		return -ENOTCONN;
	struct fire *f = calloc(1, sizeof *f);
	if (f == NULL)
		return -ENOMEM;
	f->d = d;
	f->fn = fn;
	f->priv = priv;
	snprintf(f->name, sizeof f->name, "%s", t->name);
	static const char *const modes[] = { [BG_FIRE_REQUEST] = "hook",
					     [BG_FIRE_TIMER] = "timer",
					     [BG_FIRE_MANUAL] = "manual" };
	snprintf(f->mode, sizeof f->mode, "%s", modes[rq->mode]);
	snprintf(f->n, sizeof f->n, "%lld", (long long)rq->n);
	snprintf(f->max_running, sizeof f->max_running, "%d", t->max_running);
	snprintf(f->now, sizeof f->now, "%lld", (long long)bg_redis_now_ms(d));
	snprintf(f->ttl, sizeof f->ttl, "%lld",
		 (long long)d->cfg->idempotency_ttl_s * 1000);
	snprintf(f->missed, sizeof f->missed, "%lld", (long long)rq->missed);
	strcpy(f->send, rq->claim_only ? "0" : "1");
	int rc = bg_id_new(f->message_id, sizeof f->message_id, "msg-");
	if (rc == 0)
		rc = bg_id_new(f->execution_id, sizeof f->execution_id,
			       "exec-");
	if (rc == 0)
		rc = bg_uuid_hex(f->trace_id, false);
	if (rc == 0)
		rc = name_session(f, t, rq);
	if (rc == 0)
		rc = build_keys(f, t, rq);
	if (rc == 0)
		rc = build_meta(f, t, rq);
	if (rc == 0)
		rc = build_entry(f, t, rq, f->keys[3]);
	strcpy(f->outbox_flag, "0");
	if (rc == 0 && bg_rconn_clustered(d->wr)) {
		strcpy(f->outbox_flag, "1");
		rc = build_outbox(f, t);
	}
	if (rc == 0 && f->outbox && f->n_keys > 4)
		rc = bg_rconn_cmdv(
			d->wr, on_precheck, f, 0,
			(const char *const[]){ "HMGET", f->keys[4],
					       "message_id", "session_id",
					       "execution_id", NULL });
	else if (rc == 0)
		rc = send_fire(f);
	if (rc)
		fire_free(f);
	return rc;
}
