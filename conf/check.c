/* conf/check.c - what single keys cannot say: the worker id default, rules
 * between keys, safe names, and which changes a SIGHUP reload may apply. */
#include "conf/table.h"

#include "conf/lanes.h"
#include "conf/triggers.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_MAX_BYTES 128

int bg_conf_check_name(const char *s, char *msg, size_t n)
{
	size_t len = strlen(s);
	if (len == 0 || len > NAME_MAX_BYTES) {
		snprintf(msg, n, "must be 1..%d bytes long", NAME_MAX_BYTES);
		return -1;
	}
	if (!strcmp(s, ".") || !strcmp(s, "..")) {
		snprintf(msg, n, "\"%s\" is not a usable name", s);
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '/' || *p == '{' || *p == '}' || isspace(*p) ||
		    iscntrl(*p)) {
			snprintf(
				msg, n,
				"\"%.*s\" contains '/', a brace, whitespace or "
				"a control character",
				NAME_MAX_BYTES, s);
			return -1;
		}
	}
	return 0;
}

/* "bygate-<hostname>", the default worker id. */
static char *default_worker_id(void)
{
	char host[256] = "localhost";
	if (gethostname(host, sizeof host) == -1 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	char *id;
	if (asprintf(&id, "bygate-%.*s", NAME_MAX_BYTES - 7, host) == -1)
		return NULL;
	return id;
}

static const char *origin(const struct bg_config *cfg)
{
	return cfg->path && cfg->path[0] ? cfg->path : "configuration";
}

int bg_conf_validate(struct bg_config *cfg, struct bg_conf_err *e)
{
	char msg[384];
	if (cfg->worker_id[0] == '\0') {
		char *id = default_worker_id();
		if (id == NULL)
			return bg_conf_fail(e, "%s: out of memory",
					    origin(cfg));
		free(cfg->worker_id);
		cfg->worker_id = id;
	}
	if (bg_conf_check_name(cfg->worker_id, msg, sizeof msg))
		return bg_conf_fail(e, "%s: worker.id: %s", origin(cfg), msg);
	int64_t ttl_ms = (int64_t)cfg->lease_ttl_s * 1000;
	if (cfg->heartbeat_interval_ms >= ttl_ms)
		return bg_conf_fail(
			e,
			"%s: worker.heartbeat_interval_ms (%d) must "
			"be below worker.lease_ttl_s (%d s = %lld ms)",
			origin(cfg), cfg->heartbeat_interval_ms,
			cfg->lease_ttl_s, (long long)ttl_ms);
	if (cfg->reclaim_min_idle_ms < 2 * ttl_ms)
		return bg_conf_fail(
			e,
			"%s: worker.reclaim_min_idle_ms (%d) must "
			"be at least 2 x worker.lease_ttl_s (%lld ms)",
			origin(cfg), cfg->reclaim_min_idle_ms,
			(long long)(2 * ttl_ms));
	if (bg_lanes_check(cfg->sched_lanes_json, msg, sizeof msg))
		return bg_conf_fail(e, "%s: %s", origin(cfg), msg);
	if (bg_triggers_check(cfg, msg, sizeof msg))
		return bg_conf_fail(e, "%s: %s", origin(cfg), msg);
	if (cfg->path[0] && cfg->n_agent_types == 0)
		return bg_conf_fail(
			e,
			"%s: no agent_types: at least one agent type "
			"is required",
			origin(cfg));
	return bg_conf_sandbox_resolve(cfg, e);
}

static bool key_equal(const struct bg_conf_key *k, const void *a, const void *b)
{
	if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64 ||
	    k->type == BG_CONF_ENUM || k->type == BG_CONF_BOOL)
		return bg_conf_get_int(k, a) == bg_conf_get_int(k, b);
	return strcmp(bg_conf_get_str(k, a), bg_conf_get_str(k, b)) == 0;
}

static bool agents_equal(const struct bg_config *a, const struct bg_config *b)
{
	if (a->n_agent_types != b->n_agent_types)
		return false;
	for (int i = 0; i < a->n_agent_types; i++)
		for (size_t j = 0; j < bg_conf_nagent_keys; j++)
			if (!key_equal(&bg_conf_agent_keys[j],
				       &a->agent_types[i], &b->agent_types[i]))
				return false;
	return true;
}

const struct bg_conf_key *bg_conf_first_change(const struct bg_config *a,
					       const struct bg_config *b,
					       bool fixed_only)
{
	for (size_t i = 0; i < bg_conf_nkeys; i++) {
		const struct bg_conf_key *k = &bg_conf_keys[i];
		if (fixed_only && (k->flags & BG_CONF_RELOAD))
			continue;
		if (!key_equal(k, a, b))
			return k;
	}
	if (!fixed_only && !agents_equal(a, b))
		return &bg_conf_agent_keys[0];
	return NULL;
}

int bg_config_reload_check(const struct bg_config *old,
			   const struct bg_config *next, char *err,
			   size_t errlen)
{
	const struct bg_conf_key *k = bg_conf_first_change(old, next, true);
	if (k == NULL)
		return 0;
	struct bg_conf_err e = { err, errlen };
	return bg_conf_fail(&e,
			    "%s: %s.%s changed, but SIGHUP cannot apply it: "
			    "restart bygated",
			    origin(next), k->group, k->name);
}
