/* child/child.h - internals of bygate-child. Not installed; plugins never
 * see it. The files of child/, each calling only the ones below it (what a
 * lower file needs from an upper one goes through struct bg_child_ops,
 * set by main.c):
 *   main.c       start-up, CONFIG, HELLO, the TASK loop; sets c->ops
 *   taskproc.c   a fresh confined process per strict task
 *   taskwatch.c  its output logged, what it left behind killed
 *   run.c        one TASK to its RESULT: process() or the exec program
 *   exec.c       exec tasks: task/cancel/reply lines, stdout, the poll
 *   protocol.c   bygate-handler-protocol 1 (docs/handler-protocol.md)
 *   program.c    exec programs: start, stdin, stderr, end
 *   call.c, ctx.c   the bg_ctx_* of include/bygate/handler.h, RESULT
 *   plugin.c, execconf.c   the CONFIG record: plugins, exec agent types
 *   channel.c    the rings (up and down messages, doorbells)
 *   proc.c       the process: its state, scoreboard, warn, die, SIGTERM
 *   task.c, options.c, confine.c, sandbox.c, memwatch.c   leaves */
#ifndef BG_CHILD_CHILD_H
#define BG_CHILD_CHILD_H

#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bygate/handler.h"
#include "common/buf.h"
#include "ipc/record.h"
#include "ipc/segment.h"

/* Exit codes of bygate-child (the supervisor logs them). 0 = STOP honoured. */
#define BG_CHILD_EXIT_USAGE 64	  /* bad command line */
#define BG_CHILD_EXIT_SEGMENT 70  /* fds 3-5 missing, segment invalid */
#define BG_CHILD_EXIT_CONFIG 71	  /* CONFIG refused; FATAL says why */
#define BG_CHILD_EXIT_PROTOCOL 72 /* the supervisor broke the protocol */
#define BG_CHILD_EXIT_ORPHAN 73	  /* the supervisor (parent) is gone */
#define BG_CHILD_EXIT_SANDBOX 74  /* the sandbox failed; FATAL says why */
#define BG_CHILD_EXIT_TASK_DIED                                                \
	75 /* a task process ended without its
				      RESULT; score.task_status says how */

#define BG_CHILD_WAIT_MS 1000	/* every doorbell wait times out */
#define BG_CHILD_MAX_TYPES 256	/* agent types one CONFIG may carry */
#define BG_CHILD_MAX_STATUS 128 /* bytes of a handler's status string */

/* A down-ring message. From bg_child_next: valid until the next call of
 * bg_child_next or bg_child_poll. */
struct bg_child_msg {
	uint16_t kind;
	uint64_t tag;
	const uint8_t *p;
	size_t len;
	bool cancelled; /* a TASK whose CANCEL arrived before it started */
};

/* A message read by bg_child_poll while a task runs, kept for later. */
struct bg_child_queued {
	struct bg_child_queued *next;
	struct bg_child_msg msg; /* msg.p points at data */
	uint8_t data[];
};

struct bg_plugin {
	char *path;
	void *dl;
	const struct bg_handler *h;
};

/* handler = "exec": how an agent type's program is run (CONFIG fields). */
struct bg_exec {
	char **argv; /* NULL-terminated */
	char **envp; /* environ and own_env */
#define BG_EXEC_OWN_ENV 3
	char *own_env[BG_EXEC_OWN_ENV]; /* BYGATE_AGENT_TYPE=... & co */
	char *workdir;			/* the program's working directory */
	char *preload;	  /* "LD_PRELOAD=.../libbygate-memwatch.so" or NULL */
	bool per_task;	  /* a fresh program per task (else persistent) */
	int max_inflight; /* tasks at once in one persistent program */
	size_t max_line;  /* longest line, bytes without the newline */
	struct bg_prog *prog; /* the persistent program, NULL until needed */
};

