/* child/memwatch.c - refused allocations: the flag of this process and the
 * one shared with the child (bg_child_mem_refused_shared, set by
 * taskproc.c), and bygate-child's allocator wrappers: in a task process an
 * allocation refused by the memory limit (RLIMIT_AS) is noted for the
 * child, which explains the task's end as RESOURCE_LIMIT (taskproc.c).
 * Plugins allocate through them too: the executable's malloc comes first
 * in symbol lookup. Sanitizer builds keep the sanitizer's allocator. */
#include "child/child.h"
#include "child/memwatch.h"

#if defined(__SANITIZE_ADDRESS__)
#define BG_NO_MEMWATCH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BG_NO_MEMWATCH 1
#endif
#endif

static bool g_mem_refused;
uint32_t *bg_child_mem_refused_shared;

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

#ifndef BG_NO_MEMWATCH
BG_MEMWATCH_WRAPPERS(bg_child_note_mem_refused)
#endif
