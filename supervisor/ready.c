/* supervisor/ready.c - the fleet's ready set (see ready.h). */
#include "supervisor/ready.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "supervisor/daemon.h"
#include "supervisor/lanes.h"
#include "supervisor/log.h"
#include "wire/ids.h"
#include "wire/keys.h"

/* Both scripts send a command over many ids or members at once (one
 * XCLAIM for the entries of a set, one ZADD per set, one ZPOPMIN per
 * lane and round): per entry a command costs Redis a call from Lua, a
 * command lookup and its reply, the bulk of a script's time at full load.
 * `call_over` cuts a list into calls of at most CHUNK items, because
 * Lua's unpack is bounded (~8000 values; sched.window <= 10000). */
#define LUA_CALL_OVER                                                                \
	"local CHUNK = 1000\n"                                                       \
	"local function call_over(head, list, tail)\n"                               \
	"  local out = {}\n"                                                         \
	"  for s = 1, #list, CHUNK do\n"                                             \
	"    local a = {unpack(head)}\n"                                             \
	"    for j = s, math.min(s + CHUNK - 1, #list) do a[#a + 1] = list[j] end\n" \
	"    for _, t in ipairs(tail) do a[#a + 1] = t end\n"                        \
	"    local r = redis.call(unpack(a))\n"                                      \
	"    if type(r) == 'table' then\n"                                           \
	"      for _, x in ipairs(r) do out[#out + 1] = x end\n"                     \
	"    end\n"                                                                  \
	"  end\n"                                                                    \
	"  return out\n"                                                             \
	"end\n"                                                                      \
	"local function id_of(member)\n"                                             \
	"  local ms, seq = string.match(member, '^(%d+)-0*(%d+)$')\n"                \
	"  return ms .. '-' .. seq\n"                                                \
	"end\n"

/* KEYS: stream, lanes set, passes hash, primers set. ARGV: group, the
 * ready consumer, the lane key prefix, then (member, lane, score, kind)
 * quadruples (member: the entry id with its sequence zero-padded; kind
 * "p": a primer, filed in the primers set rather than its lane). Each
 * entry still pending moves to the ready consumer and into its set; a
 * lane that joins the lanes set starts from the virtual time. One ZADD
 * per set and one XCLAIM for the whole batch. The writes Redis may
 * refuse at maxmemory (SADD, HSET, ZADD) come before the XCLAIM: a
 * script stopped by OOM leaves the entries pending here (the reconcile
 * runs them), never owned by the ready set without a place in a set. A
 * member whose entry is no longer pending is taken out again. Returns
 * the entries moved. */
static const char MOVE_LUA[] = LUA_CALL_OVER
	"local vt = tonumber(redis.call('HGET', KEYS[3], 'vtime') or '0')\n"
	"local sets, order, ids, where = {}, {}, {}, {}\n"
	"for i = 4, #ARGV, 4 do\n"
	"  local member, lane = ARGV[i], ARGV[i + 1]\n"
	"  local set = KEYS[4]\n"
	"  if ARGV[i + 3] ~= 'p' then set = ARGV[3] .. lane end\n"
	"  if sets[set] == nil then\n"
	"    sets[set] = {}\n"
	"    order[#order + 1] = set\n"
	"    if ARGV[i + 3] ~= 'p' and redis.call('SADD', KEYS[2], lane) == 1\n"
	"    then\n"
	"      local p = tonumber(redis.call('HGET', KEYS[3], 'p:' .. lane)\n"
	"                         or '0')\n"
	"      if p < vt then redis.call('HSET', KEYS[3], 'p:' .. lane, vt) end\n"
	"    end\n"
	"  end\n"
	"  local z = sets[set]\n"
	"  z[#z + 1] = ARGV[i + 2]\n"
	"  z[#z + 1] = member\n"
	"  ids[#ids + 1] = id_of(member)\n"
	"  where[#ids] = set\n"
	"end\n"
	"for _, set in ipairs(order) do\n"
	"  call_over({'ZADD', set}, sets[set], {})\n"
	"end\n"
	"local got = {}\n"
	"for _, id in ipairs(call_over({'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0},\n"
	"                              ids, {'JUSTID'})) do\n"
	"  got[id] = true\n"
	"end\n"
	"local moved = 0\n"
	"for j, id in ipairs(ids) do\n"
	"  if got[id] then\n"
	"    moved = moved + 1\n"
	"  else\n"
	"    redis.call('ZREM', where[j], ARGV[4 * j])\n"
	"  end\n"
	"end\n"
	"return moved\n";

