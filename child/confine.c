/* child/confine.c - what a strict agent type's task (or persistent
 * program) is confined to, applied to the process itself before it runs
 * agent code: Landlock (files: its own directories read-write, system
 * libraries and declared paths read-only; TCP ports; signal and abstract
 * socket scopes), a seccomp filter for the network policy, and resource
 * limits. docs/security.md has the table of what each profile allows. */
#include "child/child.h"
#include "common/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define BG_CONFINE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BG_CONFINE_ASAN 1
#endif
#endif

/* Read-only (and executable) for every confined task: the system's
 * programs and libraries, the few /etc files name resolution, TLS, time
 * zones and interpreters read, and /proc (other processes' entries stay
 * closed: other uids by permission, our own by Landlock's ptrace rule).
 * Never /etc as a whole: bygate.conf usually lives there. */
static const char *const system_ro[] = { "/usr",
					 "/lib",
					 "/lib64",
					 "/lib32",
					 "/libx32",
					 "/bin",
					 "/sbin",
					 "/proc",
					 "/sys/devices/system/cpu",
					 "/etc/ld.so.cache",
					 "/etc/ld.so.conf",
					 "/etc/ld.so.conf.d",
					 "/etc/localtime",
					 "/etc/timezone",
					 "/etc/resolv.conf",
					 "/etc/hosts",
					 "/etc/nsswitch.conf",
					 "/etc/gai.conf",
					 "/etc/host.conf",
					 "/etc/services",
					 "/etc/protocols",
					 "/etc/passwd",
					 "/etc/group",
					 "/etc/ssl",
					 "/etc/ca-certificates",
					 "/etc/ca-certificates.conf",
					 "/etc/alternatives",
					 "/etc/mime.types",
					 "/etc/os-release",
					 "/etc/python3",
					 "/etc/python3.11",
					 "/dev/urandom",
					 "/dev/random",
					 NULL };
/* Character devices a task may write. */
static const char *const devices_rw[] = { "/dev/null", "/dev/zero", "/dev/full",
					  NULL };

static int fail(char *why, size_t n, int rc, const char *fmt, const char *arg)
{
	snprintf(why, n, fmt, arg ? arg : "");
	return rc < 0 ? rc : -EINVAL;
}

/* ---- CONFIG ------------------------------------------------------------ */

static char **str_array(json_t *a, const char *prefix_key, json_t *obj,
			size_t *n)
{
	size_t count = a ? json_array_size(a) : json_object_size(obj);
	char **v = calloc(count + 1, sizeof(char *));
	if (v == NULL)
		return NULL;
	*n = 0;
	if (a) {
		size_t i;
		json_t *e;
		json_array_foreach(a, i, e)
			if (json_is_string(e) &&
			    (v[(*n)++] = strdup(json_string_value(e))) == NULL)
				return v;
	} else {
		const char *k;
		json_t *e;
		(void)prefix_key;
		json_object_foreach(obj, k, e)
			if (json_is_string(e) &&
			    asprintf(&v[(*n)++], "%s=%s", k,
				     json_string_value(e)) == -1)
				return v;
	}
	return v;
}

static long num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) && json_integer_value(v) > 0
		       ? (long)json_integer_value(v)
		       : 0;
}

