/* child/exec.c - handler = "exec": the programs. Each is started with
 * fork and exec in the agent type's working directory, inheriting only fds
 * 0-2 (pipes to this child) and staying in the child's process group, so
 * every signal bygated sends the group (task timeout, cancel, shutdown)
 * reaches it too. Its stdout carries protocol lines (protocol.c), its
 * stderr goes to bygated's log a line at a time. A program that breaks
 * the protocol or dies fails the tasks it was running and is killed; the
 * next task starts a fresh one. */
#include "child/child.h"
#include "child/memwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

#define READ_CHUNK 65536
#define LOG_LINE_MAX 2000	/* bytes of one stderr line sent to the log */
#define PROG_LOG_CAP (64 * 1024) /* stderr bytes logged while a program runs
				    its tasks; the rest is counted */
#define RETIRE_GRACE_MS 2000	/* per_task program: exit after its result */
#define SHUTDOWN_GRACE_MS 1000	/* all programs at a normal child exit */
#define EXIT_WAIT_MS 500	/* a program that closed its stdout */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ------------------------------------------------------ */

void bg_child_exec_free(struct bg_exec *x)
{
	if (x == NULL)
		return;
	for (char **a = x->argv; a && *a; a++)
		free(*a);
	free(x->argv);
	for (int i = 0; i < BG_EXEC_OWN_ENV; i++)
		free(x->own_env[i]);
	free(x->envp);
	free(x->workdir);
	free(x->preload);
	free(x);
}

