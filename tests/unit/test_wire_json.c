/* tests/unit/test_wire_json.c - the hot-path JSON primitives (wire/json.h):
 * escaping, unescaping, strict validation, member lookup and splicing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wire/json.h"

#define S(lit) BG_STR_LIT(lit)

static char *escaped(const char *s, size_t n)
{
	static struct bg_buf b;

	bg_buf_reset(&b);
	assert_int_equal(bg_json_escape(&b, s, n), 0);
	return b.p;
}

static char *unescaped(const char *lit, int expect_rc)
{
	static struct bg_buf b;

	bg_buf_reset(&b);
	assert_int_equal(bg_json_unescape(&b, bg_str_c(lit)), expect_rc);
	return b.p ? b.p : "";
}

static bool skips_to(const char *s, size_t expect_end)
{
	size_t end = 0;

	return bg_json_skip(s, strlen(s), &end) == 0 && end == expect_end;
}

/* ---- escape ---- */

static void test_escape_quotes_plain_text(void **st)
{
	(void)st;
	assert_string_equal(escaped("hello", 5), "\"hello\"");
	assert_string_equal(escaped("", 0), "\"\"");
}

static void test_escape_escapes_quote_backslash_and_controls(void **st)
{
	(void)st;
	assert_string_equal(escaped("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
	assert_string_equal(escaped("\n\t\r\b\f", 5), "\"\\n\\t\\r\\b\\f\"");
	assert_string_equal(escaped("\x01\x1f", 2), "\"\\u0001\\u001f\"");
	assert_string_equal(escaped("a\0b", 3), "\"a\\u0000b\"");
	assert_string_equal(escaped("/\x7f", 2), "\"/\x7f\"");
}

static void test_escape_copies_valid_utf8_raw(void **st)
{
	(void)st;
	assert_string_equal(escaped("caf\xc3\xa9", 5), "\"caf\xc3\xa9\"");
	assert_string_equal(escaped("\xe4\xbd\xa0\xe5\xa5\xbd", 6),
			    "\"\xe4\xbd\xa0\xe5\xa5\xbd\"");
	assert_string_equal(escaped("\xf0\x9f\x98\x80", 4),
			    "\"\xf0\x9f\x98\x80\"");
}

static void test_escape_replaces_invalid_utf8_with_fffd(void **st)
{
	(void)st;
	assert_string_equal(escaped("a\xff"
				    "b",
				    3),
			    "\"a\\ufffdb\"");
	/* truncated 3-byte sequence: one maximal subpart, one U+FFFD */
	assert_string_equal(escaped("\xe2\x82", 2), "\"\\ufffd\"");
	assert_string_equal(escaped("\xe2\x82"
				    "x",
				    3),
			    "\"\\ufffdx\"");
	/* overlong and surrogate encodings: one U+FFFD per byte */
	assert_string_equal(escaped("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
	assert_string_equal(escaped("\xed\xa0\x80", 3),
			    "\"\\ufffd\\ufffd\\ufffd\"");
	assert_string_equal(escaped("\xf4\x90\x80\x80", 4),
			    "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	assert_string_equal(escaped("\x80", 1), "\"\\ufffd\"");
}

static void test_utf8_valid_accepts_text_and_refuses_ill_formed(void **st)
{
	(void)st;
	static const char nul[] = { 'a', '\0', 'b' };
	assert_true(bg_json_utf8_valid("", 0));
	assert_true(bg_json_utf8_valid("h\xc3\xa9llo \xf0\x9f\x99\x82", 11));
	assert_true(bg_json_utf8_valid(nul, sizeof(nul)));
	assert_false(bg_json_utf8_valid("\xff", 1));
	assert_false(bg_json_utf8_valid("\xc3", 1));		 /* cut short */
	assert_false(bg_json_utf8_valid("\xc0\xaf", 2));	 /* overlong */
	assert_false(bg_json_utf8_valid("\xed\xa0\x80", 3));	 /* surrogate */
	assert_false(bg_json_utf8_valid("\xf4\x90\x80\x80", 4)); /* > 10FFFF */
}

static void test_escape_appends_to_existing_buffer(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	bg_buf_puts(&b, "x=");
	assert_int_equal(bg_json_escape(&b, "y", 1), 0);
	assert_string_equal(b.p, "x=\"y\"");
	bg_buf_free(&b);
}

static void test_escape_output_is_valid_json_for_any_bytes(void **st)
{
	unsigned char in[256];
	struct bg_buf b = { 0 };

	(void)st;
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	assert_int_equal(bg_json_escape(&b, (char *)in, sizeof in), 0);
	assert_true(bg_json_valid(b.p, b.len));
	bg_buf_free(&b);
}

/* ---- unescape ---- */

static void test_unescape_decodes_simple_escapes(void **st)
{
	(void)st;
	assert_string_equal(unescaped("\"a\\\"b\\\\c\\/d\"", 0), "a\"b\\c/d");
	assert_string_equal(unescaped("\"\\n\\t\\r\\b\\f\"", 0), "\n\t\r\b\f");
	assert_string_equal(unescaped("\"\"", 0), "");
}

static void test_unescape_decodes_u_escapes_to_utf8(void **st)
{
	(void)st;
	assert_string_equal(unescaped("\"caf\\u00e9\"", 0), "caf\xc3\xa9");
	assert_string_equal(unescaped("\"\\u4F60\"", 0), "\xe4\xbd\xa0");
	assert_string_equal(unescaped("\"\\ud83d\\ude00\"", 0),
			    "\xf0\x9f\x98\x80");
}

static void test_unescape_keeps_nul_as_a_counted_byte(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	assert_int_equal(bg_json_unescape(&b, S("\"a\\u0000b\"")), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.p, "a\0b", 3);
	bg_buf_free(&b);
}

static void test_unescape_rejects_lone_surrogates(void **st)
{
	(void)st;
	unescaped("\"\\ud800\"", -EINVAL);
	unescaped("\"\\udc00\"", -EINVAL);
	unescaped("\"\\ud800x\"", -EINVAL);
	unescaped("\"\\ud800\\u0041\"", -EINVAL);
	unescaped("\"\\ud800\\n\"", -EINVAL);
}

static void test_unescape_rejects_malformed_literals(void **st)
{
	static const char *bad[] = {
		"",	    "\"",	"abc",	     "\"abc",
		"\"a\"b",   "\"\\x\"",	"\"\\u12\"", "\"\\u12g4\"",
		"\"a\nb\"", "\"\xff\"", "\"\xc3\"",  "\"\\\"",
	};
	(void)st;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		unescaped(bad[i], -EINVAL);
}

static void test_unescape_leaves_buffer_unchanged_on_error(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	bg_buf_puts(&b, "keep");
	assert_int_equal(bg_json_unescape(&b, S("\"abc\\q\"")), -EINVAL);
	assert_string_equal(b.p, "keep");
	assert_int_equal(b.len, 4);
	bg_buf_free(&b);
}

static void test_escape_then_unescape_round_trips(void **st)
{
	struct bg_buf e = { 0 }, u = { 0 };
	char in[200];
	size_t n = 0;

	(void)st;
	for (int c = 1; c < 128; c++)
		in[n++] = (char)c;
	memcpy(in + n, "\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x98\x80", 9);
	n += 9;
	assert_int_equal(bg_json_escape(&e, in, n), 0);
	assert_int_equal(bg_json_unescape(&u, (struct bg_str){ e.p, e.len }),
			 0);
	assert_int_equal(u.len, n);
	assert_memory_equal(u.p, in, n);
	bg_buf_free(&e);
	bg_buf_free(&u);
}

/* ---- skip / valid ---- */

static void test_skip_stops_right_after_the_value(void **st)
{
	(void)st;
	assert_true(skips_to("  {\"a\": [1, 2]} tail", 15));
	assert_true(skips_to("\"x\",", 3));
	assert_true(skips_to("true false", 4));
	assert_true(skips_to("-0.5e+10]", 8));
	assert_true(skips_to("null", 4));
	assert_true(skips_to("[]", 2));
}

static void test_valid_accepts_rfc8259_values(void **st)
{
	static const char *good[] = {
		"0",
		"-0",
		"12",
		"-1.5",
		"1e5",
		"1E-5",
		"2.5e+3",
		"true",
		"false",
		"null",
		"\"\"",
		"\" \\u00e9 \"",
		"[]",
		"{}",
		" [ 1 , \"a\" , {} , [] , null ] ",
		"{\"a\":{\"b\":[true]}}",
		"\"\xf0\x9f\x98\x80\"",
		"\"\\ud83d\\ude00\"",
		"\t\r\n 1 \n",
	};
	(void)st;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(bg_json_valid(good[i], strlen(good[i])));
}

static void test_valid_rejects_malformed_values(void **st)
{
	static const char *bad[] = {
		"",
		" ",
		"01",
		"-",
		"1.",
		".5",
		"1e",
		"+1",
		"0x10",
		"NaN",
		"Infinity",
		"tru",
		"nul",
		"True",
		"[1,]",
		"[,1]",
		"{,}",
		"{\"a\":1,}",
		"{\"a\"}",
		"{\"a\" 1}",
		"{a:1}",
		"{'a':1}",
		"[1 2]",
		"\"abc",
		"\"\\ud800\"",
		"\"a\x01\"",
		"\"\xff\"",
		"1 2",
		"{} {}",
		"[",
		"]",
		"{",
		"}",
		"[\"a\":1]",
		"\"\\u00\"",
		"{\"a\":1}}",
		"\xef\xbb\xbf{}",
	};
	(void)st;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(bg_json_valid(bad[i], strlen(bad[i])));
}

static void nest(struct bg_buf *b, int depth, char open, char close)
{
	bg_buf_reset(b);
	for (int i = 0; i < depth; i++)
		bg_buf_append(b, open == '{' ? "{\"k\":" : "[",
			      open == '{' ? 5 : 1);
	bg_buf_puts(b, "1");
	for (int i = 0; i < depth; i++)
		bg_buf_append(b, &close, 1);
}

static void test_valid_limits_nesting_depth(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	nest(&b, BG_JSON_MAX_DEPTH, '[', ']');
	assert_true(bg_json_valid(b.p, b.len));
	nest(&b, BG_JSON_MAX_DEPTH + 1, '[', ']');
	assert_false(bg_json_valid(b.p, b.len));
	nest(&b, BG_JSON_MAX_DEPTH, '{', '}');
	assert_true(bg_json_valid(b.p, b.len));
	nest(&b, BG_JSON_MAX_DEPTH + 1, '{', '}');
	assert_false(bg_json_valid(b.p, b.len));
	nest(&b, 100000, '[', ']');
	assert_false(bg_json_valid(b.p, b.len));
	bg_buf_free(&b);
}

static void test_valid_never_reads_past_len(void **st)
{
	const char *doc = "{\"a\": [1, 2.5, \"x\\u00e9\", true, null]}";
	size_t n = strlen(doc);
	char *copy;

	(void)st;
	for (size_t k = 0; k < n; k++) {
		copy = malloc(k ? k
				: 1); /* exact size: ASan catches overreads */
		memcpy(copy, doc, k);
		assert_false(bg_json_valid(copy, k));
		free(copy);
	}
	assert_true(bg_json_valid(doc, n));
}

/* ---- type, str_eq, str_blank ---- */

static void test_type_names_the_value_kind(void **st)
{
	(void)st;
	assert_int_equal(bg_json_type(S(" \"a\"")), '"');
	assert_int_equal(bg_json_type(S("{}")), '{');
	assert_int_equal(bg_json_type(S("[]")), '[');
	assert_int_equal(bg_json_type(S("null")), 'n');
	assert_int_equal(bg_json_type(S("true")), 't');
	assert_int_equal(bg_json_type(S("false")), 'f');
	assert_int_equal(bg_json_type(S("-3")), '0');
	assert_int_equal(bg_json_type(S("7")), '0');
	assert_int_equal(bg_json_type(S("  ")), 0);
	assert_int_equal(bg_json_type(S("")), 0);
}

static void test_str_eq_compares_decoded_text(void **st)
{
	(void)st;
	assert_true(bg_json_str_eq(S("\"header\""), "header"));
	assert_true(bg_json_str_eq(S("\"\\u0068eader\""), "header"));
	assert_true(bg_json_str_eq(S("\"caf\\u00e9\""), "caf\xc3\xa9"));
	assert_false(bg_json_str_eq(S("\"head\""), "header"));
	assert_false(bg_json_str_eq(S("\"headers\""), "header"));
	assert_false(bg_json_str_eq(S("\"header"), "header"));
	assert_false(bg_json_str_eq(S("header"), "header"));
	/* an escape after a matching prefix, an escaped closing quote */
	assert_true(bg_json_str_eq(S("\"head\\u0065r\""), "header"));
	assert_false(bg_json_str_eq(S("\"head\\u0065rs\""), "header"));
	assert_false(bg_json_str_eq(S("\"header\\\""), "header"));
	assert_true(bg_json_str_eq(S("\"\""), ""));
	assert_false(bg_json_str_eq(S("\"\""), "x"));
	/* a NUL byte in the literal never matches the end of s */
	assert_false(bg_json_str_eq((struct bg_str){ "\"ab\0\"", 5 }, "ab"));
}

/* Strings are scanned eight bytes at a time: a special byte at any place
 * of a long string is seen as if scanned byte by byte. */
static void test_strings_are_checked_at_every_byte_position(void **st)
{
	static const struct {
		const char *x;
		bool ok;
	} cases[] = {
		{ "\\n", true },   { "\x01", false },
		{ "\x1f", false }, { "\xc3\xa9", true },
		{ "\xc3", false }, { "\x7f", true },
		{ " ", true },	   { "\"", false },
		{ "\\x", false },  { "\xed\xa0\x80", false },
	};
	char lit[64];

	(void)st;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int k = 0; k <= 24; k++) {
			int n = snprintf(lit, sizeof lit, "\"%.*s%s%.*s\"", k,
					 "aaaaaaaaaaaaaaaaaaaaaaaa", cases[c].x,
					 24 - k, "bbbbbbbbbbbbbbbbbbbbbbbb");
			assert_int_equal(bg_json_valid(lit, (size_t)n),
					 cases[c].ok);
		}
}

static void test_key_find_picks_the_name_a_key_decodes_to(void **st)
{
	static const struct bg_str names[] = { { "status", 6 },
					       { "stat", 4 },
					       { "worker_id", 9 } };
	(void)st;
	assert_int_equal(bg_json_key_find(S("\"stat\""), names, 3), 1);
	assert_int_equal(bg_json_key_find(S("\"status\""), names, 3), 0);
	assert_int_equal(bg_json_key_find(S("\"worker\\u005fid\""), names, 3),
			 2);
	assert_int_equal(bg_json_key_find(S("\"statu\""), names, 3), 3);
	assert_int_equal(bg_json_key_find(S("\"\""), names, 3), 3);
}

static void test_obj_getv_reads_several_members_in_one_pass(void **st)
{
	static const char *const keys[] = { "a", "b", "c" };
	struct bg_str v[3];
	(void)st;
	assert_int_equal(bg_json_obj_getv(S("{\"b\":[1,{\"a\":2}],\"a\":1,"
					    "\"a\":\"last\"}"),
					  keys, v, 3),
			 0);
	assert_true(bg_str_eq(v[0], "\"last\""));
	assert_true(bg_str_eq(v[1], "[1,{\"a\":2}]"));
	assert_null(v[2].p);
	assert_int_equal(bg_json_obj_getv(S("{\"a\":1,}"), keys, v, 3),
			 -EINVAL);
	assert_null(v[0].p);
}

static void test_str_blank_matches_python_strip(void **st)
{
	(void)st;
	assert_true(bg_json_str_blank(S("\"\"")));
	assert_true(bg_json_str_blank(S("\"  \\n\\t \"")));
	assert_true(bg_json_str_blank(S("\"\\u3000\xc2\xa0\"")));
	assert_false(bg_json_str_blank(S("\" x \"")));
	assert_false(bg_json_str_blank(S("\"\\u0000\"")));
	assert_false(bg_json_str_blank(S("\"  ")));
}

/* ---- obj_get ---- */

static void test_obj_get_returns_raw_value_span(void **st)
{
	struct bg_str obj = S("{\"a\": 1, \"b\" : {\"c\": [2]} , \"d\":\"x\"}");
	struct bg_str v;

	(void)st;
	assert_int_equal(bg_json_obj_get(obj, "b", &v), 0);
	assert_int_equal(v.len, 10);
	assert_memory_equal(v.p, "{\"c\": [2]}", 10);
	assert_int_equal(bg_json_obj_get(obj, "d", &v), 0);
	assert_true(bg_str_eq(v, "\"x\""));
}

static void test_obj_get_reports_missing_and_nested_keys_as_enoent(void **st)
{
	struct bg_str v;

	(void)st;
	assert_int_equal(bg_json_obj_get(S("{\"a\":{\"c\":1}}"), "c", &v),
			 -ENOENT);
	assert_int_equal(bg_json_obj_get(S("{}"), "a", &v), -ENOENT);
}

static void test_obj_get_matches_escaped_keys_and_last_duplicate(void **st)
{
	struct bg_str v;

	(void)st;
	assert_int_equal(bg_json_obj_get(S("{\"\\u0061\":5}"), "a", &v), 0);
	assert_true(bg_str_eq(v, "5"));
	assert_int_equal(bg_json_obj_get(S("{\"a\":1,\"a\":2}"), "a", &v), 0);
	assert_true(bg_str_eq(v, "2"));
}

static void test_obj_get_rejects_invalid_objects(void **st)
{
	struct bg_str v;

	(void)st;
	assert_int_equal(bg_json_obj_get(S("[1]"), "a", &v), -EINVAL);
	assert_int_equal(bg_json_obj_get(S("{\"a\":1"), "a", &v), -EINVAL);
	assert_int_equal(bg_json_obj_get(S("{\"a\":1} x"), "a", &v), -EINVAL);
	assert_int_equal(bg_json_obj_get(S("{\"a\":01}"), "a", &v), -EINVAL);
	assert_int_equal(bg_json_obj_get(S(""), "a", &v), -EINVAL);
}

/* ---- obj_set ---- */

static char *set(const char *obj, const char *key, const char *raw, int rc)
{
	static struct bg_buf b;

	bg_buf_reset(&b);
	bg_buf_puts(&b, "");
	assert_int_equal(bg_json_obj_set(&b, bg_str_c(obj), key, bg_str_c(raw)),
			 rc);
	return b.p;
}

static void test_obj_set_replaces_value_in_place(void **st)
{
	(void)st;
	assert_string_equal(set("{\"status\": \"RUNNING\", \"n\": 1}", "status",
				"\"DONE\"", 0),
			    "{\"status\": \"DONE\", \"n\": 1}");
	assert_string_equal(set(" {\"a\" : [1, 2] } ", "a", "{}", 0),
			    " {\"a\" : {} } ");
	assert_string_equal(set("{\"a\":1,\"a\":2}", "a", "3", 0),
			    "{\"a\":1,\"a\":3}");
}

static void test_obj_set_appends_missing_member(void **st)
{
	(void)st;
	assert_string_equal(set("{\"a\": 1}", "b", "[true]", 0),
			    "{\"a\": 1,\"b\":[true]}");
	assert_string_equal(set("{}", "b", "2", 0), "{\"b\":2}");
	assert_string_equal(set("{ \n }", "b", "2", 0), "{ \n \"b\":2}");
	assert_string_equal(set("{\"a\":1} \n", "q\"k", "null", 0),
			    "{\"a\":1,\"q\\\"k\":null} \n");
}

static void test_obj_set_rejects_bad_input_and_keeps_output(void **st)
{
	struct bg_buf b = { 0 };

	(void)st;
	bg_buf_puts(&b, "prev");
	assert_int_equal(bg_json_obj_set(&b, S("{}"), "a", S("nope")), -EINVAL);
	assert_int_equal(bg_json_obj_set(&b, S("[]"), "a", S("1")), -EINVAL);
	assert_int_equal(bg_json_obj_set(&b, S("{\"a\":}"), "a", S("1")),
			 -EINVAL);
	assert_int_equal(bg_json_obj_set(&b, S("{}"), "a", S("")), -EINVAL);
	assert_string_equal(b.p, "prev");
	bg_buf_free(&b);
}

/* ---- arr_append ---- */

static char *appended(const char *arr, const char *raw, int rc)
{
	static struct bg_buf b;

	bg_buf_reset(&b);
	bg_buf_puts(&b, "");
	assert_int_equal(bg_json_arr_append(&b, bg_str_c(arr), bg_str_c(raw)),
			 rc);
	return b.p;
}

static void test_arr_append_adds_last_element(void **st)
{
	(void)st;
	assert_string_equal(appended("[]", "1", 0), "[1]");
	assert_string_equal(appended(" [ ] ", "1", 0), " [ 1] ");
	assert_string_equal(appended("[{\"s\": 1}]", "{\"s\": 2}", 0),
			    "[{\"s\": 1},{\"s\": 2}]");
	assert_string_equal(appended("[1, 2]\n", "\"x\"", 0), "[1, 2,\"x\"]\n");
}

static void test_arr_append_rejects_non_arrays(void **st)
{
	(void)st;
	assert_string_equal(appended("{}", "1", -EINVAL), "");
	assert_string_equal(appended("[1,]", "1", -EINVAL), "");
	assert_string_equal(appended("[1]", "x", -EINVAL), "");
	assert_string_equal(appended("", "1", -EINVAL), "");
}

/* ---- iterator ---- */

static void test_iter_descends_without_rescanning(void **st)
{
	const char *doc = "{\"h\": {\"x\": 1, \"y\": \"z\"}, \"n\": 2}";
	struct bg_json_iter top, child;
	struct bg_str k, v;
	int seen = 0;

	(void)st;
	assert_int_equal(bg_json_iter_open(&top, doc, strlen(doc), 0, 0), 0);
	assert_int_equal(bg_json_iter_key(&top, &k), 1);
	assert_true(bg_json_str_eq(k, "h"));
	assert_int_equal(bg_json_iter_enter(&top, &child), 0);
	while (bg_json_iter_key(&child, &k) == 1) {
		assert_int_equal(bg_json_iter_value(&child, &v), 0);
		seen++;
	}
	assert_int_equal(seen, 2);
	assert_int_equal(bg_json_iter_leave(&top, &child, &v), 0);
	assert_true(bg_str_eq(v, "{\"x\": 1, \"y\": \"z\"}"));
	assert_int_equal(bg_json_iter_key(&top, &k), 1);
	assert_true(bg_json_str_eq(k, "n"));
	assert_int_equal(bg_json_iter_value(&top, &v), 0);
	assert_true(bg_str_eq(v, "2"));
	assert_int_equal(bg_json_iter_key(&top, &k), 0);
	assert_int_equal(top.pos, strlen(doc));
}

static void test_iter_refuses_misuse(void **st)
{
	const char *doc = "{\"a\": [1], \"b\": 2}";
	struct bg_json_iter top, child;
	struct bg_str k, v;

	(void)st;
	assert_int_equal(bg_json_iter_open(&top, "[1]", 3, 0, 0), -EINVAL);
	assert_int_equal(bg_json_iter_open(&top, doc, strlen(doc), 0, 0), 0);
	assert_int_equal(bg_json_iter_value(&top, &v), -EINVAL);
	assert_int_equal(bg_json_iter_key(&top, &k), 1);
	assert_int_equal(bg_json_iter_key(&top, &k), -EINVAL);
	assert_int_equal(bg_json_iter_enter(&top, &child), -EINVAL);
}

static void edit_expect(const char *obj, const struct bg_json_edit *e, size_t n,
			const char *want)
{
	struct bg_buf out = { 0 };
	assert_int_equal(bg_json_obj_edit(&out, bg_str_c(obj), e, n), 0);
	assert_string_equal(out.p, want);
	bg_buf_free(&out);
}

static void test_obj_edit_rewrites_in_place_and_appends_missing(void **state)
{
	(void)state;
	const struct bg_json_edit e[] = {
		{ "status", BG_STR_LIT("\"RUNNING\""), BG_JSON_SET },
		{ "timeline", BG_STR_LIT("2"), BG_JSON_APPEND },
		{ "started_at", BG_STR_LIT("7"), BG_JSON_SET_IF_ZERO },
		{ "new", BG_STR_LIT("true"), BG_JSON_SET },
	};
	edit_expect("{\"status\": \"QUEUED\", \"x\": {\"status\": 1}, "
		    "\"timeline\": [1], \"started_at\": 0}",
		    e, 4,
		    "{\"status\": \"RUNNING\", \"x\": {\"status\": 1}, "
		    "\"timeline\": [1,2], \"started_at\": 7,\"new\":true}");
	edit_expect("{}", e, 4,
		    "{\"status\":\"RUNNING\",\"timeline\":[2],"
		    "\"started_at\":7,\"new\":true}");
	edit_expect("{\"started_at\": 5}", &e[2], 1, "{\"started_at\": 5}");
	edit_expect("{\"timeline\": null}", &e[1], 1, "{\"timeline\": [2]}");
}

static void test_obj_edit_rejects_malformed_objects_untouched(void **state)
{
	(void)state;
	const struct bg_json_edit e = { "a", BG_STR_LIT("1"), BG_JSON_SET };
	const char *bad[] = { "",	   "[]",
			      "{\"a\": }", "{\"a\": 1} {",
			      "{\"a\" 1}", "{\"a\": 1,}" };
	struct bg_buf out = { 0 };
	bg_buf_puts(&out, "keep");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_json_obj_edit(&out, bg_str_c(bad[i]), &e,
						  1),
				 -EINVAL);
		assert_string_equal(out.p, "keep");
	}
	bg_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_quotes_plain_text),
		cmocka_unit_test(
			test_escape_escapes_quote_backslash_and_controls),
		cmocka_unit_test(test_escape_copies_valid_utf8_raw),
		cmocka_unit_test(test_escape_replaces_invalid_utf8_with_fffd),
		cmocka_unit_test(
			test_utf8_valid_accepts_text_and_refuses_ill_formed),
		cmocka_unit_test(test_escape_appends_to_existing_buffer),
		cmocka_unit_test(
			test_escape_output_is_valid_json_for_any_bytes),
		cmocka_unit_test(test_unescape_decodes_simple_escapes),
		cmocka_unit_test(test_unescape_decodes_u_escapes_to_utf8),
		cmocka_unit_test(test_unescape_keeps_nul_as_a_counted_byte),
		cmocka_unit_test(test_unescape_rejects_lone_surrogates),
		cmocka_unit_test(test_unescape_rejects_malformed_literals),
		cmocka_unit_test(
			test_unescape_leaves_buffer_unchanged_on_error),
		cmocka_unit_test(test_escape_then_unescape_round_trips),
		cmocka_unit_test(test_skip_stops_right_after_the_value),
		cmocka_unit_test(test_valid_accepts_rfc8259_values),
		cmocka_unit_test(test_valid_rejects_malformed_values),
		cmocka_unit_test(test_valid_limits_nesting_depth),
		cmocka_unit_test(test_valid_never_reads_past_len),
		cmocka_unit_test(test_type_names_the_value_kind),
		cmocka_unit_test(test_str_eq_compares_decoded_text),
		cmocka_unit_test(
			test_strings_are_checked_at_every_byte_position),
		cmocka_unit_test(test_key_find_picks_the_name_a_key_decodes_to),
		cmocka_unit_test(
			test_obj_getv_reads_several_members_in_one_pass),
		cmocka_unit_test(test_str_blank_matches_python_strip),
		cmocka_unit_test(test_obj_get_returns_raw_value_span),
		cmocka_unit_test(
			test_obj_get_reports_missing_and_nested_keys_as_enoent),
		cmocka_unit_test(
			test_obj_get_matches_escaped_keys_and_last_duplicate),
		cmocka_unit_test(test_obj_get_rejects_invalid_objects),
		cmocka_unit_test(test_obj_set_replaces_value_in_place),
		cmocka_unit_test(test_obj_set_appends_missing_member),
		cmocka_unit_test(
			test_obj_set_rejects_bad_input_and_keeps_output),
		cmocka_unit_test(test_arr_append_adds_last_element),
		cmocka_unit_test(test_arr_append_rejects_non_arrays),
		cmocka_unit_test(test_iter_descends_without_rescanning),
		cmocka_unit_test(test_iter_refuses_misuse),
		cmocka_unit_test(
			test_obj_edit_rewrites_in_place_and_appends_missing),
		cmocka_unit_test(
			test_obj_edit_rejects_malformed_objects_untouched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
