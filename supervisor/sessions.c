/* supervisor/sessions.c - garbage collection of session workspaces
 * (DESIGN 6): the LMDB index says when each session was last used here;
 * sessions idle longer than paths.session_idle_ttl_s with no task of them
 * in flight are removed, the others re-measured (sizes are measured here,
 * off the task path). */
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "workspace/workspace.h"

struct gc {
	struct bg_daemon *d;
	int64_t now;
	int removed, measured;
};

static bool session_busy(const struct bg_daemon *d, struct bg_str session)
{
	for (const struct bg_job *t = d->all.next; t != &d->all; t = t->next)
		if (t->id.session_id && bg_str_eq(session, t->id.session_id))
			return true;
	return false;
}

static int gc_one(void *arg, const struct bg_state_session *s)
{
	struct gc *g = arg;
	struct bg_daemon *d = g->d;
	char err[512], rel[4096];
	if (s->path.len >= sizeof(rel))
		return 0;
	memcpy(rel, s->path.p, s->path.len);
	rel[s->path.len] = '\0';
	/* last_used_ms may lag the last task's start by up to
	 * BG_SESSION_TOUCH_MS (attempt.c writes it at most that often). */
	bool idle = g->now - s->last_used_ms >
		    d->cfg->session_idle_ttl_s * 1000 + BG_SESSION_TOUCH_MS;
	if (idle && !session_busy(d, s->session_id)) {
		if (bg_ws_remove_session(d->ws_cache, d->cfg->workspace_dir,
					 rel, err, sizeof(err)) == 0) {
			(void)bg_lmdb_check(d,
					    bg_state_session_del(d->state,
								 s->agent_type,
								 s->user_code,
								 s->session_id),
					    "session del");
			g->removed++;
		} else {
			bg_warn("cannot remove idle session workspace %s: %s",
				rel, err);
		}
		return 0;
	}
	int64_t bytes = -1;
	if (bg_ws_measure(d->cfg->workspace_dir, rel, &bytes, err,
			  sizeof(err)) == 0 &&
	    bytes != s->bytes) {
		struct bg_state_session upd = *s;
		upd.bytes = bytes;
		(void)bg_lmdb_check(d, bg_state_session_put(d->state, &upd),
				    "session put");
		g->measured++;
	}
	return 0;
}

void bg_sessions_gc(struct bg_daemon *d)
{
	if (d->state == NULL)
		return;
	struct gc g = { d, bg_now_ms(), 0, 0 };
	bg_state_session_each(d->state, gc_one, &g);
	if (g.removed)
		bg_info("removed %d idle session workspaces (idle > %lld s)",
			g.removed, (long long)d->cfg->session_idle_ttl_s);
}
