#!/usr/bin/env python3
"""Wire-output comparison of bygated builds (issue 10: "the same 1,000-task
run before and after gives byte-identical records and events apart from ids
and times").

    python3 scripts/wire_compare.py --build A [--build B] [--tasks 1000]
        [--dump DIR] [--pool 4] [--timeout 240] [--keep]

For each build: a private redis-server on a free loopback port and that
build's bygated (tests/integration/harness.py: pool user, ports, cleanup by
pid), a fixed configuration of agent types (agent_types()), the same
deterministic workload (plan(): fixed session, message, execution and trace
ids and contents, sent as the Python client writes them), a wait until
every entry is acknowledged and every execution is terminal, then a dump of
the whole keyspace while bygated runs (type, TTL class and content of every
key; stream entries, consumer groups and consumers) and of the keys that
change when it stops (SIGTERM).

Paths covered: echo chunks (also non-ASCII and escapes), every streamed
event kind (chunk, state, artifact, sub_step), a handler failure, a timeout
(timeout_ms: TERM of the child), call_agent with a wait and the callback
(2 and 3 levels), dispatch_group and the join, ask_user and the user's
RESUME, session kv, a hand-off (call_agent without a wait), a route refused
by availability (FAIL_FAST), a Python exec agent, CANCEL_TASK of a running
task, a queued execution already CANCELLING, terminal replays, malformed
entries (stale, no data field, invalid JSON, unknown action, no session,
blank content, no message id, CANCEL_TASK on an agent-type stream).

Normalisation (Normaliser), in place in the text, JSON never re-serialised
(key order, separators and escaping are compared as written):
- ids minted by the worker or by Redis become <kind:N>, numbered per kind
  in order of first appearance over a canonical traversal (control streams,
  data streams, registries, the rest; keys sorted; a stream's entries
  grouped by session): msg-/exec-/tg-/... + hex, 32-hex (tokens, trace ids),
  32-HEX (event data.id), 16-hex (span ids), uuids. The same raw id gets
  the same placeholder everywhere (keys too), so relations survive. Ids the
  client chose (msg-wc-NNNN, exec-wc-NNNN, 7ace... traces) are kept.
- stream entry ids become <stream#position> in the canonical order; a
  reference to one (redis_message_id, a dead letter's entry_id, a join's
  entry) names the stream the text mentions, else its own key;
  a group's last-delivered id that is the newest entry is <newest entry>.
- times become <time> (0 and -1 kept): numbers under a key named *_at,
  *_ts, timestamp, created, last_seen..., hash fields so named, any
  13-digit epoch-ms number, zset scores in the epoch range, ISO strings
  <iso>; durations <dur>; "pid N"/"slot N" and pid fields <pid>/<slot>;
  ip_address/hostname values <host>; TTLs as the smallest usual TTL they do
  not exceed (<=30s, <=604800s...).

With two builds both are run and their normalised dumps compared; with one
build it is run twice (the normalisation must then report identical).
Prints a unified diff of the first differences and exits 1 when they
differ (or a run did not finish cleanly), else prints "wire output
identical: N keys, M stream entries, K records" and exits 0. --dump DIR
writes the normalised dumps (run-1.txt, run-2.txt), the raw ones
(raw-1.json, raw-2.json) and, on a difference, the whole diff
(diff.txt). The hidden --self-test perturbs the first run's raw dump and
checks that a changed byte of an event field and a changed JSON key order
are reported, and a changed time and consistently renamed ids (an entry
id, a minted message id) are not.
"""

