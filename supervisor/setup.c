/* supervisor/setup.c - what bygated makes sure of before it runs: the
 * directories it creates and secures for the pool user, where the child
 * binary is, the state-directory lock, and the LMDB state. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/pool.h"
#include "supervisor/setup.h"
#include "supervisor/spawn.h"
#include "workspace/workspace.h"

/* path and its missing parents; a parent made here is 0711 (children
 * running as the pool user pass through it to workspace_dir, and list
 * nothing), path itself 0750 (secure_dirs sets its final mode). */
int bg_setup_mkdir(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0711) == 0)
			(void)chmod(tmp, 0711); /* whatever the umask */
		else if (errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0750) == -1 && errno != EEXIST)
		return -errno;
	return 0;
}

/* What the pool user may do on st (R_OK, W_OK, X_OK bits), from the mode
 * bits: it has no supplementary group, and ACLs are not consulted. */
static bool pool_user_may(const struct stat *st,
			  const struct bg_spawn_identity *who, int need)
{
	int shift = st->st_uid == who->uid ? 6 : st->st_gid == who->gid ? 3 : 0;
	return ((int)(st->st_mode >> shift) & need) == need;
}

/* Whether the pool user reaches `path` (search on every directory above
 * it, `need` on itself). false with the first component that stops it in
 * `where`; a missing component is not this check's business (true). */
static bool pool_user_reaches(const struct bg_spawn_identity *who,
			      const char *path, int need, char *where, size_t n)
{
	char buf[PATH_MAX];
	if (path == NULL || path[0] != '/' ||
	    snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return true;
	for (char *p = buf + 1;; p++) {
		bool last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		char save = *p;
		*p = '\0';
		struct stat st;
		if (p > buf + 1 && p[-1] != '/' && stat(buf, &st) == 0 &&
		    !pool_user_may(&st, who, last ? need : X_OK)) {
			snprintf(where, n, "%s", buf);
			return false;
		}
		if (last)
			return true;
		*p = save;
	}
}

/* Whether a is b or below it (both absolute, as the loader made them). */
static bool path_within(const char *a, const char *b)
{
	size_t n = strlen(b);
	while (n > 1 && b[n - 1] == '/')
		n--;
	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* bygated root, children the pool user (docs/security.md): the state
 * directory (LMDB, lock) is root's 0700, or 0711 when workspace_dir lies
 * inside it (its files stay 0600/0640 root); workspace_dir is root's 0711
 * (passable, not listable); what the workspace component creates below it
 * is set up by bg_ws_set_owner. Then what the pool user must reach is
 * checked: the child binary and workspace_dir (refusing to start), the
 * plugins and the exec programs' directory (an error each). */
int bg_setup_dirs(const struct bg_config *cfg, const char *child,
		  const struct bg_spawn_identity *who)
{
	if (!who->privileged)
		return 0;
	bool ws_inside = path_within(cfg->workspace_dir, cfg->state_dir);
	if (chmod(cfg->state_dir, ws_inside ? 0711 : 0700) == -1 ||
	    chown(cfg->workspace_dir, 0, 0) == -1 ||
	    chmod(cfg->workspace_dir, 0711) == -1) {
		bg_error("cannot set the modes of %s and %s: %s",
			 cfg->state_dir, cfg->workspace_dir, strerror(errno));
		return BG_EXIT_RUNTIME;
	}
	bg_ws_set_owner(who->uid, who->gid);
	char where[PATH_MAX];
	int rc = 0;
	if (!pool_user_reaches(who, child, X_OK, where, sizeof(where))) {
		bg_error(
			"the pool user %s (uid %d) cannot execute %s: %s is not "
			"open to it (a parent directory with mode 0700?); "
			"refusing to start",
			who->user, (int)who->uid, child, where);
		rc = BG_EXIT_RUNTIME;
	}
	if (!pool_user_reaches(who, cfg->workspace_dir, X_OK, where,
			       sizeof(where))) {
		bg_error("the pool user %s (uid %d) cannot reach workspace_dir "
			 "%s: %s is not open to it (a parent directory with "
			 "mode 0700?); refusing to start",
			 who->user, (int)who->uid, cfg->workspace_dir, where);
		rc = BG_EXIT_RUNTIME;
	}
	for (int i = 0; i < cfg->n_agent_types; i++) {
		const struct bg_agent_type_conf *t = &cfg->agent_types[i];
		if (t->handler == BG_HANDLER_PLUGIN &&
		    !pool_user_reaches(who, t->plugin, R_OK, where,
				       sizeof(where)))
			bg_error("agent type %s: the pool user %s (uid %d) "
				 "cannot read its plugin %s: %s is not open "
				 "to it",
				 t->name, who->user, (int)who->uid, t->plugin,
				 where);
	}
	if (cfg->path && cfg->path[0]) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s", cfg->path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		for (int i = 0; i < cfg->n_agent_types; i++)
			if (cfg->agent_types[i].handler == BG_HANDLER_EXEC &&
			    !pool_user_reaches(who, dir, X_OK, where,
					       sizeof(where))) {
				bg_error("exec programs run in %s, which the "
					 "pool user %s (uid %d) cannot enter: "
					 "%s is not open to it",
					 dir, who->user, (int)who->uid, where);
				break;
			}
	}
	return rc;
}

/* bygate-child next to bygated (a build tree), else in the installed
 * layout <prefix>/libexec/bygate/ beside <prefix>/bin/. */
char *bg_setup_child_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return strdup("bygate-child");
	self[n] = '\0';
	const char *dir = dirname(self);
	char out[PATH_MAX + 64];
	snprintf(out, sizeof(out), "%s/bygate-child", dir);
	if (access(out, X_OK) != 0) {
		char alt[PATH_MAX + 64];
		snprintf(alt, sizeof(alt), "%s/../libexec/bygate/bygate-child",
			 dir);
		if (access(alt, X_OK) == 0)
			return strdup(alt);
	}
	return strdup(out);
}

