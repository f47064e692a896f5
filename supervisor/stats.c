/* supervisor/stats.c - the per-worker execution counters and snapshots of
 * WIRE 5.9 (what by-framework's dashboard reads), written after every
 * record change of an execution this worker runs: batched per loop turn
 * on the write pipeline (the RUNNING writes), and inside the finish
 * transaction. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/daemon.h"
#include "wire/keys.h"
#include "wire/record.h"

#define S(s) bg_str_c(s)

/* The write pipeline's batch: what the non-terminal changes of one loop
 * turn add up to. The counters are summed per field; the indexes and
 * snapshots are kept in order (a member twice: the later one wins, as if
 * each were written alone). */
#define BATCH_MAX_EXECS 256
#define BATCH_MAX_FIELDS 16

struct bg_stats_batch {
	struct {
		char field[64];
		long long delta;
	} ctr[BATCH_MAX_FIELDS];
	int n_ctr;
	char updated_at[32], started_at[32]; /* "" = not written */
	size_t n;
	struct {
		char *execution_id;
		char now[32];
		struct bg_buf snap;
	} ex[BATCH_MAX_EXECS];
	/* the five keys (keys_of), built for keys_schema and keys_worker */
	struct bg_buf keys[5];
	enum bg_key_schema keys_schema;
	char *keys_worker;
	/* all five are in d->expired under this generation (keys_expired) */
	bool keys_expired;
	uint64_t keys_expired_gen;
};

enum { K_STATUS, K_EXECS, K_ACTIVE, K_ACTIVE_SNAPS, K_HIST_SNAPS, K_N };
_Static_assert(K_N == 5, "bg_stats_batch keys");

static const enum bg_key_kind key_kinds[K_N] = {
	BG_KEY_WORKER_STATUS, BG_KEY_WORKER_EXECUTIONS,
	BG_KEY_WORKER_ACTIVE_INDEX, BG_KEY_WORKER_ACTIVE_SNAPSHOTS,
	BG_KEY_WORKER_HISTORY_SNAPSHOTS
};

static void status_field(char *out, size_t n, const char *status)
{
	size_t i = 0;
	for (; status[i] && i + 7 < n; i++)
		out[i] = (char)tolower((unsigned char)status[i]);
	snprintf(out + i, n - i, "_count");
}

static void keys_free(struct bg_buf k[K_N])
{
	for (int i = 0; i < K_N; i++)
		bg_buf_free(&k[i]);
}

static struct bg_stats_batch *stats_of(struct bg_daemon *d)
{
	if (d->stats == NULL)
		d->stats = calloc(1, sizeof(*d->stats));
	return d->stats;
}

/* The five keys of this worker, built once and kept in d->stats while
 * the key schema and the worker id stay what they were built for (a
 * call per stats change and per finish otherwise builds and frees
 * five). Empty keys (p NULL) without memory, as a failed build gives. */
static const struct bg_buf *keys_of(struct bg_daemon *d)
{
	static const struct bg_buf none[K_N];
	struct bg_stats_batch *b = stats_of(d);
	if (b == NULL)
		return none;
	if (b->keys_worker && b->keys_schema == d->cfg->key_schema &&
	    strcmp(b->keys_worker, d->worker_id) == 0)
		return b->keys;
	keys_free(b->keys);
	free(b->keys_worker);
	b->keys_worker = NULL;
	b->keys_expired = false;
	bool ok = true;
	for (int i = 0; i < K_N; i++)
		ok = bg_key_build(&b->keys[i], d->cfg->key_schema, key_kinds[i],
				  S(d->worker_id), S(""), S("")) == 0 &&
		     b->keys[i].p && ok;
	if (ok && (b->keys_worker = strdup(d->worker_id)) != NULL)
		b->keys_schema = d->cfg->key_schema;
	return b->keys; /* built again next time unless all were */
}

/* Have the five keys been put in d->expired this loop turn (then every
 * EXPIRE of them this turn is sent or refused already)? Else after
 * keys_expired_now, they have. */
static bool keys_expired(const struct bg_daemon *d)
{
	const struct bg_stats_batch *b = d->stats;
	return b && b->keys_expired &&
	       b->keys_expired_gen == bg_keyset_gen(d->expired);
}

