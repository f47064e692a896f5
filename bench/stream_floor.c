/* bench/stream_floor.c - the bare stream floor of `make bench`: the same
 * tasks as bare stream traffic with no processing and no registry: XADD of
 * the ASK_AGENT to the control stream, XREADGROUP, XADD of an
 * appStreamResponse event to the session data stream, XACK.
 *
 *   stream_floor --port P [--host H] [--tasks N] [--sessions S] [--batch B]
 *
 * One connection, software-pipelined: each round trip carries the XADDs of
 * batch k, the event XADDs and XACKs of batch k-1 (whose ids the previous
 * XREADGROUP returned) and the XREADGROUP COUNT B of batch k. Payloads are
 * built with wire/ before the clock starts. Prints one JSON line. */
#include "bench/bench.h"
#include "wire/event.h"

#define PROG "stream_floor"

struct floor {
	long n, sessions, batch;
	char ctrl[128];
	char **data_keys; /* per task: its session's data stream */
	struct bg_buf *ask, *event;
	char (*ids)[48]; /* entry ids of the batch being finished */
	long n_ids;
	long commands;
};

static void build_event(struct bg_buf *out, const struct bench_task *t,
			const char *session, const char *agent_type)
{
	char uuid[33];
	if (bg_uuid_hex(uuid, true))
		bench_die(PROG, "bg_uuid_hex", -5);
	struct bg_event_ctx ctx = { .trace_id = BG_STR_LIT(""),
				    .session_id = bg_str_c(session),
				    .agent_type = bg_str_c(agent_type),
				    .message_id = bg_str_c(t->mid) };
	struct bg_event ev = { .kind = BG_EVENT_END_OF_STREAM,
			       .now_ms = bench_wall_ms(),
			       .uuid = { uuid, 32 } };
	int rc = bg_event_build(out, &ctx, &ev);
	if (rc)
		bench_die(PROG, "bg_event_build", rc);
}

static void build_all(struct floor *f, const char *agent_type)
{
	struct bg_buf key = { 0 };
	char session[32];
	bench_key(&key, BG_KEY_AGENT_TYPE_CTRL, agent_type);
	snprintf(f->ctrl, sizeof(f->ctrl), "%s", key.p);
	f->data_keys = calloc((size_t)f->n, sizeof(char *));
	f->ask = calloc((size_t)f->n, sizeof(struct bg_buf));
	f->event = calloc((size_t)f->n, sizeof(struct bg_buf));
	f->ids = calloc((size_t)f->batch, sizeof(*f->ids));
	if (!f->data_keys || !f->ask || !f->event || !f->ids)
		bench_die(PROG, "allocation", -12);
	struct bench_task t = { 0 };
	for (long i = 0; i < f->n; i++) {
		bench_session(session, sizeof(session), i % f->sessions);
		bench_key(&key, BG_KEY_SESSION_DATA, session);
		f->data_keys[i] = strdup(key.p);
		bench_task_build(&t, session, agent_type, f->ctrl, i, 0);
		bg_buf_append(&f->ask[i], t.ask.p, t.ask.len);
		build_event(&f->event[i], &t, session, agent_type);
		if (f->data_keys[i] == NULL || f->ask[i].p == NULL)
			bench_die(PROG, "allocation", -12);
	}
	bench_task_free(&t);
	bg_buf_free(&key);
}

static void free_all(struct floor *f)
{
	for (long i = 0; i < f->n; i++) {
		free(f->data_keys[i]);
		bg_buf_free(&f->ask[i]);
		bg_buf_free(&f->event[i]);
	}
	free(f->data_keys);
	free(f->ask);
	free(f->event);
	free(f->ids);
}

/* Finish the previous batch: one event XADD and one XACK per entry. */
static void append_finish(struct floor *f, struct bg_buf *out, long first)
{
	for (long j = 0; j < f->n_ids; j++) {
		const char *xadd[] = { "XADD", f->data_keys[first + j], "*",
				       "data", f->event[first + j].p };
		const char *xack[] = { "XACK", f->ctrl, BENCH_GROUP,
				       f->ids[j] };
		bench_resp(out, 5, xadd, NULL);
		bench_resp(out, 4, xack, NULL);
	}
}