import argparse
import difflib
import json
import os
import pathlib
import re
import signal
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
for _p in (REPO / "scripts", REPO / "tests" / "integration"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bglib import proc  # noqa: E402
import harness  # noqa: E402  (tests/integration/harness.py)
import pyclient as pc  # noqa: E402  (tests/integration/pyclient.py)

AGENTS = REPO / "tests" / "integration" / "agents"
WORKER = "wc-worker"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
# The default lease timing: a heartbeat that fires while the shutdown's
# release is in flight re-creates the lease (seen with a 500 ms interval:
# the lease outlived a clean SIGTERM in ~1 run of 20); rarer beats keep
# that race out of the comparison of same-build runs.
WORKER_CFG = {"id": WORKER, "lease_ttl_s": 30, "heartbeat_interval_ms": 5000,
              "block_ms": 200, "cancel_grace_ms": 300,
              "reclaim_min_idle_ms": 60000, "reconcile_interval_ms": 30000,
              "drain_timeout_ms": 10000}
USER_TRACE_PARENT = "70cb4086a837a8bb"   # pyclient's fixed span id


# ---- the workload ---------------------------------------------------------

def agent_types(h):
    """The agent types of the run: plugins of examples/ and tests/plugins/
    and one Python exec agent."""
    def flow(name, role, target=""):
        return h.agent_type(name, plugin="flow",
                            options={"role": role, "target": target})
    return [
        h.agent_type("echo"),                         # chunks + answer
        h.agent_type("junk", plugin="echo"),          # malformed entries
        h.agent_type("emitall"),                      # chunk, state, artifact
        h.agent_type("fail"),                         # bg_ctx_fail
        h.agent_type("sleep", options={"default_ms": 5}),   # cancel targets
        h.agent_type("slow", plugin="sleep", timeout_ms=300),  # timeouts
        flow("alpha", "caller", "beta"),              # call_agent, wait
        flow("beta", "worker"),
        flow("nest", "caller", "alpha"),              # nest -> alpha -> beta
        flow("fan", "fanout", "beta"),                # dispatch_group + join
        flow("asker", "asker"),                       # ask_user + RESUME
        flow("counter", "counter"),                   # session kv
        h.agent_type("calls"),                        # kv, handoff, group...
        flow("researcher", "worker"),
        flow("writer", "worker"),
        {"name": "py", "handler": "exec", "mode": "persistent",
         "command": "python3 %s" % (AGENTS / "testagent.py")},
    ]


def config(h, pool, v2=False):
    cfg = {"worker": dict(WORKER_CFG), "pool": {"size": pool},
           "log": {"level": "info"}, "agent_types": agent_types(h)}
    if v2:  # against a cluster: both runs on v2 keys, no metrics history
        # (not collected under Cluster, docs/cluster.md)
        cfg["metrics"] = {"history": False}
        if not h.cluster_mode:
            cfg["redis"] = {"key_schema": "v2"}
    return h.config(cfg)


class Task:
    """One client-sent entry. kind selects how it is sent and followed."""

    def __init__(self, n, kind, agent, content, session=None, **extra):
        self.n = n
        self.kind = kind
        self.agent = agent
        self.content = content
        self.session = session or "wc-%s-%04d" % (kind, n)
        self.mid = "msg-wc-%04d" % n
        self.eid = "exec-wc-%04d" % n
        self.trace = "7ace%028x" % n
        self.extra = extra

    def command(self):
        """Its ASK_AGENT as the Python client writes it (pyclient)."""
        return pc.ask_command(self.session, self.agent, self.content,
                              message_id=self.mid, trace_id=self.trace)


def plan(total):
    """The deterministic list of tasks for a run of `total` entries: fixed
    counts of the special paths (scaled down for small runs), echo tasks for
    the rest. One root task per session (counter sessions: two in a row;
    ask sessions: the ASK then the user's RESUME), so that the order of a
    session's entries does not depend on timing. The fan-out has one child:
    with two, which child calls back last (and so becomes the parent
    message id of the caller's final events, and the order of the group
    results) is timing, not behaviour."""
    scale = total / 1000.0

    def k(n, least=1):
        return max(least, int(round(n * scale)))
    kinds = [
        # kind, count, agent, content
        ("cancel", k(2), "sleep", "20000"),
        ("qcancel", k(2), "sleep", "50"),
        ("timeout", k(3), "slow", "5000"),
        ("ask", k(10), "asker", "book a room"),
        ("call", k(40), "alpha", "plan a trip %d"),
        ("nest", k(20), "nest", "deep %d"),
        ("fan", k(20), "fan", "1"),
        ("counter", k(10), "counter", "inc"),
        ("kv", k(20), "calls", "kv"),
        ("sdkcall", k(20), "calls", "call"),
        ("handoff", k(20), "calls", "handoff"),
        ("group", k(20), "calls", "group"),
        ("refused", k(10), "calls", 'route {"target": "nobody"}'),
        ("emitall", k(100), "emitall", "go %d"),
        ("fail", k(50), "fail", "go %d"),
        ("py", k(30), "py", "echo python %d"),
        ("unicode", k(20), "echo",
         "h\u00e9llo \u6771\u4eac \u2603 \"quoted\" \\ back %d"),
    ]
    tasks = []
    n = 0
    for kind, count, agent, content in kinds:
        for i in range(count):
            n += 1
            text = content % i if "%d" in content else content
            if kind == "counter":
                s = "wc-counter-%04d" % n
                tasks.append(Task(n, kind, agent, text, session=s, round=1))
                n += 1
                tasks.append(Task(n, kind, agent, text, session=s, round=2))
            else:
                tasks.append(Task(n, kind, agent, text))
    # malformed entries (one each) and replays of finished echo tasks
    malformed = ["stale", "no_data", "invalid_json", "unknown_action",
                 "missing_session", "blank_content", "no_message_id",
                 "cancel_on_type_stream"]
    replays = k(5)
    # asks count their RESUME, replays their second entry
    used = n + len(malformed) + replays + sum(1 for t in tasks
                                              if t.kind == "ask")
    echo_count = max(replays, total - used)
    first_echo = n + 1
    for i in range(echo_count):
        n += 1
        words = " ".join("w%d" % ((i * 7 + j) % 13) for j in range(i % 9))
        tasks.append(Task(n, "echo", "echo", "task number %d %s" % (i, words)))
    for name in malformed:
        n += 1
        tasks.append(Task(n, "malformed", "junk", "x",
                          session="wc-bad-%s" % name, what=name))
    for i in range(replays):
        src = next(t for t in tasks if t.n == first_echo + i)
        tasks.append(Task(src.n, "replay", "echo", src.content,
                          session=src.session))
    return tasks


def fixed_ids(tasks):
    """Client-chosen ids: kept as they are by the normaliser."""
    out = {USER_TRACE_PARENT}
    for t in tasks:
        out.update((t.mid, t.eid, t.trace, "7ace%028x" % (100000 + t.n)))
    return out


# ---- running one build ----------------------------------------------------

class RunError(RuntimeError):
    pass


def send_task(c, keys, t, record_override=None):
    cmd = t.command()
    eid, cmds = pc.send_commands(keys, cmd, execution_id=t.eid)
    if record_override:
        rec = json.loads(cmds[0][3])
        record_override(rec)
        cmds[0] = cmds[0][:3] + (json.dumps(rec),) + cmds[0][4:]
    return cmds


def malformed_entry(keys, t):
    """(stream, id, fields) of a malformed entry."""
    stream = keys.ctrl_agent_type("junk")
    cmd = pc.ask_command(t.session, "junk", "x", message_id=t.mid,
                         trace_id=t.trace)
    what = t.extra["what"]
    if what == "stale":
        return stream, "1000-0", ["data", json.dumps(cmd)]
    if what == "no_data":
        return stream, "*", ["payload", "no data field"]
    if what == "invalid_json":
        return stream, "*", ["data",
                             '{"action_type": "ASK_AGENT", "header": {']
    if what == "unknown_action":
        cmd["action_type"] = "FLY_TO_MOON"
    elif what == "missing_session":
        del cmd["header"]["session_id"]
    elif what == "blank_content":
        cmd["body"]["content"] = "   "
    elif what == "no_message_id":
        cmd["header"]["message_id"] = ""
    elif what == "cancel_on_type_stream":
        cmd = {"action_type": "CANCEL_TASK", "header": cmd["header"],
               "body": {"target_message_id": "msg-wc-0001",
                        "target_execution_id": "exec-wc-0001",
                        "target_worker_id": WORKER, "reason": "wrong stream",
                        "requested_by": "client", "cancel_mode": "graceful"}}
    return stream, "*", ["data", json.dumps(cmd)]


def cancel_command(t):
    hdr = pc.header(t.session, t.agent, message_id="msg-cancel-wc-%04d" % t.n,
                    trace_id=t.trace, parent_message_id=t.mid, user_code="",
                    user_name="", trace_parent_span_id="",
                    langfuse_parent_observation_id="")
    return {"action_type": "CANCEL_TASK", "header": hdr,
            "body": {"target_message_id": t.mid, "target_execution_id": t.eid,
                     "target_worker_id": WORKER, "reason": "user aborted",
                     "requested_by": "client", "cancel_mode": "graceful"}}


def resume_command(t):
    """The user's reply to ask_user (WIRE 2.5), as the Python client writes
    it: same message id, a fresh (here fixed) trace id."""
    hdr = pc.header(t.session, t.agent, message_id=t.mid,
                    trace_id="7ace%028x" % (100000 + t.n))
    return {"action_type": "RESUME", "header": hdr,
            "body": {"content": "Kyoto, 3 nights", "status": "",
                     "reply_data": None}}


def statuses(c, keys, tasks):
    """{task.n: status} of many tasks in two pipelines."""
    tasks = list(tasks)
    eids = c.pipeline([("HGET", keys.registry(t.session), "msg_map:" + t.mid)
                       for t in tasks])
    raws = c.pipeline([("HGET", keys.registry(t.session), "exec:" + e)
                       for t, e in zip(tasks, eids) if e is not None])
    it = iter(raws)
    out = {}
    for t, e in zip(tasks, eids):
        raw = next(it) if e is not None else None
        out[t.n] = json.loads(raw).get("status") if raw else None
    return out


def scan_keys(c, pattern="*"):
    keys, cursor = [], "0"
    while True:
        cursor, batch = c.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(batch)
        if cursor == "0":
            return sorted(set(keys))


def group_state(c, stream):
    try:
        groups = c.call("XINFO", "GROUPS", stream)
    except harness.RespError:
        return []
    return [dict(zip(g[::2], g[1::2])) for g in groups]


def progress(c, keys, tasks):
    """(done, fingerprint): done when every control stream's groups have
    read and acked everything and every execution record of the run's
    sessions is terminal; the fingerprint changes whenever anything moves."""
    done = True
    streams = [s for s in scan_keys(c, "*ctrl:*")
               if c.call("TYPE", s) == "stream"]
    lens = c.pipeline([("XLEN", s) for s in streams]) if streams else []
    groups = []
    for s in streams:
        for g in group_state(c, s):
            groups.append((s, g.get("pending"), g.get("lag"),
                           g.get("last-delivered-id")))
            if g.get("pending") or g.get("lag") not in (0, None):
                done = False
    sessions = sorted({t.session for t in tasks if t.kind != "malformed"})
    regs = c.pipeline([("HGETALL", keys.registry(s)) for s in sessions])
    states = []
    for flat in regs:
        for f, v in zip(flat[::2], flat[1::2]):
            if f.startswith("exec:"):
                st = json.loads(v).get("status")
                states.append(st)
                if st not in TERMINAL:
                    done = False
    dead = c.call("XLEN", keys.deadletter())
    return done, (tuple(lens), tuple(groups), tuple(states), dead)


class Waiter:
    """Polls a condition until it holds, the run's deadline passes, or
    nothing has moved for `stall` seconds. Never raises: a build that
    leaves work unfinished is dumped as it is and shows in the diff."""

    def __init__(self, deadline, stall, warn):
        self.deadline, self.stall, self.warn = deadline, stall, warn

    def until(self, what, step, interval=0.05):
        """step() -> (done, fingerprint); True when done."""
        last, since = None, time.monotonic()
        while True:
            done, fp = step()
            if done:
                return True
            now = time.monotonic()
            if fp != last:
                last, since = fp, now
            if now > self.deadline or now - since > self.stall:
                self.warn("gave up waiting for %s (%s)" % (
                    what, "deadline" if now > self.deadline else
                    "no progress for %.0fs" % self.stall))
                return False
            time.sleep(interval)


def drive(h, d, tasks, timeout, stall=20.0, warn=print):
    """Send the workload in a fixed order and follow it until quiescent;
    returns the list of warnings (empty when everything finished)."""
    c = h.client(decode=True)
    keys = h.keys
    warnings = []

    def note(text):
        warnings.append(text)
        warn("warning: " + text)
    wait = Waiter(time.monotonic() + timeout, stall, note)
    by_kind = {}
    for t in tasks:
        by_kind.setdefault(t.kind, []).append(t)
    # 1. malformed entries first (the stale one needs the first id of its
    # stream), then the tasks that hold a child: cancel targets, timeouts,
    # and queued executions already marked CANCELLING by a client.
    for t in by_kind.get("malformed", []):
        stream, eid, fields = malformed_entry(keys, t)
        c.call("XADD", stream, eid, *fields)
    cmds = []
    for t in by_kind.get("cancel", []) + by_kind.get("timeout", []):
        cmds += send_task(c, keys, t)

    def cancelling(rec):
        now = rec["created_at"]
        rec.update(status="CANCELLING", cancel_requested=True,
                   cancel_reason="user aborted")
        rec["timeline"].append({"status": "CANCELLING", "timestamp": now})
    for t in by_kind.get("qcancel", []):
        cmds += send_task(c, keys, t, record_override=cancelling)
    c.pipeline(cmds)
    # 2. everything else in plan order, pipelined
    cmds = []
    for t in tasks:
        if t.kind in ("malformed", "cancel", "timeout", "qcancel", "replay"):
            continue
        if t.kind == "counter" and t.extra.get("round") != 1:
            continue
        cmds += send_task(c, keys, t)
        if len(cmds) >= 600:
            c.pipeline(cmds)
            cmds = []
    c.pipeline(cmds)
    # 3. follow-ups: cancels of running tasks, user replies, second counter
    # rounds, replays of finished tasks
    unsettled = {"cancel": list(by_kind.get("cancel", [])),
            "ask": list(by_kind.get("ask", [])),
            "counter": [t for t in by_kind.get("counter", [])
                        if t.extra.get("round") == 2],
            "replay": list(by_kind.get("replay", []))}
    first_round = {t.session: t for t in by_kind.get("counter", [])
                   if t.extra.get("round") == 1}
    originals = {t.n: t for t in tasks if t.kind == "echo"}

    def follow_ups():
        watch = unsettled["cancel"] + unsettled["ask"] + \
            [first_round[t.session] for t in unsettled["counter"]] + \
            [originals[t.n] for t in unsettled["replay"]]
        st = statuses(c, keys, watch)
        out = []
        for t in list(unsettled["cancel"]):
            if st[t.n] == "RUNNING":
                out.append(("XADD", keys.ctrl_worker(WORKER), "*", "data",
                            json.dumps(cancel_command(t))))
                unsettled["cancel"].remove(t)
        for t in list(unsettled["ask"]):
            if st[t.n] == "WAITING_USER":
                out.append(("XADD", keys.ctrl_agent_type(t.agent), "*",
                            "data", json.dumps(resume_command(t))))
                unsettled["ask"].remove(t)
        for t in list(unsettled["counter"]):
            if st[first_round[t.session].n] in TERMINAL:
                out += send_task(c, keys, t)
                unsettled["counter"].remove(t)
        for t in list(unsettled["replay"]):
            if st[t.n] in TERMINAL:
                out.append(("XADD", keys.ctrl_agent_type(t.agent), "*",
                            "data", json.dumps(t.command())))
                unsettled["replay"].remove(t)
        if out:
            c.pipeline(out)
        left = {k: [t.mid for t in v] for k, v in unsettled.items() if v}
        return not left, (sorted(st.items()), str(left))
    if not wait.until("the follow-ups (cancels, replies, second rounds, "
                      "replays)", follow_ups):
        note("follow-ups never sent: %s" % {
            k: [t.mid for t in v] for k, v in unsettled.items() if v})
    wait.until("every execution to finish and every entry to be acked",
               lambda: progress(c, keys, tasks), 0.1)
    # dead letters are written before the XACK of their entry; give a
    # build that writes fewer than expected a moment, not the deadline
    want_dead = sum(1 for t in by_kind.get("malformed", [])
                    if t.extra["what"] not in ("no_message_id",
                                               "cancel_on_type_stream"))
    Waiter(time.monotonic() + 2.0, 2.0, lambda _: None).until(
        "dead letters", lambda: (c.call("XLEN", keys.deadletter())
                                 >= want_dead, None))
    # settle: a last check after a pause (nothing may move any more)
    time.sleep(0.3)
    done, _ = progress(c, keys, tasks)
    if not done and not warnings:
        note("the keyspace was still moving when dumped")
    return warnings


def ttl_class(ms):
    """A TTL as the smallest of a few usual values it does not exceed, so
    that the seconds elapsed during the run do not show."""
    if ms is None or ms < 0:
        return "none"
    s = ms / 1000.0
    for v in (1, 5, 10, 15, 30, 60, 120, 300, 900, 3600, 86400, 604800):
        if s <= v:
            return "<=%ds" % v
    return ">604800s"


def dump_keyspace(c):
    """{key: {"type", "ttl", "value"}} of every key, values as returned
    (str, surrogate-escaped bytes)."""
    out = {}
    # bygate's scheduling state (docs/scheduling.md: the ready set, the
    # fleet limits) depends on timing, not on what was sent: not wire
    names = [k for k in scan_keys(c) if ":bygate_ready:" not in k
             and ":fleet:" not in k]
    types = c.pipeline([("TYPE", k) for k in names])
    ttls = c.pipeline([("PTTL", k) for k in names])
    for k, t, ttl in zip(names, types, ttls):
        if t == "string":
            v = c.call("GET", k)
        elif t == "hash":
            flat = c.call("HGETALL", k)
            v = list(zip(flat[::2], flat[1::2]))
        elif t == "set":
            v = c.call("SMEMBERS", k)
        elif t == "zset":
            flat = c.call("ZRANGE", k, 0, -1, "WITHSCORES")
            v = list(zip(flat[::2], flat[1::2]))
        elif t == "list":
            v = c.call("LRANGE", k, 0, -1)
        elif t == "stream":
            entries = [(eid, list(zip(f[::2], f[1::2])))
                       for eid, f in c.call("XRANGE", k, "-", "+")]
            groups = []
            for g in group_state(c, k):
                cons = c.call("XINFO", "CONSUMERS", k, g["name"])
                g["consumers"] = [dict(zip(x[::2], x[1::2])) for x in cons]
                groups.append(g)
            v = {"entries": entries, "groups": groups}
        else:
            v = None
        out[k] = {"type": t, "ttl": ttl_class(ttl), "value": v}
    return out


def collect(build, tasks, *, pool=4, timeout=240.0, keep=False, log=print,
            redis=None):
    """Run the workload on `build`; returns {"running": dump, "stopped":
    dump, "seconds": s}. redis: None (a redis-server, v1 keys), "v2" (a
    redis-server, v2 keys) or "cluster" (a 3-master Redis Cluster, v2)."""
    t0 = time.monotonic()
    h = harness.Harness(name="wirecmp", build=build, keep_tmp=keep)
    if redis == "cluster":
        h.use_cluster()
    elif redis == "v2":
        h.keys = harness.Keys("v2")
    failed = True
    try:
        d = h.start_bygated(config=config(h, pool, v2=redis is not None))
        t1 = time.monotonic()
        warnings = drive(h, d, tasks, timeout, warn=log)
        t2 = time.monotonic()
        c = h.client(decode=True)
        running = dump_keyspace(c)
        d.stop(signal.SIGTERM, timeout=20.0)
        if d.returncode != 0:
            warnings.append("bygated exited with status %s at SIGTERM"
                            % d.returncode)
            log("warning: %s" % warnings[-1])
        stopped = dump_keyspace(c)
        failed = bool(warnings)
        if failed:
            log("work directory kept: %s\n%s" % (h.tmp,
                                                 h.failure_report(40)))
        return {"running": running, "stopped": stopped,
                "exit_status": d.returncode, "warnings": warnings,
                "seconds": time.monotonic() - t0, "tasks_seconds": t2 - t1,
                "tmp": str(h.tmp)}
    except Exception:
        log("run failed; work directory kept: %s\n%s" % (
            h.tmp, h.failure_report(60)))
        raise
    finally:
        h.close(failed=failed)


# ---- normalisation --------------------------------------------------------

TIME_FIELD = (r"[A-Za-z_]*(?:_at|_ts|timestamp|Timestamp|last_seen|created|"
              r"_time|deadline|expires)")
DUR_FIELD = (r"[A-Za-z_]*(?:duration|elapsed|latency|took|_wait_ms|idle)"
             r"[A-Za-z_]*")
TIME_NAME = re.compile(r"^(?:" + TIME_FIELD + r")$")
DUR_NAME = re.compile(r"^(?:" + DUR_FIELD + r")$")
PID_NAME = re.compile(r"^(?:pid|child_pid|ppid)$")

# One scan over a text, left to right; the first alternative matching at a
# position wins. A JSON key (also escaped, inside JSON nested in a JSON
# string: \"key\") followed by a number; a host field and its string; "pid
# N" / "slot N" in messages; any run of at least 11 word characters (the
# shortest id, msg-xxxxxxxx, has 12; a run always matches from its start,
# being scanned left to right), classified by WORD_KINDS. Every
# alternative starts with a character class: the scan is fast.
TOKEN_RE = re.compile(
    r'(?P<hk>\\*"(?:ip_address|hostname|host_name)\\*"\s*:\s*\\*")'
    r'(?P<hv>[^"\\]*)'
    r'|(?P<key>\\*"(?P<kname>[A-Za-z_][A-Za-z0-9_]*)\\*"\s*:\s*)'
    r'(?P<num>-?\d+(?:\.\d+)?)(?![\d.])'
    r'|(?P<pw>(?:pid|slot)[ =]+)(?P<pv>\d+)'
    r'|(?P<word>[0-9A-Za-z_-]{11,})')
WORD_KINDS = [(re.compile(p + "$"), kind) for p, kind in (
    (r"\d{13}-\d+", "entry"),                 # stream entry id
    (r"(?:msg-cancel|msg|exec|tg|reload|span|trace)-[0-9a-f]{8,32}",
     "prefixed"),                             # WIRE 1.2 id formats
    (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
     "uuid"),
    (r"[0-9a-f]{32}", "hex32"),               # uuid4 hex: trace ids, tokens
    (r"[0-9A-F]{32}", "HEX32"),               # event data.id
    (r"[0-9a-f]{16}", "hex16"),               # span ids
    (r"1[5-9]\d{11}", "ms"),                  # epoch ms
)]
ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?"
                    r"(?:Z|[+-]\d\d:?\d\d)?")
