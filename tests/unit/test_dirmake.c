/* tests/unit/test_dirmake.c - common/dirmake.h: a directory made below a
 * parent that may have been swapped for a symbolic link (the lazy private
 * directory of a task, child/task.c). */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dirmake.h"

struct tree {
	char root[64];
	char path[PATH_MAX];
};

static int setup(void **st)
{
	struct tree *t = calloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/bg-dirmake-XXXXXX");
	if (mkdtemp(t->root) == NULL)
		return -1;
	*st = t;
	return 0;
}

static int teardown(void **st)
{
	struct tree *t = *st;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	int rc = system(cmd);
	free(t);
	return rc == 0 ? 0 : -1;
}

static const char *at(struct tree *t, const char *rel)
{
	snprintf(t->path, sizeof(t->path), "%s/%s", t->root, rel);
	return t->path;
}

static bool is_dir(const char *p)
{
	struct stat s;
	return lstat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static void test_makes_the_directory_with_its_mode(void **st)
{
	struct tree *t = *st;
	struct stat s;
	assert_int_equal(mkdir(at(t, "private"), 0755), 0);
	assert_int_equal(bg_dir_make_below(at(t, "private/e1.1"), 0700), 0);
	assert_int_equal(lstat(at(t, "private/e1.1"), &s), 0);
	assert_true(S_ISDIR(s.st_mode));
	assert_int_equal(s.st_mode & 0077, 0);
}

static void test_an_existing_directory_is_success(void **st)
{
	struct tree *t = *st;
	assert_int_equal(mkdir(at(t, "private"), 0755), 0);
	assert_int_equal(mkdir(at(t, "private/e1.1"), 0700), 0);
	assert_int_equal(bg_dir_make_below(at(t, "private/e1.1"), 0700), 0);
}

static void test_a_file_or_link_in_its_place_is_eexist(void **st)
{
	struct tree *t = *st;
	assert_int_equal(mkdir(at(t, "private"), 0755), 0);
	assert_int_equal(mkdir(at(t, "elsewhere"), 0755), 0);
	FILE *f = fopen(at(t, "private/file"), "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(bg_dir_make_below(at(t, "private/file"), 0700),
			 -EEXIST);
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/elsewhere", t->root);
	assert_int_equal(symlink(target, at(t, "private/link")), 0);
	assert_int_equal(bg_dir_make_below(at(t, "private/link"), 0700),
			 -EEXIST);
}

static void
test_a_parent_swapped_for_a_link_makes_nothing_at_its_target(void **st)
{
	struct tree *t = *st;
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/other-session-private", t->root);
	assert_int_equal(mkdir(target, 0755), 0);
	assert_int_equal(symlink(target, at(t, "private")), 0);
	int rc = bg_dir_make_below(at(t, "private/e1.1"), 0700);
	assert_true(rc == -ELOOP || rc == -ENOTDIR);
	assert_false(is_dir(at(t, "other-session-private/e1.1")));
}

static void test_a_path_without_parent_or_name_is_refused(void **st)
{
	(void)st;
	assert_int_equal(bg_dir_make_below("name", 0700), -EINVAL);
	assert_int_equal(bg_dir_make_below("/name", 0700), -EINVAL);
	assert_int_equal(bg_dir_make_below("/tmp/", 0700), -EINVAL);
	assert_int_equal(bg_dir_make_below(NULL, 0700), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_makes_the_directory_with_its_mode, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_an_existing_directory_is_success, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_file_or_link_in_its_place_is_eexist, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_parent_swapped_for_a_link_makes_nothing_at_its_target,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_path_without_parent_or_name_is_refused, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
