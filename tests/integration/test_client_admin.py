"""bygate cancel / cancel-session (WIRE 6.10), workers and workers info
(5.1-5.9), suspend / resume / evict / allow-rejoin / deny / allow (5.5,
5.6) and reload (8.1): the records, sets, hashes and control-stream
entries each writes, checked against the Python client's layout."""

import json
import re
import time

from harness import timeout, wait_until
import pyclient as pc
from test_client import (fake_worker, worker_key, admin_workers_key,
                         reload_ack_stream, bygate_json, ok)

S = "s-tree"
HEX32 = re.compile(r"[0-9a-f]{32}")


def put_record(h, exec_id, mid, status, parent="", worker="", session=S,
               agent="planner", **extra):
    rec = {"execution_id": exec_id, "message_id": mid, "session_id": session,
           "trace_id": "trace-" + exec_id, "parent_message_id": parent,
           "source_agent_type": "client", "target_agent_type": agent,
           "stream_name": h.keys.ctrl_agent_type(agent), "status": status,
           "worker_id": worker, "cancel_requested": False,
           "cancel_reason": "", "created_at": 1, "updated_at": 1,
           "started_at": 0, "finished_at": 0,
           "timeline": [{"status": status, "timestamp": 1}]}
    rec.update(extra)
    h.client().call("HSET", h.keys.registry(session), "exec:" + exec_id,
                    json.dumps(rec), "msg_map:" + mid, exec_id)
    return rec


def get_record(h, exec_id, session=S):
    return json.loads(h.client().call("HGET", h.keys.registry(session),
                                      "exec:" + exec_id))


def stream(h, key):
    return [json.loads(f["data"]) for _, f in h.client().xrange(key)]


def tree(h):
    """root R (running on w1) -> A (running on w2), B (completed on w1);
    B -> C (queued, no worker); D elsewhere in the session."""
    put_record(h, "exec-r", "msg-r", "RUNNING", worker="w1")
    put_record(h, "exec-a", "msg-a", "RUNNING", parent="msg-r", worker="w2",
               agent="researcher")
    put_record(h, "exec-b", "msg-b", "COMPLETED", parent="msg-r",
               worker="w1", finished_at=5)
    put_record(h, "exec-c", "msg-c", "QUEUED", parent="msg-b")
    put_record(h, "exec-d", "msg-d", "RUNNING", worker="w1")


# ---- cancel ------------------------------------------------------------

def test_cancel_of_an_unknown_message_is_not_found(h):
    doc = bygate_json(h, "cancel", "msg-x", "--session", S, code=1)
    assert doc["status"] == "NOT_FOUND" and doc["success"] is False
    assert doc["error"] == "execution not found for message_id=msg-x"
    put_record(h, "exec-o", "msg-o", "RUNNING", session="other")
    c = h.client()  # a msg_map pointing at another session's record
    c.call("HSET", h.keys.registry(S), "msg_map:msg-o", "exec-o",
           "exec:exec-o", json.dumps(get_record(h, "exec-o", "other")))
    doc = bygate_json(h, "cancel", "msg-o", "--session", S, code=1)
    assert doc["error"] == "session mismatch for message_id=msg-o"


