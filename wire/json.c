/* wire/json.c - strict RFC 8259 JSON primitives for the hot path: escaping,
 * unescaping, validation/skipping, member lookup and byte-level splicing.
 * Everything is bounds-checked against untrusted input; nothing logs. */
#include "wire/json.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

enum { ITER_FIRST, ITER_NEXT, ITER_VALUE, ITER_CLOSED };

static int skip_value(const char *p, size_t n, size_t *i, int depth);

/* ---- UTF-8 -------------------------------------------------------------- */

/* Decode one UTF-8 sequence at s[0..n), n >= 1. Returns its length and the
 * code point, or -k where k >= 1 is the length of the maximal ill-formed
 * subpart (Unicode 3.9 "substitution of maximal subparts"), which is what
 * one U+FFFD replaces. Overlongs, surrogates and > U+10FFFF are ill-formed. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned c = s[0], lo = 0x80, hi = 0xBF;
	int need;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		v = c & 0x0F;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		v = c & 0x07;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else {
		return -1;
	}
	for (int k = 1; k <= need; k++) {
		if ((size_t)k >= n || s[k] < lo || s[k] > hi)
			return -k;
		v = (v << 6) | (s[k] & 0x3F);
		lo = 0x80;
		hi = 0xBF;
	}
	*cp = v;
	return need + 1;
}

bool bg_json_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		int k = utf8_decode(u + i, n - i, &cp);
		if (k < 0)
			return false;
		i += (size_t)k;
	}
	return true;
}

static size_t utf8_encode(uint32_t cp, char u[4])
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (char)(0xF0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	u[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* ---- escaping ------------------------------------------------------------ */

/* Restore out to `len` bytes after a failed append sequence. */
static int rollback(struct bg_buf *out, size_t len, int rc)
{
	out->len = len;
	if (out->p)
		out->p[len] = '\0';
	return rc;
}

static int escape_byte(struct bg_buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = { '\\', 0 };

	switch (c) {
	case '"':
		e[1] = '"';
		break;
	case '\\':
		e[1] = '\\';
		break;
	case '\b':
		e[1] = 'b';
		break;
	case '\f':
		e[1] = 'f';
		break;
	case '\n':
		e[1] = 'n';
		break;
	case '\r':
		e[1] = 'r';
		break;
	case '\t':
		e[1] = 't';
		break;
	default:
		memcpy(e + 1, "u00", 3);
		e[4] = hex[c >> 4];
		e[5] = hex[c & 15];
		return bg_buf_append(out, e, 6);
	}
	return bg_buf_append(out, e, 2);
}

int bg_json_escape(struct bg_buf *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t start = out->len, run = 0, i = 0;
	int rc = bg_buf_append(out, "\"", 1);

	while (rc == 0 && i < n) {
		unsigned char c = u[i];
		uint32_t cp;
		int k;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		k = c < 0x80 ? 0 : utf8_decode(u + i, n - i, &cp);
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		rc = bg_buf_append(out, s + run, i - run);
		if (rc == 0 && k == 0)
			rc = escape_byte(out, c);
		else if (rc == 0)
			rc = bg_buf_append(out, "\\ufffd", 6);
		i += k == 0 ? 1 : (size_t)-k;
		run = i;
	}
	if (rc == 0)
		rc = bg_buf_append(out, s + run, i - run);
	if (rc == 0)
		rc = bg_buf_append(out, "\"", 1);
	return rc ? rollback(out, start, rc) : 0;
}

/* ---- string literals ----------------------------------------------------- */

static int hex4(const char *p, size_t n, size_t i, uint32_t *v)
{
	*v = 0;
	if (i > n || n - i < 4)
		return -EINVAL;
	for (size_t k = i; k < i + 4; k++) {
		char c = p[k];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -EINVAL;
		*v = (*v << 4) | (uint32_t)d;
	}
	return 0;
}

/* \uXXXX at p[*i] (just past the 'u'), with a following low surrogate when
 * XXXX is a high one. Unpaired surrogates are -EINVAL. */
