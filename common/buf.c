/* common/buf.c - growable byte buffer. */
#include "common/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bg_str bg_str_c(const char *s)
{
	struct bg_str r = { s ? s : "", s ? strlen(s) : 0 };
	return r;
}

int bg_str_eq(struct bg_str a, const char *c)
{
	size_t n = strlen(c);
	return a.len == n && (n == 0 || memcmp(a.p, c, n) == 0);
}

int bg_buf_reserve(struct bg_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256; /* few reallocs for records */
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int bg_buf_append(struct bg_buf *b, const void *p, size_t n)
{
	/* fits (len < cap whenever cap > 0): no call, no overflow check */
	int rc = b->cap - b->len > n ? 0 : bg_buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int bg_buf_puts(struct bg_buf *b, const char *s)
{
	return bg_buf_append(b, s, strlen(s));
}

int bg_buf_printf(struct bg_buf *b, const char *fmt, ...)
{
	va_list ap;
	/* One vsnprintf when the text fits in the room already there (the
	 * common case for reused buffers), a second after growing. */
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	va_start(ap, fmt);
	int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		if (room)
			b->p[b->len] = '\0';
		return -EINVAL;
	}
	if ((size_t)n < room) {
		b->len += (size_t)n;
		return 0;
	}
	int rc = bg_buf_reserve(b, (size_t)n);
	if (rc) {
		if (room)
			b->p[b->len] = '\0';
		return rc;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

size_t bg_i64_str(char out[BG_I64_STR], int64_t v)
{
	char tmp[BG_I64_STR];
	size_t n = 0, k = 0;
	/* magnitude as unsigned: INT64_MIN has no positive int64 */
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[k++] = '-';
	while (n)
		out[k++] = tmp[--n];
	out[k] = '\0';
	return k;
}

int bg_buf_put_i64(struct bg_buf *b, int64_t v)
{
	char num[BG_I64_STR];
	return bg_buf_append(b, num, bg_i64_str(num, v));
}

void bg_buf_reset(struct bg_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void bg_buf_free(struct bg_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *bg_buf_steal(struct bg_buf *b)
{
	char *p = b->p;
	if (p == NULL)
		p = calloc(1, 1);
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

char *bg_str_dup(struct bg_str s)
{
	char *p = malloc(s.len + 1);
	if (p) {
		if (s.len)
			memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}
