"""bygate send / reply routing (WIRE 6.8, 6.9, 7): every route policy with
and without an online worker writes exactly the streams and records of the
Python GatewayClient + AvailabilityRouter - circuit, quota and fallback
keys, WakeupRequest, PendingDelivery, the WAKE_AND_WAIT decision wait,
direct-worker routing, and a user reply that resumes its execution."""

import json
import subprocess
import time

from harness import wait_until, blocked_in
from bglib.keys import Keys
from test_client import (fake_worker, cp_key, wakeup_stream, result_stream,
                         pending_stream, bygate_json, span16, ok)

S = "s-route"

# record_failed_route_decision (Python registry.py): initialize_execution
# of these keys, status FAILED.
FAILED_KEYS = {
    "execution_id", "message_id", "session_id", "trace_id",
    "parent_message_id", "source_agent_type", "target_agent_type",
    "stream_name", "status", "route_policy", "route_status",
    "selected_agent_type", "availability_error_code", "availability_error",
    "error_code", "error_message", "failed_stage", "created_at",
    "updated_at", "started_at", "finished_at", "timeline"}


def send(h, agent="planner", *extra, code=0, session=S):
    return bygate_json(h, "send", "--agent-type", agent, "--session", session,
                       "--content", "Plan a trip", "--user-name", "alice",
                       *extra, code=code)


def record(h, mid, session=S):
    c = h.client()
    eid = c.call("HGET", h.keys.registry(session), "msg_map:" + mid)
    return json.loads(c.call("HGET", h.keys.registry(session), "exec:" + eid))


def entries(h, key):
    return [json.loads(f["data"]) for _, f in h.client().xrange(key)]


def assert_rejected(h, out, code, error, agent="planner", policy="FAIL_FAST"):
    assert out["success"] is False and out["status"] == "FAILED"
    assert out["error_code"] == code and out["error"] == error
    rec = record(h, out["message_id"])
    assert set(rec) == FAILED_KEYS
    assert rec == dict(rec, execution_id=out["execution_id"],
                       message_id=out["message_id"], session_id=S,
                       source_agent_type="client", target_agent_type=agent,
                       stream_name="", status="FAILED", route_policy=policy,
                       route_status="REJECT", selected_agent_type="",
                       availability_error_code=code,
                       availability_error=error, error_code=code,
                       error_message=error, failed_stage="availability",
                       started_at=0, finished_at=0)
    assert rec["timeline"] == [{"status": "FAILED",
                                "timestamp": rec["created_at"]}]
    assert h.client().call("EXISTS", h.keys.ctrl_agent_type(agent)) == 0


# ---- FAIL_FAST and the online test ----------------------------------------

def test_fail_fast_without_a_worker_rejects_with_a_failed_record(h):
    out = h.bygate("send", "--agent-type", "planner", "--session", S,
                   "--content", "hi")
    assert out.returncode == 1
    assert ("AGENT_TYPE_UNAVAILABLE: No online worker found for agent_type "
            "'planner'") in out.stderr
    doc = send(h, code=1)
    assert_rejected(h, doc, "AGENT_TYPE_UNAVAILABLE",
                    "No online worker found for agent_type 'planner'")
    c = h.client()
    assert c.call("EXISTS", wakeup_stream(h.keys)) == 0
    assert c.call("EXISTS", pending_stream(h.keys)) == 0


def test_fail_fast_with_an_online_worker_delivers_now(h):
    fake_worker(h, "planner")
    doc = send(h)
    assert doc["route_status"] == "DELIVER_NOW"
    assert doc["stream"] == h.keys.ctrl_agent_type("planner")
    rec = record(h, doc["message_id"])
    assert (rec["status"], rec["route_policy"], rec["route_status"]) == (
        "QUEUED", "FAIL_FAST", "DELIVER_NOW")
    assert [e["header"]["message_id"] for e in entries(
        h, h.keys.ctrl_agent_type("planner"))] == [doc["message_id"]]


def test_online_means_member_with_a_lease_whose_last_seen_is_positive(h):
    c = h.client()
    fake_worker(h, "claimed", online=False)  # last_seen 0: claimed only
    send(h, "claimed", code=1)
    c.call("SADD", h.keys.agent_type_members("nolease"), "ghost")
    send(h, "nolease", code=1)
    c.call("SADD", h.keys.agent_type_members("legacy"), "old-w")
    c.call("SET", h.keys.worker_online("old-w"), "1")  # legacy value
    assert send(h, "legacy")["route_status"] == "DELIVER_NOW"
    c.call("SET", h.keys.worker_online("lone"), json.dumps(
        {"version": 1, "token": "t", "last_seen": 5, "ip_address": ""}))
    send(h, "lonely", code=1)  # online lease but not a member


