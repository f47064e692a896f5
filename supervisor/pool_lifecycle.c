/* supervisor/pool_lifecycle.c - the life of a slot's child: spawn (through
 * spawn.c), reap and report, respawn with back-off, the crash-storm
 * breaker, recycling one child at a time, the spare child that tries a
 * down agent type again, the 100 ms sweep and shutdown. */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/waitstatus.h"
#include "supervisor/log.h"
#include "supervisor/spawn.h"

/* The child's exit status when a task process it forked ended without its
 * RESULT: score.task_status then holds that process's wait status
 * (BG_CHILD_EXIT_TASK_DIED of child/child.h, a child internal). */
#define CHILD_EXIT_TASK_DIED 75

/* A spare child still there this long after its start is killed: without
 * its HELLO, the try has failed (bygated -t waits as long). */
#define RETRY_TIMEOUT_MS 10000
#define RETRY_TIMEOUT_WHY "no answer to its CONFIG within 10 s"

/* The child rang: read its up ring. The doorbell is edge-triggered
 * (EV_ET): each write of the child is one wake-up even while the eventfd's
 * counter is not zero, so it is never drained (a read system call per
 * task saved); the counter, +1 per ring, cannot reach its 2^64 - 2 limit. */
/* The child's doorbell is edge-triggered and never drained (one read
 * system call per task less), which only epoll honours: on a backend
 * without EV_FEATURE_ET (EVENT_NOEPOLL in the environment) it is drained,
 * or it would stay readable and wake every turn. */
static void on_wake(evutil_socket_t fd, short ev, void *arg)
{
	(void)ev;
	struct bg_slot *sl = arg;
	if (!(event_base_get_features(sl->pool->base) & EV_FEATURE_ET))
		(void)bg_doorbell_drain(fd);
	bg_slot_read(sl);
}

static int spawn_child(struct bg_slot *sl)
{
	struct bg_pool *p = sl->pool;
	int rc = bg_segment_create((uint32_t)sl->slot, p->generation,
				   (uint64_t)p->cfg->ring_bytes,
				   (uint64_t)p->cfg->max_message_bytes,
				   &sl->seg);
	if (rc) {
		bg_error("slot %d: bg_segment_create() failed: %s", sl->slot,
			 strerror(-rc));
		sl->seg.fd = -1;
		return rc;
	}
	/* Records we read are zeroed in the ring: the child's next task
	 * process maps it and must not find an earlier task's events or
	 * result (another session's) there. */
	sl->seg.up.wipe = true;
	sl->wake_child_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sl->wake_sup_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sl->wake_child_fd == -1 || sl->wake_sup_fd == -1) {
		rc = -errno;
		bg_error("slot %d: eventfd() failed: %s", sl->slot,
			 strerror(errno));
		bg_slot_release(sl);
		return rc;
	}
	int out_w = -1;
	rc = bg_slot_output_open(sl, &out_w);
	if (rc) {
		bg_error("slot %d: cannot make the output pipe: %s", sl->slot,
			 strerror(-rc));
		bg_slot_release(sl);
		return rc;
	}
	/* Sources above 9 (spawn.h): dup2 onto 3..5 clears CLOEXEC. */
	int src[3] = { bg_pool_dup_high(sl->seg.fd),
		       bg_pool_dup_high(sl->wake_child_fd),
		       bg_pool_dup_high(sl->wake_sup_fd) };
	char slot_s[16], gen_s[16];
	snprintf(slot_s, sizeof(slot_s), "%d", sl->slot);
	snprintf(gen_s, sizeof(gen_s), "%u", p->generation);
	char *argv[] = { p->child_path, "--slot",
			 slot_s,	"--generation",
			 gen_s,		p->cfg->sandbox ? NULL : "--no-sandbox",
			 NULL };
	pid_t pid = 0;
	char err[512] = "";
	if (src[0] < 0 || src[1] < 0 || src[2] < 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "fcntl(F_DUPFD_CLOEXEC) failed: %s",
			 strerror(errno));
	} else {
		rc = bg_spawn_child(p->spawner, p->child_path, argv, src, out_w,
				    &pid, err, sizeof(err));
	}
	for (int i = 0; i < 3; i++)
		if (src[i] >= 0)
			close(src[i]);
	close(out_w);
	if (rc != 0) {
		bg_error("slot %d: cannot start %s: %s", sl->slot,
			 p->child_path, err);
		bg_slot_output_close(sl);
		bg_slot_release(sl);
		return rc;
	}
	sl->pid = pid;
	sl->state = SLOT_STARTING;
	sl->n_tags = 0;
	sl->group = -1;
	sl->kill_reason = NULL;
	sl->broken = false;
	sl->exited = false;
	sl->recycling = false;
	sl->tasks_done = 0;
	sl->generation = p->generation;
	sl->partial = p->config_partial;
	sl->started_ms = bg_pool_mono_ms();
	sl->in.max_len = (size_t)p->cfg->max_message_bytes;
	uint64_t base = (uint64_t)p->cfg->max_tasks_per_child;
	sl->recycle_after = base ? base + (uint64_t)random() % (base / 10 + 1)
				 : 0;
	sl->ev_wake = event_new(p->base, sl->wake_sup_fd,
				EV_READ | EV_PERSIST | EV_ET, on_wake, sl);
	event_add(sl->ev_wake, NULL);
	const struct bg_buf *config = &p->config_payload;
	if (bg_slot_is_retry(sl))
		config = &p->retry_config;
	else
		p->stats.spawned++;
	bg_debug("slot %d: spawned bygate-child pid %d", sl->slot, (int)pid);
	rc = bg_slot_queue(sl, BG_REC_CONFIG, 0, config->p, config->len);
	if (rc) {
		bg_slot_kill(sl, "config could not be sent");
		return rc;
	}
	/* We consume the up ring from the loop: announce that we wait. */
	bg_ring_consumer_sleep_prepare(&sl->seg.up);
	return 0;
}

