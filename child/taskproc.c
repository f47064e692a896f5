/* child/taskproc.c - a fresh process per task of a strict agent type
 * (plugin or per_task exec): forked from the preloaded child, confined to
 * its session (confine.c), running the task on the rings exactly as the
 * child would, then gone. The child meanwhile only reads the task's
 * output (bounded, escaped, one line at a time with the execution id:
 * taskwatch.c) and waits; when the task process ends it kills whatever the
 * task left running (the child is the init of its PID namespace, or a
 * subreaper: taskwatch.c), picks the rings up where the task process left
 * them, and accounts for an end without a RESULT: a resource limit becomes
 * a FAILED result with error_code RESOURCE_LIMIT sent by the child, which
 * serves on; anything else ends the child so that bygated sees the task's
 * death as it always did (exit BG_CHILD_EXIT_TASK_DIED, the task
 * process's status in the scoreboard). */
#include "child/child.h"
#include "common/waitstatus.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Written by the task process, read by the child after it ended. */
struct task_share {
	uint32_t result_sent; /* its RESULT is in the up ring */
	uint32_t stop;	      /* it absorbed a STOP */
	uint32_t mem_refused; /* an allocation was refused (memory_mb) */
	uint32_t lost;	      /* it queued a message meant for the child */
	/* The TASK handed to a spare (the message itself is in g_msg). */
	uint64_t tag;
	uint32_t len;
	uint16_t kind;
	uint8_t cancelled;
};

/* A spare task process, forked ahead while the child waits for work: it
 * blocks on `go` until the child has a task for it, then confines itself
 * and runs it. The fork (about a millisecond on a VM) leaves the task's
 * critical path. */
struct spare {
	pid_t pid; /* 0: none */
	int go_fd; /* write one byte: the task is in g_share and g_msg */
	int out_fd;
};
static struct spare g_spare = { 0, -1, -1 };
static uint8_t *g_msg; /* shared copy of the TASK, max_message bytes */
static size_t g_msg_cap;

static struct task_share *g_share;
extern char **environ;

struct bg_agent *bg_child_isolated(struct bg_child_proc *c,
				   const struct bg_child_msg *m)
{
	if (c->no_sandbox)
		return NULL;
	struct bg_str type = bg_child_task_agent_type(m->p, m->len);
	char name[256];
	if (type.len == 0 || type.len >= sizeof(name))
		return NULL;
	memcpy(name, type.p, type.len);
	name[type.len] = '\0';
	struct bg_agent *a = bg_child_find_agent(c, name);
	return a && a->confine.strict && (a->exec == NULL || a->exec->per_task)
		       ? a
		       : NULL;
}

/* ---- the task process --------------------------------------------------- */

static void copy_field(char *dst, size_t n, struct bg_str v)
{
	size_t len = v.len < n - 1 ? v.len : n - 1;
	memcpy(dst, v.p, len);
	dst[len] = '\0';
}

/* The task's environment: PATH, LANG, LC_* and TZ of the child's (built by
 * bygated), HOME and TMPDIR in the task's directories, its BYGATE_*
 * variables, then the agent type's `env`. */
static void task_environment(struct bg_agent *a, const struct bg_str *v)
{
	static const char *const keep[] = { "PATH=", "LANG=", "LC_",
					    "TZ=", NULL };
	size_t n = 0;
	for (char **e = environ; *e; e++)
		n++;
	char **old = calloc(n + 1, sizeof(char *));
	for (size_t i = 0, k = 0; old && i < n; i++)
		for (const char *const *p = keep; *p; p++)
			if (!strncmp(environ[i], *p, strlen(*p))) {
				old[k++] = strdup(environ[i]);
				break;
			}
	clearenv();
	for (size_t i = 0; old && old[i]; i++)
		putenv(old[i]); /* kept for the process's life */
	free(old);
	char f[4096];
	static const struct {
		const char *name;
		int field;
	} vars[] = {
		{ "HOME", BG_TF_WORKSPACE },
		{ "BYGATE_WORKSPACE", BG_TF_WORKSPACE },
		{ "TMPDIR", BG_TF_PRIVATE_DIR },
		{ "BYGATE_PRIVATE_DIR", BG_TF_PRIVATE_DIR },
		{ "BYGATE_SESSION_ID", BG_TF_SESSION_ID },
		{ "BYGATE_EXECUTION_ID", BG_TF_EXECUTION_ID },
		{ "BYGATE_AGENT_TYPE", BG_TF_AGENT_TYPE },
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		copy_field(f, sizeof(f), v[vars[i].field]);
		if (f[0])
			setenv(vars[i].name, f, 1);
	}
	for (size_t i = 0; i < a->confine.n_env; i++)
		putenv(a->confine.env[i]);
	if (a->exec)
		bg_child_exec_env(a);
}

