/* wire/json.h - the JSON primitives of the hot path (DESIGN 4.6): a string
 * escaper for writing from templates, an unescaper, a strict single-value
 * validator/skipper, top-level member lookup and splicing of members into
 * an object's bytes. No trees, no allocation beyond the output buffer.
 * Input is untrusted: every function bounds-checks and rejects malformed
 * JSON (RFC 8259; nesting depth limited to BG_JSON_MAX_DEPTH). */
#ifndef BG_WIRE_JSON_H
#define BG_WIRE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

#define BG_JSON_MAX_DEPTH 64

/* Append s[0..n) as a quoted JSON string. '"', '\\' and control characters
 * are escaped (\n \t \r \b \f, else \u00XX); valid UTF-8 is copied raw;
 * each maximal ill-formed UTF-8 subpart (Unicode 3.9, as Python's
 * errors="replace") becomes "\ufffd". 0 or -ENOMEM (out unchanged). */
int bg_json_escape(struct bg_buf *out, const char *s, size_t n);

/* Append the decoded value of a JSON string literal (with its quotes).
 * Decodes \uXXXX including surrogate pairs to UTF-8. 0, -EINVAL for a
 * malformed literal, -ENOMEM. An unpaired surrogate escape (\ud800 alone)
 * is malformed here and in bg_json_skip/valid, as in jansson, so the hot
 * path and the jansson cold path accept exactly the same strings. \u0000
 * is accepted and decodes to a NUL byte (values are length-counted). */
int bg_json_unescape(struct bg_buf *out, struct bg_str literal);

/* Validate the single JSON value starting at p[0] (leading whitespace
 * allowed) and store in *end the offset just past it. 0 or -EINVAL. */
int bg_json_skip(const char *p, size_t len, size_t *end);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF; NUL bytes are characters like any other). */
bool bg_json_utf8_valid(const char *s, size_t n);

/* Validate that [p, p+len) is exactly one JSON value (whitespace around). */
bool bg_json_valid(const char *p, size_t len);

/* Find top-level member `key` of the JSON object `obj` (must be a valid
 * object) and return its raw value span in *val. 0, -ENOENT, -EINVAL.
 * Keys are compared decoded; with duplicate keys the last one wins, as in
 * Python's json and jansson. */
int bg_json_obj_get(struct bg_str obj, const char *key, struct bg_str *val);

/* bg_json_obj_get of n (at most 16) keys in one pass: vals[i] = the raw
 * value of keys[i] (the last of duplicates), {NULL, 0} when absent. 0, or
 * -EINVAL when obj is not a valid object or n > 16 (every vals[i] then
 * absent). */
int bg_json_obj_getv(struct bg_str obj, const char *const *keys,
		     struct bg_str *vals, size_t n);

/* Append to out a copy of the object `obj` in which member `key` has the raw
 * JSON value `raw` (replaced in place if present - the last occurrence of a
 * duplicated key - otherwise appended as `,"key":raw` before the closing
 * brace). Every other byte is preserved. 0, -EINVAL (obj not a valid object
 * or raw not a valid value), -ENOMEM; out is unchanged on error. */
int bg_json_obj_set(struct bg_buf *out, struct bg_str obj, const char *key,
		    struct bg_str raw);

/* One member edit of bg_json_obj_edit. */
enum bg_json_edit_op {
	BG_JSON_SET,	     /* the member's value becomes raw */
	BG_JSON_APPEND,	     /* raw is appended to the member's array value;
				an absent or non-array member becomes [raw] */
	BG_JSON_SET_IF_ZERO, /* set only when absent, null or the number 0 */
};
struct bg_json_edit {
	const char *key;   /* plain key, no escapes needed */
	struct bg_str raw; /* a valid JSON value (the caller's duty) */
	enum bg_json_edit_op op;
};

/* Append to out a copy of the object `obj` with every edit applied (at most
 * 64), in ONE validating pass over obj (the hot-path record update, DESIGN
 * 4.6): matching members are rewritten in place, the others copied byte for
 * byte, edited keys that are absent are appended in order. 0, -EINVAL for a
 * malformed obj (out unchanged), -ENOMEM. */