/* How the child ended, for the operator and the task record. A child that
 * exited CHILD_EXIT_TASK_DIED with a task status on its scoreboard is
 * described by that status: the task process it forked died (a crash, a
 * kill of a timeout or cancel), and the text is the one a child dying that
 * way would get. Read before the segment is released. */
static void describe_status(const struct bg_slot *sl, int status, char *buf,
			    size_t n)
{
	const struct bg_seg_hdr *hdr = sl->seg.hdr;
	if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_EXIT_TASK_DIED &&
	    hdr != NULL &&
	    __atomic_load_n(&hdr->score.task_status_set, __ATOMIC_ACQUIRE) == 1)
		status = (int)__atomic_load_n(&hdr->score.task_status,
					      __ATOMIC_RELAXED);
	bg_wait_status_text(status, buf, n);
}

static void schedule_respawn(struct bg_slot *sl)
{
	struct bg_pool *p = sl->pool;
	int64_t delay = 0;
	if (sl->quick_deaths > 0) {
		delay = 100LL
			<< (sl->quick_deaths > 10 ? 10 : sl->quick_deaths);
		if (delay > p->cfg->respawn_backoff_max_ms)
			delay = p->cfg->respawn_backoff_max_ms;
	}
	sl->respawn_at_ms = bg_pool_mono_ms() + delay;
	if (delay > 0 && !bg_pool_nothing_loads(p)) /* else held (on_sweep) */
		bg_warn("slot %d: respawning in %lld ms (%d quick deaths)",
			sl->slot, (long long)delay, sl->quick_deaths);
}

/* DESIGN 6: N unexpected deaths within T open a breaker instead of
 * fork-looping; no child is respawned until it closes. */
static void note_death(struct bg_pool *p)
{
	int n = p->cfg->crash_storm_deaths;
	if (n > p->deaths_cap) /* raised by SIGHUP: the array keeps its size */
		n = p->deaths_cap;
	int64_t now = bg_pool_mono_ms();
	if (p->deaths == NULL || n <= 0)
		return;
	p->deaths[p->death_pos] = now;
	p->death_pos = (p->death_pos + 1) % n;
	if (p->n_deaths < n)
		p->n_deaths++;
	int64_t oldest = p->deaths[p->death_pos % n];
	if (p->n_deaths == n && now - oldest <= p->cfg->crash_storm_window_ms &&
	    now >= p->breaker_until_ms) {
		p->breaker_until_ms = now + p->cfg->crash_storm_pause_ms;
		p->stats.breaker_opened++;
		p->n_deaths = 0;
		bg_error(
			"crash storm: %d child deaths within %d ms; breaker open, "
			"no child is respawned and no task read for %d ms",
			n, p->cfg->crash_storm_window_ms,
			p->cfg->crash_storm_pause_ms);
	}
}

bool bg_pool_breaker_open(const struct bg_pool *p)
{
	return bg_pool_mono_ms() < p->breaker_until_ms;
}

/* The metrics label of a child's end, from our own kill reason first. */
static const char *exit_reason(const struct bg_slot *sl, bool expected)
{
	const char *k = sl->kill_reason;
	if (expected)
		return "recycle";
	if (sl->pool->shutting_down)
		return "shutdown";
	if (k == NULL)
		return "crash";
	if (strstr(k, "timed out"))
		return "timeout";
	if (strstr(k, "cancel"))
		return "cancel";
	if (strstr(k, "protocol"))
		return "protocol";
	if (strstr(k, "fatal"))
		return "fatal";
	return "crash";
}

