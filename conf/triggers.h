/* conf/triggers.h - the timer and webhook triggers of triggers.timers and
 * triggers.webhooks (docs/triggers.md), parsed and checked. */
#ifndef BG_CONF_TRIGGERS_H
#define BG_CONF_TRIGGERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bg_config;

enum bg_trigger_kind { BG_TRIGGER_TIMER, BG_TRIGGER_WEBHOOK };

/* What a timer does with fire times that passed while no bygated ran. */
enum bg_trigger_missed {
	BG_MISSED_SKIP,	    /* forget them; the next future one fires */
	BG_MISSED_RUN_ONCE, /* one fire for the latest missed time, then on */
};

#define BG_TRIGGER_NAME_MAX 64 /* [A-Za-z0-9_.-], NUL not included */

struct bg_trigger_conf {
	const char *name;
	enum bg_trigger_kind kind;
	const char *agent_type;
	const char *session;   /* "" = named after the trigger and fire */
	const char *user_code; /* "" = none */
	const char *metadata;  /* JSON object text, "{}" when not given */
	int max_running;       /* runs active across the fleet; 0 = no cap */

	/* timers */
	const char *content;  /* the ASK's content: text, or JSON text */
	bool content_is_json; /* content was given as a group or list */
	int64_t every_ms;     /* > 0, or 0 when cron is given */
	const char *cron;     /* 5-field cron (UTC), "" when every is */
	enum bg_trigger_missed missed;

	/* webhooks */
	const char *secret;		/* resolved (secret or secret_env) */
	const char *secret_env;		/* the variable it came from, or "" */
	int64_t max_body_bytes;		/* default 1 MiB */
	int tolerance_s;		/* timestamp window, default 300 */
	const char *signature_header;	/* default "X-Bygate-Signature" */
	const char *timestamp_header;	/* default "X-Bygate-Timestamp" */
	const char *idempotency_header; /* default "Idempotency-Key" */
};

/* The triggers of cfg, timers first then webhooks, each group in name
 * order (parsed once per configuration; NULL with *n = 0 when there are
 * none or they do not parse: bg_triggers_check says why). */
const struct bg_trigger_conf *bg_triggers(const struct bg_config *cfg,
					  size_t *n);
/* The trigger called name, or NULL. */
const struct bg_trigger_conf *bg_trigger_find(const struct bg_config *cfg,
					      const char *name);
/* Check triggers.timers and triggers.webhooks (bygated -t and reload):
 * 0, or -1 with why naming the trigger and the key. */
int bg_triggers_check(const struct bg_config *cfg, char *why, size_t n);

/* "250ms", "30s", "5m", "2h", "1d" (or a bare number of seconds) into
 * milliseconds: 0, or -1 when s is not such a duration or is <= 0. */
int bg_duration_parse(const char *s, int64_t *ms);

#endif
