"""Cancel fidelity and the dashboard counters (issue 11 item 4, WIRE 5.9,
6.10): every terminal path moves the per-worker counters from the status
the execution record actually had, so that once the work is done every
counter is back at zero except the terminal ones (and total_count); and a
cancelled execution's final record keeps what the client wrote into it
(cancel_requested, cancel_reason, the CANCELLING step of its timeline),
as the reference's mark_execution_finished re-reads the record.

The client's side is written twice over: by the bygate CLI (`bygate
cancel`) and as by-framework's Python cancel_task does (read-modify-write
of the record, WorkerRegistry._update_worker_execution_stats, then the
CANCEL_TASK on the worker's control stream)."""

import json
import time
import uuid

from harness import wait_until, timeout
from test_client import worker_key, bygate_json, ok
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300, "cancel_grace_ms": 300}
REASON = "user aborted"


def start(h, pool=2, sched=None, **worker):
    return h.start_bygated({
        "pool": {"size": pool},
        "sched": sched or {},
        "worker": dict(FAST, **worker),
        "agent_types": [
            h.agent_type("sleep"), h.agent_type("fail"),
            h.agent_type("slow", plugin="sleep", timeout_ms=300),
            h.agent_type("asker", plugin="flow",
                         options={"role": "asker"})]})


def now_ms():
    return int(time.time() * 1000)


def rec_of(c, keys, s, m):
    return pc.record(c, keys, s, m) or {}


def wait_status(c, keys, s, m, want, t=15):
    wait_until(lambda: rec_of(c, keys, s, m).get("status") == want, t,
               what="%s %s" % (m, want))
    return rec_of(c, keys, s, m)


def wait_running(c, keys, w, s, m):
    """RUNNING, and the counters of the RUNNING write are in (they follow
    the record on bygated's write pipeline)."""
    eid = wait_status(c, keys, s, m, "RUNNING")["execution_id"]
    wait_until(lambda: json.loads(c.call(
        "HGET", worker_key(keys, w, "active_snapshots"), eid) or "{}")
        .get("status") == "RUNNING", 5, what="the RUNNING write's counters")
    return eid


def counters(c, keys, w):
    st = c.hgetall(worker_key(keys, w, "status"))
    return {k: int(v) for k, v in st.items() if k.endswith("_count")}


def assert_settled(c, keys, w, **want):
    """Every counter is zero except `want` (the terminal ones and
    total_count), and nothing is left in the active index."""
    got = {k: v for k, v in counters(c, keys, w).items() if v != 0}
    assert got == want, got
    assert c.call("ZCARD", worker_key(keys, w, "active_execution_index")) \
        == 0
    assert c.call("HLEN", worker_key(keys, w, "active_snapshots")) == 0


def history(c, keys, w, eid):
    return json.loads(c.call("HGET", worker_key(keys, w,
                                                "history_snapshots"), eid))


def steps(rec):
    return [x["status"] for x in rec["timeline"]]


def assert_keeps_the_cancel(rec, c, keys, w, before):
    """The final record and its snapshot keep what the client wrote."""
    assert rec["cancel_requested"] is True and rec["cancel_reason"] == REASON
    assert steps(rec) == before + ["CANCELLING", "CANCELLED"]
    snap = history(c, keys, w, rec["execution_id"])
    assert (snap["status"], snap["cancel_requested"],
            snap["cancel_reason"]) == ("CANCELLED", True, REASON)


