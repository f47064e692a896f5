"""Who a child is (issue 9, "Identity", "Output"): started as root, bygated
runs its children as pool.user with no supplementary group and no
capability, each PID 1 of its own PID namespace, with a built environment
and fds 0-5 only; a child cannot signal bygated nor read its environment or
memory; workspace directories belong to the pool user and other sessions
cannot be listed; a child's stdout/stderr reach bygated's log escaped,
prefixed and bounded, and an id cannot forge a log line. Probes:
tests/plugins/identity.c. Root only (CI runs as root)."""

import os
import pwd
import re
import signal
import subprocess

from harness import proc, render, wait_until
import pyclient as pc

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
POOL_USER = "bygate"
# What a child may find in its environment (spawn.h; the task's own
# variables come from the child: HOME, TMPDIR, BYGATE_*).
ALLOWED_ENV = {"PATH", "LANG", "TZ", "HOME", "TMPDIR", "ASAN_OPTIONS",
               "UBSAN_OPTIONS", "LSAN_OPTIONS"}


def need_root():
    """Skip (with the reason) unless the suite runs as root with the pool
    user present (`make test` creates it)."""
    if os.geteuid() != 0:
        return "needs root (bygated switches the children to pool.user)"
    try:
        pwd.getpwnam(POOL_USER)
    except KeyError:
        return "the pool user %r is missing (make user)" % POOL_USER
    return None


def skip_unless_root(fn):
    def wrapped(h):
        why = need_root()
        if why:
            print("SKIP %s: %s" % (fn.__name__, why))
            return
        return fn(h)
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def start(h, env=None, **pool):
    over = {"pool": dict({"size": 1}, **pool),
            "agent_types": [h.agent_type("identity")]}
    if env is None:
        return h.start_bygated(over)
    return h.start_bygated(over, env=env)


def answer(h, c, content, session="s-id", status="COMPLETED"):
    """Run one identity probe to its end; its final answer text."""
    mid, _ = pc.send(c, h.keys, session, "identity", content)

    def done():
        rec = pc.record(c, h.keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    rec = wait_until(done, 30, what="identity probe %r" % content[:40])
    assert rec["status"] == status, rec
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, h.keys, session)
            if e["message_id"] == mid and e["event_type"] == "finalAnswer"][0]


