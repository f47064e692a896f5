/* supervisor/redis_cluster.c - a bygated connection to a Redis Cluster
 * (redis_cluster.h): the map, a node connection per master, routing by
 * slot, redirections. */
#include "supervisor/redis_cluster.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "cluster/slot.h"
#include "cluster/slotmap.h"
#include "supervisor/log.h"
#include "supervisor/redis_node.h"

enum cl_state { CL_DOWN, CL_MAPPING, CL_CONNECTING, CL_READY, CL_CLOSED };

#define REDIRECTS_MAX 5

/* The connection to one node of the map (same index). */
struct cnode {
	struct bg_rcluster *c;
	int idx;
	struct bg_rnode *conn;
	void *hook_arg; /* its value hook's own arg (hook.fork) */
};

struct bg_rcluster {
	struct bg_rconn *owner;
	struct event_base *base;
	struct bg_rconn_opts o; /* host and port: each node's own */
	char *seeds, *username, *password, *role, *client_name;
	bg_rconn_state_fn on_state;
	void *arg;
	struct bg_slotmap map;
	struct cnode **node; /* per map node, NULL when none */
	int n_node;
	int candidate; /* turns of the nodes asked for the map */
	int mapper;    /* the node CLUSTER SLOTS goes to, or -1 */
	bool slots_sent;
	enum cl_state state;
	struct event *retry; /* back-off, and the watchdog of a (re)start */
	int backoff_ms;
	uint64_t reconnects;
	struct bg_rconn_value_hook hook;
	bool has_hook;
};

static struct bg_rnode *conn_of(const struct bg_rcluster *c, int i)
{
	return i >= 0 && i < c->n_node && c->node[i] ? c->node[i]->conn : NULL;
}

/* One command in flight, kept to be sent again after a MOVED or an ASK. */
struct route {
	struct bg_rcluster *cl;
	bg_rconn_reply_fn fn;
	void *priv;
	int extra_ms;
	bool entries;
	int node;
	int redirects;
	int argc;
	const char **argv;
	size_t *lens;
};

static void drop_all(struct bg_rcluster *c, const char *why);

static bool named(const char *a, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(a, name, n) == 0;
}

static struct route *route_new(struct bg_rcluster *c, bg_rconn_reply_fn fn,
			       void *priv, int extra_ms, int argc,
			       const char **argv, const size_t *lens)
{
	size_t bytes = 0;
	for (int i = 0; i < argc; i++)
		bytes += lens ? lens[i] : strlen(argv[i]);
	size_t head = sizeof(struct route) +
		      (size_t)argc * (sizeof(char *) + sizeof(size_t));
	struct route *q = malloc(head + bytes + 1);
	if (q == NULL)
		return NULL;
	*q = (struct route){ .cl = c,
			     .fn = fn,
			     .priv = priv,
			     .extra_ms = extra_ms,
			     .argc = argc };
	q->argv = (const char **)(q + 1);
	q->lens = (size_t *)(q->argv + argc);
	char *p = (char *)(q->lens + argc);
	for (int i = 0; i < argc; i++) {
		size_t n = lens ? lens[i] : strlen(argv[i]);
		memcpy(p, argv[i], n);
		q->argv[i] = p;
		q->lens[i] = n;
		p += n;
	}
	return q;
}

static void on_route_reply(struct bg_rconn *owner, redisReply *r, void *priv);

static int send_route(struct bg_rcluster *c, int node, struct route *q,
		      bool asking)
{
	struct bg_rnode *n = conn_of(c, node);
	if (n == NULL || !bg_rnode_ready(n))
		return -ENOTCONN;
	if (asking &&
	    bg_rnode_cmdv(n, NULL, NULL, 0,
			  (const char *const[]){ "ASKING", NULL }) != 0)
		return -ENOTCONN;
	q->node = node;
	return q->entries
		       ? bg_rnode_cmd_entries(n, on_route_reply, q, q->extra_ms,
					      q->argc, q->argv, q->lens)
		       : bg_rnode_cmd(n, on_route_reply, q, q->extra_ms,
				      q->argc, q->argv, q->lens);
}

