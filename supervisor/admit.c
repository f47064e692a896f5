/* supervisor/admit.c - the last steps of a pickup that may run (WIRE 6.4
 * steps 3-6): the stored execution record examined (terminal replay,
 * duplicate of a run in progress, poison, cancel), then the claim: one
 * script writes the RUNNING record (spliced into the stored bytes, or
 * built new with its msg_map) only if the stored record is still the one
 * examined. Won, the job joins the ready queue (schedule.c places it);
 * lost, the record as it is now is examined again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/fault.h"
#include "supervisor/admit.h"
#include "supervisor/daemon.h"
#include "supervisor/end.h"
#include "supervisor/eventlog.h"
#include "supervisor/idem.h"
#include "supervisor/log.h"
#include "supervisor/pool.h"
#include "wire/audit.h"
#include "wire/ids.h"
#include "wire/keys.h"
#include "wire/record.h"

/* Claims lost in a row (the record kept changing under them) before the
 * job gives up: its entry stays pending and recovery runs it again. */
#define CLAIM_ROUNDS 8

/* KEYS[1] the session registry; KEYS[2], when given, the online lease of
 * the worker the examined record names as running it. ARGV: 1 the
 * exec:<id> field, 2 the record examined ("" none), 3 the RUNNING record,
 * 4 "" or, for a new execution, its msg_map:<mid> field, 5 the new
 * execution id. An existing execution is written only if its record is
 * byte for byte the one examined and that lease is absent; a new one only
 * if msg_map names no record but the one examined (none, a dangling id,
 * or the unreadable record it replaces). Returns 1 (written), 2 (the
 * worker running it is alive) or, changed since examined, {0, record} or
 * {0, msg_map value, its record}. The common case is two commands: HGET,
 * HSET (docs/architecture.md, step 5: its cost). */
static const char CLAIM_LUA[] =
	"if ARGV[4] ~= '' then\n"
	"  local m = redis.call('HGET', KEYS[1], ARGV[4])\n"
	"  if m then\n"
	"    local r = redis.call('HGET', KEYS[1], 'exec:' .. m)\n"
	"    if r and r ~= ARGV[2] then return {0, m, r} end\n"
	"  end\n"
	"  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], ARGV[4], ARGV[5])\n"
	"  return 1\n"
	"end\n"
	"local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
	"if cur ~= ARGV[2] then return {0, cur} end\n"
	"if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 2 end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
	"return 1\n";

/* What a won claim leads to. */
enum claim_then {
	THEN_QUEUE,  /* the ready queue: it runs */
	THEN_CANCEL, /* a cancel requested of a run whose holder died */
};

struct claim {
	struct bg_daemon *d;
	uint64_t tag; /* the job, looked up again: it may be freed at exit */
	enum claim_then then;
	int round;	    /* claims of this job lost before this one */
	bool eval;	    /* sent as EVAL with the text (after NOSCRIPT) */
	bool lease_absent;  /* Cluster: the holder's lease was found gone */
	char *holder;	    /* the other worker the record says runs it */
	char *lease_key;    /* its online lease (KEYS[2]) */
	struct bg_buf rec;  /* the RUNNING record sent */
	struct bg_buf snap; /* its snapshot (WIRE 5.9) taken with it, or
			       empty: read from it when won */
};

static bool examine(struct bg_daemon *d, struct bg_job *t,
		    const struct bg_str *js, int round);
static void claim_start(struct bg_daemon *d, struct bg_job *t,
			enum claim_then then, int round);

/* SHA-1 of CLAIM_LUA for EVALSHA, computed once; NULL: send EVAL. */
static const char *claim_sha(void)
{
	static char hex[41];
	if (hex[0] == '\0' && bg_script_sha1(hex, CLAIM_LUA) != 0)
		return NULL;
	return hex;
}

static void claim_free(struct claim *c)
{
	if (c == NULL)
		return;
	free(c->holder);
	free(c->lease_key);
	bg_buf_free(&c->rec);
	bg_buf_free(&c->snap);
	free(c);
}

/* Another job here for the same message id that holds its execution: it
 * won a claim (queued, running, ending) or finishes a run. A claim in
 * flight here needs no look: replies come in order on the write
 * connection, so a claim applied before this job's read has been handled
 * before the read's reply. */
