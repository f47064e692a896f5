/* client/cli.c - `bygate`, the command-line client over libbygate: send a
 * task or a reply with availability routing (and follow its events to the
 * end of the turn), tail a session's events, show and cancel executions,
 * list and administer workers, reload plugins, run the wakeup gate; start
 * workflows (dag, fanout, group) and follow them to their result table;
 * list, pause, resume and fire bygated's triggers. Exit status: 0 success, 1 failed, rejected or timed out, 2 usage error,
 * 3 cannot connect (docs/client.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bygate/client.h"
#include "client/client_internal.h"
#include "common/buf.h"
#include "conf/config.h"
#include "wire/ids.h"
#include "wire/json.h"
#include "wire/record.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define DEFAULT_TIMEOUT_MS 60000 /* send --wait */
#define RELOAD_TIMEOUT_MS 30000	 /* reload --wait */
#define FOLLOW_BLOCK_MS 5000
/* A Python worker writes the end marker before the final record status. */
#define SETTLE_MS 3000
#define SETTLE_STEP_MS 20

static const char usage_text[] =
	"usage: bygate [-c FILE] [--json] COMMAND [OPTIONS]\n"
	"\n"
	"  send   --agent-type T --session S --content TEXT [--content-json]\n"
	"         [--user U] [--user-name N] [--metadata JSON] [--extra JSON]\n"
	"         [--message-id ID] [--trace-id ID] [--parent-message-id ID]\n"
	"         [--route-policy FAIL_FAST|SEND_ANYWAY|WAKE_AND_WAIT|\n"
	"                         WAKE_AND_QUEUE|QUEUE_ONLY] [--timeout-ms MS]\n"
	"         [--region R] [--priority N] [--worker W]\n"
	"         [--idempotency-key K [--idempotency-ttl S]]\n"
	"         [--wait [--wait-timeout-ms MS]]\n"
	"  reply  MESSAGE_ID --session S [--content TEXT] [--status S]\n"
	"         [--reply-data JSON] [--agent-type T] [send's other options]\n"
	"  tail   --session S [--from ID] [--follow|-f] [--jsonl]\n"
	"  status --session S [--message-id M]\n"
	"  status --lanes [--agent-type T]\n"
	"  cancel MESSAGE_ID --session S [--reason R] [--mode graceful|force]\n"
	"  cancel-session SESSION [--reason R] [--mode graceful|force]\n"
	"  workers [list] | workers info WORKER_ID\n"
	"  suspend WORKER_ID [--reason R]     resume WORKER_ID\n"
	"  evict WORKER_ID [--reason R] [--force]\n"
	"  allow-rejoin WORKER_ID\n"
	"  deny AGENT_TYPE WORKER_ID          allow AGENT_TYPE WORKER_ID\n"
	"  reload AGENT_TYPE [--reason R] [--reload-id ID]\n"
	"         [--wait [--timeout-ms MS]]\n"
	"  gate   --provider COMMAND [--group G] [--consumer C] [--once]\n"
	"         [--max-attempts N] [--provider-timeout-ms MS]\n"
	"         [--online-timeout-ms MS]\n"
	"  dispatch EXECUTION_ID\n"
	"  dag run FILE [--session S] [--agent-type T]\n"
	"         [--wait [--wait-timeout-ms MS]]\n"
	"  fanout --agent T (--input JSON... | --inputs-file F | --count N)\n"
	"         --timeout-s S [--session S] [--agent-type T] [--wait ...]\n"
	"  group start FILE [--open] [--session S] [--agent-type T]\n"
	"         [--wait [--wait-timeout-ms MS]]\n"
	"  group add GROUP_ID --session S --follower JSON... | --file F\n"
	"  group close GROUP_ID --session S\n"
	"  group show GROUP_ID --session S\n"
	"  triggers [list]                    triggers pause|resume NAME\n"
	"  triggers fire NAME [--timeout-ms MS]\n"
	"\n"
	"  Every command takes --json (machine output).\n"
	"  -c FILE  configuration (default: $BYGATE_CONFIG, else\n"
	"           /etc/bygate/bygate.conf if it exists, else defaults);\n"
	"           REDIS_HOST, REDIS_PORT, REDIS_DB, ... override it.\n"
	"exit status: 0 ok, 1 failed, rejected or timed out, 2 usage,\n"
	"             3 cannot connect\n";

struct cli {
	const char *config;
	bool json;
	struct bg_client *client;
};

static struct bg_client *volatile g_client;
static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
	g_signal = sig;
	bg_client_interrupt(g_client);
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("bygate: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n", stderr);
	fputs("usage: bygate [-c FILE] [--json] COMMAND [OPTIONS]\n"
	      "(bygate --help lists the commands, bygate COMMAND --help "
	      "one command's options)\n",
	      stderr);
	return EXIT_USAGE;
}

/* `bygate COMMAND ... --help` (or -h): first or last, so that an option's
 * value "--help" in the middle is still a value. */
static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i<argc; i += argc - 2> 0 ? argc - 2 : 1)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* The lines of usage_text about command `name` (its line and the
 * continuation lines under it), then the common options. */
static int command_help(const char *name)
{
	size_t n = strlen(name);
	bool in = false, any = false;
	printf("usage: bygate [-c FILE] [--json] %s ...\n", name);
	for (const char *l = usage_text; *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		if (len > 2 && l[0] == ' ' && l[1] == ' ' && l[2] != ' ')
			in = len >= n + 2 && !strncmp(l + 2, name, n) &&
			     (len == n + 2 || l[n + 2] == ' ');
		else if (len < 3 || l[2] != ' ')
			in = false;
		if (in)
			printf("%.*s\n", (int)len, l);
		any = any || in;
		l += len + (end != NULL);
	}
	if (!any) /* a command named inside a line (resume, allow) */
		fputs(usage_text, stdout);
	fputs("\n  --json  machine output; -c FILE  the configuration "
	      "(bygate --help)\n",
	      stdout);
	return EXIT_OK;
}

