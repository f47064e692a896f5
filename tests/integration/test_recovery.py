"""Nothing lost, nothing run twice (issue 3): the LMDB journal, the registry
lease and PEL recovery, with kill -9 and deterministic fault points."""

import json
import os
import signal
import time

from harness import (standalone_only, wait_until, pid_alive, timeout,
                     wait_task_end)
import pyclient as pc

FAST = {"worker": {"lease_ttl_s": 2, "heartbeat_interval_ms": 500,
                   "reclaim_min_idle_ms": 4000, "reconcile_interval_ms": 1000,
                   "block_ms": 500}}


def cfg(h, **over):
    base = {"worker": dict(FAST["worker"]),
            "agent_types": [h.agent_type("sleep")]}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k].update(v)
        else:
            base[k] = v
    return base


terminal = pc.terminal
wait_terminal = pc.wait_terminal


def count(evs, mid, kind):
    return sum(1 for e in evs if e["message_id"] == mid
               and e["event_type"] == kind)


def assert_once(c, keys, s, m, status="COMPLETED"):
    rec = terminal(c, keys, s, m)
    assert rec and rec["status"] == status, rec
    tl = [t["status"] for t in rec["timeline"]]
    assert sum(1 for x in tl if x in ("COMPLETED", "FAILED")) == 1, tl
    evs = pc.events(c, keys, s)
    assert count(evs, m, "appStreamResponse") == 1, evs
    if status == "COMPLETED":
        assert count(evs, m, "finalAnswer") == 1


def restart(h, d):
    """A new bygated on the same config and state directory."""
    n = h.bygated(config=d.config_path if hasattr(d, "config_path")
                  else d.config)
    return n.start()


@timeout(90)
def test_kill_9_mid_task_the_restart_reruns_it_once(h):
    # by-framework's lease TTL: the restart must not wait it out
    # (the third task waits in this worker's queue, claimed RUNNING: no
    # ready set, which test_scheduling.py kills bygated under)
    d = h.start_bygated(cfg(h, worker={"lease_ttl_s": 30,
                                       "heartbeat_interval_ms": 5000,
                                       "reclaim_min_idle_ms": 60000},
                            sched={"window": 0}))
    c = h.client()
    mids = [pc.send(c, h.keys, "s-k9", "sleep", "1500")[0] for _ in range(3)]
    wait_until(lambda: all((pc.record(c, h.keys, "s-k9", m) or {})
                           .get("status") == "RUNNING" for m in mids), 10,
               what="tasks running")
    kids = d.child_pids()
    d.kill()
    wait_until(lambda: not any(pid_alive(p) for p in kids), 5,
               what="orphaned children to exit")
    d2 = restart(h, d)
    d2.wait_log("start-up reconcile done", timeout=10)
    for m in mids:
        wait_terminal(c, h.keys, "s-k9", m)
        assert_once(c, h.keys, "s-k9", m)
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    # the restart proven by the lock took its own lease at once
    assert "taken over at once" in d2.log_text()


def fault_case(h, point):
    c = h.client()
    conf = cfg(h)
    d = h.bygated(conf)
    d.env = dict(d.env, BYGATE_FAULT=point)
    d.start()
    mid, _ = pc.send(c, h.keys, "s-fault", "sleep", "50")
    d.wait_exit(20)
    assert d.returncode != 0  # died at the fault point (or dropped a reply)
    d2 = h.bygated(config=d.config)
    d2.start()
    wait_terminal(c, h.keys, "s-fault", mid)
    d2.wait_log("start-up reconcile done", timeout=10)
    # a graceful stop drains whatever d2 still had in flight for the entry
    # (a second run, a re-sent finish): all it would write is in Redis
    d2.stop()
    assert_once(c, h.keys, "s-fault", mid)
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


def test_crash_before_the_journal_write_recovers_once(h):
    fault_case(h, "finish.before_journal")


def test_crash_after_the_journal_write_before_exec_recovers_once(h):
    fault_case(h, "finish.after_journal")


def test_crash_after_exec_before_the_journal_delete_recovers_once(h):
    fault_case(h, "finish.after_exec")


DASHBOARD_KEYS = ("status", "executions", "active_execution_index",
                  "active_snapshots", "history_snapshots")


def dashboard_key(keys, worker, what):
    """registry:worker:<what>:<W> (v1) / registry:worker:{<W>}:<what>."""
    if keys.schema == "v1":
        return "byai_gateway:registry:worker:%s:%s" % (what, worker)
    return "byai_gateway:v2:registry:worker:{%s}:%s" % (worker, what)


