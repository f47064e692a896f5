/* supervisor/sandbox.h - what the kernel provides for the children's
 * sandbox (docs/security.md), checked once at start: bygated logs what
 * each agent type gets, warns about the trusted profile and the host
 * network, and refuses to start when a protection the configuration asks
 * for is missing, unless sandbox.require = false. `bygated -T` prints the
 * same facts as comments. */
#ifndef BG_SUPERVISOR_SANDBOX_H
#define BG_SUPERVISOR_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "conf/config.h"

struct bg_sandbox_support {
	int landlock_abi; /* >= 1, or a negative errno (none) */
	bool seccomp;	  /* seccomp filters (the base filter, networks) */
	bool privileged;  /* bygated is root: pool user, PID namespaces */
};

void bg_sandbox_probe(bool privileged, struct bg_sandbox_support *out);

/* Log the sandbox of every agent type and what is missing. 0, or -1 when
 * something is missing and sandbox.require is true (err says what). */
int bg_sandbox_report(const struct bg_config *cfg,
		      const struct bg_sandbox_support *s, char *err,
		      size_t errlen);

/* The kernel facts as `# ` comment lines (bygated -T). */
void bg_sandbox_print(FILE *f, const struct bg_sandbox_support *s);

#endif
