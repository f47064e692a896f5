/* supervisor/lease.h - the worker's registry lease (WIRE 5.1-5.4, 5.8):
 * claimed at start, renewed by the heartbeat, the fencing window every
 * finish asks about, released at exit. It reports upward only through
 * the daemon's hooks (lease_held, lease_renewed). */
#ifndef BG_SUPERVISOR_LEASE_H
#define BG_SUPERVISOR_LEASE_H

#include <stdbool.h>

struct bg_daemon;

enum bg_lease_state {
	BG_LEASE_NONE,
	BG_LEASE_CLAIMING,
	BG_LEASE_WAITING, /* held by another worker: waiting for it */
	BG_LEASE_HELD,
	BG_LEASE_LOST,	    /* the heartbeat found another owner */
	BG_LEASE_RELEASING, /* at exit: the release is in flight, no beat
			       may re-create the lease */
	BG_LEASE_RELEASED,  /* at exit */
};

void bg_lease_start(struct bg_daemon *d);
/* The control connection is (back) up: claim, or beat at once. */
void bg_lease_on_ctl_up(struct bg_daemon *d);
/* The read runs: start the heartbeat (nothing is published before). */
void bg_lease_reader_ready(struct bg_daemon *d);
bool bg_lease_held(const struct bg_daemon *d);
/* DESIGN 6 fencing: may a finish be sent now? */
bool bg_lease_may_finish(const struct bg_daemon *d);
void bg_lease_release(struct bg_daemon *d);
bool bg_lease_released(const struct bg_daemon *d);
void bg_lease_free(struct bg_daemon *d);

#endif