/* Report a library failure; returns the exit status it maps to. */
static int fail(const struct cli *cli, const char *what, int rc)
{
	const char *detail = bg_client_errmsg(cli->client);
	if (rc == BG_CLIENT_EINTR) {
		fprintf(stderr, "bygate: %s: interrupted\n", what);
		return EXIT_FAIL;
	}
	fprintf(stderr, "bygate: %s: %s%s%s\n", what, bg_client_strerror(rc),
		detail[0] ? ": " : "", detail);
	return rc == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

/* ---- configuration and connection ---------------------------------- */

/* -c, else $BYGATE_CONFIG, else the default file when it exists, else none
 * (defaults and environment only). */
static const char *config_path(const char *given)
{
	if (given)
		return given;
	const char *p = bg_config_default_path();
	if (!strcmp(p, BG_CONFIG_DEFAULT_PATH) && access(p, F_OK) != 0)
		return NULL;
	return p;
}

static int connect_client(struct cli *cli)
{
	char err[512];
	int rc = bg_client_open(config_path(cli->config), &cli->client, err,
				sizeof err);
	if (rc) {
		fprintf(stderr, "bygate: %s\n", err);
		return rc == BG_CLIENT_ECONNECT ? EXIT_CONNECT : EXIT_FAIL;
	}
	g_client = cli->client;
	catch_signals();
	return EXIT_OK;
}

/* ---- output --------------------------------------------------------- */

/* A JSON string of arbitrary bytes (invalid UTF-8 becomes U+FFFD). */
static json_t *jstr(const char *s, size_t n)
{
	json_t *v = json_stringn(s, n);
	if (v != NULL || s == NULL)
		return v;
	struct bg_buf lit = { 0 };
	if (bg_json_escape(&lit, s, n) == 0)
		v = json_loadb(lit.p, lit.len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
			       NULL);
	bg_buf_free(&lit);
	return v;
}

static json_t *jstr_c(const char *s)
{
	return jstr(s, strlen(s));
}

/* Print v as one compact line and release it. */
static void print_json(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	puts(s ? s : "null");
	free(s);
	json_decref(v);
}

/* Print a library JSON document (and free it): as is with --json, else
 * through text(). */
static int print_doc(const struct cli *cli, char *doc,
		     void (*text)(const json_t *))
{
	json_t *v = json_loads(doc, JSON_DECODE_ANY, NULL);
	if (cli->json || text == NULL)
		puts(doc);
	else
		text(v);
	json_decref(v);
	free(doc);
	return EXIT_OK;
}

static json_t *parse_object(const char *raw, size_t len)
{
	json_t *v = raw ? json_loadb(raw, len, JSON_ALLOW_NUL, NULL) : NULL;
	if (json_is_object(v))
		return v;
	json_decref(v);
	return NULL;
}

static void print_event_json(const struct bg_client_event *ev)
{
	json_t *o = json_object();
	json_object_set_new(o, "entry_id", jstr_c(ev->entry_id));
	json_object_set_new(o, "event_type", jstr_c(ev->event_type));
	json_object_set_new(o, "message_id", jstr_c(ev->message_id));
	json_object_set_new(o, "source_agent_type",
			    jstr_c(ev->source_agent_type));
	json_object_set_new(o, "content",
			    ev->content ? jstr(ev->content, ev->content_len)
					: json_null());
	json_t *event = parse_object(ev->raw, ev->raw_len);
	json_object_set_new(o, "event", event ? event : json_null());
	if (!ev->valid && ev->raw)
		json_object_set_new(o, "raw", jstr(ev->raw, ev->raw_len));
	print_json(o);
}

static void print_event_text(const struct bg_client_event *ev)
{
	if (!ev->valid) {
		/* escaped: the bytes may be anything, terminal controls too */
		struct bg_buf lit = { 0 };
		if (ev->raw && bg_json_escape(&lit, ev->raw, ev->raw_len) == 0)
			printf("[invalid] entry %s: %s\n", ev->entry_id, lit.p);
		else
			printf("[invalid] entry %s: (no data field)\n",
			       ev->entry_id);
		bg_buf_free(&lit);
		return;
	}
	printf("[%s] %s %s: ", ev->event_type, ev->source_agent_type,
	       ev->message_id);
	if (ev->content)
		fwrite(ev->content, 1, ev->content_len, stdout);
	putchar('\n');
}

/* Follows a data stream; stops at the end marker of message_id if set. */
struct follow {
	bool json;
	const char *message_id;
	bool done;
};

static int on_event(void *arg, const struct bg_client_event *ev)
{
	struct follow *f = arg;
	if (f->json)
		print_event_json(ev);
	else
		print_event_text(ev);
	if (f->message_id && !strcmp(ev->event_type, "appStreamResponse") &&
	    !strcmp(ev->message_id, f->message_id)) {
		f->done = true;
		return 1;
	}
	return 0;
}

/* ---- option parsing ------------------------------------------------- */

static int parse_ms(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* getopt_long over a command's own argv (argv[0] = the command name);
 * options may follow the positional arguments (GNU permutation). */
static int next_opt(int argc, char **argv, const struct option *opts)
{
	return getopt_long(argc, argv, "", opts, NULL);
}

static int no_positional(int argc, char **argv)
{
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return EXIT_OK;
}

/* ---- send and reply --------------------------------------------------- */

struct send_args {
	struct bg_send_request req;
	bool reply;
	bool wait;
	int wait_timeout_ms;
};

enum {
	OPT_AGENT = 1000,
	OPT_SESSION,
	OPT_CONTENT,
	OPT_CONTENT_JSON,
	OPT_USER,
	OPT_USER_NAME,
	OPT_METADATA,
	OPT_EXTRA,
	OPT_MESSAGE_ID,
	OPT_TRACE_ID,
	OPT_WAIT,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_FROM,
	OPT_FOLLOW,
	OPT_WAIT_TIMEOUT,
	OPT_POLICY,
	OPT_REGION,
	OPT_PRIORITY,
	OPT_WORKER,
	OPT_PARENT,
	OPT_STATUS,
	OPT_REPLY_DATA,
	OPT_REASON,
	OPT_MODE,
	OPT_FORCE,
	OPT_RELOAD_ID,
	OPT_PROVIDER,
	OPT_GROUP,
	OPT_CONSUMER,
	OPT_ONCE,
	OPT_MAX_ATTEMPTS,
	OPT_PROVIDER_TIMEOUT,
	OPT_ONLINE_TIMEOUT,
	OPT_LANES,
	OPT_OPEN,
	OPT_FOLLOWER,
	OPT_FILE,
	OPT_WF_AGENT, /* fanout's own options from here on */
	OPT_INPUT,
	OPT_INPUTS_FILE,
	OPT_COUNT,
	OPT_TIMEOUT_S,
	OPT_IDEM_KEY, /* send's own */
	OPT_IDEM_TTL,
};

#define ROUTE_OPTIONS                                                          \
	{ "session", required_argument, NULL, OPT_SESSION },                   \
		{ "content", required_argument, NULL, OPT_CONTENT },           \
		{ "content-json", no_argument, NULL, OPT_CONTENT_JSON },       \
		{ "user", required_argument, NULL, OPT_USER },                 \
		{ "user-name", required_argument, NULL, OPT_USER_NAME },       \
		{ "metadata", required_argument, NULL, OPT_METADATA },         \
		{ "extra", required_argument, NULL, OPT_EXTRA },               \
		{ "trace-id", required_argument, NULL, OPT_TRACE_ID },         \
		{ "parent-message-id", required_argument, NULL, OPT_PARENT },  \
		{ "wait", no_argument, NULL, OPT_WAIT },                       \
		{ "wait-timeout-ms", required_argument, NULL,                  \
		  OPT_WAIT_TIMEOUT },                                          \
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },        \
		{ "route-policy", required_argument, NULL, OPT_POLICY },       \
		{ "region", required_argument, NULL, OPT_REGION },             \
		{ "priority", required_argument, NULL, OPT_PRIORITY },         \
		{ "worker", required_argument, NULL, OPT_WORKER },             \
		{ "agent-type", required_argument, NULL, OPT_AGENT },          \
	{                                                                      \
		"json", no_argument, NULL, OPT_JSON                            \
	}

static const struct option send_opts[] = {
	ROUTE_OPTIONS,
	{ "message-id", required_argument, NULL, OPT_MESSAGE_ID },
	{ "idempotency-key", required_argument, NULL, OPT_IDEM_KEY },
	{ "idempotency-ttl", required_argument, NULL, OPT_IDEM_TTL },
	{ NULL, 0, NULL, 0 },
};

static const struct option reply_opts[] = {
	ROUTE_OPTIONS,
	{ "status", required_argument, NULL, OPT_STATUS },
	{ "reply-data", required_argument, NULL, OPT_REPLY_DATA },
	{ NULL, 0, NULL, 0 },
};

static const char *const policies[] = { "FAIL_FAST", "SEND_ANYWAY",
					"WAKE_AND_WAIT", "WAKE_AND_QUEUE",
					"QUEUE_ONLY" };

static int parse_policy(const char *s, const char **out)
{
	for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
		if (!strcmp(s, policies[i])) {
			*out = policies[i];
			return EXIT_OK;
		}
	return usage_error("bad --route-policy '%s'", s);
}

static int parse_priority(const char *s, long long *out)
{
	char *end;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return usage_error("bad --priority '%s'", s);
	return EXIT_OK;
}

/* --timeout-ms of the availability wait: 0 means "do not wait". */
static int parse_avail_ms(const char *s, int *out)
{
	if (!strcmp(s, "0")) {
		*out = -1;
		return EXIT_OK;
	}
	return parse_ms(s, out) ? usage_error("bad --timeout-ms '%s'", s)
				: EXIT_OK;
}

static int route_option(struct bg_send_request *r, int opt)
{
	switch (opt) {
	case OPT_USER:
		r->user_code = optarg;
		break;
	case OPT_USER_NAME:
		r->user_name = optarg;
		break;
	case OPT_METADATA:
		r->metadata = optarg;
		break;
	case OPT_EXTRA:
		r->extra_payload = optarg;
		break;
	case OPT_TRACE_ID:
		r->trace_id = optarg;
		break;
	case OPT_PARENT:
		r->parent_message_id = optarg;
		break;
	case OPT_REGION:
		r->region = optarg;
		break;
	case OPT_WORKER:
		r->worker_id = optarg;
		break;
	case OPT_STATUS:
		r->status = optarg;
		break;
	case OPT_REPLY_DATA:
		r->reply_data = optarg;
		break;
	case OPT_MESSAGE_ID:
		r->message_id = optarg;
		break;
	case OPT_IDEM_KEY:
		r->idempotency_key = optarg;
		break;
	case OPT_IDEM_TTL:
		if (parse_ms(optarg, &r->idempotency_ttl_s))
			return usage_error("bad --idempotency-ttl '%s'",
					   optarg);
		break;
	case OPT_POLICY:
		return parse_policy(optarg, &r->route_policy);
	case OPT_PRIORITY:
		return parse_priority(optarg, &r->priority);
	case OPT_TIMEOUT:
		return parse_avail_ms(optarg, &r->timeout_ms);
	default:
		return usage_error("%s: bad option", "send");
	}
	return EXIT_OK;
}

static int send_option(struct cli *cli, struct send_args *a, int opt)
{
	struct bg_send_request *r = &a->req;
	switch (opt) {
	case OPT_AGENT:
		r->agent_type = optarg;
		break;
	case OPT_SESSION:
		r->session_id = optarg;
		break;
	case OPT_CONTENT:
		r->content = optarg;
		break;
	case OPT_CONTENT_JSON:
		r->content_is_json = true;
		break;
	case OPT_WAIT:
		a->wait = true;
		break;
	case OPT_JSON:
		cli->json = true;
		break;
	case OPT_WAIT_TIMEOUT:
		if (parse_ms(optarg, &a->wait_timeout_ms))
			return usage_error("bad --wait-timeout-ms '%s'",
					   optarg);
		break;
	default:
		return route_option(r, opt);
	}
	return EXIT_OK;
}

static int require(int status, const char *cmd, const char *what, const char *v)
{
	if (status == EXIT_OK && (!v || !v[0])) {
		fprintf(stderr, "bygate: %s: %s is required\n", cmd, what);
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	return status;
}

static int parse_send(struct cli *cli, int argc, char **argv,
		      struct send_args *a)
{
	const struct option *opts = a->reply ? reply_opts : send_opts;
	const char *cmd = a->reply ? "reply" : "send";
	int opt, rc = EXIT_OK;
	a->wait_timeout_ms = DEFAULT_TIMEOUT_MS;
	while (rc == EXIT_OK && (opt = next_opt(argc, argv, opts)) != -1)
		rc = send_option(cli, a, opt);
	if (rc == EXIT_OK && a->reply && optind < argc)
		a->req.message_id = argv[optind++];
	if (rc == EXIT_OK)
		rc = no_positional(argc, argv);
	if (a->reply)
		rc = require(rc, cmd, "MESSAGE_ID", a->req.message_id);
	else
		rc = require(rc, cmd, "--agent-type", a->req.agent_type);
	rc = require(rc, cmd, "--session", a->req.session_id);
	if (!a->reply && rc == EXIT_OK && !a->req.content)
		rc = require(rc, cmd, "--content", NULL);
	return rc;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	json_object_set_new(o, key, jstr_c(v));
}

static void print_sent(const struct cli *cli, const struct send_args *a,
		       const struct bg_send_response *r)
{
	if (r->duplicate)
		fprintf(stderr,
			"bygate: send: duplicate: idempotency key %s was first "
			"used by message %s (session %s, execution %s); "
			"nothing sent\n",
			a->req.idempotency_key ? a->req.idempotency_key
					       : "(metadata)",
			r->message_id, r->session_id, r->execution_id);
	if (!cli->json) {
		puts(r->message_id);
		return;
	}
	json_t *o = json_object();
	set_str(o, "message_id", r->message_id);
	set_str(o, "execution_id", r->execution_id);
	set_str(o, "entry_id", r->entry_id);
	set_str(o, "trace_id", r->trace_id);
	set_str(o, "route_status", r->route_status);
	set_str(o, "target_agent_type", r->target_agent_type);
	set_str(o, "stream", r->stream);
	if (r->pending_id[0])
		set_str(o, "pending_entry_id", r->pending_id);
	if (a->reply)
		json_object_set_new(o, "resumed", json_boolean(r->resumed));
	if (r->duplicate) {
		json_object_set_new(o, "duplicate", json_true());
		set_str(o, "session_id", r->session_id);
	}
	print_json(o);
}

/* A send availability routing refused: stderr, and the JSON result. */
static int print_rejected(const struct cli *cli, const struct send_args *a,
			  const struct bg_send_response *r)
{
	fprintf(stderr, "bygate: %s rejected: %s: %s\n",
		a->reply ? "reply" : "send", r->error_code, r->error);
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "success", json_false());
		set_str(o, "status", "FAILED");
		set_str(o, "message_id", r->message_id);
		set_str(o, "execution_id", r->execution_id);
		set_str(o, "trace_id", r->trace_id);
		set_str(o, "route_status", "REJECT");
		set_str(o, "error_code", r->error_code);
		set_str(o, "error", r->error);
		print_json(o);
	}
	return EXIT_FAIL;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Read events until the end marker of the sent message or the deadline.
 * 0 when the marker arrived, 1 on timeout, else a library error. */
static int follow_until_end(struct cli *cli, const char *session, char *last,
			    const char *message_id, int64_t deadline)
{
	struct follow f = { cli->json, message_id, false };
	while (!f.done) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return 1;
		int rc = bg_client_read_events(cli->client, session, last,
					       (int)left, on_event, &f, last);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The execution's record once it is terminal, or as it is when it stays
 * non-terminal for SETTLE_MS (or on timeout). *rec is NULL if absent. */
static int settle_record(struct cli *cli, const char *session,
			 const char *message_id, bool wait_terminal,
			 json_t **rec)
{
	int64_t until = mono_ms() + (wait_terminal ? SETTLE_MS : 0);
	for (;;) {
		char *raw = NULL;
		size_t len = 0;
		int rc = bg_client_get_execution(cli->client, session,
						 message_id, &raw, &len);
		if (rc && rc != -ENOENT)
			return rc;
		json_decref(*rec);
		*rec = parse_object(raw, len);
		free(raw);
		const char *st =
			json_string_value(json_object_get(*rec, "status"));
		if (st &&
		    bg_status_is_terminal(bg_status_normalize(bg_str_c(st))))
			return 0;
		if (mono_ms() >= until || g_signal)
			return 0;
		sleep_ms(SETTLE_STEP_MS);
	}
}

static const char *record_str(const json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));
	return s ? s : "";
}

