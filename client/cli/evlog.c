/* client/cli/evlog.c - the event log read, followed and printed
 * (evlog.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/cli/cli.h"
#include "client/cli/evlog.h"
#include "conf/config.h"

int evlog_default_path(const struct cli *cli, char **out)
{
	struct bg_config cfg = { 0 };
	char err[512];
	const char *path = cli_config_path(cli->config);
	if (bg_config_load(path, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "bygate: %s\n", err);
		return EXIT_FAIL;
	}
	int status = EXIT_OK;
	if (cfg.log_events_file == NULL || cfg.log_events_file[0] == '\0') {
		fprintf(stderr,
			"bygate: no event log: log.events_file is not set in "
			"%s; give --file FILE\n",
			path ? path : "the configuration (none loaded)");
		status = EXIT_USAGE;
	} else if ((*out = strdup(cfg.log_events_file)) == NULL) {
		fprintf(stderr, "bygate: out of memory\n");
		status = EXIT_FAIL;
	}
	bg_config_free(&cfg);
	return status;
}

/* (Re)open r->path; a missing file leaves r->f NULL. */
static int reopen(struct evlog_reader *r)
{
	if (r->f)
		fclose(r->f);
	bg_buf_reset(&r->part);
	r->f = fopen(r->path, "r");
	if (r->f == NULL)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	if (fstat(fileno(r->f), &st) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	}
	return 0;
}

int evlog_open(struct evlog_reader *r, const char *path)
{
	*r = (struct evlog_reader){ 0 };
	r->path = strdup(path);
	if (r->path == NULL)
		return -ENOMEM;
	return reopen(r);
}

void evlog_close(struct evlog_reader *r)
{
	if (r->f)
		fclose(r->f);
	free(r->path);
	bg_buf_free(&r->part);
	*r = (struct evlog_reader){ 0 };
}

/* At the end of r->f: has path been rotated or truncated meanwhile? Then
 * read on from the new file (or from the start). */
static int check_moved(struct evlog_reader *r)
{
	struct stat st;
	if (stat(r->path, &st) == -1)
		return errno == ENOENT ? 0 : -errno; /* between rename, open */
	if (r->f == NULL || st.st_dev != r->dev || st.st_ino != r->ino)
		return reopen(r);
	long pos = ftell(r->f);
	if (pos > 0 && st.st_size < (off_t)pos) {
		bg_buf_reset(&r->part);
		if (fseek(r->f, 0, SEEK_SET) != 0)
			return -errno;
	}
	return 0;
}

int evlog_next(struct evlog_reader *r, bool follow, char **line)
{
	for (int round = 0; round < 2; round++) {
		if (r->f) {
			char *l = NULL;
			size_t cap = 0;
			ssize_t n = getline(&l, &cap, r->f);
			if (n > 0 && l[n - 1] == '\n') {
				if (r->part.len == 0) {
					l[n - 1] = '\0';
					*line = l;
					return 1;
				}
				int rc = bg_buf_append(&r->part, l,
						       (size_t)n - 1);
				free(l);
				if (rc == 0)
					rc = bg_buf_append(&r->part, "", 1);
				if (rc)
					return rc;
				*line = strdup(r->part.p);
				bg_buf_reset(&r->part);
				return *line ? 1 : -ENOMEM;
			}
			if (n > 0 && bg_buf_append(&r->part, l, (size_t)n)) {
				free(l);
				return -ENOMEM;
			}
			free(l);
			if (ferror(r->f))
				return -EIO;
			clearerr(r->f); /* at the end: more may come */
			if (!follow && r->part.len) { /* a last line without
							 '\n' */
				*line = strndup(r->part.p, r->part.len);
				bg_buf_reset(&r->part);
				return *line ? 1 : -ENOMEM;
			}
		}
		if (!follow || round == 1)
			return 0;
		int rc = check_moved(r);
		if (rc)
			return rc;
	}
	return 0;
}

json_t *evlog_parse(const char *line)
{
	json_t *v = json_loads(line, 0, NULL);
	if (v && !json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static const char *s_of(const json_t *ev, const char *key)
{
	const char *s = json_string_value(json_object_get(ev, key));
	return s && s[0] ? s : "-";
}

void evlog_print_text(const json_t *ev, FILE *out)
{
	const char *ts = s_of(ev, "ts");
	const char *name = s_of(ev, "event");
	/* "2026-12-07T19:50:41.123Z" -> "19:50:41.123" */
	int tl = strlen(ts) >= 23 ? 12 : (int)strlen(ts);
	const char *t = strlen(ts) >= 23 ? ts + 11 : ts;
	fprintf(out, "%.*s %-7s %-16s %-24s %s", tl, t, name,
		s_of(ev, "agent_type"), s_of(ev, "message_id"),
		s_of(ev, "session_id"));
	json_t *a = json_object_get(ev, "attempt");
	if (!strcmp(name, "started"))
		fprintf(out, "  attempt %lld pid %lld queued %lldms",
			(long long)json_integer_value(a),
			(long long)cli_jint(ev, "pid"),
			(long long)cli_jint(ev, "queue_ms"));
	else if (!strcmp(name, "retry"))
		fprintf(out, "  attempt %lld: %s",
			(long long)json_integer_value(a), s_of(ev, "error"));
	else if (!strcmp(name, "ended")) {
		fprintf(out, "  %s queue %lldms run %lldms total %lldms",
			s_of(ev, "status"), (long long)cli_jint(ev, "queue_ms"),
			(long long)cli_jint(ev, "run_ms"),
			(long long)cli_jint(ev, "total_ms"));
		if (json_object_get(ev, "error_code"))
			fprintf(out, " %s: %s", s_of(ev, "error_code"),
				s_of(ev, "error"));
	}
	const char *lane = json_string_value(json_object_get(ev, "lane"));
	if (lane && lane[0])
		fprintf(out, " lane=%s", lane);
	fputc('\n', out);
}