def test_cancel_walks_the_task_tree_breadth_first(h):
    tree(h)
    doc = bygate_json(h, "cancel", "msg-r", "--session", S, "--reason",
                      "user aborted", "--mode", "force")
    assert doc["status"] == "CANCEL_REQUESTED" and doc["success"] is True
    assert (doc["cancelled_count"], doc["already_finished_count"]) == (3, 1)
    assert (doc["execution_id"], doc["worker_id"]) == ("exec-r", "w1")
    assert [n["execution_id"] for n in doc["cancelled"]] == [
        "exec-r", "exec-a", "exec-c"]
    for eid in ("exec-r", "exec-a", "exec-c"):
        rec = get_record(h, eid)
        assert rec["status"] == "CANCELLING"
        assert rec["cancel_requested"] is True
        assert rec["cancel_reason"] == "user aborted"
        assert rec["timeline"][-1]["status"] == "CANCELLING"
        assert rec["updated_at"] > 1 and rec["finished_at"] == 0
    b = get_record(h, "exec-b")  # terminal: flagged, status unchanged
    assert (b["status"], b["cancel_requested"], b["cancel_reason"]) == (
        "COMPLETED", True, "user aborted")
    assert len(b["timeline"]) == 1
    assert get_record(h, "exec-d")["status"] == "RUNNING"
    w1 = stream(h, h.keys.ctrl_worker("w1"))
    assert len(w1) == 1
    cmd = w1[0]
    assert re.fullmatch(r"msg-cancel-[0-9a-f]{8}", cmd["header"]["message_id"])
    assert cmd == {  # WIRE 2.5 cancel example
        "action_type": "CANCEL_TASK",
        "header": {"message_id": cmd["header"]["message_id"],
                   "session_id": S, "trace_id": "trace-exec-r",
                   "source_agent_type": "", "target_agent_type": "planner",
                   "parent_message_id": "msg-r", "task_group_id": "",
                   "user_code": "", "user_name": "", "metadata": {},
                   "trace_parent_span_id": "",
                   "langfuse_parent_observation_id": ""},
        "body": {"target_message_id": "msg-r", "target_execution_id": "exec-r",
                 "target_worker_id": "w1", "reason": "user aborted",
                 "requested_by": "client", "cancel_mode": "force"}}
    w2 = stream(h, h.keys.ctrl_worker("w2"))
    assert [(c["body"]["target_execution_id"],
             c["header"]["target_agent_type"]) for c in w2] == [
        ("exec-a", "researcher")]
    assert doc["cancelled"][2]["entry_id"] == ""  # exec-c: no worker


def test_cancel_updates_the_worker_statistics(h):
    tree(h)
    bygate_json(h, "cancel", "msg-r", "--session", S)
    c = h.client()
    stats = c.hgetall(worker_key(h.keys, "w1", "status"))
    assert stats["cancelling_count"] == "1" and stats["running_count"] == "-1"
    assert int(stats["last_finished_at"]) == 5  # exec-b, terminal
    active = c.call("ZRANGE", worker_key(h.keys, "w1",
                                         "active_execution_index"), 0, -1)
    assert active == ["exec-r"]
    snap = json.loads(c.call("HGET", worker_key(h.keys, "w1",
                                                "active_snapshots"), "exec-r"))
    assert (snap["status"], snap["cancel_requested"]) == ("CANCELLING", True)
    hist = json.loads(c.call("HGET", worker_key(h.keys, "w1",
                                                "history_snapshots"), "exec-b"))
    assert (hist["status"], hist["cancel_requested"]) == ("COMPLETED", True)
    assert 604000 < c.call("TTL", worker_key(h.keys, "w1", "status")) <= 604800
    assert c.call("EXISTS", worker_key(h.keys, "", "status")) == 0


def test_cancel_of_a_finished_tree_is_already_finished(h):
    put_record(h, "exec-r", "msg-r", "COMPLETED", worker="w1")
    put_record(h, "exec-a", "msg-a", "FAILED", parent="msg-r", worker="w1")
    doc = bygate_json(h, "cancel", "msg-r", "--session", S, code=1)
    assert doc["status"] == "ALREADY_FINISHED"
    assert doc["error"] == "execution already in terminal state: COMPLETED"
    assert all(get_record(h, e)["cancel_requested"] for e in ("exec-r",
                                                             "exec-a"))
    assert h.client().call("EXISTS", h.keys.ctrl_worker("w1")) == 0


def test_cancel_survives_cycles_and_malformed_records(h):
    put_record(h, "exec-a", "msg-a", "RUNNING", parent="msg-b")
    put_record(h, "exec-b", "msg-b", "RUNNING", parent="msg-a")
    c = h.client()
    reg = h.keys.registry(S)
    c.call("HSET", reg, "exec:bad1", "not json", "exec:bad2", "[1]",
           "exec:bad3", '{"parent_message_id": "msg-a", "status": 7}')
    doc = bygate_json(h, "cancel", "msg-a", "--session", S)
    assert doc["cancelled_count"] == 3  # a, b and the odd child of a
    assert c.call("HGET", reg, "exec:bad1") == "not json"


def test_cancel_session_cancels_every_open_execution(h):
    tree(h)
    doc = bygate_json(h, "cancel-session", S, "--reason", "logout")
    assert (doc["status"], doc["cancelled_count"],
            doc["already_finished_count"]) == ("CANCEL_REQUESTED", 4, 1)
    assert {get_record(h, e)["status"] for e in (
        "exec-r", "exec-a", "exec-c", "exec-d")} == {"CANCELLING"}
    assert len(stream(h, h.keys.ctrl_worker("w1"))) == 2  # r and d
    doc = bygate_json(h, "cancel-session", "s-empty", code=1)
    assert doc["status"] == "NOT_FOUND"
    out = ok(h.bygate("cancel-session", S))  # all CANCELLING: not terminal
    assert out.stdout.startswith("CANCEL_REQUESTED: 4")


