"""Isolation that holds (docs/security.md): a hijacked agent - the hostile C
plugin tests/plugins/hostile.c and the hostile Python exec handler
tests/integration/agents/hostile.py - under the default (strict) profile,
with benign tasks of other sessions running beside it. Every attack is
refused or contained, the hostile task's outcome is recorded and
explained, and every benign task completes once. The last tests run the
same attacks under the trusted profile and show what it allows.

Runs as root only (bygated switches its children to the pool user)."""

import os
import pathlib
import socket
import subprocess

from harness import wait_until
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
ROOT = os.geteuid() == 0


def hostile_types(h, profile="strict", **sandbox):
    sb = dict(sandbox, profile=profile)
    return [
        h.agent_type("hostile", sandbox=dict(sb)),
        {"name": "hostile_py", "handler": "exec", "mode": "per_task",
         "command": "python3 %s" % (AGENTS / "hostile.py"),
         "sandbox": dict(sb)},
        h.agent_type("sleep", plugin="../plugins/sleep"),
        h.agent_type("echo"),
    ]


def start(h, profile="strict", size=3, extra=(), redis_password=None,
          **sandbox):
    cfg = {"pool": {"size": size},
           "agent_types": hostile_types(h, profile, **sandbox) + list(extra)}
    if redis_password:
        cfg["redis"] = {"password": redis_password}
    return h.start_bygated(cfg)


def run(h, c, agent, content, session="s-attacker", timeout=30):
    mid, _ = pc.send(c, h.keys, session, agent, content)
    return mid, terminal(h, c, session, mid, timeout)


def terminal(h, c, session, mid, timeout=60):
    """The record of message mid once it is terminal."""
    def done():
        rec = pc.record(c, h.keys, session, mid)
        return rec if rec and rec["status"] in TERMINAL else None
    return wait_until(done, timeout, what="message %s" % mid)


def answer(h, c, agent, content, session="s-attacker"):
    mid, rec = run(h, c, agent, content, session)
    assert rec["status"] == "COMPLETED", rec
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, h.keys, session)
            if e["message_id"] == mid and e["event_type"] == "finalAnswer"][0]


def both(h, c, content, session="s-attacker"):
    """The answers of the plugin and of the Python handler."""
    return (answer(h, c, "hostile", content, session),
            answer(h, c, "hostile_py", content, session))


def workspace_of(d, agent, session):
    root = pathlib.Path(d.config["paths"]["workspace_dir"])
    return root / agent / "u-001" / "sessions" / session  # pyclient.send


def named(comm):
    """Host pids of live processes whose name is comm."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            name = open("/proc/%s/comm" % p).read().strip()
            state = open("/proc/%s/stat" % p).read().split(")")[1].split()[0]
        except (OSError, IndexError):
            continue
        if name == comm and state != "Z":
            out.append(int(p))
    return out


def child_pid(d):
    return d.child_pids()[0]


def skip_unless_root():
    if not ROOT:
        print("skipped: isolation needs bygated started as root")
        return True
    return False


def victim_file(h, c, d):
    """A benign echo task of session s-victim ran; a file of its own in its
    workspace, owned by the pool user like anything a task writes."""
    answer(h, c, "echo", "hello", session="s-victim")
    ws = workspace_of(d, "echo", "s-victim")
    secret = ws / "secret.txt"
    secret.write_text("victim data\n")
    st = ws.stat()
    os.chown(secret, st.st_uid, st.st_gid)
    os.chmod(secret, 0o600)
    return ws, secret


# ---- files -------------------------------------------------------------

def test_hostile_cannot_touch_other_sessions_types_config_state_or_log(h):
    if skip_unless_root():
        return
    d = start(h)
    c = h.client()
    ws, secret = victim_file(h, c, d)
    root = pathlib.Path(d.config["paths"]["workspace_dir"])
    state = pathlib.Path(d.config["paths"]["state_dir"])
    # Readable by mode, as a careless install leaves them: what refuses
    # the reads below is the task's confinement, not the file's mode.
    for path in (d.config_path, d.log_path):
        os.chmod(path, 0o644)
    targets = {
        "read %s" % secret: "EACCES",
        "write %s" % (ws / "planted.txt"): "EACCES",
        "list %s" % ws: "EACCES",
        "list %s" % ws.parent: "EACCES",
        "list %s" % (root / "echo"): "EACCES",
        "list %s" % root: "EACCES",
        "read %s" % d.config_path: "EACCES",
        "read %s" % (state / "data.mdb"): "EACCES",
        "read %s" % d.log_path: "EACCES",
        "list %s" % state: "EACCES",
    }
    for attack, want in targets.items():
        got = both(h, c, attack)
        assert got == (want, want), (attack, got)
    assert not (ws / "planted.txt").exists()
    # Its own session's workspace and private directory: allowed.
    for agent in ("hostile", "hostile_py"):
        own = workspace_of(d, agent, "s-attacker")
        assert answer(h, c, agent, "write %s" % (own / "mine.txt")) == "ok"
        assert answer(h, c, agent, "read %s" % (own / "mine.txt")) == "ok"


def test_another_agent_types_secrets_are_not_in_a_task_process(h):
    """Every child holds every agent type's env; a task process keeps only
    its own agent type's (the others are wiped from its copy)."""
    if skip_unless_root():
        return
    keeper = h.agent_type("keeper", plugin="echo",
                          env={"API_KEY": "sk-keeper-4f9a2c"})
    start(h, size=1, extra=[keeper])
    c = h.client()
    assert answer(h, c, "keeper", "x") == "x"
    rev = "sk-keeper-4f9a2c"[::-1]
    assert answer(h, c, "hostile", "memscan %s" % rev) == "absent"
    # The probe works: the hostile type's own env is there.
    mine = h.agent_type("hostile2", plugin="hostile",
                        env={"API_KEY": "sk-mine-77d1e0"})
    h2 = start(h, size=1, extra=[mine])
    c2 = h.client()
    assert answer(h, c2, "hostile2", "memscan %s"
                  % "sk-mine-77d1e0"[::-1]) == "found"
    assert h2.alive


