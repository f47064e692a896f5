/* state/db.c - the operations of each database (meta, journal, inflight,
 * history, sessions): writes go to the buffer of commit.c, reads and walks
 * see committed data in their own read transaction. A record that does not
 * decode is BG_STATE_ECORRUPT, never read past its bytes. */
#include <errno.h>
#include <string.h>

#include "state/internal.h"

/* ---- helpers ---- */

static int entry_key(struct bg_buf *key, struct bg_str stream,
		     struct bg_str entry_id)
{
	int rc = bg_state_key_add(key, stream);
	return rc ? rc : bg_state_key_add(key, entry_id);
}

static int session_key(struct bg_buf *key, struct bg_str agent_type,
		       struct bg_str user_code, struct bg_str session_id)
{
	int rc = bg_state_key_add(key, agent_type);
	rc = rc ? rc : bg_state_key_add(key, user_code);
	return rc ? rc : bg_state_key_add(key, session_id);
}

/* Buffer the put or delete of kv: the key's klen bytes then, for a put,
 * the record encoded right after them (one buffer, handed to the op log
 * without a copy); a delete is kv with klen == kv->len and put false.
 * rc is an encoding result. Frees kv unless the op log took it. */
static int push(struct bg_state *st, enum bg_state_db db, int rc,
		struct bg_buf *kv, size_t klen, bool put)
{
	if (rc)
		rc = bg_state_fail(st, rc, "%s: cannot encode record (%s)",
				   bg_state_db_name(db), strerror(-rc));
	else
		rc = bg_state_op_push(st, db, kv, klen, put);
	bg_buf_free(kv);
	return rc;
}

/* Buffer the delete of key. */
static int push_del(struct bg_state *st, enum bg_state_db db, int rc,
		    struct bg_buf *key)
{
	return push(st, db, rc, key, key->len, false);
}

/* Append the committed record of key to out. -ENOENT when absent. */
static int read_record(struct bg_state *st, enum bg_state_db db,
		       const struct bg_buf *key, struct bg_buf *out)
{
	if (!st->has_db[db])
		return bg_state_fail(st, -ENOENT, "no %s database",
				     bg_state_db_name(db));
	MDB_txn *txn;
	int rc = bg_state_txn_begin(st, false, &txn);
	if (rc)
		return rc;
	MDB_val k = { key->len, key->p }, v;
	rc = mdb_get(txn, st->dbi[db], &k, &v);
	if (rc == 0 && bg_buf_append(out, v.mv_data, v.mv_size))
		rc = ENOMEM;
	mdb_txn_abort(txn);
	return bg_state_fail_mdb(st, "mdb_get", rc);
}

static int corrupt(struct bg_state *st, enum bg_state_db db, struct bg_str a,
		   struct bg_str b)
{
	return bg_state_fail(st, BG_STATE_ECORRUPT,
			     "%s record (%.*s, %.*s) does not decode",
			     bg_state_db_name(db), (int)a.len, a.p, (int)b.len,
			     b.p);
}

/* Walk every record of db in key order. fn sees LMDB's memory, valid
 * during the call only; a record it cannot decode counts in *bad and the
 * walk goes on. */
typedef int (*walk_fn)(void *ctx, struct bg_str key, struct bg_str val,
		       size_t *bad);

static int walk(struct bg_state *st, enum bg_state_db db, walk_fn fn, void *ctx)
{
	if (!st->has_db[db])
		return 0;
	MDB_txn *txn;
	MDB_cursor *c;
	int rc = bg_state_txn_begin(st, false, &txn);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(txn, st->dbi[db], &c))) {
		mdb_txn_abort(txn);
		return bg_state_fail_mdb(st, "mdb_cursor_open", rc);
	}
	size_t bad = 0;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int fn_rc = 0;
	st->walking++;
	while (fn_rc == 0 && (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		fn_rc = fn(ctx, (struct bg_str){ k.mv_data, k.mv_size },
			   (struct bg_str){ v.mv_data, v.mv_size }, &bad);
	}
	st->walking--;
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (fn_rc)
		return fn_rc;
	if (rc != MDB_NOTFOUND)
		return bg_state_fail_mdb(st, "mdb_cursor_get", rc);
	if (bad)
		return bg_state_fail(st, BG_STATE_ECORRUPT,
				     "%s: %zu record(s) do not decode",
				     bg_state_db_name(db), bad);
	return 0;
}

/* The caller's callback of a walk, by database. */
struct user_walk {
	union {
		bg_state_meta_fn meta;
		bg_state_journal_fn journal;
		bg_state_exec_fn exec;
		bg_state_hist_fn hist;
		bg_state_session_fn session;
	} fn;
	void *arg;
};

/* ---- meta ---- */

static int meta_key(struct bg_buf *key, const char *name)
{
	return bg_buf_puts(key, name);
}

