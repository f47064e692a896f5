/* client/records.c - reading execution records from a session registry
 * (WIRE 6.1): all of a session's, or the one a message id maps to. The
 * record bytes are handed over as stored; judging them is the caller's. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_PREFIX "exec:"
#define MSG_MAP_PREFIX "msg_map:"

int bg_client_list_executions(struct bg_client *c, const char *session,
			      bg_record_cb cb, void *arg)
{
	c->errmsg[0] = '\0';
	struct bg_buf key = { 0 };
	if (bg_client_key(c, &key, BG_KEY_SESSION_REGISTRY, session)) {
		bg_buf_free(&key);
		return bg_client_fail(c, -EINVAL, "bad session");
	}
	const char *argv[] = { "HGETALL", key.p };
	redisReply *r;
	int rc = bg_client_command(c, &r, 2, argv, NULL);
	bg_buf_free(&key);
	if (rc)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
		freeReplyObject(r);
		return bg_client_fail(c, BG_CLIENT_EPROTO,
				      "HGETALL: unexpected reply");
	}
	int n = 0;
	size_t plen = strlen(EXEC_PREFIX);
	for (size_t i = 0; rc == 0 && i < r->elements; i += 2) {
		const redisReply *f = r->element[i], *v = r->element[i + 1];
		if (!bg_client_reply_is_str(f) || !bg_client_reply_is_str(v) ||
		    f->len <= plen || memcmp(f->str, EXEC_PREFIX, plen))
			continue;
		struct bg_client_record rec = { f->str + plen, v->str, v->len };
		rc = cb(arg, &rec);
		n++;
	}
	freeReplyObject(r);
	return rc < 0 ? rc : n;
}

/* HGET key field into a malloc()ed copy; -ENOENT when absent. */
static int hget(struct bg_client *c, const struct bg_buf *key,
		const struct bg_buf *field, char **out, size_t *len)
{
	const char *argv[] = { "HGET", key->p, field->p };
	size_t lens[] = { 4, key->len, field->len };
	redisReply *r;
	int rc = bg_client_command(c, &r, 3, argv, lens);
	if (rc)
		return rc;
	if (r->type == REDIS_REPLY_NIL)
		rc = -ENOENT;
	else if (!bg_client_reply_is_str(r))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "HGET: unexpected reply");
	else if ((*out = malloc(r->len + 1)) == NULL)
		rc = -ENOMEM;
	if (rc == 0) {
		memcpy(*out, r->str, r->len);
		(*out)[r->len] = '\0';
		*len = r->len;
	}
	freeReplyObject(r);
	return rc;
}

int bg_client_get_execution(struct bg_client *c, const char *session,
			    const char *message_id, char **json_out,
			    size_t *len_out)
{
	c->errmsg[0] = '\0';
	*json_out = NULL;
	struct bg_buf key = { 0 }, field = { 0 };
	char *exec_id = NULL;
	size_t exec_len = 0, len = 0;
	int rc = bg_client_key(c, &key, BG_KEY_SESSION_REGISTRY, session);
	if (rc || message_id == NULL || message_id[0] == '\0')
		rc = bg_client_fail(c, -EINVAL, "bad session or message id");
	if (!rc)
		rc = bg_buf_printf(&field, MSG_MAP_PREFIX "%s", message_id);
	if (!rc)
		rc = hget(c, &key, &field, &exec_id, &exec_len);
	if (!rc) {
		bg_buf_reset(&field);
		rc = bg_buf_puts(&field, EXEC_PREFIX);
	}
	if (!rc)
		rc = bg_buf_append(&field, exec_id, exec_len);
	if (!rc)
		rc = hget(c, &key, &field, json_out, &len);
	if (!rc && len_out)
		*len_out = len;
	free(exec_id);
	bg_buf_free(&key);
	bg_buf_free(&field);
	return rc;
}
