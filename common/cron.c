/* common/cron.c - five-field cron expressions (common/cron.h): a parser to
 * one bit per allowed value, and the next matching minute found day by day
 * over a proleptic Gregorian calendar of our own (no TZ, no locale, no
 * time_t limits). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/cron.h"

/* ---- parsing ------------------------------------------------------------ */

enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F__COUNT };

static const char *const month_names[] = { "jan", "feb", "mar", "apr",
					   "may", "jun", "jul", "aug",
					   "sep", "oct", "nov", "dec" };
static const char *const wday_names[] = { "sun", "mon", "tue", "wed",
					  "thu", "fri", "sat" };

static const struct field {
	const char *name;
	int min, max; /* max 7 for day-of-week: 7 is Sunday again */
	const char *const *names;
	int first_name; /* the value of names[0] */
	int nnames;
} fields[F__COUNT] = {
	[F_MINUTE] = { "minute", 0, 59, NULL, 0, 0 },
	[F_HOUR] = { "hour", 0, 23, NULL, 0, 0 },
	[F_MDAY] = { "day-of-month", 1, 31, NULL, 0, 0 },
	[F_MONTH] = { "month", 1, 12, month_names, 1, 12 },
	[F_WDAY] = { "day-of-week", 0, 7, wday_names, 0, 7 },
};

