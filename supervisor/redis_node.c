/* supervisor/redis_node.c - one asynchronous hiredis connection to one
 * Redis server, with set-up, per-request deadlines and reconnection
 * (redis_node.h). */
#include "supervisor/redis_node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "common/buf.h"
#include "supervisor/log.h"
#include "supervisor/redis_events.h"

struct bg_rreq {
	struct bg_rreq *next, *prev;
	struct bg_rnode *conn;
	bg_rconn_reply_fn fn;
	void *priv;
	int64_t deadline_ms;
	size_t bytes;
	bool entries; /* bg_rnode_cmd_entries: the reply is budgeted */
	bool setup;   /* a set-up command: on_setup_reply */
};

enum rconn_state { RC_DOWN, RC_CONNECTING, RC_READY, RC_CLOSED };

struct bg_rnode {
	struct bg_rconn *owner; /* handed to every callback */
	struct event_base *base;
	struct bg_rconn_opts o;
	char *host, *username, *password, *role, *client_name;
	bg_rconn_state_fn on_state;
	void *arg;
	redisAsyncContext *ac;
	enum rconn_state state;
	int setup_pending; /* set-up replies still expected */
	bool setup_failed;
	long long client_id;
	struct bg_rreq head; /* circular list of requests in flight */
	size_t n_pending, pending_bytes;
	int64_t connect_deadline_ms;
	int backoff_ms;
	uint64_t reconnects;
	struct event *tick;  /* deadline checks, every 100 ms */
	struct event *retry; /* reconnect timer */
	struct bg_rconn_value_hook hook;
	struct bg_buf resp;    /* the command being formatted, reused */
	struct bg_rreq *spare; /* answered requests kept for reuse (next) */
	int n_spare;
};

/* Requests are reused rather than allocated per command (bygated sends
 * ~50 a task); not under AddressSanitizer, which should see each one's
 * lifetime. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0
#else
#define SPARE_MAX 256
#endif

static struct bg_rreq *req_new(struct bg_rnode *c)
{
	struct bg_rreq *q = c->spare;
	if (q == NULL)
		return calloc(1, sizeof(*q));
	c->spare = q->next;
	c->n_spare--;
	memset(q, 0, sizeof(*q));
	return q;
}

static void req_release(struct bg_rnode *c, struct bg_rreq *q)
{
	if (c->n_spare >= SPARE_MAX || c->state == RC_CLOSED) {
		free(q);
		return;
	}
	q->next = c->spare;
	c->spare = q;
	c->n_spare++;
}

/* The coarse monotonic clock (a read of the vDSO's last tick, not of the
 * TSC: send_raw calls it per command). Deadlines and their check both
 * use it, so one is off by at most a scheduler tick (1-10 ms), far below
 * the timeouts and the check's own period. */
static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dupe(const char *s)
{
	return strdup(s ? s : "");
}

static void req_unlink(struct bg_rreq *q)
{
	q->prev->next = q->next;
	q->next->prev = q->prev;
	q->conn->n_pending--;
	q->conn->pending_bytes -= q->bytes;
}

/* ---- the reader: hiredis's own reply objects, but for the values a
 * hook keeps out ---- */

static redisReplyObjectFunctions base_fns, hooked_fns;

static int task_depth(const redisReadTask *task)
{
	int depth = 0;
	for (const redisReadTask *p = task->parent; p; p = p->parent)
		depth++;
	return depth;
}

static void *hooked_array(const redisReadTask *task, int n)
{
	struct bg_rnode *c = task->privdata;
	if (task->parent == NULL && c && c->hook.begin) {
		struct bg_rreq *q = c->head.next; /* the oldest in flight */
		c->hook.begin(c->hook.arg, q != &c->head && q->entries);
	}
	return base_fns.createArray(task, n);
}

static void *hooked_string(const redisReadTask *task, char *str, size_t len)
{
	struct bg_rnode *c = task->privdata;
	char marker[64];
	if (c && c->hook.keep_out && task->type == REDIS_REPLY_STRING &&
	    (task->idx & 1) && task_depth(task) >= 3 &&
	    c->hook.keep_out(c->hook.arg, len, marker, sizeof(marker))) {
		redisReadTask t = *task;
		t.type = REDIS_REPLY_STATUS;
		return base_fns.createString(&t, marker, strlen(marker));
	}
	return base_fns.createString(task, str, len);
}

static void install_reader(struct bg_rnode *c, redisAsyncContext *ac)
{
	if (c->hook.keep_out == NULL && c->hook.begin == NULL)
		return;
	if (base_fns.createString == NULL) {
		redisReader *r = redisReaderCreate();
		if (r == NULL)
			return;
		base_fns = *r->fn;
		redisReaderFree(r);
		hooked_fns = base_fns;
		hooked_fns.createArray = hooked_array;
		hooked_fns.createString = hooked_string;
	}
	ac->c.reader->fn = &hooked_fns;
	ac->c.reader->privdata = c;
}

