/* client/history.c - a session's conversation as bygated keeps it
 * (docs/history.md): the last messages of its list. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bg_client_history(struct bg_client *c, const char *session, int limit,
		      char **json_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	if (session == NULL || session[0] == '\0')
		return bg_client_fail(c, -EINVAL, "a session id is required");
	if (limit <= 0 || limit > BG_HISTORY_MAX_LIMIT)
		return bg_client_fail(c, -EINVAL, "limit must be 1..%d",
				      BG_HISTORY_MAX_LIMIT);
	struct bg_buf key = { 0 };
	redisReply *r = NULL, *len = NULL;
	char from[16];
	snprintf(from, sizeof from, "-%d", limit);
	int rc = bg_client_key(c, &key, BG_KEY_SESSION_HISTORY, session);
	if (rc == 0)
		rc = bg_client_cmd(c, &len, "LLEN", key.p, NULL);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "LRANGE", key.p, from, "-1", NULL);
	json_t *doc = json_object(), *a = json_array();
	json_object_set_new(doc, "session_id", json_string(session));
	json_object_set_new(doc, "key", json_string(key.p ? key.p : ""));
	json_object_set_new(doc, "length",
			    json_integer(len && len->type == REDIS_REPLY_INTEGER
						 ? len->integer
						 : 0));
	json_object_set_new(doc, "messages", a);
	for (size_t i = 0;
	     rc == 0 && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i];
		bool str = e->type == REDIS_REPLY_STRING;
		json_t *m =
			str ? json_loadb(e->str, e->len, JSON_ALLOW_NUL, NULL)
			    : NULL;
		if (!json_is_object(m)) { /* written by hand: shown raw */
			json_decref(m);
			m = json_object();
			json_object_set_new(m, "raw",
					    str ? json_stringn_nocheck(e->str,
								       e->len)
						: json_string(""));
		}
		json_array_append_new(a, m);
	}
	freeReplyObject(r);
	freeReplyObject(len);
	bg_buf_free(&key);
	if (rc == 0)
		*json_out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (rc == 0 && *json_out == NULL)
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	return rc;
}