def python_cancel(c, keys, s, mid, send=True):
    """by-framework's GatewayClient.cancel_task for one node: record to
    CANCELLING (mark_execution_cancelling), the worker statistics of WIRE
    5.9 for that change, and the CANCEL_TASK to the record's worker."""
    reg = keys.registry(s)
    eid = c.call("HGET", reg, "msg_map:" + mid)
    rec = json.loads(c.call("HGET", reg, "exec:" + eid))
    old, w, t = rec["status"], rec["worker_id"], now_ms()
    rec.update(status="CANCELLING", cancel_requested=True,
               cancel_reason=REASON, updated_at=t)
    rec["timeline"].append({"status": "CANCELLING", "timestamp": t})
    raw = json.dumps(rec)
    c.call("HSET", reg, "exec:" + eid, raw)
    st = worker_key(keys, w, "status")
    c.pipeline([
        ("HINCRBY", st, old.lower() + "_count", -1),
        ("HINCRBY", st, "cancelling_count", 1),
        ("HSET", st, "last_updated_at", t),
        ("ZADD", worker_key(keys, w, "executions"), t, eid),
        ("HSET", worker_key(keys, w, "history_snapshots"), eid, raw),
        ("ZADD", worker_key(keys, w, "active_execution_index"), t, eid),
        ("HSET", worker_key(keys, w, "active_snapshots"), eid, raw)])
    if send:
        hdr = pc.header(s, rec["target_agent_type"],
                        message_id="msg-cancel-" + uuid.uuid4().hex[:8],
                        trace_id=rec["trace_id"], parent_message_id=mid)
        c.call("XADD", keys.ctrl_worker(w), "*", "data", json.dumps({
            "action_type": "CANCEL_TASK", "header": hdr,
            "body": {"target_message_id": mid, "target_execution_id": eid,
                     "target_worker_id": w, "reason": REASON,
                     "requested_by": "client",
                     "cancel_mode": "graceful"}}))
    return eid


# ---- the business statuses ------------------------------------------------

