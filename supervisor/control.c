/* supervisor/control.c - the worker control stream (WIRE 2.6, 5.5-5.6,
 * 6.10, 8.1) and the admin lifecycle:
 *  - CANCEL_TASK: graceful = the handler's cooperative cancel flag, then
 *    SIGTERM to the child's process group after worker.cancel_grace_ms,
 *    then SIGKILL after the same grace; force = SIGKILL at once ("bygate
 *    decisions" 8). A task still queued here finishes CANCELLED unrun.
 *  - RELOAD_PLUGINS: a new pool generation (children recycled one at a
 *    time after their task, loading their plugins afresh), then the ACK
 *    record on plugin_reload:<id>:ack; idempotent per reload_id.
 *  - SUSPEND_WORKER / RESUME_WORKER / EVICT_WORKER: the lifecycle, also
 *    read from the durable admin hash at start and on every heartbeat.
 * Every control entry is acknowledged through the finish builder. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/kill.h"
#include "supervisor/lease.h"
#include "supervisor/log.h"
#include "wire/keys.h"
#include "wire/json.h"

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* ---- cancel ---- */

/* Cancel job t (found here by execution or message id). */
static void cancel_job(struct bg_daemon *d, struct bg_job *t,
		       const char *reason, bool force)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	free(t->run.cancel_reason);
	t->run.cancel_reason =
		strdup(reason && reason[0] ? reason : "cancelled");
	if (t->run.cancel_requested && !force)
		return;
	t->run.cancel_requested = true;
	bg_log_task(BG_LOG_INFO, &ids, "cancel requested (%s, %s)",
		    force ? "force" : "graceful", t->run.cancel_reason);
	/* Not started (PICKUP, QUEUED, BACKOFF): finished CANCELLED when it
	 * reaches dispatch or its record is read. */
	bg_kill_start(d, t, force ? BG_KILL_FORCE : BG_KILL_CANCEL);
}

static void handle_cancel(struct bg_daemon *d, json_t *body)
{
	const char *mid = jstr(body, "target_message_id");
	const char *eid = jstr(body, "target_execution_id");
	bool force = strcmp(jstr(body, "cancel_mode"), "force") == 0;
	for (struct bg_job *t = d->all.next; t != &d->all; t = t->next) {
		/* a RESUME waiting for a run, or taken by one, is not the
		 * run: the cancel is for the job that holds it */
		if (bg_job_finishing(t) || !t->id.cmd_ok ||
		    t->id.waits_for_run || t->id.taken_by)
			continue;
		bool match = (eid[0] && strcmp(t->id.execution_id, eid) == 0) ||
			     (!eid[0] && mid[0] &&
			      strcmp(t->id.message_id, mid) == 0);
		if (match) {
			cancel_job(d, t, jstr(body, "reason"), force);
			return;
		}
	}
	bg_info("CANCEL_TASK for %s / %s: not running here (nothing to do; a "
		"suspended or queued execution is cancelled when it is picked "
		"up)",
		mid, eid[0] ? eid : "-");
}

/* ---- reload ---- */

struct reload {
	struct reload *next;
	char *id, *reason;
	uint32_t before, after;
	int done; /* 0 waiting, 1 success, -1 failure */
	char error[512];
};

static void publish_ack(struct bg_daemon *d, const struct reload *r)
{
	char *key = bg_dkey(d, BG_KEY_PLUGIN_RELOAD_ACK, r->id);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s}", "reload_id",
			      r->id, "worker_id", d->worker_id, "status",
			      r->done > 0 ? "success" : "failure", "reason",
			      r->reason, "version_before", (int)r->before,
			      "version_after", (int)r->after, "error",
			      r->error);
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (key && txt)
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "XADD", key, "*", "data",
						     txt, NULL });
	bg_info("plugin reload %s: %s (version %u -> %u)%s%s", r->id,
		r->done > 0 ? "success" : "failure", r->before, r->after,
		r->error[0] ? ": " : "", r->error);
	free(txt);
	json_decref(j);
	free(key);
}

static void on_reload_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	const char *why = NULL;
	int st = bg_pool_generation_state(d->pool, &why);
	bool waiting = false;
	for (struct reload *r = d->reloads; r; r = r->next) {
		if (r->done || r->after != bg_pool_generation(d->pool)) {
			if (!r->done &&
			    r->after < bg_pool_generation(d->pool)) {
				r->done = 1; /* superseded by a newer reload */
				publish_ack(d, r);
			}
			continue;
		}
		if (st == 0) {
			waiting = true;
			continue;
		}
		r->done = st > 0 ? 1 : -1;
		if (st < 0)
			snprintf(r->error, sizeof(r->error), "%s", why);
		publish_ack(d, r);
	}
	if (waiting) {
		struct timeval tv = { 0, 100 * 1000 };
		evtimer_add(d->reload_timer, &tv);
	}
}

