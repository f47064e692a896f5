/* conf/triggers.c - triggers.timers and triggers.webhooks, parsed and
 * checked (see triggers.h). */
#include "conf/triggers.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cron.h"
#include "conf/config.h"

#define DEFAULT_MAX_BODY (1 << 20)
#define MAX_MAX_BODY (16 << 20)
#define ID_MAX 255 /* agent types, sessions, user codes: as the wire ids */

/* The parsed triggers of one configuration, with the strings they point
 * into. */
struct parsed {
	char *timers_json, *webhooks_json; /* the texts parsed */
	struct bg_trigger_conf *v;
	size_t n;
	json_t *keep[2]; /* the documents the strings point into */
	char **own;	 /* strings made here (JSON texts, secrets) */
	size_t n_own;
};

static struct parsed cache;

static void parsed_free(struct parsed *p)
{
	free(p->timers_json);
	free(p->webhooks_json);
	free(p->v);
	json_decref(p->keep[0]);
	json_decref(p->keep[1]);
	for (size_t i = 0; i < p->n_own; i++)
		free(p->own[i]);
	free(p->own);
	memset(p, 0, sizeof *p);
}

static const char *keep_str(struct parsed *p, char *s)
{
	if (s == NULL)
		return NULL;
	char **grown = realloc(p->own, (p->n_own + 1) * sizeof *grown);
	if (grown == NULL) {
		free(s);
		return NULL;
	}
	p->own = grown;
	p->own[p->n_own++] = s;
	return s;
}

int bg_duration_parse(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = { { "ms", 1 },	{ "s", 1000 },	   { "m", 60000 },
		      { "h", 3600000 }, { "d", 86400000 }, { "", 1000 } };
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || v <= 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > INT64_MAX / units[i].ms / 1000)
			return -1; /* beyond any sane period */
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

/* ---- one trigger ---- */

struct one {
	struct parsed *p;
	const char *name;
	const char *group; /* "timers" or "webhooks" */
	json_t *o;
	char *why;
	size_t n;
};

static int bad(struct one *x, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct one *x, const char *key, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(x->why, x->n, "triggers.%s.%s%s%s: %s", x->group, x->name,
		 key ? "." : "", key ? key : "", msg);
	return -1;
}

/* A string member: absent -> def; present must be a string of min..max
 * bytes without control characters. */
static int str_member(struct one *x, const char *key, const char *def,
		      size_t min, size_t max, const char **out)
{
	json_t *v = json_object_get(x->o, key);
	if (v == NULL) {
		*out = def;
		return def ? 0 : bad(x, key, "is required");
	}
	if (!json_is_string(v))
		return bad(x, key, "must be a string");
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len < min || len > max)
		return bad(x, key, "must be %zu to %zu bytes", min, max);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return bad(x, key, "holds a control character");
	*out = s;
	return 0;
}

