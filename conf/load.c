/* conf/load.c - bg_config_load: defaults, then the libconfig file walked
 * against the key table (unknown keys are errors), then the environment,
 * then cross-key validation. Errors are "file:line: message". */
#include "conf/table.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct load_ctx {
	const char *path; /* absolute path of the file */
	const char *dir;  /* its directory, for relative paths */
	struct bg_conf_err *e;
};

/* How messages name a file: libconfig gives an @include'd one relative to
 * the include directory, which is the directory of the main file. */
static const char *file_name(struct load_ctx *x, const char *file, char *buf,
			     size_t n)
{
	if (file == NULL)
		return x->path;
	if (file[0] == '/')
		return file;
	snprintf(buf, n, "%s/%s", x->dir, file);
	return buf;
}

/* "file:line: what: msg" for a setting. */
static int fail_at(struct load_ctx *x, const config_setting_t *s,
		   const char *what, const char *msg)
{
	char buf[PATH_MAX];
	return bg_conf_fail(x->e, "%s:%u: %s: %s",
			    file_name(x, config_setting_source_file(s), buf,
				      sizeof buf),
			    config_setting_source_line(s), what, msg);
}

/* dir + "/" + rel, with leading "./" and "../" of rel consumed against dir
 * (dir is a realpath, so this is what the kernel would resolve). */
static char *resolve_path(const char *dir, const char *rel)
{
	size_t dlen = strlen(dir);
	for (;;) {
		if (!strncmp(rel, "./", 2)) {
			rel += 2;
		} else if (!strncmp(rel, "../", 3) || !strcmp(rel, "..")) {
			rel += rel[2] ? 3 : 2;
			while (dlen > 1 && dir[dlen - 1] != '/')
				dlen--;
			if (dlen > 1)
				dlen--;
		} else {
			break;
		}
	}
	char *out;
	const char *sep = (dlen == 1 || !*rel) ? "" : "/";
	if (asprintf(&out, "%.*s%s%s", (int)dlen, dir, sep, rel) == -1)
		return NULL;
	return out;
}

static const char *type_word(enum bg_conf_type t)
{
	switch (t) {
	case BG_CONF_INT:
	case BG_CONF_INT64:
		return "an integer";
	case BG_CONF_JSON:
		return "a group { ... }";
	case BG_CONF_BOOL:
		return "true or false";
	default:
		return "a string";
	}
}

static bool type_matches(enum bg_conf_type t, const config_setting_t *s)
{
	int st = config_setting_type(s);
	switch (t) {
	case BG_CONF_INT:
	case BG_CONF_INT64:
		return st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
	case BG_CONF_JSON:
		return st == CONFIG_TYPE_GROUP;
	case BG_CONF_BOOL:
		return st == CONFIG_TYPE_BOOL;
	default:
		return st == CONFIG_TYPE_STRING;
	}
}

static int parse_string(struct load_ctx *x, const struct bg_conf_key *k,
			const config_setting_t *s, void *base, char *msg,
			size_t n)
{
	const char *v = config_setting_get_string(s);
	if (k->type == BG_CONF_ENUM) {
		int ev;
		if (bg_conf_enum_value(k, v, &ev) == 0) {
			bg_conf_set_int(k, base, ev);
			return 0;
		}
		size_t off = snprintf(msg, n, "\"%.64s\" is not one of", v);
		for (const struct bg_conf_name *e = k->names;
		     e->name && off < n; e++)
			off += snprintf(msg + off, n - off, "%s \"%s\"",
					e == k->names ? "" : ",", e->name);
		return -1;
	}
	if (bg_conf_check_str(k, v, msg, n))
		return -1;
	char *copy = (k->type == BG_CONF_PATH && v[0] && v[0] != '/')
			     ? resolve_path(x->dir, v)
			     : strdup(v);
	if (copy == NULL) {
		snprintf(msg, n, "out of memory");
		return -1;
	}
	bg_conf_put_str(k, base, copy);
	return 0;
}

/* Store setting s (already known to be key k) into base. */
static int parse_value(struct load_ctx *x, const struct bg_conf_key *k,
		       const config_setting_t *s, void *base, const char *what)
{
	char msg[256];
	if (!type_matches(k->type, s)) {
		snprintf(msg, sizeof msg, "expected %s", type_word(k->type));
		return fail_at(x, s, what, msg);
	}
	if (k->type == BG_CONF_JSON) {
		char *json;
		const config_setting_t *bad;
		if (bg_conf_options_to_json(s, &json, &bad)) {
			const char *name = config_setting_name(bad);
			snprintf(msg, sizeof msg,
				 "cannot convert \"%.64s\" to JSON (a string "
				 "that is not UTF-8?)",
				 name ? name : "(list element)");
			return fail_at(x, bad, what, msg);
		}
		bg_conf_put_str(k, base, json);
		return 0;
	}
	if (k->type == BG_CONF_BOOL) {
		bg_conf_set_int(k, base, config_setting_get_bool(s));
		return 0;
	}
	if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64) {
		int64_t v = config_setting_get_int64(s);
		if (bg_conf_check_int(k, v, msg, sizeof msg))
			return fail_at(x, s, what, msg);
		bg_conf_set_int(k, base, v);
		return 0;
	}
	if (parse_string(x, k, s, base, msg, sizeof msg))
		return fail_at(x, s, what, msg);
	return 0;
}