static bool held_here(const struct bg_daemon *d, const struct bg_job *t)
{
	for (const struct bg_job *u = d->all.next; u != &d->all; u = u->next) {
		if (u == t || !u->id.cmd_ok || u->state == BG_JOB_PICKUP ||
		    u->state == BG_JOB_PICKUP_LOST)
			continue;
		if (bg_job_finishing(u) &&
		    (u->end.end_kind == BG_END_ACK_ONLY ||
		     u->end.end_kind == BG_END_REPLAY ||
		     u->end.end_kind == BG_END_DUPLICATE))
			continue;
		if (u->id.session_id &&
		    strcmp(u->id.session_id, t->id.session_id) == 0 &&
		    strcmp(u->id.message_id, t->id.message_id) == 0)
			return true;
	}
	return false;
}

/* A finish re-sent by recovery (a journaled one: bg_pickup_replay_finish)
 * is still in flight. It may acknowledge RESUMEs its run took
 * (resume_take.c) along with their steps, and its job does not know its
 * message: until it is applied, a recovered RESUME is not run. */
static bool replay_in_flight(const struct bg_daemon *d)
{
	for (const struct bg_job *u = d->all.next; u != &d->all; u = u->next)
		if (bg_job_finishing(u) && u->end.end_kind == BG_END_REPLAY)
			return true;
	return false;
}

/* A duplicate of a run in progress: acknowledged, nothing else written.
 * The entry that runs it is pending with its holder and will finish or be
 * recovered. */
static void duplicate(struct bg_daemon *d, struct bg_job *t, const char *who)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "duplicate: execution already running on %s; entry %s "
		    "acknowledged without running",
		    who, t->id.entry_id);
	bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
}

/* A RESUME of an execution that runs (here, or on a worker whose lease is
 * there) is not a copy of that run: it is the next step of the execution
 * (a callback of one of several sub-calls, a timer, a user's reply), and
 * acknowledging it unrun would lose that step. It waits, pending, and is
 * read and examined again when the run ends here (bg_job_free wakes it) or
 * after a short back-off for a run elsewhere, so the runs of one execution
 * stay one at a time and none is lost (docs/architecture.md, step 5,
 * "RESUME"). It waits at most the agent type's timeout_ms plus the lease
 * TTL and the cancel ladder: a run older than that is a record left
 * RUNNING by a lost entry, and the RESUME is then a duplicate as before. */
#define RESUME_WAIT_FIRST_MS 5
#define RESUME_WAIT_MAX_MS 200

static void on_resume_wait(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct bg_job *t = arg;
	if (t->state == BG_JOB_PICKUP && t->id.waits_for_run) {
		t->id.waits_for_run = false; /* re-reading, not waiting */
		t->d->hooks.reread(t->d, t);
	}
}

static int64_t resume_wait_limit_ms(const struct bg_daemon *d,
				    const struct bg_job *t)
{
	const struct bg_agent_type_conf *tc =
		bg_config_agent_type(d->cfg, t->id.handler_type);
	if (tc == NULL || tc->timeout_ms <= 0)
		return -1; /* no limit on the run: none on the wait */
	return (int64_t)tc->timeout_ms + 2 * (int64_t)d->cfg->cancel_grace_ms +
	       (int64_t)d->cfg->lease_ttl_s * 1000 + 2000;
}

/* A RESUME whose execution runs on `who` ("this worker": a job here holds
 * it; else the other worker whose lease is there). A run here wakes one
 * waiter when it ends (bg_job_free), the oldest first, so a burst of
 * callbacks is taken one at a time without a herd of re-reads; a run
 * elsewhere is polled with a back-off. */
/* Not run now, not acknowledged: the job goes, its entry stays pending in
 * this worker's list and the next reconcile reads it again. */
static void leave_pending(struct bg_daemon *d, struct bg_job *t,
			  const char *who)
{
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_INFO, &ids,
		    "recovered RESUME entry %s: its execution runs on %s; "
		    "left pending for the next reconcile",
		    t->id.entry_id, who);
	bg_job_free(d, t);
}