/* In the forked process: confine, run, leave. Never returns. */
static _Noreturn void task_process(struct bg_child_proc *c,
				   const struct bg_child_msg *m,
				   struct bg_agent *a, const struct bg_str *v,
				   int out_fd)
{
	if (out_fd >= 0 && (dup2(out_fd, STDOUT_FILENO) == -1 ||
			    dup2(out_fd, STDERR_FILENO) == -1))
		_exit(BG_CHILD_EXIT_TASK_DIED);
	if (out_fd >= 0)
		close(out_fd);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The child's programs are not ours: a wait for a REPLY must not
	 * poll their pipes, nor an exit end them. */
	bg_child_prog_disown_all(c);
	c->ppid = getppid(); /* the child: orphan checks watch it now */
	c->task_process = true;
	bg_child_no_scrub = true;
	/* Another agent type's `env` (its API keys) is no business of this
	 * task: wiped from our copy of the child's memory. */
	for (size_t i = 0; i < c->n_agents; i++)
		if (&c->agents[i] != a)
			for (size_t k = 0; k < c->agents[i].confine.n_env; k++)
				explicit_bzero(
					c->agents[i].confine.env[k],
					strlen(c->agents[i].confine.env[k]));
	task_environment(a, v);
	char ws[4096], priv[4096], why[200] = "";
	copy_field(ws, sizeof(ws), v[BG_TF_WORKSPACE]);
	copy_field(priv, sizeof(priv), v[BG_TF_PRIVATE_DIR]);
	const char *rw[2];
	size_t n_rw = 0;
	if (ws[0])
		rw[n_rw++] = ws;
	if (priv[0]) { /* made here, lazily (bg_child_private_dir_make): a
			* failure shows in the confinement's error */
		(void)bg_child_private_dir_make(priv);
		rw[n_rw++] = priv;
	}
	int rc = bg_confine_apply(&a->confine, rw, n_rw, why, sizeof(why));
	if (rc) {
		struct bg_ctx *ctx = bg_child_ctx_new(c, m);
		char msg[320];
		snprintf(msg, sizeof(msg),
			 "cannot confine the task (sandbox.profile strict): "
			 "%s: %s",
			 why, strerror(-rc));
		if (ctx) {
			bg_child_fail_task(ctx, msg);
			bg_child_finish(c, ctx);
			g_share->result_sent = 1;
		}
		_exit(0);
	}
	/* Nothing above the rings' fds 3-5 is the task's: the prepared
	 * paths are closed (the child's programs' pipes already are). */
	if (syscall(SYS_close_range, 6, ~0U, 0) == -1)
		for (size_t i = 0; i < c->n_agents; i++)
			bg_confine_close(&c->agents[i].confine);
	bg_child_run(c, m);
	__atomic_store_n(&g_share->lost, c->queue != NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&g_share->stop, c->stop_requested, __ATOMIC_RELAXED);
	__atomic_store_n(&g_share->result_sent, 1, __ATOMIC_RELEASE);
	_exit(0);
}

/* ---- accounting --------------------------------------------------------- */

/* The limit a task process that ended without its RESULT ran into, or
 * NULL. */
static const char *limit_hit(const struct bg_confine *cf, int status,
			     const struct rusage *ru, bool mem_refused,
			     char *text, size_t n)
{
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	long cpu = ru->ru_utime.tv_sec + ru->ru_stime.tv_sec;
	if (cf->cpu_seconds &&
	    (sig == SIGXCPU || (sig == SIGKILL && cpu >= cf->cpu_seconds))) {
		snprintf(text, n, "cpu_seconds: the task used its %ld s of CPU",
			 cf->cpu_seconds);
		return "cpu_seconds";
	}
	if (cf->file_size_mb && sig == SIGXFSZ) {
		snprintf(text, n,
			 "file_size_mb: the task wrote past the %ld "
			 "MiB file size limit",
			 cf->file_size_mb);
		return "file_size_mb";
	}
	if (cf->memory_mb && mem_refused) {
		snprintf(text, n,
			 "memory_mb: an allocation past the task's "
			 "%ld MiB of address space was refused",
			 cf->memory_mb);
		return "memory_mb";
	}
	return NULL;
}

/* A FAILED result with error_code RESOURCE_LIMIT, sent by the child. */
static void fail_limit(struct bg_child_proc *c, const struct bg_child_msg *m,
		       const char *limit, const char *text)
{
	struct bg_ctx *ctx = bg_child_ctx_new(c, m);
	if (ctx == NULL)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL, "out of memory");
	char msg[400];
	snprintf(msg, sizeof(msg), "resource limit reached: %s", text);
	bg_child_fail_limit(ctx, msg, limit);
	bg_child_finish(c, ctx);
}

