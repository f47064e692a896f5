/* supervisor/notify.c - systemd Type=notify status (sd_notify: a no-op
 * without NOTIFY_SOCKET). */
#include <systemd/sd-daemon.h>

#include "supervisor/daemon.h"

void bg_notify_status(struct bg_daemon *d, const char *state)
{
	struct bg_pool_stats ps;
	bg_pool_get_stats(d->pool, &ps);
	sd_notifyf(0,
		   "%sSTATUS=%s: %d children (%d busy), %d tasks in flight; "
		   "completed %llu, failed %llu, dead-lettered %llu",
		   state ? state : "", d->lifecycle,
		   bg_pool_alive_count(d->pool), bg_pool_busy_count(d->pool),
		   d->n_tasks, (unsigned long long)d->n_completed,
		   (unsigned long long)d->n_failed,
		   (unsigned long long)d->n_deadlettered);
}