static void keys_expired_now(struct bg_daemon *d)
{
	if (d->stats) {
		d->stats->keys_expired = true;
		d->stats->keys_expired_gen = bg_keyset_gen(d->expired);
	}
}

static struct bg_str bs_of(const struct bg_buf *b)
{
	return (struct bg_str){ b->p ? b->p : "", b->len };
}

/* The counter fields a change moves, with their deltas (at most 4).
 * old_status: the record's status before this change when it already
 * belonged to this worker, NULL when the execution is new to it. */
static int counter_moves(const char *old_status, const char *new_status,
			 char fields[4][64], const char *deltas[4])
{
	int n = 0;
	bool was_terminal = old_status && bg_status_is_terminal(S(old_status));
	bool terminal = bg_status_is_terminal(S(new_status));
	if (old_status == NULL) {
		snprintf(fields[n], 64, "total_count");
		deltas[n++] = "1";
	} else if (strcmp(old_status, new_status) != 0) {
		status_field(fields[n], 64, old_status);
		deltas[n++] = "-1";
	}
	if (old_status == NULL || strcmp(old_status, new_status) != 0) {
		status_field(fields[n], 64, new_status);
		deltas[n++] = "1";
	}
	bool was_active = old_status != NULL && !was_terminal;
	if (was_active != !terminal) {
		snprintf(fields[n], 64, "active_count");
		deltas[n++] = terminal ? "-1" : "1";
	}
	return n;
}

/* The snapshot of record into the empty snap: the one the caller took
 * with the record's update when it has one (moved, given left empty),
 * else read from the record. */
static void snapshot_of(struct bg_buf *snap, struct bg_str record,
			struct bg_buf *given)
{
	if (given && given->len) {
		*snap = *given;
		*given = (struct bg_buf){ 0 };
		return;
	}
	if (bg_record_snapshot(snap, record) != 0) {
		bg_buf_reset(snap);
		bg_buf_puts(snap, "{}");
	}
}

/* One change written at once through emit: in a finish transaction, or on
 * the write pipeline for a terminal change. No EXPIRE (the callers add
 * them). */
static void write_now(struct bg_daemon *d, struct bg_str record,
		      struct bg_buf *given, const char *execution_id,
		      const char *old_status, const char *new_status,
		      const struct bg_buf k[K_N], bg_stats_emit_fn emit,
		      void *ctx)
{
	struct bg_buf snap = { 0 };
	char now[32], fields[4][64];
	const char *deltas[4];
	snprintf(now, sizeof(now), "%lld", (long long)bg_now_ms());
	snapshot_of(&snap, record, given);
	struct bg_str st = bs_of(&k[K_STATUS]), ssnap = bs_of(&snap);
	bool terminal = bg_status_is_terminal(S(new_status));
	int n = counter_moves(old_status, new_status, fields, deltas);
	for (int i = 0; i < n; i++)
		emit(ctx, 4,
		     (struct bg_str[]){ S("HINCRBY"), st, S(fields[i]),
					S(deltas[i]) });
	const char *when = strcmp(new_status, "RUNNING") == 0
				   ? "last_started_at"
			   : terminal ? "last_finished_at"
				      : NULL;
	if (when)
		emit(ctx, 6,
		     (struct bg_str[]){ S("HSET"), st, S("last_updated_at"),
					S(now), S(when), S(now) });
	else
		emit(ctx, 4,
		     (struct bg_str[]){ S("HSET"), st, S("last_updated_at"),
					S(now) });
	emit(ctx, 4,
	     (struct bg_str[]){ S("ZADD"), bs_of(&k[K_EXECS]), S(now),
				S(execution_id) });
	emit(ctx, 4,
	     (struct bg_str[]){ S("HSET"), bs_of(&k[K_HIST_SNAPS]),
				S(execution_id), ssnap });
	if (terminal) {
		emit(ctx, 3,
		     (struct bg_str[]){ S("ZREM"), bs_of(&k[K_ACTIVE]),
					S(execution_id) });
		emit(ctx, 3,
		     (struct bg_str[]){ S("HDEL"), bs_of(&k[K_ACTIVE_SNAPS]),
					S(execution_id) });
	} else {
		emit(ctx, 4,
		     (struct bg_str[]){ S("ZADD"), bs_of(&k[K_ACTIVE]), S(now),
					S(execution_id) });
		emit(ctx, 4,
		     (struct bg_str[]){ S("HSET"), bs_of(&k[K_ACTIVE_SNAPS]),
					S(execution_id), ssnap });
	}
	bg_buf_free(&snap);
}

