/* child/main.c - bygate-child: attach the segment inherited as fd 3, apply
 * the sandbox (sandbox.c), load the handlers a CONFIG names, say HELLO,
 * then run TASKs (one at a time; several only within one persistent exec
 * program, see exec.c) until STOP. Started by bygated (posix_spawn) as
 * `bygate-child --slot N [--generation G] [--no-sandbox]`; exit codes are
 * in child.h. The top of child/: it also gives the lower files their
 * up-calls (struct bg_child_ops). */
#include "child/child.h"
#include "common/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* ---- what the lower files call up to (struct bg_child_ops) --------------- */

/* A CANCEL for an exec task in flight goes to its program. */
static bool cancel_exec(struct bg_child_proc *c, uint64_t tag,
			struct bg_str reason)
{
	struct bg_ctx *x = bg_child_exec_task(c, tag);
	if (x)
		bg_child_exec_cancel(c, x, reason);
	return x != NULL;
}

/* Before exit: end the programs (gracefully after STOP), shutdown() the
 * handlers unless one is inside process(), free the channel. */
static void release(struct bg_child_proc *c, bool graceful)
{
	bg_child_exec_shutdown(c, graceful);
	if (c->running == NULL)
		bg_child_unload(c);
	bg_child_channel_free(c);
}

static const struct bg_child_ops child_ops = {
	.wait = bg_child_exec_wait,
	.cancel = cancel_exec,
	.release = release,
};

static int parse_long(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* --slot N is required; --generation G is accepted for `ps` only;
 * --no-sandbox (pool.sandbox = false) skips the sandbox. */
static void parse_args(struct bg_child_proc *c, int argc, char **argv)
{
	long v;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-sandbox") == 0) {
			c->no_sandbox = true;
			continue;
		}
		bool slot = strcmp(argv[i], "--slot") == 0;
		if (i + 1 >= argc || parse_long(argv[i + 1], &v) ||
		    (!slot && strcmp(argv[i], "--generation")))
			goto usage;
		if (slot)
			c->slot = v;
		i++;
	}
	if (c->slot >= 0)
		return;
usage:
	fprintf(stderr, "usage: bygate-child --slot N [--generation G] "
			"[--no-sandbox]\n"
			"  (started by bygated with its segment as fd 3 and "
			"doorbells as fds 4 and 5)\n");
	exit(BG_CHILD_EXIT_USAGE);
}

/* fds 3-5 must be open; they are made close-on-exec so nothing a handler
 * starts inherits them, and our doorbell is made non-blocking for drains. */
static void check_fds(struct bg_child_proc *c)
{
	for (int fd = BG_CHILD_FD_SEGMENT; fd <= BG_CHILD_FD_WAKE_SUPERVISOR;
	     fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl == -1 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
			bg_child_die(c, BG_CHILD_EXIT_SEGMENT,
				     "fd %d not inherited: %s", fd,
				     strerror(errno));
	}
	int st = fcntl(BG_CHILD_FD_WAKE_CHILD, F_GETFL);
	if (st == -1 ||
	    (!(st & O_NONBLOCK) &&
	     fcntl(BG_CHILD_FD_WAKE_CHILD, F_SETFL, st | O_NONBLOCK) == -1))
		bg_child_die(c, BG_CHILD_EXIT_SEGMENT,
			     "fd %d: cannot make non-blocking: %s",
			     BG_CHILD_FD_WAKE_CHILD, strerror(errno));
}

static void attach(struct bg_child_proc *c)
{
	check_fds(c);
	int rc = bg_segment_attach(BG_CHILD_FD_SEGMENT, &c->seg);
	if (rc)
		bg_child_die(c, BG_CHILD_EXIT_SEGMENT,
			     "fd %d is not a valid segment: %s",
			     BG_CHILD_FD_SEGMENT, strerror(-rc));
	if (c->seg.hdr->slot != (uint64_t)c->slot)
		bg_child_die(c, BG_CHILD_EXIT_SEGMENT,
			     "segment is for slot %u, not %ld",
			     c->seg.hdr->slot, c->slot);
	c->in.max_len = c->seg.hdr->max_message;
	/* What we consume is zeroed in the ring: task processes map it, and
	 * an earlier TASK (another session's, or CONFIG's secrets) must not
	 * be readable there. */
	c->seg.down.wipe = true;
	__atomic_store_n(&c->seg.hdr->score.pid, (uint32_t)getpid(),
			 __ATOMIC_RELAXED);
	bg_child_score(c, BG_SCORE_STARTING, 0);
}

