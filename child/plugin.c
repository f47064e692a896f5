/* child/plugin.c - the CONFIG record: per agent type a handler kind and its
 * settings (enum bg_conf_type_field). Each distinct plugin is dlopen()ed
 * once, its `bg_handler` checked against BG_HANDLER_ABI_VERSION, and init()
 * called per agent type; exec agent types are handed to exec.c. Errors
 * name the agent type and the path, for FATAL. */
#include "child/child.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_MAX_FIELDS (1 + BG_CONF_FIELDS_PER_TYPE * BG_CHILD_MAX_TYPES)

/* Store the message for the FATAL record; returns rc. */
__attribute__((format(printf, 3, 4))) static int
fail(struct bg_buf *err, int rc, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bg_buf_reset(err);
	bg_buf_puts(err, msg);
	return rc;
}

static const char *dl_error(void)
{
	const char *e = dlerror();
	return e ? e : "unknown error";
}

static struct bg_plugin *find_plugin(struct bg_child_proc *c,
				     struct bg_str path)
{
	for (size_t i = 0; i < c->n_plugins; i++)
		if (bg_str_eq(path, c->plugins[i].path))
			return &c->plugins[i];
	return NULL;
}

static int open_plugin(struct bg_plugin *pl, const char *agent,
		       struct bg_buf *err)
{
	const char *path = pl->path;
	pl->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (pl->dl == NULL)
		return fail(err, -ENOENT,
			    "agent type '%s': cannot load plugin %s: %s", agent,
			    path, dl_error());
	dlerror();
	pl->h = dlsym(pl->dl, "bg_handler");
	if (pl->h == NULL)
		return fail(err, -ENOENT,
			    "agent type '%s': plugin %s does not export "
			    "bg_handler: %s",
			    agent, path, dl_error());
	if (pl->h->abi_version != BG_HANDLER_ABI_VERSION)
		return fail(err, -EPROTO,
			    "agent type '%s': plugin %s has ABI version %u, "
			    "expected %u",
			    agent, path, pl->h->abi_version,
			    BG_HANDLER_ABI_VERSION);
	if (pl->h->process == NULL)
		return fail(err, -EINVAL,
			    "agent type '%s': plugin %s has no process()",
			    agent, path);
	return 0;
}

/* The plugin serving `path`, loaded on first use. */
static int get_plugin(struct bg_child_proc *c, struct bg_str path,
		      const char *agent, struct bg_plugin **out,
		      struct bg_buf *err)
{
	*out = find_plugin(c, path);
	if (*out)
		return 0;
	struct bg_plugin *pl = &c->plugins[c->n_plugins];
	pl->path = bg_str_dup(path);
	if (pl->path == NULL)
		return -ENOMEM;
	c->n_plugins++;
	*out = pl;
	return open_plugin(pl, agent, err);
}

/* The agent type count: 1..BG_CHILD_MAX_TYPES in decimal, else 0. */
static size_t parse_count(struct bg_str s)
{
	size_t v = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9' || v > BG_CHILD_MAX_TYPES)
			return 0;
		v = v * 10 + (size_t)(s.p[i] - '0');
	}
	return v <= BG_CHILD_MAX_TYPES ? v : 0;
}

static int valid_name(struct bg_str s)
{
	return s.len > 0 && s.len <= 255 && !memchr(s.p, ',', s.len) &&
	       !memchr(s.p, '\0', s.len);
}

static int check_type(struct bg_child_proc *c, const struct bg_str *f,
		      const char *name, struct bg_buf *err)
{
	if (!valid_name(f[BG_KF_NAME]))
		return fail(err, -EINVAL,
			    "invalid agent type name '%s' (1-255 bytes, no "
			    "commas)",
			    name);
	if (bg_child_find_agent(c, name))
		return fail(err, -EINVAL, "agent type '%s' configured twice",
			    name);
	if (bg_str_eq(f[BG_KF_KIND], "exec"))
		return 0;
	if (!bg_str_eq(f[BG_KF_KIND], "plugin"))
		return fail(err, -ENOTSUP,
			    "agent type '%s': handler kind '%.*s' is not "
			    "supported (\"plugin\" or \"exec\")",
			    name, (int)f[BG_KF_KIND].len, f[BG_KF_KIND].p);
	struct bg_str path = f[BG_KF_PLUGIN];
	if (path.len == 0 || memchr(path.p, '\0', path.len))
		return fail(err, -EINVAL, "agent type '%s': no plugin path",
			    name);
	return 0;
}

