/* supervisor/lmdb_check.c - one place where a refused LMDB write is
 * counted and said (state/state.h returns codes; only the daemon logs).
 * The entry stays pending in Redis whatever LMDB says: a lost journal or
 * mirror line costs recovery time, never a task. */
#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"

int bg_lmdb_check(struct bg_daemon *d, int rc, const char *what)
{
	if (rc == 0)
		return 0;
	d->state_errors++;
	if (d->state_errors == 1 || d->state_errors % 1000 == 0)
		bg_error("LMDB %s failed (%llu LMDB errors so far): %s", what,
			 (unsigned long long)d->state_errors,
			 bg_state_errmsg(d->state));
	return rc;
}
