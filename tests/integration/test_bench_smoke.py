"""Smoke test of `make bench` (bench/run.py): a small run prints every
figure of the report and its final JSON line, and exits 0. It asserts
nothing about speed. The bench programs are built here when missing
(`make test` does not build them)."""

import json
import os
import subprocess
import sys

from harness import REPO, timeout

PROGRAMS = ("loadgen", "stream_floor")
WIRE_FLOOR = REPO.parent / "shared" / "bench" / "wire_floor.py"
ASAN_FLAGS = "-fsanitize=address,undefined -fno-omit-frame-pointer"


def linked_with_asan(binary):
    try:
        with open(binary, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


# CPU figures are whole clock ticks shared out over the tasks, so a small
# one can be 0; what a process used fits in the wall time of its phase
# (bygated is one thread, its children share the cores); phase_seconds are
# rounded to 10 ms.
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def phase_us(res, key):
    """The longest wall time (us) of the phases `key` or `key`_<n>."""
    return max(v for k, v in res["phase_seconds"].items()
               if k == key or k.startswith(key + "_")) * 1e6


def assert_cpu_fits(us_per_task, tasks, wall_us, cores=1):
    assert 0 <= us_per_task * tasks <= wall_us * cores + 2 * TICK_US + 1e4, (
        us_per_task, tasks, wall_us, cores)


def ensure_bench_programs(build):
    """make the bench programs of `build` that are missing, with the
    sanitizer flags when the build's bygated has them."""
    missing = [p for p in PROGRAMS if not (build / "bench" / p).exists()]
    if not missing:
        return
    rel = os.path.relpath(build, REPO)
    cmd = ["make", "--no-print-directory", "BUILD=" + rel]
    if linked_with_asan(build / "bygated"):
        cmd += ["OPT=-O1", "SAN_FLAGS=" + ASAN_FLAGS]
    cmd += ["%s/bench/%s" % (rel, p) for p in missing]
    r = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, "%s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr)


@timeout(600)
def test_bench_quick_run_prints_every_figure_and_exits_0(h):
    ensure_bench_programs(h.build)
    r = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"),
                        "--build", str(h.build), "--tasks", "300", "--quick"],
                       cwd=str(REPO), capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    out = r.stdout
    assert r.returncode == 0, out[-4000:] + r.stderr[-2000:]
    for text in ("Full load", "tasks/s", "latency", "p50", "p99",
                 "redis commands", "redis CPU", "bygated CPU",
                 "Closed loop", "Stream floor", "Summary", "Journal cost",
                 "process/none", "sync/none", "Recovery", "reconcile done",
                 "kill -9", "lease held", "Workflows", "step overhead",
                 "sent directly", "Triggers", "fire time -> entry",
                 "signed POST -> 202"):
        assert text in out, "%r missing from:\n%s" % (text, out)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["failures"] == []
    walls = {"bygate_full": phase_us(res, "bygate_full_process"),
             "bygate_closed": phase_us(res, "bygate_closed")}
    for phase in ("bygate_full", "bygate_closed"):
        fig = res[phase]
        assert fig["tasks_per_s"] > 0 and fig["latency_us"]["p50"] > 0
        assert fig["latency_us"]["p99"] >= fig["latency_us"]["p50"]
        assert fig["redis_commands_per_task"] > fig["client_commands_per_task"]
        assert fig["redis_cpu_us_per_task"] > 0
        assert_cpu_fits(fig["bygated_cpu_us_per_task"], fig["tasks"],
                        walls[phase])
        assert_cpu_fits(fig["children_cpu_us_per_task"], fig["tasks"],
                        walls[phase], os.cpu_count())
    assert res["bygate_full"]["tasks"] == 300
    assert res["bygate_full"]["durability"] == "process"
    # 300 tasks cost bygated several ticks (the closed loop's 30 may not)
    assert res["bygate_full"]["bygated_cpu_us_per_task"] > 0
    jc = res["journal_cost"]
    for mode in ("none", "process", "sync"):
        assert jc[mode]["tasks_per_s"] > 0
        assert jc[mode]["bygated_cpu_us_per_task"] > 0
        assert_cpu_fits(jc[mode]["bygated_cpu_us_per_task"], res["tasks"],
                        phase_us(res, "bygate_full_" + mode))
    assert jc["process_over_none"] > 0 and jc["sync_over_none"] > 0
    # the strict profile's process per task: the children's figure counts
    # the processes they reap (the trusted ones above can round to 0)
    assert res["sandbox_cost"]["strict"]["children_cpu_us_per_task"] > 0
    pel, k9 = res["recovery"]["pel"], res["recovery"]["kill9"]
    assert 0 < pel["reconciled_s"] <= pel["all_completed_s"]
    assert k9["pending_at_kill"] > 0
    assert k9["reconciled_s"] > 0 and k9["lease_held_s"] > 0
    assert res["stream_floor"]["tasks_per_s"] > 0
    for t in res["triggers"]["timers"]:
        assert t["tick"]["fires"] >= 3 and t["tick"]["late_ms_p50"] >= 0
    assert res["triggers"]["webhooks"]["new"]["per_s"] > 0
    if WIRE_FLOOR.is_file():
        assert res["wire_floor"]["tasks_per_s"] > 0
        assert res["bygate_over_wire_floor"] > 0
        assert "bygate / wire floor" in out
    else:
        assert "Wire floor SKIPPED" in out
