/* conf/sandbox.c - an agent type's effective sandbox: the `sandbox` group's
 * defaults overridden by the agent type's own `sandbox = { ... }`, its
 * connect ports and read-only paths, and its `env`; checked at load (so
 * `bygated -t` catches a mistake) and serialised for the child's CONFIG
 * and for `bygated -T`. docs/security.md says what each key guarantees. */
#include "conf/table.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SANDBOX_GROUP "sandbox"
#define MAX_ENV 256
#define MAX_READ_PATHS 64

/* Members of an agent type's sandbox group that are not keys of the global
 * group (lists: per agent type only). */
static const char *const agent_only[] = { "connect_ports", "read_paths", NULL };

static int bad(struct bg_conf_err *e, const struct bg_config *cfg,
	       const struct bg_agent_type_conf *t, const char *member,
	       const char *msg)
{
	return bg_conf_fail(e, "%s: agent type \"%s\": sandbox.%s: %s",
			    cfg->path && cfg->path[0] ? cfg->path : "(config)",
			    t->name, member, msg);
}

/* One member that is a key of the global group (profile, network, a
 * limit): checked against that key's type and bounds. */
static int apply_key(const struct bg_config *cfg, struct bg_agent_type_conf *t,
		     const char *name, json_t *v, struct bg_conf_err *e)
{
	const struct bg_conf_key *k = bg_conf_key_find(SANDBOX_GROUP, name);
	char msg[256];
	if (k == NULL || !strcmp(name, "require"))
		return bad(e, cfg, t, name,
			   "unknown key (valid: profile, network, memory_mb, "
			   "processes, open_files, cpu_seconds, file_size_mb, "
			   "connect_ports, read_paths)");
	/* The table's offsets are into struct bg_config: rebase them onto
	 * the agent type's struct bg_sandbox_conf. */
	size_t base_off = offsetof(struct bg_config, sandbox_defaults);
	void *base = (char *)&t->sandbox - base_off;
	if (k->type == BG_CONF_ENUM) {
		int ev;
		if (!json_is_string(v) ||
		    bg_conf_enum_value(k, json_string_value(v), &ev))
			return bad(
				e, cfg, t, name,
				!strcmp(name, "profile")
					? "expected \"strict\" or \"trusted\""
					: "expected \"none\", \"connect\" or "
					  "\"host\"");
		bg_conf_set_int(k, base, ev);
		return 0;
	}
	if (!json_is_integer(v))
		return bad(e, cfg, t, name, "expected an integer");
	if (bg_conf_check_int(k, json_integer_value(v), msg, sizeof msg))
		return bad(e, cfg, t, name, msg);
	bg_conf_set_int(k, base, json_integer_value(v));
	return 0;
}

static int apply_ports(const struct bg_config *cfg,
		       struct bg_agent_type_conf *t, json_t *v,
		       struct bg_conf_err *e)
{
	if (!json_is_array(v) || json_array_size(v) > BG_SANDBOX_MAX_PORTS)
		return bad(e, cfg, t, "connect_ports",
			   "expected a list of at most 64 TCP ports, e.g. "
			   "[443]");
	t->n_connect_ports = 0;
	size_t i;
	json_t *p;
	json_array_foreach(v, i, p) {
		json_int_t port = json_is_integer(p) ? json_integer_value(p)
						     : 0;
		if (port < 1 || port > 65535)
			return bad(e, cfg, t, "connect_ports",
				   "a port is an integer in 1..65535");
		t->connect_ports[t->n_connect_ports++] = (int)port;
	}
	return 0;
}

