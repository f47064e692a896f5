/* supervisor/post.h - resume_later (post.c) and its delayed RESUMEs
 * (timers.c). */
#ifndef BG_SUPERVISOR_POST_H
#define BG_SUPERVISOR_POST_H

#include <jansson.h>

struct bg_daemon;
struct bg_job;

/* resume_later(args: message_id?, content, delay_ms?) of t's handler,
 * call `id`: answered at once for t itself, after the target's record is
 * read for another execution of t's session; the RESUME is written
 * through t's outbox. */
void bg_post_resume_later(struct bg_daemon *d, struct bg_job *t, const char *id,
			  json_t *args);

#endif
