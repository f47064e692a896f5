/* client/cli/top.c - `bygate top`: a live view of the fleet (workers,
 * agent types' queues and rates, each pool's children, recent failures)
 * from Redis and each reachable bygated's GET /status, redrawn every
 * interval with plain ANSI escapes; --once prints one frame for scripts;
 * --replay drives the same view from an event log (top_replay.c). */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "client/cli/evlog.h"
#include "client/cli/top.h"
#include "common/buf.h"
#include "conf/config.h"

#define MAX_HTTP 16
#define HTTP_TIMEOUT_MS 1000 /* connect, then the whole reply */
#define HTTP_MAX_BYTES (4 * 1024 * 1024)
#define CHILDREN_SHOWN 20
#define FAILURES_SHOWN 8

static const char *const sort_keys[] = { "backlog", "rate",   "running",
					 "p99",	    "failed", "name" };
#define N_SORTS (int)(sizeof(sort_keys) / sizeof(sort_keys[0]))

struct top {
	struct cli *cli;
	bool once;
	int interval_ms;
	int sort;
	char filter[128];
	const char *replay;
	double speed;
	char *http[MAX_HTTP]; /* "host:port" */
	int n_http;
	json_t *prev; /* live: agent type -> [done total, mono ms] */
};

static const struct option top_opts[] = {
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "sort", required_argument, NULL, OPT_SORT },
	{ "filter", required_argument, NULL, OPT_FILTER },
	{ "http", required_argument, NULL, OPT_HTTP },
	{ "replay", required_argument, NULL, OPT_REPLAY },
	{ "speed", required_argument, NULL, OPT_SPEED },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

/* ---- small helpers ---------------------------------------------------- */

static const char *jstr_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static bool known(const json_t *o, const char *key)
{
	return json_is_number(json_object_get(o, key));
}

