/* workspace/tree.c - confined directory access below a workspace root:
 * component-by-component opening that never follows a symlink, and an
 * iterative tree walk (removal, measurement) holding one descriptor at a time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workspace/internal.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define PATH_FLAGS (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define CREATE_RETRIES 3 /* a concurrent removal may rmdir what we made */
#define EMPTY_RETRIES 3	 /* a writer may add entries while we remove */

static struct {
	bool set;
	uid_t uid;
	gid_t gid;
	unsigned gen;
} g_owner;

void bg_ws_set_owner(uid_t uid, gid_t gid)
{
	g_owner.set = uid != (uid_t)-1;
	g_owner.uid = uid;
	g_owner.gid = gid;
	g_owner.gen++;
}

unsigned bg_ws_owner_gen(void)
{
	return g_owner.gen;
}

bool bg_ws_owner(uid_t *uid, gid_t *gid)
{
	if (g_owner.set) {
		*uid = g_owner.uid;
		*gid = g_owner.gid;
	}
	return g_owner.set;
}

int bg_ws_fix_dir(int fd, bool owned)
{
	if (!g_owner.set)
		return 0;
	if (owned && fchown(fd, g_owner.uid, g_owner.gid) == -1)
		return -errno;
	return fchmod(fd, owned ? 0700 : 0711) == -1 ? -errno : 0;
}

/* A directory just made by mkdirat: its owner and mode (umask aside).
 * Opened without following a symlink: a name swapped meanwhile in a
 * directory the owner may write is refused, never followed. */
static int fix_created(int dirfd, const char *name, bool owned)
{
	if (!g_owner.set)
		return 0;
	int fd = openat(dirfd, name, DIR_FLAGS);
	if (fd == -1)
		return -errno;
	int rc = bg_ws_fix_dir(fd, owned);
	close(fd);
	return rc;
}

/* Why dirfd/name could not be opened as a directory: -ELOOP for a symlink,
 * -ENOTDIR for anything else that is no directory, else `rc`. */
static int classify_open_error(int dirfd, const char *name, int rc)
{
	struct stat st;

	if (rc != -ELOOP && rc != -ENOTDIR)
		return rc;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return -ELOOP;
	return -ENOTDIR;
}

static int open_failed(int dirfd, const char *name, const char *what, int rc,
		       const char *shown, size_t len, char *err, size_t errlen)
{
	char q[PATH_MAX / 16];

	bg_ws_quote(q, sizeof(q), shown, len);
	if (rc == -ELOOP || rc == -ENOTDIR)
		rc = classify_open_error(dirfd, name, rc);
	if (rc == -ELOOP)
		bg_ws_errf(err, errlen,
			   "workspace path %s is a symbolic link; "
			   "refusing to follow it",
			   q);
	else if (rc == -ENOTDIR)
		bg_ws_errf(err, errlen,
			   "workspace path %s exists and is not a "
			   "directory",
			   q);
	else
		bg_ws_errf(err, errlen, "%s(%s) failed: %s", what, q,
			   strerror(-rc));
	return rc;
}

/* Tries the open first and creates only what is missing, so that the usual
 * case (everything exists) costs one openat per component. */
int bg_ws_open_at(int dirfd, const char *name, unsigned how, int *fd,
		  const char *shown, size_t len, char *err, size_t errlen)
{
	int flags = how & BG_WS_READABLE ? DIR_FLAGS : PATH_FLAGS;

	for (int tries = 0;; tries++) {
		*fd = openat(dirfd, name, flags);
		if (*fd != -1)
			return 0;
		int rc = -errno;
		if (rc != -ENOENT || !(how & BG_WS_CREATE) ||
		    tries == CREATE_RETRIES)
			return open_failed(dirfd, name, "openat", rc, shown,
					   len, err, errlen);
		bool owned = how & BG_WS_OWNED;
		if (mkdirat(dirfd, name, g_owner.set ? 0700 : 0750) == -1) {
			if (errno != EEXIST)
				return open_failed(dirfd, name, "mkdirat",
						   -errno, shown, len, err,
						   errlen);
		} else if ((rc = fix_created(dirfd, name, owned)) != 0) {
			return open_failed(dirfd, name, "fchown/fchmod", rc,
					   shown, len, err, errlen);
		}
	}
}

