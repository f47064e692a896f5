/* tests/unit/test_schedule.c - supervisor/schedule.c against a fake pool:
 * the dispatch pass (order, alone vs shared placement, the rule that keeps
 * the next idle child for a job waiting alone, cancelled and unknown jobs
 * ended at dispatch) and the read capacity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/job.c"
#include "supervisor/lanes.c"
#include "supervisor/log.c"
#include "supervisor/schedule.c"

/* ---- a fake pool: n children, each with a group and a count of jobs ---- */

#define SLOTS 4
static struct {
	int size, alive;
	bool breaker;
	int group[SLOTS], jobs[SLOTS];
} pool;

int bg_pool_size(const struct bg_pool *p)
{
	(void)p;
	return pool.size;
}

int bg_pool_alive_count(const struct bg_pool *p)
{
	(void)p;
	return pool.alive;
}

bool bg_pool_breaker_open(const struct bg_pool *p)
{
	(void)p;
	return pool.breaker;
}

/* Agent types whose handler cannot start (none here unless a test says). */
static bool type_down[4];

bool bg_pool_type_down(const struct bg_pool *p, int type, const char **why)
{
	(void)p;
	if (why)
		*why = "test";
	return type >= 0 && type < 4 && type_down[type];
}

int bg_pool_idle_count(const struct bg_pool *p)
{
	(void)p;
	int n = 0;
	for (int i = 0; i < pool.size; i++)
		n += pool.jobs[i] == 0;
	return n;
}

int bg_pool_shared_children(const struct bg_pool *p)
{
	(void)p;
	int n = 0;
	for (int i = 0; i < pool.size; i++)
		n += pool.jobs[i] > 0 && pool.group[i] >= 0;
	return n;
}

/* The sharing rule of pool.h: a shared job joins a child of its group with
 * room (or, unless only_busy, an idle one); an alone job takes an idle
 * child. */
static bool picked_only_busy[32];
static int n_picks;

int bg_pool_pick(const struct bg_pool *p, int group, int limit, bool only_busy)
{
	(void)p;
	picked_only_busy[n_picks++ % 32] = only_busy;
	if (group >= 0)
		for (int i = 0; i < pool.size; i++)
			if (pool.jobs[i] > 0 && pool.group[i] == group &&
			    pool.jobs[i] < limit)
				return i;
	if (group >= 0 && only_busy)
		return -1;
	for (int i = 0; i < pool.size; i++)
		if (pool.jobs[i] == 0)
			return i;
	return -1;
}

/* ---- the fleet limits (gate.c): nothing limits these types, unless a
 * test holds primers back ---- */

static bool gate_holds_primers;

bool bg_gate_try_start(struct bg_daemon *d, struct bg_job *t)
{
	(void)d;
	return !(gate_holds_primers && t->run.role == BG_ROLE_PRIMER);
}

void bg_gate_release(struct bg_daemon *d, struct bg_job *t)
{
	(void)d;
	t->run.gate_held = false;
}

/* ---- the ready set (ready.c): whether primers wait there ---- */

static bool ready_primers;

bool bg_ready_primers_waiting(const struct bg_daemon *d)
{
	(void)d;
	return ready_primers;
}

/* ---- the stages below the scheduler, recorded ---- */

static char started[32][16];
static int n_started, n_cancelled, n_failed;

void bg_attempt_start(struct bg_daemon *d, struct bg_job *t, int slot,
		      int limit, int group, struct bg_buf *payload)
{
	(void)d;
	(void)payload;
	pool.jobs[slot]++;
	pool.group[slot] = limit > 1 ? group : -1;
	bg_job_move(t, BG_JOB_RUNNING);
	snprintf(started[n_started++], sizeof(started[0]), "%s@%d",
		 t->id.entry_id, slot);
}

void bg_end_cancelled(struct bg_daemon *d, struct bg_job *t)
{
	(void)d;
	n_cancelled++;
	bg_job_move(t, BG_JOB_ENDING);
}

void bg_end(struct bg_daemon *d, struct bg_job *t, enum bg_end_kind kind,
	    const char *code, const char *why)
{
	(void)d;
	(void)why;
	assert_int_equal(kind, BG_END_FAILED);
	assert_string_equal(code, "UNKNOWN_AGENT_TYPE");
	n_failed++;
	bg_job_move(t, BG_JOB_FINISH_SENT);
}

/* ---- a daemon with two agent types: "solo" (a plugin) and "many" (a
 * persistent exec program with max_inflight 3) ---- */

