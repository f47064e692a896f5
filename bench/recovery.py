"""bench/recovery.py - the recovery figures of `make bench` (imported by
bench/run.py, which owns the processes): how long a bygated started over a
pending list takes to reconcile it, and how long a restart after kill -9
takes to hold its lease again (DESIGN 6; goal: under 2 s).

Times run from just before bygated is spawned; the log (level info) is read
incrementally every POLL_S, Redis polled every CHECK_S."""

import json
import os
import pathlib
import re
from signal import SIGINT, SIGKILL
import statistics
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1] /
                "tests" / "integration"))
import pyclient  # noqa: E402  (sends exactly as GatewayClient.send_message)

from bglib import proc  # noqa: E402

GROUP = "agent_engines"
POLL_S = 0.002
CHECK_S = 0.005
SESSIONS = 10
SEND_BATCH = 100            # tasks per pipelined round trip
KILL_CONTENT = "2000"       # sleep plugin: 2 s per task
GOAL_S = 2.0                # the goal, restart to all reconciled
LEASE_TTL_S = 30            # by-framework's; a restart waiting it out shows
RESTART_TIMEOUT_S = 75.0
LINES = {
    "ready": re.compile(r"bygated ready[^\n]*"),
    "reconciled": re.compile(r"start-up reconcile done[^\n]*"),
    "lease": re.compile(r"lease of worker \S+ [^\n]*"),
}


class RecoveryError(Exception):
    """A recovery phase could not produce its figures; the message says why."""


class LogWatch:
    """Reads a log from an offset as it grows; first_seen[name] is the time
    (from t0) at which the line matching LINES[name] was first read, and
    lines[name] that line."""

    def __init__(self, path, offset):
        self.f = open(path, "a+b")  # created when bygated never ran
        self.f.seek(offset)
        self.carry = ""
        self.first_seen, self.lines = {}, {}

    def poll(self, now):
        data = self.f.read()
        if not data:
            return
        text = self.carry + data.decode("utf-8", "replace")
        cut = text.rfind("\n") + 1
        self.carry = text[cut:]
        for name, pattern in LINES.items():
            if name not in self.first_seen:
                m = pattern.search(text, 0, cut)
                if m:
                    self.first_seen[name], self.lines[name] = now, m.group(0)

    def close(self):
        self.f.close()


def session(k):
    return "recovery-s%d" % (k % SESSIONS)


def send_tasks(client, keys, n, agent_type, content):
    """n ASK_AGENT commands as pyclient.send writes them (record + msg_map,
    EXPIRE, XADD), SEND_BATCH per round trip."""
    for first in range(0, n, SEND_BATCH):
        cmds = []
        for k in range(first, min(n, first + SEND_BATCH)):
            cmd = pyclient.ask_command(session(k), agent_type, content)
            cmds += pyclient.send_commands(keys, cmd)[1]
        client.pipeline(cmds)


def pending(client, stream):
    return client.call("XPENDING", stream, GROUP)[0]


def completed(client, keys):
    """How many execution records of the recovery sessions are COMPLETED."""
    replies = client.pipeline([("HVALS", keys.registry(session(s)))
                               for s in range(SESSIONS)])
    return sum(1 for vals in replies for v in vals
               if v.startswith("{") and json.loads(v).get("status") ==
               "COMPLETED")


def watch_start(d, until, timeout, on_check=None):
    """Start d (not waiting for readiness) and poll its log until every
    name in `until` was seen and on_check(now) (called every CHECK_S)
    returned True; returns the LogWatch, its times from the spawn."""
    watch = LogWatch(d.log_path, d.log_mark())
    checked, check_done = 0.0, on_check is None
    t0 = time.monotonic()
    d.start(wait=False)
    try:
        while True:
            now = time.monotonic() - t0
            watch.poll(now)
            if not check_done and now - checked >= CHECK_S:
                checked, check_done = now, on_check(now)
            if check_done and all(k in watch.first_seen for k in until):
                return watch
            if not d.alive():
                raise RecoveryError("bygated exited (status %s); log tail:\n%s"
                                    % (d.returncode, d.log_tail(20)))
            if now > timeout:
                raise RecoveryError(
                    "after %.0f s: seen %s, waited for %s%s; log tail:\n%s"
                    % (now, sorted(watch.first_seen), list(until),
                       "" if check_done else " and the Redis check",
                       d.log_tail(20)))
            time.sleep(POLL_S)
    finally:
        watch.close()


