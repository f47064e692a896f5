/* supervisor/consume.c - consumer-group set-up and the single read of
 * DESIGN 3: one XREADGROUP over the worker stream and, while there is
 * capacity, every agent-type stream, never asking for more than free
 * capacity plus a small prefetch; a blocked read that lacks the agent
 * streams is released with CLIENT UNBLOCK as soon as capacity returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/entry_read.h"
#include "supervisor/lease.h"
#include "supervisor/log.h"
#include "supervisor/pickup.h"
#include "supervisor/ready.h"
#include "supervisor/schedule.h"

static void issue_read(struct bg_daemon *d);
static void log_ready(struct bg_daemon *d);

static void handle_read_reply(struct bg_daemon *d, redisReply *r);

static void on_read(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	d->read_in_flight = false;
	d->unblock_sent = false;
	if (r == NULL)
		return;		 /* connection lost; entries stay in our PEL */
	handle_read_reply(d, r); /* the next read: at the turn's end */
}

static void handle_read_reply(struct bg_daemon *d, redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		bg_warn("XREADGROUP failed: %s", r->str);
		if (strncmp(r->str, "NOGROUP", 7) == 0) {
			d->groups_ready = false;
			bg_consume_on_ctl_up(d);
		}
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t s = 0; s < r->elements; s++) {
			redisReply *sr = r->element[s];
			if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
				continue;
			int idx = -1;
			for (int i = 0; i < d->n_streams; i++)
				if (strcmp(d->streams[i],
					   sr->element[0]->str) == 0)
					idx = i;
			redisReply *entries = sr->element[1];
			if (idx < 0 || entries->type != REDIS_REPLY_ARRAY)
				continue;
			for (size_t e = 0; e < entries->elements; e++) {
				redisReply *en = entries->element[e];
				if (en->type != REDIS_REPLY_ARRAY ||
				    en->elements < 2)
					continue;
				struct bg_entry_body b;
				bg_entry_body_take(en->element[1], &b);
				if (b.kind == BG_ENTRY_DEFERRED)
					bg_entry_defer(d, idx,
						       en->element[0]->str,
						       b.len, true);
				else
					bg_pickup_accept(d, idx,
							 en->element[0]->str,
							 &b, true);
			}
		}
	}
}

/* Whether the read should cover stream i now: the worker stream always;
 * an agent-type stream while there is capacity, the worker is active and
 * the type is not denied to it (WIRE 5.5, 5.6). */
static bool wants_stream(const struct bg_daemon *d, int i,
			 struct bg_capacity cap)
{
	if (i == 0)
		return true;
	int room = bg_schedule_stream_shares(d, i) ? cap.shared : cap.alone;
	/* with the ready set, entries beyond the room are moved there */
	return (room > 0 || bg_ready_enabled(d)) && !bg_control_suspended(d) &&
	       !(d->denied && d->denied[i - 1]) &&
	       !bg_control_unserved(d, i - 1);
}

static uint64_t mask_with(const struct bg_daemon *d, struct bg_capacity cap)
{
	uint64_t m = 0;
	for (int i = 0; i < d->n_streams; i++)
		if (wants_stream(d, i, cap))
			m |= 1ULL << (i < 63 ? i : 63);
	return m;
}

static uint64_t want_mask(const struct bg_daemon *d)
{
	return mask_with(d, bg_schedule_room(d));
}

/* COUNT applies to each stream of the read: the smallest capacity of the
 * kinds it covers (the worker stream may carry either). */
static int read_count(const struct bg_daemon *d, struct bg_capacity cap)
{
	bool alone = false, shared = false;
	for (int i = 1; i < d->n_streams; i++)
		if (wants_stream(d, i, cap)) {
			if (bg_schedule_stream_shares(d, i))
				shared = true;
			else
				alone = true;
		}
	int n = shared && !alone	 ? cap.shared
		: alone && !shared	 ? cap.alone
		: cap.alone < cap.shared ? cap.alone
					 : cap.shared;
	if (bg_ready_enabled(d) && n < d->cfg->sched_window)
		n = d->cfg->sched_window;
	return n > 0 ? n : 1;
}

/* ---- deferred entries (entry_read.h): fetched by id, oldest first,
 * before anything new is read ---- */