/* A decimal in [lo, hi] from a CONFIG field; -1 when not. */
static long field_long(struct bg_str s, long lo, long hi)
{
	long v = 0;
	if (s.len == 0 || s.len > 10)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (s.p[i] - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

/* argv from the JSON array of non-empty strings in s. */
static int parse_argv(struct bg_exec *x, struct bg_str s)
{
	json_t *a = json_loadb(s.p, s.len, 0, NULL);
	size_t n = json_array_size(a);
	int rc = n ? 0 : -EINVAL;
	if (rc == 0 && (x->argv = calloc(n + 1, sizeof(char *))) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *w = json_array_get(a, i);
		if (!json_is_string(w) || json_string_length(w) == 0 ||
		    strlen(json_string_value(w)) != json_string_length(w))
			rc = -EINVAL;
		else if ((x->argv[i] = strdup(json_string_value(w))) == NULL)
			rc = -ENOMEM;
	}
	json_decref(a);
	return rc;
}

/* Does environment entry e set one of the variables in own[]? */
static bool is_own(const char *e, char *const *own, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(own[i], "=") + 1;
		if (strncmp(e, own[i], len) == 0)
			return true;
	}
	return false;
}

/* The program's environment: environ (the child's, built by bygated; a
 * task process's own, see taskproc.c), then the agent type's `env`, then
 * BYGATE_AGENT_TYPE, BYGATE_HANDLER_PROTOCOL and BYGATE_MAX_INFLIGHT
 * (x->own_env), each name once. */
static int build_envp(struct bg_exec *x, const struct bg_confine *cf)
{
	char **own = x->own_env;
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	free(x->envp);
	x->envp = calloc(n + cf->n_env + BG_EXEC_OWN_ENV + 2, sizeof(char *));
	if (x->envp == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!is_own(environ[i], own, BG_EXEC_OWN_ENV) &&
		    !is_own(environ[i], cf->env, cf->n_env))
			x->envp[k++] = environ[i];
	for (size_t i = 0; i < cf->n_env; i++)
		if (!is_own(cf->env[i], own, BG_EXEC_OWN_ENV))
			x->envp[k++] = cf->env[i];
	memcpy(&x->envp[k], own, sizeof(x->own_env));
	k += BG_EXEC_OWN_ENV;
	if (x->preload && !getenv("LD_PRELOAD"))
		x->envp[k++] = x->preload;
	return 0;
}

static int make_envp(struct bg_exec *x, const struct bg_agent *a)
{
	char **own = x->own_env;
	if (asprintf(&own[0], "BYGATE_AGENT_TYPE=%s", a->name) == -1)
		own[0] = NULL; /* asprintf leaves it undefined */
	if (asprintf(&own[1], "BYGATE_HANDLER_PROTOCOL=%d",
		     BG_PROTOCOL_VERSION) == -1)
		own[1] = NULL;
	if (asprintf(&own[2], "BYGATE_MAX_INFLIGHT=%d", x->max_inflight) == -1)
		own[2] = NULL;
	if (!own[0] || !own[1] || !own[2])
		return -ENOMEM;
	return build_envp(x, &a->confine);
}

void bg_child_exec_env(struct bg_agent *a)
{
	if (build_envp(a->exec, &a->confine))
		_exit(BG_CHILD_EXIT_TASK_DIED); /* a task process without memory */
}

/* A strict agent type with a memory limit gets libbygate-memwatch.so
 * (next to this binary) preloaded, and may read it. */
static int memwatch(struct bg_agent *a)
{
	struct bg_exec *x = a->exec;
	struct bg_confine *cf = &a->confine;
	if (!cf->strict || cf->memory_mb <= 0)
		return 0;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 0;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return 0;
	*slash = '\0';
	char *lib = NULL;
	if (asprintf(&lib, "%s/%s", self, BG_MEMWATCH_LIB) == -1)
		return -ENOMEM;
	if (access(lib, R_OK) == -1) {
		free(lib); /* not installed: failures stay unexplained */
		return 0;
	}
	char **paths = realloc(cf->program_paths,
			       (cf->n_program_paths + 2) * sizeof(char *));
	if (paths == NULL || asprintf(&x->preload, "LD_PRELOAD=%s", lib) == -1) {
		if (paths)
			cf->program_paths = paths;
		free(lib);
		x->preload = NULL;
		return -ENOMEM;
	}
	cf->program_paths = paths;
	cf->program_paths[cf->n_program_paths++] = lib;
	cf->program_paths[cf->n_program_paths] = NULL;
	return 0;
}

int bg_child_exec_configure(struct bg_agent *a, const struct bg_str *f,
			    struct bg_buf *err)
{
	struct bg_exec *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	a->exec = x;
	/* Writing to a program that died must be an error, not our death;
	 * programs get the default action back (posix_spawn below). */
	signal(SIGPIPE, SIG_IGN);
	long inflight = field_long(f[BG_KF_MAX_INFLIGHT], 1, 64);
	long max_line = field_long(f[BG_KF_MAX_LINE], 1024, 1L << 30);
	bool per_task = bg_str_eq(f[BG_KF_MODE], "per_task");
	const char *bad = NULL;
	int rc = parse_argv(x, f[BG_KF_ARGV]);
	if (rc == -EINVAL)
		bad = "command";
	else if (rc == 0 && inflight < 0)
		bad = "max_inflight";
	else if (rc == 0 && max_line < 0)
		bad = "max_line_bytes";
	else if (rc == 0 && !per_task &&
		 !bg_str_eq(f[BG_KF_MODE], "persistent"))
		bad = "mode";
	else if (rc == 0 && (f[BG_KF_WORKDIR].len == 0 ||
			     memchr(f[BG_KF_WORKDIR].p, '\0',
				    f[BG_KF_WORKDIR].len)))
		bad = "working directory";
	if (bad) {
		bg_buf_reset(err);
		bg_buf_printf(err, "agent type '%s': invalid exec %s in CONFIG",
			      a->name, bad);
		return -EINVAL;
	}
	x->per_task = per_task;
	x->max_inflight = per_task ? 1 : (int)inflight;
	x->max_line = (size_t)max_line;
	x->workdir = strndup(f[BG_KF_WORKDIR].p, f[BG_KF_WORKDIR].len);
	if (rc == 0 && x->workdir == NULL)
		rc = -ENOMEM;
	a->confine.exec = true;
	if (rc == 0)
		rc = bg_confine_program_paths(&a->confine, x->argv, x->workdir);
	if (rc == 0)
		rc = memwatch(a);
	return rc ? rc : make_envp(x, a);
}

/* ---- starting, stopping ------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ? -errno
								     : 0;
}

/* Where a program failed before it ran, for its error pipe. */
struct spawn_err {
	int err;
	char why[160];
};

static _Noreturn void spawn_failed(int fd, int err, const char *why)
{
	struct spawn_err e = { err, "" };
	snprintf(e.why, sizeof(e.why), "%s", why);
	ssize_t w = write(fd, &e, sizeof(e));
	(void)w;
	_exit(127);
}

/* In the forked process: fds, directory, signals, confinement, exec. */
static _Noreturn void spawn_exec(struct bg_child *c, struct bg_agent *a,
				 int in, int out, int err, int efd)
{
	struct bg_exec *x = a->exec;
	if (dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(err, 2) == -1)
		spawn_failed(efd, errno, "dup2()");
	/* Everything else is closed by the exec (the error pipe too). */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == -1)
		for (int fd = 3; fd < 1024; fd++)
			if (fd != efd)
				close(fd);
	if (chdir(x->workdir) == -1)
		spawn_failed(efd, errno, "chdir() to the working directory");
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	char why[200] = "";
	int rc = 0;
	if (a->confine.strict && !x->per_task && !c->no_sandbox) {
		/* A persistent program serves every session of its agent
		 * type: confined to the agent type's tree. */
		const char *rw[] = { a->confine.agent_dir };
		rc = bg_confine_apply(&a->confine, rw, 1, why,
				      sizeof(why));
	} else if (a->confine.strict && !c->no_sandbox) {
		rc = bg_confine_memory(&a->confine, why, sizeof(why));
	}
	if (rc == 0 && a->confine.strict && !c->no_sandbox)
		rc = bg_confine_processes(&a->confine, why, sizeof(why));
	if (rc)
		spawn_failed(efd, -rc, why);
	execvpe(x->argv[0], x->argv, x->envp);
	spawn_failed(efd, errno, "execvp()");
}

