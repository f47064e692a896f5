/* client/dlq.c - the dead-letter stream ("bygate decisions" 5, WIRE 7):
 * list and show its records, requeue one's original entry on the stream
 * it came from (once: the record is deleted in the same script), purge. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A stream id as XADD writes it: <ms>-<seq>, digits only. */
static bool valid_id(const char *s)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 20)
		return false;
	if (s[n] == '\0')
		return true;
	size_t m = strspn(s + n + 1, "0123456789");
	return s[n] == '-' && m > 0 && m <= 20 && s[n + 1 + m] == '\0';
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
 * there: a second requeue of the same id finds nothing to do. */
static const char requeue_script[] =
	"if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then\n"
	"  return false\n"
	"end\n"
	"local id = redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])\n"
	"redis.call('XDEL', KEYS[1], ARGV[1])\n"
	"return id\n";

int bg_client_dlq_requeue(struct bg_client *c, const char *id, char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	struct bg_buf key = { 0 };
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
	if (rc == 0) {
		const char *argv[] = { "2", key.p, stream, id,
				       json_string_value(entry) };
		size_t lens[] = { 1, key.len, strlen(stream), strlen(id),
				  json_string_length(entry) };
		rc = bg_client_eval(c, requeue_script, 5, argv, lens, &r);
	}
	if (rc == 0 && r->type == REDIS_REPLY_NIL)
		rc = bg_client_fail(c, -ENOENT,
				    "dead letter %s is gone (requeued or "
				    "purged meanwhile)",
				    id);
	else if (rc == 0 && !bg_client_reply_is_str(r))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "requeue: unexpected reply");
	json_t *doc = NULL;
	if (rc == 0) {
		doc = json_object();
		json_object_set_new(doc, "id", json_string(id));
		json_object_set_new(doc, "stream", json_string(stream));
		json_object_set_new(doc, "entry_id",
				    json_stringn(r->str, r->len));
		json_object_set_new(
			doc, "error_code",
			json_string(bg_client_jstr(o, "error_code")));
	}
	freeReplyObject(r);
	json_decref(o);
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
