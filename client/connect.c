/* client/connect.c - a synchronous hiredis connection to one server, set
 * up as every libbygate program needs it (client/conn.h): connect within
 * the timeout, close-on-exec, the reply timeout, AUTH and SELECT; and the
 * one command path both libbygate's client (conn.c) and its cluster layer
 * (cluster.c) send through. */
#include "client/client_internal.h"
#include "client/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct timeval bg_client_tv_ms(int64_t ms)
{
	return (struct timeval){ .tv_sec = ms / 1000,
				 .tv_usec = (ms % 1000) * 1000 };
}

/* The failure of the connection itself (no reply to `what`): BG_CLIENT_EIO
 * with "<what>: <hiredis's reason>" in err. */
int bg_client_lost(redisContext *redis, const char *what, char *err,
		   size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what,
		 redis->errstr[0] ? redis->errstr : "connection lost");
	return BG_CLIENT_EIO;
}

/* One command on redis, for a client or not: 0 with *out the reply; an
 * error reply is freed and is BG_CLIENT_EREDIS ("<command>: <reply>" in
 * err), no reply BG_CLIENT_EIO (bg_client_lost()). */
int bg_client_command_raw(redisContext *redis, redisReply **out, int argc,
			  const char **argv, const size_t *lens, char *err,
			  size_t errlen)
{
	*out = NULL;
	redisReply *r = redisCommandArgv(redis, argc, argv, lens);
	if (r == NULL)
		return bg_client_lost(redis, argv[0], err, errlen);
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s: %.400s", argv[0],
			 r->str ? r->str : "");
		freeReplyObject(r);
		return BG_CLIENT_EREDIS;
	}
	*out = r;
	return 0;
}

/* One setup command (AUTH, SELECT): its reply only matters as an error. */
static int setup_command(redisContext *redis, int argc, const char **argv,
			 char *err, size_t errlen)
{
	redisReply *r;
	int rc =
		bg_client_command_raw(redis, &r, argc, argv, NULL, err, errlen);
	freeReplyObject(r);
	return rc;
}

static int authenticate(const struct bg_config *cfg, redisContext *redis,
			char *err, size_t errlen)
{
	int rc = 0;
	if (cfg->redis_password && cfg->redis_password[0]) {
		const char *user = cfg->redis_username;
		const char *pass = cfg->redis_password;
		bool named = user && user[0];
		/* AUTH [username] password */
		const char *argv[] = { "AUTH", named ? user : pass, pass };
		rc = setup_command(redis, named ? 3 : 2, argv, err, errlen);
	}
	if (rc == 0 && cfg->redis_db != 0) {
		char db[16];
		snprintf(db, sizeof db, "%d", cfg->redis_db);
		rc = setup_command(redis, 2, (const char *[]){ "SELECT", db },
				   err, errlen);
	}
	return rc;
}

int bg_client_redis_connect(const struct bg_config *cfg, const char *host,
			    int port, redisContext **out, char *err,
			    size_t errlen)
{
	struct timeval tv = bg_client_tv_ms(cfg->redis_connect_timeout_ms);
	redisContext *redis = host[0] == '/'
				      ? redisConnectUnixWithTimeout(host, tv)
				      : redisConnectWithTimeout(host, port, tv);
	int rc = 0;
	*out = NULL;
	if (redis == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (redis->err) {
		snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s",
			 host, port, redis->errstr);
		rc = BG_CLIENT_ECONNECT;
	} else {
		/* hiredis 0.14 has no option for it; a forking caller leaks
		 * nothing */
		int flags = fcntl(redis->fd, F_GETFD);
		if (flags != -1)
			fcntl(redis->fd, F_SETFD, flags | FD_CLOEXEC);
		redisSetTimeout(redis,
				bg_client_tv_ms(cfg->redis_command_timeout_ms));
		rc = authenticate(cfg, redis, err, errlen);
	}
	if (rc) {
		redisFree(redis);
		return rc;
	}
	*out = redis;
	return 0;
}
