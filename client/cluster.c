/* client/cluster.c - the synchronous Redis Cluster connection
 * (cluster.h): the slot map, a connection per node, redirections. */
#include "client/cluster.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/conn.h"
#include "cluster/slotmap.h"
#include "conf/config.h"

/* Redirections and retries of one command before it is given up: at most
 * TRIES, and no new try once redis.command_timeout_ms plus
 * redis.reconnect_max_ms (10 s by default) have passed since the first,
 * so that a failover (cluster-node-timeout, 15 s by Redis's default, plus
 * the replica's election) within that time is waited out. */
#define TRIES 64
#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 320

struct bg_cluster {
	const struct bg_config *cfg;
	struct bg_slotmap map;
	redisContext **conn; /* per map node, NULL until used */
	int n_conn;
	bool stale; /* a MOVED was seen: read the map before the next use */
	bool timeout_set;
	struct timeval timeout;
	volatile int *fd_out;
	const volatile sig_atomic_t *stop; /* set: give up between tries */
};

void bg_cluster_set_stop(struct bg_cluster *cl,
			 const volatile sig_atomic_t *flag)
{
	cl->stop = flag;
}

static void set_fd(struct bg_cluster *cl, int fd)
{
	if (cl->fd_out)
		*cl->fd_out = fd;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int backoff_ms(int round)
{
	int ms = BACKOFF_FIRST_MS << (round < 6 ? round : 6);
	return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

static int64_t elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void drop(struct bg_cluster *cl, int node)
{
	if (node >= 0 && node < cl->n_conn && cl->conn[node]) {
		redisFree(cl->conn[node]);
		cl->conn[node] = NULL;
	}
}

/* The connection to node i, made when missing. NULL with err set when it
 * cannot be made. */
static redisContext *conn_of(struct bg_cluster *cl, int i, char *err,
			     size_t errlen)
{
	if (i >= cl->n_conn) {
		redisContext **c =
			realloc(cl->conn, sizeof(*c) * (size_t)cl->map.n_nodes);
		if (c == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		for (int k = cl->n_conn; k < cl->map.n_nodes; k++)
			c[k] = NULL;
		cl->conn = c;
		cl->n_conn = cl->map.n_nodes;
	}
	if (cl->conn[i] == NULL) {
		const struct bg_cluster_node *n = &cl->map.nodes[i];
		if (bg_client_redis_connect(cl->cfg, n->host, n->port,
					    &cl->conn[i], err, errlen) != 0)
			return NULL;
		if (cl->timeout_set)
			redisSetTimeout(cl->conn[i], cl->timeout);
	}
	return cl->conn[i];
}

/* CLUSTER SLOTS from node i into the map. */
static int load_from(struct bg_cluster *cl, int i, char *err, size_t errlen)
{
	redisContext *c = conn_of(cl, i, err, errlen);
	if (c == NULL)
		return BG_CLIENT_ECONNECT;
	redisReply *r = redisCommand(c, "CLUSTER SLOTS");
	if (r == NULL) {
		snprintf(err, errlen, "CLUSTER SLOTS: %s",
			 c->errstr[0] ? c->errstr : "connection lost");
		drop(cl, i);
		return BG_CLIENT_EIO;
	}
	int rc = 0;
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "CLUSTER SLOTS at %s:%d: %.300s",
			 cl->map.nodes[i].host, cl->map.nodes[i].port, r->str);
		rc = BG_CLIENT_EREDIS;
	} else {
		char host[BG_CLUSTER_HOST_MAX];
		snprintf(host, sizeof(host), "%s", cl->map.nodes[i].host);
		rc = bg_slotmap_load(&cl->map, r, host, err, errlen);
		if (rc == -EPROTO)
			rc = BG_CLIENT_EPROTO;
	}
	freeReplyObject(r);
	return rc;
}

/* Reads the map again, from a known master first, then any node. */
static int refresh(struct bg_cluster *cl, char *err, size_t errlen)
{
	int rc = BG_CLIENT_ECONNECT;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < cl->map.n_nodes; i++) {
			if ((pass == 0) != cl->map.nodes[i].master)
				continue;
			rc = load_from(cl, i, err, errlen);
			if (rc == 0) {
				cl->stale = false;
				return 0;
			}
		}
	return rc;
}

