/* state/env.c - the LMDB environment's life: open (create, schema check,
 * the unclean-restart move-aside of DESIGN 6, close-on-exec descriptors)
 * and close (clean_close "1", through commit.c and db.c). The top of
 * state/: the files below it (base.c, commit.c, db.c) never call it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "state/internal.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_MAX_MAP_SIZE ((size_t)8 << 30)
#define DEFAULT_HISTORY_MAX 100000
#define DEFAULT_HISTORY_AGE_MS (7LL * 24 * 3600 * 1000)
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The message of the last failed bg_state_open() of this thread. */
static __thread char open_err[512];

/* ---- error text and where the environment went ---- */

const char *bg_state_errmsg(const struct bg_state *st)
{
	return st ? st->err : open_err;
}

const char *bg_state_moved_aside_path(const struct bg_state *st)
{
	return st->moved_to[0] ? st->moved_to : NULL;
}

bool bg_state_writes_in_place(const struct bg_state *st)
{
	return st->writemap;
}

const char *bg_state_no_writemap_reason(const struct bg_state *st)
{
	return st->no_writemap[0] ? st->no_writemap : NULL;
}

/* ---- close-on-exec ---- */

static int set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags == -1 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == -1)
		return -errno;
	return 0;
}

/* link names <real>/data.mdb or <real>/lock.mdb */
static bool is_env_file(const char *real, const char *link)
{
	size_t n = strlen(real);
	return strncmp(link, real, n) == 0 && link[n] == '/' &&
	       (strcmp(link + n + 1, "data.mdb") == 0 ||
		strcmp(link + n + 1, "lock.mdb") == 0);
}

/* LMDB 0.9.24 exposes only the data file's descriptor; the lock file (and,
 * for a writer, a second descriptor of data.mdb for meta pages) are found
 * by name in /proc/self/fd. Without /proc the writer fails: a descriptor
 * leaking into every child is not acceptable. */
static int cloexec_env_fds(struct bg_state *st)
{
	mdb_filehandle_t fd;
	int rc = mdb_env_get_fd(st->env, &fd);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_get_fd", rc);
	if ((rc = set_cloexec(fd)))
		return bg_state_fail(st, rc, "fcntl(FD_CLOEXEC): %s",
				     strerror(-rc));
	char real[PATH_MAX];
	if (realpath(st->path, real) == NULL)
		return bg_state_fail(st, -errno, "realpath %s: %s", st->path,
				     strerror(errno));
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return st->ro ? 0
			      : bg_state_fail(st, -errno,
					      "opendir /proc/self/fd: %s",
					      strerror(errno));
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char link[PATH_MAX];
		ssize_t n =
			readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (is_env_file(real, link))
			rc = set_cloexec(atoi(de->d_name));
	}
	closedir(d);
	return rc ? bg_state_fail(st, rc, "fcntl(FD_CLOEXEC): %s",
				  strerror(-rc))
		  : 0;
}

/* ---- meta inside the open transaction ---- */

static int meta_read(struct bg_state *st, MDB_txn *txn, const char *key,
		     struct bg_str *val)
{
	if (!st->has_db[BG_DB_META])
		return -ENOENT;
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, st->dbi[BG_DB_META], &k, &v);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_get(meta)", rc);
	if (bg_state_blob_decode((struct bg_str){ v.mv_data, v.mv_size }, val))
		return bg_state_fail(st, BG_STATE_ECORRUPT,
				     "meta \"%s\": record does not decode",
				     key);
	return 0;
}

static int meta_write(struct bg_state *st, MDB_txn *txn, const char *key,
		      struct bg_str val)
{
	struct bg_buf rec = { 0 };
	int rc = bg_state_blob_encode(&rec, val);
	if (rc == 0) {
		MDB_val k = { strlen(key), (void *)key };
		MDB_val v = { rec.len, rec.p };
		rc = bg_state_fail_mdb(st, "mdb_put(meta)",
				       mdb_put(txn, st->dbi[BG_DB_META], &k, &v,
					       0));
	}
	bg_buf_free(&rec);
	return rc;
}

