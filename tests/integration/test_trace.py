"""The trace spans bygated writes (WIRE 9.2, supervisor/trace.h): per
execution a worker.execute span, client.dispatch per call_agent,
agent.return per callback, agent.cancel per cancel, in the trace's span
LIST; the trace meta HASH (start_ts the smallest, updated_at the largest,
a root's end status, end_ts and output); the session, worker and agent
type index ZSETs scored by start_ts; all with the trace TTL. Spans are
kept in memory and flushed in one pipeline per trace.flush_ms, sampled by
trace.sample_percent and switched by trace.enabled."""

import json
import threading
import uuid

from harness import wait_until
from test_client import bygate_json
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300, "cancel_grace_ms": 300}
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def flow(h, name, role, target=""):
    return h.agent_type(name, plugin="flow",
                        options={"role": role, "target": target})


def start(h, trace=None, types=None, **worker):
    return h.start_bygated({
        "pool": {"size": 3},
        "worker": dict(FAST, **worker),
        "trace": dict({"flush_ms": 50}, **(trace or {})),
        "agent_types": types or [
            h.agent_type("echo"), h.agent_type("sleep"),
            h.agent_type("fail")]})


def finished(c, keys, s, m, t=20):
    return wait_until(lambda: (lambda r: r if r.get("status") in TERMINAL
                               else None)(pc.record(c, keys, s, m) or {}),
                      t, what="%s finished" % m)


def spans(c, keys, trace_id):
    return [json.loads(x) for x in
            c.call("LRANGE", keys.trace_spans(trace_id), 0, -1)]


def wait_spans(c, keys, trace_id, pred, what):
    return wait_until(lambda: (lambda s: s if pred(s) else None)(
        spans(c, keys, trace_id)), 15, what=what)


def ops_of(sp):
    return sorted(x["operation"] for x in sp)


def send(c, keys, s, agent, content, **kw):
    trace_id = uuid.uuid4().hex
    mid, eid = pc.send(c, keys, s, agent, content, trace_id=trace_id, **kw)
    return mid, eid, trace_id