void bg_rnode_set_value_hook(struct bg_rnode *c,
			     const struct bg_rconn_value_hook *hook)
{
	c->hook = *hook;
}

static void on_setup_reply(struct bg_rnode *c, redisReply *r, void *priv);

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	(void)ac;
	struct bg_rreq *q = privdata;
	struct bg_rnode *c = q->conn;
	req_unlink(q);
	if (c->hook.end) /* before the callback, which may free c */
		c->hook.end(c->hook.arg);
	bg_rconn_reply_fn fn = q->fn;
	void *priv = q->priv;
	bool setup = q->setup;
	struct bg_rconn *owner = c->owner;
	req_release(c, q); /* before the callback, which may free c */
	if (setup)
		on_setup_reply(c, r, priv);
	else if (fn)
		fn(owner, r, priv);
}

static void schedule_retry(struct bg_rnode *c)
{
	if (c->state == RC_CLOSED)
		return;
	c->state = RC_DOWN;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
	if (c->backoff_ms > c->o.reconnect_max_ms)
		c->backoff_ms = c->o.reconnect_max_ms;
	struct timeval tv = { c->backoff_ms / 1000,
			      (c->backoff_ms % 1000) * 1000 };
	evtimer_add(c->retry, &tv);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct bg_rnode *c = ac->data;
	bool was_ready = c->state == RC_READY;
	c->ac = NULL;
	c->client_id = 0;
	if (c->state == RC_CLOSED)
		return;
	if (status != REDIS_OK)
		bg_warn("redis %s connection to %s:%d lost: %s", c->role,
			c->host, c->o.port,
			ac->errstr[0] ? ac->errstr : "closed");
	schedule_retry(c);
	if (was_ready && c->on_state)
		c->on_state(c->owner, false, c->arg);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct bg_rnode *c = ac->data;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		bg_warn("redis %s connection to %s:%d failed: %s", c->role,
			c->host, c->o.port, ac->errstr);
		c->ac = NULL;
		schedule_retry(c);
		return;
	}
	redisEnableKeepAlive((redisContext *)&ac->c);
}

static void on_setup_reply(struct bg_rnode *c, redisReply *r, void *priv)
{
	const char *what = priv;
	if (r == NULL)
		return; /* connection lost: on_disconnect handles it */
	if (r->type == REDIS_REPLY_ERROR) {
		bg_error("redis %s connection: %s failed: %s", c->role, what,
			 r->str);
		c->setup_failed = true;
	} else if (strcmp(what, "CLIENT ID") == 0 &&
		   r->type == REDIS_REPLY_INTEGER) {
		c->client_id = r->integer;
	}
	if (--c->setup_pending > 0)
		return;
	if (c->setup_failed) {
		bg_rnode_drop(c, "set-up failed");
		return;
	}
	c->state = RC_READY;
	c->backoff_ms = 0;
	bg_info("redis %s connection ready (%s:%d db %d, client id %lld)",
		c->role, c->host, c->o.port, c->o.db, c->client_id);
	if (c->on_state)
		c->on_state(c->owner, true, c->arg);
}

/* Append the RESP of one command (*argc, then $len and the bytes of each
 * argument) to b; *bytes gets the request's accounted size. Written
 * directly rather than by hiredis's argv formatter (sdscatfmt per
 * argument into a new sds each time): bygated sends ~50 commands a task.
 * 0 or -ENOMEM. */
#define RESP_KEEP_MAX (256 * 1024)

static int format_resp(struct bg_buf *b, int argc, const char **argv,
		       const size_t *lens, size_t *bytes)
{
	char num[BG_I64_STR];
	size_t n;
	b->len = 0;
	*bytes = 0;
	if (bg_buf_reserve(b, 64) != 0)
		return -ENOMEM;
	b->p[b->len++] = '*';
	n = bg_i64_str(num, argc);
	memcpy(b->p + b->len, num, n);
	b->len += n;
	b->p[b->len++] = '\r';
	b->p[b->len++] = '\n';
	for (int i = 0; i < argc; i++) {
		size_t len = lens ? lens[i] : strlen(argv[i]);
		*bytes += len + 16;
		if (bg_buf_reserve(b, len + BG_I64_STR + 5) != 0)
			return -ENOMEM;
		b->p[b->len++] = '$';
		n = bg_i64_str(num, (int64_t)len);
		memcpy(b->p + b->len, num, n);
		b->len += n;
		b->p[b->len++] = '\r';
		b->p[b->len++] = '\n';
		if (len)
			memcpy(b->p + b->len, argv[i], len);
		b->len += len;
		b->p[b->len++] = '\r';
		b->p[b->len++] = '\n';
	}
	return 0;
}

