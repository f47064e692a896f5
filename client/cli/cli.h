/* client/cli/cli.h - what the `bygate` command's files share: the command
 * state, the exit statuses, the option codes, and the helpers for
 * connecting, reporting and printing (client/cli/common.c). Each command
 * family lives in its own file and is listed in main.c's table. */
#ifndef BG_CLIENT_CLI_H
#define BG_CLIENT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bygate/client.h"

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
	EXIT_WAITING = 4, /* send/reply --wait: the task asks the user */
};

#define DEFAULT_TIMEOUT_MS 60000 /* send --wait */
#define RELOAD_TIMEOUT_MS 30000	 /* reload --wait */
#define FOLLOW_BLOCK_MS 5000
/* A Python worker writes the end marker before the final record status. */
#define SETTLE_MS 3000
#define SETTLE_STEP_MS 20

struct cli {
	const char *config;
	bool json;
	struct bg_client *client;
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
	OPT_SINCE, /* queues, failed, retry, dlq */
	OPT_LIMIT,
	OPT_ALL,
	OPT_REPLAY, /* events, top */
	OPT_SPEED,
	OPT_SORT,
	OPT_FILTER,
	OPT_INTERVAL,
	OPT_HTTP,
};

/* Follows a data stream; stops at the end marker of message_id if set. */
struct follow {
	bool json;
	const char *message_id;
	bool done;
};

int cli_usage_error(const char *fmt, const char *arg);
int cli_fail(const struct cli *cli, const char *what, int rc);
const char *cli_config_path(const char *given);
int cli_connect(struct cli *cli);
json_t *cli_jstr(const char *s, size_t n);
json_t *cli_jstr_c(const char *s);
void cli_print_json(json_t *v);
json_t *cli_parse_object(const char *raw, size_t len);
/* One event as a JSON line; session (NULL: left out) names its session
 * when a tail reads several. */
void cli_print_event_json(const struct bg_client_event *ev,
			  const char *session);
void cli_print_event_text(const struct bg_client_event *ev);
int cli_on_event(void *arg, const struct bg_client_event *ev);
int cli_parse_ms(const char *s, int *out);
int cli_next_opt(int argc, char **argv, const struct option *opts);
int cli_no_positional(int argc, char **argv);
int cli_print_doc(const struct cli *cli, char *doc,
		  void (*text)(const json_t *));
int cli_parse_positional(struct cli *cli, int argc, char **argv,
			 const struct option *opts, int (*on)(int, void *),
			 void *arg, const char **pos, int npos,
			 const char *names);

json_int_t cli_jint(const json_t *o, const char *key);
int cli_require(int status, const char *cmd, const char *what, const char *v);
void cli_set_str(json_t *o, const char *key, const char *v);
/* A send's ids and route, in the order `send --json` prints them after
 * message_id: execution_id, entry_id, trace_id, route_status,
 * target_agent_type, stream. */
void cli_set_sent(json_t *o, const struct bg_send_response *r);
int64_t cli_mono_ms(void);
void cli_sleep_ms(int ms);
const char *cli_record_str(const json_t *rec, const char *key);
const char *cli_fmt_ms(json_int_t ms, char *buf, size_t cap);
int cli_sub_command(int argc, char **argv, const char *const *subs, int *which);

#include <signal.h>
/* The client to interrupt on SIGINT/SIGTERM, and the signal caught. */
extern struct bg_client *volatile g_client;
extern volatile sig_atomic_t g_signal;

struct send_args {
	struct bg_send_request req;
	bool reply;
	bool wait;
	int wait_timeout_ms;
};

/* send.c, for the workflow commands */
int cli_print_rejected(const struct cli *cli, const struct send_args *a,
		       const struct bg_send_response *r);
int cli_settle_record(struct cli *cli, const char *session,
		      const char *message_id, bool wait_terminal, json_t **rec);

/* The commands (main.c's table), by file. */
/* send.c */
int cmd_send(struct cli *cli, int argc, char **argv);
int cmd_reply(struct cli *cli, int argc, char **argv);
int cmd_tail(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_cancel(struct cli *cli, int argc, char **argv);
int cmd_cancel_session(struct cli *cli, int argc, char **argv);
/* admin.c */
int cmd_workers(struct cli *cli, int argc, char **argv);
int cmd_suspend(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_evict(struct cli *cli, int argc, char **argv);
int cmd_allow_rejoin(struct cli *cli, int argc, char **argv);
int cmd_deny(struct cli *cli, int argc, char **argv);
int cmd_allow(struct cli *cli, int argc, char **argv);
int cmd_reload(struct cli *cli, int argc, char **argv);
int cmd_gate(struct cli *cli, int argc, char **argv);
int cmd_dispatch(struct cli *cli, int argc, char **argv);
/* workflow.c */
int cmd_dag(struct cli *cli, int argc, char **argv);
int cmd_fanout(struct cli *cli, int argc, char **argv);
int cmd_group(struct cli *cli, int argc, char **argv);
/* triggers.c */
int cmd_triggers(struct cli *cli, int argc, char **argv);
/* queues.c */
int cmd_queues(struct cli *cli, int argc, char **argv);
/* failed.c */
int cmd_failed(struct cli *cli, int argc, char **argv);
int cmd_retry(struct cli *cli, int argc, char **argv);
int cmd_dlq(struct cli *cli, int argc, char **argv);
/* history.c */
int cmd_history(struct cli *cli, int argc, char **argv);
/* events.c */
int cmd_events(struct cli *cli, int argc, char **argv);
/* top.c */
int cmd_top(struct cli *cli, int argc, char **argv);

#endif