def test_another_sessions_task_and_output_are_not_in_a_task_process(h):
    """The rings and the child's heap are inherited by each task process:
    an earlier task of another session (its content, its output) has been
    wiped from them. One child, so both tasks run on it."""
    if skip_unless_root():
        return
    secret = "victim-prompt-8e1d55"
    start(h, size=1)
    c = h.client()
    assert answer(h, c, "echo", secret, session="s-victim") == secret
    assert answer(h, c, "hostile", "memscan %s" % secret[::-1]) == "absent"


def test_hostile_cannot_find_or_use_the_redis_password(h):
    if skip_unless_root():
        return
    r = h.start_redis(["--requirepass", "s3cret-pw"])
    d = h.start_bygated({"pool": {"size": 2},
                         "redis": {"password": "s3cret-pw"},
                         "agent_types": hostile_types(h)}, redis=r)
    c = h.client(redis=r, password="s3cret-pw")
    for env in both(h, c, "env"):
        assert "s3cret-pw" not in env and "REDIS" not in env, env
        names = sorted(line.split("=", 1)[0] for line in env.splitlines())
        allowed = {"PATH", "LANG", "TZ", "HOME", "TMPDIR", "LD_PRELOAD"}
        assert all(n in allowed or n.startswith(("LC_", "BYGATE_"))
                   for n in names), names
    pid = d.pid
    for attack in ("read /proc/%d/environ" % pid, "read /proc/%d/mem" % pid,
                   "read %s" % d.config_path):
        assert both(h, c, attack) == ("EACCES", "EACCES"), attack
    assert both(h, c, "connect 127.0.0.1 %d" % r.port) == ("EACCES",
                                                            "EACCES")


# ---- network -------------------------------------------------------------

def test_network_none_allows_only_unix_sockets(h):
    if skip_unless_root():
        return
    start(h)
    c = h.client()
    for kind in ("inet", "inet6", "udp", "raw", "packet"):
        assert both(h, c, "socket %s" % kind) == ("EACCES", "EACCES"), kind
    assert both(h, c, "socket unix") == ("ok", "ok")


def test_network_connect_reaches_listed_ports_only(h):
    if skip_unless_root():
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        start(h, network="connect", connect_ports=[port])
        c = h.client()
        assert both(h, c, "connect 127.0.0.1 %d" % port) == ("ok", "ok")
        assert both(h, c, "connect 127.0.0.1 %d" % h.redis.port) == (
            "EACCES", "EACCES")
        for kind in ("raw", "packet"):
            assert both(h, c, "socket %s" % kind) == ("EACCES", "EACCES")
        assert answer(h, c, "hostile", "socket listen") == "EACCES"
    finally:
        listener.close()


# ---- processes -----------------------------------------------------------

def test_fork_bomb_is_capped_and_gone_when_the_task_ends(h):
    if skip_unless_root():
        return
    start(h, processes=64)
    c = h.client()
    for agent in ("hostile", "hostile_py"):
        got = answer(h, c, agent, "fork 200")
        forked = int(got.split()[1])
        assert forked < 200 and got.endswith("EAGAIN"), got
        wait_until(lambda: not named("bghostile-kid"), 10,
                   what="the forked processes to be gone")


def test_setsid_double_fork_is_gone_at_task_end(h):
    if skip_unless_root():
        return
    start(h)
    c = h.client()
    assert both(h, c, "escape") == ("ok", "ok")
    wait_until(lambda: not named("bghostile-esc"), 10,
               what="the escaped daemons to be gone")


