/* common/landlock.c - raw Landlock system calls and the ABI probe
 * (common/landlock.h). */
#include "common/landlock.h"

#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

int bg_landlock_create(const struct bg_landlock_attr *attr, unsigned size,
		       unsigned flags)
{
	long fd = syscall(SYS_landlock_create_ruleset, attr, size, flags);
	return fd == -1 ? -errno : (int)fd;
}

int bg_landlock_add_rule(int ruleset, int type, const void *rule)
{
	return syscall(SYS_landlock_add_rule, ruleset, type, rule, 0) == -1
		       ? -errno
		       : 0;
}

int bg_landlock_restrict_self(int ruleset)
{
	return syscall(SYS_landlock_restrict_self, ruleset, 0) == -1 ? -errno
								     : 0;
}

int bg_landlock_abi(void)
{
	return bg_landlock_create(NULL, 0, BG_LL_CREATE_VERSION);
}

uint64_t bg_landlock_fs_rights(int abi)
{
	uint64_t r = (BG_LL_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
	if (abi >= 2)
		r |= BG_LL_FS_REFER;
	if (abi >= 3)
		r |= BG_LL_FS_TRUNCATE;
	if (abi >= 5)
		r |= BG_LL_FS_IOCTL_DEV;
	return r;
}

unsigned bg_landlock_attr_size(int abi)
{
	if (abi >= 6)
		return sizeof(struct bg_landlock_attr);
	if (abi >= 4)
		return offsetof(struct bg_landlock_attr, scoped);
	return offsetof(struct bg_landlock_attr, handled_access_net);
}