static double jnum(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* An integer column, "-" when unknown. */
static const char *col_i(const json_t *o, const char *key, char *buf, size_t n)
{
	if (!known(o, key))
		return "-";
	snprintf(buf, n, "%lld", (long long)jnum(o, key));
	return buf;
}

/* A duration: 850ms, 12.3s, 4m05s, 2h10m; "-" when unknown. */
static const char *col_ms(const json_t *o, const char *key, char *buf, size_t n)
{
	if (!known(o, key))
		return "-";
	long long ms = (long long)jnum(o, key);
	if (ms < 1000)
		snprintf(buf, n, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, n, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else
		snprintf(buf, n, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
	return buf;
}

static bool matches(const struct top *tp, const char *a, const char *b)
{
	return tp->filter[0] == '\0' || strstr(a, tp->filter) ||
	       (b && strstr(b, tp->filter));
}

/* ---- GET /status of a bygated ------------------------------------------ */

static int wait_fd(int fd, short ev, int64_t until)
{
	for (;;) {
		int left = (int)(until - mono_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = { fd, ev, 0 };
		int rc = poll(&p, 1, left);
		if (rc == 1)
			return 0;
		if (rc == -1 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *hostport, int64_t until)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return -EHOSTUNREACH;
	int fd = socket(ai->ai_family,
			SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = fd == -1 ? -errno : 0;
	if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, until)
					  : -errno;
		int err = 0;
		socklen_t len = sizeof(err);
		if (rc == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err)
			rc = -err;
	}
	freeaddrinfo(ai);
	if (rc && fd != -1)
		close(fd);
	return rc ? rc : fd;
}

/* The JSON body of GET /status on hostport; NULL when unreachable or not
 * a 200 with a JSON object. */
static json_t *get_status(const char *hostport)
{
	int64_t until = mono_ms() + HTTP_TIMEOUT_MS;
	int fd = connect_to(hostport, until);
	if (fd < 0)
		return NULL;
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET /status HTTP/1.0\r\nHost: %s\r\n"
			 "Connection: close\r\n\r\n",
			 hostport);
	struct bg_buf in = { 0 };
	bool ok = n > 0 && (size_t)n < sizeof(req) &&
		  send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
	while (ok && in.len < HTTP_MAX_BYTES) {
		if (wait_fd(fd, POLLIN, until) != 0 ||
		    bg_buf_reserve(&in, 65536) != 0) {
			ok = false;
			break;
		}
		ssize_t r = recv(fd, in.p + in.len, 65536, 0);
		if (r == 0)
			break;
		if (r == -1 && errno != EINTR && errno != EAGAIN)
			ok = false;
		if (r > 0)
			in.len += (size_t)r;
	}
	close(fd);
	json_t *doc = NULL;
	if (ok && bg_buf_append(&in, "", 1) == 0 &&
	    !strncmp(in.p, "HTTP/1.", 7) && !strncmp(in.p + 8, " 200", 4)) {
		const char *body = strstr(in.p, "\r\n\r\n");
		doc = body ? json_loads(body + 4, 0, NULL) : NULL;
		if (doc && !json_is_object(doc)) {
			json_decref(doc);
			doc = NULL;
		}
	}
	bg_buf_free(&in);
	return doc;
}

/* ---- the live frame ------------------------------------------------------ */

static json_t *find_by(json_t *arr, const char *key, const char *v)
{
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
		if (!strcmp(jstr_of(o, key), v))
			return o;
	return NULL;
}

static int64_t sum_done(const json_t *done)
{
	const char *k;
	json_t *v;
	int64_t n = 0;
	json_object_foreach((json_t *)done, k, v)
		if (strcmp(k, "acked"))
			n += (int64_t)json_integer_value(v);
	return n;
}

/* Fold one bygated's /status into the frame: its worker row, its
 * children, its per-agent-type running, done and percentiles. */
static void fold_status(json_t *frame, json_t *st, const char *hostport)
{
	json_t *workers = json_object_get(frame, "workers");
	const char *id = jstr_of(st, "worker_id");
	json_t *w = find_by(workers, "worker_id", id);
	if (w == NULL) {
		w = json_pack("{s:s,s:n,s:s}", "worker_id", id, "online",
			      "lifecycle", jstr_of(st, "lifecycle"));
		json_array_append_new(workers, w);
	}
	json_t *pool = json_object_get(st, "pool");
	json_object_set(w, "pool", pool);
	json_object_set(w, "generation", json_object_get(pool, "generation"));
	json_object_set(w, "tasks", json_object_get(st, "tasks"));
	json_object_set_new(w, "http", json_string(hostport));
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(st, "children"), i, c) {
		json_object_set_new(c, "worker_id", json_string(id));
		json_array_append(json_object_get(frame, "children"), c);
	}
	json_t *types = json_object_get(frame, "agent_types");
	json_array_foreach(json_object_get(st, "agent_types"), i, c) {
		const char *name = jstr_of(c, "agent_type");
		json_t *t = find_by(types, "agent_type", name);
		if (t == NULL) {
			t = json_pack("{s:s}", "agent_type", name);
			json_array_append_new(types, t);
		}
		json_t *done = json_object_get(c, "done");
		int64_t failed =
			json_integer_value(json_object_get(done, "failed")) +
			json_integer_value(
				json_object_get(done, "deadlettered"));
		json_object_set_new(
			t, "running",
			json_integer((json_int_t)jnum(t, "running") +
				     json_integer_value(
					     json_object_get(c, "running"))));
		json_object_set_new(t, "done",
				    json_integer((json_int_t)jnum(t, "done") +
						 sum_done(done)));
		json_object_set_new(
			t, "failed",
			json_integer((json_int_t)jnum(t, "failed") + failed));
		const char *q[] = { "run_ms_p50", "run_ms_p99" };
		for (int k = 0; k < 2; k++)
			if (known(c, q[k]) &&
			    (!known(t, q[k]) || jnum(c, q[k]) > jnum(t, q[k])))
				json_object_set(t, q[k],
						json_object_get(c, q[k]));
	}
}

/* A worker whose /status was not read: its active executions (WIRE 5.9,
 * at most 100) stand for its children, without slot or pid (a RUNNING
 * record may still wait in bygated's ready queue); they also give the
 * agent types' running count. */
static void children_from_redis(json_t *frame, const json_t *w,
				const json_t *info)
{
	json_t *out = json_object_get(frame, "children");
	int64_t now = (int64_t)jnum(frame, "now_ms");
	size_t j;
	json_t *e;
	json_array_foreach(json_object_get(info, "active_executions"), j, e) {
		const char *type = jstr_of(e, "target_agent_type");
		json_t *o = json_pack("{s:s,s:n,s:n,s:s,s:s,s:s,s:s}",
				      "worker_id", jstr_of(w, "worker_id"),
				      "slot", "pid", "state",
				      jstr_of(e, "status"), "agent_type", type,
				      "message_id", jstr_of(e, "message_id"),
				      "session_id", jstr_of(e, "session_id"));
		if (o == NULL)
			continue;
		if (jnum(e, "started_at") > 0)
			json_object_set_new(
				o, "elapsed_ms",
				json_integer(
					(json_int_t)(now -
						     jnum(e, "started_at"))));
		json_array_append_new(out, o);
		json_t *t = find_by(json_object_get(frame, "agent_types"),
				    "agent_type", type);
		if (t && !strcmp(jstr_of(e, "status"), "RUNNING"))
			json_object_set_new(
				t, "running",
				json_integer((json_int_t)jnum(t, "running") +
					     1));
	}
}

/* From each worker's registry entry (bg_client_worker_info): the recent
 * failures, the finishes its history index keeps (the last 20) that did
 * not succeed; and, for a worker without a /status, its children. */
static void add_worker_info(struct top *tp, json_t *frame)
{
	json_t *out = json_object_get(frame, "failures");
	size_t i, j;
	json_t *w, *e;
	json_array_foreach(json_object_get(frame, "workers"), i, w) {
		char *raw = NULL;
		if (bg_client_worker_info(tp->cli->client,
					  jstr_of(w, "worker_id"), &raw) != 0)
			continue;
		json_t *info = json_loads(raw, 0, NULL);
		free(raw);
		if (!*jstr_of(w, "http") &&
		    json_is_true(json_object_get(w, "online")))
			children_from_redis(frame, w, info);
		json_array_foreach(json_object_get(info, "recent_executions"),
				   j, e) {
			const char *st = jstr_of(e, "status");
			if (strcmp(st, "FAILED") && strcmp(st, "TIMEOUT"))
				continue;
			const char *err = jstr_of(e, "error_message");
			if (!*err)
				err = jstr_of(e, "error");
			json_array_append_new(
				out,
				json_pack("{s:I,s:s,s:s,s:s,s:s}", "ts_ms",
					  (json_int_t)jnum(e, "finished_at"),
					  "agent_type",
					  jstr_of(e, "target_agent_type"),
					  "message_id",
					  jstr_of(e, "message_id"), "status",
					  st, "error", err));
		}
		json_decref(info);
	}
}

/* Lanes (docs/scheduling.md): each agent type's lanes with entries
 * waiting in the fleet's ready set, from bg_client_lanes. */
static void add_lanes(struct top *tp, json_t *frame)
{
	char *raw = NULL;
	if (bg_client_lanes(tp->cli->client, NULL, &raw) != 0)
		return;
	json_t *doc = json_loads(raw, 0, NULL), *out = json_array();
	free(raw);
	size_t i, j;
	json_t *t, *l;
	json_array_foreach(json_object_get(doc, "agent_types"), i, t) {
		json_array_foreach(json_object_get(t, "lanes"), j, l) {
			json_t *o = json_pack(
				"{s:s,s:s,s:O,s:O,s:O}", "agent_type",
				jstr_of(t, "agent_type"), "lane",
				jstr_of(l, "lane"), "waiting",
				json_object_get(l, "waiting"), "oldest_age_ms",
				json_object_get(l, "oldest_age_ms")
					? json_object_get(l, "oldest_age_ms")
					: json_null(),
				"fleet_running",
				json_object_get(l, "fleet_running")
					? json_object_get(l, "fleet_running")
					: json_null());
			if (o)
				json_array_append_new(out, o);
		}
	}
	json_decref(doc);
	json_object_set_new(frame, "lanes", out);
}

/* Rates: the agent type's finished count (from /status) or, without
 * one, the entries its group read and acknowledged, against the previous
 * sample. */
static void add_rates(struct top *tp, json_t *frame)
{
	int64_t now = mono_ms();
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(frame, "agent_types"), i, t) {
		double total;
		if (known(t, "done"))
			total = jnum(t, "done");
		else if (known(t, "entries_read") && known(t, "pending"))
			total = jnum(t, "entries_read") - jnum(t, "pending");
		else
			continue;
		const char *name = jstr_of(t, "agent_type");
		json_t *p = json_object_get(tp->prev, name);
		if (p) {
			double dt =
				(double)(now - json_integer_value(
						       json_array_get(p, 1))) /
				1000.0;
			double d =
				total - json_number_value(json_array_get(p, 0));
			if (dt > 0)
				json_object_set_new(t, "rate",
						    json_real(d > 0 ? d / dt
								    : 0));
		}
		json_object_set_new(tp->prev, name,
				    json_pack("[f,I]", total, (json_int_t)now));
	}
}

static json_t *sample_live(struct top *tp)
{
	char *raw = NULL;
	json_t *workers = NULL, *queues = NULL;
	if (bg_client_workers(tp->cli->client, &raw) == 0)
		workers = json_loads(raw, 0, NULL);
	free(raw);
	raw = NULL;
	if (bg_client_queues(tp->cli->client, NULL, &raw) == 0)
		queues = json_loads(raw, 0, NULL);
	free(raw);
	json_t *frame =
		json_pack("{s:s,s:I,s:[],s:[],s:[],s:[]}", "source", "live",
			  "now_ms", (json_int_t)((int64_t)time(NULL) * 1000),
			  "workers", "agent_types", "children", "failures");
	if (frame == NULL)
		goto out;
	size_t i;
	json_t *o;
	json_array_foreach(workers, i, o) {
		json_array_append_new(
			json_object_get(frame, "workers"),
			json_pack("{s:s,s:O,s:s,s:n,s:n,s:n}", "worker_id",
				  jstr_of(o, "worker_id"), "online",
				  json_object_get(o, "online")
					  ? json_object_get(o, "online")
					  : json_null(),
				  "lifecycle", jstr_of(o, "lifecycle"),
				  "generation", "pool", "http"));
	}
	json_array_foreach(json_object_get(queues, "agent_types"), i, o) {
		json_t *t = json_pack(
			"{s:s,s:O,s:O,s:O,s:O,s:O,s:I}", "agent_type",
			jstr_of(o, "agent_type"), "length",
			json_object_get(o, "length"), "lag",
			json_object_get(o, "lag"), "pending",
			json_object_get(o, "pending"), "oldest_pending_age_ms",
			json_object_get(o, "oldest_pending_age_ms"),
			"entries_read", json_object_get(o, "entries_read"),
			"consumers",
			(json_int_t)json_array_size(
				json_object_get(o, "consumers")));
		if (t == NULL)
			continue;
		if (known(t, "lag") || known(t, "pending"))
			json_object_set_new(
				t, "backlog",
				json_integer((json_int_t)(jnum(t, "lag") +
							  jnum(t, "pending"))));
		json_array_append_new(json_object_get(frame, "agent_types"), t);
	}
	for (int k = 0; k < tp->n_http; k++) {
		json_t *st = get_status(tp->http[k]);
		if (st)
			fold_status(frame, st, tp->http[k]);
		json_decref(st);
	}
	add_lanes(tp, frame);
	add_worker_info(tp, frame);
	add_rates(tp, frame);
out:
	json_decref(workers);
	json_decref(queues);
	return frame;
}

/* ---- the screen ------------------------------------------------------------ */

static double sort_value(const json_t *t, int sort)
{
	switch (sort) {
	case 0:
		return jnum(t, "backlog");
	case 1:
		return jnum(t, "rate");
	case 2:
		return jnum(t, "running");
	case 3:
		return jnum(t, "run_ms_p99");
	case 4:
		return jnum(t, "failed");
	}
	return 0;
}

static int g_sort; /* for qsort */

static int cmp_types(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	if (g_sort < N_SORTS - 1) {
		double u = sort_value(x, g_sort), v = sort_value(y, g_sort);
		if (u != v)
			return u < v ? 1 : -1; /* largest first */
	}
	return strcmp(jstr_of(x, "agent_type"), jstr_of(y, "agent_type"));
}

static int cmp_children(const void *a, const void *b)
{
	double u = jnum(*(json_t *const *)a, "elapsed_ms"),
	       v = jnum(*(json_t *const *)b, "elapsed_ms");
	return (u < v) - (u > v);
}

/* arr's items in a malloc'd array, sorted by cmp; *n their count. */
static json_t **sorted(json_t *arr, int (*cmp)(const void *, const void *),
		       size_t *n)
{
	*n = json_array_size(arr);
	json_t **v = calloc(*n ? *n : 1, sizeof(*v));
	if (v == NULL) {
		*n = 0;
		return NULL;
	}
	for (size_t i = 0; i < *n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, *n, sizeof(*v), cmp);
	return v;
}

static void render(struct top *tp, json_t *frame, struct bg_buf *o, bool screen)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], k[32],
		l[32];
	time_t now = (time_t)(jnum(frame, "now_ms") / 1000);
	struct tm tm;
	gmtime_r(&now, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	bg_buf_printf(o, "bygate top - %s UTC - %s%s  sort: %s  filter: %s\n",
		      ts, jstr_of(frame, "source"),
		      tp->replay ? " (event log)" : "", sort_keys[tp->sort],
		      tp->filter[0] ? tp->filter : "-");
	if (screen)
		bg_buf_puts(o, "keys: q quit  s sort  / filter\n");

	bg_buf_puts(o, "\nWORKERS\n");
	bg_buf_printf(o, "  %-24s %-7s %-10s %4s %9s %6s  %s\n", "worker",
		      "lease", "lifecycle", "gen", "busy/size", "tasks",
		      "http");
	size_t i, n;
	json_t *w;
	json_array_foreach(json_object_get(frame, "workers"), i, w) {
		json_t *online = json_object_get(w, "online");
		json_t *pool = json_object_get(w, "pool");
		if (pool && json_is_object(pool))
			snprintf(b, sizeof(b), "%lld/%lld",
				 (long long)jnum(pool, "busy"),
				 (long long)jnum(pool, "size"));
		else
			snprintf(b, sizeof(b), "-");
		bg_buf_printf(o, "  %-24s %-7s %-10s %4s %9s %6s  %s\n",
			      jstr_of(w, "worker_id"),
			      json_is_true(online)    ? "online"
			      : json_is_false(online) ? "offline"
						      : "-",
			      *jstr_of(w, "lifecycle") ? jstr_of(w, "lifecycle")
						       : "-",
			      col_i(w, "generation", a, sizeof(a)), b,
			      col_i(w, "tasks", c, sizeof(c)),
			      *jstr_of(w, "http") ? jstr_of(w, "http") : "-");
	}

	bg_buf_puts(o, "\nAGENT TYPES\n");
	bg_buf_printf(o,
		      "  %-20s %8s %8s %8s %8s %8s %7s %8s %7s %7s %8s %6s\n",
		      "agent_type", "length", "lag", "pending", "backlog",
		      "oldest", "running", "rate/s", "p50", "p99", "done",
		      "failed");
	g_sort = tp->sort;
	json_t **types =
		sorted(json_object_get(frame, "agent_types"), cmp_types, &n);
	for (i = 0; i < n; i++) {
		json_t *t = types[i];
		if (!matches(tp, jstr_of(t, "agent_type"), NULL))
			continue;
		char rate[32];
		if (known(t, "rate"))
			snprintf(rate, sizeof(rate), "%.1f", jnum(t, "rate"));
		else
			snprintf(rate, sizeof(rate), "-");
		bg_buf_printf(
			o,
			"  %-20s %8s %8s %8s %8s %8s %7s %8s %7s %7s %8s %6s\n",
			jstr_of(t, "agent_type"),
			col_i(t, "length", a, sizeof(a)),
			col_i(t, "lag", b, sizeof(b)),
			col_i(t, "pending", c, sizeof(c)),
			col_i(t, "backlog", d, sizeof(d)),
			col_ms(t, "oldest_pending_age_ms", e, sizeof(e)),
			col_i(t, "running", f, sizeof(f)), rate,
			col_ms(t, "run_ms_p50", g, sizeof(g)),
			col_ms(t, "run_ms_p99", h, sizeof(h)),
			col_i(t, "done", k, sizeof(k)),
			col_i(t, "failed", l, sizeof(l)));
	}
	free(types);

	json_t *lanes = json_object_get(frame, "lanes");
	if (json_array_size(lanes) > 0) {
		bg_buf_puts(o, "\nLANES (the fleet's ready set)\n");
		bg_buf_printf(o, "  %-20s %-16s %8s %8s %13s\n", "agent_type",
			      "lane", "waiting", "oldest", "fleet_running");
	}
	json_array_foreach(lanes, i, w) {
		if (!matches(tp, jstr_of(w, "agent_type"), jstr_of(w, "lane")))
			continue;
		bg_buf_printf(o, "  %-20s %-16s %8s %8s %13s\n",
			      jstr_of(w, "agent_type"),
			      *jstr_of(w, "lane") ? jstr_of(w, "lane")
						  : "(default)",
			      col_i(w, "waiting", a, sizeof(a)),
			      col_ms(w, "oldest_age_ms", b, sizeof(b)),
			      col_i(w, "fleet_running", c, sizeof(c)));
	}

	json_t **ch =
		sorted(json_object_get(frame, "children"), cmp_children, &n);
	bg_buf_printf(o, "\nCHILDREN (%zu tasks running)\n", n);
	bg_buf_printf(o, "  %-16s %4s %8s %-8s %-16s %-28s %8s\n", "worker",
		      "slot", "pid", "state", "agent_type", "message",
		      "elapsed");
	size_t shown = 0;
	for (i = 0; i < n; i++) {
		json_t *t = ch[i];
		if (!matches(tp, jstr_of(t, "agent_type"),
			     jstr_of(t, "message_id")))
			continue;
		if (shown++ == CHILDREN_SHOWN) {
			bg_buf_printf(o, "  ... and more\n");
			break;
		}
		bg_buf_printf(o, "  %-16s %4s %8s %-8s %-16s %-28s %8s\n",
			      jstr_of(t, "worker_id"),
			      col_i(t, "slot", a, sizeof(a)),
			      col_i(t, "pid", b, sizeof(b)),
			      jstr_of(t, "state"), jstr_of(t, "agent_type"),
			      jstr_of(t, "message_id"),
			      col_ms(t, "elapsed_ms", c, sizeof(c)));
	}
	free(ch);

	bg_buf_puts(o, "\nRECENT FAILURES\n");
	shown = 0;
	json_array_foreach(json_object_get(frame, "failures"), i, w) {
		if (!matches(tp, jstr_of(w, "agent_type"),
			     jstr_of(w, "message_id")) ||
		    shown++ == FAILURES_SHOWN)
			continue;
		char when[40];
		bg_buf_printf(o, "  %s %-16s %-28s %-10s %.60s\n",
			      fmt_ms((json_int_t)jnum(w, "ts_ms"), when,
				     sizeof(when)),
			      jstr_of(w, "agent_type"),
			      jstr_of(w, "message_id"), jstr_of(w, "status"),
			      jstr_of(w, "error"));
	}
	if (shown == 0)
		bg_buf_puts(o, "  (none)\n");
}

