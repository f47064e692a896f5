/* supervisor/sandbox.c - the start-up check of the children's sandbox
 * (supervisor/sandbox.h). */
#include "supervisor/sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fault.h"
#include "common/landlock.h"
#include "supervisor/log.h"

void bg_sandbox_probe(bool privileged, struct bg_sandbox_support *out)
{
	/* Fault point sandbox.no_landlock: a kernel without Landlock. */
	out->landlock_abi = bg_fault_hit("sandbox.no_landlock")
				    ? -ENOSYS
				    : bg_landlock_abi();
	out->privileged = privileged;
	out->seccomp = false;
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Seccomp_filters:", 16) ||
		    !strncmp(line, "Seccomp:", 8))
			out->seccomp = true;
	if (f)
		fclose(f);
}

void bg_sandbox_print(FILE *f, const struct bg_sandbox_support *s)
{
	fprintf(f, "# sandbox support of this kernel and process: Landlock ");
	if (s->landlock_abi >= 1)
		fprintf(f, "ABI %d", s->landlock_abi);
	else
		fprintf(f, "unavailable (%s)", strerror(-s->landlock_abi));
	fprintf(f, ", seccomp %s, pool user and PID namespaces %s\n",
		s->seccomp ? "yes" : "no",
		s->privileged ? "yes" : "no (bygated is not root)");
}

static const char *net_name(enum bg_net_policy n)
{
	return n == BG_NET_HOST	     ? "host"
	       : n == BG_NET_CONNECT ? "connect"
				     : "none";
}

/* Append "what" to the list of missing protections. */
static void missing(char *buf, size_t n, const char *what)
{
	size_t len = strlen(buf);
	if (strstr(buf, what))
		return;
	snprintf(buf + len, n - len, "%s%s", len ? "; " : "", what);
}

int bg_sandbox_report(const struct bg_config *cfg,
		      const struct bg_sandbox_support *s, char *err,
		      size_t errlen)
{
	char lack[1024] = "";
	if (!cfg->sandbox) {
		bg_warn("pool.sandbox = false: children run without any "
			"sandbox (no seccomp filter, no per-task confinement)");
		return 0;
	}
	if (!s->seccomp)
		missing(lack, sizeof(lack), "seccomp filters");
	for (int i = 0; i < cfg->n_agent_types; i++) {
		const struct bg_agent_type_conf *t = &cfg->agent_types[i];
		const struct bg_sandbox_conf *b = &t->sandbox;
		if (b->profile == BG_PROFILE_TRUSTED) {
			bg_warn("agent type %s: profile \"trusted\": its tasks "
				"run in the child itself with the pool user's "
				"rights (every session's workspace, the network, "
				"no per-task limits); docs/security.md",
				t->name);
			continue;
		}
		bool persistent = t->handler == BG_HANDLER_EXEC &&
				  t->mode == BG_EXEC_PERSISTENT;
		bg_info("agent type %s: profile strict (%s), network %s, "
			"memory %d MiB, processes %d, open files %d, cpu %d s, "
			"file size %d MiB",
			t->name,
			persistent
				? "one program per child for every session, "
				  "confined to the agent type's tree"
				: "a confined process per task, its session's "
				  "files only",
			net_name(b->network), b->memory_mb, b->processes,
			b->open_files, b->cpu_seconds, b->file_size_mb);
		if (b->network == BG_NET_HOST)
			bg_warn("agent type %s: network \"host\": its tasks may "
				"open any socket, Redis's port included",
				t->name);
		if (s->landlock_abi < 1)
			missing(lack, sizeof(lack),
				"Landlock (file confinement of tasks)");
		else if (s->landlock_abi < 4 && b->network == BG_NET_CONNECT)
			missing(lack, sizeof(lack),
				"Landlock ABI 4 (TCP port rules of network "
				"\"connect\")");
		if (s->landlock_abi < 6)
			missing(lack, sizeof(lack),
				"Landlock ABI 6 (signal and abstract socket "
				"scopes)");
	}
	struct stat st;
	if (cfg->path && cfg->path[0] && stat(cfg->path, &st) == 0 &&
	    ((st.st_mode & S_IROTH) || ((st.st_mode & S_IRGRP) && st.st_gid)))
		bg_warn("the configuration file %s is readable by other users "
			"(mode %04o, group %d): strict tasks cannot read it, but "
			"a trusted one, or anything else running as the pool "
			"user, can (the Redis password); install it root:root "
			"0600",
			cfg->path, (unsigned)(st.st_mode & 07777),
			(int)st.st_gid);
	if (lack[0] == '\0')
		return 0;
	if (cfg->sandbox_require) {
		snprintf(err, errlen,
			 "the kernel does not provide: %s (sandbox.require = "
			 "false starts without them)",
			 lack);
		return -1;
	}
	bg_warn("sandbox.require = false: starting without %s", lack);
	return 0;
}
