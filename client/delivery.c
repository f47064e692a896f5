/* client/delivery.c - DeliveryGate.dispatch_ready (WIRE 7): the pending
 * deliveries of one execution, highest priority first, XADDed to their
 * control stream at most once ever. The gate's delivered set (the pending
 * stream's key + ":bygate_delivered", docs/client.md) records each pending
 * entry id in the same script call as its XADD. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/delivery.h"
#include "wire/json.h"

#define READ_COUNT "500"

/* KEYS[1] delivered set, KEYS[2] delivery stream; ARGV[1] pending entry
 * id, ARGV[2] command JSON. The stream type is checked before the SADD so
 * a failing XADD cannot leave an entry marked delivered. */
static const char deliver_script[] =
	"local t = redis.call('TYPE', KEYS[2])['ok']\n"
	"if t ~= 'none' and t ~= 'stream' then\n"
	"  return redis.error_reply('WRONGTYPE delivery stream is a ' .. t)\n"
	"end\n"
	"if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then\n"
	"  return redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])\n"
	"end\n"
	"return false\n";

struct pending {
	char id[BG_CLIENT_ENTRY_ID_MAX];
	int64_t priority;
	size_t order; /* stream order: Python's sort is stable */
	char *stream;
	char *payload;
};

struct pendings {
	struct pending *v;
	size_t n, cap;
};

static void pendings_free(struct pendings *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].stream);
		free(p->v[i].payload);
	}
	free(p->v);
}

/* Keep the entry if it is this execution's and usable. */
static int consider(struct bg_client *c, const char *id, const redisReply *data,
		    const char *exec_id, struct pendings *out, int *skipped)
{
	struct bg_str raw = { data->str, data->len }, payload;
	struct bg_buf expect = { 0 };
	json_t *d = json_loadb(raw.p, raw.len, 0, NULL);
	int rc = 0;
	if (!json_is_object(d) ||
	    strcmp(bg_client_jstr(d, "execution_id"), exec_id))
		goto done;
	const char *stream = bg_client_jstr(d, "delivery_stream");
	const char *type = bg_client_jstr(d, "target_agent_type");
	if (bg_client_key(c, &expect, BG_KEY_AGENT_TYPE_CTRL, type) ||
	    strcmp(expect.p, stream) ||
	    bg_json_obj_get(raw, "command_payload", &payload) ||
	    bg_json_type(payload) != '{') {
		(*skipped)++;
		goto done;
	}
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 8;
		struct pending *v = realloc(out->v, cap * sizeof *v);
		if (v == NULL) {
			rc = -ENOMEM;
			goto done;
		}
		out->v = v;
		out->cap = cap;
	}
	struct pending *p = &out->v[out->n];
	strcpy(p->id, id);
	p->priority = bg_client_jint(d, "priority");
	p->order = out->n;
	p->stream = strdup(stream);
	p->payload = strndup(payload.p, payload.len);
	out->n++;
	if (p->stream == NULL || p->payload == NULL)
		rc = -ENOMEM;
done:
	json_decref(d);
	bg_buf_free(&expect);
	return rc;
}

/* XREAD the whole pending stream from 0-0, keeping exec_id's entries. */
static int read_pending(struct bg_client *c, const char *key,
			const char *exec_id, struct pendings *out, int *skipped)
{
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	for (;;) {
		redisReply *r;
		int rc = bg_client_cmd(c, &r, "XREAD", "COUNT", READ_COUNT,
				       "STREAMS", key, last, NULL);
		if (rc)
			return rc;
		const redisReply *entries = bg_client_xread_entries(r);
		size_t n = entries ? entries->elements : 0;
		if (entries == NULL)
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "XREAD: unexpected reply");
		for (size_t i = 0; rc == 0 && i < n; i++) {
			const char *id;
			const redisReply *data;
			if (bg_client_entry(entries->element[i], &id, &data)) {
				rc = bg_client_fail(c, BG_CLIENT_EPROTO,
						    "XREAD: malformed entry");
				break;
			}
			strcpy(last, id);
			if (data)
				rc = consider(c, id, data, exec_id, out,
					      skipped);
		}
		freeReplyObject(r);
		if (rc || n == 0)
			return rc;
	}
}

static int by_priority(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

int bg_client_delivered_key(struct bg_client *c, struct bg_buf *out)
{
	int rc = bg_client_key0(c, out, BG_KEY_PENDING_DELIVERIES);
	return rc ? rc : bg_buf_puts(out, ":bygate_delivered");
}

/* Under Redis Cluster the delivered set and the delivery stream are in
 * different slots: the entry is XADDed, then marked delivered. A gate cut
 * off between the two delivers it again the next time (at least once; the
 * worker that reads the copy finds its message's record and does not run
 * it twice); the standalone script's at-most-once needs both keys in one
 * call. */
static int deliver_split(struct bg_client *c, const char *set,
			 const struct pending *p, bool *done)
{
	redisReply *r = NULL;
	*done = false;
	int rc = bg_client_cmd(c, &r, "SISMEMBER", set, p->id, NULL);
	bool seen = rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer;
	freeReplyObject(r);
	if (rc || seen)
		return rc;
	rc = bg_client_cmd(c, &r, "XADD", p->stream, "*", "data", p->payload,
			   NULL);
	freeReplyObject(r);
	if (rc == 0)
		rc = bg_client_cmd(c, NULL, "SADD", set, p->id, NULL);
	*done = rc == 0;
	return rc;
}

static int deliver(struct bg_client *c, const char *set,
		   const struct pending *p, bool *done)
{
	if (c->cluster)
		return deliver_split(c, set, p, done);
	redisReply *r;
	int rc = bg_client_cmd(c, &r, "EVAL", deliver_script, "2", set,
			       p->stream, p->id, p->payload, NULL);
	*done = rc == 0 && bg_client_reply_is_str(r);
	freeReplyObject(r);
	return rc;
}

int bg_client_dispatch(struct bg_client *c, const char *exec_id,
		       struct bg_dispatch_result *res)
{
	struct bg_buf key = { 0 }, set = { 0 };
	struct pendings p = { 0 };
	memset(res, 0, sizeof *res);
	int rc = bg_client_key0(c, &key, BG_KEY_PENDING_DELIVERIES);
	if (rc == 0)
		rc = bg_client_delivered_key(c, &set);
	if (rc == 0)
		rc = read_pending(c, key.p, exec_id, &p, &res->skipped);
	if (rc == 0 && p.n > 1)
		qsort(p.v, p.n, sizeof *p.v, by_priority);
	res->found = (int)p.n;
	for (size_t i = 0; rc == 0 && i < p.n; i++) {
		bool done;
		rc = deliver(c, set.p, &p.v[i], &done);
		res->delivered += done;
	}
	pendings_free(&p);
	bg_buf_free(&key);
	bg_buf_free(&set);
	return rc;
}

int bg_client_dispatch_ready(struct bg_client *c, const char *execution_id,
			     int *delivered)
{
	struct bg_dispatch_result res;
	c->errmsg[0] = '\0';
	if (delivered)
		*delivered = 0;
	if (execution_id == NULL || execution_id[0] == '\0')
		return bg_client_fail(c, -EINVAL,
				      "an execution id is "
				      "required");
	int rc = bg_client_dispatch(c, execution_id, &res);
	if (delivered)
		*delivered = res.delivered;
	return rc;
}
