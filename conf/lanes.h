/* conf/lanes.h - each lane's settings (sched.lanes, docs/scheduling.md). */
#ifndef BG_CONF_LANES_H
#define BG_CONF_LANES_H

#include <stddef.h>

struct bg_config;

/* One lane's settings; a lane not in sched.lanes has the defaults
 * (weight 1, no limits). */
struct bg_lane_conf {
	int weight;	       /* share of the pool while lanes compete */
	int max_running;       /* on this worker; 0 = no limit */
	int fleet_max_running; /* across the fleet; 0 = no limit */
	int rate_limit;	       /* starts per rate_period_ms; 0 = none */
	int rate_period_ms;
};

/* The settings of lane `name` under cfg (parsed once per configuration:
 * a reload is seen at the next call). Never NULL. */
const struct bg_lane_conf *bg_lane_conf(const struct bg_config *cfg,
					const char *name);

/* The lanes sched.lanes names: their number, and the i-th with its
 * name. */
size_t bg_lanes_count(const struct bg_config *cfg);
const struct bg_lane_conf *bg_lane_conf_at(const struct bg_config *cfg,
					   size_t i, const char **name);

/* Check sched.lanes (bygated -t and reload): 0, or -1 with why. */
int bg_lanes_check(const char *lanes_json, char *why, size_t n);

#endif