/* Start a's command in its working directory with in, out and err as fds
 * 0-2 and nothing else, default signal handling, and (strict persistent
 * programs) the agent type's confinement. 0 or -errno with why set. */
static int spawn(struct bg_child *c, struct bg_agent *a, pid_t *pid, int in,
		 int out, int err, const char **why)
{
	static char reason[200];
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) == -1) {
		*why = "pipe2()";
		return -errno;
	}
	pid_t p = fork();
	if (p == 0) {
		close(ep[0]);
		spawn_exec(c, a, in, out, err, ep[1]);
	}
	int rc = p == -1 ? -errno : 0;
	close(ep[1]);
	struct spawn_err e;
	ssize_t n = p == -1 ? 0 : read(ep[0], &e, sizeof(e));
	close(ep[0]);
	if (p == -1) {
		*why = "fork()";
	} else if (n == (ssize_t)sizeof(e)) {
		while (waitpid(p, NULL, 0) == -1 && errno == EINTR)
			;
		e.why[sizeof(e.why) - 1] = '\0';
		snprintf(reason, sizeof(reason), "%s", e.why);
		*why = reason;
		rc = e.err > 0 ? -e.err : -EINVAL;
	} else {
		*pid = p;
	}
	return rc;
}

/* A running program for agent a, linked into c->progs. 0, or a negative
 * errno with the failed call named in why. */
static int prog_start(struct bg_child *c, struct bg_agent *a,
		      struct bg_prog **out, const char **why)
{
	int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
	struct bg_prog *p = calloc(1, sizeof(*p));
	int rc = p ? 0 : -ENOMEM;
	*why = "pipe2()";
	if (rc == 0 && (pipe2(in, O_CLOEXEC) == -1 || pipe2(o, O_CLOEXEC) == -1 ||
			pipe2(e, O_CLOEXEC) == -1))
		rc = -errno;
	if (rc == 0 && ((rc = nonblock(in[1])) || (rc = nonblock(o[0])) ||
			(rc = nonblock(e[0]))))
		*why = "fcntl(O_NONBLOCK)";
	if (rc == 0)
		rc = spawn(c, a, &p->pid, in[0], o[1], e[1], why);
	close_fd(&in[0]);
	close_fd(&o[1]);
	close_fd(&e[1]);
	if (rc) {
		close_fd(&in[1]);
		close_fd(&o[0]);
		close_fd(&e[0]);
		free(p);
		return rc;
	}
	p->agent = a;
	p->in_fd = in[1];
	p->out_fd = o[0];
	p->err_fd = e[0];
	p->next = c->progs;
	c->progs = p;
	*out = p;
	return 0;
}

/* Has p exited (reaped now) within ms? */
static bool exits_within(struct bg_prog *p, int ms)
{
	for (int64_t end = mono_ms() + ms; !p->reaped; ) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid)
			p->reaped = true;
		else if (r == -1 && errno != EINTR)
			return false;
		else if (mono_ms() >= end)
			return false;
		else
			nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
	}
	return true;
}

/* Wait for p up to ms, then SIGKILL it; its wait status, once. */
static int prog_wait(struct bg_prog *p, int ms)
{
	if (!exits_within(p, ms)) {
		kill(p->pid, SIGKILL);
		p->killed = true;
		while (waitpid(p->pid, &p->status, 0) == -1 && errno == EINTR)
			;
		p->reaped = true;
	}
	return p->status;
}

static void prog_unlink(struct bg_child *c, struct bg_prog *p)
{
	for (struct bg_prog **pp = &c->progs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->agent->exec->prog == p)
		p->agent->exec->prog = NULL;
}

/* Unlink, close our ends, reap (killing it after ms), free. */
static void prog_free(struct bg_child *c, struct bg_prog *p, int ms)
{
	prog_unlink(c, p);
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	prog_wait(p, ms);
	bg_buf_free(&p->out);
	bg_buf_free(&p->err);
	bg_buf_free(&p->pending);
	free(p);
}

