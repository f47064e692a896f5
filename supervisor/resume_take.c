/* supervisor/resume_take.c - the `next_resume` handler operation
 * (resume_take.h; docs/workflows.md, "Several steps in one run").
 *
 * Several sub-calls of one execution ending at once resume it once each,
 * one run at a time (admit.c, busy). A handler that can take several
 * steps in one run (the workflow agent types) asks for the RESUMEs
 * waiting here instead: each one taken is acknowledged in the finish of
 * the run that took it, with that run's result, or, if that run's
 * finish is not applied, waits again as if never taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "supervisor/resume_take.h"

#define S(s) bg_str_c(s)

/* A RESUME of t's execution waiting here for t's run to end. */
static bool takeable(const struct bg_job *t, const struct bg_job *u)
{
	return u != t && u->state == BG_JOB_PICKUP && u->id.waits_for_run &&
	       u->id.taken_by == 0 && u->wait_ev && u->id.cmd_ok &&
	       u->id.cmd.action == BG_ACTION_RESUME &&
	       u->id.cmd.hdr[BG_HDR_TASK_GROUP_ID].len == 0 &&
	       u->id.session_id && t->id.session_id &&
	       strcmp(u->id.message_id, t->id.message_id) == 0 &&
	       strcmp(u->id.session_id, t->id.session_id) == 0;
}

static json_t *raw(struct bg_str s, const char *dflt)
{
	json_t *v = s.len ? json_loadb(s.p, s.len, JSON_ALLOW_NUL, NULL) : NULL;
	return v ? v : json_loads(dflt, 0, NULL);
}

static json_t *str(struct bg_str s)
{
	return json_stringn_nocheck(s.p ? s.p : "", s.len);
}

void bg_resume_take(struct bg_daemon *d, struct bg_job *t, const char *id,
		    json_t *args)
{
	(void)args;
	struct bg_job *u = d->all.next;
	while (u != &d->all && !takeable(t, u))
		u = u->next;
	if (u == &d->all) {
		bg_outbox_reply(d, t, id, json_pack("{s:b}", "found", 0));
		return;
	}
	const struct bg_cmd *c = &u->id.cmd;
	json_t *rep = json_pack("{s:b,s:o,s:o,s:o,s:o,s:s}", "found", 1, "body",
				raw(c->body, "{}"), "metadata",
				raw(c->hdr[BG_HDR_METADATA], "{}"),
				"source_agent_type",
				str(c->hdr[BG_HDR_SOURCE_AGENT_TYPE]),
				"parent_message_id",
				str(c->hdr[BG_HDR_PARENT_MESSAGE_ID]),
				"entry_id", u->id.entry_id);
	if (rep == NULL) {
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	/* taken only once the handler has it: a reply that cannot reach it
	 * (too large, not encodable) leaves the RESUME waiting, unacked */
	if (bg_outbox_reply_sent(d, t, id, rep) != 0)
		return;
	BG_OUT(t, S("XACK"), S(u->id.stream), S(d->group), S(u->id.entry_id));
	evtimer_del(u->wait_ev);
	u->id.waits_for_run = false;
	u->id.taken_by = t->tag;
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids,
		    "RESUME entry %s taken by this run: acknowledged with its "
		    "result",
		    u->id.entry_id);
}

void bg_resume_take_release(struct bg_daemon *d, const struct bg_job *t,
			    bool acked)
{
	struct bg_job *u = d->all.next;
	while (u != &d->all) {
		struct bg_job *next = u->next;
		if (u != t && u->id.taken_by == t->tag) {
			u->id.taken_by = 0;
			u->id.released = !acked;
			if (acked) {
				bg_job_free(d, u);
			} else if (u->wait_ev) {
				u->id.waits_for_run = true;
				event_active(u->wait_ev, EV_TIMEOUT, 1);
			}
		}
		u = next;
	}
}