/* KEYS as MOVE. ARGV: group, this worker, lane key prefix, n, the
 * number k of lanes excluded, those k lanes, then (lane, weight) pairs
 * (weight 1 for a lane not given). Primers first, lowest score first,
 * whatever their lane. Then stride scheduling over the fleet-wide
 * passes: the lane with the smallest pass gives its best entry, XCLAIMed
 * to this worker, and its pass grows by 1 / weight. Done in rounds: the
 * stride choices of the places still to fill are worked out first, then
 * each chosen lane gives its share in one ZPOPMIN and one XCLAIM. A lane
 * that gives less than its share is empty: it leaves the lanes set, and
 * the next round gives the rest to the other lanes by their passes, so
 * the shares and passes are those of choosing one entry at a time (the
 * order of the reply may differ; the entries of one lane are in score
 * order). An entry deleted meanwhile is skipped (XCLAIM leaves it out)
 * and its place goes to the next round. The new passes and the virtual
 * time in one HSET. Returns {entries, lanes left (waiting primers count
 * as one more), primers left}. */
static const char PICK_LUA[] = LUA_CALL_OVER
	"local n, k = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
	"local excl, w = {}, {}\n"
	"for i = 6, 5 + k do excl[ARGV[i]] = true end\n"
	"for i = 6 + k, #ARGV - 1, 2 do w[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
	"local out = {}\n"
	"local function claim(top)\n"
	"  local ids = {}\n"
	"  for j = 1, #top, 2 do ids[#ids + 1] = id_of(top[j]) end\n"
	"  if #ids == 0 then return end\n"
	"  for _, e in ipairs(call_over({'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0},\n"
	"                               ids, {'RETRYCOUNT', 1})) do\n"
	"    if type(e) == 'table' then out[#out + 1] = e end\n"
	"  end\n"
	"end\n"
	"local primers = nil\n"
	"while #out < n do\n"
	"  local want = n - #out\n"
	"  local top = redis.call('ZPOPMIN', KEYS[4], want)\n"
	"  claim(top)\n"
	"  if #top < 2 * want then primers = 0; break end\n"
	"end\n"
	"if primers == nil then primers = redis.call('ZCARD', KEYS[4]) end\n"
	"local lanes_left\n"
	"if #out >= n then\n"
	"  lanes_left = redis.call('SCARD', KEYS[2])\n"
	"else\n"
	"  local all, names = redis.call('SMEMBERS', KEYS[2]), {}\n"
	"  lanes_left = #all\n"
	"  for _, l in ipairs(all) do\n"
	"    if not excl[l] then names[#names + 1] = 'p:' .. l end\n"
	"  end\n"
	"  local pass, newpass, vt = {}, {}, nil\n"
	"  if #names > 0 then\n"
	"    local ps = call_over({'HMGET', KEYS[3]}, names, {})\n"
	"    for j, f in ipairs(names) do\n"
	"      pass[string.sub(f, 3)] = tonumber(ps[j] or '0')\n"
	"    end\n"
	"  end\n"
	"  while #out < n do\n"
	"    local sim, share, chosen = {}, {}, {}\n"
	"    for l, p in pairs(pass) do sim[l] = p end\n"
	"    for _ = 1, n - #out do\n"
	"      local best = nil\n"
	"      for l, p in pairs(sim) do\n"
	"        if best == nil or p < sim[best] or (p == sim[best] and l < best)\n"
	"        then best = l end\n"
	"      end\n"
	"      if best == nil then break end\n"
	"      if share[best] == nil then chosen[#chosen + 1] = best end\n"
	"      share[best] = (share[best] or 0) + 1\n"
	"      sim[best] = sim[best] + 1 / (w[best] or 1)\n"
	"    end\n"
	"    if #chosen == 0 then break end\n"
	"    for _, l in ipairs(chosen) do\n"
	"      local top = redis.call('ZPOPMIN', ARGV[3] .. l, share[l])\n"
	"      for _ = 1, #top / 2 do\n"
	"        if vt == nil or pass[l] > vt then vt = pass[l] end\n"
	"        pass[l] = pass[l] + 1 / (w[l] or 1)\n"
	"        newpass[l] = pass[l]\n"
	"      end\n"
	"      if #top < 2 * share[l] then\n"
	"        redis.call('SREM', KEYS[2], l)\n"
	"        pass[l] = nil\n"
	"        lanes_left = lanes_left - 1\n"
	"      end\n"
	"      claim(top)\n"
	"    end\n"
	"  end\n"
	"  local hs = {}\n"
	"  for l, p in pairs(newpass) do\n"
	"    hs[#hs + 1] = 'p:' .. l\n"
	"    hs[#hs + 1] = p\n"
	"  end\n"
	"  if vt then hs[#hs + 1] = 'vtime'; hs[#hs + 1] = vt end\n"
	"  if #hs > 0 then call_over({'HSET', KEYS[3]}, hs, {}) end\n"
	"end\n"
	"return {out, lanes_left + math.min(primers, 1), primers}\n";