int bg_confine_parse(struct bg_confine *cf, struct bg_str text)
{
	memset(cf, 0, sizeof(*cf));
	cf->strict = false; /* an old supervisor sends no sandbox: trusted */
	if (text.len == 0)
		return 0;
	json_t *o = json_loadb(text.p, text.len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	const char *profile = json_string_value(json_object_get(o, "profile"));
	const char *net = json_string_value(json_object_get(o, "network"));
	cf->strict = profile == NULL || strcmp(profile, "trusted") != 0;
	cf->network = net && !strcmp(net, "host")      ? BG_CONFINE_NET_HOST
		      : net && !strcmp(net, "connect") ? BG_CONFINE_NET_CONNECT
						       : BG_CONFINE_NET_NONE;
	json_t *ports = json_object_get(o, "connect_ports");
	size_t i;
	json_t *p;
	json_array_foreach(ports, i, p)
		if (cf->n_ports < BG_CONFINE_MAX_PORTS && json_is_integer(p))
			cf->ports[cf->n_ports++] = (int)json_integer_value(p);
	cf->memory_mb = num(o, "memory_mb");
	cf->processes = num(o, "processes");
	cf->open_files = num(o, "open_files");
	cf->cpu_seconds = num(o, "cpu_seconds");
	cf->file_size_mb = num(o, "file_size_mb");
	const char *dir = json_string_value(json_object_get(o, "agent_dir"));
	cf->agent_dir = strdup(dir ? dir : "");
	json_t *env = json_object_get(o, "env");
	cf->read_paths = str_array(json_object_get(o, "read_paths"), NULL, NULL,
				   &cf->n_read_paths);
	cf->env = str_array(NULL, NULL, json_is_object(env) ? env : NULL,
			    &cf->n_env);
	json_decref(o);
	return cf->agent_dir && cf->read_paths && cf->env ? 0 : -ENOMEM;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void bg_confine_free(struct bg_confine *cf)
{
	free_strs(cf->read_paths, cf->n_read_paths);
	free_strs(cf->env, cf->n_env);
	free_strs(cf->program_paths, cf->n_program_paths);
	free(cf->agent_dir);
	for (size_t i = 0; i < cf->n_fds; i++)
		close(cf->fds[i].fd);
	free(cf->fds);
	free(cf->net_bpf);
	memset(cf, 0, sizeof(*cf));
}

/* The files an exec program needs besides the system: argv[0] when it is a
 * path, and each argument naming an existing file or directory (a script,
 * its modules beside it). A file in the working directory (the
 * configuration file's) is granted alone, never that directory. */
int bg_confine_program_paths(struct bg_confine *cf, char *const *argv,
			     const char *workdir)
{
	size_t n = 0;
	while (argv[n])
		n++;
	cf->program_paths = calloc(n + 1, sizeof(char *));
	if (cf->program_paths == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *abs = NULL, *real = NULL;
		struct stat st;
		if (i == 0 && strchr(argv[0], '/') == NULL)
			continue; /* found in PATH: under /usr */
		if (asprintf(&abs, "%s/%s", argv[i][0] == '/' ? "" : workdir,
			     argv[i]) == -1)
			return -ENOMEM;
		real = realpath(abs, NULL);
		free(abs);
		if (real == NULL || stat(real, &st) == -1) {
			free(real);
			continue;
		}
		char *slash = strrchr(real, '/');
		size_t wlen = strlen(workdir);
		bool in_workdir = slash && (size_t)(slash - real) == wlen &&
				  !strncmp(real, workdir, wlen);
		if (S_ISREG(st.st_mode) && !in_workdir && slash &&
		    slash != real)
			*slash = '\0'; /* the script's directory */
		if (!strcmp(real, workdir) || !strcmp(real, "/")) {
			free(real);
			continue;
		}
		cf->program_paths[cf->n_program_paths++] = real;
	}
	return 0;
}

/* ---- Landlock ---------------------------------------------------------- */

static int add_path(int ruleset, const char *path, uint64_t rights,
		    uint64_t handled)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT || errno == EACCES ? 0 : -errno;
	struct stat st;
	if (fstat(fd, &st) == -1) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISDIR(st.st_mode))
		rights &= BG_LL_FS_FILE_RIGHTS;
	struct bg_landlock_path_rule r = { rights & handled, fd };
	int rc = r.allowed_access
			 ? bg_landlock_add_rule(ruleset, BG_LL_RULE_PATH, &r)
			 : 0;
	close(fd);
	return rc;
}

static int add_ports(int rs, const struct bg_confine *cf, char *why, size_t wn)
{
	for (int i = 0; i < cf->n_ports; i++) {
		struct bg_landlock_port_rule r = { BG_LL_NET_CONNECT_TCP,
						   (uint64_t)cf->ports[i] };
		int rc = bg_landlock_add_rule(rs, BG_LL_RULE_PORT, &r);
		if (rc)
			return fail(why, wn, rc, "landlock_add_rule(port)",
				    NULL);
	}
	return 0;
}

