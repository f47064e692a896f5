/* supervisor/conversation.c - each session's conversation in Redis
 * (conversation.h). */
#include "supervisor/conversation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "wire/command.h"
#include "wire/keys.h"

#define S(s) bg_str_c(s)

/* A message as the list keeps it: {role, content, metadata {message_id,
 * execution_id, trace_id, agent_type}, session_id, created_at}. content
 * (taken) is the command's content as it was (a string, or the JSON value
 * a client sent), or the answer's text. NULL without memory. */
static char *message(const struct bg_job *t, const char *message_id,
		     const char *role, json_t *content, int64_t at)
{
	json_t *m = json_pack(
		"{s:s, s:o, s:{s:s, s:s, s:s, s:s}, s:s, s:I}", "role", role,
		"content", content ? content : json_string(""), "metadata",
		"message_id", message_id, "execution_id", t->id.execution_id,
		"trace_id", t->id.trace_id ? t->id.trace_id : "", "agent_type",
		t->id.agent_type ? t->id.agent_type : "", "session_id",
		t->id.session_id ? t->id.session_id : "", "created_at",
		(json_int_t)at);
	char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	return s;
}

/* Text as a JSON string, NULs and bytes that are not UTF-8 kept. */
static json_t *text(const char *p, size_t n)
{
	json_t *v = json_stringn(p, n);
	return v ? v : json_stringn_nocheck(p, n);
}

/* The user's words: the command's content, a JSON string decoded. */
static json_t *user_content(const struct bg_cmd *c)
{
	if (c->content.len == 0)
		return json_string("");
	json_t *v = json_loadb(c->content.p, c->content.len,
			       JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return v ? v : text(c->content.p, c->content.len);
}

/* An ASK_AGENT, or a user's RESUME (not a step of a run). */
static bool users_turn(const struct bg_cmd *c)
{
	if (c->action == BG_ACTION_ASK_AGENT)
		return true;
	return c->action == BG_ACTION_RESUME && bg_cmd_resume_step(c) == NULL;
}

/* An ASK_AGENT run again by `bygate retry` or a dead letter's requeue (its
 * record says so): its turn was kept by the finish of its first run. */
static bool run_again(const struct bg_job *t)
{
	static const char key[] = "\"retry_count\"";
	const struct bg_buf *r = &t->id.record;
	if (r->len == 0 || memmem(r->p, r->len, key, sizeof key - 1) == NULL)
		return false;
	json_t *o = json_loadb(r->p, r->len, 0, NULL);
	bool again = json_integer_value(json_object_get(o, "retry_count")) > 0;
	json_decref(o);
	return again;
}

/* The entry's time (its id's milliseconds): when the user sent it. */
static int64_t sent_ms(const char *entry_id, int64_t otherwise)
{
	long long ms = entry_id ? strtoll(entry_id, NULL, 10) : 0;
	return ms > 0 ? ms : otherwise;
}

/* The messages of t's turns, in order: its own user's turn, those of the
 * RESUMEs its run took (resume_take.c: acknowledged in this finish, they
 * have none of their own), the question it asked, its answer. */
struct turns {
	char *v[64];
	int n;
	bool failed;
};

static void add(struct turns *m, char *s)
{
	if (s == NULL || m->n == 64) {
		m->failed = m->failed || s == NULL;
		free(s);
		return;
	}
	m->v[m->n++] = s;
}

void bg_conversation_add(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, const struct bg_str *answer)
{
	if (d->cfg->history_backend != BG_HISTORY_REDIS ||
	    t->id.has_source_agent || !t->id.cmd_ok || !t->id.session_id)
		return;
	int64_t now = bg_now_ms();
	struct turns m = { .n = 0 };
	const struct bg_cmd *c = &t->id.cmd;
	if (users_turn(c) &&
	    !(c->action == BG_ACTION_ASK_AGENT && run_again(t)))
		add(&m, message(t, t->id.message_id, "user", user_content(c),
				sent_ms(t->id.entry_id, now)));
	for (struct bg_job *u = d->all.next;
	     t->end.end_kind == BG_END_RESULT && u != &d->all; u = u->next)
		if (u != t && u->id.taken_by == t->tag && u->id.cmd_ok &&
		    users_turn(&u->id.cmd))
			add(&m, message(t, u->id.message_id, "user",
					user_content(&u->id.cmd),
					sent_ms(u->id.entry_id, now)));
	if (t->end.end_kind == BG_END_RESULT && t->run.asked.len)
		add(&m, message(t, t->id.message_id, "assistant",
				text(t->run.asked.p, t->run.asked.len), now));
	if (answer)
		add(&m, message(t, t->id.message_id, "assistant",
				text(answer->p, answer->len), now));
	char *key = bg_dkey(d, BG_KEY_SESSION_HISTORY, t->id.session_id);
	struct bg_cmdlist h = { 0 };
	if (key && !m.failed && m.n > 0) {
		struct bg_str argv[BG_CMDLIST_MAX_ARGS];
		argv[0] = S("RPUSH");
		argv[1] = S(key);
		/* RPUSH takes a few at a time (BG_CMDLIST_MAX_ARGS) */
		for (int i = 0; i < m.n; i += BG_CMDLIST_MAX_ARGS - 2) {
			int k = 0;
			for (; k < BG_CMDLIST_MAX_ARGS - 2 && i + k < m.n; k++)
				argv[2 + k] = S(m.v[i + k]);
			bg_cmdlist_add(&h, 2 + k, argv);
		}
		char keep[24];
		snprintf(keep, sizeof keep, "-%d",
			 d->cfg->history_max_messages);
		BG_CMDLIST_ADD(&h, S("LTRIM"), S(key), S(keep), S("-1"));
		BG_CMDLIST_ADD(&h, S("EXPIRE"), S(key), S("604800"));
	}
	if (m.failed || key == NULL || h.err) {
		/* the task's own writes go on without its turns: it is not
		 * run again for them */
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "the conversation's messages of this task could "
			    "not be built (out of memory): not kept");
	} else if (h.n > 0) {
		bg_cmdlist_append(x, &h);
	}
	bg_cmdlist_free(&h);
	for (int i = 0; i < m.n; i++)
		free(m.v[i]);
	free(key);
}