def pel_phase(run, n):
    """n tasks delivered to the worker's consumer and never acked (what a
    bygated killed with -9 leaves), then a fresh bygated (pool --pool,
    noop plugin, new state directory): seconds to its ready line, its
    start-up reconcile line, and all n COMPLETED with nothing pending."""
    r = run.redis("recovery-pel")
    c = r.client(timeout=30.0)
    run.owned.append(c)
    keys = run.keys
    stream = keys.ctrl_agent_type("noop")
    d = run.bygated(r, "recovery-pel", log_level="info", wait=False)
    worker = d.config["worker"]["id"]
    c.call("XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM")
    send_tasks(c, keys, n, "noop", "ok")
    got = c.call("XREADGROUP", "GROUP", GROUP, worker, "COUNT", n,
                 "STREAMS", stream, ">")
    if not got or len(got[0][1]) != n or pending(c, stream) != n:
        raise RecoveryError("could not leave %d entries pending for %s"
                            % (n, worker))
    done = {}

    def all_done(now):
        if pending(c, stream) == 0 and completed(c, keys) == n:
            done["s"] = now
            return True
        return False
    w = watch_start(d, ("ready", "reconciled"), run.args.timeout, all_done)
    return {"entries": n, "pool": run.args.pool,
            "ready_s": w.first_seen["ready"],
            "reconciled_s": w.first_seen["reconciled"],
            "all_completed_s": done["s"],
            "reconcile_line": w.lines["reconciled"]}


def kill_survivors(d):
    """SIGKILL bygated, then each of its descendants (by pid and start
    time), as a crash of the whole process tree; waits until all are gone."""
    d.proc.note_descendants()
    tree = dict(d.proc.seen)
    d.kill()
    for pid, start in tree.items():
        if proc.pid_alive(pid, start):
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait_until(lambda: not any(proc.pid_alive(p, s)
                                    for p, s in tree.items()),
                    5.0, interval=0.01, what="bygated's children to exit")


def kill9_phase(run, n):
    """bygated (sleep plugin, tasks of 2 s, lease_ttl_s 30) with its pool
    busy and its prefetch pending, killed with -9 with its children, then
    restarted on the same state directory and config: seconds to the
    start-up reconcile line and to the line saying the lease is held."""
    a = run.args
    r = run.redis("recovery-kill9")
    c = r.client(timeout=30.0)
    run.owned.append(c)
    stream = run.keys.ctrl_agent_type("sleep")
    d = run.bygated(r, "recovery-kill9", agent_type="sleep", log_level="info",
                    worker={"lease_ttl_s": LEASE_TTL_S})
    send_tasks(c, run.keys, n, "sleep", KILL_CONTENT)
    want = min(n, 2 * a.pool)  # pool busy + prefetch (capped by pool size)
    try:
        proc.wait_until(lambda: pending(c, stream) >= want, 10.0,
                        interval=0.01, what="%d entries pending" % want)
    except TimeoutError:
        if pending(c, stream) == 0:
            raise RecoveryError("no entry pending 10 s after the send; log "
                                "tail:\n%s" % d.log_tail(20)) from None
    time.sleep(0.2)  # the pool is mid-task
    before = pending(c, stream)
    kill_survivors(d)
    w = watch_start(d, ("reconciled", "lease"), RESTART_TIMEOUT_S)
    res = {"entries_sent": n, "pending_at_kill": before, "pool": a.pool,
           "reconciled_s": w.first_seen["reconciled"],
           "lease_held_s": w.first_seen["lease"],
           "lease_line": w.lines["lease"],
           "reconcile_line": w.lines["reconciled"]}
    d.stop(SIGINT, timeout=10.0)
    return res


