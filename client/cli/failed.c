/* client/cli/failed.c - `bygate failed` (failed executions across
 * sessions), `bygate retry` (one again, as a new attempt of the same
 * message) and `bygate dlq` (list, show, requeue, purge dead letters). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bygate/client.h"
#include "client/client_internal.h"
#include "common/buf.h"
#include "client/cli/cli.h"

/* "90s", "30m", "2h", "7d", "500ms" to milliseconds (> 0); -1 if bad. */
static long long parse_duration(const char *s)
{
	static const struct {
		const char *unit;
		long long ms;
	} units[] = { { "ms", 1 },
		      { "s", 1000 },
		      { "m", 60000 },
		      { "h", 3600000 },
		      { "d", 86400000 } };
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0 || s[0] == '-' || s[0] == '+')
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(end, units[i].unit))
			return v <= LLONG_MAX / units[i].ms ? v * units[i].ms
							    : -1;
	return -1;
}

static int parse_limit(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > BG_FAILED_MAX_LIMIT)
		return -1;
	*out = (int)v;
	return 0;
}

/* Report a library failure: -ENOENT, -EPERM and -EAGAIN with their
 * message alone (exit 1), the rest through cli_fail(). */
static int report(const struct cli *cli, const char *what, int rc)
{
	if (rc == -ENOENT || rc == -EPERM || rc == -EAGAIN) {
		fprintf(stderr, "bygate: %s: %s\n", what,
			bg_client_errmsg(cli->client));
		return EXIT_FAIL;
	}
	return cli_fail(cli, what, rc);
}

/* ---- bygate failed ---------------------------------------------------- */

struct failed_args {
	struct bg_failed_query q;
	const char *bad;
};