static void deliver(struct bg_rconn *owner, struct route *q, redisReply *r)
{
	bg_rconn_reply_fn fn = q->fn;
	void *priv = q->priv;
	free(q);
	if (fn)
		fn(owner, r, priv);
}

/* The node a MOVED or an ASK names, if it is one of ours and ready. */
static int redirect_target(struct bg_rcluster *c, const struct route *q,
			   const struct bg_redirect *rd)
{
	const char *host = rd->host[0] ? rd->host : c->map.nodes[q->node].host;
	for (int i = 0; i < c->map.n_nodes; i++)
		if (c->map.nodes[i].port == rd->port &&
		    strcmp(c->map.nodes[i].host, host) == 0)
			return conn_of(c, i) && bg_rnode_ready(conn_of(c, i))
				       ? i
				       : -1;
	return -1;
}

static void on_route_reply(struct bg_rconn *owner, redisReply *r, void *priv)
{
	struct route *q = priv;
	struct bg_rcluster *c = q->cl;
	struct bg_redirect rd = { .kind = BG_REDIRECT_NONE };
	if (r && r->type == REDIS_REPLY_ERROR && c->state == CL_READY)
		rd = bg_redirect_parse(r->str, r->len);
	if (rd.kind == BG_REDIRECT_NONE) {
		deliver(owner, q, r);
		return;
	}
	if (rd.kind == BG_REDIRECT_MOVED || rd.kind == BG_REDIRECT_ASK) {
		int to = redirect_target(c, q, &rd);
		if (to >= 0 && q->redirects < REDIRECTS_MAX) {
			q->redirects++;
			if (rd.kind == BG_REDIRECT_MOVED) {
				c->map.owner[rd.slot] = (int16_t)to;
				c->map.nodes[to].master = true; /* watched */
			}
			if (send_route(c, to, q, rd.kind == BG_REDIRECT_ASK) ==
			    0)
				return;
		}
	}
	/* not run; sent nowhere else: lost, as with the connection */
	char why[160];
	snprintf(why, sizeof(why), "%.40s answered %.100s", q->argv[0], r->str);
	deliver(owner, q, NULL);
	drop_all(c, why);
}

/* ---- the map and the node connections ---- */

static void on_node_state(struct bg_rconn *owner, bool up, void *arg);

static int grow_nodes(struct bg_rcluster *c)
{
	if (c->n_node >= c->map.n_nodes)
		return 0;
	struct cnode **n =
		realloc(c->node, sizeof(*n) * (size_t)c->map.n_nodes);
	if (n == NULL)
		return -ENOMEM;
	for (int i = c->n_node; i < c->map.n_nodes; i++)
		n[i] = NULL;
	c->node = n;
	c->n_node = c->map.n_nodes;
	return 0;
}