int bg_ws_open_rel(int dirfd, const char *rel, size_t len, unsigned how,
		   int *fd, char *err, size_t errlen)
{
	char name[NAME_MAX + 1];
	int cur = dirfd;

	if (len == 0) {
		*fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
		return *fd == -1 ? -errno : 0;
	}
	for (size_t i = 0, j;; i = j + 1) {
		for (j = i; j < len && rel[j] != '/'; j++)
			;
		size_t n = j - i;
		if (n == 0 || n > NAME_MAX ||
		    (n <= 2 && memcmp(rel + i, "..", n) == 0)) {
			char q[PATH_MAX / 16];
			bg_ws_quote(q, sizeof(q), rel, len);
			bg_ws_errf(err, errlen,
				   "workspace path %s is not a plain relative "
				   "path",
				   q);
			if (cur != dirfd)
				close(cur);
			return -EINVAL;
		}
		memcpy(name, rel + i, n);
		name[n] = '\0';
		int next,
			rc = bg_ws_open_at(cur, name,
					   j == len ? how : how & BG_WS_CREATE,
					   &next, rel, j, err, errlen);
		if (cur != dirfd)
			close(cur);
		if (rc)
			return rc;
		cur = next;
		if (j == len)
			break;
	}
	*fd = cur;
	return 0;
}

/* ---- tree walk ---- */

/* One directory on the path from the walk's top to where it is. Names to
 * descend into live in walk.names: a level's list is the tail it appended. */
struct level {
	size_t names; /* offset of this level's first name */
	size_t next;  /* offset of the next name to descend into */
	size_t cur;   /* offset of the name descended into last */
	dev_t dev;
	ino_t ino;
};

struct walk {
	/* Called for every entry of a directory being walked; > 0 descends
	 * into it (directories only), < 0 stops the walk. */
	int (*visit)(struct walk *w, int dirfd, const char *name,
		     const struct stat *st);
	/* Called in the parent once a descended directory is walked. */
	int (*leave)(struct walk *w, int dirfd, const char *name);
	bool lenient;	 /* skip unreadable dirs and mount points (measure) */
	bool incomplete; /* removal: a subdirectory was not empty */
	int64_t bytes;	 /* measurement */
	const char *rel; /* the top directory, for error texts */
	char *err;
	size_t errlen;
	struct bg_buf names;
	struct level *lv;
	size_t depth, cap;
};

/* Quotes the path of the entry `name` of the directory the walk is in ("."
 * for that directory itself), for error texts. */
static void walk_path(struct walk *w, const char *name, char *q, size_t qlen)
{
	struct bg_buf path = { 0 };

	int e = bg_buf_puts(&path, w->rel);
	for (size_t i = 0; e == 0 && i + 1 < w->depth; i++)
		e = bg_buf_printf(&path, "/%s", w->names.p + w->lv[i].cur);
	if (e == 0 && strcmp(name, ".") != 0)
		e = bg_buf_printf(&path, "/%s", name);
	if (e == 0)
		bg_ws_quote(q, qlen, path.p, path.len);
	else
		bg_ws_quote(q, qlen, w->rel, strlen(w->rel));
	bg_buf_free(&path);
}

/* Formats "<what>(<path of name>) failed: <strerror>" and returns rc. */
static int walk_fail(struct walk *w, const char *name, const char *what, int rc)
{
	char q[PATH_MAX / 8];

	if (w->err == NULL || w->errlen == 0)
		return rc;
	walk_path(w, name, q, sizeof(q));
	bg_ws_errf(w->err, w->errlen, "%s(%s) failed: %s", what, q,
		   strerror(-rc));
	return rc;
}