/* Load the plugin of agent type a and init() it. */
static int add_plugin(struct bg_child_proc *c, struct bg_agent *a,
		      struct bg_str path, const char *opts, struct bg_buf *err)
{
	int rc = get_plugin(c, path, a->name, &a->plugin, err);
	if (rc)
		return rc;
	int (*init)(const char *, const char *, void **) = a->plugin->h->init;
	rc = init ? init(a->name, opts, &a->state) : 0;
	a->inited = rc == 0;
	if (rc)
		return fail(err, -ECANCELED,
			    "agent type '%s': init() of plugin %s failed with "
			    "%d",
			    a->name, a->plugin->path, rc);
	return 0;
}

/* Register, then load and init (plugin) or configure (exec) one agent type
 * from its CONFIG fields. */
static int add_type(struct bg_child_proc *c, const struct bg_str *f,
		    struct bg_buf *err)
{
	char *name = bg_str_dup(f[BG_KF_NAME]);
	char *opts = f[BG_KF_OPTIONS].len ? bg_str_dup(f[BG_KF_OPTIONS])
					  : strdup("{}");
	int rc = name && opts ? check_type(c, f, name, err) : -ENOMEM;
	if (rc == 0) {
		struct bg_agent *a = &c->agents[c->n_agents++];
		a->name = name;
		name = NULL;
		rc = bg_confine_parse(&a->confine, f[BG_KF_SANDBOX]);
		if (rc)
			fail(err, rc,
			     "agent type '%s': invalid sandbox in "
			     "CONFIG",
			     a->name);
		else
			rc = bg_str_eq(f[BG_KF_KIND], "exec")
				     ? bg_child_exec_configure(a, f, err)
				     : add_plugin(c, a, f[BG_KF_PLUGIN], opts,
						  err);
		char why[200] = "";
		if (rc == 0 && !c->no_sandbox &&
		    (rc = bg_confine_prepare(&a->confine,
					     a->plugin ? a->plugin->path : NULL,
					     why, sizeof(why))))
			fail(err, rc,
			     "agent type '%s': cannot prepare its "
			     "sandbox: %s: %s",
			     a->name, why, strerror(-rc));
	}
	free(name);
	free(opts);
	return rc;
}

int bg_child_load(struct bg_child_proc *c, const uint8_t *p, size_t len,
		  struct bg_buf *err)
{
	static struct bg_str f[CONF_MAX_FIELDS];
	uint32_t n = 0;
	size_t types = 0;
	if (bg_rec_unpack_var(p, len, f, CONF_MAX_FIELDS, &n) == 0 && n >= 1)
		types = parse_count(f[0]);
	if (types == 0 || n != 1 + BG_CONF_FIELDS_PER_TYPE * types)
		return fail(err, -EBADMSG,
			    "malformed CONFIG record (%u fields, at most %u "
			    "agent types)",
			    n, BG_CHILD_MAX_TYPES);
	c->agents = calloc(types, sizeof(*c->agents));
	c->plugins = calloc(types, sizeof(*c->plugins));
	if (c->agents == NULL || c->plugins == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < types; i++) {
		int rc = add_type(c, &f[1 + BG_CONF_FIELDS_PER_TYPE * i], err);
		if (rc)
			return rc;
	}
	return 0;
}

int bg_child_agent_names(const struct bg_child_proc *c, struct bg_buf *out)
{
	bg_buf_reset(out);
	for (size_t i = 0; i < c->n_agents; i++) {
		int rc = bg_buf_printf(out, "%s%s", i ? "," : "",
				       c->agents[i].name);
		if (rc)
			return rc;
	}
	return 0;
}

struct bg_agent *bg_child_find_agent(struct bg_child_proc *c, const char *name)
{
	for (size_t i = 0; i < c->n_agents; i++)
		if (strcmp(c->agents[i].name, name) == 0)
			return &c->agents[i];
	return NULL;
}

void bg_child_unload(struct bg_child_proc *c)
{
	for (size_t i = 0; i < c->n_agents; i++) {
		struct bg_agent *a = &c->agents[i];
		if (a->inited && a->plugin->h->shutdown)
			a->plugin->h->shutdown(a->state);
		a->inited = false;
		bg_child_exec_free(a->exec);
		bg_confine_free(&a->confine);
		free(a->name);
	}
	for (size_t i = 0; i < c->n_plugins; i++) {
		if (c->plugins[i].dl)
			dlclose(c->plugins[i].dl);
		free(c->plugins[i].path);
	}
	free(c->agents);
	free(c->plugins);
	c->agents = NULL;
	c->plugins = NULL;
	c->n_agents = c->n_plugins = 0;
}
