/* client/cli/evlog.h - reading bygated's task event log (log.events_file;
 * docs/operations.md, "The event log"): the default file from the
 * configuration, a file read line by line and followed across rotation
 * (as tail -F does), a line parsed and printed readably. Used by
 * `bygate events` and `bygate top --replay`. */
#ifndef BG_CLIENT_CLI_EVLOG_H
#define BG_CLIENT_CLI_EVLOG_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/buf.h"

struct cli;

struct evlog_reader {
	char *path;
	FILE *f;   /* NULL: the file does not exist (yet) */
	dev_t dev; /* of the file f reads */
	ino_t ino;
	struct bg_buf part; /* a line read without its '\n' yet */
};

/* The event log the configuration names (log.events_file of -c FILE, else
 * of the default configuration), malloc'd into *out. EXIT_OK, or a usage
 * or failure status after printing why (none configured: --file). */
int evlog_default_path(const struct cli *cli, char **out);

/* Start reading path (copied). A missing file is not an error: it is
 * looked for again by each evlog_next. 0 or -errno. */
int evlog_open(struct evlog_reader *r, const char *path);
/* The next whole line (malloc'd, without its '\n') into *line: 1; 0 when
 * there is none now. follow: the file may still grow: a last line without
 * its '\n' is held until the rest comes, and at the end of the file, when
 * path names another file (rotated) or a shorter one (truncated), reading
 * goes on there. Without follow the file is taken as complete (its last
 * line may lack the '\n'). -errno on a read error. */
int evlog_next(struct evlog_reader *r, bool follow, char **line);
void evlog_close(struct evlog_reader *r);

/* A line as a JSON object (a new reference), or NULL when it is not one. */
json_t *evlog_parse(const char *line);
/* One event on one line: time, event, agent type, message, session, then
 * what the event carries (attempt, status, durations, error). */
void evlog_print_text(const json_t *ev, FILE *out);

#endif
