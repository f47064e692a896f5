/* child/execconf.c - handler = "exec": an agent type's CONFIG fields
 * (command, mode, max_inflight, max_line_bytes, working directory) into
 * its struct bg_exec, and the environment its program is started with
 * (rebuilt in a task process, see taskproc.c). Running the programs is
 * program.c's, their tasks exec.c's. */
#include "child/child.h"
#include "child/memwatch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

void bg_child_exec_free(struct bg_exec *x)
{
	if (x == NULL)
		return;
	for (char **a = x->argv; a && *a; a++)
		free(*a);
	free(x->argv);
	for (int i = 0; i < BG_EXEC_OWN_ENV; i++)
		free(x->own_env[i]);
	free(x->envp);
	free(x->workdir);
	free(x->preload);
	free(x);
}

/* A decimal in [lo, hi] from a CONFIG field; -1 when not. */
static long field_long(struct bg_str s, long lo, long hi)
{
	long v = 0;
	if (s.len == 0 || s.len > 10)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (s.p[i] - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

/* argv from the JSON array of non-empty strings in s. */
static int parse_argv(struct bg_exec *x, struct bg_str s)
{
	json_t *a = json_loadb(s.p, s.len, 0, NULL);
	size_t n = json_array_size(a);
	int rc = n ? 0 : -EINVAL;
	if (rc == 0 && (x->argv = calloc(n + 1, sizeof(char *))) == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *w = json_array_get(a, i);
		if (!json_is_string(w) || json_string_length(w) == 0 ||
		    strlen(json_string_value(w)) != json_string_length(w))
			rc = -EINVAL;
		else if ((x->argv[i] = strdup(json_string_value(w))) == NULL)
			rc = -ENOMEM;
	}
	json_decref(a);
	return rc;
}

/* Does environment entry e set one of the variables in own[]? */
static bool is_own(const char *e, char *const *own, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(own[i], "=") + 1;
		if (strncmp(e, own[i], len) == 0)
			return true;
	}
	return false;
}

/* The program's environment: environ (the child's, built by bygated; a
 * task process's own, see taskproc.c), then the agent type's `env`, then
 * BYGATE_AGENT_TYPE, BYGATE_HANDLER_PROTOCOL and BYGATE_MAX_INFLIGHT
 * (x->own_env), each name once. */
static int build_envp(struct bg_exec *x, const struct bg_confine *cf)
{
	char **own = x->own_env;
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	free(x->envp);
	x->envp = calloc(n + cf->n_env + BG_EXEC_OWN_ENV + 2, sizeof(char *));
	if (x->envp == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!is_own(environ[i], own, BG_EXEC_OWN_ENV) &&
		    !is_own(environ[i], cf->env, cf->n_env))
			x->envp[k++] = environ[i];
	for (size_t i = 0; i < cf->n_env; i++)
		if (!is_own(cf->env[i], own, BG_EXEC_OWN_ENV))
			x->envp[k++] = cf->env[i];
	memcpy(&x->envp[k], own, sizeof(x->own_env));
	k += BG_EXEC_OWN_ENV;
	if (x->preload && !getenv("LD_PRELOAD"))
		x->envp[k++] = x->preload;
	return 0;
}

static int make_envp(struct bg_exec *x, const struct bg_agent *a)
{
	char **own = x->own_env;
	if (asprintf(&own[0], "BYGATE_AGENT_TYPE=%s", a->name) == -1)
		own[0] = NULL; /* asprintf leaves it undefined */
	if (asprintf(&own[1], "BYGATE_HANDLER_PROTOCOL=%d",
		     BG_PROTOCOL_VERSION) == -1)
		own[1] = NULL;
	if (asprintf(&own[2], "BYGATE_MAX_INFLIGHT=%d", x->max_inflight) == -1)
		own[2] = NULL;
	if (!own[0] || !own[1] || !own[2])
		return -ENOMEM;
	return build_envp(x, &a->confine);
}

void bg_child_exec_env(struct bg_agent *a)
{
	if (build_envp(a->exec, &a->confine))
		_exit(BG_CHILD_EXIT_TASK_DIED); /* a task process without memory */
}

/* A strict agent type with a memory limit gets libbygate-memwatch.so
 * (next to this binary) preloaded, and may read it. */
static int memwatch(struct bg_agent *a)
{
	struct bg_exec *x = a->exec;
	struct bg_confine *cf = &a->confine;
	if (!cf->strict || cf->memory_mb <= 0)
		return 0;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 0;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return 0;
	*slash = '\0';
	char *lib = NULL;
	if (asprintf(&lib, "%s/%s", self, BG_MEMWATCH_LIB) == -1)
		return -ENOMEM;
	if (access(lib, R_OK) == -1) {
		free(lib); /* not installed: failures stay unexplained */
		return 0;
	}
	char **paths = realloc(cf->program_paths,
			       (cf->n_program_paths + 2) * sizeof(char *));
	if (paths == NULL ||
	    asprintf(&x->preload, "LD_PRELOAD=%s", lib) == -1) {
		if (paths)
			cf->program_paths = paths;
		free(lib);
		x->preload = NULL;
		return -ENOMEM;
	}
	cf->program_paths = paths;
	cf->program_paths[cf->n_program_paths++] = lib;
	cf->program_paths[cf->n_program_paths] = NULL;
	return 0;
}

int bg_child_exec_configure(struct bg_agent *a, const struct bg_str *f,
			    struct bg_buf *err)
{
	struct bg_exec *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	a->exec = x;
	/* Writing to a program that died must be an error, not our death;
	 * programs get the default action back (program.c). */
	signal(SIGPIPE, SIG_IGN);
	long inflight = field_long(f[BG_KF_MAX_INFLIGHT], 1, 64);
	long max_line = field_long(f[BG_KF_MAX_LINE], 1024, 1L << 30);
	bool per_task = bg_str_eq(f[BG_KF_MODE], "per_task");
	const char *bad = NULL;
	int rc = parse_argv(x, f[BG_KF_ARGV]);
	if (rc == -EINVAL)
		bad = "command";
	else if (rc == 0 && inflight < 0)
		bad = "max_inflight";
	else if (rc == 0 && max_line < 0)
		bad = "max_line_bytes";
	else if (rc == 0 && !per_task &&
		 !bg_str_eq(f[BG_KF_MODE], "persistent"))
		bad = "mode";
	else if (rc == 0 &&
		 (f[BG_KF_WORKDIR].len == 0 ||
		  memchr(f[BG_KF_WORKDIR].p, '\0', f[BG_KF_WORKDIR].len)))
		bad = "working directory";
	if (bad) {
		bg_buf_reset(err);
		bg_buf_printf(err, "agent type '%s': invalid exec %s in CONFIG",
			      a->name, bad);
		return -EINVAL;
	}
	x->per_task = per_task;
	x->max_inflight = per_task ? 1 : (int)inflight;
	x->max_line = (size_t)max_line;
	x->workdir = strndup(f[BG_KF_WORKDIR].p, f[BG_KF_WORKDIR].len);
	if (rc == 0 && x->workdir == NULL)
		rc = -ENOMEM;
	a->confine.exec = true;
	if (rc == 0)
		rc = bg_confine_program_paths(&a->confine, x->argv, x->workdir);
	if (rc == 0)
		rc = memwatch(a);
	return rc ? rc : make_envp(x, a);
}
