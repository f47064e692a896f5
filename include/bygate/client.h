/* bygate/client.h - libbygate: the client side of the by-framework wire
 * protocol (send a task to an agent type, follow a session's events, read
 * execution records), and its reference manual. What it writes is what the
 * Python GatewayClient.send_message writes, so workers cannot tell them apart.
 *
 * @section intro Using the library
 *
 *	struct bg_client *c;
 *	char err[256];
 *	if (bg_client_open(NULL, &c, err, sizeof err))
 *		errx(3, "%s", err);
 *	struct bg_send_request req = { .agent_type = "echo",
 *				       .session_id = "s-1",
 *				       .content = "hello" };
 *	struct bg_send_response resp;
 *	int rc = bg_client_send(c, &req, &resp);
 *	if (rc)
 *		errx(1, "%s: %s", bg_client_strerror(rc), bg_client_errmsg(c));
 *	bg_client_close(c);
 *
 * Link with -lbygate and bygate's libbgwire, libbgconf and libbgcommon, and
 * -lhiredis -ljansson -lconfig -lcrypto.
 *
 * A client holds one synchronous Redis connection, opened by
 * bg_client_open and never re-established: after any error whose code is
 * BG_CLIENT_EIO or BG_CLIENT_EINTR the client is unusable and must be
 * closed. Every call blocks for at most the configured command timeout
 * (redis.command_timeout_ms) plus, for bg_client_read_events, its block
 * time. A client is not thread-safe; use one per thread.
 *
 * Every string handed to the library is UTF-8 and NUL-terminated; every
 * string it hands back lives until the callback returns (events, records)
 * or is copied into the caller's arrays (responses). Data read from Redis
 * is never trusted: malformed entries and records are reported, never
 * crash the caller.
 *
 * @section caveats Caveats
 *
 *  - Redis Cluster is not supported (bg_client_open refuses it, as bygated
 *    does); the v2 key schema on a standalone server is.
 *  - bg_client_send does no availability routing: the record says
 *    route_policy FAIL_FAST and route_status DELIVER_NOW, as Python records
 *    a send to an agent type that is online, whether or not one is.
 *  - A turn that suspends (ask_user, or waiting on sub-agents) writes no
 *    appStreamResponse end marker, so a reader waiting for one waits until
 *    its own timeout.
 */
#ifndef BYGATE_CLIENT_H
#define BYGATE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Errors of this library: negative, disjoint from -errno values. Functions
 * also return -EINVAL (a bad argument), -ENOMEM and -ENOENT where said. */
enum bg_client_error {
	BG_CLIENT_ECONFIG = -5001,  /* configuration not loaded or unsupported */
	BG_CLIENT_ECONNECT = -5002, /* cannot connect, authenticate or select */
	BG_CLIENT_EREDIS = -5003,   /* Redis answered a command with an error */
	BG_CLIENT_EIO = -5004,      /* connection lost or timed out */
	BG_CLIENT_EPROTO = -5005,   /* a reply not of the documented shape */
	BG_CLIENT_EINTR = -5006,    /* bg_client_interrupt() was called */
};

/* A short description of any code returned by this library (static). */
const char *bg_client_strerror(int rc);

/* Room for an id returned in a struct (NUL included); longer ids given in
 * a request are refused with -EINVAL. */
#define BG_CLIENT_ID_MAX 256
/* Room for a stream entry id ("<ms>-<seq>", NUL included). */
#define BG_CLIENT_ENTRY_ID_MAX 48

struct bg_client;

/* Load the configuration exactly as bygated does (conf/config.h
 * bg_config_load: defaults, the file at config_path unless it is NULL, then
 * the by-framework environment variables REDIS_HOST, REDIS_PORT,
 * REDIS_DATABASE / REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD,
 * REDIS_KEY_SCHEMA_VERSION, REDIS_CLUSTER_HOST, REDIS_MODE), then connect,
 * AUTH and SELECT. On success *out is a new client. On failure *out is NULL,
 * err (if errlen > 0) holds a message, and the result is
 * BG_CLIENT_ECONFIG, BG_CLIENT_ECONNECT or -ENOMEM. */
int bg_client_open(const char *config_path, struct bg_client **out,
		   char *err, size_t errlen);

/* Close the connection and free the client; NULL is a no-op. */
void bg_client_close(struct bg_client *c);

/* Details of the last failure of a call on c (the Redis error text, the
 * field that was malformed, ...); "" when none. Valid until the next call. */
const char *bg_client_errmsg(const struct bg_client *c);

/* Async-signal-safe: make the call blocked on c, or the next one, fail
 * with BG_CLIENT_EINTR. The connection is shut down; close the client. */
