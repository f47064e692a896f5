/* child/sandbox.c - the sandbox bygate-child applies to itself before it
 * loads any handler (DESIGN 1): no new privileges, no core dumps, and a
 * default-allow seccomp filter that refuses privileged, host-altering and
 * cross-process system calls with EPERM. Everything the child starts
 * inherits it. Rationale and limits: docs/architecture.md, "Sandbox". */
#include "child/child.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* LeakSanitizer stops the world at exit from a helper task that ptraces
 * this process's threads; such builds keep ptrace of our own pid. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_LEAK__)
#define BG_SANDBOX_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define BG_SANDBOX_LSAN 1
#endif
#endif

/* clone's flags argument (the second one on s390, the first elsewhere). */
#if defined(__s390__)
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

/* Change the host's file-system layout or storage: as root they would
 * succeed, and the new mount API (fsopen ... mount_setattr) is mount by
 * other means. */
static const char *const fs_layout[] = {
	"mount",	 "umount2", "pivot_root", "chroot",	"fsopen",
	"fsconfig",	 "fsmount", "fspick",	  "move_mount", "open_tree",
	"mount_setattr", "swapon",  "swapoff",	  "quotactl",	"quotactl_fd",
	"nfsservctl",	 NULL
};

/* Change or replace the running kernel, or reach hardware directly. */
static const char *const kernel[] = { "reboot",
				      "kexec_load",
				      "kexec_file_load",
				      "init_module",
				      "finit_module",
				      "delete_module",
				      "create_module",
				      "get_kernel_syms",
				      "query_module",
				      "uselib",
				      "_sysctl",
				      "acct",
				      "syslog",
				      "vhangup",
				      "iopl",
				      "ioperm",
				      "lookup_dcookie",
				      "bpf",
				      NULL };

/* Host-wide identity and clocks, shared by every process on the host. */
static const char *const host_state[] = { "settimeofday",
					  "clock_settime",
					  "clock_adjtime",
					  "adjtimex",
					  "sethostname",
					  "setdomainname",
					  NULL };

/* Reach into other processes (memory, descriptors, scheduling of their
 * pages) or observe them and the kernel (perf). ptrace is filtered apart. */
static const char *const cross_process[] = { "process_vm_readv",
					     "process_vm_writev",
					     "kcmp",
					     "pidfd_getfd",
					     "process_madvise",
					     "perf_event_open",
					     "move_pages",
					     "migrate_pages",
					     "mbind",
					     NULL };

/* Kernel keyrings are shared by every process of a user (and a session
 * keyring is inherited from bygated): secrets of others. */
static const char *const keyrings[] = { "keyctl", "add_key", "request_key",
					NULL };

/* File handles bypass directory permissions and mount boundaries (the
 * classic container escape); fanotify watches the whole host; userfaultfd
 * is mostly an exploitation aid; setns enters namespaces of others. */
static const char *const escapes[] = { "open_by_handle_at",
				       "name_to_handle_at",
				       "fanotify_init",
				       "userfaultfd",
				       "setns",
				       NULL };

/* The groups above, refused outright with EPERM. Names this architecture
 * lacks (iopl on aarch64, the pre-2.6 module calls...) are skipped. */
static const char *const *const deny_groups[] = {
	fs_layout, kernel, host_state, cross_process, keyrings, escapes,
};

/* New namespaces (clone, unshare): a private mount table or a user
 * namespace where the process is root is the usual first step of a
 * kernel exploit, and none is needed to run an agent. unshare without
 * them (CLONE_FILES, CLONE_FS, CLONE_SYSVSEM) stays allowed. */
static const unsigned long ns_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,    CLONE_NEWNET,
	CLONE_NEWUTS,  CLONE_NEWIPC, CLONE_NEWCGROUP,
};
/* Only unshare and clone3 take it: in clone's flags it is exit-signal bits. */
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

/* The one personality() call allowed: 0xffffffff reads the current
 * persona. Setting one (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
 * MMAP_PAGE_ZERO...) weakens what the kernel does for everything the
 * process executes next. */
#define PERSONALITY_QUERY 0xffffffffUL

static int fail(char *why, size_t n, const char *step, const char *name, int rc)
{
	snprintf(why, n, "%s%s%s", step, name ? " " : "", name ? name : "");
	return rc < 0 ? rc : -EINVAL;
}

static int deny_all(scmp_filter_ctx ctx, const char *const *names, char *why,
		    size_t n)
{
	for (const char *const *name = names; *name; name++) {
		int nr = seccomp_syscall_resolve_name(*name);
		if (nr < 0) /* not on this architecture */
			continue;
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc)
			return fail(why, n, "seccomp_rule_add", *name, rc);
	}
	return 0;
}

/* Refuse system call `name` when argument `arg` holds a namespace flag (or
 * `extra`). One rule per flag: comparisons within a rule are ANDed, rules
 * are ORed, and libseccomp takes one comparison per argument and rule. */
static int deny_ns_flags(scmp_filter_ctx ctx, const char *name, unsigned arg,
			 unsigned long extra, char *why, size_t n)
{
	int nr = seccomp_syscall_resolve_name(name);
	size_t count = sizeof(ns_flags) / sizeof(ns_flags[0]);
	for (size_t i = 0; i <= count; i++) {
		unsigned long f = i < count ? ns_flags[i] : extra;
		if (f == 0)
			continue;
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
					  SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, f,
						   f));
		if (rc)
			return fail(why, n, "seccomp_rule_add", name, rc);
	}
	return 0;
}

