"""bygate queues, failed, retry and dlq (issue 15 item 3): the backlog as
XINFO counts it and as /metrics exports it, failed executions across
sessions and their retry as a new attempt of the same message, and the
dead-letter stream listed, shown, requeued once and purged."""

import json
import threading

from harness import command_calls, wait_until
from bglib import proc
import pyclient as pc
from bglib.keys import Keys
from test_client import bygate_json, ok
from test_http import FAST, start, metrics, sample, wait_reason

S = "s-q"


def xinfo_group(c, stream, group="agent_engines"):
    for g in c.call("XINFO", "GROUPS", stream):
        d = dict(zip(g[0::2], g[1::2]))
        if d["name"] == group:
            return d
    return None


def queue_of(h, agent):
    doc = bygate_json(h, "queues", "--agent-type", agent)
    assert [t["agent_type"] for t in doc["agent_types"]] == [agent]
    return doc["agent_types"][0]


def record(h, mid, session=S):
    return pc.record(h.client(), h.keys, session, mid) or {}


def wait_status(h, mid, status, session=S, t=20):
    wait_until(lambda: record(h, mid, session).get("status") == status, t,
               what="%s to be %s" % (mid, status))
    return record(h, mid, session)


# ---- bygate queues and /metrics -----------------------------------------

def agree(h, d, stream, agent, seen):
    """queues, /metrics and XINFO GROUPS show the same lag and pending
    (and XINFO did not change while the other two were read)."""
    c = h.client()
    x = xinfo_group(c, stream)
    q = queue_of(h, agent)
    m = metrics(d)
    lag = ("bygate_consumer_group_lag",
           frozenset({"agent_type": agent}.items()))
    seen.update(x=x, q=q, m=m.get(lag))
    return (q["lag"] == int(x["lag"]) == m.get(lag) and
            q["pending"] == int(x["pending"]) ==
            sample(m, "bygate_pending_entries", stream=stream,
                   scope="group") and
            x == xinfo_group(c, stream))


def test_queues_and_metrics_agree_with_xinfo_on_a_backlog_of_30(h):
    port = proc.free_port()
    d = h.start_bygated({"http": {"port": port}, "pool": {"size": 1},
                         "worker": FAST,
                         "agent_types": [h.agent_type("sleep")]})
    d.http_port = port
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    # suspended, bygated reads nothing: the whole backlog is lag
    ok(h.bygate("suspend", h.worker_id))
    wait_reason(d, "suspended")
    pc.send_many(c, h.keys, S, "sleep", "20000", 30)
    seen = {}
    wait_until(lambda: agree(h, d, stream, "sleep", seen), 20,
               what="queues, /metrics and XINFO to agree (%r)" % seen)
    q = seen["q"]
    assert (q["length"], q["lag"], q["pending"]) == (30, 30, 0), q
    assert q["oldest_pending_id"] is None
    # resumed, bygated reads it all: one running, the rest in its ready
    # set (docs/scheduling.md), pending under the consumer bygate:ready
    ok(h.bygate("resume", h.worker_id))
    wait_until(lambda: int(xinfo_group(c, stream)["lag"]) == 0, 10,
               what="bygated to read the backlog")
    wait_until(lambda: agree(h, d, stream, "sleep", seen), 20,
               what="queues, /metrics and XINFO to agree (%r)" % seen)
    q = seen["q"]
    assert (q["length"], q["lag"], q["pending"]) == (30, 0, 30), q
    assert q["oldest_pending_id"] and q["oldest_pending_age_ms"] >= 0
    assert sum(k["pending"] for k in q["consumers"]) == 30
    assert h.worker_id in [k["name"] for k in q["consumers"]]
    assert q["declared"] and q["exists"] and q["group_exists"]
    d.interrupt()