enum { K_LANES, K_PASS, K_PRIMERS, K_LANE, K__COUNT };
static const char *const parts[K__COUNT] = { "lanes", "pass", "primers",
					     "lane:" };

struct stream_ready {
	char *keys[K__COUNT];
	struct bg_buf batch; /* (id, lane, score, kind), NUL-separated */
	int n_batch;
	bool maybe_waiting;
	int64_t primers_seen_ms; /* parked here, or left by a pick: when */
};

enum { SCRIPT_MOVE, SCRIPT_PICK, SCRIPT__COUNT };
static const char *const scripts[SCRIPT__COUNT] = { MOVE_LUA, PICK_LUA };

struct bg_ready {
	int n;
	struct stream_ready *s; /* [stream index] (0, the worker stream,
				   unused) */
	/* per script: its text was sent on the write connection of this
	 * reconnect count, so EVALSHA finds it cached */
	bool text_sent[SCRIPT__COUNT];
	uint64_t text_conn[SCRIPT__COUNT];
};

static bool keys_built(const struct stream_ready *s)
{
	for (int k = 0; k < K__COUNT; k++)
		if (s->keys[k] == NULL)
			return false;
	return true;
}

static struct bg_ready *get(struct bg_daemon *d)
{
	if (d->ready && d->ready->n == d->n_streams)
		return d->ready;
	bg_ready_free(d);
	struct bg_ready *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->n = d->n_streams;
	r->s = calloc((size_t)r->n, sizeof(*r->s));
	if (r->s == NULL) {
		free(r);
		return NULL;
	}
	for (int i = 1; i < r->n; i++) {
		const char *type = d->cfg->agent_types[i - 1].name;
		for (int k = 0; k < K__COUNT; k++) {
			struct bg_buf b = { 0 };
			if (bg_key_build(&b, d->cfg->key_schema, BG_KEY_READY,
					 bg_str_c(type), bg_str_c(parts[k]),
					 bg_str_c("")) == 0)
				r->s[i].keys[k] = b.p;
			else
				bg_buf_free(&b);
		}
	}
	d->ready = r;
	return r;
}

void bg_ready_free(struct bg_daemon *d)
{
	struct bg_ready *r = d->ready;
	if (r == NULL)
		return;
	for (int i = 0; i < r->n; i++) {
		for (int k = 0; k < K__COUNT; k++)
			free(r->s[i].keys[k]);
		bg_buf_free(&r->s[i].batch);
	}
	free(r->s);
	free(r);
	d->ready = NULL;
}

bool bg_ready_enabled(const struct bg_daemon *d)
{
	return d->cfg->sched_window > 0;
}

/* How long primers seen in a ready set count as waiting there without
 * news (a pick): bounds a stale answer when this worker stops picking
 * an agent type (denied, at its cap). */
#define PRIMERS_SEEN_MS 1000

bool bg_ready_primers_waiting(const struct bg_daemon *d)
{
	int64_t now = bg_mono_ms();
	for (int i = 1; d->ready && i < d->ready->n; i++) {
		int64_t seen = d->ready->s[i].primers_seen_ms;
		if (seen && now - seen < PRIMERS_SEEN_MS)
			return true;
	}
	return false;
}

bool bg_ready_maybe_waiting(const struct bg_daemon *d, int stream_idx)
{
	return d->ready && stream_idx > 0 && stream_idx < d->ready->n &&
	       d->ready->s[stream_idx].maybe_waiting;
}

/* The entry's sorted-set score: its send time (the entry id's ms) minus
 * its priority in aging steps; a RESUME goes before everything. */
static double score_of(const struct bg_daemon *d, const struct bg_job *t)
{
	double ms = (double)strtoull(t->id.entry_id, NULL, 10);
	if (t->run.resumes)
		return ms - 1e15;
	return ms - (double)t->run.priority * d->cfg->sched_priority_aging_ms;
}