int bg_cluster_open(const struct bg_config *cfg, const char *seeds,
		    volatile int *fd_out, struct bg_cluster **out, char *err,
		    size_t errlen)
{
	*out = NULL;
	if (cfg->redis_db != 0) {
		snprintf(err, errlen,
			 "Redis Cluster has only database 0: redis.db (or "
			 "REDIS_DATABASE) is %d",
			 cfg->redis_db);
		return BG_CLIENT_ECONFIG;
	}
	struct bg_cluster *cl = calloc(1, sizeof(*cl));
	if (cl == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cl->cfg = cfg;
	cl->fd_out = fd_out;
	set_fd(cl, -1);
	if (seeds == NULL)
		seeds = cfg->redis_cluster_nodes;
	int rc = 0;
	if (seeds && seeds[0])
		rc = bg_slotmap_seeds(&cl->map, seeds, cfg->redis_port, err,
				      errlen);
	else
		rc = bg_slotmap_node(&cl->map, cfg->redis_host,
				     cfg->redis_port) < 0
			     ? -ENOMEM
			     : 0;
	if (rc == -EINVAL) {
		bg_cluster_close(cl);
		return BG_CLIENT_ECONFIG;
	}
	if (rc == 0)
		rc = refresh(cl, err, errlen);
	if (rc == 0 && cl->map.covered == 0) {
		snprintf(err, errlen,
			 "Redis Cluster at %s:%d serves no slot (not a "
			 "cluster yet?)",
			 cl->map.nodes[0].host, cl->map.nodes[0].port);
		rc = BG_CLIENT_ECONNECT;
	}
	if (rc) {
		bg_cluster_close(cl);
		return rc == -ENOMEM ? rc : BG_CLIENT_ECONNECT;
	}
	*out = cl;
	return 0;
}

void bg_cluster_close(struct bg_cluster *cl)
{
	if (cl == NULL)
		return;
	for (int i = 0; i < cl->n_conn; i++)
		drop(cl, i);
	free(cl->conn);
	bg_slotmap_free(&cl->map);
	free(cl);
}

void bg_cluster_set_timeout(struct bg_cluster *cl, struct timeval tv)
{
	cl->timeout = tv;
	cl->timeout_set = true;
	for (int i = 0; i < cl->n_conn; i++)
		if (cl->conn[i])
			redisSetTimeout(cl->conn[i], tv);
}

/* Any master: the first in the map. */
static int any_master(const struct bg_cluster *cl)
{
	for (int i = 0; i < cl->map.n_nodes; i++)
		if (cl->map.nodes[i].master)
			return i;
	return -1;
}

static int node_of_slot(struct bg_cluster *cl, int slot)
{
	return slot >= 0 ? bg_slotmap_owner(&cl->map, slot) : any_master(cl);
}

static int refuse_slot(const char *name, int slot, char *err, size_t errlen)
{
	if (slot == BG_SLOT_CROSS)
		snprintf(err, errlen,
			 "%s: CROSSSLOT: its keys hash to different slots "
			 "(not sent: Redis Cluster serves one slot per "
			 "command or transaction)",
			 name);
	else
		snprintf(err, errlen,
			 "%s: its keys cannot be located under Redis Cluster "
			 "(a command unknown to cluster/slot.c, or malformed)",
			 name);
	return BG_CLIENT_EREDIS;
}

/* The node a redirection names; -1 when it cannot be added. An empty
 * host is the node that answered. */
static int target(struct bg_cluster *cl, int from, const struct bg_redirect *r)
{
	char host[BG_CLUSTER_HOST_MAX];
	snprintf(host, sizeof(host), "%s",
		 r->host[0] ? r->host : cl->map.nodes[from].host);
	return bg_slotmap_node(&cl->map, host, r->port);
}

/* Sends n commands to node (ASKING before each when asking) and reads the
 * replies into out[]. 0; BG_CLIENT_ECONNECT when the node could not be
 * reached (nothing sent); BG_CLIENT_EIO when the connection failed after
 * the commands were written (outcome unknown). */
static int send_to(struct bg_cluster *cl, int node, bool asking, int n,
		   const int *argc, const char **const *argv,
		   const size_t *const *lens, redisReply **out, char *err,
		   size_t errlen)
{
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	redisContext *c = conn_of(cl, node, err, errlen);
	if (c == NULL)
		return BG_CLIENT_ECONNECT;
	for (int i = 0; i < n; i++)
		if ((asking && redisAppendCommand(c, "ASKING") != REDIS_OK) ||
		    redisAppendCommandArgv(c, argc[i], argv[i],
					   lens ? lens[i] : NULL) != REDIS_OK) {
			snprintf(err, errlen, "out of memory");
			drop(cl, node);
			return -ENOMEM;
		}
	set_fd(cl, c->fd);
	for (int i = 0; i < n; i++) {
		void *r = NULL;
		if (asking && redisGetReply(c, &r) == REDIS_OK) {
			freeReplyObject(r); /* ASKING's +OK */
			r = NULL;
		}
		if ((asking && c->err) || redisGetReply(c, &r) != REDIS_OK) {
			snprintf(err, errlen, "%s: %s", argv[i][0],
				 c->errstr[0] ? c->errstr : "connection lost");
			for (int k = 0; k < i; k++) {
				freeReplyObject(out[k]);
				out[k] = NULL;
			}
			set_fd(cl, -1);
			drop(cl, node);
			cl->stale = true;
			return BG_CLIENT_EIO;
		}
		out[i] = r;
	}
	set_fd(cl, -1);
	return 0;
}

static struct bg_redirect redirect_of(const redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_ERROR)
		return (struct bg_redirect){ .kind = BG_REDIRECT_NONE };
	return bg_redirect_parse(r->str, r->len);
}