static struct bg_agent_type_conf types[2];
static struct bg_config cfg;
static char *streams[] = { "ctrl:worker:w", "ctrl:agent_type:solo",
			   "ctrl:agent_type:many" };

static struct bg_daemon *daemon_new(int size)
{
	memset(&pool, 0, sizeof(pool));
	memset(type_down, 0, sizeof(type_down));
	pool.size = pool.alive = size;
	n_started = n_cancelled = n_failed = n_picks = 0;
	gate_holds_primers = false;
	ready_primers = false;
	types[0] = (struct bg_agent_type_conf){ .name = "solo",
						.handler = BG_HANDLER_PLUGIN };
	types[1] = (struct bg_agent_type_conf){ .name = "many",
						.handler = BG_HANDLER_EXEC,
						.mode = BG_EXEC_PERSISTENT,
						.max_inflight = 3 };
	cfg = (struct bg_config){ .agent_types = types,
				  .n_agent_types = 2,
				  .fetch_count = 1,
				  .sched_priority_aging_ms = 1000 };
	struct bg_daemon *d = test_calloc(1, sizeof(*d));
	d->cfg = &cfg;
	d->all.next = d->all.prev = &d->all;
	d->streams = streams;
	d->n_streams = 3;
	return d;
}

static void daemon_free(struct bg_daemon *d)
{
	bg_schedule_free(d);
	while (d->all.next != &d->all)
		bg_job_free(d, d->all.next);
	test_free(d);
}

static struct bg_job *queue(struct bg_daemon *d, const char *id,
			    const char *type)
{
	int stream = strcmp(type, "many") == 0 ? 2 : 1;
	struct bg_job *t = bg_job_new(d, stream, id);
	assert_non_null(t);
	t->id.handler_type = type;
	bg_job_enqueue(d, t);
	return t;
}

static void test_jobs_alone_are_placed_in_order(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(2);
	queue(d, "1-0", "solo");
	queue(d, "2-0", "solo");
	queue(d, "3-0", "solo");
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 2);
	assert_string_equal(started[0], "1-0@0");
	assert_string_equal(started[1], "2-0@1");
	assert_int_equal(d->n_queued, 1);
	assert_string_equal(d->q_head->id.entry_id, "3-0");
	pool.jobs[1] = 0; /* a child becomes idle */
	bg_schedule_dispatch(d);
	assert_string_equal(started[2], "3-0@1");
	assert_int_equal(d->n_queued, 0);
	daemon_free(d);
}

static void test_shared_jobs_fill_a_child_of_their_type(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(2);
	for (int i = 1; i <= 4; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%d-0", i);
		queue(d, id, "many");
	}
	bg_schedule_dispatch(d);
	/* three share child 0 (max_inflight), the fourth opens child 1 */
	assert_int_equal(n_started, 4);
	assert_string_equal(started[2], "3-0@0");
	assert_string_equal(started[3], "4-0@1");
	daemon_free(d);
}

/* Once a job that needs a child to itself waits, shared jobs behind it go
 * only next to jobs already running: the next idle child is kept for it. */
static void test_a_waiting_alone_job_keeps_the_next_idle_child(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(2);
	queue(d, "1-0", "many"); /* opens child 0 */
	queue(d, "2-0", "solo"); /* takes child 1 */
	queue(d, "3-0", "solo"); /* waits: no idle child */
	queue(d, "4-0", "many"); /* joins child 0 (busy) */
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 3);
	assert_string_equal(started[0], "1-0@0");
	assert_string_equal(started[1], "2-0@1");
	assert_string_equal(started[2], "4-0@0");
	/* picks: 1-0, 2-0, 3-0 (waits), then 4-0 only next to running jobs */
	assert_int_equal(n_picks, 4);
	assert_false(picked_only_busy[2]);
	assert_true(picked_only_busy[3]);
	pool.jobs[1] = 0;
	queue(d, "5-0", "many"); /* would take the idle child: must not */
	bg_schedule_dispatch(d);
	assert_string_equal(started[3], "3-0@1");
	assert_string_equal(started[4], "5-0@0");
	daemon_free(d);
}

static void test_cancelled_and_unknown_jobs_end_at_dispatch(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	pool.jobs[0] = 1; /* no idle child: they end anyway */
	struct bg_job *c = queue(d, "1-0", "solo");
	c->run.cancel_requested = true;
	queue(d, "2-0", "nobody");
	bg_schedule_dispatch(d);
	assert_int_equal(n_cancelled, 1);
	assert_int_equal(n_failed, 1);
	assert_int_equal(n_started, 0);
	assert_int_equal(d->n_queued, 0);
	daemon_free(d);
}

