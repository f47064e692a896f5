/* supervisor/pool.c - prefork pool of sandbox-ready bygate-child processes
 * (started by spawn.c), the supervisor side of their rings and the capture
 * of their stdout/stderr into the log (see pool.h). */
#include "supervisor/pool.h"
#include "common/waitstatus.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/buf.h"
#include "ipc/record.h"
#include "ipc/segment.h"
#include "supervisor/log.h"
#include "supervisor/spawn.h"

/* A child's stdout/stderr (one pipe): lines of at most OUT_LINE_MAX bytes
 * (the rest of a longer line is counted, not logged), at most
 * OUT_BUDGET_BYTES of log per OUT_WINDOW_MS per child (each line costs its
 * escaped length plus OUT_LINE_COST, so a flood of empty lines is bounded
 * too); the rest is counted and reported once per window. */
#define OUT_LINE_MAX 2048
#define OUT_BUDGET_BYTES (1024 * 1024)
#define OUT_WINDOW_MS 60000
#define OUT_LINE_COST 64
#define OUT_READ_PER_TURN (256 * 1024) /* bytes read per loop turn */
#define OUT_READ_AT_EXIT (4 * 1024 * 1024) /* drained when it is gone */

/* The child's exit status when a task process it forked ended without its
 * RESULT: score.task_status then holds that process's wait status
 * (BG_CHILD_EXIT_TASK_DIED of child/child.h, a child internal). */
#define CHILD_EXIT_TASK_DIED 75

struct child_output {
	int fd; /* read end, O_NONBLOCK | O_CLOEXEC; -1 = none */
	struct event *ev;
	char line[OUT_LINE_MAX];
	size_t len;	  /* bytes in line */
	uint64_t cut;	  /* bytes of the current line beyond OUT_LINE_MAX */
	int64_t win_start_ms;
	uint64_t win_bytes;
	uint64_t dropped; /* bytes dropped in this window */
};

enum child_state {
	CH_EMPTY,    /* no process; respawn pending */
	CH_STARTING, /* spawned, waiting for HELLO */
	CH_IDLE,     /* ready, no task */
	CH_BUSY,     /* ready, n_tags > 0 tasks in flight */
	CH_STOPPING, /* STOP sent or killed; waiting for exit */
};

/* One queued outgoing message (owned copy). */
struct out_msg {
	struct out_msg *next;
	struct bg_msg_out m;
	uint8_t data[];
};

struct bg_child {
	struct bg_pool *pool;
	int slot;
	pid_t pid;
	uint32_t generation;
	enum child_state state;
	struct bg_segment seg;
	int wake_child_fd; /* we ring it: fd 4 in the child */
	int wake_sup_fd;   /* it rings us: fd 5 in the child */
	struct event *ev_wake;
	struct out_msg *out_head, *out_tail;
	struct bg_msg_in in;
	struct child_output out;
	uint64_t tags[BG_POOL_MAX_INFLIGHT]; /* tasks in flight, n_tags of them */
	int n_tags;
	int group; /* what they share (bg_pool_run), -1 = exclusive */
	uint64_t tasks_done;
	uint64_t recycle_after;
	bool ring_pending;   /* doorbell to ring at end of turn */
	bool recycling;
	bool broken;		 /* broke the protocol: nothing more is read */
	bool exited;		 /* reaped: its last records are being read */
	const char *kill_reason; /* set when we killed it */
	int64_t started_ms;
	int quick_deaths;
	int64_t respawn_at_ms;
};

