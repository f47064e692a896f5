/* tests/plugins/hostile.c - a hijacked agent (tests/integration/
 * test_isolation.py): the task content names an attack and its
 * arguments, the result says what happened ("ok", an errno name, or a
 * short report). Attacks that end the task process (alloc, crash, cpu,
 * fsize) do so on purpose. Paired with tests/integration/agents/hostile.py,
 * the same attacks from a Python exec handler. */
#include <bygate/handler.h>

#include "tests/plugins/probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <linux/if_ether.h>
#include <unistd.h>

extern char **environ;

static int answer(struct bg_ctx *ctx, const char *text)
{
	return bg_ctx_result(ctx, NULL, text, NULL, NULL);
}

static int try_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return errno;
	char b;
	int err = read(fd, &b, 1) == -1 ? errno : 0;
	close(fd);
	return err;
}

static int try_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1)
		return errno;
	int err = write(fd, "pwned\n", 6) == -1 ? errno : 0;
	close(fd);
	return err;
}

static int try_list(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return errno;
	errno = 0;
	int err = readdir(d) == NULL ? errno : 0;
	closedir(d);
	return err;
}

static int try_connect(const char *host, int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s == -1)
		return errno;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, host, &a.sin_addr);
	int err = connect(s, (struct sockaddr *)&a, sizeof(a)) == -1 ? errno
								     : 0;
	close(s);
	return err;
}

static int try_socket(const char *kind)
{
	int s = -1;
	if (!strcmp(kind, "inet"))
		s = socket(AF_INET, SOCK_STREAM, 0);
	else if (!strcmp(kind, "inet6"))
		s = socket(AF_INET6, SOCK_STREAM, 0);
	else if (!strcmp(kind, "udp"))
		s = socket(AF_INET, SOCK_DGRAM, 0);
	else if (!strcmp(kind, "raw"))
		s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	else if (!strcmp(kind, "packet"))
		s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	else if (!strcmp(kind, "unix"))
		s = socket(AF_UNIX, SOCK_STREAM, 0);
	else if (!strcmp(kind, "listen")) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s != -1 && listen(s, 1) == -1) {
			int err = errno;
			close(s);
			return err;
		}
	} else
		return EINVAL;
	if (s == -1)
		return errno;
	close(s);
	return 0;
}

/* n processes that wait forever, named bghostile-kid for the test to find
 * on the host: "forked K", K the number fork() allowed. */
static int fork_many(struct bg_ctx *ctx, int n)
{
	int ok = 0, first_err = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			prctl(PR_SET_NAME, "bghostile-kid");
			for (;;)
				pause();
		}
		if (pid == -1 && first_err == 0)
			first_err = errno;
		if (pid > 0)
			ok++;
	}
	char out[96];
	snprintf(out, sizeof(out), "forked %d %s", ok, outcome(first_err));
	return answer(ctx, out);
}

/* setsid and a double fork: a daemon named bghostile-esc, re-parented
 * away from the task. */
static int escape(void)
{
	pid_t pid = fork();
	if (pid == -1)
		return errno;
	if (pid == 0) {
		setsid();
		if (fork() == 0) {
			prctl(PR_SET_NAME, "bghostile-esc");
			for (;;)
				pause();
		}
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	return 0;
}

static int alloc(long mb)
{
	size_t n = (size_t)mb << 20;
	char *volatile p = malloc(n);
	for (size_t i = 0; i < n; i += 4096) /* NULL dereference if refused */
		p[i] = 1;
	int sum = p[n / 2];
	free(p);
	return sum == 1 ? 0 : EIO;
}

static int setuid_file(struct bg_ctx *ctx)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/suid", bg_ctx_workspace(ctx));
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	if (fd != -1)
		close(fd);
	int a = chown(path, 0, 0) == -1 ? errno : 0;
	int b = chmod(path, 04755) == -1 ? errno : 0;
	struct stat st;
	int c = stat(path, &st) == -1 ? errno : 0;
	char out[128];
	snprintf(out, sizeof(out), "chown %s chmod %s setuid %s", outcome(a),
		 outcome(b), c || (st.st_mode & 06000) ? "yes" : "no");
	return answer(ctx, out);
}

/* 20 MiB of every byte value, newlines and a forged log line included,
 * on stdout and stderr. */
static int spew(long mb)
{
	char buf[65536];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7);
	const char forged[] = "\n2026-01-01T00:00:00.000Z info  bygated ready: "
			      "FORGED\n\x1b[31mred\x07\n";
	for (long i = 0; i < (mb << 20) / (long)sizeof(buf); i++) {
		ssize_t w = write(i % 2 ? 2 : 1, buf, sizeof(buf));
		w = write(2, forged, sizeof(forged) - 1);
		(void)w;
	}
	return 0;
}