/* ---- the terminal ---------------------------------------------------------- */

static struct termios g_saved;
static bool g_raw;

static void restore_terminal(void)
{
	if (g_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
	g_raw = false;
	fputs("\033[?25h", stdout); /* the cursor back */
	fflush(stdout);
}

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void raw_terminal(void)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0) {
		struct termios t = g_saved;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		g_raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
	}
	fputs("\033[?25l", stdout); /* no cursor */
}

/* The frame from the top left, each line cut at the terminal's width and
 * cleared to its end, lines past its height left out, then the rest of
 * the screen cleared. */
static void draw(struct top *tp, json_t *frame)
{
	struct bg_buf o = { 0 };
	bg_buf_puts(&o, "\033[H");
	struct bg_buf body = { 0 };
	render(tp, frame, &body, true);
	struct winsize ws = { 0 };
	size_t cols = 0, rows = 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		cols = ws.ws_col;
		rows = ws.ws_row;
	}
	size_t row = 0;
	for (const char *l = body.p; l && l < body.p + body.len;) {
		const char *nl =
			memchr(l, '\n', (size_t)(body.p + body.len - l));
		size_t len = nl ? (size_t)(nl - l)
				: (size_t)(body.p + body.len - l);
		if (rows && ++row >= rows)
			break;
		bg_buf_append(&o, l, cols && len > cols ? cols : len);
		bg_buf_puts(&o, "\033[K\n");
		l += len + 1;
	}
	bg_buf_puts(&o, "\033[J");
	fwrite(o.p, 1, o.len, stdout);
	fflush(stdout);
	bg_buf_free(&o);
	bg_buf_free(&body);
}