struct bg_pool {
	struct event_base *base;
	const struct bg_config *cfg;
	char *child_path;
	struct bg_spawner *spawner;
	struct bg_pool_ops ops;
	void *arg;
	struct bg_child *c;
	int n;
	uint32_t generation;
	bool shutting_down;
	struct bg_buf config_payload;
	struct event *ev_sigchld;
	struct event *ev_sweep;
	struct bg_pool_stats stats;
	/* crash-storm breaker: times of the last crash_storm_deaths deaths */
	int64_t *deaths;
	int deaths_cap;
	int n_deaths, death_pos;
	int64_t breaker_until_ms;
	char gen_failure[512]; /* why the current generation cannot load */
	uint32_t gen_failed;   /* generation of that failure */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void child_process_up(struct bg_child *ch);

static void child_kill(struct bg_child *ch, const char *reason)
{
	if (ch->pid <= 0)
		return;
	if (ch->kill_reason == NULL)
		ch->kill_reason = reason;
	ch->state = CH_STOPPING;
	/* The child leads its own process group: its helpers die too. */
	if (kill(-ch->pid, SIGKILL) == -1)
		kill(ch->pid, SIGKILL);
}

static void release_resources(struct bg_child *ch)
{
	if (ch->ev_wake) {
		event_free(ch->ev_wake);
		ch->ev_wake = NULL;
	}
	if (ch->wake_child_fd >= 0)
		close(ch->wake_child_fd);
	if (ch->wake_sup_fd >= 0)
		close(ch->wake_sup_fd);
	ch->wake_child_fd = ch->wake_sup_fd = -1;
	bg_segment_close(&ch->seg);
	memset(&ch->seg, 0, sizeof(ch->seg));
	ch->seg.fd = -1;
	while (ch->out_head) {
		struct out_msg *m = ch->out_head;
		ch->out_head = m->next;
		free(m);
	}
	ch->out_tail = NULL;
	bg_msg_in_free(&ch->in);
	memset(&ch->in, 0, sizeof(ch->in));
}

/* Push queued outgoing messages into the down ring as far as they fit. */
static void child_flush_out(struct bg_child *ch)
{
	if (ch->seg.base == NULL)
		return;
	bg_ring_producer_sleep_done(&ch->seg.down);
	while (ch->out_head) {
		struct out_msg *m = ch->out_head;
		int rc = bg_ring_send(&ch->seg.down, &m->m);
		if (bg_ring_need_wake_consumer(&ch->seg.down))
			ch->ring_pending = true;
		if (rc == -EAGAIN) {
			if (ch->pool->ops.on_ring_stall)
				ch->pool->ops.on_ring_stall(ch->pool->arg);
			/* The child rings us when it frees space. */
			uint32_t left = m->m.len - m->m.off;
			uint32_t need = left < ch->seg.down.max_record
						? left
						: ch->seg.down.max_record;
			if (!bg_ring_producer_sleep_prepare(&ch->seg.down,
							    need))
				continue;
			return;
		}
		if (rc != 0) {
			bg_error("slot %d: cannot send record kind %u to child "
				 "pid %d: %s",
				 ch->slot, m->m.kind, (int)ch->pid,
				 strerror(-rc));
			child_kill(ch, "message could not be sent");
			return;
		}
		ch->out_head = m->next;
		if (ch->out_head == NULL)
			ch->out_tail = NULL;
		free(m);
	}
}

static int child_queue(struct bg_child *ch, uint16_t kind, uint64_t tag,
		       const void *p, size_t len)
{
	if (len > (size_t)ch->pool->cfg->max_message_bytes)
		return -EMSGSIZE;
	struct out_msg *m = malloc(sizeof(*m) + len);
	if (m == NULL)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	memcpy(m->data, p, len);
	m->m.kind = kind;
	m->m.tag = tag;
	m->m.p = m->data;
	m->m.len = (uint32_t)len;
	if (ch->out_tail)
		ch->out_tail->next = m;
	else
		ch->out_head = m;
	ch->out_tail = m;
	child_flush_out(ch);
	return 0;
}

static void on_wake(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct bg_child *ch = arg;
	bg_doorbell_drain(fd);
	child_process_up(ch);
}

static int dup_high(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

/* ---- the child's stdout/stderr ------------------------------------------ */

/* Log the line held in o (escaped, prefixed) and start a new one. */
static void output_line(struct bg_child *ch)
{
	struct child_output *o = &ch->out;
	struct bg_buf b = { 0 };
	/* Control characters only: the zygote already escapes its task
	 * processes' lines, backslashes included, and escaping those again
	 * would double them. No line can be forged either way. */
	if (bg_log_escape(&b, o->line, o->len, false) == 0) {
		o->win_bytes += b.len + OUT_LINE_COST;
		if (o->cut)
			bg_warn("slot %d pid %d: %.*s ... (%llu bytes cut)",
				ch->slot, (int)ch->pid, (int)b.len,
				b.p ? b.p : "", (unsigned long long)o->cut);
		else
			bg_warn("slot %d pid %d: %.*s", ch->slot, (int)ch->pid,
				(int)b.len, b.p ? b.p : "");
	}
	bg_buf_free(&b);
	o->len = 0;
	o->cut = 0;
}

static void output_report_dropped(struct bg_child *ch)
{
	struct child_output *o = &ch->out;
	if (o->dropped)
		bg_warn("slot %d: output dropped (%llu bytes)", ch->slot,
			(unsigned long long)o->dropped);
	o->dropped = 0;
}

/* Take n bytes of output: split into lines within the budget. */
static void output_take(struct bg_child *ch, const char *p, size_t n)
{
	struct child_output *o = &ch->out;
	int64_t now = mono_ms();
	if (now - o->win_start_ms >= OUT_WINDOW_MS) {
		output_report_dropped(ch);
		o->win_start_ms = now;
		o->win_bytes = 0;
	}
	while (n > 0) {
		if (o->win_bytes >= OUT_BUDGET_BYTES) {
			if (o->dropped == 0) {
				if (o->len || o->cut)
					output_line(ch);
				bg_warn("slot %d pid %d: more than %d bytes of "
					"output within %d s; the rest is "
					"dropped until the window ends",
					ch->slot, (int)ch->pid,
					OUT_BUDGET_BYTES, OUT_WINDOW_MS / 1000);
			}
			o->dropped += n;
			return;
		}
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		size_t room = OUT_LINE_MAX - o->len;
		size_t keep = take < room ? take : room;
		memcpy(o->line + o->len, p, keep);
		o->len += keep;
		o->cut += take - keep;
		p += take;
		n -= take;
		if (nl) {
			output_line(ch);
			p++;
			n--;
		}
	}
}

/* Read what the pipe holds (to EOF or EAGAIN), at most `max` bytes: a
 * child writing without pause must not hold the loop (the event fires
 * again on the next turn). */
static void output_read(struct bg_child *ch, size_t max)
{
	char buf[65536];
	size_t got = 0;
	while (ch->out.fd >= 0 && got < max) {
		ssize_t n = read(ch->out.fd, buf, sizeof(buf));
		if (n > 0) {
			output_take(ch, buf, (size_t)n);
			got += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		break; /* EOF, EAGAIN (a helper may still hold it) or error */
	}
}

static void on_output(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	output_read(arg, OUT_READ_PER_TURN);
}

/* The child is gone: read what is left (bounded), log the last partial
 * line and close. Processes it left behind (bygated not root, no PID
 * namespace) lose the pipe. */
static void output_close(struct bg_child *ch)
{
	struct child_output *o = &ch->out;
	if (o->fd < 0)
		return;
	output_read(ch, OUT_READ_AT_EXIT);
	if (o->len || o->cut)
		output_line(ch);
	output_report_dropped(ch);
	if (o->ev)
		event_free(o->ev);
	close(o->fd);
	o->ev = NULL;
	o->fd = -1;
}

/* A pipe for the child's fds 1 and 2: the read end (non-blocking) into
 * ch->out with its event, the write end (blocking, above 9) in *wfd. */
static int output_open(struct bg_child *ch, int *wfd)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) == -1)
		return -errno;
	int hi = dup_high(fds[1]);
	int e = errno;
	close(fds[1]);
	if (hi == -1 || fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		e = hi == -1 ? e : errno;
		if (hi != -1)
			close(hi);
		close(fds[0]);
		return -e;
	}
	struct child_output *o = &ch->out;
	o->ev = event_new(ch->pool->base, fds[0], EV_READ | EV_PERSIST,
			  on_output, ch);
	if (o->ev == NULL) {
		close(hi);
		close(fds[0]);
		return -ENOMEM;
	}
	event_add(o->ev, NULL);
	o->fd = fds[0];
	o->len = 0;
	o->cut = 0;
	o->dropped = 0;
	o->win_start_ms = mono_ms();
	o->win_bytes = 0;
	*wfd = hi;
	return 0;
}