static int open_node(struct bg_rcluster *c, int i)
{
	if (grow_nodes(c) != 0)
		return -ENOMEM;
	if (c->node[i])
		return 0;
	struct cnode *n = calloc(1, sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	*n = (struct cnode){ .c = c, .idx = i };
	struct bg_rconn_opts o = c->o;
	o.host = c->map.nodes[i].host;
	o.port = c->map.nodes[i].port;
	o.db = 0;
	o.cluster_seeds = NULL;
	n->conn = bg_rnode_new(c->base, c->owner, &o, on_node_state, n);
	if (n->conn == NULL) {
		free(n);
		return -ENOMEM;
	}
	if (c->has_hook) {
		struct bg_rconn_value_hook h = c->hook;
		if (h.fork &&
		    (h.arg = n->hook_arg = h.fork(c->hook.arg)) == NULL) {
			bg_rnode_free(n->conn);
			free(n);
			return -ENOMEM; /* no budget on it: not opened */
		}
		bg_rnode_set_value_hook(n->conn, &h);
	}
	c->node[i] = n;
	bg_rnode_start(n->conn);
	return 0;
}

/* Never from a node's own callback (the node is freed): from the retry
 * timer, the start or the end. */
static void free_nodes(struct bg_rcluster *c)
{
	for (int i = 0; i < c->n_node; i++) {
		struct cnode *n = c->node[i];
		c->node[i] = NULL;
		if (n == NULL)
			continue;
		bg_rnode_free(n->conn);
		if (n->hook_arg && c->hook.release)
			c->hook.release(n->hook_arg);
		free(n);
	}
}

static void arm(struct bg_rcluster *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(c->retry, &tv);
}

/* Every connection dropped (requests in flight get NULL), the state down,
 * a new map after the back-off. */
static void drop_all(struct bg_rcluster *c, const char *why)
{
	if (c->state == CL_DOWN || c->state == CL_CLOSED)
		return;
	bool was_ready = c->state == CL_READY;
	c->state = CL_DOWN;
	bg_warn("redis %s cluster connection dropped: %s", c->role, why);
	for (int i = 0; i < c->n_node; i++)
		if (conn_of(c, i))
			bg_rnode_drop(conn_of(c, i), why);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
	if (c->backoff_ms > c->o.reconnect_max_ms)
		c->backoff_ms = c->o.reconnect_max_ms;
	arm(c, c->backoff_ms);
	if (was_ready && c->on_state)
		c->on_state(c->owner, false, c->arg);
}

static bool masters_ready(const struct bg_rcluster *c)
{
	int n = 0;
	for (int i = 0; i < c->map.n_nodes; i++) {
		if (!c->map.nodes[i].master)
			continue;
		if (conn_of(c, i) == NULL || !bg_rnode_ready(conn_of(c, i)))
			return false;
		n++;
	}
	return n > 0;
}

static void check_ready(struct bg_rcluster *c)
{
	if (c->state != CL_CONNECTING || !masters_ready(c))
		return;
	c->state = CL_READY;
	c->backoff_ms = 0;
	evtimer_del(c->retry);
	bg_info("redis %s cluster connection ready (%d masters, map from "
		"%s:%d)",
		c->role, bg_rcluster_masters(c), c->map.nodes[c->mapper].host,
		c->map.nodes[c->mapper].port);
	if (c->on_state)
		c->on_state(c->owner, true, c->arg);
}

static void on_slots(struct bg_rconn *owner, redisReply *r, void *priv)
{
	(void)owner;
	struct bg_rcluster *c = priv;
	char err[256];
	if (c->state != CL_MAPPING)
		return;
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, sizeof(err), "CLUSTER SLOTS: %s",
			 r ? r->str : "no reply");
		drop_all(c, err);
		return;
	}
	const char *asked = c->map.nodes[c->mapper].host;
	char host[BG_CLUSTER_HOST_MAX];
	snprintf(host, sizeof(host), "%s", asked);
	if (bg_slotmap_load(&c->map, r, host, err, sizeof(err)) != 0) {
		drop_all(c, err);
		return;
	}
	if (c->map.covered < BG_SLOTS) {
		snprintf(err, sizeof(err),
			 "the cluster serves %d of 16384 slots (a failover "
			 "or a resharding under way?)",
			 c->map.covered);
		drop_all(c, err);
		return;
	}
	c->state = CL_CONNECTING;
	/* a master of this map that cannot be reached (dead, its failover
	 * not over): the map is asked again once its connect and set-up
	 * could have been done, not after the mapping's time as well */
	arm(c, c->o.connect_timeout_ms + c->o.command_timeout_ms);
	for (int i = 0; i < c->map.n_nodes; i++)
		if (c->map.nodes[i].master && open_node(c, i) != 0) {
			drop_all(c, "out of memory");
			return;
		}
	check_ready(c);
}

static void on_node_state(struct bg_rconn *owner, bool up, void *arg)
{
	(void)owner;
	struct cnode *n = arg;
	struct bg_rcluster *c = n->c;
	bool mapping = c->state == CL_MAPPING && n->idx == c->mapper;
	if (!up) {
		/* a master, or the node being asked for the map: the
		 * connection is lost; another node (the seed the map came
		 * from, a replica now): nothing depends on it */
		if ((c->state == CL_CONNECTING || c->state == CL_READY) &&
		    c->map.nodes[n->idx].master)
			drop_all(c, "a master's connection was lost");
		else if (mapping)
			drop_all(c, "the node asked for the map was lost");
		return;
	}
	if (mapping && !c->slots_sent) {
		c->slots_sent =
			bg_rnode_cmdv(n->conn, on_slots, c, 0,
				      (const char *const[]){ "CLUSTER", "SLOTS",
							     NULL }) == 0;
		if (!c->slots_sent)
			drop_all(c, "CLUSTER SLOTS not sent");
		return;
	}
	check_ready(c);
}