static int push_level(struct walk *w, const struct stat *st)
{
	if (w->depth == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct level *lv = realloc(w->lv, cap * sizeof(*lv));
		if (lv == NULL)
			return -ENOMEM;
		w->lv = lv, w->cap = cap;
	}
	w->lv[w->depth++] = (struct level){ .names = w->names.len,
					    .next = w->names.len,
					    .cur = 0,
					    .dev = st->st_dev,
					    .ino = st->st_ino };
	return 0;
}

/* Visits every entry of fd and records those to descend into. */
static int list_level(struct walk *w, int fd)
{
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dfd == -1 ? NULL : fdopendir(dfd);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		rc = -errno;
		if (dfd != -1)
			close(dfd);
		return walk_fail(w, ".", "opendir", rc);
	}
	rewinddir(d);
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		const char *n = de->d_name;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT && !(errno == EACCES && w->lenient))
				rc = walk_fail(w, n, "fstatat", -errno);
			continue;
		}
		rc = w->visit(w, fd, n, &st);
		if (rc > 0)
			rc = S_ISDIR(st.st_mode) ? bg_buf_append(&w->names, n,
								 strlen(n) + 1)
						 : 0;
	}
	if (rc == 0 && errno != 0)
		rc = walk_fail(w, ".", "readdir", -errno);
	closedir(d);
	return rc;
}

/* Moves *fd into its subdirectory `name`. A name that vanished or stopped
 * being a directory since it was listed is skipped. */
static int descend(struct walk *w, int *fd, const char *name)
{
	int cfd = openat(*fd, name, DIR_FLAGS);

	if (cfd == -1) {
		int e = errno;
		if (e == ELOOP || e == ENOTDIR)
			w->incomplete =
				true; /* replaced: a later pass sees it */
		if (e == ENOENT || e == ELOOP || e == ENOTDIR ||
		    (e == EACCES && w->lenient))
			return 0;
		return walk_fail(w, name, "openat", -e);
	}
	struct stat st;
	int rc = fstat(cfd, &st) == -1 ? -errno : 0;
	if (rc == 0 && st.st_dev != w->lv[0].dev) {
		char q[PATH_MAX / 8];
		close(cfd);
		if (w->lenient)
			return 0;
		walk_path(w, name, q, sizeof(q));
		bg_ws_errf(w->err, w->errlen,
			   "%s is on another file system "
			   "(a mount point); not walking into it",
			   q);
		return -EXDEV;
	}
	if (rc == 0)
		rc = push_level(w, &st);
	if (rc) {
		close(cfd);
		return walk_fail(w, name, "fstat", rc);
	}
	close(*fd);
	*fd = cfd;
	return list_level(w, cfd);
}

/* Moves *fd back to its parent, refusing a parent other than the one it came
 * from (the directory was moved meanwhile), then calls leave. */
static int ascend(struct walk *w, int *fd)
{
	struct level *up = &w->lv[w->depth - 2];
	int pfd = openat(*fd, "..", DIR_FLAGS);
	struct stat st;

	if (pfd == -1)
		return walk_fail(w, "..", "openat", -errno);
	if (fstat(pfd, &st) == -1 || st.st_dev != up->dev ||
	    st.st_ino != up->ino) {
		char q[PATH_MAX / 8];
		close(pfd);
		walk_path(w, ".", q, sizeof(q));
		bg_ws_errf(w->err, w->errlen,
			   "%s was moved during the walk; stopping", q);
		return -ESTALE;
	}
	close(*fd);
	*fd = pfd;
	w->names.len = w->lv[w->depth - 1].names;
	w->depth--;
	return w->leave ? w->leave(w, pfd, w->names.p + up->cur) : 0;
}

