/* supervisor/route_int.h - a call_agent route in flight, shared by the
 * route's plumbing (route_io.c: Redis I/O, the online check, the outcomes)
 * and its steps (route.c); nothing else includes it. */
#ifndef BG_SUPERVISOR_ROUTE_INT_H
#define BG_SUPERVISOR_ROUTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "supervisor/redis.h"

struct bg_daemon;
struct bg_job;
struct bg_route_intent;
struct event;

/* The route status of a delivery to a configured fallback type. */
#define ROUTE_FALLBACK "FALLBACK_TO_OTHER_AGENT_TYPE"

struct route;
typedef void (*route_fn)(struct route *r, struct bg_job *t, redisReply *rep);
typedef void (*online_fn)(struct route *r, struct bg_job *t, bool online);

struct route {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id; /* the run that asked (a re-run or retry of the task
			    must not receive this reply) */
	char id[32];
	json_t *args;
	char target[160];
	char policy[32];
	char region[160];
	int64_t priority;
	int64_t timeout_ms;    /* as given (0 = default), capped */
	int64_t deadline_ms;   /* WAKE_AND_WAIT, monotonic */
	char selected[160];    /* a fallback agent type */
	char message_id[32];   /* minted at the call (the WakeupRequest */
	char execution_id[32]; /* and the records carry them) */
	char last[48];	       /* the last decision entry read */
	route_fn next;	       /* continuation of the command in flight */
	online_fn then;	       /* continuation of the online check */
	bool in_flight;	       /* a reply is due to on_route */
	struct event *timer;
	struct route *live_prev, *live_next; /* in `live` */
};

void bg_route_link(struct route *r);

void bg_route_free(struct route *r);

/* The running attempt that asked, or NULL. */
struct bg_job *bg_route_job(const struct route *r);

/* The route cannot be decided (Redis unavailable, no memory): an error
 * reply, nothing written. */
void bg_route_fail(struct route *r, struct bg_job *t, const char *code,
		   const char *msg);

/* The route's request, to agent type `type`. */
void bg_route_request_of(const struct route *r, const char *type,
			 struct bg_outbox_req *rq);

/* REJECT (record_failed_route_decision): the callee's FAILED record into
 * the outbox and the error to the handler. */
void bg_route_reject(struct route *r, struct bg_job *t, const char *code,
		     const char *msg);

void bg_route_unavailable(struct route *r, struct bg_job *t, const char *fmt);

/* Send a read on the control connection; next runs with its reply. */
void bg_route_send(struct route *r, struct bg_job *t, route_fn next, int argc,
		   const char **argv);

/* `cmd <the key of (kind, id)>`, e.g. GET of an operator's value. */
void bg_route_read(struct route *r, struct bg_job *t, route_fn next,
		   const char *cmd, enum bg_key_kind kind, struct bg_str id);

/* A GET reply as the WIRE 7 readers take it (objects only). */
json_t *bg_route_reply_object(const redisReply *rep);

void bg_route_check_online(struct route *r, struct bg_job *t, const char *type,
			   online_fn then);

/* DELIVER_NOW, WAIT_AND_DELIVER, FALLBACK_TO_OTHER_AGENT_TYPE: the
 * callee's record and ASK to `type`'s control stream. */
void bg_route_deliver(struct route *r, struct bg_job *t, const char *status,
		      const char *type);

/* WAKE_AND_QUEUE / QUEUE_ONLY (QUEUE_PENDING): instead of the ASK, the
 * callee's record (stream_name = the pending stream), the WakeupRequest
 * (wake) and the PendingDelivery the delivery gate later turns into the
 * ASK (`bygate gate`, `bygate dispatch`). */
void bg_route_queue(struct route *r, struct bg_job *t, bool wake);

/* The ASK and the WakeupRequest (wake) and/or PendingDelivery (pending)
 * JSON of the route. 0 or -1. */
int bg_route_records(struct route *r, struct bg_job *t,
		     struct bg_outbox_req *rq, struct bg_buf *ask,
		     struct bg_buf *wake, struct bg_buf *pending);

#endif
