/* state/tool/items.c - bygate-state's lists of owned (stream, entry id)
 * pairs: the records a `get --session` selects, the entries and streams
 * `check` asks Redis about. A handful to a few thousand: searched
 * linearly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/tool/tool.h"

int bg_tool_items_add(struct bg_tool_items *l, struct bg_str stream,
		      struct bg_str id, char kind)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct bg_tool_item *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct bg_tool_item it = { bg_str_dup(stream), bg_str_dup(id),
				   stream.len, id.len, kind };
	if (it.stream == NULL || it.id == NULL) {
		free(it.stream);
		free(it.id);
		return -ENOMEM;
	}
	l->v[l->n++] = it;
	return 0;
}

bool bg_tool_item_is(const struct bg_tool_item *it, struct bg_str stream,
		     struct bg_str id)
{
	return it->slen == stream.len && it->ilen == id.len &&
	       memcmp(it->stream, stream.p, stream.len) == 0 &&
	       memcmp(it->id, id.p, id.len) == 0;
}

const struct bg_tool_item *bg_tool_items_find(const struct bg_tool_items *l,
					      struct bg_str stream,
					      struct bg_str id)
{
	for (size_t i = 0; i < l->n; i++)
		if (bg_tool_item_is(&l->v[i], stream, id))
			return &l->v[i];
	return NULL;
}

void bg_tool_items_free(struct bg_tool_items *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].stream);
		free(l->v[i].id);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}
