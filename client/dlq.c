/* client/dlq.c - the dead-letter stream ("bygate decisions" 5, WIRE 7):
 * list and show its records, requeue one's original entry on the stream
 * it came from (once: the record is deleted in the same script), purge. */
#include "client/client_internal.h"
#include "client/requeue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ids.h"

/* Whether the n digits at s are a number Redis takes for a part of a
 * stream id (at most UINT64_MAX). */
static bool u64_digits(const char *s, size_t n)
{
	static const char max[] = "18446744073709551615";
	return n > 0 && (n < sizeof max - 1 ||
			 (n == sizeof max - 1 && strncmp(s, max, n) <= 0));
}

/* A stream id as XADD writes it: <ms>-<seq>, digits only, each part at
 * most UINT64_MAX. */
static bool valid_id(const char *s)
{
	size_t n = strspn(s, "0123456789");
	if (!u64_digits(s, n))
		return false;
	if (s[n] == '\0')
		return true;
	size_t m = strspn(s + n + 1, "0123456789");
	return s[n] == '-' && u64_digits(s + n + 1, m) && s[n + 1 + m] == '\0';
}

/* One dead letter as JSON: {"id", the stored record's members, or "raw"
 * when the record is not a JSON object}. */
static json_t *letter(const redisReply *e)
{
	const char *id;
	const redisReply *d;
	if (bg_client_entry(e, &id, &d))
		return NULL;
	json_t *rec = d ? json_loadb(d->str, d->len, 0, NULL) : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(id));
	if (json_is_object(rec))
		json_object_update(o, rec);
	else
		json_object_set_new(o, "raw",
				    d ? json_stringn(d->str, d->len)
				      : json_null());
	json_decref(rec);
	return o;
}

static int dlq_key(struct bg_client *c, struct bg_buf *key)
{
	return bg_client_key0(c, key, BG_KEY_DEADLETTER);
}

static int dump(struct bg_client *c, json_t *v, char **json_out)
{
	*json_out = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	return *json_out ? 0 : bg_client_fail(c, -ENOMEM, "out of memory");
}

int bg_client_dlq_list(struct bg_client *c, int limit, char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	if (limit <= 0 || limit > BG_FAILED_MAX_LIMIT)
		return bg_client_fail(c, -EINVAL, "limit must be 1..%d",
				      BG_FAILED_MAX_LIMIT);
	struct bg_buf key = { 0 };
	redisReply *r = NULL, *len = NULL;
	char count[16];
	snprintf(count, sizeof count, "%d", limit);
	int rc = dlq_key(c, &key);
	if (rc == 0)
		rc = bg_client_cmd(c, &len, "XLEN", key.p, NULL);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "XREVRANGE", key.p, "+", "-", "COUNT",
				   count, NULL);
	json_t *doc = json_object(), *a = json_array();
	json_object_set_new(doc, "stream", json_string(key.p ? key.p : ""));
	json_object_set_new(doc, "length",
			    json_integer(len && len->type == REDIS_REPLY_INTEGER
						 ? len->integer
						 : 0));
	json_object_set_new(doc, "entries", a);
	for (size_t i = 0;
	     rc == 0 && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		json_t *o = letter(r->element[i]);
		if (o)
			json_array_append_new(a, o);
	}
	freeReplyObject(r);
	freeReplyObject(len);
	bg_buf_free(&key);
	if (rc) {
		json_decref(doc);
		return rc;
	}
	return dump(c, doc, json_out);
}

/* The dead letter `id` as JSON (*out); -ENOENT when absent. */
static int get_letter(struct bg_client *c, const char *key, const char *id,
		      json_t **out)
{
	*out = NULL;
	if (id == NULL || !valid_id(id))
		return bg_client_fail(c, -EINVAL,
				      "'%s' is not a stream entry id "
				      "(<ms>-<seq>)",
				      id ? id : "");
	redisReply *r = NULL;
	int rc = bg_client_cmd(c, &r, "XRANGE", key, id, id, NULL);
	if (rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 1)
		*out = letter(r->element[0]);
	freeReplyObject(r);
	if (rc == 0 && *out == NULL)
		rc = bg_client_fail(c, -ENOENT, "no dead letter %s", id);
	return rc;
}

int bg_client_dlq_show(struct bg_client *c, const char *id, char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	struct bg_buf key = { 0 };
	json_t *o = NULL;
	int rc = dlq_key(c, &key);
	if (rc == 0)
		rc = get_letter(c, key.p, id, &o);
	bg_buf_free(&key);
	return rc ? rc : dump(c, o, json_out);
}