/* Print the outcome of a waited send; returns its exit status. */
static int report_outcome(const struct cli *cli,
			  const struct bg_send_response *r, json_t *rec,
			  bool timed_out, int timeout_ms)
{
	const char *status = rec ? record_str(rec, "status") : "";
	bool ok = !timed_out &&
		  bg_str_eq(bg_status_normalize(bg_str_c(status)), "COMPLETED");
	if (timed_out)
		fprintf(stderr,
			"bygate: timed out after %d ms waiting for the end of "
			"%s (status %s)\n",
			timeout_ms, r->message_id,
			status[0] ? status : "unknown");
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "message_id", jstr_c(r->message_id));
		json_object_set_new(o, "execution_id", jstr_c(r->execution_id));
		json_object_set_new(o, "status", jstr_c(status));
		json_object_set_new(o, "record",
				    rec ? json_incref(rec) : json_null());
		if (timed_out)
			json_object_set_new(o, "error", json_string("timeout"));
		print_json(o);
	} else if (!timed_out) {
		const char *err = record_str(rec, "error_message");
		printf("%s: %s%s%s\n", r->message_id,
		       status[0] ? status : "(no record)", err[0] ? ": " : "",
		       err);
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

static int wait_for_end(struct cli *cli, const struct send_args *a,
			const struct bg_send_response *r, char *last,
			int64_t deadline)
{
	const char *session = r->session_id;
	if (r->duplicate) /* the first's end may be written already */
		strcpy(last, "0-0");
	int rc = follow_until_end(cli, session, last, r->message_id, deadline);
	if (rc < 0)
		return fail(cli, "reading events", rc);
	json_t *rec = NULL;
	int src = settle_record(cli, session, r->message_id, rc == 0, &rec);
	if (src < 0) {
		json_decref(rec);
		return fail(cli, "reading the execution record", src);
	}
	int status = report_outcome(cli, r, rec, rc == 1, a->wait_timeout_ms);
	json_decref(rec);
	return status;
}

static int run_send(struct cli *cli, int argc, char **argv, bool reply)
{
	struct send_args a = { .reply = reply };
	int status = parse_send(cli, argc, argv, &a);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	int rc = a.wait ? bg_client_last_entry_id(cli->client, a.req.session_id,
						  last)
			: 0;
	if (rc)
		return fail(cli, "reading the data stream", rc);
	struct bg_send_response r;
	rc = reply ? bg_client_reply(cli->client, &a.req, &r)
		   : bg_client_send(cli->client, &a.req, &r);
	if (rc == BG_CLIENT_EREJECTED)
		return print_rejected(cli, &a, &r);
	if (rc)
		return fail(cli, reply ? "reply" : "send", rc);
	print_sent(cli, &a, &r);
	/* the --wait bound starts once routing (WAKE_AND_WAIT) is done */
	int64_t deadline = mono_ms() + a.wait_timeout_ms;
	return a.wait ? wait_for_end(cli, &a, &r, last, deadline) : EXIT_OK;
}

static int cmd_send(struct cli *cli, int argc, char **argv)
{
	return run_send(cli, argc, argv, false);
}

static int cmd_reply(struct cli *cli, int argc, char **argv)
{
	return run_send(cli, argc, argv, true);
}

/* ---- tail ----------------------------------------------------------- */

static const struct option tail_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "jsonl", no_argument, NULL, OPT_JSON }, /* one object per line */
	{ NULL, 0, NULL, 0 },
};

static int cmd_tail(struct cli *cli, int argc, char **argv)
{
	const char *session = NULL, *from = "0-0";
	bool follow = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "f", tail_opts, NULL)) != -1) {
		if (opt == OPT_SESSION)
			session = optarg;
		else if (opt == OPT_FROM)
			from = optarg;
		else if (opt == OPT_FOLLOW || opt == 'f')
			follow = true;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			return usage_error("%s: bad option", "tail");
	}
	int status = no_positional(argc, argv);
	if (status == EXIT_OK && (!session || !session[0]))
		status = usage_error("tail: %s is required", "--session");
	if (status == EXIT_OK &&
	    (!from[0] || strlen(from) >= BG_CLIENT_ENTRY_ID_MAX))
		status = usage_error("tail: bad --from '%s'", from);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char last[BG_CLIENT_ENTRY_ID_MAX];
	strcpy(last, from);
	struct follow f = { cli->json, NULL, false };
	long long shown = 0;
	for (;;) {
		int rc = bg_client_read_events(cli->client, session, last,
					       follow ? FOLLOW_BLOCK_MS : -1,
					       on_event, &f, last);
		if (rc == BG_CLIENT_EINTR || (rc >= 0 && g_signal))
			return EXIT_OK; /* SIGINT/SIGTERM end a follow */
		if (rc < 0)
			return fail(cli, "reading events", rc);
		shown += rc;
		if (rc == 0 && !follow && shown == 0)
			fprintf(stderr,
				"bygate: tail: no events in session %s "
				"after %s\n",
				session, from);
		if (rc == 0 && !follow)
			return EXIT_OK;
	}
}

/* ---- status --------------------------------------------------------- */

struct row {
	char *execution_id;
	json_t *rec; /* NULL when the stored bytes are not a JSON object */
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static int add_row(void *arg, const struct bg_client_record *r)
{
	struct rows *rows = arg;
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 16;
		struct row *v = realloc(rows->v, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		rows->v = v;
		rows->cap = cap;
	}
	char *id = strdup(r->execution_id);
	if (id == NULL)
		return -ENOMEM;
	rows->v[rows->n++] =
		(struct row){ id, parse_object(r->json, r->json_len) };
	return 0;
}

static void rows_free(struct rows *rows)
{
	for (size_t i = 0; i < rows->n; i++) {
		free(rows->v[i].execution_id);
		json_decref(rows->v[i].rec);
	}
	free(rows->v);
}

static json_int_t created_at(const struct row *r)
{
	return json_integer_value(json_object_get(r->rec, "created_at"));
}

static int by_creation(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	json_int_t ca = created_at(a), cb = created_at(b);
	if (ca != cb)
		return ca < cb ? -1 : 1;
	return strcmp(a->execution_id, b->execution_id);
}

/* "2024-06-10 06:13:20.123" (UTC) of a ms timestamp, "-" for 0. */
static const char *fmt_ms(json_int_t ms, char *buf, size_t cap)
{
	struct tm tm;
	time_t s = (time_t)(ms / 1000);
	if (ms <= 0 || gmtime_r(&s, &tm) == NULL)
		return "-";
	size_t n = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03d", (int)(ms % 1000));
	return buf;
}

static void print_row_text(const struct row *r)
{
	char created[40];
	if (r->rec == NULL) {
		printf("%-14s (record is not a JSON object)\n",
		       r->execution_id);
		return;
	}
	const char *err = record_str(r->rec, "error_message");
	printf("%-14s %-14s %-16s %-20s %-23s %s%s%s\n", r->execution_id,
	       record_str(r->rec, "message_id"),
	       record_str(r->rec, "target_agent_type"),
	       record_str(r->rec, "worker_id"),
	       fmt_ms(created_at(r), created, sizeof created),
	       record_str(r->rec, "status"), err[0] ? ": " : "", err);
}

static json_t *row_json(const struct row *r)
{
	if (r->rec)
		return json_incref(r->rec);
	json_t *o = json_object();
	json_object_set_new(o, "execution_id", jstr_c(r->execution_id));
	json_object_set_new(o, "error", json_string("invalid record"));
	return o;
}

static void print_rows(const struct cli *cli, const struct rows *rows,
		       bool single)
{
	if (cli->json) {
		if (single) {
			print_json(row_json(&rows->v[0]));
			return;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < rows->n; i++)
			json_array_append_new(a, row_json(&rows->v[i]));
		print_json(a);
		return;
	}
	printf("%-14s %-14s %-16s %-20s %-23s %s\n", "EXECUTION", "MESSAGE",
	       "AGENT TYPE", "WORKER", "CREATED (UTC)", "STATUS");
	for (size_t i = 0; i < rows->n; i++)
		print_row_text(&rows->v[i]);
}

/* The one record of message_id as a row. */
static int message_row(struct cli *cli, const char *session,
		       const char *message_id, struct rows *rows)
{
	char *raw = NULL;
	size_t len = 0;
	int rc = bg_client_get_execution(cli->client, session, message_id, &raw,
					 &len);
	if (rc == -ENOENT) {
		fprintf(stderr,
			"bygate: no execution for message %s in "
			"session %s\n",
			message_id, session);
		return EXIT_FAIL;
	}
	if (rc)
		return fail(cli, "reading the execution record", rc);
	json_t *rec = parse_object(raw, len);
	const char *id = record_str(rec, "execution_id");
	rc = add_row(rows, &(struct bg_client_record){ id, raw, len });
	json_decref(rec);
	free(raw);
	return rc ? fail(cli, "status", rc) : EXIT_OK;
}

/* The seconds since a ms age, or "-" when there is none. */
static const char *fmt_age(const json_t *ms, char *buf, size_t cap)
{
	if (!json_is_integer(ms))
		return "-";
	snprintf(buf, cap, "%.1f s", (double)json_integer_value(ms) / 1000.0);
	return buf;
}

static const char *fmt_num(const json_t *v, char *buf, size_t cap)
{
	if (json_is_integer(v))
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, cap, "%.4g", json_real_value(v));
	else
		return "-";
	return buf;
}

static void lanes_row(const char *type, const char *lane, const json_t *o,
		      const char *pass_key)
{
	char age[32], pass[32], running[32];
	printf("%-16s %-20s %8lld %10s %10s %8s\n", type, lane,
	       (long long)json_integer_value(json_object_get(o, "waiting")),
	       fmt_age(json_object_get(o, "oldest_age_ms"), age, sizeof age),
	       fmt_num(json_object_get(o, pass_key), pass, sizeof pass),
	       fmt_num(json_object_get(o, "fleet_running"), running,
		       sizeof running));
}

/* bg_client_lanes as a table: a row per lane, then the agent type's
 * totals (its virtual time in the pass column, its own fleet places). */