static int u_escape(const char *p, size_t n, size_t *i, uint32_t *cp)
{
	uint32_t hi, lo;

	if (hex4(p, n, *i, &hi))
		return -EINVAL;
	*i += 4;
	if (hi >= 0xDC00 && hi <= 0xDFFF)
		return -EINVAL;
	if (hi >= 0xD800 && hi <= 0xDBFF) {
		if (n - *i < 6 || p[*i] != '\\' || p[*i + 1] != 'u' ||
		    hex4(p, n, *i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
			return -EINVAL;
		*i += 6;
		hi = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
	}
	*cp = hi;
	return 1;
}

/* Decode the next character of a string body continuing at p[*i]. Returns 1
 * with *cp, 0 at the closing quote (*i just past it), or -EINVAL. */
static int str_char(const char *p, size_t n, size_t *i, uint32_t *cp)
{
	unsigned char c;
	int k;

	if (*i >= n)
		return -EINVAL;
	c = (unsigned char)p[*i];
	if (c == '"') {
		(*i)++;
		return 0;
	}
	if (c < 0x20)
		return -EINVAL;
	if (c != '\\') {
		k = utf8_decode((const unsigned char *)p + *i, n - *i, cp);
		if (k < 0)
			return -EINVAL;
		*i += (size_t)k;
		return 1;
	}
	if (n - *i < 2)
		return -EINVAL;
	c = (unsigned char)p[*i + 1];
	*i += 2;
	switch (c) {
	case '"':
	case '\\':
	case '/':
		*cp = c;
		return 1;
	case 'b':
		*cp = '\b';
		return 1;
	case 'f':
		*cp = '\f';
		return 1;
	case 'n':
		*cp = '\n';
		return 1;
	case 'r':
		*cp = '\r';
		return 1;
	case 't':
		*cp = '\t';
		return 1;
	case 'u':
		return u_escape(p, n, i, cp);
	default:
		return -EINVAL;
	}
}

static bool plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Past the plain bytes (plain_byte) from p[i]: eight at a time while no
 * byte of the eight is '"', '\\', below 0x20 or from 0x80 (a byte that
 * borrows or has its top bit set flags its word; a word flagged by
 * mistake only sends the byte loop over it), then one at a time. */
static size_t plain_run(const char *p, size_t n, size_t i)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t highs = 0x8080808080808080ULL;

	while (n - i >= 8) {
		uint64_t x, q, b;
		memcpy(&x, p + i, 8);
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		if (((x - ones * 0x20) | (q - ones) | (b - ones) | x) & highs)
			break;
		i += 8;
	}
	while (i < n && plain_byte((unsigned char)p[i]))
		i++;
	return i;
}

/* p[*i] is the opening quote; on success *i is just past the closing one. */
static int skip_string(const char *p, size_t n, size_t *i)
{
	uint32_t cp;
	int rc;

	(*i)++;
	do {
		*i = plain_run(p, n, *i);
		rc = str_char(p, n, i, &cp);
	} while (rc == 1);
	return rc;
}

int bg_json_unescape(struct bg_buf *out, struct bg_str literal)
{
	const char *p = literal.p;
	size_t n = literal.len, i = 1, start = out->len;
	uint32_t cp;
	int rc;

	if (n < 2 || p[0] != '"')
		return -EINVAL;
	/* The decoded text is never longer than the literal. */
	rc = bg_buf_reserve(out, n);
	if (rc)
		return rc;
	do {
		size_t run = i;
		while (i < n && plain_byte((unsigned char)p[i]))
			i++;
		memcpy(out->p + out->len, p + run, i - run);
		out->len += i - run;
		rc = str_char(p, n, &i, &cp);
		if (rc == 1)
			out->len += utf8_encode(cp, out->p + out->len);
	} while (rc == 1);
	if (rc == 0 && i != n)
		rc = -EINVAL;
	out->p[out->len] = '\0';
	return rc ? rollback(out, start, rc) : 0;
}

bool bg_json_str_eq(struct bg_str lit, const char *s)
{
	size_t i = 1, k, sn, n;
	uint32_t cp;
	char u[4];
	int rc;

	if (lit.len < 2 || lit.p[0] != '"' || lit.p[lit.len - 1] != '"')
		return false;
	/* Fast path, one pass and no strlen (member keys are matched against
	 * tables of names, so most calls differ in the first bytes): bytes
	 * up to the first escape are compared as they are; s must end where
	 * the literal does. A NUL in the literal never matches s's end. */
	n = lit.len - 2;
	for (k = 0; k < n; k++) {
		char c = lit.p[1 + k];
		if (c == '\\')
			break;
		if (c != s[k] || c == '\0')
			return false;
	}
	if (k == n)
		return s[n] == '\0';
	sn = strlen(s);
	k = 0; /* decoded from the start: the prefix is checked as UTF-8 */
	while ((rc = str_char(lit.p, lit.len, &i, &cp)) == 1) {
		size_t m = utf8_encode(cp, u);
		if (sn - k < m || memcmp(s + k, u, m) != 0)
			return false;
		k += m;
	}
	return rc == 0 && i == lit.len && k == sn;
}

size_t bg_json_key_find(struct bg_str lit, const struct bg_str *names, size_t n)
{
	if (lit.len < 2)
		return n;
	const char *k = lit.p + 1;
	size_t kn = lit.len - 2;
	if (memchr(k, '\\', kn) == NULL) {
		for (size_t i = 0; i < n; i++)
			if (names[i].len == kn &&
			    memcmp(names[i].p, k, kn) == 0)
				return i;
		return n;
	}
	for (size_t i = 0; i < n; i++) /* escaped: decoded per name */
		if (bg_json_str_eq(lit, names[i].p))
			return i;
	return n;
}

static bool is_space_cp(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) ||
	       c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
	       c == 0x202F || c == 0x205F || c == 0x3000;
}

