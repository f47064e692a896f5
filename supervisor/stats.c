/* supervisor/stats.c - the per-worker execution counters and snapshots of
 * WIRE 5.9 (what by-framework's dashboard reads), written after every
 * record change of an execution this worker runs: with the RUNNING write
 * and inside the finish transaction. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/daemon.h"
#include "wire/keys.h"
#include "wire/record.h"

#define S(s) bg_str_c(s)

static void status_field(char *out, size_t n, const char *status)
{
	size_t i = 0;
	for (; status[i] && i + 7 < n; i++)
		out[i] = (char)tolower((unsigned char)status[i]);
	snprintf(out + i, n - i, "_count");
}

static void key(const struct bg_daemon *d, enum bg_key_kind k, struct bg_buf *b)
{
	bg_buf_reset(b);
	bg_key_build(b, d->cfg->key_schema, k, S(d->worker_id), S(""), S(""));
}

/* old_status: the record's status before this change when it already
 * belonged to this worker, NULL when the execution is new to it. */
static struct bg_str bs_of(const struct bg_buf *b)
{
	return (struct bg_str){ b->p ? b->p : "", b->len };
}

void bg_stats_update(struct bg_daemon *d, struct bg_str record,
		     const char *execution_id, const char *old_status,
		     const char *new_status, bool in_txn, bg_stats_emit_fn emit,
		     void *ctx)
{
	struct bg_buf st = { 0 }, ex = { 0 }, ai = { 0 }, as = { 0 },
		      hs = { 0 }, snap = { 0 };
	char now[32], f_old[64], f_new[64];
	snprintf(now, sizeof(now), "%lld", (long long)bg_now_ms());
	key(d, BG_KEY_WORKER_STATUS, &st);
	key(d, BG_KEY_WORKER_EXECUTIONS, &ex);
	key(d, BG_KEY_WORKER_ACTIVE_INDEX, &ai);
	key(d, BG_KEY_WORKER_ACTIVE_SNAPSHOTS, &as);
	key(d, BG_KEY_WORKER_HISTORY_SNAPSHOTS, &hs);
	if (bg_record_snapshot(&snap, record) != 0) {
		bg_buf_puts(&snap, "{}");
	}
	struct bg_str sst = { st.p, st.len }, sex = { ex.p, ex.len },
		      sai = { ai.p, ai.len }, sas = { as.p, as.len },
		      shs = { hs.p, hs.len }, ssnap = { snap.p, snap.len };
	bool was_terminal = old_status && bg_status_is_terminal(S(old_status));
	bool terminal = bg_status_is_terminal(S(new_status));
	if (old_status == NULL) {
		emit(ctx, 4,
		     (struct bg_str[]){ S("HINCRBY"), sst, S("total_count"),
					S("1") });
	} else if (strcmp(old_status, new_status) != 0) {
		status_field(f_old, sizeof(f_old), old_status);
		emit(ctx, 4,
		     (struct bg_str[]){ S("HINCRBY"), sst, S(f_old), S("-1") });
	}
	if (old_status == NULL || strcmp(old_status, new_status) != 0) {
		status_field(f_new, sizeof(f_new), new_status);
		emit(ctx, 4,
		     (struct bg_str[]){ S("HINCRBY"), sst, S(f_new), S("1") });
	}
	bool was_active = old_status != NULL && !was_terminal;
	if (was_active != !terminal)
		emit(ctx, 4,
		     (struct bg_str[]){ S("HINCRBY"), sst, S("active_count"),
					S(terminal ? "-1" : "1") });
	const char *when = strcmp(new_status, "RUNNING") == 0
				   ? "last_started_at"
			   : terminal ? "last_finished_at"
				      : NULL;
	if (when)
		emit(ctx, 6,
		     (struct bg_str[]){ S("HSET"), sst, S("last_updated_at"),
					S(now), S(when), S(now) });
	else
		emit(ctx, 4,
		     (struct bg_str[]){ S("HSET"), sst, S("last_updated_at"),
					S(now) });
	emit(ctx, 4,
	     (struct bg_str[]){ S("ZADD"), sex, S(now), S(execution_id) });
	emit(ctx, 4,
	     (struct bg_str[]){ S("HSET"), shs, S(execution_id), ssnap });
	if (terminal) {
		emit(ctx, 3,
		     (struct bg_str[]){ S("ZREM"), sai, S(execution_id) });
		emit(ctx, 3,
		     (struct bg_str[]){ S("HDEL"), sas, S(execution_id) });
	} else {
		emit(ctx, 4,
		     (struct bg_str[]){ S("ZADD"), sai, S(now),
					S(execution_id) });
		emit(ctx, 4,
		     (struct bg_str[]){ S("HSET"), sas, S(execution_id),
					ssnap });
	}
	/* Inside a finish transaction every key gets its EXPIRE (the blob
	 * may be replayed alone); on the write pipeline one EXPIRE per key
	 * per loop turn is enough (WIRE 11 item 6). */
	struct bg_buf *keys[] = { &st, &ex, &ai, &as, &hs };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (in_txn)
			emit(ctx, 3,
			     (struct bg_str[]){ S("EXPIRE"), bs_of(keys[i]),
						S("604800") });
		else
			bg_expire_once(d, keys[i]->p);
	}
	bg_buf_free(&st);
	bg_buf_free(&ex);
	bg_buf_free(&ai);
	bg_buf_free(&as);
	bg_buf_free(&hs);
	bg_buf_free(&snap);
}
