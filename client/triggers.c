/* client/triggers.c - the fleet-wide state of bygated's timer and webhook
 * triggers (docs/client.md "Triggers"): read every trigger's hash, pause
 * and resume one, ask for a manual fire and wait for a bygated's answer;
 * and the table and JSON `bygate triggers` prints. bygated writes most of
 * the hash; this side writes only paused* and fire_requests. */
#include "client/client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRE_POLL_MS 50
#define FIRE_TIMEOUT_MS 10000
#define COL_MAX 40 /* bytes of a name, agent type or schedule shown */

#define OFF(m) offsetof(struct bg_client_trigger, m)

/* Every string member, for allocation and release. */
static const size_t str_members[] = {
	OFF(name),
	OFF(kind),
	OFF(agent_type),
	OFF(cron),
	OFF(path),
	OFF(missed),
	OFF(session),
	OFF(def_by),
	OFF(paused_by),
	OFF(last_message_id),
	OFF(last_execution_id),
	OFF(last_session_id),
	OFF(last_outcome),
};

/* The hash fields read as they are: a string or a number member. */
static const struct {
	const char *field;
	size_t off;
	bool str;
} hash_fields[] = {
	{ "def_by", OFF(def_by), true },
	{ "def_at_ms", OFF(def_at_ms), false },
	{ "paused_at_ms", OFF(paused_at_ms), false },
	{ "paused_by", OFF(paused_by), true },
	{ "next_ms", OFF(next_ms), false },
	{ "claimed_ms", OFF(claimed_ms), false },
	{ "last_fire_ms", OFF(last_fire_ms), false },
	{ "last_message_id", OFF(last_message_id), true },
	{ "last_execution_id", OFF(last_execution_id), true },
	{ "last_session_id", OFF(last_session_id), true },
	{ "last_outcome", OFF(last_outcome), true },
	{ "fires", OFF(fires), false },
	{ "skipped_running", OFF(skipped_running), false },
	{ "skipped_paused", OFF(skipped_paused), false },
	{ "missed", OFF(missed_fires), false },
	{ "duplicates", OFF(duplicates), false },
	{ "fire_requests", OFF(fire_requests), false },
	{ "fire_done", OFF(fire_done), false },
};

static char **str_at(struct bg_client_trigger *t, size_t off)
{
	return (char **)((char *)t + off);
}

static long long *num_at(struct bg_client_trigger *t, size_t off)
{
	return (long long *)((char *)t + off);
}

/* A whole decimal number, else 0. */
static long long number(const char *s, size_t len)
{
	char buf[32], *end;
	if (len == 0 || len >= sizeof buf)
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	return errno || *end ? 0 : v;
}

static int set_str(struct bg_client_trigger *t, size_t off, const char *s,
		   size_t len)
{
	char *copy = strndup(s, len);
	if (copy == NULL)
		return -ENOMEM;
	free(*str_at(t, off));
	*str_at(t, off) = copy;
	return 0;
}

static int set_jstr(struct bg_client_trigger *t, size_t off, const json_t *o,
		    const char *key)
{
	const char *s = bg_client_jstr(o, key);
	return set_str(t, off, s, strlen(s));
}

/* The members of the `def` JSON. */
static int read_def(struct bg_client_trigger *t, const char *s, size_t len)
{
	json_t *def = json_loadb(s, len, 0, NULL);
	int rc = 0;
	if (json_is_object(def)) {
		rc = set_jstr(t, OFF(kind), def, "kind");
		rc = rc ? rc : set_jstr(t, OFF(agent_type), def, "agent_type");
		rc = rc ? rc : set_jstr(t, OFF(cron), def, "cron");
		rc = rc ? rc : set_jstr(t, OFF(path), def, "path");
		rc = rc ? rc : set_jstr(t, OFF(missed), def, "missed");
		rc = rc ? rc : set_jstr(t, OFF(session), def, "session");
		t->every_ms = bg_client_jint(def, "every_ms");
		t->max_running = bg_client_jint(def, "max_running");
	}
	json_decref(def);
	return rc;
}

/* One field of the hash into t. */
static int read_field(struct bg_client_trigger *t, const redisReply *k,
		      const redisReply *v)
{
	if (!bg_client_reply_is_str(k) || !bg_client_reply_is_str(v))
		return 0;
	if (!strcmp(k->str, "def"))
		return read_def(t, v->str, v->len);
	if (!strcmp(k->str, "paused")) {
		t->paused = v->len == 1 && v->str[0] == '1';
		return 0;
	}
	for (size_t i = 0; i < sizeof hash_fields / sizeof *hash_fields; i++) {
		if (strcmp(k->str, hash_fields[i].field))
			continue;
		if (hash_fields[i].str)
			return set_str(t, hash_fields[i].off, v->str, v->len);
		*num_at(t, hash_fields[i].off) = number(v->str, v->len);
		return 0;
	}
	return 0;
}