PLAIN_MS = re.compile(r"^1[5-9]\d{11}(?:\.\d+)?$")
PLAIN_S = re.compile(r"^1[5-9]\d{8}(?:\.\d+)?$")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
DIGIT = re.compile(r"\d")
WORD_RE = re.compile(r"[0-9A-Za-z_-]{11,}")


class Normaliser:
    """Substitutes id, time, duration, pid and host tokens in place. Ids
    get `<kind:N>` numbered per kind in order of first appearance (assign
    mode); in lookup mode an id not seen yet becomes `<kind:?>` (used to
    sort before numbering). Ids in `fixed` (chosen by the client) stay."""

    def __init__(self, fixed=()):
        self.fixed = set(fixed)
        self.map = {}
        self.counts = {}
        # stream entry ids are only unique per stream (and entries added in
        # one millisecond to different streams share ids): an entry id is
        # named by its stream and its position in the canonical order,
        # {raw id: {stream key: position}}
        self.entry_index = {}
        self.entry_text = {}   # {(stream key, raw id): its field values}
        self.scopes = {}       # {hash key: its values}
        self.memo = {}

    def entry(self, tok, text, ctx=None):
        """The placeholder of a stream entry id met in `text`, a field of
        key `ctx` (if any). Its stream is: the one having that id whose
        name the text mentions (a record's stream_name, a dead letter's
        stream), else ctx, else the only one having it, else the only one
        whose name is an agent type that is a value of the hash ctx (a
        task_group hash's source_agent_type: callbacks go to its control
        stream), else the only one whose entry of that id shares an id with
        the text or ctx."""
        cands = self.entry_index.get(tok)
        if not cands:
            return None
        named = [c for c in cands if c in text]
        if len(named) == 1:
            k = named[0]
        elif ctx in cands:
            k = ctx
        elif len(cands) == 1:
            k = next(iter(cands))
        else:
            values = self.scopes.get(ctx, ())
            typed = [c for c in cands if ":ctrl:agent_type:" in c and
                     c.rsplit(":", 1)[-1] in values]
            if len(typed) == 1:
                return "<%s#%d>" % (short_key(typed[0]), cands[typed[0]])
            words = {w for w in WORD_RE.findall(text + " " + (ctx or ""))
                     if DIGIT.search(w) and w != tok}
            related = [c for c in cands
                       if any(w in self.entry_text[(c, tok)] for w in words)]
            if len(related) != 1:
                return "<entry:ambiguous>"
            k = related[0]
        return "<%s#%d>" % (short_key(k), cands[k])

    def _id(self, kind, token, assign):
        if token in self.fixed:
            return token
        p = self.map.get(token)
        if p is None:
            if not assign:
                return "<%s:?>" % kind
            n = self.counts.get(kind, 0) + 1
            self.counts[kind] = n
            p = self.map[token] = "<%s:%d>" % (kind, n)
        return p

    def text(self, s, assign=True, ctx=None):
        """s with its tokens substituted (ctx: the key s is a part of)."""
        if not isinstance(s, str):
            return s
        # once every id of s has its placeholder the result is final
        done = self.memo.get((s, ctx))
        if done is not None:
            return done
        out = self._text(s, assign, ctx)
        if assign:
            self.memo[(s, ctx)] = out
        return out

    def _text(self, s, assign, ctx):
        if "T" in s and ISO_RE.search(s):
            s = ISO_RE.sub("<iso>", s)

        def sub(m):
            g = m.lastgroup
            if g == "word":
                w = m.group(0)
                # an id has a digit, a dash or 16/32 characters (hex ids
                # may be all letters: msg-fcdbacbe): skip other words fast
                return self.word(w, s, assign, ctx) if "-" in w or \
                    len(w) in (16, 32) or DIGIT.search(w) else w
            if g == "num":
                name, v = m.group("kname"), m.group("num")
                if TIME_NAME.match(name):
                    v = v if v in ("0", "-1") else "<time>"
                elif DUR_NAME.match(name):
                    v = "<dur>"
                elif PID_NAME.match(name):
                    v = "<pid>"
                elif PLAIN_MS.match(v):
                    v = "<time>"
                return m.group("key") + v
            if g == "hv":
                return m.group("hk") + "<host>"
            if g == "pv":
                w = m.group("pw")
                if m.start() and s[m.start() - 1].isalnum():
                    return m.group(0)  # part of a longer word
                return w + ("<pid>" if w.startswith("pid") else "<slot>")
            return m.group(0)
        return TOKEN_RE.sub(sub, s)

    def word(self, w, text, assign, ctx):
        for rx, kind in WORD_KINDS:
            if rx.match(w):
                break
        else:
            return w
        if kind == "ms":
            return "<time>"
        if kind == "entry":
            p = self.entry(w, text, ctx)
            return p if p is not None else self._id("entry", w, assign)
        if kind == "prefixed":
            kind = w[:w.rindex("-")]
        return self._id(kind, w, assign)

    def value(self, name, v, assign=True, ctx=None):
        """A plain value (hash field value, zset score) named `name`."""
        if isinstance(v, str):
            leaf = name.rsplit(":", 1)[-1] if isinstance(name, str) else ""
            if TIME_NAME.match(leaf) and NUMBER.match(v):
                return v if v in ("0", "-1") else "<time>"
            if DUR_NAME.match(leaf) and NUMBER.match(v):
                return "<dur>"
            if PLAIN_MS.match(v) or PLAIN_S.match(v):
                return "<time>"
        return self.text(v, assign, ctx)


