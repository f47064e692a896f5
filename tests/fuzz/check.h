/* tests/fuzz/check.h - what every fuzz target asserts with: CHECK(cond)
 * aborts naming the file, line and condition (libFuzzer and the replay
 * driver report the input that did it). */
#ifndef BG_TESTS_FUZZ_CHECK_H
#define BG_TESTS_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
