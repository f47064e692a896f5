#!/usr/bin/env python3
"""The crash test behind `make crashtest` (DESIGN 6 and 11): kill -9 of
bygated or of any child at any moment loses no task and finishes none twice.

A private redis-server and one bygated (pool 4, the `sleep` plugin, short
lease and reconcile periods, one state directory kept across restarts) run
N tasks sent the way the Python client sends them, while bygated is SIGKILLed
and restarted and random children are SIGKILLed at random points of the
progress. The tasks are spread over lanes (metadata.lane, weighted in
sched.lanes) with random priorities (metadata.priority 0-9), and the ready
set is on (sched.window > 0, docs/scheduling.md), so kills hit entries
parked in the fleet's ready set and picked from it too. Then every message
must have exactly one terminal record, one end marker, no duplicated
finalAnswer, an empty pending list, a clean `bygate-state check`, timelines
with at most one terminal entry, and every lane's tasks completed.

    python3 tests/crash/chaos.py --build build [--tasks 2000] [--kills 10]
        [--child-kills 10] [--seed N] [--wait 120] [--log-level info]
        [--fault POINT[:N]] [--lanes 3] [--window 32] [--workdir DIR] [--keep]

Exit status 0 only if every check passes. Importable: run(...) returns a
Result (tests/integration/test_chaos.py runs a small one in `make test`)."""

import argparse
import datetime
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (REPO / "scripts", REPO / "tests" / "integration", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bglib import proc  # noqa: E402
from bglib.bygated import Bygated, BygatedError  # noqa: E402
from bglib.keys import Keys  # noqa: E402
from bglib.redisserver import RedisServer  # noqa: E402
from bglib.rediscluster import RedisCluster  # noqa: E402
from bglib.clusterclient import ClusterBackend  # noqa: E402
import pyclient as pc  # noqa: E402
import verify  # noqa: E402

WORKER = "chaos-w1"
AGENT = "sleep"
GROUP = "agent_engines"
SESSIONS = 20
POOL = 4
MAX_ATTEMPTS = 3
MAX_SLEEP_MS = 50
LANES = ("tenant_a", "tenant_b", "batch")  # the first --lanes of them
LANE_WEIGHTS = (3, 2, 1)
MAX_PRIORITY = 9
WINDOW = 32           # sched.window: the ready set on (0: off)
BATCH = 20            # tasks per pipelined send
BACKLOG = 100         # sent but not yet acked, before sending pauses
ORPHAN_GRACE_S = 2.0  # a dead bygated's children must be gone by then
STALL_FIRE_S = 5.0    # no progress this long: fire the next event anyway
STALL_GIVE_UP_S = 30.0
TICK_S = 0.01
FAULT_EXIT = 86       # common/fault.h BG_FAULT_EXIT
MAX_FAULT_EXITS = 1000
RECONCILE_LINE = "start-up reconcile done"
RECONCILE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z.*"
                          + RECONCILE_LINE + r"(.*)$", re.M)

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|"
                          r"runtime error: ")


class ChaosAbort(RuntimeError):
    """The run cannot go on (bygated does not start); checks still run."""


class Restart:
    """One bygated restart: when, at which progress, and what the log said."""

    KINDS = {"start": "initial start", "kill": "kill",
             "fault": "fault-point exit", "unplanned": "UNPLANNED exit"}

    def __init__(self, n, done, old_pid, kind, log_from):
        self.n, self.done = n, done
        self.old_pid, self.kind = old_pid, kind
        self.log_from = log_from
        self.wall = time.time()
        self.ready_s = None
        self.reconcile_s = None
        self.reconcile_text = ""

    def describe(self):
        rec = ("%.2f s" % self.reconcile_s if self.reconcile_s is not None
               else "n/a")
        ready = "%.2f s" % self.ready_s if self.ready_s is not None else "n/a"
        return "start #%d (%s at %d done): reconcile done %s (ready %s)%s" % (
            self.n, self.KINDS[self.kind], self.done, rec, ready,
            "; " + self.reconcile_text if self.reconcile_text else "")


class Result:
    def __init__(self, ok, summary, workdir):
        self.ok, self.summary, self.workdir = ok, summary, workdir


