/* tests/unit/test_promtext.c - the Prometheus text format writer of
 * supervisor/promtext.h: escaping, numbers, histograms. Supervisor objects
 * are not in the unit-test link, and the writer is pure, so its source is
 * compiled into this test directly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/promtext.c"

static struct bg_buf out;

static int reset(void **state)
{
	(void)state;
	bg_buf_free(&out);
	return 0;
}

static void test_label_value_escapes_backslash_quote_and_newline(void **s)
{
	(void)s;
	struct bg_prom_label l = { "agent_type", "a\\b\"c\nd" };
	assert_int_equal(bg_prom_sample(&out, "m", &l, 1, 1), 0);
	assert_string_equal(out.p, "m{agent_type=\"a\\\\b\\\"c\\nd\"} 1\n");
}

static void test_invalid_utf8_in_a_label_becomes_the_replacement_char(void **s)
{
	(void)s;
	/* a lone continuation byte, an overlong '/', valid "é" */
	assert_int_equal(bg_prom_escape_label(&out, "x\x80y\xc0\xaf\xc3\xa9"),
			 0);
	assert_string_equal(out.p,
			    "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
}

static void test_family_writes_escaped_help_then_type(void **s)
{
	(void)s;
	assert_int_equal(bg_prom_family(&out, "bygate_x_total", "counter",
					"a \"b\" c\\d\ne"),
			 0);
	assert_string_equal(out.p, "# HELP bygate_x_total a \"b\" c\\\\d\\ne\n"
				   "# TYPE bygate_x_total counter\n");
}

static void test_sample_without_labels_has_no_braces(void **s)
{
	(void)s;
	assert_int_equal(bg_prom_sample(&out, "bygate_up", NULL, 0, 1), 0);
	assert_string_equal(out.p, "bygate_up 1\n");
}

static void test_values_print_integers_plainly_and_specials_by_name(void **s)
{
	(void)s;
	bg_prom_sample(&out, "a", NULL, 0, 12345678901.0);
	bg_prom_sample(&out, "b", NULL, 0, 0.25);
	bg_prom_sample(&out, "c", NULL, 0, NAN);
	bg_prom_sample(&out, "d", NULL, 0, INFINITY);
	bg_prom_sample(&out, "e", NULL, 0, -INFINITY);
	assert_string_equal(out.p, "a 12345678901\nb 0.25\nc NaN\nd +Inf\n"
				   "e -Inf\n");
}

static void test_histogram_buckets_are_cumulative_up_to_inf(void **s)
{
	(void)s;
	struct bg_prom_hist h = { 0 };
	bg_prom_hist_observe(&h, 0.001);
	bg_prom_hist_observe(&h, 0.3);
	bg_prom_hist_observe(&h, 1000);
	struct bg_prom_label l = { "agent_type", "echo" };
	assert_int_equal(bg_prom_hist_write(&out, "t", &l, 1, &h), 0);
	assert_non_null(strstr(out.p, "t_bucket{agent_type=\"echo\","
				      "le=\"0.005\"} 1\n"));
	assert_non_null(strstr(out.p, "t_bucket{agent_type=\"echo\","
				      "le=\"0.25\"} 1\n"));
	assert_non_null(strstr(out.p, "t_bucket{agent_type=\"echo\","
				      "le=\"0.5\"} 2\n"));
	assert_non_null(strstr(out.p, "t_bucket{agent_type=\"echo\","
				      "le=\"300\"} 2\n"));
	assert_non_null(strstr(out.p, "t_bucket{agent_type=\"echo\","
				      "le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(out.p, "t_sum{agent_type=\"echo\"} 1000.301"));
	assert_non_null(strstr(out.p, "t_count{agent_type=\"echo\"} 3\n"));
}

static void test_an_observation_on_a_bound_counts_in_that_bucket(void **s)
{
	(void)s;
	struct bg_prom_hist h = { 0 };
	bg_prom_hist_observe(&h, 1.0);
	assert_int_equal(h.bucket[7], 1); /* le="1" */
	assert_int_equal(h.bucket[6], 0);
}

static void test_negative_and_nan_observations_are_not_harmful(void **s)
{
	(void)s;
	struct bg_prom_hist h = { 0 };
	bg_prom_hist_observe(&h, -3);
	bg_prom_hist_observe(&h, NAN);
	assert_int_equal(h.count, 1);
	assert_int_equal(h.bucket[0], 1);
	assert_true(h.sum == 0);
}

static void test_histogram_has_one_line_per_bucket_plus_sum_and_count(void **s)
{
	(void)s;
	struct bg_prom_hist h = { 0 };
	assert_int_equal(bg_prom_hist_write(&out, "q", NULL, 0, &h), 0);
	int lines = 0;
	for (const char *p = out.p; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, BG_PROM_NBUCKETS + 1 + 2);
	assert_non_null(strstr(out.p, "q_bucket{le=\"+Inf\"} 0\nq_sum 0\n"
				      "q_count 0\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, reset)
		T(test_label_value_escapes_backslash_quote_and_newline),
		T(test_invalid_utf8_in_a_label_becomes_the_replacement_char),
		T(test_family_writes_escaped_help_then_type),
		T(test_sample_without_labels_has_no_braces),
		T(test_values_print_integers_plainly_and_specials_by_name),
		T(test_histogram_buckets_are_cumulative_up_to_inf),
		T(test_an_observation_on_a_bound_counts_in_that_bucket),
		T(test_negative_and_nan_observations_are_not_harmful),
		T(test_histogram_has_one_line_per_bucket_plus_sum_and_count),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
