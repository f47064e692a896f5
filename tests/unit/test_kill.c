/* tests/unit/test_kill.c - supervisor/kill.c, the one kill ladder of a
 * timeout and a cancel, step by step against a pool that records what it
 * is asked: the cancel line, SIGTERM, SIGKILL, alone and in a shared
 * child, force, and a second start that must not restart the ladder. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/job.c"
#include "supervisor/kill.c"
#include "supervisor/log.c"

/* The fleet limits (gate.c) are not under test here. */
void bg_gate_release(struct bg_daemon *d, struct bg_job *t)
{
	(void)d;
	t->run.gate_held = false;
}

static char steps[8][48];
static int n_steps;

void bg_pool_signal(struct bg_pool *p, int slot, int sig, const char *reason)
{
	(void)p;
	snprintf(steps[n_steps++ % 8], sizeof(steps[0]), "%s %d %s",
		 sig == SIGKILL	  ? "KILL"
		 : sig == SIGTERM ? "TERM"
				  : "?",
		 slot, reason);
}

int bg_pool_cancel(struct bg_pool *p, int slot, uint64_t tag,
		   const char *reason, const char *mode)
{
	(void)p;
	(void)tag;
	snprintf(steps[n_steps++ % 8], sizeof(steps[0]), "LINE %d %s %s", slot,
		 reason, mode);
	return 0;
}

static struct bg_agent_type_conf types[1] = { { .name = "t",
						.timeout_ms = 50 } };
static struct bg_config cfg = { .agent_types = types,
				.n_agent_types = 1,
				.cancel_grace_ms = 100 };
static char *streams[] = { "ctrl:worker:w", "ctrl:agent_type:t" };

struct fixture {
	struct bg_daemon d;
	struct bg_job *t;
};

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));
	f->d.cfg = &cfg;
	f->d.base = event_base_new();
	f->d.all.next = f->d.all.prev = &f->d.all;
	f->d.streams = streams;
	f->d.n_streams = 2;
	f->t = bg_job_new(&f->d, 1, "1-0");
	f->t->id.handler_type = "t";
	bg_job_enqueue(&f->d, f->t);
	bg_job_dequeue(&f->d, NULL, f->t);
	bg_job_move(f->t, BG_JOB_RUNNING);
	f->t->run.slot = 2;
	n_steps = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bg_job_free(&f->d, f->t);
	event_base_free(f->d.base);
	test_free(f);
	return 0;
}

/* The grace runs out. */
static void grace_over(struct bg_job *t)
{
	on_step_due(-1, 0, t);
}

static void test_timeout_alone_terms_then_kills(void **state)
{
	struct fixture *f = *state;
	bg_kill_start(&f->d, f->t, BG_KILL_TIMEOUT);
	assert_int_equal(f->t->state, BG_JOB_KILLING);
	assert_true(f->t->run.timed_out);
	assert_true(f->t->run.signalled);
	assert_int_equal(n_steps, 1);
	assert_string_equal(steps[0], "TERM 2 timed out");
	grace_over(f->t);
	assert_int_equal(n_steps, 2);
	assert_string_equal(steps[1], "KILL 2 timed out");
}

static void test_timeout_shared_sends_the_line_then_kills(void **state)
{
	struct fixture *f = *state;
	f->t->run.shared = true;
	bg_kill_start(&f->d, f->t, BG_KILL_TIMEOUT);
	assert_string_equal(steps[0], "LINE 2 timeout timeout");
	assert_false(f->t->run.signalled); /* a line is not a signal */
	grace_over(f->t);
	assert_string_equal(steps[1], "KILL 2 timed out");
	assert_int_equal(n_steps, 2);
}

static void test_cancel_alone_line_term_kill(void **state)
{
	struct fixture *f = *state;
	f->t->run.cancel_reason = strdup("user");
	bg_kill_start(&f->d, f->t, BG_KILL_CANCEL);
	assert_false(f->t->run.timed_out);
	assert_string_equal(steps[0], "LINE 2 user graceful");
	grace_over(f->t);
	assert_string_equal(steps[1], "TERM 2 cancelled");
	grace_over(f->t);
	assert_string_equal(steps[2], "KILL 2 cancelled");
	assert_int_equal(n_steps, 3);
}

static void test_cancel_shared_has_no_term_step(void **state)
{
	struct fixture *f = *state;
	f->t->run.shared = true;
	f->t->run.cancel_reason = strdup("user");
	bg_kill_start(&f->d, f->t, BG_KILL_CANCEL);
	grace_over(f->t);
	assert_string_equal(steps[1], "KILL 2 cancelled");
	assert_int_equal(n_steps, 2);
}

/* One ladder: a timeout during a cancel's ladder marks it timed out and
 * sends nothing; force kills at once. */
static void test_one_ladder_and_force(void **state)
{
	struct fixture *f = *state;
	f->t->run.cancel_reason = strdup("user");
	bg_kill_start(&f->d, f->t, BG_KILL_CANCEL);
	bg_kill_start(&f->d, f->t, BG_KILL_TIMEOUT);
	assert_true(f->t->run.timed_out);
	assert_int_equal(n_steps, 1);
	bg_kill_start(&f->d, f->t, BG_KILL_FORCE);
	assert_int_equal(n_steps, 2);
	assert_string_equal(steps[1], "KILL 2 cancelled (force)");
	grace_over(f->t);	      /* (its timer was deleted; run by hand) */
	assert_int_equal(n_steps, 3); /* past KILL there is only KILL */
}

/* Not in a child, or disarmed: nothing is sent. */
static void test_nothing_outside_a_child(void **state)
{
	struct fixture *f = *state;
	bg_kill_start(&f->d, f->t, BG_KILL_CANCEL);
	bg_kill_disarm(f->t);
	bg_job_move(f->t, BG_JOB_ENDING);
	grace_over(f->t);
	bg_kill_start(&f->d, f->t, BG_KILL_FORCE);
	assert_int_equal(n_steps, 1);
	f->t->run.slot = -1;
}

static void test_deadline_is_armed_from_the_agent_type(void **state)
{
	struct fixture *f = *state;
	bg_kill_arm_deadline(&f->d, f->t);
	assert_non_null(f->t->run.deadline_ev);
	assert_true(evtimer_pending(f->t->run.deadline_ev, NULL));
	/* the loop runs the deadline: the ladder starts */
	event_base_dispatch(f->d.base);
	assert_true(f->t->run.timed_out);
	assert_string_equal(steps[0], "TERM 2 timed out");
	bg_kill_disarm(f->t);
	assert_false(evtimer_pending(f->t->run.deadline_ev, NULL));
}

int main(void)
{
	bg_log_open(BG_LOG_ERROR, BG_LOG_TEXT, "/dev/null");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_timeout_alone_terms_then_kills, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_timeout_shared_sends_the_line_then_kills, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_cancel_alone_line_term_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cancel_shared_has_no_term_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_ladder_and_force,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_outside_a_child,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_deadline_is_armed_from_the_agent_type, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