def test_a_task_writes_its_worker_execute_span(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid, tid = send(c, h.keys, "s-t1", "echo", "hello")
    finished(c, h.keys, "s-t1", mid)
    (sp,) = wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    assert sp["span_id"] == eid + ":worker.execute"
    assert sp["parent_span_id"] == mid + ":client.dispatch"
    assert (sp["operation"], sp["component"], sp["source"]) == (
        "worker.execute", "worker", "redis")
    assert (sp["trace_id"], sp["session_id"], sp["execution_id"],
            sp["message_id"], sp["worker_id"], sp["target_agent_type"]) == (
        tid, "s-t1", eid, mid, w, "echo")
    assert sp["status"] == "COMPLETED" and sp["retryable"] is False
    assert sp["duration_ms"] == sp["end_ts"] - sp["start_ts"] >= 0
    assert sp["tokens"] == {} and sp["cost"] == {} and sp["metadata"] == {}
    assert (sp["route_policy"], sp["route_status"]) == (
        "FAIL_FAST", "DELIVER_NOW")  # the sender's, from the record
    for absent in ("error_type", "parent_message_id", "source_agent_type"):
        assert absent not in sp


def test_a_header_parent_span_id_is_the_execute_spans_parent(h):
    start(h)
    c = h.client()
    mid, eid, tid = send(c, h.keys, "s-t2", "echo", "hi",
                         metadata={"framework_parent_span_id": "p:x"})
    finished(c, h.keys, "s-t2", mid)
    (sp,) = wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    assert sp["parent_span_id"] == "p:x"


def test_the_trace_meta_holds_the_root_end_and_keys_have_the_ttl(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid, tid = send(c, h.keys, "s-t3", "echo", "hello")
    finished(c, h.keys, "s-t3", mid)
    meta = wait_until(lambda: (lambda m: m if m.get("end_ts") else None)(
        c.hgetall(h.keys.trace_meta(tid))), 15, what="the trace's end")
    (sp,) = spans(c, h.keys, tid)
    assert (meta["trace_id"], meta["session_id"], meta["status"]) == (
        tid, "s-t3", "COMPLETED")
    assert int(meta["start_ts"]) == sp["start_ts"]
    assert int(meta["updated_at"]) >= int(meta["end_ts"]) >= sp["start_ts"]
    assert json.loads(meta["metadata"]) == {}
    assert "output" not in meta  # echo has no reply_data (Python's None)
    for key in (h.keys.trace_meta(tid), h.keys.trace_spans(tid)):
        assert 890 <= c.call("TTL", key) <= 900


def test_the_indexes_hold_the_trace_scored_by_its_start(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid, tid = send(c, h.keys, "s-t4", "echo", "hello")
    finished(c, h.keys, "s-t4", mid)
    (sp,) = wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    for kind, ident in (("session", "s-t4"), ("worker", w),
                        ("agent", "echo")):
        key = h.keys.trace_index(kind, ident)
        score = wait_until(lambda: c.call("ZSCORE", key, tid), 10,
                           what="%s index" % kind)
        assert int(float(score)) == sp["start_ts"]
        assert 890 <= c.call("TTL", key) <= 900


def test_an_earlier_start_written_by_the_client_is_kept(h):
    start(h)
    c = h.client()
    trace_id = uuid.uuid4().hex
    c.call("HSET", h.keys.trace_meta(trace_id), "trace_id", trace_id,
           "status", "QUEUED", "start_ts", "1000", "root_agent_type", "echo")
    mid, _ = pc.send(c, h.keys, "s-t5", "echo", "x", trace_id=trace_id)
    finished(c, h.keys, "s-t5", mid)
    meta = wait_until(lambda: (lambda m: m if m.get("end_ts") else None)(
        c.hgetall(h.keys.trace_meta(trace_id))), 15, what="the end")
    assert meta["start_ts"] == "1000" and meta["root_agent_type"] == "echo"


def test_a_call_agent_chain_links_its_spans(h):
    start(h, types=[flow(h, "alpha", "caller", "beta"),
                    flow(h, "beta", "worker")])
    c = h.client()
    mid, eid, tid = send(c, h.keys, "s-chain", "alpha", "plan")
    finished(c, h.keys, "s-chain", mid)
    want = ["agent.return", "client.dispatch", "worker.execute",
            "worker.execute", "worker.execute"]
    sp = wait_spans(c, h.keys, tid, lambda s: ops_of(s) == want,
                    "the chain's spans")
    child = [r for r in (json.loads(v) for k, v in
                         c.hgetall(h.keys.registry("s-chain")).items()
                         if k.startswith("exec:"))
             if r["target_agent_type"] == "beta"][0]
    by_op = {}
    for x in sp:
        by_op.setdefault(x["operation"], []).append(x)
    (disp,) = by_op["client.dispatch"]
    assert disp["span_id"] == child["message_id"] + ":client.dispatch"
    assert disp["parent_span_id"] == eid + ":worker.execute"
    assert (disp["component"], disp["status"], disp["target_agent_type"],
            disp["source_agent_type"]) == (
        "agent_context", "COMPLETED", "beta", "alpha")
    beta = [x for x in by_op["worker.execute"]
            if x["execution_id"] == child["execution_id"]][0]
    assert beta["parent_span_id"] == disp["span_id"]
    (ret,) = by_op["agent.return"]
    assert ret["span_id"] == child["execution_id"] + ":agent.return"
    assert ret["parent_span_id"] == beta["span_id"]
    assert ret["target_agent_type"] == "alpha"
    alpha = [x for x in by_op["worker.execute"] if x["execution_id"] == eid]
    assert [x["status"] for x in alpha] == ["WAITING_AGENT", "COMPLETED"]
    assert alpha[1]["parent_span_id"] == ret["span_id"]  # the callback's
    meta = c.hgetall(h.keys.trace_meta(tid))
    assert meta["status"] == "COMPLETED"
    assert c.call("ZSCORE", h.keys.trace_index("agent", "beta"), tid)


def test_a_cancelled_root_ends_its_trace_cancelled(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid, tid = send(c, h.keys, "s-can", "sleep", "20000")
    wait_until(lambda: (pc.record(c, h.keys, "s-can", mid) or {}).get(
        "status") == "RUNNING", 15, what="running")
    bygate_json(h, "cancel", mid, "--session", "s-can", "--reason", "stop")
    finished(c, h.keys, "s-can", mid)
    sp = wait_spans(c, h.keys, tid, lambda s: "agent.cancel" in ops_of(s),
                    "the cancel span")
    (cancel,) = [x for x in sp if x["operation"] == "agent.cancel"]
    assert cancel["span_id"] == eid + ":agent.cancel"
    assert cancel["parent_span_id"] == eid + ":worker.execute"
    assert cancel["metadata"] == {"cancel_reason": "stop"}
    meta = wait_until(lambda: (lambda m: m if m.get("end_ts") else None)(
        c.hgetall(h.keys.trace_meta(tid))), 15, what="the end")
    assert meta["status"] == "CANCELLED"


def test_a_failed_root_ends_its_trace_failed_with_the_handlers_type(h):
    start(h)
    c = h.client()
    mid, eid, tid = send(c, h.keys, "s-fail", "fail", "x")
    rec = finished(c, h.keys, "s-fail", mid)
    assert rec["status"] == "FAILED"
    assert rec["error_type"] == "HandlerError" and rec["retryable"] is False
    (sp,) = wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    assert (sp["status"], sp["error_type"], sp["error_message"]) == (
        "FAILED", "HandlerError", "boom")
    meta = wait_until(lambda: (lambda m: m if m.get("end_ts") else None)(
        c.hgetall(h.keys.trace_meta(tid))), 15, what="the end")
    assert meta["status"] == "FAILED"
    assert json.loads(meta["metadata"]) == {"error": "boom"}
    assert json.loads(meta["output"]) == {"error": "boom"}  # reply_data


def no_trace_keys(c):
    return c.call("KEYS", "*trace*") == []


def test_sampling_zero_writes_nothing(h):
    start(h, trace={"sample_percent": 0})
    c = h.client()
    mid, _, _ = send(c, h.keys, "s-none", "echo", "x")
    finished(c, h.keys, "s-none", mid)
    # a second task after it: its finish comes after the first's flush
    mid2, _, _ = send(c, h.keys, "s-none", "echo", "y")
    finished(c, h.keys, "s-none", mid2)
    wait_until(lambda: c.call("XPENDING", h.keys.ctrl_agent_type("echo"),
                              "agent_engines")[0] == 0, 10, what="acked")
    assert no_trace_keys(c)


def test_disabled_tracing_writes_nothing(h):
    start(h, trace={"enabled": False})
    c = h.client()
    mid, _, _ = send(c, h.keys, "s-off", "echo", "x")
    finished(c, h.keys, "s-off", mid)
    assert no_trace_keys(c)


def monitor(h):
    """MONITOR on a connection of its own, read by a daemon thread: (the
    list its lines are appended to, the Event that stops the reading)."""
    m = h.client()
    assert m.call("MONITOR") == "OK"
    lines, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                lines.append(m._reader.read(True))
            except Exception:
                return
    threading.Thread(target=read, daemon=True).start()
    return lines, stop


def test_many_spans_of_a_trace_go_in_few_script_calls(h):
    """Batching: 20 tasks of one trace, flushed every second: their 20
    spans are written by a few script calls (one per trace per flush),
    each pushing all the spans it holds with one RPUSH, never a command
    per span."""
    start(h, trace={"flush_ms": 1000})
    c = h.client()
    lines, stop = monitor(h)
    trace_id = uuid.uuid4().hex
    mids = pc.send_many(c, h.keys, "s-batch", "echo", "x", 20,
                        trace_id=trace_id)
    for mid in mids:
        finished(c, h.keys, "s-batch", mid)
    wait_spans(c, h.keys, trace_id, lambda s: len(s) == 20, "20 spans")
    spans_key = h.keys.trace_spans(trace_id)
    wait_until(lambda: sum(x.count('"{') for x in lines
                           if '"RPUSH"' in x and spans_key in x) >= 20, 10,
               what="MONITOR lines of the 20 spans")
    stop.set()
    flushes = [x for x in lines if ("\"EVAL\"" in x or "\"EVALSHA\"" in x)
               and spans_key in x]
    pushes = [x for x in lines if '"RPUSH"' in x and spans_key in x]
    assert all("lua]" in x for x in pushes)  # inside the script calls
    assert 1 <= len(flushes) <= 4, len(flushes)
    assert len(pushes) == len(flushes)


def test_spans_of_many_traces_in_one_flush_all_land(h):
    """One flush holds several traces: they go in one script call (the
    first of the connection carries the script's text, the others its
    SHA-1), and every trace gets its span."""
    start(h, trace={"flush_ms": 1000})
    c = h.client()
    sent = [send(c, h.keys, "s-many", "echo", "x") for _ in range(10)]
    for mid, _, _ in sent:
        finished(c, h.keys, "s-many", mid)
    for mid, eid, tid in sent:
        (sp,) = wait_spans(c, h.keys, tid, lambda s: len(s) >= 1,
                           "the span of " + mid)
        assert sp["execution_id"] == eid
    assert c.call("ZCARD", h.keys.trace_index("session", "s-many")) == 10


def test_the_traces_of_one_flush_share_one_script_call(h):
    """Ten traces finished within one flush period are written by one or
    two script calls (a flush may fall between them), not one per trace;
    each trace's meta and spans still get their own TTL."""
    start(h, trace={"flush_ms": 1000})
    c = h.client()
    lines, stop = monitor(h)
    sent = [send(c, h.keys, "s-one-call", "echo", "x") for _ in range(10)]
    for mid, _, _ in sent:
        finished(c, h.keys, "s-one-call", mid)
    for _, _, tid in sent:
        wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    wait_until(lambda: sum(1 for x in lines if '"RPUSH"' in x
                           and "lua]" in x) >= 10, 10,
               what="MONITOR lines of the 10 spans")
    stop.set()
    calls = [x for x in lines if ('"EVAL"' in x or '"EVALSHA"' in x)
             and any(h.keys.trace_spans(t) in x for _, _, t in sent)]
    assert 1 <= len(calls) <= 2, len(calls)
    for _, _, tid in sent:
        assert 0 < c.call("TTL", h.keys.trace_spans(tid)) <= 900
        assert 0 < c.call("TTL", h.keys.trace_meta(tid)) <= 900


def test_the_reference_ttl_variable_sets_the_trace_ttl(h):
    h.start_bygated({"worker": dict(FAST), "trace": {"flush_ms": 50}},
                    env=h.env(BY_FRAMEWORK_TRACE_TTL_SECONDS="60"))
    c = h.client()
    mid, _, tid = send(c, h.keys, "s-ttl", "echo", "x")
    finished(c, h.keys, "s-ttl", mid)
    wait_spans(c, h.keys, tid, lambda s: len(s) >= 1, "a span")
    assert 0 < c.call("TTL", h.keys.trace_spans(tid)) <= 60
    assert 0 < c.call("TTL", h.keys.trace_meta(tid)) <= 60


def test_a_dispatch_group_writes_its_group_span(h):
    start(h, types=[flow(h, "fan", "fanout", "beta"),
                    flow(h, "beta", "worker")])
    c = h.client()
    mid, eid, tid = send(c, h.keys, "s-fan", "fan", "3")
    finished(c, h.keys, "s-fan", mid)
    sp = wait_spans(c, h.keys, tid,
                    lambda s: ops_of(s).count("agent.return") == 3,
                    "the group's spans")
    (group,) = [x for x in sp if x["operation"] == "agent.dispatch_group"]
    gid = group["metadata"]["task_group_id"]
    assert group["span_id"] == gid + ":agent.dispatch_group"
    assert group["parent_span_id"] == eid + ":worker.execute"
    assert group["metadata"] == {"task_group_id": gid, "task_count": 3,
                                 "wait_for_reply": True}
    assert (group["component"], group["status"],
            group["target_agent_type"]) == ("agent_context", "COMPLETED",
                                            "fan")
    assert "client.dispatch" not in ops_of(sp)  # a group's tasks have none