static int spawn_child(struct bg_child *ch)
{
	struct bg_pool *p = ch->pool;
	int rc = bg_segment_create((uint32_t)ch->slot, p->generation,
				   (uint64_t)p->cfg->ring_bytes,
				   (uint64_t)p->cfg->max_message_bytes,
				   &ch->seg);
	if (rc) {
		bg_error("slot %d: bg_segment_create() failed: %s", ch->slot,
			 strerror(-rc));
		ch->seg.fd = -1;
		return rc;
	}
	/* Records we read are zeroed in the ring: the child's next task
	 * process maps it and must not find an earlier task's events or
	 * result (another session's) there. */
	ch->seg.up.wipe = true;
	ch->wake_child_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ch->wake_sup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->wake_child_fd == -1 || ch->wake_sup_fd == -1) {
		rc = -errno;
		bg_error("slot %d: eventfd() failed: %s", ch->slot,
			 strerror(errno));
		release_resources(ch);
		return rc;
	}
	int out_w = -1;
	rc = output_open(ch, &out_w);
	if (rc) {
		bg_error("slot %d: cannot make the output pipe: %s", ch->slot,
			 strerror(-rc));
		release_resources(ch);
		return rc;
	}
	/* Sources above 9 (spawn.h): dup2 onto 3..5 clears CLOEXEC. */
	int src[3] = { dup_high(ch->seg.fd), dup_high(ch->wake_child_fd),
		       dup_high(ch->wake_sup_fd) };
	char slot_s[16], gen_s[16];
	snprintf(slot_s, sizeof(slot_s), "%d", ch->slot);
	snprintf(gen_s, sizeof(gen_s), "%u", p->generation);
	char *argv[] = { p->child_path, "--slot", slot_s, "--generation",
			 gen_s, p->cfg->sandbox ? NULL : "--no-sandbox", NULL };
	pid_t pid = 0;
	char err[512] = "";
	if (src[0] < 0 || src[1] < 0 || src[2] < 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "fcntl(F_DUPFD_CLOEXEC) failed: %s",
			 strerror(errno));
	} else {
		rc = bg_spawn_child(p->spawner, p->child_path, argv, src,
				    out_w, &pid, err, sizeof(err));
	}
	for (int i = 0; i < 3; i++)
		if (src[i] >= 0)
			close(src[i]);
	close(out_w);
	if (rc != 0) {
		bg_error("slot %d: cannot start %s: %s", ch->slot,
			 p->child_path, err);
		output_close(ch);
		release_resources(ch);
		return rc;
	}
	ch->pid = pid;
	ch->state = CH_STARTING;
	ch->n_tags = 0;
	ch->group = -1;
	ch->kill_reason = NULL;
	ch->broken = false;
	ch->exited = false;
	ch->recycling = false;
	ch->tasks_done = 0;
	ch->generation = p->generation;
	ch->started_ms = mono_ms();
	ch->in.max_len = (size_t)p->cfg->max_message_bytes;
	uint64_t base = (uint64_t)p->cfg->max_tasks_per_child;
	ch->recycle_after = base ? base + (uint64_t)random() % (base / 10 + 1)
				 : 0;
	ch->ev_wake = event_new(p->base, ch->wake_sup_fd, EV_READ | EV_PERSIST,
				on_wake, ch);
	event_add(ch->ev_wake, NULL);
	p->stats.spawned++;
	bg_debug("slot %d: spawned bygate-child pid %d", ch->slot, (int)pid);
	rc = child_queue(ch, BG_REC_CONFIG, 0, p->config_payload.p,
			 p->config_payload.len);
	if (rc) {
		child_kill(ch, "config could not be sent");
		return rc;
	}
	/* We consume the up ring from the loop: announce that we wait. */
	bg_ring_consumer_sleep_prepare(&ch->seg.up);
	return 0;
}

