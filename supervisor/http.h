/* supervisor/http.h - bygated's HTTP endpoint on the daemon's event loop:
 * GET /readyz (WIRE 5.7 body, DESIGN 8 reasons), GET /livez,
 * GET /metrics (Prometheus text), GET /status (status.h: bygate top), and POST /hooks/<name> of the configured
 * webhooks (hook.h). Listens on http.bind:http.port, loopback by default,
 * only when http.port is not 0. */
#ifndef BG_SUPERVISOR_HTTP_H
#define BG_SUPERVISOR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bg_daemon;
struct evhttp_request;

/* Bind and serve on d->base (stored in d->http) and start the metrics'
 * pending-entries refresh. 0 when listening or when http.port is 0; else
 * logs the failed call with the address and returns a negative errno. */
int bg_http_start(struct bg_daemon *d);
/* Close the listener and its connections, stop the metrics refresh;
 * before event_base_free. Idempotent. */
void bg_http_stop(struct bg_daemon *d);

/* Send req's reply: code, the Content-Type, no caching, the body
 * (http_reply.c). */
void bg_http_reply(struct evhttp_request *req, int code, const char *type,
		   const char *body, size_t len);

/* The /readyz decision (WIRE 5.7 with DESIGN 8's ranking): "serving" when
 * ready, else the first of starting, draining, redis_unavailable, evicted,
 * suspended, consumer_stalled, degraded (an agent type cannot be served:
 * the body's unserved_agent_types names each with the reason; 200 while
 * another type is served, 503 when none is). now_ms is monotonic. */
const char *bg_http_ready_reason(const struct bg_daemon *d, int64_t now_ms);
/* Agent types whose handler cannot be started here (control.c). */
int bg_http_unserved_count(const struct bg_daemon *d);
/* The read loop is alive: a read is in flight within its deadline, or
 * none is needed (no free capacity), or one was issued within three block
 * periods. */
bool bg_http_consumer_healthy(const struct bg_daemon *d, int64_t now_ms);

#endif
