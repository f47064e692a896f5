/* supervisor/admit.h - a picked-up job admitted to run: its RUNNING
 * write, then the ready queue. */
#ifndef BG_SUPERVISOR_ADMIT_H
#define BG_SUPERVISOR_ADMIT_H

struct bg_daemon;
struct bg_job;

void bg_admit(struct bg_daemon *d, struct bg_job *t);

#endif
