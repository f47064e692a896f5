/* state/state.h - this host's LMDB journal and mirror (DESIGN 6).
 * bygated is the only writer; bygate-state opens read-only; a child never
 * opens it. Redis is the authority: nothing here decides what another worker
 * must decide too. The component returns error codes and never logs.
 *
 * Databases (all records versioned: first byte = record version):
 *   meta      "schema" -> u32 schema version; "lease_token" -> token;
 *             "worker_id"; "boot_id" (kernel boot id at last open);
 *             "clean_close" -> "1"/"0"; "suspects" -> the list of entries
 *             to re-run one at a time after an unclean exit (below)
 *   journal   key(stream, entry id) -> finish: the exact commands of the
 *             finish transaction, journaled before its MULTI/EXEC is sent,
 *             deleted once EXEC succeeded (or the entry is found acked)
 *   inflight  key(stream, entry id) -> struct bg_state_exec: every execution
 *             in flight here from dispatch until its finish is applied;
 *             carries the attempt counter
 *   history   key(u64 big-endian finished_ms, u64 seq) -> struct
 *             bg_state_hist; bounded by count and age (oldest dropped)
 *   sessions  key(agent type, user code, session) -> struct bg_state_session
 * Keys are length-prefixed strings (u16 big-endian length + bytes each),
 * never a 32-bit execution id alone.
 *
 * Writes are buffered in memory and applied by bg_state_commit() in ONE
 * write transaction (bygated commits once per loop turn, before its Redis
 * writes are flushed). MDB_MAP_FULL makes commit grow the map (doubling up
 * to max_map_size) and apply the buffer again. Reads see committed data
 * only (not the buffer): the daemon keeps its own copies.
 *
 * Durability (docs/state.md "Durability"):
 *   "sync"     no MDB_NOSYNC, no MDB_WRITEMAP: LMDB writes the pages and
 *              the meta page with write system calls and fdatasyncs each
 *              commit; survives an OS crash.
 *   "process"  MDB_NOSYNC | MDB_WRITEMAP: a commit is stores into the
 *              shared file mapping (the dirty pages in place, then the
 *              meta page's txnid last), no system call. The mapping's pages
 *              are the file's page cache pages, so once mdb_txn_commit
 *              returns, the commit is in the kernel exactly as a pwrite
 *              would have put it there: a kill -9 of bygated (at any
 *              instant: an unfinished commit never touched the pages of
 *              the last committed meta) loses nothing committed; an OS
 *              crash can tear the file (the boot_id move-aside of
 *              bg_state_open). The data file's blocks are reserved up to
 *              the map size (posix_fallocate) before the map is made or
 *              grown, so a full disk is a failed open or grow (an error),
 *              never SIGBUS on a store into a hole; `du` shows the whole
 *              map size. If the reservation fails at open, the environment
 *              is opened without MDB_WRITEMAP (write system calls per
 *              commit, same guarantee) and bg_state_no_writemap_reason()
 *              says why. The writable map is bygated's alone: bygate-state
 *              opens read-only (a read-only map), children are execve'd
 *              and never inherit it; the cost accepted is that a wild
 *              store of bygated into the map would reach the file (LMDB's
 *              own caveat), where a read-only map would fault. */
#ifndef BG_STATE_STATE_H
#define BG_STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define BG_STATE_SCHEMA 1

/* Error codes beyond -errno. */
#define BG_STATE_ESCHEMA (-6001)  /* unknown schema version in meta */
#define BG_STATE_ECORRUPT (-6002) /* a record does not decode */
#define BG_STATE_EMAPFULL (-6003) /* map at max_map_size and still full */
#define BG_STATE_ELMDB (-6004)	  /* other LMDB error; see bg_state_errmsg */

struct bg_state;

struct bg_state_opts {
	const char *dir; /* state directory (created by the caller) */
	bool read_only;	 /* bygate-state */
	bool sync; /* durability "sync": fsync per commit; false is "process":
		    * MDB_NOSYNC and a writable map (above) */
	size_t map_size;	    /* initial map size; 0 = 64 MiB */
	size_t max_map_size;	    /* growth ceiling; 0 = 8 GiB */
	uint64_t history_max;	    /* entries kept; 0 = 100000 */
	int64_t history_max_age_ms; /* 0 = 7 days */
};

