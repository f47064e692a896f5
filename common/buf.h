/* common/buf.h - growable byte buffer and borrowed string views.
 * The base layer every component may use; it never logs and never exits. */
#ifndef BG_COMMON_BUF_H
#define BG_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A borrowed, not necessarily NUL-terminated byte string. */
struct bg_str {
	const char *p;
	size_t len;
};

#define BG_STR_LIT(s) ((struct bg_str){ (s), sizeof(s) - 1 })
struct bg_str bg_str_c(const char *s); /* view of a C string (NULL -> empty) */
int bg_str_eq(struct bg_str a, const char *c);
/* A malloc'd NUL-terminated copy of s (NULL when out of memory). */
char *bg_str_dup(struct bg_str s);

/* Owned growable buffer. p is always NUL-terminated after a successful
 * append (the NUL is not counted in len). A zeroed struct is an empty buffer. */
struct bg_buf {
	char *p;
	size_t len;
	size_t cap;
};

int bg_buf_reserve(struct bg_buf *b, size_t extra); /* 0 or -ENOMEM */
int bg_buf_append(struct bg_buf *b, const void *p, size_t n);
int bg_buf_puts(struct bg_buf *b, const char *s);
int bg_buf_printf(struct bg_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Decimal text of v without printf: room for "-9223372036854775808" and
 * a NUL; returns the length written (NUL not counted). */
#define BG_I64_STR 21
size_t bg_i64_str(char out[BG_I64_STR], int64_t v);
int bg_buf_put_i64(struct bg_buf *b, int64_t v); /* 0 or -ENOMEM */
void bg_buf_reset(struct bg_buf *b);		 /* len = 0, keeps memory */
void bg_buf_free(struct bg_buf *b);
/* Detach the storage (caller frees); the buffer becomes empty. */
char *bg_buf_steal(struct bg_buf *b);

#endif