static void on_fetched(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	d->read_in_flight = false;
	d->unblock_sent = false; /* an unblock meant for a read: void */
	const struct bg_entry_deferred *e = bg_entry_deferred_head(d);
	if (r == NULL || e == NULL)
		return; /* connection lost: fetched again */
	int idx = e->stream_idx;
	bool may_park = e->may_park;
	char *id = strdup(e->id);
	if (id == NULL)
		return;
	bg_entry_deferred_pop(d);
	if (r->type == REDIS_REPLY_ERROR) {
		/* left pending: the reconcile claims it */
		bg_warn("cannot fetch deferred entry %s on %s: %s", id,
			d->streams[idx], r->str);
	} else {
		struct bg_entry_body b = { .kind = BG_ENTRY_GONE };
		redisReply *en = r->type == REDIS_REPLY_ARRAY &&
						 r->elements == 1
					 ? r->element[0]
					 : NULL;
		if (en && en->type == REDIS_REPLY_ARRAY && en->elements >= 2 &&
		    en->element[0]->type == REDIS_REPLY_STRING &&
		    strcmp(en->element[0]->str, id) == 0)
			bg_entry_body_take(en->element[1], &b);
		if (bg_job_holds(d, d->streams[idx], id))
			free(b.data);
		else
			bg_pickup_accept(d, idx, id, &b, may_park);
	}
	free(id);
}

/* Whether a deferred entry waits (nothing new is read meanwhile); its
 * fetch is sent once there is room for it, or nothing is held at all. */
static bool fetch_deferred(struct bg_daemon *d)
{
	const struct bg_entry_deferred *e = bg_entry_deferred_head(d);
	if (e == NULL)
		return false;
	if (d->read_bytes_held > 0 && e->len > bg_entry_room(d))
		return true;
	const char *argv[] = { "XRANGE", d->streams[e->stream_idx], e->id,
			       e->id };
	if (bg_rconn_cmd_entries(d->rd, on_fetched, d, 0, 4, argv) == 0) {
		d->read_in_flight = true;
		d->read_mask = want_mask(d);
		d->last_read_issued_ms = bg_mono_ms(); /* reading goes on */
	}
	return true;
}

/* ---- under Redis Cluster: streams of different slots are never read
 * together (the reference's cluster-safe two-phase read, WIRE 4) ---- */

/* The longest a blocking read of one stream makes entries of the others
 * wait: after it, every stream is read again without BLOCK. */
#define CLUSTER_BLOCK_MAX_MS 200

static bool has_entries(const redisReply *r)
{
	for (size_t s = 0; r && r->type == REDIS_REPLY_ARRAY && s < r->elements;
	     s++) {
		const redisReply *sr = r->element[s];
		if (sr->type == REDIS_REPLY_ARRAY && sr->elements == 2 &&
		    sr->element[1]->type == REDIS_REPLY_ARRAY &&
		    sr->element[1]->elements > 0)
			return true;
	}
	return false;
}

static void on_read_part(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r && has_entries(r))
		d->read_got = true;
	if (r)
		handle_read_reply(d, r);
	if (--d->read_parts > 0)
		return;
	bool blocking = d->read_block_idx >= 0;
	d->read_in_flight = false;
	d->unblock_sent = false;
	d->read_block_idx = -1;
	/* a round without BLOCK that found nothing: block next, on one
	 * stream; after a blocking read (entries or not): every stream */
	d->read_block_next = !blocking && !d->read_got && r != NULL;
}

static int read_one(struct bg_daemon *d, int i, const char *count,
		    const char *block)
{
	const char *argv[] = { "XREADGROUP",  "GROUP", d->group,
			       d->worker_id,  "COUNT", count,
			       "BLOCK",	      block,   "STREAMS",
			       d->streams[i], ">" };
	int rc =
		block ? bg_rconn_cmd_entries(d->rd, on_read_part, d,
					     atoi(block), 11, argv)
		      : bg_rconn_cmd_entries(
				d->rd, on_read_part, d, 0, 9,
				(const char *[]){ argv[0], argv[1], argv[2],
						  argv[3], argv[4], argv[5],
						  argv[8], argv[9], argv[10] });
	if (rc == 0)
		d->read_parts++;
	return rc;
}

