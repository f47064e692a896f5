/* supervisor/finish_parts.c - the finish split by slot under Redis Cluster
 * (finish_parts.h). */
#include "supervisor/finish_parts.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cluster/slot.h"
#include "common/cmdlist.h"
#include "common/fault.h"
#include "supervisor/daemon.h"
#include "supervisor/lease.h"
#include "supervisor/log.h"
#include "wire/keys.h"

/* KEYS[1] this part's guard (a key in the part's slot naming the entry),
 * KEYS[2 .. 1 + ARGV[3]] the guards to write beside it (the session's
 * part: those of the entries this finish acknowledges besides its own),
 * then the part's keys (declared for the cluster; the commands name them
 * again). ARGV[1] the guards' TTL, ARGV[2] the guard's value, ARGV[3] the
 * number of other guards, ARGV[4] the number of commands, then per
 * command its argument count and arguments. Already applied: {0}. Else
 * the guard is written first: under maxmemory a script's first write is
 * the one refused (the script then fails with nothing applied), and once
 * it has written, Redis lets the rest through. Each command then runs (an
 * error is kept, as inside EXEC: the rest still runs) and {1, errors...}
 * comes back. The values are Redis's own strings: nothing is decoded
 * (DESIGN 4). */
static const char APPLY_LUA[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end\n"
	"redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])\n"
	"for k = 2, 1 + tonumber(ARGV[3]) do\n"
	"  redis.call('SET', KEYS[k], '1', 'EX', ARGV[1])\n"
	"end\n"
	"local out = {1}\n"
	"local i = 5\n"
	"for c = 1, tonumber(ARGV[4]) do\n"
	"  local n = tonumber(ARGV[i])\n"
	"  local r = redis.pcall(unpack(ARGV, i + 1, i + n))\n"
	"  if type(r) == 'table' and r.err then out[#out + 1] = r.err end\n"
	"  i = i + n + 1\n"
	"end\n"
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
	int first_slot; /* the session's slot (its part goes first), or -1 */
	struct bg_cmdlist rest; /* the commands of parts 2.. (rest_of) */
};

static void plan_free(struct plan *p)
{
	free(p->cmd);
	free(p->order);
	free(p->first);
	bg_cmdlist_free(&p->rest);
	*p = (struct plan){ 0 };
}

static bool is_xack(const struct command *c)
{
	return c->lens[0] == 4 && strncasecmp(c->argv[0], "XACK", 4) == 0;
}

/* The slot of the session's registry: its part (the task's record and
 * events, its callees' records) goes first, so that no other part of a
 * finish is ever applied without it (the callees' records precede their
 * ASKs, as the outbox requires) and a worker that takes the entry over
 * finds either none of this finish or its record already final. The job
 * knows its registry; a finish replayed from the journal, from its blob
 * (a v2 key "...session:{S}:registry"). */
static int session_slot(const struct bg_job *t)
{
	if (t->id.reg_key)
		return bg_slot_of(t->id.reg_key, strlen(t->id.reg_key));
	return -1;
}

static bool is_registry(const struct command *c)
{
	static const char tail[] = "}:registry";
	size_t n = c->lens[1], tl = sizeof(tail) - 1;
	return c->argc > 1 && n > tl &&
	       memcmp(c->argv[1] + n - tl, tail, tl) == 0 &&
	       memmem(c->argv[1], n, ":session:{", 10) != NULL;
}

/* first_slot: the slot whose part goes first (the session's), or -1. */
static int plan_read(struct plan *p, struct bg_str blob, int first_slot)
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
	/* parts: each slot's commands; first_slot's first, then the others
	 * in order of first appearance */
	for (int i = 0; first_slot < 0 && i < p->n - 1; i++)
		if (is_registry(&p->cmd[i]))
			first_slot = p->cmd[i].slot;
	p->first_slot = first_slot;
	int k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < p->n - 1; i++) {
			int slot = p->cmd[i].slot;
			bool seen = false;
			if ((slot == first_slot) != (pass == 0))
				continue;
			for (int j = 0; j < i && !seen; j++)
				seen = p->cmd[j].slot == slot;
			if (seen)
				continue;
			p->first[p->parts++] = k;
			for (int j = i; j < p->n - 1; j++)
				if (p->cmd[j].slot == slot)
					p->order[k++] = j;
		}
	p->first[p->parts] = k;
	return 0;
}

/* The guard of an entry's part in a slot: a key tagged with the slot
 * (BG_KEY_FINISH_GUARD) naming the group, the stream and the entry. */
static char *entry_guard(struct bg_daemon *d, int slot, struct bg_str stream,
			 struct bg_str entry)
{
	const char *tag = bg_slot_tag(slot);
	char *base = tag ? bg_dkey(d, BG_KEY_FINISH_GUARD, tag) : NULL;
	struct bg_buf k = { 0 };
	if (base == NULL || bg_buf_printf(&k, "%s:%s|%.*s|%.*s", base, d->group,
					  (int)stream.len, stream.p,
					  (int)entry.len, entry.p) != 0) {
		free(base);
		bg_buf_free(&k);
		return NULL;
	}
	free(base);
	return k.p;
}

