/* state/tool/check.c - bygate-state check: the state against Redis. Every
 * journaled and in-flight entry must be pending under this worker, every
 * entry pending under it must be known here, and the live lease must hold
 * the stored token; while bygated runs, what it settles by itself within
 * a turn is information, not a discrepancy. Reads Redis, never writes. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <hiredis/hiredis.h>

#include "client/conn.h"
#include "conf/config.h"
#include "state/state.h"
#include "client/cluster.h"
#include "state/tool/tool.h"
#include "wire/keys.h"

#define PEL_PAGE 1000 /* XPENDING count per stream */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

struct check {
	redisContext *redis;	    /* standalone */
	struct bg_cluster *cluster; /* under Redis Cluster (client/cluster.h) */
	const struct bg_config *cfg;
	const char *group, *worker, *state_dir;
	bool running; /* bygated holds <state_dir>/bygated.lock */
	bool lost;    /* the connection failed: exit 3 */
	struct bg_tool_items known;
	struct bg_tool_items streams; /* id unused */
	json_t *findings;
	int agree, discrepancies, infos;
};

/* bygated holds an flock on <state_dir>/bygated.lock while it runs; the
 * kernel lists held locks by device and inode in /proc/locks, so looking
 * takes no lock (a probe with flock could make bygated's start fail). */
static bool bygated_running(const char *state_dir)
{
	char path[PATH_MAX], line[512];
	struct stat sb;
	snprintf(path, sizeof path, "%s/bygated.lock", state_dir);
	FILE *f = stat(path, &sb) == 0 ? fopen("/proc/locks", "re") : NULL;
	bool held = false;
	while (f && !held && fgets(line, sizeof line, f)) {
		if (strstr(line, "->"))
			continue; /* a waiter, not a holder */
		for (char *tok = strtok(line, " \t\n"); tok && !held;
		     tok = strtok(NULL, " \t\n")) {
			unsigned maj, min;
			unsigned long long ino;
			char end;
			if (sscanf(tok, "%x:%x:%llu%c", &maj, &min, &ino,
				   &end) == 3)
				held = maj == major(sb.st_dev) &&
				       min == minor(sb.st_dev) &&
				       ino == (unsigned long long)sb.st_ino;
		}
	}
	if (f)
		fclose(f);
	return held;
}

static void finding(struct check *c, const char *verdict, const char *what,
		    struct bg_str stream, struct bg_str id, const char *fmt,
		    ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	c->agree += verdict[0] == 'o';
	c->discrepancies += verdict[0] == 'd';
	c->infos += verdict[0] == 'i';
	json_t *row = json_pack("{s:s s:s s:s}", "check", what, "verdict",
				verdict, "reason", reason);
	if (stream.len || id.len) {
		json_object_set_new(row, "stream", bg_tool_jtext(stream));
		json_object_set_new(row, "entry_id", bg_tool_jtext(id));
	}
	json_array_append_new(c->findings, row);
}

/* What the tool cannot settle while bygated runs is information, not a
 * discrepancy: bygated resolves it on its own within a loop turn or at
 * its next reconcile. */
static const char *soft(const struct check *c)
{
	return c->running ? "info" : "discrepancy";
}

static redisReply *command(struct check *c, int argc, const struct bg_str *argv)
{
	const char *v[8];
	size_t len[8];
	for (int i = 0; i < argc && i < 8; i++) {
		v[i] = argv[i].p;
		len[i] = argv[i].len;
	}
	if (c->cluster) {
		char err[512];
		redisReply *r = NULL;
		if (bg_cluster_command_raw(c->cluster, &r, argc, v, len, err,
					   sizeof err) != 0) {
			c->lost = true;
			fprintf(stderr, "bygate-state: Redis: %s\n", err);
		}
		return r;
	}
	redisReply *r = redisCommandArgv(c->redis, argc, v, len);
	if (r == NULL) {
		c->lost = true;
		fprintf(stderr, "bygate-state: Redis: %s\n",
			c->redis->errstr[0] ? c->redis->errstr
					    : "connection lost");
	}
	return r;
}

/* XPENDING stream group id id 1. 1 pending (consumer in *who), 0 not
 * pending, -1 error reply or unexpected shape (text in *who), -2 the
 * connection failed. */
