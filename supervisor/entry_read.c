/* supervisor/entry_read.c - the value hook, entry bodies and the read
 * budget (see entry_read.h). */
#include "supervisor/entry_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/daemon.h"

#define OVERSIZED "bygate:oversized:"
#define DEFERRED "bygate:deferred:"

/* Per reply being parsed (one at a time per connection: hiredis runs
 * each reply's callback before it parses the next). */
struct reply_budget {
	bool budgeted;
	bool deferring; /* a value was deferred: every later one is too, so
			   entries are run in the order they were read */
	size_t used;	/* bytes this reply brought in so far */
};

/* One per connection (per node of a cluster connection): a long reply on
 * one is parsed across many loop turns, between replies of the others. */
struct hook_ctx {
	const struct bg_daemon *d;
	struct reply_budget cur;
	struct hook_ctx *next; /* every context, for parsing() */
};
static struct hook_ctx hooks[3];
static struct hook_ctx *all_hooks;

static void on_begin(void *arg, bool budgeted)
{
	struct hook_ctx *h = arg;
	h->cur = (struct reply_budget){ .budgeted = budgeted };
}

/* The reply goes to its callback, which charges what it keeps. */
static void on_end(void *arg)
{
	struct hook_ctx *h = arg;
	h->cur = (struct reply_budget){ 0 };
}

/* Bytes of budgeted replies being parsed now, on every connection (the
 * replies' entries are charged to read_bytes_held only once handled). */
static size_t parsing(void)
{
	size_t n = 0;
	for (const struct hook_ctx *h = all_hooks; h; h = h->next)
		if (h->cur.budgeted)
			n += h->cur.used;
	return n;
}

static void link_ctx(struct hook_ctx *h)
{
	h->next = all_hooks;
	all_hooks = h;
}

/* A cluster node's own context. */
static void *on_fork(void *arg)
{
	const struct hook_ctx *parent = arg;
	struct hook_ctx *h = calloc(1, sizeof(*h));
	if (h) {
		h->d = parent->d;
		link_ctx(h);
	}
	return h;
}

static void on_release(void *arg)
{
	for (struct hook_ctx **p = &all_hooks; *p; p = &(*p)->next)
		if (*p == arg) {
			*p = (*p)->next;
			free(arg);
			return;
		}
}

static bool on_value(void *arg, size_t len, char *marker, size_t size)
{
	struct hook_ctx *h = arg;
	struct reply_budget *cur = &h->cur;
	if ((int64_t)len > h->d->cfg->max_message_bytes) {
		snprintf(marker, size, OVERSIZED "%zu", len);
		return true;
	}
	if (!cur->budgeted)
		return false;
	/* held + being parsed + this one within the budget; when nothing
	 * at all is held or being parsed, one entry may pass it: the
	 * budget plus one entry */
	size_t in_memory = h->d->read_bytes_held + parsing();
	size_t budget = (size_t)h->d->cfg->read_budget_bytes;
	if (cur->deferring || (in_memory > 0 && in_memory + len > budget)) {
		cur->deferring = true;
		snprintf(marker, size, DEFERRED "%zu", len);
		return true;
	}
	cur->used += len;
	return false;
}

void bg_entry_read_attach(struct bg_daemon *d)
{
	struct bg_rconn *conns[3] = { d->rd, d->ctl, d->wr };
	all_hooks = NULL; /* once, before the connections start */
	for (int i = 0; i < 3; i++) {
		hooks[i].d = d;
		link_ctx(&hooks[i]);
		struct bg_rconn_value_hook h = {
			on_begin,  on_value, on_end,
			&hooks[i], on_fork,  on_release
		};
		bg_rconn_set_value_hook(conns[i], &h);
	}
}

static bool marker(const redisReply *v, const char *prefix, size_t *len)
{
	size_t n = strlen(prefix);
	if (v->len <= n || strncmp(v->str, prefix, n) != 0)
		return false;
	*len = strtoull(v->str + n, NULL, 10);
	return true;
}

void bg_entry_body_take(redisReply *fields, struct bg_entry_body *b)
{
	*b = (struct bg_entry_body){ .kind = BG_ENTRY_NO_DATA };
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t k = 0; k + 1 < fields->elements; k += 2) {
		const redisReply *name = fields->element[k];
		redisReply *v = fields->element[k + 1];
		if (name->type != REDIS_REPLY_STRING ||
		    strcmp(name->str, "data") != 0)
			continue;
		if (v->type == REDIS_REPLY_STRING) {
			b->kind = BG_ENTRY_WHOLE;
			b->data = v->str; /* hiredis: malloc'd, NUL-ended */
			b->len = v->len;
			v->str = NULL;
			v->len = 0;
		} else if (v->type == REDIS_REPLY_STATUS) {
			if (marker(v, OVERSIZED, &b->len))
				b->kind = BG_ENTRY_OVERSIZED;
			else if (marker(v, DEFERRED, &b->len))
				b->kind = BG_ENTRY_DEFERRED;
		}
		return;
	}
}

/* ---- deferred entries ---- */

int bg_entry_defer(struct bg_daemon *d, int stream_idx, const char *id,
		   size_t len, bool may_park)
{
	size_t n = strlen(id);
	struct bg_entry_deferred *e = malloc(sizeof(*e) + n + 1);
	if (e == NULL)
		return -ENOMEM;
	e->next = NULL;
	e->stream_idx = stream_idx;
	e->len = len;
	e->may_park = may_park;
	memcpy(e->id, id, n + 1);
	if (d->deferred_tail)
		d->deferred_tail->next = e;
	else
		d->deferred_head = e;
	d->deferred_tail = e;
	d->n_deferred++;
	d->n_deferred_total++;
	return 0;
}

bool bg_entry_is_deferred(const struct bg_daemon *d, int stream_idx,
			  const char *id)
{
	for (const struct bg_entry_deferred *e = d->deferred_head; e;
	     e = e->next)
		if (e->stream_idx == stream_idx && strcmp(e->id, id) == 0)
			return true;
	return false;
}

const struct bg_entry_deferred *
bg_entry_deferred_head(const struct bg_daemon *d)
{
	return d->deferred_head;
}

void bg_entry_deferred_pop(struct bg_daemon *d)
{
	struct bg_entry_deferred *e = d->deferred_head;
	if (e == NULL)
		return;
	d->deferred_head = e->next;
	if (d->deferred_head == NULL)
		d->deferred_tail = NULL;
	d->n_deferred--;
	free(e);
}

void bg_entry_deferred_free_all(struct bg_daemon *d)
{
	while (d->deferred_head)
		bg_entry_deferred_pop(d);
}