static void describe_status(const struct bg_prog *p, char *buf, size_t n)
{
	int st = p->status;
	if (p->killed)
		snprintf(buf, n, "closed its stdout but did not exit");
	else if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "ended with wait status %d", st);
}

/* "exec handler 'python3' of agent type 'planner' (pid 42)" */
static void who(const struct bg_prog *p, char *buf, size_t n)
{
	snprintf(buf, n, "exec handler '%.100s' of agent type '%.128s' "
			 "(pid %ld)",
		 p->agent->exec->argv[0], p->agent->name, (long)p->pid);
}

static void child_log(struct bg_child *c, uint64_t tag, const char *level,
		      const char *text)
{
	struct bg_str v[2] = { bg_str_c(level), bg_str_c(text) };
	bg_child_send(c, BG_REC_LOG, tag, v, 2);
}

void bg_child_prog_fail(struct bg_child *c, struct bg_prog *p,
			const char *what)
{
	char name[300], msg[1024];
	who(p, name, sizeof(name));
	if (!p->reaped)
		kill(p->pid, SIGKILL);
	snprintf(msg, sizeof(msg), "%s %s%s%s%s", name, what,
		 p->last_err[0] ? " (its last stderr line: \"" : "",
		 p->last_err, p->last_err[0] ? "\")" : "");
	bool had_tasks = p->n_tasks > 0;
	/* With several tasks in it, which one killed it is unknown: bygated
	 * re-runs each alone before the failure counts (DESIGN 5). */
	bool shared = p->n_tasks > 1;
	for (struct bg_ctx *x = c->exec_tasks, *next; x; x = next) {
		next = x->next;
		if (x->prog == p) {
			x->interrupted = shared;
			bg_child_fail_task(x, msg);
			bg_child_exec_finish(c, x);
		}
	}
	if (!had_tasks)
		child_log(c, 0, "warn", msg);
	prog_free(c, p, 0);
}

/* ---- stderr to the log -------------------------------------------------- */

/* prog's only task, or NULL. */
static struct bg_ctx *only_task(struct bg_child *c, struct bg_prog *p)
{
	if (p->n_tasks != 1)
		return NULL;
	for (struct bg_ctx *x = c->exec_tasks; x; x = x->next)
		if (x->prog == p)
			return x;
	return NULL;
}

/* Keep the start of a stderr line for failure messages, which must be
 * UTF-8: control characters become spaces, and when the kept bytes are not
 * valid UTF-8 (or were cut inside a character) every non-ASCII byte
 * becomes '?'. */
static void keep_last_err(struct bg_prog *p, const char *line, size_t len)
{
	size_t n = len < sizeof(p->last_err) - 1 ? len : sizeof(p->last_err) - 1;
	json_t *valid = json_stringn(line, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)line[i];
		p->last_err[i] = ch < 0x20 || ch == 0x7f ? ' '
				 : ch >= 0x80 && !valid ? '?'
							: (char)ch;
	}
	p->last_err[n] = '\0';
	json_decref(valid);
}

/* One stderr line to bygated's log, with the execution id when the
 * program runs exactly one task (tagged with it), else tag 0. */
static void log_err_line(struct bg_child *c, struct bg_prog *p,
			 const char *line, size_t len)
{
	struct bg_ctx *x = only_task(c, p);
	struct bg_buf b = { 0 };
	if (len == sizeof(BG_MEMWATCH_MARKER) - 1 &&
	    !memcmp(line, BG_MEMWATCH_MARKER, len)) {
		p->mem_refused = true;
		bg_child_note_mem_refused();
	}
	if (p->err_logged + len > PROG_LOG_CAP) {
		p->err_dropped += len + 1;
		return;
	}
	p->err_logged += len + 1;
	keep_last_err(p, line, len);
	bg_buf_printf(&b, "%s pid %ld%s%s%s stderr: %.*s", p->agent->name,
		      (long)p->pid, x ? " [" : "",
		      x ? x->task->f[BG_TF_EXECUTION_ID] : "", x ? "]" : "",
		      (int)len, line);
	if (b.p)
		child_log(c, x ? x->tag : 0, "info", b.p);
	bg_buf_free(&b);
}

/* Log the whole lines of p->err (at eof also the rest); a line longer than
 * LOG_LINE_MAX is cut there and the rest of it dropped. */