@timeout(60)
def test_cancel_of_a_task_running_on_bygated_targets_its_worker(h):
    d = h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    doc = bygate_json(h, "send", "--agent-type", "sleep", "--session", S,
                      "--content", "1500")
    mid = doc["message_id"]

    def running():
        rec = get_record(h, doc["execution_id"])
        return rec if rec["status"] == "RUNNING" else None
    from harness import wait_until
    rec = wait_until(running, 10, 0.02, "the task to run")
    out = bygate_json(h, "cancel", mid, "--session", S)
    assert out["status"] == "CANCEL_REQUESTED"
    assert out["worker_id"] == rec["worker_id"] == h.worker_id
    cmds = stream(h, h.keys.ctrl_worker(h.worker_id))
    cancel = [c for c in cmds if c["action_type"] == "CANCEL_TASK"]
    assert [c["body"]["target_execution_id"] for c in cancel] == [
        doc["execution_id"]]
    assert d.alive


# ---- workers ---------------------------------------------------------------

def test_workers_lists_leases_known_workers_and_admin_workers(h):
    c = h.client()
    fake_worker(h, "b-type", worker="w1")
    c.call("SADD", h.keys.worker_agent_types("w1"), "a-type")
    c.call("HSET", worker_key(h.keys, "w1", "status"), "total_count", 5,
           "active_count", 2, "running_count", 2, "completed_count", 3,
           "last_updated_at", 77)
    fake_worker(h, "a-type", worker="w2", online=False)
    c.call("SREM", h.keys.known_workers(), "w2")  # found by SCAN only
    c.call("SADD", h.keys.known_workers(), "w3")
    c.call("SADD", admin_workers_key(h.keys), "w4")
    c.call("HSET", h.keys.worker_admin("w4"), "lifecycle", "suspended",
           "reason", "maintenance", "updated_at", 99)
    doc = bygate_json(h, "workers")
    assert [w["worker_id"] for w in doc] == ["w1", "w2", "w3", "w4"]
    w1, w2, w3, w4 = doc
    assert w1["online"] is True and w1["last_seen"] > 0
    assert w1["ip_address"] == "10.0.0.5" and w1["lease"]["token"] == "tok-w1"
    assert w1["agent_types"] == ["a-type", "b-type"]
    assert w1["lifecycle"] == "active"
    assert w1["counts"] == {"total": 5, "active": 2, "queued": 0,
                            "running": 2, "cancelling": 0, "completed": 3,
                            "failed": 0, "cancelled": 0}
    assert w1["last_updated_at"] == 77
    assert (w2["online"], w2["last_seen"]) == (False, 0)
    assert (w3["online"], w3["lease"], w3["agent_types"]) == (False, None, [])
    assert (w4["lifecycle"], w4["lifecycle_reason"],
            w4["lifecycle_updated_at"]) == ("suspended", "maintenance", 99)
    table = ok(h.bygate("workers")).stdout.splitlines()
    assert table[0].startswith("WORKER") and len(table) == 5
    assert "online" in table[1] and "a-type,b-type" in table[1]


def test_workers_info_shows_active_and_recent_executions(h):
    c = h.client()
    fake_worker(h, "planner", worker="w1")
    for i, status in enumerate(("RUNNING", "QUEUED")):
        snap = json.dumps({"execution_id": "exec-%d" % i, "status": status})
        c.call("ZADD", worker_key(h.keys, "w1", "active_execution_index"),
               100 + i, "exec-%d" % i)
        c.call("HSET", worker_key(h.keys, "w1", "active_snapshots"),
               "exec-%d" % i, snap)
        c.call("ZADD", worker_key(h.keys, "w1", "executions"), 100 + i,
               "exec-%d" % i)
        c.call("HSET", worker_key(h.keys, "w1", "history_snapshots"),
               "exec-%d" % i, snap)
    c.call("ZADD", worker_key(h.keys, "w1", "active_execution_index"), 200,
           "exec-gone")  # no snapshot: skipped
    doc = bygate_json(h, "workers", "info", "w1")
    assert doc["worker_id"] == "w1" and doc["online"] is True
    assert [e["execution_id"] for e in doc["active_executions"]] == [
        "exec-1", "exec-0"]
    assert [e["execution_id"] for e in doc["recent_executions"]] == [
        "exec-1", "exec-0"]
    text = ok(h.bygate("workers", "info", "w1")).stdout
    assert "active executions: 2" in text and "exec-1" in text
    out = h.bygate("workers", "info", "nobody")
    assert out.returncode == 1 and "nobody" in out.stderr