def test_queues_table_shows_each_agent_type_and_its_consumers(h):
    start(h)
    c = h.client()
    pc.send_many(c, h.keys, S, "echo", "hi", 3)
    wait_until(lambda: xinfo_group(c, h.keys.ctrl_agent_type("echo"))
               and int(xinfo_group(c, h.keys.ctrl_agent_type("echo"))
                       ["pending"]) == 0
               and int(xinfo_group(c, h.keys.ctrl_agent_type("echo"))
                       ["lag"]) == 0, 10, what="echo to drain")
    out = ok(h.bygate("queues")).stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["AGENT_TYPE", "LENGTH", "LAG",
                                    "PENDING", "OLDEST"]
    row = next(l for l in lines if l.startswith("echo "))
    assert row.split()[1:4] == ["3", "0", "0"]
    assert any(l.split()[:2] == ["consumer", h.worker_id] for l in lines)
    assert any(l.startswith("sleep ") for l in lines)


def test_queues_on_an_empty_redis_says_so(h):
    out = ok(h.bygate("queues"))
    assert "no agent types" in out.stdout
    assert bygate_json(h, "queues")["agent_types"] == []


def test_queues_of_an_unknown_agent_type_exits_1(h):
    out = h.bygate("queues", "--agent-type", "nosuch")
    assert out.returncode == 1 and "nosuch" in out.stderr


def test_queues_reads_only_agent_type_streams_not_their_side_keys(h):
    """The keys bygate keeps beside an agent type's stream (idempotency
    claims, v1: ctrl:agent_type:<T>:bygate_idem:<K>) match the streams'
    SCAN pattern: they are neither agent types nor read one by one."""
    c = h.client()
    c.call("XADD", h.keys.ctrl_agent_type("echo"), "*", "data", "{}")
    for i in range(50):
        c.call("HSET", h.keys.idempotency("echo", "k%d" % i),
               "message_id", "msg-%d" % i)
    c.call("CONFIG", "RESETSTAT")
    doc = bygate_json(h, "queues")
    assert [t["agent_type"] for t in doc["agent_types"]] == ["echo"]
    assert command_calls(c, "type") <= 1
    side = h.keys.idempotency("echo", "k1")
    if side.startswith(h.keys.ctrl_agent_type("")):  # v1
        name = side[len(h.keys.ctrl_agent_type("")):]
        out = h.bygate("queues", "--agent-type", name)
        assert out.returncode == 1 and name in out.stderr


def test_queues_usage_errors_exit_2(h):
    assert h.bygate("queues", "extra").returncode == 2
    assert h.bygate("queues", "--bogus").returncode == 2


# ---- bygate failed and retry ----------------------------------------------

def fail_then_fix(h):
    """bygated whose agent type `flaky` fails every task; returns it."""
    return h.start_bygated({"agent_types": [
        h.agent_type("echo"), h.agent_type("flaky", plugin="fail")]})


def test_a_failed_task_is_listed_and_completes_after_retry(h):
    d = fail_then_fix(h)
    c = h.client()
    mid, eid = pc.send(c, h.keys, S, "flaky", "again")
    ok_mid, _ = pc.send(c, h.keys, S, "echo", "fine")
    failed = wait_status(h, mid, "FAILED")
    wait_status(h, ok_mid, "COMPLETED")
    doc = bygate_json(h, "failed")
    rows = [r for r in doc["executions"] if r["message_id"] == mid]
    assert len(rows) == 1 and len(doc["executions"]) == 1
    assert rows[0]["session_id"] == S and rows[0]["agent_type"] == "flaky"
    assert rows[0]["execution_id"] == eid
    assert rows[0]["error_message"] == failed["error_message"]
    assert rows[0]["finished_at"] == failed["finished_at"]
    text = ok(h.bygate("failed")).stdout
    assert mid in text and "flaky" in text

    # the handler is fixed: the same agent type now echoes
    d.stop()
    h.start_bygated({"agent_types": [h.agent_type("flaky", plugin="echo")]})
    out = bygate_json(h, "retry", mid, "--session", S)
    assert (out["message_id"], out["execution_id"]) == (mid, eid)
    assert out["retry_count"] == 1
    done = wait_status(h, mid, "COMPLETED")
    assert done["execution_id"] == eid and done["retry_count"] == 1
    assert [s["status"] for s in done["timeline"]][-3:] == [
        "QUEUED", "RUNNING", "COMPLETED"]
    assert bygate_json(h, "failed")["executions"] == []
    assert "no failed executions" in ok(h.bygate("failed")).stdout


