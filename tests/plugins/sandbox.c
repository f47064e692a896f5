/* tests/plugins/sandbox.c - probes of the child sandbox (child/sandbox.c,
 * tests/integration/test_sandbox.py): the task content names one probe,
 * the result says what happened: "ok" or the errno name ("EPERM"), or for
 * "status" the NoNewPrivs and Seccomp lines of /proc/self/status. Calls
 * that would change the child itself when allowed run in a forked
 * process. */
#include <bygate/handler.h>

#include "tests/plugins/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* fn's errno (0 = success) from a forked process, so an allowed call
 * cannot change the child. */
static int in_fork(int (*fn)(void))
{
	pid_t pid = fork();
	if (pid == -1)
		return errno;
	if (pid == 0)
		_exit(fn() & 0xff);
	int st;
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EFAULT;
}

static int try_unshare_user(void)
{
	return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

static int try_clone_newns(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno;
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

static int try_personality(void)
{
	return personality(ADDR_NO_RANDOMIZE) == -1 ? errno : 0;
}

static int try_personality_query(void)
{
	return personality(0xffffffff) == -1 ? errno : 0;
}

/* Attach to a child of ours that waits to be killed. */
static int try_ptrace(void)
{
	pid_t pid = fork();
	if (pid == -1)
		return errno;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	int err = ptrace(PTRACE_ATTACH, pid, 0, 0) == 0 ? 0 : errno;
	kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) == pid && !WIFEXITED(st) &&
	       !WIFSIGNALED(st))
		;
	return err;
}

static int try_mount(void)
{
	/* Harmless when allowed: the mount point does not exist (ENOENT). */
	return mount("bygate-probe", "/nonexistent/bygate-sandbox-probe",
		     "tmpfs", 0, NULL) == 0
		       ? 0
		       : errno;
}

static int try_fork_exec(void)
{
	char *argv[] = { "true", NULL };
	pid_t pid;
	int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
	if (rc)
		return rc;
	int st;
	if (waitpid(pid, &st, 0) == -1)
		return errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : ECHILD;
}

static void *nothing(void *arg)
{
	return arg;
}

static int try_thread(void)
{
	pthread_t t;
	int rc = pthread_create(&t, NULL, nothing, NULL);
	if (rc == 0)
		rc = pthread_join(t, NULL);
	return rc;
}

static int try_write_workspace(struct bg_ctx *ctx)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/sandbox-probe.txt",
		 bg_ctx_workspace(ctx));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return errno;
	int err = write(fd, "probe\n", 6) == 6 ? 0 : EIO;
	close(fd);
	return err;
}

/* The NoNewPrivs and Seccomp lines of /proc/self/status, '\n'-joined. */
static int status(struct bg_ctx *ctx)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (f == NULL)
		return bg_ctx_fail(ctx, "cannot open /proc/self/status");
	char line[256], out[512] = "";
	size_t len = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "NoNewPrivs:", 11) ||
		    !strncmp(line, "Seccomp:", 8))
			len += (size_t)snprintf(out + len, sizeof(out) - len,
						"%s", line);
	fclose(f);
	if (len && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return bg_ctx_result(ctx, NULL, out, NULL, NULL);
}

struct probe {
	const char *name;
	int (*fn)(void);
	int forked; /* run in a forked process */
};

static const struct probe probes[] = {
	{ "ptrace", try_ptrace, 0 },
	{ "mount", try_mount, 0 },
	{ "unshare-user", try_unshare_user, 1 },
	{ "clone-newns", try_clone_newns, 1 },
	{ "personality", try_personality, 1 },
	{ "personality-query", try_personality_query, 0 },
	{ "fork-exec", try_fork_exec, 0 },
	{ "thread", try_thread, 0 },
};

static int sandbox_process(void *state, const struct bg_task *task,
			   struct bg_ctx *ctx)
{
	const char *what = bg_task_content(task);
	if (!strcmp(what, "status"))
		return status(ctx);
	if (!strcmp(what, "write-workspace"))
		return bg_ctx_result(ctx, NULL,
				     outcome(try_write_workspace(ctx)), NULL,
				     NULL);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		if (!strcmp(what, probes[i].name)) {
			int err = probes[i].forked ? in_fork(probes[i].fn)
						   : probes[i].fn();
			return bg_ctx_result(ctx, NULL, outcome(err), NULL,
					     NULL);
		}
	return bg_ctx_fail(ctx, "unknown probe");
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "sandbox",
	.process = sandbox_process,
};
