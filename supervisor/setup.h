/* supervisor/setup.h - bygated's start-up checks and resources
 * (setup.c). Each returns 0 or one of bygated's exit codes, having
 * logged why. */
#ifndef BG_SUPERVISOR_SETUP_H
#define BG_SUPERVISOR_SETUP_H

struct bg_config;
struct bg_daemon;
struct bg_spawn_identity;

/* mkdir -p: missing parents 0755, path itself 0750. 0 or -errno. */
int bg_setup_mkdir(const char *path);
/* Ownership and modes of state_dir and workspace_dir for the pool user,
 * and what it must reach (the child binary, workspace_dir, plugins). */
int bg_setup_dirs(const struct bg_config *cfg, const char *child,
		  const struct bg_spawn_identity *who);
/* bygated -t: every agent type's handler can start. A plugin is loaded by
 * a throwaway bygate-child started as the pool starts them (pool user,
 * sandbox); an exec program must be found (PATH, or the configuration
 * file's directory for a relative path) and executable by the pool user.
 * Each failure is printed to stderr naming the agent type. 0 or
 * BG_EXIT_CONFIG. */
int bg_setup_check_handlers(const struct bg_config *cfg, const char *child,
			    const struct bg_spawn_identity *who);
/* bygate-child next to bygated, else <prefix>/libexec/bygate/; malloc'd. */
char *bg_setup_child_path(void);
/* <state_dir>/bygated.lock, held for the process's lifetime. */
int bg_setup_lock(struct bg_daemon *d);
/* The LMDB state (none with paths.durability = "none"). */
int bg_setup_state(struct bg_daemon *d);

#endif
