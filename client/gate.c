/* client/gate.c - the reference wakeup controller (WIRE 7,
 * WakeupController.run_once) with its delivery gate: WakeupRequests read
 * through the gate's own consumer group, deduplicated, handed to a provider
 * command, answered with a WakeupDecision, and on READY the execution's
 * pending deliveries dispatched. A request is acknowledged only when its
 * decision is written, so a restart resumes it and never replays another. */
#include "client/client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/delivery.h"
#include "client/provider.h"
#include "wire/send.h"

#define DEDUPE_TTL "30"	  /* WIRE 7: SET ... NX EX 30 */
#define READ_BLOCK "1000" /* the stop flag is seen within a second */
#define POLL_MS 100
#define QUEUE_GRACE_MS                                                         \
	2000 /* a Python sender's pending entry follows
				 its WakeupRequest */
#define PROVIDER_REJECTED 3

enum { GATE_STOPPED = 1 }; /* handled nothing: leave the entry pending */

struct gate {
	struct bg_client *c;
	const struct bg_gate_options *o;
	const volatile sig_atomic_t *stop;
	bg_gate_cb cb;
	void *arg;
	const char *group;
	char consumer[300];
	struct bg_buf wakeup_key;
};

/* One WakeupRequest (WakeupRequest.from_dict) and what became of it. */
struct request {
	const char *entry_id;
	json_t *j;
	const char *exec_id, *type, *user_code, *region, *session, *policy;
	const char *status;
	char reason[512];
	int attempts;
	int delivered;
	struct bg_client_strs workers;
	struct bg_buf decision;
};

static bool stopped(const struct gate *g)
{
	return g->stop && *g->stop;
}

static int positive_or(int v, int def)
{
	return v > 0 ? v : def;
}

/* ---- the decision ------------------------------------------------------- */

/* The WakeupDecision JSON (asdict order) into r->decision. */
static int build_decision(struct request *r)
{
	struct bg_buf ids = { 0 };
	int rc = bg_buf_puts(&ids, "[");
	for (size_t i = 0; rc == 0 && i < r->workers.n; i++)
		rc = bg_wire_fmt(&ids, i ? ",%s" : "%s",
				 bg_str_c(r->workers.v[i]));
	if (rc == 0)
		rc = bg_buf_puts(&ids, "]");
	bg_buf_reset(&r->decision);
	if (rc == 0)
		rc = bg_wire_fmt(
			&r->decision,
			"{\"execution_id\":%s,\"target_agent_type\":%s,"
			"\"status\":%s,\"selected_agent_type\":\"\","
			"\"worker_ids\":%r,\"region\":%s,"
			"\"retry_after_ms\":null,\"reason\":%s}",
			bg_str_c(r->exec_id), bg_str_c(r->type),
			bg_str_c(r->status), (struct bg_str){ ids.p, ids.len },
			bg_str_c(r->region), bg_str_c(r->reason));
	bg_buf_free(&ids);
	return rc;
}

/* XADD the decision to the execution's result stream, and to the dead-
 * letter stream when FAILED. */
static int write_decision(struct gate *g, struct request *r)
{
	struct bg_buf key = { 0 };
	int rc = build_decision(r);
	if (rc == 0)
		rc = bg_client_key(g->c, &key, BG_KEY_WAKEUP_RESULT,
				   r->exec_id);
	if (rc == 0)
		rc = bg_client_xadd(g->c, key.p, r->decision.p, NULL);
	if (rc == 0 && !strcmp(r->status, "FAILED")) {
		rc = bg_client_key0(g->c, &key, BG_KEY_DEADLETTER);
		if (rc == 0)
			rc = bg_client_xadd(g->c, key.p, r->decision.p, NULL);
	}
	bg_buf_free(&key);
	return rc;
}

/* ---- steps -------------------------------------------------------------- */

/* _claim_wakeup. A claim holding this execution id is this gate's own,
 * from an attempt a restart interrupted. */
