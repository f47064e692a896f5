/* client/redis.c - the small Redis readers and writers every libbygate
 * command shares: variadic commands, MULTI/EXEC, string lists, JSON values
 * under a key, stream entries, and the online tests of WIRE 5.1/5.2. */
#include "client/client_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/slot.h"
#include "wire/send.h"
#include "wire/ids.h"
#include "wire/route.h"

#define MAX_ARGS 16

int bg_client_cmd(struct bg_client *c, redisReply **out, ...)
{
	const char *argv[MAX_ARGS];
	int argc = 0;
	va_list ap;
	va_start(ap, out);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		if (argc < MAX_ARGS)
			argv[argc++] = a;
	va_end(ap);
	redisReply *r = NULL;
	int rc = bg_client_command(c, &r, argc, argv, NULL);
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return rc;
}

/* The first error reply of an EXEC reply, or NULL. */
static const redisReply *exec_error(const redisReply *r)
{
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++)
		if (r->element[i]->type == REDIS_REPLY_ERROR)
			return r->element[i];
	return NULL;
}

static int transact_one(struct bg_client *c, const char *what, int n,
			const char *const *const *cmds, redisReply **exec);

/* The slot of one command of a transaction (cluster/slot.h). */
static int slot_of(const char *const *cmd)
{
	int argc = 0;
	while (cmd[argc])
		argc++;
	return bg_slot_of_command(argc, (const char *const *)cmd, NULL, NULL);
}

/* Under Redis Cluster a transaction whose keys span slots is applied as
 * one transaction per slot, in the order of each slot's first command, as
 * by-framework writes cross-entity indexes under Cluster ("separate
 * best-effort calls"): each part is atomic, a failure stops before the
 * next part (the parts before it stay applied) and is reported. The EXEC
 * reply is put back together in the commands' order. */
static int transact_by_slot(struct bg_client *c, const char *what, int n,
			    const char *const *const *cmds, redisReply **exec)
{
	enum { MAX = 16 };
	int slot[MAX], done[MAX] = { 0 };
	redisReply *all = calloc(1, sizeof(*all));
	redisReply **el = calloc((size_t)n, sizeof(*el));
	int rc = all && el ? 0 : bg_client_fail(c, -ENOMEM, "out of memory");
	for (int i = 0; rc == 0 && i < n; i++)
		slot[i] = slot_of(cmds[i]);
	for (int i = 0; rc == 0 && i < n; i++) {
		if (done[i])
			continue;
		const char *const *part[MAX];
		int idx[MAX], k = 0;
		for (int j = i; j < n; j++)
			if (!done[j] && slot[j] == slot[i]) {
				idx[k] = j;
				part[k++] = cmds[j];
				done[j] = 1;
			}
		redisReply *r = NULL;
		rc = transact_one(c, what, k, part, &r);
		for (int m = 0; rc == 0 && m < k; m++) {
			el[idx[m]] = r->element[m];
			r->element[m] = NULL;
		}
		freeReplyObject(r);
	}
	if (rc == 0) {
		all->type = REDIS_REPLY_ARRAY;
		all->elements = (size_t)n;
		all->element = el;
		*exec = all;
		return 0;
	}
	for (int i = 0; el && i < n; i++)
		freeReplyObject(el[i]);
	free(el);
	free(all);
	return rc;
}

int bg_client_transact(struct bg_client *c, const char *what, int n,
		       const char *const *const *cmds, redisReply **exec)
{
	*exec = NULL;
	if (c->cluster && n > 1 && n <= 16) {
		for (int i = 1; i < n; i++)
			if (slot_of(cmds[i]) != slot_of(cmds[0]))
				return transact_by_slot(c, what, n, cmds, exec);
	}
	return transact_one(c, what, n, cmds, exec);
}

static int transact_one(struct bg_client *c, const char *what, int n,
			const char *const *const *cmds, redisReply **exec)
{
	enum { MAX_CMDS = 14 };
	int argc[MAX_CMDS + 2];
	const char **argv[MAX_CMDS + 2];
	const char *multi[] = { "MULTI" }, *ex[] = { "EXEC" };
	const size_t *lens[MAX_CMDS + 2] = { 0 };
	redisReply *r[MAX_CMDS + 2];
	*exec = NULL;
	if (n > MAX_CMDS)
		return bg_client_fail(c, -EINVAL, "%s: too many commands",
				      what);
	argc[0] = 1;
	argv[0] = multi;
	for (int i = 0; i < n; i++) {
		int k = 0;
		while (cmds[i][k])
			k++;
		argc[i + 1] = k;
		argv[i + 1] = (const char **)cmds[i];
	}
	argc[n + 1] = 1;
	argv[n + 1] = ex;
	int rc = bg_client_pipeline(c, r, n + 2, argc,
				    (const char **const *)argv, lens);
	if (rc)
		return rc;
	const redisReply *err = NULL;
	for (int i = 0; i < n + 2 && !err; i++)
		if (r[i]->type == REDIS_REPLY_ERROR)
			err = r[i];
	if (!err)
		err = exec_error(r[n + 1]);
	if (err)
		rc = bg_client_fail(c, BG_CLIENT_EREDIS, "%s: %.400s", what,
				    err->str ? err->str : "error");
	else if (r[n + 1]->type != REDIS_REPLY_ARRAY ||
		 (int)r[n + 1]->elements != n)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "%s: unexpected EXEC reply", what);
	for (int i = 0; i < n + 1; i++)
		freeReplyObject(r[i]);
	if (rc == 0)
		*exec = r[n + 1];
	else
		freeReplyObject(r[n + 1]);
	return rc;
}

