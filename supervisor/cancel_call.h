/* supervisor/cancel_call.h - the live handler operations on other
 * executions and on the fleet: cancel_call (cancel_call.c) and
 * agent_types_served (served.c). */
#ifndef BG_SUPERVISOR_CANCEL_CALL_H
#define BG_SUPERVISOR_CANCEL_CALL_H

#include <jansson.h>

struct bg_daemon;
struct bg_job;

/* cancel_call(args: message_id, force?, reason?) of t's handler, call
 * `id`: the execution of message_id in t's session and its sub-tree are
 * cancelled as by a client's cancel_task (WIRE 6.10); answered
 * {"status":"CANCEL_REQUESTED","cancelled_count":N} or
 * {"status":"ALREADY_FINISHED"}, or an error (NOT_FOUND, ...). */
void bg_cancel_call(struct bg_daemon *d, struct bg_job *t, const char *id,
		    json_t *args);

/* agent_types_served(args: agent_types, an array of at most 1000 names)
 * of t's handler, call `id`: {"unserved": [names...]}, the names no
 * online worker serves (members and leases, WIRE 5.2: what a FAIL_FAST
 * call_agent checks), those this bygated serves counting as served. */
void bg_served_check(struct bg_daemon *d, struct bg_job *t, const char *id,
		     json_t *args);

#endif
