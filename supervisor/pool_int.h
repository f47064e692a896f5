/* supervisor/pool_int.h - the pool's private header: struct bg_pool and
 * struct bg_slot (one slot of the pool and the bygate-child in it), shared
 * by the pool's files and by nothing else (the rest of bygated sees
 * pool.h). The files, lowest first; each calls only files listed before
 * it, so the calls between them have no circle:
 *
 *   pool_config.c     the CONFIG record the children are given
 *   pool_output.c     a child's stdout/stderr into the log
 *   pool_slot.c       a slot's resources, kill and the down ring
 *   pool_read.c       the up ring: read and validate what a child sends
 *   pool_lifecycle.c  spawn, reap, respawn with back-off, breaker, recycle,
 *                     and the spare child that tries a down type again
 *   pool.c            pool.h's API: create, place tasks, messages to them
 *   pool_probe.c      bygated -t: one child loads one agent type
 *
 * A lower file reports upward through struct bg_pool_ops only. */
#ifndef BG_SUPERVISOR_POOL_INT_H
#define BG_SUPERVISOR_POOL_INT_H

#include "supervisor/pool.h"

#include <fcntl.h>
#include <time.h>

#include "common/buf.h"
#include "ipc/record.h"
#include "ipc/segment.h"

/* A child's stdout/stderr (one pipe): lines of at most OUT_LINE_MAX bytes
 * (the rest of a longer line is counted, not logged); pool_output.c. */
#define OUT_LINE_MAX 2048

struct child_output {
	int fd; /* read end, O_NONBLOCK | O_CLOEXEC; -1 = none */
	struct event *ev;
	char line[OUT_LINE_MAX];
	size_t len;   /* bytes in line */
	uint64_t cut; /* bytes of the current line beyond OUT_LINE_MAX */
	int64_t win_start_ms;
	uint64_t win_bytes;
	uint64_t dropped; /* bytes dropped in this window */
};

enum slot_state {
	SLOT_EMPTY,    /* no process; respawn pending */
	SLOT_STARTING, /* spawned, waiting for HELLO */
	SLOT_IDLE,     /* ready, no task */
	SLOT_BUSY,     /* ready, n_tags > 0 tasks in flight */
	SLOT_STOPPING, /* STOP sent or killed; waiting for exit */
};

/* One queued outgoing message (owned copy). */
struct out_msg {
	struct out_msg *next;
	struct bg_msg_out m;
	uint8_t data[];
};

/* One place of the pool and the bygate-child process that fills it (none
 * while SLOT_EMPTY): its segment, doorbells, output pipe, the messages
 * queued for it and the tasks it runs. Not child/child.h's struct bg_child,
 * which is the child's own view of itself. */
struct bg_slot {
	struct bg_pool *pool;
	int slot;
	pid_t pid;
	uint32_t generation;
	enum slot_state state;
	struct bg_segment seg;
	int wake_child_fd; /* we ring it: fd 4 in the child */
	int wake_sup_fd;   /* it rings us: fd 5 in the child */
	struct event *ev_wake;
	struct out_msg *out_head, *out_tail;
	struct bg_msg_in in;
	struct child_output out;
	uint64_t tags[BG_POOL_MAX_INFLIGHT]; /* tasks in flight, n_tags of them */
	int n_tags;
	int group; /* what they share (bg_pool_run), -1 = exclusive */
	uint64_t tasks_done;
	uint64_t recycle_after;
	bool ring_pending; /* doorbell to ring at end of turn */
	bool recycling;
	bool broken;		 /* broke the protocol: nothing more is read */
	bool exited;		 /* reaped: its last records are being read */
	const char *kill_reason; /* set when we killed it */
	int64_t started_ms;
	int quick_deaths;
	int64_t respawn_at_ms;
	bool partial; /* its CONFIG left agent types out (type_left_out) */
};

struct bg_pool {
	struct event_base *base;
	const struct bg_config *cfg;
	char *child_path;
	struct bg_spawner *spawner;
	struct bg_pool_ops ops;
	void *arg;
	struct bg_slot *c;
	int n;
	uint32_t generation;
	bool shutting_down;
	struct bg_buf config_payload;
	struct event *ev_sigchld;
	struct event *ev_sweep;
	struct bg_pool_stats stats;
	/* crash-storm breaker: times of the last crash_storm_deaths deaths */
	int64_t *deaths;
	int deaths_cap;
	int n_deaths, death_pos;
	int64_t breaker_until_ms;
	char gen_failure[512]; /* why the current generation cannot load */
	uint32_t gen_failed;   /* generation of that failure */
	/* per agent type of cfg (n_types of them): */
	int n_types;
	bool *type_left_out;	/* not in the CONFIG children are given */
	char **type_failure;	/* its FATAL text while down, else NULL */
	int *type_tries;	/* tries in a spare child since a pool child
				   last loaded it: the back-off */
	int64_t *type_retry_at; /* its next try, not before (monotonic ms) */
	bool breaker_was_open;	/* last seen by the sweep */
	bool config_partial;	/* config_payload leaves types out */
	/* The spare child (pool_lifecycle.c): while an agent type is down
	 * (type_failure), one bygate-child outside the n slots, numbered n,
	 * is given the CONFIG of that type alone from time to time; its HELLO
	 * brings the type back, its FATAL keeps it down. No task runs in it,
	 * its end is no death of the breaker, and it is one at a time. */
	struct bg_slot retry;
	struct bg_buf retry_config; /* the CONFIG it is given */
	int retry_type;		    /* the type it tries (-1: none yet) */
	bool retry_loaded;	    /* its HELLO came */
	char retry_why[512];	    /* its FATAL text, "" = none */
};

