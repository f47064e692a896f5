"""call_agent's route policies inside a handler (WIRE 6.6, 7): bygated
decides them on its loop as the Python AvailabilityRouter does for
AgentContext.call_agent - quota, configured fallback, WAKE_AND_WAIT
(WakeupRequest, then its decision or an online worker, up to timeout_ms),
and WAKE_AND_QUEUE / QUEUE_ONLY, which leave a PendingDelivery that the
delivery gate turns into the callee's ASK later. The caller is the test
plugin calls.c ("route <options>"), the callee flow.c's worker role."""

import json
import time

from harness import wait_until, wait_task_end
import pyclient as pc
from test_client import cp_key, fake_worker, wakeup_stream, pending_stream
from test_client_routes import FAILED_KEYS, decide, wakeup_request

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def caller(h, name="alpha"):
    return h.agent_type(name, plugin="calls")


def callee(h, name):
    return h.agent_type(name, plugin="flow", options={"role": "worker"})


def start(h, types, worker="w-routes"):
    return h.start_bygated({"worker": dict(FAST, id=worker),
                            "pool": {"size": 2}, "agent_types": types})


def call(h, session, **options):
    """alpha calls options' target with call_agent(options); returns the
    caller's message id."""
    mid, _ = pc.send(h.client(), h.keys, session, "alpha",
                     "route " + json.dumps(options))
    return mid


def rec(h, session, mid):
    return pc.record(h.client(), h.keys, session, mid) or {}


def status_is(h, session, mid, want, t=15):
    return wait_until(lambda: (lambda r: r if r.get("status") == want
                               else None)(rec(h, session, mid)),
                      t, what="%s %s" % (mid, want))


def finished(h, session, mid, t=15):
    return wait_until(lambda: (lambda r: r if r.get("status") in TERMINAL
                               else None)(rec(h, session, mid)),
                      t, what="%s finished" % mid)


def records(h, session):
    return [json.loads(v) for k, v in
            h.client().hgetall(h.keys.registry(session)).items()
            if k.startswith("exec:")]


def callee_record(h, session, mid):
    [r] = [r for r in records(h, session) if r["parent_message_id"] == mid]
    return r


def texts(h, session, mid, kinds=("answerDelta", "finalAnswer")):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(h.client(), h.keys, session)
            if e["message_id"] == mid and e["event_type"] in kinds]


def the_reply(h, session, mid):
    """What call_agent answered the handler: the QUEUED reply it chunks,
    or the refusal its result carries."""
    for t in texts(h, session, mid):
        body = t[len("unrouted: "):] if t.startswith("unrouted: ") else t
        if body.startswith("{"):
            return json.loads(body)
    return None


def entries(h, key):
    return [json.loads(f["data"]) for _, f in h.client().xrange(key)]


def commands(h, agent):
    return h.client().stream_data(h.keys.ctrl_agent_type(agent))


def resumes(h, agent="alpha"):
    return [c for c in commands(h, agent) if c["action_type"] == "RESUME"]


def assert_refused(h, session, mid, code, error, policy, target="beta"):
    """The handler got the error, ended its task, and the callee's
    execution is the FAILED record of record_failed_route_decision."""
    r = finished(h, session, mid)
    assert r["status"] == "COMPLETED"
    assert the_reply(h, session, mid) == {
        "status": "FAILED", "message_id": "", "error": error,
        "error_code": code}
    c = callee_record(h, session, mid)
    assert set(c) == FAILED_KEYS
    assert c == dict(c, status="FAILED", source_agent_type="alpha",
                     target_agent_type=target, stream_name="",
                     route_policy=policy, route_status="REJECT",
                     availability_error_code=code, availability_error=error,
                     error_code=code, error_message=error,
                     failed_stage="availability")
    assert commands(h, target) == []


# ---- queueing ------------------------------------------------------------

