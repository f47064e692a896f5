#!/usr/bin/env python3
"""`make bench-peers`: the drain of N prefilled no-op tasks by bygated
(noop plugin) and by BullMQ (Node, Worker with concurrency 50), side by
side in the same run (issue 16).

Each run gets a fresh private redis-server on a free loopback port:

  bygated: N ASK_AGENT commands over --sessions sessions (default 100, as
    `make bench`), written exactly as the client writes them (record +
    msg_map, EXPIRE, XADD; tests/integration/pyclient.py) into the noop
    agent type's stream, with bygated not running; then bygated
    (pool --pool, the noop plugin, sandbox profile trusted, as every
    full-load phase of `make bench`) is started and timed, from its spawn,
    until its consumer group has read every entry and acked it (polled with
    XINFO GROUPS every POLL_S; those calls are left out of the counts);
    then every execution record is checked COMPLETED.
  BullMQ: N jobs added with Queue.addBulk (bench/peers/bullmq_drain.js
    prefill), then a Worker process is started and timed, from its spawn,
    until it has seen N jobs completed and exited.

Figures per task: tasks/s, worker CPU (utime + stime from /proc; for
bygated with its children, for node the reaped process), Redis CPU (INFO
cpu before and after) and Redis commands (INFO commandstats). The runs are
interleaved (bygated, BullMQ, bygated, ... --rounds times) and the medians
printed, with the ratio bygated / BullMQ.

When node or npm is missing, or BullMQ cannot be installed, it says so,
runs the bygated side alone and exits 0. BullMQ is installed with
`npm install` into bench/peers/node_modules (ignored by git) when missing.

    python3 bench/peers/drain.py --build build [--tasks N] [--rounds R]
        [--set SECTION.KEY=VALUE ...]
"""

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import run as bench  # noqa: E402  (bench/run.py: fixtures and measurements)
import recovery  # noqa: E402  (SEND_BATCH, pyclient)
from compare import overrides  # noqa: E402  (SECTION.KEY=VALUE settings)

pyclient = recovery.pyclient

AGENT_TYPE = "noop"
POLL_S = 0.005
JS = HERE / "bullmq_drain.js"
FIGURES = (("tasks_per_s", "tasks/s", "%.0f"),
           ("worker_cpu_us_per_task", "worker CPU us/task", "%.1f"),
           ("redis_cpu_us_per_task", "Redis CPU us/task", "%.1f"),
           ("redis_commands_per_task", "Redis commands/task", "%.1f"))
say = bench.say


def bullmq_ready():
    """(True, BullMQ's version) when node can load bullmq, installing it
    with npm when missing; else (False, why)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return False, "%s not found" % " and ".join(
            n for n, p in (("node", node), ("npm", npm)) if p is None)
    probe = [node, "-e", "console.log(require('bullmq/package.json').version)"]
    r = subprocess.run(probe, cwd=HERE, capture_output=True, text=True)
    if r.returncode != 0:
        say("installing BullMQ: npm install in %s" % HERE)
        i = subprocess.run([npm, "install", "--no-audit", "--no-fund"],
                           cwd=HERE, capture_output=True, text=True)
        if i.returncode != 0:
            return False, "npm install failed: %s" % i.stderr.strip()[-500:]
        r = subprocess.run(probe, cwd=HERE, capture_output=True, text=True)
        if r.returncode != 0:
            return False, "bullmq does not load: %s" % r.stderr.strip()[-500:]
    return True, r.stdout.strip()


def figures(n, elapsed_s, worker_cpu_s, rs0, rs1, skip=()):
    cmds, redis_cpu = rs1.delta(rs0)
    calls = sum(c for name, (c, _) in cmds.items() if name not in skip)
    return {"tasks": n, "elapsed_s": elapsed_s,
            "tasks_per_s": n / elapsed_s,
            "worker_cpu_us_per_task": worker_cpu_s * 1e6 / n,
            "redis_cpu_us_per_task": redis_cpu * 1e6 / n,
            "redis_commands_per_task": calls / n,
            "commands": {k: v[0] for k, v in cmds.items() if k not in skip}}


def session(k, sessions):
    return "drain-s%d" % (k % sessions)


def send_tasks(c, keys, n, sessions):
    """n ASK_AGENT commands to the noop agent type over `sessions`
    sessions, as pyclient.send writes them (record + msg_map, EXPIRE,
    XADD), SEND_BATCH per round trip."""
    for first in range(0, n, recovery.SEND_BATCH):
        cmds = []
        for k in range(first, min(n, first + recovery.SEND_BATCH)):
            cmd = pyclient.ask_command(session(k, sessions), AGENT_TYPE, "ok")
            cmds += pyclient.send_commands(keys, cmd)[1]
        c.pipeline(cmds)


def completed(c, keys, sessions):
    """How many execution records of the drain's sessions are COMPLETED."""
    done = 0
    for s in range(sessions):
        done += sum(1 for v in c.call("HVALS", keys.registry(session(s, sessions)))
                    if v.startswith("{") and
                    json.loads(v).get("status") == "COMPLETED")
    return done