static int send_raw(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
		    int extra_ms, int argc, const char **argv,
		    const size_t *lens)
{
	struct bg_rreq *q = req_new(c);
	if (q == NULL)
		return -ENOMEM;
	q->conn = c;
	q->fn = fn;
	q->priv = priv;
	q->deadline_ms = now_ms() + c->o.command_timeout_ms + extra_ms;
	if (format_resp(&c->resp, argc, argv, lens, &q->bytes) != 0) {
		req_release(c, q);
		return -ENOMEM;
	}
	int rc = redisAsyncFormattedCommand(c->ac, on_reply, q, c->resp.p,
					    c->resp.len);
	if (c->resp.cap > RESP_KEEP_MAX) /* a large one: not kept */
		bg_buf_free(&c->resp);
	if (rc != REDIS_OK) {
		req_release(c, q);
		return -ENOTCONN;
	}
	q->next = &c->head;
	q->prev = c->head.prev;
	c->head.prev->next = q;
	c->head.prev = q;
	c->n_pending++;
	c->pending_bytes += q->bytes;
	return 0;
}

static void setup_cmd(struct bg_rnode *c, const char *what,
		      const char *const *args)
{
	int n = 0;
	while (args[n])
		n++;
	if (send_raw(c, NULL, (void *)what, 0, n, (const char **)args, NULL) ==
	    0) {
		c->head.prev->setup = true; /* the request just queued */
		c->setup_pending++;
	}
}

static void do_connect(struct bg_rnode *c)
{
	redisAsyncContext *ac = redisAsyncConnect(c->host, c->o.port);
	if (ac == NULL) {
		schedule_retry(c);
		return;
	}
	if (ac->err) {
		bg_warn("redis %s connect to %s:%d: %s", c->role, c->host,
			c->o.port, ac->errstr);
		redisAsyncFree(ac);
		schedule_retry(c);
		return;
	}
	/* hiredis 0.14 has no option for close-on-exec: set it before any
	 * child can be spawned (the loop is single-threaded). */
	int fl = fcntl(ac->c.fd, F_GETFD);
	if (fl != -1)
		fcntl(ac->c.fd, F_SETFD, fl | FD_CLOEXEC);
	if (bg_redis_events_attach(ac, c->base) != 0) {
		bg_warn("redis %s connect to %s:%d: out of memory", c->role,
			c->host, c->o.port);
		redisAsyncFree(ac);
		schedule_retry(c);
		return;
	}
	ac->data = c;
	install_reader(c, ac);
	c->ac = ac;
	c->state = RC_CONNECTING;
	c->setup_pending = 0;
	c->setup_failed = false;
	c->connect_deadline_ms = now_ms() + c->o.connect_timeout_ms;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (c->password[0]) {
		if (c->username[0])
			setup_cmd(c, "AUTH",
				  (const char *const[]){ "AUTH", c->username,
							 c->password, NULL });
		else
			setup_cmd(c, "AUTH",
				  (const char *const[]){ "AUTH", c->password,
							 NULL });
	}
	char db[16];
	snprintf(db, sizeof(db), "%d", c->o.db);
	setup_cmd(c, "SELECT", (const char *const[]){ "SELECT", db, NULL });
	setup_cmd(c, "CLIENT SETNAME",
		  (const char *const[]){ "CLIENT", "SETNAME", c->client_name,
					 NULL });
	setup_cmd(c, "CLIENT ID",
		  (const char *const[]){ "CLIENT", "ID", NULL });
}

static void on_retry(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_rnode *c = arg;
	if (c->state == RC_DOWN) {
		c->reconnects++;
		do_connect(c);
	}
}

static void on_tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	struct bg_rnode *c = arg;
	int64_t now = now_ms();
	if (c->state == RC_CONNECTING && c->ac &&
	    !(c->ac->c.flags & REDIS_CONNECTED) &&
	    now > c->connect_deadline_ms) {
		bg_rnode_drop(c, "connect timeout");
		return;
	}
	if (c->n_pending && c->head.next->deadline_ms < now) {
		bg_rnode_drop(c, "request deadline expired");
	}
}

