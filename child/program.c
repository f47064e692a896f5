/* child/program.c - handler = "exec": the programs themselves. Each is
 * started with fork and exec in the agent type's working directory,
 * inheriting only fds 0-2 (pipes to this child) and staying in the child's
 * process group, so every signal bygated sends the group (task timeout,
 * cancel, shutdown) reaches it too. Here: starting and ending them, their
 * stdin (lines queued for a full pipe), their stderr (to bygated's log a
 * line at a time) and the places their tasks hold (a program that dies
 * fails its tasks). Their stdout lines and the tasks: exec.c. */
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

#define LOG_LINE_MAX 2000 /* bytes of one stderr line sent to the log */
#define PROG_LOG_CAP                                                           \
	(64 * 1024)	       /* stderr bytes logged while a program runs
				    its tasks; the rest is counted */
#define RETIRE_GRACE_MS 2000   /* per_task program: exit after its result */
#define SHUTDOWN_GRACE_MS 1000 /* all programs at a normal child exit */
#define EXIT_WAIT_MS 500       /* a program that closed its stdout */

/* ---- starting, stopping -------------------------------------------------- */

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
static _Noreturn void spawn_exec(struct bg_child_proc *c, struct bg_agent *a,
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
		rc = bg_confine_apply(&a->confine, rw, 1, why, sizeof(why));
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
static int spawn(struct bg_child_proc *c, struct bg_agent *a, pid_t *pid,
		 int in, int out, int err, const char **why)
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
int bg_child_prog_start(struct bg_child_proc *c, struct bg_agent *a,
			struct bg_prog **out, const char **why)
{
	int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
	struct bg_prog *p = calloc(1, sizeof(*p));
	int rc = p ? 0 : -ENOMEM;
	*why = "pipe2()";
	if (rc == 0 && (pipe2(in, O_CLOEXEC) == -1 ||
			pipe2(o, O_CLOEXEC) == -1 || pipe2(e, O_CLOEXEC) == -1))
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
	for (int64_t end = bg_child_mono_ms() + ms; !p->reaped;) {
		pid_t r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid)
			p->reaped = true;
		else if (r == -1 && errno != EINTR)
			return false;
		else if (bg_child_mono_ms() >= end)
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

static void prog_unlink(struct bg_child_proc *c, struct bg_prog *p)
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
void bg_child_prog_free(struct bg_child_proc *c, struct bg_prog *p, int ms)
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
	snprintf(buf, n,
		 "exec handler '%.100s' of agent type '%.128s' "
		 "(pid %ld)",
		 p->agent->exec->argv[0], p->agent->name, (long)p->pid);
}

static void child_log(struct bg_child_proc *c, uint64_t tag, const char *level,
		      const char *text)
{
	struct bg_str v[2] = { bg_str_c(level), bg_str_c(text) };
	bg_child_send(c, BG_REC_LOG, tag, v, 2);
}

void bg_child_prog_fail(struct bg_child_proc *c, struct bg_prog *p,
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
	bg_child_prog_free(c, p, 0);
}

/* ---- stderr to the log --------------------------------------------------- */

/* prog's only task, or NULL. */
static struct bg_ctx *only_task(struct bg_child_proc *c, struct bg_prog *p)
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
	size_t n = len < sizeof(p->last_err) - 1 ? len
						 : sizeof(p->last_err) - 1;
	json_t *valid = json_stringn(line, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)line[i];
		p->last_err[i] = ch < 0x20 || ch == 0x7f ? ' '
				 : ch >= 0x80 && !valid	 ? '?'
							 : (char)ch;
	}
	p->last_err[n] = '\0';
	json_decref(valid);
}

/* One stderr line to bygated's log, with the execution id when the
 * program runs exactly one task (tagged with it), else tag 0. */