static int claim(struct gate *g, const struct request *r, bool *claimed)
{
	struct bg_buf key = { 0 };
	redisReply *rep = NULL;
	int rc = bg_key_build(&key, g->c->cfg.key_schema, BG_KEY_WAKEUP_DEDUPE,
			      bg_str_c(r->type), bg_str_c(r->user_code),
			      bg_str_c(r->region));
	if (rc == 0)
		rc = bg_client_cmd(g->c, &rep, "SET", key.p, r->exec_id, "NX",
				   "EX", DEDUPE_TTL, NULL);
	*claimed = rc == 0 && rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	rep = NULL;
	if (rc == 0 && !*claimed)
		rc = bg_client_cmd(g->c, &rep, "GET", key.p, NULL);
	if (rc == 0 && !*claimed)
		*claimed = bg_client_reply_is_str(rep) &&
			   !strcmp(rep->str, r->exec_id);
	freeReplyObject(rep);
	bg_buf_free(&key);
	return rc;
}

/* Wait (bounded) until the agent type has an online worker; r->workers
 * holds them. */
static int wait_online(struct gate *g, struct request *r)
{
	int64_t deadline = bg_client_mono_ms() +
			   positive_or(g->o->online_timeout_ms, 30000);
	for (;;) {
		bg_client_strs_free(&r->workers);
		int rc = bg_client_online_workers(g->c, r->type, &r->workers);
		if (rc || r->workers.n > 0 || stopped(g) ||
		    bg_client_mono_ms() >= deadline)
			return rc;
		bg_client_sleep_ms(POLL_MS);
	}
}

/* dispatch_ready, waiting briefly for a WAKE_AND_QUEUE sender's pending
 * entry that was not written yet. */
static int dispatch(struct gate *g, struct request *r)
{
	bool grace = !strcmp(r->policy, "WAKE_AND_QUEUE");
	int64_t until = bg_client_mono_ms() + (grace ? QUEUE_GRACE_MS : 0);
	for (;;) {
		struct bg_dispatch_result res;
		int rc = bg_client_dispatch(g->c, r->exec_id, &res);
		r->delivered += res.delivered;
		if (rc || res.found > 0 || stopped(g) ||
		    bg_client_mono_ms() >= until)
			return rc;
		bg_client_sleep_ms(POLL_MS);
	}
}

static void env_var(char *buf, size_t cap, const char *name, const char *v)
{
	snprintf(buf, cap, "%s=%s", name, v ? v : "");
}

/* One provider run; *outcome READY, REJECTED or "" (failed, retry). */
static int run_provider(struct gate *g, struct request *r, const char **outcome)
{
	const struct bg_config *cfg = &g->c->cfg;
	char e[9][1024], num[16], attempt[16];
	snprintf(num, sizeof num, "%d", cfg->redis_port);
	snprintf(attempt, sizeof attempt, "%d", r->attempts);
	env_var(e[0], sizeof e[0], "BYGATE_AGENT_TYPE", r->type);
	env_var(e[1], sizeof e[1], "BYGATE_USER_CODE", r->user_code);
	env_var(e[2], sizeof e[2], "BYGATE_REGION", r->region);
	env_var(e[3], sizeof e[3], "BYGATE_EXECUTION_ID", r->exec_id);
	env_var(e[4], sizeof e[4], "BYGATE_SESSION_ID", r->session);
	env_var(e[5], sizeof e[5], "BYGATE_ATTEMPT", attempt);
	env_var(e[6], sizeof e[6], "REDIS_HOST", cfg->redis_host);
	env_var(e[7], sizeof e[7], "REDIS_PORT", num);
	env_var(e[8], sizeof e[8], "REDIS_KEY_SCHEMA_VERSION",
		cfg->key_schema == BG_SCHEMA_V2 ? "v2" : "v1");
	const char *env[10];
	for (int i = 0; i < 9; i++)
		env[i] = e[i];
	env[9] = NULL;
	struct bg_provider_result res;
	int rc = bg_provider_run(g->o->provider, env,
				 positive_or(g->o->provider_timeout_ms, 120000),
				 g->stop, &res);
	*outcome = "";
	if (rc)
		snprintf(r->reason, sizeof r->reason,
			 "cannot run the "
			 "provider: %s",
			 strerror(-rc));
	else if (res.stopped)
		return GATE_STOPPED;
	else if (res.timed_out)
		snprintf(r->reason, sizeof r->reason, "provider timed out");
	else if (res.status == 0 || res.status == PROVIDER_REJECTED) {
		*outcome = res.status ? "REJECTED" : "READY";
		snprintf(r->reason, sizeof r->reason, "%s", res.output);
	} else if (res.output[0])
		snprintf(r->reason, sizeof r->reason, "%s", res.output);
	else if (res.signal)
		snprintf(r->reason, sizeof r->reason,
			 "provider killed by "
			 "signal %d",
			 res.signal);
	else
		snprintf(r->reason, sizeof r->reason,
			 "provider exited with "
			 "status %d",
			 res.status);
	return 0;
}