static void flush_err_lines(struct bg_child *c, struct bg_prog *p, bool eof)
{
	size_t start = 0;
	while (start < p->err.len) {
		char *s = p->err.p + start;
		size_t left = p->err.len - start;
		char *nl = memchr(s, '\n', left);
		size_t n = nl ? (size_t)(nl - s) : left;
		if (nl == NULL && !eof && n <= LOG_LINE_MAX)
			break;
		if (!p->err_skip && n > 0)
			log_err_line(c, p, s, n > LOG_LINE_MAX ? LOG_LINE_MAX : n);
		p->err_skip = nl == NULL && !eof;
		start += nl ? n + 1 : left;
	}
	memmove(p->err.p, p->err.p + start, p->err.len - start);
	p->err.len -= start;
}

/* Read what stderr holds. */
static void read_err(struct bg_child *c, struct bg_prog *p)
{
	while (p->err_fd >= 0 && bg_buf_reserve(&p->err, READ_CHUNK) == 0) {
		ssize_t n = read(p->err_fd, p->err.p + p->err.len, READ_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n > 0)
			p->err.len += (size_t)n;
		flush_err_lines(c, p, n <= 0);
		if (n <= 0)
			close_fd(&p->err_fd);
	}
}

/* ---- stdin, stdout ------------------------------------------------------ */

static int write_pending(struct bg_child *c, struct bg_prog *p);

int bg_child_prog_write(struct bg_child *c, struct bg_prog *p,
			const char *line, size_t len)
{
	if (len > p->agent->exec->max_line) {
		char what[160];
		snprintf(what, sizeof(what),
			 "was to be sent a line of %zu bytes, above "
			 "max_line_bytes (%zu)",
			 len, p->agent->exec->max_line);
		bg_child_prog_fail(c, p, what);
		return -1;
	}
	if (p->in_fd < 0)
		return 0; /* retiring or exited: nothing more for it */
	if (bg_buf_append(&p->pending, line, len) ||
	    bg_buf_append(&p->pending, "\n", 1)) {
		bg_child_prog_fail(c, p, "could not be written to (out of "
					 "memory)");
		return -1;
	}
	return write_pending(c, p); /* what the pipe takes now goes now */
}

/* Write what is pending. 0, or -1 when p was failed: its stdin is gone
 * while it still runs. When it exited, its stdout's end reports that. */
static int write_pending(struct bg_child *c, struct bg_prog *p)
{
	while (p->in_fd >= 0 && p->pending_off < p->pending.len) {
		ssize_t n = write(p->in_fd, p->pending.p + p->pending_off,
				  p->pending.len - p->pending_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n == -1) {
			char what[128];
			snprintf(what, sizeof(what),
				 "stopped reading its stdin (write: %s)",
				 strerror(errno));
			close_fd(&p->in_fd);
			if (exits_within(p, EXIT_WAIT_MS / 10))
				break;
			bg_child_prog_fail(c, p, what);
			return -1;
		}
		p->pending_off += (size_t)n;
	}
	bg_buf_reset(&p->pending);
	p->pending_off = 0;
	return 0;
}

/* The program closed its stdout: it exited (or is made to). Its tasks
 * fail; a per_task program that exited 0 after its result is done. */
static void stdout_closed(struct bg_child *c, struct bg_prog *p)
{
	char how[100], msg[600];
	close_fd(&p->out_fd);
	close_fd(&p->in_fd);
	read_err(c, p);
	prog_wait(p, EXIT_WAIT_MS);
	describe_status(p, how, sizeof(how));
	if (p->n_tasks > 0) {
		snprintf(msg, sizeof(msg),
			 "%s before sending the result of its task", how);
		bg_child_prog_fail(c, p, msg);
		return;
	}
	bool clean = WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0;
	if (!(p->retiring && clean && !p->killed)) {
		char name[300];
		who(p, name, sizeof(name));
		snprintf(msg, sizeof(msg), "%s %s %s", name, how,
			 p->retiring ? "after its result" : "while idle");
		child_log(c, 0, "warn", msg);
	}
	prog_free(c, p, 0);
}

