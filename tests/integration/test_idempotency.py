"""Idempotency keys (issue 14 item 1, docs/client.md "Idempotency keys"):
of the sends carrying one key to one agent type within the TTL, one task
runs. The sender's check and write are one script (bygate send); bygated
honours the key of every entry it reads (a raw XADD, a by-framework client
that only put the key in its metadata), so a copy is acknowledged unrun
with its own record FAILED (duplicate_of), counted in
bygate_idempotent_duplicates_total."""

import concurrent.futures
import json
import re

from harness import standalone_only, timeout, wait_until
import pyclient as pc
from test_http import metrics, request, sample, start
from test_one_run import all_at_once
from test_recovery import assert_once, cfg

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def send_keyed(h, session, key, *extra):
    return h.bygate("send", "--agent-type", "echo", "--session", session,
                    "--content", "hi", "--idempotency-key", key, *extra)


def executions(c, keys, session):
    reg = c.hgetall(keys.registry(session))
    return {k: json.loads(v) for k, v in reg.items() if k.startswith("exec:")}


def end_markers(c, keys, session, mid):
    return [e for e in pc.events(c, keys, session) if e["message_id"] == mid
            and e["event_type"] == "appStreamResponse"]


def keyed_command(session, key, message_id=None):
    cmd = pc.ask_command(session, "echo", "say it", message_id=message_id)
    cmd["header"]["metadata"] = {"channel": "web", "idempotency_key": key}
    return cmd


def send_raw(h, c, session, key):
    """A by-framework client's send with the key in its metadata: its
    QUEUED record, then its entry. Returns the message id."""
    cmd = keyed_command(session, key)
    c.pipeline(pc.send_commands(h.keys, cmd)[1])
    return cmd["header"]["message_id"]


def copies(d):
    return sample(metrics(d), "bygate_idempotent_duplicates_total",
                  agent_type="echo")


@timeout(180)
def test_one_key_sent_100_times_from_4_processes_runs_one_task(h):
    h.start_bygated({"pool": {"size": 2}})
    c = h.client()
    # long enough for 100 CLI runs on a slow (sanitizer) build
    burst_ttl = 120

    def burst(_):
        return [send_keyed(h, "s-idem", "order-42", "--idempotency-ttl",
                           burst_ttl) for _ in range(25)]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        outs = [o for part in ex.map(burst, range(4)) for o in part]
    assert all(o.returncode == 0 for o in outs), \
        [o.stderr for o in outs if o.returncode]
    mids = {o.stdout.strip() for o in outs}
    assert len(mids) == 1, mids
    mid = mids.pop()
    dups = [o for o in outs if "duplicate" in o.stderr]
    assert len(dups) == 99
    assert all("first used by message %s" % mid in o.stderr for o in dups)
    hkey = h.keys.idempotency("echo", "order-42")
    assert c.call("HGET", hkey, "message_id") == mid
    rec = pc.wait_terminal(c, h.keys, "s-idem", mid)
    assert rec["status"] == "COMPLETED"
    # one task: one entry, one execution, one end
    assert c.call("XLEN", h.keys.ctrl_agent_type("echo")) == 1
    assert len(executions(c, h.keys, "s-idem")) == 1
    assert len(end_markers(c, h.keys, "s-idem", mid)) == 1
    wait_until(lambda: c.call("HGET", hkey, "entry") is not None, 5,
               what="bygated to name the entry that ran")
    assert 0 < c.call("PTTL", hkey) <= burst_ttl * 1000
    # after the TTL the key is free: a new task (a key with a short TTL)
    ttl = 2
    first = json.loads(send_keyed(h, "s-idem", "order-43", "--json",
                                  "--idempotency-ttl", ttl).stdout)
    dup = json.loads(send_keyed(h, "s-idem", "order-43", "--json").stdout)
    assert dup["duplicate"] and dup["message_id"] == first["message_id"]
    wait_until(lambda: c.call("EXISTS", h.keys.idempotency(
        "echo", "order-43")) == 0, ttl + 2, what="the key's TTL")
    again = send_keyed(h, "s-idem", "order-43", "--json")
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["message_id"] != first["message_id"] and "duplicate" not in out
    assert pc.wait_terminal(c, h.keys, "s-idem",
                            out["message_id"])["status"] == "COMPLETED"
    assert len(executions(c, h.keys, "s-idem")) == 3