static void busy(struct bg_daemon *d, struct bg_job *t, const char *who,
		 bool here)
{
	if (t->id.cmd.action != BG_ACTION_RESUME) {
		duplicate(d, t, who);
		return;
	}
	int64_t now = bg_now_ms();
	struct bg_log_ids ids = bg_job_log_ids(t);
	if (t->id.recovered && d->suspects_active) {
		/* a suspect: waiting would hold up the suspects, which run
		 * one at a time with nothing else in flight. Left pending:
		 * the next reconcile reads it again. */
		leave_pending(d, t, who);
		return;
	}
	if (t->id.wait_since_ms == 0) {
		t->id.wait_since_ms = now;
		t->id.wait_rounds = 0;
		bg_log_task(BG_LOG_DEBUG, &ids,
			    "RESUME waits: the execution runs on %s; entry %s "
			    "is examined again when that run ends",
			    who, t->id.entry_id);
	}
	/* the limit is for a run elsewhere: a run here is a job we hold,
	 * whose end wakes the waiters, and which its own timeout ends */
	int64_t limit = resume_wait_limit_ms(d, t);
	if (!here && limit >= 0 && now - t->id.wait_since_ms > limit) {
		bg_log_task(BG_LOG_WARN, &ids,
			    "RESUME waited %lld ms for a run of its execution "
			    "on %s, longer than that run may last: the record "
			    "is taken for a lost run's",
			    (long long)(now - t->id.wait_since_ms), who);
		duplicate(d, t, who);
		return;
	}
	if (t->wait_ev == NULL)
		t->wait_ev = evtimer_new(d->base, on_resume_wait, t);
	if (t->wait_ev == NULL) {
		duplicate(d, t, who);
		return;
	}
	t->id.waits_for_run = true;
	/* here: woken by the end of the run; the timer is only the limit */
	int64_t ms = RESUME_WAIT_MAX_MS;
	if (here) {
		ms = 60000; /* a missed wake-up costs a minute, no more */
	} else {
		int shift = t->id.wait_rounds < 6 ? t->id.wait_rounds : 6;
		ms = (int64_t)RESUME_WAIT_FIRST_MS << shift;
		if (ms > RESUME_WAIT_MAX_MS)
			ms = RESUME_WAIT_MAX_MS;
	}
	t->id.wait_rounds++;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(t->wait_ev, &tv);
}

void bg_admit_drop_waiters(struct bg_daemon *d)
{
	struct bg_job *u = d->all.next;
	while (u != &d->all) {
		struct bg_job *next = u->next;
		if (u->state == BG_JOB_PICKUP && u->id.waits_for_run &&
		    u->id.taken_by == 0) {
			struct bg_log_ids ids = bg_job_log_ids(u);
			bg_log_task(BG_LOG_INFO, &ids,
				    "draining: RESUME entry %s left pending "
				    "(it waited for a run of its execution)",
				    u->id.entry_id);
			bg_job_free(d, u);
		}
		u = next;
	}
}

/* ---- the examination (WIRE 6.4 steps 3-5) ---- */

static void poison(struct bg_daemon *d, struct bg_job *t, bool have)
{
	char why[320];
	int alone = t->id.alone_crashes;
	if (alone > 0)
		snprintf(why, sizeof(why),
			 "entry delivered %d times (max_deliveries %d): "
			 "bygated died %d time%s while it ran alone (re-run "
			 "as a suspect after an unclean exit); dead-lettered "
			 "as poison without running again",
			 t->id.deliveries, d->cfg->max_deliveries, alone,
			 alone == 1 ? "" : "s");
	else
		snprintf(why, sizeof(why),
			 "entry delivered %d times (max_deliveries %d): "
			 "dead-lettered as poison without running again",
			 t->id.deliveries, d->cfg->max_deliveries);
	if (!have)
		bg_id_new(t->id.execution_id, sizeof(t->id.execution_id),
			  "exec-");
	t->end.deadletter = true;
	t->end.error_type = "PoisonEntry";
	bg_end(d, t, BG_END_FAILED, "max_deliveries", why);
}

/* A cancel requested before it runs (the record's lazy cancel, WIRE 6.10,
 * or a CANCEL_TASK that found it in pickup): finished CANCELLED unrun.
 * A record that still runs (its holder died) is claimed first; a queued
 * or suspended one is not written before its finish (its final bytes
 * stay as they were), so only a job here already ending it makes this
 * one a duplicate. */
