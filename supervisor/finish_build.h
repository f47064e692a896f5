/* supervisor/finish_build.h - building a job's finish transaction. */
#ifndef BG_SUPERVISOR_FINISH_BUILD_H
#define BG_SUPERVISOR_FINISH_BUILD_H

struct bg_daemon;
struct bg_job;

/* Build t's finish transaction into t->finish_blob from its outcome and
 * journal it (fault point finish.before_journal). 0, or -ENOMEM,
 * -EMSGSIZE, -E2BIG (the transaction or one of its commands is too large,
 * or the outbox failed): nothing is journaled and the entry stays
 * pending. */
int bg_finish_build(struct bg_daemon *d, struct bg_job *t);

#endif
