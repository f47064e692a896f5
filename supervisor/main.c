/* supervisor/main.c - bygated: command line, start-up, the event loop
 * (one EVLOOP_ONCE turn, then the end-of-turn work) and signals: TERM
 * drains in-flight tasks within drain_timeout_ms, INT stops at once,
 * USR1 reopens the log. Signal handlers only set flags (libevent). */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "common/fault.h"
#include "state/state.h"
#include "supervisor/attempt.h"
#include "supervisor/daemon.h"
#include "supervisor/entry_read.h"
#include "supervisor/eventlog.h"
#include "supervisor/gate.h"
#include "supervisor/ready.h"
#include "supervisor/route.h"
#include "supervisor/lease.h"
#include "supervisor/admit.h"
#include "supervisor/pickup.h"
#include "supervisor/resume_take.h"
#include "supervisor/schedule.h"
#include "supervisor/setup.h"
#include "supervisor/http.h"
#include "supervisor/metrics.h"
#include "supervisor/sandbox.h"
#include "supervisor/spawn.h"
#include "supervisor/timers.h"
#include "supervisor/trace.h"
#include "supervisor/history.h"
#include "supervisor/triggers.h"
#include "workspace/workspace.h"
#include "supervisor/log.h"
#include "wire/keys.h"

#include <fcntl.h>
#include <sys/file.h>

#define EXIT_OK BG_EXIT_OK
#define EXIT_CONFIG BG_EXIT_CONFIG
#define EXIT_USAGE BG_EXIT_USAGE
#define EXIT_RUNTIME BG_EXIT_RUNTIME

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bygated [-c FILE] [-t | -T]\n"
		"  -c FILE  configuration file (default $BYGATE_CONFIG, else\n"
		"           /etc/bygate/bygate.conf)\n"
		"  -t       check the configuration and exit (0 = valid)\n"
		"  -T       print the effective configuration and exit\n"
		"  -h       this help\n");
}

static void on_conn_state(struct bg_rconn *c, bool up, void *arg)
{
	struct bg_daemon *d = arg;
	if (c == d->ctl && up)
		bg_consume_on_ctl_up(d);
	if (c == d->wr && up) {
		bg_pickup_on_wr_up(d);
		bg_finish_resend_unknown(d);
	}
	if (c == d->rd && !up)
		d->read_in_flight = false;
}

/* Why bygated cannot run on the cluster cfg names, or NULL (not a
 * cluster, or one it runs on). */
static const char *bg_cluster_refusal(const struct bg_config *cfg)
{
	if (!cfg->redis_cluster)
		return NULL;
	if (cfg->key_schema != BG_SCHEMA_V2)
		return "needs the v2 key schema (REDIS_KEY_SCHEMA_VERSION=v2): "
		       "v1 keys of one session do not share a slot";
	if (cfg->redis_db != 0)
		return "a cluster has only database 0 (redis.db)";
	return NULL;
}

static struct bg_rconn *new_conn(struct bg_daemon *d, const char *role)
{
	const struct bg_config *cfg = d->cfg;
	char name[256], seed[300];
	snprintf(name, sizeof(name), "bygated:%s:%s", cfg->worker_id, role);
	/* under Cluster: the seed list, else the configured server */
	snprintf(seed, sizeof(seed), "%s:%d", cfg->redis_host, cfg->redis_port);
	const char *seeds = cfg->redis_cluster_nodes &&
					    cfg->redis_cluster_nodes[0]
				    ? cfg->redis_cluster_nodes
				    : seed;
	struct bg_rconn_opts o = {
		.role = role,
		.host = cfg->redis_host,
		.port = cfg->redis_port,
		.db = cfg->redis_db,
		.username = cfg->redis_username,
		.password = cfg->redis_password,
		.client_name = name,
		.connect_timeout_ms = cfg->redis_connect_timeout_ms,
		.command_timeout_ms = cfg->redis_command_timeout_ms,
		.reconnect_max_ms = cfg->redis_reconnect_max_ms,
		.cluster_seeds = cfg->redis_cluster ? seeds : NULL,
	};
	return bg_rconn_new(d->base, &o, on_conn_state, d);
}

static void begin_stop(struct bg_daemon *d)
{
	d->stopping = true;
	bg_pool_shutdown(d->pool, false);
	event_base_loopbreak(d->base);
}

static void on_drain_timeout(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	bg_warn("drain timeout (%d ms) reached with %d tasks in flight; they "
		"stay pending in Redis for recovery",
		d->cfg->drain_timeout_ms, d->n_tasks);
	begin_stop(d);
}