static void child_protocol_error(struct bg_child *ch, const char *what)
{
	bg_error("slot %d: child pid %d broke the IPC protocol (%s); killing it",
		 ch->slot, (int)ch->pid, what);
	ch->pool->stats.protocol_kills++;
	ch->broken = true;
	child_kill(ch, "the child broke the IPC protocol");
}

static void handle_log(struct bg_child *ch, uint64_t tag, const uint8_t *p,
		       size_t len)
{
	struct bg_str f[2];
	if (bg_rec_unpack(p, len, f, 2)) {
		child_protocol_error(ch, "malformed LOG record");
		return;
	}
	enum bg_log_level lvl = BG_LOG_INFO;
	if (bg_str_eq(f[0], "debug"))
		lvl = BG_LOG_DEBUG;
	else if (bg_str_eq(f[0], "warn"))
		lvl = BG_LOG_WARN;
	else if (bg_str_eq(f[0], "error"))
		lvl = BG_LOG_ERROR;
	bg_log(lvl, "slot %d pid %d task %llu: %.*s", ch->slot, (int)ch->pid,
	       (unsigned long long)tag, (int)(f[1].len > 4000 ? 4000 : f[1].len),
	       f[1].p);
}

static int tag_index(const struct bg_child *ch, uint64_t tag)
{
	for (int i = 0; i < ch->n_tags; i++)
		if (ch->tags[i] == tag)
			return i;
	return -1;
}

/* Task tags[i] ended with its RESULT: the child has room again (idle once
 * its last task is done; recycled then when it is due). */
static void task_done(struct bg_child *ch, int i)
{
	ch->tags[i] = ch->tags[--ch->n_tags];
	ch->tasks_done++;
	/* Due: no new task (a shared child under load would never empty). */
	if (ch->recycle_after && ch->tasks_done >= ch->recycle_after)
		ch->recycling = true;
	if (ch->n_tags > 0 || ch->state != CH_BUSY)
		return; /* a killed child stays CH_STOPPING */
	ch->group = -1;
	if (ch->kill_reason) {
		/* Signalled (SIGTERM of a timeout or cancel) but it answered:
		 * it must not linger idle and unusable. */
		child_kill(ch, ch->kill_reason);
		return;
	}
	ch->state = CH_IDLE;
}

static void handle_message(struct bg_child *ch)
{
	struct bg_pool *p = ch->pool;
	struct bg_msg_in *in = &ch->in;
	switch (in->kind) {
	case BG_REC_HELLO:
		if (ch->state != CH_STARTING) {
			child_protocol_error(ch, "unexpected HELLO");
			return;
		}
		ch->state = CH_IDLE;
		ch->quick_deaths = 0;
		bg_debug("slot %d: child pid %d ready", ch->slot, (int)ch->pid);
		p->ops.on_idle(p->arg, ch->slot);
		return;
	case BG_REC_FATAL: {
		struct bg_str f[1];
		if (bg_rec_unpack(in->buf, in->len, f, 1) == 0) {
			bg_error("slot %d: child pid %d cannot serve: %.*s",
				 ch->slot, (int)ch->pid, (int)f[0].len, f[0].p);
			snprintf(p->gen_failure, sizeof(p->gen_failure), "%.*s",
				 (int)f[0].len, f[0].p);
			p->gen_failed = ch->generation;
		}
		ch->quick_deaths++;
		child_kill(ch, "the child reported a fatal error");
		return;
	}
	case BG_REC_LOG:
		handle_log(ch, in->tag, in->buf, in->len);
		return;
	case BG_REC_EVENT:
	case BG_REC_CALL:
	case BG_REC_RESULT: {
		int i = tag_index(ch, in->tag);
		if (i < 0) {
			child_protocol_error(ch, "record for a task it does "
						 "not run");
			return;
		}
		if (in->kind == BG_REC_RESULT)
			task_done(ch, i);
		p->ops.on_message(p->arg, ch->slot, in->kind, in->tag, in->buf,
				  in->len);
		if (in->kind == BG_REC_RESULT && ch->pid > 0 &&
		    ch->kill_reason == NULL && !ch->exited && !ch->recycling &&
		    !p->shutting_down)
			p->ops.on_idle(p->arg, ch->slot);
		return;
	}
	default:
		child_protocol_error(ch, "unknown record kind");
	}
}

/* Read what the child sent. Also after we killed it (for one task's
 * timeout or cancel): the results its other tasks already sent count.
 * Not after it broke the protocol, and not once the pool is stopping. */