static int int_member(struct one *x, const char *key, int64_t def, int64_t lo,
		      int64_t hi, int64_t *out)
{
	json_t *v = json_object_get(x->o, key);
	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return bad(x, key, "must be an integer in %lld..%lld",
			   (long long)lo, (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

static bool known_key(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static int check_keys(struct one *x, const char *const *keys, size_t n)
{
	const char *key;
	json_t *v;
	json_object_foreach(x->o, key, v) {
		if (known_key(key, keys, n))
			continue;
		char list[512];
		size_t off = 0;
		for (size_t i = 0; i < n && off < sizeof list; i++)
			off += snprintf(list + off, sizeof list - off, "%s%s",
					i ? ", " : "", keys[i]);
		return bad(x, key, "unknown key (known: %s)", list);
	}
	return 0;
}

/* The members every trigger has. */
static int common_members(struct one *x, struct bg_trigger_conf *t)
{
	int64_t max_running;
	if (str_member(x, "agent_type", NULL, 1, ID_MAX, &t->agent_type) ||
	    str_member(x, "session", "", 0, ID_MAX, &t->session) ||
	    str_member(x, "user_code", "", 0, ID_MAX, &t->user_code) ||
	    int_member(x, "max_running", 0, 0, 1000000, &max_running))
		return -1;
	t->max_running = (int)max_running;
	json_t *m = json_object_get(x->o, "metadata");
	if (m == NULL) {
		t->metadata = "{}";
		return 0;
	}
	if (!json_is_object(m))
		return bad(x, "metadata", "must be a group");
	t->metadata = keep_str(x->p, json_dumps(m, JSON_COMPACT));
	return t->metadata ? 0 : bad(x, "metadata", "out of memory");
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

static int timer_members(struct one *x, struct bg_trigger_conf *t)
{
	static const char *const keys[] = {
		"agent_type", "content", "every",     "cron",	  "max_running",
		"missed",     "session", "user_code", "metadata",
	};
	if (check_keys(x, keys, sizeof keys / sizeof keys[0]) ||
	    common_members(x, t))
		return -1;
	json_t *c = json_object_get(x->o, "content");
	if (c == NULL)
		return bad(x, "content", "is required");
	if (json_is_string(c)) {
		t->content = json_string_value(c);
		if (blank(t->content))
			return bad(x, "content", "is blank");
	} else if ((json_is_object(c) || json_is_array(c)) &&
		   (json_object_size(c) || json_array_size(c))) {
		t->content = keep_str(x->p, json_dumps(c, JSON_COMPACT));
		t->content_is_json = true;
		if (t->content == NULL)
			return bad(x, "content", "out of memory");
	} else {
		return bad(x, "content",
			   "must be text or a non-empty group or list");
	}
	json_t *every = json_object_get(x->o, "every");
	json_t *cron = json_object_get(x->o, "cron");
	if ((every == NULL) == (cron == NULL))
		return bad(x, NULL, "give exactly one of every and cron");
	t->cron = "";
	if (every && json_is_integer(every) && json_integer_value(every) > 0)
		t->every_ms = json_integer_value(every) * 1000;
	else if (every &&
		 (!json_is_string(every) ||
		  bg_duration_parse(json_string_value(every), &t->every_ms)))
		return bad(x, "every",
			   "must be a duration such as \"250ms\", \"30s\", "
			   "\"5m\", \"2h\" or \"1d\"");
	if (every && (t->every_ms < 100 || t->every_ms > 366LL * 86400000))
		return bad(x, "every", "must be 100ms to 366d");
	if (cron) {
		struct bg_cron cc;
		char cwhy[160];
		if (!json_is_string(cron))
			return bad(x, "cron", "must be a string");
		t->cron = json_string_value(cron);
		if (bg_cron_parse(t->cron, &cc, cwhy, sizeof cwhy))
			return bad(x, "cron", "%s", cwhy);
	}
	const char *missed;
	if (str_member(x, "missed", "skip", 1, 16, &missed))
		return -1;
	if (strcmp(missed, "skip") == 0)
		t->missed = BG_MISSED_SKIP;
	else if (strcmp(missed, "run_once") == 0)
		t->missed = BG_MISSED_RUN_ONCE;
	else
		return bad(x, "missed", "must be \"skip\" or \"run_once\"");
	return 0;
}

/* A header name as RFC 9110 tokens allow. */
static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) &&
		    !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

static int webhook_members(struct one *x, struct bg_trigger_conf *t)
{
	static const char *const keys[] = {
		"agent_type",	    "secret",
		"secret_env",	    "max_body_bytes",
		"tolerance_s",	    "signature_header",
		"timestamp_header", "idempotency_header",
		"max_running",	    "session",
		"user_code",	    "metadata",
	};
	int64_t body, tol;
	if (check_keys(x, keys, sizeof keys / sizeof keys[0]) ||
	    common_members(x, t) ||
	    int_member(x, "max_body_bytes", DEFAULT_MAX_BODY, 1, MAX_MAX_BODY,
		       &body) ||
	    int_member(x, "tolerance_s", 300, 1, 86400, &tol) ||
	    str_member(x, "signature_header", "X-Bygate-Signature", 1, 128,
		       &t->signature_header) ||
	    str_member(x, "timestamp_header", "X-Bygate-Timestamp", 1, 128,
		       &t->timestamp_header) ||
	    str_member(x, "idempotency_header", "Idempotency-Key", 0, 128,
		       &t->idempotency_header) ||
	    str_member(x, "secret", "", 0, 4096, &t->secret) ||
	    str_member(x, "secret_env", "", 0, 128, &t->secret_env))
		return -1;
	t->max_body_bytes = body;
	t->tolerance_s = (int)tol;
	if (!header_name_ok(t->signature_header) ||
	    !header_name_ok(t->timestamp_header) ||
	    (t->idempotency_header[0] &&
	     !header_name_ok(t->idempotency_header)))
		return bad(x, NULL, "a header name is not a valid token");
	if (!t->secret[0] == !t->secret_env[0])
		return bad(x, NULL,
			   "give exactly one of secret and "
			   "secret_env");
	if (t->secret_env[0]) {
		const char *v = getenv(t->secret_env);
		if (v == NULL || v[0] == '\0')
			return bad(x, "secret_env",
				   "the environment variable %s is not set "
				   "or empty",
				   t->secret_env);
		t->secret = keep_str(x->p, strdup(v));
		if (t->secret == NULL)
			return bad(x, "secret_env", "out of memory");
	}
	if (strlen(t->secret) < 16)
		return bad(x, NULL, "the secret must be at least 16 bytes");
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > BG_TRIGGER_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

static int cmp_name(const void *a, const void *b)
{
	const struct bg_trigger_conf *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind == BG_TRIGGER_TIMER ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int parse_group(struct parsed *p, const char *json, int k, char *why,
		       size_t n)
{
	const char *group = k == 0 ? "timers" : "webhooks";
	json_t *doc = json_loads(json && json[0] ? json : "{}", 0, NULL);
	p->keep[k] = doc;
	if (!json_is_object(doc)) {
		snprintf(why, n, "triggers.%s must be a group", group);
		return -1;
	}
	const char *name;
	json_t *o;
	json_object_foreach(doc, name, o) {
		struct one x = { p, name, group, o, why, n };
		if (!name_ok(name))
			return bad(&x, NULL,
				   "a trigger name is 1 to %d of A-Z a-z 0-9 "
				   "_ . -",
				   BG_TRIGGER_NAME_MAX);
		if (!json_is_object(o))
			return bad(&x, NULL, "must be a group");
		for (size_t i = 0; i < p->n; i++)
			if (strcmp(p->v[i].name, name) == 0)
				return bad(&x, NULL,
					   "the name is also a timer's: "
					   "trigger names are one space");
		struct bg_trigger_conf *grown =
			realloc(p->v, (p->n + 1) * sizeof *grown);
		if (grown == NULL)
			return bad(&x, NULL, "out of memory");
		p->v = grown;
		struct bg_trigger_conf *t = &p->v[p->n++];
		memset(t, 0, sizeof *t);
		t->name = name;
		t->kind = k == 0 ? BG_TRIGGER_TIMER : BG_TRIGGER_WEBHOOK;
		t->content = "";
		t->cron = "";
		t->secret = t->secret_env = "";
		t->signature_header = t->timestamp_header = "";
		t->idempotency_header = "";
		if (k == 0 ? timer_members(&x, t) : webhook_members(&x, t))
			return -1;
	}
	return 0;
}

static int parse(const struct bg_config *cfg, struct parsed *p, char *why,
		 size_t n)
{
	memset(p, 0, sizeof *p);
	p->timers_json = strdup(
		cfg->triggers_timers_json ? cfg->triggers_timers_json : "{}");
	p->webhooks_json = strdup(cfg->triggers_webhooks_json
					  ? cfg->triggers_webhooks_json
					  : "{}");
	if (p->timers_json == NULL || p->webhooks_json == NULL) {
		snprintf(why, n, "triggers: out of memory");
		return -1;
	}
	if (parse_group(p, p->timers_json, 0, why, n) ||
	    parse_group(p, p->webhooks_json, 1, why, n))
		return -1;
	if (p->n)
		qsort(p->v, p->n, sizeof *p->v, cmp_name);
	return 0;
}

static bool same_texts(const struct parsed *p, const struct bg_config *cfg)
{
	const char *tj = cfg->triggers_timers_json ? cfg->triggers_timers_json
						   : "{}";
	const char *wj = cfg->triggers_webhooks_json
				 ? cfg->triggers_webhooks_json
				 : "{}";
	return p->timers_json && strcmp(p->timers_json, tj) == 0 &&
	       strcmp(p->webhooks_json, wj) == 0;
}

const struct bg_trigger_conf *bg_triggers(const struct bg_config *cfg,
					  size_t *n)
{
	if (!same_texts(&cache, cfg)) {
		char why[384];
		parsed_free(&cache);
		if (parse(cfg, &cache, why, sizeof why)) {
			/* checked at load: only memory can fail here */
			parsed_free(&cache);
			*n = 0;
			return NULL;
		}
	}
	*n = cache.n;
	return cache.v;
}

const struct bg_trigger_conf *bg_trigger_find(const struct bg_config *cfg,
					      const char *name)
{
	size_t n;
	const struct bg_trigger_conf *v = bg_triggers(cfg, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

int bg_triggers_check(const struct bg_config *cfg, char *why, size_t n)
{
	struct parsed p;
	int rc = parse(cfg, &p, why, n);
	parsed_free(&p);
	return rc;
}