bool bg_json_str_blank(struct bg_str lit)
{
	size_t i = 1;
	uint32_t cp;
	int rc;

	if (lit.len < 2 || lit.p[0] != '"')
		return false;
	while ((rc = str_char(lit.p, lit.len, &i, &cp)) == 1)
		if (!is_space_cp(cp))
			return false;
	return rc == 0 && i == lit.len;
}

/* ---- validation ---------------------------------------------------------- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && is_ws(p[i]))
		i++;
	return i;
}

static size_t skip_digits(const char *p, size_t n, size_t i)
{
	while (i < n && p[i] >= '0' && p[i] <= '9')
		i++;
	return i;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int skip_number(const char *p, size_t n, size_t *i)
{
	size_t j = *i, d;

	if (j < n && p[j] == '-')
		j++;
	if (j < n && p[j] == '0')
		j++;
	else if ((d = skip_digits(p, n, j)) > j)
		j = d;
	else
		return -EINVAL;
	if (j < n && p[j] == '.') {
		if ((d = skip_digits(p, n, j + 1)) == j + 1)
			return -EINVAL;
		j = d;
	}
	if (j < n && (p[j] == 'e' || p[j] == 'E')) {
		j++;
		if (j < n && (p[j] == '+' || p[j] == '-'))
			j++;
		if ((d = skip_digits(p, n, j)) == j)
			return -EINVAL;
		j = d;
	}
	*i = j;
	return 0;
}

static int skip_word(const char *p, size_t n, size_t *i, const char *w)
{
	size_t wn = strlen(w);

	if (n - *i < wn || memcmp(p + *i, w, wn) != 0)
		return -EINVAL;
	*i += wn;
	return 0;
}

static int skip_object(const char *p, size_t n, size_t *i, int depth)
{
	struct bg_json_iter it;
	struct bg_str k, v;
	int rc = bg_json_iter_open(&it, p, n, *i, depth);

	while (rc == 0 && (rc = bg_json_iter_key(&it, &k)) == 1)
		rc = bg_json_iter_value(&it, &v);
	if (rc == 0)
		*i = it.pos;
	return rc;
}

static int skip_array(const char *p, size_t n, size_t *i, int depth)
{
	size_t j = *i + 1;

	if (depth >= BG_JSON_MAX_DEPTH)
		return -EINVAL;
	j = skip_ws(p, n, j);
	if (j < n && p[j] == ']') {
		*i = j + 1;
		return 0;
	}
	for (;;) {
		int rc = skip_value(p, n, &j, depth + 1);
		if (rc)
			return rc;
		j = skip_ws(p, n, j);
		if (j >= n)
			return -EINVAL;
		if (p[j] == ']') {
			*i = j + 1;
			return 0;
		}
		if (p[j] != ',')
			return -EINVAL;
		j++;
	}
}

/* Skip the value at p[*i] (leading whitespace allowed); `depth` counts the
 * containers open around it. */
static int skip_value(const char *p, size_t n, size_t *i, int depth)
{
	*i = skip_ws(p, n, *i);
	if (*i >= n)
		return -EINVAL;
	switch (p[*i]) {
	case '{':
		return skip_object(p, n, i, depth);
	case '[':
		return skip_array(p, n, i, depth);
	case '"':
		return skip_string(p, n, i);
	case 't':
		return skip_word(p, n, i, "true");
	case 'f':
		return skip_word(p, n, i, "false");
	case 'n':
		return skip_word(p, n, i, "null");
	default:
		return skip_number(p, n, i);
	}
}

