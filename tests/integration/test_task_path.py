"""The task path of bygated end to end (issue: bygated runs by-framework
tasks): real redis-server, real bygated and children, the reference
client layout. Each test states one behaviour a user would check."""

import json
import os
import signal
import time

from harness import (standalone_only, wait_until, pid_alive, timeout, info_count,
                     wait_task_end)
import pyclient as pc

EVENT_KEYS = {"trace_id", "session_id", "event_type", "source_agent_type",
              "message_id", "parent_message_id", "timestamp", "data",
              "state_msg", "artifact_url", "metadata"}
DATA_KEYS = {"id", "created", "model", "object", "contentType", "agentId",
             "orderId", "parentOrderId", "objectType", "status", "choices"}
DELTA_KEYS = {"role", "content", "function_call", "function_response",
              "tool_calls", "tool_responses"}


def finished(c, keys, session, mid):
    rec = pc.record(c, keys, session, mid)
    return rec if rec and rec["status"] in ("COMPLETED", "FAILED",
                                            "CANCELLED") else None


def wait_finished(c, keys, session, mid, t=20):
    return wait_until(lambda: finished(c, keys, session, mid), t,
                      what="execution %s to finish" % mid)


def ends(events, mid):
    return [e for e in events if e["event_type"] == "appStreamResponse"
            and e["message_id"] == mid]


def test_echo_task_streams_events_in_the_reference_layout(h):
    h.start_bygated()
    c = h.client()
    mid, eid = pc.send(c, h.keys, "sess-42", "echo", "Plan a trip to Kyoto")
    rec = wait_finished(c, h.keys, "sess-42", mid)
    evs = pc.events(c, h.keys, "sess-42")
    assert [e["event_type"] for e in evs][-2:] == ["finalAnswer",
                                                   "appStreamResponse"]
    text = "".join(e["data"]["choices"][0]["delta"]["content"]
                   for e in evs if e["event_type"] == "answerDelta")
    assert text == "Plan a trip to Kyoto"
    for e in evs:
        assert set(e) == EVENT_KEYS
        assert set(e["data"]) == DATA_KEYS
        assert set(e["data"]["choices"][0]["delta"]) == DELTA_KEYS
        assert e["message_id"] == mid and e["source_agent_type"] == "echo"
        assert e["data"]["orderId"] == mid and e["data"]["agentId"] == "echo"
        assert e["data"]["parentOrderId"] == ""
        assert len(e["data"]["id"]) == 32 and e["data"]["id"].isupper()
    final = evs[-2]["data"]["choices"][0]["delta"]
    assert final == {"role": "assistant", "content": "Plan a trip to Kyoto",
                     "function_call": None, "function_response": None,
                     "tool_calls": None, "tool_responses": None}
    assert rec["execution_id"] == eid and rec["status"] == "COMPLETED"
    assert rec["worker_id"] == h.worker_id
    assert [t["status"] for t in rec["timeline"]] == ["QUEUED", "RUNNING",
                                                      "COMPLETED"]
    assert rec["started_at"] > 0 and rec["finished_at"] >= rec["started_at"]
    assert rec["source_agent_type"] == "client"  # sender's fields kept
    ttl = c.call("TTL", h.keys.data_stream("sess-42"))
    assert 604000 < ttl <= 604800
    assert 604000 < c.call("TTL", h.keys.registry("sess-42")) <= 604800