/* Put the entry back and delete the dead letter, only while it is still
 * there: a second requeue of the same id finds nothing to do (false).
 * ARGV: 1 the dead letter's id, 2 the entry data, 3 the record's field,
 * 4 the record read, 5 its requeued form, 6 the TTL, 7 the message id.
 * With a field, KEYS[3] is the registry: the execution record of the
 * entry goes back to QUEUED in the same step, only while it is still the
 * FAILED one read (else 0). The last key after those, when given, is the
 * entry's idempotency HASH: still the message's, it names the new entry
 * as the one that runs (else bygated acknowledges it as a copy). */
static const char requeue_script[] =
	"if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then\n"
	"  return false\n"
	"end\n"
	"local k = 3\n"
	"if ARGV[3] ~= '' then\n"
	"  if redis.call('HGET', KEYS[3], ARGV[3]) ~= ARGV[4] then\n"
	"    return 0\n"
	"  end\n"
	"  redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])\n"
	"  redis.call('EXPIRE', KEYS[3], ARGV[6])\n"
	"  k = 4\n"
	"end\n"
	"local id = redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])\n"
	"redis.call('XDEL', KEYS[1], ARGV[1])\n"
	"if KEYS[k] and redis.call('HGET', KEYS[k], 'message_id') == ARGV[7] "
	"then\n"
	"  redis.call('HSET', KEYS[k], 'entry', id)\n"
	"end\n"
	"return id\n";

/* The execution a requeued entry would run: when the entry is an
 * ASK_AGENT whose record is FAILED, its registry key, field, the record
 * read (old) and its requeued form (next_raw); nothing when it has no
 * record or one still in progress. -EPERM for a COMPLETED or CANCELLED
 * record: the entry would be acknowledged as a terminal replay. */
struct requeue_exec {
	struct bg_buf key, field, idem;
	const char *message_id; /* in cmd */
	json_t *cmd;
	char *old;
	size_t old_len;
	json_t *rec, *next;
	char *next_raw;
};

static void exec_free(struct requeue_exec *x)
{
	bg_buf_free(&x->key);
	bg_buf_free(&x->field);
	bg_buf_free(&x->idem);
	json_decref(x->cmd);
	free(x->old);
	json_decref(x->rec);
	json_decref(x->next);
	free(x->next_raw);
}

static int requeue_exec_of(struct bg_client *c, const char *id,
			   const char *data, struct requeue_exec *x)
{
	json_t *cmd = x->cmd = json_loads(data, 0, NULL);
	json_t *h = json_object_get(cmd, "header");
	const char *sess = bg_client_jstr(h, "session_id");
	const char *mid = x->message_id = bg_client_jstr(h, "message_id");
	int rc = 0;
	if (strcmp(bg_client_jstr(cmd, "action_type"), "ASK_AGENT") ||
	    !sess[0] || !mid[0])
		return 0;
	rc = bg_client_idem_hash_of(c, cmd, &x->idem);
	if (rc)
		return rc;
	rc = bg_client_get_execution(c, sess, mid, &x->old, &x->old_len);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	x->rec = rc ? NULL : json_loadb(x->old, x->old_len, 0, NULL);
	const char *st = bg_client_jstr(x->rec, "status");
	if (rc || !json_is_object(x->rec) ||
	    (strcmp(st, "COMPLETED") && strcmp(st, "CANCELLED") &&
	     strcmp(st, "FAILED")))
		goto out;
	if (strcmp(st, "FAILED")) {
		rc = bg_client_fail(c, -EPERM,
				    "dead letter %s: execution of message %s "
				    "is %s; its entry would be acknowledged "
				    "without running",
				    id, mid, st);
		goto out;
	}
	x->next = bg_client_requeued_record(x->rec, bg_client_now_ms());
	x->next_raw = json_dumps(x->next, JSON_COMPACT);
	rc = x->next_raw
		     ? bg_client_key(c, &x->key, BG_KEY_SESSION_REGISTRY, sess)
		     : bg_client_fail(c, -ENOMEM, "out of memory");
	if (rc == 0)
		rc = bg_buf_printf(&x->field, "exec:%s",
				   bg_client_jstr(x->rec, "execution_id"));
out:
	return rc;
}

/* KEYS[1] the dead letters, KEYS[2] the requeue's claim (in their slot);
 * ARGV 1 the dead letter's id, 2 the claim's TTL ms, 3 this requeue's
 * token. false: the dead letter is gone; 0: another requeue of it is in
 * progress; 1: claimed. */
static const char CLAIM_LUA[] =
	"if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then\n"
	"  return false\n"
	"end\n"
	"if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then\n"
	"  return 1\n"
	"end\n"
	"return 0\n";

/* KEYS[1] the dead letters, KEYS[2] the claim; ARGV 1 the id, 2 the
 * token, 3 "1" to delete the dead letter (requeued), "0" not. The claim
 * is deleted only while it is still this requeue's. */
static const char RELEASE_LUA[] =
	"if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end\n"
	"if ARGV[3] == '1' then redis.call('XDEL', KEYS[1], ARGV[1]) end\n"
	"redis.call('DEL', KEYS[2])\n"
	"return 1\n";

