/* tests/unit/test_cron.c - common/cron.c: what crontab(5) accepts and
 * refuses (each refusal naming its field), and the next fire times of
 * known schedules across month ends, leap days, year ends and the
 * day-of-month / day-of-week rule, checked against a minute-by-minute
 * search. Times are written "YYYY-MM-DD HH:MM" in UTC. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/cron.h"

/* "YYYY-MM-DD HH:MM[:SS]" (UTC) in Unix ms, through the C library. */
static int64_t at(const char *s)
{
	struct tm tm = { 0 };
	int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon,
		       &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
	assert_true(n >= 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000;
}

/* Unix ms as "YYYY-MM-DD HH:MM" ("-1" for -1); seconds shown if any. */
static const char *show(int64_t ms)
{
	static char buf[4][40];
	static int k;
	char *b = buf[k++ % 4];
	if (ms == -1)
		return "-1";
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(b, 40, ms % 60000 ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M",
		 &tm);
	return b;
}

static struct bg_cron parse(const char *expr)
{
	struct bg_cron c;
	char why[256] = "";
	if (bg_cron_parse(expr, &c, why, sizeof why) != 0)
		fail_msg("\"%s\" refused: %s", expr, why);
	return c;
}

/* The next fire time of expr after the instant `after`, as text. */
static const char *next(const char *expr, const char *after)
{
	struct bg_cron c = parse(expr);
	return show(bg_cron_next(&c, at(after)));
}

/* A next fire time: expr's after the instant `after` is `want`. */
struct next_case {
	const char *expr, *after, *want;
};

static void expect_next(const struct next_case *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *got = next(v[i].expr, v[i].after);
		if (strcmp(got, v[i].want))
			fail_msg("\"%s\" after %s: %s, want %s", v[i].expr,
				 v[i].after, got, v[i].want);
	}
}

/* check(cases, n) over the cases given, of type `type`. */
#define EACH(check, type, ...)                                                 \
	do {                                                                   \
		static const type cases_[] = { __VA_ARGS__ };                  \
		check(cases_, sizeof cases_ / sizeof *cases_);                 \
	} while (0)
#define EXPECT_NEXT(...) EACH(expect_next, struct next_case, __VA_ARGS__)

/* The refusal of expr (which must be refused). */
static const char *refusal(const char *expr)
{
	static char why[256];
	struct bg_cron c;
	strcpy(why, "(accepted)");
	assert_int_equal(bg_cron_parse(expr, &c, why, sizeof why), -1);
	return why;
}

/* expr is refused, its reason naming `field` and saying `detail`. */
struct refusal_case {
	const char *expr, *field, *detail;
};

static void expect_refused(const struct refusal_case *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *why = refusal(v[i].expr);
		if (!strstr(why, v[i].field) || !strstr(why, v[i].detail))
			fail_msg(
				"\"%s\": \"%s\" does not say \"%s\" and \"%s\"",
				v[i].expr, why, v[i].field, v[i].detail);
	}
}
#define EXPECT_REFUSED(...)                                                    \
	EACH(expect_refused, struct refusal_case, __VA_ARGS__)

/* ---- what is accepted --------------------------------------------------- */

static uint64_t bits(int n, ...)
{
	uint64_t b = 0;
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		b |= (uint64_t)1 << va_arg(ap, int);
	va_end(ap);
	return b;
}

static void test_star_allows_every_value_of_each_field(void **state)
{
	struct bg_cron c = parse("* * * * *");
	assert_true(c.minute == (UINT64_C(1) << 60) - 1);
	assert_true(c.hour == (UINT32_C(1) << 24) - 1);
	assert_true(c.mday == ((UINT32_C(1) << 31) - 1) << 1);
	assert_true(c.month == ((1u << 12) - 1) << 1);
	assert_true(c.wday == (1u << 7) - 1);
	assert_true(c.mday_any && c.wday_any);
}

