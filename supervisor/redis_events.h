/* supervisor/redis_events.h - hiredis's event hooks on bygated's libevent
 * loop, in place of hiredis's stock adapter, so that a connection costs no
 * epoll_ctl per request: the read event stays armed (EV_PERSIST) for the
 * connection's life, and a request's bytes leave in one write per loop turn
 * at bg_redis_events_flush (the turn's end), not on a write event armed and
 * disarmed per batch. The write event is armed only while connecting and
 * while the socket is full; when it fires, the bytes still wait for the
 * next flush, so nothing is ever written before the turn's end (after its
 * LMDB commit, DESIGN 3: a finish is journaled before it is sent). */
#ifndef BG_SUPERVISOR_REDIS_EVENTS_H
#define BG_SUPERVISOR_REDIS_EVENTS_H

#include <stdbool.h>

#include <hiredis/async.h>

struct event_base;

/* Attach `ac` (fresh from redisAsyncConnect, nothing attached yet) to
 * `base`. 0; -EEXIST when something is attached; -ENOMEM. The events are
 * freed by hiredis's cleanup hook when the context is freed. */
int bg_redis_events_attach(redisAsyncContext *ac, struct event_base *base);

/* Write what hiredis holds for `ac` (one write system call when the socket
 * takes it all; else the write event is armed and the rest waits for the
 * next flush). Only once connected: the write event serves the connect.
 * Returns true when `ac` was freed meanwhile (a write error disconnected
 * it: its callbacks have run with NULL replies); the caller must then not
 * touch it. Cheap when there is nothing to write. */
bool bg_redis_events_flush(redisAsyncContext *ac);

/* Whether hiredis holds bytes for `ac` not yet written. */
bool bg_redis_events_pending(const redisAsyncContext *ac);

#endif
