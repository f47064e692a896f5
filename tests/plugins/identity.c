/* tests/plugins/identity.c - probes of who a child is and what it can reach
 * (tests/integration/test_identity.py). The task content is a probe name
 * and an optional argument; the result is what the probe saw:
 *   ids            "uid U gid G groups N"
 *   caps           the Cap* lines of /proc/self/status, '\n'-joined
 *   env            the names of the environment, sorted, space-separated
 *   fds            the open descriptors, space-separated
 *   kill PID       kill(PID, 0): "ok" or the errno name
 *   open PATH      open(PATH, O_RDONLY): "ok" or the errno name
 *   print TEXT     TEXT written raw to stderr (fd 2); "ok"
 *   flood MIB      MIB MiB of pseudo-random bytes to stderr; "ok"
 */
#include <bygate/handler.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int answer(struct bg_ctx *ctx, const char *text)
{
	return bg_ctx_result(ctx, NULL, text, NULL, NULL);
}

static int outcome(struct bg_ctx *ctx, int err)
{
	const char *name = err ? strerrorname_np(err) : "ok";
	return answer(ctx, name ? name : "unknown errno");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int probe_env(struct bg_ctx *ctx)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **names = calloc(n + 1, sizeof(char *));
	char *text = calloc(1, 65536);
	if (names == NULL || text == NULL)
		return bg_ctx_fail(ctx, "out of memory");
	for (size_t i = 0; i < n; i++)
		names[i] = strndup(environ[i], strcspn(environ[i], "="));
	qsort(names, n, sizeof(char *), cmp_str);
	size_t len = 0;
	for (size_t i = 0; i < n && len < 65000; i++)
		len += (size_t)snprintf(text + len, 65536 - len, "%s%s",
					i ? " " : "", names[i]);
	int rc = answer(ctx, text);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(text);
	return rc;
}

static int probe_caps(struct bg_ctx *ctx)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (f == NULL)
		return bg_ctx_fail(ctx, "cannot open /proc/self/status");
	char line[256], out[1024] = "";
	size_t len = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cap", 3))
			len += (size_t)snprintf(out + len, sizeof(out) - len,
						"%s", line);
	fclose(f);
	if (len && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return answer(ctx, out);
}

static int probe_fds(struct bg_ctx *ctx)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return bg_ctx_fail(ctx, "cannot open /proc/self/fd");
	int fds[256], n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 256)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			fds[n++] = atoi(e->d_name);
	closedir(d);
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	char text[256 * 12] = "";
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%d",
					i ? " " : "", fds[i]);
	return answer(ctx, text);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return errno ? errno : EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int probe_flood(struct bg_ctx *ctx, const char *arg)
{
	long mib = atol(arg);
	static char buf[65536];
	unsigned x = 2463534242u;
	int err = 0;
	for (long i = 0; i < mib * 16 && err == 0; i++) {
		for (size_t k = 0; k < sizeof(buf); k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[k] = (char)(x >> 24);
		}
		err = write_all(2, buf, sizeof(buf));
	}
	return outcome(ctx, err);
}

static int identity_process(void *state, const struct bg_task *task,
			    struct bg_ctx *ctx)
{
	const char *what = bg_task_content(task);
	const char *sp = strchr(what, ' ');
	const char *arg = sp ? sp + 1 : "";
	size_t n = sp ? (size_t)(sp - what) : strlen(what);
#define IS(name) (n == strlen(name) && !strncmp(what, name, n))
	if (IS("ids")) {
		char text[128];
		snprintf(text, sizeof(text), "uid %d gid %d groups %d",
			 (int)getuid(), (int)getgid(), getgroups(0, NULL));
		return answer(ctx, text);
	}
	if (IS("caps"))
		return probe_caps(ctx);
	if (IS("env"))
		return probe_env(ctx);
	if (IS("fds"))
		return probe_fds(ctx);
	if (IS("kill"))
		return outcome(ctx, kill((pid_t)atol(arg), 0) == 0 ? 0 : errno);
	if (IS("open")) {
		int fd = open(arg, O_RDONLY | O_CLOEXEC);
		int err = fd == -1 ? errno : 0;
		if (fd != -1)
			close(fd);
		return outcome(ctx, err);
	}
	if (IS("print"))
		return outcome(ctx, write_all(2, arg, strlen(arg)));
	if (IS("flood"))
		return probe_flood(ctx, arg);
#undef IS
	return bg_ctx_fail(ctx, "unknown probe");
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "identity",
	.process = identity_process,
};