static void lanes_text(const json_t *doc)
{
	const json_t *types = json_object_get(doc, "agent_types");
	size_t i, k;
	json_t *t, *l;
	printf("%-16s %-20s %8s %10s %10s %8s\n", "AGENT TYPE", "LANE",
	       "WAITING", "OLDEST", "PASS", "RUNNING");
	json_array_foreach(types, i, t) {
		const char *type = record_str(t, "agent_type");
		json_array_foreach(json_object_get(t, "lanes"), k, l) {
			const char *lane = record_str(l, "lane");
			lanes_row(type, lane[0] ? lane : "(default)", l,
				  "pass");
		}
		lanes_row(type, "(all lanes)", t, "vtime");
	}
	if (json_array_size(types) == 0)
		printf("(no agent type known: give --agent-type)\n");
}

static int status_lanes(struct cli *cli, const char *agent_type)
{
	int status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_lanes(cli->client, agent_type, &doc);
	return rc ? fail(cli, "status --lanes", rc)
		  : print_doc(cli, doc, lanes_text);
}

static const struct option status_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "message-id", required_argument, NULL, OPT_MESSAGE_ID },
	{ "lanes", no_argument, NULL, OPT_LANES },
	{ "agent-type", required_argument, NULL, OPT_AGENT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int cmd_status(struct cli *cli, int argc, char **argv)
{
	const char *session = NULL, *message_id = NULL, *agent_type = NULL;
	bool lanes = false;
	int opt;
	while ((opt = next_opt(argc, argv, status_opts)) != -1) {
		if (opt == OPT_SESSION)
			session = optarg;
		else if (opt == OPT_MESSAGE_ID)
			message_id = optarg;
		else if (opt == OPT_LANES)
			lanes = true;
		else if (opt == OPT_AGENT)
			agent_type = optarg;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			return usage_error("%s: bad option", "status");
	}
	int status = no_positional(argc, argv);
	if (status == EXIT_OK && lanes && (session || message_id))
		status =
			usage_error("status: %s takes no --session", "--lanes");
	if (status == EXIT_OK && !lanes && agent_type)
		status =
			usage_error("status: %s needs --lanes", "--agent-type");
	if (status == EXIT_OK && lanes)
		return status_lanes(cli, agent_type);
	if (status == EXIT_OK && (!session || !session[0]))
		status = usage_error("status: %s is required", "--session");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	struct rows rows = { 0 };
	if (message_id) {
		status = message_row(cli, session, message_id, &rows);
	} else {
		int rc = bg_client_list_executions(cli->client, session,
						   add_row, &rows);
		if (rc < 0)
			status = fail(cli, "status", rc);
		else
			qsort(rows.v, rows.n, sizeof *rows.v, by_creation);
	}
	if (status == EXIT_OK)
		print_rows(cli, &rows, message_id != NULL);
	rows_free(&rows);
	return status;
}

/* ---- cancel ------------------------------------------------------------- */

static const struct option cancel_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int on_cancelled(void *arg, const struct bg_client_cancelled *n)
{
	json_t *o = json_object();
	set_str(o, "execution_id", n->execution_id);
	set_str(o, "message_id", n->message_id);
	set_str(o, "worker_id", n->worker_id);
	set_str(o, "entry_id", n->entry_id);
	return json_array_append_new(arg, o) ? -ENOMEM : 0;
}

static int print_cancel(const struct cli *cli,
			const struct bg_cancel_request *q,
			const struct bg_cancel_response *r, json_t *nodes)
{
	bool ok = !strcmp(r->status, "CANCEL_REQUESTED");
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "success", json_boolean(ok));
		set_str(o, "status", r->status);
		set_str(o, "session_id", q->session_id);
		if (q->message_id) {
			set_str(o, "message_id", q->message_id);
			set_str(o, "execution_id", r->execution_id);
			set_str(o, "worker_id", r->worker_id);
		}
		json_object_set_new(o, "cancelled_count",
				    json_integer(r->cancelled_count));
		json_object_set_new(o, "already_finished_count",
				    json_integer(r->already_finished_count));
		set_str(o, "error", r->error);
		json_object_set_new(o, "cancelled", json_incref(nodes));
		print_json(o);
	} else if (ok) {
		printf("%s: %d execution(s)\n", r->status, r->cancelled_count);
	} else {
		fprintf(stderr, "bygate: %s: %s\n", r->status, r->error);
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

static int run_cancel(struct cli *cli, int argc, char **argv, bool session)
{
	struct bg_cancel_request q = { 0 };
	const char *cmd = session ? "cancel-session" : "cancel";
	int opt, status = EXIT_OK;
	while (status == EXIT_OK &&
	       (opt = next_opt(argc, argv, cancel_opts)) != -1) {
		if (opt == OPT_SESSION && !session)
			q.session_id = optarg;
		else if (opt == OPT_REASON)
			q.reason = optarg;
		else if (opt == OPT_MODE && (!strcmp(optarg, "graceful") ||
					     !strcmp(optarg, "force")))
			q.cancel_mode = optarg;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			status = usage_error("%s: bad option", cmd);
	}
	if (status == EXIT_OK && optind < argc) {
		if (session)
			q.session_id = argv[optind++];
		else
			q.message_id = argv[optind++];
	}
	if (status == EXIT_OK)
		status = no_positional(argc, argv);
	if (!session)
		status = require(status, cmd, "MESSAGE_ID", q.message_id);
	status = require(status, cmd, session ? "SESSION" : "--session",
			 q.session_id);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	json_t *nodes = json_array();
	struct bg_cancel_response r;
	q.cb = on_cancelled;
	q.arg = nodes;
	int rc = bg_client_cancel(cli->client, &q, &r);
	status = rc ? fail(cli, cmd, rc) : print_cancel(cli, &q, &r, nodes);
	json_decref(nodes);
	return status;
}

static int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	return run_cancel(cli, argc, argv, false);
}

static int cmd_cancel_session(struct cli *cli, int argc, char **argv)
{
	return run_cancel(cli, argc, argv, true);
}

/* ---- simple commands: positional arguments and --json --------------- */

/* Parse `argv[0] ARG...` with the options opts (NULL: --json only; on()
 * handles the others) into pos[0..npos); every positional is required. */
static int parse_positional(struct cli *cli, int argc, char **argv,
			    const struct option *opts, int (*on)(int, void *),
			    void *arg, const char **pos, int npos,
			    const char *names)
{
	static const struct option json_only[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	int opt, status = EXIT_OK;
	while (status == EXIT_OK &&
	       (opt = next_opt(argc, argv, opts ? opts : json_only)) != -1) {
		if (opt == OPT_JSON)
			cli->json = true;
		else if (on == NULL || on(opt, arg) != EXIT_OK)
			status = usage_error("%s: bad option", argv[0]);
	}
	for (int i = 0; status == EXIT_OK && i < npos; i++) {
		if (optind >= argc || !argv[optind][0]) {
			fprintf(stderr, "bygate: usage: %s %s\n", argv[0],
				names);
			return EXIT_USAGE;
		}
		pos[i] = argv[optind++];
	}
	if (status == EXIT_OK)
		status = no_positional(argc, argv);
	return status;
}

/* ---- workers -------------------------------------------------------- */

static json_int_t jint(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void join_strings(const json_t *a, char *out, size_t cap)
{
	size_t i, n = 0;
	json_t *v;
	out[0] = '\0';
	json_array_foreach(a, i, v)
		n += snprintf(out + n, n < cap ? cap - n : 0, "%s%s",
			      i ? "," : "",
			      json_string_value(v) ? json_string_value(v) : "");
	if (n == 0)
		snprintf(out, cap, "-");
}

static void worker_row(const json_t *w)
{
	char types[256], seen[40];
	const json_t *counts = json_object_get(w, "counts");
	join_strings(json_object_get(w, "agent_types"), types, sizeof types);
	printf("%-24s %-7s %-10s %-24s %6lld %6lld  %s\n",
	       record_str(w, "worker_id"),
	       json_is_true(json_object_get(w, "online")) ? "online"
							  : "offline",
	       record_str(w, "lifecycle"), types,
	       (long long)jint(counts, "active"),
	       (long long)jint(counts, "total"),
	       fmt_ms(jint(w, "last_seen"), seen, sizeof seen));
}

static void worker_header(void)
{
	printf("%-24s %-7s %-10s %-24s %6s %6s  %s\n", "WORKER", "STATE",
	       "LIFECYCLE", "AGENT TYPES", "ACTIVE", "TOTAL",
	       "LAST SEEN (UTC)");
}

static void workers_text(const json_t *a)
{
	size_t i;
	json_t *w;
	worker_header();
	json_array_foreach(a, i, w)
		worker_row(w);
}

static void executions_text(const char *title, const json_t *a)
{
	size_t i;
	json_t *e;
	printf("%s: %zu\n", title, json_array_size(a));
	json_array_foreach(a, i, e)
		printf("  %-14s %-14s %-16s %-20s %s\n",
		       record_str(e, "execution_id"),
		       record_str(e, "message_id"),
		       record_str(e, "target_agent_type"),
		       record_str(e, "session_id"), record_str(e, "status"));
}

static void worker_info_text(const json_t *w)
{
	worker_header();
	worker_row(w);
	const char *why = record_str(w, "lifecycle_reason");
	if (why[0])
		printf("lifecycle reason: %s\n", why);
	json_t *age = json_object_get(w, "oldest_active_age_ms");
	if (json_is_integer(age))
		printf("oldest active execution: %.1f s\n",
		       (double)json_integer_value(age) / 1000.0);
	const char *type;
	json_t *lag;
	json_object_foreach(json_object_get(w, "lag"), type, lag) {
		if (json_is_integer(lag))
			printf("consumer-group lag of %s: %lld\n", type,
			       (long long)json_integer_value(lag));
	}
	executions_text("active executions",
			json_object_get(w, "active_executions"));
	executions_text("recent executions",
			json_object_get(w, "recent_executions"));
}

static int cmd_workers(struct cli *cli, int argc, char **argv)
{
	const char *pos[2] = { NULL, NULL };
	bool info = argc > 1 && !strcmp(argv[1], "info");
	if (argc > 1 && (info || !strcmp(argv[1], "list"))) {
		argc--;
		argv++;
	}
	int status = parse_positional(cli, argc, argv, NULL, NULL, NULL, pos,
				      info ? 1 : 0, "WORKER_ID");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = info ? bg_client_worker_info(cli->client, pos[0], &doc)
		      : bg_client_workers(cli->client, &doc);
	if (rc == -ENOENT) {
		fprintf(stderr, "bygate: %s\n", bg_client_errmsg(cli->client));
		return EXIT_FAIL;
	}
	if (rc)
		return fail(cli, "workers", rc);
	return print_doc(cli, doc, info ? worker_info_text : workers_text);
}

/* ---- worker administration ------------------------------------------ */

struct admin_args {
	const char *reason;
	bool force;
	bool force_allowed;
};

static int admin_option(int opt, void *arg)
{
	struct admin_args *a = arg;
	if (opt == OPT_REASON)
		a->reason = optarg;
	else if (opt == OPT_FORCE && a->force_allowed)
		a->force = true;
	else
		return EXIT_USAGE;
	return EXIT_OK;
}

static void admin_text(const json_t *o)
{
	char types[512];
	join_strings(json_object_get(o, "agent_types"), types, sizeof types);
	printf("%s: %s (lifecycle %s; routing sets changed: %s)\n",
	       record_str(o, "worker_id"), record_str(o, "operation"),
	       record_str(o, "lifecycle"), types);
}

static int run_admin(struct cli *cli, int argc, char **argv,
		     enum bg_admin_op op)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct admin_args a = { .force_allowed = op == BG_ADMIN_EVICT };
	const char *w = NULL;
	int status = parse_positional(
		cli, argc, argv,
		op == BG_ADMIN_SUSPEND || op == BG_ADMIN_EVICT ? opts : NULL,
		admin_option, &a, &w, 1, "WORKER_ID");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_admin(cli->client, op, w, a.reason, a.force, &doc);
	return rc ? fail(cli, argv[0], rc) : print_doc(cli, doc, admin_text);
}

static int cmd_suspend(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_SUSPEND);
}