static void free_all(redisReply **out, int n)
{
	for (int i = 0; i < n; i++) {
		freeReplyObject(out[i]);
		out[i] = NULL;
	}
}

/* What to do after the replies of one try came back. */
enum verdict { DONE, MOVED, ASK, WAIT };

/* Whether no command of the try ran because of a redirection, and which.
 * A transaction (MULTI first) counts as not run when EXEC was aborted by
 * a redirected command; plain commands when every keyed one was
 * redirected. */
static enum verdict judge(int n, const int *argc, const char **const *argv,
			  const size_t *const *lens, redisReply **out,
			  struct bg_redirect *why)
{
	bool multi = n > 1 && strcasecmp(argv[0][0], "MULTI") == 0;
	int keyed = 0, redirected = 0;
	*why = (struct bg_redirect){ .kind = BG_REDIRECT_NONE };
	for (int i = 0; i < n; i++) {
		if (bg_slot_of_command(argc[i], argv[i], lens ? lens[i] : NULL,
				       NULL) < 0)
			continue;
		keyed++;
		struct bg_redirect r = redirect_of(out[i]);
		if (r.kind == BG_REDIRECT_NONE)
			continue;
		redirected++;
		if (why->kind == BG_REDIRECT_NONE ||
		    r.kind == BG_REDIRECT_MOVED)
			*why = r;
	}
	bool aborted = multi && out[n - 1] &&
		       out[n - 1]->type == REDIS_REPLY_ERROR &&
		       strncmp(out[n - 1]->str, "EXECABORT", 9) == 0;
	if (why->kind == BG_REDIRECT_NONE ||
	    (multi ? !aborted : redirected != keyed))
		return DONE; /* nothing redirected, or something ran */
	if (why->kind == BG_REDIRECT_MOVED)
		return MOVED;
	if (why->kind == BG_REDIRECT_ASK && !multi)
		return ASK;
	return WAIT; /* TRYAGAIN, CLUSTERDOWN, an ASK in a transaction */
}

static int route(struct bg_cluster *cl, int slot, int n, const int *argc,
		 const char **const *argv, const size_t *const *lens,
		 redisReply **out, char *err, size_t errlen)
{
	int node = -1, round = 0;
	bool asking = false, moved = false;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int64_t budget_ms = (int64_t)cl->cfg->redis_command_timeout_ms +
			    cl->cfg->redis_reconnect_max_ms;
	for (int try = 0; try < TRIES && elapsed_ms(&t0) <= budget_ms; try++) {
		if (cl->stop && *cl->stop) {
			snprintf(err, errlen, "%s: interrupted", argv[0][0]);
			return BG_CLIENT_EIO;
		}
		if (!asking) {
			/* after a MOVED the owner just learnt is tried before
			 * the whole map is read again (once the command is
			 * done): a map read from another node may not know
			 * the move yet */
			if (cl->stale && !moved)
				refresh(cl, err, errlen);
			moved = false;
			node = node_of_slot(cl, slot);
			if (node < 0) {
				/* the slot has no owner now: a failover */
				snprintf(err, errlen,
					 "%s: CLUSTERDOWN: slot %d has no "
					 "master",
					 argv[0][0], slot);
				sleep_ms(backoff_ms(round++));
				cl->stale = true;
				continue;
			}
		}
		int rc = send_to(cl, node, asking, n, argc, argv, lens, out,
				 err, errlen);
		asking = false;
		if (rc == BG_CLIENT_ECONNECT) {
			/* not sent: the node is down; wait for its
			 * replica to take over */
			sleep_ms(backoff_ms(round++));
			cl->stale = true;
			continue;
		}
		if (rc)
			return rc;
		struct bg_redirect why;
		enum verdict v = judge(n, argc, argv, lens, out, &why);
		if (v == DONE)
			return 0;
		free_all(out, n);
		int to = v == MOVED || v == ASK ? target(cl, node, &why) : -1;
		if (v == MOVED && to >= 0) {
			cl->map.owner[why.slot] = (int16_t)to;
			cl->stale = true;
			moved = true;
			continue;
		}
		if (v == ASK && to >= 0) {
			node = to;
			asking = true;
			continue;
		}
		snprintf(err, errlen, "%s: %s", argv[0][0],
			 why.kind == BG_REDIRECT_TRYAGAIN ? "TRYAGAIN"
							  : "CLUSTERDOWN");
		sleep_ms(backoff_ms(round++));
		if (why.kind != BG_REDIRECT_TRYAGAIN)
			cl->stale = true;
	}
	if (err[0] == '\0')
		snprintf(err, errlen, "%s: too many redirections", argv[0][0]);
	return BG_CLIENT_EREDIS;
}