def natural(s):
    """Sort key: digit runs compare as numbers (<exec:2> before <exec:10>)."""
    return [(0, int(x), "") if x.isdigit() else (1, 0, x)
            for x in re.split(r"(\d+)", s)]


def short_key(k):
    return k[len("byai_gateway:"):] if k.startswith("byai_gateway:") else k


def esc(s):
    """One line per value: control characters escaped (marked), else as is."""
    if isinstance(s, str) and re.search(r"[\x00-\x1f\x7f]", s):
        return "esc:" + s.encode("utf-8", "surrogateescape").decode(
            "latin-1").encode("unicode_escape").decode("ascii")
    return s


def _session_of(fields):
    """Group key of a stream entry: dead-letter style records by the
    stream and id of the entry they name, commands and events by session,
    entries without a JSON object first."""
    raw = dict(fields).get("data")
    try:
        doc = json.loads(raw) if raw is not None else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return ("0", "", 0, 0)
    if "entry_id" in doc and "stream" in doc:
        ms, _, seq = str(doc["entry_id"]).partition("-")
        try:
            return ("1", str(doc["stream"]), int(ms), int(seq or 0))
        except ValueError:
            return ("1", str(doc["stream"]), 0, 0)
    hdr = doc.get("header") if isinstance(doc.get("header"), dict) else {}
    s = hdr.get("session_id", doc.get("session_id", ""))
    return ("2", s if isinstance(s, str) else "", 0, 0)


