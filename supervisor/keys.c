/* supervisor/keys.c - bygated's shorthand for the one key builder
 * (wire/keys.h) with the configured schema: a malloc'd key, NULL when the
 * id is unusable or memory ran out. */
#include <stdlib.h>

#include "supervisor/daemon.h"
#include "wire/keys.h"

char *bg_dkey_s(const struct bg_daemon *d, enum bg_key_kind kind,
		struct bg_str id)
{
	struct bg_buf b = { 0 };
	if (bg_key_build(&b, d->cfg->key_schema, kind, id, bg_str_c(""),
			 bg_str_c("")) != 0) {
		bg_buf_free(&b);
		return NULL;
	}
	return bg_buf_steal(&b);
}

char *bg_dkey(const struct bg_daemon *d, enum bg_key_kind kind, const char *id)
{
	return bg_dkey_s(d, kind, bg_str_c(id));
}