/* The next node to ask for the map: the masters of the last map first, in
 * turn, then any node known. */
static int next_mapper(struct bg_rcluster *c)
{
	int masters = 0;
	for (int i = 0; i < c->map.n_nodes; i++)
		masters += c->map.nodes[i].master;
	int turn = c->candidate++;
	if (masters == 0)
		return turn % c->map.n_nodes;
	if (turn % 2 == 0) {
		int k = (turn / 2) % masters;
		for (int i = 0; i < c->map.n_nodes; i++)
			if (c->map.nodes[i].master && k-- == 0)
				return i;
	}
	return (turn / 2) % c->map.n_nodes;
}

/* Fresh connections, the map asked of the next known node. */
static void begin(struct bg_rcluster *c)
{
	free_nodes(c);
	if (c->map.n_nodes == 0)
		return;
	c->mapper = next_mapper(c);
	c->slots_sent = false;
	c->state = CL_MAPPING;
	/* the watchdog: a map and every master within a connect and a
	 * command timeout, else the next node is asked */
	arm(c, c->o.connect_timeout_ms + c->o.command_timeout_ms);
	if (open_node(c, c->mapper) != 0)
		drop_all(c, "out of memory");
}

static void on_retry(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_rcluster *c = arg;
	if (c->state == CL_DOWN) {
		c->reconnects++;
		begin(c);
	} else if (c->state == CL_MAPPING || c->state == CL_CONNECTING) {
		drop_all(c, c->state == CL_MAPPING
				    ? "no cluster map in time"
				    : "the masters not connected in time");
	}
}

/* ---- the connection's life ---- */

static char *dupe(const char *s)
{
	return strdup(s ? s : "");
}

struct bg_rcluster *bg_rcluster_new(struct event_base *base,
				    struct bg_rconn *owner,
				    const struct bg_rconn_opts *opts,
				    bg_rconn_state_fn on_state, void *arg)
{
	struct bg_rcluster *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->owner = owner;
	c->base = base;
	c->o = *opts;
	c->on_state = on_state;
	c->arg = arg;
	c->mapper = -1;
	c->seeds = dupe(opts->cluster_seeds);
	c->username = dupe(opts->username);
	c->password = dupe(opts->password);
	c->role = dupe(opts->role);
	c->client_name = dupe(opts->client_name);
	c->retry = evtimer_new(base, on_retry, c);
	char err[256];
	if (!c->seeds || !c->username || !c->password || !c->role ||
	    !c->client_name || !c->retry ||
	    bg_slotmap_seeds(&c->map, c->seeds, opts->port, err, sizeof(err)) !=
		    0 ||
	    c->map.n_nodes == 0) {
		if (c->seeds && c->map.n_nodes == 0)
			bg_error("redis %s: no usable cluster seed in \"%s\"",
				 c->role ? c->role : "", c->seeds);
		bg_rcluster_free(c);
		return NULL;
	}
	c->o.username = c->username;
	c->o.password = c->password;
	c->o.role = c->role;
	c->o.client_name = c->client_name;
	return c;
}

void bg_rcluster_start(struct bg_rcluster *c)
{
	if (c->state == CL_DOWN && c->mapper < 0)
		begin(c);
}

void bg_rcluster_drop(struct bg_rcluster *c, const char *why)
{
	drop_all(c, why);
}

void bg_rcluster_free(struct bg_rcluster *c)
{
	if (c == NULL)
		return;
	c->state = CL_CLOSED;
	if (c->retry)
		event_free(c->retry);
	free_nodes(c);
	free(c->node);
	bg_slotmap_free(&c->map);
	free(c->seeds);
	free(c->username);
	free(c->password);
	free(c->role);
	free(c->client_name);
	free(c);
}

