/* supervisor/spawn.h - start one bygate-child under the pool's identity.
 *
 * What a child started by bg_spawn_child is guaranteed, before its first
 * instruction of bygate-child runs (each step is checked; a failed one is
 * reported back and the child never runs):
 *
 *   - bygated root (identity.privileged): the child is PID 1 of a new PID
 *     namespace (clone(CLONE_NEWPID)): when it dies every process it
 *     started dies with it, and it cannot name bygated or another child by
 *     pid. It runs as identity.uid / identity.gid with no supplementary
 *     group, an empty capability bounding set, no ambient, permitted,
 *     effective or inheritable capability.
 *   - bygated not root: same uid as bygated, no PID namespace; everything
 *     below still holds.
 *   - fds: 0 = /dev/null, 1 and 2 = out_fd (a pipe bygated reads), 3, 4, 5 =
 *     fds[0..2]; nothing else is open.
 *   - signal dispositions default, signal mask empty, its own process group
 *     (pgid = the pid bg_spawn_child returns, as bygated sees it).
 *   - PR_SET_PDEATHSIG(SIGKILL), set after the user switch (which would
 *     clear it) and checked against bygated's pidfd for the race: if
 *     bygated died before that, the child exits at once.
 *   - environment: only the built one (bg_spawn_prepare): PATH, LANG, LC_*,
 *     TZ, and BYGATE_FAULT, ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS when
 *     bygated has them (fault points, sanitizer runs). Nothing else of
 *     bygated's environment (REDIS_PASSWORD, BYGATE_CONFIG...).
 *
 * The returned pid is the child's pid in bygated's namespace; inside its
 * own namespace the child sees getpid() == 1 and getppid() == 0. */
#ifndef BG_SUPERVISOR_SPAWN_H
#define BG_SUPERVISOR_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Who the children run as. */
struct bg_spawn_identity {
	bool privileged; /* bygated is root: switch user, new PID namespace */
	uid_t uid; /* the pool user (bygated's own uid when !privileged) */
	gid_t gid;
	char user[64]; /* for log lines */
	char group[64];
};

/* Resolve pool.user / pool.group (group "" = the user's primary group)
 * into *out when bygated runs as root; otherwise fill *out with bygated's
 * own uid and gid and privileged = false (the names are then not looked
 * up). 0, or -1 with a message for the operator in err (a missing user
 * names the command that creates it). */
int bg_spawn_resolve(const char *user, const char *group,
		     struct bg_spawn_identity *out, char *err, size_t errlen);

/* Everything a spawn needs that is prepared once: the built environment,
 * /dev/null, a pidfd of bygated, the highest capability number. */
struct bg_spawner;

int bg_spawn_prepare(const struct bg_spawn_identity *who,
		     struct bg_spawner **out, char *err, size_t errlen);
void bg_spawn_free(struct bg_spawner *s);

/* Start `path` with argv as described above. fds[0..2] become fds 3, 4, 5
 * of the child, out_fd its 1 and 2; all four must be above 9 (so that the
 * child's dup2s never clobber one another); the caller keeps (and closes)
 * them.
 * Returns 0 and the pid once the child has executed `path`; -errno with a
 * message naming the failed step in err otherwise (the child, if one was
 * created, has been reaped). */
int bg_spawn_child(const struct bg_spawner *s, const char *path,
		   char *const argv[], const int fds[3], int out_fd, pid_t *pid,
		   char *err, size_t errlen);

#endif
