/* bench/loadgen.c - the end-to-end load generator of `make bench`: sends
 * no-op tasks exactly as a Python GatewayClient.send_message does (HSET
 * record + msg_map, EXPIRE, XADD ASK_AGENT) and times each one until its
 * appStreamResponse appears on the session data stream.
 *
 *   loadgen --port P [--host H] [--mode full|closed] [--tasks N]
 *           [--sessions S] [--agent-type T] [--batch B] [--warmup W]
 *           [--read-gap-ms MS] [--timeout-s SECONDS] [--lanes L]
 *
 * full: all tasks pipelined B per round trip as fast as Redis takes them,
 * while a reader thread (second connection) XREAD BLOCKs on all S data
 * streams, at most once per --read-gap-ms (default 0: back to back; a gap
 * keeps the reader's own Redis load small). closed: one task in flight;
 * the same thread XREADs the task's data stream until its
 * appStreamResponse arrives. Latency = local CLOCK_MONOTONIC when the XREAD
 * reply carrying the appStreamResponse was received minus the time just
 * before the round trip that wrote the task's commands. Prints one JSON
 * line; exit 0 when every task ended exactly once. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "bench/bench.h"

#define PROG "loadgen"
#define CMDS_PER_TASK 3
#define XREAD_COUNT "1000"
#define XREAD_BLOCK_MS "1000"

struct lg_slot {
	char mid[BG_ID_CAP("msg-")];
	long session;
	double t_submit; /* us, monotonic */
	double t_done;	 /* 0 until its appStreamResponse arrived */
};

struct lg {
	const char *host;
	int port;
	long n, sessions, batch, warmup;
	int lanes; /* --lanes L: tasks spread over L lanes (metadata.lane) */
	double deadline_us;
	double read_gap_us; /* full mode: least time between two XREADs */
	struct lg_slot *slots;
	uint32_t *map; /* open addressing: slot index + 1, 0 = empty */
	size_t map_mask;
	struct bg_buf resp;   /* every task's commands, RESP, back to back */
	size_t *off;	      /* task i's commands are resp[off[i], off[i+1]) */
	char **data_keys;     /* per session */
	char (*last_ids)[48]; /* per session: last data-stream id read */
	long done, duplicates, foreign, reads;
	double t_last_done;
	double t_sent; /* when the last send's replies were read */
};

/* ---- message id -> task index ---- */

