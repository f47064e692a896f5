/* client/cli/send.c - `bygate send`, `reply` (following the turn to its
 * end with --wait), `tail`, `status` and `cancel`. */
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
#include "client/cli/cli.h"

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
	return cli_usage_error("bad --route-policy '%s'", s);
}

static int parse_priority(const char *s, long long *out)
{
	char *end;
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return cli_usage_error("bad --priority '%s'", s);
	return EXIT_OK;
}

/* --timeout-ms of the availability wait: 0 means "do not wait". */
static int parse_avail_ms(const char *s, int *out)
{
	if (!strcmp(s, "0")) {
		*out = -1;
		return EXIT_OK;
	}
	return cli_parse_ms(s, out)
		       ? cli_usage_error("bad --timeout-ms '%s'", s)
		       : EXIT_OK;
}

static int route_option(struct bg_send_request *r, int opt, const char *cmd)
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
		if (cli_parse_ms(optarg, &r->idempotency_ttl_s))
			return cli_usage_error("bad --idempotency-ttl '%s'",
					       optarg);
		break;
	case OPT_POLICY:
		return parse_policy(optarg, &r->route_policy);
	case OPT_PRIORITY:
		return parse_priority(optarg, &r->priority);
	case OPT_TIMEOUT:
		return parse_avail_ms(optarg, &r->timeout_ms);
	default:
		return cli_usage_error("%s: bad option", cmd);
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
		if (cli_parse_ms(optarg, &a->wait_timeout_ms))
			return cli_usage_error("bad --wait-timeout-ms '%s'",
					       optarg);
		break;
	default:
		return route_option(r, opt, a->reply ? "reply" : "send");
	}
	return EXIT_OK;
}

static int parse_send(struct cli *cli, int argc, char **argv,
		      struct send_args *a)
{
	const struct option *opts = a->reply ? reply_opts : send_opts;
	const char *cmd = a->reply ? "reply" : "send";
	int opt, rc = EXIT_OK;
	a->wait_timeout_ms = DEFAULT_TIMEOUT_MS;
	while (rc == EXIT_OK && (opt = cli_next_opt(argc, argv, opts)) != -1)
		rc = send_option(cli, a, opt);
	if (rc == EXIT_OK && a->reply && optind < argc)
		a->req.message_id = argv[optind++];
	if (rc == EXIT_OK)
		rc = cli_no_positional(argc, argv);
	if (a->reply)
		rc = cli_require(rc, cmd, "MESSAGE_ID", a->req.message_id);
	else
		rc = cli_require(rc, cmd, "--agent-type", a->req.agent_type);
	rc = cli_require(rc, cmd, "--session", a->req.session_id);
	if (!a->reply && rc == EXIT_OK && !a->req.content)
		rc = cli_require(rc, cmd, "--content", NULL);
	return rc;
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
	cli_set_str(o, "message_id", r->message_id);
	cli_set_sent(o, r);
	if (r->pending_id[0])
		cli_set_str(o, "pending_entry_id", r->pending_id);
	if (a->reply)
		json_object_set_new(o, "resumed", json_boolean(r->resumed));
	if (r->duplicate) {
		json_object_set_new(o, "duplicate", json_true());
		cli_set_str(o, "session_id", r->session_id);
	}
	cli_print_json(o);
}

/* A send availability routing refused: stderr, and the JSON result. */
int cli_print_rejected(const struct cli *cli, const struct send_args *a,
		       const struct bg_send_response *r)
{
	fprintf(stderr, "bygate: %s rejected: %s: %s\n",
		a->reply ? "reply" : "send", r->error_code, r->error);
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "success", json_false());
		cli_set_str(o, "status", "FAILED");
		cli_set_str(o, "message_id", r->message_id);
		cli_set_str(o, "execution_id", r->execution_id);
		cli_set_str(o, "trace_id", r->trace_id);
		cli_set_str(o, "route_status", "REJECT");
		cli_set_str(o, "error_code", r->error_code);
		cli_set_str(o, "error", r->error);
		cli_print_json(o);
	}
	return EXIT_FAIL;
}