/* HGETALL and ZCARD of the trigger called t->name. */
static int read_trigger(struct bg_client *c, struct bg_client_trigger *t)
{
	struct bg_buf key = { 0 }, active = { 0 };
	redisReply *r[2] = { NULL, NULL };
	int rc = bg_client_key(c, &key, BG_KEY_TRIGGER, t->name);
	if (rc == 0)
		rc = bg_client_key(c, &active, BG_KEY_TRIGGER_ACTIVE, t->name);
	const char *hgetall[] = { "HGETALL", key.p };
	const char *zcard[] = { "ZCARD", active.p };
	const char **argv[] = { hgetall, zcard };
	const int argc[] = { 2, 2 };
	const size_t *lens[] = { NULL, NULL };
	if (rc == 0)
		rc = bg_client_pipeline(c, r, 2, argc, argv, lens);
	if (rc == 0 && (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements % 2 ||
			r[1]->type != REDIS_REPLY_INTEGER))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "HGETALL/ZCARD of trigger %s: unexpected "
				    "reply",
				    t->name);
	for (size_t i = 0; rc == 0 && i < r[0]->elements; i += 2)
		rc = read_field(t, r[0]->element[i], r[0]->element[i + 1]);
	if (rc == 0)
		t->active = r[1]->integer;
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	bg_buf_free(&key);
	bg_buf_free(&active);
	return rc;
}

void bg_client_triggers_free(struct bg_client_trigger *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		for (size_t k = 0; k < sizeof str_members / sizeof *str_members;
		     k++)
			free(*str_at(&v[i], str_members[k]));
	free(v);
}

int bg_client_triggers_list(struct bg_client *c, struct bg_client_trigger **out,
			    size_t *n)
{
	struct bg_client_strs names = { 0 };
	struct bg_buf key = { 0 };
	struct bg_client_trigger *v = NULL;
	size_t got = 0;
	c->errmsg[0] = '\0';
	*out = NULL;
	*n = 0;
	int rc = bg_client_key0(c, &key, BG_KEY_TRIGGERS);
	if (rc == 0)
		rc = bg_client_smembers(c, key.p, &names);
	bg_client_strs_sort(&names);
	/* "" (sorted first) names no trigger: it has no key */
	size_t skip = names.n > 0 && names.v[0][0] == '\0';
	size_t want = names.n - skip;
	if (rc == 0 && want > 0 && (v = calloc(want, sizeof *v)) == NULL)
		rc = -ENOMEM;
	for (; rc == 0 && got < want; got++) {
		const char *name = names.v[skip + got];
		for (size_t k = 0;
		     rc == 0 && k < sizeof str_members / sizeof *str_members;
		     k++)
			rc = set_str(&v[got], str_members[k], "", 0);
		if (rc == 0)
			rc = set_str(&v[got], OFF(name), name, strlen(name));
		if (rc == 0)
			rc = read_trigger(c, &v[got]);
	}
	if (rc == -ENOMEM)
		bg_client_fail(c, rc, "out of memory");
	bg_client_strs_free(&names);
	bg_buf_free(&key);
	if (rc) {
		bg_client_triggers_free(v, got);
		return rc;
	}
	*out = v;
	*n = got;
	return 0;
}

/* -ENOENT, with errmsg saying so, unless name is in the SET of names. */
static int known(struct bg_client *c, const char *name)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	if (name == NULL || name[0] == '\0')
		return bg_client_fail(c, -EINVAL, "a trigger name is required");
	int rc = bg_client_key0(c, &key, BG_KEY_TRIGGERS);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "SISMEMBER", key.p, name, NULL);
	if (rc == 0 && (r->type != REDIS_REPLY_INTEGER || r->integer != 1))
		rc = bg_client_fail(c, -ENOENT,
				    "no trigger named \"%s\": no bygated has "
				    "published it (triggers.timers, "
				    "triggers.webhooks); `bygate triggers` "
				    "lists those known",
				    name);
	freeReplyObject(r);
	bg_buf_free(&key);
	return rc;
}

