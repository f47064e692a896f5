/* state/base.c - the bottom of state/: what every other file of it calls.
 * Error recording (the failed call and LMDB's text in st->err), database
 * names, beginning a transaction, the reader check and the reservation of
 * the data file's blocks under a writable map. Calls nothing else
 * of state/, so the files above it (commit.c, db.c, stats.c, env.c) form
 * no circle. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "state/internal.h"

/* ---- errors ---- */

int bg_state_fail(struct bg_state *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof st->err, fmt, ap);
	va_end(ap);
	return code;
}

int bg_state_mdb_code(int rc)
{
	return rc == 0		    ? 0
	       : rc > 0		    ? -rc
	       : rc == MDB_NOTFOUND ? -ENOENT
	       : rc == MDB_MAP_FULL ? BG_STATE_EMAPFULL
				    : BG_STATE_ELMDB;
}

int bg_state_fail_mdb(struct bg_state *st, const char *call, int rc)
{
	if (rc == 0)
		return 0;
	return bg_state_fail(st, bg_state_mdb_code(rc), "%s: %s", call,
			     mdb_strerror(rc));
}

const char *bg_state_db_name(enum bg_state_db db)
{
	static const char *const names[BG_DB__COUNT] = { "meta", "journal",
							 "inflight", "history",
							 "sessions" };
	return (unsigned)db < BG_DB__COUNT ? names[db] : "?";
}

/* ---- transactions ---- */

int bg_state_txn_begin(struct bg_state *st, bool write, MDB_txn **txn)
{
	unsigned flags = write ? 0 : MDB_RDONLY;
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == MDB_READERS_FULL) {
		int dead;
		mdb_reader_check(st->env, &dead);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	if (rc == MDB_MAP_RESIZED && st->walking == 0) {
		/* another process (bygated) grew the map: adopt its size */
		rc = mdb_env_set_mapsize(st->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	return bg_state_fail_mdb(st, "mdb_txn_begin", rc);
}

int bg_state_reader_check(struct bg_state *st, int *dead)
{
	int n = 0;
	int rc = mdb_reader_check(st->env, &n);
	if (dead)
		*dead = n;
	return bg_state_fail_mdb(st, "mdb_reader_check", rc);
}

/* ---- the writable map ("process" durability) ---- */

int bg_state_map_reserve(struct bg_state *st, size_t size)
{
	mdb_filehandle_t fd;
	int rc = mdb_env_get_fd(st->env, &fd);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_get_fd", rc);
	rc = posix_fallocate(fd, 0, (off_t)size);
	if (rc)
		return bg_state_fail(
			st, -rc, "posix_fallocate(%s/data.mdb, %zu bytes): %s",
			st->path, size, strerror(rc));
	return 0;
}