/* Read stdout and handle every whole line. 0, or -1 when p is gone. */
static int read_out(struct bg_child *c, struct bg_prog *p)
{
	size_t max = p->agent->exec->max_line;
	for (;;) {
		if (bg_buf_reserve(&p->out, READ_CHUNK)) {
			bg_child_prog_fail(c, p, "could not be read (out of "
						 "memory)");
			return -1;
		}
		ssize_t n = read(p->out_fd, p->out.p + p->out.len, READ_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0) { /* a last line may lack its newline */
			if (p->out.len && p->out.len <= max &&
			    bg_proto_handle_line(c, p, p->out.p, p->out.len))
				return -1;
			stdout_closed(c, p);
			return -1;
		}
		size_t start = 0, scan = p->out.len;
		p->out.len += (size_t)n;
		char *nl;
		while ((nl = memchr(p->out.p + scan, '\n',
				    p->out.len - scan)) != NULL) {
			size_t len = (size_t)(nl - (p->out.p + start));
			scan = start + len + 1;
			if (len > max)
				break;
			if (len && p->out.p[start + len - 1] == '\r')
				len--;
			if (len && bg_proto_handle_line(c, p, p->out.p + start,
							len))
				return -1;
			start = scan;
		}
		memmove(p->out.p, p->out.p + start, p->out.len - start);
		p->out.len -= start;
		if (p->out.len > max) {
			char what[128];
			snprintf(what, sizeof(what),
				 "wrote a line longer than max_line_bytes "
				 "(%zu)",
				 max);
			bg_child_prog_fail(c, p, what);
			return -1;
		}
	}
}

/* ---- the poll loop ------------------------------------------------------- */

static int reserve_pfd(struct bg_child *c, size_t n)
{
	if (n <= c->pfd_cap)
		return 0;
	struct pollfd *pfd = realloc(c->pfd, n * sizeof(*pfd));
	struct bg_prog **progs = pfd ? realloc(c->pfd_prog,
					       n * sizeof(*progs))
				     : NULL;
	if (pfd)
		c->pfd = pfd;
	if (progs)
		c->pfd_prog = progs;
	if (pfd == NULL || progs == NULL)
		return -ENOMEM;
	c->pfd_cap = n;
	return 0;
}

/* Kill per_task programs that did not exit in time after their result. */
static void kill_overdue(struct bg_child *c)
{
	int64_t now = mono_ms();
	for (struct bg_prog *p = c->progs, *next; p; p = next) {
		next = p->next;
		if (p->retiring && now >= p->deadline_ms)
			bg_child_prog_fail(c, p, "did not exit within 2 s "
						 "of its result; killed");
	}
}

static void serve(struct bg_child *c, struct bg_prog *p,
		  const struct pollfd *f)
{
	if (f[1].revents)
		read_err(c, p);
	if (f[2].revents && write_pending(c, p))
		return;
	if (f[0].revents)
		read_out(c, p);
}

int bg_child_exec_wait(struct bg_child *c, int timeout_ms)
{
	size_t n = 0;
	for (struct bg_prog *p = c->progs; p; p = p->next)
		n++;
	if (reserve_pfd(c, 1 + 3 * n))
		return -ENOMEM;
	struct pollfd *f = c->pfd;
	bool ring = !(c->task_process && c->exec_tasks == NULL);
	f[0] = (struct pollfd){ .fd = ring ? BG_CHILD_FD_WAKE_CHILD : -1,
				.events = POLLIN };
	int64_t now = mono_ms();
	size_t i = 0;
	for (struct bg_prog *p = c->progs; p; p = p->next, i++) {
		c->pfd_prog[i] = p;
		bool out = p->pending_off < p->pending.len;
		f[1 + 3 * i] = (struct pollfd){ p->out_fd, POLLIN, 0 };
		f[2 + 3 * i] = (struct pollfd){ p->err_fd, POLLIN, 0 };
		f[3 + 3 * i] = (struct pollfd){ out ? p->in_fd : -1, POLLOUT, 0 };
		if (p->retiring && p->deadline_ms - now < timeout_ms)
			timeout_ms = (int)(p->deadline_ms > now
						   ? p->deadline_ms - now
						   : 0);
	}
	if (poll(f, 1 + 3 * n, timeout_ms) == -1)
		return errno == EINTR ? 0 : -errno;
	/* Serving a program frees at most that program. */
	for (i = 0; i < n; i++)
		serve(c, c->pfd_prog[i], &f[1 + 3 * i]);
	kill_overdue(c);
	return (f[0].revents & POLLIN) ? 1 : 0;
}

/* ---- tasks --------------------------------------------------------------- */

struct bg_ctx *bg_child_exec_task(struct bg_child *c, uint64_t tag)
{
	for (struct bg_ctx *x = c->exec_tasks; x; x = x->next)
		if (x->tag == tag)
			return x;
	return NULL;
}

/* The persistent program of x, if it is still alive. */
static struct bg_prog *live_prog(struct bg_child *c, struct bg_exec *x)
{
	struct bg_prog *p = x->prog;
	if (p && waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
		p->reaped = true;
		stdout_closed(c, p); /* logs how it ended, frees it */
		return NULL;
	}
	return p;
}

/* Fail ctx before it reached a program. */
static void fail_early(struct bg_child *c, struct bg_ctx *ctx,
		       const char *msg)
{
	bg_child_fail_task(ctx, msg);
	bg_child_finish(c, ctx);
}