void bg_stats_emit_wr(void *ctx, int argc, const struct bg_str *argv)
{
	struct bg_daemon *d = ctx;
	const char *a[8];
	size_t l[8];
	for (int i = 0; i < argc && i < 8; i++) {
		a[i] = argv[i].p;
		l[i] = argv[i].len;
	}
	bg_rconn_cmd(d->wr, NULL, NULL, 0, argc, a, l);
}

/* One command of 2 + 2 * n arguments on the write pipeline: cmd key, then
 * the pairs pair(i) for each batched execution. */
static void send_pairs(struct bg_daemon *d, const char *cmd,
		       const struct bg_buf *key, const struct bg_stats_batch *b,
		       bool score_first, bool value_is_snap)
{
	size_t argc = 2 + 2 * b->n;
	const char **a = malloc(argc * sizeof(*a));
	size_t *l = malloc(argc * sizeof(*l));
	if (a && l) {
		a[0] = cmd;
		l[0] = strlen(cmd);
		a[1] = key->p ? key->p : "";
		l[1] = key->len;
		for (size_t i = 0; i < b->n; i++) {
			const char *id = b->ex[i].execution_id;
			const char *v = value_is_snap ? b->ex[i].snap.p
						      : b->ex[i].now;
			size_t vl = value_is_snap ? b->ex[i].snap.len
						  : strlen(v);
			size_t j = 2 + 2 * i;
			a[j + (score_first ? 1 : 0)] = id;
			l[j + (score_first ? 1 : 0)] = strlen(id);
			a[j + (score_first ? 0 : 1)] = v;
			l[j + (score_first ? 0 : 1)] = vl;
		}
		bg_rconn_cmd(d->wr, NULL, NULL, 0, (int)argc, a, l);
	}
	free(a);
	free(l);
}

static void batch_clear(struct bg_stats_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->ex[i].execution_id);
		bg_buf_free(&b->ex[i].snap);
	}
	b->n = 0;
	b->n_ctr = 0;
	b->updated_at[0] = b->started_at[0] = '\0';
}

/* The pipeline's order is kept where it matters: a batch is written
 * before any change written at once (a terminal change, a finish
 * transaction), so a ZREM never precedes the ZADD it undoes. */
void bg_stats_flush(struct bg_daemon *d)
{
	struct bg_stats_batch *b = d->stats;
	if (b == NULL || (b->n == 0 && b->n_ctr == 0))
		return;
	const struct bg_buf *k = keys_of(d);
	struct bg_str st = bs_of(&k[K_STATUS]);
	for (int i = 0; i < b->n_ctr; i++) {
		char delta[32];
		if (b->ctr[i].delta == 0)
			continue;
		snprintf(delta, sizeof(delta), "%lld", b->ctr[i].delta);
		bg_stats_emit_wr(d, 4,
				 (struct bg_str[]){ S("HINCRBY"), st,
						    S(b->ctr[i].field),
						    S(delta) });
	}
	if (b->updated_at[0] && b->started_at[0])
		bg_stats_emit_wr(d, 6,
				 (struct bg_str[]){
					 S("HSET"), st, S("last_updated_at"),
					 S(b->updated_at), S("last_started_at"),
					 S(b->started_at) });
	else if (b->updated_at[0])
		bg_stats_emit_wr(d, 4,
				 (struct bg_str[]){ S("HSET"), st,
						    S("last_updated_at"),
						    S(b->updated_at) });
	if (b->n > 0) {
		send_pairs(d, "ZADD", &k[K_EXECS], b, true, false);
		send_pairs(d, "HSET", &k[K_HIST_SNAPS], b, false, true);
		send_pairs(d, "ZADD", &k[K_ACTIVE], b, true, false);
		send_pairs(d, "HSET", &k[K_ACTIVE_SNAPS], b, false, true);
	}
	/* after the writes, so that a key they created gets its TTL */
	for (int i = 0; i < K_N && !keys_expired(d); i++)
		if (k[i].p) /* NULL: its building ran out of memory */
			bg_expire_once(d, k[i].p);
	keys_expired_now(d);
	batch_clear(b);
}