void bg_client_interrupt(struct bg_client *c);

/* A task for an agent type (WIRE 2.5, first example). NULL and "" are the
 * same for every optional member. */
struct bg_send_request {
	const char *agent_type;    /* required: header.target_agent_type */
	const char *session_id;    /* required */
	const char *content;       /* required: non-blank text, or JSON */
	bool content_is_json;      /* content is a JSON array or object */
	const char *user_code;
	const char *user_name;
	const char *metadata;      /* JSON object: header.metadata */
	const char *extra_payload; /* JSON object: body.extra_payload */
	bool wait_for_reply;       /* body.wait_for_reply */
	const char *message_id;    /* default: a new msg-xxxxxxxx */
	const char *trace_id;      /* default: a new uuid4 hex */
};

struct bg_send_response {
	char message_id[BG_CLIENT_ID_MAX];
	char execution_id[BG_CLIENT_ID_MAX];
	char trace_id[BG_CLIENT_ID_MAX];
	char entry_id[BG_CLIENT_ENTRY_ID_MAX]; /* of the control-stream entry */
};

/* Send an ASK_AGENT as GatewayClient.send_message does: in one MULTI/EXEC,
 * the QUEUED execution record and its msg_map field in the session
 * registry, the registry's 7-day EXPIRE, then the XADD to the agent type's
 * control stream. The record exists before any worker can read the entry.
 * As in Python, metadata members trace_parent_span_id and
 * langfuse_parent_observation_id move to the header, and an extra_payload
 * member wait_for_reply moves to the body.
 * 0 with *resp filled; -EINVAL (a required member missing, blank content,
 * metadata / extra_payload / JSON content malformed, an id too long), or a
 * BG_CLIENT_E* code; then nothing was written. */
int bg_client_send(struct bg_client *c, const struct bg_send_request *req,
		   struct bg_send_response *resp);

/* One entry of a session data stream (WIRE 3.2). String members are ""
 * when the member is absent or not a string. */
struct bg_client_event {
	const char *entry_id;
	const char *event_type;
	const char *message_id;
	const char *parent_message_id;
	const char *source_agent_type;
	const char *content; /* data.choices[0].delta.content; NULL if none */
	size_t content_len;  /* content may hold NUL bytes */
	const char *raw;     /* the entry's `data` field; NULL if it has none */
	size_t raw_len;
	bool valid;          /* raw is a JSON object */
};

/* Return 0 to go on, 1 to stop after this event, or a negative error,
 * which bg_client_read_events returns. */
typedef int (*bg_event_cb)(void *arg, const struct bg_client_event *ev);

/* Read the session's data stream after last_id ("0-0" = from the start)
 * with XREAD COUNT 100 [BLOCK block_ms] (WIRE 3.9): block_ms < 0 does not
 * block, 0 blocks until an entry arrives. cb is called for each entry in
 * order. next_id_out (BG_CLIENT_ENTRY_ID_MAX bytes, may be last_id itself)
 * receives the id of the last entry delivered, or last_id when none was.
 * Returns the number of entries delivered, or a negative error. Avoid "$"
 * as last_id: entries written between two reads would be lost; take
 * bg_client_last_entry_id before the action whose events you follow. */
int bg_client_read_events(struct bg_client *c, const char *session,
			  const char *last_id, int block_ms, bg_event_cb cb,
			  void *arg, char *next_id_out);

/* The id of the newest entry of the session's data stream (XREVRANGE
 * + - COUNT 1), or "0-0" when it is empty or absent, into out
 * (BG_CLIENT_ENTRY_ID_MAX bytes). 0 or a negative error. */
int bg_client_last_entry_id(struct bg_client *c, const char *session,
			    char *out);

/* An execution record of the session registry (WIRE 6.1, 6.2). */
struct bg_client_record {
	const char *execution_id; /* from the field name exec:<id> */
	const char *json;         /* the stored record, not validated */
	size_t json_len;
};

/* Same contract as bg_event_cb. */
typedef int (*bg_record_cb)(void *arg, const struct bg_client_record *r);

/* Every exec:* record of the session (HGETALL, in Redis's order). Returns
 * their number, or a negative error. */
int bg_client_list_executions(struct bg_client *c, const char *session,
			      bg_record_cb cb, void *arg);

/* The record of message_id (HGET msg_map:<id>, then HGET exec:<id>) as a
 * malloc()ed NUL-terminated copy for the caller to free(). 0, -ENOENT when
 * either field is missing, or a negative error. */
int bg_client_get_execution(struct bg_client *c, const char *session,
			    const char *message_id, char **json_out,
			    size_t *len_out);

#ifdef __cplusplus
}
#endif

#endif