void bg_child_exec_start(struct bg_child *c, struct bg_ctx *ctx)
{
	struct bg_exec *x = ctx->agent->exec;
	struct bg_buf line = { 0 };
	char msg[512];
	if (bg_proto_task_line(ctx, &line)) {
		bg_buf_free(&line);
		fail_early(c, ctx, "out of memory for the task line");
		return;
	}
	if (line.len > x->max_line) {
		snprintf(msg, sizeof(msg),
			 "the task line is %zu bytes, above max_line_bytes "
			 "(%zu) of agent type '%.128s'",
			 line.len, x->max_line, ctx->agent->name);
		bg_buf_free(&line);
		fail_early(c, ctx, msg);
		return;
	}
	struct bg_prog *p = x->per_task ? NULL : live_prog(c, x);
	const char *why;
	int rc = p ? 0 : prog_start(c, ctx->agent, &p, &why);
	if (rc) {
		snprintf(msg, sizeof(msg),
			 "cannot start exec handler '%.100s' of agent type "
			 "'%.128s': %s: %s",
			 x->argv[0], ctx->agent->name, why, strerror(-rc));
		bg_buf_free(&line);
		fail_early(c, ctx, msg);
		return;
	}
	if (!x->per_task)
		x->prog = p;
	ctx->prog = p;
	p->n_tasks++;
	ctx->next = c->exec_tasks;
	c->exec_tasks = ctx;
	bool cancelled = ctx->cancelled;
	if (bg_child_prog_write(c, p, line.p, line.len) == 0 && cancelled)
		bg_child_exec_cancel(c, ctx, bg_str_c(""));
	bg_buf_free(&line);
}

void bg_child_exec_finish(struct bg_child *c, struct bg_ctx *ctx)
{
	for (struct bg_ctx **pp = &c->exec_tasks; *pp; pp = &(*pp)->next)
		if (*pp == ctx) {
			*pp = ctx->next;
			break;
		}
	struct bg_prog *p = ctx->prog;
	/* A refused allocation is written to stderr before the failure it
	 * causes reaches stdout: read it first. */
	if (p && p->err_fd >= 0)
		read_err(c, p);
	if (p && p->mem_refused)
		ctx->mem_refused = true;
	if (p && --p->n_tasks == 0)
		p->mem_refused = false;
	if (p && p->n_tasks == 0 && p->err_dropped) {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "%zu bytes of the program's stderr not logged (at "
			 "most %d while it runs its tasks)",
			 p->err_dropped, PROG_LOG_CAP);
		child_log(c, ctx->tag, "warn", msg);
	}
	if (p && p->n_tasks == 0)
		p->err_logged = p->err_dropped = 0;
	if (p && p->n_tasks == 0 && p->agent->exec->per_task) {
		p->retiring = true;
		p->deadline_ms = mono_ms() + RETIRE_GRACE_MS;
		close_fd(&p->in_fd); /* end of input: time to exit */
	}
	bg_child_finish(c, ctx);
}

void bg_child_exec_cancel(struct bg_child *c, struct bg_ctx *ctx,
			  struct bg_str reason)
{
	struct bg_buf line = { 0 };
	ctx->cancelled = true;
	if (bg_proto_cancel_line(ctx, reason, &line) == 0)
		bg_child_prog_write(c, ctx->prog, line.p, line.len);
	bg_buf_free(&line);
}

void bg_child_exec_reply(struct bg_child *c, struct bg_ctx *ctx,
			 struct bg_str id, struct bg_str result)
{
	char want[24];
	json_t *res = NULL;
	bg_child_call_id(ctx, want, sizeof(want));
	if (ctx->req_id == NULL || !bg_str_eq(id, want) ||
	    bg_child_call_done(ctx, result, &res))
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "REPLY %.*s of tag %llu does not answer a pending "
			     "call with a JSON object",
			     (int)(id.len > 24 ? 24 : id.len), id.p,
			     (unsigned long long)ctx->tag);
	struct bg_buf line = { 0 };
	int rc = bg_proto_reply_line(ctx, ctx->req_id, res, &line);
	if (rc == 0 && line.len > ctx->agent->exec->max_line) {
		json_t *err = json_pack(
			"{s:s,s:s}", "error",
			"the reply is longer than max_line_bytes", "error_code",
			"LINE_TOO_LONG");
		bg_buf_reset(&line);
		rc = err ? bg_proto_reply_line(ctx, ctx->req_id, err, &line)
			 : -ENOMEM;
		json_decref(err);
	}
	json_decref(res);
	json_decref(ctx->req_id);
	ctx->req_id = NULL;
	if (rc)
		bg_child_prog_fail(c, ctx->prog, "could not be sent its reply "
						 "(out of memory)");
	else
		bg_child_prog_write(c, ctx->prog, line.p, line.len);
	bg_buf_free(&line);
}