@timeout(60)
def test_workers_shows_a_live_bygated(h):
    h.start_bygated()
    doc = bygate_json(h, "workers")
    me = [w for w in doc if w["worker_id"] == h.worker_id]
    assert len(me) == 1
    assert me[0]["online"] is True and me[0]["agent_types"] == ["echo"]
    assert me[0]["lifecycle"] == "active"


# ---- administration -----------------------------------------------------------

def admin_header_ok(cmd):
    hdr = cmd["header"]
    assert HEX32.fullmatch(hdr["message_id"]) and HEX32.fullmatch(hdr["trace_id"])
    assert hdr == dict(hdr, session_id="admin", source_agent_type="",
                       target_agent_type="", parent_message_id="",
                       task_group_id="", user_code="", user_name="",
                       metadata={}, trace_parent_span_id="",
                       langfuse_parent_observation_id="")
    assert len(hdr) == 12


def two_type_worker(h):
    fake_worker(h, "a", worker="w1")
    fake_worker(h, "b", worker="w1")


def members(h, t):
    return h.client().call("SMEMBERS", h.keys.agent_type_members(t))


def test_suspend_takes_the_worker_out_of_routing_and_tells_it(h):
    two_type_worker(h)
    before = int(time.time() * 1000)
    doc = bygate_json(h, "suspend", "w1", "--reason", "maintenance")
    assert doc == dict(doc, worker_id="w1", operation="suspend",
                       lifecycle="suspended", agent_types=["a", "b"])
    c = h.client()
    admin = c.hgetall(h.keys.worker_admin("w1"))
    assert (admin["lifecycle"], admin["reason"]) == ("suspended", "maintenance")
    assert int(admin["updated_at"]) >= before
    assert c.call("SISMEMBER", admin_workers_key(h.keys), "w1") == 1
    assert members(h, "a") == [] and members(h, "b") == []
    cmds = stream(h, h.keys.ctrl_worker("w1"))
    assert [c["action_type"] for c in cmds] == ["SUSPEND_WORKER"]
    admin_header_ok(cmds[0])
    assert cmds[0]["body"] == {"reason": "maintenance"}
    assert h.client().xrange(h.keys.ctrl_worker("w1"))[0][0] == doc["entry_id"]


def test_resume_restores_routing_but_not_for_denied_types(h):
    two_type_worker(h)
    ok(h.bygate("suspend", "w1"))
    ok(h.bygate("deny", "a", "w1"))
    doc = bygate_json(h, "resume", "w1")
    assert doc["lifecycle"] == "active" and doc["agent_types"] == ["b"]
    assert members(h, "a") == [] and members(h, "b") == ["w1"]
    admin = h.client().hgetall(h.keys.worker_admin("w1"))
    assert (admin["lifecycle"], admin["reason"]) == ("active", "")
    cmd = stream(h, h.keys.ctrl_worker("w1"))[-1]
    assert cmd["action_type"] == "RESUME_WORKER" and cmd["body"] == {}
    admin_header_ok(cmd)


def test_evict_and_allow_rejoin(h):
    two_type_worker(h)
    doc = bygate_json(h, "evict", "w1", "--reason", "decommission", "--force")
    assert doc["lifecycle"] == "evicted"
    c = h.client()
    assert c.hgetall(h.keys.worker_admin("w1"))["lifecycle"] == "evicted"
    assert members(h, "a") == [] and members(h, "b") == []
    cmd = stream(h, h.keys.ctrl_worker("w1"))[-1]
    assert cmd["action_type"] == "EVICT_WORKER"
    assert cmd["body"] == {"reason": "decommission", "force": True}
    ok(h.bygate("evict", "w1"))
    assert stream(h, h.keys.ctrl_worker("w1"))[-1]["body"] == {
        "reason": "", "force": False}
    doc = bygate_json(h, "allow-rejoin", "w1")
    assert doc["entry_id"] == ""
    assert c.call("EXISTS", h.keys.worker_admin("w1")) == 0
    assert c.call("SISMEMBER", admin_workers_key(h.keys), "w1") == 0
    assert len(stream(h, h.keys.ctrl_worker("w1"))) == 2  # no push