def test_a_duplicate_send_prints_the_first_ids_as_json(h):
    h.start_bygated()
    first = send_keyed(h, "s-j", "k-1", "--json")
    second = send_keyed(h, "s-j", "k-1", "--json")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert "duplicate" not in a
    assert b["duplicate"] is True
    assert (b["message_id"], b["execution_id"], b["session_id"]) == \
        (a["message_id"], a["execution_id"], "s-j")
    # a key given in the metadata counts the same
    third = h.bygate("send", "--agent-type", "echo", "--session", "s-j",
                     "--content", "hi", "--metadata",
                     '{"idempotency_key": "k-1"}')
    assert third.returncode == 0
    assert third.stdout.strip() == a["message_id"]


def test_an_unusable_key_is_refused_before_anything_is_written(h):
    c = h.client()
    for bad in ("has space", "x" * 201, "tab\there"):
        out = send_keyed(h, "s-bad", bad)
        assert out.returncode == 2
        assert "idempotency key" in out.stderr
    out = h.bygate("send", "--agent-type", "echo", "--session", "s-bad",
                   "--content", "hi", "--metadata", '{"idempotency_key": 7}')
    assert out.returncode == 2 and "idempotency key" in out.stderr
    assert c.call("EXISTS", h.keys.registry("s-bad")) == 0


def xadd_twice(h, c, same_message_id, record):
    """Two entries of one key, in one transaction (one read batch)."""
    first = keyed_command("s-raw", "raw-1")
    second = keyed_command(
        "s-raw", "raw-1",
        first["header"]["message_id"] if same_message_id else None)
    cmds = []
    for cmd in (first, second):
        _, cc = pc.send_commands(h.keys, cmd)
        cmds += cc if record else cc[-1:]
    all_at_once(c, cmds)
    return first["header"]["message_id"], second["header"]["message_id"]


def check_one_run(h, c, d, m1, m2, record):
    stream = h.keys.ctrl_agent_type("echo")
    rec = pc.wait_terminal(c, h.keys, "s-raw", m1)
    assert rec["status"] == "COMPLETED", rec
    wait_until(lambda: pc.pending_count(c, stream) == 0, 10,
               what="both entries acknowledged")
    wait_until(lambda: copies(d) == 1, 5, what="the copy counted")
    assert c.call("XLEN", stream) == 2
    assert len(end_markers(c, h.keys, "s-raw", m1)) == 1
    hkey = h.keys.idempotency("echo", "raw-1")
    entries = [e[0] for e in c.call("XRANGE", stream, "-", "+")]
    assert c.call("HGET", hkey, "entry") in entries
    assert c.call("HGET", hkey, "message_id") == m1
    assert c.call("PTTL", hkey) > 0
    text = d.log_text()
    assert re.search(r"idempotency key raw-1: entry \S+ \(message %s\) is a "
                     r"copy of message %s" % (m2, m1), text), text[-2000:]
    if m2 == m1:
        tl = [x["status"] for x in rec["timeline"]]
        assert tl.count("RUNNING") == 1, tl
        return
    dup = pc.record(c, h.keys, "s-raw", m2)
    if not record:
        assert dup is None
        return
    assert dup["status"] == "FAILED", dup
    assert dup["error_code"] == "DUPLICATE"
    assert dup["duplicate_of"] == m1
    assert dup["error_message"] == \
        "DUPLICATE: idempotency key raw-1 was first used by message %s" % m1
    assert [x["status"] for x in dup["timeline"]] == ["QUEUED", "FAILED"]
    assert end_markers(c, h.keys, "s-raw", m2) == []


def raw_case(h, same_message_id, record):
    d = start(h)
    c = h.client()
    m1, m2 = xadd_twice(h, c, same_message_id, record)
    check_one_run(h, c, d, m1, m2, record)


def test_an_entry_xadded_twice_with_one_message_id_runs_once(h):
    raw_case(h, same_message_id=True, record=True)


def test_an_entry_xadded_twice_with_one_message_id_no_record_runs_once(h):
    raw_case(h, same_message_id=True, record=False)