/* The directory of the configuration file (where relative paths start). */
static char *config_dir(const struct bg_config *cfg)
{
	char *dir = strdup(cfg->path && cfg->path[0] ? cfg->path : "/");
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	return dir;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int apply_read_paths(const struct bg_config *cfg,
			    struct bg_agent_type_conf *t, json_t *v,
			    struct bg_conf_err *e)
{
	if (!json_is_array(v) || json_array_size(v) > MAX_READ_PATHS)
		return bad(e, cfg, t, "read_paths",
			   "expected a list of at most 64 paths");
	json_t *out = json_array();
	char *dir = config_dir(cfg);
	int rc = out && dir ? 0 : bg_conf_fail(e, "out of memory");
	size_t i;
	json_t *p;
	json_array_foreach(v, i, p) {
		const char *s = json_is_string(p) ? json_string_value(p) : "";
		if (rc)
			break;
		if (s[0] == '\0' || has_control(s) || strlen(s) > 4000) {
			rc = bad(e, cfg, t, "read_paths",
				 "a path is a non-empty string without control "
				 "characters");
			break;
		}
		char *abs = NULL;
		if (s[0] == '/')
			abs = strdup(s);
		else if (asprintf(&abs, "%s%s%s", dir,
				  dir[strlen(dir) - 1] == '/' ? "" : "/",
				  s) == -1)
			abs = NULL;
		if (abs == NULL || json_array_append_new(out, json_string(abs)))
			rc = bg_conf_fail(e, "out of memory");
		free(abs);
	}
	free(dir);
	if (rc == 0) {
		free(t->read_paths_json);
		t->read_paths_json = json_dumps(out, JSON_COMPACT);
		if (t->read_paths_json == NULL)
			rc = bg_conf_fail(e, "out of memory");
	}
	json_decref(out);
	return rc;
}

static int check_env(const struct bg_config *cfg,
		     const struct bg_agent_type_conf *t, struct bg_conf_err *e)
{
	json_t *env = json_loads(t->env_json ? t->env_json : "{}", 0, NULL);
	const char *name;
	json_t *v;
	int rc =
		json_is_object(env) && json_object_size(env) <= MAX_ENV
			? 0
			: bg_conf_fail(e,
				       "%s: agent type \"%s\": env: expected a "
				       "group of at most %d variables",
				       cfg->path, t->name, MAX_ENV);
	json_object_foreach(env, name, v) {
		if (rc)
			break;
		size_t n = strspn(name,
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789_");
		if (n == 0 || name[n] || (name[0] >= '0' && name[0] <= '9'))
			rc = bg_conf_fail(
				e,
				"%s: agent type \"%s\": env.%s: not a "
				"variable name",
				cfg->path, t->name, name);
		else if (!strncmp(name, "BYGATE_", 7))
			rc = bg_conf_fail(
				e,
				"%s: agent type \"%s\": env.%s: "
				"BYGATE_* variables are set by bygate",
				cfg->path, t->name, name);
		else if (!json_is_string(v) ||
			 strlen(json_string_value(v)) != json_string_length(v))
			rc = bg_conf_fail(e,
					  "%s: agent type \"%s\": env.%s: "
					  "expected a string without NUL",
					  cfg->path, t->name, name);
	}
	json_decref(env);
	return rc;
}

static int resolve_one(const struct bg_config *cfg,
		       struct bg_agent_type_conf *t, struct bg_conf_err *e)
{
	t->sandbox = cfg->sandbox_defaults;
	t->n_connect_ports = 0;
	json_t *j =
		json_loads(t->sandbox_json ? t->sandbox_json : "{}", 0, NULL);
	const char *name;
	json_t *v;
	int rc = json_is_object(j) ? 0 : bad(e, cfg, t, "", "not a group");
	json_object_foreach(j, name, v) {
		if (rc)
			break;
		if (!strcmp(name, agent_only[0]))
			rc = apply_ports(cfg, t, v, e);
		else if (!strcmp(name, agent_only[1]))
			rc = apply_read_paths(cfg, t, v, e);
		else
			rc = apply_key(cfg, t, name, v, e);
	}
	json_decref(j);
	if (rc == 0 && t->read_paths_json == NULL &&
	    (t->read_paths_json = strdup("[]")) == NULL)
		rc = bg_conf_fail(e, "out of memory");
	if (rc == 0 && t->sandbox.network == BG_NET_CONNECT &&
	    t->n_connect_ports == 0)
		rc = bad(e, cfg, t, "network",
			 "\"connect\" needs connect_ports = [port, ...]");
	if (rc == 0 && t->sandbox.network != BG_NET_CONNECT &&
	    t->n_connect_ports > 0)
		rc = bad(e, cfg, t, "connect_ports",
			 "only used with network = \"connect\"");
	return rc ? rc : check_env(cfg, t, e);
}

int bg_conf_sandbox_resolve(struct bg_config *cfg, struct bg_conf_err *e)
{
	for (int i = 0; i < cfg->n_agent_types; i++)
		if (resolve_one(cfg, &cfg->agent_types[i], e))
			return -1;
	return 0;
}

void bg_conf_sandbox_free(struct bg_agent_type_conf *t)
{
	free(t->read_paths_json);
	t->read_paths_json = NULL;
}

int bg_config_sandbox_json(const struct bg_config *cfg,
			   const struct bg_agent_type_conf *t, bool with_env,
			   char **out)
{
	const struct bg_conf_key *kp =
		bg_conf_key_find(SANDBOX_GROUP, "profile");
	const struct bg_conf_key *kn =
		bg_conf_key_find(SANDBOX_GROUP, "network");
	const struct bg_sandbox_conf *s = &t->sandbox;
	json_t *ports = json_array();
	for (int i = 0; ports && i < t->n_connect_ports; i++)
		json_array_append_new(ports, json_integer(t->connect_ports[i]));
	char *agent_dir = NULL;
	if (asprintf(&agent_dir, "%s/%s",
		     cfg->workspace_dir ? cfg->workspace_dir : "",
		     t->name) == -1)
		agent_dir = NULL;
	json_t *j = json_pack(
		"{s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:i, s:i, s:s}", "profile",
		bg_conf_enum_name(kp, s->profile), "network",
		bg_conf_enum_name(kn, s->network), "connect_ports",
		ports ? ports : json_array(), "read_paths",
		json_loads(t->read_paths_json ? t->read_paths_json : "[]", 0,
			   NULL),
		"memory_mb", s->memory_mb, "processes", s->processes,
		"open_files", s->open_files, "cpu_seconds", s->cpu_seconds,
		"file_size_mb", s->file_size_mb, "agent_dir",
		agent_dir ? agent_dir : "");
	free(agent_dir);
	if (j && with_env)
		json_object_set_new(j, "env",
				    json_loads(t->env_json ? t->env_json : "{}",
					       0, NULL));
	*out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	return *out ? 0 : -1;
}