def key_rank(name):
    """Traversal rank, the order in which ids are first met (and numbered):
    control streams (where the worker's callbacks and child requests name
    the ids it minted), session data streams, session registries,
    everything else; keys sorted by name within a rank."""
    if ":ctrl:agent_type:" in name:
        return 0
    if ":ctrl:worker:" in name:
        return 1
    if name.endswith(":data_stream"):
        return 2
    if name.endswith(":registry"):
        return 3
    return 4


class Dump:
    """A normalised dump: lines plus counts."""

    def __init__(self, lines, keys, entries, records):
        self.lines = lines
        self.keys = keys
        self.entries = entries
        self.records = records


def ordered_entries(entries):
    """A stream's entries in canonical order: grouped by session (sessions
    sorted; dead letters by the stream and id of the entry they name),
    stream order kept within a group. A session holds one root task at a
    time, so its entries' order is causal, not a matter of timing; the
    order across sessions is timing and is not compared."""
    keyed = sorted(((_session_of(fields), i, eid, fields)
                    for i, (eid, fields) in enumerate(entries)),
                   key=lambda x: (x[0], x[1]))
    return [(eid, fields) for _, _, eid, fields in keyed]


def normalise(dump, fixed):
    """The normalised lines of {"running": ..., "stopped": ...}."""
    norm = Normaliser(fixed)
    running, stopped = dump["running"], dump["stopped"]
    # stream entry ids: positions in each stream's canonical order
    stream_order = {}
    for snap in (stopped, running):
        for k, ent in snap.items():
            if ent["type"] == "hash":
                norm.scopes[k] = {x for _, x in ent["value"]}
    for k in sorted(running):
        if running[k]["type"] == "stream":
            stream_order[k] = ordered_entries(running[k]["value"]["entries"])
            for pos, (eid, fields) in enumerate(stream_order[k], 1):
                norm.entry_index.setdefault(eid, {})[k] = pos
                norm.entry_text[(k, eid)] = " ".join(x for _, x in fields)

    # pass 1: number ids in a canonical traversal order: rank by rank,
    # keys sorted by name with the ids known so far (those of earlier
    # ranks) substituted, unknown ones masked
    def traversal():
        by_rank = {}
        for k in running:
            by_rank.setdefault(key_rank(k), []).append(k)
        for r in sorted(by_rank):
            for k in sorted(by_rank[r], key=lambda k: (norm.text(k, False),
                                                       k)):
                yield k
    for k in traversal():
        norm.text(k)
        ent = running[k]
        v = ent["value"]
        if ent["type"] == "stream":
            for eid, fields in stream_order[k]:
                for f, x in fields:
                    norm.text(f, ctx=k)
                    norm.text(x, ctx=k)
        elif ent["type"] == "hash":
            for f, x in sorted(v, key=lambda p: (
                    norm.text(p[0], False), norm.value(p[0], p[1], False,
                                                       ctx=k))):
                norm.text(f)
                norm.value(f, x, ctx=k)
        elif ent["type"] in ("set", "list"):
            items = v if ent["type"] == "list" else \
                sorted(v, key=lambda x: norm.text(x, False))
            for x in items:
                norm.text(x)
        elif ent["type"] == "zset":
            for m, _ in sorted(v, key=lambda p: norm.text(p[0], False)):
                norm.text(m)
        else:
            norm.value(k, v)
    for k in sorted(stopped, key=lambda k: norm.text(k, False)):
        norm.text(k)

    # pass 2: render with the complete mapping
    def render(snapshot, order=None):
        blocks = {}
        n_entries = n_records = 0
        for k, ent in snapshot.items():
            nk = norm.text(k)
            v = ent["value"]
            t = ent["type"]
            head = "key %s type=%s ttl=%s" % (nk, t, ent["ttl"])
            body = []
            if t == "string":
                body.append("  = %s" % esc(norm.value(k, v)))
            elif t == "hash":
                rows = sorted(("  %s = %s" % (esc(norm.text(f)),
                                              esc(norm.value(f, x, ctx=k)))
                               for f, x in v), key=natural)
                n_records += sum(1 for f, _ in v if f.startswith("exec:"))
                body += rows
            elif t == "set":
                body += sorted(("  member %s" % esc(norm.text(x))
                                for x in v), key=natural)
            elif t == "zset":
                body += sorted(("  member %s score=%s" % (
                    esc(norm.text(m)), norm.value("score", s))
                    for m, s in v), key=natural)
            elif t == "list":
                body += ["  item %s" % esc(norm.text(x)) for x in v]
            elif t == "stream":
                entries = (order or {}).get(k) or ordered_entries(
                    v["entries"])
                head += " length=%d" % len(entries)
                n_entries += len(entries)
                for pos, (eid, fields) in enumerate(entries, 1):
                    own = norm.text(eid, ctx=k)
                    own = "#%d" % pos if own == "<%s#%d>" % (
                        short_key(k), pos) else own
                    body.append("  entry %s %s" % (own, " ".join(
                        "%s=%s" % (esc(norm.text(f, ctx=k)),
                                   esc(norm.text(x, ctx=k)))
                        for f, x in fields)))
                last = v["entries"][-1][0] if v["entries"] else None
                for g in v["groups"]:
                    # the last entry in stream order is the newest, whichever
                    # session it belongs to: named as such, not by position
                    ld = str(g.get("last-delivered-id"))
                    ld = "<newest entry>" if ld == last else \
                        norm.text(ld, ctx=k)
                    # the ready set's consumer exists when a run parked
                    # something: timing, not wire
                    consumers = [x for x in g.get("consumers", [])
                                 if x.get("name") != "bygate:ready"]
                    body.append(
                        "  group %s pending=%s lag=%s entries-read=%s "
                        "last-delivered=%s consumers=%s" % (
                            g.get("name"), g.get("pending"), g.get("lag"),
                            g.get("entries-read"), ld, len(consumers)))
                    for cons in sorted(consumers,
                                       key=lambda x: str(x.get("name"))):
                        body.append("    consumer %s pending=%s" % (
                            norm.text(str(cons.get("name"))),
                            cons.get("pending")))
            else:
                body.append("  (type %s not dumped)" % t)
            blocks[nk] = [head] + body
        return blocks, n_entries, n_records

    run_blocks, n_entries, n_records = render(running, stream_order)
    stop_blocks, _, _ = render(stopped)
    lines = ["# keyspace while bygated runs (%d keys)" % len(run_blocks)]
    for nk in sorted(run_blocks, key=natural):
        lines += run_blocks[nk]
    lines.append("# keys changed when bygated stopped (SIGTERM; exit status "
                 "%s)" % dump.get("exit_status"))
    for nk in sorted(set(run_blocks) | set(stop_blocks), key=natural):
        a, b = run_blocks.get(nk), stop_blocks.get(nk)
        if a == b:
            continue
        if b is None:
            lines.append("deleted %s" % nk)
        else:
            lines += b
    return Dump(lines, len(run_blocks), n_entries, n_records)