static void handle_reload(struct bg_daemon *d, json_t *body)
{
	const char *id = jstr(body, "reload_id");
	for (struct reload *r = d->reloads; r; r = r->next)
		if (strcmp(r->id, id) == 0) {
			/* Idempotent: the outcome of that reload, not a new one. */
			if (r->done)
				publish_ack(d, r);
			return;
		}
	struct reload *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return;
	r->id = strdup(id);
	r->reason = strdup(jstr(body, "reason"));
	r->before = bg_pool_generation(d->pool);
	r->after = bg_pool_new_generation(d->pool);
	r->next = d->reloads;
	d->reloads = r;
	bg_info("plugin reload %s (%s): recycling the children one at a time "
		"(generation %u -> %u)",
		id, r->reason, r->before, r->after);
	if (d->reload_timer == NULL)
		d->reload_timer = evtimer_new(d->base, on_reload_tick, d);
	struct timeval tv = { 0, 100 * 1000 };
	evtimer_add(d->reload_timer, &tv);
}

/* ---- lifecycle ---- */

void bg_control_set_lifecycle(struct bg_daemon *d, const char *lifecycle,
			      bool force)
{
	if (strcmp(lifecycle, "active") != 0 &&
	    strcmp(lifecycle, "suspended") != 0 &&
	    strcmp(lifecycle, "evicted") != 0)
		lifecycle = "active";
	if (strcmp(d->lifecycle, lifecycle) == 0)
		return;
	bg_info("admin lifecycle %s -> %s%s",
		d->lifecycle[0] ? d->lifecycle : "active", lifecycle,
		force ? " (force)" : "");
	snprintf(d->lifecycle, sizeof(d->lifecycle), "%s", lifecycle);
	if (strcmp(lifecycle, "evicted") == 0) {
		bg_warn("worker %s is evicted: it drains, stops and stays out "
			"of the fleet until `bygate allow-rejoin %s`",
			d->worker_id, d->worker_id);
		d->draining = true;
		if (force) {
			bg_warn("evicted with force: children killed now; their "
				"entries stay pending for recovery");
			d->stopping = true;
			bg_pool_shutdown(d->pool, false);
		}
	}
	/* the read changes at the turn's end: suspended reads no agents */
}

bool bg_control_suspended(const struct bg_daemon *d)
{
	return strcmp(d->lifecycle, "suspended") == 0 ||
	       strcmp(d->lifecycle, "evicted") == 0;
}

static void set_denied(struct bg_daemon *d, int type, bool denied)
{
	if (d->denied == NULL || d->denied[type] == denied)
		return;
	d->denied[type] = denied;
	bg_info("agent type %s is %s for this worker",
		d->cfg->agent_types[type].name,
		denied ? "denied: no longer read" : "allowed again");
}

/* ---- membership and denylist (WIRE 5.2, 5.4) ---- */

struct member_check {
	struct bg_daemon *d;
	int type;
};

static void on_denied(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct member_check *m = priv;
	struct bg_daemon *d = m->d;
	if (r && r->type == REDIS_REPLY_INTEGER)
		set_denied(d, m->type, r->integer == 1);
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 &&
	    bg_lease_held(d) && !bg_control_suspended(d) &&
	    !bg_control_unserved(d, m->type)) {
		char *members = bg_dkey(d, BG_KEY_AGENT_TYPE_MEMBERS,
					d->cfg->agent_types[m->type].name);
		if (members)
			bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
				      (const char *const[]){ "SADD", members,
							     d->worker_id,
							     NULL });
		free(members);
	}
	free(m);
}

/* SADD or SREM this worker in agent type i's members set (routing). */
static void members_cmd(struct bg_daemon *d, const char *op, int i)
{
	char *members = bg_dkey(d, BG_KEY_AGENT_TYPE_MEMBERS,
				d->cfg->agent_types[i].name);
	if (members)
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ op, members, d->worker_id,
						     NULL });
	free(members);
}

bool bg_control_unserved(const struct bg_daemon *d, int i)
{
	return d->unserved && i >= 0 && i < d->cfg->n_agent_types &&
	       d->unserved[i];
}

/* An agent type whose handler cannot start is taken out of routing at
 * once, so FAIL_FAST senders get AGENT_TYPE_UNAVAILABLE instead of a
 * timeout, and its stream is not read (its tasks wait for a healthy
 * worker); it is added back once a child serves it again. */