int bg_state_meta_put(struct bg_state *st, const char *key, struct bg_str val)
{
	struct bg_buf kv = { 0 };
	int rc = meta_key(&kv, key);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_blob_encode(&kv, val);
	return push(st, BG_DB_META, rc, &kv, klen, true);
}

/* Append the payload of a blob record (meta, journal) to out. */
static int read_blob(struct bg_state *st, enum bg_state_db db,
		     struct bg_buf *key, struct bg_str a, struct bg_str b,
		     struct bg_buf *out)
{
	struct bg_buf rec = { 0 };
	struct bg_str val;
	int rc = read_record(st, db, key, &rec);
	if (rc == 0 &&
	    bg_state_blob_decode((struct bg_str){ rec.p, rec.len }, &val))
		rc = corrupt(st, db, a, b);
	if (rc == 0 && bg_buf_append(out, val.p, val.len))
		rc = bg_state_fail(st, -ENOMEM, "out of memory");
	bg_buf_free(&rec);
	bg_buf_free(key);
	return rc;
}

int bg_state_meta_get(struct bg_state *st, const char *key, struct bg_buf *out)
{
	struct bg_buf k = { 0 };
	if (meta_key(&k, key))
		return bg_state_fail(st, -ENOMEM, "out of memory");
	return read_blob(st, BG_DB_META, &k, bg_str_c(key), BG_STR_LIT(""),
			 out);
}

static int meta_visit(void *ctx, struct bg_str key, struct bg_str val,
		      size_t *bad)
{
	struct user_walk *w = ctx;
	struct bg_str v;
	if (bg_state_blob_decode(val, &v)) {
		++*bad;
		return 0;
	}
	return w->fn.meta(w->arg, key, v);
}

int bg_state_meta_each(struct bg_state *st, bg_state_meta_fn fn, void *arg)
{
	struct user_walk w = { .fn.meta = fn, .arg = arg };
	return walk(st, BG_DB_META, meta_visit, &w);
}

/* ---- suspects (one meta value) ---- */

#define SUSPECTS_KEY "suspects"

int bg_state_suspects_put(struct bg_state *st, const struct bg_state_suspect *v,
			  size_t n)
{
	struct bg_buf kv = { 0 }, val = { 0 };
	int rc = meta_key(&kv, SUSPECTS_KEY);
	if (n == 0)
		return push_del(st, BG_DB_META, rc, &kv);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_suspects_encode(&val, v, n);
	rc = rc ? rc
		: bg_state_blob_encode(&kv, (struct bg_str){ val.p, val.len });
	bg_buf_free(&val);
	return push(st, BG_DB_META, rc, &kv, klen, true);
}

int bg_state_suspects_parse(struct bg_str val, bg_state_suspect_fn fn,
			    void *arg)
{
	return bg_state_suspects_decode(val, fn, arg);
}

int bg_state_suspects_each(struct bg_state *st, bg_state_suspect_fn fn,
			   void *arg)
{
	struct bg_buf val = { 0 };
	int rc = bg_state_meta_get(st, SUSPECTS_KEY, &val);
	if (rc == -ENOENT) {
		bg_buf_free(&val);
		return 0;
	}
	if (rc == 0) {
		rc = bg_state_suspects_decode((struct bg_str){ val.p, val.len },
					      fn, arg);
		if (rc == BG_STATE_ECORRUPT)
			rc = bg_state_fail(st, rc,
					   "meta \"suspects\" does not decode");
	}
	bg_buf_free(&val);
	return rc;
}

bool bg_state_was_closed_cleanly(const struct bg_state *st)
{
	return st->was_clean;
}

/* ---- journal ---- */

int bg_state_journal_put(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id, struct bg_str finish)
{
	/* the finish (KBs) is copied once here, once by LMDB */
	struct bg_buf kv = { 0 };
	int rc = bg_buf_reserve(&kv,
				4 + stream.len + entry_id.len + 1 + finish.len);
	rc = rc ? rc : entry_key(&kv, stream, entry_id);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_blob_encode(&kv, finish);
	return push(st, BG_DB_JOURNAL, rc, &kv, klen, true);
}

int bg_state_journal_del(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id)
{
	struct bg_buf k = { 0 };
	return push_del(st, BG_DB_JOURNAL, entry_key(&k, stream, entry_id), &k);
}

int bg_state_journal_get(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id, struct bg_buf *finish)
{
	struct bg_buf k = { 0 };
	if (entry_key(&k, stream, entry_id)) {
		bg_buf_free(&k);
		return bg_state_fail(st, -EINVAL, "journal key too long");
	}
	return read_blob(st, BG_DB_JOURNAL, &k, stream, entry_id, finish);
}