def test_setsid_double_fork_is_gone_after_kill_9_of_bygated(h):
    if skip_unless_root():
        return
    d = start(h)
    c = h.client()
    pc.send(c, h.keys, "s-attacker", "hostile", "escape_wait 60000")
    pc.send(c, h.keys, "s-attacker2", "hostile_py", "escape_wait 60000")
    wait_until(lambda: len(named("bghostile-esc")) == 2, 20,
               what="two escaped daemons")
    d.kill()
    wait_until(lambda: not named("bghostile-esc"), 10,
               what="the escaped daemons to die with bygated")


# ---- resources -----------------------------------------------------------

def resource_limited(rec, limit):
    assert rec["status"] == "FAILED", rec
    assert rec["error_code"] == "RESOURCE_LIMIT", rec
    assert limit in rec["error_message"], rec


def test_memory_over_the_limit_fails_alone_with_resource_limit(h):
    if skip_unless_root():
        return
    start(h, size=4, memory_mb=1024)
    c = h.client()
    benign = [pc.send(c, h.keys, "s-b%d" % i, "sleep", "300")[0]
              for i in range(4)]
    asan = "asan" in str(h.bin("bygated"))
    agents = ("hostile_py",) if asan else ("hostile", "hostile_py")
    for agent in agents:
        _, rec = run(h, c, agent, "alloc 4096")
        resource_limited(rec, "memory_mb")
    for i, mid in enumerate(benign):
        rec = terminal(h, c, "s-b%d" % i, mid)
        assert rec["status"] == "COMPLETED", rec
    # A task within the limit still runs.
    assert answer(h, c, "hostile_py", "alloc 64") == "allocated 67108864"


def test_cpu_and_file_size_limits_fail_the_task_with_resource_limit(h):
    if skip_unless_root():
        return
    start(h, cpu_seconds=1, file_size_mb=1)
    c = h.client()
    _, rec = run(h, c, "hostile", "cpu")
    resource_limited(rec, "cpu_seconds")
    _, rec = run(h, c, "hostile", "fsize")
    resource_limited(rec, "file_size_mb")
    assert answer(h, c, "echo", "still here") == "still here"


# ---- privileges and other processes --------------------------------------

def test_device_nodes_and_setuid_files_are_refused(h):
    if skip_unless_root():
        return
    start(h)
    c = h.client()
    assert both(h, c, "mknod") == ("EPERM", "EPERM")
    for got in both(h, c, "setuid"):
        assert got == "chown EPERM chmod EPERM setuid no", got


def test_cannot_signal_trace_or_read_bygated_or_another_child(h):
    if skip_unless_root():
        return
    d = start(h, size=2)
    c = h.client()
    others = d.child_pids()
    for pid in [d.pid] + others:
        assert both(h, c, "signal %d 0" % pid) == ("ESRCH", "ESRCH"), pid
        assert both(h, c, "read /proc/%d/mem" % pid) == ("EACCES",
                                                         "EACCES"), pid
        assert both(h, c, "read /proc/%d/environ" % pid) == ("EACCES",
                                                             "EACCES"), pid
        assert answer(h, c, "hostile", "ptrace %d" % pid) == "EPERM"
    assert d.alive
    for got in both(h, c, "whoami"):
        uid = int(got.split()[1])
        assert uid != 0, got


# ---- output --------------------------------------------------------------

def test_output_flood_and_control_characters_leave_the_log_bounded(h):
    if skip_unless_root():
        return
    d = start(h)
    c = h.client()
    before = os.path.getsize(d.log_path)
    assert both(h, c, "spew 20") == ("ok", "ok")
    grown = os.path.getsize(d.log_path) - before
    assert grown < 2 * 1024 * 1024, grown  # 40 MiB were written
    text = d.log_text()
    for line in text.splitlines():
        assert "bygated ready: FORGED" not in line or \
            not line.startswith("2026-01-01"), line
        assert "\x1b" not in line and "\x07" not in line, repr(line)
    assert "not logged" in text


# ---- beside benign work --------------------------------------------------

def test_benign_tasks_beside_every_attack_complete_once(h):
    if skip_unless_root():
        return
    d = start(h, size=4, processes=64, memory_mb=1024)
    c = h.client()
    benign = [(("s-b%d" % i), pc.send(c, h.keys, "s-b%d" % i, "sleep",
                                      "200")[0]) for i in range(12)]
    attacks = ["fork 200", "escape", "alloc 4096", "spew 4", "mknod",
               "setuid", "socket raw", "signal %d 9" % d.pid,
               "connect 127.0.0.1 %d" % h.redis.port]
    for a in attacks:
        pc.send(c, h.keys, "s-attacker", "hostile", a)
        pc.send(c, h.keys, "s-attacker", "hostile_py", a)
    for session, mid in benign:
        rec = terminal(h, c, session, mid)
        assert rec["status"] == "COMPLETED", rec
        finals = [e for e in pc.events(c, h.keys, session)
                  if e["message_id"] == mid and
                  e["event_type"] == "finalAnswer"]
        assert len(finals) == 1, finals
    assert d.alive


