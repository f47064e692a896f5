"""bygate gate, the reference wakeup controller and delivery gate (WIRE 7):
its own consumer group on mgmt:wakeup, the dedupe claim, the provider
command and its exit codes, the WakeupDecision on the result (and dead-
letter) stream, exactly-once dispatch of pending deliveries by priority,
restarts that resume unfinished requests and never replay handled ones -
and end to end, a WAKE_AND_QUEUE send with no worker whose provider starts
a bygated that then runs the task."""

import json
import os
import signal
import subprocess
import sys
import time

from harness import REPO, timeout, wait_until, pid_alive
from bglib.libconfig import render
from test_client import (fake_worker, cp_key, wakeup_stream, result_stream,
                         pending_stream, deadletter_stream, bygate_json, ok)

S = "s-gate"
GROUP = "bygate_gate"

PROVIDER = r'''#!%(python)s
"""Test wakeup provider: MODE ready (make a fake worker online), reject,
fail, sleep. Appends the BYGATE_* environment to LOG as a JSON line."""
import json, os, sys, time
sys.path.insert(0, %(scripts)r)
from bglib.resp import RespClient
mode, log = sys.argv[1], sys.argv[2]
env = {k: v for k, v in os.environ.items()
       if k.startswith("BYGATE_") or k in ("REDIS_HOST", "REDIS_PORT",
                                           "REDIS_KEY_SCHEMA_VERSION")}
with open(log, "a") as f:
    f.write(json.dumps(env) + "\n")
if mode == "ready":
    c = RespClient(os.environ["REDIS_HOST"], int(os.environ["REDIS_PORT"]))
    t = os.environ["BYGATE_AGENT_TYPE"]
    lease = {"version": 1, "token": "t", "last_seen": int(time.time() * 1000),
             "ip_address": ""}
    c.call("SET", "byai_gateway:registry:worker:online:woken-" + t,
           json.dumps(lease), "EX", 60)
    c.call("SADD", "byai_gateway:registry:agent_type:workers:" + t,
           "woken-" + t)
    print("woke woken-" + t)
    sys.exit(0)
if mode == "reject":
    print("noise")
    print("no capacity in region")
    sys.exit(3)
if mode == "sleep":
    time.sleep(30)
print("boom")
sys.exit(1)
'''


def provider(h, mode):
    """The provider command line for MODE and the log of its runs."""
    path = h.tmp / "provider.py"
    if not path.exists():
        path.write_text(PROVIDER % {"python": sys.executable,
                                    "scripts": str(REPO / "scripts")})
        path.chmod(0o755)
    log = h.tmp / ("provider-%s.log" % mode)
    return "%s %s %s" % (path, mode, log), log


def runs(log):
    if not log.exists():
        return []
    return [json.loads(l) for l in log.read_text().splitlines()]


def gate_once(h, cmd, *extra, code=0):
    out = h.bygate("gate", "--provider", cmd, "--once", "--json", *extra,
                   timeout=60)
    assert out.returncode == code, out.stderr
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


def queue(h, agent="planner", policy="WAKE_AND_QUEUE", *extra):
    return bygate_json(h, "send", "--agent-type", agent, "--session", S,
                       "--content", "queued work", "--route-policy", policy,
                       *extra)


def decisions(h, exec_id):
    return [json.loads(f["data"]) for _, f in
            h.client().xrange(result_stream(h.keys, exec_id))]


def commands(h, agent="planner"):
    return [json.loads(f["data"]) for _, f in
            h.client().xrange(h.keys.ctrl_agent_type(agent))]


def pending_count(h):
    return h.client().call("XPENDING", wakeup_stream(h.keys), GROUP)[0]


# ---- decisions -----------------------------------------------------------------

def test_ready_wakeup_delivers_the_queued_send_once(h):
    sent = queue(h, "planner", "WAKE_AND_QUEUE", "--region", "eu",
                 "--user", "u-1")
    cmd, log = provider(h, "ready")
    events = gate_once(h, cmd)
    assert len(events) == 1
    ev = events[0]
    assert (ev["execution_id"], ev["agent_type"], ev["status"],
            ev["attempts"], ev["delivered"]) == (sent["execution_id"],
                                                 "planner", "READY", 1, 1)
    assert decisions(h, sent["execution_id"]) == [{
        "execution_id": sent["execution_id"], "target_agent_type": "planner",
        "status": "READY", "selected_agent_type": "",
        "worker_ids": ["woken-planner"], "region": "eu",
        "retry_after_ms": None, "reason": "woke woken-planner"}]
    assert [c["header"]["message_id"] for c in commands(h)] == [
        sent["message_id"]]
    env = runs(log)[0]
    assert env == dict(env, BYGATE_AGENT_TYPE="planner", BYGATE_USER_CODE="u-1",
                       BYGATE_REGION="eu",
                       BYGATE_EXECUTION_ID=sent["execution_id"],
                       BYGATE_SESSION_ID=S, BYGATE_ATTEMPT="1",
                       REDIS_HOST=h.redis.host, REDIS_PORT=str(h.redis.port),
                       REDIS_KEY_SCHEMA_VERSION=h.keys.schema)
    c = h.client()
    dedupe = cp_key(h.keys, "wakeup:dedupe:planner:u-1:eu")
    assert c.call("GET", dedupe) == sent["execution_id"]
    assert 0 < c.call("TTL", dedupe) <= 30
    assert pending_count(h) == 0
    # a second run: nothing replayed, nothing re-delivered
    assert gate_once(h, cmd) == []
    assert len(runs(log)) == 1 and len(commands(h)) == 1