@timeout(60)
def test_a_replayed_finish_leaves_the_dashboard_keys_it_writes_a_ttl(h):
    """The EXPIREs of the worker's dashboard keys (WIRE 5.9) are not in the
    journaled finish: they are added when a finish is sent. A finish
    replayed from the journal after a crash, into dashboard keys that are
    gone meanwhile, still leaves every key it writes with the 7-day TTL."""
    c = h.client()
    d = h.bygated(cfg(h))
    d.env = dict(d.env, BYGATE_FAULT="finish.after_journal")
    d.start()
    w = h.worker_id
    mid, _ = pc.send(c, h.keys, "s-replay-ttl", "sleep", "50")
    d.wait_exit(20)
    assert d.returncode != 0
    for what in DASHBOARD_KEYS:
        c.call("DEL", dashboard_key(h.keys, w, what))
    d2 = h.bygated(config=d.config)
    d2.start()
    wait_terminal(c, h.keys, "s-replay-ttl", mid)
    d2.wait_log("re-sending the journaled finish", timeout=10)
    assert_once(c, h.keys, "s-replay-ttl", mid)
    st = c.hgetall(dashboard_key(h.keys, w, "status"))
    assert st.get("completed_count") == "1", st
    for what in ("status", "executions", "history_snapshots"):
        ttl = c.call("TTL", dashboard_key(h.keys, w, what))
        assert 604000 < ttl <= 604800, (what, ttl)


def test_exec_reply_lost_with_the_connection_is_resolved_once(h):
    d = h.bygated(cfg(h))
    d.env = dict(d.env, BYGATE_FAULT="finish.exec_reply_lost")
    d.start()
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-lost", "sleep", "20")
    wait_terminal(c, h.keys, "s-lost", mid)
    d.wait_log("EXEC reply lost", timeout=10)
    # the unknown outcome is resolved and the task freed: nothing follows
    wait_task_end(d, mid)
    assert_once(c, h.keys, "s-lost", mid)
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    assert d.alive()


@timeout(120)
def test_a_dead_peers_entries_are_reclaimed_after_its_lease_expires(h):
    a = h.start_bygated(cfg(h, pool={"size": 2}))
    b = h.start_bygated(cfg(h, pool={"size": 2}))
    c = h.client()
    mids = [pc.send(c, h.keys, "s-peer", "sleep", "3000")[0]
            for _ in range(4)]
    wait_until(lambda: all((pc.record(c, h.keys, "s-peer", m) or {})
                           .get("status") == "RUNNING" for m in mids), 10,
               what="tasks running on both workers")
    owners = {pc.record(c, h.keys, "s-peer", m)["worker_id"] for m in mids}
    victim = a if a.config["worker"]["id"] in owners else b
    other = b if victim is a else a
    victim.kill_all()
    for m in mids:
        wait_terminal(c, h.keys, "s-peer", m, t=60)
        assert_once(c, h.keys, "s-peer", m)
    assert "reclaimed dead peer's entry" in other.log_text()
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


@timeout(60)
def test_a_long_task_on_a_live_worker_is_never_stolen(h):
    a = h.start_bygated(cfg(h, pool={"size": 1}))
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-long", "sleep", "9000")
    wait_until(lambda: (pc.record(c, h.keys, "s-long", mid) or {})
               .get("status") == "RUNNING", 10, what="running")
    b = h.start_bygated(cfg(h, pool={"size": 1}))
    rec = wait_terminal(c, h.keys, "s-long", mid, t=30)
    assert rec["worker_id"] == a.config["worker"]["id"]
    assert "reclaimed" not in b.log_text()
    assert_once(c, h.keys, "s-long", mid)


@timeout(60)
def test_a_second_bygated_with_the_same_worker_id_refuses_to_consume(h):
    conf = cfg(h, worker={"lease_wait_s": 3})
    a = h.start_bygated(conf)
    conf2 = json.loads(json.dumps(a.config))
    conf2["paths"] = h.config()["paths"]  # another state directory
    b = h.bygated(config=conf2)
    b.start(wait=False)
    b.wait_exit(20)
    assert b.returncode == 4, b.log_tail()
    assert "refusing to consume" in b.log_text()
    assert a.alive()
    # and one on the same state directory is refused by the lock
    c2 = h.bygated(config=a.config)
    c2.start(wait=False)
    c2.wait_exit(10)
    assert c2.returncode == 6, c2.log_tail()


