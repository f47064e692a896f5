/* client/cli/common.c - the helpers every `bygate` command uses: usage
 * errors, library failures, the connection, JSON and event output, option
 * parsing. */
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

struct bg_client *volatile g_client;
volatile sig_atomic_t g_signal;

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

int cli_usage_error(const char *fmt, const char *arg)
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

/* Report a library failure; returns the exit status it maps to. */
int cli_fail(const struct cli *cli, const char *what, int rc)
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
const char *cli_config_path(const char *given)
{
	if (given)
		return given;
	const char *p = bg_config_default_path();
	if (!strcmp(p, BG_CONFIG_DEFAULT_PATH) && access(p, F_OK) != 0)
		return NULL;
	return p;
}

int cli_connect(struct cli *cli)
{
	char err[512];
	int rc = bg_client_open(cli_config_path(cli->config), &cli->client, err,
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
json_t *cli_jstr(const char *s, size_t n)
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

json_t *cli_jstr_c(const char *s)
{
	return cli_jstr(s, strlen(s));
}

/* Print v as one compact line and release it. */
void cli_print_json(json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	puts(s ? s : "null");
	free(s);
	json_decref(v);
}

/* Print a library JSON document (and free it): as is with --json, else
 * through text(). */
int cli_print_doc(const struct cli *cli, char *doc,
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

json_t *cli_parse_object(const char *raw, size_t len)
{
	json_t *v = raw ? json_loadb(raw, len, JSON_ALLOW_NUL, NULL) : NULL;
	if (json_is_object(v))
		return v;
	json_decref(v);
	return NULL;
}

void cli_print_event_json(const struct bg_client_event *ev, const char *session)
{
	json_t *o = json_object();
	if (session)
		json_object_set_new(o, "session", cli_jstr_c(session));
	json_object_set_new(o, "entry_id", cli_jstr_c(ev->entry_id));
	json_object_set_new(o, "event_type", cli_jstr_c(ev->event_type));
	json_object_set_new(o, "message_id", cli_jstr_c(ev->message_id));
	json_object_set_new(o, "source_agent_type",
			    cli_jstr_c(ev->source_agent_type));
	json_object_set_new(o, "content",
			    ev->content ? cli_jstr(ev->content, ev->content_len)
					: json_null());
	json_t *event = cli_parse_object(ev->raw, ev->raw_len);
	json_object_set_new(o, "event", event ? event : json_null());
	if (!ev->valid && ev->raw)
		json_object_set_new(o, "raw", cli_jstr(ev->raw, ev->raw_len));
	cli_print_json(o);
}

void cli_print_event_text(const struct bg_client_event *ev)
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

int cli_on_event(void *arg, const struct bg_client_event *ev)
{
	struct follow *f = arg;
	if (f->json)
		cli_print_event_json(ev, NULL);
	else
		cli_print_event_text(ev);
	if (f->message_id && !strcmp(ev->event_type, "appStreamResponse") &&
	    !strcmp(ev->message_id, f->message_id)) {
		f->done = true;
		return 1;
	}
	return 0;
}

/* ---- option parsing ------------------------------------------------- */

int cli_parse_ms(const char *s, int *out)
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
int cli_next_opt(int argc, char **argv, const struct option *opts)
{
	return getopt_long(argc, argv, "", opts, NULL);
}

int cli_no_positional(int argc, char **argv)
{
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'",
				       argv[optind]);
	return EXIT_OK;
}

/* ---- simple commands: positional arguments and --json --------------- */

/* Parse `argv[0] ARG...` with the options opts (NULL: --json only; on()
 * handles the others) into pos[0..npos); every positional is required. */
int cli_parse_positional(struct cli *cli, int argc, char **argv,
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
	       (opt = cli_next_opt(argc, argv, opts ? opts : json_only)) !=
		       -1) {
		if (opt == OPT_JSON)
			cli->json = true;
		else if (on == NULL || on(opt, arg) != EXIT_OK)
			status = cli_usage_error("%s: bad option", argv[0]);
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
		status = cli_no_positional(argc, argv);
	return status;
}

json_int_t cli_jint(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

int cli_require(int status, const char *cmd, const char *what, const char *v)
{
	if (status == EXIT_OK && (!v || !v[0])) {
		fprintf(stderr,
			"bygate: %s: %s is required\n"
			"(bygate %s --help lists its options)\n",
			cmd, what, cmd);
		return EXIT_USAGE;
	}
	return status;
}

void cli_set_str(json_t *o, const char *key, const char *v)
{
	json_object_set_new(o, key, cli_jstr_c(v));
}

void cli_set_sent(json_t *o, const struct bg_send_response *r)
{
	cli_set_str(o, "execution_id", r->execution_id);
	cli_set_str(o, "entry_id", r->entry_id);
	cli_set_str(o, "trace_id", r->trace_id);
	cli_set_str(o, "route_status", r->route_status);
	cli_set_str(o, "target_agent_type", r->target_agent_type);
	cli_set_str(o, "stream", r->stream);
}

int64_t cli_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

const char *cli_record_str(const json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));
	return s ? s : "";
}

/* "2024-06-10 06:13:20.123" (UTC) of a ms timestamp, "-" for 0. */
const char *cli_fmt_ms(json_int_t ms, char *buf, size_t cap)
{
	struct tm tm;
	time_t s = (time_t)(ms / 1000);
	if (ms <= 0 || gmtime_r(&s, &tm) == NULL)
		return "-";
	size_t n = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03d", (int)(ms % 1000));
	return buf;
}

/* `CMD SUB ...` -> the sub-command's argv, or a usage error. */
int cli_sub_command(int argc, char **argv, const char *const *subs, int *which)
{
	for (int i = 0; argc > 1 && subs[i]; i++)
		if (!strcmp(argv[1], subs[i])) {
			*which = i;
			return EXIT_OK;
		}
	return cli_usage_error(argc > 1 ? "unknown sub-command '%s'"
					: "%s: a sub-command is required",
			       argc > 1 ? argv[1] : argv[0]);
}
