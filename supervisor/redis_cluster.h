/* supervisor/redis_cluster.h - one of bygated's connections (read, write,
 * control) to a Redis Cluster (issue 17, DESIGN 10, docs/cluster.md): the
 * slot map read with CLUSTER SLOTS from the seeds, one node connection
 * (redis_node.h) per master, and each command queued on the master of its
 * keys' slot. The modules use it through redis.h, as one connection:
 *
 *  - Ready once the map covers every slot and every master's connection is
 *    ready. A master's connection lost (the master killed, a deadline
 *    expired), CLUSTERDOWN, TRYAGAIN, or a redirection to a node it does not
 *    know is the whole connection lost: every request in flight on every
 *    node gets NULL ("outcome unknown", as on a standalone server), and the
 *    map is read again after a back-off, known masters asked first, until a
 *    replica has been promoted. Nothing is ever re-sent after it may have
 *    run. The loss of a connection to a node that is not a master (the
 *    seed the map was read from, when it is a replica) is ignored.
 *  - MOVED and ASK: the command did not run; it is sent to the node named
 *    (after ASKING for an ASK), and a MOVED updates the slot's owner.
 *  - An MGET over several slots is sent as one GET per key, the replies put
 *    back together in order.
 *  - No transaction: MULTI is refused (bygated's one transaction, the
 *    finish, is split by slot under Cluster: finish_parts.h). A command
 *    whose keys span slots, or whose keys cannot be located
 *    (cluster/slot.h), is refused unsent (-EXDEV) and logged: bygated must
 *    not send one.
 * Requests are written at bg_rcluster_flush, the loop turn's end, as on a
 * standalone server; commands of one slot stay in order (one connection per
 * node), except around a MOVED: a command re-sent to a slot's new owner
 * may follow a later one sent there directly. */
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
const char *bg_rcluster_role(const struct bg_rcluster *c);
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
