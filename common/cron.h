/* common/cron.h - five-field cron expressions (minute hour day-of-month
 * month day-of-week, as crontab(5)): parsed once, then the next fire time
 * after a given instant, in UTC. */
#ifndef BG_COMMON_CRON_H
#define BG_COMMON_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One bit per allowed value of each field. */
struct bg_cron {
	uint64_t minute; /* 0-59 */
	uint32_t hour;	 /* 0-23 */
	uint32_t mday;	 /* 1-31 */
	uint16_t month;	 /* 1-12 */
	uint8_t wday;	 /* 0-6, Sunday = 0 (7 is accepted as Sunday) */
	bool mday_any;	 /* day-of-month started with "*" (crontab(5)) */
	bool wday_any;	 /* day-of-week started with "*" */
};

/* Parse `expr`: five fields separated by blanks, each "*", a number, a
 * range a-b, a step (*\/n, a-b/n, a/n) or a comma list of those; month and
 * day names (jan..dec, sun..sat) and the macros @hourly @daily @midnight
 * @weekly @monthly @yearly @annually. 0, or -1 with why (naming the field). */
int bg_cron_parse(const char *expr, struct bg_cron *out, char *why, size_t n);

/* The first minute strictly after after_ms (Unix ms, UTC) that matches c,
 * in Unix ms; as cron, when both day fields are restricted a day matches
 * if either does. -1 when none within about eight years (31 feb; 29 feb
 * reaches across a century year). */
int64_t bg_cron_next(const struct bg_cron *c, int64_t after_ms);

#endif