def test_wake_and_queue_is_delivered_by_the_gate_and_resumes_once(h):
    start(h, [caller(h)])
    s = "s-wq"
    mid = call(h, s, target="beta", route_policy="WAKE_AND_QUEUE",
               timeout_ms=4000, region="eu", priority=3,
               metadata={"channel": "web"})
    status_is(h, s, mid, "WAITING_AGENT")
    c = callee_record(h, s, mid)
    assert the_reply(h, s, mid) == {
        "status": "QUEUED", "message_id": c["message_id"],
        "parent_message_id": mid, "target_agent_type": "beta",
        "route_status": "QUEUE_PENDING"}
    assert c == dict(c, status="QUEUED", source_agent_type="alpha",
                     target_agent_type="beta", route_policy="WAKE_AND_QUEUE",
                     route_status="QUEUE_PENDING", selected_agent_type="",
                     stream_name=pending_stream(h.keys))
    [w] = entries(h, wakeup_stream(h.keys))
    assert list(w) == ["execution_id", "target_agent_type", "session_id",
                       "trace_id", "message_id", "source", "policy",
                       "timeout_ms", "user_code", "region", "priority",
                       "metadata", "command_payload"]
    assert w == dict(w, execution_id=c["execution_id"],
                     message_id=c["message_id"], target_agent_type="beta",
                     session_id=s, trace_id=c["trace_id"], source="alpha",
                     policy="WAKE_AND_QUEUE", timeout_ms=4000,
                     user_code="u-001", region="eu", priority=3,
                     metadata={"channel": "web"})
    ask = w["command_payload"]
    assert ask["action_type"] == "ASK_AGENT"
    assert ask["header"] == dict(ask["header"], message_id=c["message_id"],
                                 source_agent_type="alpha",
                                 target_agent_type="beta",
                                 parent_message_id=mid)
    [p] = entries(h, pending_stream(h.keys))
    assert p == dict(p, execution_id=c["execution_id"],
                     delivery_stream=h.keys.ctrl_agent_type("beta"),
                     command_payload=ask, priority=3)
    assert commands(h, "beta") == []
    # a beta worker comes up; the gate wakes "it" and delivers the queue
    start(h, [callee(h, "beta")], worker="w-beta")
    out = h.bygate("gate", "--provider", "echo up", "--once", "--json",
                   "--online-timeout-ms", "5000")
    assert out.returncode == 0, out.stderr
    [ev] = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    assert (ev["status"], ev["delivered"]) == ("READY", 1), ev
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert texts(h, s, mid, ("finalAnswer",)) == [
        "resumed: beta done: routed work"]
    assert [a["header"]["message_id"] for a in commands(h, "beta")] == [
        c["message_id"]]
    [back] = resumes(h)
    assert back["header"]["message_id"] == mid
    assert callee_record(h, s, mid)["status"] == "COMPLETED"


def test_queue_only_leaves_a_pending_delivery_and_no_wakeup(h):
    start(h, [caller(h)])
    s = "s-qo"
    mid = call(h, s, target="beta", route_policy="QUEUE_ONLY")
    status_is(h, s, mid, "WAITING_AGENT")
    c = callee_record(h, s, mid)
    assert the_reply(h, s, mid)["route_status"] == "QUEUE_PENDING"
    assert (c["route_policy"], c["route_status"], c["stream_name"]) == (
        "QUEUE_ONLY", "QUEUE_PENDING", pending_stream(h.keys))
    assert h.client().call("EXISTS", wakeup_stream(h.keys)) == 0
    [p] = entries(h, pending_stream(h.keys))
    assert (p["execution_id"], p["message_id"]) == (c["execution_id"],
                                                    c["message_id"])
    assert commands(h, "beta") == []
    # the delivery gate turns it into the ASK, once
    for _ in range(2):
        out = h.bygate("dispatch", c["execution_id"])
        assert out.returncode == 0, out.stderr
    [ask] = commands(h, "beta")
    assert ask == p["command_payload"]


