/* state/tool/main.c - bygate-state: read-only inspection of bygated's
 * LMDB state (dump, get, stats) and its cross-check against Redis (check).
 * This file reads the command line and the configuration, opens the
 * environment with MDB_RDONLY (never written, so safe while bygated runs)
 * and runs the command. Usage and exit codes: docs/man/bygate-state.1. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "state/state.h"
#include "state/tool/tool.h"

static const char usage_text[] =
	"usage: bygate-state [-d STATE_DIR | -c CONFIG] COMMAND [--json]\n"
	"commands:\n"
	"  dump [--db meta|journal|inflight|history|sessions]\n"
	"  get --entry STREAM/ID | --session SESSION\n"
	"  stats\n"
	"  check [--redis HOST:PORT] [--group GROUP] [--worker WORKER]\n"
	"Without -d, the state directory is paths.state_dir of CONFIG\n"
	"(default $BYGATE_CONFIG or " BG_CONFIG_DEFAULT_PATH ").\n"
	"Exit: 0 ok, 1 discrepancies/corrupt records/nothing found, 2 usage,\n"
	"3 cannot open the state or reach Redis.\n";

static int usage(const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		fputs("bygate-state: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	fputs(usage_text, fmt ? stderr : stdout);
	return fmt ? BG_TOOL_EXIT_USAGE : BG_TOOL_EXIT_OK;
}

/* Options with a value, and the command each belongs to (NULL: global). */
static const struct opt {
	const char *name, *command;
	size_t off;
} opts[] = {
	{ "-d", NULL, offsetof(struct bg_tool_args, state_dir) },
	{ "-c", NULL, offsetof(struct bg_tool_args, config) },
	{ "--db", "dump", offsetof(struct bg_tool_args, db) },
	{ "--entry", "get", offsetof(struct bg_tool_args, entry) },
	{ "--session", "get", offsetof(struct bg_tool_args, session) },
	{ "--redis", "check", offsetof(struct bg_tool_args, redis) },
	{ "--group", "check", offsetof(struct bg_tool_args, group) },
	{ "--worker", "check", offsetof(struct bg_tool_args, worker) },
};

static const char *const commands[] = { "dump", "get", "stats", "check" };

static int parse_args(int argc, char **argv, struct bg_tool_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const struct opt *o = NULL;
		for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
			if (strcmp(s, opts[k].name) == 0)
				o = &opts[k];
		if (strcmp(s, "--json") == 0) {
			a->json = true;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			return 1;
		} else if (o) {
			if (i + 1 >= argc)
				return usage("%s needs a value", s);
			*(const char **)((char *)a + o->off) = argv[++i];
		} else if (s[0] == '-' || a->command) {
			return usage("unexpected argument \"%s\"", s);
		} else {
			a->command = s;
		}
	}
	bool known = false;
	for (size_t k = 0; a->command && k < 4; k++)
		known |= strcmp(a->command, commands[k]) == 0;
	if (!known)
		return usage(a->command ? "unknown command \"%s\""
					: "no command given%s",
			     a->command ? a->command : "");
	if (a->state_dir && a->config)
		return usage("-d and -c exclude each other");
	for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
		const char *v = *(const char **)((char *)a + opts[k].off);
		if (v && opts[k].command && strcmp(opts[k].command, a->command))
			return usage("%s belongs to %s", opts[k].name,
				     opts[k].command);
	}
	return 0;
}

/* The configuration: -c or the default file; with -d only what the
 * environment says (check needs the Redis address and key schema). */
static int load_config(const struct bg_tool_args *a, struct bg_config *cfg)
{
	char err[512];
	const char *path = a->config	  ? a->config
			   : a->state_dir ? NULL
					  : bg_config_default_path();
	if (a->state_dir && strcmp(a->command, "check") != 0)
		return 0;
	if (bg_config_load(path, cfg, err, sizeof err) == 0)
		return 0;
	fprintf(stderr, "bygate-state: %s%s\n", err,
		path && !a->config ? " (or give -d STATE_DIR)" : "");
	return -1;
}

int main(int argc, char **argv)
{
	struct bg_tool_args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == 1 ? usage(NULL) : rc;
	struct bg_config cfg = { 0 };
	if (load_config(&a, &cfg))
		return BG_TOOL_EXIT_OPEN;
	const char *dir = a.state_dir ? a.state_dir : cfg.state_dir;
	struct bg_state_opts o = { .dir = dir, .read_only = true };
	struct bg_state *st;
	if (bg_state_open(&o, &st, NULL)) {
		fprintf(stderr,
			"bygate-state: cannot open the state in %s: %s\n", dir,
			bg_state_errmsg(NULL));
		bg_config_free(&cfg);
		return BG_TOOL_EXIT_OPEN;
	}
	int code = strcmp(a.command, "dump") == 0  ? bg_tool_dump(st, &a)
		   : strcmp(a.command, "get") == 0 ? bg_tool_get(st, &a)
		   : strcmp(a.command, "stats") == 0
			   ? bg_tool_stats(st, &a)
			   : bg_tool_check(st, &a, &cfg, dir);
	bg_state_close(st);
	bg_config_free(&cfg);
	fflush(stdout);
	return code;
}