def test_two_messages_of_one_key_run_once_the_copy_failed_duplicate(h):
    raw_case(h, same_message_id=False, record=True)


def test_two_messages_of_one_key_without_records_run_once(h):
    raw_case(h, same_message_id=False, record=False)


def test_a_copy_after_the_first_finished_is_not_run(h):
    d = start(h)
    c = h.client()
    m1 = send_raw(h, c, "s-raw", "raw-1")
    pc.wait_terminal(c, h.keys, "s-raw", m1)
    m2 = send_raw(h, c, "s-raw", "raw-1")
    check_one_run(h, c, d, m1, m2, True)


def test_an_unusable_key_in_metadata_runs_the_task_with_a_warning(h):
    d = start(h)
    c = h.client()
    mid = send_raw(h, c, "s-warn", "no spaces allowed")
    assert pc.wait_terminal(c, h.keys, "s-warn", mid)["status"] == \
        "COMPLETED"
    assert "is not a usable idempotency key" in d.log_text()
    assert copies(d) == 0


def test_the_duplicates_counter_is_on_the_metrics_page(h):
    d = start(h)
    status, _, body = request(d, "/metrics")
    assert status == 200
    assert "# TYPE bygate_idempotent_duplicates_total counter" in body
    assert 'bygate_idempotent_duplicates_total{agent_type="echo"} 0' in body


@timeout(90)
def test_a_crash_after_the_key_names_the_entry_reruns_that_entry_once(h):
    # bygated dies right after its check named the entry in the key's
    # HASH, before the claim: the restart reads the same entry again, the
    # HASH names it, and it runs once
    c = h.client()
    conf = cfg(h)
    d = h.bygated(conf)
    d.env = dict(d.env, BYGATE_FAULT="idem.after_entry")
    d.start()
    cmd = pc.ask_command("s-crash", "sleep", "50")
    cmd["header"]["metadata"] = {"idempotency_key": "crash-1"}
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds)
    mid = cmd["header"]["message_id"]
    d.wait_exit(20)
    assert d.returncode != 0
    stream = h.keys.ctrl_agent_type("sleep")
    hkey = h.keys.idempotency("sleep", "crash-1")
    entry = c.call("XRANGE", stream, "-", "+")[0][0]
    assert c.call("HGET", hkey, "entry") == entry
    d2 = h.bygated(config=d.config)
    d2.start()
    pc.wait_terminal(c, h.keys, "s-crash", mid)
    d2.wait_log("start-up reconcile done", timeout=10)
    d2.stop()
    assert_once(c, h.keys, "s-crash", mid)
    assert pc.pending_count(c, stream) == 0
    assert "is a copy of" not in d2.log_text()


@timeout(90)
def test_kill_9_mid_run_of_a_keyed_entry_reruns_it_once(h):
    d = h.start_bygated(cfg(h, worker={"lease_ttl_s": 30,
                                       "heartbeat_interval_ms": 5000,
                                       "reclaim_min_idle_ms": 60000},
                            sched={"window": 0}))
    c = h.client()
    cmd = pc.ask_command("s-k9", "sleep", "1500")
    cmd["header"]["metadata"] = {"idempotency_key": "k9-1"}
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds)
    mid = cmd["header"]["message_id"]
    wait_until(lambda: (pc.record(c, h.keys, "s-k9", mid) or {})
               .get("status") == "RUNNING", 10, what="the run")
    d.kill()
    d2 = h.bygated(config=d.config).start()
    d2.wait_log("start-up reconcile done", timeout=10)
    pc.wait_terminal(c, h.keys, "s-k9", mid)
    assert_once(c, h.keys, "s-k9", mid)
    stream = h.keys.ctrl_agent_type("sleep")
    entry = c.call("XRANGE", stream, "-", "+")[0][0]
    assert c.call("HGET", h.keys.idempotency("sleep", "k9-1"), "entry") == \
        entry
    assert pc.pending_count(c, stream) == 0
    assert "is a copy of" not in d2.log_text()


# ---- the handler SDKs: a call's key goes in its metadata ------------------

def callees(c, keys, session, parent):
    return [r for r in executions(c, keys, session).values()
            if r["parent_message_id"] == parent]


