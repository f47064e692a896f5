"""Several tasks at once in one persistent exec program (max_inflight > 1,
DESIGN 5): the scheduler places tasks of such an agent type next to each
other in a child, up to max_inflight, choosing the child with the most free
room; a crash of a program or child that ran several tasks re-runs each of
them alone, without counting an attempt, before it counts against any;
timeouts and cancels reach one task through the protocol and only a kill
ends the others' attempts, which then re-run uncounted. The agent is
tests/integration/agents/testagent.py."""

import json
import os
import re
import pathlib
import signal
import uuid

from harness import wait_until
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def start(h, pool=1, max_inflight=4, **settings):
    entry = {"name": "py", "handler": "exec", "mode": "persistent",
             "max_inflight": max_inflight,
             "command": "python3 %s" % (AGENTS / "testagent.py")}
    entry.update(settings)
    return h.start_bygated({"pool": {"size": pool},
                            "worker": {"cancel_grace_ms": 300},
                            "agent_types": [entry]})


def send_all(c, keys, session, contents):
    return [pc.send(c, keys, session, "py", text) for text in contents]


def finished(c, keys, session, mids, t=30):
    def done():
        recs = [pc.record(c, keys, session, m) for m in mids]
        ok = all(r and r["status"] in TERMINAL for r in recs)
        return recs if ok else None
    return wait_until(done, t, what="%d tasks to end" % len(mids))


def answers(c, keys, session, mid, event_type="finalAnswer"):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, keys, session)
            if e["message_id"] == mid and e["event_type"] == event_type]


def verdicts(c, keys, session, mid):
    """What "barrier" tasks answered: "met" or "alone" (then their pid)."""
    return [a.split()[0] for a in answers(c, keys, session, mid)]


def states(c, keys, session, mid):
    return answers(c, keys, session, mid, "reasoningLogDelta")


def test_one_program_runs_max_inflight_tasks_at_once(h):
    start(h, pool=1, max_inflight=4)
    c = h.client()
    sent = send_all(c, h.keys, "s-mi", ["barrier 4"] * 4)
    recs = finished(c, h.keys, "s-mi", [m for m, _ in sent])
    assert [r["status"] for r in recs] == ["COMPLETED"] * 4
    # all four met at the barrier: they ran together in one program
    for m, _ in sent:
        assert verdicts(c, h.keys, "s-mi", m) == ["met"]


def test_tasks_spread_over_the_children_with_most_free_room(h):
    start(h, pool=2, max_inflight=4)
    c = h.client()
    sent = send_all(c, h.keys, "s-spread", ["barrier 4 100"] * 8)
    recs = finished(c, h.keys, "s-spread", [m for m, _ in sent])
    assert [r["status"] for r in recs] == ["COMPLETED"] * 8
    for m, _ in sent:
        assert verdicts(c, h.keys, "s-spread", m) == ["met"]
    # 4 in each child's program
    pids = [answers(c, h.keys, "s-spread", m)[0].split()[1] for m, _ in sent]
    assert sorted(pids.count(p) for p in set(pids)) == [4, 4]


def test_a_program_crash_reruns_each_task_alone_before_it_counts(h):
    d = start(h, pool=1, max_inflight=4)
    c = h.client()
    good = send_all(c, h.keys, "s-crash", ["barrier 4 200"] * 3)
    bad, _ = pc.send(c, h.keys, "s-crash", "py", "crash-after 4")
    recs = finished(c, h.keys, "s-crash", [m for m, _ in good] + [bad])
    # the innocent ones completed on their uncounted re-run (alone, so
    # their barrier was not met the second time)
    for (m, _), r in zip(good, recs):
        assert r["status"] == "COMPLETED", r
        assert verdicts(c, h.keys, "s-crash", m) == ["alone"]
        assert states(c, h.keys, "s-crash", m).count("RERUN 1") == 1
    # the culprit crashed again alone: that counted (max_attempts 1)
    assert recs[3]["status"] == "FAILED"
    assert "killed by signal 9" in json.dumps(recs[3])
    assert states(c, h.keys, "s-crash", bad).count("RERUN 1") == 1
    log = d.log_text()
    assert log.count("re-run alone without counting it") == 4
    for m, _ in good + [(bad, None)]:
        assert len(answers(c, h.keys, "s-crash", m,
                           "appStreamResponse")) == 1
    assert pc.pending_count(c, h.keys.ctrl_agent_type("py")) == 0


def test_a_child_killed_with_several_tasks_reruns_them_alone(h):
    d = start(h, pool=1, max_inflight=4)
    c = h.client()
    sent = send_all(c, h.keys, "s-kill", ["sleep 1500"] * 3)
    # all three handed to the one child before it is killed (a RUNNING
    # record is written at pickup, before the task reaches a child)
    wait_until(lambda: d.log_text().count("task started (") == 3, 10,
               what="three tasks in the child")
    pids = d.child_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    recs = finished(c, h.keys, "s-kill", [m for m, _ in sent])
    assert [r["status"] for r in recs] == ["COMPLETED"] * 3
    for m, _ in sent:
        assert answers(c, h.keys, "s-kill", m) == ["slept 1500"]
        assert states(c, h.keys, "s-kill", m).count("RERUN 1") == 1
    assert d.log_text().count("re-run alone without counting it") == 3
    assert pc.pending_count(c, h.keys.ctrl_agent_type("py")) == 0