/* Read the filter typed after '/', up to Enter (Escape clears it). */
static void read_filter(struct top *tp)
{
	size_t n = 0;
	char buf[sizeof(tp->filter)];
	printf("\033[999;1H\033[Kfilter: ");
	fflush(stdout);
	while (!g_stop) {
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		if (poll(&p, 1, 500) != 1)
			continue;
		char ch;
		if (read(STDIN_FILENO, &ch, 1) != 1)
			break;
		if (ch == '\n' || ch == '\r')
			break;
		if (ch == 27) {
			n = 0;
			break;
		}
		if ((ch == 127 || ch == 8) && n > 0) {
			n--;
			printf("\b \b");
		} else if (ch >= 32 && n + 1 < sizeof(buf)) {
			buf[n++] = ch;
			putchar(ch);
		}
		fflush(stdout);
	}
	buf[n] = '\0';
	memcpy(tp->filter, buf, n + 1);
}

/* Wait up to ms for a key; false when the view should end. */
static bool keys(struct top *tp, int ms)
{
	int64_t until = mono_ms() + ms;
	while (!g_stop) {
		int left = (int)(until - mono_ms());
		if (left <= 0)
			return true;
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		if (!g_raw || poll(&p, 1, left) != 1) {
			if (!g_raw)
				sleep_ms(left > 100 ? 100 : left);
			continue;
		}
		char ch;
		if (read(STDIN_FILENO, &ch, 1) != 1)
			return true;
		if (ch == 'q' || ch == 'Q')
			return false;
		if (ch == 's' || ch == 'S') {
			tp->sort = (tp->sort + 1) % N_SORTS;
			return true;
		}
		if (ch == '/') {
			read_filter(tp);
			return true;
		}
	}
	return false;
}

