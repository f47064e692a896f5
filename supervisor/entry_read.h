/* supervisor/entry_read.h - stream entries held within a memory budget
 * (docs/architecture.md, "Bounded read memory"):
 * - an entry value larger than pool.max_message_bytes is never built:
 *   it reaches bygated as a marker (redis.h's value hook) and is
 *   dead-lettered PAYLOAD_TOO_LARGE without its payload;
 * - the bytes of entries read but not yet handed to a child
 *   (d->read_bytes_held) stay within worker.read_budget_bytes plus one
 *   entry: the read's values past the budget become "deferred" markers
 *   (the entry stays pending here; consume.c fetches it again by id when
 *   there is room), and nothing more is read while the budget is full.
 * The hook runs on every connection; only the read connection's requests
 * sent with bg_rconn_cmd_entries are budgeted. */
#ifndef BG_SUPERVISOR_ENTRY_READ_H
#define BG_SUPERVISOR_ENTRY_READ_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "supervisor/daemon.h"

/* Install the value hook on d's three connections (before they start). */
void bg_entry_read_attach(struct bg_daemon *d);

/* What a stream entry's `data` field gave. */
enum bg_entry_kind {
	BG_ENTRY_WHOLE,	    /* data (malloc'd, NUL-terminated), len */
	BG_ENTRY_NO_DATA,   /* no `data` field */
	BG_ENTRY_OVERSIZED, /* len bytes, over max_message_bytes: not read */
	BG_ENTRY_DEFERRED,  /* len bytes, past the budget: fetch it again */
	BG_ENTRY_GONE,	    /* deleted from the stream before it was read */
};
struct bg_entry_body {
	enum bg_entry_kind kind;
	char *data;
	size_t len;
};

/* Classify an entry's field list, taking its `data` string out of the
 * reply (no copy): the caller owns b->data. */
void bg_entry_body_take(redisReply *fields, struct bg_entry_body *b);

/* The budget: t's data counts against it from pickup until its first
 * attempt starts (or it is freed, whichever comes first). */
static inline void bg_entry_release(struct bg_daemon *d, struct bg_job *t)
{
	d->read_bytes_held -= t->id.charged;
	t->id.charged = 0;
}
static inline void bg_entry_charge(struct bg_daemon *d, struct bg_job *t)
{
	bg_entry_release(d, t);
	t->id.charged = t->id.data_len;
	d->read_bytes_held += t->id.charged;
}
/* Bytes that may still be read (0 = the budget is full). */
static inline size_t bg_entry_room(const struct bg_daemon *d)
{
	size_t budget = (size_t)d->cfg->read_budget_bytes;
	return d->read_bytes_held < budget ? budget - d->read_bytes_held : 0;
}

/* Deferred entries: pending here, their bodies not read yet; fetched
 * again by id in the order they were read (consume.c). The reconcile
 * leaves them alone. */
struct bg_entry_deferred {
	struct bg_entry_deferred *next;
	int stream_idx;
	size_t len;
	bool may_park; /* as bg_pickup_accept's: false when picked */
	char id[];
};
/* 0, or -ENOMEM (the entry is then left to the reconcile). */
int bg_entry_defer(struct bg_daemon *d, int stream_idx, const char *id,
		   size_t len, bool may_park);
bool bg_entry_is_deferred(const struct bg_daemon *d, int stream_idx,
			  const char *id);
/* The oldest (NULL when none); pop removes and frees it. */
const struct bg_entry_deferred *
bg_entry_deferred_head(const struct bg_daemon *d);
void bg_entry_deferred_pop(struct bg_daemon *d);
void bg_entry_deferred_free_all(struct bg_daemon *d);

#endif