int bg_client_trigger_pause(struct bg_client *c, const char *name, bool paused,
			    const char *who)
{
	struct bg_buf key = { 0 };
	redisReply *exec = NULL;
	char now[24];
	c->errmsg[0] = '\0';
	int rc = known(c, name);
	if (rc)
		return rc;
	snprintf(now, sizeof now, "%" PRId64, bg_client_now_ms());
	rc = bg_client_key(c, &key, BG_KEY_TRIGGER, name);
	const char *pause[] = { "HSET",
				key.p,
				"paused",
				"1",
				"paused_at_ms",
				now,
				"paused_by",
				who && who[0] ? who : "client",
				NULL };
	const char *resume[] = { "HSET", key.p, "paused", "0", NULL };
	const char *forget[] = { "HDEL", key.p, "paused_at_ms", "paused_by",
				 NULL };
	const char *const *on[] = { pause }, *const *
						     off[] = { resume, forget };
	if (rc == 0)
		rc = bg_client_transact(c, paused ? "pause" : "resume",
					paused ? 1 : 2, paused ? on : off,
					&exec);
	freeReplyObject(exec);
	bg_buf_free(&key);
	return rc;
}

/* manual:<n> as written by bygated into out. */
static void read_answer(struct bg_client_fire_result *out, const char *s)
{
	const char *sp = strchr(s, ' ');
	size_t word = sp ? (size_t)(sp - s) : strlen(s);
	const char *rest = sp ? sp + 1 : "";
	if (word == 5 && !strncmp(s, "fired", 5)) {
		snprintf(out->outcome, sizeof out->outcome, "fired");
		snprintf(out->message_id, sizeof out->message_id, "%s", rest);
	} else if (!strcmp(s, "skipped_running") ||
		   !strcmp(s, "skipped_paused")) {
		snprintf(out->outcome, sizeof out->outcome, "%s", s);
	} else if (word == 5 && !strncmp(s, "error", 5)) {
		snprintf(out->outcome, sizeof out->outcome, "error");
		snprintf(out->error, sizeof out->error, "%s", rest);
	} else {
		snprintf(out->outcome, sizeof out->outcome, "error");
		snprintf(out->error, sizeof out->error,
			 "unexpected answer \"%.400s\"", s);
	}
}

/* HMGET fire_done manual:<n>: *answered when manual:<n> is set. */
static int poll_answer(struct bg_client *c, const char *key, const char *field,
		       struct bg_client_fire_result *out, bool *answered,
		       long long *done)
{
	redisReply *r = NULL;
	int rc = bg_client_cmd(c, &r, "HMGET", key, "fire_done", field, NULL);
	if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "HMGET: unexpected reply");
	if (rc == 0 && bg_client_reply_is_str(r->element[0]))
		*done = number(r->element[0]->str, r->element[0]->len);
	*answered = rc == 0 && bg_client_reply_is_str(r->element[1]);
	if (*answered)
		read_answer(out, r->element[1]->str);
	freeReplyObject(r);
	return rc;
}

int bg_client_trigger_fire(struct bg_client *c, const char *name,
			   int timeout_ms, struct bg_client_fire_result *out)
{
	struct bg_buf key = { 0 };
	redisReply *r = NULL;
	char field[32];
	bool answered = false;
	long long done = 0;
	memset(out, 0, sizeof *out);
	c->errmsg[0] = '\0';
	int rc = known(c, name);
	if (rc)
		return rc;
	if (timeout_ms <= 0)
		timeout_ms = FIRE_TIMEOUT_MS;
	rc = bg_client_key(c, &key, BG_KEY_TRIGGER, name);
	if (rc == 0)
		rc = bg_client_cmd(c, &r, "HINCRBY", key.p, "fire_requests",
				   "1", NULL);
	if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
		rc = bg_client_fail(c, BG_CLIENT_EPROTO,
				    "HINCRBY: unexpected reply");
	if (rc == 0)
		out->request = r->integer;
	freeReplyObject(r);
	snprintf(field, sizeof field, "manual:%lld", out->request);
	int64_t deadline = bg_client_mono_ms() + timeout_ms;
	while (rc == 0) {
		rc = poll_answer(c, key.p, field, out, &answered, &done);
		int64_t left = deadline - bg_client_mono_ms();
		if (rc || answered || left <= 0)
			break;
		bg_client_sleep_ms(left < FIRE_POLL_MS ? (int)left
						       : FIRE_POLL_MS);
	}
	bg_buf_free(&key);
	if (rc || answered)
		return rc;
	if (done >= out->request)
		return bg_client_fail(c, -ETIMEDOUT,
				      "fire request #%lld of trigger %s was "
				      "handled (fire_done %lld) but no "
				      "outcome was recorded",
				      out->request, name, done);
	return bg_client_fail(c, -ETIMEDOUT,
			      "no bygated with trigger %s answered fire "
			      "request #%lld within %d ms; the request stays "
			      "queued: the first bygated with this trigger "
			      "to poll will still fire it, once",
			      name, out->request, timeout_ms);
}

