/* client/cli.c - `bygate`, the command-line client over libbygate: send a
 * task (and follow its events to the end of the turn), tail a session's
 * events, show a session's execution records. Exit status: 0 success,
 * 1 failure or timeout, 2 usage error, 3 cannot connect (docs/client.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bygate/client.h"
#include "common/buf.h"
#include "conf/config.h"
#include "wire/json.h"
#include "wire/record.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define DEFAULT_TIMEOUT_MS 60000
#define FOLLOW_BLOCK_MS 5000
/* A Python worker writes the end marker before the final record status. */
#define SETTLE_MS 3000
#define SETTLE_STEP_MS 20

static const char usage_text[] =
	"usage: bygate [-c FILE] [--json] COMMAND [OPTIONS]\n"
	"\n"
	"  send   --agent-type T --session S --content TEXT [--content-json]\n"
	"         [--user U] [--user-name N] [--metadata JSON] [--extra JSON]\n"
	"         [--message-id ID] [--trace-id ID] [--wait]\n"
	"         [--timeout-ms MS (default 60000)] [--json]\n"
	"  tail   --session S [--from ID] [--follow] [--json]\n"
	"  status --session S [--message-id M] [--json]\n"
	"\n"
	"  -c FILE  configuration (default: $BYGATE_CONFIG, else\n"
	"           /etc/bygate/bygate.conf if it exists, else defaults);\n"
	"           REDIS_HOST, REDIS_PORT, REDIS_DB, ... override it.\n"
	"exit status: 0 ok, 1 failure or timeout, 2 usage, 3 cannot connect\n";

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
	fputs(usage_text, stderr);
	return EXIT_USAGE;
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

/* getopt_long over a command's own argv (argv[0] = the command name). */
static int next_opt(int argc, char **argv, const struct option *opts)
{
	return getopt_long(argc, argv, "+", opts, NULL);
}

static int no_positional(int argc, char **argv)
{
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return EXIT_OK;
}

/* ---- send ----------------------------------------------------------- */

struct send_args {
	struct bg_send_request req;
	bool wait;
	int timeout_ms;
};

enum {
	OPT_AGENT = 1000, OPT_SESSION, OPT_CONTENT, OPT_CONTENT_JSON,
	OPT_USER, OPT_USER_NAME, OPT_METADATA, OPT_EXTRA, OPT_MESSAGE_ID,
	OPT_TRACE_ID, OPT_WAIT, OPT_TIMEOUT, OPT_JSON, OPT_FROM, OPT_FOLLOW,
};

static const struct option send_opts[] = {
	{ "agent-type", required_argument, NULL, OPT_AGENT },
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "content", required_argument, NULL, OPT_CONTENT },
	{ "content-json", no_argument, NULL, OPT_CONTENT_JSON },
	{ "user", required_argument, NULL, OPT_USER },
	{ "user-name", required_argument, NULL, OPT_USER_NAME },
	{ "metadata", required_argument, NULL, OPT_METADATA },
	{ "extra", required_argument, NULL, OPT_EXTRA },
	{ "message-id", required_argument, NULL, OPT_MESSAGE_ID },
	{ "trace-id", required_argument, NULL, OPT_TRACE_ID },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int send_option(struct cli *cli, struct send_args *a, int opt)
{
	struct bg_send_request *r = &a->req;
	switch (opt) {
	case OPT_AGENT: r->agent_type = optarg; break;
	case OPT_SESSION: r->session_id = optarg; break;
	case OPT_CONTENT: r->content = optarg; break;
	case OPT_CONTENT_JSON: r->content_is_json = true; break;
	case OPT_USER: r->user_code = optarg; break;
	case OPT_USER_NAME: r->user_name = optarg; break;
	case OPT_METADATA: r->metadata = optarg; break;
	case OPT_EXTRA: r->extra_payload = optarg; break;
	case OPT_MESSAGE_ID: r->message_id = optarg; break;
	case OPT_TRACE_ID: r->trace_id = optarg; break;
	case OPT_WAIT: a->wait = true; break;
	case OPT_JSON: cli->json = true; break;
	case OPT_TIMEOUT:
		if (parse_ms(optarg, &a->timeout_ms))
			return usage_error("bad --timeout-ms '%s'", optarg);
		break;
	default:
		return usage_error("%s: bad option", "send");
	}
	return EXIT_OK;
}

static int parse_send(struct cli *cli, int argc, char **argv,
		      struct send_args *a)
{
	int opt, rc = EXIT_OK;
	a->timeout_ms = DEFAULT_TIMEOUT_MS;
	while (rc == EXIT_OK && (opt = next_opt(argc, argv, send_opts)) != -1)
		rc = send_option(cli, a, opt);
	if (rc == EXIT_OK)
		rc = no_positional(argc, argv);
	if (rc == EXIT_OK && (!a->req.agent_type || !a->req.agent_type[0]))
		rc = usage_error("send: %s is required", "--agent-type");
	if (rc == EXIT_OK && (!a->req.session_id || !a->req.session_id[0]))
		rc = usage_error("send: %s is required", "--session");
	if (rc == EXIT_OK && !a->req.content)
		rc = usage_error("send: %s is required", "--content");
	return rc;
}