def test_a_timeout_reaches_one_task_as_a_cancel_line(h):
    d = start(h, pool=1, max_inflight=4, timeout_ms=800)
    c = h.client()
    slow, _ = pc.send(c, h.keys, "s-to", "py", "timeout-aware")
    fast = send_all(c, h.keys, "s-to", ["echo %d" % i for i in range(3)])
    recs = finished(c, h.keys, "s-to", [slow] + [m for m, _ in fast])
    assert recs[0]["status"] == "FAILED"
    assert recs[0].get("error_code") == "TIMEOUT", recs[0]
    assert [r["status"] for r in recs[1:]] == ["COMPLETED"] * 3
    # the program answered its cancel line: nobody was killed
    assert "SIGKILL" not in d.log_text()
    assert "cancel line to its program" in d.log_text()


def test_a_force_cancel_kills_the_child_and_reruns_the_others(h):
    d = start(h, pool=1, max_inflight=4)
    c = h.client()
    w = d.config["worker"]["id"]
    victim, eid = pc.send(c, h.keys, "s-fc", "py", "sleep 30000")
    others = send_all(c, h.keys, "s-fc", ["barrier 3 400"] * 2)
    wait_until(lambda: d.log_text().count("task started (") == 3, 10,
               what="three tasks in the child")
    hdr = pc.header("s-fc", "", message_id=uuid.uuid4().hex)
    c.call("XADD", h.keys.ctrl_worker(w), "*", "data", json.dumps(
        {"action_type": "CANCEL_TASK", "header": hdr,
         "body": {"target_message_id": victim, "target_execution_id": eid,
                  "target_worker_id": w, "reason": "stop it",
                  "requested_by": "client", "cancel_mode": "force"}}))
    recs = finished(c, h.keys, "s-fc", [victim] + [m for m, _ in others])
    assert recs[0]["status"] == "CANCELLED"
    assert [r["status"] for r in recs[1:]] == ["COMPLETED"] * 2
    for m, _ in others:
        # re-run without counting, but not forced alone: the culprit
        # was known
        assert states(c, h.keys, "s-fc", m).count("RERUN 1") == 1
    log = d.log_text()
    assert "re-run without counting it" in log
    assert "re-run alone" not in log


def test_extra_payload_of_a_result_reaches_the_callers_callback(h):
    """A handler result's extra_payload (WIRE 6.5) is the callback's
    body.extra_payload (6.6)."""
    start(h, pool=1, max_inflight=1)
    c = h.client()
    mid, eid = pc.send(c, h.keys, "s-xp", "py", "barrier 1",
                       source_agent_type="caller")
    finished(c, h.keys, "s-xp", [mid])
    entries = c.stream_data(h.keys.ctrl_agent_type("caller"))
    assert len(entries) == 1
    body = entries[0]["body"]
    assert body["extra_payload"]["pid"] > 0
    assert body["status"] == "COMPLETED"


def test_a_task_needing_a_child_alone_neither_starves_nor_blocks_sharing(h):
    """pool 2, both children running shared tasks: a plugin task waits for
    a child to empty (one is left to drain for it), while shared tasks sent
    after it still go next to the tasks running in the other."""
    d = h.start_bygated({"pool": {"size": 2}, "agent_types": [
        {"name": "py", "handler": "exec", "mode": "persistent",
         "max_inflight": 4,
         "command": "python3 %s" % (AGENTS / "testagent.py")},
        h.agent_type("echo")]})
    wait_until(lambda: len(re.findall(r"child pid \d+ ready",
                                      d.log_text())) == 2,
               10, what="both children ready")
    c = h.client()
    first = send_all(c, h.keys, "s-mix", ["sleep 1500"] * 2)
    wait_until(lambda: all((pc.record(c, h.keys, "s-mix", m) or {})
                           .get("status") == "RUNNING" for m, _ in first),
               10, what="two shared tasks running")
    alone, _ = pc.send(c, h.keys, "s-mix", "echo", "hello")
    # child 0 (fewest tasks, lowest slot) is left to drain for it; the
    # other has room for 3 more
    late = send_all(c, h.keys, "s-mix", ["echo late %d" % i
                                         for i in range(3)])
    recs = finished(c, h.keys, "s-mix",
                    [m for m, _ in first] + [alone] + [m for m, _ in late])
    assert all(r["status"] == "COMPLETED" for r in recs), recs
    # (started_at is the pickup, so the ends tell the order)
    first_start = min(r["started_at"] for r in recs[:2])
    echo = recs[2]
    # the plugin task ran once a child emptied (after its 1.5 s sleep) ...
    assert echo["finished_at"] - first_start >= 1400, recs
    # ... and the shared tasks sent after it were not held behind it
    assert all(r["finished_at"] - first_start < 1000 for r in recs[3:]), recs