/* The execution's record once it is terminal, or as it is when it stays
 * non-terminal for SETTLE_MS (or on timeout). *rec is NULL if absent. */
int cli_settle_record(struct cli *cli, const char *session,
		      const char *message_id, bool wait_terminal, json_t **rec)
{
	int64_t until = cli_mono_ms() + (wait_terminal ? SETTLE_MS : 0);
	for (;;) {
		char *raw = NULL;
		size_t len = 0;
		int rc = bg_client_get_execution(cli->client, session,
						 message_id, &raw, &len);
		if (rc && rc != -ENOENT)
			return rc;
		json_decref(*rec);
		*rec = cli_parse_object(raw, len);
		free(raw);
		const char *st =
			json_string_value(json_object_get(*rec, "status"));
		if (st &&
		    bg_status_is_terminal(bg_status_normalize(bg_str_c(st))))
			return 0;
		if (cli_mono_ms() >= until || g_signal)
			return 0;
		cli_sleep_ms(SETTLE_STEP_MS);
	}
}

/* ---- send --wait, reply --wait: bg_client_wait_with -------------------- */

/* The hooks' state: the events are printed as they arrive (a question in
 * words, after the wait, not as raw form JSON). */
struct wait_show {
	struct cli *cli;
	const struct send_args *a;
};

static void on_sent(void *arg, const struct bg_send_response *r)
{
	const struct wait_show *w = arg;
	print_sent(w->cli, w->a, r);
	fflush(stdout);
}

static int on_wait_event(void *arg, const struct bg_client_event *ev)
{
	const struct wait_show *w = arg;
	char *text = NULL;
	if (w->cli->json) {
		cli_print_event_json(ev, NULL);
	} else if (bg_client_event_question(ev, &text) == 0) {
		cli_print_event_text(ev);
	} else {
		printf("[%s] %s %s: (a question, below)\n", ev->event_type,
		       ev->source_agent_type, ev->message_id);
	}
	free(text);
	fflush(stdout);
	return 0;
}

/* s for a POSIX shell: as is when it is made of safe characters only,
 * else quoted '...' with each ' as '\''. */
static void put_quoted(struct bg_buf *b, const char *s)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				   "-_.:/@%+=,";
	if (s[0] && s[strspn(s, safe)] == '\0') {
		bg_buf_puts(b, s);
		return;
	}
	bg_buf_puts(b, "'");
	for (; *s; s++)
		bg_buf_puts(b, *s == '\'' ? "'\\''" : (char[]){ *s, 0 });
	bg_buf_puts(b, "'");
}

/* The exact `bygate reply` command that answers the question (malloc).
 * A message id getopt would take for an option comes last, after "--". */
static char *reply_command(const struct cli *cli,
			   const struct bg_send_outcome *o)
{
	struct bg_buf b = { 0 };
	bool dash = o->question_message_id[0] == '-';
	bg_buf_puts(&b, "bygate ");
	if (cli->config) {
		bg_buf_puts(&b, "-c ");
		put_quoted(&b, cli->config);
		bg_buf_puts(&b, " ");
	}
	bg_buf_puts(&b, "reply ");
	if (!dash) {
		put_quoted(&b, o->question_message_id);
		bg_buf_puts(&b, " ");
	}
	bg_buf_puts(&b, "--session ");
	put_quoted(&b, o->session_id);
	bg_buf_puts(&b, " --wait --content '...'");
	if (dash) {
		bg_buf_puts(&b, " -- ");
		put_quoted(&b, o->question_message_id);
	}
	if (bg_buf_append(&b, "", 1) == 0 && b.p)
		return b.p;
	bg_buf_free(&b);
	return NULL;
}