/* Walks everything below the open directory top. */
static int walk_run(struct walk *w, int top)
{
	int fd = fcntl(top, F_DUPFD_CLOEXEC, 0);
	struct stat st;
	int rc;

	if (fd == -1)
		return walk_fail(w, ".", "fcntl", -errno);
	rc = fstat(fd, &st) == -1 ? -errno : push_level(w, &st);
	rc = rc ? walk_fail(w, ".", "fstat", rc) : list_level(w, fd);
	while (rc == 0) {
		struct level *l = &w->lv[w->depth - 1];
		if (l->next < w->names.len) {
			const char *name = w->names.p + l->next;
			l->cur = l->next;
			l->next += strlen(name) + 1;
			rc = descend(w, &fd, name);
		} else if (w->depth > 1) {
			rc = ascend(w, &fd);
		} else {
			break;
		}
	}
	close(fd);
	bg_buf_free(&w->names);
	free(w->lv);
	w->lv = NULL, w->depth = w->cap = 0;
	return rc;
}

/* ---- removal ---- */

/* Gives a directory we own u+rwx so that its entries can be listed and
 * removed; never follows a symlink. Failures show up in the next call. */
static void make_removable(int dirfd, const char *name, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) && st->st_uid == geteuid() &&
	    (st->st_mode & 0700) != 0700)
		(void)fchmodat(dirfd, name, 0700, AT_SYMLINK_NOFOLLOW);
}

static int rm_visit(struct walk *w, int dirfd, const char *name,
		    const struct stat *st)
{
	if (S_ISDIR(st->st_mode)) {
		make_removable(dirfd, name, st);
		return 1;
	}
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		return walk_fail(w, name, "unlinkat", -errno);
	return 0;
}

static int rm_leave(struct walk *w, int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST) {
		w->incomplete = true;
		return 0;
	}
	return walk_fail(w, name, "rmdir", -errno);
}

int bg_ws_tree_empty(int fd, const char *rel, char *err, size_t errlen)
{
	struct walk w = { .visit = rm_visit,
			  .leave = rm_leave,
			  .rel = rel,
			  .err = err,
			  .errlen = errlen };
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 0700) != 0700)
		(void)fchmod(fd, 0700);
	for (int tries = 0; tries < EMPTY_RETRIES; tries++) {
		w.incomplete = false;
		int rc = walk_run(&w, fd);
		if (rc || !w.incomplete)
			return rc;
	}
	char q[PATH_MAX / 8];
	bg_ws_quote(q, sizeof(q), rel, strlen(rel));
	bg_ws_errf(
		err, errlen,
		"%s is still not empty after %d removal passes; is a process "
		"still writing into it?",
		q, EMPTY_RETRIES);
	return -ENOTEMPTY;
}

int bg_ws_tree_remove(int dirfd, const char *name, const char *rel, char *err,
		      size_t errlen)
{
	struct walk w = { .rel = rel, .err = err, .errlen = errlen };
	struct stat st;
	int fd, rc;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0
				       : walk_fail(&w, ".", "fstatat", -errno);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
			return walk_fail(&w, ".", "unlinkat", -errno);
		return 0;
	}
	make_removable(dirfd, name, &st);
	fd = openat(dirfd, name, DIR_FLAGS);
	if (fd == -1)
		return errno == ENOENT ? 0
				       : walk_fail(&w, ".", "openat", -errno);
	rc = bg_ws_tree_empty(fd, rel, err, errlen);
	close(fd);
	if (rc)
		return rc;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		return walk_fail(&w, ".", "rmdir", -errno);
	return 0;
}

/* ---- measurement ---- */

static int measure_visit(struct walk *w, int dirfd, const char *name,
			 const struct stat *st)
{
	(void)dirfd, (void)name;
	w->bytes += (int64_t)st->st_blocks * 512;
	return S_ISDIR(st->st_mode) ? 1 : 0;
}

int bg_ws_tree_measure(int fd, const char *rel, int64_t *bytes, char *err,
		       size_t errlen)
{
	struct walk w = { .visit = measure_visit,
			  .lenient = true,
			  .rel = rel,
			  .err = err,
			  .errlen = errlen };
	struct stat st;

	if (fstat(fd, &st) == -1)
		return walk_fail(&w, ".", "fstat", -errno);
	w.bytes = (int64_t)st.st_blocks * 512;
	int rc = walk_run(&w, fd);
	if (rc == 0)
		*bytes += w.bytes;
	return rc;
}
