/* client/cli/history.c - bygate history: a session's conversation
 * (docs/history.md, docs/client.md "history"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"

struct history_args {
	const char *session;
	int limit;
	const char *bad;
};

static int history_option(int opt, void *arg)
{
	struct history_args *a = arg;
	if (opt == OPT_SESSION) {
		a->session = optarg;
	} else if (opt == OPT_LIMIT) {
		char *end;
		errno = 0;
		long v = strtol(optarg, &end, 10);
		if (errno || end == optarg || *end || v <= 0 ||
		    v > BG_HISTORY_MAX_LIMIT) {
			a->bad = "--limit takes 1..100000";
			return EXIT_USAGE;
		}
		a->limit = (int)v;
	} else {
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* One line per message: its time, its role, its text (a JSON value that
 * is not a string as JSON), escaped to one line. */
static void history_text(const json_t *o)
{
	const json_t *a = json_object_get(o, "messages");
	if (json_array_size(a) == 0) {
		printf("no messages in session %s\n",
		       json_string_value(json_object_get(o, "session_id")));
		return;
	}
	size_t i;
	const json_t *m;
	json_array_foreach(a, i, m) {
		const json_t *c = json_object_get(m, "content");
		char *dumped =
			json_is_string(c)
				? NULL
				: json_dumps(c ? c : json_object_get(m, "raw"),
					     JSON_COMPACT | JSON_ENCODE_ANY);
		const char *text = json_is_string(c) ? json_string_value(c)
						     : (dumped ? dumped : "");
		char when[32];
		const char *role =
			json_string_value(json_object_get(m, "role"));
		printf("%s  %-9s ",
		       cli_fmt_ms(json_integer_value(
					  json_object_get(m, "created_at")),
				  when, sizeof when),
		       role ? role : "?");
		for (const char *p = text; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				printf("\\x%02x", (unsigned char)*p);
			else
				putchar(*p);
		putchar('\n');
		free(dumped);
	}
}

int cmd_history(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "session", required_argument, NULL, OPT_SESSION },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct history_args a = { .limit = 20 };
	int status = cli_parse_positional(cli, argc, argv, opts, history_option,
					  &a, NULL, 0, "");
	if (status == EXIT_OK && (a.session == NULL || !a.session[0])) {
		a.bad = "--session is required";
		status = EXIT_USAGE;
	}
	if (a.bad)
		fprintf(stderr, "bygate: history: %s\n", a.bad);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_history(cli->client, a.session, a.limit, &doc);
	if (rc)
		return cli_fail(cli, "history", rc);
	return cli_print_doc(cli, doc, history_text);
}
