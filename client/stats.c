/* client/stats.c - the per-worker execution statistics a registry write
 * maintains (WIRE 5.9, Python WorkerRegistry._update_worker_execution_stats):
 * counters hash, history and active indexes, execution snapshots. The
 * client writes them when a cancel changes a record that has a worker. */
#include "client/client_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/record.h"

static bool terminal(const char *status)
{
	return bg_status_is_terminal(bg_str_c(status));
}

/* "<status.lower()>_count" */
static void count_field(char *out, size_t cap, const char *status)
{
	size_t i = 0;
	for (; status[i] && i + sizeof "_count" < cap; i++)
		out[i] = (char)tolower((unsigned char)status[i]);
	snprintf(out + i, cap - i, "_count");
}

struct stats_keys {
	struct bg_buf status, history, active, active_snaps, history_snaps;
};

static int build_keys(struct bg_client *c, const char *w, struct stats_keys *k)
{
	int rc = bg_client_key(c, &k->status, BG_KEY_WORKER_STATUS, w);
	if (!rc)
		rc = bg_client_key(c, &k->history, BG_KEY_WORKER_EXECUTIONS, w);
	if (!rc)
		rc = bg_client_key(c, &k->active, BG_KEY_WORKER_ACTIVE_INDEX,
				   w);
	if (!rc)
		rc = bg_client_key(c, &k->active_snaps,
				   BG_KEY_WORKER_ACTIVE_SNAPSHOTS, w);
	if (!rc)
		rc = bg_client_key(c, &k->history_snaps,
				   BG_KEY_WORKER_HISTORY_SNAPSHOTS, w);
	return rc;
}

static void free_keys(struct stats_keys *k)
{
	bg_buf_free(&k->status);
	bg_buf_free(&k->history);
	bg_buf_free(&k->active);
	bg_buf_free(&k->active_snaps);
	bg_buf_free(&k->history_snaps);
}

/* The pipeline under construction: up to 24 commands of up to 5 args. */
struct pipe {
	int n;
	int argc[24];
	const char *argv[24][5];
	char num[24][24];
};

static void add(struct pipe *p, const char *a0, const char *a1, const char *a2,
		const char *a3, const char *a4)
{
	const char *a[5] = { a0, a1, a2, a3, a4 };
	int k = 0;
	while (k < 5 && a[k])
		k++;
	memcpy(p->argv[p->n], a, sizeof a);
	p->argc[p->n++] = k;
}

/* A number argument living as long as the pipe. */
static const char *num(struct pipe *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
	return p->num[p->n];
}

struct change {
	const char *exec_id, *old_status, *new_status;
	bool first_seen, old_active, new_active;
	int64_t started_at, finished_at, now;
	const char *snap;
};

static void counters(struct pipe *p, const struct stats_keys *k,
		     const struct change *ch, char (*f)[64])
{
	const char *key = k->status.p;
	if (ch->first_seen)
		add(p, "HINCRBY", key, "total_count", "1", NULL);
	if (ch->first_seen || strcmp(ch->old_status, ch->new_status)) {
		if (ch->old_status[0] && !ch->first_seen) {
			count_field(f[0], sizeof f[0], ch->old_status);
			add(p, "HINCRBY", key, f[0], "-1", NULL);
		}
		if (ch->new_status[0]) {
			count_field(f[1], sizeof f[1], ch->new_status);
			add(p, "HINCRBY", key, f[1], "1", NULL);
		}
	}
	if (!ch->old_active && ch->new_active)
		add(p, "HINCRBY", key, "active_count", "1", NULL);
	else if (ch->old_active && !ch->new_active)
		add(p, "HINCRBY", key, "active_count", "-1", NULL);
	add(p, "HSET", key, "last_updated_at", num(p, ch->now), NULL);
	if (!strcmp(ch->new_status, "RUNNING"))
		add(p, "HSET", key, "last_started_at", num(p, ch->started_at),
		    NULL);
	if (terminal(ch->new_status))
		add(p, "HSET", key, "last_finished_at", num(p, ch->finished_at),
		    NULL);
}

static void indexes(struct pipe *p, const struct stats_keys *k,
		    const struct change *ch)
{
	const char *now = num(p, ch->now);
	add(p, "ZADD", k->history.p, now, ch->exec_id, NULL);
	add(p, "HSET", k->history_snaps.p, ch->exec_id, ch->snap, NULL);
	if (ch->new_active) {
		add(p, "ZADD", k->active.p, num(p, ch->now), ch->exec_id, NULL);
		add(p, "HSET", k->active_snaps.p, ch->exec_id, ch->snap, NULL);
	} else {
		add(p, "ZREM", k->active.p, ch->exec_id, NULL, NULL);
		add(p, "HDEL", k->active_snaps.p, ch->exec_id, NULL, NULL);
	}
	const struct bg_buf *all[] = { &k->status, &k->history, &k->active,
				       &k->active_snaps, &k->history_snaps };
	for (size_t i = 0; i < 5; i++)
		add(p, "EXPIRE", all[i]->p, BG_CLIENT_SESSION_TTL, NULL, NULL);
}

static int run_pipe(struct bg_client *c, struct pipe *p)
{
	redisReply *r[24];
	const char **argv[24];
	const size_t *lens[24] = { 0 };
	for (int i = 0; i < p->n; i++)
		argv[i] = p->argv[i];
	int rc = bg_client_pipeline(c, r, p->n, p->argc,
				    (const char **const *)argv, lens);
	for (int i = 0; rc == 0 && i < p->n; i++)
		if (r[i]->type == REDIS_REPLY_ERROR)
			rc = bg_client_fail(c, BG_CLIENT_EREDIS,
					    "worker statistics: %.400s",
					    r[i]->str ? r[i]->str : "");
	for (int i = 0; i < p->n; i++)
		freeReplyObject(r[i]);
	return rc;
}

int bg_client_worker_stats(struct bg_client *c, const json_t *old,
			   const json_t *new_rec, struct bg_str new_raw,
			   int64_t now)
{
	const char *w = bg_client_jstr(new_rec, "worker_id");
	const char *old_w = bg_client_jstr(old, "worker_id");
	const char *exec_id = bg_client_jstr(new_rec, "execution_id");
	if (!w[0] || !exec_id[0])
		return 0;
	struct change ch = {
		.exec_id = exec_id,
		.old_status = bg_client_jstr(old, "status"),
		.new_status = bg_client_jstr(new_rec, "status"),
		.first_seen = strcmp(old_w, w) != 0,
		.started_at = bg_client_jint(new_rec, "started_at"),
		.finished_at = bg_client_jint(new_rec, "finished_at"),
		.now = now,
	};
	ch.old_active = !ch.first_seen && !terminal(ch.old_status);
	ch.new_active = !terminal(ch.new_status);
	struct stats_keys k = { 0 };
	struct pipe p = { 0 };
	char fields[2][64];
	struct bg_buf snap = { 0 };
	int rc = bg_record_snapshot(&snap, new_raw);
	if (rc == 0)
		rc = build_keys(c, w, &k);
	ch.snap = snap.p;
	if (rc == 0) {
		counters(&p, &k, &ch, fields);
		indexes(&p, &k, &ch);
		rc = run_pipe(c, &p);
	}
	bg_buf_free(&snap);
	free_keys(&k);
	return rc;
}
