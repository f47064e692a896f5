/* conf/print.c - the table printed three ways: the effective configuration
 * (bygated -T), the commented template etc/bygate.conf is made of, and the
 * Markdown key reference of docs/configuration.md. */
#include "conf/table.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The agent type the template shows (a config needs at least one). */
static const struct bg_agent_type_conf example_agent = {
	.name = "echo",
	.handler = BG_HANDLER_PLUGIN,
	.plugin = "/usr/local/lib/bygate/plugins/echo.so",
	.options_json = "{}",
	.sandbox_json = "{}",
	.env_json = "{}",
	.max_attempts = 1,
	.timeout_ms = 600000,
	.retry_backoff_ms = 1000,
	.retry_backoff_max_ms = 60000,
	.rate_period_ms = 1000,
	.mode = BG_EXEC_PERSISTENT,
	.max_inflight = 1,
	.max_line_bytes = 1048576,
};

/* A JSON object printed as a group with every value shown as "***",
 * except a group (a webhook trigger), where only its secret is. */
static void put_masked_group(FILE *f, const char *json)
{
	json_t *j = json_loads(json ? json : "{}", 0, NULL);
	const char *name;
	json_t *v;
	json_object_foreach(j, name, v) {
		if (!json_is_object(v))
			json_object_set_new(j, name, json_string("***"));
		else if (json_object_get(v, "secret"))
			json_object_set_new(v, "secret", json_string("***"));
	}
	char *masked = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)
			 : NULL;
	bg_conf_print_json_group(f, masked ? masked : "{}");
	free(masked);
	json_decref(j);
}

/* The value of k in base, or its default when base is NULL. */
static void put_value(FILE *f, const struct bg_conf_key *k, const void *base,
		      bool mask)
{
	switch (k->type) {
	case BG_CONF_INT:
	case BG_CONF_INT64: {
		long long v = base ? bg_conf_get_int(k, base) : k->def_int;
		fprintf(f, "%lld%s", v,
			v < INT32_MIN || v > INT32_MAX ? "L" : "");
		break;
	}
	case BG_CONF_ENUM:
		fprintf(f, "\"%s\"",
			bg_conf_enum_name(k,
					  base ? (int)bg_conf_get_int(k, base)
					       : (int)k->def_int));
		break;
	case BG_CONF_BOOL:
		fputs((base ? bg_conf_get_int(k, base) : k->def_int) ? "true"
								     : "false",
		      f);
		break;
	case BG_CONF_JSON: {
		const char *s = base ? bg_conf_get_str(k, base) : k->def_str;
		if (mask && (k->flags & BG_CONF_SECRET))
			put_masked_group(f, s);
		else
			bg_conf_print_json_group(f, s);
		break;
	}
	default: {
		const char *s = base ? bg_conf_get_str(k, base) : k->def_str;
		bool hide = mask && (k->flags & BG_CONF_SECRET) && s[0];
		bg_conf_print_string(f, hide ? "***" : s);
		break;
	}
	}
}

static const struct bg_conf_env *env_of(const struct bg_conf_key *k)
{
	for (size_t i = 0; i < bg_conf_nenvs; i++)
		if (!strcmp(bg_conf_envs[i].group, k->group) &&
		    !strcmp(bg_conf_envs[i].name, k->name))
			return &bg_conf_envs[i];
	return NULL;
}

/* Word-wrapped "# " comment lines at the given indentation (tabs), within
 * 78 columns. */
static void put_comment(FILE *f, const char *indent, const char *text)
{
	int width = 76 - 8 * (int)strlen(indent);
	while (*text) {
		int n = (int)strlen(text);
		if (n > width) {
			n = width;
			while (n > 0 && text[n] != ' ')
				n--;
			if (n == 0)
				n = width;
		}
		fprintf(f, "%s# %.*s\n", indent, n, text);
		text += n;
		while (*text == ' ')
			text++;
	}
}

/* "default 2000 ms; range 100..60000; env X; reload: SIGHUP" */
static void put_meta(FILE *f, const struct bg_conf_key *k)
{
	if (k->flags & BG_CONF_REQUIRED) {
		fputs("required", f);
	} else {
		fputs("default ", f);
		put_value(f, k, NULL, false);
		if (k->unit)
			fprintf(f, " %s", k->unit);
	}
	if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64)
		fprintf(f, "; %s%lld..%lld",
			k->flags & BG_CONF_POW2 ? "power of two in " : "range ",
			(long long)k->min, (long long)k->max);
	const struct bg_conf_env *ev = env_of(k);
	if (ev)
		fprintf(f, "; env %s%s%s%s", ev->var,
			ev->fallback ? " (or " : "",
			ev->fallback ? ev->fallback : "",
			ev->fallback ? ")" : "");
	fprintf(f, "; reload: %s",
		k->flags & BG_CONF_RELOAD ? "SIGHUP" : "restart");
}

static void put_key(FILE *f, const char *indent, const struct bg_conf_key *k,
		    const void *base, bool commented)
{
	if (commented) {
		char *meta = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&meta, &len);
		if (m) {
			put_meta(m, k);
			fclose(m);
		}
		put_comment(f, indent, k->doc);
		put_comment(f, indent, meta ? meta : "");
		free(meta);
	}
	fprintf(f, "%s%s = ", indent, k->name);
	put_value(f, k, base, !commented);
	fputs(";\n", f);
}

/* -T shows, above an agent type's own `sandbox` overrides, its effective
 * sandbox (the sandbox group's defaults, then its overrides) as a comment
 * (so the dump still loads back to an equal configuration). */
