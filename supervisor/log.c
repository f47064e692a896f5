/* supervisor/log.c - text or JSON log lines, one write(2) per line so lines
 * never interleave mid-line, and every control character escaped so that
 * no text bygated logs (an id, a child's output) can forge a line. */
#include "supervisor/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "wire/json.h"

static struct {
	enum bg_log_level level;
	enum bg_log_format fmt;
	char file[4096];
	int fd;
} g_log = { BG_LOG_INFO, BG_LOG_TEXT, "", 2 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int bg_log_open(enum bg_log_level level, enum bg_log_format fmt,
		const char *file)
{
	g_log.level = level;
	g_log.fmt = fmt;
	snprintf(g_log.file, sizeof(g_log.file), "%s", file ? file : "");
	return bg_log_reopen();
}

int bg_log_reopen(void)
{
	if (g_log.file[0] == '\0') { /* "": back to stderr (a SIGHUP) */
		int old = g_log.fd;
		g_log.fd = 2;
		if (old > 2)
			close(old);
		return 0;
	}
	int fd = open(g_log.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		      0640);
	if (fd == -1)
		return -errno;
	int old = g_log.fd;
	g_log.fd = fd;
	if (old > 2)
		close(old);
	return 0;
}

void bg_log_set_level(enum bg_log_level level)
{
	g_log.level = level;
}

int bg_log_enabled(enum bg_log_level level)
{
	return level >= g_log.level;
}

/* Length of the valid UTF-8 sequence (2-4 bytes, no overlong form, no
 * surrogate, at most U+10FFFF) at u[0..n), 0 if there is none. */
static size_t utf8_len(const unsigned char *u, size_t n)
{
	unsigned c = u[0];
	size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
	if (k == 0 || c > 0xf4 || k > n)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((u[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && u[1] < 0xa0) || (c == 0xed && u[1] > 0x9f) ||
	    (c == 0xf0 && u[1] < 0x90) || (c == 0xf4 && u[1] > 0x8f))
		return 0;
	return k;
}

int bg_log_escape(struct bg_buf *out, const char *s, size_t n, bool backslash)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t run = 0, i = 0;
	int rc = 0;
	while (rc == 0 && i < n) {
		unsigned char c = u[i];
		if (c >= 0x20 && c < 0x7f && (c != '\\' || !backslash)) {
			i++;
			continue;
		}
		size_t k = c >= 0x80 ? utf8_len(u + i, n - i) : 0;
		if (k) {
			i += k;
			continue;
		}
		rc = bg_buf_append(out, s + run, i - run);
		if (rc == 0)
			rc = c == '\\' ? bg_buf_append(out, "\\\\", 2)
				       : bg_buf_printf(out, "\\x%02x", c);
		run = ++i;
	}
	if (rc == 0)
		rc = bg_buf_append(out, s + run, i - run);
	return rc;
}

static void put_time(struct bg_buf *b)
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	bg_buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		      tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void json_member(struct bg_buf *b, const char *key, const char *val)
{
	bg_buf_printf(b, ",\"%s\":", key);
	bg_json_escape(b, val, strlen(val));
}

static void emit(enum bg_log_level level, const struct bg_log_ids *ids,
		 const char *fmt, va_list ap)
{
	char msg[16384];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct bg_buf b = { 0 }, line = { 0 };
	if (g_log.fmt == BG_LOG_JSON) {
		bg_buf_puts(&b, "{\"ts\":\"");
		put_time(&b);
		bg_buf_printf(&b, "\",\"level\":\"%s\"", level_names[level]);
		json_member(&b, "msg", msg);
		if (ids) {
			if (ids->session_id)
				json_member(&b, "session_id", ids->session_id);
			if (ids->execution_id)
				json_member(&b, "execution_id",
					    ids->execution_id);
			if (ids->message_id)
				json_member(&b, "message_id", ids->message_id);
			if (ids->slot >= 0)
				bg_buf_printf(&b, ",\"slot\":%d", ids->slot);
			if (ids->pid > 0)
				bg_buf_printf(&b, ",\"pid\":%d", ids->pid);
		}
		bg_buf_puts(&b, "}\n");
	} else {
		put_time(&b);
		bg_buf_printf(&b, " %-5s %s", level_names[level], msg);
		if (ids) {
			bg_buf_printf(&b, " (session=%s exec=%s msg=%s",
				      ids->session_id ? ids->session_id : "-",
				      ids->execution_id ? ids->execution_id
							: "-",
				      ids->message_id ? ids->message_id : "-");
			if (ids->slot >= 0)
				bg_buf_printf(&b, " slot=%d", ids->slot);
			if (ids->pid > 0)
				bg_buf_printf(&b, " pid=%d", ids->pid);
			bg_buf_puts(&b, ")");
		}
		/* Ids and messages may hold untrusted text: one line, always. */
		if (b.p && bg_log_escape(&line, b.p, b.len, false) == 0 &&
		    bg_buf_puts(&line, "\n") == 0) {
			bg_buf_free(&b);
			b = line;
			line = (struct bg_buf){ 0 };
		} else if (b.p) {
			bg_buf_puts(&b, "\n");
		}
	}
	if (b.p) {
		ssize_t w = write(g_log.fd, b.p, b.len);
		(void)w;
	}
	bg_buf_free(&line);
	bg_buf_free(&b);
}

void bg_log(enum bg_log_level level, const char *fmt, ...)
{
	if (level < g_log.level)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(level, NULL, fmt, ap);
	va_end(ap);
}

void bg_log_task(enum bg_log_level level, const struct bg_log_ids *ids,
		 const char *fmt, ...)
{
	if (level < g_log.level)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(level, ids, fmt, ap);
	va_end(ap);
}