static int open_dbs(struct bg_state *st, MDB_txn *txn)
{
	for (int db = 0; db < BG_DB__COUNT; db++) {
		int rc = mdb_dbi_open(txn, bg_state_db_name(db),
				      st->ro ? 0 : MDB_CREATE, &st->dbi[db]);
		if (rc == MDB_NOTFOUND && st->ro)
			continue;
		if (rc)
			return bg_state_fail_mdb(st, "mdb_dbi_open", rc);
		st->has_db[db] = true;
	}
	return 0;
}

/* *fresh when the environment has no schema yet (just created). */
static int check_schema(struct bg_state *st, MDB_txn *txn, bool *fresh)
{
	struct bg_str v;
	int rc = meta_read(st, txn, "schema", &v);
	*fresh = rc == -ENOENT;
	if (rc)
		return *fresh ? 0 : rc;
	if (v.len != 4)
		return bg_state_fail(st, BG_STATE_ECORRUPT,
				     "meta \"schema\": %zu bytes, expected 4",
				     v.len);
	const uint8_t *u = (const uint8_t *)v.p;
	uint32_t ver = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
		       (uint32_t)u[2] << 8 | u[3];
	if (ver > BG_STATE_SCHEMA)
		return bg_state_fail(st, BG_STATE_ESCHEMA,
				     "%s: schema version %u is newer than this "
				     "build's %d",
				     st->path, ver, BG_STATE_SCHEMA);
	return 0;
}