def test_send_anyway_delivers_without_any_worker(h):
    doc = send(h, "planner", "--route-policy", "SEND_ANYWAY")
    assert doc["route_status"] == "DELIVER_NOW"
    rec = record(h, doc["message_id"])
    assert (rec["route_policy"], rec["route_status"]) == ("SEND_ANYWAY",
                                                          "DELIVER_NOW")
    assert len(entries(h, h.keys.ctrl_agent_type("planner"))) == 1


# ---- circuit, quota, fallback ---------------------------------------------

def test_an_open_circuit_rejects_before_anything_else(h):
    c = h.client()
    fake_worker(h, "planner")
    key = cp_key(h.keys, "circuit:agent_type:planner")
    c.call("SET", key, json.dumps({"state": "open",
                                   "reason": "startup failures"}))
    doc = send(h, "planner", "--route-policy", "SEND_ANYWAY", code=1)
    assert_rejected(h, doc, "AGENT_CIRCUIT_OPEN", "startup failures",
                    policy="SEND_ANYWAY")
    c.call("SET", key, json.dumps({"state": "OPEN"}))
    assert send(h, code=1)["error"] == "agent circuit is open"
    for harmless in ('{"state": "closed"}', "OPEN", '["OPEN"]'):
        c.call("SET", key, harmless)
        assert send(h)["route_status"] == "DELIVER_NOW", harmless


def test_a_quota_rejects_only_sends_with_a_user_code(h):
    c = h.client()
    fake_worker(h, "planner")
    c.call("SET", cp_key(h.keys, "quota:user:u-001"),
           json.dumps({"available": False, "reason": "monthly cap"}))
    doc = send(h, "planner", "--user", "u-001", code=1)
    assert (doc["error_code"], doc["error"]) == ("TENANT_QUOTA_EXCEEDED",
                                                 "monthly cap")
    assert send(h)["route_status"] == "DELIVER_NOW"  # no user code
    c.call("SET", cp_key(h.keys, "quota:user:u-002"),
           json.dumps({"available": 0}))  # only a JSON false counts
    assert send(h, "planner", "--user", "u-002")["route_status"] == "DELIVER_NOW"


def test_fallback_routes_to_an_online_type_and_rewrites_the_target(h):
    c = h.client()
    fake_worker(h, "backup", worker="bw")
    c.call("SET", cp_key(h.keys, "fallback:agent_type:planner"),
           json.dumps({"selected_agent_type": "backup"}))
    doc = send(h)
    assert doc["route_status"] == "FALLBACK_TO_OTHER_AGENT_TYPE"
    assert doc["target_agent_type"] == "backup"
    cmd = entries(h, h.keys.ctrl_agent_type("backup"))[0]
    assert cmd["header"]["target_agent_type"] == "backup"
    assert c.call("EXISTS", h.keys.ctrl_agent_type("planner")) == 0
    rec = record(h, doc["message_id"])
    assert (rec["target_agent_type"], rec["selected_agent_type"],
            rec["stream_name"]) == ("backup", "backup",
                                    h.keys.ctrl_agent_type("backup"))
    c.call("SET", cp_key(h.keys, "fallback:agent_type:solo"),
           json.dumps({"agent_type": "nobody"}))  # offline fallback
    assert send(h, "solo", code=1)["error_code"] == "AGENT_TYPE_UNAVAILABLE"


# ---- queueing ----------------------------------------------------------------

def test_queue_only_writes_a_pending_delivery_and_no_command(h):
    doc = send(h, "planner", "--route-policy", "QUEUE_ONLY", "--region",
               "eu", "--priority", "7", "--user", "u-9",
               "--metadata", '{"channel": "web"}')
    assert doc["route_status"] == "QUEUE_PENDING" and doc["entry_id"] == ""
    c = h.client()
    assert c.call("EXISTS", h.keys.ctrl_agent_type("planner")) == 0
    assert c.call("EXISTS", wakeup_stream(h.keys)) == 0
    pend = c.xrange(pending_stream(h.keys))
    assert [e[0] for e in pend] == [doc["pending_entry_id"]]
    p = json.loads(pend[0][1]["data"])
    assert list(p) == ["execution_id", "message_id", "session_id",
                       "trace_id", "target_agent_type", "delivery_stream",
                       "command_payload", "user_code", "region", "priority",
                       "metadata"]
    assert p == dict(p, execution_id=doc["execution_id"],
                     message_id=doc["message_id"], session_id=S,
                     trace_id=doc["trace_id"], target_agent_type="planner",
                     delivery_stream=h.keys.ctrl_agent_type("planner"),
                     user_code="u-9", region="eu", priority=7,
                     metadata={"channel": "web"})
    assert p["command_payload"]["action_type"] == "ASK_AGENT"
    assert p["command_payload"]["header"]["message_id"] == doc["message_id"]
    rec = record(h, doc["message_id"])
    assert (rec["status"], rec["route_policy"], rec["route_status"],
            rec["stream_name"]) == ("QUEUED", "QUEUE_ONLY", "QUEUE_PENDING",
                                    pending_stream(h.keys))


