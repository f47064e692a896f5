/* supervisor/outbox.h - what the handler operations of outbox.c and the
 * call_agent route of route.c share: the outbox command encoding, replies
 * to the handler, and the callee's record and ASK of a request.
 * Internal to supervisor/: nothing outside includes it. */
#ifndef BG_SUPERVISOR_OUTBOX_H
#define BG_SUPERVISOR_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/cmdlist.h"
#include "wire/record.h"

struct bg_daemon;
struct bg_job;

/* Append one command, argv[0..argc), to t's outbox, a command list
 * (common/cmdlist.h, DESIGN 4.3); BG_OUT(t, S("HSET"), ...) lists the
 * arguments. A command that cannot be kept (no memory, more than
 * BG_CMDLIST_MAX_ARGS arguments) is logged and fails the outbox: the
 * attempt's finish then cannot be built (bg_outbox_splice). */
void bg_outbox_cmd(struct bg_job *t, int argc, const struct bg_str *argv);

#define BG_OUT(t, ...)                                                         \
	do {                                                                   \
		const struct bg_str a_[] = { __VA_ARGS__ };                    \
		bg_outbox_cmd((t), (int)(sizeof(a_) / sizeof(a_[0])), a_);     \
	} while (0)

/* Add t's outbox after the commands of the finish transaction x: x fails
 * when the outbox did. Returns x's error. */
int bg_outbox_splice(const struct bg_job *t, struct bg_cmdlist *x);

/* A handler argument that names something (a key, an agent type, a
 * policy, a region): its text, or NULL when it is not a string or holds
 * a control character (a NUL, "\u0000", would make it name something
 * else as a C string). */
static inline const char *bg_arg_name(const json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	for (size_t i = 0; s && i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return NULL;
	return s;
}

/* A view of b's bytes ("" when b has none). */
struct bg_str bg_outbox_bytes(const struct bg_buf *b);

/* Answer the handler's call `id` with result (the reference is taken)
 * while t runs in a child; nothing otherwise. */
void bg_outbox_reply(struct bg_daemon *d, struct bg_job *t, const char *id,
		     json_t *result);
/* bg_outbox_reply, telling whether result itself reached the handler: 0,
 * or a negative errno after the FAILED answer that replaced it (too large,
 * not encodable) or none (t no longer in a child). */
int bg_outbox_reply_sent(struct bg_daemon *d, struct bg_job *t, const char *id,
			 json_t *result);
/* The FAILED answer {status, message_id "", error, error_code}. */
void bg_outbox_reply_error(struct bg_daemon *d, struct bg_job *t,
			   const char *id, const char *code, const char *msg);

/* The task with this tag while it still runs the run `run_id` that asked
 * (struct bg_job run_id), or NULL: it has ended, or was re-run or retried
 * meanwhile and must not get an answer meant for an earlier run. */
struct bg_job *bg_outbox_task_of(struct bg_daemon *d, uint64_t tag,
				 uint32_t run_id);

/* A sub-agent's task stays in its caller's lane and priority
 * (docs/scheduling.md): t's metadata.lane and metadata.priority are
 * copied into md (an object) where md has none. */
void bg_outbox_inherit_schedule(json_t *md, const struct bg_job *t);

/* A request to another agent (WIRE 6.6, 6.7); the members view memory the
 * caller owns. */
struct bg_outbox_req {
	const char *target;
	json_t *content;
	bool wait;
	json_t *extra, *metadata;
	const char *group;  /* task group id or "" */
	const char *policy; /* route_policy for the record, NULL = none */
	const char *route_status;
	const char *selected;  /* selected_agent_type, NULL = "" */
	char message_id[32];   /* minted when empty */
	char execution_id[32]; /* minted when empty */
};

/* The callee's ASK_AGENT (WIRE 6.6 steps 1-3) into ask, minting rq's ids
 * when empty. 0, or -1 (content neither a string, an array nor an object;
 * no memory). */
int bg_outbox_build_ask(struct bg_job *t, struct bg_outbox_req *rq,
			struct bg_buf *ask);

/* The members of rq's callee record (WIRE 6.2) sent to stream_name. */
struct bg_record_queued bg_outbox_callee_fields(const struct bg_job *t,
						const struct bg_outbox_req *rq,
						const char *stream_name);

/* An execution record and its msg_map into the outbox (WIRE 6.1). */
void bg_outbox_record(struct bg_job *t, const char *execution_id,
		      const char *message_id, const struct bg_buf *rec);

/* The callee's QUEUED record (initialize_execution, WIRE 6.6 step 5),
 * created with stream_name, into the outbox. 0 or a negative error. */
int bg_outbox_callee_record(struct bg_job *t, const struct bg_outbox_req *rq,
			    const char *stream_name);

/* The callee's record and ASK to its agent type's control stream into the
 * outbox (record first). 0 or -1. */
int bg_outbox_request(struct bg_daemon *d, struct bg_job *t,
		      struct bg_outbox_req *rq);

#endif
