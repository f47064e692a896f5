/* conf/table.h - private to conf/ (and its unit test): the declarative key
 * table (STYLE 5) and the helpers the loader, the environment overrides, the
 * validation and the printers share. Not part of the component interface. */
#ifndef BG_CONF_TABLE_H
#define BG_CONF_TABLE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

enum bg_conf_type {
	BG_CONF_INT,   /* int, bounds [min, max] */
	BG_CONF_INT64, /* int64_t, bounds [min, max] */
	BG_CONF_STR,   /* char *, min = minimum length in bytes */
	BG_CONF_PATH,  /* char *, a relative value is resolved against the
			  directory of the file; "" stays "" */
	BG_CONF_ENUM,  /* an int-sized enum, spelled as one of names[] */
	BG_CONF_JSON,  /* char *, a libconfig group stored as a JSON object */
	BG_CONF_BOOL,  /* bool, spelled true or false; read as 0 or 1 */
};

#define BG_CONF_RELOAD 0x1u   /* SIGHUP applies a change of this key */
#define BG_CONF_SECRET 0x2u   /* masked in bg_config_dump */
#define BG_CONF_POW2 0x4u     /* must be a power of two */
#define BG_CONF_REQUIRED 0x8u /* must be present in the file */

struct bg_conf_name {
	const char *name;
	int value;
};

struct bg_conf_key {
	const char *group; /* "redis", ..., or "agent_types" for per-type keys */
	const char *name;
	enum bg_conf_type type;
	unsigned flags;
	int64_t min, max;
	int64_t def_int;		  /* INT, INT64, ENUM */
	const char *def_str;		  /* STR, PATH, JSON */
	const struct bg_conf_name *names; /* ENUM, ends with a NULL name */
	const char *unit;		  /* "ms", "s", "bytes" or NULL */
	size_t offset; /* in struct bg_config, or bg_agent_type_conf */
	const char *doc;
};

/* A by-framework variable (WIRE 1.1) that overrides one key. */
struct bg_conf_env {
	const char *var;
	const char *fallback; /* read when var is unset, or NULL */
	const char *group;
	const char *name;
};

#define BG_CONF_AGENT_GROUP "agent_types"

extern const struct bg_conf_key bg_conf_keys[];
extern const size_t bg_conf_nkeys;
extern const struct bg_conf_key bg_conf_agent_keys[];
extern const size_t bg_conf_nagent_keys;
extern const struct bg_conf_env bg_conf_envs[];
extern const size_t bg_conf_nenvs;

/* Where an error message goes; bg_conf_fail formats into it and returns -1,
 * so callers can `return bg_conf_fail(...)`. */
struct bg_conf_err {
	char *buf;
	size_t len;
};
int bg_conf_fail(struct bg_conf_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

const struct bg_conf_key *bg_conf_key_find(const char *group, const char *name);
const char *bg_conf_enum_name(const struct bg_conf_key *k, int value);
int bg_conf_enum_value(const struct bg_conf_key *k, const char *name,
		       int *value);

/* Typed access to the destination of k inside base (a struct bg_config or
 * a struct bg_agent_type_conf, as k's table says); INT, INT64, ENUM and
 * BOOL (0 or 1) go through the _int pair. */
int64_t bg_conf_get_int(const struct bg_conf_key *k, const void *base);
void bg_conf_set_int(const struct bg_conf_key *k, void *base, int64_t v);
const char *bg_conf_get_str(const struct bg_conf_key *k, const void *base);
/* Takes ownership of s (may be NULL: the key then reads as ""). */
void bg_conf_put_str(const struct bg_conf_key *k, void *base, char *s);

/* Bounds of an integer or enum-free value; on failure writes the reason
 * ("70000 is out of range (allowed 1..65535)") to msg and returns -1. */
int bg_conf_check_int(const struct bg_conf_key *k, int64_t v, char *msg,
		      size_t n);
int bg_conf_check_str(const struct bg_conf_key *k, const char *s, char *msg,
		      size_t n);

/* Fill every key of keys[0..n) in base with its default (strings are
 * duplicated). 0 or -ENOMEM. */
int bg_conf_set_defaults(const struct bg_conf_key *keys, size_t n, void *base);
void bg_conf_free_strings(const struct bg_conf_key *keys, size_t n, void *base);

/* Environment overrides (WIRE 1.1) and the key-schema rule; cfg->path
 * names the file in messages. 0 or -1 with a message naming the variable. */
int bg_conf_apply_env(struct bg_config *cfg, struct bg_conf_err *e);

/* Cross-key validation after the environment is applied. */
int bg_conf_validate(struct bg_config *cfg, struct bg_conf_err *e);
/* sandbox.c: resolve every agent type's effective sandbox (defaults, then
 * its `sandbox` group) and check its `env`. 0 or -1 with the message. */
int bg_conf_sandbox_resolve(struct bg_config *cfg, struct bg_conf_err *e);
/* What bg_conf_sandbox_resolve allocated for agent type t. */
void bg_conf_sandbox_free(struct bg_agent_type_conf *t);
/* 0 when s may be a worker id or agent type name: 1..128 bytes, no '/',
 * whitespace, control characters or braces, not "." or "..". Otherwise -1
 * and the reason in msg. */
int bg_conf_check_name(const char *s, char *msg, size_t n);

/* The first table key whose value differs between a and b, considering only
 * keys SIGHUP cannot reload when fixed_only; agent types compare as a whole
 * (returned as the first agent key, "agent_types.name"). NULL if equal. */
const struct bg_conf_key *bg_conf_first_change(const struct bg_config *a,
					       const struct bg_config *b,
					       bool fixed_only);

/* options group -> JSON object text (malloc'd) into *out. On failure
 * (a string that is not UTF-8, or no memory) -1 and *bad is the setting
 * that could not be converted. */
struct config_setting_t;
int bg_conf_options_to_json(const struct config_setting_t *group, char **out,
			    const struct config_setting_t **bad);
/* Print a JSON object text as a libconfig group (bg_config_dump). */
void bg_conf_print_json_group(FILE *f, const char *json);
/* Print s as a quoted libconfig string. */
void bg_conf_print_string(FILE *f, const char *s);

#endif