def test_wake_and_queue_writes_the_wakeup_request_and_the_pending_delivery(h):
    doc = send(h, "planner", "--route-policy", "WAKE_AND_QUEUE",
               "--timeout-ms", "4000", "--priority", "2")
    wake = entries(h, wakeup_stream(h.keys))
    assert len(wake) == 1
    w = wake[0]
    assert list(w) == ["execution_id", "target_agent_type", "session_id",
                       "trace_id", "message_id", "source", "policy",
                       "timeout_ms", "user_code", "region", "priority",
                       "metadata", "command_payload"]
    assert w == dict(w, execution_id=doc["execution_id"],
                     target_agent_type="planner", session_id=S,
                     trace_id=doc["trace_id"], message_id=doc["message_id"],
                     source="client", policy="WAKE_AND_QUEUE",
                     timeout_ms=4000, user_code="", region="", priority=2,
                     metadata={})
    pend = entries(h, pending_stream(h.keys))
    assert len(pend) == 1 and pend[0]["command_payload"] == w["command_payload"]
    assert h.client().call("EXISTS", h.keys.ctrl_agent_type("planner")) == 0
    rec = record(h, doc["message_id"])
    assert (rec["route_policy"], rec["route_status"]) == ("WAKE_AND_QUEUE",
                                                          "QUEUE_PENDING")


def test_queue_policies_deliver_now_when_a_worker_is_online(h):
    fake_worker(h, "planner")
    for policy in ("QUEUE_ONLY", "WAKE_AND_QUEUE", "WAKE_AND_WAIT"):
        assert send(h, "planner", "--route-policy", policy)[
            "route_status"] == "DELIVER_NOW"
    c = h.client()
    assert c.call("EXISTS", wakeup_stream(h.keys)) == 0
    assert c.call("EXISTS", pending_stream(h.keys)) == 0


def test_control_plane_keys_follow_the_v2_schema(h):
    env = h.env(REDIS_KEY_SCHEMA_VERSION="v2")
    out = h.bygate("send", "--agent-type", "planner", "--session", S,
                   "--content", "x", "--route-policy", "WAKE_AND_QUEUE",
                   env=env)
    assert out.returncode == 0, out.stderr
    v2 = Keys("v2")
    c = h.client()
    assert len(c.xrange(wakeup_stream(v2))) == 1
    p = json.loads(c.xrange(pending_stream(v2))[0][1]["data"])
    assert p["delivery_stream"] == v2.ctrl_agent_type("planner")
    assert c.call("EXISTS", v2.registry(S)) == 1


# ---- WAKE_AND_WAIT ---------------------------------------------------------