/* Open (and create unless read_only) the environment in opts->dir/lmdb.
 * Takes no lock of its own: bygated holds <state_dir>/bygated.lock.
 * In "process" durability (MDB_NOSYNC) an unclean OS restart can leave a
 * torn environment: when meta.boot_id differs from the running kernel's
 * (/proc/sys/kernel/random/boot_id) and meta.clean_close is not "1", the
 * environment is renamed to lmdb.unclean-<unix time> and a fresh one is
 * created (*moved_aside = true); Redis recovery then takes over. Writes
 * boot_id and clean_close "0" at open (writer), clean_close "1" at close.
 * Runs mdb_reader_check (writer only: a read-only open changes nothing).
 * Sets FD_CLOEXEC on every descriptor LMDB opened (data file and lock
 * file). A newer schema is BG_STATE_ESCHEMA; a read-only open of a missing
 * environment is -ENOENT. On failure *out is NULL and bg_state_errmsg(NULL)
 * gives the reason. */
int bg_state_open(const struct bg_state_opts *opts, struct bg_state **out,
		  bool *moved_aside);
/* Writer: commits what is still buffered with clean_close "1", then (in
 * "process" durability) flushes to disk. Call bg_state_commit() first and
 * check it: a failure here is silent (clean_close stays "0"). */
void bg_state_close(struct bg_state *st);
/* Text of the last error (the failed call and LMDB's message); st NULL:
 * the last failed bg_state_open() of this thread. */
const char *bg_state_errmsg(const struct bg_state *st);
/* Where bg_state_open() moved an unclean environment, else NULL. */
const char *bg_state_moved_aside_path(const struct bg_state *st);
/* Whether commits are stores into a writable map ("process" durability,
 * MDB_WRITEMAP); false in "sync", read-only, or after the fallback below. */
bool bg_state_writes_in_place(const struct bg_state *st);
/* Why a "process" writer opened without MDB_WRITEMAP (the reservation of
 * the map's blocks failed), else NULL. */
const char *bg_state_no_writemap_reason(const struct bg_state *st);

/* Apply the buffered writes in one write transaction. 0 when nothing was
 * buffered or all applied; on error the buffer is kept for the next try.
 * MDB_READERS_FULL triggers a reader check and one retry. The history is
 * pruned in the same transaction. -EBUSY from inside an each() callback
 * (growing the map needs every transaction closed). Writes are -EROFS
 * read-only, -EINVAL for a key over 511 bytes. */
int bg_state_commit(struct bg_state *st);
size_t bg_state_buffered(const struct bg_state *st);

/* mdb_reader_check; *dead = stale readers cleared. */
int bg_state_reader_check(struct bg_state *st, int *dead);

/* ---- meta ---- */
int bg_state_meta_put(struct bg_state *st, const char *key, struct bg_str val);
/* *out receives a copy (appended); -ENOENT when absent. */
int bg_state_meta_get(struct bg_state *st, const char *key, struct bg_buf *out);
typedef int (*bg_state_meta_fn)(void *arg, struct bg_str key,
				struct bg_str val);
int bg_state_meta_each(struct bg_state *st, bg_state_meta_fn fn, void *arg);

/* ---- journal of unpublished finishes ---- */
int bg_state_journal_put(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id, struct bg_str finish);
int bg_state_journal_del(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id);
int bg_state_journal_get(struct bg_state *st, struct bg_str stream,
			 struct bg_str entry_id, struct bg_buf *finish);
/* Calls fn for every journaled finish (committed data), in key order;
 * a non-zero return from fn stops the walk and is returned. The views
 * passed to fn are valid during the call only. Every *_each skips records
 * that do not decode and then returns BG_STATE_ECORRUPT. */
typedef int (*bg_state_journal_fn)(void *arg, struct bg_str stream,
				   struct bg_str entry_id,
				   struct bg_str finish);
int bg_state_journal_each(struct bg_state *st, bg_state_journal_fn fn,
			  void *arg);

/* A finish's bytes: a command list of common/cmdlist.h (u32 command count,
 * then per command u32 argc and per argument u32 length + bytes, host
 * order: little endian on every supported host; at most
 * BG_CMDLIST_MAX_ARGS arguments a command). finish_add appends a command
 * (an empty buffer starts a finish); finish_each checks the whole finish
 * (BG_STATE_ECORRUPT, fn never called) then calls fn per command in
 * order, argv pointing into finish; fn's non-zero return stops it. */
int bg_state_finish_add(struct bg_buf *finish, int argc,
			const struct bg_str *argv);
typedef int (*bg_state_finish_fn)(void *arg, int argc,
				  const struct bg_str *argv);
int bg_state_finish_each(struct bg_str finish, bg_state_finish_fn fn,
			 void *arg);

