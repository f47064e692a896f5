/* client/cli/workflow.c - `bygate dag`, `fanout` and `group`: start a
 * workflow and follow it to its result table (docs/client.md). */
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
		if (cli_parse_ms(optarg, &a->wait_timeout_ms))
			return cli_usage_error("bad --wait-timeout-ms '%s'",
					       optarg);
		break;
	case OPT_AGENT:
		a->agent_type = optarg;
		break;
	case OPT_JSON:
		cli->json = true;
		break;
	default:
		return cli_usage_error("%s: bad option", a->cmd);
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
	cli_set_str(o, "session_id", session);
	cli_set_str(o, "message_id", r->message_id);
	if (group)
		cli_set_str(o, "group_id", r->message_id);
	cli_set_sent(o, r);
	cli_print_json(o);
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
		cli_print_json(json_incref((json_t *)doc));
		return;
	}
	struct bg_buf line = { 0 };
	if (bg_client_wf_step_line(&line, json_object_get(doc, "step"),
				   cli_jint(doc, "timestamp")) == 0)
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
		f->result = cli_parse_object(ev->content, ev->content_len);
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
	const char *e = cli_record_str(result, "error");
	return e[0] ? e : cli_record_str(rec, "error_message");
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
	const char *status = cli_record_str(rec, "status");
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
		cli_set_str(o, "session_id", session);
		cli_set_str(o, "message_id", r->message_id);
		cli_set_str(o, "execution_id", r->execution_id);
		cli_set_str(o, "status", status);
		json_object_set_new(o, "ok", json_boolean(ok));
		json_object_set_new(o, "result",
				    result ? json_incref((json_t *)result)
					   : json_null());
		if (timed_out)
			cli_set_str(o, "error", "timeout");
		else if (!completed && err[0])
			cli_set_str(o, "error", err);
		cli_print_json(o);
	} else if (result && json_object_get(result, "run_id")) {
		/* the table on a failed run too: which task failed, why */
		putchar('\n');
		if (print_table(a->kind, result))
			return cli_fail(cli, a->cmd, -ENOMEM);
	}
	return ok ? EXIT_OK : EXIT_FAIL;
}

/* Follow the workflow's steps until its end marker or the deadline, then
 * settle its record and report. */
static int wf_wait(struct cli *cli, const struct wf_args *a,
		   const char *session, const struct bg_send_response *r,
		   char *last)
{
	int64_t deadline = cli_mono_ms() + a->wait_timeout_ms;
	struct wf_follow f = { cli,  r->message_id, r->execution_id,
			       NULL, NULL,	    false };
	int rc = 0;
	while (!f.ended && rc >= 0) {
		int64_t left = deadline - cli_mono_ms();
		if (left <= 0)
			break;
		rc = bg_client_read_events(cli->client, session, last,
					   (int)left, on_wf_event, &f, last);
	}
	json_t *rec = NULL;
	if (rc >= 0)
		rc = cli_settle_record(cli, session, r->message_id, f.ended,
				       &rec);
	int status =
		rc < 0 ? cli_fail(cli, "reading the workflow", rc)
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
	int status = content ? EXIT_OK : cli_fail(cli, a->cmd, -ENOMEM);
	if (status == EXIT_OK && a->session &&
	    snprintf(session, sizeof session, "%s", a->session) >=
		    (int)sizeof session)
		status = cli_usage_error("%s: --session too long", a->cmd);
	else if (status == EXIT_OK && !a->session &&
		 bg_id_new(session, sizeof session, "wf-"))
		status = cli_fail(cli, a->cmd, -EIO);
	if (status == EXIT_OK)
		status = cli_connect(cli);
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
		return cli_print_rejected(cli, &(struct send_args){ 0 }, &r);
	if (rc)
		return cli_fail(cli, a->cmd, rc);
	print_started(cli, a, session, &r);
	return a->wait ? wf_wait(cli, a, session, &r, last) : EXIT_OK;
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
	       (opt = cli_next_opt(argc, argv,
				   group ? group_opts : dag_opts)) != -1) {
		if (opt == OPT_OPEN)
			open = true;
		else
			status = wf_option(cli, a, opt);
	}
	const char *file = status == EXIT_OK && optind < argc ? argv[optind++]
							      : NULL;
	if (status == EXIT_OK)
		status = cli_no_positional(argc, argv);
	status = cli_require(status, a->cmd, "FILE", file);
	if (status == EXIT_OK)
		status = load_json(a->cmd, file, true, &a->spec);
	if (status == EXIT_OK && open &&
	    json_object_set_new(a->spec, "open", json_true()))
		status = cli_fail(cli, a->cmd, -ENOMEM);
	if (!a->wait_timeout_ms)
		a->wait_timeout_ms = WF_TIMEOUT_MS;
	return status;
}

