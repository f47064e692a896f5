/* supervisor/redis.h - one of bygated's asynchronous Redis connections
 * (read, write, control) on its libevent loop (DESIGN 3): to one server
 * (redis_node.h: connect with AUTH / SELECT / CLIENT SETNAME, FD_CLOEXEC
 * and TCP keepalive on every (re)connect, a deadline per request (hiredis
 * 0.14 has none: an expired deadline drops the connection), reconnection
 * with capped exponential back-off), or to a Redis Cluster, routed by slot
 * (redis_cluster.h), behind the same functions.
 *
 * A reply callback receives NULL when the outcome is unknown (connection
 * lost or deadline expired before the reply); callers resolve that by the
 * recovery rules, never by guessing. */
#ifndef BG_SUPERVISOR_REDIS_H
#define BG_SUPERVISOR_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;
struct bg_rconn;

typedef void (*bg_rconn_reply_fn)(struct bg_rconn *c, redisReply *reply,
				  void *priv);
/* Called when the connection becomes ready (up = true, after the set-up
 * commands succeeded) or is lost (up = false). */
typedef void (*bg_rconn_state_fn)(struct bg_rconn *c, bool up, void *arg);

struct bg_rconn_opts {
	const char *role; /* "read", "write", "control": for logs and SETNAME */
	const char *host;
	int port;
	int db;
	const char *username; /* NULL or "" = none */
	const char *password; /* NULL or "" = none */
	const char *client_name;
	int connect_timeout_ms;
	int command_timeout_ms;
	int reconnect_max_ms;
	/* Redis Cluster: the seed nodes, "host:port,..."; NULL = one server
	 * at host:port */
	const char *cluster_seeds;
};

struct bg_rconn *bg_rconn_new(struct event_base *base,
			      const struct bg_rconn_opts *opts,
			      bg_rconn_state_fn on_state, void *arg);
/* Start connecting (and keep reconnecting until closed). */
void bg_rconn_start(struct bg_rconn *c);
/* Drop the connection now (pending callbacks get NULL) and reconnect. */
void bg_rconn_drop(struct bg_rconn *c, const char *why);
/* Close for good and free. Pending callbacks get NULL. */
void bg_rconn_free(struct bg_rconn *c);

/* New timeouts (SIGHUP): for requests sent and connections made from now. */
void bg_rconn_set_timeouts(struct bg_rconn *c, int connect_ms, int command_ms,
			   int reconnect_max_ms);
bool bg_rconn_ready(const struct bg_rconn *c);
const char *bg_rconn_role(const struct bg_rconn *c);
/* CLIENT ID of the current connection (for CLIENT UNBLOCK), 0 if unknown.
 * Under Cluster: of the connection to the master serving `key` (NULL: 0). */
long long bg_rconn_client_id(const struct bg_rconn *c);
long long bg_rconn_client_id_for(const struct bg_rconn *c, const char *key);
/* A keyless command (CLIENT UNBLOCK) to the server of `key`: the one
 * server, or under Cluster the master serving key's slot. */
int bg_rconn_cmd_near(struct bg_rconn *c, const char *key, bg_rconn_reply_fn fn,
		      void *priv, int argc, const char **argv);
/* Whether it is a Redis Cluster connection. */
bool bg_rconn_clustered(const struct bg_rconn *c);
/* Requests sent and not answered yet, and their formatted bytes. */
size_t bg_rconn_pending(const struct bg_rconn *c);
size_t bg_rconn_pending_bytes(const struct bg_rconn *c);
uint64_t bg_rconn_reconnects(const struct bg_rconn *c);

/* Write the commands queued since the last flush, in one write system
 * call (redis_events.h): bygated calls it at the end of each loop turn,
 * after the turn's LMDB commit; bg_rconn_cmd itself writes nothing. true
 * when the connection was lost meanwhile (its pending callbacks have run
 * with NULL, and may have queued commands on other connections). */
bool bg_rconn_flush(struct bg_rconn *c);

/* Queue one command (written at the next bg_rconn_flush). extra_ms
 * extends this request's deadline beyond command_timeout_ms (e.g. the
 * BLOCK time of XREADGROUP). fn may be NULL.
 * 0, or -ENOTCONN when the connection is not ready (nothing sent). */
int bg_rconn_cmd(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
		 int extra_ms, int argc, const char **argv, const size_t *lens);
/* Same, from a NULL-terminated list of C strings. */
int bg_rconn_cmdv(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
		  int extra_ms, const char *const *args);

/* Stream entry values kept out of memory. The hook sees the length of
 * each entry field value (a bulk string at an odd index of an entry's
 * field list: depth 3 or more of the reply) before hiredis builds it; when
 * keep_out returns true, the reply holds a REDIS_REPLY_STATUS with the
 * marker it wrote instead. A stream value is always a bulk string in
 * RESP2, so a status there is always a marker. The value has then been
 * held once, in hiredis's input buffer, and never copied. */
struct bg_rconn_value_hook {
	/* A reply starts; budgeted: it answers bg_rconn_cmd_entries. */
	void (*begin)(void *arg, bool budgeted);
	bool (*keep_out)(void *arg, size_t len, char *marker, size_t size);
	/* A reply was handed to its callback (every reply, NULL ones too). */
	void (*end)(void *arg);
	void *arg;
	/* Under Cluster each node's replies are parsed on their own, between
	 * the others': a node gets its own arg from fork(arg) (NULL: no hook
	 * on that node), given back to release when the node goes. */
	void *(*fork)(void *arg);
	void (*release)(void *node_arg);
};
/* From the next connection on (set before bg_rconn_start). */
void bg_rconn_set_value_hook(struct bg_rconn *c,
			     const struct bg_rconn_value_hook *hook);
/* bg_rconn_cmd for a command whose reply is stream entries held against
 * the hook's budget (begin gets budgeted = true). */
int bg_rconn_cmd_entries(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
			 int extra_ms, int argc, const char **argv);

/* Reply helpers for callers. */
bool bg_reply_is_error(const redisReply *r);
/* The value of field `name` in a field array (a stream entry's fields from
 * XREADGROUP, XCLAIM or XRANGE, an HGETALL reply), or NULL when absent or
 * not a string. */
const redisReply *bg_reply_field(const redisReply *fields, const char *name);
const char *bg_reply_error(const redisReply *r); /* "" when not an error */

#endif