/* ---- what `bygate triggers` prints ------------------------------------ */

int bg_client_duration_text(char *buf, size_t cap, long long ms)
{
	static const struct {
		const char *unit;
		long long ms;
	} units[] = { { "d", 86400000 },
		      { "h", 3600000 },
		      { "m", 60000 },
		      { "s", 1000 },
		      { "ms", 1 } };
	size_t n = 0;
	buf[0] = '\0';
	if (ms <= 0)
		return snprintf(buf, cap, "0s");
	for (size_t i = 0; i < sizeof units / sizeof *units && ms > 0; i++) {
		if (ms < units[i].ms)
			continue;
		n += snprintf(buf + n, n < cap ? cap - n : 0, "%lld%s",
			      ms / units[i].ms, units[i].unit);
		ms %= units[i].ms;
	}
	return (int)n;
}

void bg_client_relative_text(char *buf, size_t cap, long long ms,
			     int64_t now_ms)
{
	static const struct {
		const char *unit;
		long long s;
	} units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	if (ms <= 0) {
		snprintf(buf, cap, "-");
		return;
	}
	long long d = ms - now_ms, s = (d < 0 ? -d : d) / 1000;
	size_t n = 0, shown = 0;
	if (s == 0) {
		snprintf(buf, cap, "now");
		return;
	}
	if (d > 0)
		n += snprintf(buf, cap, "in ");
	for (size_t i = 0; i < sizeof units / sizeof *units && shown < 2; i++) {
		if (s < units[i].s && shown == 0)
			continue;
		if (s / units[i].s || shown == 0)
			n += snprintf(buf + n, n < cap ? cap - n : 0, "%lld%s",
				      s / units[i].s, units[i].unit);
		s %= units[i].s;
		shown++;
	}
	if (d < 0)
		snprintf(buf + n, n < cap ? cap - n : 0, " ago");
}

/* The SCHEDULE cell: "every 30s", the cron expression, "POST /hooks/x". */
static void schedule_text(char *buf, size_t cap,
			  const struct bg_client_trigger *t)
{
	char every[64];
	if (t->cron[0])
		snprintf(buf, cap, "%s", t->cron);
	else if (t->every_ms > 0) {
		bg_client_duration_text(every, sizeof every, t->every_ms);
		snprintf(buf, cap, "every %s", every);
	} else if (t->path[0])
		snprintf(buf, cap, "POST %s", t->path);
	else
		snprintf(buf, cap, "-");
}

