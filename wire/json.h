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

/* Append s[0..n) as a quoted JSON string. Control characters, '"' and '\\'
 * are escaped; invalid UTF-8 sequences become U+FFFD. 0 or -ENOMEM. */
int bg_json_escape(struct bg_buf *out, const char *s, size_t n);

/* Append the decoded value of a JSON string literal (with its quotes).
 * Decodes \uXXXX including surrogate pairs to UTF-8. 0, -EINVAL for a
 * malformed literal, -ENOMEM. */
int bg_json_unescape(struct bg_buf *out, struct bg_str literal);

/* Validate the single JSON value starting at p[0] (leading whitespace
 * allowed) and store in *end the offset just past it. 0 or -EINVAL. */
int bg_json_skip(const char *p, size_t len, size_t *end);

/* Validate that [p, p+len) is exactly one JSON value (whitespace around). */
bool bg_json_valid(const char *p, size_t len);

/* Find top-level member `key` of the JSON object `obj` (must be a valid
 * object) and return its raw value span in *val. 0, -ENOENT, -EINVAL. */
int bg_json_obj_get(struct bg_str obj, const char *key, struct bg_str *val);

/* Append to out a copy of the object `obj` in which member `key` has the raw
 * JSON value `raw` (replaced in place if present, appended otherwise). */
int bg_json_obj_set(struct bg_buf *out, struct bg_str obj, const char *key,
		    struct bg_str raw);

/* Append to out a copy of the JSON array `arr` with the raw value appended. */
int bg_json_arr_append(struct bg_buf *out, struct bg_str arr, struct bg_str raw);

/* Type of the raw value (first non-space character): '"', '{', '[', 'n'
 * (null), 't'/'f' (bool), '0' (number), or 0 when empty. */
char bg_json_type(struct bg_str raw);

#endif