static void put_effective(FILE *f, const struct bg_config *cfg,
			  const struct bg_conf_key *k,
			  const struct bg_agent_type_conf *t)
{
	char *json = NULL;
	if (cfg == NULL || strcmp(k->name, "sandbox") ||
	    bg_config_sandbox_json(cfg, t, false, &json))
		return;
	fputs("\t\t# effective sandbox: ", f);
	for (const char *c = json; *c; c++) /* control bytes are \u-escaped */
		fputc(*c, f);
	fputs("\n", f);
	free(json);
}

static void put_agents(FILE *f, const struct bg_config *cfg,
		       const struct bg_agent_type_conf *at, int n,
		       bool commented)
{
	fputs("agent_types = (\n", f);
	for (int i = 0; i < n; i++) {
		fputs(i ? "\t},\n\t{\n" : "\t{\n", f);
		for (size_t j = 0; j < bg_conf_nagent_keys; j++) {
			const struct bg_conf_key *k = &bg_conf_agent_keys[j];
			if (j && commented)
				fputs("\n", f);
			put_effective(f, cfg, k, &at[i]);
			put_key(f, "\t\t", k, &at[i], commented);
		}
	}
	fputs(n ? "\t}\n);\n" : ");\n", f);
}

/* base NULL prints the defaults (the template). */
static void put_config(FILE *f, const struct bg_config *base, bool commented)
{
	const char *group = NULL;
	for (size_t i = 0; i < bg_conf_nkeys; i++) {
		const struct bg_conf_key *k = &bg_conf_keys[i];
		if (group == NULL || strcmp(group, k->group)) {
			if (group)
				fputs("};\n\n", f);
			group = k->group;
			fprintf(f, "%s = {\n", group);
		} else if (commented) {
			fputs("\n", f);
		}
		put_key(f, "\t", k, base, commented);
	}
	fputs("};\n\n", f);
}

void bg_config_dump(const struct bg_config *cfg, FILE *f)
{
	fprintf(f,
		"# bygate effective configuration: %s\n"
		"# (file, then environment; redis.password is masked)\n"
		"# redis cluster mode (file, then environment): %s\n\n",
		cfg->path && cfg->path[0] ? cfg->path : "(no file)",
		cfg->redis_cluster ? "yes" : "no");
	put_config(f, cfg, false);
	put_agents(f, cfg, cfg->agent_types, cfg->n_agent_types, false);
}

void bg_config_write_template(FILE *f)
{
	fputs("# bygate configuration (libconfig syntax). Every key is shown with\n"
	      "# its default, unit and allowed range, the by-framework environment\n"
	      "# variable that overrides it (the environment wins over this file),\n"
	      "# and how a change takes effect: \"reload: SIGHUP\" (kill -HUP\n"
	      "# bygated) or \"reload: restart\". Relative paths (plugin,\n"
	      "# state_dir, workspace_dir, child_path, log file) are resolved\n"
	      "# against the directory containing this file, and exec commands\n"
	      "# run in it. Unknown keys are errors. Check a file with\n"
	      "# `bygated -t`; print the effective configuration with\n"
	      "# `bygated -T`.\n\n",
	      f);
	put_config(f, NULL, true);
	put_comment(f, "",
		    "One entry per agent type this worker serves (at least "
		    "one).");
	put_agents(f, NULL, &example_agent, 1, true);
}

/* Markdown table cell text: '|', '<' and '>' escaped. */
static void put_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<' || *s == '>')
			fputs(*s == '<' ? "&lt;" : "&gt;", f);
		else if (*s == '|')
			fputs("\\|", f);
		else
			fputc(*s, f);
	}
}

static void put_allowed(FILE *f, const struct bg_conf_key *k)
{
	if (k->type == BG_CONF_INT || k->type == BG_CONF_INT64) {
		fprintf(f, "%s%lld..%lld",
			k->flags & BG_CONF_POW2 ? "power of two, " : "",
			(long long)k->min, (long long)k->max);
	} else if (k->type == BG_CONF_ENUM) {
		for (const struct bg_conf_name *e = k->names; e->name; e++)
			fprintf(f, "%s`%s`", e == k->names ? "" : ", ",
				e->name);
	} else if (k->type == BG_CONF_BOOL) {
		fputs("`true`, `false`", f);
	} else if (k->type == BG_CONF_JSON) {
		fputs("any group", f);
	} else {
		fputs(k->min ? "non-empty" : "any", f);
		if (k->type == BG_CONF_PATH)
			fputs(" path", f);
	}
}

static void put_md_row(FILE *f, const struct bg_conf_key *k)
{
	fprintf(f, "| `%s.%s` | ", k->group, k->name);
	if (k->flags & BG_CONF_REQUIRED) {
		fputs("required", f);
	} else {
		fputc('`', f);
		put_value(f, k, NULL, false);
		fprintf(f, "`%s%s", k->unit ? " " : "", k->unit ? k->unit : "");
	}
	fputs(" | ", f);
	put_allowed(f, k);
	const struct bg_conf_env *ev = env_of(k);
	if (ev)
		fprintf(f, " | `%s`%s%s%s", ev->var, ev->fallback ? ", `" : "",
			ev->fallback ? ev->fallback : "",
			ev->fallback ? "`" : "");
	else
		fputs(" | ", f);
	fprintf(f, " | %s | ", k->flags & BG_CONF_RELOAD ? "yes" : "no");
	put_cell(f, k->doc);
	fputs(" |\n", f);
}

void bg_config_write_markdown(FILE *f)
{
	fputs("| Key | Default | Allowed | Environment | SIGHUP | Meaning |\n"
	      "|---|---|---|---|---|---|\n",
	      f);
	for (size_t i = 0; i < bg_conf_nkeys; i++)
		put_md_row(f, &bg_conf_keys[i]);
	for (size_t i = 0; i < bg_conf_nagent_keys; i++)
		put_md_row(f, &bg_conf_agent_keys[i]);
}