static uint64_t hash_id(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static long map_find(const struct lg *g, const char *p, size_t len, size_t *pos)
{
	size_t i = hash_id(p, len) & g->map_mask;
	for (; g->map[i]; i = (i + 1) & g->map_mask) {
		const char *mid = g->slots[g->map[i] - 1].mid;
		if (strlen(mid) == len && memcmp(mid, p, len) == 0)
			break;
	}
	if (pos)
		*pos = i;
	return g->map[i] ? (long)g->map[i] - 1 : -1;
}

/* ---- building every task before the clock starts ---- */

static void build_task(struct lg *g, long i, const char *ctrl,
		       const char *agent_type, struct bench_task *t,
		       struct bg_buf *reg)
{
	char session[32];
	struct lg_slot *s = &g->slots[i];
	size_t pos;
	s->session = i % g->sessions;
	bench_session(session, sizeof(session), s->session);
	do /* a message id must be unique among the benchmark's tasks */
		bench_task_build(t, session, agent_type, ctrl, i, g->lanes);
	while (map_find(g, t->mid, strlen(t->mid), &pos) >= 0);
	memcpy(s->mid, t->mid, sizeof(s->mid));
	g->map[pos] = (uint32_t)i + 1;
	bench_key(reg, BG_KEY_SESSION_REGISTRY, session);

	char f_exec[64], f_map[64];
	snprintf(f_exec, sizeof(f_exec), "exec:%s", t->eid);
	snprintf(f_map, sizeof(f_map), "msg_map:%s", t->mid);
	const char *hset[] = { "HSET",	    reg->p, f_exec,
			       t->record.p, f_map,  t->eid };
	const char *expire[] = { "EXPIRE", reg->p, BENCH_TTL };
	const char *xadd[] = { "XADD", ctrl, "*", "data", t->ask.p };
	bench_resp(&g->resp, 6, hset, NULL);
	bench_resp(&g->resp, 3, expire, NULL);
	bench_resp(&g->resp, 5, xadd, NULL);
	g->off[i + 1] = g->resp.len;
}

static void build_all(struct lg *g, const char *agent_type)
{
	size_t cap = 1;
	while (cap < (size_t)g->n * 2)
		cap <<= 1;
	g->map_mask = cap - 1;
	g->map = calloc(cap, sizeof(*g->map));
	g->slots = calloc((size_t)g->n, sizeof(*g->slots));
	g->off = calloc((size_t)g->n + 1, sizeof(*g->off));
	g->data_keys = calloc((size_t)g->sessions, sizeof(char *));
	g->last_ids = calloc((size_t)g->sessions, sizeof(*g->last_ids));
	if (!g->map || !g->slots || !g->off || !g->data_keys || !g->last_ids)
		bench_die(PROG, "allocation", -12);
	struct bg_buf key = { 0 }, reg = { 0 };
	char session[32];
	for (long s = 0; s < g->sessions; s++) {
		bench_session(session, sizeof(session), s);
		bench_key(&key, BG_KEY_SESSION_DATA, session);
		g->data_keys[s] = bg_buf_steal(&key);
		strcpy(g->last_ids[s], "0");
	}
	bench_key(&key, BG_KEY_AGENT_TYPE_CTRL, agent_type);
	struct bench_task t = { 0 };
	for (long i = 0; i < g->n; i++)
		build_task(g, i, key.p, agent_type, &t, &reg);
	bench_task_free(&t);
	bg_buf_free(&key);
	bg_buf_free(&reg);
}

static void free_all(struct lg *g)
{
	for (long s = 0; s < g->sessions; s++)
		free(g->data_keys[s]);
	free(g->data_keys);
	free(g->last_ids);
	free(g->slots);
	free(g->map);
	free(g->off);
	bg_buf_free(&g->resp);
}

/* ---- sending ---- */

/* Write tasks [from, to) in one round trip; stamps their submit time. */
static void send_tasks(struct lg *g, redisContext *c, long from, long to)
{
	double t = bench_now_us();
	for (long i = from; i < to; i++)
		g->slots[i].t_submit = t;
	if (redisAppendFormattedCommand(c, g->resp.p + g->off[from],
					g->off[to] - g->off[from]) != REDIS_OK)
		bench_die(PROG, "redisAppendFormattedCommand", c->err);
	bench_replies(PROG, c, (to - from) * CMDS_PER_TASK, false);
	g->t_sent = bench_now_us();
}

/* ---- reading the data streams ---- */

/* The JSON string value of the first `"key":` in data, or an empty view;
 * values with escapes are not needed here and read as empty. */
static struct bg_str json_str(const char *p, size_t len, const char *key)
{
	char pat[64];
	int n = snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *end = p + len;
	const char *k = memmem(p, len, pat, (size_t)n);
	if (k == NULL)
		return (struct bg_str){ "", 0 };
	k += n;
	while (k < end && (*k == ' ' || *k == ':'))
		k++;
	if (k >= end || *k != '"')
		return (struct bg_str){ "", 0 };
	const char *v = ++k;
	while (k < end && *k != '"' && *k != '\\')
		k++;
	if (k >= end || *k != '"')
		return (struct bg_str){ "", 0 };
	return (struct bg_str){ v, (size_t)(k - v) };
}

static void on_event(struct lg *g, long session, const redisReply *fields,
		     double now)
{
	if (fields->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t k = 0; k + 1 < fields->elements; k += 2) {
		const redisReply *name = fields->element[k];
		const redisReply *val = fields->element[k + 1];
		if (name->type != REDIS_REPLY_STRING ||
		    val->type != REDIS_REPLY_STRING ||
		    strcmp(name->str, "data") != 0)
			continue;
		struct bg_str type = json_str(val->str, val->len, "event_type");
		if (type.len != 17 || memcmp(type.p, "appStreamResponse", 17))
			return;
		struct bg_str mid = json_str(val->str, val->len, "message_id");
		long i = map_find(g, mid.p, mid.len, NULL);
		if (i < 0 || g->slots[i].session != session) {
			g->foreign++;
		} else if (g->slots[i].t_done != 0) {
			g->duplicates++;
		} else {
			g->slots[i].t_done = now;
			g->t_last_done = now;
			g->done++;
		}
		return;
	}
}

static long session_of(const struct lg *g, const char *key, long hint)
{
	for (long s = hint; s < g->sessions; s++)
		if (strcmp(g->data_keys[s], key) == 0)
			return s;
	return -1;
}

/* One XREAD reply: streams come back in the order asked for. */
static void on_xread(struct lg *g, const redisReply *r, double now)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return;
	long hint = 0;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *sr = r->element[i];
		if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
		    sr->element[0]->type != REDIS_REPLY_STRING ||
		    sr->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		long s = session_of(g, sr->element[0]->str, hint);
		if (s < 0)
			continue;
		hint = s;
		const redisReply *entries = sr->element[1];
		for (size_t e = 0; e < entries->elements; e++) {
			const redisReply *en = entries->element[e];
			if (en->type != REDIS_REPLY_ARRAY ||
			    en->elements != 2 ||
			    en->element[0]->type != REDIS_REPLY_STRING)
				continue;
			snprintf(g->last_ids[s], sizeof(g->last_ids[s]), "%s",
				 en->element[0]->str);
			on_event(g, s, en->element[1], now);
		}
	}
}

