/* client/events.c - reading a session data stream (WIRE 3.1-3.3, 3.9):
 * XREAD in batches, each entry's DataMessage decoded into the few members
 * a client shows. Entries are untrusted: a malformed one is delivered as
 * invalid, never skipped silently and never fatal. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define READ_COUNT "100" /* WIRE 3.9 */

static const char *str_member(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

/* data.choices[0].delta.content (WIRE 3.3), or NULL. */
static const json_t *delta_content(const json_t *msg)
{
	const json_t *choices =
		json_object_get(json_object_get(msg, "data"), "choices");
	const json_t *delta =
		json_object_get(json_array_get(choices, 0), "delta");
	const json_t *content = json_object_get(delta, "content");
	return json_is_string(content) ? content : NULL;
}

/* The value of the last `data` field of an entry's field list, or NULL. */
static const redisReply *data_field(const redisReply *fields)
{
	const redisReply *v = NULL;
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];
		if (bg_client_reply_is_str(k) && k->len == 4 &&
		    !memcmp(k->str, "data", 4) &&
		    bg_client_reply_is_str(fields->element[i + 1]))
			v = fields->element[i + 1];
	}
	return v;
}

/* Decode one [id, fields] entry and hand it to cb. *id_out receives the
 * entry id. Returns cb's result or a negative error. */
static int deliver(struct bg_client *c, const redisReply *entry, char *id_out,
		   bg_event_cb cb, void *arg)
{
	if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1 ||
	    !bg_client_reply_is_str(entry->element[0]) ||
	    entry->element[0]->len == 0 ||
	    bg_client_copy_id(id_out, BG_CLIENT_ENTRY_ID_MAX,
			      entry->element[0]->str, entry->element[0]->len))
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "XREAD: malformed entry");
	const redisReply *raw =
		data_field(entry->elements > 1 ? entry->element[1] : NULL);
	json_t *msg = raw ? json_loadb(raw->str, raw->len, JSON_ALLOW_NUL, NULL)
			  : NULL;
	if (!json_is_object(msg)) {
		json_decref(msg);
		msg = NULL;
	}
	const json_t *content = delta_content(msg);
	struct bg_client_event ev = {
		.entry_id = id_out,
		.event_type = str_member(msg, "event_type"),
		.message_id = str_member(msg, "message_id"),
		.parent_message_id = str_member(msg, "parent_message_id"),
		.source_agent_type = str_member(msg, "source_agent_type"),
		.content = json_string_value(content),
		.content_len = content ? json_string_length(content) : 0,
		.raw = raw ? raw->str : NULL,
		.raw_len = raw ? raw->len : 0,
		.valid = msg != NULL,
	};
	int rc = cb(arg, &ev);
	json_decref(msg);
	return rc;
}

/* The entries array of a one-stream XREAD reply, or NULL when malformed. */
static const redisReply *xread_entries(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		return NULL;
	const redisReply *s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
	    s->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	return s->element[1];
}

static int deliver_all(struct bg_client *c, const redisReply *r, char *next,
		       bg_event_cb cb, void *arg)
{
	if (r->type == REDIS_REPLY_NIL)
		return 0; /* BLOCK timed out */
	const redisReply *entries = xread_entries(r);
	if (entries == NULL)
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "XREAD: unexpected reply");
	int n = 0;
	for (size_t i = 0; i < entries->elements; i++) {
		char id[BG_CLIENT_ENTRY_ID_MAX];
		int rc = deliver(c, entries->element[i], id, cb, arg);
		if (rc < 0)
			return rc;
		strcpy(next, id);
		n++;
		if (rc > 0)
			break;
	}
	return n;
}

int bg_client_read_events(struct bg_client *c, const char *session,
			  const char *last_id, int block_ms, bg_event_cb cb,
			  void *arg, char *next_id_out)
{
	c->errmsg[0] = '\0';
	char next[BG_CLIENT_ENTRY_ID_MAX], block[16];
	struct bg_buf key = { 0 };
	if (last_id == NULL || last_id[0] == '\0' ||
	    bg_client_copy_id(next, sizeof next, last_id, strlen(last_id)) ||
	    bg_client_key(c, &key, BG_KEY_SESSION_DATA, session)) {
		bg_buf_free(&key);
		return bg_client_fail(c, -EINVAL, "bad session or last id");
	}
	snprintf(block, sizeof block, "%d", block_ms);
	const char *argv[] = { "XREAD", "COUNT",   READ_COUNT, "BLOCK",
			       block,	"STREAMS", key.p,      next };
	const char *nb_argv[] = { "XREAD",   "COUNT", READ_COUNT,
				  "STREAMS", key.p,   next };
	redisReply *r;
	bg_client_set_timeout(c, block_ms);
	int rc = block_ms >= 0 ? bg_client_command(c, &r, 8, argv, NULL)
			       : bg_client_command(c, &r, 6, nb_argv, NULL);
	bg_client_set_timeout(c, -1);
	bg_buf_free(&key);
	if (rc == 0) {
		rc = deliver_all(c, r, next, cb, arg);
		freeReplyObject(r);
	}
	strcpy(next_id_out, next);
	return rc;
}

int bg_client_last_entry_id(struct bg_client *c, const char *session, char *out)
{
	c->errmsg[0] = '\0';
	struct bg_buf key = { 0 };
	if (bg_client_key(c, &key, BG_KEY_SESSION_DATA, session)) {
		bg_buf_free(&key);
		return bg_client_fail(c, -EINVAL, "bad session");
	}
	const char *argv[] = { "XREVRANGE", key.p, "+", "-", "COUNT", "1" };
	redisReply *r;
	int rc = bg_client_command(c, &r, 6, argv, NULL);
	bg_buf_free(&key);
	if (rc)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY) {
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "XREVRANGE: unexpected reply");
	} else if (r->elements == 0) {
		strcpy(out, "0-0");
	} else {
		const redisReply *e = r->element[0];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
		    !bg_client_reply_is_str(e->element[0]) ||
		    bg_client_copy_id(out, BG_CLIENT_ENTRY_ID_MAX,
				      e->element[0]->str, e->element[0]->len))
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "XREVRANGE: malformed entry");
	}
	freeReplyObject(r);
	return rc;
}
