/* bench/bench.h - helpers shared by the end-to-end benchmark programs
 * (loadgen, stream_floor): options, clocks, a Redis connection, RESP
 * pipelining into one buffer, and the ASK_AGENT / QUEUED record a Python
 * GatewayClient.send_message writes, built with wire/. Header-only: each
 * bench/X.c is its own program. Benchmarks exit on any error. */
#ifndef BG_BENCH_H
#define BG_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common/buf.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"
#include "wire/send.h"

#define BENCH_GROUP "agent_engines"
#define BENCH_TTL "604800"

static inline void bench_die(const char *prog, const char *what, int rc)
{
	fprintf(stderr, "%s: %s failed (%d)\n", prog, what, rc);
	exit(1);
}

/* `--name value` from argv, or def when absent. */
static inline const char *bench_opt(int argc, char **argv, const char *name,
				    const char *def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

static inline long bench_opt_long(int argc, char **argv, const char *name,
				  long def)
{
	const char *v = bench_opt(argc, argv, name, NULL);
	return v ? strtol(v, NULL, 10) : def;
}

static inline double bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int64_t bench_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline redisContext *bench_connect(const char *prog, const char *host,
					  int port)
{
	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (c == NULL || c->err) {
		fprintf(stderr, "%s: connect %s:%d: %s\n", prog, host, port,
			c ? c->errstr : "out of memory");
		exit(1);
	}
	struct timeval rt = { 60, 0 };
	redisSetTimeout(c, rt);
	return c;
}

/* Append one command, RESP-encoded, to out (to be written in one go with
 * redisAppendFormattedCommand). lens NULL: the argv are C strings. */
static inline void bench_resp(struct bg_buf *out, int argc, const char **argv,
			      const size_t *lens)
{
	char *cmd = NULL;
	int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (n < 0 || bg_buf_append(out, cmd, (size_t)n))
		bench_die("bench", "RESP encoding", -12);
	redisFreeCommand(cmd);
}

/* Read n pipelined replies; an error reply or a broken connection ends the
 * program. Returns the last reply when keep_last (caller frees). */
static inline redisReply *bench_replies(const char *prog, redisContext *c,
					long n, bool keep_last)
{
	redisReply *last = NULL;
	for (long i = 0; i < n; i++) {
		void *r = NULL;
		if (redisGetReply(c, &r) != REDIS_OK || r == NULL) {
			fprintf(stderr, "%s: redis: %s\n", prog, c->errstr);
			exit(1);
		}
		redisReply *rep = r;
		if (rep->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "%s: redis error: %s\n", prog,
				rep->str);
			exit(1);
		}
		if (keep_last && i == n - 1)
			last = rep;
		else
			freeReplyObject(rep);
	}
	return last;
}

static inline void bench_key(struct bg_buf *out, enum bg_key_kind kind,
			     const char *id)
{
	bg_buf_reset(out);
	int rc = bg_key_build(out, BG_SCHEMA_V1, kind, bg_str_c(id),
			      bg_str_c(""), bg_str_c(""));
	if (rc)
		bench_die("bench", "bg_key_build", rc);
}

/* One task as GatewayClient.send_message sends it: fresh message and
 * execution ids, the ASK_AGENT JSON and the QUEUED record. */
struct bench_task {
	char mid[BG_ID_CAP("msg-")];
	char eid[BG_ID_CAP("exec-")];
	struct bg_buf ask;
	struct bg_buf record;
};

/* Fill t for `session`; ctrl is the agent type's control stream key. */
/* lanes > 0: the task is in lane "lane-<seq % lanes>" (metadata.lane,
 * docs/scheduling.md). */
static inline void bench_task_build(struct bench_task *t, const char *session,
				    const char *agent_type, const char *ctrl,
				    long seq, int lanes)
{
	char trace[33], content[48], metadata[48] = "";
	int rc = bg_id_new(t->mid, sizeof(t->mid), "msg-");
	if (!rc)
		rc = bg_id_new(t->eid, sizeof(t->eid), "exec-");
	if (!rc)
		rc = bg_uuid_hex(trace, false);
	if (rc)
		bench_die("bench", "id generation", rc);
	snprintf(content, sizeof(content), "benchmark task %ld", seq);
	struct bg_send_header h = {
		.message_id = bg_str_c(t->mid),
		.session_id = bg_str_c(session),
		.trace_id = bg_str_c(trace),
		.target_agent_type = bg_str_c(agent_type),
		.user_code = BG_STR_LIT("u-001"),
		.user_name = BG_STR_LIT("bench"),
	};
	if (lanes > 0) {
		snprintf(metadata, sizeof(metadata), "{\"lane\":\"lane-%ld\"}",
			 seq % lanes);
		h.metadata = bg_str_c(metadata);
	}
	struct bg_send_body b = { .content = bg_str_c(content) };
	struct bg_record_queued q = {
		.execution_id = bg_str_c(t->eid),
		.message_id = bg_str_c(t->mid),
		.session_id = bg_str_c(session),
		.trace_id = bg_str_c(trace),
		.source_agent_type = BG_STR_LIT("client"),
		.target_agent_type = bg_str_c(agent_type),
		.stream_name = bg_str_c(ctrl),
		.route = true,
		.now_ms = bench_wall_ms(),
	};
	bg_buf_reset(&t->ask);
	bg_buf_reset(&t->record);
	rc = bg_send_ask(&t->ask, &h, &b);
	if (!rc)
		rc = bg_record_build_queued(&t->record, &q);
	if (rc)
		bench_die("bench", "building the ASK_AGENT and record", rc);
}

static inline void bench_task_free(struct bench_task *t)
{
	bg_buf_free(&t->ask);
	bg_buf_free(&t->record);
}

/* Session i's id: the benchmark's sessions are bench-s0 .. bench-s<S-1>. */
static inline void bench_session(char *out, size_t cap, long i)
{
	snprintf(out, cap, "bench-s%ld", i);
}

#endif
