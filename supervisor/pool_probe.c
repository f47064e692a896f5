/* supervisor/pool_probe.c - `bygated -t`: does an agent type's handler
 * load? One bygate-child is started exactly as the pool starts its
 * children (identity, PID namespace, sandbox), given the CONFIG of that
 * agent type alone, and waited for: HELLO (it loaded) or FATAL (why not). */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

struct probe {
	int done; /* 1: HELLO; -1: the child ended first */
	char exit_reason[32];
};

static void probe_idle(void *arg, int slot)
{
	(void)slot;
	((struct probe *)arg)->done = 1;
}

static void probe_message(void *arg, int slot, uint16_t kind, uint64_t tag,
			  const uint8_t *payload, size_t len)
{
	(void)arg, (void)slot, (void)kind, (void)tag, (void)payload, (void)len;
}

static void probe_lost(void *arg, int slot, const uint64_t *tags, int n,
		       const char *why)
{
	(void)arg, (void)slot, (void)tags, (void)n, (void)why;
}

static void probe_exit(void *arg, const char *reason)
{
	struct probe *pr = arg;
	if (pr->done == 0) {
		pr->done = -1;
		snprintf(pr->exit_reason, sizeof(pr->exit_reason), "%s",
			 reason);
	}
}

int bg_pool_check_type(const struct bg_config *cfg, const char *child_path,
		       const struct bg_spawn_identity *who, int type,
		       int timeout_ms, char *err, size_t n)
{
	struct bg_config one = *cfg; /* shallow: nothing of it is freed */
	one.pool_size = 1;
	one.n_agent_types = 1;
	one.agent_types = &cfg->agent_types[type];
	struct probe pr = { 0 };
	struct bg_pool_ops ops = { probe_idle, probe_message, probe_lost,
				   probe_exit, NULL,	      NULL };
	struct event_base *base = event_base_new();
	struct bg_pool *p =
		base ? bg_pool_new(base, &one, child_path, who, &ops, &pr)
		     : NULL;
	int rc = p ? bg_pool_start(p) : -ENOMEM;
	if (rc) {
		snprintf(err, n, "cannot start %s: %s", child_path,
			 strerror(rc < 0 ? -rc : ENOMEM));
	} else {
		int64_t deadline = bg_pool_mono_ms() + timeout_ms;
		while (pr.done == 0 && p->gen_failed == 0 &&
		       bg_pool_mono_ms() < deadline)
			event_base_loop(base, EVLOOP_ONCE);
		if (pr.done == 1) {
			rc = 0;
		} else if (p->gen_failed) {
			rc = -EINVAL;
			snprintf(err, n, "%s", p->gen_failure);
		} else if (pr.done < 0) {
			rc = -ECHILD;
			snprintf(err, n,
				 "the child ended (%s) before it loaded the "
				 "handler",
				 pr.exit_reason);
		} else {
			rc = -ETIMEDOUT;
			snprintf(err, n,
				 "the child did not load the handler within "
				 "%d ms",
				 timeout_ms);
		}
	}
	if (p)
		bg_pool_shutdown(p, false);
	bg_pool_free(p);
	if (base)
		event_base_free(base);
	return rc;
}