static int cmd_resume(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_RESUME);
}

static int cmd_evict(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_EVICT);
}

static int cmd_allow_rejoin(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_ALLOW_REJOIN);
}

static int run_access(struct cli *cli, int argc, char **argv, bool allow)
{
	const char *pos[2];
	bool added = false;
	int status = parse_positional(cli, argc, argv, NULL, NULL, NULL, pos, 2,
				      "AGENT_TYPE WORKER_ID");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	int rc = allow ? bg_client_allow(cli->client, pos[0], pos[1], &added)
		       : bg_client_deny(cli->client, pos[0], pos[1]);
	if (rc)
		return fail(cli, argv[0], rc);
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "agent_type", pos[0]);
		set_str(o, "worker_id", pos[1]);
		set_str(o, "operation", allow ? "allow" : "deny");
		json_object_set_new(o, "routing",
				    json_boolean(allow ? added : false));
		print_json(o);
	} else {
		printf("%s: %s for %s%s\n", pos[1],
		       allow ? "allowed" : "denied", pos[0],
		       added ? " (back in its routing set)" : "");
	}
	return EXIT_OK;
}

static int cmd_deny(struct cli *cli, int argc, char **argv)
{
	return run_access(cli, argc, argv, false);
}

static int cmd_allow(struct cli *cli, int argc, char **argv)
{
	return run_access(cli, argc, argv, true);
}

/* ---- reload --------------------------------------------------------- */

struct reload_args {
	const char *reason, *reload_id;
	bool wait;
	int timeout_ms;
};

static int reload_option(int opt, void *arg)
{
	struct reload_args *a = arg;
	if (opt == OPT_REASON)
		a->reason = optarg;
	else if (opt == OPT_RELOAD_ID)
		a->reload_id = optarg;
	else if (opt == OPT_WAIT)
		a->wait = true;
	else if (opt == OPT_TIMEOUT && !parse_ms(optarg, &a->timeout_ms))
		return EXIT_OK;
	else
		return EXIT_USAGE;
	return EXIT_OK;
}

/* The ack of a dispatched worker not seen before, or NULL. */
static bool new_ack(const json_t *workers, json_t *acked, const json_t *ack)
{
	const char *w = json_string_value(json_object_get(ack, "worker_id"));
	size_t i;
	json_t *v;
	bool dispatched = false;
	json_array_foreach(workers, i, v)
		dispatched |= w && json_string_value(v) &&
			      !strcmp(w, json_string_value(v));
	if (!dispatched || json_object_get(acked, w))
		return false;
	json_object_set_new(acked, w, json_true());
	return true;
}

/* Collect ACKs until every dispatched worker sent one or the deadline. */
static int collect_acks(struct cli *cli, json_t *out, int timeout_ms)
{
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	const char *rid = record_str(out, "reload_id");
	const json_t *workers = json_object_get(out, "worker_ids");
	json_t *acks = json_array(), *acked = json_object();
	int64_t deadline = mono_ms() + timeout_ms;
	int rc = 0;
	json_object_set_new(out, "acks", acks);
	while (json_object_size(acked) < json_array_size(workers)) {
		int64_t left = deadline - mono_ms();
		char *doc;
		if (left <= 0)
			break;
		rc = bg_client_reload_acks(cli->client, rid, last, (int)left,
					   &doc);
		if (rc)
			break;
		json_t *batch = json_loads(doc, 0, NULL), *a;
		size_t i;
		free(doc);
		json_array_foreach(batch, i, a)
			if (new_ack(workers, acked, a))
				json_array_append(acks, a);
		json_decref(batch);
	}
	json_object_set_new(out, "complete",
			    json_boolean(json_object_size(acked) ==
					 json_array_size(workers)));
	json_decref(acked);
	return rc;
}

/* Exit status of a reload: every dispatched worker acked success. */
static int reload_status(const json_t *o, bool wait)
{
	size_t i;
	json_t *a;
	if (jint(o, "dispatched_count") == 0) {
		fprintf(stderr, "bygate: reload: no online worker of %s\n",
			record_str(o, "agent_type"));
		return EXIT_FAIL;
	}
	if (!wait)
		return EXIT_OK;
	int status = EXIT_OK;
	json_array_foreach(json_object_get(o, "acks"), i, a)
		if (strcmp(record_str(a, "status"), "success")) {
			fprintf(stderr, "bygate: reload failed on %s: %s\n",
				record_str(a, "worker_id"),
				record_str(a, "error"));
			status = EXIT_FAIL;
		}
	if (!json_is_true(json_object_get(o, "complete"))) {
		fprintf(stderr, "bygate: reload: timed out waiting for acks\n");
		status = EXIT_FAIL;
	}
	return status;
}

static void reload_text(const json_t *o)
{
	char ids[512];
	size_t i;
	json_t *a;
	join_strings(json_object_get(o, "worker_ids"), ids, sizeof ids);
	printf("%s: %s: dispatched to %lld worker(s): %s\n",
	       record_str(o, "reload_id"), record_str(o, "agent_type"),
	       (long long)jint(o, "dispatched_count"), ids);
	json_array_foreach(json_object_get(o, "acks"), i, a)
		printf("  %s: %s (version %lld -> %lld)%s%s\n",
		       record_str(a, "worker_id"), record_str(a, "status"),
		       (long long)jint(a, "version_before"),
		       (long long)jint(a, "version_after"),
		       record_str(a, "error")[0] ? ": " : "",
		       record_str(a, "error"));
}

static int cmd_reload(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "reload-id", required_argument, NULL, OPT_RELOAD_ID },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct reload_args a = { .timeout_ms = RELOAD_TIMEOUT_MS };
	const char *type = NULL;
	int status = parse_positional(cli, argc, argv, opts, reload_option, &a,
				      &type, 1, "AGENT_TYPE");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_reload(cli->client, type, a.reason, a.reload_id,
				  &doc);
	if (rc)
		return fail(cli, "reload", rc);
	json_t *o = json_loads(doc, 0, NULL);
	free(doc);
	if (a.wait && jint(o, "dispatched_count") > 0)
		rc = collect_acks(cli, o, a.timeout_ms);
	if (rc) {
		json_decref(o);
		return fail(cli, "reading reload acks", rc);
	}
	if (cli->json)
		print_json(json_incref(o));
	else
		reload_text(o);
	status = reload_status(o, a.wait);
	json_decref(o);
	return status;
}

/* ---- gate ----------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	g_stop = sig;
}

static int gate_option(int opt, void *arg)
{
	struct bg_gate_options *o = arg;
	int *ms = opt == OPT_MAX_ATTEMPTS	? &o->max_attempts
		  : opt == OPT_PROVIDER_TIMEOUT ? &o->provider_timeout_ms
		  : opt == OPT_ONLINE_TIMEOUT	? &o->online_timeout_ms
						: NULL;
	if (opt == OPT_PROVIDER)
		o->provider = optarg;
	else if (opt == OPT_GROUP)
		o->group = optarg;
	else if (opt == OPT_CONSUMER)
		o->consumer = optarg;
	else if (opt == OPT_ONCE)
		o->once = true;
	else if (ms == NULL || parse_ms(optarg, ms))
		return EXIT_USAGE;
	return EXIT_OK;
}

static void on_gate_event(void *arg, const struct bg_gate_event *ev)
{
	const struct cli *cli = arg;
	if (!cli->json) {
		printf("%s %s %s: %s (%d attempt(s), %d delivered)%s%s\n",
		       ev->entry_id, ev->execution_id, ev->agent_type,
		       ev->status, ev->attempts, ev->delivered,
		       ev->reason[0] ? ": " : "", ev->reason);
		return;
	}
	json_t *o = json_object();
	set_str(o, "entry_id", ev->entry_id);
	set_str(o, "execution_id", ev->execution_id);
	set_str(o, "agent_type", ev->agent_type);
	set_str(o, "status", ev->status);
	set_str(o, "reason", ev->reason);
	json_object_set_new(o, "attempts", json_integer(ev->attempts));
	json_object_set_new(o, "delivered", json_integer(ev->delivered));
	json_t *d = ev->decision ? json_loads(ev->decision, 0, NULL) : NULL;
	json_object_set_new(o, "decision", d ? d : json_null());
	print_json(o);
}

static int cmd_gate(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "provider", required_argument, NULL, OPT_PROVIDER },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "consumer", required_argument, NULL, OPT_CONSUMER },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS },
		{ "provider-timeout-ms", required_argument, NULL,
		  OPT_PROVIDER_TIMEOUT },
		{ "online-timeout-ms", required_argument, NULL,
		  OPT_ONLINE_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct bg_gate_options o = { 0 };
	int status = parse_positional(cli, argc, argv, opts, gate_option, &o,
				      NULL, 0, "");
	status = require(status, "gate", "--provider", o.provider);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	/* the gate stops between steps: no connection shutdown on a signal */
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = bg_client_gate(cli->client, &o, &g_stop, on_gate_event, cli);
	return rc ? fail(cli, "gate", rc) : EXIT_OK;
}

static int cmd_dispatch(struct cli *cli, int argc, char **argv)
{
	const char *exec_id = NULL;
	int delivered = 0;
	int status = parse_positional(cli, argc, argv, NULL, NULL, NULL,
				      &exec_id, 1, "EXECUTION_ID");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	int rc = bg_client_dispatch_ready(cli->client, exec_id, &delivered);
	if (rc)
		return fail(cli, "dispatch", rc);
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "execution_id", exec_id);
		json_object_set_new(o, "delivered", json_integer(delivered));
		print_json(o);
	} else {
		printf("%s: %d pending delivery(ies) dispatched\n", exec_id,
		       delivered);
	}
	return EXIT_OK;
}

