/* tests/unit/test_job.c - the job state table of supervisor/job.c driven
 * move by move (every allowed move, every refused one, and a refused move
 * aborting bygated), the counts bg_job_move keeps, the ready queue and the
 * list of held entries. The expected table is written out here on its own,
 * from docs/architecture.md, so a change to job.c's table fails a test. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/job.c"
#include "supervisor/log.c"

/* The fleet limits (gate.c) are not under test here. */
void bg_gate_release(struct bg_daemon *d, struct bg_job *t)
{
	(void)d;
	t->run.gate_held = false;
}

#define N BG_JOB__COUNT

/* The moves of docs/architecture.md, "A job's states". */
static const struct {
	enum bg_job_state from, to;
} moves[] = {
	{ BG_JOB_PICKUP, BG_JOB_PICKUP_LOST },
	{ BG_JOB_PICKUP, BG_JOB_QUEUED },
	{ BG_JOB_PICKUP, BG_JOB_ENDING },
	{ BG_JOB_PICKUP_LOST, BG_JOB_PICKUP },
	{ BG_JOB_QUEUED, BG_JOB_RUNNING },
	{ BG_JOB_QUEUED, BG_JOB_ENDING },
	{ BG_JOB_BACKOFF, BG_JOB_QUEUED },
	{ BG_JOB_RUNNING, BG_JOB_KILLING },
	{ BG_JOB_RUNNING, BG_JOB_QUEUED },
	{ BG_JOB_RUNNING, BG_JOB_BACKOFF },
	{ BG_JOB_RUNNING, BG_JOB_ENDING },
	{ BG_JOB_KILLING, BG_JOB_BACKOFF },
	{ BG_JOB_KILLING, BG_JOB_ENDING },
	{ BG_JOB_FINISH_HELD, BG_JOB_FINISH_SENT },
	{ BG_JOB_FINISH_HELD, BG_JOB_FINISH_UNKNOWN },
	{ BG_JOB_FINISH_SENT, BG_JOB_FINISH_HELD },
	{ BG_JOB_FINISH_SENT, BG_JOB_FINISH_BACKOFF },
	{ BG_JOB_FINISH_SENT, BG_JOB_FINISH_UNKNOWN },
	{ BG_JOB_FINISH_BACKOFF, BG_JOB_FINISH_HELD },
	{ BG_JOB_FINISH_BACKOFF, BG_JOB_FINISH_SENT },
	{ BG_JOB_FINISH_BACKOFF, BG_JOB_FINISH_UNKNOWN },
	{ BG_JOB_FINISH_UNKNOWN, BG_JOB_FINISH_SENT },
	/* a blob found corrupt when sent (cannot happen: built or checked) */
	{ BG_JOB_FINISH_HELD, BG_JOB_ABANDONED },
	{ BG_JOB_FINISH_SENT, BG_JOB_ABANDONED },
	{ BG_JOB_FINISH_BACKOFF, BG_JOB_ABANDONED },
};

/* An end (end.c, finish.c) may come from these states, into the first
 * states of the finish. */
static const enum bg_job_state ends_from[] = { BG_JOB_PICKUP, BG_JOB_QUEUED,
					       BG_JOB_RUNNING, BG_JOB_KILLING,
					       BG_JOB_ENDING };
static const enum bg_job_state finish_first[] = { BG_JOB_FINISH_HELD,
						  BG_JOB_FINISH_SENT,
						  BG_JOB_FINISH_UNKNOWN,
						  BG_JOB_ABANDONED };

static void expected(bool ok[N][N])
{
	memset(ok, 0, sizeof(bool) * N * N);
	for (int s = 0; s < N; s++)
		ok[s][s] = true;
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++)
		ok[moves[i].from][moves[i].to] = true;
	for (size_t i = 0; i < sizeof(ends_from) / sizeof(ends_from[0]); i++)
		for (size_t j = 0;
		     j < sizeof(finish_first) / sizeof(finish_first[0]); j++)
			ok[ends_from[i]][finish_first[j]] = true;
}

static void test_every_move_of_the_table(void **state)
{
	(void)state;
	bool ok[N][N];
	expected(ok);
	int n_allowed = 0;
	for (int from = 0; from < N; from++)
		for (int to = 0; to < N; to++) {
			bool got = bg_job_may_move(from, to);
			if (got != ok[from][to])
				fail_msg("%s -> %s: table says %s",
					 bg_job_state_name(from),
					 bg_job_state_name(to),
					 got ? "allowed" : "refused");
			n_allowed += got && from != to;
		}
	assert_int_equal(n_allowed, 25 + 5 * 4);
	/* out of range */
	assert_false(bg_job_may_move(N, BG_JOB_PICKUP));
	assert_false(bg_job_may_move(BG_JOB_PICKUP, N));
	/* nothing leaves ABANDONED; nothing goes back to a run from a finish */
	for (int to = 0; to < N; to++) {
		if (to != BG_JOB_ABANDONED)
			assert_false(bg_job_may_move(BG_JOB_ABANDONED, to));
		if (to < BG_JOB_FINISH_HELD)
			assert_false(bg_job_may_move(BG_JOB_FINISH_SENT, to));
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < N; s++)
		assert_string_not_equal(bg_job_state_name(s), "?");
	assert_string_equal(bg_job_state_name(BG_JOB_KILLING), "KILLING");
	assert_string_equal(bg_job_state_name(N), "?");
}

