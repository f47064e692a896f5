"""Agents calling agents with C plugins (issue 5): call_agent with
wait_for_reply, nested calls that call back only when finished ("bygate
decisions" 16), fan-out with an idempotent join, ask_user and RESUME, and
session kv; all through the outbox, so a crash never duplicates them."""

import json
import os
import signal
import time

from harness import wait_until, timeout
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}


def flow(h, name, role, target=""):
    return h.agent_type(name, plugin="flow",
                        options={"role": role, "target": target})


def start(h, types, **kw):
    return h.start_bygated(dict({"worker": dict(FAST), "pool": {"size": 3},
                                 "agent_types": types}, **kw))


def rec(c, keys, s, m):
    return pc.record(c, keys, s, m) or {}


def done(c, keys, s, m, t=20):
    return wait_until(lambda: (lambda r: r if r.get("status") in
                               ("COMPLETED", "FAILED", "CANCELLED") else None)(
        rec(c, keys, s, m)), t, what="%s finished" % m)


def final_of(evs, mid):
    f = [e for e in evs if e["message_id"] == mid and
         e["event_type"] in ("finalAnswer", "reasoningLogDelta")
         and e["data"]["choices"][0]["delta"]["content"]]
    return f


def all_records(c, keys, s):
    return [json.loads(v) for k, v in c.hgetall(keys.registry(s)).items()
            if k.startswith("exec:")]