/* A job of an agent type whose handler cannot start waits in the queue
 * (for a child that loads it) instead of going to a child without it. */
static void test_a_job_of_an_unloadable_type_waits(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(2);
	type_down[0] = true; /* "solo" */
	queue(d, "1-0", "solo");
	queue(d, "2-0", "many");
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 1);
	assert_string_equal(started[0], "2-0@0");
	assert_int_equal(d->n_queued, 1);
	type_down[0] = false; /* a child loads it again */
	bg_schedule_dispatch(d);
	assert_string_equal(started[1], "1-0@1");
	daemon_free(d);
}

static void test_read_capacity(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(4);
	/* 4 children + prefetch 1; shared: 4 x 3 + 1 */
	struct bg_capacity c = bg_schedule_room(d);
	assert_int_equal(c.alone, 5);
	assert_int_equal(c.shared, 13);
	assert_int_equal(bg_schedule_capacity(d), 13);
	queue(d, "1-0", "solo");
	queue(d, "2-0", "many");
	c = bg_schedule_room(d);
	assert_int_equal(c.alone, 4); /* one alone job needs a child */
	assert_int_equal(c.shared, 13 - 1 - 3); /* and takes 3 shared places */
	/* a finishing job holds no child */
	bg_job_dequeue(d, NULL, d->q_head);
	bg_job_move(d->all.next, BG_JOB_FINISH_SENT);
	assert_int_equal(bg_schedule_room(d).alone, 5);
	/* nothing while suspects run, the breaker is open or no child lives */
	d->suspects_active = true;
	assert_int_equal(bg_schedule_capacity(d), 0);
	d->suspects_active = false;
	pool.breaker = true;
	assert_int_equal(bg_schedule_capacity(d), 0);
	pool.breaker = false;
	pool.alive = 0;
	assert_int_equal(bg_schedule_capacity(d), 0);
	daemon_free(d);
}

/* ---- lanes, priorities, caps (docs/scheduling.md) ---- */

static struct bg_job *queue_in(struct bg_daemon *d, const char *id,
			       const char *lane, int priority, bool resumes)
{
	struct bg_job *t = queue(d, id, "solo");
	snprintf(t->run.lane, sizeof(t->run.lane), "%s", lane);
	t->run.priority = priority;
	t->run.resumes = resumes;
	return t;
}

/* The children empty: the jobs they ran are gone. */
static void finish_running(struct bg_daemon *d)
{
	for (struct bg_job *t = d->all.next, *n; t != &d->all; t = n) {
		n = t->next;
		if (bg_job_in_child(t))
			bg_job_free(d, t);
	}
	memset(pool.jobs, 0, sizeof(pool.jobs));
}

static void test_competing_lanes_start_in_proportion_to_weight(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	cfg.sched_lanes_json = "{\"a\": {\"weight\": 2}}";
	char id[16];
	for (int i = 0; i < 12; i++) { /* all of a before any of b */
		snprintf(id, sizeof(id), "%d-0", i);
		queue_in(d, id, "a", 0, false);
	}
	for (int i = 12; i < 24; i++) {
		snprintf(id, sizeof(id), "%d-0", i);
		queue_in(d, id, "b", 0, false);
	}
	int a = 0, b = 0;
	for (int i = 0; i < 9; i++) {
		bg_schedule_dispatch(d);
		assert_int_equal(n_started, i + 1);
		if (atoi(started[i]) < 12)
			a++;
		else
			b++;
		finish_running(d);
	}
	assert_int_equal(a, 6);
	assert_int_equal(b, 3);
	cfg.sched_lanes_json = NULL;
	daemon_free(d);
}

static void test_an_idle_lane_does_not_bank_its_share(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	char id[16];
	for (int i = 0; i < 10; i++) { /* lane a alone for ten starts */
		snprintf(id, sizeof(id), "%d-0", i);
		queue_in(d, id, "a", 0, false);
		bg_schedule_dispatch(d);
		finish_running(d);
	}
	for (int i = 10; i < 20; i++) {
		snprintf(id, sizeof(id), "%d-0", i);
		queue_in(d, id, i % 2 ? "a" : "b", 0, false);
	}
	int b = 0; /* b comes back: it alternates with a, not ten in a row */
	for (int i = 10; i < 14; i++) {
		bg_schedule_dispatch(d);
		b += atoi(started[i]) % 2 == 0;
		finish_running(d);
	}
	assert_int_equal(b, 2);
	daemon_free(d);
}

