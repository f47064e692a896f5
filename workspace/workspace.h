/* workspace/workspace.h - node-local per-session workspace directories.
 * Checks ids before they become path components; creates, measures and
 * removes the directories without following a symlink or leaving the root. */
#ifndef BG_WORKSPACE_WORKSPACE_H
#define BG_WORKSPACE_WORKSPACE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

/* Layout below the root (docs/workspaces.md):
 *   <agent_type>/<user_code or "_">/sessions/<session_id>/         session
 *   <session>/private/<execution_id>.<attempt>/                    one task */
#define BG_WS_ID_MAX 128  /* bytes of one id */
#define BG_WS_NO_USER "_" /* directory of an empty user_code */

/* Who owns what bg_ws_prepare creates. By default (uid (uid_t)-1) the
 * caller: every directory is made 0750 less umask. bygated running as root
 * sets the pool user (its children run as that user): the session
 * directory, its "private" directory and each private directory are then
 * owned by uid:gid with mode 0700, and the directories above a session
 * (<agent_type>, <user>, "sessions") are the caller's with mode 0711: the
 * pool user can pass through them to a session whose name it knows, but
 * cannot list them (other sessions, agent types, user codes). An existing
 * session directory of another owner is given to uid:gid. Process-wide;
 * call before the first bg_ws_prepare. */
void bg_ws_set_owner(uid_t uid, gid_t gid);

/* 0 if `id` may become one path component, else -EINVAL with a text naming
 * `what` and the reason in err. Refused: empty (unless allow_empty), more
 * than BG_WS_ID_MAX bytes, "." and "..", '/', NUL, C0/C1 control characters
 * and DEL, invalid UTF-8. err may be NULL; errlen 128+ is enough. */
int bg_ws_check_id(struct bg_str id, const char *what, bool allow_empty,
		   char *err, size_t errlen);

struct bg_ws_paths {
	char session[PATH_MAX];	    /* <root>/<rel_session> */
	char private_dir[PATH_MAX]; /* <root>/<rel_private> */
	char rel_session[PATH_MAX]; /* <agent>/<user>/sessions/<session> */
	char rel_private[PATH_MAX]; /* <rel_session>/private/<exec>.<attempt> */
};

/* A bounded LRU cache of O_PATH descriptors of session directories and of
 * their "private" directories, keyed by (root, rel_session): a repeat task
 * of a session skips the walk from the root and the opening of "private",
 * so that preparing its private directory costs an fstatat (is "private"
 * still the directory cached?), a mkdirat and, with an owner set, an
 * fchownat; removing it a single unlinkat. A session descriptor stays bound
 * to the real directory even if a component of its path is later swapped
 * for a symlink (the directories above a session are not the pool user's);
 * a cached "private" (which lies in the pool user's session directory) is
 * used for a new private directory only while the session's "private"
 * entry is still that directory, else the walk is redone (and a symlink
 * there refused); removal works in the directory the private directory was
 * made in. An entry that stops working (its directory was removed behind
 * our back) is dropped and the walk redone. Two descriptors per entry; the
 * least recently used entry is closed when full. Not thread-safe. The
 * functions below take the cache first; NULL means none (every call walks
 * from the root). */
#define BG_WS_CACHE_MAX 256 /* bygated's size: entries (2 descriptors each) */
struct bg_ws_cache;

/* Creates an empty cache of at most max entries, and at most an eighth of
 * the soft RLIMIT_NOFILE at this time: 0, -EINVAL for max 0, -ENOMEM. */
int bg_ws_cache_new(size_t max, struct bg_ws_cache **out);

/* Closes every descriptor the cache holds and frees it. NULL is a no-op. */
void bg_ws_cache_free(struct bg_ws_cache *c);

/* True when the session rel_session below root is due a write of its state
 * record (its last use): it has a cache entry (a bg_ws_prepare made it)
 * whose last touch is not within the last every_ms milliseconds, or it has
 * no entry (or c is NULL). When true, now_ms is recorded as its last touch.
 * A new entry is always due, so a session new to the cache (a first task,
 * a task after an eviction or after bg_ws_remove_session) is written at
 * once, and a record's last use lags the truth by less than every_ms. */
bool bg_ws_cache_touch(struct bg_ws_cache *c, const char *root,
		       const char *rel_session, int64_t now_ms,
		       int64_t every_ms);

/* Checks every id, then creates (mode 0750 less umask) the session directory
 * and an empty private directory for this execution attempt below `root` (an
 * existing absolute directory, spelt the same way on every call for the
 * cache to hit); a private directory left by an earlier run of the same
 * attempt is emptied. With `lazy`, the private directory itself is not
 * made: its parent "private" is, and a left-over of that name is removed,
 * so that whoever makes it first (the task's own process, as the pool user:
 * bg_child_private_dir_make in child/task.c) makes it empty; bg_ws_remove_private of a private
 * directory never made is then a single failing unlinkat. Nothing is
 * created when an id is refused.
 * Errors: -EINVAL (bad id or root), -ELOOP (a component is a symlink),
 * -ENOTDIR, -ENAMETOOLONG, other -errno; text in err. `out` (16 KiB) is
 * meaningful only on success. */
int bg_ws_prepare(struct bg_ws_cache *c, const char *root,
		  struct bg_str agent_type, struct bg_str user_code,
		  struct bg_str session_id, struct bg_str execution_id,
		  unsigned attempt, bool lazy, struct bg_ws_paths *out,
		  char *err, size_t errlen);

/* Removes p->rel_private below root with everything in it: symlinks inside
 * are unlinked, never followed. 0 if it is already gone. */
int bg_ws_remove_private(struct bg_ws_cache *c, const char *root,
			 const struct bg_ws_paths *p, char *err, size_t errlen);

/* Disk usage of a session directory: the sum of st_blocks * 512 of the
 * directory and everything below it, symlinks counted as themselves, hard
 * links once per name, unreadable subdirectories as their own entry only.
 * rel_session must have the layout's shape ("a/u/sessions/s"). */
int bg_ws_measure(const char *root, const char *rel_session, int64_t *bytes,
		  char *err, size_t errlen);

/* Removes a session directory and everything in it, then removes its
 * parents "sessions", <user> and <agent_type> while they are empty. 0 if it
 * is already gone. The session's cache entry is dropped (its descriptor
 * closed) first, whatever the outcome. */
int bg_ws_remove_session(struct bg_ws_cache *c, const char *root,
			 const char *rel_session, char *err, size_t errlen);

#endif