/* XREAD BLOCK on sessions [first, first + count); handles the reply. */
static void read_streams(struct lg *g, redisContext *c, long first, long count)
{
	int argc = 6 + 2 * (int)count;
	const char **argv = calloc((size_t)argc, sizeof(char *));
	if (argv == NULL)
		bench_die(PROG, "allocation", -12);
	int a = 0;
	argv[a++] = "XREAD";
	argv[a++] = "COUNT";
	argv[a++] = XREAD_COUNT;
	argv[a++] = "BLOCK";
	argv[a++] = XREAD_BLOCK_MS;
	argv[a++] = "STREAMS";
	for (long s = first; s < first + count; s++)
		argv[a++] = g->data_keys[s];
	for (long s = first; s < first + count; s++)
		argv[a++] = g->last_ids[s];
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	double now = bench_now_us();
	free(argv);
	if (r == NULL) {
		fprintf(stderr, "%s: XREAD: %s\n", PROG, c->errstr);
		exit(1);
	}
	g->reads++;
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "%s: XREAD: %s\n", PROG, r->str);
		exit(1);
	}
	on_xread(g, r, now);
	freeReplyObject(r);
}

static void *reader_main(void *arg)
{
	struct lg *g = arg;
	redisContext *c = bench_connect(PROG, g->host, g->port);
	double last = 0;
	while (g->done < g->n && bench_now_us() < g->deadline_us) {
		double wait = last + g->read_gap_us - bench_now_us();
		if (wait > 0)
			usleep((useconds_t)wait);
		last = bench_now_us();
		read_streams(g, c, 0, g->sessions);
	}
	redisFree(c);
	return NULL;
}

/* ---- the two modes ---- */

static void run_full(struct lg *g, redisContext *c)
{
	pthread_t reader;
	if (pthread_create(&reader, NULL, reader_main, g) != 0)
		bench_die(PROG, "pthread_create", -1);
	for (long i = 0; i < g->n; i += g->batch)
		send_tasks(g, c, i, i + g->batch < g->n ? i + g->batch : g->n);
	pthread_join(reader, NULL);
}

static void run_closed(struct lg *g, redisContext *c)
{
	for (long i = 0; i < g->n && bench_now_us() < g->deadline_us; i++) {
		send_tasks(g, c, i, i + 1);
		while (g->slots[i].t_done == 0 &&
		       bench_now_us() < g->deadline_us)
			read_streams(g, c, g->slots[i].session, 1);
	}
}

