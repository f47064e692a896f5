/* client/cli/events.c - `bygate events`: bygated's task event log
 * (docs/operations.md, "The event log") printed one event per line,
 * followed across rotation (--follow), or replayed with its original
 * spacing (--replay FILE --speed X). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli/cli.h"
#include "client/cli/evlog.h"

/* Events shown from the end of the file before --follow waits. */
#define FOLLOW_BACKLOG 10
/* How often --follow looks for new lines, in ms. */
#define FOLLOW_POLL_MS 200

static const struct option events_opts[] = {
	{ "file", required_argument, NULL, OPT_FILE },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "replay", required_argument, NULL, OPT_REPLAY },
	{ "speed", required_argument, NULL, OPT_SPEED },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "jsonl", no_argument, NULL, OPT_JSON }, /* one object per line */
	{ NULL, 0, NULL, 0 },
};

struct shown {
	bool json;
	long long bad; /* lines that are not JSON objects */
};

/* Print one line of the log: as it is (--jsonl) or readably. */
static void show(struct shown *s, const char *line)
{
	json_t *ev = evlog_parse(line);
	if (ev == NULL) {
		s->bad++;
		return;
	}
	if (s->json)
		printf("%s\n", line);
	else
		evlog_print_text(ev, stdout);
	json_decref(ev);
}

static int read_failed(const char *path, int rc)
{
	fprintf(stderr, "bygate: events: reading %s: %s\n", path,
		strerror(-rc));
	return EXIT_FAIL;
}

static void report_bad(const struct shown *s)
{
	if (s->bad)
		fprintf(stderr,
			"bygate: events: %lld lines skipped (not JSON "
			"objects)\n",
			s->bad);
}

/* The whole file, or (follow) its last events then what is appended. */
static int print_log(const char *path, bool follow, struct shown *s)
{
	struct evlog_reader r;
	int rc = evlog_open(&r, path);
	if (rc == 0 && r.f == NULL && !follow) {
		fprintf(stderr,
			"bygate: events: %s does not exist (is "
			"log.events_file on?)\n",
			path);
		evlog_close(&r);
		return EXIT_FAIL;
	}
	char *ring[FOLLOW_BACKLOG] = { 0 };
	long long n = 0;
	char *line;
	while (rc == 0 && (rc = evlog_next(&r, follow, &line)) == 1) {
		rc = 0;
		if (!follow) {
			show(s, line);
			free(line);
			continue;
		}
		free(ring[n % FOLLOW_BACKLOG]);
		ring[n++ % FOLLOW_BACKLOG] = line;
	}
	long long first = n > FOLLOW_BACKLOG ? n - FOLLOW_BACKLOG : 0;
	for (long long i = first; i < n; i++) {
		show(s, ring[i % FOLLOW_BACKLOG]);
		free(ring[i % FOLLOW_BACKLOG]);
	}
	while (follow && rc >= 0 && !g_signal) {
		rc = evlog_next(&r, true, &line);
		if (rc == 1) {
			show(s, line);
			free(line);
		} else if (rc == 0) {
			fflush(stdout);
			cli_sleep_ms(FOLLOW_POLL_MS);
		}
	}
	evlog_close(&r);
	report_bad(s);
	return rc < 0 ? read_failed(path, rc) : EXIT_OK;
}

/* Every event of path, spaced as they were written divided by speed (0:
 * at once). */
static int replay(const char *path, double speed, struct shown *s)
{
	struct evlog_reader r;
	int rc = evlog_open(&r, path);
	if (rc == 0 && r.f == NULL)
		rc = -ENOENT;
	if (rc)
		return read_failed(path, rc);
	char *line;
	int64_t prev = 0;
	while ((rc = evlog_next(&r, false, &line)) == 1 && !g_signal) {
		json_t *ev = evlog_parse(line);
		int64_t ts = ev ? (int64_t)cli_jint(ev, "ts_ms") : 0;
		json_decref(ev);
		if (speed > 0 && prev > 0 && ts > prev) {
			fflush(stdout);
			double ms = (double)(ts - prev) / speed;
			cli_sleep_ms(ms > 3600000.0 ? 3600000 : (int)ms);
		}
		if (ts > 0)
			prev = ts;
		show(s, line);
		free(line);
	}
	evlog_close(&r);
	report_bad(s);
	return rc < 0 ? read_failed(path, rc) : EXIT_OK;
}

int cmd_events(struct cli *cli, int argc, char **argv)
{
	const char *file = NULL, *replay_file = NULL;
	bool follow = false;
	double speed = 1.0;
	int opt;
	while ((opt = getopt_long(argc, argv, "f", events_opts, NULL)) != -1) {
		if (opt == OPT_FILE)
			file = optarg;
		else if (opt == OPT_FOLLOW || opt == 'f')
			follow = true;
		else if (opt == OPT_REPLAY)
			replay_file = optarg;
		else if (opt == OPT_SPEED) {
			char *end;
			speed = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' ||
			    !isfinite(speed) || speed < 0)
				return cli_usage_error(
					"events: bad --speed '%s' "
					"(a number >= 0)",
					optarg);
		} else if (opt == OPT_JSON)
			cli->json = true;
		else
			return cli_usage_error("%s: bad option", "events");
	}
	int status = cli_no_positional(argc, argv);
	if (status == EXIT_OK && replay_file && (follow || file))
		status = cli_usage_error(
			"events: %s", "--replay takes no --file or --follow");
	if (status != EXIT_OK)
		return status;
	struct shown s = { cli->json, 0 };
	if (replay_file)
		return replay(replay_file, speed, &s);
	char *def = NULL;
	if (file == NULL) {
		status = evlog_default_path(cli, &def);
		if (status != EXIT_OK)
			return status;
		file = def;
	}
	status = print_log(file, follow, &s);
	free(def);
	return status;
}
