/* tests/unit/test_workspace.c - the workspace layout, id validation, and
 * confinement: hostile ids create nothing, planted symlinks are never
 * followed, removal and measurement stay below the root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "workspace/workspace.h"

/* Each test runs in its own mkdtemp directory `top` holding the workspace
 * `root` and a sibling `outside` that nothing may touch. The layout and
 * confinement tests run twice: without a descriptor cache and with one. */
struct fx {
	struct bg_ws_cache *cache; /* NULL in the uncached run */
	bool lazy;		   /* bg_ws_prepare's lazy (bygated's) */
	char top[64];
	char root[128];
	char outside[128];
	struct bg_ws_paths p;
	char err[256];
};

static char *path_of(char *buf, const char *dir, const char *rel)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, rel);
	assert_true(n > 0 && n < PATH_MAX);
	return buf;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	umask(022);
	strcpy(fx->top, "/tmp/bgws-XXXXXX");
	assert_non_null(mkdtemp(fx->top));
	path_of(fx->root, fx->top, "root");
	path_of(fx->outside, fx->top, "outside");
	assert_int_equal(mkdir(fx->root, 0755), 0);
	assert_int_equal(mkdir(fx->outside, 0755), 0);
	*state = fx;
	return 0;
}

static int setup_cached(void **state)
{
	setup(state);
	struct fx *fx = *state;
	assert_int_equal(bg_ws_cache_new(BG_WS_CACHE_MAX, &fx->cache), 0);
	return 0;
}

static int setup_lazy(void **state)
{
	setup_cached(state);
	((struct fx *)*state)->lazy = true;
	return 0;
}