struct bg_rnode *bg_rnode_new(struct event_base *base, struct bg_rconn *owner,
			      const struct bg_rconn_opts *opts,
			      bg_rconn_state_fn on_state, void *arg)
{
	struct bg_rnode *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->owner = owner;
	c->base = base;
	c->o = *opts;
	c->host = dupe(opts->host);
	c->username = dupe(opts->username);
	c->password = dupe(opts->password);
	c->role = dupe(opts->role);
	c->client_name = dupe(opts->client_name);
	for (char *p = c->client_name; *p; p++)
		if (*p == ' ' || *p == '\n' || *p == '\r')
			*p = '_'; /* CLIENT SETNAME refuses spaces */
	c->on_state = on_state;
	c->arg = arg;
	c->head.next = c->head.prev = &c->head;
	c->state = RC_DOWN;
	c->tick = event_new(base, -1, EV_PERSIST, on_tick, c);
	c->retry = evtimer_new(base, on_retry, c);
	if (!c->host || !c->username || !c->password || !c->role ||
	    !c->client_name || !c->tick || !c->retry) {
		bg_rnode_free(c);
		return NULL;
	}
	struct timeval tv = { 0, 100 * 1000 };
	event_add(c->tick, &tv);
	return c;
}

void bg_rnode_start(struct bg_rnode *c)
{
	if (c->state == RC_DOWN && c->ac == NULL)
		do_connect(c);
}

void bg_rnode_drop(struct bg_rnode *c, const char *why)
{
	if (c->ac == NULL)
		return;
	bg_warn("redis %s connection dropped: %s", c->role, why);
	redisAsyncContext *ac = c->ac;
	bool was_ready = c->state == RC_READY;
	/* on_disconnect only runs for connected contexts; make the state
	 * change here either way. */
	c->state = RC_CLOSED; /* silence on_disconnect during the free */
	redisAsyncFree(ac);
	c->ac = NULL;
	c->client_id = 0;
	c->state = RC_DOWN;
	schedule_retry(c);
	if (was_ready && c->on_state)
		c->on_state(c->owner, false, c->arg);
}

void bg_rnode_free(struct bg_rnode *c)
{
	if (c == NULL)
		return;
	c->state = RC_CLOSED;
	if (c->ac) {
		redisAsyncContext *ac = c->ac;
		c->ac = NULL;
		redisAsyncFree(ac);
	}
	if (c->tick)
		event_free(c->tick);
	if (c->retry)
		event_free(c->retry);
	free(c->host);
	free(c->username);
	free(c->password);
	free(c->role);
	free(c->client_name);
	bg_buf_free(&c->resp);
	while (c->spare) {
		struct bg_rreq *q = c->spare;
		c->spare = q->next;
		free(q);
	}
	free(c);
}

void bg_rnode_set_timeouts(struct bg_rnode *c, int connect_ms, int command_ms,
			   int reconnect_max_ms)
{
	c->o.connect_timeout_ms = connect_ms;
	c->o.command_timeout_ms = command_ms;
	c->o.reconnect_max_ms = reconnect_max_ms;
}

bool bg_rnode_ready(const struct bg_rnode *c)
{
	return c->state == RC_READY;
}

const char *bg_rnode_role(const struct bg_rnode *c)
{
	return c->role;
}

long long bg_rnode_client_id(const struct bg_rnode *c)
{
	return c->client_id;
}

size_t bg_rnode_pending(const struct bg_rnode *c)
{
	return c->n_pending;
}

size_t bg_rnode_pending_bytes(const struct bg_rnode *c)
{
	return c->pending_bytes;
}

uint64_t bg_rnode_reconnects(const struct bg_rnode *c)
{
	return c->reconnects;
}

bool bg_rnode_flush(struct bg_rnode *c)
{
	return c->ac != NULL && bg_redis_events_flush(c->ac);
}

int bg_rnode_cmd(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
		 int extra_ms, int argc, const char **argv, const size_t *lens)
{
	if (c->state != RC_READY || c->ac == NULL)
		return -ENOTCONN;
	return send_raw(c, fn, priv, extra_ms, argc, argv, lens);
}

int bg_rnode_cmd_entries(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
			 int extra_ms, int argc, const char **argv,
			 const size_t *lens)
{
	int rc = bg_rnode_cmd(c, fn, priv, extra_ms, argc, argv, lens);
	if (rc == 0)
		c->head.prev->entries = true; /* the request just queued */
	return rc;
}

int bg_rnode_cmdv(struct bg_rnode *c, bg_rconn_reply_fn fn, void *priv,
		  int extra_ms, const char *const *args)
{
	int n = 0;
	while (args[n])
		n++;
	return bg_rnode_cmd(c, fn, priv, extra_ms, n, (const char **)args,
			    NULL);
}

const char *bg_rnode_host(const struct bg_rnode *c)
{
	return c->host;
}

int bg_rnode_port(const struct bg_rnode *c)
{
	return c->o.port;
}
