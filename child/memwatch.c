/* child/memwatch.c - the child's allocator. Refused allocations: the flag
 * of this process and the
 * one shared with the child (bg_child_mem_refused_shared, set by
 * taskproc.c), and bygate-child's allocator wrappers: in a task process an
 * allocation refused by the memory limit (RLIMIT_AS) is noted for the
 * child, which explains the task's end as RESOURCE_LIMIT (taskproc.c).
 * And freed memory is zeroed. Plugins allocate through these too: the
 * executable's malloc comes first in symbol lookup. Sanitizer builds keep
 * the sanitizer's allocator. */
#include "child/child.h"
#include "child/memwatch.h"

#include <malloc.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define BG_NO_MEMWATCH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BG_NO_MEMWATCH 1
#endif
#endif

static bool g_mem_refused;
uint32_t *bg_child_mem_refused_shared;
bool bg_child_no_scrub;

void bg_child_note_mem_refused(void)
{
	g_mem_refused = true;
	if (bg_child_mem_refused_shared)
		__atomic_store_n(bg_child_mem_refused_shared, 1,
				 __ATOMIC_RELAXED);
}

bool bg_child_mem_refused(void)
{
	return g_mem_refused;
}

#ifdef BG_NO_MEMWATCH
/* Sanitizer builds keep AddressSanitizer's allocator: have it zero what
 * is freed too (the defaults; ASAN_OPTIONS may still override them). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "max_free_fill_size=2147483647:free_fill_byte=0";
}
#else
extern void __libc_free(void *p);

BG_MEMWATCH_ALLOC(bg_child_note_mem_refused)

/* Freed memory is zeroed: the child reads other sessions' tasks and output
 * (and runs trusted tasks itself), and every task process it forks
 * inherits its heap, free chunks included. */
void free(void *p)
{
	if (p && !bg_child_no_scrub)
		explicit_bzero(p, malloc_usable_size(p));
	__libc_free(p);
}

/* Growing in place keeps the block; moving it zeroes the old one (which
 * the C library's realloc would free as it was). */
void *realloc(void *p, size_t n)
{
	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	size_t old = malloc_usable_size(p);
	if (n <= old)
		return p;
	void *q = malloc(n);
	if (q) {
		memcpy(q, p, old);
		free(p);
	}
	return q;
}
#endif