static bool same_agent_types(const struct bg_config *a,
			     const struct bg_config *b)
{
	if (a->n_agent_types != b->n_agent_types)
		return false;
	for (int i = 0; i < a->n_agent_types; i++)
		if (strcmp(a->agent_types[i].name, b->agent_types[i].name) != 0)
			return false;
	return true;
}

/* SIGHUP (DESIGN 8): validate the file first and keep the running
 * configuration on any error; else apply the reloadable keys and recycle
 * the children by generation so they load their handlers afresh. The old
 * configuration stays allocated until exit (tasks in flight point into
 * it). */
static void reload_config(struct bg_daemon *d)
{
	char err[1024];
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	struct bg_config *next = calloc(1, sizeof(*next));
	int rc = next ? bg_config_load(d->cfg->path, next, err, sizeof(err))
		      : -1;
	if (rc == 0 && bg_config_reload_check(d->cfg, next, err, sizeof(err)))
		rc = -1;
	if (rc == 0 && !same_agent_types(d->cfg, next)) {
		snprintf(err, sizeof(err),
			 "agent types added, removed or reordered: restart "
			 "bygated to apply that");
		rc = -1;
	}
	if (rc == 0 && next->pool_size != d->cfg->pool_size) {
		snprintf(err, sizeof(err),
			 "pool.size changed: restart bygated "
			 "to apply that");
		rc = -1;
	}
	if (rc != 0) {
		bg_error("SIGHUP: %s; keeping the running configuration",
			 next ? err : "out of memory");
		sd_notifyf(0,
			   "READY=1\nSTATUS=reload failed, running on the "
			   "previous configuration: %s",
			   next ? err : "out of memory");
		if (next) {
			bg_config_free(next);
			free(next);
		}
		return;
	}
	next->next_old = d->cfg;
	d->cfg = next;
	bg_log_open(next->log_level, next->log_format, next->log_file);
	(void)bg_eventlog_configure(d);
	struct bg_rconn *conns[] = { d->rd, d->wr, d->ctl };
	for (int i = 0; i < 3; i++)
		bg_rconn_set_timeouts(conns[i], next->redis_connect_timeout_ms,
				      next->redis_command_timeout_ms,
				      next->redis_reconnect_max_ms);
	bg_pool_set_config(d->pool, next);
	bg_triggers_reload(d);
	uint32_t gen = bg_pool_new_generation(d->pool);
	bg_info("SIGHUP: configuration reloaded from %s; children recycled "
		"one at a time (generation %u)",
		next->path, gen);
	bg_notify_status(d, "READY=1\n");
}

static void on_signal(evutil_socket_t sig, short ev, void *arg)
{
	(void)ev;
	struct bg_daemon *d = arg;
	if (sig == SIGUSR1) {
		bg_log_reopen();
		(void)bg_eventlog_configure(d); /* the event log too */
		bg_info("log reopened");
	} else if (sig == SIGHUP) {
		reload_config(d);
	} else if (sig == SIGINT || d->draining) {
		bg_info("%s: stopping now",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
		begin_stop(d);
	} else {
		bg_info("SIGTERM: draining %d tasks (at most %d ms)",
			d->n_tasks, d->cfg->drain_timeout_ms);
		sd_notify(0, "STOPPING=1\nSTATUS=draining");
		d->draining = true; /* the read stops at the turn's end */
		int ms = d->cfg->drain_timeout_ms;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		evtimer_add(d->drain_timer, &tv);
	}
}

static void on_time_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	bg_consume_sync_time(d);
	if (d->ready_logged)
		bg_notify_status(d, NULL);
	int dead = 0;
	if (d->state && bg_state_reader_check(d->state, &dead) == 0 && dead)
		bg_warn("LMDB: %d stale reader slots cleared", dead);
}

static void on_child_exit(void *arg, const char *reason)
{
	struct bg_daemon *d = arg;
	bg_metrics_child_exit(d->metrics, reason);
}

static void on_types_changed(void *arg)
{
	bg_control_types_changed(arg);
}

static void on_ring_stall(void *arg)
{
	struct bg_daemon *d = arg;
	bg_metrics_ring_stall(d->metrics);
}

static void on_watchdog(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	sd_notify(0, "WATCHDOG=1"); /* the loop turns: we are alive */
}

static void on_ready_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg; /* the turn's end does the work */
}

