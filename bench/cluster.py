#!/usr/bin/env python3
"""Throughput of bygated on a Redis Cluster against one redis-server, in the
same run (issue 17, docs/cluster.md): the drain of N prefilled no-op tasks
(bench/peers/drain.py's prefill: records, msg_map and the ASK written as
the client writes them, here with v2 keys, bygated not running; then bygated started and
timed from its spawn until its group has read and acknowledged every
entry), on a private standalone redis-server and on a private cluster of 3
masters, rounds interleaved, medians printed.

On this project's 2-core machine the cluster cannot be faster: its three
redis-servers share the cores with bygated and its children, every command
goes to its slot's master, and the finish is several calls (one script per
slot, then the XACK) instead of one transaction. The point of a cluster is
that it scales out: each master is one more core of Redis.

    python3 bench/cluster.py --build build [--tasks N] [--rounds R]
        [--sessions S] [--pool P]
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (fixtures and measurements)
sys.path.insert(0, str(HERE / "peers"))
import drain  # noqa: E402  (the prefill and the checks of the drain)
from bglib.clusterclient import ClusterBackend  # noqa: E402
from bglib.keys import Keys  # noqa: E402
from bglib.rediscluster import RedisCluster  # noqa: E402

AGENT_TYPE = drain.AGENT_TYPE
POLL_S = 0.01
KEYS = Keys("v2")
say = bench.say


def redis_cpu_s(servers):
    """Redis CPU seconds used so far, summed over the servers."""
    total = 0.0
    for s in servers:
        with s.client(timeout=10.0) as c:
            cpu = bench.parse_info(c.call("INFO", "cpu"))
        total += float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    return total


def drain_once(run, n, k, cluster):
    name = "%s-%d" % ("cluster" if cluster else "standalone", k)
    if cluster:
        rc = RedisCluster(run.dir("redis-" + name), masters=3)
        r = ClusterBackend(rc)
        run.owned.append(r)
        rc.start()
        servers = rc.masters()
        redis = {"host": r.host, "port": r.port, "mode": "cluster",
                 "key_schema": "v2", "cluster_nodes": rc.seeds()}
    else:
        r = run.redis(name)
        servers = [r]
        redis = {"host": r.host, "port": r.port, "key_schema": "v2"}
    c = r.client(timeout=30.0)
    run.owned.append(c)
    stream = KEYS.ctrl_agent_type(AGENT_TYPE)
    d = run.bygated(r, name, wait=False, extra={"redis": redis})
    c.call("XGROUP", "CREATE", stream, bench.GROUP, "0", "MKSTREAM")
    drain.send_tasks(c, KEYS, n, run.args.sessions)
    cpu0 = redis_cpu_s(servers)
    t0 = time.monotonic()
    d.start(wait=False)
    while not drain.group_done(c, stream, n):
        if not d.alive():
            raise bench.PhaseError("bygated exited (status %s); log tail:\n%s"
                                   % (d.returncode, d.log_tail(20)))
        if time.monotonic() - t0 > run.args.timeout:
            raise bench.PhaseError("not drained after %d s; log tail:\n%s"
                                   % (run.args.timeout, d.log_tail(20)))
        time.sleep(POLL_S)
    elapsed = time.monotonic() - t0
    redis_cpu = redis_cpu_s(servers) - cpu0
    cpu = bench.CpuSnapshot(d.pid)
    own = cpu.own / bench.TICK
    kids = (sum(cpu.children.values()) + cpu.reaped) / bench.TICK
    done = drain.completed(c, KEYS, run.args.sessions)
    if done != n:
        raise bench.PhaseError("%d of %d executions COMPLETED" % (done, n))
    run.close_phase()
    return {"tasks_per_s": n / elapsed, "elapsed_s": elapsed,
            "bygated_cpu_us_per_task": own * 1e6 / n,
            "children_cpu_us_per_task": kids * 1e6 / n,
            "redis_cpu_us_per_task": redis_cpu * 1e6 / n}


FIGURES = (("tasks_per_s", "tasks/s", "%.0f"),
           ("bygated_cpu_us_per_task", "bygated CPU us/task", "%.1f"),
           ("children_cpu_us_per_task", "children CPU us/task", "%.1f"),
           ("redis_cpu_us_per_task", "Redis CPU us/task (all)", "%.1f"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    a.build = pathlib.Path(a.build).resolve()
    run = bench.Run(a)
    runs = {False: [], True: []}
    failed = False
    try:
        for k in range(a.rounds):
            for cluster in (False, True):
                try:
                    res = drain_once(run, a.tasks, k, cluster)
                except bench.PhaseError as e:
                    say("%s run %d FAILED: %s" % (
                        "cluster" if cluster else "standalone", k + 1, e))
                    run.close_phase()
                    failed = True
                    continue
                runs[cluster].append(res)
                say("%-10s run %d: %.0f tasks/s" % (
                    "cluster" if cluster else "standalone", k + 1,
                    res["tasks_per_s"]))
    finally:
        run.close(a.keep)
    say(bench.RULE)
    say("Drain of %d prefilled no-op tasks over %d sessions, v2 keys, pool "
        "%d, medians of %d interleaved round(s)" % (a.tasks, a.sessions,
                                                     a.pool, a.rounds))
    say("%-26s %12s %12s %8s" % ("", "standalone", "cluster(3)", "ratio"))
    for key, label, fmt in FIGURES:
        if not runs[False] or not runs[True]:
            break
        s = statistics.median(r[key] for r in runs[False])
        c = statistics.median(r[key] for r in runs[True])
        say("%-26s %12s %12s %8s" % (label, fmt % s, fmt % c,
                                     "%.2f" % (c / s) if s else "-"))
    for cluster in (False, True):
        say("%s tasks/s per run: %s" % (
            "cluster" if cluster else "standalone",
            ", ".join("%.0f" % r["tasks_per_s"] for r in runs[cluster])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
