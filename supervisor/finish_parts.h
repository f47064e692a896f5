/* supervisor/finish_parts.h - the finish under Redis Cluster (issue 17 item
 * 3, docs/cluster.md "The finish, split by slot").
 *
 * No transaction spans slots, and a finish writes the session's keys, the
 * worker's statistics, other agent types' streams, the dead letters and the
 * entry's stream. The blob (journaled as on a standalone server, finish.c)
 * is sent as parts: the commands of each slot, the session's slot first,
 * then the others in the order of each slot's first command, each part as
 * one script that applies them unless this slot already has them (the
 * entry's guard key in that slot, BG_KEY_FINISH_GUARD, written by the same
 * script); then the worker keys'
 * EXPIREs; then the entry's XACK, alone and last. Each part is atomic in
 * its slot and applied at most once, whatever is re-sent: a part answered
 * or not, a crash between two parts, a journal replay. So:
 *
 *   the entry is pending  <=>  its XACK was not applied  =>  every part
 *   is applied or will be, once, by the next send of the same blob;
 *   a replay never writes an event, a record or a callback twice.
 *
 * Once the finish is applied its guards are deleted (bg_finish_parts_
 * forget; a guard whose DEL is lost expires after worker.max_entry_age_s
 * plus a day). A part is sent only within the lease's fencing window, as
 * the whole transaction is on a standalone server: outside it the finish
 * is held and later sent again, whole. */
#ifndef BG_SUPERVISOR_FINISH_PARTS_H
#define BG_SUPERVISOR_FINISH_PARTS_H

#include "supervisor/redis.h"

struct bg_daemon;
struct bg_job;

/* Sends t->fin.finish_blob (a valid blob whose last command is the XACK)
 * on d->wr, part after part; `done` then gets (d->wr, reply, t): the XACK's
 * reply (the whole finish applied), an error reply (a part or the XACK
 * refused: retry the whole blob) or NULL (outcome unknown). 0 when the
 * first part is queued; -ENOTCONN (nothing sent), -EBADMSG (the blob is not
 * a finish) or -ENOMEM. */
int bg_finish_parts_send(struct bg_daemon *d, struct bg_job *t,
			 bg_rconn_reply_fn done);

/* The guard of t's part in its session's slot (malloc'd), NULL when t has
 * no session registry or no memory. It exists from the moment a finish of
 * t's entry has applied that part, the first, until the finish is
 * applied, and holds the commands of the finish's other parts. The same
 * part writes such a guard ("1") for each other entry the finish
 * acknowledges (the RESUMEs its run took). A worker that takes an entry
 * over (recovery, reclaim) reads it before the record (pickup.c):
 * present, the task is not run again; the entry is acknowledged by a
 * finish (finish_build.c) that carries the rest kept, after an EXPIRE of
 * the session's registry that names its slot, so that the finish, as any
 * other, is journaled, replayed and sent part after part, each part
 * skipped where already applied. So a finish begun by a worker that lost
 * the entry meanwhile (its lease lapsed between two parts, or it died and
 * another worker reclaimed the entry) is completed by whichever worker
 * acknowledges the entry, never run twice. A finish with no part in the
 * session's slot (an entry without a session) keeps no rest: taken over,
 * it is run again, as before. */
char *bg_finish_parts_session_guard(struct bg_daemon *d,
				    const struct bg_job *t);

/* t's finish is applied (its XACK, or the entry found acknowledged): its
 * guards are deleted (DELs on d->wr, no reply awaited). */
void bg_finish_parts_forget(struct bg_daemon *d, struct bg_job *t);

#endif
