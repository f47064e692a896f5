/* tests/unit/test_hook_sign.c - the webhook signature of
 * supervisor/hook_sign.h against fixed vectors. Supervisor objects are not
 * in the unit-test link and the check is pure, so its source is compiled
 * into this test directly. The expected MACs come from
 *   printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac topsecret
 * (python: hmac.new(b"topsecret", b'1700000000.{"a":1}', "sha256")). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/hook_sign.c"

#define NOW 1700000000
#define SECRET BG_STR_LIT("topsecret")
#define BODY "{\"a\":1}"
/* HMAC-SHA256("topsecret", "1700000000." BODY) */
#define MAC "6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e50f"
/* HMAC-SHA256("topsecret", "1700000000.") */
#define MAC_EMPTY                                                              \
	"1736616ca502dd0795dd33e742aba65214c255d6064bb6035e7b37d18983438e"

static enum bg_hook_sign_verdict check(const char *ts, const char *sig,
				       const char *body, int64_t now)
{
	struct bg_hook_signed req = { ts, sig, bg_str_c(body) };
	return bg_hook_sign_check(SECRET, &req, now, 300);
}

static void test_compute_matches_openssl_dgst(void **s)
{
	(void)s;
	char hex[BG_HOOK_SIGN_HEX + 1];
	assert_int_equal(bg_hook_sign_compute(SECRET, BG_STR_LIT("1700000000"),
					      BG_STR_LIT(BODY), hex),
			 0);
	assert_string_equal(hex, MAC);
	assert_int_equal(bg_hook_sign_compute(SECRET, BG_STR_LIT("1700000000"),
					      BG_STR_LIT(""), hex),
			 0);
	assert_string_equal(hex, MAC_EMPTY);
}

static void test_prefixed_signature_is_accepted(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", "sha256=" MAC, BODY, NOW),
			 BG_HOOK_SIGN_OK);
}

static void test_bare_hex_signature_is_accepted(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", MAC, BODY, NOW), BG_HOOK_SIGN_OK);
}

static void test_uppercase_hex_and_blanks_around_values_are_accepted(void **s)
{
	(void)s;
	char upper[] = "SHA256=" MAC;
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(check(" 1700000000\t", upper, BODY, NOW),
			 BG_HOOK_SIGN_OK);
}

static void test_body_with_nul_bytes_is_signed_whole(void **s)
{
	(void)s;
	static const char body[] = { 'a', '\0', 'b' };
	char hex[BG_HOOK_SIGN_HEX + 1];
	struct bg_str b = { body, sizeof(body) };
	assert_int_equal(bg_hook_sign_compute(SECRET, BG_STR_LIT("1700000000"),
					      b, hex),
			 0);
	struct bg_hook_signed req = { "1700000000", hex, b };
	assert_int_equal(bg_hook_sign_check(SECRET, &req, NOW, 300),
			 BG_HOOK_SIGN_OK);
	req.body.len = 1; /* "a" alone */
	assert_int_equal(bg_hook_sign_check(SECRET, &req, NOW, 300),
			 BG_HOOK_SIGN_MISMATCH);
}

static void test_wrong_secret_is_a_mismatch(void **s)
{
	(void)s;
	struct bg_hook_signed req = { "1700000000", MAC, BG_STR_LIT(BODY) };
	assert_int_equal(bg_hook_sign_check(BG_STR_LIT("topsecreT"), &req, NOW,
					    300),
			 BG_HOOK_SIGN_MISMATCH);
}

static void test_tampered_body_is_a_mismatch(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", MAC, "{\"a\":2}", NOW),
			 BG_HOOK_SIGN_MISMATCH);
	assert_int_equal(check("1700000000", MAC, BODY " ", NOW),
			 BG_HOOK_SIGN_MISMATCH);
}

static void test_changed_timestamp_is_a_mismatch(void **s)
{
	(void)s;
	/* Signed for ...000, sent as ...001: within the window, wrong MAC. */
	assert_int_equal(check("1700000001", MAC, BODY, NOW),
			 BG_HOOK_SIGN_MISMATCH);
}

static void test_one_flipped_digit_is_a_mismatch(void **s)
{
	(void)s;
	char sig[] = MAC;
	sig[63] = sig[63] == 'f' ? 'e' : 'f';
	assert_int_equal(check("1700000000", sig, BODY, NOW),
			 BG_HOOK_SIGN_MISMATCH);
}

