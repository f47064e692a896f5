/* supervisor/served.c - agent_types_served: which of a list of agent
 * types no online worker serves, by the check a FAIL_FAST call_agent
 * makes (route_io.c, WIRE 5.2): the type's members set, then their
 * online leases. An agent type this bygated serves now counts as served
 * without a read. Live reads on the control connection: every SMEMBERS at
 * once, then one MGET of the leases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "supervisor/cancel_call.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/outbox.h"
#include "wire/keys.h"
#include "wire/route.h"

#define S(s) bg_str_c(s)
#define SERVED_MAX_TYPES 1000
#define SERVED_MAX_NAME 128

struct served;

/* One agent type of the list and its members. */
struct type {
	struct served *x;
	const char *name; /* in x->args */
	bool served;
	char **members;
	size_t n_members;
};

struct served {
	struct bg_daemon *d;
	uint64_t tag;
	uint32_t run_id;
	char id[32];
	json_t *args;
	struct type *types;
	size_t n;
	int pending;	/* replies still due */
	bool failed;	/* a read failed: the answer is an error */
	char **workers; /* the members asked for, for the MGET */
	size_t n_workers;
};

static void served_free(struct served *x)
{
	for (size_t i = 0; i < x->n; i++) {
		for (size_t k = 0; k < x->types[i].n_members; k++)
			free(x->types[i].members[k]);
		free(x->types[i].members);
	}
	free(x->types);
	free(x->workers);
	json_decref(x->args);
	free(x);
}

/* Served here: configured, its handler up, not denied, not suspended. */
static bool served_here(const struct bg_daemon *d, const char *name)
{
	if (bg_control_suspended(d))
		return false;
	for (int i = 0; i < d->cfg->n_agent_types; i++)
		if (strcmp(d->cfg->agent_types[i].name, name) == 0)
			return !bg_control_unserved(d, i) && !d->denied[i];
	return false;
}

static void answer(struct served *x)
{
	struct bg_job *t = bg_outbox_task_of(x->d, x->tag, x->run_id);
	if (t && x->failed) {
		bg_outbox_reply_error(x->d, t, x->id, "UNAVAILABLE",
				      "Redis unavailable");
	} else if (t) {
		json_t *un = json_array();
		for (size_t i = 0; i < x->n; i++)
			if (!x->types[i].served)
				json_array_append_new(
					un, json_string(x->types[i].name));
		bg_outbox_reply(x->d, t, x->id,
				json_pack("{s:o}", "unserved", un));
	}
	served_free(x);
}

/* MGET reply: each lease in the order of x->workers. */
static void on_leases(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct served *x = priv;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != x->n_workers) {
		x->failed = true;
		answer(x);
		return;
	}
	for (size_t w = 0; w < x->n_workers; w++) {
		const redisReply *v = r->element[w];
		if (v->type != REDIS_REPLY_STRING ||
		    !bg_route_lease_online(v->str, v->len))
			continue;
		for (size_t i = 0; i < x->n; i++)
			for (size_t k = 0; k < x->types[i].n_members; k++)
				if (strcmp(x->types[i].members[k],
					   x->workers[w]) == 0)
					x->types[i].served = true;
	}
	answer(x);
}

/* Every members set read: one MGET of the distinct members' leases. */
static void read_leases(struct served *x)
{
	size_t total = 0;
	for (size_t i = 0; i < x->n; i++)
		total += x->types[i].n_members;
	if (x->failed || total == 0) {
		answer(x);
		return;
	}
	x->workers = calloc(total, sizeof(*x->workers));
	const char **argv = calloc(total + 2, sizeof(*argv));
	char **keys = calloc(total, sizeof(*keys));
	bool ok = x->workers && argv && keys;
	for (size_t i = 0; ok && i < x->n; i++)
		for (size_t k = 0; k < x->types[i].n_members; k++) {
			const char *w = x->types[i].members[k];
			bool dup = false;
			for (size_t j = 0; j < x->n_workers && !dup; j++)
				dup = strcmp(x->workers[j], w) == 0;
			if (!dup)
				x->workers[x->n_workers++] = (char *)w;
		}
	for (size_t j = 0; ok && j < x->n_workers; j++) {
		keys[j] = bg_dkey(x->d, BG_KEY_WORKER_ONLINE, x->workers[j]);
		ok = keys[j] != NULL;
		argv[j + 1] = keys[j];
	}
	if (ok) {
		argv[0] = "MGET";
		ok = bg_rconn_cmdv(x->d->ctl, on_leases, x, 0, argv) == 0;
	}
	for (size_t j = 0; keys && j < x->n_workers; j++)
		free(keys[j]);
	free(keys);
	free(argv);
	if (!ok) {
		x->failed = true;
		answer(x);
	}
}

static void on_members(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct type *ty = priv;
	struct served *x = ty->x;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		x->failed = true;
	else {
		ty->members = calloc(r->elements + 1, sizeof(*ty->members));
		for (size_t k = 0; ty->members && k < r->elements; k++) {
			const redisReply *e = r->element[k];
			if (e->type == REDIS_REPLY_STRING &&
			    (ty->members[ty->n_members] =
				     strndup(e->str, e->len)) != NULL)
				ty->n_members++;
		}
		x->failed = x->failed || ty->members == NULL;
	}
	if (--x->pending == 0)
		read_leases(x);
}

/* The names of args.agent_types, or what is wrong with them. */
static const char *check(json_t *types)
{
	if (!json_is_array(types) || json_array_size(types) > SERVED_MAX_TYPES)
		return "agent_types_served needs agent_types, an array of at "
		       "most 1000 agent type names";
	size_t i;
	json_t *v;
	json_array_foreach(types, i, v) {
		const char *s = bg_arg_name(v);
		if (s == NULL || !*s || strlen(s) > SERVED_MAX_NAME)
			return "agent_types_served: every agent type must be "
			       "a string of 1-128 bytes";
	}
	return NULL;
}

void bg_served_check(struct bg_daemon *d, struct bg_job *t, const char *id,
		     json_t *args)
{
	json_t *types = json_object_get(args, "agent_types");
	const char *why = check(types);
	if (why) {
		bg_outbox_reply_error(d, t, id, "INVALID_ARGUMENT", why);
		return;
	}
	struct served *x = calloc(1, sizeof(*x));
	size_t n = json_array_size(types);
	if (x == NULL ||
	    (x->types = calloc(n + 1, sizeof(*x->types))) == NULL) {
		free(x);
		bg_outbox_reply_error(d, t, id, "INTERNAL", "out of memory");
		return;
	}
	x->d = d;
	x->tag = t->tag;
	x->run_id = t->run.run_id;
	x->args = json_incref(args);
	x->n = n;
	snprintf(x->id, sizeof(x->id), "%s", id);
	x->pending = 1; /* held until every read is sent */
	for (size_t i = 0; i < n; i++) {
		struct type *ty = &x->types[i];
		ty->x = x;
		ty->name = json_string_value(json_array_get(types, i));
		ty->served = served_here(d, ty->name);
		if (ty->served)
			continue;
		char *key = bg_dkey(d, BG_KEY_AGENT_TYPE_MEMBERS, ty->name);
		x->pending++;
		if (key == NULL ||
		    bg_rconn_cmdv(d->ctl, on_members, ty, 0,
				  (const char *const[]){ "SMEMBERS", key,
							 NULL }) != 0) {
			x->failed = true;
			x->pending--;
		}
		free(key);
		if (x->failed)
			break;
	}
	if (--x->pending == 0)
		read_leases(x);
}