void bg_rcluster_set_timeouts(struct bg_rcluster *c, int connect_ms,
			      int command_ms, int reconnect_max_ms)
{
	c->o.connect_timeout_ms = connect_ms;
	c->o.command_timeout_ms = command_ms;
	c->o.reconnect_max_ms = reconnect_max_ms;
	for (int i = 0; i < c->n_node; i++)
		if (conn_of(c, i))
			bg_rnode_set_timeouts(conn_of(c, i), connect_ms,
					      command_ms, reconnect_max_ms);
}

bool bg_rcluster_ready(const struct bg_rcluster *c)
{
	return c->state == CL_READY;
}

const char *bg_rcluster_role(const struct bg_rcluster *c)
{
	return c->role;
}

size_t bg_rcluster_pending(const struct bg_rcluster *c)
{
	size_t n = 0;
	for (int i = 0; i < c->n_node; i++)
		if (conn_of(c, i))
			n += bg_rnode_pending(conn_of(c, i));
	return n;
}

size_t bg_rcluster_pending_bytes(const struct bg_rcluster *c)
{
	size_t n = 0;
	for (int i = 0; i < c->n_node; i++)
		if (conn_of(c, i))
			n += bg_rnode_pending_bytes(conn_of(c, i));
	return n;
}

uint64_t bg_rcluster_reconnects(const struct bg_rcluster *c)
{
	return c->reconnects;
}

bool bg_rcluster_flush(struct bg_rcluster *c)
{
	bool lost = false;
	for (int i = 0; i < c->n_node; i++)
		if (conn_of(c, i) && bg_rnode_flush(conn_of(c, i)))
			lost = true;
	return lost;
}

void bg_rcluster_set_value_hook(struct bg_rcluster *c,
				const struct bg_rconn_value_hook *hook)
{
	c->hook = *hook;
	c->has_hook = true;
}

int bg_rcluster_masters(const struct bg_rcluster *c)
{
	int n = 0;
	for (int i = 0; c->state == CL_READY && i < c->map.n_nodes; i++)
		n += c->map.nodes[i].master;
	return n;
}

/* ---- commands ---- */

static int any_master(const struct bg_rcluster *c)
{
	for (int i = 0; i < c->map.n_nodes; i++)
		if (c->map.nodes[i].master && conn_of(c, i))
			return i;
	return -1;
}

static int node_of(const struct bg_rcluster *c, int slot)
{
	return slot >= 0 ? bg_slotmap_owner(&c->map, slot) : any_master(c);
}

static int refuse(struct bg_rcluster *c, int argc, const char **argv,
		  const size_t *lens, const char *why)
{
	size_t n = lens ? lens[0] : strlen(argv[0]);
	size_t k = argc > 1 ? (lens ? lens[1] : strlen(argv[1])) : 0;
	bg_error("redis %s: %.*s %.*s not sent under Redis Cluster: %s "
		 "(a bug: bygated builds one-slot commands there)",
		 c->role, (int)(n > 32 ? 32 : n), argv[0],
		 (int)(k > 200 ? 200 : k), argc > 1 ? argv[1] : "", why);
	return -EXDEV;
}

/* ---- an MGET over several slots: one GET per key, the replies put
 * back together in the keys' order ---- */

struct gather {
	bg_rconn_reply_fn fn;
	void *priv;
	int left;
	bool lost;
	redisReply *all; /* ARRAY, one element per key */
	struct gather_part {
		struct gather *g;
		int i;
	} part[];
};

static redisReply *copy_value(const redisReply *r)
{
	redisReply *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->type = REDIS_REPLY_NIL;
	if (r->type == REDIS_REPLY_STRING) {
		v->str = malloc(r->len + 1);
		if (v->str == NULL) {
			free(v);
			return NULL;
		}
		memcpy(v->str, r->str, r->len);
		v->str[r->len] = '\0';
		v->len = r->len;
		v->type = REDIS_REPLY_STRING;
	}
	return v;
}

