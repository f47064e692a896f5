/* supervisor/kill.c - see kill.h. A signal goes to the child's process
 * group (bg_pool_signal); `signalled` marks the job as the cause of its
 * child's death, so tasks sharing that child are re-run, not failed. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "supervisor/daemon.h"
#include "supervisor/kill.h"
#include "supervisor/log.h"

enum { STEP_NONE, STEP_LINE, STEP_TERM, STEP_KILL };

static void on_step_due(evutil_socket_t fd, short ev, void *arg);

static int grace_ms(const struct bg_daemon *d, const struct bg_job *t)
{
	return t->run.kill_reason == BG_KILL_TIMEOUT ? BG_TIMEOUT_GRACE_MS
						     : d->cfg->cancel_grace_ms;
}

static const char *signal_reason(const struct bg_job *t)
{
	return t->run.kill_reason == BG_KILL_TIMEOUT ? "timed out"
						     : "cancelled";
}

static void take_step(struct bg_daemon *d, struct bg_job *t, int step)
{
	t->run.kill_step = step;
	if (step == STEP_LINE) {
		if (t->run.kill_reason == BG_KILL_TIMEOUT)
			bg_pool_cancel(d->pool, t->run.slot, t->tag, "timeout",
				       "timeout");
		else
			bg_pool_cancel(d->pool, t->run.slot, t->tag,
				       t->run.cancel_reason, "graceful");
	} else {
		t->run.signalled = true;
		bg_pool_signal(d->pool, t->run.slot,
			       step == STEP_TERM ? SIGTERM : SIGKILL,
			       signal_reason(t));
		if (step == STEP_KILL)
			return;
	}
	if (t->run.kill_ev == NULL)
		t->run.kill_ev = evtimer_new(d->base, on_step_due, t);
	int ms = grace_ms(d, t);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (t->run.kill_ev)
		evtimer_add(t->run.kill_ev, &tv);
}

static void on_step_due(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_job *t = arg;
	struct bg_daemon *d = t->d;
	if (t->state != BG_JOB_KILLING || t->run.slot < 0)
		return;
	struct bg_log_ids ids = bg_job_log_ids(t);
	/* A shared child runs other tasks: no SIGTERM step (DESIGN 8: only
	 * a kill ends the process, and the others re-run uncounted). */
	int next = t->run.kill_step == STEP_LINE && !t->run.shared ? STEP_TERM
								   : STEP_KILL;
	const char *after = t->run.shared ? "its cancel line" : "SIGTERM";
	if (t->run.kill_reason == BG_KILL_TIMEOUT)
		bg_log_task(BG_LOG_INFO, &ids,
			    "task still running %d ms after %s; SIGKILL to the "
			    "child's process group",
			    BG_TIMEOUT_GRACE_MS, after);
	else if (next == STEP_TERM)
		bg_log_task(BG_LOG_INFO, &ids,
			    "cancel: the handler is still running %d ms after "
			    "the cancel flag; SIGTERM to the child's process "
			    "group",
			    d->cfg->cancel_grace_ms);
	else
		bg_log_task(BG_LOG_INFO, &ids,
			    "cancel: still running after %s; SIGKILL", after);
	take_step(d, t, next);
}

static void read_wchan(int pid, char *out, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	FILE *f = fopen(path, "re");
	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)n, f) == NULL)
			out[0] = '\0';
		fclose(f);
	}
	if (out[0] == '\0' || strcmp(out, "0") == 0)
		snprintf(out, n, "running");
}

void bg_kill_start(struct bg_daemon *d, struct bg_job *t,
		   enum bg_kill_reason why)
{
	if (!bg_job_in_child(t) || t->run.slot < 0)
		return;
	if (why == BG_KILL_FORCE) {
		bg_job_move(t, BG_JOB_KILLING);
		if (t->run.kill_ev)
			evtimer_del(t->run.kill_ev);
		t->run.kill_step = STEP_KILL;
		t->run.signalled = true;
		bg_pool_signal(d->pool, t->run.slot, SIGKILL,
			       "cancelled (force)");
		return;
	}
	if (why == BG_KILL_TIMEOUT)
		t->run.timed_out = true;
	if (t->state == BG_JOB_KILLING)
		return; /* one ladder at a time */
	bg_job_move(t, BG_JOB_KILLING);
	t->run.kill_reason = why;
	if (why == BG_KILL_TIMEOUT) {
		char wchan[64];
		read_wchan(t->run.pid, wchan, sizeof(wchan));
		/* A shared child runs other tasks: the program is told
		 * through the protocol first; only the kill after the grace
		 * ends them all. */
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_INFO, &ids,
			    "task timed out after %lld ms (child wchan %s); %s",
			    (long long)(bg_mono_ms() - t->run.started_ms),
			    wchan,
			    t->run.shared
				    ? "cancel line to its program"
				    : "SIGTERM to the child's process group");
		take_step(d, t, t->run.shared ? STEP_LINE : STEP_TERM);
		return;
	}
	take_step(d, t, STEP_LINE);
}

static void on_deadline(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_job *t = arg;
	bg_kill_start(t->d, t, BG_KILL_TIMEOUT);
}

void bg_kill_arm_deadline(struct bg_daemon *d, struct bg_job *t)
{
	const struct bg_agent_type_conf *tc =
		bg_config_agent_type(d->cfg, t->id.handler_type);
	if (tc == NULL || tc->timeout_ms <= 0)
		return;
	if (t->run.deadline_ev == NULL)
		t->run.deadline_ev = evtimer_new(d->base, on_deadline, t);
	if (t->run.deadline_ev == NULL)
		return;
	struct timeval tv = { tc->timeout_ms / 1000,
			      (tc->timeout_ms % 1000) * 1000 };
	evtimer_add(t->run.deadline_ev, &tv);
}

void bg_kill_disarm(struct bg_job *t)
{
	if (t->run.deadline_ev)
		evtimer_del(t->run.deadline_ev);
	if (t->run.kill_ev)
		evtimer_del(t->run.kill_ev);
	t->run.kill_step = STEP_NONE;
}
