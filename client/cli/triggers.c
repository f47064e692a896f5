/* client/cli/triggers.c - `bygate triggers`: list, pause, resume, fire. */
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
		return cli_fail(cli, "triggers", rc);
	if (cli->json && (a = json_array()) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; a && rc == 0 && i < n; i++)
		if (json_array_append_new(a, bg_client_trigger_json(&v[i])))
			rc = -ENOMEM;
	if (!cli->json)
		rc = bg_client_triggers_table(&out, v, n, bg_client_now_ms());
	bg_client_triggers_free(v, n);
	if (rc == 0 && cli->json)
		cli_print_json(json_incref(a));
	else if (rc == 0)
		fwrite(out.p, 1, out.len, stdout);
	json_decref(a);
	bg_buf_free(&out);
	return rc ? cli_fail(cli, "triggers", rc) : EXIT_OK;
}

static int triggers_pause(struct cli *cli, const char *name, bool paused)
{
	char who[320];
	whoami(who, sizeof who);
	int rc = bg_client_trigger_pause(cli->client, name, paused, who);
	if (rc == -ENOENT)
		return unknown_trigger(cli);
	if (rc)
		return cli_fail(
			cli, paused ? "triggers pause" : "triggers resume", rc);
	if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "trigger", name);
		json_object_set_new(o, "paused", json_boolean(paused));
		cli_set_str(o, "by", who);
		cli_print_json(o);
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
		return cli_fail(cli, "triggers fire", rc);
	bool fired = rc == 0 && !strcmp(r.outcome, "fired");
	const char *why = rc ? bg_client_errmsg(cli->client) : r.error;
	if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "trigger", name);
		json_object_set_new(o, "request", json_integer(r.request));
		cli_set_str(o, "outcome", rc ? "timeout" : r.outcome);
		cli_set_str(o, "message_id", r.message_id);
		cli_set_str(o, "error", why);
		cli_print_json(o);
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
	if (opt == OPT_TIMEOUT && !cli_parse_ms(optarg, arg))
		return EXIT_OK;
	return EXIT_USAGE;
}

int cmd_triggers(struct cli *cli, int argc, char **argv)
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
		status = cli_sub_command(argc, argv, subs, &which);
		if (status != EXIT_OK)
			return status;
		argc--;
		argv++;
		argv[0] = (char *)names[which]; /* for the usage messages */
	}
	status = cli_parse_positional(cli, argc, argv,
				      which == 3 ? fire_opts : NULL,
				      fire_option, &timeout_ms, &name,
				      which == 0 ? 0 : 1, "NAME");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	if (which == 0)
		return triggers_list(cli);
	if (which == 3)
		return triggers_fire(cli, name, timeout_ms);
	return triggers_pause(cli, name, which == 1);
}
