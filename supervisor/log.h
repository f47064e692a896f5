/* supervisor/log.h - bygated's log: text (default) or JSON lines to stderr
 * or a file, reopened on SIGUSR1. Only the daemon logs; libraries return
 * codes. Task lines carry session, execution and message ids, slot and pid. */
#ifndef BG_SUPERVISOR_LOG_H
#define BG_SUPERVISOR_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "conf/config.h"

struct bg_log_ids {
	const char *session_id;
	const char *execution_id;
	const char *message_id;
	int slot; /* -1 = none */
	int pid;  /* 0 = none */
};

int bg_log_open(enum bg_log_level level, enum bg_log_format fmt,
		const char *file);
int bg_log_reopen(void);
void bg_log_set_level(enum bg_log_level level);
int bg_log_enabled(enum bg_log_level level);

void bg_log(enum bg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bg_log_task(enum bg_log_level level, const struct bg_log_ids *ids,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append s[0..n) to out with every control character (below 0x20, 0x7f)
 * and every byte that is not part of valid UTF-8 written as \xNN, and with
 * backslash, '\\' written as "\\\\" (unambiguous: for a child's raw
 * output). Every log line goes through it without backslash (the JSON
 * format escapes through its encoder). 0 or -ENOMEM. */
int bg_log_escape(struct bg_buf *out, const char *s, size_t n, bool backslash);

#define bg_debug(...) bg_log(BG_LOG_DEBUG, __VA_ARGS__)
#define bg_info(...) bg_log(BG_LOG_INFO, __VA_ARGS__)
#define bg_warn(...) bg_log(BG_LOG_WARN, __VA_ARGS__)
#define bg_error(...) bg_log(BG_LOG_ERROR, __VA_ARGS__)

#endif
