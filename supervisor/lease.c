/* supervisor/lease.c - the worker's registry lease (WIRE 5.1-5.4, 5.8):
 * claim with SET NX EX and a fresh token, immediate takeover of our own
 * lease after a restart proven by the state-directory lock (the token is
 * kept in LMDB), waiting for a lease held by anyone else, the token-CAS
 * heartbeat with membership on the control connection, the fencing window
 * for finishes, and the token-checked release with membership removal.
 * All scripts compare the token as a substring of the stored JSON: no JSON
 * is decoded in Lua (DESIGN 4.6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "state/state.h"
#include "supervisor/daemon.h"
#include "supervisor/log.h"
#include "supervisor/metrics.h"
#include "wire/ids.h"
#include "wire/keys.h"

/* 1 renewed, 2 re-created after a lapse, 0 owned by someone else,
 * -1 unparseable stored value. */
static const char HEARTBEAT_LUA[] =
	"local cur = redis.call('GET', KEYS[1])\n"
	"if not cur then\n"
	"  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then\n"
	"    return 2 end\n"
	"  return 0\n"
	"end\n"
	"if string.sub(cur, 1, 1) ~= '{' then return -1 end\n"
	"if not string.find(cur, '\"token\":\"' .. ARGV[1] .. '\"', 1, true) "
	"then return 0 end\n"
	"redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
	"return 1\n";

/* Take over exactly the value read (our previous token): 1 or 0. */
static const char TAKEOVER_LUA[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end\n"
	"return 0\n";

static const char RELEASE_LUA[] =
	"local cur = redis.call('GET', KEYS[1])\n"
	"if cur and string.find(cur, '\"token\":\"' .. ARGV[1] .. '\"', 1, "
	"true) then redis.call('DEL', KEYS[1]) return 1 end\n"
	"return 0\n";

/* The host's first non-loopback IPv4 address that is up (WIRE 5.1: "best
 * non-loopback IPv4"), else 127.0.0.1. Looked up once. */
static const char *host_ip(void)
{
	static char ip[INET_ADDRSTRLEN];
	if (ip[0])
		return ip;
	snprintf(ip, sizeof(ip), "127.0.0.1");
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) == -1)
		return ip;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		const struct sockaddr_in *sin =
			(const struct sockaddr_in *)(const void *)i->ifa_addr;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		break;
	}
	freeifaddrs(ifs);
	return ip;
}

/* The presence JSON of WIRE 5.1 (compact separators). */
static void lease_value(const struct bg_daemon *d, const char *token,
			int64_t last_seen, char *out, size_t n)
{
	(void)d;
	snprintf(out, n,
		 "{\"version\":1,\"token\":\"%s\",\"last_seen\":%lld,"
		 "\"ip_address\":\"%s\"}",
		 token, (long long)last_seen, host_ip());
}

static void arm(struct bg_daemon *d, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(d->lease_timer, &tv);
}

static void lease_lost(struct bg_daemon *d, const char *why)
{
	if (d->lease_state == BG_LEASE_LOST)
		return;
	d->lease_state = BG_LEASE_LOST;
	bg_error("lease of worker %s lost (%s): killing the children, "
		 "publishing nothing more and exiting (code %d); entries in "
		 "flight stay pending for their new owner",
		 d->worker_id, why, BG_EXIT_LEASE_LOST);
	d->exit_code = BG_EXIT_LEASE_LOST;
	d->stopping = true;
	bg_pool_shutdown(d->pool, false);
}

static void save_token(struct bg_daemon *d)
{
	if (d->state == NULL)
		return;
	int rc = bg_state_meta_put(d->state, "lease_token",
				   bg_str_c(d->lease_token));
	if (rc == 0)
		rc = bg_state_meta_put(d->state, "worker_id",
				       bg_str_c(d->worker_id));
	if (rc == 0)
		rc = bg_state_commit(d->state);
	(void)bg_lmdb_check(d, rc, "store of the lease token");
}

static void claim(struct bg_daemon *d);

static void became_held(struct bg_daemon *d, const char *how)
{
	d->lease_state = BG_LEASE_HELD;
	d->lease_last_ok_ms = bg_mono_ms();
	save_token(d);
	char *known = bg_dkey(d, BG_KEY_KNOWN_WORKERS, "");
	if (known) {
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ "SADD", known,
						     d->worker_id, NULL });
		free(known);
	}
	bg_info("lease of worker %s %s", d->worker_id, how);
	d->hooks.lease_held(d);
}

