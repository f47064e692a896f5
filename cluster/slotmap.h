/* cluster/slotmap.h - a Redis Cluster as a client sees it: its nodes, the
 * master that owns each slot (from CLUSTER SLOTS), and the redirections a
 * node answers with (MOVED, ASK, TRYAGAIN, CLUSTERDOWN). Parsing and
 * bookkeeping only: the connections are the caller's (client/cluster.c for
 * the synchronous tools). */
#ifndef BG_CLUSTER_SLOTMAP_H
#define BG_CLUSTER_SLOTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "cluster/slot.h"

#define BG_CLUSTER_HOST_MAX 256
#define BG_CLUSTER_NODES_MAX 1024

struct bg_cluster_node {
	char host[BG_CLUSTER_HOST_MAX];
	int port;
	char id[41];  /* the node id CLUSTER SLOTS gave, or "" */
	bool master;  /* owns slots in the latest map */
	bool replica; /* listed as a replica in the latest map */
};

struct bg_slotmap {
	struct bg_cluster_node *nodes; /* kept across refreshes: indexes stay */
	int n_nodes;
	int16_t owner[BG_SLOTS]; /* node index of the slot's master, or -1 */
	int covered;		 /* slots with an owner */
};

/* Parses a reply to CLUSTER SLOTS into m (replacing its owners; nodes seen
 * before keep their indexes). `asked` is the host the command was sent to:
 * an empty endpoint in the reply means that host. 0, or -EPROTO with err
 * saying what was malformed (m then unchanged), or -ENOMEM. */
int bg_slotmap_load(struct bg_slotmap *m, const redisReply *r,
		    const char *asked, char *err, size_t errlen);

/* The index of host:port in m, added (not master, not replica) when new;
 * -ENOMEM, or -ENOSPC past BG_CLUSTER_NODES_MAX nodes. */
int bg_slotmap_node(struct bg_slotmap *m, const char *host, int port);

/* The node owning slot, or -1. */
int bg_slotmap_owner(const struct bg_slotmap *m, int slot);

void bg_slotmap_free(struct bg_slotmap *m);

/* What an error reply from a cluster node asks of the client. */
enum bg_redirect_kind {
	BG_REDIRECT_NONE,	 /* an ordinary error: the command's own */
	BG_REDIRECT_MOVED,	 /* the slot lives at host:port now */
	BG_REDIRECT_ASK,	 /* this once, at host:port, after ASKING */
	BG_REDIRECT_TRYAGAIN,	 /* a multi-key command during a migration */
	BG_REDIRECT_CLUSTERDOWN, /* the cluster cannot serve (failover...) */
};

struct bg_redirect {
	enum bg_redirect_kind kind;
	int slot;			/* MOVED, ASK */
	char host[BG_CLUSTER_HOST_MAX]; /* MOVED, ASK; "" = the node asked */
	int port;
};

/* Classifies an error reply's text (len bytes). A MOVED or ASK whose
 * slot or address cannot be read is BG_REDIRECT_NONE: an error the caller
 * reports as it is. */
struct bg_redirect bg_redirect_parse(const char *err, size_t len);

/* Splits a seed list "host:port,host:port" (spaces around items allowed;
 * "[v6addr]:port" for an IPv6 address) into m's nodes, with default_port
 * for an item without one. 0, or -EINVAL with err naming the bad item. */
int bg_slotmap_seeds(struct bg_slotmap *m, const char *list, int default_port,
		     char *err, size_t errlen);

#endif