int bg_client_eval(struct bg_client *c, const char *script, int argc,
		   const char **argv, const size_t *lens, redisReply **out)
{
	enum { MAX_EVAL_ARGS = 30 };
	const char *a[MAX_EVAL_ARGS + 2];
	size_t l[MAX_EVAL_ARGS + 2];
	char sha[41];
	*out = NULL;
	if (argc > MAX_EVAL_ARGS)
		return bg_client_fail(c, -EINVAL, "EVAL: too many arguments");
	if (bg_script_sha1(sha, script) != 0)
		return bg_client_fail(c, -ENOMEM, "EVAL: no SHA-1");
	a[0] = "EVALSHA";
	a[1] = sha;
	for (int i = 0; i < argc; i++) {
		a[i + 2] = argv[i];
		l[i + 2] = lens ? lens[i] : strlen(argv[i]);
	}
	l[0] = 7;
	l[1] = 40;
	int rc = bg_client_command(c, out, argc + 2, a, l);
	if (rc == BG_CLIENT_EREDIS && strstr(c->errmsg, "NOSCRIPT")) {
		a[0] = "EVAL"; /* not loaded (a restarted or flushed Redis) */
		a[1] = script;
		l[0] = 4;
		l[1] = strlen(script);
		rc = bg_client_command(c, out, argc + 2, a, l);
	}
	return rc;
}

int bg_client_key0(struct bg_client *c, struct bg_buf *out,
		   enum bg_key_kind kind)
{
	struct bg_str none = { NULL, 0 };
	bg_buf_reset(out);
	return bg_key_build(out, c->cfg.key_schema, kind, none, none, none);
}

int64_t bg_client_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bg_client_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bg_client_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- string lists ---------------------------------------------------- */

int bg_client_strs_add(struct bg_client_strs *s, const char *p, size_t len)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, p, len);
	copy[len] = '\0';
	s->v[s->n++] = copy;
	return 0;
}

bool bg_client_strs_has(const struct bg_client_strs *s, const char *p)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], p))
			return true;
	return false;
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void bg_client_strs_sort(struct bg_client_strs *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof *s->v, by_str);
}

void bg_client_strs_free(struct bg_client_strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

int bg_client_strs_from_reply(struct bg_client_strs *out, const redisReply *r)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		const redisReply *e = r->element[i];
		/* ids with NUL bytes cannot be used as C strings: skipped */
		if (!bg_client_reply_is_str(e) || memchr(e->str, 0, e->len))
			continue;
		int rc = bg_client_strs_add(out, e->str, e->len);
		if (rc)
			return rc;
	}
	return 0;
}

int bg_client_smembers(struct bg_client *c, const char *key,
		       struct bg_client_strs *out)
{
	redisReply *r;
	int rc = bg_client_cmd(c, &r, "SMEMBERS", key, NULL);
	if (rc)
		return rc;
	rc = bg_client_strs_from_reply(out, r);
	freeReplyObject(r);
	return rc;
}

int bg_client_scan_star(struct bg_client *c, const char *pattern,
			struct bg_client_strs *out)
{
	return bg_client_scan_star_type(c, pattern, NULL, out);
}