/* Restrict this process to rw[] (every right) plus the paths prepared at
 * CONFIG (bg_confine_prepare: system files, read_paths, the program or
 * plugin), on the kernel's Landlock ABI; rights the kernel lacks are not
 * asked for (bygated said at start what is missing). */
static int landlock(const struct bg_confine *cf, const char *const *rw,
		    size_t n_rw, char *why, size_t wn)
{
	int abi = bg_landlock_abi();
	if (abi < 1)
		return 0; /* bygated refused to start unless require = false */
	uint64_t fs = bg_landlock_fs_rights(abi);
	struct bg_landlock_attr attr = { .handled_access_fs = fs };
	if (abi >= 4 && cf->network != BG_CONFINE_NET_HOST)
		attr.handled_access_net = BG_LL_NET_BIND_TCP |
					  BG_LL_NET_CONNECT_TCP;
	if (abi >= 6)
		attr.scoped = BG_LL_SCOPE_SIGNAL | BG_LL_SCOPE_ABSTRACT_UNIX;
	int rs = bg_landlock_create(&attr, bg_landlock_attr_size(abi), 0);
	if (rs < 0)
		return fail(why, wn, rs, "landlock_create_ruleset", NULL);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n_rw; i++)
		if ((rc = add_path(rs, rw[i], fs, fs)))
			fail(why, wn, rc, "landlock_add_rule(%s)", rw[i]);
	for (size_t i = 0; rc == 0 && i < cf->n_fds; i++) {
		struct bg_landlock_path_rule r = { cf->fds[i].rights & fs,
						   cf->fds[i].fd };
		if (r.allowed_access &&
		    (rc = bg_landlock_add_rule(rs, BG_LL_RULE_PATH, &r)))
			fail(why, wn, rc, "landlock_add_rule(%s)",
			     "a prepared path");
	}
	if (rc == 0 && attr.handled_access_net)
		rc = add_ports(rs, cf, why, wn);
	if (rc == 0 && (rc = bg_landlock_restrict_self(rs)))
		fail(why, wn, rc, "landlock_restrict_self", NULL);
	close(rs);
	return rc;
}

/* ---- network filter ---------------------------------------------------- */

static int deny(scmp_filter_ctx ctx, int nr, unsigned argc,
		struct scmp_arg_cmp cmp)
{
	return argc ? seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 1, cmp)
		    : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0);
}

/* none: sockets of AF_UNIX only. connect: AF_UNIX, AF_INET, AF_INET6, and
 * no raw or packet sockets. Both: no listen(). EACCES, as a firewall
 * would answer. NULL for host (no filter) or on failure (why set). */