static void log_err_line(struct bg_child_proc *c, struct bg_prog *p,
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
static void flush_err_lines(struct bg_child_proc *c, struct bg_prog *p,
			    bool eof)
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
			log_err_line(c, p, s,
				     n > LOG_LINE_MAX ? LOG_LINE_MAX : n);
		p->err_skip = nl == NULL && !eof;
		start += nl ? n + 1 : left;
	}
	memmove(p->err.p, p->err.p + start, p->err.len - start);
	p->err.len -= start;
}

/* Read what stderr holds. */
void bg_child_prog_read_err(struct bg_child_proc *c, struct bg_prog *p)
{
	while (p->err_fd >= 0 &&
	       bg_buf_reserve(&p->err, BG_PROG_READ_CHUNK) == 0) {
		ssize_t n = read(p->err_fd, p->err.p + p->err.len,
				 BG_PROG_READ_CHUNK);
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

/* ---- stdin --------------------------------------------------------------- */

int bg_child_prog_write(struct bg_child_proc *c, struct bg_prog *p,
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
		bg_child_prog_fail(c, p,
				   "could not be written to (out of "
				   "memory)");
		return -1;
	}
	return bg_child_prog_flush(c, p); /* what the pipe takes now goes now */
}

/* Write what is pending. 0, or -1 when p was failed: its stdin is gone
 * while it still runs. When it exited, its stdout's end reports that. */
int bg_child_prog_flush(struct bg_child_proc *c, struct bg_prog *p)
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

/* ---- ending -------------------------------------------------------------- */

/* The program closed its stdout: it exited (or is made to). Its tasks
 * fail; a per_task program that exited 0 after its result is done. */
void bg_child_prog_closed(struct bg_child_proc *c, struct bg_prog *p)
{
	char how[100], msg[600];
	close_fd(&p->out_fd);
	close_fd(&p->in_fd);
	bg_child_prog_read_err(c, p);
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
	bg_child_prog_free(c, p, 0);
}

/* Kill per_task programs that did not exit in time after their result. */
void bg_child_prog_kill_overdue(struct bg_child_proc *c)
{
	int64_t now = bg_child_mono_ms();
	for (struct bg_prog *p = c->progs, *next; p; p = next) {
		next = p->next;
		if (p->retiring && now >= p->deadline_ms)
			bg_child_prog_fail(c, p,
					   "did not exit within 2 s "
					   "of its result; killed");
	}
}

void bg_child_prog_end_all(struct bg_child_proc *c, bool graceful)
{
	for (struct bg_prog *p = c->progs; p; p = p->next) {
		close_fd(&p->in_fd);
		if (!graceful && !p->reaped)
			kill(p->pid, SIGKILL);
	}
	int64_t end = bg_child_mono_ms() + (graceful ? SHUTDOWN_GRACE_MS : 0);
	while (c->progs) {
		int64_t left = end - bg_child_mono_ms();
		bg_child_prog_free(c, c->progs, left > 0 ? (int)left : 0);
	}
}

/* In a task process: every program in c->progs is the child's. Our
 * copies of its pipes are closed and it is forgotten, never polled,
 * reaped, killed or logged about here. */
void bg_child_prog_disown_all(struct bg_child_proc *c)
{
	while (c->progs) {
		struct bg_prog *p = c->progs;
		prog_unlink(c, p);
		close_fd(&p->in_fd);
		close_fd(&p->out_fd);
		close_fd(&p->err_fd);
		bg_buf_free(&p->out);
		bg_buf_free(&p->err);
		bg_buf_free(&p->pending);
		free(p);
	}
}

/* ---- a task's place in its program --------------------------------------- */

void bg_child_exec_finish(struct bg_child_proc *c, struct bg_ctx *ctx)
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
		bg_child_prog_read_err(c, p);
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
		p->deadline_ms = bg_child_mono_ms() + RETIRE_GRACE_MS;
		close_fd(&p->in_fd); /* end of input: time to exit */
	}
	bg_child_finish(c, ctx);
}