def test_deny_and_allow_a_worker_for_an_agent_type(h):
    two_type_worker(h)
    c = h.client()
    ok(h.bygate("deny", "a", "w1"))
    assert c.call("SMEMBERS", h.keys.agent_type_denied("a")) == ["w1"]
    assert members(h, "a") == [] and members(h, "b") == ["w1"]
    doc = bygate_json(h, "allow", "a", "w1")
    assert doc["routing"] is True
    assert c.call("EXISTS", h.keys.agent_type_denied("a")) == 0
    assert members(h, "a") == ["w1"]
    ok(h.bygate("deny", "a", "w1"))
    ok(h.bygate("suspend", "w1"))
    assert bygate_json(h, "allow", "a", "w1")["routing"] is False
    assert members(h, "a") == []  # suspended: its resume restores it
    assert bygate_json(h, "allow", "zzz", "w1", "--force")["routing"] is False
    assert members(h, "zzz") == []  # not a declared type


def test_admin_commands_refuse_an_unknown_worker_unless_forced(h):
    two_type_worker(h)
    for cmd in (["suspend", "nosuch"], ["resume", "nosuch"],
                ["evict", "nosuch"], ["allow-rejoin", "nosuch"],
                ["deny", "a", "nosuch"], ["allow", "a", "nosuch"]):
        out = h.bygate(*cmd)
        assert out.returncode == 2, (cmd, out.stdout, out.stderr)
        assert "unknown worker 'nosuch'" in out.stderr, out.stderr
        assert "--force" in out.stderr and out.stdout == ""
    c = h.client()
    assert c.call("EXISTS", h.keys.worker_admin("nosuch")) == 0
    assert c.call("EXISTS", h.keys.agent_type_denied("a")) == 0
    assert c.call("EXISTS", h.keys.ctrl_worker("nosuch")) == 0
    # --force pre-registers: the admin state waits for the worker
    doc = bygate_json(h, "suspend", "nosuch", "--force")
    assert doc["lifecycle"] == "suspended"
    assert c.hgetall(h.keys.worker_admin("nosuch"))["lifecycle"] == \
        "suspended"
    ok(h.bygate("deny", "a", "w2", "--force"))
    assert c.call("SMEMBERS", h.keys.agent_type_denied("a")) == ["w2"]


def test_admin_commands_refuse_an_unknown_agent_type_unless_forced(h):
    two_type_worker(h)
    for cmd in ("deny", "allow"):
        out = h.bygate(cmd, "nosuchtype", "w1")
        assert out.returncode == 2, (cmd, out.stdout, out.stderr)
        assert "unknown agent type 'nosuchtype'" in out.stderr
    assert h.client().call(
        "EXISTS", h.keys.agent_type_denied("nosuchtype")) == 0
    out = h.bygate("reload", "nosuchtype")
    assert out.returncode == 2 and "unknown agent type" in out.stderr
    assert "--force" not in out.stderr
    ok(h.bygate("deny", "nosuchtype", "w1", "--force"))


def test_a_suspended_workers_types_stay_known(h):
    """Suspending empties the routing sets (Redis deletes empty sets); the
    worker's declared types still make the type known."""
    two_type_worker(h)
    ok(h.bygate("suspend", "w1"))
    assert members(h, "a") == []
    ok(h.bygate("deny", "a", "w1"))


# ---- reload -------------------------------------------------------------------

def reload_workers(h):
    fake_worker(h, "planner", worker="w1")
    fake_worker(h, "planner", worker="w2")
    fake_worker(h, "planner", worker="w3", online=False)


def ack(h, rid, worker, status="success", error=""):
    h.client().call("XADD", reload_ack_stream(h.keys, rid), "*", "data",
                    json.dumps({"reload_id": rid, "worker_id": worker,
                                "status": status, "reason": "new prompts",
                                "version_before": 1, "version_after": 2,
                                "error": error}))


