/* common/dirmake.c - see dirmake.h. */
#include "common/dirmake.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bg_dir_make_below(const char *path, mode_t mode)
{
	if (path == NULL)
		return -EINVAL;
	const char *name = strrchr(path, '/');
	if (name == NULL || name == path || name[1] == '\0')
		return -EINVAL;
	char parent[PATH_MAX];
	size_t n = (size_t)(name - path);
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, n);
	parent[n] = '\0';
	name++;
	int dfd = open(parent, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd == -1)
		return -errno;
	int rc = 0;
	struct stat st;
	if (mkdirat(dfd, name, mode) == -1) {
		rc = -errno;
		if (rc == -EEXIST &&
		    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			rc = 0;
	}
	close(dfd);
	return rc;
}
