/* supervisor/calls.h - a handler's operations (calls.c). */
#ifndef BG_SUPERVISOR_CALLS_H
#define BG_SUPERVISOR_CALLS_H

#include <stddef.h>
#include <stdint.h>

struct bg_daemon;
struct bg_job;

/* A BG_REC_CALL record from t's child: the operation runs and its REPLY
 * goes down the ring (now, or when its reads or route are answered). */
void bg_calls_take(struct bg_daemon *d, struct bg_job *t, const uint8_t *p,
		   size_t len);

#endif