@skip_unless_root
def test_children_run_as_the_pool_user_without_groups_or_capabilities(h):
    d = start(h)
    c = h.client()
    pw = pwd.getpwnam(POOL_USER)
    assert answer(h, c, "ids") == "uid %d gid %d groups 0" % (
        pw.pw_uid, pw.pw_gid)
    caps = dict(line.split(":", 1) for line in
                answer(h, c, "caps").splitlines())
    assert {k: int(v, 16) for k, v in caps.items()} == {
        "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    d.wait_log("children run as user %s" % POOL_USER, timeout=5)
    # The child process itself (as bygated sees it) runs as the pool user.
    for pid in d.child_pids():
        with open("/proc/%d/status" % pid) as f:
            uid = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
        assert set(map(int, uid)) == {pw.pw_uid}


@skip_unless_root
def test_each_child_is_init_of_its_own_pid_namespace(h):
    d = start(h, size=2)
    wait_until(lambda: len(d.child_pids()) == 2, 10, what="two children")
    own = os.readlink("/proc/self/ns/pid")
    spaces = {os.readlink("/proc/%d/ns/pid" % p) for p in d.child_pids()}
    assert len(spaces) == 2 and own not in spaces
    for pid in d.child_pids():
        with open("/proc/%d/status" % pid) as f:
            nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
        assert nspid[-1] == "1", nspid


@skip_unless_root
def test_environment_is_built_not_inherited(h):
    r = h.start_redis(args=("--requirepass", "sekret"))
    env = proc.clean_env({"REDIS_PASSWORD": "sekret",
                          "BYGATE_CONFIG": "/etc/bygate/secret.conf",
                          "AWS_SECRET_ACCESS_KEY": "leak", "LANG": "C.UTF-8"})
    d = h.bygated({"pool": {"size": 1},
                   "agent_types": [h.agent_type("identity")]},
                  redis=r, env=env)
    d.start()
    c = h.client(r, password="sekret")
    names = set(answer(h, c, "env").split())
    assert "REDIS_PASSWORD" not in names and "BYGATE_CONFIG" not in names
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert "PATH" in names and "LANG" in names
    odd = {n for n in names if n not in ALLOWED_ENV
           and not n.startswith(("LC_", "BYGATE_"))}
    assert odd == set(), odd


@skip_unless_root
def test_a_child_cannot_signal_bygated_nor_read_its_environ_or_memory(h):
    d = start(h)
    c = h.client()
    assert answer(h, c, "kill %d" % d.pid) != "ok"
    assert answer(h, c, "open /proc/%d/environ" % d.pid) in (
        "EACCES", "EPERM", "ENOENT")
    assert answer(h, c, "open /proc/%d/mem" % d.pid) in (
        "EACCES", "EPERM", "ENOENT")
    assert d.alive()


@skip_unless_root
def test_a_child_holds_only_fds_0_to_5(h):
    start(h)
    c = h.client()
    assert answer(h, c, "fds") == "0 1 2 3 4 5"


@skip_unless_root
def test_children_die_with_bygated_under_kill_9(h):
    d = start(h, size=2)
    wait_until(lambda: len(d.child_pids()) == 2, 10, what="two children")
    kids = d.child_pids()
    d.kill()
    wait_until(lambda: not any(proc.pid_alive(p) for p in kids), 10,
               what="the children of a killed bygated to die")


def as_pool_user(*argv):
    """Run argv as the pool user; its CompletedProcess."""
    pw = pwd.getpwnam(POOL_USER)
    return subprocess.run(list(argv), user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=[], capture_output=True, text=True,
                          timeout=30)


@skip_unless_root
def test_session_directories_belong_to_the_pool_user_and_are_not_listable(h):
    d = start(h)
    c = h.client()
    answer(h, c, "ids", session="s-one")
    answer(h, c, "ids", session="s-two")
    root = d.config["paths"]["workspace_dir"]
    pw = pwd.getpwnam(POOL_USER)
    sessions = None
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.basename(dirpath) == "sessions":
            sessions = dirpath
    assert sessions, "no sessions directory under %s" % root
    for s in ("s-one", "s-two"):
        st = os.stat(os.path.join(sessions, s))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (
            pw.pw_uid, pw.pw_gid, 0o700), (s, oct(st.st_mode))
    for path in (root, os.path.dirname(os.path.dirname(sessions)),
                 os.path.dirname(sessions), sessions):
        out = as_pool_user("/bin/ls", path)
        assert out.returncode != 0 and "Permission denied" in out.stderr, (
            path, out.stdout)
    # ... while its own session stays reachable by name.
    out = as_pool_user("/bin/ls", os.path.join(sessions, "s-one"))
    assert out.returncode == 0, out.stderr
    assert oct(os.stat(d.config["paths"]["state_dir"]).st_mode & 0o777) in (
        "0o700", "0o711")


@skip_unless_root
def test_bygated_refuses_to_start_without_the_pool_user(h):
    d = h.bygated({"pool": {"size": 1, "user": "bygate-no-such-user"}})
    d.start(wait=False)
    status = d.wait_exit(timeout=15)
    assert status == 1, status
    text = d.log_text()
    assert "pool.user \"bygate-no-such-user\"" in text and "useradd" in text


@skip_unless_root
def test_a_workspace_dir_the_pool_user_cannot_reach_stops_bygated(h):
    closed = h.tmp / "closed"
    closed.mkdir()
    os.chmod(closed, 0o700)  # what mkdtemp makes
    d = h.bygated({"pool": {"size": 1},
                   "paths": {"workspace_dir": str(closed / "ws")}})
    d.start(wait=False)
    assert d.wait_exit(timeout=15) == 3
    assert ("the pool user %s (uid %d) cannot reach workspace_dir %s: %s "
            "is not open to it" % (POOL_USER, pwd.getpwnam(POOL_USER).pw_uid,
                                   closed / "ws", closed)) in d.log_text()


@skip_unless_root
def test_started_unprivileged_bygated_keeps_its_uid_and_the_rest_holds(h):
    """bygated run as the pool user itself (setpriv): no switch, no PID
    namespace, said at start; built environment, fds 0-5 and no
    capability still hold."""
    pw = pwd.getpwnam(POOL_USER)
    cfg = h.config({"pool": {"size": 1},
                    "agent_types": [h.agent_type("identity")]})
    base = os.path.dirname(cfg["paths"]["state_dir"])
    for top, _, _ in os.walk(base):
        os.chown(top, pw.pw_uid, pw.pw_gid)
    conf = os.path.join(base, "bygate.conf")
    with open(conf, "w") as f:
        f.write(render(cfg))
    log = os.path.join(base, "bygated.log")
    env = proc.clean_env({"SECRET_OF_BYGATED": "x"})
    h.spawn(["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
             "--clear-groups", "--", h.bin("bygated"), "-c", conf],
            label="bygated (unprivileged)", env=env, log_path=log)

    def log_text():
        with open(log, errors="replace") as f:
            return f.read()
    wait_until(lambda: "bygated ready" in log_text(), 30,
               what="the unprivileged bygated to be ready")
    assert ("children run as uid %d (bygated is not root): no PID namespace "
            "per child, no user switch" % pw.pw_uid) in log_text()
    c = h.client()
    assert answer(h, c, "ids") == "uid %d gid %d groups 0" % (
        pw.pw_uid, pw.pw_gid)
    names = set(answer(h, c, "env").split())
    assert "SECRET_OF_BYGATED" not in names and "PATH" in names
    assert answer(h, c, "fds") == "0 1 2 3 4 5"
    caps = dict(line.split(":", 1) for line in
                answer(h, c, "caps").splitlines())
    assert all(int(caps[k], 16) == 0
               for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"))


def switch_failed(h, pw):
    return "slot 0: cannot start %s: setresuid to %s:%s (uid %d gid %d) " \
        "failed in the new child: Operation not permitted" % (
            h.bin("bygate-child"), POOL_USER, POOL_USER, pw.pw_uid,
            pw.pw_gid)


@skip_unless_root
def test_a_failed_user_switch_at_start_stops_bygated_saying_why(h):
    d = h.bygated({"pool": {"size": 1},
                   "agent_types": [h.agent_type("identity")]})
    d.env = dict(d.env, BYGATE_FAULT="spawn.setuid")  # fault point
    d.start(wait=False)
    assert d.wait_exit(timeout=15) == 3
    assert switch_failed(h, pwd.getpwnam(POOL_USER)) in d.log_text()


@skip_unless_root
def test_a_failed_user_switch_on_respawn_is_logged_and_retried(h):
    d = h.bygated({"pool": {"size": 1},
                   "agent_types": [h.agent_type("identity")]})
    d.env = dict(d.env, BYGATE_FAULT="spawn.setuid:2")  # the respawn
    d.start()
    pw = pwd.getpwnam(POOL_USER)
    kid = d.child_pids()[0]
    os.kill(kid, signal.SIGKILL)
    d.wait_log(switch_failed(h, pw), timeout=10)
    c = h.client()
    assert answer(h, c, "ids").startswith("uid %d " % pw.pw_uid)


def control_bytes(data):
    """Bytes of the log that a terminal would interpret (all but '\\n')."""
    return [b for b in data if (b < 0x20 and b != 0x0a) or b == 0x7f]


@skip_unless_root
def test_child_output_is_escaped_and_prefixed_and_cannot_forge_a_line(h):
    d = start(h)
    c = h.client()
    forged = "1999-01-01T00:00:00.000Z error FORGED by a child"
    assert answer(h, c, "print hello\x1b[31m\\red\n%s\n" % forged) == "ok"
    d.wait_log("FORGED by a child", timeout=10)
    with open(d.log_path, "rb") as f:
        data = f.read()
    assert control_bytes(data) == []
    lines = data.decode("utf-8").splitlines()
    assert not [ln for ln in lines if ln.startswith("1999-01-01")]
    # ESC escaped (a backslash may be doubled where the child escapes its
    # task's output itself), on a line of bygated's own.
    assert [ln for ln in lines if re.search(
        r" warn  slot 0 pid \d+: .*hello\\x1b\[31m\\+red$", ln)], \
        "escaped line missing"


@skip_unless_root
def test_a_newline_in_an_id_does_not_forge_a_log_line(h):
    d = start(h)
    c = h.client()
    forged = "1999-01-01T00:00:00.000Z error FORGED by an id"
    cmd = pc.ask_command("s-nl\n" + forged, "identity", "ids",
                         message_id="msg-nl\n" + forged)
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds)
    # Whatever bygated makes of the entry (it refuses such a session id),
    # its log keeps one line per record.
    wait_until(lambda: "FORGED" in d.log_text(), 15,
               what="the entry with a newline in its ids to be logged")
    with open(d.log_path, "rb") as f:
        data = f.read()
    assert control_bytes(data) == []
    lines = data.decode("utf-8").splitlines()
    assert not [ln for ln in lines if ln.startswith("1999-01-01")]
    assert d.alive()


@skip_unless_root
def test_a_child_flooding_stderr_leaves_the_log_bounded(h):
    d = start(h)
    c = h.client()
    before = os.path.getsize(d.log_path)
    assert answer(h, c, "flood 20") == "ok"
    assert answer(h, c, "ids")  # the child still serves
    grown = os.path.getsize(d.log_path) - before
    assert grown < 2 * 1024 * 1024, grown
    with open(d.log_path, "rb") as f:
        data = f.read()
    assert control_bytes(data) == []
    data.decode("utf-8")  # invalid UTF-8 was escaped too
    text = data.decode("utf-8")
    # Capped by bygated's budget per child (the drop is counted and
    # reported when the child ends) or, first, by the child's per task.
    assert re.search(r"more than \d+ bytes of output|not logged", text)
    if "bytes of output within" in text:
        d.stop(signal.SIGTERM)
        assert "output dropped (" in d.log_text()
