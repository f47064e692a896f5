/* supervisor/pool.c - the pool's API to the task layer (see pool.h):
 * create and free it, count its children, place tasks under the sharing
 * rule, send them replies, cancels and signals, generations and reloads.
 * The other parts are in pool_*.c (the list is in pool_int.h). */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "supervisor/log.h"
#include "supervisor/spawn.h"

struct bg_pool *bg_pool_new(struct event_base *base,
			    const struct bg_config *cfg, const char *child_path,
			    const struct bg_spawn_identity *who,
			    const struct bg_pool_ops *ops, void *arg)
{
	struct bg_pool *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	char err[256];
	if (bg_spawn_prepare(who, &p->spawner, err, sizeof(err)) != 0) {
		bg_error("cannot prepare the children's start: %s", err);
		free(p);
		return NULL;
	}
	p->base = base;
	p->cfg = cfg;
	p->child_path = strdup(child_path);
	p->ops = *ops;
	p->arg = arg;
	p->n = cfg->pool_size;
	p->generation = 1;
	p->c = calloc((size_t)p->n, sizeof(*p->c));
	p->deaths_cap = cfg->crash_storm_deaths > 0 ? cfg->crash_storm_deaths
						    : 1;
	p->deaths = calloc((size_t)p->deaths_cap, sizeof(int64_t));
	p->n_types = cfg->n_agent_types;
	p->type_left_out = calloc((size_t)p->n_types + 1, sizeof(bool));
	p->type_failure = calloc((size_t)p->n_types + 1, sizeof(char *));
	p->type_tries = calloc((size_t)p->n_types + 1, sizeof(int));
	p->type_retry_at = calloc((size_t)p->n_types + 1, sizeof(int64_t));
	p->retry_type = -1;
	for (int i = p->c ? 0 : p->n; i <= p->n; i++) {
		struct bg_slot *sl = i < p->n ? &p->c[i] : &p->retry;
		sl->pool = p;
		sl->slot = i;
		sl->seg.fd = -1;
		sl->out.fd = -1;
		sl->wake_child_fd = sl->wake_sup_fd = -1;
	}
	if (p->child_path == NULL || p->c == NULL || p->type_left_out == NULL ||
	    p->type_failure == NULL || p->type_tries == NULL ||
	    p->type_retry_at == NULL || bg_pool_build_config(p) != 0) {
		bg_pool_free(p);
		return NULL;
	}
	return p;
}

/* Kill the child of sl if any, wait for it and free what sl holds. */
static void slot_free(struct bg_slot *sl)
{
	if (sl->pid > 0) {
		bg_slot_kill(sl, "shutdown");
		waitpid(sl->pid, NULL, 0);
		sl->pid = 0;
	}
	bg_slot_output_close(sl);
	bg_slot_release(sl);
}

void bg_pool_free(struct bg_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; p->c && i < p->n; i++)
		slot_free(&p->c[i]);
	if (p->retry.pool == p)
		slot_free(&p->retry);
	bg_buf_free(&p->retry_config);
	if (p->ev_sigchld)
		event_free(p->ev_sigchld);
	if (p->ev_sweep)
		event_free(p->ev_sweep);
	bg_buf_free(&p->config_payload);
	for (int i = 0; p->type_failure && i < p->n_types; i++)
		free(p->type_failure[i]);
	free(p->type_failure);
	free(p->type_left_out);
	free(p->type_tries);
	free(p->type_retry_at);
	free(p->deaths);
	free(p->c);
	free(p->child_path);
	bg_spawn_free(p->spawner);
	free(p);
}

int bg_pool_size(const struct bg_pool *p)
{
	return p->n;
}

static int count_state(const struct bg_pool *p, enum slot_state s)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].state == s && p->c[i].pid > 0;
	return n;
}

int bg_pool_idle_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].state == SLOT_IDLE && !p->c[i].recycling;
	return n;
}

int bg_pool_busy_count(const struct bg_pool *p)
{
	return count_state(p, SLOT_BUSY);
}

int bg_pool_task_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].n_tags;
	return n;
}

int bg_pool_shared_children(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].n_tags > 0 && p->c[i].group >= 0;
	return n;
}

int bg_pool_alive_count(const struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->c[i].pid > 0;
	return n;
}

/* Room for one more task of `group` in sl (see bg_pool_pick), 0 = none. */
static int free_room(const struct bg_slot *sl, int group, int limit)
{
	if (sl->pid <= 0 || sl->recycling || sl->kill_reason || sl->exited ||
	    (sl->state != SLOT_IDLE && sl->state != SLOT_BUSY))
		return 0;
	if (sl->n_tags == 0)
		return group >= 0 && limit > 1 ? limit : 1;
	if (group < 0 || limit <= 1 || sl->group != group ||
	    sl->n_tags >= limit)
		return 0;
	return limit - sl->n_tags;
}

/* The busy child with the fewest tasks (the lowest slot on a tie): the one
 * left to drain for a task waiting for a child to itself. -1 = none. */
static int draining_child(const struct bg_pool *p)
{
	int best = -1;
	for (int i = 0; i < p->n; i++) {
		const struct bg_slot *sl = &p->c[i];
		if (sl->n_tags > 0 && sl->pid > 0 && !sl->exited &&
		    (best < 0 || sl->n_tags < p->c[best].n_tags))
			best = i;
	}
	return best;
}

