/* cluster/slotmap.c - a cluster's nodes and slot owners (slotmap.h). */
#include "cluster/slotmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bg_slotmap_node(struct bg_slotmap *m, const char *host, int port)
{
	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].port == port &&
		    strcmp(m->nodes[i].host, host) == 0)
			return i;
	if (m->n_nodes >= BG_CLUSTER_NODES_MAX)
		return -ENOSPC;
	if (strlen(host) >= BG_CLUSTER_HOST_MAX)
		return -EINVAL;
	struct bg_cluster_node *n =
		realloc(m->nodes, sizeof(*n) * (size_t)(m->n_nodes + 1));
	if (n == NULL)
		return -ENOMEM;
	m->nodes = n;
	n = &m->nodes[m->n_nodes];
	*n = (struct bg_cluster_node){ .port = port };
	snprintf(n->host, sizeof(n->host), "%s", host);
	return m->n_nodes++;
}

int bg_slotmap_owner(const struct bg_slotmap *m, int slot)
{
	if (slot < 0 || slot >= BG_SLOTS || m->covered == 0)
		return -1;
	return m->owner[slot];
}

void bg_slotmap_free(struct bg_slotmap *m)
{
	free(m->nodes);
	*m = (struct bg_slotmap){ 0 };
}

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "CLUSTER SLOTS: %s", what);
	return -EPROTO;
}

/* One node entry [host, port, id, ...] of a slot range. */
struct endpoint {
	char host[BG_CLUSTER_HOST_MAX];
	int port;
	char id[41];
};

static bool read_endpoint(const redisReply *e, const char *asked,
			  struct endpoint *out)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
	    (e->element[0]->type != REDIS_REPLY_STRING &&
	     e->element[0]->type != REDIS_REPLY_NIL) ||
	    e->element[1]->type != REDIS_REPLY_INTEGER)
		return false;
	/* NIL (cluster-preferred-endpoint-type unknown-endpoint) and "":
	 * the node the command went to */
	const redisReply empty = { .type = REDIS_REPLY_STRING, .str = "" };
	const redisReply *h =
		e->element[0]->type == REDIS_REPLY_NIL ? &empty : e->element[0];
	long long port = e->element[1]->integer;
	if (port <= 0 || port > 65535 || h->len >= BG_CLUSTER_HOST_MAX ||
	    memchr(h->str, '\0', h->len))
		return false;
	/* "" means the node the command went to; "?" an endpoint the node
	 * does not know (it is then not usable) */
	if (h->len == 1 && h->str[0] == '?')
		return false;
	snprintf(out->host, sizeof(out->host), "%s", h->len ? h->str : asked);
	out->port = (int)port;
	out->id[0] = '\0';
	if (e->elements > 2 && e->element[2]->type == REDIS_REPLY_STRING &&
	    e->element[2]->len < sizeof(out->id))
		snprintf(out->id, sizeof(out->id), "%s", e->element[2]->str);
	return true;
}

static int add_endpoint(struct bg_slotmap *m, const struct endpoint *ep)
{
	int i = bg_slotmap_node(m, ep->host, ep->port);
	if (i >= 0 && ep->id[0])
		snprintf(m->nodes[i].id, sizeof(m->nodes[i].id), "%s", ep->id);
	return i;
}

int bg_slotmap_load(struct bg_slotmap *m, const redisReply *r,
		    const char *asked, char *err, size_t errlen)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return fail(err, errlen, "not an array");
	/* check the whole reply before touching m */
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *range = r->element[i];
		struct endpoint ep;
		if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
		    range->element[0]->type != REDIS_REPLY_INTEGER ||
		    range->element[1]->type != REDIS_REPLY_INTEGER)
			return fail(err, errlen, "malformed slot range");
		long long a = range->element[0]->integer;
		long long b = range->element[1]->integer;
		if (a < 0 || b < a || b >= BG_SLOTS)
			return fail(err, errlen, "slot out of range");
		if (!read_endpoint(range->element[2], asked, &ep))
			return fail(err, errlen, "malformed master endpoint");
	}
	int16_t owner[BG_SLOTS];
	int covered = 0;
	for (int s = 0; s < BG_SLOTS; s++)
		owner[s] = -1;
	for (int i = 0; i < m->n_nodes; i++)
		m->nodes[i].master = m->nodes[i].replica = false;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *range = r->element[i];
		struct endpoint ep;
		read_endpoint(range->element[2], asked, &ep);
		int node = add_endpoint(m, &ep);
		if (node < 0) {
			snprintf(err, errlen, "CLUSTER SLOTS: %s",
				 strerror(-node));
			return node;
		}
		m->nodes[node].master = true;
		for (long long s = range->element[0]->integer;
		     s <= range->element[1]->integer; s++) {
			covered += owner[s] < 0;
			owner[s] = (int16_t)node;
		}
		for (size_t k = 3; k < range->elements; k++) {
			if (!read_endpoint(range->element[k], asked, &ep))
				continue; /* a replica we cannot reach */
			int rep = add_endpoint(m, &ep);
			if (rep >= 0)
				m->nodes[rep].replica = true;
		}
	}
	memcpy(m->owner, owner, sizeof(owner));
	m->covered = covered;
	return 0;
}

