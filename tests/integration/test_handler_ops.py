"""The handler operations on other executions of a session and on the
fleet (docs/handler-sdk.md section 5): resume_later (a RESUME posted to
an execution of the session, at once or when due, through the outbox and
the timers every bygated polls), cancel_call (a client's cancel_task from
inside a handler) and agent_types_served. The handler is the test plugin
ops.c; the callee of a cancel is the sleep example plugin."""

import json
import time

from harness import wait_until, timeout
import pyclient as pc
from test_cancel_counters import assert_settled

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300}
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def ops(h, name="ops"):
    return h.agent_type(name, plugin="ops")


def sleeper(h):
    return h.agent_type("sleeper", plugin="sleep")


def start(h, worker=None, types=None, **worker_kw):
    cfg = {"worker": dict(FAST, **worker_kw), "pool": {"size": 3},
           "agent_types": types or [ops(h), sleeper(h)]}
    if worker:
        cfg["worker"]["id"] = worker
    return h.start_bygated(cfg)


def timers_key(h, agent_type):
    """wire/keys.h BG_KEY_TIMERS (under v2 in the slot of the stream)."""
    if h.keys.schema == "v1":
        return "byai_gateway:ctrl:agent_type:%s:bygate_timers" % agent_type
    return ("byai_gateway:v2:{byai_gateway:v2:ctrl:agent_type:%s}:"
            "bygate_timers" % agent_type)


def rec(h, s, mid):
    return pc.record(h.client(), h.keys, s, mid) or {}


def status_is(h, s, mid, want, t=15):
    return wait_until(lambda: (lambda r: r if r.get("status") == want
                               else None)(rec(h, s, mid)),
                      t, what="%s %s" % (mid, want))


def finished(h, s, mid, t=20):
    return wait_until(lambda: (lambda r: r if r.get("status") in TERMINAL
                               else None)(rec(h, s, mid)),
                      t, what="%s finished" % mid)


def chunks(h, s, mid):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(h.client(), h.keys, s)
            if e["message_id"] == mid and e["event_type"] == "answerDelta"]


def reply_of(h, s, mid):
    """The operation's reply the plugin streamed (its first JSON chunk)."""
    for c in chunks(h, s, mid):
        if c.startswith("{"):
            return json.loads(c)
    return None


def posted(h, agent_type="ops"):
    """The posted RESUMEs on agent_type's stream, with their entry ids."""
    return [(eid, json.loads(f["data"]))
            for eid, f in h.client().xrange(h.keys.ctrl_agent_type(agent_type))
            if "bygate_post" in json.loads(f["data"])["body"].get(
                "extra_payload", {})]


def entry_ms(entry_id):
    return int(entry_id.split("-")[0])


def timeline(r):
    return [x["status"] for x in r["timeline"]]


# ---- resume_later --------------------------------------------------------

def test_a_timer_resumes_the_execution_once_after_its_delay(h):
    start(h)
    s = "s-timer"
    mid, _ = pc.send(h.client(), h.keys, s, "ops", "timer 300")
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert timeline(r) == ["QUEUED", "RUNNING", "WAITING_AGENT", "RUNNING",
                           "COMPLETED"]
    rep = reply_of(h, s, mid)
    assert rep["status"] == "POSTED" and rep["message_id"] == mid
    [(eid, cmd)] = posted(h)
    assert cmd["action_type"] == "RESUME"
    hd = cmd["header"]
    assert hd["message_id"] == mid and hd["session_id"] == s
    assert hd["target_agent_type"] == "ops"
    assert hd["source_agent_type"] == ""
    assert hd["parent_message_id"] == mid
    assert hd["trace_id"] == rec(h, s, mid)["trace_id"]
    assert cmd["body"]["content"] == {"n": 1}
    post = cmd["body"]["extra_payload"]["bygate_post"]
    assert post["from_message_id"] == mid
    assert post["due_ms"] == rep["due_ms"]
    # sent when due, not before, and at least 300 ms after the call
    assert entry_ms(eid) >= post["due_ms"]
    running = [x["timestamp"] for x in r["timeline"]
               if x["status"] == "RUNNING"]
    assert entry_ms(eid) - running[0] >= 300
    # the handler got the posted content and the bygate_post marker
    fin = [e for e in pc.events(h.client(), h.keys, s)
           if e["message_id"] == mid and e["event_type"] == "finalAnswer"]
    assert fin[-1]["data"]["choices"][0]["delta"]["content"] == \
        'resumed: {"n":1}'
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 0
    time.sleep(0.5)  # nothing fires twice
    assert len(posted(h)) == 1