static void list_names(const struct bg_conf_key *keys, size_t n,
		       const char *group, char *out, size_t len)
{
	size_t off = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		if (!strcmp(keys[i].group, group))
			off += snprintf(out + off, len - off, "%s%s",
					off ? ", " : "", keys[i].name);
}

/* Walk the members of group setting grp: each must be a key of `group` in
 * keys[0..n). */
static int parse_members(struct load_ctx *x, const config_setting_t *grp,
			 const char *group, const struct bg_conf_key *keys,
			 size_t n, void *base)
{
	for (int i = 0; i < config_setting_length(grp); i++) {
		const config_setting_t *s = config_setting_get_elem(grp, i);
		const char *name = config_setting_name(s);
		char what[160], valid[512];
		snprintf(what, sizeof what, "%s.%s", group, name);
		const struct bg_conf_key *k = bg_conf_key_find(group, name);
		if (k == NULL) {
			list_names(keys, n, group, valid, sizeof valid);
			char msg[600];
			snprintf(msg, sizeof msg, "unknown key (valid: %s)",
				 valid);
			return fail_at(x, s, what, msg);
		}
		if (parse_value(x, k, s, base, what))
			return -1;
	}
	return 0;
}

static bool present(const config_setting_t *grp, const char *name)
{
	return config_setting_get_member(grp, name) != NULL;
}

/* The keys of a handler = "exec" agent type, after they were parsed. */
static int check_exec(struct load_ctx *x, const config_setting_t *s,
		      const struct bg_agent_type_conf *at, const char *what)
{
	char msg[256], bad[200];
	char *argv = NULL;
	if (at->plugin[0] != '\0')
		return fail_at(x, s, what,
			       "plugin is for handler = \"plugin\"; handler "
			       "\"exec\" runs command = \"program args\"");
	if (at->command[0] == '\0')
		return fail_at(x, s, what,
			       "handler \"exec\" requires command = "
			       "\"program args\"");
	if (bg_config_command_argv(at->command, &argv, bad, sizeof bad)) {
		snprintf(msg, sizeof msg, "command: %s",
			 bad[0] ? bad : "out of memory");
		return fail_at(x, s, what, msg);
	}
	free(argv);
	if (at->max_inflight > 1 && at->mode == BG_EXEC_PER_TASK)
		return fail_at(x, s, what,
			       "max_inflight > 1 needs mode = \"persistent\" "
			       "(a per_task program runs one task)");
	return 0;
}

static int parse_agent(struct load_ctx *x, const config_setting_t *s,
		       struct bg_agent_type_conf *at, int idx)
{
	char what[64], msg[256];
	snprintf(what, sizeof what, "agent_types[%d]", idx);
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return fail_at(x, s, what, "expected a group { name = ...; }");
	if (bg_conf_set_defaults(bg_conf_agent_keys, bg_conf_nagent_keys, at))
		return fail_at(x, s, what, "out of memory");
	if (parse_members(x, s, BG_CONF_AGENT_GROUP, bg_conf_agent_keys,
			  bg_conf_nagent_keys, at))
		return -1;
	for (size_t i = 0; i < bg_conf_nagent_keys; i++) {
		const struct bg_conf_key *k = &bg_conf_agent_keys[i];
		if ((k->flags & BG_CONF_REQUIRED) && !present(s, k->name)) {
			snprintf(msg, sizeof msg, "missing %s", k->name);
			return fail_at(x, s, what, msg);
		}
	}
	snprintf(what, sizeof what, "agent type \"%s\"", at->name);
	if (bg_conf_check_name(at->name, msg, sizeof msg))
		return fail_at(x, s, what, msg);
	if (at->handler == BG_HANDLER_EXEC)
		return check_exec(x, s, at, what);
	if (at->plugin[0] == '\0')
		return fail_at(x, s, what,
			       "handler \"plugin\" requires plugin = "
			       "\"path/to/handler.so\"");
	if (at->command[0] != '\0')
		return fail_at(x, s, what,
			       "command is for handler = \"exec\"; this agent "
			       "type has handler = \"plugin\"");
	return 0;
}

static int parse_agents(struct load_ctx *x, const config_setting_t *list,
			struct bg_config *cfg)
{
	int type = config_setting_type(list);
	if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
		return fail_at(x, list, BG_CONF_AGENT_GROUP,
			       "expected a list ( { ... }, { ... } )");
	int n = config_setting_length(list);
	cfg->agent_types = calloc(n ? n : 1, sizeof *cfg->agent_types);
	if (cfg->agent_types == NULL)
		return bg_conf_fail(x->e, "%s: out of memory", x->path);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(list, i);
		cfg->n_agent_types = i + 1;
		if (parse_agent(x, s, &cfg->agent_types[i], i))
			return -1;
		for (int j = 0; j < i; j++)
			if (!strcmp(cfg->agent_types[j].name,
				    cfg->agent_types[i].name))
				return fail_at(x, s, cfg->agent_types[i].name,
					       "duplicate agent type name");
	}
	return 0;
}

