/* supervisor/spawn.c - clone + execve of one bygate-child with the
 * guarantees of spawn.h. Between clone and execve the child runs only
 * async-signal-safe system calls on memory prepared before the clone, and
 * reports a failed step through a close-on-exec pipe. */
#include "supervisor/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fault.h"

extern char **environ;

struct bg_spawner {
	struct bg_spawn_identity who;
	char **envp;	/* the built environment, NULL-terminated */
	int devnull;	/* O_RDONLY | O_CLOEXEC */
	int self_pidfd; /* bygated's pidfd: readable once bygated is gone */
	int cap_last;	/* highest capability number of this kernel */
};

/* The steps of the child between clone and execve, as reported. */
enum step {
	ST_DUP = 1,
	ST_CLOSE,
	ST_SIGNALS,
	ST_SETPGID,
	ST_CAPBSET,
	ST_SETGROUPS,
	ST_SETGID,
	ST_SETUID,
	ST_AMBIENT,
	ST_CAPSET,
	ST_PDEATHSIG,
	ST_PARENT_GONE,
	ST_EXEC,
};

static const char *const step_names[] = {
	[ST_DUP] = "dup2 of fds 0-5",
	[ST_CLOSE] = "close_range above fd 5",
	[ST_SIGNALS] = "reset of signal dispositions and mask",
	[ST_SETPGID] = "setpgid(0, 0)",
	[ST_CAPBSET] = "prctl(PR_CAPBSET_DROP)",
	[ST_SETGROUPS] = "setgroups(0, NULL)",
	[ST_SETGID] = "setresgid",
	[ST_SETUID] = "setresuid",
	[ST_AMBIENT] = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
	[ST_CAPSET] = "capset (empty)",
	[ST_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
	[ST_PARENT_GONE] = "check that bygated is alive",
	[ST_EXEC] = "execve",
};

/* ---- identity ----------------------------------------------------------- */

int bg_spawn_resolve(const char *user, const char *group,
		     struct bg_spawn_identity *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->uid = geteuid();
	out->gid = getegid();
	if (out->uid != 0) {
		snprintf(out->user, sizeof(out->user), "%d", (int)out->uid);
		snprintf(out->group, sizeof(out->group), "%d", (int)out->gid);
		return 0;
	}
	char buf[16384];
	struct passwd pw, *pwp = NULL;
	int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &pwp);
	if (pwp == NULL) {
		snprintf(err, errlen,
			 "pool.user \"%s\": %s; bygated runs as root and "
			 "runs its children as this user only: create it "
			 "(`make user`, or useradd --system --no-create-home "
			 "--home-dir /nonexistent --shell /usr/sbin/nologin "
			 "--user-group %s) or set pool.user",
			 user, rc ? strerror(rc) : "no such user", user);
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen,
			 "pool.user \"%s\" is uid 0: children "
			 "must not run as root",
			 user);
		return -1;
	}
	out->privileged = true;
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	snprintf(out->user, sizeof(out->user), "%s", user);
	if (group == NULL || group[0] == '\0') {
		struct group gr, *grp = NULL;
		if (getgrgid_r(pw.pw_gid, &gr, buf, sizeof(buf), &grp) == 0 &&
		    grp)
			snprintf(out->group, sizeof(out->group), "%s",
				 grp->gr_name);
		else
			snprintf(out->group, sizeof(out->group), "%d",
				 (int)pw.pw_gid);
		return 0;
	}
	struct group gr, *grp = NULL;
	rc = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
	if (grp == NULL) {
		snprintf(err, errlen, "pool.group \"%s\": %s", group,
			 rc ? strerror(rc) : "no such group");
		return -1;
	}
	if (gr.gr_gid == 0) {
		snprintf(err, errlen,
			 "pool.group \"%s\" is gid 0: children "
			 "must not run in the root group",
			 group);
		return -1;
	}
	out->gid = gr.gr_gid;
	snprintf(out->group, sizeof(out->group), "%s", group);
	return 0;
}

/* ---- the built environment ---------------------------------------------- */

static bool env_allowed(const char *e)
{
	static const char *const exact[] = { "LANG",	      "TZ",
					     "BYGATE_FAULT",  "ASAN_OPTIONS",
					     "UBSAN_OPTIONS", "LSAN_OPTIONS" };
	const char *eq = strchr(e, '=');
	if (eq == NULL)
		return false;
	size_t n = (size_t)(eq - e);
	if (n > 3 && strncmp(e, "LC_", 3) == 0)
		return true;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strlen(exact[i]) == n && strncmp(e, exact[i], n) == 0)
			return true;
	return false;
}