def test_completed_counts_once_and_leaves_nothing_running(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-ok", "sleep", "20")
    rec = wait_status(c, h.keys, "s-ok", mid, "COMPLETED")
    assert_settled(c, h.keys, w, total_count=1, completed_count=1)
    assert rec.get("cancel_requested", False) is False
    assert steps(rec) == ["QUEUED", "RUNNING", "COMPLETED"]


def test_starts_written_together_count_each_task_once(h):
    """The RUNNING writes of one loop turn share their dashboard commands
    (one HINCRBY per counter, one ZADD / HSET per index with every
    execution): six tasks started together count six, each with its
    RUNNING snapshot, and settle to six completed."""
    d = start(h, pool=6)
    c, w = h.client(), d.config["worker"]["id"]
    mids = pc.send_many(c, h.keys, "s-six", "sleep", "1500", 6)
    eids = [wait_running(c, h.keys, w, "s-six", m) for m in mids]
    got = counters(c, h.keys, w)
    assert (got.get("total_count"), got.get("running_count"),
            got.get("active_count")) == (6, 6, 6), got
    active = c.call("ZRANGE", worker_key(h.keys, w,
                                         "active_execution_index"), 0, -1)
    assert sorted(active) == sorted(eids)
    for e in eids:
        assert history(c, h.keys, w, e)["status"] == "RUNNING"
    for m in mids:
        wait_status(c, h.keys, "s-six", m, "COMPLETED")
    assert_settled(c, h.keys, w, total_count=6, completed_count=6)
    for e in eids:
        assert history(c, h.keys, w, e)["status"] == "COMPLETED"


def test_failed_counts_once_and_leaves_nothing_running(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, _ = pc.send(c, h.keys, "s-fail", "fail", "x")
    wait_status(c, h.keys, "s-fail", mid, "FAILED")
    assert_settled(c, h.keys, w, total_count=1, failed_count=1)


def test_timeout_fails_and_leaves_nothing_running(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, _ = pc.send(c, h.keys, "s-slow", "slow", "20000")
    rec = wait_status(c, h.keys, "s-slow", mid, "FAILED")
    assert rec["error_code"] == "TIMEOUT"
    assert_settled(c, h.keys, w, total_count=1, failed_count=1)


# ---- cancels --------------------------------------------------------------

def test_bygate_cancel_of_a_running_task_moves_cancelling_to_cancelled(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-cli", "sleep", "20000")
    wait_running(c, h.keys, w, "s-cli", mid)
    doc = bygate_json(h, "cancel", mid, "--session", "s-cli",
                      "--reason", REASON)
    assert doc["status"] == "CANCEL_REQUESTED"
    rec = wait_status(c, h.keys, "s-cli", mid, "CANCELLED")
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED", "RUNNING"])


def test_python_cancel_task_of_a_running_task_keeps_the_client_fields(h):
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-py", "sleep", "20000")
    wait_running(c, h.keys, w, "s-py", mid)
    python_cancel(c, h.keys, "s-py", mid)
    rec = wait_status(c, h.keys, "s-py", mid, "CANCELLED")
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED", "RUNNING"])


@timeout(90)
def test_seven_cancels_leave_every_counter_at_rest(h):
    """The issue's case (running -7, cancelling 7 before): four cancelled
    in their children, three while queued here behind them."""
    # without the ready set: the three wait in this worker's queue, their
    # records RUNNING (claimed)
    d = start(h, pool=4, sched={"window": 0}, fetch_count=4)
    c, w = h.client(), d.config["worker"]["id"]
    mids = [pc.send(c, h.keys, "s-7", "sleep", "20000")[0] for _ in range(7)]
    for m in mids:
        wait_running(c, h.keys, w, "s-7", m)
    for m in mids:
        ok(h.bygate("cancel", m, "--session", "s-7", "--reason", REASON))
    recs = [wait_status(c, h.keys, "s-7", m, "CANCELLED", t=30)
            for m in mids]
    assert_settled(c, h.keys, w, total_count=7, cancelled_count=7)
    for rec in recs:
        assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED", "RUNNING"])


def test_cancels_of_tasks_waiting_in_the_ready_set_leave_counters_at_rest(h):
    """Four cancelled in their children, three while parked in the fleet's
    ready set (docs/scheduling.md), their records still QUEUED: each ends
    CANCELLED unrun when a worker picks it."""
    # (no prefetch: a worker also picks its prefetch from the ready set)
    d = start(h, pool=4, sched={"window": 16}, fetch_count=0)
    c, w = h.client(), d.config["worker"]["id"]
    mids = [pc.send(c, h.keys, "s-7r", "sleep", "20000")[0]
            for _ in range(7)]
    for m in mids[:4]:
        wait_running(c, h.keys, w, "s-7r", m)
    for m in mids[4:]:
        assert rec_of(c, h.keys, "s-7r", m).get("status") == "QUEUED"
    for m in mids[4:] + mids[:4]:  # the parked first: none is picked yet
        ok(h.bygate("cancel", m, "--session", "s-7r", "--reason", REASON))
    recs = [wait_status(c, h.keys, "s-7r", m, "CANCELLED", t=30)
            for m in mids]
    assert_settled(c, h.keys, w, total_count=7, cancelled_count=7)
    for rec in recs[:4]:
        assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED", "RUNNING"])
    for rec in recs[4:]:
        assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED"])


def test_cancel_task_without_a_client_write_moves_running_to_cancelled(h):
    """A CANCEL_TASK nobody marked on the record: the counters move from
    RUNNING, and the record says it was cancelled and why, as the
    reference's worker marks it when the command arrives."""
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-raw", "sleep", "20000")
    wait_running(c, h.keys, w, "s-raw", mid)
    hdr = pc.header("s-raw", "sleep", parent_message_id=mid)
    c.call("XADD", h.keys.ctrl_worker(w), "*", "data", json.dumps({
        "action_type": "CANCEL_TASK", "header": hdr,
        "body": {"target_message_id": mid, "target_execution_id": eid,
                 "target_worker_id": w, "reason": REASON,
                 "requested_by": "client", "cancel_mode": "graceful"}}))
    rec = wait_status(c, h.keys, "s-raw", mid, "CANCELLED")
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert rec["cancel_requested"] is True and rec["cancel_reason"] == REASON
    assert steps(rec) == ["QUEUED", "RUNNING", "CANCELLED"]


def test_a_cancel_that_comes_too_late_still_moves_from_cancelling(h):
    """The client marked the record CANCELLING but the task ended before
    any CANCEL_TASK reached it (none is sent here): it ends COMPLETED, the
    counters move from CANCELLING, the record keeps the request."""
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-late", "sleep", "1500")
    wait_running(c, h.keys, w, "s-late", mid)
    python_cancel(c, h.keys, "s-late", mid, send=False)
    rec = wait_status(c, h.keys, "s-late", mid, "COMPLETED")
    assert_settled(c, h.keys, w, total_count=1, completed_count=1)
    assert rec["cancel_requested"] is True and rec["cancel_reason"] == REASON
    assert steps(rec) == ["QUEUED", "RUNNING", "CANCELLING", "COMPLETED"]


# ---- lazy cancels (WIRE 6.10: the record cancelled before its pickup) ----

def test_lazy_cancel_of_a_queued_execution(h):
    """A QUEUED execution the client marked CANCELLING (no worker, no
    CANCEL_TASK) ends CANCELLED unrun: first seen by this worker, counted
    once as cancelled; the record keeps the client's fields."""
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    cmd = pc.ask_command("s-lazy", "sleep", "50")
    eid, cmds = pc.send_commands(h.keys, cmd)
    rec = json.loads(cmds[0][3])
    t = rec["created_at"]
    rec.update(status="CANCELLING", cancel_requested=True,
               cancel_reason=REASON, updated_at=t)
    rec["timeline"].append({"status": "CANCELLING", "timestamp": t})
    cmds[0] = cmds[0][:3] + (json.dumps(rec),) + cmds[0][4:]
    c.pipeline(cmds)
    mid = cmd["header"]["message_id"]
    rec = wait_status(c, h.keys, "s-lazy", mid, "CANCELLED")
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED"])


def test_lazy_cancel_of_a_suspended_execution_on_its_resume(h):
    """WAITING_USER here, cancelled with bygate cancel: it rests as
    cancelling (active) until the user's RESUME, which ends it CANCELLED
    unrun; then only the terminal counters are left."""
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-ask", "asker", "trip")
    wait_status(c, h.keys, "s-ask", mid, "WAITING_USER")
    assert {k: v for k, v in counters(c, h.keys, w).items() if v} == {
        "total_count": 1, "active_count": 1, "waiting_user_count": 1}
    ok(h.bygate("cancel", mid, "--session", "s-ask", "--reason", REASON))
    assert {k: v for k, v in counters(c, h.keys, w).items() if v} == {
        "total_count": 1, "active_count": 1, "cancelling_count": 1}
    ok(h.bygate("reply", mid, "--session", "s-ask", "--agent-type", "asker",
                "--content", "Kyoto"))
    rec = wait_status(c, h.keys, "s-ask", mid, "CANCELLED")
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert_keeps_the_cancel(rec, c, h.keys, w,
                            ["QUEUED", "RUNNING", "WAITING_USER"])
    assert "answer: Kyoto" not in json.dumps(pc.events(c, h.keys, "s-ask"))


# ---- dead letters ---------------------------------------------------------

def test_a_dead_letter_with_a_record_counts_once_as_failed(h):
    """An entry refused at pickup (blank content) whose sender created the
    record: FAILED, first seen by this worker."""
    d = start(h)
    c, w = h.client(), d.config["worker"]["id"]
    mid, _ = pc.send(c, h.keys, "s-dl", "sleep", "")
    rec = wait_status(c, h.keys, "s-dl", mid, "FAILED")
    assert rec["failed_stage"] == "pickup"
    assert c.call("XLEN", h.keys.deadletter()) == 1
    assert_settled(c, h.keys, w, total_count=1, failed_count=1)


def test_a_poison_entry_this_worker_was_running_moves_running_to_failed(h):
    """An entry delivered past max_deliveries whose record this worker
    had written RUNNING (and counted) before it died."""
    c = h.client()
    w = "ghost"
    stream = h.keys.ctrl_agent_type("sleep")
    mid, eid = pc.send(c, h.keys, "s-poison", "sleep", "10")
    reg = h.keys.registry("s-poison")
    rec = json.loads(c.call("HGET", reg, "exec:" + eid))
    t = now_ms()
    rec.update(status="RUNNING", worker_id=w, started_at=t, updated_at=t)
    rec["timeline"].append({"status": "RUNNING", "timestamp": t})
    c.call("HSET", reg, "exec:" + eid, json.dumps(rec))
    st = worker_key(h.keys, w, "status")
    c.pipeline([("HINCRBY", st, "total_count", 1),
                ("HINCRBY", st, "running_count", 1),
                ("HINCRBY", st, "active_count", 1),
                ("ZADD", worker_key(h.keys, w, "active_execution_index"),
                 t, eid),
                ("HSET", worker_key(h.keys, w, "active_snapshots"), eid,
                 json.dumps(rec))])
    c.call("XGROUP", "CREATE", stream, "agent_engines", "0", "MKSTREAM")
    for i in range(3):  # three deliveries to a consumer that never acks
        c.call("XREADGROUP", "GROUP", "agent_engines", w, "COUNT", "1",
               "STREAMS", stream, ">" if i == 0 else "0")
    d = h.bygated({"pool": {"size": 1},
                   "worker": dict(FAST, max_deliveries=2),
                   "agent_types": [h.agent_type("sleep")]})
    d.config["worker"]["id"] = w
    d.start()
    rec = wait_status(c, h.keys, "s-poison", mid, "FAILED")
    assert rec["error_code"] == "max_deliveries"
    assert_settled(c, h.keys, w, total_count=1, failed_count=1)


# ---- the record read at the finish ----------------------------------------

def test_a_record_read_lost_with_the_connection_is_read_again(h):
    """The finish's read of the record is lost with the write connection
    (fault point finish.record_read_lost): it is read again once the
    connection is back, and the cancel still ends as the client wrote it."""
    d = h.bygated({"pool": {"size": 1}, "worker": FAST,
                   "agent_types": [h.agent_type("sleep")]})
    d.env = dict(d.env, BYGATE_FAULT="finish.record_read_lost")
    d.start()
    c, w = h.client(), d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-lost", "sleep", "20000")
    wait_running(c, h.keys, w, "s-lost", mid)
    python_cancel(c, h.keys, "s-lost", mid)
    rec = wait_status(c, h.keys, "s-lost", mid, "CANCELLED")
    d.wait_log("record read reply lost", timeout=10)
    assert_settled(c, h.keys, w, total_count=1, cancelled_count=1)
    assert_keeps_the_cancel(rec, c, h.keys, w, ["QUEUED", "RUNNING"])
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    assert d.alive()


def test_starts_claimed_while_bygated_stops_still_count(h):
    """The RUNNING stats of a loop turn are batched (stats.c): claims
    whose replies arrive while bygated stops still write theirs, so that
    after a restart finishes the work every counter is at rest, none
    negative and total_count exact. SIGINT (fast stop) lands while 40
    entries are being read and claimed."""
    d = start(h, pool=4, sched={"window": 0})
    c, w = h.client(), d.config["worker"]["id"]
    mids = pc.send_many(c, h.keys, "s-stop", "sleep", "5", 40)
    d.interrupt()
    start(h, pool=4, sched={"window": 0}, id=w)  # the same worker again
    for m in mids:
        wait_status(c, h.keys, "s-stop", m, "COMPLETED", t=30)
    try:
        wait_until(lambda: counters(c, h.keys, w).get("completed_count")
                   == 40, 10, what="40 completed counted")
    except TimeoutError:
        raise AssertionError(counters(c, h.keys, w)) from None
    assert_settled(c, h.keys, w, total_count=40, completed_count=40)