def agent_type(build, shared):
    """The sleep plugin, or with shared > 1 its exec twin
    (tests/crash/sleep_agent.py) running up to `shared` tasks at once in
    each child's program (max_inflight, DESIGN 5)."""
    if shared > 1:
        # sleep_agent.py imports examples/python/bygate_agent.py: the
        # strict sandbox lets the program read it (docs/security.md).
        return {"name": AGENT, "handler": "exec", "mode": "persistent",
                "max_inflight": shared,
                "command": "python3 %s" % (HERE / "sleep_agent.py"),
                "sandbox": {"read_paths": [str(REPO / "examples" /
                                               "python")]}}
    return {"name": AGENT, "handler": "plugin",
            "plugin": str(build / "plugins" / "sleep.so")}


def sched_config(lanes, window):
    """sched: the ready set (window > 0) and the lanes' weights."""
    return {"window": window,
            "lanes": {LANES[i]: {"weight": LANE_WEIGHTS[i]}
                      for i in range(lanes)}}


def worker_config(build, redis, base, log_level, shared=0, lanes=3,
                  window=WINDOW):
    """bygated's configuration: the same for every restart, so the state
    directory (and the lease token in it) carries over."""
    cluster = ({"mode": "cluster", "key_schema": "v2",
                "cluster_nodes": redis.cluster.seeds()}
               if isinstance(redis, ClusterBackend) else {})
    return {
        "sched": sched_config(lanes, window),
        "redis": dict({"host": redis.host, "port": redis.port}, **cluster),
        "worker": {"id": WORKER, "lease_ttl_s": 2,
                   "heartbeat_interval_ms": 500, "reclaim_min_idle_ms": 4000,
                   "block_ms": 500, "reconcile_interval_ms": 2000},
        # Child kills are the point here: keep the crash-storm breaker out.
        "pool": {"size": POOL, "crash_storm_deaths": 100},
        "paths": {"state_dir": str(base / "state"),
                  "workspace_dir": str(base / "workspace")},
        "log": {"level": log_level},
        "agent_types": [dict(agent_type(build, shared),
                             max_attempts=MAX_ATTEMPTS,
                             retry_backoff_ms=100)],
    }


