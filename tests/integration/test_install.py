"""`make install` (issue 15, item 6): everything under $(DESTDIR)$(PREFIX),
the configuration under $(SYSCONFDIR) (following PREFIX), and an example
configuration that runs as installed: the installed bygated, started with
the installed bygate.conf.example, serves the installed example agents (a
plugin and a Python agent) to the installed bygate CLI and to a client
built against the installed header, libbygate.a and bygate.pc.

Each test installs from the suite's build directory (BYGATE_BUILD), which
`make install` must not rebuild: objects are not rebuilt, and the
DESTDIR install runs as an unprivileged user who can write nothing but
DESTDIR (and the world-writable temporary directories, checked after)."""

import json
import os
import pwd
import subprocess
import time

from harness import REPO, build_dir, timeout, wait_until
from bglib import proc
from bglib.bygated import Bygated

UNPRIVILEGED = "nobody"

# Every file a `make install` must place, relative to PREFIX (etc and var
# are SYSCONFDIR and LOCALSTATEDIR for a PREFIX other than /usr).
INSTALLED = [
    "bin/bygate", "bin/bygate-state", "sbin/bygated",
    "libexec/bygate/bygate-child", "libexec/bygate/libbygate-memwatch.so",
    "lib/libbygate.a", "lib/pkgconfig/bygate.pc",
    "include/bygate/client.h", "include/bygate/handler.h",
    "lib/bygate/plugins/echo.so", "lib/bygate/plugins/sleep.so",
    "lib/bygate/plugins/workflows.so",
    "lib/systemd/system/bygated.service",
    "share/bygate/python/bygate_agent.py",
    "share/bygate/python/planner.py", "share/bygate/python/writer.py",
    "share/bygate/examples/workflows/agentos.json",
    "share/bygate/grafana/bygate.json",
    "share/bygate/prometheus/bygate-alerts.yml",
    "share/man/man8/bygated.8", "share/man/man5/bygate.conf.5",
    "share/man/man1/bygate.1", "share/doc/bygate/README.md",
]

CLIENT_C = r"""
#include <bygate/client.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	struct bg_client *c;
	char err[256];
	if (argc != 4 || bg_client_open(NULL, &c, err, sizeof err)) {
		fprintf(stderr, "open: %s\n", argc != 4 ? "usage" : err);
		return 3;
	}
	struct bg_send_request req = { .agent_type = argv[1],
				       .session_id = argv[2],
				       .content = argv[3] };
	struct bg_send_response resp;
	int rc = bg_client_send(c, &req, &resp);
	if (rc) {
		fprintf(stderr, "%s: %s\n", bg_client_strerror(rc),
			bg_client_errmsg(c));
		bg_client_close(c);
		return 1;
	}
	printf("%s\n", resp.message_id);
	bg_client_close(c);
	return 0;
}
"""


def sanitizer_flags():
    """The sanitizers a client of the installed libbygate.a must link when
    the build under test is a sanitizer build (`make asan`)."""
    with open(build_dir() / "bygated", "rb") as f:
        asan = b"libasan.so" in f.read()
    return ["-fsanitize=address,undefined"] if asan else []


def make_install(prefix, destdir="", user=None, **extra):
    """`make install` from the repository root into the suite's build dir;
    returns make's output. Fails the test if make fails or compiles or
    archives anything (the build is already complete)."""
    # BUILD as `make` was given it (relative to the repository when inside
    # it): the objects' dependency files name their targets that way, and
    # an absolute BUILD would miss them.
    build = build_dir()
    if build.is_relative_to(REPO):
        build = build.relative_to(REPO)
    # A build older than the sources would be rebuilt by `make install`
    # with the default flags, over a sanitizer build's objects: refuse
    # before touching it (`make -q` builds nothing).
    q = subprocess.run(["make", "-q", "-C", str(REPO),
                        "BUILD=%s" % build, "all"],
                       capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env=proc.clean_env())
    assert q.returncode == 0, (
        "%s is older than the sources: make install would rebuild it; "
        "rebuild it first" % build_dir())
    argv = ["make", "--no-print-directory", "-C", str(REPO),
            "BUILD=%s" % build, "PREFIX=%s" % prefix,
            "DESTDIR=%s" % destdir, "install"]
    argv += ["%s=%s" % kv for kv in extra.items()]
    if user:
        argv = ["runuser", "-u", user, "--"] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL, env=proc.clean_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, "make install failed:\n" + out[-3000:]
    rebuilt = [ln for ln in out.splitlines()
               if ln.split(" ", 1)[0] in ("cc", "gcc", "clang", "ar")]
    assert not rebuilt, "make install rebuilt:\n" + "\n".join(rebuilt[:5])
    return out