static void on_gathered(struct bg_rconn *owner, redisReply *r, void *priv)
{
	struct gather_part *p = priv;
	struct gather *g = p->g;
	if (r == NULL)
		g->lost = true;
	else if ((g->all->element[p->i] = copy_value(r)) == NULL)
		g->lost = true;
	if (--g->left > 0)
		return;
	if (g->fn)
		g->fn(owner, g->lost ? NULL : g->all, g->priv);
	freeReplyObject(g->all);
	free(g);
}

static int gather_mget(struct bg_rcluster *c, bg_rconn_reply_fn fn, void *priv,
		       int argc, const char **argv, const size_t *lens)
{
	int n = argc - 1;
	struct gather *g =
		calloc(1, sizeof(*g) + (size_t)n * sizeof(g->part[0]));
	redisReply *all = calloc(1, sizeof(*all));
	redisReply **el = calloc((size_t)n, sizeof(*el));
	if (g == NULL || all == NULL || el == NULL) {
		free(g);
		free(all);
		free(el);
		return -ENOMEM;
	}
	all->type = REDIS_REPLY_ARRAY;
	all->elements = (size_t)n;
	all->element = el;
	*g = (struct gather){ .fn = fn, .priv = priv, .all = all };
	int sent = 0;
	for (int i = 0; i < n; i++) {
		g->part[i] = (struct gather_part){ g, i };
		const char *get[] = { "GET", argv[i + 1] };
		size_t len[] = { 3, lens ? lens[i + 1] : strlen(argv[i + 1]) };
		g->left++;
		if (bg_rcluster_cmd(c, on_gathered, &g->part[i], 0, 2, get, len,
				    false) != 0) {
			g->left--;
			g->lost = true; /* the replies to come end as NULL */
			break;
		}
		sent++;
	}
	if (sent == 0) {
		freeReplyObject(all);
		free(g);
		return -ENOTCONN;
	}
	return 0;
}

int bg_rcluster_cmd(struct bg_rcluster *c, bg_rconn_reply_fn fn, void *priv,
		    int extra_ms, int argc, const char **argv,
		    const size_t *lens, bool entries)
{
	if (c->state != CL_READY)
		return -ENOTCONN;
	size_t n0 = lens ? lens[0] : strlen(argv[0]);
	if (named(argv[0], n0, "MULTI") || named(argv[0], n0, "EXEC"))
		return refuse(c, argc, argv, lens,
			      "no transaction spans a cluster");
	int slot = bg_slot_of_command(argc, argv, lens, NULL);
	if (slot == BG_SLOT_CROSS && named(argv[0], n0, "MGET"))
		return gather_mget(c, fn, priv, argc, argv, lens);
	if (slot == BG_SLOT_CROSS)
		return refuse(c, argc, argv, lens,
			      "its keys are in different slots");
	if (slot == BG_SLOT_UNKNOWN)
		return refuse(c, argc, argv, lens,
			      "its keys cannot be located");
	struct route *q = route_new(c, fn, priv, extra_ms, argc, argv, lens);
	if (q == NULL)
		return -ENOMEM;
	q->entries = entries;
	int rc = send_route(c, node_of(c, slot), q, false);
	if (rc != 0)
		free(q);
	return rc;
}

int bg_rcluster_cmd_near(struct bg_rcluster *c, const char *key,
			 bg_rconn_reply_fn fn, void *priv, int argc,
			 const char **argv)
{
	if (c->state != CL_READY)
		return -ENOTCONN;
	struct bg_rnode *n =
		conn_of(c, node_of(c, bg_slot_of(key, strlen(key))));
	if (n == NULL)
		return -ENOTCONN;
	return bg_rnode_cmd(n, fn, priv, 0, argc, argv, NULL);
}

long long bg_rcluster_client_id(const struct bg_rcluster *c, const char *key)
{
	if (c->state != CL_READY)
		return 0;
	struct bg_rnode *n =
		conn_of(c, node_of(c, bg_slot_of(key, strlen(key))));
	return n ? bg_rnode_client_id(n) : 0;
}
