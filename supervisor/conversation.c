/* supervisor/conversation.c - each session's conversation in Redis
 * (conversation.h). */
#include "supervisor/conversation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "wire/command.h"
#include "wire/keys.h"

#define S(s) bg_str_c(s)

/* A message as the list keeps it: {role, content, metadata {message_id,
 * execution_id, trace_id, agent_type}, session_id, created_at}. content
 * is the command's content as it was (a string, or the JSON value a
 * client sent), or the answer's text. NULL without memory. */
static char *message(const struct bg_job *t, const char *role, json_t *content,
		     int64_t now)
{
	json_t *m = json_pack(
		"{s:s, s:o, s:{s:s, s:s, s:s, s:s}, s:s, s:I}", "role", role,
		"content", content ? content : json_string(""), "metadata",
		"message_id", t->id.message_id, "execution_id",
		t->id.execution_id, "trace_id",
		t->id.trace_id ? t->id.trace_id : "", "agent_type",
		t->id.agent_type ? t->id.agent_type : "", "session_id",
		t->id.session_id ? t->id.session_id : "", "created_at",
		(json_int_t)now);
	char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	return s;
}

/* The user's words: the command's content, a JSON string decoded. */
static json_t *user_content(const struct bg_cmd *c)
{
	if (c->content.len == 0)
		return json_string("");
	json_t *v =
		json_loadb(c->content.p, c->content.len, JSON_DECODE_ANY, NULL);
	return v ? v : json_stringn(c->content.p, c->content.len);
}

static bool users_turn(const struct bg_cmd *c)
{
	if (c->action == BG_ACTION_ASK_AGENT)
		return true;
	return c->action == BG_ACTION_RESUME && bg_cmd_resume_step(c) == NULL;
}

void bg_conversation_add(struct bg_daemon *d, struct bg_job *t,
			 struct bg_cmdlist *x, const struct bg_str *answer)
{
	if (d->cfg->history_backend != BG_HISTORY_REDIS ||
	    t->id.has_source_agent || !t->id.cmd_ok || !t->id.session_id)
		return;
	int64_t now = bg_now_ms();
	bool turn = users_turn(&t->id.cmd);
	char *user = turn ? message(t, "user", user_content(&t->id.cmd), now)
			  : NULL;
	char *agent = answer ? message(t, "assistant",
				       json_stringn(answer->p, answer->len),
				       now)
			     : NULL;
	char *key = bg_dkey(d, BG_KEY_SESSION_HISTORY, t->id.session_id);
	char keep[24];
	snprintf(keep, sizeof keep, "-%d", d->cfg->history_max_messages);
	if ((turn || answer) &&
	    (!key || (turn && !user) || (answer && !agent)) && x->err == 0)
		x->err = -ENOMEM; /* the finish fails whole (finish_build.c) */
	if (key && user && agent)
		BG_CMDLIST_ADD(x, S("RPUSH"), S(key), S(user), S(agent));
	else if (key && (user || agent))
		BG_CMDLIST_ADD(x, S("RPUSH"), S(key), S(user ? user : agent));
	if (key && (user || agent)) {
		BG_CMDLIST_ADD(x, S("LTRIM"), S(key), S(keep), S("-1"));
		BG_CMDLIST_ADD(x, S("EXPIRE"), S(key), S("604800"));
	}
	free(user);
	free(agent);
	free(key);
}