void bg_ready_park(struct bg_daemon *d, struct bg_job *t)
{
	struct bg_ready *r = get(d);
	int i = t->id.stream_idx;
	if (r == NULL || i < 1 || i >= r->n || !keys_built(&r->s[i])) {
		bg_job_free(d, t); /* stays pending here: the reconcile */
		return;
	}
	struct stream_ready *s = &r->s[i];
	/* the member: the id with its sequence padded, so that entries of
	 * one score (one millisecond, one priority) pop in stream order */
	char score[48], member[64];
	snprintf(score, sizeof(score), "%.0f", score_of(d, t));
	char *dash = strchr(t->id.entry_id, '-');
	snprintf(member, sizeof(member), "%.*s-%020llu",
		 dash ? (int)(dash - t->id.entry_id) : 0, t->id.entry_id,
		 dash ? strtoull(dash + 1, NULL, 10) : 0ULL);
	bg_buf_append(&s->batch, member, strlen(member) + 1);
	bg_buf_append(&s->batch, t->run.lane, strlen(t->run.lane) + 1);
	bg_buf_append(&s->batch, score, strlen(score) + 1);
	/* a primer (sched.primer_share): picked before every lane */
	bool primer = t->run.role == BG_ROLE_PRIMER &&
		      d->cfg->sched_primer_share > 0;
	bg_buf_append(&s->batch, primer ? "p" : "", primer ? 2 : 1);
	s->n_batch++;
	s->maybe_waiting = true;
	if (primer)
		s->primers_seen_ms = bg_mono_ms();
	bg_job_free(d, t);
}

/* A NOSCRIPT (SCRIPT FLUSH): the next call sends the texts again. */
static void forget_texts(struct bg_daemon *d, const redisReply *r)
{
	if (d->ready && r && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0)
		for (int i = 0; i < SCRIPT__COUNT; i++)
			d->ready->text_sent[i] = false;
}

/* SHA-1 of each script, computed once; NULL: send EVAL. */
static const char *script_sha(int which)
{
	static char hex[SCRIPT__COUNT][41];
	if (hex[which][0] == '\0' &&
	    bg_script_sha1(hex[which], scripts[which]) != 0)
		return NULL;
	return hex[which];
}

/* The script `which` with the stream's four keys and ARGV: group,
 * consumer, lane key prefix, then args. EVAL with its text the first time
 * on a connection, EVALSHA after it: the ~1.7 KB text is then neither
 * formatted here, sent, nor hashed by Redis per call (a pick per few
 * finished tasks at full load; measured ~0.15 us of Redis a call). A
 * NOSCRIPT reply (the cache flushed) makes the next call send the text;
 * the call refused did nothing (a pick is asked again at the next poll, a
 * move is sent again at once with the text: on_moved). */
static int send_script(struct bg_daemon *d, int which,
		       const struct stream_ready *s, int stream_idx,
		       const char *consumer, const char **args, int n_args,
		       bg_rconn_reply_fn fn, void *priv, bool entries)
{
	const char **argv = calloc((size_t)(11 + n_args), sizeof(char *));
	if (argv == NULL)
		return -ENOMEM;
	struct bg_ready *r = d->ready;
	uint64_t conn = bg_rconn_reconnects(d->wr);
	/* under Redis Cluster each node has its own script cache and the
	 * streams are on several nodes: the text, always */
	const char *sha = r->text_sent[which] && r->text_conn[which] == conn &&
					  !bg_rconn_clustered(d->wr)
				  ? script_sha(which)
				  : NULL;
	int a = 0;
	argv[a++] = sha ? "EVALSHA" : "EVAL";
	argv[a++] = sha ? sha : scripts[which];
	argv[a++] = "4";
	argv[a++] = d->streams[stream_idx];
	argv[a++] = s->keys[K_LANES];
	argv[a++] = s->keys[K_PASS];
	argv[a++] = s->keys[K_PRIMERS];
	argv[a++] = d->group;
	argv[a++] = consumer;
	argv[a++] = s->keys[K_LANE];
	for (int i = 0; i < n_args; i++)
		argv[a++] = args[i];
	int rc = entries ? bg_rconn_cmd_entries(d->wr, fn, priv, 0, a, argv)
			 : bg_rconn_cmd(d->wr, fn, priv, 0, a, argv, NULL);
	if (sha == NULL) {
		r->text_sent[which] = rc == 0;
		r->text_conn[which] = conn;
	}
	free(argv);
	return rc;
}

/* One move in flight: its batch, kept to send it again with the text
 * after a NOSCRIPT (once). */
struct move {
	struct bg_daemon *d;
	int stream_idx;
	int n;
	bool again;
	struct bg_buf batch;
};

static void send_move(struct move *m);