static void test_steps_ranges_and_lists(void **state)
{
	assert_true(parse("*/15 * * * *").minute == bits(4, 0, 15, 30, 45));
	assert_true(parse("1-10/3 * * * *").minute == bits(4, 1, 4, 7, 10));
	assert_true(parse("5/20 * * * *").minute == bits(3, 5, 25, 45));
	assert_true(parse("1,5,10-12 * * * *").minute ==
		    bits(5, 1, 5, 10, 11, 12));
	assert_true(parse("0 */6 * * *").hour == bits(4, 0, 6, 12, 18));
	assert_true(parse("0 0 1-31/10 * *").mday == bits(4, 1, 11, 21, 31));
	assert_true(parse("0 0 * */4 *").month == bits(3, 1, 5, 9));
	assert_true(parse("7 * * * *").minute == bits(1, 7));
}

static void test_month_and_day_names_in_any_case(void **state)
{
	assert_true(parse("0 0 * JAN-mar *").month == bits(3, 1, 2, 3));
	assert_true(parse("0 0 * jul,Dec *").month == bits(2, 7, 12));
	assert_true(parse("0 0 * feb/5 *").month == bits(3, 2, 7, 12));
	assert_true(parse("0 0 * * Mon-FRI").wday == bits(5, 1, 2, 3, 4, 5));
	assert_true(parse("0 0 * * sun,sat").wday == bits(2, 0, 6));
}

static void test_seven_is_sunday(void **state)
{
	assert_true(parse("0 0 * * 7").wday == bits(1, 0));
	assert_true(parse("0 0 * * 5-7").wday == bits(3, 5, 6, 0));
	assert_true(parse("0 0 * * 0,7").wday == bits(1, 0));
	assert_true(parse("0 0 * * */2").wday == bits(4, 0, 2, 4, 6));
	assert_true(parse("0 0 * * 7/6").wday == bits(1, 0));
	assert_true(parse("0 0 * * 3/2").wday == bits(3, 3, 5, 0));
}

static void test_a_day_field_starting_with_star_is_unrestricted(void **state)
{
	struct bg_cron c = parse("0 0 */2 * 1");
	assert_true(c.mday_any && !c.wday_any);
	c = parse("0 0 1 * *");
	assert_true(!c.mday_any && c.wday_any);
	c = parse("0 0 1 * mon");
	assert_true(!c.mday_any && !c.wday_any);
}

static void test_blanks_around_and_between_fields(void **state)
{
	struct bg_cron a = parse("  0\t12  * *   1-5 "),
		       b = parse("0 12 * * 1-5");
	assert_memory_equal(&a, &b, sizeof a);
}

static void test_macros_are_their_five_fields(void **state)
{
	static const char *const pairs[][2] = {
		{ "@hourly", "0 * * * *" },   { "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" }, { "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" },  { "@yearly", "0 0 1 1 *" },
		{ "@annually", "0 0 1 1 *" }, { " @Daily ", "0 0 * * *" },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		struct bg_cron a = parse(pairs[i][0]), b = parse(pairs[i][1]);
		assert_memory_equal(&a, &b, sizeof a);
	}
}

/* ---- what is refused ---------------------------------------------------- */

static void test_out_of_range_values_name_their_field(void **state)
{
	EXPECT_REFUSED(
		{ "60 * * * *", "minute field \"60\"", "0-59" },
		{ "* 24 * * *", "hour field \"24\"", "0-23" },
		{ "* * 0 * *", "day-of-month field \"0\"", "1-31" },
		{ "* * 32 * *", "day-of-month", "1-31" },
		{ "* * * 13 *", "month field \"13\"", "1-12" },
		{ "* * * 0 *", "month", "1-12" },
		{ "* * * * 8", "day-of-week field \"8\"", "0-7" },
		{ "1,2,99 * * * *", "minute field \"1,2,99\"", "\"99\"" },
		{ "0 0 * * 99999999999", "day-of-week", "not a number" });
}

static void test_malformed_elements_name_their_field(void **state)
{
	EXPECT_REFUSED({ "* * * foo *", "month", "\"foo\"" },
		       { "mon * * * *", "minute", "not a number" },
		       { "* * * * january", "day-of-week", "not a number" },
		       { "* * * * mon-", "day-of-week", "\"mon-\"" },
		       { "* -5 * * *", "hour", "\"-5\"" },
		       { "1-2-3 * * * *", "minute", "\"1-2-3\"" },
		       { "** * * * *", "minute", "\"**\"" },
		       { "*-5 * * * *", "minute", "\"*-5\"" },
		       { "1,,2 * * * *", "minute", "empty list item" },
		       { "1, * * * *", "minute", "empty list item" },
		       { "* * * * 5-2", "day-of-week", "backwards" },
		       { "+1 * * * *", "minute", "not a number" });
}