static void cancel(struct bg_daemon *d, struct bg_job *t, bool have, bool runs,
		   int round)
{
	if (!have)
		bg_id_new(t->id.execution_id, sizeof(t->id.execution_id),
			  "exec-");
	if (runs)
		claim_start(d, t, THEN_CANCEL, round);
	else if (held_here(d, t))
		duplicate(d, t, "this worker");
	else
		bg_end_cancelled(d, t);
}

/* What a run needs from the record (6.4 step 5, "bygate decisions" 16). */
static void take_run_fields(struct bg_job *t, const struct bg_record *rec,
			    bool have)
{
	bool is_resume = t->id.cmd.action == BG_ACTION_RESUME;
	t->id.is_resumed = is_resume ||
			   (have && !bg_str_eq(rec->status, "QUEUED"));
	if (!have)
		bg_id_new(t->id.execution_id, sizeof(t->id.execution_id),
			  "exec-");
	else if (rec->parent_message_id.len) {
		free(t->id.parent_message_id);
		t->id.parent_message_id = bg_str_dup(rec->parent_message_id);
	}
	/* a resumed sub-agent still calls its caller back when it finishes;
	 * the record remembers who that is (the caller's type, set by
	 * call_agent with wait_for_reply) */
	if (have && is_resume && rec->source_agent_type.len &&
	    !bg_str_eq(rec->source_agent_type, "client")) {
		snprintf(t->id.callback_to, sizeof(t->id.callback_to), "%.*s",
			 (int)rec->source_agent_type.len,
			 rec->source_agent_type.p);
		free(t->id.source_agent_type);
		t->id.source_agent_type = strdup(t->id.callback_to);
		t->id.has_source_agent = true;
	}
}

/* The decision on one reading of the record (the pickup's, or the one a
 * lost claim returned). Keeps the bytes read in t->id.record: the record
 * a claim expects to find. */
static bool examine(struct bg_daemon *d, struct bg_job *t,
		    const struct bg_str *js, int round)
{
	struct bg_record rec = { 0 };
	bool have = false;
	bg_buf_reset(&t->id.record);
	t->id.prev_status[0] = '\0';
	if (js && bg_buf_append(&t->id.record, js->p, js->len) != 0) {
		bg_end(d, t, BG_END_FAILED, "INTERNAL",
		       "out of memory reading the execution record");
		return false;
	}
	if (js && bg_record_read(&rec, *js) == 0) {
		have = true;
	} else if (js) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "stored execution record is not valid JSON; "
			    "starting a new execution");
	}
	t->id.record_exists = have;
	if (bg_job_keep_route(t, have ? &rec : NULL) != 0) {
		bg_record_free(&rec);
		bg_end(d, t, BG_END_FAILED, "INTERNAL",
		       "out of memory reading the execution record");
		return false;
	}
	bool is_resume = t->id.cmd.action == BG_ACTION_RESUME;
	bool runs = have && bg_record_runs(&rec);
	bool mine = have && rec.worker_id.len &&
		    bg_str_eq(rec.worker_id, d->worker_id);
	if (mine)
		snprintf(t->id.prev_status, sizeof(t->id.prev_status), "%.*s",
			 (int)rec.status.len, rec.status.p);
	bool go = false;
	const char *late = have && bg_status_is_terminal(rec.status) &&
					   is_resume
				   ? bg_cmd_resume_step(&t->id.cmd)
				   : NULL;
	if (late) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_INFO, &ids,
			    "late step: execution already %.*s, its %s in "
			    "entry %s acknowledged without running",
			    (int)rec.status.len, rec.status.p, late,
			    t->id.entry_id);
		bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
	} else if (have && bg_status_is_terminal(rec.status) && !is_resume) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_INFO, &ids,
			    "terminal replay: execution already %.*s, entry %s "
			    "acknowledged without running",
			    (int)rec.status.len, rec.status.p, t->id.entry_id);
		bg_end(d, t, BG_END_ACK_ONLY, NULL, NULL);
	} else if (is_resume && t->id.recovered && replay_in_flight(d)) {
		/* left for the next reconcile, by when the re-sent finish
		 * has acknowledged it if its run had taken it */
		leave_pending(d, t,
			      "this worker (a finish re-sent by recovery)");
	} else if (runs && mine && held_here(d, t)) {
		/* Running here with no job holding it, its run died with the
		 * bygated before this one (a worker id is held by one process)
		 * and it is claimed; running on another worker, the claim asks
		 * that worker's lease. */
		busy(d, t, "this worker", true);
	} else if (t->id.deliveries > d->cfg->max_deliveries) {
		poison(d, t, have);
	} else {
		if (have && rec.cancel_requested) {
			t->run.cancel_requested = true;
			if (t->run.cancel_reason == NULL)
				t->run.cancel_reason =
					bg_str_dup(rec.cancel_reason);
		}
		if (t->run.cancel_requested) {
			cancel(d, t, have, runs, round);
		} else {
			take_run_fields(t, &rec, have);
			go = true;
		}
	}
	bg_record_free(&rec);
	return go;
}

