/* client/conn.h - libbygate's synchronous Redis connection on its own, for
 * the programs of this tree that keep their own command path (bygate-state
 * check): the connect, AUTH and SELECT that bg_client_open does. Not
 * installed. */
#ifndef BG_CLIENT_CONN_H
#define BG_CLIENT_CONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "bygate/client.h" /* the BG_CLIENT_E* codes */

struct bg_config;

/* Connect to host:port (a host starting with '/' is a Unix socket) within
 * cfg->redis_connect_timeout_ms, mark the socket close-on-exec, give every
 * reply cfg->redis_command_timeout_ms, then AUTH (cfg->redis_username,
 * cfg->redis_password; none without a password) and SELECT cfg->redis_db
 * (none for 0). host and port override cfg's. 0 with *out the connection,
 * which the caller redisFree()s. On failure *out is NULL, err (errlen > 0)
 * says why, and the result is:
 *   BG_CLIENT_ECONNECT  "cannot connect to Redis at HOST:PORT: <reason>"
 *   BG_CLIENT_EREDIS    "AUTH: <error reply>" (or "SELECT: ...")
 *   BG_CLIENT_EIO       "AUTH: <connection lost or timed out>" (or SELECT)
 *   -ENOMEM             "out of memory" */
int bg_client_redis_connect(const struct bg_config *cfg, const char *host,
			    int port, redisContext **out, char *err,
			    size_t errlen);

#endif