static int fsize(struct bg_ctx *ctx)
{
	char path[4200], buf[65536] = { 0 };
	snprintf(path, sizeof(path), "%s/big", bg_ctx_workspace(ctx));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	for (int i = 0; fd != -1 && i < 1 << 16; i++)
		if (write(fd, buf, sizeof(buf)) == -1)
			break;
	return fd == -1 ? errno : 0;
}

/* Is the reverse of `rev` anywhere in our readable memory, other than in
 * the buffer we build it in? (Secrets of other agent types, other
 * sessions' tasks: must not be in a task process's copy of the child.)
 * Plain byte loads, not instrumented, so that sanitizer builds scan too
 * (/proc/self/mem is closed to a non-dumpable process); mappings over
 * 256 MiB (a sanitizer's shadow) are skipped. */
static char needle[256];

__attribute__((no_sanitize("address"))) static int
scan(const volatile char *p, const volatile char *end, size_t n)
{
	for (; p + n <= end; p++) {
		if (p == needle) /* our own copy */
			continue;
		size_t k = 0;
		while (k < n && p[k] == needle[k])
			k++;
		if (k == n)
			return 1;
	}
	return 0;
}

static int memscan(struct bg_ctx *ctx, const char *rev)
{
	size_t n = strlen(rev);
	if (n == 0 || n >= sizeof(needle))
		return bg_ctx_fail(ctx, "bad needle");
	for (size_t i = 0; i < n; i++)
		needle[i] = rev[n - 1 - i];
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int found = 0;
	while (f && !found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 ||
		    perm[0] != 'r' || hi - lo > (256ul << 20) ||
		    strstr(line, "[vvar") || strstr(line, "[vsyscall"))
			continue;
		found = scan((const char *)lo, (const char *)hi, n);
	}
	if (f)
		fclose(f);
	memset(needle, 0, sizeof(needle));
	return answer(ctx, found ? "found" : "absent");
}

static int hostile_process(void *state, const struct bg_task *task,
			   struct bg_ctx *ctx)
{
	char what[64] = "", a1[4096] = "", a2[4096] = "";
	sscanf(bg_task_content(task), "%63s %4095s %4095s", what, a1, a2);
	int err = EINVAL;
	if (!strcmp(what, "read"))
		err = try_read(a1);
	else if (!strcmp(what, "write"))
		err = try_write(a1);
	else if (!strcmp(what, "list"))
		err = try_list(a1);
	else if (!strcmp(what, "connect"))
		err = try_connect(a1, atoi(a2));
	else if (!strcmp(what, "socket"))
		err = try_socket(a1);
	else if (!strcmp(what, "fork"))
		return fork_many(ctx, atoi(a1));
	else if (!strcmp(what, "escape"))
		err = escape();
	else if (!strcmp(what, "escape_wait")) {
		err = escape();
		usleep((useconds_t)atoi(a1) * 1000);
	} else if (!strcmp(what, "alloc"))
		err = alloc(atol(a1));
	else if (!strcmp(what, "mknod")) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/sda", bg_ctx_workspace(ctx));
		err = mknod(path, S_IFBLK | 0600, makedev(8, 0)) == -1 ? errno
								       : 0;
	} else if (!strcmp(what, "setuid"))
		return setuid_file(ctx);
	else if (!strcmp(what, "signal"))
		err = kill(atoi(a1), atoi(a2)) == -1 ? errno : 0;
	else if (!strcmp(what, "ptrace")) {
		err = ptrace(PTRACE_ATTACH, atoi(a1), 0, 0) == -1 ? errno : 0;
		if (err == 0)
			ptrace(PTRACE_DETACH, atoi(a1), 0, 0);
	} else if (!strcmp(what, "env")) {
		char out[16384];
		size_t len = 0;
		for (char **e = environ; *e && len < sizeof(out) - 1; e++)
			len += (size_t)snprintf(out + len, sizeof(out) - len,
						"%s\n", *e);
		return answer(ctx, out);
	} else if (!strcmp(what, "spew"))
		err = spew(atol(a1));
	else if (!strcmp(what, "sleep")) {
		usleep((useconds_t)atoi(a1) * 1000);
		return answer(ctx, "slept");
	} else if (!strcmp(what, "crash")) {
		raise(SIGSEGV);
	} else if (!strcmp(what, "cpu")) {
		for (volatile unsigned long i = 0;; i++)
			;
	} else if (!strcmp(what, "fsize"))
		err = fsize(ctx);
	else if (!strcmp(what, "memscan"))
		return memscan(ctx, a1);
	else if (!strcmp(what, "whoami")) {
		char out[128];
		snprintf(out, sizeof(out), "uid %d gid %d pid %d",
			 (int)getuid(), (int)getgid(), (int)getpid());
		return answer(ctx, out);
	} else
		return bg_ctx_fail(ctx, "unknown attack");
	return answer(ctx, outcome(err));
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "hostile",
	.process = hostile_process,
};