void bg_control_types_changed(struct bg_daemon *d)
{
	for (int i = 0; d->unserved && i < d->cfg->n_agent_types; i++) {
		const char *why = NULL;
		bool down = bg_pool_type_down(d->pool, i, &why);
		if (down == d->unserved[i])
			continue;
		d->unserved[i] = down;
		const char *t = d->cfg->agent_types[i].name;
		if (down) {
			bg_warn("agent type %s cannot be served here (%s): "
				"removed from its members set, not read",
				t, why ? why : "unknown");
			members_cmd(d, "SREM", i);
		} else {
			bg_info("agent type %s can be served again: back in "
				"its members set and read",
				t);
			if (bg_lease_held(d) && !bg_control_suspended(d) &&
			    !(d->denied && d->denied[i]))
				members_cmd(d, "SADD", i);
		}
	}
}

/* WIRE 5.2 / 5.4: membership (only while the admin lifecycle is active)
 * and the denylist refresh. Called after the admin hash was read. */
static void register_membership(struct bg_daemon *d)
{
	char *known = bg_dkey(d, BG_KEY_KNOWN_WORKERS, "");
	char *declared = bg_dkey(d, BG_KEY_WORKER_AGENT_TYPES, d->worker_id);
	if (known)
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ "SADD", known,
						     d->worker_id, NULL });
	for (int i = 0; i < d->cfg->n_agent_types && declared; i++) {
		const char *t = d->cfg->agent_types[i].name;
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ "SADD", declared, t,
						     NULL });
		if (bg_control_unserved(d, i))
			members_cmd(d, "SREM", i);
		char *denied = bg_dkey(d, BG_KEY_AGENT_TYPE_DENIED, t);
		struct member_check *m = calloc(1, sizeof(*m));
		if (denied && m) {
			m->d = d;
			m->type = i;
			if (bg_rconn_cmdv(d->ctl, on_denied, m, 0,
					  (const char *const[]){
						  "SISMEMBER", denied,
						  d->worker_id, NULL }) != 0)
				free(m);
		} else {
			free(m);
		}
		free(denied);
	}
	free(known);
	free(declared);
}

static void on_admin(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return;
	const char *lifecycle = "active";
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, "lifecycle") == 0 &&
		    r->element[i + 1]->type == REDIS_REPLY_STRING)
			lifecycle = r->element[i + 1]->str;
	bg_control_set_lifecycle(d, lifecycle, false);
	register_membership(d);
}

/* The durable admin hash (WIRE 5.6): at start and on every heartbeat. */
void bg_control_refresh_admin(struct bg_daemon *d)
{
	char *key = bg_dkey(d, BG_KEY_WORKER_ADMIN, d->worker_id);
	if (key)
		bg_rconn_cmdv(d->ctl, on_admin, d, 0,
			      (const char *const[]){ "HGETALL", key, NULL });
	free(key);
}

/* ---- dispatch of control entries ---- */

/* A known non-task action. On the worker stream it is handled; on an
 * agent-type stream it is acknowledged and ignored, as by-framework does.
 * The entry is acknowledged through the finish builder either way. */
void bg_control_handle(struct bg_daemon *d, struct bg_job *t)
{
	enum bg_action a = t->id.cmd.action;
	if (t->id.stream_idx != 0) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(
			BG_LOG_INFO, &ids,
			"%s on agent-type stream %s: acknowledged and "
			"ignored (control commands go to the worker stream)",
			bg_action_name(a), t->id.stream);
		bg_end_ack(d, t);
		return;
	}
	json_t *cmd = NULL;
	const char *err = NULL;
	if (bg_cmd_parse_full(t->id.data, t->id.data_len, &cmd, &err) != 0) {
		bg_end_deadletter(d, t, err ? err : "invalid_body",
				  "control command body is invalid");
		return;
	}
	json_t *body = json_object_get(cmd, "body");
	switch (a) {
	case BG_ACTION_CANCEL_TASK:
		handle_cancel(d, body);
		break;
	case BG_ACTION_RELOAD_PLUGINS:
		handle_reload(d, body);
		break;
	case BG_ACTION_SUSPEND_WORKER:
		bg_control_set_lifecycle(d, "suspended", false);
		break;
	case BG_ACTION_RESUME_WORKER:
		bg_control_set_lifecycle(d, "active", false);
		break;
	case BG_ACTION_EVICT_WORKER:
		bg_control_set_lifecycle(
			d, "evicted",
			json_is_true(json_object_get(body, "force")));
		break;
	default:
		break;
	}
	json_decref(cmd);
	if (!d->stopping)
		bg_end_ack(d, t);
}

void bg_control_free(struct bg_daemon *d)
{
	while (d->reloads) {
		struct reload *r = d->reloads;
		d->reloads = r->next;
		free(r->id);
		free(r->reason);
		free(r);
	}
	if (d->reload_timer)
		event_free(d->reload_timer);
	d->reload_timer = NULL;
	free(d->denied);
	d->denied = NULL;
	free(d->unserved);
	d->unserved = NULL;
}