class Chaos:
    """One run: plan(), start(), drive(), settle(), stop(), then the checks;
    cleanup() kills by pid whatever is left, whatever happened."""

    def __init__(self, build, tasks, kills, child_kills, seed, workdir,
                 wait_s, log_level, fault, out):
        self.build = pathlib.Path(build).resolve()
        self.shared = 0  # set by run(): max_inflight of the exec agent
        self.n_lanes, self.window = 3, WINDOW  # set by run()
        self.n_tasks = tasks
        self.n_kills, self.n_child_kills = kills, child_kills
        self.seed = seed
        self.rng = random.Random(seed)
        self.dir = workdir
        self.wait_s, self.log_level = wait_s, log_level
        self.fault = fault
        self.out = out
        self.cluster = False  # set by run(): a 3-master cluster, replicas
        self.keys = Keys("v1")
        self.stream = self.keys.ctrl_agent_type(AGENT)
        self.master_killed = None  # (done, addr) of the master killed
        self.redis = self.d = self.c = None
        self.tasks, self.cmds = [], []
        self.sent = 0
        self.done = 0
        self.events = []          # [(acked threshold, "kill" | "child")]
        self.restarts = []
        self.child_kills = []     # (pid, done)
        self.orphan_watch = []    # (deadline, old bygated pid, {pid: start})
        self.orphans_left = []    # (pid, comm, old bygated pid)
        self.failures = []        # run-time failures (outside the checks)
        self.parked_max = 0       # most entries seen in the ready set
        self.parked_at_kills = []  # entries in it at each bygated kill
        self.t0 = time.monotonic()
        self.phase_s = {}

    def say(self, fmt, *args):
        self.out("[%6.1fs] %s" % (time.monotonic() - self.t0, fmt % args))

    # -- set-up ----------------------------------------------------------

    def plan(self):
        """The tasks (content = a sleep in ms) and the progress points at
        which each kill fires."""
        for i in range(self.n_tasks):
            session = "chaos-s%02d" % (i % SESSIONS)
            content = str(self.rng.randint(0, MAX_SLEEP_MS))
            lane, meta = "", {}
            if self.n_lanes:
                lane = self.rng.choice(LANES[:self.n_lanes])
                meta = {"lane": lane,
                        "priority": self.rng.randint(0, MAX_PRIORITY)}
            cmd = pc.ask_command(session, AGENT, content, metadata=meta)
            eid, cmds = pc.send_commands(self.keys, cmd)
            self.tasks.append(verify.Task(session, cmd["header"]["message_id"],
                                          eid, content, lane))
            self.cmds.append(cmds)
        lo = max(1, self.n_tasks * 3 // 100)
        hi = max(lo, self.n_tasks * 9 // 10)
        self.events = sorted(
            [(self.rng.randint(lo, hi), "kill") for _ in range(self.n_kills)]
            + [(self.rng.randint(lo, hi), "child")
               for _ in range(self.n_child_kills)]
            + ([(self.rng.randint(lo, hi), "master")] if self.cluster
               else []))

    def start(self):
        for sub in ("state", "workspace", "redis", "bygated"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if self.cluster:
            rc = RedisCluster(self.dir / "redis", masters=3, replicas=1,
                              node_timeout_ms=1000)
            self.redis = ClusterBackend(rc)
            rc.start()
        else:
            self.redis = RedisServer(self.dir / "redis")
            self.redis.start()
        self.c = self.redis.client(timeout=30.0)
        cfg = worker_config(self.build, self.redis, self.dir, self.log_level,
                            self.shared, self.n_lanes, self.window)
        env = proc.clean_env()
        env.pop("BYGATE_FAULT", None)
        if self.fault:
            env["BYGATE_FAULT"] = self.fault
        self.d = Bygated(self.build / "bygated", cfg, self.dir / "bygated",
                         env=env, start_timeout=30.0,
                         label="bygated(chaos)")
        self.restart(0, None, "start")
        self.say("redis %s:%d, bygated pid %d, workdir %s", self.redis.host,
                 self.redis.port, self.d.pid, self.dir)

    def restart(self, done, old_pid, kind):
        """(Re)start bygated with the same config and state directory;
        numbered as the log's "=== start #n" markers."""
        r = Restart(self.d.starts + 1, done, old_pid, kind, self.d.log_mark())
        m0 = time.monotonic()
        try:
            self.d.start(wait=True)
        except BygatedError as e:
            raise ChaosAbort("bygated did not start (start #%d): %s"
                             % (r.n, e)) from None
        r.ready_s = time.monotonic() - m0
        self.restarts.append(r)

    # -- the chaos -------------------------------------------------------

    def progress(self):
        """Entries finished (read by the group and acked), polled cheaply."""
        p = verify.group_progress(self.c, self.stream, GROUP)
        if p is not None and p[0] is not None:
            self.done = max(self.done, p[0] - p[1])
        return p

    def parked(self):
        """Entries waiting in the fleet's ready set (its lanes' sorted
        sets, supervisor/ready.c) now."""
        n = 0
        for i in range(self.n_lanes if self.window else 0):
            n += self.c.call("ZCARD", "%s:bygate_ready:lane:%s"
                             % (self.stream, LANES[i]))
        self.parked_max = max(self.parked_max, n)
        return n

    def send_batch(self):
        batch = self.cmds[self.sent:self.sent + BATCH]
        self.c.pipeline([c for cmds in batch for c in cmds])
        self.sent += len(batch)

    def kill_bygated(self):
        old = self.d.pid
        orphans = proc.descendants_of(old)
        parked = self.parked()
        self.d.kill()
        self.parked_at_kills.append(parked)
        self.orphan_watch.append((time.monotonic() + ORPHAN_GRACE_S, old,
                                  orphans))
        self.restart(self.done, old, "kill")
        self.say("SIGKILL bygated pid %d (children %s) at %d/%d done, %d "
                 "entries in the ready set; restarted as pid %d, ready in "
                 "%.2f s", old, sorted(orphans) or "none", self.done,
                 self.n_tasks, parked, self.d.pid, self.restarts[-1].ready_s)

    def kill_child(self):
        """SIGKILL a random child of the live bygated; False if none yet."""
        kids = self.d.child_pids()
        if not kids:
            return False
        pid = self.rng.choice(kids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.child_kills.append((pid, self.done))
        self.say("SIGKILL child pid %d of bygated %d at %d/%d done", pid,
                 self.d.pid, self.done, self.n_tasks)
        return True

    def housekeeping(self):
        """Kill a dead bygated's children still alive after the grace (and
        report them); notice bygated exiting on its own and restart it."""
        now = time.monotonic()
        for w in [w for w in self.orphan_watch if w[0] <= now]:
            self.orphan_watch.remove(w)
            self.orphans_left += kill_alive(w[2], w[1])
        if self.d.alive():
            return
        status, old = self.d.returncode, self.d.pid
        kind = ("fault" if self.fault and status == FAULT_EXIT
                else "unplanned")
        if kind == "unplanned":
            self.failures.append(
                "bygated pid %d exited by itself with status %s at %d/%d "
                "done; log tail:\n%s" % (old, status, self.done,
                                         self.n_tasks,
                                         indent(self.d.log_tail(25))))
        self.say("bygated pid %d exited with status %s (%s); restarting",
                 old, status, Restart.KINDS[kind])
        self.orphan_watch.append((now + ORPHAN_GRACE_S, old,
                                  dict(self.d.proc.seen)))
        self.restart(self.done, old, kind)
        n = sum(1 for r in self.restarts if r.kind == kind)
        if n > (5 if kind == "unplanned" else MAX_FAULT_EXITS):
            raise ChaosAbort("bygated exited by itself %d times (%s)"
                             % (n, Restart.KINDS[kind]))

    def drive(self):
        """Send every task in batches while firing the kills at their
        progress points."""
        last, changed = -1, time.monotonic()
        next_parked = 0.0
        while self.sent < self.n_tasks or self.events:
            self.housekeeping()
            self.progress()
            if time.monotonic() >= next_parked:
                self.parked()
                next_parked = time.monotonic() + 0.1
            now = time.monotonic()
            if self.done != last:
                last, changed = self.done, now
            if self.sent < self.n_tasks and self.sent - self.done < BACKLOG:
                self.send_batch()
            stalled = now - changed
            if self.events and (self.done >= self.events[0][0]
                                or stalled >= STALL_FIRE_S):
                if self.fire(self.events[0][1]):
                    self.events.pop(0)
            if stalled >= STALL_GIVE_UP_S:
                self.failures.append(
                    "no progress for %.0f s while sending (%d sent, %d done, "
                    "%d kills not fired)" % (stalled, self.sent, self.done,
                                             len(self.events)))
                self.events = []
                while self.sent < self.n_tasks:
                    self.send_batch()
                return
            time.sleep(TICK_S)

    def fire(self, kind):
        if kind == "kill":
            self.kill_bygated()
            return True
        if kind == "master":
            self.kill_master()
            return True
        return self.kill_child()

    def kill_master(self):
        """SIGKILL the master of the agent-type stream (its replica takes
        over; bygated's connections are lost until then)."""
        rc = self.redis.cluster
        node = rc.node_for_slot(rc.keyslot(self.stream))
        with rc.client(node) as r:  # what it has reaches its replica
            r.call("WAIT", 1, 2000)
        rc.kill(node)
        self.master_killed = (self.done, node.addr)
        self.say("SIGKILL redis master %s (pid %s) at %d/%d done", node.addr,
                 node.pid, self.done, self.n_tasks)
        promoted = rc.wait_failover(node, timeout=60)
        self.say("replica %s promoted", promoted.addr)

    def settle(self):
        """Wait (bounded) until every entry is read and acked and every
        message has a terminal record."""
        deadline = time.monotonic() + self.wait_s
        last, changed, next_records = None, time.monotonic(), 0.0
        while True:
            self.housekeeping()
            p = self.progress()
            now = time.monotonic()
            if p != last:
                last, changed = p, now
            if p == (self.n_tasks, 0) and now >= next_records:
                next_records = now + 0.5
                if self.count_terminal() == self.n_tasks:
                    self.say("all %d tasks terminal, nothing pending",
                             self.n_tasks)
                    return
            if now - changed >= STALL_GIVE_UP_S or now >= deadline:
                self.failures.append(
                    "not settled: %s after %.0f s (entries-read, pending = "
                    "%s; %d/%d records terminal); details in the checks"
                    % ("no progress" if now < deadline else "gave up",
                       now - changed if now < deadline else self.wait_s, p,
                       self.count_terminal(), self.n_tasks))
                return
            time.sleep(0.1)

    def count_terminal(self):
        mids = {t.mid for t in self.tasks}
        n = 0
        for s in sorted({t.session for t in self.tasks}):
            for f, v in self.c.hgetall(self.keys.registry(s)).items():
                if f.startswith("exec:") and '"message_id"' in v:
                    rec = json.loads(v)
                    n += (rec.get("message_id") in mids
                          and rec.get("status") in verify.TERMINAL)
        return n

    # -- the end ---------------------------------------------------------

    def stop(self):
        """SIGTERM bygated (graceful drain); its exit status must be 0."""
        pid = self.d.pid
        rc = self.d.stop(signal.SIGTERM, timeout=40.0)
        for p, comm in self.d.leftovers:
            self.orphans_left.append((p, comm, pid))
        if rc != 0 and not (self.fault and rc == FAULT_EXIT):
            self.failures.append("bygated pid %d exited with status %s on "
                                 "SIGTERM; log tail:\n%s"
                                 % (pid, rc, indent(self.d.log_tail(25))))
        self.say("bygated pid %d stopped with SIGTERM: status %s", pid, rc)

    def state_check(self):
        """(5) `bygate-state check` against Redis, with bygated stopped."""
        c = verify.Check(5, "bygate-state check")
        exe = self.build / "bygate-state"
        if not os.access(str(exe), os.X_OK):
            c.skipped = "%s is not built" % exe
            return c
        host, port = self.redis.host, self.redis.port
        if self.cluster:  # a live node as the seed
            node = self.redis.cluster.masters()[0]
            host, port = node.host, node.port
        argv = [str(exe), "-d", str(self.dir / "state"), "check", "--redis",
                "%s:%d" % (host, port), "--worker", WORKER]
        env = proc.clean_env(self.redis.env() if self.cluster else None)
        try:
            p = subprocess.run(argv, capture_output=True, text=True,
                               timeout=60, env=env,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            c.fail("`%s` did not finish in 60 s" % " ".join(argv))
            return c
        text = (p.stdout + p.stderr).strip()
        if "unknown command" in text.lower():
            c.skipped = "bygate-state has no `check` command yet"
        elif p.returncode != 0:
            c.fail("`%s` exited %d:" % (" ".join(argv), p.returncode))
            for line in text.splitlines()[:40]:
                c.fail("  " + line)
        else:
            c.note = text.splitlines()[-1] if text else "exit 0"
        return c

    def recovery_times(self):
        """Fill each restart's time from its start to the log line
        "start-up reconcile done" (timestamps of bygated's own log)."""
        text_end = None
        for r in reversed(self.restarts):
            seg = self.d.log_text(since=r.log_from)
            if text_end is not None:
                seg = seg[:text_end - r.log_from]
            text_end = r.log_from
            m = RECONCILE_RE.search(seg)
            if m:
                ts = datetime.datetime.strptime(
                    m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
                r.reconcile_s = max(0.0, ts - r.wall)
                r.reconcile_text = m.group(2).strip(" :")

    def await_orphans(self):
        """Give the last dead bygated's children their grace, then judge."""
        while self.orphan_watch:
            time.sleep(max(0.0, min(w[0] for w in self.orphan_watch)
                           - time.monotonic()))
            self.housekeeping()

    def sanitizer_reports(self):
        """An ASan/UBSan report anywhere in the log (bygated or a child,
        e.g. under `make asan`) is a failure even if nothing was lost."""
        lines = [l for l in self.d.log_text().splitlines()
                 if SANITIZER_RE.search(l)] if self.d else []
        if lines:
            self.failures.append("%d sanitizer report lines in the log, "
                                 "first: %s" % (len(lines), lines[0][:300]))

    def cleanup(self):
        """Kill by pid whatever is still running: bygated and its children,
        a dead bygated's children (not reported: their grace was cut
        short), redis-server."""
        if self.d is not None and self.d.alive():
            self.d.proc.kill()
        for _, old, orphans in self.orphan_watch:
            kill_alive(orphans, old)
        self.orphan_watch = []
        if self.c is not None:
            self.c.close()
        if self.redis is not None:
            self.redis.stop()

    # -- report ----------------------------------------------------------

    def summary(self, checks, snap):
        lines = ["== chaos summary ==",
                 "tasks %d over %d sessions (sleep 0-%d ms, pool %d, "
                 "max_attempts %d, %s), seed %s" % (
                     self.n_tasks, SESSIONS, MAX_SLEEP_MS, POOL, MAX_ATTEMPTS,
                     "Python exec agent, max_inflight %d" % self.shared
                     if self.shared > 1 else "sleep plugin", self.seed)]
        lines.append("sched.window %d; %s" % (self.window, "lanes %s, "
                     "priorities 0-%d" % (", ".join(
                         "%s (weight %d, %d tasks)" % (
                             LANES[i], LANE_WEIGHTS[i],
                             sum(1 for t in self.tasks if t.lane == LANES[i]))
                         for i in range(self.n_lanes)), MAX_PRIORITY)
                     if self.n_lanes else "no lanes, no priorities"))
        if self.window and self.n_lanes:
            lines.append("ready set: up to %d entries parked (sampled); at "
                         "the bygated kills: %s" % (
                             self.parked_max, ", ".join(
                                 map(str, self.parked_at_kills)) or "none"))
        kinds = [r.kind for r in self.restarts]
        if self.cluster:
            lines.append("redis cluster: 3 masters, a replica each; master "
                         "killed: %s" % ("%s at %d done, its replica "
                                         "promoted" % (self.master_killed[1],
                                                       self.master_killed[0])
                                         if self.master_killed else "none"))
        lines.append("bygated kills %d (asked %d), fault-point exits %d%s, "
                     "unplanned exits %d; child kills %d (asked %d)" % (
                         kinds.count("kill"), self.n_kills,
                         kinds.count("fault"),
                         " (BYGATE_FAULT=%s)" % self.fault if self.fault
                         else "", kinds.count("unplanned"),
                         len(self.child_kills), self.n_child_kills))
        lines.append("children still alive %.0f s after their bygated died "
                     "(killed): %s" % (ORPHAN_GRACE_S, ", ".join(
                         "%d (%s, of bygated %d)" % o
                         for o in self.orphans_left) or "none"))
        if snap is not None:
            counts, reruns, errors = verify.outcome_counts(snap)
            lines.append("completed %d, failed %d%s; executions run more than "
                         "once %d; dead letters %d" % (
                             counts.get("COMPLETED", 0),
                             counts.get("FAILED", 0),
                             "".join(", %s %d" % kv for kv in counts.items()
                                     if kv[0] not in ("COMPLETED", "FAILED")),
                             reruns, len(snap.deadletters)))
            for msg, n in errors.most_common(5):
                lines.append("  FAILED x%d: %s" % (n, msg))
        lines.append("recovery (restart -> \"%s\" in bygated's log):"
                     % RECONCILE_LINE)
        for r in self.restarts:
            lines.append("  " + r.describe())
        lines.append("wall time %.1f s%s" % (
            time.monotonic() - self.t0, "".join(
                ", %s %.1f s" % kv for kv in self.phase_s.items())))
        for f in self.failures:
            lines.append("FAILURE: " + f)
        lines.append("checks:" if checks else "checks: none (no task sent)")
        describe = verify.Describer(snap, self.d.log_text()) if snap else None
        for c in checks:
            lines += ["  " + l for l in c.report(describe)]
        return lines


def kill_alive(pids, parent):
    """SIGKILL those of {pid: start time} still alive; returns
    [(pid, comm, parent)] of them."""
    left = []
    for pid, start in pids.items():
        if proc.pid_alive(pid, start):
            st = proc.proc_stat(pid)
            left.append((pid, st[3] if st else "?", parent))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return left


def indent(text, pad="    "):
    return "\n".join(pad + l for l in text.splitlines())


def run(build, tasks=2000, kills=10, child_kills=10, seed=None, *,
        wait_s=120.0, log_level="info", fault=None, workdir=None, keep=False,
        out=print, shared=0, lanes=3, window=WINDOW, cluster=False):
    """Run the crash test; returns a Result (ok, summary text, workdir).
    fault: a BYGATE_FAULT value for every bygated run (its exits with
    status 86 are then expected and restarted). The work directory is
    removed after a pass unless keep. lanes: the tasks are spread over
    that many lanes with priorities 0-9 (0: neither); window: sched.window
    (0: the ready set off)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 31)
    base = pathlib.Path(workdir or tempfile.mkdtemp(prefix="bygate-chaos-"))
    if not workdir:  # mkdtemp's 0700: the pool user passes to its workspace
        os.chmod(base, 0o711)
    ch = Chaos(build, tasks, kills, child_kills, seed, base, wait_s,
               log_level, fault, out)
    ch.shared = shared
    ch.n_lanes, ch.window = lanes, window
    if cluster:
        ch.cluster = True
        ch.keys = Keys("v2")
        ch.stream = ch.keys.ctrl_agent_type(AGENT)
    mark = proc.mark()
    checks, snap = [], None
    try:
        ch.plan()
        phase = time.monotonic()
        try:
            ch.start()
            ch.drive()
            ch.phase_s["drive"] = time.monotonic() - phase
            phase = time.monotonic()
            ch.settle()
            ch.phase_s["settle"] = time.monotonic() - phase
            ch.await_orphans()
        except ChaosAbort as e:
            ch.failures.append(str(e))
            ch.say("ABORT: %s", str(e).splitlines()[0])
        if ch.sent < ch.n_tasks:
            ch.failures.append("only %d of %d tasks were sent; the checks "
                               "cover those" % (ch.sent, ch.n_tasks))
        if ch.d is not None and ch.d.alive():
            ch.stop()
        ch.recovery_times()
        ch.sanitizer_reports()
        if ch.c is not None and ch.sent:
            snap = verify.Snapshot(ch.c, ch.keys, ch.tasks[:ch.sent],
                                   ch.stream, GROUP)
            checks = verify.run_checks(snap)
            checks.insert(4, ch.state_check())
    finally:
        ch.cleanup()
        proc.kill_since(mark)
    ok = not ch.failures and checks and all(c.ok for c in checks)
    lines = ch.summary(checks, snap)
    if not ok:
        if ch.d is not None:
            lines.append("bygated log %s, tail:" % ch.d.log_path)
            lines.append(indent(ch.d.log_tail(30)))
        lines.append("work directory kept: %s" % base)
    elif not keep:
        shutil.rmtree(base, ignore_errors=True)
    lines.append("RESULT: %s" % ("PASS" if ok else "FAIL"))
    return Result(bool(ok), "\n".join(lines), base)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="build directory")
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--kills", type=int, default=10,
                    help="SIGKILLs (and restarts) of bygated")
    ap.add_argument("--child-kills", type=int, default=10,
                    help="SIGKILLs of a random child")
    ap.add_argument("--seed", type=int, help="plan seed (default: random, "
                    "printed; repeats the plan, not the timing)")
    ap.add_argument("--wait", type=float, default=120.0,
                    help="bound on the final wait for completion, seconds")
    ap.add_argument("--log-level", default="info",
                    choices=("debug", "info", "warn", "error"))
    ap.add_argument("--fault", metavar="POINT[:N]",
                    help="run every bygated with BYGATE_FAULT=POINT[:N] "
                    "(docs/testing.md); its exits at the point are restarted")
    ap.add_argument("--lanes", type=int, default=len(LANES),
                    choices=range(len(LANES) + 1),
                    help="spread the tasks over this many weighted lanes "
                    "with priorities 0-%d (0: no lanes, no priorities)"
                    % MAX_PRIORITY)
    ap.add_argument("--window", type=int, default=WINDOW,
                    help="sched.window (0: the ready set off)")
    ap.add_argument("--workdir", help="directory for redis, state and logs "
                    "(default: a new temporary one)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory after a pass")
    ap.add_argument("--shared", type=int, default=0, metavar="N",
                    help="run the tasks in a Python exec agent with "
                    "max_inflight N (several tasks per child) instead of "
                    "the sleep plugin")
    ap.add_argument("--cluster", action="store_true",
                    help="on a private Redis Cluster (3 masters, a replica "
                    "each, v2 keys) whose stream's master is killed once "
                    "mid-run (docs/cluster.md)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        res = run(args.build, args.tasks, args.kills, args.child_kills,
                  args.seed, wait_s=args.wait, log_level=args.log_level,
                  fault=args.fault, workdir=args.workdir, keep=args.keep,
                  shared=args.shared, lanes=args.lanes,
                  window=args.window, cluster=args.cluster)
    except KeyboardInterrupt:
        print("chaos: interrupted; every process it started was killed")
        return 130
    print(res.summary)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