static bool issue_read_cluster(struct bg_daemon *d, struct bg_capacity cap,
			       const char *count)
{
	d->read_parts = 0;
	d->read_got = false;
	d->read_block_idx = -1;
	if (d->read_block_next) {
		char block[16];
		int ms = d->cfg->block_ms < CLUSTER_BLOCK_MAX_MS
				 ? d->cfg->block_ms
				 : CLUSTER_BLOCK_MAX_MS;
		snprintf(block, sizeof(block), "%d", ms);
		for (int k = 0; k < d->n_streams; k++) {
			int i = (d->read_rr + k) % d->n_streams;
			if (!wants_stream(d, i, cap))
				continue;
			d->read_rr = i + 1;
			d->read_block_next = false;
			if (read_one(d, i, count, block) != 0)
				return false;
			d->read_block_idx = i;
			return true;
		}
		return false;
	}
	for (int i = 0; i < d->n_streams; i++)
		if (wants_stream(d, i, cap) && read_one(d, i, count, NULL) != 0)
			break; /* the connection is down: what was sent is
				  answered NULL */
	return d->read_parts > 0;
}

static void issue_read(struct bg_daemon *d)
{
	if (d->read_in_flight || !d->groups_ready || d->draining ||
	    d->stopping || !bg_rconn_ready(d->rd) || !bg_lease_held(d) ||
	    !d->start_reconciled)
		return;
	if (fetch_deferred(d))
		return;
	if (bg_entry_room(d) == 0)
		return; /* the read budget is full: read again once a task
			   is handed to a child */
	/* Fault point for /readyz's consumer_stalled: from the n-th read on,
	 * no read is issued any more. */
	static bool stalled;
	if (stalled || bg_fault_hit("consume.stall")) {
		stalled = true;
		return;
	}
	struct bg_capacity cap = bg_schedule_room(d);
	if (bg_rconn_clustered(d->rd)) {
		char n[16];
		snprintf(n, sizeof(n), "%d", read_count(d, cap));
		if (issue_read_cluster(d, cap, n)) {
			d->read_in_flight = true;
			d->read_mask = want_mask(d);
			d->last_read_issued_ms = bg_mono_ms();
			log_ready(d);
			if (!d->reader_ready)
				bg_lease_reader_ready(d);
		}
		return;
	}
	const char **argv =
		calloc((size_t)(9 + 2 * d->n_streams), sizeof(char *));
	if (argv == NULL)
		return;
	char count[16], block[16];
	snprintf(count, sizeof(count), "%d", read_count(d, cap));
	snprintf(block, sizeof(block), "%d", d->cfg->block_ms);
	int a = 0;
	argv[a++] = "XREADGROUP";
	argv[a++] = "GROUP";
	argv[a++] = d->group;
	argv[a++] = d->worker_id;
	argv[a++] = "COUNT";
	argv[a++] = count;
	argv[a++] = "BLOCK";
	argv[a++] = block;
	argv[a++] = "STREAMS";
	int n = 0;
	for (int i = 0; i < d->n_streams; i++)
		if (wants_stream(d, i, cap)) {
			argv[a++] = d->streams[i];
			n++;
		}
	for (int i = 0; i < n; i++)
		argv[a++] = ">";
	if (bg_rconn_cmd_entries(d->rd, on_read, d, d->cfg->block_ms, a,
				 argv) == 0) {
		d->read_in_flight = true;
		d->read_mask = want_mask(d);
		d->last_read_issued_ms = bg_mono_ms();
		log_ready(d);	      /* once */
		if (!d->reader_ready) /* (already, after suspects) */
			bg_lease_reader_ready(d); /* online only from now */
	}
	free(argv);
}

/* Under Cluster the blocking read is on the node of its stream, and so
 * is its CLIENT UNBLOCK; the reads without BLOCK need none. */
static void unblock_read(struct bg_daemon *d)
{
	bool cluster = bg_rconn_clustered(d->rd);
	const char *key = cluster && d->read_block_idx >= 0
				  ? d->streams[d->read_block_idx]
				  : NULL;
	long long id = bg_rconn_client_id_for(d->rd, key);
	if (d->unblock_sent || id == 0 || !bg_rconn_ready(d->ctl))
		return;
	char ids[32];
	snprintf(ids, sizeof(ids), "%lld", id);
	const char *argv[] = { "CLIENT", "UNBLOCK", ids };
	if (bg_rconn_cmd_near(d->ctl, key, NULL, NULL, 3, argv) == 0)
		d->unblock_sent = true;
}