def test_a_post_without_delay_goes_out_with_the_finish(h):
    start(h)
    s = "s-post0"
    waiting, _ = pc.send(h.client(), h.keys, s, "ops", "wait")
    status_is(h, s, waiting, "WAITING")
    poster, _ = pc.send(h.client(), h.keys, s, "ops",
                        "post " + json.dumps({"to": waiting}))
    assert finished(h, s, poster)["status"] == "COMPLETED"
    r = finished(h, s, waiting)
    assert r["status"] == "COMPLETED"
    [(_, cmd)] = posted(h)
    assert cmd["header"]["message_id"] == waiting
    assert cmd["header"]["parent_message_id"] == poster
    assert cmd["body"]["extra_payload"]["bygate_post"][
        "from_message_id"] == poster
    assert reply_of(h, s, poster)["status"] == "POSTED"
    # the waiting execution saw the posted content; the poster is not
    # suspended by a post to another execution
    assert rec(h, s, poster)["status"] == "COMPLETED"
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 0


def test_a_post_to_another_execution_with_a_delay_waits_for_it(h):
    start(h)
    s = "s-postd"
    waiting, _ = pc.send(h.client(), h.keys, s, "ops", "wait")
    status_is(h, s, waiting, "WAITING")
    poster, _ = pc.send(h.client(), h.keys, s, "ops",
                        "post " + json.dumps({"to": waiting, "delay": 400}))
    finished(h, s, poster)
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 1
    assert rec(h, s, waiting)["status"] == "WAITING"
    assert finished(h, s, waiting)["status"] == "COMPLETED"
    [(eid, cmd)] = posted(h)
    assert entry_ms(eid) >= cmd["body"]["extra_payload"]["bygate_post"][
        "due_ms"]


def test_a_post_to_an_unknown_message_is_refused(h):
    start(h)
    s = "s-post404"
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "post " + json.dumps({"to": "msg-nobody"}))
    finished(h, s, mid)
    rep = reply_of(h, s, mid)
    assert rep["error_code"] == "NOT_FOUND" and "msg-nobody" in rep["error"]
    assert posted(h) == []


def test_a_post_to_an_execution_of_another_session_is_refused(h):
    start(h)
    other, _ = pc.send(h.client(), h.keys, "s-other", "ops", "wait")
    status_is(h, "s-other", other, "WAITING")
    mid, _ = pc.send(h.client(), h.keys, "s-mine", "ops",
                     "post " + json.dumps({"to": other}))
    finished(h, "s-mine", mid)
    assert reply_of(h, "s-mine", mid)["error_code"] == "NOT_FOUND"
    assert rec(h, "s-other", other)["status"] == "WAITING"


def test_a_timer_due_after_its_execution_ended_is_dropped(h):
    d = start(h)
    s = "s-late"
    mid, _ = pc.send(h.client(), h.keys, s, "ops", "timer-done 300")
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 1
    wait_until(lambda: h.client().call("ZCARD", timers_key(h, "ops")) == 0, 5,
               what="the timer handled")
    d.wait_log("delayed RESUME of agent type ops is dropped", 5)
    assert posted(h) == []
    assert rec(h, s, mid) == r  # not run again
    # it ended COMPLETED: the client's turn was closed
    assert [e["event_type"] for e in pc.events(h.client(), h.keys, s)
            if e["message_id"] == mid][-1] == "appStreamResponse"


def test_a_post_to_an_execution_that_has_ended_is_refused(h):
    start(h)
    s = "s-post-ended"
    done, _ = pc.send(h.client(), h.keys, s, "sleeper", "1")
    finished(h, s, done)
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "post " + json.dumps({"to": done, "delay": 100}))
    finished(h, s, mid)
    assert reply_of(h, s, mid)["error_code"] == "ALREADY_FINISHED"
    assert h.client().call("ZCARD", timers_key(h, "sleeper")) == 0


