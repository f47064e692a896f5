/* tests/fuzz/fuzz_cron.c - libFuzzer target for the cron parser and the
 * next-fire search (common/cron.c): the input up to its first NUL is an
 * expression, its last 8 bytes (when it has a NUL) an instant.
 *
 * Checked besides memory safety: a refusal always says why; an accepted
 * expression has only valid bits (minute 0-59, hour 0-23, day 1-31, month
 * 1-12, week day 0-6) and at least one in each field; a next time is a
 * whole minute strictly after the instant, matches every field (through
 * gmtime_r, not the parser's own calendar), and asking again from one
 * millisecond before it gives it back.
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_cron
 * (seeds: tests/fuzz/corpus/fuzz_cron/); `make fuzz` with libFuzzer, or
 * by hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_cron.c \
 *     common/cron.c -o fuzz_cron
 *   mkdir -p /tmp/fuzz_cron
 *   ./fuzz_cron -max_len=256 -max_total_time=60 \
 *     /tmp/fuzz_cron tests/fuzz/corpus/fuzz_cron
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cron.h"

#include "tests/fuzz/check.h"

#define YEAR_MS (366LL * 86400 * 1000)

static bool matches(const struct bg_cron *c, int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	CHECK(gmtime_r(&s, &tm) != NULL);
	bool dom = c->mday >> tm.tm_mday & 1, dow = c->wday >> tm.tm_wday & 1;
	bool day = c->mday_any || c->wday_any ? dom && dow : dom || dow;
	return day && (c->minute >> tm.tm_min & 1) &&
	       (c->hour >> tm.tm_hour & 1) && (c->month >> (tm.tm_mon + 1) & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *expr = malloc(size + 1), why[128] = "";
	struct bg_cron c;
	if (expr == NULL)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	size_t len = strlen(expr);
	int64_t after = 1718000000123; /* 2024-06-10 */
	if (size - len > 8) {
		uint64_t u;
		memcpy(&u, data + size - 8, 8);
		/* 1900 to 2200 */
		after = (int64_t)(u % (300 * YEAR_MS)) - 70 * YEAR_MS;
	}
	if (bg_cron_parse(expr, &c, why, sizeof why) != 0) {
		CHECK(why[0] != '\0');
		free(expr);
		return 0;
	}
	CHECK(c.minute != 0 && c.minute >> 60 == 0);
	CHECK(c.hour != 0 && c.hour >> 24 == 0);
	CHECK(c.mday != 0 && (c.mday & 1) == 0);
	CHECK(c.month != 0 && (c.month & 1) == 0 && c.month >> 13 == 0);
	CHECK(c.wday != 0 && c.wday >> 7 == 0);
	int64_t next = bg_cron_next(&c, after);
	if (next != -1) {
		CHECK(next > after && next % 60000 == 0);
		CHECK(next - after <= 9 * YEAR_MS);
		CHECK(matches(&c, next));
		CHECK(bg_cron_next(&c, next - 1) == next);
	}
	free(expr);
	return 0;
}
