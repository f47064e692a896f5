"""One message, one run (issue 11 item 2): a command XADDed twice (a client
retrying its send) runs once, whether the two entries arrive in one read
batch, on two workers at the same moment, or while the first runs. The
duplicate is acknowledged and writes nothing else: one execution, one
RUNNING, one end marker, nothing pending. docs/architecture.md, step 5."""

import json

from harness import (standalone_only, wait_until, timeout, wait_task_end, info_count,
                     command_calls)
import pyclient as pc

SESSIONS = ["s-twice-%d" % i for i in range(5)]
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def all_at_once(c, cmds):
    """In one MULTI/EXEC: a blocked reader sees every entry at once, so
    both entries of a message come in the same read batch."""
    c.pipeline([("MULTI",)] + cmds + [("EXEC",)])


def pending(c, stream):
    return pc.pending_count(c, stream)


def group_lag(c, stream):
    """Entries of the stream not delivered to the group yet."""
    for g in c.call("XINFO", "GROUPS", stream):
        info = dict(zip(g[::2], g[1::2]))
        if info["name"] == "agent_engines":
            return info.get("lag", 0) or 0
    return None


def wait_all_done(c, keys, sent, streams, t=60):
    def done():
        for s, m in sent:
            r = pc.record(c, keys, s, m)
            if not r or r["status"] not in TERMINAL:
                return False
        return all(pending(c, st) == 0 and group_lag(c, st) == 0
                   for st in streams)
    wait_until(done, t, interval=0.2,
               what="%d messages to finish and every entry to be acked"
               % len(sent))


def assert_each_ran_once(c, keys, sent):
    for s in {s for s, _ in sent}:
        mids = [m for s2, m in sent if s2 == s]
        reg = c.hgetall(keys.registry(s))
        execs = {k: json.loads(v) for k, v in reg.items()
                 if k.startswith("exec:")}
        assert len(execs) == len(mids), sorted(execs)
        evs = pc.events(c, keys, s)
        for m in mids:
            rec = pc.record(c, keys, s, m)
            assert rec["status"] == "COMPLETED", rec
            tl = [x["status"] for x in rec["timeline"]]
            assert tl.count("RUNNING") == 1, tl
            assert tl.count("COMPLETED") == 1, tl
            mine = [e["event_type"] for e in evs if e["message_id"] == m]
            assert mine.count("appStreamResponse") == 1, mine
            assert mine.count("finalAnswer") == 1, mine
            # one run: the echo's chunks once
            chunks = "".join(e["data"]["choices"][0]["delta"]["content"]
                             for e in evs if e["message_id"] == m and
                             e["event_type"] == "answerDelta")
            assert chunks == "say %s" % m, chunks


def sent_twice_echo(keys, session, **kw):
    """One echo send whose XADD is repeated with the same data (to
    kw["streams"], default the agent type's stream twice); record=False:
    no sender record (the worker creates it). Returns (mid, commands)."""
    cmd = pc.ask_command(session, "echo", "")
    mid = cmd["header"]["message_id"]
    cmd["body"]["content"] = "say %s" % mid
    _, cmds = pc.send_commands(keys, cmd)
    xadd = cmds[-1]
    cmds = cmds[:-1] if kw.get("record", True) else []
    for s in kw.get("streams") or (xadd[1], xadd[1]):
        cmds.append(("XADD", s, "*", "data", xadd[4]))
    return mid, cmds


def pairs(c, keys, n=50, sessions=SESSIONS, **kw):
    sent, cmds = [], []
    for i in range(n):
        s = sessions[i % len(sessions)]
        mid, cc = sent_twice_echo(keys, s, **kw)
        sent.append((s, mid))
        cmds += cc
    return sent, cmds


@timeout(120)
def test_each_message_sent_twice_runs_once_on_one_worker(h):
    d = h.start_bygated({"pool": {"size": 4}})
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    sent, cmds = pairs(c, h.keys)
    all_at_once(c, cmds)
    wait_all_done(c, h.keys, sent, [stream])
    assert c.call("XLEN", stream) == 100
    assert_each_ran_once(c, h.keys, sent)
    # every second entry was a duplicate or, once the first had ended, a
    # terminal replay: acknowledged without running
    text = d.log_text()
    assert (text.count("duplicate: execution already running") +
            text.count("terminal replay: ")) == 50