static const struct {
	const char *name, *expr;
} macros[] = {
	{ "@hourly", "0 * * * *" },   { "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" }, { "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },  { "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

static int fail(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* why (n bytes, may be NULL) gets the message; -1. */
static int fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why != NULL && n > 0)
		vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A number or a name of field f in s[0..len): 0 with *v, or -1. */
static int value(const struct field *f, const char *s, size_t len, int *v)
{
	if (len == 0)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		long x = 0;
		for (size_t i = 0; i < len; i++) {
			if (s[i] < '0' || s[i] > '9' || x > 1000000)
				return -1;
			x = x * 10 + (s[i] - '0');
		}
		*v = (int)x;
		return 0;
	}
	for (int i = 0; len == 3 && i < f->nnames; i++)
		if (!strncasecmp(s, f->names[i], 3)) {
			*v = f->first_name + i;
			return 0;
		}
	return -1;
}

/* One element of a list: "*", "a", "a-b", each optionally "/step". Sets
 * its bits in *bits; 0, or -1 with what is wrong in why. */
static int element(const struct field *f, const char *s, size_t len,
		   uint64_t *bits, char *why, size_t n)
{
	const char *slash = memchr(s, '/', len);
	size_t rlen = slash ? (size_t)(slash - s) : len;
	int lo = f->min, hi = f->max == 7 ? 6 : f->max, step = 1;

	if (slash != NULL) {
		size_t slen = len - rlen - 1;
		if (value(&(struct field){ 0 }, slash + 1, slen, &step) ||
		    step < 1 || step > f->max - f->min + 1)
			return fail(why, n, "the step must be 1 to %d",
				    f->max - f->min + 1);
	}
	if (rlen == 1 && s[0] == '*') {
		/* "*" and "*\/n": the whole range */
	} else {
		const char *dash = memchr(s, '-', rlen);
		size_t alen = dash ? (size_t)(dash - s) : rlen;
		if (value(f, s, alen, &lo) ||
		    (dash && value(f, dash + 1, rlen - alen - 1, &hi)))
			return fail(why, n,
				    "not a number, name, range or \"*\"");
		if (dash == NULL)
			hi = slash ? f->max : lo;
		if (lo < f->min || lo > f->max || hi < f->min || hi > f->max)
			return fail(why, n, "out of range %d-%d", f->min,
				    f->max);
		if (lo > hi)
			return fail(why, n, "the range goes backwards");
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << (f->max == 7 && v == 7 ? 0 : v);
	return 0;
}

/* One field: a comma list of elements. */
static int field(const struct field *f, const char *s, size_t len,
		 uint64_t *bits, char *why, size_t n)
{
	char detail[160] = "", item[64] = "";
	const char *end = s + len;
	int rc = 0;
	*bits = 0;
	for (const char *p = s; rc == 0 && p <= end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		int k = (int)(stop - p);
		if (stop == p)
			rc = fail(detail, sizeof detail, "an empty list item");
		else if ((rc = element(f, p, (size_t)k, bits, detail,
				       sizeof detail)) &&
			 (comma != NULL || p != s))
			snprintf(item, sizeof item,
				 "\"%.*s\": ", k < 40 ? k : 40, p);
		p = stop + 1;
	}
	if (rc == 0)
		return 0;
	return fail(why, n, "%s field \"%.*s\": %s%s", f->name,
		    (int)(len < 60 ? len : 60), s, item, detail);
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int bg_cron_parse(const char *expr, struct bg_cron *out, char *why, size_t n)
{
	const char *start[F__COUNT + 1];
	size_t len[F__COUNT + 1];
	int count = 0;
	memset(out, 0, sizeof *out);
	if (expr == NULL)
		return fail(why, n, "no cron expression");
	while (blank(*expr))
		expr++;
	if (expr[0] == '@') {
		size_t k = strcspn(expr, " \t");
		for (const char *p = expr + k; *p; p++)
			if (!blank(*p))
				return fail(why, n,
					    "\"%.*s\" stands alone: no fields "
					    "after a macro",
					    (int)k, expr);
		if (k == 7 && !strncasecmp(expr, "@reboot", 7))
			return fail(why, n,
				    "@reboot is not supported: a trigger fires "
				    "on the clock, not when a bygated starts");
		for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
			if (strlen(macros[i].name) == k &&
			    !strncasecmp(expr, macros[i].name, k))
				return bg_cron_parse(macros[i].expr, out, why,
						     n);
		return fail(why, n,
			    "unknown macro \"%.*s\" (@hourly, @daily, "
			    "@midnight, @weekly, @monthly, @yearly, "
			    "@annually)",
			    (int)(k < 60 ? k : 60), expr);
	}
	for (const char *p = expr; *p;) {
		while (blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (count == F__COUNT) {
			count++;
			break;
		}
		start[count] = p;
		while (*p && !blank(*p))
			p++;
		len[count] = (size_t)(p - start[count]);
		count++;
	}
	if (count != F__COUNT)
		return fail(why, n,
			    "%s: five fields are needed (minute hour "
			    "day-of-month month day-of-week)",
			    count == 0	       ? "empty cron expression"
			    : count < F__COUNT ? "too few fields"
					       : "too many fields");

	uint64_t bits[F__COUNT];
	for (int i = 0; i < F__COUNT; i++)
		if (field(&fields[i], start[i], len[i], &bits[i], why, n))
			return -1;
	out->minute = bits[F_MINUTE];
	out->hour = (uint32_t)bits[F_HOUR];
	out->mday = (uint32_t)bits[F_MDAY];
	out->month = (uint16_t)bits[F_MONTH];
	out->wday = (uint8_t)bits[F_WDAY];
	/* crontab(5): a day field is unrestricted when it starts with '*'
	 * ("*\/2" too), and then a day must match both fields. */
	out->mday_any = start[F_MDAY][0] == '*';
	out->wday_any = start[F_WDAY][0] == '*';
	return 0;
}

/* ---- the calendar --------------------------------------------------------- */

#define MINUTE_MS 60000
#define DAY_MINUTES 1440
/* Days searched: 29 February can be eight years away (2096 -> 2104), so
 * a little more than that; an impossible spec costs only its months. */
#define SEARCH_DAYS (8 * 366 + 31)
/* Instants further than this from 1970 (about 285,000 years) are refused,
 * so no arithmetic below can overflow. */
#define LIMIT_MS ((int64_t)1 << 53)

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Howard Hinnant's civil_from_days: day 0 is 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dim[m - 1];
}

/* 0 = Sunday; day 0 (1970-01-01) was a Thursday. */
static int weekday(int64_t day)
{
	return (int)(day + 4 - floor_div(day + 4, 7) * 7);
}

static bool day_matches(const struct bg_cron *c, int mday, int wday)
{
	bool dom = c->mday & (UINT32_C(1) << mday);
	bool dow = c->wday & (1u << wday);
	return c->mday_any || c->wday_any ? dom && dow : dom || dow;
}

/* The first set bit of mask at or above `from`, or -1. */
static int first_from(uint64_t mask, int from)
{
	mask &= ~(uint64_t)0 << from;
	return mask ? __builtin_ctzll(mask) : -1;
}

/* The first minute of a matching day at or after minute `from` of the day
 * (0-1439), or -1. */
static int first_minute(const struct bg_cron *c, int from)
{
	for (int h = first_from(c->hour, from / 60); h >= 0;
	     h = first_from(c->hour, h + 1)) {
		int m = first_from(c->minute, h == from / 60 ? from % 60 : 0);
		if (m >= 0)
			return h * 60 + m;
	}
	return -1;
}

int64_t bg_cron_next(const struct bg_cron *c, int64_t after_ms)
{
	if (after_ms < -LIMIT_MS || after_ms > LIMIT_MS)
		return -1;
	int64_t t = floor_div(after_ms, MINUTE_MS) + 1; /* in minutes */
	int64_t day = floor_div(t, DAY_MINUTES), last = day + SEARCH_DAYS;
	int from = (int)(t - day * DAY_MINUTES); /* minute of that day */
	int64_t y;
	int m, d;
	civil_from_days(day, &y, &m, &d);
	for (; day <= last; from = 0) {
		int dim = days_in_month(y, m), skip = 1, at;
		if (!(c->month & (1u << m)))
			skip = dim - d + 1; /* to the 1st of the next month */
		else if (day_matches(c, d, weekday(day)) &&
			 (at = first_minute(c, from)) >= 0)
			return (day * DAY_MINUTES + at) * MINUTE_MS;
		day += skip;
		if ((d += skip) > dim) {
			d = 1;
			if (++m > 12) {
				m = 1;
				y++;
			}
		}
	}
	return -1;
}
