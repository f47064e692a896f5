/* conf/env.c - the by-framework environment variables (WIRE 1.1), applied
 * over the file: the table's simple overrides, the key-schema rule and the
 * cluster flag. A set but malformed variable is an error naming it. */
#include "conf/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Strict decimal: optional '-', digits only, no spaces, no overflow. */
static int parse_decimal(const char *s, int64_t *out)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	if (*d == '\0' || strspn(d, "0123456789") != strlen(d))
		return -1;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno == ERANGE)
		return -1;
	*out = v;
	return 0;
}

static int apply_one(struct bg_config *cfg, const struct bg_conf_env *ev,
		     struct bg_conf_err *e)
{
	const char *var = ev->var, *val = getenv(var);
	if (val == NULL && ev->fallback)
		val = getenv(var = ev->fallback);
	if (val == NULL)
		return 0;
	const struct bg_conf_key *k = bg_conf_key_find(ev->group, ev->name);
	char msg[256];
	if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64) {
		int64_t v;
		if (parse_decimal(val, &v))
			snprintf(msg, sizeof msg, "\"%.64s\" is not an integer",
				 val);
		else if (bg_conf_check_int(k, v, msg, sizeof msg) == 0) {
			bg_conf_set_int(k, cfg, v);
			return 0;
		}
	} else if (bg_conf_check_str(k, val, msg, sizeof msg) == 0) {
		char *copy = strdup(val);
		if (copy == NULL)
			return bg_conf_fail(e, "%s: out of memory", var);
		bg_conf_put_str(k, cfg, copy);
		return 0;
	}
	return bg_conf_fail(e,
			    "environment variable %s: %s (it overrides %s.%s)",
			    var, msg, k->group, k->name);
}

/* The WIRE 1.1 rule (the same as bg_key_schema_select in wire/keys.c),
 * with the file's redis.key_schema (default v1) as the last step. conf does
 * not depend on wire, hence the local copy. */
static int select_schema(const char *env_version, const char *cluster_host,
			 enum bg_key_schema from_file, enum bg_key_schema *out)
{
	if (env_version == NULL)
		*out = cluster_host && cluster_host[0] ? BG_SCHEMA_V2
						       : from_file;
	else if (!strcmp(env_version, "v1"))
		*out = BG_SCHEMA_V1;
	else if (!strcmp(env_version, "v2"))
		*out = BG_SCHEMA_V2;
	else
		return -1;
	return 0;
}

/* Cluster mode: an explicit REDIS_MODE wins; without it a non-empty
 * REDIS_CLUSTER_HOST means cluster (by-framework RedisConfig.from_env). */
static int select_cluster(const char *mode, const char *cluster_host, int *out)
{
	if (mode == NULL || mode[0] == '\0') {
		if (cluster_host && cluster_host[0])
			*out = 1; /* else redis.mode from the file */
	} else if (!strcasecmp(mode, "cluster"))
		*out = 1;
	else if (!strcasecmp(mode, "standalone"))
		*out = 0;
	else
		return -1;
	return 0;
}

int bg_conf_apply_env(struct bg_config *cfg, struct bg_conf_err *e)
{
	for (size_t i = 0; i < bg_conf_nenvs; i++)
		if (apply_one(cfg, &bg_conf_envs[i], e))
			return -1;
	const char *version = getenv("REDIS_KEY_SCHEMA_VERSION");
	const char *cluster_host = getenv("REDIS_CLUSTER_HOST");
	const char *mode = getenv("REDIS_MODE");
	if (select_schema(version, cluster_host, cfg->key_schema,
			  &cfg->key_schema))
		return bg_conf_fail(e,
				    "environment variable "
				    "REDIS_KEY_SCHEMA_VERSION: \"%.32s\" is "
				    "not \"v1\" or \"v2\"",
				    version);
	if (select_cluster(mode, cluster_host, &cfg->redis_cluster))
		return bg_conf_fail(e,
				    "environment variable REDIS_MODE: "
				    "\"%.32s\" is not \"standalone\" or "
				    "\"cluster\"",
				    mode);
	/* REDIS_CLUSTER_HOST: the seed when no node list is given */
	if (cluster_host && cluster_host[0] && cfg->redis_cluster_nodes &&
	    cfg->redis_cluster_nodes[0] == '\0') {
		char *seed = strdup(cluster_host);
		if (seed == NULL)
			return bg_conf_fail(e, "out of memory");
		free(cfg->redis_cluster_nodes);
		cfg->redis_cluster_nodes = seed;
	}
	return 0;
}
