/* tests/plugins/probe.h - what the probe plugins (sandbox.c, hostile.c)
 * answer: "ok" or the errno's name, which the integration tests compare. */
#ifndef BG_TESTS_PROBE_H
#define BG_TESTS_PROBE_H

#include <string.h>

static inline const char *outcome(int err)
{
	if (err == 0)
		return "ok";
	const char *name = strerrorname_np(err);
	return name ? name : "unknown errno";
}

#endif
