/* tests/unit/test_state.c - the LMDB journal and mirror (state/state.h) as
 * bygated and bygate-state use it, each test in its own directory; raw
 * LMDB writes stand in for corruption and for an unclean OS restart.
 * `test_state --make-fixture DIR [--corrupt]` writes the known state the
 * bygate-state integration test reads, and exits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "state/state.h"

static char tmpdir[PATH_MAX / 2];

#define S(x) bg_str_c(x)
#define STREAM "byai_gateway:ctrl:agent_type:echo"

static int make_dir(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/bygate-test-state-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct bg_state *open_with(struct bg_state_opts o, bool *moved)
{
	struct bg_state *st = NULL;
	o.dir = tmpdir;
	int rc = bg_state_open(&o, &st, moved);
	if (rc)
		fail_msg("bg_state_open: %d %s", rc, bg_state_errmsg(NULL));
	return st;
}

static struct bg_state *open_rw(void)
{
	return open_with((struct bg_state_opts){ 0 }, NULL);
}

static struct bg_state *open_ro(void)
{
	return open_with((struct bg_state_opts){ .read_only = true }, NULL);
}

static struct bg_state_exec sample_exec(const char *exec_id, int32_t slot)
{
	return (struct bg_state_exec){
		.execution_id = S(exec_id),
		.message_id = S("msg-1"),
		.session_id = S("sess-a"),
		.agent_type = S("echo"),
		.slot = slot,
		.pid = 4242,
		.attempt = 2,
		.interrupted = 1,
		.started_ms = 1700000000123,
		.first_seen_ms = 1700000000001,
	};
}

static struct bg_state_hist sample_hist(const char *entry, int64_t ms)
{
	return (struct bg_state_hist){
		.stream = S(STREAM),
		.entry_id = S(entry),
		.execution_id = S("exec-h"),
		.message_id = S("msg-h"),
		.session_id = S("sess-a"),
		.agent_type = S("echo"),
		.status = S("COMPLETED"),
		.finished_ms = ms,
		.duration_ms = 17,
		.attempt = 1,
	};
}

/* ---- raw LMDB, to write what the library never would ---- */

static void raw_put(const char *db, const void *k, size_t klen, const void *v,
		    size_t vlen)
{
	char path[PATH_MAX];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	snprintf(path, sizeof path, "%s/lmdb", tmpdir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	MDB_val mk = { klen, (void *)k }, mv = { vlen, (void *)v };
	assert_int_equal(mdb_put(txn, dbi, &mk, &mv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A meta value as stored: version byte 1, then the bytes. */
static void raw_meta(const char *key, const char *val)
{
	char rec[256];
	rec[0] = 1;
	size_t n = strlen(val);
	memcpy(rec + 1, val, n);
	raw_put("meta", key, strlen(key), rec, n + 1);
}

/* The documented key layout: u16 big-endian length + bytes each. */
static size_t entry_key(char *out, const char *stream, const char *id)
{
	size_t off = 0;
	for (const char *part = stream; part;
	     part = part == stream ? id : NULL) {
		size_t n = strlen(part);
		out[off++] = (char)(n >> 8);
		out[off++] = (char)n;
		memcpy(out + off, part, n);
		off += n;
	}
	return off;
}

static void raw_inflight(const char *id, const void *v, size_t vlen)
{
	char key[256];
	raw_put("inflight", key, entry_key(key, STREAM, id), v, vlen);
}

/* ---- counting walks ---- */

static int count_journal(void *arg, struct bg_str stream, struct bg_str id,
			 struct bg_str finish)
{
	++*(int *)arg;
	return 0;
}

static int count_exec(void *arg, struct bg_str stream, struct bg_str id,
		      const struct bg_state_exec *e)
{
	++*(int *)arg;
	return 0;
}

static int journal_count(struct bg_state *st)
{
	int n = 0;
	assert_int_equal(bg_state_journal_each(st, count_journal, &n), 0);
	return n;
}

struct hist_seen {
	int n;
	int64_t ms[16];
};

static int collect_hist(void *arg, const struct bg_state_hist *h)
{
	struct hist_seen *s = arg;
	if (s->n < 16)
		s->ms[s->n] = h->finished_ms;
	s->n++;
	return 0;
}

static void assert_str(struct bg_str s, const char *want)
{
	if (!bg_str_eq(s, want))
		fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.p, want);
}

/* ---- put / get / del / each for every database ---- */

static void test_meta_put_then_get_returns_value(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_buf out = { 0 };
	assert_int_equal(bg_state_meta_put(st, "lease_token", S("tok-1")), 0);
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_meta_get(st, "lease_token", &out), 0);
	assert_string_equal(out.p, "tok-1");
	assert_int_equal(bg_state_meta_get(st, "worker_id", &out), -ENOENT);
	bg_buf_free(&out);
	bg_state_close(st);
}

static void test_journal_put_get_del_round_trip(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_buf out = { 0 };
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("finish-bytes"));
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("1-1"), &out),
			 0);
	assert_string_equal(out.p, "finish-bytes");
	bg_state_journal_del(st, S(STREAM), S("1-1"));
	assert_int_equal(bg_state_commit(st), 0);
	bg_buf_reset(&out);
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("1-1"), &out),
			 -ENOENT);
	bg_buf_free(&out);
	bg_state_close(st);
}

struct journal_seen {
	int n;
	char ids[4][16];
};

static int collect_journal(void *arg, struct bg_str stream, struct bg_str id,
			   struct bg_str finish)
{
	struct journal_seen *s = arg;
	assert_str(stream, STREAM);
	snprintf(s->ids[s->n++ & 3], 16, "%.*s", (int)id.len, id.p);
	return 0;
}

