/* client/cli/admin.c - the fleet commands: `workers`, `suspend`,
 * `resume`, `evict`, `allow-rejoin`, `deny`, `allow`, `reload`, and the
 * wakeup `gate` and `dispatch`. */
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

/* ---- workers -------------------------------------------------------- */

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
	       cli_record_str(w, "worker_id"),
	       json_is_true(json_object_get(w, "online")) ? "online"
							  : "offline",
	       cli_record_str(w, "lifecycle"), types,
	       (long long)cli_jint(counts, "active"),
	       (long long)cli_jint(counts, "total"),
	       cli_fmt_ms(cli_jint(w, "last_seen"), seen, sizeof seen));
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
	if (json_array_size(a) == 0)
		puts("(no worker known: none has registered in this Redis "
		     "database)");
}

static void executions_text(const char *title, const json_t *a)
{
	size_t i;
	json_t *e;
	printf("%s: %zu\n", title, json_array_size(a));
	json_array_foreach(a, i, e)
		printf("  %-14s %-14s %-16s %-20s %s\n",
		       cli_record_str(e, "execution_id"),
		       cli_record_str(e, "message_id"),
		       cli_record_str(e, "target_agent_type"),
		       cli_record_str(e, "session_id"),
		       cli_record_str(e, "status"));
}

static void worker_info_text(const json_t *w)
{
	worker_header();
	worker_row(w);
	const char *why = cli_record_str(w, "lifecycle_reason");
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

int cmd_workers(struct cli *cli, int argc, char **argv)
{
	const char *pos[2] = { NULL, NULL };
	bool info = argc > 1 && !strcmp(argv[1], "info");
	if (argc > 1 && (info || !strcmp(argv[1], "list"))) {
		argc--;
		argv++;
	}
	int status = cli_parse_positional(cli, argc, argv, NULL, NULL, NULL,
					  pos, info ? 1 : 0, "WORKER_ID");
	if (status == EXIT_OK)
		status = cli_connect(cli);
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
		return cli_fail(cli, "workers", rc);
	return cli_print_doc(cli, doc, info ? worker_info_text : workers_text);
}

/* ---- worker administration ------------------------------------------ */

struct admin_args {
	const char *reason;
	bool reason_allowed;
	bool force; /* also EVICT_WORKER's body.force for evict */
};

static int admin_option(int opt, void *arg)
{
	struct admin_args *a = arg;
	if (opt == OPT_REASON && a->reason_allowed)
		a->reason = optarg;
	else if (opt == OPT_FORCE)
		a->force = true;
	else
		return EXIT_USAGE;
	return EXIT_OK;
}

static const struct option admin_opts[] = {
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

/* Refuse (exit 2) a worker or agent type Redis has never seen, unless
 * --force (pre-registering, or a typo the operator insists on): a
 * misspelt id would otherwise succeed silently and change nothing. */
static int check_known(struct cli *cli, const char *cmd, const char *type,
		       const char *worker, bool force)
{
	bool known = true;
	int rc = 0;
	if (force)
		return EXIT_OK;
	if (type)
		rc = bg_client_agent_type_known(cli->client, type, &known);
	if (rc == 0 && !known) {
		fprintf(stderr,
			"bygate: %s: unknown agent type '%s' (no worker "
			"declares it, no stream, routing set or denylist)%s%s%s\n",
			cmd, type, worker ? "; --force to " : "",
			worker ? cmd : "", worker ? " it anyway" : "");
		return EXIT_USAGE;
	}
	if (rc == 0 && worker)
		rc = bg_client_worker_known(cli->client, worker, &known);
	if (rc == 0 && !known) {
		fprintf(stderr,
			"bygate: %s: unknown worker '%s' (never registered, "
			"no admin state; `bygate workers` lists them); "
			"--force to %s it anyway\n",
			cmd, worker, cmd);
		return EXIT_USAGE;
	}
	return rc ? cli_fail(cli, cmd, rc) : EXIT_OK;
}

static void admin_text(const json_t *o)
{
	char types[512];
	join_strings(json_object_get(o, "agent_types"), types, sizeof types);
	printf("%s: %s (lifecycle %s; routing sets changed: %s)\n",
	       cli_record_str(o, "worker_id"), cli_record_str(o, "operation"),
	       cli_record_str(o, "lifecycle"), types);
}

static int run_admin(struct cli *cli, int argc, char **argv,
		     enum bg_admin_op op)
{
	struct admin_args a = { .reason_allowed = op == BG_ADMIN_SUSPEND ||
						  op == BG_ADMIN_EVICT };
	const char *w = NULL;
	int status = cli_parse_positional(cli, argc, argv, admin_opts,
					  admin_option, &a, &w, 1, "WORKER_ID");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status == EXIT_OK)
		status = check_known(cli, argv[0], NULL, w, a.force);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_admin(cli->client, op, w, a.reason,
				 op == BG_ADMIN_EVICT && a.force, &doc);
	return rc ? cli_fail(cli, argv[0], rc)
		  : cli_print_doc(cli, doc, admin_text);
}

int cmd_suspend(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_SUSPEND);
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_RESUME);
}

int cmd_evict(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_EVICT);
}

int cmd_allow_rejoin(struct cli *cli, int argc, char **argv)
{
	return run_admin(cli, argc, argv, BG_ADMIN_ALLOW_REJOIN);
}