def test_retry_refuses_an_execution_that_did_not_fail(h):
    h.start_bygated()
    c = h.client()
    mid, _ = pc.send(c, h.keys, S, "echo", "fine")
    wait_status(h, mid, "COMPLETED")
    out = h.bygate("retry", mid, "--session", S)
    assert out.returncode == 1
    assert "COMPLETED, not FAILED" in out.stderr
    assert len(c.xrange(h.keys.ctrl_agent_type("echo"))) == 1


def test_two_concurrent_retries_run_the_task_once(h):
    d = fail_then_fix(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, S, "flaky", "once")
    wait_status(h, mid, "FAILED")
    d.stop()
    outs = []
    ts = [threading.Thread(target=lambda: outs.append(
        h.bygate("retry", mid, "--session", S))) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(o.returncode for o in outs) == [0, 1], outs
    assert "QUEUED, not FAILED" in [o for o in outs if o.returncode][0].stderr
    assert record(h, mid)["retry_count"] == 1
    entries = c.xrange(h.keys.ctrl_agent_type("flaky"))
    assert len(entries) == 2  # the original and one retry


def test_retry_finds_the_session_from_the_workers_history(h):
    fail_then_fix(h)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-other", "flaky", "x")
    wait_status(h, mid, "FAILED", session="s-other")
    out = bygate_json(h, "retry", mid)
    assert out["session_id"] == "s-other"


def test_failed_filters_by_agent_type_since_and_limit(h):
    fail_then_fix(h)
    c = h.client()
    mids = pc.send_many(c, h.keys, S, "flaky", "x", 3)
    for m in mids:
        wait_status(h, m, "FAILED")
    assert len(bygate_json(h, "failed", "--agent-type", "flaky")
               ["executions"]) == 3
    assert bygate_json(h, "failed", "--agent-type", "echo")[
        "executions"] == []
    doc = bygate_json(h, "failed", "--limit", "2")
    assert len(doc["executions"]) == 2 and doc["total"] == 3
    assert len(bygate_json(h, "failed", "--since", "1h")["executions"]) == 3


def test_failed_and_retry_usage_and_unknown_ids(h):
    assert h.bygate("failed", "--since", "yesterday").returncode == 2
    assert h.bygate("failed", "--limit", "0").returncode == 2
    assert h.bygate("retry").returncode == 2
    assert h.bygate("retry", "msg-1", "--bogus").returncode == 2
    out = h.bygate("retry", "msg-nosuch", "--session", S)
    assert out.returncode == 1 and "no execution" in out.stderr
    out = h.bygate("retry", "msg-nosuch")
    assert out.returncode == 1 and "--session" in out.stderr


# ---- bygate dlq ----------------------------------------------------------

def test_a_dead_letter_is_shown_requeued_once_and_purged(h):
    h.start_bygated()
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    c.call("XADD", stream, "*", "data", "{not json")
    wait_until(lambda: bygate_json(h, "dlq", "list")["entries"], 10,
               what="the entry to be dead-lettered")
    doc = bygate_json(h, "dlq", "list")
    assert doc["length"] == 1
    dl = doc["entries"][0]
    assert (dl["error_code"], dl["stream"], dl["entry"]) == (
        "invalid_json", stream, "{not json")
    text = ok(h.bygate("dlq", "list")).stdout
    assert dl["id"] in text and "invalid_json" in text
    shown = bygate_json(h, "dlq", "show", dl["id"])
    assert shown == dl
    assert "{not json" in ok(h.bygate("dlq", "show", dl["id"])).stdout

    n = len(c.xrange(stream))
    out = bygate_json(h, "dlq", "requeue", dl["id"])
    assert out["stream"] == stream
    again = h.bygate("dlq", "requeue", dl["id"])
    assert again.returncode == 1 and dl["id"] in again.stderr
    entries = c.xrange(stream)
    assert len(entries) == n + 1
    assert entries[-1][0] == out["entry_id"]
    assert entries[-1][1]["data"] == "{not json"
    # bygated answers the requeued entry again: a new dead letter
    wait_until(lambda: bygate_json(h, "dlq", "list")["length"] == 1, 10,
               what="the requeued entry to be dead-lettered again")
    new = bygate_json(h, "dlq", "list")["entries"][0]
    assert new["id"] != dl["id"] and new["entry_id"] == out["entry_id"]

    c.call("XADD", stream, "*", "nodata", "x")
    wait_until(lambda: bygate_json(h, "dlq", "list")["length"] == 2, 10,
               what="a second dead letter")
    purged = bygate_json(h, "dlq", "purge", new["id"])
    assert purged["deleted"] == 1
    assert bygate_json(h, "dlq", "list")["length"] == 1
    out = ok(h.bygate("dlq", "purge", "--all"))
    assert "1 dead letter purged" in out.stdout
    assert "no dead letters" in ok(h.bygate("dlq", "list")).stdout


def test_a_requeued_stale_entry_runs(h):
    """An entry dead-lettered as stale (older than max_entry_age) runs when
    requeued: the new entry is fresh."""
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    cmd = pc.ask_command(S, "echo", "late but fine")
    c.call("XADD", stream, "1-1", "data", json.dumps(cmd))
    h.start_bygated()
    wait_until(lambda: bygate_json(h, "dlq", "list")["entries"], 10,
               what="the stale entry to be dead-lettered")
    dl = bygate_json(h, "dlq", "list")["entries"][0]
    assert dl["error_code"] == "stale"
    bygate_json(h, "dlq", "requeue", dl["id"])
    mid = cmd["header"]["message_id"]
    wait_status(h, mid, "COMPLETED")
    assert bygate_json(h, "dlq", "list")["entries"] == []


def test_dlq_usage_errors_and_unknown_ids(h):
    assert h.bygate("dlq", "bogus").returncode == 2
    assert h.bygate("dlq", "show").returncode == 2
    assert h.bygate("dlq", "show", "not-an-id").returncode == 2
    assert h.bygate("dlq", "show", "18446744073709551616-0").returncode == 2
    assert h.bygate("dlq", "purge", "1-18446744073709551616").returncode == 2
    assert h.bygate("dlq", "purge").returncode == 2
    assert h.bygate("dlq", "purge", "1-1", "--all").returncode == 2
    assert h.bygate("dlq", "list", "--limit", "x").returncode == 2
    out = h.bygate("dlq", "show", "1-1")
    assert out.returncode == 1 and "no dead letter 1-1" in out.stderr
    assert h.bygate("dlq", "requeue", "1-1").returncode == 1
    assert h.bygate("dlq", "purge", "1-1").returncode == 1
    assert "no dead letters" in ok(h.bygate("dlq")).stdout


def test_a_retry_runs_again_on_the_bygated_that_failed_it(h):
    """The same worker, with its journal of the first attempt, runs the
    retried message: the record is QUEUED again, not a terminal replay."""
    h.start_bygated({"agent_types": [h.agent_type("sleep", timeout_ms=300)]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, S, "sleep", "3000")
    first = wait_status(h, mid, "FAILED")
    assert first["error_code"] == "TIMEOUT"
    assert bygate_json(h, "failed")["executions"][0]["error_code"] == \
        "TIMEOUT"
    ok(h.bygate("retry", mid, "--session", S))
    wait_until(lambda: [s["status"] for s in record(h, mid)["timeline"]]
               .count("RUNNING") == 2 and
               record(h, mid)["status"] == "FAILED", 20,
               what="the second attempt to run and time out")
    rec = record(h, mid)
    assert rec["retry_count"] == 1 and rec["error_code"] == "TIMEOUT"
    assert rec["last_error"]["error_code"] == "TIMEOUT"


def poison_letter(h, cmd, eid, status):
    """The record of cmd finished with status and the dead letter bygated
    writes for a poison entry of it (docs/operations.md "Dead letters")."""
    c = h.client()
    stream = h.keys.ctrl_agent_type(cmd["header"]["target_agent_type"])
    _, cmds = pc.send_commands(h.keys, cmd, execution_id=eid)
    rec = json.loads(cmds[0][3])
    rec.update(status=status, finished_at=rec["created_at"],
               error_code="max_deliveries", error_message="poison")
    c.call("HSET", h.keys.registry(S), "exec:" + eid, json.dumps(rec),
           "msg_map:" + cmd["header"]["message_id"], eid)
    letter = {"execution_id": eid, "target_agent_type": "echo",
              "status": "FAILED", "reason": "poison", "stream": stream,
              "entry_id": "1-1", "delivery_count": 6,
              "error_code": "max_deliveries", "entry": json.dumps(cmd)}
    return c.call("XADD", h.keys.deadletter(), "*", "data",
                  json.dumps(letter))


def test_a_requeued_dead_letter_whose_execution_failed_runs_it_again(h):
    """A poison entry's execution is FAILED: requeued, its record is QUEUED
    again in the same step, so bygated runs it instead of acknowledging a
    terminal replay."""
    cmd = pc.ask_command(S, "echo", "second chance")
    dl = poison_letter(h, cmd, "exec-p1", "FAILED")
    h.start_bygated()
    out = bygate_json(h, "dlq", "requeue", dl)
    assert out["execution_requeued"] == "exec-p1"
    done = wait_status(h, cmd["header"]["message_id"], "COMPLETED")
    assert done["execution_id"] == "exec-p1" and done["retry_count"] == 1
    assert done["last_error"]["error_code"] == "max_deliveries"
    assert bygate_json(h, "dlq", "list")["entries"] == []


def test_requeue_refuses_a_dead_letter_whose_execution_completed(h):
    cmd = pc.ask_command(S, "echo", "done already")
    dl = poison_letter(h, cmd, "exec-p2", "COMPLETED")
    out = h.bygate("dlq", "requeue", dl)
    assert out.returncode == 1 and "COMPLETED" in out.stderr
    assert bygate_json(h, "dlq", "list")["length"] == 1
    assert h.client().call("XLEN", h.keys.ctrl_agent_type("echo")) == 0


def keyed_flaky(h, key):
    cmd = pc.ask_command(S, "flaky", "keyed")
    cmd["header"]["metadata"] = {"idempotency_key": key}
    h.client().pipeline(pc.send_commands(h.keys, cmd)[1])
    return cmd["header"]["message_id"]


def test_a_retried_task_with_an_idempotency_key_runs_again(h):
    """The retry's entry is the same message under the same key: bygated
    runs it as that key's entry, not as a copy acknowledged unrun."""
    d = fail_then_fix(h)
    mid = keyed_flaky(h, "retry-key-1")
    wait_status(h, mid, "FAILED")
    d.stop()
    h.start_bygated({"agent_types": [h.agent_type("flaky", plugin="echo")]})
    ok(h.bygate("retry", mid, "--session", S))
    done = wait_status(h, mid, "COMPLETED")
    assert done["retry_count"] == 1


def test_a_requeued_dead_letter_with_an_idempotency_key_runs_again(h):
    cmd = pc.ask_command(S, "echo", "keyed second chance")
    cmd["header"]["metadata"] = {"idempotency_key": "dlq-key-1"}
    h.client().call("HSET", h.keys.idempotency("echo", "dlq-key-1"),
                    "message_id", cmd["header"]["message_id"],
                    "session_id", S, "execution_id", "exec-p3",
                    "entry", "1-1")
    dl = poison_letter(h, cmd, "exec-p3", "FAILED")
    h.start_bygated()
    bygate_json(h, "dlq", "requeue", dl)
    done = wait_status(h, cmd["header"]["message_id"], "COMPLETED")
    assert done["retry_count"] == 1


def test_dlq_list_and_show_print_no_control_character_from_redis(h):
    """A dead letter's fields come from whatever was written to a stream:
    their control characters are shown as '?', never sent to the
    terminal."""
    esc = "\x1b]0;owned\x07"
    letter = {"execution_id": "exec-" + esc, "target_agent_type": esc,
              "status": "FAILED", "reason": "bad\x1b[2J", "stream": "s" + esc,
              "entry_id": "1-1" + esc, "delivery_count": 6,
              "error_code": "x" + esc, "entry": "{}"}
    dl = h.client().call("XADD", h.keys.deadletter(), "*", "data",
                         json.dumps(letter))
    for args in (("dlq", "list"), ("dlq", "show", dl)):
        out = ok(h.bygate(*args))
        assert dl in out.stdout
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout, \
            repr(out.stdout)


def test_retry_refuses_a_copy_acknowledged_for_its_idempotency_key(h):
    """A send whose key was first used by another message FAILED as that
    message's copy: written again it would only be a copy again."""
    h.start_bygated()
    c = h.client()
    sends = []
    for _ in range(2):
        cmd = pc.ask_command(S, "echo", "keyed")
        cmd["header"]["metadata"] = {"idempotency_key": "dup-key-1"}
        c.pipeline(pc.send_commands(h.keys, cmd)[1])
        sends.append(cmd["header"]["message_id"])
    wait_status(h, sends[0], "COMPLETED")
    copy = wait_status(h, sends[1], "FAILED")
    assert copy["duplicate_of"] == sends[0]
    out = h.bygate("retry", sends[1], "--session", S)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert sends[0] in out.stderr and "copy" in out.stderr
    assert record(h, sends[1])["status"] == "FAILED"


def test_retry_of_a_record_without_stream_name_names_the_stream_searched(h):
    cmd = pc.ask_command(S, "echo", "gone")
    _, cmds = pc.send_commands(h.keys, cmd, execution_id="exec-ns")
    rec = json.loads(cmds[0][3])
    rec.update(status="FAILED", stream_name="", finished_at=rec["created_at"])
    h.client().call("HSET", h.keys.registry(S), "exec:exec-ns",
                    json.dumps(rec), "msg_map:" + cmd["header"]["message_id"],
                    "exec-ns")
    out = h.bygate("retry", cmd["header"]["message_id"], "--session", S)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "no longer on %s" % h.keys.ctrl_agent_type("echo") in out.stderr, \
        out.stderr


def test_failed_and_retry_see_the_history_of_a_worker_that_stopped(h):
    """A cleanly stopped bygated leaves the registry's worker set, but its
    execution index stays (7 d): its failures are still listed, and
    retried without --session."""
    d = fail_then_fix(h)
    mid, _ = pc.send(h.client(), h.keys, "s-gone", "flaky", "x")
    wait_status(h, mid, "FAILED", session="s-gone")
    d.stop()
    assert h.worker_id not in h.client().call(
        "SMEMBERS", h.keys.known_workers())
    rows = bygate_json(h, "failed")["executions"]
    assert [r["message_id"] for r in rows] == [mid]
    assert bygate_json(h, "retry", mid)["session_id"] == "s-gone"


def test_failed_finds_a_stopped_workers_history_under_the_v2_schema(h):
    """The same with v2 keys: the index is registry:worker:{W}:executions."""
    v2 = Keys("v2")
    d = h.start_bygated({"redis": {"key_schema": "v2"}, "agent_types": [
        h.agent_type("flaky", plugin="fail")]})
    c = h.client()
    mid, _ = pc.send(c, v2, "s-v2", "flaky", "x")
    wait_until(lambda: (pc.record(c, v2, "s-v2", mid) or {}).get("status")
               == "FAILED", 20, what="the task to fail")
    d.stop()
    env = h.env(REDIS_KEY_SCHEMA_VERSION="v2")
    rows = bygate_json(h, "failed", env=env)["executions"]
    assert [(r["message_id"], r["session_id"]) for r in rows] == [
        (mid, "s-v2")]