/* _call_provider: up to max_attempts runs. */
static int call_provider(struct gate *g, struct request *r)
{
	int max = positive_or(g->o->max_attempts, 3);
	const char *outcome = "";
	while (!outcome[0] && r->attempts < max) {
		r->attempts++;
		int rc = run_provider(g, r, &outcome);
		if (rc)
			return rc;
	}
	r->status = outcome[0] ? outcome : "FAILED";
	return 0;
}

/* READY: the worker must be routable before the decision says so (a
 * WAKE_AND_WAIT sender re-checks), and queued work goes out first - even
 * when no worker showed up in time (the provider said READY; the entries
 * wait in the stream), unless `online_only`. */
static int ready(struct gate *g, struct request *r, bool online_only)
{
	int rc = wait_online(g, r);
	if (rc == 0 && !stopped(g) && (r->workers.n > 0 || !online_only))
		rc = dispatch(g, r);
	return rc ? rc : stopped(g) ? GATE_STOPPED : 0;
}

/* A deduplicated request: QUEUED as in Python; then, a bygate addition,
 * READY with its deliveries once the concurrent wakeup brought a worker
 * online within the online wait. */
static int deduplicated(struct gate *g, struct request *r)
{
	r->status = "QUEUED";
	snprintf(r->reason, sizeof r->reason, "wakeup already in progress");
	int rc = write_decision(g, r);
	if (rc == 0)
		rc = ready(g, r, true);
	if (rc == 0 && r->workers.n > 0) {
		r->status = "READY";
		snprintf(r->reason, sizeof r->reason,
			 "agent type online after a concurrent wakeup");
	}
	return rc;
}

