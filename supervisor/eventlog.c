/* supervisor/eventlog.c - the task event log: JSON lines buffered in
 * memory, written at each loop turn's end, the file rotated by size
 * (eventlog.h says the contract; docs/operations.md the format). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/eventlog.h"
#include "supervisor/log.h"

/* Buffered bytes that make a flush at once rather than at the turn's
 * end (a turn that ends thousands of tasks). */
#define FLUSH_AT (256 * 1024)

struct bg_eventlog {
	char *path; /* NULL = off */
	int fd;
	int64_t size;	   /* bytes in the current file */
	int64_t max_bytes; /* 0 = never rotated */
	int keep;	   /* rotated files kept */
	struct bg_buf buf; /* lines not yet written */
	size_t lines;	   /* lines in buf */
	uint64_t errors;   /* lines lost */
	bool error_logged; /* a write error was logged (once) */
};

static struct bg_eventlog *state_of(struct bg_daemon *d)
{
	if (d->eventlog == NULL) {
		d->eventlog = calloc(1, sizeof(*d->eventlog));
		if (d->eventlog)
			d->eventlog->fd = -1;
	}
	return d->eventlog;
}

static void lost(struct bg_eventlog *l, const char *call, int err)
{
	l->errors += l->lines;
	if (!l->error_logged) {
		bg_error("event log %s: %s failed: %s; its events are dropped "
			 "(logged once; counted)",
			 l->path, call, strerror(err));
		l->error_logged = true;
	}
}

static int open_file(struct bg_eventlog *l)
{
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (l->fd == -1)
		return -errno;
	off_t end = lseek(l->fd, 0, SEEK_END);
	l->size = end == (off_t)-1 ? 0 : (int64_t)end;
	return 0;
}

/* A failed rotation step: logged once (the next flush tries again). */
static void rotate_failed(struct bg_eventlog *l, const char *call,
			  const char *what)
{
	if (l->error_logged)
		return;
	bg_warn("event log: %s(%s) failed while rotating: %s (logged once)",
		call, what, strerror(errno));
	l->error_logged = true;
}

/* file -> file.1 -> ... -> file.<keep> (the oldest dropped), then a new
 * file; with keep = 0 the file is removed. */
static void rotate(struct bg_eventlog *l)
{
	size_t n = strlen(l->path) + 16;
	char *from = malloc(n), *to = malloc(n);
	if (from == NULL || to == NULL) {
		free(from);
		free(to);
		return; /* kept growing: tried again after the next write */
	}
	close(l->fd);
	l->fd = -1;
	for (int i = l->keep - 1; i >= 1; i--) {
		snprintf(from, n, "%s.%d", l->path, i);
		snprintf(to, n, "%s.%d", l->path, i + 1);
		if (rename(from, to) == -1 && errno != ENOENT)
			rotate_failed(l, "rename", from);
	}
	snprintf(to, n, "%s.1", l->path);
	int rc = l->keep > 0 ? rename(l->path, to) : unlink(l->path);
	if (rc == -1)
		rotate_failed(l, l->keep > 0 ? "rename" : "unlink", l->path);
	free(from);
	free(to);
	rc = open_file(l);
	if (rc)
		lost(l, "open()", -rc);
}

static void flush(struct bg_eventlog *l)
{
	if (l == NULL || l->buf.len == 0)
		return;
	if (l->fd == -1) {
		lost(l, "open()", EBADF);
	} else {
		size_t off = 0;
		while (off < l->buf.len) {
			ssize_t w =
				write(l->fd, l->buf.p + off, l->buf.len - off);
			if (w == -1 && errno == EINTR)
				continue;
			if (w == -1) {
				lost(l, "write()", errno);
				break;
			}
			off += (size_t)w;
		}
		l->size += (int64_t)off;
	}
	bg_buf_reset(&l->buf);
	l->lines = 0;
	if (l->fd != -1 && l->max_bytes > 0 && l->size >= l->max_bytes)
		rotate(l);
}

int bg_eventlog_configure(struct bg_daemon *d)
{
	const char *path = d->cfg->log_events_file;
	struct bg_eventlog *l = d->eventlog;
	if ((path == NULL || path[0] == '\0') && l == NULL)
		return 0;
	l = state_of(d);
	if (l == NULL)
		return -ENOMEM;
	flush(l);
	if (l->fd != -1)
		close(l->fd);
	l->fd = -1;
	free(l->path);
	l->path = NULL;
	l->max_bytes = (int64_t)d->cfg->log_events_max_mb * 1024 * 1024;
	l->keep = d->cfg->log_events_keep;
	if (path == NULL || path[0] == '\0')
		return 0;
	l->path = strdup(path);
	if (l->path == NULL)
		return -ENOMEM;
	l->error_logged = false;
	int rc = open_file(l);
	if (rc) {
		bg_error("event log: open(%s) failed: %s; no events are "
			 "written until a reload",
			 path, strerror(-rc));
		free(l->path);
		l->path = NULL;
	}
	return rc;
}

