/* supervisor/conversation.h - each session's conversation, kept in Redis
 * (docs/history.md): the user's turns and the agent's answers, written by
 * the finish (finish_build.c) in the same transaction as the task's other
 * writes, so each is written once whatever crashes and retries happen (a
 * finish is applied once: DESIGN 4; under Cluster its session's part,
 * where the conversation's key is, once: finish_parts.h). */
#ifndef BG_SUPERVISOR_CONVERSATION_H
#define BG_SUPERVISOR_CONVERSATION_H

#include <stdbool.h>

#include "common/buf.h"
#include "common/cmdlist.h"

struct bg_daemon;
struct bg_job;

/* Add to the finish x of t, an attempt that ran (a result or a failure),
 * the turns it brings to its session's conversation, unless
 * history.backend is "off" or t is a sub-agent's task (its caller's
 * conversation is the session's): the user's message when t is an
 * ASK_AGENT or a user's RESUME (not a sub-agent's callback or a posted
 * resume: wire/command.h bg_cmd_resume_step), then the agent's answer
 * when `answer` is set (the finalAnswer the finish writes). The list is
 * then trimmed to history.max_messages and given the session's TTL. */
void bg_conversation_add(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, const struct bg_str *answer);

#endif