static int chmod_dir(const char *path, const struct stat *st, int flag,
		     struct FTW *f)
{
	(void)st, (void)f;
	if (flag == FTW_D || flag == FTW_DNR)
		chmod(path, 0700); /* a failed test may leave 0000 dirs */
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	bg_ws_cache_free(fx->cache);
	bg_ws_set_owner((uid_t)-1, (gid_t)-1); /* process-wide: for the next */
	nftw(fx->top, chmod_dir, 16, FTW_PHYS);
	nftw(fx->top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ---- helpers ---- */

static struct bg_buf listing;
static size_t listing_base;

static int list_entry(const char *path, const struct stat *st, int flag,
		      struct FTW *f)
{
	(void)flag, (void)f;
	bg_buf_printf(&listing, "%s %o %lld\n", path + listing_base,
		      (unsigned)st->st_mode,
		      S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size);
	return 0;
}

/* A recursive listing (name, mode, size) of dir; caller frees. */
static char *list_tree(const char *dir)
{
	listing_base = strlen(dir);
	assert_int_equal(nftw(dir, list_entry, 16, FTW_PHYS), 0);
	return bg_buf_steal(&listing);
}

static void write_file(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char block[4096];

	assert_true(fd >= 0);
	memset(block, 'x', sizeof(block));
	for (size_t done = 0; done < size;) {
		size_t n = size - done < sizeof(block) ? size - done
						       : sizeof(block);
		assert_int_equal(write(fd, block, n), (ssize_t)n);
		done += n;
	}
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int prepare_in(struct fx *fx, const char *root, const char *agent,
		      const char *user, const char *session, const char *exec,
		      unsigned attempt)
{
	fx->err[0] = '\0';
	return bg_ws_prepare(fx->cache, root, bg_str_c(agent), bg_str_c(user),
			     bg_str_c(session), bg_str_c(exec), attempt,
			     fx->lazy, &fx->p, fx->err, sizeof(fx->err));
}

static int prepare(struct fx *fx, const char *agent, const char *user,
		   const char *session, const char *exec, unsigned attempt)
{
	return prepare_in(fx, fx->root, agent, user, session, exec, attempt);
}

static int remove_private(struct fx *fx)
{
	fx->err[0] = '\0';
	return bg_ws_remove_private(fx->cache, fx->root, &fx->p, fx->err,
				    sizeof(fx->err));
}

static int remove_session(struct fx *fx, const char *rel)
{
	fx->err[0] = '\0';
	return bg_ws_remove_session(fx->cache, fx->root, rel, fx->err,
				    sizeof(fx->err));
}

/* ---- ids ---- */

static void test_check_id_accepts_printable_utf8_names(void **state)
{
	static const char *const ok[] = {
		"planner", "sess-42", "a.b_c",
		"_",	   " x",      "\xe7\x94\xa8\xe6\x88\xb7-1", /* UTF-8 */
		"..a",	   ".hidden",
	};
	char id128[129];
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(bg_ws_check_id(bg_str_c(ok[i]), "id", false,
						NULL, 0),
				 0);
	memset(id128, 'a', 128);
	id128[128] = '\0';
	assert_int_equal(bg_ws_check_id(bg_str_c(id128), "id", false, NULL, 0),
			 0);
	assert_int_equal(
		bg_ws_check_id(bg_str_c(""), "user_code", true, NULL, 0), 0);
}

static void test_check_id_names_field_and_reason(void **state)
{
	char err[256];
	(void)state;

	assert_int_equal(bg_ws_check_id(bg_str_c("../../etc"), "session_id",
					false, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "session_id \"../../etc\" is not allowed as a "
				 "directory name: contains '/'");
	assert_int_equal(bg_ws_check_id(bg_str_c("x\n"), "user_code", true, err,
					sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "user_code \"x\\x0a\" is not allowed as a "
				 "directory name: contains control character "
				 "0x0a");
	assert_int_equal(bg_ws_check_id(bg_str_c("\xff\"q"), "agent_type",
					false, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err,
			    "agent_type \"\\xff\\\"q\" is not allowed as "
			    "a directory name: is not valid UTF-8 (byte 0)");
}

static void test_check_id_cuts_long_names_in_messages(void **state)
{
	char id[201], err[256];
	(void)state;

	memset(id, 'a', 200);
	id[200] = '\0';
	assert_int_equal(bg_ws_check_id(bg_str_c(id), "session_id", false, err,
					sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "...\" is not allowed"));
	assert_non_null(strstr(err, "longer than 128 bytes (200)"));
}

struct hostile {
	struct bg_str id;
	const char *why;
};

#define H(lit, why)                                                            \
	{                                                                      \
		{ lit, sizeof(lit) - 1 }, why                                  \
	}
static char long_id[201];
static const struct hostile hostile[] = {
	H("..", "names the current or parent directory"),
	H(".", "names the current or parent directory"),
	H("a/b", "contains '/'"),
	H("../../x", "contains '/'"),
	H("x\n", "contains control character 0x0a"),
	H("x\x01", "contains control character 0x01"),
	H("x\x7f", "contains control character 0x7f"),
	H("x\xc2\x85", "contains control character U+0085"),
	H("x\0y", "contains a NUL byte"),
	H("\xff\xfe", "is not valid UTF-8 (byte 0)"),
	H("a\xc0\xaf", "is not valid UTF-8 (byte 1)"),
	H("\xed\xa0\x80", "is not valid UTF-8 (byte 0)"),
	H("ab\xe4\xb8", "is not valid UTF-8 (byte 2)"),
	{ { long_id, 200 }, "is longer than 128 bytes (200)" },
	H("", "is empty"),
};

static void expect_refused(struct fx *fx, const char *field, struct bg_str a,
			   struct bg_str u, struct bg_str s, struct bg_str e,
			   const char *why)
{
	char want[128];
	int rc = bg_ws_prepare(fx->cache, fx->root, a, u, s, e, 1, fx->lazy,
			       &fx->p, fx->err, sizeof(fx->err));

	assert_int_equal(rc, -EINVAL);
	snprintf(want, sizeof(want), "%s \"", field);
	assert_memory_equal(fx->err, want, strlen(want));
	snprintf(want, sizeof(want), " is not allowed as a directory name: %s",
		 why);
	assert_non_null(strstr(fx->err, want));
}

static void test_prepare_refuses_hostile_ids_and_creates_nothing(void **state)
{
	struct fx *fx = *state;
	struct bg_str ok = BG_STR_LIT("ok");
	char *before;

	memset(long_id, 'a', 200);
	before = list_tree(fx->top);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct bg_str h = hostile[i].id;
		const char *why = hostile[i].why;
		expect_refused(fx, "agent_type", h, ok, ok, ok, why);
		if (h.len)
			expect_refused(fx, "user_code", ok, h, ok, ok, why);
		expect_refused(fx, "session_id", ok, ok, h, ok, why);
		expect_refused(fx, "execution_id", ok, ok, ok, h, why);
	}
	char *after = list_tree(fx->top);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* ---- prepare ---- */

static void test_prepare_creates_session_and_private_dirs(void **state)
{
	struct fx *fx = *state;
	char want[PATH_MAX];
	struct stat st;

	assert_int_equal(prepare(fx, "planner", "u-1", "sess-9", "exec-1", 2),
			 0);
	assert_string_equal(fx->p.rel_session, "planner/u-1/sessions/sess-9");
	assert_string_equal(fx->p.rel_private,
			    "planner/u-1/sessions/sess-9/private/exec-1.2");
	assert_string_equal(fx->p.session,
			    path_of(want, fx->root, fx->p.rel_session));
	assert_string_equal(fx->p.private_dir,
			    path_of(want, fx->root, fx->p.rel_private));
	assert_int_equal(lstat(fx->p.session, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(lstat(fx->p.private_dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
}

/* bygated root, children the pool user: what they write is theirs, what
 * leads to other sessions is root's and passable but not listable. */
#define POOL_UID 4242
#define POOL_GID 4243

static void expect_dir(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
	assert_int_equal(st.st_mode & 07777, mode);
}

static void test_owner_gets_session_and_private_dirs_others_pass(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	if (geteuid() != 0)
		skip(); /* chown needs root */
	bg_ws_set_owner(POOL_UID, POOL_GID);
	umask(077); /* modes do not depend on it */
	assert_int_equal(prepare(fx, "planner", "u-1", "sess-9", "exec-1", 2),
			 0);
	umask(022);
	expect_dir(fx->p.session, POOL_UID, POOL_GID, 0700);
	expect_dir(path_of(path, fx->p.session, "private"), POOL_UID, POOL_GID,
		   0700);
	expect_dir(fx->p.private_dir, POOL_UID, POOL_GID, 0700);
	const char *above[] = { "planner", "planner/u-1",
				"planner/u-1/sessions" };
	for (size_t i = 0; i < 3; i++)
		expect_dir(path_of(path, fx->root, above[i]), 0, 0, 0711);
	/* A left-over private dir of the same attempt is emptied and the
	 * owner's again. */
	assert_int_equal(chown(fx->p.private_dir, 0, 0), 0);
	assert_int_equal(prepare(fx, "planner", "u-1", "sess-9", "exec-1", 2),
			 0);
	expect_dir(fx->p.private_dir, POOL_UID, POOL_GID, 0700);
	/* bygated (root) still removes what the owner holds. */
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(access(fx->p.private_dir, F_OK), -1);
}

static void test_owner_takes_over_an_existing_session_dir(void **state)
{
	struct fx *fx = *state;

	if (geteuid() != 0)
		skip();
	assert_int_equal(prepare(fx, "planner", "u-1", "sess-9", "exec-1", 1),
			 0);
	expect_dir(fx->p.session, 0, 0, 0750);
	bg_ws_set_owner(POOL_UID, POOL_GID);
	assert_int_equal(prepare(fx, "planner", "u-1", "sess-9", "exec-2", 1),
			 0);
	expect_dir(fx->p.session, POOL_UID, POOL_GID, 0750);
	expect_dir(fx->p.private_dir, POOL_UID, POOL_GID, 0700);
}

static void test_prepare_maps_empty_user_code_to_underscore(void **state)
{
	struct fx *fx = *state;
	char want[PATH_MAX];

	assert_int_equal(prepare(fx, "planner", "", "s1", "e1", 1), 0);
	assert_string_equal(fx->p.rel_session, "planner/_/sessions/s1");
	assert_true(is_dir(path_of(want, fx->root, "planner/_/sessions/s1")));
}

static void test_prepare_ignores_trailing_slash_of_root(void **state)
{
	struct fx *fx = *state;
	char root[PATH_MAX], want[PATH_MAX];

	snprintf(root, sizeof(root), "%s//", fx->root);
	assert_int_equal(prepare_in(fx, root, "a", "u", "s", "e", 1), 0);
	assert_string_equal(fx->p.session,
			    path_of(want, fx->root, "a/u/sessions/s"));
}

static void test_session_dir_persists_across_tasks(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], first[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e1", 1), 0);
	write_file(path_of(f, fx->p.session, "notes.txt"), 10);
	strcpy(first, fx->p.private_dir);
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e2", 1), 0);
	assert_true(exists(f));
	assert_false(exists(first));
	assert_true(is_dir(fx->p.private_dir));
}

static void test_prepare_empties_private_dir_of_same_attempt(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], *tree;

	assert_int_equal(prepare(fx, "a", "u", "s", "e1", 3), 0);
	write_file(path_of(f, fx->p.private_dir, "left-over"), 100);
	assert_int_equal(mkdir(path_of(f, fx->p.private_dir, "sub"), 0700), 0);
	write_file(path_of(f, fx->p.private_dir, "sub/x"), 100);
	assert_int_equal(prepare(fx, "a", "u", "s", "e1", 3), 0);
	tree = list_tree(fx->p.private_dir);
	assert_string_equal(tree, " 40750 0\n"); /* the dir alone */
	free(tree);
}

static void test_prepare_refuses_relative_or_missing_root(void **state)
{
	struct fx *fx = *state;
	char missing[PATH_MAX];

	assert_int_equal(prepare_in(fx, "rel/root", "a", "", "s", "e", 1),
			 -EINVAL);
	assert_non_null(strstr(fx->err, "not an absolute path"));
	path_of(missing, fx->top, "nope");
	assert_int_equal(prepare_in(fx, missing, "a", "", "s", "e", 1),
			 -ENOENT);
	assert_false(exists(missing));
}

static void test_prepare_refuses_symlinked_agent_dir(void **state)
{
	struct fx *fx = *state;
	char link[PATH_MAX];

	assert_int_equal(
		symlink(fx->outside, path_of(link, fx->root, "planner")), 0);
	assert_int_equal(prepare(fx, "planner", "u", "s", "e", 1), -ELOOP);
	assert_string_equal(fx->err, "workspace path \"planner\" is a symbolic "
				     "link; refusing to follow it");
	char *tree = list_tree(fx->outside);
	assert_string_equal(tree, " 40755 0\n");
	free(tree);
}

static void test_prepare_refuses_symlink_planted_at_private(void **state)
{
	struct fx *fx = *state;
	char link[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	path_of(link, fx->p.session, "private");
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(rmdir(link), 0);
	assert_int_equal(symlink(fx->outside, link), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), -ELOOP);
	assert_non_null(strstr(fx->err, "\"a/u/sessions/s/private\""));
	char *tree = list_tree(fx->outside);
	assert_string_equal(tree, " 40755 0\n");
	free(tree);
}

static void test_prepare_refuses_file_in_place_of_dir(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];

	write_file(path_of(f, fx->root, "a"), 1);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), -ENOTDIR);
	assert_string_equal(fx->err, "workspace path \"a\" exists and is not a "
				     "directory");
}

/* ---- remove_private ---- */

static void test_remove_private_unlinks_planted_symlinks(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], secret[PATH_MAX], *before, *after;

	write_file(path_of(secret, fx->outside, "secret"), 1000);
	before = list_tree(fx->top);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(symlink(secret, path_of(f, fx->p.private_dir, "l")),
			 0);
	assert_int_equal(symlink(fx->outside,
				 path_of(f, fx->p.private_dir, "dirlink")),
			 0);
	assert_int_equal(mkdir(path_of(f, fx->p.private_dir, "d"), 0700), 0);
	assert_int_equal(symlink("../../../../../../../outside",
				 path_of(f, fx->p.private_dir, "d/up")),
			 0);
	write_file(path_of(f, fx->p.private_dir, "d/file"), 5000);

	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
	assert_true(is_dir(fx->p.session));
	assert_int_equal(remove_session(fx, fx->p.rel_session), 0);
	after = list_tree(fx->top);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void
test_remove_private_unlinks_private_dir_replaced_by_symlink(void **state)
{
	struct fx *fx = *state;
	char secret[PATH_MAX], *before, *after;

	write_file(path_of(secret, fx->outside, "secret"), 10);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(rmdir(fx->p.private_dir), 0);
	assert_int_equal(symlink(fx->outside, fx->p.private_dir), 0);
	before = list_tree(fx->outside);
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
	after = list_tree(fx->outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_remove_private_removes_read_only_dirs(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(mkdir(path_of(f, fx->p.private_dir, "ro"), 0700), 0);
	write_file(path_of(f, fx->p.private_dir, "ro/f"), 10);
	chmod(f, 0444);
	assert_int_equal(chmod(path_of(f, fx->p.private_dir, "ro"), 0555), 0);
	assert_int_equal(mkdir(path_of(f, fx->p.private_dir, "none"), 0700), 0);
	write_file(path_of(f, fx->p.private_dir, "none/f"), 10);
	assert_int_equal(chmod(path_of(f, fx->p.private_dir, "none"), 0), 0);
	assert_int_equal(chmod(fx->p.private_dir, 0500), 0);

	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
}

/* Deeper than any descriptor budget: the walk holds one at a time. */
static void test_remove_private_removes_very_deep_tree(void **state)
{
	struct fx *fx = *state;
	int fd, next;
	int64_t bytes;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	fd = open(fx->p.private_dir, O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(mkdirat(fd, "d", 0700), 0);
		next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	close(fd);
	assert_int_equal(bg_ws_measure(fx->root, fx->p.rel_session, &bytes,
				       fx->err, sizeof(fx->err)),
			 0);
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
}

static void test_remove_private_is_idempotent(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(remove_session(fx, fx->p.rel_session), 0);
	assert_int_equal(remove_private(fx), 0);
}

static void test_remove_private_refuses_path_of_other_shape(void **state)
{
	static const char *const bad[] = {
		"a/u/sessions/s/private/..",
		"a/u/sessions/s/private/../../../../../outside",
		"a/u/sessions/s",
		"/abs/u/sessions/s/private/e.1",
		"a/u/sessions/s/public/e.1",
		"a/u/sessions/s/private/e.1/",
		"",
	};
	struct fx *fx = *state;
	char *before, *after;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	before = list_tree(fx->top);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bg_ws_paths p = fx->p;
		strcpy(p.rel_private, bad[i]);
		assert_int_equal(bg_ws_remove_private(fx->cache, fx->root, &p,
						      fx->err, sizeof(fx->err)),
				 -EINVAL);
		assert_non_null(strstr(fx->err, "does not have the shape"));
	}
	after = list_tree(fx->top);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* ---- measure ---- */

static void test_measure_counts_allocated_bytes(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];
	int64_t empty, full;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(
		bg_ws_measure(fx->root, fx->p.rel_session, &empty, NULL, 0), 0);
	write_file(path_of(f, fx->p.session, "big"), 200000);
	write_file(path_of(f, fx->p.private_dir, "small"), 30000);
	assert_int_equal(
		bg_ws_measure(fx->root, fx->p.rel_session, &full, NULL, 0), 0);
	assert_true(full - empty >= 230000);
	assert_true(full - empty < 230000 + 64 * 1024);
}

static void test_measure_does_not_follow_symlinks(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], big[PATH_MAX];
	int64_t before, after;

	write_file(path_of(big, fx->outside, "big"), 1 << 20);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(bg_ws_measure(fx->root, fx->p.rel_session, &before,
				       NULL, 0),
			 0);
	assert_int_equal(symlink(big, path_of(f, fx->p.session, "l")), 0);
	assert_int_equal(symlink(fx->outside, path_of(f, fx->p.session, "d")),
			 0);
	assert_int_equal(
		bg_ws_measure(fx->root, fx->p.rel_session, &after, NULL, 0), 0);
	assert_true(after - before < 64 * 1024);
}

static void test_measure_refuses_path_of_other_shape(void **state)
{
	static const char *const bad[] = { "../outside",
					   "a/u/sessions/..",
					   "a/u/sessions",
					   "/a/u/sessions/s",
					   "a/u/other/s",
					   "a//sessions/s",
					   "a/u/sessions/s/private" };
	struct fx *fx = *state;
	int64_t bytes = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_ws_measure(fx->root, bad[i], &bytes,
					       fx->err, sizeof(fx->err)),
				 -EINVAL);
		assert_non_null(strstr(fx->err, "does not have the shape"));
	}
}

/* ---- remove_session ---- */

static void test_remove_session_prunes_empty_parents(void **state)
{
	struct fx *fx = *state;
	char rel1[PATH_MAX], f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s1", "e", 1), 0);
	strcpy(rel1, fx->p.rel_session);
	write_file(path_of(f, fx->p.private_dir, "f"), 10);
	assert_int_equal(prepare(fx, "a", "u", "s2", "e", 1), 0);

	assert_int_equal(remove_session(fx, rel1), 0);
	assert_false(exists(path_of(f, fx->root, rel1)));
	assert_true(is_dir(fx->p.session));

	assert_int_equal(remove_session(fx, fx->p.rel_session), 0);
	assert_false(exists(path_of(f, fx->root, "a")));
	char *tree = list_tree(fx->root);
	assert_string_equal(tree, " 40755 0\n");
	free(tree);
}

static void test_remove_session_keeps_parents_of_other_users(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u2", "s", "e", 1), 0);
	assert_int_equal(prepare(fx, "a", "u1", "s", "e", 1), 0);
	assert_int_equal(remove_session(fx, fx->p.rel_session), 0);
	assert_false(exists(path_of(f, fx->root, "a/u1")));
	assert_true(is_dir(path_of(f, fx->root, "a/u2/sessions/s")));
}

static void test_remove_session_refuses_path_of_other_shape(void **state)
{
	static const char *const bad[] = { "../outside", "a/u/sessions/..",
					   "a/u/sessions", "a/u/../../outside",
					   "a/u/sessions/s/private" };
	struct fx *fx = *state;
	char *before, *after;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	before = list_tree(fx->top);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(remove_session(fx, bad[i]), -EINVAL);
	after = list_tree(fx->top);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_remove_session_does_not_follow_symlinked_parent(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], *before, *after;

	assert_int_equal(mkdir(path_of(f, fx->outside, "sessions"), 0755), 0);
	assert_int_equal(mkdir(path_of(f, fx->outside, "sessions/s"), 0755), 0);
	write_file(path_of(f, fx->outside, "sessions/s/keep"), 10);
	assert_int_equal(mkdir(path_of(f, fx->root, "a"), 0755), 0);
	assert_int_equal(symlink(fx->outside, path_of(f, fx->root, "a/u")), 0);
	before = list_tree(fx->outside);
	assert_int_equal(remove_session(fx, "a/u/sessions/s"), -ELOOP);
	after = list_tree(fx->outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* ---- descriptor cache ---- */

/* A cache entry holds two descriptors: the session and its "private". */
#define FDS_PER_ENTRY 2

/* Descriptors of this process open on dir or below it; a removed directory
 * still held open shows as "<dir> (deleted)". */
static int fds_on(const char *dir)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = strlen(dir);
	struct dirent *de;
	int count = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%.32s", de->d_name);
		ssize_t len = readlink(link, target, sizeof(target) - 1);
		if (de->d_name[0] == '.' || len < 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, dir, n) == 0 &&
		    (target[n] == '\0' || target[n] == '/' || target[n] == ' '))
			count++;
	}
	closedir(d);
	return count;
}

static void
test_private_swapped_for_symlink_fails_writing_nothing_outside(void **state)
{
	struct fx *fx = *state;
	char priv[PATH_MAX], f[PATH_MAX], *tree;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(remove_private(fx), 0);
	path_of(priv, fx->p.session, "private");
	assert_int_equal(rename(priv, path_of(f, fx->p.session, "old")), 0);
	assert_int_equal(symlink(path_of(f, fx->outside, "made"), priv), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), -ELOOP);
	assert_non_null(strstr(fx->err, "\"a/u/sessions/s/private\""));
	assert_int_equal(unlink(priv), 0);
	assert_int_equal(symlink(fx->outside, priv), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 3), -ELOOP);
	tree = list_tree(fx->outside);
	assert_string_equal(tree, " 40755 0\n");
	free(tree);
}

/* The cached descriptor stays bound to the real session directory: a
 * symlink planted in place of a component of its path is not followed. */
static void
test_cached_session_ignores_symlink_planted_on_its_path(void **state)
{
	struct fx *fx = *state;
	char a[PATH_MAX], moved[PATH_MAX], f[PATH_MAX], *before, *after;

	assert_int_equal(mkdir(path_of(f, fx->outside, "u"), 0755), 0);
	assert_int_equal(mkdir(path_of(f, fx->outside, "u/sessions"), 0755), 0);
	assert_int_equal(mkdir(path_of(f, fx->outside, "u/sessions/s"), 0755),
			 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(remove_private(fx), 0);
	path_of(a, fx->root, "a");
	assert_int_equal(rename(a, path_of(moved, fx->root, "moved")), 0);
	assert_int_equal(symlink(fx->outside, a), 0);
	before = list_tree(fx->outside);

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), 0);
	assert_true(is_dir(path_of(f, moved, "u/sessions/s/private/e.2")));
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(f));
	after = list_tree(fx->outside);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_remove_session_closes_its_cached_descriptor(void **state)
{
	struct fx *fx = *state;
	char s1[PATH_MAX], s2[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s1", "e", 1), 0);
	strcpy(s1, fx->p.session);
	assert_int_equal(prepare(fx, "a", "u", "s2", "e", 1), 0);
	strcpy(s2, fx->p.session);
	assert_int_equal(fds_on(s1), FDS_PER_ENTRY);
	assert_int_equal(remove_session(fx, "a/u/sessions/s1"), 0);
	assert_false(exists(s1));
	assert_int_equal(fds_on(s1), 0);
	assert_int_equal(fds_on(s2), FDS_PER_ENTRY);
	assert_int_equal(prepare(fx, "a", "u", "s1", "e", 1), 0);
	assert_true(is_dir(fx->p.private_dir));
}

static void test_cache_closes_least_recently_used_descriptor(void **state)
{
	struct fx *fx = *state;
	char s[3][PATH_MAX];

	bg_ws_cache_free(fx->cache);
	assert_int_equal(bg_ws_cache_new(2, &fx->cache), 0);
	for (int i = 0; i < 3; i++) {
		char sid[8];
		snprintf(sid, sizeof(sid), "s%d", i);
		assert_int_equal(prepare(fx, "a", "u", sid, "e", 1), 0);
		strcpy(s[i], fx->p.session);
		if (i == 1) /* s0 used again: s1 is now the oldest */
			assert_int_equal(prepare(fx, "a", "u", "s0", "e", 2),
					 0);
	}
	assert_int_equal(fds_on(s[0]), FDS_PER_ENTRY);
	assert_int_equal(fds_on(s[1]), 0);
	assert_int_equal(fds_on(s[2]), FDS_PER_ENTRY);
	bg_ws_cache_free(fx->cache);
	fx->cache = NULL;
	assert_int_equal(fds_on(fx->root), 0);
}

static void
test_cache_recovers_from_session_removed_behind_its_back(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(nftw(path_of(f, fx->root, "a"), rm_entry, 16,
			      FTW_DEPTH | FTW_PHYS),
			 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), 0);
	assert_true(is_dir(fx->p.private_dir));
	assert_int_equal(fds_on(fx->root), FDS_PER_ENTRY);
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
}

/* "private" renamed away and made again: the cached descriptor of the old
 * one is not used, the new private directory is made where its path says. */
static void test_cached_private_replaced_makes_dir_in_the_new_one(void **state)
{
	struct fx *fx = *state;
	char priv[PATH_MAX], old[PATH_MAX], f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(remove_private(fx), 0);
	path_of(priv, fx->p.session, "private");
	assert_int_equal(rename(priv, path_of(old, fx->p.session, "old")), 0);
	assert_int_equal(mkdir(priv, 0750), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), 0);
	assert_true(is_dir(fx->p.private_dir));
	assert_false(exists(path_of(f, old, "e.2")));
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
}