/* ---- the ready set (ready.h): free places are filled from it ---- */

struct pick_ctx {
	struct bg_daemon *d;
	int stream_idx;
	int n; /* places reserved for it (d->pick_reserved) */
};

static void on_picked(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct pick_ctx *p = priv;
	struct bg_daemon *d = p->d;
	int idx = p->stream_idx;
	d->pick_reserved -= p->n; /* the entries become jobs below */
	free(p);
	if (d->pick_in_flight)
		d->pick_in_flight[idx] = false;
	redisReply *entries = bg_ready_pick_entries(d, idx, r);
	for (size_t e = 0; entries && e < entries->elements; e++) {
		redisReply *en = entries->element[e];
		if (en->type != REDIS_REPLY_ARRAY || en->elements < 2 ||
		    en->element[0]->type != REDIS_REPLY_STRING)
			continue;
		struct bg_entry_body b;
		bg_entry_body_take(en->element[1], &b);
		if (b.kind == BG_ENTRY_DEFERRED)
			bg_entry_defer(d, idx, en->element[0]->str, b.len,
				       false);
		else
			bg_pickup_accept(d, idx, en->element[0]->str, &b,
					 false);
	}
}

/* For every agent type with free places: take its next entries from the
 * ready set, when entries may wait there (moved by this worker, or a
 * peer: polled every READY_POLL_MS; with the ready set turned off by a
 * reload, every READY_DRAIN_MS, so that what was parked still runs).
 * Nothing is picked while deferred entries wait for the read budget:
 * they are this worker's already. The places a pick asks for are
 * reserved until its reply (d->pick_reserved), so picks of several agent
 * types never take more than the free places. */
#define READY_POLL_MS 100
#define READY_DRAIN_MS 5000

static void pick_ready(struct bg_daemon *d)
{
	if (!d->start_reconciled || d->draining || d->stopping ||
	    !bg_lease_held(d) || !bg_rconn_ready(d->wr) ||
	    bg_control_suspended(d) || bg_entry_deferred_head(d) != NULL)
		return;
	int poll_ms = bg_ready_enabled(d) ? READY_POLL_MS : READY_DRAIN_MS;
	if (d->pick_in_flight == NULL) {
		d->pick_in_flight = calloc((size_t)d->n_streams, sizeof(bool));
		d->pick_last_ms = calloc((size_t)d->n_streams, sizeof(int64_t));
		if (d->pick_in_flight == NULL || d->pick_last_ms == NULL)
			return;
	}
	int64_t now = bg_mono_ms();
	for (int i = 1; i < d->n_streams; i++) {
		if (d->pick_in_flight[i] || (d->denied && d->denied[i - 1]) ||
		    bg_control_unserved(d, i - 1))
			continue;
		if (!bg_ready_maybe_waiting(d, i) &&
		    now - d->pick_last_ms[i] < poll_ms)
			continue;
		if (bg_schedule_type_full(d, i - 1))
			continue; /* at its max_running here */
		/* the free places plus the prefetch, as a read takes: the
		 * next task is here when a child frees */
		struct bg_capacity cap = bg_schedule_room(d);
		int n = bg_schedule_stream_shares(d, i) ? cap.shared
							: cap.alone;
		if (n <= 0 || bg_entry_room(d) == 0)
			continue;
		/* While every free place has a task here (or on its way)
		 * and no child is idle, the prefetch is topped up once half
		 * of it is gone, so that a pick takes several entries rather
		 * than one per finished task (a pick's fixed cost: a script
		 * that reads the lanes and their passes and writes the passes
		 * back). An idle child is filled at once: the tasks held here
		 * may be unable to start (a lane or agent type at its
		 * max_running, a follower held for the primers, the gate),
		 * and other lanes' parked entries could use it. */
		int size = bg_pool_size(d->pool);
		int prefetch = d->cfg->fetch_count < size ? d->cfg->fetch_count
							  : size;
		if (bg_pool_idle_count(d->pool) == 0 &&
		    bg_schedule_free_places(d, i) <= 0 && 2 * n < prefetch)
			continue;
		struct pick_ctx *p = malloc(sizeof(*p));
		if (p == NULL)
			return;
		*p = (struct pick_ctx){ d, i, n };
		const char *capped[64];
		int k = bg_schedule_capped_lanes(d, capped, 64);
		if (bg_ready_pick(d, i, n, capped, k, on_picked, p) == 0) {
			d->pick_in_flight[i] = true;
			d->pick_last_ms[i] = now;
			d->pick_reserved += n;
		} else {
			free(p);
		}
	}
}