static int entry_pending(struct check *c, struct bg_str stream,
			 struct bg_str id, struct bg_buf *who)
{
	const struct bg_str argv[] = {
		BG_STR_LIT("XPENDING"), stream, bg_str_c(c->group), id, id,
		BG_STR_LIT("1")
	};
	redisReply *r = command(c, 6, argv);
	if (r == NULL)
		return -2;
	int rc = -1;
	bg_buf_reset(who);
	if (r->type == REDIS_REPLY_ERROR) {
		bg_buf_append(who, r->str, r->len);
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
		rc = 0;
	} else if (r->type == REDIS_REPLY_ARRAY &&
		   r->element[0]->type == REDIS_REPLY_ARRAY &&
		   r->element[0]->elements >= 2 &&
		   r->element[0]->element[1]->type == REDIS_REPLY_STRING) {
		redisReply *name = r->element[0]->element[1];
		bg_buf_append(who, name->str, name->len);
		rc = 1;
	} else {
		bg_buf_puts(who, "unexpected XPENDING reply");
	}
	freeReplyObject(r);
	return rc;
}

static bool is_worker(const struct check *c, const struct bg_buf *who)
{
	return who->p && strcmp(who->p, c->worker) == 0;
}

/* What a journal or inflight entry's XPENDING answer means. */
static const struct verdicts {
	const char *what, *pending, *elsewhere, *acked;
} entry_verdicts[] = {
	{ "journal",
	  "finish journaled, entry pending: not applied yet (bygated "
	  "re-sends it)",
	  "journaled here but pending", /* under consumer C */
	  "stale journal entry (finish applied, delete pending)" },
	{ "inflight", "in flight here, entry pending",
	  "in flight here but pending",
	  "in flight here but not pending in Redis (finish applied or entry "
	  "gone; the mirror entry is stale)" },
};

/* A journaled finish pending under us is not applied yet (bygated re-sends
 * it); acked, it was applied and the journal delete is still to come. An
 * execution in flight must be pending under us. */
static void check_entry(struct check *c, const struct bg_tool_item *it)
{
	const struct verdicts *v = &entry_verdicts[it->kind == 'i'];
	struct bg_str s = { it->stream, it->slen }, id = { it->id, it->ilen };
	struct bg_buf who = { 0 };
	int p = entry_pending(c, s, id, &who);
	if (p == 1 && is_worker(c, &who))
		finding(c, "ok", v->what, s, id, "%s", v->pending);
	else if (p == 1)
		finding(c, "discrepancy", v->what, s, id,
			"%s under consumer %s", v->elsewhere, who.p);
	else if (p == 0)
		finding(c, soft(c), v->what, s, id, "%s", v->acked);
	else if (p == -1)
		finding(c, "discrepancy", v->what, s, id,
			"cannot tell whether the entry is pending: %s", who.p);
	bg_buf_free(&who);
}

/* This consumer's pending entries of one stream that LMDB does not know.
 * A missing stream or group has nothing pending. */
static void check_own_pel(struct check *c, struct bg_str stream)
{
	const struct bg_str argv[] = {
		BG_STR_LIT("XPENDING"), stream,
		bg_str_c(c->group),	BG_STR_LIT("-"),
		BG_STR_LIT("+"),	BG_STR_LIT(STRINGIFY(PEL_PAGE)),
		bg_str_c(c->worker)
	};
	redisReply *r = command(c, 7, argv);
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7))
		finding(c, "discrepancy", "pel", stream, BG_STR_LIT(""),
			"XPENDING failed: %s", r->str);
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		struct bg_str id = { e->element[0]->str, e->element[0]->len };
		if (bg_tool_items_find(&c->known, stream, id) == NULL)
			finding(c, soft(c), "pel", stream, id,
				"pending in Redis, unknown here (will be "
				"reconciled or reclaimed)");
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= PEL_PAGE)
		finding(c, "info", "pel", stream, BG_STR_LIT(""),
			"only the first %d pending entries checked", PEL_PAGE);
	freeReplyObject(r);
}

static void check_lease_value(struct check *c, struct bg_str token,
			      redisReply *r)
{
	const struct bg_str none = BG_STR_LIT("");
	if (r->type == REDIS_REPLY_NIL) {
		finding(c, c->running ? "discrepancy" : "ok", "lease", none,
			none,
			c->running
				? "bygated runs but the lease key is missing "
				  "(lease lapsed)"
				: "no live lease (bygated not running)");
		return;
	}
	json_t *j = r->type == REDIS_REPLY_STRING
			    ? json_loadb(r->str, r->len, 0, NULL)
			    : NULL;
	json_t *tok = json_object_get(j, "token");
	const char *live = json_is_string(tok) ? json_string_value(tok) : "";
	if (token.len == 0)
		finding(c, "info", "lease", none, none,
			"a lease is live but no token is stored here");
	else if (live[0] == '\0')
		finding(c, "discrepancy", "lease", none, none,
			"the live lease holds no token (legacy or foreign "
			"worker)");
	else if (bg_str_eq(token, live))
		finding(c, "ok", "lease", none, none,
			"the live lease holds the stored token %.*s",
			(int)token.len, token.p);
	else
		finding(c, "discrepancy", "lease", none, none,
			"the live lease holds token %s, not the stored %.*s "
			"(another process holds worker id %s)",
			live, (int)token.len, token.p, c->worker);
	json_decref(j);
}

