/* workspace/workspace.c - the session and private directory layout: prepare
 * before a task, remove the private directory after it, measure and remove
 * idle sessions. All access is confined below the root (workspace/tree.c). */
#include "workspace/workspace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workspace/internal.h"

#define PREPARE_RETRIES 3 /* a concurrent prune may remove a fresh parent */

static const char *const session_shape[] = { NULL, NULL, "sessions", NULL };
static const char *const private_shape[] = { NULL, NULL,      "sessions",
					     NULL, "private", NULL };
#define SESSION_SHAPE "<agent_type>/<user_code>/sessions/<session_id>"
#define PRIVATE_SHAPE SESSION_SHAPE "/private/<execution_id>.<attempt>"

static int check_root(const char *root, char *err, size_t errlen)
{
	char q[PATH_MAX / 8];

	if (root != NULL && root[0] == '/')
		return 0;
	bg_ws_quote(q, sizeof(q), root ? root : "", root ? strlen(root) : 0);
	bg_ws_errf(err, errlen, "workspace root %s is not an absolute path", q);
	return -EINVAL;
}

static int open_root(const char *root, int *fd, char *err, size_t errlen)
{
	char q[PATH_MAX / 8];
	int rc = check_root(root, err, errlen);

	if (rc)
		return rc;
	*fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd != -1)
		return 0;
	rc = -errno;
	bg_ws_quote(q, sizeof(q), root, strlen(root));
	bg_ws_errf(err, errlen, "open(%s) of the workspace root failed: %s", q,
		   strerror(-rc));
	return rc;
}

/* 0 if rel has the layout's shape: one valid name per NULL of `shape`, the
 * literal where shape has one. */
static int check_rel(const char *rel, const char *const *shape, size_t n,
		     const char *desc, char *err, size_t errlen)
{
	const char *p = rel;
	size_t k = 0;

	while (p != NULL && k < n) {
		const char *slash = strchr(p, '/');
		struct bg_str c = { p,
				    slash ? (size_t)(slash - p) : strlen(p) };
		if (shape[k] ? !bg_str_eq(c, shape[k])
			     : bg_ws_check_name(c, "", NAME_MAX, NULL, 0) != 0)
			break;
		k++;
		p = slash ? slash + 1 : NULL;
	}
	if (k == n && p == NULL)
		return 0;
	char q[PATH_MAX / 8];
	bg_ws_quote(q, sizeof(q), rel ? rel : "", rel ? strlen(rel) : 0);
	bg_ws_errf(err, errlen, "workspace path %s does not have the shape %s",
		   q, desc);
	return -EINVAL;
}

/* Index of the last '/' in s[0..len), 0 if none (components are never
 * empty, so no '/' is at index 0). */
static size_t last_slash(const char *s, size_t len)
{
	while (len > 0 && s[--len] != '/')
		;
	return len;
}

/* A path being built in a fixed buffer: fill_paths runs for every task,
 * and vsnprintf costs several times these copies. */
struct pathw {
	char *p;
	size_t len, cap;
	bool over; /* something did not fit */
};