/* An agent type's sandbox from CONFIG (BG_KF_SANDBOX; confine.c). */
#define BG_CONFINE_MAX_PORTS 64
enum { BG_CONFINE_NET_NONE, BG_CONFINE_NET_CONNECT, BG_CONFINE_NET_HOST };
struct bg_confine {
	bool strict; /* profile "strict": a confined process per task */
	bool exec;   /* an exec agent type: its program gets RLIMIT_NPROC */
	int network; /* BG_CONFINE_NET_* */
	int ports[BG_CONFINE_MAX_PORTS], n_ports; /* network "connect" */
	char **read_paths;			  /* read-only for its tasks */
	size_t n_read_paths;
	char **program_paths; /* exec: its program's files (read-only) */
	size_t n_program_paths;
	char **env; /* "NAME=value" of the agent type's `env` */
	size_t n_env;
	long memory_mb, processes, open_files, cpu_seconds, file_size_mb;
	char *agent_dir; /* <workspace_dir>/<agent type> */
	/* Prepared once (bg_confine_prepare): the read-only paths open, the
	 * network filter compiled. */
	struct bg_confine_fd {
		int fd;
		uint64_t rights;
	} * fds;
	size_t n_fds;
	struct sock_filter *net_bpf;
	unsigned short net_bpf_len;
};

struct bg_agent {
	char *name;
	struct bg_confine confine;
	struct bg_plugin *plugin; /* NULL for an exec agent type */
	struct bg_exec *exec;	  /* NULL for a plugin agent type */
	void *state;
	bool inited;
};

/* A running exec program (program.c). Our ends of its pipes are
 * non-blocking and close-on-exec; -1 once closed. */
#define BG_PROG_READ_CHUNK 65536 /* bytes read from its pipes at a time */
struct bg_prog {
	struct bg_agent *agent;
	pid_t pid;
	int in_fd, out_fd, err_fd; /* its stdin (we write), stdout, stderr */
	struct bg_buf out;	   /* stdout bytes not yet a whole line */
	struct bg_buf err;	   /* stderr bytes not yet a whole line */
	bool err_skip;		   /* dropping the rest of a long stderr line */
	struct bg_buf pending;	   /* lines not yet written to its stdin */
	size_t pending_off;
	int n_tasks;	     /* tasks in flight in it */
	bool retiring;	     /* per_task, result in: waiting for exit */
	int64_t deadline_ms; /* retiring: killed at this monotonic time */
	bool reaped, killed; /* waited for; we had to SIGKILL it */
	int status;	     /* its wait status once reaped */
	char last_err[160];  /* its last stderr line, for messages */
	size_t err_logged, err_dropped; /* stderr bytes logged / not */
	bool mem_refused;		/* its allocator was refused memory */
	struct bg_prog *next;		/* c->progs */
};

/* The running task behind the opaque struct bg_ctx of the SDK: from TASK
 * to RESULT, for plugin and exec tasks alike. */
struct bg_ctx {
	struct bg_child_proc *c;
	struct bg_task *task;
	uint64_t tag;
	struct bg_agent *agent; /* NULL when the task failed to decode */
	struct bg_buf result;	/* packed RESULT payload once has_result */
	bool has_result;
	bool cancelled;		  /* a CANCEL for this task arrived */
	char *extra_payload;	  /* JSON object for the callback, or NULL */
	bool interrupted;	  /* failed by the death of a shared program */
	bool failed;		  /* the result set is FAILED */
	bool mem_refused;	  /* its program's allocation was refused */
	const char *suspend;	  /* default status after a suspending call */
	uint64_t n_calls;	  /* CALL ids issued: "1", "2", ... */
	const char *call_op;	  /* the CALL awaiting its REPLY, or NULL */
	const char *call_suspend; /* status its success implies, or NULL */
	/* exec tasks */
	struct bg_prog *prog; /* the program running it */
	json_t *req_id;	      /* the program's id of that request */
	struct bg_ctx *next;  /* c->exec_tasks */
};

struct bg_child_proc;

/* What the lower files need from the upper ones (the shape of
 * supervisor/pool.h's bg_pool_ops): main.c sets every member before any
 * other call, and channel.c and proc.c call up only through it. */
