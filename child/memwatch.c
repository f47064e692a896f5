/* child/memwatch.c - bygate-child's allocator wrappers: in a task process an
 * allocation refused by the memory limit (RLIMIT_AS) is noted for the
 * child, which explains the task's end as RESOURCE_LIMIT (taskproc.c).
 * Plugins allocate through them too: the executable's malloc comes first
 * in symbol lookup. Sanitizer builds keep the sanitizer's allocator. */
#include "child/child.h"

#if !defined(__SANITIZE_ADDRESS__) && !defined(BG_NO_MEMWATCH)
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BG_NO_MEMWATCH 1
#endif
#endif
#endif

#if !defined(__SANITIZE_ADDRESS__) && !defined(BG_NO_MEMWATCH)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static void *note(void *p, size_t n)
{
	if (p == NULL && n)
		bg_child_note_mem_refused();
	return p;
}

void *malloc(size_t n)
{
	return note(__libc_malloc(n), n);
}

void *calloc(size_t n, size_t size)
{
	return note(__libc_calloc(n, size), n * size);
}

void *realloc(void *p, size_t n)
{
	return note(__libc_realloc(p, n), n);
}
#endif
