/* child/child.h - internals of bygate-child: the runtime state shared by the
 * channel (ring I/O with doorbells, channel.c), the plugin loader
 * (plugin.c), task decoding (task.c) and the bg_ctx_* implementation of
 * include/bygate/handler.h (ctx.c). Not installed; plugins never see it. */
#ifndef BG_CHILD_CHILD_H
#define BG_CHILD_CHILD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bygate/handler.h"
#include "common/buf.h"
#include "ipc/record.h"
#include "ipc/segment.h"

/* Exit codes of bygate-child (the supervisor logs them). 0 = STOP honoured. */
#define BG_CHILD_EXIT_USAGE 64	  /* bad command line */
#define BG_CHILD_EXIT_SEGMENT 70  /* fds 3-5 missing, segment invalid */
#define BG_CHILD_EXIT_CONFIG 71	  /* CONFIG refused; FATAL says why */
#define BG_CHILD_EXIT_PROTOCOL 72 /* the supervisor broke the protocol */
#define BG_CHILD_EXIT_ORPHAN 73	  /* the supervisor (parent) is gone */

#define BG_CHILD_WAIT_MS 1000	/* every doorbell wait times out */
#define BG_CHILD_MAX_TYPES 256	/* agent types one CONFIG may carry */
#define BG_CHILD_MAX_STATUS 128 /* bytes of a handler's status string */

/* A down-ring message. From bg_child_next: valid until the next call of
 * bg_child_next or bg_child_poll. */
struct bg_child_msg {
	uint16_t kind;
	uint64_t tag;
	const uint8_t *p;
	size_t len;
	bool cancelled; /* a TASK whose CANCEL arrived before it started */
};

/* A message read by bg_child_poll while a task runs, kept for later. */
struct bg_child_queued {
	struct bg_child_queued *next;
	struct bg_child_msg msg; /* msg.p points at data */
	uint8_t data[];
};

struct bg_plugin {
	char *path;
	void *dl;
	const struct bg_handler *h;
};

struct bg_agent {
	char *name;
	struct bg_plugin *plugin;
	void *state;
	bool inited;
};

struct bg_child {
	struct bg_segment seg;
	long slot;
	pid_t ppid;		/* the supervisor; a change means it died */
	struct bg_msg_in in;	/* down-ring reassembly */
	struct bg_buf out;	/* packing scratch for up-ring messages */
	struct bg_child_queued *queue, *queue_tail;
	struct bg_child_queued *held; /* last returned by bg_child_next */
	bool in_task;		/* process() is on the stack */
	uint64_t task_tag;
	bool cancel_flag;	/* the running task was cancelled */
	bool stop_requested;	/* STOP seen: exit after the running task */
	struct bg_plugin *plugins;
	size_t n_plugins;
	struct bg_agent *agents;
	size_t n_agents;
};

/* ---- main.c ---- */

/* Message on stderr, prefixed with the slot and pid. */
void bg_child_warn(struct bg_child *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Warn, run the handlers' shutdown() (unless a task is running), mark the
 * scoreboard EXITING and exit with `code`. */
_Noreturn void bg_child_die(struct bg_child *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Scoreboard updates (display only). */
void bg_child_score(struct bg_child *c, enum bg_score_state st, uint64_t tag);

/* ---- channel.c: the rings ---- */

/* Pack v[0..n) and send it up as one message of `kind`, waiting for ring
 * space as long as needed (dies when the supervisor disappears).
 * 0, -EMSGSIZE when the packed message exceeds max_message, -ENOMEM. */
int bg_child_send(struct bg_child *c, uint16_t kind, uint64_t tag,
		  const struct bg_str *v, uint32_t n);
/* Send an already packed payload. Same returns as bg_child_send. */
int bg_child_send_packed(struct bg_child *c, uint16_t kind, uint64_t tag,
			 const void *p, size_t len);
/* Largest payload either side may send. */
size_t bg_child_max_message(const struct bg_child *c);
/* Next down message: a queued one first, else wait on the ring (with the
 * doorbell handshake). Dies on a protocol error or when orphaned. */
void bg_child_next(struct bg_child *c, struct bg_child_msg *out);
/* Without blocking, read what the down ring holds: a CANCEL for the running
 * task sets cancel_flag, STOP sets stop_requested, anything else is queued
 * for bg_child_next. */
void bg_child_poll(struct bg_child *c);
/* Free the queue and reassembly state. */
void bg_child_channel_free(struct bg_child *c);

/* ---- plugin.c: CONFIG, loading, init and shutdown ---- */

/* Load the handlers a CONFIG payload names and init() each agent type.
 * 0, or a negative errno with a message for the FATAL record in *err. */
int bg_child_load(struct bg_child *c, const uint8_t *p, size_t len,
		  struct bg_buf *err);
/* Comma-separated agent type names, for HELLO. 0 or -ENOMEM. */
int bg_child_agent_names(const struct bg_child *c, struct bg_buf *out);
struct bg_agent *bg_child_find_agent(struct bg_child *c, const char *name);
/* shutdown() every initialised agent type, then dlclose and free. */
void bg_child_unload(struct bg_child *c);

/* ---- task.c: TASK payloads ---- */

struct bg_task {
	const char *f[BG_TF__COUNT]; /* NUL-terminated copies, in store */
	char *store;
	json_t *body;
	const char *content; /* into body, content_dump or "" */
	char *content_dump;
};

/* Decode a TASK payload. 0; -EBADMSG (wrong field count: a protocol
 * error); -EINVAL (body not a JSON object: the task fails); -ENOMEM. */
int bg_child_task_parse(struct bg_task *t, const uint8_t *p, size_t len);
void bg_child_task_free(struct bg_task *t);

/* ---- ctx.c: running a task ---- */

/* Run one TASK message to its RESULT. */
void bg_child_run(struct bg_child *c, const struct bg_child_msg *m);

#endif
