/* client/provider.h - the gate's wakeup provider command (client/
 * provider.c). Not installed. */
#ifndef BG_CLIENT_PROVIDER_H
#define BG_CLIENT_PROVIDER_H

#include <signal.h>
#include <stdbool.h>

struct bg_provider_result {
	int status;	  /* exit status, -1 when killed or not run */
	int signal;	  /* the signal that ended it, 0 if none */
	bool timed_out;	  /* killed after timeout_ms */
	bool stopped;	  /* killed because *stop became non-zero */
	char output[400]; /* last non-empty line of its stdout, printable */
};

/* Run `sh -c cmd` with the caller's environment plus extra_env ("NAME=
 * VALUE" strings, NULL-terminated; they replace variables of the same
 * name), stdin /dev/null, stdout captured, stderr inherited, in its own
 * process group, which is SIGKILLed after timeout_ms or when *stop (may
 * be NULL) becomes non-zero. 0 with *out filled, or -errno when it could
 * not be started. The caller must be single-threaded. */
int bg_provider_run(const char *cmd, const char *const *extra_env,
		    int timeout_ms, const volatile sig_atomic_t *stop,
		    struct bg_provider_result *out);

#endif
