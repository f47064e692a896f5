/* supervisor/pool_config.c - the CONFIG record every bygate-child is sent
 * after its start: the agent types of the configuration (name, handler,
 * sandbox, exec command and limits) packed once per configuration. */
#include "supervisor/pool_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/log.h"

/* Strings of one agent type's CONFIG fields that cfg does not hold. */
struct config_scratch {
	char *argv;    /* JSON array, malloc'd */
	char *sandbox; /* JSON object, malloc'd */
	char max_inflight[16];
	char max_line[24];
};

/* The enum bg_conf_type_field fields of agent type t into f[]; `dir` is
 * the configuration file's directory, where exec programs run. */
static int config_fields(const struct bg_config *cfg,
			 const struct bg_agent_type_conf *t, const char *dir,
			 struct config_scratch *x, struct bg_str *f)
{
	for (int k = 0; k < BG_KF__COUNT; k++)
		f[k] = bg_str_c("");
	f[BG_KF_NAME] = bg_str_c(t->name);
	if (bg_config_sandbox_json(cfg, t, true, &x->sandbox))
		return -ENOMEM;
	f[BG_KF_SANDBOX] = bg_str_c(x->sandbox);
	f[BG_KF_OPTIONS] = bg_str_c(t->options_json ? t->options_json : "{}");
	if (t->handler != BG_HANDLER_EXEC) {
		f[BG_KF_KIND] = bg_str_c("plugin");
		f[BG_KF_PLUGIN] = bg_str_c(t->plugin);
		return 0;
	}
	char err[200];
	if (bg_config_command_argv(t->command, &x->argv, err, sizeof(err)))
		return -EINVAL; /* the loader validated it: out of memory */
	snprintf(x->max_inflight, sizeof(x->max_inflight), "%d",
		 t->max_inflight);
	snprintf(x->max_line, sizeof(x->max_line), "%d", t->max_line_bytes);
	f[BG_KF_KIND] = bg_str_c("exec");
	f[BG_KF_ARGV] = bg_str_c(x->argv);
	f[BG_KF_WORKDIR] = bg_str_c(dir);
	f[BG_KF_MODE] = bg_str_c(t->mode == BG_EXEC_PER_TASK ? "per_task"
							     : "persistent");
	f[BG_KF_MAX_INFLIGHT] = bg_str_c(x->max_inflight);
	f[BG_KF_MAX_LINE] = bg_str_c(x->max_line);
	return 0;
}

/* Whether type i goes into the CONFIG: every type when all are left out
 * (a child must then say why it cannot serve, and nothing is lost). */
static bool config_has(const struct bg_pool *p, int i)
{
	if (p->type_left_out == NULL || i >= p->n_types || !p->type_left_out[i])
		return true;
	for (int k = 0; k < p->n_types; k++)
		if (!p->type_left_out[k])
			return false;
	return true;
}

/* Pack the agent types of p->cfg that `has` (config_has, or the one
 * `only` >= 0) into out (empty before). */
static int pack_config(struct bg_pool *p, int only, struct bg_buf *out)
{
	const struct bg_config *cfg = p->cfg;
	int n = 0;
	for (int i = 0; i < cfg->n_agent_types; i++)
		n += only >= 0 ? i == only : config_has(p, i);
	uint32_t nf = (uint32_t)(1 + BG_CONF_FIELDS_PER_TYPE * n);
	struct bg_str *v = calloc(nf, sizeof(*v));
	struct config_scratch *x = calloc((size_t)(n ? n : 1), sizeof(*x));
	char *dir = strdup(cfg->path && cfg->path[0] ? cfg->path : "/");
	int rc = v && x && dir ? 0 : -ENOMEM;
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	char count[16];
	snprintf(count, sizeof(count), "%d", n);
	if (rc == 0)
		v[0] = bg_str_c(count);
	for (int i = 0, k = 0; rc == 0 && i < cfg->n_agent_types; i++)
		if (only >= 0 ? i == only : config_has(p, i)) {
			rc = config_fields(cfg, &cfg->agent_types[i], dir,
					   &x[k],
					   &v[1 + BG_CONF_FIELDS_PER_TYPE * k]);
			k++;
		}
	if (rc == 0)
		rc = bg_rec_pack(out, v, nf);
	for (int i = 0; x && i < n; i++) {
		free(x[i].argv);
		free(x[i].sandbox);
	}
	free(x);
	free(v);
	free(dir);
	return rc;
}