static int decide(struct gate *g, struct request *r)
{
	bool claimed;
	int rc = claim(g, r, &claimed);
	if (rc == 0 && !claimed) {
		rc = deduplicated(g, r);
		return rc || strcmp(r->status, "READY") ? rc
							: write_decision(g, r);
	}
	if (rc == 0)
		rc = call_provider(g, r);
	if (rc == 0 && !strcmp(r->status, "READY"))
		rc = ready(g, r, false);
	if (rc == 0)
		rc = write_decision(g, r);
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

static void report(struct gate *g, struct request *r)
{
	if (g->cb == NULL)
		return;
	struct bg_gate_event ev = {
		.entry_id = r->entry_id,
		.execution_id = r->exec_id ? r->exec_id : "",
		.agent_type = r->type ? r->type : "",
		.status = r->status,
		.reason = r->reason,
		.attempts = r->attempts,
		.delivered = r->delivered,
		.decision = r->decision.len ? r->decision.p : NULL,
	};
	g->cb(g->arg, &ev);
}

static int ack(struct gate *g, const char *id)
{
	return bg_client_cmd(g->c, NULL, "XACK", g->wakeup_key.p, g->group, id,
			     NULL);
}

/* WakeupRequest.from_dict of the entry's data; false when unusable. */
static bool parse_request(struct request *r, const redisReply *data)
{
	r->j = data ? json_loadb(data->str, data->len, 0, NULL) : NULL;
	if (!json_is_object(r->j))
		return false;
	r->exec_id = bg_client_jstr(r->j, "execution_id");
	r->type = bg_client_jstr(r->j, "target_agent_type");
	r->user_code = bg_client_jstr(r->j, "user_code");
	if (!r->user_code[0]) /* legacy alias */
		r->user_code = bg_client_jstr(r->j, "tenant_id");
	r->region = bg_client_jstr(r->j, "region");
	r->session = bg_client_jstr(r->j, "session_id");
	r->policy = bg_client_jstr(r->j, "policy");
	return r->exec_id[0] && r->type[0] &&
	       strlen(r->exec_id) < BG_CLIENT_ID_MAX &&
	       strlen(r->type) < BG_CLIENT_ID_MAX;
}

static int handle(struct gate *g, const char *id, const redisReply *data)
{
	struct request r = { .entry_id = id, .status = "INVALID" };
	int rc = 0;
	if (!parse_request(&r, data))
		snprintf(r.reason, sizeof r.reason,
			 "not a WakeupRequest with "
			 "an execution id and an agent type");
	else
		rc = decide(g, &r);
	if (rc == 0)
		rc = ack(g, id);
	if (rc == 0)
		report(g, &r);
	json_decref(r.j);
	bg_client_strs_free(&r.workers);
	bg_buf_free(&r.decision);
	return rc;
}

/* One XREADGROUP (from = "0": this consumer's pending entries; ">": new
 * ones) and the handling of what it returned. *n = entries returned. */
static int read_once(struct gate *g, const char *from, bool block, size_t *n)
{
	redisReply *rep;
	const char *argv[] = { "XREADGROUP",	"GROUP",    g->group,
			       g->consumer,	"COUNT",    "1",
			       "BLOCK",		READ_BLOCK, "STREAMS",
			       g->wakeup_key.p, from };
	const char *nb[] = { "XREADGROUP", "GROUP",	    g->group,
			     g->consumer,  "COUNT",	    "1",
			     "STREAMS",	   g->wakeup_key.p, from };
	bg_client_set_timeout(g->c, block ? atoi(READ_BLOCK) : -1);
	int rc = block ? bg_client_command(g->c, &rep, 11, argv, NULL)
		       : bg_client_command(g->c, &rep, 9, nb, NULL);
	bg_client_set_timeout(g->c, -1);
	*n = 0;
	if (rc)
		return rc;
	const redisReply *entries = bg_client_xread_entries(rep);
	if (entries == NULL)
		rc = bg_client_fail(g->c, BG_CLIENT_EPROTO,
				    "XREADGROUP: unexpected reply");
	for (size_t i = 0; rc == 0 && entries && i < entries->elements; i++) {
		const char *id;
		const redisReply *data;
		if (bg_client_entry(entries->element[i], &id, &data))
			rc = bg_client_fail(g->c, BG_CLIENT_EPROTO,
					    "XREADGROUP: malformed entry");
		else
			rc = handle(g, id, data);
		(*n)++;
	}
	freeReplyObject(rep);
	return rc;
}

static int create_group(struct gate *g)
{
	redisReply *r = NULL;
	const char *argv[] = { "XGROUP", "CREATE", g->wakeup_key.p,
			       g->group, "0",	   "MKSTREAM" };
	int rc = bg_client_command(g->c, &r, 6, argv, NULL);
	freeReplyObject(r);
	if (rc == BG_CLIENT_EREDIS && strstr(g->c->errmsg, "BUSYGROUP")) {
		g->c->errmsg[0] = '\0';
		rc = 0;
	}
	return rc;
}

static int run(struct gate *g)
{
	size_t n = 1;
	int rc = create_group(g);
	/* own PEL first: requests a previous run took and did not finish */
	while (rc == 0 && n > 0 && !stopped(g))
		rc = read_once(g, "0", false, &n);
	while (rc == 0 && !stopped(g)) {
		rc = read_once(g, ">", !g->o->once, &n);
		if (rc == 0 && n == 0 && g->o->once)
			break;
	}
	return rc == GATE_STOPPED ? 0 : rc;
}

int bg_client_gate(struct bg_client *c, const struct bg_gate_options *o,
		   const volatile sig_atomic_t *stop, bg_gate_cb cb, void *arg)
{
	struct gate g = { .c = c, .o = o, .stop = stop, .cb = cb, .arg = arg };
	c->errmsg[0] = '\0';
	if (o->provider == NULL || o->provider[0] == '\0')
		return bg_client_fail(c, -EINVAL,
				      "a provider command is "
				      "required");
	g.group = o->group && o->group[0] ? o->group : "bygate_gate";
	if (o->consumer && o->consumer[0]) {
		snprintf(g.consumer, sizeof g.consumer, "%s", o->consumer);
	} else {
		char host[256] = "localhost";
		gethostname(host, sizeof host - 1);
		snprintf(g.consumer, sizeof g.consumer, "gate-%s", host);
	}
	int rc = bg_client_key0(c, &g.wakeup_key, BG_KEY_WAKEUP);
	if (rc == 0)
		rc = run(&g);
	bg_buf_free(&g.wakeup_key);
	return rc;
}