static bool is_group_name(const char *name)
{
	for (size_t i = 0; i < bg_conf_nkeys; i++)
		if (!strcmp(bg_conf_keys[i].group, name))
			return true;
	return false;
}

static int parse_root(struct load_ctx *x, const config_setting_t *root,
		      struct bg_config *cfg)
{
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = config_setting_get_elem(root, i);
		const char *name = config_setting_name(s);
		if (!strcmp(name, BG_CONF_AGENT_GROUP)) {
			if (parse_agents(x, s, cfg))
				return -1;
		} else if (!is_group_name(name)) {
			return fail_at(x, s, name,
				       "unknown key (valid: redis, worker, "
				       "pool, sandbox, paths, log, http, "
				       "agent_types)");
		} else if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
			return fail_at(x, s, name, "expected a group { ... }");
		} else if (parse_members(x, s, name, bg_conf_keys,
					 bg_conf_nkeys, cfg)) {
			return -1;
		}
	}
	return 0;
}

static int read_file(struct load_ctx *x, struct bg_config *cfg)
{
	config_t lc;
	config_init(&lc);
	config_set_include_dir(&lc, x->dir);
	int rc = 0;
	errno = 0;
	if (config_read_file(&lc, x->path) == CONFIG_TRUE) {
		rc = parse_root(x, config_root_setting(&lc), cfg);
	} else if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
		rc = bg_conf_fail(x->e, "%s: cannot read: %s", x->path,
				  strerror(errno ? errno : EIO));
	} else {
		char buf[PATH_MAX];
		rc = bg_conf_fail(
			x->e, "%s:%d: %s",
			file_name(x, config_error_file(&lc), buf, sizeof buf),
			config_error_line(&lc), config_error_text(&lc));
	}
	config_destroy(&lc);
	return rc;
}

static int load_file(const char *path, struct bg_config *cfg,
		     struct bg_conf_err *e)
{
	char *abs = realpath(path, NULL);
	if (abs == NULL)
		return bg_conf_fail(e, "%s: %s", path, strerror(errno));
	cfg->path = abs;
	char *dir = strdup(abs);
	if (dir == NULL)
		return bg_conf_fail(e, "%s: out of memory", path);
	char *slash = strrchr(dir, '/');
	slash[slash == dir ? 1 : 0] = '\0';
	struct load_ctx x = { abs, dir, e };
	int rc = read_file(&x, cfg);
	free(dir);
	return rc;
}

int bg_config_load(const char *path, struct bg_config *out, char *err,
		   size_t errlen)
{
	struct bg_conf_err e = { err, errlen };
	struct bg_config cfg = { 0 };
	int rc = bg_conf_set_defaults(bg_conf_keys, bg_conf_nkeys, &cfg);
	if (rc == 0 && path != NULL)
		rc = load_file(path, &cfg, &e);
	else if (rc == 0)
		rc = (cfg.path = strdup("")) ? 0 : -ENOMEM;
	if (rc == -ENOMEM)
		rc = bg_conf_fail(&e, "%s: out of memory",
				  path ? path : "config");
	if (rc == 0)
		rc = bg_conf_apply_env(&cfg, &e);
	if (rc == 0)
		rc = bg_conf_validate(&cfg, &e);
	if (rc) {
		bg_config_free(&cfg);
		memset(out, 0, sizeof *out);
		return -1;
	}
	*out = cfg;
	return 0;
}

void bg_config_free(struct bg_config *cfg)
{
	if (cfg == NULL)
		return;
	for (int i = 0; i < cfg->n_agent_types; i++) {
		bg_conf_free_strings(bg_conf_agent_keys, bg_conf_nagent_keys,
				     &cfg->agent_types[i]);
		bg_conf_sandbox_free(&cfg->agent_types[i]);
	}
	free(cfg->agent_types);
	bg_conf_free_strings(bg_conf_keys, bg_conf_nkeys, cfg);
	free(cfg->path);
	memset(cfg, 0, sizeof *cfg);
}

const struct bg_agent_type_conf *bg_config_agent_type(const struct bg_config *c,
						      const char *name)
{
	for (int i = 0; i < c->n_agent_types; i++)
		if (!strcmp(c->agent_types[i].name, name))
			return &c->agent_types[i];
	return NULL;
}

int bg_config_max_share(const struct bg_config *c)
{
	int m = 1;
	for (int i = 0; i < c->n_agent_types; i++) {
		const struct bg_agent_type_conf *t = &c->agent_types[i];
		if (t->handler == BG_HANDLER_EXEC &&
		    t->mode != BG_EXEC_PER_TASK && t->max_inflight > m)
			m = t->max_inflight;
	}
	return m;
}

const char *bg_config_default_path(void)
{
	const char *env = getenv("BYGATE_CONFIG");
	return env && env[0] ? env : BG_CONFIG_DEFAULT_PATH;
}
