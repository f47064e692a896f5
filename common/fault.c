/* common/fault.c - named fault-injection points driven by BYGATE_FAULT. */
#include "common/fault.h"

#include <stdlib.h>
#include <string.h>

static struct {
	int init; /* 0 unknown, 1 off, 2 armed */
	char point[128];
	long nth;
	long seen;
} g_fault;

static void fault_init(void)
{
	const char *v = getenv("BYGATE_FAULT");
	g_fault.init = 1;
	if (v == NULL || *v == '\0')
		return;
	const char *colon = strchr(v, ':');
	size_t n = colon ? (size_t)(colon - v) : strlen(v);
	if (n >= sizeof(g_fault.point))
		return;
	memcpy(g_fault.point, v, n);
	g_fault.point[n] = '\0';
	g_fault.nth = colon ? strtol(colon + 1, NULL, 10) : 1;
	if (g_fault.nth < 1)
		g_fault.nth = 1;
	g_fault.init = 2;
}

bool bg_fault_hit(const char *point)
{
	if (g_fault.init == 0)
		fault_init();
	if (g_fault.init != 2 || strcmp(point, g_fault.point) != 0)
		return false;
	return ++g_fault.seen == g_fault.nth;
}
