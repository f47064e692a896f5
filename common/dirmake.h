/* common/dirmake.h - making a directory below a parent that may have been
 * swapped for a symbolic link by someone who can write beside it. */
#ifndef BG_COMMON_DIRMAKE_H
#define BG_COMMON_DIRMAKE_H

#include <sys/types.h>

/* Makes the last component of `path` (absolute or relative, at least one
 * '/') with `mode`, below its parent directory opened without following a
 * symbolic link in the parent's own last component (O_NOFOLLOW): a parent
 * replaced by a link fails with -ELOOP (or -ENOTDIR) and nothing is made
 * at the link's target. The components above the parent are trusted.
 * 0 when made or already a directory (not a link to one); -EEXIST for
 * anything else already there; -EINVAL for a path without a parent or a
 * name; -errno otherwise. */
int bg_dir_make_below(const char *path, mode_t mode);

#endif