/* ---- workflows: dag, fanout, group (docs/client.md "Workflows") ------- */

#define WF_TIMEOUT_MS 600000	   /* dag run / group start --wait */
#define WF_FANOUT_SLACK_MS 60000   /* fanout --wait: timeout_s plus this */
#define WF_FILE_MAX (16 << 20)	   /* a spec, inputs or followers file */
#define WF_TIMEOUT_S_MAX 1000000.0 /* fanout --timeout-s */

struct wf_args {
	enum bg_wf_kind kind;
	const char *cmd; /* "dag run", "fanout", "group start" */
	const char *session;
	const char *agent_type; /* NULL: the kind's */
	bool wait;
	int wait_timeout_ms; /* 0: the kind's default */
	json_t *spec;	     /* owned */
};

#define WF_OPTIONS                                                             \
	{ "session", required_argument, NULL, OPT_SESSION },                   \
		{ "wait", no_argument, NULL, OPT_WAIT },                       \
		{ "wait-timeout-ms", required_argument, NULL,                  \
		  OPT_WAIT_TIMEOUT },                                          \
		{ "agent-type", required_argument, NULL, OPT_AGENT },          \
	{                                                                      \
		"json", no_argument, NULL, OPT_JSON                            \
	}

static int wf_option(struct cli *cli, struct wf_args *a, int opt)
{
	switch (opt) {
	case OPT_SESSION:
		a->session = optarg;
		break;
	case OPT_WAIT:
		a->wait = true;
		break;
	case OPT_WAIT_TIMEOUT:
		if (parse_ms(optarg, &a->wait_timeout_ms))
			return usage_error("bad --wait-timeout-ms '%s'",
					   optarg);
		break;
	case OPT_AGENT:
		a->agent_type = optarg;
		break;
	case OPT_JSON:
		cli->json = true;
		break;
	default:
		return usage_error("%s: bad option", a->cmd);
	}
	return EXIT_OK;
}

/* FILE ("-": stdin) whole, NUL-terminated, into out. 0 or -errno. */
static int read_file(const char *path, struct bg_buf *out)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (f == NULL)
		return -errno;
	char chunk[65536];
	size_t n;
	int rc = bg_buf_puts(out, "");
	while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		rc = out->len + n > WF_FILE_MAX ? -EFBIG
						: bg_buf_append(out, chunk, n);
	if (rc == 0 && ferror(f))
		rc = -EIO;
	if (f != stdin)
		fclose(f);
	return rc;
}

/* The text of FILE for cmd; an exit status (the error said). */
static int load_text(const char *cmd, const char *path, struct bg_buf *out)
{
	int rc = read_file(path, out);
	if (rc == 0)
		return EXIT_OK;
	fprintf(stderr, "bygate: %s: cannot read %s: %s\n", cmd,
		strcmp(path, "-") ? path : "stdin", strerror(-rc));
	return EXIT_USAGE;
}

/* The JSON document (an object or array, duplicated keys refused) of
 * FILE; an exit status. */
static int load_json(const char *cmd, const char *path, bool object,
		     json_t **out)
{
	struct bg_buf text = { 0 };
	json_error_t jerr;
	*out = NULL;
	int status = load_text(cmd, path, &text);
	if (status != EXIT_OK) {
		bg_buf_free(&text);
		return status;
	}
	*out = json_loadb(text.p, text.len, JSON_REJECT_DUPLICATES, &jerr);
	bg_buf_free(&text);
	const char *name = strcmp(path, "-") ? path : "stdin";
	if (*out == NULL) {
		fprintf(stderr, "bygate: %s: %s is not JSON: line %d: %s\n",
			cmd, name, jerr.line, jerr.text);
		return EXIT_USAGE;
	}
	if (object ? !json_is_object(*out) : !json_is_array(*out)) {
		fprintf(stderr, "bygate: %s: %s is not a JSON %s\n", cmd, name,
			object ? "object" : "array");
		json_decref(*out);
		*out = NULL;
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The first line of a started workflow. */
static void print_started(const struct cli *cli, const struct wf_args *a,
			  const char *session, const struct bg_send_response *r)
{
	bool group = a->kind == BG_WF_GROUP;
	if (!cli->json) {
		if (group)
			printf("group %s session %s\n", r->message_id, session);
		else
			printf("session %s message %s\n", session,
			       r->message_id);
		return;
	}
	json_t *o = json_object();
	set_str(o, "session_id", session);
	set_str(o, "message_id", r->message_id);
	if (group)
		set_str(o, "group_id", r->message_id);
	set_str(o, "execution_id", r->execution_id);
	set_str(o, "entry_id", r->entry_id);
	set_str(o, "trace_id", r->trace_id);
	set_str(o, "route_status", r->route_status);
	set_str(o, "target_agent_type", r->target_agent_type);
	set_str(o, "stream", r->stream);
	print_json(o);
}

/* Follows a workflow's events: its steps, its final answer, its end. */
struct wf_follow {
	const struct cli *cli;
	const char *message_id, *execution_id;
	json_t *steps;	/* NULL: print each step as it comes */
	json_t *result; /* the final answer's JSON object, when seen */
	bool ended;	/* its appStreamResponse was seen */
};

/* One step as --json prints it and `group show` keeps it. */
static json_t *step_doc(const char *entry_id, int64_t ts, json_t *step)
{
	return json_pack("{s:s,s:I,s:o}", "entry_id", entry_id, "timestamp",
			 (json_int_t)ts, "step", step);
}

static void print_step(const struct cli *cli, const json_t *doc)
{
	if (cli->json) {
		print_json(json_incref((json_t *)doc));
		return;
	}
	struct bg_buf line = { 0 };
	if (bg_client_wf_step_line(&line, json_object_get(doc, "step"),
				   jint(doc, "timestamp")) == 0)
		puts(line.p);
	bg_buf_free(&line);
}

static int on_wf_event(void *arg, const struct bg_client_event *ev)
{
	struct wf_follow *f = arg;
	int64_t ts;
	json_t *step = bg_client_wf_step(ev->raw, ev->raw_len, f->message_id,
					 f->execution_id, &ts);
	if (step) {
		json_t *doc = step_doc(ev->entry_id, ts, step);
		if (doc == NULL)
			return -ENOMEM;
		if (f->steps)
			return json_array_append_new(f->steps, doc) ? -ENOMEM
								    : 0;
		print_step(f->cli, doc);
		json_decref(doc);
		return 0;
	}
	if (strcmp(ev->message_id, f->message_id))
		return 0;
	if (!strcmp(ev->event_type, "finalAnswer") && ev->content) {
		json_decref(f->result);
		f->result = parse_object(ev->content, ev->content_len);
	} else if (!strcmp(ev->event_type, "appStreamResponse")) {
		f->ended = true;
		return f->steps ? 0 : 1;
	}
	return 0;
}

/* The reason a workflow did not complete: its result's error, else the
 * record's error_message. */
static const char *wf_error(const json_t *result, const json_t *rec)
{
	const char *e = record_str(result, "error");
	return e[0] ? e : record_str(rec, "error_message");
}

static int print_table(enum bg_wf_kind kind, const json_t *result)
{
	struct bg_buf t = { 0 };
	int rc = bg_client_wf_table(&t, kind, result);
	if (rc == 0)
		fputs(t.p, stdout);
	bg_buf_free(&t);
	return rc;
}

/* Print the end of a waited workflow; returns its exit status. */
static int wf_report(const struct cli *cli, const struct wf_args *a,
		     const char *session, const struct bg_send_response *r,
		     const json_t *rec, const json_t *result, bool timed_out)
{
	const char *status = record_str(rec, "status");
	bool completed =
		!timed_out &&
		bg_str_eq(bg_status_normalize(bg_str_c(status)), "COMPLETED");
	bool ok = completed && bg_client_wf_ok(a->kind, result);
	const char *err = wf_error(result, rec);
	if (timed_out)
		fprintf(stderr,
			"bygate: %s: timed out after %d ms waiting for the "
			"end of %s (status %s)\n",
			a->cmd, a->wait_timeout_ms, r->message_id,
			status[0] ? status : "unknown");
	else if (!completed)
		fprintf(stderr, "bygate: %s: %s ended %s%s%s\n", a->cmd,
			r->message_id, status[0] ? status : "(no record)",
			err[0] ? ": " : "", err);
	else if (result == NULL)
		fprintf(stderr,
			"bygate: %s: %s: no result object in its final "
			"answer\n",
			a->cmd, r->message_id);
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "session_id", session);
		set_str(o, "message_id", r->message_id);
		set_str(o, "execution_id", r->execution_id);
		set_str(o, "status", status);
		json_object_set_new(o, "ok", json_boolean(ok));
		json_object_set_new(o, "result",
				    result ? json_incref((json_t *)result)
					   : json_null());
		if (timed_out)
			set_str(o, "error", "timeout");
		else if (!completed && err[0])
			set_str(o, "error", err);
		print_json(o);
	} else if (result && json_object_get(result, "run_id")) {
		/* the table on a failed run too: which task failed, why */
		putchar('\n');
		if (print_table(a->kind, result))
			return fail(cli, a->cmd, -ENOMEM);
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

/* Follow the workflow's steps until its end marker or the deadline, then
 * settle its record and report. */
static int wf_wait(struct cli *cli, const struct wf_args *a,
		   const char *session, const struct bg_send_response *r,
		   char *last)
{
	int64_t deadline = mono_ms() + a->wait_timeout_ms;
	struct wf_follow f = { cli,  r->message_id, r->execution_id,
			       NULL, NULL,	    false };
	int rc = 0;
	while (!f.ended && rc >= 0) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			break;
		rc = bg_client_read_events(cli->client, session, last,
					   (int)left, on_wf_event, &f, last);
	}
	json_t *rec = NULL;
	if (rc >= 0)
		rc = settle_record(cli, session, r->message_id, f.ended, &rec);
	int status =
		rc < 0 ? fail(cli, "reading the workflow", rc)
		       : wf_report(cli, a, session, r, rec, f.result, !f.ended);
	json_decref(rec);
	json_decref(f.result);
	return status;
}

/* Send the workflow's ASK (a new wf-xxxxxxxx session unless given) and,
 * with --wait, follow it to its end. Consumes a->spec. */
static int run_workflow(struct cli *cli, struct wf_args *a)
{
	char session[BG_CLIENT_ID_MAX];
	char *content = json_dumps(a->spec, JSON_COMPACT);
	json_decref(a->spec);
	a->spec = NULL;
	int status = content ? EXIT_OK : fail(cli, a->cmd, -ENOMEM);
	if (status == EXIT_OK && a->session &&
	    snprintf(session, sizeof session, "%s", a->session) >=
		    (int)sizeof session)
		status = usage_error("%s: --session too long", a->cmd);
	else if (status == EXIT_OK && !a->session &&
		 bg_id_new(session, sizeof session, "wf-"))
		status = fail(cli, a->cmd, -EIO);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK) {
		free(content);
		return status;
	}
	struct bg_send_request req = {
		.agent_type = a->agent_type ? a->agent_type
					    : bg_client_wf_agent_type(a->kind),
		.session_id = session,
		.content = content,
		.content_is_json = true,
	};
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	struct bg_send_response r;
	int rc = a->wait ? bg_client_last_entry_id(cli->client, session, last)
			 : 0;
	if (rc == 0)
		rc = bg_client_send(cli->client, &req, &r);
	free(content);
	if (rc == BG_CLIENT_EREJECTED)
		return print_rejected(cli, &(struct send_args){ 0 }, &r);
	if (rc)
		return fail(cli, a->cmd, rc);
	print_started(cli, a, session, &r);
	return a->wait ? wf_wait(cli, a, session, &r, last) : EXIT_OK;
}

