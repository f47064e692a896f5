/* client/cli/top.c - `bygate top`: a live view of the fleet (workers,
 * agent types' queues and rates, each pool's children, recent failures)
 * from Redis and each reachable bygated's GET /status, redrawn every
 * interval with plain ANSI escapes; --once prints one frame for scripts;
 * --replay drives the same view from an event log. This file: the options
 * and the two drivers; top_frame.h names the other parts. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"
#include "client/cli/evlog.h"
#include "client/cli/top_frame.h"
#include "conf/config.h"

static const struct option top_opts[] = {
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "sort", required_argument, NULL, OPT_SORT },
	{ "filter", required_argument, NULL, OPT_FILTER },
	{ "http", required_argument, NULL, OPT_HTTP },
	{ "replay", required_argument, NULL, OPT_REPLAY },
	{ "speed", required_argument, NULL, OPT_SPEED },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

static int run_live(struct top *tp)
{
	int status = cli_connect(tp->cli);
	if (status != EXIT_OK)
		return status;
	json_t *frame = top_sample_live(tp);
	if (tp->once) { /* rates need a second sample */
		cli_sleep_ms(tp->interval_ms);
		json_decref(frame);
		frame = top_sample_live(tp);
		if (frame)
			top_emit(tp, frame);
		json_decref(frame);
		return frame ? EXIT_OK : EXIT_FAIL;
	}
	top_raw_terminal();
	fputs("\033[2J", stdout);
	while (frame && !g_signal) {
		top_draw(tp, frame);
		if (!top_keys(tp, tp->interval_ms))
			break;
		json_decref(frame);
		frame = top_sample_live(tp);
	}
	json_decref(frame);
	top_restore_terminal();
	return EXIT_OK;
}

/* A replay's reading state: the log, the event read but not yet due,
 * the log time of the last event applied. */
struct replay_src {
	struct evlog_reader rd;
	json_t *pending;
	int64_t last_ts;
	bool at_end;
};

/* Apply the log's events with ts_ms <= until (every one: until < 0) to
 * r. 0, or -errno on a read error. */
static int take_until(struct replay_src *src, struct top_replay *r,
		      int64_t until)
{
	for (;;) {
		if (src->pending == NULL) {
			char *line;
			int rc = evlog_next(&src->rd, false, &line);
			if (rc <= 0) {
				src->at_end = rc == 0;
				return rc;
			}
			src->pending = evlog_parse(line);
			free(line);
			if (src->pending == NULL)
				continue;
		}
		int64_t ts = (int64_t)cli_jint(src->pending, "ts_ms");
		if (until >= 0 && ts > until)
			return 0;
		if (ts > src->last_ts)
			src->last_ts = ts;
		top_replay_take(r, src->pending);
		json_decref(src->pending);
		src->pending = NULL;
	}
}

/* The view driven by the log: its clock runs interval * speed per
 * frame from the first event; --once or --speed 0 show the end of the
 * run at once. */