bool bg_admit_examine(struct bg_daemon *d, struct bg_job *t,
		      const struct bg_str *js)
{
	return examine(d, t, js, 0);
}

/* ---- the claim ---- */

/* The RUNNING record: the examined bytes with status, worker_id,
 * updated_at, started_at (once) and a timeline entry spliced in, or a new
 * record (wire/record.c). Exactly what was written before claims. */
static int build_running_bare(struct bg_daemon *d, struct bg_job *t,
			      struct bg_buf *out, struct bg_buf *snap,
			      const struct bg_json_edit *extra, size_t n_extra)
{
	int64_t now = bg_now_ms();
	if (t->id.record_exists) {
		struct bg_record_update u = { .status = bg_str_c("RUNNING"),
					      .worker_id =
						      bg_str_c(d->worker_id),
					      .now_ms = now,
					      .extra = extra,
					      .n_extra = n_extra };
		return bg_record_update_snap(
			out,
			(struct bg_str){ t->id.record.p, t->id.record.len }, &u,
			snap);
	}
	struct bg_record_new n = {
		.execution_id = bg_str_c(t->id.execution_id),
		.message_id = bg_str_c(t->id.message_id),
		.session_id = bg_str_c(t->id.session_id),
		.trace_id = bg_str_c(t->id.trace_id),
		.parent_message_id = bg_str_c(t->id.parent_message_id),
		.worker_id = bg_str_c(d->worker_id),
		.target_agent_type = bg_str_c(t->id.agent_type),
		.stream_name = bg_str_c(t->id.stream),
		.redis_message_id = bg_str_c(t->id.entry_id),
		.cancel_reason = bg_str_c(""),
		.now_ms = now,
	};
	return bg_record_build_running(out, &n);
}

/* The agent_config_audit of each agent type (wire/audit.h), built once
 * per handler generation: what makes it (the name, handler, program and
 * generation) is compared on each use, so a reload rebuilds it. */
#define AUDIT_CACHE 32
static struct audit_cached {
	struct bg_audit_handler h; /* its strings point into `keep` */
	struct bg_buf keep;	   /* name \0 plugin \0 command \0 */
	struct bg_buf json;
} audit_cache[AUDIT_CACHE];
static unsigned audit_next;

static bool audit_same(const struct bg_audit_handler *a,
		       const struct bg_audit_handler *b)
{
	return a->generation == b->generation &&
	       a->agent_type.len == b->agent_type.len &&
	       bg_str_eq(a->agent_type, b->agent_type.p) &&
	       bg_str_eq(a->kind, b->kind.p) &&
	       bg_str_eq(a->plugin, b->plugin.p ? b->plugin.p : "") &&
	       bg_str_eq(a->command, b->command.p ? b->command.p : "") &&
	       bg_str_eq(a->mode, b->mode.p ? b->mode.p : "");
}

/* The cached audit JSON of h, built when missing; empty when it cannot
 * be built. */
static struct bg_str audit_json(const struct bg_audit_handler *h)
{
	for (unsigned i = 0; i < AUDIT_CACHE; i++)
		if (audit_cache[i].json.len && audit_same(&audit_cache[i].h, h))
			return (struct bg_str){ audit_cache[i].json.p,
						audit_cache[i].json.len };
	struct audit_cached *c = &audit_cache[audit_next++ % AUDIT_CACHE];
	bg_buf_reset(&c->json);
	bg_buf_reset(&c->keep);
	if (bg_audit_build(&c->json, h) != 0 ||
	    bg_buf_printf(&c->keep, "%s%c%s%c%s%c%s", h->agent_type.p, 0,
			  h->plugin.p ? h->plugin.p : "", 0,
			  h->command.p ? h->command.p : "", 0,
			  h->mode.p ? h->mode.p : "") != 0) {
		bg_buf_reset(&c->json);
		return bg_str_c("");
	}
	/* the key's strings, owned by the cache entry */
	const char *k = c->keep.p;
	c->h = *h;
	c->h.agent_type = bg_str_c(k);
	k += strlen(k) + 1;
	c->h.plugin = bg_str_c(k);
	k += strlen(k) + 1;
	c->h.command = bg_str_c(k);
	k += strlen(k) + 1;
	c->h.mode = bg_str_c(k);
	c->h.kind = bg_str_c(bg_str_eq(h->kind, "exec") ? "exec" : "plugin");
	return (struct bg_str){ c->json.p, c->json.len };
}

