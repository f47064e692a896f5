/* state/internal.h - what the files of state/ share: the handle, the write
 * buffer (op log), the key and record codecs and the error helpers. Not an
 * interface: nothing outside state/ includes it.
 *
 * The files call downwards only, from the top:
 *   env.c     open and close          -> db.c, commit.c, record.c, base.c
 *   db.c      the databases           -> commit.c, record.c, base.c
 *   stats.c   figures                 -> base.c
 *   commit.c  the op log, commit      -> record.c, base.c
 *   record.c, finish.c  the codecs    (call nothing of state/)
 *   base.c    errors, names, transactions (calls nothing of state/) */
#ifndef BG_STATE_INTERNAL_H
#define BG_STATE_INTERNAL_H

#include <limits.h>
#include <lmdb.h>

#include "state/state.h"

#define BG_STATE_RECORD_V1 1

/* One buffered write: kv holds the encoded key (klen bytes) then, for a
 * put, the encoded record. Owned (encoded from the caller's views, which
 * may then die). */
struct bg_state_op {
	struct bg_buf kv;
	size_t klen;
	enum bg_state_db db;
	bool del;
};

struct bg_state {
	MDB_env *env;
	MDB_dbi dbi[BG_DB__COUNT];
	bool has_db[BG_DB__COUNT]; /* false: absent in a read-only open */
	bool ro, sync;
	/* MDB_WRITEMAP: "process" durability with the data file's blocks
	 * reserved up to the map size (state.h); false after a failed
	 * reservation at open, whose message is in no_writemap */
	bool writemap;
	char no_writemap[512];
	size_t max_map_size;
	uint64_t history_max;
	int64_t history_max_age_ms;
	uint64_t hist_seq;
	int walking; /* read transactions open in an each() walk */
	struct bg_state_op *ops;
	size_t nops, ops_cap;
	char path[PATH_MAX];	 /* <dir>/lmdb */
	char moved_to[PATH_MAX]; /* "" unless moved aside at open */
	bool was_clean;		 /* clean_close "1" found at open */
	char err[512];
};

/* ---- errors (base.c) ---- */
/* Record "<call>: <mdb_strerror(rc)>" and return the bygate code of an
 * LMDB or errno result (MDB_NOTFOUND -> -ENOENT, errno -> -errno, other
 * MDB_* -> BG_STATE_ELMDB). rc 0 returns 0 and records nothing. */
int bg_state_fail_mdb(struct bg_state *st, const char *call, int rc);
/* The bygate code of an LMDB or errno result (0 stays 0). */
int bg_state_mdb_code(int rc);
/* Record a formatted message and return code. */
int bg_state_fail(struct bg_state *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- transactions (base.c) ---- */
/* Begin a transaction, handling MDB_READERS_FULL (reader check, one retry)
 * and MDB_MAP_RESIZED (adopt the new size when no walk is open). */
int bg_state_txn_begin(struct bg_state *st, bool write, MDB_txn **txn);

/* ---- the writable map (base.c) ---- */
/* Reserve the data file's blocks from 0 to size (posix_fallocate), so that
 * a write into the shared map never lands in a hole: on a full disk that
 * would be SIGBUS in bygated rather than an error of a call. Call before
 * the map is made (or grown) to size. -errno with st->err set. */
int bg_state_map_reserve(struct bg_state *st, size_t size);

/* ---- op log (commit.c) ---- */
/* Buffer a put (the key's klen bytes of kv, then the record) or a delete
 * (put false: kv is the key, klen its length) in db. On success takes kv's
 * memory without copying it and leaves *kv empty; on failure kv stays the
 * caller's. -EROFS read-only, -EINVAL key too long, -ENOMEM. */
int bg_state_op_push(struct bg_state *st, enum bg_state_db db,
		     struct bg_buf *kv, size_t klen, bool put);
void bg_state_ops_clear(struct bg_state *st);

/* ---- keys (record.c): u16 big-endian length + bytes per component ---- */
int bg_state_key_add(struct bg_buf *key, struct bg_str part);
/* Split key into exactly n components; -1 when it does not decode. */
int bg_state_key_split(struct bg_str key, struct bg_str *parts, int n);
/* History key: u64 BE finished_ms (negative clamps to 0), u64 BE seq. */
int bg_state_hist_key(struct bg_buf *key, int64_t finished_ms, uint64_t seq);
#define BG_STATE_HIST_KEY_LEN 16
uint64_t bg_state_be64(const void *p);

/* ---- records (record.c): version byte first, then the v1 layout ---- */
int bg_state_exec_encode(struct bg_buf *rec, const struct bg_state_exec *e);
int bg_state_exec_decode(struct bg_str rec, struct bg_state_exec *e);
int bg_state_hist_encode(struct bg_buf *rec, const struct bg_state_hist *h);
int bg_state_hist_decode(struct bg_str rec, struct bg_state_hist *h);
/* The key components (agent type, user code, session) are not stored in
 * the value; decode fills them from the key. */
int bg_state_session_encode(struct bg_buf *rec,
			    const struct bg_state_session *s);
int bg_state_session_decode(struct bg_str key, struct bg_str rec,
			    struct bg_state_session *s);
/* The meta "suspects" value (inside its blob): see state.h. */
int bg_state_suspects_encode(struct bg_buf *val,
			     const struct bg_state_suspect *v, size_t n);
int bg_state_suspects_decode(struct bg_str val, bg_state_suspect_fn fn,
			     void *arg);
/* meta and journal values: version byte + opaque bytes. */
int bg_state_blob_encode(struct bg_buf *rec, struct bg_str val);
int bg_state_blob_decode(struct bg_str rec, struct bg_str *val);

#endif