/* `CMD SUB ...` -> the sub-command's argv, or a usage error. */
static int sub_command(int argc, char **argv, const char *const *subs,
		       int *which)
{
	for (int i = 0; argc > 1 && subs[i]; i++)
		if (!strcmp(argv[1], subs[i])) {
			*which = i;
			return EXIT_OK;
		}
	return usage_error(argc > 1 ? "unknown sub-command '%s'"
				    : "%s: a sub-command is required",
			   argc > 1 ? argv[1] : argv[0]);
}

/* dag run FILE / group start FILE: the spec file and the common options
 * (--open for a group). */
static int parse_spec_command(struct cli *cli, int argc, char **argv,
			      struct wf_args *a)
{
	static const struct option dag_opts[] = { WF_OPTIONS,
						  { NULL, 0, NULL, 0 } };
	static const struct option group_opts[] = {
		WF_OPTIONS,
		{ "open", no_argument, NULL, OPT_OPEN },
		{ NULL, 0, NULL, 0 },
	};
	bool group = a->kind == BG_WF_GROUP, open = false;
	int opt, status = EXIT_OK;
	while (status == EXIT_OK &&
	       (opt = next_opt(argc, argv, group ? group_opts : dag_opts)) !=
		       -1) {
		if (opt == OPT_OPEN)
			open = true;
		else
			status = wf_option(cli, a, opt);
	}
	const char *file = status == EXIT_OK && optind < argc ? argv[optind++]
							      : NULL;
	if (status == EXIT_OK)
		status = no_positional(argc, argv);
	status = require(status, a->cmd, "FILE", file);
	if (status == EXIT_OK)
		status = load_json(a->cmd, file, true, &a->spec);
	if (status == EXIT_OK && open &&
	    json_object_set_new(a->spec, "open", json_true()))
		status = fail(cli, a->cmd, -ENOMEM);
	if (!a->wait_timeout_ms)
		a->wait_timeout_ms = WF_TIMEOUT_MS;
	return status;
}

static int cmd_dag(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "run", NULL };
	struct wf_args a = { .kind = BG_WF_DAG, .cmd = "dag run" };
	int which;
	int status = sub_command(argc, argv, subs, &which);
	if (status == EXIT_OK)
		status = parse_spec_command(cli, argc - 1, argv + 1, &a);
	if (status != EXIT_OK) {
		json_decref(a.spec);
		return status;
	}
	return run_workflow(cli, &a);
}

/* fanout's own options. */
struct fanout_args {
	const char *agent;
	json_t *inputs; /* from --input / --inputs-file */
	int forms;	/* how many of --input, --inputs-file, --count */
	bool input_seen;
	long long count;
	double timeout_s;
};

static int fanout_option(struct fanout_args *f, int opt)
{
	char *end;
	json_t *v;
	switch (opt) {
	case OPT_WF_AGENT:
		f->agent = optarg;
		return EXIT_OK;
	case OPT_INPUT:
		v = json_loads(optarg, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			       NULL);
		if (v == NULL)
			return usage_error("fanout: --input '%s' is not JSON "
					   "(text is quoted: '\"text\"')",
					   optarg);
		f->forms += !f->input_seen;
		f->input_seen = true;
		return json_array_append_new(f->inputs, v) ? EXIT_FAIL
							   : EXIT_OK;
	case OPT_INPUTS_FILE:
		f->forms++;
		if (load_json("fanout", optarg, false, &v) != EXIT_OK)
			return EXIT_USAGE;
		json_array_extend(f->inputs, v);
		json_decref(v);
		return EXIT_OK;
	case OPT_COUNT:
		f->forms++;
		errno = 0;
		f->count = strtoll(optarg, &end, 10);
		if (errno || end == optarg || *end || f->count <= 0)
			return usage_error("fanout: bad --count '%s'", optarg);
		return EXIT_OK;
	case OPT_TIMEOUT_S:
		errno = 0;
		f->timeout_s = strtod(optarg, &end);
		if (errno || end == optarg || *end || !(f->timeout_s > 0) ||
		    f->timeout_s > WF_TIMEOUT_S_MAX)
			return usage_error("fanout: bad --timeout-s '%s'",
					   optarg);
		return EXIT_OK;
	}
	return usage_error("%s: bad option", "fanout");
}

static int cmd_fanout(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		WF_OPTIONS,
		{ "agent", required_argument, NULL, OPT_WF_AGENT },
		{ "input", required_argument, NULL, OPT_INPUT },
		{ "inputs-file", required_argument, NULL, OPT_INPUTS_FILE },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "timeout-s", required_argument, NULL, OPT_TIMEOUT_S },
		{ NULL, 0, NULL, 0 },
	};
	struct wf_args a = { .kind = BG_WF_FANOUT, .cmd = "fanout" };
	struct fanout_args f = { .inputs = json_array() };
	int opt, status = EXIT_OK;
	while (status == EXIT_OK && (opt = next_opt(argc, argv, opts)) != -1)
		status = opt >= OPT_WF_AGENT ? fanout_option(&f, opt)
					     : wf_option(cli, &a, opt);
	if (status == EXIT_OK)
		status = no_positional(argc, argv);
	status = require(status, a.cmd, "--agent", f.agent);
	if (status == EXIT_OK && f.forms != 1)
		status = usage_error("fanout: %s",
				     "give one of --input, --inputs-file, "
				     "--count");
	if (status == EXIT_OK && !f.count && json_array_size(f.inputs) == 0)
		status = usage_error("fanout: %s", "no input given");
	if (status == EXIT_OK && !(f.timeout_s > 0))
		status = require(status, a.cmd, "--timeout-s", NULL);
	if (status == EXIT_OK) {
		a.spec = bg_client_wf_fanout_spec(f.agent,
						  f.count ? NULL : f.inputs,
						  f.count, f.timeout_s);
		if (a.spec == NULL)
			status = fail(cli, a.cmd, -ENOMEM);
	}
	json_decref(f.inputs);
	if (status != EXIT_OK)
		return status;
	if (!a.wait_timeout_ms) {
		double ms = f.timeout_s * 1000.0 + WF_FANOUT_SLACK_MS;
		a.wait_timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
	}
	return run_workflow(cli, &a);
}

/* ---- group: start, add, close, show ----------------------------------- */

struct group_args {
	const char *session;
	const char *group;
	json_t *followers; /* add */
};

static int group_option(struct cli *cli, struct group_args *g, int opt)
{
	const char *why;
	struct bg_buf text = { 0 };
	int status = EXIT_OK;
	if (opt == OPT_SESSION) {
		g->session = optarg;
	} else if (opt == OPT_JSON) {
		cli->json = true;
	} else if (opt == OPT_FOLLOWER && g->followers) {
		if (bg_client_wf_followers(optarg, g->followers, &why))
			status = usage_error("group add: bad --follower: %s",
					     why);
	} else if (opt == OPT_FILE && g->followers) {
		status = load_text("group add", optarg, &text);
		if (status == EXIT_OK &&
		    bg_client_wf_followers(text.p, g->followers, &why))
			status = usage_error("group add: bad --file: %s", why);
	} else {
		status = usage_error("%s: bad option", "group");
	}
	bg_buf_free(&text);
	return status;
}

/* group add|close|show GROUP_ID --session S [...] */
static int parse_group_ref(struct cli *cli, int argc, char **argv,
			   const char *cmd, struct group_args *g)
{
	static const struct option opts[] = {
		{ "session", required_argument, NULL, OPT_SESSION },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "follower", required_argument, NULL, OPT_FOLLOWER },
		{ "file", required_argument, NULL, OPT_FILE },
		{ NULL, 0, NULL, 0 },
	};
	int opt, status = EXIT_OK;
	while (status == EXIT_OK && (opt = next_opt(argc, argv, opts)) != -1)
		status = group_option(cli, g, opt);
	if (status == EXIT_OK && optind < argc)
		g->group = argv[optind++];
	if (status == EXIT_OK)
		status = no_positional(argc, argv);
	status = require(status, cmd, "GROUP_ID", g->group);
	status = require(status, cmd, "--session", g->session);
	if (status == EXIT_OK && g->followers &&
	    json_array_size(g->followers) == 0)
		status = require(status, cmd, "--follower or --file", NULL);
	return status;
}

/* The group's execution record (exit 1 when there is none); *rec NULL
 * when it is not a JSON object. */
static int group_record(struct cli *cli, const char *cmd,
			const struct group_args *g, json_t **rec)
{
	char *raw = NULL;
	size_t len = 0;
	*rec = NULL;
	int rc = bg_client_get_execution(cli->client, g->session, g->group,
					 &raw, &len);
	if (rc == -ENOENT) {
		fprintf(stderr, "bygate: %s: no group %s in session %s\n", cmd,
			g->group, g->session);
		return EXIT_FAIL;
	}
	if (rc)
		return fail(cli, "reading the group's record", rc);
	*rec = parse_object(raw, len);
	free(raw);
	return EXIT_OK;
}

/* group add / close: a RESUME of the group's message with content. */
static int group_resume(struct cli *cli, const char *cmd,
			const struct group_args *g, json_t *content)
{
	json_t *rec;
	int status = connect_client(cli);
	if (status == EXIT_OK)
		status = group_record(cli, cmd, g, &rec);
	if (status != EXIT_OK)
		return status;
	const char *st = record_str(rec, "status");
	bool ended = bg_status_is_terminal(bg_status_normalize(bg_str_c(st)));
	if (ended)
		fprintf(stderr, "bygate: %s: group %s has ended (%s)\n", cmd,
			g->group, st);
	json_decref(rec);
	if (ended)
		return EXIT_FAIL;
	char *text = json_dumps(content, JSON_COMPACT);
	if (text == NULL)
		return fail(cli, cmd, -ENOMEM);
	struct bg_send_request req = { .session_id = g->session,
				       .message_id = g->group,
				       .content = text,
				       .content_is_json = true };
	struct bg_send_response r;
	int rc = bg_client_reply(cli->client, &req, &r);
	free(text);
	if (rc == BG_CLIENT_EREJECTED)
		return print_rejected(cli, &(struct send_args){ .reply = true },
				      &r);
	if (rc)
		return fail(cli, cmd, rc);
	size_t n = json_array_size(g->followers);
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "group_id", g->group);
		set_str(o, "session_id", g->session);
		set_str(o, "operation", g->followers ? "add" : "close");
		set_str(o, "execution_id", r.execution_id);
		set_str(o, "entry_id", r.entry_id);
		set_str(o, "route_status", r.route_status);
		if (g->followers)
			json_object_set_new(o, "followers", json_integer(n));
		print_json(o);
	} else if (g->followers) {
		printf("group %s: %zu follower(s) sent\n", g->group, n);
	} else {
		printf("group %s: close sent\n", g->group);
	}
	return EXIT_OK;
}