/* The replies' first error, as bg_client_command reports it. */
static int own_error(redisReply **out, int n, const char **const *argv,
		     char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
		if (out[i] && out[i]->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "%s: %.400s", argv[i][0],
				 out[i]->str ? out[i]->str : "");
			return BG_CLIENT_EREDIS;
		}
	return 0;
}

int bg_cluster_command_raw(struct bg_cluster *cl, redisReply **out, int argc,
			   const char **argv, const size_t *lens, char *err,
			   size_t errlen)
{
	*out = NULL;
	err[0] = '\0';
	int slot = bg_slot_of_command(argc, argv, lens, NULL);
	if (slot < BG_SLOT_NONE)
		return refuse_slot(argv[0], slot, err, errlen);
	const char **const av[] = { argv };
	const size_t *const lv[] = { lens };
	return route(cl, slot, 1, &argc, av, lv, out, err, errlen);
}

int bg_cluster_command(struct bg_cluster *cl, redisReply **out, int argc,
		       const char **argv, const size_t *lens, char *err,
		       size_t errlen)
{
	int rc = bg_cluster_command_raw(cl, out, argc, argv, lens, err, errlen);
	const char **const av[] = { argv };
	if (rc == 0 && own_error(out, 1, av, err, errlen)) {
		freeReplyObject(*out);
		*out = NULL;
		return BG_CLIENT_EREDIS;
	}
	return rc;
}

int bg_cluster_command_on(struct bg_cluster *cl, int node, redisReply **out,
			  int argc, const char **argv, const size_t *lens,
			  char *err, size_t errlen)
{
	*out = NULL;
	if (node < 0 || node >= cl->map.n_nodes) {
		snprintf(err, errlen, "%s: no such cluster node", argv[0]);
		return -EINVAL;
	}
	const char **const av[] = { argv };
	const size_t *const lv[] = { lens };
	int rc = send_to(cl, node, false, 1, &argc, av, lv, out, err, errlen);
	if (rc == BG_CLIENT_ECONNECT)
		rc = BG_CLIENT_EIO;
	if (rc == 0 && own_error(out, 1, av, err, errlen)) {
		freeReplyObject(*out);
		*out = NULL;
		return BG_CLIENT_EREDIS;
	}
	return rc;
}

int bg_cluster_pipeline(struct bg_cluster *cl, redisReply **out, int n,
			const int *argc, const char **const *argv,
			const size_t *const *lens, char *err, size_t errlen)
{
	err[0] = '\0';
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	if (n > 0 && strcasecmp(argv[0][0], "MULTI") != 0) {
		/* no atomicity asked: each command to its own slot */
		for (int i = 0; i < n; i++) {
			int rc = bg_cluster_command_raw(cl, &out[i], argc[i],
							argv[i],
							lens ? lens[i] : NULL,
							err, errlen);
			if (rc) {
				free_all(out, i);
				return rc;
			}
		}
		return 0;
	}
	int slot = BG_SLOT_NONE;
	for (int i = 0; i < n; i++) {
		int s = bg_slot_of_command(argc[i], argv[i],
					   lens ? lens[i] : NULL, NULL);
		if (s < BG_SLOT_NONE)
			return refuse_slot(argv[i][0], s, err, errlen);
		if (s == BG_SLOT_NONE)
			continue;
		if (slot != BG_SLOT_NONE && s != slot)
			return refuse_slot(argv[i][0], BG_SLOT_CROSS, err,
					   errlen);
		slot = s;
	}
	return route(cl, slot, n, argc, argv, lens, out, err, errlen);
}

int bg_cluster_masters(struct bg_cluster *cl, int *idx, int max, char *err,
		       size_t errlen)
{
	int rc = refresh(cl, err, errlen);
	if (rc)
		return rc;
	int n = 0;
	for (int i = 0; i < cl->map.n_nodes && n < max; i++)
		if (cl->map.nodes[i].master)
			idx[n++] = i;
	return n;
}