def test_every_event_kind_matches_wire_3_7(h):
    h.start_bygated({"agent_types": [h.agent_type("planner",
                                                  plugin="emitall")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-kinds", "planner", "go")
    wait_finished(c, h.keys, "s-kinds", mid)
    evs = pc.events(c, h.keys, "s-kinds")
    got = [(e["event_type"], e["data"]["contentType"],
            e["data"]["choices"][0]["delta"]["role"],
            e["data"]["choices"][0]["delta"]["content"]) for e in evs]
    assert got[0] == ("answerDelta", "1002", "assistant", got[0][3])
    assert ("reasoningLogDelta", "3003", None, "A_CALLING_B") in got
    assert ("reasoningLogDelta", "3010", None,
            json.dumps([{"fileUrl": "https://files.example/report.pdf"}])) \
        in [(a, b, c_, json.dumps(json.loads(d))) if b == "3010" else
            (a, b, c_, d) for a, b, c_, d in got]
    sub = [e for e in evs if e["data"]["choices"][0]["delta"]["content"]
           == "step one"][0]
    assert sub["message_id"] != mid and sub["message_id"].startswith("msg-")
    assert sub["parent_message_id"] == mid
    assert got[-2] == ("finalAnswer", "1002", "assistant", "Itinerary ready")
    assert got[-1] == ("appStreamResponse", "1002", "assistant", "")


@timeout(180)
def test_1000_tasks_over_3_sessions_complete_once_in_order(h):
    h.start_bygated({"pool": {"size": 4}})
    c = h.client()
    sent = []
    cmds = []
    for i in range(1000):
        s = "bulk-%d" % (i % 3)
        cmd = pc.ask_command(s, "echo", "task number %d" % i)
        eid, cc = pc.send_commands(h.keys, cmd)
        cmds += cc
        sent.append((s, cmd["header"]["message_id"], eid))
    c.pipeline(cmds)
    stream = h.keys.ctrl_agent_type("echo")

    def all_done():
        done = 0
        for s in ("bulk-0", "bulk-1", "bulk-2"):
            regs = c.hgetall(h.keys.registry(s))
            done += sum(1 for k, v in regs.items() if k.startswith("exec:")
                        and json.loads(v)["status"] == "COMPLETED")
        return done == 1000
    wait_until(all_done, 120, interval=0.5, what="1000 tasks to complete")
    by_session = {s: pc.events(c, h.keys, s)
                  for s in ("bulk-0", "bulk-1", "bulk-2")}
    for s, mid, eid in sent:
        rec = pc.record(c, h.keys, s, mid)
        assert rec["execution_id"] == eid
        assert [t["status"] for t in rec["timeline"]] == [
            "QUEUED", "RUNNING", "COMPLETED"], rec
        assert rec["worker_id"] == h.worker_id
        mine = [e["event_type"] for e in by_session[s]
                if e["message_id"] == mid]
        assert mine.count("finalAnswer") == 1, (mid, mine)
        assert mine.count("appStreamResponse") == 1, (mid, mine)
        assert mine[-2:] == ["finalAnswer", "appStreamResponse"], mine
    assert pc.pending_count(c, stream) == 0


def test_finished_message_added_again_is_acked_not_run(h):
    d = h.start_bygated()
    c = h.client()
    cmd = pc.ask_command("s-replay", "echo", "once only")
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds)
    mid = cmd["header"]["message_id"]
    wait_finished(c, h.keys, "s-replay", mid)
    n_events = len(pc.events(c, h.keys, "s-replay"))
    stream = h.keys.ctrl_agent_type("echo")
    mark = d.log_mark()
    again = c.call("XADD", stream, "*", "data", json.dumps(cmd))

    def delivered_and_acked():
        g = dict(zip(*[iter(c.call("XINFO", "GROUPS", stream)[0])] * 2))
        return g["last-delivered-id"] == again and g["pending"] == 0
    wait_until(delivered_and_acked, 10, what="replay acked")
    # bygated is done with the replayed entry: nothing more comes for it
    wait_task_end(d, mid, since=mark)
    assert len(pc.events(c, h.keys, "s-replay")) == n_events
    rec = pc.record(c, h.keys, "s-replay", mid)
    assert [t["status"] for t in rec["timeline"]].count("RUNNING") == 1


def child_of(d):
    return wait_until(lambda: d.child_pids(), 10, what="child pids")


def test_child_killed_mid_task_fails_the_task_and_the_pool_recovers(h):
    d = h.start_bygated({"pool": {"size": 2},
                         "agent_types": [h.agent_type("sleep")]})
    c = h.client()
    before = sorted(child_of(d))
    assert len(before) == 2
    # Two long tasks: one per child, so any child is a busy one.
    m1, _ = pc.send(c, h.keys, "s-kill", "sleep", "2500")
    m2, _ = pc.send(c, h.keys, "s-kill", "sleep", "2500")
    for m in (m1, m2):
        wait_until(lambda: (pc.record(c, h.keys, "s-kill", m) or {})
                   .get("status") == "RUNNING", 10, what="tasks running")
    time.sleep(0.2)  # pacing only: both handlers into their sleep first
    os.kill(before[0], signal.SIGKILL)
    r1 = wait_finished(c, h.keys, "s-kill", m1)
    r2 = wait_finished(c, h.keys, "s-kill", m2)
    statuses = sorted([r1["status"], r2["status"]])
    assert statuses == ["COMPLETED", "FAILED"], (r1, r2)
    failed = r1 if r1["status"] == "FAILED" else r2
    assert "signal 9" in failed["error_message"], failed
    assert "pid %d" % before[0] in failed["error_message"], failed
    evs = pc.events(c, h.keys, "s-kill")
    assert len(ends(evs, m1)) == 1 and len(ends(evs, m2)) == 1
    assert d.alive()
    wait_until(lambda: len(d.child_pids()) == 2, 10, what="pool refilled")
    assert before[0] not in d.child_pids()
    m3, _ = pc.send(c, h.keys, "s-kill", "sleep", "5")
    assert wait_finished(c, h.keys, "s-kill", m3)["status"] == "COMPLETED"
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0


@standalone_only("CONFIG SET maxmemory on the one server; one EXECABORT per "
                 "finish (test_cluster_bygated has the cluster's case)")
def test_finish_is_atomic_when_redis_refuses_writes(h):
    d = h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    mid, _ = pc.send(c, h.keys, "s-oom", "sleep", "1500")
    wait_until(lambda: (pc.record(c, h.keys, "s-oom", mid) or {})
               .get("status") == "RUNNING", 10, what="task running")
    mark = d.log_mark()
    c.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
    c.call("CONFIG", "SET", "maxmemory", "1")
    # the task ends; its finish is refused and retried (only the finish is
    # a MULTI/EXEC: each refusal is one EXECABORT)
    d.wait_log("finish transaction refused", timeout=10, since=mark)
    wait_until(lambda: info_count(c, "errorstats", "errorstat_EXECABORT",
                                  "count") >= 3, 10,
               what="the finish refused twice more")
    assert pc.pending_count(c, stream) == 1
    rec = pc.record(c, h.keys, "s-oom", mid)
    assert rec["status"] == "RUNNING"
    assert ends(pc.events(c, h.keys, "s-oom"), mid) == []
    assert [e for e in pc.events(c, h.keys, "s-oom")
            if e["event_type"] == "finalAnswer"] == []
    c.call("CONFIG", "SET", "maxmemory", "0")
    rec = wait_finished(c, h.keys, "s-oom", mid, t=15)
    assert rec["status"] == "COMPLETED"
    evs = pc.events(c, h.keys, "s-oom")
    assert len(ends(evs, mid)) == 1
    assert [e["event_type"] for e in evs].count("finalAnswer") == 1
    assert pc.pending_count(c, stream) == 0


def deadletters(c, keys):
    return c.stream_data(keys.deadletter())


def test_malformed_entries_are_dead_lettered_and_valid_ones_complete(h):
    d = h.start_bygated()
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    good1, _ = pc.send(c, h.keys, "s-bad", "echo", "before")
    c.call("XADD", stream, "*", "payload", "no data field")
    c.call("XADD", stream, "*", "data", "{not json")
    bad = pc.ask_command("s-bad", "echo", "x")
    bad["action_type"] = "FLY_TO_MOON"
    c.call("XADD", stream, "*", "data", json.dumps(bad))
    nosession = pc.ask_command("s-bad", "echo", "x")
    del nosession["header"]["session_id"]
    c.call("XADD", stream, "*", "data", json.dumps(nosession))
    blank = pc.ask_command("s-bad", "echo", "   ")
    c.call("XADD", stream, "*", "data", json.dumps(blank))
    nomid = pc.ask_command("s-bad", "echo", "no message id")
    nomid["header"]["message_id"] = ""
    c.call("XADD", stream, "*", "data", json.dumps(nomid))
    good2, _ = pc.send(c, h.keys, "s-bad", "echo", "after")
    wait_finished(c, h.keys, "s-bad", good1)
    wait_finished(c, h.keys, "s-bad", good2)
    wait_until(lambda: len(deadletters(c, h.keys)) >= 5, 10,
               what="5 dead letters")
    dl = deadletters(c, h.keys)
    codes = sorted(x["error_code"] for x in dl)
    assert codes == sorted(["no_data", "invalid_json", "unknown_action",
                            "missing_header", "invalid_content"]), dl
    for x in dl:
        assert x["status"] == "FAILED" and x["stream"] == stream
        assert x["reason"] and x["entry_id"] and "delivery_count" in x
        assert x["target_agent_type"] is not None
    nodata = [x for x in dl if x["error_code"] == "no_data"][0]
    assert nodata.get("entry") is None
    # the entry without message_id ran under a generated one
    regs = c.hgetall(h.keys.registry("s-bad"))
    recs = [json.loads(v) for k, v in regs.items() if k.startswith("exec:")]
    gen = [r for r in recs if r["message_id"] not in (good1, good2)
           and r.get("status") == "COMPLETED"]
    assert len(gen) == 1 and gen[0]["message_id"].startswith("msg-")
    # blank content: the sender's record exists? no (hand-written entry):
    assert pc.pending_count(c, stream) == 0
    assert d.alive()


def test_stale_entry_is_dead_lettered_without_running(h):
    h.start_bygated()
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    cmd = pc.ask_command("s-stale", "echo", "from long ago")
    c.call("XADD", stream, "1000-0", "data", json.dumps(cmd))
    wait_until(lambda: deadletters(c, h.keys), 10, what="dead letter")
    assert deadletters(c, h.keys)[0]["error_code"] == "stale"
    assert pc.events(c, h.keys, "s-stale") == []
    assert pc.pending_count(c, stream) == 0


def test_child_inherits_only_fds_0_to_5(h):
    h.start_bygated({"agent_types": [h.agent_type("fdlist")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-fd", "fdlist", "list")
    rec = wait_finished(c, h.keys, "s-fd", mid)
    assert rec["status"] == "COMPLETED"
    final = [e for e in pc.events(c, h.keys, "s-fd")
             if e["event_type"] == "finalAnswer"][0]
    assert final["data"]["choices"][0]["delta"]["content"] == "0 1 2 3 4 5"


def test_large_results_travel_fragmented_never_truncated(h):
    h.start_bygated({"pool": {"ring_bytes": 65536},
                     "agent_types": [h.agent_type("big")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-big", "big", "1000000")
    rec = wait_finished(c, h.keys, "s-big", mid, t=30)
    assert rec["status"] == "COMPLETED"
    evs = pc.events(c, h.keys, "s-big")
    chunk = [e for e in evs if e["event_type"] == "answerDelta"][0]
    assert chunk["data"]["choices"][0]["delta"]["content"] == "x" * 1000000
    final = [e for e in evs if e["event_type"] == "finalAnswer"][0]
    assert len(final["data"]["choices"][0]["delta"]["content"]) == 1000000


def test_handler_failure_is_recorded_with_an_explanation(h):
    h.start_bygated({"agent_types": [h.agent_type("fail")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-fail", "fail", "go")
    rec = wait_finished(c, h.keys, "s-fail", mid)
    assert rec["status"] == "FAILED" and "boom" in rec["error_message"]
    assert len(ends(pc.events(c, h.keys, "s-fail"), mid)) == 1


def test_sigterm_drains_running_tasks_then_exits(h):
    d = h.start_bygated({"agent_types": [h.agent_type("sleep")]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-drain", "sleep", "800")
    wait_until(lambda: (pc.record(c, h.keys, "s-drain", mid) or {})
               .get("status") == "RUNNING", 10, what="task running")
    d.signal(signal.SIGTERM)
    d.wait_exit(15)
    assert d.returncode == 0
    assert pc.record(c, h.keys, "s-drain", mid)["status"] == "COMPLETED"
    assert pc.pending_count(c, h.keys.ctrl_agent_type("sleep")) == 0
    for p in d.leftovers:
        assert not pid_alive(p)


def test_config_check_accepts_good_and_rejects_broken_files(h):
    import subprocess
    good = h.tmp / "good.conf"
    good.write_text('redis = { port = 6399; };\nagent_types = ( { name = "echo"; '
                    'handler = "plugin"; plugin = "%s"; } );\n'
                    % h.plugin("echo"))
    r = subprocess.run([str(h.bin("bygated")), "-c", str(good), "-t"],
                       capture_output=True, text=True, env=h.env())
    assert r.returncode == 0, r.stderr
    bad = h.tmp / "bad.conf"
    bad.write_text('redis = { port = "six"; };\n')
    r = subprocess.run([str(h.bin("bygated")), "-c", str(bad), "-t"],
                       capture_output=True, text=True, env=h.env())
    assert r.returncode == 1
    assert "bad.conf:1" in r.stderr, r.stderr
