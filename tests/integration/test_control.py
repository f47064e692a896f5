"""The worker control stream (issue 4): cancel, reload, admin lifecycle and
the denylist, driven with the exact commands by-framework clients write."""

import json
import os
import shutil
import signal
import time
import uuid

from harness import (standalone_only, wait_until, timeout, wait_reads,
                     wait_task_end)
import pyclient as pc

FAST = {"lease_ttl_s": 2, "heartbeat_interval_ms": 300,
        "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
        "block_ms": 300, "cancel_grace_ms": 300}


def start(h, agent_types=None, **worker):
    w = dict(FAST, **worker)
    return h.start_bygated({"worker": w, "agent_types": agent_types or [
        h.agent_type("sleep"), h.agent_type("crash")]})


def control(c, keys, w, action, body, session="admin", **hdr):
    h = pc.header(session, hdr.pop("target", ""),
                  message_id=uuid.uuid4().hex, **hdr)
    c.call("XADD", keys.ctrl_worker(w), "*", "data",
           json.dumps({"action_type": action, "header": h, "body": body}))


def cancel(c, keys, w, mid, eid, session, mode="graceful"):
    control(c, keys, w, "CANCEL_TASK",
            {"target_message_id": mid, "target_execution_id": eid,
             "target_worker_id": w, "reason": "user aborted",
             "requested_by": "client", "cancel_mode": mode},
            session=session)


def status(c, keys, s, m):
    return (pc.record(c, keys, s, m) or {}).get("status")


def ends(c, keys, s, m):
    return [e for e in pc.events(c, keys, s) if e["message_id"] == m and
            e["event_type"] == "appStreamResponse"]