static int failed_option(int opt, void *arg)
{
	struct failed_args *a = arg;
	if (opt == OPT_AGENT && optarg[0]) {
		a->q.agent_type = optarg;
	} else if (opt == OPT_SINCE) {
		long long d = parse_duration(optarg);
		if (d < 0) {
			a->bad = "--since takes a duration such as 30m, 2h "
				 "or 1d";
			return EXIT_USAGE;
		}
		a->q.since_ms = bg_client_now_ms() - d;
	} else if (opt == OPT_LIMIT) {
		if (parse_limit(optarg, &a->q.limit)) {
			a->bad = "--limit takes 1..10000";
			return EXIT_USAGE;
		}
	} else {
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static void failed_text(const json_t *doc)
{
	const json_t *ex = json_object_get(doc, "executions");
	if (json_array_size(ex) == 0) {
		printf("no failed executions\n");
		return;
	}
	struct bg_buf out = { 0 };
	static const char *const head[] = { "FINISHED", "AGENT_TYPE",
					    "SESSION",	"MESSAGE_ID",
					    "STATUS",	"ERROR_CODE",
					    "ERROR" };
	static const size_t width[] = { 23, 16, 16, 16, 7, 12, 0 };
	for (size_t i = 0; i < 7; i++)
		bg_client_text_cell(&out, head[i], 64, width[i]);
	bg_client_text_end_row(&out);
	size_t i;
	const json_t *e;
	json_array_foreach(ex, i, e) {
		char t[32];
		const char *code = cli_record_str(e, "error_code");
		const char *cells[] = {
			cli_fmt_ms(cli_jint(e, "finished_at"), t, sizeof t),
			cli_record_str(e, "agent_type"),
			cli_record_str(e, "session_id"),
			cli_record_str(e, "message_id"),
			cli_record_str(e, "status"),
			code[0] ? code : "-",
			cli_record_str(e, "error_message"),
		};
		for (size_t k = 0; k < 7; k++)
			bg_client_text_cell(&out, cells[k], k == 6 ? 200 : 64,
					    width[k]);
		bg_client_text_end_row(&out);
	}
	if (json_is_true(json_object_get(doc, "truncated")))
		bg_buf_puts(&out, "(a worker's history was searched in part: "
				  "narrow with --since)\n");
	if (cli_jint(doc, "total") > (json_int_t)json_array_size(ex))
		bg_buf_printf(&out, "(%lld in all; --limit shows more)\n",
			      (long long)cli_jint(doc, "total"));
	fwrite(out.p, 1, out.len, stdout);
	bg_buf_free(&out);
}

int cmd_failed(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agent-type", required_argument, NULL, OPT_AGENT },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct failed_args a = { { 0 }, NULL };
	int status = cli_parse_positional(cli, argc, argv, opts, failed_option,
					  &a, NULL, 0, "");
	if (a.bad)
		fprintf(stderr, "bygate: failed: %s\n", a.bad);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_failed(cli->client, &a.q, &doc);
	if (rc)
		return report(cli, "failed", rc);
	return cli_print_doc(cli, doc, failed_text);
}

/* ---- bygate retry ----------------------------------------------------- */

static int retry_option(int opt, void *arg)
{
	if (opt != OPT_SESSION)
		return EXIT_USAGE;
	*(const char **)arg = optarg;
	return EXIT_OK;
}

static void retry_text(const json_t *o)
{
	printf("%s (session %s, execution %s): queued again on %s as entry "
	       "%s, retry %lld\n",
	       cli_record_str(o, "message_id"), cli_record_str(o, "session_id"),
	       cli_record_str(o, "execution_id"), cli_record_str(o, "stream"),
	       cli_record_str(o, "entry_id"),
	       (long long)cli_jint(o, "retry_count"));
}

int cmd_retry(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "session", required_argument, NULL, OPT_SESSION },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *session = NULL, *pos[1] = { NULL };
	int status = cli_parse_positional(cli, argc, argv, opts, retry_option,
					  &session, pos, 1, "MESSAGE_ID");
	if (status == EXIT_OK && session && !session[0])
		status = cli_usage_error("%s", "retry: --session is empty");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_retry(cli->client, session, pos[0], &doc);
	if (rc)
		return report(cli, "retry", rc);
	return cli_print_doc(cli, doc, retry_text);
}

/* ---- bygate dlq ------------------------------------------------------- */

/* s as bg_client_text_put shows it (control characters as '?'), then
 * `after`. */
static void put_field(struct bg_buf *out, const char *s, const char *after)
{
	bg_client_text_put(out, s, 4096, 0);
	bg_buf_puts(out, after);
}

/* A dead letter's fields were written from whatever reached a stream:
 * every one goes through bg_client_text_put. */
static void letter_text(const json_t *l, bool full)
{
	const char *code = cli_record_str(l, "error_code");
	const char *type = cli_record_str(l, "target_agent_type");
	char n[32];
	struct bg_buf out = { 0 };
	snprintf(n, sizeof n, "%lld", (long long)cli_jint(l, "delivery_count"));
	put_field(&out, cli_record_str(l, "id"), "  ");
	put_field(&out, code[0] ? code : "-", "  ");
	put_field(&out, type[0] ? type : "-", "  ");
	put_field(&out, cli_record_str(l, "stream"), " entry ");
	put_field(&out, cli_record_str(l, "entry_id"), " (deliveries ");
	put_field(&out, n, "): ");
	put_field(&out, cli_record_str(l, "reason"), "\n");
	const char *x = cli_record_str(l, "execution_id");
	if (full && x[0]) {
		bg_buf_puts(&out, "  execution ");
		put_field(&out, x, "\n");
	}
	const json_t *e = json_object_get(l, "entry");
	const json_t *raw = json_object_get(l, "raw");
	if (full) {
		bg_buf_puts(&out, "  entry ");
		if (json_is_string(e) || json_is_string(raw))
			bg_client_text_put(&out, json_string_value(e ? e : raw),
					   4096, 0);
		else
			bg_buf_puts(&out, "(no data field)");
		bg_buf_puts(&out, "\n");
	}
	if (out.p)
		fwrite(out.p, 1, out.len, stdout);
	bg_buf_free(&out);
}

static void list_text(const json_t *doc)
{
	const json_t *a = json_object_get(doc, "entries");
	if (json_array_size(a) == 0) {
		printf("no dead letters\n");
		return;
	}
	size_t i;
	const json_t *l;
	json_array_foreach(a, i, l)
		letter_text(l, false);
	if (cli_jint(doc, "length") > (json_int_t)json_array_size(a))
		printf("(%lld in all; --limit shows more)\n",
		       (long long)cli_jint(doc, "length"));
}

static void show_text(const json_t *l)
{
	letter_text(l, true);
}

static void requeue_text(const json_t *o)
{
	printf("dead letter %s requeued on %s as entry %s\n",
	       cli_record_str(o, "id"), cli_record_str(o, "stream"),
	       cli_record_str(o, "entry_id"));
}

struct dlq_args {
	int limit;
	bool all;
	const char *bad;
};

static int dlq_option(int opt, void *arg)
{
	struct dlq_args *a = arg;
	if (opt == OPT_LIMIT && a->limit >= 0) {
		if (parse_limit(optarg, &a->limit)) {
			a->bad = "--limit takes 1..10000";
			return EXIT_USAGE;
		}
	} else if (opt == OPT_ALL && !a->all) {
		a->all = true;
	} else {
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int dlq_purge(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, OPT_ALL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct dlq_args a = { -1, false, NULL };
	int opt, status = EXIT_OK;
	while (status == EXIT_OK &&
	       (opt = cli_next_opt(argc, argv, opts)) != -1) {
		if (opt == OPT_JSON)
			cli->json = true;
		else if (dlq_option(opt, &a) != EXIT_OK)
			status = cli_usage_error("%s: bad option", "dlq purge");
	}
	int n = argc - optind;
	if (status == EXIT_OK && (n > 0) == a.all)
		status = cli_usage_error("%s",
					 "dlq purge: give entry ids or --all "
					 "(not both)");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	long long deleted = 0;
	int rc = bg_client_dlq_purge(cli->client,
				     (const char *const *)argv + optind,
				     (size_t)n, &deleted);
	if (rc)
		return report(cli, "dlq purge", rc);
	if (cli->json) {
		json_t *o = json_object();
		json_object_set_new(o, "deleted", json_integer(deleted));
		cli_print_json(o);
	} else {
		printf("%lld dead letter%s purged\n", deleted,
		       deleted == 1 ? "" : "s");
	}
	/* named ids that were not there: the operator asked for something
	 * that did not happen */
	return n > 0 && deleted < n ? EXIT_FAIL : EXIT_OK;
}

int cmd_dlq(struct cli *cli, int argc, char **argv)
{
	static const char *const subs[] = { "list", "show", "requeue", "purge",
					    NULL };
	static const struct option list_opts[] = {
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	int which = 0;
	bool bare = argc == 1 || argv[1][0] == '-';
	int status = bare ? EXIT_OK : cli_sub_command(argc, argv, subs, &which);
	if (status != EXIT_OK)
		return status;
	if (!bare) {
		argc--;
		argv++;
	}
	if (which == 3)
		return dlq_purge(cli, argc, argv);
	struct dlq_args a = { 20, true, NULL }; /* all: --all refused */
	const char *pos[1] = { NULL };
	status = cli_parse_positional(cli, argc, argv,
				      which == 0 ? list_opts : NULL, dlq_option,
				      &a, pos, which == 0 ? 0 : 1, "ID");
	if (a.bad)
		fprintf(stderr, "bygate: dlq: %s\n", a.bad);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = which == 0 ? bg_client_dlq_list(cli->client, a.limit, &doc)
		 : which == 1
			 ? bg_client_dlq_show(cli->client, pos[0], &doc)
			 : bg_client_dlq_requeue(cli->client, pos[0], &doc);
	if (rc)
		return report(cli,
			      which == 0   ? "dlq list"
			      : which == 1 ? "dlq show"
					   : "dlq requeue",
			      rc);
	return cli_print_doc(cli, doc,
			     which == 0	  ? list_text
			     : which == 1 ? show_text
					  : requeue_text);
}