static void child_process_up(struct bg_child *ch)
{
	if (ch->pid <= 0 || ch->seg.base == NULL || ch->broken ||
	    ch->pool->shutting_down)
		return;
	bg_ring_consumer_sleep_done(&ch->seg.up);
	for (;;) {
		int rc = bg_ring_recv(&ch->seg.up, &ch->in);
		if (bg_ring_need_wake_producer(&ch->seg.up))
			ch->ring_pending = true;
		if (rc == 1) {
			handle_message(ch);
			if (ch->broken || ch->seg.base == NULL)
				return;
			continue;
		}
		if (rc < 0) {
			child_protocol_error(ch, rc == -EMSGSIZE
							 ? "message larger than "
							   "max_message_bytes"
							 : "corrupt ring");
			return;
		}
		if (bg_ring_consumer_sleep_prepare(&ch->seg.up))
			break;
	}
	child_flush_out(ch);
}

/* How the child ended, for the operator and the task record. A child that
 * exited CHILD_EXIT_TASK_DIED with a task status on its scoreboard is
 * described by that status: the task process it forked died (a crash, a
 * kill of a timeout or cancel), and the text is the one a child dying that
 * way would get. Read before the segment is released. */
static void describe_status(const struct bg_child *ch, int status, char *buf,
			    size_t n)
{
	const struct bg_seg_hdr *hdr = ch->seg.hdr;
	if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_EXIT_TASK_DIED &&
	    hdr != NULL &&
	    __atomic_load_n(&hdr->score.task_status_set, __ATOMIC_ACQUIRE) ==
		    1)
		status = (int)__atomic_load_n(&hdr->score.task_status,
					      __ATOMIC_RELAXED);
	bg_wait_status_text(status, buf, n);
}

static void schedule_respawn(struct bg_child *ch)
{
	struct bg_pool *p = ch->pool;
	int64_t delay = 0;
	if (ch->quick_deaths > 0) {
		delay = 100LL << (ch->quick_deaths > 10 ? 10 : ch->quick_deaths);
		if (delay > p->cfg->respawn_backoff_max_ms)
			delay = p->cfg->respawn_backoff_max_ms;
	}
	ch->respawn_at_ms = mono_ms() + delay;
	if (delay > 0)
		bg_warn("slot %d: respawning in %lld ms (%d quick deaths)",
			ch->slot, (long long)delay, ch->quick_deaths);
}

/* DESIGN 6: N unexpected deaths within T open a breaker instead of
 * fork-looping; no child is respawned until it closes. */
static void note_death(struct bg_pool *p)
{
	int n = p->cfg->crash_storm_deaths;
	if (n > p->deaths_cap) /* raised by SIGHUP: the array keeps its size */
		n = p->deaths_cap;
	int64_t now = mono_ms();
	if (p->deaths == NULL || n <= 0)
		return;
	p->deaths[p->death_pos] = now;
	p->death_pos = (p->death_pos + 1) % n;
	if (p->n_deaths < n)
		p->n_deaths++;
	int64_t oldest = p->deaths[p->death_pos % n];
	if (p->n_deaths == n && now - oldest <= p->cfg->crash_storm_window_ms &&
	    now >= p->breaker_until_ms) {
		p->breaker_until_ms = now + p->cfg->crash_storm_pause_ms;
		p->stats.breaker_opened++;
		p->n_deaths = 0;
		bg_error("crash storm: %d child deaths within %d ms; breaker open, "
			 "no child is respawned and no task read for %d ms",
			 n, p->cfg->crash_storm_window_ms,
			 p->cfg->crash_storm_pause_ms);
	}
}

bool bg_pool_breaker_open(const struct bg_pool *p)
{
	return mono_ms() < p->breaker_until_ms;
}

/* The metrics label of a child's end, from our own kill reason first. */
static const char *exit_reason(const struct bg_child *ch, bool expected)
{
	const char *k = ch->kill_reason;
	if (expected)
		return "recycle";
	if (ch->pool->shutting_down)
		return "shutdown";
	if (k == NULL)
		return "crash";
	if (strstr(k, "timed out"))
		return "timeout";
	if (strstr(k, "cancel"))
		return "cancel";
	if (strstr(k, "protocol"))
		return "protocol";
	if (strstr(k, "fatal"))
		return "fatal";
	return "crash";
}

