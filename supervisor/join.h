/* supervisor/join.h - joining a dispatch_group's results (join.c). */
#ifndef BG_SUPERVISOR_JOIN_H
#define BG_SUPERVISOR_JOIN_H

struct bg_daemon;
struct bg_job;

/* t is a RESUME naming a task group: count its result; the job goes on
 * in bg_admit (the group is complete: resume the caller), or ends
 * acknowledged (results missing) or FAILED (Redis refused). */
void bg_join_group(struct bg_daemon *d, struct bg_job *t);

#endif