/* One errno rule on `name` when argument `arg` has all of `bits` under
 * `mask` (skipped where the architecture lacks the call). */
static int deny_masked(scmp_filter_ctx ctx, const char *name, unsigned arg,
		       unsigned long mask, unsigned long bits, int err,
		       char *why, size_t n)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr < 0)
		return 0;
	int rc =
		seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 1,
				 SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, bits));
	return rc ? fail(why, n, "seccomp_rule_add", name, rc) : 0;
}

/* Device nodes (a block device is the disk, whatever the file's owner)
 * and set-user-ID or set-group-ID bits (a file a later root process might
 * run): never needed by a task. The mode is the second argument of
 * mknod, chmod and fchmod, the third of mknodat, fchmodat and open, the
 * fourth of openat; creat's is the second. */
static int add_file_rules(scmp_filter_ctx ctx, char *why, size_t n)
{
	static const struct {
		const char *name;
		unsigned arg;
	} node[] = { { "mknod", 1 }, { "mknodat", 2 } },
	  mode[] = { { "chmod", 1 }, { "fchmod", 1 }, { "fchmodat", 2 },
		     { "open", 2 },  { "openat", 3 }, { "creat", 1 } };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		rc = deny_masked(ctx, node[i].name, node[i].arg, S_IFMT,
				 S_IFBLK, EPERM, why, n);
		if (rc == 0)
			rc = deny_masked(ctx, node[i].name, node[i].arg, S_IFMT,
					 S_IFCHR, EPERM, why, n);
	}
	for (size_t i = 0; rc == 0 && i < sizeof(mode) / sizeof(mode[0]); i++) {
		rc = deny_masked(ctx, mode[i].name, mode[i].arg, S_ISUID,
				 S_ISUID, EPERM, why, n);
		if (rc == 0)
			rc = deny_masked(ctx, mode[i].name, mode[i].arg,
					 S_ISGID, S_ISGID, EPERM, why, n);
	}
	/* fchmodat2 (Linux 6.6) and io_uring (a second system call interface
	 * out of this filter's sight): ENOSYS, so libc falls back to what
	 * the rules above see. */
	static const int enosys[] = { 452, 425, 426, 427 };
	for (size_t i = 0; rc == 0 && i < 4; i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
					   enosys[i], 0)))
			rc = fail(why, n, "seccomp_rule_add", "io_uring", rc);
	return rc;
}

static int add_arg_rules(scmp_filter_ctx ctx, char *why, size_t n)
{
	int frc = add_file_rules(ctx, why, n);
	if (frc)
		return frc;
	int rc = deny_ns_flags(ctx, "clone", CLONE_FLAGS_ARG, 0, why, n);
	if (rc == 0)
		rc = deny_ns_flags(ctx, "unshare", 0, CLONE_NEWTIME, why, n);
	if (rc)
		return rc;
	/* clone3 passes its flags in memory, out of a filter's sight: ENOSYS
	 * makes glibc (2.34+: posix_spawn, pthread_create) and other
	 * runtimes fall back to clone, which is filtered above. */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc)
		return fail(why, n, "seccomp_rule_add", "clone3", rc);
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality),
			      1, SCMP_A0(SCMP_CMP_NE, PERSONALITY_QUERY));
	if (rc)
		return fail(why, n, "seccomp_rule_add", "personality", rc);
		/* Debuggers and tracers of other processes. */
#ifdef BG_SANDBOX_LSAN
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ptrace), 1,
			      SCMP_A1(SCMP_CMP_NE, (scmp_datum_t)getpid()));
#else
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ptrace), 0);
#endif
	if (rc)
		return fail(why, n, "seccomp_rule_add", "ptrace", rc);
	return 0;
}

static int build_filter(scmp_filter_ctx ctx, char *why, size_t n)
{
	/* Another architecture's system call numbers (int 0x80 on x86_64)
	 * would slip past a default-allow filter: they kill the process (the
	 * thread on kernels before 4.14). */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
				  SCMP_ACT_KILL_PROCESS);
	if (rc)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
				      SCMP_ACT_KILL);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc)
		return fail(why, n, "seccomp_attr_set", NULL, rc);
	for (size_t i = 0; i < sizeof(deny_groups) / sizeof(deny_groups[0]);
	     i++) {
		rc = deny_all(ctx, deny_groups[i], why, n);
		if (rc)
			return rc;
	}
	return add_arg_rules(ctx, why, n);
}

static int install_filter(char *why, size_t n)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL)
		return fail(why, n, "seccomp_init", NULL, -ENOMEM);
	int rc = build_filter(ctx, why, n);
	if (rc == 0) {
		rc = seccomp_load(ctx);
		if (rc)
			rc = fail(why, n,
				  "seccomp_load (a kernel without "
				  "seccomp filters?)",
				  NULL, rc);
	}
	seccomp_release(ctx);
	return rc;
}

int bg_child_sandbox_apply(char *why, size_t n)
{
	/* Needed for an unprivileged filter; it also keeps setuid and file
	 * capabilities of programs a handler runs from granting anything. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return fail(why, n, "prctl(PR_SET_NO_NEW_PRIVS)", NULL, -errno);
	/* A handler's core dump would hold its prompts and secrets; the hard
	 * limit too, so a handler cannot raise it again. */
	struct rlimit none = { 0, 0 };
	if (setrlimit(RLIMIT_CORE, &none) == -1)
		return fail(why, n, "setrlimit(RLIMIT_CORE)", NULL, -errno);
	return install_filter(why, n);
}
