/* client/requeue.h - a failed execution put back in its queue under Redis
 * Cluster (`bygate retry`, `bygate dlq requeue`; docs/cluster.md).
 *
 * On a standalone server one script compares and sets the record and adds
 * the entry. Under Cluster the session's registry and the agent type's
 * stream are in two slots: the record is compared and set first (the
 * session's slot: of two concurrent requeues one wins, the other finds the
 * record changed and writes nothing), then the entry is added, and the
 * idempotency hash, when the message has one and it still names it, is
 * pointed at the new entry (the stream's slot: one script when the hash is
 * tagged with that stream, as v2 keys are for the agent type's own
 * stream). An entry refused by Redis puts the record back. A connection
 * lost after the compare and set was sent is resolved by reading the
 * record again (the QUEUED form is unique: it carries the time); lost
 * after the XADD was sent, the outcome is unknown and said so, the record
 * left QUEUED (`bygate status` shows whether the entry runs). */
#ifndef BG_CLIENT_REQUEUE_H
#define BG_CLIENT_REQUEUE_H

#include <stddef.h>

struct bg_client;

struct bg_client_requeue {
	/* the record: registry NULL for an entry without one */
	const char *registry, *field;
	const char *old; /* the record read, old_len bytes */
	size_t old_len;
	const char *next; /* its QUEUED form */
	/* the entry: its data, data_len bytes */
	const char *stream, *data;
	size_t data_len;
	const char *idem;	/* the message's idempotency HASH, or NULL */
	const char *message_id; /* the message the HASH must name */
};

/* 0 with the new entry's id in new_id[cap]; 1 when the record was no
 * longer `old` (nothing written); else a BG_CLIENT_E* code with c->errmsg
 * set. */
int bg_client_requeue_split(struct bg_client *c,
			    const struct bg_client_requeue *q, char *new_id,
			    size_t cap);

#endif
