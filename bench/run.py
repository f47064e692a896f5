#!/usr/bin/env python3
"""`make bench`: the end-to-end benchmark of bygated and its floors, each
phase on a fresh private redis-server on a free loopback port.

  1. full load: build/bench/loadgen sends N no-op tasks (agent type `noop`,
     plugin noop.so) over S sessions as fast as Redis takes them, to bygated
     with a pool of P children; tasks/s, latency p50/p99, Redis commands and
     CPU per task, bygated's and its children's CPU per task; in each
     paths.durability mode (none, process, sync: the journal's cost), the
     default mode (process) giving the full-load figures;
  2. closed loop: one task in flight at a time, latency p50/p99;
  3. recovery (bench/recovery.py): a fresh bygated over 1,000 entries left
     in its consumer's pending list, and a restart after kill -9;
  4. the bare stream floor (build/bench/stream_floor);
  5. the wire floor (<repo>/../shared/bench/wire_floor.py N 10 1 piped into
     redis-cli --pipe), and bygate's tasks/s divided by it;
  6. the ring benchmark (build/bench/ring_bench), when built;
  7. handlers: --handler-tasks tasks (default 2,000) through the C noop
     and echo plugins, a no-op Python exec agent (bench/noop_agent.py) kept
     warm (mode persistent) and the same agent started per task (per_task,
     at most 500 tasks: an interpreter start each); then the persistent
     agent waiting 50 ms per task (an LLM call) with max_inflight 1 and 8
     (at most 500 tasks each);
  8. drain (bench/peers/drain.py): N no-op tasks prefilled into Redis,
     then bygated started and timed until all are acked, and the same
     drain by BullMQ (Node, installed with npm into bench/peers/node_modules
     when node and npm are present), interleaved --repeat times; medians;
  9. sandbox cost: the noop plugin at full load and in the closed loop with
     pool.sandbox = false, the trusted profile and the default strict
     profile (a confined process per task), interleaved, and the
     machine's fork floor (build/bench/fork_floor).

Last, the goal check of issue 16: each figure against the reference
measured in the same run.

Every phase but the sandbox cost runs its agent types under sandbox.profile
"trusted" (the task in the child itself), so that its figures are the task
path's; the sandbox's own cost is phase 9 (docs/security.md).

The full load (in each durability mode), the recovery phases and each floor
run --repeat times (default 3), each time on a fresh redis-server, and the
run with the median tasks/s (the median time) is reported. --perf
adds one full-load run under `perf record` and prints bygated's top symbols.
Prints one readable report and, last, one JSON line with every figure.
Standard library only; processes are stopped by pid at the end, also on
failure or Ctrl-C. Exit status 1 if any phase failed.

    python3 bench/run.py --build build [--tasks N] [--quick]
"""

import argparse
import json
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from bglib import proc  # noqa: E402
from bglib.bygated import Bygated, BygatedError  # noqa: E402
from bglib.keys import Keys  # noqa: E402
from bglib.redisserver import RedisServer, RedisStartError  # noqa: E402
from bglib.resp import RespError  # noqa: E402
# bench/peers/drain.py (and compare.py) `import run`: when this file runs as
# a script, that must be this very module, not a second copy of it (whose
# PhaseError the phases here would not catch).
sys.modules.setdefault("run", sys.modules[__name__])
import recovery  # noqa: E402  (bench/recovery.py: the recovery phases)
import workflows  # noqa: E402  (bench/workflows.py: the workflow figures)
import triggers  # noqa: E402  (bench/triggers.py: the trigger figures)

WIRE_FLOOR = REPO.parent / "shared" / "bench" / "wire_floor.py"
AGENT_TYPE = "noop"
WORKER_ID = "bench-w1"
GROUP = "agent_engines"
TICK = os.sysconf("SC_CLK_TCK")
RULE = "-" * 72
# Commands the load generator sends per task (HSET, EXPIRE, XADD); its
# XREADs are counted by the program itself.
CLIENT_COMMANDS = {"hset": 1, "expire": 1, "xadd": 1}
# At full load the reader XREADs at most every READ_GAP_MS: completion times
# are up to that late, and the reader's own Redis load stays small.
READ_GAP_MS = 2
# paths.durability values the full load runs with (journal cost), and the
# one of every other phase and of the summary's ratios (bygated's default).
DURABILITY_MODES = ("none", "process", "sync")
DEFAULT_DURABILITY = "process"


class PhaseError(Exception):
    """A phase could not produce its figures; the message says why."""


def say(text=""):
    print(text, flush=True)


def per_task(value, n):
    return value / n if n else 0.0


# ---- measurements ---------------------------------------------------------

def parse_info(text):
    """INFO text -> {field: value} (values of commandstats lines as dicts)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("cmdstat_"):
            out[key] = dict(kv.split("=", 1) for kv in value.split(","))
        else:
            out[key] = value
    return out


class RedisSnapshot:
    """INFO commandstats and INFO cpu of one moment. The benchmark's own
    INFO calls are left out of the command counts."""

    def __init__(self, client):
        stats = parse_info(client.call("INFO", "commandstats"))
        cpu = parse_info(client.call("INFO", "cpu"))
        self.cpu_s = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
        self.calls, self.usec = {}, {}
        for key, v in stats.items():
            name = key[len("cmdstat_"):]
            if name == "info":
                continue
            self.calls[name] = int(v["calls"])
            self.usec[name] = int(v["usec"])

    def delta(self, before):
        """{command: (calls, usec)} of the commands run since `before`, and
        the Redis CPU seconds used meanwhile."""
        cmds = {}
        for name, calls in self.calls.items():
            dc = calls - before.calls.get(name, 0)
            du = self.usec[name] - before.usec.get(name, 0)
            if dc or du:
                cmds[name] = (dc, du)
        return cmds, self.cpu_s - before.cpu_s


def proc_ticks(pid):
    """(utime + stime, cutime + cstime) of a process in clock ticks, or
    None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def reaped_cpu_s():
    """User + system CPU seconds of this process's reaped children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def proc_counters(pid):
    """{syscr, syscw, voluntary_ctxt_switches, nonvoluntary_ctxt_switches}
    of a process (missing ones are 0)."""
    out = {}
    for name in ("io", "status"):
        try:
            with open("/proc/%d/%s" % (pid, name)) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("syscr", "syscw", "voluntary_ctxt_switches",
                               "nonvoluntary_ctxt_switches"):
                        out[key] = int(value)
        except (OSError, ValueError):
            pass
    return out


class CpuSnapshot:
    """CPU ticks of bygated and of each of its live children, theirs and
    their reaped processes' (the children that exited meanwhile are in
    bygated's cutime + cstime once reaped), and
    bygated's read/write system calls and context switches."""

    def __init__(self, pid):
        self.pid = pid
        self.own, self.reaped = proc_ticks(pid) or (0, 0)
        self.counters = proc_counters(pid)
        self.children = {}
        for c in proc.children_of(pid):
            t = proc_ticks(c)
            if t is not None:
                # With the processes a child reaped itself (the strict
                # profile's task processes, per_task programs).
                self.children[c] = t[0] + t[1]

    def delta(self, before):
        """(bygated seconds, children seconds, {counter: increase})."""
        kids = sum(t - before.children.get(c, 0)
                   for c, t in self.children.items())
        kids -= sum(t for c, t in before.children.items()
                    if c not in self.children)
        kids += self.reaped - before.reaped
        counters = {k: v - before.counters.get(k, 0)
                    for k, v in self.counters.items()}
        return (self.own - before.own) / TICK, kids / TICK, counters