# ---- comparison -----------------------------------------------------------

def first_difference(a, b):
    """A pointer to where two differing lines first differ."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    lo = max(0, i - 60)
    return ("first difference at column %d:\n  A: ...%s\n  B: ...%s" % (
        i + 1, a[lo:i + 60], b[lo:i + 60]))


def compare(a, b, name_a="A", name_b="B", max_lines=80):
    """[] when identical, else the report lines (unified diff, cut)."""
    if a.lines == b.lines:
        return []
    diff = []
    for line in difflib.unified_diff(a.lines, b.lines, name_a, name_b, n=2,
                                     lineterm=""):
        m = re.match(r"@@ -(\d+)", line)
        if m:  # name the key the hunk is in
            i = int(m.group(1)) - 1
            while i > 0 and not a.lines[min(i, len(a.lines) - 1)].startswith(
                    ("key ", "deleted ", "# ")):
                i -= 1
            line += " " + a.lines[min(i, len(a.lines) - 1)][:160]
        diff.append(line)
    out = diff[:max_lines]
    if len(diff) > max_lines:
        out.append("... (%d more diff lines)" % (len(diff) - max_lines))
    minus = [x[1:] for x in diff if x.startswith("-") and
             not x.startswith("---")]
    plus = [x[1:] for x in diff if x.startswith("+") and
            not x.startswith("+++")]
    if minus and plus:
        out.append(first_difference(minus[0], plus[0]))
    return out


# ---- self-test ------------------------------------------------------------

def _copy(dump):
    return json.loads(json.dumps(dump))


def _first_event(snapshot, event_type):
    """(key, entry id) of the first data-stream entry of an echo session
    with event_type."""
    for k in sorted(snapshot):
        if not k.endswith(":data_stream") or "wc-echo-" not in k:
            continue
        for eid, fields in snapshot[k]["value"]["entries"]:
            for f, v in fields:
                if f == "data" and re.search(
                        r'"event_type":\s*"%s"' % event_type, v):
                    return k, eid
    raise RunError("self-test: no %s event found" % event_type)


def _edit_event(dump, event_type, edit):
    """Apply edit(data) -> data to one event in both snapshots (the same
    entry is in both); returns the key."""
    k, eid = _first_event(dump["running"], event_type)
    for snap in (dump["running"], dump["stopped"]):
        entries = snap[k]["value"]["entries"] if k in snap else []
        for entry in entries:
            if entry[0] == eid:
                for pair in entry[1]:
                    if pair[0] == "data":
                        new = edit(pair[1])
                        if new == pair[1]:
                            raise RunError("self-test: edit changed nothing")
                        pair[1] = new
    return k


def self_test(dump, fixed, base, log=print):
    """Perturb the raw dump (each time in both snapshots, as a real
    difference would be): a byte and a key order must be reported, a time
    and consistently renamed ids must not. Returns the failures."""
    failures = []

    def check(name, mutate, want_diff):
        d = _copy(dump)
        what = mutate(d)
        got = compare(base, normalise(d, fixed))
        ok = bool(got) == want_diff
        log("self-test %-30s %s: %s, %s" % (
            name, "ok" if ok else "FAILED", what,
            "reported: " + got[-1].splitlines()[0] if got else
            "not reported"))
        if not ok:
            failures.append(name)

    def one_byte(d):
        k = _edit_event(d, "answerDelta", lambda v: re.sub(
            r'("role":\s*"assistan)t"', r'\1T"', v, count=1))
        return "one byte of delta.role in %s" % short_key(k)

    def key_order(d):
        k = _edit_event(d, "finalAnswer", lambda v: re.sub(
            r'("state_msg":\s*"[^"]*")(,\s*)("artifact_url":\s*"[^"]*")',
            r'\3\2\1', v, count=1))
        return "state_msg/artifact_url swapped in %s" % short_key(k)

    def a_time(d):
        k = _edit_event(d, "finalAnswer", lambda v: re.sub(
            r'("timestamp":\s*)(\d+)',
            lambda m: m.group(1) + str(int(m.group(2)) + 12345), v, count=1))
        return "timestamp + 12345 ms in %s" % short_key(k)

    def rename_id(d):
        k, old = _first_event(d["running"], "finalAnswer")
        ms, seq = old.split("-")
        new = "%s-%d" % (ms, int(seq) + 7)
        text = json.dumps(d)
        if ('"%s"' % new) in text:
            raise RunError("self-test: %s already exists" % new)
        d.update(json.loads(text.replace('"%s"' % old, '"%s"' % new)))
        return "entry id %s -> %s everywhere" % (old, new)

    def rename_minted(d):
        text = json.dumps(d)
        counts = {}
        for m in re.finditer(r"(?<![\w-])msg-[0-9a-f]{8}(?![\w-])", text):
            counts[m.group(0)] = counts.get(m.group(0), 0) + 1
        if not counts:
            raise RunError("self-test: no minted message id")
        old = max(sorted(counts), key=lambda x: counts[x])
        new = "msg-" + old[4:][::-1]
        if new == old or new in text:
            new = "msg-%08x" % (int(old[4:], 16) ^ 0x5a5a5a5a)
        d.update(json.loads(text.replace(old, new)))
        return "minted %s -> %s in its %d places" % (old, new, counts[old])

    check("one byte of an event field", one_byte, True)
    check("JSON key order of an event", key_order, True)
    check("a timestamp", a_time, False)
    check("a renamed stream entry id", rename_id, False)
    check("a renamed minted message id", rename_minted, False)
    return failures


# ---- main -----------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", required=True,
                    help="build directory (once: run it twice; twice: "
                         "compare the two)")
    ap.add_argument("--tasks", type=int, default=1000,
                    help="entries sent per run (1000)")
    ap.add_argument("--pool", type=int, default=4,
                    help="bygated pool.size (4)")
    ap.add_argument("--dump", metavar="DIR",
                    help="write the normalised dumps, the raw ones (JSON) "
                         "and a diff there")
    ap.add_argument("--timeout", type=float, default=240.0,
                    help="bound of one run, seconds (240)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the runs' work directories")
    ap.add_argument("--cluster", action="store_true",
                    help="run 1 on a redis-server, run 2 on a 3-master Redis "
                         "Cluster, both with v2 keys (docs/cluster.md)")
    ap.add_argument("--self-test", action="store_true",
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if len(args.build) > 2:
        ap.error("at most two --build")
    builds = [pathlib.Path(b).resolve() for b in args.build]
    for b in builds:
        if not (b / "bygated").exists():
            ap.error("%s/bygated does not exist" % b)
    if len(builds) == 1:
        builds = builds * 2
    if os.geteuid() == 0:  # the pool user must reach plugins and agents
        for b in sorted(set(builds)):
            for line in proc.make_reachable_by_others(REPO, b):
                print("made reachable: %s" % line, file=sys.stderr)
    tasks = plan(args.tasks)
    fixed = fixed_ids(tasks)
    n_sent = sum(1 for t in tasks) + sum(1 for t in tasks if t.kind == "ask")
    dumps, raws = [], []
    status = 0
    for i, b in enumerate(builds, 1):
        redis = (None if not args.cluster else "v2" if i == 1
                 else "cluster")
        raw = collect(b, tasks, pool=args.pool, timeout=args.timeout,
                      keep=args.keep, redis=redis)
        nd = normalise(raw, fixed)
        print("run %d: %s: %d entries sent, %.1fs (tasks %.1fs), %d keys, "
              "%d stream entries, %d records%s" % (
                  i, b, n_sent, raw["seconds"], raw["tasks_seconds"],
                  nd.keys, nd.entries,
                  nd.records, "; NOT CLEAN: %s" % "; ".join(raw["warnings"])
                  if raw["warnings"] else ""), flush=True)
        if raw["warnings"]:
            status = 1
        dumps.append(nd)
        raws.append(raw)
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            with open(os.path.join(args.dump, "run-%d.txt" % i), "w",
                      encoding="utf-8", errors="surrogateescape") as f:
                f.write("\n".join(nd.lines) + "\n")
            with open(os.path.join(args.dump, "raw-%d.json" % i), "w",
                      encoding="utf-8", errors="surrogateescape") as f:
                json.dump(raw, f)
    if args.self_test:
        fails = self_test(raws[0], fixed, dumps[0])
        if fails:
            print("self-test FAILED: %s" % ", ".join(fails))
            status = 1
        else:
            print("self-test passed: perturbations detected, ids and times "
                  "ignored")
    report = compare(dumps[0], dumps[1], "run-1 %s" % builds[0],
                     "run-2 %s" % builds[1])
    if report:
        print("wire output DIFFERS:")
        print("\n".join(report))
        if args.dump:
            with open(os.path.join(args.dump, "diff.txt"), "w",
                      encoding="utf-8", errors="surrogateescape") as f:
                f.write("\n".join(difflib.unified_diff(
                    dumps[0].lines, dumps[1].lines, "run-1", "run-2",
                    lineterm="")) + "\n")
        return 1
    print("wire output identical: %d keys, %d stream entries, %d records" % (
        dumps[0].keys, dumps[0].entries, dumps[0].records))
    if status:
        print("(but see the failures above)")
    return status


if __name__ == "__main__":
    sys.exit(main())