static void test_journal_each_visits_every_entry_in_key_order(void **state)
{
	struct bg_state *st = open_rw();
	bg_state_journal_put(st, S(STREAM), S("2-0"), S("b"));
	bg_state_journal_put(st, S(STREAM), S("1-0"), S("a"));
	bg_state_journal_put(st, S(STREAM), S("3-0"), S("c"));
	assert_int_equal(bg_state_commit(st), 0);
	struct journal_seen seen = { 0 };
	assert_int_equal(bg_state_journal_each(st, collect_journal, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.ids[0], "1-0");
	assert_string_equal(seen.ids[2], "3-0");
	bg_state_close(st);
}

static int stop_walk(void *arg, struct bg_str stream, struct bg_str id,
		     struct bg_str finish)
{
	++*(int *)arg;
	return 7;
}

static void test_each_stops_at_callback_result(void **state)
{
	struct bg_state *st = open_rw();
	bg_state_journal_put(st, S(STREAM), S("1-0"), S("a"));
	bg_state_journal_put(st, S(STREAM), S("2-0"), S("b"));
	assert_int_equal(bg_state_commit(st), 0);
	int n = 0;
	assert_int_equal(bg_state_journal_each(st, stop_walk, &n), 7);
	assert_int_equal(n, 1);
	bg_state_close(st);
}

static void test_exec_put_get_returns_every_field(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_exec in = sample_exec("exec-1", 3), out;
	struct bg_buf store = { 0 };
	bg_state_exec_put(st, S(STREAM), S("1-1"), &in);
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(
		bg_state_exec_get(st, S(STREAM), S("1-1"), &out, &store), 0);
	assert_str(out.execution_id, "exec-1");
	assert_str(out.message_id, "msg-1");
	assert_str(out.session_id, "sess-a");
	assert_str(out.agent_type, "echo");
	assert_int_equal(out.slot, 3);
	assert_int_equal(out.pid, 4242);
	assert_int_equal(out.attempt, 2);
	assert_int_equal(out.interrupted, 1);
	assert_int_equal(out.started_ms, 1700000000123);
	assert_int_equal(out.first_seen_ms, 1700000000001);
	bg_buf_free(&store);
	bg_state_close(st);
}

static void test_exec_del_and_each(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_exec e = sample_exec("exec-1", 0);
	bg_state_exec_put(st, S(STREAM), S("1-1"), &e);
	bg_state_exec_put(st, S(STREAM), S("1-2"), &e);
	assert_int_equal(bg_state_commit(st), 0);
	int n = 0;
	assert_int_equal(bg_state_exec_each(st, count_exec, &n), 0);
	assert_int_equal(n, 2);
	bg_state_exec_del(st, S(STREAM), S("1-1"));
	assert_int_equal(bg_state_commit(st), 0);
	n = 0;
	assert_int_equal(bg_state_exec_each(st, count_exec, &n), 0);
	assert_int_equal(n, 1);
	bg_state_close(st);
}

static int check_hist(void *arg, const struct bg_state_hist *h)
{
	assert_str(h->stream, STREAM);
	assert_str(h->entry_id, "1-5");
	assert_str(h->execution_id, "exec-h");
	assert_str(h->message_id, "msg-h");
	assert_str(h->session_id, "sess-a");
	assert_str(h->agent_type, "echo");
	assert_str(h->status, "COMPLETED");
	assert_int_equal(h->duration_ms, 17);
	assert_int_equal(h->attempt, 1);
	++*(int *)arg;
	return 0;
}

static void test_hist_add_then_each_returns_every_field(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_hist h = sample_hist("1-5", now_ms());
	bg_state_hist_add(st, &h);
	assert_int_equal(bg_state_commit(st), 0);
	int n = 0;
	assert_int_equal(bg_state_hist_each(st, check_hist, &n), 0);
	assert_int_equal(n, 1);
	bg_state_close(st);
}

static void
test_hist_entries_of_the_same_ms_across_restarts_are_kept(void **state)
{
	int64_t ms = now_ms();
	for (int round = 0; round < 2; round++) {
		struct bg_state *st = open_rw();
		struct bg_state_hist h = sample_hist("1-5", ms);
		bg_state_hist_add(st, &h);
		bg_state_hist_add(st, &h);
		assert_int_equal(bg_state_commit(st), 0);
		bg_state_close(st);
	}
	struct bg_state *st = open_ro();
	struct hist_seen seen = { 0 };
	assert_int_equal(bg_state_hist_each(st, collect_hist, &seen), 0);
	assert_int_equal(seen.n, 4);
	bg_state_close(st);
}

static int check_session(void *arg, const struct bg_state_session *s)
{
	assert_str(s->agent_type, "echo");
	assert_str(s->user_code, "u1");
	assert_str(s->session_id, "sess-a");
	assert_str(s->path, "/ws/echo/u1/sessions/sess-a");
	assert_int_equal(s->created_ms, 1);
	assert_int_equal(s->last_used_ms, 2);
	assert_int_equal(s->bytes, -1);
	++*(int *)arg;
	return 0;
}

static void test_session_put_each_del(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_session s = {
		.agent_type = S("echo"),
		.user_code = S("u1"),
		.session_id = S("sess-a"),
		.path = S("/ws/echo/u1/sessions/sess-a"),
		.created_ms = 1,
		.last_used_ms = 2,
		.bytes = -1,
	};
	bg_state_session_put(st, &s);
	assert_int_equal(bg_state_commit(st), 0);
	int n = 0;
	assert_int_equal(bg_state_session_each(st, check_session, &n), 0);
	assert_int_equal(n, 1);
	bg_state_session_del(st, S("echo"), S("u1"), S("sess-a"));
	assert_int_equal(bg_state_commit(st), 0);
	n = 0;
	assert_int_equal(bg_state_session_each(st, check_session, &n), 0);
	assert_int_equal(n, 0);
	bg_state_close(st);
}

/* ---- the write buffer ---- */

static void test_buffered_writes_are_invisible_until_commit(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_buf out = { 0 };
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
	bg_state_meta_put(st, "worker_id", S("w1"));
	assert_int_equal(bg_state_buffered(st), 2);
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("1-1"), &out),
			 -ENOENT);
	assert_int_equal(bg_state_meta_get(st, "worker_id", &out), -ENOENT);
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_buffered(st), 0);
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("1-1"), &out),
			 0);
	bg_buf_free(&out);
	bg_state_close(st);
}