static void
test_priority_then_age_order_a_lane_and_resumes_go_first(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	queue_in(d, "1-0", "", 0, false);
	queue_in(d, "2-0", "", 0, false);
	queue_in(d, "3-0", "", 9, false);
	queue_in(d, "4-0", "", 0, true); /* a RESUME */
	struct bg_job *old = queue_in(d, "5-0", "", 3, false);
	old->run.queued_ms -= 7000; /* waited 7 s: 3 + 7 > 9 */
	const char *order[] = { "4-0@0", "5-0@0", "3-0@0", "1-0@0", "2-0@0" };
	for (int i = 0; i < 5; i++) {
		bg_schedule_dispatch(d);
		assert_int_equal(n_started, i + 1);
		assert_string_equal(started[i], order[i]);
		finish_running(d);
	}
	daemon_free(d);
}

static void test_agent_type_and_lane_caps_hold_on_this_worker(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(4);
	types[0].max_running = 3;
	cfg.sched_lanes_json = "{\"x\": {\"max_running\": 1}}";
	queue_in(d, "1-0", "x", 0, false);
	queue_in(d, "2-0", "x", 0, false);
	queue_in(d, "3-0", "y", 0, false);
	queue_in(d, "4-0", "y", 0, false);
	queue_in(d, "5-0", "y", 0, false);
	bg_schedule_dispatch(d);
	/* lane x: one; the type: three in all */
	assert_int_equal(n_started, 3);
	assert_int_equal(d->n_queued, 2);
	int x = 0;
	for (int i = 0; i < n_started; i++)
		x += atoi(started[i]) <= 2;
	assert_int_equal(x, 1);
	types[0].max_running = 0;
	cfg.sched_lanes_json = NULL;
	daemon_free(d);
}

/* ---- primers and followers (docs/scheduling.md) ---- */

static struct bg_job *queue_role(struct bg_daemon *d, const char *id,
				 enum bg_task_role role)
{
	struct bg_job *t = queue(d, id, "solo");
	t->run.role = role;
	return t;
}

/* A primer picked up (its record being claimed), not yet queued. */
static struct bg_job *pick_up_primer(struct bg_daemon *d, const char *id)
{
	struct bg_job *t = bg_job_new(d, 1, id);
	assert_non_null(t);
	t->id.handler_type = "solo";
	t->run.role = BG_ROLE_PRIMER;
	return t;
}

static int started_followers(void)
{
	int n = 0;
	for (int i = 0; i < n_started; i++)
		n += started[i][0] == 'f';
	return n;
}

static void test_the_primers_places_follow_the_share(void **state)
{
	(void)state;
	const struct {
		int size, share, places;
	} cases[] = {
		{ 4, 25, 1 },  { 8, 25, 2 }, { 10, 25, 3 }, /* rounded */
		{ 2, 10, 1 },				    /* at least one */
		{ 4, 100, 3 }, /* one for the rest */
		{ 1, 25, 0 },  /* one child: none */
		{ 8, 0, 0 },   /* off */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bg_daemon *d = daemon_new(cases[i].size);
		cfg.sched_primer_share = cases[i].share;
		assert_int_equal(bg_schedule_primer_places(d), cases[i].places);
		daemon_free(d);
	}
}

static void test_with_the_share_off_primers_wait_their_turn(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	cfg.sched_primer_share = 0;
	queue_role(d, "f1-0", BG_ROLE_FOLLOWER);
	queue_role(d, "f2-0", BG_ROLE_FOLLOWER);
	queue_role(d, "p3-0", BG_ROLE_PRIMER);
	const char *order[] = { "f1-0@0", "f2-0@0", "p3-0@0" };
	for (int i = 0; i < 3; i++) {
		bg_schedule_dispatch(d);
		assert_string_equal(started[i], order[i]);
		finish_running(d);
	}
	daemon_free(d);
}

/* Before every other job, whatever their lanes' passes, priorities or
 * RESUMEs: a primer starts with the next free child. */