int bg_json_skip(const char *p, size_t len, size_t *end)
{
	size_t i = 0;
	int rc;

	if (p == NULL)
		return -EINVAL;
	rc = skip_value(p, len, &i, 0);
	if (rc == 0)
		*end = i;
	return rc;
}

bool bg_json_valid(const char *p, size_t len)
{
	size_t end;

	return bg_json_skip(p, len, &end) == 0 && skip_ws(p, len, end) == len;
}

char bg_json_type(struct bg_str raw)
{
	size_t i = raw.p ? skip_ws(raw.p, raw.len, 0) : raw.len;

	if (i >= raw.len)
		return 0;
	switch (raw.p[i]) {
	case '"':
	case '{':
	case '[':
	case 'n':
	case 't':
	case 'f':
		return raw.p[i];
	case '-':
		return '0';
	default:
		return raw.p[i] >= '0' && raw.p[i] <= '9' ? '0' : 0;
	}
}

/* ---- object iteration ---------------------------------------------------- */

int bg_json_iter_open(struct bg_json_iter *it, const char *p, size_t len,
		      size_t pos, int depth)
{
	pos = p ? skip_ws(p, len, pos) : len;
	if (pos >= len || p[pos] != '{' || depth >= BG_JSON_MAX_DEPTH)
		return -EINVAL;
	it->p = p;
	it->len = len;
	it->pos = pos + 1;
	it->depth = depth + 1;
	it->state = ITER_FIRST;
	return 0;
}

int bg_json_iter_key(struct bg_json_iter *it, struct bg_str *key)
{
	const char *p = it->p;
	size_t n = it->len, i, start;

	if (it->state == ITER_CLOSED)
		return 0;
	if (it->state == ITER_VALUE)
		return -EINVAL;
	i = skip_ws(p, n, it->pos);
	if (i < n && p[i] == '}') {
		it->pos = i + 1;
		it->state = ITER_CLOSED;
		return 0;
	}
	if (it->state == ITER_NEXT) {
		if (i >= n || p[i] != ',')
			return -EINVAL;
		i = skip_ws(p, n, i + 1);
	}
	if (i >= n || p[i] != '"')
		return -EINVAL;
	start = i;
	if (skip_string(p, n, &i))
		return -EINVAL;
	key->p = p + start;
	key->len = i - start;
	i = skip_ws(p, n, i);
	if (i >= n || p[i] != ':')
		return -EINVAL;
	it->pos = skip_ws(p, n, i + 1);
	it->state = ITER_VALUE;
	return 1;
}

int bg_json_iter_value(struct bg_json_iter *it, struct bg_str *val)
{
	size_t i = it->pos;
	int rc;

	if (it->state != ITER_VALUE)
		return -EINVAL;
	rc = skip_value(it->p, it->len, &i, it->depth);
	if (rc)
		return rc;
	val->p = it->p + it->pos;
	val->len = i - it->pos;
	it->pos = i;
	it->state = ITER_NEXT;
	return 0;
}

int bg_json_iter_enter(struct bg_json_iter *it, struct bg_json_iter *child)
{
	if (it->state != ITER_VALUE)
		return -EINVAL;
	return bg_json_iter_open(child, it->p, it->len, it->pos, it->depth);
}

int bg_json_iter_leave(struct bg_json_iter *it,
		       const struct bg_json_iter *child, struct bg_str *val)
{
	if (it->state != ITER_VALUE || child->state != ITER_CLOSED ||
	    child->p != it->p || child->pos < it->pos)
		return -EINVAL;
	val->p = it->p + it->pos;
	val->len = child->pos - it->pos;
	it->pos = child->pos;
	it->state = ITER_NEXT;
	return 0;
}

/* ---- lookup and splicing ------------------------------------------------- */

/* Walk the whole object `obj`: *found = span of the last value of `key`
 * (p NULL when absent), *close = offset of its final '}', *members = count. */