static void test_commit_with_nothing_buffered_is_a_no_op(void **state)
{
	struct bg_state *st = open_rw();
	assert_int_equal(bg_state_commit(st), 0);
	bg_state_close(st);
}

static void fill(char *p, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + (size_t)seed) % 26);
}

static void test_commit_grows_a_tiny_map_and_loses_nothing(void **state)
{
	struct bg_state *st =
		open_with((struct bg_state_opts){ .map_size = 64 << 10 }, NULL);
	static char big[4096];
	char id[32];
	for (int i = 0; i < 300; i++) {
		fill(big, sizeof big, i);
		snprintf(id, sizeof id, "1-%d", i);
		assert_int_equal(bg_state_journal_put(
					 st, S(STREAM), S(id),
					 (struct bg_str){ big, sizeof big }),
				 0);
	}
	assert_int_equal(bg_state_commit(st), 0);
	struct bg_state_stats stats;
	assert_int_equal(bg_state_get_stats(st, &stats), 0);
	assert_true(stats.map_size > (64 << 10));
	assert_int_equal(stats.entries[BG_DB_JOURNAL], 300);
	struct bg_buf out = { 0 };
	for (int i = 0; i < 300; i++) {
		fill(big, sizeof big, i);
		snprintf(id, sizeof id, "1-%d", i);
		bg_buf_reset(&out);
		assert_int_equal(
			bg_state_journal_get(st, S(STREAM), S(id), &out), 0);
		assert_int_equal(out.len, sizeof big);
		assert_memory_equal(out.p, big, sizeof big);
	}
	bg_buf_free(&out);
	bg_state_close(st);
}

static void test_full_map_at_ceiling_is_emapfull_and_keeps_buffer(void **state)
{
	struct bg_state *st =
		open_with((struct bg_state_opts){ .map_size = 64 << 10,
						  .max_map_size = 128 << 10 },
			  NULL);
	static char big[4096];
	char id[32];
	for (int i = 0; i < 64; i++) {
		snprintf(id, sizeof id, "1-%d", i);
		bg_state_journal_put(st, S(STREAM), S(id),
				     (struct bg_str){ big, sizeof big });
	}
	assert_int_equal(bg_state_commit(st), BG_STATE_EMAPFULL);
	assert_non_null(strstr(bg_state_errmsg(st), "MDB_MAP_FULL"));
	assert_int_equal(bg_state_buffered(st), 64);
	assert_int_equal(journal_count(st), 0);
	assert_int_equal(bg_state_commit(st), BG_STATE_EMAPFULL);
	assert_int_equal(bg_state_buffered(st), 64);
	bg_state_close(st);
}

/* ---- the writable map of "process" durability ---- */

static void data_file_stat(struct stat *sb)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/lmdb/data.mdb", tmpdir);
	assert_int_equal(stat(path, sb), 0);
}

static size_t map_size_of(struct bg_state *st)
{
	struct bg_state_stats stats;
	assert_int_equal(bg_state_get_stats(st, &stats), 0);
	return stats.map_size;
}

static void
test_process_durability_writes_in_place_over_reserved_blocks(void **state)
{
	struct bg_state *st = open_rw();
	assert_true(bg_state_writes_in_place(st));
	assert_null(bg_state_no_writemap_reason(st));
	struct stat sb;
	data_file_stat(&sb);
	assert_true((size_t)sb.st_size >= map_size_of(st));
	assert_true((size_t)sb.st_blocks * 512 >= map_size_of(st));
	bg_state_close(st);
}

static void test_sync_durability_writes_through_the_file(void **state)
{
	struct bg_state *st =
		open_with((struct bg_state_opts){ .sync = true }, NULL);
	assert_false(bg_state_writes_in_place(st));
	assert_null(bg_state_no_writemap_reason(st));
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
	assert_int_equal(bg_state_commit(st), 0);
	struct stat sb;
	data_file_stat(&sb);
	assert_true((size_t)sb.st_size < map_size_of(st));
	bg_state_close(st);
}

static void test_a_grown_writable_map_has_its_blocks_reserved(void **state)
{
	struct bg_state *st =
		open_with((struct bg_state_opts){ .map_size = 64 << 10 }, NULL);
	static char big[4096];
	char id[32];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "1-%d", i);
		bg_state_journal_put(st, S(STREAM), S(id),
				     (struct bg_str){ big, sizeof big });
	}
	assert_int_equal(bg_state_commit(st), 0);
	assert_true(map_size_of(st) > (64 << 10));
	struct stat sb;
	data_file_stat(&sb);
	assert_true((size_t)sb.st_blocks * 512 >= map_size_of(st));
	bg_state_close(st);
}

/* Waits for the forked check `pid`, which must exit with status 0 (its
 * other statuses say which step failed). */
static void expect_exit_0(pid_t pid)
{
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A file size limit stands in for a full disk: the grow's reservation is
 * refused, so the commit fails with the buffer kept (no SIGBUS on a store
 * into a hole), and succeeds once the limit is lifted. */
static void
test_a_grow_whose_blocks_are_refused_fails_the_commit_and_keeps_the_buffer(
	void **state)
{
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct bg_state *st = NULL;
		struct bg_state_opts o = { .dir = tmpdir,
					   .map_size = 64 << 10 };
		if (bg_state_open(&o, &st, NULL) ||
		    !bg_state_writes_in_place(st))
			_exit(10);
		struct rlimit rl;
		getrlimit(RLIMIT_FSIZE, &rl);
		struct rlimit low = { 96 << 10, rl.rlim_max };
		setrlimit(RLIMIT_FSIZE, &low);
		static char big[4096];
		char id[32];
		for (int i = 0; i < 64; i++) {
			snprintf(id, sizeof id, "1-%d", i);
			bg_state_journal_put(st, S(STREAM), S(id),
					     (struct bg_str){ big,
							      sizeof big });
		}
		if (bg_state_commit(st) != -EFBIG ||
		    bg_state_buffered(st) != 64)
			_exit(11);
		if (strstr(bg_state_errmsg(st), "posix_fallocate") == NULL)
			_exit(12);
		setrlimit(RLIMIT_FSIZE, &rl);
		if (bg_state_commit(st) != 0 || journal_count(st) != 64)
			_exit(13);
		bg_state_close(st);
		_exit(0);
	}
	expect_exit_0(pid);
}

