/* supervisor/redis_node.h - one asynchronous hiredis connection to one Redis
 * server on bygated's libevent loop (DESIGN 3): connect with AUTH / SELECT /
 * CLIENT SETNAME, FD_CLOEXEC and TCP keepalive on every (re)connect, a
 * deadline per request (hiredis 0.14 has none: an expired deadline drops
 * the connection), reconnection with capped exponential back-off, and the
 * requests' bytes written once per loop turn (redis_events.h).
 *
 * The modules use it through redis.h (a bg_rconn is one node, or a Redis
 * Cluster of them, redis_cluster.h); each node hands its `owner` to every
 * reply and state callback, so that callers see the bg_rconn they used.
 * The functions are those of redis.h, for one node. */
#ifndef BG_SUPERVISOR_REDIS_NODE_H
#define BG_SUPERVISOR_REDIS_NODE_H

#include "supervisor/redis.h"

struct bg_rnode;

struct bg_rnode *bg_rnode_new(struct event_base *base, struct bg_rconn *owner,
			      const struct bg_rconn_opts *opts,
			      bg_rconn_state_fn on_state, void *arg);
void bg_rnode_start(struct bg_rnode *c);
void bg_rnode_drop(struct bg_rnode *c, const char *why);
void bg_rnode_free(struct bg_rnode *c);
void bg_rnode_set_timeouts(struct bg_rnode *c, int connect_ms, int command_ms,
			   int reconnect_max_ms);
bool bg_rnode_ready(const struct bg_rnode *c);
const char *bg_rnode_role(const struct bg_rnode *c);
long long bg_rnode_client_id(const struct bg_rnode *c);
size_t bg_rnode_pending(const struct bg_rnode *c);
size_t bg_rnode_pending_bytes(const struct bg_rnode *c);
uint64_t bg_rnode_reconnects(const struct bg_rnode *c);
bool bg_rnode_flush(struct bg_rnode *c);
int bg_rnode_cmd(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
		 int extra_ms, int argc, const char **argv, const size_t *lens);
int bg_rnode_cmdv(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
		  int extra_ms, const char *const *args);
int bg_rnode_cmd_entries(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
			 int extra_ms, int argc, const char **argv,
			 const size_t *lens);
void bg_rnode_set_value_hook(struct bg_rnode *c,
			     const struct bg_rconn_value_hook *hook);
/* The host and port it connects to. */
const char *bg_rnode_host(const struct bg_rnode *c);
int bg_rnode_port(const struct bg_rnode *c);

#endif