def test_a_rejecting_provider_gives_a_rejected_decision(h):
    sent = queue(h)
    cmd, log = provider(h, "reject")
    [ev] = gate_once(h, cmd)
    assert (ev["status"], ev["reason"], ev["attempts"]) == (
        "REJECTED", "no capacity in region", 1)
    [d] = decisions(h, sent["execution_id"])
    assert (d["status"], d["reason"]) == ("REJECTED", "no capacity in region")
    assert commands(h) == []
    assert h.client().call("EXISTS", deadletter_stream(h.keys)) == 0


def test_a_failing_provider_is_retried_then_failed_to_the_dead_letters(h):
    sent = queue(h)
    cmd, log = provider(h, "fail")
    [ev] = gate_once(h, cmd, "--max-attempts", "2")
    assert (ev["status"], ev["reason"], ev["attempts"]) == ("FAILED", "boom", 2)
    assert [r["BYGATE_ATTEMPT"] for r in runs(log)] == ["1", "2"]
    [d] = decisions(h, sent["execution_id"])
    assert d["status"] == "FAILED"
    dead = [json.loads(f["data"]) for _, f in
            h.client().xrange(deadletter_stream(h.keys))]
    assert dead == [d]
    assert commands(h) == []


def test_a_provider_that_hangs_is_killed(h):
    queue(h)
    cmd, _ = provider(h, "sleep")
    t0 = time.monotonic()
    [ev] = gate_once(h, cmd, "--max-attempts", "1",
                     "--provider-timeout-ms", "300")
    assert (ev["status"], ev["reason"]) == ("FAILED", "provider timed out")
    assert time.monotonic() - t0 < 10


def test_a_concurrent_wakeup_is_deduplicated(h):
    first = queue(h)
    second = queue(h)
    cmd, log = provider(h, "ready")
    events = gate_once(h, cmd)
    assert [e["status"] for e in events] == ["READY", "READY"]
    assert len(runs(log)) == 1  # the second request did not run it
    assert [d["status"] for d in decisions(h, second["execution_id"])] == [
        "QUEUED", "READY"]
    assert decisions(h, second["execution_id"])[0]["reason"] == (
        "wakeup already in progress")
    assert sorted(c["header"]["message_id"] for c in commands(h)) == sorted(
        [first["message_id"], second["message_id"]])


def test_an_unusable_request_is_acknowledged_and_reported(h):
    c = h.client()
    c.call("XADD", wakeup_stream(h.keys), "*", "data", "not json")
    c.call("XADD", wakeup_stream(h.keys), "*", "data", '{"execution_id": ""}')
    c.call("XADD", wakeup_stream(h.keys), "*", "other", "x")
    cmd, log = provider(h, "ready")
    events = gate_once(h, cmd)
    assert [e["status"] for e in events] == ["INVALID"] * 3
    assert runs(log) == [] and pending_count(h) == 0


# ---- restarts ------------------------------------------------------------------

def test_a_restarted_gate_resumes_the_request_it_had_taken(h):
    sent = queue(h)
    c = h.client()
    c.call("XGROUP", "CREATE", wakeup_stream(h.keys), GROUP, "0", "MKSTREAM")
    c.call("XREADGROUP", "GROUP", GROUP, "gate-a", "COUNT", "1", "STREAMS",
           wakeup_stream(h.keys), ">")  # taken, then the gate died
    # the dedupe claim of that first attempt is its own: not a duplicate
    c.call("SET", cp_key(h.keys, "wakeup:dedupe:planner:_:_"),
           sent["execution_id"], "EX", 30)
    cmd, log = provider(h, "ready")
    assert gate_once(h, cmd, "--consumer", "gate-b") == []  # not its PEL
    [ev] = gate_once(h, cmd, "--consumer", "gate-a")
    assert ev["status"] == "READY" and ev["delivered"] == 1
    assert pending_count(h) == 0