static int obj_scan(struct bg_str obj, const char *key, struct bg_str *found,
		    size_t *close, size_t *members)
{
	struct bg_json_iter it;
	struct bg_str k, v;
	int rc = bg_json_iter_open(&it, obj.p, obj.len, 0, 0);

	found->p = NULL;
	found->len = 0;
	*members = 0;
	while (rc == 0 && (rc = bg_json_iter_key(&it, &k)) == 1) {
		rc = bg_json_iter_value(&it, &v);
		if (rc == 0 && bg_json_str_eq(k, key))
			*found = v;
		++*members;
	}
	if (rc || skip_ws(obj.p, obj.len, it.pos) != obj.len)
		return -EINVAL;
	*close = it.pos - 1;
	return 0;
}

int bg_json_obj_get(struct bg_str obj, const char *key, struct bg_str *val)
{
	struct bg_str v;
	size_t close, members;
	int rc = obj_scan(obj, key, &v, &close, &members);

	if (rc)
		return rc;
	if (v.p == NULL)
		return -ENOENT;
	*val = v;
	return 0;
}

int bg_json_obj_getv(struct bg_str obj, const char *const *keys,
		     struct bg_str *vals, size_t n)
{
	struct bg_json_iter it;
	struct bg_str k, v;
	int rc = bg_json_iter_open(&it, obj.p, obj.len, 0, 0);

	struct bg_str names[16];

	if (n > 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		vals[i] = (struct bg_str){ NULL, 0 };
		names[i] = (struct bg_str){ keys[i], strlen(keys[i]) };
	}
	while (rc == 0 && (rc = bg_json_iter_key(&it, &k)) == 1) {
		rc = bg_json_iter_value(&it, &v);
		size_t i = rc == 0 ? bg_json_key_find(k, names, n) : n;
		if (i < n)
			vals[i] = v; /* the last one wins */
	}
	if (rc || skip_ws(obj.p, obj.len, it.pos) != obj.len) {
		for (size_t i = 0; i < n; i++)
			vals[i] = (struct bg_str){ NULL, 0 };
		return -EINVAL;
	}
	return 0;
}

/* Append head[0..cut) + sep + (key ? "key": : "") + raw + head[resume..). */
static int splice(struct bg_buf *out, struct bg_str doc, size_t cut,
		  size_t resume, const char *sep, const char *key,
		  struct bg_str raw)
{
	size_t start = out->len;
	int rc = bg_buf_append(out, doc.p, cut);

	if (rc == 0)
		rc = bg_buf_puts(out, sep);
	if (rc == 0 && key) {
		rc = bg_json_escape(out, key, strlen(key));
		if (rc == 0)
			rc = bg_buf_append(out, ":", 1);
	}
	if (rc == 0)
		rc = bg_buf_append(out, raw.p, raw.len);
	if (rc == 0)
		rc = bg_buf_append(out, doc.p + resume, doc.len - resume);
	return rc ? rollback(out, start, rc) : 0;
}

int bg_json_obj_set(struct bg_buf *out, struct bg_str obj, const char *key,
		    struct bg_str raw)
{
	struct bg_str v;
	size_t close, members;
	int rc;

	if (key == NULL || raw.p == NULL || !bg_json_valid(raw.p, raw.len))
		return -EINVAL;
	rc = obj_scan(obj, key, &v, &close, &members);
	if (rc)
		return rc;
	if (v.p) {
		size_t at = (size_t)(v.p - obj.p);
		return splice(out, obj, at, at + v.len, "", NULL, raw);
	}
	return splice(out, obj, close, close, members ? "," : "", key, raw);
}

int bg_json_arr_append(struct bg_buf *out, struct bg_str arr, struct bg_str raw)
{
	size_t first, close;

	if (raw.p == NULL || !bg_json_valid(raw.p, raw.len) || arr.p == NULL ||
	    !bg_json_valid(arr.p, arr.len) || bg_json_type(arr) != '[')
		return -EINVAL;
	/* Valid and starting with '[': the last non-space byte is its ']'. */
	close = arr.len - 1;
	while (is_ws(arr.p[close]))
		close--;
	first = skip_ws(arr.p, arr.len, skip_ws(arr.p, arr.len, 0) + 1);
	return splice(out, arr, close, close, first == close ? "" : ",", NULL,
		      raw);
}

/* ---- one-pass multi-member edit ------------------------------------------ */

static bool raw_is_zero(struct bg_str v)
{
	return (v.len == 4 && memcmp(v.p, "null", 4) == 0) ||
	       (v.len == 1 && v.p[0] == '0');
}

