/* client/cli/main.c - `bygate`, the command-line client over libbygate: send a
 * task or a reply with availability routing (and follow its events to the
 * end of the turn), tail a session's events, show and cancel executions,
 * list and administer workers, reload plugins, run the wakeup gate; start
 * workflows (dag, fanout, group) and follow them to their result table;
 * list, pause, resume and fire bygated's triggers; show the queues, the
 * failed executions (and retry one) and the dead letters. Exit status: 0
 * success, 1 failed, rejected or timed out, 2 usage error, 3 cannot
 * connect, 4 a waited task asks the user (docs/client.md). */
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
	"  tail   --session S [--session S2 ...] [--from ID] [--follow|-f]\n"
	"         [--jsonl]\n"
	"  status --session S [--message-id M]\n"
	"  status --lanes [--agent-type T]\n"
	"  cancel MESSAGE_ID --session S [--reason R] [--mode graceful|force]\n"
	"  cancel-session SESSION [--reason R] [--mode graceful|force]\n"
	"  workers [list] | workers info WORKER_ID\n"
	"  suspend WORKER_ID [--reason R] [--force]\n"
	"  resume WORKER_ID [--force]\n"
	"  evict WORKER_ID [--reason R] [--force]\n"
	"  allow-rejoin WORKER_ID [--force]\n"
	"  deny AGENT_TYPE WORKER_ID [--force]\n"
	"  allow AGENT_TYPE WORKER_ID [--force]\n"
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
	"  queues [--agent-type T]\n"
	"  failed [--agent-type T] [--since D] [--limit N]\n"
	"  retry  MESSAGE_ID [--session S]\n"
	"  dlq list [--limit N] | dlq show ID | dlq requeue ID\n"
	"  dlq purge ID... | dlq purge --all\n"
	"  history --session S [--limit N]\n"
	"  events [--file F] [--follow|-f] [--jsonl]\n"
	"  events --replay FILE [--speed X] [--jsonl]\n"
	"  top    [--once] [--interval MS] [--sort KEY] [--filter TEXT]\n"
	"         [--http HOST:PORT] [--replay FILE [--speed X]]\n"
	"\n"
	"  Every command takes --json (machine output).\n"
	"  -c FILE  configuration (default: $BYGATE_CONFIG, else\n"
	"           /etc/bygate/bygate.conf if it exists, else defaults);\n"
	"           REDIS_HOST, REDIS_PORT, REDIS_DB, ... override it.\n"
	"  (admin commands refuse a worker or agent type Redis does not\n"
	"   know, exit 2; --force does it anyway)\n"
	"exit status: 0 ok, 1 failed, rejected or timed out, 2 usage,\n"
	"             3 cannot connect, 4 send/reply --wait: the task waits\n"
	"             for the user's answer (run the bygate reply printed)\n";

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
	{ "queues", cmd_queues },
	{ "failed", cmd_failed },
	{ "retry", cmd_retry },
	{ "dlq", cmd_dlq },
	{ "history", cmd_history },
	{ "events", cmd_events },
	{ "top", cmd_top },
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
			return cli_usage_error("%s", "bad option");
	}
	if (optind >= argc)
		return cli_usage_error("%s", "no command given");
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
	return cli_usage_error("unknown command '%s'", name);
}