/* The spare child that tries a down type again (struct bg_pool). */
static inline bool bg_slot_is_retry(const struct bg_slot *sl)
{
	return sl == &sl->pool->retry;
}

/* The wait before the next try of a type tried `tries` times since a
 * pool child last loaded it: none for the first, then 200 ms doubling up
 * to pool.respawn_backoff_max_ms, the ceiling of respawns. */
static inline int64_t bg_pool_retry_delay_ms(const struct bg_pool *p, int tries)
{
	if (tries <= 0)
		return 0;
	int64_t d = 100LL << (tries > 10 ? 10 : tries);
	return d < p->cfg->respawn_backoff_max_ms
		       ? d
		       : p->cfg->respawn_backoff_max_ms;
}

static inline int64_t bg_pool_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A close-on-exec duplicate of fd above 9 (spawn.h: dup2 onto 1..5 then
 * clears close-on-exec), or -1 with errno. */
static inline int bg_pool_dup_high(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

/* pool_config.c: pack p->cfg into p->config_payload (empty before),
 * without the agent types p->type_left_out marks (all of them when every
 * type is marked: the children then report why). 0, -ENOMEM, -EINVAL. */
int bg_pool_build_config(struct bg_pool *p);
/* Pack the CONFIG of agent type `type` alone into p->retry_config (emptied
 * first), for the spare child. 0, -ENOMEM, -EINVAL. */
int bg_pool_build_retry_config(struct bg_pool *p, int type);
/* Every agent type is left out of the CONFIG: no pool child is started
 * (each would report FATAL and die); the spare child tries them. */
bool bg_pool_nothing_loads(const struct bg_pool *p);
/* A child's FATAL text: when it names a configured agent type ("agent
 * type 'T': ..."), T is down (bg_pool_type_down) and left out of the
 * CONFIG from now on. true when the types' state changed. */
bool bg_pool_config_fatal(struct bg_pool *p, const char *text, size_t len);
/* A child's HELLO names the agent types it loaded (comma-separated): each
 * is up again; the pool's children started without one that is back are
 * replaced, and empty slots are started at once. `spare`: the HELLO of
 * the spare child (a pool child's also ends the types' back-off). true
 * when the types' state changed. */
bool bg_pool_config_hello(struct bg_pool *p, const char *names, size_t len,
			  bool spare);

/* pool_output.c: a pipe for the child's fds 1 and 2: the read end
 * (non-blocking) into sl->out with its event, the write end (blocking,
 * above 9) in *wfd, for the caller to close once the child has it. 0 or
 * -errno. */
int bg_slot_output_open(struct bg_slot *sl, int *wfd);
/* The child is gone: read what is left (bounded), log the last partial
 * line and close. Nothing when no pipe is open. */
void bg_slot_output_close(struct bg_slot *sl);

/* pool_slot.c: SIGKILL the child's process group; it is SLOT_STOPPING
 * until reaped. `reason` (kept if none yet) is for the exit report. */
void bg_slot_kill(struct bg_slot *sl, const char *reason);
/* Close the segment and doorbells and drop queued and partial messages
 * (the output pipe is bg_slot_output_close's). */
void bg_slot_release(struct bg_slot *sl);
/* Push queued messages into the down ring as far as they fit; the child
 * rings us when it frees room. A send error kills the child. */
void bg_slot_flush(struct bg_slot *sl);
/* Queue a copy of a message for the child and flush. 0, -EMSGSIZE
 * (over max_message_bytes), -ENOMEM. */
int bg_slot_queue(struct bg_slot *sl, uint16_t kind, uint64_t tag,
		  const void *p, size_t len);
/* The index of task `tag` in sl->tags, or -1. */
int bg_slot_tag_index(const struct bg_slot *sl, uint64_t tag);

/* pool_read.c: read and handle every record the child has sent, each
 * validated (a violation kills the child), reporting through the pool's
 * ops; then flush the down ring. Nothing for a child that broke the
 * protocol or once the pool is stopping. */
void bg_slot_read(struct bg_slot *sl);

#endif