# ---- the trusted profile -------------------------------------------------

def test_trusted_profile_shows_what_it_allows(h):
    """trusted runs the task in the child itself: the pool user's rights
    and the base seccomp filter only. Other sessions' files and the
    network are reachable; devices, setuid bits, ptrace and bygated stay
    out of reach (pool user, PID namespace, base filter)."""
    if skip_unless_root():
        return
    d = start(h, profile="trusted")
    c = h.client()
    ws, secret = victim_file(h, c, d)
    assert answer(h, c, "hostile", "read %s" % secret) == "ok"
    assert answer(h, c, "hostile", "socket inet") == "ok"
    assert answer(h, c, "hostile", "connect 127.0.0.1 %d"
                  % h.redis.port) == "ok"
    assert answer(h, c, "hostile", "mknod") == "EPERM"
    assert answer(h, c, "hostile", "signal %d 0" % d.pid) == "ESRCH"
    assert answer(h, c, "hostile", "ptrace %d" % d.pid) == "EPERM"
    assert "s3cret" not in answer(h, c, "hostile", "env")
    # No per-task process tree: an escaped daemon outlives its task...
    assert answer(h, c, "hostile", "escape") == "ok"
    wait_until(lambda: len(named("bghostile-esc")) == 1, 10,
               what="the escaped daemon")
    assert answer(h, c, "hostile", "whoami").startswith("uid ")
    assert len(named("bghostile-esc")) == 1
    # ... but not its child's PID namespace.
    d.kill()
    wait_until(lambda: not named("bghostile-esc"), 10,
               what="the escaped daemon to die with bygated")
    assert "profile \"trusted\"" in d.log_text()


# ---- what the kernel provides --------------------------------------------

def test_missing_protection_refuses_start_unless_require_is_false(h):
    """A kernel without Landlock (fault point sandbox.no_landlock): bygated
    names what is missing and refuses to start; sandbox.require = false
    starts it with a warning. The start-up log says what each agent type
    gets, and -T prints the effective sandbox."""
    d = h.bygated({"agent_types": hostile_types(h)})
    d.env = dict(d.env, BYGATE_FAULT="sandbox.no_landlock")
    d.start(wait=False)
    d.wait_exit(15)
    assert d.returncode != 0
    assert "the kernel does not provide: Landlock" in d.log_text()
    d = h.bygated({"sandbox": {"require": False},
                   "agent_types": hostile_types(h)})
    d.env = dict(d.env, BYGATE_FAULT="sandbox.no_landlock")
    d.start()
    text = d.log_text()
    assert "sandbox.require = false: starting without Landlock" in text
    assert "agent type hostile: profile strict" in text


def test_dump_prints_each_agent_types_effective_sandbox(h):
    d = h.bygated({"sandbox": {"memory_mb": 512},
                   "agent_types": hostile_types(h, network="connect",
                                                connect_ports=[443])})
    d.write_config()
    out = subprocess.run([str(h.bin("bygated")), "-c", str(d.config_path),
                          "-T"], capture_output=True, text=True,
                         check=True).stdout
    assert ('# effective sandbox: {"profile":"strict","network":"connect",'
            '"connect_ports":[443]') in out, out
    assert '"memory_mb":512' in out
    assert "# sandbox support of this kernel and process: Landlock" in out


def test_persistent_program_is_confined_to_its_agent_types_tree(h):
    """A persistent program serves every session of its agent type (the
    documented trade-off): it reaches them, and nothing else."""
    if skip_unless_root():
        return
    persistent = {"name": "hostile_pers", "handler": "exec",
                  "command": "python3 %s" % (AGENTS / "hostile.py")}
    d = start(h, extra=[persistent])
    c = h.client()
    ws, secret = victim_file(h, c, d)
    answer(h, c, "hostile_pers", "whoami", session="s-other")
    other = workspace_of(d, "hostile_pers", "s-other") / "note.txt"
    other.write_text("same type\n")
    os.chown(other, ws.stat().st_uid, ws.stat().st_gid)
    assert answer(h, c, "hostile_pers", "read %s" % secret) == "EACCES"
    assert answer(h, c, "hostile_pers", "read %s" % d.config_path) == "EACCES"
    assert answer(h, c, "hostile_pers", "read %s" % other) == "ok"
    assert answer(h, c, "hostile_pers", "socket inet") == "EACCES"