static void test_bad_steps_name_their_field(void **state)
{
	EXPECT_REFUSED({ "*/0 * * * *", "minute", "step must be 1 to 60" },
		       { "* */25 * * *", "hour", "step must be 1 to 24" },
		       { "* * 1-5/x * *", "day-of-month", "step" },
		       { "* * * */ *", "month", "step" },
		       { "/5 * * * *", "minute", "\"/5\"" },
		       { "* * * * 1/2/3", "day-of-week", "step" });
}

static void test_wrong_field_counts(void **state)
{
	EXPECT_REFUSED({ "", "empty cron expression", "five fields" },
		       { "   ", "empty cron expression", "five fields" },
		       { "* * * *", "too few fields", "day-of-week" },
		       { "* * * * * *", "too many fields", "five fields" },
		       { "0 0 * * * /bin/true", "too many fields", "five" });
}

static void test_reboot_and_unknown_macros_are_refused(void **state)
{
	EXPECT_REFUSED({ "@reboot", "@reboot", "not supported" },
		       { "@sometimes", "unknown macro \"@sometimes\"",
			 "@hourly" },
		       { "@daily 5", "\"@daily\"", "stands alone" },
		       { "@", "unknown macro", "@daily" });
}

static void test_a_refusal_without_room_for_why(void **state)
{
	struct bg_cron c;
	char small[8];
	assert_int_equal(bg_cron_parse("61 * * * *", &c, NULL, 0), -1);
	assert_int_equal(bg_cron_parse(NULL, &c, NULL, 0), -1);
	assert_int_equal(bg_cron_parse("61 * * * *", &c, small, sizeof small),
			 -1);
	assert_int_equal(strlen(small), sizeof small - 1);
}

/* ---- next fire times ---------------------------------------------------- */

static void test_next_is_strictly_after_and_on_a_whole_minute(void **state)
{
	EXPECT_NEXT({ "* * * * *", "2024-03-10 12:00:30", "2024-03-10 12:01" },
		    { "* * * * *", "2024-03-10 12:00", "2024-03-10 12:01" },
		    { "0 12 * * *", "2024-03-10 12:00", "2024-03-11 12:00" },
		    { "0 12 * * *", "2024-03-10 11:59:59",
		      "2024-03-10 12:00" });
	struct bg_cron c = parse("* * * * *");
	assert_int_equal(bg_cron_next(&c, at("2024-03-10 12:00") - 1),
			 at("2024-03-10 12:00"));
}

static void test_steps_and_lists(void **state)
{
	EXPECT_NEXT(
		{ "*/15 * * * *", "2024-03-10 12:14", "2024-03-10 12:15" },
		{ "*/15 * * * *", "2024-03-10 12:45", "2024-03-10 13:00" },
		{ "0 */6 * * *", "2024-01-01 19:00", "2024-01-02 00:00" },
		{ "5 8,12,18 * * *", "2024-01-01 12:05", "2024-01-01 18:05" },
		{ "5 8,12,18 * * *", "2024-01-01 18:05", "2024-01-02 08:05" },
		{ "10-20/5 3 * * *", "2024-01-01 03:16", "2024-01-01 03:20" },
		{ "10-20/5 3 * * *", "2024-01-01 03:20", "2024-01-02 03:10" });
}

static void test_month_ends(void **state)
{
	EXPECT_NEXT({ "0 0 31 * *", "2024-04-01 00:00", "2024-05-31 00:00" },
		    { "0 0 31 * *", "2024-07-31 00:00", "2024-08-31 00:00" },
		    { "0 0 30 * *", "2024-02-01 00:00", "2024-03-30 00:00" },
		    { "30 23 28-31 * *", "2023-02-28 23:30",
		      "2023-03-28 23:30" },
		    { "0 0 1 * *", "2024-01-31 23:59", "2024-02-01 00:00" });
}