/* The lease token in meta against GET <worker online key>. */
static void check_lease(struct check *c, struct bg_state *st)
{
	struct bg_buf token = { 0 }, key = { 0 };
	if (bg_state_meta_get(st, "lease_token", &token))
		bg_buf_reset(&token);
	if (bg_key_build(&key, c->cfg->key_schema, BG_KEY_WORKER_ONLINE,
			 bg_str_c(c->worker), BG_STR_LIT(""), BG_STR_LIT(""))) {
		finding(c, "discrepancy", "lease", BG_STR_LIT(""),
			BG_STR_LIT(""), "invalid worker id");
	} else {
		const struct bg_str argv[] = { BG_STR_LIT("GET"),
					       { key.p, key.len } };
		redisReply *r = command(c, 2, argv);
		struct bg_str tok = { token.p ? token.p : "", token.len };
		if (r)
			check_lease_value(c, tok, r);
		freeReplyObject(r);
	}
	bg_buf_free(&token);
	bg_buf_free(&key);
}

static int add_stream(struct check *c, struct bg_str stream)
{
	for (size_t i = 0; i < c->streams.n; i++)
		if (bg_tool_item_is(&c->streams.v[i], stream, BG_STR_LIT("")))
			return 0;
	return bg_tool_items_add(&c->streams, stream, BG_STR_LIT(""), 's');
}

static int known_journal(void *arg, struct bg_str stream, struct bg_str id,
			 struct bg_str finish)
{
	struct check *c = arg;
	int rc = bg_tool_items_add(&c->known, stream, id, 'j');
	return rc ? rc : add_stream(c, stream);
}

static int known_exec(void *arg, struct bg_str stream, struct bg_str id,
		      const struct bg_state_exec *e)
{
	struct check *c = arg;
	int rc = bg_tool_items_add(&c->known, stream, id, 'i');
	return rc ? rc : add_stream(c, stream);
}

static int known_hist(void *arg, const struct bg_state_hist *h)
{
	return add_stream(arg, h->stream);
}

/* The configured agent-type streams and the worker stream. */
static int add_config_streams(struct check *c, bool from_file)
{
	struct bg_buf key = { 0 };
	int rc = 0;
	for (int i = 0; from_file && rc == 0 && i < c->cfg->n_agent_types;
	     i++) {
		bg_buf_reset(&key);
		rc = bg_key_build(&key, c->cfg->key_schema,
				  BG_KEY_AGENT_TYPE_CTRL,
				  bg_str_c(c->cfg->agent_types[i].name),
				  BG_STR_LIT(""), BG_STR_LIT(""));
		rc = rc ? rc : add_stream(c, (struct bg_str){ key.p, key.len });
	}
	bg_buf_reset(&key);
	if (rc == 0 && bg_key_build(&key, c->cfg->key_schema,
				    BG_KEY_WORKER_CTRL, bg_str_c(c->worker),
				    BG_STR_LIT(""), BG_STR_LIT("")) == 0)
		rc = add_stream(c, (struct bg_str){ key.p, key.len });
	bg_buf_free(&key);
	return rc;
}

/* Walk the state: the journal and inflight entries (known), every stream
 * they and the history name. Corrupt records are reported and skipped. */
static int load_known(struct check *c, struct bg_state *st)
{
	int rc = bg_state_journal_each(st, known_journal, c);
	if (rc == 0 || rc == BG_STATE_ECORRUPT)
		rc = bg_state_exec_each(st, known_exec, c);
	if (rc == 0 || rc == BG_STATE_ECORRUPT)
		rc = bg_state_hist_each(st, known_hist, c);
	if (rc == BG_STATE_ECORRUPT) {
		finding(c, "discrepancy", "state", BG_STR_LIT(""),
			BG_STR_LIT(""), "%s", bg_state_errmsg(st));
		rc = 0;
	}
	if (rc)
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
	return rc;
}

/* Connect, AUTH and SELECT as libbygate does (client/conn.h). Says why
 * not on stderr: "cannot connect to Redis at HOST:PORT: <reason>", or
 * "Redis AUTH: <reason>" (SELECT) when Redis refused or did not answer. */