static void print_sent(const struct cli *cli,
		       const struct bg_send_response *r)
{
	if (!cli->json) {
		puts(r->message_id);
		return;
	}
	json_t *o = json_object();
	json_object_set_new(o, "message_id", jstr_c(r->message_id));
	json_object_set_new(o, "execution_id", jstr_c(r->execution_id));
	json_object_set_new(o, "entry_id", jstr_c(r->entry_id));
	json_object_set_new(o, "trace_id", jstr_c(r->trace_id));
	print_json(o);
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
static int follow_until_end(struct cli *cli, const char *session,
			    char *last, const char *message_id,
			    int64_t deadline)
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
		const char *st = json_string_value(json_object_get(*rec,
								   "status"));
		if (st && bg_status_is_terminal(bg_status_normalize(
				  bg_str_c(st))))
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
			timeout_ms, r->message_id, status[0] ? status : "unknown");
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "message_id", jstr_c(r->message_id));
		json_object_set_new(o, "execution_id", jstr_c(r->execution_id));
		json_object_set_new(o, "status", jstr_c(status));
		json_object_set_new(o, "record", rec ? json_incref(rec)
						     : json_null());
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
	const char *session = a->req.session_id;
	int rc = follow_until_end(cli, session, last, r->message_id, deadline);
	if (rc < 0)
		return fail(cli, "reading events", rc);
	json_t *rec = NULL;
	int src = settle_record(cli, session, r->message_id, rc == 0, &rec);
	if (src < 0) {
		json_decref(rec);
		return fail(cli, "reading the execution record", src);
	}
	int status = report_outcome(cli, r, rec, rc == 1, a->timeout_ms);
	json_decref(rec);
	return status;
}

static int cmd_send(struct cli *cli, int argc, char **argv)
{
	struct send_args a = { 0 };
	int status = parse_send(cli, argc, argv, &a);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	int64_t deadline = mono_ms() + a.timeout_ms;
	int rc = a.wait ? bg_client_last_entry_id(cli->client,
						  a.req.session_id, last)
			: 0;
	if (rc)
		return fail(cli, "reading the data stream", rc);
	struct bg_send_response r;
	rc = bg_client_send(cli->client, &a.req, &r);
	if (rc)
		return fail(cli, "send", rc);
	print_sent(cli, &r);
	return a.wait ? wait_for_end(cli, &a, &r, last, deadline) : EXIT_OK;
}

/* ---- tail ----------------------------------------------------------- */

static const struct option tail_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "from", required_argument, NULL, OPT_FROM },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int cmd_tail(struct cli *cli, int argc, char **argv)
{
	const char *session = NULL, *from = "0-0";
	bool follow = false;
	int opt;
	while ((opt = next_opt(argc, argv, tail_opts)) != -1) {
		if (opt == OPT_SESSION)
			session = optarg;
		else if (opt == OPT_FROM)
			from = optarg;
		else if (opt == OPT_FOLLOW)
			follow = true;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			return usage_error("%s: bad option", "tail");
	}
	int status = no_positional(argc, argv);
	if (status == EXIT_OK && (!session || !session[0]))
		status = usage_error("tail: %s is required", "--session");
	if (status == EXIT_OK && (!from[0] || strlen(from) >=
						     BG_CLIENT_ENTRY_ID_MAX))
		status = usage_error("tail: bad --from '%s'", from);
	if (status == EXIT_OK)
		status = connect_client(cli);
	if (status != EXIT_OK)
		return status;
	char last[BG_CLIENT_ENTRY_ID_MAX];
	strcpy(last, from);
	struct follow f = { cli->json, NULL, false };
	for (;;) {
		int rc = bg_client_read_events(cli->client, session, last,
					       follow ? FOLLOW_BLOCK_MS : -1,
					       on_event, &f, last);
		if (rc == BG_CLIENT_EINTR || (rc >= 0 && g_signal))
			return EXIT_OK; /* SIGINT/SIGTERM end a follow */
		if (rc < 0)
			return fail(cli, "reading events", rc);
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
	rows->v[rows->n++] = (struct row){ id, parse_object(r->json,
							    r->json_len) };
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
		printf("%-14s (record is not a JSON object)\n", r->execution_id);
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
	int rc = bg_client_get_execution(cli->client, session, message_id,
					 &raw, &len);
	if (rc == -ENOENT) {
		fprintf(stderr, "bygate: no execution for message %s in "
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

static const struct option status_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "message-id", required_argument, NULL, OPT_MESSAGE_ID },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int cmd_status(struct cli *cli, int argc, char **argv)
{
	const char *session = NULL, *message_id = NULL;
	int opt;
	while ((opt = next_opt(argc, argv, status_opts)) != -1) {
		if (opt == OPT_SESSION)
			session = optarg;
		else if (opt == OPT_MESSAGE_ID)
			message_id = optarg;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			return usage_error("%s: bad option", "status");
	}
	int status = no_positional(argc, argv);
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

/* ---- main ----------------------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(struct cli *, int, char **);
} commands[] = {
	{ "send", cmd_send },
	{ "tail", cmd_tail },
	{ "status", cmd_status },
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
	while ((opt = getopt_long(argc, argv, "+c:h", global_opts, NULL)) != -1) {
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
		optind = 0; /* GNU getopt: start over on the command's argv */
		int status = commands[i].run(&cli, sub_argc, sub_argv);
		g_client = NULL;
		bg_client_close(cli.client);
		return status;
	}
	return usage_error("unknown command '%s'", name);
}