static void test_leap_days(void **state)
{
	EXPECT_NEXT({ "0 0 29 2 *", "2023-03-01 00:00", "2024-02-29 00:00" },
		    { "0 0 29 feb *", "2024-02-29 00:00", "2028-02-29 00:00" },
		    /* 2100 is not a leap year, 2000 was */
		    { "0 0 29 2 *", "2096-03-01 00:00", "2104-02-29 00:00" },
		    { "0 0 29 2 *", "1997-01-01 00:00", "2000-02-29 00:00" },
		    { "0 12 * 2 *", "2023-02-28 12:00", "2024-02-01 12:00" },
		    { "0 12 * 2 *", "2024-02-28 12:00", "2024-02-29 12:00" });
}

static void test_year_roll_over(void **state)
{
	EXPECT_NEXT({ "0 0 1 1 *", "2024-12-31 23:59", "2025-01-01 00:00" },
		    { "59 23 31 12 *", "2024-12-31 23:59", "2025-12-31 23:59" },
		    { "* * * * *", "1999-12-31 23:59:59", "2000-01-01 00:00" },
		    { "0 9 * jan mon", "2024-12-01 00:00",
		      "2025-01-06 09:00" });
}

static void test_day_of_month_or_day_of_week_when_both_restricted(void **s)
{
	EXPECT_NEXT(
		/* the 15th or any Monday; 2024-09-03 is a Tuesday */
		{ "0 0 15 * 1", "2024-09-03 00:00", "2024-09-09 00:00" },
		{ "0 0 15 * 1", "2024-09-10 00:00",
		  "2024-09-15 00:00" }, /* a Sunday */
		{ "0 0 13 * fri", "2024-09-07 00:00", "2024-09-13 00:00" });
}

static void
test_day_of_month_and_day_of_week_when_one_starts_with_star(void **state)
{
	EXPECT_NEXT(
		/* odd days that are Mondays: 2024-09-02 is an even Monday */
		{ "0 0 */2 * 1", "2024-09-01 00:00", "2024-09-09 00:00" },
		/* any day of the month, Mondays only */
		{ "0 0 * * 1", "2024-09-03 00:00", "2024-09-09 00:00" },
		/* the 15th, any day of the week */
		{ "0 0 15 * *", "2024-09-03 00:00", "2024-09-15 00:00" },
		{ "0 0 15 * */1", "2024-09-03 00:00", "2024-09-15 00:00" });
}

static void test_week_days_and_sunday_as_seven(void **state)
{
	EXPECT_NEXT(
		/* Friday 2024-09-06 after work hours -> Monday */
		{ "30 9 * * mon-fri", "2024-09-06 10:00", "2024-09-09 09:30" },
		{ "0 0 * * 7", "2024-09-01 00:00", "2024-09-08 00:00" },
		{ "0 0 * * 0", "2024-09-01 00:00", "2024-09-08 00:00" },
		{ "0 0 * * sat", "1970-01-01 00:00", "1970-01-03 00:00" });
}

static void test_names_and_macros(void **state)
{
	EXPECT_NEXT({ "0 0 1 jan,jul *", "2024-02-01 00:00",
		      "2024-07-01 00:00" },
		    { "@hourly", "2024-02-01 10:00", "2024-02-01 11:00" },
		    { "@daily", "2024-02-01 10:00", "2024-02-02 00:00" },
		    { "@weekly", "2024-02-01 10:00", "2024-02-04 00:00" },
		    { "@monthly", "2024-02-01 10:00", "2024-03-01 00:00" },
		    { "@yearly", "2024-02-01 10:00", "2025-01-01 00:00" });
}

static void test_instants_before_1970(void **state)
{
	EXPECT_NEXT({ "0 0 1 1 *", "1969-06-01 00:00", "1970-01-01 00:00" },
		    { "*/10 * * * *", "1969-12-31 23:55:30",
		      "1970-01-01 00:00" },
		    { "0 0 29 2 *", "1960-03-01 00:00", "1964-02-29 00:00" });
}

static void test_impossible_specs_have_no_next_time(void **state)
{
	static const char *const never[] = { "0 0 31 2 *", "0 0 30 2 *",
					     "0 0 31 4,6,9,11 *",
					     "0 0 30,31 feb *" };
	for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
		struct bg_cron c = parse(never[i]);
		assert_int_equal(bg_cron_next(&c, at("2024-01-01 00:00")), -1);
	}
	EXPECT_NEXT(
		/* but "31 feb or a Monday" is fine */
		{ "0 0 31 2 mon", "2024-01-01 00:00", "2024-02-05 00:00" });
}

