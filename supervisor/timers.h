/* supervisor/timers.h - the delayed RESUMEs of resume_later (post.c):
 * each agent type's timers are a ZSET (wire/keys.h BG_KEY_TIMERS) of
 * RESUME entries scored by their due time (Redis clock, epoch ms), in the
 * slot of the type's control stream. Every bygated polls the timers of
 * the agent types it is configured for every worker.timer_poll_ms; a due
 * entry whose target execution has ended is dropped, any other is moved
 * to the stream by one script (ZREM, then XADD only if it removed it), so
 * each is sent exactly once fleet-wide, whichever bygated polls first,
 * and outlives the death of the one that stored it. */
#ifndef BG_SUPERVISOR_TIMERS_H
#define BG_SUPERVISOR_TIMERS_H

struct bg_daemon;

/* Start polling (after the connections exist). 0 or -ENOMEM. */
int bg_timers_start(struct bg_daemon *d);
/* At exit, after the connections were freed (their callbacks ran). */
void bg_timers_free(struct bg_daemon *d);

#endif