def medians(runs, figures):
    """One dict: the median of each of `figures` over the runs, every run's
    values under runs_<figure>, and the other keys of the first run."""
    out = dict(runs[0])
    for f in figures:
        vals = [r[f] for r in runs]
        out[f] = statistics.median(vals)
        out["runs_" + f] = [round(v, 4) for v in vals]
    return out


def recovery(run, results, phase, say, rule):
    """Both recovery phases, --repeat runs each through phase(key, title,
    fn, *args) (run.py's: failures recorded, processes stopped); prints the
    figures and stores them in results["recovery"]."""
    a = run.args
    pel, k9 = [], []
    for k in range(a.repeat):
        v = phase("recovery_pel_%d" % (k + 1),
                  "Recovery of a 1,000-entry pending list (run %d)" % (k + 1),
                  pel_phase, run, 1000)
        if v:
            pel.append(v)
        v = phase("recovery_kill9_%d" % (k + 1),
                  "Restart after kill -9 (run %d)" % (k + 1),
                  kill9_phase, run, 1000)
        if v:
            k9.append(v)
    out = results["recovery"] = {}
    if pel:
        out["pel"] = medians(pel, ("ready_s", "reconciled_s",
                                   "all_completed_s"))
        report_pel(out["pel"], say, rule)
    if k9:
        out["kill9"] = medians(k9, ("reconciled_s", "lease_held_s"))
        report_kill9(out["kill9"], say, rule)


def runs_text(res, figure):
    vals = res["runs_" + figure]
    return "" if len(vals) == 1 else " (runs: %s)" % ", ".join(
        "%.3f" % v for v in vals)


def report_pel(p, say, rule):
    say(rule)
    say("Recovery: %d entries in this consumer's pending list (XREADGROUP, "
        "never acked), fresh bygated, pool %d, noop plugin; seconds from the "
        "spawn, median" % (p["entries"], p["pool"]))
    say("  ready line          %7.3f s%s" % (p["ready_s"],
                                            runs_text(p, "ready_s")))
    say("  reconcile done      %7.3f s%s" % (p["reconciled_s"],
                                            runs_text(p, "reconciled_s")))
    say("  all %d COMPLETED, XPENDING 0  %7.3f s%s" % (
        p["entries"], p["all_completed_s"], runs_text(p, "all_completed_s")))
    say("  (%s)" % p["reconcile_line"])


def report_kill9(k, say, rule):
    say(rule)
    say("Restart after kill -9 of bygated and its children (sleep plugin, "
        "2 s tasks, %d sent, %d pending at the kill, lease_ttl_s %d, same "
        "state directory); seconds from the spawn, median"
        % (k["entries_sent"], k["pending_at_kill"], LEASE_TTL_S))
    say("  reconcile done      %7.3f s%s" % (k["reconciled_s"],
                                            runs_text(k, "reconciled_s")))
    say("  lease held          %7.3f s%s" % (k["lease_held_s"],
                                            runs_text(k, "lease_held_s")))
    say("  (%s)" % k["lease_line"])


def summary(rec, say):
    """The recovery lines of run.py's summary (nothing when no phase ran)."""
    if not rec:
        return
    p, k = rec.get("pel"), rec.get("kill9")
    if p:
        say("  recovery        %d pending entries: reconcile done %.3f s, "
            "all COMPLETED %.3f s after the spawn (goal < %.0f s: %s)"
            % (p["entries"], p["reconciled_s"], p["all_completed_s"], GOAL_S,
               "met" if p["all_completed_s"] < GOAL_S else "NOT met"))
    if k:
        say("  after kill -9   reconcile done %.3f s, lease held %.3f s after "
            "the spawn (goal < %.0f s: %s)"
            % (k["reconciled_s"], k["lease_held_s"], GOAL_S,
               "met" if max(k["reconciled_s"], k["lease_held_s"]) < GOAL_S
               else "NOT met"))
