/* state/tool/tool.h - what the files of bygate-state share: its command
 * line, exit codes, the display of untrusted bytes, the (stream, entry id)
 * lists, and one entry point per command. Not an interface: nothing
 * outside state/tool/ includes it. */
#ifndef BG_STATE_TOOL_H
#define BG_STATE_TOOL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"

struct bg_config;
struct bg_state;

/* Exit status (docs/man/bygate-state.1). */
enum {
	BG_TOOL_EXIT_OK = 0,	/* done; check: state and Redis agree */
	BG_TOOL_EXIT_FOUND = 1, /* discrepancies, corrupt records, nothing
				   found */
	BG_TOOL_EXIT_USAGE = 2,
	BG_TOOL_EXIT_OPEN = 3, /* cannot open the state or reach Redis */
};

/* The command line (main.c); every member NULL/false when not given. */
struct bg_tool_args {
	const char *state_dir, *config, *command;
	const char *db, *entry, *session, *redis, *group, *worker;
	bool json;
};

/* ---- displaying untrusted bytes (text.c) ---- */
/* Append s for display: valid UTF-8 as is, control bytes, backslashes and
 * bytes of invalid sequences escaped (\xNN, \\); past 200 bytes cut (on a
 * character boundary) and followed by "...(N bytes)". The result is
 * always valid UTF-8, so it may go into JSON. */
void bg_tool_render(struct bg_buf *out, struct bg_str s);
/* The same as a new JSON string. */
json_t *bg_tool_jtext(struct bg_str s);

/* ---- lists of owned (stream, entry id) pairs (items.c) ---- */
struct bg_tool_item {
	char *stream, *id; /* NUL-terminated copies */
	size_t slen, ilen;
	char kind; /* 'j' journal, 'i' inflight, 'h' history, 's' a stream */
};
/* A zeroed struct is an empty list. */
struct bg_tool_items {
	struct bg_tool_item *v;
	size_t n, cap;
};
/* Append copies of stream and id; 0 or -ENOMEM. */
int bg_tool_items_add(struct bg_tool_items *l, struct bg_str stream,
		      struct bg_str id, char kind);
bool bg_tool_item_is(const struct bg_tool_item *it, struct bg_str stream,
		     struct bg_str id);
/* The first item of (stream, id), or NULL. */
const struct bg_tool_item *bg_tool_items_find(const struct bg_tool_items *l,
					      struct bg_str stream,
					      struct bg_str id);
void bg_tool_items_free(struct bg_tool_items *l);

/* ---- the commands (show.c: dump, get, stats; check.c: check) ----
 * Each prints its result and returns the exit status; st is open
 * read-only. check compares the state of state_dir with Redis as cfg
 * (and a's --redis, --group, --worker) configure it. */
int bg_tool_dump(struct bg_state *st, const struct bg_tool_args *a);
int bg_tool_get(struct bg_state *st, const struct bg_tool_args *a);
int bg_tool_stats(struct bg_state *st, const struct bg_tool_args *a);
int bg_tool_check(struct bg_state *st, const struct bg_tool_args *a,
		  const struct bg_config *cfg, const char *state_dir);

#endif