int bg_pool_build_config(struct bg_pool *p)
{
	int n = 0;
	for (int i = 0; i < p->cfg->n_agent_types; i++)
		n += config_has(p, i);
	p->config_partial = n < p->cfg->n_agent_types;
	return pack_config(p, -1, &p->config_payload);
}

int bg_pool_build_retry_config(struct bg_pool *p, int type)
{
	bg_buf_reset(&p->retry_config);
	if (type < 0 || type >= p->cfg->n_agent_types)
		return -EINVAL;
	return pack_config(p, type, &p->retry_config);
}

bool bg_pool_nothing_loads(const struct bg_pool *p)
{
	for (int i = 0; i < p->n_types; i++)
		if (!p->type_left_out[i])
			return false;
	return p->n_types > 0;
}

static int type_index(const struct bg_pool *p, const char *name, size_t len)
{
	for (int i = 0; i < p->n_types && i < p->cfg->n_agent_types; i++) {
		const char *t = p->cfg->agent_types[i].name;
		if (strlen(t) == len && memcmp(t, name, len) == 0)
			return i;
	}
	return -1;
}

static void rebuild(struct bg_pool *p)
{
	bg_buf_reset(&p->config_payload);
	if (bg_pool_build_config(p) != 0)
		bg_error("cannot rebuild the children's CONFIG: out of memory");
}

bool bg_pool_config_fatal(struct bg_pool *p, const char *text, size_t len)
{
	static const char pre[] = "agent type '";
	size_t np = sizeof(pre) - 1;
	if (len <= np || memcmp(text, pre, np) != 0)
		return false;
	const char *name = text + np;
	const char *end = memchr(name, '\'', len - np);
	int i = end ? type_index(p, name, (size_t)(end - name)) : -1;
	if (i < 0)
		return false;
	bool changed = p->type_failure[i] == NULL;
	free(p->type_failure[i]);
	p->type_failure[i] = strndup(text, len);
	if (changed)
		p->type_retry_at[i] =
			bg_pool_mono_ms() +
			bg_pool_retry_delay_ms(p, p->type_tries[i]);
	if (!p->type_left_out[i]) {
		p->type_left_out[i] = true;
		bg_error("agent type %s cannot be served (%.*s): no longer "
			 "read nor routed here; the children are started "
			 "without it, and a spare child tries it again with "
			 "back-off up to %d ms until it loads (or a reload)",
			 p->cfg->agent_types[i].name, (int)len, text,
			 p->cfg->respawn_backoff_max_ms);
		rebuild(p);
	}
	return changed;
}

bool bg_pool_config_hello(struct bg_pool *p, const char *names, size_t len,
			  bool spare)
{
	bool changed = false;
	const char *s = names, *end = names + len;
	while (s < end) {
		const char *c = memchr(s, ',', (size_t)(end - s));
		const char *e = c ? c : end;
		int i = type_index(p, s, (size_t)(e - s));
		if (i >= 0 && !spare)
			p->type_tries[i] = 0;
		if (i >= 0 && p->type_failure[i] != NULL) {
			free(p->type_failure[i]);
			p->type_failure[i] = NULL;
			p->type_left_out[i] = false;
			changed = true;
			bg_info("agent type %s is served again (%s loaded it)",
				p->cfg->agent_types[i].name,
				spare ? "a spare child" : "a child");
		}
		s = e + 1;
	}
	if (!changed)
		return false;
	/* Children started without a type that is back are replaced, one
	 * at a time (recycling children get no task meanwhile); slots
	 * waiting out a respawn back-off (their children died of it) start
	 * now. */
	rebuild(p);
	for (int k = 0; k < p->n; k++) {
		struct bg_slot *sl = &p->c[k];
		if (sl->partial && sl->pid > 0)
			sl->recycling = true;
		if (sl->pid <= 0 && sl->state == SLOT_EMPTY) {
			sl->respawn_at_ms = 0;
			sl->quick_deaths = 0;
		}
	}
	return true;
}
