/* state/stats.c - figures for bygate-state stats and /metrics: map size and
 * use, entries per database, reader slots. Counting stale readers only
 * looks (a dead pid in the reader table); clearing them is
 * bg_state_reader_check's job, so a read-only caller changes nothing. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

struct readers {
	unsigned used;
	int stale;
};

/* One line of mdb_reader_list: "<pid> <thread> <txnid>"; the header and
 * "(no active readers)" lines do not start with a number. */
static int count_reader(const char *msg, void *ctx)
{
	struct readers *r = ctx;
	char *end;
	long pid = strtol(msg, &end, 10);
	if (end == msg || pid <= 0)
		return 0;
	r->used++;
	if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
		r->stale++;
	return 0;
}

static int count_entries(struct bg_state *st, struct bg_state_stats *s)
{
	MDB_txn *txn;
	int rc = bg_state_txn_begin(st, false, &txn);
	if (rc)
		return rc;
	for (int db = 0; rc == 0 && db < BG_DB__COUNT; db++) {
		MDB_stat ms;
		if (!st->has_db[db])
			continue;
		rc = bg_state_fail_mdb(st, "mdb_stat",
				       mdb_stat(txn, st->dbi[db], &ms));
		s->entries[db] = rc ? 0 : ms.ms_entries;
	}
	mdb_txn_abort(txn);
	return rc;
}

int bg_state_get_stats(struct bg_state *st, struct bg_state_stats *s)
{
	memset(s, 0, sizeof *s);
	MDB_envinfo info;
	MDB_stat es;
	int rc = mdb_env_info(st->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(st->env, &es);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_info", rc);
	s->map_size = info.me_mapsize;
	s->map_used = (info.me_last_pgno + 1) * (size_t)es.ms_psize;
	s->readers_max = info.me_maxreaders;
	struct readers r = { 0, 0 };
	rc = mdb_reader_list(st->env, count_reader, &r);
	if (rc < 0)
		return bg_state_fail(st, BG_STATE_ELMDB,
				     "mdb_reader_list failed");
	s->readers_used = r.used;
	s->stale_readers = r.stale;
	return count_entries(st, s);
}