static void on_reconcile_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	bg_recover_own(d, false);
	bg_recover_peers(d);
	if (bg_mono_ms() - d->last_gc_ms >= 60000) {
		d->last_gc_ms = bg_mono_ms();
		bg_sessions_gc(d);
	}
}

/* One LMDB commit of what was buffered since the last one. */
static void commit_state(struct bg_daemon *d)
{
	if (d->state == NULL || !bg_state_buffered(d->state))
		return;
	int rc = bg_state_commit(d->state);
	if (rc) {
		d->state_errors++;
		if (d->state_errors == 1 || d->state_errors % 1000 == 0)
			bg_error("LMDB commit failed (%llu times): %s",
				 (unsigned long long)d->state_errors,
				 bg_state_errmsg(d->state));
	}
}

/* Write every connection's queued commands, one write system call each
 * (redis.h); the write connection first, as its replies (pickup reads,
 * claims, finishes) are on a task's path and the read's re-armed
 * XREADGROUP is not. A lost connection's callbacks may queue commands on
 * another one: flush again until none was lost (at most once each). */
static void flush_redis(struct bg_daemon *d)
{
	struct bg_rconn *conns[] = { d->wr, d->rd, d->ctl };
	for (int pass = 0; pass < 4; pass++) {
		bool lost = false;
		/* what a lost connection's callbacks queued may rest on a
		 * journal write: committed before it is sent (DESIGN 3) */
		if (pass > 0)
			commit_state(d);
		for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
			if (conns[i] && bg_rconn_flush(conns[i]))
				lost = true;
		if (!lost)
			return;
	}
}

/* One loop turn. Commands queued since the last turn's end (between two
 * turns, or outside the main loop at shutdown) are written first, after
 * a commit of what they may depend on (a no-op after turn_end): the loop
 * would otherwise sleep on them, as nothing waits for their writing. */
static void loop_once(struct bg_daemon *d, int flags)
{
	bg_stats_flush(d); /* dashboard stats batched since (stats.c) */
	commit_state(d);
	flush_redis(d);
	event_base_loop(d->base, flags);
}

/* End of a loop turn: the one place queued jobs are placed and the read
 * is re-armed, then one LMDB commit, and only then the turn's Redis
 * commands written, one write per connection (so a finish is journaled
 * before it is sent), and each child's doorbell rung at most once. */
static void turn_end(struct bg_daemon *d)
{
	bg_schedule_dispatch(d);
	bg_consume_kick(d);
	commit_state(d);
	if (d->journaled_this_turn && bg_fault_hit("finish.after_journal"))
		_exit(BG_FAULT_EXIT);
	if (d->journaled_taking_this_turn &&
	    bg_fault_hit("finish.after_journal_taking"))
		_exit(BG_FAULT_EXIT);
	d->journaled_this_turn = false;
	d->journaled_taking_this_turn = false;
	bg_stats_flush(d); /* the turn's dashboard batch, then a new set */
	bg_keyset_clear(d->expired);
	bg_pool_end_of_turn(d->pool);
	bg_eventlog_flush(d);
	flush_redis(d);
}

/* ---- reports from below (struct bg_hooks, struct bg_pool_ops) ---- */

static void on_lease_held(struct bg_daemon *d)
{
	bg_control_refresh_admin(d); /* lifecycle known before the first read */
	bg_consume_on_lease_held(d);
}

static void on_lease_renewed(struct bg_daemon *d, bool lapsed)
{
	if (lapsed)
		bg_finish_mark_verify(d); /* check each is still ours */
	bg_control_refresh_admin(d);	  /* then membership and denylist */
	bg_gate_renew(d);		  /* fleet places live with the lease */
	bg_finish_release_held(d);
}

static void on_child_idle(void *arg, int slot)
{
	(void)slot;
	bg_schedule_dispatch(arg);
}

/* A job is about to be freed: the suspect list's head moves on, and the
 * RESUMEs its run took are freed with it (its finish acknowledged them)
 * or wait again (it was not applied). */
static void on_job_freed(struct bg_daemon *d, const struct bg_job *t)
{
	bg_suspects_job_freed(d, t);
	bg_resume_take_release(d, t,
			       t->fin.applied &&
				       t->end.end_kind == BG_END_RESULT &&
				       !t->run.outbox_dropped);
}

