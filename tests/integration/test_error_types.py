"""The error fields of a finished execution (WIRE 6.2, 5.9): error_type is
the handler's own type where it reported one (the C SDK's HandlerError, an
exec program's error line with error_type, the Python helper's exception
class), bygated's where it classified the failure (TaskTimeout,
ChildProcessDied); retryable is a boolean, false unless the handler said
true, on every path (never null), in the record and the worker's
execution snapshot alike."""

import json
import pathlib

from harness import wait_until
from test_client import bygate_json
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300, "cancel_grace_ms": 300}


def exec_type(name, script):
    return {"name": name, "handler": "exec",
            "command": "python3 %s" % (AGENTS / script)}


def start(h):
    return h.start_bygated({
        "worker": dict(FAST), "pool": {"size": 3},
        "agent_types": [
            h.agent_type("echo"), h.agent_type("fail"),
            h.agent_type("sleep"), h.agent_type("crash"),
            h.agent_type("slow", plugin="sleep", timeout_ms=300),
            exec_type("py", "testagent.py"),
            exec_type("raw", "rawagent.py")]})


def run(h, agent, content, session="s-err"):
    c = h.client()
    mid, eid = pc.send(c, h.keys, session, agent, content)
    return wait_until(lambda: (lambda r: r if r.get("status") in TERMINAL
                               else None)(
        pc.record(c, h.keys, session, mid) or {}), 30,
        what="%s %r finished" % (agent, content))


def history_key(h, w):
    if h.keys.schema == "v1":
        return "byai_gateway:registry:worker:history_snapshots:" + w
    return "byai_gateway:v2:registry:worker:{%s}:history_snapshots" % w


def both(h, w, rec):
    """The record and the worker's snapshot of it (WIRE 5.9)."""
    snap = json.loads(h.client().call("HGET", history_key(h, w),
                                      rec["execution_id"]))
    return rec, snap


def test_the_c_sdks_failure_is_a_handler_error_not_retryable(h):
    d = start(h)
    for r in both(h, d.config["worker"]["id"], run(h, "fail", "x")):
        assert (r["status"], r["error_type"], r["retryable"]) == (
            "FAILED", "HandlerError", False)


def test_an_exec_error_line_keeps_its_type_and_retryable(h):
    d = start(h)
    for r in both(h, d.config["worker"]["id"], run(h, "raw", "typed-error")):
        assert (r["status"], r["error_type"], r["retryable"],
                r["error_message"]) == (
            "FAILED", "QuotaExceeded", True, "quota exceeded")


def test_a_python_exception_is_typed_by_its_class(h):
    d = start(h)
    for r in both(h, d.config["worker"]["id"], run(h, "py", "raise")):
        assert (r["status"], r["error_type"], r["retryable"]) == (
            "FAILED", "ValueError", False)
        assert r["error_message"] == "ValueError: boom"


def test_a_timeout_is_task_timeout_not_retryable(h):
    d = start(h)
    for r in both(h, d.config["worker"]["id"], run(h, "slow", "5000")):
        assert (r["status"], r["error_type"], r["retryable"]) == (
            "FAILED", "TaskTimeout", False)


def test_a_crash_is_child_process_died_not_retryable(h):
    d = start(h)
    for r in both(h, d.config["worker"]["id"], run(h, "crash", "kill")):
        assert (r["status"], r["error_type"], r["retryable"]) == (
            "FAILED", "ChildProcessDied", False)


def test_a_cancel_and_a_success_write_retryable_false(h):
    d = start(h)
    w, c = d.config["worker"]["id"], h.client()
    assert run(h, "echo", "hi")["retryable"] is False
    mid, _ = pc.send(c, h.keys, "s-err", "sleep", "20000")
    wait_until(lambda: (pc.record(c, h.keys, "s-err", mid) or {}).get(
        "status") == "RUNNING", 15, what="running")
    bygate_json(h, "cancel", mid, "--session", "s-err")
    rec = wait_until(lambda: (lambda r: r if r.get("status") == "CANCELLED"
                              else None)(pc.record(c, h.keys, "s-err", mid)
                                         or {}), 15, what="cancelled")
    for r in both(h, w, rec):
        assert r["retryable"] is False
