/* client/provider.c - running the gate's wakeup provider: `sh -c COMMAND`
 * in its own process group with extra environment variables, bounded in
 * time, its standard output kept (in an unlinked temporary file, so a
 * daemon the provider leaves behind cannot hold the gate up) for the
 * decision's reason. */
#include "client/client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/provider.h"

extern char **environ;

#define POLL_MS 10

static bool overridden(const char *entry, const char *const *extra)
{
	for (size_t i = 0; extra[i]; i++) {
		const char *eq = strchr(extra[i], '=');
		size_t n = eq ? (size_t)(eq - extra[i]) : strlen(extra[i]);
		if (!strncmp(entry, extra[i], n) && entry[n] == '=')
			return true;
	}
	return false;
}

/* environ minus the overridden names, plus extra (borrowed strings). */
static char **build_env(const char *const *extra)
{
	size_t n = 0, k = 0, e = 0;
	while (environ[n])
		n++;
	while (extra[e])
		e++;
	char **env = calloc(n + e + 1, sizeof *env);
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!overridden(environ[i], extra))
			env[k++] = environ[i];
	for (size_t i = 0; i < e; i++)
		env[k++] = (char *)extra[i];
	return env;
}

static void child(const char *cmd, char **env, int out_fd)
{
	int null = open("/dev/null", O_RDONLY);
	setpgid(0, 0);
	if (null != -1)
		dup2(null, STDIN_FILENO);
	dup2(out_fd, STDOUT_FILENO);
	if (out_fd != STDOUT_FILENO)
		close(out_fd);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	char *const argv[] = { "sh", "-c", (char *)cmd, NULL };
	execve("/bin/sh", argv, env);
	_exit(127);
}

/* Wait for pid; kill its group on timeout or stop. */
static int reap(pid_t pid, int timeout_ms, const volatile sig_atomic_t *stop,
		struct bg_provider_result *out)
{
	int64_t deadline = bg_client_mono_ms() + timeout_ms;
	int status;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w == -1 && errno != EINTR)
			return -errno;
		out->timed_out = bg_client_mono_ms() >= deadline;
		out->stopped = stop && *stop;
		if (out->timed_out || out->stopped) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
				;
			break;
		}
		bg_client_sleep_ms(POLL_MS);
	}
	out->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	return 0;
}

/* The last non-empty line of what the provider wrote, made printable. */
static void last_line(FILE *f, char *out, size_t cap)
{
	char buf[4096];
	out[0] = '\0';
	if (fseek(f, 0, SEEK_END) != 0)
		return;
	long size = ftell(f);
	long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1
						: 0;
	if (size <= 0 || fseek(f, from, SEEK_SET) != 0)
		return;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	while (n > 0 &&
	       (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	char *start = strrchr(buf, '\n');
	start = start ? start + 1 : buf;
	size_t len = strnlen(start, cap - 1);
	memcpy(out, start, len);
	out[len] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

int bg_provider_run(const char *cmd, const char *const *extra_env,
		    int timeout_ms, const volatile sig_atomic_t *stop,
		    struct bg_provider_result *out)
{
	memset(out, 0, sizeof *out);
	out->status = -1;
	FILE *f = tmpfile();
	char **env = build_env(extra_env);
	int rc = 0;
	if (f == NULL || env == NULL) {
		rc = f == NULL ? -errno : -ENOMEM;
		goto done;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == -1) {
		rc = -errno;
		goto done;
	}
	if (pid == 0)
		child(cmd, env, fileno(f));
	setpgid(pid, pid); /* also in the child: whichever runs first */
	rc = reap(pid, timeout_ms, stop, out);
	if (rc == 0)
		last_line(f, out->output, sizeof out->output);
done:
	free(env);
	if (f)
		fclose(f);
	return rc;
}