def check_calls_deduped(h, c, session, first, second):
    """Two callers called echo with one key: one call ran, the other's
    callee was acknowledged unrun, FAILED DUPLICATE of it. (Which one ran
    is the first a bygated checked: usually the first written, but an
    entry parked in the ready set may be checked after a later one.)"""
    wait_until(lambda: len(callees(c, h.keys, session, first)) == 1 and
               len(callees(c, h.keys, session, second)) == 1, 15,
               what="both calls written")
    mids = [callees(c, h.keys, session, m)[0]["message_id"]
            for m in (first, second)]
    recs = sorted((pc.wait_terminal(c, h.keys, session, m) for m in mids),
                  key=lambda r: r["status"])
    ran, copy = recs
    assert ran["status"] == "COMPLETED", recs
    assert copy["status"] == "FAILED" and copy["error_code"] == "DUPLICATE"
    assert copy["duplicate_of"] == ran["message_id"]
    stream = h.keys.ctrl_agent_type("echo")
    wait_until(lambda: pc.pending_count(c, stream) == 0, 10,
               what="both calls acknowledged")
    assert c.call("XLEN", stream) == 2


def test_a_c_handlers_calls_with_one_key_run_the_callee_once(h):
    h.start_bygated({"agent_types": [h.agent_type("alpha", plugin="calls"),
                                         h.agent_type("echo")]})
    c = h.client()
    route = "route " + json.dumps({"target": "echo",
                                   "idempotency_key": "call-1"})
    first, _ = pc.send(c, h.keys, "s-call", "alpha", route)
    assert pc.wait_terminal(c, h.keys, "s-call", first)["status"] == \
        "COMPLETED"
    second, _ = pc.send(c, h.keys, "s-call", "alpha", route)
    check_calls_deduped(h, c, "s-call", first, second)
    # the second caller waits for a callback its copy never sends
    assert pc.record(c, h.keys, "s-call", second)["status"] == \
        "WAITING_AGENT"


PY_CALLER = """
import sys
sys.path.insert(0, %r)
import bygate_agent


def handle(ctx):
    ctx.call_agent("echo", "work", wait_for_reply=False,
                   idempotency_key="py-call-1")
    return "called"


if __name__ == "__main__":
    bygate_agent.run(handle)
"""


def test_a_python_handlers_calls_with_one_key_run_the_callee_once(h):
    from harness import EXAMPLES_PY
    prog = h.tmp / "pycaller.py"
    prog.write_text(PY_CALLER % str(EXAMPLES_PY))
    prog.chmod(0o644)
    h.start_bygated({"agent_types": [
        {"name": "pycaller", "handler": "exec", "timeout_ms": 30000,
         "command": "python3 %s" % prog,
         "sandbox": {"read_paths": [str(EXAMPLES_PY), str(h.tmp)]}},
        h.agent_type("echo")]})
    c = h.client()
    first, _ = pc.send(c, h.keys, "s-py", "pycaller", "go")
    assert pc.wait_terminal(c, h.keys, "s-py", first)["status"] == \
        "COMPLETED"
    second, _ = pc.send(c, h.keys, "s-py", "pycaller", "go")
    assert pc.wait_terminal(c, h.keys, "s-py", second)["status"] == \
        "COMPLETED"
    check_calls_deduped(h, c, "s-py", first, second)


@standalone_only("a keyed send waiting in the pending deliveries spans three "
                 "slots: refused under Cluster (docs/cluster.md)")
def test_a_queued_keyed_send_writes_its_wakeup_and_pending_delivery_once(h):
    from test_client import pending_stream, wakeup_stream
    c = h.client()
    outs = [send_keyed(h, "s-q", "q-1", "--route-policy", "WAKE_AND_QUEUE",
                       "--json") for _ in range(2)]
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    first, second = (json.loads(o.stdout) for o in outs)
    assert first["route_status"] == "QUEUE_PENDING"
    assert [e[0] for e in c.xrange(pending_stream(h.keys))] == \
        [first["pending_entry_id"]]
    assert c.call("XLEN", wakeup_stream(h.keys)) == 1
    assert second["duplicate"] is True
    assert second["message_id"] == first["message_id"]