int bg_json_obj_edit(struct bg_buf *out, struct bg_str obj,
		     const struct bg_json_edit *edits, size_t n);

/* Where bg_json_obj_edit_pick's output holds the values of names[0..n):
 * for each, the offset in out and the length of the value of its last
 * top-level member (len 0: the output has no such member), exactly the
 * span bg_json_obj_getv of the output would return. */
struct bg_json_pick {
	const struct bg_str *names; /* plain keys, no escapes */
	size_t n;
	size_t *off, *len;
};

/* bg_json_obj_edit that also fills pick (its arrays zeroed first) in the
 * same pass: the values of the output's members without scanning it. */
int bg_json_obj_edit_pick(struct bg_buf *out, struct bg_str obj,
			  const struct bg_json_edit *edits, size_t n,
			  const struct bg_json_pick *pick);

/* Append to out a copy of the JSON array `arr` with the raw value appended.
 * 0, -EINVAL, -ENOMEM; out is unchanged on error. */
int bg_json_arr_append(struct bg_buf *out, struct bg_str arr,
		       struct bg_str raw);

/* Type of the raw value (first non-space character): '"', '{', '[', 'n'
 * (null), 't'/'f' (bool), '0' (number), or 0 when empty. */
char bg_json_type(struct bg_str raw);

/* True when the string literal `lit` (quotes included) is well formed and
 * decodes to exactly the bytes of the C string `s`. */
bool bg_json_str_eq(struct bg_str lit, const char *s);

/* The index i of the name the key literal `lit` (quotes included, well
 * formed: as bg_json_iter_key returns it) decodes to, names[i] being
 * NUL-terminated with its length; n when none. Without escapes (the usual
 * key) a compare of lengths and bytes, no decoding. */
size_t bg_json_key_find(struct bg_str lit, const struct bg_str *names,
			size_t n);

/* True when the string literal `lit` is well formed and decodes to nothing
 * or only to whitespace (Python's str.isspace() set, so "blank" means what
 * by-framework's content.strip() means). */
bool bg_json_str_blank(struct bg_str lit);

/* Streaming walk over one object's members, for single-pass scanners that
 * want to descend into some member values without scanning them twice:
 *
 *	bg_json_iter_open(&it, p, len, 0, 0);
 *	while ((rc = bg_json_iter_key(&it, &key)) == 1)
 *		rc = bg_json_iter_value(&it, &val);   (or _enter ... _leave)
 *
 * Every byte walked is validated exactly as bg_json_skip does. The iterator
 * borrows p; it allocates nothing. */
struct bg_json_iter {
	const char *p; /* the whole document */
	size_t len;
	size_t pos; /* offset of the next unread byte */
	int depth;  /* containers open, this object included */
	int state;  /* private */
};

/* Open the object whose '{' is the next non-space byte at p[pos]. `depth`
 * counts the containers already open around it. 0, or -EINVAL when the
 * value there is not an object or would exceed BG_JSON_MAX_DEPTH. */
int bg_json_iter_open(struct bg_json_iter *it, const char *p, size_t len,
		      size_t pos, int depth);

/* Read the next member's key. Returns 1 with *key = the key literal (quotes
 * included) and it->pos at the member's value; 0 when the object is closed
 * (it->pos just past its '}'); -EINVAL for malformed input. After a 1 the
 * caller must consume the value with _value or _enter/_leave. */
int bg_json_iter_key(struct bg_json_iter *it, struct bg_str *key);

/* Validate and step over the value of the current member; *val = its span. */
int bg_json_iter_value(struct bg_json_iter *it, struct bg_str *val);

/* Open the current member's value (which must be an object) as `child`. */
int bg_json_iter_enter(struct bg_json_iter *it, struct bg_json_iter *child);

/* After `child` returned 0 from _key, resume `it` past the child object and
 * store the child's whole span in *val. -EINVAL when child is not closed. */
int bg_json_iter_leave(struct bg_json_iter *it,
		       const struct bg_json_iter *child, struct bg_str *val);

#endif
