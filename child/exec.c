/* child/exec.c - handler = "exec": the tasks in the programs. A task
 * starts as a task line to its program (a fresh one per task, or the
 * agent type's persistent one while it has room, max_inflight); the lines
 * the program writes back are read here and decoded by protocol.c; CANCEL
 * and REPLY records become cancel and reply lines. While exec tasks run,
 * one poll serves the down ring and every program's pipes. The programs
 * themselves (start, stdin, stderr, end): program.c. */
#include "child/child.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- stdout -------------------------------------------------------------- */

/* Read stdout and handle every whole line. 0, or -1 when p is gone. */
static int read_out(struct bg_child_proc *c, struct bg_prog *p)
{
	size_t max = p->agent->exec->max_line;
	for (;;) {
		if (bg_buf_reserve(&p->out, BG_PROG_READ_CHUNK)) {
			bg_child_prog_fail(c, p,
					   "could not be read (out of "
					   "memory)");
			return -1;
		}
		ssize_t n = read(p->out_fd, p->out.p + p->out.len,
				 BG_PROG_READ_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0) { /* a last line may lack its newline */
			if (p->out.len && p->out.len <= max &&
			    bg_proto_handle_line(c, p, p->out.p, p->out.len))
				return -1;
			bg_child_prog_closed(c, p);
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
			if (len &&
			    bg_proto_handle_line(c, p, p->out.p + start, len))
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

static int reserve_pfd(struct bg_child_proc *c, size_t n)
{
	if (n <= c->pfd_cap)
		return 0;
	struct pollfd *pfd = realloc(c->pfd, n * sizeof(*pfd));
	struct bg_prog **progs = pfd ? realloc(c->pfd_prog, n * sizeof(*progs))
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

static void serve(struct bg_child_proc *c, struct bg_prog *p,
		  const struct pollfd *f)
{
	if (f[1].revents)
		bg_child_prog_read_err(c, p);
	if (f[2].revents && bg_child_prog_flush(c, p))
		return;
	if (f[0].revents)
		read_out(c, p);
}

int bg_child_exec_wait(struct bg_child_proc *c, int timeout_ms)
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
	int64_t now = bg_child_mono_ms();
	size_t i = 0;
	for (struct bg_prog *p = c->progs; p; p = p->next, i++) {
		c->pfd_prog[i] = p;
		bool out = p->pending_off < p->pending.len;
		f[1 + 3 * i] = (struct pollfd){ p->out_fd, POLLIN, 0 };
		f[2 + 3 * i] = (struct pollfd){ p->err_fd, POLLIN, 0 };
		f[3 + 3 * i] =
			(struct pollfd){ out ? p->in_fd : -1, POLLOUT, 0 };
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
	bg_child_prog_kill_overdue(c);
	return (f[0].revents & POLLIN) ? 1 : 0;
}

/* ---- tasks --------------------------------------------------------------- */

struct bg_ctx *bg_child_exec_task(struct bg_child_proc *c, uint64_t tag)
{
	for (struct bg_ctx *x = c->exec_tasks; x; x = x->next)
		if (x->tag == tag)
			return x;
	return NULL;
}

/* The persistent program of x, if it is still alive. */
static struct bg_prog *live_prog(struct bg_child_proc *c, struct bg_exec *x)
{
	struct bg_prog *p = x->prog;
	if (p && waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
		p->reaped = true;
		bg_child_prog_closed(c, p); /* logs how it ended, frees it */
		return NULL;
	}
	return p;
}

/* Fail ctx before it reached a program. */
static void fail_early(struct bg_child_proc *c, struct bg_ctx *ctx,
		       const char *msg)
{
	bg_child_fail_task(ctx, msg);
	bg_child_finish(c, ctx);
}

void bg_child_exec_start(struct bg_child_proc *c, struct bg_ctx *ctx)
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
	int rc = p ? 0 : bg_child_prog_start(c, ctx->agent, &p, &why);
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

void bg_child_exec_cancel(struct bg_child_proc *c, struct bg_ctx *ctx,
			  struct bg_str reason)
{
	struct bg_buf line = { 0 };
	ctx->cancelled = true;
	if (bg_proto_cancel_line(ctx, reason, &line) == 0)
		bg_child_prog_write(c, ctx->prog, line.p, line.len);
	bg_buf_free(&line);
}

void bg_child_exec_reply(struct bg_child_proc *c, struct bg_ctx *ctx,
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
		json_t *err =
			json_pack("{s:s,s:s}", "error",
				  "the reply is longer than max_line_bytes",
				  "error_code", "LINE_TOO_LONG");
		bg_buf_reset(&line);
		rc = err ? bg_proto_reply_line(ctx, ctx->req_id, err, &line)
			 : -ENOMEM;
		json_decref(err);
	}
	json_decref(res);
	json_decref(ctx->req_id);
	ctx->req_id = NULL;
	if (rc)
		bg_child_prog_fail(c, ctx->prog,
				   "could not be sent its reply "
				   "(out of memory)");
	else
		bg_child_prog_write(c, ctx->prog, line.p, line.len);
	bg_buf_free(&line);
}

/* ---- the exec loop ------------------------------------------------------- */

static bool any_retiring(const struct bg_child_proc *c)
{
	for (struct bg_prog *p = c->progs; p; p = p->next)
		if (p->retiring)
			return true;
	return false;
}

/* May the TASK m start now, next to the tasks in flight? Only in a
 * persistent program with room left (max_inflight), started for it when
 * its agent type has none yet. */
static bool joins_now(struct bg_child_proc *c, const struct bg_child_msg *m)
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

static void on_reply(struct bg_child_proc *c, const struct bg_child_msg *m)
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

static void start_msg(struct bg_child_proc *c, const struct bg_child_msg *m)
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
static void intake(struct bg_child_proc *c)
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
static void start_queued(struct bg_child_proc *c)
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

void bg_child_exec_drain(struct bg_child_proc *c)
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

void bg_child_exec_shutdown(struct bg_child_proc *c, bool graceful)
{
	bg_child_prog_end_all(c, graceful);
	free(c->pfd);
	free(c->pfd_prog);
	c->pfd = NULL;
	c->pfd_prog = NULL;
	c->pfd_cap = 0;
}