static void test_impossible_specs_are_answered_quickly(void **state)
{
	struct bg_cron c = parse("0 0 31 2 *");
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(bg_cron_next(&c, at("2024-01-01 00:00") +
							  (int64_t)i * 60000),
				 -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* about 400 steps each (months, and the days of 8 Februaries); a
	 * minute-by-minute search would take hours */
	assert_true(b.tv_sec - a.tv_sec < 10);
}

static void test_instants_out_of_range_have_no_next_time(void **state)
{
	struct bg_cron c = parse("* * * * *");
	assert_int_equal(bg_cron_next(&c, INT64_MAX), -1);
	assert_int_equal(bg_cron_next(&c, INT64_MIN), -1);
}

/* ---- against a minute-by-minute search ---------------------------------- */

static bool matches(const struct bg_cron *c, int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	bool dom = c->mday >> tm.tm_mday & 1, dow = c->wday >> tm.tm_wday & 1;
	bool day = c->mday_any || c->wday_any ? dom && dow : dom || dow;
	return day && (c->minute >> tm.tm_min & 1) &&
	       (c->hour >> tm.tm_hour & 1) && (c->month >> (tm.tm_mon + 1) & 1);
}

static void test_next_agrees_with_a_minute_by_minute_search(void **state)
{
	static const char *const specs[] = {
		"*/7 */5 * * *",     "0 0 13 * fri",	 "15 4 */3 * *",
		"0 0 * * 6,0",	     "59 23 28-31 * *",	 "0 12 1,15 * wed",
		"30 2 29 2 *",	     "*/20 1-3 * * 1-5", "0 0 1 */2 *",
		"45 6 * mar-may sun"
	};
	static const char *const from[] = { "2023-12-30 22:13:17",
					    "2024-02-27 23:59",
					    "2025-06-30 12:00" };
	for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
		struct bg_cron c = parse(specs[i]);
		for (size_t k = 0; k < sizeof from / sizeof *from; k++) {
			int64_t t = at(from[k]), want = -1;
			for (int64_t m = t / 60000 + 1;
			     m < t / 60000 + 4 * 366 * 1440; m++)
				if (matches(&c, m * 60000)) {
					want = m * 60000;
					break;
				}
			int64_t got = bg_cron_next(&c, t);
			if (got != want)
				fail_msg("\"%s\" after %s: %s, want %s",
					 specs[i], from[k], show(got),
					 show(want));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_star_allows_every_value_of_each_field),
		cmocka_unit_test(test_steps_ranges_and_lists),
		cmocka_unit_test(test_month_and_day_names_in_any_case),
		cmocka_unit_test(test_seven_is_sunday),
		cmocka_unit_test(
			test_a_day_field_starting_with_star_is_unrestricted),
		cmocka_unit_test(test_blanks_around_and_between_fields),
		cmocka_unit_test(test_macros_are_their_five_fields),
		cmocka_unit_test(test_out_of_range_values_name_their_field),
		cmocka_unit_test(test_malformed_elements_name_their_field),
		cmocka_unit_test(test_bad_steps_name_their_field),
		cmocka_unit_test(test_wrong_field_counts),
		cmocka_unit_test(test_reboot_and_unknown_macros_are_refused),
		cmocka_unit_test(test_a_refusal_without_room_for_why),
		cmocka_unit_test(
			test_next_is_strictly_after_and_on_a_whole_minute),
		cmocka_unit_test(test_steps_and_lists),
		cmocka_unit_test(test_month_ends),
		cmocka_unit_test(test_leap_days),
		cmocka_unit_test(test_year_roll_over),
		cmocka_unit_test(
			test_day_of_month_or_day_of_week_when_both_restricted),
		cmocka_unit_test(
			test_day_of_month_and_day_of_week_when_one_starts_with_star),
		cmocka_unit_test(test_week_days_and_sunday_as_seven),
		cmocka_unit_test(test_names_and_macros),
		cmocka_unit_test(test_instants_before_1970),
		cmocka_unit_test(test_impossible_specs_have_no_next_time),
		cmocka_unit_test(test_impossible_specs_are_answered_quickly),
		cmocka_unit_test(test_instants_out_of_range_have_no_next_time),
		cmocka_unit_test(
			test_next_agrees_with_a_minute_by_minute_search),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