/* The entry ids of the XREADGROUP reply; exactly `want` are expected. */
static void take_ids(struct floor *f, const redisReply *r, long want)
{
	f->n_ids = 0;
	const redisReply *entries = NULL;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY &&
	    r->element[0]->elements == 2)
		entries = r->element[0]->element[1];
	if (entries == NULL || entries->type != REDIS_REPLY_ARRAY ||
	    (long)entries->elements != want)
		bench_die(PROG, "XREADGROUP (unexpected reply)", -71);
	for (size_t e = 0; e < entries->elements; e++) {
		const redisReply *en = entries->element[e];
		if (en->type != REDIS_REPLY_ARRAY || en->elements < 1 ||
		    en->element[0]->type != REDIS_REPLY_STRING)
			bench_die(PROG, "XREADGROUP (bad entry)", -71);
		snprintf(f->ids[f->n_ids++], sizeof(f->ids[0]), "%s",
			 en->element[0]->str);
	}
}

static double run(struct floor *f, redisContext *c)
{
	struct bg_buf out = { 0 };
	char count[24];
	snprintf(count, sizeof(count), "%ld", f->batch);
	const char *xrg[] = { "XREADGROUP", "GROUP", BENCH_GROUP,
			      "floor",	    "COUNT", count,
			      "STREAMS",    f->ctrl, ">" };
	double t0 = bench_now_us();
	for (long first = 0, prev = 0; prev < f->n; first += f->batch) {
		long end = first + f->batch < f->n ? first + f->batch : f->n;
		long cmds = 0;
		bg_buf_reset(&out);
		for (long i = first; i < end; i++) {
			const char *xadd[] = { "XADD", f->ctrl, "*", "data",
					       f->ask[i].p };
			bench_resp(&out, 5, xadd, NULL);
			cmds++;
		}
		append_finish(f, &out, prev);
		cmds += 2 * f->n_ids;
		prev += f->n_ids;
		if (first < end) {
			bench_resp(&out, 9, xrg, NULL);
			cmds++;
		}
		if (redisAppendFormattedCommand(c, out.p, out.len) != REDIS_OK)
			bench_die(PROG, "redisAppendFormattedCommand", c->err);
		redisReply *last = bench_replies(PROG, c, cmds, first < end);
		f->n_ids = 0;
		if (last) {
			take_ids(f, last, end - first);
			freeReplyObject(last);
		}
		f->commands += cmds;
	}
	double dt = bench_now_us() - t0;
	bg_buf_free(&out);
	return dt;
}

int main(int argc, char **argv)
{
	struct floor f = { 0 };
	const char *host = bench_opt(argc, argv, "--host", "127.0.0.1");
	int port = (int)bench_opt_long(argc, argv, "--port", 0);
	f.n = bench_opt_long(argc, argv, "--tasks", 20000);
	f.sessions = bench_opt_long(argc, argv, "--sessions", 100);
	f.batch = bench_opt_long(argc, argv, "--batch", 10);
	const char *agent_type = bench_opt(argc, argv, "--agent-type", "noop");
	if (port <= 0 || f.n <= 0 || f.sessions <= 0 || f.batch <= 0) {
		fprintf(stderr, "usage: stream_floor --port P [--host H] "
				"[--tasks N] [--sessions S] [--batch B]\n");
		return 2;
	}
	build_all(&f, agent_type);
	redisContext *c = bench_connect(PROG, host, port);
	const char *grp[] = { "XGROUP",	   "CREATE", f.ctrl,
			      BENCH_GROUP, "0",	     "MKSTREAM" };
	freeReplyObject(redisCommandArgv(c, 6, grp, NULL));
	double dt = run(&f, c);
	printf("{\"tasks\":%ld,\"sessions\":%ld,\"batch\":%ld,"
	       "\"elapsed_s\":%.6f,\"tasks_per_s\":%.1f,\"commands\":%ld}\n",
	       f.n, f.sessions, f.batch, dt / 1e6, (double)f.n / (dt / 1e6),
	       f.commands + 1);
	redisFree(c);
	free_all(&f);
	return 0;
}