static char *guard_key(struct bg_daemon *d, const struct bg_job *t, int slot)
{
	return entry_guard(d, slot, bg_str_c(t->id.stream),
			   bg_str_c(t->id.entry_id));
}

/* Entries a finish acknowledges besides its own (the RESUMEs its run
 * took, resume_take.c) get a guard in the session's slot too, written
 * with the session's part: a worker that takes one of them over finds its
 * step consumed (pickup.c), as it finds the entry's own finish begun. The
 * k-th such XACK's guard, or NULL after the last (or without memory). */
static char *taken_guard(struct bg_daemon *d, const struct plan *p, int k)
{
	for (int i = 0; p->first_slot >= 0 && i < p->n - 1; i++) {
		const struct command *c = &p->cmd[i];
		if (!is_xack(c) || c->argc != 4 || k-- > 0)
			continue;
		return entry_guard(d, p->first_slot,
				   (struct bg_str){ c->argv[1], c->lens[1] },
				   (struct bg_str){ c->argv[3], c->lens[3] });
	}
	return NULL;
}

/* The commands of every part but the first, as a list: the value of the
 * first part's guard (the session's), for a worker that takes the entry
 * over after that part (pickup.c, finish_build.c). */
static int rest_of(struct plan *p, struct bg_str *out)
{
	if (p->rest.n == 0)
		for (int k = p->first[1]; k < p->first[p->parts]; k++) {
			const struct command *c = &p->cmd[p->order[k]];
			struct bg_str argv[BG_CMDLIST_MAX_ARGS];
			for (int a = 0; a < c->argc; a++)
				argv[a] = (struct bg_str){ c->argv[a],
							   c->lens[a] };
			bg_cmdlist_add(&p->rest, c->argc, argv);
		}
	*out = bg_cmdlist_blob(&p->rest);
	return p->rest.err;
}

char *bg_finish_parts_session_guard(struct bg_daemon *d, const struct bg_job *t)
{
	int slot = session_slot(t);
	return slot < 0 ? NULL : guard_key(d, t, slot);
}

/* One part as an EVAL: its argv, its lens (allocated together). The
 * session's part's guard keeps the rest of the finish (rest_of) and is
 * written with the guards of the other entries acknowledged (taken_guard);
 * the others' guards say "1". */