static void emit(struct top *tp, json_t *frame)
{
	if (tp->cli->json) {
		print_json(frame);
		return;
	}
	struct bg_buf o = { 0 };
	render(tp, frame, &o, false);
	fwrite(o.p, 1, o.len, stdout);
	bg_buf_free(&o);
}

/* ---- the two sources --------------------------------------------------------- */

static int run_live(struct top *tp)
{
	int status = connect_client(tp->cli);
	if (status != EXIT_OK)
		return status;
	json_t *frame = sample_live(tp);
	if (tp->once) { /* rates need a second sample */
		sleep_ms(tp->interval_ms);
		json_decref(frame);
		frame = sample_live(tp);
		if (frame)
			emit(tp, frame);
		json_decref(frame);
		return frame ? EXIT_OK : EXIT_FAIL;
	}
	raw_terminal();
	fputs("\033[2J", stdout);
	while (frame && !g_signal) {
		draw(tp, frame);
		if (!keys(tp, tp->interval_ms))
			break;
		json_decref(frame);
		frame = sample_live(tp);
	}
	json_decref(frame);
	restore_terminal();
	return EXIT_OK;
}

/* A replay's reading state: the log, the event read but not yet due,
 * the log time of the last event applied. */
struct replay_src {
	struct evlog_reader rd;
	json_t *pending;
	int64_t last_ts;
	bool at_end;
};