/* One server's SCAN of pattern, what the '*' matched added to out. */
static int scan_node(struct bg_client *c, int node, const char *pattern,
		     const char *type, size_t pre, size_t suf,
		     struct bg_client_strs *out)
{
	char cursor[32] = "0";
	int rc = 0;
	do {
		redisReply *r = NULL;
		const char *argv[] = { "SCAN",	cursor, "MATCH", pattern,
				       "COUNT", "1000", "TYPE",	 type };
		rc = bg_client_command_on(c, node, &r, type ? 8 : 6, argv,
					  NULL);
		if (rc == 0 &&
		    (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		     !bg_client_reply_is_str(r->element[0]) ||
		     r->element[0]->len >= sizeof cursor))
			rc = bg_client_fail(c, BG_CLIENT_EPROTO,
					    "SCAN: unexpected reply");
		if (rc == 0) {
			memcpy(cursor, r->element[0]->str, r->element[0]->len);
			cursor[r->element[0]->len] = '\0';
		}
		const redisReply *keys = rc ? NULL : r->element[1];
		for (size_t i = 0; rc == 0 && keys->type == REDIS_REPLY_ARRAY &&
				   i < keys->elements;
		     i++) {
			const redisReply *k = keys->element[i];
			if (bg_client_reply_is_str(k) && k->len > pre + suf &&
			    !memchr(k->str, 0, k->len))
				rc = bg_client_strs_add(out, k->str + pre,
							k->len - pre - suf);
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0"));
	return rc;
}

int bg_client_scan_star_type(struct bg_client *c, const char *pattern,
			     const char *type, struct bg_client_strs *out)
{
	const char *star = strchr(pattern, '*');
	if (star == NULL)
		return bg_client_fail(c, -EINVAL, "SCAN: no '*' in %s",
				      pattern);
	size_t pre = (size_t)(star - pattern), suf = strlen(star + 1);
	int node[256];
	int n = bg_client_nodes(c, node, 256);
	int rc = n < 0 ? n : 0;
	for (int i = 0; rc == 0 && i < n; i++)
		rc = scan_node(c, node[i], pattern, type, pre, suf, out);
	return rc;
}

int bg_client_get_object(struct bg_client *c, const char *key, json_t **out)
{
	redisReply *r;
	*out = NULL;
	int rc = bg_client_cmd(c, &r, "GET", key, NULL);
	if (rc)
		return rc;
	if (bg_client_reply_is_str(r)) {
		json_t *v = json_loadb(r->str, r->len, 0, NULL);
		if (json_is_object(v))
			*out = v;
		else
			json_decref(v);
	}
	freeReplyObject(r);
	return 0;
}

int bg_client_xadd(struct bg_client *c, const char *key, const char *data,
		   char *id_out)
{
	redisReply *r;
	int rc = bg_client_cmd(c, &r, "XADD", key, "*", "data", data, NULL);
	if (rc)
		return rc;
	if (!bg_client_reply_is_str(r) ||
	    (id_out &&
	     bg_client_copy_id(id_out, BG_CLIENT_ENTRY_ID_MAX, r->str, r->len)))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "XADD: unexpected reply");
	freeReplyObject(r);
	return rc;
}

const char *bg_client_jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

bool bg_client_jtruthy(const json_t *v)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_TRUE:
		return true;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0.0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	default:
		return false;
	}
}

int64_t bg_client_jint(const json_t *obj, const char *key)
{
	return bg_route_int(obj, key);
}

/* ---- streams ---------------------------------------------------------- */

int bg_client_entry(const redisReply *e, const char **id,
		    const redisReply **data)
{
	*data = NULL;
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
	    !bg_client_reply_is_str(e->element[0]) ||
	    e->element[0]->len >= BG_CLIENT_ENTRY_ID_MAX)
		return -EINVAL;
	*id = e->element[0]->str;
	const redisReply *f = e->elements > 1 ? e->element[1] : NULL;
	for (size_t i = 0;
	     f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i];
		if (bg_client_reply_is_str(k) && k->len == 4 &&
		    !memcmp(k->str, "data", 4) &&
		    bg_client_reply_is_str(f->element[i + 1]))
			*data = f->element[i + 1];
	}
	return 0;
}

const redisReply *bg_client_xread_entries(const redisReply *r)
{
	static const redisReply none = { .type = REDIS_REPLY_ARRAY };
	if (r->type == REDIS_REPLY_NIL)
		return &none;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		return NULL;
	const redisReply *s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
	    s->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	return s->element[1];
}

/* ---- online tests (WIRE 5.1, 5.2) -------------------------------------- */

bool bg_client_lease_online(const char *raw, size_t len)
{
	return bg_route_lease_online(raw, len);
}

int bg_client_worker_online(struct bg_client *c, const char *worker,
			    bool *online)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	*online = false;
	if (worker == NULL || worker[0] == '\0')
		return 0; /* an empty member names no lease */
	int rc = bg_client_key(c, &key, BG_KEY_WORKER_ONLINE, worker);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "GET", key.p, NULL);
	if (rc == 0 && bg_client_reply_is_str(r))
		*online = bg_client_lease_online(r->str, r->len);
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

int bg_client_online_workers(struct bg_client *c, const char *agent_type,
			     struct bg_client_strs *out)
{
	struct bg_client_strs members = { 0 };
	struct bg_buf key = { 0 };
	int rc = bg_client_key(c, &key, BG_KEY_AGENT_TYPE_MEMBERS, agent_type);
	if (rc == 0)
		rc = bg_client_smembers(c, key.p, &members);
	for (size_t i = 0; rc == 0 && i < members.n; i++) {
		bool online;
		rc = bg_client_worker_online(c, members.v[i], &online);
		if (rc == 0 && online)
			rc = bg_client_strs_add(out, members.v[i],
						strlen(members.v[i]));
	}
	bg_client_strs_free(&members);
	bg_buf_free(&key);
	return rc;
}

int bg_client_admin_header(struct bg_send_header *h, char message_id[33],
			   char trace_id[33])
{
	int rc = bg_uuid_hex(message_id, false);
	if (rc == 0)
		rc = bg_uuid_hex(trace_id, false);
	memset(h, 0, sizeof *h);
	h->message_id = bg_str_c(message_id);
	h->session_id = BG_STR_LIT("admin");
	h->trace_id = bg_str_c(trace_id);
	return rc;
}