static json_t *time_or_null(long long ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

static json_t *str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

json_t *bg_client_trigger_json(const struct bg_client_trigger *t)
{
	char schedule[256];
	schedule_text(schedule, sizeof schedule, t);
	json_t *counts = json_pack("{s:I, s:I, s:I, s:I, s:I}", "fires",
				   (json_int_t)t->fires, "skipped_running",
				   (json_int_t)t->skipped_running,
				   "skipped_paused",
				   (json_int_t)t->skipped_paused, "missed",
				   (json_int_t)t->missed_fires, "duplicates",
				   (json_int_t)t->duplicates);
	json_t *o = json_pack(
		"{s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:I, s:s?, s:s?, "
		"s:s?, s:o}",
		"name", t->name, "kind", t->kind, "agent_type", t->agent_type,
		"schedule", schedule, "every_ms",
		t->every_ms > 0 ? json_integer(t->every_ms) : json_null(),
		"cron", str_or_null(t->cron), "path", str_or_null(t->path),
		"max_running", (json_int_t)t->max_running, "missed", t->missed,
		"session", t->session, "def_by", t->def_by, "def_at_ms",
		time_or_null(t->def_at_ms));
	json_t *state = json_pack(
		"{s:b, s:o, s:s?, s:o, s:o, s:o, s:s?, s:s?, s:s?, s:s?, s:o, "
		"s:I, s:I, s:I}",
		"paused", (int)t->paused, "paused_at_ms",
		time_or_null(t->paused_at_ms), "paused_by", t->paused_by,
		"next_ms", time_or_null(t->next_ms), "claimed_ms",
		time_or_null(t->claimed_ms), "last_fire_ms",
		time_or_null(t->last_fire_ms), "last_message_id",
		t->last_message_id, "last_execution_id", t->last_execution_id,
		"last_session_id", t->last_session_id, "last_outcome",
		t->last_outcome, "counts", counts, "fire_requests",
		(json_int_t)t->fire_requests, "fire_done",
		(json_int_t)t->fire_done, "active", (json_int_t)t->active);
	if (o == NULL || state == NULL || json_object_update(o, state)) {
		json_decref(o);
		o = NULL;
	}
	json_decref(state);
	return o;
}

/* Widest shown value of a string member over the rows, at least min. */
static size_t width_of(const struct bg_client_trigger *v, size_t n, size_t off,
		       size_t min)
{
	for (size_t i = 0; i < n; i++) {
		const char *s = *(char *const *)((const char *)&v[i] + off);
		size_t w = bg_client_text_width(s[0] ? s : "-", COL_MAX);
		min = w > min ? w : min;
	}
	return min;
}

static int row(struct bg_buf *out, const struct bg_client_trigger *t,
	       const size_t *w, int64_t now_ms)
{
	char sched[256], next[40], last[40], active[48];
	schedule_text(sched, sizeof sched, t);
	bg_client_relative_text(next, sizeof next, t->next_ms, now_ms);
	bg_client_relative_text(last, sizeof last, t->last_fire_ms, now_ms);
	if (t->max_running > 0)
		snprintf(active, sizeof active, "%lld/%lld", t->active,
			 t->max_running);
	else
		snprintf(active, sizeof active, "%lld", t->active);
	int rc = bg_client_text_cell(out, t->name, COL_MAX, w[0]);
	rc = rc ? rc
		: bg_client_text_cell(out, t->kind[0] ? t->kind : "-", 16, 7);
	rc = rc ? rc
		: bg_client_text_cell(out,
				      t->agent_type[0] ? t->agent_type : "-",
				      COL_MAX, w[1]);
	rc = rc ? rc : bg_client_text_cell(out, sched, COL_MAX, w[2]);
	rc = rc ? rc : bg_client_text_cell(out, next, 16, 10);
	rc = rc ? rc : bg_client_text_cell(out, last, 16, 10);
	rc = rc ? rc
		: bg_client_text_cell(
			  out, t->last_outcome[0] ? t->last_outcome : "-", 20,
			  15);
	rc = rc ? rc : bg_client_text_cell(out, active, 48, 6);
	rc = rc ? rc : bg_client_text_cell(out, t->paused ? "yes" : "no", 6, 6);
	rc = rc ? rc
		: bg_buf_printf(out, "%5lld  %7lld", t->fires,
				t->skipped_running + t->skipped_paused +
					t->missed_fires);
	return rc ? rc : bg_client_text_end_row(out);
}

int bg_client_triggers_table(struct bg_buf *out,
			     const struct bg_client_trigger *v, size_t n,
			     int64_t now_ms)
{
	size_t w[3] = { width_of(v, n, OFF(name), 4),
			width_of(v, n, OFF(agent_type), 10), 8 };
	for (size_t i = 0; i < n; i++) {
		char sched[256];
		schedule_text(sched, sizeof sched, &v[i]);
		size_t k = bg_client_text_width(sched, COL_MAX);
		w[2] = k > w[2] ? k : w[2];
	}
	int rc = bg_client_text_cell(out, "NAME", COL_MAX, w[0]);
	rc = rc ? rc : bg_client_text_cell(out, "KIND", 16, 7);
	rc = rc ? rc : bg_client_text_cell(out, "AGENT_TYPE", COL_MAX, w[1]);
	rc = rc ? rc : bg_client_text_cell(out, "SCHEDULE", COL_MAX, w[2]);
	rc = rc ? rc : bg_client_text_cell(out, "NEXT", 16, 10);
	rc = rc ? rc : bg_client_text_cell(out, "LAST_FIRE", 16, 10);
	rc = rc ? rc : bg_client_text_cell(out, "LAST_OUTCOME", 20, 15);
	rc = rc ? rc : bg_client_text_cell(out, "ACTIVE", 48, 6);
	rc = rc ? rc : bg_client_text_cell(out, "PAUSED", 6, 6);
	rc = rc ? rc : bg_buf_printf(out, "%5s  %7s\n", "FIRES", "SKIPPED");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = row(out, &v[i], w, now_ms);
	if (rc == 0 && n == 0)
		rc = bg_buf_puts(out,
				 "(no trigger published: each bygated "
				 "publishes those of its triggers.timers and "
				 "triggers.webhooks)\n");
	return rc;
}