struct bg_child_ops {
	/* channel.c, waiting for the down ring while exec programs run
	 * (c->progs): poll fd 4 and the programs' pipes for at most
	 * timeout_ms, serving what is ready. 1 when fd 4 is readable, 0, or
	 * a negative errno (bg_child_exec_wait). */
	int (*wait)(struct bg_child_proc *c, int timeout_ms);
	/* channel.c, a CANCEL not for the running plugin task: tell the exec
	 * task in flight with this tag; false when there is none (a queued
	 * TASK is then marked). */
	bool (*cancel)(struct bg_child_proc *c, uint64_t tag,
		       struct bg_str reason);
	/* proc.c, bg_child_die before exit: end the exec programs
	 * (gracefully when exiting 0), shutdown() the handlers unless one is
	 * inside process(), free the channel. */
	void (*release)(struct bg_child_proc *c, bool graceful);
};

/* The bygate-child process: one per process (bg_child_self); a task
 * process has its own copy, made by fork. */
struct bg_child_proc {
	const struct bg_child_ops *ops; /* the upper files' calls */
	struct bg_segment seg;
	long slot;
	bool no_sandbox;     /* --no-sandbox (pool.sandbox = false) */
	bool task_process;   /* a task process (taskproc.c): the rings are
				   ours only until our RESULT is sent */
	pid_t ppid;	     /* the supervisor; a change means it died */
	struct bg_msg_in in; /* down-ring reassembly */
	struct bg_buf out;   /* packing scratch for up-ring messages */
	struct bg_child_queued *queue, *queue_tail;
	struct bg_child_queued *held; /* last returned by bg_child_next */
	struct bg_ctx *running;	      /* the plugin task whose process() runs */
	bool stop_requested; /* STOP seen: exit after the running task */
	struct bg_plugin *plugins;
	size_t n_plugins;
	struct bg_agent *agents;
	size_t n_agents;
	struct bg_ctx *exec_tasks; /* exec tasks in flight */
	struct bg_prog *progs;	   /* running programs */
	struct pollfd *pfd;	   /* exec.c's poll set ... */
	struct bg_prog **pfd_prog; /* ... and whose pipes those are */
	size_t pfd_cap;
};

/* ---- proc.c: the process ---- */

/* The process's struct bg_child_proc (static: what it owns stays reachable
 * until exit). */
struct bg_child_proc *bg_child_self(void);
/* Handle SIGTERM as the end of the task the child runs itself (see
 * proc.c); set while a task process runs, which decides instead. */