void bg_stats_free(struct bg_daemon *d)
{
	if (d->stats == NULL)
		return;
	batch_clear(d->stats);
	keys_free(d->stats->keys);
	free(d->stats->keys_worker);
	free(d->stats);
	d->stats = NULL;
}

static void batch_count(struct bg_stats_batch *b, const char *field,
			const char *delta)
{
	int i = 0;
	while (i < b->n_ctr && strcmp(b->ctr[i].field, field) != 0)
		i++;
	if (i == b->n_ctr) {
		snprintf(b->ctr[i].field, sizeof(b->ctr[i].field), "%.63s",
			 field);
		b->ctr[i].delta = 0;
		b->n_ctr++;
	}
	b->ctr[i].delta += atoll(delta);
}

/* A non-terminal change on the write pipeline, added to the turn's batch;
 * false when it cannot be (no memory): written at once instead. */
static bool batch_add(struct bg_daemon *d, struct bg_str record,
		      struct bg_buf *given, const char *execution_id,
		      const char *old_status, const char *new_status)
{
	if (stats_of(d) == NULL)
		return false;
	struct bg_stats_batch *b = d->stats;
	if (b->n == BATCH_MAX_EXECS || b->n_ctr + 4 > BATCH_MAX_FIELDS)
		bg_stats_flush(d);
	char *id = strdup(execution_id);
	if (id == NULL)
		return false;
	char fields[4][64];
	const char *deltas[4];
	int n = counter_moves(old_status, new_status, fields, deltas);
	for (int i = 0; i < n; i++)
		batch_count(b, fields[i], deltas[i]);
	snprintf(b->updated_at, sizeof(b->updated_at), "%lld",
		 (long long)bg_now_ms());
	if (strcmp(new_status, "RUNNING") == 0)
		snprintf(b->started_at, sizeof(b->started_at), "%s",
			 b->updated_at);
	b->ex[b->n].execution_id = id;
	snprintf(b->ex[b->n].now, sizeof(b->ex[b->n].now), "%s", b->updated_at);
	b->ex[b->n].snap = (struct bg_buf){ 0 };
	snapshot_of(&b->ex[b->n].snap, record, given);
	b->n++;
	return true;
}

void bg_stats_update(struct bg_daemon *d, struct bg_str record,
		     const char *execution_id, const char *old_status,
		     const char *new_status, bg_stats_emit_fn emit, void *ctx)
{
	bg_stats_update_snap(d, record, NULL, execution_id, old_status,
			     new_status, emit, ctx);
}

void bg_stats_update_snap(struct bg_daemon *d, struct bg_str record,
			  struct bg_buf *snap, const char *execution_id,
			  const char *old_status, const char *new_status,
			  bg_stats_emit_fn emit, void *ctx)
{
	if (emit == NULL && !bg_status_is_terminal(S(new_status)) &&
	    batch_add(d, record, snap, execution_id, old_status, new_status))
		return;
	const struct bg_buf *k = keys_of(d);
	if (emit == NULL) { /* the pipeline, at once: after the batch */
		bg_stats_flush(d);
		write_now(d, record, snap, execution_id, old_status, new_status,
			  k, bg_stats_emit_wr, d);
		for (int i = 0; i < K_N && !keys_expired(d); i++)
			if (k[i].p)
				bg_expire_once(d, k[i].p);
		keys_expired_now(d);
	} else {
		write_now(d, record, snap, execution_id, old_status, new_status,
			  k, emit, ctx);
	}
}

/* EXPIRE of the five keys, each unless one was sent already this loop
 * turn on the write connection (bg_expire_once's set). */
void bg_stats_expire(struct bg_daemon *d, bg_stats_emit_fn emit, void *ctx)
{
	if (keys_expired(d))
		return;
	const struct bg_buf *k = keys_of(d);
	for (int i = 0; i < K_N; i++)
		if (k[i].p && bg_keyset_add(d->expired, k[i].p))
			emit(ctx, 3,
			     (struct bg_str[]){ S("EXPIRE"), bs_of(&k[i]),
						S("604800") });
	keys_expired_now(d);
}
