/* supervisor/idem.c - see idem.h. One EVALSHA per keyed entry, on the
 * write connection before the claim (so after any other job's check or
 * claim sent before it); entries without a key take no extra step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/idem.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "wire/idem.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/keys.h"

/* KEYS[1] the key's HASH (wire/idem.h). ARGV: 1 this entry's stream id,
 * 2 its message id, 3 session, 4 execution id, 5 now (ms), 6 the TTL (ms).
 * Returns 1 when this entry runs: the HASH names it (a redelivery, a
 * reclaim after a crash), or names no entry yet and no other first message
 * (this entry is then written as `entry`, and the sender's fields with the
 * TTL when no sender wrote the HASH: a by-framework client that only put
 * the key in its metadata). Else the first message id (a string, "" if
 * unknown): a copy. Only HGET, HSET and PEXPIRE (docs/operations.md). */
static const char IDEM_LUA[] =
	"local e = redis.call('HGET', KEYS[1], 'entry')\n"
	"if e == ARGV[1] then return 1 end\n"
	"local m = redis.call('HGET', KEYS[1], 'message_id')\n"
	"if e or (m and m ~= ARGV[2]) then return m or '' end\n"
	"if not m then\n"
	"  redis.call('HSET', KEYS[1], 'message_id', ARGV[2], 'session_id',\n"
	"             ARGV[3], 'execution_id', ARGV[4], 'at_ms', ARGV[5])\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'entry', ARGV[1])\n"
	"return 1\n";

struct idem_check {
	struct bg_daemon *d;
	uint64_t tag; /* the job, looked up again: it may be freed at exit */
	void (*go)(struct bg_daemon *, struct bg_job *);
	bool eval; /* sent as EVAL with the text (after NOSCRIPT) */
	struct bg_buf key, hash;
};

static void check_free(struct idem_check *c)
{
	bg_buf_free(&c->key);
	bg_buf_free(&c->hash);
	free(c);
}

static const char *idem_sha(void)
{
	static char hex[41];
	if (hex[0] == '\0' && bg_script_sha1(hex, IDEM_LUA) != 0)
		return NULL;
	return hex;
}

/* The key t's command carries, decoded into *out: 1 a usable one, 0 none,
 * -1 one that is not usable (not a string, too long, a control
 * character...). */
static int key_of(const struct bg_job *t, struct bg_buf *out)
{
	struct bg_str meta = t->id.cmd.hdr[BG_HDR_METADATA], v;
	if (t->id.cmd.action != BG_ACTION_ASK_AGENT || meta.len == 0 ||
	    bg_json_obj_get(meta, BG_IDEM_META, &v) != 0)
		return 0;
	if (bg_json_type(v) != '"' || bg_json_unescape(out, v) != 0)
		return -1;
	return bg_idem_key_ok((struct bg_str){ out->p, out->len }) ? 1 : -1;
}

/* A copy of the send whose first message is `first`: logged and ended
 * BG_END_DUPLICATE. A copy that carries the first's own message id (the
 * same command XADDed again) shares its record, which stays the first's. */
static void copy(struct bg_daemon *d, struct bg_job *t,
		 const struct idem_check *c, const redisReply *first)
{
	char why[512];
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "idempotency key %s: entry %s (message %s) is a copy of "
		    "message %.*s; acknowledged without running",
		    c->key.p, t->id.entry_id, t->id.message_id, (int)first->len,
		    first->str);
	if (first->len == strlen(t->id.message_id) &&
	    memcmp(first->str, t->id.message_id, first->len) == 0)
		t->id.record_exists = false;
	snprintf(why, sizeof(why),
		 "DUPLICATE: idempotency key %s was first used by message %.*s",
		 c->key.p, (int)first->len, first->str);
	free(t->end.duplicate_of);
	t->end.duplicate_of = strndup(first->str, first->len);
	t->end.error_type = "IdempotentDuplicate";
	t->end.failed_stage = "pickup";
	bg_end(d, t, BG_END_DUPLICATE, "DUPLICATE", why);
}

static void on_check(struct bg_rconn *conn, redisReply *r, void *priv);

/* Send c (again, as EVAL after a NOSCRIPT). Not sent (the write
 * connection is down): the job's read is sent again when it is back. */
static void send_check(struct idem_check *c, struct bg_job *t)
{
	struct bg_daemon *d = c->d;
	const char *sha = c->eval ? NULL : idem_sha();
	char now[24], ttl[24];
	snprintf(now, sizeof(now), "%lld", (long long)bg_now_ms());
	snprintf(ttl, sizeof(ttl), "%lld",
		 (long long)d->cfg->idempotency_ttl_s * 1000);
	const char *argv[] = { sha ? "EVALSHA" : "EVAL",
			       sha ? sha : IDEM_LUA,
			       "1",
			       c->hash.p,
			       t->id.entry_id,
			       t->id.message_id,
			       t->id.session_id,
			       t->id.execution_id,
			       now,
			       ttl };
	if (bg_rconn_cmd(d->wr, on_check, c, 0, 10, argv, NULL) != 0) {
		check_free(c);
		bg_job_move(t, BG_JOB_PICKUP_LOST);
	}
}

static void on_check(struct bg_rconn *conn, redisReply *r, void *priv)
{
	(void)conn;
	struct idem_check *c = priv;
	struct bg_daemon *d = c->d;
	struct bg_job *t = bg_job_find(d, c->tag);
	if (t == NULL) {
		check_free(c);
		return;
	}
	if (r == NULL) { /* outcome unknown: read and checked again */
		bg_job_move(t, BG_JOB_PICKUP_LOST);
	} else if (r->type == REDIS_REPLY_ERROR && !c->eval &&
		   strncmp(r->str, "NOSCRIPT", 8) == 0) {
		c->eval = true; /* not loaded (a restarted or flushed Redis) */
		send_check(c, t);
		return;
	} else if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		if (bg_fault_hit("idem.after_entry"))
			_exit(BG_FAULT_EXIT);
		c->go(d, t);
	} else if (r->type == REDIS_REPLY_STRING) {
		copy(d, t, c, r);
	} else {
		bg_job_refused(t, "idempotency check", r);
		bg_rconn_drop(d->wr, "idempotency check refused");
	}
	check_free(c);
}

bool bg_idem_check(struct bg_daemon *d, struct bg_job *t,
		   void (*go)(struct bg_daemon *, struct bg_job *))
{
	struct idem_check *c = calloc(1, sizeof(*c));
	int k = c ? key_of(t, &c->key) : 0;
	if (k < 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "entry %s: header.metadata.%s is not a usable "
			    "idempotency key (a string of 1-%d printable "
			    "ASCII characters, no space); run without one",
			    t->id.entry_id, BG_IDEM_META, BG_IDEM_KEY_MAX);
	}
	struct bg_str type = t->id.cmd.hdr[BG_HDR_TARGET_AGENT_TYPE];
	if (k == 1 &&
	    bg_key_build(&c->hash, d->cfg->key_schema, BG_KEY_IDEMPOTENCY, type,
			 (struct bg_str){ c->key.p, c->key.len },
			 bg_str_c("")) != 0)
		k = 0; /* no memory: run as if it had no key */
	if (k != 1) {
		if (c)
			check_free(c);
		return false;
	}
	c->d = d;
	c->tag = t->tag;
	c->go = go;
	send_check(c, t);
	return true;
}