def installed_env(h, **extra):
    """The environment of the installed programs: h.redis's address (the
    REDIS_HOST / REDIS_PORT overrides the config loader applies)."""
    return h.env(**extra)


def start_installed_bygated(h, prefix):
    """The installed sbin/bygated with the installed example configuration,
    unchanged: only REDIS_HOST / REDIS_PORT come from the environment."""
    conf = prefix / "etc" / "bygate" / "bygate.conf.example"
    d = Bygated(str(prefix / "sbin" / "bygated"), str(conf),
                h.tmp / "installed-run", env=installed_env(h),
                label="installed bygated")
    # Registered with the harness so that it is stopped and its log tail
    # reported like every other bygated of a test.
    h._owned.append(d)
    h._bygateds.append(d)
    return d.start(wait=True, timeout=60.0)


def bygate(h, prefix, *args, timeout=90.0):
    """The installed bygate CLI, with the installed example configuration."""
    conf = prefix / "etc" / "bygate" / "bygate.conf.example"
    return subprocess.run(
        [str(prefix / "bin" / "bygate"), "-c", str(conf), *args],
        env=installed_env(h), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(h.tmp))


def send_wait(h, prefix, agent_type, content, session):
    r = bygate(h, prefix, "--json", "send", "--agent-type", agent_type,
               "--session", session, "--content", content, "--wait",
               "--wait-timeout-ms", "60000")
    assert r.returncode == 0, "send to %s: %s%s" % (agent_type, r.stdout,
                                                    r.stderr)
    lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    return lines[-1], lines[1:-1]  # the final record, the events


def world_writable_files_of(user, since):
    """Files `user` owns under the world-writable directories, modified
    after `since` (a path): what an unprivileged make could write outside
    DESTDIR."""
    found = []
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        r = subprocess.run(["find", top, "-xdev", "-user", user, "-newer",
                            str(since)], capture_output=True, text=True)
        found += [ln for ln in r.stdout.splitlines() if ln]
    return found


def exes_of(pids):
    exes = set()
    for pid in pids:
        try:
            exes.add(os.readlink("/proc/%d/exe" % pid))
        except OSError:
            pass  # gone meanwhile
    return exes


# ---- tests ---------------------------------------------------------------

@timeout(240)
def test_installed_bygated_serves_the_installed_example_agents(h):
    prefix = h.tmp / "prefix"
    make_install(prefix)
    d = start_installed_bygated(h, prefix)
    # the child program and the memwatch library found from sbin/bygated
    child = str(prefix / "libexec" / "bygate" / "bygate-child")
    wait_until(lambda: child in exes_of(d.child_pids()), 10,
               what="children running %s" % child)
    end, events = send_wait(h, prefix, "echo", "hello installed",
                            "inst-echo")
    assert end["status"] == "COMPLETED", end
    assert "hello installed" in json.dumps(events)
    # a Python example agent, run from share/bygate/python with its helper
    end, events = send_wait(h, prefix, "researcher", "the installed tree",
                            "inst-py")
    assert end["status"] == "COMPLETED", end
    assert "the installed tree" in json.dumps(events)
    # state and workspaces in the installed var directory
    assert (prefix / "var" / "lib" / "bygate" / "bygated.lock").exists()
    # the task event log beside them, read by the installed `bygate events`
    # through the installed example configuration
    log = prefix / "var" / "lib" / "bygate" / "events.jsonl"
    wait_until(lambda: log.exists() and "inst-py" in log.read_text(), 10,
               what="the event log of the installed bygated")
    r = bygate(h, prefix, "events", "--jsonl")
    assert r.returncode == 0, r.stderr
    ended = [json.loads(line) for line in r.stdout.splitlines()
             if '"ended"' in line]
    assert {e["session_id"] for e in ended} >= {"inst-echo", "inst-py"}