int cmd_dag(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "run", NULL };
	struct wf_args a = { .kind = BG_WF_DAG, .cmd = "dag run" };
	int which;
	int status = cli_sub_command(argc, argv, subs, &which);
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
			return cli_usage_error(
				"fanout: --input '%s' is not JSON "
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
			return cli_usage_error("fanout: bad --count '%s'",
					       optarg);
		return EXIT_OK;
	case OPT_TIMEOUT_S:
		errno = 0;
		f->timeout_s = strtod(optarg, &end);
		if (errno || end == optarg || *end || !(f->timeout_s > 0) ||
		    f->timeout_s > WF_TIMEOUT_S_MAX)
			return cli_usage_error("fanout: bad --timeout-s '%s'",
					       optarg);
		return EXIT_OK;
	}
	return cli_usage_error("%s: bad option", "fanout");
}

int cmd_fanout(struct cli *cli, int argc, char **argv)
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
	while (status == EXIT_OK &&
	       (opt = cli_next_opt(argc, argv, opts)) != -1)
		status = opt >= OPT_WF_AGENT ? fanout_option(&f, opt)
					     : wf_option(cli, &a, opt);
	if (status == EXIT_OK)
		status = cli_no_positional(argc, argv);
	status = cli_require(status, a.cmd, "--agent", f.agent);
	if (status == EXIT_OK && f.forms != 1)
		status = cli_usage_error("fanout: %s",
					 "give one of --input, --inputs-file, "
					 "--count");
	if (status == EXIT_OK && !f.count && json_array_size(f.inputs) == 0)
		status = cli_usage_error("fanout: %s", "no input given");
	if (status == EXIT_OK && !(f.timeout_s > 0))
		status = cli_require(status, a.cmd, "--timeout-s", NULL);
	if (status == EXIT_OK) {
		a.spec = bg_client_wf_fanout_spec(f.agent,
						  f.count ? NULL : f.inputs,
						  f.count, f.timeout_s);
		if (a.spec == NULL)
			status = cli_fail(cli, a.cmd, -ENOMEM);
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
			status = cli_usage_error(
				"group add: bad --follower: %s", why);
	} else if (opt == OPT_FILE && g->followers) {
		status = load_text("group add", optarg, &text);
		if (status == EXIT_OK &&
		    bg_client_wf_followers(text.p, g->followers, &why))
			status = cli_usage_error("group add: bad --file: %s",
						 why);
	} else {
		status = cli_usage_error("%s: bad option", "group");
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
	while (status == EXIT_OK &&
	       (opt = cli_next_opt(argc, argv, opts)) != -1)
		status = group_option(cli, g, opt);
	if (status == EXIT_OK && optind < argc)
		g->group = argv[optind++];
	if (status == EXIT_OK)
		status = cli_no_positional(argc, argv);
	status = cli_require(status, cmd, "GROUP_ID", g->group);
	status = cli_require(status, cmd, "--session", g->session);
	if (status == EXIT_OK && g->followers &&
	    json_array_size(g->followers) == 0)
		status = cli_require(status, cmd, "--follower or --file", NULL);
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
		return cli_fail(cli, "reading the group's record", rc);
	*rec = cli_parse_object(raw, len);
	free(raw);
	return EXIT_OK;
}