static void test_a_map_whose_blocks_are_refused_at_open_writes_through_the_file(
	void **state)
{
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl;
		getrlimit(RLIMIT_FSIZE, &rl);
		struct rlimit low = { 1 << 20, rl.rlim_max };
		setrlimit(RLIMIT_FSIZE, &low);
		struct bg_state *st = NULL;
		struct bg_state_opts o = { .dir = tmpdir };
		if (bg_state_open(&o, &st, NULL))
			_exit(10);
		if (bg_state_writes_in_place(st) ||
		    bg_state_no_writemap_reason(st) == NULL)
			_exit(11);
		bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
		if (bg_state_commit(st))
			_exit(12);
		bg_state_close(st);
		_exit(0);
	}
	expect_exit_0(pid);
	struct bg_state *st = open_rw(); /* no limit: in place again */
	assert_true(bg_state_writes_in_place(st));
	assert_int_equal(journal_count(st), 1);
	bg_state_close(st);
}

/* What a kill -9 of bygated leaves: every commit, nothing buffered. */
static void test_commits_survive_their_writer_killed_before_close(void **state)
{
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct bg_state *st = NULL;
		struct bg_state_opts o = { .dir = tmpdir };
		if (bg_state_open(&o, &st, NULL))
			_exit(10);
		char id[32];
		for (int i = 0; i < 50; i++) {
			snprintf(id, sizeof id, "1-%d", i);
			bg_state_journal_put(st, S(STREAM), S(id), S("f"));
			if (bg_state_commit(st))
				_exit(11);
		}
		bg_state_journal_put(st, S(STREAM), S("2-0"), S("g"));
		raise(SIGKILL);
		_exit(12);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	struct bg_state *st = open_rw();
	assert_false(bg_state_was_closed_cleanly(st));
	assert_int_equal(journal_count(st), 50);
	struct bg_buf out = { 0 };
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("1-49"), &out),
			 0);
	assert_int_equal(bg_state_journal_get(st, S(STREAM), S("2-0"), &out),
			 -ENOENT);
	bg_buf_free(&out);
	bg_state_close(st);
}

static void test_key_too_long_is_refused_when_buffered(void **state)
{
	struct bg_state *st = open_rw();
	static char huge[1024];
	memset(huge, 'x', sizeof huge);
	assert_int_equal(
		bg_state_journal_put(st, (struct bg_str){ huge, sizeof huge },
				     S("1-1"), S("f")),
		-EINVAL);
	assert_int_equal(bg_state_buffered(st), 0);
	bg_state_close(st);
}

static int commit_inside(void *arg, struct bg_str stream, struct bg_str id,
			 struct bg_str finish)
{
	struct bg_state *st = arg;
	bg_state_meta_put(st, "x", S("y"));
	assert_int_equal(bg_state_commit(st), -EBUSY);
	return 0;
}

static void test_commit_inside_a_walk_is_ebusy(void **state)
{
	struct bg_state *st = open_rw();
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_journal_each(st, commit_inside, st), 0);
	assert_int_equal(bg_state_commit(st), 0);
	bg_state_close(st);
}

/* ---- history bounds ---- */

static void test_history_is_bounded_by_count_oldest_dropped(void **state)
{
	struct bg_state *st =
		open_with((struct bg_state_opts){ .history_max = 5 }, NULL);
	int64_t base = now_ms() - 1000;
	for (int i = 0; i < 8; i++) {
		struct bg_state_hist h = sample_hist("1-1", base + i);
		bg_state_hist_add(st, &h);
	}
	assert_int_equal(bg_state_commit(st), 0);
	struct hist_seen seen = { 0 };
	assert_int_equal(bg_state_hist_each(st, collect_hist, &seen), 0);
	assert_int_equal(seen.n, 5);
	assert_int_equal(seen.ms[0], base + 3);
	assert_int_equal(seen.ms[4], base + 7);
	bg_state_close(st);
}