static void test_a_primer_goes_before_every_lane_and_priority(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(1);
	cfg.sched_primer_share = 25;
	queue_in(d, "f1-0", "a", 9, false)->run.role = BG_ROLE_FOLLOWER;
	queue_in(d, "o2-0", "a", 0, true); /* a RESUME */
	queue_in(d, "p3-0", "c", -5, false)->run.role = BG_ROLE_PRIMER;
	queue_in(d, "p4-0", "c", 0, false)->run.role = BG_ROLE_PRIMER;
	const char *order[] = { "p4-0@0", "p3-0@0", "o2-0@0", "f1-0@0" };
	for (int i = 0; i < 4; i++) {
		bg_schedule_dispatch(d);
		assert_string_equal(started[i], order[i]);
		finish_running(d);
	}
	daemon_free(d);
}

static void test_followers_use_every_child_while_no_primer_waits(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(4);
	cfg.sched_primer_share = 25;
	char id[16];
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "f%d-0", i);
		queue_role(d, id, BG_ROLE_FOLLOWER);
	}
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 4);
	daemon_free(d);
}

/* A primer on its way (its pickup in flight) holds its place: followers
 * take the other idle children, never the last one, and the primer
 * takes it once queued. Ordinary jobs are not held. */
static void
test_followers_leave_the_primers_place_to_a_waiting_primer(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(4);
	cfg.sched_primer_share = 25;	 /* one place */
	pool.jobs[0] = pool.jobs[1] = 1; /* two children busy elsewhere */
	struct bg_job *p = pick_up_primer(d, "p0-0");
	char id[16];
	for (int i = 1; i <= 3; i++) {
		snprintf(id, sizeof(id), "f%d-0", i);
		queue_role(d, id, BG_ROLE_FOLLOWER);
	}
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 1); /* one of the two idle children */
	assert_string_equal(started[0], "f1-0@2");
	bg_job_enqueue(d, p); /* its record is claimed: queued */
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 2);
	assert_string_equal(started[1], "p0-0@3");
	/* the primer runs in the primers' place: followers take the next */
	pool.jobs[0] = 0;
	bg_schedule_dispatch(d);
	assert_string_equal(started[2], "f2-0@0");
	/* an ordinary job is never held */
	finish_running(d);
	pool.jobs[0] = pool.jobs[1] = pool.jobs[2] = 1;
	pick_up_primer(d, "p9-0");
	queue_role(d, "o5-0", BG_ROLE_NONE);
	bg_schedule_dispatch(d);
	assert_string_equal(started[3], "o5-0@3");
	daemon_free(d);
}

/* A queued primer that cannot start in this pass (a fleet limit asked
 * for) keeps its place idle for the next pass; the share is off: it
 * does not. */
static void test_a_primer_held_at_the_gate_keeps_its_place(void **state)
{
	(void)state;
	for (int share = 25; share >= 0; share -= 25) {
		struct bg_daemon *d = daemon_new(2);
		cfg.sched_primer_share = share;
		gate_holds_primers = true;
		queue_role(d, "p0-0", BG_ROLE_PRIMER);
		queue_role(d, "f1-0", BG_ROLE_FOLLOWER);
		queue_role(d, "f2-0", BG_ROLE_FOLLOWER);
		bg_schedule_dispatch(d);
		assert_int_equal(started_followers(), share ? 1 : 2);
		gate_holds_primers = false; /* the gate's answer came */
		bg_schedule_dispatch(d);
		assert_int_equal(n_started, 2);
		if (share)
			assert_string_equal(started[1], "p0-0@1");
		daemon_free(d);
	}
}

/* Primers parked in the ready set (by this worker, or left by its last
 * pick) hold the followers too: the next pick brings them first. */
static void test_primers_in_the_ready_set_keep_their_place(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(2);
	cfg.sched_primer_share = 25;
	ready_primers = true;
	queue_role(d, "f1-0", BG_ROLE_FOLLOWER);
	queue_role(d, "f2-0", BG_ROLE_FOLLOWER);
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 1);
	ready_primers = false; /* the pick found none left */
	bg_schedule_dispatch(d);
	assert_int_equal(n_started, 2);
	daemon_free(d);
}