/* ---- report ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double q)
{
	long k = (long)ceil(q * (double)n) - 1;
	return n ? v[k < 0 ? 0 : k] : 0;
}

static void report(const struct lg *g, const char *mode, double t_first)
{
	long first = g->warmup < g->n ? g->warmup : 0, m = 0;
	double *lat = calloc((size_t)g->n + 1, sizeof(double));
	if (lat == NULL)
		bench_die(PROG, "allocation", -12);
	for (long i = first; i < g->n; i++)
		if (g->slots[i].t_done != 0)
			lat[m++] = g->slots[i].t_done - g->slots[i].t_submit;
	qsort(lat, (size_t)m, sizeof(double), cmp_double);
	double elapsed = (g->done ? g->t_last_done : bench_now_us()) - t_first;
	printf("{\"mode\":\"%s\",\"tasks\":%ld,\"sessions\":%ld,\"batch\":%ld,"
	       "\"completed\":%ld,\"duplicates\":%ld,\"foreign\":%ld,"
	       "\"submit_s\":%.6f,\"elapsed_s\":%.6f,\"tasks_per_s\":%.1f,"
	       "\"latency_us\":{\"n\":%ld,\"warmup\":%ld,\"p50\":%.1f,"
	       "\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
	       "\"send_commands\":%ld,\"read_commands\":%ld}\n",
	       mode, g->n, g->sessions, g->batch, g->done, g->duplicates,
	       g->foreign, (g->t_sent - t_first) / 1e6, elapsed / 1e6,
	       elapsed > 0 ? (double)g->done / (elapsed / 1e6) : 0.0, m, first,
	       pct(lat, m, 0.50), pct(lat, m, 0.90), pct(lat, m, 0.99),
	       m ? lat[m - 1] : 0.0, g->n * CMDS_PER_TASK, g->reads);
	free(lat);
}

int main(int argc, char **argv)
{
	struct lg g = { 0 };
	g.host = bench_opt(argc, argv, "--host", "127.0.0.1");
	g.port = (int)bench_opt_long(argc, argv, "--port", 0);
	g.n = bench_opt_long(argc, argv, "--tasks", 20000);
	g.sessions = bench_opt_long(argc, argv, "--sessions", 100);
	g.lanes = (int)bench_opt_long(argc, argv, "--lanes", 0);
	g.batch = bench_opt_long(argc, argv, "--batch", 100);
	g.warmup = bench_opt_long(argc, argv, "--warmup", 0);
	g.read_gap_us =
		1000.0 * (double)bench_opt_long(argc, argv, "--read-gap-ms", 0);
	const char *mode = bench_opt(argc, argv, "--mode", "full");
	const char *agent_type = bench_opt(argc, argv, "--agent-type", "noop");
	long timeout_s = bench_opt_long(argc, argv, "--timeout-s", 120);
	bool closed = strcmp(mode, "closed") == 0;
	if (g.port <= 0 || g.n <= 0 || g.n >= UINT32_MAX / 2 ||
	    g.sessions <= 0 || g.batch <= 0 || timeout_s <= 0 ||
	    g.read_gap_us < 0 || (!closed && strcmp(mode, "full") != 0)) {
		fprintf(stderr,
			"usage: loadgen --port P [--host H] "
			"[--mode full|closed] [--tasks N] [--sessions S] "
			"[--agent-type T] [--batch B] [--warmup W] "
			"[--read-gap-ms MS] [--timeout-s SECONDS]\n");
		return 2;
	}
	build_all(&g, agent_type);
	redisContext *c = bench_connect(PROG, g.host, g.port);
	double t_first = bench_now_us();
	g.deadline_us = t_first + (double)timeout_s * 1e6;
	if (closed)
		run_closed(&g, c);
	else
		run_full(&g, c);
	report(&g, mode, t_first);
	redisFree(c);
	int rc = g.done == g.n && g.duplicates == 0 ? 0 : 1;
	free_all(&g);
	return rc;
}