static void test_history_is_bounded_by_age(void **state)
{
	struct bg_state *st = open_with(
		(struct bg_state_opts){ .history_max_age_ms = 60000 }, NULL);
	int64_t now = now_ms();
	struct bg_state_hist old = sample_hist("1-1", now - 120000);
	struct bg_state_hist recent = sample_hist("1-2", now);
	bg_state_hist_add(st, &old);
	bg_state_hist_add(st, &recent);
	assert_int_equal(bg_state_commit(st), 0);
	struct hist_seen seen = { 0 };
	assert_int_equal(bg_state_hist_each(st, collect_hist, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.ms[0], now);
	bg_state_close(st);
}

/* ---- corruption ---- */

static void test_garbage_record_is_ecorrupt_on_get(void **state)
{
	bg_state_close(open_rw());
	raw_inflight("1-1", "\x09garbage", 8);
	raw_inflight("1-2", "\x01\x00\x00", 3);
	struct bg_state *st = open_rw();
	struct bg_state_exec e;
	struct bg_buf store = { 0 };
	assert_int_equal(bg_state_exec_get(st, S(STREAM), S("1-1"), &e, &store),
			 BG_STATE_ECORRUPT);
	assert_int_equal(bg_state_exec_get(st, S(STREAM), S("1-2"), &e, &store),
			 BG_STATE_ECORRUPT);
	assert_non_null(strstr(bg_state_errmsg(st), "inflight"));
	bg_buf_free(&store);
	bg_state_close(st);
}

static void test_each_skips_corrupt_records_then_reports_ecorrupt(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_exec e = sample_exec("exec-ok", 0);
	bg_state_exec_put(st, S(STREAM), S("1-1"), &e);
	assert_int_equal(bg_state_commit(st), 0);
	bg_state_close(st);
	raw_inflight("1-2", "\x01", 1);
	raw_put("inflight", "\x00\xff", 2, "\x01", 1); /* key overruns */
	st = open_rw();
	int n = 0;
	assert_int_equal(bg_state_exec_each(st, count_exec, &n),
			 BG_STATE_ECORRUPT);
	assert_int_equal(n, 1);
	bg_state_close(st);
}

/* Every truncation of a valid record, and every single-byte extension,
 * decodes as corrupt without reading past the bytes (ASan). */
static void test_every_truncated_exec_record_is_ecorrupt(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_exec e = sample_exec("exec-1", 1);
	bg_state_exec_put(st, S(STREAM), S("1-1"), &e);
	assert_int_equal(bg_state_commit(st), 0);
	bg_state_close(st);

	char path[PATH_MAX], key[256];
	size_t klen = entry_key(key, STREAM, "1-1");
	snprintf(path, sizeof path, "%s/lmdb", tmpdir);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, key }, v;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	assert_int_equal(mdb_env_open(env, path, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "inflight", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	size_t len = v.mv_size;
	char *rec = malloc(len + 1);
	memcpy(rec, v.mv_data, len);
	rec[len] = 0;
	mdb_txn_abort(txn);
	mdb_env_close(env);

	struct bg_buf store = { 0 };
	struct bg_state_exec out;
	for (size_t cut = 0; cut <= len + 1; cut++) {
		if (cut == len)
			continue;
		raw_inflight("1-1", rec, cut);
		st = open_ro();
		assert_int_equal(bg_state_exec_get(st, S(STREAM), S("1-1"),
						   &out, &store),
				 BG_STATE_ECORRUPT);
		bg_state_close(st);
	}
	free(rec);
	bg_buf_free(&store);
}

static void test_undecodable_meta_record_is_ecorrupt(void **state)
{
	bg_state_close(open_rw());
	raw_put("meta", "lease_token", 11, "\x07tok", 4);
	struct bg_state *st = open_rw();
	struct bg_buf out = { 0 };
	assert_int_equal(bg_state_meta_get(st, "lease_token", &out),
			 BG_STATE_ECORRUPT);
	bg_buf_free(&out);
	bg_state_close(st);
}

/* ---- schema ---- */

static void test_newer_schema_is_eschema(void **state)
{
	bg_state_close(open_rw());
	raw_put("meta", "schema", 6, "\x01\x00\x00\x00\x02", 5);
	struct bg_state *st = NULL;
	struct bg_state_opts o = { .dir = tmpdir };
	assert_int_equal(bg_state_open(&o, &st, NULL), BG_STATE_ESCHEMA);
	assert_null(st);
	assert_non_null(strstr(bg_state_errmsg(NULL), "schema"));
	o.read_only = true;
	assert_int_equal(bg_state_open(&o, &st, NULL), BG_STATE_ESCHEMA);
}

static void test_fresh_environment_records_schema(void **state)
{
	bg_state_close(open_rw());
	struct bg_state *st = open_ro();
	struct bg_buf out = { 0 };
	assert_int_equal(bg_state_meta_get(st, "schema", &out), 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.p, "\x00\x00\x00\x01", 4);
	bg_buf_free(&out);
	bg_state_close(st);
}

/* ---- unclean restart ---- */

static void put_one_journal_entry(struct bg_state_opts o)
{
	struct bg_state *st = open_with(o, NULL);
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
	assert_int_equal(bg_state_commit(st), 0);
	bg_state_close(st);
}

static int count_unclean_dirs(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, "lmdb.unclean-", 13) == 0;
	closedir(d);
	return n;
}

static void
test_other_boot_without_clean_close_moves_environment_aside(void **state)
{
	put_one_journal_entry((struct bg_state_opts){ 0 });
	raw_meta("boot_id", "another-boot");
	raw_meta("clean_close", "0");
	bool moved = false;
	struct bg_state *st = open_with((struct bg_state_opts){ 0 }, &moved);
	assert_true(moved);
	assert_int_equal(count_unclean_dirs(), 1);
	assert_non_null(
		strstr(bg_state_moved_aside_path(st), "/lmdb.unclean-"));
	assert_int_equal(journal_count(st), 0);
	bg_state_close(st);
}

static void test_other_boot_after_clean_close_is_kept(void **state)
{
	put_one_journal_entry((struct bg_state_opts){ 0 });
	raw_meta("boot_id", "another-boot");
	bool moved = true;
	struct bg_state *st = open_with((struct bg_state_opts){ 0 }, &moved);
	assert_false(moved);
	assert_null(bg_state_moved_aside_path(st));
	assert_int_equal(journal_count(st), 1);
	bg_state_close(st);
}

static void test_sync_durability_never_moves_aside(void **state)
{
	put_one_journal_entry((struct bg_state_opts){ .sync = true });
	raw_meta("boot_id", "another-boot");
	raw_meta("clean_close", "0");
	bool moved = true;
	struct bg_state *st =
		open_with((struct bg_state_opts){ .sync = true }, &moved);
	assert_false(moved);
	assert_int_equal(count_unclean_dirs(), 0);
	assert_int_equal(journal_count(st), 1);
	bg_state_close(st);
}

static void test_open_marks_unclean_and_close_marks_clean(void **state)
{
	struct bg_buf out = { 0 };
	struct bg_state *st = open_rw();
	bg_state_close(st);
	st = open_ro();
	assert_int_equal(bg_state_meta_get(st, "clean_close", &out), 0);
	assert_string_equal(out.p, "1");
	bg_buf_reset(&out);
	assert_int_equal(bg_state_meta_get(st, "boot_id", &out), 0);
	assert_true(out.len > 0);
	bg_state_close(st);
	bg_buf_free(&out);
}

static void test_was_closed_cleanly_only_after_a_clean_close(void **state)
{
	struct bg_state *st = open_rw();
	assert_false(bg_state_was_closed_cleanly(st)); /* new environment */
	bg_state_close(st);
	st = open_rw();
	assert_true(bg_state_was_closed_cleanly(st));
	bg_state_close(st);
	pid_t pid = fork(); /* a writer that dies without closing */
	assert_true(pid != -1);
	if (pid == 0) {
		struct bg_state *w = NULL;
		struct bg_state_opts o = { .dir = tmpdir };
		_exit(bg_state_open(&o, &w, NULL) != 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st = open_rw();
	assert_false(bg_state_was_closed_cleanly(st));
	bg_state_close(st);
}

/* ---- suspects ---- */

struct seen_suspects {
	int n;
	char text[256];
};

static int collect_suspect(void *arg, const struct bg_state_suspect *s)
{
	struct seen_suspects *v = arg;
	size_t len = strlen(v->text);
	snprintf(v->text + len, sizeof(v->text) - len, "%.*s/%.*s:%u:%d;",
		 (int)s->stream.len, s->stream.p, (int)s->entry_id.len,
		 s->entry_id.p, s->alone_crashes, s->running);
	v->n++;
	return 0;
}

static void test_suspects_round_trip_in_order_and_are_removed(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_suspect in[2] = {
		{ .stream = S(STREAM),
		  .entry_id = S("9-0"),
		  .alone_crashes = 0 },
		{ .stream = S("other"),
		  .entry_id = S("1-0"),
		  .alone_crashes = 2,
		  .running = true },
	};
	struct seen_suspects v = { 0 };
	assert_int_equal(bg_state_suspects_each(st, collect_suspect, &v), 0);
	assert_int_equal(v.n, 0); /* none yet */
	assert_int_equal(bg_state_suspects_put(st, in, 2), 0);
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_suspects_each(st, collect_suspect, &v), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(v.text, STREAM "/9-0:0:0;other/1-0:2:1;");
	assert_int_equal(bg_state_suspects_put(st, NULL, 0), 0);
	assert_int_equal(bg_state_commit(st), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(bg_state_suspects_each(st, collect_suspect, &v), 0);
	assert_int_equal(v.n, 0);
	bg_state_close(st);
}

static void test_a_truncated_suspect_list_is_ecorrupt_and_unread(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_suspect in = { .stream = S(STREAM),
				       .entry_id = S("9-0") };
	struct bg_buf full = { 0 };
	assert_int_equal(bg_state_suspects_put(st, &in, 1), 0);
	assert_int_equal(bg_state_commit(st), 0);
	assert_int_equal(bg_state_meta_get(st, "suspects", &full), 0);
	for (size_t cut = 0; cut < full.len; cut++) {
		assert_int_equal(
			bg_state_meta_put(st, "suspects",
					  (struct bg_str){ full.p, cut }),
			0);
		assert_int_equal(bg_state_commit(st), 0);
		struct seen_suspects v = { 0 };
		assert_int_equal(bg_state_suspects_each(st, collect_suspect,
							&v),
				 BG_STATE_ECORRUPT);
		assert_int_equal(v.n, 0);
	}
	bg_buf_free(&full);
	bg_state_close(st);
}

/* ---- read-only ---- */

static void
test_read_only_open_sees_committed_data_and_refuses_writes(void **state)
{
	struct bg_state *w = open_rw();
	bg_state_journal_put(w, S(STREAM), S("1-1"), S("f"));
	assert_int_equal(bg_state_commit(w), 0);
	bg_state_journal_put(w, S(STREAM), S("1-2"), S("g")); /* uncommitted */
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) { /* a second process, as bygate-state is */
		struct bg_state *r = NULL;
		struct bg_state_opts o = { .dir = tmpdir, .read_only = true };
		struct bg_buf out = { 0 };
		int bad = bg_state_open(&o, &r, NULL) != 0;
		bad |= bg_state_journal_get(r, S(STREAM), S("1-1"), &out) != 0;
		bad |= bg_state_journal_get(r, S(STREAM), S("1-2"), &out) !=
		       -ENOENT;
		bad |= bg_state_journal_put(r, S(STREAM), S("1-3"), S("h")) !=
		       -EROFS;
		bad |= bg_state_meta_put(r, "x", S("y")) != -EROFS;
		bg_state_close(r);
		bg_buf_free(&out);
		_exit(bad);
	}
	expect_exit_0(pid);
	assert_int_equal(bg_state_commit(w), 0);
	assert_int_equal(journal_count(w), 2);
	bg_state_close(w);
}

static void test_read_only_open_of_missing_environment_is_enoent(void **state)
{
	struct bg_state *st = NULL;
	struct bg_state_opts o = { .dir = tmpdir, .read_only = true };
	assert_int_equal(bg_state_open(&o, &st, NULL), -ENOENT);
	assert_null(st);
	assert_non_null(strstr(bg_state_errmsg(NULL), "mdb_env_open"));
}

static void test_read_only_open_writes_nothing(void **state)
{
	bg_state_close(open_rw());
	raw_meta("clean_close", "0");
	bg_state_close(open_ro());
	struct bg_state *r = open_ro();
	struct bg_buf out = { 0 };
	assert_int_equal(bg_state_meta_get(r, "clean_close", &out), 0);
	assert_string_equal(out.p, "0");
	bg_buf_free(&out);
	bg_state_close(r);
}

/* ---- descriptors and readers ---- */

static void test_lmdb_descriptors_are_close_on_exec(void **state)
{
	struct bg_state *st = open_rw();
	char real[PATH_MAX], link[PATH_MAX], want_data[PATH_MAX + 16],
		want_lock[PATH_MAX + 16];
	assert_non_null(realpath(tmpdir, real));
	snprintf(want_data, sizeof want_data, "%s/lmdb/data.mdb", real);
	snprintf(want_lock, sizeof want_lock, "%s/lmdb/lock.mdb", real);
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int data = 0, lock = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		ssize_t n =
			readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		bool is_data = strcmp(link, want_data) == 0;
		bool is_lock = strcmp(link, want_lock) == 0;
		if (!is_data && !is_lock)
			continue;
		int flags = fcntl(atoi(de->d_name), F_GETFD);
		assert_true(flags != -1 && (flags & FD_CLOEXEC));
		data += is_data;
		lock += is_lock;
	}
	closedir(d);
	assert_true(data >= 1);
	assert_int_equal(lock, 1);
	bg_state_close(st);
}

/* A process that dies inside a read transaction leaves a stale reader. */
static void leave_stale_reader(void)
{
	pid_t pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		char path[PATH_MAX];
		MDB_env *env;
		MDB_txn *txn;
		snprintf(path, sizeof path, "%s/lmdb", tmpdir);
		if (mdb_env_create(&env) ||
		    mdb_env_open(env, path, MDB_RDONLY, 0600) ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
			_exit(1);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_reader_check_clears_a_dead_process_reader(void **state)
{
	struct bg_state *st = open_rw();
	leave_stale_reader();
	struct bg_state_stats s;
	assert_int_equal(bg_state_get_stats(st, &s), 0);
	assert_int_equal(s.stale_readers, 1);
	int dead = -1;
	assert_int_equal(bg_state_reader_check(st, &dead), 0);
	assert_int_equal(dead, 1);
	assert_int_equal(bg_state_get_stats(st, &s), 0);
	assert_int_equal(s.stale_readers, 0);
	bg_state_close(st);
}

static void test_stats_count_entries_per_database(void **state)
{
	struct bg_state *st = open_rw();
	struct bg_state_exec e = sample_exec("exec-1", 0);
	struct bg_state_hist h = sample_hist("1-0", now_ms());
	struct bg_state_session s = { .agent_type = S("echo"),
				      .user_code = S(""),
				      .session_id = S("s1"),
				      .path = S("/p") };
	bg_state_journal_put(st, S(STREAM), S("1-1"), S("f"));
	bg_state_journal_put(st, S(STREAM), S("1-2"), S("f"));
	bg_state_exec_put(st, S(STREAM), S("1-3"), &e);
	bg_state_hist_add(st, &h);
	bg_state_session_put(st, &s);
	assert_int_equal(bg_state_commit(st), 0);
	struct bg_state_stats stats;
	assert_int_equal(bg_state_get_stats(st, &stats), 0);
	assert_int_equal(stats.entries[BG_DB_JOURNAL], 2);
	assert_int_equal(stats.entries[BG_DB_INFLIGHT], 1);
	assert_int_equal(stats.entries[BG_DB_HISTORY], 1);
	assert_int_equal(stats.entries[BG_DB_SESSIONS], 1);
	assert_true(stats.entries[BG_DB_META] >= 3);
	assert_true(stats.map_used > 0 && stats.map_used <= stats.map_size);
	assert_true(stats.readers_max > 0);
	assert_int_equal(stats.stale_readers, 0);
	assert_string_equal(bg_state_db_name(BG_DB_SESSIONS), "sessions");
	bg_state_close(st);
}

/* ---- the finish format ---- */

struct cmds {
	int n;
	char text[8][64];
};

static int collect_cmd(void *arg, int argc, const struct bg_str *argv)
{
	struct cmds *c = arg;
	char *t = c->text[c->n++ & 7];
	t[0] = 0;
	for (int i = 0; i < argc; i++)
		snprintf(t + strlen(t), 64 - strlen(t), "%s%.*s", i ? " " : "",
			 (int)argv[i].len, argv[i].p);
	return 0;
}

static void make_finish(struct bg_buf *f)
{
	const struct bg_str multi[] = { S("MULTI") };
	const struct bg_str hset[] = { S("HSET"), S("k"), S("f"), S("v") };
	const struct bg_str exec[] = { S("EXEC") };
	assert_int_equal(bg_state_finish_add(f, 1, multi), 0);
	assert_int_equal(bg_state_finish_add(f, 4, hset), 0);
	assert_int_equal(bg_state_finish_add(f, 1, exec), 0);
}

static void test_finish_round_trips_commands_in_order(void **state)
{
	struct bg_buf f = { 0 };
	make_finish(&f);
	assert_memory_equal(f.p, "\x03\x00\x00\x00\x01\x00\x00\x00\x05", 9);
	struct cmds c = { 0 };
	assert_int_equal(bg_state_finish_each((struct bg_str){ f.p, f.len },
					      collect_cmd, &c),
			 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.text[0], "MULTI");
	assert_string_equal(c.text[1], "HSET k f v");
	assert_string_equal(c.text[2], "EXEC");
	bg_buf_free(&f);
}

static void test_every_truncated_finish_is_ecorrupt(void **state)
{
	struct bg_buf f = { 0 };
	make_finish(&f);
	for (size_t cut = 0; cut < f.len; cut++) {
		char *copy = malloc(cut + 1); /* exact size for ASan */
		memcpy(copy, f.p, cut);
		struct cmds c = { 0 };
		assert_int_equal(
			bg_state_finish_each((struct bg_str){ copy, cut },
					     collect_cmd, &c),
			BG_STATE_ECORRUPT);
		assert_int_equal(c.n, 0);
		free(copy);
	}
	bg_buf_free(&f);
}

/* ---- the fixture of tests/integration/test_bygate_state.py ----
 * Worker fixture-w, lease token tok-fixture-1; on STREAM:
 *   1700000000000-1  journal (MULTI, HSET with a 300-byte value, XACK,
 *                    EXEC) and inflight exec-1 (sess-a)
 *   1700000000000-2  journal only (MULTI, SET k with bytes 01 ff and a
 *                    backslash, XACK, EXEC)
 *   1700000000000-3  inflight exec-3 (sess-b)
 *   1700000000000-4  inflight exec-4 (sess-a)
 *   1700000000000-0  history exec-h (sess-a), COMPLETED
 * and session (echo, u1, sess-a). --corrupt adds an undecodable inflight
 * record for 1700000000000-9. */

static int make_fixture(const char *dir, bool corrupt)
{
	struct bg_state *st;
	struct bg_state_opts o = { .dir = dir };
	if (bg_state_open(&o, &st, NULL)) {
		fprintf(stderr, "%s\n", bg_state_errmsg(NULL));
		return 1;
	}
	static char big[300];
	memset(big, 'x', sizeof big);
	struct bg_buf f1 = { 0 }, f2 = { 0 };
	const struct bg_str multi[] = { S("MULTI") }, exec[] = { S("EXEC") };
	const struct bg_str hset[] = { S("HSET"),
				       S("byai_gateway:session:sess-a:registry"),
				       S("exec-1"),
				       { big, sizeof big } };
	const struct bg_str ack1[] = { S("XACK"), S(STREAM), S("agent_engines"),
				       S("1700000000000-1") };
	const struct bg_str ack2[] = { S("XACK"), S(STREAM), S("agent_engines"),
				       S("1700000000000-2") };
	bg_state_finish_add(&f1, 1, multi);
	bg_state_finish_add(&f1, 4, hset);
	bg_state_finish_add(&f1, 4, ack1);
	bg_state_finish_add(&f1, 1, exec);
	const struct bg_str odd[] = { S("SET"), S("k"),
				      S("a\x01\xff"
					"b\\") };
	bg_state_finish_add(&f2, 1, multi);
	bg_state_finish_add(&f2, 3, odd);
	bg_state_finish_add(&f2, 4, ack2);
	bg_state_finish_add(&f2, 1, exec);
	bg_state_meta_put(st, "worker_id", S("fixture-w"));
	bg_state_meta_put(st, "lease_token", S("tok-fixture-1"));
	bg_state_journal_put(st, S(STREAM), S("1700000000000-1"),
			     (struct bg_str){ f1.p, f1.len });
	bg_state_journal_put(st, S(STREAM), S("1700000000000-2"),
			     (struct bg_str){ f2.p, f2.len });
	struct bg_state_exec e1 = sample_exec("exec-1", 2);
	bg_state_exec_put(st, S(STREAM), S("1700000000000-1"), &e1);
	struct bg_state_exec e3 = sample_exec("exec-3", 0);
	e3.session_id = S("sess-b");
	struct bg_state_exec e4 = sample_exec("exec-4", 1);
	bg_state_exec_put(st, S(STREAM), S("1700000000000-3"), &e3);
	bg_state_exec_put(st, S(STREAM), S("1700000000000-4"), &e4);
	struct bg_state_hist h = sample_hist("1700000000000-0", now_ms());
	bg_state_hist_add(st, &h);
	struct bg_state_session s = {
		.agent_type = S("echo"),
		.user_code = S("u1"),
		.session_id = S("sess-a"),
		.path = S("/ws/echo/u1/sessions/sess-a"),
		.created_ms = 1700000000000,
		.last_used_ms = 1700000001000,
		.bytes = 4096,
	};
	bg_state_session_put(st, &s);
	int rc = bg_state_commit(st);
	if (rc)
		fprintf(stderr, "%s\n", bg_state_errmsg(st));
	bg_state_close(st);
	bg_buf_free(&f1);
	bg_buf_free(&f2);
	if (rc == 0 && corrupt) {
		snprintf(tmpdir, sizeof tmpdir, "%s", dir);
		raw_inflight("1700000000000-9", "\x01\x00", 2);
	}
	return rc != 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--make-fixture") == 0) {
		bool corrupt = argc >= 4 && strcmp(argv[3], "--corrupt") == 0;
		return make_fixture(argv[2], corrupt);
	}
#define T(f) cmocka_unit_test_setup_teardown(f, make_dir, remove_dir)
	const struct CMUnitTest tests[] = {
		T(test_meta_put_then_get_returns_value),
		T(test_journal_put_get_del_round_trip),
		T(test_journal_each_visits_every_entry_in_key_order),
		T(test_each_stops_at_callback_result),
		T(test_exec_put_get_returns_every_field),
		T(test_exec_del_and_each),
		T(test_hist_add_then_each_returns_every_field),
		T(test_hist_entries_of_the_same_ms_across_restarts_are_kept),
		T(test_session_put_each_del),
		T(test_buffered_writes_are_invisible_until_commit),
		T(test_commit_with_nothing_buffered_is_a_no_op),
		T(test_commit_grows_a_tiny_map_and_loses_nothing),
		T(test_full_map_at_ceiling_is_emapfull_and_keeps_buffer),
		T(test_process_durability_writes_in_place_over_reserved_blocks),
		T(test_sync_durability_writes_through_the_file),
		T(test_a_grown_writable_map_has_its_blocks_reserved),
		T(test_a_grow_whose_blocks_are_refused_fails_the_commit_and_keeps_the_buffer),
		T(test_a_map_whose_blocks_are_refused_at_open_writes_through_the_file),
		T(test_commits_survive_their_writer_killed_before_close),
		T(test_key_too_long_is_refused_when_buffered),
		T(test_commit_inside_a_walk_is_ebusy),
		T(test_history_is_bounded_by_count_oldest_dropped),
		T(test_history_is_bounded_by_age),
		T(test_garbage_record_is_ecorrupt_on_get),
		T(test_each_skips_corrupt_records_then_reports_ecorrupt),
		T(test_every_truncated_exec_record_is_ecorrupt),
		T(test_undecodable_meta_record_is_ecorrupt),
		T(test_newer_schema_is_eschema),
		T(test_fresh_environment_records_schema),
		T(test_other_boot_without_clean_close_moves_environment_aside),
		T(test_other_boot_after_clean_close_is_kept),
		T(test_sync_durability_never_moves_aside),
		T(test_open_marks_unclean_and_close_marks_clean),
		T(test_was_closed_cleanly_only_after_a_clean_close),
		T(test_suspects_round_trip_in_order_and_are_removed),
		T(test_a_truncated_suspect_list_is_ecorrupt_and_unread),
		T(test_read_only_open_sees_committed_data_and_refuses_writes),
		T(test_read_only_open_of_missing_environment_is_enoent),
		T(test_read_only_open_writes_nothing),
		T(test_lmdb_descriptors_are_close_on_exec),
		T(test_reader_check_clears_a_dead_process_reader),
		T(test_stats_count_entries_per_database),
		T(test_finish_round_trips_commands_in_order),
		T(test_every_truncated_finish_is_ecorrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