/* Apply the log's events with ts_ms <= until (every one: until < 0) to
 * r. 0, or -errno on a read error. */
static int take_until(struct replay_src *src, struct top_replay *r,
		      int64_t until)
{
	for (;;) {
		if (src->pending == NULL) {
			char *line;
			int rc = evlog_next(&src->rd, false, &line);
			if (rc <= 0) {
				src->at_end = rc == 0;
				return rc;
			}
			src->pending = evlog_parse(line);
			free(line);
			if (src->pending == NULL)
				continue;
		}
		int64_t ts = (int64_t)jint(src->pending, "ts_ms");
		if (until >= 0 && ts > until)
			return 0;
		if (ts > src->last_ts)
			src->last_ts = ts;
		top_replay_take(r, src->pending);
		json_decref(src->pending);
		src->pending = NULL;
	}
}

/* The view driven by the log: its clock runs interval * speed per
 * frame from the first event; --once or --speed 0 show the end of the
 * run at once. */
static int run_replay(struct top *tp)
{
	struct replay_src src = { 0 };
	int rc = evlog_open(&src.rd, tp->replay);
	if (rc == 0 && src.rd.f == NULL)
		rc = -ENOENT;
	struct top_replay *r = rc ? NULL : top_replay_new();
	if (rc == 0 && r == NULL)
		rc = -ENOMEM;
	bool all = tp->once || tp->speed == 0;
	if (rc == 0)
		rc = take_until(&src, r, all ? -1 : 0); /* 0: the first */
	if (rc == 0 && src.pending)
		src.last_ts = (int64_t)jint(src.pending, "ts_ms");
	if (rc == 0 && tp->once) {
		json_t *frame = top_replay_frame(r, src.last_ts);
		if (frame)
			emit(tp, frame);
		json_decref(frame);
	} else if (rc == 0) {
		int64_t now = src.last_ts;
		raw_terminal();
		fputs("\033[2J", stdout);
		while (rc == 0 && !g_signal) {
			json_t *frame = top_replay_frame(r, now);
			if (frame)
				draw(tp, frame);
			json_decref(frame);
			if (!keys(tp, tp->interval_ms))
				break;
			if (!src.at_end) {
				now += (int64_t)((double)tp->interval_ms *
						 tp->speed);
				rc = take_until(&src, r, now);
			}
		}
		restore_terminal();
	}
	json_decref(src.pending);
	evlog_close(&src.rd);
	top_replay_free(r);
	if (rc) {
		fprintf(stderr, "bygate: top: reading %s: %s\n", tp->replay,
			strerror(-rc));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- the command ---------------------------------------------------------------- */

/* The bygated of the configuration -c names, when its http.port is set. */
static void http_from_config(struct top *tp)
{
	struct bg_config cfg = { 0 };
	char err[512];
	if (bg_config_load(config_path(tp->cli->config), &cfg, err,
			   sizeof err) != 0)
		return;
	if (cfg.http_port > 0) {
		const char *host = cfg.http_bind;
		if (host == NULL || !host[0] || !strcmp(host, "0.0.0.0"))
			host = "127.0.0.1";
		else if (!strcmp(host, "::"))
			host = "::1";
		char buf[300];
		snprintf(buf, sizeof(buf), "%s:%d", host, cfg.http_port);
		tp->http[tp->n_http] = strdup(buf);
		if (tp->http[tp->n_http])
			tp->n_http++;
	}
	bg_config_free(&cfg);
}

static int parse_top(struct top *tp, int argc, char **argv)
{
	int opt;
	while ((opt = getopt_long(argc, argv, "", top_opts, NULL)) != -1) {
		if (opt == OPT_ONCE) {
			tp->once = true;
		} else if (opt == OPT_INTERVAL) {
			if (parse_ms(optarg, &tp->interval_ms) != 0)
				return usage_error("top: bad --interval '%s' "
						   "(milliseconds > 0)",
						   optarg);
		} else if (opt == OPT_SORT) {
			int k = 0;
			while (k < N_SORTS && strcmp(sort_keys[k], optarg))
				k++;
			if (k == N_SORTS)
				return usage_error(
					"top: bad --sort '%s' (backlog, rate, "
					"running, p99, failed or name)",
					optarg);
			tp->sort = k;
		} else if (opt == OPT_FILTER) {
			snprintf(tp->filter, sizeof(tp->filter), "%s", optarg);
		} else if (opt == OPT_HTTP) {
			if (tp->n_http == MAX_HTTP)
				return usage_error("top: at most %s --http",
						   "16");
			if (strrchr(optarg, ':') == NULL)
				return usage_error("top: bad --http '%s' "
						   "(HOST:PORT)",
						   optarg);
			tp->http[tp->n_http++] = strdup(optarg);
		} else if (opt == OPT_REPLAY) {
			tp->replay = optarg;
		} else if (opt == OPT_SPEED) {
			char *end;
			tp->speed = strtod(optarg, &end);
			if (!*optarg || *end || !isfinite(tp->speed) ||
			    tp->speed < 0)
				return usage_error("top: bad --speed '%s' (a "
						   "number >= 0)",
						   optarg);
		} else if (opt == OPT_JSON) {
			tp->cli->json = true;
		} else {
			return usage_error("%s: bad option", "top");
		}
	}
	return no_positional(argc, argv);
}

int cmd_top(struct cli *cli, int argc, char **argv)
{
	struct top tp = { .cli = cli, .interval_ms = 1000, .speed = 1.0 };
	int status = parse_top(&tp, argc, argv);
	if (status == EXIT_OK && cli->json && !tp.once)
		status = usage_error("top: %s", "--json needs --once");
	if (status == EXIT_OK && tp.replay) {
		status = run_replay(&tp);
	} else if (status == EXIT_OK) {
		if (tp.n_http == 0)
			http_from_config(&tp);
		tp.prev = json_object();
		status = tp.prev ? run_live(&tp) : EXIT_FAIL;
		json_decref(tp.prev);
	}
	for (int i = 0; i < tp.n_http; i++)
		free(tp.http[i]);
	return status;
}