void bg_child_catch_sigterm(void);
extern volatile sig_atomic_t bg_child_task_process_running;
/* Message on stderr, prefixed with the slot and pid. */
void bg_child_warn(struct bg_child_proc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Warn (code != 0), mark the scoreboard EXITING, c->ops->release (the
 * programs ended, the handlers' shutdown() unless a task is running),
 * and exit with `code`. */
_Noreturn void bg_child_die(struct bg_child_proc *c, int code, const char *fmt,
			    ...) __attribute__((format(printf, 3, 4)));
/* Scoreboard updates (display only). */
void bg_child_score(struct bg_child_proc *c, enum bg_score_state st,
		    uint64_t tag);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t bg_child_mono_ms(void);

/* ---- channel.c: the rings ---- */

/* Pack v[0..n) and send it up as one message of `kind`, waiting for ring
 * space as long as needed (dies when the supervisor disappears).
 * 0, -EMSGSIZE when the packed message exceeds max_message, -ENOMEM. */
int bg_child_send(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
		  const struct bg_str *v, uint32_t n);
/* Send an already packed payload. Same returns as bg_child_send. */
int bg_child_send_packed(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
			 const void *p, size_t len);
/* Largest payload either side may send. */
size_t bg_child_max_message(const struct bg_child_proc *c);
/* Next down message: a queued one first, else wait on the ring (with the
 * doorbell handshake, serving the exec programs' pipes meanwhile). Dies on
 * a protocol error or when orphaned. */
void bg_child_next(struct bg_child_proc *c, struct bg_child_msg *out);
/* One message straight from the down ring without blocking: 1 and *out
 * (valid until the next read), or 0. */
int bg_child_try_recv(struct bg_child_proc *c, struct bg_child_msg *out);
/* Sleep until the down ring may hold something, at most BG_CHILD_WAIT_MS
 * (serving the exec programs' pipes meanwhile); dies when orphaned. */
void bg_child_sleep(struct bg_child_proc *c);
/* Handle a STOP (sets stop_requested) or a CANCEL (for the running plugin
 * task, an exec task in flight or a queued TASK); false for other kinds. */
bool bg_child_absorb(struct bg_child_proc *c, const struct bg_child_msg *m);
/* Zero what is left of task message m after its run (no trace for the
 * task processes forked later): m's own bytes when it was queued, else
 * the down ring's receive buffer as it is now (a handler's calls may have
 * received into it, moving it: m->p is then stale). */
void bg_child_wipe(struct bg_child_proc *c, const struct bg_child_msg *m);
/* Keep m (copied) for bg_child_next. */
void bg_child_enqueue(struct bg_child_proc *c, const struct bg_child_msg *m);
/* Without blocking, read what the down ring holds: STOP and CANCEL are
 * absorbed, a REPLY is a protocol error, anything else is queued. */
void bg_child_poll(struct bg_child_proc *c);
/* Block until the REPLY to CALL `id` of task `tag` arrives (absorbing and
 * queueing what bg_child_poll does); *result views its result inside the
 * reassembly buffer, valid until the next read. Anything else is a
 * protocol error (dies). */
void bg_child_await_reply(struct bg_child_proc *c, uint64_t tag, const char *id,
			  struct bg_str *result);
/* Free the queue and reassembly state. */
void bg_child_channel_free(struct bg_child_proc *c);

/* ---- plugin.c: CONFIG, loading, init and shutdown ---- */

/* Load the handlers a CONFIG payload names and init() each agent type.
 * 0, or a negative errno with a message for the FATAL record in *err. */
int bg_child_load(struct bg_child_proc *c, const uint8_t *p, size_t len,
		  struct bg_buf *err);
/* Comma-separated agent type names, for HELLO. 0 or -ENOMEM. */
int bg_child_agent_names(const struct bg_child_proc *c, struct bg_buf *out);
struct bg_agent *bg_child_find_agent(struct bg_child_proc *c, const char *name);
/* shutdown() every initialised agent type, then dlclose and free. */
void bg_child_unload(struct bg_child_proc *c);

/* ---- task.c: TASK payloads ---- */

struct bg_task {
	const char *f[BG_TF__COUNT]; /* NUL-terminated copies, in store */
	size_t n[BG_TF__COUNT];	     /* their lengths (a field may hold 0s) */
	char *store;
	json_t *body;
	const char *content; /* into body, content_dump or "" */
	size_t content_len;  /* whole, U+0000 included */
	char *content_dump;
	bool private_made; /* bg_child_private_dir_make done for f[] */
};

/* Makes the task's private directory `path` (mode 0700, this process's
 * user: the pool user), which bygated leaves to the task's process
 * (workspace.h, bg_ws_prepare's lazy): bygated made its parent and removed
 * any left-over of that name before the attempt, so a directory made here
 * is empty; one that exists already (made earlier in this attempt) is
 * fine. "" is a no-op. 0 or -errno. Called wherever the path is handed to
 * a handler: bg_task_get(BG_TASK_PRIVATE_DIR) (so bg_ctx_private_dir),
 * the protocol's task line, a task process before its confinement. */
int bg_child_private_dir_make(const char *path);

/* Decode a TASK payload. 0; -EBADMSG (wrong field count: a protocol
 * error); -EINVAL (body not a JSON object: the task fails); -ENOMEM. */
int bg_child_task_parse(struct bg_task *t, const uint8_t *p, size_t len);
void bg_child_task_free(struct bg_task *t);
/* The agent type a TASK payload names, or an empty view. */
struct bg_str bg_child_task_agent_type(const uint8_t *p, size_t len);

/* ---- ctx.c: running a task ---- */

/* A decoded task for TASK message m, or a task already failed with the
 * reason; NULL only without memory. */
struct bg_ctx *bg_child_ctx_new(struct bg_child_proc *c,
				const struct bg_child_msg *m);
/* Send ctx's RESULT (COMPLETED, or the suspend status, when none was set)
 * and free ctx. */
void bg_child_finish(struct bg_child_proc *c, struct bg_ctx *ctx);
/* The validating core of bg_ctx_chunk_ex & co; kind is "chunk", "state",
 * "artifact" or "sub_step"; text is sent whole, U+0000 included (text.p
 * NULL: -EINVAL). */
int bg_child_emit(struct bg_ctx *ctx, const char *kind, struct bg_str text,
		  const char *event_type, const char *content_type,
		  const char *metadata_json);
/* bg_ctx_result_json() without its one-result rule (the exec protocol
 * enforces its own): same returns. */
int bg_child_result(struct bg_ctx *ctx, const char *status,
		    const char *content_json, const char *reply_data_json,
		    const char *metadata_json);
/* bg_ctx_fail() with a message of any bytes, U+0000 included. */
int bg_child_fail(struct bg_ctx *ctx, struct bg_str message);
/* bg_child_fail with the handler's own error type (NULL or "" =
 * "HandlerError") and retryable flag in the record's metadata (WIRE 6.2):
 * an exec program's {"error", "error_type", "retryable"} result line. */
int bg_child_fail_as(struct bg_ctx *ctx, struct bg_str message,
		     const char *error_type, bool retryable);
/* Fail the task with msg, replacing any result. */
void bg_child_fail_task(struct bg_ctx *ctx, const char *msg);
/* Fail the task with error_code RESOURCE_LIMIT naming `limit` (a sandbox
 * key, e.g. "memory_mb"), replacing any result. */
void bg_child_fail_limit(struct bg_ctx *ctx, const char *msg,
			 const char *limit);

/* ---- call.c: operations answered by bygated (CALL / REPLY) ---- */

/* Validate args (a JSON object) for op and send the CALL; ctx->call_op is
 * then set until bg_child_call_done. 0; -EINVAL with the reason in *why;
 * -EMSGSIZE; -ENOMEM. */
int bg_child_call_send(struct bg_ctx *ctx, const char *op, json_t *args,
		       const char **why);
/* The CALL id ctx's pending call was sent with ("1", "2", ...). */
void bg_child_call_id(const struct bg_ctx *ctx, char *out, size_t n);
/* The REPLY's result arrived: parse it into *result (an object) and note
 * the status a suspending call implies. 0, or -EBADMSG (not an object). */
int bg_child_call_done(struct bg_ctx *ctx, struct bg_str text, json_t **result);

/* ---- execconf.c: exec agent types from CONFIG ---- */

/* The exec fields of a CONFIG agent type (f: enum bg_conf_type_field).
 * 0, or a negative errno with the message in *err. */
int bg_child_exec_configure(struct bg_agent *a, const struct bg_str *f,
			    struct bg_buf *err);
void bg_child_exec_free(struct bg_exec *x);
/* Rebuild exec agent a's program environment from the current environ
 * (a task process changed it). */
void bg_child_exec_env(struct bg_agent *a);

/* ---- program.c: the programs of handler = "exec" ---- */

/* A running program for agent a, linked into c->progs. 0, or a negative
 * errno with the failed call named in why. */
int bg_child_prog_start(struct bg_child_proc *c, struct bg_agent *a,
			struct bg_prog **out, const char **why);
/* Kill prog, failing its tasks with "<who> <what>"; prog is freed. */
void bg_child_prog_fail(struct bg_child_proc *c, struct bg_prog *prog,
			const char *what);
/* Write line (without its newline) to prog's stdin, queueing what the
 * pipe does not take at once. -1 when prog was failed (and freed): the
 * line exceeds max_line_bytes, or prog stopped reading while running. */
int bg_child_prog_write(struct bg_child_proc *c, struct bg_prog *prog,
			const char *line, size_t len);
/* Write what is queued for prog's stdin, as far as the pipe takes it.
 * 0, or -1 when prog was failed (and freed). */
int bg_child_prog_flush(struct bg_child_proc *c, struct bg_prog *prog);
/* Log the stderr lines prog wrote (reading what its pipe holds). */
void bg_child_prog_read_err(struct bg_child_proc *c, struct bg_prog *prog);
/* prog closed its stdout, or was reaped: reap it, fail its tasks, log how
 * it ended unless a per_task program exited cleanly; prog is freed. */
void bg_child_prog_closed(struct bg_child_proc *c, struct bg_prog *prog);
/* Unlink prog, close our ends, reap it (killed after ms), free it. */
void bg_child_prog_free(struct bg_child_proc *c, struct bg_prog *prog, int ms);
/* Kill the per_task programs that did not exit in time after their
 * result. */
void bg_child_prog_kill_overdue(struct bg_child_proc *c);
/* Exec task ctx is finished (result set): release its place in its
 * program, send its RESULT and free it. */
void bg_child_exec_finish(struct bg_child_proc *c, struct bg_ctx *ctx);
/* End every program: graceful closes their stdin and gives them a moment
 * to exit, else they are killed at once. */
void bg_child_prog_end_all(struct bg_child_proc *c, bool graceful);
/* In a task process: close our copies of the child's programs' pipes and
 * forget the programs (c->progs empty) without touching them. */
void bg_child_prog_disown_all(struct bg_child_proc *c);

/* ---- exec.c: the tasks of handler = "exec" ---- */

/* Start exec task ctx (decoded, agent->exec set) in its program. */
void bg_child_exec_start(struct bg_child_proc *c, struct bg_ctx *ctx);
/* Serve the programs and the down ring until no exec task is in flight
 * and every per_task program has exited. A TASK arriving meanwhile starts
 * at once when its persistent program has room (max_inflight), else it is
 * queued for bg_child_next. */
void bg_child_exec_drain(struct bg_child_proc *c);
/* One poll of fd 4 and the programs' pipes, at most timeout_ms; serves
 * what is ready. 1 when fd 4 is readable, 0, or a negative errno. */
int bg_child_exec_wait(struct bg_child_proc *c, int timeout_ms);
/* A CANCEL for exec task ctx: tell its program. */
void bg_child_exec_cancel(struct bg_child_proc *c, struct bg_ctx *ctx,
			  struct bg_str reason);
/* The exec task in flight with this tag, or NULL. */
struct bg_ctx *bg_child_exec_task(struct bg_child_proc *c, uint64_t tag);
/* A REPLY for exec task ctx: hand the result to its program. */
void bg_child_exec_reply(struct bg_child_proc *c, struct bg_ctx *ctx,
			 struct bg_str id, struct bg_str result);
/* End every program (bg_child_prog_end_all) and free the poll set. */
void bg_child_exec_shutdown(struct bg_child_proc *c, bool graceful);

/* ---- run.c ---- */

/* Run one TASK message to its RESULT in this process (exec tasks: and
 * every exec task started meanwhile, see bg_child_exec_drain). */
void bg_child_run(struct bg_child_proc *c, const struct bg_child_msg *m);

/* ---- sandbox.c ---- */

/* Apply the sandbox to this process and everything it will start: no new
 * privileges, RLIMIT_CORE 0, and the seccomp filter (docs/architecture.md,
 * "Sandbox"). Call it before any handler is loaded, while the process is
 * single-threaded. 0, or a negative errno with the step that failed in
 * why (n bytes). */
int bg_child_sandbox_apply(char *why, size_t n);

/* ---- confine.c: the strict profile (docs/security.md) ---- */

/* Parse a CONFIG sandbox object ("" = trusted). 0, -EINVAL, -ENOMEM. */
int bg_confine_parse(struct bg_confine *cf, struct bg_str text);
void bg_confine_free(struct bg_confine *cf);
/* Note an exec program's own files (argv resolved against workdir). */
int bg_confine_program_paths(struct bg_confine *cf, char *const *argv,
			     const char *workdir);
/* Confine this process for good (strict profile only, after
 * bg_confine_prepare): no dumping, Landlock with rw[] read-write plus the
 * prepared read-only paths, the network filter and the limits. 0, or a
 * negative errno with the failed step in why. */
int bg_confine_apply(const struct bg_confine *cf, const char *const *rw,
		     size_t n_rw, char *why, size_t wn);
/* Open the read-only paths and compile the network filter once, in the
 * child (after CONFIG), so that a task process only adds and loads them.
 * 0, or a negative errno with the step in why. */
int bg_confine_prepare(struct bg_confine *cf, const char *plugin, char *why,
		       size_t wn);
/* Close the prepared paths (a task process, once confined). */
void bg_confine_close(struct bg_confine *cf);
/* RLIMIT_NPROC alone (exec programs, at their exec). */
int bg_confine_processes(const struct bg_confine *cf, char *why, size_t wn);
/* RLIMIT_AS alone (exec programs of sanitizer builds). */
int bg_confine_memory(const struct bg_confine *cf, char *why, size_t wn);

/* ---- taskproc.c: a fresh process per strict task ---- */

/* The agent type of TASK m when it runs in a task process of its own
 * (strict plugin or per_task agent type, sandbox on), else NULL. */
struct bg_agent *bg_child_isolated(struct bg_child_proc *c,
				   const struct bg_child_msg *m);
/* Fork a spare task process ahead of the next strict task (none while
 * one waits, or with the sandbox off). */
void bg_child_spare_start(struct bg_child_proc *c);
/* Run TASK m of agent type a (bg_child_isolated) in a fresh confined
 * process forked from this one, capture its output, kill what it left
 * behind, and account for its end. */
void bg_child_run_isolated(struct bg_child_proc *c,
			   const struct bg_child_msg *m, struct bg_agent *a);

/* ---- taskwatch.c: around a task process ---- */

/* A task process's output (stdout and stderr, one pipe), logged by the
 * child a line at a time. */
struct bg_task_output {
	int fd;
	char id[96]; /* the execution id, escaped */
	struct bg_buf line;
	size_t logged, dropped;
	bool cut; /* the current line is past its cap */
};
/* An output with no pipe yet (fd -1), named for execution_id. */
void bg_child_output_init(struct bg_task_output *o, struct bg_str execution_id);
/* Read what the pipe holds now, logging each whole line on stderr;
 * false at EOF or error. */
bool bg_child_output_read(struct bg_child_proc *c, struct bg_task_output *o);
/* Log the unfinished line and what was not logged; close the pipe. */
void bg_child_output_end(struct bg_child_proc *c, struct bg_task_output *o);
/* Kill every process a task left: our children but the running exec
 * programs, repeatedly (orphans are re-parented to us). */
void bg_child_kill_leftovers(struct bg_child_proc *c);

/* ---- memwatch.c: refused allocations ---- */

/* An allocation was refused (the memory limit): noted for this process
 * and, through *bg_child_mem_refused_shared when set, for the child that
 * waits for it. */
void bg_child_note_mem_refused(void);
extern uint32_t *bg_child_mem_refused_shared;
/* Was one refused in this (task) process? */
bool bg_child_mem_refused(void);
/* Set in a task process: what it frees dies with it and nothing is
 * forked from it, so frees skip the zeroing (and its page faults). */
extern bool bg_child_no_scrub;

/* ---- protocol.c: bygate-handler-protocol 1 (docs/handler-protocol.md) */

#define BG_PROTOCOL_VERSION 1
/* The task line of ctx (no newline). 0 or -ENOMEM. */
int bg_proto_task_line(const struct bg_ctx *ctx, struct bg_buf *out);
/* The cancel and reply lines (no newline). 0 or -ENOMEM / -EBADMSG
 * (result not JSON). */
int bg_proto_cancel_line(const struct bg_ctx *ctx, struct bg_str reason,
			 struct bg_buf *out);
int bg_proto_reply_line(const struct bg_ctx *ctx, json_t *id, json_t *result,
			struct bg_buf *out);
/* One line the program wrote (no newline). 0, or -1 when it broke the
 * protocol: it was killed and freed (bg_child_prog_fail). */
int bg_proto_handle_line(struct bg_child_proc *c, struct bg_prog *prog,
			 const char *line, size_t len);

#endif
