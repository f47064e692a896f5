/* workspace/internal.h - helpers shared by the workspace sources (ids,
 * confined directory walks); not part of the component's API. */
#ifndef BG_WORKSPACE_INTERNAL_H
#define BG_WORKSPACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Like bg_ws_check_id for a non-empty name of at most `max` bytes. */
int bg_ws_check_name(struct bg_str name, const char *what, size_t max,
		     char *err, size_t errlen);

/* Writes s into out as a double-quoted, escaped string for an error text:
 * control bytes, '"' and '\\' escaped, bytes >= 0x80 escaped unless s is
 * valid UTF-8, long strings cut with "...". Always NUL-terminates. */
void bg_ws_quote(char *out, size_t outlen, const char *s, size_t len);

/* snprintf into err when err is not NULL and errlen > 0. */
void bg_ws_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Opens rel[0..len) below dirfd one component at a time with O_NOFOLLOW,
 * creating missing directories (0750) when `create`. A component that is a
 * symlink gives -ELOOP, a non-directory -ENOTDIR; empty, "." and ".."
 * components -EINVAL. len 0 duplicates dirfd. *fd is O_CLOEXEC. */
int bg_ws_open_rel(int dirfd, const char *rel, size_t len, bool create,
		   int *fd, char *err, size_t errlen);

/* Removes everything inside the open directory fd without following
 * symlinks or leaving it. rel names fd in error texts. */
int bg_ws_tree_empty(int fd, const char *rel, char *err, size_t errlen);

/* Removes dirfd/name: a non-directory (a symlink too) is unlinked, a
 * directory emptied and removed. 0 if absent. rel names it in texts. */
int bg_ws_tree_remove(int dirfd, const char *name, const char *rel,
		      char *err, size_t errlen);

/* Adds st_blocks * 512 of fd and everything below it to *bytes. */
int bg_ws_tree_measure(int fd, const char *rel, int64_t *bytes, char *err,
		       size_t errlen);

#endif
