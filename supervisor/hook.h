/* supervisor/hook.h - webhook triggers on bygated's HTTP port
 * (docs/triggers-webhooks.md): POST /hooks/<name> of a webhook of the
 * current configuration is checked (size, signature, idempotency header,
 * content) and fired once through bg_trigger_fire (triggers.h); the
 * answer waits for the fire. */
#ifndef BG_SUPERVISOR_HOOK_H
#define BG_SUPERVISOR_HOOK_H

#include <stdint.h>

struct bg_daemon;
struct evhttp_request;

#define BG_HOOK_PATH "/hooks/"

/* Answer req, whose path is BG_HOOK_PATH followed by name: at once when it
 * is refused, else from the fire's callback. A client that leaves before
 * then gets nothing; the fire goes on (at most once, as any fire). */
void bg_hook_serve(struct bg_daemon *d, struct evhttp_request *req,
		   const char *name);

/* The body limit of a new HTTP connection: the largest max_body_bytes of
 * the current configuration's webhooks, at least floor. A body over it is
 * refused by evhttp as it arrives (413), never buffered whole. */
int64_t bg_hook_body_cap(const struct bg_daemon *d, int64_t floor);

#endif
