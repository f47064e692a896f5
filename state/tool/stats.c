/* state/tool/stats.c - bygate-state stats: map size and use, entries per
 * database, journal depth and reader slots (bg_state_get_stats), as text
 * or JSON. */
#include <stdio.h>

#include "state/state.h"
#include "state/tool/tool.h"

static void human(char *out, size_t size, size_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

int bg_tool_stats(struct bg_state *st, const struct bg_tool_args *a)
{
	struct bg_state_stats s;
	if (bg_state_get_stats(st, &s)) {
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
		return BG_TOOL_EXIT_OPEN;
	}
	if (a->json) {
		json_t *entries = json_object();
		for (int db = 0; db < BG_DB__COUNT; db++)
			json_object_set_new(
				entries, bg_state_db_name(db),
				json_integer((json_int_t)s.entries[db]));
		json_t *root = json_pack("{s:I s:I s:o s:I s:i s:i s:i}",
					 "map_size", (json_int_t)s.map_size,
					 "map_used", (json_int_t)s.map_used,
					 "entries", entries, "journal_depth",
					 (json_int_t)s.entries[BG_DB_JOURNAL],
					 "readers_used", (int)s.readers_used,
					 "readers_max", (int)s.readers_max,
					 "stale_readers", s.stale_readers);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(root);
		return BG_TOOL_EXIT_OK;
	}
	char size[32], used[32];
	human(size, sizeof size, s.map_size);
	human(used, sizeof used, s.map_used);
	printf("map size       %s (%zu bytes)\n", size, s.map_size);
	printf("map used       %s (%zu bytes, %.1f%%)\n", used, s.map_used,
	       s.map_size ? 100.0 * (double)s.map_used / (double)s.map_size
			  : 0.0);
	printf("entries       ");
	for (int db = 0; db < BG_DB__COUNT; db++)
		printf(" %s %zu%s", bg_state_db_name(db), s.entries[db],
		       db + 1 < BG_DB__COUNT ? "," : "\n");
	printf("journal depth  %zu\n", s.entries[BG_DB_JOURNAL]);
	printf("readers        %u used of %u, %d stale\n", s.readers_used,
	       s.readers_max, s.stale_readers);
	return BG_TOOL_EXIT_OK;
}
