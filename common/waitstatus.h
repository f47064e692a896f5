/* common/waitstatus.h - one wording of how a process ended, for bygated's
 * log and records and the child's (the tests read it: "was killed by
 * signal 9 (Killed)"). */
#ifndef BG_COMMON_WAITSTATUS_H
#define BG_COMMON_WAITSTATUS_H

#include <stddef.h>

/* "exited with status N", "was killed by signal N (name)" or "ended with
 * wait status N" for a waitpid() status, into buf (n bytes). */
void bg_wait_status_text(int status, char *buf, size_t n);

#endif
