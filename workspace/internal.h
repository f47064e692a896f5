/* workspace/internal.h - helpers shared by the workspace sources (ids,
 * confined directory walks, the descriptor cache); not part of the
 * component's API. */
#ifndef BG_WORKSPACE_INTERNAL_H
#define BG_WORKSPACE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "workspace/workspace.h"

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

/* How bg_ws_open_at and bg_ws_open_rel open a directory. */
enum {
	BG_WS_CREATE = 1,   /* create missing directories (bg_ws_set_owner) */
	BG_WS_READABLE = 2, /* the result is O_RDONLY (listable), not O_PATH */
	BG_WS_OWNED = 4,    /* a directory created is the owner's (0700) */
};

/* The owner set by bg_ws_set_owner: true and *uid, *gid when one is. */
bool bg_ws_owner(uid_t *uid, gid_t *gid);

/* Counts bg_ws_set_owner calls: a cache entry made under another count is
 * redone (the session is then given to the new owner). */
unsigned bg_ws_owner_gen(void);

/* Gives the directory fd (not O_PATH) its mode: 0700 and the owner when
 * `owned` and an owner is set, 0711 when only an owner is set (a directory
 * above a session). Nothing without an owner. 0 or -errno. */
int bg_ws_fix_dir(int fd, bool owned);

/* Opens the directory dirfd/name with O_NOFOLLOW | O_CLOEXEC, creating it
 * when missing and `how` has BG_WS_CREATE. A symlink gives -ELOOP, a
 * non-directory -ENOTDIR; shown[0..len) names it in error texts. */
int bg_ws_open_at(int dirfd, const char *name, unsigned how, int *fd,
		  const char *shown, size_t len, char *err, size_t errlen);

/* bg_ws_open_at for each component of rel[0..len) in turn (the ones before
 * the last always O_PATH); empty, "." and ".." components give -EINVAL.
 * len 0 duplicates dirfd (O_CLOEXEC). */
int bg_ws_open_rel(int dirfd, const char *rel, size_t len, unsigned how,
		   int *fd, char *err, size_t errlen);

/* The cache's key: a root (no trailing '/') and a rel_session below it. */
struct bg_ws_key {
	const char *root, *rel;
	size_t rootlen, rellen;
};

/* What the cache holds per session: O_PATH descriptors of the session
 * directory and of its "private" directory, the identity (dev, ino) of the
 * latter as opened (a cached `private` is used only while the session's
 * "private" entry is still that directory: workspace.c checks it with one
 * fstatat per task), and when the session's state record was last written
 * (bg_ws_cache_touch; INT64_MIN never). owner_gen: bg_ws_owner_gen() when
 * they were opened. */
struct bg_ws_dirs {
	int session, priv;
	dev_t dev;
	ino_t ino;
	int64_t touched_ms;
	unsigned owner_gen;
};

/* The cached directories of k (marked most recently used), or NULL. */
struct bg_ws_dirs *bg_ws_cache_find(struct bg_ws_cache *c,
				    const struct bg_ws_key *k);

/* Stores *d under k (absent from the cache), closing the least recently
 * used entry's descriptors when full. The cache owns d's descriptors from
 * now on; they are closed at once if they cannot be stored. */
void bg_ws_cache_put(struct bg_ws_cache *c, const struct bg_ws_key *k,
		     const struct bg_ws_dirs *d);

/* Removes k's entry and closes its descriptors; no-op when absent. */
void bg_ws_cache_drop(struct bg_ws_cache *c, const struct bg_ws_key *k);

/* Removes everything inside the open directory fd without following
 * symlinks or leaving it. rel names fd in error texts. */
int bg_ws_tree_empty(int fd, const char *rel, char *err, size_t errlen);

/* Removes dirfd/name: a non-directory (a symlink too) is unlinked, a
 * directory emptied and removed. 0 if absent. rel names it in texts. */
int bg_ws_tree_remove(int dirfd, const char *name, const char *rel, char *err,
		      size_t errlen);

/* Adds st_blocks * 512 of fd and everything below it to *bytes. */
int bg_ws_tree_measure(int fd, const char *rel, int64_t *bytes, char *err,
		       size_t errlen);

#endif
