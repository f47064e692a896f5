/* client/client_internal.h - what the files of libbygate share: the client
 * struct, the synchronous Redis command path with its error mapping, key
 * building under the configured schema, and the small readers every command
 * needs (string lists, JSON values under a key, the WIRE 5.1/5.2 online
 * tests). Not installed. */
#ifndef BG_CLIENT_INTERNAL_H
#define BG_CLIENT_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "bygate/client.h"
#include "common/buf.h"
#include "conf/config.h"
#include "wire/keys.h"

#define BG_CLIENT_SESSION_TTL "604800" /* WIRE 1.2: 7 days */

struct bg_client {
	redisContext *redis;	    /* standalone; NULL under Cluster */
	struct bg_cluster *cluster; /* under Cluster (client/cluster.h) */
	volatile int fd; /* the socket a command waits on (or redis->fd), for
			    bg_client_interrupt */
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

/* client/connect.c: a timeval of ms; the failure of a connection with no
 * reply to `what` (BG_CLIENT_EIO, "<what>: <reason>" in err); one command
 * on one connection (0 with *out the reply; an error reply freed and
 * BG_CLIENT_EREDIS, "<command>: <reply>" in err; no reply BG_CLIENT_EIO). */
struct timeval bg_client_tv_ms(int64_t ms);
int bg_client_lost(redisContext *redis, const char *what, char *err,
		   size_t errlen);
int bg_client_command_raw(redisContext *redis, redisReply **out, int argc,
			  const char **argv, const size_t *lens, char *err,
			  size_t errlen);

/* The servers a keyless command must visit to see every key (SCAN): the
 * masters under Cluster, into node[] (at most max), or the one server
 * (node[0] = -1). The count, or a negative error with c->errmsg set. */
int bg_client_nodes(struct bg_client *c, int *node, int max);

/* bg_client_command on one server of bg_client_nodes. */
int bg_client_command_on(struct bg_client *c, int node, redisReply **out,
			 int argc, const char **argv, const size_t *lens);

/* bg_client_command over NUL-terminated arguments, the list ended by NULL
 * (at most 15). out may be NULL when the reply does not matter. */
int bg_client_cmd(struct bg_client *c, redisReply **out, ...)
	__attribute__((sentinel));

/* Pipeline n commands and read their n replies into out[] (the caller
 * frees each with freeReplyObject; all are NULL on error). An error reply
 * is left in place for the caller to judge. 0 or a BG_CLIENT_E* code. */
int bg_client_pipeline(struct bg_client *c, redisReply **out, int n,
		       const int *argc, const char **const *argv,
		       const size_t *const *lens);

/* A MULTI/EXEC transaction of NUL-terminated commands (cmds[i] ends with
 * NULL): 0 with *exec the EXEC reply (an array of n replies, checked for
 * error replies), or a BG_CLIENT_E* code with c->errmsg naming `what`. */
int bg_client_transact(struct bg_client *c, const char *what, int n,
		       const char *const *const *cmds, redisReply **exec);

/* EVALSHA of script (the SHA-1 computed here), then EVAL with its text
 * when Redis answers NOSCRIPT. argv: numkeys, the keys, the arguments
 * (argc of them, at most 30), lens NULL (all strlen) or their lengths.
 * As bg_client_command. */
int bg_client_eval(struct bg_client *c, const char *script, int argc,
		   const char **argv, const size_t *lens, redisReply **out);

/* Socket timeout for the next replies: ms plus the command timeout
 * (ms < 0: the command timeout alone; 0: none, for BLOCK 0). */
void bg_client_set_timeout(struct bg_client *c, int ms);

/* Build the key of a kind that takes one id (the session, agent type...)
 * into out (reset first). 0, -EINVAL (empty id), -ENOMEM. */
int bg_client_key(struct bg_client *c, struct bg_buf *out,
		  enum bg_key_kind kind, const char *id);

/* Same for the kinds that take no id (known workers, mgmt streams...). */
int bg_client_key0(struct bg_client *c, struct bg_buf *out,
		   enum bg_key_kind kind);

/* A reply element that must be a bulk or status string. */
int bg_client_reply_is_str(const redisReply *r);

/* Copy the NUL-terminated s into out[cap]; -EINVAL when it does not fit. */
int bg_client_copy_id(char *out, size_t cap, const char *s, size_t len);

/* Unix epoch milliseconds; a monotonic clock in ms; a sleep. */
int64_t bg_client_now_ms(void);
int64_t bg_client_mono_ms(void);
void bg_client_sleep_ms(int ms);

/* An owned list of NUL-terminated strings. A zeroed struct is empty. */
struct bg_client_strs {
	char **v;
	size_t n, cap;
};
int bg_client_strs_add(struct bg_client_strs *s, const char *p, size_t len);
bool bg_client_strs_has(const struct bg_client_strs *s, const char *p);
void bg_client_strs_sort(struct bg_client_strs *s);
void bg_client_strs_free(struct bg_client_strs *s);

/* Append the string elements of an array reply (SMEMBERS, ZRANGE...) to
 * out, skipping anything that is not a string. */
int bg_client_strs_from_reply(struct bg_client_strs *out, const redisReply *r);

/* SMEMBERS key into out (appended). */
int bg_client_smembers(struct bg_client *c, const char *key,
		       struct bg_client_strs *out);

/* Every key matching pattern (SCAN MATCH; one '*', no other glob
 * character): what the star stood for is appended to out, keys holding NUL
 * bytes skipped. 0 or a negative error. */
int bg_client_scan_star(struct bg_client *c, const char *pattern,
			struct bg_client_strs *out);

/* Same, of the keys of one Redis type only (SCAN ... TYPE, Redis 6). */
int bg_client_scan_star_type(struct bg_client *c, const char *pattern,
			     const char *type, struct bg_client_strs *out);

/* Every worker id the registry knows (client/workers.c): online-lease keys
 * (SCAN), known_workers and admin_workers, deduplicated and sorted. */
int bg_client_worker_ids(struct bg_client *c, struct bg_client_strs *out);

/* The agent types every one of those workers declares (their agent_types
 * sets), appended to out once each (unsorted). */
int bg_client_declared_types(struct bg_client *c, struct bg_client_strs *out);

/* GET key, decoded: *out is a new reference to the JSON object stored
 * there, or NULL when the key is absent or holds anything but a JSON
 * object (WIRE 7: readers accept only objects). */
int bg_client_get_object(struct bg_client *c, const char *key, json_t **out);

/* XADD key * data <data>; id_out (BG_CLIENT_ENTRY_ID_MAX bytes, may be
 * NULL) receives the entry id. */
int bg_client_xadd(struct bg_client *c, const char *key, const char *data,
		   char *id_out);

/* The WIRE 5.1 online test of a lease value: a JSON object is online iff
 * its last_seen is above 0; anything else that is not a JSON object (the
 * legacy "1", non-JSON) is online. raw NULL (no key) is offline. */
bool bg_client_lease_online(const char *raw, size_t len);

/* check_worker_online (WIRE 5.1): GET the worker's lease and test it. */
int bg_client_worker_online(struct bg_client *c, const char *worker,
			    bool *online);

/* check_agent_type_online (WIRE 5.2): the members of the agent type's
 * routing set whose lease is online, appended to out in SMEMBERS order. */
int bg_client_online_workers(struct bg_client *c, const char *agent_type,
			     struct bg_client_strs *out);

/* The string member `key` of a JSON object ("" when absent or not a
 * string; obj may be NULL). */
const char *bg_client_jstr(const json_t *obj, const char *key);

/* Python's bool() of a JSON value (NULL is false). */
bool bg_client_jtruthy(const json_t *v);

/* Python's int(v or 0) of a JSON member: integers, reals (truncated),
 * booleans and decimal strings; anything else is 0. */
int64_t bg_client_jint(const json_t *obj, const char *key);

/* The entry of an XREAD/XREADGROUP/XRANGE entry array element: its id and
 * the value of its `data` field (NULL when it has none). -EINVAL when the
 * element is not an [id, fields] pair. */
int bg_client_entry(const redisReply *e, const char **id,
		    const redisReply **data);

/* The entries array of a one-stream XREAD / XREADGROUP reply; an empty
 * array when the reply is nil (block timed out). NULL when malformed. */
const redisReply *bg_client_xread_entries(const redisReply *r);

/* Admin (WIRE 5.6) and control headers: every header string empty but
 * those given, metadata {}. */
struct bg_send_header;
int bg_client_admin_header(struct bg_send_header *h, char message_id[33],
			   char trace_id[33]);

/* WIRE 5.9: after the record of an execution changed from old to new (both
 * JSON objects, new_raw the bytes of new; old may be NULL), update the
 * worker statistics keys of new's worker_id as WorkerRegistry.
 * _update_worker_execution_stats does. A record without worker_id changes
 * nothing. */
int bg_client_worker_stats(struct bg_client *c, const json_t *old,
			   const json_t *new_rec, struct bg_str new_raw,
			   int64_t now);

/* ---- failures (client/failed.c, client/dlq.c) ------------------------- */

/* The record of a new attempt of a FAILED execution (a new reference):
 * old's members with status QUEUED, a QUEUED timeline step at now,
 * retry_count + 1, started_at and finished_at 0, cancel cleared, and the
 * error fields emptied (kept under last_error). */
json_t *bg_client_requeued_record(const json_t *old, int64_t now);

/* The idempotency HASH (wire/idem.h) of the ASK_AGENT entry data `cmd`
 * into out (reset first; left empty when the entry carries no usable key).
 * An entry written again (retry, dlq requeue) must be named its key's
 * `entry`, or bygated acknowledges it unrun as a copy of itself. */
int bg_client_idem_hash_of(struct bg_client *c, const json_t *cmd,
			   struct bg_buf *out);

/* ---- availability routing (client/availability.c, WIRE 7) ------------ */

/* A DeliveryIntent: what prepare_delivery decides on. command is the full
 * command JSON (command_payload), metadata the caller's header metadata
 * object as given ("" = {}). */
struct bg_client_intent {
	const char *execution_id;
	const char *message_id;
	const char *session_id;
	const char *trace_id;
	const char *source; /* "client" */
	const char *target_agent_type;
	const char *user_code;
	const char *region;
	long long priority;
	const char *policy;
	int timeout_ms; /* < 0: do not wait */
	struct bg_str command;
	struct bg_str metadata;
};

enum bg_client_route {
	BG_ROUTE_DELIVER_NOW,
	BG_ROUTE_WAIT_AND_DELIVER,
	BG_ROUTE_QUEUE_PENDING,
	BG_ROUTE_FALLBACK,
	BG_ROUTE_REJECT,
};

/* prepare_delivery's result. For QUEUE_PENDING nothing is written yet: the
 * caller writes the PendingDelivery (and, with `wakeup`, the WakeupRequest
 * first) in its own transaction with the record. */
struct bg_client_route_result {
	enum bg_client_route status;
	bool wakeup;
	char selected[BG_CLIENT_ID_MAX]; /* FALLBACK: the agent type */
	char error_code[BG_CLIENT_CODE_MAX];
	char error[512];
};

/* The route status string of WIRE 7 ("DELIVER_NOW", ...). */
const char *bg_client_route_name(enum bg_client_route s);

/* WIRE 7 prepare_delivery, in its order. Only WAKE_AND_WAIT writes (its
 * WakeupRequest) and blocks (on the decision stream, up to timeout_ms). */
int bg_client_prepare_delivery(struct bg_client *c,
			       const struct bg_client_intent *in,
			       struct bg_client_route_result *out);

/* The WakeupRequest and PendingDelivery JSON of an intent (appended). */
int bg_client_wakeup_json(struct bg_client *c, struct bg_buf *out,
			  const struct bg_client_intent *in);
int bg_client_pending_json(struct bg_client *c, struct bg_buf *out,
			   const struct bg_client_intent *in);

/* ---- table text (client/text.c) ---------------------------------------- */

/* Append s, at most max bytes of it (cut at a character boundary, "..."
 * added), control characters shown as '?' so that text read from Redis
 * cannot drive the terminal; pad with spaces to `width` characters. */
int bg_client_text_put(struct bg_buf *out, const char *s, size_t max,
		       size_t width);

/* Characters bg_client_text_put would show for s (max bytes of it). */
size_t bg_client_text_width(const char *s, size_t max);

/* One table cell: bg_client_text_put, then two spaces. */
int bg_client_text_cell(struct bg_buf *out, const char *s, size_t max,
			size_t width);

/* End a table row: trailing padding dropped, then a newline. */
int bg_client_text_end_row(struct bg_buf *out);

/* ---- triggers (client/triggers.c, docs/client.md "Triggers") -------- */

/* A duration as its units, largest first: "250ms", "30s", "1m30s", "1d";
 * "0s" for ms <= 0. Returns what snprintf does. */
int bg_client_duration_text(char *buf, size_t cap, long long ms);

/* An epoch ms time relative to now_ms, to the second, in its two largest
 * units: "in 4m12s", "3h5m ago", "2d ago", "now"; "-" for ms <= 0. */
void bg_client_relative_text(char *buf, size_t cap, long long ms,
			     int64_t now_ms);

/* A trigger as one object of `bygate triggers --json` (a new reference;
 * NULL when out of memory): def's members, "schedule" (the table's text),
 * the state (times null when unset) and "counts" {fires, skipped_running,
 * skipped_paused, missed, duplicates}. */
json_t *bg_client_trigger_json(const struct bg_client_trigger *t);

/* Append the table of `bygate triggers`: a header, then a row per
 * trigger (NAME KIND AGENT_TYPE SCHEDULE NEXT LAST_FIRE LAST_OUTCOME
 * ACTIVE PAUSED FIRES SKIPPED; SKIPPED sums the fires skipped while
 * running, paused or missed), times relative to now_ms; a line saying so
 * when n is 0. 0 or -ENOMEM. */
int bg_client_triggers_table(struct bg_buf *out,
			     const struct bg_client_trigger *v, size_t n,
			     int64_t now_ms);

/* ---- workflows (client/workflow.c, docs/client.md "Workflows") ------- */

/* The workflow agent types of issue 13 (docs/workflows.md). */
enum bg_wf_kind { BG_WF_DAG, BG_WF_FANOUT, BG_WF_GROUP };

/* "dag", "fanout", "group" to a kind: 0 or -EINVAL. */
int bg_client_wf_kind(const char *name, enum bg_wf_kind *out);

/* The default agent type of a kind: "bygate.dag", "bygate.fanout",
 * "bygate.group". */
const char *bg_client_wf_agent_type(enum bg_wf_kind k);

/* The step a data-stream entry (its `data` field, raw[0..len)) carries
 * when it is a workflow's state event: event_type reasoningLogDelta,
 * data.contentType "3003", content the text of a JSON object with a string
 * member bygate_workflow, of this workflow (the event's message_id is
 * message_id, or the step's run_id is execution_id). A new reference to
 * the step object, *ts_ms the event's timestamp (0 when none); NULL for
 * any other entry. */
json_t *bg_client_wf_step(const char *raw, size_t len, const char *message_id,
			  const char *execution_id, int64_t *ts_ms);

/* Append the progress line of a step, without a newline:
 * "12:00:01.234  research          DONE       researcher" (UTC time of
 * ts_ms, the task id / "primer" / "follower N" / "#N", the status, the
 * agent), then "  (retry N)" when retry_count > 0 and "  <error>" when
 * error is set. Control characters are shown as '?'. 0 or -ENOMEM. */
int bg_client_wf_step_line(struct bg_buf *out, const json_t *step,
			   int64_t ts_ms);

/* A task / report / member status that counts as success: DONE, success
 * or COMPLETED, in any case. */
bool bg_client_wf_status_ok(const char *status);

/* Whether a workflow result is a full success: dag: done == total, nothing
 * failed or skipped; fanout: success == total; group: the primer and
 * every follower succeeded. A result with an "error" member (a refused
 * spec) or that is not an object is not. */
bool bg_client_wf_ok(enum bg_wf_kind k, const json_t *result);

/* Append the result table of a finished workflow and its summary line
 * (docs/client.md "Workflows"): dag: a row per task in result order;
 * fanout: a row per report by index; group: the primer then the
 * followers by index. 0 or -ENOMEM. */
int bg_client_wf_table(struct bg_buf *out, enum bg_wf_kind k,
		       const json_t *result);

/* Append to the array `into` the followers of text: one follower object,
 * an array of them, or {"followers": [...]}; each an object with an
 * "agent" string of 1..128 bytes. 0, or -EINVAL with *why saying what is
 * wrong (nothing appended from a bad array's later elements onwards). */
int bg_client_wf_followers(const char *text, json_t *into, const char **why);

/* The RESUME contents of `bygate group add` and `close`:
 * {"bygate_group":"add","followers":[...]} and {"bygate_group":"close"}
 * (new references; NULL when out of memory). followers is borrowed. */
json_t *bg_client_wf_group_add(json_t *followers);
json_t *bg_client_wf_group_close(void);

/* A fan-out spec {"agent", "inputs" | "count", "timeout_s"}: inputs (an
 * array, borrowed) or, when NULL, count; timeout_s an integer when it is
 * whole. A new reference, NULL when out of memory. */
json_t *bg_client_wf_fanout_spec(const char *agent, json_t *inputs,
				 long long count, double timeout_s);

#endif
