/* tests/plugins/fdlist.c - answers the space-separated list of the file
 * descriptors open in the child (from /proc/self/fd, without the one used
 * to list it), so a test can check that a child inherits only fds 0-5. */
#include <bygate/handler.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FDLIST_MAX 256

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int fdlist_process(void *state, const struct bg_task *task,
			  struct bg_ctx *ctx)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return bg_ctx_fail(ctx, "cannot open /proc/self/fd");
	int fds[FDLIST_MAX], n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < FDLIST_MAX) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd != dirfd(d))
			fds[n++] = fd;
	}
	closedir(d);
	qsort(fds, (size_t)n, sizeof(int), cmp_int);
	char text[FDLIST_MAX * 12] = "";
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%d",
					i ? " " : "", fds[i]);
	return bg_ctx_result(ctx, NULL, text, NULL, NULL);
}

BG_HANDLER_EXPORT const struct bg_handler bg_handler = {
	.abi_version = BG_HANDLER_ABI_VERSION,
	.name = "fdlist",
	.process = fdlist_process,
};
