/* supervisor/resume_take.h - a run takes the RESUMEs waiting for it: the
 * `next_resume` handler operation. Internal to supervisor/. */
#ifndef BG_SUPERVISOR_RESUME_TAKE_H
#define BG_SUPERVISOR_RESUME_TAKE_H

#include <stdbool.h>

#include <jansson.h>

struct bg_daemon;
struct bg_job;

/* The handler's `next_resume` call `id` while t runs: the oldest RESUME of
 * t's execution waiting here for t's run to end (admit.c) is taken by t.
 * Its body and header come back to the handler; its entry is acknowledged
 * in t's finish transaction (the outbox), so it is handled exactly when
 * t's result is. {"found": false} when none waits. */
void bg_resume_take(struct bg_daemon *d, struct bg_job *t, const char *id,
		    json_t *args);

/* The RESUMEs t took: `acked` (t's finish, outbox included, is applied)
 * frees them; otherwise (a new attempt, an end without the outbox) they
 * wait again and are examined anew, their entries still pending. */
void bg_resume_take_release(struct bg_daemon *d, const struct bg_job *t,
			    bool acked);

#endif