static int journal_visit(void *ctx, struct bg_str key, struct bg_str val,
			 size_t *bad)
{
	struct user_walk *w = ctx;
	struct bg_str parts[2], finish;
	if (bg_state_key_split(key, parts, 2) ||
	    bg_state_blob_decode(val, &finish)) {
		++*bad;
		return 0;
	}
	return w->fn.journal(w->arg, parts[0], parts[1], finish);
}

int bg_state_journal_each(struct bg_state *st, bg_state_journal_fn fn,
			  void *arg)
{
	struct user_walk w = { .fn.journal = fn, .arg = arg };
	return walk(st, BG_DB_JOURNAL, journal_visit, &w);
}

/* ---- executions in flight ---- */

int bg_state_exec_put(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id, const struct bg_state_exec *e)
{
	struct bg_buf kv = { 0 };
	int rc = entry_key(&kv, stream, entry_id);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_exec_encode(&kv, e);
	return push(st, BG_DB_INFLIGHT, rc, &kv, klen, true);
}

int bg_state_exec_del(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id)
{
	struct bg_buf k = { 0 };
	return push_del(st, BG_DB_INFLIGHT, entry_key(&k, stream, entry_id),
			&k);
}

int bg_state_exec_get(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id, struct bg_state_exec *e,
		      struct bg_buf *store)
{
	struct bg_buf k = { 0 };
	int rc = entry_key(&k, stream, entry_id);
	size_t off = store->len;
	if (rc)
		rc = bg_state_fail(st, -EINVAL, "inflight key too long");
	else
		rc = read_record(st, BG_DB_INFLIGHT, &k, store);
	bg_buf_free(&k);
	if (rc)
		return rc;
	struct bg_str rec = { store->p + off, store->len - off };
	return bg_state_exec_decode(rec, e)
		       ? corrupt(st, BG_DB_INFLIGHT, stream, entry_id)
		       : 0;
}

static int exec_visit(void *ctx, struct bg_str key, struct bg_str val,
		      size_t *bad)
{
	struct user_walk *w = ctx;
	struct bg_str parts[2];
	struct bg_state_exec e;
	if (bg_state_key_split(key, parts, 2) ||
	    bg_state_exec_decode(val, &e)) {
		++*bad;
		return 0;
	}
	return w->fn.exec(w->arg, parts[0], parts[1], &e);
}

int bg_state_exec_each(struct bg_state *st, bg_state_exec_fn fn, void *arg)
{
	struct user_walk w = { .fn.exec = fn, .arg = arg };
	return walk(st, BG_DB_INFLIGHT, exec_visit, &w);
}

/* ---- history ---- */

int bg_state_hist_add(struct bg_state *st, const struct bg_state_hist *h)
{
	struct bg_buf kv = { 0 };
	int rc = bg_state_hist_key(&kv, h->finished_ms, st->hist_seq++);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_hist_encode(&kv, h);
	return push(st, BG_DB_HISTORY, rc, &kv, klen, true);
}

static int hist_visit(void *ctx, struct bg_str key, struct bg_str val,
		      size_t *bad)
{
	struct user_walk *w = ctx;
	struct bg_state_hist h;
	if (key.len != BG_STATE_HIST_KEY_LEN || bg_state_hist_decode(val, &h)) {
		++*bad;
		return 0;
	}
	return w->fn.hist(w->arg, &h);
}

int bg_state_hist_each(struct bg_state *st, bg_state_hist_fn fn, void *arg)
{
	struct user_walk w = { .fn.hist = fn, .arg = arg };
	return walk(st, BG_DB_HISTORY, hist_visit, &w);
}

/* ---- sessions ---- */

int bg_state_session_put(struct bg_state *st, const struct bg_state_session *s)
{
	struct bg_buf kv = { 0 };
	int rc = session_key(&kv, s->agent_type, s->user_code, s->session_id);
	size_t klen = kv.len;
	rc = rc ? rc : bg_state_session_encode(&kv, s);
	return push(st, BG_DB_SESSIONS, rc, &kv, klen, true);
}

int bg_state_session_del(struct bg_state *st, struct bg_str agent_type,
			 struct bg_str user_code, struct bg_str session_id)
{
	struct bg_buf k = { 0 };
	int rc = session_key(&k, agent_type, user_code, session_id);
	return push_del(st, BG_DB_SESSIONS, rc, &k);
}

static int session_visit(void *ctx, struct bg_str key, struct bg_str val,
			 size_t *bad)
{
	struct user_walk *w = ctx;
	struct bg_state_session s;
	if (bg_state_session_decode(key, val, &s)) {
		++*bad;
		return 0;
	}
	return w->fn.session(w->arg, &s);
}

int bg_state_session_each(struct bg_state *st, bg_state_session_fn fn,
			  void *arg)
{
	struct user_walk w = { .fn.session = fn, .arg = arg };
	return walk(st, BG_DB_SESSIONS, session_visit, &w);
}