@timeout(240)
def test_a_client_builds_against_the_installed_library_with_pkg_config(h):
    prefix = h.tmp / "prefix"
    make_install(prefix)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "bygate"],
                           env=env, capture_output=True, text=True)
    assert flags.returncode == 0, flags.stderr
    assert "-I%s/include" % prefix in flags.stdout
    src = h.tmp / "client.c"
    src.write_text(CLIENT_C)
    exe = h.tmp / "client"
    cc = subprocess.run(["cc", "-Wall", "-Werror", *sanitizer_flags(),
                         "-o", str(exe), str(src), *flags.stdout.split()],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    start_installed_bygated(h, prefix)
    sent = subprocess.run([str(exe), "echo", "inst-client", "from a client"],
                          env=installed_env(h), capture_output=True,
                          text=True, timeout=30)
    assert sent.returncode == 0, sent.stderr
    mid = sent.stdout.strip()

    def status():
        r = bygate(h, prefix, "--json", "status", "--session", "inst-client",
                   "--message-id", mid)
        return json.loads(r.stdout).get("status") if r.returncode == 0 \
            else None
    wait_until(lambda: status() == "COMPLETED", 30,
               what="the client's task to complete")


def test_bygate_pc_requires_exactly_what_libbygate_a_calls(h):
    """Linked whole, the installed archive needs every library bygate.pc
    requires, and nothing more: dropping any one fails the link."""
    prefix = h.tmp / "prefix"
    make_install(prefix)
    pc = (prefix / "lib" / "pkgconfig" / "bygate.pc").read_text()
    requires = [ln.split(":", 1)[1].split() for ln in pc.splitlines()
                if ln.startswith("Requires:")][0]
    src = h.tmp / "main.c"
    src.write_text("int main(void) { return 0; }\n")
    archive = str(prefix / "lib" / "libbygate.a")

    def link(pkgs):
        libs = subprocess.run(["pkg-config", "--libs", *pkgs],
                              capture_output=True, text=True, check=True)
        return subprocess.run(
            ["cc", *sanitizer_flags(), "-o", str(h.tmp / "whole"), str(src),
             "-Wl,--whole-archive", archive, "-Wl,--no-whole-archive",
             *libs.stdout.split()], capture_output=True, text=True)
    r = link(requires)
    assert r.returncode == 0, r.stderr
    for dropped in requires:
        rest = [p for p in requires if p != dropped]
        assert link(rest).returncode != 0, "%s is not needed" % dropped


@timeout(240)
def test_a_destdir_install_writes_every_file_under_destdir(h):
    try:
        nobody = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        nobody = None
    dest = h.tmp / "dest"
    dest.mkdir()
    marker = h.tmp / "marker"
    marker.write_text("")
    time.sleep(0.01)
    if os.getuid() == 0 and nobody is not None:
        # the unprivileged user can write DESTDIR and nothing of the system
        os.chown(dest, nobody.pw_uid, nobody.pw_gid)
        make_install("/usr/local", destdir=dest, user=UNPRIVILEGED)
        stray = [p for p in world_writable_files_of(UNPRIVILEGED, marker)
                 if not p.startswith(str(dest) + "/") and p != str(dest)]
        assert stray == [], "written outside DESTDIR: %s" % stray[:10]
    else:
        make_install("/usr/local", destdir=dest)
    root = dest / "usr" / "local"
    assert sorted(p.name for p in dest.iterdir()) == ["usr"]
    missing = [f for f in INSTALLED if not (root / f).is_file()]
    assert missing == [], "not installed: %s" % missing
    conf = (root / "etc" / "bygate" / "bygate.conf.example").read_text()
    # the installed paths, not the DESTDIR staging paths or the checkout's
    assert '"/usr/local/lib/bygate/plugins/echo.so"' in conf
    assert '"python3 /usr/local/share/bygate/python/planner.py"' in conf
    assert '"/usr/local/var/lib/bygate"' in conf
    assert str(dest) not in conf and "../" not in conf
    unit = (root / "lib" / "systemd" / "system" / "bygated.service").read_text()
    assert ("ExecStart=/usr/local/sbin/bygated -c "
            "/usr/local/etc/bygate/bygate.conf") in unit
    pc = (root / "lib" / "pkgconfig" / "bygate.pc").read_text()
    assert "prefix=/usr/local\n" in pc


def test_prefix_usr_puts_the_configuration_in_etc_and_state_in_var(h):
    dest = h.tmp / "dest"
    make_install("/usr", destdir=dest)
    assert sorted(p.name for p in dest.iterdir()) == ["etc", "usr", "var"]
    conf = (dest / "etc" / "bygate" / "bygate.conf.example").read_text()
    assert '"/var/lib/bygate"' in conf
    assert '"/usr/lib/bygate/plugins/echo.so"' in conf
    assert (dest / "var" / "lib" / "bygate").is_dir()
    assert (dest / "usr" / "sbin" / "bygated").is_file()


def test_sysconfdir_given_is_used_for_the_example_configuration(h):
    dest = h.tmp / "dest"
    make_install("/opt/bygate", destdir=dest, SYSCONFDIR="/etc")
    assert (dest / "etc" / "bygate" / "bygate.conf.example").is_file()
    assert not (dest / "opt" / "bygate" / "etc").exists()
    unit = (dest / "opt" / "bygate" / "lib" / "systemd" / "system"
            / "bygated.service").read_text()
    assert "ExecStart=/opt/bygate/sbin/bygated -c /etc/bygate/bygate.conf" \
        in unit
