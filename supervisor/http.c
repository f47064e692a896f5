/* supervisor/http.c - the HTTP endpoint of http.h: a libevent evhttp server
 * on bygated's loop. The listener and every accepted connection are
 * close-on-exec (an evconnlistener with LEV_OPT_CLOSE_ON_EXEC: evhttp's own
 * bind leaves accepted sockets inheritable); requests are bounded in header
 * and body size and time out after 10 s. GET and HEAD, and POST to the
 * webhooks (hook.c); a connection's body limit is the largest webhook's
 * max_body_bytes of the configuration current when it is accepted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "supervisor/daemon.h"
#include "supervisor/hook.h"
#include "supervisor/schedule.h"
#include "supervisor/http.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "supervisor/status.h"

#define HTTP_TIMEOUT_S 10
#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 4096

struct bg_http {
	struct evhttp *server;
};

/* ---- readiness ---- */

static const char *lifecycle(const struct bg_daemon *d)
{
	return d->lifecycle[0] ? d->lifecycle : "active";
}

static bool redis_up(const struct bg_daemon *d)
{
	return d->rd && d->wr && d->ctl && bg_rconn_ready(d->rd) &&
	       bg_rconn_ready(d->wr) && bg_rconn_ready(d->ctl);
}

bool bg_http_consumer_healthy(const struct bg_daemon *d, int64_t now_ms)
{
	if (!d->reader_ready)
		return false;
	int64_t block = d->cfg->block_ms;
	int64_t since = now_ms - d->last_read_issued_ms;
	if (d->read_in_flight)
		return since <=
		       block + d->cfg->redis_command_timeout_ms + 3 * block;
	int cap = d->pool ? bg_schedule_capacity(d) : 0;
	return cap == 0 || since <= 3 * block;
}

/* An eviction drains at once (control.c sets draining), where the
 * reference first stops consuming and reports "evicted" while it waits for
 * its tasks: an evicted worker keeps reporting "evicted" while it drains. */
const char *bg_http_ready_reason(const struct bg_daemon *d, int64_t now_ms)
{
	bool evicted = strcmp(lifecycle(d), "evicted") == 0;
	if (!d->reader_ready)
		return "starting";
	if ((d->draining || d->stopping) && !evicted)
		return "draining";
	if (!redis_up(d))
		return "redis_unavailable";
	if (evicted)
		return "evicted";
	if (strcmp(lifecycle(d), "suspended") == 0)
		return "suspended";
	if (!bg_http_consumer_healthy(d, now_ms))
		return "consumer_stalled";
	if (bg_http_unserved_count(d) > 0)
		return "degraded";
	return "serving";
}

int bg_http_unserved_count(const struct bg_daemon *d)
{
	int n = 0;
	for (int i = 0; i < d->cfg->n_agent_types; i++)
		n += bg_control_unserved(d, i);
	return n;
}

/* 200: serving, or degraded with at least one agent type served. */
static bool ready_for(const struct bg_daemon *d, const char *reason)
{
	if (strcmp(reason, "serving") == 0)
		return true;
	return strcmp(reason, "degraded") == 0 &&
	       bg_http_unserved_count(d) < d->cfg->n_agent_types;
}

/* {"<agent type>": "<why>", ...} of the types that cannot be served. */
static json_t *unserved_types(const struct bg_daemon *d)
{
	json_t *o = json_object();
	for (int i = 0; o && i < d->cfg->n_agent_types; i++) {
		const char *why = NULL;
		if (!bg_control_unserved(d, i))
			continue;
		bg_pool_type_down(d->pool, i, &why);
		json_object_set_new(o, d->cfg->agent_types[i].name,
				    json_string(why ? why : "unknown"));
	}
	return o;
}

/* ---- handlers ---- */

static void reply_text(struct evhttp_request *req, int code, const char *s)
{
	bg_http_reply(req, code, "text/plain; charset=utf-8", s, strlen(s));
}

static void serve_readyz(struct bg_daemon *d, struct evhttp_request *req)
{
	int64_t now = bg_mono_ms();
	const char *reason = bg_http_ready_reason(d, now);
	bool ready = ready_for(d, reason);
	json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:b, s:I}", "ready", ready,
			      "reason", reason, "worker_id", d->worker_id,
			      "admin_lifecycle", lifecycle(d),
			      "consumer_healthy",
			      bg_http_consumer_healthy(d, now), "uptime_ms",
			      (json_int_t)(now - d->started_mono_ms));
	/* Beyond WIRE 5.7's body only while an agent type is unserved. */
	if (o && bg_http_unserved_count(d) > 0)
		json_object_set_new(o, "unserved_agent_types",
				    unserved_types(d));
	char *s = o ? json_dumps(o, 0) : NULL;
	json_decref(o);
	if (s == NULL) {
		reply_text(req, 500, "cannot encode the readiness\n");
		return;
	}
	bg_http_reply(req, ready ? 200 : 503, "application/json", s, strlen(s));
	free(s);
}

static void serve_livez(struct bg_daemon *d, struct evhttp_request *req)
{
	(void)d;
	reply_text(req, 200, "ok\n");
}