static void wait_and_retry(struct bg_daemon *d, const char *holder)
{
	int64_t now = bg_mono_ms();
	if (d->lease_state != BG_LEASE_WAITING) {
		d->lease_state = BG_LEASE_WAITING;
		d->lease_wait_until_ms =
			now + (int64_t)d->cfg->lease_wait_s * 1000;
		bg_warn("worker id %s is in use (lease %s); waiting up to %d s "
			"for it to expire before consuming anything",
			d->worker_id, holder, d->cfg->lease_wait_s);
	}
	if (now >= d->lease_wait_until_ms) {
		bg_error("worker id %s is still held by another process after "
			 "%d s (lease %s): refusing to consume; is another "
			 "bygated running with this worker id?",
			 d->worker_id, d->cfg->lease_wait_s, holder);
		d->exit_code = BG_EXIT_LEASE_BUSY;
		d->stopping = true;
		return;
	}
	int step = d->lease_attempts < 3 ? d->lease_attempts : 3;
	int64_t ms = 3000LL << step;
	if (ms > 10000)
		ms = 10000;
	if (ms > d->lease_wait_until_ms - now)
		ms = d->lease_wait_until_ms - now;
	if (ms > (int64_t)d->cfg->lease_ttl_s * 500)
		ms = (int64_t)d->cfg->lease_ttl_s *
		     500; /* short TTLs in tests */
	d->lease_attempts++;
	arm(d, (int)(ms > 0 ? ms : 1));
}

struct takeover {
	struct bg_daemon *d;
	char *old;
};

static void on_takeover(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct takeover *tk = priv;
	struct bg_daemon *d = tk->d;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
		became_held(d,
			    "taken over at once from our previous process "
			    "(same state directory, lock proves it is dead)");
	else if (r != NULL)
		claim(d); /* changed meanwhile: start again */
	free(tk->old);
	free(tk);
}

static void on_get_holder(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL)
		return; /* claim restarts when ctl is back */
	if (r->type == REDIS_REPLY_NIL) {
		claim(d); /* expired meanwhile */
		return;
	}
	if (r->type != REDIS_REPLY_STRING) {
		wait_and_retry(d, "(unreadable)");
		return;
	}
	struct bg_buf stored = { 0 };
	bool ours = false;
	if (d->state &&
	    bg_state_meta_get(d->state, "lease_token", &stored) == 0 &&
	    stored.len == 32) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\"token\":\"%s\"", stored.p);
		ours = strstr(r->str, needle) != NULL;
	}
	bg_buf_free(&stored);
	if (!ours) {
		wait_and_retry(d, r->str);
		return;
	}
	struct takeover *tk = calloc(1, sizeof(*tk));
	char val[256], ttl[16];
	if (tk == NULL || (tk->old = strdup(r->str)) == NULL) {
		free(tk);
		wait_and_retry(d, r->str);
		return;
	}
	tk->d = d;
	lease_value(d, d->lease_token, 0, val, sizeof(val));
	snprintf(ttl, sizeof(ttl), "%d", d->cfg->lease_ttl_s);
	bg_rconn_cmdv(d->ctl, on_takeover, tk, 0,
		      (const char *const[]){ "EVAL", TAKEOVER_LUA, "1",
					     d->lease_key, tk->old, val, ttl,
					     NULL });
}

static void on_claim(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
		became_held(d, "claimed");
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		bg_error("lease claim failed: %s", r->str);
		wait_and_retry(d, "(claim error)");
		return;
	}
	bg_rconn_cmdv(d->ctl, on_get_holder, d, 0,
		      (const char *const[]){ "GET", d->lease_key, NULL });
}

static void claim(struct bg_daemon *d)
{
	char val[256], ttl[16];
	if (d->lease_state == BG_LEASE_HELD ||
	    d->lease_state == BG_LEASE_LOST || d->stopping)
		return;
	if (d->lease_state == BG_LEASE_NONE)
		d->lease_state = BG_LEASE_CLAIMING;
	lease_value(d, d->lease_token, 0, val, sizeof(val));
	snprintf(ttl, sizeof(ttl), "%d", d->cfg->lease_ttl_s);
	bg_rconn_cmdv(d->ctl, on_claim, d, 0,
		      (const char *const[]){ "SET", d->lease_key, val, "NX",
					     "EX", ttl, NULL });
}

/* ---- heartbeat (WIRE 5.2) ---- */