static void put(struct pathw *w, const char *s, size_t n)
{
	if (w->over || n >= w->cap - w->len) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

static void put_str(struct pathw *w, struct bg_str s)
{
	put(w, s.p, s.len);
}

#define PUT_LIT(w, lit) put(w, lit, sizeof(lit) - 1)

/* Length of root without its trailing slashes. */
static size_t root_len(const char *root)
{
	size_t rl = strlen(root);

	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	return rl;
}

static int fill_paths(const char *root, struct bg_str agent, struct bg_str user,
		      struct bg_str session, struct bg_str private_name,
		      struct bg_ws_paths *out)
{
	struct bg_str r = { root, root_len(root) };
	struct pathw rs = { out->rel_session, 0, sizeof(out->rel_session),
			    false };
	struct pathw rp = { out->rel_private, 0, sizeof(out->rel_private),
			    false };
	struct pathw as = { out->session, 0, sizeof(out->session), false };
	struct pathw ap = { out->private_dir, 0, sizeof(out->private_dir),
			    false };

	put_str(&rs, agent);
	PUT_LIT(&rs, "/");
	put_str(&rs, user);
	PUT_LIT(&rs, "/sessions/");
	put_str(&rs, session);
	put(&rp, rs.p, rs.len);
	PUT_LIT(&rp, "/private/");
	put_str(&rp, private_name);
	put_str(&as, r);
	PUT_LIT(&as, "/");
	put(&as, rs.p, rs.len);
	put_str(&ap, r);
	PUT_LIT(&ap, "/");
	put(&ap, rp.p, rp.len);
	return rs.over || rp.over || as.over || ap.over ? -ENAMETOOLONG : 0;
}

static int check_ids(struct bg_str agent_type, struct bg_str user_code,
		     struct bg_str session_id, struct bg_str execution_id,
		     char *err, size_t errlen)
{
	int rc = bg_ws_check_id(agent_type, "agent_type", false, err, errlen);
	if (rc == 0)
		rc = bg_ws_check_id(user_code, "user_code", true, err, errlen);
	if (rc == 0)
		rc = bg_ws_check_id(session_id, "session_id", false, err,
				    errlen);
	if (rc == 0)
		rc = bg_ws_check_id(execution_id, "execution_id", false, err,
				    errlen);
	return rc;
}

static struct bg_ws_key session_key(const char *root, const char *rel,
				    size_t rellen)
{
	return (struct bg_ws_key){ .root = root,
				   .rootlen = root_len(root),
				   .rel = rel,
				   .rellen = rellen };
}

/* A session directory made before an owner was set (or by hand) is given
 * to the owner (bg_ws_set_owner); sfd may be O_PATH. */
static int own_session(int sfd, const char *rel, size_t len, char *err,
		       size_t errlen)
{
	uid_t uid;
	gid_t gid;
	struct stat st;

	if (!bg_ws_owner(&uid, &gid) || fstat(sfd, &st) == -1 ||
	    (st.st_uid == uid && st.st_gid == gid))
		return 0;
	if (fchownat(sfd, "", uid, gid, AT_EMPTY_PATH) == 0)
		return 0;
	int rc = -errno;
	char q[PATH_MAX / 8];
	bg_ws_quote(q, sizeof(q), rel, len);
	bg_ws_errf(err, errlen, "fchownat(%s) to the pool user failed: %s", q,
		   strerror(-rc));
	return rc;
}

/* Opens the session directory k->rel below rootfd by a confined walk and
 * its "private" directory (O_PATH, O_NOFOLLOW), creating what is missing
 * (the owner's) and giving the session to the owner when `create`. rel
 * names "private" in error texts (k->rel + "/private"). */
static int open_dirs(int rootfd, const struct bg_ws_key *k, bool create,
		     const char *rel, struct bg_ws_dirs *d, char *err,
		     size_t errlen)
{
	unsigned how = create ? BG_WS_CREATE | BG_WS_OWNED : 0;
	struct stat st;
	int rc;

	*d = (struct bg_ws_dirs){ .session = -1,
				  .priv = -1,
				  .touched_ms = INT64_MIN,
				  .owner_gen = bg_ws_owner_gen() };
	rc = bg_ws_open_rel(rootfd, k->rel, k->rellen, how, &d->session, err,
			    errlen);
	if (rc)
		return rc;
	if (create)
		rc = own_session(d->session, k->rel, k->rellen, err, errlen);
	if (rc == 0)
		rc = bg_ws_open_at(d->session, "private", how, &d->priv, rel,
				   k->rellen + strlen("/private"), err, errlen);
	if (rc == 0 && fstat(d->priv, &st) == -1)
		rc = -errno;
	if (rc) {
		close(d->session);
		if (d->priv != -1)
			close(d->priv);
		return rc;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	return 0;
}

/* Runs op(dirs, fresh, arg, ...) on the directories of the session k->rel
 * below root: the cached ones (fresh false) if op succeeds there (its
 * errors are not reported: the entry is dropped and everything redone),
 * else ones opened by open_dirs (fresh true), creating missing directories
 * when `create` (and retrying a walk that a concurrent prune made fail with
 * -ENOENT). Those are cached when op succeeds. */
static int in_session(struct bg_ws_cache *c, const char *root,
		      const struct bg_ws_key *k, bool create, const char *rel,
		      int (*op)(const struct bg_ws_dirs *d, bool fresh,
				const void *arg, char *err, size_t errlen),
		      const void *arg, char *err, size_t errlen)
{
	struct bg_ws_dirs *cached, d;
	int rootfd, rc;

	if (c != NULL && (cached = bg_ws_cache_find(c, k)) != NULL) {
		if (op(cached, false, arg, NULL, 0) == 0)
			return 0;
		bg_ws_cache_drop(c, k);
	}
	rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	for (int tries = 0;; tries++) {
		rc = open_dirs(rootfd, k, create, rel, &d, err, errlen);
		if (rc == 0) {
			rc = op(&d, true, arg, err, errlen);
			if (rc == 0 && c != NULL) {
				bg_ws_cache_put(c, k, &d);
			} else {
				close(d.session);
				close(d.priv);
			}
		}
		if (rc != -ENOENT || !create || tries == PREPARE_RETRIES)
			break;
	}
	close(rootfd);
	return rc;
}

/* A private directory: rel is its rel_private, rel[slash] the '/' before
 * its name, rel[0..slash) the "private" directory; lazy: bg_ws_prepare's. */
struct private_dir {
	const char *rel;
	size_t slash;
	bool lazy;
};

/* 0 if the session's "private" entry is still the directory d->priv was
 * opened on, else -ESTALE: it was removed, renamed or swapped (for a
 * symlink, say) since, and a new private directory must not be made in the
 * old one. One fstatat instead of an openat and a close per task. */
static int private_is_current(const struct bg_ws_dirs *d)
{
	struct stat st;

	if (fstatat(d->session, "private", &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	return S_ISDIR(st.st_mode) && st.st_ino == d->ino && st.st_dev == d->dev
		       ? 0
		       : -ESTALE;
}

/* Creates d->priv/<name> empty (the owner's, bg_ws_set_owner): a single
 * mkdirat when it is new, else the left-over is opened with O_NOFOLLOW and
 * emptied; when lazy, only removes a left-over. A cached d is checked
 * first (private_is_current). */
static int make_private(const struct bg_ws_dirs *d, bool fresh, const void *arg,
			char *err, size_t errlen)
{
	const struct private_dir *a = arg;
	const char *name = a->rel + a->slash + 1;
	int fd, rc;
	uid_t uid;
	gid_t gid;
	bool owned = bg_ws_owner(&uid, &gid);

	if (!fresh && d->owner_gen != bg_ws_owner_gen())
		return -ESTALE; /* redone: own_session for the new owner */
	if (!fresh && (rc = private_is_current(d)) != 0)
		return rc;
	if (a->lazy) { /* only a left-over removed: usually one ENOENT */
		if (unlinkat(d->priv, name, AT_REMOVEDIR) == 0 ||
		    errno == ENOENT)
			return 0;
		return bg_ws_tree_remove(d->priv, name, a->rel, err, errlen);
	}
	if (mkdirat(d->priv, name, owned ? 0700 : 0750) == 0) {
		/* Not following a name the owner swapped for a symlink. */
		if (owned && fchownat(d->priv, name, uid, gid,
				      AT_SYMLINK_NOFOLLOW) == -1) {
			rc = -errno;
			bg_ws_errf(err, errlen, "fchownat(%s) failed: %s",
				   a->rel, strerror(-rc));
			return rc;
		}
		return 0;
	}
	rc = bg_ws_open_at(d->priv, name,
			   BG_WS_CREATE | BG_WS_READABLE | BG_WS_OWNED, &fd,
			   a->rel, strlen(a->rel), err, errlen);
	if (rc == 0) {
		rc = bg_ws_tree_empty(fd, a->rel, err, errlen);
		if (rc == 0)
			rc = bg_ws_fix_dir(fd, true);
		close(fd);
	}
	return rc;
}

/* Removes d->priv/<name>: a single rmdir when the handler left it empty,
 * else the confined walk (which also unlinks a planted symlink). Done in
 * the directory it was made in, even if "private" was renamed since: the
 * name is only ever unlinked there, nothing is followed. */
static int remove_private(const struct bg_ws_dirs *d, bool fresh,
			  const void *arg, char *err, size_t errlen)
{
	const struct private_dir *a = arg;
	const char *name = a->rel + a->slash + 1;

	(void)fresh;
	if (unlinkat(d->priv, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	return bg_ws_tree_remove(d->priv, name, a->rel, err, errlen);
}

bool bg_ws_cache_touch(struct bg_ws_cache *c, const char *root,
		       const char *rel_session, int64_t now_ms,
		       int64_t every_ms)
{
	struct bg_ws_dirs *d;

	if (c == NULL || root == NULL || rel_session == NULL)
		return true;
	struct bg_ws_key k =
		session_key(root, rel_session, strlen(rel_session));
	if ((d = bg_ws_cache_find(c, &k)) == NULL)
		return true;
	if (d->touched_ms != INT64_MIN && now_ms >= d->touched_ms &&
	    now_ms - d->touched_ms < every_ms)
		return false;
	d->touched_ms = now_ms;
	return true;
}

int bg_ws_prepare(struct bg_ws_cache *c, const char *root,
		  struct bg_str agent_type, struct bg_str user_code,
		  struct bg_str session_id, struct bg_str execution_id,
		  unsigned attempt, bool lazy, struct bg_ws_paths *out,
		  char *err, size_t errlen)
{
	struct bg_str user = user_code.len ? user_code
					   : BG_STR_LIT(BG_WS_NO_USER);
	char name[BG_WS_ID_MAX + 16];
	int rc;

	rc = check_ids(agent_type, user_code, session_id, execution_id, err,
		       errlen);
	if (rc == 0)
		rc = check_root(root, err, errlen);
	if (rc)
		return rc;
	/* "<execution_id>.<attempt>" (the id is at most BG_WS_ID_MAX) */
	char digits[16];
	size_t nd = 0;
	do
		digits[nd++] = (char)('0' + attempt % 10);
	while ((attempt /= 10) != 0);
	struct pathw nw = { name, 0, sizeof(name), false };
	put_str(&nw, execution_id);
	PUT_LIT(&nw, ".");
	while (nd > 0)
		put(&nw, &digits[--nd], 1);
	if (fill_paths(root, agent_type, user, session_id,
		       (struct bg_str){ name, nw.len }, out) != 0) {
		bg_ws_errf(err, errlen,
			   "workspace path below root \"%.64s\" "
			   "is longer than PATH_MAX",
			   root);
		return -ENAMETOOLONG;
	}
	size_t len = strlen(out->rel_private);
	struct private_dir a = { out->rel_private, len - nw.len - 1, lazy };
	struct bg_ws_key k =
		session_key(root, out->rel_session, strlen(out->rel_session));
	return in_session(c, root, &k, true, out->rel_private, make_private, &a,
			  err, errlen);
}

int bg_ws_remove_private(struct bg_ws_cache *c, const char *root,
			 const struct bg_ws_paths *p, char *err, size_t errlen)
{
	int rc = check_rel(p ? p->rel_private : NULL, private_shape, 6,
			   PRIVATE_SHAPE, err, errlen);
	if (rc == 0)
		rc = check_root(root, err, errlen);
	if (rc)
		return rc;
	const char *rel = p->rel_private;
	size_t slash = last_slash(rel, strlen(rel));
	struct private_dir a = { rel, slash, false };
	struct bg_ws_key k = session_key(root, rel, last_slash(rel, slash));
	rc = in_session(c, root, &k, false, rel, remove_private, &a, err,
			errlen);
	return rc == -ENOENT ? 0 : rc; /* already gone */
}

int bg_ws_measure(const char *root, const char *rel_session, int64_t *bytes,
		  char *err, size_t errlen)
{
	int rootfd, fd, rc;

	*bytes = 0;
	rc = check_rel(rel_session, session_shape, 4, SESSION_SHAPE, err,
		       errlen);
	if (rc == 0)
		rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	rc = bg_ws_open_rel(rootfd, rel_session, strlen(rel_session),
			    BG_WS_READABLE, &fd, err, errlen);
	if (rc == 0) {
		rc = bg_ws_tree_measure(fd, rel_session, bytes, err, errlen);
		close(fd);
	}
	close(rootfd);
	return rc;
}

/* rmdir of rel[0..len) below rootfd: 0, -ENOTEMPTY/-EEXIST while it has
 * entries, -ENOENT if absent, other -errno with a text. */
static int rmdir_rel(int rootfd, const char *rel, size_t len, char *err,
		     size_t errlen)
{
	size_t slash = last_slash(rel, len);
	size_t start = slash ? slash + 1 : 0;
	char name[NAME_MAX + 1];
	int pfd, rc;

	if (len - start > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(name, rel + start, len - start);
	name[len - start] = '\0';
	rc = bg_ws_open_rel(rootfd, rel, slash, 0, &pfd, err, errlen);
	if (rc)
		return rc;
	rc = unlinkat(pfd, name, AT_REMOVEDIR) == -1 ? -errno : 0;
	close(pfd);
	if (rc && rc != -ENOTEMPTY && rc != -EEXIST && rc != -ENOENT) {
		char q[PATH_MAX / 8];
		bg_ws_quote(q, sizeof(q), rel, len);
		bg_ws_errf(err, errlen, "rmdir(%s) failed: %s", q,
			   strerror(-rc));
	}
	return rc;
}

int bg_ws_remove_session(struct bg_ws_cache *c, const char *root,
			 const char *rel_session, char *err, size_t errlen)
{
	int rootfd, pfd, rc;

	rc = check_rel(rel_session, session_shape, 4, SESSION_SHAPE, err,
		       errlen);
	if (rc == 0 && c != NULL && root != NULL) {
		struct bg_ws_key k =
			session_key(root, rel_session, strlen(rel_session));
		bg_ws_cache_drop(c, &k);
	}
	if (rc == 0)
		rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	size_t end = last_slash(rel_session, strlen(rel_session));
	rc = bg_ws_open_rel(rootfd, rel_session, end, 0, &pfd, err, errlen);
	if (rc == 0) {
		rc = bg_ws_tree_remove(pfd, rel_session + end + 1, rel_session,
				       err, errlen);
		close(pfd);
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	/* prune "sessions", <user>, <agent_type> while empty */
	for (; rc == 0 && end > 0; end = last_slash(rel_session, end)) {
		rc = rmdir_rel(rootfd, rel_session, end, err, errlen);
		if (rc == -ENOTEMPTY || rc == -EEXIST)
			rc = 0, end = 0;
		else if (rc == -ENOENT)
			rc = 0;
	}
	close(rootfd);
	return rc;
}