void bg_eventlog_flush(struct bg_daemon *d)
{
	flush(d->eventlog);
}

void bg_eventlog_close(struct bg_daemon *d)
{
	struct bg_eventlog *l = d->eventlog;
	if (l == NULL)
		return;
	flush(l);
	if (l->fd != -1)
		close(l->fd);
	free(l->path);
	bg_buf_free(&l->buf);
	free(l);
	d->eventlog = NULL;
}

uint64_t bg_eventlog_errors(const struct bg_daemon *d)
{
	return d->eventlog ? d->eventlog->errors : 0;
}

static void set_s(json_t *o, const char *key, const char *v)
{
	if (v && v[0])
		json_object_set_new(o, key, json_string(v));
}

static void set_i(json_t *o, const char *key, int64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* The fields every event of t carries; NULL when the log is off. */
static json_t *event_new(struct bg_daemon *d, const struct bg_job *t,
			 const char *name)
{
	if (d->eventlog == NULL || d->eventlog->path == NULL)
		return NULL;
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int64_t now = bg_now_ms();
	time_t s = (time_t)(now / 1000);
	struct tm tm;
	char ts[40];
	gmtime_r(&s, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now % 1000));
	set_s(o, "ts", ts);
	set_i(o, "ts_ms", now);
	set_s(o, "event", name);
	set_s(o, "worker_id", d->worker_id);
	set_s(o, "agent_type",
	      t->id.handler_type ? t->id.handler_type : t->id.agent_type);
	set_s(o, "session_id", t->id.session_id);
	set_s(o, "message_id", t->id.message_id);
	set_s(o, "execution_id", t->id.execution_id);
	set_s(o, "entry_id", t->id.entry_id);
	set_s(o, "lane", t->run.lane);
	if (t->id.cmd_ok) {
		struct bg_str g = t->id.cmd.hdr[BG_HDR_TASK_GROUP_ID];
		if (g.len)
			json_object_set_new(o, "group",
					    json_stringn(g.p, g.len));
	}
	return o;
}

/* Append o as one line (o is consumed). */
static void put(struct bg_daemon *d, json_t *o)
{
	if (o == NULL)
		return;
	struct bg_eventlog *l = d->eventlog;
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL || bg_buf_puts(&l->buf, s) != 0 ||
	    bg_buf_append(&l->buf, "\n", 1) != 0) {
		l->errors++;
		free(s);
		return;
	}
	free(s);
	l->lines++;
	if (l->buf.len >= FLUSH_AT)
		flush(l);
}

void bg_eventlog_queued(struct bg_daemon *d, const struct bg_job *t)
{
	json_t *o = event_new(d, t, "queued");
	if (o && t->run.priority)
		set_i(o, "priority", t->run.priority);
	put(d, o);
}

void bg_eventlog_started(struct bg_daemon *d, const struct bg_job *t)
{
	json_t *o = event_new(d, t, "started");
	if (o == NULL)
		return;
	set_i(o, "attempt", t->run.attempt);
	set_i(o, "slot", t->run.slot);
	set_i(o, "pid", t->run.pid);
	set_i(o, "queue_ms", t->run.started_ms - t->run.picked_ms);
	put(d, o);
}

void bg_eventlog_retry(struct bg_daemon *d, const struct bg_job *t,
		       const char *why)
{
	json_t *o = event_new(d, t, "retry");
	if (o == NULL)
		return;
	set_i(o, "attempt", t->run.failed_attempts + 1);
	set_s(o, "error", why);
	put(d, o);
}

void bg_eventlog_ended(struct bg_daemon *d, const struct bg_job *t,
		       const char *status)
{
	json_t *o = event_new(d, t, "ended");
	if (o == NULL)
		return;
	int64_t now = bg_mono_ms();
	int64_t start = t->run.started_ms ? t->run.started_ms : now;
	set_s(o, "status", status);
	set_s(o, "error_code", t->end.error_code);
	set_s(o, "error", t->end.error_message);
	if (t->run.attempt)
		set_i(o, "attempt", t->run.attempt);
	set_i(o, "queue_ms", start - t->run.picked_ms);
	set_i(o, "run_ms", now - start);
	set_i(o, "total_ms", now - t->run.picked_ms);
	put(d, o);
}
