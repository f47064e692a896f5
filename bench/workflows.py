"""bench/workflows.py - the workflow figures of `make bench` (issue 13,
docs/workflows.md; imported by bench/run.py, which owns the processes):

- step overhead: a chain of tasks (each depends on the one before) run by
  bygate.dag with the noop plugin, closed loop: the time from a task's end
  (its record's finished_at) to its dependent's start (started_at), which
  is the callback, the workflow's run that reads and writes its state, and
  the dependent's call;
- a 1,000-task graph (all independent, and 10 layers of 100) against the
  same 1,000 noop tasks sent directly, from the first send to the last
  end.

Times from the records are milliseconds since the epoch (Redis-side
clocks of one host); whole runs are timed by the client's monotonic
clock."""

import json
import pathlib
import statistics
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1] /
                "tests" / "integration"))
import pyclient  # noqa: E402

CHAIN = 200       # --quick: 20
WIDE = 1000       # --quick: 100
LAYERS = 10
POLL_S = 0.01


def agents(run):
    return [{"name": "bygate.dag", "handler": "plugin",
             "plugin": str(run.build / "plugins" / "workflows.so")},
            {"name": "noop", "handler": "plugin",
             "plugin": str(run.build / "plugins" / "noop.so")}]


def start(run, name):
    r = run.redis(name)
    d = run.bygated(r, name, agents=agents(run))
    c = r.client(timeout=10.0)
    run.owned.append(c)
    return c


def records(c, keys, session):
    reg = c.call("HGETALL", keys.registry(session)) or []
    pairs = dict(zip(reg[::2], reg[1::2]))
    return [json.loads(v) for k, v in pairs.items() if k.startswith("exec:")]


def wait_done(c, keys, session, n, timeout):
    """Until n records of the session are terminal; the monotonic time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        recs = records(c, keys, session)
        if sum(1 for r in recs
               if r["status"] in ("COMPLETED", "FAILED")) >= n:
            return time.monotonic()
        time.sleep(POLL_S)
    raise RuntimeError("%d tasks of %s not done within %.0f s"
                       % (n, session, timeout))


def run_dag(c, keys, session, spec, timeout):
    t0 = time.monotonic()
    mid, _ = pyclient.send(c, keys, session, "bygate.dag", spec)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rec = pyclient.terminal(c, keys, session, mid)
        if rec:
            if rec["status"] != "COMPLETED":
                raise RuntimeError("graph ended %s: %s" % (
                    rec["status"], rec.get("error_message")))
            return time.monotonic() - t0, mid
        time.sleep(POLL_S)
    raise RuntimeError("graph of %s not done within %.0f s"
                       % (session, timeout))


def sizes(run):
    return (20, 100) if run.args.quick else (CHAIN, WIDE)


def step_overhead(run, chain=None):
    chain = chain or sizes(run)[0]
    c = start(run, "wf-chain%d" % chain)
    keys = run.keys
    spec = {"tasks": {"t%03d" % i: {
        "agent": "noop", "content": "x",
        "depends_on": ["t%03d" % (i - 1)] if i else []}
        for i in range(chain)}}
    took, mid = run_dag(c, keys, "wf-chain", spec, run.args.timeout)
    kids = sorted((r for r in records(c, keys, "wf-chain")
                   if r.get("parent_message_id") == mid),
                  key=lambda r: r["started_at"])
    gaps = [b["started_at"] - a["finished_at"]
            for a, b in zip(kids, kids[1:])]
    runs = [r["finished_at"] - r["started_at"] for r in kids]
    gaps.sort()
    return {"tasks": chain, "total_s": round(took, 3),
            "per_step_ms": round(took * 1000.0 / chain, 2),
            "gap_ms_p50": statistics.median(gaps),
            "gap_ms_p90": gaps[int(len(gaps) * 0.9)],
            "gap_ms_max": gaps[-1],
            "task_ms_p50": statistics.median(runs)}


def wide(run, layers):
    c = start(run, "wf-wide%d" % layers)
    keys = run.keys
    n = sizes(run)[1]
    per = n // layers
    tasks = {}
    for i in range(n):
        layer = i // per
        deps = ["t%04d" % ((layer - 1) * per + i % per)] if layer else []
        tasks["t%04d" % i] = {"agent": "noop", "content": "x",
                              "depends_on": deps}
    spec = {"tasks": tasks}
    took, _ = run_dag(c, keys, "wf-wide%d" % layers, spec,
                      run.args.timeout * 4)
    # the same tasks sent directly, all at once
    t0 = time.monotonic()
    pyclient.send_many(c, keys, "direct%d" % layers, "noop", "x", n)
    t1 = wait_done(c, keys, "direct%d" % layers, n, run.args.timeout)
    direct = t1 - t0
    return {"tasks": n, "layers": layers, "graph_s": round(took, 3),
            "direct_s": round(direct, 3),
            "ratio": round(took / direct, 2) if direct else None}


def workflows(run, results, phase, say, rule):
    short = phase("workflow_chain_short", "Workflow step overhead, short",
                  step_overhead, run, 10)
    chain = phase("workflow_chain", "Workflow step overhead", step_overhead,
                  run)
    flat = phase("workflow_wide", "Task graph, independent tasks", wide, run,
                 1)
    layered = phase("workflow_layers", "Task graph, 10 layers", wide, run,
                    LAYERS)
    results["workflows"] = {"chain_short": short, "chain": chain,
                            "wide": flat, "layers": layered}
    say(rule)
    say("Workflows (bygate.dag, noop plugin tasks, pool %d; docs/"
        "workflows.md)" % run.args.pool)
    for ch in (short, chain):
        if ch:
            say("  step overhead, a chain of %d: dependency's end -> "
                "dependent's start p50 %s ms, p90 %s ms, max %s ms "
                "(records, ms); %.2f ms per step end to end, the task itself "
                "%s ms" % (ch["tasks"], ch["gap_ms_p50"], ch["gap_ms_p90"],
                           ch["gap_ms_max"], ch["per_step_ms"],
                           ch["task_ms_p50"]))
    for g, what in ((flat, "independent"), (layered, "10 layers")):
        if g:
            say("  %d tasks, %s: graph %.2f s, the same tasks sent "
                "directly %.2f s (x%.1f)" % (g["tasks"], what, g["graph_s"],
                                             g["direct_s"], g["ratio"]))