static scmp_filter_ctx net_filter(const struct bg_confine *cf, char *why,
				  size_t wn)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		fail(why, wn, -ENOMEM, "seccomp_init", NULL);
		return NULL;
	}
	int rc = deny(ctx, SCMP_SYS(listen), 0, SCMP_A0(SCMP_CMP_EQ, 0));
	int so = SCMP_SYS(socket);
	if (cf->network == BG_CONFINE_NET_NONE) {
		if (rc == 0)
			rc = deny(ctx, so, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
	} else {
		/* Families other than 1 (unix), 2 (inet), 10 (inet6). */
		if (rc == 0)
			rc = deny(ctx, so, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNSPEC));
		for (int fam = 3; rc == 0 && fam < AF_INET6; fam++)
			rc = deny(ctx, so, 1, SCMP_A0(SCMP_CMP_EQ, fam));
		if (rc == 0)
			rc = deny(ctx, so, 1, SCMP_A0(SCMP_CMP_GT, AF_INET6));
		if (rc == 0)
			rc = deny(ctx, so, 1,
				  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
		if (rc == 0)
			rc = deny(ctx, so, 1,
				  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf,
					  SOCK_PACKET));
	}
	if (rc) {
		fail(why, wn, rc, "seccomp_rule_add(socket)", NULL);
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* The network filter compiled once (the child, at CONFIG): a task process
 * only loads it. */
static int compile_net(struct bg_confine *cf, char *why, size_t wn)
{
	scmp_filter_ctx ctx = net_filter(cf, why, wn);
	if (ctx == NULL)
		return -EINVAL;
	int fd = memfd_create("bygate-net-filter", MFD_CLOEXEC);
	int rc = fd == -1 ? -errno : seccomp_export_bpf(ctx, fd);
	off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
	seccomp_release(ctx);
	if (rc == 0 && (size <= 0 || size % sizeof(struct sock_filter) ||
			size / sizeof(struct sock_filter) > BPF_MAXINSNS))
		rc = -EINVAL;
	if (rc == 0 && (cf->net_bpf = malloc((size_t)size)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && pread(fd, cf->net_bpf, (size_t)size, 0) != size)
		rc = -EIO;
	if (fd != -1)
		close(fd);
	if (rc)
		return fail(why, wn, rc, "seccomp_export_bpf(network)", NULL);
	cf->net_bpf_len = (unsigned short)(size / sizeof(struct sock_filter));
	return 0;
}

static int load_net(const struct bg_confine *cf, char *why, size_t wn)
{
	if (cf->network == BG_CONFINE_NET_HOST)
		return 0;
	struct sock_fprog prog = { cf->net_bpf_len, cf->net_bpf };
	if (cf->net_bpf == NULL) /* bg_confine_prepare was not called */
		return fail(why, wn, -EINVAL, "seccomp(network)", NULL);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == -1)
		return fail(why, wn, -errno, "seccomp(network)", NULL);
	return 0;
}

/* ---- limits ------------------------------------------------------------ */

static int limit(int res, long value, long extra, const char *name, char *why,
		 size_t wn)
{
	if (value <= 0)
		return 0;
	struct rlimit r = { (rlim_t)value, (rlim_t)(value + extra) };
	if (setrlimit(res, &r) == -1)
		return fail(why, wn, -errno, "setrlimit(%s)", name);
	return 0;
}

int bg_confine_memory(const struct bg_confine *cf, char *why, size_t wn)
{
	return limit(RLIMIT_AS, cf->memory_mb << 20, 0, "RLIMIT_AS", why, wn);
}

int bg_confine_processes(const struct bg_confine *cf, char *why, size_t wn)
{
	return limit(RLIMIT_NPROC, cf->processes, 0, "RLIMIT_NPROC", why, wn);
}

static int limits(const struct bg_confine *cf, char *why, size_t wn)
{
	/* An exec program gets it at its exec (bg_child_exec): the count is
	 * the pool user's, and our fork of the program must not fail for
	 * another task's processes. */
	int rc = cf->exec ? 0 : bg_confine_processes(cf, why, wn);
	if (rc == 0)
		rc = limit(RLIMIT_NOFILE, cf->open_files, 0, "RLIMIT_NOFILE",
			   why, wn);
	/* SIGXCPU at the limit, SIGKILL 5 s later if it is caught. */
	if (rc == 0)
		rc = limit(RLIMIT_CPU, cf->cpu_seconds, 5, "RLIMIT_CPU", why,
			   wn);
	if (rc == 0)
		rc = limit(RLIMIT_FSIZE, cf->file_size_mb << 20, 0,
			   "RLIMIT_FSIZE", why, wn);
#ifndef BG_CONFINE_ASAN
	/* AddressSanitizer reserves terabytes of shadow memory: sanitizer
	 * builds limit the exec programs only (bg_child_exec). */
	if (rc == 0)
		rc = bg_confine_memory(cf, why, wn);
#endif
	return rc;
}

/* Is path inside a directory already prepared with at least `rights`
 * (/lib, /bin, /sbin are /usr's on a merged-/usr system)? One rule
 * fewer for every task. */
static bool covered(const struct bg_confine *cf, char *const *real, size_t n,
		    const char *path, uint64_t rights)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(real[i]);
		if ((cf->fds[i].rights & rights) == rights &&
		    !strncmp(path, real[i], len) &&
		    (path[len] == '/' || path[len] == '\0'))
			return true;
	}
	return false;
}