static int run_access(struct cli *cli, int argc, char **argv, bool allow)
{
	const char *pos[2];
	bool added = false;
	struct admin_args a = { 0 };
	int status = cli_parse_positional(cli, argc, argv, admin_opts,
					  admin_option, &a, pos, 2,
					  "AGENT_TYPE WORKER_ID");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status == EXIT_OK)
		status = check_known(cli, argv[0], pos[0], pos[1], a.force);
	if (status != EXIT_OK)
		return status;
	int rc = allow ? bg_client_allow(cli->client, pos[0], pos[1], &added)
		       : bg_client_deny(cli->client, pos[0], pos[1]);
	if (rc)
		return cli_fail(cli, argv[0], rc);
	if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "agent_type", pos[0]);
		cli_set_str(o, "worker_id", pos[1]);
		cli_set_str(o, "operation", allow ? "allow" : "deny");
		json_object_set_new(o, "routing",
				    json_boolean(allow ? added : false));
		cli_print_json(o);
	} else {
		printf("%s: %s for %s%s\n", pos[1],
		       allow ? "allowed" : "denied", pos[0],
		       added ? " (back in its routing set)" : "");
	}
	return EXIT_OK;
}

int cmd_deny(struct cli *cli, int argc, char **argv)
{
	return run_access(cli, argc, argv, false);
}

int cmd_allow(struct cli *cli, int argc, char **argv)
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
	else if (opt == OPT_TIMEOUT && !cli_parse_ms(optarg, &a->timeout_ms))
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
	const char *rid = cli_record_str(out, "reload_id");
	const json_t *workers = json_object_get(out, "worker_ids");
	json_t *acks = json_array(), *acked = json_object();
	int64_t deadline = cli_mono_ms() + timeout_ms;
	int rc = 0;
	json_object_set_new(out, "acks", acks);
	while (json_object_size(acked) < json_array_size(workers)) {
		int64_t left = deadline - cli_mono_ms();
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
	if (cli_jint(o, "dispatched_count") == 0) {
		fprintf(stderr, "bygate: reload: no online worker of %s\n",
			cli_record_str(o, "agent_type"));
		return EXIT_FAIL;
	}
	if (!wait)
		return EXIT_OK;
	int status = EXIT_OK;
	json_array_foreach(json_object_get(o, "acks"), i, a)
		if (strcmp(cli_record_str(a, "status"), "success")) {
			fprintf(stderr, "bygate: reload failed on %s: %s\n",
				cli_record_str(a, "worker_id"),
				cli_record_str(a, "error"));
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
	       cli_record_str(o, "reload_id"), cli_record_str(o, "agent_type"),
	       (long long)cli_jint(o, "dispatched_count"), ids);
	json_array_foreach(json_object_get(o, "acks"), i, a)
		printf("  %s: %s (version %lld -> %lld)%s%s\n",
		       cli_record_str(a, "worker_id"),
		       cli_record_str(a, "status"),
		       (long long)cli_jint(a, "version_before"),
		       (long long)cli_jint(a, "version_after"),
		       cli_record_str(a, "error")[0] ? ": " : "",
		       cli_record_str(a, "error"));
}

int cmd_reload(struct cli *cli, int argc, char **argv)
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
	int status = cli_parse_positional(cli, argc, argv, opts, reload_option,
					  &a, &type, 1, "AGENT_TYPE");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status == EXIT_OK)
		status = check_known(cli, "reload", type, NULL, false);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_reload(cli->client, type, a.reason, a.reload_id,
				  &doc);
	if (rc)
		return cli_fail(cli, "reload", rc);
	json_t *o = json_loads(doc, 0, NULL);
	free(doc);
	if (a.wait && cli_jint(o, "dispatched_count") > 0)
		rc = collect_acks(cli, o, a.timeout_ms);
	if (rc) {
		json_decref(o);
		return cli_fail(cli, "reading reload acks", rc);
	}
	if (cli->json)
		cli_print_json(json_incref(o));
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
	else if (ms == NULL || cli_parse_ms(optarg, ms))
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
	cli_set_str(o, "entry_id", ev->entry_id);
	cli_set_str(o, "execution_id", ev->execution_id);
	cli_set_str(o, "agent_type", ev->agent_type);
	cli_set_str(o, "status", ev->status);
	cli_set_str(o, "reason", ev->reason);
	json_object_set_new(o, "attempts", json_integer(ev->attempts));
	json_object_set_new(o, "delivered", json_integer(ev->delivered));
	json_t *d = ev->decision ? json_loads(ev->decision, 0, NULL) : NULL;
	json_object_set_new(o, "decision", d ? d : json_null());
	cli_print_json(o);
}

int cmd_gate(struct cli *cli, int argc, char **argv)
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
	int status = cli_parse_positional(cli, argc, argv, opts, gate_option,
					  &o, NULL, 0, "");
	status = cli_require(status, "gate", "--provider", o.provider);
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	/* the gate stops between steps: no connection shutdown on a signal */
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = bg_client_gate(cli->client, &o, &g_stop, on_gate_event, cli);
	return rc ? cli_fail(cli, "gate", rc) : EXIT_OK;
}

int cmd_dispatch(struct cli *cli, int argc, char **argv)
{
	const char *exec_id = NULL;
	int delivered = 0;
	int status = cli_parse_positional(cli, argc, argv, NULL, NULL, NULL,
					  &exec_id, 1, "EXECUTION_ID");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	int rc = bg_client_dispatch_ready(cli->client, exec_id, &delivered);
	if (rc)
		return cli_fail(cli, "dispatch", rc);
	if (cli->json) {
		json_t *o = json_object();
		cli_set_str(o, "execution_id", exec_id);
		json_object_set_new(o, "delivered", json_integer(delivered));
		cli_print_json(o);
	} else {
		printf("%s: %d pending delivery(ies) dispatched\n", exec_id,
		       delivered);
	}
	return EXIT_OK;
}