/* "<slot> <host>:<port>" of a MOVED or ASK; the host may be empty (an
 * unknown endpoint: the node asked) or an IPv6 address with colons. */
static bool read_target(const char *p, size_t len, struct bg_redirect *out)
{
	char buf[BG_CLUSTER_HOST_MAX + 32];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	char *end;
	long slot = strtol(buf, &end, 10);
	if (end == buf || *end != ' ' || slot < 0 || slot >= BG_SLOTS)
		return false;
	char *addr = end + 1;
	char *colon = strrchr(addr, ':');
	if (colon == NULL)
		return false;
	long port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || port <= 0 || port > 65535)
		return false;
	*colon = '\0';
	if (addr[0] == '[' && colon > addr + 1 && colon[-1] == ']') {
		colon[-1] = '\0';
		addr++;
	}
	out->slot = (int)slot;
	out->port = (int)port;
	snprintf(out->host, sizeof(out->host), "%s", addr);
	return true;
}

static bool starts(const char *err, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len >= n && memcmp(err, word, n) == 0 &&
	       (len == n || err[n] == ' ');
}

struct bg_redirect bg_redirect_parse(const char *err, size_t len)
{
	struct bg_redirect r = { .kind = BG_REDIRECT_NONE };
	if (err == NULL)
		return r;
	if (starts(err, len, "MOVED") && read_target(err + 6, len - 6, &r))
		r.kind = BG_REDIRECT_MOVED;
	else if (starts(err, len, "ASK") && read_target(err + 4, len - 4, &r))
		r.kind = BG_REDIRECT_ASK;
	else if (starts(err, len, "TRYAGAIN"))
		r.kind = BG_REDIRECT_TRYAGAIN;
	else if (starts(err, len, "CLUSTERDOWN"))
		r.kind = BG_REDIRECT_CLUSTERDOWN;
	return r;
}

static int seed_fail(char *err, size_t errlen, const char *item, size_t n)
{
	snprintf(err, errlen,
		 "cluster node \"%.*s\" is not host:port (a port 1-65535, "
		 "[addr]:port for IPv6)",
		 (int)(n > 200 ? 200 : n), item);
	return -EINVAL;
}

/* One item of a seed list, trimmed. */
static int add_seed(struct bg_slotmap *m, const char *p, size_t n,
		    int default_port, char *err, size_t errlen)
{
	char item[BG_CLUSTER_HOST_MAX + 16];
	if (n == 0)
		return 0;
	if (n >= sizeof(item))
		return seed_fail(err, errlen, p, n);
	memcpy(item, p, n);
	item[n] = '\0';
	char *host = item;
	char *colon = strrchr(item, ':');
	int port = default_port;
	if (item[0] == '[') {
		char *close = strchr(item, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return seed_fail(err, errlen, p, n);
		*close = '\0';
		host = item + 1;
		colon = close[1] == ':' ? close + 1 : NULL;
	} else if (colon && strchr(item, ':') != colon) {
		colon = NULL; /* a bare IPv6 address: no port */
	}
	if (colon) {
		char *end;
		long v = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || v <= 0 || v > 65535)
			return seed_fail(err, errlen, p, n);
		port = (int)v;
		*colon = '\0';
	}
	if (host[0] == '\0' || port <= 0 || port > 65535)
		return seed_fail(err, errlen, p, n);
	int rc = bg_slotmap_node(m, host, port);
	if (rc < 0)
		return seed_fail(err, errlen, p, n);
	return 0;
}

int bg_slotmap_seeds(struct bg_slotmap *m, const char *list, int default_port,
		     char *err, size_t errlen)
{
	const char *p = list ? list : "";
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *a = p, *b = p + n;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		int rc = add_seed(m, a, (size_t)(b - a), default_port, err,
				  errlen);
		if (rc)
			return rc;
		p = end ? end + 1 : p + n;
	}
	return 0;
}
