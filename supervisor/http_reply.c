/* supervisor/http_reply.c - the one way bygated's HTTP endpoints answer
 * (http.h bg_http_reply), below both http.c and hook.c so that neither
 * calls the other back. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "supervisor/http.h"

void bg_http_reply(struct evhttp_request *req, int code, const char *type,
		   const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, code, NULL, NULL);
}