static int claim_letter(struct bg_client *c, const char *dlq, const char *id,
			const char *claim, const char *token)
{
	redisReply *r = NULL;
	const char *cv[] = { "2", dlq, claim, id, "60000", token };
	int rc = bg_client_eval(c, CLAIM_LUA, 6, cv, NULL, &r);
	if (rc == 0 && r->type == REDIS_REPLY_NIL)
		rc = bg_client_fail(c, -ENOENT,
				    "dead letter %s is gone (requeued or "
				    "purged meanwhile)",
				    id);
	else if (rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		rc = bg_client_fail(c, -EAGAIN,
				    "dead letter %s is being requeued by "
				    "another client (for at most a minute); "
				    "not requeued",
				    id);
	else if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "requeue: unexpected reply");
	freeReplyObject(r);
	return rc;
}

/* Under Redis Cluster the dead letters, the session's registry and the
 * stream are three slots (client/requeue.h): the dead letter is claimed
 * for this requeue (a key in its slot holding a token, for a minute: of
 * two concurrent requeues one goes on), the record compared and set and
 * the entry added, then the dead letter deleted with the claim, while the
 * claim is still this requeue's. A requeue that wrote nothing releases
 * its claim; one cut off before the delete leaves the dead letter, whose
 * next requeue (after the claim expires) finds the record no longer
 * FAILED and adds the entry again, which bygated acknowledges as a
 * duplicate if the first runs. */
static int requeue_clustered(struct bg_client *c, const char *dlq,
			     const char *id, const char *stream,
			     const json_t *entry, const struct requeue_exec *x,
			     char *new_id)
{
	struct bg_buf claim = { 0 };
	char token[BG_ID_CAP("rq-")];
	if (bg_buf_printf(&claim, "{%s}:bygate_requeue:%s", dlq, id) != 0 ||
	    bg_id_new(token, sizeof token, "rq-") != 0) {
		bg_buf_free(&claim);
		return bg_client_fail(c, -ENOMEM, "out of memory");
	}
	int rc = claim_letter(c, dlq, id, claim.p, token);
	if (rc) {
		bg_buf_free(&claim);
		return rc;
	}
	struct bg_client_requeue q = {
		.registry = x->next_raw ? x->key.p : NULL,
		.field = x->field.p,
		.old = x->old,
		.old_len = x->old_len,
		.next = x->next_raw,
		.stream = stream,
		.data = json_string_value(entry),
		.data_len = json_string_length(entry),
		.idem = x->idem.len ? x->idem.p : NULL,
		.message_id = x->message_id ? x->message_id : "",
	};
	rc = bg_client_requeue_split(c, &q, new_id, BG_CLIENT_ENTRY_ID_MAX);
	if (rc == 1)
		rc = bg_client_fail(c, -EAGAIN,
				    "dead letter %s: its execution record "
				    "changed meanwhile; not requeued",
				    id);
	/* requeued: the letter and the claim go; nothing written (changed,
	 * refused): the claim goes; an outcome unknown: the claim expires */
	bool unknown = rc == BG_CLIENT_EIO || rc == BG_CLIENT_EINTR;
	if (!unknown) {
		char why[sizeof(c->errmsg)];
		snprintf(why, sizeof why, "%s", c->errmsg);
		redisReply *r = NULL;
		const char *rv[] = { "2", dlq,	 claim.p,
				     id,  token, rc == 0 ? "1" : "0" };
		int del = bg_client_eval(c, RELEASE_LUA, 6, rv, NULL, &r);
		if (del == 0 &&
		    (r->type != REDIS_REPLY_INTEGER || r->integer != 1)) {
			del = -EAGAIN;
			snprintf(c->errmsg, sizeof c->errmsg,
				 "its claim expired meanwhile");
		}
		freeReplyObject(r);
		if (rc == 0 && del != 0)
			rc = bg_client_fail(
				c, del,
				"dead letter %s: requeued as entry %s, but "
				"the dead letter could not be deleted (%s); "
				"purge it: a second requeue would add the "
				"entry again",
				id, new_id, c->errmsg);
		else if (rc != 0)
			snprintf(c->errmsg, sizeof c->errmsg, "%s", why);
	}
	bg_buf_free(&claim);
	return rc;
}

