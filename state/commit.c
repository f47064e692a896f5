/* state/commit.c - the write buffer: puts and deletes are logged (each op
 * owns its encoded key and record, taken without a copy) and applied by
 * bg_state_commit() in one write transaction, which also prunes the
 * history; MDB_MAP_FULL grows the map (doubling, up to max_map_size) and
 * replays the whole log in a new transaction. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/internal.h"

#define HIST_SEQ_TRIES 64

int bg_state_op_push(struct bg_state *st, enum bg_state_db db,
		     struct bg_buf *kv, size_t klen, bool put)
{
	if (st->ro)
		return bg_state_fail(st, -EROFS, "read-only environment");
	int max = mdb_env_get_maxkeysize(st->env);
	if (klen == 0 || klen > (size_t)max || klen > kv->len)
		return bg_state_fail(st, -EINVAL,
				     "%s key of %zu bytes (limit %d)",
				     bg_state_db_name(db), klen, max);
	if (st->nops == st->ops_cap) {
		size_t cap = st->ops_cap ? st->ops_cap * 2 : 16;
		struct bg_state_op *ops = realloc(st->ops, cap * sizeof *ops);
		if (ops == NULL)
			return bg_state_fail(st, -ENOMEM, "out of memory");
		st->ops = ops;
		st->ops_cap = cap;
	}
	st->ops[st->nops++] = (struct bg_state_op){
		.kv = *kv, .klen = klen, .db = db, .del = !put
	};
	*kv = (struct bg_buf){ 0 };
	return 0;
}

void bg_state_ops_clear(struct bg_state *st)
{
	for (size_t i = 0; i < st->nops; i++)
		bg_buf_free(&st->ops[i].kv);
	st->nops = 0;
}

size_t bg_state_buffered(const struct bg_state *st)
{
	return st->nops;
}

static void bump_seq(char *seq_be)
{
	for (int i = 7; i >= 0 && ++((uint8_t *)seq_be)[i] == 0; i--)
		;
}

/* A history key may collide with one written by an earlier process (same
 * ms, sequence restarted): the sequence is bumped in the logged key. */
static int put_history(MDB_txn *txn, MDB_dbi dbi, struct bg_state_op *op)
{
	int rc = MDB_KEYEXIST;
	for (int i = 0; rc == MDB_KEYEXIST && i < HIST_SEQ_TRIES; i++) {
		MDB_val k = { op->klen, op->kv.p };
		MDB_val v = { op->kv.len - op->klen, op->kv.p + op->klen };
		rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
		if (rc == MDB_KEYEXIST && op->klen == BG_STATE_HIST_KEY_LEN)
			bump_seq(op->kv.p + 8);
	}
	return rc;
}

static int apply_op(struct bg_state *st, MDB_txn *txn, struct bg_state_op *op,
		    const char **call)
{
	MDB_dbi dbi = st->dbi[op->db];
	MDB_val k = { op->klen, op->kv.p };
	if (op->del) {
		*call = "mdb_del";
		int rc = mdb_del(txn, dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	*call = "mdb_put";
	if (op->db == BG_DB_HISTORY)
		return put_history(txn, dbi, op);
	MDB_val v = { op->kv.len - op->klen, op->kv.p + op->klen };
	return mdb_put(txn, dbi, &k, &v, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Delete the oldest history entries while there are more than history_max
 * or the oldest finished before now - history_max_age_ms. A key that is
 * not a history key is dropped as the oldest. */
static int prune_history(struct bg_state *st, MDB_txn *txn, const char **call)
{
	MDB_dbi dbi = st->dbi[BG_DB_HISTORY];
	MDB_stat ms;
	*call = "mdb_stat";
	int rc = mdb_stat(txn, dbi, &ms);
	if (rc)
		return rc;
	size_t n = ms.ms_entries;
	int64_t cutoff = now_ms() - st->history_max_age_ms;
	MDB_cursor *c;
	*call = "mdb_cursor_open";
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	MDB_val k, v;
	*call = "mdb_cursor_del";
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		bool old = k.mv_size != BG_STATE_HIST_KEY_LEN ||
			   (cutoff > 0 &&
			    bg_state_be64(k.mv_data) < (uint64_t)cutoff);
		if (!old && n <= st->history_max)
			break;
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		n--;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One attempt: the whole log and the prune in one write transaction.
 * Returns LMDB's result; *call names the call that failed. */
static int apply_log(struct bg_state *st, const char **call)
{
	MDB_txn *txn;
	*call = "mdb_txn_begin";
	int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (size_t i = 0; rc == 0 && i < st->nops; i++)
		rc = apply_op(st, txn, &st->ops[i], call);
	if (rc == 0)
		rc = prune_history(st, txn, call);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	*call = "mdb_txn_commit";
	return mdb_txn_commit(txn);
}

/* Double the map (page-aligned, capped at max_map_size), its file's blocks
 * reserved first under a writable map. No transaction of this process may
 * be open: the log's was aborted and walks are refused. */
static int grow_map(struct bg_state *st, const char *call)
{
	MDB_envinfo info;
	MDB_stat es;
	int rc = mdb_env_info(st->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(st->env, &es);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_info", rc);
	size_t cur = info.me_mapsize;
	size_t next = cur > st->max_map_size / 2 ? st->max_map_size : cur * 2;
	next -= next % es.ms_psize;
	if (next <= cur)
		return bg_state_fail(st, BG_STATE_EMAPFULL,
				     "%s: %s (map at max_map_size, %zu bytes)",
				     call, mdb_strerror(MDB_MAP_FULL), cur);
	/* a writable map grows only over reserved blocks: a full disk is
	 * this commit's error, kept and retried like MDB_MAP_FULL */
	if (st->writemap && (rc = bg_state_map_reserve(st, next)))
		return rc;
	return bg_state_fail_mdb(st, "mdb_env_set_mapsize",
				 mdb_env_set_mapsize(st->env, next));
}

int bg_state_commit(struct bg_state *st)
{
	if (st->nops == 0)
		return 0;
	if (st->walking)
		return bg_state_fail(st, -EBUSY,
				     "bg_state_commit inside an each() walk");
	bool retried = false;
	for (;;) {
		const char *call;
		int rc = apply_log(st, &call);
		if (rc == 0) {
			bg_state_ops_clear(st);
			return 0;
		}
		if (rc == MDB_READERS_FULL && !retried) {
			retried = true;
			bg_state_reader_check(st, NULL);
			continue;
		}
		if (rc != MDB_MAP_FULL)
			return bg_state_fail_mdb(st, call, rc);
		if ((rc = grow_map(st, call)))
			return rc;
	}
}
