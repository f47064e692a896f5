/* supervisor/redis_events.c - hiredis's event hooks on the libevent loop:
 * a persistent read event, writes at the loop turn's end (redis_events.h). */
#include "supervisor/redis_events.h"

#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

struct redis_events {
	redisAsyncContext *ac;
	struct event *rev; /* EV_READ | EV_PERSIST */
	struct event *wev; /* EV_WRITE | EV_PERSIST, armed only when needed */
	bool reading;	   /* rev added */
	bool wev_armed;	   /* wev added */
	bool want_write;   /* hiredis asked to write (its addWrite) */
	bool *freed;	   /* set by cleanup during a flush */
};

static bool connected(const redisAsyncContext *ac)
{
	return (ac->c.flags & REDIS_CONNECTED) != 0;
}

static void arm_write(struct redis_events *e, bool on)
{
	if (on == e->wev_armed)
		return;
	if (on)
		event_add(e->wev, NULL);
	else
		event_del(e->wev);
	e->wev_armed = on;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct redis_events *e = arg;
	redisAsyncHandleRead(e->ac);
}

/* Writable: while connecting, hiredis completes the connect (and writes
 * the set-up commands). Once connected, the socket has room again: the
 * bytes wait for the turn's flush (never before the turn's commit). */
static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct redis_events *e = arg;
	if (!connected(e->ac)) {
		redisAsyncHandleWrite(e->ac);
		return;
	}
	arm_write(e, false);
}

static void add_read(void *priv)
{
	struct redis_events *e = priv;
	if (!e->reading)
		event_add(e->rev, NULL);
	e->reading = true;
}

static void del_read(void *priv)
{
	struct redis_events *e = priv;
	if (e->reading)
		event_del(e->rev);
	e->reading = false;
}

/* hiredis queued bytes: nothing to do until the flush, but for a connect
 * in progress, which only the write event can complete. */
static void add_write(void *priv)
{
	struct redis_events *e = priv;
	e->want_write = true;
	if (!connected(e->ac))
		arm_write(e, true);
}

static void del_write(void *priv)
{
	struct redis_events *e = priv;
	e->want_write = false;
	arm_write(e, false);
}

static void cleanup(void *priv)
{
	struct redis_events *e = priv;
	if (e->freed)
		*e->freed = true;
	event_free(e->rev);
	event_free(e->wev);
	free(e);
}

int bg_redis_events_attach(redisAsyncContext *ac, struct event_base *base)
{
	if (ac->ev.data != NULL)
		return -EEXIST;
	struct redis_events *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->ac = ac;
	e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, e);
	e->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, on_write, e);
	if (e->rev == NULL || e->wev == NULL) {
		if (e->rev)
			event_free(e->rev);
		if (e->wev)
			event_free(e->wev);
		free(e);
		return -ENOMEM;
	}
	ac->ev.addRead = add_read;
	ac->ev.delRead = del_read;
	ac->ev.addWrite = add_write;
	ac->ev.delWrite = del_write;
	ac->ev.cleanup = cleanup;
	ac->ev.data = e;
	add_read(e);
	arm_write(e, true); /* the connect completes when writable */
	return 0;
}

bool bg_redis_events_flush(redisAsyncContext *ac)
{
	struct redis_events *e = ac->ev.data;
	if (e == NULL || !e->want_write || !connected(ac))
		return false;
	bool freed = false;
	e->freed = &freed;
	/* One write; then hiredis calls del_write when all went out, else
	 * add_write; a write error frees ac (and e: cleanup). */
	redisAsyncHandleWrite(ac);
	if (freed)
		return true;
	e->freed = NULL;
	if (e->want_write)
		arm_write(e, true); /* the socket is full: wait for room */
	return false;
}

bool bg_redis_events_pending(const redisAsyncContext *ac)
{
	const struct redis_events *e = ac->ev.data;
	return e != NULL && e->want_write;
}