static int redis_setup(struct check *c, const char *host, int port)
{
	char err[512];
	if (c->cfg->redis_cluster) {
		/* --redis HOST:PORT is the seed, else the config's */
		char seed[300];
		bool given = host != c->cfg->redis_host ||
			     port != c->cfg->redis_port;
		snprintf(seed, sizeof seed, "%s:%d", host, port);
		int rc = bg_cluster_open(c->cfg, given ? seed : NULL, NULL,
					 &c->cluster, err, sizeof err);
		if (rc)
			fprintf(stderr, "bygate-state: %s\n", err);
		return rc ? -1 : 0;
	}
	int rc = bg_client_redis_connect(c->cfg, host, port, &c->redis, err,
					 sizeof err);
	if (rc == BG_CLIENT_EREDIS || rc == BG_CLIENT_EIO)
		fprintf(stderr, "bygate-state: Redis %s\n", err);
	else if (rc)
		fprintf(stderr, "bygate-state: %s\n", err);
	return rc ? -1 : 0;
}

static const char *jget(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

static void print_check(struct check *c)
{
	size_t n = json_array_size(c->findings);
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(c->findings, i);
		const char *v = jget(f, "verdict"), *stream = jget(f, "stream");
		const char *id = jget(f, "entry_id");
		printf("%-5s %-8s %s%s%s%s%s\n",
		       v[0] == 'o'   ? "OK"
		       : v[0] == 'i' ? "INFO"
				     : "DIFF",
		       jget(f, "check"), stream ? stream : "",
		       stream ? " " : "", id ? id : "", stream ? ": " : "",
		       jget(f, "reason"));
	}
	printf("%s: %d agree, %d discrepancies, %d informational "
	       "(worker %s, group %s, bygated %s)\n",
	       c->discrepancies ? "DISAGREE" : "AGREE", c->agree,
	       c->discrepancies, c->infos, c->worker, c->group,
	       c->running ? "running" : "not running");
}

static void print_check_json(struct check *c)
{
	json_t *root = json_pack("{s:b s:s s:s s:s s:b s:i s:i s:i s:O}",
				 "agree", c->discrepancies == 0, "state_dir",
				 c->state_dir, "worker", c->worker, "group",
				 c->group, "bygated_running", c->running,
				 "agreements", c->agree, "discrepancies",
				 c->discrepancies, "informational", c->infos,
				 "findings", c->findings);
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(root);
}

static int parse_hostport(const char *arg, char **host, int *port)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	long p = colon ? strtol(colon + 1, &end, 10) : 0;
	if (colon == NULL || colon == arg || *end != '\0' || p < 1 || p > 65535)
		return -1;
	*host = strndup(arg, (size_t)(colon - arg));
	*port = (int)p;
	return *host ? 0 : -1;
}

static int run_check(struct check *c, struct bg_state *st, bool from_file)
{
	if (load_known(c, st) || add_config_streams(c, from_file))
		return BG_TOOL_EXIT_OPEN;
	for (size_t i = 0; !c->lost && i < c->known.n; i++)
		check_entry(c, &c->known.v[i]);
	for (size_t i = 0; !c->lost && i < c->streams.n; i++)
		check_own_pel(c, (struct bg_str){ c->streams.v[i].stream,
						  c->streams.v[i].slen });
	if (!c->lost)
		check_lease(c, st);
	return c->lost		  ? BG_TOOL_EXIT_OPEN
	       : c->discrepancies ? BG_TOOL_EXIT_FOUND
				  : BG_TOOL_EXIT_OK;
}

int bg_tool_check(struct bg_state *st, const struct bg_tool_args *a,
		  const struct bg_config *cfg, const char *state_dir)
{
	struct check c = { .cfg = cfg, .state_dir = state_dir };
	struct bg_buf meta_worker = { 0 };
	char *host = NULL;
	int port = cfg->redis_port;
	if (a->redis && parse_hostport(a->redis, &host, &port)) {
		fprintf(stderr, "bygate-state: --redis wants HOST:PORT\n");
		return BG_TOOL_EXIT_USAGE;
	}
	c.group = a->group ? a->group : cfg->consumer_group;
	c.worker = a->worker ? a->worker
		   : bg_state_meta_get(st, "worker_id", &meta_worker) == 0
			   ? meta_worker.p
			   : cfg->worker_id;
	c.running = bygated_running(state_dir);
	c.findings = json_array();
	bool from_file = a->config != NULL || a->state_dir == NULL;
	int code = redis_setup(&c, host ? host : cfg->redis_host, port)
			   ? BG_TOOL_EXIT_OPEN
			   : run_check(&c, st, from_file);
	if (code != BG_TOOL_EXIT_OPEN) {
		if (a->json)
			print_check_json(&c);
		else
			print_check(&c);
	}
	if (c.redis)
		redisFree(c.redis);
	bg_cluster_close(c.cluster);
	json_decref(c.findings);
	bg_tool_items_free(&c.known);
	bg_tool_items_free(&c.streams);
	bg_buf_free(&meta_worker);
	free(host);
	return code;
}