static void child_reaped(struct bg_child *ch, int status)
{
	struct bg_pool *p = ch->pool;
	char why[256], st[96];
	describe_status(ch, status, st, sizeof(st));
	output_close(ch); /* its last words before the report of its end */
	uint64_t tags[BG_POOL_MAX_INFLIGHT];
	int n_tags = ch->n_tags;
	memcpy(tags, ch->tags, sizeof(tags[0]) * (size_t)n_tags);
	if (ch->kill_reason)
		snprintf(why, sizeof(why), "child process (pid %d, slot %d) %s: %s",
			 (int)ch->pid, ch->slot, st, ch->kill_reason);
	else
		snprintf(why, sizeof(why), "child process (pid %d, slot %d) %s",
			 (int)ch->pid, ch->slot, st);
	bool expected = ch->recycling && WIFEXITED(status) &&
			WEXITSTATUS(status) == 0;
	if (expected) {
		p->stats.recycled++;
		bg_debug("%s (recycled after %llu tasks)", why,
			 (unsigned long long)ch->tasks_done);
	} else if (!p->shutting_down) {
		bg_warn("%s", why);
	}
	if (!expected && !p->shutting_down)
		note_death(p);
	if (p->ops.on_child_exit)
		p->ops.on_child_exit(p->arg, exit_reason(ch, expected));
	if (!expected && mono_ms() - ch->started_ms < 1000)
		ch->quick_deaths++;
	else if (expected || n_tags)
		ch->quick_deaths = 0;
	ch->pid = 0;
	ch->n_tags = 0;
	ch->group = -1;
	ch->state = CH_EMPTY;
	ch->recycling = false;
	release_resources(ch);
	if (n_tags) {
		p->stats.died_busy++;
		p->ops.on_child_lost(p->arg, ch->slot, tags, n_tags, why);
	}
	if (!p->shutting_down)
		schedule_respawn(ch);
}

static void on_sigchld(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	struct bg_pool *p = arg;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		for (int i = 0; i < p->n; i++)
			if (p->c[i].pid == pid) {
				/* Read what it sent before it died; nothing
				 * is handed to it meanwhile. */
				p->c[i].exited = true;
				child_process_up(&p->c[i]);
				child_reaped(&p->c[i], status);
				break;
			}
	}
}

static bool any_recycling(const struct bg_pool *p)
{
	for (int i = 0; i < p->n; i++)
		if (p->c[i].recycling && p->c[i].state == CH_STOPPING)
			return true;
	return false;
}

/* Every 100 ms: the safety-net sweep of DESIGN 5, respawns and recycling. */
static void on_sweep(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_pool *p = arg;
	int64_t now = mono_ms();
	for (int i = 0; i < p->n; i++) {
		struct bg_child *ch = &p->c[i];
		if (ch->pid > 0) {
			child_process_up(ch);
			child_flush_out(ch);
		} else if (!p->shutting_down && ch->state == CH_EMPTY &&
			   now >= ch->respawn_at_ms && now >= p->breaker_until_ms) {
			if (spawn_child(ch) != 0) {
				ch->quick_deaths++;
				schedule_respawn(ch);
			}
		}
	}
	for (int i = 0; i < p->n && !p->shutting_down; i++) {
		struct bg_child *ch = &p->c[i];
		if (ch->recycling && ch->state == CH_IDLE && !any_recycling(p)) {
			ch->state = CH_STOPPING;
			child_queue(ch, BG_REC_STOP, 0, "", 0);
		}
	}
	bg_pool_end_of_turn(p);
}

/* Strings of one agent type's CONFIG fields that cfg does not hold. */
struct config_scratch {
	char *argv; /* JSON array, malloc'd */
	char *sandbox; /* JSON object, malloc'd */
	char max_inflight[16];
	char max_line[24];
};

/* The enum bg_conf_type_field fields of agent type t into f[]; `dir` is
 * the configuration file's directory, where exec programs run. */
static int config_fields(const struct bg_config *cfg,
			 const struct bg_agent_type_conf *t, const char *dir,
			 struct config_scratch *x, struct bg_str *f)
{
	for (int k = 0; k < BG_KF__COUNT; k++)
		f[k] = bg_str_c("");
	f[BG_KF_NAME] = bg_str_c(t->name);
	if (bg_config_sandbox_json(cfg, t, true, &x->sandbox))
		return -ENOMEM;
	f[BG_KF_SANDBOX] = bg_str_c(x->sandbox);
	f[BG_KF_OPTIONS] = bg_str_c(t->options_json ? t->options_json : "{}");
	if (t->handler != BG_HANDLER_EXEC) {
		f[BG_KF_KIND] = bg_str_c("plugin");
		f[BG_KF_PLUGIN] = bg_str_c(t->plugin);
		return 0;
	}
	char err[200];
	if (bg_config_command_argv(t->command, &x->argv, err, sizeof(err)))
		return -EINVAL; /* the loader validated it: out of memory */
	snprintf(x->max_inflight, sizeof(x->max_inflight), "%d",
		 t->max_inflight);
	snprintf(x->max_line, sizeof(x->max_line), "%d", t->max_line_bytes);
	f[BG_KF_KIND] = bg_str_c("exec");
	f[BG_KF_ARGV] = bg_str_c(x->argv);
	f[BG_KF_WORKDIR] = bg_str_c(dir);
	f[BG_KF_MODE] = bg_str_c(t->mode == BG_EXEC_PER_TASK ? "per_task"
							     : "persistent");
	f[BG_KF_MAX_INFLIGHT] = bg_str_c(x->max_inflight);
	f[BG_KF_MAX_LINE] = bg_str_c(x->max_line);
	return 0;
}