@timeout(90)
def test_a_stopped_worker_whose_entries_were_reclaimed_does_not_finish_them(h):
    a = h.start_bygated(cfg(h, pool={"size": 1}))
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-stop", "sleep", "1500")
    wait_until(lambda: (pc.record(c, h.keys, "s-stop", mid) or {})
               .get("status") == "RUNNING", 10, what="running on a")
    kids = a.child_pids()
    a.signal(signal.SIGSTOP)
    for p in kids:
        os.kill(p, signal.SIGSTOP)
    try:
        b = h.start_bygated(cfg(h, pool={"size": 1}))
        wait_until(lambda: "reclaimed dead peer's entry" in b.log_text(),
                   40, what="b reclaims a's entry")
        rec = wait_terminal(c, h.keys, "s-stop", mid, t=30)
        assert rec["worker_id"] == b.config["worker"]["id"]
    finally:
        for p in kids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        a.signal(signal.SIGCONT)
    # a's child ends the task and a is done with it: finished again (the
    # bug) or dropped ("not finishing it here")
    wait_task_end(a, mid, timeout=20)
    assert_once(c, h.keys, "s-stop", mid)
    log = a.log_text()
    assert ("lease" in log and ("lapsed" in log or "lost" in log)), log[-2000:]
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


@timeout(90)
def test_a_poison_task_is_dead_lettered_and_does_not_block_others(h):
    d = h.start_bygated(cfg(h, pool={"size": 2}, agent_types=[
        h.agent_type("crash", max_attempts=3, retry_backoff_ms=50),
        h.agent_type("sleep")]))
    c = h.client()
    poison, _ = pc.send(c, h.keys, "s-poison", "crash", "kill")
    goods = [pc.send(c, h.keys, "s-poison", "sleep", "20")[0]
             for _ in range(5)]
    rec = wait_terminal(c, h.keys, "s-poison", poison, t=30)
    assert rec["status"] == "FAILED" and rec["error_code"] == "CHILD_DIED"
    for m in goods:
        assert wait_terminal(c, h.keys, "s-poison", m)["status"] == "COMPLETED"
    dl = c.stream_data(h.keys.deadletter())
    assert len(dl) == 1 and dl[0]["execution_id"] == rec["execution_id"], dl
    evs = pc.events(c, h.keys, "s-poison")
    retries = [e for e in evs if e["message_id"] == poison
               and e["data"]["choices"][0]["delta"]["content"]
               .startswith("RETRY")]
    assert len(retries) == 2, retries
    assert count(evs, poison, "appStreamResponse") == 1
    assert pc.pending_count(c, h.keys.ctrl_agent_type("crash")) == 0
    assert d.alive()


def test_entries_delivered_more_than_max_deliveries_are_dead_lettered(h):
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    conf = cfg(h, worker={"max_deliveries": 2})
    mid, _ = pc.send(c, h.keys, "s-md", "sleep", "10")
    c.call("XGROUP", "CREATE", stream, "agent_engines", "0", "MKSTREAM")
    for _ in range(3):  # three deliveries to a consumer that never acks
        c.call("XREADGROUP", "GROUP", "agent_engines",
               conf["worker"].get("id") or "ghost", "COUNT", "1",
               "STREAMS", stream, ">" if _ == 0 else "0")
    d = h.bygated(conf)
    # make the ghost deliveries ours: same worker id as the consumer above
    d.config["worker"]["id"] = "ghost"
    d.start()
    rec = wait_terminal(c, h.keys, "s-md", mid)
    assert rec["status"] == "FAILED" and rec["error_code"] == "max_deliveries"
    dl = c.stream_data(h.keys.deadletter())
    assert dl and dl[0]["error_code"] == "max_deliveries"
    assert dl[0]["delivery_count"] >= 3
    assert count(pc.events(c, h.keys, "s-md"), mid, "appStreamResponse") == 1
    assert pc.pending_count(c, stream) == 0


@standalone_only("SIGSTOP of the one server (test_cluster_bygated kills a master)")
@timeout(90)
def test_a_redis_outage_longer_than_the_lease_loses_and_duplicates_nothing(h):
    d = h.start_bygated(cfg(h, pool={"size": 2}))
    c = h.client()
    mids = [pc.send(c, h.keys, "s-out", "sleep", "600")[0] for _ in range(4)]
    wait_until(lambda: any((pc.record(c, h.keys, "s-out", m) or {})
                           .get("status") == "RUNNING" for m in mids), 10,
               what="tasks running")
    os.kill(h.redis.pid, signal.SIGSTOP)
    time.sleep(3.5)  # longer than lease_ttl_s: finishes are held (fencing)
    os.kill(h.redis.pid, signal.SIGCONT)
    for m in mids:
        wait_terminal(c, h.keys, "s-out", m, t=40)
        assert_once(c, h.keys, "s-out", m)
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    assert d.alive()