static int daemon_init(struct bg_daemon *d, struct bg_config *cfg)
{
	d->cfg = cfg;
	d->all.next = d->all.prev = &d->all;
	d->hooks = (struct bg_hooks){ .job_freed = on_job_freed,
				      .lease_held = on_lease_held,
				      .lease_renewed = on_lease_renewed,
				      .reread = bg_pickup_again };
	d->worker_id = cfg->worker_id;
	d->group = cfg->consumer_group;
	d->read_block_idx = -1;
	d->base = event_base_new();
	d->expired = bg_keyset_new();
	d->metrics = bg_metrics_new();
	if (d->base == NULL || d->expired == NULL || d->metrics == NULL)
		return -ENOMEM;
	d->n_streams = 1 + cfg->n_agent_types;
	d->streams = calloc((size_t)d->n_streams, sizeof(char *));
	if (d->streams == NULL)
		return -ENOMEM;
	d->streams[0] = bg_dkey(d, BG_KEY_WORKER_CTRL, cfg->worker_id);
	for (int i = 0; i < cfg->n_agent_types; i++)
		d->streams[i + 1] = bg_dkey(d, BG_KEY_AGENT_TYPE_CTRL,
					    cfg->agent_types[i].name);
	d->deadletter_key = bg_dkey(d, BG_KEY_DEADLETTER, "");
	d->denied = calloc((size_t)cfg->n_agent_types + 1, sizeof(bool));
	d->unserved = calloc((size_t)cfg->n_agent_types + 1, sizeof(bool));
	snprintf(d->lifecycle, sizeof(d->lifecycle), "active");
	d->started_mono_ms = bg_mono_ms();
	for (int i = 0; i < d->n_streams; i++)
		if (d->streams[i] == NULL)
			return -EINVAL;
	if (d->deadletter_key == NULL)
		return -EINVAL;
	return 0;
}

static void daemon_free(struct bg_daemon *d)
{
	bg_job_free_all(d);
	bg_entry_deferred_free_all(d);
	bg_suspects_free(d); /* the list in LMDB is kept for the next start */
	bg_schedule_free(d);
	bg_rconn_free(d->rd);
	bg_rconn_free(d->wr);
	bg_rconn_free(d->ctl);
	bg_gate_free(d);   /* after the connections: their callbacks ran */
	bg_timers_free(d); /* the same */
	bg_trace_stop(d);  /* when the loop was never run */
	bg_history_stop(d);
	bg_triggers_stop(d); /* the same */
	bg_http_stop(d);
	bg_metrics_free(d->metrics);
	bg_eventlog_close(d);
	bg_pool_free(d->pool);
	for (int i = 0; i < d->n_streams && d->streams; i++)
		free(d->streams[i]);
	free(d->streams);
	free(d->deadletter_key);
	bg_stats_free(d);
	bg_keyset_free(d->expired);
	if (d->drain_timer)
		event_free(d->drain_timer);
	if (d->time_timer)
		event_free(d->time_timer);
	if (d->reconcile_timer)
		event_free(d->reconcile_timer);
	if (d->ready_timer)
		event_free(d->ready_timer);
	bg_ready_free(d);
	free(d->pick_in_flight);
	free(d->pick_last_ms);
	bg_lease_free(d);
	bg_control_free(d);
	bg_route_free_all(d);
	bg_ws_cache_free(d->ws_cache);
	if (d->state)
		bg_state_close(d->state);
	if (d->lock_fd > 0)
		close(d->lock_fd);
	if (d->base)
		event_base_free(d->base);
}