static void child_reaped(struct bg_slot *sl, int status)
{
	struct bg_pool *p = sl->pool;
	char why[256], st[96];
	describe_status(sl, status, st, sizeof(st));
	bg_slot_output_close(
		sl); /* its last words before the report of its end */
	uint64_t tags[BG_POOL_MAX_INFLIGHT];
	int n_tags = sl->n_tags;
	memcpy(tags, sl->tags, sizeof(tags[0]) * (size_t)n_tags);
	if (sl->kill_reason)
		snprintf(why, sizeof(why),
			 "child process (pid %d, slot %d) %s: %s", (int)sl->pid,
			 sl->slot, st, sl->kill_reason);
	else
		snprintf(why, sizeof(why), "child process (pid %d, slot %d) %s",
			 (int)sl->pid, sl->slot, st);
	bool expected = sl->recycling && WIFEXITED(status) &&
			WEXITSTATUS(status) == 0;
	if (expected) {
		p->stats.recycled++;
		bg_debug("%s (recycled after %llu tasks)", why,
			 (unsigned long long)sl->tasks_done);
	} else if (!p->shutting_down) {
		bg_warn("%s", why);
	}
	if (!expected && !p->shutting_down)
		note_death(p);
	if (p->ops.on_child_exit)
		p->ops.on_child_exit(p->arg, exit_reason(sl, expected));
	if (!expected && bg_pool_mono_ms() - sl->started_ms < 1000)
		sl->quick_deaths++;
	else if (expected || n_tags)
		sl->quick_deaths = 0;
	sl->pid = 0;
	sl->n_tags = 0;
	sl->group = -1;
	sl->state = SLOT_EMPTY;
	sl->recycling = false;
	bg_slot_release(sl);
	if (n_tags) {
		p->stats.died_busy++;
		p->ops.on_child_lost(p->arg, sl->slot, tags, n_tags, why);
	}
	if (!p->shutting_down)
		schedule_respawn(sl);
}

/* The spare child is gone. Loaded (its HELLO came): done, the type is
 * served. Failed (FATAL, crash, timeout): the type stays down, the reason
 * shown for it is updated, and its next try waits its back-off; logged
 * at WARN only when the reason changed, else DEBUG. Not a death of the
 * breaker, no respawn of its own: the sweep starts the next try. */
static void retry_reaped(struct bg_pool *p, int status)
{
	struct bg_slot *sl = &p->retry;
	char st[96], why[512];
	describe_status(sl, status, st, sizeof(st));
	bg_slot_output_close(sl);
	int t = p->retry_type;
	bool moot = p->retry_loaded || sl->generation != p->generation ||
		    p->shutting_down || t < 0 || t >= p->n_types ||
		    p->type_failure[t] == NULL;
	if (p->retry_why[0])
		snprintf(why, sizeof(why), "%s", p->retry_why);
	else
		snprintf(why, sizeof(why),
			 "the child %s before it loaded the handler%s%s", st,
			 sl->kill_reason ? ": " : "",
			 sl->kill_reason ? sl->kill_reason : "");
	bg_debug("slot %d: spare child pid %d %s", sl->slot, (int)sl->pid, st);
	sl->pid = 0;
	sl->state = SLOT_EMPTY;
	bg_slot_release(sl);
	if (moot)
		return;
	int64_t delay = bg_pool_retry_delay_ms(p, p->type_tries[t]);
	p->type_retry_at[t] = bg_pool_mono_ms() + delay;
	bool same = strcmp(why, p->type_failure[t]) == 0;
	bg_log(same ? BG_LOG_DEBUG : BG_LOG_WARN,
	       "agent type %s still cannot be served (%s); tried in a spare "
	       "child, again in %lld ms",
	       p->cfg->agent_types[t].name, why, (long long)delay);
	char *copy = same ? NULL : strdup(why);
	if (copy) { /* what /readyz shows */
		free(p->type_failure[t]);
		p->type_failure[t] = copy;
	}
}

/* The next down agent type whose try is due (after the last one tried, in
 * turn), or -1. */
static int retry_due(const struct bg_pool *p, int64_t now)
{
	for (int k = 1; k <= p->n_types; k++) {
		int i = (p->retry_type + k) % p->n_types;
		if (p->type_failure[i] && now >= p->type_retry_at[i])
			return i;
	}
	return -1;
}

/* From the sweep: kill a spare child that does not answer; start one for
 * the next type due, unless the breaker is open or one is out. */
