/* supervisor/pool_output.c - a child's stdout and stderr (one pipe) into
 * bygated's log: split into lines, escaped, cut and bounded per child (the
 * child's own task processes' lines arrive already escaped). */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "supervisor/log.h"

/* Lines of at most OUT_LINE_MAX bytes (pool_int.h), at most
 * OUT_BUDGET_BYTES of log per OUT_WINDOW_MS per child (each line costs its
 * escaped length plus OUT_LINE_COST, so a flood of empty lines is bounded
 * too); the rest is counted and reported once per window. */
#define OUT_BUDGET_BYTES (1024 * 1024)
#define OUT_WINDOW_MS 60000
#define OUT_LINE_COST 64
#define OUT_READ_PER_TURN (256 * 1024)	   /* bytes read per loop turn */
#define OUT_READ_AT_EXIT (4 * 1024 * 1024) /* drained when it is gone */

/* Log the line held in o (escaped, prefixed) and start a new one. */
static void output_line(struct bg_slot *sl)
{
	struct child_output *o = &sl->out;
	struct bg_buf b = { 0 };
	/* The spare child's lines repeat at every try (its failure is
	 * logged once per change by pool_lifecycle.c): debug. */
	enum bg_log_level lvl = bg_slot_is_retry(sl) ? BG_LOG_DEBUG
						     : BG_LOG_WARN;
	/* Control characters only: the zygote already escapes its task
	 * processes' lines, backslashes included, and escaping those again
	 * would double them. No line can be forged either way. */
	if (bg_log_escape(&b, o->line, o->len, false) == 0) {
		o->win_bytes += b.len + OUT_LINE_COST;
		if (o->cut)
			bg_log(lvl, "slot %d pid %d: %.*s ... (%llu bytes cut)",
			       sl->slot, (int)sl->pid, (int)b.len,
			       b.p ? b.p : "", (unsigned long long)o->cut);
		else
			bg_log(lvl, "slot %d pid %d: %.*s", sl->slot,
			       (int)sl->pid, (int)b.len, b.p ? b.p : "");
	}
	bg_buf_free(&b);
	o->len = 0;
	o->cut = 0;
}

static void output_report_dropped(struct bg_slot *sl)
{
	struct child_output *o = &sl->out;
	if (o->dropped)
		bg_warn("slot %d: output dropped (%llu bytes)", sl->slot,
			(unsigned long long)o->dropped);
	o->dropped = 0;
}

/* Take n bytes of output: split into lines within the budget. */
static void output_take(struct bg_slot *sl, const char *p, size_t n)
{
	struct child_output *o = &sl->out;
	int64_t now = bg_pool_mono_ms();
	if (now - o->win_start_ms >= OUT_WINDOW_MS) {
		output_report_dropped(sl);
		o->win_start_ms = now;
		o->win_bytes = 0;
	}
	while (n > 0) {
		if (o->win_bytes >= OUT_BUDGET_BYTES) {
			if (o->dropped == 0) {
				if (o->len || o->cut)
					output_line(sl);
				bg_warn("slot %d pid %d: more than %d bytes of "
					"output within %d s; the rest is "
					"dropped until the window ends",
					sl->slot, (int)sl->pid,
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
			output_line(sl);
			p++;
			n--;
		}
	}
}

/* Read what the pipe holds (to EOF or EAGAIN), at most `max` bytes: a
 * child writing without pause must not hold the loop (the event fires
 * again on the next turn). */
static void output_read(struct bg_slot *sl, size_t max)
{
	char buf[65536];
	size_t got = 0;
	while (sl->out.fd >= 0 && got < max) {
		ssize_t n = read(sl->out.fd, buf, sizeof(buf));
		if (n > 0) {
			output_take(sl, buf, (size_t)n);
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
void bg_slot_output_close(struct bg_slot *sl)
{
	struct child_output *o = &sl->out;
	if (o->fd < 0)
		return;
	output_read(sl, OUT_READ_AT_EXIT);
	if (o->len || o->cut)
		output_line(sl);
	output_report_dropped(sl);
	if (o->ev)
		event_free(o->ev);
	close(o->fd);
	o->ev = NULL;
	o->fd = -1;
}

/* A pipe for the child's fds 1 and 2: the read end (non-blocking) into
 * sl->out with its event, the write end (blocking, above 9) in *wfd. */
int bg_slot_output_open(struct bg_slot *sl, int *wfd)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) == -1)
		return -errno;
	int hi = bg_pool_dup_high(fds[1]);
	int e = errno;
	close(fds[1]);
	if (hi == -1 || fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		e = hi == -1 ? e : errno;
		if (hi != -1)
			close(hi);
		close(fds[0]);
		return -e;
	}
	struct child_output *o = &sl->out;
	o->ev = event_new(sl->pool->base, fds[0], EV_READ | EV_PERSIST,
			  on_output, sl);
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
	o->win_start_ms = bg_pool_mono_ms();
	o->win_bytes = 0;
	*wfd = hi;
	return 0;
}
