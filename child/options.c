/* child/options.c - bg_options_get_int / bg_options_get_string of
 * include/bygate/handler.h: read members of an agent type's options JSON
 * in init() without the plugin linking a JSON library. */
#include "child/child.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parse options_json and find `key`: 0 with *root (caller decrefs) and
 * *val set, -ENOENT, -EINVAL. */
static int lookup(const char *options_json, const char *key, json_t **root,
		  json_t **val)
{
	*root = NULL;
	if (options_json == NULL || key == NULL)
		return -EINVAL;
	*root = json_loads(options_json, 0, NULL);
	if (!json_is_object(*root))
		return -EINVAL;
	*val = json_object_get(*root, key);
	return *val ? 0 : -ENOENT;
}

int bg_options_get_int(const char *options_json, const char *key,
		       long long *out)
{
	json_t *root, *val;
	int rc = lookup(options_json, key, &root, &val);
	if (rc == 0 && !json_is_integer(val))
		rc = -EINVAL;
	if (rc == 0)
		*out = json_integer_value(val);
	json_decref(root);
	return rc;
}

int bg_options_get_string(const char *options_json, const char *key, char **out)
{
	json_t *root, *val;
	int rc = lookup(options_json, key, &root, &val);
	if (rc == 0 && !json_is_string(val))
		rc = -EINVAL;
	if (rc == 0 && (*out = strdup(json_string_value(val))) == NULL)
		rc = -ENOMEM;
	json_decref(root);
	return rc;
}