/* The session's state record is due at its first task, then at most once
 * per interval; a session new to the cache again is due at once. */
static void test_touch_is_due_once_per_interval_and_when_new(void **state)
{
	struct fx *fx = *state;
	char rel[PATH_MAX];

	assert_true(bg_ws_cache_touch(fx->cache, fx->root, "a/u/sessions/s",
				      1000, 500)); /* no entry yet */
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	strcpy(rel, fx->p.rel_session);
	assert_true(bg_ws_cache_touch(fx->cache, fx->root, rel, 1000, 500));
	assert_false(bg_ws_cache_touch(fx->cache, fx->root, rel, 1001, 500));
	assert_false(bg_ws_cache_touch(fx->cache, fx->root, rel, 1499, 500));
	assert_true(bg_ws_cache_touch(fx->cache, fx->root, rel, 1500, 500));
	assert_false(bg_ws_cache_touch(fx->cache, fx->root, rel, 1600, 500));
	assert_int_equal(remove_private(fx), 0);
	assert_int_equal(remove_session(fx, rel), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), 0);
	assert_true(bg_ws_cache_touch(fx->cache, fx->root, rel, 1601, 500));
	assert_true(bg_ws_cache_touch(NULL, fx->root, rel, 1602, 500));
}

/* ---- lazy private directories (bygated's way) ---- */

