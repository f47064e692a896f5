/* tests/unit/test_buf.c - common/buf.h: formatting into a growable
 * buffer (bg_buf_printf, the integer writer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void test_printf_appends_into_room_and_grows_when_full(void **st)
{
	struct bg_buf b = { 0 };
	char big[300];

	(void)st;
	assert_int_equal(bg_buf_printf(&b, "%s-%d", "a", 1), 0);
	assert_string_equal(b.p, "a-1");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(bg_buf_printf(&b, "[%s]", big), 0); /* grows */
	assert_int_equal(b.len, 3 + 2 + 299);
	assert_int_equal(b.p[3], '[');
	assert_int_equal(b.p[b.len - 1], ']');
	assert_int_equal(b.p[b.len], '\0');
	bg_buf_reset(&b);
	assert_int_equal(bg_buf_printf(&b, "%05d", 42), 0); /* fits */
	assert_string_equal(b.p, "00042");
	assert_int_equal(b.len, 5);
	bg_buf_free(&b);
}

static void test_i64_str_writes_every_int64(void **st)
{
	static const int64_t v[] = { 0,		7,	  -7,
				     10,	-10,	  1700000000123,
				     INT64_MAX, INT64_MIN };
	char out[BG_I64_STR], want[32];

	(void)st;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		snprintf(want, sizeof want, "%lld", (long long)v[i]);
		assert_int_equal(bg_i64_str(out, v[i]), strlen(want));
		assert_string_equal(out, want);
	}
	struct bg_buf b = { 0 };
	assert_int_equal(bg_buf_put_i64(&b, -123), 0);
	assert_int_equal(bg_buf_put_i64(&b, 45), 0);
	assert_string_equal(b.p, "-12345");
	bg_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_printf_appends_into_room_and_grows_when_full),
		cmocka_unit_test(test_i64_str_writes_every_int64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