static void read_boot_id(char *out, size_t size)
{
	out[0] = '\0';
	FILE *f = fopen(BOOT_ID_PATH, "re");
	if (f == NULL)
		return;
	if (fgets(out, (int)size, f) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* The environment was last written during another boot and not closed
 * cleanly: in "process" durability its pages may be torn. An unknown boot
 * id (either side) never moves anything. */
static bool unclean_restart(struct bg_state *st, MDB_txn *txn,
			    const char *boot_id)
{
	struct bg_str old, clean;
	if (st->sync || boot_id[0] == '\0' ||
	    meta_read(st, txn, "boot_id", &old) != 0)
		return false;
	if (bg_str_eq(old, boot_id))
		return false;
	return meta_read(st, txn, "clean_close", &clean) != 0 ||
	       !bg_str_eq(clean, "1");
}

/* One write transaction: databases, schema, then either *unclean (nothing
 * written) or boot_id and clean_close "0" (and the schema when fresh). */
static int writer_begin(struct bg_state *st, bool may_move, bool *unclean)
{
	MDB_txn *txn;
	int rc = bg_state_txn_begin(st, true, &txn);
	if (rc)
		return rc;
	char boot_id[64];
	read_boot_id(boot_id, sizeof boot_id);
	bool fresh = false;
	rc = open_dbs(st, txn);
	rc = rc ? rc : check_schema(st, txn, &fresh);
	*unclean = rc == 0 && may_move && !fresh &&
		   unclean_restart(st, txn, boot_id);
	if (rc || *unclean) {
		mdb_txn_abort(txn);
		return rc;
	}
	struct bg_str clean;
	st->was_clean = !fresh &&
			meta_read(st, txn, "clean_close", &clean) == 0 &&
			bg_str_eq(clean, "1");
	uint8_t schema[4] = { 0, 0, 0, BG_STATE_SCHEMA };
	if (fresh)
		rc = meta_write(st, txn, "schema",
				(struct bg_str){ (char *)schema, 4 });
	if (rc == 0 && boot_id[0])
		rc = meta_write(st, txn, "boot_id", bg_str_c(boot_id));
	if (rc == 0)
		rc = meta_write(st, txn, "clean_close", BG_STR_LIT("0"));
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = bg_state_fail_mdb(st, "mdb_txn_commit", mdb_txn_commit(txn));
	/* clean_close "0" must be on disk before any unsynced write is */
	if (rc == 0 && !st->sync)
		rc = bg_state_fail_mdb(st, "mdb_env_sync",
				       mdb_env_sync(st->env, 1));
	return rc;
}

/* A read transaction opens the databases that exist and checks the schema;
 * committing it keeps the database handles for the environment's life. */
static int reader_begin(struct bg_state *st)
{
	MDB_txn *txn;
	int rc = bg_state_txn_begin(st, false, &txn);
	if (rc)
		return rc;
	bool fresh;
	rc = open_dbs(st, txn);
	rc = rc ? rc : check_schema(st, txn, &fresh);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return bg_state_fail_mdb(st, "mdb_txn_commit", mdb_txn_commit(txn));
}

/* ---- open and close ---- */

static void env_stop(struct bg_state *st)
{
	if (st->env)
		mdb_env_close(st->env);
	st->env = NULL;
	memset(st->has_db, 0, sizeof st->has_db);
}

static int env_open(struct bg_state *st, size_t map_size)
{
	if (!st->ro && mkdir(st->path, 0700) == -1 && errno != EEXIST)
		return bg_state_fail(st, -errno, "mkdir %s: %s", st->path,
				     strerror(errno));
	int rc = mdb_env_create(&st->env);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_create", rc);
	rc = mdb_env_set_maxdbs(st->env, BG_DB__COUNT);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_set_maxdbs", rc);
	rc = st->ro ? 0 : mdb_env_set_mapsize(st->env, map_size);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_set_mapsize", rc);
	unsigned flags = MDB_NOTLS | (st->ro ? MDB_RDONLY : 0) |
			 (st->sync ? 0 : MDB_NOSYNC) |
			 (st->writemap ? MDB_WRITEMAP : 0);
	rc = mdb_env_open(st->env, st->path, flags, 0600);
	if (rc)
		return bg_state_fail(st, bg_state_mdb_code(rc),
				     "mdb_env_open(%s): %s", st->path,
				     mdb_strerror(rc));
	return cloexec_env_fds(st);
}

/* Reserve the blocks of the whole map (LMDB has already extended the file
 * to it, sparse, when it made the writable map). */
static int reserve_whole_map(struct bg_state *st)
{
	MDB_envinfo info;
	int rc = mdb_env_info(st->env, &info);
	if (rc)
		return bg_state_fail_mdb(st, "mdb_env_info", rc);
	return bg_state_map_reserve(st, info.me_mapsize);
}

/* Open the environment; in "process" durability with a writable map whose
 * file is reserved (state.h). When that fails (a full disk, a quota or a
 * file size limit refusing the map's size) the environment is opened
 * again without MDB_WRITEMAP: commits then write through the file (write
 * system calls, the same guarantee) and the reason stays in
 * st->no_writemap. Any other failure fails that second open too. */
static int env_create(struct bg_state *st, size_t map_size)
{
	int rc = env_open(st, map_size);
	if (rc == 0 && st->writemap)
		rc = reserve_whole_map(st);
	if (rc == 0 || !st->writemap)
		return rc;
	snprintf(st->no_writemap, sizeof st->no_writemap, "%s", st->err);
	env_stop(st);
	st->writemap = false;
	return env_open(st, map_size);
}

static int env_start(struct bg_state *st, size_t map_size, bool may_move,
		     bool *unclean)
{
	*unclean = false;
	int rc = env_create(st, map_size);
	if (rc == 0 && !st->ro)
		rc = bg_state_reader_check(st, NULL);
	if (rc == 0)
		rc = st->ro ? reader_begin(st)
			    : writer_begin(st, may_move, unclean);
	return rc;
}

/* Rename <dir>/lmdb to <dir>/lmdb.unclean-<unix time>[-N]. */
static int move_aside(struct bg_state *st)
{
	long long now = (long long)time(NULL);
	for (int i = 0; i < 100; i++) {
		int n = i ? snprintf(st->moved_to, sizeof st->moved_to,
				     "%s.unclean-%lld-%d", st->path, now, i)
			  : snprintf(st->moved_to, sizeof st->moved_to,
				     "%s.unclean-%lld", st->path, now);
		if (n < 0 || (size_t)n >= sizeof st->moved_to)
			break;
		if (rename(st->path, st->moved_to) == 0)
			return 0;
		if (errno != EEXIST && errno != ENOTEMPTY)
			break;
	}
	int e = errno;
	st->moved_to[0] = '\0';
	return bg_state_fail(st, -e, "rename %s: %s", st->path, strerror(e));
}

static int configure(struct bg_state *st, const struct bg_state_opts *o,
		     size_t *map_size)
{
	st->ro = o->read_only;
	st->sync = o->sync;
	st->writemap = !o->read_only && !o->sync;
	*map_size = o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
	st->max_map_size = o->max_map_size ? o->max_map_size
					   : DEFAULT_MAX_MAP_SIZE;
	st->history_max = o->history_max ? o->history_max : DEFAULT_HISTORY_MAX;
	st->history_max_age_ms = o->history_max_age_ms ? o->history_max_age_ms
						       : DEFAULT_HISTORY_AGE_MS;
	if (*map_size > st->max_map_size)
		return bg_state_fail(st, -EINVAL,
				     "map_size %zu exceeds max_map_size %zu",
				     *map_size, st->max_map_size);
	if (o->dir == NULL || o->dir[0] == '\0')
		return bg_state_fail(st, -EINVAL, "no state directory");
	int n = snprintf(st->path, sizeof st->path, "%s/lmdb", o->dir);
	if (n < 0 || (size_t)n >= sizeof st->path - 32)
		return bg_state_fail(st, -ENAMETOOLONG, "%s: path too long",
				     o->dir);
	return 0;
}

static int start(struct bg_state *st, size_t map_size, bool *moved_aside)
{
	bool unclean;
	int rc = env_start(st, map_size, true, &unclean);
	if (rc || !unclean)
		return rc;
	env_stop(st);
	rc = move_aside(st);
	if (rc == 0)
		rc = env_start(st, map_size, false, &unclean);
	if (rc == 0 && moved_aside)
		*moved_aside = true;
	return rc;
}

int bg_state_open(const struct bg_state_opts *opts, struct bg_state **out,
		  bool *moved_aside)
{
	*out = NULL;
	if (moved_aside)
		*moved_aside = false;
	struct bg_state *st = calloc(1, sizeof *st);
	if (st == NULL) {
		snprintf(open_err, sizeof open_err, "out of memory");
		return -ENOMEM;
	}
	size_t map_size;
	int rc = configure(st, opts, &map_size);
	if (rc == 0)
		rc = start(st, map_size, moved_aside);
	if (rc) {
		snprintf(open_err, sizeof open_err, "%s", st->err);
		env_stop(st);
		free(st);
		return rc;
	}
	*out = st;
	return 0;
}

/* Everything is flushed before clean_close "1" is written (and flushed), so
 * a marker that reached the disk never vouches for pages that did not; only
 * a crash within the last commit's few microseconds escapes this. */
static void mark_clean(struct bg_state *st)
{
	if (bg_state_commit(st) || (!st->sync && mdb_env_sync(st->env, 1)))
		return;
	if (bg_state_meta_put(st, "clean_close", BG_STR_LIT("1")) == 0 &&
	    bg_state_commit(st) == 0 && !st->sync)
		mdb_env_sync(st->env, 1);
}

void bg_state_close(struct bg_state *st)
{
	if (st == NULL)
		return;
	if (st->env && !st->ro && st->walking == 0)
		mark_clean(st);
	env_stop(st);
	bg_state_ops_clear(st);
	free(st->ops);
	free(st);
}