static int send_part(struct bg_daemon *d, struct bg_job *t, struct plan *p,
		     int part, bg_rconn_reply_fn fn, void *priv)
{
	struct bg_str value = { "1", 1 };
	bool session = p->cmd[p->order[p->first[part]]].slot == p->first_slot;
	if (session && p->parts > 1) {
		int rc = rest_of(p, &value);
		if (rc)
			return rc;
	}
	int nmark = 0;
	for (int i = 0; session && i < p->n - 1; i++)
		nmark += is_xack(&p->cmd[i]) && p->cmd[i].argc == 4;
	char **marks = calloc((size_t)nmark + 1, sizeof(*marks));
	if (marks == NULL)
		return -ENOMEM;
	for (int m = 0; m < nmark; m++)
		if ((marks[m] = taken_guard(d, p, m)) == NULL) {
			for (int k = 0; k < m; k++)
				free(marks[k]);
			free(marks);
			return -ENOMEM;
		}
	int from = p->first[part], to = p->first[part + 1];
	int ncmd = to - from;
	int nargs = 0;
	for (int k = from; k < to; k++)
		nargs += 1 + p->cmd[p->order[k]].argc;
	int argc = 3 + 1 + nmark + ncmd + 4 + nargs;
	const char **argv = calloc((size_t)argc, sizeof(*argv));
	size_t *lens = calloc((size_t)argc, sizeof(*lens));
	char *key = guard_key(d, t, p->cmd[p->order[from]].slot);
	char nkeys[16], ttl[24], count[16], nmarks[16];
	char(*counts)[16] = calloc((size_t)ncmd, sizeof(*counts));
	int rc = -ENOMEM;
	if (argv && lens && key && counts) {
		int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
		ARG("EVAL", 4);
		ARG(APPLY_LUA, sizeof(APPLY_LUA) - 1);
		snprintf(nkeys, sizeof(nkeys), "%d", 1 + nmark + ncmd);
		ARG(nkeys, strlen(nkeys));
		ARG(key, strlen(key));
		for (int m = 0; m < nmark; m++)
			ARG(marks[m], strlen(marks[m]));
		for (int k = from; k < to; k++) {
			const struct command *c = &p->cmd[p->order[k]];
			ARG(c->argv[1], c->lens[1]); /* its key */
		}
		snprintf(ttl, sizeof(ttl), "%lld",
			 (long long)d->cfg->max_entry_age_s + 86400);
		ARG(ttl, strlen(ttl));
		ARG(value.p, value.len);
		snprintf(nmarks, sizeof(nmarks), "%d", nmark);
		ARG(nmarks, strlen(nmarks));
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
	for (int m = 0; m < nmark; m++)
		free(marks[m]);
	free(marks);
	return rc;
}

/* A finish in progress: the job is looked up again at each reply (it may
 * be freed at exit); its plan points into the job's blob, which does not
 * change while the finish is sent. */
struct run {
	struct bg_daemon *d;
	uint64_t tag;
	bg_rconn_reply_fn done;
	int next; /* the part to send next */
	struct plan plan;
	const char *blob; /* the blob the plan was read from */
};

static void run_free(struct run *run)
{
	plan_free(&run->plan);
	free(run);
}

static void on_part(struct bg_rconn *c, redisReply *r, void *priv);
static void on_xack(struct bg_rconn *c, redisReply *r, void *priv);

/* The next part, or after the last the EXPIREs and the XACK. */
static int send_next(struct run *run, struct bg_job *t)
{
	struct bg_daemon *d = run->d;
	if (run->blob != t->fin.finish_blob.p) {
		plan_free(&run->plan);
		int rc = plan_read(&run->plan,
				   (struct bg_str){ t->fin.finish_blob.p,
						    t->fin.finish_blob.len },
				   session_slot(t));
		if (rc)
			return rc;
		run->blob = t->fin.finish_blob.p;
	}
	struct plan *p = &run->plan;
	if (run->next < p->parts)
		return send_part(d, t, p, run->next, on_part, run);
	const struct command *x = &p->cmd[p->n - 1];
	bg_stats_expire(d, bg_stats_emit_wr, d);
	return bg_rconn_cmd(d->wr, on_xack, run, 0, x->argc,
			    (const char **)x->argv, x->lens);
}

/* An outcome for `done` that is not Redis's: retried with back-off. */
static void refused(struct bg_rconn *c, struct run *run, struct bg_job *t,
		    const char *why)
{
	bg_rconn_reply_fn done = run->done;
	char text[160];
	snprintf(text, sizeof(text), "finish part %d: %s", run->next + 1, why);
	redisReply e = { .type = REDIS_REPLY_ERROR,
			 .str = text,
			 .len = strlen(text) };
	run_free(run);
	done(c, &e, t);
}

/* Each part, and the XACK, only within the lease's fencing window and
 * after an ownership check: else held, then the whole blob again (the
 * parts applied are skipped). */
static void go_on(struct bg_rconn *c, struct run *run, struct bg_job *t)
{
	if (!bg_lease_may_finish(run->d) || t->fin.verify_owner) {
		run_free(run);
		bg_job_move(t, BG_JOB_FINISH_HELD);
		return;
	}
	int rc = send_next(run, t);
	if (rc == -ENOTCONN) {
		bg_rconn_reply_fn done = run->done;
		run_free(run);
		done(c, NULL, t); /* resolved when the connection is back */
	} else if (rc != 0) {
		refused(c, run, t, strerror(-rc));
	}
}

static void on_part(struct bg_rconn *c, redisReply *r, void *priv)
{
	struct run *run = priv;
	struct bg_job *t = bg_job_find(run->d, run->tag);
	if (t == NULL) {
		run_free(run);
		return;
	}
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		bg_rconn_reply_fn done = run->done;
		run_free(run);
		done(c, r, t); /* NULL: unknown; an error: retried whole */
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		refused(c, run, t, "unexpected reply");
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
	if (bg_fault_hit("finish.between_parts.stop"))
		raise(SIGSTOP); /* a stall past the lease, then SIGCONT */
	run->next++;
	go_on(c, run, t);
}

static void del_guard(struct bg_daemon *d, const struct bg_job *t, int slot)
{
	char *key = guard_key(d, t, slot);
	if (key)
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "DEL", key, NULL });
	free(key);
}

static void forget_plan(struct bg_daemon *d, const struct bg_job *t,
			const struct plan *p)
{
	for (int part = 0; part < p->parts; part++)
		del_guard(d, t, p->cmd[p->order[p->first[part]]].slot);
	char *key;
	for (int k = 0; (key = taken_guard(d, p, k)) != NULL; k++) {
		bg_rconn_cmdv(d->wr, NULL, NULL, 0,
			      (const char *const[]){ "DEL", key, NULL });
		free(key);
	}
}

void bg_finish_parts_forget(struct bg_daemon *d, struct bg_job *t)
{
	struct plan p;
	if (plan_read(&p,
		      (struct bg_str){ t->fin.finish_blob.p,
				       t->fin.finish_blob.len },
		      session_slot(t)) != 0)
		return;
	forget_plan(d, t, &p);
	plan_free(&p);
}

static void on_xack(struct bg_rconn *c, redisReply *r, void *priv)
{
	struct run *run = priv;
	bg_rconn_reply_fn done = run->done;
	struct bg_job *t = bg_job_find(run->d, run->tag);
	run_free(run);
	if (t != NULL)
		done(c, r, t);
}

int bg_finish_parts_send(struct bg_daemon *d, struct bg_job *t,
			 bg_rconn_reply_fn done)
{
	struct run *run = calloc(1, sizeof(*run));
	if (run == NULL)
		return -ENOMEM;
	*run = (struct run){ .d = d, .tag = t->tag, .done = done };
	int rc = send_next(run, t);
	if (rc != 0)
		run_free(run);
	return rc;
}
