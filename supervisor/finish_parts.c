/* supervisor/finish_parts.c - the finish split by slot under Redis Cluster
 * (finish_parts.h). */
#include "supervisor/finish_parts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cluster/slot.h"
#include "common/cmdlist.h"
#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "wire/keys.h"

/* KEYS[1] the slot's guard hash, KEYS[2..] the part's keys (declared for
 * the cluster; the commands name them again). ARGV[1] the guard field,
 * ARGV[2] its hash's TTL, ARGV[3] the number of commands, then per command
 * its argument count and arguments. Already applied: {0}. Else each command
 * runs (an error is kept, as inside EXEC: the rest still runs), the guard
 * is written last, and {1, errors...} comes back. The values are Redis's
 * own strings: nothing is decoded (DESIGN 4). */
static const char APPLY_LUA[] =
	"if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0} end\n"
	"local out = {1}\n"
	"local i = 4\n"
	"for c = 1, tonumber(ARGV[3]) do\n"
	"  local n = tonumber(ARGV[i])\n"
	"  local r = redis.pcall(unpack(ARGV, i + 1, i + n))\n"
	"  if type(r) == 'table' and r.err then out[#out + 1] = r.err end\n"
	"  i = i + n + 1\n"
	"end\n"
	"redis.call('HSET', KEYS[1], ARGV[1], '1')\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
	"return out\n";

struct command {
	int argc;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int slot;
};

/* The blob read into commands; the last one (the XACK) is not in a part. */
struct plan {
	struct command *cmd;
	int n;	    /* commands, the XACK included */
	int *order; /* the commands of the parts, part after part */
	int *first; /* per part: its first index into order; [parts] = end */
	int parts;
};

static void plan_free(struct plan *p)
{
	free(p->cmd);
	free(p->order);
	free(p->first);
	*p = (struct plan){ 0 };
}

static bool is_xack(const struct command *c)
{
	return c->lens[0] == 4 && strncasecmp(c->argv[0], "XACK", 4) == 0;
}

static int plan_read(struct plan *p, struct bg_str blob)
{
	struct bg_cmdlist_iter it;
	uint32_t count;
	*p = (struct plan){ 0 };
	if (bg_cmdlist_check(blob, &count) != 0 || count == 0 ||
	    bg_cmdlist_iter_init(&it, blob) != 0)
		return -EBADMSG;
	p->cmd = calloc(count, sizeof(*p->cmd));
	p->order = calloc(count, sizeof(int));
	p->first = calloc(count + 1, sizeof(int));
	if (!p->cmd || !p->order || !p->first) {
		plan_free(p);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct command *c = &p->cmd[i];
		if (bg_cmdlist_next(&it, &c->argc, c->argv, c->lens,
				    BG_CMDLIST_MAX_ARGS) != 1) {
			plan_free(p);
			return -EBADMSG;
		}
		c->slot = bg_slot_of_command(c->argc, c->argv, c->lens, NULL);
		/* every finish command names one key (finish_build.c) */
		if (c->slot < 0) {
			plan_free(p);
			return -EBADMSG;
		}
	}
	p->n = (int)count;
	if (!is_xack(&p->cmd[p->n - 1])) {
		plan_free(p);
		return -EBADMSG;
	}
	/* parts: each slot's commands, slots in order of first appearance */
	int k = 0;
	for (int i = 0; i < p->n - 1; i++) {
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = p->cmd[j].slot == p->cmd[i].slot;
		if (seen)
			continue;
		p->first[p->parts++] = k;
		for (int j = i; j < p->n - 1; j++)
			if (p->cmd[j].slot == p->cmd[i].slot)
				p->order[k++] = j;
	}
	p->first[p->parts] = k;
	return 0;
}

/* The guard hash of a slot, and the field of this entry in it. */
static char *guard_key(struct bg_daemon *d, int slot)
{
	const char *tag = bg_slot_tag(slot);
	return tag ? bg_dkey(d, BG_KEY_FINISH_GUARD, tag) : NULL;
}

static int guard_field(const struct bg_job *t, char *out, size_t n)
{
	int len = snprintf(out, n, "%s|%s", t->id.stream, t->id.entry_id);
	return len > 0 && (size_t)len < n ? len : -1;
}

/* One part as an EVAL: its argv, its lens (allocated together). */
static int send_part(struct bg_daemon *d, struct bg_job *t,
		     const struct plan *p, int part, bg_rconn_reply_fn fn,
		     void *priv)
{
	int from = p->first[part], to = p->first[part + 1];
	int ncmd = to - from;
	int nargs = 0;
	for (int k = from; k < to; k++)
		nargs += 1 + p->cmd[p->order[k]].argc;
	int argc = 3 + 1 + ncmd + 3 + nargs;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	size_t *lens = calloc((size_t)argc, sizeof(*lens));
	char *key = guard_key(d, p->cmd[p->order[from]].slot);
	char field[2 * BG_FIELD_MAX], nkeys[16], ttl[24], count[16];
	char(*counts)[16] = calloc((size_t)ncmd, sizeof(*counts));
	int flen = guard_field(t, field, sizeof(field));
	int rc = -ENOMEM;
	if (argv && lens && key && counts && flen > 0) {
		int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
		ARG("EVAL", 4);
		ARG(APPLY_LUA, sizeof(APPLY_LUA) - 1);
		snprintf(nkeys, sizeof(nkeys), "%d", 1 + ncmd);
		ARG(nkeys, strlen(nkeys));
		ARG(key, strlen(key));
		for (int k = from; k < to; k++) {
			const struct command *c = &p->cmd[p->order[k]];
			ARG(c->argv[1], c->lens[1]); /* its key */
		}
		ARG(field, (size_t)flen);
		snprintf(ttl, sizeof(ttl), "%lld",
			 (long long)d->cfg->max_entry_age_s + 86400);
		ARG(ttl, strlen(ttl));
		snprintf(count, sizeof(count), "%d", ncmd);
		ARG(count, strlen(count));
		for (int k = from; k < to; k++) {
			const struct command *c = &p->cmd[p->order[k]];
			snprintf(counts[k - from], sizeof(counts[0]), "%d",
				 c->argc);
			ARG(counts[k - from], strlen(counts[k - from]));
			for (int a = 0; a < c->argc; a++)
				ARG(c->argv[a], c->lens[a]);
		}
#undef ARG
		rc = bg_rconn_cmd(d->wr, fn, priv, 0, n, argv, lens);
	}
	free(argv);
	free(lens);
	free(key);
	free(counts);
	return rc;
}