/* Print the outcome of a waited send; returns its exit status. */
static int report_outcome(const struct cli *cli,
			  const struct bg_send_outcome *o)
{
	const char *status = o->record_status;
	bool timed_out = o->status == BG_WAIT_TIMEOUT;
	if (timed_out)
		fprintf(stderr, "bygate: %s\n", o->error);
	if (cli->json) {
		json_t *rec = cli_parse_object(
			o->record, o->record ? strlen(o->record) : 0);
		json_t *j = json_object();
		cli_set_str(j, "message_id", o->message_id);
		cli_set_str(j, "execution_id", o->execution_id);
		json_object_set_new(j, "status", cli_jstr_c(status));
		json_object_set_new(j, "record", rec ? rec : json_null());
		if (o->answer)
			json_object_set_new(j, "answer",
					    cli_jstr(o->answer, o->answer_len));
		if (timed_out)
			json_object_set_new(j, "error", json_string("timeout"));
		cli_print_json(j);
	} else if (!timed_out) {
		printf("%s: %s%s%s\n", o->message_id,
		       status[0] ? status : "(no record)",
		       o->error[0] ? ": " : "", o->error);
	}
	return o->status == BG_WAIT_COMPLETED ? EXIT_OK : EXIT_FAIL;
}

/* A question and no terminal to ask it on: the question on stdout, the
 * command that answers it on stderr (and in --json's object). */
static int report_question(const struct cli *cli,
			   const struct bg_send_outcome *o)
{
	char *cmd = reply_command(cli, o);
	if (cmd == NULL)
		return cli_fail(cli, "send", -ENOMEM);
	if (cli->json) {
		json_t *j = json_object();
		cli_set_str(j, "status", "WAITING_USER");
		cli_set_str(j, "message_id", o->message_id);
		cli_set_str(j, "execution_id", o->execution_id);
		cli_set_str(j, "session_id", o->session_id);
		cli_set_str(j, "question_message_id", o->question_message_id);
		cli_set_str(j, "question", o->question ? o->question : "");
		json_t *form = json_loads(o->form ? o->form : "", 0, NULL);
		json_object_set_new(j, "form",
				    form ? form
					 : cli_jstr_c(o->form ? o->form : ""));
		cli_set_str(j, "reply_command", cmd);
		cli_print_json(j);
	} else {
		printf("%s is waiting for the user:\n%s",
		       o->question_message_id,
		       o->question ? o->question : "(no question text)\n");
	}
	fprintf(stderr,
		"bygate: %s waits for the user's answer (status WAITING_USER); "
		"to answer, run:\n  %s\n",
		o->question_message_id, cmd);
	free(cmd);
	return EXIT_WAITING;
}

/* Ask the question on the terminal; the answer (malloc, no newline) or
 * NULL at end of input. */