static int build_env(struct bg_spawner *s)
{
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	s->envp = calloc(n + 2, sizeof(char *));
	if (s->envp == NULL)
		return -ENOMEM;
	size_t k = 0;
	s->envp[k++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
	for (char **e = environ; e && *e; e++)
		if (env_allowed(*e))
			s->envp[k++] = strdup(*e);
	for (size_t i = 0; i < k; i++)
		if (s->envp[i] == NULL)
			return -ENOMEM;
	return 0;
}

static int read_cap_last(void)
{
	int last = CAP_LAST_CAP;
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return last;
	char b[16];
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n > 0) {
		b[n] = '\0';
		int v = atoi(b);
		if (v > 0 && v < 64)
			last = v;
	}
	return last;
}

/* fd moved above 9 (close-on-exec): the dup2s onto 0-5 in the child never
 * clobber it. -1 with errno on failure (fd closed). */
static int move_high(int fd)
{
	if (fd == -1 || fd > 9)
		return fd;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	int e = errno;
	close(fd);
	errno = e;
	return hi;
}

int bg_spawn_prepare(const struct bg_spawn_identity *who,
		     struct bg_spawner **out, char *err, size_t errlen)
{
	struct bg_spawner *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->who = *who;
	s->devnull = s->self_pidfd = -1;
	s->cap_last = read_cap_last();
	int rc = build_env(s);
	if (rc) {
		snprintf(err, errlen, "out of memory");
		bg_spawn_free(s);
		return rc;
	}
	s->devnull = move_high(open("/dev/null", O_RDONLY | O_CLOEXEC));
	if (s->devnull == -1) {
		rc = -errno;
		snprintf(err, errlen, "open(/dev/null) failed: %s",
			 strerror(errno));
		bg_spawn_free(s);
		return rc;
	}
	s->self_pidfd = move_high((int)syscall(SYS_pidfd_open, getpid(), 0));
	if (s->self_pidfd == -1) {
		rc = -errno;
		snprintf(err, errlen, "pidfd_open(bygated) failed: %s",
			 strerror(errno));
		bg_spawn_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void bg_spawn_free(struct bg_spawner *s)
{
	if (s == NULL)
		return;
	for (char **e = s->envp; e && *e; e++)
		free(*e);
	free(s->envp);
	if (s->devnull >= 0)
		close(s->devnull);
	if (s->self_pidfd >= 0)
		close(s->self_pidfd);
	free(s);
}

/* ---- the child between clone and execve --------------------------------- */

struct report {
	int step;
	int err;
};

static _Noreturn void fail(int errfd, int step)
{
	struct report r = { step, errno };
	ssize_t w = write(errfd, &r, sizeof(r));
	(void)w;
	_exit(127);
}

/* close_range(lo, hi) that accepts an empty range. */
static int close_span(unsigned lo, unsigned hi)
{
	if (lo > hi)
		return 0;
	return (int)syscall(SYS_close_range, lo, hi, 0);
}

/* Every fd above 5 closed but keep[0] and keep[1] (both above 5). */
static int close_above_5(int a, int b)
{
	unsigned lo = (unsigned)(a < b ? a : b), hi = (unsigned)(a < b ? b : a);
	if (close_span(6, lo - 1) || close_span(lo + 1, hi - 1) ||
	    close_span(hi + 1, ~0U))
		return -1;
	return 0;
}

/* fault_setuid: the fault point spawn.setuid, evaluated before the clone
 * (bg_fault_hit is not async-signal-safe): setresuid "fails" with EPERM. */
static _Noreturn void in_child(const struct bg_spawner *s, const char *path,
			       char *const argv[], const int fds[3], int out_fd,
			       int errfd, bool fault_setuid)
{
	const struct bg_spawn_identity *who = &s->who;
	/* Every source is above 9, so these never clobber one another and
	 * dup2 clears close-on-exec on the copies. */
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], 3 + i) == -1)
			fail(errfd, ST_DUP);
	if (dup2(s->devnull, 0) == -1 || dup2(out_fd, 1) == -1 ||
	    dup2(out_fd, 2) == -1)
		fail(errfd, ST_DUP);
	if (close_above_5(errfd, s->self_pidfd) == -1)
		fail(errfd, ST_CLOSE);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &dfl, NULL); /* EINVAL: reserved */
	sigset_t none;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) == -1)
		fail(errfd, ST_SIGNALS);
	if (setpgid(0, 0) == -1)
		fail(errfd, ST_SETPGID);
	if (who->privileged) {
		for (int c = 0; c <= s->cap_last; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == -1 &&
			    errno != EINVAL)
				fail(errfd, ST_CAPBSET);
		/* Raw system calls: glibc's wrappers would broadcast the
		 * change to the threads it believes exist (set*id of a
		 * multi-threaded process), which are the parent's. */
		if (syscall(SYS_setgroups, 0, NULL) == -1)
			fail(errfd, ST_SETGROUPS);
		if (syscall(SYS_setresgid, who->gid, who->gid, who->gid) == -1)
			fail(errfd, ST_SETGID);
		if (fault_setuid) {
			errno = EPERM;
			fail(errfd, ST_SETUID);
		}
		if (syscall(SYS_setresuid, who->uid, who->uid, who->uid) == -1)
			fail(errfd, ST_SETUID);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 &&
	    errno != EINVAL)
		fail(errfd, ST_AMBIENT);
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3,
						0 };
	struct __user_cap_data_struct none_caps[2];
	memset(none_caps, 0, sizeof(none_caps));
	if (syscall(SYS_capset, &hdr, none_caps) == -1)
		fail(errfd, ST_CAPSET);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1)
		fail(errfd, ST_PDEATHSIG);
	/* bygated may have died before PR_SET_PDEATHSIG: then no signal
	 * comes. Its pidfd is readable once it is gone. */
	struct pollfd pf = { .fd = s->self_pidfd, .events = POLLIN };
	int pr = poll(&pf, 1, 0);
	if (pr != 0) {
		if (pr > 0)
			errno = ESRCH;
		fail(errfd, ST_PARENT_GONE);
	}
	execve(path, argv, s->envp);
	fail(errfd, ST_EXEC);
}