/* A finish in progress: the job is looked up again at each reply (it may
 * be freed at exit). */
struct run {
	struct bg_daemon *d;
	uint64_t tag;
	bg_rconn_reply_fn done;
	int next; /* the part to send next */
};

static void on_part(struct bg_rconn *c, redisReply *r, void *priv);
static void on_xack(struct bg_rconn *c, redisReply *r, void *priv);

static void emit_wr(void *ctx, int argc, const struct bg_str *argv)
{
	struct bg_daemon *d = ctx;
	const char *a[BG_CMDLIST_MAX_ARGS];
	size_t l[BG_CMDLIST_MAX_ARGS];
	for (int i = 0; i < argc && i < BG_CMDLIST_MAX_ARGS; i++) {
		a[i] = argv[i].p;
		l[i] = argv[i].len;
	}
	bg_rconn_cmd(d->wr, NULL, NULL, 0, argc, a, l);
}

/* The next part, or after the last the EXPIREs and the XACK. */
static int send_next(struct run *run, struct bg_job *t)
{
	struct bg_daemon *d = run->d;
	struct plan p;
	int rc = plan_read(&p, (struct bg_str){ t->fin.finish_blob.p,
						t->fin.finish_blob.len });
	if (rc)
		return rc;
	if (run->next < p.parts) {
		rc = send_part(d, t, &p, run->next, on_part, run);
	} else {
		const struct command *x = &p.cmd[p.n - 1];
		bg_stats_expire(d, emit_wr, d);
		rc = bg_rconn_cmd(d->wr, on_xack, run, 0, x->argc,
				  (const char **)x->argv, x->lens);
	}
	plan_free(&p);
	return rc;
}

static void on_part(struct bg_rconn *c, redisReply *r, void *priv)
{
	struct run *run = priv;
	struct bg_job *t = bg_job_find(run->d, run->tag);
	if (t == NULL) {
		free(run);
		return;
	}
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		bg_rconn_reply_fn done = run->done;
		free(run);
		done(c, r, t); /* NULL: unknown; an error: retried whole */
		return;
	}
	for (size_t i = 1; i < r->elements; i++) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_ERROR, &ids,
			    "finish part %d: a command failed: %.300s",
			    run->next + 1,
			    r->element[i]->type == REDIS_REPLY_STRING ||
					    r->element[i]->type ==
						    REDIS_REPLY_STATUS
				    ? r->element[i]->str
				    : "?");
	}
	if (bg_fault_hit("finish.between_parts"))
		_exit(BG_FAULT_EXIT);
	run->next++;
	int rc = send_next(run, t);
	if (rc != 0) {
		bg_rconn_reply_fn done = run->done;
		free(run);
		done(c, NULL, t); /* not sent: resolved as unknown */
	}
}

/* The guard fields of an applied finish are no longer needed. */
static void forget_guards(struct bg_daemon *d, struct bg_job *t)
{
	struct plan p;
	char field[2 * BG_FIELD_MAX];
	if (guard_field(t, field, sizeof(field)) < 0 ||
	    plan_read(&p, (struct bg_str){ t->fin.finish_blob.p,
					   t->fin.finish_blob.len }) != 0)
		return;
	for (int part = 0; part < p.parts; part++) {
		char *key = guard_key(d, p.cmd[p.order[p.first[part]]].slot);
		if (key)
			bg_rconn_cmdv(d->wr, NULL, NULL, 0,
				      (const char *const[]){ "HDEL", key, field,
							     NULL });
		free(key);
	}
	plan_free(&p);
}

static void on_xack(struct bg_rconn *c, redisReply *r, void *priv)
{
	struct run *run = priv;
	bg_rconn_reply_fn done = run->done;
	struct bg_job *t = bg_job_find(run->d, run->tag);
	struct bg_daemon *d = run->d;
	free(run);
	if (t == NULL)
		return;
	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		forget_guards(d, t);
	done(c, r, t);
}

int bg_finish_parts_send(struct bg_daemon *d, struct bg_job *t,
			 bg_rconn_reply_fn done)
{
	struct run *run = calloc(1, sizeof(*run));
	if (run == NULL)
		return -ENOMEM;
	*run = (struct run){ d, t->tag, done, 0 };
	int rc = send_next(run, t);
	if (rc != 0)
		free(run);
	return rc;
}
