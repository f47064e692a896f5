"""Multi-agent flows with the Python example agents of examples/python/
(exec handlers) on a real bygated: an agent calling agents and being
resumed by their results (WIRE 6.6), asking the user and being resumed by
the answer (6.8), and a fan-out joined once (6.7). Every flow runs in both
exec modes (`persistent`: one warm program per child; `per_task`: a fresh
program per task, so each resume is a new process), and A->B->A also with
the two agent types in different modes. These need bygated's side of
BG_REC_CALL (supervisor/outbox.c)."""

import json
import pathlib
import uuid

from bglib import proc
from harness import wait_until, timeout
import pyclient as pc

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
AGENTS = ("planner", "researcher", "writer", "summariser", "approver")


def start(h, mode, pool=2, **modes):
    """bygated running every example agent in `mode` ("persistent" or
    "per_task"), except those named in `modes` (agent type -> its mode)."""
    return h.start_bygated({
        "pool": {"size": pool},
        "agent_types": [{"name": n, "handler": "exec", "timeout_ms": 30000,
                         "mode": modes.get(n, mode),
                         "command": "python3 %s" % (EXAMPLES / (n + ".py"))}
                        for n in AGENTS]})


def live_agents(d):
    """Agent types with an example program running under bygated d."""
    names = set()
    for pid in proc.descendants_of(d.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        names.update(pathlib.Path(a).stem for a in argv
                     if proc.pid_alive(pid)
                     and pathlib.Path(a).parent == EXAMPLES)
    return names


def wait_warm(d, used, mode, modes=None):
    """After a flow that ran the agent types `used` (started with `mode`,
    `modes` as in start()): the persistent ones (and only they) keep a
    program running; per_task programs have exited after their task."""
    want = {n for n in used if (modes or {}).get(n, mode) == "persistent"}
    wait_until(lambda: live_agents(d) == want, 10,
               what="programs left running to be %s (now %s)"
               % (sorted(want), sorted(live_agents(d))))


def status(c, keys, session, mid):
    return (pc.record(c, keys, session, mid) or {}).get("status")


def wait_status(c, keys, session, mid, want, t=30):
    wait_until(lambda: status(c, keys, session, mid) in want, t,
               what="%s to reach %s (now %s)" % (
                   mid, want, status(c, keys, session, mid)))
    return pc.record(c, keys, session, mid)


def answers(c, keys, session, mid, event_type="finalAnswer"):
    return [e["data"]["choices"][0]["delta"]["content"]
            for e in pc.events(c, keys, session)
            if e["message_id"] == mid and e["event_type"] == event_type]


def records(c, keys, session):
    reg = c.call("HGETALL", keys.registry(session)) or []
    pairs = dict(zip(reg[::2], reg[1::2]))
    return [json.loads(v) for k, v in pairs.items() if k.startswith("exec:")]


def resume(c, keys, session, target, mid, content):
    """What GatewayClient.send_message(action_type="RESUME") writes (WIRE
    2.5, 6.8): the RESUME only, the execution is reused."""
    cmd = {"action_type": "RESUME",
           "header": pc.header(session, target, message_id=mid,
                               trace_id=uuid.uuid4().hex),
           "body": {"content": content, "status": "", "reply_data": None}}
    c.call("XADD", keys.ctrl_agent_type(target), "*", "data",
           json.dumps(cmd))


def planner_calls_researcher_then_writer(h, mode, **modes):
    """The A->B->A flow twice: planner -> researcher -> planner -> writer
    -> planner, the final answer quoting the original request."""
    d = start(h, mode, **modes)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-plan", "planner", "a trip to Kyoto")
    rec = wait_status(c, h.keys, "s-plan", mid, TERMINAL, 60)
    assert rec["status"] == "COMPLETED", rec
    final = answers(c, h.keys, "s-plan", mid)
    assert len(final) == 1, final
    assert final[0].startswith('Plan for "a trip to Kyoto": Draft: '), final
    assert "3 findings on a trip to Kyoto" in final[0], final
    assert len(answers(c, h.keys, "s-plan", mid, "appStreamResponse")) == 1
    kids = [r for r in records(c, h.keys, "s-plan")
            if r.get("parent_message_id") == mid]
    assert sorted(r["target_agent_type"] for r in kids) == ["researcher",
                                                            "writer"]
    assert all(r["status"] == "COMPLETED" for r in kids), kids
    wait_warm(d, ("planner", "researcher", "writer"), mode, modes)


def approver_asks_the_user_and_the_answer_resumes_it(h, mode):
    d = start(h, mode)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-ask", "approver", "deploy v2")
    wait_status(c, h.keys, "s-ask", mid, ("WAITING_USER",))
    forms = [e for e in pc.events(c, h.keys, "s-ask")
             if e["data"]["contentType"] == "3013"]
    assert len(forms) == 1, forms
    assert "Approve deploy v2?" in forms[0]["data"]["choices"][0]["delta"][
        "content"]
    assert answers(c, h.keys, "s-ask", mid, "appStreamResponse") == []
    resume(c, h.keys, "s-ask", "approver", mid, "yes")
    rec = wait_status(c, h.keys, "s-ask", mid, TERMINAL)
    assert rec["status"] == "COMPLETED", rec
    assert answers(c, h.keys, "s-ask", mid) == ["approved: yes"]
    assert len(answers(c, h.keys, "s-ask", mid, "appStreamResponse")) == 1
    wait_warm(d, ("approver",), mode)


def summariser_fans_out_to_10_writers_and_joins_them(h, mode):
    d = start(h, mode, pool=3)
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-fan", "summariser", "10 climate")
    rec = wait_status(c, h.keys, "s-fan", mid, TERMINAL, 90)
    assert rec["status"] == "COMPLETED", rec
    final = answers(c, h.keys, "s-fan", mid)
    assert len(final) == 1, final
    assert final[0].startswith("Summary of 10 parts: "), final
    drafts = final[0][len("Summary of 10 parts: "):].split(" | ")
    assert sorted(drafts) == sorted("Draft: part %d of climate" % (i + 1)
                                    for i in range(10)), drafts
    kids = [r for r in records(c, h.keys, "s-fan")
            if r.get("parent_message_id") == mid]
    assert len(kids) == 10 and all(r["status"] == "COMPLETED" for r in kids)
    wait_warm(d, ("summariser", "writer"), mode)


@timeout(90)
def test_persistent_planner_calls_researcher_then_writer_and_quotes_it(h):
    planner_calls_researcher_then_writer(h, "persistent")


@timeout(90)
def test_per_task_planner_calls_researcher_then_writer_and_quotes_it(h):
    planner_calls_researcher_then_writer(h, "per_task")


@timeout(90)
def test_per_task_planner_calls_a_persistent_researcher_and_is_resumed(h):
    planner_calls_researcher_then_writer(h, "per_task",
                                         researcher="persistent")


@timeout(90)
def test_persistent_planner_calls_a_per_task_researcher_and_is_resumed(h):
    planner_calls_researcher_then_writer(h, "persistent",
                                         researcher="per_task")


@timeout(90)
def test_persistent_approver_asks_the_user_and_the_answer_resumes_it(h):
    approver_asks_the_user_and_the_answer_resumes_it(h, "persistent")


@timeout(90)
def test_per_task_approver_asks_the_user_and_the_answer_resumes_it(h):
    approver_asks_the_user_and_the_answer_resumes_it(h, "per_task")


@timeout(120)
def test_persistent_summariser_fans_out_to_10_writers_and_joins_them(h):
    summariser_fans_out_to_10_writers_and_joins_them(h, "persistent")


@timeout(120)
def test_per_task_summariser_fans_out_to_10_writers_and_joins_them(h):
    summariser_fans_out_to_10_writers_and_joins_them(h, "per_task")