/* <state_dir>/bygated.lock, held for the process's lifetime: proves to
 * the next bygated on this state directory that we are dead (DESIGN 6). */
int bg_setup_lock(struct bg_daemon *d)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/bygated.lock", d->cfg->state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		bg_error("open(%s) failed: %s", path, strerror(errno));
		return BG_EXIT_RUNTIME;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\r\n")] = '\0'; /* the file's "<pid>\n" */
		bg_error("state directory %s is in use by another bygated "
			 "(pid %s): refusing to start",
			 d->cfg->state_dir, pid[0] ? pid : "unknown");
		close(fd);
		return BG_EXIT_LOCKED;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n)
		bg_warn("cannot write the pid into %s", path);
	d->lock_fd = fd;
	return 0;
}

int bg_setup_state(struct bg_daemon *d)
{
	if (d->cfg->durability == BG_DURABILITY_NONE) {
		bg_warn("paths.durability = \"none\": no LMDB journal (for "
			"benchmarks); finishes are not journaled and a restart "
			"waits out the lease TTL");
		return 0;
	}
	struct bg_state_opts o = {
		.dir = d->cfg->state_dir,
		.sync = d->cfg->durability == BG_DURABILITY_SYNC,
		.history_max = (uint64_t)d->cfg->history_max,
	};
	bool moved = false;
	int rc = bg_state_open(&o, &d->state, &moved);
	if (rc) {
		bg_error("cannot open the LMDB state in %s: %s",
			 d->cfg->state_dir, bg_state_errmsg(NULL));
		return BG_EXIT_RUNTIME;
	}
	if (moved)
		bg_warn("LMDB state was not closed cleanly before an OS restart "
			"(durability process): moved aside to %s, starting empty; "
			"Redis recovery takes over",
			bg_state_moved_aside_path(d->state));
	if (bg_state_no_writemap_reason(d->state))
		bg_warn("LMDB: %s: commits write through the file (write "
			"system calls per commit; durability unchanged)",
			bg_state_no_writemap_reason(d->state));
	struct bg_buf wid = { 0 };
	if (bg_state_meta_get(d->state, "worker_id", &wid) == 0 &&
	    strcmp(wid.p, d->worker_id) != 0) {
		bg_warn("state directory was used by worker %s, now %s: its "
			"lease token is ignored",
			wid.p, d->worker_id);
		(void)bg_lmdb_check(d,
				    bg_state_meta_put(d->state, "lease_token",
						      bg_str_c("")),
				    "meta put");
		bg_state_commit(d->state);
	}
	bg_buf_free(&wid);
	return 0;
}