int bg_pool_pick(const struct bg_pool *p, int group, int limit, bool busy_only)
{
	int best = -1, best_room = 0;
	int drain = busy_only ? draining_child(p) : -1;
	for (int i = 0; i < p->n; i++) {
		if (busy_only && (p->c[i].n_tags == 0 || i == drain))
			continue;
		int room = free_room(&p->c[i], group, limit);
		if (room > best_room) {
			best = i;
			best_room = room;
		}
	}
	return best;
}

pid_t bg_pool_pid(const struct bg_pool *p, int slot)
{
	return (slot >= 0 && slot < p->n) ? p->c[slot].pid : 0;
}

int bg_pool_run(struct bg_pool *p, int slot, uint64_t tag, int group, int limit,
		const void *payload, size_t len)
{
	struct bg_slot *sl = &p->c[slot];
	if (limit > BG_POOL_MAX_INFLIGHT)
		limit = BG_POOL_MAX_INFLIGHT;
	if (free_room(sl, group, limit) == 0)
		return -EBUSY;
	int rc = bg_slot_queue(sl, BG_REC_TASK, tag, payload, len);
	if (rc)
		return rc;
	sl->state = SLOT_BUSY;
	sl->group = limit > 1 ? group : -1;
	sl->tags[sl->n_tags++] = tag;
	return 0;
}

int bg_pool_reply(struct bg_pool *p, int slot, uint64_t tag,
		  const void *payload, size_t len)
{
	struct bg_slot *sl = &p->c[slot];
	if (sl->pid <= 0 || sl->state != SLOT_BUSY ||
	    bg_slot_tag_index(sl, tag) < 0)
		return -ESRCH;
	return bg_slot_queue(sl, BG_REC_REPLY, tag, payload, len);
}

int bg_pool_cancel(struct bg_pool *p, int slot, uint64_t tag,
		   const char *reason, const char *mode)
{
	struct bg_slot *sl = &p->c[slot];
	if (sl->pid <= 0 || sl->state != SLOT_BUSY ||
	    bg_slot_tag_index(sl, tag) < 0)
		return -ESRCH;
	struct bg_buf payload = { 0 };
	struct bg_str v[2] = { bg_str_c(reason), bg_str_c(mode) };
	int rc = bg_rec_pack(&payload, v, 2);
	if (rc == 0)
		rc = bg_slot_queue(sl, BG_REC_CANCEL, tag, payload.p,
				   payload.len);
	bg_buf_free(&payload);
	return rc;
}

uint32_t bg_pool_new_generation(struct bg_pool *p)
{
	p->generation++;
	/* Every agent type is offered again; one that failed stays down
	 * until a child loads it (bg_pool_config_hello). */
	bool partial = p->config_partial;
	for (int i = 0; i < p->n_types; i++)
		p->type_left_out[i] = false;
	if (partial) {
		bg_buf_reset(&p->config_payload);
		if (bg_pool_build_config(p) != 0)
			bg_error("cannot rebuild the children's CONFIG: out of "
				 "memory");
	}
	for (int i = 0; i < p->n; i++)
		if (p->c[i].pid > 0 && p->c[i].generation < p->generation)
			p->c[i].recycling = true;
	/* A try under the old configuration says nothing of the new one. */
	bg_slot_kill(&p->retry, "a reload");
	for (int i = 0; i < p->n_types; i++) {
		p->type_tries[i] = 0;
		p->type_retry_at[i] = 0;
	}
	return p->generation;
}

uint32_t bg_pool_generation(const struct bg_pool *p)
{
	return p->generation;
}

int bg_pool_generation_state(const struct bg_pool *p, const char **why)
{
	if (p->gen_failed == p->generation) {
		*why = p->gen_failure;
		return -1;
	}
	for (int i = 0; i < p->n; i++) {
		const struct bg_slot *sl = &p->c[i];
		if (sl->pid <= 0 || sl->generation != p->generation ||
		    sl->state == SLOT_STARTING || sl->state == SLOT_STOPPING)
			return 0;
	}
	return 1;
}

int bg_pool_set_config(struct bg_pool *p, const struct bg_config *cfg)
{
	const struct bg_config *old = p->cfg;
	p->cfg = cfg;
	bg_buf_reset(&p->config_payload);
	int rc = bg_pool_build_config(p);
	if (rc) {
		p->cfg = old;
		bg_buf_reset(&p->config_payload);
		bg_pool_build_config(p);
	}
	return rc;
}

void bg_pool_signal(struct bg_pool *p, int slot, int sig, const char *reason)
{
	struct bg_slot *sl = &p->c[slot];
	if (sl->pid <= 0)
		return;
	if (sl->kill_reason == NULL)
		sl->kill_reason = reason;
	if (sig == SIGKILL) {
		bg_slot_kill(sl, reason);
		return;
	}
	if (kill(-sl->pid, sig) == -1)
		kill(sl->pid, sig);
}

bool bg_pool_type_down(const struct bg_pool *p, int type, const char **why)
{
	const char *w = NULL;
	if (type >= 0 && type < p->n_types && p->type_failure[type])
		w = p->type_failure[type];
	else if (bg_pool_breaker_open(p))
		w = "the crash-storm breaker is open";
	if (why)
		*why = w;
	return w != NULL;
}

void bg_pool_get_stats(const struct bg_pool *p, struct bg_pool_stats *s)
{
	*s = p->stats;
}
