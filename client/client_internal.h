/* client/client_internal.h - what the files of libbygate share: the client
 * struct, the synchronous Redis command path with its error mapping, and
 * key building under the configured schema. Not installed. */
#ifndef BG_CLIENT_INTERNAL_H
#define BG_CLIENT_INTERNAL_H

#include <signal.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "bygate/client.h"
#include "common/buf.h"
#include "conf/config.h"
#include "wire/keys.h"

struct bg_client {
	redisContext *redis;
	int fd; /* redis->fd, for bg_client_interrupt */
	volatile sig_atomic_t interrupted;
	struct bg_config cfg;
	char errmsg[512];
};

/* Record the details of a failure in c->errmsg and return rc. */
int bg_client_fail(struct bg_client *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Run one command. argv[i] has length lens[i] (lens NULL: all strlen).
 * 0 with *out the reply (the caller frees it); an error reply is freed and
 * gives BG_CLIENT_EREDIS; a lost or timed-out connection BG_CLIENT_EIO (or
 * BG_CLIENT_EINTR after bg_client_interrupt). */
int bg_client_command(struct bg_client *c, redisReply **out, int argc,
		      const char **argv, const size_t *lens);

/* Pipeline n commands and read their n replies into out[] (the caller
 * frees each with freeReplyObject; all are NULL on error). An error reply
 * is left in place for the caller to judge. 0 or a BG_CLIENT_E* code. */
int bg_client_pipeline(struct bg_client *c, redisReply **out, int n,
		       const int *argc, const char **const *argv,
		       const size_t *const *lens);

/* Socket timeout for the next replies: ms plus the command timeout
 * (ms < 0: the command timeout alone; 0: none, for BLOCK 0). */
void bg_client_set_timeout(struct bg_client *c, int ms);

/* Build the key of a kind that takes one id (the session, agent type...)
 * into out (reset first). 0, -EINVAL (empty id), -ENOMEM. */
int bg_client_key(struct bg_client *c, struct bg_buf *out,
		  enum bg_key_kind kind, const char *id);

/* A reply element that must be a bulk or status string. */
int bg_client_reply_is_str(const redisReply *r);

/* Copy the NUL-terminated s into out[cap]; -EINVAL when it does not fit. */
int bg_client_copy_id(char *out, size_t cap, const char *s, size_t len);

#endif