/* ---- executions in flight ---- */
struct bg_state_exec {
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str agent_type;
	int32_t slot;
	int32_t pid;
	uint32_t attempt;     /* attempts started, 1-based */
	uint32_t interrupted; /* attempts ended by a child death */
	int64_t started_ms;   /* this attempt */
	int64_t first_seen_ms;
};
int bg_state_exec_put(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id, const struct bg_state_exec *e);
int bg_state_exec_del(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id);
/* The views in *e point into `store` (owned by the caller, appended to). */
int bg_state_exec_get(struct bg_state *st, struct bg_str stream,
		      struct bg_str entry_id, struct bg_state_exec *e,
		      struct bg_buf *store);
typedef int (*bg_state_exec_fn)(void *arg, struct bg_str stream,
				struct bg_str entry_id,
				const struct bg_state_exec *e);
int bg_state_exec_each(struct bg_state *st, bg_state_exec_fn fn, void *arg);

/* ---- suspects (meta "suspects", docs/recovery.md) ----
 * The entries that were pending here when bygated died, re-run one at a
 * time before anything else runs; the list survives a crash during that
 * re-run. Stored as one meta value (a handful of entries, rewritten
 * whole): u32 count, then per suspect u32 alone_crashes, u8 running,
 * stream and entry id as u32 length + bytes (integers big-endian). */
struct bg_state_suspect {
	struct bg_str stream;
	struct bg_str entry_id;
	uint32_t alone_crashes; /* times bygated died while it ran alone */
	bool running;		/* being re-run now: a death is its own */
};
/* Replace the list (n 0 removes it); buffered like every write. */
int bg_state_suspects_put(struct bg_state *st, const struct bg_state_suspect *v,
			  size_t n);
/* Calls fn for each suspect of the committed list, in order (views valid
 * during the call only); no list calls nothing and returns 0; a list that
 * does not decode is BG_STATE_ECORRUPT and fn is never called. */
typedef int (*bg_state_suspect_fn)(void *arg, const struct bg_state_suspect *s);
int bg_state_suspects_each(struct bg_state *st, bg_state_suspect_fn fn,
			   void *arg);
/* The same over a meta "suspects" value already read (bygate-state). */
int bg_state_suspects_parse(struct bg_str val, bg_state_suspect_fn fn,
			    void *arg);
/* Whether the previous writer closed this environment cleanly (clean_close
 * "1" found at open). False for a new or moved-aside environment, for a
 * read-only open, and after any death of the previous bygated. */
bool bg_state_was_closed_cleanly(const struct bg_state *st);

/* ---- history of recent finishes (bounded) ---- */
struct bg_state_hist {
	struct bg_str stream;
	struct bg_str entry_id;
	struct bg_str execution_id;
	struct bg_str message_id;
	struct bg_str session_id;
	struct bg_str agent_type;
	struct bg_str status; /* COMPLETED, FAILED, DEADLETTER:<code>, ACKED */
	int64_t finished_ms;
	int64_t duration_ms;
	uint32_t attempt;
};
int bg_state_hist_add(struct bg_state *st, const struct bg_state_hist *h);
typedef int (*bg_state_hist_fn)(void *arg, const struct bg_state_hist *h);
int bg_state_hist_each(struct bg_state *st, bg_state_hist_fn fn, void *arg);

/* ---- session workspace index ---- */
struct bg_state_session {
	struct bg_str agent_type;
	struct bg_str user_code;
	struct bg_str session_id;
	struct bg_str path;
	int64_t created_ms;
	int64_t last_used_ms;
	int64_t bytes; /* measured at garbage-collection time, -1 unknown */
};
int bg_state_session_put(struct bg_state *st, const struct bg_state_session *s);
int bg_state_session_del(struct bg_state *st, struct bg_str agent_type,
			 struct bg_str user_code, struct bg_str session_id);
typedef int (*bg_state_session_fn)(void *arg, const struct bg_state_session *s);
int bg_state_session_each(struct bg_state *st, bg_state_session_fn fn,
			  void *arg);

/* ---- statistics (bygate-state stats, /metrics) ---- */
enum bg_state_db {
	BG_DB_META,
	BG_DB_JOURNAL,
	BG_DB_INFLIGHT,
	BG_DB_HISTORY,
	BG_DB_SESSIONS,
	BG_DB__COUNT
};
struct bg_state_stats {
	size_t map_size, map_used; /* bytes */
	size_t entries[BG_DB__COUNT];
	unsigned readers_max, readers_used;
	int stale_readers;
};
int bg_state_get_stats(struct bg_state *st, struct bg_state_stats *s);
const char *bg_state_db_name(enum bg_state_db db);

#endif
