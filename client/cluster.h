/* client/cluster.h - libbygate's synchronous Redis Cluster connection
 * (issue 17, DESIGN 10): the slot map (cluster/slotmap.h) loaded from the
 * seed nodes, one hiredis connection per node made when first needed (with
 * the AUTH and timeouts of client/conn.h), each command sent to the master
 * of its keys' slot, and the cluster's answers followed:
 *
 *   MOVED        the slot's new owner is noted and the command sent there;
 *                the whole map is read again before the next command
 *   ASK          the command is sent once to the node named, after ASKING
 *                (a transaction is retried instead, as for TRYAGAIN)
 *   TRYAGAIN     sent again after a back-off (a migration in progress)
 *   CLUSTERDOWN  the map is read again after a back-off (a failover)
 *   a node that cannot be reached: the map is read again from the other
 *                nodes after a back-off, until its replica is promoted
 *
 * A command is re-sent only when the node did not run it (a redirection,
 * or a connection that failed before the command was written). A
 * connection lost after the command was sent is BG_CLIENT_EIO, "outcome
 * unknown", exactly as on a standalone server: a write is never sent
 * twice by this layer. Not internally synchronised (one thread). */
#ifndef BG_CLIENT_CLUSTER_H
#define BG_CLIENT_CLUSTER_H

#include <signal.h>
#include <stddef.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

struct bg_config;
struct bg_cluster;

/* Seeds: `seeds` ("host:port,...") when not NULL, else
 * cfg->redis_cluster_nodes, else cfg->redis_host:cfg->redis_port. cfg
 * (AUTH, timeouts) is used for the connection's life. The first seed that answers CLUSTER
 * SLOTS gives the map. *fd_out (may be NULL) always holds the descriptor
 * of the connection a command is waiting on, or -1, for an interrupting
 * shutdown() (bg_client_interrupt). 0, or BG_CLIENT_ECONNECT /
 * BG_CLIENT_ECONFIG / -ENOMEM with err saying why. */
int bg_cluster_open(const struct bg_config *cfg, const char *seeds,
		    volatile int *fd_out, struct bg_cluster **out, char *err,
		    size_t errlen);

void bg_cluster_close(struct bg_cluster *cl);

/* A flag (set from a signal handler or another thread) that stops the
 * tries of a command between two of them: it then fails with
 * BG_CLIENT_EIO, "interrupted". */
void bg_cluster_set_stop(struct bg_cluster *cl,
			 const volatile sig_atomic_t *flag);

/* The reply timeout of every connection, now and later. */
void bg_cluster_set_timeout(struct bg_cluster *cl, struct timeval tv);

/* One command, to the master of its slot (a keyless one to any master).
 * As bg_client_command: 0 with *out the reply; an error reply is
 * BG_CLIENT_EREDIS, no reply BG_CLIENT_EIO, with err saying why. A command
 * whose keys span slots is refused unsent (BG_CLIENT_EREDIS, "CROSSSLOT"),
 * as is one whose keys this layer cannot locate. */
int bg_cluster_command(struct bg_cluster *cl, redisReply **out, int argc,
		       const char **argv, const size_t *lens, char *err,
		       size_t errlen);

/* The same, with an error reply handed back as a reply (0), as
 * redisCommandArgv does; a redirection is still followed. */
int bg_cluster_command_raw(struct bg_cluster *cl, redisReply **out, int argc,
			   const char **argv, const size_t *lens, char *err,
			   size_t errlen);

/* The same, on node `node` (an index from bg_cluster_masters), with no
 * redirection followed: for commands every master answers for itself
 * (SCAN). */
int bg_cluster_command_on(struct bg_cluster *cl, int node, redisReply **out,
			  int argc, const char **argv, const size_t *lens,
			  char *err, size_t errlen);

/* n commands, replies in out[] (as bg_client_pipeline: on failure every
 * out[i] is NULL). A transaction (MULTI first, EXEC last) goes in one
 * round trip to one node: its keys must share one slot, and it is sent
 * again, whole, when a redirection aborted it. Any other pipeline asks for
 * no atomicity: its commands go one by one, each to its slot's master. */
int bg_cluster_pipeline(struct bg_cluster *cl, redisReply **out, int n,
			const int *argc, const char **const *argv,
			const size_t *const *lens, char *err, size_t errlen);

/* The masters of the current map (read again first), their indexes into
 * idx[] (at most max); the count, or a negative error with err set. */
int bg_cluster_masters(struct bg_cluster *cl, int *idx, int max, char *err,
		       size_t errlen);

#endif