/* The session and its "private" are made (the owner's), the private
 * directory itself is left to the task's process. */
static void test_lazy_prepare_leaves_the_private_dir_unmade(void **state)
{
	struct fx *fx = *state;
	char path[PATH_MAX];

	if (geteuid() == 0)
		bg_ws_set_owner(POOL_UID, POOL_GID);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_string_equal(fx->p.rel_private, "a/u/sessions/s/private/e.1");
	assert_true(is_dir(path_of(path, fx->p.session, "private")));
	if (geteuid() == 0)
		expect_dir(path, POOL_UID, POOL_GID, 0700);
	assert_false(exists(fx->p.private_dir));
	assert_int_equal(remove_private(fx), 0); /* never made: fine */
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 2), 0); /* cached */
	assert_false(exists(fx->p.private_dir));
}

/* A left-over of the same attempt (an earlier run's, not removed) is gone
 * before the attempt starts, whatever it holds or is. */
static void test_lazy_prepare_removes_a_left_over_of_the_attempt(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX], *tree;

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(mkdir(fx->p.private_dir, 0700), 0);
	assert_int_equal(mkdir(path_of(f, fx->p.private_dir, "d"), 0500), 0);
	write_file(path_of(f, fx->p.private_dir, "x"), 10);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_false(exists(fx->p.private_dir));
	assert_int_equal(mkdir(fx->p.private_dir, 0700), 0); /* empty one */
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_false(exists(fx->p.private_dir));
	assert_int_equal(symlink(fx->outside, fx->p.private_dir), 0);
	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_false(exists(fx->p.private_dir));
	tree = list_tree(fx->outside);
	assert_string_equal(tree, " 40755 0\n");
	free(tree);
}