/* The RUNNING record with the agent-config snapshot of what runs it here
 * (WIRE 8.2, wire/audit.h): agent_configs_version and agent_config_audit
 * for the dashboard's execution page. */
static int build_running(struct bg_daemon *d, struct bg_job *t,
			 struct bg_buf *out, struct bg_buf *snap)
{
	struct bg_buf bare = { 0 };
	const struct bg_agent_type_conf *tc =
		bg_config_agent_type(d->cfg, t->id.handler_type);
	bool exec = tc && tc->handler == BG_HANDLER_EXEC;
	struct bg_audit_handler a = {
		.agent_type = bg_str_c(t->id.handler_type),
		.kind = bg_str_c(exec ? "exec" : "plugin"),
		.plugin = bg_str_c(tc && !exec ? tc->plugin : ""),
		.command = bg_str_c(tc && exec ? tc->command : ""),
		.mode = bg_str_c(!exec				? ""
				 : tc->mode == BG_EXEC_PER_TASK ? "per_task"
								: "persistent"),
		.generation = d->pool ? bg_pool_generation(d->pool) : 0,
	};
	struct bg_str audit = tc ? audit_json(&a) : bg_str_c("");
	/* A stored record gets the audit in the same pass as the RUNNING
	 * edits; a new one is spliced after. Either way, without it when
	 * that fails. */
	char ver[BG_I64_STR];
	struct bg_json_edit e[2] = {
		{ "agent_configs_version",
		  { ver, bg_i64_str(ver, a.generation) },
		  BG_JSON_SET },
		{ "agent_config_audit", audit, BG_JSON_SET },
	};
	if (t->id.record_exists && audit.len &&
	    build_running_bare(d, t, out, snap, e, 2) == 0)
		return 0;
	int rc = build_running_bare(d, t, &bare, NULL, NULL, 0);
	if (rc == 0 &&
	    (audit.len == 0 ||
	     bg_audit_splice(out, (struct bg_str){ bare.p, bare.len }, audit,
			     a.generation) != 0))
		rc = bg_buf_append(out, bare.p, bare.len); /* without it */
	bg_buf_free(&bare);
	return rc;
}

/* The other worker the examined record names as running the execution
 * (its lease is then a condition of the claim): c->holder and
 * c->lease_key, or neither. Only a record with a RUNNING in it is read
 * again. */
static int find_holder(struct bg_daemon *d, struct bg_job *t, struct claim *c)
{
	struct bg_record rec = { 0 };
	if (!t->id.record_exists ||
	    memmem(t->id.record.p, t->id.record.len, "\"RUNNING\"", 9) ==
		    NULL ||
	    bg_record_read(&rec, (struct bg_str){ t->id.record.p,
						  t->id.record.len }) != 0)
		return 0;
	int rc = 0;
	if (bg_record_runs(&rec) && rec.worker_id.len &&
	    !bg_str_eq(rec.worker_id, d->worker_id)) {
		c->holder = bg_str_dup(rec.worker_id);
		c->lease_key =
			c->holder ? bg_dkey(d, BG_KEY_WORKER_ONLINE, c->holder)
				  : NULL;
		rc = c->lease_key ? 0 : -ENOMEM;
	}
	bg_record_free(&rec);
	return rc;
}

static void on_claim(struct bg_rconn *conn, redisReply *r, void *priv);

/* Send c (again, as EVAL after a NOSCRIPT). Not sent (the write
 * connection is down): the job's read is sent again when it is back. */
static void on_lease_check(struct bg_rconn *conn, redisReply *r, void *priv);