static int build_config_payload(struct bg_pool *p)
{
	const struct bg_config *cfg = p->cfg;
	int n = cfg->n_agent_types;
	uint32_t nf = (uint32_t)(1 + BG_CONF_FIELDS_PER_TYPE * n);
	struct bg_str *v = calloc(nf, sizeof(*v));
	struct config_scratch *x = calloc((size_t)(n ? n : 1), sizeof(*x));
	char *dir = strdup(cfg->path && cfg->path[0] ? cfg->path : "/");
	int rc = v && x && dir ? 0 : -ENOMEM;
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	char count[16];
	snprintf(count, sizeof(count), "%d", n);
	if (rc == 0)
		v[0] = bg_str_c(count);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = config_fields(cfg, &cfg->agent_types[i], dir, &x[i],
				   &v[1 + BG_CONF_FIELDS_PER_TYPE * i]);
	if (rc == 0)
		rc = bg_rec_pack(&p->config_payload, v, nf);
	for (int i = 0; x && i < n; i++) {
		free(x[i].argv);
		free(x[i].sandbox);
	}
	free(x);
	free(v);
	free(dir);
	return rc;
}

struct bg_pool *bg_pool_new(struct event_base *base,
			    const struct bg_config *cfg,
			    const char *child_path,
			    const struct bg_spawn_identity *who,
			    const struct bg_pool_ops *ops, void *arg)
{
	struct bg_pool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	char err[256];
	if (bg_spawn_prepare(who, &p->spawner, err, sizeof(err)) != 0) {
		bg_error("cannot prepare the children's start: %s", err);
		free(p);
		return NULL;
	}
	p->base = base;
	p->cfg = cfg;
	p->child_path = strdup(child_path);
	p->ops = *ops;
	p->arg = arg;
	p->n = cfg->pool_size;
	p->generation = 1;
	p->c = calloc((size_t)p->n, sizeof(*p->c));
	p->deaths_cap = cfg->crash_storm_deaths > 0 ? cfg->crash_storm_deaths
						     : 1;
	p->deaths = calloc((size_t)p->deaths_cap, sizeof(int64_t));
	if (p->child_path == NULL || p->c == NULL ||
	    build_config_payload(p) != 0) {
		bg_pool_free(p);
		return NULL;
	}
	for (int i = 0; i < p->n; i++) {
		p->c[i].pool = p;
		p->c[i].slot = i;
		p->c[i].seg.fd = -1;
		p->c[i].out.fd = -1;
		p->c[i].wake_child_fd = p->c[i].wake_sup_fd = -1;
	}
	return p;
}

int bg_pool_start(struct bg_pool *p)
{
	p->ev_sigchld = evsignal_new(p->base, SIGCHLD, on_sigchld, p);
	p->ev_sweep = event_new(p->base, -1, EV_PERSIST, on_sweep, p);
	if (p->ev_sigchld == NULL || p->ev_sweep == NULL)
		return -ENOMEM;
	evsignal_add(p->ev_sigchld, NULL);
	struct timeval tv = { 0, 100 * 1000 };
	event_add(p->ev_sweep, &tv);
	for (int i = 0; i < p->n; i++) {
		int rc = spawn_child(&p->c[i]);
		if (rc)
			return rc;
	}
	return 0;
}

void bg_pool_free(struct bg_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; p->c && i < p->n; i++) {
		if (p->c[i].pid > 0) {
			child_kill(&p->c[i], "shutdown");
			waitpid(p->c[i].pid, NULL, 0);
			p->c[i].pid = 0;
		}
		output_close(&p->c[i]);
		release_resources(&p->c[i]);
	}
	if (p->ev_sigchld)
		event_free(p->ev_sigchld);
	if (p->ev_sweep)
		event_free(p->ev_sweep);
	bg_buf_free(&p->config_payload);
	free(p->deaths);
	free(p->c);
	free(p->child_path);
	bg_spawn_free(p->spawner);
	free(p);
}

int bg_pool_size(const struct bg_pool *p)
{
	return p->n;
}

static int count_state(const struct bg_pool *p, enum child_state s)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].state == s && p->c[i].pid > 0;
	return n;
}

int bg_pool_idle_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].state == CH_IDLE && !p->c[i].recycling;
	return n;
}

int bg_pool_busy_count(const struct bg_pool *p)
{
	return count_state(p, CH_BUSY);
}

int bg_pool_task_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].n_tags;
	return n;
}

int bg_pool_shared_children(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].n_tags > 0 && p->c[i].group >= 0;
	return n;
}

int bg_pool_alive_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].pid > 0;
	return n;
}

/* Room for one more task of `group` in ch (see bg_pool_pick), 0 = none. */
static int free_room(const struct bg_child *ch, int group, int limit)
{
	if (ch->pid <= 0 || ch->recycling || ch->kill_reason || ch->exited ||
	    (ch->state != CH_IDLE && ch->state != CH_BUSY))
		return 0;
	if (ch->n_tags == 0)
		return group >= 0 && limit > 1 ? limit : 1;
	if (group < 0 || limit <= 1 || ch->group != group ||
	    ch->n_tags >= limit)
		return 0;
	return limit - ch->n_tags;
}

/* The busy child with the fewest tasks (the lowest slot on a tie): the one
 * left to drain for a task waiting for a child to itself. -1 = none. */
static int draining_child(const struct bg_pool *p)
{
	int best = -1;
	for (int i = 0; i < p->n; i++) {
		const struct bg_child *ch = &p->c[i];
		if (ch->n_tags > 0 && ch->pid > 0 && !ch->exited &&
		    (best < 0 || ch->n_tags < p->c[best].n_tags))
			best = i;
	}
	return best;
}