def group_done(c, stream, n):
    for g in c.call("XINFO", "GROUPS", stream):
        g = dict(zip(g[::2], g[1::2]))
        if g["name"] == bench.GROUP:
            return int(g["entries-read"] or 0) >= n and int(g["pending"]) == 0
    return False


def bygated_drain(run, n, k):
    name = "drain-bygated-%d" % k
    r = run.redis(name)
    c = r.client(timeout=30.0)
    run.owned.append(c)
    stream = run.keys.ctrl_agent_type(AGENT_TYPE)
    d = run.bygated(r, name, wait=False,
                    extra=overrides(getattr(run.args, "set", [])))
    c.call("XGROUP", "CREATE", stream, bench.GROUP, "0", "MKSTREAM")
    send_tasks(c, run.keys, n, run.args.sessions)
    rs0 = bench.RedisSnapshot(c)
    t0 = time.monotonic()
    d.start(wait=False)
    while not group_done(c, stream, n):
        if not d.alive():
            raise bench.PhaseError("bygated exited (status %s); log tail:\n%s"
                                   % (d.returncode, d.log_tail(20)))
        if time.monotonic() - t0 > run.args.timeout:
            raise bench.PhaseError("bygated: not drained after %d s; log "
                                   "tail:\n%s" % (run.args.timeout,
                                                  d.log_tail(20)))
        time.sleep(POLL_S)
    elapsed = time.monotonic() - t0
    rs1 = bench.RedisSnapshot(c)
    cpu1 = bench.CpuSnapshot(d.pid)
    own = cpu1.own / bench.TICK
    kids = (sum(cpu1.children.values()) + cpu1.reaped) / bench.TICK
    res = figures(n, elapsed, own + kids, rs0, rs1, skip=("xinfo|groups", "xinfo"))
    res["bygated_cpu_us_per_task"] = own * 1e6 / n
    res["children_cpu_us_per_task"] = kids * 1e6 / n
    done = completed(c, run.keys, run.args.sessions)
    if done != n:
        raise bench.PhaseError("bygated: %d of %d executions COMPLETED"
                               % (done, n))
    run.close_phase()
    return res


def bullmq_drain(run, n, k):
    name = "drain-bullmq-%d" % k
    r = run.redis(name)
    c = r.client(timeout=30.0)
    run.owned.append(c)
    node = shutil.which("node")
    rc, out, err = run.program([node, JS, "prefill", r.port, n],
                               name + "-prefill", timeout=run.args.timeout)
    if rc != 0:
        raise bench.PhaseError("BullMQ prefill: exit %s: %s"
                               % (rc, err.strip()[-1000:]))
    rs0 = bench.RedisSnapshot(c)
    cpu0 = bench.reaped_cpu_s()
    t0 = time.monotonic()
    rc, out, err = run.program([node, JS, "work", r.port, n], name,
                               timeout=run.args.timeout)
    elapsed = time.monotonic() - t0
    cpu = bench.reaped_cpu_s() - cpu0
    rs1 = bench.RedisSnapshot(c)
    if rc != 0:
        raise bench.PhaseError("BullMQ worker: exit %s: %s"
                               % (rc, err.strip()[-1000:]))
    res = figures(n, elapsed, cpu, rs0, rs1)
    res["worker_own_tasks_per_s"] = bench.loadgen_json(
        rc, out, err, "bullmq_drain.js")["tasks_per_s"]
    run.close_phase()
    return res