static void send_claim(struct claim *c, struct bg_job *t)
{
	struct bg_daemon *d = c->d;
	if (c->lease_key && !c->lease_absent && bg_rconn_clustered(d->wr)) {
		/* Under Redis Cluster the holder's lease is in its worker's
		 * slot, not the session's: looked at first, then the claim
		 * without it. The lease could come back in between: a
		 * holder whose lease had lapsed runs on, fenced (lease.h),
		 * and its finish is refused by the pending check. */
		if (bg_rconn_cmdv(d->wr, on_lease_check, c, 0,
				  (const char *const[]){ "EXISTS", c->lease_key,
							 NULL }) != 0) {
			claim_free(c);
			bg_job_move(t, BG_JOB_PICKUP_LOST);
		}
		return;
	}
	bool lease = c->lease_key && !c->lease_absent;
	const char *sha = c->eval ? NULL : claim_sha();
	char nkeys[2] = { lease ? '2' : '1', '\0' };
	char field[64], mapf[BG_FIELD_MAX];
	bool fresh = !t->id.record_exists;
	snprintf(field, sizeof(field), "exec:%s", t->id.execution_id);
	snprintf(mapf, sizeof(mapf), "msg_map:%s", t->id.message_id);
	const char *argv[11];
	size_t lens[11];
	int n = 0;
#define ARG(p, l) (argv[n] = (p), lens[n++] = (l))
	ARG(sha ? "EVALSHA" : "EVAL", sha ? 7 : 4);
	ARG(sha ? sha : CLAIM_LUA, strlen(sha ? sha : CLAIM_LUA));
	ARG(nkeys, 1);
	ARG(t->id.reg_key, strlen(t->id.reg_key));
	if (lease)
		ARG(c->lease_key, strlen(c->lease_key));
	ARG(field, strlen(field));
	ARG(t->id.record.p ? t->id.record.p : "", t->id.record.len);
	ARG(c->rec.p, c->rec.len);
	ARG(fresh ? mapf : "", fresh ? strlen(mapf) : 0);
	ARG(fresh ? t->id.execution_id : "",
	    fresh ? strlen(t->id.execution_id) : 0);
#undef ARG
	if (bg_rconn_cmd(d->wr, on_claim, c, 0, n, argv, lens) != 0) {
		claim_free(c);
		bg_job_move(t, BG_JOB_PICKUP_LOST);
	}
}

static void claim_start(struct bg_daemon *d, struct bg_job *t,
			enum claim_then then, int round)
{
	if (round >= CLAIM_ROUNDS) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "execution record changed under %d claims in a "
			    "row; entry %s left pending for recovery",
			    round, t->id.entry_id);
		bg_job_free(d, t);
		return;
	}
	struct claim *c = calloc(1, sizeof(*c));
	int rc = c ? build_running(d, t, &c->rec, &c->snap) : -ENOMEM;
	if (rc == 0)
		rc = find_holder(d, t, c);
	if (rc) {
		claim_free(c);
		bg_end(d, t, BG_END_FAILED, "INTERNAL",
		       "cannot build the execution record");
		return;
	}
	c->d = d;
	c->tag = t->tag;
	c->then = then;
	c->round = round;
	send_claim(c, t);
}

static void admit_claim(struct bg_daemon *d, struct bg_job *t)
{
	claim_start(d, t, THEN_QUEUE, 0);
}

void bg_admit(struct bg_daemon *d, struct bg_job *t)
{
	if (!bg_idem_check(d, t, admit_claim)) /* keyed: claimed after it */
		admit_claim(d, t);
}

/* Won: the record written is ours (the finish's base), the dashboard's
 * counters follow, and the job runs or ends cancelled. */
static void won(struct claim *c, struct bg_job *t)
{
	struct bg_daemon *d = c->d;
	t->id.waits_for_run = false;
	t->id.wait_since_ms = 0;
	if (t->wait_ev)
		evtimer_del(t->wait_ev);
	bg_buf_free(&t->id.record);
	t->id.record = c->rec;
	c->rec = (struct bg_buf){ 0 };
	t->id.record_exists = true;
	bg_expire_once(d, t->id.reg_key);
	bg_stats_update_snap(
		d, (struct bg_str){ t->id.record.p, t->id.record.len },
		&c->snap, t->id.execution_id,
		t->id.prev_status[0] ? t->id.prev_status : NULL, "RUNNING",
		NULL, NULL);
	snprintf(t->id.prev_status, sizeof(t->id.prev_status), "RUNNING");
	if (c->then == THEN_CANCEL)
		bg_end_cancelled(d, t);
	else {
		bg_eventlog_queued(d, t);
		bg_job_enqueue(d, t); /* placed at the end of the loop turn */
	}
}

