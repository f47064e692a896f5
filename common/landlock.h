/* common/landlock.h - the Landlock kernel interface bygate uses (ABI 1-7),
 * defined here because Debian 12's linux-libc-dev (6.1) predates network
 * rules (ABI 4) and scopes (ABI 6). The child builds its rulesets with it;
 * bygated probes the ABI at start to say what the kernel provides. */
#ifndef BG_COMMON_LANDLOCK_H
#define BG_COMMON_LANDLOCK_H

#include <stdint.h>

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes its size, so
 * older kernels are given the prefix they know (bg_landlock_attr_size). */
struct bg_landlock_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

struct bg_landlock_path_rule {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct bg_landlock_port_rule {
	uint64_t allowed_access;
	uint64_t port;
};

#define BG_LL_RULE_PATH 1
#define BG_LL_RULE_PORT 2
#define BG_LL_CREATE_VERSION (1u << 0)

#define BG_LL_FS_EXECUTE (1ull << 0)
#define BG_LL_FS_WRITE_FILE (1ull << 1)
#define BG_LL_FS_READ_FILE (1ull << 2)
#define BG_LL_FS_READ_DIR (1ull << 3)
#define BG_LL_FS_REMOVE_DIR (1ull << 4)
#define BG_LL_FS_REMOVE_FILE (1ull << 5)
#define BG_LL_FS_MAKE_CHAR (1ull << 6)
#define BG_LL_FS_MAKE_DIR (1ull << 7)
#define BG_LL_FS_MAKE_REG (1ull << 8)
#define BG_LL_FS_MAKE_SOCK (1ull << 9)
#define BG_LL_FS_MAKE_FIFO (1ull << 10)
#define BG_LL_FS_MAKE_BLOCK (1ull << 11)
#define BG_LL_FS_MAKE_SYM (1ull << 12)
#define BG_LL_FS_REFER (1ull << 13)	/* ABI 2 */
#define BG_LL_FS_TRUNCATE (1ull << 14)	/* ABI 3 */
#define BG_LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */

#define BG_LL_NET_BIND_TCP (1ull << 0)	  /* ABI 4 */
#define BG_LL_NET_CONNECT_TCP (1ull << 1) /* ABI 4 */

#define BG_LL_SCOPE_ABSTRACT_UNIX (1ull << 0) /* ABI 6 */
#define BG_LL_SCOPE_SIGNAL (1ull << 1)	      /* ABI 6 */

/* The rights on regular files (a path rule on a file may hold no other). */
#define BG_LL_FS_FILE_RIGHTS                                                   \
	(BG_LL_FS_EXECUTE | BG_LL_FS_WRITE_FILE | BG_LL_FS_READ_FILE |         \
	 BG_LL_FS_TRUNCATE | BG_LL_FS_IOCTL_DEV)

/* The Landlock ABI of the running kernel: >= 1, or a negative errno
 * (-ENOSYS: not built in; -EOPNOTSUPP: disabled at boot). */
int bg_landlock_abi(void);
/* Every file-system right the given ABI knows. */
uint64_t bg_landlock_fs_rights(int abi);
/* The size of struct bg_landlock_attr the given ABI accepts. */
unsigned bg_landlock_attr_size(int abi);

int bg_landlock_create(const struct bg_landlock_attr *attr, unsigned size,
		       unsigned flags);
int bg_landlock_add_rule(int ruleset, int type, const void *rule);
int bg_landlock_restrict_self(int ruleset);

#endif