/* What the task's process made is removed at its end like before. */
static void test_lazy_private_dir_made_later_is_removed(void **state)
{
	struct fx *fx = *state;
	char f[PATH_MAX];

	assert_int_equal(prepare(fx, "a", "u", "s", "e", 1), 0);
	assert_int_equal(mkdir(fx->p.private_dir, 0700), 0);
	write_file(path_of(f, fx->p.private_dir, "x"), 10);
	assert_int_equal(remove_private(fx), 0);
	assert_false(exists(fx->p.private_dir));
	assert_true(is_dir(path_of(f, fx->p.session, "private")));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TC(f)                                                                  \
	{                                                                      \
#f " (cached)", f, setup_cached, teardown, NULL                \
	}
#define TL(f)                                                                  \
	{                                                                      \
#f " (lazy)", f, setup_lazy, teardown, NULL                    \
	}
#define BOTH(f) T(f), TC(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_id_accepts_printable_utf8_names),
		cmocka_unit_test(test_check_id_names_field_and_reason),
		cmocka_unit_test(test_check_id_cuts_long_names_in_messages),
		T(test_prepare_refuses_hostile_ids_and_creates_nothing),
		BOTH(test_prepare_creates_session_and_private_dirs),
		BOTH(test_owner_gets_session_and_private_dirs_others_pass),
		BOTH(test_owner_takes_over_an_existing_session_dir),
		BOTH(test_prepare_maps_empty_user_code_to_underscore),
		BOTH(test_prepare_ignores_trailing_slash_of_root),
		BOTH(test_session_dir_persists_across_tasks),
		BOTH(test_prepare_empties_private_dir_of_same_attempt),
		BOTH(test_prepare_refuses_relative_or_missing_root),
		BOTH(test_prepare_refuses_symlinked_agent_dir),
		BOTH(test_prepare_refuses_symlink_planted_at_private),
		BOTH(test_prepare_refuses_file_in_place_of_dir),
		BOTH(test_remove_private_unlinks_planted_symlinks),
		BOTH(test_remove_private_unlinks_private_dir_replaced_by_symlink),
		BOTH(test_remove_private_removes_read_only_dirs),
		BOTH(test_remove_private_removes_very_deep_tree),
		BOTH(test_remove_private_is_idempotent),
		BOTH(test_remove_private_refuses_path_of_other_shape),
		BOTH(test_measure_counts_allocated_bytes),
		BOTH(test_measure_does_not_follow_symlinks),
		BOTH(test_measure_refuses_path_of_other_shape),
		BOTH(test_remove_session_prunes_empty_parents),
		BOTH(test_remove_session_keeps_parents_of_other_users),
		BOTH(test_remove_session_refuses_path_of_other_shape),
		BOTH(test_remove_session_does_not_follow_symlinked_parent),
		BOTH(test_private_swapped_for_symlink_fails_writing_nothing_outside),
		TC(test_cached_session_ignores_symlink_planted_on_its_path),
		TC(test_remove_session_closes_its_cached_descriptor),
		TC(test_cache_closes_least_recently_used_descriptor),
		TC(test_cache_recovers_from_session_removed_behind_its_back),
		TC(test_cached_private_replaced_makes_dir_in_the_new_one),
		TC(test_touch_is_due_once_per_interval_and_when_new),
		TL(test_prepare_refuses_hostile_ids_and_creates_nothing),
		TL(test_prepare_refuses_symlinked_agent_dir),
		TL(test_prepare_refuses_symlink_planted_at_private),
		TL(test_prepare_refuses_file_in_place_of_dir),
		TL(test_private_swapped_for_symlink_fails_writing_nothing_outside),
		TL(test_lazy_prepare_leaves_the_private_dir_unmade),
		TL(test_lazy_prepare_removes_a_left_over_of_the_attempt),
		TL(test_lazy_private_dir_made_later_is_removed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