/* group add / close: a RESUME of the group's message with content. */
static int group_resume(struct cli *cli, const char *cmd,
			const struct group_args *g, json_t *content)
{
	json_t *rec;
	int status = cli_connect(cli);
	if (status == EXIT_OK)
		status = group_record(cli, cmd, g, &rec);
	if (status != EXIT_OK)
		return status;
	const char *st = cli_record_str(rec, "status");
	bool ended = bg_status_is_terminal(bg_status_normalize(bg_str_c(st)));
	if (ended)
		fprintf(stderr, "bygate: %s: group %s has ended (%s)\n", cmd,
			g->group, st);
	json_decref(rec);
	if (ended)
		return EXIT_FAIL;
	char *text = json_dumps(content, JSON_COMPACT);
	if (text == NULL)
		return cli_fail(cli, cmd, -ENOMEM);
	struct bg_send_request req = { .session_id = g->session,
				       .message_id = g->group,
				       .content = text,
				       .content_is_json = true };
	struct bg_send_response r;
	int rc = bg_client_reply(cli->client, &req, &r);
	free(text);
	if (rc == BG_CLIENT_EREJECTED)
		return cli_print_rejected(
			cli, &(struct send_args){ .reply = true }, &r);
	if (rc)
		return cli_fail(cli, cmd, rc);
	size_t n = json_array_size(g->followers);
	if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "group_id", g->group);
		cli_set_str(o, "session_id", g->session);
		cli_set_str(o, "operation", g->followers ? "add" : "close");
		cli_set_str(o, "execution_id", r.execution_id);
		cli_set_str(o, "entry_id", r.entry_id);
		cli_set_str(o, "route_status", r.route_status);
		if (g->followers)
			json_object_set_new(o, "followers", json_integer(n));
		cli_print_json(o);
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
	const char *st = cli_record_str(rec, "status");
	size_t i;
	json_t *doc;
	printf("group %s: %s (execution %s, session %s)\n", g->group,
	       st[0] ? st : "?", cli_record_str(rec, "execution_id"),
	       g->session);
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
	int status = cli_connect(cli);
	if (status == EXIT_OK)
		status = group_record(cli, "group show", g, &rec);
	if (status != EXIT_OK)
		return status;
	struct wf_follow f = {
		cli,	      g->group, cli_record_str(rec, "execution_id"),
		json_array(), NULL,	false
	};
	char last[BG_CLIENT_ENTRY_ID_MAX] = "0-0";
	int rc;
	while ((rc = bg_client_read_events(cli->client, g->session, last, -1,
					   on_wf_event, &f, last)) > 0)
		;
	if (rc < 0) {
		status = cli_fail(cli, "reading events", rc);
	} else if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "group_id", g->group);
		cli_set_str(o, "session_id", g->session);
		cli_set_str(o, "execution_id",
			    cli_record_str(rec, "execution_id"));
		cli_set_str(o, "status", cli_record_str(rec, "status"));
		json_object_set(o, "steps", f.steps);
		json_object_set_new(o, "result",
				    f.result ? json_incref(f.result)
					     : json_null());
		cli_print_json(o);
	} else {
		group_show_text(g, rec, &f);
	}
	json_decref(f.steps);
	json_decref(f.result);
	json_decref(rec);
	return status;
}

int cmd_group(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "start", "add", "close", "show",
					    NULL };
	int which = 0;
	int status = cli_sub_command(argc, argv, subs, &which);
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
		status = cli_fail(cli, names[which], -ENOMEM);
	else if (status == EXIT_OK)
		status = group_resume(cli, names[which], &g, content);
	json_decref(content);
	json_decref(g.followers);
	return status;
}