/* ---- the parent --------------------------------------------------------- */

int bg_spawn_child(const struct bg_spawner *s, const char *path,
		   char *const argv[], const int fds[3], int out_fd, pid_t *pid,
		   char *err, size_t errlen)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) == -1) {
		int e = errno;
		snprintf(err, errlen, "pipe2() failed: %s", strerror(e));
		return -e;
	}
	/* The report pipe's write end above 9 so that the dup2s onto 0-5
	 * cannot clobber it; pipe2 may hand out low numbers. */
	if (ep[1] <= 9) {
		int hi = fcntl(ep[1], F_DUPFD_CLOEXEC, 10);
		close(ep[1]);
		ep[1] = hi;
		if (hi == -1) {
			int e = errno;
			close(ep[0]);
			snprintf(err, errlen, "fcntl(F_DUPFD) failed: %s",
				 strerror(e));
			return -e;
		}
	}
	/* No handler of bygated (libevent's) may run in the child before
	 * it resets them: every signal is blocked across the clone. */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	bool fault_setuid = s->who.privileged && bg_fault_hit("spawn.setuid");
	unsigned long flags = SIGCHLD;
	if (s->who.privileged)
		flags |= CLONE_NEWPID;
	long r = syscall(SYS_clone, flags, 0, NULL, NULL, 0);
	if (r == 0)
		in_child(s, path, argv, fds, out_fd, ep[1], fault_setuid);
	int clone_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(ep[1]);
	if (r == -1) {
		close(ep[0]);
		snprintf(err, errlen, "clone(%s) failed: %s",
			 s->who.privileged ? "CLONE_NEWPID" : "",
			 strerror(clone_errno));
		return -clone_errno;
	}
	struct report rep;
	ssize_t n;
	do
		n = read(ep[0], &rep, sizeof(rep));
	while (n == -1 && errno == EINTR);
	close(ep[0]);
	if (n == 0) {
		*pid = (pid_t)r;
		return 0;
	}
	while (waitpid((pid_t)r, NULL, 0) == -1 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rep) || rep.step <= 0 || rep.step > ST_EXEC) {
		snprintf(err, errlen,
			 "the new child failed before execve "
			 "without saying why");
		return -EIO;
	}
	if (rep.step == ST_SETUID || rep.step == ST_SETGID)
		snprintf(err, errlen,
			 "%s to %s:%s (uid %d gid %d) failed in "
			 "the new child: %s",
			 step_names[rep.step], s->who.user, s->who.group,
			 (int)s->who.uid, (int)s->who.gid, strerror(rep.err));
	else
		snprintf(err, errlen, "%s failed in the new child: %s%s%s",
			 step_names[rep.step], strerror(rep.err),
			 rep.step == ST_EXEC ? " (executing " : "",
			 rep.step == ST_EXEC ? path : "");
	if (rep.step == ST_EXEC) {
		size_t l = strlen(err);
		if (l + 2 < errlen)
			snprintf(err + l, errlen - l, ")");
	}
	return rep.err ? -rep.err : -EIO;
}