static void on_heartbeat(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	if (r == NULL || d->lease_state != BG_LEASE_HELD)
		return; /* a failed beat: the fencing window keeps counting */
	if (r->type != REDIS_REPLY_INTEGER) {
		bg_warn("lease heartbeat failed: %s",
			r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
		return;
	}
	if (r->integer == 0 || r->integer == -1) {
		lease_lost(d, r->integer == 0 ? "the lease holds another token"
					      : "the lease value is not ours");
		return;
	}
	int64_t now = bg_mono_ms();
	bool lapsed = r->integer == 2 ||
		      now - d->lease_last_ok_ms >
			      (int64_t)d->cfg->lease_ttl_s * 1000;
	d->lease_last_ok_ms = now;
	d->lease_first_beat_done = true;
	if (lapsed) {
		bg_warn("lease of worker %s had lapsed (re-created by this "
			"heartbeat): each entry in flight is checked to be "
			"still ours before it is finished",
			d->worker_id);
		d->lease_lapses++;
		bg_metrics_lease_lapse(d->metrics);
	}
	d->hooks.lease_renewed(d, lapsed);
}

static void heartbeat(struct bg_daemon *d)
{
	char val[256], ttl[16];
	lease_value(d, d->lease_token, bg_now_ms(), val, sizeof(val));
	snprintf(ttl, sizeof(ttl), "%d", d->cfg->lease_ttl_s);
	bg_rconn_cmdv(d->ctl, on_heartbeat, d, 0,
		      (const char *const[]){ "EVAL", HEARTBEAT_LUA, "1",
					     d->lease_key, d->lease_token, val,
					     ttl, NULL });
}

static void on_timer(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_daemon *d = arg;
	if (d->lease_state == BG_LEASE_HELD) {
		/* The first beat (last_seen > 0: online) waits for the reader. */
		if (d->reader_ready && bg_rconn_ready(d->ctl))
			heartbeat(d);
		arm(d, d->cfg->heartbeat_interval_ms);
	} else if (d->lease_state == BG_LEASE_WAITING ||
		   d->lease_state == BG_LEASE_CLAIMING) {
		if (bg_rconn_ready(d->ctl))
			claim(d);
	}
}

void bg_lease_start(struct bg_daemon *d)
{
	if (d->lease_timer == NULL) {
		d->lease_timer = evtimer_new(d->base, on_timer, d);
		d->lease_key = bg_dkey(d, BG_KEY_WORKER_ONLINE, d->worker_id);
		bg_uuid_hex(d->lease_token, false);
	}
	claim(d);
}

void bg_lease_on_ctl_up(struct bg_daemon *d)
{
	if (d->lease_state == BG_LEASE_NONE ||
	    d->lease_state == BG_LEASE_CLAIMING ||
	    d->lease_state == BG_LEASE_WAITING)
		bg_lease_start(d);
	else if (d->lease_state == BG_LEASE_HELD && d->reader_ready)
		heartbeat(d); /* publish nothing before the lease is checked */
}

void bg_lease_reader_ready(struct bg_daemon *d)
{
	if (d->reader_ready)
		return;
	d->reader_ready = true;
	heartbeat(d);
	arm(d, d->cfg->heartbeat_interval_ms);
}

bool bg_lease_held(const struct bg_daemon *d)
{
	return d->lease_state == BG_LEASE_HELD;
}

/* DESIGN 6 fencing: no finish later than lease_ttl - 2 x interval after
 * the last successful heartbeat (or the claim). */
bool bg_lease_may_finish(const struct bg_daemon *d)
{
	if (d->lease_state != BG_LEASE_HELD)
		return false;
	int64_t window = (int64_t)d->cfg->lease_ttl_s * 1000 -
			 2LL * d->cfg->heartbeat_interval_ms;
	if (window < d->cfg->heartbeat_interval_ms)
		window = d->cfg->heartbeat_interval_ms;
	return bg_mono_ms() - d->lease_last_ok_ms <= window;
}

static void on_released(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	struct bg_daemon *d = priv;
	d->lease_state = BG_LEASE_RELEASED;
	if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
		bg_warn("lease not released (not ours any more, or Redis "
			"unavailable); membership left alone");
		return;
	}
	char *known = bg_dkey(d, BG_KEY_KNOWN_WORKERS, "");
	char *declared = bg_dkey(d, BG_KEY_WORKER_AGENT_TYPES, d->worker_id);
	if (declared)
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ "DEL", declared, NULL });
	if (known)
		bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
			      (const char *const[]){ "SREM", known,
						     d->worker_id, NULL });
	for (int i = 0; i < d->cfg->n_agent_types; i++) {
		char *m = bg_dkey(d, BG_KEY_AGENT_TYPE_MEMBERS,
				  d->cfg->agent_types[i].name);
		if (m)
			bg_rconn_cmdv(d->ctl, NULL, NULL, 0,
				      (const char *const[]){
					      "SREM", m, d->worker_id, NULL });
		free(m);
	}
	free(known);
	free(declared);
	bg_info("lease released and membership removed");
}

/* Token-checked release, then membership removal (WIRE 5.8). The caller
 * keeps the loop running until the replies came (or a short bound). */
void bg_lease_release(struct bg_daemon *d)
{
	if (d->lease_state != BG_LEASE_HELD || !bg_rconn_ready(d->ctl)) {
		d->lease_state = BG_LEASE_RELEASED;
		return;
	}
	if (d->lease_timer)
		evtimer_del(d->lease_timer); /* no heartbeat after this */
	d->lease_state = BG_LEASE_RELEASING;
	if (bg_rconn_cmdv(d->ctl, on_released, d, 0,
			  (const char *const[]){ "EVAL", RELEASE_LUA, "1",
						 d->lease_key, d->lease_token,
						 NULL }) != 0)
		d->lease_state = BG_LEASE_RELEASED;
}

bool bg_lease_released(const struct bg_daemon *d)
{
	return d->lease_state == BG_LEASE_RELEASED ||
	       d->lease_state == BG_LEASE_LOST ||
	       d->lease_state == BG_LEASE_NONE;
}

void bg_lease_free(struct bg_daemon *d)
{
	if (d->lease_timer)
		event_free(d->lease_timer);
	d->lease_timer = NULL;
	free(d->lease_key);
	d->lease_key = NULL;
}