int bg_client_dlq_requeue(struct bg_client *c, const char *id, char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	struct bg_buf key = { 0 };
	struct requeue_exec x = { 0 };
	json_t *o = NULL;
	redisReply *r = NULL;
	int rc = dlq_key(c, &key);
	if (rc == 0)
		rc = get_letter(c, key.p, id, &o);
	const char *stream = bg_client_jstr(o, "stream");
	const json_t *entry = json_object_get(o, "entry");
	if (rc == 0 && (!stream[0] || !json_is_string(entry)))
		rc = bg_client_fail(c, -EPERM,
				    "dead letter %s keeps no %s to requeue", id,
				    stream[0] ? "entry data" : "stream");
	if (rc == 0)
		rc = requeue_exec_of(c, id, json_string_value(entry), &x);
	char new_id[BG_CLIENT_ENTRY_ID_MAX] = "";
	if (rc == 0 && c->cluster) {
		rc = requeue_clustered(c, key.p, id, stream, entry, &x, new_id);
	} else if (rc == 0) {
		bool rec = x.next_raw != NULL;
		const char *argv[12];
		size_t lens[12], n = 0, nkeys = 2 + rec + (x.idem.len > 0);
		char nk[2] = { (char)('0' + nkeys), '\0' };
#define ARG(s, l) (argv[n] = (s), lens[n++] = (l))
		ARG(nk, 1);
		ARG(key.p, key.len);
		ARG(stream, strlen(stream));
		if (rec)
			ARG(x.key.p, x.key.len);
		if (x.idem.len)
			ARG(x.idem.p, x.idem.len);
		ARG(id, strlen(id));
		ARG(json_string_value(entry), json_string_length(entry));
		ARG(rec ? x.field.p : "", rec ? x.field.len : 0);
		ARG(rec ? x.old : "", rec ? x.old_len : 0);
		ARG(rec ? x.next_raw : "", rec ? strlen(x.next_raw) : 0);
		ARG(BG_CLIENT_SESSION_TTL, strlen(BG_CLIENT_SESSION_TTL));
		ARG(x.message_id ? x.message_id : "",
		    x.message_id ? strlen(x.message_id) : 0);
#undef ARG
		rc = bg_client_eval(c, requeue_script, (int)n, argv, lens, &r);
	}
	if (rc == 0 && r && r->type == REDIS_REPLY_NIL)
		rc = bg_client_fail(c, -ENOENT,
				    "dead letter %s is gone (requeued or "
				    "purged meanwhile)",
				    id);
	else if (rc == 0 && r && r->type == REDIS_REPLY_INTEGER)
		rc = bg_client_fail(c, -EAGAIN,
				    "dead letter %s: its execution record "
				    "changed meanwhile; not requeued",
				    id);
	else if (rc == 0 && r &&
		 (!bg_client_reply_is_str(r) ||
		  bg_client_copy_id(new_id, sizeof new_id, r->str, r->len)))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "requeue: unexpected reply");
	json_t *doc = NULL;
	if (rc == 0) {
		if (x.next_raw) /* WIRE 5.9, as every record write */
			(void)bg_client_worker_stats(
				c, x.rec, x.next,
				(struct bg_str){ x.next_raw,
						 strlen(x.next_raw) },
				bg_client_now_ms());
		doc = json_object();
		json_object_set_new(doc, "id", json_string(id));
		json_object_set_new(doc, "stream", json_string(stream));
		json_object_set_new(doc, "entry_id", json_string(new_id));
		json_object_set_new(
			doc, "error_code",
			json_string(bg_client_jstr(o, "error_code")));
		json_object_set_new(doc, "execution_requeued",
				    x.next_raw ? json_string(bg_client_jstr(
							 x.rec, "execution_id"))
					       : json_null());
	}
	freeReplyObject(r);
	json_decref(o);
	exec_free(&x);
	bg_buf_free(&key);
	return rc ? rc : dump(c, doc, json_out);
}

int bg_client_dlq_purge(struct bg_client *c, const char *const *ids, size_t n,
			long long *deleted)
{
	c->errmsg[0] = '\0';
	*deleted = 0;
	if (n > 1000)
		return bg_client_fail(c, -EINVAL, "at most 1000 ids at once");
	for (size_t i = 0; i < n; i++)
		if (!valid_id(ids[i]))
			return bg_client_fail(c, -EINVAL,
					      "'%s' is not a stream entry id "
					      "(<ms>-<seq>)",
					      ids[i]);
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	int rc = dlq_key(c, &key);
	if (rc == 0 && n == 0) {
		rc = bg_client_cmd(c, &r, "XTRIM", key.p, "MAXLEN", "0", NULL);
	} else if (rc == 0) {
		const char **argv = calloc(n + 2, sizeof *argv);
		if (argv == NULL)
			rc = bg_client_fail(c, -ENOMEM, "out of memory");
		for (size_t i = 0; argv && i < n; i++)
			argv[i + 2] = ids[i];
		if (argv) {
			argv[0] = "XDEL";
			argv[1] = key.p;
			rc = bg_client_command(c, &r, (int)n + 2, argv, NULL);
		}
		free(argv);
	}
	if (rc == 0 && r->type == REDIS_REPLY_INTEGER)
		*deleted = r->integer;
	else if (rc == 0)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "purge: unexpected reply");
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}