static int edit_value(struct bg_buf *out, const struct bg_json_edit *e,
		      struct bg_str old)
{
	switch (e->op) {
	case BG_JSON_SET_IF_ZERO:
		if (!raw_is_zero(old))
			return bg_buf_append(out, old.p, old.len);
		/* fall through */
	case BG_JSON_SET:
		return bg_buf_append(out, e->raw.p, e->raw.len);
	case BG_JSON_APPEND:
		if (bg_json_type(old) == '[')
			return bg_json_arr_append(out, old, e->raw);
		break;
	}
	int rc = bg_buf_append(out, "[", 1);
	if (rc == 0)
		rc = bg_buf_append(out, e->raw.p, e->raw.len);
	return rc ? rc : bg_buf_append(out, "]", 1);
}

/* The index of the plain key in pick's names, pick->n when none. */
static size_t pick_find(const struct bg_json_pick *pick, const char *key)
{
	size_t kn = strlen(key);
	for (size_t i = 0; i < pick->n; i++)
		if (pick->names[i].len == kn &&
		    memcmp(pick->names[i].p, key, kn) == 0)
			return i;
	return pick->n;
}

/* pick's entry i is the output span [from, out->len) */
static void pick_set(const struct bg_json_pick *pick, size_t i, size_t from,
		     const struct bg_buf *out)
{
	if (pick && i < pick->n) {
		pick->off[i] = from;
		pick->len[i] = out->len - from;
	}
}

int bg_json_obj_edit(struct bg_buf *out, struct bg_str obj,
		     const struct bg_json_edit *edits, size_t n)
{
	return bg_json_obj_edit_pick(out, obj, edits, n, NULL);
}

int bg_json_obj_edit_pick(struct bg_buf *out, struct bg_str obj,
			  const struct bg_json_edit *edits, size_t n,
			  const struct bg_json_pick *pick)
{
	struct bg_json_iter it = { 0 };
	struct bg_str k, v;
	size_t mark = out->len, copied = 0, members = 0;
	uint64_t seen = 0;
	struct bg_str names[64];
	int rc = n > 64 ? -EINVAL
			: bg_json_iter_open(&it, obj.p, obj.len, 0, 0);

	for (size_t i = 0; rc == 0 && i < n; i++)
		names[i] =
			(struct bg_str){ edits[i].key, strlen(edits[i].key) };
	for (size_t i = 0; pick && i < pick->n; i++)
		pick->off[i] = pick->len[i] = 0;

	while (rc == 0 && (rc = bg_json_iter_key(&it, &k)) == 1) {
		members++;
		if ((rc = bg_json_iter_value(&it, &v)) != 0)
			break;
		size_t i = bg_json_key_find(k, names, n);
		size_t at = pick ? bg_json_key_find(k, pick->names, pick->n)
				 : 0;
		if (i == n) {
			/* copied later: obj[copied..] lands at out->len on */
			if (pick && at < pick->n) {
				pick->off[at] = out->len +
						(size_t)(v.p - obj.p) - copied;
				pick->len[at] = v.len;
			}
			continue;
		}
		seen |= 1ULL << i;
		rc = bg_buf_append(out, obj.p + copied,
				   (size_t)(v.p - obj.p) - copied);
		size_t from = out->len;
		if (rc == 0)
			rc = edit_value(out, &edits[i], v);
		if (rc == 0 && pick)
			pick_set(pick, at, from, out);
		copied = (size_t)(v.p - obj.p) + v.len;
	}
	size_t close = it.pos - 1;
	if (rc == 0 && skip_ws(obj.p, obj.len, it.pos) != obj.len)
		rc = -EINVAL;
	if (rc == 0)
		rc = bg_buf_append(out, obj.p + copied, close - copied);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (seen & (1ULL << i))
			continue;
		struct bg_str none = { "null", 4 };
		rc = bg_buf_printf(out, "%s\"%s\":", members++ ? "," : "",
				   edits[i].key);
		size_t from = out->len;
		if (rc == 0)
			rc = edit_value(out, &edits[i], none);
		if (rc == 0 && pick)
			pick_set(pick, pick_find(pick, edits[i].key), from,
				 out);
	}
	if (rc == 0)
		rc = bg_buf_append(out, obj.p + close, obj.len - close);
	if (rc) {
		out->len = mark;
		if (out->p)
			out->p[mark] = '\0';
	}
	return rc;
}