@timeout(90)
def test_with_two_bygated_each_timer_fires_exactly_once(h):
    start(h, worker="w-a", timer_poll_ms=10)
    start(h, worker="w-b", timer_poll_ms=10)
    c = h.client()
    mids = [pc.send(c, h.keys, "s-two-%d" % i, "ops", "timer 300")[0]
            for i in range(20)]
    for i, m in enumerate(mids):
        assert finished(h, "s-two-%d" % i, m, t=30)["status"] == "COMPLETED"
    time.sleep(0.5)
    got = sorted(cmd["header"]["message_id"] for _, cmd in posted(h))
    assert got == sorted(mids)
    assert c.call("ZCARD", timers_key(h, "ops")) == 0
    for i, m in enumerate(mids):
        assert timeline(rec(h, "s-two-%d" % i, m)).count("RUNNING") == 2


@timeout(90)
def test_a_timer_survives_kill_9_of_the_bygated_that_stored_it(h):
    d = start(h, worker="w-dies")
    s = "s-kill"
    mid, _ = pc.send(h.client(), h.keys, s, "ops", "timer 2000")
    status_is(h, s, mid, "WAITING_AGENT")
    d.kill_all()
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 1
    start(h, worker="w-other")
    r = finished(h, s, mid, t=30)
    assert r["status"] == "COMPLETED"
    [(eid, cmd)] = posted(h)
    assert entry_ms(eid) >= cmd["body"]["extra_payload"]["bygate_post"][
        "due_ms"]
    assert h.client().call("ZCARD", timers_key(h, "ops")) == 0


# ---- cancel_call ---------------------------------------------------------

def callee_of(h, s, caller):
    recs = [json.loads(v) for k, v in
            h.client().hgetall(h.keys.registry(s)).items()
            if k.startswith("exec:")]
    [r] = [r for r in recs if r["parent_message_id"] == caller
           and r["target_agent_type"] == "sleeper"]
    return r


@timeout(60)
def test_cancel_call_force_stops_a_long_sub_call_at_once(h):
    start(h)
    s = "s-cancel"
    caller, _ = pc.send(h.client(), h.keys, s, "ops", "call sleeper 10000")
    status_is(h, s, caller, "WAITING_AGENT")
    callee = callee_of(h, s, caller)["message_id"]
    status_is(h, s, callee, "RUNNING")
    t0 = time.monotonic()
    canceller, _ = pc.send(h.client(), h.keys, s, "ops",
                           "cancel " + json.dumps({"message_id": callee,
                                                   "force": 1}))
    r = finished(h, s, callee, t=8)
    assert r["status"] == "CANCELLED"
    assert time.monotonic() - t0 < 5
    assert r["cancel_requested"] is True
    assert r["cancel_reason"] == "deadline"
    rep = reply_of(h, s, canceller)
    assert rep["status"] == "CANCEL_REQUESTED" and \
        rep["cancelled_count"] == 1
    [cancel] = [json.loads(f["data"]) for _, f in h.client().xrange(
        h.keys.ctrl_worker(r["worker_id"]))
        if json.loads(f["data"])["action_type"] == "CANCEL_TASK"]
    assert cancel["body"]["cancel_mode"] == "force"
    assert cancel["body"]["target_message_id"] == callee
    # the caller gets the CANCELLED callback
    assert finished(h, s, caller)["status"] == "COMPLETED"
    # the dashboard's counters moved as for a client's cancel
    time.sleep(0.3)
    assert_settled(h.client(), h.keys, r["worker_id"], total_count=3,
                   completed_count=2, cancelled_count=1)


def test_cancel_call_of_a_finished_execution_is_already_finished(h):
    start(h)
    s = "s-cancel-done"
    done, _ = pc.send(h.client(), h.keys, s, "sleeper", "1")
    finished(h, s, done)
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "cancel " + json.dumps({"message_id": done}))
    finished(h, s, mid)
    assert reply_of(h, s, mid)["status"] == "ALREADY_FINISHED"
    r = rec(h, s, done)
    assert r["status"] == "COMPLETED" and r["cancel_requested"] is True


def test_cancel_call_of_an_unknown_message_is_not_found(h):
    start(h)
    s = "s-cancel404"
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "cancel " + json.dumps({"message_id": "msg-nobody"}))
    finished(h, s, mid)
    assert reply_of(h, s, mid)["error_code"] == "NOT_FOUND"


