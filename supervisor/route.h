/* supervisor/route.h - call_agent's route policies (WIRE 7, route.c). */
#ifndef BG_SUPERVISOR_ROUTE_H
#define BG_SUPERVISOR_ROUTE_H

#include <jansson.h>

struct bg_daemon;
struct bg_job;

/* call_agent with its route (WIRE 7); answers the handler's call `id`
 * when decided (at once, or after the online check or WAKE_AND_WAIT). */
void bg_route_call_agent(struct bg_daemon *d, struct bg_job *t, const char *id,
			 json_t *args);
/* At exit: the routes still waiting. */
void bg_route_free_all(struct bg_daemon *d);

#endif