/* Tell the supervisor why this child cannot serve (a FATAL record), then
 * exit with code. */
static _Noreturn void fatal(struct bg_child_proc *c, int code,
			    struct bg_buf *text)
{
	struct bg_str v = { text->p ? text->p : "", text->len };
	bg_child_send(c, BG_REC_FATAL, 0, &v, 1);
	bg_child_die(c, code, "%.*s", (int)v.len, v.p);
}

/* Before any handler is loaded (so plugins and exec programs inherit it);
 * a failure is FATAL unless the operator turned the sandbox off. The
 * fault point child.sandbox fails it as a kernel without seccomp would. */
static void sandbox(struct bg_child_proc *c)
{
	if (c->no_sandbox)
		return;
	char why[160];
	int rc = -ENOSYS;
	if (bg_fault_hit("child.sandbox"))
		snprintf(why, sizeof(why), "seccomp_load (fault point)");
	else
		rc = bg_child_sandbox_apply(why, sizeof(why));
	if (rc == 0)
		return;
	struct bg_buf text = { 0 };
	bg_buf_printf(&text,
		      "cannot apply the child sandbox: %s: %s (pool.sandbox = "
		      "false runs children without it)",
		      why, strerror(-rc));
	fatal(c, BG_CHILD_EXIT_SANDBOX, &text);
}

/* Wait for CONFIG, load it, answer HELLO (or FATAL and exit 71). */
static void configure(struct bg_child_proc *c)
{
	struct bg_child_msg m;
	bg_child_next(c, &m);
	if (m.kind == BG_REC_STOP)
		bg_child_die(c, 0, "stopped before CONFIG");
	if (m.kind != BG_REC_CONFIG)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "expected CONFIG, got record kind %u", m.kind);
	struct bg_buf text = { 0 };
	int rc = bg_child_load(c, m.p, m.len, &text);
	/* Parsed and copied: the agent types' env (secrets) must not linger
	 * in the reassembly buffer every task process inherits. */
	explicit_bzero((void *)m.p, m.len);
	if (rc == 0)
		rc = bg_child_agent_names(c, &text);
	if (rc) {
		if (text.len == 0)
			bg_buf_printf(&text, "CONFIG refused: %s",
				      strerror(-rc));
		fatal(c, BG_CHILD_EXIT_CONFIG, &text);
	}
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	struct bg_str hello[2] = { bg_str_c(pid), { text.p, text.len } };
	rc = bg_child_send(c, BG_REC_HELLO, 0, hello, 2);
	bg_buf_free(&text);
	if (rc)
		bg_child_die(c, BG_CHILD_EXIT_CONFIG, "cannot send HELLO: %s",
			     strerror(-rc));
	bg_child_score(c, BG_SCORE_IDLE, 0);
}

int main(int argc, char **argv)
{
	struct bg_child_proc *c = bg_child_self();
	c->ops = &child_ops;
	parse_args(c, argc, argv);
	c->ppid = getppid();
	/* Orphans of our task processes come to us (we are the init of our
	 * PID namespace too, when bygated runs as root): taskproc.c kills
	 * them when their task ends. */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	attach(c);
	bg_child_catch_sigterm();
	sandbox(c);
	configure(c);
	/* A write to a program or spare that died is an error, not our
	 * death (task processes and programs get SIGPIPE back). */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < c->n_agents; i++) {
		struct bg_agent *a = &c->agents[i];
		if (a->confine.strict && (a->exec == NULL || a->exec->per_task))
			bg_child_spare_start(c);
	}
	for (;;) {
		struct bg_child_msg m;
		struct bg_agent *isolated;
		bg_child_next(c, &m);
		switch (m.kind) {
		case BG_REC_TASK:
			isolated = bg_child_isolated(c, &m);
			if (isolated)
				bg_child_run_isolated(c, &m, isolated);
			else
				bg_child_run(c, &m);
			/* Decoded into the task's own copies: no trace left
			 * for the next task process to inherit... */
			bg_child_wipe(c, &m);
			/* ... which may be forked now. */
			if (isolated && !c->stop_requested)
				bg_child_spare_start(c);
			if (c->stop_requested)
				bg_child_die(c, 0, "stopped");
			break;
		case BG_REC_CANCEL: /* for a task that already finished */
			break;
		case BG_REC_STOP:
			bg_child_die(c, 0, "stopped");
		default:
			bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
				     "unexpected record kind %u (tag %llu)",
				     m.kind, (unsigned long long)m.tag);
		}
	}
}