# ---- WAKE_AND_WAIT -----------------------------------------------------------

def test_wake_and_wait_delivers_when_a_worker_comes_online(h):
    s = "s-ww"
    start(h, [caller(h)])
    mid, w = waiting_call(h, s)
    assert (w["policy"], w["timeout_ms"], w["source"]) == (
        "WAKE_AND_WAIT", 15000, "alpha")
    assert rec(h, s, mid)["status"] == "RUNNING"
    start(h, [callee(h, "beta")], worker="w-beta")
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert texts(h, s, mid, ("finalAnswer",)) == [
        "resumed: beta done: routed work"]
    c = callee_record(h, s, mid)
    assert (c["execution_id"], c["route_policy"], c["route_status"]) == (
        w["execution_id"], "WAKE_AND_WAIT", "WAIT_AND_DELIVER")
    assert the_reply(h, s, mid) == {
        "status": "QUEUED", "message_id": c["message_id"],
        "parent_message_id": mid, "target_agent_type": "beta"}
    assert len(commands(h, "beta")) == 1 and len(resumes(h)) == 1
    assert h.client().call("EXISTS", pending_stream(h.keys)) == 0


def waiting_call(h, session):
    """alpha calls beta WAKE_AND_WAIT; returns (its message id, the
    WakeupRequest sent while the handler waits)."""
    mid = call(h, session, target="beta", route_policy="WAKE_AND_WAIT",
               timeout_ms=15000)
    return mid, wakeup_request(h)


def test_wake_and_wait_follows_a_fallback_decision(h):
    s = "s-wf"
    start(h, [caller(h), callee(h, "backup")])
    mid, w = waiting_call(h, s)
    decide(h, w["execution_id"], "STARTING", target_agent_type="beta")
    decide(h, w["execution_id"], "FALLBACK", target_agent_type="beta",
           selected_agent_type="backup")
    r = finished(h, s, mid)
    assert texts(h, s, mid, ("finalAnswer",)) == [
        "resumed: backup done: routed work"]
    c = callee_record(h, s, mid)
    assert (c["target_agent_type"], c["selected_agent_type"],
            c["route_status"], c["status"]) == (
        "backup", "backup", "FALLBACK_TO_OTHER_AGENT_TYPE", "COMPLETED")
    assert r["status"] == "COMPLETED"
    assert commands(h, "beta") == []


def test_wake_and_wait_refused_by_its_decision_tells_the_handler(h):
    s = "s-wr"
    start(h, [caller(h)])
    mid, w = waiting_call(h, s)
    decide(h, w["execution_id"], "REJECTED", target_agent_type="beta",
           reason="no capacity in eu")
    assert_refused(h, s, mid, "AGENT_TYPE_UNAVAILABLE", "no capacity in eu",
                   "WAKE_AND_WAIT")


def test_wake_and_wait_times_out_with_the_clients_error(h):
    start(h, [caller(h)])
    s = "s-wt"
    mid = call(h, s, target="beta", route_policy="WAKE_AND_WAIT",
               timeout_ms=300)
    assert_refused(h, s, mid, "AGENT_TYPE_UNAVAILABLE",
                   "Timed out waiting for worker wakeup for agent_type "
                   "'beta'", "WAKE_AND_WAIT")
    assert texts(h, s, mid, ("finalAnswer",))[0].startswith("unrouted: ")
    [w] = entries(h, wakeup_stream(h.keys))
    assert w["execution_id"] == callee_record(h, s, mid)["execution_id"]
    assert h.client().call("EXISTS", pending_stream(h.keys)) == 0


# ---- fallback, quota, circuit -------------------------------------------------

