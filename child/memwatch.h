/* child/memwatch.h - how a refused allocation is noticed: bygate-child's own
 * allocator wrappers (memwatch.c, task processes of plugins) and the
 * line libbygate-memwatch.so writes to an exec program's stderr
 * (preload/memwatch.c). */
#ifndef BG_CHILD_MEMWATCH_H
#define BG_CHILD_MEMWATCH_H

/* The stderr line (without its newline) of a program whose allocation was
 * refused. */
#define BG_MEMWATCH_MARKER "bygate-memwatch: an allocation was refused (memory limit)"
/* The preload library, next to the bygate-child binary. */
#define BG_MEMWATCH_LIB "libbygate-memwatch.so"

#endif
