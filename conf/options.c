/* conf/options.c - an agent type's free-form `options` group: libconfig to
 * a JSON object (what the handler receives) and back to libconfig syntax
 * (bygated -T), so that a dump re-loads to the same JSON. */
#include "conf/table.h"

#include <jansson.h>
#include <libconfig.h>
#include <stdlib.h>
#include <string.h>

/* NULL on failure, with *bad the setting that could not be converted. */
static json_t *to_json(const config_setting_t *s, const config_setting_t **bad)
{
	json_t *v = NULL;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = json_integer(config_setting_get_int64(s));
		break;
	case CONFIG_TYPE_FLOAT:
		v = json_real(config_setting_get_float(s));
		break;
	case CONFIG_TYPE_BOOL:
		v = json_boolean(config_setting_get_bool(s));
		break;
	case CONFIG_TYPE_STRING:
		v = json_string(config_setting_get_string(s));
		break;
	case CONFIG_TYPE_GROUP:
		v = json_object();
		break;
	default: /* array, list */
		v = json_array();
		break;
	}
	if (v == NULL)
		*bad = s;
	if (v == NULL || !config_setting_is_aggregate(s))
		return v;
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *m = config_setting_get_elem(s, i);
		json_t *mv = to_json(m, bad);
		int rc = -1;
		if (mv && json_is_object(v))
			rc = json_object_set_new(v, config_setting_name(m), mv);
		else if (mv)
			rc = json_array_append_new(v, mv);
		if (rc) {
			if (mv)
				*bad = m;
			json_decref(v);
			return NULL;
		}
	}
	return v;
}

int bg_conf_options_to_json(const config_setting_t *group, char **out,
			    const config_setting_t **bad)
{
	*bad = group;
	json_t *v = to_json(group, bad);
	*out = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(v);
	return *out ? 0 : -1;
}

/* libconfig string escapes: \\ \" \n \r \t \f and \xNN for other control
 * bytes; bytes >= 0x80 pass through unchanged. */
static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = strchr("\\\"\n\r\t\f", *p);
		if (esc)
			fprintf(f, "\\%c", "\\\"nrtf"[esc - "\\\"\n\r\t\f"]);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Integers beyond 32 bits need libconfig's L suffix. */
static bool needs_l(json_int_t v)
{
	return v < INT32_MIN || v > INT32_MAX;
}

/* The shortest %g form that reads back as d, always with a '.' or an
 * exponent so libconfig parses a float. */
static void put_real(FILE *f, double d)
{
	char buf[64];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".eE") == NULL)
		strcat(buf, ".0");
	fputs(buf, f);
}

/* A JSON array prints as a libconfig array [..] when its elements are
 * scalars of one libconfig type, else as a list (..). */
static int scalar_class(const json_t *v)
{
	if (json_is_integer(v))
		return needs_l(json_integer_value(v)) ? 2 : 1;
	if (json_is_real(v))
		return 3;
	if (json_is_string(v))
		return 4;
	if (json_is_boolean(v))
		return 5;
	return 0;
}

static bool is_libconfig_array(const json_t *a)
{
	size_t i;
	const json_t *v;
	int cls = -1;
	json_array_foreach(a, i, v) {
		int c = scalar_class(v);
		if (c == 0 || (cls != -1 && c != cls))
			return false;
		cls = c;
	}
	return true;
}

static void put_json(FILE *f, const json_t *v)
{
	size_t i;
	const char *key;
	json_t *m;
	if (json_is_object(v)) {
		fputs("{", f);
		json_object_foreach((json_t *)v, key, m) {
			if (json_is_null(m))
				continue;
			fprintf(f, " %s = ", key);
			put_json(f, m);
			fputs(";", f);
		}
		fputs(" }", f);
	} else if (json_is_array(v)) {
		bool arr = is_libconfig_array(v);
		fputs(arr ? "[" : "(", f);
		json_array_foreach(v, i, m) {
			fputs(i ? ", " : " ", f);
			put_json(f, m);
		}
		fputs(arr ? " ]" : " )", f);
	} else if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		fprintf(f, "%lld%s", (long long)n, needs_l(n) ? "L" : "");
	} else if (json_is_real(v)) {
		put_real(f, json_real_value(v));
	} else if (json_is_string(v)) {
		put_string(f, json_string_value(v));
	} else {
		fputs(json_is_true(v) ? "true" : "false", f);
	}
}

void bg_conf_print_json_group(FILE *f, const char *json)
{
	json_t *v = json_loads(json, 0, NULL);
	if (json_is_object(v))
		put_json(f, v);
	else
		fputs("{ }", f);
	json_decref(v);
}

void bg_conf_print_string(FILE *f, const char *s)
{
	put_string(f, s);
}
