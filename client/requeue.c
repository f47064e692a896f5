/* client/requeue.c - a failed execution put back in its queue under Redis
 * Cluster (requeue.h). */
#include "client/requeue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "cluster/slot.h"

/* KEYS[1] the registry; ARGV 1 the field, 2 the record expected, 3 the
 * record to write, 4 the TTL. 1 written, 0 the record is another. */
static const char CAS_LUA[] =
	"if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
	"return 1\n";

/* KEYS[1] the stream, KEYS[2] (optional, the same slot) the idempotency
 * HASH; ARGV 1 the entry's data, 2 the message id. The new entry's id. */
static const char ADD_LUA[] =
	"local id = redis.call('XADD', KEYS[1], '*', 'data', ARGV[1])\n"
	"if KEYS[2] and redis.call('HGET', KEYS[2], 'message_id') == ARGV[2]\n"
	"then\n"
	"  redis.call('HSET', KEYS[2], 'entry', id)\n"
	"end\n"
	"return id\n";

/* KEYS[1] the idempotency HASH; ARGV 1 the message id, 2 the entry id. */
static const char POINT_LUA[] =
	"if redis.call('HGET', KEYS[1], 'message_id') == ARGV[1] then\n"
	"  redis.call('HSET', KEYS[1], 'entry', ARGV[2])\n"
	"end\n"
	"return 1\n";

static int cas(struct bg_client *c, const struct bg_client_requeue *q,
	       const char *expect, size_t expect_len, const char *to,
	       size_t to_len)
{
	const char *argv[] = { "1",    q->registry, q->field,
			       expect, to,	    BG_CLIENT_SESSION_TTL };
	size_t lens[] = { 1,
			  strlen(q->registry),
			  strlen(q->field),
			  expect_len,
			  to_len,
			  strlen(BG_CLIENT_SESSION_TTL) };
	redisReply *r = NULL;
	int rc = bg_client_eval(c, CAS_LUA, 6, argv, lens, &r);
	if (rc == 0)
		rc = r->type == REDIS_REPLY_INTEGER
			     ? (r->integer == 1 ? 0 : 1)
			     : bg_client_fail(c, BG_CLIENT_EPROTO,
					      "requeue: unexpected reply");
	freeReplyObject(r);
	return rc;
}

/* A compare and set whose answer was lost: the record read again is the
 * QUEUED form (applied: 0), the one expected (not applied: 1), or
 * another (changed: 1, or an error reading it). */
static int cas_resolve(struct bg_client *c, const struct bg_client_requeue *q,
		       int lost)
{
	redisReply *r = NULL;
	char why[sizeof(c->errmsg)];
	snprintf(why, sizeof why, "%s", c->errmsg);
	int rc = bg_client_cmd(c, &r, "HGET", q->registry, q->field, NULL);
	bool applied = rc == 0 && bg_client_reply_is_str(r) &&
		       r->len == strlen(q->next) &&
		       memcmp(r->str, q->next, r->len) == 0;
	bool not_applied = rc == 0 && bg_client_reply_is_str(r) &&
			   r->len == q->old_len &&
			   memcmp(r->str, q->old, r->len) == 0;
	freeReplyObject(r);
	if (applied)
		return 0;
	if (not_applied)
		return bg_client_fail(c, lost, "%s: nothing requeued", why);
	return rc ? bg_client_fail(c, lost,
				   "%s; the record could not be read again: "
				   "it may be QUEUED without an entry",
				   why)
		  : 1;
}

static int add(struct bg_client *c, const struct bg_client_requeue *q,
	       char *new_id, size_t cap)
{
	bool together = q->idem &&
			bg_slot_of(q->idem, strlen(q->idem)) ==
				bg_slot_of(q->stream, strlen(q->stream));
	const char *argv[] = { together ? "2" : "1", q->stream,
			       together ? q->idem : q->data,
			       together ? q->data : q->message_id,
			       q->message_id };
	size_t lens[] = { 1, strlen(q->stream),
			  together ? strlen(q->idem) : q->data_len,
			  together ? q->data_len : strlen(q->message_id),
			  strlen(q->message_id) };
	redisReply *r = NULL;
	int rc = bg_client_eval(c, ADD_LUA, together ? 5 : 4, argv, lens, &r);
	if (rc == 0 && (!bg_client_reply_is_str(r) ||
			bg_client_copy_id(new_id, cap, r->str, r->len)))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "requeue: unexpected XADD reply");
	freeReplyObject(r);
	if (rc == 0 && q->idem && !together) {
		/* the entry is in: a hash left naming the old entry only
		 * makes bygated take the new one for a copy, as a crash
		 * between the two would */
		const char *pv[] = { "1", q->idem, q->message_id, new_id };
		r = NULL;
		(void)bg_client_eval(c, POINT_LUA, 4, pv, NULL, &r);
		freeReplyObject(r);
		c->errmsg[0] = '\0';
	}
	return rc;
}

int bg_client_requeue_split(struct bg_client *c,
			    const struct bg_client_requeue *q, char *new_id,
			    size_t cap)
{
	int rc = q->registry ? cas(c, q, q->old, q->old_len, q->next,
				   strlen(q->next))
			     : 0;
	if (q->registry && (rc == BG_CLIENT_EIO || rc == BG_CLIENT_EINTR))
		rc = cas_resolve(c, q, rc);
	if (rc)
		return rc; /* 1: changed meanwhile, nothing written */
	rc = add(c, q, new_id, cap);
	if (rc == 0 || q->registry == NULL)
		return rc;
	char why[sizeof(c->errmsg)];
	snprintf(why, sizeof why, "%s", c->errmsg);
	if (rc != BG_CLIENT_EREDIS)
		return bg_client_fail(c, rc,
				      "%s: the record was set QUEUED and the "
				      "entry's outcome is unknown (`bygate "
				      "status --session S --message-id M` "
				      "shows whether it runs); if no entry "
				      "runs it, the record stays QUEUED",
				      why);
	/* refused: nothing added, the record back as it was */
	int back = cas(c, q, q->next, strlen(q->next), q->old, q->old_len);
	return bg_client_fail(c, rc, "%s: nothing requeued%s", why,
			      back == 0 ? ", the record put back"
					: "; the record could not be put "
					  "back and stays QUEUED");
}