static void group_show_text(const struct group_args *g, const json_t *rec,
			    const struct wf_follow *f)
{
	const char *st = record_str(rec, "status");
	size_t i;
	json_t *doc;
	printf("group %s: %s (execution %s, session %s)\n", g->group,
	       st[0] ? st : "?", record_str(rec, "execution_id"), g->session);
	json_array_foreach(f->steps, i, doc)
		print_step(f->cli, doc);
	if (json_array_size(f->steps) == 0)
		printf("(no step yet)\n");
	const char *err = wf_error(f->result, rec);
	if (err[0])
		printf("error: %s\n", err);
	else if (f->result && putchar('\n') != EOF)
		print_table(BG_WF_GROUP, f->result);
}

/* group show: the record's status, every step seen so far on the session
 * stream, and the result once there is one. */
static int group_show(struct cli *cli, const struct group_args *g)
{
	json_t *rec;
	int status = connect_client(cli);
	if (status == EXIT_OK)
		status = group_record(cli, "group show", g, &rec);
	if (status != EXIT_OK)
		return status;
	struct wf_follow f = {
		cli,	      g->group, record_str(rec, "execution_id"),
		json_array(), NULL,	false
	};
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	int rc;
	while ((rc = bg_client_read_events(cli->client, g->session, last, -1,
					   on_wf_event, &f, last)) > 0)
		;
	if (rc < 0) {
		status = fail(cli, "reading events", rc);
	} else if (cli->json) {
		json_t *o = json_object();
		set_str(o, "group_id", g->group);
		set_str(o, "session_id", g->session);
		set_str(o, "execution_id", record_str(rec, "execution_id"));
		set_str(o, "status", record_str(rec, "status"));
		json_object_set(o, "steps", f.steps);
		json_object_set_new(o, "result",
				    f.result ? json_incref(f.result)
					     : json_null());
		print_json(o);
	} else {
		group_show_text(g, rec, &f);
	}
	json_decref(f.steps);
	json_decref(f.result);
	json_decref(rec);
	return status;
}

static int cmd_group(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "start", "add", "close", "show",
					    NULL };
	int which = 0;
	int status = sub_command(argc, argv, subs, &which);
	if (status != EXIT_OK)
		return status;
	if (which == 0) {
		struct wf_args a = { .kind = BG_WF_GROUP,
				     .cmd = "group start" };
		status = parse_spec_command(cli, argc - 1, argv + 1, &a);
		if (status != EXIT_OK) {
			json_decref(a.spec);
			return status;
		}
		return run_workflow(cli, &a);
	}
	static const char *const names[] = { "", "group add", "group close",
					     "group show" };
	struct group_args g = { .followers = which == 1 ? json_array() : NULL };
	status = parse_group_ref(cli, argc - 1, argv + 1, names[which], &g);
	json_t *content = status != EXIT_OK ? NULL
			  : which == 1 ? bg_client_wf_group_add(g.followers)
			  : which == 2 ? bg_client_wf_group_close()
				       : NULL;
	if (status == EXIT_OK && which == 3)
		status = group_show(cli, &g);
	else if (status == EXIT_OK && content == NULL)
		status = fail(cli, names[which], -ENOMEM);
	else if (status == EXIT_OK)
		status = group_resume(cli, names[which], &g, content);
	json_decref(content);
	json_decref(g.followers);
	return status;
}

/* ---- triggers ------------------------------------------------------- */

#define FIRE_TIMEOUT_MS 10000 /* triggers fire --timeout-ms */

/* paused_by: "bygate:<user>@<host>". */
static void whoami(char *buf, size_t cap)
{
	char host[256] = "";
	const struct passwd *pw = getpwuid(getuid());
	if (gethostname(host, sizeof host - 1) == -1)
		host[0] = '\0';
	snprintf(buf, cap, "bygate:%s@%s", pw ? pw->pw_name : "?",
		 host[0] ? host : "?");
}

/* An unknown trigger: the library's words, exit 1. */
static int unknown_trigger(const struct cli *cli)
{
	fprintf(stderr, "bygate: %s\n", bg_client_errmsg(cli->client));
	return EXIT_FAIL;
}

static int triggers_list(struct cli *cli)
{
	struct bg_client_trigger *v;
	struct bg_buf out = { 0 };
	size_t n;
	json_t *a = NULL;
	int rc = bg_client_triggers_list(cli->client, &v, &n);
	if (rc)
		return fail(cli, "triggers", rc);
	if (cli->json && (a = json_array()) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; a && rc == 0 && i < n; i++)
		if (json_array_append_new(a, bg_client_trigger_json(&v[i])))
			rc = -ENOMEM;
	if (!cli->json)
		rc = bg_client_triggers_table(&out, v, n, bg_client_now_ms());
	bg_client_triggers_free(v, n);
	if (rc == 0 && cli->json)
		print_json(json_incref(a));
	else if (rc == 0)
		fwrite(out.p, 1, out.len, stdout);
	json_decref(a);
	bg_buf_free(&out);
	return rc ? fail(cli, "triggers", rc) : EXIT_OK;
}

static int triggers_pause(struct cli *cli, const char *name, bool paused)
{
	char who[320];
	whoami(who, sizeof who);
	int rc = bg_client_trigger_pause(cli->client, name, paused, who);
	if (rc == -ENOENT)
		return unknown_trigger(cli);
	if (rc)
		return fail(cli, paused ? "triggers pause" : "triggers resume",
			    rc);
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "trigger", name);
		json_object_set_new(o, "paused", json_boolean(paused));
		set_str(o, "by", who);
		print_json(o);
	} else {
		printf("%s: %s for the fleet\n", name,
		       paused ? "paused" : "resumed");
	}
	return EXIT_OK;
}

/* Why a manual fire sent nothing, in words. */
static const char *not_fired(const struct bg_client_fire_result *r)
{
	if (!strcmp(r->outcome, "skipped_running"))
		return "skipped_running (its max_running runs are still "
		       "active)";
	if (!strcmp(r->outcome, "skipped_paused"))
		return "skipped_paused (the trigger is paused: bygate "
		       "triggers resume NAME)";
	return r->error[0] ? r->error : r->outcome;
}

static int triggers_fire(struct cli *cli, const char *name, int timeout_ms)
{
	struct bg_client_fire_result r;
	int rc = bg_client_trigger_fire(cli->client, name, timeout_ms, &r);
	if (rc == -ENOENT)
		return unknown_trigger(cli);
	if (rc && rc != -ETIMEDOUT)
		return fail(cli, "triggers fire", rc);
	bool fired = rc == 0 && !strcmp(r.outcome, "fired");
	const char *why = rc ? bg_client_errmsg(cli->client) : r.error;
	if (cli->json) {
		json_t *o = json_object();
		set_str(o, "trigger", name);
		json_object_set_new(o, "request", json_integer(r.request));
		set_str(o, "outcome", rc ? "timeout" : r.outcome);
		set_str(o, "message_id", r.message_id);
		set_str(o, "error", why);
		print_json(o);
	} else if (fired) {
		printf("%s\n", r.message_id);
	}
	if (rc)
		fprintf(stderr, "bygate: triggers fire: %s\n", why);
	else if (!fired)
		fprintf(stderr, "bygate: triggers fire: %s: not fired: %s%s\n",
			name, !strcmp(r.outcome, "error") ? "error: " : "",
			not_fired(&r));
	return fired ? EXIT_OK : EXIT_FAIL;
}

static int fire_option(int opt, void *arg)
{
	if (opt == OPT_TIMEOUT && !parse_ms(optarg, arg))
		return EXIT_OK;
	return EXIT_USAGE;
}

static int cmd_triggers(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "list", "pause", "resume", "fire",
					    NULL };
	static const char *const names[] = { "triggers list", "triggers pause",
					     "triggers resume",
					     "triggers fire" };
	static const struct option fire_opts[] = {
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	int which = 0, timeout_ms = FIRE_TIMEOUT_MS, status = EXIT_OK;
	const char *name = NULL;
	if (argc > 1 && argv[1][0] != '-') { /* else: a bare `triggers` */
		status = sub_command(argc, argv, subs, &which);
		if (status != EXIT_OK)
			return status;
		argc--;
		argv++;
		argv[0] = (char *)names[which]; /* for the usage messages */
	}
	status = parse_positional(cli, argc, argv,
				  which == 3 ? fire_opts : NULL, fire_option,
				  &timeout_ms, &name, which == 0 ? 0 : 1,
				  "NAME");
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	if (which == 0)
		return triggers_list(cli);
	if (which == 3)
		return triggers_fire(cli, name, timeout_ms);
	return triggers_pause(cli, name, which == 1);
}

/* ---- main ----------------------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(struct cli *, int, char **);
} commands[] = {
	{ "send", cmd_send },
	{ "reply", cmd_reply },
	{ "tail", cmd_tail },
	{ "status", cmd_status },
	{ "cancel", cmd_cancel },
	{ "cancel-session", cmd_cancel_session },
	{ "workers", cmd_workers },
	{ "suspend", cmd_suspend },
	{ "resume", cmd_resume },
	{ "evict", cmd_evict },
	{ "allow-rejoin", cmd_allow_rejoin },
	{ "deny", cmd_deny },
	{ "allow", cmd_allow },
	{ "reload", cmd_reload },
	{ "gate", cmd_gate },
	{ "dispatch", cmd_dispatch },
	{ "dag", cmd_dag },
	{ "fanout", cmd_fanout },
	{ "group", cmd_group },
	{ "triggers", cmd_triggers },
};

static const struct option global_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	int opt;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "+c:h", global_opts, NULL)) !=
	       -1) {
		if (opt == 'c')
			cli.config = optarg;
		else if (opt == OPT_JSON)
			cli.json = true;
		else if (opt == 'h') {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else
			return usage_error("%s", "bad option");
	}
	if (optind >= argc)
		return usage_error("%s", "no command given");
	const char *name = argv[optind];
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(name, commands[i].name))
			continue;
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;
		if (wants_help(sub_argc, sub_argv))
			return command_help(name);
		optind = 0; /* GNU getopt: start over on the command's argv */
		int status = commands[i].run(&cli, sub_argc, sub_argv);
		g_client = NULL;
		bg_client_close(cli.client);
		return status;
	}
	return usage_error("unknown command '%s'", name);
}