static void test_timestamp_on_the_window_edges_is_accepted(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", MAC, BODY, NOW + 300),
			 BG_HOOK_SIGN_OK);
	assert_int_equal(check("1700000000", MAC, BODY, NOW - 300),
			 BG_HOOK_SIGN_OK);
}

static void test_old_timestamp_is_stale(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", MAC, BODY, NOW + 301),
			 BG_HOOK_SIGN_STALE);
}

static void test_future_timestamp_is_stale(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", MAC, BODY, NOW - 301),
			 BG_HOOK_SIGN_STALE);
}

static void test_missing_timestamp_is_refused(void **s)
{
	(void)s;
	assert_int_equal(check(NULL, MAC, BODY, NOW),
			 BG_HOOK_SIGN_NO_TIMESTAMP);
}

static void test_malformed_timestamps_are_refused(void **s)
{
	(void)s;
	static const char *bad[] = { "",
				     " ",
				     "-1700000000",
				     "+1700000000",
				     "1700000000.5",
				     "0x6553f100",
				     "17000 00000",
				     "1e9",
				     "9999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check(bad[i], MAC, BODY, NOW),
				 BG_HOOK_SIGN_BAD_TIMESTAMP);
}

static void test_missing_signature_is_refused(void **s)
{
	(void)s;
	assert_int_equal(check("1700000000", NULL, BODY, NOW),
			 BG_HOOK_SIGN_NO_SIGNATURE);
}

static void test_malformed_signatures_are_refused(void **s)
{
	(void)s;
	static const char *bad[] = {
		"",
		"sha256=",
		"sha1=" MAC,
		"sha256=" MAC "0", /* 65 digits */
		"sha256=6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d3"
		"07f3849e50", /* 63: odd */
		"6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e5"
		"0g",			      /* not hex */
		"sha256=" MAC ",sha256=" MAC, /* a list */
		"sha256 =" MAC,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check("1700000000", bad[i], BODY, NOW),
				 BG_HOOK_SIGN_BAD_SIGNATURE);
}

static void test_stale_is_reported_before_the_signature(void **s)
{
	(void)s;
	/* An old request is refused for its age whatever it carries. */
	assert_int_equal(check("1600000000", "junk", BODY, NOW),
			 BG_HOOK_SIGN_STALE);
}

static void test_empty_secret_verifies_nothing(void **s)
{
	(void)s;
	char hex[BG_HOOK_SIGN_HEX + 1];
	struct bg_hook_signed req = { "1700000000", MAC, BG_STR_LIT(BODY) };
	assert_int_equal(bg_hook_sign_check(BG_STR_LIT(""), &req, NOW, 300),
			 BG_HOOK_SIGN_NO_SECRET);
	assert_int_equal(bg_hook_sign_compute(BG_STR_LIT(""),
					      BG_STR_LIT("1700000000"),
					      BG_STR_LIT(BODY), hex),
			 -EINVAL);
}

static void test_reasons_never_hold_the_mac(void **s)
{
	(void)s;
	for (int v = BG_HOOK_SIGN_OK; v <= BG_HOOK_SIGN_FAILED; v++) {
		const char *r = bg_hook_sign_reason(v);
		assert_non_null(r);
		assert_null(strstr(r, "6a939b"));
		assert_string_not_equal(r, "unknown verdict");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compute_matches_openssl_dgst),
		cmocka_unit_test(test_prefixed_signature_is_accepted),
		cmocka_unit_test(test_bare_hex_signature_is_accepted),
		cmocka_unit_test(
			test_uppercase_hex_and_blanks_around_values_are_accepted),
		cmocka_unit_test(test_body_with_nul_bytes_is_signed_whole),
		cmocka_unit_test(test_wrong_secret_is_a_mismatch),
		cmocka_unit_test(test_tampered_body_is_a_mismatch),
		cmocka_unit_test(test_changed_timestamp_is_a_mismatch),
		cmocka_unit_test(test_one_flipped_digit_is_a_mismatch),
		cmocka_unit_test(
			test_timestamp_on_the_window_edges_is_accepted),
		cmocka_unit_test(test_old_timestamp_is_stale),
		cmocka_unit_test(test_future_timestamp_is_stale),
		cmocka_unit_test(test_missing_timestamp_is_refused),
		cmocka_unit_test(test_malformed_timestamps_are_refused),
		cmocka_unit_test(test_missing_signature_is_refused),
		cmocka_unit_test(test_malformed_signatures_are_refused),
		cmocka_unit_test(test_stale_is_reported_before_the_signature),
		cmocka_unit_test(test_empty_secret_verifies_nothing),
		cmocka_unit_test(test_reasons_never_hold_the_mac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