void bg_consume_kick(struct bg_daemon *d)
{
	bg_ready_flush(d);
	pick_ready(d);
	bg_suspects_kick(d); /* the next suspect, when one is due */
	if (d->read_in_flight) {
		/* Re-issue at once when the streams the read should cover
		 * changed (capacity back, suspend/resume, denylist) or on stop:
		 * a blocked read that gained streams is released; one that
		 * lost some is left to return (its entries are ours). */
		bool stop = d->draining || d->stopping;
		uint64_t want = want_mask(d);
		/* capacity aside */
		uint64_t allowed = mask_with(d, (struct bg_capacity){ 1, 1 });
		if (stop || (want & ~d->read_mask) != 0 ||
		    (d->read_mask & ~allowed) != 0)
			unblock_read(d);
		return;
	}
	issue_read(d);
}

/* ---- set-up on the control connection ---- */

static void log_ready(struct bg_daemon *d)
{
	if (d->ready_logged)
		return;
	d->ready_logged = true;
	struct bg_buf types = { 0 };
	for (int i = 0; i < d->cfg->n_agent_types; i++)
		bg_buf_printf(&types, "%s%s", i ? "," : "",
			      d->cfg->agent_types[i].name);
	bg_notify_status(d, "READY=1\n"); /* lease held, recovered, reading */
	bg_info("bygated ready: worker %s, group %s, %d children, key schema "
		"v%d, agent types %s",
		d->worker_id, d->group, bg_pool_size(d->pool),
		(int)d->cfg->key_schema, types.p ? types.p : "");
	bg_buf_free(&types);
}

static void on_group_created(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL) {
		d->groups_failed = true; /* retried when ctl is back */
	} else if (r->type == REDIS_REPLY_ERROR &&
		   strncmp(r->str, "BUSYGROUP", 9) != 0) {
		bg_error("XGROUP CREATE failed: %s", r->str);
		d->groups_failed = true;
	}
	if (--d->groups_pending == 0 && !d->groups_failed) {
		d->groups_ready = true;
		if (!d->start_reconciled) {
			bg_recover_forget_applied(d);
			bg_recover_own(d, true);
		}
	}
}

static void on_time(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return;
	int64_t ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
		     strtoll(r->element[1]->str, NULL, 10) / 1000;
	d->redis_offset_ms = ms - bg_now_ms();
	d->redis_time_known = true;
}

void bg_consume_sync_time(struct bg_daemon *d)
{
	bg_rconn_cmdv(d->ctl, on_time, d, 0,
		      (const char *const[]){ "TIME", NULL });
}

/* The control connection is (back) up: the lease first; groups and
 * recovery follow once it is held. */
void bg_consume_on_ctl_up(struct bg_daemon *d)
{
	bg_consume_sync_time(d);
	bg_lease_on_ctl_up(d);
	if (!bg_lease_held(d))
		return;
	if (!d->groups_ready)
		bg_consume_on_lease_held(d);
	else
		bg_recover_own(d, false); /* after every reconnect */
}

void bg_consume_on_lease_held(struct bg_daemon *d)
{
	if (d->groups_ready || d->groups_pending > 0)
		return;
	d->groups_failed = false;
	for (int i = 0; i < d->n_streams; i++) {
		if (bg_rconn_cmdv(d->ctl, on_group_created, d, 0,
				  (const char *const[]){
					  "XGROUP", "CREATE", d->streams[i],
					  d->group, "0", "MKSTREAM", NULL }) ==
		    0)
			d->groups_pending++;
	}
}