def start_wait_send(h, agent="planner", timeout_ms="5000"):
    return h.spawn([h.bin("bygate"), "send", "--agent-type", agent,
                    "--session", S, "--content", "wake me",
                    "--route-policy", "WAKE_AND_WAIT", "--timeout-ms",
                    timeout_ms, "--json"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE).popen


def wakeup_request(h):
    return wait_until(lambda: (entries(h, wakeup_stream(h.keys)) or [None])[0],
                      5, 0.01, "the WakeupRequest")


def decide(h, exec_id, status, **kw):
    d = {"execution_id": exec_id, "target_agent_type": "planner",
         "status": status, "selected_agent_type": "", "worker_ids": [],
         "region": "", "retry_after_ms": None, "reason": ""}
    d.update(kw)
    h.client().call("XADD", result_stream(h.keys, exec_id), "*", "data",
                    json.dumps(d))


def finish(p):
    out, err = p.communicate(timeout=10)
    return p.returncode, json.loads(out.decode()), err.decode()


def test_wake_and_wait_delivers_after_a_ready_decision(h):
    p = start_wait_send(h)
    req = wakeup_request(h)
    assert req["policy"] == "WAKE_AND_WAIT" and req["timeout_ms"] == 5000
    eid = req["execution_id"]
    decide(h, eid, "STARTING")
    decide(h, "exec-someone-else", "READY")
    h.client().call("XADD", result_stream(h.keys, eid), "*", "other", "x")
    decide(h, eid, "QUEUED", reason="wakeup already in progress")
    # the CLI has read all of them and waits for the next
    wait_until(lambda: p.poll() is not None or blocked_in(h.client(), "xread"),
               10, what="the CLI to read past the decisions")
    assert p.poll() is None  # none of these is an answer
    fake_worker(h, "planner")
    decide(h, eid, "READY")
    code, doc, err = finish(p)
    assert code == 0, err
    assert doc["route_status"] == "WAIT_AND_DELIVER"
    assert doc["execution_id"] == eid
    cmd = entries(h, h.keys.ctrl_agent_type("planner"))
    assert [c["header"]["message_id"] for c in cmd] == [doc["message_id"]]
    assert record(h, doc["message_id"])["route_status"] == "WAIT_AND_DELIVER"
    assert h.client().call("EXISTS", pending_stream(h.keys)) == 0


def test_wake_and_wait_follows_a_fallback_decision(h):
    p = start_wait_send(h)
    decide(h, wakeup_request(h)["execution_id"], "FALLBACK",
           selected_agent_type="backup")
    code, doc, err = finish(p)
    assert code == 0, err
    assert doc["route_status"] == "FALLBACK_TO_OTHER_AGENT_TYPE"
    cmd = entries(h, h.keys.ctrl_agent_type("backup"))[0]
    assert cmd["header"]["target_agent_type"] == "backup"
    assert record(h, doc["message_id"])["selected_agent_type"] == "backup"


def test_wake_and_wait_rejects_with_the_decisions_reason(h):
    for status, reason, error in (
            ("REJECTED", "no capacity in eu", "no capacity in eu"),
            ("FAILED", "", "Wakeup rejected for agent_type 'planner'"),
            ("READY", "", "No online worker found for agent_type 'planner'")):
        h.client().call("DEL", wakeup_stream(h.keys))
        p = start_wait_send(h)
        decide(h, wakeup_request(h)["execution_id"], status, reason=reason)
        code, doc, _ = finish(p)
        assert code == 1
        assert_rejected(h, doc, "AGENT_TYPE_UNAVAILABLE", error,
                        policy="WAKE_AND_WAIT")


def test_wake_and_wait_times_out(h):
    t0 = time.monotonic()
    doc = send(h, "planner", "--route-policy", "WAKE_AND_WAIT",
               "--timeout-ms", "300", code=1)
    assert time.monotonic() - t0 >= 0.3
    assert_rejected(h, doc, "AGENT_TYPE_UNAVAILABLE",
                    "Timed out waiting for worker wakeup for agent_type "
                    "'planner'", policy="WAKE_AND_WAIT")
    assert len(entries(h, wakeup_stream(h.keys))) == 1


# ---- direct worker routing (WIRE 6.9) ---------------------------------------

def test_direct_routing_sends_to_the_worker_stream(h):
    fake_worker(h, "planner", worker="w-7")
    doc = send(h, "planner", "--worker", "w-7")
    assert doc["route_status"] == "DIRECT_WORKER"
    assert doc["stream"] == h.keys.ctrl_worker("w-7")
    cmd = entries(h, h.keys.ctrl_worker("w-7"))
    assert [c["header"]["message_id"] for c in cmd] == [doc["message_id"]]
    assert cmd[0]["header"]["target_agent_type"] == "planner"
    rec = record(h, doc["message_id"])
    assert (rec["route_status"], rec["stream_name"], rec["route_policy"]) == (
        "DIRECT_WORKER", h.keys.ctrl_worker("w-7"), "FAIL_FAST")
    assert h.client().call("EXISTS", h.keys.ctrl_agent_type("planner")) == 0


def test_direct_routing_to_an_offline_worker_writes_nothing(h):
    out = h.bygate("send", "--agent-type", "planner", "--session", S,
                   "--content", "x", "--worker", "w-gone", "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["error_code"] == "WORKER_NOT_ONLINE"
    assert doc["error"] == "Target worker 'w-gone' is not online or not registered"
    c = h.client()
    assert c.call("EXISTS", h.keys.registry(S)) == 0
    assert c.call("EXISTS", h.keys.ctrl_worker("w-gone")) == 0
    doc = send(h, "planner", "--worker", "w-gone", "--route-policy",
               "SEND_ANYWAY")
    assert doc["route_status"] == "DIRECT_WORKER"
    assert len(entries(h, h.keys.ctrl_worker("w-gone"))) == 1


# ---- reply (WIRE 6.8) ----------------------------------------------------------

def waiting_execution(h, session=S, agent="planner"):
    """A send whose execution a worker suspended on ask_user."""
    fake_worker(h, agent)
    doc = send(h, agent, "--user", "u-001", session=session)
    c = h.client()
    reg = h.keys.registry(session)
    rec = record(h, doc["message_id"], session)
    rec.update(status="WAITING_USER", worker_id="fake-w1", started_at=1)
    c.call("HSET", reg, "exec:" + rec["execution_id"], json.dumps(rec))
    return doc, rec


def test_reply_resumes_the_execution_of_the_message(h):
    doc, before = waiting_execution(h)
    out = bygate_json(h, "reply", doc["message_id"], "--session", S,
                      "--content", "Kyoto, 3 nights", "--user", "u-001",
                      "--user-name", "alice")
    assert out["resumed"] is True
    assert out["execution_id"] == doc["execution_id"]
    assert out["message_id"] == doc["message_id"]
    assert out["trace_id"] != doc["trace_id"]  # a fresh trace id
    cmd = entries(h, h.keys.ctrl_agent_type("planner"))[-1]
    mid = doc["message_id"]
    assert cmd == {  # WIRE 2.5 "User reply"
        "action_type": "RESUME",
        "header": {"message_id": mid, "session_id": S,
                   "trace_id": out["trace_id"], "source_agent_type": "",
                   "target_agent_type": "planner", "parent_message_id": "",
                   "task_group_id": "", "user_code": "u-001",
                   "user_name": "alice", "metadata": {},
                   "trace_parent_span_id": span16(mid),
                   "langfuse_parent_observation_id": span16(mid)},
        "body": {"content": "Kyoto, 3 nights", "status": "",
                 "reply_data": None}}
    assert record(h, mid) == before  # not re-initialised
    assert h.client().call("HGET", h.keys.registry(S),
                           "msg_map:" + mid) == doc["execution_id"]


def test_reply_moves_status_and_reply_data_out_of_extra_payload(h):
    doc, _ = waiting_execution(h)
    bygate_json(h, "reply", doc["message_id"], "--session", S, "--extra",
                '{"status": "COMPLETED", "reply_data": {"a": 1}, "k": 2}')
    body = entries(h, h.keys.ctrl_agent_type("planner"))[-1]["body"]
    assert body == {"content": "", "status": "COMPLETED",
                    "reply_data": {"a": 1}, "extra_payload": {"k": 2}}
    bygate_json(h, "reply", doc["message_id"], "--session", S, "--status",
                "WAITING_USER", "--reply-data", "[1, 2]", "--content", "x",
                "--extra", '{"status": "ignored"}')
    body = entries(h, h.keys.ctrl_agent_type("planner"))[-1]["body"]
    assert body == {"content": "x", "status": "WAITING_USER",
                    "reply_data": [1, 2]}


def test_reply_routes_like_a_send(h):
    doc, _ = waiting_execution(h)
    h.client().call("DEL", h.keys.agent_type_members("planner"))
    out = bygate_json(h, "reply", doc["message_id"], "--session", S,
                      "--content", "late", code=1)
    assert out["error_code"] == "AGENT_TYPE_UNAVAILABLE"
    # as Python: record_failed_route_decision over the resumed execution
    rec = record(h, doc["message_id"])
    assert (rec["execution_id"], rec["status"], rec["failed_stage"]) == (
        doc["execution_id"], "FAILED", "availability")
    out = bygate_json(h, "reply", doc["message_id"], "--session", S,
                      "--content", "queued", "--route-policy", "QUEUE_ONLY")
    p = entries(h, pending_stream(h.keys))[-1]
    assert p["execution_id"] == doc["execution_id"]
    assert p["command_payload"]["action_type"] == "RESUME"


def test_reply_to_an_unknown_message_needs_an_agent_type(h):
    out = h.bygate("reply", "msg-unknown", "--session", S, "--content", "x")
    assert out.returncode == 2 and "no agent type" in out.stderr
    fake_worker(h, "planner")
    doc = bygate_json(h, "reply", "msg-unknown", "--session", S,
                      "--content", "x", "--agent-type", "planner")
    assert doc["resumed"] is False
    rec = record(h, "msg-unknown")
    assert (rec["execution_id"], rec["status"]) == (doc["execution_id"],
                                                    "QUEUED")
    assert entries(h, h.keys.ctrl_agent_type("planner"))[-1][
        "action_type"] == "RESUME"
