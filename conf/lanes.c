/* conf/lanes.c - sched.lanes, parsed and checked (see lanes.h). */
#include "conf/lanes.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/config.h"

static const struct bg_lane_conf defaults = { 1, 0, 0, 0, 1000 };

struct lane_entry {
	char *name;
	struct bg_lane_conf conf;
};

/* The parsed sched.lanes of one configuration. */
static struct {
	char *json; /* the text it was parsed from */
	struct lane_entry *v;
	size_t n;
} parsed;

static int int_member(json_t *o, const char *key, int lo, int hi, int *out,
		      char *why, size_t n, const char *lane)
{
	json_t *v = json_object_get(o, key);
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		snprintf(why, n,
			 "sched.lanes.%s.%s must be an integer in %d..%d", lane,
			 key, lo, hi);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

static int parse_one(const char *lane, json_t *o, struct bg_lane_conf *c,
		     char *why, size_t n)
{
	*c = defaults;
	if (!json_is_object(o)) {
		snprintf(why, n, "sched.lanes.%s must be a group", lane);
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		static const char *const known[] = { "weight", "max_running",
						     "fleet_max_running",
						     "rate_limit",
						     "rate_period_ms" };
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok) {
			snprintf(why, n, "sched.lanes.%s: unknown key %s", lane,
				 key);
			return -1;
		}
	}
	return int_member(o, "weight", 1, 1000, &c->weight, why, n, lane) ||
			       int_member(o, "max_running", 0, 100000,
					  &c->max_running, why, n, lane) ||
			       int_member(o, "fleet_max_running", 0, 1000000,
					  &c->fleet_max_running, why, n,
					  lane) ||
			       int_member(o, "rate_limit", 0, 1000000,
					  &c->rate_limit, why, n, lane) ||
			       int_member(o, "rate_period_ms", 1, 86400000,
					  &c->rate_period_ms, why, n, lane)
		       ? -1
		       : 0;
}

static int parse(const char *text, struct lane_entry **out, size_t *count,
		 char *why, size_t n)
{
	*out = NULL;
	*count = 0;
	json_t *root = json_loads(text ? text : "{}", 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(why, n, "sched.lanes must be a group");
		return -1;
	}
	struct lane_entry *v = calloc(json_object_size(root) + 1, sizeof(*v));
	size_t k = 0;
	const char *lane;
	json_t *o;
	int rc = v ? 0 : -1;
	json_object_foreach(root, lane, o) {
		if (rc || parse_one(lane, o, &v[k].conf, why, n)) {
			rc = -1;
			break;
		}
		if ((v[k].name = strdup(lane)) == NULL) {
			rc = -1;
			break;
		}
		k++;
	}
	json_decref(root);
	if (rc) {
		for (size_t i = 0; v && i < k; i++)
			free(v[i].name);
		free(v);
		return -1;
	}
	*out = v;
	*count = k;
	return 0;
}

int bg_lanes_check(const char *lanes_json, char *why, size_t n)
{
	struct lane_entry *v;
	size_t count;
	if (parse(lanes_json, &v, &count, why, n))
		return -1;
	for (size_t i = 0; i < count; i++)
		free(v[i].name);
	free(v);
	return 0;
}

static void refresh(const struct bg_config *cfg)
{
	const char *json = cfg->sched_lanes_json ? cfg->sched_lanes_json : "{}";
	/* by content: a reloaded configuration may reuse the addresses */
	if (parsed.json == NULL || strcmp(parsed.json, json) != 0) {
		for (size_t i = 0; i < parsed.n; i++)
			free(parsed.v[i].name);
		free(parsed.v);
		parsed.v = NULL;
		parsed.n = 0;
		char why[256];
		if (parse(cfg->sched_lanes_json, &parsed.v, &parsed.n, why,
			  sizeof(why)) != 0) {
			parsed.v = NULL; /* checked at load: not reached */
			parsed.n = 0;
		}
		free(parsed.json);
		parsed.json = strdup(json);
	}
}

size_t bg_lanes_count(const struct bg_config *cfg)
{
	refresh(cfg);
	return parsed.n;
}

const struct bg_lane_conf *bg_lane_conf_at(const struct bg_config *cfg,
					   size_t i, const char **name)
{
	refresh(cfg);
	*name = parsed.v[i].name;
	return &parsed.v[i].conf;
}

const struct bg_lane_conf *bg_lane_conf(const struct bg_config *cfg,
					const char *name)
{
	refresh(cfg);
	for (size_t i = 0; i < parsed.n; i++)
		if (strcmp(parsed.v[i].name, name) == 0)
			return &parsed.v[i].conf;
	return &defaults;
}
