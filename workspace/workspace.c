/* workspace/workspace.c - the session and private directory layout: prepare
 * before a task, remove the private directory after it, measure and remove
 * idle sessions. All access is confined below the root (workspace/tree.c). */
#include "workspace/workspace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "workspace/internal.h"

#define PREPARE_RETRIES 3 /* a concurrent prune may remove a fresh parent */

static const char *const session_shape[] = { NULL, NULL, "sessions", NULL };
static const char *const private_shape[] = { NULL, NULL,      "sessions",
					     NULL, "private", NULL };
#define SESSION_SHAPE "<agent_type>/<user_code>/sessions/<session_id>"
#define PRIVATE_SHAPE SESSION_SHAPE "/private/<execution_id>.<attempt>"

static int open_root(const char *root, int *fd, char *err, size_t errlen)
{
	char q[PATH_MAX / 8];

	bg_ws_quote(q, sizeof(q), root ? root : "", root ? strlen(root) : 0);
	if (root == NULL || root[0] != '/') {
		bg_ws_errf(err, errlen,
			   "workspace root %s is not an absolute path", q);
		return -EINVAL;
	}
	*fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd == -1) {
		int rc = -errno;
		bg_ws_errf(err, errlen, "open(%s) of the workspace root "
			   "failed: %s", q, strerror(-rc));
		return rc;
	}
	return 0;
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
		struct bg_str c = { p, slash ? (size_t)(slash - p) : strlen(p) };
		if (shape[k] ? !bg_str_eq(c, shape[k]) :
			       bg_ws_check_name(c, "", NAME_MAX, NULL, 0) != 0)
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

/* snprintf that reports truncation as -ENAMETOOLONG. */
__attribute__((format(printf, 3, 4))) static int
path_printf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int fill_paths(const char *root, struct bg_str agent, struct bg_str user,
		      struct bg_str session, const char *private_name,
		      struct bg_ws_paths *out)
{
	size_t rl = strlen(root);
	int rc;

	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	rc = path_printf(out->rel_session, sizeof(out->rel_session),
			 "%.*s/%.*s/sessions/%.*s", (int)agent.len, agent.p,
			 (int)user.len, user.p, (int)session.len, session.p);
	if (rc == 0)
		rc = path_printf(out->rel_private, sizeof(out->rel_private),
				 "%s/private/%s", out->rel_session,
				 private_name);
	if (rc == 0)
		rc = path_printf(out->session, sizeof(out->session), "%.*s/%s",
				 (int)rl, root, out->rel_session);
	if (rc == 0)
		rc = path_printf(out->private_dir, sizeof(out->private_dir),
				 "%.*s/%s", (int)rl, root, out->rel_private);
	return rc;
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

int bg_ws_prepare(const char *root, struct bg_str agent_type,
		  struct bg_str user_code, struct bg_str session_id,
		  struct bg_str execution_id, unsigned attempt,
		  struct bg_ws_paths *out, char *err, size_t errlen)
{
	struct bg_str user = user_code.len ? user_code :
					     BG_STR_LIT(BG_WS_NO_USER);
	char name[BG_WS_ID_MAX + 16];
	int rootfd, fd, rc;

	rc = check_ids(agent_type, user_code, session_id, execution_id, err,
		       errlen);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%.*s.%u", (int)execution_id.len,
		 execution_id.p, attempt);
	rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	rc = fill_paths(root, agent_type, user, session_id, name, out);
	if (rc)
		bg_ws_errf(err, errlen, "workspace path below root \"%.64s\" "
			   "is longer than PATH_MAX", root);
	for (int tries = 0; rc == 0; tries++) {
		rc = bg_ws_open_rel(rootfd, out->rel_private,
				    strlen(out->rel_private), true, &fd, err,
				    errlen);
		if (rc != -ENOENT || tries == PREPARE_RETRIES)
			break;
		rc = 0;
	}
	if (rc == 0) {
		rc = bg_ws_tree_empty(fd, out->rel_private, err, errlen);
		close(fd);
	}
	close(rootfd);
	return rc;
}

int bg_ws_remove_private(const char *root, const struct bg_ws_paths *p,
			 char *err, size_t errlen)
{
	int rootfd, pfd, rc;

	rc = check_rel(p ? p->rel_private : NULL, private_shape, 6,
		       PRIVATE_SHAPE, err, errlen);
	if (rc == 0)
		rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	const char *rel = p->rel_private;
	size_t slash = last_slash(rel, strlen(rel));
	rc = bg_ws_open_rel(rootfd, rel, slash, false, &pfd, err, errlen);
	if (rc == 0) {
		rc = bg_ws_tree_remove(pfd, rel + slash + 1, rel, err, errlen);
		close(pfd);
	} else if (rc == -ENOENT) {
		rc = 0; /* already gone */
	}
	close(rootfd);
	return rc;
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
	rc = bg_ws_open_rel(rootfd, rel_session, strlen(rel_session), false,
			    &fd, err, errlen);
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
	rc = bg_ws_open_rel(rootfd, rel, slash, false, &pfd, err, errlen);
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

int bg_ws_remove_session(const char *root, const char *rel_session,
			 char *err, size_t errlen)
{
	int rootfd, pfd, rc;

	rc = check_rel(rel_session, session_shape, 4, SESSION_SHAPE, err,
		       errlen);
	if (rc == 0)
		rc = open_root(root, &rootfd, err, errlen);
	if (rc)
		return rc;
	size_t end = last_slash(rel_session, strlen(rel_session));
	rc = bg_ws_open_rel(rootfd, rel_session, end, false, &pfd, err,
			    errlen);
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