/* ---- the exec loop ------------------------------------------------------- */

static bool any_retiring(const struct bg_child *c)
{
	for (struct bg_prog *p = c->progs; p; p = p->next)
		if (p->retiring)
			return true;
	return false;
}

/* May the TASK m start now, next to the tasks in flight? Only in a
 * persistent program with room left (max_inflight), started for it when
 * its agent type has none yet. */
static bool joins_now(struct bg_child *c, const struct bg_child_msg *m)
{
	struct bg_str name = bg_child_task_agent_type(m->p, m->len);
	for (size_t i = 0; i < c->n_agents; i++) {
		struct bg_agent *a = &c->agents[i];
		if (!bg_str_eq(name, a->name))
			continue;
		struct bg_exec *x = a->exec;
		return x && !x->per_task && !m->cancelled &&
		       (x->prog == NULL || x->prog->n_tasks < x->max_inflight);
	}
	return false;
}

static void on_reply(struct bg_child *c, const struct bg_child_msg *m)
{
	struct bg_str f[BG_YF__COUNT];
	struct bg_ctx *ctx = bg_child_exec_task(c, m->tag);
	if (bg_rec_unpack(m->p, m->len, f, BG_YF__COUNT) || ctx == NULL)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "malformed REPLY, or one for tag %llu which is "
			     "not running",
			     (unsigned long long)m->tag);
	bg_child_exec_reply(c, ctx, f[BG_YF_ID], f[BG_YF_RESULT]);
}

static void start_msg(struct bg_child *c, const struct bg_child_msg *m)
{
	struct bg_ctx *ctx = bg_child_ctx_new(c, m);
	if (ctx == NULL)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "out of memory for the task of tag %llu",
			     (unsigned long long)m->tag);
	if (ctx->has_result)
		bg_child_finish(c, ctx);
	else
		bg_child_exec_start(c, ctx);
}

/* What the down ring holds, while exec tasks run. */
static void intake(struct bg_child *c)
{
	struct bg_child_msg m;
	while (bg_child_try_recv(c, &m)) {
		if (bg_child_absorb(c, &m))
			continue;
		if (m.kind == BG_REC_REPLY)
			on_reply(c, &m);
		else if (m.kind == BG_REC_TASK && joins_now(c, &m))
			start_msg(c, &m);
		else if (m.kind == BG_REC_TASK)
			bg_child_enqueue(c, &m);
		else
			bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
				     "unexpected record kind %u (tag %llu)",
				     m.kind, (unsigned long long)m.tag);
	}
}

/* Start the queued TASKs that may join now (queued while they could not,
 * e.g. behind a per_task program still exiting). */
static void start_queued(struct bg_child *c)
{
	struct bg_child_queued **pp = &c->queue, *prev = NULL;
	while (*pp) {
		struct bg_child_queued *q = *pp;
		if (q->msg.kind != BG_REC_TASK || !joins_now(c, &q->msg)) {
			prev = q;
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		if (c->queue_tail == q)
			c->queue_tail = prev;
		start_msg(c, &q->msg); /* the task copies what it keeps */
		free(q);
	}
}

void bg_child_exec_drain(struct bg_child *c)
{
	while (c->exec_tasks || any_retiring(c)) {
		if (c->task_process && c->exec_tasks == NULL) {
			/* Our RESULT is sent: the ring is the child's again
			 * (taskproc.c); only wait for the program to exit. */
			bg_child_exec_wait(c, BG_CHILD_WAIT_MS);
			continue;
		}
		start_queued(c);
		intake(c);
		if (c->exec_tasks || any_retiring(c))
			bg_child_sleep(c);
	}
}

void bg_child_exec_shutdown(struct bg_child *c, bool graceful)
{
	for (struct bg_prog *p = c->progs; p; p = p->next) {
		close_fd(&p->in_fd);
		if (!graceful && !p->reaped)
			kill(p->pid, SIGKILL);
	}
	int64_t end = mono_ms() + (graceful ? SHUTDOWN_GRACE_MS : 0);
	while (c->progs) {
		int64_t left = end - mono_ms();
		prog_free(c, c->progs, left > 0 ? (int)left : 0);
	}
	free(c->pfd);
	free(c->pfd_prog);
	c->pfd = NULL;
	c->pfd_prog = NULL;
	c->pfd_cap = 0;
}
