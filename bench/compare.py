#!/usr/bin/env python3
"""Two builds of bygated compared on the same machine in one session: the
full-load and closed-loop phases of bench/run.py, run in turn (A B, then
B A, ...), so drift of the machine falls on both. Prints the median of
each build and the ratio B/A.

    python3 bench/compare.py --a /tmp/old/build --b build [--rounds 5]
    python3 bench/compare.py --a build --b build --a-set trace.enabled=false

--a-set/--b-set SECTION.KEY=VALUE (repeatable) override one config key of
that side's bygated (VALUE as JSON when it parses, else a string), so one
build can be compared with itself under two settings.

Used to check that a refactoring costs nothing (docs/architecture.md);
every run starts its own redis-server on a free loopback port."""
import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as bench  # noqa: E402

FIGURES = (("tasks_per_s", "tasks/s", "%9.0f"),
           ("bygated_cpu_us_per_task", "bygated CPU us/task", "%9.1f"),
           ("children_cpu_us_per_task", "children CPU us/task", "%9.1f"),
           ("redis_cpu_us_per_task", "Redis CPU us/task", "%9.1f"),
           ("p50", "latency p50 us", "%9.0f"),
           ("p99", "latency p99 us", "%9.0f"))


def overrides(pairs):
    """{"section": {"key": value}} of SECTION.KEY=VALUE strings."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot or not section or not key:
            raise SystemExit("bad setting %r: want SECTION.KEY=VALUE" % pair)
        try:
            value = json.loads(value)
        except ValueError:
            pass
        out.setdefault(section, {})[key] = value
    return out


def one(build, phase, n, warm, extra=None):
    args = bench.parse_args(["--build", str(build), "--tasks", str(n)])
    r = bench.Run(args)
    try:
        res, _ = bench.bygate_phase(r, phase, phase, n, warm, extra=extra)
    finally:
        r.close(keep=False)
    res["p50"] = res["latency_us"]["p50"]
    res["p99"] = res["latency_us"]["p99"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=pathlib.Path, required=True,
                    help="the build before")
    ap.add_argument("--b", type=pathlib.Path, required=True,
                    help="the build after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--closed-tasks", type=int, default=1000)
    ap.add_argument("--a-set", action="append", default=[],
                    metavar="SECTION.KEY=VALUE",
                    help="a config key of A's bygated (repeatable)")
    ap.add_argument("--b-set", action="append", default=[],
                    metavar="SECTION.KEY=VALUE",
                    help="a config key of B's bygated (repeatable)")
    a = ap.parse_args()
    extra = {"A": overrides(a.a_set), "B": overrides(a.b_set)}
    builds = {"A": a.a.resolve(), "B": a.b.resolve()}
    for b in builds.values():
        bench.check_built(b)
    runs = {(k, p): [] for k in builds for p in ("full", "closed")}
    for i in range(a.rounds):
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        for k in order:
            for phase, n, warm in (("full", a.tasks, 0),
                                   ("closed", a.closed_tasks, 50)):
                res = one(builds[k], phase, n, warm, extra[k] or None)
                runs[(k, phase)].append(res)
                print("round %d %s %-6s %8.0f tasks/s, bygated %.1f us/task"
                      % (i + 1, k, phase, res["tasks_per_s"],
                         res["bygated_cpu_us_per_task"]), flush=True)
    out = {}
    for phase in ("full", "closed"):
        print("\n%s (%d rounds, medians; A = %s, B = %s)"
              % (phase, a.rounds, builds["A"], builds["B"]))
        print("%-24s %9s %9s %7s" % ("", "A", "B", "B/A"))
        for key, label, fmt in FIGURES:
            va = statistics.median(r[key] for r in runs[("A", phase)])
            vb = statistics.median(r[key] for r in runs[("B", phase)])
            ratio = vb / va if va else float("nan")
            print("%-24s %s %s %7.3f" % (label, fmt % va, fmt % vb, ratio))
            out["%s_%s" % (phase, key)] = {"a": va, "b": vb,
                                            "b_over_a": round(ratio, 3)}
            spread = [r[key] for r in runs[("A", phase)] +
                      runs[("B", phase)]]
            out["%s_%s" % (phase, key)]["all"] = spread
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