def test_a_crash_storm_opens_the_breaker_instead_of_fork_looping(h):
    d = h.start_bygated(cfg(h, pool={"size": 2, "crash_storm_deaths": 3,
                                     "crash_storm_window_ms": 10000,
                                     "crash_storm_pause_ms": 3000},
                            agent_types=[h.agent_type("crash"),
                                         h.agent_type("sleep")]))
    c = h.client()
    bad = [pc.send(c, h.keys, "s-storm", "crash", "abort")[0]
           for _ in range(4)]
    d.wait_log("crash storm", timeout=20)
    for m in bad:
        assert wait_terminal(c, h.keys, "s-storm", m, t=30)["status"] == \
            "FAILED"
    ok = pc.send(c, h.keys, "s-storm", "sleep", "5")[0]
    assert wait_terminal(c, h.keys, "s-storm", ok, t=30)["status"] == \
        "COMPLETED"
    assert d.alive()


def test_hostile_ids_never_touch_anything_outside_the_workspace_dir(h):
    box = h.tmp / "box"  # the workspace root's parent: must stay as it is
    (box / "ws").mkdir(parents=True)
    (box / "sibling").mkdir()
    d = h.start_bygated(cfg(h, paths={"workspace_dir": str(box / "ws")}))
    c = h.client()
    hostile = ["../../escape", "..", "a/b", "x\ny", "\u0001", "s" * 300]
    mids = []
    for sid in hostile:
        mids.append((sid, pc.send(c, h.keys, sid if "\n" not in sid
                                  else sid, "sleep", "1")[0]))
    users = ["../../u", "u/..", "..", "u\u0000x"]
    for u in users:
        mids.append(("s-user", pc.send(c, h.keys, "s-user", "sleep", "1",
                                       user_code=u)[0]))
    dl = []
    for sid, m in mids:
        rec = wait_until(lambda: terminal(c, h.keys, sid, m) or
                         [x for x in c.stream_data(h.keys.deadletter())
                          if m in (x.get("entry") or "")], 20,
                         what="hostile task %r ends" % (sid,))
        if isinstance(rec, dict):
            assert rec["status"] == "FAILED", rec
            assert rec["error_code"] in ("INVALID_ID", "invalid_id"), rec
        else:
            dl.append(rec)
    assert sorted(os.listdir(box)) == ["sibling", "ws"]
    assert os.listdir(box / "sibling") == []
    ws = d.config["paths"]["workspace_dir"]
    for dirpath, dirnames, filenames in os.walk(ws):
        for n in dirnames + filenames:
            full = os.path.realpath(os.path.join(dirpath, n))
            assert full.startswith(os.path.realpath(ws)), full
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


@standalone_only("the v1 key layout, written out")
def test_the_lease_and_membership_follow_wire_5_and_are_released(h):
    d = h.start_bygated(cfg(h, agent_types=[h.agent_type("sleep"),
                                            h.agent_type("echo")]))
    c = h.client()
    w = d.config["worker"]["id"]
    key = "byai_gateway:registry:worker:online:" + w
    lease = wait_until(lambda: (lambda v: v if v and json.loads(v)
                                ["last_seen"] > 0 else None)(
        c.call("GET", key)), 10, what="online lease")
    j = json.loads(lease)
    assert set(j) == {"version", "token", "last_seen", "ip_address"}
    assert j["version"] == 1 and len(j["token"]) == 32
    assert 0 < c.call("TTL", key) <= 2
    assert w in c.call("SMEMBERS", "byai_gateway:registry:workers")
    assert sorted(c.call("SMEMBERS", "byai_gateway:registry:worker:"
                         "agent_types:" + w)) == ["echo", "sleep"]
    for t in ("echo", "sleep"):
        assert w in c.call("SMEMBERS", "byai_gateway:registry:agent_type:"
                           "workers:" + t)
    d.stop()
    assert c.call("GET", key) is None
    assert w not in c.call("SMEMBERS", "byai_gateway:registry:workers")
    assert c.call("EXISTS", "byai_gateway:registry:worker:agent_types:"
                  + w) == 0
    for t in ("echo", "sleep"):
        assert w not in c.call("SMEMBERS", "byai_gateway:registry:"
                               "agent_type:workers:" + t)