def test_a_configured_fallback_runs_the_call_on_the_other_type(h):
    start(h, [caller(h), callee(h, "backup")])
    h.client().call("SET", cp_key(h.keys, "fallback:agent_type:beta"),
                    json.dumps({"selected_agent_type": "backup"}))
    s = "s-fb"
    mid = call(h, s, target="beta")
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert texts(h, s, mid, ("finalAnswer",)) == [
        "resumed: backup done: routed work"]
    c = callee_record(h, s, mid)
    assert c == dict(c, target_agent_type="backup",
                     selected_agent_type="backup", route_policy="FAIL_FAST",
                     route_status="FALLBACK_TO_OTHER_AGENT_TYPE",
                     stream_name=h.keys.ctrl_agent_type("backup"),
                     status="COMPLETED")
    assert the_reply(h, s, mid)["target_agent_type"] == "backup"
    [ask] = commands(h, "backup")
    assert ask["header"]["target_agent_type"] == "backup"
    assert commands(h, "beta") == []
    assert len(resumes(h)) == 1


def test_a_quota_refuses_the_call_of_a_user_over_it(h):
    start(h, [caller(h), callee(h, "beta")])
    h.client().call("SET", cp_key(h.keys, "quota:user:u-001"),
                    json.dumps({"available": False, "reason": "monthly cap"}))
    s = "s-quota"
    mid = call(h, s, target="beta")
    assert_refused(h, s, mid, "TENANT_QUOTA_EXCEEDED", "monthly cap",
                   "FAIL_FAST")


def test_an_open_circuit_refuses_even_send_anyway(h):
    start(h, [caller(h), callee(h, "beta")])
    h.client().call("SET", cp_key(h.keys, "circuit:agent_type:beta"),
                    json.dumps({"state": "open"}))
    s = "s-circuit"
    mid = call(h, s, target="beta", route_policy="SEND_ANYWAY")
    assert_refused(h, s, mid, "AGENT_CIRCUIT_OPEN", "agent circuit is open",
                   "SEND_ANYWAY")


def test_a_caller_cancelled_while_it_waits_drops_its_route(h):
    s = "s-wc"
    d = start(h, [caller(h)])
    mid, _ = waiting_call(h, s)
    out = h.bygate("cancel", mid, "--session", s, "--mode", "force")
    assert out.returncode == 0, out.stderr
    assert finished(h, s, mid)["status"] == "CANCELLED"
    wait_task_end(d, mid)  # the caller's task is over in bygated
    # the route ended with the attempt: a worker showing up now changes
    # nothing, and nothing is written for the callee
    fake_worker(h, "beta")
    time.sleep(0.5)  # 5 route polls (100 ms): room for a leftover delivery
    assert [r for r in records(h, s) if r["parent_message_id"] == mid] == []
    assert commands(h, "beta") == []
    assert d.alive()


def test_an_unknown_route_policy_is_refused_before_routing(h):
    start(h, [caller(h), callee(h, "beta")])
    s = "s-bad"
    mid = call(h, s, target="beta", route_policy="WAKE_UP_PLEASE")
    finished(h, s, mid)
    reply = the_reply(h, s, mid)
    assert reply["status"] == "FAILED"
    assert reply["error_code"] == "INVALID_ARGUMENT"
    assert "route_policy" in reply["error"]
    # nothing was routed or recorded for a callee
    assert [r for r in records(h, s) if r["parent_message_id"] == mid] == []
    assert commands(h, "beta") == []


def test_a_caller_with_a_long_message_id_is_resumed(h):
    """Ids up to 512 bytes are valid (WIRE leaves them free-form): the
    callback must find the caller by its whole message id."""
    start(h, [caller(h), callee(h, "beta")])
    s = "s-long"
    mid = "msg-" + "x" * 300
    pc.send(h.client(), h.keys, s, "alpha",
            "route " + json.dumps({"target": "beta"}), message_id=mid)
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert texts(h, s, mid, ("finalAnswer",))[0].startswith("resumed: ")
    assert len(resumes(h)) == 1
    assert resumes(h)[0]["header"]["message_id"] == mid