static bool exec_id_usable(const redisReply *m)
{
	if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len >= 32)
		return false;
	for (size_t i = 0; i < m->len; i++)
		if ((unsigned char)m->str[i] < 0x20 || m->str[i] == 0x7f)
			return false;
	return true;
}

/* Lost: the record changed since it was examined (a duplicate claimed it,
 * a client cancelled it, ...): examined again as it is now. */
static void lost(struct claim *c, struct bg_job *t, const redisReply *r)
{
	struct bg_daemon *d = c->d;
	int round = c->round + 1;
	const redisReply *cur = r->element[r->elements - 1];
	if (r->elements == 3) { /* msg_map names another execution */
		const redisReply *m = r->element[1];
		bool ok = exec_id_usable(m);
		snprintf(t->id.execution_id, sizeof(t->id.execution_id), "%.*s",
			 ok ? (int)m->len : 0, ok ? m->str : "");
		if (!ok)
			cur = NULL;
	}
	claim_free(c);
	struct bg_log_ids ids = bg_job_log_ids(t);
	bg_log_task(BG_LOG_DEBUG, &ids,
		    "claim of entry %s lost: the execution record changed "
		    "since it was read; examined again",
		    t->id.entry_id);
	struct bg_str js = { 0 };
	if (cur && cur->type == REDIS_REPLY_STRING)
		js = (struct bg_str){ cur->str, cur->len };
	if (examine(d, t, js.p ? &js : NULL, round))
		claim_start(d, t, THEN_QUEUE, round);
}

/* The job of a claim's reply, or NULL (it was freed at exit: so is c). */
static struct bg_job *claim_job(struct claim *c)
{
	struct bg_job *t = bg_job_find(c->d, c->tag);
	if (t == NULL)
		claim_free(c);
	return t;
}

static void on_lease_check(struct bg_rconn *conn, redisReply *r, void *priv)
{
	struct claim *c = priv;
	struct bg_daemon *d = c->d;
	struct bg_job *t = claim_job(c);
	if (t == NULL)
		return;
	if (r == NULL) {
		claim_free(c);
		bg_job_move(t, BG_JOB_PICKUP_LOST); /* read again */
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		c->lease_absent = true;
		send_claim(c, t);
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER)
		busy(d, t, c->holder, false);
	else {
		bg_job_refused(t, "holder's lease check", r);
		bg_rconn_drop(d->wr, "holder's lease check refused");
	}
	(void)conn;
	claim_free(c);
}

static void on_claim(struct bg_rconn *conn, redisReply *r, void *priv)
{
	(void)conn;
	struct claim *c = priv;
	struct bg_daemon *d = c->d;
	struct bg_job *t = claim_job(c);
	if (t == NULL)
		return;
	if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1 &&
	    bg_fault_hit("admit.claim_reply_lost")) {
		/* A claim applied, its reply dropped with the connection. */
		bg_rconn_drop(d->wr, "fault injection: claim reply lost");
		r = NULL;
	}
	if (r == NULL) {
		/* outcome unknown: read and examined again when the write
		 * connection is back (a claim of ours found applied then is
		 * claimed again: it runs here and nowhere else) */
		claim_free(c);
		bg_job_move(t, BG_JOB_PICKUP_LOST);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR && !c->eval &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0) {
		c->eval = true; /* not loaded (a restarted or flushed Redis) */
		send_claim(c, t);
		return;
	}
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		won(c, t);
	} else if (r->type == REDIS_REPLY_INTEGER && r->integer == 2) {
		busy(d, t, c->holder, false);
	} else if (r->type == REDIS_REPLY_ARRAY &&
		   (r->elements == 2 || r->elements == 3) &&
		   r->element[0]->type == REDIS_REPLY_INTEGER &&
		   r->element[0]->integer == 0) {
		lost(c, t, r);
		return; /* c freed */
	} else {
		bg_job_refused(t, "execution record claim", r);
		bg_rconn_drop(d->wr, "execution record claim refused");
	}
	claim_free(c);
}