def test_a_suspended_execution_is_cancelled_at_its_next_resume(h):
    start(h)
    s = "s-cancel-q"
    waiting, _ = pc.send(h.client(), h.keys, s, "ops", "wait")
    status_is(h, s, waiting, "WAITING")
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "cancel " + json.dumps({"message_id": waiting}))
    finished(h, s, mid)
    assert reply_of(h, s, mid)["cancelled_count"] == 1
    r = rec(h, s, waiting)
    assert r["status"] == "CANCELLING" and r["cancel_requested"] is True
    # nothing runs it (its worker got a CANCEL_TASK for nothing, as from
    # a client); a RESUME then ends it unrun
    poster, _ = pc.send(h.client(), h.keys, s, "ops",
                        "post " + json.dumps({"to": waiting}))
    finished(h, s, poster)
    r = finished(h, s, waiting)
    assert r["status"] == "CANCELLED"
    assert timeline(r).count("RUNNING") == 1


# ---- agent_types_served --------------------------------------------------

def test_agent_types_served_names_the_unserved_ones(h):
    start(h, types=[ops(h)])
    start(h, worker="w-peer", types=[sleeper(h)])
    # a lease counts once its first heartbeat stamped last_seen (WIRE 5.1)
    wait_until(lambda: json.loads(h.client().call(
        "GET", h.keys.worker_online("w-peer")) or "{}").get(
            "last_seen", 0) > 0, 10, what="the peer's first heartbeat")
    s = "s-served"
    mid, _ = pc.send(h.client(), h.keys, s, "ops",
                     "served " + json.dumps(["ops", "sleeper", "nobody"]))
    finished(h, s, mid)
    assert reply_of(h, s, mid) == {"unserved": ["nobody"]}


def test_agent_types_served_refuses_what_is_not_a_list_of_names(h):
    start(h, types=[ops(h)])
    s = "s-served-bad"
    mid, _ = pc.send(h.client(), h.keys, s, "ops", "served [1]")
    finished(h, s, mid)
    assert chunks(h, s, mid) == ["rc -22"]


# ---- the same operations from an exec handler (bygate_agent.py) ----------

AGENTS = __import__("pathlib").Path(__file__).resolve().parent / "agents"


def py_ops(name="pyops"):
    return {"name": name, "handler": "exec", "timeout_ms": 30000,
            "command": "python3 %s" % (AGENTS / "opsagent.py")}


def final(h, s, mid):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(h.client(), h.keys, s)
            if e["message_id"] == mid and e["event_type"] == "finalAnswer"]


def test_an_exec_handler_posts_a_timer_to_itself(h):
    start(h, types=[py_ops()])
    s = "s-py-timer"
    mid, _ = pc.send(h.client(), h.keys, s, "pyops", "timer 200")
    r = finished(h, s, mid)
    assert r["status"] == "COMPLETED"
    assert timeline(r) == ["QUEUED", "RUNNING", "WAITING_AGENT", "RUNNING",
                           "COMPLETED"]
    assert reply_of(h, s, mid)["status"] == "POSTED"
    assert final(h, s, mid)[-1] == 'resumed: {"n": 2}'
    [(eid, cmd)] = posted(h, "pyops")
    assert entry_ms(eid) >= cmd["body"]["extra_payload"]["bygate_post"][
        "due_ms"]


def test_an_exec_handler_posts_cancels_and_checks_served_types(h):
    start(h, types=[py_ops(), sleeper(h)])
    s = "s-py-ops"
    c = h.client()
    waiting, _ = pc.send(c, h.keys, s, "pyops", "wait")
    status_is(h, s, waiting, "WAITING_AGENT")
    poster, _ = pc.send(c, h.keys, s, "pyops", "post " + waiting)
    finished(h, s, poster)
    assert json.loads(final(h, s, poster)[-1])["status"] == "POSTED"
    assert finished(h, s, waiting)["status"] == "COMPLETED"
    assert final(h, s, waiting)[-1] == 'resumed: "hello"'
    nobody, _ = pc.send(c, h.keys, s, "pyops", "post msg-nobody")
    finished(h, s, nobody)
    assert json.loads(final(h, s, nobody)[-1])["error_code"] == "NOT_FOUND"
    long_, _ = pc.send(c, h.keys, s, "sleeper", "10000")
    status_is(h, s, long_, "RUNNING")
    canceller, _ = pc.send(c, h.keys, s, "pyops", "cancel " + long_)
    assert finished(h, s, long_, t=8)["status"] == "CANCELLED"
    finished(h, s, canceller)
    assert json.loads(final(h, s, canceller)[-1])["cancelled_count"] == 1
    served, _ = pc.send(c, h.keys, s, "pyops",
                        "served " + json.dumps(["sleeper", "nobody"]))
    finished(h, s, served)
    assert json.loads(final(h, s, served)[-1]) == ["nobody"]