static int run_replay(struct top *tp)
{
	struct replay_src src = { 0 };
	int rc = evlog_open(&src.rd, tp->replay);
	if (rc == 0 && src.rd.f == NULL)
		rc = -ENOENT;
	struct top_replay *r = rc ? NULL : top_replay_new();
	if (rc == 0 && r == NULL)
		rc = -ENOMEM;
	bool all = tp->once || tp->speed == 0;
	if (rc == 0)
		rc = take_until(&src, r, all ? -1 : 0); /* 0: the first */
	if (rc == 0 && src.pending)
		src.last_ts = (int64_t)cli_jint(src.pending, "ts_ms");
	if (rc == 0 && tp->once) {
		json_t *frame = top_replay_frame(r, src.last_ts);
		if (frame)
			top_emit(tp, frame);
		json_decref(frame);
	} else if (rc == 0) {
		int64_t now = src.last_ts;
		top_raw_terminal();
		fputs("\033[2J", stdout);
		while (rc == 0 && !g_signal) {
			json_t *frame = top_replay_frame(r, now);
			if (frame)
				top_draw(tp, frame);
			json_decref(frame);
			if (!top_keys(tp, tp->interval_ms))
				break;
			if (!src.at_end) {
				now += (int64_t)((double)tp->interval_ms *
						 tp->speed);
				rc = take_until(&src, r, now);
			}
		}
		top_restore_terminal();
	}
	json_decref(src.pending);
	evlog_close(&src.rd);
	top_replay_free(r);
	if (rc) {
		fprintf(stderr, "bygate: top: reading %s: %s\n", tp->replay,
			strerror(-rc));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- the command ---------------------------------------------------------------- */

/* The bygated of the configuration -c names, when its http.port is set. */
static void http_from_config(struct top *tp)
{
	struct bg_config cfg = { 0 };
	char err[512];
	if (bg_config_load(cli_config_path(tp->cli->config), &cfg, err,
			   sizeof err) != 0)
		return;
	if (cfg.http_port > 0) {
		const char *host = cfg.http_bind;
		if (host == NULL || !host[0] || !strcmp(host, "0.0.0.0"))
			host = "127.0.0.1";
		else if (!strcmp(host, "::"))
			host = "::1";
		char buf[300];
		snprintf(buf, sizeof(buf), "%s:%d", host, cfg.http_port);
		tp->http[tp->n_http] = strdup(buf);
		if (tp->http[tp->n_http])
			tp->n_http++;
	}
	bg_config_free(&cfg);
}

static int parse_top(struct top *tp, int argc, char **argv)
{
	int opt;
	while ((opt = getopt_long(argc, argv, "", top_opts, NULL)) != -1) {
		if (opt == OPT_ONCE) {
			tp->once = true;
		} else if (opt == OPT_INTERVAL) {
			if (cli_parse_ms(optarg, &tp->interval_ms) != 0)
				return cli_usage_error(
					"top: bad --interval '%s' "
					"(milliseconds > 0)",
					optarg);
		} else if (opt == OPT_SORT) {
			int k = 0;
			while (k < TOP_N_SORTS &&
			       strcmp(top_sort_keys[k], optarg))
				k++;
			if (k == TOP_N_SORTS)
				return cli_usage_error(
					"top: bad --sort '%s' (backlog, rate, "
					"running, p99, failed or name)",
					optarg);
			tp->sort = k;
		} else if (opt == OPT_FILTER) {
			snprintf(tp->filter, sizeof(tp->filter), "%s", optarg);
		} else if (opt == OPT_HTTP) {
			if (tp->n_http == TOP_MAX_HTTP)
				return cli_usage_error("top: at most %s --http",
						       "16");
			if (strrchr(optarg, ':') == NULL)
				return cli_usage_error("top: bad --http '%s' "
						       "(HOST:PORT)",
						       optarg);
			tp->http[tp->n_http++] = strdup(optarg);
		} else if (opt == OPT_REPLAY) {
			tp->replay = optarg;
		} else if (opt == OPT_SPEED) {
			char *end;
			tp->speed = strtod(optarg, &end);
			if (!*optarg || *end || !isfinite(tp->speed) ||
			    tp->speed < 0)
				return cli_usage_error(
					"top: bad --speed '%s' (a "
					"number >= 0)",
					optarg);
		} else if (opt == OPT_JSON) {
			tp->cli->json = true;
		} else {
			return cli_usage_error("%s: bad option", "top");
		}
	}
	return cli_no_positional(argc, argv);
}

int cmd_top(struct cli *cli, int argc, char **argv)
{
	struct top tp = { .cli = cli, .interval_ms = 1000, .speed = 1.0 };
	int status = parse_top(&tp, argc, argv);
	if (status == EXIT_OK && cli->json && !tp.once)
		status = cli_usage_error("top: %s", "--json needs --once");
	if (status == EXIT_OK && tp.replay) {
		status = run_replay(&tp);
	} else if (status == EXIT_OK) {
		if (tp.n_http == 0)
			http_from_config(&tp);
		tp.prev = json_object();
		status = tp.prev ? run_live(&tp) : EXIT_FAIL;
		json_decref(tp.prev);
	}
	for (int i = 0; i < tp.n_http; i++)
		free(tp.http[i]);
	return status;
}