/* A daemon with just what job.c touches. */
static struct bg_daemon *daemon_new(void)
{
	static char *streams[] = { "ctrl:worker:w1", "ctrl:agent_type:echo" };
	struct bg_daemon *d = test_calloc(1, sizeof(*d));
	d->all.next = d->all.prev = &d->all;
	d->streams = streams;
	d->n_streams = 2;
	return d;
}

static void test_moves_keep_the_counts(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new();
	struct bg_job *a = bg_job_new(d, 1, "1-0");
	struct bg_job *b = bg_job_new(d, 1, "2-0");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->state, BG_JOB_PICKUP);
	assert_int_equal(d->n_tasks, 2);
	/* the same entry is held once (a read and a reconcile both bring it) */
	assert_null(bg_job_new(d, 1, "1-0"));
	assert_non_null(bg_job_find(d, b->tag));
	assert_true(bg_job_holds(d, "ctrl:agent_type:echo", "2-0"));
	assert_false(bg_job_holds(d, "ctrl:worker:w1", "2-0"));

	bg_job_enqueue(d, a);
	bg_job_move(a, BG_JOB_RUNNING);
	assert_true(bg_job_in_child(a));
	bg_job_move(a, BG_JOB_KILLING);
	assert_true(bg_job_in_child(a));
	assert_false(bg_job_finishing(a));
	bg_job_move(a, BG_JOB_FINISH_SENT);
	assert_int_equal(d->n_finishing, 1);
	bg_job_move(a, BG_JOB_FINISH_UNKNOWN);
	bg_job_move(a, BG_JOB_FINISH_SENT);
	assert_int_equal(d->n_finishing, 1);
	bg_job_move(b, BG_JOB_ABANDONED);
	assert_int_equal(d->n_finishing, 2);
	bg_job_free(d, a);
	bg_job_free(d, b);
	assert_int_equal(d->n_finishing, 0);
	assert_int_equal(d->n_tasks, 0);
	assert_ptr_equal(d->all.next, &d->all);
	test_free(d);
}

static int freed;
static void on_freed(struct bg_daemon *d, const struct bg_job *t)
{
	(void)d;
	(void)t;
	freed++;
}

static void test_ready_queue_order(void **state)
{
	(void)state;
	struct bg_daemon *d = daemon_new();
	d->hooks.job_freed = on_freed;
	struct bg_job *j[3];
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%d-0", i + 1);
		j[i] = bg_job_new(d, 1, id);
	}
	bg_job_enqueue(d, j[0]);
	bg_job_enqueue(d, j[1]);
	bg_job_enqueue_front(d, j[2]); /* an interrupted job keeps its place */
	assert_int_equal(d->n_queued, 3);
	assert_ptr_equal(d->q_head, j[2]);
	assert_ptr_equal(d->q_head->qnext, j[0]);
	assert_ptr_equal(d->q_tail, j[1]);
	bg_job_dequeue(d, j[0], j[1]); /* the tail */
	assert_ptr_equal(d->q_tail, j[0]);
	bg_job_dequeue(d, NULL, j[2]); /* the head */
	assert_ptr_equal(d->q_head, j[0]);
	bg_job_dequeue(d, NULL, j[0]);
	assert_null(d->q_head);
	assert_null(d->q_tail);
	assert_int_equal(d->n_queued, 0);
	for (int i = 0; i < 3; i++)
		bg_job_free(d, j[i]);
	assert_int_equal(freed, 3);
	test_free(d);
}

/* A refused move is a bug of bygated: it says so and aborts. */
static void test_refused_move_aborts(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bg_log_open(BG_LOG_ERROR, BG_LOG_TEXT, "/dev/null");
		struct bg_daemon d = { 0 };
		d.all.next = d.all.prev = &d.all;
		struct bg_job t = { .d = &d,
				    .state = BG_JOB_FINISH_SENT,
				    .id = { .entry_id = "1-0" },
				    .run = { .slot = -1 } };
		bg_job_move(&t, BG_JOB_RUNNING); /* a finish never runs again */
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_move_of_the_table),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_moves_keep_the_counts),
		cmocka_unit_test(test_ready_queue_order),
		cmocka_unit_test(test_refused_move_aborts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