static void serve_metrics(struct bg_daemon *d, struct evhttp_request *req)
{
	struct bg_buf out = { 0 };
	if (bg_metrics_render(d, &out) != 0)
		reply_text(req, 500, "out of memory\n");
	else
		bg_http_reply(req, 200,
			      "text/plain; version=0.0.4; charset=utf-8", out.p,
			      out.len);
	bg_buf_free(&out);
}

static void serve_status(struct bg_daemon *d, struct evhttp_request *req)
{
	struct bg_buf out = { 0 };
	if (bg_status_render(d, &out) != 0)
		reply_text(req, 500, "out of memory\n");
	else
		bg_http_reply(req, 200, "application/json", out.p, out.len);
	bg_buf_free(&out);
}

static const struct route {
	const char *path;
	void (*serve)(struct bg_daemon *d, struct evhttp_request *req);
} routes[] = {
	{ "/readyz", serve_readyz },
	{ "/livez", serve_livez },
	{ "/metrics", serve_metrics },
	{ "/status", serve_status },
};

/* Unknown path: 404; known path, method other than GET or HEAD: 405.
 * BG_HOOK_PATH... is hook.c's. */
static void on_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	size_t hook = strlen(BG_HOOK_PATH);
	if (path && strncmp(path, BG_HOOK_PATH, hook) == 0) {
		bg_hook_serve(arg, req, path + hook);
		return;
	}
	for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]);
	     i++) {
		if (strcmp(path, routes[i].path) != 0)
			continue;
		enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
			evhttp_add_header(
				evhttp_request_get_output_headers(req), "Allow",
				"GET, HEAD");
			reply_text(req, 405, "method not allowed\n");
			return;
		}
		routes[i].serve(arg, req);
		return;
	}
	reply_text(req, 404, "not found\n");
}

/* ---- start and stop ---- */

/* evhttp's bufferevent for a connection it accepts (what it would make
 * itself); first the connection's body limit from the current webhooks,
 * which evhttp copies into the connection right after this returns. */
static struct bufferevent *new_connection(struct event_base *base, void *arg)
{
	struct bg_daemon *d = arg;
	evhttp_set_max_body_size(d->http->server,
				 bg_hook_body_cap(d, HTTP_MAX_BODY));
	return bufferevent_socket_new(base, -1, 0);
}

static struct evconnlistener *listen_on(struct bg_daemon *d)
{
	const struct bg_config *cfg = d->cfg;
	char port[16];
	snprintf(port, sizeof(port), "%d", cfg->http_port);
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC,
					 .ai_socktype = SOCK_STREAM,
					 .ai_flags = EVUTIL_AI_PASSIVE };
	struct evutil_addrinfo *ai = NULL;
	int rc = evutil_getaddrinfo(cfg->http_bind, port, &hints, &ai);
	if (rc != 0) {
		bg_error("HTTP listener: getaddrinfo(%s) failed: %s",
			 cfg->http_bind, evutil_gai_strerror(rc));
		errno = EINVAL;
		return NULL;
	}
	struct evconnlistener *l = evconnlistener_new_bind(
		d->base, NULL, NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
			LEV_OPT_REUSEABLE,
		64, ai->ai_addr, (int)ai->ai_addrlen);
	int err = errno;
	evutil_freeaddrinfo(ai);
	if (l == NULL)
		bg_error("HTTP listener: bind(%s:%d) failed: %s",
			 cfg->http_bind, cfg->http_port, strerror(err));
	errno = err;
	return l;
}

int bg_http_start(struct bg_daemon *d)
{
	if (d->http != NULL)
		return 0;
	if (d->cfg->http_port == 0) {
		/* a body cap above 0 means a webhook is configured */
		if (bg_hook_body_cap(d, 0) > 0)
			bg_warn("triggers.webhooks are configured but "
				"http.port is 0: no webhook is served");
		return 0;
	}
	struct bg_http *h = calloc(1, sizeof(*h));
	struct evconnlistener *l = h ? listen_on(d) : NULL;
	int err = h ? errno : ENOMEM;
	if (l == NULL) {
		free(h);
		return -(err ? err : EINVAL);
	}
	h->server = evhttp_new(d->base);
	if (h->server == NULL || evhttp_bind_listener(h->server, l) == NULL) {
		bg_error("HTTP listener: evhttp set-up failed on %s:%d",
			 d->cfg->http_bind, d->cfg->http_port);
		if (h->server)
			evhttp_free(h->server);
		evconnlistener_free(l);
		free(h);
		return -ENOMEM;
	}
	evhttp_set_allowed_methods(
		h->server, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
				   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_max_headers_size(h->server, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->server, bg_hook_body_cap(d, HTTP_MAX_BODY));
	evhttp_set_timeout(h->server, HTTP_TIMEOUT_S);
	evhttp_set_gencb(h->server, on_request, d);
	evhttp_set_bevcb(h->server, new_connection, d);
	d->http = h;
	if (bg_metrics_start(d) != 0)
		bg_warn("metrics: cannot start the pending-entries refresh "
			"(out of memory)");
	bg_info("HTTP listener on %s:%d (/readyz, /livez, /metrics, /status, "
		"/hooks/<name>)",
		d->cfg->http_bind, d->cfg->http_port);
	return 0;
}

void bg_http_stop(struct bg_daemon *d)
{
	bg_metrics_stop(d->metrics);
	if (d->http == NULL)
		return;
	evhttp_free(d->http->server);
	free(d->http);
	d->http = NULL;
}