def test_reload_sends_reload_plugins_to_each_online_worker(h):
    reload_workers(h)
    doc = bygate_json(h, "reload", "planner", "--reason", "new prompts")
    assert re.fullmatch(r"reload-[0-9a-f]{8}", doc["reload_id"])
    assert sorted(doc["worker_ids"]) == ["w1", "w2"]
    assert (doc["agent_type"], doc["dispatched_count"]) == ("planner", 2)
    for w in ("w1", "w2"):
        cmds = stream(h, h.keys.ctrl_worker(w))
        assert len(cmds) == 1
        hdr = cmds[0]["header"]
        assert re.fullmatch(r"msg-[0-9a-f]{8}", hdr["message_id"])
        assert HEX32.fullmatch(hdr["trace_id"])
        assert hdr == dict(hdr, session_id="reload:planner",
                           target_agent_type="planner", source_agent_type="",
                           parent_message_id="", metadata={},
                           trace_parent_span_id="")
        assert cmds[0]["action_type"] == "RELOAD_PLUGINS"
        assert cmds[0]["body"] == {"reload_id": doc["reload_id"],
                                   "reason": "new prompts"}
    assert h.client().call("EXISTS", h.keys.ctrl_worker("w3")) == 0


def test_reload_wait_collects_one_ack_per_worker(h):
    reload_workers(h)
    rid = "reload-1a2b3c4d"
    ack(h, rid, "stranger")
    ack(h, rid, "w1")
    ack(h, rid, "w1")  # a repeat counts once
    ack(h, rid, "w2")
    doc = bygate_json(h, "reload", "planner", "--reload-id", rid, "--wait",
                      "--timeout-ms", "5000")
    assert doc["complete"] is True
    assert sorted(a["worker_id"] for a in doc["acks"]) == ["w1", "w2"]
    text = ok(h.bygate("reload", "planner", "--reload-id", rid, "--wait"))
    assert "w1: success (version 1 -> 2)" in text.stdout


def test_reload_wait_fails_on_a_failure_ack_or_a_timeout(h):
    reload_workers(h)
    ack(h, "reload-f", "w1")
    ack(h, "reload-f", "w2", "failure", "bad plugin")
    doc = bygate_json(h, "reload", "planner", "--reload-id", "reload-f",
                      "--wait", code=1)
    assert doc["complete"] is True
    out = h.bygate("reload", "planner", "--reload-id", "reload-f", "--wait")
    assert out.returncode == 1 and "bad plugin" in out.stderr
    ack(h, "reload-t", "w1")
    t0 = time.monotonic()
    doc = bygate_json(h, "reload", "planner", "--reload-id", "reload-t",
                      "--wait", "--timeout-ms", "300", code=1)
    assert doc["complete"] is False and time.monotonic() - t0 >= 0.3
    assert [a["worker_id"] for a in doc["acks"]] == ["w1"]


def test_reload_with_no_online_worker_fails(h):
    fake_worker(h, "planner", worker="w3", online=False)
    doc = bygate_json(h, "reload", "planner", code=1)
    assert (doc["dispatched_count"], doc["worker_ids"]) == (0, [])


@timeout(60)
def test_workers_show_the_oldest_active_execution_and_the_lag(h):
    """A stalled worker shows: `bygate workers` gives the age of its oldest
    active execution and the consumer-group lag of each agent type."""
    h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    c = h.client()
    doc = bygate_json(h, "workers", "info", h.worker_id)
    assert doc["oldest_active_age_ms"] is None
    assert doc["lag"] == {"sleep": 0}
    pc.send(c, h.keys, "s-old", "sleep", "5000")
    wait_until(lambda: bygate_json(h, "workers", "info", h.worker_id)
               ["oldest_active_age_ms"] is not None, 10, 0.05,
               "the task to be active")
    time.sleep(0.3)  # the age grows while the task runs
    doc = bygate_json(h, "workers", "info", h.worker_id)
    assert doc["oldest_active_age_ms"] >= 300
    assert doc["lag"] == {"sleep": 0}
    text = ok(h.bygate("workers", "info", h.worker_id)).stdout
    assert "oldest active execution:" in text
    assert "consumer-group lag of sleep: 0" in text


def test_an_empty_result_says_so(h):
    out = h.bygate("workers")
    assert out.returncode == 0 and "(no worker known" in out.stdout
    out = h.bygate("status", "--session", "nosuch")
    assert out.returncode == 0
    assert "(no execution in session nosuch)" in out.stdout
    assert bygate_json(h, "workers") == []