static char *ask_terminal(const struct bg_send_outcome *o)
{
	printf("\n%s is waiting for the user:\n%s", o->question_message_id,
	       o->question ? o->question : "");
	printf("answer> ");
	fflush(stdout);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* The outcome of one wait as an exit status, or -1 when the question was
 * answered on the terminal (*answer, to send as a reply). */
static int judge(const struct cli *cli, const struct send_args *a, int rc,
		 const struct bg_send_outcome *o, bool tty, char **answer)
{
	if (rc == BG_CLIENT_EREJECTED)
		return cli_print_rejected(cli, a, &o->sent);
	if (rc)
		return cli_fail(cli, a->reply ? "reply" : "send", rc);
	if (o->status != BG_WAIT_WAITING_USER)
		return report_outcome(cli, o);
	if (tty && (*answer = ask_terminal(o)) != NULL)
		return -1;
	return report_question(cli, o);
}

/* Send (or reply), then follow the turn; on a terminal (stdin and stdout,
 * not --json) answer each question with a reply, exactly as `bygate reply
 * MSG --session S --content ANSWER`, and follow the resumed turn. */
static int send_and_wait(struct cli *cli, struct send_args *a)
{
	struct wait_show show = { cli, a };
	struct bg_wait_hooks h = { .reply = a->reply,
				   .sent = on_sent,
				   .event = on_wait_event,
				   .arg = &show };
	bool tty = isatty(0) && isatty(1) && !cli->json;
	struct send_args next = { .reply = true,
				  .wait = true,
				  .wait_timeout_ms = a->wait_timeout_ms };
	char mid[BG_CLIENT_ID_MAX], session[BG_CLIENT_ID_MAX];
	char *answer = NULL;
	int status;
	for (;;) {
		struct bg_send_outcome o;
		int rc = bg_client_wait_with(cli->client, &show.a->req,
					     a->wait_timeout_ms, &h, &o);
		free(answer);
		answer = NULL;
		status = judge(cli, show.a, rc, &o, tty, &answer);
		snprintf(mid, sizeof mid, "%s", o.question_message_id);
		snprintf(session, sizeof session, "%s", o.session_id);
		bg_send_outcome_free(&o);
		if (status >= 0)
			break;
		next.req = (struct bg_send_request){
			.session_id = session,
			.message_id = mid,
			.content = answer,
			.user_code = a->req.user_code,
			.user_name = a->req.user_name,
		};
		show.a = &next;
		h.reply = true;
	}
	free(answer);
	return status;
}

static int run_send(struct cli *cli, int argc, char **argv, bool reply)
{
	struct send_args a = { .reply = reply };
	int status = parse_send(cli, argc, argv, &a);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	if (a.wait)
		return send_and_wait(cli, &a);
	struct bg_send_response r;
	int rc = reply ? bg_client_reply(cli->client, &a.req, &r)
		       : bg_client_send(cli->client, &a.req, &r);
	if (rc == BG_CLIENT_EREJECTED)
		return cli_print_rejected(cli, &a, &r);
	if (rc)
		return cli_fail(cli, reply ? "reply" : "send", rc);
	print_sent(cli, &a, &r);
	return EXIT_OK;
}

int cmd_send(struct cli *cli, int argc, char **argv)
{
	return run_send(cli, argc, argv, false);
}

int cmd_reply(struct cli *cli, int argc, char **argv)
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

/* Sessions `bygate tail` reads at most (--session given several times). */
#define TAIL_SESSIONS_MAX 64
/* How often a tail of several sessions looks for new entries, in ms. */
#define TAIL_POLL_MS 200

/* An entry of one of several sessions: printed with its session. */
struct tail_one {
	struct follow f;
	const char *session;
};

static int on_session_event(void *arg, const struct bg_client_event *ev)
{
	struct tail_one *t = arg;
	if (!t->f.json) {
		printf("%s | ", t->session);
		cli_print_event_text(ev);
		return 0;
	}
	cli_print_event_json(ev, t->session);
	return 0;
}

/* Several sessions: each read in turn without blocking, its entries
 * printed with its name; a follow polls every TAIL_POLL_MS. */
static int tail_several(struct cli *cli, const char **sessions, int n,
			const char *from, bool follow)
{
	char(*last)[BG_CLIENT_ENTRY_ID_MAX] = calloc((size_t)n, sizeof(*last));
	if (last == NULL)
		return cli_fail(cli, "tail", -ENOMEM);
	for (int i = 0; i < n; i++)
		strcpy(last[i], from);
	long long shown = 0;
	int status = EXIT_OK;
	for (;;) {
		long long round = 0;
		for (int i = 0; i < n && status == EXIT_OK; i++) {
			struct tail_one t = { { cli->json, NULL, false },
					      sessions[i] };
			int rc = bg_client_read_events(cli->client, sessions[i],
						       last[i], -1,
						       on_session_event, &t,
						       last[i]);
			if (rc == BG_CLIENT_EINTR || (rc >= 0 && g_signal))
				goto out; /* SIGINT/SIGTERM end a follow */
			if (rc < 0)
				status = cli_fail(cli, "reading events", rc);
			else
				round += rc;
		}
		shown += round;
		if (status != EXIT_OK || (!follow && round == 0))
			break;
		fflush(stdout);
		if (round == 0)
			cli_sleep_ms(TAIL_POLL_MS);
	}
	if (status == EXIT_OK && shown == 0 && !follow)
		fprintf(stderr,
			"bygate: tail: no events in these %d sessions "
			"after %s\n",
			n, from);
out:
	free(last);
	return status;
}

int cmd_tail(struct cli *cli, int argc, char **argv)
{
	const char *sessions[TAIL_SESSIONS_MAX];
	int n = 0;
	const char *from = "0-0";
	bool follow = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "f", tail_opts, NULL)) != -1) {
		if (opt == OPT_SESSION && n == TAIL_SESSIONS_MAX)
			return cli_usage_error("tail: at most %s sessions",
					       "64");
		else if (opt == OPT_SESSION)
			sessions[n++] = optarg;
		else if (opt == OPT_FROM)
			from = optarg;
		else if (opt == OPT_FOLLOW || opt == 'f')
			follow = true;
		else if (opt == OPT_JSON)
			cli->json = true;
		else
			return cli_usage_error("%s: bad option", "tail");
	}
	int status = cli_no_positional(argc, argv);
	if (status == EXIT_OK && n == 0)
		status = cli_usage_error("tail: %s is required", "--session");
	for (int i = 0; i < n && status == EXIT_OK; i++)
		if (!sessions[i][0])
			status = cli_usage_error("tail: %s is empty",
						 "--session");
	if (status == EXIT_OK &&
	    (!from[0] || strlen(from) >= BG_CLIENT_ENTRY_ID_MAX))
		status = cli_usage_error("tail: bad --from '%s'", from);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	if (n > 1)
		return tail_several(cli, sessions, n, from, follow);
	const char *session = sessions[0];
	char last[BG_CLIENT_ENTRY_ID_MAX];
	strcpy(last, from);
	struct follow f = { cli->json, NULL, false };
	long long shown = 0;
	for (;;) {
		int rc = bg_client_read_events(cli->client, session, last,
					       follow ? FOLLOW_BLOCK_MS : -1,
					       cli_on_event, &f, last);
		if (rc == BG_CLIENT_EINTR || (rc >= 0 && g_signal))
			return EXIT_OK; /* SIGINT/SIGTERM end a follow */
		if (rc < 0)
			return cli_fail(cli, "reading events", rc);
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
		(struct row){ id, cli_parse_object(r->json, r->json_len) };
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

static void print_row_text(const struct row *r)
{
	char created[40];
	if (r->rec == NULL) {
		printf("%-14s (record is not a JSON object)\n",
		       r->execution_id);
		return;
	}
	const char *err = cli_record_str(r->rec, "error_message");
	printf("%-14s %-14s %-16s %-20s %-23s %s%s%s\n", r->execution_id,
	       cli_record_str(r->rec, "message_id"),
	       cli_record_str(r->rec, "target_agent_type"),
	       cli_record_str(r->rec, "worker_id"),
	       cli_fmt_ms(created_at(r), created, sizeof created),
	       cli_record_str(r->rec, "status"), err[0] ? ": " : "", err);
}

static json_t *row_json(const struct row *r)
{
	if (r->rec)
		return json_incref(r->rec);
	json_t *o = json_object();
	json_object_set_new(o, "execution_id", cli_jstr_c(r->execution_id));
	json_object_set_new(o, "error", json_string("invalid record"));
	return o;
}

static void print_rows(const struct cli *cli, const struct rows *rows,
		       bool single, const char *session)
{
	if (cli->json) {
		if (single) {
			cli_print_json(row_json(&rows->v[0]));
			return;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < rows->n; i++)
			json_array_append_new(a, row_json(&rows->v[i]));
		cli_print_json(a);
		return;
	}
	printf("%-14s %-14s %-16s %-20s %-23s %s\n", "EXECUTION", "MESSAGE",
	       "AGENT TYPE", "WORKER", "CREATED (UTC)", "STATUS");
	for (size_t i = 0; i < rows->n; i++)
		print_row_text(&rows->v[i]);
	if (rows->n == 0)
		printf("(no execution in session %s)\n", session);
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
		return cli_fail(cli, "reading the execution record", rc);
	json_t *rec = cli_parse_object(raw, len);
	const char *id = cli_record_str(rec, "execution_id");
	rc = add_row(rows, &(struct bg_client_record){ id, raw, len });
	json_decref(rec);
	free(raw);
	return rc ? cli_fail(cli, "status", rc) : EXIT_OK;
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
		const char *type = cli_record_str(t, "agent_type");
		json_array_foreach(json_object_get(t, "lanes"), k, l) {
			const char *lane = cli_record_str(l, "lane");
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
	int status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_lanes(cli->client, agent_type, &doc);
	return rc ? cli_fail(cli, "status --lanes", rc)
		  : cli_print_doc(cli, doc, lanes_text);
}

static const struct option status_opts[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "message-id", required_argument, NULL, OPT_MESSAGE_ID },
	{ "lanes", no_argument, NULL, OPT_LANES },
	{ "agent-type", required_argument, NULL, OPT_AGENT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

int cmd_status(struct cli *cli, int argc, char **argv)
{
	const char *session = NULL, *message_id = NULL, *agent_type = NULL;
	bool lanes = false;
	int opt;
	while ((opt = cli_next_opt(argc, argv, status_opts)) != -1) {
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
			return cli_usage_error("%s: bad option", "status");
	}
	int status = cli_no_positional(argc, argv);
	if (status == EXIT_OK && lanes && (session || message_id))
		status = cli_usage_error("status: %s takes no --session",
					 "--lanes");
	if (status == EXIT_OK && !lanes && agent_type)
		status = cli_usage_error("status: %s needs --lanes",
					 "--agent-type");
	if (status == EXIT_OK && lanes)
		return status_lanes(cli, agent_type);
	if (status == EXIT_OK && (!session || !session[0]))
		status = cli_usage_error("status: %s is required", "--session");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	struct rows rows = { 0 };
	if (message_id) {
		status = message_row(cli, session, message_id, &rows);
	} else {
		int rc = bg_client_list_executions(cli->client, session,
						   add_row, &rows);
		if (rc < 0)
			status = cli_fail(cli, "status", rc);
		else if (rows.n) /* rows.v is NULL when there are none */
			qsort(rows.v, rows.n, sizeof *rows.v, by_creation);
	}
	if (status == EXIT_OK)
		print_rows(cli, &rows, message_id != NULL, session);
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
	cli_set_str(o, "execution_id", n->execution_id);
	cli_set_str(o, "message_id", n->message_id);
	cli_set_str(o, "worker_id", n->worker_id);
	cli_set_str(o, "entry_id", n->entry_id);
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
		cli_set_str(o, "status", r->status);
		cli_set_str(o, "session_id", q->session_id);
		if (q->message_id) {
			cli_set_str(o, "message_id", q->message_id);
			cli_set_str(o, "execution_id", r->execution_id);
			cli_set_str(o, "worker_id", r->worker_id);
		}
		json_object_set_new(o, "cancelled_count",
				    json_integer(r->cancelled_count));
		json_object_set_new(o, "already_finished_count",
				    json_integer(r->already_finished_count));
		cli_set_str(o, "error", r->error);
		json_object_set_new(o, "cancelled", json_incref(nodes));
		cli_print_json(o);
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
	       (opt = cli_next_opt(argc, argv, cancel_opts)) != -1) {
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
			status = cli_usage_error("%s: bad option", cmd);
	}
	if (status == EXIT_OK && optind < argc) {
		if (session)
			q.session_id = argv[optind++];
		else
			q.message_id = argv[optind++];
	}
	if (status == EXIT_OK)
		status = cli_no_positional(argc, argv);
	if (!session)
		status = cli_require(status, cmd, "MESSAGE_ID", q.message_id);
	status = cli_require(status, cmd, session ? "SESSION" : "--session",
			     q.session_id);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	json_t *nodes = json_array();
	struct bg_cancel_response r;
	q.cb = on_cancelled;
	q.arg = nodes;
	int rc = bg_client_cancel(cli->client, &q, &r);
	status = rc ? cli_fail(cli, cmd, rc) : print_cancel(cli, &q, &r, nodes);
	json_decref(nodes);
	return status;
}

int cmd_cancel(struct cli *cli, int argc, char **argv)
{
	return run_cancel(cli, argc, argv, false);
}

int cmd_cancel_session(struct cli *cli, int argc, char **argv)
{
	return run_cancel(cli, argc, argv, true);
}
