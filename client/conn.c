/* client/conn.c - a libbygate client's life: configuration through the
 * daemon's own loader, its connection (one server, client/connect.c, or a
 * Redis Cluster, client/cluster.c), the command path and its error
 * codes. */
#include "client/client_internal.h"
#include "client/conn.h"
#include "client/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

const char *bg_client_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "success";
	case BG_CLIENT_ECONFIG:
		return "configuration error";
	case BG_CLIENT_ECONNECT:
		return "cannot connect to Redis";
	case BG_CLIENT_EREDIS:
		return "Redis error";
	case BG_CLIENT_EIO:
		return "Redis connection lost";
	case BG_CLIENT_EPROTO:
		return "unexpected reply from Redis";
	case BG_CLIENT_EINTR:
		return "interrupted";
	case BG_CLIENT_EREJECTED:
		return "rejected by availability routing";
	default:
		return rc < 0 && rc > -4096 ? strerror(-rc) : "unknown error";
	}
}

int bg_client_fail(struct bg_client *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	return rc;
}

const char *bg_client_errmsg(const struct bg_client *c)
{
	return c ? c->errmsg : "";
}

void bg_client_interrupt(struct bg_client *c)
{
	if (c == NULL)
		return;
	c->interrupted = 1;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

void bg_client_set_timeout(struct bg_client *c, int ms)
{
	int64_t total = c->cfg.redis_command_timeout_ms;
	if (ms == 0)
		total = 0;
	else if (ms > 0)
		total += ms;
	if (c->cluster)
		bg_cluster_set_timeout(c->cluster, bg_client_tv_ms(total));
	else
		redisSetTimeout(c->redis, bg_client_tv_ms(total));
}

/* BG_CLIENT_EINTR, naming what was cut short: the code's own text
 * (bg_client_strerror) is not repeated in the details. */
static int cut_short(struct bg_client *c, const char *what)
{
	return bg_client_fail(c, BG_CLIENT_EINTR,
			      "%s: stopped by bg_client_interrupt()", what);
}

static int io_failure(struct bg_client *c, const char *what)
{
	if (c->interrupted)
		return cut_short(c, what);
	return bg_client_lost(c->redis, what, c->errmsg, sizeof c->errmsg);
}

/* A command's outcome under Cluster: an interrupted one is EINTR, as on
 * a standalone server. */
static int cluster_outcome(struct bg_client *c, int rc, const char *what)
{
	if (rc == BG_CLIENT_EIO && c->interrupted)
		return cut_short(c, what);
	return rc;
}

int bg_client_command(struct bg_client *c, redisReply **out, int argc,
		      const char **argv, const size_t *lens)
{
	*out = NULL;
	if (c->interrupted)
		return cut_short(c, argv[0]);
	if (c->cluster)
		return cluster_outcome(c,
				       bg_cluster_command(c->cluster, out, argc,
							  argv, lens, c->errmsg,
							  sizeof c->errmsg),
				       argv[0]);
	int rc = bg_client_command_raw(c->redis, out, argc, argv, lens,
				       c->errmsg, sizeof c->errmsg);
	if (rc == BG_CLIENT_EIO && c->interrupted)
		return cut_short(c, argv[0]);
	return rc;
}

int bg_client_nodes(struct bg_client *c, int *node, int max)
{
	if (c->cluster == NULL) {
		node[0] = -1;
		return 1;
	}
	return bg_cluster_masters(c->cluster, node, max, c->errmsg,
				  sizeof c->errmsg);
}

int bg_client_command_on(struct bg_client *c, int node, redisReply **out,
			 int argc, const char **argv, const size_t *lens)
{
	if (node < 0 || c->cluster == NULL)
		return bg_client_command(c, out, argc, argv, lens);
	*out = NULL;
	if (c->interrupted)
		return cut_short(c, argv[0]);
	return cluster_outcome(
		c,
		bg_cluster_command_on(c->cluster, node, out, argc, argv, lens,
				      c->errmsg, sizeof c->errmsg),
		argv[0]);
}

int bg_client_pipeline(struct bg_client *c, redisReply **out, int n,
		       const int *argc, const char **const *argv,
		       const size_t *const *lens)
{
	for (int i = 0; i < n; i++)
		out[i] = NULL;
	if (c->interrupted)
		return cut_short(c, n > 0 ? argv[0][0] : "pipeline");
	if (c->cluster)
		return cluster_outcome(
			c,
			bg_cluster_pipeline(c->cluster, out, n, argc, argv,
					    lens, c->errmsg, sizeof c->errmsg),
			n > 0 ? argv[0][0] : "pipeline");
	for (int i = 0; i < n; i++)
		if (redisAppendCommandArgv(c->redis, argc[i], argv[i],
					   lens[i]) != REDIS_OK)
			return bg_client_fail(c, -ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		void *r = NULL;
		if (redisGetReply(c->redis, &r) != REDIS_OK) {
			for (int j = 0; j < i; j++) {
				freeReplyObject(out[j]);
				out[j] = NULL;
			}
			return io_failure(c, argv[i][0]);
		}
		out[i] = r;
	}
	return 0;
}

int bg_client_key(struct bg_client *c, struct bg_buf *out,
		  enum bg_key_kind kind, const char *id)
{
	struct bg_str none = { NULL, 0 };
	bg_buf_reset(out);
	if (id == NULL || id[0] == '\0')
		return -EINVAL;
	return bg_key_build(out, c->cfg.key_schema, kind, bg_str_c(id), none,
			    none);
}

int bg_client_reply_is_str(const redisReply *r)
{
	return r != NULL &&
	       (r->type == REDIS_REPLY_STRING ||
		r->type == REDIS_REPLY_STATUS) &&
	       r->str != NULL;
}

int bg_client_copy_id(char *out, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		return -EINVAL;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

/* Every failure to set the connection up is BG_CLIENT_ECONNECT (but
 * -ENOMEM); c->errmsg says why. */
static int connect_redis(struct bg_client *c)
{
	if (c->cfg.redis_cluster && c->cfg.key_schema != BG_SCHEMA_V2)
		return bg_client_fail(
			c, BG_CLIENT_ECONFIG,
			"Redis Cluster needs the v2 key schema "
			"(REDIS_KEY_SCHEMA_VERSION=v2, a non-empty "
			"REDIS_CLUSTER_HOST or redis.key_schema = \"v2\"): "
			"v1 keys of one session do not share a slot, and "
			"by-framework refuses v1 under Cluster too");
	if (c->cfg.redis_cluster) {
		int rc = bg_cluster_open(&c->cfg, NULL, &c->fd, &c->cluster,
					 c->errmsg, sizeof c->errmsg);
		if (rc == 0)
			bg_cluster_set_stop(c->cluster, &c->interrupted);
		return rc == 0 || rc == -ENOMEM || rc == BG_CLIENT_ECONFIG
			       ? rc
			       : BG_CLIENT_ECONNECT;
	}
	int rc = bg_client_redis_connect(&c->cfg, c->cfg.redis_host,
					 c->cfg.redis_port, &c->redis,
					 c->errmsg, sizeof c->errmsg);
	if (rc)
		return rc == -ENOMEM ? rc : BG_CLIENT_ECONNECT;
	c->fd = c->redis->fd;
	return 0;
}

static void copy_err(char *err, size_t errlen, const char *msg)
{
	if (errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

int bg_client_open(const char *config_path, struct bg_client **out, char *err,
		   size_t errlen)
{
	*out = NULL;
	copy_err(err, errlen, "");
	struct bg_client *c = calloc(1, sizeof *c);
	if (c == NULL) {
		copy_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->fd = -1;
	int rc = 0;
	if (bg_config_load(config_path, &c->cfg, c->errmsg, sizeof c->errmsg) !=
	    0)
		rc = BG_CLIENT_ECONFIG;
	else
		rc = connect_redis(c);
	if (rc) {
		copy_err(err, errlen, c->errmsg);
		bg_client_close(c);
		return rc;
	}
	c->errmsg[0] = '\0';
	*out = c;
	return 0;
}

void bg_client_close(struct bg_client *c)
{
	if (c == NULL)
		return;
	if (c->redis)
		redisFree(c->redis);
	bg_cluster_close(c->cluster);
	bg_config_free(&c->cfg);
	free(c);
}