# ---- fixtures -------------------------------------------------------------

class Run:
    """Owns the temporary directory and every process of the run."""

    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="bygate-bench-"))
        # Passable (not listable) by the pool user the children run as.
        os.chmod(self.tmp, 0o711)
        self.keys = Keys("v1")
        self.owned = []
        self.n_dirs = 0
        self.shm_dirs = []

    def dir(self, name):
        self.n_dirs += 1
        d = self.tmp / ("%02d-%s" % (self.n_dirs, name))
        d.mkdir(parents=True)
        return d

    def redis(self, name):
        r = RedisServer(self.dir("redis-" + name),
                        label="redis-server (bench %s)" % name)
        self.owned.append(r)
        try:
            r.start()
        except RedisStartError as e:
            raise PhaseError(str(e)) from None
        return r

    def bygated(self, redis, name, durability="process",
                agent_type=AGENT_TYPE, log_level="warn", worker=None,
                wait=True, agent=None, sandbox="trusted", sched=None,
                agents=None, extra=None):
        """A bygated on `redis` (pool --pool, worker WORKER_ID and the
        `worker` settings, a fresh state directory), started and, with wait,
        ready; without wait it is only configured (call start() to run it).
        Its one agent type: `agent` (an agent_types entry), else the plugin
        <agent_type>.so; or the agent_types entries `agents`."""
        base = self.dir("bygated-" + name)
        for sub in ("state", "workspace"):
            (base / sub).mkdir()
        # Workspaces on tmpfs, as docs/workspaces.md advises for
        # production: on this VM's ext4 (no journal, discard) every
        # per-attempt mkdir scans recently deleted inodes.
        ws = base / "workspace"
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            ws = pathlib.Path(tempfile.mkdtemp(prefix="bygate-bench-ws-",
                                               dir="/dev/shm"))
            os.chmod(ws, 0o711)
            self.shm_dirs.append(ws)
        cfg = {
            "redis": {"host": redis.host, "port": redis.port},
            "worker": dict({"id": WORKER_ID, "block_ms": 2000},
                           **(worker or {})),
            "pool": {"size": self.args.pool},
            "paths": {"state_dir": str(base / "state"),
                      "workspace_dir": str(ws),
                      "durability": durability},
            "log": {"level": log_level},
            "agent_types": agents or [agent or {
                "name": agent_type, "handler": "plugin",
                "plugin": str(self.build / "plugins" / (agent_type + ".so"))}],
        }
        # sandbox: "trusted" (the task in the child itself: what every
        # phase but the sandbox cost measures, so that their figures are
        # the task path's), "strict" (the default profile: a confined
        # process per task) or "off" (pool.sandbox = false: no filter).
        if sched is not None:
            cfg["sched"] = sched
        cfg.update(extra or {})
        if sandbox == "off":
            cfg["pool"]["sandbox"] = False
        elif sandbox == "trusted":
            cfg["sandbox"] = {"profile": "trusted"}
        client = redis.client(timeout=2.0)
        self.owned.append(client)
        d = Bygated(self.build / "bygated", cfg, base, env=proc.clean_env(),
                    ready=self.ready(client), label="bygated (bench %s)" % name)
        self.owned.append(d)
        if wait:
            try:
                d.start()
            except BygatedError as e:
                raise PhaseError(str(e)) from None
        return d

    def ready(self, client):
        """bygated is blocked in its XREADGROUP (a consumer appears only
        with its first entry) and its whole pool is up."""
        def predicate(d):
            try:
                clients = client.call("CLIENT", "LIST").splitlines()
            except (RespError, OSError, ConnectionError):
                return False
            reading = any("cmd=xreadgroup" in c and " flags=b" in c
                          for c in clients)
            return reading and len(d.child_pids()) == self.args.pool
        return predicate

    def program(self, argv, name, stdin=None, timeout=None):
        """Run a helper program to completion, tracked (killed on Ctrl-C);
        returns (exit status, stdout text, stderr text)."""
        out, err = self.tmp / (name + ".out"), self.tmp / (name + ".err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            t = proc.spawn(argv, label=name, stdin=stdin or subprocess.DEVNULL,
                           stdout=fo, stderr=fe, pdeathsig=signal.SIGKILL)
            self.owned.append(t)
            try:
                rc = t.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                t.kill()
                raise PhaseError("%s still running after %.0f s: killed"
                                 % (name, timeout)) from None
        return rc, out.read_text(), err.read_text()

    def close_phase(self):
        """Stop what the phase started (bygated gracefully, then redis)."""
        while self.owned:
            obj = self.owned.pop()
            try:
                if isinstance(obj, Bygated):
                    obj.stop(timeout=10.0)
                elif isinstance(obj, proc.Tracked):
                    obj.kill()
                else:
                    obj.close()
            except Exception as e:  # cleanup goes on
                say("  (cleanup of %r failed: %s)" % (obj, e))

    def close(self, keep):
        self.close_phase()
        proc.kill_since(0)
        for ws in self.shm_dirs:
            shutil.rmtree(ws, ignore_errors=True)
        if keep:
            say("bench files kept in %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- phases ---------------------------------------------------------------

def loadgen_json(rc, out, err, what):
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise PhaseError("%s printed no result (exit %s): %s"
                         % (what, rc, err.strip()[-2000:]))
    return json.loads(lines[-1])


def command_table(cmds, n, client_calls):
    """Lines of the per-command table, most Redis time first."""
    lines = ["    %-22s %9s %8s %9s %9s" % ("command", "calls/task", "client",
                                            "usec/task", "usec/call")]
    for name, (calls, usec) in sorted(cmds.items(), key=lambda kv: -kv[1][1]):
        lines.append("    %-22s %9.2f %8.2f %9.2f %9.2f" % (
            name, per_task(calls, n), per_task(client_calls.get(name, 0), n),
            per_task(usec, n), usec / calls if calls else 0.0))
    return lines


def check_outcome(client, keys, n, sessions):
    """Every execution COMPLETED and nothing pending; returns a note."""
    pending = client.call("XPENDING", keys.ctrl_agent_type(AGENT_TYPE),
                          GROUP)[0]
    statuses = {}
    for s in range(sessions):
        for v in client.call("HVALS", keys.registry("bench-s%d" % s)):
            if v.startswith("{"):
                st = json.loads(v).get("status")
                statuses[st] = statuses.get(st, 0) + 1
    if statuses.get("COMPLETED", 0) != n or pending:
        raise PhaseError("outcome check failed: statuses %s, %d pending"
                         % (statuses, pending))
    return "all %d executions COMPLETED, 0 pending" % n


def start_perf(run, pid):
    """perf record of bygated (call graphs), or None without perf."""
    if shutil.which("perf") is None:
        return None
    return proc.spawn(["perf", "record", "-F", "999", "-g", "-o",
                       run.tmp / "perf.data", "-p", pid], label="perf",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_perf(run, t):
    """Stop perf record; the top symbols by self time, as text lines."""
    if t is None:
        return ["perf not installed"]
    t.stop(signal.SIGINT, timeout=30.0)
    r = subprocess.run(["perf", "report", "-i", str(run.tmp / "perf.data"),
                        "--stdio", "--no-children", "--sort", "dso,symbol",
                        "-g", "none", "--percent-limit", "1"],
                       capture_output=True, text=True, timeout=120)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.*?)(\s+-\s+-)?\s*$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    rows.sort(key=lambda row: -row[0])
    return (["%6.2f%%  %s" % row for row in rows[:25]] or
            [r.stderr.strip()[-500:]])


def bygate_phase(run, name, mode, n, warmup=0, profile=False,
                 durability=DEFAULT_DURABILITY, sandbox="trusted", sched=None,
                 lanes=0, extra=None):
    a = run.args
    r = run.redis(name)
    d = run.bygated(r, name, durability=durability, sandbox=sandbox,
                    sched=sched, extra=extra)
    c = r.client(timeout=30.0)
    run.owned.append(c)
    argv = [run.build / "bench" / "loadgen", "--port", r.port, "--mode", mode,
            "--tasks", n, "--sessions", a.sessions, "--agent-type", AGENT_TYPE,
            "--warmup", warmup, "--timeout-s", a.timeout,
            "--read-gap-ms", READ_GAP_MS if mode == "full" else 0,
            "--lanes", lanes]
    perf = start_perf(run, d.pid) if profile else None
    if perf is not None:
        run.owned.append(perf)
    rs0, cpu0 = RedisSnapshot(c), CpuSnapshot(d.pid)
    lg0 = reaped_cpu_s()
    rc, out, err = run.program(argv, "loadgen-" + name, timeout=a.timeout + 30)
    lg_cpu = reaped_cpu_s() - lg0
    rs1, cpu1 = RedisSnapshot(c), CpuSnapshot(d.pid)
    perf_lines = stop_perf(run, perf) if profile else None
    lg = loadgen_json(rc, out, err, "loadgen")
    if rc != 0 or not d.alive():
        raise PhaseError("loadgen exit %s (%d/%d ended, %d duplicate ends), "
                         "bygated %s; bygated log tail:\n%s" % (
                             rc, lg["completed"], n, lg["duplicates"],
                             "alive" if d.alive() else "exited",
                             d.log_tail(20)))
    cmds, redis_cpu = rs1.delta(rs0)
    own_cpu, kids_cpu, counters = cpu1.delta(cpu0)
    client_calls = {k: v * n for k, v in CLIENT_COMMANDS.items()}
    client_calls["xread"] = lg["read_commands"]
    total = sum(calls for calls, _ in cmds.values())
    client = lg["send_commands"] + lg["read_commands"]
    xread_usec = cmds.get("xread", (0, 0))[1]
    res = {
        "tasks": n, "sessions": a.sessions, "pool": a.pool,
        "durability": durability, "tasks_per_s": lg["tasks_per_s"], "elapsed_s": lg["elapsed_s"],
        "submit_s": lg["submit_s"], "latency_us": lg["latency_us"],
        "redis_commands_per_task": per_task(total, n),
        "bygated_commands_per_task": per_task(total - client, n),
        "client_commands_per_task": per_task(client, n),
        "redis_cpu_us_per_task": per_task(redis_cpu * 1e6, n),
        "redis_cpu_us_per_task_without_reader":
            per_task(redis_cpu * 1e6 - xread_usec, n),
        "redis_command_us_per_task": per_task(
            sum(u for _, u in cmds.values()), n),
        "bygated_cpu_us_per_task": per_task(own_cpu * 1e6, n),
        "children_cpu_us_per_task": per_task(kids_cpu * 1e6, n),
        "loadgen_cpu_us_per_task": per_task(lg_cpu * 1e6, n),
        "bygated_syscalls_per_task": {
            "read": per_task(counters.get("syscr", 0), n),
            "write": per_task(counters.get("syscw", 0), n)},
        "bygated_context_switches_per_task": per_task(
            counters.get("voluntary_ctxt_switches", 0) +
            counters.get("nonvoluntary_ctxt_switches", 0), n),
        "commands": {k: {"calls": v[0], "usec": v[1]} for k, v in cmds.items()},
    }
    if perf_lines is not None:
        res["perf_top"] = perf_lines
    res["cpu_us_per_task"] = (res["redis_cpu_us_per_task"] +
                              res["bygated_cpu_us_per_task"] +
                              res["children_cpu_us_per_task"] +
                              res["loadgen_cpu_us_per_task"])
    res["cores_busy"] = res["cpu_us_per_task"] * n / 1e6 / lg["elapsed_s"]
    res["outcome"] = check_outcome(c, run.keys, n, a.sessions)
    return res, command_table(cmds, n, client_calls)


def report_bygate(title, res, table, closed):
    lat = res["latency_us"]
    say(RULE)
    say(title)
    say("  %d no-op tasks over %d sessions, pool of %d children; %s"
        % (res["tasks"], res["sessions"], res["pool"], res["outcome"]))
    if not closed:
        say("  throughput      %9.0f tasks/s  (first submit -> last "
            "appStreamResponse: %.3f s; all submitted in %.3f s)"
            % (res["tasks_per_s"], res["elapsed_s"], res["submit_s"]))
    say("  latency         p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms"
        " (%d tasks%s)" % (lat["p50"] / 1e3, lat["p90"] / 1e3,
                           lat["p99"] / 1e3, lat["max"] / 1e3, lat["n"],
                           ", after %d warm-up" % lat["warmup"]
                           if lat["warmup"] else ""))
    say("  redis commands  %6.2f per task: bygated %.2f, load generator %.2f"
        % (res["redis_commands_per_task"], res["bygated_commands_per_task"],
           res["client_commands_per_task"]))
    say("  redis CPU       %6.1f us per task (%.1f us without the reader's "
        "XREADs; %.1f us inside commands)"
        % (res["redis_cpu_us_per_task"],
           res["redis_cpu_us_per_task_without_reader"],
           res["redis_command_us_per_task"]))
    say("  bygated CPU     %6.1f us per task; its children %.1f us per task"
        % (res["bygated_cpu_us_per_task"], res["children_cpu_us_per_task"]))
    say("  all CPU         %6.1f us per task (redis + bygated + children + "
        "load generator %.1f us)%s" % (
            res["cpu_us_per_task"], res["loadgen_cpu_us_per_task"],
            "" if closed else ": %.2f of %d cores busy over the run"
            % (res["cores_busy"], os.cpu_count())))
    sc = res["bygated_syscalls_per_task"]
    say("  bygated         %.2f read + %.2f write system calls and %.2f "
        "context switches per task" % (sc["read"], sc["write"],
                               res["bygated_context_switches_per_task"]))
    say("  INFO commandstats per task (client = load generator's share):")
    for line in table:
        say(line)


def stream_floor_phase(run, n):
    r = run.redis("stream-floor")
    c = r.client(timeout=30.0)
    run.owned.append(c)
    argv = [run.build / "bench" / "stream_floor", "--port", r.port,
            "--tasks", n, "--sessions", run.args.sessions, "--batch", 10]
    rs0 = RedisSnapshot(c)
    rc, out, err = run.program(argv, "stream_floor", timeout=run.args.timeout)
    rs1 = RedisSnapshot(c)
    sf = loadgen_json(rc, out, err, "stream_floor")
    if rc != 0:
        raise PhaseError("stream_floor exit %d: %s" % (rc, err.strip()))
    cmds, cpu = rs1.delta(rs0)
    return {"tasks": n, "batch": sf["batch"], "tasks_per_s": sf["tasks_per_s"],
            "elapsed_s": sf["elapsed_s"],
            "redis_commands_per_task": per_task(
                sum(v[0] for v in cmds.values()), n),
            "redis_cpu_us_per_task": per_task(cpu * 1e6, n)}


# bygated writes the dashboard stats of WIRE 5.9, so the floor it is
# compared with is wire_floor.py with STATS=1 (shared/bench/README.md).
WIRE_FLOOR_STATS = 1


def wire_floor_phase(run, n, stats=WIRE_FLOOR_STATS):
    if not WIRE_FLOOR.is_file():
        return None
    resp = run.tmp / ("wire_floor-%d-%d.resp" % (n, stats))
    if not resp.exists():  # generated once for every run
        with open(resp, "wb") as f:
            gen = subprocess.run([sys.executable, str(WIRE_FLOOR), str(n),
                                  "10", str(stats)], stdout=f,
                                 stderr=subprocess.PIPE,
                                 timeout=run.args.timeout)
        if gen.returncode != 0:
            resp.unlink()
            raise PhaseError("wire_floor.py failed: %s" % gen.stderr.decode())
    r = run.redis("wire-floor")
    c = r.client(timeout=30.0)
    run.owned.append(c)
    c.call("CONFIG", "RESETSTAT")
    rs0 = RedisSnapshot(c)
    t0 = time.monotonic()
    with open(resp, "rb") as f:
        rc, out, err = run.program(["redis-cli", "-p", r.port, "--pipe"],
                                   "redis-cli-pipe", stdin=f,
                                   timeout=run.args.timeout)
    dt = time.monotonic() - t0
    rs1 = RedisSnapshot(c)
    m = re.search(r"errors: (\d+), replies: (\d+)", out)
    if rc != 0 or m is None or m.group(1) != "0":
        raise PhaseError("redis-cli --pipe exit %d: %s %s"
                         % (rc, out.strip(), err.strip()))
    cmds, cpu = rs1.delta(rs0)
    return {"tasks": n, "batch": 10, "stats": stats, "tasks_per_s": n / dt,
            "elapsed_s": dt,
            "redis_commands_per_task": per_task(
                sum(v[0] for v in cmds.values()), n),
            "redis_command_us_per_task": per_task(
                sum(v[1] for v in cmds.values()), n),
            "redis_cpu_us_per_task": per_task(cpu * 1e6, n)}


def ring_phase(run):
    exe = run.build / "bench" / "ring_bench"
    if not os.access(exe, os.X_OK):
        return None
    argv = [exe] + (["2000000", "2000"] if run.args.quick else [])
    rc, out, err = run.program(argv, "ring_bench", timeout=run.args.timeout)
    if rc != 0:
        raise PhaseError("ring_bench exit %d: %s" % (rc, err.strip()))
    res = {"lines": out.strip().splitlines()}
    m = re.search(r"([\d.]+) M records/s", out)
    if m:
        res["one_way_m_records_per_s"] = float(m.group(1))
    m = re.search(r"round trip.*?p50 ([\d.]+) us, p99 ([\d.]+) us", out)
    if m:
        res["round_trip_p50_us"] = float(m.group(1))
        res["round_trip_p99_us"] = float(m.group(2))
    return res


# ---- main -----------------------------------------------------------------

# The handlers phase: (key, title, agent_types entry of agent type
# HANDLER_AGENT given the build directory).
HANDLER_AGENT = "hbench"
WAIT_MS = 50
NOOP_AGENT = REPO / "bench" / "noop_agent.py"
HANDLERS = (
    ("c_noop", "C noop plugin",
     lambda b: {"handler": "plugin", "plugin": str(b / "plugins" / "noop.so")}),
    ("c_echo", "C echo plugin",
     lambda b: {"handler": "plugin", "plugin": str(b / "plugins" / "echo.so")}),
    ("python_persistent", "Python no-op, persistent",
     lambda b: {"handler": "exec", "mode": "persistent",
                "command": "python3 %s" % NOOP_AGENT}),
    ("python_per_task", "Python no-op, per_task",
     lambda b: {"handler": "exec", "mode": "per_task",
                "command": "python3 %s" % NOOP_AGENT}),
    # An agent that mostly waits (an LLM call): what max_inflight buys.
    ("python_wait_inflight1", "Python 50 ms wait, max_inflight 1",
     lambda b: {"handler": "exec", "mode": "persistent", "max_inflight": 1,
                "command": "python3 %s --sleep-ms %d" % (NOOP_AGENT,
                                                         WAIT_MS)}),
    ("python_wait_inflight8", "Python 50 ms wait, max_inflight 8",
     lambda b: {"handler": "exec", "mode": "persistent", "max_inflight": 8,
                "command": "python3 %s --sleep-ms %d" % (NOOP_AGENT,
                                                         WAIT_MS)}),
)


def handler_phase(run, key, entry, n):
    """n tasks at full load through one kind of handler; tasks/s."""
    a = run.args
    r = run.redis("handlers-" + key)
    d = run.bygated(r, "handlers-" + key,
                    agent=dict(entry(run.build), name=HANDLER_AGENT))
    warm = 2 * a.pool  # starts every persistent program first
    argv = [run.build / "bench" / "loadgen", "--port", r.port, "--mode",
            "full", "--tasks", n, "--sessions", a.sessions, "--agent-type",
            HANDLER_AGENT, "--warmup", warm, "--timeout-s", a.timeout,
            "--read-gap-ms", READ_GAP_MS]
    cpu0 = CpuSnapshot(d.pid)
    rc, out, err = run.program(argv, "loadgen-handlers-" + key,
                               timeout=a.timeout + 30)
    lg = loadgen_json(rc, out, err, "loadgen")
    if rc != 0 or not d.alive():
        raise PhaseError("loadgen exit %s (%d/%d ended), bygated %s; log "
                         "tail:\n%s" % (rc, lg["completed"], n,
                                        "alive" if d.alive() else "exited",
                                        d.log_tail(20)))
    own_cpu, _, _ = CpuSnapshot(d.pid).delta(cpu0)
    return {"tasks": n, "pool": a.pool, "tasks_per_s": lg["tasks_per_s"],
            "latency_us": lg["latency_us"],
            "bygated_cpu_us_per_task": per_task(own_cpu * 1e6, n)}


# per_task starts an interpreter per task (about 0.1 s of CPU here): fewer
# tasks keep `make bench` short without changing the figure.
PER_TASK_MAX = 500


def handlers(run, results, failures):
    a = run.args
    res = results["handlers"] = {}
    for key, title, entry in HANDLERS:
        n = a.handler_tasks
        if key == "python_per_task" or key.startswith("python_wait"):
            n = min(n, PER_TASK_MAX)
        r = phase(results, failures, "handlers_" + key, "Handlers: " + title,
                  handler_phase, run, key, entry, n)
        if r:
            res[key] = r
    say(RULE)
    say("Handlers (full load, pool %d, no-op work unless said)" % a.pool)
    for key, title, _ in HANDLERS:
        if key in res:
            lat = res[key]["latency_us"]
            say("  %-34s %8.0f tasks/s  (%d tasks; latency p50 %.0f ms, "
                "p99 %.0f ms)" % (title, res[key]["tasks_per_s"],
                                  res[key]["tasks"], lat["p50"] / 1000,
                                  lat["p99"] / 1000))
    base = res.get("c_echo", {}).get("tasks_per_s")
    for key in ("python_persistent", "python_per_task"):
        if base and key in res:
            res[key]["of_c_echo"] = round(res[key]["tasks_per_s"] / base, 3)


def check_built(build):
    need = [build / "bygated", build / "bygate-child",
            build / "plugins" / (AGENT_TYPE + ".so"),
            build / "plugins" / "sleep.so",
            build / "bench" / "loadgen", build / "bench" / "stream_floor"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise PhaseError("not built: %s (run `make bench`)"
                         % ", ".join(missing))


def phase(results, failures, key, title, fn, *a, **kw):
    """Run one phase with its own redis/bygated, stopped at its end; its
    result, or None when it failed (the failure is recorded and shown)."""
    run = a[0]
    t0 = time.monotonic()
    value = None
    try:
        value = fn(*a, **kw)
    except (PhaseError, recovery.RecoveryError, RuntimeError) as e:
        failures.append("%s: %s" % (title, e))
        say(RULE)
        say("%s FAILED: %s" % (title, e))
    finally:
        run.close_phase()
    results.setdefault("phase_seconds", {})[key] = round(
        time.monotonic() - t0, 2)
    return value


def summary(results):
    full, wire = results.get("bygate_full"), results.get("wire_floor")
    closed, stream = results.get("bygate_closed"), results.get("stream_floor")
    say(RULE)
    say("Summary")
    if full:
        say("  bygate          %9.0f tasks/s, p50 %.1f ms / p99 %.1f ms at "
            "full load" % (full["tasks_per_s"], full["latency_us"]["p50"] / 1e3,
                           full["latency_us"]["p99"] / 1e3))
    if closed:
        say("  closed loop     p50 %.3f ms / p99 %.3f ms (one task in flight)"
            % (closed["latency_us"]["p50"] / 1e3,
               closed["latency_us"]["p99"] / 1e3))
    if stream:
        say("  stream floor    %9.0f tasks/s, %.2f commands and %.1f us Redis "
            "CPU per task" % (stream["tasks_per_s"],
                              stream["redis_commands_per_task"],
                              stream["redis_cpu_us_per_task"]))
    if wire:
        say("  wire floor+stats %8.0f tasks/s, %.2f commands and %.1f us Redis "
            "CPU per task" % (wire["tasks_per_s"],
                              wire["redis_commands_per_task"],
                              wire["redis_cpu_us_per_task"]))
    elif not WIRE_FLOOR.is_file():
        say("  wire floor      skipped: %s not found" % WIRE_FLOOR)
    summary_journal(results.get("journal_cost"))
    dr = results.get("drain") or {}
    if dr.get("bygated"):
        say("  drain           %9.0f tasks/s bygated%s" % (
            dr["bygated"]["tasks_per_s"],
            ", %.0f BullMQ %s (ratio %.3f)" % (
                dr["bullmq"]["tasks_per_s"], dr["bullmq_version"],
                dr["bygated_over_bullmq"]) if dr.get("bullmq") else ""))
    recovery.summary(results.get("recovery"), say)
    if full and wire:
        results["bygate_over_wire_floor"] = (full["tasks_per_s"] /
                                             wire["tasks_per_s"])
        say("  bygate / wire floor = %.3f" % results["bygate_over_wire_floor"])
    if full and stream:
        results["bygate_over_stream_floor"] = (full["tasks_per_s"] /
                                               stream["tasks_per_s"])
        say("  bygate / stream floor = %.3f"
            % results["bygate_over_stream_floor"])
    goal_check(results)


def summary_journal(jc):
    if not jc:
        return
    say("  journal cost    %s" % ", ".join(
        "%s %.0f tasks/s (%.1f us bygated CPU/task)"
        % (m, jc[m]["tasks_per_s"], jc[m]["bygated_cpu_us_per_task"])
        for m in DURABILITY_MODES if m in jc))
    ratios = ["%s/none = %.3f" % (m, jc["%s_over_none" % m])
              for m in DURABILITY_MODES if "%s_over_none" % m in jc]
    if ratios:
        say("                  " + ", ".join(ratios))


def rate(value):
    return (value[0] if isinstance(value, tuple) else value)["tasks_per_s"]


def median_run(runs):
    """The run with the median tasks/s, its figures extended with every
    run's tasks/s (runs_tasks_per_s); None without runs."""
    if not runs:
        return None
    runs = sorted(runs, key=rate)
    value = runs[len(runs) // 2]
    main = value[0] if isinstance(value, tuple) else value
    main["runs_tasks_per_s"] = [round(rate(v), 1) for v in runs]
    return value


def median_of_runs(results, failures, key, title, fn, run, *a):
    """--repeat runs of a phase, each on a fresh redis (and bygated); the
    median run (median_run). None when no run gave figures."""
    runs = []
    for k in range(run.args.repeat):
        value = phase(results, failures, "%s_%d" % (key, k + 1),
                      "%s (run %d)" % (title, k + 1), fn, run, *a)
        if value:
            runs.append(value)
    return median_run(runs)


def runs_note(res):
    n = len(res["runs_tasks_per_s"])
    return "" if n == 1 else "; median of %d runs: %s tasks/s" % (
        n, ", ".join("%.0f" % t for t in res["runs_tasks_per_s"]))


def full_load_modes(run, results, failures):
    """--repeat full-load runs in each durability mode, interleaved (none,
    process, sync, none, ...) so that a drift of the machine's speed
    weighs on every mode alike; {mode: median run} of the modes that gave
    figures."""
    a = run.args
    runs = {m: [] for m in DURABILITY_MODES}
    for k in range(a.repeat):
        for m in DURABILITY_MODES:
            value = phase(results, failures, "bygate_full_%s_%d" % (m, k + 1),
                          "Full load, durability %s (run %d)" % (m, k + 1),
                          bygate_phase, run, "full-" + m, "full", a.tasks,
                          durability=m)
            if value:
                runs[m].append(value)
    return {m: median_run(v) for m, v in runs.items() if v}


def journal_cost(res):
    """{mode: figures} of the full load per durability mode, with the
    ratios process/none and sync/none when both sides ran."""
    out = {}
    for m, (fig, _) in res.items():
        out[m] = {k: fig[k] for k in (
            "tasks_per_s", "runs_tasks_per_s", "bygated_cpu_us_per_task",
            "children_cpu_us_per_task", "redis_cpu_us_per_task",
            "bygated_syscalls_per_task")}
    for m in DURABILITY_MODES:
        if m != "none" and m in out and "none" in out:
            out["%s_over_none" % m] = (out[m]["tasks_per_s"] /
                                       out["none"]["tasks_per_s"])
    return out


def report_journal_cost(jc, a):
    say(RULE)
    say("Journal cost: full load (%d no-op tasks, pool %d) per "
        "paths.durability, median of %d run(s) each, runs interleaved"
        % (a.tasks, a.pool, a.repeat))
    say("    %-8s %9s %8s %12s %9s %11s  %s" % (
        "mode", "tasks/s", "/ none", "bygated CPU", "children",
        "writes", "runs (tasks/s)"))
    for m in DURABILITY_MODES:
        if m not in jc:
            say("    %-8s FAILED" % m)
            continue
        f = jc[m]
        ratio = jc.get("%s_over_none" % m, 1.0 if m == "none" else None)
        say("    %-8s %9.0f %8s %9.1f us %6.1f us %6.2f/task  %s" % (
            m, f["tasks_per_s"], "-" if ratio is None else "%.3f" % ratio,
            f["bygated_cpu_us_per_task"], f["children_cpu_us_per_task"],
            f["bygated_syscalls_per_task"]["write"],
            ", ".join("%.0f" % t for t in f["runs_tasks_per_s"])))
    say("  none = no journal (benchmarks only); process = LMDB MDB_NOSYNC "
        "+ MDB_WRITEMAP (default); sync = fsync per loop-turn commit. "
        "CPU = utime + stime "
        "per task; writes = bygated's write system calls per task")


def full_load(run, results, failures):
    """The full-load runs in every durability mode (the default mode's
    median run is the full-load figure), then with --perf one more run
    under perf record (not counted: perf slows bygated down)."""
    a = run.args
    by_mode = full_load_modes(run, results, failures)
    res = by_mode.get(DEFAULT_DURABILITY)
    results["bygate_full"] = res[0] if res else None
    if res:
        report_bygate("Full load (all tasks submitted at once, durability %s"
                      "%s)" % (DEFAULT_DURABILITY, runs_note(res[0])), *res,
                      closed=False)
    if by_mode:
        results["journal_cost"] = journal_cost(by_mode)
        report_journal_cost(results["journal_cost"], a)
    if a.perf:
        res = phase(results, failures, "perf", "Profiled run", bygate_phase,
                    run, "perf", "full", a.tasks, profile=True)
        if res:
            say(RULE)
            say("perf profile of bygated during one more full-load run "
                "(%.0f tasks/s under perf), self time by symbol:"
                % res[0]["tasks_per_s"])
            for line in res[0]["perf_top"]:
                say("  " + line)
            results["perf_top"] = res[0]["perf_top"]


SANDBOX_MODES = ("off", "trusted", "strict")


def sandbox_cost(run, results, failures):
    """The default sandbox's cost (docs/security.md): the noop plugin at full
    load and in the closed loop with pool.sandbox = false ("off"), the
    trusted profile, and the default strict profile (a confined process
    per task), interleaved --repeat times; medians."""
    a = run.args
    full = {m: [] for m in SANDBOX_MODES}
    closed = {m: [] for m in SANDBOX_MODES}
    warm = min(50, a.closed_tasks // 10)
    for k in range(a.repeat):
        for m in SANDBOX_MODES:
            v = phase(results, failures, "sandbox_full_%s_%d" % (m, k + 1),
                      "Sandbox %s, full load (run %d)" % (m, k + 1),
                      bygate_phase, run, "sb-full-" + m, "full", a.tasks,
                      sandbox=m)
            if v:
                full[m].append(v)
            v = phase(results, failures, "sandbox_closed_%s_%d" % (m, k + 1),
                      "Sandbox %s, closed loop (run %d)" % (m, k + 1),
                      bygate_phase, run, "sb-closed-" + m, "closed",
                      a.closed_tasks, warm, sandbox=m)
            if v:
                closed[m].append(v)
    out = {}
    for m in SANDBOX_MODES:
        f, c = median_run(full[m]), median_run(closed[m])
        if not f or not c:
            continue
        f, c = f[0], c[0]
        out[m] = {"tasks_per_s": f["tasks_per_s"],
                  "runs_tasks_per_s": f["runs_tasks_per_s"],
                  "bygated_cpu_us_per_task": f["bygated_cpu_us_per_task"],
                  "children_cpu_us_per_task": f["children_cpu_us_per_task"],
                  "closed_p50_us": c["latency_us"]["p50"],
                  "closed_p99_us": c["latency_us"]["p99"]}
    if "off" in out:
        for m in out:
            out[m]["throughput_vs_off"] = round(
                out[m]["tasks_per_s"] / out["off"]["tasks_per_s"], 3)
            out[m]["closed_p50_extra_us"] = round(
                out[m]["closed_p50_us"] - out["off"]["closed_p50_us"], 1)
    results["sandbox_cost"] = out
    say(RULE)
    say("Sandbox cost: noop plugin, %d tasks at full load, %d in the closed "
        "loop, pool %d (medians of %d interleaved runs)"
        % (a.tasks, a.closed_tasks, a.pool, a.repeat))
    say("  %-8s %10s %8s %12s %12s %10s %10s" % (
        "sandbox", "tasks/s", "vs off", "bygated us", "children us",
        "closed p50", "closed p99"))
    for m, f in out.items():
        say("  %-8s %10.0f %8s %12.1f %12.1f %8.0f us %8.0f us" % (
            m, f["tasks_per_s"],
            "%.2f" % f["throughput_vs_off"] if "throughput_vs_off" in f
            else "-", f["bygated_cpu_us_per_task"],
            f["children_cpu_us_per_task"], f["closed_p50_us"],
            f["closed_p99_us"]))
    say("  (bygated us / children us: CPU per task of bygated and of its "
        "children, task processes included)")
    floor = run.build / "bench" / "fork_floor"
    if os.access(floor, os.X_OK):
        rc, out, _ = run.program([floor, 300], "fork_floor", timeout=120)
        lines = out.strip().splitlines() if rc == 0 else []
        if lines:
            results["fork_floor"] = json.loads(lines[-1])
            say("  the machine's floor for a process per task (%s):" % floor)
            for line in lines[:-1]:
                say("    " + line)


def drain_against_bullmq(run, results, failures):
    """The drain of --tasks prefilled no-op tasks by bygated and by BullMQ
    (bench/peers/drain.py), interleaved --repeat times; BullMQ is installed
    with npm on first use and skipped (said so) without node or npm."""
    sys.path.insert(0, str(REPO / "bench" / "peers"))
    import drain  # (bench/peers/drain.py imports this module: load it last)
    have, version = drain.bullmq_ready()
    drain.drain_phase(run, results,
                      lambda *pa: phase(results, failures, *pa), have,
                      version)


def goal_phases(run, results, failures):
    """--only-goal: the phases behind goal_check, each --repeat times (the
    median run), then the check."""
    a = run.args
    res = median_of_runs(results, failures, "bygate_full", "Full load",
                         bygate_phase, run, "full", "full", a.tasks)
    if res:
        results["bygate_full"] = res[0]
        report_bygate("Full load (durability %s%s)" % (
            DEFAULT_DURABILITY, runs_note(res[0])), *res, closed=False)
    warm = min(50, a.closed_tasks // 10)
    res = median_of_runs(results, failures, "bygate_closed", "Closed loop",
                         bygate_phase, run, "closed", "closed",
                         a.closed_tasks, warm)
    if res:
        results["bygate_closed"] = res[0]
        report_bygate("Closed loop (exactly one task in flight%s)"
                      % runs_note(res[0]), *res, closed=True)
    results["wire_floor"] = median_of_runs(
        results, failures, "wire_floor", "Wire floor", wire_floor_phase, run,
        a.tasks)
    drain_against_bullmq(run, results, failures)
    summary(results)


# Issue 16's goal, each figure against a reference of the same run: (label,
# the figure, the reference, the bound, "min" (figure/reference at least
# bound) or "max" (at most)). A reference of None means an absolute bound.
def goal_lines(results):
    full, wire = results.get("bygate_full"), results.get("wire_floor")
    closed, dr = results.get("bygate_closed"), results.get("drain") or {}
    bull, byd = dr.get("bullmq"), dr.get("bygated")
    t = lambda r: r["tasks_per_s"] if r else None  # noqa: E731
    out = [
        ("drain tasks/s / BullMQ drain", t(byd), t(bull), 1.2, "min"),
        ("full-load tasks/s / BullMQ drain", t(full), t(bull), 1.2, "min"),
        ("drain tasks/s / wire floor", t(byd), t(wire), 0.5, "min"),
        ("full-load tasks/s / wire floor", t(full), t(wire), 0.5, "min"),
        ("bygated CPU us/task, full load", full and
         full["bygated_cpu_us_per_task"], None, 30.0, "max"),
        ("Redis CPU/task / wire floor's", full and
         full["redis_cpu_us_per_task_without_reader"], wire and
         wire["redis_cpu_us_per_task"], 1.3, "max"),
        ("closed loop p50 ms", closed and closed["latency_us"]["p50"] / 1e3,
         None, 0.3, "max"),
        ("closed loop p99 ms", closed and closed["latency_us"]["p99"] / 1e3,
         None, 1.0, "max"),
    ]
    return out


def goal_check(results):
    """Prints issue 16's goal, figure by figure, each against its reference
    measured in this run: ok, MISS, or n/a when a side did not run."""
    say(RULE)
    say("Goal check (issue 16; references measured in this run)")
    checks = {}
    for label, fig, ref, bound, sense in goal_lines(results):
        if fig is None or (ref is None and sense == "min") or ref == 0:
            say("  %-34s n/a" % label)
            continue
        value = fig / ref if ref else fig
        ok = value >= bound if sense == "min" else value <= bound
        checks[label] = {"value": round(value, 3), "bound": bound,
                         "ok": ok}
        say("  %-34s %8.3f  %s %-5g %s" % (
            label, value, ">=" if sense == "min" else "<=", bound,
            "ok" if ok else "MISS"))
    results["goal_check"] = checks


# docs/scheduling.md: the ready set off (sched.window = 0: read what can
# start plus the prefetch), on with every task in one lane, and on with
# four lanes of weights 2, 1, 1, 1.
SCHED_MODES = {
    "off": ({"window": 0}, 0),
    "one-lane": ({"window": 64}, 0),
    "4-lanes": ({"window": 64, "lanes": {"lane-0": {"weight": 2}}}, 4),
}


def scheduling_cost(run, results, failures):
    """What fair scheduling costs at full load (all tasks backlogged, so
    every task past the free children goes through the ready set): the
    noop plugin with the ready set off and on, interleaved --repeat times;
    medians."""
    a = run.args
    full = {m: [] for m in SCHED_MODES}
    for k in range(a.repeat):
        for m, (sched, lanes) in SCHED_MODES.items():
            v = phase(results, failures, "sched_full_%s_%d" % (m, k + 1),
                      "Scheduling %s, full load (run %d)" % (m, k + 1),
                      bygate_phase, run, "sched-" + m, "full", a.tasks,
                      sched=sched, lanes=lanes)
            if v:
                full[m].append(v)
    out = {}
    for m in SCHED_MODES:
        f = median_run(full[m])
        if not f:
            continue
        f = f[0]
        out[m] = {"tasks_per_s": f["tasks_per_s"],
                  "runs_tasks_per_s": f["runs_tasks_per_s"],
                  "bygated_cpu_us_per_task": f["bygated_cpu_us_per_task"],
                  "redis_commands_per_task": f["redis_commands_per_task"],
                  "p50_us": f["latency_us"]["p50"]}
    if "off" in out:
        for m in out:
            out[m]["throughput_vs_off"] = round(
                out[m]["tasks_per_s"] / out["off"]["tasks_per_s"], 3)
    results["scheduling_cost"] = out
    say(RULE)
    say("Scheduling cost: noop plugin, %d tasks at full load, pool %d "
        "(medians of %d interleaved runs; docs/scheduling.md)"
        % (a.tasks, a.pool, a.repeat))
    say("  %-9s %10s %8s %12s %12s" % (
        "ready set", "tasks/s", "vs off", "bygated us", "Redis cmds"))
    for m, f in out.items():
        say("  %-9s %10.0f %8s %12.1f %12.2f" % (
            m, f["tasks_per_s"],
            "%.2f" % f["throughput_vs_off"] if "throughput_vs_off" in f
            else "-", f["bygated_cpu_us_per_task"],
            f["redis_commands_per_task"]))
    say("  (bygated us: bygated's CPU per task; Redis cmds: commands per "
        "task, the client's included)")


def run_all(run, results, failures):
    a = run.args
    check_built(a.build)
    if a.only_handlers:
        handlers(run, results, failures)
        return
    if a.only_sandbox:
        sandbox_cost(run, results, failures)
        return
    if a.only_drain:
        drain_against_bullmq(run, results, failures)
        goal_check(results)
        return
    if a.only_goal:
        goal_phases(run, results, failures)
        return
    if a.only_sched:
        scheduling_cost(run, results, failures)
        return
    if a.only_workflows:
        workflows.workflows(run, results,
                            lambda *pa: phase(results, failures, *pa),
                            say, RULE)
        return
    if a.only_triggers:
        triggers.triggers(run, results,
                          lambda *pa: phase(results, failures, *pa), say,
                          RULE)
        return
    say("bygate benchmark: %d tasks, %d sessions, pool %d, %d closed-loop "
        "tasks, %d run(s) of the full load and of each floor%s" % (
            a.tasks, a.sessions, a.pool, a.closed_tasks, a.repeat,
            " (quick)" if a.quick else ""))
    say("latency = local CLOCK_MONOTONIC from just before the round trip that "
        "writes a task to the receipt of the XREAD reply carrying its "
        "appStreamResponse (at full load the reader XREADs at most every %d "
        "ms)" % READ_GAP_MS)
    full_load(run, results, failures)
    warm = min(50, a.closed_tasks // 10)
    res = phase(results, failures, "bygate_closed", "Closed loop",
                bygate_phase, run, "closed", "closed", a.closed_tasks, warm)
    if res:
        report_bygate("Closed loop (exactly one task in flight)", *res,
                      closed=True)
        results["bygate_closed"] = res[0]
    recovery.recovery(run, results, lambda *pa: phase(results, failures, *pa),
                      say, RULE)
    sf = results["stream_floor"] = median_of_runs(
        results, failures, "stream_floor", "Stream floor", stream_floor_phase,
        run, a.tasks)
    if sf:
        say(RULE)
        say("Stream floor (XADD + XREADGROUP + XADD + XACK, no processing, "
            "batches of %d, one connection%s)" % (sf["batch"], runs_note(sf)))
        say("  %9.0f tasks/s, %.2f commands and %.1f us Redis CPU per task"
            % (sf["tasks_per_s"], sf["redis_commands_per_task"],
               sf["redis_cpu_us_per_task"]))
    wf = results["wire_floor"] = median_of_runs(
        results, failures, "wire_floor", "Wire floor", wire_floor_phase, run,
        a.tasks)
    say(RULE)
    if wf:
        say("Wire floor, with the WIRE 5.9 stats (%s %d 10 1 | redis-cli --pipe%s)"
            % (WIRE_FLOOR.name, a.tasks, runs_note(wf)))
        say("  %9.0f tasks/s, %.2f commands per task, %.1f us Redis CPU per "
            "task (%.1f us inside commands)" % (
                wf["tasks_per_s"], wf["redis_commands_per_task"],
                wf["redis_cpu_us_per_task"], wf["redis_command_us_per_task"]))
    elif not WIRE_FLOOR.is_file():
        say("Wire floor SKIPPED: %s not found (the shared directory sits "
            "next to the repository)" % WIRE_FLOOR)
    rb = results["ring"] = phase(results, failures, "ring", "Ring benchmark",
                                 ring_phase, run)
    say(RULE)
    if rb:
        say("Ring benchmark (%s)" % (a.build / "bench" / "ring_bench"))
        for line in rb["lines"]:
            say("  " + line)
    elif not os.access(a.build / "bench" / "ring_bench", os.X_OK):
        say("Ring benchmark SKIPPED: %s not built"
            % (a.build / "bench" / "ring_bench"))
    if a.handler_tasks:
        handlers(run, results, failures)
    drain_against_bullmq(run, results, failures)
    sandbox_cost(run, results, failures)
    scheduling_cost(run, results, failures)
    workflows.workflows(run, results,
                        lambda *pa: phase(results, failures, *pa), say, RULE)
    triggers.triggers(run, results,
                      lambda *pa: phase(results, failures, *pa), say, RULE)
    summary(results)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=pathlib.Path, default=REPO / "build")
    ap.add_argument("--tasks", type=int, default=20000,
                    help="tasks of the full-load run and the floors")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--pool", type=int, default=8, help="bygated children")
    ap.add_argument("--closed-tasks", type=int, default=None,
                    help="closed-loop tasks (default tasks/10, at most 2000; "
                         "100 with --quick)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of the full load and of each floor, the median "
                         "is reported (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: one full-load run, fewer closed-loop "
                         "tasks, short ring bench")
    ap.add_argument("--perf", action="store_true",
                    help="one more full-load run under `perf record`, "
                         "printing bygated's top symbols")
    ap.add_argument("--timeout", type=int, default=120,
                    help="seconds one measurement may take")
    ap.add_argument("--handler-tasks", type=int, default=None,
                    help="tasks per handler kind of the handlers phase "
                         "(default 2000; 200 with --quick; 0 skips it)")
    ap.add_argument("--only-handlers", action="store_true",
                    help="run only the handlers phase")
    ap.add_argument("--only-sched", action="store_true",
                    help="only the scheduling cost (the ready set off/on)")
    ap.add_argument("--only-triggers", action="store_true",
                    help="only the trigger figures (bench/triggers.py)")
    ap.add_argument("--only-workflows", action="store_true",
                    help="only the workflow figures (step overhead, a "
                         "1,000-task graph against direct sends)")
    ap.add_argument("--only-goal", action="store_true",
                    help="only what issue 16's goal check needs: the full "
                    "load (default durability), the closed loop, the wire "
                    "floor and the drain against BullMQ")
    ap.add_argument("--only-drain", action="store_true",
                    help="only the drain against BullMQ (bench/peers/drain.py)")
    ap.add_argument("--only-sandbox", action="store_true",
                    help="run only the sandbox-cost phase")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, configs)")
    a = ap.parse_args(argv)
    a.build = a.build.resolve()
    if a.closed_tasks is None:
        a.closed_tasks = max(20, min(2000, a.tasks // 10))
        if a.quick:
            a.closed_tasks = min(a.closed_tasks, 100)
    if a.repeat is None:
        a.repeat = 1 if a.quick else 3
    if a.handler_tasks is None:
        a.handler_tasks = 200 if a.quick else 2000
    if min(a.tasks, a.sessions, a.pool, a.closed_tasks, a.repeat) < 1:
        ap.error("--tasks, --sessions, --pool, --closed-tasks and --repeat "
                 "must be >= 1")
    return a


def on_signal(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv=None):
    args = parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    run = Run(args)
    results = {"tasks": args.tasks, "sessions": args.sessions,
               "pool": args.pool, "quick": args.quick}
    failures = []
    t0 = time.monotonic()
    try:
        run_all(run, results, failures)
    except PhaseError as e:
        failures.append(str(e))
        say("bench: %s" % e)
    except KeyboardInterrupt:
        say("\nbench: interrupted; stopping everything")
        run.close(keep=args.keep)
        return 130
    finally:
        if run.owned:
            run.close_phase()
    run.close(keep=args.keep or bool(failures))
    results["seconds"] = round(time.monotonic() - t0, 1)
    results["failures"] = failures
    say(RULE)
    if failures:
        say("bench: %d phase(s) failed" % len(failures))
    say("bench finished in %.1f s" % results["seconds"])
    print(json.dumps(results, sort_keys=True), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
