/* common/waitstatus.c - common/waitstatus.h. */
#include "common/waitstatus.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

void bg_wait_status_text(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "was killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "ended with wait status %d", status);
}