@timeout(120)
def test_each_message_sent_twice_runs_once_on_two_workers(h):
    a = h.start_bygated({"pool": {"size": 4}})
    b = h.start_bygated({"pool": {"size": 4}})
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    sent, cmds = pairs(c, h.keys)
    all_at_once(c, cmds)
    wait_all_done(c, h.keys, sent, [stream])
    assert_each_ran_once(c, h.keys, sent)
    assert a.alive() and b.alive()


@timeout(120)
def test_the_two_entries_read_by_two_workers_at_once_run_once(h):
    # each message's entries go one to each worker's own stream (a direct
    # route), in one transaction: the two pickups race for every message
    a = h.start_bygated({"pool": {"size": 4}})
    b = h.start_bygated({"pool": {"size": 4}})
    c = h.client()
    wa, wb = (h.keys.ctrl_worker(x.config["worker"]["id"]) for x in (a, b))
    sent, cmds = pairs(c, h.keys, streams=(wa, wb))
    all_at_once(c, cmds)
    wait_all_done(c, h.keys, sent, [wa, wb])
    assert_each_ran_once(c, h.keys, sent)
    runs = {}
    for s, m in sent:
        w = pc.record(c, h.keys, s, m)["worker_id"]
        runs[w] = runs.get(w, 0) + 1
    assert sum(runs.values()) == 50
    text = a.log_text() + b.log_text()
    assert (text.count("duplicate: execution already running") +
            text.count("terminal replay: ")) == 50


@timeout(120)
def test_a_message_sent_twice_without_a_record_runs_once(h):
    # no sender record: the worker creates it (with msg_map); the two
    # entries race to create it
    a = h.start_bygated({"pool": {"size": 4}})
    b = h.start_bygated({"pool": {"size": 4}})
    c = h.client()
    wa, wb = (h.keys.ctrl_worker(x.config["worker"]["id"]) for x in (a, b))
    sent, cmds = pairs(c, h.keys, n=20, streams=(wa, wb), record=False)
    all_at_once(c, cmds)
    wait_all_done(c, h.keys, sent, [wa, wb])
    assert_each_ran_once(c, h.keys, sent)


@timeout(90)
def test_a_duplicate_sent_while_the_first_runs_elsewhere_is_acked_unrun(h):
    conf = {"pool": {"size": 2},
            "agent_types": [h.agent_type("sleep")]}
    a = h.start_bygated(conf)
    b = h.start_bygated(conf)
    c = h.client()
    wa, wb = (h.keys.ctrl_worker(x.config["worker"]["id"]) for x in (a, b))
    cmd = pc.ask_command("s-late", "sleep", "2000")
    mid = cmd["header"]["message_id"]
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds[:-1] + [("XADD", wa, "*", "data", cmds[-1][4])])
    wait_until(lambda: (pc.record(c, h.keys, "s-late", mid) or {})
               .get("status") == "RUNNING", 10, what="the first run")
    # the retry reaches the other worker while the first runs there
    c.call("XADD", wb, "*", "data", cmds[-1][4])
    wait_task_end(b, mid)
    assert "duplicate: execution already running on %s" % \
        a.config["worker"]["id"] in b.log_text()
    assert pending(c, wb) == 0          # acknowledged at once
    assert pending(c, wa) == 1          # the first still runs
    rec = pc.record(c, h.keys, "s-late", mid)
    assert rec["status"] == "RUNNING"
    assert rec["worker_id"] == a.config["worker"]["id"]
    assert [e for e in pc.events(c, h.keys, "s-late")
            if e["event_type"] == "appStreamResponse"] == []
    wait_until(lambda: (pc.record(c, h.keys, "s-late", mid) or {})
               .get("status") == "COMPLETED", 15, what="the first run's end")
    wait_until(lambda: pending(c, wa) == 0, 5, what="its ack")
    tl = [x["status"] for x in pc.record(c, h.keys, "s-late", mid)["timeline"]]
    assert tl == ["QUEUED", "RUNNING", "COMPLETED"], tl
    evs = [e for e in pc.events(c, h.keys, "s-late") if e["message_id"] == mid]
    assert [e["event_type"] for e in evs].count("appStreamResponse") == 1