static void on_moved(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct move *m = priv;
	struct bg_daemon *d = m->d;
	bool noscript = r && r->type == REDIS_REPLY_ERROR &&
			strncmp(r->str, "NOSCRIPT", 8) == 0;
	forget_texts(d, r);
	if (noscript && !m->again && d->ready && m->stream_idx < d->ready->n) {
		m->again = true;
		send_move(m); /* with the text now */
		return;
	}
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("moving entries to the ready set failed: %s (they "
			"stay pending here and are run by the reconcile)",
			r->str);
	bg_buf_free(&m->batch);
	free(m);
}

/* Send m's batch (m is freed by on_moved, or here when not sent: the
 * entries stay pending here, the reconcile runs them). */
static void send_move(struct move *m)
{
	struct bg_daemon *d = m->d;
	int n = 4 * m->n, rc = -ENOMEM;
	const char **args = calloc((size_t)n, sizeof(char *));
	if (args != NULL) {
		const char *p = m->batch.p;
		for (int k = 0; k < n; k++) {
			args[k] = p;
			p += strlen(p) + 1;
		}
		rc = send_script(d, SCRIPT_MOVE, &d->ready->s[m->stream_idx],
				 m->stream_idx, BG_READY_CONSUMER, args, n,
				 on_moved, m, false);
		free(args);
	}
	if (rc != 0) {
		bg_buf_free(&m->batch);
		free(m);
	}
}

void bg_ready_flush(struct bg_daemon *d)
{
	struct bg_ready *r = d->ready;
	if (r == NULL)
		return;
	for (int i = 1; i < r->n; i++) {
		struct stream_ready *s = &r->s[i];
		if (s->n_batch == 0)
			continue;
		struct move *m = calloc(1, sizeof(*m));
		if (m != NULL) {
			*m = (struct move){ d, i, s->n_batch, false, s->batch };
			s->batch = (struct bg_buf){ 0 };
			send_move(m);
		}
		/* not sent: the entries stay pending here (the reconcile) */
		bg_buf_reset(&s->batch);
		s->n_batch = 0;
	}
}

int bg_ready_pick(struct bg_daemon *d, int stream_idx, int n,
		  const char *const *excluded, int n_excluded,
		  bg_rconn_reply_fn fn, void *priv)
{
	struct bg_ready *r = get(d);
	if (r == NULL || stream_idx < 1 || stream_idx >= r->n ||
	    !keys_built(&r->s[stream_idx]))
		return -EINVAL;
	/* the lanes at their cap here, then those of sched.lanes with their
	 * weights; the others weigh 1 */
	size_t nl = bg_lanes_count(d->cfg);
	const char **args =
		calloc(2 + (size_t)n_excluded + 2 * nl, sizeof(char *));
	char(*w)[16] = calloc(nl + 1, sizeof(*w));
	int rc = -ENOMEM;
	if (args && w) {
		char count[16], k[16];
		snprintf(count, sizeof(count), "%d", n);
		snprintf(k, sizeof(k), "%d", n_excluded);
		int a = 0;
		args[a++] = count;
		args[a++] = k;
		for (int i = 0; i < n_excluded; i++)
			args[a++] = excluded[i];
		for (size_t i = 0; i < nl; i++) {
			const char *name;
			const struct bg_lane_conf *lc =
				bg_lane_conf_at(d->cfg, i, &name);
			snprintf(w[i], sizeof(w[i]), "%d", lc->weight);
			args[a++] = name;
			args[a++] = w[i];
		}
		rc = send_script(d, SCRIPT_PICK, &r->s[stream_idx], stream_idx,
				 d->worker_id, args, a, fn, priv, true);
	}
	free(args);
	free(w);
	return rc;
}

redisReply *bg_ready_pick_entries(struct bg_daemon *d, int stream_idx,
				  redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY) {
		forget_texts(d, r);
		if (r && r->type == REDIS_REPLY_ERROR) {
			bg_warn("picking from the ready set failed: %s",
				r->str);
			/* asked again at the next poll, not at once */
			if (d->ready && stream_idx > 0 &&
			    stream_idx < d->ready->n)
				d->ready->s[stream_idx].maybe_waiting = false;
		}
		return NULL;
	}
	if (d->ready && stream_idx > 0 && stream_idx < d->ready->n) {
		struct stream_ready *s = &d->ready->s[stream_idx];
		s->maybe_waiting = r->element[1]->type == REDIS_REPLY_INTEGER &&
				   r->element[1]->integer > 0;
		bool primers = r->element[2]->type == REDIS_REPLY_INTEGER &&
			       r->element[2]->integer > 0;
		s->primers_seen_ms = primers ? bg_mono_ms() : 0;
	}
	return r->element[0];
}