/* Open path for a prepared rule with `rights` (masked for a file), unless
 * a prepared directory covers it already. */
static int prepare_path(struct bg_confine *cf, char **real, const char *path,
			uint64_t rights)
{
	char *r = realpath(path, NULL);
	if (r == NULL)
		return errno == ENOENT || errno == EACCES || errno == ENOTDIR
			       ? 0
			       : -errno;
	if (covered(cf, real, cf->n_fds, r, rights)) {
		free(r);
		return 0;
	}
	int fd = open(r, O_PATH | O_CLOEXEC);
	if (fd == -1) {
		free(r);
		return errno == ENOENT || errno == EACCES ? 0 : -errno;
	}
	real[cf->n_fds] = r;
	struct stat st;
	if (fstat(fd, &st) == -1 ||
	    (!S_ISDIR(st.st_mode) && !(rights &= BG_LL_FS_FILE_RIGHTS))) {
		close(fd);
		free(r);
		return 0;
	}
	cf->fds[cf->n_fds].fd = fd;
	cf->fds[cf->n_fds].rights = rights;
	cf->n_fds++;
	return 0;
}

int bg_confine_prepare(struct bg_confine *cf, const char *plugin, char *why,
		       size_t wn)
{
	if (!cf->strict)
		return 0;
	size_t n = sizeof(system_ro) / sizeof(*system_ro) +
		   sizeof(devices_rw) / sizeof(*devices_rw) + cf->n_read_paths +
		   cf->n_program_paths + 1;
	cf->fds = calloc(n, sizeof(*cf->fds));
	if (cf->fds == NULL)
		return fail(why, wn, -ENOMEM, "calloc", NULL);
	uint64_t ro = BG_LL_FS_EXECUTE | BG_LL_FS_READ_FILE | BG_LL_FS_READ_DIR;
	uint64_t dev = BG_LL_FS_READ_FILE | BG_LL_FS_WRITE_FILE |
		       BG_LL_FS_TRUNCATE;
	char **real = calloc(n, sizeof(char *));
	int rc = real ? 0 : -ENOMEM;
	for (const char *const *p = system_ro; rc == 0 && *p; p++)
		rc = prepare_path(cf, real, *p, ro);
	for (const char *const *p = devices_rw; rc == 0 && *p; p++)
		rc = prepare_path(cf, real, *p, dev);
	for (size_t i = 0; rc == 0 && i < cf->n_read_paths; i++)
		rc = prepare_path(cf, real, cf->read_paths[i], ro);
	for (size_t i = 0; rc == 0 && i < cf->n_program_paths; i++)
		rc = prepare_path(cf, real, cf->program_paths[i], ro);
	if (rc == 0 && plugin)
		rc = prepare_path(cf, real, plugin, ro);
	for (size_t i = 0; real && i < n; i++)
		free(real[i]);
	free(real);
	if (rc)
		return fail(why, wn, rc, "open(O_PATH) of a read-only path",
			    NULL);
	return cf->network == BG_CONFINE_NET_HOST ? 0
						  : compile_net(cf, why, wn);
}

void bg_confine_close(struct bg_confine *cf)
{
	for (size_t i = 0; i < cf->n_fds; i++)
		close(cf->fds[i].fd);
	cf->n_fds = 0;
}

int bg_confine_apply(const struct bg_confine *cf, const char *const *rw,
		     size_t n_rw, char *why, size_t wn)
{
	if (!cf->strict)
		return 0;
	/* Another process of the pool user may not read our memory or
	 * environment through /proc, nor attach to us. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return fail(why, wn, -errno, "prctl(PR_SET_DUMPABLE)", NULL);
	int rc = landlock(cf, rw, n_rw, why, wn);
	if (rc == 0)
		rc = load_net(cf, why, wn);
	if (rc == 0)
		rc = limits(cf, why, wn);
	return rc;
}