static int run(struct bg_daemon *d, const struct bg_spawn_identity *who)
{
	struct bg_config *cfg = d->cfg;
	char *child = cfg->child_path && cfg->child_path[0]
			      ? strdup(cfg->child_path)
			      : bg_setup_child_path();
	if (access(child, X_OK) != 0) {
		bg_error("bygate-child not executable at %s: %s", child,
			 strerror(errno));
		free(child);
		return EXIT_RUNTIME;
	}
	int src = bg_setup_dirs(cfg, child, who);
	if (src) {
		free(child);
		return src;
	}
	struct bg_pool_ops ops = {
		on_child_idle, bg_attempt_on_message, bg_attempt_on_child_lost,
		on_child_exit, on_ring_stall,	      on_types_changed
	};
	d->pool = bg_pool_new(d->base, cfg, child, who, &ops, d);
	free(child);
	int lrc = bg_setup_lock(d);
	if (lrc == 0)
		lrc = bg_setup_state(d);
	if (lrc)
		return lrc;
	if (d->pool == NULL || bg_pool_start(d->pool) != 0) {
		bg_error("cannot start the child pool");
		return EXIT_RUNTIME;
	}
	d->rd = new_conn(d, "read");
	d->wr = new_conn(d, "write");
	d->ctl = new_conn(d, "control");
	if (!d->rd || !d->wr || !d->ctl)
		return EXIT_RUNTIME;
	bg_entry_read_attach(d);
	int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	struct event *sev[4];
	for (int i = 0; i < 4; i++) {
		sev[i] = evsignal_new(d->base, sigs[i], on_signal, d);
		evsignal_add(sev[i], NULL);
	}
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	d->time_timer = event_new(d->base, -1, EV_PERSIST, on_time_tick, d);
	struct timeval tv30 = { 30, 0 };
	event_add(d->time_timer, &tv30);
	d->reconcile_timer =
		event_new(d->base, -1, EV_PERSIST, on_reconcile_tick, d);
	int rms = cfg->reconcile_interval_ms;
	struct timeval tvr = { rms / 1000, (rms % 1000) * 1000 };
	event_add(d->reconcile_timer, &tvr);
	/* wakes the loop so that a worker with free places polls the ready
	 * set a peer filled (consume.c) */
	d->ready_timer = event_new(d->base, -1, EV_PERSIST, on_ready_tick, d);
	struct timeval tvp = { 0, 100 * 1000 };
	if (d->ready_timer)
		event_add(d->ready_timer, &tvp);
	if (bg_timers_start(d) != 0) {
		bg_error("cannot start the timers of resume_later: out of "
			 "memory");
		return EXIT_RUNTIME;
	}
	if (bg_triggers_start(d) != 0) {
		bg_error("cannot start the triggers: out of memory");
		return EXIT_RUNTIME;
	}
	(void)bg_eventlog_configure(d); /* logs its own failure */
	if (bg_trace_start(d) != 0 || bg_history_start(d) != 0) {
		bg_error("cannot start the trace writer or the metrics "
			 "history: out of memory");
		return EXIT_RUNTIME;
	}
	if (bg_http_start(d) != 0)
		return EXIT_RUNTIME;
	uint64_t wd_usec = 0;
	struct event *wd = NULL;
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		wd = event_new(d->base, -1, EV_PERSIST, on_watchdog, d);
		struct timeval tvw = { (time_t)(wd_usec / 2000000),
				       (suseconds_t)((wd_usec / 2) % 1000000) };
		event_add(wd, &tvw);
	}
	bg_rconn_start(d->ctl);
	bg_rconn_start(d->wr);
	bg_rconn_start(d->rd);
	while (!d->stopping) {
		loop_once(d, EVLOOP_ONCE);
		turn_end(d);
		if (d->draining)
			bg_admit_drop_waiters(d);
		if (d->draining && d->n_tasks == 0) {
			bg_info("drained: no task in flight");
			d->stopping = true;
		}
	}
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	if (wd)
		event_free(wd);
	bg_pool_shutdown(d->pool, false);
	/* the last spans and the collector lock's release (best effort) */
	bg_trace_stop(d);
	bg_history_stop(d);
	for (int64_t until = bg_mono_ms() + 1000;
	     bg_rconn_pending(d->wr) && bg_mono_ms() < until;)
		loop_once(d, EVLOOP_ONCE);
	if (d->exit_code != BG_EXIT_LEASE_LOST) {
		/* WIRE 5.8: token-checked release, then membership removal. */
		bg_lease_release(d);
		int64_t until = bg_mono_ms() + 2000;
		while (!bg_lease_released(d) && bg_mono_ms() < until)
			loop_once(d, EVLOOP_ONCE);
		for (int i = 0; i < 10 && bg_rconn_pending(d->ctl); i++)
			loop_once(d, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	bg_stats_flush(d);
	if (d->state)
		bg_state_commit(d->state);
	flush_redis(d); /* the last turn's, best effort */
	bg_http_stop(d);
	for (int i = 0; i < 4; i++)
		event_free(sev[i]);
	bg_info("bygated stopped (completed %llu, failed %llu, "
		"dead-lettered %llu, acknowledged only %llu)",
		(unsigned long long)d->n_completed,
		(unsigned long long)d->n_failed,
		(unsigned long long)d->n_deadlettered,
		(unsigned long long)d->n_acked_only);
	return d->exit_code;
}

/* bygated -t: beyond the file, every agent type's handler must start
 * (setup.c); quiet but for what it prints. 0 or EXIT_CONFIG. */
static int check_handlers(const struct bg_config *cfg)
{
	char err[1024];
	struct bg_spawn_identity who;
	if (bg_spawn_resolve(cfg->pool_user, cfg->pool_group, &who, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", cfg->path, err);
		return EXIT_CONFIG;
	}
	char *child = bg_setup_child_path();
	if (child == NULL) {
		fprintf(stderr, "bygate-child not found next to bygated\n");
		return EXIT_CONFIG;
	}
	bg_log_set_level((enum bg_log_level)(BG_LOG_ERROR + 1));
	signal(SIGPIPE, SIG_IGN);
	int rc = bg_setup_check_handlers(cfg, child, &who);
	free(child);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int check = 0, dump = 0, opt;
	static const struct option long_opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	while ((opt = getopt_long(argc, argv, "c:tTh", long_opts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'T':
			dump = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (path == NULL)
		path = bg_config_default_path(); /* $BYGATE_CONFIG or /etc */
	struct bg_config cfg;
	char err[1024];
	if (bg_config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_CONFIG;
	}
	if (check) {
		int rc = check_handlers(&cfg);
		if (rc == 0)
			printf("%s: configuration is valid\n", cfg.path);
		bg_config_free(&cfg);
		return rc;
	}
	if (dump) {
		bg_config_dump(&cfg, stdout);
		struct bg_sandbox_support sup;
		bg_sandbox_probe(geteuid() == 0, &sup);
		bg_sandbox_print(stdout, &sup);
		bg_config_free(&cfg);
		return EXIT_OK;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit (RLIMIT_FSIZE) below the journal's map must fail
	 * its ftruncate/posix_fallocate with EFBIG, so that the journal falls
	 * back to write system calls (state/env.c), not kill bygated.
	 * Children get every signal back at their default (spawn.c). */
	signal(SIGXFSZ, SIG_IGN);
	srandom((unsigned)getpid() ^ (unsigned)bg_now_ms());
	bg_log_open(cfg.log_level, cfg.log_format, cfg.log_file);
	const char *no_cluster = bg_cluster_refusal(&cfg);
	if (no_cluster) {
		bg_error(
			"Redis Cluster (REDIS_MODE=cluster, "
			"REDIS_CLUSTER_HOST or redis.mode): %s (docs/cluster.md)",
			no_cluster);
		bg_config_free(&cfg);
		return EXIT_RUNTIME;
	}
	struct bg_spawn_identity who;
	if (bg_spawn_resolve(cfg.pool_user, cfg.pool_group, &who, err,
			     sizeof(err)) != 0) {
		bg_error("%s; refusing to start", err);
		bg_config_free(&cfg);
		return EXIT_CONFIG;
	}
	if (who.privileged)
		bg_info("children run as user %s (uid %d), group %s (gid %d), "
			"without capabilities, each PID 1 of its own PID "
			"namespace",
			who.user, (int)who.uid, who.group, (int)who.gid);
	else
		bg_warn("children run as uid %d (bygated is not root): no PID "
			"namespace per child, no user switch",
			(int)who.uid);
	struct bg_sandbox_support support;
	bg_sandbox_probe(who.privileged, &support);
	if (bg_sandbox_report(&cfg, &support, err, sizeof(err)) != 0) {
		bg_error("%s; refusing to start", err);
		bg_config_free(&cfg);
		return EXIT_CONFIG;
	}
	int rc = bg_setup_mkdir(cfg.state_dir);
	if (rc == 0)
		rc = bg_setup_mkdir(cfg.workspace_dir);
	if (rc) {
		bg_error("cannot create state or workspace directory: %s",
			 strerror(-rc));
		bg_config_free(&cfg);
		return EXIT_RUNTIME;
	}
	struct bg_daemon d;
	memset(&d, 0, sizeof(d));
	if (daemon_init(&d, &cfg) != 0) {
		bg_error("cannot initialise bygated");
		daemon_free(&d);
		bg_config_free(&cfg);
		return EXIT_RUNTIME;
	}
	bg_info("bygated starting: worker %s, redis %s:%d db %d", cfg.worker_id,
		cfg.redis_host, cfg.redis_port, cfg.redis_db);
	rc = run(&d, &who);
	struct bg_config *live = d.cfg;
	daemon_free(&d);
	while (live && live != &cfg) { /* configurations replaced by SIGHUP */
		struct bg_config *older = live->next_old;
		bg_config_free(live);
		free(live);
		live = older;
	}
	bg_config_free(&cfg);
	return rc;
}