def drain_phase(run, results, phase, have_bullmq, version):
    """`make bench`'s drain (bench/run.py): --repeat rounds of bygated's
    drain then BullMQ's (when have_bullmq), each a phase of its own;
    results["drain"] = {"bygated": median figures, "bullmq": ...} of the
    sides that gave figures, with the ratio bygated / BullMQ."""
    a, n = run.args, run.args.tasks
    runs = {"bygated": [], "bullmq": []}
    for k in range(a.repeat):
        v = phase("drain_bygated_%d" % (k + 1),
                  "Drain, bygated (run %d)" % (k + 1), bygated_drain, run, n, k)
        if v:
            runs["bygated"].append(v)
        if have_bullmq:
            v = phase("drain_bullmq_%d" % (k + 1),
                      "Drain, BullMQ (run %d)" % (k + 1), bullmq_drain, run,
                      n, k)
            if v:
                runs["bullmq"].append(v)
    out = {}
    for side, rs in runs.items():
        if rs:
            out[side] = {key: median(rs, key) for key in rs[0]
                         if isinstance(rs[0][key], (int, float))}
            out[side]["runs_tasks_per_s"] = [round(r["tasks_per_s"], 1)
                                             for r in rs]
    if "bygated" in out and "bullmq" in out:
        out["bygated_over_bullmq"] = (out["bygated"]["tasks_per_s"] /
                                      out["bullmq"]["tasks_per_s"])
    out["bullmq_version"] = version if have_bullmq else None
    results["drain"] = out
    if runs["bygated"] or runs["bullmq"]:
        say(bench.RULE)
        report(a, {"bygated": runs["bygated"], "bullmq": runs["bullmq"]
                   if have_bullmq and runs["bullmq"] else None}, version,
               a.repeat)
    elif not have_bullmq:
        say("Drain: BullMQ skipped (%s)" % version)


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def report(a, results, version, rounds):
    b, q = results["bygated"], results.get("bullmq")
    if not b:
        return
    say("Drain of %d prefilled no-op tasks, medians of %d interleaved run(s) "
        "(time from the worker's spawn to the last task done)"
        % (a.tasks, rounds))
    head = "%-22s %14s" % ("", "bygated")
    if q:
        head += " %14s %10s" % ("BullMQ " + version, "ratio")
    say(head)
    for key, label, fmt in FIGURES:
        bv = median(b, key)
        line = "%-22s %14s" % (label, fmt % bv)
        if q:
            qv = median(q, key)
            line += " %14s %10s" % (fmt % qv, "%.2f" % (bv / qv) if qv else "-")
        say(line)
    sets = getattr(a, "set", [])
    say("bygated: noop plugin, pool %d, %d sessions%s (CPU: bygated %.1f + children %.1f "
        "us/task)" % (a.pool, a.sessions,
                      ", " + " ".join(sets) if sets else "", median(b, "bygated_cpu_us_per_task"),
                      median(b, "children_cpu_us_per_task")))
    if q:
        say("BullMQ: Worker concurrency 50, no-op processor, default job "
            "options (its own clock: %.0f tasks/s)"
            % median(q, "worker_own_tasks_per_s"))
    for side, runs in (("bygated", b), ("BullMQ", q)):
        if not runs:
            continue
        say("%s tasks/s per run: %s" % (side, ", ".join(
            "%.0f" % r["tasks_per_s"] for r in runs)))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=pathlib.Path,
                    default=bench.REPO / "build")
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=100,
                    help="sessions of bygated's tasks (as make bench's)")
    ap.add_argument("--pool", type=int, default=8, help="bygated children")
    ap.add_argument("--set", action="append", default=[],
                    metavar="SECTION.KEY=VALUE",
                    help="a bygated config key (repeatable), e.g. "
                    "trace.enabled=false")
    ap.add_argument("--timeout", type=int, default=300,
                    help="seconds a drain may take")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    a.build = a.build.resolve()
    try:
        bench.check_built(a.build)
    except bench.PhaseError as e:
        say("bench-peers: %s" % e)
        return 1
    have_bullmq, version = bullmq_ready()
    if not have_bullmq:
        say("bench-peers: BullMQ skipped (%s); bygated's drain alone" % version)
    run = bench.Run(a)
    results = {"bygated": []}
    if have_bullmq:
        results["bullmq"] = []
    failed = None
    try:
        for k in range(a.rounds):
            results["bygated"].append(bygated_drain(run, a.tasks, k))
            say("round %d: bygated %.0f tasks/s" %
                (k + 1, results["bygated"][-1]["tasks_per_s"]))
            if have_bullmq:
                results["bullmq"].append(bullmq_drain(run, a.tasks, k))
                say("round %d: BullMQ %.0f tasks/s" %
                    (k + 1, results["bullmq"][-1]["tasks_per_s"]))
    except bench.PhaseError as e:
        failed = str(e)
        say("bench-peers: %s" % e)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        run.close(keep=a.keep or failed is not None)
    if failed:
        return 1
    say(bench.RULE)
    report(a, results, version if have_bullmq else "", a.rounds)
    results.update(tasks=a.tasks, rounds=a.rounds, pool=a.pool,
                   bullmq_version=version if have_bullmq else None)
    print(json.dumps(results, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