def test_dispatch_delivers_by_priority_and_only_once(h):
    c = h.client()
    key = h.keys.ctrl_agent_type("planner")
    for prio, body in ((1, "low"), (9, "high"), (5, "mid"), (9, "high-2")):
        c.call("XADD", pending_stream(h.keys), "*", "data", json.dumps({
            "execution_id": "exec-p", "message_id": "msg-p",
            "session_id": S, "trace_id": "t", "target_agent_type": "planner",
            "delivery_stream": key, "command_payload": {"body": body},
            "user_code": "", "region": "", "priority": prio,
            "metadata": {}}))
    c.call("XADD", pending_stream(h.keys), "*", "data", json.dumps({
        "execution_id": "exec-p", "target_agent_type": "planner",
        "delivery_stream": "byai_gateway:elsewhere",
        "command_payload": {"body": "hijack"}}))
    c.call("XADD", pending_stream(h.keys), "*", "data", json.dumps({
        "execution_id": "exec-other", "target_agent_type": "planner",
        "delivery_stream": key, "command_payload": {"body": "other"}}))
    assert bygate_json(h, "dispatch", "exec-p")["delivered"] == 4
    assert [cmd["body"] for cmd in commands(h)] == ["high", "high-2", "mid",
                                                    "low"]
    assert bygate_json(h, "dispatch", "exec-p")["delivered"] == 0
    assert len(commands(h)) == 4
    delivered = cp_key(h.keys, "mgmt:delivery:pending:bygate_delivered")
    assert c.call("SCARD", delivered) == 4
    assert c.call("EXISTS", "byai_gateway:elsewhere") == 0


@timeout(60)
def test_gate_answers_a_wake_and_wait_sender_and_stops_on_sigterm(h):
    cmd, log = provider(h, "ready")
    g = h.spawn([h.bin("bygate"), "gate", "--provider", cmd, "--json"],
                stdout=subprocess.PIPE).popen
    sent = bygate_json(h, "send", "--agent-type", "planner", "--session", S,
                       "--content", "now please", "--route-policy",
                       "WAKE_AND_WAIT", "--timeout-ms", "10000")
    assert sent["route_status"] == "WAIT_AND_DELIVER"
    assert [c["header"]["message_id"] for c in commands(h)] == [
        sent["message_id"]]
    g.send_signal(signal.SIGTERM)
    out, _ = g.communicate(timeout=10)
    assert g.returncode == 0
    [ev] = [json.loads(l) for l in out.decode().splitlines()]
    assert ev["status"] == "READY" and ev["delivered"] == 0


@timeout(60)
def test_sigterm_while_the_provider_runs_leaves_the_request_pending(h):
    sent = queue(h)
    cmd, log = provider(h, "sleep")
    g = h.spawn([h.bin("bygate"), "gate", "--provider", cmd]).popen
    wait_until(lambda: runs(log), 10, 0.02, "the provider to start")
    g.send_signal(signal.SIGTERM)
    assert g.wait(10) == 0
    assert decisions(h, sent["execution_id"]) == []
    assert pending_count(h) == 1


# ---- end to end ------------------------------------------------------------------

LAUNCHER = '''#!/bin/sh
# Test wakeup provider: start a bygated for the agent type, detached.
setsid %(bygated)s -c %(config)s >> %(log)s 2>&1 < /dev/null &
echo $! > %(pidfile)s
echo "started bygated $!"
'''


def stop_pid(pidfile):
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@timeout(90)
def test_end_to_end_the_gate_starts_a_bygated_that_runs_the_queued_task(h):
    conf = h.tmp / "woken.conf"
    conf.write_text(render(h.config(worker_id="woken-1")))
    pidfile = h.tmp / "woken.pid"
    script = h.tmp / "launch.sh"
    script.write_text(LAUNCHER % {"bygated": h.bin("bygated"), "config": conf,
                                  "log": h.tmp / "woken.log",
                                  "pidfile": pidfile})
    script.chmod(0o755)
    try:
        sent = bygate_json(h, "send", "--agent-type", "echo", "--session", S,
                           "--content", "hello from the queue",
                           "--route-policy", "WAKE_AND_QUEUE")
        assert sent["route_status"] == "QUEUE_PENDING"
        assert commands(h, "echo") == []
        [ev] = gate_once(h, str(script))
        assert ev["status"] == "READY", ev
        assert ev["delivered"] == 1
        assert ev["decision"]["worker_ids"] == ["woken-1"]
        assert [c["header"]["message_id"] for c in commands(h, "echo")] == [
            sent["message_id"]]

        def finished():
            out = ok(h.bygate("status", "--session", S, "--message-id",
                              sent["message_id"], "--json"))
            rec = json.loads(out.stdout)
            return rec if rec["status"] == "COMPLETED" else None
        rec = wait_until(finished, 30, 0.1, "the queued task to complete")
        assert rec["worker_id"] == "woken-1"
        assert rec["execution_id"] == sent["execution_id"]
        assert gate_once(h, str(script)) == []  # nothing replayed
        assert len(commands(h, "echo")) == 1
    finally:
        stop_pid(pidfile)