/* Whether the pool user may execute the file at path. */
static int executable(const struct bg_spawn_identity *who, const char *path,
		      char *why, size_t n)
{
	char where[PATH_MAX];
	struct stat st;
	if (stat(path, &st) == -1 || access(path, X_OK) == -1)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	if (!pool_user_reaches(who, path, X_OK, where, sizeof(where))) {
		if (snprintf(why, n,
			     "the pool user %s cannot execute it "
			     "(stopped at %s)",
			     who->user, where) >= (int)n)
			why[n - 1] = '\0';
		return -EACCES;
	}
	return 0;
}

/* argv[0] of an exec agent type's command, found as the child's execvpe()
 * in the configuration file's directory finds it, as the pool user: a
 * name with a slash from that directory, else the first PATH entry where
 * the pool user may execute it. 0, or an explanation in err. */
static int check_program(const struct bg_config *cfg,
			 const struct bg_spawn_identity *who, const char *prog,
			 char *err, size_t n)
{
	char dir[PATH_MAX], why[PATH_MAX + 128] = "";
	snprintf(dir, sizeof(dir), "%s", cfg->path ? cfg->path : "/");
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	if (strchr(prog, '/')) {
		char path[2 * PATH_MAX];
		snprintf(path, sizeof(path), "%s%s%s",
			 prog[0] == '/' ? "" : dir, prog[0] == '/' ? "" : "/",
			 prog);
		int rc = executable(who, path, why, sizeof(why));
		if (rc && snprintf(err, n, "cannot start program %s: %s", path,
				   why[0] ? why : strerror(-rc)) >= (int)n)
			err[n - 1] = '\0';
		return rc;
	}
	const char *env = getenv("PATH");
	char list[4096];
	snprintf(list, sizeof(list), "%s",
		 env && env[0] ? env : "/usr/local/bin:/usr/bin:/bin");
	int rc = -ENOENT;
	char *save = NULL;
	for (char *d = strtok_r(list, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		char cand[2 * PATH_MAX];
		snprintf(cand, sizeof(cand), "%s%s%s/%s",
			 d[0] == '/' ? "" : dir, d[0] == '/' ? "" : "/", d,
			 prog);
		int r = executable(who, cand, why, sizeof(why));
		if (r == 0)
			return 0;
		if (r != -ENOENT && r != -ENOTDIR)
			rc = r; /* execvp reports EACCES over ENOENT */
	}
	if (snprintf(err, n, "cannot start program %s (searched PATH): %s",
		     prog, why[0] ? why : strerror(-rc)) >= (int)n)
		err[n - 1] = '\0';
	return rc;
}

static int check_exec(const struct bg_config *cfg,
		      const struct bg_agent_type_conf *t,
		      const struct bg_spawn_identity *who, char *err, size_t n)
{
	char *argv = NULL, e[200];
	if (bg_config_command_argv(t->command, &argv, e, sizeof(e))) {
		snprintf(err, n, "%s", e);
		return -EINVAL;
	}
	json_t *a = json_loads(argv, 0, NULL);
	free(argv);
	const char *prog = json_string_value(json_array_get(a, 0));
	int rc = -EINVAL;
	if (prog)
		rc = check_program(cfg, who, prog, err, n);
	else
		snprintf(err, n, "no program in command");
	json_decref(a);
	return rc;
}

int bg_setup_check_handlers(const struct bg_config *cfg, const char *child,
			    const struct bg_spawn_identity *who)
{
	int bad = 0;
	for (int i = 0; i < cfg->n_agent_types; i++) {
		const struct bg_agent_type_conf *t = &cfg->agent_types[i];
		char err[1024] = "";
		int rc = 0;
		if (t->handler == BG_HANDLER_EXEC)
			rc = check_exec(cfg, t, who, err, sizeof(err));
		if (rc == 0) /* the child checks its CONFIG, loads plugins */
			rc = bg_pool_check_type(cfg, child, who, i, 10000, err,
						sizeof(err));
		if (rc == 0)
			continue;
		bad++;
		if (strncmp(err, "agent type '", 12) == 0)
			fprintf(stderr, "%s: %s\n", cfg->path, err);
		else
			fprintf(stderr, "%s: agent type '%s': %s\n", cfg->path,
				t->name, err);
	}
	return bad ? BG_EXIT_CONFIG : 0;
}