def test_a_calls_b_and_b_resumes_a_exactly_once(h):
    start(h, [flow(h, "alpha", "caller", "beta"), flow(h, "beta", "worker")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-ab", "alpha", "plan a trip")
    r = done(c, h.keys, "s-ab", mid)
    assert r["status"] == "COMPLETED"
    assert [t["status"] for t in r["timeline"]] == [
        "QUEUED", "RUNNING", "WAITING_AGENT", "RUNNING", "COMPLETED"]
    recs = all_records(c, h.keys, "s-ab")
    child = [x for x in recs if x["target_agent_type"] == "beta"]
    assert len(child) == 1 and child[0]["status"] == "COMPLETED"
    assert child[0]["parent_message_id"] == mid
    assert child[0]["source_agent_type"] == "alpha"
    evs = pc.events(c, h.keys, "s-ab")
    cm = child[0]["message_id"]
    # sub-agent rules: its chunks and final answer are reasoningLogDelta,
    # it never closes the stream
    assert {e["event_type"] for e in evs if e["message_id"] == cm} == \
        {"reasoningLogDelta"}
    ends = [e for e in evs if e["event_type"] == "appStreamResponse"]
    assert [e["message_id"] for e in ends] == [mid]
    fin = [e for e in evs if e["event_type"] == "finalAnswer"]
    assert len(fin) == 1
    assert fin[0]["data"]["choices"][0]["delta"]["content"] == \
        "alpha got: beta done: plan a trip"
    resumes = [x for x in c.stream_data(h.keys.ctrl_agent_type("alpha"))
               if x["action_type"] == "RESUME"]
    assert len(resumes) == 1
    assert resumes[0]["header"]["message_id"] == mid
    assert resumes[0]["header"]["parent_message_id"] == cm
    assert resumes[0]["body"]["status"] == "COMPLETED"


def test_nested_calls_call_back_only_when_finished(h):
    start(h, [flow(h, "alpha", "caller", "beta"),
              flow(h, "beta", "caller", "gamma"),
              flow(h, "gamma", "worker")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-abc", "alpha", "deep")
    r = done(c, h.keys, "s-abc", mid)
    assert r["status"] == "COMPLETED"
    evs = pc.events(c, h.keys, "s-abc")
    fin = [e for e in evs if e["event_type"] == "finalAnswer"]
    assert len(fin) == 1
    assert fin[0]["data"]["choices"][0]["delta"]["content"] == \
        "alpha got: beta got: gamma done: deep"
    a_resumes = [x for x in c.stream_data(h.keys.ctrl_agent_type("alpha"))
                 if x["action_type"] == "RESUME"]
    b_resumes = [x for x in c.stream_data(h.keys.ctrl_agent_type("beta"))
                 if x["action_type"] == "RESUME"]
    assert len(a_resumes) == 1 and len(b_resumes) == 1
    assert a_resumes[0]["body"]["status"] == "COMPLETED"
    assert [e["message_id"] for e in evs
            if e["event_type"] == "appStreamResponse"] == [mid]


def test_fan_out_of_10_joins_once_with_every_result(h):
    start(h, [flow(h, "fan", "fanout", "beta"), flow(h, "beta", "worker")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-fan", "fan", "10")
    r = done(c, h.keys, "s-fan", mid, t=30)
    assert r["status"] == "COMPLETED"
    evs = pc.events(c, h.keys, "s-fan")
    fin = [e for e in evs if e["event_type"] == "finalAnswer"
           and e["message_id"] == mid]
    assert len(fin) == 1
    results = json.loads(fin[0]["data"]["choices"][0]["delta"]["content"])
    assert len(results) == 10
    contents = sorted(json.loads(json.dumps(v))["content"]
                      for v in results.values())
    assert contents == sorted("beta done: part %d" % i for i in range(10))
    tl = [t["status"] for t in r["timeline"]]
    assert tl.count("RUNNING") == 2  # the ASK and the one joined resume
    assert len([e for e in evs if e["event_type"] == "appStreamResponse"]) \
        == 1


def test_ask_user_round_trip_through_bygate_reply(h):
    d = start(h, [flow(h, "asker", "asker")])
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-ask", "asker", "book a room")
    wait_until(lambda: rec(c, h.keys, "s-ask", mid).get("status") ==
               "WAITING_USER", 10, what="waiting for the user")
    form = [e for e in pc.events(c, h.keys, "s-ask")
            if e["data"]["contentType"] == "3013"]
    assert len(form) == 1
    assert json.loads(form[0]["data"]["choices"][0]["delta"]["content"])[
        "pluginMachineFields"][0]["description"] == "Which city?"
    out = h.bygate("reply", mid, "--session", "s-ask", "--content",
                   "Kyoto", "--route-policy", "SEND_ANYWAY")
    assert out.returncode == 0, out.stdout + out.stderr
    r = done(c, h.keys, "s-ask", mid)
    assert r["status"] == "COMPLETED"
    fin = [e for e in pc.events(c, h.keys, "s-ask")
           if e["event_type"] == "finalAnswer"]
    assert fin[-1]["data"]["choices"][0]["delta"]["content"] == \
        "answer: Kyoto"
    assert d.alive()


@timeout(90)
def test_a_resume_after_bygated_was_killed_while_suspended(h):
    d = start(h, [flow(h, "asker", "asker")],
              )
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-ask2", "asker", "x")
    wait_until(lambda: rec(c, h.keys, "s-ask2", mid).get("status") ==
               "WAITING_USER", 10, what="suspended")
    d.kill()
    d2 = h.bygated(config=d.config)
    d2.start()
    out = h.bygate("reply", mid, "--session", "s-ask2", "--content", "Osaka",
                   "--route-policy", "SEND_ANYWAY")
    assert out.returncode == 0, out.stdout + out.stderr
    r = done(c, h.keys, "s-ask2", mid)
    assert r["status"] == "COMPLETED"


def test_session_kv_survives_across_tasks_of_a_session(h):
    start(h, [flow(h, "counter", "counter")])
    c = h.client()
    vals = []
    for i in range(3):
        m, _ = pc.send(c, h.keys, "s-kv", "counter", "inc")
        done(c, h.keys, "s-kv", m)
        fin = [e for e in pc.events(c, h.keys, "s-kv") if e["message_id"] == m
               and e["event_type"] == "finalAnswer"]
        vals.append(fin[0]["data"]["choices"][0]["delta"]["content"])
    assert vals == ["1", "2", "3"]
    assert c.call("TTL", h.keys.session_kv("s-kv")) > 604000


@timeout(90)
def test_a_child_crash_after_call_agent_never_duplicates_the_request(h):
    start(h, [flow(h, "alpha", "caller", "crashy"),
              h.agent_type("crashy", plugin="crash", max_attempts=1)])
    c = h.client()
    # alpha calls crashy (which dies); alpha's request is applied once in
    # alpha's finish; the callee's death calls alpha back FAILED once
    mid, _ = pc.send(c, h.keys, "s-cr", "alpha", "kill")
    r = done(c, h.keys, "s-cr", mid, t=30)
    asks = [x for x in c.stream_data(h.keys.ctrl_agent_type("crashy"))]
    assert len(asks) == 1
    resumes = [x for x in c.stream_data(h.keys.ctrl_agent_type("alpha"))
               if x["action_type"] == "RESUME"]
    assert len(resumes) == 1 and resumes[0]["body"]["status"] == "FAILED"
    assert r["status"] == "COMPLETED"  # alpha handles the FAILED reply
