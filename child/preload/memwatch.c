/* child/preload/memwatch.c - libbygate-memwatch.so, preloaded into the exec
 * programs of agent types with a memory limit (sandbox.memory_mb): when
 * the C library's allocator is refused memory, it says so once on stderr,
 * where bygate-child reads it and explains the task's failure as
 * RESOURCE_LIMIT (child/exec.c). It changes nothing else: the allocation
 * still fails as it would have. Programs that do not allocate through
 * malloc (static binaries, Go) are not seen; their failures stay plain. */
#include <stddef.h>
#include <unistd.h>

#include "child/memwatch.h"

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static int said;

static void *note(void *p, size_t n)
{
	if (p == NULL && n && !__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
		ssize_t w = write(2, BG_MEMWATCH_MARKER "\n",
				  sizeof(BG_MEMWATCH_MARKER));
		(void)w;
	}
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