int bg_pool_pick(const struct bg_pool *p, int group, int limit,
		 bool busy_only)
{
	int best = -1, best_room = 0;
	int drain = busy_only ? draining_child(p) : -1;
	for (int i = 0; i < p->n; i++) {
		if (busy_only && (p->c[i].n_tags == 0 || i == drain))
			continue;
		int room = free_room(&p->c[i], group, limit);
		if (room > best_room) {
			best = i;
			best_room = room;
		}
	}
	return best;
}

pid_t bg_pool_pid(const struct bg_pool *p, int slot)
{
	return (slot >= 0 && slot < p->n) ? p->c[slot].pid : 0;
}

int bg_pool_run(struct bg_pool *p, int slot, uint64_t tag, int group,
		int limit, const void *payload, size_t len)
{
	struct bg_child *ch = &p->c[slot];
	if (limit > BG_POOL_MAX_INFLIGHT)
		limit = BG_POOL_MAX_INFLIGHT;
	if (free_room(ch, group, limit) == 0)
		return -EBUSY;
	int rc = child_queue(ch, BG_REC_TASK, tag, payload, len);
	if (rc)
		return rc;
	ch->state = CH_BUSY;
	ch->group = limit > 1 ? group : -1;
	ch->tags[ch->n_tags++] = tag;
	return 0;
}

int bg_pool_reply(struct bg_pool *p, int slot, uint64_t tag,
		  const void *payload, size_t len)
{
	struct bg_child *ch = &p->c[slot];
	if (ch->pid <= 0 || ch->state != CH_BUSY || tag_index(ch, tag) < 0)
		return -ESRCH;
	return child_queue(ch, BG_REC_REPLY, tag, payload, len);
}

int bg_pool_cancel(struct bg_pool *p, int slot, uint64_t tag,
		   const char *reason, const char *mode)
{
	struct bg_child *ch = &p->c[slot];
	if (ch->pid <= 0 || ch->state != CH_BUSY || tag_index(ch, tag) < 0)
		return -ESRCH;
	struct bg_buf payload = { 0 };
	struct bg_str v[2] = { bg_str_c(reason), bg_str_c(mode) };
	int rc = bg_rec_pack(&payload, v, 2);
	if (rc == 0)
		rc = child_queue(ch, BG_REC_CANCEL, tag, payload.p, payload.len);
	bg_buf_free(&payload);
	return rc;
}

uint32_t bg_pool_new_generation(struct bg_pool *p)
{
	p->generation++;
	for (int i = 0; i < p->n; i++)
		if (p->c[i].pid > 0 && p->c[i].generation < p->generation)
			p->c[i].recycling = true;
	return p->generation;
}

uint32_t bg_pool_generation(const struct bg_pool *p)
{
	return p->generation;
}

int bg_pool_generation_state(const struct bg_pool *p, const char **why)
{
	if (p->gen_failed == p->generation) {
		*why = p->gen_failure;
		return -1;
	}
	for (int i = 0; i < p->n; i++) {
		const struct bg_child *ch = &p->c[i];
		if (ch->pid <= 0 || ch->generation != p->generation ||
		    ch->state == CH_STARTING || ch->state == CH_STOPPING)
			return 0;
	}
	return 1;
}

int bg_pool_set_config(struct bg_pool *p, const struct bg_config *cfg)
{
	const struct bg_config *old = p->cfg;
	p->cfg = cfg;
	bg_buf_reset(&p->config_payload);
	int rc = build_config_payload(p);
	if (rc) {
		p->cfg = old;
		bg_buf_reset(&p->config_payload);
		build_config_payload(p);
	}
	return rc;
}

void bg_pool_signal(struct bg_pool *p, int slot, int sig, const char *reason)
{
	struct bg_child *ch = &p->c[slot];
	if (ch->pid <= 0)
		return;
	if (ch->kill_reason == NULL)
		ch->kill_reason = reason;
	if (sig == SIGKILL) {
		child_kill(ch, reason);
		return;
	}
	if (kill(-ch->pid, sig) == -1)
		kill(ch->pid, sig);
}

void bg_pool_end_of_turn(struct bg_pool *p)
{
	for (int i = 0; i < p->n; i++) {
		struct bg_child *ch = &p->c[i];
		if (ch->ring_pending && ch->wake_child_fd >= 0)
			bg_doorbell_ring(ch->wake_child_fd);
		ch->ring_pending = false;
	}
}

void bg_pool_shutdown(struct bg_pool *p, bool graceful)
{
	p->shutting_down = true;
	for (int i = 0; i < p->n; i++) {
		struct bg_child *ch = &p->c[i];
		if (ch->pid <= 0)
			continue;
		if (graceful && ch->state != CH_STOPPING) {
			ch->state = ch->state == CH_BUSY ? CH_BUSY : CH_STOPPING;
			child_queue(ch, BG_REC_STOP, 0, "", 0);
		} else if (!graceful) {
			child_kill(ch, "bygated is stopping");
		}
	}
	bg_pool_end_of_turn(p);
}

void bg_pool_get_stats(const struct bg_pool *p, struct bg_pool_stats *s)
{
	*s = p->stats;
}