static void retry_sweep(struct bg_pool *p, int64_t now)
{
	struct bg_slot *sl = &p->retry;
	if (sl->pid > 0) {
		bg_slot_read(sl);
		bg_slot_flush(sl);
		if (sl->pid > 0 && now - sl->started_ms > RETRY_TIMEOUT_MS)
			bg_slot_kill(sl, RETRY_TIMEOUT_WHY);
		return;
	}
	int t = p->shutting_down || now < p->breaker_until_ms
			? -1
			: retry_due(p, now);
	if (t < 0)
		return;
	p->retry_type = t;
	p->retry_loaded = false;
	p->retry_why[0] = '\0';
	p->type_tries[t]++;
	int rc = bg_pool_build_retry_config(p, t);
	if (rc == 0)
		rc = spawn_child(sl);
	if (rc != 0)
		p->type_retry_at[t] =
			now + bg_pool_retry_delay_ms(p, p->type_tries[t]);
}

static void on_sigchld(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	struct bg_pool *p = arg;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		if (p->retry.pid == pid) {
			p->retry.exited = true;
			bg_slot_read(&p->retry);
			retry_reaped(p, status);
			continue;
		}
		for (int i = 0; i < p->n; i++)
			if (p->c[i].pid == pid) {
				/* Read what it sent before it died; nothing
				 * is handed to it meanwhile. */
				p->c[i].exited = true;
				bg_slot_read(&p->c[i]);
				child_reaped(&p->c[i], status);
				break;
			}
	}
}

static bool any_recycling(const struct bg_pool *p)
{
	for (int i = 0; i < p->n; i++)
		if (p->c[i].recycling && p->c[i].state == SLOT_STOPPING)
			return true;
	return false;
}

/* Every 100 ms: the safety-net sweep of DESIGN 5, respawns and recycling. */
static void on_sweep(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_pool *p = arg;
	int64_t now = bg_pool_mono_ms();
	/* While no agent type loads, a child would only report FATAL and
	 * die: the slots stay empty and the spare child tries the types. */
	bool hold = bg_pool_nothing_loads(p);
	for (int i = 0; i < p->n; i++) {
		struct bg_slot *sl = &p->c[i];
		if (sl->pid > 0) {
			bg_slot_read(sl);
			bg_slot_flush(sl);
		} else if (!p->shutting_down && !hold &&
			   sl->state == SLOT_EMPTY &&
			   now >= sl->respawn_at_ms &&
			   now >= p->breaker_until_ms) {
			if (spawn_child(sl) != 0) {
				sl->quick_deaths++;
				schedule_respawn(sl);
			}
		}
	}
	for (int i = 0; i < p->n && !p->shutting_down; i++) {
		struct bg_slot *sl = &p->c[i];
		if (sl->recycling && sl->state == SLOT_IDLE &&
		    !any_recycling(p)) {
			sl->state = SLOT_STOPPING;
			bg_slot_queue(sl, BG_REC_STOP, 0, "", 0);
		}
	}
	retry_sweep(p, now);
	bool breaker = now < p->breaker_until_ms;
	if (breaker != p->breaker_was_open) {
		p->breaker_was_open = breaker;
		if (p->ops.on_types_changed)
			p->ops.on_types_changed(p->arg);
	}
	bg_pool_end_of_turn(p);
}

int bg_pool_start(struct bg_pool *p)
{
	p->ev_sigchld = evsignal_new(p->base, SIGCHLD, on_sigchld, p);
	p->ev_sweep = event_new(p->base, -1, EV_PERSIST, on_sweep, p);
	if (p->ev_sigchld == NULL || p->ev_sweep == NULL)
		return -ENOMEM;
	evsignal_add(p->ev_sigchld, NULL);
	struct timeval tv = { 0, 100 * 1000 };
	event_add(p->ev_sweep, &tv);
	for (int i = 0; i < p->n; i++) {
		int rc = spawn_child(&p->c[i]);
		if (rc)
			return rc;
	}
	return 0;
}

void bg_pool_shutdown(struct bg_pool *p, bool graceful)
{
	p->shutting_down = true;
	for (int i = 0; i < p->n; i++) {
		struct bg_slot *sl = &p->c[i];
		if (sl->pid <= 0)
			continue;
		if (graceful && sl->state != SLOT_STOPPING) {
			if (sl->state != SLOT_BUSY)
				sl->state = SLOT_STOPPING;
			bg_slot_queue(sl, BG_REC_STOP, 0, "", 0);
		} else if (!graceful) {
			bg_slot_kill(sl, "bygated is stopping");
		}
	}
	bg_slot_kill(&p->retry, "bygated is stopping");
	bg_pool_end_of_turn(p);
}