@timeout(90)
def test_a_duplicate_sent_while_the_first_runs_here_is_acked_unrun(h):
    d = h.start_bygated({"pool": {"size": 2},
                         "agent_types": [h.agent_type("sleep")]})
    c = h.client()
    stream = h.keys.ctrl_agent_type("sleep")
    cmd = pc.ask_command("s-here", "sleep", "1500")
    mid = cmd["header"]["message_id"]
    _, cmds = pc.send_commands(h.keys, cmd)
    c.pipeline(cmds)
    wait_until(lambda: (pc.record(c, h.keys, "s-here", mid) or {})
               .get("status") == "RUNNING", 10, what="the first run")
    c.call("XADD", stream, "*", "data", cmds[-1][4])
    d.wait_log("duplicate: execution already running on this worker",
               timeout=10)
    # the duplicate's ack follows the log line: only the first stays
    # pending, still running
    wait_until(lambda: pending(c, stream) == 1, 5, what="the duplicate's ack")
    assert (pc.record(c, h.keys, "s-here", mid) or {}).get("status") == \
        "RUNNING"
    wait_until(lambda: (pc.record(c, h.keys, "s-here", mid) or {})
               .get("status") == "COMPLETED", 15, what="the first run's end")
    wait_until(lambda: pending(c, stream) == 0, 5, what="its ack")
    rec = pc.record(c, h.keys, "s-here", mid)
    assert [x["status"] for x in rec["timeline"]] == ["QUEUED", "RUNNING",
                                                      "COMPLETED"]
    evs = [e for e in pc.events(c, h.keys, "s-here") if e["message_id"] == mid]
    assert [e["event_type"] for e in evs].count("appStreamResponse") == 1


@timeout(60)
def test_a_claim_whose_reply_is_lost_is_examined_again_and_runs_once(h):
    # the first claim is applied and its reply lost with the write
    # connection (fault point admit.claim_reply_lost): after the reconnect
    # the record says this worker runs it and no job here holds it, so it
    # is claimed again (a second RUNNING step) and runs once; the other
    # entry of the message is then a duplicate
    d = h.bygated({"pool": {"size": 2}})
    d.env = dict(d.env, BYGATE_FAULT="admit.claim_reply_lost")
    d.start()
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    sent, cmds = pairs(c, h.keys, n=1)
    all_at_once(c, cmds)
    wait_all_done(c, h.keys, sent, [stream], t=30)
    assert "fault injection: claim reply lost" in d.log_text()
    s, m = sent[0]
    rec = pc.record(c, h.keys, s, m)
    assert [x["status"] for x in rec["timeline"]] == [
        "QUEUED", "RUNNING", "RUNNING", "COMPLETED"]
    evs = [e["event_type"] for e in pc.events(c, h.keys, s)
           if e["message_id"] == m]
    assert evs.count("appStreamResponse") == 1
    assert evs.count("finalAnswer") == 1
    assert d.alive()


@standalone_only("SCRIPT FLUSH and the NOSCRIPT errorstats of the one server")
def test_claims_go_on_after_the_script_cache_is_flushed(h):
    # EVALSHA of a script Redis does not hold (a restarted or flushed
    # Redis) is answered NOSCRIPT: the claim is sent again with the text
    h.start_bygated()
    c = h.client()
    stream = h.keys.ctrl_agent_type("echo")
    for round_ in range(2):
        c.call("SCRIPT", "FLUSH")
        sent, cmds = pairs(c, h.keys, n=5,
                           sessions=["s-flush-%d" % round_])
        all_at_once(c, cmds)
        wait_all_done(c, h.keys, sent, [stream], t=30)
        assert_each_ran_once(c, h.keys, sent)
    assert info_count(c, "errorstats", "errorstat_NOSCRIPT", "count") >= 2
    assert command_calls(c, "eval") >= 2