static void resync(struct bg_child_proc *c)
{
	if (bg_ring_resync(&c->seg.down) || bg_ring_resync(&c->seg.up))
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "rings left invalid by a task process");
}

static void share_map(struct bg_child_proc *c)
{
	if (g_share != NULL)
		return;
	g_share = mmap(NULL, sizeof(*g_share), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g_share == MAP_FAILED)
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "mmap(task share) failed: %s", strerror(errno));
	bg_child_mem_refused_shared = &g_share->mem_refused;
	/* Reserved, not committed: a TASK is usually a few KiB. */
	g_msg_cap = bg_child_max_message(c);
	g_msg = mmap(NULL, g_msg_cap, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g_msg == MAP_FAILED) {
		g_msg = NULL;
		g_msg_cap = 0;
	}
}

static void spare_drop(void)
{
	if (g_spare.pid > 0) {
		kill(g_spare.pid, SIGKILL);
		while (waitpid(g_spare.pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	if (g_spare.go_fd >= 0)
		close(g_spare.go_fd);
	if (g_spare.out_fd >= 0)
		close(g_spare.out_fd);
	g_spare = (struct spare){ 0, -1, -1 };
}

/* In the spare: wait for the go, take the TASK from shared memory and pick
 * the rings up where the child left them. Never returns. */
static _Noreturn void spare_wait(struct bg_child_proc *c, int go)
{
	uint8_t b;
	ssize_t n;
	while ((n = read(go, &b, 1)) == -1 && errno == EINTR)
		;
	if (n != 1)
		_exit(0); /* dropped, or the child is gone */
	close(go);
	struct bg_child_msg m = { .kind = g_share->kind,
				  .tag = g_share->tag,
				  .p = g_msg,
				  .len = g_share->len,
				  .cancelled = g_share->cancelled != 0 };
	if (bg_ring_resync(&c->seg.down) || bg_ring_resync(&c->seg.up))
		_exit(BG_CHILD_EXIT_TASK_DIED);
	/* The child's queue as it was at our fork is not ours to serve. */
	c->queue = c->queue_tail = NULL;
	c->held = NULL;
	c->stop_requested = false;
	struct bg_str v[BG_TF__COUNT];
	char name[256];
	if (bg_rec_unpack(m.p, m.len, v, BG_TF__COUNT))
		_exit(BG_CHILD_EXIT_TASK_DIED);
	copy_field(name, sizeof(name), v[BG_TF_AGENT_TYPE]);
	task_process(c, &m, bg_child_find_agent(c, name), v, -1);
}

void bg_child_spare_start(struct bg_child_proc *c)
{
	if (g_spare.pid > 0 || c->no_sandbox)
		return;
	share_map(c);
	if (g_msg == NULL)
		return;
	int go[2], out[2];
	if (pipe2(go, O_CLOEXEC) == -1)
		return;
	if (pipe2(out, O_CLOEXEC) == -1) {
		close(go[0]);
		close(go[1]);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		close(go[1]);
		close(out[0]);
		if (dup2(out[1], STDOUT_FILENO) == -1 ||
		    dup2(out[1], STDERR_FILENO) == -1)
			_exit(0);
		close(out[1]);
		/* The child's ends of its programs' pipes: held here while
		 * we wait, a program would never see its stdin close. */
		bg_child_prog_disown_all(c);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		spare_wait(c, go[0]);
	}
	close(go[0]);
	close(out[1]);
	if (pid == -1) {
		close(go[1]);
		close(out[0]);
		return;
	}
	g_spare = (struct spare){ pid, go[1], out[0] };
}

/* Hand TASK m to the spare: its pid and output pipe, or 0 when there is
 * no usable spare (the caller forks). */
static pid_t spare_take(const struct bg_child_msg *m, int *out_fd)
{
	if (g_spare.pid <= 0)
		return 0;
	if (m->len > g_msg_cap ||
	    waitpid(g_spare.pid, NULL, WNOHANG) != 0) { /* gone, or too big */
		spare_drop();
		return 0;
	}
	memcpy(g_msg, m->p, m->len);
	g_share->kind = m->kind;
	g_share->tag = m->tag;
	g_share->len = (uint32_t)m->len;
	g_share->cancelled = m->cancelled;
	if (write(g_spare.go_fd, "g", 1) != 1) {
		spare_drop();
		return 0;
	}
	pid_t pid = g_spare.pid;
	*out_fd = g_spare.out_fd;
	close(g_spare.go_fd);
	g_spare = (struct spare){ 0, -1, -1 };
	return pid;
}

void bg_child_run_isolated(struct bg_child_proc *c,
			   const struct bg_child_msg *m, struct bg_agent *a)
{
	struct bg_str v[BG_TF__COUNT];
	if (bg_rec_unpack(m->p, m->len, v, BG_TF__COUNT))
		bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
			     "malformed TASK record (tag %llu)",
			     (unsigned long long)m->tag);
	share_map(c);
	memset(g_share, 0, sizeof(*g_share));
	struct bg_task_output o;
	bg_child_output_init(&o, v[BG_TF_EXECUTION_ID]);
	bg_child_score(c, BG_SCORE_BUSY, m->tag);
	bg_child_task_process_running = 1;
	int out_fd = -1;
	pid_t pid = spare_take(m, &out_fd);
	if (pid == 0) {
		int pfd[2];
		if (pipe2(pfd, O_CLOEXEC) == -1)
			bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
				     "pipe2() failed: %s", strerror(errno));
		pid = fork();
		if (pid == 0) {
			bg_child_task_process_running = 0;
			signal(SIGTERM, SIG_DFL);
			signal(SIGPIPE, SIG_DFL);
			close(pfd[0]);
			task_process(c, m, a, v, pfd[1]);
		}
		close(pfd[1]);
		if (pid == -1)
			bg_child_die(c, BG_CHILD_EXIT_PROTOCOL,
				     "fork() of a task process failed: %s",
				     strerror(errno));
		out_fd = pfd[0];
	}
	o.fd = out_fd;
	fcntl(o.fd, F_SETFL, O_NONBLOCK);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool open = true;
	for (;;) {
		struct pollfd p[2];
		nfds_t n = 0;
		if (open)
			p[n++] = (struct pollfd){ o.fd, POLLIN, 0 };
		if (pidfd >= 0)
			p[n++] = (struct pollfd){ pidfd, POLLIN, 0 };
		int r = poll(p, n, pidfd >= 0 ? -1 : 50);
		if (r == -1 && errno != EINTR)
			break;
		if (open && r > 0 && (p[0].revents & (POLLIN | POLLHUP)))
			open = bg_child_output_read(c, &o);
		siginfo_t si = { 0 };
		if (pidfd >= 0 ? r > 0 && (p[n - 1].revents & POLLIN)
			       : waitid(P_PID, (id_t)pid, &si,
					WEXITED | WNOHANG | WNOWAIT) == 0 &&
					 si.si_pid == pid)
			break;
	}
	int status = 0;
	struct rusage ru = { 0 };
	while (wait4(pid, &status, 0, &ru) == -1 && errno == EINTR)
		;
	if (pidfd >= 0)
		close(pidfd);
	bg_child_task_process_running = 0;
	bg_child_kill_leftovers(c);
	while (bg_child_output_read(c, &o))
		;
	char o_id[sizeof(o.id)];
	memcpy(o_id, o.id, sizeof(o_id));
	bg_child_output_end(c, &o);
	resync(c);
	if (g_msg && g_share->len)
		explicit_bzero(g_msg, g_share->len);
	if (g_share->lost)
		bg_child_die(
			c, BG_CHILD_EXIT_PROTOCOL,
			"a task process read a message meant for the child");
	bool sent = g_share->result_sent, stop = g_share->stop;
	bool mem = g_share->mem_refused;
	if (sent) {
		if (stop)
			c->stop_requested = true;
		bg_child_score(c, BG_SCORE_IDLE, 0);
		return;
	}
	char limit_text[200], st[96];
	const char *limit = a ? limit_hit(&a->confine, status, &ru, mem,
					  limit_text, sizeof(limit_text))
			      : NULL;
	bg_wait_status_text(status, st, sizeof(st));
	if (limit) {
		/* The task process is gone and so is all it left: this child
		 * was never touched by it and serves on (exiting after the
		 * RESULT would cost the next task bygated sends here). */
		bg_child_warn(c, "%s: task process %d %s: %s", o_id, (int)pid,
			      st, limit_text);
		fail_limit(c, m, limit, limit_text);
		bg_child_score(c, BG_SCORE_IDLE, 0);
		return;
	}
	__atomic_store_n(&c->seg.hdr->score.task_status, (uint32_t)status,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&c->seg.hdr->score.task_status_set, 1,
			 __ATOMIC_RELEASE);
	bg_child_die(c, BG_CHILD_EXIT_TASK_DIED, "task process %d %s", (int)pid,
		     st);
}