def test_graceful_cancel_reaches_the_handler_and_ends_cancelled(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-c1", "sleep", "20000")
    wait_until(lambda: status(c, h.keys, "s-c1", mid) == "RUNNING", 10,
               what="running")
    kids = set(d.child_pids())
    cancel(c, h.keys, w, mid, eid, "s-c1")
    wait_until(lambda: status(c, h.keys, "s-c1", mid) == "CANCELLED", 10,
               what="cancelled")
    assert len(ends(c, h.keys, "s-c1", mid)) == 1
    # cooperative: the sleep handler saw the flag, its child survived
    wait_task_end(d, mid)
    time.sleep(0.5)  # past cancel_grace_ms (300): room for a wrong SIGTERM
    assert set(d.child_pids()) == kids
    assert "SIGTERM" not in d.log_text()
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


def test_force_cancel_kills_a_handler_that_ignores_signals(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-c2", "crash", "hang")
    wait_until(lambda: status(c, h.keys, "s-c2", mid) == "RUNNING", 10,
               what="running")
    cancel(c, h.keys, w, mid, eid, "s-c2", mode="force")
    wait_until(lambda: status(c, h.keys, "s-c2", mid) == "CANCELLED", 10,
               what="cancelled")
    assert len(ends(c, h.keys, "s-c2", mid)) == 1


def test_graceful_cancel_escalates_to_sigkill_for_a_deaf_handler(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    mid, eid = pc.send(c, h.keys, "s-c3", "crash", "hang")
    # in its child, not only claimed RUNNING: a cancel that finds it still
    # queued ends it unrun, with no signal to escalate (seen under ASan)
    wait_until(lambda: any("task started" in l and "msg=%s " % mid in l
                           for l in d.log_text().splitlines()), 10,
               what="the task handed to a child")
    cancel(c, h.keys, w, mid, eid, "s-c3")
    wait_until(lambda: status(c, h.keys, "s-c3", mid) == "CANCELLED", 10,
               what="cancelled")
    log = d.log_text()
    assert "SIGTERM" in log and "SIGKILL" in log


def test_a_queued_execution_with_cancel_requested_ends_cancelled_unrun(h):
    d = start(h)
    c = h.client()
    cmd = pc.ask_command("s-c4", "sleep", "50")
    eid, cmds = pc.send_commands(h.keys, cmd)
    rec = json.loads(cmds[0][3])
    rec.update(status="CANCELLING", cancel_requested=True,
               cancel_reason="user aborted")
    cmds[0] = cmds[0][:3] + (json.dumps(rec),) + cmds[0][4:]
    c.pipeline(cmds)
    mid = cmd["header"]["message_id"]
    wait_until(lambda: status(c, h.keys, "s-c4", mid) == "CANCELLED", 10,
               what="cancelled")
    r = pc.record(c, h.keys, "s-c4", mid)
    assert "RUNNING" not in [t["status"] for t in r["timeline"]]
    evs = [e for e in pc.events(c, h.keys, "s-c4") if e["message_id"] == mid]
    assert [e["event_type"] for e in evs] == ["appStreamResponse"]


def callback_case(h, parent_cancelled):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    parent_mid = pc.new_id("msg-")
    parent = pc.ask_command("s-c5", "planner", "plan", message_id=parent_mid)
    peid, pcmds = pc.send_commands(h.keys, parent)
    prec = json.loads(pcmds[0][3])
    prec.update(status="WAITING_AGENT", cancel_requested=parent_cancelled)
    c.call("HSET", h.keys.registry("s-c5"), "exec:" + peid,
           json.dumps(prec), "msg_map:" + parent_mid, peid)
    child = pc.ask_command("s-c5", "sleep", "20000",
                           source_agent_type="planner",
                           parent_message_id=parent_mid)
    child["body"]["wait_for_reply"] = True
    ceid, ccmds = pc.send_commands(h.keys, child)
    c.pipeline(ccmds)
    cmid = child["header"]["message_id"]
    wait_until(lambda: status(c, h.keys, "s-c5", cmid) == "RUNNING", 10,
               what="child running")
    cancel(c, h.keys, w, cmid, ceid, "s-c5")
    wait_until(lambda: status(c, h.keys, "s-c5", cmid) == "CANCELLED", 10,
               what="child cancelled")
    # everything bygated writes for the child (a callback or not) is in
    wait_task_end(d, cmid)
    back = c.stream_data(h.keys.ctrl_agent_type("planner"))
    resumes = [x for x in back if x["action_type"] == "RESUME"]
    # a sub-agent never closes the user's stream
    assert ends(c, h.keys, "s-c5", cmid) == []
    return resumes, parent_mid, cmid


def test_a_cancelled_sub_agent_calls_back_cancelled(h):
    resumes, parent_mid, cmid = callback_case(h, False)
    assert len(resumes) == 1
    r = resumes[0]
    assert r["header"]["message_id"] == parent_mid
    assert r["header"]["parent_message_id"] == cmid
    assert r["body"]["status"] == "CANCELLED"
    assert r["body"]["reply_data"] == {"reason": "user aborted"}


def test_no_callback_when_the_caller_asked_for_the_cancel(h):
    resumes, _, _ = callback_case(h, True)
    assert resumes == []


@standalone_only("the v1 key layout, written out")
@timeout(90)
def test_reload_recycles_children_acks_and_loads_the_changed_plugin(h):
    plug = h.tmp / "agent.so"
    shutil.copy(h.plugin("echo"), plug)
    d = h.start_bygated({"worker": dict(FAST), "pool": {"size": 2},
                         "agent_types": [{"name": "agent", "handler": "plugin",
                                          "plugin": str(plug)}]})
    c = h.client()
    w = d.config["worker"]["id"]
    m1, _ = pc.send(c, h.keys, "s-r", "agent", "hello there")
    wait_until(lambda: status(c, h.keys, "s-r", m1) == "COMPLETED", 10,
               what="first task")
    before = set(d.child_pids())
    tmp = h.tmp / "agent.so.new"
    shutil.copy(h.plugin("noop"), tmp)
    os.replace(tmp, plug)  # a new file at the same path
    busy = [pc.send(c, h.keys, "s-r", "agent", "during %d" % i)[0]
            for i in range(20)]
    control(c, h.keys, w, "RELOAD_PLUGINS",
            {"reload_id": "reload-1a2b3c4d", "reason": "new prompts"},
            session="reload:agent", target="agent")
    ack_key = "byai_gateway:plugin_reload:reload-1a2b3c4d:ack"
    acks = wait_until(lambda: c.stream_data(ack_key), 20, what="reload ack")
    assert acks[0] == {"reload_id": "reload-1a2b3c4d", "worker_id": w,
                       "status": "success", "reason": "new prompts",
                       "version_before": 1, "version_after": 2, "error": ""}
    assert not before & set(d.child_pids())
    for m in busy:
        wait_until(lambda: status(c, h.keys, "s-r", m) == "COMPLETED", 20,
                   what="tasks during the recycle")
    m2, _ = pc.send(c, h.keys, "s-r", "agent", "after reload")
    wait_until(lambda: status(c, h.keys, "s-r", m2) == "COMPLETED", 10,
               what="task after reload")
    final = [e for e in pc.events(c, h.keys, "s-r") if e["message_id"] == m2
             and e["event_type"] == "finalAnswer"][0]
    assert final["data"]["choices"][0]["delta"]["content"] == "ok"  # noop
    # idempotent per reload id: the same outcome again, no new recycle
    kids = set(d.child_pids())
    control(c, h.keys, w, "RELOAD_PLUGINS",
            {"reload_id": "reload-1a2b3c4d", "reason": "new prompts"},
            session="reload:agent", target="agent")
    wait_until(lambda: len(c.stream_data(ack_key)) == 2, 10,
               what="second ack")
    assert c.stream_data(ack_key)[1]["version_after"] == 2
    assert set(d.child_pids()) == kids


def admin_hash(c, w, lifecycle):
    c.call("HSET", "byai_gateway:registry:worker:admin:" + w,
           "lifecycle", lifecycle, "reason", "test",
           "updated_at", int(time.time() * 1000))


@standalone_only("the v1 key layout, written out; commandstats of the one server")
@timeout(60)
def test_suspend_stops_consumption_and_resume_restarts_it(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    running, _ = pc.send(c, h.keys, "s-s", "sleep", "800")
    wait_until(lambda: status(c, h.keys, "s-s", running) == "RUNNING", 10,
               what="running")
    admin_hash(c, w, "suspended")
    control(c, h.keys, w, "SUSPEND_WORKER", {"reason": "maintenance"})
    d.wait_log("-> suspended", timeout=5)
    wait_reads(c, 2)  # the read in flight at the suspension is over
    waiting, _ = pc.send(c, h.keys, "s-s", "sleep", "1")
    wait_until(lambda: status(c, h.keys, "s-s", running) == "COMPLETED", 10,
               what="in-flight task finishes while suspended")
    wait_reads(c, 3)  # reads since `waiting` and the free child: not it
    assert status(c, h.keys, "s-s", waiting) == "QUEUED"
    members = "byai_gateway:registry:agent_type:workers:sleep"
    admin_hash(c, w, "active")
    control(c, h.keys, w, "RESUME_WORKER", {})
    wait_until(lambda: status(c, h.keys, "s-s", waiting) == "COMPLETED", 10,
               what="consumption resumed")
    wait_until(lambda: w in c.call("SMEMBERS", members), 5,
               what="member again")


@standalone_only("the v1 key layout, written out; commandstats of the one server")
def test_a_durable_suspension_is_honoured_at_start(h):
    c = h.client()
    w = "itest-suspended"
    admin_hash(c, w, "suspended")
    d = h.bygated({"worker": dict(FAST, id=w),
                   "agent_types": [h.agent_type("sleep")]})
    d.start()
    d.wait_log("-> suspended", timeout=5)
    mid, _ = pc.send(c, h.keys, "s-s2", "sleep", "1")
    wait_reads(c, 3)  # bygated reads (its worker stream), but not `mid`
    assert status(c, h.keys, "s-s2", mid) == "QUEUED"
    assert w not in c.call("SMEMBERS",
                           "byai_gateway:registry:agent_type:workers:sleep")


@standalone_only("the v1 key layout, written out")
def test_evict_drains_and_exits(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    mid, _ = pc.send(c, h.keys, "s-e", "sleep", "600")
    wait_until(lambda: status(c, h.keys, "s-e", mid) == "RUNNING", 10,
               what="running")
    admin_hash(c, w, "evicted")
    control(c, h.keys, w, "EVICT_WORKER", {"reason": "decommission",
                                           "force": False})
    d.wait_exit(20)
    assert d.returncode == 0
    assert status(c, h.keys, "s-e", mid) == "COMPLETED"
    assert pc.pending_count(c, h.keys.ctrl_worker(w)) == 0
    # restarted while still evicted: it stops again and says how to rejoin
    again = h.bygated(config=d.config)
    again.start(wait=False)
    again.wait_exit(20)
    assert again.returncode == 0
    assert "bygate allow-rejoin %s" % w in again.log_text()


@standalone_only("the v1 key layout, written out; commandstats of the one server")
def test_a_denied_agent_type_is_no_longer_read(h):
    d = start(h, agent_types=[h.agent_type("sleep"), h.agent_type("echo")])
    c = h.client()
    w = d.config["worker"]["id"]
    c.call("SADD", "byai_gateway:registry:agent_type:denied:sleep", w)
    c.call("SREM", "byai_gateway:registry:agent_type:workers:sleep", w)
    d.wait_log("sleep is denied", timeout=5)
    m_sleep, _ = pc.send(c, h.keys, "s-d", "sleep", "1")
    m_echo, _ = pc.send(c, h.keys, "s-d", "echo", "still served")
    wait_until(lambda: status(c, h.keys, "s-d", m_echo) == "COMPLETED", 10,
               what="echo still read")
    wait_reads(c, 3)  # reads after the one that found echo: not sleep
    assert status(c, h.keys, "s-d", m_sleep) == "QUEUED"
    assert w not in c.call("SMEMBERS",
                           "byai_gateway:registry:agent_type:workers:sleep")
    c.call("SREM", "byai_gateway:registry:agent_type:denied:sleep", w)
    wait_until(lambda: status(c, h.keys, "s-d", m_sleep) == "COMPLETED", 10,
               what="sleep read again after allow")


SNAPSHOT_KEYS = [
    "execution_id", "message_id", "session_id", "trace_id", "worker_id",
    "source_agent_type", "target_agent_type", "stream_name",
    "redis_message_id", "status", "created_at", "started_at", "finished_at",
    "updated_at", "parent_message_id", "cancel_requested", "cancel_reason",
    "route_policy", "route_status", "selected_agent_type",
    "availability_error_code", "availability_error", "error_type",
    "error_message", "error_code", "failed_stage", "retryable",
    "agent_configs_version", "agent_configs_snapshot_key",
    "agent_config_audit"]


@standalone_only("the v1 key layout, written out")
def test_dashboard_counters_and_snapshots_follow_wire_5_9(h):
    d = start(h)
    c = h.client()
    w = d.config["worker"]["id"]
    base = "byai_gateway:registry:worker:"
    done = [pc.send(c, h.keys, "s-dash", "sleep", "1")[0] for _ in range(3)]
    for m in done:
        wait_until(lambda: status(c, h.keys, "s-dash", m) == "COMPLETED",
                   10, what="done")
    long_mid, long_eid = pc.send(c, h.keys, "s-dash", "sleep", "3000")
    wait_until(lambda: status(c, h.keys, "s-dash", long_mid) == "RUNNING",
               10, what="running")
    # the stats follow the RUNNING record on the write pipeline: wait for
    # the active snapshot and the EXPIREs sent after it
    wait_until(lambda: c.call("HEXISTS", base + "active_snapshots:" + w,
                              long_eid) and
               all(c.call("TTL", base + k + ":" + w) > 0
                   for k in ("status", "executions", "active_execution_index",
                             "history_snapshots")), 5,
               what="the stats of the RUNNING write")
    st = c.hgetall(base + "status:" + w)
    assert st["total_count"] == "4" and st["completed_count"] == "3"
    assert st["running_count"] == "1" and st["active_count"] == "1"
    for k in ("last_updated_at", "last_started_at", "last_finished_at"):
        assert int(st[k]) > 0
    assert c.call("ZCARD", base + "executions:" + w) == 4
    assert c.call("ZRANGE", base + "active_execution_index:" + w, 0, -1) \
        == [long_eid]
    snap = json.loads(c.call("HGET", base + "active_snapshots:" + w,
                             long_eid))
    assert list(snap) == SNAPSHOT_KEYS
    assert snap["status"] == "RUNNING" and snap["worker_id"] == w
    hist = c.hgetall(base + "history_snapshots:" + w)
    assert len(hist) == 4
    for k in ("status", "executions", "active_execution_index",
              "history_snapshots"):
        ttl = c.call("TTL", base + k + ":" + w)
        assert 604000 < ttl <= 604800, (k, ttl)
    wait_until(lambda: status(c, h.keys, "s-dash", long_mid) == "COMPLETED",
               10, what="long done")
    st = c.hgetall(base + "status:" + w)
    assert st["completed_count"] == "4" and st["running_count"] == "0"
    assert st["active_count"] == "0"
    assert c.call("ZCARD", base + "active_execution_index:" + w) == 0
    assert c.call("HLEN", base + "active_snapshots:" + w) == 0
    last = json.loads(c.call("HGET", base + "history_snapshots:" + w,
                             long_eid))
    assert list(last) == SNAPSHOT_KEYS and last["status"] == "COMPLETED"
    assert last["finished_at"] >= last["started_at"] > 0


@timeout(60)
def test_sighup_keeps_the_old_config_on_error_and_applies_a_valid_change(h):
    d = start(h)
    c = h.client()
    kids = set(d.child_pids())
    good = open(d.config_path).read()
    with open(d.config_path, "w") as f:
        f.write(good + "\nbroken = ;\n")
    d.signal(signal.SIGHUP)
    d.wait_log("keeping the running configuration", timeout=5)
    m1, _ = pc.send(c, h.keys, "s-hup", "sleep", "1")
    wait_until(lambda: status(c, h.keys, "s-hup", m1) == "COMPLETED", 10,
               what="still serving")
    assert set(d.child_pids()) == kids
    with open(d.config_path, "w") as f:
        f.write(good.replace('level = "debug"', 'level = "info"'))
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded", timeout=5)
    wait_until(lambda: not kids & set(d.child_pids()) and
               len(d.child_pids()) == len(kids), 15,
               what="children recycled")
    m2, _ = pc.send(c, h.keys, "s-hup", "sleep", "1")
    wait_until(lambda: status(c, h.keys, "s-hup", m2) == "COMPLETED", 10,
               what="serving after reload")
    mark = len(d.log_text())
    m3, _ = pc.send(c, h.keys, "s-hup", "sleep", "1")
    wait_until(lambda: status(c, h.keys, "s-hup", m3) == "COMPLETED", 10,
               what="served")
    assert "debug" not in d.log_text()[mark:]  # the new level applies


@timeout(60)
def test_sighup_moves_the_log_to_a_file_and_back_to_stderr(h):
    d = start(h)
    other = os.path.join(str(h.tmp), "other.log")
    d.config.setdefault("log", {})["file"] = other
    d.write_config()
    mark = d.log_mark()
    d.signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(other) and
               "configuration reloaded" in open(other).read(), 10,
               what="the reload logged in log.file")
    d.config["log"]["file"] = ""
    d.write_config()
    d.signal(signal.SIGHUP)
    # log.file = "" is stderr again (bygated.log collects it here)
    d.wait_log("configuration reloaded", timeout=10)
    assert "configuration reloaded" in d.log_text(since=mark)
    assert open(other).read().count("configuration reloaded") == 1


def test_a_locked_state_directory_is_named_on_one_line(h):
    d = start(h)
    d2 = h.bygated(config=d.config)
    d2.start(wait=False)
    d2.wait_exit(10)
    line = [l for l in d2.log_text().splitlines() if "in use by" in l]
    assert len(line) == 1 and line[0].endswith("refusing to start"), line
    assert "(pid %d)" % d.pid in line[0]
    d.stop()
