"""A persistent exec program and the task processes of a strict plugin
agent type in one child (pool.size 1): the program belongs to the child. A
task process forked next to it (child/taskproc.c), here one whose handler
waits for bygated's replies (session kv), never polls, reaps, kills or
logs about it: the program keeps its pid, and bygated's log has no
"closed its stdout" line for it."""

import pathlib

from harness import wait_until, wait_task_end
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def run(h, c, d, session, agent, content):
    """Send one task, wait until bygated is done with it; its record."""
    mid, _ = pc.send(c, h.keys, session, agent, content)
    wait_until(lambda: (pc.record(c, h.keys, session, mid) or {}).get(
        "status") in TERMINAL, 30, what="%s task %r" % (agent, content))
    wait_task_end(d, mid, timeout=30)
    return mid, pc.record(c, h.keys, session, mid)


def final_answer(c, keys, session, mid):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, keys, session)
            if e["message_id"] == mid and e["event_type"] == "finalAnswer"]


def test_plugin_task_processes_leave_the_childs_exec_program_alone(h):
    d = h.start_bygated({
        "pool": {"size": 1},
        "agent_types": [
            {"name": "py", "handler": "exec", "mode": "persistent",
             "command": "python3 %s" % (AGENTS / "testagent.py")},
            h.agent_type("alpha", plugin="calls")]})
    c = h.client()
    mid, rec = run(h, c, d, "s-prog", "py", "pid")
    assert rec["status"] == "COMPLETED", rec
    before = final_answer(c, h.keys, "s-prog", mid)
    assert len(before) == 1, before
    for _ in range(3):
        # kv_set/kv_get: the task process sleeps on the ring for replies
        _, rec = run(h, c, d, "s-kv", "alpha", "kv")
        assert rec["status"] == "COMPLETED", rec
    mid, rec = run(h, c, d, "s-prog", "py", "pid")
    assert rec["status"] == "COMPLETED", rec
    assert final_answer(c, h.keys, "s-prog", mid) == before
    bad = [ln for ln in d.log_text().splitlines()
           if "closed its stdout" in ln or "agent type 'py'" in ln]
    assert bad == [], "\n".join(bad)