static void test_a_reader_keeps_as_many_primers_as_it_has_places(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new(8);
	cfg.sched_primer_share = 25; /* two places */
	struct bg_job *a = pick_up_primer(d, "p1-0");
	assert_true(bg_schedule_keeps_primer(d, a));
	struct bg_job *b = pick_up_primer(d, "p2-0");
	assert_true(bg_schedule_keeps_primer(d, b));
	struct bg_job *c = pick_up_primer(d, "p3-0"); /* one too many */
	assert_false(bg_schedule_keeps_primer(d, c));
	c->run.role = BG_ROLE_FOLLOWER;
	assert_false(bg_schedule_keeps_primer(d, c));
	cfg.sched_primer_share = 0;
	assert_false(bg_schedule_keeps_primer(d, a));
	daemon_free(d);
	d = daemon_new(1); /* one child: still one primer kept */
	cfg.sched_primer_share = 25;
	assert_true(bg_schedule_keeps_primer(d, pick_up_primer(d, "p1-0")));
	daemon_free(d);
}

static void test_the_role_is_the_metadata_bygate_role(void **state)
{
	(void)state;
	const struct {
		const char *action, *metadata;
		enum bg_task_role role;
	} cases[] = {
		{ "ASK_AGENT",
		  "{\"bygate_role\": \"primer\", \"bygate_group\": \"g1\"}",
		  BG_ROLE_PRIMER },
		{ "ASK_AGENT",
		  "{\"bygate_group\": \"g1\", \"bygate_role\": \"follower\"}",
		  BG_ROLE_FOLLOWER },
		{ "ASK_AGENT", "{\"bygate_role\": \"Primer\"}", BG_ROLE_NONE },
		{ "ASK_AGENT", "{\"bygate_role\": 1}", BG_ROLE_NONE },
		{ "ASK_AGENT", "{\"lane\": \"primer\"}", BG_ROLE_NONE },
		{ "ASK_AGENT", "{}", BG_ROLE_NONE },
		/* a callback: its callee's metadata, the caller's work */
		{ "RESUME", "{\"bygate_role\": \"primer\"}", BG_ROLE_NONE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char data[1024];
		snprintf(
			data, sizeof(data),
			"{\"action_type\": \"%s\", \"header\": "
			"{\"message_id\": \"msg-1\", \"session_id\": \"s1\", "
			"\"trace_id\": \"t1\", \"source_agent_type\": \"\", "
			"\"target_agent_type\": \"solo\", "
			"\"parent_message_id\": \"\", \"task_group_id\": \"\", "
			"\"user_code\": \"u\", \"user_name\": \"u\", "
			"\"metadata\": %s, \"trace_parent_span_id\": \"\", "
			"\"langfuse_parent_observation_id\": \"\"}, "
			"\"body\": {\"content\": \"x\", %s}}",
			cases[i].action, cases[i].metadata,
			strcmp(cases[i].action, "RESUME") == 0
				? "\"status\": \"COMPLETED\", \"reply_data\": null"
				: "\"wait_for_reply\": false");
		struct bg_cmd c;
		assert_int_equal(bg_cmd_scan(data, strlen(data), &c), 0);
		assert_int_equal(bg_lane_role(&c), cases[i].role);
		bg_cmd_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_alone_are_placed_in_order),
		cmocka_unit_test(test_shared_jobs_fill_a_child_of_their_type),
		cmocka_unit_test(
			test_a_waiting_alone_job_keeps_the_next_idle_child),
		cmocka_unit_test(
			test_cancelled_and_unknown_jobs_end_at_dispatch),
		cmocka_unit_test(test_a_job_of_an_unloadable_type_waits),
		cmocka_unit_test(test_read_capacity),
		cmocka_unit_test(
			test_competing_lanes_start_in_proportion_to_weight),
		cmocka_unit_test(test_an_idle_lane_does_not_bank_its_share),
		cmocka_unit_test(
			test_priority_then_age_order_a_lane_and_resumes_go_first),
		cmocka_unit_test(
			test_agent_type_and_lane_caps_hold_on_this_worker),
		cmocka_unit_test(test_the_primers_places_follow_the_share),
		cmocka_unit_test(
			test_with_the_share_off_primers_wait_their_turn),
		cmocka_unit_test(
			test_a_primer_goes_before_every_lane_and_priority),
		cmocka_unit_test(
			test_followers_use_every_child_while_no_primer_waits),
		cmocka_unit_test(
			test_followers_leave_the_primers_place_to_a_waiting_primer),
		cmocka_unit_test(
			test_a_primer_held_at_the_gate_keeps_its_place),
		cmocka_unit_test(
			test_primers_in_the_ready_set_keep_their_place),
		cmocka_unit_test(
			test_a_reader_keeps_as_many_primers_as_it_has_places),
		cmocka_unit_test(test_the_role_is_the_metadata_bygate_role),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
