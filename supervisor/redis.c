/* supervisor/redis.c - the connection the modules use (redis.h): one
 * server (redis_node.c) or a Redis Cluster (redis_cluster.c). */
#include "supervisor/redis.h"

#include <stdlib.h>
#include <string.h>

#include "supervisor/redis_cluster.h"
#include "supervisor/redis_node.h"

struct bg_rconn {
	struct bg_rnode *node;	     /* one server */
	struct bg_rcluster *cluster; /* or a cluster */
};

struct bg_rconn *bg_rconn_new(struct event_base *base,
			      const struct bg_rconn_opts *opts,
			      bg_rconn_state_fn on_state, void *arg)
{
	struct bg_rconn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	if (opts->cluster_seeds)
		c->cluster = bg_rcluster_new(base, c, opts, on_state, arg);
	else
		c->node = bg_rnode_new(base, c, opts, on_state, arg);
	if (c->node == NULL && c->cluster == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void bg_rconn_start(struct bg_rconn *c)
{
	if (c->cluster)
		bg_rcluster_start(c->cluster);
	else
		bg_rnode_start(c->node);
}

void bg_rconn_drop(struct bg_rconn *c, const char *why)
{
	if (c->cluster)
		bg_rcluster_drop(c->cluster, why);
	else
		bg_rnode_drop(c->node, why);
}

void bg_rconn_free(struct bg_rconn *c)
{
	if (c == NULL)
		return;
	bg_rcluster_free(c->cluster);
	bg_rnode_free(c->node);
	free(c);
}

void bg_rconn_set_timeouts(struct bg_rconn *c, int connect_ms, int command_ms,
			   int reconnect_max_ms)
{
	if (c->cluster)
		bg_rcluster_set_timeouts(c->cluster, connect_ms, command_ms,
					 reconnect_max_ms);
	else
		bg_rnode_set_timeouts(c->node, connect_ms, command_ms,
				      reconnect_max_ms);
}

bool bg_rconn_ready(const struct bg_rconn *c)
{
	return c->cluster ? bg_rcluster_ready(c->cluster)
			  : bg_rnode_ready(c->node);
}

bool bg_rconn_clustered(const struct bg_rconn *c)
{
	return c->cluster != NULL;
}

const char *bg_rconn_role(const struct bg_rconn *c)
{
	return c->node ? bg_rnode_role(c->node) : bg_rcluster_role(c->cluster);
}

long long bg_rconn_client_id(const struct bg_rconn *c)
{
	return c->node ? bg_rnode_client_id(c->node) : 0;
}

long long bg_rconn_client_id_for(const struct bg_rconn *c, const char *key)
{
	if (c->node)
		return bg_rnode_client_id(c->node);
	return key ? bg_rcluster_client_id(c->cluster, key) : 0;
}

int bg_rconn_cmd_near(struct bg_rconn *c, const char *key, bg_rconn_reply_fn fn,
		      void *priv, int argc, const char **argv)
{
	if (c->node)
		return bg_rnode_cmd(c->node, fn, priv, 0, argc, argv, NULL);
	return bg_rcluster_cmd_near(c->cluster, key, fn, priv, argc, argv);
}

size_t bg_rconn_pending(const struct bg_rconn *c)
{
	return c->cluster ? bg_rcluster_pending(c->cluster)
			  : bg_rnode_pending(c->node);
}

size_t bg_rconn_pending_bytes(const struct bg_rconn *c)
{
	return c->cluster ? bg_rcluster_pending_bytes(c->cluster)
			  : bg_rnode_pending_bytes(c->node);
}

uint64_t bg_rconn_reconnects(const struct bg_rconn *c)
{
	return c->cluster ? bg_rcluster_reconnects(c->cluster)
			  : bg_rnode_reconnects(c->node);
}

bool bg_rconn_flush(struct bg_rconn *c)
{
	return c->cluster ? bg_rcluster_flush(c->cluster)
			  : bg_rnode_flush(c->node);
}

int bg_rconn_cmd(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
		 int extra_ms, int argc, const char **argv, const size_t *lens)
{
	if (c->node)
		return bg_rnode_cmd(c->node, fn, priv, extra_ms, argc, argv,
				    lens);
	return bg_rcluster_cmd(c->cluster, fn, priv, extra_ms, argc, argv, lens,
			       false);
}

int bg_rconn_cmd_entries(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
			 int extra_ms, int argc, const char **argv)
{
	if (c->node)
		return bg_rnode_cmd_entries(c->node, fn, priv, extra_ms, argc,
					    argv, NULL);
	return bg_rcluster_cmd(c->cluster, fn, priv, extra_ms, argc, argv, NULL,
			       true);
}

int bg_rconn_cmdv(struct bg_rconn *c, bg_rconn_reply_fn fn, void *priv,
		  int extra_ms, const char *const *args)
{
	int n = 0;
	while (args[n])
		n++;
	return bg_rconn_cmd(c, fn, priv, extra_ms, n, (const char **)args,
			    NULL);
}

void bg_rconn_set_value_hook(struct bg_rconn *c,
			     const struct bg_rconn_value_hook *hook)
{
	if (c->cluster)
		bg_rcluster_set_value_hook(c->cluster, hook);
	else
		bg_rnode_set_value_hook(c->node, hook);
}

bool bg_reply_is_error(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_ERROR;
}

const char *bg_reply_error(const redisReply *r)
{
	return bg_reply_is_error(r) ? r->str : "";
}

const redisReply *bg_reply_field(const redisReply *fields, const char *name)
{
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t k = 0; k + 1 < fields->elements; k += 2)
		if (fields->element[k]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[k]->str, name) == 0)
			return fields->element[k + 1]->type ==
					       REDIS_REPLY_STRING
				       ? fields->element[k + 1]
				       : NULL;
	return NULL;
}
