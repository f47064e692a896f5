/* child/preload/memwatch.c - libbygate-memwatch.so, preloaded into the exec
 * programs of agent types with a memory limit (sandbox.memory_mb): when
 * the C library's allocator is refused memory, it says so once on stderr,
 * where bygate-child reads it and explains the task's failure as
 * RESOURCE_LIMIT (child/exec.c). It changes nothing else: the allocation
 * still fails as it would have. Programs that do not allocate through
 * malloc (static binaries, Go) are not seen; their failures stay plain. */
#include <unistd.h>

#include "child/memwatch.h"

static int said;

static void say_once(void)
{
	if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
		ssize_t w = write(2, BG_MEMWATCH_MARKER "\n",
				  sizeof(BG_MEMWATCH_MARKER));
		(void)w;
	}
}

BG_MEMWATCH_WRAPPERS(say_once)
