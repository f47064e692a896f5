/* child/proc.c - the bygate-child process itself, the lowest layer of
 * child/: its one struct bg_child_proc, its scoreboard, its stderr lines,
 * its death (bg_child_die) and its SIGTERM handler. It calls nothing above
 * it: what dying must release is reached through c->ops (main.c). */
#include "child/child.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Static so that everything it owns stays reachable until exit. */
static struct bg_child_proc g_child = { .slot = -1 };
volatile sig_atomic_t bg_child_task_process_running;

struct bg_child_proc *bg_child_self(void)
{
	return &g_child;
}

void bg_child_warn(struct bg_child_proc *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bygate-child[slot %ld pid %ld]: %s\n", c->slot,
		(long)getpid(), msg);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t bg_child_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bg_child_score(struct bg_child_proc *c, enum bg_score_state st,
		    uint64_t tag)
{
	struct bg_scoreboard *s = c->seg.hdr ? &c->seg.hdr->score : NULL;
	if (s == NULL)
		return;
	__atomic_store_n(&s->current_tag, tag, __ATOMIC_RELAXED);
	__atomic_store_n(&s->busy_since_ms, st == BG_SCORE_BUSY ? now_ms() : 0,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, (uint32_t)st, __ATOMIC_RELEASE);
}

_Noreturn void bg_child_die(struct bg_child_proc *c, int code, const char *fmt,
			    ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code != 0)
		bg_child_warn(c, "%s", msg);
	bg_child_score(c, BG_SCORE_EXITING, 0);
	if (c->ops)
		c->ops->release(c, code == 0);
	bg_segment_close(&c->seg);
	exit(code);
}

/* As the init of its PID namespace the child would ignore SIGTERM (the
 * kernel delivers only signals init handles): the kill ladder of a timeout
 * or cancel (SIGTERM to the process group, SIGKILL 2 s later) ends a task
 * the child runs itself at the first step, as it ends any process, and
 * bygated reads "killed by signal 15" from the scoreboard. */
static void on_sigterm(int sig)
{
	struct bg_seg_hdr *h = g_child.seg.hdr;
	/* A task process got the same SIGTERM: its end, or its deafness and
	 * the SIGKILL that follows, decides (taskproc.c). */
	if (bg_child_task_process_running)
		return;
	if (h) {
		__atomic_store_n(&h->score.task_status, (uint32_t)sig,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&h->score.task_status_set, 1,
				 __ATOMIC_RELEASE);
	}
	_exit(BG_CHILD_EXIT_TASK_DIED);
}

void bg_child_catch_sigterm(void)
{
	signal(SIGTERM, on_sigterm);
}
