/* supervisor/redis_cluster.h - one of bygated's connections (read, write,
 * control) to a Redis Cluster (issue 17, DESIGN 10, docs/cluster.md): the
 * slot map read with CLUSTER SLOTS from the seeds, one node connection
 * (redis_node.h) per master, and each command queued on the master of its
 * keys' slot. The modules use it through redis.h, as one connection:
 *
 *  - Ready once the map covers every slot and every master's connection is
 *    ready. A node lost (a master killed, a deadline expired, CLUSTERDOWN,
 *    TRYAGAIN) is the whole connection lost: every request in flight on
 *    every node gets NULL ("outcome unknown", as on a standalone server),
 *    and the map is read again after a back-off, until a replica has been
 *    promoted. Nothing is ever re-sent after it may have run.
 *  - MOVED and ASK to a single command: it did not run; it is sent to the
 *    node named (after ASKING for an ASK), the map's owner of the slot
 *    updated for a MOVED. An unknown node named there is a lost connection.
 *  - MULTI ... EXEC: MULTI waits for the first keyed command and goes with
 *    it to that slot's master; every command of the transaction must be in
 *    that slot (a command for another slot is refused, -EXDEV, and the
 *    transaction is discarded). A redirection inside a transaction aborts
 *    it (EXECABORT, handed to the caller, who retries); a MOVED also makes
 *    the connection drop and the map be read again.
 *  - A command whose keys span slots, or whose keys cannot be located
 *    (cluster/slot.h), is refused unsent (-EXDEV) and logged: bygated must
 *    not send one.
 * Requests are written at bg_rcluster_flush, the loop turn's end, as on a
 * standalone server. */
#ifndef BG_SUPERVISOR_REDIS_CLUSTER_H
#define BG_SUPERVISOR_REDIS_CLUSTER_H

#include "supervisor/redis.h"

struct bg_rcluster;

/* opts->cluster_seeds: "host:port,..." (at least one node). */
struct bg_rcluster *bg_rcluster_new(struct event_base *base,
				    struct bg_rconn *owner,
				    const struct bg_rconn_opts *opts,
				    bg_rconn_state_fn on_state, void *arg);
void bg_rcluster_start(struct bg_rcluster *c);
void bg_rcluster_drop(struct bg_rcluster *c, const char *why);
void bg_rcluster_free(struct bg_rcluster *c);
void bg_rcluster_set_timeouts(struct bg_rcluster *c, int connect_ms,
			      int command_ms, int reconnect_max_ms);
bool bg_rcluster_ready(const struct bg_rcluster *c);
size_t bg_rcluster_pending(const struct bg_rcluster *c);
size_t bg_rcluster_pending_bytes(const struct bg_rcluster *c);
uint64_t bg_rcluster_reconnects(const struct bg_rcluster *c);
bool bg_rcluster_flush(struct bg_rcluster *c);
int bg_rcluster_cmd(struct bg_rcluster *c, bg_rconn_reply_fn fn, void *priv,
		    int extra_ms, int argc, const char **argv,
		    const size_t *lens, bool entries);
/* A keyless command (CLIENT UNBLOCK) to the master serving `key`. */
int bg_rcluster_cmd_near(struct bg_rcluster *c, const char *key,
			 bg_rconn_reply_fn fn, void *priv, int argc,
			 const char **argv);
/* CLIENT ID of the connection to the master serving `key`; 0 if unknown. */
long long bg_rcluster_client_id(const struct bg_rcluster *c, const char *key);
void bg_rcluster_set_value_hook(struct bg_rcluster *c,
				const struct bg_rconn_value_hook *hook);
/* Masters in the current map (0 while not ready). */
int bg_rcluster_masters(const struct bg_rcluster *c);

#endif
