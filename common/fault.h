/* common/fault.h - named fault-injection points (STYLE 7). A test sets
 * BYGATE_FAULT=<point>[:<n>] in bygated's environment; the n-th time (1st
 * by default) the code passes bg_fault_hit("<point>") it returns true and
 * the caller acts out the failure (usually _exit(BG_FAULT_EXIT), the
 * closest thing to a kill -9 at exactly that line). Without the variable
 * every call is one branch on a cached flag. The points are listed in
 * docs/testing.md. */
#ifndef BG_COMMON_FAULT_H
#define BG_COMMON_FAULT_H

#include <stdbool.h>

#define BG_FAULT_EXIT 86

bool bg_fault_hit(const char *point);

#endif
