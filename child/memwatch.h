/* child/memwatch.h - how a refused allocation is noticed: bygate-child's own
 * allocator wrappers (memwatch.c, task processes of plugins) and
 * libbygate-memwatch.so, preloaded into exec programs, which says so on
 * the program's stderr (preload/memwatch.c). */
#ifndef BG_CHILD_MEMWATCH_H
#define BG_CHILD_MEMWATCH_H

#include <stddef.h>

/* The stderr line (without its newline) of a program whose allocation was
 * refused. */
#define BG_MEMWATCH_MARKER                                                     \
	"bygate-memwatch: an allocation was refused (memory limit)"
/* The preload library, next to the bygate-child binary. */
#define BG_MEMWATCH_LIB "libbygate-memwatch.so"

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

/* malloc and calloc over the C library's, calling refused() when one
 * returns NULL for a non-zero size; nothing else changes. */
#define BG_MEMWATCH_ALLOC(refused)                                             \
	static void *bg_memwatch_note(void *p, size_t n)                       \
	{                                                                      \
		if (p == NULL && n)                                            \
			refused();                                             \
		return p;                                                      \
	}                                                                      \
	void *malloc(size_t n)                                                 \
	{                                                                      \
		return bg_memwatch_note(__libc_malloc(n), n);                  \
	}                                                                      \
	void *calloc(size_t n, size_t size)                                    \
	{                                                                      \
		return bg_memwatch_note(__libc_calloc(n, size), n * size);     \
	}

/* The same and realloc (the preload library). */
#define BG_MEMWATCH_WRAPPERS(refused)                                          \
	BG_MEMWATCH_ALLOC(refused)                                             \
	void *realloc(void *p, size_t n)                                       \
	{                                                                      \
		return bg_memwatch_note(__libc_realloc(p, n), n);              \
	}

#endif
